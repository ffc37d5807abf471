package k8s

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/meshd/meshd/internal/appmesh"
)

// The CRD schemas and meshd's model of the App Mesh API (what the loader,
// internal/appmesh/load/crd.go, converts CRDs into and prunes them against)
// must agree on every field name and type, up to the conversions the loader
// applies. Every known difference is listed below with its reason; the test
// also fails when a listed difference no longer exists.

// crdOnly are CRD fields with no App Mesh API counterpart (the loader drops
// k8sOnly fields; these are the paths where they occur).
var crdOnly = map[string]string{
	"Mesh.awsName":                        "App Mesh name, resolved by the loader",
	"Mesh.namespaceSelector":              "Kubernetes membership",
	"Mesh.meshOwner":                      "shared meshes: no counterpart in a MeshSpec",
	"VirtualNode.awsName":                 "App Mesh name",
	"VirtualNode.podSelector":             "Kubernetes membership",
	"VirtualNode.backendGroups":           "expanded by the controller, not by meshd",
	"VirtualNode.meshRef":                 "resolved by the loader",
	"VirtualService.awsName":              "App Mesh name",
	"VirtualService.meshRef":              "resolved by the loader",
	"VirtualRouter.awsName":               "App Mesh name",
	"VirtualRouter.meshRef":               "resolved by the loader",
	"VirtualRouter.routes[].name":         "becomes the Route's name",
	"VirtualGateway.awsName":              "App Mesh name",
	"VirtualGateway.namespaceSelector":    "Kubernetes membership",
	"VirtualGateway.podSelector":          "Kubernetes membership",
	"VirtualGateway.gatewayRouteSelector": "Kubernetes membership",
	"VirtualGateway.meshRef":              "resolved by the loader",
	"GatewayRoute.awsName":                "App Mesh name",
	"GatewayRoute.virtualGatewayRef":      "becomes the route's parent",
	"GatewayRoute.meshRef":                "resolved by the loader",
	// The controller's CRD accepts ACM trust on gateway listeners; the App
	// Mesh API (VirtualGatewayListenerTlsValidationContextTrust: file|sds)
	// does not, so meshd prunes it with a warning, as for any unknown field.
	"VirtualGateway.listeners[].tls.validation.trust.acm": "upstream CRD only",
}

// apiOnly are App Mesh API fields the controller's CRDs never had, so a
// Kubernetes user cannot set them (meshd serves them from other formats).
var apiOnly = map[string]string{
	"VirtualNode.serviceDiscovery.dns.ipPreference":         "added to the API after the controller's last CRD change",
	"VirtualNode.serviceDiscovery.awsCloudMap.ipPreference": "added to the API after the controller's last CRD change",
}

// refRenames: inside an object, the CRD's Ref/ARN pair becomes one name
// field (loader: resolveRef). The first candidate the model has is used.
var refRenames = map[string][]string{
	"virtualServiceRef": {"virtualServiceName"}, "virtualServiceARN": {"virtualServiceName"},
	"virtualNodeRef": {"virtualNodeName", "virtualNode"}, "virtualNodeARN": {"virtualNodeName", "virtualNode"},
	"virtualRouterRef": {"virtualRouterName"}, "virtualRouterARN": {"virtualRouterName"},
}

// keyRenames: members the CRDs spell differently (loader: crdRenames and the
// Mesh conversion).
var keyRenames = map[string]string{
	"certificateARN":           "certificateArn",
	"certificateAuthorityARNs": "certificateAuthorityArns",
	"meshServiceDiscovery":     "serviceDiscovery",
}

type modelDiff struct {
	crdOnly, apiOnly, typeMismatch []string
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = f.Type
		}
	}
	return out
}

