package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/meshd/meshd/sds/sdsclient"
)

type sdsStream = grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]

var node = sdsclient.Node("sdsbench-envoy", "1.34.2")

// firstSecret dials a new connection, opens a stream, requests name and
// waits for the first response. The caller closes the connection.
func firstSecret(ctx context.Context, socket, name string) (*grpc.ClientConn, *discoveryv3.DiscoveryResponse, error) {
	conn, err := sdsclient.Dial(socket)
	if err != nil {
		return nil, nil, err
	}
	st, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if err := st.Send(sdsclient.Request(node, name)); err != nil {
		conn.Close()
		return nil, nil, err
	}
	resp, err := st.Recv()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if n := len(resp.GetResources()); n != 1 {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: got %d resources, want 1", name, n)
	}
	return conn, resp, nil
}

// round collects, after one trigger, when each stream first received a
// resource different from the one it had.
type round struct {
	at   []atomic.Int64 // unix ns, 0 = not yet
	left atomic.Int64
	done chan struct{}
}

func newRound(n int) *round {
	r := &round{at: make([]atomic.Int64, n), done: make(chan struct{})}
	r.left.Store(int64(n))
	return r
}

func (r *round) record(i int, t time.Time) {
	if r.at[i].CompareAndSwap(0, t.UnixNano()) && r.left.Add(-1) == 0 {
		close(r.done)
	}
}

func (r *round) span() (first, last time.Time) {
	var lo, hi int64
	for i := range r.at {
		v := r.at[i].Load()
		if lo == 0 || v < lo {
			lo = v
		}
		hi = max(hi, v)
	}
	return time.Unix(0, lo), time.Unix(0, hi)
}

// fleet is n connections, each with one stream per name, all answered with
// ACKs as Envoy does.
type fleet struct {
	names  []string
	conns  []atomic.Pointer[grpc.ClientConn]
	latest [][]atomic.Pointer[[]byte] // [name][conn]: last resource received
	rounds []atomic.Pointer[round]    // per name
	errs   atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Opening: per-connection time from the start to every stream's first
	// response, and the time until all connections were served.
	openLat []time.Duration
	openAll time.Duration
}

// openFleet opens n connections at once (all goroutines released together)
// and returns when every stream has its first response, or after timeout
// with an error.
func openFleet(ctx context.Context, socket string, names []string, n int, timeout time.Duration) (*fleet, error) {
	sctx, cancel := context.WithCancel(context.Background())
	f := &fleet{
		names: names, conns: make([]atomic.Pointer[grpc.ClientConn], n), cancel: cancel,
		latest: make([][]atomic.Pointer[[]byte], len(names)), rounds: make([]atomic.Pointer[round], len(names)),
		openLat: make([]time.Duration, n),
	}
	for j := range names {
		f.latest[j] = make([]atomic.Pointer[[]byte], n)
	}
	streams := make([][]sdsStream, n)
	doneAt := make([]time.Time, n)
	errs := make([]error, n)
	var finishedFlag = make([]atomic.Bool, n)
	start := make(chan struct{})
	var ready, finished sync.WaitGroup
	for i := range n {
		ready.Add(1)
		finished.Add(1)
		go func() {
			defer finished.Done()
			defer finishedFlag[i].Store(true)
			ready.Done()
			<-start
			errs[i] = func() error {
				conn, err := sdsclient.Dial(socket)
				if err != nil {
					return err
				}
				f.conns[i].Store(conn)
				c := secretv3.NewSecretDiscoveryServiceClient(conn)
				sts := make([]sdsStream, len(names))
				for j, name := range names {
					st, err := c.StreamSecrets(sctx)
					if err != nil {
						return err
					}
					if err := st.Send(sdsclient.Request(node, name)); err != nil {
						return err
					}
					sts[j] = st
				}
				first := make([]*discoveryv3.DiscoveryResponse, len(sts))
				for j, st := range sts {
					r, err := st.Recv()
					if err != nil {
						return err
					}
					if len(r.GetResources()) != 1 {
						return fmt.Errorf("%s: %d resources", names[j], len(r.GetResources()))
					}
					v := r.GetResources()[0].GetValue()
					f.latest[j][i].Store(&v)
					first[j] = r
				}
				doneAt[i] = time.Now()
				for j, st := range sts {
					if err := st.Send(sdsclient.ACK(first[j], names[j])); err != nil {
						return err
					}
				}
				streams[i] = sts
				return nil
			}()
		}()
	}
	ready.Wait()
	// A watchdog closes the connections still opening after timeout, which
	// fails their pending Recv.
	watchdog := time.AfterFunc(timeout, func() {
		for i := range n {
			if !finishedFlag[i].Load() {
				if c := f.conns[i].Load(); c != nil {
					c.Close()
				}
			}
		}
	})
	t0 := time.Now()
	close(start)
	finished.Wait()
	watchdog.Stop()
	var firstErr error
	nerr := 0
	for i := range n {
		if errs[i] != nil {
			nerr++
			if firstErr == nil {
				firstErr = errs[i]
			}
			continue
		}
		d := doneAt[i].Sub(t0)
		f.openLat[i] = d
		f.openAll = max(f.openAll, d)
	}
	if nerr > 0 {
		f.close()
		return nil, fmt.Errorf("%d of %d connections failed (timeout %s); first error: %v", nerr, n, timeout, firstErr)
	}
	for i := range n {
		for j, st := range streams[i] {
			f.wg.Add(1)
			go f.recvLoop(i, j, st)
		}
	}
	return f, nil
}

