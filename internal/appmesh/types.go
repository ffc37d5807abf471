package appmesh

// This file is meshd's model of the App Mesh API's resource specs (API
// version 2019-01-25): one Go type per structure of the API model reachable
// from the seven *Spec shapes, with every member. JSON names are the API's
// member names exactly, as `aws appmesh create-* --cli-input-json` and
// `describe-*` spell them; decode with DecodeSpec, which matches them
// case-sensitively. Go names are the API's shape and member names with Go
// initialisms (HttpRoute → HTTPRoute, Dns → DNS, certificateAuthorityArns →
// CertificateAuthorityARNs).
//
// Conventions, as in the Kubernetes controller's CRD types and AWS SDK v1:
//   - A union is a struct of optional pointers, exactly one of which should
//     be set. Which one is set is for validation to check, not decoding.
//   - Numbers are int64 and, outside lists, pointers, so unset differs from
//     0 (ports, priority, weights, thresholds, maxRetries, Duration.Value).
//     Booleans are *bool (enforce, invert).
//   - Strings are plain strings where "" is not a valid value (names, enums,
//     values of at least one character). Three optional strings are
//     *string: the HTTP route and gateway route match prefix, so validation
//     can tell "" (an invalid prefix) from unset, and a query parameter's
//     exact match, where "" matches an empty value.
//   - Every field is omitempty, and DecodeSpec decodes an empty list as nil,
//     so decoding, marshalling and decoding again gives an equal value.
//   - "Required." in a field comment is the API model's required trait; the
//     types do not enforce it, nor ranges and enums.

// ResourceKind is one of the seven kinds of App Mesh resource. (Kind is the
// narrower kind of endpoint an Envoy represents.)
type ResourceKind string

// The App Mesh resource kinds, spelled as the API's type names.
const (
	KindMesh           ResourceKind = "Mesh"
	KindVirtualService ResourceKind = "VirtualService"
	KindVirtualNode    ResourceKind = "VirtualNode"
	KindVirtualRouter  ResourceKind = "VirtualRouter"
	KindRoute          ResourceKind = "Route"
	KindVirtualGateway ResourceKind = "VirtualGateway"
	KindGatewayRoute   ResourceKind = "GatewayRoute"
)

// ResourceKinds lists every resource kind, parents before children.
func ResourceKinds() []ResourceKind {
	return []ResourceKind{KindMesh, KindVirtualService, KindVirtualNode, KindVirtualRouter, KindRoute, KindVirtualGateway, KindGatewayRoute}
}

// NewSpec returns a new, empty spec of kind k (*MeshSpec, *VirtualNodeSpec,
// …), or nil for an unknown kind.
func NewSpec(k ResourceKind) any {
	switch k {
	case KindMesh:
		return new(MeshSpec)
	case KindVirtualService:
		return new(VirtualServiceSpec)
	case KindVirtualNode:
		return new(VirtualNodeSpec)
	case KindVirtualRouter:
		return new(VirtualRouterSpec)
	case KindRoute:
		return new(RouteSpec)
	case KindVirtualGateway:
		return new(VirtualGatewaySpec)
	case KindGatewayRoute:
		return new(GatewayRouteSpec)
	}
	return nil
}

// MeshSpec is the spec of a Mesh. It may be empty.
type MeshSpec struct {
	EgressFilter     *EgressFilter         `json:"egressFilter,omitempty"`
	ServiceDiscovery *MeshServiceDiscovery `json:"serviceDiscovery,omitempty"`
}

// EgressFilter says where the mesh's proxies may send traffic that does not go to a mesh resource.
type EgressFilter struct {
	// Required. One of ALLOW_ALL, DROP_ALL. DROP_ALL when no egress filter is given.
	Type string `json:"type,omitempty"`
}

// MeshServiceDiscovery holds the mesh-wide service discovery settings.
type MeshServiceDiscovery struct {
	// One of IPv6_PREFERRED, IPv4_PREFERRED, IPv4_ONLY, IPv6_ONLY. Unset is its own mode, not
	// IPv6_PREFERRED.
	IPPreference string `json:"ipPreference,omitempty"`
}

// VirtualServiceSpec is the spec of a VirtualService. Without a provider the service routes nothing
// yet.
type VirtualServiceSpec struct {
	Provider *VirtualServiceProvider `json:"provider,omitempty"`
}

// VirtualServiceProvider is what serves a virtual service: a virtual node directly or a virtual
// router.
// It is a union: exactly one member should be set.
type VirtualServiceProvider struct {
	VirtualNode   *VirtualNodeServiceProvider   `json:"virtualNode,omitempty"`
	VirtualRouter *VirtualRouterServiceProvider `json:"virtualRouter,omitempty"`
}

// VirtualNodeServiceProvider names the virtual node that provides a virtual service.
type VirtualNodeServiceProvider struct {
	// Required. 1–255 characters.
	VirtualNodeName string `json:"virtualNodeName,omitempty"`
}

// VirtualRouterServiceProvider names the virtual router that provides a virtual service.
type VirtualRouterServiceProvider struct {
	// Required. 1–255 characters.
	VirtualRouterName string `json:"virtualRouterName,omitempty"`
}

// VirtualNodeSpec is the spec of a VirtualNode.
type VirtualNodeSpec struct {
	BackendDefaults *BackendDefaults `json:"backendDefaults,omitempty"`
	Backends        []Backend        `json:"backends,omitempty"`
	// Several listeners are allowed (the API text still says one).
	Listeners []Listener `json:"listeners,omitempty"`
	Logging   *Logging   `json:"logging,omitempty"`
	// Required when there are listeners.
	ServiceDiscovery *ServiceDiscovery `json:"serviceDiscovery,omitempty"`
}

