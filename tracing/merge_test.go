package tracing

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	"google.golang.org/protobuf/proto"
)

// Fragments the merge tests load; FuzzParseFragment starts from them too.
const (
	mergeZipkinYAML = `# A tracer of your own and the cluster it sends to.
tracing:
  http:
    name: envoy.tracers.zipkin
    typedConfig:
      "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
      collectorCluster: zipkin
      collectorEndpoint: /api/v2/spans
      collectorEndpointVersion: HTTP_JSON
staticResources:
  clusters:
  - name: zipkin
    connectTimeout: 1s
    type: STRICT_DNS
    loadAssignment:
      clusterName: zipkin
      endpoints:
      - lbEndpoints:
        - endpoint:
            address:
              socketAddress: {address: zipkin.observability, portValue: 9411}
`
	mergeZipkinJSON = `{
  "tracing": {"http": {"name": "envoy.tracers.zipkin", "typedConfig": {
    "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig",
    "collectorCluster": "zipkin", "collectorEndpoint": "/api/v2/spans", "collectorEndpointVersion": "HTTP_JSON"}}},
  "staticResources": {"clusters": [{
    "name": "zipkin", "connectTimeout": "1s", "type": "STRICT_DNS",
    "loadAssignment": {"clusterName": "zipkin", "endpoints": [{"lbEndpoints": [{"endpoint": {"address": {"socketAddress": {"address": "zipkin.observability", "portValue": 9411}}}}]}]}
  }]}
}
`
	mergeZipkinSnake = `tracing:
  http:
    name: envoy.tracers.zipkin
    typed_config:
      "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
      collector_cluster: zipkin
      collector_endpoint: /api/v2/spans
      collector_endpoint_version: HTTP_JSON
static_resources:
  clusters:
  - name: zipkin
    connect_timeout: 1s
    type: STRICT_DNS
    load_assignment:
      cluster_name: zipkin
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: zipkin.observability, port_value: 9411}
`
	mergeStatsConfig = `statsConfig:
  useAllDefaultTags: false
  statsTags:
  - tagName: team
    fixedValue: payments
`
	mergeSinksSnake = `stats_sinks:
- name: envoy.stat_sinks.dog_statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink
    address:
      socket_address: {protocol: UDP, address: 10.0.0.7, port_value: 8125}
    prefix: custom
`
	mergeSinksStatsd = `statsSinks:
- name: envoy.stat_sinks.statsd
  typedConfig:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    tcpClusterName: statsd
`
	mergeResources = `admin:
  address:
    socketAddress: {address: 127.0.0.1, portValue: 9902}
staticResources:
  listeners:
  - name: health
    address:
      socketAddress: {address: 0.0.0.0, portValue: 8081}
    filterChains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typedConfig:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          statPrefix: health
          cluster: statsd
  clusters:
  - name: statsd
    connectTimeout: 0.5s
    type: STATIC
    loadAssignment:
      clusterName: statsd
      endpoints:
      - lbEndpoints:
        - endpoint:
            address:
              socketAddress: {address: 10.0.0.8, portValue: 8125}
`
	mergeClusterTemplate = `staticResources:
  clusters:
  - name: %q
    connectTimeout: 1s
    type: STATIC
    loadAssignment:
      clusterName: x
      endpoints:
      - lbEndpoints:
        - endpoint:
            address:
              socketAddress: {address: 10.0.0.9, portValue: 80}
`
)

var (
	mergeClusterXDS   = fmt.Sprintf(mergeClusterTemplate, XDSCluster)
	mergeClusterZipk  = fmt.Sprintf(mergeClusterTemplate, "zipkin")
	mergeClusterEmpty = fmt.Sprintf(mergeClusterTemplate, "")
)

// Paths of the custom files in the fake file system.
const (
	mergeTracingPath   = "/etc/envoy/tracing.yaml"
	mergeStatsPath     = "/etc/envoy/stats.yaml"
	mergeSinksPath     = "/etc/envoy/sinks.yaml"
	mergeResourcesPath = "/etc/envoy/resources.yaml"
)

