package translate

import (
	"fmt"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/meshd/meshd/internal/appmesh/model"
)

// proxyless builds what a proxyless gRPC client presenting a virtual node's
// id is served: for each backend virtual service and port, an API listener
// named as the client dials it ("serviceb.apps.local" for the service's
// first port, "serviceb.apps.local:8080" for every port), its routes, and
// EDS or LOGICAL_DNS clusters.
func (b *builder) proxyless(vn *model.VirtualNode) {
	services, ups := b.egress(backendNames(vn), b.vnPolicy(vn))
	used := map[string]bool{}
	for _, s := range services {
		bare := false // the bare name goes to the first gRPC-capable port
		for _, sp := range s.ports {
			if sp.Protocol == "tcp" {
				b.warn("virtual service %q port %d is TCP: a gRPC client cannot use it", s.vs.Name, sp.Port.Port)
				continue
			}
			hostPort := fmt.Sprintf("%s:%d", s.vs.Name, sp.Port.Port)
			rc := &routev3.RouteConfiguration{Name: hostPort, VirtualHosts: []*routev3.VirtualHost{b.sharedVirtualHost(s, sp, []string{s.vs.Name, hostPort})}}
			b.add(iRoute, rc)
			names := []string{hostPort}
			if !bare {
				names, bare = append(names, s.vs.Name), true
			}
			for _, r := range sp.routes {
				if r.spec != nil && (r.spec.HTTPRoute != nil && r.spec.HTTPRoute.Match != nil && len(r.spec.HTTPRoute.Match.QueryParameters) > 0 ||
					r.spec.HTTP2Route != nil && r.spec.HTTP2Route.Match != nil && len(r.spec.HTTP2Route.Match.QueryParameters) > 0) {
					b.warn("route %q of virtual service %q matches query parameters, which gRPC clients ignore: they skip the route", r.name, s.vs.Name)
				}
				for _, t := range r.targets {
					used[t.up.name] = true
				}
			}
			for _, n := range names {
				h := &hcmv3.HttpConnectionManager{
					StatPrefix:     "egress",
					RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rc.Name}},
					HttpFilters:    []*hcmv3.HttpFilter{routerFilter()},
				}
				b.add(iListener, &listenerv3.Listener{Name: n, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(h)}})
			}
		}
	}
	for _, up := range ups {
		if used[up.name] {
			b.egressCluster(up)
		}
	}
}
