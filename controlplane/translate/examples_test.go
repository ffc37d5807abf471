package translate

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// examplesDir holds AWS's App Mesh examples (aws/aws-app-mesh-examples),
// as internal/appmesh/load/examples_test.go reads them.
const examplesDir = "../../../shared/testdata/appmesh-examples"

// exampleParameters are the CloudFormation parameters the examples'
// READMEs pass at deploy time (as load's TestExamplesWithParameters).
var exampleParameters = map[string]string{"AppMeshMeshName": "appmesh-mesh", "MeshName": "appmesh-mesh", "ProjectName": "demo",
	"ServicesDomain": "demo.local", "CertificateArn": "arn:aws:acm:us-west-2:111122223333:certificate/example",
	"CertificateAuthorityArn": "arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/example"}

var undefinedMesh = regexp.MustCompile(`is in mesh "([^"]*)", which is not defined$`)

// buildExample loads files together (a CLI input without a mesh name goes
// to mesh "examples", as in load's TestExamples) and builds them. When the
// only problems are resources in a mesh the files do not define (the mesh
// was created by another file or by hand), an empty mesh is supplied; the
// second result says so. why explains a failure.
func buildExample(files []load.File) (cfg *model.Config, synthesized bool, why string) {
	res := load.Files(files, load.Options{DefaultMesh: "examples", Parameters: exampleParameters})
	if len(res.Problems) > 0 {
		return nil, false, "load: " + res.Problems[0].Error()
	}
	if len(res.Docs) == 0 {
		return nil, false, "no App Mesh resources"
	}
	docs := res.Docs
	cfg, problems, _ := model.Build(docs)
	if len(problems) > 0 {
		missing := map[string]bool{}
		for _, p := range problems {
			m := undefinedMesh.FindStringSubmatch(p.Msg)
			if m == nil {
				return nil, false, "build: " + p.Error()
			}
			missing[m[1]] = true
		}
		for _, mesh := range model.Names(missing) {
			docs = append(docs, load.Doc{Loc: load.Loc{File: "(supplied)"}, Format: load.CLI, Kind: load.Mesh, Mesh: mesh, Name: mesh, Spec: json.RawMessage("{}")})
		}
		synthesized = true
		if cfg, problems, _ = model.Build(docs); len(problems) > 0 {
			return nil, true, "build: " + problems[0].Error()
		}
	}
	if errs := specProblems(docs); len(errs) > 0 {
		return nil, synthesized, "invalid: " + errs[0].Error()
	}
	return cfg, synthesized, ""
}

// walkthrough is the project a flattened example file came from:
// cli__walkthroughs__howto-grpc__mesh__x.json → walkthroughs__howto-grpc.
func walkthrough(file string) string {
	parts := strings.Split(strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)), "__")
	if len(parts) < 3 {
		return file
	}
	return parts[1] + "__" + parts[2]
}

// TestExamples translates every node, in both flavors, of every example
// configuration that builds: each file on its own, then, per walkthrough,
// the files that do not build alone, together. Every resource must pass
// tracing.Validate (and envoyLint and, for gRPC clients, grpcLint), and
// nothing may panic. Configurations that reference resources defined
// nowhere in the examples are skipped and counted.
func TestExamples(t *testing.T) {
	var files []string
	for _, dir := range []string{"cli", "cfn", "crd"} {
		entries, err := os.ReadDir(filepath.Join(examplesDir, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".json", ".yaml", ".yml":
				files = append(files, dir+"/"+e.Name())
			}
		}
	}
	sort.Strings(files)
	if len(files) < 60 {
		t.Fatalf("only %d example files under %s", len(files), examplesDir)
	}
	read := func(name string) load.File {
		data, err := os.ReadFile(filepath.Join(examplesDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return load.File{Name: name, Data: data}
	}
	translated, withMesh, nodes, skipped := 0, 0, 0, 0
	try := func(what string, in []load.File) bool {
		cfg, synthesized, why := buildExample(in)
		if cfg == nil {
			t.Logf("skip %s: %s", what, why)
			return false
		}
		n := translateExample(t, what, cfg)
		if n == 0 {
			t.Logf("%s: builds but has no nodes", what)
			return true
		}
		translated++
		nodes += n
		if synthesized {
			withMesh++
		}
		return true
	}
	// Per walkthrough: the files that load, if one of them does not build
	// alone (it needs another's resources); else only those that fail.
	loads := map[string][]string{}
	failed := map[string][]string{}
	for _, f := range files {
		if len(load.Files([]load.File{read(f)}, load.Options{DefaultMesh: "examples", Parameters: exampleParameters}).Problems) == 0 {
			loads[walkthrough(f)] = append(loads[walkthrough(f)], f)
		}
		if !try(f, []load.File{read(f)}) {
			failed[walkthrough(f)] = append(failed[walkthrough(f)], f)
		}
	}
	for _, w := range model.Names(failed) {
		done := false
		for _, group := range [][]string{loads[w], failed[w]} {
			if done || len(group) < 2 {
				continue
			}
			var in []load.File
			for _, f := range group {
				in = append(in, read(f))
			}
			done = try(fmt.Sprintf("%s (%d files)", w, len(group)), in)
		}
		if !done {
			skipped += len(failed[w])
		}
	}
	t.Logf("%d example configurations translated (%d with a supplied empty mesh), %d nodes; %d files skipped", translated, withMesh, nodes, skipped)
	if translated < 10 {
		t.Errorf("only %d example configurations translate; want at least 10", translated)
	}
}

// translateExample translates every node of cfg in both flavors, turning a
// panic into a test error naming the example.
func translateExample(t *testing.T, what string, cfg *model.Config) (nodes int) {
	t.Helper()
	t.Run(strings.NewReplacer("/", "_", " ", "_").Replace(what), func(t *testing.T) {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("%s: translation panicked: %v\n%s", what, r, debug.Stack())
			}
		}()
		nodes = len(allNodes(t, cfg, Options{}))
	})
	return nodes
}
