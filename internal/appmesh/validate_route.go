package appmesh

import "strings"

// Route and gateway route rules (spec §1.5, §1.7); see validate.go.

var (
	httpMethods     = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
	httpRetryEvents = []string{"server-error", "gateway-error", "client-error", "stream-error"}
	grpcRetryEvents = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}
	tcpRetryEvents  = []string{"connection-error"}
	enabledDisabled = []string{"ENABLED", "DISABLED"}
)

// ----- Route ------------------------------------------------------------------

func (v *validator) route(s *RouteSpec) {
	v.exactlyOne("", member{"httpRoute", s.HTTPRoute != nil}, member{"http2Route", s.HTTP2Route != nil},
		member{"grpcRoute", s.GRPCRoute != nil}, member{"tcpRoute", s.TCPRoute != nil})
	if r := s.GRPCRoute; r != nil {
		v.grpcRoute("grpcRoute", r)
	}
	if r := s.HTTP2Route; r != nil {
		v.httpRoute("http2Route", r, true)
	}
	if r := s.HTTPRoute; r != nil {
		v.httpRoute("httpRoute", r, false)
	}
	v.between("priority", s.Priority, 0, 1000)
	if r := s.TCPRoute; r != nil {
		v.tcpRoute("tcpRoute", r)
	}
}

func (v *validator) grpcRoute(p string, r *GRPCRoute) {
	if a := r.Action; v.required(join(p, "action"), a != nil) {
		v.weightedTargets(join(p, "action.weightedTargets"), a.WeightedTargets)
	}
	if m := r.Match; v.required(join(p, "match"), m != nil) {
		mp := join(p, "match")
		v.maxItems(join(mp, "metadata"), len(m.Metadata), 10)
		for i, md := range m.Metadata {
			v.header(index(join(mp, "metadata"), i), md.Name, (*HeaderMatchMethod)(md.Match))
		}
		if m.MethodName != "" {
			v.maxLen(join(mp, "methodName"), m.MethodName, 50)
			if m.ServiceName == "" {
				v.add(join(mp, "methodName"), "requires serviceName: a method name alone does not identify a gRPC method")
			}
		}
		v.port(join(mp, "port"), m.Port)
	}
	if rp := r.RetryPolicy; rp != nil {
		v.retryPolicy(join(p, "retryPolicy"), true, rp.GRPCRetryEvents, rp.HTTPRetryEvents, rp.MaxRetries, rp.PerRetryTimeout, rp.TCPRetryEvents)
	}
	if t := r.Timeout; t != nil {
		v.grpcTimeout(join(p, "timeout"), t)
	}
}

// httpRoute checks an httpRoute or (http2 set) an http2Route.
func (v *validator) httpRoute(p string, r *HTTPRoute, http2 bool) {
	if a := r.Action; v.required(join(p, "action"), a != nil) {
		v.weightedTargets(join(p, "action.weightedTargets"), a.WeightedTargets)
	}
	if m := r.Match; v.required(join(p, "match"), m != nil) {
		v.httpRouteMatch(join(p, "match"), m, http2)
	}
	if rp := r.RetryPolicy; rp != nil {
		v.retryPolicy(join(p, "retryPolicy"), false, nil, rp.HTTPRetryEvents, rp.MaxRetries, rp.PerRetryTimeout, rp.TCPRetryEvents)
	}
	if t := r.Timeout; t != nil {
		v.httpTimeout(join(p, "timeout"), t)
	}
}

func (v *validator) httpRouteMatch(p string, m *HTTPRouteMatch, http2 bool) {
	v.exactlyOne(p, member{"prefix", m.Prefix != nil}, member{"path", m.Path != nil})
	v.maxItems(join(p, "headers"), len(m.Headers), 10)
	for i, h := range m.Headers {
		v.header(index(join(p, "headers"), i), h.Name, h.Match)
	}
	v.enum(join(p, "method"), m.Method, false, httpMethods...)
	if m.Path != nil {
		v.pathMatch(join(p, "path"), m.Path)
	}
	v.port(join(p, "port"), m.Port)
	if m.Prefix != nil {
		v.prefix(join(p, "prefix"), *m.Prefix)
	}
	v.queryParameters(join(p, "queryParameters"), m.QueryParameters)
	if m.Scheme != "" {
		if http2 {
			v.enum(join(p, "scheme"), m.Scheme, false, "http", "https")
		} else {
			v.add(join(p, "scheme"), "is allowed only in an http2Route, not in an httpRoute")
		}
	}
}

