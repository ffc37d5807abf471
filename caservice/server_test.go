package caservice_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cav1 "github.com/meshd/meshd/api/ca/v1"
	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/issuer"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

const testPolicy = `
grants:
  - agent: spiffe://example.org/meshd/agent/node/*
    spiffeIDs: [spiffe://example.org/mesh/apps/virtualNode/serviceA]
    dnsNames: [servicea.apps.local, "*.servicea.apps.local"]
`

type env struct {
	t      *testing.T
	dir    string
	sock   string
	ca     *certs.CA
	srv    *caservice.Server
	reg    *prometheus.Registry
	tokens caservice.TokenStore
	stop   func()
}

func shortDir(t *testing.T) string {
	d, err := os.MkdirTemp("", "ca")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newEnv starts a CA service on a Unix socket with testPolicy.
func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the service's Config adjusted by opt.
func newEnvWith(t *testing.T, opt func(*caservice.Config)) *env {
	t.Helper()
	dir := shortDir(t)
	e := &env{t: t, dir: dir, sock: filepath.Join(dir, "ca.sock"), reg: prometheus.NewRegistry()}
	var err error
	e.ca, err = certs.New(certs.Config{TrustDomain: td, StateDir: filepath.Join(dir, "state"), PollInterval: 50 * time.Millisecond, Log: quiet(), Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := caservice.ParsePolicy([]byte(testPolicy), td)
	if err != nil {
		t.Fatal(err)
	}
	cfg := caservice.Config{CA: e.ca, StateDir: filepath.Join(dir, "state"), Policy: pol, Log: quiet(), Registerer: e.reg}
	if opt != nil {
		opt(&cfg)
	}
	e.srv, err = caservice.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.tokens = caservice.TokenStore{Dir: filepath.Join(dir, "state")}
	e.start()
	ctx, cancel := context.WithCancel(context.Background())
	caDone := make(chan struct{})
	go func() { e.ca.Run(ctx); close(caDone) }()
	t.Cleanup(func() { cancel(); <-caDone; e.stop() })
	return e
}

// start serves on the socket; stop (set here) ends it.
func (e *env) start() {
	lis, err := caservice.Listen("unix://"+e.sock, -1)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, lis) }()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Serve: %v", err)
		}
		e.stop = func() {}
	}
}

