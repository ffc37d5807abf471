package issuer

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/watch"
	"github.com/meshd/meshd/sds"
)

var _ sds.Authority = (*SPIRE)(nil)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// spireWait bounds every wait on a condition; go-spiffe's reconnection backoff
// (1 s, 2 s, …) takes a few seconds.
const spireWait = 20 * time.Second

var spireTD = spiffeid.RequireTrustDomainFromString("example.org")

// fakeAgent is a Workload API server like the SPIRE agent's: it demands the
// security header and streams the latest pushed X509SVIDResponse.
type fakeAgent struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	mu     sync.Mutex
	resp   *workload.X509SVIDResponse
	sig    watch.Signal
	reject error // returned to every FetchX509SVID when set
}

func (a *fakeAgent) push(r *workload.X509SVIDResponse) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resp = r
	a.sig.Notify()
}

func (a *fakeAgent) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	ctx := stream.Context()
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	var sent *workload.X509SVIDResponse
	for {
		a.mu.Lock()
		resp, ch, reject := a.resp, a.sig.C(), a.reject
		a.mu.Unlock()
		if reject != nil {
			return reject
		}
		if resp != nil && resp != sent {
			if err := stream.Send(resp); err != nil {
				return err
			}
			sent = resp
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// agentServer serves a fakeAgent on a Unix socket.
type agentServer struct {
	srv  *grpc.Server
	done chan struct{}
}

func serveAgent(t *testing.T, a *fakeAgent, sock string) *agentServer {
	t.Helper()
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := &agentServer{srv: grpc.NewServer(grpc.WaitForHandlers(true)), done: make(chan struct{})}
	workload.RegisterSpiffeWorkloadAPIServer(s.srv, a)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(lis)
	}()
	return s
}

// stop closes the listener (removing the socket) and every stream; it is
// idempotent.
func (s *agentServer) stop() {
	s.srv.Stop()
	<-s.done
}

// shortSocketPath returns a socket path short enough for sun_path (108 bytes).
func shortSocketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "spire")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "agent.sock")
}

func spireTestLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func spireTestCA(t *testing.T, trustDomain spiffeid.TrustDomain) *certs.CA {
	t.Helper()
	ca, err := certs.New(certs.Config{
		TrustDomain: trustDomain, StateDir: filepath.Join(t.TempDir(), "ca"), Log: spireTestLog(t), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func spireIssue(t *testing.T, ca *certs.CA, id spiffeid.ID, dns ...string) *x509svid.SVID {
	t.Helper()
	svid, err := ca.Issue(id, dns)
	if err != nil {
		t.Fatal(err)
	}
	return svid
}

func derChain(certs []*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, c.Raw...)
	}
	return b
}

// response builds what a SPIRE agent sends: each SVID with its chain, its
// PKCS#8 key and the trust domain's bundle, plus federated bundles.
func svidResponse(t *testing.T, bundle *x509bundle.Bundle, svids []*x509svid.SVID, federated ...*x509bundle.Bundle) *workload.X509SVIDResponse {
	t.Helper()
	r := &workload.X509SVIDResponse{FederatedBundles: map[string][]byte{}}
	for _, s := range svids {
		key, err := x509.MarshalPKCS8PrivateKey(s.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		r.Svids = append(r.Svids, &workload.X509SVID{
			SpiffeId:    s.ID.String(),
			X509Svid:    derChain(s.Certificates),
			X509SvidKey: key,
			Bundle:      derChain(bundle.X509Authorities()),
		})
	}
	for _, b := range federated {
		r.FederatedBundles[b.TrustDomain().IDString()] = derChain(b.X509Authorities())
	}
	return r
}

// spireClock is an injectable clock; zero means the real time.
type spireClock struct{ t atomic.Pointer[time.Time] }

func (c *spireClock) now() time.Time {
	if p := c.t.Load(); p != nil {
		return *p
	}
	return time.Now()
}

func (c *spireClock) set(t time.Time) { c.t.Store(&t) }

type spireEnv struct {
	ca     *certs.CA
	agent  *fakeAgent
	sock   string
	server *agentServer
	spire  *SPIRE
	reg    *prometheus.Registry
	clock  *spireClock
}

// newSPIREEnv starts a fake agent and a SPIRE authority running against it; both
// stop at the end of the test, and Run must then have returned nil.
func newSPIREEnv(t *testing.T) *spireEnv {
	t.Helper()
	e := &spireEnv{ca: spireTestCA(t, spireTD), agent: &fakeAgent{}, sock: shortSocketPath(t), reg: prometheus.NewRegistry(), clock: &spireClock{}}
	e.server = serveAgent(t, e.agent, e.sock)
	t.Cleanup(func() { e.server.stop() })
	s, err := NewSPIRE(SPIREConfig{Addr: "unix://" + e.sock, TrustDomain: spireTD, Log: spireTestLog(t), Registerer: e.reg, Now: e.clock.now})
	if err != nil {
		t.Fatal(err)
	}
	e.spire = s
	runSPIRE(t, s)
	return e
}

func runSPIRE(t *testing.T, s *SPIRE) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(spireWait):
			t.Errorf("Run did not return within %s of cancel", spireWait)
		}
	})
}