// BackendDefaults holds the defaults for all of a virtual node's backends.
type BackendDefaults struct {
	ClientPolicy *ClientPolicy `json:"clientPolicy,omitempty"`
}

// ClientPolicy is the policy a proxy applies to connections it originates to a backend.
type ClientPolicy struct {
	TLS *ClientPolicyTLS `json:"tls,omitempty"`
}

// ClientPolicyTLS is TLS origination toward backends.
type ClientPolicyTLS struct {
	Certificate *ClientTLSCertificate `json:"certificate,omitempty"`
	// Unset means true.
	Enforce *bool `json:"enforce,omitempty"`
	// Items 1–65535. Empty means every port.
	Ports []int64 `json:"ports,omitempty"`
	// Required.
	Validation *TLSValidationContext `json:"validation,omitempty"`
}

// ClientTLSCertificate is the client certificate a proxy presents when the server asks for one.
// It is a union: exactly one member should be set.
type ClientTLSCertificate struct {
	File *ListenerTLSFileCertificate `json:"file,omitempty"`
	SDS  *ListenerTLSSDSCertificate  `json:"sds,omitempty"`
}

// ListenerTLSFileCertificate is a certificate and key in files on the proxy's file system.
type ListenerTLSFileCertificate struct {
	// Required. 1–255 characters.
	CertificateChain string `json:"certificateChain,omitempty"`
	// Required. 1–255 characters.
	PrivateKey string `json:"privateKey,omitempty"`
}

// ListenerTLSSDSCertificate is a certificate fetched from the local SDS provider.
type ListenerTLSSDSCertificate struct {
	// Required.
	SecretName string `json:"secretName,omitempty"`
}

// TLSValidationContext says how a client-side proxy validates the server's certificate.
type TLSValidationContext struct {
	SubjectAlternativeNames *SubjectAlternativeNames `json:"subjectAlternativeNames,omitempty"`
	// Required.
	Trust *TLSValidationContextTrust `json:"trust,omitempty"`
}

// SubjectAlternativeNames restricts the peer certificate's subject alternative names.
type SubjectAlternativeNames struct {
	// Required.
	Match *SubjectAlternativeNameMatchers `json:"match,omitempty"`
}

// SubjectAlternativeNameMatchers lists the accepted subject alternative names.
type SubjectAlternativeNameMatchers struct {
	// Required. Items 1–254 characters.
	Exact []string `json:"exact,omitempty"`
}

// TLSValidationContextTrust is where the trusted certificate authorities come from.
// It is a union: exactly one member should be set.
type TLSValidationContextTrust struct {
	ACM  *TLSValidationContextACMTrust  `json:"acm,omitempty"`
	File *TLSValidationContextFileTrust `json:"file,omitempty"`
	SDS  *TLSValidationContextSDSTrust  `json:"sds,omitempty"`
}

// TLSValidationContextACMTrust trusts AWS Private CA certificate authorities.
type TLSValidationContextACMTrust struct {
	// Required. 1–3 items. AWS Private CA ARNs.
	CertificateAuthorityARNs []string `json:"certificateAuthorityArns,omitempty"`
}

// TLSValidationContextFileTrust trusts a certificate chain in a file.
type TLSValidationContextFileTrust struct {
	// Required. 1–255 characters.
	CertificateChain string `json:"certificateChain,omitempty"`
}

// TLSValidationContextSDSTrust trusts a bundle fetched from the local SDS provider.
type TLSValidationContextSDSTrust struct {
	// Required.
	SecretName string `json:"secretName,omitempty"`
}

// Backend is a virtual service a virtual node sends traffic to.
// It is a union: exactly one member should be set.
type Backend struct {
	VirtualService *VirtualServiceBackend `json:"virtualService,omitempty"`
}

// VirtualServiceBackend names a backend virtual service and its client policy.
type VirtualServiceBackend struct {
	ClientPolicy *ClientPolicy `json:"clientPolicy,omitempty"`
	// Required.
	VirtualServiceName string `json:"virtualServiceName,omitempty"`
}

// Listener is inbound traffic a virtual node expects.
type Listener struct {
	ConnectionPool   *VirtualNodeConnectionPool `json:"connectionPool,omitempty"`
	HealthCheck      *HealthCheckPolicy         `json:"healthCheck,omitempty"`
	OutlierDetection *OutlierDetection          `json:"outlierDetection,omitempty"`
	// Required.
	PortMapping *PortMapping     `json:"portMapping,omitempty"`
	Timeout     *ListenerTimeout `json:"timeout,omitempty"`
	TLS         *ListenerTLS     `json:"tls,omitempty"`
}

// VirtualNodeConnectionPool limits the connections from the proxy to the local application; its member
// must match the listener's protocol.
// It is a union: exactly one member should be set.
type VirtualNodeConnectionPool struct {
	GRPC  *VirtualNodeGRPCConnectionPool  `json:"grpc,omitempty"`
	HTTP  *VirtualNodeHTTPConnectionPool  `json:"http,omitempty"`
	HTTP2 *VirtualNodeHTTP2ConnectionPool `json:"http2,omitempty"`
	TCP   *VirtualNodeTCPConnectionPool   `json:"tcp,omitempty"`
}

// VirtualNodeGRPCConnectionPool is the connection pool of a grpc listener.
type VirtualNodeGRPCConnectionPool struct {
	// Required. ≥ 1.
	MaxRequests *int64 `json:"maxRequests,omitempty"`
}

