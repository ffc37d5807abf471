package tracing

import (
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// base is the smallest valid environment.
func base(kv ...string) map[string]string {
	m := map[string]string{
		"APPMESH_RESOURCE_ARN": "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceA",
		"MESHD_XDS_ADDRESS":    "unix:///run/meshd/xds.sock",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestFromEnvRejects(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // one line per problem, exactly
	}{
		{"no resource", map[string]string{"MESHD_XDS_ADDRESS": "unix:///x"}, []string{
			"APPMESH_RESOURCE_ARN must be set: " + "arn:aws:appmesh:<region>:<account>:mesh/<mesh>/virtualNode/<name>, the same with virtualGateway, or the short form mesh/<mesh>/virtualNode/<name> (or .../virtualGateway/<name>)",
		}},
		{"no xds", map[string]string{"APPMESH_RESOURCE_ARN": "mesh/a/virtualNode/b"}, []string{
			"MESHD_XDS_ADDRESS must be set: unix:///path or host:port of meshd's control plane (it replaces App Mesh's regional endpoint)",
		}},
		{"bad arn account", base("APPMESH_RESOURCE_ARN", "arn:aws:appmesh:us-west-2:1:mesh/a/virtualNode/b"), []string{
			`APPMESH_RESOURCE_ARN="arn:aws:appmesh:us-west-2:1:mesh/a/virtualNode/b": ARN account "1" is not a 12-digit account id; accepted: arn:aws:appmesh:<region>:<account>:mesh/<mesh>/virtualNode/<name>, the same with virtualGateway, or the short form mesh/<mesh>/virtualNode/<name> (or .../virtualGateway/<name>)`,
		}},
		{"deprecated name is checked under its own name", map[string]string{"APPMESH_VIRTUAL_NODE_NAME": "apps/serviceB", "MESHD_XDS_ADDRESS": "unix:///x"}, []string{
			`APPMESH_VIRTUAL_NODE_NAME="apps/serviceB": not a virtual node or virtual gateway; accepted: arn:aws:appmesh:<region>:<account>:mesh/<mesh>/virtualNode/<name>, the same with virtualGateway, or the short form mesh/<mesh>/virtualNode/<name> (or .../virtualGateway/<name>)`,
		}},
		{"xds relative socket", base("MESHD_XDS_ADDRESS", "unix://run/xds.sock"), []string{
			`MESHD_XDS_ADDRESS="unix://run/xds.sock": must be unix:///absolute/path or host:port (port 1–65535)`,
		}},
		{"xds no port", base("MESHD_XDS_ADDRESS", "controlplane"), []string{
			`MESHD_XDS_ADDRESS="controlplane": must be unix:///absolute/path or host:port (port 1–65535)`,
		}},
		{"xds port 0", base("MESHD_XDS_ADDRESS", "cp.local:0"), []string{
			`MESHD_XDS_ADDRESS="cp.local:0": must be unix:///absolute/path or host:port (port 1–65535)`,
		}},
		{"xds bad host", base("MESHD_XDS_ADDRESS", "cp_-.:443x"), []string{
			`MESHD_XDS_ADDRESS="cp_-.:443x": must be unix:///absolute/path or host:port (port 1–65535)`,
		}},
		{"tls needs sds", base("MESHD_XDS_TLS", "1"), []string{
			`MESHD_XDS_TLS is on but APPMESH_SDS_SOCKET_PATH is not set: the sidecar's certificate and trust bundle for mTLS come from SDS`,
		}},
		{"server id", base("MESHD_XDS_SERVER_ID", "controlplane"), []string{
			`MESHD_XDS_SERVER_ID="controlplane": must be a SPIFFE ID such as spiffe://example.org/meshd/controlplane: scheme is missing or invalid`,
		}},
		{"booleans", base("ENABLE_ENVOY_XRAY_TRACING", "yes", "ENVOY_ADMIN_ACCESS_ENABLE_IPV6", "2"), []string{
			`ENVOY_ADMIN_ACCESS_ENABLE_IPV6="2": must be a boolean: 1, true, 0 or false (also t, f, TRUE, FALSE, True, False)`,
			`ENABLE_ENVOY_XRAY_TRACING="yes": must be a boolean: 1, true, 0 or false (also t, f, TRUE, FALSE, True, False)`,
		}},
		{"ports", base("ENVOY_ADMIN_ACCESS_PORT", "0", "XRAY_DAEMON_PORT", "-1", "DATADOG_TRACER_PORT", "65536", "JAEGER_TRACER_PORT", "http", "STATSD_PORT", "4294967297"), []string{
			`ENVOY_ADMIN_ACCESS_PORT="0": must be a port number from 1 to 65535`,
			`XRAY_DAEMON_PORT="-1": must be a port number from 1 to 65535`,
			`DATADOG_TRACER_PORT="65536": must be a port number from 1 to 65535`,
			`JAEGER_TRACER_PORT="http": must be a port number from 1 to 65535`,
			`STATSD_PORT="4294967297": must be a port number from 1 to 65535`,
		}},
		{"two tracers", base("ENABLE_ENVOY_XRAY_TRACING", "1", "ENABLE_ENVOY_JAEGER_TRACING", "true"), []string{
			"ENABLE_ENVOY_XRAY_TRACING and ENABLE_ENVOY_JAEGER_TRACING are all enabled: Envoy runs a single tracer; enable only one of ENABLE_ENVOY_XRAY_TRACING, ENABLE_ENVOY_DATADOG_TRACING or ENABLE_ENVOY_JAEGER_TRACING",
		}},
		{"xray address host name", base("AWS_XRAY_DAEMON_ADDRESS", "xray-daemon:2000"), []string{
			`AWS_XRAY_DAEMON_ADDRESS="xray-daemon:2000": must be an IP address (127.0.0.1), IP:port, [IPv6]:port or "tcp:IP:port udp:IP:port"; host names are not allowed: the X-Ray tracer sends UDP itself, without DNS`,
		}},
		{"xray address two forms without udp", base("AWS_XRAY_DAEMON_ADDRESS", "tcp:127.0.0.1:2000 tcp:127.0.0.1:2001"), []string{
			`AWS_XRAY_DAEMON_ADDRESS="tcp:127.0.0.1:2000 tcp:127.0.0.1:2001": must be an IP address (127.0.0.1), IP:port, [IPv6]:port or "tcp:IP:port udp:IP:port"; host names are not allowed: the X-Ray tracer sends UDP itself, without DNS`,
		}},
		{"sampling rate", base("XRAY_SAMPLING_RATE", "5%"), []string{`XRAY_SAMPLING_RATE="5%": must be a decimal from 0 to 1.00 (100%)`}},
		{"sampling rate high", base("XRAY_SAMPLING_RATE", "1.5"), []string{`XRAY_SAMPLING_RATE="1.5": must be a decimal from 0 to 1.00 (100%)`}},
		{"sampling rate NaN", base("XRAY_SAMPLING_RATE", "NaN"), []string{`XRAY_SAMPLING_RATE="NaN": must be a decimal from 0 to 1.00 (100%)`}},
		{"hosts", base("DATADOG_TRACER_ADDRESS", "dd agent", "JAEGER_TRACER_ADDRESS", "-jaeger"), []string{
			`DATADOG_TRACER_ADDRESS="dd agent": must be an IP address or a DNS name`,
			`JAEGER_TRACER_ADDRESS="-jaeger": must be an IP address or a DNS name`,
		}},
		{"jaeger version", base("JAEGER_TRACER_VERSION", "thrift"), []string{`JAEGER_TRACER_VERSION="thrift": must be one of PROTO, JSON`}},
		{"statsd", base("STATSD_ADDRESS", "datadog-agent", "STATSD_SOCKET_PATH", "dsd.sock"), []string{
			`STATSD_ADDRESS="datadog-agent": must be an IPv4 or IPv6 address such as 127.0.0.1 (no host name: Envoy opens this socket itself, without DNS)`,
			`STATSD_SOCKET_PATH="dsd.sock": must be an absolute path`,
		}},
		{"metric extension", base("APPMESH_METRIC_EXTENSION_VERSION", "2"), []string{`APPMESH_METRIC_EXTENSION_VERSION="2": must be one of 0, 1`}},
		{"flush interval", base("ENVOY_STATS_FLUSH_INTERVAL", "5000"), []string{`ENVOY_STATS_FLUSH_INTERVAL="5000": must be a duration such as 5s or 5000ms, at least 1ms and less than 5m0s`}},
		{"flush interval too long", base("ENVOY_STATS_FLUSH_INTERVAL", "10m"), []string{`ENVOY_STATS_FLUSH_INTERVAL="10m": must be a duration such as 5s or 5000ms, at least 1ms and less than 5m0s`}},
		{"admin mode", base("ENVOY_ADMIN_MODE", "pipe"), []string{`ENVOY_ADMIN_MODE="pipe": must be one of tcp, uds`}},
		{"initial fetch", base("ENVOY_INITIAL_FETCH_TIMEOUT", "-5"), []string{`ENVOY_INITIAL_FETCH_TIMEOUT="-5": must be an integer from 0 to 2147483647`}},
		{"initial fetch unit", base("ENVOY_INITIAL_FETCH_TIMEOUT", "30s"), []string{`ENVOY_INITIAL_FETCH_TIMEOUT="30s": must be an integer from 0 to 2147483647`}},
		{"max requests", base("MAX_REQUESTS_PER_IO_CYCLE", "0"), []string{`MAX_REQUESTS_PER_IO_CYCLE="0": must be an integer from 1 to 4294967295`}},
		{"sds relative", base("APPMESH_SDS_SOCKET_PATH", "sds.sock"), []string{`APPMESH_SDS_SOCKET_PATH="sds.sock": must be an absolute path`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(MapLookup(tt.env))
			if err == nil {
				t.Fatalf("FromEnv accepted %v: %+v", tt.env, c)
			}
			if !IsInput(err) {
				t.Fatalf("error is not an input error: %T %v", err, err)
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("problems:\n got: %q\nwant: %q", got, tt.want)
			}
			var ve *VarError
			if strings.Contains(tt.want[0], `="`) && !errors.As(err, &ve) {
				t.Errorf("errors.As(*VarError) failed for %v", err)
			}
		})
	}
}

func TestFromEnvAccepts(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		check    func(t *testing.T, c *Config)
		warnings []string
	}{
		{"defaults", base(), func(t *testing.T, c *Config) {
			want := Config{
				NodeID: "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceA", NodeCluster: "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceA",
				AdminPort: 9901, AdminLogPath: "/tmp/envoy_admin_access.log", OutlierLog: "/dev/stdout", TracingDecide: true, NoExtByName: true,
				XRayAddress: "127.0.0.1", XRayPort: 2000, XRayRate: -1, DatadogHost: "127.0.0.1", DatadogPort: 8126, JaegerHost: "127.0.0.1", JaegerPort: 9411,
				StatsdAddress: "127.0.0.1", StatsdPort: 8125,
			}
			got := *c
			got.Resource, got.XDS, got.Warnings = want.Resource, want.XDS, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
			}
			if c.XDS.Socket != "/run/meshd/xds.sock" || c.XDS.Host != "" {
				t.Errorf("xds = %+v", c.XDS)
			}
			if c.Resource.Mesh != "apps" || c.Resource.Name != "serviceA" || c.Resource.Region != "us-west-2" {
				t.Errorf("resource = %+v", c.Resource)
			}
		}, nil},
		{"whitespace and empty values count as unset", base("XRAY_DAEMON_PORT", "  ", "ENVOY_ADMIN_ACCESS_PORT", " 9902\n"), func(t *testing.T, c *Config) {
			if c.XRayPort != 2000 || c.AdminPort != 9902 {
				t.Errorf("ports %d %d", c.XRayPort, c.AdminPort)
			}
		}, nil},
		{"deprecated fallbacks", map[string]string{"APPMESH_VIRTUAL_NODE_NAME": "mesh/apps/virtualNode/serviceB", "APPMESH_VIRTUAL_NODE_CLUSTER": "b", "MESHD_XDS_ADDRESS": "cp.apps.local:15010"}, func(t *testing.T, c *Config) {
			if c.NodeID != "mesh/apps/virtualNode/serviceB" || c.NodeCluster != "b" || c.XDS.Host != "cp.apps.local" || c.XDS.Port != 15010 {
				t.Errorf("%+v", c)
			}
		}, []string{"APPMESH_VIRTUAL_NODE_NAME is deprecated; set APPMESH_RESOURCE_ARN instead", "APPMESH_VIRTUAL_NODE_CLUSTER is deprecated; set APPMESH_RESOURCE_CLUSTER instead"}},
		{"ARN wins over deprecated names", base("APPMESH_RESOURCE_NAME", "garbage", "APPMESH_RESOURCE_CLUSTER", "svc-a"), func(t *testing.T, c *Config) {
			if c.Resource.Name != "serviceA" || c.NodeCluster != "svc-a" {
				t.Errorf("%+v", c)
			}
		}, nil},
		{"xray address forms", base("AWS_XRAY_DAEMON_ADDRESS", "tcp:10.0.0.1:2000 udp:10.0.0.2:2001", "XRAY_DAEMON_PORT", "3000"), func(t *testing.T, c *Config) {
			if c.XRayAddress != "10.0.0.2" || c.XRayPort != 2001 {
				t.Errorf("%s %d", c.XRayAddress, c.XRayPort)
			}
		}, nil},
		{"xray ipv6 without port keeps XRAY_DAEMON_PORT", base("AWS_XRAY_DAEMON_ADDRESS", "::1", "XRAY_DAEMON_PORT", "3000"), func(t *testing.T, c *Config) {
			if c.XRayAddress != "::1" || c.XRayPort != 3000 {
				t.Errorf("%s %d", c.XRayAddress, c.XRayPort)
			}
		}, nil},
		{"xray [ipv6]:port", base("AWS_XRAY_DAEMON_ADDRESS", "[fd00::1]:2001"), func(t *testing.T, c *Config) {
			if c.XRayAddress != "fd00::1" || c.XRayPort != 2001 {
				t.Errorf("%s %d", c.XRayAddress, c.XRayPort)
			}
		}, nil},
		{"sampling rate rounds to 2 places", base("XRAY_SAMPLING_RATE", "0.125"), func(t *testing.T, c *Config) {
			if c.XRayRate != 0.13 {
				t.Errorf("rate %v", c.XRayRate)
			}
		}, nil},
		{"manifest wins over rate", base("XRAY_SAMPLING_RATE", "0.5", "XRAY_SAMPLING_RULE_MANIFEST", "/etc/rules.json"), func(t *testing.T, c *Config) {
			if c.XRayRate != -1 || c.XRayManifest != "/etc/rules.json" {
				t.Errorf("%v %q", c.XRayRate, c.XRayManifest)
			}
		}, []string{"XRAY_SAMPLING_RATE ignored: XRAY_SAMPLING_RULE_MANIFEST is set"}},
		{"tracing file wins over the switches", base("ENABLE_ENVOY_XRAY_TRACING", "1", "ENABLE_ENVOY_DATADOG_TRACING", "1", "ENVOY_TRACING_CFG_FILE", "/etc/tracing.yaml"), func(t *testing.T, c *Config) {
			if c.Tracer != NoTracer || c.TracingFile != "/etc/tracing.yaml" {
				t.Errorf("%v %q", c.Tracer, c.TracingFile)
			}
		}, []string{"ENABLE_ENVOY_XRAY_TRACING, ENABLE_ENVOY_DATADOG_TRACING ignored: ENVOY_TRACING_CFG_FILE supplies the tracing configuration"}},
		{"one tracer", base("ENABLE_ENVOY_JAEGER_TRACING", "TRUE", "ENABLE_ENVOY_XRAY_TRACING", "0", "JAEGER_TRACER_VERSION", "json", "JAEGER_TRACER_ADDRESS", "appmesh-jaeger.appmesh-system"), func(t *testing.T, c *Config) {
			if c.Tracer != Jaeger || !c.JaegerJSON || c.JaegerHost != "appmesh-jaeger.appmesh-system" {
				t.Errorf("%+v", c)
			}
		}, nil},
		{"sinks file wins over dogstatsd", base("ENABLE_ENVOY_DOG_STATSD", "1", "ENVOY_STATS_SINKS_CFG_FILE", "/etc/sinks.yaml"), func(t *testing.T, c *Config) {
			if c.DogStatsD {
				t.Error("DogStatsD still enabled")
			}
		}, []string{"ENABLE_ENVOY_DOG_STATSD ignored: ENVOY_STATS_SINKS_CFG_FILE supplies the stats sinks"}},
		{"flush interval", base("ENVOY_STATS_FLUSH_INTERVAL", "5000ms"), func(t *testing.T, c *Config) {
			if c.FlushInterval != 5*time.Second {
				t.Errorf("%v", c.FlushInterval)
			}
		}, nil},
		{"App Mesh endpoint variables are ignored", base("APPMESH_XDS_ENDPOINT", "appmesh-envoy-management.us-west-2.amazonaws.com:443", "APPMESH_PREVIEW", "0"), func(t *testing.T, c *Config) {
			if c.XDS.Socket != "/run/meshd/xds.sock" {
				t.Errorf("xds = %+v", c.XDS)
			}
		}, []string{"APPMESH_XDS_ENDPOINT is ignored: Envoy gets its configuration from meshd's control plane at MESHD_XDS_ADDRESS", "APPMESH_PREVIEW is ignored: Envoy gets its configuration from meshd's control plane at MESHD_XDS_ADDRESS"}},
		{"server id without tls", base("MESHD_XDS_SERVER_ID", "spiffe://example.org/meshd"), func(t *testing.T, c *Config) {}, []string{"MESHD_XDS_SERVER_ID is ignored without MESHD_XDS_TLS=true"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromEnv(MapLookup(tt.env))
			if err != nil {
				t.Fatalf("FromEnv: %v", err)
			}
			tt.check(t, c)
			if strings.Join(c.Warnings, "\n") != strings.Join(tt.warnings, "\n") {
				t.Errorf("warnings:\n got %q\nwant %q", c.Warnings, tt.warnings)
			}
		})
	}
}