// pollUntil polls cond until it returns nil or spireWait passes.
func pollUntil(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(spireWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, spireWait, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitChanged(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(spireWait):
		t.Fatalf("%s: Changed not closed within %s", what, spireWait)
	}
}

func chanClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func serialOf(s *x509svid.SVID) string { return s.Certificates[0].SerialNumber.Text(16) }

// issuedSerial returns the serial Issue gives for id, or an error.
func (e *spireEnv) issuedSerial(id spiffeid.ID, dns ...string) (string, error) {
	got, err := e.spire.Issue(id, dns)
	if err != nil {
		return "", err
	}
	return serialOf(got), nil
}

func wantSerial(e *spireEnv, id spiffeid.ID, want *x509svid.SVID, dns ...string) func() error {
	return func() error {
		got, err := e.issuedSerial(id, dns...)
		if err != nil {
			return err
		}
		if got != serialOf(want) {
			return fmt.Errorf("Issue returned serial %s, want %s", got, serialOf(want))
		}
		return nil
	}
}

func wantUpdates(e *spireEnv, want float64) func() error {
	return func() error {
		if n := testutil.ToFloat64(e.spire.m.updates); n != want {
			return fmt.Errorf("meshd_spire_updates_total = %v, want %v", n, want)
		}
		return nil
	}
}

func wantErrHas(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func expiryMetric(ss ...*x509svid.SVID) string {
	var b strings.Builder
	b.WriteString("# HELP meshd_spire_svid_expiry_timestamp_seconds NotAfter of each X.509-SVID in the latest context from the SPIRE agent, by SPIFFE ID.\n")
	b.WriteString("# TYPE meshd_spire_svid_expiry_timestamp_seconds gauge\n")
	for _, s := range ss {
		fmt.Fprintf(&b, "meshd_spire_svid_expiry_timestamp_seconds{spiffe_id=%q} %d\n", s.ID.String(), s.Certificates[0].NotAfter.Unix())
	}
	return b.String()
}

func TestNewSPIREConfigErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	ok := SPIREConfig{Addr: "unix:///run/spire/agent.sock", TrustDomain: spireTD, Log: log, Registerer: prometheus.NewRegistry()}
	for _, tc := range []struct {
		name string
		edit func(*SPIREConfig)
		want string
	}{
		{"no log", func(c *SPIREConfig) { c.Log = nil }, "Log is required"},
		{"no registerer", func(c *SPIREConfig) { c.Registerer = nil }, "Registerer is required"},
		{"no trust domain", func(c *SPIREConfig) { c.TrustDomain = spiffeid.TrustDomain{} }, "trust domain is required"},
		{"bad scheme", func(c *SPIREConfig) { c.Addr = "http://agent.sock" }, `"http://agent.sock"`},
		{"relative unix path", func(c *SPIREConfig) { c.Addr = "unix:agent.sock" }, `"unix:agent.sock"`},
		{"no address anywhere", func(c *SPIREConfig) { c.Addr = "" }, workloadapi.SocketEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(workloadapi.SocketEnv, "")
			cfg := ok
			cfg.Registerer = prometheus.NewRegistry()
			tc.edit(&cfg)
			s, err := NewSPIRE(cfg)
			if s != nil {
				t.Error("NewSPIRE returned an authority along with an error")
			}
			wantErrHas(t, err, tc.want)
		})
	}
	t.Run("metrics registered twice", func(t *testing.T) {
		cfg := ok
		if _, err := NewSPIRE(cfg); err != nil {
			t.Fatal(err)
		}
		_, err := NewSPIRE(cfg)
		wantErrHas(t, err, "register metrics")
	})
}

