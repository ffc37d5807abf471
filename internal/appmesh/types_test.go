package appmesh

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

var decodeSpecCases = []struct {
	name string
	kind ResourceKind
	in   string
	want any    // checked with reflect.DeepEqual when set
	err  string // the whole error message; "" for success
	path string // SpecError.Path when err is set
}{
	{name: "empty mesh", kind: KindMesh, in: `{}`, want: &MeshSpec{}},
	{
		name: "mesh, every field",
		kind: KindMesh,
		in:   `{"egressFilter":{"type":"ALLOW_ALL"},"serviceDiscovery":{"ipPreference":"IPv4_ONLY"}}`,
		want: &MeshSpec{EgressFilter: &EgressFilter{Type: "ALLOW_ALL"}, ServiceDiscovery: &MeshServiceDiscovery{IPPreference: "IPv4_ONLY"}},
	},
	{
		name: "virtual service, router provider",
		kind: KindVirtualService,
		in:   `{"provider":{"virtualRouter":{"virtualRouterName":"r"}}}`,
		want: &VirtualServiceSpec{Provider: &VirtualServiceProvider{VirtualRouter: &VirtualRouterServiceProvider{VirtualRouterName: "r"}}},
	},
	{
		name: "virtual node from the docs",
		kind: KindVirtualNode,
		in: `{"backends":[{"virtualService":{"virtualServiceName":"serviceb.apps.local"}}],
			"listeners":[{"portMapping":{"port":80,"protocol":"http2"}}],
			"serviceDiscovery":{"dns":{"hostname":"servicea.apps.local"}}}`,
		want: &VirtualNodeSpec{
			Backends:         []Backend{{VirtualService: &VirtualServiceBackend{VirtualServiceName: "serviceb.apps.local"}}},
			Listeners:        []Listener{{PortMapping: &PortMapping{Port: ptr[int64](80), Protocol: "http2"}}},
			ServiceDiscovery: &ServiceDiscovery{DNS: &DNSServiceDiscovery{Hostname: "servicea.apps.local"}},
		},
	},
	{name: "field-complete virtual node", kind: KindVirtualNode, in: fullVirtualNode},
	{name: "field-complete virtual gateway", kind: KindVirtualGateway, in: fullVirtualGateway},
	{name: "field-complete HTTP/2 route", kind: KindRoute, in: fullHTTP2Route},
	{name: "field-complete gRPC route", kind: KindRoute, in: fullGRPCRoute},
	{name: "field-complete gateway route", kind: KindGatewayRoute, in: fullHTTPGatewayRoute},
	{name: "field-complete gRPC gateway route", kind: KindGatewayRoute, in: fullGRPCGatewayRoute},
	{
		name: "tcp route with port and idle timeout",
		kind: KindRoute,
		in:   `{"priority":0,"tcpRoute":{"action":{"weightedTargets":[{"virtualNode":"db","weight":0,"port":5432}]},"match":{"port":5432},"timeout":{"idle":{"unit":"s","value":0}}}}`,
		want: &RouteSpec{Priority: ptr[int64](0), TCPRoute: &TCPRoute{
			Action:  &TCPRouteAction{WeightedTargets: []WeightedTarget{{VirtualNode: "db", Weight: ptr[int64](0), Port: ptr[int64](5432)}}},
			Match:   &TCPRouteMatch{Port: ptr[int64](5432)},
			Timeout: &TCPTimeout{Idle: &Duration{Unit: "s", Value: ptr[int64](0)}},
		}},
	},
	{
		name: "empty query exact match and prefix kept apart from unset",
		kind: KindRoute,
		in:   `{"httpRoute":{"match":{"prefix":"","queryParameters":[{"name":"q","match":{"exact":""}}]},"action":{"weightedTargets":[{"virtualNode":"n","weight":1}]}}}`,
		want: &RouteSpec{HTTPRoute: &HTTPRoute{
			Match:  &HTTPRouteMatch{Prefix: ptr(""), QueryParameters: []HTTPQueryParameter{{Name: "q", Match: &QueryParameterMatch{Exact: ptr("")}}}},
			Action: &HTTPRouteAction{WeightedTargets: []WeightedTarget{{VirtualNode: "n", Weight: ptr[int64](1)}}},
		}},
	},
	{
		name: "empty lists decode as nil",
		kind: KindVirtualNode,
		in:   `{"listeners":[],"backends":[],"backendDefaults":{"clientPolicy":{"tls":{"ports":[],"enforce":false}}}}`,
		want: &VirtualNodeSpec{BackendDefaults: &BackendDefaults{ClientPolicy: &ClientPolicy{TLS: &ClientPolicyTLS{Enforce: ptr(false)}}}},
	},
	{name: "surrounding whitespace", kind: KindVirtualRouter, in: " \n{\"listeners\":[{\"portMapping\":{\"port\":8080,\"protocol\":\"tcp\"}}]}\n\t",
		want: &VirtualRouterSpec{Listeners: []VirtualRouterListener{{PortMapping: &PortMapping{Port: ptr[int64](8080), Protocol: "tcp"}}}}},

	// Errors.
	{
		name: "unknown field deep inside",
		kind: KindVirtualNode,
		in:   `{"listeners":[{"portMapping":{"port":80,"protocl":"http"}}]}`,
		err:  `listeners[0].portMapping: unknown field "protocl" (fields here: port, protocol)`,
		path: "listeners[0].portMapping",
	},
	{
		name: "unknown field in the second list item",
		kind: KindRoute,
		in:   `{"httpRoute":{"action":{"weightedTargets":[{"virtualNode":"a","weight":1},{"virtualNode":"b","weight":1,"wieght":2}]},"match":{"prefix":"/"}}}`,
		err:  `httpRoute.action.weightedTargets[1]: unknown field "wieght" (fields here: port, virtualNode, weight)`,
		path: "httpRoute.action.weightedTargets[1]",
	},
	{
		name: "unknown top-level field",
		kind: KindMesh,
		in:   `{"egressFilter":{"type":"DROP_ALL"},"meshOwner":"111122223333"}`,
		err:  `unknown field "meshOwner" (fields here: egressFilter, serviceDiscovery)`,
	},
	{
		name: "CRD spelling is not the API's",
		kind: KindVirtualNode,
		in:   `{"backends":[{"virtualService":{"virtualServiceRef":{"name":"b"}}}]}`,
		err:  `backends[0].virtualService: unknown field "virtualServiceRef" (fields here: clientPolicy, virtualServiceName)`,
		path: "backends[0].virtualService",
	},
	{
		name: "wrong-case key",
		kind: KindVirtualNode,
		in:   `{"listeners":[{"portMapping":{"Port":80,"protocol":"http"}}]}`,
		err:  `listeners[0].portMapping: unknown field "Port" (did you mean "port"? field names are case-sensitive)`,
		path: "listeners[0].portMapping",
	},
	{
		name: "wrong-case initialism",
		kind: KindVirtualGateway,
		in:   `{"listeners":[{"portMapping":{"port":443,"protocol":"http"},"tls":{"mode":"STRICT","certificate":{"acm":{"certificateARN":"arn:aws:acm:x"}}}}]}`,
		err:  `listeners[0].tls.certificate.acm: unknown field "certificateARN" (did you mean "certificateArn"? field names are case-sensitive)`,
		path: "listeners[0].tls.certificate.acm",
	},
	{
		name: "wrong type: string port",
		kind: KindVirtualNode,
		in:   `{"listeners":[{"portMapping":{"port":"80","protocol":"http"}}]}`,
		err:  `listeners[0].portMapping.port: want a number, got string`,
		path: "listeners[0].portMapping.port",
	},
	{
		name: "wrong type: object for a list",
		kind: KindVirtualRouter,
		in:   `{"listeners":{"portMapping":{"port":80,"protocol":"http"}}}`,
		err:  `listeners: want an array, got object`,
		path: "listeners",
	},
	{
		name: "wrong type: string boolean",
		kind: KindRoute,
		in:   `{"grpcRoute":{"match":{"metadata":[{"name":"m","invert":"true"}]}}}`,
		err:  `grpcRoute.match.metadata[0].invert: want a boolean, got string`,
		path: "grpcRoute.match.metadata[0].invert",
	},
	{
		name: "wrong type: number in a string list",
		kind: KindRoute,
		in:   `{"httpRoute":{"retryPolicy":{"httpRetryEvents":["server-error",502]}}}`,
		err:  `httpRoute.retryPolicy.httpRetryEvents[1]: want a string, got number`,
		path: "httpRoute.retryPolicy.httpRetryEvents[1]",
	},
	{
		name: "null is not absent",
		kind: KindVirtualNode,
		in:   `{"serviceDiscovery":{"dns":null}}`,
		err:  `serviceDiscovery.dns: want an object, got null`,
		path: "serviceDiscovery.dns",
	},
	{
		name: "non-integral number",
		kind: KindRoute,
		in:   `{"httpRoute":{"timeout":{"perRequest":{"unit":"s","value":1.5}}}}`,
		err:  `httpRoute.timeout.perRequest.value: want an integer, got 1.5`,
		path: "httpRoute.timeout.perRequest.value",
	},
	{
		name: "number out of range",
		kind: KindGatewayRoute,
		in:   `{"priority":99999999999999999999}`,
		err:  `priority: number 99999999999999999999 is out of range`,
		path: "priority",
	},
	{
		name: "repeated field",
		kind: KindVirtualGateway,
		in:   `{"listeners":[{"portMapping":{"port":80,"port":81,"protocol":"http"}}]}`,
		err:  `listeners[0].portMapping: field "port" appears twice`,
		path: "listeners[0].portMapping",
	},
	{name: "spec is not an object", kind: KindMesh, in: `[]`, err: `want an object, got array`},
	{name: "null spec", kind: KindMesh, in: `null`, err: `want an object, got null`},
	{name: "empty input", kind: KindMesh, in: ` `, err: `empty spec: want an object`},
	{name: "data after the spec", kind: KindMesh, in: `{} {}`, err: `data after the spec at byte 3`},
	{
		name: "truncated",
		kind: KindVirtualNode,
		in:   `{"listeners":[{"portMapping":{"port":80`,
		err:  `listeners[0].portMapping: unexpected end of JSON`,
		path: "listeners[0].portMapping",
	},
	{
		name: "syntax error",
		kind: KindVirtualNode,
		in:   `{"listeners":[{"portMapping" 80}]}`,
		err:  `listeners[0].portMapping: invalid JSON at byte 29: invalid character '8' after object key`,
		path: "listeners[0].portMapping",
	},
}

