package fakeenvoy

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

func TestBins(t *testing.T) {
	cases := []struct {
		v            float64
		lower, width float64
	}{
		{0, 0, 0}, {1, 1, 0.1}, {5, 5, 0.1}, {9, 9, 0.1}, {10, 10, 1}, {23, 23, 1}, {99, 99, 1},
		{100, 100, 10}, {123, 120, 10}, {999, 990, 10}, {1000, 1000, 100}, {3600000, 3600000, 100000},
		{0.5, 0.5, 0.01}, {1.55, 1.5, 0.1},
	}
	for _, c := range cases {
		b, ok := binOf(c.v)
		if !ok || b.lower() != c.lower || b.width() != c.width {
			t.Errorf("binOf(%v) = [%v, +%v) ok=%v, want [%v, +%v)", c.v, b.lower(), b.width(), ok, c.lower, c.width)
		}
	}
	if _, ok := binOf(math.NaN()); ok {
		t.Error("NaN binned")
	}
}

func TestQuantilesAndBuckets(t *testing.T) {
	var h hist
	if q := h.quantiles(SupportedQuantiles); !math.IsNaN(q[0]) {
		t.Errorf("empty histogram quantile %v, want NaN", q[0])
	}
	b, _ := binOf(5)
	h.insert(b, 1)
	q := h.quantiles([]float64{0, 0.5, 1})
	if q[0] != 5 || math.Abs(q[1]-5.05) > 1e-12 || q[2] != 5.1 {
		t.Errorf("quantiles of {5} = %v, want [5 5.05 5.1]", q)
	}
	// A value equal to a bound is not below it: its bin ends above.
	if got := h.cumulativeBuckets([]float64{5, 10}); got[0] != 0 || got[1] != 1 {
		t.Errorf("buckets = %v", got)
	}
	z, _ := binOf(0)
	h.insert(z, 2)
	if got := h.cumulativeBuckets([]float64{0.5}); got[0] != 2 {
		t.Errorf("zero bin not below 0.5: %v", got)
	}
}

func TestTagExtraction(t *testing.T) {
	p, err := newTagProducer(nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, extracted, tags string }{
		{"cluster.foo.upstream_rq_200", "cluster.upstream_rq", "envoy.response_code=200 envoy.cluster_name=foo"},
		{"cluster.foo.upstream_rq_5xx", "cluster.upstream_rq_xx", "envoy.response_code_class=5 envoy.cluster_name=foo"},
		{"cluster.foo.external.upstream_rq_503", "cluster.external.upstream_rq", "envoy.response_code=503 envoy.cluster_name=foo"},
		{"listener.0.0.0.0_15000.downstream_cx_total", "listener.downstream_cx_total", "envoy.listener_address=0.0.0.0_15000"},
		{"listener.[__]_15000.downstream_cx_total", "listener.downstream_cx_total", "envoy.listener_address=[__]_15000"},
		{"listener.0.0.0.0_15000.http.ingress.downstream_rq_2xx", "listener.http.downstream_rq_xx", "envoy.response_code_class=2 envoy.http_conn_manager_prefix=ingress envoy.listener_address=0.0.0.0_15000"},
		{"http.ingress.downstream_rq_total", "http.downstream_rq_total", "envoy.http_conn_manager_prefix=ingress"},
		{"tcp.egress.downstream_cx_total", "tcp.downstream_cx_total", "envoy.tcp_prefix=egress"},
		{"server.live", "server.live", ""},
		{"listener_manager.worker_1.dispatcher.loop_duration_us", "listener_manager.dispatcher.loop_duration_us", "envoy.worker_id=worker_1"},
	}
	for _, c := range cases {
		tags, ex := p.produce(c.name)
		var s []string
		for _, tg := range tags {
			s = append(s, tg.Name+"="+tg.Value)
		}
		if ex != c.extracted || strings.Join(s, " ") != c.tags {
			t.Errorf("%s: %q %q, want %q %q", c.name, ex, strings.Join(s, " "), c.extracted, c.tags)
		}
	}
}

