package tracing

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const (
	vnARN = "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceA"
	vgARN = "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualGateway/ingress-gw"
)

// goldenCases pin one bootstrap per feature, and one for a virtual gateway.
var goldenCases = []struct {
	name string
	env  map[string]string
}{
	{"default", base()},
	{"short-form-tcp-xds", map[string]string{
		"APPMESH_RESOURCE_ARN": "mesh/apps/virtualNode/serviceB", "APPMESH_RESOURCE_CLUSTER": "serviceB",
		"MESHD_XDS_ADDRESS": "meshd-controlplane.meshd-system.svc:15010", "ENVOY_INITIAL_FETCH_TIMEOUT": "30",
	}},
	{"xds-mtls", base("MESHD_XDS_ADDRESS", "meshd-controlplane:15010", "MESHD_XDS_TLS", "true",
		"MESHD_XDS_SERVER_ID", "spiffe://apps.local/meshd/controlplane", "APPMESH_SDS_SOCKET_PATH", "/run/meshd/sds.sock")},
	{"sds", base("APPMESH_SDS_SOCKET_PATH", "/run/spire/sockets/agent.sock")},
	{"admin-uds", base("ENVOY_ADMIN_MODE", "UDS", "ENVOY_ADMIN_ACCESS_LOG_FILE", "/dev/null")},
	{"admin-ipv6", base("ENVOY_ADMIN_ACCESS_ENABLE_IPV6", "true", "ENVOY_ADMIN_ACCESS_PORT", "9903")},
	{"runtime", base("APPMESH_SET_TRACING_DECISION", "false", "ENVOY_NO_EXTENSION_LOOKUP_BY_NAME", "0",
		"ENVOY_USE_HTTP_CLIENT_TO_FETCH_AWS_CREDENTIALS", "1", "MAX_REQUESTS_PER_IO_CYCLE", "1",
		"ENVOY_OUTLIER_DETECTION_EVENT_LOG_PATH", "/var/log/outlier.log")},
	{"xray", base("ENABLE_ENVOY_XRAY_TRACING", "1")},
	{"xray-rate-address-segment", base("ENABLE_ENVOY_XRAY_TRACING", "1", "XRAY_SAMPLING_RATE", "0.1",
		"AWS_XRAY_DAEMON_ADDRESS", "169.254.172.1:2001", "XRAY_SEGMENT_NAME", "apps/front")},
	{"xray-default-rate-is-a-no-op", base("ENABLE_ENVOY_XRAY_TRACING", "1", "XRAY_SAMPLING_RATE", "0.050", "XRAY_DAEMON_PORT", "2002")},
	{"xray-manifest", base("ENABLE_ENVOY_XRAY_TRACING", "1", "XRAY_SAMPLING_RULE_MANIFEST", "testdata/files/sampling-rules.json")},
	{"datadog", base("ENABLE_ENVOY_DATADOG_TRACING", "1")},
	{"datadog-service-address", base("ENABLE_ENVOY_DATADOG_TRACING", "1", "DATADOG_TRACER_ADDRESS", "datadog-agent.monitoring",
		"DATADOG_TRACER_PORT", "8127", "DD_SERVICE", "front")},
	{"jaeger", base("ENABLE_ENVOY_JAEGER_TRACING", "1")},
	{"jaeger-json", base("ENABLE_ENVOY_JAEGER_TRACING", "1", "JAEGER_TRACER_VERSION", "JSON",
		"JAEGER_TRACER_ADDRESS", "appmesh-jaeger.appmesh-system", "JAEGER_TRACER_PORT", "9412")},
	{"tracing-file", base("ENABLE_ENVOY_XRAY_TRACING", "1", "ENVOY_TRACING_CFG_FILE", "testdata/files/tracing-zipkin.yaml")},
	{"dogstatsd-udp", base("ENABLE_ENVOY_DOG_STATSD", "1", "STATSD_ADDRESS", "10.0.0.9", "STATSD_PORT", "8135",
		"ENVOY_STATS_FLUSH_INTERVAL", "10s")},
	{"dogstatsd-uds", base("ENABLE_ENVOY_DOG_STATSD", "1", "STATSD_SOCKET_PATH", "/var/run/datadog/dsd.socket")},
	{"stats-sinks-file", base("ENABLE_ENVOY_DOG_STATSD", "1", "ENVOY_STATS_SINKS_CFG_FILE", "testdata/files/stats-sinks.yaml")},
	{"stats-tags", base("ENABLE_ENVOY_STATS_TAGS", "1")},
	{"metric-extension", base("APPMESH_METRIC_EXTENSION_VERSION", "1")},
	{"stats-config-file", base("ENABLE_ENVOY_STATS_TAGS", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1",
		"ENVOY_STATS_CONFIG_FILE", "testdata/files/stats-config.yaml")},
	{"resources-file", base("ENVOY_RESOURCES_CONFIG_FILE", "testdata/files/resources.json")},
	{"virtual-gateway", base("APPMESH_RESOURCE_ARN", vgARN, "ENABLE_ENVOY_XRAY_TRACING", "1",
		"ENABLE_ENVOY_STATS_TAGS", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1",
		"APPMESH_SDS_SOCKET_PATH", "/run/meshd/sds.sock", "ENABLE_ENVOY_DOG_STATSD", "1")},
}

func render(t testing.TB, env map[string]string) *bootstrapv3.Bootstrap {
	t.Helper()
	c, err := FromEnv(MapLookup(env))
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	b, _, err := Render(c, os.ReadFile)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return b
}

func TestGolden(t *testing.T) {
	seen := map[string]string{}
	for _, tt := range goldenCases {
		t.Run(tt.name, func(t *testing.T) {
			b := render(t, tt.env)
			if err := b.ValidateAll(); err != nil {
				t.Fatalf("ValidateAll: %v", err)
			}
			got, err := Encode(b, YAML)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", tt.name+".yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./tracing -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the rendered bootstrap (go test ./tracing -run TestGolden -update, then review the diff):\n%s", path, got)
			}
			if prev, dup := seen[string(got)]; dup {
				t.Errorf("renders the same bootstrap as %s: the case tests nothing new", prev)
			}
			seen[string(got)] = tt.name

			// What Envoy reads back is what was rendered, in both formats.
			back, err := ParseFragment(got)
			if err != nil {
				t.Fatalf("re-parse YAML: %v", err)
			}
			// proto.Equal compares typed configs by their bytes, which
			// depend on map order; compare the canonical encoding instead.
			if again, _ := Encode(back, YAML); !bytes.Equal(again, got) {
				t.Error("YAML output does not parse back to the rendered bootstrap")
			}
			js, err := Encode(b, JSON)
			if err != nil {
				t.Fatal(err)
			}
			fromJSON := &bootstrapv3.Bootstrap{}
			if err := protojson.Unmarshal(js, fromJSON); err != nil {
				t.Fatalf("re-parse JSON: %v", err)
			}
			if again, _ := Encode(fromJSON, JSON); !bytes.Equal(again, js) {
				t.Error("JSON output does not parse back to the rendered bootstrap")
			}
		})
	}
}

func TestEncodeDeterministic(t *testing.T) {
	b := render(t, goldenCases[len(goldenCases)-1].env)
	for _, f := range []Format{YAML, JSON} {
		first, err := Encode(b, f)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 20; i++ {
			again, err := Encode(proto.Clone(b), f)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, again) {
				t.Fatalf("%s encoding differs between runs", f)
			}
		}
	}
	if _, err := Encode(b, "toml"); err == nil {
		t.Error("Encode accepted format toml")
	}
}
