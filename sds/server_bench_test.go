package sds_test

// Benchmarks of the SDS server on a real Unix socket, in process: the
// server and its clients share this process (and its cores and GC), which
// makes the numbers pessimistic compared with a separate Envoy process. The
// out-of-process harness is ./bench/sdsbench; docs/benchmarks.md has the
// results and what each number includes.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/sds"
	"github.com/meshd/meshd/sds/sdsclient"
)

const (
	benchTD = "bench.example"
	benchID = "spiffe://bench.example/ns/default/sa/app"
)

// benchAuthority is the cache's view of the CA: the real CA, plus a record
// of when the last SVID was issued, and a Changed channel the benchmark can
// also fire, which wakes the cache's rotation loop at once.
type benchAuthority struct {
	*certs.CA
	// offset (ns) is added to the cache's clock; Issue resets it, so one
	// armed renewal happens per kick.
	offset atomic.Int64

	stopped    chan struct{} // ends the goroutines Changed starts
	mu         sync.Mutex
	ch         chan struct{}
	kicked     bool // a kick came while no channel was out: close the next at once
	issuedAt   time.Time
	lastSerial *big.Int
}

func (a *benchAuthority) Issue(id spiffeid.ID, dns []string) (*x509svid.SVID, error) {
	svid, err := a.CA.Issue(id, dns)
	if err == nil {
		a.offset.Store(0)
		a.mu.Lock()
		a.issuedAt = time.Now()
		a.lastSerial = svid.Certificates[0].SerialNumber
		a.mu.Unlock()
	}
	return svid, err
}

func (a *benchAuthority) lastIssue() (time.Time, *big.Int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.issuedAt, a.lastSerial
}

func (a *benchAuthority) Changed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch == nil {
		ch := make(chan struct{})
		if a.kicked {
			a.kicked = false
			close(ch)
			return ch
		}
		a.ch = ch
		real := a.CA.Changed()
		go func() {
			select {
			case <-real:
				a.fire(ch)
			case <-ch:
			case <-a.stopped:
			}
		}()
	}
	return a.ch
}

func (a *benchAuthority) fire(ch chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ch == nil { // a kick
		if a.ch == nil {
			a.kicked = true
			return
		}
		ch = a.ch
	}
	if a.ch == ch {
		close(ch)
		a.ch = nil
	}
}

// now is the cache's clock: wall time plus the armed offset.
func (a *benchAuthority) now() time.Time { return time.Now().Add(time.Duration(a.offset.Load())) }

// rotateSVIDNow makes every cached SVID due (the clock jumps 45 minutes, past
// any 1h SVID's rotation point but short of its expiry) and wakes the cache.
func (a *benchAuthority) rotateSVIDNow() {
	a.offset.Store(int64(45 * time.Minute))
	a.fire(nil)
}

type benchServer struct {
	dir, socket, stateDir string
	ca                    *certs.CA
	auth                  *benchAuthority
	stop                  func()
}

func startBenchServer(b *testing.B) *benchServer {
	b.Helper()
	// sun_path is limited to 107 bytes: keep the socket directory short.
	dir, err := os.MkdirTemp("", "sdsb")
	if err != nil {
		b.Fatal(err)
	}
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	td := spiffeid.RequireTrustDomainFromString(benchTD)
	ca, err := certs.New(certs.Config{
		TrustDomain: td, StateDir: stateDir, PollInterval: 5 * time.Millisecond,
		Log: log, Registerer: reg,
	})
	if err != nil {
		b.Fatal(err)
	}
	auth := &benchAuthority{CA: ca, stopped: make(chan struct{})}
	cache, err := sds.NewCache(sds.CacheConfig{CA: auth, Log: log, Registerer: reg, Now: auth.now})
	if err != nil {
		b.Fatal(err)
	}
	ids, err := sds.ParseIdentities([]byte(fmt.Sprintf("- spiffeID: %s\n  selectors: [uid:%d]\n", benchID, os.Getuid())), td)
	if err != nil {
		b.Fatal(err)
	}
	socket := filepath.Join(dir, "s.sock")
	srv, err := sds.New(sds.Config{
		Socket: socket, SocketGroup: -1, CA: ca, Cache: cache, Identities: ids,
		Limits:        peer.Limits{MaxConns: 8192, MaxConnsPerUID: 4096},
		ShutdownGrace: 2 * time.Second, Log: log, Registerer: reg,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{ca.Run, cache.Run, srv.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil {
				b.Error(err)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for !srv.Ready() {
		if time.Now().After(deadline) {
			cancel()
			b.Fatal("SDS server not ready after 5s")
		}
		time.Sleep(time.Millisecond)
	}
	bs := &benchServer{dir: dir, socket: socket, stateDir: stateDir, ca: ca, auth: auth}
	var once sync.Once
	bs.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			close(auth.stopped)
			os.RemoveAll(dir)
		})
	}
	b.Cleanup(bs.stop)
	return bs
}

var benchNode = sdsclient.Node("bench-envoy", "1.34.2")

type sdsStream = grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]

