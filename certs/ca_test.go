package certs

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshd/meshd/internal/testutil"
)

var webID = spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/web")

func mustIssue(t *testing.T, ca *CA, id spiffeid.ID, dns ...string) *x509svid.SVID {
	t.Helper()
	svid, err := ca.Issue(id, dns)
	if err != nil {
		t.Fatalf("Issue(%s): %v", id, err)
	}
	return svid
}

func signedBy(svid *x509svid.SVID, root *x509.Certificate) bool {
	return svid.Certificates[len(svid.Certificates)-1].CheckSignatureFrom(root) == nil
}

// assertBundle checks that b holds exactly roots (in any order).
func assertBundle(t *testing.T, b *x509bundle.Bundle, roots ...*x509.Certificate) {
	t.Helper()
	got := b.X509Authorities()
	ok := len(got) == len(roots)
	for _, r := range roots {
		ok = ok && b.HasX509Authority(r)
	}
	if !ok {
		t.Fatalf("bundle holds %d roots %v, want %d %v", len(got), rootIDs(got), len(roots), rootIDs(roots))
	}
	if b.TrustDomain() != testTD {
		t.Fatalf("bundle for %s, want %s", b.TrustDomain(), testTD)
	}
}

func rootIDs(cs []*x509.Certificate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = authorityID(c)[:8]
	}
	return out
}

func fired(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestNewCreatesState(t *testing.T) {
	clock := newClock(t0)
	dir := filepath.Join(t.TempDir(), "state")
	ca, reg := newTestCA(t, Config{StateDir: dir, Now: clock.Now, CATTL: testCATTL, SVIDTTL: time.Hour})
	if got := perm(t, dir); got != 0o700 {
		t.Errorf("state dir mode %04o, want 0700", got)
	}
	if got := perm(t, filepath.Join(dir, StateFile)); got != 0o600 {
		t.Errorf("ca.json mode %04o, want 0600", got)
	}
	s := ca.State()
	if s == nil || len(s.Authorities) != 1 || s.Active() == nil {
		t.Fatalf("state %+v, want one active root", s)
	}
	root := s.Active().Cert
	assertBundle(t, ca.Bundle(), root)
	if !root.NotAfter.Equal(t0.Add(testCATTL)) || s.KeyType != KeyECDSAP256 || s.TrustDomain != "example.org" {
		t.Errorf("root valid until %s, key type %s, td %s", root.NotAfter, s.KeyType, s.TrustDomain)
	}
	if ca.TrustDomain() != testTD || ca.SVIDTTL() != time.Hour {
		t.Errorf("TrustDomain %s SVIDTTL %s", ca.TrustDomain(), ca.SVIDTTL())
	}
	if got := metricSeries(t, reg, "meshd_ca_root_expiry_timestamp_seconds"); len(got) != 1 ||
		got["id="+authorityID(root)+",status=active,"] != float64(root.NotAfter.Unix()) {
		t.Errorf("root expiry metric %v", got)
	}
	// The state on disk is what the CA serves.
	onDisk, err := Store{Dir: dir}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !onDisk.Active().Cert.Equal(root) {
		t.Error("ca.json holds another root than the CA serves")
	}
}

func TestNewInExistingEmptyDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, _ := newTestCA(t, Config{StateDir: dir})
	if ca.State().Active() == nil {
		t.Fatal("no active root")
	}
}

func TestNewRestartKeepsBundle(t *testing.T) {
	clock := newClock(t0)
	dir := filepath.Join(t.TempDir(), "state")
	cfg := Config{StateDir: dir, Now: clock.Now, CATTL: testCATTL, SVIDTTL: time.Hour}
	ca1, _ := newTestCA(t, cfg)
	file := filepath.Join(dir, StateFile)
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	svid1 := mustIssue(t, ca1, webID)

	clock.Set(t0.Add(time.Hour))
	ca2, _ := newTestCA(t, cfg)
	if !ca2.Bundle().Equal(ca1.Bundle()) {
		t.Fatal("restart changed the trust bundle")
	}
	if ca2.State().Active().ID() != ca1.State().Active().ID() {
		t.Fatal("restart changed the signing root")
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Error("restart rewrote ca.json although nothing was due")
	}
	svid2 := mustIssue(t, ca2, webID)
	verifySVID(t, svid1, ca2.Bundle(), clock.Now(), webID)
	verifySVID(t, svid2, ca1.Bundle(), clock.Now(), webID)

	// A restart after the half-life prepares and persists the next root.
	a := ca1.State().Active().Cert
	clock.Set(PrepareAt(a))
	ca3, _ := newTestCA(t, cfg)
	if ca3.State().Prepared() == nil {
		t.Fatal("no root prepared on a restart after the half-life")
	}
	assertBundle(t, ca3.Bundle(), a, ca3.State().Prepared().Cert)
	if !signedBy(mustIssue(t, ca3, webID), a) {
		t.Error("the prepared root signs before its activation time")
	}
	ca4, _ := newTestCA(t, cfg)
	if !ca4.Bundle().Equal(ca3.Bundle()) {
		t.Error("the prepared root was not persisted")
	}
}