func TestStatsCreatedWithConfig(t *testing.T) {
	e, _ := newApps(t, false)
	names := e.StatNames(Counter)
	gauges := e.StatNames(Gauge)
	hists := e.StatNames(Histogram)
	has := func(list []string, n string) bool {
		for _, x := range list {
			if x == n {
				return true
			}
		}
		return false
	}
	perCluster := 0
	for _, n := range append(append([]string(nil), names...), gauges...) {
		if strings.HasPrefix(n, "cluster."+egressB+".") {
			perCluster++
		}
	}
	if perCluster < 15 {
		t.Errorf("%d counters and gauges for %s", perCluster, egressB)
	}
	for _, n := range []string{"cluster." + egressB + ".upstream_cx_connect_ms", "cluster." + egressB + ".upstream_cx_length_ms", "http.ingress.downstream_rq_time"} {
		if !has(hists, n) {
			t.Errorf("no histogram %s", n)
		}
	}
	for _, n := range []string{"cluster." + egressB + ".upstream_rq_2xx", "cluster." + egressB + ".upstream_rq_200", "cluster." + egressB + ".upstream_rq_time"} {
		if has(names, n) || has(hists, n) {
			t.Errorf("%s exists before any response", n)
		}
	}
	for _, n := range []string{"listener.0.0.0.0_15000.downstream_cx_total", "listener.0.0.0.0_15001.downstream_cx_total", "http.ingress.downstream_rq_2xx", "http.egress.downstream_rq_total", "tcp.egress.downstream_cx_rx_bytes_total", "listener_manager.listener_create_failure"} {
		if !has(names, n) {
			t.Errorf("no counter %s", n)
		}
	}
	for _, n := range []string{"server.live", "server.uptime", "control_plane.connected_state", "cluster_manager.cds.version", "listener_manager.lds.version", "http.ingress.downstream_cx_active"} {
		if !has(gauges, n) {
			t.Errorf("no gauge %s", n)
		}
	}
}

func TestVersionsAndRemoval(t *testing.T) {
	e, clk := newApps(t, false)
	v1, _ := e.StatValue("cluster_manager.cds.version")
	if v1 == 0 {
		t.Fatal("cds.version not set")
	}
	cs, ls, v := appsResources(t, "serviceA")
	clk.t = clk.t.Add(time.Minute)
	v[resource.ClusterType] = "v2"
	e.SetConfig(cs[1:], ls, v) // drop the first cluster
	v2, _ := e.StatValue("cluster_manager.cds.version")
	if v2 == v1 || v2 != versionHash("v2") {
		t.Errorf("cds.version %d → %d", v1, v2)
	}
	if _, ok := e.StatValue("cluster." + cs[0].GetName() + ".upstream_rq_total"); ok {
		t.Error("stats of a removed cluster remain")
	}
	if n, _ := e.StatValue("cluster_manager.cluster_removed"); n != 1 {
		t.Errorf("cluster_removed = %d", n)
	}
	// Unchanged clusters keep their version and last_updated.
	body, err := e.ConfigDump(ConfigDumpQuery{Resource: "dynamic_active_clusters"})
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Configs []struct {
			VersionInfo string `json:"version_info"`
			LastUpdated string `json:"last_updated"`
		} `json:"configs"`
	}
	if err := json.Unmarshal(body, &dump); err != nil {
		t.Fatal(err)
	}
	for _, c := range dump.Configs {
		if c.VersionInfo == "v2" || c.LastUpdated != "2025-03-01T12:00:00Z" {
			t.Errorf("unchanged cluster got %s %s", c.VersionInfo, c.LastUpdated)
		}
	}
}

func TestUsedOnlyAndReset(t *testing.T) {
	e, _ := newApps(t, false)
	_, body, _ := get(t, e, "GET", "/stats?usedonly&filter=^cluster\\."+egressB)
	// Only the gauges Envoy sets when it creates the cluster (one DNS host).
	if body != "cluster."+egressB+".max_host_weight: 1\ncluster."+egressB+".membership_degraded: 0\ncluster."+egressB+".membership_excluded: 0\ncluster."+egressB+".membership_healthy: 1\ncluster."+egressB+".membership_total: 1\ncluster."+egressB+".version: 0\n" {
		t.Errorf("used before traffic:\n%s", body)
	}
	drive(e)
	_, body, _ = get(t, e, "GET", "/stats?usedonly&filter=^cluster\\."+egressB+"\\.upstream_rq_(total|time)$")
	if !strings.HasPrefix(body, "cluster."+egressB+".upstream_rq_total: 20\ncluster."+egressB+".upstream_rq_time: P0(") {
		t.Errorf("used after traffic:\n%s", body)
	}
	e.Reset()
	if n, _ := e.StatValue("cluster." + egressB + ".upstream_rq_total"); n != 0 {
		t.Errorf("after Reset upstream_rq_total = %d", n)
	}
	if _, ok := e.StatValue("cluster." + egressB + ".upstream_rq_200"); ok {
		t.Error("after Reset the lazily created upstream_rq_200 remains")
	}
	if _, ok := e.StatValue("cluster." + egressB + ".membership_total"); !ok {
		t.Error("after Reset the config's stats are gone")
	}
}

