package translate

import (
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshd/meshd/internal/appmesh"
)

// App Mesh's defaults.
const (
	defaultPerRequest = 15 * time.Second
	defaultIdle       = 300 * time.Second
	defaultMaxRetries = 2
)

// virtualHost is the virtual host of one virtual service on one port.
func (b *builder) virtualHost(s service, sp servicePort, domains []string) *routev3.VirtualHost {
	vh := &routev3.VirtualHost{Name: s.vs.Name, Domains: domains}
	for _, r := range sp.routes {
		vh.Routes = append(vh.Routes, b.route(s, sp, r))
	}
	return vh
}

// route translates one route of a virtual service.
func (b *builder) route(s service, sp servicePort, r route) *routev3.Route {
	er := &routev3.Route{Name: r.name, Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}}
	if r.name == "" {
		er.Name = "vn_" + r.targets[0].up.vn.Name
	}
	act := &routev3.RouteAction{}
	var timeout *appmesh.HTTPTimeout
	var grpcTimeout *appmesh.GRPCTimeout
	kind := sp.Protocol
	switch spec := r.spec; {
	case spec == nil:
		if r.timeout != nil {
			timeout, grpcTimeout = r.timeout.HTTP, r.timeout.GRPC
			if r.timeout.HTTP2 != nil {
				timeout = r.timeout.HTTP2
			}
		}
		act.RetryPolicy = b.defaultRetry(kind)
	case spec.HTTPRoute != nil || spec.HTTP2Route != nil:
		hr := spec.HTTPRoute
		if hr == nil {
			hr = spec.HTTP2Route
		}
		er.Match = httpMatch(hr.Match)
		timeout = hr.Timeout
		act.RetryPolicy = b.httpRetry(hr.RetryPolicy, kind)
	case spec.GRPCRoute != nil:
		er.Match = grpcMatch(spec.GRPCRoute.Match)
		grpcTimeout = spec.GRPCRoute.Timeout
		act.RetryPolicy = b.grpcRetry(spec.GRPCRoute.RetryPolicy)
	}
	perRequest, idle := durationOr(nil, defaultPerRequest), durationOr(nil, defaultIdle)
	if timeout != nil {
		perRequest, idle = durationOr(timeout.PerRequest, defaultPerRequest), durationOr(timeout.Idle, defaultIdle)
	}
	if grpcTimeout != nil {
		perRequest, idle = durationOr(grpcTimeout.PerRequest, defaultPerRequest), durationOr(grpcTimeout.Idle, defaultIdle)
	}
	if b.flavor == GRPC {
		// gRPC reads max_stream_duration; 0 means no deadline there too.
		act.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: perRequest}
	} else {
		act.Timeout = perRequest
		act.IdleTimeout = idle
	}
	wc := &routev3.WeightedCluster{}
	for _, t := range r.targets {
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: t.up.name, Weight: wrapperspb.UInt32(t.weight)})
	}
	act.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	er.Action = &routev3.Route_Route{Route: act}
	er.Metadata = metadata("Mesh", b.m.Name, "TargetVirtualService", s.vs.Name, "Route", r.name)
	return er
}

// The default timeouts, shared (never modified).
var (
	defaultPerRequestDuration = durationpb.New(defaultPerRequest)
	defaultIdleDuration       = durationpb.New(defaultIdle)
)

func durationOr(d *appmesh.Duration, def time.Duration) *durationpb.Duration {
	if d == nil || d.Value == nil {
		switch def {
		case defaultPerRequest:
			return defaultPerRequestDuration
		case defaultIdle:
			return defaultIdleDuration
		}
		return durationpb.New(def)
	}
	return toDuration(d)
}

// maxSeconds is the largest duration Envoy accepts (10,000 years).
const maxSeconds = 315576000000

// toDuration converts an App Mesh duration without going through
// time.Duration, which overflows at 292 years; values are capped at
// Envoy's maximum.
func toDuration(d *appmesh.Duration) *durationpb.Duration {
	if d == nil || d.Value == nil {
		return &durationpb.Duration{}
	}
	v := *d.Value
	if d.Unit == "ms" {
		if v/1000 >= maxSeconds {
			return &durationpb.Duration{Seconds: maxSeconds}
		}
		return &durationpb.Duration{Seconds: v / 1000, Nanos: int32(v%1000) * 1e6}
	}
	return &durationpb.Duration{Seconds: min(v, maxSeconds)}
}

func httpMatch(m *appmesh.HTTPRouteMatch) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{}
	if m == nil {
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
		return rm
	}
	setPath(rm, m.Prefix, m.Path)
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, headerMatcher(h.Name, h.Invert, h.Match))
	}
	if m.Method != "" {
		rm.Headers = append(rm.Headers, exactHeader(":method", m.Method))
	}
	if m.Scheme != "" {
		rm.Headers = append(rm.Headers, exactHeader(":scheme", m.Scheme))
	}
	for _, q := range m.QueryParameters {
		rm.QueryParameters = append(rm.QueryParameters, queryMatcher(q))
	}
	return rm
}

func setPath(rm *routev3.RouteMatch, prefix *string, path *appmesh.HTTPPathMatch) {
	switch {
	case prefix != nil:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: *prefix}
	case path != nil && path.Exact != "":
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: path.Exact}
	case path != nil && path.Regex != "":
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: path.Regex}}
	default:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
	}
}

func queryMatcher(q appmesh.HTTPQueryParameter) *routev3.QueryParameterMatcher {
	qm := &routev3.QueryParameterMatcher{Name: q.Name}
	if q.Match != nil && q.Match.Exact != nil {
		qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
			MatchPattern: &matcherv3.StringMatcher_Exact{Exact: *q.Match.Exact}}}
	} else {
		qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
	}
	return qm
}