// firstSecret dials a new connection, opens a stream, asks for name and
// waits for the response; the caller closes the connection.
func firstSecret(ctx context.Context, socket, name string) (*grpc.ClientConn, sdsStream, *discoveryv3.DiscoveryResponse, error) {
	conn, err := sdsclient.Dial(socket)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	if err := st.Send(sdsclient.Request(benchNode, name)); err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		conn.Close()
		return nil, nil, nil, err
	}
	if len(resp.GetResources()) != 1 {
		conn.Close()
		return nil, nil, nil, fmt.Errorf("got %d resources, want 1", len(resp.GetResources()))
	}
	return conn, st, resp, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkFirstSecret: one iteration is a new connection (dial, HTTP/2
// handshake, peer attestation), StreamSecrets, the request for `default`,
// the response, and the close. p50/p99 cover dial → first response only
// (not the close); ns/op includes the close.
func BenchmarkFirstSecret(b *testing.B) {
	srv := startBenchServer(b)
	ctx := context.Background()
	for range 20 { // warm up: the first request mints the SVID
		conn, _, _, err := firstSecret(ctx, srv.socket, "default")
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
	}
	lat := make([]time.Duration, 0, 1<<14)
	for b.Loop() {
		t0 := time.Now()
		conn, _, _, err := firstSecret(ctx, srv.socket, "default")
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		conn.Close()
		lat = append(lat, d)
	}
	slices.Sort(lat)
	b.ReportMetric(ms(percentile(lat, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(lat, 90)), "p90-ms")
	b.ReportMetric(ms(percentile(lat, 99)), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
}

// fanoutRound collects, for one trigger, when each stream first received a
// changed resource.
type fanoutRound struct {
	at   []atomic.Int64 // unix ns; 0 = not yet
	left atomic.Int64
	done chan struct{}
	val  atomic.Pointer[[]byte] // the new resource, from the first receiver
}

func newRound(n int) *fanoutRound {
	r := &fanoutRound{at: make([]atomic.Int64, n), done: make(chan struct{})}
	r.left.Store(int64(n))
	return r
}

func (r *fanoutRound) record(i int, t time.Time, val []byte) {
	if r.at[i].CompareAndSwap(0, t.UnixNano()) {
		r.val.CompareAndSwap(nil, &val)
		if r.left.Add(-1) == 0 {
			close(r.done)
		}
	}
}

// first and last receipt.
func (r *fanoutRound) span() (first, last time.Time) {
	lo, hi := int64(0), int64(0)
	for i := range r.at {
		v := r.at[i].Load()
		if lo == 0 || v < lo {
			lo = v
		}
		if v > hi {
			hi = v
		}
	}
	return time.Unix(0, lo), time.Unix(0, hi)
}

// streamFleet is n streams, each on its own connection, for one secret
// name; every response is ACKed as Envoy does, and a response whose
// resource differs from the previous one is recorded in the current round.
type streamFleet struct {
	conns []*grpc.ClientConn
	cur   atomic.Pointer[fanoutRound]
	errs  atomic.Int64
	wg    sync.WaitGroup
	first []byte
}

func openFleet(b *testing.B, socket, name string, n int) *streamFleet {
	b.Helper()
	f := &streamFleet{conns: make([]*grpc.ClientConn, n)}
	streams := make([]sdsStream, n)
	initial := make([][]byte, n)
	ctx, cancel := context.WithCancel(context.Background())
	var firstErr atomic.Pointer[error]
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || firstErr.Load() != nil {
					return
				}
				conn, st, resp, err := firstSecret(ctx, socket, name)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				if err := st.Send(sdsclient.ACK(resp, name)); err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
				f.conns[i], streams[i], initial[i] = conn, st, resp.GetResources()[0].GetValue()
			}
		}()
	}
	wg.Wait()
	closeAll := func() {
		cancel()
		for _, c := range f.conns {
			if c != nil {
				c.Close()
			}
		}
		f.wg.Wait()
	}
	b.Cleanup(closeAll)
	if e := firstErr.Load(); e != nil {
		b.Fatalf("opening %d streams: %v", n, *e)
	}
	f.first = initial[0]
	for i, st := range streams {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			prev := initial[i]
			for {
				resp, err := st.Recv()
				if err != nil {
					if ctx.Err() == nil {
						f.errs.Add(1)
					}
					return
				}
				now := time.Now()
				val := resp.GetResources()[0].GetValue()
				if !bytes.Equal(val, prev) {
					prev = val
					if r := f.cur.Load(); r != nil {
						r.record(i, now, val)
					}
				}
				if err := st.Send(sdsclient.ACK(resp, name)); err != nil {
					return
				}
			}
		}()
	}
	return f
}

// await arms a round, runs trigger, and waits until every stream has
// received a changed resource.
func (f *streamFleet) await(b *testing.B, trigger func()) *fanoutRound {
	r := newRound(len(f.conns))
	f.cur.Store(r)
	trigger()
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		b.Fatalf("only %d of %d streams received the change within 10s (stream errors: %d)", int64(len(f.conns))-r.left.Load(), len(f.conns), f.errs.Load())
	}
	f.cur.Store(nil)
	return r
}

type fanoutStats struct{ total, spread, fromIssue []time.Duration }

