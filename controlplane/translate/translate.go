// Package translate turns a validated App Mesh configuration into the Envoy
// resources (listeners, routes, clusters, endpoints) one node is served,
// with App Mesh's names, structure and defaults:
//
//   - lds_ingress_0.0.0.0_15000 and lds_egress_0.0.0.0_15001 for a virtual
//     node's sidecar, lds_ingress_0.0.0.0_<port> for a virtual gateway;
//   - rds_ingress_<proto>_<port> and rds_egress_<proto>_<port>, one virtual
//     host per virtual service;
//   - cds_ingress_<mesh>_<node>_<proto>_<port> for the local application,
//     cds_egress_<mesh>_<node>_<proto>_<port> per target virtual node,
//     cds_ingress_<mesh>_<gateway>_self_redirect_<proto>_15001 for gateways,
//     cds_egress_<mesh>_amazonaws and cds_egress_<mesh>_mesh-allow-all;
//   - App Mesh's default retry policy and circuit breakers.
//
// Two flavors exist. Envoy sidecars and gateways get the shape above.
// Proxyless gRPC clients (grpc-go's xDS resolver) get one API listener per
// backend virtual service, named as the client dials it
// (xds:///serviceb.apps.local), with only what gRPC accepts: EDS or
// LOGICAL_DNS clusters, gRPC retry codes, certificate-provider TLS.
//
// Translation is deterministic: the same configuration gives byte-identical
// resources and versions, so control-plane replicas agree.
package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// Flavor is the kind of xDS client a node is.
type Flavor int

// The flavors.
const (
	// Envoy is an Envoy sidecar or gateway.
	Envoy Flavor = iota
	// GRPC is a proxyless gRPC client (grpc-go, grpc-java, … xDS resolver).
	GRPC
)

func (f Flavor) String() string {
	if f == GRPC {
		return "grpc"
	}
	return "envoy"
}

// Well-known ports and names.
const (
	IngressPort = 15000
	EgressPort  = 15001
	// SDSCluster is the bootstrap's static cluster for the local SDS socket.
	SDSCluster = "static_cluster_sds_unix_socket"
	// MetadataKey is the filter-metadata namespace of cluster and route
	// metadata naming the mesh resources a resource serves; the metrics
	// extension reads it from /config_dump.
	MetadataKey = "aws.appmesh"
	// CertificateProvider is the certificate-provider instance proxyless
	// gRPC clients must define in their bootstrap for mesh TLS.
	CertificateProvider = "meshd"
	// VirtualServiceHeader carries the target virtual service when a
	// gateway route keeps the original Host.
	VirtualServiceHeader = "x-app-mesh-virtual-service"
)

// Options tune translation.
type Options struct {
	// NoDefaultRetryPolicy turns off App Mesh's default retry policy for
	// routes without one (max 2 retries on 503, connect failure, refused
	// stream, reset and gRPC UNAVAILABLE).
	NoDefaultRetryPolicy bool
}

// Resources is everything one node is served, by type URL, each list sorted
// by name, with a version per type (a hash of that type's content). The
// messages may be shared with other nodes' Resources: never modify them.
type Resources struct {
	Node     appmesh.Resource
	Flavor   Flavor
	Types    map[resource.Type][]types.Resource
	Versions map[resource.Type]string
	// Warnings are things the translation could not represent exactly.
	Warnings []string
}

