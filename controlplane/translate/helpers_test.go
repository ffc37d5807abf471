package translate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/tracing"
)

// Scenario directories.
const (
	appsDir     = "../../examples/apps"
	gatewayDir  = "testdata/gateway"
	featuresDir = "testdata/features"
)

// specProblems runs appmesh.Validate on every document. model.Build runs it
// too; tests check it separately so that a configuration the translator is
// given is known to be valid App Mesh whatever model.Build does.
func specProblems(docs []load.Doc) []error {
	var out []error
	for _, d := range docs {
		kind := appmesh.ResourceKind(d.Kind)
		spec, err := appmesh.DecodeSpec(kind, d.Spec)
		if err != nil {
			out = append(out, fmt.Errorf("%s: %w", d.Loc, err))
			continue
		}
		for _, e := range appmesh.Validate(kind, spec) {
			out = append(out, fmt.Errorf("%s: %w", d.Loc, e))
		}
	}
	return out
}

// buildFiles loads, validates and indexes in-memory files, failing the test
// on any problem.
func buildFiles(t testing.TB, files ...load.File) *model.Config {
	t.Helper()
	res := load.Files(files, load.Options{})
	if len(res.Problems) > 0 {
		t.Fatalf("load: %v", res.Problems)
	}
	if errs := specProblems(res.Docs); len(errs) > 0 {
		t.Fatalf("invalid specs: %v", errs)
	}
	cfg, problems, _ := model.Build(res.Docs)
	if len(problems) > 0 {
		t.Fatalf("build: %v", problems)
	}
	return cfg
}

// buildYAML builds one multi-document YAML configuration.
func buildYAML(t testing.TB, docs ...string) *model.Config {
	t.Helper()
	return buildFiles(t, load.File{Name: "inline.yaml", Data: []byte(strings.Join(docs, "\n---\n"))})
}

// readDir returns the configuration files of a scenario directory.
func readDir(t testing.TB, dir string) []load.File {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []load.File
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".json", ".yaml", ".yml":
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, load.File{Name: e.Name(), Data: data})
		}
	}
	if len(out) == 0 {
		t.Fatalf("no configuration files in %s", dir)
	}
	return out
}

// scenario builds a scenario directory, with its specs validated too.
func scenario(t testing.TB, dir string) *model.Config {
	t.Helper()
	return buildFiles(t, readDir(t, dir)...)
}

func vn(mesh, name string) appmesh.Resource {
	return appmesh.Resource{Mesh: mesh, Kind: appmesh.VirtualNode, Name: name}
}

func vg(mesh, name string) appmesh.Resource {
	return appmesh.Resource{Mesh: mesh, Kind: appmesh.VirtualGateway, Name: name}
}

// translateNode translates one node and checks every resource with
// tracing.Validate.
func translateNode(t testing.TB, tr *Translator, node appmesh.Resource, f Flavor) *Resources {
	t.Helper()
	r, err := tr.Node(node, f)
	if err != nil {
		t.Fatalf("translate %s (%s): %v", node.ShortForm(), f, err)
	}
	for _, err := range validateResources(r) {
		t.Errorf("%s (%s): %v", node.ShortForm(), f, err)
	}
	return r
}

// validateResources runs tracing.Validate (protoc-gen-validate, recursively
// through typed configs) on every resource.
func validateResources(r *Resources) []error {
	var out []error
	for _, typ := range ResourceTypes {
		for _, res := range r.Types[typ] {
			if err := tracing.Validate(res); err != nil {
				out = append(out, fmt.Errorf("%s %q: %w", shortType(typ), nameOf(res), err))
			}
		}
	}
	return out
}

func shortType(typ resource.Type) string { return typ[strings.LastIndex(typ, ".")+1:] }

// names lists the names of a node's resources of one type, in order.
func names(r *Resources, typ resource.Type) []string {
	var out []string
	for _, res := range r.Types[typ] {
		out = append(out, nameOf(res))
	}
	return out
}

func findCluster(t testing.TB, r *Resources, name string) *clusterv3.Cluster {
	t.Helper()
	for _, res := range r.Types[resource.ClusterType] {
		if c := res.(*clusterv3.Cluster); c.Name == name {
			return c
		}
	}
	t.Fatalf("%s (%s): no cluster %q; clusters: %v", r.Node.ShortForm(), r.Flavor, name, names(r, resource.ClusterType))
	return nil
}