// VirtualNodeHTTPConnectionPool is the connection pool of an http listener.
type VirtualNodeHTTPConnectionPool struct {
	// Required. ≥ 1.
	MaxConnections *int64 `json:"maxConnections,omitempty"`
	// ≥ 1. Unset means 2147483647.
	MaxPendingRequests *int64 `json:"maxPendingRequests,omitempty"`
}

// VirtualNodeHTTP2ConnectionPool is the connection pool of an http2 listener.
type VirtualNodeHTTP2ConnectionPool struct {
	// Required. ≥ 1.
	MaxRequests *int64 `json:"maxRequests,omitempty"`
}

// VirtualNodeTCPConnectionPool is the connection pool of a tcp listener.
type VirtualNodeTCPConnectionPool struct {
	// Required. ≥ 1.
	MaxConnections *int64 `json:"maxConnections,omitempty"`
}

// HealthCheckPolicy is an active health check of a listener, done by every client proxy.
type HealthCheckPolicy struct {
	// Required. 2–10.
	HealthyThreshold *int64 `json:"healthyThreshold,omitempty"`
	// Required. 5000–300000.
	IntervalMillis *int64 `json:"intervalMillis,omitempty"`
	// Used by http and http2 checks only.
	Path string `json:"path,omitempty"`
	// 1–65535. Unset means the listener's port.
	Port *int64 `json:"port,omitempty"`
	// Required. One of http, tcp, http2, grpc.
	Protocol string `json:"protocol,omitempty"`
	// Required. 2000–60000.
	TimeoutMillis *int64 `json:"timeoutMillis,omitempty"`
	// Required. 2–10.
	UnhealthyThreshold *int64 `json:"unhealthyThreshold,omitempty"`
}

// OutlierDetection is passive health checking in client proxies: hosts that return server errors are
// ejected for a while.
type OutlierDetection struct {
	// Required.
	BaseEjectionDuration *Duration `json:"baseEjectionDuration,omitempty"`
	// Required.
	Interval *Duration `json:"interval,omitempty"`
	// Required. 0–100.
	MaxEjectionPercent *int64 `json:"maxEjectionPercent,omitempty"`
	// Required. ≥ 1.
	MaxServerErrors *int64 `json:"maxServerErrors,omitempty"`
}

// Duration is a length of time: value units of unit. The model marks neither member required; a
// timeout of 0 is disabled.
type Duration struct {
	// One of s, ms.
	Unit string `json:"unit,omitempty"`
	// ≥ 0.
	Value *int64 `json:"value,omitempty"`
}

// PortMapping is a listener's port and protocol.
type PortMapping struct {
	// Required. 1–65535.
	Port *int64 `json:"port,omitempty"`
	// Required. One of http, tcp, http2, grpc.
	Protocol string `json:"protocol,omitempty"`
}

// ListenerTimeout holds a listener's timeouts; its member must match the listener's protocol.
// It is a union: exactly one member should be set.
type ListenerTimeout struct {
	GRPC  *GRPCTimeout `json:"grpc,omitempty"`
	HTTP  *HTTPTimeout `json:"http,omitempty"`
	HTTP2 *HTTPTimeout `json:"http2,omitempty"`
	TCP   *TCPTimeout  `json:"tcp,omitempty"`
}

// GRPCTimeout holds the timeouts of gRPC traffic.
type GRPCTimeout struct {
	// Unset means 300 s.
	Idle *Duration `json:"idle,omitempty"`
	// Unset means 15 s.
	PerRequest *Duration `json:"perRequest,omitempty"`
}

// HTTPTimeout holds the timeouts of HTTP and HTTP/2 traffic.
type HTTPTimeout struct {
	// Unset means 300 s.
	Idle *Duration `json:"idle,omitempty"`
	// Unset means 15 s.
	PerRequest *Duration `json:"perRequest,omitempty"`
}

// TCPTimeout holds the timeout of TCP traffic.
type TCPTimeout struct {
	// Unset means 300 s.
	Idle *Duration `json:"idle,omitempty"`
}

// ListenerTLS is TLS termination on a virtual node listener.
type ListenerTLS struct {
	// Required.
	Certificate *ListenerTLSCertificate `json:"certificate,omitempty"`
	// Required. One of STRICT, PERMISSIVE, DISABLED.
	Mode string `json:"mode,omitempty"`
	// Set for mutual TLS.
	Validation *ListenerTLSValidationContext `json:"validation,omitempty"`
}

// ListenerTLSCertificate is the certificate a listener presents.
// It is a union: exactly one member should be set.
type ListenerTLSCertificate struct {
	ACM  *ListenerTLSACMCertificate  `json:"acm,omitempty"`
	File *ListenerTLSFileCertificate `json:"file,omitempty"`
	SDS  *ListenerTLSSDSCertificate  `json:"sds,omitempty"`
}

// ListenerTLSACMCertificate is an AWS Certificate Manager certificate.
type ListenerTLSACMCertificate struct {
	// Required.
	CertificateARN string `json:"certificateArn,omitempty"`
}

// ListenerTLSValidationContext makes a listener require and validate client certificates (mutual TLS).
type ListenerTLSValidationContext struct {
	SubjectAlternativeNames *SubjectAlternativeNames `json:"subjectAlternativeNames,omitempty"`
	// Required.
	Trust *ListenerTLSValidationContextTrust `json:"trust,omitempty"`
}

// ListenerTLSValidationContextTrust is where a listener's trusted certificate authorities come from.
// It is a union: exactly one member should be set.
type ListenerTLSValidationContextTrust struct {
	File *TLSValidationContextFileTrust `json:"file,omitempty"`
	SDS  *TLSValidationContextSDSTrust  `json:"sds,omitempty"`
}

// Logging is a virtual node's logging.
type Logging struct {
	AccessLog *AccessLog `json:"accessLog,omitempty"`
}

