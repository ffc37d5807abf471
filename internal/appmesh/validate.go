package appmesh

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// This file, validate_route.go (routes, gateway routes) and validate_tls.go
// check specs against the App Mesh API's rules that need no other resource
// (spec §1.1–1.10, §7.3). Rules across resources (route type ↔ listener
// protocol, ports required when there are several listeners, references,
// quotas, the Envoy admin port) are checked elsewhere. What the spec only
// recommends or warns about (weights adding up to exactly 100, perRequest ≥
// maxRetries × perRetryTimeout, outlier detection with DNS LOADBALANCER,
// gateway ports ≤ 1024) is not an error here.
//
// Order of problems: for each object, rules about the object as a whole
// (union cardinality, "at least one of") come first, then its members in
// the order types.go declares them (the API's alphabetical order), each
// member's problems before the next member's. One exception: a listener's
// portMapping comes first, as its other members are checked against it, and
// a duplicate port is reported after the rest of that listener.

// Validate checks a decoded spec (as returned by DecodeSpec: *MeshSpec, *VirtualNodeSpec, …) against
// the App Mesh API's rules that need no other resource: required fields, ranges, enums, union
// cardinality, lengths, RE2 regexes, reserved prefixes, retry events, access-log formats, TLS shapes.
// It returns every problem found (not just the first), each located by its path inside the spec,
// in a deterministic order. It never panics.
func Validate(kind ResourceKind, spec any) (errs []*SpecError) {
	want := NewSpec(kind)
	if want == nil {
		return []*SpecError{{Msg: fmt.Sprintf("unknown App Mesh resource kind %q", kind)}}
	}
	if reflect.TypeOf(spec) != reflect.TypeOf(want) {
		return []*SpecError{{Msg: fmt.Sprintf("a %s spec must be a %T, got %T", kind, want, spec)}}
	}
	if reflect.ValueOf(spec).IsNil() {
		return []*SpecError{{Msg: fmt.Sprintf("the %s spec is nil", kind)}}
	}
	v := &validator{}
	defer func() {
		// A panic is a bug in this file; report it rather than take the
		// caller (the control plane) down. The fuzz test looks for it.
		if r := recover(); r != nil {
			errs = append(v.errs, &SpecError{Msg: fmt.Sprintf("%s: %v", internalErrorMsg, r)})
		}
	}()
	switch s := spec.(type) {
	case *MeshSpec:
		v.mesh(s)
	case *VirtualServiceSpec:
		v.virtualService(s)
	case *VirtualNodeSpec:
		v.virtualNode(s)
	case *VirtualRouterSpec:
		v.virtualRouter(s)
	case *RouteSpec:
		v.route(s)
	case *VirtualGatewaySpec:
		v.virtualGateway(s)
	case *GatewayRouteSpec:
		v.gatewayRoute(s)
	}
	return v.errs
}

// internalErrorMsg starts the problem Validate reports if it panics.
const internalErrorMsg = "internal error in meshd's spec validation"

// CheckRegex checks a route or gateway route regex the way Envoy's RE2
// engine will see it: 1–255 characters, and valid RE2 syntax (Go's
// regexp/syntax with Perl flags has RE2's semantics). Lookarounds and
// back-references, which RE2 lacks, get an error explaining the rewrite.
func CheckRegex(re string) error {
	if n := utf8.RuneCountInString(re); n < 1 || n > 255 {
		return fmt.Errorf("must be between 1 and 255 characters long, got %d", n)
	}
	if _, err := syntax.Parse(re, syntax.Perl); err != nil {
		if what, hint := unsupportedRE2(re); what != "" {
			return fmt.Errorf("%s: RE2, the regex engine of App Mesh's Envoy, does not support lookarounds "+
				"or back-references; %s (spec §1.9)", what, hint)
		}
		var se *syntax.Error
		if errors.As(err, &se) {
			return fmt.Errorf("is not a valid RE2 regex: %s: `%s`", se.Code, se.Expr)
		}
		return fmt.Errorf("is not a valid RE2 regex: %v", err)
	}
	// regexp.Compile parses again and compiles the program; it accepts
	// whatever syntax.Parse accepts, but say so in code rather than rely on it.
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("is not a valid RE2 regex: %v", err)
	}
	return nil
}

