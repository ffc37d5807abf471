package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BenchmarkBootstrapProcess measures `meshd bootstrap` end to end as Envoy's
// start-up sees it: exec of the built binary (Go runtime and package init,
// protobuf registration), reading the environment and a manifest, rendering,
// validating and writing the file. Target: ≤ 20 ms.
func BenchmarkBootstrapProcess(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "meshd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	manifest, err := filepath.Abs("../../tracing/testdata/files/sampling-rules.json")
	if err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(),
		"APPMESH_RESOURCE_ARN=arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceA",
		"MESHD_XDS_ADDRESS=unix:///run/meshd/xds.sock",
		"ENABLE_ENVOY_XRAY_TRACING=1", "XRAY_SAMPLING_RULE_MANIFEST="+manifest,
		"ENABLE_ENVOY_STATS_TAGS=1", "APPMESH_METRIC_EXTENSION_VERSION=1", "ENABLE_ENVOY_DOG_STATSD=1",
		"APPMESH_SDS_SOCKET_PATH=/run/meshd/sds.sock")
	out := filepath.Join(dir, "envoy.yaml")
	for b.Loop() {
		cmd := exec.Command(bin, "bootstrap", "--output", out, "--log-level", "warn")
		cmd.Env = env
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("meshd bootstrap: %v\n%s", err, o)
		}
	}
}