func TestSPIREBeforeFirstContext(t *testing.T) {
	e := newSPIREEnv(t)
	if err := e.spire.Ready(); err == nil {
		t.Fatal("Ready is nil before any X.509 context")
	}
	id := spiffeid.RequireFromPath(spireTD, "/web")
	_, err := e.spire.Issue(id, nil)
	wantErrHas(t, err, "no X.509 context", id.String())
	b := e.spire.Bundle()
	if b == nil || b.TrustDomain() != spireTD || len(b.X509Authorities()) != 0 {
		t.Fatalf("Bundle before the first context = %v, want an empty bundle of %s", b, spireTD)
	}
	if got := e.spire.FederatedBundles(); len(got) != 0 {
		t.Fatalf("FederatedBundles before the first context = %v", got)
	}
	if e.spire.TrustDomain() != spireTD {
		t.Fatalf("TrustDomain = %s", e.spire.TrustDomain())
	}
}

func TestSPIREIssueRotateAndMetrics(t *testing.T) {
	e := newSPIREEnv(t)
	web := spiffeid.RequireFromPath(spireTD, "/ns/default/web")
	db := spiffeid.RequireFromPath(spireTD, "/ns/default/db")
	web1 := spireIssue(t, e.ca, web, "web.default.svc", "web.local")
	db1 := spireIssue(t, e.ca, db, "db.local")

	changed := e.spire.Changed()
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{web1, db1}))
	waitChanged(t, changed, "first context")
	if err := e.spire.Ready(); err != nil {
		t.Fatalf("Ready after the first context: %v", err)
	}

	got, err := e.spire.Issue(web, []string{"web.local", "WEB.default.svc"})
	if err != nil {
		t.Fatal(err)
	}
	if serialOf(got) != serialOf(web1) || got.ID != web {
		t.Fatalf("Issue returned %s serial %s, want %s serial %s", got.ID, serialOf(got), web, serialOf(web1))
	}
	if id, _, err := x509svid.Verify(got.Certificates, e.spire.Bundle()); err != nil || id != web {
		t.Fatalf("returned SVID does not verify against Bundle(): id %s, %v", id, err)
	}
	if err := keyMatchesLeaf(got); err != nil {
		t.Fatal(err)
	}
	// The caller may keep and modify what it got.
	got.Certificates[0] = nil
	got.Certificates = got.Certificates[:0]
	if err := wantSerial(e, web, web1)(); err != nil {
		t.Fatalf("after the caller modified a returned SVID: %v", err)
	}

	unknown := spiffeid.RequireFromPath(spireTD, "/ns/default/unknown")
	_, err = e.spire.Issue(unknown, nil)
	wantErrHas(t, err, unknown.String(), "register an entry", "selectors match meshd's process", web.String())

	_, err = e.spire.Issue(web, []string{"web.local", "missing.example", "also.missing"})
	wantErrHas(t, err, web.String(), `lacks DNS names "missing.example", "also.missing"`)

	foreign := spiffeid.RequireFromPath(spiffeid.RequireTrustDomainFromString("other.example"), "/web")
	_, err = e.spire.Issue(foreign, nil)
	wantErrHas(t, err, foreign.String(), "trust domain")

	// Rotation: the Changed channel taken before is closed, Issue returns
	// the new certificate.
	web2 := spireIssue(t, e.ca, web, "web.default.svc", "web.local")
	changed = e.spire.Changed()
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{web2, db1}))
	waitChanged(t, changed, "rotated SVID")
	if err := wantSerial(e, web, web2)(); err != nil {
		t.Fatal(err)
	}

	// The counter goes up once a context is fully applied, just after the
	// wake-up.
	pollUntil(t, "two contexts counted", wantUpdates(e, 2))
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(expiryMetric(web2, db1)), "meshd_spire_svid_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}

	// db vanishes: its series goes, and Issue no longer has it.
	changed = e.spire.Changed()
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{web2}))
	waitChanged(t, changed, "db removed")
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(expiryMetric(web2)), "meshd_spire_svid_expiry_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	_, err = e.spire.Issue(db, nil)
	wantErrHas(t, err, db.String(), "register an entry")

	// An identical context (as sent again after a reconnection) is counted
	// but changes nothing: no wake-up, same bundle pointer.
	bundle := e.spire.Bundle()
	changed = e.spire.Changed()
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{web2}))
	pollUntil(t, "identical context counted", wantUpdates(e, 4))
	if chanClosed(changed) {
		t.Error("an identical X.509 context closed the Changed channel")
	}
	if e.spire.Bundle() != bundle {
		t.Error("an identical X.509 context replaced the Bundle pointer")
	}
	if n := testutil.ToFloat64(e.spire.m.watchErrors); n != 0 {
		t.Errorf("meshd_spire_watch_errors_total = %v, want 0", n)
	}
	if n, err := testutil.GatherAndCount(e.reg); err != nil || n != 3 {
		t.Errorf("registry holds %d series (err %v), want 3", n, err)
	}
}

