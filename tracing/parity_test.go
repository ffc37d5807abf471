package tracing

import (
	"encoding/json"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The App Mesh image's output for the same input, transcribed from its
// renderer and its tests (shared/notes/appmesh-agent.md §2, for
// APPMESH_RESOURCE_ARN=…:mesh/foo/virtualNode/bar). Each case compares the
// top-level fields the App Mesh fragment sets (static clusters by name).
func TestAppMeshParity(t *testing.T) {
	const arn = "arn:aws:appmesh:us-west-2:111122223333:mesh/foo/virtualNode/bar"
	env := func(kv ...string) map[string]string {
		return base(append([]string{"APPMESH_RESOURCE_ARN", arn}, kv...)...)
	}
	tests := []struct {
		name    string
		env     map[string]string
		appmesh string
	}{
		{"node, admin, runtime, xDS sources, default stats tags", env(), `
admin:
  accessLog:
  - typedConfig:
      '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
      path: /tmp/envoy_admin_access.log
  address:
    socketAddress: {address: 0.0.0.0, portValue: 9901}
clusterManager:
  outlierDetection:
    eventLogPath: /dev/stdout
layeredRuntime:
  layers:
  - name: static_layer_0
    staticLayer:
      envoy.features.enable_all_deprecated_features: true
      envoy.reloadable_features.http_set_tracing_decision_in_request_id: true
      envoy.reloadable_features.no_extension_lookup_by_name: true
      envoy.reloadable_features.use_http_client_to_fetch_aws_credentials: false
      re2.max_program_size.error_level: 1000
  - adminLayer: {}
    name: admin_layer
statsConfig:
  statsTags:
  - regex: .*?\.ingress\.((\w+?)\.)[0-9]+?\.(.+?)$
    tagName: appmesh.listener_protocol
  - regex: .*?\.ingress\.\w+?\.(([0-9]+?)\.)(.+?)$
    tagName: appmesh.listener_port
  - regex: .*?\.ingress\.\w+?\.[0-9]+?\.rds\.((.*?)\.)(.+?)$
    tagName: envoy_rds_route_config
`},
		{"admin on a Unix socket", env("ENVOY_ADMIN_MODE", "uds"), `
admin:
  accessLog:
  - typedConfig: {'@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /tmp/envoy_admin_access.log}
  address: {pipe: {path: /tmp/envoy_admin.sock, mode: 384}}
`},
		{"admin on IPv6", env("ENVOY_ADMIN_ACCESS_ENABLE_IPV6", "1"), `
admin:
  accessLog:
  - typedConfig: {'@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /tmp/envoy_admin_access.log}
  address: {socketAddress: {address: '::', ipv4Compat: true, portValue: 9901}}
`},
		{"X-Ray", env("ENABLE_ENVOY_XRAY_TRACING", "1"), `
tracing:
  http:
    name: envoy.tracers.xray
    typedConfig:
      '@type': type.googleapis.com/envoy.config.trace.v3.XRayConfig
      daemonEndpoint: {address: 127.0.0.1, portValue: 2000, protocol: UDP}
      segmentFields:
        aws: {app_mesh: {mesh_name: foo, virtual_node_name: bar}}
        origin: AWS::AppMesh::Proxy
      segmentName: foo/bar
`},
		{"X-Ray with XRAY_SEGMENT_NAME and AWS_XRAY_DAEMON_ADDRESS ip:port", env("ENABLE_ENVOY_XRAY_TRACING", "1", "XRAY_SEGMENT_NAME", "custom", "AWS_XRAY_DAEMON_ADDRESS", "10.1.2.3:2005", "XRAY_DAEMON_PORT", "3000"), `
tracing:
  http:
    name: envoy.tracers.xray
    typedConfig:
      '@type': type.googleapis.com/envoy.config.trace.v3.XRayConfig
      daemonEndpoint: {address: 10.1.2.3, portValue: 2005, protocol: UDP}
      segmentFields:
        aws: {app_mesh: {mesh_name: foo, virtual_node_name: bar}}
        origin: AWS::AppMesh::Proxy
      segmentName: custom
`},
		{"X-Ray with a manifest", env("ENABLE_ENVOY_XRAY_TRACING", "1", "XRAY_SAMPLING_RULE_MANIFEST", "testdata/files/sampling-rules.json"), `
tracing:
  http:
    name: envoy.tracers.xray
    typedConfig:
      '@type': type.googleapis.com/envoy.config.trace.v3.XRayConfig
      daemonEndpoint: {address: 127.0.0.1, portValue: 2000, protocol: UDP}
      samplingRuleManifest: {filename: testdata/files/sampling-rules.json}
      segmentFields:
        aws: {app_mesh: {mesh_name: foo, virtual_node_name: bar}}
        origin: AWS::AppMesh::Proxy
      segmentName: foo/bar
`},
		{"Datadog", env("ENABLE_ENVOY_DATADOG_TRACING", "1"), `
staticResources:
  clusters:
  - connectTimeout: 1s
    loadAssignment:
      clusterName: datadog_agent
      endpoints: [{lbEndpoints: [{endpoint: {address: {socketAddress: {address: 127.0.0.1, portValue: 8126}}}}]}]
    name: datadog_agent
    type: STRICT_DNS
tracing:
  http:
    name: envoy.tracers.datadog
    typedConfig: {'@type': type.googleapis.com/envoy.config.trace.v3.DatadogConfig, collectorCluster: datadog_agent, serviceName: envoy-foo/bar}
`},
		{"Jaeger", env("ENABLE_ENVOY_JAEGER_TRACING", "1"), `
staticResources:
  clusters:
  - connectTimeout: 1s
    loadAssignment:
      clusterName: jaeger
      endpoints: [{lbEndpoints: [{endpoint: {address: {socketAddress: {address: 127.0.0.1, portValue: 9411}}}}]}]
    name: jaeger
    type: STRICT_DNS
tracing:
  http:
    name: envoy.tracers.zipkin
    typedConfig:
      '@type': type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
      collectorCluster: jaeger
      collectorEndpoint: /api/v2/spans
      collectorEndpointVersion: HTTP_PROTO
      sharedSpanContext: false
`},
		{"Jaeger JSON", env("ENABLE_ENVOY_JAEGER_TRACING", "1", "JAEGER_TRACER_VERSION", "json"), `
tracing:
  http:
    name: envoy.tracers.zipkin
    typedConfig:
      '@type': type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
      collectorCluster: jaeger
      collectorEndpoint: /api/v2/spans
      collectorEndpointVersion: HTTP_JSON
      sharedSpanContext: false
`},
		{"DogStatsD over UDP, flush interval", env("ENABLE_ENVOY_DOG_STATSD", "1", "ENVOY_STATS_FLUSH_INTERVAL", "15s"), `
statsFlushInterval: 15s
statsSinks:
- name: envoy.stat_sinks.dog_statsd
  typedConfig:
    '@type': type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: {socketAddress: {address: 127.0.0.1, portValue: 8125, protocol: UDP}}
`},
		{"DogStatsD over a Unix socket", env("ENABLE_ENVOY_DOG_STATSD", "1", "STATSD_SOCKET_PATH", "/data/app/tmp/statd.sock", "STATSD_ADDRESS", "10.0.0.1"), `
statsSinks:
- name: envoy.stat_sinks.dog_statsd
  typedConfig:
    '@type': type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address: {pipe: {path: /data/app/tmp/statd.sock}}
`},
		{"stats tags and the metrics extension, in App Mesh's order", env("ENABLE_ENVOY_STATS_TAGS", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1"), `
node:
  cluster: arn:aws:appmesh:us-west-2:111122223333:mesh/foo/virtualNode/bar
  id: arn:aws:appmesh:us-west-2:111122223333:mesh/foo/virtualNode/bar
  metadata:
    aws.appmesh.metric_filter: {level: "1"}
    aws.appmesh.static_runtime:
      envoy.features.enable_all_deprecated_features: true
      envoy.reloadable_features.http_set_tracing_decision_in_request_id: true
      envoy.reloadable_features.no_extension_lookup_by_name: true
      envoy.reloadable_features.use_http_client_to_fetch_aws_credentials: false
      re2.max_program_size.error_level: 1000
statsConfig:
  statsTags:
  - {tagName: appmesh.mesh, fixedValue: foo}
  - {tagName: appmesh.virtual_node, fixedValue: bar}
  - {tagName: TargetVirtualNode, regex: '^appmesh(?:\..+?\..+?)*(\.TargetVirtualNode\.(.+?))(?:\..+?\..+?)*\.(?:.+)$'}
  - {tagName: TargetVirtualService, regex: '^appmesh(?:\..+?\..+?)*(\.TargetVirtualService\.([^MVT]+))(?:\..+?\..+?)*\.(?:.+)$'}
  - {tagName: Mesh, fixedValue: foo}
  - {tagName: VirtualNode, fixedValue: bar}
  - {tagName: appmesh.listener_protocol, regex: '.*?\.ingress\.((\w+?)\.)[0-9]+?\.(.+?)$'}
  - {tagName: appmesh.listener_port, regex: '.*?\.ingress\.\w+?\.(([0-9]+?)\.)(.+?)$'}
  - {tagName: envoy_rds_route_config, regex: '.*?\.ingress\.\w+?\.[0-9]+?\.rds\.((.*?)\.)(.+?)$'}
`},
		{"virtual gateway tags", env("APPMESH_RESOURCE_ARN", "mesh/foo/virtualGateway/gw", "ENABLE_ENVOY_STATS_TAGS", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1", "ENABLE_ENVOY_XRAY_TRACING", "1"), `
statsConfig:
  statsTags:
  - {tagName: appmesh.mesh, fixedValue: foo}
  - {tagName: appmesh.virtual_gateway, fixedValue: gw}
  - {tagName: TargetVirtualNode, regex: '^appmesh(?:\..+?\..+?)*(\.TargetVirtualNode\.(.+?))(?:\..+?\..+?)*\.(?:.+)$'}
  - {tagName: TargetVirtualService, regex: '^appmesh(?:\..+?\..+?)*(\.TargetVirtualService\.([^MVT]+))(?:\..+?\..+?)*\.(?:.+)$'}
  - {tagName: Mesh, fixedValue: foo}
  - {tagName: VirtualGateway, fixedValue: gw}
  - {tagName: appmesh.listener_protocol, regex: '.*?\.ingress\.((\w+?)\.)[0-9]+?\.(.+?)$'}
  - {tagName: appmesh.listener_port, regex: '.*?\.ingress\.\w+?\.(([0-9]+?)\.)(.+?)$'}
  - {tagName: envoy_rds_route_config, regex: '.*?\.ingress\.\w+?\.[0-9]+?\.rds\.((.*?)\.)(.+?)$'}
tracing:
  http:
    name: envoy.tracers.xray
    typedConfig:
      '@type': type.googleapis.com/envoy.config.trace.v3.XRayConfig
      daemonEndpoint: {address: 127.0.0.1, portValue: 2000, protocol: UDP}
      segmentFields:
        aws: {app_mesh: {mesh_name: foo, virtual_node_name: gw}}
        origin: AWS::AppMesh::Proxy
      segmentName: foo/gw
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := ParseFragment([]byte(tt.appmesh))
			if err != nil {
				t.Fatalf("App Mesh fragment: %v", err)
			}
			got := project(render(t, tt.env), want)
			g, _ := Encode(got, YAML)
			w, _ := Encode(want, YAML)
			if string(g) != string(w) {
				t.Errorf("differs from App Mesh's rendering\n--- meshd\n%s--- App Mesh\n%s", g, w)
			}
		})
	}
}

// project keeps the top-level fields of got that want sets, and of the static
// clusters only those want names.
func project(got, want *bootstrapv3.Bootstrap) *bootstrapv3.Bootstrap {
	out := &bootstrapv3.Bootstrap{}
	gm, om := got.ProtoReflect(), out.ProtoReflect()
	want.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.Name() == "static_resources" {
			out.StaticResources = &bootstrapv3.Bootstrap_StaticResources{}
			for _, wc := range want.StaticResources.GetClusters() {
				for _, gc := range got.StaticResources.GetClusters() {
					if gc.GetName() == wc.GetName() {
						out.StaticResources.Clusters = append(out.StaticResources.Clusters, gc)
					}
				}
			}
			return true
		}
		if gm.Has(fd) {
			om.Set(fd, gm.Get(fd))
		}
		return true
	})
	return out
}

