package translate

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshd/meshd/internal/appmesh"
)

// Focused assertions on the generated protos. The golden files pin whole
// outputs; these pin the App Mesh behaviours one by one, with the spec
// section they come from (/work/shared/spec/appmesh.md).

// TestNames checks listener, route configuration and cluster names (§2.3,
// §2.4; notes/controlplane.md §3.2) for sidecars and gateways.
func TestNames(t *testing.T) {
	apps := New(buildDir(t, appsDir), Options{})
	features := New(scenario(t, featuresDir), Options{})
	gateway := New(scenario(t, gatewayDir), Options{})
	cases := []struct {
		tr                         *Translator
		node                       appmesh.Resource
		listeners, routes, cluster []string
	}{
		{apps, vn("apps", "serviceA"),
			[]string{"lds_egress_0.0.0.0_15001", "lds_ingress_0.0.0.0_15000"},
			[]string{"rds_egress_http2_80", "rds_ingress_http2_80"},
			[]string{"cds_egress_apps_amazonaws", "cds_egress_apps_serviceB_http2_80", "cds_egress_apps_serviceBv2_http2_80", "cds_ingress_apps_serviceA_http2_80"}},
		// No backends: only the AWS APIs on the egress side; DROP_ALL:
		// no mesh-allow-all.
		{apps, vn("apps", "serviceB"),
			[]string{"lds_egress_0.0.0.0_15001", "lds_ingress_0.0.0.0_15000"},
			[]string{"rds_ingress_http2_80"},
			[]string{"cds_egress_apps_amazonaws", "cds_ingress_apps_serviceB_http2_80"}},
		// ALLOW_ALL: the passthrough cluster. Two listeners: a cluster
		// and (for http) a route configuration per listener.
		{features, vn("features", "api"),
			[]string{"lds_egress_0.0.0.0_15001", "lds_ingress_0.0.0.0_15000"},
			[]string{"rds_ingress_http_8080"},
			[]string{"cds_egress_features_amazonaws", "cds_egress_features_mesh-allow-all", "cds_ingress_features_api_http_8080", "cds_ingress_features_api_tcp_9000"}},
		// No listeners: no ingress listener (§2.3) and no ingress cluster.
		{features, vn("features", "batch"),
			[]string{"lds_egress_0.0.0.0_15001"},
			[]string{"rds_egress_http_8080"},
			[]string{"cds_egress_features_amazonaws", "cds_egress_features_api-v2_http_8080", "cds_egress_features_api_http_8080", "cds_egress_features_api_tcp_9000", "cds_egress_features_mesh-allow-all"}},
		// A virtual node reached through two virtual services gets a
		// cluster per service; one reached through one keeps the plain
		// name.
		{features, vn("features", "frontend"),
			[]string{"lds_egress_0.0.0.0_15001", "lds_ingress_0.0.0.0_15000"},
			[]string{"rds_egress_grpc_50051", "rds_egress_http_8080", "rds_ingress_http_8080"},
			[]string{"cds_egress_features_amazonaws", "cds_egress_features_api-v2_http_8080", "cds_egress_features_api_http_8080", "cds_egress_features_api_tcp_9000",
				"cds_egress_features_cloud_http_8080", "cds_egress_features_items_grpc_50051", "cds_egress_features_mesh-allow-all",
				"cds_egress_features_shared_http_8080_shared-a-features-local", "cds_egress_features_shared_http_8080_shared-b-features-local",
				"cds_ingress_features_frontend_http_8080"}},
		// Gateways: a listener on each gateway port, the self-redirect
		// cluster, and the egress side on 15001 (§2.4; B).
		{gateway, vg("gw", "ingress"),
			[]string{"lds_egress_0.0.0.0_15001", "lds_ingress_0.0.0.0_8088"},
			[]string{"rds_egress_http_15001", "rds_ingress_http_8088"},
			[]string{"cds_egress_gw_serviceA_http_8080", "cds_egress_gw_serviceB_http_9080", "cds_ingress_gw_ingress_self_redirect_http_15001"}},
		{gateway, vg("gw", "grpc-ingress"),
			[]string{"lds_egress_0.0.0.0_15001", "lds_ingress_0.0.0.0_8090"},
			[]string{"rds_egress_http_15001", "rds_ingress_grpc_8090"},
			[]string{"cds_egress_gw_colors_grpc_50051", "cds_ingress_gw_grpc-ingress_self_redirect_grpc_15001"}},
	}
	for _, c := range cases {
		r := translateNode(t, c.tr, c.node, Envoy)
		for _, x := range []struct {
			typ  resource.Type
			want []string
		}{{resource.ListenerType, c.listeners}, {resource.RouteType, c.routes}, {resource.ClusterType, c.cluster}} {
			if got := names(r, x.typ); !equalStrings(got, x.want) {
				t.Errorf("%s: %s names\n got %q\nwant %q", c.node.ShortForm(), shortType(x.typ), got, x.want)
			}
		}
	}
}

const multiListenerGateway = `meshName: m
spec: {}
---
meshName: m
virtualNodeName: app
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
  serviceDiscovery: {dns: {hostname: app.m.local}}
---
meshName: m
virtualServiceName: app.m.local
spec: {provider: {virtualNode: {virtualNodeName: app}}}
---
meshName: m
virtualGatewayName: vg
spec:
  listeners:
  - portMapping: {port: 1111, protocol: http}
  - portMapping: {port: 2222, protocol: http}
    connectionPool: {http: {maxConnections: 7}}
---
meshName: m
virtualGatewayName: vg
gatewayRouteName: one
spec:
  httpRoute:
    match: {prefix: /one, port: 1111}
    action: {target: {virtualService: {virtualServiceName: app.m.local}}}
---
meshName: m
virtualGatewayName: vg
gatewayRouteName: two
spec:
  httpRoute:
    match: {prefix: /two, port: 2222}
    action: {target: {virtualService: {virtualServiceName: app.m.local}}}`