func keyMatchesLeaf(s *x509svid.SVID) error {
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	pub, ok := s.PrivateKey.Public().(equaler)
	if !ok || !pub.Equal(s.Certificates[0].PublicKey) {
		return errors.New("returned private key does not match the leaf")
	}
	return nil
}

func TestSPIREBundleAndFederation(t *testing.T) {
	e := newSPIREEnv(t)
	web := spiffeid.RequireFromPath(spireTD, "/web")
	svid := spireIssue(t, e.ca, web)

	changed := e.spire.Changed()
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{svid}))
	waitChanged(t, changed, "first context")
	if got := e.spire.Bundle(); !got.Equal(e.ca.Bundle()) {
		t.Fatalf("Bundle = %d authorities, want the CA's %d", len(got.X509Authorities()), len(e.ca.Bundle().X509Authorities()))
	}
	if got := e.spire.FederatedBundles(); len(got) != 0 {
		t.Fatalf("FederatedBundles = %v, want none", got)
	}

	// SPIRE adds a new root (a prepared key) and two federated trust
	// domains; the pushed map is unordered, the result sorted.
	next := spireTestCA(t, spireTD)
	both := x509bundle.FromX509Authorities(spireTD, append(e.ca.Bundle().X509Authorities(), next.Bundle().X509Authorities()...))
	zeta := spireTestCA(t, spiffeid.RequireTrustDomainFromString("zeta.example")).Bundle()
	alpha := spireTestCA(t, spiffeid.RequireTrustDomainFromString("alpha.example")).Bundle()
	changed = e.spire.Changed()
	e.agent.push(svidResponse(t, both, []*x509svid.SVID{svid}, zeta, alpha))
	waitChanged(t, changed, "bundle change")
	if got := e.spire.Bundle(); !got.Equal(both) || got.TrustDomain() != spireTD {
		t.Fatalf("Bundle has %d authorities, want %d", len(got.X509Authorities()), len(both.X509Authorities()))
	}
	fed := e.spire.FederatedBundles()
	if len(fed) != 2 || !fed[0].Equal(alpha) || !fed[1].Equal(zeta) {
		t.Fatalf("FederatedBundles = %q, want alpha.example then zeta.example", bundleTDs(fed))
	}
	fed[0] = nil // the slice is the caller's
	if got := e.spire.FederatedBundles(); got[0] == nil {
		t.Fatal("modifying the returned slice changed the authority's")
	}
	// An SVID of the new root verifies against the new bundle.
	svid2 := spireIssue(t, next, web)
	changed = e.spire.Changed()
	e.agent.push(svidResponse(t, both, []*x509svid.SVID{svid2}, zeta, alpha))
	waitChanged(t, changed, "SVID from the new root")
	got, err := e.spire.Issue(web, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(got.Certificates, e.spire.Bundle()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(got.Certificates, e.ca.Bundle()); err == nil {
		t.Fatal("test setup: the new SVID verifies against the old root alone")
	}

	// The old root leaves; an SVID that no longer chains is refused.
	changed = e.spire.Changed()
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{svid2}))
	waitChanged(t, changed, "root removed")
	_, err = e.spire.Issue(web, nil)
	wantErrHas(t, err, "does not verify against the example.org bundle")
}

