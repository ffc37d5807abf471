package agent

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/tracing"
)

func defaults() Config {
	return Config{
		AdminMode: AdminTCP, BindAddress: "127.0.0.1", HTTPPort: 9902, AdminUDSPath: DefaultAdminUDSPath,
		RestartCount: 3, PIDPollInterval: 100 * time.Millisecond, HCPollInterval: 10 * time.Second,
		DisconnectedTimeout: 604800 * time.Second, DrainWait: 20 * time.Second, LoggingReset: 300 * time.Second,
		ReadinessInterval: 5 * time.Second, ReadinessTimeout: 180 * time.Second,
		EnvoyLogLevel: "info", DisableHotRestart: true, SkipDeprecatedLogs: true,
		EnvoyAdmin: "127.0.0.1:9901",
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		euid     int // 1000 unless set
		want     func(c *Config)
		warnings []string // substrings, in order
		errs     []string // substrings of the error, one per problem
	}{
		{name: "defaults", env: nil, want: func(*Config) {}},
		{name: "empty values are unset", env: map[string]string{"APPNET_AGENT_HTTP_PORT": " ", "ENVOY_LOG_LEVEL": ""}, want: func(*Config) {}},
		{name: "uds mode any case", env: map[string]string{"APPNET_AGENT_ADMIN_MODE": "UDS", "APPNET_AGENT_ADMIN_UDS_PATH": "/run/a.sock"},
			want: func(c *Config) { c.AdminMode = AdminUDS; c.AdminUDSPath = "/run/a.sock" }},
		{name: "bad mode", env: map[string]string{"APPNET_AGENT_ADMIN_MODE": "http"},
			errs: []string{`APPNET_AGENT_ADMIN_MODE="http": must be one of tcp, uds`}},
		{name: "relative uds path", env: map[string]string{"APPNET_AGENT_ADMIN_UDS_PATH": "a.sock"},
			errs: []string{`APPNET_AGENT_ADMIN_UDS_PATH="a.sock": must be an absolute path`}},
		{name: "port", env: map[string]string{"APPNET_AGENT_HTTP_PORT": "19902"}, want: func(c *Config) { c.HTTPPort = 19902 }},
		{name: "port not a number", env: map[string]string{"APPNET_AGENT_HTTP_PORT": "99o2"},
			errs: []string{`APPNET_AGENT_HTTP_PORT="99o2": must be an integer (1–65535)`}},
		{name: "port too big", env: map[string]string{"APPNET_AGENT_HTTP_PORT": "70000"}, want: func(*Config) {},
			warnings: []string{"APPNET_AGENT_HTTP_PORT=70000: out of range 1–65535; using 9902"}},
		{name: "port overflows", env: map[string]string{"APPNET_AGENT_HTTP_PORT": "99999999999999999999"}, want: func(*Config) {},
			warnings: []string{"APPNET_AGENT_HTTP_PORT=99999999999999999999: out of range"}},
		{name: "privileged port as user", env: map[string]string{"APPNET_AGENT_HTTP_PORT": "80"}, want: func(*Config) {},
			warnings: []string{"APPNET_AGENT_HTTP_PORT=80: ports below 1024 need root; using 9902"}},
		{name: "privileged port as root", euid: -1, env: map[string]string{"APPNET_AGENT_HTTP_PORT": "80"}, want: func(c *Config) { c.HTTPPort = 80 }},
		{name: "bind [::]", env: map[string]string{"APPNET_AGENT_HTTP_BIND_ADDRESS": "[::]"}, want: func(c *Config) { c.BindAddress = "::" }},
		{name: "bind 0.0.0.0", env: map[string]string{"APPNET_AGENT_HTTP_BIND_ADDRESS": "0.0.0.0"}, want: func(c *Config) { c.BindAddress = "0.0.0.0" }},
		{name: "bind name", env: map[string]string{"APPNET_AGENT_HTTP_BIND_ADDRESS": "localhost"},
			errs: []string{`APPNET_AGENT_HTTP_BIND_ADDRESS="localhost": must be an IP address`}},
		{name: "restart count", env: map[string]string{"APPNET_ENVOY_RESTART_COUNT": "0"}, want: func(c *Config) { c.RestartCount = 0 }},
		{name: "restart count max", env: map[string]string{"APPNET_ENVOY_RESTART_COUNT": "11"}, want: func(c *Config) { c.RestartCount = 10 },
			warnings: []string{"APPNET_ENVOY_RESTART_COUNT=11: at most 10; using 10"}},
		{name: "restart count negative", env: map[string]string{"APPNET_ENVOY_RESTART_COUNT": "-1"}, want: func(*Config) {},
			warnings: []string{"APPNET_ENVOY_RESTART_COUNT=-1: must be 0–10; using 3"}},
		{name: "restart count word", env: map[string]string{"APPNET_ENVOY_RESTART_COUNT": "three"},
			errs: []string{`APPNET_ENVOY_RESTART_COUNT="three": must be an integer (0–10)`}},
		{name: "pid poll", env: map[string]string{"PID_POLL_INTERVAL_MS": "1000"}, want: func(c *Config) { c.PIDPollInterval = time.Second }},
		{name: "pid poll low", env: map[string]string{"PID_POLL_INTERVAL_MS": "99"}, want: func(*Config) {},
			warnings: []string{"PID_POLL_INTERVAL_MS=99: out of range 100–1000ms; using 100ms"}},
		{name: "hc poll", env: map[string]string{"HC_POLL_INTERVAL_MS": "2000"}, want: func(c *Config) { c.HCPollInterval = 2 * time.Second }},
		{name: "hc poll high", env: map[string]string{"HC_POLL_INTERVAL_MS": "30001"}, want: func(*Config) {},
			warnings: []string{"HC_POLL_INTERVAL_MS=30001: out of range 2000–30000ms; using 10000ms"}},
		{name: "hc poll from readiness interval", env: map[string]string{"APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S": "3"},
			want: func(c *Config) { c.HCPollInterval = 3 * time.Second; c.ReadinessInterval = 3 * time.Second }},
		{name: "hc poll wins over readiness interval", env: map[string]string{"HC_POLL_INTERVAL_MS": "4000", "APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S": "3"},
			want: func(c *Config) { c.HCPollInterval = 4 * time.Second; c.ReadinessInterval = 3 * time.Second }},
		{name: "readiness interval too short for hc", env: map[string]string{"APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S": "1"},
			want:     func(c *Config) { c.ReadinessInterval = time.Second },
			warnings: []string{"APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S=1 as the health poll period"}},
		{name: "readiness timeout", env: map[string]string{"APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S": "0"}, want: func(*Config) {},
			warnings: []string{"APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S=0: out of range"}},
		{name: "disconnected timeout", env: map[string]string{"HC_DISCONNECTED_TIMEOUT_S": "3600"}, want: func(c *Config) { c.DisconnectedTimeout = time.Hour }},
		{name: "disconnected timeout low", env: map[string]string{"HC_DISCONNECTED_TIMEOUT_S": "60"}, want: func(*Config) {},
			warnings: []string{"HC_DISCONNECTED_TIMEOUT_S=60: out of range 3600–604800s; using 604800s"}},
		{name: "drain", env: map[string]string{"LISTENER_DRAIN_WAIT_TIME_S": "5"}, want: func(c *Config) { c.DrainWait = 5 * time.Second }},
		{name: "drain high", env: map[string]string{"LISTENER_DRAIN_WAIT_TIME_S": "111"}, want: func(*Config) {},
			warnings: []string{"LISTENER_DRAIN_WAIT_TIME_S=111: out of range 5–110s; using 20s"}},
		{name: "drain float", env: map[string]string{"LISTENER_DRAIN_WAIT_TIME_S": "5.5"},
			errs: []string{`LISTENER_DRAIN_WAIT_TIME_S="5.5": must be an integer (5–110s)`}},
		{name: "logging reset", env: map[string]string{"APPNET_AGENT_LOGGING_RESET_TIMEOUT": "60"}, want: func(c *Config) { c.LoggingReset = time.Minute }},
		{name: "snapshot", env: map[string]string{"ENABLE_STATS_SNAPSHOT": "true"}, want: func(c *Config) { c.StatsSnapshot = true }},
		{name: "snapshot bad", env: map[string]string{"ENABLE_STATS_SNAPSHOT": "yes"},
			errs: []string{`ENABLE_STATS_SNAPSHOT="yes": must be a boolean`}},
		{name: "log level any case", env: map[string]string{"ENVOY_LOG_LEVEL": "Critical"}, want: func(c *Config) { c.EnvoyLogLevel = "critical" }},
		{name: "log level bad", env: map[string]string{"ENVOY_LOG_LEVEL": "verbose"},
			errs: []string{`ENVOY_LOG_LEVEL="verbose": must be one of trace, debug, info, warning, warn, error, critical, off`}},
		{name: "concurrency", env: map[string]string{"ENVOY_CONCURRENCY": "2"}, want: func(c *Config) { c.Concurrency = 2 }},
		{name: "concurrency -1 omits", env: map[string]string{"ENVOY_CONCURRENCY": "-1"}, want: func(*Config) {}},
		{name: "flags off", env: map[string]string{"DISABLE_HOT_RESTART": "false", "ENVOY_SKIP_DEPRECATED_LOGS": "0"},
			want: func(c *Config) { c.DisableHotRestart = false; c.SkipDeprecatedLogs = false }},
		{name: "config file", env: map[string]string{"ENVOY_CONFIG_FILE": "/etc/envoy.yaml"}, want: func(c *Config) { c.EnvoyConfigFile = "/etc/envoy.yaml" }},
		{name: "envoy admin uds", env: map[string]string{"ENVOY_ADMIN_MODE": "uds"}, want: func(c *Config) { c.EnvoyAdmin = "unix:///tmp/envoy_admin.sock" }},
		{name: "envoy admin port", env: map[string]string{"ENVOY_ADMIN_ACCESS_PORT": "19901"}, want: func(c *Config) { c.EnvoyAdmin = "127.0.0.1:19901" }},
		{name: "envoy admin port bad", env: map[string]string{"ENVOY_ADMIN_ACCESS_PORT": "-1"},
			errs: []string{`ENVOY_ADMIN_ACCESS_PORT="-1": must be a port number from 1 to 65535`}},
		{name: "relay off", env: map[string]string{"APPNET_ENABLE_RELAY_MODE_FOR_XDS": "false"}, want: func(*Config) {}},
		{name: "relay on", env: map[string]string{"APPNET_ENABLE_RELAY_MODE_FOR_XDS": "1"},
			errs: []string{"APPNET_ENABLE_RELAY_MODE_FOR_XDS=\"true\": relay mode is not supported"}},
		{name: "log files", env: map[string]string{"APPNET_ENVOY_LOG_DESTINATION": "/var/log"},
			errs: []string{`APPNET_ENVOY_LOG_DESTINATION="/var/log": log files are not supported`}},
		{name: "every problem at once", env: map[string]string{"ENVOY_LOG_LEVEL": "loud", "PID_POLL_INTERVAL_MS": "x", "APPNET_AGENT_MAX_RETENTION_COUNT": "5"},
			errs: []string{"PID_POLL_INTERVAL_MS", "ENVOY_LOG_LEVEL", "APPNET_AGENT_MAX_RETENTION_COUNT"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			euid := 1000
			if tc.euid == -1 {
				euid = 0
			}
			got, warnings, err := loadConfig(tracing.MapLookup(tc.env), euid)
			if len(tc.errs) > 0 {
				var ie *tracing.InputError
				if !errors.As(err, &ie) {
					t.Fatalf("err = %v, want an InputError", err)
				}
				if len(ie.Problems) != len(tc.errs) {
					t.Fatalf("problems:\n%v\nwant %d", err, len(tc.errs))
				}
				for i, want := range tc.errs {
					if !strings.Contains(ie.Problems[i].Error(), want) {
						t.Errorf("problem %d = %q, want it to contain %q", i, ie.Problems[i], want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config:\n got %+v\nwant %+v", got, want)
			}
			if len(warnings) != len(tc.warnings) {
				t.Fatalf("warnings = %q, want %q", warnings, tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], w)
				}
			}
		})
	}
}

// TestVariablesDocumented checks that Variables lists exactly the variables
// LoadConfig reads.
func TestVariablesDocumented(t *testing.T) {
	read := map[string]bool{}
	_, _, _ = LoadConfig(func(name string) (string, bool) { read[name] = true; return "", false })
	documented := map[string]bool{}
	for _, v := range Variables {
		for _, n := range strings.Split(v.Name, ", ") {
			documented[n] = true
		}
	}
	for n := range read {
		if !documented[n] {
			t.Errorf("%s is read but not in Variables", n)
		}
	}
	for n := range documented {
		if !read[n] {
			t.Errorf("%s is in Variables but never read", n)
		}
	}
}

var fuzzVars = []string{
	"APPNET_AGENT_ADMIN_MODE", "APPNET_AGENT_HTTP_PORT", "APPNET_AGENT_HTTP_BIND_ADDRESS", "APPNET_ENVOY_RESTART_COUNT",
	"PID_POLL_INTERVAL_MS", "HC_POLL_INTERVAL_MS", "APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S", "LISTENER_DRAIN_WAIT_TIME_S",
	"ENVOY_LOG_LEVEL", "ENVOY_CONCURRENCY", "ENABLE_STATS_SNAPSHOT", "ENVOY_ADMIN_ACCESS_PORT",
}

// FuzzLoadConfig: any environment either loads into a config within App
// Mesh's bounds or fails with problems that each name a variable.
func FuzzLoadConfig(f *testing.F) {
	f.Add(uint8(0), "uds")
	f.Add(uint8(1), "65536")
	f.Add(uint8(3), "-9223372036854775809")
	f.Add(uint8(8), "WARNING")
	f.Add(uint8(2), "[fe80::1%eth0]")
	f.Fuzz(func(t *testing.T, which uint8, value string) {
		env := map[string]string{fuzzVars[int(which)%len(fuzzVars)]: value}
		c, _, err := loadConfig(tracing.MapLookup(env), 1000)
		if err != nil {
			var ie *tracing.InputError
			if !errors.As(err, &ie) || len(ie.Problems) == 0 {
				t.Fatalf("error is not an InputError: %v", err)
			}
			for _, p := range ie.Problems {
				var ve *tracing.VarError
				if !errors.As(p, &ve) || ve.Name == "" {
					t.Fatalf("problem does not name a variable: %v", p)
				}
			}
			return
		}
		switch {
		case c.HTTPPort < 1024 || c.HTTPPort > 65535,
			c.RestartCount < 0 || c.RestartCount > MaxRestartCount,
			c.PIDPollInterval < 100*time.Millisecond || c.PIDPollInterval > time.Second,
			c.HCPollInterval < 2*time.Second || c.HCPollInterval > 30*time.Second,
			c.DrainWait < 5*time.Second || c.DrainWait > 110*time.Second,
			c.ReadinessInterval <= 0, c.ReadinessTimeout <= 0, c.LoggingReset <= 0,
			c.Concurrency < 0,
			!slices.Contains(LogLevels, c.EnvoyLogLevel),
			c.AdminMode != AdminTCP && c.AdminMode != AdminUDS:
			t.Fatalf("config out of bounds: %+v", c)
		}
	})
}