func TestNewConfigErrors(t *testing.T) {
	cases := []struct {
		name    string
		cfg     func(c *Config)
		wantErr string
	}{
		{"no logger", func(c *Config) { c.Log = nil }, "Log is required"},
		{"no registerer", func(c *Config) { c.Registerer = nil }, "Registerer is required"},
		{"no trust domain", func(c *Config) { c.TrustDomain = spiffeid.TrustDomain{} }, "trust domain is required"},
		{"no state dir", func(c *Config) { c.StateDir = "" }, "--state-dir"},
		{"ca cert without key", func(c *Config) { c.CACertFile = "ca.pem" }, "--ca-cert and --ca-key go together"},
		{"ca key without cert", func(c *Config) { c.CAKeyFile = "ca.key" }, "--ca-cert and --ca-key go together"},
		{"ca-ttl just under 6 × svid-ttl", func(c *Config) { c.CATTL, c.SVIDTTL = 6*time.Hour-time.Second, time.Hour }, "--ca-ttl 5h59m59s must be at least 6 × --svid-ttl (1h0m0s)"},
		{"default ca-ttl with a long svid-ttl", func(c *Config) { c.SVIDTTL = 5*24*time.Hour + time.Second }, "--ca-ttl 720h0m0s must be at least 6"},
		{"short ca-ttl with the default svid-ttl", func(c *Config) { c.CATTL = 5 * time.Hour }, "--ca-ttl 5h0m0s must be at least 6"},
		{"svid-ttl below the minimum", func(c *Config) { c.SVIDTTL = MinSVIDTTL - time.Millisecond }, "--svid-ttl 9.999s is below the minimum 10s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			cfg := Config{TrustDomain: testTD, StateDir: dir, Log: discardLog(), Registerer: prometheus.NewRegistry()}
			tc.cfg(&cfg)
			ca, err := callNew(t, cfg)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("New = %v, %v; want an error containing %q", ca, err, tc.wantErr)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a refused config created the state dir (%v)", err)
			}
		})
	}

	t.Run("ca-ttl exactly 6 × svid-ttl", func(t *testing.T) {
		ca, _ := newTestCA(t, Config{CATTL: 6 * time.Hour, SVIDTTL: time.Hour})
		if got := ca.State().CATTL; time.Duration(got) != 6*time.Hour {
			t.Errorf("state caTTL %s", time.Duration(got))
		}
	})
	t.Run("metrics registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		cfg := Config{TrustDomain: testTD, StateDir: filepath.Join(t.TempDir(), "s"), Log: discardLog(), Registerer: reg}
		if _, err := callNew(t, cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := callNew(t, cfg); err == nil || !strings.Contains(err.Error(), "register metrics") {
			t.Errorf("second New on one registry: %v, want a registration error", err)
		}
	})
}

func TestNewTrustDomainMismatch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	newTestCA(t, Config{StateDir: dir})
	before, _ := os.ReadFile(filepath.Join(dir, StateFile))
	_, err := callNew(t, Config{TrustDomain: spiffeid.RequireTrustDomainFromString("other.org"), StateDir: dir, Log: discardLog(), Registerer: prometheus.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), `"example.org"`) || !strings.Contains(err.Error(), `"other.org"`) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("New for other.org on an example.org state dir: %v, want a refusal naming both", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, StateFile)); string(after) != string(before) {
		t.Fatal("the refused New modified the state")
	}
}

func TestNewCorruptedState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, StateFile)
	garbage := []byte(`{"version":1,"trustDomain":"example.org",`)
	writeFile(t, file, garbage, 0o600)
	_, err := callNew(t, Config{TrustDomain: testTD, StateDir: dir, Log: discardLog(), Registerer: prometheus.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), "corrupted") || !strings.Contains(err.Error(), file) {
		t.Fatalf("New on a corrupted ca.json: %v, want an error saying %s is corrupted", err, file)
	}
	if got, _ := os.ReadFile(file); string(got) != string(garbage) {
		t.Fatal("New replaced a corrupted state with a new CA")
	}
}

func TestIssue(t *testing.T) {
	now := t0.Add(10 * time.Minute)
	clock := newClock(now)
	ca, reg := newTestCA(t, Config{Now: clock.Now, CATTL: 24 * time.Hour, SVIDTTL: time.Hour})
	root := ca.State().Active().Cert
	dns := []string{"web.default.svc.cluster.local", "web"}

	svid := mustIssue(t, ca, webID, dns...)
	if svid.ID != webID {
		t.Errorf("SVID ID %s, want %s", svid.ID, webID)
	}
	if len(svid.Certificates) != 1 {
		t.Fatalf("chain of %d certificates, want only the leaf (the root is in the bundle)", len(svid.Certificates))
	}
	chain := verifySVID(t, svid, ca.Bundle(), now, webID)
	if !chain[len(chain)-1].Equal(root) {
		t.Error("SVID does not chain to the active root")
	}
	leaf := svid.Certificates[0]
	if !slices.Equal(leaf.DNSNames, dns) || leaf.Subject.CommonName != dns[0] {
		t.Errorf("DNS SANs %v CN %q, want %v and CN %q", leaf.DNSNames, leaf.Subject.CommonName, dns, dns[0])
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != webID.String() {
		t.Errorf("URI SANs %v, want [%s]", leaf.URIs, webID)
	}
	if want := now.Add(-SVIDBackdate); !leaf.NotBefore.Equal(want) {
		t.Errorf("NotBefore %s, want now-%s = %s", leaf.NotBefore, SVIDBackdate, want)
	}
	if want := now.Add(time.Hour); !leaf.NotAfter.Equal(want) {
		t.Errorf("NotAfter %s, want now+TTL = %s", leaf.NotAfter, want)
	}
	if leaf.IsCA || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 || leaf.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != 0 {
		t.Errorf("leaf IsCA %v key usage %b", leaf.IsCA, leaf.KeyUsage)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("ext key usage %v, want server and client auth", leaf.ExtKeyUsage)
	}
	if keyMatches(svid.PrivateKey, leaf) != nil {
		t.Error("SVID private key does not match the leaf")
	}
	if kt, _ := keyTypeOf(leaf.PublicKey); kt != KeyECDSAP256 {
		t.Errorf("leaf key type %s, want the default %s", kt, KeyECDSAP256)
	}
	// The validity window is enforced by the verifier.
	if _, _, err := x509svid.Verify(svid.Certificates, ca.Bundle(), x509svid.WithTime(leaf.NotAfter.Add(time.Second))); err == nil {
		t.Error("SVID verifies after its NotAfter")
	}
	if _, _, err := x509svid.Verify(svid.Certificates, ca.Bundle(), x509svid.WithTime(leaf.NotBefore.Add(-time.Second))); err == nil {
		t.Error("SVID verifies before its NotBefore")
	}

	// Each SVID gets its own key and serial; no DNS SANs means no CN.
	other := mustIssue(t, ca, mustID(t, "spiffe://example.org/db"))
	verifySVID(t, other, ca.Bundle(), now, mustID(t, "spiffe://example.org/db"))
	l2 := other.Certificates[0]
	if l2.SerialNumber.Cmp(leaf.SerialNumber) == 0 || keyMatches(other.PrivateKey, leaf) == nil {
		t.Error("two SVIDs share a serial or a key")
	}
	if len(l2.DNSNames) != 0 || l2.Subject.CommonName != "" {
		t.Errorf("SVID without DNS names has DNS %v CN %q", l2.DNSNames, l2.Subject.CommonName)
	}
	if got := metricValue(t, reg, "meshd_ca_svids_issued_total"); got != 2 {
		t.Errorf("issued counter %v, want 2", got)
	}
	if got := metricValue(t, reg, "meshd_ca_svid_issue_errors_total"); got != 0 {
		t.Errorf("issue error counter %v, want 0", got)
	}
}

func TestIssueOutsideTrustDomain(t *testing.T) {
	ca, reg := newTestCA(t, Config{})
	for _, id := range []spiffeid.ID{
		mustID(t, "spiffe://other.org/ns/default/sa/web"),
		mustID(t, "spiffe://example.org.evil.com/web"),
		{},
	} {
		svid, err := ca.Issue(id, []string{"web"})
		if err == nil || svid != nil {
			t.Errorf("Issue(%q) = %v, %v; want an error", id, svid, err)
			continue
		}
		if !strings.Contains(err.Error(), "trust domain example.org") {
			t.Errorf("Issue(%q) error %q does not explain the trust domain", id, err)
		}
	}
	if got := metricValue(t, reg, "meshd_ca_svid_issue_errors_total"); got != 3 {
		t.Errorf("issue error counter %v, want 3", got)
	}
	if got := metricValue(t, reg, "meshd_ca_svids_issued_total"); got != 0 {
		t.Errorf("issued counter %v, want 0", got)
	}
}

// TestIssueBackdate: NotBefore is backdated by SVIDBackdate, but by no more
// than a tenth of a short TTL.
func TestIssueBackdate(t *testing.T) {
	for _, tc := range []struct {
		ttl, backdate time.Duration
	}{
		{time.Hour, SVIDBackdate},
		{100 * time.Second, SVIDBackdate},
		{30 * time.Second, 3 * time.Second},
		{10 * time.Second, time.Second},
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			clock := newClock(t0)
			ca, _ := newTestCA(t, Config{Now: clock.Now, CATTL: 24 * time.Hour, SVIDTTL: tc.ttl})
			leaf := mustIssue(t, ca, webID).Certificates[0]
			if want := t0.Add(-tc.backdate); !leaf.NotBefore.Equal(want) {
				t.Errorf("NotBefore %s, want now-%s", leaf.NotBefore, tc.backdate)
			}
			if want := t0.Add(tc.ttl); !leaf.NotAfter.Equal(want) {
				t.Errorf("NotAfter %s, want now+%s", leaf.NotAfter, tc.ttl)
			}
		})
	}
}