// AccessLog is where a proxy writes access logs.
// It is a union: exactly one member should be set.
type AccessLog struct {
	File *FileAccessLog `json:"file,omitempty"`
}

// FileAccessLog is an access log written to a file.
type FileAccessLog struct {
	Format *LoggingFormat `json:"format,omitempty"`
	// Required. 1–255 characters.
	Path string `json:"path,omitempty"`
}

// LoggingFormat is the access log format.
// It is a union: exactly one member should be set.
type LoggingFormat struct {
	// Envoy's json_format.
	JSON []JSONFormatRef `json:"json,omitempty"`
	// 1–1000 characters. Envoy's text_format.
	Text string `json:"text,omitempty"`
}

// JSONFormatRef is one key of a JSON access log line.
type JSONFormatRef struct {
	// Required. 1–100 characters.
	Key string `json:"key,omitempty"`
	// Required. 1–100 characters.
	Value string `json:"value,omitempty"`
}

// ServiceDiscovery is how clients find a virtual node's endpoints.
// It is a union: exactly one member should be set.
type ServiceDiscovery struct {
	AWSCloudMap *AWSCloudMapServiceDiscovery `json:"awsCloudMap,omitempty"`
	DNS         *DNSServiceDiscovery         `json:"dns,omitempty"`
}

// AWSCloudMapServiceDiscovery finds endpoints as AWS Cloud Map service instances.
type AWSCloudMapServiceDiscovery struct {
	// Only instances with all of them are used.
	Attributes []AWSCloudMapInstanceAttribute `json:"attributes,omitempty"`
	// One of IPv6_PREFERRED, IPv4_PREFERRED, IPv4_ONLY, IPv6_ONLY. Overrides the mesh's preference.
	IPPreference string `json:"ipPreference,omitempty"`
	// Required. 1–1024 characters.
	NamespaceName string `json:"namespaceName,omitempty"`
	// Required. 1–1024 characters.
	ServiceName string `json:"serviceName,omitempty"`
}

// AWSCloudMapInstanceAttribute is a key/value pair an AWS Cloud Map instance must have to be used.
type AWSCloudMapInstanceAttribute struct {
	// Required. 1–255 characters.
	Key string `json:"key,omitempty"`
	// Required. 1–1024 characters.
	Value string `json:"value,omitempty"`
}

// DNSServiceDiscovery finds endpoints by resolving a hostname.
type DNSServiceDiscovery struct {
	// Required.
	Hostname string `json:"hostname,omitempty"`
	// One of IPv6_PREFERRED, IPv4_PREFERRED, IPv4_ONLY, IPv6_ONLY. Overrides the mesh's preference.
	IPPreference string `json:"ipPreference,omitempty"`
	// One of LOADBALANCER, ENDPOINTS. Unset means LOADBALANCER.
	ResponseType string `json:"responseType,omitempty"`
}

// VirtualRouterSpec is the spec of a VirtualRouter.
type VirtualRouterSpec struct {
	Listeners []VirtualRouterListener `json:"listeners,omitempty"`
}

// VirtualRouterListener is a port and protocol a virtual router accepts traffic on.
type VirtualRouterListener struct {
	// Required.
	PortMapping *PortMapping `json:"portMapping,omitempty"`
}

// RouteSpec is the spec of a Route. Exactly one of the route types is set.
type RouteSpec struct {
	GRPCRoute  *GRPCRoute `json:"grpcRoute,omitempty"`
	HTTP2Route *HTTPRoute `json:"http2Route,omitempty"`
	HTTPRoute  *HTTPRoute `json:"httpRoute,omitempty"`
	// 0–1000. 0 is matched first.
	Priority *int64    `json:"priority,omitempty"`
	TCPRoute *TCPRoute `json:"tcpRoute,omitempty"`
}

// GRPCRoute routes gRPC requests.
type GRPCRoute struct {
	// Required.
	Action *GRPCRouteAction `json:"action,omitempty"`
	// Required.
	Match       *GRPCRouteMatch  `json:"match,omitempty"`
	RetryPolicy *GRPCRetryPolicy `json:"retryPolicy,omitempty"`
	Timeout     *GRPCTimeout     `json:"timeout,omitempty"`
}

// GRPCRouteAction is where a gRPC route sends traffic.
type GRPCRouteAction struct {
	// Required. 1–10 items.
	WeightedTargets []WeightedTarget `json:"weightedTargets,omitempty"`
}

// WeightedTarget is a virtual node a route sends a share of its traffic to.
type WeightedTarget struct {
	// 1–65535. Required when the target virtual node has several listeners.
	Port *int64 `json:"port,omitempty"`
	// Required. 1–255 characters.
	VirtualNode string `json:"virtualNode,omitempty"`
	// Required. 0–100. Relative to the route's other targets.
	Weight *int64 `json:"weight,omitempty"`
}

// GRPCRouteMatch selects the gRPC requests a route applies to.
type GRPCRouteMatch struct {
	// 1–10 items.
	Metadata []GRPCRouteMetadata `json:"metadata,omitempty"`
	// 1–50 characters. Requires serviceName.
	MethodName string `json:"methodName,omitempty"`
	// 1–65535. Required when the virtual router has several listeners.
	Port        *int64 `json:"port,omitempty"`
	ServiceName string `json:"serviceName,omitempty"`
}

// GRPCRouteMetadata matches one gRPC metadata entry.
type GRPCRouteMetadata struct {
	// Unset means false.
	Invert *bool                         `json:"invert,omitempty"`
	Match  *GRPCRouteMetadataMatchMethod `json:"match,omitempty"`
	// Required. 1–50 characters.
	Name string `json:"name,omitempty"`
}

