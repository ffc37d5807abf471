package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshd/meshd/tracing"
)

func setEnv(t *testing.T, kv ...string) {
	t.Helper()
	// Clear every variable the renderer reads, so the host's environment
	// cannot leak into the test.
	for _, v := range tracing.Variables {
		t.Setenv(v.Name, "")
	}
	for i := 0; i+1 < len(kv); i += 2 {
		t.Setenv(kv[i], kv[i+1])
	}
}

func TestBootstrapCommand(t *testing.T) {
	setEnv(t, "APPMESH_RESOURCE_ARN", "mesh/apps/virtualNode/serviceA", "MESHD_XDS_ADDRESS", "unix:///run/meshd/xds.sock",
		"ENABLE_ENVOY_XRAY_TRACING", "1")
	dir := t.TempDir()

	code, out, errOut := runCLI(t, "bootstrap")
	if code != 0 || !strings.Contains(out, "name: envoy.tracers.xray") || !strings.Contains(out, "segmentName: apps/serviceA") {
		t.Fatalf("stdout: exit %d\n%s\n%s", code, out, errOut)
	}

	yamlPath := filepath.Join(dir, "envoy.yaml")
	if code, _, errOut := runCLI(t, "bootstrap", "--output", yamlPath); code != 0 {
		t.Fatalf("--output: exit %d %s", code, errOut)
	}
	fi, err := os.Stat(yamlPath)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("output file: %v %v", fi, err)
	}
	data, _ := os.ReadFile(yamlPath)
	if string(data) != out {
		t.Error("the file differs from what stdout got")
	}
	if _, err := tracing.ParseFragment(data); err != nil {
		t.Errorf("output does not parse as a bootstrap: %v", err)
	}

	// The format follows the extension, or --format.
	jsonPath := filepath.Join(dir, "envoy.json")
	for _, args := range [][]string{{"--output", jsonPath}, {"--output", yamlPath, "--format", "JSON"}} {
		if code, _, errOut := runCLI(t, append([]string{"bootstrap"}, args...)...); code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, errOut)
		}
		data, _ := os.ReadFile(args[1])
		var v map[string]any
		if err := json.Unmarshal(data, &v); err != nil || v["tracing"] == nil {
			t.Errorf("%v: not the JSON bootstrap: %v", args, err)
		}
	}

	if code, _, errOut := runCLI(t, "bootstrap", "--format", "toml"); code != 2 || !strings.Contains(errOut, `--format "toml": want yaml or json`) {
		t.Errorf("--format toml: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "bootstrap", "extra"); code != 2 || !strings.Contains(errOut, "unexpected arguments") {
		t.Errorf("extra argument: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "bootstrap", "--output", filepath.Join(dir, "missing", "envoy.yaml")); code != 1 || !strings.Contains(errOut, "missing") {
		t.Errorf("unwritable output: exit %d %s", code, errOut)
	}
}

// Bad input exits 2 with one line per problem, each naming the variable.
func TestBootstrapBadInput(t *testing.T) {
	setEnv(t, "APPMESH_RESOURCE_ARN", "apps/serviceA", "MESHD_XDS_ADDRESS", "unix:///x",
		"XRAY_DAEMON_PORT", "70000", "ENABLE_ENVOY_DOG_STATSD", "yes")
	code, out, errOut := runCLI(t, "bootstrap")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	want := []string{"APPMESH_RESOURCE_ARN=", "XRAY_DAEMON_PORT=\"70000\"", "ENABLE_ENVOY_DOG_STATSD=\"yes\""}
	if len(lines) != len(want) {
		t.Fatalf("want %d lines, got:\n%s", len(want), errOut)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "meshd bootstrap: "+want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i, l, want[i])
		}
	}

	// A missing custom file is bad input too, and names the variable.
	setEnv(t, "APPMESH_RESOURCE_ARN", "mesh/apps/virtualNode/serviceA", "MESHD_XDS_ADDRESS", "unix:///x",
		"ENVOY_TRACING_CFG_FILE", filepath.Join(t.TempDir(), "nope.yaml"))
	code, _, errOut = runCLI(t, "bootstrap")
	if code != 2 || !strings.Contains(errOut, "meshd bootstrap: ENVOY_TRACING_CFG_FILE=") || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d %s", code, errOut)
	}
}

// TestREADMEBootstrap runs the README's bootstrap example as written (its
// variables set, meshd in-process) and checks what it promises.
func TestREADMEBootstrap(t *testing.T) {
	words := readmeCommand(t, "bootstrap-command")
	var kv []string
	for len(words) > 0 && strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(words[0], "=")
		kv, words = append(kv, k, v), words[1:]
	}
	if strings.Join(words[:4], " ") != "go run ./cmd/meshd bootstrap" {
		t.Fatalf("README bootstrap command %q does not run go run ./cmd/meshd bootstrap", words)
	}
	setEnv(t, kv...)
	t.Chdir(t.TempDir())
	if code, _, errOut := runCLI(t, words[3:]...); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	data, err := os.ReadFile("envoy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"segmentName: apps/serviceB", "origin: AWS::AppMesh::Proxy", "name: static_cluster_sds_unix_socket"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("envoy.yaml lacks %q", want)
		}
	}
}
