package translate

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/tracing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// buildDir loads, validates and indexes a configuration directory.
func buildDir(t testing.TB, dir string) *model.Config {
	t.Helper()
	res, err := load.Dir(os.DirFS(dir), ".", load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Fatalf("load %s: %v", dir, res.Problems)
	}
	cfg, problems, _ := model.Build(res.Docs)
	if len(problems) > 0 {
		t.Fatalf("build %s: %v", dir, problems)
	}
	return cfg
}

// render encodes a node's resources as one YAML stream, type by type.
func render(t testing.TB, r *Resources) []byte {
	t.Helper()
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# node %s (%s); versions", r.Node.ShortForm(), r.Flavor)
	for _, typ := range ResourceTypes {
		fmt.Fprintf(&buf, " %s=%s", typ[strings.LastIndex(typ, ".")+1:], r.Versions[typ])
	}
	buf.WriteString("\n")
	for _, w := range r.Warnings {
		fmt.Fprintf(&buf, "# warning: %s\n", w)
	}
	for _, typ := range ResourceTypes {
		for _, res := range r.Types[typ] {
			out, err := tracing.Encode(res, tracing.YAML)
			if err != nil {
				t.Fatalf("encode %s %s: %v", typ, nameOf(res), err)
			}
			fmt.Fprintf(&buf, "---\n# %s %s\n", typ[strings.LastIndex(typ, ".")+1:], nameOf(res))
			buf.Write(out)
		}
	}
	return buf.Bytes()
}
