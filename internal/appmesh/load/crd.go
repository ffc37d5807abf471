package load

import (
	"fmt"
	"sort"
	"strings"

	"github.com/meshd/meshd/internal/appmesh"
)

// The App Mesh controller's CRDs, appmesh.k8s.aws/v1beta2.
const crdGroup = "appmesh.k8s.aws/"

type crdObject struct {
	loc             Loc
	kind            string
	namespace, name string
	awsName         string
	spec            map[string]any
}

func (c crdObject) key() string { return c.kind + "/" + c.namespace + "/" + c.name }

// crdOf recognises an App Mesh CRD; other Kubernetes kinds are skipped.
func crdOf(res *Result, loc Loc, o map[string]any) (crdObject, bool) {
	api, _ := o["apiVersion"].(string)
	kind, _ := o["kind"].(string)
	if !strings.HasPrefix(api, crdGroup) {
		res.Skipped++
		return crdObject{}, false
	}
	switch kind {
	case Mesh, VirtualNode, VirtualService, VirtualRouter, VirtualGateway, GatewayRoute:
	default:
		res.Skipped++ // BackendGroup and kinds with no App Mesh API counterpart
		return crdObject{}, false
	}
	if api != crdGroup+"v1beta2" {
		res.Problems = append(res.Problems, Problem{loc, fmt.Sprintf("%s %s: meshd reads appmesh.k8s.aws/v1beta2 (v1beta1 was removed by the controller in 2020)", api, kind)})
		return crdObject{}, false
	}
	md, _ := obj(o, "metadata")
	c := crdObject{kind: kind}
	c.name, _ = str(md, "name")
	c.namespace, _ = str(md, "namespace")
	if c.namespace == "" && kind != Mesh {
		c.namespace = "default"
	}
	if c.name == "" {
		res.Problems = append(res.Problems, Problem{loc.at("metadata.name"), "missing"})
		return crdObject{}, false
	}
	c.loc = loc
	c.loc.Resource = kind + " " + strings.TrimPrefix(c.namespace+"/"+c.name, "/")
	c.spec, _ = obj(o, "spec")
	if c.spec == nil {
		c.spec = map[string]any{}
	}
	c.awsName, _ = str(c.spec, "awsName")
	if c.awsName == "" {
		// The controller's defaulting webhook.
		switch kind {
		case Mesh:
			c.awsName = c.name
		case VirtualService:
			c.awsName = c.name + "." + c.namespace
		default:
			c.awsName = c.name + "_" + c.namespace
		}
	}
	return c, true
}

// crdSet resolves references between CRDs.
type crdSet struct {
	res    *Result
	byKey  map[string]*crdObject
	meshes []*crdObject
	vgs    []*crdObject
}

// refName resolves a {namespace?, name} reference to another CRD's App Mesh
// name; when the object is not among the files, the controller's default
// naming is assumed.
func (s *crdSet) refName(kind, fromNS string, ref map[string]any) (string, error) {
	name, ok := str(ref, "name")
	if !ok {
		return "", fmt.Errorf("reference without a name")
	}
	ns, ok := str(ref, "namespace")
	if !ok {
		ns = fromNS
	}
	if c, ok := s.byKey[kind+"/"+ns+"/"+name]; ok {
		return c.awsName, nil
	}
	if kind == VirtualService {
		return name + "." + ns, nil
	}
	return name + "_" + ns, nil
}

func convertCRDs(res *Result, crds []crdObject) {
	s := &crdSet{res: res, byKey: map[string]*crdObject{}}
	for i := range crds {
		c := &crds[i]
		if prev, dup := s.byKey[c.key()]; dup {
			res.Problems = append(res.Problems, Problem{c.loc, fmt.Sprintf("%s is defined twice (first at %s)", c.loc.Resource, prev.loc)})
			continue
		}
		s.byKey[c.key()] = c
		switch c.kind {
		case Mesh:
			s.meshes = append(s.meshes, c)
		case VirtualGateway:
			s.vgs = append(s.vgs, c)
		}
	}
	keys := make([]string, 0, len(s.byKey))
	for k := range s.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c := s.byKey[k]
		docs, err := s.convert(c)
		if err != nil {
			res.Problems = append(res.Problems, Problem{c.loc.at(pathOf(err)), err.Error()})
			continue
		}
		res.Docs = append(res.Docs, docs...)
	}
}

