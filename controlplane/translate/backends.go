package translate

import (
	"cmp"
	"slices"
	"sort"
	"strings"

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
	names = dedupe(names)
	services := make([]service, 0, len(names))
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
	via := make(map[key]reach, 8*len(names)) // sizes: a guess
	tpls := make([]*service, len(names))
	for i, name := range names {
		vs := b.m.VirtualServices[name]
		if vs == nil {
			continue
		}
		tpls[i] = b.resolve(vs)
		for _, sp := range tpls[i].ports {
			for _, r := range sp.routes {
				for _, t := range r.targets {
					k := key{t.up.vn.Name, t.up.port.Port}
					switch r, ok := via[k]; {
					case !ok:
						via[k] = reach{first: name}
					case r.first != name && !r.multi:
						r.multi = true
						via[k] = r
					}
				}
			}
		}
	}
	ups := make([]*upstream, 0, 16*len(names))
	for i, name := range names {
		vs := b.m.VirtualServices[name]
		if vs == nil {
			b.warn("virtual service %q is not defined in mesh %q", name, b.m.Name)
			continue
		}
		var policy *clientTLS
		if policyFor != nil {
			policy = policyFor(name)
		}
		if vs.Spec.Provider == nil {
			b.warn("virtual service %q has no provider yet: it routes nothing", name)
		}
		tpl := tpls[i]
		// Without a policy, and with no target listener also reached
		// through another service, the node reaches the service as
		// every node does: its routes and upstreams are shared.
		var nRoutes, nTargets int
		own := policy != nil
		for _, sp := range tpl.ports {
			nRoutes += len(sp.routes)
			for _, r := range sp.routes {
				nTargets += len(r.targets)
				for _, t := range r.targets {
					own = own || via[key{t.up.vn.Name, t.up.port.Port}].multi
				}
			}
		}
		if !own {
			for _, sp := range tpl.ports {
				for _, r := range sp.routes {
					for _, t := range r.targets {
						ups = append(ups, t.up)
					}
				}
			}
			services = append(services, *tpl)
			continue
		}
		// Else the node's own copy, with its own upstreams.
		s := service{vs: vs, ports: make([]servicePort, len(tpl.ports))}
		routes := make([]route, nRoutes)
		targets := make([]target, nTargets)
		block := make([]upstream, nTargets)
		for i, sp := range tpl.ports {
			rs := routes[:len(sp.routes):len(sp.routes)]
			routes = routes[len(sp.routes):]
			for j, r := range sp.routes {
				ts := targets[:len(r.targets):len(r.targets)]
				targets = targets[len(r.targets):]
				for k, t := range r.targets {
					up := &block[0]
					block = block[1:]
					*up = *t.up
					up.policy = policy
					if via[key{up.vn.Name, up.port.Port}].multi {
						up.name += "_" + sanitize(up.vs.Name)
					}
					ups = append(ups, up)
					ts[k] = target{up: up, weight: t.weight}
				}
				rs[j] = r
				rs[j].targets = ts
			}
			s.ports[i] = servicePort{Port: sp.Port, routes: rs}
		}
		services = append(services, s)
	}
	// Merge duplicates (the same node and port through the same service,
	// from several routes) into the first of them. Stable: the first of
	// each name comes first. Duplicates are equal already (same service,
	// so same policy); shared ones are never written.
	slices.SortStableFunc(ups, func(x, y *upstream) int { return strings.Compare(x.name, y.name) })
	unique := ups[:0]
	for _, up := range ups {
		if n := len(unique); n > 0 && unique[n-1].name == up.name {
			if *up != *unique[n-1] {
				*up = *unique[n-1]
			}
			continue
		}
		unique = append(unique, up)
	}
	return services, unique
}

// resolve returns a virtual service's ports, routes (sorted) and targets
// as every node reaches it, resolved once per translator: its upstreams
// are named without the service and have no policy. Nodes share it or
// copy it, never modify it.
func (b *builder) resolve(vs *model.VirtualService) *service {
	m := &b.t.memo
	m.mu.Lock()
	s := m.services[vs]
	m.mu.Unlock()
	if s != nil {
		return s
	}
	s = &service{vs: vs}
	p := vs.Spec.Provider
	switch {
	case p == nil:
	case p.VirtualNode != nil:
		vn := b.m.VirtualNodes[p.VirtualNode.VirtualNodeName]
		for _, port := range vn.Ports() {
			up := &upstream{vs: vs, vn: vn, port: port, name: clusterName("egress", b.m.Name, vn.Name, port.Protocol, port.Port)}
			s.ports = append(s.ports, servicePort{Port: port, routes: []route{{
				name: "", priority: 0, targets: []target{{up: up, weight: 100}}, timeout: vn.Listener(port.Port).Timeout,
			}}})
		}
	case p.VirtualRouter != nil:
		vr := b.m.VirtualRouters[p.VirtualRouter.VirtualRouterName]
		for _, port := range vr.Ports() {
			sp := servicePort{Port: port, routes: make([]route, 0, len(vr.Routes))}
			for _, r := range vr.Routes {
				targets, matchPort := model.RouteTargets(r.Spec)
				if matchPort != 0 && matchPort != port.Port || matchPort == 0 && len(vr.Spec.Listeners) != 1 {
					continue
				}
				rt := route{name: r.Name, priority: 1001, spec: r.Spec}
				if r.Spec.Priority != nil {
					rt.priority = *r.Spec.Priority
				}
				rt.targets = make([]target, 0, len(targets))
				for _, wt := range targets {
					vn := b.m.VirtualNodes[wt.VirtualNode]
					tp := targetPort(vn, wt.Port)
					up := &upstream{vs: vs, vn: vn, port: tp, name: clusterName("egress", b.m.Name, vn.Name, tp.Protocol, tp.Port)}
					rt.targets = append(rt.targets, target{up: up, weight: uint32(*wt.Weight)})
				}
				sp.routes = append(sp.routes, rt)
			}
			sortRoutes(sp.routes)
			s.ports = append(s.ports, sp)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev := m.services[vs]; prev != nil {
		return prev
	}
	m.services[vs] = s
	return s
}

// targetPort is the port of vn a weighted target reaches: the one named,
// else the first.
func targetPort(vn *model.VirtualNode, port *int64) model.Port {
	ls := vn.Spec.Listeners
	if len(ls) == 0 {
		return vn.Ports()[0] // as before: no port (model.Build refuses this)
	}
	tp := portOf(ls[0].PortMapping)
	if port != nil {
		for _, l := range ls {
			if p := portOf(l.PortMapping); p.Port == *port {
				tp = p
			}
		}
	}
	return tp
}

// portOf is model's port of a listener's port mapping.
func portOf(pm *appmesh.PortMapping) model.Port {
	if pm == nil || pm.Port == nil {
		return model.Port{}
	}
	return model.Port{Port: *pm.Port, Protocol: pm.Protocol}
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
	slices.SortStableFunc(routes, func(a, b route) int {
		if a.priority != b.priority {
			return cmp.Compare(a.priority, b.priority)
		}
		ra, rb := rankOf(a), rankOf(b)
		if ra != rb {
			if ra.class != rb.class {
				return cmp.Compare(rb.class, ra.class)
			}
			if ra.length != rb.length {
				return cmp.Compare(rb.length, ra.length)
			}
			return cmp.Compare(rb.conditions, ra.conditions)
		}
		return strings.Compare(a.name, b.name)
	})
}
