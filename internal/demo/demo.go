// Package demo runs the App Mesh getting-started mesh on loopback with
// meshd's own parts, for `meshd demo`: the control plane serving the example
// definitions over ADS, the SDS server issuing SPIFFE certificates from a
// local CA, real gRPC backends for the router's targets (serviceB and
// serviceBv2) and a proxyless gRPC client (serviceA) that reaches them
// through xds:///<virtual service> with mTLS. It keeps a State that the
// terminal view (and the tests) read: the traffic split, the certificates
// and the App Mesh extension metrics.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/controlplane"
	"github.com/meshd/meshd/controlplane/translate"
	"github.com/meshd/meshd/examples"
	"github.com/meshd/meshd/internal/admin"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/internal/run"
	"github.com/meshd/meshd/metrics"
	"github.com/meshd/meshd/sds"
)

// Config configures a demo.
type Config struct {
	// ConfigDir holds the App Mesh definitions (watched; edits are served
	// while the demo runs). Empty: the embedded examples/apps, written to
	// WorkDir/config.
	ConfigDir string
	// WorkDir holds the CA state, the sockets and the log. Empty: a new
	// temporary directory, removed at exit.
	WorkDir string
	// MetricsListen serves /metrics (meshd_* and envoy_appmesh_*),
	// /healthz and /readyz; empty disables it.
	MetricsListen string
	// RPS is the client's request rate (default 50).
	RPS int
	// Shift, when set, replaces the route's target weights (in the order
	// the route lists them) ShiftAfter after the start.
	Shift      []int64
	ShiftAfter time.Duration
	// TrustDomain of the CA (default meshd.local) and SVIDTTL of the
	// certificates (default 10 minutes, so a renewal shows within 5).
	TrustDomain string
	SVIDTTL     time.Duration
	Log         *slog.Logger
	// OnMetricsListen receives the metrics address once bound.
	OnMetricsListen func(net.Addr)
}

// ErrShift reports a --shift that does not fit the route.
var ErrShift = errors.New("bad shift")

// Demo is one running demo.
type Demo struct {
	cfg     Config
	td      spiffeid.TrustDomain
	start   time.Time
	dir     string // configuration directory
	work    string
	cleanup func()

	mesh, client, service string // the client node, the virtual service it calls
	targets               []string
	ports                 map[string]int
	hosts                 map[string][]string // node → DNS names (its service-discovery hostname)
	stats                 map[string]*nodeStats
	ids                   map[string]*identity
	traffic               *window

	mu         sync.Mutex
	weights    map[string]int64
	shifted    bool
	configNote string
	metricsURL string
	errs       int
	lastErr    string
}

// New checks the configuration and prepares a demo; Run runs it.
func New(cfg Config) (*Demo, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RPS <= 0 {
		cfg.RPS = 50
	}
	if cfg.SVIDTTL <= 0 {
		cfg.SVIDTTL = 10 * time.Minute
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = "meshd.local"
	}
	td, err := spiffeid.TrustDomainFromString(cfg.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("trust domain: %w", err)
	}
	d := &Demo{cfg: cfg, td: td, ports: map[string]int{}, hosts: map[string][]string{}, stats: map[string]*nodeStats{},
		ids: map[string]*identity{}, weights: map[string]int64{}, traffic: newWindow(10)}
	work, cleanup := cfg.WorkDir, func() {}
	if work == "" {
		if work, err = os.MkdirTemp("", "meshd-demo-"); err != nil {
			return nil, fmt.Errorf("work directory: %w", err)
		}
		cleanup = func() { os.RemoveAll(work) }
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, fmt.Errorf("work directory: %w", err)
	}
	d.work, d.cleanup = work, cleanup
	d.dir = cfg.ConfigDir
	if d.dir == "" {
		d.dir = filepath.Join(work, "config")
		if err := writeExamples(d.dir); err != nil {
			cleanup()
			return nil, err
		}
	}
	first, err := controlplane.LoadDir(d.dir, load.Options{})
	if err != nil {
		cleanup()
		return nil, err
	}
	if first.Config == nil {
		cleanup()
		var b strings.Builder
		for _, p := range first.Problems {
			fmt.Fprintf(&b, "\n  %s", p.Error())
		}
		return nil, fmt.Errorf("%s is not a valid mesh (meshd validate %s):%s", d.dir, d.dir, b.String())
	}
	if err := d.pickShape(first.Config); err != nil {
		cleanup()
		return nil, fmt.Errorf("%s: %w", d.dir, err)
	}
	for _, n := range append([]string{d.client}, d.targets...) {
		d.ids[n] = newIdentity(d.spiffeID(n), filepath.Join(work, "sds.sock"), cfg.Log)
	}
	d.start = time.Now()
	if cfg.Shift != nil && len(cfg.Shift) != len(d.targets) {
		cleanup()
		return nil, fmt.Errorf("%w: --shift has %d weights; the route to %s has %d targets (%s)", ErrShift, len(cfg.Shift), d.service, len(d.targets), strings.Join(d.targets, ", "))
	}
	return d, nil
}

