package translate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// concat joins configuration files into one multi-document YAML stream
// (JSON documents are YAML).
func concat(files []load.File) []byte {
	var b bytes.Buffer
	for _, f := range files {
		b.WriteString("---\n")
		b.Write(bytes.TrimSpace(f.Data))
		b.WriteString("\n")
	}
	return b.Bytes()
}

// FuzzTranslate feeds one file (App Mesh CLI JSON or YAML, any format load
// reads) through load.Files and model.Build and, when the configuration is
// valid, translates every node in both flavors: nothing may panic, a
// virtual gateway must be refused to gRPC clients with ErrUnknownNode, and
// every resource must pass tracing.Validate. With MESHD_FUZZ_LINT=1 the
// resources must also pass envoyLint and, for gRPC clients, grpcLint.
//
// Valid means model.Build accepts it (it runs appmesh.Validate on every
// document); the fuzzer also runs appmesh.Validate itself, so the property
// holds even if Build stops doing so. MESHD_FUZZ_UNVALIDATED=1 skips that
// second check.
//
// Structured inputs shrink slowly: -fuzzminimizetime 2s leaves more of the
// time to fuzzing.
//
// Run: go test ./controlplane/translate -run '^$' -fuzz FuzzTranslate -fuzztime 60s
func FuzzTranslate(f *testing.F) {
	for _, dir := range []string{appsDir, gatewayDir, featuresDir} {
		files := readDir(f, dir)
		for _, file := range files {
			f.Add(file.Data)
		}
		f.Add(concat(files))
	}
	f.Add([]byte(tlsMesh))
	f.Add([]byte(multiListenerGateway))
	f.Add([]byte(routerYAML(httpRouteDoc("a", "", ""), httpRouteDoc("b", "3", ""))))
	lint := os.Getenv("MESHD_FUZZ_LINT") == "1"
	unvalidated := os.Getenv("MESHD_FUZZ_UNVALIDATED") == "1"
	f.Fuzz(func(t *testing.T, data []byte) {
		res := load.Files([]load.File{{Name: "fuzz.yaml", Data: data}}, load.Options{DefaultMesh: "fuzz"})
		if len(res.Problems) > 0 || len(res.Docs) == 0 {
			return
		}
		cfg, problems, _ := model.Build(res.Docs)
		if len(problems) > 0 || cfg == nil {
			return
		}
		if !unvalidated && len(specProblems(res.Docs)) > 0 {
			return
		}
		tr := New(cfg, Options{NoDefaultRetryPolicy: len(data)%2 == 1})
		for _, n := range tr.Nodes() {
			for _, fl := range []Flavor{Envoy, GRPC} {
				r, err := tr.Node(n, fl)
				if n.Kind == appmesh.VirtualGateway && fl == GRPC {
					if !errors.Is(err, ErrUnknownNode) {
						t.Errorf("%s (grpc): want ErrUnknownNode, got %v", n.ShortForm(), err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s (%s): %v", n.ShortForm(), fl, err)
				}
				for _, err := range validateResources(r) {
					t.Errorf("%s (%s): tracing.Validate: %v", n.ShortForm(), fl, err)
				}
				if lint {
					for _, err := range envoyLint(r) {
						t.Errorf("%s (%s): %v", n.ShortForm(), fl, err)
					}
					if fl == GRPC {
						for _, err := range grpcLint(t, r) {
							t.Errorf("%s (grpc): %v", n.ShortForm(), err)
						}
					}
				}
			}
		}
	})
}

// TestFuzzRegressions replays inputs that exposed translator bugs
// (testdata/fuzz-regressions/<bug>/*.yaml, each a whole configuration in
// one file): once fixed, each must either be refused by validation or
// translate to resources that pass tracing.Validate and envoyLint.
func TestFuzzRegressions(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("testdata", "fuzz-regressions", "*"))
	sort.Strings(dirs)
	if len(dirs) == 0 {
		t.Skip("no fuzz regressions recorded")
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			inputs, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
			if len(inputs) == 0 {
				t.Fatal("no inputs")
			}
			for _, in := range inputs {
				data, err := os.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				res := load.Files([]load.File{{Name: filepath.Base(in), Data: data}}, load.Options{})
				if len(res.Problems) > 0 {
					t.Fatalf("%s: %v", in, res.Problems)
				}
				if errs := specProblems(res.Docs); len(errs) > 0 {
					t.Logf("%s: now refused by validation: %v", in, errs[0])
					continue
				}
				cfg, problems, _ := model.Build(res.Docs)
				if len(problems) > 0 {
					t.Logf("%s: now refused by model.Build: %v", in, problems[0])
					continue
				}
				t.Run(filepath.Base(in), func(t *testing.T) { allNodes(t, cfg, Options{}) })
			}
		})
	}
}
