package fakeenvoy

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const egressB = "cds_egress_apps_serviceB_http2_80"

// drive sends 20 requests through serviceB (latencies 1..20 ms, every 10th
// a 503) and one inbound request.
func drive(e *Envoy) {
	for i := 0; i < 20; i++ {
		code := 200
		if i%10 == 9 {
			code = 503
		}
		e.Request(egressB, code, time.Duration(1+i)*time.Millisecond, 512, 256)
	}
	e.InboundTimed("0.0.0.0_15000", "ingress", 200, 7*time.Millisecond, 100, 200)
}

const (
	rqTimeSummary  = "P0(1,1) P25(5.1,5.1) P50(11,11) P75(16,16) P90(19,19) P95(20,20) P99(20.8,20.8) P99.5(20.9,20.9) P99.9(20.98,20.98) P100(21,21)"
	rqTimeBins     = "1,0.1:1, 2,0.1:1, 3,0.1:1, 4,0.1:1, 5,0.1:1, 6,0.1:1, 7,0.1:1, 8,0.1:1, 9,0.1:1, 10,1:1, 11,1:1, 12,1:1, 13,1:1, 14,1:1, 15,1:1, 16,1:1, 17,1:1, 18,1:1, 19,1:1, 20,1:1"
	rqTimeCumText  = "B0.5(0,0) B1(0,0) B5(4,4) B10(9,9) B25(20,20) B50(20,20) B100(20,20) B250(20,20) B500(20,20) B1000(20,20) B2500(20,20) B5000(20,20) B10000(20,20) B30000(20,20) B60000(20,20) B300000(20,20) B600000(20,20) B1.8e+06(20,20) B3.6e+06(20,20)"
	rqTimeDisjText = "B0.5(0,0) B1(0,0) B5(4,4) B10(5,5) B25(11,11) B50(0,0) B100(0,0) B250(0,0) B500(0,0) B1000(0,0) B2500(0,0) B5000(0,0) B10000(0,0) B30000(0,0) B60000(0,0) B300000(0,0) B600000(0,0) B1.8e+06(0,0) B3.6e+06(0,0)"
)

