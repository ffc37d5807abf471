package sds

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/internal/testutil"
	"github.com/meshd/meshd/sds/sdsclient"
)

const testTD = "example.org"

// testServer is an SDS server on a real Unix socket.
type testServer struct {
	t        *testing.T
	dir      string
	socket   string
	stateDir string
	idsFile  string
	ca       *certs.CA
	srv      *Server
	reg      *prometheus.Registry
	cancel   context.CancelFunc
	done     chan struct{}
	log      *testutil.SyncBuffer
}

type serverOpts struct {
	identities string // YAML; default maps this process's uid
	svidTTL    time.Duration
	caTTL      time.Duration
	limits     peer.Limits
	validation ValidationMode
	group      int
	stateDir   string
	maxReq     int
	federated  []*x509bundle.Bundle
	socket     string // default: a fresh path
	dirMode    os.FileMode
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "sds")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func selfIdentities() string {
	return fmt.Sprintf(`- spiffeID: spiffe://%s/ns/apps/sa/serviceb
  dnsNames: [serviceb.apps.local]
  selectors: [uid:%d]
`, testTD, os.Getuid())
}

func startServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	dir := shortTempDir(t)
	ts := &testServer{t: t, dir: dir, socket: filepath.Join(dir, "run", "sds.sock"), stateDir: o.stateDir, log: &testutil.SyncBuffer{}}
	if o.socket != "" {
		ts.socket = o.socket
	}
	if o.dirMode != 0 {
		if err := os.Chmod(dir, o.dirMode); err != nil {
			t.Fatal(err)
		}
	}
	if ts.stateDir == "" {
		ts.stateDir = filepath.Join(dir, "state")
	}
	if o.identities == "" {
		o.identities = selfIdentities()
	}
	if o.svidTTL == 0 {
		o.svidTTL = time.Hour
	}
	if o.caTTL == 0 {
		o.caTTL = 24 * time.Hour
	}
	if o.group == 0 {
		o.group = -1
	}
	ts.idsFile = filepath.Join(dir, "identities.yaml")
	if err := os.WriteFile(ts.idsFile, []byte(o.identities), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(ts.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ts.reg = prometheus.NewRegistry()
	td := spiffeid.RequireTrustDomainFromString(testTD)
	var err error
	ts.ca, err = certs.New(certs.Config{TrustDomain: td, StateDir: ts.stateDir, SVIDTTL: o.svidTTL, CATTL: o.caTTL,
		PollInterval: 10 * time.Millisecond, Log: log, Registerer: ts.reg})
	if err != nil {
		t.Fatal(err)
	}
	cache, err := NewCache(CacheConfig{CA: ts.ca, Log: log, Registerer: ts.reg})
	if err != nil {
		t.Fatal(err)
	}
	ts.srv, err = New(Config{Socket: ts.socket, SocketGroup: o.group, CA: ts.ca, Cache: cache, IdentitiesFile: ts.idsFile,
		ReloadInterval: 10 * time.Millisecond, Validation: o.validation, Limits: o.limits, MaxRequestBytes: o.maxReq,
		Federated: o.federated, ShutdownGrace: 2 * time.Second, Log: log, Registerer: ts.reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	ts.done = make(chan struct{})
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{ts.ca.Run, cache.Run, ts.srv.RunReloader, ts.srv.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				t.Errorf("component failed: %v", err)
			}
		}()
	}
	go func() { wg.Wait(); close(ts.done) }()
	t.Cleanup(ts.stop)
	deadline := time.Now().Add(5 * time.Second)
	for !ts.srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("server not ready; log:\n%s", ts.log)
		}
		time.Sleep(time.Millisecond)
	}
	return ts
}

func (ts *testServer) stop() {
	ts.cancel()
	select {
	case <-ts.done:
	case <-time.After(10 * time.Second):
		ts.t.Errorf("server did not stop; log:\n%s", ts.log)
	}
}

func (ts *testServer) client() secretv3.SecretDiscoveryServiceClient {
	ts.t.Helper()
	conn, err := sdsclient.Dial(ts.socket)
	if err != nil {
		ts.t.Fatal(err)
	}
	ts.t.Cleanup(func() { conn.Close() })
	return secretv3.NewSecretDiscoveryServiceClient(conn)
}

