package translate

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/internal/xdstest"
)

const benchNodes = 1000

// benchMesh is the generated mesh every control-plane benchmark uses
// (xdstest.GenerateMesh: 1,000 nodes, services and routers × 5 routes),
// loaded from its YAML files as the control plane would.
var benchMesh = sync.OnceValues(func() (xdstest.Generated, []load.Doc) {
	g := xdstest.GenerateMesh(benchNodes, 5)
	res := load.Files(g.LoadFiles(), load.Options{})
	if len(res.Problems) > 0 {
		panic(fmt.Sprint(res.Problems))
	}
	return g, res.Docs
})

var benchOnce = sync.OnceValues(func() ([]load.Doc, *model.Config) {
	_, docs := benchMesh()
	cfg, problems, _ := model.Build(docs)
	if len(problems) > 0 {
		panic(fmt.Sprint(problems))
	}
	return docs, cfg
})

// TestBenchMesh checks the generated mesh is valid and translates to what
// the benchmark expects, so the benchmarks measure real work.
func TestBenchMesh(t *testing.T) {
	docs, cfg := benchOnce()
	if errs := specProblems(docs); len(errs) > 0 {
		t.Fatalf("invalid generated specs: %v", errs[:min(len(errs), 5)])
	}
	m := cfg.Meshes["bench"]
	if len(m.VirtualNodes) != benchNodes || len(m.VirtualServices) != benchNodes || len(m.VirtualRouters) != benchNodes {
		t.Fatalf("%d nodes, %d services, %d routers", len(m.VirtualNodes), len(m.VirtualServices), len(m.VirtualRouters))
	}
	g, _ := benchMesh()
	tr := New(cfg, Options{})
	for _, i := range []int{0, 1, 2, 999} {
		r := translateNode(t, tr, vn("bench", fmt.Sprintf("node-%d", i)), Envoy)
		for _, err := range envoyLint(r) {
			t.Error(err)
		}
		// Router j's 5 routes target nodes j … j+5. A node reached through
		// k of node i's services gets k clusters (one per service), so the
		// egress clusters are the distinct (service, target) pairs; plus
		// the ingress and AWS clusters.
		pairs := map[[2]int]bool{}
		for _, j := range g.Backends[i] {
			for d := range 6 {
				pairs[[2]int{j, (j + d) % benchNodes}] = true
			}
		}
		if got, want := len(r.Types[resource.ClusterType]), 2+len(pairs); got != want {
			t.Errorf("node %d: %d clusters %q, want %d", i, got, names(r, resource.ClusterType), want)
		}
		vh := r.Types[resource.RouteType]
		if len(vh) != 2 {
			t.Errorf("node %d: route configurations %q", i, names(r, resource.RouteType))
		}
	}
}

// BenchmarkBuild measures model.Build of the generated 1,000-node mesh.
func BenchmarkBuild(b *testing.B) {
	docs, _ := benchOnce()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, problems, _ := model.Build(docs); len(problems) > 0 {
			b.Fatal(problems)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/mesh")
}

// BenchmarkTranslate measures translating every node of the generated
// mesh for Envoy with a new Translator each time (a new configuration):
// sequentially, and on GOMAXPROCS goroutines as the control plane may.
// The target is ≤ 100 ms per mesh on 2 cores.
func BenchmarkTranslate(b *testing.B) {
	_, cfg := benchOnce()
	nodes := New(cfg, Options{}).Nodes()
	if len(nodes) != benchNodes {
		b.Fatalf("%d nodes", len(nodes))
	}
	run := func(b *testing.B, translate func(tr *Translator)) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			translate(New(cfg, Options{}))
		}
		perMesh := float64(time.Since(start).Microseconds()) / 1000 / float64(b.N)
		b.ReportMetric(perMesh, "ms/mesh")
		b.ReportMetric(perMesh*1000/float64(len(nodes)), "µs/node")
	}
	check := func(b *testing.B, n appmesh.Resource, r *Resources, err error) {
		if err != nil || len(r.Types[resource.ListenerType]) != 2 {
			b.Errorf("%s: %v", n.ShortForm(), err)
		}
	}
	b.Run("sequential", func(b *testing.B) {
		run(b, func(tr *Translator) {
			for _, n := range nodes {
				r, err := tr.Node(n, Envoy)
				check(b, n, r, err)
			}
		})
	})
	b.Run("parallel", func(b *testing.B) {
		run(b, func(tr *Translator) {
			out, errs := tr.All(nodes, Envoy)
			for i, n := range nodes {
				check(b, n, out[i], errs[i])
			}
		})
	})
}