// TestIssuedSVIDNotImmediatelyDue: a freshly issued SVID must not already
// be due for renewal (sds/cache.go counts that as a failed renewal), for
// every TTL New accepts and at any sub-second clock phase. ca.go caps the
// backdate at a tenth of the TTL for exactly this reason.
func TestIssuedSVIDNotImmediatelyDue(t *testing.T) {
	for _, ttl := range []time.Duration{MinSVIDTTL, 11 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute, time.Hour} {
		t.Run(ttl.String(), func(t *testing.T) {
			clock := newClock(t0)
			ca, _ := newTestCA(t, Config{Now: clock.Now, CATTL: 24 * time.Hour, SVIDTTL: ttl})
			var bad []string
			total := 0
			for _, phase := range []time.Duration{0, 100 * time.Millisecond, 500 * time.Millisecond, 900 * time.Millisecond, 999 * time.Millisecond} {
				now := t0.Add(time.Minute + phase)
				clock.Set(now)
				for range 10 {
					total++
					leaf := mustIssue(t, ca, webID).Certificates[0]
					if leaf.NotBefore.After(now) || !leaf.NotAfter.After(now) {
						bad = append(bad, fmt.Sprintf("issued at +%s: valid %s..%s does not cover now", phase, leaf.NotBefore.Format(time.TimeOnly), leaf.NotAfter.Format(time.TimeOnly)))
					} else if ShouldRotate(now, leaf) {
						bad = append(bad, fmt.Sprintf("issued at :%s: valid %s..%s, due at %s", now.Format("05.000"), leaf.NotBefore.Format("04:05"), leaf.NotAfter.Format("04:05"), RotationTime(leaf).Format("04:05.000")))
					}
				}
			}
			if len(bad) > 0 {
				t.Errorf("%d of %d SVIDs with TTL %s were due for renewal (or not valid) when issued, e.g.:\n  %s",
					len(bad), total, ttl, strings.Join(bad[:min(len(bad), 3)], "\n  "))
			}
		})
	}
}

// TestIssueCappedAtRootNotAfter: an SVID never outlives the root that signed
// it. (With Run keeping the CA current this only happens when the
// schedule fell behind, so the clock is moved without advancing.)
func TestIssueCappedAtRootNotAfter(t *testing.T) {
	clock := newClock(t0)
	ca, _ := newTestCA(t, Config{Now: clock.Now, CATTL: testCATTL, SVIDTTL: time.Hour})
	root := ca.State().Active().Cert

	clock.Set(root.NotAfter.Add(-time.Hour - time.Second))
	if got := mustIssue(t, ca, webID).Certificates[0].NotAfter; !got.Equal(clock.Now().Add(time.Hour)) {
		t.Errorf("an hour and a second before the root expires: NotAfter %s, want the full TTL", got)
	}
	clock.Set(root.NotAfter.Add(-20 * time.Minute))
	svid := mustIssue(t, ca, webID)
	if got := svid.Certificates[0].NotAfter; !got.Equal(root.NotAfter) {
		t.Errorf("20 min before the root expires: NotAfter %s, want the root's %s", got, root.NotAfter)
	}
	verifySVID(t, svid, ca.Bundle(), clock.Now(), webID)

	clock.Set(root.NotAfter)
	if svid, err := ca.Issue(webID, nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("Issue with an expired root = %v, %v; want an error", svid, err)
	}
}

// TestCAKeyTypes creates a CA with each root key type, restarts it from
// the state file, and checks that issued SVIDs verify.
func TestCAKeyTypes(t *testing.T) {
	for _, kt := range KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			clock := newClock(t0)
			cfg := Config{StateDir: filepath.Join(t.TempDir(), "state"), CAKeyType: kt, Now: clock.Now, CATTL: testCATTL, SVIDTTL: time.Hour}
			ca, _ := newTestCA(t, cfg)
			root := ca.State().Active().Cert
			if got, err := keyTypeOf(root.PublicKey); err != nil || got != kt {
				t.Fatalf("root key type %s (%v), want %s", got, err, kt)
			}
			if ca.State().KeyType != kt {
				t.Errorf("state key type %s, want %s", ca.State().KeyType, kt)
			}
			verifySVID(t, mustIssue(t, ca, webID, "web"), ca.Bundle(), clock.Now(), webID)

			// The key round-trips through ca.json.
			again, _ := newTestCA(t, cfg)
			if !again.Bundle().Equal(ca.Bundle()) {
				t.Fatal("restart changed the bundle")
			}
			svid := mustIssue(t, again, webID)
			verifySVID(t, svid, ca.Bundle(), clock.Now(), webID)
			if !signedBy(svid, root) {
				t.Error("restarted CA signs with another key")
			}
		})
	}
}

