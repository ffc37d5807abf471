// Package tracing renders the Envoy bootstrap a sidecar starts with from the
// environment variables the App Mesh Envoy image read (tracing for X-Ray,
// Jaeger and Datadog, stats tags, DogStatsD sinks, the SDS cluster, admin),
// with meshd's control plane as the xDS server. The output matches what the
// App Mesh image rendered for the same input, except where
// docs/configuration.md says otherwise, and is validated against Envoy's
// protos before it is handed out.
package tracing

import (
	"fmt"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	filelogv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names of what the bootstrap defines; the control plane and the metrics
// extension refer to them.
const (
	XDSCluster     = "meshd_xds"
	SDSCluster     = "static_cluster_sds_unix_socket"
	JaegerCluster  = "jaeger"
	DatadogCluster = "datadog_agent"
	AdminSocket    = "/tmp/envoy_admin.sock"
	// Secret names meshd's SDS server answers (and SPIRE's, and Istio's).
	SecretDefault = "default"
	SecretRootCA  = "ROOTCA"
	// XRayOrigin is the origin App Mesh gave Envoy's X-Ray segments.
	XRayOrigin = "AWS::AppMesh::Proxy"
)

// Render builds the bootstrap described by c, merges the custom files it
// names (read with readFile), and validates the result, typed configs
// included. Problems with the input are reported as *InputError.
func Render(c *Config, readFile func(string) ([]byte, error)) (*bootstrapv3.Bootstrap, []string, error) {
	b := &bootstrapv3.Bootstrap{
		Node:             node(c),
		Admin:            admin(c),
		DynamicResources: dynamicResources(c),
		ClusterManager:   &bootstrapv3.ClusterManager{OutlierDetection: &bootstrapv3.ClusterManager_OutlierDetection{EventLogPath: c.OutlierLog}},
		LayeredRuntime: &bootstrapv3.LayeredRuntime{Layers: []*bootstrapv3.RuntimeLayer{
			{Name: "static_layer_0", LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: runtimeLayer(c)}},
			{Name: "admin_layer", LayerSpecifier: &bootstrapv3.RuntimeLayer_AdminLayer_{AdminLayer: &bootstrapv3.RuntimeLayer_AdminLayer{}}},
		}},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{},
	}
	b.StaticResources.Clusters = append(b.StaticResources.Clusters, xdsCluster(c))
	var problems []error
	if err := appendTracing(b, c, readFile); err != nil {
		problems = append(problems, err)
	}
	if c.SDSSocket != "" {
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, sdsCluster(c.SDSSocket))
	}
	if c.StatsFile == "" {
		b.StatsConfig = statsConfig(c)
	}
	if c.FlushInterval > 0 {
		b.StatsFlushInterval = durationpb.New(c.FlushInterval)
	}
	if c.DogStatsD {
		b.StatsSinks = append(b.StatsSinks, dogStatsdSink(c))
	}
	if len(problems) > 0 {
		return nil, nil, &InputError{Problems: problems}
	}
	warnings, err := mergeFiles(b, c, readFile)
	if err != nil {
		return nil, nil, err
	}
	if err := Validate(b); err != nil {
		return nil, nil, &InputError{Problems: []error{fmt.Errorf("the bootstrap is invalid: %w", err)}}
	}
	return b, append(append([]string(nil), c.Warnings...), warnings...), nil
}

func mustAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true})
	if err != nil {
		panic(fmt.Sprintf("tracing: marshal %T: %v", m, err)) // only fails for nil or unregistered types
	}
	return a
}

func runtimeLayer(c *Config) *structpb.Struct {
	m := map[string]any{
		"envoy.features.enable_all_deprecated_features":                      true,
		"envoy.reloadable_features.http_set_tracing_decision_in_request_id":  c.TracingDecide,
		"envoy.reloadable_features.no_extension_lookup_by_name":              c.NoExtByName,
		"envoy.reloadable_features.use_http_client_to_fetch_aws_credentials": c.HTTPAWSCreds,
		"re2.max_program_size.error_level":                                   1000,
	}
	if c.MaxReqPerIO > 0 {
		m["http.max_requests_per_io_cycle"] = c.MaxReqPerIO
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err) // only fails on unsupported Go types
	}
	return s
}