func findListener(t testing.TB, r *Resources, name string) *listenerv3.Listener {
	t.Helper()
	for _, res := range r.Types[resource.ListenerType] {
		if l := res.(*listenerv3.Listener); l.Name == name {
			return l
		}
	}
	t.Fatalf("%s (%s): no listener %q; listeners: %v", r.Node.ShortForm(), r.Flavor, name, names(r, resource.ListenerType))
	return nil
}

func findRouteConfig(t testing.TB, r *Resources, name string) *routev3.RouteConfiguration {
	t.Helper()
	for _, res := range r.Types[resource.RouteType] {
		if rc := res.(*routev3.RouteConfiguration); rc.Name == name {
			return rc
		}
	}
	t.Fatalf("%s (%s): no route configuration %q; route configurations: %v", r.Node.ShortForm(), r.Flavor, name, names(r, resource.RouteType))
	return nil
}

func findVirtualHost(t testing.TB, rc *routev3.RouteConfiguration, name string) *routev3.VirtualHost {
	t.Helper()
	for _, vh := range rc.VirtualHosts {
		if vh.Name == name {
			return vh
		}
	}
	t.Fatalf("route configuration %s has no virtual host %q", rc.Name, name)
	return nil
}

func findRoute(t testing.TB, vh *routev3.VirtualHost, name string) *routev3.Route {
	t.Helper()
	for _, r := range vh.Routes {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("virtual host %s has no route %q", vh.Name, name)
	return nil
}

func findChain(t testing.TB, l *listenerv3.Listener, name string) *listenerv3.FilterChain {
	t.Helper()
	for _, fc := range l.FilterChains {
		if fc.Name == name {
			return fc
		}
	}
	t.Fatalf("listener %s has no filter chain %q", l.Name, name)
	return nil
}

func chainNames(l *listenerv3.Listener) []string {
	var out []string
	for _, fc := range l.FilterChains {
		out = append(out, fc.Name)
	}
	return out
}

func routeNames(vh *routev3.VirtualHost) []string {
	var out []string
	for _, r := range vh.Routes {
		out = append(out, r.Name)
	}
	return out
}

// unpack unpacks a typed config.
func unpack[M proto.Message](t testing.TB, a *anypb.Any, m M) M {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("unpack %s as %T: %v", a.GetTypeUrl(), m, err)
	}
	return m
}

func hcmOf(t testing.TB, fc *listenerv3.FilterChain) *hcmv3.HttpConnectionManager {
	t.Helper()
	if len(fc.Filters) != 1 || fc.Filters[0].Name != "envoy.filters.network.http_connection_manager" {
		t.Fatalf("filter chain %s: want one HTTP connection manager, got %v", fc.Name, fc.Filters)
	}
	return unpack(t, fc.Filters[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
}

func tcpProxyOf(t testing.TB, fc *listenerv3.FilterChain) *tcpv3.TcpProxy {
	t.Helper()
	if len(fc.Filters) != 1 || fc.Filters[0].Name != "envoy.filters.network.tcp_proxy" {
		t.Fatalf("filter chain %s: want one TCP proxy, got %v", fc.Name, fc.Filters)
	}
	return unpack(t, fc.Filters[0].GetTypedConfig(), &tcpv3.TcpProxy{})
}

func upstreamTLS(t testing.TB, c *clusterv3.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	ts := c.GetTransportSocket()
	if ts == nil {
		return nil
	}
	if ts.Name != "envoy.transport_sockets.tls" {
		t.Fatalf("cluster %s: transport socket %q", c.Name, ts.Name)
	}
	return unpack(t, ts.GetTypedConfig(), &tlsv3.UpstreamTlsContext{})
}

func downstreamTLS(t testing.TB, fc *listenerv3.FilterChain) *tlsv3.DownstreamTlsContext {
	t.Helper()
	ts := fc.GetTransportSocket()
	if ts == nil {
		return nil
	}
	return unpack(t, ts.GetTypedConfig(), &tlsv3.DownstreamTlsContext{})
}

// sanList renders SAN matchers as "DNS:x", "URI:y".
func sanList(ms []*tlsv3.SubjectAltNameMatcher) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.SanType.String()+":"+m.GetMatcher().GetExact())
	}
	return out
}

