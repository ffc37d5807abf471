package metrics

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshd/meshd/controlplane/translate"
	"github.com/meshd/meshd/internal/envoyadmin"
	"github.com/meshd/meshd/internal/fakeenvoy"
)

// fakeEnvoyFor is a fake Envoy holding the control plane's real output for
// a node, serving Envoy's admin formats.
func fakeEnvoyFor(t *testing.T, r *translate.Resources) (*fakeenvoy.Envoy, *Collector) {
	t.Helper()
	var cs []*clusterv3.Cluster
	for _, c := range r.Types[resource.ClusterType] {
		cs = append(cs, c.(*clusterv3.Cluster))
	}
	var ls []*listenerv3.Listener
	for _, l := range r.Types[resource.ListenerType] {
		ls = append(ls, l.(*listenerv3.Listener))
	}
	fe := fakeenvoy.New(fakeenvoy.Options{NodeID: r.Node.ShortForm()})
	fe.SetConfig(cs, ls, map[string]string{resource.ClusterType: r.Versions[resource.ClusterType], resource.ListenerType: r.Versions[resource.ListenerType]})
	srv := httptest.NewServer(fe)
	t.Cleanup(srv.Close)
	cl, err := envoyadmin.New(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCollector(Options{Admin: cl, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return fe, c
}

func valueOf(series []Series, metric, tvn string) (float64, *Histogram, bool) {
	for _, s := range series {
		if s.Metric == metric && s.Dims.TargetVirtualNode == tvn {
			return s.Value, s.Hist, true
		}
	}
	return 0, nil, false
}

// End to end without Envoy: the getting-started mesh as the control plane
// translates it, a fake Envoy that serves Envoy's admin formats for that
// config, traffic through it, and the extension meshd derives.
func TestEndToEndGettingStarted(t *testing.T) {
	fe, c := fakeEnvoyFor(t, nodeResources(t, appsDir, vn("apps", "serviceA")))
	for i := range 40 {
		code := 200
		if i%10 == 9 {
			code = 503
		}
		cluster := "cds_egress_apps_serviceB_http2_80"
		if i%4 == 3 {
			cluster = "cds_egress_apps_serviceBv2_http2_80"
		}
		fe.Request(cluster, code, time.Duration(1+i%20)*time.Millisecond, 100, 50)
	}
	fe.Inbound("0.0.0.0_15000", "ingress", 200, 10, 20)
	fe.Inbound("0.0.0.0_15000", "ingress", 404, 10, 20)
	s, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		metric, tvn string
		want        float64
	}{
		{RequestCountPerTarget, "serviceB", 30},
		{RequestCountPerTarget, "serviceBv2", 10},
		{HTTPCodeTarget2XXCount, "serviceB", 28}, // 503s at i = 9, 29
		{HTTPCodeTarget5XXCount, "serviceB", 2},
		{HTTPCodeTarget2XXCount, "serviceBv2", 8}, // 503s at i = 19, 39
		{HTTPCodeTarget5XXCount, "serviceBv2", 2},
		{TargetProcessedBytes, "serviceB", 30 * 150},
		{RequestCount, "", 2},
	}
	for _, ck := range checks {
		got, _, ok := valueOf(s.Series, ck.metric, ck.tvn)
		if !ok || got != ck.want {
			t.Errorf("%s{TargetVirtualNode=%q} = %v (present %v), want %v", ck.metric, ck.tvn, got, ok, ck.want)
		}
	}
	_, h, ok := valueOf(s.Series, TargetResponseTime, "serviceBv2")
	if !ok || h.Count() != 10 {
		t.Fatalf("TargetResponseTime serviceBv2: %v", h)
	}
	if _, _, ok := valueOf(s.Series, GrpcRequestCount, ""); ok {
		t.Error("GrpcRequestCount on an http2 node")
	}

	// Envoy restarts: counters start again, nothing goes negative, the
	// restart is noticed.
	fe.Reset()
	fe.Request("cds_egress_apps_serviceB_http2_80", 200, time.Millisecond, 1, 1)
	s, err = c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := valueOf(s.Series, RequestCountPerTarget, "serviceB"); got != 1 || !s.Restarted {
		t.Errorf("after a restart: RequestCountPerTarget %v, restarted %v", got, s.Restarted)
	}
}

// A gateway: inbound on its listener, outbound to the gateway routes'
// targets; gRPC requests count as GrpcRequestCount.
func TestEndToEndGRPCGateway(t *testing.T) {
	fe, c := fakeEnvoyFor(t, nodeResources(t, gatewayDir, vg("gw", "grpc-ingress")))
	fe.Inbound("0.0.0.0_8090", "ingress", 200, 1, 1)
	fe.Request("cds_egress_gw_colors_grpc_50051", 200, 2*time.Millisecond, 1, 1)
	s, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v, _, ok := valueOf(s.Series, GrpcRequestCount, ""); !ok || v != 1 {
		t.Errorf("GrpcRequestCount %v %v", v, ok)
	}
	if v, _, ok := valueOf(s.Series, RequestCountPerTarget, "colors"); !ok || v != 1 || s.Series[0].Dims.ResourceKind != "VirtualGateway" {
		t.Errorf("RequestCountPerTarget %v %v %+v", v, ok, s.Series[0].Dims)
	}
}

// A gateway with an http and a grpc listener: each has its own stats
// prefix, so its requests land in RequestCount and GrpcRequestCount apart.
func TestEndToEndGatewayMixedProtocols(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"mesh.json": `{"meshName":"m","spec":{}}`,
		"gw.json": `{"meshName":"m","virtualGatewayName":"gw","spec":{"listeners":[` +
			`{"portMapping":{"port":8080,"protocol":"http"}},{"portMapping":{"port":8081,"protocol":"grpc"}}]}}`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fe, c := fakeEnvoyFor(t, nodeResources(t, dir, vg("m", "gw")))
	fe.Inbound("0.0.0.0_8080", "ingress.http.8080", 200, 1, 1)
	fe.Inbound("0.0.0.0_8081", "ingress.grpc.8081", 200, 1, 1)
	fe.Inbound("0.0.0.0_8081", "ingress.grpc.8081", 200, 1, 1)
	s, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := valueOf(s.Series, RequestCount, ""); v != 1 {
		t.Errorf("RequestCount %v, want 1", v)
	}
	if v, _, _ := valueOf(s.Series, GrpcRequestCount, ""); v != 2 {
		t.Errorf("GrpcRequestCount %v, want 2", v)
	}
}
