package appmesh_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
)

const examplesDir = "../../../shared/testdata/appmesh-examples"

// cfnParameters are the parameters the CloudFormation examples' READMEs
// pass at deploy time (as in load's TestExamplesWithParameters).
var cfnParameters = map[string]string{"AppMeshMeshName": "appmesh-mesh", "MeshName": "appmesh-mesh", "ProjectName": "demo",
	"ServicesDomain": "demo.local", "CertificateArn": "arn:aws:acm:us-west-2:111122223333:certificate/example",
	"CertificateAuthorityArn": "arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/example"}

// exampleDocs loads every App Mesh resource of AWS's example files the way
// load's TestExamples and TestExamplesWithParameters do: one file at a
// time, with a default mesh, and with the CloudFormation parameters.
func exampleDocs(t testing.TB) (docs []load.Doc, files int) {
	t.Helper()
	for _, dir := range []string{"cli", "cfn", "crd"} {
		all, err := os.ReadDir(filepath.Join(examplesDir, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".json", ".yaml", ".yml":
			default:
				continue
			}
			name := dir + "/" + e.Name()
			data, err := os.ReadFile(filepath.Join(examplesDir, name))
			if err != nil {
				t.Fatal(err)
			}
			files++
			opt := load.Options{DefaultMesh: "examples"}
			if dir == "cfn" {
				opt.Parameters = cfnParameters
			}
			docs = append(docs, load.Files([]load.File{{Name: name, Data: data}}, opt).Docs...)
		}
	}
	return docs, files
}

// examplesViolations are problems real examples truly have, keyed by
// "<file> <resource>: <path>", with a substring of the message.
var examplesViolations = map[string]string{}

// TestExamplesValidate validates every resource of the 66 example files:
// apart from examplesViolations, none may have a problem.
func TestExamplesValidate(t *testing.T) {
	docs, files := exampleDocs(t)
	if files != 66 {
		t.Errorf("%d example files, want 66", files)
	}
	if len(docs) < 200 {
		t.Errorf("only %d resources loaded", len(docs))
	}
	seen := map[string]bool{}
	kinds := map[string]int{}
	var sums []int64
	for _, d := range docs {
		spec, err := appmesh.DecodeSpec(appmesh.ResourceKind(d.Kind), d.Spec)
		if err != nil {
			t.Errorf("%s: %v", d.Loc, err)
			continue
		}
		kinds[d.Kind]++
		sums = append(sums, weightSums(spec)...)
		for _, e := range appmesh.Validate(appmesh.ResourceKind(d.Kind), spec) {
			key := d.Loc.File + " " + d.Loc.Resource + ": " + e.Path
			if want, ok := examplesViolations[key]; ok && strings.Contains(e.Msg, want) {
				seen[key] = true
				continue
			}
			t.Errorf("%s %s %q: %v\n%s", d.Loc, d.Kind, d.Name, e, d.Spec)
		}
	}
	for key := range examplesViolations {
		if !seen[key] {
			t.Errorf("expected violation not reported: %s", key)
		}
	}
	sort.Slice(sums, func(i, j int) bool { return sums[i] < sums[j] })
	over := 0
	for _, s := range sums {
		if s > 100 {
			over++
		}
	}
	t.Logf("%d files, %d resources %v; %d routes' weight sums range %v, %d over 100", files, len(docs), kinds, len(sums), minMax(sums), over)
}

// weightSums returns the sum of the weights of each route action in spec.
func weightSums(spec any) []int64 {
	r, ok := spec.(*appmesh.RouteSpec)
	if !ok {
		return nil
	}
	var lists [][]appmesh.WeightedTarget
	if r.HTTPRoute != nil && r.HTTPRoute.Action != nil {
		lists = append(lists, r.HTTPRoute.Action.WeightedTargets)
	}
	if r.HTTP2Route != nil && r.HTTP2Route.Action != nil {
		lists = append(lists, r.HTTP2Route.Action.WeightedTargets)
	}
	if r.GRPCRoute != nil && r.GRPCRoute.Action != nil {
		lists = append(lists, r.GRPCRoute.Action.WeightedTargets)
	}
	if r.TCPRoute != nil && r.TCPRoute.Action != nil {
		lists = append(lists, r.TCPRoute.Action.WeightedTargets)
	}
	var sums []int64
	for _, ts := range lists {
		var s int64
		for _, t := range ts {
			if t.Weight != nil {
				s += *t.Weight
			}
		}
		sums = append(sums, s)
	}
	return sums
}

func minMax(s []int64) []int64 {
	if len(s) == 0 {
		return nil
	}
	return []int64{s[0], s[len(s)-1]}
}

// Builders of small valid specs that the table below breaks one rule at a
// time.

// listenerVN is a virtual node with one http listener on 8080 with the
// given extra listener members, and extra spec members.
func listenerVN(listenerExtra, specExtra string) string {
	return `{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}` + listenerExtra + `}],` +
		`"serviceDiscovery":{"dns":{"hostname":"a.local"}}` + specExtra + `}`
}

// listenerVG is a virtual gateway with one http listener on 8080.
func listenerVG(listenerExtra, specExtra string) string {
	return `{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}` + listenerExtra + `}]` + specExtra + `}`
}

const oneTarget = `{"weightedTargets":[{"virtualNode":"a","weight":1}]}`

// route is a route of type typ with one target, the given match and extra
// members of the route.
func route(typ, match, extra string) string {
	return `{"` + typ + `":{"action":` + oneTarget + `,"match":` + match + extra + `}}`
}

// httpRoute is an httpRoute matching prefix / with extra members.
func httpRoute(extra string) string { return route("httpRoute", `{"prefix":"/"}`, extra) }

// targets is an httpRoute with the given weightedTargets.
func targets(list string) string {
	return `{"httpRoute":{"action":{"weightedTargets":` + list + `},"match":{"prefix":"/"}}}`
}

// gatewayRoute is a gateway route of type typ with the given match and
// action members besides the target.
func gatewayRoute(typ, match, actionExtra string) string {
	return `{"` + typ + `":{"action":{"target":{"virtualService":{"virtualServiceName":"a.local"}}` + actionExtra + `},"match":` + match + `}}`
}

// clientTLS is a virtual node whose backend defaults have the given client
// policy tls.
func clientTLS(tls string) string { return `{"backendDefaults":{"clientPolicy":{"tls":` + tls + `}}}` }

const fileTrust = `"validation":{"trust":{"file":{"certificateChain":"/ca.pem"}}}`

// sans is a client policy tls with the given enforce members and SANs.
func sans(enforce, list string) string {
	return clientTLS(`{` + enforce + `"validation":{"subjectAlternativeNames":{"match":{"exact":` + list + `}},"trust":{"file":{"certificateChain":"/ca.pem"}}}}`)
}

const healthCheck = `"protocol":"http","path":"/ping","healthyThreshold":2,"unhealthyThreshold":2,"intervalMillis":5000,"timeoutMillis":2000`

// logging is a virtual node with the given access log file.
func logging(file string) string { return `{"logging":{"accessLog":{"file":` + file + `}}}` }

// logFormat is a virtual node logging to stdout with the given format.
func logFormat(format string) string {
	return logging(`{"path":"/dev/stdout","format":` + format + `}`)
}

// list repeats item n times as a JSON list.
func list(item string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
}

var (
	s50  = strings.Repeat("a", 50)
	s51  = strings.Repeat("a", 51)
	s100 = strings.Repeat("a", 100)
	s101 = strings.Repeat("a", 101)
	s253 = strings.Repeat("a", 253)
	s254 = strings.Repeat("a", 254)
	s255 = strings.Repeat("a", 255)
	s256 = strings.Repeat("a", 256)
)

type validateCase struct {
	name string
	kind appmesh.ResourceKind
	spec string
	path string // path of the expected problem; ignored when msg is ""
	msg  string // substring of the expected problem; "" expects none
	n    int    // number of problems expected when msg is set (0 means 1)
}

const (
	mesh = appmesh.KindMesh
	vs   = appmesh.KindVirtualService
	vn   = appmesh.KindVirtualNode
	vr   = appmesh.KindVirtualRouter
	rt   = appmesh.KindRoute
	vg   = appmesh.KindVirtualGateway
	gr   = appmesh.KindGatewayRoute
)

