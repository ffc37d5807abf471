package translate

import (
	"sort"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// service is a virtual service as one node reaches it.
type service struct {
	vs    *model.VirtualService
	ports []servicePort
}

// servicePort is a virtual service on one port and the routes it has there.
type servicePort struct {
	model.Port
	routes []route
}

// route is an App Mesh route (or the implicit route of a virtual node
// provider) on one port.
type route struct {
	name     string
	priority int64
	spec     *appmesh.RouteSpec // nil for a virtual node provider
	targets  []target
	// timeout is the target listener's timeout, used for a virtual node
	// provider's implicit route.
	timeout *appmesh.ListenerTimeout
}

// target is one weighted target, resolved to its upstream.
type target struct {
	up     *upstream
	weight uint32
}

// upstream is one egress cluster: a target virtual node's listener, reached
// through one virtual service.
type upstream struct {
	name   string
	vs     *model.VirtualService
	vn     *model.VirtualNode
	port   model.Port
	policy *clientTLS // nil: no client policy applies
}

// egress resolves the virtual services named, in name order, with their
// routes and upstreams. A virtual node reached through more than one of
// them gets a cluster per service, so stats stay attributable.
func (b *builder) egress(names []string, policyFor func(vs string) *clientTLS) ([]service, []*upstream) {
	sort.Strings(names)
	var services []service
	type key struct {
		vn   string
		port int64
	}
	// via records the first service each target listener is reached
	// through, and whether another one reaches it too.
	type reach struct {
		first string
		multi bool
	}
	via := map[key]*reach{}
	var ups []*upstream
	for _, name := range dedupe(names) {
		vs := b.m.VirtualServices[name]
		if vs == nil {
			b.warn("virtual service %q is not defined in mesh %q", name, b.m.Name)
			continue
		}
		s := service{vs: vs}
		var policy *clientTLS
		if policyFor != nil {
			policy = policyFor(name)
		}
		p := vs.Spec.Provider
		switch {
		case p == nil:
			b.warn("virtual service %q has no provider yet: it routes nothing", name)
		case p.VirtualNode != nil:
			vn := b.m.VirtualNodes[p.VirtualNode.VirtualNodeName]
			for _, port := range vn.Ports() {
				up := &upstream{vs: vs, vn: vn, port: port}
				ups = append(ups, up)
				s.ports = append(s.ports, servicePort{Port: port, routes: []route{{
					name: "", priority: 0, targets: []target{{up: up, weight: 100}}, timeout: vn.Listener(port.Port).Timeout,
				}}})
			}
		case p.VirtualRouter != nil:
			vr := b.m.VirtualRouters[p.VirtualRouter.VirtualRouterName]
			for _, port := range vr.Ports() {
				sp := servicePort{Port: port}
				for _, r := range vr.Routes {
					targets, matchPort := model.RouteTargets(r.Spec)
					if matchPort != 0 && matchPort != port.Port || matchPort == 0 && len(vr.Spec.Listeners) != 1 {
						continue
					}
					rt := route{name: r.Name, priority: 1001, spec: r.Spec}
					if r.Spec.Priority != nil {
						rt.priority = *r.Spec.Priority
					}
					for _, wt := range targets {
						vn := b.m.VirtualNodes[wt.VirtualNode]
						tp := vn.Ports()[0]
						if wt.Port != nil {
							for _, p := range vn.Ports() {
								if p.Port == *wt.Port {
									tp = p
								}
							}
						}
						up := &upstream{vs: vs, vn: vn, port: tp}
						ups = append(ups, up)
						rt.targets = append(rt.targets, target{up: up, weight: uint32(*wt.Weight)})
					}
					sp.routes = append(sp.routes, rt)
				}
				sortRoutes(sp.routes)
				s.ports = append(s.ports, sp)
			}
		}
		for _, sp := range s.ports {
			for _, r := range sp.routes {
				for _, t := range r.targets {
					t.up.policy = policy
					k := key{t.up.vn.Name, t.up.port.Port}
					switch r := via[k]; {
					case r == nil:
						via[k] = &reach{first: name}
					case r.first != name:
						r.multi = true
					}
				}
			}
		}
		services = append(services, s)
	}
	// Name the upstreams, merging duplicates (the same node and port through
	// the same service, from several routes).
	byName := map[string]*upstream{}
	var unique []*upstream
	for _, up := range ups {
		up.name = clusterName("egress", b.m.Name, up.vn.Name, up.port.Protocol, up.port.Port)
		if via[key{up.vn.Name, up.port.Port}].multi {
			up.name += "_" + sanitize(up.vs.Name)
		}
		if prev, ok := byName[up.name]; ok {
			*up = *prev
			continue
		}
		byName[up.name] = up
		unique = append(unique, up)
	}
	sort.Slice(unique, func(i, j int) bool { return unique[i].name < unique[j].name })
	return services, unique
}

func dedupe(sorted []string) []string {
	var out []string
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// backendNames lists a virtual node's backend virtual services.
func backendNames(vn *model.VirtualNode) []string {
	var out []string
	for _, be := range vn.Spec.Backends {
		if be.VirtualService != nil {
			out = append(out, be.VirtualService.VirtualServiceName)
		}
	}
	return out
}

// sortRoutes orders routes by priority (unset last), then, as App Mesh
// leaves the order of equal priorities open, most specific first: an exact
// path, then a regex, then the longest prefix, then more header, query and
// method conditions; then by name.
func sortRoutes(routes []route) {
	type rank struct{ class, length, conditions int }
	rankOf := func(r route) rank {
		s := r.spec
		switch {
		case s == nil:
		case s.HTTPRoute != nil || s.HTTP2Route != nil:
			h := s.HTTPRoute
			if h == nil {
				h = s.HTTP2Route
			}
			m := h.Match
			if m == nil {
				return rank{1, 1, 0}
			}
			n := len(m.Headers) + len(m.QueryParameters)
			if m.Method != "" {
				n++
			}
			if m.Scheme != "" {
				n++
			}
			switch {
			case m.Path != nil && m.Path.Exact != "":
				return rank{3, len(m.Path.Exact), n}
			case m.Path != nil:
				return rank{2, len(m.Path.Regex), n}
			case m.Prefix != nil:
				return rank{1, len(*m.Prefix), n}
			}
			return rank{1, 1, n}
		case s.GRPCRoute != nil:
			m := s.GRPCRoute.Match
			if m == nil {
				return rank{1, 0, 0}
			}
			switch {
			case m.MethodName != "":
				return rank{3, len(m.ServiceName) + len(m.MethodName), len(m.Metadata)}
			case m.ServiceName != "":
				return rank{2, len(m.ServiceName), len(m.Metadata)}
			}
			return rank{1, 0, len(m.Metadata)}
		}
		return rank{}
	}
	sort.SliceStable(routes, func(i, j int) bool {
		a, b := routes[i], routes[j]
		if a.priority != b.priority {
			return a.priority < b.priority
		}
		ra, rb := rankOf(a), rankOf(b)
		if ra != rb {
			if ra.class != rb.class {
				return ra.class > rb.class
			}
			if ra.length != rb.length {
				return ra.length > rb.length
			}
			return ra.conditions > rb.conditions
		}
		return a.name < b.name
	})
}