// writeExamples writes the embedded getting-started mesh to dir.
func writeExamples(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("example configuration: %w", err)
	}
	return fs.WalkDir(examples.Apps, "apps", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		data, err := examples.Apps.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(path)), data, 0o644)
	})
}

// pickShape finds the client (the first virtual node with a backend), the
// virtual service it calls, and the nodes that serve it (the targets of
// its router's first route, or its provider node).
func (d *Demo) pickShape(cfg *model.Config) error {
	for _, mn := range model.Names(cfg.Meshes) {
		m := cfg.Meshes[mn]
		for _, nn := range model.Names(m.VirtualNodes) {
			vn := m.VirtualNodes[nn]
			for _, b := range vn.Spec.Backends {
				if b.VirtualService == nil || m.VirtualServices[b.VirtualService.VirtualServiceName] == nil {
					continue
				}
				vs := m.VirtualServices[b.VirtualService.VirtualServiceName]
				targets := providerNodes(m, vs)
				if len(targets) == 0 {
					continue
				}
				d.mesh, d.client, d.service, d.targets = mn, nn, vs.Name, targets
				for _, n := range append([]string{nn}, targets...) {
					if sd := m.VirtualNodes[n].Spec.ServiceDiscovery; sd != nil && sd.DNS != nil {
						d.hosts[n] = []string{sd.DNS.Hostname}
					}
					d.stats[n] = newNodeStats(appmesh.Resource{Mesh: mn, Kind: appmesh.VirtualNode, Name: n})
				}
				return nil
			}
		}
	}
	return errors.New("no virtual node calls a virtual service served by virtual nodes with listeners; the demo needs a client node with a backend (like serviceA → serviceb.apps.local)")
}

func providerNodes(m *model.Mesh, vs *model.VirtualService) []string {
	p := vs.Spec.Provider
	switch {
	case p == nil:
	case p.VirtualNode != nil:
		if vn := m.VirtualNodes[p.VirtualNode.VirtualNodeName]; vn != nil && len(vn.Spec.Listeners) > 0 {
			return []string{vn.Name}
		}
	case p.VirtualRouter != nil:
		vr := m.VirtualRouters[p.VirtualRouter.VirtualRouterName]
		if vr == nil {
			return nil
		}
		for _, r := range vr.Routes {
			var out []string
			for _, t := range routeTargets(r) {
				if vn := m.VirtualNodes[t.VirtualNode]; vn != nil && len(vn.Spec.Listeners) > 0 {
					out = append(out, t.VirtualNode)
				}
			}
			if len(out) > 0 {
				return out
			}
		}
	}
	return nil
}

// routeTargets returns a route's weighted targets (nil for a TCP route
// without HTTP semantics is fine too: TCP targets count).
func routeTargets(r *model.Route) []appmesh.WeightedTarget {
	s := r.Spec
	switch {
	case s.HTTP2Route != nil && s.HTTP2Route.Action != nil:
		return s.HTTP2Route.Action.WeightedTargets
	case s.HTTPRoute != nil && s.HTTPRoute.Action != nil:
		return s.HTTPRoute.Action.WeightedTargets
	case s.GRPCRoute != nil && s.GRPCRoute.Action != nil:
		return s.GRPCRoute.Action.WeightedTargets
	case s.TCPRoute != nil && s.TCPRoute.Action != nil:
		return s.TCPRoute.Action.WeightedTargets
	}
	return nil
}

// spiffeID is the identity of a virtual node, in the form meshd's docs use.
func (d *Demo) spiffeID(node string) spiffeid.ID {
	id, _ := spiffeid.FromSegments(d.td, "mesh", d.mesh, "virtualNode", node)
	return id
}

