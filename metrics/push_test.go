package metrics

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

func counter(metric string, v float64, tvn string) Series {
	d := Dims{Mesh: "m", ResourceKind: "VirtualNode", Resource: "a"}
	if tvn != "" {
		d.TargetVirtualNode, d.TargetVirtualService = tvn, "s.m.local"
	}
	return Series{Metric: metric, Kind: Counter, Dims: d, Value: v}
}

func TestDeltas(t *testing.T) {
	var d deltas
	hist := func(bins ...Bin) Series {
		return Series{Metric: TargetResponseTime, Kind: HistogramKind, Dims: Dims{Mesh: "m", ResourceKind: "VirtualNode", Resource: "a", TargetVirtualNode: "b", TargetVirtualService: "s"}, Hist: &Histogram{Bins: bins}}
	}
	steps := []struct {
		name   string
		series []Series
		want   map[string]float64 // metric → delta (histograms: count of new observations)
	}{
		{"first collection is the baseline", []Series{counter(RequestCount, 100, ""), hist(Bin{1, 0.1, 5})}, map[string]float64{}},
		{"increase", []Series{counter(RequestCount, 130, ""), hist(Bin{1, 0.1, 7}, Bin{20, 1, 1})}, map[string]float64{RequestCount: 30, TargetResponseTime: 3}},
		{"a new series counts from zero", []Series{counter(RequestCount, 130, ""), counter(RequestCountPerTarget, 4, "b"), hist(Bin{1, 0.1, 7}, Bin{20, 1, 1})}, map[string]float64{RequestCount: 0, RequestCountPerTarget: 4, TargetResponseTime: 0}},
		{"envoy restarted: the new value, never negative", []Series{counter(RequestCount, 5, ""), counter(RequestCountPerTarget, 1, "b"), hist(Bin{1, 0.1, 2})}, map[string]float64{RequestCount: 5, RequestCountPerTarget: 1, TargetResponseTime: 2}},
	}
	for _, st := range steps {
		got := map[string]float64{}
		for _, x := range d.next(st.series) {
			if x.Kind == HistogramKind {
				var n uint64
				for _, b := range x.Bins {
					n += b.Count
				}
				got[x.Metric] = float64(n)
			} else {
				got[x.Metric] = x.Value
			}
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Errorf("%s: got %v want %v", st.name, got, st.want)
		}
	}
}

// collectorOn returns a collector reading a fake admin whose stats the
// returned function replaces.
func collectorOn(t *testing.T) (*Collector, func(*statsDoc)) {
	fa := appsAdmin(t)
	srv := httptest.NewServer(fa)
	t.Cleanup(srv.Close)
	c, _ := newTestCollector(t, srv.Listener.Addr().String(), &clock{t: time.Unix(1e9, 0)})
	return c, func(s *statsDoc) {
		s.set("cluster_manager.cds.version", 1).set("listener_manager.lds.version", 1)
		fa.set(func(f *fakeAdmin) { f.stats = s.json() })
	}
}

func appsTraffic(rq float64, ms ...float64) *statsDoc {
	return newStats().set("cluster.cds_egress_apps_serviceB_http2_80.upstream_rq_total", rq).
		set("cluster.cds_egress_apps_serviceB_http2_80.upstream_rq_2xx", rq).
		set("listener.0.0.0.0_15000.downstream_cx_active", 3).
		observe("cluster.cds_egress_apps_serviceB_http2_80.upstream_rq_time", ms...)
}

// DogStatsD through the real datadog-go client to a UDP socket: the
// datagrams are what a DogStatsD agent receives.
func TestDogStatsDWire(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	client, err := statsd.NewDirect(pc.LocalAddr().String(), statsd.WithNamespace(StatsdNamespace), statsd.WithoutTelemetry(), statsd.WithoutOriginDetection())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, set := collectorOn(t)
	d := &DogStatsD{Collector: c, Client: client}
	d.p = pusher{collector: c, log: orDiscard(nil), name: "dogstatsd"}
	ctx := context.Background()
	set(appsTraffic(10, 5))
	if err := d.p.once(ctx, d.send); err != nil {
		t.Fatal(err)
	}
	set(appsTraffic(14, 5, 12, 12.3, 12.6, 40))
	if err := d.p.once(ctx, d.send); err != nil {
		t.Fatal(err)
	}
	var lines []string
	buf := make([]byte, 65536)
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		lines = append(lines, strings.Split(strings.TrimSpace(string(buf[:n])), "\n")...)
		pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	}
	sort.Strings(lines)
	tags := "#Mesh:apps,TargetVirtualNode:serviceB,TargetVirtualService:serviceb.apps.local,VirtualNode:serviceA"
	want := []string{
		"envoy.appmesh.ActiveConnectionCount:3|g|#Mesh:apps,VirtualNode:serviceA", // gauge, both times
		"envoy.appmesh.ActiveConnectionCount:3|g|#Mesh:apps,VirtualNode:serviceA",
		"envoy.appmesh.HTTPCode_Target_2XX_Count:4|c|" + tags,
		"envoy.appmesh.RequestCountPerTarget:4|c|" + tags,
		"envoy.appmesh.TargetResponseTime:12.5|d|@0.3333333333333333|" + tags, // three samples in bin [12,13)
		"envoy.appmesh.TargetResponseTime:40.5|d|" + tags,
	}
	sort.Strings(want)
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("datagrams\n got %q\nwant %q", lines, want)
	}
}

