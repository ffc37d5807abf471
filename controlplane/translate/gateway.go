package translate

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// gateway builds a virtual gateway's Envoy the way App Mesh did: each
// listener's gateway routes send matching requests, rewritten, to the
// gateway's own egress listener (the self-redirect cluster), which routes
// them like a sidecar's egress by virtual service.
func (b *builder) gateway(vg *model.VirtualGateway) {
	logs := accessLogs(vgAccessLog(vg.Spec.Logging))
	// The port each targeted virtual service is reached on.
	targetPort := map[string]int64{}
	var names []string
	for _, gr := range vg.Routes {
		vs, _, tp := model.GatewayRouteTarget(gr.Spec)
		names = append(names, vs)
		if prev, ok := targetPort[vs]; ok && prev != tp {
			b.warn("gateway routes target virtual service %q on different ports; the gateway serves it on port %d only", vs, min(prev, tp))
			tp = min(prev, tp)
		}
		targetPort[vs] = tp
	}
	var policy func(string) *clientTLS
	if d := vg.Spec.BackendDefaults; d != nil && d.ClientPolicy != nil {
		p := clientTLSOf(appmesh.GatewayClientPolicyTLS(d.ClientPolicy.TLS))
		policy = func(string) *clientTLS { return p }
	}
	services, ups := b.egress(names, policy)

	ports := vg.Ports()
	for i, l := range vg.Spec.Listeners {
		port := ports[i]
		self := fmt.Sprintf("cds_ingress_%s_%s_self_redirect_%s_%d", b.m.Name, vg.Name, port.Protocol, EgressPort)
		if len(ports) > 1 {
			self = fmt.Sprintf("cds_ingress_%s_%s_self_redirect_%d_%s_%d", b.m.Name, vg.Name, port.Port, port.Protocol, EgressPort)
		}
		c := staticCluster(self, "127.0.0.1", EgressPort)
		c.ConnectTimeout = durationpb.New(250e6)
		c.CircuitBreakers = vgPool(l.ConnectionPool)
		c.Metadata = metadata("Mesh", b.m.Name, "VirtualGateway", vg.Name, "Direction", "ingress", "Protocol", port.Protocol, "Port", strconv.FormatInt(port.Port, 10))
		http2Options(c, port.Protocol)
		b.add(iCluster, c)

		var grs []*model.GatewayRoute
		for _, gr := range vg.Routes {
			_, mp, _ := model.GatewayRouteTarget(gr.Spec)
			if mp == port.Port || mp == 0 && len(ports) == 1 {
				grs = append(grs, gr)
			}
		}
		sortGatewayRoutes(grs)
		rds := routeConfigName("ingress", port.Protocol, port.Port)
		vh := &routev3.VirtualHost{Name: "self_redirect", Domains: []string{"*"}}
		for _, gr := range grs {
			vh.Routes = append(vh.Routes, b.gatewayRoute(gr, self)...)
		}
		b.add(iRoute, &routev3.RouteConfiguration{Name: rds, VirtualHosts: []*routev3.VirtualHost{vh}})
		// As on virtual nodes, several listeners get a stats prefix each, so
		// the metrics extension tells http from grpc requests.
		statPrefix := "ingress"
		if len(ports) > 1 {
			statPrefix = "ingress." + port.Protocol + "." + strconv.FormatInt(port.Port, 10)
		}
		filter := hcmFilter(hcm(statPrefix, rds, port.Protocol, logs, nil))
		chains, inspect := b.serverChains(fmt.Sprintf("ingress_%d", port.Port), nil, filter, listenerTLSOf(appmesh.GatewayListenerTLS(l.TLS)))
		ln := &listenerv3.Listener{
			Name:             listenerName("ingress", port.Port),
			Address:          b.bindAddress(b.meshIPPreference(), port.Port),
			TrafficDirection: corev3.TrafficDirection_INBOUND,
			FilterChains:     chains,
		}
		if inspect {
			ln.ListenerFilters = []*listenerv3.ListenerFilter{tlsInspector()}
		}
		b.add(iListener, ln)
	}

	// The egress side: only the self-redirect reaches it, on loopback.
	rds := routeConfigName("egress", "http", EgressPort)
	rc := &routev3.RouteConfiguration{Name: rds}
	fallback := &routev3.VirtualHost{Name: "default_backend", Domains: []string{"*"},
		ResponseHeadersToRemove: []string{VirtualServiceHeader}}
	for _, s := range services {
		sp, ok := pickPort(s, targetPort[s.vs.Name])
		if !ok {
			b.warn("virtual service %q has no listener on port %d", s.vs.Name, targetPort[s.vs.Name])
			continue
		}
		vh := b.sharedVirtualHost(s, sp, []string{s.vs.Name, fmt.Sprintf("%s:%d", s.vs.Name, EgressPort)})
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
		for _, r := range vh.Routes {
			r = proto.Clone(r).(*routev3.Route)
			r.Match.Headers = append(r.Match.Headers, exactHeader(VirtualServiceHeader, s.vs.Name))
			fallback.Routes = append(fallback.Routes, r)
		}
	}
	rc.VirtualHosts = append(rc.VirtualHosts, fallback)
	b.add(iRoute, rc)
	b.add(iListener, &listenerv3.Listener{
		Name:             listenerName("egress", EgressPort),
		Address:          socketAddress("127.0.0.1", EgressPort),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Name: fmt.Sprintf("egress_http_%d", EgressPort), FilterChainMatch: portMatch(EgressPort),
			Filters: []*listenerv3.Filter{hcmFilter(hcm("egress", rds, "http", logs, nil))},
		}},
	})
	for _, up := range ups {
		b.egressCluster(up)
	}
}

