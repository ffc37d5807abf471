package translate

import (
	"regexp"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// gatewayRoute summarizes an ingress route of a gateway: its match, where
// it sends requests and how it rewrites them.
type gwRoute struct {
	name, match, rewrite, host string
	headers                    []string
}

func summarizeGatewayRoute(t *testing.T, r *routev3.Route) gwRoute {
	t.Helper()
	g := gwRoute{name: r.Name}
	switch p := r.Match.PathSpecifier.(type) {
	case *routev3.RouteMatch_Prefix:
		g.match = "prefix " + p.Prefix
	case *routev3.RouteMatch_Path:
		g.match = "path " + p.Path
	case *routev3.RouteMatch_SafeRegex:
		g.match = "regex " + p.SafeRegex.Regex
	}
	for _, h := range r.Match.Headers {
		switch {
		case h.GetStringMatch().GetExact() != "":
			g.headers = append(g.headers, h.Name+"="+h.GetStringMatch().GetExact())
		case h.GetStringMatch().GetSafeRegex() != nil:
			g.headers = append(g.headers, h.Name+"~"+h.GetStringMatch().GetSafeRegex().Regex)
		default:
			g.headers = append(g.headers, h.Name+"?")
		}
	}
	a := r.GetRoute()
	switch {
	case a.PrefixRewrite != "":
		g.rewrite = "prefix→" + a.PrefixRewrite
	case a.RegexRewrite != nil:
		g.rewrite = "regex " + a.RegexRewrite.Pattern.Regex + "→" + a.RegexRewrite.Substitution
	}
	switch {
	case a.GetHostRewriteLiteral() != "":
		g.host = "host→" + a.GetHostRewriteLiteral()
	case len(r.RequestHeadersToAdd) == 1 && r.RequestHeadersToAdd[0].Header.Key == VirtualServiceHeader:
		g.host = "keep host, " + VirtualServiceHeader + ": " + r.RequestHeadersToAdd[0].Header.Value
		if r.RequestHeadersToAdd[0].AppendAction != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("route %s appends %s instead of overwriting it", r.Name, VirtualServiceHeader)
		}
	}
	return g
}

