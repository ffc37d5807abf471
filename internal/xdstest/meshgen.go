package xdstest

import (
	"fmt"
	"sort"
	"strings"

	"github.com/meshd/meshd/internal/appmesh/load"
)

// Generated is a synthetic mesh for scale tests and benchmarks.
type Generated struct {
	// Files are App Mesh CLI-input documents (multi-document YAML), by
	// file name.
	Files map[string][]byte
	// Backends[i] lists the virtual services node i calls.
	Backends [][]int
}

// LoadFiles returns the files as load reads them, in name order.
func (g Generated) LoadFiles() []load.File {
	files := make([]load.File, 0, len(g.Files))
	for name, data := range g.Files {
		files = append(files, load.File{Name: name, Data: data})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files
}

// NodeID is the node id of generated virtual node i.
func NodeID(i int) string { return fmt.Sprintf("mesh/bench/virtualNode/node-%d", i) }

// ServiceName is the name of generated virtual service j.
func ServiceName(j int) string { return fmt.Sprintf("svc-%d.bench.local", j) }

// RouteFile is the file holding router j's routes.
func RouteFile(j int) string { return fmt.Sprintf("routes-%04d.yaml", j) }

// GenerateMesh builds mesh "bench": n virtual nodes (one http listener on
// 8080, DNS discovery, 3–5 backends each, one of them among services
// 0–9), n ≥ 11 virtual services each provided
// by its own virtual router, and routesPerRouter routes per router, each
// splitting traffic between two nodes. Router j's routes are in their own
// file (RouteFile) so a test can change one.
func GenerateMesh(n, routesPerRouter int) Generated {
	g := Generated{Files: map[string][]byte{}, Backends: make([][]int, n)}
	var nodes, services strings.Builder
	for i := range n {
		fmt.Fprintf(&nodes, "---\nmeshName: bench\nvirtualNodeName: node-%d\nspec:\n  listeners:\n  - portMapping: {port: 8080, protocol: http}\n  serviceDiscovery:\n    dns: {hostname: node-%d.bench.local}\n  backends:\n", i, i)
		k := 3 + i%3
		for b := range k {
			// The first backend is one of 10 popular services, so a change
			// to router 0 reaches a tenth of the nodes.
			j := i % 10
			if b > 0 {
				j = 10 + (i*7+b*13)%(n-10)
			}
			g.Backends[i] = append(g.Backends[i], j)
			fmt.Fprintf(&nodes, "  - virtualService: {virtualServiceName: %s}\n", ServiceName(j))
		}
		fmt.Fprintf(&services, "---\nmeshName: bench\nvirtualServiceName: %s\nspec:\n  provider:\n    virtualRouter: {virtualRouterName: router-%d}\n---\nmeshName: bench\nvirtualRouterName: router-%d\nspec:\n  listeners:\n  - portMapping: {port: 8080, protocol: http}\n", ServiceName(i), i, i)
		g.Files[RouteFile(i)] = RouteDocs(i, n, routesPerRouter, 50)
	}
	g.Files["mesh.yaml"] = []byte("meshName: bench\nspec: {}\n")
	g.Files["nodes.yaml"] = []byte(nodes.String())
	g.Files["services.yaml"] = []byte(services.String())
	return g
}

// RouteDocs renders router j's routes; weight is the first target's share.
func RouteDocs(j, n, routes, weight int) []byte {
	var b strings.Builder
	for r := range routes {
		prio := r
		fmt.Fprintf(&b, "---\nmeshName: bench\nvirtualRouterName: router-%d\nrouteName: route-%d\nspec:\n  priority: %d\n  httpRoute:\n    match:\n      prefix: /r%d\n      headers:\n      - name: x-version\n        match: {exact: v%d}\n    action:\n      weightedTargets:\n      - {virtualNode: node-%d, weight: %d}\n      - {virtualNode: node-%d, weight: %d}\n    retryPolicy:\n      maxRetries: 2\n      perRetryTimeout: {unit: ms, value: 500}\n      httpRetryEvents: [server-error, gateway-error]\n",
			j, r, prio, r, r, (j+r)%n, weight, (j+r+1)%n, 100-weight)
	}
	return []byte(b.String())
}