func pickPort(s service, port int64) (servicePort, bool) {
	for _, sp := range s.ports {
		if port == 0 || sp.Port.Port == port {
			return sp, true
		}
	}
	return servicePort{}, false
}

func vgPool(p *appmesh.VirtualGatewayConnectionPool) *clusterv3.CircuitBreakers {
	switch {
	case p == nil:
	case p.HTTP != nil:
		return circuitBreakers(p.HTTP.MaxConnections, p.HTTP.MaxPendingRequests, nil)
	case p.HTTP2 != nil:
		return circuitBreakers(nil, nil, p.HTTP2.MaxRequests)
	case p.GRPC != nil:
		return circuitBreakers(nil, nil, p.GRPC.MaxRequests)
	}
	return circuitBreakers(nil, nil, nil)
}

// sortGatewayRoutes orders gateway routes by priority (unset last), then
// longest prefix first (App Mesh: the longest matching prefix wins), then
// name.
func sortGatewayRoutes(grs []*model.GatewayRoute) {
	prio := func(gr *model.GatewayRoute) int64 {
		if gr.Spec.Priority != nil {
			return *gr.Spec.Priority
		}
		return 1001
	}
	prefixLen := func(gr *model.GatewayRoute) int {
		for _, h := range []*appmesh.HTTPGatewayRoute{gr.Spec.HTTPRoute, gr.Spec.HTTP2Route} {
			if h != nil && h.Match != nil && h.Match.Prefix != nil {
				return len(*h.Match.Prefix)
			}
			if h != nil && h.Match != nil && h.Match.Path != nil {
				return 1 << 20 // a path match is more specific than any prefix
			}
		}
		return 0
	}
	sort.SliceStable(grs, func(i, j int) bool {
		if pi, pj := prio(grs[i]), prio(grs[j]); pi != pj {
			return pi < pj
		}
		if li, lj := prefixLen(grs[i]), prefixLen(grs[j]); li != lj {
			return li > lj
		}
		return grs[i].Name < grs[j].Name
	})
}

// authority matches the Host / :authority header by exact name or suffix,
// with or without a port.
func authority(h *appmesh.GatewayRouteHostnameMatch) *routev3.HeaderMatcher {
	var re string
	switch {
	case h.Exact != "":
		re = "(?i)^" + regexp.QuoteMeta(h.Exact) + "(:[0-9]+)?$"
	case h.Suffix != "":
		re = "(?i)^.*" + regexp.QuoteMeta(h.Suffix) + "(:[0-9]+)?$"
	default:
		return nil
	}
	return &routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		// Envoy refuses ignore_case with safe_regex: the regex is (?i).
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}}}
}