// TestStatsFormats pins the bodies of each /stats format for a few stats of
// serviceA's sidecar after known traffic. Histograms are merged once, after
// the traffic (ManualFlush), so interval and cumulative statistics agree.
func TestStatsFormats(t *testing.T) {
	rq := "cluster." + egressB + "."
	cases := []struct {
		name, target, want string
	}{
		{"text counters", "/stats?filter=" + egressB + `\.upstream_rq_(2|5)`, rq + "upstream_rq_200: 18\n" + rq + "upstream_rq_2xx: 18\n" + rq + "upstream_rq_503: 2\n" + rq + "upstream_rq_5xx: 2\n"},
		{"text counters and gauges sorted together", "/stats?filter=" + egressB + `\.upstream_cx_(total|active|rx_bytes_total)$`,
			rq + "upstream_cx_active: 1\n" + rq + "upstream_cx_rx_bytes_total: 10240\n" + rq + "upstream_cx_total: 1\n"},
		{"text summary", "/stats?filter=^cluster\\." + egressB + `\.upstream_rq_time$`, rq + "upstream_rq_time: " + rqTimeSummary + "\n"},
		{"text unused histogram", "/stats?filter=" + egressB + `\.upstream_cx_length_ms`, rq + "upstream_cx_length_ms: No recorded values\n"},
		{"text cumulative", "/stats?histogram_buckets=cumulative&filter=^cluster\\." + egressB + `\.upstream_rq_time$`, rq + "upstream_rq_time: " + rqTimeCumText + "\n"},
		{"text disjoint", "/stats?histogram_buckets=disjoint&filter=^cluster\\." + egressB + `\.upstream_rq_time$`, rq + "upstream_rq_time: " + rqTimeDisjText + "\n"},
		{"text detailed", "/stats?histogram_buckets=detailed&filter=^cluster\\." + egressB + `\.upstream_rq_time$`,
			rq + "upstream_rq_time:\n  totals=" + rqTimeBins + "\n  intervals=" + rqTimeBins + "\n  summary=" + rqTimeSummary + "\n"},
		{"text readout", "/stats?filter=identifier", "control_plane.identifier: \"meshd-0\"\n"},
		{"type=Gauges", "/stats?type=Gauges&filter=" + egressB + `\.upstream_(cx|rq)_(active|total)$`, rq + "upstream_cx_active: 1\n" + rq + "upstream_rq_active: 0\n"},
		{"json counters", "/stats?format=json&filter=" + egressB + `\.upstream_rq_5`,
			`{"stats":[{"name":"` + rq + `upstream_rq_503","value":2},{"name":"` + rq + `upstream_rq_5xx","value":2}]}`},
		{"json summary", "/stats?format=json&filter=^http\\.ingress\\.downstream_rq_time$",
			`{"stats":[{"histograms":{"supported_quantiles":[0,25,50,75,90,95,99,99.5,99.9,100],"computed_quantiles":[{"name":"http.ingress.downstream_rq_time","values":[` +
				`{"cumulative":7,"interval":7},{"cumulative":7.025,"interval":7.025},{"cumulative":7.05,"interval":7.05},{"cumulative":7.075,"interval":7.075},{"cumulative":7.09,"interval":7.09},` +
				`{"cumulative":7.095,"interval":7.095},{"cumulative":7.099,"interval":7.099},{"cumulative":7.0995,"interval":7.0995},{"cumulative":7.0999,"interval":7.0999},{"cumulative":7.1,"interval":7.1}]}]}}]}`},
		{"json cumulative", "/stats?format=json&histogram_buckets=cumulative&filter=^http\\.ingress\\.downstream_rq_time$",
			`{"stats":[{"histograms":[{"name":"http.ingress.downstream_rq_time","buckets":[{"upper_bound":0.5,"interval":0,"cumulative":0},{"upper_bound":1,"interval":0,"cumulative":0},` +
				`{"upper_bound":5,"interval":0,"cumulative":0},{"upper_bound":10,"interval":1,"cumulative":1},{"upper_bound":25,"interval":1,"cumulative":1},{"upper_bound":50,"interval":1,"cumulative":1},` +
				`{"upper_bound":100,"interval":1,"cumulative":1},{"upper_bound":250,"interval":1,"cumulative":1},{"upper_bound":500,"interval":1,"cumulative":1},{"upper_bound":1000,"interval":1,"cumulative":1},` +
				`{"upper_bound":2500,"interval":1,"cumulative":1},{"upper_bound":5000,"interval":1,"cumulative":1},{"upper_bound":10000,"interval":1,"cumulative":1},{"upper_bound":30000,"interval":1,"cumulative":1},` +
				`{"upper_bound":60000,"interval":1,"cumulative":1},{"upper_bound":300000,"interval":1,"cumulative":1},{"upper_bound":600000,"interval":1,"cumulative":1},{"upper_bound":1800000,"interval":1,"cumulative":1},` +
				`{"upper_bound":3600000,"interval":1,"cumulative":1}]}]}]}`},
		{"json detailed", "/stats?format=json&histogram_buckets=detailed&filter=^http\\.ingress\\.downstream_rq_time$",
			`{"stats":[{"histograms":{"supported_percentiles":[0,25,50,75,90,95,99,99.5,99.9,100],"details":[{"name":"http.ingress.downstream_rq_time",` +
				`"totals":[{"lower_bound":7,"width":0.1,"count":1}],"intervals":[{"lower_bound":7,"width":0.1,"count":1}],"percentiles":[` +
				`{"cumulative":7,"interval":7},{"cumulative":7.025,"interval":7.025},{"cumulative":7.05,"interval":7.05},{"cumulative":7.075,"interval":7.075},{"cumulative":7.09,"interval":7.09},` +
				`{"cumulative":7.095,"interval":7.095},{"cumulative":7.099,"interval":7.099},{"cumulative":7.0995,"interval":7.0995},{"cumulative":7.0999,"interval":7.0999},{"cumulative":7.1,"interval":7.1}]}]}}]}`},
		{"prometheus counters", "/stats/prometheus?filter=" + egressB + `\.upstream_rq_(2|5)`,
			"# TYPE envoy_cluster_upstream_rq counter\n" +
				`envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="` + egressB + `"} 18` + "\n" +
				`envoy_cluster_upstream_rq{envoy_response_code="503",envoy_cluster_name="` + egressB + `"} 2` + "\n\n" +
				"# TYPE envoy_cluster_upstream_rq_xx counter\n" +
				`envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="` + egressB + `"} 18` + "\n" +
				`envoy_cluster_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="` + egressB + `"} 2` + "\n\n"},
		{"prometheus listener, hcm, tcp, server", "/stats?format=prometheus&filter=" + `^(listener\.0\.0\.0\.0_15000\.(downstream_cx_total|http\.ingress\.downstream_rq_2xx)|http\.ingress\.downstream_rq_total|tcp\.egress\.downstream_cx_total|server\.live)$`,
			"# TYPE envoy_http_downstream_rq_total counter\n" + `envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="ingress"} 1` + "\n\n" +
				"# TYPE envoy_listener_downstream_cx_total counter\n" + `envoy_listener_downstream_cx_total{envoy_listener_address="0.0.0.0_15000"} 1` + "\n\n" +
				"# TYPE envoy_listener_http_downstream_rq_xx counter\n" + `envoy_listener_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="ingress",envoy_listener_address="0.0.0.0_15000"} 1` + "\n\n" +
				"# TYPE envoy_tcp_downstream_cx_total counter\n" + `envoy_tcp_downstream_cx_total{envoy_tcp_prefix="egress"} 0` + "\n\n" +
				"# TYPE envoy_server_live gauge\n" + "envoy_server_live{} 1\n\n"},
		{"prometheus histogram", "/stats/prometheus?filter=^http\\.ingress\\.downstream_rq_time$",
			"# TYPE envoy_http_downstream_rq_time histogram\n" + promHist(`envoy_http_downstream_rq_time`, `envoy_http_conn_manager_prefix="ingress"`, []uint64{0, 0, 0, 1}, 1, "7") + "\n"},
	}
	e, _ := newApps(t, false)
	e.opts.ManualFlush = true
	e.SetControlPlaneIdentifier("meshd-0")
	drive(e)
	e.Flush()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, h := get(t, e, "GET", tc.target)
			if code != 200 {
				t.Fatalf("%s: %d %s", tc.target, code, body)
			}
			if body != tc.want {
				t.Errorf("%s:\n got: %q\nwant: %q", tc.target, body, tc.want)
			}
			wantCT := ctText
			if strings.Contains(tc.target, "format=json") {
				wantCT = ctJSON
				var v any
				if err := json.Unmarshal([]byte(body), &v); err != nil {
					t.Errorf("not JSON: %v", err)
				}
			}
			if h.Get("Content-Type") != wantCT {
				t.Errorf("Content-Type %q, want %q", h.Get("Content-Type"), wantCT)
			}
		})
	}
}