// TestGatewayMultipleListeners checks the multi-listener self-redirect
// names (§2.4: …_self_redirect_<ingress port>_<protocol>_15001), that each
// listener routes only its own gateway routes, and that a listener's
// connection pool lands on its own self-redirect cluster (§2.9).
func TestGatewayMultipleListeners(t *testing.T) {
	r := translateNode(t, New(buildYAML(t, multiListenerGateway), Options{}), vg("m", "vg"), Envoy)
	want := []string{"cds_egress_m_app_http_8080", "cds_ingress_m_vg_self_redirect_1111_http_15001", "cds_ingress_m_vg_self_redirect_2222_http_15001"}
	if got := names(r, resource.ClusterType); !equalStrings(got, want) {
		t.Errorf("clusters %q, want %q", got, want)
	}
	want = []string{"lds_egress_0.0.0.0_15001", "lds_ingress_0.0.0.0_1111", "lds_ingress_0.0.0.0_2222"}
	if got := names(r, resource.ListenerType); !equalStrings(got, want) {
		t.Errorf("listeners %q, want %q", got, want)
	}
	for _, c := range []struct {
		port   int
		routes []string
	}{{1111, []string{"one", "one"}}, {2222, []string{"two", "two"}}} {
		rc := findRouteConfig(t, r, fmt.Sprintf("rds_ingress_http_%d", c.port))
		vh := findVirtualHost(t, rc, "self_redirect")
		if got := routeNames(vh); !equalStrings(got, c.routes) {
			t.Errorf("port %d: routes %q, want %q", c.port, got, c.routes)
		}
		self := fmt.Sprintf("cds_ingress_m_vg_self_redirect_%d_http_15001", c.port)
		for _, rt := range vh.Routes {
			if got := rt.GetRoute().GetCluster(); got != self {
				t.Errorf("port %d route %s goes to %q, want %q", c.port, rt.Name, got, self)
			}
		}
	}
	th := findCluster(t, r, "cds_ingress_m_vg_self_redirect_2222_http_15001").CircuitBreakers.Thresholds[0]
	if th.MaxConnections.GetValue() != 7 || th.MaxPendingRequests.GetValue() != maxThreshold {
		t.Errorf("port 2222 pool: %v", th)
	}
	th = findCluster(t, r, "cds_ingress_m_vg_self_redirect_1111_http_15001").CircuitBreakers.Thresholds[0]
	if th.MaxConnections.GetValue() != maxThreshold {
		t.Errorf("port 1111 has no pool, got %v", th)
	}
}

// TestWeightedTargets checks the getting-started 75/25 split (§1.5) in both
// flavors.
func TestWeightedTargets(t *testing.T) {
	tr := New(buildDir(t, appsDir), Options{})
	for _, c := range []struct {
		flavor Flavor
		rc     string
	}{{Envoy, "rds_egress_http2_80"}, {GRPC, "serviceb.apps.local:80"}} {
		r := translateNode(t, tr, vn("apps", "serviceA"), c.flavor)
		vh := findVirtualHost(t, findRouteConfig(t, r, c.rc), "serviceb.apps.local")
		if want := []string{"serviceb.apps.local", "serviceb.apps.local:80"}; !equalStrings(vh.Domains, want) {
			t.Errorf("%s: domains %q, want %q", c.flavor, vh.Domains, want)
		}
		if len(vh.Routes) != 1 {
			t.Fatalf("%s: routes %q", c.flavor, routeNames(vh))
		}
		got := weights(t, vh.Routes[0])
		want := map[string]uint32{"cds_egress_apps_serviceB_http2_80": 75, "cds_egress_apps_serviceBv2_http2_80": 25}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: weights %v, want %v", c.flavor, got, want)
		}
	}
}

// routerYAML is a mesh with a client and a router on http 8080 with the
// given routes (each "name: spec" with spec an httpRoute body), all to
// node "server".
func routerYAML(routes ...string) string {
	docs := []string{`meshName: m
spec: {}`, `meshName: m
virtualNodeName: client
spec:
  backends:
  - virtualService: {virtualServiceName: svc.m.local}`, `meshName: m
virtualNodeName: server
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
  serviceDiscovery: {dns: {hostname: server.m.local}}`, `meshName: m
virtualNodeName: grpc-server
spec:
  listeners:
  - portMapping: {port: 9090, protocol: grpc}
  serviceDiscovery: {dns: {hostname: grpc-server.m.local}}`, `meshName: m
virtualRouterName: svc
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}`, `meshName: m
virtualServiceName: svc.m.local
spec: {provider: {virtualRouter: {virtualRouterName: svc}}}`}
	for _, r := range routes {
		docs = append(docs, "meshName: m\nvirtualRouterName: svc\n"+r)
	}
	return strings.Join(docs, "\n---\n")
}

func httpRouteDoc(name, priority, extra string) string {
	doc := "routeName: " + name + "\nspec:\n"
	if priority != "" {
		doc += "  priority: " + priority + "\n"
	}
	doc += "  httpRoute:\n    match: {prefix: /" + name + "}\n    action: {weightedTargets: [{virtualNode: server, weight: 1}]}\n"
	return doc + extra
}

// TestRoutePriority checks that routes are matched in priority order, 0
// first, routes without a priority last (§1.5).
func TestRoutePriority(t *testing.T) {
	cfg := buildYAML(t, routerYAML(
		httpRouteDoc("a-unset", "", ""),
		httpRouteDoc("b-five", "5", ""),
		httpRouteDoc("c-zero", "0", ""),
		httpRouteDoc("d-thousand", "1000", ""),
	))
	for _, f := range []Flavor{Envoy, GRPC} {
		r := translateNode(t, New(cfg, Options{}), vn("m", "client"), f)
		rc := "rds_egress_http_8080"
		if f == GRPC {
			rc = "svc.m.local:8080"
		}
		vh := findVirtualHost(t, findRouteConfig(t, r, rc), "svc.m.local")
		if got, want := routeNames(vh), []string{"c-zero", "b-five", "d-thousand", "a-unset"}; !equalStrings(got, want) {
			t.Errorf("%s: route order %q, want %q", f, got, want)
		}
	}
	// The features router: canary (1), reads (10), default (unset).
	r := translateNode(t, New(scenario(t, featuresDir), Options{}), vn("features", "frontend"), Envoy)
	vh := findVirtualHost(t, findRouteConfig(t, r, "rds_egress_http_8080"), "api.features.local")
	if got, want := routeNames(vh), []string{"canary", "reads", "default"}; !equalStrings(got, want) {
		t.Errorf("features api routes %q, want %q", got, want)
	}
}

// TestRouteSpecificityWithoutPriority: routes without a priority must be
// ordered by specificity, not by name (§1.5 "implied requirement: sort
// ascending, unset last, then by specificity"; the gateway does this for
// gateway routes, sortGatewayRoutes). Today "a-all" (prefix /) sorts
// before "b-api" (prefix /api), so /api is never reached.
func TestRouteSpecificityWithoutPriority(t *testing.T) {
	cfg := buildYAML(t, routerYAML(
		"routeName: a-all\nspec:\n  httpRoute:\n    match: {prefix: /}\n    action: {weightedTargets: [{virtualNode: server, weight: 1}]}\n",
		"routeName: b-api\nspec:\n  httpRoute:\n    match: {prefix: /api}\n    action: {weightedTargets: [{virtualNode: server, weight: 1}]}\n",
		"routeName: c-exact\nspec:\n  httpRoute:\n    match: {path: {exact: /api/health}}\n    action: {weightedTargets: [{virtualNode: server, weight: 1}]}\n",
	))
	r := translateNode(t, New(cfg, Options{}), vn("m", "client"), Envoy)
	vh := findVirtualHost(t, findRouteConfig(t, r, "rds_egress_http_8080"), "svc.m.local")
	if got, want := routeNames(vh), []string{"c-exact", "b-api", "a-all"}; !equalStrings(got, want) {
		t.Errorf("route order %q, want %q (most specific first)", got, want)
	}
}

