package translate

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// sidecar builds a virtual node's Envoy: the ingress listener in front of
// the local application and the egress listener toward its backends.
func (b *builder) sidecar(vn *model.VirtualNode) {
	logs := accessLogs(vnAccessLog(vn.Spec.Logging))
	if l := vnAccessLog(vn.Spec.Logging); l != nil {
		// %#v prints the format's content (not its address) with its
		// strings quoted, so different formats never print alike.
		b.logKey = fmt.Sprintf("%q|%#v", l.Path, l.Format)
	}
	if len(vn.Spec.Listeners) > 0 {
		b.ingress(vn, logs)
	}
	services, ups := b.egress(backendNames(vn), b.vnPolicy(vn))
	b.egressListener(b.ipPreference(vn), services, logs)
	for _, up := range ups {
		b.egressCluster(up)
	}
}

// ipPreference is the node's IP preference (its own, else the mesh's).
func (b *builder) ipPreference(vn *model.VirtualNode) string {
	if sd := vn.Spec.ServiceDiscovery; sd != nil {
		if sd.DNS != nil && sd.DNS.IPPreference != "" {
			return sd.DNS.IPPreference
		}
		if sd.AWSCloudMap != nil && sd.AWSCloudMap.IPPreference != "" {
			return sd.AWSCloudMap.IPPreference
		}
	}
	return b.meshIPPreference()
}

func (b *builder) meshIPPreference() string {
	if sd := b.m.Spec.ServiceDiscovery; sd != nil {
		return sd.IPPreference
	}
	return ""
}

// bindAddress: with any IP preference set (the node's own, else the
// mesh's), listeners bind IPv4 and IPv6.
func (b *builder) bindAddress(pref string, port int64) *corev3.Address {
	if pref == "" {
		return socketAddress("0.0.0.0", port)
	}
	a := socketAddress("::", port)
	a.GetSocketAddress().Ipv4Compat = true
	return a
}

func (b *builder) ingress(vn *model.VirtualNode, logs []*accesslogv3.AccessLog) {
	ln := &listenerv3.Listener{
		Name:             listenerName("ingress", IngressPort),
		Address:          b.bindAddress(b.ipPreference(vn), IngressPort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters:  []*listenerv3.ListenerFilter{originalDst()},
	}
	local := "127.0.0.1"
	if p := b.ipPreference(vn); p == "IPv6_PREFERRED" || p == "IPv6_ONLY" {
		local = "::1"
	}
	needInspector := false
	for _, l := range vn.Spec.Listeners {
		port := model.Port{Port: *l.PortMapping.Port, Protocol: l.PortMapping.Protocol}
		cname := clusterName("ingress", b.m.Name, vn.Name, port.Protocol, port.Port)
		c := staticCluster(cname, local, port.Port)
		c.CircuitBreakers = vnPool(l.ConnectionPool)
		c.Metadata = metadata("Mesh", b.m.Name, "VirtualNode", vn.Name, "Direction", "ingress", "Protocol", port.Protocol, "Port", strconv.FormatInt(port.Port, 10))
		http2Options(c, port.Protocol)
		b.add(iCluster, c)

		statPrefix := "ingress"
		if len(vn.Spec.Listeners) > 1 {
			statPrefix = "ingress." + port.Protocol + "." + strconv.FormatInt(port.Port, 10)
		}
		perRequest, idle := listenerTimeouts(l.Timeout)
		var filter *listenerv3.Filter
		if port.Protocol == "tcp" {
			filter = tcpProxyFilter(statPrefix, []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: cname, Weight: 1}}, logs, idle)
		} else {
			rds := routeConfigName("ingress", port.Protocol, port.Port)
			b.add(iRoute, &routev3.RouteConfiguration{Name: rds, VirtualHosts: []*routev3.VirtualHost{{
				Name: "ingress", Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:  "ingress",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cname},
						Timeout:          perRequest, IdleTimeout: idle,
					}},
				}},
			}}})
			// The same for every node with the same access log.
			k := appendKeyString([]byte("hcm|ingress|"), statPrefix)
			k = appendKeyString(k, rds)
			k = appendKeyString(k, port.Protocol)
			k = appendKeyDuration(k, idle)
			filter = b.sharedFilter(string(k), func() *listenerv3.Filter { return hcmFilter(hcm(statPrefix, rds, port.Protocol, logs, idle)) })
		}
		chains, inspect := b.serverChains("ingress_"+strconv.FormatInt(port.Port, 10), portMatch(port.Port), filter, listenerTLSOf(l.TLS))
		needInspector = needInspector || inspect
		ln.FilterChains = append(ln.FilterChains, chains...)
	}
	if needInspector {
		ln.ListenerFilters = append(ln.ListenerFilters, tlsInspector())
	}
	b.add(iListener, ln)
}