// promHist renders the expected lines of one histogram at the default
// bounds: counts gives the cumulative counts of the first bounds, the rest
// are total.
func promHist(name, tags string, counts []uint64, total uint64, sum string) string {
	var b strings.Builder
	for i, ub := range []string{"0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000", "10000", "30000", "60000", "300000", "600000", "1800000", "3600000"} {
		c := total
		if i < len(counts) {
			c = counts[i]
		}
		b.WriteString(name + "_bucket{" + tags + `,le="` + ub + `"} ` + itoa(c) + "\n")
	}
	b.WriteString(name + "_bucket{" + tags + `,le="+Inf"} ` + itoa(total) + "\n")
	b.WriteString(name + "_sum{" + tags + "} " + sum + "\n")
	b.WriteString(name + "_count{" + tags + "} " + itoa(total) + "\n")
	return b.String()
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestStatsJSONStructure decodes the unfiltered JSON outputs.
func TestStatsJSONStructure(t *testing.T) {
	e, _ := newApps(t, false)
	drive(e)
	for _, mode := range []string{"", "&histogram_buckets=cumulative", "&histogram_buckets=disjoint", "&histogram_buckets=detailed"} {
		_, body, _ := get(t, e, "GET", "/stats?format=json"+mode)
		var doc struct {
			Stats []map[string]json.RawMessage `json:"stats"`
		}
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		var names []string
		for i, s := range doc.Stats {
			if h, ok := s["histograms"]; ok {
				if i != len(doc.Stats)-1 {
					t.Errorf("%s: histograms not last", mode)
				}
				if len(h) < 10 {
					t.Errorf("%s: histograms %s", mode, h)
				}
				continue
			}
			var n string
			_ = json.Unmarshal(s["name"], &n)
			names = append(names, n)
		}
		if !slices.IsSorted(names[1:]) { // the text readout comes first
			t.Errorf("%s: stats not sorted", mode)
		}
		if len(names) < 400 {
			t.Errorf("%s: only %d stats", mode, len(names))
		}
	}
}

// TestPrometheusParses parses the whole Prometheus output, with the App Mesh
// metrics extension's tags, and checks families, labels and buckets.
func TestPrometheusParses(t *testing.T) {
	e, _ := newApps(t, true)
	drive(e)
	e.Connect("listener.0.0.0.0_15000")
	_, body, _ := get(t, e, "GET", "/stats/prometheus")
	if strings.Count(body, "# TYPE envoy_cluster_upstream_rq counter\n") != 1 {
		t.Error("want one TYPE line per family")
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	rq := fams["envoy_cluster_upstream_rq"]
	if rq == nil || rq.GetType().String() != "COUNTER" {
		t.Fatalf("envoy_cluster_upstream_rq: %v", rq)
	}
	found := false
	for _, m := range rq.GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if l["Mesh"] != "apps" || l["VirtualNode"] != "serviceA" {
			t.Errorf("fixed tags missing: %v", l)
		}
		if l["envoy_cluster_name"] == egressB && l["envoy_response_code"] == "503" {
			found = true
			if m.GetCounter().GetValue() != 2 {
				t.Errorf("503s = %v", m.GetCounter().GetValue())
			}
		}
	}
	if !found {
		t.Error("no upstream_rq{envoy_response_code=503} for serviceB")
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "envoy_") {
			t.Errorf("family %s lacks the envoy_ prefix", name)
		}
		if f.GetType().String() != "HISTOGRAM" {
			continue
		}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			prev, last := uint64(0), math.Inf(-1)
			for _, b := range h.GetBucket() {
				if b.GetCumulativeCount() < prev || b.GetUpperBound() <= last {
					t.Errorf("%s: buckets not monotonic", name)
				}
				prev, last = b.GetCumulativeCount(), b.GetUpperBound()
			}
			if prev > h.GetSampleCount() {
				t.Errorf("%s: bucket count %d > sample count %d", name, prev, h.GetSampleCount())
			}
		}
	}
	per := fams["envoy_appmesh_RequestCountPerTarget"]
	if per == nil || len(per.GetMetric()) != 1 {
		t.Fatalf("envoy_appmesh_RequestCountPerTarget: %v", per)
	}
	l := map[string]string{}
	for _, lp := range per.GetMetric()[0].GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	want := map[string]string{"TargetVirtualNode": "serviceB", "TargetVirtualService": "serviceb.apps.local", "Mesh": "apps", "VirtualNode": "serviceA"}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("RequestCountPerTarget label %s = %q, want %q (all: %v)", k, l[k], v, l)
		}
	}
	if got := per.GetMetric()[0].GetCounter().GetValue(); got != 20 {
		t.Errorf("RequestCountPerTarget = %v", got)
	}
	if fams["envoy_appmesh_TargetResponseTime"].GetType().String() != "HISTOGRAM" {
		t.Error("TargetResponseTime is not a histogram")
	}
	if g := fams["envoy_appmesh_ActiveConnectionCount"]; g == nil || g.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("ActiveConnectionCount: %v", g)
	}
	// usedonly drops the untouched stats; filter applies to the canonical name.
	_, used, _ := get(t, e, "GET", "/stats/prometheus?usedonly&filter=cluster\\."+egressB)
	if strings.Contains(used, "upstream_rq_retry_overflow") || !strings.Contains(used, "envoy_cluster_upstream_rq_total{") {
		t.Errorf("usedonly:\n%s", used)
	}
	if strings.Contains(used, "cds_ingress") {
		t.Error("filter did not apply")
	}
}
