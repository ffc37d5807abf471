// Package model is a validated, indexed App Mesh configuration: every
// resource decoded into meshd's spec types, checked one by one
// (appmesh.Validate) and against each other (references, protocols, ports),
// and indexed by mesh and name so the translator can look things up.
// A Config is immutable once built; it is safe to share between goroutines.
package model

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
)

// Config is every mesh of a configuration.
type Config struct {
	Meshes map[string]*Mesh
}

// Mesh is one mesh and the resources in it.
type Mesh struct {
	Name            string
	Loc             load.Loc
	Spec            *appmesh.MeshSpec
	VirtualServices map[string]*VirtualService
	VirtualNodes    map[string]*VirtualNode
	VirtualRouters  map[string]*VirtualRouter
	VirtualGateways map[string]*VirtualGateway
}

// VirtualService is a virtual service.
type VirtualService struct {
	Name string
	Loc  load.Loc
	Spec *appmesh.VirtualServiceSpec
}

// VirtualNode is a virtual node.
type VirtualNode struct {
	Name string
	Loc  load.Loc
	Spec *appmesh.VirtualNodeSpec
}

// VirtualRouter is a virtual router and its routes, in name order.
type VirtualRouter struct {
	Name   string
	Loc    load.Loc
	Spec   *appmesh.VirtualRouterSpec
	Routes []*Route
}

// Route is a route of a virtual router.
type Route struct {
	Name string
	Loc  load.Loc
	Spec *appmesh.RouteSpec
}

// VirtualGateway is a virtual gateway and its gateway routes, in name order.
type VirtualGateway struct {
	Name   string
	Loc    load.Loc
	Spec   *appmesh.VirtualGatewaySpec
	Routes []*GatewayRoute
}

// GatewayRoute is a gateway route of a virtual gateway.
type GatewayRoute struct {
	Name string
	Loc  load.Loc
	Spec *appmesh.GatewayRouteSpec
}

// Build decodes, validates and indexes docs. It returns the problems found
// (each located by file, document, resource and field); the Config is nil
// when there is any, so a caller can never serve a partial configuration.
// Warnings do not stop a build.
func Build(docs []load.Doc) (cfg *Config, problems, warnings []load.Problem) {
	type decoded struct {
		doc  load.Doc
		spec any
	}
	var ok []decoded
	var okDocs []load.Doc
	for _, d := range docs {
		spec, err := appmesh.DecodeSpec(appmesh.ResourceKind(d.Kind), d.Spec)
		if err != nil {
			problems = append(problems, specProblem(d.Loc, err))
			continue
		}
		bad := false
		if d.Kind == load.VirtualService {
			if err := appmesh.CheckServiceName(d.Name); err != nil {
				problems = append(problems, load.Problem{Loc: d.Loc, Msg: err.Error()})
				bad = true
			}
		}
		for _, e := range appmesh.Validate(appmesh.ResourceKind(d.Kind), spec) {
			problems = append(problems, specProblem(d.Loc, e))
			bad = true
		}
		okDocs = append(okDocs, d)
		if !bad {
			ok = append(ok, decoded{d, spec})
		}
	}
	problems = append(problems, load.Check(okDocs)...)
	if len(problems) > 0 {
		return nil, problems, warnings
	}
	cfg = &Config{Meshes: map[string]*Mesh{}}
	for _, d := range ok {
		if d.doc.Kind == load.Mesh {
			cfg.Meshes[d.doc.Name] = &Mesh{
				Name: d.doc.Name, Loc: d.doc.Loc, Spec: d.spec.(*appmesh.MeshSpec),
				VirtualServices: map[string]*VirtualService{},
				VirtualNodes:    map[string]*VirtualNode{},
				VirtualRouters:  map[string]*VirtualRouter{},
				VirtualGateways: map[string]*VirtualGateway{},
			}
		}
	}
	for _, d := range ok {
		m := cfg.Meshes[d.doc.Mesh]
		switch d.doc.Kind {
		case load.VirtualService:
			m.VirtualServices[d.doc.Name] = &VirtualService{d.doc.Name, d.doc.Loc, d.spec.(*appmesh.VirtualServiceSpec)}
		case load.VirtualNode:
			m.VirtualNodes[d.doc.Name] = &VirtualNode{d.doc.Name, d.doc.Loc, d.spec.(*appmesh.VirtualNodeSpec)}
		case load.VirtualRouter:
			m.VirtualRouters[d.doc.Name] = &VirtualRouter{Name: d.doc.Name, Loc: d.doc.Loc, Spec: d.spec.(*appmesh.VirtualRouterSpec)}
		case load.VirtualGateway:
			m.VirtualGateways[d.doc.Name] = &VirtualGateway{Name: d.doc.Name, Loc: d.doc.Loc, Spec: d.spec.(*appmesh.VirtualGatewaySpec)}
		}
	}
	for _, d := range ok {
		m := cfg.Meshes[d.doc.Mesh]
		switch d.doc.Kind {
		case load.Route:
			vr := m.VirtualRouters[d.doc.Parent]
			vr.Routes = append(vr.Routes, &Route{d.doc.Name, d.doc.Loc, d.spec.(*appmesh.RouteSpec)})
		case load.GatewayRoute:
			vg := m.VirtualGateways[d.doc.Parent]
			vg.Routes = append(vg.Routes, &GatewayRoute{d.doc.Name, d.doc.Loc, d.spec.(*appmesh.GatewayRouteSpec)})
		}
	}
	for _, m := range cfg.Meshes {
		for _, vr := range m.VirtualRouters {
			sort.Slice(vr.Routes, func(i, j int) bool { return vr.Routes[i].Name < vr.Routes[j].Name })
		}
		for _, vg := range m.VirtualGateways {
			sort.Slice(vg.Routes, func(i, j int) bool { return vg.Routes[i].Name < vg.Routes[j].Name })
		}
	}
	p, w := cfg.crossCheck()
	problems = append(problems, p...)
	warnings = append(warnings, w...)
	sortProblems(problems)
	sortProblems(warnings)
	if len(problems) > 0 {
		return nil, problems, warnings
	}
	return cfg, nil, warnings
}