// Rewrites of what RE2 does not support, from spec §1.9.
const (
	hintSplitRoutes   = "or split the match into two routes by priority, the more specific regex at the lower priority number"
	hintLookahead     = "rewrite a positive lookahead (?=x) as a plain group (x)"
	hintNegLookahead  = "rewrite a negative lookahead before a character class, p(?![0-9])s, as p[^0-9]?s, " + hintSplitRoutes
	hintLookbehind    = "match the preceding text explicitly, " + hintSplitRoutes
	hintBackReference = "replace the back-reference with the literal text of the group it refers to"
)

// unsupportedRE2 names the first lookaround or back-reference in re
// outside character classes, with the rewrite to suggest, or returns "".
func unsupportedRE2(re string) (what, hint string) {
	inClass := false
	for i := 0; i < len(re); i++ {
		switch c := re[i]; {
		case c == '\\':
			if !inClass && i+1 < len(re) && re[i+1] >= '1' && re[i+1] <= '9' {
				return fmt.Sprintf("back-reference `\\%c` at byte %d", re[i+1], i), hintBackReference
			}
			i++ // skip the escaped character
		case inClass:
			if c == ']' {
				inClass = false
			}
		case c == '[':
			inClass = true
			// A ']' right after '[' or '[^' is a literal.
			if strings.HasPrefix(re[i+1:], "^") {
				i++
			}
			if strings.HasPrefix(re[i+1:], "]") {
				i++
			}
		case c == '(':
			for _, la := range []struct{ token, hint string }{
				{"(?=", hintLookahead}, {"(?!", hintNegLookahead}, {"(?<=", hintLookbehind}, {"(?<!", hintLookbehind},
			} {
				if strings.HasPrefix(re[i:], la.token) {
					return fmt.Sprintf("lookaround `%s` at byte %d", la.token, i), la.hint
				}
			}
		}
	}
	return "", ""
}

// Enumerations of the API.
var (
	listenerProtocols        = []string{"http", "http2", "grpc", "tcp"}
	gatewayListenerProtocols = []string{"http", "http2", "grpc"}
	ipPreferences            = []string{"IPv6_PREFERRED", "IPv4_PREFERRED", "IPv4_ONLY", "IPv6_ONLY"}
	tlsModes                 = []string{"STRICT", "PERMISSIVE", "DISABLED"}
	durationUnits            = []string{"s", "ms"}
)

// validator accumulates problems. Methods take the path of the value they
// check.
type validator struct {
	errs []*SpecError
}

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, &SpecError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// join is the path of a member of the object at path.
func join(path, member string) string {
	if path == "" {
		return member
	}
	return path + "." + member
}

// index is the path of a list item.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// required reports a missing required value and returns set.
func (v *validator) required(path string, set bool) bool {
	if !set {
		v.add(path, "is required")
	}
	return set
}

// between checks an optional number.
func (v *validator) between(path string, n *int64, lo, hi int64) bool {
	if n != nil && (*n < lo || *n > hi) {
		v.add(path, "must be between %d and %d, got %d", lo, hi, *n)
		return false
	}
	return true
}

// reqBetween checks a required number.
func (v *validator) reqBetween(path string, n *int64, lo, hi int64) bool {
	return v.required(path, n != nil) && v.between(path, n, lo, hi)
}

// reqAtLeast checks a required number with only a lower bound.
func (v *validator) reqAtLeast(path string, n *int64, lo int64) {
	if v.required(path, n != nil) && *n < lo {
		v.add(path, "must be at least %d, got %d", lo, *n)
	}
}

