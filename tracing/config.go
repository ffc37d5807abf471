package tracing

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/envvar"
)

// Tracer is the one tracer a bootstrap may configure.
type Tracer int

// Tracers App Mesh offered through environment variables.
const (
	NoTracer Tracer = iota
	XRay
	Datadog
	Jaeger
)

// Config is everything the environment says about the bootstrap, parsed and
// checked. FromEnv builds it; Render turns it into an Envoy bootstrap.
type Config struct {
	NodeID       string
	NodeCluster  string
	Resource     appmesh.Resource
	XDS          XDSConfig
	InitialFetch time.Duration

	AdminUDS      bool
	AdminPort     uint32
	AdminIPv6     bool
	AdminLogPath  string
	OutlierLog    string
	TracingDecide bool
	NoExtByName   bool
	HTTPAWSCreds  bool
	MaxReqPerIO   int64 // 0: unset

	Tracer        Tracer
	XRayAddress   string
	XRayPort      uint32
	XRayRate      float64 // < 0: unset
	XRayManifest  string
	XRaySegment   string
	DatadogHost   string
	DatadogPort   uint32
	DatadogSvc    string
	JaegerHost    string
	JaegerPort    uint32
	JaegerJSON    bool
	DogStatsD     bool
	StatsdAddress string
	StatsdPort    uint32
	StatsdSocket  string
	StatsTags     bool
	MetricExt     bool
	FlushInterval time.Duration // 0: Envoy's default
	SDSSocket     string

	TracingFile   string
	StatsFile     string
	SinksFile     string
	ResourcesFile string

	// Warnings are worth logging but do not stop rendering.
	Warnings []string
}

// XDSConfig is where Envoy finds meshd's control plane.
type XDSConfig struct {
	// Exactly one of Socket (unix://) and Host/Port is set.
	Socket   string
	Host     string
	Port     uint32
	TLS      bool
	ServerID string
}

// FromEnv reads and checks every variable in Variables. All problems are
// reported together in an *InputError, one line each.
func FromEnv(lookup Lookup) (*Config, error) {
	r := &reader{envvar.Reader{Lookup: lookup}}
	c := &Config{}

	c.nodeIdentity(r)
	c.xds(r)
	c.InitialFetch = time.Duration(r.integer("ENVOY_INITIAL_FETCH_TIMEOUT", 0, 0, math.MaxInt32)) * time.Second

	c.AdminUDS = r.OneOf("ENVOY_ADMIN_MODE", "tcp", "tcp", "uds") == "uds"
	c.AdminPort = r.Port("ENVOY_ADMIN_ACCESS_PORT", 9901)
	c.AdminIPv6 = r.Bool("ENVOY_ADMIN_ACCESS_ENABLE_IPV6", false)
	c.AdminLogPath = r.Str("ENVOY_ADMIN_ACCESS_LOG_FILE", "/tmp/envoy_admin_access.log")
	c.OutlierLog = r.Str("ENVOY_OUTLIER_DETECTION_EVENT_LOG_PATH", "/dev/stdout")

	c.TracingDecide = r.Bool("APPMESH_SET_TRACING_DECISION", true)
	c.NoExtByName = r.Bool("ENVOY_NO_EXTENSION_LOOKUP_BY_NAME", true)
	c.HTTPAWSCreds = r.Bool("ENVOY_USE_HTTP_CLIENT_TO_FETCH_AWS_CREDENTIALS", false)
	c.MaxReqPerIO = r.integer("MAX_REQUESTS_PER_IO_CYCLE", 0, 1, math.MaxUint32)

	c.tracing(r)
	c.stats(r)

	c.SDSSocket = r.path("APPMESH_SDS_SOCKET_PATH")
	if c.SDSSocket != "" && !filepath.IsAbs(c.SDSSocket) {
		r.Fail("APPMESH_SDS_SOCKET_PATH", c.SDSSocket, "must be an absolute path")
	}
	if c.XDS.TLS && c.SDSSocket == "" {
		r.Problems = append(r.Problems, errors.New("MESHD_XDS_TLS is on but APPMESH_SDS_SOCKET_PATH is not set: the sidecar's certificate and trust bundle for mTLS come from SDS"))
	}
	c.Warnings = r.Warnings
	if len(r.Problems) > 0 {
		return nil, &InputError{Problems: r.Problems}
	}
	return c, nil
}