func (f *fleet) recvLoop(i, j int, st sdsStream) {
	defer f.wg.Done()
	for {
		resp, err := st.Recv()
		if err != nil {
			if err := st.Context().Err(); err == nil {
				f.errs.Add(1)
			}
			return
		}
		now := time.Now()
		if len(resp.GetResources()) == 1 {
			v := resp.GetResources()[0].GetValue()
			prev := f.latest[j][i].Load()
			f.latest[j][i].Store(&v)
			if prev == nil || !bytes.Equal(*prev, v) {
				if r := f.rounds[j].Load(); r != nil {
					r.record(i, now)
				}
			}
		}
		if err := st.Send(sdsclient.ACK(resp, f.names[j])); err != nil {
			return
		}
	}
}

func (f *fleet) close() {
	f.cancel()
	for i := range f.conns {
		if c := f.conns[i].Load(); c != nil {
			c.Close()
		}
	}
	f.wg.Wait()
}

// arm starts recording changes of name index j.
func (f *fleet) arm(j int) *round {
	r := newRound(len(f.conns))
	f.rounds[j].Store(r)
	return r
}

// wait waits for every stream of r to have received a change.
func (f *fleet) wait(ctx context.Context, j int, r *round, timeout time.Duration) error {
	defer f.rounds[j].CompareAndSwap(r, nil)
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("%s: only %d of %d streams received the change within %s (stream errors %d)",
			f.names[j], int64(len(f.conns))-r.left.Load(), len(f.conns), timeout, f.errs.Load())
	}
}

// common returns the resource every stream of name j holds, if they agree.
func (f *fleet) common(j int) ([]byte, bool) {
	var v []byte
	for i := range f.conns {
		p := f.latest[j][i].Load()
		if p == nil {
			return nil, false
		}
		if i == 0 {
			v = *p
		} else if !bytes.Equal(v, *p) {
			return nil, false
		}
	}
	return v, true
}

// leafOf decodes a tls_certificate secret's leaf certificate.
func leafOf(secretProto []byte) (*x509.Certificate, error) {
	var sec tlsv3.Secret
	if err := proto.Unmarshal(secretProto, &sec); err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
	if blk == nil {
		return nil, fmt.Errorf("secret %q holds no certificate", sec.GetName())
	}
	return x509.ParseCertificate(blk.Bytes)
}

// rootsIn counts the root certificates in a validation_context secret.
func rootsIn(secretProto []byte) int {
	return bytes.Count(secretProto, []byte("-----BEGIN CERTIFICATE-----"))
}