func TestSVIDKeyTypes(t *testing.T) {
	ca0 := func(t *testing.T, kt KeyType) *CA {
		ca, _ := newTestCA(t, Config{CAKeyType: KeyEd25519, SVIDKeyType: kt})
		return ca
	}
	for _, kt := range []KeyType{KeyECDSAP256, KeyEd25519, KeyRSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			ca := ca0(t, kt)
			svid := mustIssue(t, ca, webID, "web")
			leaf := svid.Certificates[0]
			if got, err := keyTypeOf(leaf.PublicKey); err != nil || got != kt {
				t.Fatalf("leaf key type %s (%v), want %s", got, err, kt)
			}
			_, isRSA := svid.PrivateKey.(*rsa.PrivateKey)
			if got := leaf.KeyUsage&x509.KeyUsageKeyEncipherment != 0; got != isRSA {
				t.Errorf("key encipherment usage %v for a %s key", got, kt)
			}
			verifySVID(t, svid, ca.Bundle(), time.Now(), webID)
		})
	}
}

// operatorPKI is an operator's root and intermediate.
type operatorPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey crypto.Signer
}

func newOperatorPKI(t *testing.T, interNotAfter time.Time) operatorPKI {
	t.Helper()
	root, rootKey := makeCert(t, certSpec{cn: "Operator Root CA", notBefore: t0.Add(-24 * time.Hour), notAfter: t0.Add(10 * 365 * 24 * time.Hour), isCA: true})
	inter, interKey := makeCert(t, certSpec{cn: "Operator Intermediate CA", notBefore: t0.Add(-time.Hour), notAfter: interNotAfter, isCA: true, parent: root, parentKey: rootKey})
	return operatorPKI{root: root, inter: inter, rootKey: rootKey, interKey: interKey}
}

// writeOperatorFiles writes certs and key to ca.pem / ca.key in dir.
func writeOperatorFiles(t *testing.T, dir string, key crypto.Signer, keyMode os.FileMode, certs ...*x509.Certificate) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca.key")
	writeFile(t, certFile, certPEM(certs...), 0o644)
	writeFile(t, keyFile, keyPEM(t, key), keyMode)
	return certFile, keyFile
}

func TestOperatorCA(t *testing.T) {
	clock := newClock(t0)
	pki := newOperatorPKI(t, t0.Add(30*24*time.Hour))
	certFile, keyFile := writeOperatorFiles(t, t.TempDir(), pki.interKey, 0o600, pki.inter, pki.root)
	ca, reg := newTestCA(t, Config{CACertFile: certFile, CAKeyFile: keyFile, Now: clock.Now, SVIDTTL: time.Hour})

	if ca.State() != nil {
		t.Error("an operator CA has a self-managed state")
	}
	assertBundle(t, ca.Bundle(), pki.root)
	svid := mustIssue(t, ca, webID, "web")
	if len(svid.Certificates) != 2 || !svid.Certificates[1].Equal(pki.inter) {
		t.Fatalf("SVID chain of %d certificates, want [leaf, intermediate]", len(svid.Certificates))
	}
	chain := verifySVID(t, svid, ca.Bundle(), clock.Now(), webID)
	if len(chain) != 3 || !chain[2].Equal(pki.root) {
		t.Fatalf("verified chain of %d certificates, want leaf, intermediate, root", len(chain))
	}
	if err := svid.Certificates[0].CheckSignatureFrom(pki.inter); err != nil {
		t.Errorf("leaf not signed by the intermediate: %v", err)
	}
	if _, _, err := x509svid.Verify(svid.Certificates[:1], ca.Bundle(), x509svid.WithTime(clock.Now())); err == nil {
		t.Error("the leaf alone verifies against the root; the test PKI is not what it seems")
	}
	if got := svid.Certificates[0].NotAfter; !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("NotAfter %s, want now+TTL", got)
	}
	if got := metricSeries(t, reg, "meshd_ca_root_expiry_timestamp_seconds"); len(got) != 1 ||
		got["id="+authorityID(pki.root)+",status=operator,"] != float64(pki.root.NotAfter.Unix()) {
		t.Errorf("root expiry metric %v", got)
	}
}

func TestOperatorCAChains(t *testing.T) {
	clock := newClock(t0)
	pki := newOperatorPKI(t, t0.Add(30*24*time.Hour))

	t.Run("root only", func(t *testing.T) {
		certFile, keyFile := writeOperatorFiles(t, t.TempDir(), pki.rootKey, 0o600, pki.root)
		ca, _ := newTestCA(t, Config{CACertFile: certFile, CAKeyFile: keyFile, Now: clock.Now})
		svid := mustIssue(t, ca, webID)
		if len(svid.Certificates) != 1 {
			t.Fatalf("chain of %d, want only the leaf", len(svid.Certificates))
		}
		assertBundle(t, ca.Bundle(), pki.root)
		verifySVID(t, svid, ca.Bundle(), clock.Now(), webID)
	})
	t.Run("two intermediates", func(t *testing.T) {
		issuing, issuingKey := makeCert(t, certSpec{cn: "Issuing CA", notBefore: t0.Add(-time.Hour), notAfter: t0.Add(24 * time.Hour), isCA: true, parent: pki.inter, parentKey: pki.interKey})
		certFile, keyFile := writeOperatorFiles(t, t.TempDir(), issuingKey, 0o600, issuing, pki.inter, pki.root)
		ca, _ := newTestCA(t, Config{CACertFile: certFile, CAKeyFile: keyFile, Now: clock.Now})
		svid := mustIssue(t, ca, webID)
		if len(svid.Certificates) != 3 || !svid.Certificates[1].Equal(issuing) || !svid.Certificates[2].Equal(pki.inter) {
			t.Fatalf("chain of %d, want [leaf, issuing, intermediate]", len(svid.Certificates))
		}
		assertBundle(t, ca.Bundle(), pki.root)
		verifySVID(t, svid, ca.Bundle(), clock.Now(), webID)
	})
	t.Run("SVID capped at the intermediate's NotAfter", func(t *testing.T) {
		short := newOperatorPKI(t, t0.Add(30*time.Minute))
		certFile, keyFile := writeOperatorFiles(t, t.TempDir(), short.interKey, 0o600, short.inter, short.root)
		ca, _ := newTestCA(t, Config{CACertFile: certFile, CAKeyFile: keyFile, Now: clock.Now, SVIDTTL: time.Hour})
		svid := mustIssue(t, ca, webID)
		if got := svid.Certificates[0].NotAfter; !got.Equal(short.inter.NotAfter) {
			t.Errorf("NotAfter %s, want the intermediate's %s", got, short.inter.NotAfter)
		}
		verifySVID(t, svid, ca.Bundle(), clock.Now(), webID)
	})
	t.Run("group-readable key is used with a warning", func(t *testing.T) {
		var logBuf testutil.SyncBuffer
		certFile, keyFile := writeOperatorFiles(t, t.TempDir(), pki.interKey, 0o640, pki.inter, pki.root)
		ca, _ := newTestCA(t, Config{CACertFile: certFile, CAKeyFile: keyFile, Now: clock.Now, Log: slogTo(&logBuf)})
		verifySVID(t, mustIssue(t, ca, webID), ca.Bundle(), clock.Now(), webID)
		if out := logBuf.String(); !strings.Contains(out, "group-accessible") || !strings.Contains(out, keyFile) {
			t.Errorf("no warning about the group-readable key in the log:\n%s", out)
		}
	})
}