// GRPCRouteMetadataMatchMethod is how a route matches a metadata value.
// It is a union: exactly one member should be set.
type GRPCRouteMetadataMatchMethod struct {
	// 1–255 characters.
	Exact string `json:"exact,omitempty"`
	// 1–255 characters.
	Prefix string      `json:"prefix,omitempty"`
	Range  *MatchRange `json:"range,omitempty"`
	// 1–255 characters.
	Regex string `json:"regex,omitempty"`
	// 1–255 characters.
	Suffix string `json:"suffix,omitempty"`
}

// MatchRange is a range of numbers: start inclusive, end exclusive.
type MatchRange struct {
	// Required.
	End *int64 `json:"end,omitempty"`
	// Required.
	Start *int64 `json:"start,omitempty"`
}

// GRPCRetryPolicy is a gRPC route's retry policy.
type GRPCRetryPolicy struct {
	// 1–5 items. Items: cancelled, deadline-exceeded, internal, resource-exhausted, unavailable.
	GRPCRetryEvents []string `json:"grpcRetryEvents,omitempty"`
	// 1–25 items. Items 1–25 characters.
	HTTPRetryEvents []string `json:"httpRetryEvents,omitempty"`
	// Required. ≥ 0.
	MaxRetries *int64 `json:"maxRetries,omitempty"`
	// Required.
	PerRetryTimeout *Duration `json:"perRetryTimeout,omitempty"`
	// 1–1 items. Items: connection-error.
	TCPRetryEvents []string `json:"tcpRetryEvents,omitempty"`
}

// HTTPRoute routes HTTP or HTTP/2 requests (RouteSpec's httpRoute and http2Route).
type HTTPRoute struct {
	// Required.
	Action *HTTPRouteAction `json:"action,omitempty"`
	// Required.
	Match       *HTTPRouteMatch  `json:"match,omitempty"`
	RetryPolicy *HTTPRetryPolicy `json:"retryPolicy,omitempty"`
	Timeout     *HTTPTimeout     `json:"timeout,omitempty"`
}

// HTTPRouteAction is where an HTTP route sends traffic.
type HTTPRouteAction struct {
	// Required. 1–10 items.
	WeightedTargets []WeightedTarget `json:"weightedTargets,omitempty"`
}

// HTTPRouteMatch selects the HTTP requests a route applies to.
type HTTPRouteMatch struct {
	// 1–10 items.
	Headers []HTTPRouteHeader `json:"headers,omitempty"`
	// One of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH.
	Method string         `json:"method,omitempty"`
	Path   *HTTPPathMatch `json:"path,omitempty"`
	// 1–65535. Required when the virtual router has several listeners.
	Port *int64 `json:"port,omitempty"`
	// Starts with /; "/" matches every path.
	Prefix *string `json:"prefix,omitempty"`
	// 1–10 items.
	QueryParameters []HTTPQueryParameter `json:"queryParameters,omitempty"`
	// One of http, https. http2Route only.
	Scheme string `json:"scheme,omitempty"`
}

// HTTPRouteHeader matches one HTTP header.
type HTTPRouteHeader struct {
	// Unset means false.
	Invert *bool              `json:"invert,omitempty"`
	Match  *HeaderMatchMethod `json:"match,omitempty"`
	// Required. 1–50 characters.
	Name string `json:"name,omitempty"`
}

// HeaderMatchMethod is how a header value is matched.
// It is a union: exactly one member should be set.
type HeaderMatchMethod struct {
	// 1–255 characters.
	Exact string `json:"exact,omitempty"`
	// 1–255 characters.
	Prefix string      `json:"prefix,omitempty"`
	Range  *MatchRange `json:"range,omitempty"`
	// 1–255 characters.
	Regex string `json:"regex,omitempty"`
	// 1–255 characters.
	Suffix string `json:"suffix,omitempty"`
}

// HTTPPathMatch matches the whole request path.
type HTTPPathMatch struct {
	// 1–255 characters.
	Exact string `json:"exact,omitempty"`
	// 1–255 characters.
	Regex string `json:"regex,omitempty"`
}

// HTTPQueryParameter matches one query parameter.
type HTTPQueryParameter struct {
	Match *QueryParameterMatch `json:"match,omitempty"`
	// Required.
	Name string `json:"name,omitempty"`
}

// QueryParameterMatch is how a query parameter value is matched.
type QueryParameterMatch struct {
	// "" matches a parameter with an empty value.
	Exact *string `json:"exact,omitempty"`
}

// HTTPRetryPolicy is an HTTP route's retry policy.
type HTTPRetryPolicy struct {
	// 1–25 items. Items 1–25 characters.
	HTTPRetryEvents []string `json:"httpRetryEvents,omitempty"`
	// Required. ≥ 0.
	MaxRetries *int64 `json:"maxRetries,omitempty"`
	// Required.
	PerRetryTimeout *Duration `json:"perRetryTimeout,omitempty"`
	// 1–1 items. Items: connection-error.
	TCPRetryEvents []string `json:"tcpRetryEvents,omitempty"`
}

// TCPRoute routes TCP connections.
type TCPRoute struct {
	// Required.
	Action  *TCPRouteAction `json:"action,omitempty"`
	Match   *TCPRouteMatch  `json:"match,omitempty"`
	Timeout *TCPTimeout     `json:"timeout,omitempty"`
}

// TCPRouteAction is where a TCP route sends traffic.
type TCPRouteAction struct {
	// Required. 1–10 items.
	WeightedTargets []WeightedTarget `json:"weightedTargets,omitempty"`
}

