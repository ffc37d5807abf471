package model

import (
	"fmt"

	"github.com/meshd/meshd/internal/appmesh/load"
)

// AdminPort is the Envoy admin port App Mesh's image uses by default
// (ENVOY_ADMIN_ACCESS_PORT); a listener on it cannot work.
const AdminPort = 9901

// crossCheck applies the rules that need more than one resource: a route's
// protocol and ports against its router's listeners and its targets'
// listeners, a gateway route's against its gateway's and its target
// service's.
func (c *Config) crossCheck() (problems, warnings []load.Problem) {
	at := func(loc load.Loc, path string) load.Loc {
		loc.Path = path
		return loc
	}
	for _, mn := range Names(c.Meshes) {
		m := c.Meshes[mn]
		for _, name := range Names(m.VirtualNodes) {
			vn := m.VirtualNodes[name]
			for i, p := range vn.Ports() {
				if p.Port == AdminPort {
					warnings = append(warnings, load.Problem{Loc: at(vn.Loc, fmt.Sprintf("spec.listeners[%d].portMapping.port", i)),
						Msg: fmt.Sprintf("port %d is Envoy's default admin port (ENVOY_ADMIN_ACCESS_PORT); the listener only works if the admin port is moved", AdminPort)})
				}
				l := vn.Spec.Listeners[i]
				if l.OutlierDetection != nil && vn.Spec.ServiceDiscovery != nil && vn.Spec.ServiceDiscovery.DNS != nil &&
					vn.Spec.ServiceDiscovery.DNS.ResponseType != "ENDPOINTS" {
					warnings = append(warnings, load.Problem{Loc: at(vn.Loc, fmt.Sprintf("spec.listeners[%d].outlierDetection", i)),
						Msg: "outlier detection has no effect with DNS responseType LOADBALANCER: clients see one address; use ENDPOINTS or Cloud Map"})
				}
			}
		}
		for _, name := range Names(m.VirtualGateways) {
			vg := m.VirtualGateways[name]
			for i, p := range vg.Ports() {
				if p.Port <= 1024 {
					warnings = append(warnings, load.Problem{Loc: at(vg.Loc, fmt.Sprintf("spec.listeners[%d].portMapping.port", i)),
						Msg: fmt.Sprintf("port %d needs CAP_NET_BIND_SERVICE for the Envoy user (and is refused on Fargate)", p.Port)})
				}
			}
			for _, gr := range vg.Routes {
				problems = append(problems, m.checkGatewayRoute(vg, gr)...)
			}
		}
		for _, name := range Names(m.VirtualRouters) {
			vr := m.VirtualRouters[name]
			for _, r := range vr.Routes {
				problems = append(problems, m.checkRoute(vr, r)...)
			}
		}
	}
	return problems, warnings
}

func (m *Mesh) checkRoute(vr *VirtualRouter, r *Route) []load.Problem {
	var problems []load.Problem
	kind := RouteKind(r.Spec)
	targets, matchPort := RouteTargets(r.Spec)
	bad := func(path, format string, args ...any) {
		loc := r.Loc
		loc.Path = "spec." + kind + "Route" + path
		problems = append(problems, load.Problem{Loc: loc, Msg: fmt.Sprintf(format, args...)})
	}
	listener, path, msg := pickListener("virtual router", vr.Name, vr.Ports(), matchPort, true)
	if msg != "" {
		bad(path, "%s", msg)
	}
	if listener != nil && listener.Protocol != kind {
		bad("", "a %s route cannot be served by virtual router %q's %s listener on port %d", kind, vr.Name, listener.Protocol, listener.Port)
	}
	for i, t := range targets {
		vn := m.VirtualNodes[t.VirtualNode]
		if vn == nil {
			continue // reported by load.Check
		}
		path := fmt.Sprintf(".action.weightedTargets[%d]", i)
		vp := vn.Ports()
		var tp *Port
		switch {
		case t.Port != nil:
			for j := range vp {
				if vp[j].Port == *t.Port {
					tp = &vp[j]
				}
			}
			if tp == nil {
				bad(path+".port", "virtual node %q has no listener on port %d (its listeners: %v)", vn.Name, *t.Port, vp)
			}
		case len(vp) == 1:
			tp = &vp[0]
		case len(vp) == 0:
			bad(path+".virtualNode", "virtual node %q has no listeners, so it cannot receive traffic", vn.Name)
		default:
			bad(path+".port", "is required: virtual node %q has %d listeners (%v)", vn.Name, len(vp), vp)
		}
		if tp != nil && tp.Protocol != kind {
			bad(path, "a %s route cannot send traffic to virtual node %q's %s listener on port %d", kind, vn.Name, tp.Protocol, tp.Port)
		}
	}
	return problems
}

func (m *Mesh) checkGatewayRoute(vg *VirtualGateway, gr *GatewayRoute) []load.Problem {
	var problems []load.Problem
	kind := GatewayRouteKind(gr.Spec)
	vsName, matchPort, targetPort := GatewayRouteTarget(gr.Spec)
	bad := func(path, format string, args ...any) {
		loc := gr.Loc
		loc.Path = "spec." + kind + "Route" + path
		problems = append(problems, load.Problem{Loc: loc, Msg: fmt.Sprintf(format, args...)})
	}
	listener, path, msg := pickListener("virtual gateway", vg.Name, vg.Ports(), matchPort, false)
	if msg != "" {
		bad(path, "%s", msg)
	}
	if listener != nil && listener.Protocol != kind {
		bad("", "a %s gateway route cannot be served by virtual gateway %q's %s listener on port %d", kind, vg.Name, listener.Protocol, listener.Port)
	}
	vs := m.VirtualServices[vsName]
	if vs == nil {
		return problems // reported by load.Check
	}
	sp := m.ServicePorts(vs)
	switch {
	case targetPort != 0:
		found := false
		for _, p := range sp {
			found = found || p.Port == targetPort
		}
		if !found {
			bad(".action.target.port", "virtual service %q is not served on port %d (its ports: %v)", vs.Name, targetPort, sp)
		}
	case len(sp) > 1:
		bad(".action.target.port", "is required: virtual service %q is served on %d ports (%v)", vs.Name, len(sp), sp)
	}
	return problems
}

// pickListener finds the listener of a router or gateway that a route with
// matchPort (0: unset) belongs to, or says why there is none.
func pickListener(what, name string, ports []Port, matchPort int64, needListener bool) (listener *Port, path, problem string) {
	switch {
	case matchPort != 0:
		for i := range ports {
			if ports[i].Port == matchPort {
				return &ports[i], "", ""
			}
		}
		return nil, ".match.port", fmt.Sprintf("%s %q has no listener on port %d (its listeners: %v)", what, name, matchPort, ports)
	case len(ports) == 1:
		return &ports[0], "", ""
	case len(ports) == 0:
		if needListener {
			return nil, "", fmt.Sprintf("%s %q has no listeners, so the route can never match", what, name)
		}
		return nil, "", ""
	}
	return nil, ".match.port", fmt.Sprintf("is required: %s %q has %d listeners (%v)", what, name, len(ports), ports)
}