// gatewayRoute translates one gateway route into the gateway's ingress
// routes (two when a prefix rewrite needs the trailing-slash variant).
func (b *builder) gatewayRoute(gr *model.GatewayRoute, self string) []*routev3.Route {
	vs, _, _ := model.GatewayRouteTarget(gr.Spec)
	act := &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: self},
		Timeout:          durationpb.New(defaultPerRequest),
	}
	r := &routev3.Route{Name: gr.Name, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Metadata: metadata("Mesh", b.m.Name, "TargetVirtualService", vs, "GatewayRoute", gr.Name)}
	var hostRewrite *appmesh.GatewayRouteHostnameRewrite
	var hostname *appmesh.GatewayRouteHostnameMatch
	var prefixRewrite *appmesh.HTTPGatewayRoutePrefixRewrite
	var pathRewrite *appmesh.HTTPGatewayRoutePathRewrite
	switch {
	case gr.Spec.HTTPRoute != nil || gr.Spec.HTTP2Route != nil:
		h := gr.Spec.HTTPRoute
		if h == nil {
			h = gr.Spec.HTTP2Route
		}
		if m := h.Match; m != nil {
			setPath(r.Match, m.Prefix, m.Path)
			for _, hd := range m.Headers {
				r.Match.Headers = append(r.Match.Headers, headerMatcher(hd.Name, hd.Invert, hd.Match))
			}
			if m.Method != "" {
				r.Match.Headers = append(r.Match.Headers, exactHeader(":method", m.Method))
			}
			for _, q := range m.QueryParameters {
				r.Match.QueryParameters = append(r.Match.QueryParameters, queryMatcher(q))
			}
			hostname = m.Hostname
		}
		if rw := h.Action.Rewrite; rw != nil {
			hostRewrite, prefixRewrite, pathRewrite = rw.Hostname, rw.Prefix, rw.Path
		}
	case gr.Spec.GRPCRoute != nil:
		g := gr.Spec.GRPCRoute
		if m := g.Match; m != nil {
			if m.ServiceName != "" {
				r.Match.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/" + m.ServiceName + "/"}
			}
			for _, md := range m.Metadata {
				var mm matchMethod
				if md.Match != nil {
					mm = matchMethod{md.Match.Exact, md.Match.Prefix, md.Match.Suffix, md.Match.Regex, md.Match.Range}
				}
				r.Match.Headers = append(r.Match.Headers, headerMatcherOf(md.Name, md.Invert, mm))
			}
			hostname = m.Hostname
		}
		if rw := g.Action.Rewrite; rw != nil {
			hostRewrite = rw.Hostname
		}
	}
	if hostname != nil {
		if hm := authority(hostname); hm != nil {
			r.Match.Headers = append(r.Match.Headers, hm)
		}
	}
	if hostRewrite != nil && hostRewrite.DefaultTargetHostname == "DISABLED" {
		r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: VirtualServiceHeader, Value: vs},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}
	} else {
		act.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: vs}
	}
	r.Action = &routev3.Route_Route{Route: act}
	prefix := r.Match.GetPrefix()
	if _, isPrefix := r.Match.PathSpecifier.(*routev3.RouteMatch_Prefix); isPrefix && gr.Spec.GRPCRoute == nil {
		rewrite := "/"
		switch {
		case prefixRewrite != nil && prefixRewrite.Value != "":
			rewrite = prefixRewrite.Value
		case prefixRewrite != nil && prefixRewrite.DefaultPrefix == "DISABLED":
			rewrite = ""
		}
		if rewrite != "" && rewrite != prefix {
			act.PrefixRewrite = rewrite
			if !strings.HasSuffix(prefix, "/") && strings.HasSuffix(rewrite, "/") {
				// /chapter/1 → /1, not //1: match /chapter/ first.
				slash := proto.Clone(r).(*routev3.Route)
				slash.Match.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: prefix + "/"}
				return []*routev3.Route{slash, r}
			}
		}
	}
	if pathRewrite != nil && pathRewrite.Exact != "" {
		act.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: &matcherv3.RegexMatcher{Regex: "^.*$"}, Substitution: pathRewrite.Exact}
	}
	return []*routev3.Route{r}
}