// mergeEnv is the smallest valid environment plus kv.
func mergeEnv(kv ...string) map[string]string {
	m := map[string]string{
		"APPMESH_RESOURCE_ARN": "mesh/apps/virtualNode/serviceA",
		"MESHD_XDS_ADDRESS":    "unix:///run/meshd/xds.sock",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// mergeReadFile serves files from a map; a missing path is fs.ErrNotExist.
func mergeReadFile(files map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		s, ok := files[p]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}
}

func mergeRender(env, files map[string]string) (*bootstrapv3.Bootstrap, []string, error) {
	c, err := FromEnv(MapLookup(env))
	if err != nil {
		return nil, nil, fmt.Errorf("FromEnv: %w", err)
	}
	return Render(c, mergeReadFile(files))
}

func mergeClusterNames(b *bootstrapv3.Bootstrap) []string {
	var names []string
	for _, c := range b.GetStaticResources().GetClusters() {
		names = append(names, c.GetName())
	}
	return names
}

func mergeListenerNames(b *bootstrapv3.Bootstrap) []string {
	var names []string
	for _, l := range b.GetStaticResources().GetListeners() {
		names = append(names, l.GetName())
	}
	return names
}

func mergeSinkNames(b *bootstrapv3.Bootstrap) []string {
	var names []string
	for _, s := range b.GetStatsSinks() {
		names = append(names, s.GetName())
	}
	return names
}

func mergeTagNames(b *bootstrapv3.Bootstrap) []string {
	var names []string
	for _, s := range b.GetStatsConfig().GetStatsTags() {
		names = append(names, s.GetTagName())
	}
	return names
}

func mergeEqual(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00") && len(a) == len(b)
}

// mergeZipkin checks b carries the zipkin tracer and cluster of the
// fragments above, and no generated tracer.
func mergeZipkin(t *testing.T, b *bootstrapv3.Bootstrap) {
	t.Helper()
	http := b.GetTracing().GetHttp()
	if http.GetName() != "envoy.tracers.zipkin" {
		t.Fatalf("tracer = %q, want envoy.tracers.zipkin", http.GetName())
	}
	var z tracev3.ZipkinConfig
	if err := http.GetTypedConfig().UnmarshalTo(&z); err != nil {
		t.Fatalf("tracer typed config: %v", err)
	}
	if z.GetCollectorCluster() != "zipkin" || z.GetCollectorEndpoint() != "/api/v2/spans" || z.GetCollectorEndpointVersion() != tracev3.ZipkinConfig_HTTP_JSON {
		t.Errorf("zipkin config = %v, want cluster zipkin, /api/v2/spans, HTTP_JSON", &z)
	}
	if got, want := mergeClusterNames(b), []string{XDSCluster, "zipkin"}; !mergeEqual(got, want) {
		t.Errorf("clusters = %q, want %q", got, want)
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == "zipkin" && c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress().GetPortValue() != 9411 {
			t.Errorf("zipkin cluster = %v, want port 9411", c)
		}
	}
}

func mergeHasWarning(t *testing.T, warnings []string, want string) {
	t.Helper()
	for _, w := range warnings {
		if strings.Contains(w, want) {
			return
		}
	}
	t.Errorf("warnings = %q, want one containing %q", warnings, want)
}

func TestMergeFiles(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
		check func(t *testing.T, b *bootstrapv3.Bootstrap, warnings []string)
	}{
		{
			name:  "YAML tracing file",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath),
			files: map[string]string{mergeTracingPath: mergeZipkinYAML},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, warnings []string) {
				mergeZipkin(t, b)
				if len(warnings) != 0 {
					t.Errorf("warnings = %q, want none", warnings)
				}
			},
		},
		{
			name:  "tracing file wins over ENABLE_ENVOY_XRAY_TRACING",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath, "ENABLE_ENVOY_XRAY_TRACING", "1"),
			files: map[string]string{mergeTracingPath: mergeZipkinYAML},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, warnings []string) {
				mergeZipkin(t, b)
				mergeHasWarning(t, warnings, "ENABLE_ENVOY_XRAY_TRACING ignored: ENVOY_TRACING_CFG_FILE supplies the tracing configuration")
			},
		},
		{
			name:  "tracing file wins over ENABLE_ENVOY_JAEGER_TRACING, whose cluster is not generated",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath, "ENABLE_ENVOY_JAEGER_TRACING", "true"),
			files: map[string]string{mergeTracingPath: mergeZipkinYAML},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, warnings []string) {
				mergeZipkin(t, b) // clusters are exactly meshd_xds and zipkin
				mergeHasWarning(t, warnings, "ENABLE_ENVOY_JAEGER_TRACING ignored")
			},
		},
		{
			name:  "tracing file wins over two enabled tracers",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath, "ENABLE_ENVOY_XRAY_TRACING", "1", "ENABLE_ENVOY_DATADOG_TRACING", "1"),
			files: map[string]string{mergeTracingPath: mergeZipkinYAML},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, warnings []string) {
				mergeZipkin(t, b)
				mergeHasWarning(t, warnings, "ENABLE_ENVOY_XRAY_TRACING, ENABLE_ENVOY_DATADOG_TRACING ignored")
			},
		},
		{
			name:  "JSON tracing file",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", "/etc/envoy/tracing.json"),
			files: map[string]string{"/etc/envoy/tracing.json": mergeZipkinJSON},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, _ []string) { mergeZipkin(t, b) },
		},
		{
			name:  "snake_case tracing file",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath),
			files: map[string]string{mergeTracingPath: mergeZipkinSnake},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, _ []string) { mergeZipkin(t, b) },
		},
		{
			name:  "stats config file replaces the generated tags",
			env:   mergeEnv("ENVOY_STATS_CONFIG_FILE", mergeStatsPath, "ENABLE_ENVOY_STATS_TAGS", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1"),
			files: map[string]string{mergeStatsPath: mergeStatsConfig},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, _ []string) {
				if got, want := mergeTagNames(b), []string{"team"}; !mergeEqual(got, want) {
					t.Errorf("stats tags = %q, want %q", got, want)
				}
				if got := b.GetStatsConfig().GetStatsTags()[0].GetFixedValue(); got != "payments" {
					t.Errorf("tag team = %q, want payments", got)
				}
				if b.GetStatsConfig().GetUseAllDefaultTags() == nil || b.GetStatsConfig().GetUseAllDefaultTags().GetValue() {
					t.Errorf("useAllDefaultTags = %v, want false", b.GetStatsConfig().GetUseAllDefaultTags())
				}
			},
		},
		{
			name: "generated stats tags without a stats config file",
			env:  mergeEnv("ENABLE_ENVOY_STATS_TAGS", "1"),
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, _ []string) {
				want := []string{"appmesh.mesh", "appmesh.virtual_node", "appmesh.listener_protocol", "appmesh.listener_port", "envoy_rds_route_config"}
				if got := mergeTagNames(b); !mergeEqual(got, want) {
					t.Errorf("stats tags = %q, want %q", got, want)
				}
			},
		},
		{
			name:  "snake_case sinks file replaces DogStatsD",
			env:   mergeEnv("ENVOY_STATS_SINKS_CFG_FILE", mergeSinksPath, "ENABLE_ENVOY_DOG_STATSD", "1", "STATSD_PORT", "9999"),
			files: map[string]string{mergeSinksPath: mergeSinksSnake},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, warnings []string) {
				if got, want := mergeSinkNames(b), []string{"envoy.stat_sinks.dog_statsd"}; !mergeEqual(got, want) {
					t.Fatalf("sinks = %q, want %q", got, want)
				}
				var d metricsv3.DogStatsdSink
				if err := b.StatsSinks[0].GetTypedConfig().UnmarshalTo(&d); err != nil {
					t.Fatal(err)
				}
				if d.GetPrefix() != "custom" || d.GetAddress().GetSocketAddress().GetAddress() != "10.0.0.7" || d.GetAddress().GetSocketAddress().GetPortValue() != 8125 {
					t.Errorf("sink = %v, want the file's (prefix custom, 10.0.0.7:8125), not the generated one", &d)
				}
				mergeHasWarning(t, warnings, "ENABLE_ENVOY_DOG_STATSD ignored: ENVOY_STATS_SINKS_CFG_FILE supplies the stats sinks")
			},
		},
		{
			name: "sinks are appended: sinks file, then resources file",
			env:  mergeEnv("ENVOY_STATS_SINKS_CFG_FILE", mergeSinksPath, "ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{
				mergeSinksPath:     mergeSinksSnake,
				mergeResourcesPath: mergeSinksStatsd + mergeResources,
			},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, _ []string) {
				if got, want := mergeSinkNames(b), []string{"envoy.stat_sinks.dog_statsd", "envoy.stat_sinks.statsd"}; !mergeEqual(got, want) {
					t.Errorf("sinks = %q, want %q", got, want)
				}
			},
		},
		{
			name:  "resources file sinks are appended to the generated DogStatsD sink",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath, "ENABLE_ENVOY_DOG_STATSD", "1"),
			files: map[string]string{mergeResourcesPath: mergeSinksStatsd + mergeResources},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, warnings []string) {
				if got, want := mergeSinkNames(b), []string{"envoy.stat_sinks.dog_statsd", "envoy.stat_sinks.statsd"}; !mergeEqual(got, want) {
					t.Fatalf("sinks = %q, want %q", got, want)
				}
				var d metricsv3.DogStatsdSink
				if err := b.StatsSinks[0].GetTypedConfig().UnmarshalTo(&d); err != nil {
					t.Fatal(err)
				}
				if d.GetAddress().GetSocketAddress().GetPortValue() != 8125 {
					t.Errorf("first sink = %v, want the generated one on port 8125", &d)
				}
				for _, w := range warnings {
					if strings.Contains(w, "statsSinks") {
						t.Errorf("warning %q: sinks are appended, not replaced", w)
					}
				}
			},
		},
		{
			name:  "resources file appends a listener and a cluster and replaces admin",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath, "APPMESH_SDS_SOCKET_PATH", "/run/meshd/sds.sock"),
			files: map[string]string{mergeResourcesPath: mergeResources},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, warnings []string) {
				if got, want := mergeClusterNames(b), []string{XDSCluster, SDSCluster, "statsd"}; !mergeEqual(got, want) {
					t.Errorf("clusters = %q, want %q", got, want)
				}
				if got, want := mergeListenerNames(b), []string{"health"}; !mergeEqual(got, want) {
					t.Errorf("listeners = %q, want %q", got, want)
				}
				a := b.GetAdmin()
				if a.GetAddress().GetSocketAddress().GetPortValue() != 9902 || len(a.GetAccessLog()) != 0 {
					t.Errorf("admin = %v, want the file's (port 9902, no access log)", a)
				}
				mergeHasWarning(t, warnings, `ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml" replaces the generated admin`)
				if b.GetStatsConfig() == nil {
					t.Error("the generated stats config is gone")
				}
			},
		},
		{
			name:  "resources file next to a generated Datadog tracer",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath, "ENABLE_ENVOY_DATADOG_TRACING", "1"),
			files: map[string]string{mergeResourcesPath: mergeResources},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, _ []string) {
				if got, want := mergeClusterNames(b), []string{XDSCluster, DatadogCluster, "statsd"}; !mergeEqual(got, want) {
					t.Errorf("clusters = %q, want %q", got, want)
				}
				if got := b.GetTracing().GetHttp().GetName(); got != "envoy.tracers.datadog" {
					t.Errorf("tracer = %q, want envoy.tracers.datadog", got)
				}
			},
		},
		{
			name: "all four files",
			env: mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath, "ENVOY_STATS_CONFIG_FILE", mergeStatsPath,
				"ENVOY_STATS_SINKS_CFG_FILE", mergeSinksPath, "ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{
				mergeTracingPath:   mergeZipkinJSON,
				mergeStatsPath:     mergeStatsConfig,
				mergeSinksPath:     mergeSinksSnake,
				mergeResourcesPath: mergeResources,
			},
			check: func(t *testing.T, b *bootstrapv3.Bootstrap, _ []string) {
				if got, want := mergeClusterNames(b), []string{XDSCluster, "zipkin", "statsd"}; !mergeEqual(got, want) {
					t.Errorf("clusters = %q, want %q", got, want)
				}
				if got, want := mergeTagNames(b), []string{"team"}; !mergeEqual(got, want) {
					t.Errorf("stats tags = %q, want %q", got, want)
				}
				if got, want := mergeSinkNames(b), []string{"envoy.stat_sinks.dog_statsd"}; !mergeEqual(got, want) {
					t.Errorf("sinks = %q, want %q", got, want)
				}
				if got := b.GetTracing().GetHttp().GetName(); got != "envoy.tracers.zipkin" {
					t.Errorf("tracer = %q", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, warnings, err := mergeRender(tt.env, tt.files)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			tt.check(t, b, warnings)
			if err := Validate(b); err != nil {
				t.Errorf("Render returned an invalid bootstrap: %v", err)
			}
		})
	}
}