func TestSPIREExpiry(t *testing.T) {
	e := newSPIREEnv(t)
	web := spiffeid.RequireFromPath(spireTD, "/web")
	svid := spireIssue(t, e.ca, web)
	changed := e.spire.Changed()
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{svid}))
	waitChanged(t, changed, "first context")
	if _, err := e.spire.Issue(web, nil); err != nil {
		t.Fatal(err)
	}
	leaf := svid.Certificates[0]
	e.clock.set(leaf.NotAfter)
	_, err := e.spire.Issue(web, nil)
	wantErrHas(t, err, web.String(), "expired at "+leaf.NotAfter.UTC().Format(time.RFC3339))
	e.clock.set(leaf.NotBefore.Add(-time.Second))
	_, err = e.spire.Issue(web, nil)
	wantErrHas(t, err, "not valid before")
}

func TestSPIREAgentRestart(t *testing.T) {
	e := newSPIREEnv(t)
	web := spiffeid.RequireFromPath(spireTD, "/web")
	web1 := spireIssue(t, e.ca, web)
	changed := e.spire.Changed()
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{web1}))
	waitChanged(t, changed, "first context")

	e.server.stop()
	// The stream breaks (one error), then a retry finds no socket (a second
	// one): the restart below is met by a client in backoff, not mid-stream.
	pollUntil(t, "watch errors counted", func() error {
		if n := testutil.ToFloat64(e.spire.m.watchErrors); n < 2 {
			return fmt.Errorf("meshd_spire_watch_errors_total = %v", n)
		}
		return nil
	})
	// While the agent is away the last context is still served.
	if err := e.spire.Ready(); err != nil {
		t.Fatalf("Ready during the outage: %v", err)
	}
	if err := wantSerial(e, web, web1)(); err != nil {
		t.Fatalf("during the outage: %v", err)
	}

	web2 := spireIssue(t, e.ca, web)
	e.agent.push(svidResponse(t, e.ca.Bundle(), []*x509svid.SVID{web2}))
	e.server = serveAgent(t, e.agent, e.sock) // the cleanup registered by newSPIREEnv stops this one
	start := time.Now()
	pollUntil(t, "recovery after the agent restarted", wantSerial(e, web, web2))
	t.Logf("recovered %s after the restart", time.Since(start).Round(time.Millisecond))
	pollUntil(t, "two contexts counted", wantUpdates(e, 2))
}

