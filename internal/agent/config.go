package agent

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/internal/envvar"
	"github.com/meshd/meshd/tracing"
)

// AdminMode is how the agent's admin API listens.
type AdminMode string

// Admin modes (APPNET_AGENT_ADMIN_MODE).
const (
	AdminTCP AdminMode = "tcp"
	AdminUDS AdminMode = "uds"
)

// Defaults and bounds, App Mesh's values.
const (
	DefaultHTTPPort            = 9902
	DefaultBindAddress         = "127.0.0.1"
	DefaultAdminUDSPath        = "/var/run/ecs/appnet_admin.sock"
	DefaultRestartCount        = 3
	MaxRestartCount            = 10
	DefaultPIDPollInterval     = 100 * time.Millisecond
	DefaultHCPollInterval      = 10 * time.Second
	DefaultDisconnectedTimeout = 604800 * time.Second
	DefaultDrainWait           = 20 * time.Second
	DefaultLoggingReset        = 300 * time.Second
	DefaultReadinessInterval   = 5 * time.Second
	DefaultReadinessTimeout    = 180 * time.Second
	DefaultEnvoyLogLevel       = "info"
	DefaultEnvoyAdminPort      = 9901
)

// LogLevels are Envoy's log levels, accepted by ENVOY_LOG_LEVEL and
// /enableLogging.
var LogLevels = []string{"trace", "debug", "info", "warning", "warn", "error", "critical", "off"}

// Config is the agent's configuration, read from the environment by
// LoadConfig.
type Config struct {
	// AdminMode, BindAddress, HTTPPort and AdminUDSPath place the admin API.
	AdminMode    AdminMode
	BindAddress  string // an IP literal, without brackets
	HTTPPort     int
	AdminUDSPath string

	// RestartCount is how many times Envoy is restarted before the agent
	// gives up (and exits non-zero).
	RestartCount int
	// PIDPollInterval is how long a started Envoy must stay up before its
	// pid is published and the health checker poked (see Envoy).
	PIDPollInterval time.Duration
	// HCPollInterval is the health poll period (plus 10–50 ms of jitter).
	HCPollInterval time.Duration
	// DisconnectedTimeout is how long Envoy may be disconnected from its
	// control plane and still be HEALTHY.
	DisconnectedTimeout time.Duration
	// DrainWait is Envoy's --drain-time-s and how long the agent waits
	// after draining before it stops Envoy.
	DrainWait time.Duration
	// LoggingReset is when a temporary /enableLogging level reverts.
	LoggingReset time.Duration
	// ReadinessInterval and ReadinessTimeout drive --check-ready.
	ReadinessInterval time.Duration
	ReadinessTimeout  time.Duration
	// StatsSnapshot enables the delta snapshotter (?delta).
	StatsSnapshot bool

	// EnvoyLogLevel is Envoy's -l and the level /enableLogging resets to.
	EnvoyLogLevel string
	// EnvoyConfigFile, if it names a non-empty file, is Envoy's bootstrap
	// as-is; otherwise the bootstrap is rendered from the environment.
	EnvoyConfigFile string
	// Concurrency is --concurrency (0: flag omitted).
	Concurrency        int
	DisableHotRestart  bool
	SkipDeprecatedLogs bool

	// EnvoyAdmin is Envoy's admin address for envoyadmin.New: 127.0.0.1:<
	// ENVOY_ADMIN_ACCESS_PORT> or unix:///tmp/envoy_admin.sock.
	EnvoyAdmin string
}

// Listen is the admin API's address: host:port in tcp mode, the socket
// path in uds mode.
func (c Config) Listen() string {
	if c.AdminMode == AdminUDS {
		return c.AdminUDSPath
	}
	return net.JoinHostPort(c.BindAddress, strconv.Itoa(c.HTTPPort))
}

// Variable documents one environment variable the agent reads.
type Variable struct {
	Name, Default, Allowed, Meaning string
}

