package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// fakeStats is a Stats with canned answers.
type fakeStats struct {
	mu       sync.Mutex
	text     string
	writeErr error // returned after writing partial (may be "")
	partial  string
	ext      []*dto.MetricFamily
	extErr   error
	usedOnly []bool
}

func (f *fakeStats) WritePrometheus(_ context.Context, w io.Writer, usedOnly bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.usedOnly = append(f.usedOnly, usedOnly)
	if f.writeErr != nil {
		io.WriteString(w, f.partial)
		return f.writeErr
	}
	_, err := io.WriteString(w, f.text)
	return err
}

func (f *fakeStats) Extension(context.Context) ([]*dto.MetricFamily, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ext, f.extErr
}

func (f *fakeStats) setExt(text string) {
	fams := parseText(text)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ext = fams
}

func parseText(text string) []*dto.MetricFamily {
	p := expfmt.NewTextParser(model.LegacyValidation)
	m, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		panic(err)
	}
	var out []*dto.MetricFamily
	for _, mf := range m {
		out = append(out, mf)
	}
	return out
}

type testServer struct {
	srv   *Server
	h     http.Handler
	fe    *fakeEnvoy
	stats *fakeStats
	proc  *Process
	snaps *Snapshotter
}

type serverOpt func(*ServerConfig)

// newTestServer builds the API over admin (a fake Envoy over TCP unless
// given) with an unlimited rate limiter unless opts change it.
func newTestServer(t *testing.T, admin EnvoyAdmin, opts ...serverOpt) *testServer {
	t.Helper()
	ts := &testServer{fe: newFakeEnvoy(), stats: &fakeStats{}, proc: &Process{}}
	if admin == nil {
		admin = tcpAdmin(t, ts.fe)
	} else if ha, ok := admin.(*handlerAdmin); ok {
		ts.fe = ha.h.(*fakeEnvoy)
	}
	cfg := defaults()
	h, err := NewHealth(HealthConfig{Admin: admin, Process: ts.proc, Config: cfg, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	sc := ServerConfig{Config: cfg, Admin: admin, Process: ts.proc, Health: h, Stats: ts.stats, Log: testLog(t),
		Limiter: rate.NewLimiter(rate.Inf, 0)}
	for _, o := range opts {
		o(&sc)
	}
	ts.snaps = sc.Snapshots
	if ts.srv, err = NewServer(sc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.srv.levels.close)
	ts.h = ts.srv.Handler()
	return ts
}

type call struct {
	method, target, body string
	code                 int
	resp                 string
}

func (c call) check(t *testing.T, h http.Handler) {
	t.Helper()
	code, body := do(h, c.method, c.target, c.body)
	if code != c.code || body != c.resp {
		t.Errorf("%s %s: %d %q, want %d %q", c.method, c.target, code, body, c.code, c.resp)
	}
}

func TestStatusEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.proc.started(0)
	ts.proc.running(7)
	h := ts.srv.cfg.Health
	h.Poll(context.Background())
	code, body := do(ts.h, http.MethodGet, "/status", "")
	if code != 200 || body != string(h.Status().Marshal()) || !strings.Contains(body, `"healthStatus": "HEALTHY"`) || !strings.Contains(body, `"envoyPid": "7"`) {
		t.Fatalf("GET /status: %d\n%s", code, body)
	}
	call{"POST", "/status", "", 405, "Invalid method [POST] in request: /status supports GET\n"}.check(t, ts.h)
	call{"GET", "/nope", "", 404, "404 page not found\n"}.check(t, ts.h)
	call{"GET", "/status/", "", 404, "404 page not found\n"}.check(t, ts.h)
}

func TestDrainEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, c := range []call{
		{"POST", "/drain_listeners", "", 200, "OK\n"},
		{"POST", "/drain_listeners?inboundonly", "", 200, "OK\n"},
		{"GET", "/drain_listeners?inboundonly", "", 400, "Invalid method [GET] in request\n"},
		{"POST", "/drain_listeners?inboundonly", "x", 400, "Unexpected content in request. Body size [1]\n"},
		{"POST", "/drain_listeners?foo=bar", "", 400, "Unexpected query parameters specified in request [map[foo:[bar]]]\n"},
		{"POST", "/drain_listeners?inboundonly&graceful", "", 400, "Unexpected number of query parameters specified in request: [2]\n"},
		{"POST", "/drain_listeners?a=%zz", "", 400, "Unable to parse queries in URL: invalid URL escape \"%zz\"\n"},
	} {
		c.check(t, ts.h)
	}
	want := []string{"POST /drain_listeners", "POST /drain_listeners?inboundonly"}
	if got := ts.fe.callList(); !slices.Equal(got, want) {
		t.Errorf("envoy calls = %q, want %q", got, want)
	}

	down := newTestServer(t, deadAdmin(t))
	call{"POST", "/drain_listeners?inboundonly", "", 500, "Unable to drain Envoy listeners\n"}.check(t, down.h)
}