func (v *validator) tcpRoute(p string, r *TCPRoute) {
	if a := r.Action; v.required(join(p, "action"), a != nil) {
		v.weightedTargets(join(p, "action.weightedTargets"), a.WeightedTargets)
	}
	if m := r.Match; m != nil {
		v.port(join(p, "match.port"), m.Port)
	}
	if t := r.Timeout; t != nil {
		v.duration(join(p, "timeout.idle"), t.Idle, false)
	}
}

// weightedTargets checks a route action's targets. The weights are
// relative; all zero would route nothing, and the API limits their total
// to 100 (spec §1.5; the console's "must add up to 100" is stricter than
// the API, and every route of AWS's examples totals 1–100).
func (v *validator) weightedTargets(p string, ts []WeightedTarget) {
	if !v.required(p, len(ts) > 0) {
		return
	}
	v.maxItems(p, len(ts), 10)
	var sum int64
	weighed := true // every weight set and in range
	for i, t := range ts {
		ip := index(p, i)
		v.port(join(ip, "port"), t.Port)
		v.name(join(ip, "virtualNode"), t.VirtualNode)
		if v.reqBetween(join(ip, "weight"), t.Weight, 0, 100) {
			sum += *t.Weight
		} else {
			weighed = false
		}
	}
	switch {
	case !weighed:
	case sum == 0:
		v.add(p, "weights add up to 0, so the route sends traffic nowhere: give at least one target a weight of 1 or more")
	case sum > 100:
		v.add(p, "weights add up to %d, but the App Mesh API allows a total of at most 100 (weights are relative: 3 and 1 split traffic 75/25)", sum)
	}
}

// retryPolicy checks a route's retry policy; grpc is set for a grpcRoute,
// the only one with grpcRetryEvents.
func (v *validator) retryPolicy(p string, grpc bool, grpcEvents, httpEvents []string, maxRetries *int64, perRetryTimeout *Duration, tcpEvents []string) {
	if len(grpcEvents)+len(httpEvents)+len(tcpEvents) == 0 {
		kinds := []string{"httpRetryEvents", "tcpRetryEvents"}
		if grpc {
			kinds = []string{"grpcRetryEvents", "httpRetryEvents", "tcpRetryEvents"}
		}
		v.add(p, "set at least one of %s: a retry policy needs at least one retry event", quoteList(kinds))
	}
	v.events(join(p, "grpcRetryEvents"), grpcEvents, 5, grpcRetryEvents)
	v.events(join(p, "httpRetryEvents"), httpEvents, 25, httpRetryEvents)
	v.reqAtLeast(join(p, "maxRetries"), maxRetries, 0)
	v.duration(join(p, "perRetryTimeout"), perRetryTimeout, true)
	v.events(join(p, "tcpRetryEvents"), tcpEvents, 1, tcpRetryEvents)
}

func (v *validator) events(p string, events []string, max int, allowed []string) {
	v.maxItems(p, len(events), max)
	for i, e := range events {
		v.enum(index(p, i), e, true, allowed...)
	}
}

// ----- Matches shared by routes and gateway routes ----------------------------

// header checks a header or metadata match; the three match method types
// of the API have the same members as HeaderMatchMethod.
func (v *validator) header(p, name string, m *HeaderMatchMethod) {
	if m != nil {
		v.matchMethod(join(p, "match"), m)
	}
	v.reqString(join(p, "name"), name, 50)
	v.printable(join(p, "name"), name)
}