type sdsStream = *testStream

// testStream wraps a client stream with one receiving goroutine, so a
// timed-out receive never races a later one.
type testStream struct {
	grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	ch chan recvResult
}

func (ts *testServer) stream(ctx context.Context) sdsStream {
	ts.t.Helper()
	st, err := ts.client().StreamSecrets(ctx)
	if err != nil {
		ts.t.Fatal(err)
	}
	return wrapStream(st)
}

func wrapStream(st grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) *testStream {
	w := &testStream{BidiStreamingClient: st, ch: make(chan recvResult, 16)}
	go func() {
		for {
			r, err := st.Recv()
			w.ch <- recvResult{r, err}
			if err != nil {
				return
			}
		}
	}()
	return w
}

// recv waits for one response (or fails the test after d).
func recv(t *testing.T, st sdsStream, d time.Duration) *discoveryv3.DiscoveryResponse {
	t.Helper()
	resp, err := recvErr(st, d)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return resp
}

type recvResult struct {
	resp *discoveryv3.DiscoveryResponse
	err  error
}

// recvErr receives with a timeout (errTimeout).
func recvErr(st sdsStream, d time.Duration) (*discoveryv3.DiscoveryResponse, error) {
	select {
	case r := <-st.ch:
		return r.resp, r.err
	case <-time.After(d):
		return nil, errTimeout
	}
}

var errTimeout = fmt.Errorf("timed out waiting for a response")

func secretsByName(t *testing.T, resp *discoveryv3.DiscoveryResponse) map[string]*tlsv3.Secret {
	t.Helper()
	ss, err := sdsclient.Secrets(resp)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*tlsv3.Secret{}
	for _, s := range ss {
		if _, dup := out[s.GetName()]; dup {
			t.Fatalf("duplicate secret %q in one response", s.GetName())
		}
		out[s.GetName()] = s
	}
	return out
}

// svidOf parses a TlsCertificate secret with go-spiffe.
func svidOf(t *testing.T, s *tlsv3.Secret) *x509svid.SVID {
	t.Helper()
	tc := s.GetTlsCertificate()
	if tc == nil {
		t.Fatalf("secret %q is not a tls_certificate: %v", s.GetName(), s)
	}
	svid, err := x509svid.Parse(tc.GetCertificateChain().GetInlineBytes(), tc.GetPrivateKey().GetInlineBytes())
	if err != nil {
		t.Fatalf("secret %q: %v", s.GetName(), err)
	}
	return svid
}

// bundleOf extracts the bundle for td from a ValidationContext secret, in
// either form.
func bundleOf(t *testing.T, s *tlsv3.Secret, td string) (b *x509bundle.Bundle, spiffe bool) {
	t.Helper()
	vc := s.GetValidationContext()
	if vc == nil {
		t.Fatalf("secret %q is not a validation_context", s.GetName())
	}
	tdv := spiffeid.RequireTrustDomainFromString(td)
	if cv := vc.GetCustomValidatorConfig(); cv != nil {
		if cv.GetName() != SPIFFEValidatorName {
			t.Fatalf("validator %q", cv.GetName())
		}
		var cfg tlsv3.SPIFFECertValidatorConfig
		if err := cv.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			t.Fatal(err)
		}
		for _, d := range cfg.GetTrustDomains() {
			if d.GetName() == td {
				b, err := x509bundle.Parse(tdv, d.GetTrustBundle().GetInlineBytes())
				if err != nil {
					t.Fatal(err)
				}
				return b, true
			}
		}
		t.Fatalf("no trust domain %s in %v", td, &cfg)
	}
	b, err := x509bundle.Parse(tdv, vc.GetTrustedCa().GetInlineBytes())
	if err != nil {
		t.Fatal(err)
	}
	return b, false
}

// metric returns the value of a counter or gauge (summing label sets that
// match labels).
func metric(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
		return sum
	}
	return 0
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func secretv3Client(conn grpc.ClientConnInterface) secretv3.SecretDiscoveryServiceClient {
	return secretv3.NewSecretDiscoveryServiceClient(conn)
}
