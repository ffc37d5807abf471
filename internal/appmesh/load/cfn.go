package load

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

func isCFN(o map[string]any) bool {
	_, res := o["Resources"].(map[string]any)
	_, ver := o["AWSTemplateFormatVersion"]
	return res || ver
}

// cfnKinds maps CloudFormation types to kinds and their name properties.
var cfnKinds = map[string]struct{ kind, nameProp, parentProp string }{
	"AWS::AppMesh::Mesh":           {Mesh, "MeshName", ""},
	"AWS::AppMesh::VirtualService": {VirtualService, "VirtualServiceName", ""},
	"AWS::AppMesh::VirtualNode":    {VirtualNode, "VirtualNodeName", ""},
	"AWS::AppMesh::VirtualRouter":  {VirtualRouter, "VirtualRouterName", ""},
	"AWS::AppMesh::Route":          {Route, "RouteName", "VirtualRouterName"},
	"AWS::AppMesh::VirtualGateway": {VirtualGateway, "VirtualGatewayName", ""},
	"AWS::AppMesh::GatewayRoute":   {GatewayRoute, "GatewayRouteName", "VirtualGatewayName"},
}

// template evaluates the intrinsic functions that can be resolved offline.
type template struct {
	resolving map[string]bool // GetAtt resource.attribute being resolved
	params    map[string]any
	declared  map[string]bool
	resources map[string]any
	mappings  map[string]any
}

// unresolvable is a value that needs AWS (or a condition) to be known.
type unresolvable struct{ why string }

func (u *unresolvable) Error() string { return u.why }

func loadCFN(res *Result, loc Loc, o map[string]any, overrides map[string]string) {
	t := &template{params: map[string]any{}, declared: map[string]bool{}, mappings: map[string]any{}, resolving: map[string]bool{}}
	t.resources, _ = obj(o, "Resources")
	t.mappings, _ = obj(o, "Mappings")
	if ps, ok := obj(o, "Parameters"); ok {
		for name, p := range ps {
			t.declared[name] = true
			if pm, ok := p.(map[string]any); ok {
				if def, ok := pm["Default"]; ok {
					t.params[name] = def
				}
			}
			if v, ok := overrides[name]; ok {
				t.params[name] = v
			}
		}
	}
	ids := make([]string, 0, len(t.resources))
	for id := range t.resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r, ok := t.resources[id].(map[string]any)
		if !ok {
			continue
		}
		typ, _ := r["Type"].(string)
		k, ok := cfnKinds[strings.TrimSpace(typ)]
		if !ok {
			res.Skipped++
			continue
		}
		rloc := loc
		rloc.Resource = id
		if c, ok := r["Condition"]; ok {
			res.Problems = append(res.Problems, Problem{rloc.at("Condition"), fmt.Sprintf("the resource depends on condition %v, which meshd does not evaluate offline", c)})
			continue
		}
		props, _ := obj(r, "Properties")
		d := Doc{Loc: rloc, Format: CloudFormation, Kind: k.kind}
		var problems []Problem
		resolveName := func(prop string) string {
			v, err := t.eval(props[prop], "")
			if err != nil {
				problems = append(problems, Problem{rloc.at("Properties." + prop), err.Error()})
				return ""
			}
			s, err := scalarString(v)
			if err != nil || s == "" {
				problems = append(problems, Problem{rloc.at("Properties." + prop), "missing or not a string"})
			}
			return s
		}
		d.Mesh = resolveName("MeshName")
		if k.kind != Mesh {
			d.Name = resolveName(k.nameProp)
		} else {
			d.Name = d.Mesh
		}
		if k.parentProp != "" {
			d.Parent = resolveName(k.parentProp)
		}
		spec, err := t.eval(props["Spec"], "")
		if err != nil {
			problems = append(problems, Problem{rloc.at("Properties.Spec" + pathOf(err)), err.Error()})
		}
		if len(problems) > 0 {
			res.Problems = append(res.Problems, problems...)
			continue
		}
		raw, err := specJSON(camelKeys(spec, ""))
		if err != nil {
			res.Problems = append(res.Problems, Problem{rloc.at("Properties.Spec"), err.Error()})
			continue
		}
		d.Spec = raw
		res.Docs = append(res.Docs, d)
	}
}

// pathErr locates an evaluation error inside the value.
type pathErr struct {
	path string
	err  error
}

func (e *pathErr) Error() string { return e.err.Error() }
func (e *pathErr) Unwrap() error { return e.err }

func pathOf(err error) string {
	if pe, ok := err.(*pathErr); ok {
		return pe.path
	}
	return ""
}