func (v *validator) matchMethod(p string, m *HeaderMatchMethod) {
	v.exactlyOne(p, member{"exact", m.Exact != ""}, member{"prefix", m.Prefix != ""}, member{"suffix", m.Suffix != ""},
		member{"regex", m.Regex != ""}, member{"range", m.Range != nil})
	v.maxLen(join(p, "exact"), m.Exact, 255)
	v.maxLen(join(p, "prefix"), m.Prefix, 255)
	if r := m.Range; r != nil {
		rp := join(p, "range")
		hasEnd := v.required(join(rp, "end"), r.End != nil)
		hasStart := v.required(join(rp, "start"), r.Start != nil)
		if hasEnd && hasStart && *r.Start >= *r.End {
			v.add(rp, "start must be less than end (end is exclusive), got start %d and end %d", *r.Start, *r.End)
		}
	}
	v.regex(join(p, "regex"), m.Regex)
	v.maxLen(join(p, "suffix"), m.Suffix, 255)
}

// regex checks an optional regex ("" is unset).
func (v *validator) regex(p, re string) {
	if re == "" {
		return
	}
	if err := CheckRegex(re); err != nil {
		v.add(p, "%v", err)
	}
}

func (v *validator) pathMatch(p string, m *HTTPPathMatch) {
	v.exactlyOne(p, member{"exact", m.Exact != ""}, member{"regex", m.Regex != ""})
	v.maxLen(join(p, "exact"), m.Exact, 255)
	v.regex(join(p, "regex"), m.Regex)
}

// prefix checks a route or gateway route prefix match and reports whether
// it starts with "/".
func (v *validator) prefix(p, prefix string) bool {
	if !strings.HasPrefix(prefix, "/") {
		v.add(p, "must start with \"/\", got %q", prefix)
		return false
	}
	return true
}

func (v *validator) queryParameters(p string, qs []HTTPQueryParameter) {
	v.maxItems(p, len(qs), 10)
	for i, q := range qs {
		// match.exact may be "": it matches a parameter with an empty value.
		// Envoy limits a query parameter matcher's name to 1024 bytes.
		v.reqString(join(index(p, i), "name"), q.Name, 1024)
		v.printable(join(index(p, i), "name"), q.Name)
	}
}

// ----- Gateway route ------------------------------------------------------------

func (v *validator) gatewayRoute(s *GatewayRouteSpec) {
	v.exactlyOne("", member{"httpRoute", s.HTTPRoute != nil}, member{"http2Route", s.HTTP2Route != nil},
		member{"grpcRoute", s.GRPCRoute != nil})
	if r := s.GRPCRoute; r != nil {
		v.grpcGatewayRoute("grpcRoute", r)
	}
	if r := s.HTTP2Route; r != nil {
		v.httpGatewayRoute("http2Route", r)
	}
	if r := s.HTTPRoute; r != nil {
		v.httpGatewayRoute("httpRoute", r)
	}
	v.between("priority", s.Priority, 0, 1000)
}

func (v *validator) grpcGatewayRoute(p string, r *GRPCGatewayRoute) {
	if a := r.Action; v.required(join(p, "action"), a != nil) {
		ap := join(p, "action")
		if rw := a.Rewrite; rw != nil && rw.Hostname != nil {
			v.enum(join(ap, "rewrite.hostname.defaultTargetHostname"), rw.Hostname.DefaultTargetHostname, false, enabledDisabled...)
		}
		v.gatewayTarget(join(ap, "target"), a.Target)
	}
	if m := r.Match; v.required(join(p, "match"), m != nil) {
		mp := join(p, "match")
		if m.Hostname != nil {
			v.hostnameMatch(join(mp, "hostname"), m.Hostname)
		}
		v.maxItems(join(mp, "metadata"), len(m.Metadata), 10)
		for i, md := range m.Metadata {
			v.header(index(join(mp, "metadata"), i), md.Name, (*HeaderMatchMethod)(md.Match))
		}
		v.port(join(mp, "port"), m.Port)
		if s := m.ServiceName; strings.HasPrefix(s, "aws.app-mesh") || strings.HasPrefix(s, "aws.appmesh") {
			v.add(join(mp, "serviceName"), "must not start with \"aws.app-mesh\" or \"aws.appmesh\", which App Mesh reserves, got %q", s)
		}
	}
}