// Variables lists every variable LoadConfig reads, in documentation order
// (docs/configuration.md's agent table is generated from it).
var Variables = []Variable{
	{"APPNET_AGENT_ADMIN_MODE", "tcp", "tcp or uds (any case)", "Where the agent API listens. App Mesh served no API when unset; meshd always serves it (tcp when unset)."},
	{"APPNET_AGENT_HTTP_PORT", "9902", "1–65535 (≥ 1024 unless root); out of range: 9902 and a warning", "Agent API port in tcp mode."},
	{"APPNET_AGENT_HTTP_BIND_ADDRESS", "127.0.0.1", "an IP address, brackets optional ([::], 0.0.0.0)", "Agent API address in tcp mode. App Mesh's default was [::]; meshd's is loopback (the API can drain and re-level Envoy), so set [::] to reach it from outside the task."},
	{"APPNET_AGENT_ADMIN_UDS_PATH", "/var/run/ecs/appnet_admin.sock", "absolute path", "Agent API socket in uds mode (mode 0660; a stale socket is replaced, any other file is an error)."},
	{"APPNET_ENVOY_RESTART_COUNT", "3", "0–10; negative: 3, above 10: 10, with a warning", "How many times Envoy is restarted after it exits (for any reason) before the agent gives up and exits non-zero. Restarts back off from 250 ms, doubling, up to 5 s."},
	{"PID_POLL_INTERVAL_MS", "100", "100–1000; out of range: 100 and a warning", "App Mesh polled waitpid this often. meshd sees an exit at once; a started Envoy must stay up this long before its pid is published to /status and the health checker polls it."},
	{"HC_POLL_INTERVAL_MS", "10000", "2000–30000; out of range: 10000 and a warning", "Health poll period (plus 10–50 ms jitter); Envoy is also polled right after it starts or exits."},
	{"APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S", "5", "1 or more; else 5 and a warning", "Poll period of meshd agent --check-ready, and the health poll period (×1000 ms, same range) when HC_POLL_INTERVAL_MS is unset."},
	{"APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S", "180", "1 or more; else 180 and a warning", "How long meshd agent --check-ready waits for HEALTHY (unless --timeout is given)."},
	{"HC_DISCONNECTED_TIMEOUT_S", "604800", "3600–604800; out of range: 604800 and a warning", "How long a LIVE Envoy may be disconnected from its control plane and still be HEALTHY."},
	{"LISTENER_DRAIN_WAIT_TIME_S", "20", "5–110; out of range: 20 and a warning", "Envoy's --drain-time-s, and how long the agent waits after POST /drain_listeners?graceful before it stops Envoy on SIGTERM (then SIGTERM, 3 s, SIGKILL)."},
	{"APPNET_AGENT_LOGGING_RESET_TIMEOUT", "300", "seconds, 1 or more; else 300 and a warning", "When a level set with /enableLogging (without permanent=true) reverts to ENVOY_LOG_LEVEL."},
	{"ENABLE_STATS_SNAPSHOT", "false", "boolean", "Take the metrics-extension families every minute so /stats/prometheus?delta can serve per-minute deltas."},
	{"ENVOY_LOG_LEVEL", "info", strings.Join(LogLevels, ", ") + " (any case)", "Envoy's -l, and the baseline /enableLogging resets to."},
	{"ENVOY_CONFIG_FILE", "(rendered)", "path", "A non-empty file here is Envoy's bootstrap as-is; otherwise the bootstrap is rendered from the environment (as meshd bootstrap does) to a private 0600 file."},
	{"ENVOY_CONCURRENCY", "(Envoy's default)", "integer; ≤ 0 omits the flag", "Envoy's --concurrency."},
	{"DISABLE_HOT_RESTART", "true", "boolean", "Pass --disable-hot-restart."},
	{"ENVOY_SKIP_DEPRECATED_LOGS", "true", "boolean", "Pass --skip-deprecated-logs."},
	{"ENVOY_ADMIN_MODE", "tcp", "tcp or uds", "Where the agent finds Envoy's admin interface: 127.0.0.1:ENVOY_ADMIN_ACCESS_PORT or /tmp/envoy_admin.sock (the rendered bootstrap puts it there)."},
	{"ENVOY_ADMIN_ACCESS_PORT", "9901", "1–65535", "Envoy's admin port in tcp mode."},
	{"APPNET_ENABLE_RELAY_MODE_FOR_XDS", "false", "false (true is not supported)", "App Mesh's xDS relay mode; meshd's control plane replaces it."},
	{"APPNET_ENVOY_LOG_DESTINATION, APPNET_ENVOY_LOG_NAME, APPNET_AGENT_MAX_LOG_FILE_SIZE, APPNET_AGENT_MAX_RETENTION_COUNT", "(unset)", "must be unset", "App Mesh's log files with copy-truncate rotation are not supported: Envoy and the agent write to standard output and error, which the container runtime collects."},
}