// XRAY_SAMPLING_RATE: App Mesh wrote the manifest to /tmp/sampling-rules.json
// and referenced the file; meshd inlines the same manifest (the bootstrap is
// often rendered in another container than Envoy's).
func TestSamplingRateManifestParity(t *testing.T) {
	b := render(t, base("ENABLE_ENVOY_XRAY_TRACING", "1", "XRAY_SAMPLING_RATE", "0.2"))
	x := &tracev3.XRayConfig{}
	if err := b.GetTracing().GetHttp().GetTypedConfig().UnmarshalTo(x); err != nil {
		t.Fatal(err)
	}
	const appmesh = `{"version":2,"default":{"service_name":"","host":"","http_method":"","url_path":"","fixed_target":1,"rate":0.2},"rules":[]}`
	inline := x.GetSamplingRuleManifest().GetInlineString()
	var got, want any
	if err := json.Unmarshal([]byte(inline), &got); err != nil {
		t.Fatalf("inline manifest %q: %v", inline, err)
	}
	_ = json.Unmarshal([]byte(appmesh), &want)
	gj, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(gj) != string(wj) {
		t.Errorf("manifest\n got %s\nwant %s", inline, appmesh)
	}
	if err := ValidateSamplingManifest([]byte(inline)); err != nil {
		t.Errorf("generated manifest does not validate: %v", err)
	}
}

