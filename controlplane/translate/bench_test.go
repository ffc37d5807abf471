package translate

import (
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// benchMesh generates a mesh of n virtual nodes, n virtual services and n
// virtual routers with 5 routes each. Node i listens on http 8080 and
// calls 3–5 services (i+1 … i+k); router i serves service i and splits
// each route between nodes i and i+1.
func benchMesh(n int) []load.Doc {
	var docs []load.Doc
	add := func(kind, parent, name string, spec any) {
		raw, err := json.Marshal(spec)
		if err != nil {
			panic(err)
		}
		docs = append(docs, load.Doc{Loc: load.Loc{File: "bench", Doc: len(docs)}, Format: load.CLI, Kind: kind, Mesh: "bench", Parent: parent, Name: name, Spec: raw})
	}
	type obj = map[string]any
	add(load.Mesh, "", "bench", obj{})
	node := func(i int) string { return fmt.Sprintf("node-%04d", i%n) }
	svc := func(i int) string { return fmt.Sprintf("svc-%04d.bench.local", i%n) }
	listener := []obj{{"portMapping": obj{"port": 8080, "protocol": "http"}}}
	for i := 0; i < n; i++ {
		var backends []obj
		for j := 1; j <= 3+i%3; j++ {
			backends = append(backends, obj{"virtualService": obj{"virtualServiceName": svc(i + j)}})
		}
		add(load.VirtualNode, "", node(i), obj{
			"listeners":        listener,
			"serviceDiscovery": obj{"dns": obj{"hostname": node(i) + ".bench.local"}},
			"backends":         backends,
		})
		router := fmt.Sprintf("router-%04d", i)
		add(load.VirtualRouter, "", router, obj{"listeners": listener})
		for r := 0; r < 5; r++ {
			match := obj{"prefix": fmt.Sprintf("/v%d", r)}
			if r == 4 {
				match = obj{"prefix": "/"}
			}
			route := obj{
				"match":  match,
				"action": obj{"weightedTargets": []obj{{"virtualNode": node(i), "weight": 90 - 10*r}, {"virtualNode": node(i + 1), "weight": 10 + 10*r}}},
			}
			if r%2 == 0 {
				route["retryPolicy"] = obj{"maxRetries": 2, "perRetryTimeout": obj{"unit": "ms", "value": 500}, "httpRetryEvents": []string{"server-error", "gateway-error"}}
			}
			spec := obj{"httpRoute": route}
			if r < 4 {
				spec["priority"] = r
			}
			add(load.Route, router, fmt.Sprintf("route-%d", r), spec)
		}
		add(load.VirtualService, "", svc(i), obj{"provider": obj{"virtualRouter": obj{"virtualRouterName": router}}})
	}
	return docs
}

const benchNodes = 1000

var benchOnce = sync.OnceValues(func() ([]load.Doc, *model.Config) {
	docs := benchMesh(benchNodes)
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
	tr := New(cfg, Options{})
	for _, i := range []int{0, 1, 2, 999} {
		r := translateNode(t, tr, vn("bench", fmt.Sprintf("node-%04d", i)), Envoy)
		for _, err := range envoyLint(r) {
			t.Error(err)
		}
		k := 3 + i%3
		// The ingress and AWS clusters, and the k services' targets: nodes
		// i+1 … i+k+1, where i+2 … i+k are reached through two services
		// each, so get a cluster per service: 2 + 1 + 2(k-1) + 1.
		if got := len(r.Types[resource.ClusterType]); got != 2+2*k {
			t.Errorf("node %d: %d clusters %q, want %d", i, got, names(r, resource.ClusterType), 2+2*k)
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
	one := func(b *testing.B, tr *Translator, n appmesh.Resource) {
		r, err := tr.Node(n, Envoy)
		if err != nil || len(r.Types[resource.ListenerType]) != 2 {
			b.Errorf("%s: %v", n.ShortForm(), err)
		}
	}
	b.Run("sequential", func(b *testing.B) {
		run(b, func(tr *Translator) {
			for _, n := range nodes {
				one(b, tr, n)
			}
		})
	})
	b.Run("parallel", func(b *testing.B) {
		workers := runtime.GOMAXPROCS(0)
		run(b, func(tr *Translator) {
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < len(nodes); i += workers {
						one(b, tr, nodes[i])
					}
				}()
			}
			wg.Wait()
		})
	})
}