// deadAdmin is a client for an address nobody listens on.
func deadAdmin(t *testing.T) *envoyadmin.Client {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	c, err := envoyadmin.New(addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEnableLoggingErrors(t *testing.T) {
	ts := newTestServer(t, nil)
	for _, c := range []call{
		{"GET", "/enableLogging?level=debug", "", 400, "Only POST requests are supported\n"},
		{"POST", "/enableLogging?level=debug", "x", 400, "Invalid request\n"},
		{"POST", "/enableLogging", "", 400, "Invalid request\n"},
		{"POST", "/enableLogging?level=", "", 400, "Invalid request\n"},
		{"POST", "/enableLogging?level=debug&foo=1", "", 400, "Invalid request\n"},
		{"POST", "/enableLogging?level=debug&level=trace", "", 400, "Invalid request\n"},
		{"POST", "/enableLogging?level=debug&permanent=maybe", "", 400, "Invalid request\n"},
		{"POST", "/enableLogging?level=verbose", "", 400, "Invalid log level specified\n"},
		{"POST", "/enableLogging?level=info", "", 304, ""},
		// App Mesh refused levels longer than 5 characters.
		{"POST", "/enableLogging?level=critical", "", 200, "Setting logging level from [info] to [critical]\n"},
		{"POST", "/enableLogging?level=warning&permanent=true", "", 200, "Setting logging level from [critical] to [warning]\n"},
		{"POST", "/enableLogging?level=WARN", "", 200, "Setting logging level from [warning] to [warn]\n"},
	} {
		c.check(t, ts.h)
	}
	ts.fe.set(func(f *fakeEnvoy) { f.loggingFail = true })
	call{"POST", "/enableLogging?level=error", "", 500, "Unable to set logging level to [error]\n"}.check(t, ts.h)
	down := newTestServer(t, deadAdmin(t))
	call{"POST", "/enableLogging?level=error", "", 500, "Unable to set logging level to [error]\n"}.check(t, down.h)
}

// TestEnableLoggingReset runs the reset timer on synctest's clock.
func TestEnableLoggingReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newTestServer(t, &handlerAdmin{h: newFakeEnvoy()})
		logging := func() []string {
			var out []string
			for _, c := range ts.fe.callList() {
				if strings.HasPrefix(c, "POST /logging") {
					out = append(out, strings.TrimPrefix(c, "POST /logging?level="))
				}
			}
			return out
		}
		expect := func(want ...string) {
			t.Helper()
			synctest.Wait()
			if got := logging(); !slices.Equal(got, want) {
				t.Fatalf("envoy /logging calls = %q, want %q", got, want)
			}
		}
		call{"POST", "/enableLogging?level=debug", "", 200, "Setting logging level from [info] to [debug]\n"}.check(t, ts.h)
		time.Sleep(299 * time.Second)
		expect("debug")
		// A new request re-arms the timer and reports the live level.
		call{"POST", "/enableLogging?level=trace", "", 200, "Setting logging level from [debug] to [trace]\n"}.check(t, ts.h)
		time.Sleep(2 * time.Second)
		expect("debug", "trace")
		time.Sleep(298 * time.Second)
		expect("debug", "trace", "info")
		call{"POST", "/enableLogging?level=info", "", 304, ""}.check(t, ts.h)

		// The same level again re-arms the pending reset.
		call{"POST", "/enableLogging?level=debug", "", 200, "Setting logging level from [info] to [debug]\n"}.check(t, ts.h)
		time.Sleep(200 * time.Second)
		call{"POST", "/enableLogging?level=debug", "", 304, ""}.check(t, ts.h)
		time.Sleep(200 * time.Second)
		expect("debug", "trace", "info", "debug")
		time.Sleep(100 * time.Second)
		expect("debug", "trace", "info", "debug", "info")

		// permanent=true: no reset; and it cancels a pending one.
		call{"POST", "/enableLogging?level=debug&permanent=true", "", 200, "Setting logging level from [info] to [debug]\n"}.check(t, ts.h)
		time.Sleep(time.Hour)
		expect("debug", "trace", "info", "debug", "info", "debug")
		call{"POST", "/enableLogging?level=trace", "", 200, "Setting logging level from [debug] to [trace]\n"}.check(t, ts.h)
		call{"POST", "/enableLogging?level=trace&permanent=true", "", 304, ""}.check(t, ts.h)
		time.Sleep(time.Hour)
		expect("debug", "trace", "info", "debug", "info", "debug", "trace")

		// A restarted Envoy runs at the baseline again, and a pending reset
		// is dropped.
		call{"POST", "/enableLogging?level=error", "", 200, "Setting logging level from [trace] to [error]\n"}.check(t, ts.h)
		ts.proc.started(1)
		call{"POST", "/enableLogging?level=info", "", 304, ""}.check(t, ts.h)
		time.Sleep(time.Hour)
		expect("debug", "trace", "info", "debug", "info", "debug", "trace", "error")
	})
}

func TestRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newTestServer(t, &handlerAdmin{h: newFakeEnvoy()}, func(c *ServerConfig) { c.Limiter = nil })
		paths := []string{"/status", "/stats/prometheus", "/nope", "/status"}
		for i := range RateBurst {
			if code, _ := do(ts.h, "GET", paths[i%len(paths)], ""); code == http.StatusTooManyRequests {
				t.Fatalf("request %d limited", i)
			}
		}
		// One bucket for every endpoint.
		for _, p := range []string{"/status", "/drain_listeners", "/enableLogging?level=debug", "/stats/prometheus"} {
			call{"POST", p, "", 429, "Too Many Requests\n"}.check(t, ts.h)
		}
		time.Sleep(100 * time.Millisecond) // one token
		if code, _ := do(ts.h, "GET", "/status", ""); code != 200 {
			t.Fatalf("after 100ms: %d", code)
		}
		call{"GET", "/status", "", 429, "Too Many Requests\n"}.check(t, ts.h)
	})
}

// appMeshInput is the Envoy text of App Mesh's
// TestEnvoyPrometheusStatsHandler_HandleStats_Success_QueryParameter_Metrics_Filtering_and_Sorting.
const appMeshInput = `# TYPE envoy_appmesh_GrpcRequestCount counter
envoy_appmesh_GrpcRequestCount{Mesh="howto-k8s-http2",VirtualNode="client_howto-k8s-http2"} 0
envoy_appmesh_GrpcRequestCount{Mesh="howto-k8s-http1",VirtualNode="client_howto-k8s-http1"} 0
# TYPE envoy_cluster_default_total_match_count counter
envoy_cluster_default_total_match_count{envoy_cluster_name="cds_egress_howto-k8s-http2_color-green_http_8080"} 0
# TYPE envoy_appmesh_NewConnectionCount counter
envoy_appmesh_NewConnectionCount{Mesh="howto-k8s-http2",VirtualNode="client_howto-k8s-http2"} 0
`

