package translate

import (
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshd/meshd/internal/appmesh"
)

// TestGRPCFlavorShapes translates every node of every scenario in both
// flavors and checks, beyond tracing.Validate, what Envoy rejects at load
// (envoyLint) and what grpc-go accepts (grpcLint: API listeners, EDS or
// LOGICAL_DNS clusters only, gRPC retry codes only, max_stream_duration,
// certificate provider TLS, never SDS).
func TestGRPCFlavorShapes(t *testing.T) {
	for _, dir := range []string{appsDir, gatewayDir, featuresDir} {
		t.Run(dir, func(t *testing.T) {
			out := allNodes(t, scenario(t, dir), Options{})
			if len(out) == 0 {
				t.Fatal("nothing translated")
			}
		})
	}
	t.Run("tls", func(t *testing.T) { allNodes(t, buildYAML(t, tlsMesh), Options{}) })
	t.Run("multi-listener gateway", func(t *testing.T) { allNodes(t, buildYAML(t, multiListenerGateway), Options{}) })
}

// TestGRPCListeners: a proxyless client gets one API listener per backend
// virtual service and port, named as it dials it (the service name for the
// first port, service:port for every port), nothing else: no ingress, no
// egress listener, no AWS or passthrough clusters (notes §4.2, §4.6.8).
func TestGRPCListeners(t *testing.T) {
	r := translateNode(t, New(buildDir(t, appsDir), Options{}), vn("apps", "serviceA"), GRPC)
	if got, want := names(r, resource.ListenerType), []string{"serviceb.apps.local", "serviceb.apps.local:80"}; !equalStrings(got, want) {
		t.Errorf("listeners %q, want %q", got, want)
	}
	if got, want := names(r, resource.RouteType), []string{"serviceb.apps.local:80"}; !equalStrings(got, want) {
		t.Errorf("route configurations %q, want %q", got, want)
	}
	if got, want := names(r, resource.ClusterType), []string{"cds_egress_apps_serviceB_http2_80", "cds_egress_apps_serviceBv2_http2_80"}; !equalStrings(got, want) {
		t.Errorf("clusters %q, want %q", got, want)
	}
	for _, res := range r.Types[resource.ListenerType] {
		l := res.(*listenerv3.Listener)
		h := unpack(t, l.GetApiListener().GetApiListener(), &hcmv3.HttpConnectionManager{})
		if h.GetRds().GetRouteConfigName() != "serviceb.apps.local:80" {
			t.Errorf("%s: RDS %q", l.Name, h.GetRds().GetRouteConfigName())
		}
	}
	for _, res := range r.Types[resource.ClusterType] {
		if typ := res.(*clusterv3.Cluster).GetType(); typ != clusterv3.Cluster_LOGICAL_DNS {
			t.Errorf("%s: %v", nameOf(res), typ)
		}
	}
	// A node without backends gets nothing at all.
	for _, n := range []string{"serviceB", "serviceBv2"} {
		r := translateNode(t, New(buildDir(t, appsDir), Options{}), vn("apps", n), GRPC)
		for _, typ := range ResourceTypes {
			if len(r.Types[typ]) != 0 {
				t.Errorf("%s: %s %q", n, shortType(typ), names(r, typ))
			}
		}
	}
	// Multi-port services: a listener and route configuration per port;
	// TCP ports are left out with a warning.
	r = translateNode(t, New(scenario(t, featuresDir), Options{}), vn("features", "batch"), GRPC)
	if got, want := names(r, resource.ListenerType), []string{"api.features.local", "api.features.local:8080"}; !equalStrings(got, want) {
		t.Errorf("batch listeners %q, want %q", got, want)
	}
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "port 9000 is TCP") {
		t.Errorf("no warning for the TCP port: %q", r.Warnings)
	}
}

// TestGRPCBareNameWhenFirstPortIsTCP: a client dialing xds:///<service>
// must find a listener when the service's first port is TCP and another is
// HTTP. Today the bare name goes with port index 0 only (grpc.go
// proxyless), and is lost when that port is skipped for being TCP.
func TestGRPCBareNameWhenFirstPortIsTCP(t *testing.T) {
	cfg := buildYAML(t, `meshName: m
spec: {}`, `meshName: m
virtualNodeName: server
spec:
  listeners:
  - portMapping: {port: 9000, protocol: tcp}
  - portMapping: {port: 8080, protocol: grpc}
  serviceDiscovery: {dns: {hostname: server.m.local}}`, `meshName: m
virtualServiceName: svc.m.local
spec: {provider: {virtualNode: {virtualNodeName: server}}}`, `meshName: m
virtualNodeName: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.m.local}}]`)
	r := translateNode(t, New(cfg, Options{}), vn("m", "client"), GRPC)
	if got, want := names(r, resource.ListenerType), []string{"svc.m.local", "svc.m.local:8080"}; !equalStrings(got, want) {
		t.Errorf("listeners %q, want %q", got, want)
	}
}

// TestUnknownNodes: nodes that are not in the configuration, and virtual
// gateways asked for by gRPC clients, are ErrUnknownNode.
func TestUnknownNodes(t *testing.T) {
	tr := New(scenario(t, gatewayDir), Options{})
	for _, c := range []struct {
		node   appmesh.Resource
		flavor Flavor
	}{
		{vn("nomesh", "serviceA"), Envoy},
		{vn("nomesh", "serviceA"), GRPC},
		{vn("gw", "nonode"), Envoy},
		{vn("gw", "nonode"), GRPC},
		{vg("gw", "nogateway"), Envoy},
		{vg("gw", "ingress"), GRPC},
		{vg("gw", "grpc-ingress"), GRPC},
		{vg("gw", "serviceA"), Envoy}, // a node asked for as a gateway
		{vn("gw", "ingress"), Envoy},  // and the other way round
		{appmesh.Resource{Mesh: "gw", Kind: "virtualRouter", Name: "serviceA"}, Envoy},
	} {
		r, err := tr.Node(c.node, c.flavor)
		if !errors.Is(err, ErrUnknownNode) || r != nil {
			t.Errorf("%s (%s): got %v, %v; want ErrUnknownNode", c.node.ShortForm(), c.flavor, r, err)
		}
	}
	// Nodes lists every node and gateway, in order.
	var got []string
	for _, n := range tr.Nodes() {
		got = append(got, n.ShortForm())
	}
	want := []string{"mesh/gw/virtualNode/colors", "mesh/gw/virtualNode/serviceA", "mesh/gw/virtualNode/serviceB",
		"mesh/gw/virtualGateway/grpc-ingress", "mesh/gw/virtualGateway/ingress"}
	if !equalStrings(got, want) {
		t.Errorf("Nodes() = %q, want %q", got, want)
	}
}