// patch points the target nodes at the demo's loopback backends and
// applies the --shift weights once their time has come. cfg is freshly
// loaded, so it is the demo's to change.
func (d *Demo) patch(cfg *model.Config) {
	m := cfg.Meshes[d.mesh]
	if m == nil {
		return
	}
	for _, n := range d.targets {
		vn := m.VirtualNodes[n]
		if vn == nil || len(vn.Spec.Listeners) == 0 || vn.Spec.Listeners[0].PortMapping == nil {
			continue
		}
		port := int64(d.ports[n])
		vn.Spec.Listeners[0].PortMapping.Port = &port
		vn.Spec.ServiceDiscovery = &appmesh.ServiceDiscovery{DNS: &appmesh.DNSServiceDiscovery{Hostname: "127.0.0.1"}}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	vs := m.VirtualServices[d.service]
	if vs == nil || vs.Spec.Provider == nil || vs.Spec.Provider.VirtualRouter == nil {
		for _, n := range d.targets {
			d.weights[n] = 1
		}
		return
	}
	vr := m.VirtualRouters[vs.Spec.Provider.VirtualRouter.VirtualRouterName]
	if vr == nil || len(vr.Routes) == 0 {
		return
	}
	targets := routeTargets(vr.Routes[0])
	clear(d.weights)
	for i := range targets {
		if d.shifted && i < len(d.cfg.Shift) {
			w := d.cfg.Shift[i]
			targets[i].Weight = &w
		}
		if targets[i].Weight != nil {
			d.weights[targets[i].VirtualNode] += *targets[i].Weight
		}
	}
}

// apply patches and serves one configuration, and re-reads the metrics
// mapping of every node from it.
func (d *Demo) apply(srv *controlplane.Server) func(controlplane.Update) {
	var mu sync.Mutex // the file source and the shift timer both apply
	return func(u controlplane.Update) {
		mu.Lock()
		defer mu.Unlock()
		note := fmt.Sprintf("%s: %d resources served", time.Now().Format("15:04:05"), u.Resources)
		if u.Config != nil {
			d.patch(u.Config)
			tr := translate.New(u.Config, translate.Options{})
			for _, s := range d.stats {
				if err := s.setMapping(tr); err != nil {
					d.cfg.Log.Warn("metrics mapping", "node", s.node.String(), "error", err)
				}
			}
		} else {
			note = fmt.Sprintf("%s: edit rejected (%d problems, see the log); the last good configuration stays", time.Now().Format("15:04:05"), len(u.Problems))
		}
		d.mu.Lock()
		d.configNote = note
		d.mu.Unlock()
		srv.Apply(u)
	}
}

// Run runs the demo until ctx ends, then stops every part in order and
// removes the temporary work directory.
func (d *Demo) Run(ctx context.Context) error {
	defer d.cleanup()
	log := d.cfg.Log
	reg := prometheus.NewRegistry()
	sock, xdsSock := filepath.Join(d.work, "sds.sock"), filepath.Join(d.work, "xds.sock")

	ca, err := certs.New(certs.Config{TrustDomain: d.td, StateDir: filepath.Join(d.work, "state"), SVIDTTL: d.cfg.SVIDTTL, Log: log, Registerer: reg})
	if err != nil {
		return err
	}
	var idDoc strings.Builder
	for _, n := range append([]string{d.client}, d.targets...) {
		fmt.Fprintf(&idDoc, "- spiffeID: %s\n  dnsNames: [%s]\n  selectors: [uid:%d]\n", d.spiffeID(n), strings.Join(d.hosts[n], ", "), os.Getuid())
	}
	ids, err := sds.ParseIdentities([]byte(idDoc.String()), d.td)
	if err != nil {
		return err
	}
	cache, err := sds.NewCache(sds.CacheConfig{CA: ca, Log: log, Registerer: reg})
	if err != nil {
		return err
	}
	sdsSrv, err := sds.New(sds.Config{Socket: sock, SocketGroup: -1, CA: ca, Cache: cache, Identities: ids, Log: log, Registerer: reg})
	if err != nil {
		return err
	}

	backends := make([]run.Component, 0, len(d.targets))
	for _, n := range d.targets {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("backend %s: %w", n, err)
		}
		d.ports[n] = ln.Addr().(*net.TCPAddr).Port
		backends = append(backends, run.Component{Name: "backend-" + n, Run: d.backend(n, ln)})
	}

	cp := controlplane.New(controlplane.Config{Log: log, Registry: reg})
	xdsLn, err := sds.ListenUnix(xdsSock, -1)
	if err != nil {
		return fmt.Errorf("ADS socket: %w", err)
	}
	apply := d.apply(cp)
	src := &controlplane.FileSource{Dir: d.dir, Log: log}

	stages := [][]run.Component{
		nil,
		{{Name: "ca", Run: ca.Run}, {Name: "svid-cache", Run: cache.Run}, {Name: "config", Run: func(ctx context.Context) error { return src.Run(ctx, apply) }}},
		{{Name: "sds", Run: sdsSrv.Run}, {Name: "ads", Run: func(ctx context.Context) error { return cp.Serve(ctx, xdsLn) }}},
		nil,
		{{Name: "client-" + d.client, Run: d.clientLoop(xdsSock, cp)}},
	}
	for _, id := range d.ids {
		stages[3] = append(stages[3], run.Component{Name: "identity-" + id.id.Path(), Run: id.Run})
	}
	stages[3] = append(stages[3], backends...)
	if d.cfg.Shift != nil {
		stages[4] = append(stages[4], run.Component{Name: "shift", Run: d.shiftAfter(cp, apply)})
	}
	if d.cfg.MetricsListen != "" {
		gather := prometheus.Gatherers{reg, prometheus.GathererFunc(d.gatherExtension)}
		stages[0] = []run.Component{{Name: "metrics", Run: (&admin.Server{
			Addr: d.cfg.MetricsListen, Gatherer: gather, Log: log,
			Checks: []admin.Check{{Name: "sds", Ready: sdsSrv.Ready}},
			OnListen: func(a net.Addr) {
				d.mu.Lock()
				d.metricsURL = "http://" + a.String() + "/metrics"
				d.mu.Unlock()
				if d.cfg.OnMetricsListen != nil {
					d.cfg.OnMetricsListen(a)
				}
			},
		}).Run}}
	}
	return (&run.Supervisor{Log: log, Stages: stages, StopTimeout: 5 * time.Second}).Run(ctx)
}