// TCPRouteMatch selects the TCP connections a route applies to.
type TCPRouteMatch struct {
	// 1–65535. Required when the virtual router has several listeners.
	Port *int64 `json:"port,omitempty"`
}

// VirtualGatewaySpec is the spec of a VirtualGateway.
type VirtualGatewaySpec struct {
	BackendDefaults *VirtualGatewayBackendDefaults `json:"backendDefaults,omitempty"`
	// Required.
	Listeners []VirtualGatewayListener `json:"listeners,omitempty"`
	Logging   *VirtualGatewayLogging   `json:"logging,omitempty"`
}

// VirtualGatewayBackendDefaults holds the defaults for all of a virtual gateway's backends.
type VirtualGatewayBackendDefaults struct {
	ClientPolicy *VirtualGatewayClientPolicy `json:"clientPolicy,omitempty"`
}

// VirtualGatewayClientPolicy is the policy a gateway applies to connections it originates.
type VirtualGatewayClientPolicy struct {
	TLS *VirtualGatewayClientPolicyTLS `json:"tls,omitempty"`
}

// VirtualGatewayClientPolicyTLS is TLS origination from a virtual gateway.
type VirtualGatewayClientPolicyTLS struct {
	Certificate *VirtualGatewayClientTLSCertificate `json:"certificate,omitempty"`
	// Unset means true.
	Enforce *bool `json:"enforce,omitempty"`
	// Items 1–65535. Empty means every port.
	Ports []int64 `json:"ports,omitempty"`
	// Required.
	Validation *VirtualGatewayTLSValidationContext `json:"validation,omitempty"`
}

// VirtualGatewayClientTLSCertificate is the client certificate a gateway presents when the server asks
// for one.
// It is a union: exactly one member should be set.
type VirtualGatewayClientTLSCertificate struct {
	File *VirtualGatewayListenerTLSFileCertificate `json:"file,omitempty"`
	SDS  *VirtualGatewayListenerTLSSDSCertificate  `json:"sds,omitempty"`
}

// VirtualGatewayListenerTLSFileCertificate is a certificate and key in files on the gateway's file
// system.
type VirtualGatewayListenerTLSFileCertificate struct {
	// Required. 1–255 characters.
	CertificateChain string `json:"certificateChain,omitempty"`
	// Required. 1–255 characters.
	PrivateKey string `json:"privateKey,omitempty"`
}

// VirtualGatewayListenerTLSSDSCertificate is a certificate fetched from the local SDS provider.
type VirtualGatewayListenerTLSSDSCertificate struct {
	// Required.
	SecretName string `json:"secretName,omitempty"`
}

// VirtualGatewayTLSValidationContext says how a gateway validates the server's certificate.
type VirtualGatewayTLSValidationContext struct {
	SubjectAlternativeNames *SubjectAlternativeNames `json:"subjectAlternativeNames,omitempty"`
	// Required.
	Trust *VirtualGatewayTLSValidationContextTrust `json:"trust,omitempty"`
}

// VirtualGatewayTLSValidationContextTrust is where a gateway's trusted certificate authorities come
// from.
// It is a union: exactly one member should be set.
type VirtualGatewayTLSValidationContextTrust struct {
	ACM  *VirtualGatewayTLSValidationContextACMTrust  `json:"acm,omitempty"`
	File *VirtualGatewayTLSValidationContextFileTrust `json:"file,omitempty"`
	SDS  *VirtualGatewayTLSValidationContextSDSTrust  `json:"sds,omitempty"`
}

// VirtualGatewayTLSValidationContextACMTrust trusts AWS Private CA certificate authorities.
type VirtualGatewayTLSValidationContextACMTrust struct {
	// Required. 1–3 items. AWS Private CA ARNs.
	CertificateAuthorityARNs []string `json:"certificateAuthorityArns,omitempty"`
}

// VirtualGatewayTLSValidationContextFileTrust trusts a certificate chain in a file.
type VirtualGatewayTLSValidationContextFileTrust struct {
	// Required. 1–255 characters.
	CertificateChain string `json:"certificateChain,omitempty"`
}

// VirtualGatewayTLSValidationContextSDSTrust trusts a bundle fetched from the local SDS provider.
type VirtualGatewayTLSValidationContextSDSTrust struct {
	// Required.
	SecretName string `json:"secretName,omitempty"`
}

// VirtualGatewayListener is inbound traffic a virtual gateway accepts.
type VirtualGatewayListener struct {
	ConnectionPool *VirtualGatewayConnectionPool    `json:"connectionPool,omitempty"`
	HealthCheck    *VirtualGatewayHealthCheckPolicy `json:"healthCheck,omitempty"`
	// Required.
	PortMapping *VirtualGatewayPortMapping `json:"portMapping,omitempty"`
	TLS         *VirtualGatewayListenerTLS `json:"tls,omitempty"`
}

// VirtualGatewayConnectionPool limits the gateway's connections to its targets; its member must match
// the listener's protocol.
// It is a union: exactly one member should be set.
type VirtualGatewayConnectionPool struct {
	GRPC  *VirtualGatewayGRPCConnectionPool  `json:"grpc,omitempty"`
	HTTP  *VirtualGatewayHTTPConnectionPool  `json:"http,omitempty"`
	HTTP2 *VirtualGatewayHTTP2ConnectionPool `json:"http2,omitempty"`
}

// VirtualGatewayGRPCConnectionPool is the connection pool of a grpc listener.
type VirtualGatewayGRPCConnectionPool struct {
	// Required. ≥ 1.
	MaxRequests *int64 `json:"maxRequests,omitempty"`
}

