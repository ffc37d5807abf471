package model

import (
	"os"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/appmesh/load"
)

const base = `meshName: m
spec: {}
---
meshName: m
virtualNodeName: a
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
  serviceDiscovery: {dns: {hostname: a.m.local}}
---
meshName: m
virtualNodeName: two
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}, {portMapping: {port: 9090, protocol: grpc}}]
  serviceDiscovery: {dns: {hostname: two.m.local}}
---
meshName: m
virtualRouterName: r
spec:
  listeners: [{portMapping: {port: 80, protocol: http}}]
---
meshName: m
virtualRouterName: r2
spec:
  listeners: [{portMapping: {port: 80, protocol: http}}, {portMapping: {port: 81, protocol: grpc}}]
---
meshName: m
virtualServiceName: a.m.local
spec: {provider: {virtualRouter: {virtualRouterName: r}}}
---
meshName: m
virtualServiceName: two.m.local
spec: {provider: {virtualNode: {virtualNodeName: two}}}
---
meshName: m
virtualGatewayName: gw
spec:
  listeners: [{portMapping: {port: 8088, protocol: http}}]
---
meshName: m
virtualGatewayName: gw2
spec:
  listeners: [{portMapping: {port: 8088, protocol: http}}, {portMapping: {port: 8089, protocol: grpc}}]
`

func build(t *testing.T, extra string) (*Config, []load.Problem, []load.Problem) {
	t.Helper()
	res := load.Files([]load.File{{Name: "m.yaml", Data: []byte(base + extra)}}, load.Options{})
	if len(res.Problems) > 0 {
		t.Fatalf("load: %v", res.Problems)
	}
	return Build(res.Docs)
}

func TestBuildValid(t *testing.T) {
	cfg, problems, warnings := build(t, `---
meshName: m
virtualRouterName: r
routeName: ok
spec:
  httpRoute:
    match: {prefix: /}
    action: {weightedTargets: [{virtualNode: a, weight: 1}, {virtualNode: two, port: 8080, weight: 1}]}
`)
	if len(problems) > 0 || len(warnings) > 0 || cfg == nil {
		t.Fatalf("problems %v warnings %v", problems, warnings)
	}
	m := cfg.Meshes["m"]
	if len(m.VirtualNodes) != 2 || len(m.VirtualRouters["r"].Routes) != 1 || len(m.VirtualGateways) != 2 {
		t.Fatalf("indexed %+v", m)
	}
	if got := m.ServicePorts(m.VirtualServices["two.m.local"]); len(got) != 2 || got[1] != (Port{9090, "grpc"}) {
		t.Errorf("ServicePorts(two.m.local) = %v", got)
	}
}

