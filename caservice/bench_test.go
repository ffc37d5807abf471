package caservice_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"

	cav1 "github.com/meshd/meshd/api/ca/v1"
	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/issuer"
)

// The benchmarks run the service in process on loopback TCP, as
// bench/cabench runs `meshd ca serve`. newEnv and the helpers of
// server_test.go take a *testing.T, so the setup here is their
// testing.B counterpart; td, testPolicy and quiet are shared.
//
//	go test -run '^$' -bench . -benchtime 2000x ./caservice/

var (
	benchWorkload = spiffeid.RequireFromString("spiffe://example.org/mesh/apps/virtualNode/serviceA")
	benchDNS      = "servicea.apps.local"
)

type benchEnv struct {
	addr   string
	ca     *certs.CA
	tokens caservice.TokenStore
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	state := filepath.Join(b.TempDir(), "state")
	reg := prometheus.NewRegistry()
	ca, err := certs.New(certs.Config{TrustDomain: td, StateDir: state, Log: quiet(), Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	pol, err := caservice.ParsePolicy([]byte(testPolicy), td)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := caservice.NewServer(caservice.Config{CA: ca, StateDir: state, Policy: pol, Log: quiet(), Registerer: reg})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := caservice.Listen("127.0.0.1:0", -1)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = ca.Run(ctx) })
	wg.Go(func() {
		if err := srv.Serve(ctx, lis); err != nil {
			b.Error(err)
		}
	})
	b.Cleanup(func() { cancel(); wg.Wait() })
	return &benchEnv{addr: lis.Addr().String(), ca: ca, tokens: caservice.TokenStore{Dir: state}}
}

// conn dials the service: anonymous when svid is nil, else mTLS.
func (e *benchEnv) conn(svid *x509svid.SVID) (*grpc.ClientConn, error) {
	auth := tlsconfig.AuthorizeID(caservice.ServerID(td))
	creds := grpccredentials.TLSClientCredentials(e.ca.Bundle(), auth)
	if svid != nil {
		creds = grpccredentials.MTLSClientCredentials(svid, e.ca.Bundle(), auth)
	}
	return grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(creds))
}

// benchEnroll is an agent's enrollment: key, CSR, Enroll on its own new
// connection, verified response.
func (e *benchEnv) benchEnroll(token string, agent spiffeid.ID) (*x509svid.SVID, error) {
	conn, err := e.conn(nil)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	key, der, err := benchKeyCSR(spiffeid.ID{}, nil)
	if err != nil {
		return nil, err
	}
	resp, err := cav1.NewCAClient(conn).Enroll(context.Background(), &cav1.EnrollRequest{
		Credential: &cav1.EnrollRequest_JoinToken{JoinToken: token}, Csr: der,
	})
	if err != nil {
		return nil, err
	}
	return benchVerify(resp, key, agent, "")
}

// benchSign is one SVID as the sidecar gets it (issuer.Remote.Issue).
func benchSign(c cav1.CAClient) error {
	key, der, err := benchKeyCSR(benchWorkload, []string{benchDNS})
	if err != nil {
		return err
	}
	resp, err := c.Sign(context.Background(), &cav1.SignRequest{Csr: der})
	if err != nil {
		return err
	}
	_, err = benchVerify(resp, key, benchWorkload, benchDNS)
	return err
}

func benchKeyCSR(id spiffeid.ID, dns []string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := caservice.NewCSR(key, id, dns)
	return key, der, err
}

// benchVerify checks resp as the sidecar does (issuer.VerifyIssued).
func benchVerify(resp *cav1.Issued, key *ecdsa.PrivateKey, want spiffeid.ID, dns string) (*x509svid.SVID, error) {
	var names []string
	if dns != "" {
		names = []string{dns}
	}
	chain, _, err := issuer.VerifyIssued(resp, td, want, names, key.Public(), time.Now())
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: want, Certificates: chain, PrivateKey: key}, nil
}

// reportLatency adds the p50 and p99 of the recorded durations.
func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 { return float64(lat[min(int(float64(len(lat))*p), len(lat)-1)]) }
	b.ReportMetric(at(0.50), "p50-ns")
	b.ReportMetric(at(0.99), "p99-ns")
}

// BenchmarkSign is the sidecar's round trip per SVID over the enrolled
// agent's mTLS connection: P-256 key, CSR, Sign, parse and verify.
func BenchmarkSign(b *testing.B) {
	e := newBenchEnv(b)
	agent := spiffeid.RequireFromString("spiffe://example.org/meshd/agent/node/bench")
	tok, _, err := e.tokens.Create(agent, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	svid, err := e.benchEnroll(tok, agent)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := e.conn(svid)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c := cav1.NewCAClient(conn)
	for range 50 { // warm-up
		if err := benchSign(c); err != nil {
			b.Fatal(err)
		}
	}
	var lat []time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := benchSign(c); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	reportLatency(b, lat)
}

// BenchmarkEnroll is agents enrolling in parallel (GOMAXPROCS at a time),
// each with a fresh join token on its own new connection (TLS handshake
// included). The b.N tokens are created untimed beforehand; every
// TokenStore.Create rewrites the whole token file, so prefer -benchtime Nx
// over the default. With so few enrollments in flight the redeemer's
// group commit rarely batches: each enrollment costs about one rewrite of
// a token file holding b.N records, so ns/op grows with b.N.
func BenchmarkEnroll(b *testing.B) {
	e := newBenchEnv(b)
	agents := make([]spiffeid.ID, b.N)
	toks := make([]string, b.N)
	for i := range toks {
		agents[i] = spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/meshd/agent/node/bench-%d", i))
		var err error
		if toks[i], _, err = e.tokens.Create(agents[i], time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			i := next.Add(1) - 1
			t0 := time.Now()
			if _, err := e.benchEnroll(toks[i], agents[i]); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	reportLatency(b, lat)
}