var defaultRetryOn = []string{"connect-failure", "refused-stream", "reset", "retriable-status-codes"}

// TestDefaultRetryPolicy checks App Mesh's default retry policy (§2.8) on
// routes without one and on virtual node providers, its gRPC form, and
// Options.NoDefaultRetryPolicy.
func TestDefaultRetryPolicy(t *testing.T) {
	cfg := scenario(t, featuresDir)
	cases := []struct {
		rc, vh, route string
		grpc          bool
	}{
		{"rds_egress_http_8080", "api.features.local", "default", false},    // router route without a policy
		{"rds_egress_http_8080", "cloud.features.local", "vn_cloud", false}, // virtual node provider
		{"rds_egress_http_8080", "api.features.local", "canary", false},
	}
	r := translateNode(t, New(cfg, Options{}), vn("features", "frontend"), Envoy)
	noDefault := translateNode(t, New(cfg, Options{NoDefaultRetryPolicy: true}), vn("features", "frontend"), Envoy)
	for _, c := range cases {
		p := findRoute(t, findVirtualHost(t, findRouteConfig(t, r, c.rc), c.vh), c.route).GetRoute().RetryPolicy
		if got := retryOn(p); !equalStrings(got, defaultRetryOn) {
			t.Errorf("%s/%s: retry_on %q, want %q", c.vh, c.route, got, defaultRetryOn)
		}
		if p.GetNumRetries().GetValue() != 2 || fmt.Sprint(p.GetRetriableStatusCodes()) != "[503]" {
			t.Errorf("%s/%s: num_retries %d, codes %v; want 2, [503]", c.vh, c.route, p.GetNumRetries().GetValue(), p.GetRetriableStatusCodes())
		}
		if p := findRoute(t, findVirtualHost(t, findRouteConfig(t, noDefault, c.rc), c.vh), c.route).GetRoute().RetryPolicy; p != nil {
			t.Errorf("%s/%s with NoDefaultRetryPolicy: %v", c.vh, c.route, p)
		}
	}
	// An explicit policy stays with NoDefaultRetryPolicy.
	if p := findRoute(t, findVirtualHost(t, findRouteConfig(t, noDefault, "rds_egress_http_8080"), "api.features.local"), "reads").GetRoute().RetryPolicy; p == nil {
		t.Error("NoDefaultRetryPolicy dropped the reads route's own retry policy")
	}
	// gRPC virtual node provider and gRPC route without a policy: UNAVAILABLE too.
	grpcCfg := buildYAML(t, routerYAML(), `meshName: m
virtualServiceName: grpc.m.local
spec: {provider: {virtualNode: {virtualNodeName: grpc-server}}}`, `meshName: m
virtualNodeName: grpc-client
spec:
  backends:
  - virtualService: {virtualServiceName: grpc.m.local}`)
	for _, f := range []Flavor{Envoy, GRPC} {
		rc := "rds_egress_grpc_9090"
		if f == GRPC {
			rc = "grpc.m.local:9090"
		}
		r := translateNode(t, New(grpcCfg, Options{}), vn("m", "grpc-client"), f)
		p := findRoute(t, findVirtualHost(t, findRouteConfig(t, r, rc), "grpc.m.local"), "vn_grpc-server").GetRoute().RetryPolicy
		want := append([]string{}, defaultRetryOn...)
		want = append(want, "unavailable")
		if f == GRPC {
			want = []string{"unavailable"} // grpc-go takes gRPC codes only
		}
		sort.Strings(want)
		if got := retryOn(p); !equalStrings(got, want) || p.GetNumRetries().GetValue() != 2 {
			t.Errorf("%s gRPC provider: retry_on %q num %d, want %q and 2", f, got, p.GetNumRetries().GetValue(), want)
		}
		r = translateNode(t, New(grpcCfg, Options{NoDefaultRetryPolicy: true}), vn("m", "grpc-client"), f)
		if p := findRoute(t, findVirtualHost(t, findRouteConfig(t, r, rc), "grpc.m.local"), "vn_grpc-server").GetRoute().RetryPolicy; p != nil {
			t.Errorf("%s gRPC provider with NoDefaultRetryPolicy: %v", f, p)
		}
	}
	// TCP has no retries.
	tcp := findChain(t, findListener(t, r, "lds_egress_0.0.0.0_15001"), "egress_tcp_9000")
	if tcpProxyOf(t, tcp).GetCluster() != "cds_egress_features_api_tcp_9000" {
		t.Errorf("tcp chain: %v", tcpProxyOf(t, tcp))
	}
}