var validateCases = []validateCase{
	// The docs' examples and minimal specs.
	{name: "empty mesh", kind: mesh, spec: `{}`},
	{name: "empty virtual service", kind: vs, spec: `{}`},
	{name: "virtual node without listeners", kind: vn, spec: `{"backends":[{"virtualService":{"virtualServiceName":"b.local"}}]}`},
	{name: "empty virtual router", kind: vr, spec: `{}`},
	{name: "docs virtual node", kind: vn, spec: `{"backends":[{"virtualService":{"virtualServiceName":"serviceb.apps.local"}}],
		"listeners":[{"portMapping":{"port":80,"protocol":"http2"}}],"serviceDiscovery":{"dns":{"hostname":"servicea.apps.local"}}}`},
	{name: "docs field-complete virtual node", kind: vn, spec: `{"listeners":[{"portMapping":{"port":8080,"protocol":"http"},
		"connectionPool":{"http":{"maxConnections":100,"maxPendingRequests":10}},
		"healthCheck":{"protocol":"http","path":"/ping","port":8080,"healthyThreshold":2,"unhealthyThreshold":2,"intervalMillis":5000,"timeoutMillis":2000},
		"outlierDetection":{"maxServerErrors":5,"interval":{"unit":"s","value":10},"baseEjectionDuration":{"unit":"s","value":30},"maxEjectionPercent":50},
		"timeout":{"http":{"perRequest":{"unit":"s","value":15},"idle":{"unit":"s","value":300}}},
		"tls":{"mode":"STRICT","certificate":{"sds":{"secretName":"spiffe://example.org/svc-a"}},
			"validation":{"trust":{"sds":{"secretName":"spiffe://example.org"}},"subjectAlternativeNames":{"match":{"exact":["spiffe://example.org/svc-b"]}}}}}],
		"serviceDiscovery":{"dns":{"hostname":"svc-a.local","responseType":"ENDPOINTS","ipPreference":"IPv4_ONLY"}},
		"backendDefaults":{"clientPolicy":{"tls":{"enforce":true,"ports":[8080],
			"certificate":{"file":{"certificateChain":"/certs/chain.pem","privateKey":"/certs/key.pem"}},
			"validation":{"trust":{"file":{"certificateChain":"/certs/ca.pem"}}}}}},
		"backends":[{"virtualService":{"virtualServiceName":"svc-b.local"}}],
		"logging":{"accessLog":{"file":{"path":"/dev/stdout","format":{"text":"%RESPONSE_CODE% %REQ(:path)%\n"}}}}}`},
	{name: "docs gRPC route", kind: rt, spec: `{"priority":100,"grpcRoute":{"action":{"weightedTargets":[{"virtualNode":"nodeName","weight":100}]},
		"match":{"metadata":[{"invert":false,"match":{"prefix":"123"},"name":"myMetadata"}],"methodName":"nameOfmethod","serviceName":"serviceA.svc.cluster.local"},
		"retryPolicy":{"grpcRetryEvents":["deadline-exceeded"],"httpRetryEvents":["server-error","gateway-error"],"maxRetries":3,
			"perRetryTimeout":{"unit":"s","value":15},"tcpRetryEvents":["connection-error"]}}}`},
	{name: "docs gateway route", kind: gr, spec: `{"httpRoute":{"match":{"prefix":"/"},"action":{"target":{"virtualService":{"virtualServiceName":"serviceA.svc.cluster.local"}}}}}`},
	{name: "docs virtual gateway", kind: vg, spec: `{"listeners":[{"portMapping":{"port":9080,"protocol":"http"}}]}`},

	// 1. Priorities 0–1000.
	{name: "route priority 1001", kind: rt, spec: `{"priority":1001,` + httpRoute("")[1:], path: "priority", msg: "must be between 0 and 1000, got 1001"},
	{name: "route priorities 0 and 1000", kind: rt, spec: `{"priority":1000,` + httpRoute("")[1:]},
	{name: "gateway route priority -1", kind: gr, spec: `{"priority":-1,` + gatewayRoute("httpRoute", `{"prefix":"/"}`, "")[1:], path: "priority", msg: "must be between 0 and 1000, got -1"},
	{name: "gateway route priority 0", kind: gr, spec: `{"priority":0,` + gatewayRoute("httpRoute", `{"prefix":"/"}`, "")[1:]},

	// 2. Route types and unions.
	{name: "route without a type", kind: rt, spec: `{"priority":1}`, path: "", msg: `set exactly one of "httpRoute", "http2Route", "grpcRoute", "tcpRoute", got none`},
	{name: "route with two types", kind: rt, spec: `{"httpRoute":{"action":` + oneTarget + `,"match":{"prefix":"/"}},"tcpRoute":{"action":` + oneTarget + `}}`,
		path: "", msg: `got "httpRoute", "tcpRoute"`},
	{name: "tcp route", kind: rt, spec: `{"tcpRoute":{"action":` + oneTarget + `,"match":{"port":8080},"timeout":{"idle":{"unit":"s","value":0}}}}`},
	{name: "gateway route without a type", kind: gr, spec: `{}`, path: "", msg: `set exactly one of "httpRoute", "http2Route", "grpcRoute", got none`},
	{name: "virtual service empty provider", kind: vs, spec: `{"provider":{}}`, path: "provider", msg: `set exactly one of "virtualNode", "virtualRouter", got none`},
	{name: "virtual service two providers", kind: vs, spec: `{"provider":{"virtualNode":{"virtualNodeName":"a"},"virtualRouter":{"virtualRouterName":"b"}}}`,
		path: "provider", msg: `got "virtualNode", "virtualRouter"`},
	{name: "empty service discovery", kind: vn, spec: `{"serviceDiscovery":{}}`, path: "serviceDiscovery", msg: `set exactly one of "awsCloudMap", "dns"`},
	{name: "empty header match", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"x","match":{}}]}`, ""),
		path: "httpRoute.match.headers[0].match", msg: `set exactly one of "exact", "prefix", "suffix", "regex", "range", got none`},
	{name: "two header match methods", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"x","match":{"exact":"a","prefix":"b"}}]}`, ""),
		path: "httpRoute.match.headers[0].match", msg: `got "exact", "prefix"`},
	{name: "empty path match", kind: rt, spec: route("httpRoute", `{"path":{}}`, ""), path: "httpRoute.match.path", msg: `set exactly one of "exact", "regex", got none`},
	{name: "empty hostname match", kind: gr, spec: gatewayRoute("httpRoute", `{"hostname":{}}`, ""), path: "httpRoute.match.hostname", msg: `set exactly one of "exact", "suffix"`},
	{name: "empty prefix rewrite", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/a"}`, `,"rewrite":{"prefix":{}}`),
		path: "httpRoute.action.rewrite.prefix", msg: `set exactly one of "defaultPrefix", "value", got none`},
	{name: "header name with a line feed", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"x\ny","match":{"exact":"a"}}]}`, ""),
		path: "httpRoute.match.headers[0].name", msg: `must not contain whitespace or control characters, got "\n" at byte 1`},
	{name: "query parameter name too long", kind: rt, spec: route("httpRoute", `{"prefix":"/","queryParameters":[{"name":"`+strings.Repeat("q", 1025)+`"}]}`, ""),
		path: "httpRoute.match.queryParameters[0].name", msg: "must be between 1 and 1024 characters long, got 1025"},
	{name: "empty backend", kind: vn, spec: `{"backends":[{}]}`, path: "backends[0]", msg: `set exactly one of "virtualService", got none`},

	// 3. Weighted targets.
	{name: "no weighted targets", kind: rt, spec: `{"httpRoute":{"action":{},"match":{"prefix":"/"}}}`, path: "httpRoute.action.weightedTargets", msg: "is required"},
	{name: "empty weighted targets", kind: rt, spec: targets(`[]`), path: "httpRoute.action.weightedTargets", msg: "is required"},
	{name: "11 weighted targets", kind: rt, spec: targets(list(`{"virtualNode":"a","weight":1}`, 11)), path: "httpRoute.action.weightedTargets", msg: "must have between 1 and 10 items, got 11"},
	{name: "10 weighted targets", kind: rt, spec: targets(list(`{"virtualNode":"a","weight":10}`, 10))},
	{name: "target without virtual node", kind: rt, spec: targets(`[{"weight":1}]`), path: "httpRoute.action.weightedTargets[0].virtualNode", msg: "is required"},
	{name: "target virtual node bad name", kind: rt, spec: targets(`[{"virtualNode":"a.b","weight":1}]`), path: "httpRoute.action.weightedTargets[0].virtualNode", msg: "only letters, digits"},
	{name: "target without weight", kind: rt, spec: targets(`[{"virtualNode":"a"}]`), path: "httpRoute.action.weightedTargets[0].weight", msg: "is required"},
	{name: "target weight 101", kind: rt, spec: targets(`[{"virtualNode":"a","weight":101}]`), path: "httpRoute.action.weightedTargets[0].weight", msg: "must be between 0 and 100, got 101"},
	{name: "target port 0", kind: rt, spec: targets(`[{"virtualNode":"a","weight":1,"port":0}]`), path: "httpRoute.action.weightedTargets[0].port", msg: "must be between 1 and 65535, got 0"},
	{name: "all weights 0", kind: rt, spec: targets(`[{"virtualNode":"a","weight":0},{"virtualNode":"b","weight":0}]`), path: "httpRoute.action.weightedTargets", msg: "weights add up to 0"},
	{name: "weights over 100", kind: rt, spec: targets(`[{"virtualNode":"a","weight":100},{"virtualNode":"b","weight":50}]`), path: "httpRoute.action.weightedTargets", msg: "weights add up to 150"},
	{name: "weights 0 and 1, port 65535", kind: rt, spec: targets(`[{"virtualNode":"a","weight":0},{"virtualNode":"b_ns","weight":1,"port":65535}]`)},
	{name: "weights 75 and 25", kind: rt, spec: targets(`[{"virtualNode":"a","weight":75},{"virtualNode":"b","weight":25}]`)},

	// 4. Headers, metadata and query parameters.
	{name: "11 headers", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":`+list(`{"name":"x"}`, 11)+`}`, ""), path: "httpRoute.match.headers", msg: "must have between 1 and 10 items, got 11"},
	{name: "header without name", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"match":{"exact":"a"}}]}`, ""), path: "httpRoute.match.headers[0].name", msg: "is required"},
	{name: "header name 51", kind: rt, spec: route("http2Route", `{"prefix":"/","headers":[{"name":"`+s51+`"}]}`, ""), path: "http2Route.match.headers[0].name", msg: "must be between 1 and 50 characters long, got 51"},
	{name: "header exact 256", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"x","match":{"exact":"`+s256+`"}}]}`, ""), path: "httpRoute.match.headers[0].match.exact", msg: "must be between 1 and 255 characters long, got 256"},
	{name: "header suffix 256", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"x","match":{"suffix":"`+s256+`"}}]}`, ""), path: "httpRoute.match.headers[0].match.suffix", msg: "got 256"},
	{name: "header range without end", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"x","match":{"range":{"start":1}}}]}`, ""), path: "httpRoute.match.headers[0].match.range.end", msg: "is required"},
	{name: "header range start = end", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"x","match":{"range":{"start":5,"end":5}}}]}`, ""), path: "httpRoute.match.headers[0].match.range", msg: "start must be less than end"},
	{name: "header regex lookahead", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"x","match":{"regex":"^prefix(?!suffix)"}}]}`, ""), path: "httpRoute.match.headers[0].match.regex", msg: "RE2"},
	{name: "headers: 10, every method, name 50", kind: rt, spec: route("httpRoute", `{"prefix":"/","headers":[{"name":"`+s50+`"},{"name":"a","invert":true,"match":{"exact":"`+s255+`"}},
		{"name":"b","match":{"prefix":"1"}},{"name":"c","match":{"suffix":"1"}},{"name":"d","match":{"regex":"^prefix[^s]"}},{"name":"e","match":{"range":{"start":1,"end":100}}},
		{"name":"f"},{"name":"g"},{"name":"h"},{"name":"i"}]}`, "")},
	{name: "11 metadata", kind: rt, spec: route("grpcRoute", `{"metadata":`+list(`{"name":"x"}`, 11)+`}`, ""), path: "grpcRoute.match.metadata", msg: "must have between 1 and 10 items, got 11"},
	{name: "metadata name 51", kind: rt, spec: route("grpcRoute", `{"metadata":[{"name":"`+s51+`"}]}`, ""), path: "grpcRoute.match.metadata[0].name", msg: "got 51"},
	{name: "metadata empty match", kind: rt, spec: route("grpcRoute", `{"metadata":[{"name":"x","match":{}}]}`, ""), path: "grpcRoute.match.metadata[0].match", msg: "set exactly one of"},
	{name: "11 query parameters", kind: rt, spec: route("httpRoute", `{"prefix":"/","queryParameters":`+list(`{"name":"q"}`, 11)+`}`, ""), path: "httpRoute.match.queryParameters", msg: "got 11"},
	{name: "query parameter without name", kind: rt, spec: route("httpRoute", `{"prefix":"/","queryParameters":[{"match":{"exact":"a"}}]}`, ""), path: "httpRoute.match.queryParameters[0].name", msg: "is required"},
	{name: "query parameter matching an empty value", kind: rt, spec: route("httpRoute", `{"prefix":"/","queryParameters":[{"name":"q","match":{"exact":""}}]}`, "")},
	{name: "gateway route 11 headers", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/","headers":`+list(`{"name":"x"}`, 11)+`}`, ""), path: "httpRoute.match.headers", msg: "got 11"},
	{name: "gateway route metadata regex", kind: gr, spec: gatewayRoute("grpcRoute", `{"metadata":[{"name":"x","match":{"regex":"(a"}}]}`, ""), path: "grpcRoute.match.metadata[0].match.regex", msg: "is not a valid RE2 regex"},

	// 5. gRPC method, scheme, method.
	{name: "method name without service name", kind: rt, spec: route("grpcRoute", `{"methodName":"Get"}`, ""), path: "grpcRoute.match.methodName", msg: "requires serviceName"},
	{name: "method name 51", kind: rt, spec: route("grpcRoute", `{"serviceName":"s","methodName":"`+s51+`"}`, ""), path: "grpcRoute.match.methodName", msg: "got 51"},
	{name: "grpc route empty match", kind: rt, spec: route("grpcRoute", `{}`, "")},
	{name: "grpc route without match", kind: rt, spec: `{"grpcRoute":{"action":` + oneTarget + `}}`, path: "grpcRoute.match", msg: "is required"},
	{name: "scheme on httpRoute", kind: rt, spec: route("httpRoute", `{"prefix":"/","scheme":"https"}`, ""), path: "httpRoute.match.scheme", msg: "is allowed only in an http2Route"},
	{name: "scheme ftp", kind: rt, spec: route("http2Route", `{"prefix":"/","scheme":"ftp"}`, ""), path: "http2Route.match.scheme", msg: `must be one of "http", "https", got "ftp"`},
	{name: "scheme https on http2Route", kind: rt, spec: route("http2Route", `{"prefix":"/","scheme":"https","method":"PATCH"}`, "")},
	{name: "method FETCH", kind: rt, spec: route("httpRoute", `{"prefix":"/","method":"FETCH"}`, ""), path: "httpRoute.match.method", msg: `must be one of "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", got "FETCH"`},
	{name: "gateway route method get", kind: gr, spec: gatewayRoute("http2Route", `{"prefix":"/","method":"get"}`, ""), path: "http2Route.match.method", msg: `got "get"`},

	// 6. HTTP matches.
	{name: "route without match", kind: rt, spec: `{"httpRoute":{"action":` + oneTarget + `}}`, path: "httpRoute.match", msg: "is required"},
	{name: "route match without prefix or path", kind: rt, spec: route("httpRoute", `{"method":"GET"}`, ""), path: "httpRoute.match", msg: `set exactly one of "prefix", "path", got none`},
	{name: "route match with prefix and path", kind: rt, spec: route("httpRoute", `{"prefix":"/","path":{"exact":"/a"}}`, ""), path: "httpRoute.match", msg: `got "prefix", "path"`},
	{name: "route prefix without slash", kind: rt, spec: route("httpRoute", `{"prefix":"metrics"}`, ""), path: "httpRoute.match.prefix", msg: `must start with "/", got "metrics"`},
	{name: "route empty prefix", kind: rt, spec: route("httpRoute", `{"prefix":""}`, ""), path: "httpRoute.match.prefix", msg: `must start with "/", got ""`},
	{name: "route path exact 256", kind: rt, spec: route("httpRoute", `{"path":{"exact":"/`+s255+`"}}`, ""), path: "httpRoute.match.path.exact", msg: "got 256"},
	{name: "route path regex back-reference", kind: rt, spec: route("httpRoute", `{"path":{"regex":"^/(a+)/\\1$"}}`, ""), path: "httpRoute.match.path.regex", msg: "back-reference"},
	{name: "route path regex and exact", kind: rt, spec: route("httpRoute", `{"path":{"exact":"/a","regex":"/a"}}`, ""), path: "httpRoute.match.path", msg: `got "exact", "regex"`},
	{name: "route path regex", kind: rt, spec: route("http2Route", `{"path":{"regex":"^/api/v[0-9]+/.*$"},"port":8080}`, "")},
	{name: "route match port 0", kind: rt, spec: route("httpRoute", `{"prefix":"/","port":0}`, ""), path: "httpRoute.match.port", msg: "got 0"},
	{name: "gateway route reserved prefix aws-appmesh", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/aws-appmesh/stats"}`, ""), path: "httpRoute.match.prefix", msg: "reserves"},
	{name: "gateway route reserved prefix aws-app-mesh", kind: gr, spec: gatewayRoute("http2Route", `{"prefix":"/aws-app-mesh"}`, ""), path: "http2Route.match.prefix", msg: "reserves"},
	{name: "gateway route prefix without slash", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"chapter"}`, ""), path: "httpRoute.match.prefix", msg: `must start with "/"`},
	{name: "gateway route prefix /aws", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/aws"}`, "")},
	{name: "gateway route prefix and path", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/","path":{"exact":"/a"}}`, ""), path: "httpRoute.match", msg: `set at most one of "prefix", "path"`},
	{name: "gateway route hostname only", kind: gr, spec: gatewayRoute("httpRoute", `{"hostname":{"suffix":"example.com"},"port":8080}`, "")},
	{name: "gateway route without match", kind: gr, spec: `{"httpRoute":{"action":{"target":{"virtualService":{"virtualServiceName":"a"}}}}}`, path: "httpRoute.match", msg: "is required"},
	{name: "gateway route path regex lookbehind", kind: gr, spec: gatewayRoute("httpRoute", `{"path":{"regex":"(?<=a)b"}}`, ""), path: "httpRoute.match.path.regex", msg: "lookaround"},
	{name: "gRPC gateway route reserved aws.appmesh", kind: gr, spec: gatewayRoute("grpcRoute", `{"serviceName":"aws.appmesh"}`, ""), path: "grpcRoute.match.serviceName", msg: "reserves"},
	{name: "gRPC gateway route reserved aws.appmesh.Envoy", kind: gr, spec: gatewayRoute("grpcRoute", `{"serviceName":"aws.appmesh.Envoy"}`, ""), path: "grpcRoute.match.serviceName", msg: "reserves"},
	{name: "gRPC gateway route reserved aws.app-mesh", kind: gr, spec: gatewayRoute("grpcRoute", `{"serviceName":"aws.app-mesh.x"}`, ""), path: "grpcRoute.match.serviceName", msg: "reserves"},
	{name: "gRPC gateway route", kind: gr, spec: gatewayRoute("grpcRoute", `{"serviceName":"com.example.Color","hostname":{"exact":"a.example.com"},"metadata":[{"name":"x","match":{"range":{"start":-5,"end":5}}}],"port":9080}`, `,"rewrite":{"hostname":{"defaultTargetHostname":"ENABLED"}}`)},

	// 7. Retry policies and durations.
	{name: "retry policy without events", kind: rt, spec: httpRoute(`,"retryPolicy":{"maxRetries":2,"perRetryTimeout":{"unit":"ms","value":500}}`),
		path: "httpRoute.retryPolicy", msg: `set at least one of "httpRetryEvents", "tcpRetryEvents"`},
	{name: "grpc retry policy without events", kind: rt, spec: route("grpcRoute", `{}`, `,"retryPolicy":{"maxRetries":2,"perRetryTimeout":{"unit":"ms","value":500}}`),
		path: "grpcRoute.retryPolicy", msg: `set at least one of "grpcRetryEvents", "httpRetryEvents", "tcpRetryEvents"`},
	{name: "retry policy without maxRetries", kind: rt, spec: httpRoute(`,"retryPolicy":{"httpRetryEvents":["gateway-error"],"perRetryTimeout":{"unit":"ms","value":500}}`),
		path: "httpRoute.retryPolicy.maxRetries", msg: "is required"},
	{name: "retry policy maxRetries -1", kind: rt, spec: httpRoute(`,"retryPolicy":{"httpRetryEvents":["gateway-error"],"maxRetries":-1,"perRetryTimeout":{"unit":"ms","value":500}}`),
		path: "httpRoute.retryPolicy.maxRetries", msg: "must be at least 0, got -1"},
	{name: "retry policy without perRetryTimeout", kind: rt, spec: httpRoute(`,"retryPolicy":{"httpRetryEvents":["gateway-error"],"maxRetries":0}`),
		path: "httpRoute.retryPolicy.perRetryTimeout", msg: "is required"},
	{name: "duration unit m", kind: rt, spec: httpRoute(`,"retryPolicy":{"httpRetryEvents":["gateway-error"],"maxRetries":1,"perRetryTimeout":{"unit":"m","value":1}}`),
		path: "httpRoute.retryPolicy.perRetryTimeout.unit", msg: `must be one of "s", "ms", got "m"`},
	{name: "duration without value", kind: rt, spec: httpRoute(`,"timeout":{"perRequest":{"unit":"s"}}`), path: "httpRoute.timeout.perRequest.value", msg: "is required"},
	{name: "duration without unit", kind: rt, spec: httpRoute(`,"timeout":{"idle":{"value":1}}`), path: "httpRoute.timeout.idle.unit", msg: "is required"},
	{name: "duration value -1", kind: rt, spec: route("grpcRoute", `{}`, `,"timeout":{"idle":{"unit":"s","value":-1}}`), path: "grpcRoute.timeout.idle.value", msg: "must be at least 0, got -1"},
	{name: "unknown http retry event", kind: rt, spec: httpRoute(`,"retryPolicy":{"httpRetryEvents":["server-error","5xx"],"maxRetries":1,"perRetryTimeout":{"unit":"s","value":1}}`),
		path: "httpRoute.retryPolicy.httpRetryEvents[1]", msg: `must be one of "server-error", "gateway-error", "client-error", "stream-error", got "5xx"`},
	{name: "26 http retry events", kind: rt, spec: httpRoute(`,"retryPolicy":{"httpRetryEvents":` + list(`"server-error"`, 26) + `,"maxRetries":1,"perRetryTimeout":{"unit":"s","value":1}}`),
		path: "httpRoute.retryPolicy.httpRetryEvents", msg: "must have between 1 and 25 items, got 26"},
	{name: "two tcp retry events", kind: rt, spec: httpRoute(`,"retryPolicy":{"tcpRetryEvents":["connection-error","connection-error"],"maxRetries":1,"perRetryTimeout":{"unit":"s","value":1}}`),
		path: "httpRoute.retryPolicy.tcpRetryEvents", msg: "must have exactly 1 item, got 2"},
	{name: "unknown tcp retry event", kind: rt, spec: httpRoute(`,"retryPolicy":{"tcpRetryEvents":["timeout"],"maxRetries":1,"perRetryTimeout":{"unit":"s","value":1}}`),
		path: "httpRoute.retryPolicy.tcpRetryEvents[0]", msg: `must be one of "connection-error", got "timeout"`},
	{name: "unknown grpc retry event", kind: rt, spec: route("grpcRoute", `{}`, `,"retryPolicy":{"grpcRetryEvents":["unknown"],"maxRetries":1,"perRetryTimeout":{"unit":"s","value":1}}`),
		path: "grpcRoute.retryPolicy.grpcRetryEvents[0]", msg: `got "unknown"`},
	{name: "6 grpc retry events", kind: rt, spec: route("grpcRoute", `{}`, `,"retryPolicy":{"grpcRetryEvents":["cancelled","deadline-exceeded","internal","resource-exhausted","unavailable","cancelled"],"maxRetries":1,"perRetryTimeout":{"unit":"s","value":1}}`),
		path: "grpcRoute.retryPolicy.grpcRetryEvents", msg: "must have between 1 and 5 items, got 6"},
	{name: "best-practice retry policies", kind: rt, spec: httpRoute(`,"retryPolicy":{"httpRetryEvents":["stream-error","gateway-error","server-error","client-error"],"tcpRetryEvents":["connection-error"],"maxRetries":0,"perRetryTimeout":{"unit":"ms","value":0}},"timeout":{"perRequest":{"unit":"s","value":0},"idle":{"unit":"ms","value":300000}}`)},

	// 8. Health checks.
	{name: "health check empty", kind: vn, spec: listenerVN(`,"healthCheck":{}`, ""), path: "listeners[0].healthCheck.healthyThreshold", msg: "is required", n: 5},
	{name: "health check healthyThreshold 1", kind: vn, spec: listenerVN(`,"healthCheck":{"protocol":"http","healthyThreshold":1,"unhealthyThreshold":2,"intervalMillis":5000,"timeoutMillis":2000}`, ""),
		path: "listeners[0].healthCheck.healthyThreshold", msg: "must be between 2 and 10, got 1"},
	{name: "health check unhealthyThreshold 11", kind: vn, spec: listenerVN(`,"healthCheck":{"protocol":"http","healthyThreshold":2,"unhealthyThreshold":11,"intervalMillis":5000,"timeoutMillis":2000}`, ""),
		path: "listeners[0].healthCheck.unhealthyThreshold", msg: "must be between 2 and 10, got 11"},
	{name: "health check interval 4999", kind: vn, spec: listenerVN(`,"healthCheck":{"protocol":"tcp","healthyThreshold":2,"unhealthyThreshold":2,"intervalMillis":4999,"timeoutMillis":2000}`, ""),
		path: "listeners[0].healthCheck.intervalMillis", msg: "must be between 5000 and 300000, got 4999"},
	{name: "health check timeout 60001", kind: vn, spec: listenerVN(`,"healthCheck":{"protocol":"grpc","healthyThreshold":2,"unhealthyThreshold":2,"intervalMillis":300000,"timeoutMillis":60001}`, ""),
		path: "listeners[0].healthCheck.timeoutMillis", msg: "must be between 2000 and 60000, got 60001"},
	{name: "health check protocol https", kind: vn, spec: listenerVN(`,"healthCheck":{"protocol":"https","healthyThreshold":2,"unhealthyThreshold":2,"intervalMillis":5000,"timeoutMillis":2000}`, ""),
		path: "listeners[0].healthCheck.protocol", msg: `must be one of "http", "http2", "grpc", "tcp", got "https"`},
	{name: "health check port differs", kind: vn, spec: listenerVN(`,"healthCheck":{`+healthCheck+`,"port":9090}`, ""),
		path: "listeners[0].healthCheck.port", msg: "must equal the listener's port 8080 (portMapping.port), got 9090"},
	{name: "health check port 0", kind: vn, spec: listenerVN(`,"healthCheck":{`+healthCheck+`,"port":0}`, ""), path: "listeners[0].healthCheck.port", msg: "must be between 1 and 65535, got 0"},
	{name: "health check", kind: vn, spec: listenerVN(`,"healthCheck":{`+healthCheck+`,"port":8080}`, "")},
	{name: "gateway health check tcp", kind: vg, spec: listenerVG(`,"healthCheck":{"protocol":"tcp","healthyThreshold":10,"unhealthyThreshold":10,"intervalMillis":5000,"timeoutMillis":2000}`, ""),
		path: "listeners[0].healthCheck.protocol", msg: `must be one of "http", "http2", "grpc", got "tcp"`},
	{name: "gateway health check", kind: vg, spec: listenerVG(`,"healthCheck":{`+healthCheck+`}`, "")},

	// 9. Outlier detection.
	{name: "outlier detection empty", kind: vn, spec: listenerVN(`,"outlierDetection":{}`, ""), path: "listeners[0].outlierDetection.baseEjectionDuration", msg: "is required", n: 4},
	{name: "outlier detection maxServerErrors 0", kind: vn,
		spec: listenerVN(`,"outlierDetection":{"maxServerErrors":0,"interval":{"unit":"s","value":10},"baseEjectionDuration":{"unit":"s","value":30},"maxEjectionPercent":50}`, ""),
		path: "listeners[0].outlierDetection.maxServerErrors", msg: "must be at least 1, got 0"},
	{name: "outlier detection maxEjectionPercent 101", kind: vn,
		spec: listenerVN(`,"outlierDetection":{"maxServerErrors":1,"interval":{"unit":"s","value":10},"baseEjectionDuration":{"unit":"s","value":30},"maxEjectionPercent":101}`, ""),
		path: "listeners[0].outlierDetection.maxEjectionPercent", msg: "must be between 0 and 100, got 101"},
	{name: "outlier detection bad interval", kind: vn,
		spec: listenerVN(`,"outlierDetection":{"maxServerErrors":1,"interval":{"unit":"h","value":1},"baseEjectionDuration":{"unit":"s","value":30},"maxEjectionPercent":0}`, ""),
		path: "listeners[0].outlierDetection.interval.unit", msg: `got "h"`},
	{name: "outlier detection", kind: vn,
		spec: listenerVN(`,"outlierDetection":{"maxServerErrors":1,"interval":{"unit":"ms","value":0},"baseEjectionDuration":{"unit":"s","value":30},"maxEjectionPercent":100}`, "")},

	// 10. Connection pools and listener timeouts.
	{name: "connection pool of another protocol", kind: vn, spec: listenerVN(`,"connectionPool":{"tcp":{"maxConnections":1}}`, ""),
		path: "listeners[0].connectionPool", msg: `must set "http" to match the listener's protocol (portMapping.protocol), got "tcp"`},
	{name: "empty connection pool", kind: vn, spec: listenerVN(`,"connectionPool":{}`, ""), path: "listeners[0].connectionPool", msg: `set exactly one of "http", "http2", "grpc", "tcp", got none`},
	{name: "http pool without maxConnections", kind: vn, spec: listenerVN(`,"connectionPool":{"http":{"maxPendingRequests":1}}`, ""), path: "listeners[0].connectionPool.http.maxConnections", msg: "is required"},
	{name: "http pool maxPendingRequests 0", kind: vn, spec: listenerVN(`,"connectionPool":{"http":{"maxConnections":1,"maxPendingRequests":0}}`, ""),
		path: "listeners[0].connectionPool.http.maxPendingRequests", msg: "must be at least 1, got 0"},
	{name: "grpc pool maxRequests 0", kind: vn, spec: `{"listeners":[{"portMapping":{"port":80,"protocol":"grpc"},"connectionPool":{"grpc":{"maxRequests":0}}}],"serviceDiscovery":{"dns":{"hostname":"a"}}}`,
		path: "listeners[0].connectionPool.grpc.maxRequests", msg: "must be at least 1, got 0"},
	{name: "tcp pool", kind: vn, spec: `{"listeners":[{"portMapping":{"port":80,"protocol":"tcp"},"connectionPool":{"tcp":{"maxConnections":1}},"timeout":{"tcp":{"idle":{"unit":"s","value":0}}}}],"serviceDiscovery":{"dns":{"hostname":"a"}}}`},
	{name: "gateway http2 pool on http listener", kind: vg, spec: listenerVG(`,"connectionPool":{"http2":{"maxRequests":1}}`, ""),
		path: "listeners[0].connectionPool", msg: `must set "http" to match the listener's protocol (portMapping.protocol), got "http2"`},
	{name: "gateway empty pool", kind: vg, spec: listenerVG(`,"connectionPool":{}`, ""), path: "listeners[0].connectionPool", msg: `set exactly one of "http", "http2", "grpc", got none`},
	{name: "gateway http pool", kind: vg, spec: listenerVG(`,"connectionPool":{"http":{"maxConnections":1,"maxPendingRequests":1}}`, "")},
	{name: "listener timeout of another protocol", kind: vn, spec: listenerVN(`,"timeout":{"grpc":{"perRequest":{"unit":"s","value":1}}}`, ""),
		path: "listeners[0].timeout", msg: `must set "http" to match the listener's protocol (portMapping.protocol), got "grpc"`},
	{name: "empty listener timeout", kind: vn, spec: listenerVN(`,"timeout":{}`, ""), path: "listeners[0].timeout", msg: "set exactly one of"},
	{name: "listener timeout bad duration", kind: vn, spec: listenerVN(`,"timeout":{"http":{"idle":{"unit":"s","value":-1}}}`, ""), path: "listeners[0].timeout.http.idle.value", msg: "got -1"},

	// 11. Listeners.
	{name: "listener without portMapping", kind: vn, spec: `{"listeners":[{}],"serviceDiscovery":{"dns":{"hostname":"a"}}}`, path: "listeners[0].portMapping", msg: "is required"},
	{name: "listener without port", kind: vr, spec: `{"listeners":[{"portMapping":{"protocol":"http"}}]}`, path: "listeners[0].portMapping.port", msg: "is required"},
	{name: "listener port 0", kind: vn, spec: `{"listeners":[{"portMapping":{"port":0,"protocol":"http"}}],"serviceDiscovery":{"dns":{"hostname":"a"}}}`,
		path: "listeners[0].portMapping.port", msg: "must be between 1 and 65535, got 0"},
	{name: "listener port 65536", kind: vr, spec: `{"listeners":[{"portMapping":{"port":65536,"protocol":"tcp"}}]}`, path: "listeners[0].portMapping.port", msg: "got 65536"},
	{name: "listener without protocol", kind: vr, spec: `{"listeners":[{"portMapping":{"port":80}}]}`, path: "listeners[0].portMapping.protocol", msg: `is required (one of "http", "http2", "grpc", "tcp")`},
	{name: "listener protocol https", kind: vn, spec: `{"listeners":[{"portMapping":{"port":443,"protocol":"https"}}],"serviceDiscovery":{"dns":{"hostname":"a"}}}`,
		path: "listeners[0].portMapping.protocol", msg: `must be one of "http", "http2", "grpc", "tcp", got "https"`},
	{name: "gateway listener protocol tcp", kind: vg, spec: `{"listeners":[{"portMapping":{"port":80,"protocol":"tcp"}}]}`,
		path: "listeners[0].portMapping.protocol", msg: `must be one of "http", "http2", "grpc", got "tcp"`},
	{name: "duplicate virtual node ports", kind: vn, spec: `{"listeners":[{"portMapping":{"port":80,"protocol":"http"}},{"portMapping":{"port":80,"protocol":"tcp"}}],"serviceDiscovery":{"dns":{"hostname":"a"}}}`,
		path: "listeners[1].portMapping.port", msg: "port 80 is already used by listeners[0]"},
	{name: "duplicate virtual router ports", kind: vr, spec: `{"listeners":[{"portMapping":{"port":80,"protocol":"http"}},{"portMapping":{"port":81,"protocol":"http"}},{"portMapping":{"port":81,"protocol":"http"}}]}`,
		path: "listeners[2].portMapping.port", msg: "already used by listeners[1]"},
	{name: "duplicate gateway ports", kind: vg, spec: `{"listeners":[{"portMapping":{"port":80,"protocol":"http"}},{"portMapping":{"port":80,"protocol":"grpc"}}]}`,
		path: "listeners[1].portMapping.port", msg: "already used"},
	{name: "multiple listeners", kind: vr, spec: `{"listeners":[{"portMapping":{"port":80,"protocol":"http"}},{"portMapping":{"port":81,"protocol":"http2"}},{"portMapping":{"port":82,"protocol":"grpc"}},{"portMapping":{"port":83,"protocol":"tcp"}}]}`},

	// 12. Service discovery and mesh.
	{name: "listeners without service discovery", kind: vn, spec: `{"listeners":[{"portMapping":{"port":80,"protocol":"http"}}]}`, path: "serviceDiscovery", msg: "is required when the virtual node has listeners"},
	{name: "dns without hostname", kind: vn, spec: `{"serviceDiscovery":{"dns":{"responseType":"ENDPOINTS"}}}`, path: "serviceDiscovery.dns.hostname", msg: "is required"},
	{name: "dns responseType", kind: vn, spec: `{"serviceDiscovery":{"dns":{"hostname":"a","responseType":"ROUND_ROBIN"}}}`,
		path: "serviceDiscovery.dns.responseType", msg: `must be one of "LOADBALANCER", "ENDPOINTS", got "ROUND_ROBIN"`},
	{name: "dns ipPreference", kind: vn, spec: `{"serviceDiscovery":{"dns":{"hostname":"a","ipPreference":"IPv4"}}}`, path: "serviceDiscovery.dns.ipPreference", msg: `got "IPv4"`},
	{name: "cloud map without namespace", kind: vn, spec: `{"serviceDiscovery":{"awsCloudMap":{"serviceName":"s"}}}`, path: "serviceDiscovery.awsCloudMap.namespaceName", msg: "is required"},
	{name: "cloud map service name 1025", kind: vn, spec: `{"serviceDiscovery":{"awsCloudMap":{"namespaceName":"n","serviceName":"` + strings.Repeat("s", 1025) + `"}}}`,
		path: "serviceDiscovery.awsCloudMap.serviceName", msg: "must be between 1 and 1024 characters long, got 1025"},
	{name: "cloud map attribute key with space", kind: vn, spec: `{"serviceDiscovery":{"awsCloudMap":{"namespaceName":"n","serviceName":"s","attributes":[{"key":"a b","value":"v"}]}}}`,
		path: "serviceDiscovery.awsCloudMap.attributes[0].key", msg: "printable ASCII"},
	{name: "cloud map attribute key 256", kind: vn, spec: `{"serviceDiscovery":{"awsCloudMap":{"namespaceName":"n","serviceName":"s","attributes":[{"key":"` + s256 + `","value":"v"}]}}}`,
		path: "serviceDiscovery.awsCloudMap.attributes[0].key", msg: "got 256"},
	{name: "cloud map attribute without value", kind: vn, spec: `{"serviceDiscovery":{"awsCloudMap":{"namespaceName":"n","serviceName":"s","attributes":[{"key":"k"}]}}}`,
		path: "serviceDiscovery.awsCloudMap.attributes[0].value", msg: "is required"},
	{name: "cloud map", kind: vn, spec: `{"serviceDiscovery":{"awsCloudMap":{"namespaceName":"apps.local","serviceName":"s","ipPreference":"IPv6_ONLY","attributes":[{"key":"ECS_TASK_DEFINITION_FAMILY","value":"v"},{"key":"!~","value":"x"}]}}}`},
	{name: "mesh egress filter without type", kind: mesh, spec: `{"egressFilter":{}}`, path: "egressFilter.type", msg: `is required (one of "ALLOW_ALL", "DROP_ALL")`},
	{name: "mesh egress filter DENY", kind: mesh, spec: `{"egressFilter":{"type":"DENY"}}`, path: "egressFilter.type", msg: `must be one of "ALLOW_ALL", "DROP_ALL", got "DENY"`},
	{name: "mesh ipPreference", kind: mesh, spec: `{"serviceDiscovery":{"ipPreference":"IPv6_PREFERED"}}`, path: "serviceDiscovery.ipPreference",
		msg: `must be one of "IPv6_PREFERRED", "IPv4_PREFERRED", "IPv4_ONLY", "IPv6_ONLY", got "IPv6_PREFERED"`},
	{name: "mesh", kind: mesh, spec: `{"egressFilter":{"type":"ALLOW_ALL"},"serviceDiscovery":{"ipPreference":"IPv4_ONLY"}}`},

	// 13. TLS.
	{name: "listener tls without mode", kind: vn, spec: listenerVN(`,"tls":{"certificate":{"acm":{"certificateArn":"arn"}}}`, ""), path: "listeners[0].tls.mode", msg: "is required"},
	{name: "listener tls mode ON", kind: vn, spec: listenerVN(`,"tls":{"mode":"ON","certificate":{"acm":{"certificateArn":"arn"}}}`, ""),
		path: "listeners[0].tls.mode", msg: `must be one of "STRICT", "PERMISSIVE", "DISABLED", got "ON"`},
	{name: "listener tls without certificate", kind: vn, spec: listenerVN(`,"tls":{"mode":"STRICT"}`, ""), path: "listeners[0].tls.certificate", msg: "is required"},
	{name: "listener tls two certificates", kind: vn, spec: listenerVN(`,"tls":{"mode":"STRICT","certificate":{"acm":{"certificateArn":"arn"},"sds":{"secretName":"s"}}}`, ""),
		path: "listeners[0].tls.certificate", msg: `set exactly one of "acm", "file", "sds", got "acm", "sds"`},
	{name: "listener tls file without key", kind: vn, spec: listenerVN(`,"tls":{"mode":"PERMISSIVE","certificate":{"file":{"certificateChain":"/c.pem"}}}`, ""),
		path: "listeners[0].tls.certificate.file.privateKey", msg: "is required"},
	{name: "listener tls file chain 256", kind: vn, spec: listenerVN(`,"tls":{"mode":"PERMISSIVE","certificate":{"file":{"certificateChain":"`+s256+`","privateKey":"/k.pem"}}}`, ""),
		path: "listeners[0].tls.certificate.file.certificateChain", msg: "got 256"},
	{name: "listener tls sds without secret", kind: vn, spec: listenerVN(`,"tls":{"mode":"STRICT","certificate":{"sds":{}}}`, ""), path: "listeners[0].tls.certificate.sds.secretName", msg: "is required"},
	{name: "listener tls acm without arn", kind: vg, spec: listenerVG(`,"tls":{"mode":"STRICT","certificate":{"acm":{}}}`, ""), path: "listeners[0].tls.certificate.acm.certificateArn", msg: "is required"},
	{name: "listener validation without trust", kind: vn, spec: listenerVN(`,"tls":{"mode":"STRICT","certificate":{"sds":{"secretName":"s"}},"validation":{}}`, ""),
		path: "listeners[0].tls.validation.trust", msg: "is required"},
	{name: "listener validation empty trust", kind: vg, spec: listenerVG(`,"tls":{"mode":"STRICT","certificate":{"sds":{"secretName":"s"}},"validation":{"trust":{}}}`, ""),
		path: "listeners[0].tls.validation.trust", msg: `set exactly one of "file", "sds", got none`},
	{name: "listener validation SANs without exact", kind: vn, spec: listenerVN(`,"tls":{"mode":"STRICT","certificate":{"sds":{"secretName":"s"}},"validation":{"trust":{"sds":{"secretName":"b"}},"subjectAlternativeNames":{"match":{}}}}`, ""),
		path: "listeners[0].tls.validation.subjectAlternativeNames.match.exact", msg: "is required"},
	{name: "listener validation wildcard SAN", kind: vn, spec: listenerVN(`,"tls":{"mode":"STRICT","certificate":{"sds":{"secretName":"s"}},"validation":{"trust":{"sds":{"secretName":"b"}},"subjectAlternativeNames":{"match":{"exact":["*.apps.local"]}}}}`, "")},
	{name: "gateway listener mutual TLS", kind: vg, spec: listenerVG(`,"tls":{"mode":"STRICT","certificate":{"file":{"certificateChain":"/c.pem","privateKey":"/k.pem"}},"validation":{"trust":{"file":{"certificateChain":"/ca.pem"}},"subjectAlternativeNames":{"match":{"exact":["`+s254+`"]}}}}`, "")},
	{name: "client policy without validation", kind: vn, spec: clientTLS(`{"enforce":true}`), path: "backendDefaults.clientPolicy.tls.validation", msg: "is required"},
	{name: "client policy empty trust", kind: vn, spec: clientTLS(`{"validation":{"trust":{}}}`), path: "backendDefaults.clientPolicy.tls.validation.trust", msg: `set exactly one of "acm", "file", "sds", got none`},
	{name: "client policy 4 CA ARNs", kind: vn, spec: clientTLS(`{"validation":{"trust":{"acm":{"certificateAuthorityArns":["a","b","c","d"]}}}}`),
		path: "backendDefaults.clientPolicy.tls.validation.trust.acm.certificateAuthorityArns", msg: "must have between 1 and 3 items, got 4"},
	{name: "client policy no CA ARNs", kind: vn, spec: clientTLS(`{"validation":{"trust":{"acm":{"certificateAuthorityArns":[]}}}}`),
		path: "backendDefaults.clientPolicy.tls.validation.trust.acm.certificateAuthorityArns", msg: "is required"},
	{name: "client policy file trust without chain", kind: vn, spec: clientTLS(`{"validation":{"trust":{"file":{}}}}`),
		path: "backendDefaults.clientPolicy.tls.validation.trust.file.certificateChain", msg: "is required"},
	{name: "client policy port 0", kind: vn, spec: clientTLS(`{"ports":[80,0],` + fileTrust + `}`), path: "backendDefaults.clientPolicy.tls.ports[1]", msg: "must be between 1 and 65535, got 0"},
	{name: "client policy empty certificate", kind: vn, spec: clientTLS(`{"certificate":{},` + fileTrust + `}`), path: "backendDefaults.clientPolicy.tls.certificate", msg: `set exactly one of "file", "sds", got none`},
	{name: "client policy SAN 255", kind: vn, spec: sans(`"enforce":false,`, `["`+s255+`"]`), path: "backendDefaults.clientPolicy.tls.validation.subjectAlternativeNames.match.exact[0]", msg: "must be between 1 and 254 characters long, got 255"},
	{name: "client policy empty SAN", kind: vn, spec: sans("", `["a",""]`), path: "backendDefaults.clientPolicy.tls.validation.subjectAlternativeNames.match.exact[1]", msg: "got 0"},
	{name: "client policy SANs without match", kind: vn, spec: clientTLS(`{"validation":{"subjectAlternativeNames":{},"trust":{"sds":{"secretName":"s"}}}}`),
		path: "backendDefaults.clientPolicy.tls.validation.subjectAlternativeNames.match", msg: "is required"},
	{name: "wildcard SAN, enforce unset", kind: vn, spec: sans("", `["a.local","*.apps.local"]`), path: "backendDefaults.clientPolicy.tls.validation.subjectAlternativeNames.match.exact[1]", msg: "wildcard"},
	{name: "wildcard SAN, enforce true", kind: vn, spec: sans(`"enforce":true,`, `["*.apps.local"]`), path: "backendDefaults.clientPolicy.tls.validation.subjectAlternativeNames.match.exact[0]", msg: "enforces TLS"},
	{name: "wildcard SAN, enforce false", kind: vn, spec: sans(`"enforce":false,`, `["*.apps.local"]`)},
	{name: "backend client policy wildcard SAN", kind: vn,
		spec: `{"backends":[{"virtualService":{"virtualServiceName":"b","clientPolicy":{"tls":{"validation":{"subjectAlternativeNames":{"match":{"exact":["*"]}},"trust":{"sds":{"secretName":"s"}}}}}}}]}`,
		path: "backends[0].virtualService.clientPolicy.tls.validation.subjectAlternativeNames.match.exact[0]", msg: "wildcard"},
	{name: "gateway client policy wildcard SAN", kind: vg,
		spec: listenerVG("", `,"backendDefaults":{"clientPolicy":{"tls":{"validation":{"subjectAlternativeNames":{"match":{"exact":["*.apps.local"]}},"trust":{"acm":{"certificateAuthorityArns":["arn"]}}}}}}`),
		path: "backendDefaults.clientPolicy.tls.validation.subjectAlternativeNames.match.exact[0]", msg: "wildcard"},
	{name: "gateway client policy", kind: vg,
		spec: listenerVG("", `,"backendDefaults":{"clientPolicy":{"tls":{"enforce":true,"ports":[443],"certificate":{"sds":{"secretName":"c"}},"validation":{"subjectAlternativeNames":{"match":{"exact":["a.apps.local"]}},"trust":{"acm":{"certificateAuthorityArns":["a","b","c"]}}}}}}`)},

	// 14. Access logs.
	{name: "empty access log", kind: vn, spec: `{"logging":{"accessLog":{}}}`, path: "logging.accessLog", msg: `set exactly one of "file", got none`},
	{name: "access log without path", kind: vn, spec: logging(`{}`), path: "logging.accessLog.file.path", msg: "is required"},
	{name: "access log path 256", kind: vg, spec: listenerVG("", `,"logging":{"accessLog":{"file":{"path":"/`+s255+`"}}}`), path: "logging.accessLog.file.path", msg: "got 256"},
	{name: "empty log format", kind: vn, spec: logFormat(`{}`), path: "logging.accessLog.file.format", msg: `set exactly one of "json", "text", got none`},
	{name: "json and text log format", kind: vn, spec: logFormat(`{"text":"%START_TIME%","json":[{"key":"a","value":"%START_TIME%"}]}`), path: "logging.accessLog.file.format", msg: `got "json", "text"`},
	{name: "json key 101", kind: vn, spec: logFormat(`{"json":[{"key":"` + s101 + `","value":"v"}]}`), path: "logging.accessLog.file.format.json[0].key", msg: "must be between 1 and 100 characters long, got 101"},
	{name: "json value 101", kind: vn, spec: logFormat(`{"json":[{"key":"k","value":"` + s101 + `"}]}`), path: "logging.accessLog.file.format.json[0].value", msg: "got 101"},
	{name: "json without value", kind: vn, spec: logFormat(`{"json":[{"key":"k"}]}`), path: "logging.accessLog.file.format.json[0].value", msg: "is required"},
	{name: "json value unclosed operator", kind: vn, spec: logFormat(`{"json":[{"key":"code","value":"%RESPONSE_CODE"}]}`), path: "logging.accessLog.file.format.json[0].value", msg: "operator %RESPONSE_CODE at byte 0 is not closed by %"},
	{name: "text 1001", kind: vn, spec: logFormat(`{"text":"` + strings.Repeat("a", 1001) + `"}`), path: "logging.accessLog.file.format.text", msg: "must be between 1 and 1000 characters long, got 1001"},
	{name: "text lone percent", kind: vn, spec: logFormat(`{"text":"100% done"}`), path: "logging.accessLog.file.format.text", msg: "% at byte 3 does not start an operator"},
	{name: "text trailing percent", kind: vn, spec: logFormat(`{"text":"%START_TIME% %"}`), path: "logging.accessLog.file.format.text", msg: "% at byte 13 does not start an operator"},
	{name: "text lower-case operator", kind: vn, spec: logFormat(`{"text":"%start_time%"}`), path: "logging.accessLog.file.format.text", msg: "does not start an operator"},
	{name: "text unclosed parenthesis", kind: vn, spec: logFormat(`{"text":"%REQ(:path%\n"}`), path: "logging.accessLog.file.format.text", msg: "'(' is not closed by ')'"},
	{name: "text bad max length", kind: vn, spec: logFormat(`{"text":"%REQ(:path):x%"}`), path: "logging.accessLog.file.format.text", msg: "':' must be followed by a maximum length"},
	{name: "text operators", kind: vn, spec: logFormat(`{"text":"[%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH):256% %PROTOCOL%\" %RESPONSE_CODE% 100%% %REQ_WITHOUT_QUERY(X?Y):20% %SOME_FUTURE_OPERATOR_2030%\n"}`)},
	{name: "json format", kind: vg, spec: listenerVG("", `,"logging":{"accessLog":{"file":{"path":"/dev/stdout","format":{"json":[{"key":"`+s100+`","value":"%RESPONSE_CODE%"},{"key":"literal","value":"no operators"}]}}}}`)},
	{name: "gateway json value lone percent", kind: vg, spec: listenerVG("", `,"logging":{"accessLog":{"file":{"path":"/dev/stdout","format":{"json":[{"key":"k","value":"50%"}]}}}}`),
		path: "logging.accessLog.file.format.json[0].value", msg: "does not start an operator"},

	// 15. Gateway route actions and rewrites.
	{name: "gateway route without action", kind: gr, spec: `{"httpRoute":{"match":{"prefix":"/"}}}`, path: "httpRoute.action", msg: "is required"},
	{name: "gateway route without target", kind: gr, spec: `{"httpRoute":{"action":{},"match":{"prefix":"/"}}}`, path: "httpRoute.action.target", msg: "is required"},
	{name: "gateway route target without virtual service", kind: gr, spec: `{"grpcRoute":{"action":{"target":{"port":80}},"match":{}}}`, path: "grpcRoute.action.target.virtualService", msg: "is required"},
	{name: "gateway route target without name", kind: gr, spec: `{"http2Route":{"action":{"target":{"virtualService":{}}},"match":{"prefix":"/"}}}`,
		path: "http2Route.action.target.virtualService.virtualServiceName", msg: "is required"},
	{name: "gateway route target port 70000", kind: gr, spec: `{"httpRoute":{"action":{"target":{"port":70000,"virtualService":{"virtualServiceName":"a"}}},"match":{"prefix":"/"}}}`,
		path: "httpRoute.action.target.port", msg: "got 70000"},
	{name: "prefix rewrite with path match", kind: gr, spec: gatewayRoute("httpRoute", `{"path":{"exact":"/a"}}`, `,"rewrite":{"prefix":{"value":"/b/"}}`),
		path: "httpRoute.action.rewrite.prefix", msg: "is allowed only with a prefix match"},
	{name: "path rewrite with prefix match", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/a"}`, `,"rewrite":{"path":{"exact":"/b"}}`),
		path: "httpRoute.action.rewrite.path", msg: "is allowed only with a path match"},
	{name: "path rewrite with hostname match", kind: gr, spec: gatewayRoute("httpRoute", `{"hostname":{"exact":"a.example.com"}}`, `,"rewrite":{"path":{"exact":"/b"}}`),
		path: "httpRoute.action.rewrite.path", msg: "is allowed only with a path match"},
	{name: "prefix rewrite defaultPrefix YES", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/a"}`, `,"rewrite":{"prefix":{"defaultPrefix":"YES"}}`),
		path: "httpRoute.action.rewrite.prefix.defaultPrefix", msg: `must be one of "ENABLED", "DISABLED", got "YES"`},
	{name: "prefix rewrite value and defaultPrefix", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/a"}`, `,"rewrite":{"prefix":{"defaultPrefix":"ENABLED","value":"/b"}}`),
		path: "httpRoute.action.rewrite.prefix", msg: `got "defaultPrefix", "value"`},
	{name: "prefix rewrite value 256", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/a"}`, `,"rewrite":{"prefix":{"value":"/`+s255+`"}}`),
		path: "httpRoute.action.rewrite.prefix.value", msg: "got 256"},
	{name: "path rewrite exact 256", kind: gr, spec: gatewayRoute("httpRoute", `{"path":{"regex":"/a.*"}}`, `,"rewrite":{"path":{"exact":"/`+s255+`"}}`),
		path: "httpRoute.action.rewrite.path.exact", msg: "got 256"},
	{name: "hostname rewrite on", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/a"}`, `,"rewrite":{"hostname":{"defaultTargetHostname":"on"}}`),
		path: "httpRoute.action.rewrite.hostname.defaultTargetHostname", msg: `got "on"`},
	{name: "grpc hostname rewrite on", kind: gr, spec: gatewayRoute("grpcRoute", `{}`, `,"rewrite":{"hostname":{"defaultTargetHostname":"on"}}`),
		path: "grpcRoute.action.rewrite.hostname.defaultTargetHostname", msg: `got "on"`},
	{name: "hostname match exact 254", kind: gr, spec: gatewayRoute("httpRoute", `{"hostname":{"exact":"`+s254+`"}}`, ""), path: "httpRoute.match.hostname.exact", msg: "must be between 1 and 253 characters long, got 254"},
	{name: "hostname match suffix 253", kind: gr, spec: gatewayRoute("httpRoute", `{"hostname":{"suffix":"`+s253+`"}}`, "")},
	{name: "prefix match, prefix and hostname rewrites", kind: gr, spec: gatewayRoute("httpRoute", `{"prefix":"/red/"}`, `,"rewrite":{"prefix":{"value":"/blue/"},"hostname":{"defaultTargetHostname":"DISABLED"}}`)},
	{name: "prefix match, default prefix disabled", kind: gr, spec: gatewayRoute("http2Route", `{"prefix":"/"}`, `,"rewrite":{"prefix":{"defaultPrefix":"DISABLED"}}`)},
	{name: "regex path match, path rewrite", kind: gr, spec: gatewayRoute("httpRoute", `{"path":{"regex":"/colou?r"}}`, `,"rewrite":{"path":{"exact":"/color"},"hostname":{"defaultTargetHostname":"ENABLED"}}`)},

	// 16. Virtual gateways.
	{name: "gateway without listeners", kind: vg, spec: `{}`, path: "listeners", msg: "is required"},
	{name: "gateway listener without portMapping", kind: vg, spec: `{"listeners":[{}]}`, path: "listeners[0].portMapping", msg: "is required"},

	// 17. Virtual service providers and backends.
	{name: "virtual node provider bad name", kind: vs, spec: `{"provider":{"virtualNode":{"virtualNodeName":"node name"}}}`, path: "provider.virtualNode.virtualNodeName", msg: "only letters, digits"},
	{name: "virtual router provider without name", kind: vs, spec: `{"provider":{"virtualRouter":{}}}`, path: "provider.virtualRouter.virtualRouterName", msg: "is required"},
	{name: "virtual router provider name 256", kind: vs, spec: `{"provider":{"virtualRouter":{"virtualRouterName":"` + s256 + `"}}}`, path: "provider.virtualRouter.virtualRouterName", msg: "at most 255"},
	{name: "virtual router provider", kind: vs, spec: `{"provider":{"virtualRouter":{"virtualRouterName":"` + s255 + `"}}}`},
	{name: "backend without name", kind: vn, spec: `{"backends":[{"virtualService":{}}]}`, path: "backends[0].virtualService.virtualServiceName", msg: "is required"},
}