// k8sOnly are spec fields with no App Mesh API counterpart.
var k8sOnly = []string{"awsName", "meshRef", "podSelector", "namespaceSelector", "gatewayRouteSelector", "backendGroups", "virtualGatewayRef", "meshOwner"}

func (s *crdSet) convert(c *crdObject) ([]Doc, error) {
	spec := deepCopy(c.spec).(map[string]any)
	mesh, err := s.meshOf(c)
	if err != nil {
		return nil, err
	}
	for _, k := range k8sOnly {
		delete(spec, k)
	}
	d := Doc{Loc: c.loc, Format: Kubernetes, Kind: c.kind, Mesh: mesh, Name: c.awsName}
	var extra []Doc
	switch c.kind {
	case Mesh:
		if sd, ok := spec["meshServiceDiscovery"]; ok {
			spec["serviceDiscovery"] = sd
			delete(spec, "meshServiceDiscovery")
		}
	case VirtualService:
		if p, ok := obj(spec, "provider"); ok {
			if err := s.resolveRef(p, "virtualNode", "virtualNodeRef", "virtualNodeARN", "virtualNodeName", VirtualNode, c.namespace, "spec.provider.virtualNode"); err != nil {
				return nil, err
			}
			if err := s.resolveRef(p, "virtualRouter", "virtualRouterRef", "virtualRouterARN", "virtualRouterName", VirtualRouter, c.namespace, "spec.provider.virtualRouter"); err != nil {
				return nil, err
			}
		}
	case VirtualNode:
		backends, _ := spec["backends"].([]any)
		for i, b := range backends {
			bm, _ := b.(map[string]any)
			if err := s.resolveRef(bm, "virtualService", "virtualServiceRef", "virtualServiceARN", "virtualServiceName", VirtualService, c.namespace, fmt.Sprintf("spec.backends[%d].virtualService", i)); err != nil {
				return nil, err
			}
		}
	case VirtualRouter:
		routes, _ := spec["routes"].([]any)
		delete(spec, "routes")
		for i, r := range routes {
			rm, _ := r.(map[string]any)
			name, ok := str(rm, "name")
			if !ok {
				return nil, &pathErr{fmt.Sprintf("spec.routes[%d].name", i), fmt.Errorf("missing")}
			}
			delete(rm, "name")
			for _, proto := range []string{"httpRoute", "http2Route", "grpcRoute", "tcpRoute"} {
				route, _ := obj(rm, proto)
				action, _ := obj(route, "action")
				targets, _ := action["weightedTargets"].([]any)
				for j, t := range targets {
					tm, _ := t.(map[string]any)
					wrap := map[string]any{"t": tm}
					if err := s.resolveRef(wrap, "t", "virtualNodeRef", "virtualNodeARN", "virtualNode", VirtualNode, c.namespace, fmt.Sprintf("spec.routes[%d].%s.action.weightedTargets[%d]", i, proto, j)); err != nil {
						return nil, err
					}
				}
			}
			renameKeys(rm)
			s.prune(c, Route, rm, fmt.Sprintf("spec.routes[%d]", i))
			raw, err := specJSON(rm)
			if err != nil {
				return nil, &pathErr{fmt.Sprintf("spec.routes[%d]", i), err}
			}
			loc := c.loc.at(fmt.Sprintf("spec.routes[%d]", i))
			extra = append(extra, Doc{Loc: loc, Format: Kubernetes, Kind: Route, Mesh: mesh, Parent: c.awsName, Name: name, Spec: raw})
		}
	case GatewayRoute:
		vg, err := s.gatewayOf(c)
		if err != nil {
			return nil, err
		}
		d.Parent = vg
		for _, proto := range []string{"httpRoute", "http2Route", "grpcRoute"} {
			route, _ := obj(spec, proto)
			action, _ := obj(route, "action")
			target, _ := obj(action, "target")
			if err := s.resolveRef(target, "virtualService", "virtualServiceRef", "virtualServiceARN", "virtualServiceName", VirtualService, c.namespace, "spec."+proto+".action.target.virtualService"); err != nil {
				return nil, err
			}
		}
	}
	renameKeys(spec)
	s.prune(c, c.kind, spec, "spec")
	raw, err := specJSON(spec)
	if err != nil {
		return nil, err
	}
	d.Spec = raw
	return append([]Doc{d}, extra...), nil
}