func TestSPIREDefaultAddressFromEnv(t *testing.T) {
	sock := shortSocketPath(t)
	ca := spireTestCA(t, spireTD)
	agent := &fakeAgent{}
	srv := serveAgent(t, agent, sock)
	t.Cleanup(srv.stop)
	t.Setenv(workloadapi.SocketEnv, "unix://"+sock)
	s, err := NewSPIRE(SPIREConfig{TrustDomain: spireTD, Log: spireTestLog(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	runSPIRE(t, s)
	agent.push(svidResponse(t, ca.Bundle(), []*x509svid.SVID{spireIssue(t, ca, spiffeid.RequireFromPath(spireTD, "/web"))}))
	pollUntil(t, "ready", s.Ready)
}

// TestFakeAgentDemandsHeader checks the fake is as strict as SPIRE.
func TestFakeAgentDemandsHeader(t *testing.T) {
	sock := shortSocketPath(t)
	srv := serveAgent(t, &fakeAgent{}, sock)
	t.Cleanup(srv.stop)
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(t.Context(), &workload.X509SVIDRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("FetchX509SVID without the security header: %v, want InvalidArgument", err)
	}
}

func TestSPIRERunRejected(t *testing.T) {
	sock := shortSocketPath(t)
	agent := &fakeAgent{reject: status.Error(codes.InvalidArgument, "not a workload API")}
	srv := serveAgent(t, agent, sock)
	t.Cleanup(srv.stop)
	s, err := NewSPIRE(SPIREConfig{Addr: "unix://" + sock, TrustDomain: spireTD, Log: spireTestLog(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Run(t.Context()) }()
	select {
	case err := <-errc:
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), sock) {
			t.Fatalf("Run = %v, want a wrapped InvalidArgument naming the socket", err)
		}
	case <-time.After(spireWait):
		t.Fatalf("Run did not return within %s", spireWait)
	}
	if err := s.Ready(); err == nil || !strings.Contains(err.Error(), "not a workload API") {
		t.Errorf("Ready = %v, want the last watch error", err)
	}
}

func TestSPIRERunCancelNoLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	run := func(t *testing.T, s *SPIRE, cancelWhen func()) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		errc := make(chan error, 1)
		go func() { errc <- s.Run(ctx) }()
		cancelWhen()
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatalf("Run after cancel = %v, want nil", err)
			}
		case <-time.After(spireWait):
			t.Fatalf("Run did not return within %s of cancel", spireWait)
		}
	}

	t.Run("connected", func(t *testing.T) {
		sock := shortSocketPath(t)
		ca := spireTestCA(t, spireTD)
		agent := &fakeAgent{}
		srv := serveAgent(t, agent, sock)
		defer srv.stop()
		s, err := NewSPIRE(SPIREConfig{Addr: "unix://" + sock, TrustDomain: spireTD, Log: spireTestLog(t), Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		agent.push(svidResponse(t, ca.Bundle(), []*x509svid.SVID{spireIssue(t, ca, spiffeid.RequireFromPath(spireTD, "/web"))}))
		run(t, s, func() { pollUntil(t, "ready", s.Ready) })
		if n := testutil.ToFloat64(s.m.watchErrors); n != 0 {
			t.Errorf("a clean shutdown counted %v watch errors", n)
		}
	})
	t.Run("agent absent, in backoff", func(t *testing.T) {
		sock := shortSocketPath(t) // nothing listens
		s, err := NewSPIRE(SPIREConfig{Addr: "unix://" + sock, TrustDomain: spireTD, Log: spireTestLog(t), Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		run(t, s, func() {
			pollUntil(t, "first watch error", func() error {
				if n := testutil.ToFloat64(s.m.watchErrors); n < 1 {
					return errors.New("no watch error yet")
				}
				return nil
			})
		})
		if err := s.Ready(); err == nil || !strings.Contains(err.Error(), sock) {
			t.Errorf("Ready = %v, want an error naming the socket", err)
		}
	})
	goleak.VerifyNone(t, ignore)
}