func TestDecodeSpec(t *testing.T) {
	for _, tc := range decodeSpecCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeSpec(tc.kind, []byte(tc.in))
			if tc.err != "" {
				if err == nil {
					t.Fatalf("decoded %#v, want error %q", got, tc.err)
				}
				if err.Error() != tc.err {
					t.Errorf("error\n got %q\nwant %q", err, tc.err)
				}
				var se *SpecError
				if !errors.As(err, &se) {
					t.Fatalf("error is %T, want *SpecError", err)
				}
				if se.Path != tc.path {
					t.Errorf("path %q, want %q", se.Path, tc.path)
				}
				if got != nil {
					t.Errorf("got %#v with the error, want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if reflect.TypeOf(got) != reflect.TypeOf(NewSpec(tc.kind)) {
				t.Fatalf("got a %T, want %T", got, NewSpec(tc.kind))
			}
			if tc.want != nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %s\nwant %s", mustJSON(t, got), mustJSON(t, tc.want))
			}
			checkRoundTrip(t, tc.kind, got)
		})
	}
}

// The field-complete examples set every field of the kind at least once
// (checked by TestFieldCompleteExamples).
const (
	fullVirtualNode = `{
 "listeners":[
  {"portMapping":{"port":8080,"protocol":"http"},
   "connectionPool":{"http":{"maxConnections":100,"maxPendingRequests":10}},
   "healthCheck":{"protocol":"http","path":"/ping","port":8080,"healthyThreshold":2,"unhealthyThreshold":2,"intervalMillis":5000,"timeoutMillis":2000},
   "outlierDetection":{"maxServerErrors":5,"interval":{"unit":"s","value":10},"baseEjectionDuration":{"unit":"s","value":30},"maxEjectionPercent":50},
   "timeout":{"http":{"perRequest":{"unit":"s","value":15},"idle":{"unit":"s","value":300}}},
   "tls":{"mode":"STRICT","certificate":{"sds":{"secretName":"spiffe://example.org/svc-a"}},
          "validation":{"trust":{"sds":{"secretName":"spiffe://example.org"}},
                        "subjectAlternativeNames":{"match":{"exact":["spiffe://example.org/svc-b"]}}}}},
  {"portMapping":{"port":8081,"protocol":"http2"},
   "connectionPool":{"http2":{"maxRequests":7}},
   "timeout":{"http2":{"perRequest":{"unit":"ms","value":500}}},
   "tls":{"mode":"PERMISSIVE","certificate":{"file":{"certificateChain":"/c.pem","privateKey":"/k.pem"}},
          "validation":{"trust":{"file":{"certificateChain":"/ca.pem"}}}}},
  {"portMapping":{"port":8082,"protocol":"grpc"},
   "connectionPool":{"grpc":{"maxRequests":8}},
   "timeout":{"grpc":{"perRequest":{"unit":"s","value":1},"idle":{"unit":"s","value":2}}},
   "tls":{"mode":"DISABLED","certificate":{"acm":{"certificateArn":"arn:aws:acm:us-west-2:111122223333:certificate/x"}}}},
  {"portMapping":{"port":8083,"protocol":"tcp"},
   "connectionPool":{"tcp":{"maxConnections":9}},
   "timeout":{"tcp":{"idle":{"unit":"s","value":0}}}}],
 "serviceDiscovery":{"dns":{"hostname":"svc-a.local","responseType":"ENDPOINTS","ipPreference":"IPv4_ONLY"},
   "awsCloudMap":{"namespaceName":"apps.local","serviceName":"svc-a","attributes":[{"key":"ECS_TASK_DEFINITION_FAMILY","value":"svc-a"}],"ipPreference":"IPv6_PREFERRED"}},
 "backendDefaults":{"clientPolicy":{"tls":{"enforce":true,"ports":[8080,8443],
   "certificate":{"file":{"certificateChain":"/certs/chain.pem","privateKey":"/certs/key.pem"}},
   "validation":{"trust":{"file":{"certificateChain":"/certs/ca.pem"}}}}}},
 "backends":[
  {"virtualService":{"virtualServiceName":"svc-b.local","clientPolicy":{"tls":{"enforce":false,
    "certificate":{"sds":{"secretName":"spiffe://example.org/svc-a"}},
    "validation":{"trust":{"acm":{"certificateAuthorityArns":["arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/x"]}},
                  "subjectAlternativeNames":{"match":{"exact":["svc-b.local"]}}}}}}},
  {"virtualService":{"virtualServiceName":"svc-c.local","clientPolicy":{"tls":{
    "validation":{"trust":{"sds":{"secretName":"spiffe://example.org"}}}}}}}],
 "logging":{"accessLog":{"file":{"path":"/dev/stdout","format":{"text":"%RESPONSE_CODE% %REQ(:path)%\n","json":[{"key":"code","value":"%RESPONSE_CODE%"}]}}}}
}`

	fullVirtualGateway = `{
 "listeners":[
  {"portMapping":{"port":9080,"protocol":"http"},
   "connectionPool":{"http":{"maxConnections":100,"maxPendingRequests":10}},
   "healthCheck":{"protocol":"http","path":"/ping","port":9080,"healthyThreshold":2,"unhealthyThreshold":3,"intervalMillis":5000,"timeoutMillis":2000},
   "tls":{"mode":"STRICT","certificate":{"acm":{"certificateArn":"arn:aws:acm:us-west-2:111122223333:certificate/x"}},
          "validation":{"trust":{"file":{"certificateChain":"/ca.pem"}},"subjectAlternativeNames":{"match":{"exact":["client.example.com"]}}}}},
  {"portMapping":{"port":9081,"protocol":"http2"},"connectionPool":{"http2":{"maxRequests":5}},
   "tls":{"mode":"PERMISSIVE","certificate":{"file":{"certificateChain":"/c.pem","privateKey":"/k.pem"}},
          "validation":{"trust":{"sds":{"secretName":"bundle"}}}}},
  {"portMapping":{"port":9082,"protocol":"grpc"},"connectionPool":{"grpc":{"maxRequests":6}},
   "tls":{"mode":"DISABLED","certificate":{"sds":{"secretName":"gw"}}}}],
 "backendDefaults":{"clientPolicy":{"tls":{"enforce":true,"ports":[443],
   "certificate":{"sds":{"secretName":"gw"},"file":{"certificateChain":"/c.pem","privateKey":"/k.pem"}},
   "validation":{"trust":{"acm":{"certificateAuthorityArns":["arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/x"]},
                          "file":{"certificateChain":"/ca.pem"},"sds":{"secretName":"bundle"}},
                 "subjectAlternativeNames":{"match":{"exact":["svc.local"]}}}}}},
 "logging":{"accessLog":{"file":{"path":"/dev/stdout","format":{"json":[{"key":"path","value":"%REQ(:path)%"}],"text":"%RESPONSE_CODE%\n"}}}}
}`

	// A route with every member of HTTPRoute, and tcpRoute and grpcRoute set
	// too: the decoder does not check that exactly one route type is set.
	fullHTTP2Route = `{"priority":5,
 "http2Route":{
  "match":{"prefix":"/","path":{"exact":"/a","regex":"^/b"},"method":"POST","scheme":"https","port":8080,
   "headers":[{"name":"x-a","invert":true,"match":{"exact":"1","prefix":"2","suffix":"3","regex":"4","range":{"start":1,"end":100}}}],
   "queryParameters":[{"name":"q","match":{"exact":"v"}}]},
  "action":{"weightedTargets":[{"virtualNode":"a","weight":75,"port":8080},{"virtualNode":"b","weight":25}]},
  "retryPolicy":{"maxRetries":2,"perRetryTimeout":{"unit":"ms","value":250},"httpRetryEvents":["stream-error","gateway-error"],"tcpRetryEvents":["connection-error"]},
  "timeout":{"perRequest":{"unit":"s","value":20},"idle":{"unit":"s","value":600}}},
 "httpRoute":{"match":{"prefix":"/"},"action":{"weightedTargets":[{"virtualNode":"a","weight":1}]}},
 "tcpRoute":{"match":{"port":9000},"action":{"weightedTargets":[{"virtualNode":"a","weight":1}]},"timeout":{"idle":{"unit":"s","value":1}}}
}`

	fullGRPCRoute = `{"priority":100,
 "grpcRoute":{"action":{"weightedTargets":[{"virtualNode":"nodeName","weight":100,"port":50051}]},
  "match":{"metadata":[{"invert":false,"match":{"prefix":"123","range":{"start":-5,"end":5}},"name":"myMetadata"},
                       {"name":"m2","match":{"exact":"e","suffix":"s","regex":"^r"}}],
           "methodName":"nameOfmethod","serviceName":"serviceA.svc.cluster.local","port":50051},
  "retryPolicy":{"grpcRetryEvents":["deadline-exceeded"],"httpRetryEvents":["server-error","gateway-error"],
                 "maxRetries":3,"perRetryTimeout":{"unit":"s","value":15},"tcpRetryEvents":["connection-error"]},
  "timeout":{"perRequest":{"unit":"s","value":1},"idle":{"unit":"s","value":2}}}}`

	fullHTTPGatewayRoute = `{"priority":0,
 "httpRoute":{
  "match":{"prefix":"/chapter","path":{"exact":"/x","regex":"^/y"},"method":"GET","port":9080,
   "hostname":{"exact":"www.example.com","suffix":".example.com"},
   "headers":[{"name":"x-a","invert":false,"match":{"suffix":"z","range":{"start":0,"end":1}}}],
   "queryParameters":[{"name":"q","match":{"exact":""}}]},
  "action":{"target":{"virtualService":{"virtualServiceName":"serviceA.svc.cluster.local"},"port":8080},
   "rewrite":{"prefix":{"defaultPrefix":"DISABLED","value":"/new/"},"path":{"exact":"/p"},"hostname":{"defaultTargetHostname":"DISABLED"}}}},
 "http2Route":{"match":{"prefix":"/"},"action":{"target":{"virtualService":{"virtualServiceName":"s"}}}}
}`

	fullGRPCGatewayRoute = `{"priority":1000,
 "grpcRoute":{
  "match":{"serviceName":"pkg.Svc","hostname":{"suffix":".example.com"},"port":9082,
   "metadata":[{"name":"m","invert":true,"match":{"exact":"e","prefix":"p","suffix":"s","regex":"r","range":{"start":1,"end":2}}}]},
  "action":{"target":{"virtualService":{"virtualServiceName":"s"},"port":50051},"rewrite":{"hostname":{"defaultTargetHostname":"ENABLED"}}}}}`
)