func (v *validator) httpGatewayRoute(p string, r *HTTPGatewayRoute) {
	if a := r.Action; v.required(join(p, "action"), a != nil) {
		ap := join(p, "action")
		if rw := a.Rewrite; rw != nil {
			v.httpGatewayRewrite(join(ap, "rewrite"), rw, r.Match)
		}
		v.gatewayTarget(join(ap, "target"), a.Target)
	}
	if m := r.Match; v.required(join(p, "match"), m != nil) {
		v.httpGatewayRouteMatch(join(p, "match"), m)
	}
}

func (v *validator) httpGatewayRouteMatch(p string, m *HTTPGatewayRouteMatch) {
	// The spec (§1.7) requires no match member; prefix and path are
	// alternative ways to match the path.
	if m.Prefix != nil && m.Path != nil {
		v.add(p, "set at most one of \"prefix\", \"path\", got both")
	}
	v.maxItems(join(p, "headers"), len(m.Headers), 10)
	for i, h := range m.Headers {
		v.header(index(join(p, "headers"), i), h.Name, h.Match)
	}
	if m.Hostname != nil {
		v.hostnameMatch(join(p, "hostname"), m.Hostname)
	}
	v.enum(join(p, "method"), m.Method, false, httpMethods...)
	if m.Path != nil {
		v.pathMatch(join(p, "path"), m.Path)
	}
	v.port(join(p, "port"), m.Port)
	if m.Prefix != nil && v.prefix(join(p, "prefix"), *m.Prefix) {
		if pr := *m.Prefix; strings.HasPrefix(pr, "/aws-appmesh") || strings.HasPrefix(pr, "/aws-app-mesh") {
			v.add(join(p, "prefix"), "must not start with \"/aws-appmesh\" or \"/aws-app-mesh\", which App Mesh reserves, got %q", pr)
		}
	}
	v.queryParameters(join(p, "queryParameters"), m.QueryParameters)
}

// httpGatewayRewrite checks a rewrite against the match it rewrites (spec
// §1.7 "Allowed rewrites by match type"): prefix rewrites need a prefix
// match, path rewrites an exact or regex path match. m is nil when the
// match is missing (already reported).
func (v *validator) httpGatewayRewrite(p string, rw *HTTPGatewayRouteRewrite, m *HTTPGatewayRouteMatch) {
	if h := rw.Hostname; h != nil {
		v.enum(join(p, "hostname.defaultTargetHostname"), h.DefaultTargetHostname, false, enabledDisabled...)
	}
	if pr := rw.Path; pr != nil {
		pp := join(p, "path")
		if m != nil && m.Path == nil {
			v.add(pp, "is allowed only with a path match (match.path.exact or match.path.regex); rewrite a prefix match with rewrite.prefix")
		}
		v.maxLen(join(pp, "exact"), pr.Exact, 255)
	}
	if pr := rw.Prefix; pr != nil {
		pp := join(p, "prefix")
		if m != nil && m.Prefix == nil {
			v.add(pp, "is allowed only with a prefix match (match.prefix); rewrite a path match with rewrite.path")
		}
		v.exactlyOne(pp, member{"defaultPrefix", pr.DefaultPrefix != ""}, member{"value", pr.Value != ""})
		v.enum(join(pp, "defaultPrefix"), pr.DefaultPrefix, false, enabledDisabled...)
		v.maxLen(join(pp, "value"), pr.Value, 255)
	}
}

func (v *validator) gatewayTarget(p string, t *GatewayRouteTarget) {
	if !v.required(p, t != nil) {
		return
	}
	v.port(join(p, "port"), t.Port)
	if vs := t.VirtualService; v.required(join(p, "virtualService"), vs != nil) {
		v.reqString(join(p, "virtualService.virtualServiceName"), vs.VirtualServiceName, 255)
	}
}

func (v *validator) hostnameMatch(p string, h *GatewayRouteHostnameMatch) {
	v.exactlyOne(p, member{"exact", h.Exact != ""}, member{"suffix", h.Suffix != ""})
	v.maxLen(join(p, "exact"), h.Exact, 253)
	v.maxLen(join(p, "suffix"), h.Suffix, 253)
}
