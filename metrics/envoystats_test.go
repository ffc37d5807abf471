package metrics

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseStatsFormats(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		disjoint bool
		values   map[string]float64
		hists    map[string][]Bin
		err      string
	}{
		{name: "counters, gauges and a text readout",
			in:     `{"stats":[{"name":"cluster.a.upstream_rq_total","value":12},{"name":"server.version","value":"1.36.0"},{"name":"cluster.a.upstream_cx_active","value":0}]}`,
			values: map[string]float64{"cluster.a.upstream_rq_total": 12, "cluster.a.upstream_cx_active": 0}},
		{name: "default quantiles carry no counts",
			in:     `{"stats":[{"name":"x","value":1},{"histograms":{"supported_quantiles":[0,25,50,75,90,95,99,99.5,99.9,100],"computed_quantiles":[{"name":"cluster.a.upstream_rq_time","values":[{"interval":null,"cumulative":1}]}]}}]}`,
			values: map[string]float64{"x": 1}},
		{name: "detailed (Envoy's documented example, unsorted bins sorted)",
			in: `{"stats":[{"histograms":{"supported_percentiles":[0,25,50,75,90,95,99,99.5,99.9,100],"details":[{"name":"http.admin.downstream_rq_time","percentiles":[{"interval":null,"cumulative":1}],` +
				`"totals":[{"lower_bound":2,"width":0.25,"count":9},{"lower_bound":1,"width":0.25,"count":25},{"lower_bound":3,"width":0.25,"count":0}],"intervals":[{"lower_bound":1,"width":0.25,"count":2}]}]}}]}`,
			values: map[string]float64{},
			hists:  map[string][]Bin{"http.admin.downstream_rq_time": {{1, 0.25, 25}, {2, 0.25, 9}}}},
		{name: "cumulative buckets (Envoy's documented example)",
			in:     `{"stats":[{"histograms":[{"name":"example_histogram","buckets":[{"upper_bound":1,"interval":0,"cumulative":0},{"upper_bound":2,"interval":0,"cumulative":1},{"upper_bound":3,"interval":1,"cumulative":3},{"upper_bound":4,"interval":1,"cumulative":3}]}]}]}`,
			values: map[string]float64{},
			hists:  map[string][]Bin{"example_histogram": {{1, 1, 1}, {2, 1, 2}}}},
		{name: "disjoint buckets (Envoy's documented example)", disjoint: true,
			in:     `{"stats":[{"histograms":[{"name":"example_histogram","buckets":[{"upper_bound":1,"interval":0,"cumulative":0},{"upper_bound":2,"interval":0,"cumulative":1},{"upper_bound":3,"interval":1,"cumulative":2},{"upper_bound":4,"interval":0,"cumulative":0}]}]}]}`,
			values: map[string]float64{},
			hists:  map[string][]Bin{"example_histogram": {{1, 1, 1}, {2, 1, 2}}}},
		{name: "escaped names and space", in: " {\"stats\" : [ {\"value\": 1e3, \"name\": \"a\\u002eb\"} ] } \n", values: map[string]float64{"a.b": 1000}},
		{name: "no stats", in: `{}`, values: map[string]float64{}},
		{name: "not json", in: `stats: 1`, err: "invalid JSON"},
		{name: "trailing garbage", in: `{"stats":[]}x`, err: "trailing data"},
		{name: "value not a number", in: `{"stats":[{"name":"a","value":true}]}`, err: "want number"},
		{name: "value without name", in: `{"stats":[{"value":1}]}`, err: "without a name"},
		{name: "name without value", in: `{"stats":[{"name":"a"}]}`, err: "no value"},
		{name: "decreasing cumulative", in: `{"stats":[{"histograms":[{"name":"h","buckets":[{"upper_bound":1,"cumulative":5},{"upper_bound":2,"cumulative":4}]}]}]}`, err: "decrease"},
		{name: "negative width", in: `{"stats":[{"histograms":{"details":[{"name":"h","totals":[{"lower_bound":1,"width":-1,"count":1}]}]}}]}`, err: "bad bin"},
		{name: "fractional count", in: `{"stats":[{"histograms":{"details":[{"name":"h","totals":[{"lower_bound":1,"width":1,"count":1.5}]}]}}]}`, err: "bad bin"},
		{name: "leading zero", in: `{"stats":[{"name":"a","value":01}]}`, err: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseStats([]byte(tt.in), tt.disjoint)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Values, tt.values) {
				t.Errorf("values %v want %v", s.Values, tt.values)
			}
			got := map[string][]Bin{}
			for n, h := range s.Histograms {
				got[n] = h.Bins
			}
			if tt.hists == nil {
				tt.hists = map[string][]Bin{}
			}
			if !reflect.DeepEqual(got, tt.hists) {
				t.Errorf("histograms %v want %v", got, tt.hists)
			}
		})
	}
}