// listenerTimeouts gives a listener's per-request and idle timeouts with
// App Mesh's defaults (15 s, 300 s; 0 disables).
func listenerTimeouts(t *appmesh.ListenerTimeout) (perRequest, idle *durationpb.Duration) {
	perRequest, idle = defaultPerRequestDuration, defaultIdleDuration
	if t == nil {
		return perRequest, idle
	}
	switch {
	case t.HTTP != nil:
		return durationOr(t.HTTP.PerRequest, defaultPerRequest), durationOr(t.HTTP.Idle, defaultIdle)
	case t.HTTP2 != nil:
		return durationOr(t.HTTP2.PerRequest, defaultPerRequest), durationOr(t.HTTP2.Idle, defaultIdle)
	case t.GRPC != nil:
		return durationOr(t.GRPC.PerRequest, defaultPerRequest), durationOr(t.GRPC.Idle, defaultIdle)
	case t.TCP != nil:
		return perRequest, durationOr(t.TCP.Idle, defaultIdle)
	}
	return perRequest, idle
}

func vnPool(p *appmesh.VirtualNodeConnectionPool) *clusterv3.CircuitBreakers {
	switch {
	case p == nil:
	case p.TCP != nil:
		return circuitBreakers(p.TCP.MaxConnections, nil, nil)
	case p.HTTP != nil:
		return circuitBreakers(p.HTTP.MaxConnections, p.HTTP.MaxPendingRequests, nil)
	case p.HTTP2 != nil:
		return circuitBreakers(nil, nil, p.HTTP2.MaxRequests)
	case p.GRPC != nil:
		return circuitBreakers(nil, nil, p.GRPC.MaxRequests)
	}
	return circuitBreakers(nil, nil, nil)
}

// portEntry is one virtual service on one egress port.
type portEntry struct {
	s  service
	sp servicePort
}