var unsupportedLogVars = []string{"APPNET_ENVOY_LOG_DESTINATION", "APPNET_ENVOY_LOG_NAME", "APPNET_AGENT_MAX_LOG_FILE_SIZE", "APPNET_AGENT_MAX_RETENTION_COUNT"}

// LoadConfig reads the agent's variables. A value that does not parse is an
// error (every such problem, one per line, each naming the variable and
// what is allowed); a number outside App Mesh's range gets App Mesh's
// fallback and a warning. An empty value counts as unset.
func LoadConfig(lookup func(string) (string, bool)) (Config, []string, error) {
	return loadConfig(lookup, os.Geteuid())
}

func loadConfig(lookup func(string) (string, bool), euid int) (Config, []string, error) {
	r := &envReader{envvar.Reader{Lookup: lookup}}
	c := Config{}

	c.AdminMode = AdminMode(r.OneOf("APPNET_AGENT_ADMIN_MODE", string(AdminTCP), string(AdminTCP), string(AdminUDS)))
	c.HTTPPort = r.intIn("APPNET_AGENT_HTTP_PORT", DefaultHTTPPort, 1, 65535, "")
	if euid != 0 && c.HTTPPort < 1024 {
		r.Warn("APPNET_AGENT_HTTP_PORT=%d: ports below 1024 need root; using %d", c.HTTPPort, DefaultHTTPPort)
		c.HTTPPort = DefaultHTTPPort
	}
	c.BindAddress = r.ip("APPNET_AGENT_HTTP_BIND_ADDRESS", DefaultBindAddress)
	c.AdminUDSPath = r.Str("APPNET_AGENT_ADMIN_UDS_PATH", DefaultAdminUDSPath)
	if !filepath.IsAbs(c.AdminUDSPath) {
		r.Fail("APPNET_AGENT_ADMIN_UDS_PATH", c.AdminUDSPath, "must be an absolute path")
	}

	c.RestartCount = DefaultRestartCount
	if v, ok := r.Get("APPNET_ENVOY_RESTART_COUNT"); ok {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange):
			r.Fail("APPNET_ENVOY_RESTART_COUNT", v, "must be an integer (0–%d)", MaxRestartCount)
		case n < 0:
			r.Warn("APPNET_ENVOY_RESTART_COUNT=%s: must be 0–%d; using %d", v, MaxRestartCount, DefaultRestartCount)
		case n > MaxRestartCount: // App Mesh: above the maximum means the maximum
			r.Warn("APPNET_ENVOY_RESTART_COUNT=%s: at most %d; using %d", v, MaxRestartCount, MaxRestartCount)
			c.RestartCount = MaxRestartCount
		default:
			c.RestartCount = n
		}
	}
	c.PIDPollInterval = time.Duration(r.intIn("PID_POLL_INTERVAL_MS", 100, 100, 1000, "ms")) * time.Millisecond

	c.ReadinessInterval = time.Duration(r.intIn("APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S", 5, 1, maxSeconds, "s")) * time.Second
	c.ReadinessTimeout = time.Duration(r.intIn("APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S", 180, 1, maxSeconds, "s")) * time.Second
	if _, ok := r.Get("HC_POLL_INTERVAL_MS"); ok {
		c.HCPollInterval = time.Duration(r.intIn("HC_POLL_INTERVAL_MS", 10000, 2000, 30000, "ms")) * time.Millisecond
	} else if _, ok := r.Get("APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S"); ok {
		c.HCPollInterval = DefaultHCPollInterval
		if ms := c.ReadinessInterval.Milliseconds(); ms >= 2000 && ms <= 30000 {
			c.HCPollInterval = c.ReadinessInterval
		} else {
			r.Warn("APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S=%d as the health poll period: must be 2–30 s; using %s", ms/1000, DefaultHCPollInterval)
		}
	} else {
		c.HCPollInterval = DefaultHCPollInterval
	}
	c.DisconnectedTimeout = time.Duration(r.intIn("HC_DISCONNECTED_TIMEOUT_S", 604800, 3600, 604800, "s")) * time.Second
	c.DrainWait = time.Duration(r.intIn("LISTENER_DRAIN_WAIT_TIME_S", 20, 5, 110, "s")) * time.Second
	c.LoggingReset = time.Duration(r.intIn("APPNET_AGENT_LOGGING_RESET_TIMEOUT", 300, 1, maxSeconds, "s")) * time.Second
	c.StatsSnapshot = r.Bool("ENABLE_STATS_SNAPSHOT", false)

	c.EnvoyLogLevel = r.OneOf("ENVOY_LOG_LEVEL", DefaultEnvoyLogLevel, LogLevels...)
	c.EnvoyConfigFile = r.Str("ENVOY_CONFIG_FILE", "")
	c.Concurrency = r.intIn("ENVOY_CONCURRENCY", 0, minInt, maxInt, "")
	if c.Concurrency < 0 {
		c.Concurrency = 0
	}
	c.DisableHotRestart = r.Bool("DISABLE_HOT_RESTART", true)
	c.SkipDeprecatedLogs = r.Bool("ENVOY_SKIP_DEPRECATED_LOGS", true)

	envoyUDS := r.OneOf("ENVOY_ADMIN_MODE", "tcp", "tcp", "uds") == "uds"
	port := int(r.Port("ENVOY_ADMIN_ACCESS_PORT", DefaultEnvoyAdminPort))
	if envoyUDS {
		c.EnvoyAdmin = "unix://" + tracing.AdminSocket
	} else {
		c.EnvoyAdmin = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}

	if r.Bool("APPNET_ENABLE_RELAY_MODE_FOR_XDS", false) {
		r.Fail("APPNET_ENABLE_RELAY_MODE_FOR_XDS", "true", "relay mode is not supported by meshd agent: point Envoy at meshd's control plane (MESHD_XDS_ADDRESS) instead")
	}
	for _, name := range unsupportedLogVars {
		if v, ok := r.Get(name); ok {
			r.Fail(name, v, "log files are not supported by meshd agent: Envoy and the agent write to standard output and error; unset it and let the container runtime collect and rotate logs")
		}
	}
	if len(r.Problems) > 0 {
		return Config{}, r.Warnings, &tracing.InputError{Problems: r.Problems}
	}
	return c, r.Warnings, nil
}

