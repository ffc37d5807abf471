package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/admin"
	"github.com/meshd/meshd/internal/run"
)

// DefaultCAListen is where `meshd ca serve` accepts agents.
const DefaultCAListen = "127.0.0.1:15012"

// DefaultCAMetricsListen is the CA service's own metrics and health endpoint.
const DefaultCAMetricsListen = "127.0.0.1:9907"

// caServiceFlags configure a CA service, standalone or in the control plane.
type caServiceFlags struct {
	ca                    caFlags
	listen, policy, group string
	dnsNames              multiFlag
	reload                time.Duration
	maxConns              int
}

// register adds the flags, each name prefixed with prefix ("ca-" inside
// the control plane); listenDefault empty leaves the service off.
func (f *caServiceFlags) register(fs *flag.FlagSet, prefix, listenDefault string) {
	f.ca.register(fs)
	f.ca.registerSVID(fs)
	listenDoc := "`addr`ess of the CA service (gRPC over TLS 1.3): host:port or unix:///path (socket 0660)"
	if listenDefault == "" {
		listenDoc += "; empty: no CA service"
	}
	fs.StringVar(&f.listen, prefix+"listen", listenDefault, listenDoc)
	fs.StringVar(&f.policy, prefix+"policy", "", "policy YAML `file`: Kubernetes enrollment and which agent may get which SPIFFE IDs and DNS names; reloaded on change")
	fs.StringVar(&f.group, prefix+"socket-group", "", "`group` name or gid that owns a unix:// CA service socket")
	fs.Var(&f.dnsNames, prefix+"dns-name", "DNS `name` in the CA service's own certificate (repeatable; default localhost); agents authenticate it by SPIFFE ID spiffe://TD/meshd/ca-service")
	fs.DurationVar(&f.reload, prefix+"reload-interval", time.Second, "how often the policy file and CA state are checked for changes")
	fs.IntVar(&f.maxConns, prefix+"max-conns", 8192, "open connections the CA service accepts at once")
}

// components builds the CA and the service; stage 1 runs the CA and the
// policy reloader, stage 2 the listener.
func (f *caServiceFlags) components(env *Env, reg prometheus.Registerer) (ca, svc []run.Component, srv *caservice.Server, err error) {
	if f.policy == "" {
		return nil, nil, nil, usagef("a policy file is required (nothing is granted without one)")
	}
	ccfg, err := f.ca.config(env, reg)
	if err != nil {
		return nil, nil, nil, err
	}
	ccfg.PollInterval = f.reload
	gid := -1
	if f.group != "" {
		if gid, err = lookupGroup(f.group); err != nil {
			return nil, nil, nil, usagef("socket group: %v", err)
		}
	}
	authority, err := certs.New(ccfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certificate authority: %w", err)
	}
	srv, err = caservice.NewServer(caservice.Config{
		CA: authority, StateDir: ccfg.StateDir, Listen: f.listen, SocketGroup: gid,
		PolicyFile: f.policy, ReloadInterval: f.reload, DNSNames: f.dnsNames, MaxConns: f.maxConns,
		Log: env.Log, Registerer: reg,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	ca = []run.Component{{Name: "ca", Run: authority.Run}, {Name: "ca-policy-reloader", Run: srv.RunReloader}}
	svc = []run.Component{{Name: "ca-service", Run: srv.Run}}
	return ca, svc, srv, nil
}

func caServeCommand() *Command {
	return &Command{
		Name:    "serve",
		Summary: "Serve meshd's CA to sidecars: they enroll with a join token or a Kubernetes token and get certificates by CSR.",
		Long: `The signing key stays here. 'meshd sds --ca-service ADDR' enrolls once (a
token from 'meshd ca token create', or a projected service-account token),
then renews its agent certificate and gets workload certificates over mTLS.
The policy file grants SPIFFE IDs and DNS names to agents; anything else is
refused with PermissionDenied and counted. Agents fetch the trust bundle,
with the CA's rollover, every 'meshd sds --ca-service-sync-interval' and
hold no connection in between; a connection idle for a minute, or open
for ten, is closed.`,
		Setup: func(fs *flag.FlagSet) Action {
			var f caServiceFlags
			var metrics string
			f.register(fs, "", DefaultCAListen)
			fs.StringVar(&metrics, "metrics-listen", DefaultCAMetricsListen, "`addr`ess for meshd's own /metrics, /healthz and /readyz (empty disables)")
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				reg := prometheus.NewRegistry()
				reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
				ca, svc, srv, err := f.components(env, reg)
				if err != nil {
					return err
				}
				stages := [][]run.Component{nil, ca, svc}
				if metrics != "" {
					stages[0] = []run.Component{{Name: "metrics", Run: (&admin.Server{
						Addr: metrics, Gatherer: reg, Log: env.Log,
						Checks: []admin.Check{{Name: "ca-service", Ready: srv.Ready}},
					}).Run}}
				}
				return (&run.Supervisor{Log: env.Log, Stages: stages, StopTimeout: 10 * time.Second}).Run(ctx)
			}
		},
	}
}