func TestValidate(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range validateCases {
		if names[tc.name] {
			t.Errorf("duplicate case name %q", tc.name)
		}
		names[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			spec, err := appmesh.DecodeSpec(tc.kind, []byte(tc.spec))
			if err != nil {
				t.Fatalf("spec does not decode: %v\n%s", err, tc.spec)
			}
			got := appmesh.Validate(tc.kind, spec)
			if tc.msg == "" {
				for _, e := range got {
					t.Errorf("unexpected problem %q at %q", e.Msg, e.Path)
				}
				return
			}
			n := tc.n
			if n == 0 {
				n = 1
			}
			found := false
			for _, e := range got {
				if e.Path == tc.path && strings.Contains(e.Msg, tc.msg) {
					found = true
				}
			}
			if !found || len(got) != n {
				t.Errorf("want %d problem(s), one at %q containing %q; got %d:", n, tc.path, tc.msg, len(got))
				for _, e := range got {
					t.Errorf("  %q: %s", e.Path, e.Msg)
				}
			}
		})
	}
}

func TestCheckRegex(t *testing.T) {
	for _, tc := range []struct {
		re   string
		want []string // substrings of the error; nil for success
	}{
		{re: `^/api/v[0-9]+/.*$`},
		{re: `(?i)^prefix`},
		{re: `(?P<name>a)(?<other>b)`},
		{re: `prefix[^0-9]?suffix`},
		{re: `ex(amp){0}le`},
		{re: `\\1`},   // an escaped backslash, then 1
		{re: `\012`},  // octal, not a back-reference
		{re: `[(?=]`}, // inside a class: literal characters
		{re: strings.Repeat("a", 255)},
		{re: "", want: []string{"must be between 1 and 255 characters long, got 0"}},
		{re: strings.Repeat("a", 256), want: []string{"got 256"}},
		{re: `(?=example)`, want: []string{"lookaround `(?=`", "RE2", "does not support", "§1.9", "(x)"}},
		{re: `ex(?!ample)`, want: []string{"lookaround `(?!`", "RE2", "does not support", "[^0-9]?"}},
		{re: `(?<=a)b`, want: []string{"lookaround `(?<=`", "does not support"}},
		{re: `(?<!a)b`, want: []string{"lookaround `(?<!`", "does not support"}},
		{re: `^(a+)-\1$`, want: []string{"back-reference `\\1`", "RE2", "does not support", "literal text"}},
		{re: `[a-`, want: []string{"is not a valid RE2 regex", "missing closing ]"}},
		{re: `[(?=]+(`, want: []string{"is not a valid RE2 regex", "missing closing )"}},
		{re: `[^]\1]`, want: []string{"is not a valid RE2 regex", "invalid escape sequence"}},
		{re: `a{1001}`, want: []string{"is not a valid RE2 regex", "invalid repeat count"}},
		{re: `*a`, want: []string{"is not a valid RE2 regex", "missing argument to repetition operator"}},
		{re: "\xff", want: []string{"is not a valid RE2 regex", "invalid UTF-8"}},
	} {
		err := appmesh.CheckRegex(tc.re)
		if tc.want == nil {
			if err != nil {
				t.Errorf("CheckRegex(%q) = %v, want nil", tc.re, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("CheckRegex(%q) = nil, want an error", tc.re)
			continue
		}
		t.Logf("CheckRegex(%q): %v", tc.re, err)
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("CheckRegex(%q) = %q, want it to contain %q", tc.re, err, w)
			}
		}
	}
}

