package load

import (
	"encoding/json"
	"fmt"
)

// Check reports resources defined twice and references to resources that
// are not defined: a route to an unknown virtual node, a backend or gateway
// target to an unknown virtual service, a provider, a parent, or a mesh
// that does not exist.
func Check(docs []Doc) []Problem {
	type key struct{ kind, mesh, parent, name string }
	defined := map[key]Doc{}
	var problems []Problem
	for _, d := range docs {
		k := key{d.Kind, d.Mesh, d.Parent, d.Name}
		if prev, dup := defined[k]; dup {
			problems = append(problems, Problem{d.Loc, fmt.Sprintf("%s %q is defined twice (first at %s)", d.Kind, d.Name, prev.Loc)})
			continue
		}
		defined[k] = d
	}
	has := func(kind, mesh, name string) bool { _, ok := defined[key{kind, mesh, "", name}]; return ok }
	for _, d := range docs {
		if d.Kind != Mesh && !has(Mesh, d.Mesh, d.Mesh) {
			problems = append(problems, Problem{d.Loc, fmt.Sprintf("%s %q is in mesh %q, which is not defined", d.Kind, d.Name, d.Mesh)})
		}
		var spec map[string]any
		if json.Unmarshal(d.Spec, &spec) != nil {
			continue // DecodeSpec reports it
		}
		ref := func(kind, name, path string) {
			if name != "" && !has(kind, d.Mesh, name) {
				problems = append(problems, Problem{d.Loc.at("spec." + path), fmt.Sprintf("%s %q is not defined in mesh %q", kind, name, d.Mesh)})
			}
		}
		switch d.Kind {
		case VirtualService:
			ref(VirtualNode, strAt(spec, "provider", "virtualNode", "virtualNodeName"), "provider.virtualNode.virtualNodeName")
			ref(VirtualRouter, strAt(spec, "provider", "virtualRouter", "virtualRouterName"), "provider.virtualRouter.virtualRouterName")
		case VirtualNode:
			for i, b := range listAt(spec, "backends") {
				ref(VirtualService, strAt(b, "virtualService", "virtualServiceName"), fmt.Sprintf("backends[%d].virtualService.virtualServiceName", i))
			}
		case Route:
			if !has(VirtualRouter, d.Mesh, d.Parent) {
				problems = append(problems, Problem{d.Loc, fmt.Sprintf("route %q belongs to virtual router %q, which is not defined in mesh %q", d.Name, d.Parent, d.Mesh)})
			}
			for _, proto := range []string{"httpRoute", "http2Route", "grpcRoute", "tcpRoute"} {
				for i, t := range listAt(objAt(spec, proto, "action"), "weightedTargets") {
					ref(VirtualNode, strAt(t, "virtualNode"), fmt.Sprintf("%s.action.weightedTargets[%d].virtualNode", proto, i))
				}
			}
		case GatewayRoute:
			if !has(VirtualGateway, d.Mesh, d.Parent) {
				problems = append(problems, Problem{d.Loc, fmt.Sprintf("gateway route %q belongs to virtual gateway %q, which is not defined in mesh %q", d.Name, d.Parent, d.Mesh)})
			}
			for _, proto := range []string{"httpRoute", "http2Route", "grpcRoute"} {
				ref(VirtualService, strAt(spec, proto, "action", "target", "virtualService", "virtualServiceName"), proto+".action.target.virtualService.virtualServiceName")
			}
		}
	}
	return problems
}

func objAt(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		next, ok := m[p].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

func strAt(m map[string]any, path ...string) string {
	s, _ := objAt(m, path[:len(path)-1]...)[path[len(path)-1]].(string)
	return s
}

func listAt(m map[string]any, k string) []map[string]any {
	l, _ := m[k].([]any)
	out := make([]map[string]any, 0, len(l))
	for _, e := range l {
		if o, ok := e.(map[string]any); ok {
			out = append(out, o)
		}
	}
	return out
}
