package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// testTD is the trust domain used throughout the tests.
var testTD = spiffeid.RequireTrustDomainFromString("example.org")

// t0 is a fixed, second-aligned instant the explicit-time tests start from.
// (X.509 encodes validity with one-second precision.)
var t0 = time.Date(2031, time.March, 14, 15, 0, 0, 0, time.UTC)

// at returns t0's day at hh:mm:ss UTC, or the next day for "+1 hh:mm:ss".
func at(clock string) time.Time {
	day := 0
	if len(clock) > 3 && clock[:3] == "+1 " {
		day, clock = 1, clock[3:]
	}
	var h, m, s int
	if _, err := fmt.Sscanf(clock, "%d:%d:%d", &h, &m, &s); err != nil {
		panic(fmt.Sprintf("bad clock %q: %v", clock, err))
	}
	return time.Date(t0.Year(), t0.Month(), t0.Day()+day, h, m, s, 0, time.UTC)
}

func discardLog() *slog.Logger { return slogTo(io.Discard) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// testClock is an injectable clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(t time.Time) *testClock { return &testClock{now: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newTestCA builds a CA from cfg, filling in the logger, a fresh registry,
// the test trust domain and (for meshd's own CA) a state directory.
func newTestCA(t *testing.T, cfg Config) (*CA, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Log == nil {
		cfg.Log = discardLog()
	}
	cfg.Registerer = reg
	if cfg.TrustDomain.IsZero() {
		cfg.TrustDomain = testTD
	}
	if cfg.StateDir == "" && cfg.CACertFile == "" {
		cfg.StateDir = filepath.Join(t.TempDir(), "state")
	}
	ca, err := callNew(t, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return ca, reg
}

// callNew calls New, turning a panic into a test failure so that it cannot
// take the whole test binary down.
func callNew(t testing.TB, cfg Config) (ca *CA, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("New panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return New(cfg)
}

// metricValue returns the value of the (label-less) counter or gauge name.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		ms := mf.GetMetric()
		if len(ms) != 1 {
			t.Fatalf("metric %s has %d series, want 1", name, len(ms))
		}
		if c := ms[0].GetCounter(); c != nil {
			return c.GetValue()
		}
		return ms[0].GetGauge().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// metricSeries returns every series of the gauge name, keyed by its labels
// rendered as "id=...,status=...," (label names sorted, as Gather does).
func metricSeries(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, lp := range m.GetLabel() {
				key += lp.GetName() + "=" + lp.GetValue() + ","
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
}

func mustID(t testing.TB, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := randSerial()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// certSpec describes a test certificate.
type certSpec struct {
	cn        string
	notBefore time.Time
	notAfter  time.Time
	isCA      bool
	uris      []string
	key       crypto.Signer     // the certificate's own key (generated if nil)
	parent    *x509.Certificate // nil: self-signed
	parentKey crypto.Signer
}

// makeCert creates a certificate from spec and returns it with its key.
func makeCert(t testing.TB, spec certSpec) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := spec.key
	if key == nil {
		key = newP256(t)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: spec.cn},
		NotBefore:    spec.notBefore,
		NotAfter:     spec.notAfter,
	}
	if spec.isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.BasicConstraintsValid = true
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	for _, u := range spec.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	parent, parentKey := tmpl, key
	if spec.parent != nil {
		parent, parentKey = spec.parent, spec.parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func certPEM(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func keyPEM(t testing.TB, k crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// writeFile writes data to path and forces mode (independent of the umask).
func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func perm(t testing.TB, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// verifySVID checks svid with go-spiffe against bundle at time now, expecting
// want as its SPIFFE ID, and returns the verified chain (leaf first, root
// last).
func verifySVID(t *testing.T, svid *x509svid.SVID, bundle x509bundle.Source, now time.Time, want spiffeid.ID) []*x509.Certificate {
	t.Helper()
	id, chains, err := x509svid.Verify(svid.Certificates, bundle, x509svid.WithTime(now))
	if err != nil {
		t.Fatalf("x509svid.Verify: %v", err)
	}
	if id != want {
		t.Fatalf("verified SPIFFE ID %s, want %s", id, want)
	}
	if len(chains) == 0 {
		t.Fatal("x509svid.Verify returned no chain")
	}
	return chains[0]
}
