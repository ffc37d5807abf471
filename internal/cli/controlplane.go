package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshd/meshd/controlplane"
	"github.com/meshd/meshd/internal/admin"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/run"
	"github.com/meshd/meshd/sds"
)

// DefaultXDSListen is where the control plane serves ADS by default.
const DefaultXDSListen = "127.0.0.1:15010"

// DefaultControlPlaneMetricsListen is the control plane's own metrics,
// health and /debug/nodes endpoint.
const DefaultControlPlaneMetricsListen = "127.0.0.1:9904"

func controlplaneCommand() *Command {
	return &Command{
		Name:    "controlplane",
		Summary: "Serve App Mesh definitions (CLI JSON, CloudFormation, Kubernetes CRDs) to Envoys and gRPC clients over ADS.",
		Long: `Loads every *.json, *.yaml and *.yml file under --config (as 'meshd validate'
does), translates it into Envoy listeners, routes, clusters and endpoints with
App Mesh's names and defaults, and serves them over ADS (state of the world
and delta) to each node by the id it presents: mesh/<mesh>/virtualNode/<name>,
mesh/<mesh>/virtualGateway/<name> or the full ARN. Proxyless gRPC clients
(xds:///<virtual service>) presenting a virtual node's id get API listeners.
Files are watched: a valid change is served within a second, an invalid one
is logged, counted (meshd_controlplane_config_loads_total{result="rejected"})
and ignored, and the last good configuration stays in force. The first load
must be valid. /debug/nodes on the metrics address shows every node, the
versions served and acknowledged, and the last rejection (NACK).`,
		Setup: func(fs *flag.FlagSet) Action {
			var (
				dir, listen, metrics string
				opt                  load.Options
				noRetry              bool
				interval             time.Duration
			)
			params := paramFlag{}
			fs.StringVar(&dir, "config", "", "`dir`ectory of App Mesh definitions (required)")
			fs.StringVar(&listen, "xds-listen", DefaultXDSListen, "`addr`ess to serve ADS on: host:port or unix:///path (socket 0660)")
			fs.StringVar(&metrics, "metrics-listen", DefaultControlPlaneMetricsListen, "`addr`ess for meshd's own /metrics, /healthz, /readyz and /debug/nodes (empty disables)")
			fs.StringVar(&opt.DefaultMesh, "default-mesh", "", "mesh `name` for resources whose file names none, when the files do not define exactly one mesh")
			fs.Var(params, "cfn-parameter", "CloudFormation parameter `NAME=VALUE` (repeatable; wins over the parameter's Default)")
			fs.BoolVar(&noRetry, "no-default-retry-policy", false, "do not add App Mesh's default retry policy (2 retries on 503, connect failure, reset, gRPC UNAVAILABLE) to routes without one")
			fs.DurationVar(&interval, "poll-interval", 250*time.Millisecond, "how often the configuration directory is checked for changes")
			var caSvc caServiceFlags
			caSvc.register(fs, "ca-", "")
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if dir == "" {
					return usagef("--config is required")
				}
				opt.Parameters = params
				first, err := controlplane.LoadDir(dir, opt)
				if err != nil {
					return err
				}
				if first.Config == nil {
					for _, p := range first.Problems {
						fmt.Fprintln(env.Stderr, p.Error())
					}
					return fmt.Errorf("%s has %d problems; fix them (meshd validate %s) before serving", dir, len(first.Problems), dir)
				}
				ln, err := listenXDS(listen)
				if err != nil {
					return err
				}
				reg := prometheus.NewRegistry()
				reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
				srv := controlplane.New(controlplane.Config{Log: env.Log, Registry: reg})
				src := &controlplane.FileSource{Dir: dir, Options: opt, Interval: interval, Log: env.Log}
				stages := [][]run.Component{
					nil,
					{{Name: "config", Run: func(ctx context.Context) error { return src.Run(ctx, srv.Apply) }}},
					{{Name: "ads", Run: func(ctx context.Context) error { return srv.Serve(ctx, ln) }}},
				}
				checks := []admin.Check{{Name: "configuration", Ready: func() bool { return closed(srv.Ready()) }}}
				if caSvc.listen != "" {
					ca, svc, caSrv, err := caSvc.components(env, reg)
					if err != nil {
						return err
					}
					stages[1] = append(stages[1], ca...)
					stages[2] = append(stages[2], svc...)
					checks = append(checks, admin.Check{Name: "ca-service", Ready: caSrv.Ready})
				}
				if metrics != "" {
					stages[0] = []run.Component{{Name: "metrics", Run: (&admin.Server{
						Addr: metrics, Gatherer: reg, Log: env.Log, Checks: checks,
						Handlers: map[string]http.Handler{"GET /debug/nodes": nodesHandler(srv)},
					}).Run}}
				}
				sup := &run.Supervisor{Log: env.Log, Stages: stages, StopTimeout: 10 * time.Second}
				return sup.Run(ctx)
			}
		},
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// listenXDS listens on host:port or unix:///path.
func listenXDS(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if !strings.HasPrefix(path, "/") {
			return nil, usagef("--xds-listen %q: want unix:///absolute/path", addr)
		}
		return sds.ListenUnix(path, -1)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, usagef("--xds-listen %q: want host:port or unix:///path: %v", addr, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ADS listener (--xds-listen=%s): %w", addr, err)
	}
	return ln, nil
}

// nodesHandler serves /debug/nodes: JSON, or a table for ?format=text.
func nodesHandler(srv *controlplane.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nodes := srv.Nodes()
		if r.URL.Query().Get("format") == "text" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "%-50s %-6s %-7s %-7s %s\n", "NODE", "FLAVOR", "STREAMS", "IN-SYNC", "LAST NACK")
			for _, n := range nodes {
				last := "-"
				if n.LastNACK != nil {
					last = fmt.Sprintf("%s %s: %s", n.LastNACK.At.Format(time.RFC3339), n.LastNACK.Type, n.LastNACK.Error)
				}
				fmt.Fprintf(w, "%-50s %-6s %-7d %-7t %s\n", n.Node, n.Flavor, n.Streams, n.InSync, last)
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(nodes) // the client went away
	})
}
