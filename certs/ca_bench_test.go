package certs_test

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/certs"
)

// newBenchCA returns a self-managed CA with a P-256 root that issues P-256
// SVIDs, in a fresh 0700 state directory.
func newBenchCA(b *testing.B) *certs.CA {
	b.Helper()
	dir, err := os.MkdirTemp("", "certsb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o700); err != nil {
		b.Fatal(err)
	}
	ca, err := certs.New(certs.Config{
		TrustDomain: spiffeid.RequireTrustDomainFromString("bench.example"),
		StateDir:    dir,
		CAKeyType:   certs.KeyECDSAP256,
		SVIDKeyType: certs.KeyECDSAP256,
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer:  prometheus.NewRegistry(),
	})
	if err != nil {
		b.Fatal(err)
	}
	return ca
}

// BenchmarkIssueP256 measures CA.Issue on one goroutine (so on one core):
// a fresh P-256 key, a P-256-signed X.509-SVID with one URI SAN, and the
// parse of the result. The target is ≥ 5,000 SVIDs/s per core.
func BenchmarkIssueP256(b *testing.B) {
	ca := newBenchCA(b)
	id := spiffeid.RequireFromString("spiffe://bench.example/ns/default/sa/app")
	b.ReportAllocs()
	start := time.Now()
	n := 0
	for b.Loop() {
		if _, err := ca.Issue(id, nil); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "SVIDs/s")
}

// BenchmarkIssueP256Parallel issues from GOMAXPROCS goroutines; SVIDs/s is
// the total, SVIDs/s/core that divided by GOMAXPROCS.
func BenchmarkIssueP256Parallel(b *testing.B) {
	ca := newBenchCA(b)
	id := spiffeid.RequireFromString("spiffe://bench.example/ns/default/sa/app")
	b.ReportAllocs()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ca.Issue(id, []string{"app.default.svc"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	rate := float64(b.N) / time.Since(start).Seconds()
	b.ReportMetric(rate, "SVIDs/s")
	b.ReportMetric(rate/float64(runtime.GOMAXPROCS(0)), "SVIDs/s/core")
}