func compareSchema(s apiextv1.JSONSchemaProps, t reflect.Type, path string, d *modelDiff) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch s.Type {
	case "object":
		if s.AdditionalProperties != nil {
			if t.Kind() != reflect.Map {
				d.typeMismatch = append(d.typeMismatch, path+": map in the CRD, "+t.String()+" in the model")
			}
			return
		}
		if t.Kind() != reflect.Struct {
			d.typeMismatch = append(d.typeMismatch, path+": object in the CRD, "+t.String()+" in the model")
			return
		}
		model := jsonFields(t)
		covered := map[string]bool{}
		for name, sub := range s.Properties {
			p := path + "." + name
			if _, ok := crdOnly[p]; ok {
				continue
			}
			target := name
			if cands, ok := refRenames[name]; ok {
				target = ""
				for _, c := range cands {
					if _, ok := model[c]; ok {
						target = c
						break
					}
				}
				if target == "" {
					d.crdOnly = append(d.crdOnly, p)
					continue
				}
				covered[target] = true
				if _, isString := model[target]; isString && model[target].Kind() != reflect.String {
					d.typeMismatch = append(d.typeMismatch, p+": a reference becomes "+model[target].String()+", not a name")
				}
				continue
			}
			if n, ok := keyRenames[name]; ok {
				target = n
			}
			ft, ok := model[target]
			if !ok {
				d.crdOnly = append(d.crdOnly, p)
				continue
			}
			covered[target] = true
			compareSchema(sub, ft, p, d)
		}
		for name := range model {
			if !covered[name] {
				d.apiOnly = append(d.apiOnly, path+"."+name)
			}
		}
	case "array":
		if t.Kind() != reflect.Slice {
			d.typeMismatch = append(d.typeMismatch, path+": array in the CRD, "+t.String()+" in the model")
			return
		}
		compareSchema(*s.Items.Schema, t.Elem(), path+"[]", d)
	case "string":
		if t.Kind() != reflect.String {
			d.typeMismatch = append(d.typeMismatch, path+": string in the CRD, "+t.String()+" in the model")
		}
	case "integer":
		if t.Kind() != reflect.Int64 {
			d.typeMismatch = append(d.typeMismatch, path+": integer in the CRD, "+t.String()+" in the model")
		}
	case "boolean":
		if t.Kind() != reflect.Bool {
			d.typeMismatch = append(d.typeMismatch, path+": boolean in the CRD, "+t.String()+" in the model")
		}
	default:
		d.typeMismatch = append(d.typeMismatch, path+": unexpected schema type "+s.Type)
	}
}

func TestCRDSchemasMatchLoaderModel(t *testing.T) {
	d := &modelDiff{}
	for _, k := range kinds() {
		spec := k.spec
		switch k.kind {
		case "BackendGroup":
			continue // no App Mesh counterpart; the loader skips it
		case "VirtualRouter":
			// Routes are embedded in the CRD and separate resources in the API.
			routes := spec.Properties["routes"]
			props := map[string]apiextv1.JSONSchemaProps{}
			for n, p := range spec.Properties {
				if n != "routes" {
					props[n] = p
				}
			}
			spec.Properties = props
			compareSchema(*routes.Items.Schema, reflect.TypeOf(appmesh.NewSpec(appmesh.KindRoute)), "VirtualRouter.routes[]", d)
		}
		compareSchema(spec, reflect.TypeOf(appmesh.NewSpec(appmesh.ResourceKind(k.kind))), k.kind, d)
	}
	for _, p := range d.typeMismatch {
		t.Errorf("type mismatch: %s", p)
	}
	for _, p := range d.crdOnly {
		t.Errorf("CRD field %s has no counterpart in meshd's App Mesh model (the loader would prune it); fix the schema or list it in crdOnly", p)
	}
	found := map[string]bool{}
	for _, p := range d.apiOnly {
		found[p] = true
		if _, ok := apiOnly[p]; !ok {
			t.Errorf("App Mesh API field %s is missing from the CRD schema; add it or list it in apiOnly", p)
		}
	}
	var stale []string
	for p := range apiOnly {
		if !found[p] {
			stale = append(stale, p)
		}
	}
	sort.Strings(stale)
	for _, p := range stale {
		t.Errorf("apiOnly lists %s, but the CRD has it (or the model lost it): remove the entry", p)
	}
	// crdOnly entries must each name a real CRD path.
	for p := range crdOnly {
		kind, rest, _ := strings.Cut(p, ".")
		if !schemaHasPath(kind, rest) {
			t.Errorf("crdOnly lists %s, which the CRD schema does not have", p)
		}
	}
}

func schemaHasPath(kind, path string) bool {
	for _, k := range kinds() {
		if k.kind != kind {
			continue
		}
		s := k.spec
		for _, part := range strings.Split(path, ".") {
			name := strings.TrimSuffix(part, "[]")
			p, ok := s.Properties[name]
			if !ok {
				return false
			}
			if strings.HasSuffix(part, "[]") {
				p = *p.Items.Schema
			}
			s = p
		}
		return true
	}
	return false
}
