package load_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/appmesh/load"
)

// fuzzExamples are AWS example files, one per format, that seed FuzzFiles.
var fuzzExamples = []string{
	"cli/cli__walkthroughs__howto-http-retries__blue-route.json",
	"cli/cli__blogs__ecs-service-connectivity__yelb__deployments__platformdeployment__AWS__ECS__mesh__yelb-vg.json",
	"cfn/cfn__walkthroughs__howto-grpc__mesh.yaml",
	"cfn/cfn__walkthroughs__howto-mutual-tls-file-provided-by-acm__infrastructure__mesh.yaml",
	"crd/crd__walkthroughs__howto-k8s-multiple-listeners__manifest.yaml",
	"crd/crd__blogs__eks-appmesh-connectivity__deployments__yaml__mesh__appmesh__yelb-gateway.yaml",
}

var kinds = map[string]bool{
	load.Mesh: true, load.VirtualService: true, load.VirtualNode: true, load.VirtualRouter: true,
	load.Route: true, load.VirtualGateway: true, load.GatewayRoute: true,
}

// FuzzFiles loads arbitrary bytes as one file: it must not panic, every
// Doc must be complete (with a default mesh given, every resource has a
// mesh) with a JSON object for a spec, and every problem must name the
// file.
func FuzzFiles(f *testing.F) {
	for _, tc := range allCases {
		for _, in := range tc.files {
			f.Add(in.Data, strings.HasSuffix(in.Name, ".json"))
		}
	}
	for _, name := range fuzzExamples {
		data, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "shared", "testdata", "appmesh-examples", name))
		if err != nil {
			f.Logf("seed %s: %v", name, err)
			continue
		}
		f.Add(data, strings.HasSuffix(name, ".json"))
	}
	f.Fuzz(func(t *testing.T, data []byte, asJSON bool) {
		name := "x.yaml"
		if asJSON {
			name = "x.json"
		}
		res := load.Files([]load.File{{Name: name, Data: data}}, load.Options{
			DefaultMesh: "fuzz-mesh",
			Parameters:  map[string]string{"MeshName": "fuzz-mesh"},
		})
		if res.Skipped < 0 {
			t.Errorf("Skipped = %d", res.Skipped)
		}
		for _, d := range res.Docs {
			if !kinds[d.Kind] || d.Name == "" || d.Mesh == "" || d.Loc.File != name {
				t.Errorf("incomplete doc: %#v kind=%q mesh=%q name=%q", d.Loc, d.Kind, d.Mesh, d.Name)
			}
			if (d.Kind == load.Route || d.Kind == load.GatewayRoute) && d.Parent == "" {
				t.Errorf("%s %q without parent at %v", d.Kind, d.Name, d.Loc)
			}
			var spec map[string]any
			if err := json.Unmarshal(d.Spec, &spec); err != nil || spec == nil {
				t.Errorf("%s %q: spec %s is not a JSON object (%v)", d.Kind, d.Name, d.Spec, err)
			}
		}
		for _, ps := range [][]load.Problem{res.Problems, res.Warnings} {
			for _, p := range ps {
				if p.Loc.File != name || p.Msg == "" {
					t.Errorf("problem without file or message: %#v %q", p.Loc, p.Msg)
				}
			}
		}
	})
}