// prune drops fields the App Mesh API does not have, as the Kubernetes API
// server does, with a warning for each.
func (s *crdSet) prune(c *crdObject, kind string, spec map[string]any, at string) {
	for _, p := range appmesh.Prune(appmesh.ResourceKind(kind), spec) {
		s.res.Warnings = append(s.res.Warnings, Problem{c.loc.at(at + "." + p), "unknown field ignored, as the Kubernetes API server prunes it"})
	}
}

// resolveRef replaces parent[field]{refKey|arnKey} with {nameKey: name}.
func (s *crdSet) resolveRef(parent map[string]any, field, refKey, arnKey, nameKey, kind, ns, path string) error {
	m, ok := obj(parent, field)
	if !ok {
		return nil
	}
	switch {
	case m[refKey] != nil:
		ref, _ := m[refKey].(map[string]any)
		name, err := s.refName(kind, ns, ref)
		if err != nil {
			return &pathErr{path + "." + refKey, err}
		}
		delete(m, refKey)
		m[nameKey] = name
	case m[arnKey] != nil:
		arn, _ := m[arnKey].(string)
		name, err := nameFromARN(arn, kind)
		if err != nil {
			return &pathErr{path + "." + arnKey, err}
		}
		delete(m, arnKey)
		m[nameKey] = name
	}
	return nil
}

// nameFromARN takes the resource name from an App Mesh ARN
// (…:mesh/<mesh>/<kind>/<name>).
func nameFromARN(arn, kind string) (string, error) {
	_, rest, ok := strings.Cut(arn, ":mesh/")
	parts := strings.Split(rest, "/")
	want := strings.ToLower(kind[:1]) + kind[1:]
	if !ok || len(parts) != 3 || parts[1] != want {
		return "", fmt.Errorf("%q is not a %s ARN (arn:aws:appmesh:<region>:<account>:mesh/<mesh>/%s/<name>)", arn, kind, want)
	}
	if parts[2] == "" {
		return "", fmt.Errorf("ARN %q has an empty %s name", arn, want)
	}
	if kind != VirtualService {
		if err := appmesh.CheckName(parts[2]); err != nil {
			return "", fmt.Errorf("ARN %q: %v", arn, err)
		}
	}
	return parts[2], nil
}

// meshOf follows meshRef, else the only Mesh among the files.
func (s *crdSet) meshOf(c *crdObject) (string, error) {
	if c.kind == Mesh {
		return c.awsName, nil
	}
	if ref, ok := obj(c.spec, "meshRef"); ok {
		name, _ := str(ref, "name")
		for _, m := range s.meshes {
			if m.name == name {
				return m.awsName, nil
			}
		}
		return name, nil
	}
	if len(s.meshes) == 1 {
		return s.meshes[0].awsName, nil
	}
	return "", nil // Files applies the default mesh, or reports it
}

// gatewayOf follows virtualGatewayRef, else the only virtual gateway in the
// resource's namespace, else the only one among the files.
func (s *crdSet) gatewayOf(c *crdObject) (string, error) {
	if ref, ok := obj(c.spec, "virtualGatewayRef"); ok {
		return s.refName(VirtualGateway, c.namespace, ref)
	}
	var same []*crdObject
	for _, vg := range s.vgs {
		if vg.namespace == c.namespace {
			same = append(same, vg)
		}
	}
	switch {
	case len(same) == 1:
		return same[0].awsName, nil
	case len(same) == 0 && len(s.vgs) == 1:
		return s.vgs[0].awsName, nil
	}
	return "", &pathErr{"spec.virtualGatewayRef", fmt.Errorf("missing, and the files do not hold exactly one VirtualGateway to bind the route to (the controller matches gateways by label selectors, which meshd does not evaluate)")}
}

// crdRenames are members the CRDs spell differently from the API.
var crdRenames = map[string]string{"certificateARN": "certificateArn", "certificateAuthorityARNs": "certificateAuthorityArns"}

func renameKeys(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if n, ok := crdRenames[k]; ok {
				delete(x, k)
				x[n] = e
			}
			renameKeys(e)
		}
	case []any:
		for _, e := range x {
			renameKeys(e)
		}
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	default:
		return v
	}
}
