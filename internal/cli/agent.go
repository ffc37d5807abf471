package cli

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshd/meshd/internal/admin"
	"github.com/meshd/meshd/internal/agent"
	"github.com/meshd/meshd/internal/envoyadmin"
	"github.com/meshd/meshd/internal/run"
	"github.com/meshd/meshd/metrics"
	"github.com/meshd/meshd/tracing"
)

// DefaultAgentMetricsListen is `meshd agent`'s own metrics and health
// endpoint (the App Mesh agent API itself is on APPNET_AGENT_HTTP_PORT,
// 9902).
const DefaultAgentMetricsListen = "127.0.0.1:9905"

// DefaultEnvoyPath is where the App Mesh Envoy image has Envoy.
const DefaultEnvoyPath = "/usr/bin/envoy"

func agentCommand() *Command {
	return &Command{
		Name:    "agent",
		Summary: "Run Envoy the App Mesh way: render its bootstrap, supervise it and serve the App Mesh agent API.",
		Usage:   "[-- extra Envoy arguments]",
		Long: `Replaces the App Mesh / ECS Service Connect agent (/usr/bin/agent). Reads the
agent's environment variables (APPNET_*, ENVOY_LOG_LEVEL, LISTENER_DRAIN_WAIT_TIME_S, …;
see docs/configuration.md), renders Envoy's bootstrap from the App Mesh
variables as 'meshd bootstrap' does (unless ENVOY_CONFIG_FILE names a
non-empty file), and runs Envoy with App Mesh's command line plus the
arguments after --. Envoy is restarted after any exit, with backoff, up to
APPNET_ENVOY_RESTART_COUNT times; then the agent exits 1. On SIGTERM or
SIGINT it drains Envoy's listeners, waits LISTENER_DRAIN_WAIT_TIME_S, and
stops Envoy (SIGTERM, then SIGKILL after 3 s).

The agent API (/status, /drain_listeners, /enableLogging, /stats/prometheus)
is served on APPNET_AGENT_HTTP_BIND_ADDRESS:APPNET_AGENT_HTTP_PORT (default
127.0.0.1:9902) or, with APPNET_AGENT_ADMIN_MODE=uds, on
APPNET_AGENT_ADMIN_UDS_PATH.

With --check-ready it runs no Envoy: it asks a running agent's /status
every APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S seconds and exits 0 once
it is HEALTHY, or 1 after --timeout (a container health check).`,
		Setup: func(fs *flag.FlagSet) Action {
			var (
				envoyPath, metrics string
				checkReady         bool
				timeout            time.Duration
				ex                 exportFlags
			)
			fs.StringVar(&envoyPath, "envoy-path", "", "Envoy `binary` (default "+DefaultEnvoyPath+", else envoy from PATH)")
			fs.BoolVar(&checkReady, "check-ready", false, "exit 0 once the agent's /status is HEALTHY, 1 if it is not within --timeout; runs no Envoy")
			fs.DurationVar(&timeout, "timeout", 0, "how long --check-ready waits for HEALTHY (default APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S, 180s)")
			fs.StringVar(&metrics, "metrics-listen", DefaultAgentMetricsListen, "`addr`ess for meshd's own /metrics, /stats/prometheus (meshd's, Envoy's and envoy_appmesh_* metrics), /healthz and /readyz (ready while Envoy is HEALTHY; empty disables)")
			ex.register(fs, false)
			return func(ctx context.Context, env *Env, args []string) error {
				cfg, warnings, err := agent.LoadConfig(os.LookupEnv)
				for _, w := range warnings {
					env.Log.Warn(w)
				}
				if err != nil {
					return inputError{err}
				}
				if checkReady {
					if len(args) > 0 {
						return usagef("--check-ready takes no Envoy arguments, got %q", args)
					}
					if timeout <= 0 {
						timeout = cfg.ReadinessTimeout
					}
					if err := agent.CheckReady(ctx, cfg.SelfAddress(), cfg.ReadinessInterval, timeout); err != nil {
						return err
					}
					fmt.Fprintln(env.Stdout, agent.Healthy)
					return nil
				}
				path, err := findEnvoy(envoyPath)
				if err != nil {
					return err
				}
				ex.listen = metrics
				return runAgent(ctx, env, cfg, path, args, &ex)
			}
		},
	}
}

