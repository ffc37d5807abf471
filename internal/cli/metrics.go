package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshd/meshd/internal/admin"
	"github.com/meshd/meshd/internal/envoyadmin"
	"github.com/meshd/meshd/internal/run"
	"github.com/meshd/meshd/metrics"
)

// DefaultExtensionListen is meshd's Prometheus endpoint for the extension
// (Envoy's own admin port is 9901, the agent's API 9902).
const DefaultExtensionListen = "127.0.0.1:9906"

// exportFlags are the metrics extension's outputs, shared by `meshd
// metrics` and `meshd agent`.
type exportFlags struct {
	listen, dogstatsd, emf, emfNamespace, otlp string
	interval, maxAge                           time.Duration
}

func (f *exportFlags) register(fs *flag.FlagSet, listen bool) {
	if !listen {
		f.registerPush(fs)
		return
	}
	fs.StringVar(&f.listen, "metrics-listen", DefaultExtensionListen, "`addr`ess of meshd's Prometheus endpoint: /stats/prometheus (meshd's own metrics, Envoy's exposition and envoy_appmesh_*), /metrics (meshd's own), /healthz, /readyz (Envoy reachable) (empty disables)")
	f.registerPush(fs)
}

func (f *exportFlags) registerPush(fs *flag.FlagSet) {
	fs.StringVar(&f.dogstatsd, "dogstatsd", "", "push envoy.appmesh.* to a DogStatsD `addr`ess: host:port (UDP), unix:///path or unixgram:///path (empty disables)")
	fs.StringVar(&f.emf, "emf", "", "write CloudWatch Embedded Metric Format lines to `dest`: stdout, or tcp://host:port / udp://host:port of the CloudWatch agent's EMF endpoint (empty disables)")
	fs.StringVar(&f.emfNamespace, "emf-namespace", metrics.DefaultEMFNamespace, "CloudWatch `namespace` of the EMF metrics")
	fs.StringVar(&f.otlp, "otlp", "", "post the extension as OTLP/HTTP protobuf to this `url` (e.g. http://127.0.0.1:4318/v1/metrics; empty disables)")
	fs.DurationVar(&f.interval, "push-interval", 10*time.Second, "how often DogStatsD, EMF and OTLP are pushed")
	fs.DurationVar(&f.maxAge, "scrape-cache", time.Second, "how long one read of Envoy's statistics answers Prometheus scrapes")
}

// components builds the collector's outputs. The returned stage holds the
// endpoint (first to start); pushers go in the second.
func (f *exportFlags) components(env *Env, c *metrics.Collector, reg *prometheus.Registry, checks []admin.Check, extra map[string]http.Handler) (endpoint, pushers []run.Component, err error) {
	if f.interval <= 0 {
		return nil, nil, usagef("--push-interval must be positive")
	}
	if f.listen != "" {
		h := c.Handler(reg)
		handlers := map[string]http.Handler{"GET /stats/prometheus": h}
		for k, v := range extra {
			handlers[k] = v
		}
		srv := &admin.Server{Addr: f.listen, Gatherer: reg, Log: env.Log, Checks: checks, Handlers: handlers}
		endpoint = append(endpoint, run.Component{Name: "metrics-endpoint", Run: srv.Run})
	}
	if f.dogstatsd != "" {
		client, err := statsd.NewDirect(f.dogstatsd, statsd.WithNamespace(metrics.StatsdNamespace), statsd.WithoutTelemetry(), statsd.WithoutOriginDetection())
		if err != nil {
			return nil, nil, usagef("--dogstatsd %q: %v", f.dogstatsd, err)
		}
		d := &metrics.DogStatsD{Collector: c, Client: client, Interval: f.interval, Log: env.Log}
		pushers = append(pushers, run.Component{Name: "dogstatsd", Run: func(ctx context.Context) error {
			defer client.Close()
			return d.Run(ctx)
		}})
	}
	if f.emf != "" {
		w, closeW, err := emfWriter(f.emf, env.Stdout)
		if err != nil {
			return nil, nil, err
		}
		e := &metrics.EMF{Collector: c, W: w, Interval: f.interval, Namespace: f.emfNamespace, Log: env.Log}
		pushers = append(pushers, run.Component{Name: "emf", Run: func(ctx context.Context) error {
			defer closeW()
			return e.Run(ctx)
		}})
	}
	if f.otlp != "" {
		if !strings.HasPrefix(f.otlp, "http://") && !strings.HasPrefix(f.otlp, "https://") {
			return nil, nil, usagef("--otlp %q: want an http:// or https:// URL", f.otlp)
		}
		o := &metrics.OTLP{Collector: c, Endpoint: f.otlp, Interval: f.interval, Log: env.Log, Client: &http.Client{Timeout: 10 * time.Second}}
		pushers = append(pushers, run.Component{Name: "otlp", Run: o.Run})
	}
	return endpoint, pushers, nil
}

