package load

import "fmt"

// nameKeys are the API's name members of each kind, most specific first:
// a route input has virtualRouterName and routeName.
var nameKeys = []struct {
	kind, key, parentKey, describeKey string
}{
	{GatewayRoute, "gatewayRouteName", "virtualGatewayName", "gatewayRoute"},
	{Route, "routeName", "virtualRouterName", "route"},
	{VirtualGateway, "virtualGatewayName", "", "virtualGateway"},
	{VirtualRouter, "virtualRouterName", "", "virtualRouter"},
	{VirtualNode, "virtualNodeName", "", "virtualNode"},
	{VirtualService, "virtualServiceName", "", "virtualService"},
	{Mesh, "meshName", "", "mesh"},
}

// loadCLI reads `create-*`/`update-*` --cli-input-json input or
// `describe-*` output (one resource under its kind's key; metadata and
// status ignored).
func loadCLI(res *Result, loc Loc, o map[string]any) {
	format := CLI
	keys := nameKeys
	if len(o) == 1 {
		for i, nk := range nameKeys {
			if inner, ok := obj(o, nk.describeKey); ok {
				o, format, loc = inner, Describe, loc.at(nk.describeKey)
				keys = nameKeys[i : i+1] // describe-virtual-node output is a virtual node
				if _, ok := str(o, nk.key); !ok {
					res.Problems = append(res.Problems, Problem{loc, fmt.Sprintf("%s output without %s", nk.describeKey, nk.key)})
					return
				}
				break
			}
		}
	}
	for _, nk := range keys {
		name, ok := str(o, nk.key)
		if !ok {
			continue
		}
		d := Doc{Loc: loc, Format: format, Kind: nk.kind, Name: name}
		d.Mesh, _ = str(o, "meshName")
		if nk.kind == Mesh {
			d.Mesh = name
		}
		if nk.parentKey != "" {
			if d.Parent, ok = str(o, nk.parentKey); !ok {
				res.Problems = append(res.Problems, Problem{loc, fmt.Sprintf("%s %q has no %s", nk.kind, name, nk.parentKey)})
				return
			}
		}
		spec, err := specJSON(o["spec"])
		if err != nil {
			res.Problems = append(res.Problems, Problem{loc.at("spec"), err.Error()})
			return
		}
		d.Spec = spec
		res.Docs = append(res.Docs, d)
		return
	}
	if _, ok := o["spec"]; ok {
		res.Problems = append(res.Problems, Problem{loc, "a spec without name members (meshName and virtualNodeName, virtualServiceName, …): the AWS CLI took them from its --mesh-name and --virtual-*-name flags; add them to the file"})
		return
	}
	res.Skipped++
}