func retryOn(p *routev3.RetryPolicy) []string {
	if p == nil || p.RetryOn == "" {
		return nil
	}
	out := strings.Split(p.RetryOn, ",")
	sort.Strings(out)
	return out
}

func weights(t testing.TB, r *routev3.Route) map[string]uint32 {
	t.Helper()
	wc := r.GetRoute().GetWeightedClusters()
	if wc == nil {
		t.Fatalf("route %s: no weighted clusters: %v", r.Name, r.GetRoute())
	}
	out := map[string]uint32{}
	for _, c := range wc.Clusters {
		out[c.Name] = c.Weight.GetValue()
	}
	return out
}

func dur(d *durationpb.Duration) string {
	if d == nil {
		return "unset"
	}
	return d.AsDuration().String()
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// walk calls fn for every message in m, descending into typed configs
// (google.protobuf.Any), with a path for error messages.
func walk(m proto.Message, fn func(path string, m protoreflect.Message)) {
	walkAt(m.ProtoReflect(), string(m.ProtoReflect().Descriptor().Name()), fn)
}

func walkAt(m protoreflect.Message, path string, fn func(string, protoreflect.Message)) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err == nil {
			walkAt(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().Name())+">", fn)
		}
		return
	}
	fn(path, m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		p := path + "." + fd.JSONName()
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				walkAt(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i), fn)
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					walkAt(mv.Message(), fmt.Sprintf("%s[%q]", p, k.String()), fn)
					return true
				})
			}
		default:
			walkAt(v.Message(), p, fn)
		}
		return true
	})
}

// maxEnvoySeconds is the largest duration Envoy accepts, in seconds
// (MessageUtil::validateDurationFields: 10000 years).
const maxEnvoySeconds = 315576000000

// envoyLint checks what Envoy rejects at load time beyond the
// protoc-gen-validate rules tracing.Validate covers: resource names unique
// per type, durations in [0, 315576000000 s], regexes that compile (RE2),
// virtual host domains unique within a route configuration
// (case-insensitively), filter chain names and matches unique within a
// listener, and weighted clusters whose weights add up to more than 0.
// (Envoy's refusal of safe_regex with ignore_case is checked on its own,
// by TestGatewayHostnameMatchIsAcceptedByEnvoy, a known bug.)
func envoyLint(r *Resources) []error {
	var out []error
	bad := func(format string, args ...any) { out = append(out, fmt.Errorf(format, args...)) }
	for _, typ := range ResourceTypes {
		seen := map[string]bool{}
		for _, res := range r.Types[typ] {
			n := nameOf(res)
			if seen[n] {
				bad("%s %q is defined twice", shortType(typ), n)
			}
			seen[n] = true
			walk(res, func(path string, m protoreflect.Message) {
				switch v := m.Interface().(type) {
				case *durationpb.Duration:
					if v.GetSeconds() < 0 || v.GetNanos() < 0 || v.GetSeconds() > maxEnvoySeconds {
						bad("%s: duration %v out of Envoy's range", path, v)
					}
				case *matcherv3.RegexMatcher:
					if _, err := regexp.Compile(v.Regex); err != nil {
						bad("%s: regex %q: %v", path, v.Regex, err)
					}
				case *routev3.RouteConfiguration:
					domains := map[string]string{}
					for _, vh := range v.VirtualHosts {
						for _, d := range vh.Domains {
							if prev, dup := domains[strings.ToLower(d)]; dup {
								bad("%s: domain %q of virtual host %q is also in virtual host %q", path, d, vh.Name, prev)
							}
							domains[strings.ToLower(d)] = vh.Name
						}
					}
				case *routev3.WeightedCluster:
					var sum uint64
					for _, c := range v.Clusters {
						sum += uint64(c.Weight.GetValue())
					}
					if sum == 0 {
						bad("%s: weighted clusters %v add up to 0", path, v.Clusters)
					}
				case *listenerv3.Listener:
					chainNames := map[string]bool{}
					var matches []*listenerv3.FilterChainMatch
					for _, fc := range v.FilterChains {
						if chainNames[fc.Name] {
							bad("%s: filter chain name %q used twice", path, fc.Name)
						}
						chainNames[fc.Name] = true
						m := fc.FilterChainMatch
						if m == nil {
							m = &listenerv3.FilterChainMatch{}
						}
						for _, prev := range matches {
							if proto.Equal(prev, m) {
								bad("%s: two filter chains with the same match %v", path, m)
							}
						}
						matches = append(matches, m)
					}
				}
			})
		}
	}
	return out
}

