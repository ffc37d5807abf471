package translate

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Edge values App Mesh accepts (appmesh.Validate: a Duration's value is
// any long ≥ 0) must still become configuration Envoy and gRPC accept.

const hugeDurations = `meshName: m
spec: {}
---
meshName: m
virtualNodeName: server
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
    timeout:
      http:
        perRequest: {unit: s, value: 10000000000}
        idle: {unit: ms, value: 9223372036854775807}
    outlierDetection:
      maxServerErrors: 1
      interval: {unit: s, value: 10000000000}
      baseEjectionDuration: {unit: s, value: 20000000000}
      maxEjectionPercent: 10
  serviceDiscovery: {dns: {hostname: server.m.local, responseType: ENDPOINTS}}
---
meshName: m
virtualRouterName: svc
spec:
  listeners: [{portMapping: {port: 8080, protocol: http}}]
---
meshName: m
virtualRouterName: svc
routeName: slow
spec:
  httpRoute:
    match: {prefix: /}
    timeout:
      perRequest: {unit: s, value: 10000000000}
    retryPolicy:
      maxRetries: 1
      perRetryTimeout: {unit: s, value: 100000000000}
      httpRetryEvents: [server-error]
    action: {weightedTargets: [{virtualNode: server, weight: 1}]}
---
meshName: m
virtualServiceName: svc.m.local
spec: {provider: {virtualRouter: {virtualRouterName: svc}}}
---
meshName: m
virtualNodeName: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.m.local}}]
`

// TestHugeDurations: durations beyond time.Duration's range (about 292
// years) wrap around in routes.go toDuration (time.Duration(v) *
// time.Second overflows), giving negative or wrong timeouts:
// perRequest 10000000000 s becomes -8446744073.709551616s, which Envoy
// rejects ("Invalid duration: Expected positive duration"), and a base
// ejection time of 20000000000 s silently becomes 1553255926.29 s. Values
// up to Envoy's maximum (315576000000 s) fit a google.protobuf.Duration
// and must be kept; larger ones must be clamped.
func TestHugeDurations(t *testing.T) {
	tr := New(buildYAML(t, hugeDurations), Options{})
	for _, node := range []string{"client", "server"} {
		for _, f := range []Flavor{Envoy, GRPC} {
			r := translateNode(t, tr, vn("m", node), f)
			for _, err := range envoyLint(r) {
				t.Errorf("%s (%s): %v", node, f, err)
			}
		}
	}
	r := translateNode(t, tr, vn("m", "client"), Envoy)
	a := findRoute(t, findVirtualHost(t, findRouteConfig(t, r, "rds_egress_http_8080"), "svc.m.local"), "slow").GetRoute()
	if a.Timeout.GetSeconds() != 10000000000 {
		t.Errorf("route timeout %v, want 10000000000s", a.Timeout)
	}
	od := findCluster(t, r, "cds_egress_m_server_http_8080").OutlierDetection
	if od.BaseEjectionTime.GetSeconds() != 20000000000 || od.Interval.GetSeconds() != 10000000000 {
		t.Errorf("outlier detection interval %v base ejection %v, want 10000000000s and 20000000000s", od.Interval, od.BaseEjectionTime)
	}
}

// TestOutlierDetectionZeroDurations: App Mesh accepts an outlier detection
// interval or base ejection duration of 0, Envoy requires both > 0
// (OutlierDetection.interval, base_ejection_time: duration gt 0); the
// translation fails tracing.Validate, so every client's CDS update is
// NACKed.
func TestOutlierDetectionZeroDurations(t *testing.T) {
	cfg := buildYAML(t, `meshName: m
spec: {}`, `meshName: m
virtualNodeName: server
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
    outlierDetection:
      maxServerErrors: 3
      interval: {unit: s, value: 0}
      baseEjectionDuration: {unit: ms, value: 0}
      maxEjectionPercent: 0
  serviceDiscovery: {dns: {hostname: server.m.local, responseType: ENDPOINTS}}`, `meshName: m
virtualServiceName: svc.m.local
spec: {provider: {virtualNode: {virtualNodeName: server}}}`, `meshName: m
virtualNodeName: client
spec:
  backends: [{virtualService: {virtualServiceName: svc.m.local}}]`)
	for _, f := range []Flavor{Envoy, GRPC} {
		translateNode(t, New(cfg, Options{}), vn("m", "client"), f) // reports tracing.Validate failures
	}
}

// TestDurationsInRange: ordinary values, in both units, come out exact.
func TestDurationsInRange(t *testing.T) {
	r := translateNode(t, New(scenario(t, featuresDir), Options{}), vn("features", "frontend"), Envoy)
	var n int
	for _, res := range r.Types[resource.ClusterType] {
		walk(res, func(path string, m protoreflect.Message) {
			if d, ok := m.Interface().(*durationpb.Duration); ok {
				n++
				if d.GetSeconds() < 0 || d.GetNanos() < 0 || d.GetSeconds() > maxEnvoySeconds {
					t.Errorf("%s: %v", path, d)
				}
			}
		})
	}
	if n == 0 {
		t.Fatal("no durations found")
	}
	a := findRoute(t, findVirtualHost(t, findRouteConfig(t, r, "rds_egress_http_8080"), "api.features.local"), "reads").GetRoute()
	if dur(a.RetryPolicy.PerTryTimeout) != "2s" {
		t.Errorf("perRetryTimeout 2000 ms → %s", dur(a.RetryPolicy.PerTryTimeout))
	}
}
