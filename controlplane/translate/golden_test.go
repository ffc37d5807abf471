package translate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
)

// goldenNode is one node rendered in one flavor.
type goldenNode struct {
	node   appmesh.Resource
	flavor Flavor
}

// goldenScenarios are the configurations whose translation is pinned in
// testdata/golden/<name>/. nodes nil means every node, in both flavors
// (a virtual gateway only as an Envoy: the gRPC flavor refuses it).
var goldenScenarios = []struct {
	name, dir string
	nodes     []goldenNode
}{
	{"apps", appsDir, []goldenNode{
		{vn("apps", "serviceA"), Envoy},
		{vn("apps", "serviceB"), Envoy},
		{vn("apps", "serviceBv2"), Envoy},
		{vn("apps", "serviceA"), GRPC},
	}},
	{"gateway", gatewayDir, nil},
	{"features", featuresDir, nil},
}

const updateHint = "if the change is intended, run: go test ./controlplane/translate -run TestGolden -update (and review the diff)"

// TestGolden renders each scenario's nodes and compares them with the
// golden files (rewritten with -update). Every resource must also pass
// tracing.Validate.
func TestGolden(t *testing.T) {
	for _, sc := range goldenScenarios {
		t.Run(sc.name, func(t *testing.T) {
			cfg := buildDir(t, sc.dir)
			res, err := load.Dir(os.DirFS(sc.dir), ".", load.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if errs := specProblems(res.Docs); len(errs) > 0 {
				t.Fatalf("scenario %s has invalid specs: %v", sc.dir, errs)
			}
			tr := New(cfg, Options{})
			nodes := sc.nodes
			if nodes == nil {
				for _, n := range tr.Nodes() {
					nodes = append(nodes, goldenNode{n, Envoy})
					if n.Kind == appmesh.VirtualNode {
						nodes = append(nodes, goldenNode{n, GRPC})
					} else if _, err := tr.Node(n, GRPC); !errors.Is(err, ErrUnknownNode) {
						t.Errorf("%s in the gRPC flavor: want ErrUnknownNode, got %v", n.ShortForm(), err)
					}
				}
			}
			dir := filepath.Join("testdata", "golden", sc.name)
			want := map[string]bool{}
			for _, gn := range nodes {
				r := translateNode(t, tr, gn.node, gn.flavor)
				file := fmt.Sprintf("%s_%s.%s.yaml", gn.node.Kind, gn.node.Name, gn.flavor)
				want[file] = true
				// The first line shows content hashes computed by the test
				// (canonicalVersions), not the translator's Versions: those
				// depend on how the translator hashes, and are not stable
				// yet when typed configs hold maps
				// (TestVersionsWithJSONAccessLogsAreStable).
				// TestDeterminism and TestRouteChangeVersions check them.
				canon := *r
				canon.Versions = canonicalVersions(t, r)
				out := bytes.Replace(render(t, &canon), []byte("; versions "), []byte("; content hashes "), 1)
				checkGolden(t, filepath.Join(dir, file), out)
			}
			// Golden files nothing renders any more are stale.
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if !want[e.Name()] {
					if *update {
						os.Remove(filepath.Join(dir, e.Name()))
						continue
					}
					t.Errorf("%s: stale golden file (no node renders it); %s", filepath.Join(dir, e.Name()), updateHint)
				}
			}
		})
	}
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%v; %s", err, updateHint)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the translation:\n%s\n%s", path, firstDiff(want, got), updateHint)
	}
}

// firstDiff shows the first differing line with a little context (and,
// when only the versions line differs so far, the first differing resource
// line too).
func firstDiff(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	line := func(l []string, i int) string {
		if i < len(l) {
			return l[i]
		}
		return ""
	}
	var b strings.Builder
	for i := 0; i < max(len(wl), len(gl)); i++ {
		if line(wl, i) == line(gl, i) {
			continue
		}
		for j := max(1, i-3); j < i; j++ {
			fmt.Fprintf(&b, "  %4d   %s\n", j+1, wl[j])
		}
		fmt.Fprintf(&b, "  %4d - %s\n  %4d + %s\n", i+1, line(wl, i), i+1, line(gl, i))
		if i > 0 {
			return b.String()
		}
	}
	if b.Len() == 0 {
		return "(no line differs)"
	}
	return b.String()
}