// emfWriter opens an EMF destination: stdout, tcp://host:port or
// udp://host:port (the CloudWatch agent's emf endpoint, default port 25888).
func emfWriter(dest string, stdout io.Writer) (io.Writer, func(), error) {
	if dest == "stdout" || dest == "-" {
		return stdout, func() {}, nil
	}
	network, addr, ok := strings.Cut(dest, "://")
	if !ok || network != "tcp" && network != "udp" {
		return nil, nil, usagef("--emf %q: want stdout, tcp://host:port or udp://host:port", dest)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, nil, usagef("--emf %q: %v", dest, err)
	}
	r := &redialWriter{network: network, addr: addr}
	return r, r.close, nil
}

// redialWriter writes to a connection it (re)opens on demand, so a
// CloudWatch agent restart costs one interval's lines, not the exporter.
type redialWriter struct {
	network, addr string
	conn          net.Conn
}

func (r *redialWriter) Write(p []byte) (int, error) {
	if r.conn == nil {
		c, err := net.DialTimeout(r.network, r.addr, 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("emf: dial %s://%s: %w", r.network, r.addr, err)
		}
		r.conn = c
	}
	r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	n, err := r.conn.Write(p)
	if err != nil {
		r.conn.Close()
		r.conn = nil
	}
	return n, err
}

func (r *redialWriter) close() {
	if r.conn != nil {
		r.conn.Close()
	}
}

// identityFromEnv is the node identity for a collector from the App Mesh
// variables (APPMESH_RESOURCE_ARN, or APPMESH_VIRTUAL_NODE_NAME's
// mesh/<mesh>/virtualNode/<name>), for an Envoy whose clusters carry no
// ingress metadata.
func identityFromEnv(lookup func(string) (string, bool)) (mesh, kind, name string) {
	v, ok := lookup("APPMESH_RESOURCE_ARN")
	if !ok || v == "" {
		v, _ = lookup("APPMESH_VIRTUAL_NODE_NAME")
	}
	// arn:aws:appmesh:region:account:mesh/<mesh>/virtualNode/<name> or mesh/<mesh>/virtualNode/<name>
	if i := strings.Index(v, "mesh/"); i >= 0 {
		parts := strings.Split(v[i:], "/")
		if len(parts) == 4 {
			switch parts[2] {
			case "virtualNode":
				return parts[1], "VirtualNode", parts[3]
			case "virtualGateway":
				return parts[1], "VirtualGateway", parts[3]
			}
		}
	}
	return "", "", ""
}

func metricsCommand() *Command {
	return &Command{
		Name:    "metrics",
		Summary: "Export App Mesh's metrics extension (envoy_appmesh_*) from a stock Envoy: Prometheus, DogStatsD, CloudWatch EMF, OTLP.",
		Long: `Reads Envoy's admin interface (--envoy-admin) and derives the App Mesh metrics
extension from Envoy's standard statistics: inbound ActiveConnectionCount,
NewConnectionCount, ProcessedBytes, RequestCount, GrpcRequestCount; outbound
TargetProcessedBytes, HTTPCode_Target_2XX..5XX_Count, RequestCountPerTarget,
TargetResponseTime, with the Mesh, VirtualNode/VirtualGateway,
TargetVirtualService and TargetVirtualNode dimensions. Which cluster serves
which virtual service and node comes from the aws.appmesh metadata meshd's
control plane puts on clusters (read from /config_dump when CDS or LDS
changes). /stats/prometheus on --metrics-listen answers Envoy's own
exposition with the extension appended, so a scraper pointed at meshd sees
both; with Envoy unreachable it still answers (meshd_envoy_up 0). An Envoy
that already emits envoy_appmesh_* (App Mesh's own build) is passed through.
Use this next to a stock Envoy; 'meshd agent' runs the same exporters itself.`,
		Setup: func(fs *flag.FlagSet) Action {
			var (
				adminAddr string
				ex        exportFlags
			)
			fs.StringVar(&adminAddr, "envoy-admin", "127.0.0.1:9901", "Envoy's admin `addr`ess: host:port or unix:///path")
			ex.register(fs, true)
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				cl, err := envoyadmin.New(adminAddr)
				if err != nil {
					return usagef("--envoy-admin: %v", err)
				}
				reg := prometheus.NewRegistry()
				reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
				mesh, kind, name := identityFromEnv(os.LookupEnv)
				c, err := metrics.NewCollector(metrics.Options{Admin: cl, Log: env.Log, Registry: reg, MaxAge: ex.maxAge, Mesh: mesh, Kind: kind, Name: name})
				if err != nil {
					return err
				}
				endpoint, pushers, err := ex.components(env, c, reg, []admin.Check{{Name: "envoy", Ready: c.Up}}, nil)
				if err != nil {
					return err
				}
				if len(endpoint)+len(pushers) == 0 {
					return usagef("nothing to do: set --metrics-listen, --dogstatsd, --emf or --otlp")
				}
				sup := &run.Supervisor{Log: env.Log, Stages: [][]run.Component{endpoint, pushers}, StopTimeout: 5 * time.Second}
				return sup.Run(ctx)
			}
		},
	}
}
