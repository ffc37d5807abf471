package tracing

// Variable documents one environment variable meshd reads to render the
// bootstrap. docs/configuration.md's table is generated from Variables and
// a test checks that every variable read is listed here and vice versa.
type Variable struct {
	Name    string
	Group   string
	Default string
	Allowed string
	Meaning string
	// Meshd marks variables meshd adds (the App Mesh image did not read them).
	Meshd bool
}

// Variables lists every variable the renderer reads, in documentation order.
var Variables = []Variable{
	// Node identity.
	{Name: "APPMESH_RESOURCE_ARN", Group: "node", Default: "(required)", Allowed: "arn:aws:appmesh:<region>:<account>:mesh/<mesh>/virtualNode/<name> or …/virtualGateway/<name>, or the short form mesh/<mesh>/virtualNode/<name>", Meaning: "The virtual node or gateway this Envoy represents: node.id, and the key meshd's control plane serves config by."},
	{Name: "APPMESH_RESOURCE_NAME", Group: "node", Default: "(unset)", Allowed: "as APPMESH_RESOURCE_ARN", Meaning: "Deprecated fallback for APPMESH_RESOURCE_ARN (read when it is unset; a warning is logged)."},
	{Name: "APPMESH_VIRTUAL_NODE_NAME", Group: "node", Default: "(unset)", Allowed: "as APPMESH_RESOURCE_ARN", Meaning: "Deprecated fallback after APPMESH_RESOURCE_NAME (App Mesh's ECS examples still set it)."},
	{Name: "APPMESH_RESOURCE_CLUSTER", Group: "node", Default: "the node id", Allowed: "any string", Meaning: "node.cluster: the name Envoy uses for itself in stats and traces."},
	{Name: "APPMESH_VIRTUAL_NODE_CLUSTER", Group: "node", Default: "(unset)", Allowed: "any string", Meaning: "Deprecated fallback for APPMESH_RESOURCE_CLUSTER."},

	// Control plane.
	{Name: "MESHD_XDS_ADDRESS", Group: "control plane", Default: "(required)", Allowed: "unix:///absolute/path or host:port", Meaning: "Where meshd's control plane serves ADS; replaces App Mesh's regional endpoint and its SigV4 credentials. Rendered as the static cluster meshd_xds.", Meshd: true},
	{Name: "MESHD_XDS_TLS", Group: "control plane", Default: "false", Allowed: "boolean", Meaning: "Use mTLS to the control plane with the sidecar's own SVID (SDS secret default) and trust bundle (ROOTCA) from APPMESH_SDS_SOCKET_PATH, which must then be set.", Meshd: true},
	{Name: "MESHD_XDS_SERVER_ID", Group: "control plane", Default: "(any identity the bundle trusts)", Allowed: "a SPIFFE ID (spiffe://<trust domain>/<path>)", Meaning: "With MESHD_XDS_TLS, the URI SAN the control plane's certificate must carry.", Meshd: true},
	{Name: "APPMESH_XDS_ENDPOINT", Group: "control plane", Default: "(unset)", Allowed: "anything", Meaning: "App Mesh's management endpoint. Ignored, with a warning: Envoy's xDS server is MESHD_XDS_ADDRESS."},
	{Name: "APPMESH_DUALSTACK_ENDPOINT", Group: "control plane", Default: "(unset)", Allowed: "anything", Meaning: "Chose App Mesh's dual-stack endpoint. Ignored, with a warning."},
	{Name: "APPMESH_PREVIEW", Group: "control plane", Default: "(unset)", Allowed: "anything", Meaning: "Chose App Mesh's preview endpoint. Ignored, with a warning."},
	{Name: "APPMESH_SIGNING_NAME", Group: "control plane", Default: "(unset)", Allowed: "anything", Meaning: "SigV4 service name for App Mesh's endpoint. Ignored, with a warning: meshd authenticates sidecars with mTLS, not IAM."},
	{Name: "ENVOY_INITIAL_FETCH_TIMEOUT", Group: "control plane", Default: "0", Allowed: "integer seconds ≥ 0 (0: wait forever)", Meaning: "How long Envoy waits for its first listeners and clusters before it starts without them."},

	// Admin.
	{Name: "ENVOY_ADMIN_MODE", Group: "admin", Default: "tcp", Allowed: "tcp or uds", Meaning: "Envoy's admin interface on a TCP port, or on the Unix socket /tmp/envoy_admin.sock (mode 0600)."},
	{Name: "ENVOY_ADMIN_ACCESS_PORT", Group: "admin", Default: "9901", Allowed: "1–65535", Meaning: "Admin port in tcp mode; must differ from every listener port of the node."},
	{Name: "ENVOY_ADMIN_ACCESS_ENABLE_IPV6", Group: "admin", Default: "false", Allowed: "boolean", Meaning: "Admin listens on :: (IPv4 and IPv6) instead of 0.0.0.0."},
	{Name: "ENVOY_ADMIN_ACCESS_LOG_FILE", Group: "admin", Default: "/tmp/envoy_admin_access.log", Allowed: "path", Meaning: "Access log of the admin interface."},
	{Name: "ENVOY_OUTLIER_DETECTION_EVENT_LOG_PATH", Group: "admin", Default: "/dev/stdout", Allowed: "path", Meaning: "Where Envoy logs outlier-detection ejections."},

	// Runtime.
	{Name: "APPMESH_SET_TRACING_DECISION", Group: "runtime", Default: "true", Allowed: "boolean", Meaning: "Runtime envoy.reloadable_features.http_set_tracing_decision_in_request_id (Envoy stores its sampling decision in x-request-id)."},
	{Name: "ENVOY_NO_EXTENSION_LOOKUP_BY_NAME", Group: "runtime", Default: "true", Allowed: "boolean", Meaning: "Runtime envoy.reloadable_features.no_extension_lookup_by_name."},
	{Name: "ENVOY_USE_HTTP_CLIENT_TO_FETCH_AWS_CREDENTIALS", Group: "runtime", Default: "false", Allowed: "boolean", Meaning: "Runtime envoy.reloadable_features.use_http_client_to_fetch_aws_credentials."},
	{Name: "MAX_REQUESTS_PER_IO_CYCLE", Group: "runtime", Default: "(unset)", Allowed: "integer ≥ 1", Meaning: "Runtime http.max_requests_per_io_cycle (HTTP/2 rapid-reset mitigation)."},

	// X-Ray.
	{Name: "ENABLE_ENVOY_XRAY_TRACING", Group: "x-ray", Default: "false", Allowed: "boolean", Meaning: "Trace with AWS X-Ray (tracer envoy.tracers.xray, UDP to the daemon). At most one tracer may be enabled."},
	{Name: "XRAY_DAEMON_PORT", Group: "x-ray", Default: "2000", Allowed: "1–65535", Meaning: "X-Ray daemon UDP port."},
	{Name: "AWS_XRAY_DAEMON_ADDRESS", Group: "x-ray", Default: "127.0.0.1", Allowed: "IP, IP:port, [IPv6]:port, or the SDK's \"tcp:IP:port udp:IP:port\" (the udp part is used)", Meaning: "X-Ray daemon address; a port here wins over XRAY_DAEMON_PORT. Must be an IP: the tracer does not resolve names."},
	{Name: "XRAY_SAMPLING_RATE", Group: "x-ray", Default: "0.05", Allowed: "decimal from 0 to 1.00, rounded to 2 places", Meaning: "Fixed sampling rate: a version-2 manifest {fixed_target 1, rate R} is inlined in the bootstrap (0.05 is X-Ray's default and adds nothing). Ignored when XRAY_SAMPLING_RULE_MANIFEST is set."},
	{Name: "XRAY_SAMPLING_RULE_MANIFEST", Group: "x-ray", Default: "(unset)", Allowed: "path of a version-2 X-Ray sampling rule manifest (JSON)", Meaning: "Localized sampling rules; validated by meshd with Envoy's rules and by aws-xray-sdk-go, then referenced by path."},
	{Name: "XRAY_SEGMENT_NAME", Group: "x-ray", Default: "<mesh>/<name>", Allowed: "any string", Meaning: "Segment name of Envoy's traces."},

	// Datadog.
	{Name: "ENABLE_ENVOY_DATADOG_TRACING", Group: "datadog", Default: "false", Allowed: "boolean", Meaning: "Trace with Datadog (tracer envoy.tracers.datadog, static cluster datadog_agent)."},
	{Name: "DATADOG_TRACER_ADDRESS", Group: "datadog", Default: "127.0.0.1", Allowed: "IP or DNS name", Meaning: "Datadog agent host (STRICT_DNS cluster)."},
	{Name: "DATADOG_TRACER_PORT", Group: "datadog", Default: "8126", Allowed: "1–65535", Meaning: "Datadog agent trace port."},
	{Name: "DD_SERVICE", Group: "datadog", Default: "envoy-<mesh>/<name>", Allowed: "any string", Meaning: "Datadog service name."},

	// Jaeger.
	{Name: "ENABLE_ENVOY_JAEGER_TRACING", Group: "jaeger", Default: "false", Allowed: "boolean", Meaning: "Trace to a Jaeger (Zipkin-compatible) collector (tracer envoy.tracers.zipkin, static cluster jaeger)."},
	{Name: "JAEGER_TRACER_ADDRESS", Group: "jaeger", Default: "127.0.0.1", Allowed: "IP or DNS name", Meaning: "Collector host (STRICT_DNS cluster)."},
	{Name: "JAEGER_TRACER_PORT", Group: "jaeger", Default: "9411", Allowed: "1–65535", Meaning: "Collector port."},
	{Name: "JAEGER_TRACER_VERSION", Group: "jaeger", Default: "PROTO", Allowed: "PROTO or JSON (any case)", Meaning: "Span encoding posted to /api/v2/spans: HTTP_PROTO or HTTP_JSON."},

	// Custom tracing.
	{Name: "ENVOY_TRACING_CFG_FILE", Group: "custom files", Default: "(unset)", Allowed: "path of a YAML or JSON bootstrap fragment", Meaning: "Your own tracing block (and the static clusters it needs), merged instead of the generated tracer; the ENABLE_ENVOY_*_TRACING variables are then ignored."},
	{Name: "ENVOY_STATS_CONFIG_FILE", Group: "custom files", Default: "(unset)", Allowed: "path of a YAML or JSON bootstrap fragment", Meaning: "Your own stats_config, merged instead of the generated stats tags (the metrics-extension tags are then not generated)."},
	{Name: "ENVOY_STATS_SINKS_CFG_FILE", Group: "custom files", Default: "(unset)", Allowed: "path of a fragment with stats_sinks", Meaning: "Stats sinks appended to the bootstrap; the DogStatsD variables are then ignored."},
	{Name: "ENVOY_RESOURCES_CONFIG_FILE", Group: "custom files", Default: "(unset)", Allowed: "path of a YAML or JSON bootstrap fragment", Meaning: "Extra bootstrap content: static listeners, clusters and secrets are appended, other top-level fields replace the generated ones (with a warning)."},

	// DogStatsD.
	{Name: "ENABLE_ENVOY_DOG_STATSD", Group: "dogstatsd", Default: "false", Allowed: "boolean", Meaning: "Send Envoy's stats to DogStatsD (sink envoy.stat_sinks.dog_statsd, prefix envoy.)."},
	{Name: "STATSD_ADDRESS", Group: "dogstatsd", Default: "127.0.0.1", Allowed: "IP", Meaning: "DogStatsD host (UDP)."},
	{Name: "STATSD_PORT", Group: "dogstatsd", Default: "8125", Allowed: "1–65535", Meaning: "DogStatsD UDP port."},
	{Name: "STATSD_SOCKET_PATH", Group: "dogstatsd", Default: "(unset)", Allowed: "absolute path", Meaning: "DogStatsD Unix datagram socket; wins over STATSD_ADDRESS and STATSD_PORT."},

	// Stats.
	{Name: "ENABLE_ENVOY_STATS_TAGS", Group: "stats", Default: "false", Allowed: "boolean", Meaning: "Tag every stat with appmesh.mesh and appmesh.virtual_node (or appmesh.virtual_gateway)."},
	{Name: "APPMESH_METRIC_EXTENSION_VERSION", Group: "stats", Default: "0", Allowed: "0 or 1", Meaning: "1: node metadata aws.appmesh.metric_filter {level: \"1\"} and the tags Mesh, VirtualNode/VirtualGateway, TargetVirtualNode, TargetVirtualService that meshd's metrics extension reads."},
	{Name: "ENVOY_STATS_FLUSH_INTERVAL", Group: "stats", Default: "5s (Envoy's)", Allowed: "duration from 1ms to less than 5m, e.g. 10s or 5000ms", Meaning: "How often Envoy flushes stats to its sinks."},
	{Name: "APPMESH_SDS_SOCKET_PATH", Group: "sds", Default: "(unset)", Allowed: "absolute path", Meaning: "meshd's (or SPIRE's) SDS socket: adds the static cluster static_cluster_sds_unix_socket, which the control plane's TLS config refers to."},
}