func TestValidateArguments(t *testing.T) {
	for _, tc := range []struct {
		kind appmesh.ResourceKind
		spec any
		want string
	}{
		{"Pod", &appmesh.MeshSpec{}, `unknown App Mesh resource kind "Pod"`},
		{appmesh.KindMesh, &appmesh.RouteSpec{}, "a Mesh spec must be a *appmesh.MeshSpec, got *appmesh.RouteSpec"},
		{appmesh.KindMesh, appmesh.MeshSpec{}, "got appmesh.MeshSpec"},
		{appmesh.KindRoute, nil, "got <nil>"},
		{appmesh.KindRoute, (*appmesh.RouteSpec)(nil), "the Route spec is nil"},
	} {
		got := appmesh.Validate(tc.kind, tc.spec)
		if len(got) != 1 || got[0].Path != "" || !strings.Contains(got[0].Msg, tc.want) {
			t.Errorf("Validate(%s, %#v) = %v, want one problem containing %q", tc.kind, tc.spec, got, tc.want)
		}
	}
	// Every kind's empty spec: only the required members are reported.
	for _, k := range appmesh.ResourceKinds() {
		got := appmesh.Validate(k, appmesh.NewSpec(k))
		want := map[appmesh.ResourceKind]int{appmesh.KindRoute: 1, appmesh.KindGatewayRoute: 1, appmesh.KindVirtualGateway: 1}[k]
		if len(got) != want {
			t.Errorf("Validate(%s, empty spec) = %v, want %d problems", k, got, want)
		}
	}
}