// VirtualGatewayHTTPConnectionPool is the connection pool of an http listener.
type VirtualGatewayHTTPConnectionPool struct {
	// Required. ≥ 1.
	MaxConnections *int64 `json:"maxConnections,omitempty"`
	// ≥ 1. Unset means 2147483647.
	MaxPendingRequests *int64 `json:"maxPendingRequests,omitempty"`
}

// VirtualGatewayHTTP2ConnectionPool is the connection pool of an http2 listener.
type VirtualGatewayHTTP2ConnectionPool struct {
	// Required. ≥ 1.
	MaxRequests *int64 `json:"maxRequests,omitempty"`
}

// VirtualGatewayHealthCheckPolicy is an active health check of a gateway listener.
type VirtualGatewayHealthCheckPolicy struct {
	// Required. 2–10.
	HealthyThreshold *int64 `json:"healthyThreshold,omitempty"`
	// Required. 5000–300000.
	IntervalMillis *int64 `json:"intervalMillis,omitempty"`
	// Used by http and http2 checks only.
	Path string `json:"path,omitempty"`
	// 1–65535. Unset means the listener's port.
	Port *int64 `json:"port,omitempty"`
	// Required. One of http, http2, grpc.
	Protocol string `json:"protocol,omitempty"`
	// Required. 2000–60000.
	TimeoutMillis *int64 `json:"timeoutMillis,omitempty"`
	// Required. 2–10.
	UnhealthyThreshold *int64 `json:"unhealthyThreshold,omitempty"`
}

// VirtualGatewayPortMapping is a gateway listener's port and protocol (no tcp).
type VirtualGatewayPortMapping struct {
	// Required. 1–65535.
	Port *int64 `json:"port,omitempty"`
	// Required. One of http, http2, grpc.
	Protocol string `json:"protocol,omitempty"`
}

// VirtualGatewayListenerTLS is TLS termination on a virtual gateway listener.
type VirtualGatewayListenerTLS struct {
	// Required.
	Certificate *VirtualGatewayListenerTLSCertificate `json:"certificate,omitempty"`
	// Required. One of STRICT, PERMISSIVE, DISABLED.
	Mode string `json:"mode,omitempty"`
	// Set for mutual TLS.
	Validation *VirtualGatewayListenerTLSValidationContext `json:"validation,omitempty"`
}

// VirtualGatewayListenerTLSCertificate is the certificate a gateway listener presents.
// It is a union: exactly one member should be set.
type VirtualGatewayListenerTLSCertificate struct {
	ACM  *VirtualGatewayListenerTLSACMCertificate  `json:"acm,omitempty"`
	File *VirtualGatewayListenerTLSFileCertificate `json:"file,omitempty"`
	SDS  *VirtualGatewayListenerTLSSDSCertificate  `json:"sds,omitempty"`
}

// VirtualGatewayListenerTLSACMCertificate is an AWS Certificate Manager certificate.
type VirtualGatewayListenerTLSACMCertificate struct {
	// Required.
	CertificateARN string `json:"certificateArn,omitempty"`
}

// VirtualGatewayListenerTLSValidationContext makes a gateway listener require and validate client
// certificates (mutual TLS).
type VirtualGatewayListenerTLSValidationContext struct {
	SubjectAlternativeNames *SubjectAlternativeNames `json:"subjectAlternativeNames,omitempty"`
	// Required.
	Trust *VirtualGatewayListenerTLSValidationContextTrust `json:"trust,omitempty"`
}

// VirtualGatewayListenerTLSValidationContextTrust is where a gateway listener's trusted certificate
// authorities come from.
// It is a union: exactly one member should be set.
type VirtualGatewayListenerTLSValidationContextTrust struct {
	File *VirtualGatewayTLSValidationContextFileTrust `json:"file,omitempty"`
	SDS  *VirtualGatewayTLSValidationContextSDSTrust  `json:"sds,omitempty"`
}

// VirtualGatewayLogging is a virtual gateway's logging.
type VirtualGatewayLogging struct {
	AccessLog *VirtualGatewayAccessLog `json:"accessLog,omitempty"`
}

// VirtualGatewayAccessLog is where a gateway writes access logs.
// It is a union: exactly one member should be set.
type VirtualGatewayAccessLog struct {
	File *VirtualGatewayFileAccessLog `json:"file,omitempty"`
}

// VirtualGatewayFileAccessLog is an access log written to a file.
type VirtualGatewayFileAccessLog struct {
	Format *LoggingFormat `json:"format,omitempty"`
	// Required. 1–255 characters.
	Path string `json:"path,omitempty"`
}

// GatewayRouteSpec is the spec of a GatewayRoute. Exactly one of the route types is set.
type GatewayRouteSpec struct {
	GRPCRoute  *GRPCGatewayRoute `json:"grpcRoute,omitempty"`
	HTTP2Route *HTTPGatewayRoute `json:"http2Route,omitempty"`
	HTTPRoute  *HTTPGatewayRoute `json:"httpRoute,omitempty"`
	// 0–1000. 0 is matched first.
	Priority *int64 `json:"priority,omitempty"`
}

// GRPCGatewayRoute routes gRPC requests arriving at a gateway.
type GRPCGatewayRoute struct {
	// Required.
	Action *GRPCGatewayRouteAction `json:"action,omitempty"`
	// Required.
	Match *GRPCGatewayRouteMatch `json:"match,omitempty"`
}

// GRPCGatewayRouteAction is where a gRPC gateway route sends traffic.
type GRPCGatewayRouteAction struct {
	Rewrite *GRPCGatewayRouteRewrite `json:"rewrite,omitempty"`
	// Required.
	Target *GatewayRouteTarget `json:"target,omitempty"`
}