func sortProblems(ps []load.Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i].Loc, ps[j].Loc
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Doc < b.Doc
	})
}

func specProblem(loc load.Loc, err error) load.Problem {
	var se *appmesh.SpecError
	if errors.As(err, &se) {
		loc.Path = strings.TrimSuffix("spec."+se.Path, ".")
		return load.Problem{Loc: loc, Msg: se.Msg}
	}
	return load.Problem{Loc: loc, Msg: err.Error()}
}

// Names returns the keys of m, sorted.
func Names[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Port is a listener's port and protocol.
type Port struct {
	Port     int64
	Protocol string
}

func (p Port) String() string { return fmt.Sprintf("%s:%d", p.Protocol, p.Port) }

// Ports returns a virtual node's listener ports, in the order declared.
func (vn *VirtualNode) Ports() []Port {
	var out []Port
	for _, l := range vn.Spec.Listeners {
		out = append(out, portOf(l.PortMapping))
	}
	return out
}

// Ports returns a virtual router's listener ports.
func (vr *VirtualRouter) Ports() []Port {
	var out []Port
	for _, l := range vr.Spec.Listeners {
		out = append(out, portOf(l.PortMapping))
	}
	return out
}

// Ports returns a virtual gateway's listener ports.
func (vg *VirtualGateway) Ports() []Port {
	var out []Port
	for _, l := range vg.Spec.Listeners {
		if l.PortMapping != nil && l.PortMapping.Port != nil {
			out = append(out, Port{*l.PortMapping.Port, l.PortMapping.Protocol})
		}
	}
	return out
}

func portOf(pm *appmesh.PortMapping) Port {
	if pm == nil || pm.Port == nil {
		return Port{}
	}
	return Port{*pm.Port, pm.Protocol}
}

// Listener returns the virtual node's listener on port, or nil.
func (vn *VirtualNode) Listener(port int64) *appmesh.Listener {
	for i, l := range vn.Spec.Listeners {
		if l.PortMapping != nil && l.PortMapping.Port != nil && *l.PortMapping.Port == port {
			return &vn.Spec.Listeners[i]
		}
	}
	return nil
}

// Ports returns the ports a virtual service is reached on: its router's
// listeners, or its node's; none without a provider.
func (m *Mesh) ServicePorts(vs *VirtualService) []Port {
	p := vs.Spec.Provider
	switch {
	case p == nil:
		return nil
	case p.VirtualRouter != nil:
		if vr := m.VirtualRouters[p.VirtualRouter.VirtualRouterName]; vr != nil {
			return vr.Ports()
		}
	case p.VirtualNode != nil:
		if vn := m.VirtualNodes[p.VirtualNode.VirtualNodeName]; vn != nil {
			return vn.Ports()
		}
	}
	return nil
}

// RouteKind is the protocol of a route spec: http, http2, grpc or tcp.
func RouteKind(s *appmesh.RouteSpec) string {
	switch {
	case s.HTTPRoute != nil:
		return "http"
	case s.HTTP2Route != nil:
		return "http2"
	case s.GRPCRoute != nil:
		return "grpc"
	case s.TCPRoute != nil:
		return "tcp"
	}
	return ""
}

// RouteTargets returns a route's weighted targets and its match port (0 when
// unset).
func RouteTargets(s *appmesh.RouteSpec) (targets []appmesh.WeightedTarget, matchPort int64) {
	var p *int64
	switch {
	case s.HTTPRoute != nil:
		if s.HTTPRoute.Action != nil {
			targets = s.HTTPRoute.Action.WeightedTargets
		}
		if s.HTTPRoute.Match != nil {
			p = s.HTTPRoute.Match.Port
		}
	case s.HTTP2Route != nil:
		if s.HTTP2Route.Action != nil {
			targets = s.HTTP2Route.Action.WeightedTargets
		}
		if s.HTTP2Route.Match != nil {
			p = s.HTTP2Route.Match.Port
		}
	case s.GRPCRoute != nil:
		if s.GRPCRoute.Action != nil {
			targets = s.GRPCRoute.Action.WeightedTargets
		}
		if s.GRPCRoute.Match != nil {
			p = s.GRPCRoute.Match.Port
		}
	case s.TCPRoute != nil:
		if s.TCPRoute.Action != nil {
			targets = s.TCPRoute.Action.WeightedTargets
		}
		if s.TCPRoute.Match != nil {
			p = s.TCPRoute.Match.Port
		}
	}
	if p != nil {
		matchPort = *p
	}
	return targets, matchPort
}

// GatewayRouteKind is the protocol of a gateway route spec.
func GatewayRouteKind(s *appmesh.GatewayRouteSpec) string {
	switch {
	case s.HTTPRoute != nil:
		return "http"
	case s.HTTP2Route != nil:
		return "http2"
	case s.GRPCRoute != nil:
		return "grpc"
	}
	return ""
}

// GatewayRouteTarget returns a gateway route's target, match port (0 when
// unset) and target port (0 when unset).
func GatewayRouteTarget(s *appmesh.GatewayRouteSpec) (vs string, matchPort, targetPort int64) {
	var t *appmesh.GatewayRouteTarget
	var mp *int64
	switch {
	case s.HTTPRoute != nil:
		if s.HTTPRoute.Action != nil {
			t = s.HTTPRoute.Action.Target
		}
		if s.HTTPRoute.Match != nil {
			mp = s.HTTPRoute.Match.Port
		}
	case s.HTTP2Route != nil:
		if s.HTTP2Route.Action != nil {
			t = s.HTTP2Route.Action.Target
		}
		if s.HTTP2Route.Match != nil {
			mp = s.HTTP2Route.Match.Port
		}
	case s.GRPCRoute != nil:
		if s.GRPCRoute.Action != nil {
			t = s.GRPCRoute.Action.Target
		}
		if s.GRPCRoute.Match != nil {
			mp = s.GRPCRoute.Match.Port
		}
	}
	if mp != nil {
		matchPort = *mp
	}
	if t != nil {
		if t.VirtualService != nil {
			vs = t.VirtualService.VirtualServiceName
		}
		if t.Port != nil {
			targetPort = *t.Port
		}
	}
	return vs, matchPort, targetPort
}