func TestEMFLines(t *testing.T) {
	c, set := collectorOn(t)
	var out bytes.Buffer
	e := &EMF{Collector: c, W: &out}
	e.p = pusher{collector: c, log: orDiscard(nil), name: "emf"}
	set(appsTraffic(10, 5))
	if err := e.p.once(context.Background(), e.write); err != nil {
		t.Fatal(err)
	}
	set(appsTraffic(12, 5, 12, 12.3))
	if err := e.p.once(context.Background(), e.write); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	var got []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		delete(m["_aws"].(map[string]any), "Timestamp")
		got = append(got, m)
	}
	b, _ := json.MarshalIndent(got, "", "  ")
	checkGolden(t, "testdata/emf.json", append(b, '\n'))
}

func TestOTLPExport(t *testing.T) {
	c, set := collectorOn(t)
	set(appsTraffic(10, 5, 12))
	got := make(chan pmetric.Metrics, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "bad request", 400)
			return
		}
		got <- req.Metrics()
	}))
	defer srv.Close()
	o := &OTLP{Collector: c, Endpoint: srv.URL + "/v1/metrics", Resource: map[string]string{"service.name": "serviceA"}}
	start := time.Unix(1e9, 0)
	if err := o.once(context.Background(), &start); err != nil {
		t.Fatal(err)
	}
	md := <-got
	if md.DataPointCount() != 4 {
		t.Errorf("data points %d, want 4", md.DataPointCount())
	}
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	names := map[string]pmetric.Metric{}
	for i := 0; i < ms.Len(); i++ {
		names[ms.At(i).Name()] = ms.At(i)
	}
	h, ok := names["envoy.appmesh.TargetResponseTime"]
	if !ok || h.Type() != pmetric.MetricTypeHistogram {
		t.Fatalf("no histogram: %v", names)
	}
	dp := h.Histogram().DataPoints().At(0)
	// 5 ms is in bin [5, 5.1): above le=5, as Envoy counts it; 12 ms under le=25.
	if dp.Count() != 2 || dp.BucketCounts().Len() != len(DefaultBounds)+1 || dp.BucketCounts().At(3) != 1 || dp.BucketCounts().At(4) != 1 {
		t.Errorf("histogram point: count %d buckets %v", dp.Count(), dp.BucketCounts().AsRaw())
	}
	if v, _ := dp.Attributes().Get("TargetVirtualNode"); v.Str() != "serviceB" {
		t.Errorf("attributes %v", dp.Attributes().AsRaw())
	}
	rq := names["envoy.appmesh.RequestCountPerTarget"]
	if !rq.Sum().IsMonotonic() || rq.Sum().DataPoints().At(0).DoubleValue() != 10 {
		t.Errorf("counter sum %v", rq.Sum().DataPoints().At(0).DoubleValue())
	}
}

// EMF takes at most 100 values: more bins fold into Envoy's default
// buckets, every observation kept.
func TestEMFHistogramFolds(t *testing.T) {
	var bins []Bin
	for i := range 150 {
		bins = append(bins, Bin{Lower: float64(i), Width: 1, Count: 1})
	}
	bins = append(bins, Bin{Lower: 5e6, Width: 1e5, Count: 2}) // above the last bound
	v := emfHistogram(bins)
	var total uint64
	for _, c := range v.Counts {
		total += c
	}
	if len(v.Values) > 100 || total != 152 {
		t.Fatalf("%d values, %d observations", len(v.Values), total)
	}
	want := emfValues{Values: []float64{0.25, 3, 7.5, 17.5, 37.5, 75, 175, 3.6e6}, Counts: []uint64{1, 4, 5, 15, 25, 50, 50, 2}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %+v\nwant %+v", v, want)
	}
}
