package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	code, out, errOut := runCLI(t, "validate", filepath.Join("..", "..", "examples", "apps"))
	if code != 0 || !strings.Contains(out, "8 resources, no problems") || errOut != "" {
		t.Fatalf("examples/apps: exit %d\n%s\n%s", code, out, errOut)
	}

	dir := t.TempDir()
	files := map[string]string{
		"mesh.json": `{"meshName": "apps", "spec": {}}`,
		"nodes.yaml": `meshName: apps
virtualNodeName: serviceA
spec:
  listeners:
  - portMapping: {port: 80, protocl: http2}
---
meshName: apps
routeName: r
virtualRouterName: missing
spec:
  http2Route:
    match: {prefix: /}
    action: {weightedTargets: [{virtualNode: ghost, weight: 1}]}
`,
		"stack.yaml": `Resources:
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: apps
      VirtualNodeName: !Ref NodeName
      Spec: {}
Parameters:
  NodeName: {Type: String}
`,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut = runCLI(t, "validate", dir)
	want := []string{
		`nodes.yaml (document 1): spec.listeners[0].portMapping: unknown field "protocl"`,
		`nodes.yaml (document 2): route "r" belongs to virtual router "missing", which is not defined in mesh "apps"`,
		`nodes.yaml (document 2): spec.http2Route.action.weightedTargets[0].virtualNode: VirtualNode "ghost" is not defined in mesh "apps"`,
		`stack.yaml (document 1) Node: Properties.VirtualNodeName: parameter NodeName has no Default`,
	}
	if code != 1 || !strings.Contains(out, "4 problems") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("missing problem %q in:\n%s", w, errOut)
		}
	}

	// The parameter given offline resolves it.
	code, out, errOut = runCLI(t, "validate", "--cfn-parameter", "NodeName=serviceB", dir)
	if code != 1 || !strings.Contains(out, "3 problems") || strings.Contains(errOut, "stack.yaml") {
		t.Errorf("with --cfn-parameter: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "validate"); code != 2 || !strings.Contains(errOut, "want one directory") {
		t.Errorf("no directory: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "validate", filepath.Join(dir, "mesh.json")); code != 1 || !strings.Contains(errOut, "not a directory") {
		t.Errorf("a file: exit %d %s", code, errOut)
	}
}

// TestREADMEValidate runs the README's validate example as written.
func TestREADMEValidate(t *testing.T) {
	words := readmeCommand(t, "validate-command")
	if strings.Join(words[:4], " ") != "go run ./cmd/meshd validate" {
		t.Fatalf("README validate command %q", words)
	}
	t.Chdir(filepath.Join("..", ".."))
	if code, out, errOut := runCLI(t, words[3:]...); code != 0 || !strings.Contains(out, "no problems") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}
