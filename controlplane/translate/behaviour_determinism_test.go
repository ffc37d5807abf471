package translate

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshd/meshd/internal/appmesh/load"
)

// nondeterministicVersions are node/type pairs whose Versions may vary
// between translations (none: typed configs are packed deterministically,
// TestVersionsWithJSONAccessLogsAreStable).
var nondeterministicVersions = map[string]resource.Type{}

// translateAll translates every node in both flavors (gateways as Envoys).
func translateAll(t testing.TB, tr *Translator) map[string]*Resources {
	t.Helper()
	out := map[string]*Resources{}
	for _, n := range tr.Nodes() {
		for _, f := range []Flavor{Envoy, GRPC} {
			r, err := tr.Node(n, f)
			if err != nil {
				continue // gateways in the gRPC flavor; TestUnknownNodes
			}
			out[n.ShortForm()+" "+f.String()] = r
		}
	}
	return out
}

// sameResources reports how two translations of a node differ: resource
// names, contents (proto.Equal), warnings and versions. For the type
// skipVersion (a known nondeterminism) versions are not compared, and
// contents are compared with typed configs re-packed deterministically
// (the raw bytes inside them differ from one translation to the next).
func sameResources(t testing.TB, a, b *Resources, skipVersion resource.Type) []string {
	var diffs []string
	for _, typ := range ResourceTypes {
		if typ != skipVersion && a.Versions[typ] != b.Versions[typ] {
			diffs = append(diffs, fmt.Sprintf("%s version %s ≠ %s", shortType(typ), a.Versions[typ], b.Versions[typ]))
		}
		x, y := a.Types[typ], b.Types[typ]
		if len(x) != len(y) {
			diffs = append(diffs, fmt.Sprintf("%s: %d ≠ %d resources", shortType(typ), len(x), len(y)))
			continue
		}
		for i := range x {
			if typ == skipVersion && !proto.Equal(canonical(t, x[i]), canonical(t, y[i])) || typ != skipVersion && !proto.Equal(x[i], y[i]) {
				diffs = append(diffs, fmt.Sprintf("%s %q differs", shortType(typ), nameOf(x[i])))
			}
		}
	}
	if strings.Join(a.Warnings, "\n") != strings.Join(b.Warnings, "\n") {
		diffs = append(diffs, fmt.Sprintf("warnings %q ≠ %q", a.Warnings, b.Warnings))
	}
	return diffs
}

// TestDeterminism: translating a configuration twice, with the same
// Translator and with one built from an independently loaded copy of the
// files, gives equal resources and identical versions (control-plane
// replicas agree; package doc).
func TestDeterminism(t *testing.T) {
	for _, dir := range []string{appsDir, gatewayDir, featuresDir} {
		t.Run(dir, func(t *testing.T) {
			tr := New(scenario(t, dir), Options{})
			first := translateAll(t, tr)
			again := translateAll(t, tr)
			other := translateAll(t, New(scenario(t, dir), Options{}))
			if len(first) == 0 || len(first) != len(other) || len(first) != len(again) {
				t.Fatalf("%d, %d and %d nodes", len(first), len(again), len(other))
			}
			for k, r := range first {
				for what, o := range map[string]*Resources{"same translator": again[k], "other copy": other[k]} {
					if o == nil {
						t.Errorf("%s: missing in the %s", k, what)
						continue
					}
					for _, d := range sameResources(t, r, o, nondeterministicVersions[k]) {
						t.Errorf("%s, %s: %s", k, what, d)
					}
					// The rendering is byte for byte the same too.
					if !bytes.Equal(render(t, r)[strings.IndexByte(string(render(t, r)), '\n'):], render(t, o)[strings.IndexByte(string(render(t, o)), '\n'):]) {
						t.Errorf("%s, %s: renderings differ", k, what)
					}
				}
			}
		})
	}
}

// TestVersionsWithJSONAccessLogsAreStable: a node whose access log has a
// JSON format must get the same versions every time. Its format is a
// google.protobuf.Struct (a map) inside the access logger's typed config,
// and envoy.go mustAny packs typed configs with anypb.New, whose encoding
// of maps is not deterministic; finish then hashes those bytes. The same
// configuration gets different Listener versions from one translation (or
// replica) to the next, so Envoys see spurious updates and replicas
// disagree.
func TestVersionsWithJSONAccessLogsAreStable(t *testing.T) {
	cfg := scenario(t, featuresDir)
	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		r := translateNode(t, New(cfg, Options{}), vn("features", "api"), Envoy)
		seen[r.Versions[resource.ListenerType]]++
	}
	if len(seen) != 1 {
		t.Errorf("40 translations of the same configuration gave %d Listener versions: %v", len(seen), seen)
	}
}

// TestConcurrentTranslation: a Translator is safe for concurrent use (its
// doc), and concurrent translations equal sequential ones. Run with -race.
func TestConcurrentTranslation(t *testing.T) {
	for _, dir := range []string{gatewayDir, featuresDir} {
		cfg := scenario(t, dir)
		want := translateAll(t, New(cfg, Options{}))
		tr := New(cfg, Options{})
		nodes := tr.Nodes()
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := 0; round < 3; round++ {
					for i := range nodes {
						n := nodes[(i+w)%len(nodes)]
						for _, f := range []Flavor{Envoy, GRPC} {
							r, err := tr.Node(n, f)
							if err != nil {
								continue
							}
							k := n.ShortForm() + " " + f.String()
							diffs := sameResources(t, want[k], r, nondeterministicVersions[k])
							if len(diffs) > 0 {
								mu.Lock()
								t.Errorf("%s, concurrent: %v", k, diffs)
								mu.Unlock()
							}
						}
					}
				}
			}()
		}
		wg.Wait()
	}
}

