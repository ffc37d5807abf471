package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshd/meshd/tracing"
)

func TestPrepareBootstrap(t *testing.T) {
	env := map[string]string{"APPMESH_RESOURCE_ARN": "mesh/apps/virtualNode/serviceA", "MESHD_XDS_ADDRESS": "unix:///run/meshd/xds.sock", "ENVOY_ADMIN_MODE": "uds"}
	tmp := t.TempDir()
	b, err := PrepareBootstrap(defaults(), tracing.MapLookup(env), os.ReadFile, tmp)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(b.Path)
	if err != nil || fi.Mode().Perm() != 0o600 || !b.Rendered {
		t.Fatalf("rendered bootstrap: %v %v", fi, err)
	}
	if di, err := os.Stat(filepath.Dir(b.Path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("bootstrap directory: %v %v", di, err)
	}
	data, _ := os.ReadFile(b.Path)
	if !strings.Contains(string(data), tracing.AdminSocket) || !strings.Contains(string(data), "mesh/apps/virtualNode/serviceA") {
		t.Errorf("bootstrap lacks the admin socket or node id:\n%s", data)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(b.Path)); !os.IsNotExist(err) {
		t.Errorf("directory left behind: %v", err)
	}

	// Input problems are InputErrors.
	if _, err := PrepareBootstrap(defaults(), tracing.MapLookup(nil), os.ReadFile, tmp); !tracing.IsInput(err) {
		t.Errorf("missing APPMESH_RESOURCE_ARN: %v", err)
	}

	// ENVOY_CONFIG_FILE: a non-empty file is used as-is (no environment
	// needed); an empty one is replaced by a render, with a warning.
	own := filepath.Join(tmp, "envoy.yaml")
	os.WriteFile(own, []byte("admin: {}\n"), 0o644)
	c := defaults()
	c.EnvoyConfigFile = own
	b, err = PrepareBootstrap(c, tracing.MapLookup(nil), os.ReadFile, tmp)
	if err != nil || b.Path != own || b.Rendered || len(b.Warnings) != 0 {
		t.Fatalf("ENVOY_CONFIG_FILE: %+v %v", b, err)
	}
	b.Close()
	if _, err := os.Stat(own); err != nil {
		t.Fatal("Close removed ENVOY_CONFIG_FILE")
	}
	os.WriteFile(own, nil, 0o644)
	b, err = PrepareBootstrap(c, tracing.MapLookup(env), os.ReadFile, tmp)
	if err != nil || b.Path == own || !b.Rendered || len(b.Warnings) == 0 || !strings.Contains(b.Warnings[0], "missing or empty") {
		t.Fatalf("empty ENVOY_CONFIG_FILE: %+v %v", b, err)
	}
	b.Close()
}
