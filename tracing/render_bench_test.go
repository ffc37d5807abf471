package tracing

import (
	"os"
	"testing"
)

// benchEnv turns on most of the renderer: a tracer with a manifest file,
// stats tags, the metrics extension, DogStatsD, SDS with mTLS to the control
// plane, and a custom resources file.
var benchEnv = base("ENABLE_ENVOY_XRAY_TRACING", "1", "XRAY_SAMPLING_RULE_MANIFEST", "testdata/files/sampling-rules.json",
	"ENABLE_ENVOY_STATS_TAGS", "1", "APPMESH_METRIC_EXTENSION_VERSION", "1", "ENABLE_ENVOY_DOG_STATSD", "1",
	"APPMESH_SDS_SOCKET_PATH", "/run/meshd/sds.sock", "MESHD_XDS_ADDRESS", "cp:15010", "MESHD_XDS_TLS", "1",
	"ENVOY_RESOURCES_CONFIG_FILE", "testdata/files/resources.json")

// BenchmarkRender is environment → validated bootstrap → YAML, in process.
func BenchmarkRender(b *testing.B) {
	for b.Loop() {
		c, err := FromEnv(MapLookup(benchEnv))
		if err != nil {
			b.Fatal(err)
		}
		bs, _, err := Render(c, os.ReadFile)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Encode(bs, YAML); err != nil {
			b.Fatal(err)
		}
	}
}