const appMeshWant = "\n# TYPE GrpcRequestCount counter\nGrpcRequestCount{Mesh=\"howto-k8s-http1\",VirtualNode=\"client_howto-k8s-http1\"} 0\nGrpcRequestCount{Mesh=\"howto-k8s-http2\",VirtualNode=\"client_howto-k8s-http2\"} 0\n\n# TYPE NewConnectionCount counter\nNewConnectionCount{Mesh=\"howto-k8s-http2\",VirtualNode=\"client_howto-k8s-http2\"} 0\n"

func TestStatsEndpoint(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.stats.text = "# TYPE envoy_x counter\nenvoy_x 1\n"
	ts.stats.setExt(appMeshInput)
	usage := ", usage: /stats/prometheus?filter=metrics_extension\n"
	for _, c := range []call{
		{"GET", "/stats/prometheus", "", 200, ts.stats.text},
		{"GET", "/stats/prometheus?usedonly", "", 200, ts.stats.text},
		{"GET", "/stats/prometheus?filter=metrics_extension", "", 200, appMeshWant},
		{"GET", "/stats/prometheus?usedonly&filter=metrics_extension", "", 200, appMeshWant},
		{"POST", "/stats/prometheus", "", 400, "invalid method [POST] in request\n"},
		{"GET", "/stats/prometheus", "x", 400, "unexpected content in request. Body size [1]\n"},
		{"GET", "/stats/prometheus?format=json", "", 400, "unsupported query parameter: format\n"},
		{"GET", "/stats/prometheus?filter=appmesh", "", 400, "unsupported query value for parameter filter: appmesh" + usage},
		{"GET", "/stats/prometheus?filter", "", 400, "unsupported query value for parameter filter: " + usage},
		{"GET", "/stats/prometheus?delta", "", 400, "when delta is enabled, both usedonly and filter query parameters are required\n"},
		{"GET", "/stats/prometheus?delta&usedonly", "", 400, "when delta is enabled, both usedonly and filter query parameters are required\n"},
		{"GET", "/stats/prometheus?delta&usedonly&filter=metrics_extension", "", 400, "delta needs the stats snapshotter: set ENABLE_STATS_SNAPSHOT=true on the agent\n"},
	} {
		c.check(t, ts.h)
	}
	if want := []bool{false, true}; !slices.Equal(ts.stats.usedOnly, want) {
		t.Errorf("usedOnly = %v, want %v", ts.stats.usedOnly, want)
	}

	ts.stats.writeErr = errors.New("envoy went away")
	call{"GET", "/stats/prometheus", "", 500, "Failed to fetch stats from Envoy\n"}.check(t, ts.h)
	ts.stats.partial = "# TYPE envoy_x counter\n"
	call{"GET", "/stats/prometheus", "", 200, ts.stats.partial}.check(t, ts.h) // too late for a 500
	ts.stats.extErr = errors.New("no")
	call{"GET", "/stats/prometheus?filter=metrics_extension", "", 500, "Failed to fetch stats from Envoy\n"}.check(t, ts.h)
}

