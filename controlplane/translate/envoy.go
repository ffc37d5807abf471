package translate

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	origdstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	tlsinspv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	prevhostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	httpoptsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshd/meshd/internal/appmesh"
)

// Building blocks shared by sidecars, gateways and proxyless clients.

func mustAny(m proto.Message) *anypb.Any {
	// Deterministic, so versions (hashes of the encoding) are stable.
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		panic(fmt.Sprintf("translate: pack %T: %v", m, err)) // only for linked, valid types
	}
	return a
}

// Typed configs without fields, packed once and shared (never modified).
var (
	previousHostsAny = mustAny(&prevhostsv3.PreviousHostsPredicate{})
	routerAny        = mustAny(&routerv3.Router{})
	originalDstAny   = mustAny(&origdstv3.OriginalDst{})
	tlsInspectorAny  = mustAny(&tlsinspv3.TlsInspector{})
)

// Constant messages shared by many resources (never modified).
var (
	oneSecond              = durationpb.New(time.Second)
	defaultCircuitBreakers = newCircuitBreakers(nil, nil, nil)
)

// metadata is filter metadata under MetadataKey from key, value pairs;
// empty values are left out.
func metadata(kv ...string) *corev3.Metadata {
	n := 0
	for i := 1; i < len(kv); i += 2 {
		if kv[i] != "" {
			n++
		}
	}
	// One allocation for all the values, one for their kinds.
	vals := make([]structpb.Value, n)
	kinds := make([]structpb.Value_StringValue, n)
	fields := make(map[string]*structpb.Value, n)
	j := 0
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		kinds[j].StringValue = kv[i+1]
		vals[j].Kind = &kinds[j]
		fields[kv[i]] = &vals[j]
		j++
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{MetadataKey: {Fields: fields}}}
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3, ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func socketAddress(host string, port int64) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}}}
}

const maxThreshold = 2147483647

// circuitBreakers are App Mesh's defaults (effectively off), overridden by a
// listener's connection pool. The defaults are one shared message.
func circuitBreakers(maxConnections, maxPending, maxRequests *int64) *clusterv3.CircuitBreakers {
	if maxConnections == nil && maxPending == nil && maxRequests == nil {
		return defaultCircuitBreakers
	}
	return newCircuitBreakers(maxConnections, maxPending, maxRequests)
}

func newCircuitBreakers(maxConnections, maxPending, maxRequests *int64) *clusterv3.CircuitBreakers {
	v := func(p *int64) *wrapperspb.UInt32Value {
		if p == nil {
			return wrapperspb.UInt32(maxThreshold)
		}
		return wrapperspb.UInt32(uint32(min(*p, maxThreshold)))
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		Priority: corev3.RoutingPriority_DEFAULT, MaxConnections: v(maxConnections), MaxPendingRequests: v(maxPending),
		MaxRequests: v(maxRequests), MaxRetries: wrapperspb.UInt32(maxThreshold),
	}}}
}

// http2Options makes a cluster speak HTTP/2 upstream (http2 and grpc).
func http2Options(c *clusterv3.Cluster, protocol string) {
	if protocol != "http2" && protocol != "grpc" {
		return
	}
	opts := &httpoptsv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpoptsv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpoptsv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpoptsv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(opts)}
}

func staticCluster(name, host string, port int64) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       oneSecond,
		LoadAssignment:       loadAssignment(name, host, port),
	}
}

func loadAssignment(name, host string, port int64) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}}}},
	}}}
}

// originalDstCluster forwards to the connection's original destination
// (ALLOW_ALL passthrough and AWS APIs).
func originalDstCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
		ConnectTimeout:       oneSecond,
		CircuitBreakers:      circuitBreakers(nil, nil, nil),
	}
}

// hcm is an HTTP connection manager with App Mesh's settings: RDS over
// ADS, path normalization, websockets on HTTP/1, tracing on.
func hcm(statPrefix, rds, protocol string, logs []*accesslogv3.AccessLog, idle *durationpb.Duration) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: ads(), RouteConfigName: rds}},
		HttpFilters:                  []*hcmv3.HttpFilter{routerFilter()},
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_KEEP_UNCHANGED,
		Tracing:                      &hcmv3.HttpConnectionManager_Tracing{},
		AccessLog:                    logs,
	}
	if idle != nil {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: idle}
	}
	if protocol == "http" {
		h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
	}
	return h
}

func routerFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: routerAny}}
}

func hcmFilter(h *hcmv3.HttpConnectionManager) *listenerv3.Filter {
	return &listenerv3.Filter{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(h)}}
}

func tcpProxyFilter(statPrefix string, clusters []*tcpv3.TcpProxy_WeightedCluster_ClusterWeight, logs []*accesslogv3.AccessLog, idle *durationpb.Duration) *listenerv3.Filter {
	tp := &tcpv3.TcpProxy{StatPrefix: statPrefix, AccessLog: logs, IdleTimeout: idle}
	if len(clusters) == 1 {
		tp.ClusterSpecifier = &tcpv3.TcpProxy_Cluster{Cluster: clusters[0].Name}
	} else {
		tp.ClusterSpecifier = &tcpv3.TcpProxy_WeightedClusters{WeightedClusters: &tcpv3.TcpProxy_WeightedCluster{Clusters: clusters}}
	}
	return &listenerv3.Filter{Name: "envoy.filters.network.tcp_proxy", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(tp)}}
}

func listenerFilter(name string, typed *anypb.Any) *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{Name: name, ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: typed}}
}

func originalDst() *listenerv3.ListenerFilter {
	return listenerFilter("envoy.filters.listener.original_dst", originalDstAny)
}

func tlsInspector() *listenerv3.ListenerFilter {
	return listenerFilter("envoy.filters.listener.tls_inspector", tlsInspectorAny)
}

// accessLogs translates an App Mesh file access log.
func accessLogs(l *appmesh.FileAccessLog) []*accesslogv3.AccessLog {
	if l == nil || l.Path == "" {
		return nil
	}
	fal := &filev3.FileAccessLog{Path: l.Path}
	if f := l.Format; f != nil {
		switch {
		case f.Text != "":
			fal.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_TextFormatSource{TextFormatSource: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: f.Text}}}}}
		case len(f.JSON) > 0:
			fields := map[string]*structpb.Value{}
			for _, kv := range f.JSON {
				fields[kv.Key] = structpb.NewStringValue(kv.Value)
			}
			fal.AccessLogFormat = &filev3.FileAccessLog_LogFormat{LogFormat: &corev3.SubstitutionFormatString{
				Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: fields}}}}
		}
	}
	return []*accesslogv3.AccessLog{{Name: "envoy.access_loggers.file", ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(fal)}}}
}

func vnAccessLog(l *appmesh.Logging) *appmesh.FileAccessLog {
	if l == nil || l.AccessLog == nil {
		return nil
	}
	return l.AccessLog.File
}

func vgAccessLog(l *appmesh.VirtualGatewayLogging) *appmesh.FileAccessLog {
	if l == nil || l.AccessLog == nil || l.AccessLog.File == nil {
		return nil
	}
	return &appmesh.FileAccessLog{Path: l.AccessLog.File.Path, Format: l.AccessLog.File.Format}
}

func portMatch(port int64) *listenerv3.FilterChainMatch {
	return &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(port))}
}