// egressListener builds lds_egress_0.0.0.0_15001: a filter chain per
// backend port (HTTP routed by virtual service name, TCP by port alone),
// AWS APIs on 443 by SNI, and the ALLOW_ALL passthrough.
func (b *builder) egressListener(pref string, services []service, logs []*accesslogv3.AccessLog) {
	ln := &listenerv3.Listener{
		Name:             listenerName("egress", EgressPort),
		Address:          b.bindAddress(pref, EgressPort),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		ListenerFilters:  []*listenerv3.ListenerFilter{originalDst(), tlsInspector()},
	}
	byPort := map[int64][]portEntry{}
	for _, s := range services {
		for _, sp := range s.ports {
			byPort[sp.Port.Port] = append(byPort[sp.Port.Port], portEntry{s, sp})
		}
	}
	allowAll := b.m.Spec.EgressFilter != nil && b.m.Spec.EgressFilter.Type == "ALLOW_ALL"
	allowAllCluster := "cds_egress_" + b.m.Name + "_mesh-allow-all"
	for _, port := range sortedKeys(byPort) {
		entries := byPort[port]
		var httpEntries, tcpEntries []portEntry
		for _, e := range entries {
			if e.sp.Protocol == "tcp" {
				tcpEntries = append(tcpEntries, e)
			} else {
				httpEntries = append(httpEntries, e)
			}
		}
		if len(httpEntries) > 0 {
			proto := httpEntries[0].sp.Protocol
			for _, e := range httpEntries[1:] {
				if e.sp.Protocol != proto {
					proto = "http"
				}
			}
			for _, e := range tcpEntries {
				b.warn("virtual service %q (tcp) shares port %d with HTTP virtual services; its TCP traffic on that port is not routed", e.s.vs.Name, port)
			}
			rds := routeConfigName("egress", proto, port)
			rc := &routev3.RouteConfiguration{Name: rds}
			for _, e := range httpEntries {
				rc.VirtualHosts = append(rc.VirtualHosts, b.sharedVirtualHost(e.s, e.sp, []string{e.s.vs.Name, e.s.vs.Name + ":" + strconv.FormatInt(port, 10)}))
			}
			if allowAll {
				rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: "mesh-allow-all", Domains: []string{"*"}, Routes: []*routev3.Route{{
					Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: allowAllCluster}}},
				}}})
			}
			b.add(iRoute, rc)
			ln.FilterChains = append(ln.FilterChains, &listenerv3.FilterChain{
				Name: "egress_" + proto + "_" + strconv.FormatInt(port, 10), FilterChainMatch: portMatch(port),
				Filters: []*listenerv3.Filter{b.sharedFilter("hcm|egress|"+rds+"|"+proto, func() *listenerv3.Filter { return hcmFilter(hcm("egress", rds, proto, logs, nil)) })},
			})
			continue
		}
		e := tcpEntries[0]
		for _, other := range tcpEntries[1:] {
			b.warn("virtual services %q and %q are both TCP on port %d; TCP has no name to route on, so only %q is reachable (give each a unique port)", e.s.vs.Name, other.s.vs.Name, port, e.s.vs.Name)
		}
		if len(e.sp.routes) == 0 {
			b.warn("virtual service %q has no route on port %d", e.s.vs.Name, port)
			continue
		}
		r := e.sp.routes[0]
		var cw []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight
		for _, t := range r.targets {
			if t.weight > 0 {
				cw = append(cw, &tcpv3.TcpProxy_WeightedCluster_ClusterWeight{Name: t.up.name, Weight: t.weight})
			}
		}
		_, idle := listenerTimeouts(nil)
		if r.spec != nil && r.spec.TCPRoute != nil && r.spec.TCPRoute.Timeout != nil {
			idle = durationOr(r.spec.TCPRoute.Timeout.Idle, defaultIdle)
		}
		ln.FilterChains = append(ln.FilterChains, &listenerv3.FilterChain{
			Name: "egress_tcp_" + strconv.FormatInt(port, 10), FilterChainMatch: portMatch(port),
			Filters: []*listenerv3.Filter{tcpProxyFilter("egress", cw, logs, idle)},
		})
	}
	aws := "cds_egress_" + b.m.Name + "_amazonaws"
	ln.FilterChains = append(ln.FilterChains, &listenerv3.FilterChain{
		Name:             "egress_amazonaws",
		FilterChainMatch: &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(443), ServerNames: []string{"*.amazonaws.com"}, TransportProtocol: "tls"},
		Filters: []*listenerv3.Filter{b.sharedFilter("tcp|egress|"+aws, func() *listenerv3.Filter {
			return tcpProxyFilter("egress", []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: aws, Weight: 1}}, logs, nil)
		})},
	})
	b.sharedOriginalDstCluster(aws)
	if allowAll {
		ln.DefaultFilterChain = &listenerv3.FilterChain{
			Name:    "egress_mesh-allow-all",
			Filters: []*listenerv3.Filter{tcpProxyFilter("egress", []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight{{Name: allowAllCluster, Weight: 1}}, logs, nil)},
		}
		b.sharedOriginalDstCluster(allowAllCluster)
	}
	b.add(iListener, ln)
}