func (s *fanoutStats) report(b *testing.B, totalName string) {
	for _, l := range [][]time.Duration{s.total, s.spread, s.fromIssue} {
		slices.Sort(l)
	}
	b.ReportMetric(ms(percentile(s.total, 50)), totalName+"-p50-ms")
	b.ReportMetric(ms(s.total[len(s.total)-1]), totalName+"-max-ms")
	if len(s.fromIssue) > 0 {
		b.ReportMetric(ms(percentile(s.fromIssue, 50)), "issued-to-last-p50-ms")
		b.ReportMetric(ms(s.fromIssue[len(s.fromIssue)-1]), "issued-to-last-max-ms")
	}
	b.ReportMetric(ms(percentile(s.spread, 50)), "first-to-last-p50-ms")
	b.ReportMetric(ms(s.spread[len(s.spread)-1]), "first-to-last-max-ms")
}

// BenchmarkRotationFanout1000 keeps 1000 streams open, each on its own
// connection, and measures how long one change takes to reach all of them.
//
//   - svid: 1000 `default` streams of one identity; the SVID is renewed
//     (the cache's clock is moved past the rotation point and its loop woken)
//     and every stream must receive the new certificate. "kick" starts at the
//     wake-up, "issued" at the moment the new SVID is minted.
//   - bundle: 1000 `ROOTCA` streams; `meshd ca rotate --now` is done in
//     process (Store.Update + Policy.Rotate) and every stream must receive the
//     two-root bundle. "trigger" starts when the state file is written and
//     includes the CA's poll interval (5 ms), its own state update (with
//     fsync) and the push. Between iterations, untimed, the retired root is
//     dropped again (and that one-root bundle pushed) so the bundle does not
//     grow.
func BenchmarkRotationFanout1000(b *testing.B) {
	const n = 1000
	b.Run("svid", func(b *testing.B) {
		srv := startBenchServer(b)
		f := openFleet(b, srv.socket, "default", n)
		var st fanoutStats
		for b.Loop() {
			var kick time.Time
			r := f.await(b, func() { kick = time.Now(); srv.auth.rotateSVIDNow() })
			first, last := r.span()
			issued, serial := srv.auth.lastIssue()
			st.total = append(st.total, last.Sub(kick))
			st.fromIssue = append(st.fromIssue, last.Sub(issued))
			st.spread = append(st.spread, last.Sub(first))
			b.StopTimer()
			if err := checkSerial(*r.val.Load(), serial); err != nil {
				b.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond) // let the ACKs settle
			b.StartTimer()
		}
		st.report(b, "kick-to-last")
	})
	b.Run("bundle", func(b *testing.B) {
		srv := startBenchServer(b)
		f := openFleet(b, srv.socket, "ROOTCA", n)
		store := certs.Store{Dir: srv.stateDir}
		var st fanoutStats
		for b.Loop() {
			b.StopTimer()
			if len(srv.ca.Bundle().X509Authorities()) > 1 {
				f.await(b, func() {
					if _, err := store.Update(dropRetired); err != nil {
						b.Fatal(err)
					}
				})
				time.Sleep(20 * time.Millisecond)
			}
			b.StartTimer()
			var written time.Time
			r := f.await(b, func() {
				if _, err := store.Update(rotateNow); err != nil {
					b.Fatal(err)
				}
				written = time.Now()
			})
			first, last := r.span()
			st.total = append(st.total, last.Sub(written))
			st.spread = append(st.spread, last.Sub(first))
			b.StopTimer()
			if got := bytes.Count(*r.val.Load(), []byte("BEGIN CERTIFICATE")); got != 2 {
				b.Fatalf("rotated bundle has %d roots, want 2", got)
			}
			b.StartTimer()
		}
		st.report(b, "written-to-last")
	})
}

func rotateNow(s *certs.State) (*certs.State, bool, error) {
	if s == nil {
		return nil, false, fmt.Errorf("no CA state")
	}
	now := time.Now()
	p := certs.Policy{TrustDomain: spiffeid.RequireTrustDomainFromString(s.TrustDomain), KeyType: s.KeyType, CATTL: time.Duration(s.CATTL)}
	if _, err := p.Rotate(s, now, now); err != nil {
		return nil, false, err
	}
	return s, true, nil
}

func dropRetired(s *certs.State) (*certs.State, bool, error) {
	if s == nil {
		return nil, false, fmt.Errorf("no CA state")
	}
	s.Authorities = slices.DeleteFunc(s.Authorities, func(a *certs.Authority) bool { return a.Status == certs.StatusRetired })
	return s, true, nil
}

func checkSerial(secretProto []byte, want *big.Int) error {
	var sec tlsv3.Secret
	if err := proto.Unmarshal(secretProto, &sec); err != nil {
		return fmt.Errorf("decode secret: %w", err)
	}
	blk, _ := pem.Decode(sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	if blk == nil {
		return fmt.Errorf("secret %q holds no PEM certificate", sec.GetName())
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	if leaf.SerialNumber.Cmp(want) != 0 {
		return fmt.Errorf("streams got serial %x, the cache issued %x", leaf.SerialNumber, want)
	}
	return nil
}