// TestEnvoyStats: the placeholder streams Envoy's /stats/prometheus.
func TestEnvoyStats(t *testing.T) {
	fe := newFakeEnvoy()
	fe.prom = "# TYPE envoy_y gauge\nenvoy_y 2\n"
	ts := newTestServer(t, nil, func(c *ServerConfig) { c.Stats = EnvoyStats{Admin: c.Admin} })
	ts.fe.set(func(f *fakeEnvoy) { f.prom = fe.prom })
	call{"GET", "/stats/prometheus?usedonly", "", 200, fe.prom}.check(t, ts.h)
	call{"GET", "/stats/prometheus", "", 200, fe.prom}.check(t, ts.h)
	call{"GET", "/stats/prometheus?filter=metrics_extension", "", 200, ""}.check(t, ts.h)
	want := []string{"GET /stats/prometheus?usedonly", "GET /stats/prometheus"}
	if got := ts.fe.callList(); !slices.Equal(got, want) {
		t.Errorf("envoy calls = %q, want %q", got, want)
	}
	ts.fe.set(func(f *fakeEnvoy) { f.promFail = true })
	call{"GET", "/stats/prometheus", "", 500, "Failed to fetch stats from Envoy\n"}.check(t, ts.h)
	down := newTestServer(t, deadAdmin(t), func(c *ServerConfig) { c.Stats = EnvoyStats{Admin: c.Admin} })
	call{"GET", "/stats/prometheus", "", 500, "Failed to fetch stats from Envoy\n"}.check(t, down.h)
}

