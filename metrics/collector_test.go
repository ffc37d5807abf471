package metrics

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// fakeAdmin answers /stats, /config_dump and /stats/prometheus from fields
// tests change, and counts calls.
type fakeAdmin struct {
	mu        sync.Mutex
	stats     []byte
	clusters  []byte
	listeners []byte
	prom      string
	calls     map[string]int
	queries   []string
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[r.URL.Path]++
	f.queries = append(f.queries, r.URL.RawQuery)
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/stats" && q.Get("format") == "json":
		w.Write(f.stats)
	case r.URL.Path == "/stats/prometheus" || r.URL.Path == "/stats" && q.Get("format") == "prometheus":
		io.WriteString(w, f.prom)
	case r.URL.Path == "/config_dump" && q.Get("resource") == "dynamic_active_clusters":
		w.Write(f.clusters)
	case r.URL.Path == "/config_dump" && q.Get("resource") == "dynamic_listeners":
		w.Write(f.listeners)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAdmin) set(fn func(*fakeAdmin)) { f.mu.Lock(); fn(f); f.mu.Unlock() }

func (f *fakeAdmin) count(path string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[path] }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newTestCollector(t *testing.T, addr string, clk *clock) (*Collector, *prometheus.Registry) {
	t.Helper()
	cl, err := envoyadmin.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c, err := NewCollector(Options{Admin: cl, Registry: reg, Now: clk.Now, MaxAge: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

func appsAdmin(t *testing.T) *fakeAdmin {
	c, l := configDumps(t, nodeResources(t, appsDir, vn("apps", "serviceA")))
	return &fakeAdmin{clusters: c, listeners: l,
		stats: newStats().set("cluster_manager.cds.version", 1).set("listener_manager.lds.version", 1).
			set("cluster.cds_egress_apps_serviceB_http2_80.upstream_rq_total", 3).json(),
		prom: "# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total{envoy_cluster_name=\"cds_egress_apps_serviceB_http2_80\"} 3\n"}
}

func TestCollectorMappingFollowsCDSAndLDSVersions(t *testing.T) {
	fa := appsAdmin(t)
	srv := httptest.NewServer(fa)
	defer srv.Close()
	clk := &clock{t: time.Unix(1e9, 0)}
	c, reg := newTestCollector(t, srv.Listener.Addr().String(), clk)
	ctx := context.Background()

	s, err := c.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Series) != 1 || s.Series[0].Metric != RequestCountPerTarget || s.Series[0].Value != 3 {
		t.Fatalf("series %+v", s.Series)
	}
	if n := fa.count("/config_dump"); n != 2 {
		t.Fatalf("config_dump calls %d, want 2 (clusters, listeners)", n)
	}
	// Within MaxAge: the same snapshot, Envoy not asked.
	if s2, _ := c.Snapshot(ctx); s2 != s || fa.count("/stats") != 1 {
		t.Fatalf("snapshot within MaxAge was not reused")
	}
	clk.Advance(2 * time.Second)
	if _, err := c.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	if n := fa.count("/config_dump"); n != 2 {
		t.Fatalf("config_dump re-read without a version change (%d calls)", n)
	}
	fa.set(func(f *fakeAdmin) {
		f.stats = newStats().set("cluster_manager.cds.version", 2).set("listener_manager.lds.version", 1).json()
	})
	if _, err := c.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if n := fa.count("/config_dump"); n != 4 {
		t.Fatalf("config_dump calls after a CDS change: %d, want 4", n)
	}
	if got := testutil.ToFloat64(c.up); got != 1 {
		t.Errorf("meshd_envoy_up %v", got)
	}
	if n, err := testutil.GatherAndCount(reg, "meshd_metrics_mapping_reads_total"); err != nil || n != 1 {
		t.Errorf("mapping reads metric: %d %v", n, err)
	}
}

func TestCollectorEnvoyDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	clk := &clock{t: time.Unix(1e9, 0)}
	c, reg := newTestCollector(t, addr, clk)
	if _, err := c.Snapshot(context.Background()); err == nil {
		t.Fatal("snapshot with Envoy down: no error")
	}
	rec := httptest.NewRecorder()
	c.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "meshd_envoy_up 0\n") || strings.Contains(body, "envoy_appmesh_") {
		t.Fatalf("endpoint with Envoy down: %d\n%s", rec.Code, body)
	}
}