// App Mesh's SDS cluster set the deprecated Cluster.http2_protocol_options;
// meshd's says the same with typed_extension_protocol_options.
func TestSDSClusterParity(t *testing.T) {
	want, err := ParseFragment([]byte(`
staticResources:
  clusters:
  - connectTimeout: 1s
    http2ProtocolOptions: {}
    loadAssignment:
      clusterName: static_cluster_sds_unix_socket
      endpoints: [{lbEndpoints: [{endpoint: {address: {pipe: {path: /run/spire/sockets/agent.sock}}}}]}]
    name: static_cluster_sds_unix_socket
    type: STATIC
`))
	if err != nil {
		t.Fatal(err)
	}
	b := render(t, base("APPMESH_SDS_SOCKET_PATH", "/run/spire/sockets/agent.sock"))
	var got *clusterv3.Cluster
	for _, c := range b.StaticResources.GetClusters() {
		if c.GetName() == SDSCluster {
			got = proto.Clone(c).(*clusterv3.Cluster)
		}
	}
	if got == nil {
		t.Fatal("no SDS cluster")
	}
	opts := &httpv3.HttpProtocolOptions{}
	if err := got.TypedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(opts); err != nil {
		t.Fatal(err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Fatal("SDS cluster does not speak HTTP/2")
	}
	got.TypedExtensionProtocolOptions = nil
	w := want.StaticResources.Clusters[0]
	w.Http2ProtocolOptions = nil //nolint:staticcheck // App Mesh's deprecated form
	g, _ := Encode(got, YAML)
	e, _ := Encode(w, YAML)
	if !strings.EqualFold(string(g), string(e)) {
		t.Errorf("SDS cluster\n--- meshd\n%s--- App Mesh\n%s", g, e)
	}
}