func (e *env) token(agent string) string {
	tok, _, err := e.tokens.Create(spiffeid.RequireFromString(agent), time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// client dials the service: anonymous when svid is nil, else mTLS.
func (e *env) client(svid *x509svid.SVID) cav1.CAClient {
	e.t.Helper()
	auth := tlsconfig.AuthorizeID(caservice.ServerID(td))
	creds := grpccredentials.TLSClientCredentials(e.ca.Bundle(), auth)
	if svid != nil {
		creds = grpccredentials.MTLSClientCredentials(svid, e.ca.Bundle(), auth)
	}
	conn, err := grpc.NewClient("unix://"+e.sock, grpc.WithTransportCredentials(creds))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return cav1.NewCAClient(conn)
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func csr(t *testing.T, key *ecdsa.PrivateKey, id string, dns ...string) []byte {
	t.Helper()
	var sid spiffeid.ID
	if id != "" {
		sid = spiffeid.RequireFromString(id)
	}
	der, err := caservice.NewCSR(key, sid, dns)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// enroll redeems a join token for agent and returns the agent SVID.
func (e *env) enroll(agent string) *x509svid.SVID {
	e.t.Helper()
	key := newKey(e.t)
	resp, err := e.client(nil).Enroll(context.Background(), &cav1.EnrollRequest{
		Credential: &cav1.EnrollRequest_JoinToken{JoinToken: e.token(agent)}, Csr: csr(e.t, key, ""),
	})
	if err != nil {
		e.t.Fatalf("enroll: %v", err)
	}
	return svidFrom(e.t, resp, key)
}

func svidFrom(t *testing.T, resp *cav1.Issued, key *ecdsa.PrivateKey) *x509svid.SVID {
	t.Helper()
	var chain []*x509.Certificate
	for _, der := range resp.GetChain() {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	id, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

func code(err error) codes.Code { return status.Code(err) }

func TestEnrollSignAndPolicy(t *testing.T) {
	e := newEnv(t)
	agent := e.enroll("spiffe://example.org/meshd/agent/node/n1")
	if agent.ID.String() != "spiffe://example.org/meshd/agent/node/n1" {
		t.Fatalf("agent ID %s", agent.ID)
	}
	if ttl := agent.Certificates[0].NotAfter.Sub(agent.Certificates[0].NotBefore); ttl < 23*time.Hour {
		t.Fatalf("agent certificate lives %s, want the policy's 24h", ttl)
	}
	c := e.client(agent)
	key := newKey(t)
	resp, err := c.Sign(context.Background(), &cav1.SignRequest{Csr: csr(t, key, "spiffe://example.org/mesh/apps/virtualNode/serviceA", "servicea.apps.local", "v2.servicea.apps.local")})
	if err != nil {
		t.Fatalf("sign granted identity: %v", err)
	}
	svid := svidFrom(t, resp, key)
	b, err := x509bundle.ParseRaw(td, concat(resp.GetBundle().GetRoots()))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, b); err != nil {
		t.Fatalf("signed SVID does not verify against the served bundle: %v", err)
	}
	if got := svid.Certificates[0].DNSNames; len(got) != 2 || got[0] != "servicea.apps.local" {
		t.Fatalf("DNS SANs %v", got)
	}
	if svid.Certificates[0].IsCA {
		t.Fatal("workload certificate is a CA")
	}

	tests := []struct {
		name   string
		client cav1.CAClient
		csr    []byte
		want   codes.Code
		reason string
	}{
		{"no client certificate", e.client(nil), csr(t, key, "spiffe://example.org/mesh/apps/virtualNode/serviceA"), codes.Unauthenticated, "no_agent_certificate"},
		{"ID not granted", c, csr(t, key, "spiffe://example.org/mesh/apps/virtualNode/serviceB"), codes.PermissionDenied, "not_granted"},
		{"extra DNS SAN", c, csr(t, key, "spiffe://example.org/mesh/apps/virtualNode/serviceA", "servicea.apps.local", "evil.example.com"), codes.PermissionDenied, "not_granted"},
		{"wildcard spans two labels", c, csr(t, key, "spiffe://example.org/mesh/apps/virtualNode/serviceA", "a.b.servicea.apps.local"), codes.PermissionDenied, "not_granted"},
		{"agent ID requested", c, csr(t, key, "spiffe://example.org/meshd/agent/node/n2"), codes.InvalidArgument, "bad_csr"},
		{"CA:true", c, caCSR(t, key), codes.InvalidArgument, "bad_csr"},
		{"garbage", c, []byte("not a csr"), codes.InvalidArgument, "bad_csr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(counter(t, e.reg, "meshd_ca_denied_total", tc.reason))
			_, err := tc.client.Sign(context.Background(), &cav1.SignRequest{Csr: tc.csr})
			if code(err) != tc.want {
				t.Fatalf("got %v, want %s", err, tc.want)
			}
			if after := testutil.ToFloat64(counter(t, e.reg, "meshd_ca_denied_total", tc.reason)); after != before+1 {
				t.Fatalf("meshd_ca_denied_total{reason=%q} went %v → %v", tc.reason, before, after)
			}
		})
	}

	// A workload certificate cannot act as an agent.
	_, err = e.client(svid).Sign(context.Background(), &cav1.SignRequest{Csr: csr(t, key, "spiffe://example.org/mesh/apps/virtualNode/serviceA")})
	if err == nil || code(err) == codes.OK {
		t.Fatal("a workload SVID was accepted as an agent certificate")
	}
	// Nor can it renew itself as one.
	if _, err := e.client(nil).RenewAgent(context.Background(), &cav1.RenewAgentRequest{Csr: csr(t, key, "")}); code(err) != codes.Unauthenticated {
		t.Fatalf("anonymous RenewAgent: %v", err)
	}
	resp, err = c.RenewAgent(context.Background(), &cav1.RenewAgentRequest{Csr: csr(t, key, "")})
	if err != nil {
		t.Fatalf("RenewAgent: %v", err)
	}
	if id, _ := x509svid.IDFromCert(mustParse(t, resp.GetChain()[0])); id != agent.ID {
		t.Fatalf("renewed agent certificate is for %s", id)
	}
}

func TestJoinTokensAreSingleUse(t *testing.T) {
	e := newEnv(t)
	tok := e.token("spiffe://example.org/meshd/agent/node/n1")
	req := func(tok string, csrDER []byte) error {
		_, err := e.client(nil).Enroll(context.Background(), &cav1.EnrollRequest{Credential: &cav1.EnrollRequest_JoinToken{JoinToken: tok}, Csr: csrDER})
		return err
	}
	key := newKey(t)
	// A bad CSR does not burn the token.
	if err := req(tok, csr(t, key, "spiffe://example.org/mesh/apps/virtualNode/serviceA")); code(err) != codes.InvalidArgument {
		t.Fatalf("enrollment CSR with a SAN: %v", err)
	}
	if err := req(tok, csr(t, key, "")); err != nil {
		t.Fatalf("first use: %v", err)
	}
	err := req(tok, csr(t, key, ""))
	if code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replay: %v", err)
	}
	if err := req("meshd-jt.forged", csr(t, key, "")); code(err) != codes.PermissionDenied {
		t.Fatalf("unknown token: %v", err)
	}
	if err := req("", csr(t, key, "")); code(err) != codes.PermissionDenied {
		t.Fatalf("empty token: %v", err)
	}
	_, err = e.client(nil).Enroll(context.Background(), &cav1.EnrollRequest{Csr: csr(t, key, "")})
	if code(err) != codes.InvalidArgument {
		t.Fatalf("no credential: %v", err)
	}
	_, err = e.client(nil).Enroll(context.Background(), &cav1.EnrollRequest{
		Credential: &cav1.EnrollRequest_KubernetesToken{KubernetesToken: "x.y.z"}, Csr: csr(t, key, ""),
	})
	if code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "not configured") {
		t.Fatalf("kubernetes enrollment without configuration: %v", err)
	}
	for reason, want := range map[string]float64{"join_token_used": 1, "join_token_unknown": 2, "kubernetes_not_configured": 1} {
		if got := testutil.ToFloat64(counter(t, e.reg, "meshd_ca_denied_total", reason)); got != want {
			t.Errorf("meshd_ca_denied_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

func TestOversizedRequest(t *testing.T) {
	e := newEnv(t)
	_, err := e.client(nil).Enroll(context.Background(), &cav1.EnrollRequest{
		Credential: &cav1.EnrollRequest_JoinToken{JoinToken: strings.Repeat("x", caservice.MaxRequestBytes+1)},
	})
	if code(err) != codes.ResourceExhausted {
		t.Fatalf("oversized request: %v", err)
	}
}

// TestRemoteAcrossRestartAndRollover drives issuer.Remote (what `meshd sds
// --ca-service` runs): it enrolls, keeps working across a CA service
// restart, and follows a CA rollover through its bundle sync.
func TestRemoteAcrossRestartAndRollover(t *testing.T) {
	e := newEnv(t)
	r, err := issuer.NewRemote(issuer.RemoteConfig{
		Addr: "unix://" + e.sock, TrustDomain: td, Bootstrap: e.ca.Bundle(),
		JoinToken:  e.token("spiffe://example.org/meshd/agent/node/n1"),
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		SyncInterval: 200 * time.Millisecond,
		Log:          quiet(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Remote.Run: %v", err)
		}
	}()
	waitFor(t, "enrollment", func() bool { return r.Ready() == nil })
	id := spiffeid.RequireFromString("spiffe://example.org/mesh/apps/virtualNode/serviceA")
	svid, err := r.Issue(id, []string{"servicea.apps.local"})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates, r.Bundle()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Issue(spiffeid.RequireFromString("spiffe://example.org/mesh/apps/virtualNode/serviceB"), nil); code(err) != codes.PermissionDenied {
		t.Fatalf("ungranted Issue: %v", err)
	}

	// The CA service goes away: Issue fails (the SDS cache keeps serving
	// what it has), and works again once the service is back.
	e.stop()
	if _, err := r.Issue(id, nil); err == nil {
		t.Fatal("Issue succeeded with the CA service down")
	}
	e.start()
	waitFor(t, "Issue after the CA service restarted", func() bool {
		_, err := r.Issue(id, nil)
		return err == nil
	})

	// Rollover: the next root reaches the sidecar's bundle at its next sync.
	changed := r.Changed()
	st := certs.Store{Dir: filepath.Join(e.dir, "state")}
	if _, err := st.Update(func(s *certs.State) (*certs.State, bool, error) {
		p := certs.Policy{TrustDomain: td, KeyType: s.KeyType, CATTL: time.Duration(s.CATTL)}
		_, err := p.Rotate(s, time.Now(), time.Now())
		return s, err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the rollover did not reach the sidecar")
	}
	waitFor(t, "two roots in the sidecar's bundle", func() bool { return len(r.Bundle().X509Authorities()) == 2 })
	next, err := r.Issue(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, chains, err := x509svid.Verify(next.Certificates, r.Bundle())
	if err != nil {
		t.Fatal(err)
	}
	if root := chains[0][len(chains[0])-1]; root.Equal(svid.Certificates[len(svid.Certificates)-1]) || !root.Equal(r.Bundle().X509Authorities()[0]) {
		t.Fatal("a certificate issued after the rollover is not signed by the new root")
	}
	if _, _, err := x509svid.Verify(svid.Certificates, r.Bundle()); err != nil {
		t.Fatalf("an SVID from the old root no longer verifies: %v", err)
	}
}

// TestRemoteClockSkew: a sidecar whose clock is minutes behind the CA
// service still enrolls and accepts its certificates.
func TestRemoteClockSkew(t *testing.T) {
	e := newEnv(t)
	r, err := issuer.NewRemote(issuer.RemoteConfig{
		Addr: "unix://" + e.sock, TrustDomain: td, Bootstrap: e.ca.Bundle(),
		JoinToken: e.token("spiffe://example.org/meshd/agent/node/n1"),
		Now:       func() time.Time { return time.Now().Add(-5 * time.Minute) },
		Log:       quiet(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "enrollment with a skewed clock", func() bool { return r.Ready() == nil })
	if _, err := r.Issue(spiffeid.RequireFromString("spiffe://example.org/mesh/apps/virtualNode/serviceA"), nil); err != nil {
		t.Fatalf("Issue with a skewed clock: %v", err)
	}
}

// TestRemoteRefusedToken: a used join token stops the sidecar with a clear
// error instead of retrying forever.
func TestRemoteRefusedToken(t *testing.T) {
	e := newEnv(t)
	tok := e.token("spiffe://example.org/meshd/agent/node/n1")
	e.enrollWith(tok)
	r, err := issuer.NewRemote(issuer.RemoteConfig{
		Addr: "unix://" + e.sock, TrustDomain: td, Bootstrap: e.ca.Bundle(), JoinToken: tok,
		Log: quiet(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(context.Background())
	if !errors.Is(err, issuer.ErrCredentialRefused) || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("Run with a used token: %v", err)
	}
}

func (e *env) enrollWith(tok string) {
	e.t.Helper()
	if _, err := e.client(nil).Enroll(context.Background(), &cav1.EnrollRequest{
		Credential: &cav1.EnrollRequest_JoinToken{JoinToken: tok}, Csr: csr(e.t, newKey(e.t), ""),
	}); err != nil {
		e.t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func counter(t *testing.T, g prometheus.Gatherer, name, reason string) prometheus.Collector {
	t.Helper()
	return &gatheredCounter{g: g, name: name, reason: reason}
}

// gatheredCounter exposes one labelled counter of a registry as a
// Collector for testutil.ToFloat64 (0 when the series does not exist yet).
type gatheredCounter struct {
	g            prometheus.Gatherer
	name, reason string
}

func (c *gatheredCounter) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc(c.name, "test", nil, nil)
}

func (c *gatheredCounter) Collect(ch chan<- prometheus.Metric) {
	v := 0.0
	mfs, _ := c.g.Gather()
	for _, mf := range mfs {
		if mf.GetName() != c.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == c.reason {
					v = m.GetCounter().GetValue()
				}
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(c.name, "test", nil, nil), prometheus.CounterValue, v)
}

func concat(bs [][]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

func mustParse(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// caCSR asks for CA:true.
func caCSR(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	bc, err := asn1.Marshal(struct {
		IsCA bool
	}{true})
	if err != nil {
		t.Fatal(err)
	}
	u := spiffeid.RequireFromString("spiffe://example.org/mesh/apps/virtualNode/serviceA").URL()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs:            []*url.URL{u},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// metric sums the gauges and counters called name in g whose labels
// include want.
func metric(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	v := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, w := range want {
				if labels[k] != w {
					continue series
				}
			}
			v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return v
}

// TestRemoteSyncsWithoutHoldingAConnection: a sidecar fetches the bundle
// every SyncInterval (±25 %), holds no connection between fetches, and has
// a newly published root within one interval.
func TestRemoteSyncsWithoutHoldingAConnection(t *testing.T) {
	e := newEnv(t)
	const interval = time.Second
	r, err := issuer.NewRemote(issuer.RemoteConfig{
		Addr: "unix://" + e.sock, TrustDomain: td, Bootstrap: e.ca.Bundle(),
		JoinToken:    e.token("spiffe://example.org/meshd/agent/node/n1"),
		SyncInterval: interval, IdleTimeout: 100 * time.Millisecond,
		Log: quiet(), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "enrollment", func() bool { return r.Ready() == nil })
	conns := func() float64 { return metric(t, e.reg, "meshd_ca_connections", nil) }
	fetches := func() float64 {
		return metric(t, e.reg, "meshd_ca_requests_total", map[string]string{"method": "WatchBundle"})
	}
	waitFor(t, "no connection after enrollment", func() bool { return conns() == 0 })

	// Fetches come every interval ±25 %, not more often, and each
	// connection closes after the idle timeout.
	f0, t0 := fetches(), time.Now()
	waitFor(t, "a bundle fetch", func() bool { return fetches() > f0 })
	waitFor(t, "the fetch's connection closed", func() bool { return conns() == 0 })
	time.Sleep(3*interval - time.Since(t0))
	if n := fetches() - f0; n < 2 || n > 4 {
		t.Fatalf("%v bundle fetches in 3 sync intervals, want 2 to 4", n)
	}

	// A root published now (signing in an hour, as `meshd ca rotate`
	// does) is in the sidecar's bundle within one interval and the jitter.
	st := certs.Store{Dir: filepath.Join(e.dir, "state")}
	if _, err := st.Update(func(s *certs.State) (*certs.State, bool, error) {
		p := certs.Policy{TrustDomain: td, KeyType: s.KeyType, CATTL: time.Duration(s.CATTL)}
		_, err := p.Rotate(s, time.Now(), time.Now().Add(time.Hour))
		return s, err == nil, err
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the CA service publishing the next root", func() bool { return len(e.ca.Bundle().X509Authorities()) == 2 })
	published := time.Now()
	waitFor(t, "the next root in the sidecar's bundle", func() bool { return len(r.Bundle().X509Authorities()) == 2 })
	if took, limit := time.Since(published), interval*5/4+time.Second; took > limit {
		t.Fatalf("the next root reached the sidecar after %s, more than the sync interval allows (%s)", took, limit)
	}
}

// TestConnectionLimits: the service closes a connection idle for
// MaxConnectionIdle, keeps one with a stream in progress, and ends that
// stream after MaxConnectionAge + grace; a client of the old kind (a
// WatchBundle stream held open) reconnects and is sent the bundle again.
func TestConnectionLimits(t *testing.T) {
	const idle, age, grace = 200 * time.Millisecond, 3 * time.Second, 200 * time.Millisecond
	e := newEnvWith(t, func(c *caservice.Config) {
		c.MaxConnectionIdle, c.MaxConnectionAge, c.MaxConnectionAgeGrace = idle, age, grace
	})
	conns := func() float64 { return metric(t, e.reg, "meshd_ca_connections", nil) }
	agent := e.enroll("spiffe://example.org/meshd/agent/node/n1")
	c := e.client(agent) // grpc-go's own idle timeout is 30 minutes
	if _, err := c.Sign(context.Background(), &cav1.SignRequest{Csr: csr(t, newKey(t), "spiffe://example.org/mesh/apps/virtualNode/serviceA")}); err != nil {
		t.Fatal(err)
	}
	if conns() == 0 {
		t.Fatal("no open connection counted right after a call")
	}
	t0 := time.Now()
	waitFor(t, "idle connections closed", func() bool { return conns() == 0 })
	if took := time.Since(t0); took > 2*idle+time.Second { // well before MaxConnectionAge
		t.Fatalf("idle connections closed after %s; MaxConnectionIdle is %s", took, idle)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*age+5*time.Second)
	defer cancel()
	stream, err := c.WatchBundle(ctx, &cav1.WatchBundleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	_, err = stream.Recv()
	took := time.Since(t0)
	if code(err) != codes.Unavailable {
		t.Fatalf("a WatchBundle stream past MaxConnectionAge ended with %v, want Unavailable", err)
	}
	if took < age*9/10-idle || took > age*11/10+grace+2*time.Second {
		t.Fatalf("a WatchBundle stream ended %s after it started; MaxConnectionAge %s ±10 %% + grace %s (and not MaxConnectionIdle %s)", took, age, grace, idle)
	}
	stream, err = c.WatchBundle(ctx, &cav1.WatchBundleRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := stream.Recv(); err != nil || len(b.GetRoots()) == 0 {
		t.Fatalf("WatchBundle after the reconnect: %v %v", b, err)
	}
}

// TestHandshakesBounded: connections that have not finished their TLS
// handshake are accepted 32 at a time (the rest wait in the kernel's
// queue), and a connection closed mid-handshake gives its slot back.
func TestHandshakesBounded(t *testing.T) {
	const maxHandshakes = 32 // caservice.maxHandshakes
	e := newEnv(t)
	conns := func() float64 { return metric(t, e.reg, "meshd_ca_connections", nil) }
	var stalled []net.Conn
	defer func() {
		for _, c := range stalled {
			c.Close()
		}
	}()
	for range maxHandshakes + 8 { // they never send a ClientHello
		c, err := net.Dial("unix", e.sock)
		if err != nil {
			t.Fatal(err)
		}
		stalled = append(stalled, c)
	}
	waitFor(t, "the first connections accepted", func() bool { return conns() == maxHandshakes })
	time.Sleep(200 * time.Millisecond)
	if n := conns(); n != maxHandshakes {
		t.Fatalf("%v connections accepted while %d handshakes were stalled", n, maxHandshakes)
	}
	for _, c := range stalled {
		c.Close()
	}
	stalled = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.client(nil).Enroll(ctx, &cav1.EnrollRequest{
		Credential: &cav1.EnrollRequest_JoinToken{JoinToken: e.token("spiffe://example.org/meshd/agent/node/n1")}, Csr: csr(t, newKey(t), ""),
	}); err != nil {
		t.Fatalf("enroll after the stalled connections closed: %v", err)
	}
}