// findEnvoy resolves --envoy-path: as given, else /usr/bin/envoy, else
// envoy from PATH.
func findEnvoy(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if _, err := os.Stat(DefaultEnvoyPath); err == nil {
		return DefaultEnvoyPath, nil
	}
	p, err := exec.LookPath("envoy")
	if err != nil {
		return "", usagef("no Envoy at %s or on PATH; set --envoy-path", DefaultEnvoyPath)
	}
	return p, nil
}

func runAgent(ctx context.Context, env *Env, cfg agent.Config, envoyPath string, extra []string, ex *exportFlags) error {
	boot, err := agent.PrepareBootstrap(cfg, os.LookupEnv, os.ReadFile, "")
	if err != nil {
		return wrapInput(err)
	}
	defer boot.Close()
	for _, w := range boot.Warnings {
		env.Log.Warn(w)
	}
	env.Log.Info("envoy bootstrap", "path", boot.Path, "rendered", boot.Rendered)

	envoyAdmin, err := envoyadmin.New(cfg.EnvoyAdmin)
	if err != nil {
		return err
	}
	defer envoyAdmin.CloseIdle()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := agent.NewMetrics(reg)
	proc := &agent.Process{}

	health, err := agent.NewHealth(agent.HealthConfig{Admin: envoyAdmin, Process: proc, Config: cfg, Log: env.Log, Metrics: m})
	if err != nil {
		return err
	}
	mesh, kind, name := identityFromEnv(os.LookupEnv)
	stats, err := metrics.NewCollector(metrics.Options{Admin: envoyAdmin, Log: env.Log, Registry: reg, MaxAge: ex.maxAge, Mesh: mesh, Kind: kind, Name: name})
	if err != nil {
		return err
	}
	if ex.dogstatsd == "" {
		ex.dogstatsd = appMeshDogStatsD(os.LookupEnv)
	}
	var snaps *agent.Snapshotter
	if cfg.StatsSnapshot {
		if snaps, err = agent.NewSnapshotter(agent.SnapshotterConfig{Stats: stats, Process: proc, Log: env.Log}); err != nil {
			return err
		}
	}
	api, err := agent.NewServer(agent.ServerConfig{
		Config: cfg, Admin: envoyAdmin, Process: proc, Health: health, Stats: stats,
		Snapshots: snaps, Log: env.Log, Metrics: m,
	})
	if err != nil {
		return err
	}
	envoy, err := agent.NewEnvoy(agent.EnvoyConfig{
		Path: envoyPath, Bootstrap: boot.Path, Config: cfg, ExtraArgs: extra,
		Admin: envoyAdmin, Process: proc, Log: env.Log, Metrics: m,
	})
	if err != nil {
		return err
	}

	// Envoy is the last stage, so it stops first: /status and the API stay
	// up while it drains.
	services := []run.Component{
		{Name: "health", Run: health.Run},
		{Name: "agent-api", Run: api.Run},
	}
	if snaps != nil {
		services = append(services, run.Component{Name: "stats-snapshot", Run: snaps.Run})
	}
	endpoint, pushers, err := ex.components(env, stats, reg, []admin.Check{{Name: "envoy", Ready: health.Ready}}, nil)
	if err != nil {
		return err
	}
	services = append(services, pushers...)
	stages := [][]run.Component{endpoint, services, {{Name: "envoy", Run: envoy.Run}}}
	sup := &run.Supervisor{Log: env.Log, Stages: stages, StopTimeout: cfg.DrainWait + agent.DefaultStopGrace + 5*time.Second}
	return sup.Run(ctx)
}

// appMeshDogStatsD is where App Mesh's Envoy sent envoy.appmesh.* when a
// task had both ENABLE_ENVOY_DOG_STATSD=1 and
// APPMESH_METRIC_EXTENSION_VERSION=1: Envoy's own DogStatsD sink address.
// Stock Envoy's sink has no extension metrics, so the agent pushes them
// there itself and existing task definitions keep their metrics.
func appMeshDogStatsD(lookup func(string) (string, bool)) string {
	c, err := tracing.FromEnv(lookup)
	if err != nil || !c.DogStatsD || !c.MetricExt {
		return ""
	}
	if c.StatsdSocket != "" {
		return "unixgram://" + c.StatsdSocket
	}
	return net.JoinHostPort(c.StatsdAddress, fmt.Sprint(c.StatsdPort))
}