// TestRetryEvents checks the App Mesh → Envoy retry_on mapping (§1.5.1,
// §2.8; notes §3.3): server-error → 5xx + reset, gateway-error →
// gateway-error + reset, client-error → retriable status 409, stream-error
// → refused-stream, connection-error → connect-failure; gRPC events as is;
// with num_retries, per_try_timeout and the previous-hosts predicate.
func TestRetryEvents(t *testing.T) {
	policy := func(http, tcp string) string {
		s := "  httpRoute:\n    match: {prefix: /x}\n    action: {weightedTargets: [{virtualNode: server, weight: 1}]}\n    retryPolicy:\n      maxRetries: 4\n      perRetryTimeout: {unit: ms, value: 250}\n"
		if http != "" {
			s += "      httpRetryEvents: [" + http + "]\n"
		}
		if tcp != "" {
			s += "      tcpRetryEvents: [" + tcp + "]\n"
		}
		return s
	}
	cases := []struct {
		name, http, tcp string
		want            []string
		codes           string
	}{
		{"server", "server-error", "", []string{"5xx", "reset"}, "[]"},
		{"gateway", "gateway-error", "", []string{"gateway-error", "reset"}, "[]"},
		{"client", "client-error", "", []string{"retriable-status-codes"}, "[409]"},
		{"stream", "stream-error", "", []string{"refused-stream"}, "[]"},
		{"connection", "", "connection-error", []string{"connect-failure"}, "[]"},
		{"all", "server-error, gateway-error, client-error, stream-error", "connection-error",
			[]string{"5xx", "connect-failure", "gateway-error", "refused-stream", "reset", "retriable-status-codes"}, "[409]"},
	}
	var docs []string
	for _, c := range cases {
		docs = append(docs, "routeName: "+c.name+"\nspec:\n  priority: 1\n"+strings.Replace(policy(c.http, c.tcp), "/x", "/"+c.name, 1))
	}
	cfg := buildYAML(t, routerYAML(docs...))
	r := translateNode(t, New(cfg, Options{}), vn("m", "client"), Envoy)
	vh := findVirtualHost(t, findRouteConfig(t, r, "rds_egress_http_8080"), "svc.m.local")
	for _, c := range cases {
		p := findRoute(t, vh, c.name).GetRoute().RetryPolicy
		if got := retryOn(p); !equalStrings(got, c.want) {
			t.Errorf("%s: retry_on %q, want %q", c.name, got, c.want)
		}
		if got := fmt.Sprint(p.GetRetriableStatusCodes()); got != c.codes {
			t.Errorf("%s: retriable status codes %s, want %s", c.name, got, c.codes)
		}
		if p.GetNumRetries().GetValue() != 4 || p.GetPerTryTimeout().AsDuration() != 250*time.Millisecond {
			t.Errorf("%s: num_retries %d per_try_timeout %s, want 4 and 250ms", c.name, p.GetNumRetries().GetValue(), dur(p.GetPerTryTimeout()))
		}
		if len(p.GetRetryHostPredicate()) != 1 || p.RetryHostPredicate[0].Name != "envoy.retry_host_predicates.previous_hosts" || p.HostSelectionRetryMaxAttempts != 5 {
			t.Errorf("%s: host predicate %v, attempts %d", c.name, p.GetRetryHostPredicate(), p.HostSelectionRetryMaxAttempts)
		}
	}
	// gRPC route: Envoy gets every event mapped, gRPC clients only the
	// gRPC codes.
	r = translateNode(t, New(scenario(t, featuresDir), Options{}), vn("features", "frontend"), Envoy)
	p := findRoute(t, findVirtualHost(t, findRouteConfig(t, r, "rds_egress_grpc_50051"), "grpc.features.local"), "get").GetRoute().RetryPolicy
	if got, want := retryOn(p), []string{"cancelled", "connect-failure", "deadline-exceeded", "refused-stream", "unavailable"}; !equalStrings(got, want) || p.NumRetries.GetValue() != 2 {
		t.Errorf("envoy gRPC route: retry_on %q num %d, want %q and 2", got, p.NumRetries.GetValue(), want)
	}
	r = translateNode(t, New(scenario(t, featuresDir), Options{}), vn("features", "frontend"), GRPC)
	p = findRoute(t, findVirtualHost(t, findRouteConfig(t, r, "grpc.features.local:50051"), "grpc.features.local"), "get").GetRoute().RetryPolicy
	if got, want := retryOn(p), []string{"cancelled", "deadline-exceeded", "unavailable"}; !equalStrings(got, want) || p.NumRetries.GetValue() != 2 {
		t.Errorf("grpc gRPC route: retry_on %q num %d, want %q and 2", got, p.NumRetries.GetValue(), want)
	}
	// An HTTP policy has no gRPC form: a gRPC client gets no retries
	// rather than conditions it rejects.
	p = findRoute(t, findVirtualHost(t, findRouteConfig(t, r, "api.features.local:8080"), "api.features.local"), "reads").GetRoute().RetryPolicy
	if p != nil {
		t.Errorf("grpc flavor, HTTP retry policy: %v", p)
	}
}

// TestTimeouts checks App Mesh's timeouts (§1.3, §1.5.1): 15 s per request
// and 300 s idle by default, 0 disables, route timeouts on egress routes,
// listener timeouts on the ingress, and max_stream_duration for gRPC
// clients.
func TestTimeouts(t *testing.T) {
	tr := New(scenario(t, featuresDir), Options{})
	front := translateNode(t, tr, vn("features", "frontend"), Envoy)
	egress := findRouteConfig(t, front, "rds_egress_http_8080")
	api := findVirtualHost(t, egress, "api.features.local")
	cases := []struct {
		what              string
		route             *routev3.Route
		perRequest, idle  string
		grpcMaxStreamTime string
	}{
		{"default", findRoute(t, api, "default"), "15s", "5m0s", ""},
		{"route timeout 0 disables, idle from the route", findRoute(t, api, "reads"), "0s", "30s", ""},
		{"virtual node provider", findRoute(t, findVirtualHost(t, egress, "cloud.features.local"), "vn_cloud"), "15s", "5m0s", ""},
		{"grpc route", findRoute(t, findVirtualHost(t, findRouteConfig(t, front, "rds_egress_grpc_50051"), "grpc.features.local"), "get"), "5s", "1m0s", ""},
	}
	apiNode := translateNode(t, tr, vn("features", "api"), Envoy)
	cases = append(cases, struct {
		what              string
		route             *routev3.Route
		perRequest, idle  string
		grpcMaxStreamTime string
	}{"ingress: the listener's timeout (30 s, idle 0)", findRoute(t, findVirtualHost(t, findRouteConfig(t, apiNode, "rds_ingress_http_8080"), "ingress"), "ingress"), "30s", "0s", ""})
	for _, c := range cases {
		a := c.route.GetRoute()
		if dur(a.Timeout) != c.perRequest || dur(a.IdleTimeout) != c.idle {
			t.Errorf("%s: timeout %s idle %s, want %s and %s", c.what, dur(a.Timeout), dur(a.IdleTimeout), c.perRequest, c.idle)
		}
	}
	// The HTTP connection manager's idle timeout and the TCP proxy's.
	ingress := findListener(t, apiNode, "lds_ingress_0.0.0.0_15000")
	if h := hcmOf(t, findChain(t, ingress, "ingress_8080")); dur(h.GetCommonHttpProtocolOptions().GetIdleTimeout()) != "0s" {
		t.Errorf("api ingress HCM idle %s, want 0s (disabled)", dur(h.GetCommonHttpProtocolOptions().GetIdleTimeout()))
	}
	if p := tcpProxyOf(t, findChain(t, ingress, "ingress_9000")); dur(p.IdleTimeout) != "1m0s" {
		t.Errorf("api ingress TCP idle %s, want 1m0s", dur(p.IdleTimeout))
	}
	if p := tcpProxyOf(t, findChain(t, findListener(t, front, "lds_egress_0.0.0.0_15001"), "egress_tcp_9000")); dur(p.IdleTimeout) != "2m0s" {
		t.Errorf("egress TCP route idle %s, want 2m0s (the tcp route's)", dur(p.IdleTimeout))
	}
	serviceB := translateNode(t, New(buildDir(t, appsDir), Options{}), vn("apps", "serviceB"), Envoy)
	in := findRoute(t, findVirtualHost(t, findRouteConfig(t, serviceB, "rds_ingress_http2_80"), "ingress"), "ingress").GetRoute()
	if dur(in.Timeout) != "15s" || dur(in.IdleTimeout) != "5m0s" {
		t.Errorf("default ingress timeouts %s/%s, want 15s/5m0s", dur(in.Timeout), dur(in.IdleTimeout))
	}
	// gRPC clients: max_stream_duration only.
	g := translateNode(t, tr, vn("features", "frontend"), GRPC)
	for _, c := range []struct{ rc, vh, route, want string }{
		{"api.features.local:8080", "api.features.local", "default", "15s"},
		{"api.features.local:8080", "api.features.local", "reads", "0s"},
		{"grpc.features.local:50051", "grpc.features.local", "get", "5s"},
	} {
		a := findRoute(t, findVirtualHost(t, findRouteConfig(t, g, c.rc), c.vh), c.route).GetRoute()
		if got := dur(a.GetMaxStreamDuration().GetMaxStreamDuration()); got != c.want || a.Timeout != nil || a.IdleTimeout != nil {
			t.Errorf("grpc %s/%s: max_stream_duration %s (timeout %s, idle %s), want %s only", c.vh, c.route, got, dur(a.Timeout), dur(a.IdleTimeout), c.want)
		}
	}
}

