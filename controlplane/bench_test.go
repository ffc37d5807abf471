package controlplane

import (
	"testing"

	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/internal/xdstest"
)

// BenchmarkLoadAndBuild: read, decode, validate and index the 1,000-node
// mesh (1,000 services, 1,000 routers × 5 routes) — what a reload costs
// before translation (translate.BenchmarkTranslate).
func BenchmarkLoadAndBuild(b *testing.B) {
	files := xdstest.GenerateMesh(1000, 5).LoadFiles()
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
