package controlplane

import (
	"sort"
	"testing"

	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/internal/xdstest"
)

func generated(tb testing.TB, n int) []load.File {
	g := xdstest.GenerateMesh(n, 5)
	var files []load.File
	for name, data := range g.Files {
		files = append(files, load.File{Name: name, Data: data})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files
}

// BenchmarkLoadAndBuild: read, decode, validate and index the 1,000-node
// mesh (1,000 services, 1,000 routers × 5 routes) — what a reload costs
// before translation (translate.BenchmarkTranslate).
func BenchmarkLoadAndBuild(b *testing.B) {
	files := generated(b, 1000)
	b.ReportAllocs()
	for b.Loop() {
		res := load.Files(files, load.Options{})
		if len(res.Problems) > 0 {
			b.Fatal(res.Problems[0])
		}
		if _, problems, _ := model.Build(res.Docs); len(problems) > 0 {
			b.Fatal(problems[0])
		}
	}
}