// TestValidateAllProblemsInOrder checks that Validate reports every problem,
// not just the first, in the order the spec is walked: object rules first,
// then members in the API's order, each list item in turn.
func TestValidateAllProblemsInOrder(t *testing.T) {
	spec := `{"listeners":[
		{"portMapping":{"port":0,"protocol":"https"},"connectionPool":{"tcp":{}},"healthCheck":{"protocol":"http","healthyThreshold":1,"unhealthyThreshold":2,"intervalMillis":5000,"timeoutMillis":2000}},
		{"portMapping":{"port":80,"protocol":"tcp"},"timeout":{"http":{}}},
		{"portMapping":{"port":80,"protocol":"tcp"}}],
		"backends":[{"virtualService":{}}],
		"backendDefaults":{"clientPolicy":{"tls":{"validation":{"subjectAlternativeNames":{"match":{"exact":["*.a"]}},"trust":{}}}}},
		"logging":{"accessLog":{"file":{"format":{"text":"50%"}}}}}`
	want := []string{
		`backendDefaults.clientPolicy.tls.validation.subjectAlternativeNames.match.exact[0]: wildcard subject alternative name "*.a" is not allowed`,
		`backendDefaults.clientPolicy.tls.validation.trust: set exactly one of "acm", "file", "sds", got none`,
		`backends[0].virtualService.virtualServiceName: is required`,
		`listeners[0].portMapping.port: must be between 1 and 65535, got 0`,
		`listeners[0].portMapping.protocol: must be one of "http", "http2", "grpc", "tcp", got "https"`,
		`listeners[0].connectionPool.tcp.maxConnections: is required`,
		`listeners[0].healthCheck.healthyThreshold: must be between 2 and 10, got 1`,
		`listeners[1].timeout: must set "tcp" to match the listener's protocol (portMapping.protocol), got "http"`,
		`listeners[2].portMapping.port: port 80 is already used by listeners[1]`,
		`logging.accessLog.file.format.text: % at byte 2 does not start an operator`,
		`logging.accessLog.file.path: is required`,
		`serviceDiscovery: is required when the virtual node has listeners`,
	}
	decoded, err := appmesh.DecodeSpec(vn, []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	got := appmesh.Validate(vn, decoded)
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			t.Errorf("missing problem %d: %s", i, want[i])
		case i >= len(want):
			t.Errorf("unexpected problem %d: %v", i, got[i])
		case !strings.HasPrefix(got[i].Error(), want[i]):
			t.Errorf("problem %d = %v\nwant prefix       %s", i, got[i], want[i])
		}
	}
	again := appmesh.Validate(vn, decoded)
	if len(again) != len(got) {
		t.Fatalf("second run: %d problems, first %d", len(again), len(got))
	}
	for i := range got {
		if *got[i] != *again[i] {
			t.Errorf("second run problem %d = %v, first %v", i, again[i], got[i])
		}
	}
}

func TestCheckServiceName(t *testing.T) {
	for name, ok := range map[string]bool{
		"serviceb.apps.local": true, "my-service.default.svc.cluster.local": true, "": false,
		"a b": false, "a\r\nHost: evil": false, "x\x00": false, strings.Repeat("a", 256): false,
	} {
		if err := appmesh.CheckServiceName(name); (err == nil) != ok {
			t.Errorf("CheckServiceName(%q) = %v, want ok %t", name, err, ok)
		}
	}
}
