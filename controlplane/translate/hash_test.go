package translate

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshd/meshd/internal/appmesh/model"
)

// The hashes behind versions encode some fields apart (memo.hash): the
// metadata of clusters and routes, the virtual hosts of route
// configurations, the network filters of listeners. These tests check
// that every such field still counts, in its place, that hashing leaves
// the message as it was, and that equal content hashes equally.

func newTestMemo() *memo {
	return &New(&model.Config{}, Options{}).memo
}

// hashOf hashes a clone of m (so tests can reuse m) and checks that
// hashing left the clone unchanged.
func hashOf(t *testing.T, mm *memo, m proto.Message) [32]byte {
	t.Helper()
	c := proto.Clone(m)
	s, err := mm.hash(c)
	if err != nil {
		t.Fatalf("hash %T: %v", m, err)
	}
	if !proto.Equal(c, m) {
		t.Fatalf("hashing modified the %T", m)
	}
	return s
}

func testCluster(kv ...string) *clusterv3.Cluster {
	c := staticCluster("cds_ingress_m_n_http_8080", "127.0.0.1", 8080)
	if kv != nil {
		c.Metadata = metadata(kv...)
	}
	return c
}

func TestHashClusterMetadata(t *testing.T) {
	mm := newTestMemo()
	base := hashOf(t, mm, testCluster("Mesh", "m", "VirtualNode", "n", "Port", "8080"))
	// Map order does not matter: hash again and again.
	for range 20 {
		if hashOf(t, mm, testCluster("Port", "8080", "VirtualNode", "n", "Mesh", "m")) != base {
			t.Fatal("equal clusters hash differently")
		}
	}
	differ := map[string]*clusterv3.Cluster{
		"a value":           testCluster("Mesh", "m", "VirtualNode", "n", "Port", "8081"),
		"a key":             testCluster("Mesh", "m", "VirtualNod", "n", "Port", "8080"),
		"an extra key":      testCluster("Mesh", "m", "VirtualNode", "n", "Port", "8080", "Route", "r"),
		"values swapped":    testCluster("Mesh", "n", "VirtualNode", "m", "Port", "8080"),
		"key-value shifted": testCluster("Mesh", "mVirtualNode", "n", "", "Port", "8080"),
		"no metadata":       testCluster(),
		"another name": func() *clusterv3.Cluster {
			c := testCluster("Mesh", "m", "VirtualNode", "n", "Port", "8080")
			c.Name += "x"
			return c
		}(),
		"a number": func() *clusterv3.Cluster {
			c := testCluster("Mesh", "m", "VirtualNode", "n")
			c.Metadata.FilterMetadata[MetadataKey].Fields["Port"] = structpb.NewNumberValue(8080)
			return c
		}(),
		"another namespace": func() *clusterv3.Cluster {
			c := testCluster("Mesh", "m", "VirtualNode", "n", "Port", "8080")
			c.Metadata.FilterMetadata["other"] = c.Metadata.FilterMetadata[MetadataKey]
			delete(c.Metadata.FilterMetadata, MetadataKey)
			return c
		}(),
	}
	seen := map[[32]byte]string{base: "base"}
	for what, c := range differ {
		s := hashOf(t, mm, c)
		if prev, dup := seen[s]; dup {
			t.Errorf("%s: same hash as %s", what, prev)
		}
		seen[s] = what
	}
	// A value that cannot be encoded fails as encoding the cluster does.
	bad := testCluster("Mesh", "m\xff")
	if _, err := marshal.Marshal(bad); err == nil {
		t.Fatal("invalid UTF-8 encodes")
	}
	if _, err := mm.hash(bad); err == nil {
		t.Error("hashing a cluster with invalid UTF-8 metadata: no error")
	}
}

func testVirtualHost(routeNames ...string) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: "vs", Domains: []string{"vs", "vs:8080"}}
	for _, n := range routeNames {
		vh.Routes = append(vh.Routes, &routev3.Route{
			Name:     "r",
			Match:    &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Metadata: metadata("Mesh", "m", "Route", n),
		})
	}
	return vh
}

func TestHashVirtualHostRouteMetadata(t *testing.T) {
	mm := newTestMemo()
	base := hashOf(t, mm, testVirtualHost("a", "b"))
	if hashOf(t, mm, testVirtualHost("a", "b")) != base {
		t.Fatal("equal virtual hosts hash differently")
	}
	seen := map[[32]byte]string{base: "base"}
	for what, vh := range map[string]*routev3.VirtualHost{
		"second route's metadata": testVirtualHost("a", "c"),
		"swapped":                 testVirtualHost("b", "a"),
		"one route fewer":         testVirtualHost("a"),
		"one route more":          testVirtualHost("a", "b", "c"),
		"a route without metadata": func() *routev3.VirtualHost {
			vh := testVirtualHost("a", "b")
			vh.Routes[1].Metadata = nil
			return vh
		}(),
	} {
		s := hashOf(t, mm, vh)
		if prev, dup := seen[s]; dup {
			t.Errorf("%s: same hash as %s", what, prev)
		}
		seen[s] = what
	}
	// A route listed twice keeps its metadata.
	vh := testVirtualHost("a")
	vh.Routes = append(vh.Routes, vh.Routes[0])
	md := vh.Routes[0].Metadata
	if _, err := mm.hash(vh); err != nil {
		t.Fatal(err)
	}
	if vh.Routes[0].Metadata != md {
		t.Error("a route listed twice lost its metadata")
	}

	// A route configuration counts its virtual hosts in order.
	rc := func(vhs ...*routev3.VirtualHost) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: "rds_egress_http_8080", VirtualHosts: vhs}
	}
	x, y := testVirtualHost("a"), testVirtualHost("b")
	seen = map[[32]byte]string{}
	for what, r := range map[string]*routev3.RouteConfiguration{
		"x, y": rc(x, y), "y, x": rc(y, x), "x": rc(x), "none": rc(), "x, x": rc(x, x),
	} {
		s := hashOf(t, mm, r)
		if prev, dup := seen[s]; dup {
			t.Errorf("route configuration %s: same hash as %s", what, prev)
		}
		seen[s] = what
	}
}