// backend serves the health service as node n, with mTLS from its SDS
// certificate, accepting only the client's identity.
func (d *Demo) backend(n string, ln net.Listener) func(context.Context) error {
	return func(ctx context.Context) error {
		id := d.ids[n]
		select {
		case <-id.ready:
		case <-ctx.Done():
			ln.Close()
			return nil
		}
		st := d.stats[n]
		gs := grpc.NewServer(
			grpc.Creds(grpccredentials.MTLSServerCredentials(id, id, tlsconfig.AuthorizeID(d.spiffeID(d.client)))),
			grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				st.inbound()
				return h(ctx, req)
			}),
		)
		healthpb.RegisterHealthServer(gs, health.NewServer())
		errc := make(chan error, 1)
		go func() { errc <- gs.Serve(ln) }()
		select {
		case <-ctx.Done():
			gs.GracefulStop()
			return nil
		case err := <-errc:
			return fmt.Errorf("backend %s: %w", n, err)
		}
	}
}

// shiftAfter applies the --shift weights after ShiftAfter, through the same
// path a file edit takes (load, validate, translate, push).
func (d *Demo) shiftAfter(cp *controlplane.Server, apply func(controlplane.Update)) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTimer(d.cfg.ShiftAfter)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		d.mu.Lock()
		d.shifted = true
		d.mu.Unlock()
		u, err := controlplane.LoadDir(d.dir, load.Options{})
		if err != nil {
			return err
		}
		apply(u)
		<-ctx.Done()
		return nil
	}
}

func (d *Demo) fail(err error) {
	d.mu.Lock()
	d.errs++
	d.lastErr = err.Error()
	d.mu.Unlock()
	d.cfg.Log.Warn("RPC failed", "error", err)
}

// gatherExtension is the /metrics source of the App Mesh extension series
// of every node of the demo.
func (d *Demo) gatherExtension() ([]*dto.MetricFamily, error) {
	var all []metrics.Series
	for _, s := range d.stats {
		all = append(all, s.series()...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Metric < all[j].Metric })
	return metrics.Families(all), nil
}