// A snapshot taken while Envoy was up is not served once Envoy is down.
func TestCollectorNoStaleValues(t *testing.T) {
	fa := appsAdmin(t)
	srv := httptest.NewServer(fa)
	clk := &clock{t: time.Unix(1e9, 0)}
	c, reg := newTestCollector(t, srv.Listener.Addr().String(), clk)
	if _, err := c.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	clk.Advance(1500 * time.Millisecond)
	if fams, err := c.Extension(context.Background()); err == nil {
		t.Fatalf("extension after Envoy went away: %v", fams)
	}
	rec := httptest.NewRecorder()
	c.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if body := rec.Body.String(); !strings.Contains(body, "meshd_envoy_up 0\n") || strings.Contains(body, "envoy_appmesh_") {
		t.Fatalf("stale values served:\n%s", body)
	}
}

func TestWritePrometheusAppendsExtension(t *testing.T) {
	fa := appsAdmin(t)
	srv := httptest.NewServer(fa)
	defer srv.Close()
	c, _ := newTestCollector(t, srv.Listener.Addr().String(), &clock{t: time.Unix(1e9, 0)})
	var b bytes.Buffer
	if err := c.WritePrometheus(context.Background(), &b, true); err != nil {
		t.Fatal(err)
	}
	want := fa.prom + "# TYPE envoy_appmesh_RequestCountPerTarget counter\n" +
		`envoy_appmesh_RequestCountPerTarget{Mesh="apps",TargetVirtualNode="serviceB",TargetVirtualService="serviceb.apps.local",VirtualNode="serviceA"} 3` + "\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if q := fa.queries[len(fa.queries)-1]; q != "usedonly" {
		t.Errorf("envoy prometheus query %q, want usedonly", q)
	}
}

// App Mesh's own Envoy build emits the extension: it is served as it is,
// never derived a second time.
func TestPassthroughOfAppMeshEnvoy(t *testing.T) {
	fa := appsAdmin(t)
	own := "# TYPE envoy_appmesh_RequestCount counter\nenvoy_appmesh_RequestCount{Mesh=\"apps\",VirtualNode=\"serviceA\"} 42\n"
	fa.set(func(f *fakeAdmin) {
		f.stats = newStats().set("appmesh.RequestCount", 42).set("cluster.cds_egress_apps_serviceB_http2_80.upstream_rq_total", 3).json()
		f.prom = "# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total{envoy_cluster_name=\"x\"} 3\n" + own
	})
	srv := httptest.NewServer(fa)
	defer srv.Close()
	c, _ := newTestCollector(t, srv.Listener.Addr().String(), &clock{t: time.Unix(1e9, 0)})
	fams, err := c.Extension(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(fams) != 1 || fams[0].GetName() != "envoy_appmesh_RequestCount" || fams[0].Metric[0].GetCounter().GetValue() != 42 {
		t.Fatalf("passthrough families %v", fams)
	}
	var b bytes.Buffer
	if err := c.WritePrometheus(context.Background(), &b, false); err != nil {
		t.Fatal(err)
	}
	if b.String() != fa.prom || fa.count("/config_dump") != 0 {
		t.Errorf("passthrough exposition changed or mapping read:\n%s", b.String())
	}
}

func TestAppMeshScannerAcrossWrites(t *testing.T) {
	text := "# TYPE envoy_x counter\nenvoy_x 1\n# TYPE envoy_appmesh_RequestCount counter\n"
	for _, chunk := range []int{1, 2, 7, 13, len(text)} {
		var out bytes.Buffer
		s := newAppMeshScanner(&out)
		for i := 0; i < len(text); i += chunk {
			s.Write([]byte(text[i:min(i+chunk, len(text))]))
		}
		if !s.found || out.String() != text {
			t.Errorf("chunk %d: found=%v", chunk, s.found)
		}
	}
	for _, text := range []string{"# TYPE envoy_appmesh_X counter\n", "# HELP x envoy_appmesh_\nfoo{a=\"# TYPE envoy_appmesh_\"} 1\n"} {
		s := newAppMeshScanner(io.Discard)
		s.Write([]byte(text))
		if want := strings.HasPrefix(text, "# TYPE"); s.found != want {
			t.Errorf("%q: found=%v want %v", text, s.found, want)
		}
	}
}

func TestCounterResetDetected(t *testing.T) {
	fa := appsAdmin(t)
	srv := httptest.NewServer(fa)
	defer srv.Close()
	c, _ := newTestCollector(t, srv.Listener.Addr().String(), &clock{t: time.Unix(1e9, 0)})
	s, _ := c.Collect(context.Background())
	if s.Restarted {
		t.Fatal("first snapshot marked restarted")
	}
	fa.set(func(f *fakeAdmin) {
		f.stats = newStats().set("cluster_manager.cds.version", 1).set("listener_manager.lds.version", 1).
			set("cluster.cds_egress_apps_serviceB_http2_80.upstream_rq_total", 1).json()
	})
	if s, _ := c.Collect(context.Background()); s == nil || !s.Restarted {
		t.Fatal("counter going 3 → 1 not seen as a restart")
	}
}