func sortedKeys[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// egressCluster adds the cluster for one target virtual node listener,
// shared by every node that reaches it the same way.
func (b *builder) egressCluster(up *upstream) {
	key := append(b.key[:0], "cluster|"...)
	key = appendKeyInt(key, int64(b.flavor))
	key = appendKeyString(key, up.name)
	key = appendKeyString(key, up.vs.Name)
	key = appendKeyString(key, up.vn.Name)
	key = appendKeyInt(key, up.port.Port)
	if up.policy != nil {
		key = fmt.Appendf(key, "|%#v", *up.policy) // strings quoted: policies never print alike
	}
	b.key = key
	b.shared(key, func(sub *builder) { sub.buildEgressCluster(up) })
}

// sharedOriginalDstCluster adds the original-destination cluster name,
// the same for every node.
func (b *builder) sharedOriginalDstCluster(name string) {
	key := append(b.key[:0], "odst|"...)
	key = appendKeyString(key, name)
	b.key = key
	b.shared(key, func(sub *builder) { sub.add(iCluster, originalDstCluster(name)) })
}

func (b *builder) buildEgressCluster(up *upstream) {
	vn := up.vn
	l := vn.Listener(up.port.Port)
	c := &clusterv3.Cluster{
		Name:            up.name,
		ConnectTimeout:  oneSecond,
		CircuitBreakers: circuitBreakers(nil, nil, nil),
		Metadata: metadata(
			"Mesh", b.m.Name, "Direction", "egress",
			"TargetVirtualService", up.vs.Name, "TargetVirtualNode", vn.Name,
			"Protocol", up.port.Protocol, "Port", strconv.FormatInt(up.port.Port, 10),
		),
	}
	sd := vn.Spec.ServiceDiscovery
	switch {
	case sd != nil && sd.DNS != nil:
		typ := clusterv3.Cluster_LOGICAL_DNS
		if sd.DNS.ResponseType == "ENDPOINTS" && b.flavor == Envoy {
			typ = clusterv3.Cluster_STRICT_DNS
		}
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: typ}
		c.LoadAssignment = loadAssignment(up.name, sd.DNS.Hostname, up.port.Port)
		c.DnsLookupFamily = lookupFamily(b.ipPreference(vn))
	case sd != nil && sd.AWSCloudMap != nil:
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}
		c.EdsClusterConfig = &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}
		b.add(iEndpoint, &endpointv3.ClusterLoadAssignment{ClusterName: up.name})
		b.warn("virtual node %q uses AWS Cloud Map (%s.%s): meshd does not query Cloud Map, so cluster %s has no endpoints", vn.Name, sd.AWSCloudMap.ServiceName, sd.AWSCloudMap.NamespaceName, up.name)
	default:
		b.warn("virtual node %q has no service discovery: cluster %s has no endpoints", vn.Name, up.name)
		c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
		c.LoadAssignment = &endpointv3.ClusterLoadAssignment{ClusterName: up.name}
	}
	if l != nil {
		if hc := healthCheck(l.HealthCheck); hc != nil && b.flavor == Envoy {
			c.HealthChecks = []*corev3.HealthCheck{hc}
		}
		if od := l.OutlierDetection; od != nil {
			c.OutlierDetection = &clusterv3.OutlierDetection{
				Consecutive_5Xx:    wrapperspb.UInt32(uint32(min(*od.MaxServerErrors, maxThreshold))),
				MaxEjectionPercent: wrapperspb.UInt32(uint32(*od.MaxEjectionPercent)),
			}
			// Envoy wants both durations > 0; 0 keeps Envoy's defaults
			// (10 s, 30 s).
			if d := toDuration(od.Interval); d.AsDuration() > 0 {
				c.OutlierDetection.Interval = d
			} else {
				b.warn("virtual node %q: outlier detection interval 0 is not possible; Envoy's default (10 s) applies", vn.Name)
			}
			if d := toDuration(od.BaseEjectionDuration); d.AsDuration() > 0 {
				c.OutlierDetection.BaseEjectionTime = d
			} else {
				b.warn("virtual node %q: outlier detection base ejection duration 0 is not possible; Envoy's default (30 s) applies", vn.Name)
			}
		}
	}
	http2Options(c, up.port.Protocol)
	c.TransportSocket = b.upstreamTLS(up, l)
	b.add(iCluster, c)
}

func lookupFamily(pref string) clusterv3.Cluster_DnsLookupFamily {
	switch pref {
	case "IPv4_ONLY":
		return clusterv3.Cluster_V4_ONLY
	case "IPv6_ONLY":
		return clusterv3.Cluster_V6_ONLY
	case "IPv4_PREFERRED":
		return clusterv3.Cluster_V4_PREFERRED
	}
	return clusterv3.Cluster_AUTO
}

func healthCheck(h *appmesh.HealthCheckPolicy) *corev3.HealthCheck {
	if h == nil || h.TimeoutMillis == nil || h.IntervalMillis == nil || h.HealthyThreshold == nil || h.UnhealthyThreshold == nil {
		return nil
	}
	hc := &corev3.HealthCheck{
		Timeout:            durationpb.New(time.Duration(*h.TimeoutMillis) * time.Millisecond),
		Interval:           durationpb.New(time.Duration(*h.IntervalMillis) * time.Millisecond),
		HealthyThreshold:   wrapperspb.UInt32(uint32(*h.HealthyThreshold)),
		UnhealthyThreshold: wrapperspb.UInt32(uint32(*h.UnhealthyThreshold)),
	}
	switch h.Protocol {
	case "http", "http2":
		path := h.Path
		if path == "" {
			path = "/"
		}
		hh := &corev3.HealthCheck_HttpHealthCheck{Path: path}
		if h.Protocol == "http2" {
			hh.CodecClientType = typev3.CodecClientType_HTTP2
		}
		hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: hh}
	case "grpc":
		hc.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{}}
	default:
		hc.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
	}
	return hc
}