// ResourceTypes are the types a node is served, in ADS push order.
var ResourceTypes = []resource.Type{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

// ErrUnknownNode is returned for a node whose mesh or resource is not in the
// configuration.
var ErrUnknownNode = errors.New("unknown mesh endpoint")

// Translator translates one configuration. It is safe for concurrent use.
type Translator struct {
	cfg  *model.Config
	opt  Options
	memo memo
}

// New returns a Translator for cfg.
func New(cfg *model.Config, opt Options) *Translator {
	return &Translator{cfg: cfg, opt: opt, memo: memo{entries: map[string]*memoEntry{}, sums: map[proto.Message]*digest{}, services: map[*model.VirtualService]*service{}}}
}

// Nodes lists every virtual node and virtual gateway in the configuration.
func (t *Translator) Nodes() []appmesh.Resource {
	var out []appmesh.Resource
	for _, mn := range model.Names(t.cfg.Meshes) {
		m := t.cfg.Meshes[mn]
		for _, n := range model.Names(m.VirtualNodes) {
			out = append(out, appmesh.Resource{Mesh: mn, Kind: appmesh.VirtualNode, Name: n})
		}
		for _, n := range model.Names(m.VirtualGateways) {
			out = append(out, appmesh.Resource{Mesh: mn, Kind: appmesh.VirtualGateway, Name: n})
		}
	}
	return out
}

// Node translates the configuration for one node.
func (t *Translator) Node(node appmesh.Resource, flavor Flavor) (*Resources, error) {
	m := t.cfg.Meshes[node.Mesh]
	if m == nil {
		return nil, fmt.Errorf("%w: mesh %q is not defined", ErrUnknownNode, node.Mesh)
	}
	b := &builder{t: t, m: m, node: node, flavor: flavor}
	switch node.Kind {
	case appmesh.VirtualNode:
		vn := m.VirtualNodes[node.Name]
		if vn == nil {
			return nil, fmt.Errorf("%w: virtual node %q is not defined in mesh %q", ErrUnknownNode, node.Name, node.Mesh)
		}
		if flavor == GRPC {
			b.proxyless(vn)
		} else {
			b.sidecar(vn)
		}
	case appmesh.VirtualGateway:
		vg := m.VirtualGateways[node.Name]
		if vg == nil {
			return nil, fmt.Errorf("%w: virtual gateway %q is not defined in mesh %q", ErrUnknownNode, node.Name, node.Mesh)
		}
		if flavor == GRPC {
			return nil, fmt.Errorf("%w: virtual gateway %q is an Envoy; a proxyless gRPC client must present a virtual node", ErrUnknownNode, node.Name)
		}
		b.gateway(vg)
	default:
		return nil, fmt.Errorf("%w: %q is neither a virtual node nor a virtual gateway", ErrUnknownNode, node.Kind)
	}
	return b.finish()
}

// builder accumulates one node's resources.
type builder struct {
	t        *Translator
	m        *model.Mesh
	node     appmesh.Resource
	flavor   Flavor
	res      [4][]item // clusters, endpoints, listeners, routes
	warnings []string
	// logKey identifies the node's access log, for sharing filters.
	logKey string
	// key is scratch space for memo keys.
	key []byte
}

// item is a resource, its name and, for a shared one, its digest.
type item struct {
	r    types.Resource
	name string
	d    *digest
}

const (
	iCluster = iota
	iEndpoint
	iListener
	iRoute
)

func (b *builder) add(i int, r types.Resource) {
	b.res[i] = append(b.res[i], item{r: r, name: nameOf(r)})
}

func (b *builder) warn(format string, args ...any) {
	b.warnings = append(b.warnings, fmt.Sprintf(format, args...))
}

var marshal = proto.MarshalOptions{Deterministic: true}

func (b *builder) finish() (*Resources, error) {
	out := &Resources{Node: b.node, Flavor: b.flavor, Types: make(map[resource.Type][]types.Resource, len(ResourceTypes)), Versions: make(map[resource.Type]string, len(ResourceTypes)), Warnings: b.warnings}
	var sums []byte // the resources' digests, for a type's version
	for i, typ := range ResourceTypes {
		items := b.res[i]
		slices.SortStableFunc(items, func(x, y item) int { return strings.Compare(x.name, y.name) })
		sums = slices.Grow(sums[:0], len(items)*sha256.Size)
		var rs []types.Resource
		if len(items) > 0 {
			rs = make([]types.Resource, len(items))
		}
		for j, it := range items {
			rs[j] = it.r
			var s [32]byte
			var err error
			if it.d != nil {
				s, err = it.d.s, it.d.err
			} else {
				s, err = b.t.memo.hash(it.r) // private: not published yet
			}
			if err != nil {
				return nil, fmt.Errorf("marshal %s %q: %w", typ, it.name, err)
			}
			sums = append(sums, s[:]...)
		}
		out.Types[typ] = rs
		sum := sha256.Sum256(sums)
		out.Versions[typ] = hex.EncodeToString(sum[:8])
	}
	return out, nil
}

// Version is one string for all of a node's types.
func (r *Resources) Version() string {
	var parts []string
	for _, typ := range ResourceTypes {
		parts = append(parts, r.Versions[typ])
	}
	return strings.Join(parts, ".")
}

func nameOf(r types.Resource) string {
	if n, ok := r.(interface{ GetName() string }); ok {
		return n.GetName()
	}
	if n, ok := r.(interface{ GetClusterName() string }); ok {
		return n.GetClusterName()
	}
	return ""
}

// Names used by App Mesh.

func listenerName(dir string, port int64) string {
	return "lds_" + dir + "_0.0.0.0_" + strconv.FormatInt(port, 10)
}
func routeConfigName(dir, proto string, port int64) string {
	return "rds_" + dir + "_" + proto + "_" + strconv.FormatInt(port, 10)
}
func clusterName(dir, mesh, node, proto string, port int64) string {
	return "cds_" + dir + "_" + mesh + "_" + node + "_" + proto + "_" + strconv.FormatInt(port, 10)
}

// sanitize makes a virtual service name usable inside a cluster name: stat
// names split on dots, so only letters, digits, '-' and '_' are kept.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, s)
}

// All translates nodes concurrently (GOMAXPROCS workers), sharing this
// translator's memo; out[i] and errs[i] are node i's.
func (t *Translator) All(nodes []appmesh.Resource, flavor Flavor) (out []*Resources, errs []error) {
	out, errs = make([]*Resources, len(nodes)), make([]error, len(nodes))
	ForEach(len(nodes), func(i int) { out[i], errs[i] = t.Node(nodes[i], flavor) })
	return out, errs
}

// ForEach calls fn(0) … fn(n-1) on up to GOMAXPROCS goroutines.
func ForEach(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}