const (
	maxSeconds = 1<<31 - 1 // a bound no time.Duration overflows with
	maxInt     = 1<<31 - 1
	minInt     = -1 << 31
)

// envReader is envvar's Reader with the agent's own parsers: integers
// whose out-of-range values take App Mesh's fallback with a warning, and
// bind addresses that may be bracketed.
type envReader struct{ envvar.Reader }

// intIn parses an integer: not a number is an error; outside [lo, hi] is
// App Mesh's fallback def with a warning.
func (r *envReader) intIn(name string, def, lo, hi int, unit string) int {
	v, ok := r.Get(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			r.Warn("%s=%s: out of range %d–%d%s; using %d%s", name, v, lo, hi, unit, def, unit)
			return def
		}
		r.Fail(name, v, "must be an integer (%d–%d%s)", lo, hi, unit)
		return def
	}
	if n < int64(lo) || n > int64(hi) {
		r.Warn("%s=%d: out of range %d–%d%s; using %d%s", name, n, lo, hi, unit, def, unit)
		return def
	}
	return int(n)
}

// ip accepts an IP literal, bracketed or not ([::], ::, 0.0.0.0).
func (r *envReader) ip(name, def string) string {
	v, ok := r.Get(name)
	if !ok {
		return def
	}
	s := v
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		r.Fail(name, v, "must be an IP address such as 127.0.0.1, 0.0.0.0 or [::]")
		return def
	}
	return a.String()
}