func exactHeader(name, value string) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
		StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}}}
}

// headerMatcher covers HeaderMatchMethod, GRPCRouteMetadataMatchMethod and
// GRPCMetadataMatchMethod, which share their shape.
type matchMethod struct {
	Exact, Prefix, Suffix, Regex string
	Range                        *appmesh.MatchRange
}

func headerMatcher(name string, invert *bool, m *appmesh.HeaderMatchMethod) *routev3.HeaderMatcher {
	var mm matchMethod
	if m != nil {
		mm = matchMethod{m.Exact, m.Prefix, m.Suffix, m.Regex, m.Range}
	}
	return headerMatcherOf(name, invert, mm)
}

func headerMatcherOf(name string, invert *bool, m matchMethod) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert != nil && *invert}
	sm := &matcherv3.StringMatcher{}
	switch {
	case m.Exact != "":
		sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: m.Exact}
	case m.Prefix != "":
		sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}
	case m.Suffix != "":
		sm.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: m.Suffix}
	case m.Regex != "":
		sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}
	}
	switch {
	case sm.MatchPattern != nil:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
	case m.Range != nil && m.Range.Start != nil && m.Range.End != nil:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_RangeMatch{RangeMatch: &typev3.Int64Range{Start: *m.Range.Start, End: *m.Range.End}}
	default:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

func grpcMatch(m *appmesh.GRPCRouteMatch) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm
	}
	switch {
	case m.ServiceName != "" && m.MethodName != "":
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: "/" + m.ServiceName + "/" + m.MethodName}
	case m.ServiceName != "":
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/" + m.ServiceName + "/"}
	}
	for _, md := range m.Metadata {
		var mm matchMethod
		if md.Match != nil {
			mm = matchMethod{md.Match.Exact, md.Match.Prefix, md.Match.Suffix, md.Match.Regex, md.Match.Range}
		}
		rm.Headers = append(rm.Headers, headerMatcherOf(md.Name, md.Invert, mm))
	}
	return rm
}

// Retry policies. App Mesh's events map to Envoy's retry_on conditions:
// server-error is 5xx, gateway-error is gateway-error, client-error is HTTP
// 409, stream-error is refused-stream, and TCP's connection-error is
// connect-failure. Both server-error and gateway-error include reset.

func (b *builder) httpRetry(p *appmesh.HTTPRetryPolicy, kind string) *routev3.RetryPolicy {
	if p == nil {
		return b.defaultRetry(kind)
	}
	return b.retry(p.HTTPRetryEvents, nil, p.TCPRetryEvents, p.MaxRetries, p.PerRetryTimeout)
}

func (b *builder) grpcRetry(p *appmesh.GRPCRetryPolicy) *routev3.RetryPolicy {
	if p == nil {
		return b.defaultRetry("grpc")
	}
	return b.retry(p.HTTPRetryEvents, p.GRPCRetryEvents, p.TCPRetryEvents, p.MaxRetries, p.PerRetryTimeout)
}

func (b *builder) retry(httpEvents, grpcEvents, tcpEvents []string, maxRetries *int64, perTry *appmesh.Duration) *routev3.RetryPolicy {
	on := make([]string, 0, 8)
	var codes []uint32
	add := func(c string) {
		if !slices.Contains(on, c) {
			on = append(on, c)
		}
	}
	if b.flavor == GRPC {
		// gRPC clients understand only gRPC status conditions.
		for _, e := range grpcEvents {
			add(e)
		}
		if len(on) == 0 || maxRetries == nil || *maxRetries < 1 {
			return nil
		}
		return &routev3.RetryPolicy{RetryOn: strings.Join(on, ","), NumRetries: wrapperspb.UInt32(uint32(min(*maxRetries, 1<<31)))}
	}
	for _, e := range httpEvents {
		switch e {
		case "server-error":
			add("5xx")
			add("reset")
		case "gateway-error":
			add("gateway-error")
			add("reset")
		case "client-error":
			add("retriable-status-codes")
			codes = append(codes, 409)
		case "stream-error":
			add("refused-stream")
		}
	}
	for _, e := range tcpEvents {
		if e == "connection-error" {
			add("connect-failure")
		}
	}
	for _, e := range grpcEvents {
		add(e)
	}
	rp := &routev3.RetryPolicy{RetryOn: strings.Join(on, ","), RetriableStatusCodes: codes}
	if maxRetries != nil {
		rp.NumRetries = wrapperspb.UInt32(uint32(min(*maxRetries, 1<<31)))
	}
	if perTry != nil {
		rp.PerTryTimeout = toDuration(perTry)
	}
	rp.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: previousHostsAny}}}
	rp.HostSelectionRetryMaxAttempts = 5
	return rp
}

// defaultRetry is App Mesh's default retry policy: two retries on 503,
// connect failure, refused stream and reset, and gRPC UNAVAILABLE.
func (b *builder) defaultRetry(kind string) *routev3.RetryPolicy {
	if b.t.opt.NoDefaultRetryPolicy || kind == "tcp" {
		return nil
	}
	if b.flavor == GRPC {
		return &routev3.RetryPolicy{RetryOn: "unavailable", NumRetries: wrapperspb.UInt32(defaultMaxRetries)}
	}
	on := "connect-failure,refused-stream,reset,retriable-status-codes"
	if kind == "grpc" {
		on += ",unavailable"
	}
	return &routev3.RetryPolicy{RetryOn: on, RetriableStatusCodes: []uint32{503}, NumRetries: wrapperspb.UInt32(defaultMaxRetries)}
}