// atLeast checks an optional number with only a lower bound.
func (v *validator) atLeast(path string, n *int64, lo int64) {
	if n != nil && *n < lo {
		v.add(path, "must be at least %d, got %d", lo, *n)
	}
}

func (v *validator) port(path string, n *int64) bool { return v.between(path, n, 1, 65535) }

// maxLen checks an optional string ("" is unset) of at most max characters.
func (v *validator) maxLen(path, s string, max int) {
	if n := utf8.RuneCountInString(s); n > max {
		v.add(path, "must be between 1 and %d characters long, got %d", max, n)
	}
}

// unprintable returns the byte offset and the first whitespace or control
// character in s, or -1.
func unprintable(s string) (int, rune) {
	i := strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) })
	if i < 0 {
		return -1, 0
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return i, r
}

// printable checks that s has no whitespace or control characters: it
// becomes an HTTP header name, a path or a host name in Envoy.
func (v *validator) printable(path, s string) {
	if i, r := unprintable(s); i >= 0 {
		v.add(path, "must not contain whitespace or control characters, got %q at byte %d", string(r), i)
	}
}

// CheckServiceName checks a virtual service name: any string the
// application can resolve (App Mesh sets no pattern), but it becomes an
// Envoy virtual host domain and a listener name, so whitespace and control
// characters are refused.
func CheckServiceName(n string) error {
	switch {
	case n == "":
		return fmt.Errorf("virtual service name is empty")
	case len(n) > 255:
		return fmt.Errorf("virtual service name is %d bytes long; at most 255 (a DNS name) is accepted", len(n))
	}
	if i, _ := unprintable(n); i >= 0 {
		return fmt.Errorf("virtual service name %q contains whitespace or a control character at byte %d", n, i)
	}
	return nil
}

// reqString checks a required string of at most max characters (0: any
// length).
func (v *validator) reqString(path, s string, max int) {
	if v.required(path, s != "") && max > 0 {
		v.maxLen(path, s, max)
	}
}

// maxItems checks the length of a list whose minimum is 1 (an empty list
// decodes as nil, so only the maximum can be broken).
func (v *validator) maxItems(path string, n, max int) {
	if n > max {
		if max == 1 {
			v.add(path, "must have exactly 1 item, got %d", n)
			return
		}
		v.add(path, "must have between 1 and %d items, got %d", max, n)
	}
}