// TestVirtualNodeProviderTimeout: a virtual node provider's implicit route
// takes the target listener's timeout (App Mesh cannot put one on the
// provider).
func TestVirtualNodeProviderTimeout(t *testing.T) {
	cfg := buildYAML(t, `meshName: m
spec: {}`, `meshName: m
virtualNodeName: server
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http2}
    timeout: {http2: {perRequest: {unit: ms, value: 1500}, idle: {unit: s, value: 0}}}
  serviceDiscovery: {dns: {hostname: server.m.local}}`, `meshName: m
virtualServiceName: svc.m.local
spec: {provider: {virtualNode: {virtualNodeName: server}}}`, `meshName: m
virtualNodeName: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.m.local}}]`)
	r := translateNode(t, New(cfg, Options{}), vn("m", "client"), Envoy)
	a := findRoute(t, findVirtualHost(t, findRouteConfig(t, r, "rds_egress_http2_8080"), "svc.m.local"), "vn_server").GetRoute()
	if dur(a.Timeout) != "1.5s" || dur(a.IdleTimeout) != "0s" {
		t.Errorf("timeout %s idle %s, want 1.5s and 0s", dur(a.Timeout), dur(a.IdleTimeout))
	}
}

// TestCircuitBreakers checks App Mesh's circuit breakers (§2.9): all four
// thresholds 2147483647 by default, and listener connection pools (§1.3)
// applied to the local application's cluster only.
func TestCircuitBreakers(t *testing.T) {
	tr := New(scenario(t, featuresDir), Options{})
	type th struct{ conns, pending, requests, retries uint32 }
	const M = maxThreshold
	get := func(c *clusterv3.Cluster) th {
		ts := c.GetCircuitBreakers().GetThresholds()
		if len(ts) != 1 {
			t.Fatalf("cluster %s: thresholds %v", c.Name, ts)
		}
		x := ts[0]
		return th{x.MaxConnections.GetValue(), x.MaxPendingRequests.GetValue(), x.MaxRequests.GetValue(), x.MaxRetries.GetValue()}
	}
	api := translateNode(t, tr, vn("features", "api"), Envoy)
	front := translateNode(t, tr, vn("features", "frontend"), Envoy)
	gw := translateNode(t, New(scenario(t, gatewayDir), Options{}), vg("gw", "grpc-ingress"), Envoy)
	http2 := buildYAML(t, `meshName: m
spec: {}`, `meshName: m
virtualNodeName: h2
spec:
  listeners:
  - portMapping: {port: 80, protocol: http2}
    connectionPool: {http2: {maxRequests: 300}}
  - portMapping: {port: 81, protocol: grpc}
    connectionPool: {grpc: {maxRequests: 400}}
  serviceDiscovery: {dns: {hostname: h2.m.local}}`)
	h2 := translateNode(t, New(http2, Options{}), vn("m", "h2"), Envoy)
	for _, c := range []struct {
		r    *Resources
		name string
		want th
	}{
		{api, "cds_ingress_features_api_http_8080", th{100, 10, M, M}},
		{api, "cds_ingress_features_api_tcp_9000", th{50, M, M, M}},
		{h2, "cds_ingress_m_h2_http2_80", th{M, M, 300, M}},
		{h2, "cds_ingress_m_h2_grpc_81", th{M, M, 400, M}},
		{gw, "cds_ingress_gw_grpc-ingress_self_redirect_grpc_15001", th{M, M, 64, M}},
		// Client side: App Mesh's defaults, whatever the server's pool.
		{front, "cds_egress_features_api_http_8080", th{M, M, M, M}},
		{front, "cds_egress_features_api_tcp_9000", th{M, M, M, M}},
		{front, "cds_ingress_features_frontend_http_8080", th{M, M, M, M}},
		{front, "cds_egress_features_amazonaws", th{M, M, M, M}},
		{front, "cds_egress_features_mesh-allow-all", th{M, M, M, M}},
		{gw, "cds_egress_gw_colors_grpc_50051", th{M, M, M, M}},
	} {
		if got := get(findCluster(t, c.r, c.name)); got != c.want {
			t.Errorf("%s: thresholds %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestNoIngressWithoutListeners: a virtual node without listeners has no
// ingress listener (§2.3) but still an egress listener.
func TestNoIngressWithoutListeners(t *testing.T) {
	r := translateNode(t, New(scenario(t, featuresDir), Options{}), vn("features", "batch"), Envoy)
	for _, n := range names(r, resource.ListenerType) {
		if strings.Contains(n, "ingress") {
			t.Errorf("batch has listener %s", n)
		}
	}
	for _, n := range names(r, resource.ClusterType) {
		if strings.HasPrefix(n, "cds_ingress") {
			t.Errorf("batch has cluster %s", n)
		}
	}
	findListener(t, r, "lds_egress_0.0.0.0_15001")
}

// TestEgressListener checks the sidecar egress listener: a filter chain per
// backend port matched by destination port (HTTP routed by virtual
// service, TCP by port), the AWS APIs by SNI on 443, ALLOW_ALL's
// passthrough only with ALLOW_ALL (§1.1, §2.5).
func TestEgressListener(t *testing.T) {
	front := translateNode(t, New(scenario(t, featuresDir), Options{}), vn("features", "frontend"), Envoy)
	ln := findListener(t, front, "lds_egress_0.0.0.0_15001")
	if got, want := chainNames(ln), []string{"egress_http_8080", "egress_tcp_9000", "egress_grpc_50051", "egress_amazonaws"}; !equalStrings(got, want) {
		t.Errorf("chains %q, want %q", got, want)
	}
	for _, c := range []struct {
		chain string
		port  uint32
	}{{"egress_http_8080", 8080}, {"egress_tcp_9000", 9000}, {"egress_grpc_50051", 50051}} {
		if got := findChain(t, ln, c.chain).GetFilterChainMatch().GetDestinationPort().GetValue(); got != c.port {
			t.Errorf("%s matches port %d", c.chain, got)
		}
	}
	if h := hcmOf(t, findChain(t, ln, "egress_http_8080")); h.GetRds().GetRouteConfigName() != "rds_egress_http_8080" || h.StatPrefix != "egress" {
		t.Errorf("egress HCM: rds %q stat prefix %q", h.GetRds().GetRouteConfigName(), h.StatPrefix)
	}
	aws := findChain(t, ln, "egress_amazonaws")
	if m := aws.FilterChainMatch; m.GetDestinationPort().GetValue() != 443 || !equalStrings(m.ServerNames, []string{"*.amazonaws.com"}) || m.TransportProtocol != "tls" {
		t.Errorf("amazonaws match %v", m)
	}
	if tcpProxyOf(t, aws).GetCluster() != "cds_egress_features_amazonaws" {
		t.Errorf("amazonaws chain: %v", tcpProxyOf(t, aws))
	}
	if c := findCluster(t, front, "cds_egress_features_amazonaws"); c.GetType() != clusterv3.Cluster_ORIGINAL_DST || c.LbPolicy != clusterv3.Cluster_CLUSTER_PROVIDED {
		t.Errorf("amazonaws cluster %v/%v", c.GetType(), c.LbPolicy)
	}
	// ALLOW_ALL: the default chain and a catch-all virtual host.
	if d := ln.DefaultFilterChain; d == nil || tcpProxyOf(t, d).GetCluster() != "cds_egress_features_mesh-allow-all" {
		t.Errorf("ALLOW_ALL default filter chain: %v", ln.DefaultFilterChain)
	}
	vh := findVirtualHost(t, findRouteConfig(t, front, "rds_egress_http_8080"), "mesh-allow-all")
	if !equalStrings(vh.Domains, []string{"*"}) || vh.Routes[0].GetRoute().GetCluster() != "cds_egress_features_mesh-allow-all" {
		t.Errorf("allow-all virtual host %v", vh)
	}
	var filters []string
	for _, f := range ln.ListenerFilters {
		filters = append(filters, f.Name)
	}
	if !equalStrings(filters, []string{"envoy.filters.listener.original_dst", "envoy.filters.listener.tls_inspector"}) {
		t.Errorf("egress listener filters %q", filters)
	}
	// DROP_ALL: neither.
	a := translateNode(t, New(buildDir(t, appsDir), Options{}), vn("apps", "serviceA"), Envoy)
	if l := findListener(t, a, "lds_egress_0.0.0.0_15001"); l.DefaultFilterChain != nil {
		t.Errorf("DROP_ALL mesh has a default filter chain: %v", l.DefaultFilterChain)
	}
	for _, rc := range a.Types[resource.RouteType] {
		for _, vh := range rc.(*routev3.RouteConfiguration).VirtualHosts {
			for _, d := range vh.Domains {
				if d == "*" && strings.HasPrefix(rc.(*routev3.RouteConfiguration).Name, "rds_egress") {
					t.Errorf("DROP_ALL mesh: catch-all virtual host %s", vh.Name)
				}
			}
		}
	}
	if l := findListener(t, a, "lds_egress_0.0.0.0_15001"); l.Address.GetSocketAddress().GetAddress() != "0.0.0.0" || l.TrafficDirection.String() != "OUTBOUND" {
		t.Errorf("egress listener address %v direction %v", l.Address, l.TrafficDirection)
	}
}

// TestSharedNodeClusters: a node reached through two virtual services has a
// cluster per service, each virtual host sending to its own (so stats stay
// attributable), and the cluster metadata names the service.
func TestSharedNodeClusters(t *testing.T) {
	front := translateNode(t, New(scenario(t, featuresDir), Options{}), vn("features", "frontend"), Envoy)
	rc := findRouteConfig(t, front, "rds_egress_http_8080")
	for _, vs := range []string{"shared-a.features.local", "shared-b.features.local"} {
		want := "cds_egress_features_shared_http_8080_" + strings.ReplaceAll(vs, ".", "-")
		got := weights(t, findVirtualHost(t, rc, vs).Routes[0])
		if fmt.Sprint(got) != fmt.Sprint(map[string]uint32{want: 100}) {
			t.Errorf("%s routes to %v, want %s", vs, got, want)
		}
		md := findCluster(t, front, want).GetMetadata().GetFilterMetadata()[MetadataKey].GetFields()
		if md["TargetVirtualService"].GetStringValue() != vs || md["TargetVirtualNode"].GetStringValue() != "shared" {
			t.Errorf("%s metadata %v", want, md)
		}
	}
}

// TestHealthCheckAndOutlierDetection: a listener's health check and outlier
// detection apply in its clients' clusters (§1.3); gRPC clients get outlier
// detection but no active health checks.
func TestHealthCheckAndOutlierDetection(t *testing.T) {
	tr := New(scenario(t, featuresDir), Options{})
	for _, f := range []Flavor{Envoy, GRPC} {
		c := findCluster(t, translateNode(t, tr, vn("features", "frontend"), f), "cds_egress_features_api_http_8080")
		od := c.GetOutlierDetection()
		if od.GetConsecutive_5Xx().GetValue() != 5 || dur(od.GetInterval()) != "10s" || dur(od.GetBaseEjectionTime()) != "30s" || od.GetMaxEjectionPercent().GetValue() != 50 {
			t.Errorf("%s: outlier detection %v", f, od)
		}
		if f == GRPC {
			if len(c.HealthChecks) != 0 {
				t.Errorf("grpc: health checks %v", c.HealthChecks)
			}
			continue
		}
		if len(c.HealthChecks) != 1 {
			t.Fatalf("health checks %v", c.HealthChecks)
		}
		hc := c.HealthChecks[0]
		if hc.GetHttpHealthCheck().GetPath() != "/health" || dur(hc.Timeout) != "2s" || dur(hc.Interval) != "5s" ||
			hc.HealthyThreshold.GetValue() != 2 || hc.UnhealthyThreshold.GetValue() != 3 {
			t.Errorf("health check %v", hc)
		}
		if tcp := findCluster(t, translateNode(t, tr, vn("features", "frontend"), f), "cds_egress_features_api_tcp_9000"); tcp.OutlierDetection != nil || len(tcp.HealthChecks) > 0 {
			t.Errorf("the tcp listener has neither, got %v %v", tcp.OutlierDetection, tcp.HealthChecks)
		}
	}
}

// TestServiceDiscovery: DNS LOADBALANCER → LOGICAL_DNS, ENDPOINTS →
// STRICT_DNS for Envoy (LOGICAL_DNS for gRPC, which has no STRICT_DNS),
// the IP preference as DNS lookup family, Cloud Map → EDS with an (empty)
// endpoint resource and a warning (§1.3 service discovery).
func TestServiceDiscovery(t *testing.T) {
	tr := New(scenario(t, featuresDir), Options{})
	for _, c := range []struct {
		flavor  Flavor
		cluster string
		typ     clusterv3.Cluster_DiscoveryType
		family  clusterv3.Cluster_DnsLookupFamily
	}{
		{Envoy, "cds_egress_features_api_http_8080", clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_V4_ONLY},
		{GRPC, "cds_egress_features_api_http_8080", clusterv3.Cluster_LOGICAL_DNS, clusterv3.Cluster_V4_ONLY},
		{Envoy, "cds_egress_features_items_grpc_50051", clusterv3.Cluster_LOGICAL_DNS, clusterv3.Cluster_AUTO},
		{Envoy, "cds_egress_features_cloud_http_8080", clusterv3.Cluster_EDS, clusterv3.Cluster_AUTO},
		{GRPC, "cds_egress_features_cloud_http_8080", clusterv3.Cluster_EDS, clusterv3.Cluster_AUTO},
	} {
		r := translateNode(t, tr, vn("features", "frontend"), c.flavor)
		cl := findCluster(t, r, c.cluster)
		if cl.GetType() != c.typ || cl.DnsLookupFamily != c.family {
			t.Errorf("%s %s: %v/%v, want %v/%v", c.flavor, c.cluster, cl.GetType(), cl.DnsLookupFamily, c.typ, c.family)
		}
		if c.typ == clusterv3.Cluster_EDS {
			if got := names(r, resource.EndpointType); !equalStrings(got, []string{c.cluster}) {
				t.Errorf("%s: endpoint resources %q", c.flavor, got)
			}
			if !strings.Contains(strings.Join(r.Warnings, "\n"), "Cloud Map") {
				t.Errorf("%s: no Cloud Map warning in %q", c.flavor, r.Warnings)
			}
			continue
		}
		ep := cl.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if !strings.HasSuffix(ep.GetAddress(), ".features.local") || ep.GetPortValue() == 0 {
			t.Errorf("%s: endpoint %v", c.cluster, ep)
		}
	}
}

// TestIPPreference: with a mesh IP preference, listeners bind IPv4 and
// IPv6 (§1.1 matrix); IPv6 preferences put the local application on ::1.
func TestIPPreference(t *testing.T) {
	mk := func(meshPref, nodePref string) *Resources {
		mesh := "meshName: m\nspec: {}"
		if meshPref != "" {
			mesh = "meshName: m\nspec: {serviceDiscovery: {ipPreference: " + meshPref + "}}"
		}
		dns := "{hostname: app.m.local}"
		if nodePref != "" {
			dns = "{hostname: app.m.local, ipPreference: " + nodePref + "}"
		}
		return translateNode(t, New(buildYAML(t, mesh, `meshName: m
virtualNodeName: app
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: `+dns+`}`), Options{}), vn("m", "app"), Envoy)
	}
	for _, c := range []struct {
		mesh, node, bind, local string
	}{
		{"", "", "0.0.0.0", "127.0.0.1"},
		{"IPv4_ONLY", "", "::", "127.0.0.1"},
		{"IPv6_PREFERRED", "", "::", "::1"},
		{"IPv6_ONLY", "", "::", "::1"},
		{"IPv4_PREFERRED", "", "::", "127.0.0.1"},
		{"IPv4_ONLY", "IPv6_PREFERRED", "::", "::1"}, // the node overrides the mesh
		{"IPv6_ONLY", "IPv4_ONLY", "::", "127.0.0.1"},
	} {
		r := mk(c.mesh, c.node)
		for _, ln := range []string{"lds_ingress_0.0.0.0_15000", "lds_egress_0.0.0.0_15001"} {
			sa := findListener(t, r, ln).GetAddress().GetSocketAddress()
			if sa.GetAddress() != c.bind || (c.bind == "::") != sa.GetIpv4Compat() {
				t.Errorf("mesh %q node %q: %s binds %s (ipv4_compat %v), want %s", c.mesh, c.node, ln, sa.GetAddress(), sa.GetIpv4Compat(), c.bind)
			}
		}
		ep := findCluster(t, r, "cds_ingress_m_app_http_8080").GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
		if ep.GetAddress() != c.local {
			t.Errorf("mesh %q node %q: local application at %s, want %s", c.mesh, c.node, ep.GetAddress(), c.local)
		}
	}
}

// TestIPPreferenceOverrideBinding: §1.1's matrix says any IP preference
// makes the listeners bind IPv4 and IPv6, and a virtual node can set its
// own; the translator only looks at the mesh's (sidecar.go bindAddress),
// so a node that prefers IPv6 in a mesh without a preference gets its
// application on ::1 but listeners on 0.0.0.0 only.
func TestIPPreferenceOverrideBinding(t *testing.T) {
	r := translateNode(t, New(buildYAML(t, "meshName: m\nspec: {}", `meshName: m
virtualNodeName: app
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: app.m.local, ipPreference: IPv6_ONLY}}`), Options{}), vn("m", "app"), Envoy)
	if sa := findListener(t, r, "lds_ingress_0.0.0.0_15000").GetAddress().GetSocketAddress(); sa.GetAddress() != "::" {
		t.Errorf("IPv6_ONLY node binds %s, want :: (IPv4 and IPv6)", sa.GetAddress())
	}
}

// TestAccessLogs: text and JSON formats (§1.8.4) on every HTTP connection
// manager and TCP proxy of the node.
func TestAccessLogs(t *testing.T) {
	tr := New(scenario(t, featuresDir), Options{})
	check := func(r *Resources, path string, text string, json map[string]string) {
		t.Helper()
		n := 0
		for _, res := range r.Types[resource.ListenerType] {
			ln := res.(*listenerv3.Listener)
			chains := append([]*listenerv3.FilterChain{}, ln.FilterChains...)
			if ln.DefaultFilterChain != nil {
				chains = append(chains, ln.DefaultFilterChain)
			}
			for _, fc := range chains {
				var logs []string
				switch fc.Filters[0].Name {
				case "envoy.filters.network.http_connection_manager":
					for _, l := range hcmOf(t, fc).AccessLog {
						logs = append(logs, fileLog(t, l.GetTypedConfig()))
					}
				case "envoy.filters.network.tcp_proxy":
					for _, l := range tcpProxyOf(t, fc).AccessLog {
						logs = append(logs, fileLog(t, l.GetTypedConfig()))
					}
				}
				want := path + " text=" + text
				if json != nil {
					want = path + " json=" + fmt.Sprint(json)
				}
				if len(logs) != 1 || logs[0] != want {
					t.Errorf("%s %s/%s: access logs %q, want %q", r.Node.Name, ln.Name, fc.Name, logs, want)
				}
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s: no filter chains", r.Node.Name)
		}
	}
	check(translateNode(t, tr, vn("features", "frontend"), Envoy), "/dev/stdout", "[%START_TIME%] %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE%\n", nil)
	check(translateNode(t, tr, vn("features", "api"), Envoy), "/var/log/envoy/access.json", "", map[string]string{"code": "%RESPONSE_CODE%", "path": "%REQ(:PATH)%", "start": "%START_TIME%"})
	check(translateNode(t, New(scenario(t, gatewayDir), Options{}), vg("gw", "ingress"), Envoy), "/dev/stdout", "", nil)
}

func fileLog(t *testing.T, a *anypb.Any) string {
	t.Helper()
	fal := unpack(t, a, &filev3.FileAccessLog{})
	f := fal.GetLogFormat()
	if js := f.GetJsonFormat(); js != nil {
		m := map[string]string{}
		for k, v := range js.Fields {
			m[k] = v.GetStringValue()
		}
		return fal.Path + " json=" + fmt.Sprint(m)
	}
	return fal.Path + " text=" + f.GetTextFormatSource().GetInlineString()
}

// TestEgressPortConflicts: TCP has no name to route on, so two TCP
// services on one port cannot both be reached, and a TCP service on an
// HTTP port is not routed; both are warned about (§2.5).
func TestEgressPortConflicts(t *testing.T) {
	svc := func(name, proto string, port int) string {
		return fmt.Sprintf(`meshName: m
virtualNodeName: %[1]s
spec:
  listeners: [{portMapping: {port: %[3]d, protocol: %[2]s}}]
  serviceDiscovery: {dns: {hostname: %[1]s.m.local}}
---
meshName: m
virtualServiceName: %[1]s.m.local
spec: {provider: {virtualNode: {virtualNodeName: %[1]s}}}`, name, proto, port)
	}
	cfg := buildYAML(t, "meshName: m\nspec: {}", svc("db1", "tcp", 5432), svc("db2", "tcp", 5432), svc("web", "http", 80), svc("raw", "tcp", 80), `meshName: m
virtualNodeName: client
spec:
  backends:
  - virtualService: {virtualServiceName: db1.m.local}
  - virtualService: {virtualServiceName: db2.m.local}
  - virtualService: {virtualServiceName: web.m.local}
  - virtualService: {virtualServiceName: raw.m.local}`)
	r := translateNode(t, New(cfg, Options{}), vn("m", "client"), Envoy)
	ln := findListener(t, r, "lds_egress_0.0.0.0_15001")
	if got, want := chainNames(ln), []string{"egress_http_80", "egress_tcp_5432", "egress_amazonaws"}; !equalStrings(got, want) {
		t.Errorf("chains %q, want %q", got, want)
	}
	if c := tcpProxyOf(t, findChain(t, ln, "egress_tcp_5432")).GetCluster(); c != "cds_egress_m_db1_tcp_5432" {
		t.Errorf("port 5432 goes to %s, want the first service's cluster", c)
	}
	w := strings.Join(r.Warnings, "\n")
	for _, want := range []string{`"db1.m.local" and "db2.m.local" are both TCP on port 5432`, `"raw.m.local" (tcp) shares port 80 with HTTP`} {
		if !strings.Contains(w, want) {
			t.Errorf("no warning %q in %q", want, r.Warnings)
		}
	}
}

// TestSharedFiltersKeepEachNodesAccessLog: network filters are shared
// between nodes with the same access log, so nodes whose access logs
// differ, however alike they print, each get their own.
func TestSharedFiltersKeepEachNodesAccessLog(t *testing.T) {
	node := func(name, json string) string {
		return fmt.Sprintf(`meshName: m
virtualNodeName: %s
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: %[1]s.m.local}}
  backends: [{virtualService: {virtualServiceName: web.m.local}}]
  logging: {accessLog: {file: {path: /dev/stdout, format: {json: %s}}}}`, name, json)
	}
	cfg := buildYAML(t, "meshName: m\nspec: {}",
		node("a", `[{key: k, value: "v} {Key:k2 Value:v2"}]`),
		node("b", `[{key: k, value: v}, {key: k2, value: v2}]`),
		`meshName: m
virtualNodeName: web
spec:
  listeners: [{portMapping: {port: 80, protocol: http}}]
  serviceDiscovery: {dns: {hostname: web.m.local}}
---
meshName: m
virtualServiceName: web.m.local
spec: {provider: {virtualNode: {virtualNodeName: web}}}`)
	tr := New(cfg, Options{})
	for _, c := range []struct {
		node string
		want map[string]string
	}{
		{"a", map[string]string{"k": "v} {Key:k2 Value:v2"}},
		{"b", map[string]string{"k": "v", "k2": "v2"}},
	} {
		r := translateNode(t, tr, vn("m", c.node), Envoy)
		want := "/dev/stdout json=" + fmt.Sprint(c.want)
		for _, ln := range []string{"lds_ingress_0.0.0.0_15000", "lds_egress_0.0.0.0_15001"} {
			for _, fc := range findListener(t, r, ln).FilterChains {
				if fc.Filters[0].Name != "envoy.filters.network.http_connection_manager" {
					continue
				}
				for _, l := range hcmOf(t, fc).AccessLog {
					if got := fileLog(t, l.GetTypedConfig()); got != want {
						t.Errorf("%s %s/%s: access log %q, want %q", c.node, ln, fc.Name, got, want)
					}
				}
			}
		}
	}
}