func TestOperatorCARefused(t *testing.T) {
	pki := newOperatorPKI(t, t0.Add(30*24*time.Hour))
	otherRoot, _ := makeCert(t, certSpec{cn: "Other Root", notBefore: t0.Add(-time.Hour), notAfter: t0.Add(24 * time.Hour), isCA: true})
	expired, expiredKey := makeCert(t, certSpec{cn: "Expired Intermediate", notBefore: t0.Add(-48 * time.Hour), notAfter: t0.Add(-time.Minute), isCA: true, parent: pki.root, parentKey: pki.rootKey})
	issuing, issuingKey := makeCert(t, certSpec{cn: "Issuing CA", notBefore: t0.Add(-time.Hour), notAfter: t0.Add(time.Hour), isCA: true, parent: pki.inter, parentKey: pki.interKey})
	leaf, leafKey := makeCert(t, certSpec{cn: "not a CA", notBefore: t0.Add(-time.Hour), notAfter: t0.Add(time.Hour), parent: pki.inter, parentKey: pki.interKey})
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384Inter, _ := makeCert(t, certSpec{cn: "P-384 Intermediate", notBefore: t0.Add(-time.Hour), notAfter: t0.Add(time.Hour), isCA: true, key: p384, parent: pki.root, parentKey: pki.rootKey})

	cases := []struct {
		name     string
		key      crypto.Signer
		keyMode  os.FileMode
		certs    []*x509.Certificate
		edit     func(t *testing.T, certFile, keyFile string)
		wantErr  string
		wantFile string // "cert" or "key": the file the error must name
	}{
		{name: "world-readable key (0644)", key: pki.interKey, keyMode: 0o644, certs: []*x509.Certificate{pki.inter, pki.root}, wantErr: "world-accessible", wantFile: "key"},
		{name: "world-readable key (0604)", key: pki.interKey, keyMode: 0o604, certs: []*x509.Certificate{pki.inter, pki.root}, wantErr: "world-accessible", wantFile: "key"},
		{name: "last certificate not self-signed", key: pki.interKey, keyMode: 0o600, certs: []*x509.Certificate{pki.inter}, wantErr: "not a self-signed root", wantFile: "cert"},
		{name: "chain without its root", key: issuingKey, keyMode: 0o600, certs: []*x509.Certificate{issuing, pki.inter}, wantErr: "not a self-signed root", wantFile: "cert"},
		{name: "key of the root, cert of the intermediate", key: pki.rootKey, keyMode: 0o600, certs: []*x509.Certificate{pki.inter, pki.root}, wantErr: "does not match", wantFile: "key"},
		{name: "unrelated key", key: newP256(t), keyMode: 0o600, certs: []*x509.Certificate{pki.root}, wantErr: "does not match", wantFile: "key"},
		{name: "first certificate not a CA", key: leafKey, keyMode: 0o600, certs: []*x509.Certificate{leaf, pki.inter, pki.root}, wantErr: "not a CA", wantFile: "cert"},
		{name: "expired intermediate", key: expiredKey, keyMode: 0o600, certs: []*x509.Certificate{expired, pki.root}, wantErr: "chain does not verify", wantFile: "cert"},
		{name: "intermediate under another root", key: pki.interKey, keyMode: 0o600, certs: []*x509.Certificate{pki.inter, otherRoot}, wantErr: "chain does not verify", wantFile: "cert"},
		{name: "P-384 key", key: p384, keyMode: 0o600, certs: []*x509.Certificate{p384Inter, pki.root}, wantErr: "P-384", wantFile: "key"},
		{name: "no certificate in the cert file", key: pki.interKey, keyMode: 0o600, certs: nil, wantErr: "no PEM certificate", wantFile: "cert"},
		{name: "missing key file", key: pki.interKey, keyMode: 0o600, certs: []*x509.Certificate{pki.inter, pki.root},
			edit: func(t *testing.T, _, keyFile string) { os.Remove(keyFile) }, wantErr: "no such file", wantFile: "key"},
		{name: "missing cert file", key: pki.interKey, keyMode: 0o600, certs: []*x509.Certificate{pki.inter, pki.root},
			edit: func(t *testing.T, certFile, _ string) { os.Remove(certFile) }, wantErr: "no such file", wantFile: "cert"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			certFile, keyFile := writeOperatorFiles(t, t.TempDir(), tc.key, tc.keyMode, tc.certs...)
			if tc.edit != nil {
				tc.edit(t, certFile, keyFile)
			}
			_, err := callNew(t, Config{TrustDomain: testTD, CACertFile: certFile, CAKeyFile: keyFile, Now: newClock(t0).Now, Log: discardLog(), Registerer: prometheus.NewRegistry()})
			if err == nil {
				t.Fatal("New accepted it")
			}
			file := map[string]string{"cert": certFile, "key": keyFile}[tc.wantFile]
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), file) {
				t.Fatalf("error %q, want it to contain %q and name %s", err, tc.wantErr, file)
			}
		})
	}
}

