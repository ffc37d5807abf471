package metrics

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/meshd/meshd/internal/appmesh"
)

var update = flag.Bool("update", false, "rewrite golden files")

func mapping(t *testing.T, dir string, node appmesh.Resource) *Mapping {
	t.Helper()
	c, l := configDumps(t, nodeResources(t, dir, node))
	m, err := ParseConfigDump(c, l)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseConfigDumpFromControlPlaneOutput(t *testing.T) {
	tests := []struct {
		name string
		dir  string
		node appmesh.Resource
		want Mapping
	}{
		{"client of a weighted service", appsDir, vn("apps", "serviceA"), Mapping{
			Mesh: "apps", Kind: "VirtualNode", Name: "serviceA",
			Egress: map[string]Target{
				"cds_egress_apps_serviceB_http2_80":   {"serviceb.apps.local", "serviceB", "http2"},
				"cds_egress_apps_serviceBv2_http2_80": {"serviceb.apps.local", "serviceBv2", "http2"},
			},
			Listeners: []string{"listener.0.0.0.0_15000"},
			Inbound:   []Inbound{{"http", "ingress", "http2"}},
		}},
		{"server without backends", appsDir, vn("apps", "serviceB"), Mapping{
			Mesh: "apps", Kind: "VirtualNode", Name: "serviceB", Egress: map[string]Target{},
			Listeners: []string{"listener.0.0.0.0_15000"},
			Inbound:   []Inbound{{"http", "ingress", "http2"}},
		}},
		{"grpc gateway", gatewayDir, vg("gw", "grpc-ingress"), Mapping{
			Mesh: "gw", Kind: "VirtualGateway", Name: "grpc-ingress",
			Egress:    map[string]Target{"cds_egress_gw_colors_grpc_50051": {"colors.gw.local", "colors", "grpc"}},
			Listeners: []string{"listener.0.0.0.0_8090"},
			Inbound:   []Inbound{{"http", "ingress", "grpc"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mapping(t, tt.dir, tt.node)
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("mapping\n got %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

// One virtual node (shared) backs two virtual services: the control plane
// gives it a cluster per service, so each service gets its own series.
func TestDeriveOneNodeTwoServices(t *testing.T) {
	m := mapping(t, featuresDir, vn("features", "frontend"))
	st := newStats().
		set("cluster.cds_egress_features_shared_http_8080_shared-a-features-local.upstream_rq_total", 7).
		set("cluster.cds_egress_features_shared_http_8080_shared-a-features-local.upstream_rq_2xx", 7).
		set("cluster.cds_egress_features_shared_http_8080_shared-b-features-local.upstream_rq_total", 3).
		set("cluster.cds_egress_features_shared_http_8080_shared-b-features-local.upstream_rq_5xx", 3)
	s, err := ParseStats(st.json(), false)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, x := range Derive(m, s) {
		got[x.Metric+"/"+x.Dims.TargetVirtualService+"/"+x.Dims.TargetVirtualNode] = x.Value
	}
	want := map[string]float64{
		"RequestCountPerTarget/shared-a.features.local/shared":     7,
		"HTTPCode_Target_2XX_Count/shared-a.features.local/shared": 7,
		"RequestCountPerTarget/shared-b.features.local/shared":     3,
		"HTTPCode_Target_5XX_Count/shared-b.features.local/shared": 3,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// A tcp target has bytes only; a target node reached on an http and a tcp
// port sums its bytes over both clusters and counts requests of the http one.
func TestDeriveProtocols(t *testing.T) {
	m := mapping(t, featuresDir, vn("features", "frontend"))
	st := newStats().
		set("cluster.cds_egress_features_api_tcp_9000.upstream_cx_rx_bytes_total", 100).
		set("cluster.cds_egress_features_api_tcp_9000.upstream_cx_tx_bytes_total", 50).
		set("cluster.cds_egress_features_api_http_8080.upstream_cx_rx_bytes_total", 1000).
		set("cluster.cds_egress_features_api_http_8080.upstream_rq_total", 4).
		set("cluster.cds_egress_features_items_grpc_50051.upstream_rq_total", 9).
		set("cluster.cds_egress_features_items_grpc_50051.upstream_rq_2xx", 9).
		observe("cluster.cds_egress_features_items_grpc_50051.upstream_rq_time", 1.5, 12, 12.4, 250, 3000).
		set("listener.0.0.0.0_15000.downstream_cx_active", 2).
		set("listener.0.0.0.0_15000.downstream_cx_total", 5).
		set("http.ingress.downstream_rq_total", 11).
		set("http.ingress.downstream_cx_rx_bytes_total", 300).
		set("http.ingress.downstream_cx_tx_bytes_total", 700).
		set("http.egress.downstream_rq_total", 99) // egress HCM: not inbound
	s, err := ParseStats(st.json(), false)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteText(&b, Families(Derive(m, s))); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, filepath.Join("testdata", "derive_protocols.prom"), b.Bytes())
}

func TestDeriveGatewayAndIdentityFallback(t *testing.T) {
	m := mapping(t, gatewayDir, vg("gw", "grpc-ingress"))
	st := newStats().set("http.ingress.downstream_rq_total", 3).set("listener.0.0.0.0_8090.downstream_cx_total", 1)
	s, _ := ParseStats(st.json(), false)
	got := Derive(m, s)
	if len(got) != 2 || got[0].Metric != GrpcRequestCount || got[0].Value != 3 || got[0].Dims.ResourceKind != "VirtualGateway" || got[1].Metric != NewConnectionCount {
		t.Fatalf("gateway series: %+v", got)
	}
	// Nothing is derived without an identity.
	if got := Derive(&Mapping{Egress: map[string]Target{}}, s); got != nil {
		t.Errorf("no identity: got %+v", got)
	}
}

func TestHistogram(t *testing.T) {
	h := &Histogram{Bins: []Bin{{0.4, 0.01, 1}, {12, 1, 2}, {250, 10, 1}, {3000, 100, 1}}}
	if h.Count() != 5 {
		t.Errorf("count %d", h.Count())
	}
	if want := 0.405 + 2*12.5 + 255 + 3050; math.Abs(h.Sum()-want) > 1e-9 {
		t.Errorf("sum %v want %v", h.Sum(), want)
	}
	got := h.Cumulative([]float64{0.5, 1, 5, 10, 25, 250, 500, 5000})
	want := []uint64{1, 1, 1, 1, 3, 3, 4, 5}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cumulative %v want %v", got, want)
	}
	a := &Histogram{Bins: []Bin{{1, 0.1, 1}, {5, 1, 2}}}
	a.merge(&Histogram{Bins: []Bin{{0.5, 0.1, 1}, {5, 1, 3}, {9, 1, 1}}})
	if want := []Bin{{0.5, 0.1, 1}, {1, 0.1, 1}, {5, 1, 5}, {9, 1, 1}}; !reflect.DeepEqual(a.Bins, want) {
		t.Errorf("merge %v want %v", a.Bins, want)
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./metrics -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./metrics -update rewrites it):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// FuzzParseConfigDump: any input is a mapping or an error, never a panic;
// a mapping's egress targets always name a service and a node.
func FuzzParseConfigDump(f *testing.F) {
	f.Add([]byte(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster","cluster":{"name":"c","metadata":{"filter_metadata":{"aws.appmesh":{"Direction":"egress","TargetVirtualService":"s","TargetVirtualNode":"n"}}}}}]}`))
	f.Add([]byte(`{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ListenersConfigDump.DynamicListener","active_state":{"listener":{"name":"lds_ingress_0.0.0.0_15000","address":{"socket_address":{"address":"::","port_value":15000}}}}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseConfigDump(data)
		if err != nil {
			return
		}
		for name, tg := range m.Egress {
			if tg.VirtualService == "" || tg.VirtualNode == "" {
				t.Fatalf("cluster %q: target %+v", name, tg)
			}
		}
	})
}