// TestFieldCompleteExamples checks that the field-complete examples above,
// between them, set every field of every spec type: a field added to the
// types without an example, or an example that no longer decodes into a
// field, fails here.
func TestFieldCompleteExamples(t *testing.T) {
	examples := []struct {
		kind ResourceKind
		in   string
	}{
		{KindMesh, `{"egressFilter":{"type":"ALLOW_ALL"},"serviceDiscovery":{"ipPreference":"IPv4_ONLY"}}`},
		{KindVirtualService, `{"provider":{"virtualNode":{"virtualNodeName":"n"},"virtualRouter":{"virtualRouterName":"r"}}}`},
		{KindVirtualNode, fullVirtualNode},
		{KindVirtualRouter, `{"listeners":[{"portMapping":{"port":80,"protocol":"http"}}]}`},
		{KindRoute, fullHTTP2Route},
		{KindRoute, fullGRPCRoute},
		{KindVirtualGateway, fullVirtualGateway},
		{KindGatewayRoute, fullHTTPGatewayRoute},
		{KindGatewayRoute, fullGRPCGatewayRoute},
	}
	set := map[string]bool{}
	for _, ex := range examples {
		v, err := DecodeSpec(ex.kind, []byte(ex.in))
		if err != nil {
			t.Fatalf("%s: %v", ex.kind, err)
		}
		markSet(reflect.ValueOf(v), set)
	}
	for _, k := range ResourceKinds() {
		forEachField(reflect.TypeOf(NewSpec(k)), map[reflect.Type]bool{}, func(st reflect.Type, f reflect.StructField) {
			if key := st.Name() + "." + f.Name; !set[key] {
				t.Errorf("no field-complete example sets %s", key)
			}
		})
	}
}