func TestOperatorCAReload(t *testing.T) {
	clock := newClock(t0)
	dir := t.TempDir()
	pki1 := newOperatorPKI(t, t0.Add(30*24*time.Hour))
	certFile, keyFile := writeOperatorFiles(t, dir, pki1.interKey, 0o600, pki1.inter, pki1.root)
	ca, reg := newTestCA(t, Config{CACertFile: certFile, CAKeyFile: keyFile, Now: clock.Now})

	ch := ca.Changed()
	if changed, err := ca.reloadOperator(); changed || err != nil {
		t.Fatalf("reload of unchanged files = %v, %v", changed, err)
	}
	if fired(ch) {
		t.Fatal("Changed fired without a change")
	}

	// A renewed intermediate (same key, same root): new signer, same bundle.
	renewed, _ := makeCert(t, certSpec{cn: "Operator Intermediate CA (renewed)", notBefore: t0.Add(-time.Minute), notAfter: t0.Add(60 * 24 * time.Hour), isCA: true, key: pki1.interKey, parent: pki1.root, parentKey: pki1.rootKey})
	writeFile(t, certFile, certPEM(renewed, pki1.root), 0o644)
	if changed, err := ca.reloadOperator(); !changed || err != nil {
		t.Fatalf("reload after renewing the intermediate = %v, %v; want a change", changed, err)
	}
	if !fired(ch) {
		t.Fatal("Changed did not fire for a new signing certificate")
	}
	assertBundle(t, ca.Bundle(), pki1.root)
	if svid := mustIssue(t, ca, webID); !svid.Certificates[1].Equal(renewed) {
		t.Fatal("SVIDs are not served with the renewed intermediate")
	}

	// A new PKI altogether.
	pki2 := newOperatorPKI(t, t0.Add(30*24*time.Hour))
	ch = ca.Changed()
	writeOperatorFiles(t, dir, pki2.interKey, 0o600, pki2.inter, pki2.root)
	if changed, err := ca.reloadOperator(); !changed || err != nil {
		t.Fatalf("reload after replacing the CA = %v, %v; want a change", changed, err)
	}
	if !fired(ch) {
		t.Fatal("Changed did not fire for a new root")
	}
	assertBundle(t, ca.Bundle(), pki2.root)
	verifySVID(t, mustIssue(t, ca, webID), x509bundle.FromX509Authorities(testTD, []*x509.Certificate{pki2.root}), clock.Now(), webID)

	// A broken update (the key of another CA) is refused; the CA keeps
	// serving what it had.
	pki3 := newOperatorPKI(t, t0.Add(30*24*time.Hour))
	ch = ca.Changed()
	writeFile(t, certFile, certPEM(pki3.inter, pki3.root), 0o644)
	if changed, err := ca.reloadOperator(); changed || err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("reload of a mismatched pair = %v, %v; want a refusal", changed, err)
	}
	if fired(ch) {
		t.Fatal("Changed fired for a refused update")
	}
	assertBundle(t, ca.Bundle(), pki2.root)
	verifySVID(t, mustIssue(t, ca, webID), ca.Bundle(), clock.Now(), webID)
	// Completing the update (the matching key arrives) is picked up.
	writeFile(t, keyFile, keyPEM(t, pki3.interKey), 0o600)
	if changed, err := ca.reloadOperator(); !changed || err != nil {
		t.Fatalf("reload after the matching key arrived = %v, %v", changed, err)
	}
	assertBundle(t, ca.Bundle(), pki3.root)
	if got := metricValue(t, reg, "meshd_ca_updates_total"); got != 4 {
		t.Errorf("updates counter %v, want 4 (start, renewal, new CA, completed update)", got)
	}
}

// TestOperatorCAReloadAfterKeyPermissionFix: the refusal of a
// world-readable key tells the operator to chmod 600 it; doing just that
// must let the running CA pick the new files up.
func TestOperatorCAReloadAfterKeyPermissionFix(t *testing.T) {
	clock := newClock(t0)
	dir := t.TempDir()
	pki1 := newOperatorPKI(t, t0.Add(30*24*time.Hour))
	certFile, keyFile := writeOperatorFiles(t, dir, pki1.interKey, 0o600, pki1.inter, pki1.root)
	ca, _ := newTestCA(t, Config{CACertFile: certFile, CAKeyFile: keyFile, Now: clock.Now})

	pki2 := newOperatorPKI(t, t0.Add(30*24*time.Hour))
	writeOperatorFiles(t, dir, pki2.interKey, 0o644, pki2.inter, pki2.root)
	if _, err := ca.reloadOperator(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("reload with a world-readable key: %v, want a refusal", err)
	}
	assertBundle(t, ca.Bundle(), pki1.root)

	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err := ca.reloadOperator()
	if err != nil || !changed {
		t.Fatalf("reload after chmod 600 = %v, %v; want the new CA loaded", changed, err)
	}
	assertBundle(t, ca.Bundle(), pki2.root)
}