// TestVariablesDocumented keeps Variables (and so docs/configuration.md) and
// the variables FromEnv reads the same set.
func TestVariablesDocumented(t *testing.T) {
	read := map[string]bool{}
	lookup := func(k string) (string, bool) {
		read[k] = true
		return MapLookup(base(
			// Switch on every branch that reads more variables.
			"MESHD_XDS_SERVER_ID", "spiffe://example.org/cp", "AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1", "XRAY_SAMPLING_RATE", "0.1",
		))(k)
	}
	if _, err := FromEnv(lookup); err != nil {
		t.Fatal(err)
	}
	// The deprecated fallbacks are read only when the preferred one is unset.
	if _, err := FromEnv(func(k string) (string, bool) {
		read[k] = true
		return MapLookup(map[string]string{"MESHD_XDS_ADDRESS": "unix:///x"})(k)
	}); err == nil {
		t.Fatal("FromEnv accepted an environment without a resource")
	}
	documented := map[string]bool{}
	for _, v := range Variables {
		if documented[v.Name] {
			t.Errorf("%s documented twice", v.Name)
		}
		documented[v.Name] = true
		if v.Group == "" || v.Default == "" || v.Allowed == "" || v.Meaning == "" {
			t.Errorf("%s: incomplete documentation %+v", v.Name, v)
		}
	}
	var missing, extra []string
	for k := range read {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !read[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("read but not in Variables: %v; in Variables but never read: %v", missing, extra)
	}
}
