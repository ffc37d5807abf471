package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"

	"github.com/meshd/meshd/controlplane"
)

// clientLoop is serviceA: a proxyless gRPC client that dials
// xds:///<virtual service> through meshd's ADS server, with its SDS
// certificate, accepting only the target nodes' identities, and calls at
// RPS requests per second.
func (d *Demo) clientLoop(xdsSock string, cp *controlplane.Server) func(context.Context) error {
	return func(ctx context.Context) error {
		id := d.ids[d.client]
		for _, c := range []<-chan struct{}{id.ready, cp.Ready()} {
			select {
			case <-c:
			case <-ctx.Done():
				return nil
			}
		}
		node := d.stats[d.client].node.String()
		bootstrap := fmt.Sprintf(`{"xds_servers": [{"server_uri": "unix://%s", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
 "node": {"id": %q, "cluster": %q}}`, xdsSock, node, d.client)
		// The xDS bootstrap is known only now (the ADS socket is in the work
		// directory), so it is given to this channel's resolver rather than
		// through GRPC_XDS_BOOTSTRAP_CONFIG, which grpc-go reads at init.
		rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
		if err != nil {
			return fmt.Errorf("xDS resolver: %w", err)
		}
		allowed := make([]spiffeid.ID, 0, len(d.targets))
		for _, t := range d.targets {
			allowed = append(allowed, d.spiffeID(t))
		}
		cc, err := grpc.NewClient("xds:///"+d.service, grpc.WithResolvers(rb),
			grpc.WithTransportCredentials(grpccredentials.MTLSClientCredentials(id, id, tlsconfig.AuthorizeOneOf(allowed...))))
		if err != nil {
			return fmt.Errorf("client for xds:///%s: %w", d.service, err)
		}
		defer cc.Close()
		// Wait for READY: an RPC issued while grpc-go installs its first xDS
		// config selector can fail with "unknown cluster selected for RPC".
		cc.Connect()
		for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
			if !cc.WaitForStateChange(ctx, s) {
				return nil
			}
		}
		hc := healthpb.NewHealthClient(cc)
		tick := time.NewTicker(time.Second / time.Duration(d.cfg.RPS))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
			var p peer.Peer
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			start := time.Now()
			_, err := hc.Check(rctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
			ms := float64(time.Since(start).Microseconds()) / 1000
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				d.fail(err)
				continue
			}
			pid, ok := grpccredentials.PeerIDFromPeer(&p)
			if !ok {
				d.fail(fmt.Errorf("answer from %v without a SPIFFE ID", p.Addr))
				continue
			}
			target := d.nodeOf(pid)
			d.stats[d.client].outbound(target, 200, ms)
			d.traffic.add(target)
		}
	}
}

// nodeOf maps a target's SPIFFE ID back to its virtual node.
func (d *Demo) nodeOf(id spiffeid.ID) string {
	for _, t := range d.targets {
		if d.spiffeID(t) == id {
			return t
		}
	}
	return id.String()
}

// window counts answers per target over the last n seconds.
type window struct {
	mu      sync.Mutex
	n       int
	buckets []map[string]int // one per second, newest last
	stamp   []int64          // the second each bucket counts
	total   map[string]int
}

func newWindow(n int) *window {
	return &window{n: n, total: map[string]int{}}
}

func (w *window) add(target string) {
	w.addAt(time.Now(), target)
}

func (w *window) addAt(now time.Time, target string) {
	sec := now.Unix()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.stamp) == 0 || w.stamp[len(w.stamp)-1] != sec {
		w.buckets = append(w.buckets, map[string]int{})
		w.stamp = append(w.stamp, sec)
		if len(w.buckets) > w.n {
			w.buckets, w.stamp = w.buckets[1:], w.stamp[1:]
		}
	}
	w.buckets[len(w.buckets)-1][target]++
	w.total[target]++
}

// counts returns the answers per target within the last n seconds of now,
// and since the start.
func (w *window) counts(now time.Time) (recent, total map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	recent, total = map[string]int{}, make(map[string]int, len(w.total))
	for i, b := range w.buckets {
		if now.Unix()-w.stamp[i] >= int64(w.n) {
			continue
		}
		for k, v := range b {
			recent[k] += v
		}
	}
	for k, v := range w.total {
		total[k] = v
	}
	return recent, total
}