// TestRolloverEndToEnd drives a CA with an injected clock through a root
// rollover (6 h roots, 1 h SVIDs; times as in TestAdvanceLifecycle) by
// calling advance as Run does, checking what a peer sees at each step.
func TestRolloverEndToEnd(t *testing.T) {
	clock := newClock(t0)
	dir := filepath.Join(t.TempDir(), "state")
	ca, reg := newTestCA(t, Config{StateDir: dir, Now: clock.Now, CATTL: testCATTL, SVIDTTL: time.Hour})
	store := Store{Dir: dir}
	a := ca.State().Active().Cert

	step := func(now time.Time, wantChange bool) {
		t.Helper()
		clock.Set(now)
		ch := ca.Changed()
		changed, err := ca.advance()
		if err != nil {
			t.Fatalf("advance at %s: %v", now.Format(time.TimeOnly), err)
		}
		if changed != wantChange || fired(ch) != wantChange {
			t.Fatalf("advance at %s: changed=%v, Changed fired=%v; want %v", now.Format(time.TimeOnly), changed, fired(ch), wantChange)
		}
		onDisk, err := store.Load()
		if err != nil {
			t.Fatal(err)
		}
		if !sameRoots(onDisk, ca.State()) {
			t.Fatalf("at %s the CA serves other roots than ca.json holds", now.Format(time.TimeOnly))
		}
	}
	verifyAt := func(svid *x509svid.SVID, b *x509bundle.Bundle, now time.Time) error {
		_, _, err := x509svid.Verify(svid.Certificates, b, x509svid.WithTime(now))
		return err
	}

	s0 := mustIssue(t, ca, webID)
	step(at("17:59:29"), false)
	assertBundle(t, ca.Bundle(), a)

	// Half-life: the next root is published but does not sign.
	step(at("17:59:30"), true)
	b := ca.State().Prepared().Cert
	assertBundle(t, ca.Bundle(), a, b)
	if s := mustIssue(t, ca, webID); !signedBy(s, a) || signedBy(s, b) {
		t.Fatal("after the half-life SVIDs are not signed by the old root")
	}
	step(at("18:30:00"), false)

	// Just before five sixths the old root still signs, for a full TTL.
	step(at("19:59:49"), false)
	sOld := mustIssue(t, ca, webID)
	if !signedBy(sOld, a) {
		t.Fatal("just before five sixths SVIDs are not signed by the old root")
	}
	if !sOld.Certificates[0].NotAfter.Equal(at("20:59:49")) {
		t.Errorf("last SVID of the old root expires %s, want a full hour", sOld.Certificates[0].NotAfter)
	}

	// Five sixths: the new root signs; the old one stays in the bundle.
	step(at("19:59:50"), true)
	assertBundle(t, ca.Bundle(), a, b)
	sNew := mustIssue(t, ca, webID)
	if !signedBy(sNew, b) {
		t.Fatal("after five sixths SVIDs are not signed by the new root")
	}
	now := clock.Now()
	verifySVID(t, sNew, ca.Bundle(), now, webID)
	verifySVID(t, sOld, ca.Bundle(), now, webID)
	verifySVID(t, sOld, ca.Bundle(), at("20:59:00"), webID)
	if err := verifyAt(sNew, x509bundle.FromX509Authorities(testTD, []*x509.Certificate{a}), now); err == nil {
		t.Fatal("an SVID of the new root verifies against the old root alone")
	}
	if retired := ca.State().find(StatusRetired); retired == nil || !retired.Cert.Equal(a) || !retired.KeepUntil.Equal(a.NotAfter) {
		t.Fatal("the old root is not retired until its NotAfter")
	}
	if err := verifyAt(s0, ca.Bundle(), now); err == nil {
		t.Fatal("a 15:00 SVID still verifies at 19:59:50")
	}

	// The new root reaches its half-life a minute before the old root goes.
	step(at("20:58:59"), false)
	step(at("20:59:00"), true)
	c := ca.State().Prepared().Cert
	assertBundle(t, ca.Bundle(), a, b, c)

	// The old root's NotAfter: it leaves the bundle.
	step(at("21:00:00"), true)
	assertBundle(t, ca.Bundle(), b, c)
	if err := verifyAt(sOld, ca.Bundle(), at("20:59:00")); err == nil {
		t.Fatal("an SVID of the removed root still verifies against the bundle")
	}
	verifySVID(t, sNew, ca.Bundle(), at("20:59:00"), webID)
	if s := mustIssue(t, ca, webID); !signedBy(s, b) {
		t.Fatal("the active root changed when the old one was pruned")
	} else {
		verifySVID(t, s, ca.Bundle(), clock.Now(), webID)
	}

	if got := metricValue(t, reg, "meshd_ca_updates_total"); got != 5 {
		t.Errorf("updates counter %v, want 5 (start, prepare, activate, prepare, prune)", got)
	}
	series := metricSeries(t, reg, "meshd_ca_root_expiry_timestamp_seconds")
	want := map[string]float64{
		"id=" + authorityID(b) + ",status=active,":   float64(b.NotAfter.Unix()),
		"id=" + authorityID(c) + ",status=prepared,": float64(c.NotAfter.Unix()),
	}
	if fmt.Sprint(series) != fmt.Sprint(want) {
		t.Errorf("root expiry series %v, want %v", series, want)
	}
}

// TestIssueConcurrentWithRollover issues SVIDs from several goroutines while
// the CA rolls over (run with -race).
func TestIssueConcurrentWithRollover(t *testing.T) {
	clock := newClock(t0)
	ca, reg := newTestCA(t, Config{Now: clock.Now, CATTL: testCATTL, SVIDTTL: time.Hour})
	a := ca.State().Active().Cert

	var mu sync.Mutex
	var issued []*x509svid.SVID
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				svid, err := ca.Issue(webID, []string{"web"})
				if err != nil {
					t.Error(err)
					return
				}
				_ = ca.Bundle().X509Authorities()
				mu.Lock()
				issued = append(issued, svid)
				mu.Unlock()
			}
		}()
	}
	for _, now := range []string{"16:00:00", "17:59:30", "18:00:00", "19:59:50", "20:00:00", "20:30:00"} {
		time.Sleep(5 * time.Millisecond)
		clock.Set(at(now))
		if _, err := ca.advance(); err != nil {
			t.Fatal(err)
		}
	}
	// Let every issuer run on with the new root before stopping.
	mu.Lock()
	n := len(issued)
	mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		more := len(issued) - n
		mu.Unlock()
		if more >= 8 || time.Now().After(deadline) {
			break
		}
	}
	close(stop)
	wg.Wait()

	b := ca.State().Active().Cert
	if b.Equal(a) {
		t.Fatal("no rollover happened")
	}
	bySigner := map[bool]int{}
	for _, svid := range issued {
		leaf := svid.Certificates[0]
		verifySVID(t, svid, ca.Bundle(), leaf.NotBefore.Add(SVIDBackdate), webID)
		bySigner[signedBy(svid, b)]++
	}
	if got := metricValue(t, reg, "meshd_ca_svids_issued_total"); int(got) != len(issued) {
		t.Errorf("issued counter %v, issued %d", got, len(issued))
	}
	if bySigner[true] == 0 {
		t.Error("no SVID was signed by the new root")
	}
}

// runCA starts ca.Run and returns a function that stops it and checks that
// it returned nil.
func runCA(t *testing.T, ca *CA) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ca.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	}
}