// grpcLint checks the shapes grpc-go accepts (notes/controlplane.md §4.3):
// API listeners only, an HCM whose last filter is the router, EDS or
// LOGICAL_DNS clusters, retry_on with gRPC codes only, max_stream_duration
// and no Envoy-only timeouts, and TLS only through certificate provider
// instances (never SDS or inline certificates).
func grpcLint(t testing.TB, r *Resources) []error {
	t.Helper()
	var out []error
	bad := func(format string, args ...any) { out = append(out, fmt.Errorf(format, args...)) }
	grpcCodes := map[string]bool{"cancelled": true, "deadline-exceeded": true, "internal": true, "resource-exhausted": true, "unavailable": true}
	for _, res := range r.Types[resource.ListenerType] {
		l := res.(*listenerv3.Listener)
		if l.ApiListener == nil || l.Address != nil || len(l.FilterChains) > 0 || l.DefaultFilterChain != nil || len(l.ListenerFilters) > 0 {
			bad("listener %s is not a bare API listener", l.Name)
			continue
		}
		h := unpack(t, l.ApiListener.ApiListener, &hcmv3.HttpConnectionManager{})
		if h.GetRds() == nil || h.GetRds().GetConfigSource().GetAds() == nil {
			bad("listener %s: HCM without RDS over ADS", l.Name)
		}
		fs := h.HttpFilters
		if len(fs) == 0 || fs[len(fs)-1].Name != "envoy.filters.http.router" {
			bad("listener %s: the last HTTP filter is not the router", l.Name)
		}
		if h.XffNumTrustedHops != 0 || len(h.OriginalIpDetectionExtensions) > 0 {
			bad("listener %s: xff settings grpc-go rejects", l.Name)
		}
	}
	for _, res := range r.Types[resource.ClusterType] {
		c := res.(*clusterv3.Cluster)
		switch typ := c.GetType(); typ {
		case clusterv3.Cluster_EDS:
			if c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
				bad("cluster %s: EDS not over ADS", c.Name)
			}
		case clusterv3.Cluster_LOGICAL_DNS:
			eps := c.GetLoadAssignment().GetEndpoints()
			if len(eps) != 1 || len(eps[0].LbEndpoints) != 1 {
				bad("cluster %s: LOGICAL_DNS needs exactly one locality with one endpoint", c.Name)
			}
		default:
			bad("cluster %s has type %s; grpc-go takes only EDS and LOGICAL_DNS", c.Name, typ)
		}
		if c.GetClusterType() != nil {
			bad("cluster %s: custom cluster type %s", c.Name, c.GetClusterType().Name)
		}
	}
	for _, res := range r.Types[resource.RouteType] {
		rc := res.(*routev3.RouteConfiguration)
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				a := rt.GetRoute()
				if a == nil {
					bad("route %s/%s has no route action", rc.Name, rt.Name)
					continue
				}
				for _, c := range retryOn(a.RetryPolicy) {
					if !grpcCodes[c] {
						bad("route %s/%s: retry_on %q is not a gRPC status", rc.Name, rt.Name, c)
					}
				}
				if p := a.RetryPolicy; p != nil && p.NumRetries.GetValue() < 1 {
					bad("route %s/%s: num_retries must be ≥ 1", rc.Name, rt.Name)
				}
				if a.Timeout != nil || a.IdleTimeout != nil {
					bad("route %s/%s: Envoy timeouts (timeout %s, idle %s) instead of max_stream_duration", rc.Name, rt.Name, dur(a.Timeout), dur(a.IdleTimeout))
				}
				if a.GetMaxStreamDuration().GetMaxStreamDuration() == nil {
					bad("route %s/%s: no max_stream_duration", rc.Name, rt.Name)
				}
			}
		}
	}
	for _, typ := range ResourceTypes {
		for _, res := range r.Types[typ] {
			walk(res, func(path string, m protoreflect.Message) {
				switch v := m.Interface().(type) {
				case *tlsv3.SdsSecretConfig:
					bad("%s: SDS secret %q (grpc-go rejects SDS)", path, v.Name)
				case *tlsv3.TlsCertificate:
					bad("%s: inline/file TLS certificate (grpc-go takes certificate provider instances only)", path)
				case *tlsv3.CommonTlsContext:
					if v.GetValidationContextSdsSecretConfig() != nil || v.GetCombinedValidationContext() != nil {
						bad("%s: SDS validation context", path)
					}
					if vc := v.GetValidationContext(); vc != nil && (vc.TrustedCa != nil || vc.CaCertificateProviderInstance == nil) {
						bad("%s: validation context without a CA certificate provider instance", path)
					}
				}
			})
		}
	}
	return out
}