// markSet records Type.Field for every non-zero field under v.
func markSet(v reflect.Value, set map[string]bool) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			markSet(v.Elem(), set)
		}
	case reflect.Slice:
		for i := range v.Len() {
			markSet(v.Index(i), set)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if !v.Field(i).IsZero() {
				set[v.Type().Name()+"."+v.Type().Field(i).Name] = true
				markSet(v.Field(i), set)
			}
		}
	}
}

// forEachField calls fn for every field of every struct type reachable
// from t.
func forEachField(t reflect.Type, seen map[reflect.Type]bool, fn func(reflect.Type, reflect.StructField)) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	for i := range t.NumField() {
		fn(t, t.Field(i))
		forEachField(t.Field(i).Type, seen, fn)
	}
}

// TestSpecTypes checks the conventions of the spec types: every field has
// an omitempty JSON tag spelled like its Go name, only the types the
// decoder handles are used, and numbers and booleans outside lists are
// pointers.
func TestSpecTypes(t *testing.T) {
	seen := map[reflect.Type]bool{}
	for _, k := range ResourceKinds() {
		spec := NewSpec(k)
		if spec == nil {
			t.Fatalf("NewSpec(%s) = nil", k)
		}
		if want := string(k) + "Spec"; reflect.TypeOf(spec).Elem().Name() != want {
			t.Errorf("NewSpec(%s) is a %T, want *%s", k, spec, want)
		}
		forEachField(reflect.TypeOf(spec), seen, func(st reflect.Type, f reflect.StructField) {
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if opts != "omitempty" {
				t.Errorf("%s.%s: tag %q, want omitempty", st.Name(), f.Name, f.Tag.Get("json"))
			}
			if !strings.EqualFold(name, f.Name) {
				t.Errorf("%s.%s: JSON name %q does not spell the Go name", st.Name(), f.Name, name)
			}
			switch ft := f.Type; ft.Kind() {
			case reflect.String:
			case reflect.Pointer:
				switch ft.Elem().Kind() {
				case reflect.Struct, reflect.Int64, reflect.Bool, reflect.String:
				default:
					t.Errorf("%s.%s: unexpected type %s", st.Name(), f.Name, ft)
				}
			case reflect.Slice:
				switch ft.Elem().Kind() {
				case reflect.Struct, reflect.Int64, reflect.String:
				default:
					t.Errorf("%s.%s: unexpected type %s", st.Name(), f.Name, ft)
				}
			default:
				t.Errorf("%s.%s: unexpected type %s (numbers and booleans are pointers, structs are pointers)", st.Name(), f.Name, ft)
			}
		})
	}
	// One type per structure of the App Mesh API model reachable from the
	// seven specs (2019-01-25).
	if len(seen) != 119 {
		t.Errorf("%d spec types, want 119", len(seen))
	}
	if NewSpec("Pod") != nil {
		t.Error("NewSpec of an unknown kind is not nil")
	}
	if _, err := DecodeSpec("Pod", []byte(`{}`)); err == nil || err.Error() != `unknown App Mesh resource kind "Pod"` {
		t.Errorf("DecodeSpec of an unknown kind: %v", err)
	}
}