// TestStatsDelta: ?delta serves live values until the first snapshot, then
// the delta between the last two; a restart of Envoy starts over.
func TestStatsDelta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ts *testServer
		ts = newTestServer(t, &handlerAdmin{h: newFakeEnvoy()}, func(c *ServerConfig) {
			s, err := NewSnapshotter(SnapshotterConfig{Stats: c.Stats, Process: c.Process, Log: c.Log, Interval: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			c.Snapshots = s
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- ts.snaps.Run(ctx) }()
		ts.proc.started(0)
		counter := func(v int) string {
			return fmt.Sprintf("# TYPE envoy_appmesh_RequestCount counter\nenvoy_appmesh_RequestCount{Mesh=\"m\"} %d\n# TYPE envoy_appmesh_Gauge gauge\nenvoy_appmesh_Gauge %d\n", v, v)
		}
		want := func(v int) string {
			return fmt.Sprintf("\n# TYPE Gauge gauge\nGauge %d\n\n# TYPE RequestCount counter\nRequestCount{Mesh=\"m\"} %d\n", v, v)
		}
		wantDelta := func(g, c int) string {
			return fmt.Sprintf("\n# TYPE Gauge gauge\nGauge %d\n\n# TYPE RequestCount counter\nRequestCount{Mesh=\"m\"} %d\n", g, c)
		}
		const q = "/stats/prometheus?usedonly&filter=metrics_extension&delta"
		ts.stats.setExt(counter(5))
		call{"GET", q, "", 200, want(5)}.check(t, ts.h) // no snapshot yet: live
		time.Sleep(time.Minute)
		synctest.Wait()
		ts.stats.setExt(counter(7))
		call{"GET", q, "", 200, want(5)}.check(t, ts.h) // first snapshot is the delta
		time.Sleep(time.Minute)
		synctest.Wait()
		call{"GET", q, "", 200, wantDelta(7, 2)}.check(t, ts.h)
		ts.stats.setExt(counter(3)) // counter reset
		time.Sleep(time.Minute)
		synctest.Wait()
		call{"GET", q, "", 200, wantDelta(3, 3)}.check(t, ts.h)

		ts.proc.started(1) // Envoy restarted: live values until the next snapshot
		ts.stats.setExt(counter(1))
		call{"GET", q, "", 200, want(1)}.check(t, ts.h)
		time.Sleep(time.Minute)
		synctest.Wait()
		ts.stats.setExt(counter(4))
		call{"GET", q, "", 200, want(1)}.check(t, ts.h)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestDelta(t *testing.T) {
	fams := func(text string) map[string]*dto.MetricFamily { return extensionFamilies(parseText(text)) }
	render := func(m map[string]*dto.MetricFamily) string {
		var b strings.Builder
		if err := writeFamilies(&b, m); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	tests := []struct {
		name, old, cur, want string
	}{
		{
			name: "first snapshot is the delta",
			cur:  "# TYPE envoy_appmesh_C counter\nenvoy_appmesh_C{a=\"1\"} 4\n",
			want: "\n# TYPE C counter\nC{a=\"1\"} 4\n",
		},
		{
			name: "counters per label set; new series raw; reset raw",
			old:  "# TYPE envoy_appmesh_C counter\nenvoy_appmesh_C{a=\"1\"} 4\nenvoy_appmesh_C{a=\"2\"} 10\nenvoy_appmesh_C{a=\"3\"} 1\n",
			cur:  "# TYPE envoy_appmesh_C counter\nenvoy_appmesh_C{a=\"1\"} 6\nenvoy_appmesh_C{a=\"2\"} 3\nenvoy_appmesh_C{a=\"4\"} 8\n",
			want: "\n# TYPE C counter\nC{a=\"1\"} 2\nC{a=\"2\"} 3\nC{a=\"4\"} 8\n",
		},
		{
			name: "label order does not matter",
			old:  "# TYPE envoy_appmesh_C counter\nenvoy_appmesh_C{a=\"1\",b=\"2\"} 4\n",
			cur:  "# TYPE envoy_appmesh_C counter\nenvoy_appmesh_C{b=\"2\",a=\"1\"} 5\n",
			want: "\n# TYPE C counter\nC{a=\"1\",b=\"2\"} 1\n",
		},
		{
			name: "gauges raw",
			old:  "# TYPE envoy_appmesh_G gauge\nenvoy_appmesh_G 9\n",
			cur:  "# TYPE envoy_appmesh_G gauge\nenvoy_appmesh_G 4\n",
			want: "\n# TYPE G gauge\nG 4\n",
		},
		{
			name: "histograms per bucket, count and sum",
			old:  "# TYPE envoy_appmesh_H histogram\nenvoy_appmesh_H_bucket{le=\"1\"} 1\nenvoy_appmesh_H_bucket{le=\"+Inf\"} 2\nenvoy_appmesh_H_sum 3\nenvoy_appmesh_H_count 2\n",
			cur:  "# TYPE envoy_appmesh_H histogram\nenvoy_appmesh_H_bucket{le=\"1\"} 4\nenvoy_appmesh_H_bucket{le=\"+Inf\"} 7\nenvoy_appmesh_H_sum 10.5\nenvoy_appmesh_H_count 7\n",
			want: "\n# TYPE H histogram\nH_bucket{le=\"1\"} 3\nH_bucket{le=\"+Inf\"} 5\nH_sum 7.5\nH_count 5\n",
		},
		{
			name: "histogram reset is raw, not an underflow",
			old:  "# TYPE envoy_appmesh_H histogram\nenvoy_appmesh_H_bucket{le=\"1\"} 5\nenvoy_appmesh_H_bucket{le=\"+Inf\"} 9\nenvoy_appmesh_H_sum 30\nenvoy_appmesh_H_count 9\n",
			cur:  "# TYPE envoy_appmesh_H histogram\nenvoy_appmesh_H_bucket{le=\"1\"} 1\nenvoy_appmesh_H_bucket{le=\"+Inf\"} 2\nenvoy_appmesh_H_sum 3\nenvoy_appmesh_H_count 2\n",
			want: "\n# TYPE H histogram\nH_bucket{le=\"1\"} 1\nH_bucket{le=\"+Inf\"} 2\nH_sum 3\nH_count 2\n",
		},
		{
			name: "untyped left out",
			cur:  "envoy_appmesh_U 3\n# TYPE envoy_appmesh_C counter\nenvoy_appmesh_C 1\n",
			old:  "envoy_appmesh_U 1\n",
			want: "\n# TYPE C counter\nC 1\n",
		},
	}
	for _, tc := range tests {
		var old map[string]*dto.MetricFamily
		if tc.old != "" {
			old = fams(tc.old)
		}
		cur := fams(tc.cur)
		before := render(cur)
		if got := render(Delta(old, cur)); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
		if render(cur) != before {
			t.Errorf("%s: Delta modified its input", tc.name)
		}
	}
}
