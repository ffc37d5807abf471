package demo

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meshd/meshd/internal/promtool"
	"github.com/meshd/meshd/metrics"
)

var update = flag.Bool("update", false, "rewrite golden files")

// copyExamples copies examples/apps into a directory the test may edit.
func copyExamples(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := writeExamples(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

type running struct {
	d       *Demo
	metrics string
	done    chan error
	cancel  context.CancelFunc
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	addr := make(chan net.Addr, 1)
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.OnMetricsListen = func(a net.Addr) { addr <- a }
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{d: d, done: make(chan error, 1), cancel: cancel}
	go func() { r.done <- d.Run(ctx) }()
	select {
	case a := <-addr:
		r.metrics = "http://" + a.String() + "/metrics"
	case err := <-r.done:
		t.Fatalf("demo stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("metrics endpoint not listening after 10 s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("demo Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("demo did not stop within 15 s")
		}
	})
	return r
}

// waitFor polls the state until cond holds.
func (r *running) waitFor(t *testing.T, what string, timeout time.Duration, cond func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := r.d.State()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			var b bytes.Buffer
			Render(&b, s, time.Now())
			t.Fatalf("%s: not within %s; state:\n%s", what, timeout, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func totals(s State) map[string]int {
	out := map[string]int{}
	for _, tg := range s.Targets {
		out[tg.Node] = tg.Total
	}
	return out
}

func scrape(t *testing.T, url string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v\n%s", url, err, body)
	}
	return body, fams
}

// value returns the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		return m
	}
	t.Fatalf("%s has no series with %v", name, want)
	return nil
}

// TestDemo is issue 7's demo scenario: the getting-started mesh served to a
// proxyless client over mTLS with SDS certificates, the 75/25 split, the
// extension metrics agreeing with the traffic, a live edit moving traffic,
// and a bad edit changing nothing.
func TestDemo(t *testing.T) {
	dir := copyExamples(t)
	work := filepath.Join(t.TempDir(), "work")
	r := start(t, Config{ConfigDir: dir, WorkDir: work, RPS: 400, SVIDTTL: time.Hour})

	s := r.waitFor(t, "1,200 answers", 60*time.Second, func(s State) bool {
		n := totals(s)
		return n["serviceB"]+n["serviceBv2"] >= 1200
	})
	n := totals(s)
	share := 100 * float64(n["serviceB"]) / float64(n["serviceB"]+n["serviceBv2"])
	t.Logf("split: serviceB %d, serviceBv2 %d (%.1f %%)", n["serviceB"], n["serviceBv2"], share)
	if share < 70 || share > 80 {
		t.Errorf("serviceB got %.1f %% of the answers, want 75 ± 5", share)
	}
	if s.Targets[0].Weight != 75 || s.Targets[1].Weight != 25 || s.Errors != 0 {
		t.Errorf("targets %+v, errors %d (%s)", s.Targets, s.Errors, s.LastError)
	}

	// Certificates: one per process, with the App Mesh DNS name, fresh.
	if len(s.Certs) != 3 {
		t.Fatalf("certificates: %+v", s.Certs)
	}
	for _, c := range s.Certs {
		wantID := "spiffe://meshd.local/mesh/apps/virtualNode/" + c.Node
		wantDNS := strings.ToLower(c.Node) + ".apps.local"
		if c.ID != wantID || len(c.DNSNames) != 1 || c.DNSNames[0] != wantDNS {
			t.Errorf("certificate of %s: %s %v, want %s [%s]", c.Node, c.ID, c.DNSNames, wantID, wantDNS)
		}
		if left := time.Until(c.NotAfter); left <= 50*time.Minute || left > time.Hour+time.Minute {
			t.Errorf("certificate of %s expires in %s, want about 1h", c.Node, left)
		}
	}
	// Keys stay in memory: the work directory holds the CA and sockets only.
	if entries, err := os.ReadDir(work); err == nil {
		for _, e := range entries {
			if e.Name() != "state" && e.Name() != "sds.sock" && e.Name() != "xds.sock" {
				t.Errorf("unexpected file in the work directory: %s", e.Name())
			}
		}
	}

	// The extension on /metrics agrees with what the client saw: every
	// answer is one upstream request of serviceA's cluster for that node.
	body, fams := scrape(t, r.metrics)
	promtool.Check(t, body)
	after := totals(r.d.State())
	for _, node := range []string{"serviceB", "serviceBv2"} {
		m := value(t, fams, "envoy_appmesh_TargetResponseTime", map[string]string{"VirtualNode": "serviceA", "TargetVirtualNode": node, "TargetVirtualService": "serviceb.apps.local"})
		got := int(m.GetHistogram().GetSampleCount())
		if got < n[node] || got > after[node] {
			t.Errorf("TargetResponseTime count for %s = %d, want between %d and %d", node, got, n[node], after[node])
		}
		rc := value(t, fams, "envoy_appmesh_RequestCount", map[string]string{"VirtualNode": node, "Mesh": "apps"})
		if v := int(rc.GetCounter().GetValue()); v < n[node] {
			t.Errorf("RequestCount of %s = %d, want ≥ %d answers", node, v, n[node])
		}
	}
	for _, name := range []string{"meshd_sds_connections_open", "meshd_ca_root_expiry_timestamp_seconds", "meshd_controlplane_config_loads_total"} {
		if fams[name] == nil {
			t.Errorf("meshd's own metric %s missing from %s", name, r.metrics)
		}
	}

	// Editing the route moves all traffic to serviceBv2.
	route := filepath.Join(dir, "route-serviceB.json")
	old, err := os.ReadFile(route)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(strings.Replace(string(old), `"weight": 75`, `"weight": 0`, 1), `"weight": 25`, `"weight": 100`, 1)
	if edited == string(old) {
		t.Fatal("examples/apps/route-serviceB.json changed shape")
	}
	writeAtomic(t, route, edited)
	r.waitFor(t, "weights 0/100 served", 5*time.Second, func(s State) bool { return s.Targets[0].Weight == 0 && s.Targets[1].Weight == 100 })
	time.Sleep(500 * time.Millisecond) // connections of the old picker finish
	base := totals(r.d.State())
	s = r.waitFor(t, "200 more answers", 20*time.Second, func(s State) bool { return totals(s)["serviceBv2"] >= base["serviceBv2"]+200 })
	if got := totals(s)["serviceB"]; got != base["serviceB"] {
		t.Errorf("serviceB answered %d requests after the 0/100 edit", got-base["serviceB"])
	}

	// A bad edit is rejected and traffic goes on as before.
	writeAtomic(t, route, strings.Replace(edited, `"virtualNode": "serviceBv2"`, `"virtualNode": "nosuch"`, 1))
	r.waitFor(t, "bad edit rejected", 5*time.Second, func(s State) bool { return strings.Contains(s.ConfigNote, "rejected") })
	base = totals(r.d.State())
	s = r.waitFor(t, "traffic after a bad edit", 20*time.Second, func(s State) bool { return totals(s)["serviceBv2"] >= base["serviceBv2"]+100 })
	if s.Errors != 0 {
		t.Errorf("%d RPC errors: %s", s.Errors, s.LastError)
	}

	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.done <- nil // for the cleanup
	for _, f := range []string{"sds.sock", "xds.sock"} {
		if _, err := os.Stat(filepath.Join(work, f)); !os.IsNotExist(err) {
			t.Errorf("%s left behind after stop: %v", f, err)
		}
	}
}

func writeAtomic(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-edit")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestDemoShift: --shift applies its weights at its time, through the
// control plane, and a temporary work directory is removed at exit.
func TestDemoShift(t *testing.T) {
	r := start(t, Config{RPS: 300, Shift: []int64{0, 100}, ShiftAfter: 2 * time.Second})
	work := r.d.State().WorkDir
	s := r.waitFor(t, "shift applied", 10*time.Second, func(s State) bool { return strings.HasSuffix(s.Shift, "(applied)") })
	if s.Targets[0].Weight != 0 || s.Targets[1].Weight != 100 {
		t.Fatalf("weights after the shift: %+v", s.Targets)
	}
	time.Sleep(500 * time.Millisecond)
	base := totals(r.d.State())
	s = r.waitFor(t, "traffic after the shift", 20*time.Second, func(s State) bool { return totals(s)["serviceBv2"] >= base["serviceBv2"]+200 })
	if got := totals(s)["serviceB"]; got != base["serviceB"] {
		t.Errorf("serviceB answered %d requests after --shift 0/100", got-base["serviceB"])
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("temporary work directory %s left behind: %v", work, err)
	}
}

func TestNewRefuses(t *testing.T) {
	noClient := t.TempDir()
	if err := os.WriteFile(filepath.Join(noClient, "mesh.json"), []byte(`{"meshName": "m", "spec": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := copyExamples(t)
	if err := os.WriteFile(filepath.Join(bad, "route-serviceB.json"), []byte(`{"meshName": "apps", "virtualRouterName": "serviceB", "routeName": "serviceB", "spec": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing directory", Config{ConfigDir: filepath.Join(t.TempDir(), "nosuch")}, "configuration directory"},
		{"invalid mesh", Config{ConfigDir: bad}, "is not a valid mesh"},
		{"no client", Config{ConfigDir: noClient}, "no virtual node calls a virtual service"},
		{"shift arity", Config{ConfigDir: copyExamples(t), Shift: []int64{100}}, "--shift has 1 weights; the route to serviceb.apps.local has 2 targets"},
		{"trust domain", Config{TrustDomain: "Not A Domain"}, "trust domain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.WorkDir = t.TempDir()
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRecordAndQuantile(t *testing.T) {
	h := &metrics.Histogram{}
	for _, v := range []float64{0.05, 0.42, 0.47, 1.234, 1.26, 57, 57.9, 1234} {
		record(h, v)
	}
	want := []metrics.Bin{{Lower: 0, Width: 0.1, Count: 1}, {Lower: 0.4, Width: 0.1, Count: 2}, {Lower: 1.2, Width: 0.1, Count: 2},
		{Lower: 57, Width: 1, Count: 2}, {Lower: 1200, Width: 100, Count: 1}}
	if len(h.Bins) != len(want) {
		t.Fatalf("bins %+v, want %+v", h.Bins, want)
	}
	for i, b := range want {
		g := h.Bins[i]
		if g.Count != b.Count || fmt.Sprintf("%.3f/%.3f", g.Lower, g.Width) != fmt.Sprintf("%.3f/%.3f", b.Lower, b.Width) {
			t.Errorf("bin %d = %+v, want %+v", i, g, b)
		}
	}
	if q := quantile(h, 0.5); q < 1.2 || q > 1.3 {
		t.Errorf("p50 = %v, want in [1.2, 1.3]", q)
	}
	if q := quantile(h, 1); q < 1200 || q > 1300 {
		t.Errorf("p100 = %v, want in the last bin", q)
	}
}

func TestRender(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	h := &metrics.Histogram{}
	for _, v := range []float64{0.4, 0.5, 0.6, 2} {
		record(h, v)
	}
	s := State{
		Uptime: 42 * time.Second, ConfigDir: "examples/apps", ConfigNote: "11:59:20: 8 resources served",
		Mesh: "apps", Client: "serviceA", Service: "serviceb.apps.local", RPS: 50, Shift: "0/100 at 20s (pending)",
		Targets: []TargetState{{Node: "serviceB", Weight: 75, Recent: 376, Total: 1520}, {Node: "serviceBv2", Weight: 25, Recent: 124, Total: 504}},
		Certs: []CertState{{Node: "serviceA", ID: "spiffe://meshd.local/mesh/apps/virtualNode/serviceA", DNSNames: []string{"servicea.apps.local"},
			Serial: "3f0a1b2c3d4e5f60", NotAfter: now.Add(9*time.Minute + 18*time.Second), Renewals: 1}},
		Extension: []metrics.Series{
			{Metric: metrics.RequestCount, Kind: metrics.Counter, Dims: metrics.Dims{Mesh: "apps", ResourceKind: "VirtualNode", Resource: "serviceB"}, Value: 1520},
			{Metric: metrics.TargetResponseTime, Kind: metrics.HistogramKind, Dims: metrics.Dims{Mesh: "apps", ResourceKind: "VirtualNode", Resource: "serviceA", TargetVirtualNode: "serviceB", TargetVirtualService: "serviceb.apps.local"}, Hist: h},
		},
		MetricsURL: "http://127.0.0.1:9908/metrics", Errors: 2, LastError: "rpc error: code = Unavailable",
	}
	var b bytes.Buffer
	Render(&b, s, now)
	golden := filepath.Join("testdata", "render.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("Render differs from %s (go test ./internal/demo -run TestRender -update):\n%s", golden, b.String())
	}
}

func TestWindow(t *testing.T) {
	w := newWindow(10)
	t0 := time.Unix(1000, 0)
	for i := range 15 {
		w.addAt(t0.Add(time.Duration(i)*time.Second), "b")
	}
	w.addAt(t0.Add(14*time.Second), "v2")
	recent, total := w.counts(t0.Add(14 * time.Second))
	if recent["b"] != 10 || recent["v2"] != 1 || total["b"] != 15 {
		t.Fatalf("recent %v total %v", recent, total)
	}
	recent, _ = w.counts(t0.Add(30 * time.Second))
	if len(recent) != 0 {
		t.Fatalf("recent after 16 s of silence: %v", recent)
	}
}