// examplesDir holds real App Mesh CLI inputs (aws/aws-app-mesh-examples). It
// is outside the module: the repository is checked out next to shared/.
const examplesDir = "../../../shared/testdata/appmesh-examples/cli"

type example struct {
	file string
	kind ResourceKind
	spec json.RawMessage
}

// loadExamples reads every JSON file in examplesDir and finds each one's
// kind and spec.
func loadExamples(tb testing.TB) []example {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	if len(files) == 0 {
		tb.Fatalf("no App Mesh CLI examples in %s", examplesDir)
	}
	var out []example
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		kind, spec, err := exampleSpec(data)
		if err != nil {
			tb.Fatalf("%s: %v", filepath.Base(f), err)
		}
		out = append(out, example{filepath.Base(f), kind, spec})
	}
	return out
}

// describeKeys are the keys `describe-*` output puts a resource under.
var describeKeys = []string{"mesh", "virtualService", "virtualNode", "virtualRouter", "route", "virtualGateway", "gatewayRoute"}

// exampleSpec finds the kind and spec of `create-*`/`update-*`
// --cli-input-json input or `describe-*` output. The kind comes from the
// name keys; for a file without any (several examples give the names on the
// command line) it is the only kind the spec decodes as.
func exampleSpec(data []byte) (ResourceKind, json.RawMessage, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return "", nil, err
	}
	if len(doc) == 1 {
		for _, k := range describeKeys {
			if inner, ok := doc[k]; ok {
				if err := json.Unmarshal(inner, &doc); err != nil {
					return "", nil, err
				}
				break
			}
		}
	}
	spec, ok := doc["spec"]
	if !ok {
		return "", nil, errors.New("no spec")
	}
	has := func(k string) bool { _, ok := doc[k]; return ok }
	switch {
	case has("routeName"):
		return KindRoute, spec, nil
	case has("gatewayRouteName"):
		return KindGatewayRoute, spec, nil
	case has("virtualNodeName"):
		return KindVirtualNode, spec, nil
	case has("virtualRouterName"):
		return KindVirtualRouter, spec, nil
	case has("virtualGatewayName"):
		return KindVirtualGateway, spec, nil
	case has("virtualServiceName"):
		return KindVirtualService, spec, nil
	case has("meshName"):
		return KindMesh, spec, nil
	}
	var fits []ResourceKind
	for _, k := range ResourceKinds() {
		if _, err := DecodeSpec(k, spec); err == nil {
			fits = append(fits, k)
		}
	}
	if len(fits) != 1 {
		return "", nil, errors.New("no name keys, and the spec decodes as " + strings.Join(kindStrings(fits), ", ") + ": cannot tell the kind")
	}
	return fits[0], spec, nil
}