func testFilter(cluster string) *listenerv3.Filter {
	return tcpProxyFilter("egress", []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: cluster, Weight: 1}}, nil, nil)
}

func testListener(chains [][]*listenerv3.Filter, def []*listenerv3.Filter) *listenerv3.Listener {
	ln := &listenerv3.Listener{Name: "lds_egress_0.0.0.0_15001", Address: socketAddress("0.0.0.0", EgressPort)}
	for i, fs := range chains {
		ln.FilterChains = append(ln.FilterChains, &listenerv3.FilterChain{Name: "chain", FilterChainMatch: portMatch(int64(8080 + i)), Filters: fs})
	}
	if def != nil {
		ln.DefaultFilterChain = &listenerv3.FilterChain{Name: "default", Filters: def}
	}
	return ln
}

func TestHashListenerFilters(t *testing.T) {
	mm := newTestMemo()
	a, b := testFilter("a"), testFilter("b")
	F := func(fs ...*listenerv3.Filter) []*listenerv3.Filter { return append([]*listenerv3.Filter{}, fs...) }
	base := hashOf(t, mm, testListener([][]*listenerv3.Filter{F(a), F(b)}, F(a)))
	if hashOf(t, mm, testListener([][]*listenerv3.Filter{F(testFilter("a")), F(testFilter("b"))}, F(testFilter("a")))) != base {
		t.Fatal("equal listeners hash differently")
	}
	seen := map[[32]byte]string{base: "base"}
	for what, ln := range map[string]*listenerv3.Listener{
		"a filter's content":         testListener([][]*listenerv3.Filter{F(a), F(testFilter("c"))}, F(a)),
		"filters swapped":            testListener([][]*listenerv3.Filter{F(b), F(a)}, F(a)),
		"both in the first chain":    testListener([][]*listenerv3.Filter{F(a, b), F()}, F(a)),
		"the default chain's filter": testListener([][]*listenerv3.Filter{F(a), F(b)}, F(b)),
		"an empty default chain":     testListener([][]*listenerv3.Filter{F(a), F(b)}, F()),
		"no default chain":           testListener([][]*listenerv3.Filter{F(a), F(b)}, nil),
		"the default as a chain":     testListener([][]*listenerv3.Filter{F(a), F(b), F(a)}, nil),
	} {
		s := hashOf(t, mm, ln)
		if prev, dup := seen[s]; dup {
			t.Errorf("%s: same hash as %s", what, prev)
		}
		seen[s] = what
	}
}

// TestHashSharedFilter: a listener holding a shared filter hashes as one
// holding an equal private filter, and changes with the shared filter's
// content.
func TestHashSharedFilter(t *testing.T) {
	listenerWith := func(cluster string) ([32]byte, *Translator) {
		tr := New(&model.Config{}, Options{})
		b := &builder{t: tr, logKey: "log"}
		f := b.sharedFilter("tcp|egress", func() *listenerv3.Filter { return testFilter(cluster) })
		if again := b.sharedFilter("tcp|egress", func() *listenerv3.Filter { t.Fatal("built twice"); return nil }); again != f {
			t.Fatal("the filter is not shared")
		}
		ln := testListener([][]*listenerv3.Filter{{f}}, nil)
		s, err := tr.memo.hash(ln)
		if err != nil {
			t.Fatal(err)
		}
		if ln.FilterChains[0].Filters[0] != f {
			t.Fatal("hashing lost the filter")
		}
		return s, tr
	}
	shared, _ := listenerWith("a")
	if private := hashOf(t, newTestMemo(), testListener([][]*listenerv3.Filter{{testFilter("a")}}, nil)); private != shared {
		t.Error("a shared filter hashes differently from an equal private one")
	}
	if other, _ := listenerWith("b"); other == shared {
		t.Error("changing the shared filter does not change the listener's hash")
	}
}

// TestHashSharedCluster: a shared cluster's digest is its content's hash.
func TestHashSharedCluster(t *testing.T) {
	digestOf := func(c *clusterv3.Cluster) [32]byte {
		tr := New(&model.Config{}, Options{})
		b := &builder{t: tr}
		b.shared([]byte("cluster"), func(sub *builder) { sub.add(iCluster, proto.Clone(c)) })
		it := b.res[iCluster][0]
		if it.d == nil || it.d.err != nil || it.name != c.Name {
			t.Fatalf("shared cluster item %+v", it)
		}
		return it.d.s
	}
	c := testCluster("Mesh", "m")
	if digestOf(c) != hashOf(t, newTestMemo(), c) {
		t.Error("a shared cluster's digest differs from its hash")
	}
	c2 := testCluster("Mesh", "m")
	c2.CircuitBreakers = circuitBreakers(nil, nil, new(int64))
	if digestOf(c2) == digestOf(c) {
		t.Error("changing a shared cluster does not change its digest")
	}
}