func node(c *Config) *corev3.Node {
	md := map[string]*structpb.Value{
		// A copy of the static runtime layer, as App Mesh sent its control
		// plane.
		"aws.appmesh.static_runtime": structpb.NewStructValue(runtimeLayer(c)),
	}
	if c.MetricExt {
		md["aws.appmesh.metric_filter"] = structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"level": structpb.NewStringValue("1")}})
	}
	return &corev3.Node{Id: c.NodeID, Cluster: c.NodeCluster, Metadata: &structpb.Struct{Fields: md}}
}

func admin(c *Config) *bootstrapv3.Admin {
	a := &bootstrapv3.Admin{AccessLog: []*accesslogv3.AccessLog{{
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&filelogv3.FileAccessLog{Path: c.AdminLogPath})},
	}}}
	switch {
	case c.AdminUDS:
		a.Address = pipe(AdminSocket, 0o600)
	case c.AdminIPv6:
		a.Address = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "::", Ipv4Compat: true, PortSpecifier: portValue(c.AdminPort)}}}
	default:
		a.Address = socketAddress("0.0.0.0", c.AdminPort, corev3.SocketAddress_TCP)
	}
	return a
}

func pipe(path string, mode uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path, Mode: mode}}}
}

func portValue(p uint32) *corev3.SocketAddress_PortValue {
	return &corev3.SocketAddress_PortValue{PortValue: p}
}

func socketAddress(host string, port uint32, proto corev3.SocketAddress_Protocol) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Protocol: proto, Address: host, PortSpecifier: portValue(port)}}}
}

func adsSource(timeout time.Duration) *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		InitialFetchTimeout:   durationpb.New(timeout),
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func grpcSource(cluster string) *corev3.ApiConfigSource {
	return &corev3.ApiConfigSource{
		ApiType:             corev3.ApiConfigSource_GRPC,
		TransportApiVersion: corev3.ApiVersion_V3,
		GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster},
		}}},
	}
}

func dynamicResources(c *Config) *bootstrapv3.Bootstrap_DynamicResources {
	return &bootstrapv3.Bootstrap_DynamicResources{
		AdsConfig: grpcSource(XDSCluster),
		LdsConfig: adsSource(c.InitialFetch),
		CdsConfig: adsSource(c.InitialFetch),
	}
}

// staticCluster is the shape App Mesh gave its tracer and SDS clusters.
func staticCluster(name string, typ clusterv3.Cluster_DiscoveryType, addr *corev3.Address) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: addr}},
			}}}},
		},
	}
}

// http2Options makes a cluster speak HTTP/2 (gRPC), with App Mesh's xDS
// keepalive (10 s interval, 20 s timeout) when keepalive is set.
func http2Options(keepalive bool) map[string]*anypb.Any {
	h2 := &corev3.Http2ProtocolOptions{}
	if keepalive {
		h2.ConnectionKeepalive = &corev3.KeepaliveSettings{Interval: durationpb.New(10 * time.Second), Timeout: durationpb.New(20 * time.Second)}
	}
	return map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: h2},
		}},
	})}
}

func xdsCluster(c *Config) *clusterv3.Cluster {
	var cl *clusterv3.Cluster
	if c.XDS.Socket != "" {
		cl = staticCluster(XDSCluster, clusterv3.Cluster_STATIC, pipe(c.XDS.Socket, 0))
	} else {
		cl = staticCluster(XDSCluster, clusterv3.Cluster_STRICT_DNS, socketAddress(c.XDS.Host, c.XDS.Port, corev3.SocketAddress_TCP))
	}
	cl.TypedExtensionProtocolOptions = http2Options(true)
	if c.XDS.TLS {
		cl.TransportSocket = xdsTLS(c)
	}
	return cl
}

func sdsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: grpcSource(SDSCluster)},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// xdsTLS is mTLS to the control plane with the sidecar's own SVID and trust
// bundle, both from the SDS socket.
func xdsTLS(c *Config) *corev3.TransportSocket {
	validation := &tlsv3.CertificateValidationContext{}
	if c.XDS.ServerID != "" {
		validation.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: c.XDS.ServerID}},
		}}
	}
	ctx := &tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: SecretDefault, SdsConfig: sdsSource()}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         validation,
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: SecretRootCA, SdsConfig: sdsSource()},
		}},
		AlpnProtocols: []string{"h2"},
	}}
	if c.XDS.Host != "" {
		ctx.Sni = c.XDS.Host
	}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

// sdsCluster is App Mesh's static_cluster_sds_unix_socket. App Mesh set the
// deprecated Cluster.http2_protocol_options; meshd says the same with
// typed_extension_protocol_options.
func sdsCluster(path string) *clusterv3.Cluster {
	cl := staticCluster(SDSCluster, clusterv3.Cluster_STATIC, pipe(path, 0))
	cl.TypedExtensionProtocolOptions = http2Options(false)
	return cl
}

func appendTracing(b *bootstrapv3.Bootstrap, c *Config, readFile func(string) ([]byte, error)) error {
	mesh, name := c.Resource.Mesh, c.Resource.Name
	var http *tracev3.Tracing_Http
	switch c.Tracer {
	case NoTracer:
		return nil
	case XRay:
		x := &tracev3.XRayConfig{
			DaemonEndpoint: &corev3.SocketAddress{Protocol: corev3.SocketAddress_UDP, Address: c.XRayAddress, PortSpecifier: portValue(c.XRayPort)},
			SegmentName:    c.XRaySegment,
			SegmentFields: &tracev3.XRayConfig_SegmentFields{
				Origin: XRayOrigin,
				// virtual_node_name also for gateways: what App Mesh sent
				// and what X-Ray queries filter on.
				Aws: &structpb.Struct{Fields: map[string]*structpb.Value{"app_mesh": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
					"mesh_name":         structpb.NewStringValue(mesh),
					"virtual_node_name": structpb.NewStringValue(name),
				}})}},
			},
		}
		if x.SegmentName == "" {
			x.SegmentName = mesh + "/" + name
		}
		switch {
		case c.XRayManifest != "":
			data, err := readFile(c.XRayManifest)
			if err != nil {
				return fmt.Errorf("XRAY_SAMPLING_RULE_MANIFEST=%q: cannot read it: %w", c.XRayManifest, err)
			}
			if err := ValidateSamplingManifest(data); err != nil {
				return fmt.Errorf("XRAY_SAMPLING_RULE_MANIFEST=%q: %w", c.XRayManifest, err)
			}
			x.SamplingRuleManifest = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: c.XRayManifest}}
		case c.XRayRate >= 0 && c.XRayRate != defaultSamplingRate:
			// Inline rather than a file in /tmp as App Mesh did: the
			// bootstrap is often rendered in another container than Envoy's.
			x.SamplingRuleManifest = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: rateManifest(c.XRayRate)}}
		}
		http = &tracev3.Tracing_Http{Name: "envoy.tracers.xray", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(x)}}
	case Datadog:
		svc := c.DatadogSvc
		if svc == "" {
			svc = "envoy-" + mesh + "/" + name
		}
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, staticCluster(DatadogCluster, clusterv3.Cluster_STRICT_DNS, socketAddress(c.DatadogHost, c.DatadogPort, corev3.SocketAddress_TCP)))
		http = &tracev3.Tracing_Http{Name: "envoy.tracers.datadog", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.DatadogConfig{CollectorCluster: DatadogCluster, ServiceName: svc})}}
	case Jaeger:
		version := tracev3.ZipkinConfig_HTTP_PROTO
		if c.JaegerJSON {
			version = tracev3.ZipkinConfig_HTTP_JSON
		}
		b.StaticResources.Clusters = append(b.StaticResources.Clusters, staticCluster(JaegerCluster, clusterv3.Cluster_STRICT_DNS, socketAddress(c.JaegerHost, c.JaegerPort, corev3.SocketAddress_TCP)))
		http = &tracev3.Tracing_Http{Name: "envoy.tracers.zipkin", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.ZipkinConfig{
			CollectorCluster:         JaegerCluster,
			CollectorEndpoint:        "/api/v2/spans",
			CollectorEndpointVersion: version,
			SharedSpanContext:        wrapperspb.Bool(false),
		})}}
	}
	b.Tracing = &tracev3.Tracing{Http: http}
	return nil
}