// edit returns dir's files with old replaced by new in file name (once).
func edit(t *testing.T, files []load.File, name, old, new string) []load.File {
	t.Helper()
	out := make([]load.File, len(files))
	copy(out, files)
	for i, f := range out {
		if f.Name == name {
			if strings.Count(string(f.Data), old) != 1 {
				t.Fatalf("%s: %q occurs %d times", name, old, strings.Count(string(f.Data), old))
			}
			out[i].Data = []byte(strings.Replace(string(f.Data), old, new, 1))
			return out
		}
	}
	t.Fatalf("no file %s", name)
	return nil
}

// TestRouteChangeVersions: changing one route changes only the route
// configuration version of the nodes that reach it, in both flavors, and
// nothing at all for the nodes that do not.
func TestRouteChangeVersions(t *testing.T) {
	cases := []struct {
		dir, file, old, new string
		reach               map[string]bool // nodes whose RDS must change
	}{
		{appsDir, "route-serviceB.json", `"weight": 75`, `"weight": 50`,
			map[string]bool{"mesh/apps/virtualNode/serviceA envoy": true, "mesh/apps/virtualNode/serviceA grpc": true}},
		{featuresDir, "api.yaml", "{virtualNode: api, weight: 75, port: 8080}", "{virtualNode: api, weight: 60, port: 8080}",
			map[string]bool{"mesh/features/virtualNode/frontend envoy": true, "mesh/features/virtualNode/frontend grpc": true,
				"mesh/features/virtualNode/batch envoy": true, "mesh/features/virtualNode/batch grpc": true}},
		// A gateway route: only that gateway's ingress routes.
		{gatewayDir, "ingress-routes.yaml", "match: {prefix: /chapter}", "match: {prefix: /chapters}",
			map[string]bool{"mesh/gw/virtualGateway/ingress envoy": true}},
	}
	for _, c := range cases {
		files := readDir(t, c.dir)
		before := translateAll(t, New(buildFiles(t, files...), Options{}))
		after := translateAll(t, New(buildFiles(t, edit(t, files, c.file, c.old, c.new)...), Options{}))
		for k, b := range before {
			a := after[k]
			for _, typ := range ResourceTypes {
				if typ == nondeterministicVersions[k] {
					continue
				}
				changed := a.Versions[typ] != b.Versions[typ]
				want := c.reach[k] && typ == resource.RouteType
				if changed != want {
					t.Errorf("%s: after editing %s, %s version changed: %v, want %v", k, c.file, shortType(typ), changed, want)
				}
			}
		}
	}
}

// TestSharedChangeVersions: a change that reaches only shared messages
// (network filters, egress clusters), which are hashed once per translator
// and enter listener and cluster versions by their hashes, changes exactly
// the versions of the nodes served them, and nothing else.
func TestSharedChangeVersions(t *testing.T) {
	envoyAndGRPC := func(node string) []string {
		return []string{"mesh/features/virtualNode/" + node + " envoy", "mesh/features/virtualNode/" + node + " grpc"}
	}
	cases := []struct {
		file, old, new string
		typ            resource.Type
		reach          []string // nodes whose version of typ must change
	}{
		// An access log format: only inside the network filters (HTTP
		// connection manager, TCP proxy) of api's listeners.
		{"api.yaml", `{key: code, value: "%RESPONSE_CODE%"}`, `{key: code, value: "%RESPONSE_FLAGS%"}`,
			resource.ListenerType, []string{"mesh/features/virtualNode/api envoy"}},
		// An access log path: frontend's shared egress filters.
		{"frontend.yaml", "path: /dev/stdout", "path: /dev/stderr",
			resource.ListenerType, []string{"mesh/features/virtualNode/frontend envoy"}},
		// A target listener's outlier detection: only the shared egress
		// clusters of api's clients.
		{"api.yaml", "maxEjectionPercent: 50", "maxEjectionPercent: 40",
			resource.ClusterType, append(envoyAndGRPC("frontend"), envoyAndGRPC("batch")...)},
		// A target's DNS name: the shared clusters' endpoints (and SANs).
		{"shared.yaml", "dns: {hostname: shared.features.local}", "dns: {hostname: shared2.features.local}",
			resource.ClusterType, envoyAndGRPC("frontend")},
	}
	for _, c := range cases {
		files := readDir(t, featuresDir)
		before := translateAll(t, New(buildFiles(t, files...), Options{}))
		after := translateAll(t, New(buildFiles(t, edit(t, files, c.file, c.old, c.new)...), Options{}))
		reach := map[string]bool{}
		for _, k := range c.reach {
			reach[k] = true
		}
		for k, b := range before {
			a := after[k]
			for _, typ := range ResourceTypes {
				changed := a.Versions[typ] != b.Versions[typ]
				want := reach[k] && typ == c.typ
				if changed != want {
					t.Errorf("%s: after editing %s (%s), %s version changed: %v, want %v", k, c.file, c.new, shortType(typ), changed, want)
				}
			}
		}
	}
}
