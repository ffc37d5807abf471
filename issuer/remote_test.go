package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"log/slog"
	"math/big"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// testRoot is a self-signed CA certificate living life.
func testRoot(t *testing.T, life time.Duration) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: now, NotAfter: now.Add(life), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSyncInterval: the configured interval applies unless the signing
// root is so short-lived that a next root's publication window (a third
// of its life) would hold fewer than ten syncs; each wait is jittered
// within ±25 %.
func TestSyncInterval(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	for _, tc := range []struct {
		root, cfg, want time.Duration
	}{
		{30 * 24 * time.Hour, 0, DefaultSyncInterval},
		{30 * 24 * time.Hour, 5 * time.Second, 5 * time.Second},
		{time.Minute, 0, 2 * time.Second},
		{time.Hour, 0, DefaultSyncInterval},
	} {
		r, err := NewRemote(RemoteConfig{
			Addr: "127.0.0.1:1", TrustDomain: td, JoinToken: "t", SyncInterval: tc.cfg,
			Bootstrap: x509bundle.FromX509Authorities(td, []*x509.Certificate{testRoot(t, tc.root)}),
			Log:       slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.syncInterval(); got != tc.want {
			t.Errorf("root living %s, SyncInterval %s: interval %s, want %s", tc.root, tc.cfg, got, tc.want)
		}
	}
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := jittered(30 * time.Second)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 22500*time.Millisecond || hi > 37500*time.Millisecond || lo > 24*time.Second || hi < 36*time.Second {
		t.Fatalf("jittered 30s spans %s to %s, want about 22.5s to 37.5s", lo, hi)
	}
}