// TestRunPicksUpExternalRotate simulates `meshd ca rotate` in another
// process: a Store.Update with Policy.Rotate on the shared state dir. Inside
// the synctest bubble time.Now and Run's timer are fake; file I/O is real.
func TestRunPicksUpExternalRotate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const poll = 100 * time.Millisecond
		dir := filepath.Join(t.TempDir(), "state")
		ca, reg := newTestCA(t, Config{StateDir: dir, PollInterval: poll, CATTL: testCATTL, SVIDTTL: time.Hour})
		a := ca.State().Active().Cert
		stop := runCA(t, ca)
		defer stop()

		ch := ca.Changed()
		time.Sleep(10 * time.Second) // a hundred polls with nothing to do
		synctest.Wait()
		if fired(ch) {
			t.Fatal("Changed fired although nothing changed")
		}

		// meshd ca rotate --activate-in 5m
		rotatedAt := time.Now()
		activateAt := rotatedAt.Add(5 * time.Minute)
		if _, err := (Store{Dir: dir}).Update(func(s *State) (*State, bool, error) {
			td, err := spiffeid.TrustDomainFromString(s.TrustDomain)
			if err != nil {
				return nil, false, err
			}
			p := Policy{TrustDomain: td, KeyType: s.KeyType, CATTL: time.Duration(s.CATTL)}
			_, err = p.Rotate(s, rotatedAt, activateAt)
			return s, true, err
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the CA did not pick up the rotated state within 10s")
		}
		if d := time.Since(rotatedAt); d > poll {
			t.Errorf("picked up after %s, want within one poll interval (%s)", d, poll)
		}
		next := ca.State().Prepared()
		if next == nil || next.ActivateAt == nil || !next.ActivateAt.Equal(activateAt) {
			t.Fatalf("the CA's state has no prepared root scheduled for %s", activateAt)
		}
		b := next.Cert
		assertBundle(t, ca.Bundle(), a, b)
		if !signedBy(mustIssue(t, ca, webID), a) {
			t.Fatal("the rotated root signs before its activation time")
		}

		// The CA switches signers at the scheduled time on its own.
		ch = ca.Changed()
		time.Sleep(time.Until(activateAt) - time.Millisecond)
		synctest.Wait()
		if fired(ch) || !signedBy(mustIssue(t, ca, webID), a) {
			t.Fatal("the rotated root took over before its activation time")
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatal("the CA did not activate the rotated root")
		}
		if d := time.Since(activateAt); d < 0 || d > poll {
			t.Errorf("activated %s after the scheduled time, want within one poll interval", d)
		}
		svid := mustIssue(t, ca, webID)
		if !signedBy(svid, b) {
			t.Fatal("after the activation SVIDs are not signed by the rotated root")
		}
		verifySVID(t, svid, ca.Bundle(), time.Now(), webID)
		assertBundle(t, ca.Bundle(), a, b)
		if got := metricValue(t, reg, "meshd_ca_state_errors_total"); got != 0 {
			t.Errorf("state errors counter %v, want 0", got)
		}
	})
}

// TestRunFollowsSchedule lets Run alone drive the rollover of a 6 h root
// through fake time: prepare at half-life, activate at five sixths, prune at
// the old root's NotAfter, each within one poll interval.
func TestRunFollowsSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const poll = 10 * time.Second
		ca, _ := newTestCA(t, Config{PollInterval: poll, CATTL: testCATTL, SVIDTTL: time.Hour})
		a := ca.State().Active().Cert
		stop := runCA(t, ca)
		defer stop()

		waitChange := func(what string, due time.Time) {
			t.Helper()
			ch := ca.Changed()
			time.Sleep(time.Until(due) - time.Millisecond)
			synctest.Wait()
			if fired(ch) {
				t.Fatalf("%s: Changed fired before %s", what, due)
			}
			select {
			case <-ch:
			case <-time.After(time.Minute):
				t.Fatalf("%s: nothing happened within a minute of %s", what, due)
			}
			if d := time.Since(due); d < 0 || d > poll {
				t.Fatalf("%s happened %s after it was due, want within %s", what, d, poll)
			}
		}
		waitChange("prepare", PrepareAt(a))
		b := ca.State().Prepared().Cert
		assertBundle(t, ca.Bundle(), a, b)
		waitChange("activate", ActivateAt(a))
		if !signedBy(mustIssue(t, ca, webID), b) {
			t.Fatal("the next root does not sign after five sixths")
		}
		waitChange("prepare the third root", PrepareAt(b))
		waitChange("prune", a.NotAfter)
		if ca.Bundle().HasX509Authority(a) {
			t.Fatal("the old root is still in the bundle after its NotAfter")
		}
		assertBundle(t, ca.Bundle(), b, ca.State().Prepared().Cert)
	})
}

// TestRunKeepsServingOnCorruptState: a damaged ca.json is reported and
// counted, and the CA keeps serving its last good state until it is fixed.
func TestRunKeepsServingOnCorruptState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const poll = 100 * time.Millisecond
		var logBuf testutil.SyncBuffer
		dir := filepath.Join(t.TempDir(), "state")
		ca, reg := newTestCA(t, Config{StateDir: dir, PollInterval: poll, Log: slogTo(&logBuf)})
		bundle := ca.Bundle()
		file := filepath.Join(dir, StateFile)
		good, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		stop := runCA(t, ca)
		defer stop()

		ch := ca.Changed()
		if err := os.WriteFile(file, []byte(`{"version": 1, "trustDo`), 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := metricValue(t, reg, "meshd_ca_state_errors_total"); got < 1 {
			t.Fatalf("state errors counter %v after a second with a corrupted ca.json", got)
		}
		if !strings.Contains(logBuf.String(), "corrupted") {
			t.Errorf("the corruption is not logged:\n%s", logBuf.String())
		}
		if fired(ch) || !ca.Bundle().Equal(bundle) {
			t.Fatal("the CA changed its bundle on a corrupted state")
		}
		verifySVID(t, mustIssue(t, ca, webID), bundle, time.Now(), webID)
		if got, _ := os.ReadFile(file); string(got) == string(good) {
			t.Fatal("the CA overwrote the corrupted file")
		}

		// Fixed: errors stop, nothing changes.
		writeFile(t, file, good, 0o600)
		time.Sleep(poll + time.Millisecond)
		synctest.Wait()
		errs := metricValue(t, reg, "meshd_ca_state_errors_total")
		time.Sleep(time.Second)
		synctest.Wait()
		if got := metricValue(t, reg, "meshd_ca_state_errors_total"); got != errs {
			t.Errorf("state errors went on after the fix: %v -> %v", errs, got)
		}
		if fired(ch) || !ca.Bundle().Equal(bundle) {
			t.Error("restoring the same state changed the bundle")
		}
	})
}
