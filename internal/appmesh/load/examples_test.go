package load

import (
	"os"

	"github.com/meshd/meshd/internal/appmesh"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const examples = "../../../../shared/testdata/appmesh-examples"

// Files of the examples that cannot load, and why: the pre-2020 CRD API,
// and a file that is not valid YAML upstream ("enforce: true," followed by
// a deeper-indented mapping).
var examplesExpectedToFail = map[string]string{
	"crd/crd__examples__apps__djapp__legacy__4_create_initial_mesh_components__mesh.yaml":                                "appmesh.k8s.aws/v1beta1",
	"crd/crd__examples__apps__djapp__legacy__4_create_initial_mesh_components__nodes_representing_virtual_services.yaml": "appmesh.k8s.aws/v1beta1",
	"crd/crd__examples__apps__djapp__legacy__5_canary__jazz_v2.yaml":                                                     "appmesh.k8s.aws/v1beta1",
	"crd/crd__examples__apps__djapp__legacy__5_canary__metal_service_update.yaml":                                        "appmesh.k8s.aws/v1beta1",
	"crd/crd__walkthroughs__eks-app-mesh-cross-account-acm__mesh__yelb_db_update.yaml":                                   "not YAML: yaml: line 11",
}

// TestExamples loads every App Mesh definition from AWS's examples, one
// project file at a time (as `meshd validate` would read a project), with
// a default mesh for the CLI inputs that got theirs from --mesh-name. Every
// problem must be a value that cannot be resolved offline (a parameter
// without a Default, ImportValue, a deployed resource's attribute), located
// at a resource and field, or one of the expected failures above.
func TestExamples(t *testing.T) {
	var files []string
	for _, dir := range []string{"cli", "cfn", "crd"} {
		all, err := os.ReadDir(filepath.Join(examples, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".json", ".yaml", ".yml":
				files = append(files, dir+"/"+e.Name())
			}
		}
	}
	sort.Strings(files)
	if len(files) < 60 {
		t.Fatalf("only %d example files found under %s", len(files), examples)
	}
	kinds := map[string]int{}
	formats := map[Format]int{}
	unresolved, nameless, warnings := 0, 0, 0
	for _, name := range files {
		data, err := os.ReadFile(filepath.Join(examples, name))
		if err != nil {
			t.Fatal(err)
		}
		res := Files([]File{{Name: name, Data: data}}, Options{DefaultMesh: "examples"})
		for _, d := range res.Docs {
			if _, err := appmesh.DecodeSpec(appmesh.ResourceKind(d.Kind), d.Spec); err != nil {
				t.Errorf("%s: spec does not decode: %v\n%s", d.Loc, err, d.Spec)
			}
			kinds[d.Kind]++
			formats[d.Format]++
			if d.Mesh == "" || d.Name == "" || len(d.Spec) == 0 || d.Loc.File != name {
				t.Errorf("%s: incomplete %+v", d.Loc, d)
			}
			if (d.Kind == Route || d.Kind == GatewayRoute) && d.Parent == "" {
				t.Errorf("%s: %s without parent", d.Loc, d.Kind)
			}
		}
		for _, w := range res.Warnings {
			warnings++
			if w.Loc.Resource == "" || w.Loc.Path == "" {
				t.Errorf("unlocated warning %v", w)
			}
		}
		if want, ok := examplesExpectedToFail[name]; ok {
			if len(res.Problems) == 0 || !strings.Contains(res.Problems[0].Msg, want) {
				t.Errorf("%s: want a problem mentioning %q, got %v", name, want, res.Problems)
			}
			continue
		}
		if len(res.Docs) == 0 && len(res.Problems) == 0 && res.Skipped == 0 {
			t.Errorf("%s: nothing found, not even a skipped document", name)
		}
		for _, p := range res.Problems {
			if strings.Contains(p.Msg, "a spec without name members") {
				nameless++
				continue
			}
			unresolved++
			if p.Loc.Resource == "" || p.Loc.Path == "" || !strings.Contains(p.Msg, "offline") && !strings.Contains(p.Msg, "deployed") {
				t.Errorf("problem that is not an unresolvable value: %v", p)
			}
		}
	}
	t.Logf("%d files: %d resources %v by format %v; %d unresolvable values reported; %d CLI inputs without names; %d unknown CRD fields pruned", len(files), sum(kinds), kinds, formats, unresolved, nameless, warnings)
	if warnings == 0 {
		t.Error("the yelb-appserver CRD's clientPolicy.tls.mode was not reported as pruned")
	}
	for _, k := range []string{Mesh, VirtualService, VirtualNode, VirtualRouter, Route, VirtualGateway, GatewayRoute} {
		if kinds[k] == 0 {
			t.Errorf("no %s loaded from the examples", k)
		}
	}
	for _, f := range []Format{CLI, Kubernetes, CloudFormation} {
		if formats[f] == 0 {
			t.Errorf("nothing loaded from format %s", f)
		}
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestExamplesWithParameters gives the CloudFormation examples the
// parameters their READMEs pass at deploy time: what is left unresolved is
// only what a deployed stack knows.
func TestExamplesWithParameters(t *testing.T) {
	params := map[string]string{"AppMeshMeshName": "appmesh-mesh", "MeshName": "appmesh-mesh", "ProjectName": "demo",
		"ServicesDomain": "demo.local", "CertificateArn": "arn:aws:acm:us-west-2:111122223333:certificate/example",
		"CertificateAuthorityArn": "arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/example"}
	all, err := filepath.Glob(filepath.Join(examples, "cfn", "*.y*ml"))
	if err != nil || len(all) == 0 {
		t.Fatalf("no CloudFormation examples: %v", err)
	}
	loaded, left := 0, 0
	for _, f := range all {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res := Files([]File{{Name: filepath.Base(f), Data: data}}, Options{Parameters: params})
		loaded += len(res.Docs)
		for _, d := range res.Docs {
			if _, err := appmesh.DecodeSpec(appmesh.ResourceKind(d.Kind), d.Spec); err != nil {
				t.Errorf("%s: spec does not decode: %v", d.Loc, err)
			}
		}
		for _, p := range res.Problems {
			left++
			if strings.Contains(p.Msg, "has no Default") || !strings.Contains(p.Msg, "deployed") && !strings.Contains(p.Msg, "offline") {
				t.Errorf("%v", p)
			}
		}
	}
	t.Logf("%d CloudFormation templates: %d App Mesh resources loaded, %d values only a deployed stack knows", len(all), loaded, left)
	if loaded < 150 {
		t.Errorf("only %d resources loaded", loaded)
	}
}