func TestConfigDump(t *testing.T) {
	e, _ := newApps(t, false)
	code, body, h := get(t, e, "GET", "/config_dump")
	if code != 200 || h.Get("Content-Type") != ctJSON {
		t.Fatalf("%d %s", code, h.Get("Content-Type"))
	}
	var dump struct {
		Configs []map[string]json.RawMessage `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, c := range dump.Configs {
		var ty string
		_ = json.Unmarshal(c["@type"], &ty)
		types = append(types, strings.TrimPrefix(ty, "type.googleapis.com/envoy.admin.v3."))
	}
	if strings.Join(types, " ") != "BootstrapConfigDump ClustersConfigDump ListenersConfigDump RoutesConfigDump ScopedRoutesConfigDump SecretsConfigDump" {
		t.Errorf("config types %v", types)
	}
	var clusters struct {
		Dynamic []struct {
			VersionInfo string `json:"version_info"`
			Cluster     struct {
				Name     string `json:"name"`
				Metadata struct {
					FilterMetadata map[string]map[string]string `json:"filter_metadata"`
				} `json:"metadata"`
			} `json:"cluster"`
		} `json:"dynamic_active_clusters"`
	}
	if err := json.Unmarshal(mustJSON(dump.Configs[1]), &clusters); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range clusters.Dynamic {
		if c.Cluster.Name == egressB {
			found = true
			md := c.Cluster.Metadata.FilterMetadata["aws.appmesh"]
			if md["TargetVirtualNode"] != "serviceB" || md["Direction"] != "egress" || c.VersionInfo == "" {
				t.Errorf("%s: %+v", egressB, c)
			}
		}
	}
	if !found {
		t.Errorf("%s not in dynamic_active_clusters", egressB)
	}
	var listeners struct {
		Dynamic []struct {
			Name        string `json:"name"`
			ActiveState struct {
				VersionInfo string `json:"version_info"`
				Listener    struct {
					Type string `json:"@type"`
				} `json:"listener"`
			} `json:"active_state"`
		} `json:"dynamic_listeners"`
	}
	if err := json.Unmarshal(mustJSON(dump.Configs[2]), &listeners); err != nil {
		t.Fatal(err)
	}
	if len(listeners.Dynamic) != 2 || listeners.Dynamic[0].Name != "lds_egress_0.0.0.0_15001" || listeners.Dynamic[0].ActiveState.Listener.Type != "type.googleapis.com/envoy.config.listener.v3.Listener" {
		t.Errorf("dynamic_listeners: %+v", listeners.Dynamic)
	}

	for _, tc := range []struct {
		target string
		code   int
		want   string
	}{
		{"/config_dump?resource=dynamic_listeners&mask=name", 200, `"name": "lds_ingress_0.0.0.0_15000"`},
		{"/config_dump?resource=nope", 404, "nope not found in config dump"},
		{"/config_dump?resource=version_info", 400, "version_info is not a repeated field. Use ?mask=version_info to get only this field"},
		{"/config_dump?resource=dynamic_active_clusters&mask=cluster.nope", 400, "could not be successfully used."},
		{"/config_dump?mask=nope", 400, "FieldMask nope could not be successfully applied to any configs."},
		{"/config_dump?resource=dynamic_active_clusters&name_regex=serviceBv2", 200, `"name": "cds_egress_apps_serviceBv2_http2_80"`},
	} {
		code, body, _ := get(t, e, "GET", tc.target)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s", tc.target, code, body)
		}
	}
	_, body, _ = get(t, e, "GET", "/config_dump?resource=dynamic_active_clusters&name_regex=serviceBv2")
	if strings.Count(body, `"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster"`) != 1 {
		t.Errorf("name_regex:\n%s", body)
	}
}

func mustJSON(m map[string]json.RawMessage) []byte {
	b, _ := json.Marshal(m)
	return b
}

func TestAdminEndpoints(t *testing.T) {
	e, clk := newApps(t, false)
	for _, tc := range []struct {
		method, target string
		code           int
		body           string
	}{
		{"GET", "/ready", 200, "LIVE\n"},
		{"GET", "/nope", 404, "invalid path. admin commands are:\n  /: Admin home page\n"},
		{"GET", "/quitquitquit", 405, "Method GET not allowed, POST required."},
		{"GET", "/drain_listeners", 405, "Method GET not allowed, POST required."},
		{"GET", "/stats?format=xml", 400, "usage: /stats?format=(html|active-html|json|prometheus|text)\n\n"},
		{"GET", "/stats?filter=(", 400, "Invalid re2 regex"},
		{"GET", "/stats?histogram_buckets=all", 400, "usage: /stats?histogram_buckets=(cumulative|disjoint|none)\n"},
		{"GET", "/stats?type=Timers", 400, "invalid &type= param"},
		{"POST", "/logging?level=loud", 400, "error: unknown logger level\n\nusage: /logging?<name>=<level> (change single level)\n"},
		{"POST", "/logging?nope=info", 400, "error: unknown logger name\n\n"},
		{"POST", "/logging?level=debug&admin=info", 400, "error: invalid number of parameters\n\n"},
		{"POST", "/logging?upstream=trace", 200, "active loggers:\n  admin: info\n"},
		{"POST", "/logging?level=warning", 200, "active loggers:\n  admin: warning\n"},
		{"POST", "/drain_listeners?inboundonly&graceful", 200, "OK\n"},
		{"GET", "/ready", 503, "DRAINING\n"},
		{"POST", "/healthcheck/fail", 200, "OK\n"},
		{"POST", "/quitquitquit", 200, "OK\n"},
	} {
		code, body, _ := get(t, e, tc.method, tc.target)
		if code != tc.code || !strings.HasPrefix(body, tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.target, code, body, tc.code, tc.body)
		}
	}
	if lv := e.LogLevels(); lv["upstream"] != "warning" || lv["admin"] != "warning" {
		t.Errorf("log levels %v", lv)
	}
	if d := e.Drains(); len(d) != 1 || !d[0].InboundOnly || !d[0].Graceful || d[0].SkipExit {
		t.Errorf("drains %+v", d)
	}
	if !e.HealthCheckFailed() {
		t.Error("healthcheck/fail not recorded")
	}
	select {
	case <-e.Quit():
	default:
		t.Error("quitquitquit did not close Quit")
	}
	calls := e.Calls()
	if len(calls) != 17 || calls[1].Path != "/nope" || calls[4].RawQuery != "format=xml" || calls[2].Method != "GET" || calls[2].Code != 405 {
		t.Errorf("calls %+v", calls)
	}
	// server_info and pre-initialising.
	e.SetState(PreInitializing)
	clk.t = clk.t.Add(90 * time.Second)
	code, body, _ := get(t, e, "GET", "/ready")
	if code != 503 || body != "PRE_INITIALIZING\n" {
		t.Errorf("ready %d %q", code, body)
	}
	_, body, _ = get(t, e, "GET", "/server_info")
	var si struct {
		State   string `json:"state"`
		Version string `json:"version"`
		Uptime  string `json:"uptime_current_epoch"`
		Node    struct {
			ID string `json:"id"`
		} `json:"node"`
		CommandLine map[string]any `json:"command_line_options"`
	}
	if err := json.Unmarshal([]byte(body), &si); err != nil {
		t.Fatal(err)
	}
	if si.State != "PRE_INITIALIZING" || si.Uptime != "90s" || si.Node.ID != "mesh/apps/virtualNode/serviceA" || si.CommandLine["concurrency"] != float64(2) || !strings.Contains(si.Version, "/1.34.0/") {
		t.Errorf("server_info %+v", si)
	}
	// The admin listener's own stats count the requests.
	if n, _ := e.StatValue("http.admin.downstream_rq_total"); n != 19 {
		t.Errorf("http.admin.downstream_rq_total = %d", n)
	}
}

func TestInvalidStatsTag(t *testing.T) {
	if err := CheckStatsConfig(nil); err != nil {
		t.Fatal(err)
	}
	e := New(Options{StatsConfig: statsConfigWith("bad", `(?<=x)y`)})
	if e.Err() == nil {
		t.Error("a lookbehind regex tag was accepted")
	}
}

// TestConcurrent runs traffic and admin requests together (go test -race).
func TestConcurrent(t *testing.T) {
	e, _ := newApps(t, true)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				e.Request(egressB, 200+100*(i%4), time.Duration(i)*time.Millisecond, 10, 10)
				e.InboundTimed("0.0.0.0_15000", "ingress", 200, time.Millisecond, 1, 1)
				e.Connect("listener.0.0.0.0_15000")
				e.Disconnect("listener.0.0.0.0_15000")
				e.Record("custom.hist", float64(i))
				e.Add(fmt.Sprintf("custom.c%d", g), 1)
			}
		}(g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				for _, target := range []string{"/stats", "/stats?format=json&histogram_buckets=detailed", "/stats/prometheus", "/config_dump", "/server_info"} {
					if code, body, _ := get(t, e, "GET", target); code != 200 {
						t.Errorf("%s: %d %s", target, code, body)
					}
				}
				e.Flush()
			}
		}()
	}
	wg.Wait()
	if n, _ := e.StatValue("cluster." + egressB + ".upstream_rq_total"); n != 200 {
		t.Errorf("upstream_rq_total = %d", n)
	}
}

func statsConfigWith(name, re string) *metricsv3.StatsConfig {
	return &metricsv3.StatsConfig{StatsTags: []*metricsv3.TagSpecifier{{TagName: name, TagValue: &metricsv3.TagSpecifier_Regex{Regex: re}}}}
}