// eval resolves intrinsics inside v. path is v's location, for errors.
func (t *template) eval(v any, path string) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for fn, arg := range x {
				if fn == "Ref" || strings.HasPrefix(fn, "Fn::") {
					r, err := t.intrinsic(fn, arg, path)
					if err != nil {
						// Located at the intrinsic: paths inside its
						// arguments do not exist in the resolved value.
						if pe, ok := err.(*pathErr); ok {
							err = pe.err
						}
						return nil, &pathErr{path, err}
					}
					return r, nil
				}
			}
		}
		out := make(map[string]any, len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			r, err := t.eval(x[k], path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := t.eval(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

func (t *template) intrinsic(fn string, arg any, path string) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Ref takes a name")
		}
		return t.ref(name)
	case "Fn::GetAtt":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("Fn::GetAtt takes [resource, attribute]")
		}
		res, _ := l[0].(string)
		attr, err := t.eval(l[1], path)
		if err != nil {
			return nil, err
		}
		a, _ := attr.(string)
		return t.getAtt(res, a)
	case "Fn::Sub":
		return t.sub(arg, path)
	case "Fn::Join":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("Fn::Join takes [delimiter, [values]]")
		}
		delim, _ := l[0].(string)
		items, err := t.eval(l[1], path)
		if err != nil {
			return nil, err
		}
		list, ok := items.([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Join: the values are not a list")
		}
		parts := make([]string, len(list))
		for i, it := range list {
			s, err := scalarString(it)
			if err != nil {
				return nil, fmt.Errorf("Fn::Join: value %d: %v", i, err)
			}
			parts[i] = s
		}
		return strings.Join(parts, delim), nil
	case "Fn::Select":
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, fmt.Errorf("Fn::Select takes [index, list]")
		}
		idx, err := t.eval(l[0], path)
		if err != nil {
			return nil, err
		}
		list, err := t.eval(l[1], path)
		if err != nil {
			return nil, err
		}
		is, _ := scalarString(idx)
		i, err := strconv.Atoi(is)
		items, ok := list.([]any)
		if err != nil || !ok || i < 0 || i >= len(items) {
			return nil, fmt.Errorf("Fn::Select: index %v out of range", idx)
		}
		return items[i], nil
	case "Fn::FindInMap":
		l, ok := arg.([]any)
		if !ok || len(l) != 3 {
			return nil, fmt.Errorf("Fn::FindInMap takes [map, key, key]")
		}
		var keys [3]string
		for i, e := range l {
			v, err := t.eval(e, path)
			if err != nil {
				return nil, err
			}
			if keys[i], err = scalarString(v); err != nil {
				return nil, fmt.Errorf("Fn::FindInMap: %v", err)
			}
		}
		m1, _ := obj(t.mappings, keys[0])
		m2, _ := obj(m1, keys[1])
		v, ok := m2[keys[2]]
		if !ok {
			return nil, fmt.Errorf("Fn::FindInMap: no %s/%s/%s in Mappings", keys[0], keys[1], keys[2])
		}
		return v, nil
	case "Fn::ImportValue":
		return nil, &unresolvable{"Fn::ImportValue reads another stack's export, which meshd cannot resolve offline"}
	case "Fn::If", "Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not":
		return nil, &unresolvable{fn + " depends on conditions, which meshd does not evaluate offline"}
	default:
		return nil, &unresolvable{fn + " cannot be resolved offline"}
	}
}

func (t *template) ref(name string) (any, error) {
	if v, ok := t.params[name]; ok {
		return v, nil
	}
	if strings.HasPrefix(name, "AWS::") {
		return nil, &unresolvable{fmt.Sprintf("Ref %s is known only to a deployed stack", name)}
	}
	if t.declared[name] {
		return nil, &unresolvable{fmt.Sprintf("parameter %s has no Default and no value was given offline (pass one with --cfn-parameter %s=VALUE)", name, name)}
	}
	if _, ok := t.resources[name]; ok {
		return nil, &unresolvable{fmt.Sprintf("Ref %s is the ARN or id of a deployed resource; use !GetAtt %s.<Name attribute> for an App Mesh name", name, name)}
	}
	return nil, fmt.Errorf("Ref %s: no parameter with a Default or resource of that name", name)
}