// Stats tag regexes, verbatim from the App Mesh image. Envoy compiles them
// itself; some are not RE2 and must not be "fixed".
const (
	TagTargetVirtualNode    = `^appmesh(?:\..+?\..+?)*(\.TargetVirtualNode\.(.+?))(?:\..+?\..+?)*\.(?:.+)$`
	TagTargetVirtualService = `^appmesh(?:\..+?\..+?)*(\.TargetVirtualService\.([^MVT]+))(?:\..+?\..+?)*\.(?:.+)$`
	TagListenerProtocol     = `.*?\.ingress\.((\w+?)\.)[0-9]+?\.(.+?)$`
	TagListenerPort         = `.*?\.ingress\.\w+?\.(([0-9]+?)\.)(.+?)$`
	TagRDSRouteConfig       = `.*?\.ingress\.\w+?\.[0-9]+?\.rds\.((.*?)\.)(.+?)$`
)

func fixedTag(name, value string) *metricsv3.TagSpecifier {
	return &metricsv3.TagSpecifier{TagName: name, TagValue: &metricsv3.TagSpecifier_FixedValue{FixedValue: value}}
}

func regexTag(name, re string) *metricsv3.TagSpecifier {
	return &metricsv3.TagSpecifier{TagName: name, TagValue: &metricsv3.TagSpecifier_Regex{Regex: re}}
}

func statsConfig(c *Config) *metricsv3.StatsConfig {
	r := c.Resource
	var tags []*metricsv3.TagSpecifier
	if c.StatsTags {
		tags = append(tags, fixedTag("appmesh.mesh", r.Mesh), fixedTag("appmesh."+r.Kind.SnakeCase(), r.Name))
	}
	if c.MetricExt {
		tags = append(tags,
			regexTag("TargetVirtualNode", TagTargetVirtualNode),
			regexTag("TargetVirtualService", TagTargetVirtualService),
			fixedTag("Mesh", r.Mesh),
			fixedTag(r.Kind.UpperCamelCase(), r.Name))
	}
	tags = append(tags,
		regexTag("appmesh.listener_protocol", TagListenerProtocol),
		regexTag("appmesh.listener_port", TagListenerPort),
		regexTag("envoy_rds_route_config", TagRDSRouteConfig))
	return &metricsv3.StatsConfig{StatsTags: tags}
}

func dogStatsdSink(c *Config) *metricsv3.StatsSink {
	addr := socketAddress(c.StatsdAddress, c.StatsdPort, corev3.SocketAddress_UDP)
	if c.StatsdSocket != "" {
		addr = pipe(c.StatsdSocket, 0)
	}
	return &metricsv3.StatsSink{
		Name:       "envoy.stat_sinks.dog_statsd",
		ConfigType: &metricsv3.StatsSink_TypedConfig{TypedConfig: mustAny(&metricsv3.DogStatsdSink{DogStatsdSpecifier: &metricsv3.DogStatsdSink_Address{Address: addr}})},
	}
}
