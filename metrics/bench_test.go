package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// benchEnvoy is an Envoy with n active egress clusters, each with traffic
// (bytes, 2xx and 5xx, a latency histogram of about 40 bins), as Envoy's
// admin interface renders it: the filtered detailed JSON stats the
// collector asks for, the config dump, and the full Prometheus exposition
// (≈ 150 lines per cluster, as measured for Envoy in the observability notes).
func benchEnvoy(n int) *fakeAdmin {
	st := newStats().set("cluster_manager.cds.version", 7).set("listener_manager.lds.version", 3).
		set("listener.0.0.0.0_15000.downstream_cx_active", 12).set("listener.0.0.0.0_15000.downstream_cx_total", 9000).
		set("http.ingress.downstream_rq_total", 123456)
	var clusters, prom strings.Builder
	clusters.WriteString(`{"configs":[`)
	for i := range n {
		name := fmt.Sprintf("cds_egress_bench_node-%04d_http_8080", i)
		root := "cluster." + name + "."
		st.set(root+"upstream_rq_total", float64(1000+i)).set(root+"upstream_rq_2xx", float64(990+i)).set(root+"upstream_rq_5xx", 10).
			set(root+"upstream_cx_rx_bytes_total", float64(1e6+i)).set(root+"upstream_cx_tx_bytes_total", float64(2e5+i))
		for b := range 40 {
			st.hists[root+"upstream_rq_time"] = append(st.hists[root+"upstream_rq_time"], Bin{Lower: float64(b + 10), Width: 1, Count: uint64(1 + (i+b)%7)})
		}
		if i > 0 {
			clusters.WriteByte(',')
		}
		fmt.Fprintf(&clusters, `{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster","version_info":"v7","cluster":{"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster","name":%q,"type":"EDS","metadata":{"filter_metadata":{"aws.appmesh":{"Mesh":"bench","Direction":"egress","TargetVirtualService":"svc-%d.bench.local","TargetVirtualNode":"node-%04d","Protocol":"http","Port":"8080"}}}}}`, name, i, i)
		for s := range 150 {
			fmt.Fprintf(&prom, "envoy_cluster_stat_%d{envoy_cluster_name=%q} %d\n", s, name, s*i)
		}
	}
	clusters.WriteString(`]}`)
	listeners := `{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump.DynamicListener","name":"lds_ingress_0.0.0.0_15000","active_state":{"listener":{"name":"lds_ingress_0.0.0.0_15000","address":{"socket_address":{"address":"0.0.0.0","port_value":15000}},"filter_chains":[{"filters":[{"name":"envoy.filters.network.http_connection_manager","typed_config":{"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager","stat_prefix":"ingress","rds":{"route_config_name":"rds_ingress_http_8080"}}}]}]}}}]}`
	// Envoy's Prometheus identity: the fixed Mesh/VirtualNode tags.
	return &fakeAdmin{stats: st.json(), clusters: []byte(clusters.String()), listeners: []byte(listeners), prom: prom.String()}
}

func benchCollector(b *testing.B, n int) (*Collector, *fakeAdmin, func()) {
	fa := benchEnvoy(n)
	srv := httptest.NewServer(fa)
	cl, err := envoyadmin.New(srv.Listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c, err := NewCollector(Options{Admin: cl, Registry: prometheus.NewRegistry(), Mesh: "bench", Kind: "VirtualNode", Name: "client"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := c.Collect(context.Background()); err != nil { // reads the mapping once
		b.Fatal(err)
	}
	return c, fa, srv.Close
}

// BenchmarkCollectionCycle: one collection of an Envoy with 1,000 active
// clusters — fetch the filtered stats over loopback HTTP, parse, derive,
// render the Prometheus text. Target ≤ 50 ms CPU, ≤ 32 MB allocated.
func BenchmarkCollectionCycle(b *testing.B) {
	c, fa, stop := benchCollector(b, 1000)
	defer stop()
	b.SetBytes(int64(len(fa.stats)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		s, err := c.Collect(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if err := WriteText(io.Discard, s.Families()); err != nil {
			b.Fatal(err)
		}
	}
	// Process CPU (user+system) per cycle: meshd's side plus the fake
	// Envoy answering in the same process, so an upper bound for meshd.
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	b.ReportMetric(float64(len(fa.stats))/1e6, "MB-json")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPrometheusEndpoint: a scrape of meshd's endpoint — own metrics,
// Envoy's full exposition for 1,000 clusters streamed through, the
// extension appended (a fresh collection each time). Target ≤ 100 ms.
func BenchmarkPrometheusEndpoint(b *testing.B) {
	c, fa, stop := benchCollector(b, 1000)
	defer stop()
	h := c.Handler(prometheus.NewRegistry())
	b.ReportAllocs()
	for b.Loop() {
		c.mu.Lock()
		c.last = nil // every scrape collects
		c.mu.Unlock()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
		if rec.Code != 200 || rec.Body.Len() < len(fa.prom) {
			b.Fatalf("scrape: %d, %d bytes", rec.Code, rec.Body.Len())
		}
	}
	b.ReportMetric(float64(len(fa.prom))/1e6, "MB-envoy")
}