func TestMergeFilesRejects(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  []string // substrings of the error
	}{
		{
			name:  "sinks file without stats_sinks",
			env:   mergeEnv("ENVOY_STATS_SINKS_CFG_FILE", mergeSinksPath),
			files: map[string]string{mergeSinksPath: "statsFlushInterval: 10s\n"},
			want:  []string{`ENVOY_STATS_SINKS_CFG_FILE="/etc/envoy/sinks.yaml": has no stats_sinks`},
		},
		{
			name:  "sinks file with an empty stats_sinks",
			env:   mergeEnv("ENVOY_STATS_SINKS_CFG_FILE", mergeSinksPath),
			files: map[string]string{mergeSinksPath: "stats_sinks: []\n"},
			want:  []string{`ENVOY_STATS_SINKS_CFG_FILE="/etc/envoy/sinks.yaml": has no stats_sinks`},
		},
		{
			name:  "resources file sets statsConfig next to the generated stats tags",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath, "ENABLE_ENVOY_STATS_TAGS", "1"),
			files: map[string]string{mergeResourcesPath: mergeStatsConfig},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml": sets stats_config`, "generated stats tags", "one stats configuration"},
		},
		{
			name:  "stats file and resources file both set statsConfig",
			env:   mergeEnv("ENVOY_STATS_CONFIG_FILE", mergeStatsPath, "ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeStatsPath: mergeStatsConfig, mergeResourcesPath: mergeStatsConfig},
			want:  []string{"already set by ENVOY_STATS_CONFIG_FILE", "one stats configuration"},
		},
		{
			name:  "tracing file and resources file both set tracing",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath, "ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeTracingPath: mergeZipkinYAML, mergeResourcesPath: strings.Replace(mergeZipkinSnake, "name: zipkin", "name: zipkin2", 1)},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml": sets tracing`, "already set by ENVOY_TRACING_CFG_FILE", "single tracer"},
		},
		{
			name:  "resources file sets tracing next to a generated tracer",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath, "ENABLE_ENVOY_XRAY_TRACING", "1"),
			files: map[string]string{mergeResourcesPath: mergeZipkinYAML},
			want:  []string{"sets tracing", "an ENABLE_ENVOY_*_TRACING variable already configures a tracer"},
		},
		{
			name:  "resources file redefines meshd_xds",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: mergeClusterXDS},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml" defines static cluster "meshd_xds", already defined by meshd`},
		},
		{
			name:  "resources file redefines the tracing file's cluster",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath, "ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeTracingPath: mergeZipkinYAML, mergeResourcesPath: mergeClusterZipk},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml" defines static cluster "zipkin", already defined by ENVOY_TRACING_CFG_FILE="/etc/envoy/tracing.yaml"`},
		},
		{
			name:  "one file defines a listener twice",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: "staticResources:\n  listeners:\n  - {name: l, address: {pipe: {path: /tmp/a}}}\n  - {name: l, address: {pipe: {path: /tmp/b}}}\n"},
			want:  []string{`defines static listener "l", already defined by ENVOY_RESOURCES_CONFIG_FILE`},
		},
		{
			name:  "empty file",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: ""},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml": the file is empty`},
		},
		{
			name:  "whitespace-only file",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath),
			files: map[string]string{mergeTracingPath: " \n\t\n"},
			want:  []string{`ENVOY_TRACING_CFG_FILE="/etc/envoy/tracing.yaml": the file is empty`},
		},
		{
			name: "missing file",
			env:  mergeEnv("ENVOY_STATS_CONFIG_FILE", "/etc/envoy/missing.yaml"),
			want: []string{`ENVOY_STATS_CONFIG_FILE="/etc/envoy/missing.yaml": cannot read it`, "file does not exist"},
		},
		{
			name:  "comment-only file",
			env:   mergeEnv("ENVOY_STATS_CONFIG_FILE", mergeStatsPath),
			files: map[string]string{mergeStatsPath: "# nothing yet\n"},
			want:  []string{`ENVOY_STATS_CONFIG_FILE="/etc/envoy/stats.yaml"`},
		},
		{
			name:  "unknown field",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath),
			files: map[string]string{mergeTracingPath: "tracing:\n  http:\n    name: envoy.tracers.zipkin\n    collectorCluster: zipkin\n"},
			want:  []string{`ENVOY_TRACING_CFG_FILE="/etc/envoy/tracing.yaml": not an Envoy bootstrap fragment`, "collectorCluster"},
		},
		{
			name:  "unknown top-level field in JSON",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: `{"staticResources": {}, "staticResource": {}}`},
			want:  []string{"not an Envoy bootstrap fragment", "staticResource"},
		},
		{
			name:  "both statsSinks and stats_sinks",
			env:   mergeEnv("ENVOY_STATS_SINKS_CFG_FILE", mergeSinksPath),
			files: map[string]string{mergeSinksPath: mergeSinksSnake + mergeSinksStatsd},
			want:  []string{`ENVOY_STATS_SINKS_CFG_FILE="/etc/envoy/sinks.yaml"`, `duplicate field "stats_sinks"`},
		},
		{
			name:  "both spellings in JSON",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: `{"statsFlushInterval": "5s", "stats_flush_interval": "6s"}`},
			want:  []string{`duplicate field "stats_flush_interval"`},
		},
		{
			name:  "unknown typed config type",
			env:   mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath),
			files: map[string]string{mergeTracingPath: strings.Replace(mergeZipkinYAML, "envoy.config.trace.v3.ZipkinConfig", "envoy.config.trace.v3.NoSuchConfig", 1)},
			want:  []string{`ENVOY_TRACING_CFG_FILE="/etc/envoy/tracing.yaml"`, "type.googleapis.com/envoy.config.trace.v3.NoSuchConfig"},
		},
		{
			name:  "DogStatsdSink without an address",
			env:   mergeEnv("ENVOY_STATS_SINKS_CFG_FILE", mergeSinksPath),
			files: map[string]string{mergeSinksPath: "statsSinks:\n- name: envoy.stat_sinks.dog_statsd\n  typedConfig:\n    \"@type\": type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink\n    prefix: custom\n"},
			want:  []string{`ENVOY_STATS_SINKS_CFG_FILE="/etc/envoy/sinks.yaml": invalid`, "DogStatsdSink", "DogStatsdSpecifier"},
		},
		{
			name:  "cluster with an empty name",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: mergeClusterEmpty},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml": invalid`, "Cluster.Name"},
		},
		{
			name:  "YAML list at top level",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: "- staticResources: {}\n"},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml": is a YAML sequence, not a mapping`},
		},
		{
			name:  "JSON list at top level",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: `[{"staticResources": {}}]`},
			want:  []string{"is a YAML sequence, not a mapping"},
		},
		{
			name:  "YAML scalar",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: "staticResources\n"},
			want:  []string{"is a YAML scalar, not a mapping"},
		},
		{
			name:  "two YAML documents",
			env:   mergeEnv("ENVOY_STATS_CONFIG_FILE", mergeStatsPath),
			files: map[string]string{mergeStatsPath: mergeStatsConfig + "---\n" + mergeStatsConfig},
			want:  []string{`ENVOY_STATS_CONFIG_FILE="/etc/envoy/stats.yaml": has more than one YAML document`},
		},
		{
			name:  "a second YAML document that does not parse",
			env:   mergeEnv("ENVOY_STATS_CONFIG_FILE", mergeStatsPath),
			files: map[string]string{mergeStatsPath: mergeStatsConfig + "---\nstatsTags: [unclosed\n"},
			want:  []string{`ENVOY_STATS_CONFIG_FILE="/etc/envoy/stats.yaml"`},
		},
		{
			name:  "non-string YAML key",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: "staticResources:\n  1: x\n"},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml": staticResources: key 1 is not a string`},
		},
		{
			name:  "non-string YAML key at top level",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: "staticResources: {}\n2: x\n"},
			want:  []string{"key 2 is not a string"},
		},
		{
			name:  "bad YAML",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: "staticResources: [unclosed\n"},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml": not YAML`},
		},
		{
			name:  "bad JSON",
			env:   mergeEnv("ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeResourcesPath: `{"staticResources": {}`},
			want:  []string{`ENVOY_RESOURCES_CONFIG_FILE="/etc/envoy/resources.yaml": neither JSON (unexpected end of JSON input) nor YAML`},
		},
		{
			name: "every broken file is reported",
			env: mergeEnv("ENVOY_TRACING_CFG_FILE", mergeTracingPath, "ENVOY_STATS_CONFIG_FILE", "/etc/envoy/missing.yaml",
				"ENVOY_RESOURCES_CONFIG_FILE", mergeResourcesPath),
			files: map[string]string{mergeTracingPath: "", mergeResourcesPath: mergeClusterXDS},
			want: []string{
				`ENVOY_TRACING_CFG_FILE="/etc/envoy/tracing.yaml": the file is empty`,
				`ENVOY_STATS_CONFIG_FILE="/etc/envoy/missing.yaml": cannot read it`,
				`defines static cluster "meshd_xds"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _, err := mergeRender(tt.env, tt.files)
			if err == nil {
				t.Fatalf("Render succeeded (tracer %q, clusters %q), want an error containing %q", b.GetTracing().GetHttp().GetName(), mergeClusterNames(b), tt.want)
			}
			if !IsInput(err) {
				t.Errorf("IsInput(%v) = false, want true", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestMergeMissingFileIsNotExist: a missing file's error still says so to
// errors.Is.
func TestMergeMissingFileIsNotExist(t *testing.T) {
	for _, v := range []string{"ENVOY_TRACING_CFG_FILE", "ENVOY_STATS_CONFIG_FILE", "ENVOY_STATS_SINKS_CFG_FILE", "ENVOY_RESOURCES_CONFIG_FILE"} {
		_, _, err := mergeRender(mergeEnv(v, "/nonexistent"), nil)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s=/nonexistent: error %v is not fs.ErrNotExist", v, err)
		}
		if !IsInput(err) || !strings.Contains(fmt.Sprint(err), v+`="/nonexistent"`) {
			t.Errorf("%s=/nonexistent: error %v, want an input error naming the variable and the path", v, err)
		}
	}
}

// TestParseFragmentSpellings: the three spellings of one fragment parse to
// the same message.
func TestParseFragmentSpellings(t *testing.T) {
	want, err := ParseFragment([]byte(mergeZipkinYAML))
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{"JSON": mergeZipkinJSON, "snake_case": mergeZipkinSnake} {
		got, err := ParseFragment([]byte(in))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s: parsed to\n%v\nwant\n%v", name, got, want)
		}
	}
}

// TestParseFragmentFlowMapping: a YAML file may start with a flow mapping;
// it is YAML, not JSON.
func TestParseFragmentFlowMapping(t *testing.T) {
	got, err := ParseFragment([]byte("{statsFlushInterval: 10s}\n"))
	if err != nil {
		t.Fatalf("ParseFragment: %v", err)
	}
	if d := got.GetStatsFlushInterval().AsDuration().String(); d != "10s" {
		t.Errorf("statsFlushInterval = %s, want 10s", d)
	}
}

var mergeFragments = []string{
	mergeZipkinYAML, mergeZipkinJSON, mergeZipkinSnake, mergeStatsConfig, mergeSinksSnake, mergeSinksStatsd,
	mergeResources, mergeSinksStatsd + mergeResources, mergeClusterXDS, mergeClusterEmpty,
	"", " \n", "# comment\n", "- a\n", "a\n---\nb\n", "1: x\n", "staticResources:\n  1: x\n",
	`{"statsFlushInterval": "5s", "stats_flush_interval": "6s"}`, `[{"staticResources": {}}]`,
	"{statsFlushInterval: 10s}\n", "statsFlushInterval: 10s\n",
	`{"layeredRuntime": {"layers": [{"name": "l", "staticLayer": {"a": 1.5, "b": [true, null, "x"]}}]}}`,
}

func FuzzParseFragment(f *testing.F) {
	for _, s := range mergeFragments {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		frag, err := ParseFragment(data)
		if err != nil {
			return
		}
		y, err := Encode(frag, YAML)
		if err != nil {
			t.Fatalf("ParseFragment(%q) succeeded, but Encode fails: %v", data, err)
		}
		again, err := ParseFragment(y)
		if err != nil {
			t.Fatalf("ParseFragment(%q) succeeded, but its YAML encoding\n%s\ndoes not parse: %v", data, y, err)
		}
		if !proto.Equal(frag, again) {
			t.Fatalf("ParseFragment(%q) = %v,\nbut after Encode and ParseFragment = %v", data, frag, again)
		}
	})
}