func (c *Config) nodeIdentity(r *reader) {
	name := "APPMESH_RESOURCE_ARN"
	id, ok := r.Get(name)
	for _, old := range []string{"APPMESH_RESOURCE_NAME", "APPMESH_VIRTUAL_NODE_NAME"} {
		if ok {
			break
		}
		if id, ok = r.Get(old); ok {
			name = old
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s is deprecated; set APPMESH_RESOURCE_ARN instead", old))
		}
	}
	if !ok {
		r.Problems = append(r.Problems, fmt.Errorf("APPMESH_RESOURCE_ARN must be set: %s", appmesh.AcceptedForms))
	} else if res, err := appmesh.ParseResource(id); err != nil {
		r.Fail(name, id, "%v; accepted: %s", err, appmesh.AcceptedForms)
	} else {
		c.NodeID, c.Resource = id, res
	}
	c.NodeCluster = r.Str("APPMESH_RESOURCE_CLUSTER", "")
	if c.NodeCluster == "" {
		if v, ok := r.Get("APPMESH_VIRTUAL_NODE_CLUSTER"); ok {
			c.NodeCluster = v
			r.Warnings = append(r.Warnings, "APPMESH_VIRTUAL_NODE_CLUSTER is deprecated; set APPMESH_RESOURCE_CLUSTER instead")
		} else {
			c.NodeCluster = c.NodeID
		}
	}
}

const xdsAllowed = "must be unix:///absolute/path or host:port (port 1–65535)"

func (c *Config) xds(r *reader) {
	v, ok := r.Get("MESHD_XDS_ADDRESS")
	switch {
	case !ok:
		r.Problems = append(r.Problems, fmt.Errorf("MESHD_XDS_ADDRESS must be set: unix:///path or host:port of meshd's control plane (it replaces App Mesh's regional endpoint)"))
	case strings.HasPrefix(v, "unix://"):
		p := strings.TrimPrefix(v, "unix://")
		if !filepath.IsAbs(p) {
			r.Fail("MESHD_XDS_ADDRESS", v, xdsAllowed)
		}
		c.XDS.Socket = p
	default:
		host, port, err := net.SplitHostPort(v)
		if err != nil || host == "" {
			r.Fail("MESHD_XDS_ADDRESS", v, xdsAllowed)
			break
		}
		p, err := envvar.ParsePort(port)
		_, ipErr := netip.ParseAddr(host)
		if err != nil || (ipErr != nil && !validHostname(host)) {
			r.Fail("MESHD_XDS_ADDRESS", v, xdsAllowed)
			break
		}
		c.XDS.Host, c.XDS.Port = host, p
	}
	for _, old := range []string{"APPMESH_XDS_ENDPOINT", "APPMESH_DUALSTACK_ENDPOINT", "APPMESH_PREVIEW", "APPMESH_SIGNING_NAME"} {
		if _, set := r.Get(old); set {
			r.Warnings = append(r.Warnings, old+" is ignored: Envoy gets its configuration from meshd's control plane at MESHD_XDS_ADDRESS")
		}
	}
	c.XDS.TLS = r.Bool("MESHD_XDS_TLS", false)
	if id, ok := r.Get("MESHD_XDS_SERVER_ID"); ok {
		if _, err := spiffeid.FromString(id); err != nil {
			r.Fail("MESHD_XDS_SERVER_ID", id, "must be a SPIFFE ID such as spiffe://example.org/meshd/controlplane: %v", err)
		} else if !c.XDS.TLS {
			r.Warnings = append(r.Warnings, "MESHD_XDS_SERVER_ID is ignored without MESHD_XDS_TLS=true")
		}
		c.XDS.ServerID = id
	}
}