// GRPCGatewayRouteRewrite rewrites gRPC requests before they are forwarded.
type GRPCGatewayRouteRewrite struct {
	Hostname *GatewayRouteHostnameRewrite `json:"hostname,omitempty"`
}

// GatewayRouteHostnameRewrite controls rewriting the Host (authority) to the target virtual service's
// name.
type GatewayRouteHostnameRewrite struct {
	// One of ENABLED, DISABLED. Unset means ENABLED.
	DefaultTargetHostname string `json:"defaultTargetHostname,omitempty"`
}

// GatewayRouteTarget is the virtual service a gateway route sends traffic to.
type GatewayRouteTarget struct {
	// 1–65535. Required when the virtual service's provider has several listeners.
	Port *int64 `json:"port,omitempty"`
	// Required.
	VirtualService *GatewayRouteVirtualService `json:"virtualService,omitempty"`
}

// GatewayRouteVirtualService names a gateway route's target virtual service.
type GatewayRouteVirtualService struct {
	// Required. 1–255 characters.
	VirtualServiceName string `json:"virtualServiceName,omitempty"`
}

// GRPCGatewayRouteMatch selects the gRPC requests a gateway route applies to.
type GRPCGatewayRouteMatch struct {
	Hostname *GatewayRouteHostnameMatch `json:"hostname,omitempty"`
	// 1–10 items.
	Metadata []GRPCGatewayRouteMetadata `json:"metadata,omitempty"`
	// 1–65535. Required when the virtual gateway has several listeners.
	Port        *int64 `json:"port,omitempty"`
	ServiceName string `json:"serviceName,omitempty"`
}

// GatewayRouteHostnameMatch matches the request's host name.
type GatewayRouteHostnameMatch struct {
	// 1–253 characters.
	Exact string `json:"exact,omitempty"`
	// 1–253 characters.
	Suffix string `json:"suffix,omitempty"`
}

// GRPCGatewayRouteMetadata matches one gRPC metadata entry.
type GRPCGatewayRouteMetadata struct {
	// Unset means false.
	Invert *bool                    `json:"invert,omitempty"`
	Match  *GRPCMetadataMatchMethod `json:"match,omitempty"`
	// Required. 1–50 characters.
	Name string `json:"name,omitempty"`
}

// GRPCMetadataMatchMethod is how a gateway route matches a metadata value.
// It is a union: exactly one member should be set.
type GRPCMetadataMatchMethod struct {
	// 1–255 characters.
	Exact string `json:"exact,omitempty"`
	// 1–255 characters.
	Prefix string      `json:"prefix,omitempty"`
	Range  *MatchRange `json:"range,omitempty"`
	// 1–255 characters.
	Regex string `json:"regex,omitempty"`
	// 1–255 characters.
	Suffix string `json:"suffix,omitempty"`
}

// HTTPGatewayRoute routes HTTP or HTTP/2 requests arriving at a gateway (GatewayRouteSpec's httpRoute
// and http2Route).
type HTTPGatewayRoute struct {
	// Required.
	Action *HTTPGatewayRouteAction `json:"action,omitempty"`
	// Required.
	Match *HTTPGatewayRouteMatch `json:"match,omitempty"`
}

// HTTPGatewayRouteAction is where an HTTP gateway route sends traffic.
type HTTPGatewayRouteAction struct {
	Rewrite *HTTPGatewayRouteRewrite `json:"rewrite,omitempty"`
	// Required.
	Target *GatewayRouteTarget `json:"target,omitempty"`
}

// HTTPGatewayRouteRewrite rewrites HTTP requests before they are forwarded.
type HTTPGatewayRouteRewrite struct {
	Hostname *GatewayRouteHostnameRewrite   `json:"hostname,omitempty"`
	Path     *HTTPGatewayRoutePathRewrite   `json:"path,omitempty"`
	Prefix   *HTTPGatewayRoutePrefixRewrite `json:"prefix,omitempty"`
}

// HTTPGatewayRoutePathRewrite replaces the whole path (exact and regex path matches only).
type HTTPGatewayRoutePathRewrite struct {
	// 1–255 characters.
	Exact string `json:"exact,omitempty"`
}

// HTTPGatewayRoutePrefixRewrite rewrites the matched prefix (prefix matches only).
type HTTPGatewayRoutePrefixRewrite struct {
	// One of ENABLED, DISABLED. DISABLED keeps the matched prefix.
	DefaultPrefix string `json:"defaultPrefix,omitempty"`
	// 1–255 characters. Replaces the matched prefix.
	Value string `json:"value,omitempty"`
}

// HTTPGatewayRouteMatch selects the HTTP requests a gateway route applies to.
type HTTPGatewayRouteMatch struct {
	// 1–10 items.
	Headers  []HTTPGatewayRouteHeader   `json:"headers,omitempty"`
	Hostname *GatewayRouteHostnameMatch `json:"hostname,omitempty"`
	// One of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH.
	Method string         `json:"method,omitempty"`
	Path   *HTTPPathMatch `json:"path,omitempty"`
	// 1–65535. Required when the virtual gateway has several listeners.
	Port *int64 `json:"port,omitempty"`
	// Starts with /.
	Prefix *string `json:"prefix,omitempty"`
	// 1–10 items.
	QueryParameters []HTTPQueryParameter `json:"queryParameters,omitempty"`
}

// HTTPGatewayRouteHeader matches one HTTP header.
type HTTPGatewayRouteHeader struct {
	// Unset means false.
	Invert *bool              `json:"invert,omitempty"`
	Match  *HeaderMatchMethod `json:"match,omitempty"`
	// Required. 1–50 characters.
	Name string `json:"name,omitempty"`
}
