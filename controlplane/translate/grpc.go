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
	for _, s := range services {
		for i, sp := range s.ports {
			if sp.Protocol == "tcp" {
				b.warn("virtual service %q port %d is TCP: a gRPC client cannot use it", s.vs.Name, sp.Port.Port)
				continue
			}
			hostPort := fmt.Sprintf("%s:%d", s.vs.Name, sp.Port.Port)
			rc := &routev3.RouteConfiguration{Name: hostPort, VirtualHosts: []*routev3.VirtualHost{b.sharedVirtualHost(s, sp, []string{s.vs.Name, hostPort})}}
			b.add(iRoute, rc)
			names := []string{hostPort}
			if i == 0 {
				names = append(names, s.vs.Name)
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
		b.egressCluster(up)
	}
}