func (c *Config) tracing(r *reader) {
	enabled := []struct {
		name   string
		tracer Tracer
	}{{"ENABLE_ENVOY_XRAY_TRACING", XRay}, {"ENABLE_ENVOY_DATADOG_TRACING", Datadog}, {"ENABLE_ENVOY_JAEGER_TRACING", Jaeger}}
	var on []string
	for _, e := range enabled {
		if r.Bool(e.name, false) {
			on = append(on, e.name)
			c.Tracer = e.tracer
		}
	}
	c.TracingFile = r.path("ENVOY_TRACING_CFG_FILE")
	switch {
	case c.TracingFile != "":
		// App Mesh's rule: the file replaces the generated tracer.
		if len(on) > 0 {
			r.Warnings = append(r.Warnings, fmt.Sprintf("%s ignored: ENVOY_TRACING_CFG_FILE supplies the tracing configuration", strings.Join(on, ", ")))
		}
		c.Tracer = NoTracer
	case len(on) > 1:
		r.Problems = append(r.Problems, fmt.Errorf("%s are all enabled: Envoy runs a single tracer; enable only one of ENABLE_ENVOY_XRAY_TRACING, ENABLE_ENVOY_DATADOG_TRACING or ENABLE_ENVOY_JAEGER_TRACING", strings.Join(on, " and ")))
	}

	c.XRayPort = r.Port("XRAY_DAEMON_PORT", 2000)
	c.XRayAddress = "127.0.0.1"
	if v, ok := r.Get("AWS_XRAY_DAEMON_ADDRESS"); ok {
		addr, port, err := parseXRayAddress(v)
		if err != nil {
			r.Fail("AWS_XRAY_DAEMON_ADDRESS", v, "must be an IP address (127.0.0.1), IP:port, [IPv6]:port or \"tcp:IP:port udp:IP:port\"; host names are not allowed: the X-Ray tracer sends UDP itself, without DNS")
		} else {
			c.XRayAddress = addr
			if port != 0 {
				c.XRayPort = port
			}
		}
	}
	c.XRayRate = -1
	if v, ok := r.Get("XRAY_SAMPLING_RATE"); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
			r.Fail("XRAY_SAMPLING_RATE", v, "must be a decimal from 0 to 1.00 (100%%)")
		} else {
			c.XRayRate = math.Round(f*100) / 100
		}
	}
	c.XRayManifest = r.path("XRAY_SAMPLING_RULE_MANIFEST")
	if c.XRayManifest != "" && c.XRayRate >= 0 {
		r.Warnings = append(r.Warnings, "XRAY_SAMPLING_RATE ignored: XRAY_SAMPLING_RULE_MANIFEST is set")
		c.XRayRate = -1
	}
	c.XRaySegment = r.Str("XRAY_SEGMENT_NAME", "")

	c.DatadogHost = r.host("DATADOG_TRACER_ADDRESS", "127.0.0.1")
	c.DatadogPort = r.Port("DATADOG_TRACER_PORT", 8126)
	c.DatadogSvc = r.Str("DD_SERVICE", "")
	c.JaegerHost = r.host("JAEGER_TRACER_ADDRESS", "127.0.0.1")
	c.JaegerPort = r.Port("JAEGER_TRACER_PORT", 9411)
	c.JaegerJSON = r.OneOf("JAEGER_TRACER_VERSION", "PROTO", "PROTO", "JSON") == "JSON"
}

// parseXRayAddress accepts what the X-Ray SDKs document for
// AWS_XRAY_DAEMON_ADDRESS: an IP, IP:port, or "tcp:IP:port udp:IP:port" (in
// either order), of which the UDP address is the one the tracer uses.
// aws-xray-sdk-go's daemoncfg is not used: it reads the process environment
// itself, resolves host names (Envoy's tracer cannot) and rejects a bare IP
// and IPv6.
func parseXRayAddress(v string) (string, uint32, error) {
	if fields := strings.Fields(v); len(fields) == 2 {
		for _, f := range fields {
			if rest, ok := strings.CutPrefix(f, "udp:"); ok {
				return parseXRayAddress(rest)
			}
		}
		return "", 0, fmt.Errorf("no udp: address")
	}
	if a, err := netip.ParseAddr(v); err == nil && a.Zone() == "" {
		return a.String(), 0, nil
	}
	ap, err := netip.ParseAddrPort(v)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return "", 0, fmt.Errorf("not an IP or IP:port")
	}
	return ap.Addr().String(), uint32(ap.Port()), nil
}

func (c *Config) stats(r *reader) {
	c.DogStatsD = r.Bool("ENABLE_ENVOY_DOG_STATSD", false)
	c.StatsdAddress = r.ip("STATSD_ADDRESS", "127.0.0.1")
	c.StatsdPort = r.Port("STATSD_PORT", 8125)
	c.StatsdSocket = r.path("STATSD_SOCKET_PATH")
	if c.StatsdSocket != "" && !filepath.IsAbs(c.StatsdSocket) {
		r.Fail("STATSD_SOCKET_PATH", c.StatsdSocket, "must be an absolute path")
	}
	c.StatsTags = r.Bool("ENABLE_ENVOY_STATS_TAGS", false)
	c.MetricExt = r.OneOf("APPMESH_METRIC_EXTENSION_VERSION", "0", "0", "1") == "1"
	if d, ok := r.duration("ENVOY_STATS_FLUSH_INTERVAL", time.Millisecond, 5*time.Minute); ok {
		c.FlushInterval = d
	}
	c.StatsFile = r.path("ENVOY_STATS_CONFIG_FILE")
	c.SinksFile = r.path("ENVOY_STATS_SINKS_CFG_FILE")
	c.ResourcesFile = r.path("ENVOY_RESOURCES_CONFIG_FILE")
	if c.SinksFile != "" && c.DogStatsD {
		r.Warnings = append(r.Warnings, "ENABLE_ENVOY_DOG_STATSD ignored: ENVOY_STATS_SINKS_CFG_FILE supplies the stats sinks")
		c.DogStatsD = false
	}
}