// TestGatewayRoutes checks how gateway routes become the gateway's ingress
// routes (§1.6, §1.7; notes §3.3): ordered by priority then longest prefix;
// a prefix route rewrites Host to the virtual service and the prefix to /
// (matching /chapter/ first so /chapter/1 → /1); hostname rewrite DISABLED
// keeps Host and names the service in x-app-mesh-virtual-service; an exact
// path rewrite replaces the whole path; a hostname match checks
// :authority, with or without a port; everything goes to the
// self-redirect cluster with a 15 s timeout.
func TestGatewayRoutes(t *testing.T) {
	tr := New(scenario(t, gatewayDir), Options{})
	r := translateNode(t, tr, vg("gw", "ingress"), Envoy)
	vh := findVirtualHost(t, findRouteConfig(t, r, "rds_ingress_http_8088"), "self_redirect")
	if !equalStrings(vh.Domains, []string{"*"}) {
		t.Errorf("domains %q", vh.Domains)
	}
	want := []gwRoute{
		{"partners", "prefix /", "", "host→serviceb.gw.local", []string{`:authority~(?i)^.*\.partners\.example\.com(:[0-9]+)?$`}},
		{"versioned-items", "regex /v[0-9]+/items", "regex ^.*$→/items", "host→servicea.gw.local", nil},
		{"chapter", "prefix /chapter/", "prefix→/", "host→servicea.gw.local", nil},
		{"chapter", "prefix /chapter", "prefix→/", "host→servicea.gw.local", nil},
		{"root", "prefix /", "", "keep host, x-app-mesh-virtual-service: serviceb.gw.local", nil},
	}
	if len(vh.Routes) != len(want) {
		t.Fatalf("routes %q, want %d", routeNames(vh), len(want))
	}
	for i, rt := range vh.Routes {
		got := summarizeGatewayRoute(t, rt)
		if got.name != want[i].name || got.match != want[i].match || got.rewrite != want[i].rewrite || got.host != want[i].host || strings.Join(got.headers, " ") != strings.Join(want[i].headers, " ") {
			t.Errorf("route %d:\n got %+v\nwant %+v", i, got, want[i])
		}
		a := rt.GetRoute()
		if a.GetCluster() != "cds_ingress_gw_ingress_self_redirect_http_15001" || dur(a.Timeout) != "15s" {
			t.Errorf("route %s → %s timeout %s", rt.Name, a.GetCluster(), dur(a.Timeout))
		}
	}
	// The hostname matcher accepts the suffix with or without a port, in
	// any case, and nothing else.
	re := regexp.MustCompile("(?i)" + vh.Routes[0].Match.Headers[0].GetStringMatch().GetSafeRegex().Regex)
	for host, ok := range map[string]bool{"a.partners.example.com": true, "A.Partners.Example.COM:8088": true, "partners.example.com": false, "a.partners.example.com.evil": false, "a-partners.example.com": false} {
		if re.MatchString(host) != ok {
			t.Errorf("hostname match on %q: %v, want %v", host, !ok, ok)
		}
	}

	// The egress side: a virtual host per target service (domains with the
	// egress port), then default_backend routing by the header.
	rc := findRouteConfig(t, r, "rds_egress_http_15001")
	var vhs []string
	for _, vh := range rc.VirtualHosts {
		vhs = append(vhs, vh.Name+strings.Join(vh.Domains, ","))
	}
	if w := []string{"servicea.gw.localservicea.gw.local,servicea.gw.local:15001", "serviceb.gw.localserviceb.gw.local,serviceb.gw.local:15001", "default_backend*"}; !equalStrings(vhs, w) {
		t.Errorf("egress virtual hosts %q, want %q", vhs, w)
	}
	fallback := findVirtualHost(t, rc, "default_backend")
	if !equalStrings(fallback.ResponseHeadersToRemove, []string{VirtualServiceHeader}) {
		t.Errorf("default_backend removes %q", fallback.ResponseHeadersToRemove)
	}
	for i, vs := range []string{"servicea.gw.local", "serviceb.gw.local"} {
		rt := fallback.Routes[i]
		hs := rt.Match.Headers
		if len(hs) == 0 || hs[len(hs)-1].Name != VirtualServiceHeader || hs[len(hs)-1].GetStringMatch().GetExact() != vs {
			t.Errorf("default_backend route %d headers %v, want %s: %s", i, hs, VirtualServiceHeader, vs)
		}
		if got, want := weights(t, rt), weights(t, findVirtualHost(t, rc, vs).Routes[0]); len(got) != 1 || len(want) != 1 || strings.Join(keys(got), "") != strings.Join(keys(want), "") {
			t.Errorf("default_backend route for %s goes to %v, its virtual host to %v", vs, got, want)
		}
	}
	egress := findListener(t, r, "lds_egress_0.0.0.0_15001")
	if sa := egress.Address.GetSocketAddress(); sa.Address != "127.0.0.1" || sa.GetPortValue() != 15001 {
		t.Errorf("gateway egress listener on %v, want 127.0.0.1:15001 (only the self-redirect reaches it)", sa)
	}
	self := findCluster(t, r, "cds_ingress_gw_ingress_self_redirect_http_15001")
	ep := self.LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress()
	if self.GetType().String() != "STATIC" || ep.Address != "127.0.0.1" || ep.GetPortValue() != 15001 || dur(self.ConnectTimeout) != "250ms" {
		t.Errorf("self-redirect cluster %v %v:%d connect %s", self.GetType(), ep.Address, ep.GetPortValue(), dur(self.ConnectTimeout))
	}
	if l := findListener(t, r, "lds_ingress_0.0.0.0_8088"); l.Address.GetSocketAddress().GetPortValue() != 8088 || l.TrafficDirection != corev3.TrafficDirection_INBOUND {
		t.Errorf("gateway listener %v", l.Address)
	}

	// The gRPC gateway: service name prefix and metadata, Host rewritten.
	g := translateNode(t, tr, vg("gw", "grpc-ingress"), Envoy)
	vh = findVirtualHost(t, findRouteConfig(t, g, "rds_ingress_grpc_8090"), "self_redirect")
	if len(vh.Routes) != 1 {
		t.Fatalf("grpc gateway routes %q", routeNames(vh))
	}
	got := summarizeGatewayRoute(t, vh.Routes[0])
	if w := (gwRoute{"colors", "prefix /colors.ColorService/", "", "host→colors.gw.local", []string{"x-tenant=blue"}}); got.name != w.name || got.match != w.match || got.rewrite != w.rewrite || got.host != w.host || strings.Join(got.headers, " ") != strings.Join(w.headers, " ") {
		t.Errorf("grpc gateway route\n got %+v\nwant %+v", got, w)
	}
	if c := vh.Routes[0].GetRoute().GetCluster(); c != "cds_ingress_gw_grpc-ingress_self_redirect_grpc_15001" {
		t.Errorf("grpc gateway route → %s", c)
	}
}

func keys(m map[string]uint32) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestGatewayHostnameMatchIsAcceptedByEnvoy: Envoy refuses a StringMatcher
// with both safe_regex and ignore_case ("ignore_case has no effect for
// safe_regex", source/common/common/matchers.h StringMatcherImpl), so the
// route configuration of a gateway with a hostname match is NACKed. The
// case-insensitivity belongs in the regex ((?i)…) instead.
func TestGatewayHostnameMatchIsAcceptedByEnvoy(t *testing.T) {
	r := translateNode(t, New(scenario(t, gatewayDir), Options{}), vg("gw", "ingress"), Envoy)
	for _, res := range allResources(r) {
		walk(res, func(path string, m protoreflect.Message) {
			if sm, ok := m.Interface().(*matcherv3.StringMatcher); ok && sm.GetSafeRegex() != nil && sm.IgnoreCase {
				t.Errorf("%s: safe_regex %q with ignore_case: Envoy rejects it", path, sm.GetSafeRegex().Regex)
			}
		})
	}
}