func TestBuildCrossResourceRules(t *testing.T) {
	cases := []struct{ name, extra, want string }{
		{"route protocol ≠ router listener", `---
meshName: m
virtualRouterName: r
routeName: x
spec: {grpcRoute: {match: {serviceName: s}, action: {weightedTargets: [{virtualNode: a, weight: 1}]}}}
`, `m.yaml (document 10): spec.grpcRoute: a grpc route cannot be served by virtual router "r"'s http listener on port 80`},
		{"match.port required", `---
meshName: m
virtualRouterName: r2
routeName: x
spec: {httpRoute: {match: {prefix: /}, action: {weightedTargets: [{virtualNode: a, weight: 1}]}}}
`, `spec.httpRoute.match.port: is required: virtual router "r2" has 2 listeners`},
		{"match.port unknown", `---
meshName: m
virtualRouterName: r2
routeName: x
spec: {httpRoute: {match: {prefix: /, port: 82}, action: {weightedTargets: [{virtualNode: a, weight: 1}]}}}
`, `spec.httpRoute.match.port: virtual router "r2" has no listener on port 82`},
		{"target port required", `---
meshName: m
virtualRouterName: r
routeName: x
spec: {httpRoute: {match: {prefix: /}, action: {weightedTargets: [{virtualNode: two, weight: 1}]}}}
`, `spec.httpRoute.action.weightedTargets[0].port: is required: virtual node "two" has 2 listeners`},
		{"target protocol", `---
meshName: m
virtualRouterName: r
routeName: x
spec: {httpRoute: {match: {prefix: /}, action: {weightedTargets: [{virtualNode: two, port: 9090, weight: 1}]}}}
`, `spec.httpRoute.action.weightedTargets[0]: a http route cannot send traffic to virtual node "two"'s grpc listener on port 9090`},
		{"gateway route match.port required", `---
meshName: m
virtualGatewayName: gw2
gatewayRouteName: g
spec: {httpRoute: {match: {prefix: /}, action: {target: {virtualService: {virtualServiceName: a.m.local}}}}}
`, `spec.httpRoute.match.port: is required: virtual gateway "gw2" has 2 listeners`},
		{"gateway route target port required", `---
meshName: m
virtualGatewayName: gw
gatewayRouteName: g
spec: {httpRoute: {match: {prefix: /}, action: {target: {virtualService: {virtualServiceName: two.m.local}}}}}
`, `spec.httpRoute.action.target.port: is required: virtual service "two.m.local" is served on 2 ports`},
		{"gateway route protocol", `---
meshName: m
virtualGatewayName: gw
gatewayRouteName: g
spec: {grpcRoute: {match: {serviceName: s}, action: {target: {virtualService: {virtualServiceName: a.m.local}}}}}
`, `spec.grpcRoute: a grpc gateway route cannot be served by virtual gateway "gw"'s http listener on port 8088`},
		{"service name with a newline", "---\nmeshName: m\nvirtualServiceName: \"x\\n.m.local\"\nspec: {}\n", `contains whitespace or a control character`},
		{"per-resource rule", "---\nmeshName: m\nvirtualRouterName: r\nrouteName: x\nspec: {httpRoute: {match: {prefix: /}, action: {weightedTargets: [{virtualNode: a, weight: 101}]}}}\n",
			`spec.httpRoute.action.weightedTargets[0].weight: must be between 0 and 100, got 101`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, problems, _ := build(t, c.extra)
			found := false
			for _, p := range problems {
				found = found || strings.Contains(p.Error(), c.want)
			}
			if cfg != nil || !found {
				t.Fatalf("want a problem containing %q and no config, got config=%t %v", c.want, cfg != nil, problems)
			}
		})
	}
}

func TestBuildWarnings(t *testing.T) {
	_, problems, warnings := build(t, `---
meshName: m
virtualNodeName: admin
spec:
  listeners: [{portMapping: {port: 9901, protocol: http}, outlierDetection: {maxServerErrors: 5, maxEjectionPercent: 50, interval: {unit: s, value: 10}, baseEjectionDuration: {unit: s, value: 30}}}]
  serviceDiscovery: {dns: {hostname: admin.m.local}}
---
meshName: m
virtualGatewayName: low
spec:
  listeners: [{portMapping: {port: 443, protocol: http}}]
`)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	var got []string
	for _, w := range warnings {
		got = append(got, w.Error())
	}
	for _, want := range []string{"Envoy's default admin port", "outlier detection has no effect with DNS responseType LOADBALANCER", "port 443 needs CAP_NET_BIND_SERVICE"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("no warning %q in %q", want, got)
		}
	}
}

func TestBuildGettingStarted(t *testing.T) {
	res, err := load.Dir(os.DirFS("../../../examples/apps"), ".", load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, problems, warnings := Build(res.Docs)
	if cfg == nil || len(problems)+len(warnings) > 0 {
		t.Fatalf("examples/apps: %v %v", problems, warnings)
	}
	routes := cfg.Meshes["apps"].VirtualRouters["serviceB"].Routes
	if targets, port := RouteTargets(routes[0].Spec); len(targets) != 2 || port != 0 || *targets[0].Weight != 75 {
		t.Errorf("route serviceB: %+v port %d", targets, port)
	}
}