func kindStrings(ks []ResourceKind) []string {
	s := []string{"no kind"}
	if len(ks) > 0 {
		s = s[:0]
	}
	for _, k := range ks {
		s = append(s, string(k))
	}
	return s
}

// TestExamples decodes the spec of every real CLI example, and checks it
// survives a marshal/decode round trip unchanged.
func TestExamples(t *testing.T) {
	kinds := map[ResourceKind]int{}
	for _, ex := range loadExamples(t) {
		t.Run(ex.file, func(t *testing.T) {
			v, err := DecodeSpec(ex.kind, ex.spec)
			if err != nil {
				t.Fatalf("%s: %v", ex.kind, err)
			}
			kinds[ex.kind]++
			checkRoundTrip(t, ex.kind, v)
		})
	}
	t.Logf("examples by kind: %v", kinds)
}

// checkRoundTrip marshals a decoded spec and decodes it again.
func checkRoundTrip(t *testing.T, kind ResourceKind, v any) {
	t.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	again, err := DecodeSpec(kind, out)
	if err != nil {
		t.Fatalf("decoding %s again: %v", out, err)
	}
	if !reflect.DeepEqual(v, again) {
		t.Errorf("round trip changed the spec:\n before %s\n after  %s", out, mustJSON(t, again))
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func FuzzDecodeSpec(f *testing.F) {
	kinds := ResourceKinds()
	index := map[ResourceKind]uint8{}
	for i, k := range kinds {
		index[k] = uint8(i)
	}
	for _, ex := range loadExamples(f) {
		f.Add(index[ex.kind], []byte(ex.spec))
	}
	for _, tc := range decodeSpecCases {
		f.Add(index[tc.kind], []byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, k uint8, data []byte) {
		kind := kinds[int(k)%len(kinds)]
		v, err := DecodeSpec(kind, data)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("error %v is a %T, not a *SpecError", err, err)
			}
			if v != nil {
				t.Fatalf("a value with the error %v", err)
			}
			return
		}
		checkRoundTrip(t, kind, v)
	})
}