// allNodes translates every node of cfg in both flavors (a virtual gateway
// in the gRPC flavor must be refused with ErrUnknownNode), checking every
// resource with tracing.Validate, envoyLint and, for gRPC, grpcLint.
func allNodes(t testing.TB, cfg *model.Config, opt Options) map[string]*Resources {
	t.Helper()
	tr := New(cfg, opt)
	out := map[string]*Resources{}
	for _, n := range tr.Nodes() {
		for _, f := range []Flavor{Envoy, GRPC} {
			r, err := tr.Node(n, f)
			if n.Kind == appmesh.VirtualGateway && f == GRPC {
				if !errors.Is(err, ErrUnknownNode) {
					t.Errorf("%s (grpc): want ErrUnknownNode, got %v", n.ShortForm(), err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s (%s): %v", n.ShortForm(), f, err)
				continue
			}
			for _, err := range validateResources(r) {
				t.Errorf("%s (%s): tracing.Validate: %v", n.ShortForm(), f, err)
			}
			for _, err := range envoyLint(r) {
				t.Errorf("%s (%s): %v", n.ShortForm(), f, err)
			}
			if f == GRPC {
				for _, err := range grpcLint(t, r) {
					t.Errorf("%s (grpc): %v", n.ShortForm(), err)
				}
			}
			out[n.ShortForm()+" "+f.String()] = r
		}
	}
	return out
}

// allResources lists every resource of a node, type by type.
func allResources(r *Resources) []types.Resource {
	var out []types.Resource
	for _, typ := range ResourceTypes {
		out = append(out, r.Types[typ]...)
	}
	return out
}

// canonicalVersions computes each type's version the way finish does, but
// from a fully deterministic encoding: every typed config (Any) re-packed
// with deterministic marshalling first, so maps inside typed configs
// (JSON access-log formats) are encoded in key order.
func canonicalVersions(t testing.TB, r *Resources) map[resource.Type]string {
	t.Helper()
	out := map[resource.Type]string{}
	det := proto.MarshalOptions{Deterministic: true}
	for _, typ := range ResourceTypes {
		h := sha256.New()
		for _, res := range r.Types[typ] {
			m := canonical(t, res)
			raw, err := det.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%d:", len(raw))
			h.Write(raw)
		}
		out[typ] = hex.EncodeToString(h.Sum(nil)[:8])
	}
	return out
}

// canonical is a copy of m with its typed configs re-packed
// deterministically.
func canonical(t testing.TB, m proto.Message) proto.Message {
	c := proto.Clone(m)
	repack(t, c.ProtoReflect())
	return c
}

// repack re-encodes every Any below m deterministically, innermost first.
func repack(t testing.TB, m protoreflect.Message) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("unpack %s: %v", a.GetTypeUrl(), err)
		}
		repack(t, inner.ProtoReflect())
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(inner)
		if err != nil {
			t.Fatal(err)
		}
		a.Value = raw
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind {
			return true
		}
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				repack(t, v.List().Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
					repack(t, mv.Message())
					return true
				})
			}
		default:
			repack(t, v.Message())
		}
		return true
	})
}