// enum checks a string against its allowed values and reports whether it
// is one of them.
func (v *validator) enum(path, s string, required bool, allowed ...string) bool {
	if s == "" {
		if required {
			v.add(path, "is required (one of %s)", quoteList(allowed))
		}
		return false
	}
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	v.add(path, "must be one of %s, got %q", quoteList(allowed), s)
	return false
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// name checks an App Mesh resource name.
func (v *validator) name(path, n string) {
	if v.required(path, n != "") {
		if err := CheckName(n); err != nil {
			v.add(path, "%v", err)
		}
	}
}

// member is one member of a union, for exactlyOne.
type member struct {
	name string
	set  bool
}

// exactlyOne checks a union and returns the name of its member, or "" when
// not exactly one is set.
func (v *validator) exactlyOne(path string, members ...member) string {
	names := make([]string, len(members))
	var set []string
	for i, m := range members {
		names[i] = m.name
		if m.set {
			set = append(set, m.name)
		}
	}
	switch len(set) {
	case 1:
		return set[0]
	case 0:
		v.add(path, "set exactly one of %s, got none", quoteList(names))
	default:
		v.add(path, "set exactly one of %s, got %s", quoteList(names), quoteList(set))
	}
	return ""
}

// ----- Mesh and virtual service -------------------------------------------

func (v *validator) mesh(s *MeshSpec) {
	if f := s.EgressFilter; f != nil {
		v.enum("egressFilter.type", f.Type, true, "ALLOW_ALL", "DROP_ALL")
	}
	if sd := s.ServiceDiscovery; sd != nil {
		v.enum("serviceDiscovery.ipPreference", sd.IPPreference, false, ipPreferences...)
	}
}

func (v *validator) virtualService(s *VirtualServiceSpec) {
	p := s.Provider
	if p == nil {
		return // no provider yet: the service routes nothing
	}
	v.exactlyOne("provider", member{"virtualNode", p.VirtualNode != nil}, member{"virtualRouter", p.VirtualRouter != nil})
	if p.VirtualNode != nil {
		v.name("provider.virtualNode.virtualNodeName", p.VirtualNode.VirtualNodeName)
	}
	if p.VirtualRouter != nil {
		v.name("provider.virtualRouter.virtualRouterName", p.VirtualRouter.VirtualRouterName)
	}
}

// ----- Virtual node, virtual router, virtual gateway ----------------------

func (v *validator) virtualNode(s *VirtualNodeSpec) {
	if d := s.BackendDefaults; d != nil && d.ClientPolicy != nil {
		v.clientPolicy("backendDefaults.clientPolicy", d.ClientPolicy)
	}
	for i, b := range s.Backends {
		p := index("backends", i)
		if v.exactlyOne(p, member{"virtualService", b.VirtualService != nil}) == "" {
			continue
		}
		p = join(p, "virtualService")
		if cp := b.VirtualService.ClientPolicy; cp != nil {
			v.clientPolicy(join(p, "clientPolicy"), cp)
		}
		// Any string the application can resolve (spec §1.0); no length limit.
		v.reqString(join(p, "virtualServiceName"), b.VirtualService.VirtualServiceName, 0)
	}
	ports := listenerPorts{}
	for i, l := range s.Listeners {
		p := index("listeners", i)
		v.listener(p, listener{l.PortMapping, l.ConnectionPool, l.HealthCheck, l.OutlierDetection, l.Timeout, l.TLS}, listenerProtocols)
		v.uniquePort(p, l.PortMapping, ports)
	}
	if l := s.Logging; l != nil && l.AccessLog != nil {
		v.accessLog("logging.accessLog", l.AccessLog.File)
	}
	if s.ServiceDiscovery == nil {
		if len(s.Listeners) > 0 {
			v.add("serviceDiscovery", "is required when the virtual node has listeners")
		}
	} else {
		v.serviceDiscovery("serviceDiscovery", s.ServiceDiscovery)
	}
}

func (v *validator) virtualRouter(s *VirtualRouterSpec) {
	ports := listenerPorts{}
	for i, l := range s.Listeners {
		p := index("listeners", i)
		v.listener(p, listener{portMapping: l.PortMapping}, listenerProtocols)
		v.uniquePort(p, l.PortMapping, ports)
	}
}

func (v *validator) virtualGateway(s *VirtualGatewaySpec) {
	if d := s.BackendDefaults; d != nil && d.ClientPolicy != nil && d.ClientPolicy.TLS != nil {
		v.clientPolicyTLS("backendDefaults.clientPolicy.tls", GatewayClientPolicyTLS(d.ClientPolicy.TLS))
	}
	if len(s.Listeners) == 0 {
		v.add("listeners", "is required: a virtual gateway needs at least one listener")
	}
	ports := listenerPorts{}
	for i, l := range s.Listeners {
		p := index("listeners", i)
		pm := (*PortMapping)(l.PortMapping)
		var pool *VirtualNodeConnectionPool
		if c := l.ConnectionPool; c != nil {
			pool = &VirtualNodeConnectionPool{
				GRPC:  (*VirtualNodeGRPCConnectionPool)(c.GRPC),
				HTTP:  (*VirtualNodeHTTPConnectionPool)(c.HTTP),
				HTTP2: (*VirtualNodeHTTP2ConnectionPool)(c.HTTP2),
			}
		}
		v.listener(p, listener{pm, pool, (*HealthCheckPolicy)(l.HealthCheck), nil, nil, GatewayListenerTLS(l.TLS)}, gatewayListenerProtocols)
		v.uniquePort(p, pm, ports)
	}
	if l := s.Logging; l != nil && l.AccessLog != nil {
		v.accessLog("logging.accessLog", (*FileAccessLog)(l.AccessLog.File))
	}
}

// listener is the parts of a virtual node listener; virtual router and
// virtual gateway listeners are converted to it (a gateway's types have the
// same members under other names).
type listener struct {
	portMapping      *PortMapping
	connectionPool   *VirtualNodeConnectionPool
	healthCheck      *HealthCheckPolicy
	outlierDetection *OutlierDetection
	timeout          *ListenerTimeout
	tls              *ListenerTLS
}

// listener checks one listener; protocols are the listener protocols of
// its resource kind (and of its health check).
func (v *validator) listener(p string, l listener, protocols []string) {
	protocol := "" // set when valid
	var port *int64
	if pm := l.portMapping; v.required(join(p, "portMapping"), pm != nil) {
		if v.reqBetween(join(p, "portMapping.port"), pm.Port, 1, 65535) {
			port = pm.Port
		}
		if v.enum(join(p, "portMapping.protocol"), pm.Protocol, true, protocols...) {
			protocol = pm.Protocol
		}
	}
	if c := l.connectionPool; c != nil {
		v.connectionPool(join(p, "connectionPool"), c, protocol, protocols)
	}
	if h := l.healthCheck; h != nil {
		v.healthCheck(join(p, "healthCheck"), h, protocols, port)
	}
	if o := l.outlierDetection; o != nil {
		v.outlierDetection(join(p, "outlierDetection"), o)
	}
	if t := l.timeout; t != nil {
		v.listenerTimeout(join(p, "timeout"), t, protocol)
	}
	if t := l.tls; t != nil {
		v.listenerTLS(join(p, "tls"), t)
	}
}

// listenerPorts maps the ports seen so far to the listener path using them.
type listenerPorts map[int64]string

func (v *validator) uniquePort(p string, pm *PortMapping, seen listenerPorts) {
	if pm == nil || pm.Port == nil {
		return
	}
	if first, dup := seen[*pm.Port]; dup {
		v.add(join(p, "portMapping.port"), "port %d is already used by %s: listener ports must be unique", *pm.Port, first)
		return
	}
	seen[*pm.Port] = p
}

// protocolMember checks that the member set in a union keyed by protocol
// (connectionPool, timeout) is the listener's protocol.
func (v *validator) protocolMember(p, got, protocol string) {
	if got != "" && protocol != "" && got != protocol {
		v.add(p, "must set %q to match the listener's protocol (portMapping.protocol), got %q", protocol, got)
	}
}

func (v *validator) connectionPool(p string, c *VirtualNodeConnectionPool, protocol string, protocols []string) {
	set := map[string]bool{"grpc": c.GRPC != nil, "http": c.HTTP != nil, "http2": c.HTTP2 != nil, "tcp": c.TCP != nil}
	members := make([]member, len(protocols))
	for i, pr := range protocols {
		members[i] = member{pr, set[pr]}
	}
	v.protocolMember(p, v.exactlyOne(p, members...), protocol)
	if c.GRPC != nil {
		v.reqAtLeast(join(p, "grpc.maxRequests"), c.GRPC.MaxRequests, 1)
	}
	if c.HTTP != nil {
		v.reqAtLeast(join(p, "http.maxConnections"), c.HTTP.MaxConnections, 1)
		v.atLeast(join(p, "http.maxPendingRequests"), c.HTTP.MaxPendingRequests, 1)
	}
	if c.HTTP2 != nil {
		v.reqAtLeast(join(p, "http2.maxRequests"), c.HTTP2.MaxRequests, 1)
	}
	if c.TCP != nil {
		v.reqAtLeast(join(p, "tcp.maxConnections"), c.TCP.MaxConnections, 1)
	}
}

func (v *validator) healthCheck(p string, h *HealthCheckPolicy, protocols []string, listenerPort *int64) {
	v.reqBetween(join(p, "healthyThreshold"), h.HealthyThreshold, 2, 10)
	v.printable(join(p, "path"), h.Path)
	v.reqBetween(join(p, "intervalMillis"), h.IntervalMillis, 5000, 300000)
	if v.port(join(p, "port"), h.Port) && h.Port != nil && listenerPort != nil && *h.Port != *listenerPort {
		v.add(join(p, "port"), "must equal the listener's port %d (portMapping.port), got %d", *listenerPort, *h.Port)
	}
	v.enum(join(p, "protocol"), h.Protocol, true, protocols...)
	v.reqBetween(join(p, "timeoutMillis"), h.TimeoutMillis, 2000, 60000)
	v.reqBetween(join(p, "unhealthyThreshold"), h.UnhealthyThreshold, 2, 10)
}

func (v *validator) outlierDetection(p string, o *OutlierDetection) {
	v.duration(join(p, "baseEjectionDuration"), o.BaseEjectionDuration, true)
	v.duration(join(p, "interval"), o.Interval, true)
	v.reqBetween(join(p, "maxEjectionPercent"), o.MaxEjectionPercent, 0, 100)
	v.reqAtLeast(join(p, "maxServerErrors"), o.MaxServerErrors, 1)
}

// duration checks a Duration: unit s or ms and a value ≥ 0, both required.
func (v *validator) duration(p string, d *Duration, required bool) {
	if d == nil {
		if required {
			v.add(p, "is required")
		}
		return
	}
	v.enum(join(p, "unit"), d.Unit, true, durationUnits...)
	v.reqAtLeast(join(p, "value"), d.Value, 0)
}

func (v *validator) listenerTimeout(p string, t *ListenerTimeout, protocol string) {
	got := v.exactlyOne(p, member{"http", t.HTTP != nil}, member{"http2", t.HTTP2 != nil}, member{"grpc", t.GRPC != nil}, member{"tcp", t.TCP != nil})
	v.protocolMember(p, got, protocol)
	if t.GRPC != nil {
		v.grpcTimeout(join(p, "grpc"), t.GRPC)
	}
	if t.HTTP != nil {
		v.httpTimeout(join(p, "http"), t.HTTP)
	}
	if t.HTTP2 != nil {
		v.httpTimeout(join(p, "http2"), t.HTTP2)
	}
	if t.TCP != nil {
		v.duration(join(p, "tcp.idle"), t.TCP.Idle, false)
	}
}

func (v *validator) grpcTimeout(p string, t *GRPCTimeout) {
	v.duration(join(p, "idle"), t.Idle, false)
	v.duration(join(p, "perRequest"), t.PerRequest, false)
}

func (v *validator) httpTimeout(p string, t *HTTPTimeout) {
	v.duration(join(p, "idle"), t.Idle, false)
	v.duration(join(p, "perRequest"), t.PerRequest, false)
}

// ----- Service discovery --------------------------------------------------

func (v *validator) serviceDiscovery(p string, sd *ServiceDiscovery) {
	v.exactlyOne(p, member{"awsCloudMap", sd.AWSCloudMap != nil}, member{"dns", sd.DNS != nil})
	if c := sd.AWSCloudMap; c != nil {
		cp := join(p, "awsCloudMap")
		for i, a := range c.Attributes {
			ap := index(join(cp, "attributes"), i)
			v.reqString(join(ap, "key"), a.Key, 255)
			if a.Key != "" && !cloudMapAttributeKey(a.Key) {
				v.add(join(ap, "key"), "must be printable ASCII without spaces (^[a-zA-Z0-9!-~]+$), got %q", a.Key)
			}
			v.reqString(join(ap, "value"), a.Value, 1024)
		}
		v.enum(join(cp, "ipPreference"), c.IPPreference, false, ipPreferences...)
		v.reqString(join(cp, "namespaceName"), c.NamespaceName, 1024)
		v.reqString(join(cp, "serviceName"), c.ServiceName, 1024)
	}
	if d := sd.DNS; d != nil {
		dp := join(p, "dns")
		v.reqString(join(dp, "hostname"), d.Hostname, 0)
		v.enum(join(dp, "ipPreference"), d.IPPreference, false, ipPreferences...)
		v.enum(join(dp, "responseType"), d.ResponseType, false, "LOADBALANCER", "ENDPOINTS")
	}
}

// cloudMapAttributeKey matches ^[a-zA-Z0-9!-~]+$: '!' to '~' is every
// printable ASCII character but space, letters and digits included.
func cloudMapAttributeKey(k string) bool {
	for i := 0; i < len(k); i++ {
		if k[i] < '!' || k[i] > '~' {
			return false
		}
	}
	return k != ""
}

// ----- Access logs ----------------------------------------------------------

// accessLog checks logging.accessLog, a union whose only member is file.
func (v *validator) accessLog(p string, f *FileAccessLog) {
	if v.exactlyOne(p, member{"file", f != nil}) == "" {
		return
	}
	fp := join(p, "file")
	if fm := f.Format; fm != nil {
		v.logFormat(join(fp, "format"), fm)
	}
	v.reqString(join(fp, "path"), f.Path, 255)
}

func (v *validator) logFormat(p string, f *LoggingFormat) {
	v.exactlyOne(p, member{"json", len(f.JSON) > 0}, member{"text", f.Text != ""})
	for i, kv := range f.JSON {
		ip := index(join(p, "json"), i)
		v.reqString(join(ip, "key"), kv.Key, 100)
		v.reqString(join(ip, "value"), kv.Value, 100)
		v.formatOperators(join(ip, "value"), kv.Value)
	}
	if f.Text != "" {
		v.maxLen(join(p, "text"), f.Text, 1000)
		v.formatOperators(join(p, "text"), f.Text)
	}
}

func (v *validator) formatOperators(p, s string) {
	if err := checkLogFormat(s); err != nil {
		v.add(p, "%v", err)
	}
}

// checkLogFormat checks the %COMMAND% operators of an Envoy access-log
// format string (text, or a JSON format value): %% is a literal percent
// sign, and every other % starts an operator NAME, NAME(args) or
// NAME(args):N closed by %, NAME being upper-case letters, digits and
// underscores. Operator names are not checked against a list: Envoy adds
// new ones over time.
func checkLogFormat(s string) error {
	isName := func(c byte) bool { return c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' }
	for i := 0; i < len(s); {
		if s[i] != '%' {
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			i += 2
			continue
		}
		start := i
		j := i + 1
		for j < len(s) && isName(s[j]) {
			j++
		}
		if j == start+1 {
			return fmt.Errorf("%% at byte %d does not start an operator such as %%START_TIME%% (write %%%% for a literal percent sign)", start)
		}
		name := s[start+1 : j]
		if j < len(s) && s[j] == '(' {
			end := strings.IndexByte(s[j:], ')')
			if end < 0 {
				return fmt.Errorf("operator %%%s at byte %d: '(' is not closed by ')'", name, start)
			}
			j += end + 1
		}
		if j < len(s) && s[j] == ':' {
			k := j + 1
			for k < len(s) && s[k] >= '0' && s[k] <= '9' {
				k++
			}
			if k == j+1 {
				return fmt.Errorf("operator %%%s at byte %d: ':' must be followed by a maximum length (digits)", name, start)
			}
			j = k
		}
		if j >= len(s) || s[j] != '%' {
			return fmt.Errorf("operator %%%s at byte %d is not closed by %% (write %%%% for a literal percent sign)", name, start)
		}
		i = j + 1
	}
	return nil
}