// FuzzParseStats: arbitrary input never panics, and the hand-written
// lexer never accepts what is not JSON.
func FuzzParseStats(f *testing.F) {
	f.Add([]byte(newStats().set("a.b", 1).observe("h", 1, 12, 300).json()))
	f.Add([]byte(`{"stats":[{"histograms":[{"name":"h","buckets":[{"upper_bound":1,"cumulative":1}]}]}]}`))
	f.Add([]byte(`{"stats":[{"name":"\u00e9\\\"","value":-1.5e-3}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseStats(data, false)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for _, h := range s.Histograms {
			for i := 1; i < len(h.Bins); i++ {
				if h.Bins[i].Lower < h.Bins[i-1].Lower {
					t.Fatalf("bins not sorted: %v", h.Bins)
				}
			}
		}
	})
}

// FuzzParseStatsAgainstEncodingJSON: documents encoding/json writes from
// fuzzed names and numbers parse to exactly those names and numbers.
func FuzzParseStatsAgainstEncodingJSON(f *testing.F) {
	f.Add("cluster.a.upstream_rq_total", 12.0, "cluster.a.upstream_rq_time", 1.5, 0.1, uint32(3))
	f.Add("a\"\\\n\u2028é", -0.0, "h\x00", 1e300, 0.0, uint32(0))
	f.Fuzz(func(t *testing.T, name string, value float64, hname string, lower, width float64, count uint32) {
		if math.IsNaN(value) || math.IsInf(value, 0) || math.IsNaN(lower) || math.IsInf(lower, 0) || math.IsNaN(width) || math.IsInf(width, 0) || width < 0 || name == "" || hname == "" {
			return
		}
		type bin struct {
			Lower float64 `json:"lower_bound"`
			Width float64 `json:"width"`
			Count uint32  `json:"count"`
		}
		doc := map[string]any{"stats": []any{
			map[string]any{"name": name, "value": value},
			map[string]any{"histograms": map[string]any{"details": []any{map[string]any{"name": hname, "totals": []bin{{lower, width, count}}}}}},
		}}
		data, err := json.Marshal(doc)
		if err != nil {
			return
		}
		var back struct {
			Stats []struct {
				Name string `json:"name"`
			} `json:"stats"`
		}
		if json.Unmarshal(data, &back) != nil {
			t.Fatal("encoding/json cannot read its own output")
		}
		s, err := ParseStats(data, false)
		if err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		wantName := back.Stats[0].Name // encoding/json's view of the name (invalid UTF-8 replaced)
		if v, ok := s.Values[wantName]; !ok || v != value || len(s.Values) != 1 {
			t.Fatalf("values %v, want %q=%v", s.Values, wantName, value)
		}
		var hb struct {
			Stats []struct {
				Histograms struct {
					Details []struct {
						Name string `json:"name"`
					} `json:"details"`
				} `json:"histograms"`
			} `json:"stats"`
		}
		json.Unmarshal(data, &hb)
		h := s.Histograms[hb.Stats[1].Histograms.Details[0].Name]
		if h == nil {
			t.Fatalf("histogram %q missing: %v", hname, s.Histograms)
		}
		if count == 0 && len(h.Bins) != 0 || count > 0 && !reflect.DeepEqual(h.Bins, []Bin{{lower, width, uint64(count)}}) {
			t.Fatalf("bins %v", h.Bins)
		}
	})
}