func (t *template) getAtt(res, attr string) (any, error) {
	r, ok := t.resources[res].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: no resource %s", res, attr, res)
	}
	typ, _ := r["Type"].(string)
	k, appmesh := cfnKinds[strings.TrimSpace(typ)]
	if !appmesh {
		return nil, &unresolvable{fmt.Sprintf("Fn::GetAtt %s.%s is an attribute of a deployed %s", res, attr, typ)}
	}
	if attr != "" && (attr == "MeshName" || attr == k.nameProp || attr == k.parentProp) {
		key := res + "." + attr
		if t.resolving[key] {
			return nil, fmt.Errorf("Fn::GetAtt %s refers back to itself", key)
		}
		t.resolving[key] = true
		defer delete(t.resolving, key)
		props, _ := obj(r, "Properties")
		return t.eval(props[attr], "")
	}
	return nil, &unresolvable{fmt.Sprintf("Fn::GetAtt %s.%s is known only to a deployed stack", res, attr)}
}

// sub implements Fn::Sub: "${Name}", "${Res.Attr}", "${!Literal}", with
// optional variables.
func (t *template) sub(arg any, path string) (any, error) {
	var tmpl string
	vars := map[string]any{}
	switch a := arg.(type) {
	case string:
		tmpl = a
	case []any:
		if len(a) != 2 {
			return nil, fmt.Errorf("Fn::Sub takes a string or [string, {variables}]")
		}
		tmpl, _ = a[0].(string)
		vm, _ := a[1].(map[string]any)
		for k, v := range vm {
			r, err := t.eval(v, path)
			if err != nil {
				return nil, err
			}
			vars[k] = r
		}
	default:
		return nil, fmt.Errorf("Fn::Sub takes a string or [string, {variables}]")
	}
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "${")
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		b.WriteString(tmpl[:i])
		j := strings.Index(tmpl[i:], "}")
		if j < 0 {
			return nil, fmt.Errorf("Fn::Sub: unterminated ${ in %q", tmpl)
		}
		name := tmpl[i+2 : i+j]
		tmpl = tmpl[i+j+1:]
		if strings.HasPrefix(name, "!") {
			b.WriteString("${" + name[1:] + "}")
			continue
		}
		var v any
		var err error
		if x, ok := vars[name]; ok {
			v = x
		} else if res, attr, dotted := strings.Cut(name, "."); dotted {
			v, err = t.getAtt(res, attr)
		} else {
			v, err = t.ref(name)
		}
		if err != nil {
			return nil, err
		}
		s, err := scalarString(v)
		if err != nil {
			return nil, fmt.Errorf("Fn::Sub ${%s}: %v", name, err)
		}
		b.WriteString(s)
	}
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	default:
		return "", fmt.Errorf("a %s, not a string", typeName(v))
	}
}

// numericKeys and boolKeys are the spec members whose values CloudFormation
// lets users write as strings ("8080", 'true', !Ref of a Number parameter).
var (
	numericKeys = map[string]bool{"port": true, "weight": true, "priority": true, "value": false, "maxRetries": true,
		"healthyThreshold": true, "unhealthyThreshold": true, "intervalMillis": true, "timeoutMillis": true,
		"maxConnections": true, "maxPendingRequests": true, "maxRequests": true, "maxServerErrors": true,
		"maxEjectionPercent": true, "start": true, "end": true, "ports": true}
	boolKeys = map[string]bool{"enforce": true, "invert": true}
)

// camelKeys converts CloudFormation's PascalCase members to the API's
// camelCase (DNS → dns, AWSCloudMap → awsCloudMap) and coerces string
// numbers and booleans where the API has them. parent is the camelCase key
// holding v.
func camelKeys(v any, parent string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ck := camel(k)
			out[ck] = camelKeys(e, ck)
		}
		// Duration.value is numeric only inside a duration ({unit, value}).
		if _, unit := out["unit"]; unit {
			if v, ok := out["value"]; ok {
				out["value"] = coerceNumber(v)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = camelKeys(e, parent)
		}
		return out
	case string:
		switch {
		case numericKeys[parent]:
			return coerceNumber(x)
		case boolKeys[parent]:
			if b, err := strconv.ParseBool(x); err == nil {
				return b
			}
		}
		return x
	default:
		return v
	}
}

func coerceNumber(v any) any {
	if s, ok := v.(string); ok {
		if i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return i
		}
	}
	return v
}

// camel lowers the leading run of capitals, keeping the last one when a
// lower-case letter follows it: MeshName → meshName, DNS → dns,
// AWSCloudMap → awsCloudMap, HTTP2Route → http2Route.
func camel(s string) string {
	r := []rune(s)
	n := 0
	for n < len(r) && unicode.IsUpper(r[n]) {
		n++
	}
	if n == 0 {
		return s
	}
	if n > 1 && n < len(r) && unicode.IsLower(r[n]) {
		n--
	}
	for i := 0; i < n; i++ {
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}
