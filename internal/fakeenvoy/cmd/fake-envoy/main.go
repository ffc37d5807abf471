// Command fake-envoy stands in for an Envoy binary in tests: it takes
// Envoy's command line and bootstrap, serves Envoy's admin interface (from
// internal/fakeenvoy) at the bootstrap's admin address, follows the ADS
// server the bootstrap names (plaintext gRPC, with internal/xdstest's
// simulated client) and keeps /config_dump and the stats current.
//
// Environment knobs:
//
//	FAKE_ENVOY_TRAFFIC=<n>         every 100 ms, n requests per egress cluster
//	                               (aws.appmesh Direction=egress) and n inbound
//	                               requests per ingress listener; every 10th is
//	                               a 503, latency 1+i%50 ms
//	FAKE_ENVOY_EXIT_AFTER=<dur>    exit after that long (crash simulation)
//	FAKE_ENVOY_EXIT_CODE=<n>       its exit code (default 1)
//	FAKE_ENVOY_READY_AFTER=<dur>   PRE_INITIALIZING until then
//	FAKE_ENVOY_ARGS_FILE=<path>    append argv (space-separated) as one line
//	FAKE_ENVOY_APPMESH_EXTENSION=1 also keep App Mesh's appmesh.* stats
//
// SIGTERM and SIGINT exit 0 promptly; so does POST /quitquitquit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/meshd/meshd/internal/fakeenvoy"
	"github.com/meshd/meshd/internal/xdstest"
)

func main() {
	os.Exit(run(os.Args, os.Stderr))
}

// options is the part of Envoy's command line the fake understands.
type options struct {
	configPath, configYAML, logLevel, mode       string
	serviceNode, serviceCluster, serviceZone     string
	adminAddressPath                             string
	baseID                                       uint64
	concurrency                                  int
	drainTime, parentShutdown                    int
	disableHotRestart, skipDeprecatedLogs        bool
	version                                      bool
	componentLogLevel, logFormat, logPath, drain string
}

var valueFlags = map[string]string{
	"-c": "config-path", "--config-path": "config-path", "--config-yaml": "config-yaml",
	"-l": "log-level", "--log-level": "log-level", "--component-log-level": "component-log-level",
	"--concurrency": "concurrency", "--drain-time-s": "drain-time-s", "--parent-shutdown-time-s": "parent-shutdown-time-s",
	"--base-id": "base-id", "--service-node": "service-node", "--service-cluster": "service-cluster",
	"--service-zone": "service-zone", "--mode": "mode", "--log-format": "log-format", "--log-path": "log-path",
	"--admin-address-path": "admin-address-path", "--drain-strategy": "drain-strategy", "--restart-epoch": "restart-epoch",
	"--local-address-ip-version": "local-address-ip-version", "--file-flush-interval-msec": "file-flush-interval-msec",
	"--base-id-path": "base-id-path", "--socket-path": "socket-path", "--socket-mode": "socket-mode",
	"--bootstrap-version": "bootstrap-version", "--disable-extensions": "disable-extensions", "--stats-tag": "stats-tag",
}

var boolFlags = map[string]string{
	"--disable-hot-restart": "disable-hot-restart", "--skip-deprecated-logs": "skip-deprecated-logs",
	"--use-dynamic-base-id": "use-dynamic-base-id", "--allow-unknown-static-fields": "allow-unknown-static-fields",
	"--reject-unknown-dynamic-fields": "reject-unknown-dynamic-fields", "--ignore-unknown-dynamic-fields": "ignore-unknown-dynamic-fields",
	"--enable-mutex-tracing": "enable-mutex-tracing", "--cpuset-threads": "cpuset-threads", "--enable-core-dump": "enable-core-dump",
	"--log-format-escaped": "log-format-escaped", "--enable-fine-grain-logging": "enable-fine-grain-logging",
	"--version": "version", "--hot-restart-version": "hot-restart-version", "--skip-hot-restart-on-no-parent": "skip-hot-restart-on-no-parent",
	"--skip-hot-restart-parent-stats": "skip-hot-restart-parent-stats", "--log-stacktrace-single-entry": "log-stacktrace-single-entry",
}

type logf func(level, format string, args ...any)

func parseArgs(args []string, log logf) (*options, error) {
	o := &options{logLevel: "info", mode: "serve", concurrency: 0, drainTime: 600, parentShutdown: 900}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "--") {
			name, hasVal = a, false
		}
		if key, ok := valueFlags[name]; ok {
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("PARSE ERROR: Argument: %s\n             Missing a value for this argument!", name)
				}
				i++
				val = args[i]
			}
			if err := o.set(key, val); err != nil {
				return nil, fmt.Errorf("PARSE ERROR: Argument: %s\n             %v", name, err)
			}
			continue
		}
		if key, ok := boolFlags[name]; ok {
			switch key {
			case "disable-hot-restart":
				o.disableHotRestart = true
			case "skip-deprecated-logs":
				o.skipDeprecatedLogs = true
			case "version":
				o.version = true
			}
			continue
		}
		if strings.HasPrefix(a, "-") {
			log("warning", "ignoring unknown command line flag %s", a)
			continue
		}
		return nil, fmt.Errorf("PARSE ERROR: Couldn't find match for argument %q", a)
	}
	return o, nil
}

func (o *options) set(key, v string) error {
	atoi := func() (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("Couldn't read argument value from string '%s'", v)
		}
		return n, nil
	}
	var err error
	switch key {
	case "config-path":
		o.configPath = v
	case "config-yaml":
		o.configYAML = v
	case "log-level":
		o.logLevel = v
	case "component-log-level":
		o.componentLogLevel = v
	case "concurrency":
		o.concurrency, err = atoi()
	case "drain-time-s":
		o.drainTime, err = atoi()
	case "parent-shutdown-time-s":
		o.parentShutdown, err = atoi()
	case "base-id":
		var n int
		n, err = atoi()
		o.baseID = uint64(n)
	case "service-node":
		o.serviceNode = v
	case "service-cluster":
		o.serviceCluster = v
	case "service-zone":
		o.serviceZone = v
	case "mode":
		if v != "serve" && v != "validate" && v != "init_only" {
			return fmt.Errorf("Value '%s' does not meet constraint: serve|validate|init_only", v)
		}
		o.mode = v
	case "log-format":
		o.logFormat = v
	case "log-path":
		o.logPath = v
	case "admin-address-path":
		o.adminAddressPath = v
	case "drain-strategy":
		o.drain = v
	}
	return err
}

func run(argv []string, stderr io.Writer) int {
	var logMu sync.Mutex
	log := func(level, format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(stderr, "[%s][%d][%s][main] %s\n", time.Now().Format("2006-01-02 15:04:05.000"), os.Getpid(), level, fmt.Sprintf(format, args...))
	}
	if p := os.Getenv("FAKE_ENVOY_ARGS_FILE"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintln(f, strings.Join(argv, " "))
			f.Close()
		} else {
			log("error", "FAKE_ENVOY_ARGS_FILE: %v", err)
		}
	}
	o, err := parseArgs(argv[1:], log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if o.version {
		fmt.Fprintf(os.Stdout, "\n%s version: %s\n\n", filepath.Base(argv[0]), fakeenvoy.Version)
		return 0
	}
	if o.concurrency == 0 {
		o.concurrency = 2
	}
	b, err := loadConfig(o)
	if err != nil {
		log("critical", "error initializing configuration '%s': %v", o.configPath, err)
		return 1
	}
	if err := fakeenvoy.CheckStatsConfig(b.GetStatsConfig()); err != nil {
		log("critical", "error initializing configuration '%s': %v", o.configPath, err)
		return 1
	}
	if o.mode == "validate" {
		fmt.Fprintf(os.Stdout, "configuration '%s' OK\n", o.configPath)
		return 0
	}
	node := proto.Clone(b.GetNode()).(*corev3.Node)
	if node == nil {
		node = &corev3.Node{}
	}
	if o.serviceNode != "" {
		node.Id = o.serviceNode
	}
	if o.serviceCluster != "" {
		node.Cluster = o.serviceCluster
	}
	b.Node = node
	return serve(o, b, log)
}

func loadConfig(o *options) (*bootstrapv3.Bootstrap, error) {
	b := &bootstrapv3.Bootstrap{}
	if o.configPath == "" && o.configYAML == "" {
		return nil, errors.New("At least one of --config-path or --config-yaml or Options::configProto() should be non-empty")
	}
	if o.configPath != "" {
		var err error
		if b, err = fakeenvoy.LoadBootstrap(o.configPath); err != nil {
			return nil, err
		}
	}
	if o.configYAML != "" {
		extra, err := fakeenvoy.ParseBootstrap([]byte(o.configYAML), true)
		if err != nil {
			return nil, err
		}
		proto.Merge(b, extra)
	}
	return b, nil
}

func envDuration(log logf, name string) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		log("warning", "%s=%q: %v (ignored)", name, v, err)
		return 0
	}
	return d
}

func serve(o *options, b *bootstrapv3.Bootstrap, log logf) int {
	readyAfter := envDuration(log, "FAKE_ENVOY_READY_AFTER")
	exitAfter := envDuration(log, "FAKE_ENVOY_EXIT_AFTER")
	exitCode := 1
	if v := os.Getenv("FAKE_ENVOY_EXIT_CODE"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			exitCode = n
		}
	}
	ads := adsTarget(b, log)
	initial := fakeenvoy.Live
	switch {
	case readyAfter > 0:
		initial = fakeenvoy.PreInitializing
	case ads != "":
		initial = fakeenvoy.Initializing
	}
	manual := !b.GetStatsFlushOnAdmin()
	e := fakeenvoy.New(fakeenvoy.Options{
		Node:             b.GetNode(),
		NodeID:           b.GetNode().GetId(),
		Cluster:          b.GetNode().GetCluster(),
		StatsConfig:      b.GetStatsConfig(),
		AppMeshExtension: os.Getenv("FAKE_ENVOY_APPMESH_EXTENSION") == "1" || appMeshExtensionEnabled(b),
		ManualFlush:      manual,
		Concurrency:      o.concurrency,
		Bootstrap:        b,
		InitialState:     initial,
		CommandLine: &adminv3.CommandLineOptions{
			BaseId: o.baseID, Concurrency: uint32(o.concurrency), ConfigPath: o.configPath, ConfigYaml: o.configYAML,
			LogLevel: o.logLevel, ComponentLogLevel: o.componentLogLevel, LogFormat: o.logFormat, LogPath: o.logPath,
			ServiceCluster: o.serviceCluster, ServiceNode: o.serviceNode, ServiceZone: o.serviceZone,
			DrainTime: durationpb.New(time.Duration(o.drainTime) * time.Second), ParentShutdownTime: durationpb.New(time.Duration(o.parentShutdown) * time.Second),
			Mode: adminv3.CommandLineOptions_Serve, DisableHotRestart: o.disableHotRestart, SkipDeprecatedLogs: o.skipDeprecatedLogs,
			AdminAddressPath: o.adminAddressPath, FileFlushInterval: durationpb.New(10 * time.Second),
		},
	})
	if err := e.SetLogLevel(o.logLevel); err != nil {
		log("critical", "error: invalid log level specified '%s'", o.logLevel)
		return 1
	}

	ln, addr, err := listenAdmin(b.GetAdmin().GetAddress())
	if err != nil {
		log("critical", "cannot bind admin address: %v", err)
		return 1
	}
	log("info", "admin address: %s", addr)
	if o.adminAddressPath != "" {
		if err := os.WriteFile(o.adminAddressPath, []byte(addr), 0o644); err != nil {
			log("error", "cannot write admin address path: %v", err)
		}
	}
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 4)

	// Readiness.
	var gotConfig = make(chan struct{})
	go func() {
		if readyAfter > 0 {
			select {
			case <-time.After(readyAfter):
			case <-ctx.Done():
				return
			}
			if ads == "" {
				e.SetState(fakeenvoy.Live)
				return
			}
			e.SetState(fakeenvoy.Initializing)
		}
		if ads == "" {
			return
		}
		var timeout <-chan time.Time
		if d := initialFetchTimeout(b); d > 0 {
			timeout = time.After(d)
		}
		select {
		case <-gotConfig:
		case <-timeout:
			log("warning", "initial fetch timeout reached; continuing")
		case <-ctx.Done():
			return
		}
		if e.State() != fakeenvoy.Draining {
			e.SetState(fakeenvoy.Live)
		}
	}()

	if ads != "" {
		go followADS(ctx, e, b.GetNode(), ads, gotConfig, log)
	}

	// Histogram merges every stats_flush_interval (default 5 s).
	if manual {
		every := 5 * time.Second
		if d := b.GetStatsFlushInterval(); d != nil && d.AsDuration() > 0 {
			every = d.AsDuration()
		}
		go func() {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					e.Flush()
				case <-ctx.Done():
					return
				}
			}
		}()
	}

	if v := os.Getenv("FAKE_ENVOY_TRAFFIC"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			log("warning", "FAKE_ENVOY_TRAFFIC=%q: not a count (ignored)", v)
		} else if n > 0 {
			go simulateTraffic(ctx, e, n)
		}
	}

	e.OnDrain(func(d fakeenvoy.DrainCall) {
		log("info", "draining listeners (inboundonly=%v graceful=%v skip_exit=%v)", d.InboundOnly, d.Graceful, d.SkipExit)
		if d.Graceful && !d.SkipExit {
			go func() {
				select {
				case <-time.After(time.Duration(o.drainTime) * time.Second):
					log("info", "drain period over: exiting")
					done <- 0
				case <-ctx.Done():
				}
			}()
		}
	})

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	var exitTimer <-chan time.Time
	if exitAfter > 0 {
		exitTimer = time.After(exitAfter)
	}
	code := 0
	select {
	case s := <-sigs:
		log("warning", "caught %s", s)
		log("info", "shutting down server instance")
	case <-e.Quit():
		log("info", "shutting down server instance")
	case <-exitTimer:
		log("critical", "FAKE_ENVOY_EXIT_AFTER=%s elapsed: exiting with %d", exitAfter, exitCode)
		code = exitCode
	case code = <-done:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	if p := b.GetAdmin().GetAddress().GetPipe(); p != nil {
		_ = os.Remove(p.GetPath())
	}
	log("info", "exiting")
	return code
}

// appMeshExtensionEnabled: the node metadata App Mesh's image set when the
// metrics extension was on (APPMESH_METRIC_EXTENSION_VERSION=1).
func appMeshExtensionEnabled(b *bootstrapv3.Bootstrap) bool {
	return b.GetNode().GetMetadata().GetFields()["aws.appmesh.metric_filter"] != nil
}

func initialFetchTimeout(b *bootstrapv3.Bootstrap) time.Duration {
	cds := b.GetDynamicResources().GetCdsConfig()
	if cds == nil {
		return 15 * time.Second
	}
	if cds.GetInitialFetchTimeout() == nil {
		return 15 * time.Second // Envoy's default
	}
	return cds.GetInitialFetchTimeout().AsDuration() // 0: wait forever
}

// listenAdmin binds the admin address: a socket address (port 0 picks one)
// or a pipe (created with its mode).
func listenAdmin(a *corev3.Address) (net.Listener, string, error) {
	if p := a.GetPipe(); p != nil {
		_ = os.Remove(p.GetPath())
		ln, err := net.Listen("unix", p.GetPath())
		if err != nil {
			return nil, "", err
		}
		if p.GetMode() != 0 {
			if err := os.Chmod(p.GetPath(), os.FileMode(p.GetMode())); err != nil {
				ln.Close()
				return nil, "", err
			}
		}
		return ln, "unix://" + p.GetPath(), nil
	}
	sa := a.GetSocketAddress()
	if sa == nil {
		return nil, "", errors.New("the bootstrap has no admin address")
	}
	host := sa.GetAddress()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(int(sa.GetPortValue()))))
	if err != nil {
		return nil, "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	shown := host
	if host == "0.0.0.0" || host == "" {
		shown = "127.0.0.1"
	} else if host == "::" {
		shown = "::1"
	}
	return ln, net.JoinHostPort(shown, strconv.Itoa(port)), nil
}

// adsTarget returns the gRPC target of the ADS server: the first endpoint
// of the static cluster ads_config's envoy_grpc names.
func adsTarget(b *bootstrapv3.Bootstrap, log logf) string {
	ads := b.GetDynamicResources().GetAdsConfig()
	if ads == nil {
		return ""
	}
	var name string
	for _, g := range ads.GetGrpcServices() {
		if eg := g.GetEnvoyGrpc(); eg != nil {
			name = eg.GetClusterName()
			break
		}
	}
	if name == "" {
		log("warning", "ads_config has no envoy_grpc service: not connecting")
		return ""
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != name {
			continue
		}
		if c.GetTransportSocket() != nil {
			log("warning", "ADS cluster %s uses a transport socket (TLS): the fake speaks plaintext gRPC only", name)
		}
		for _, l := range c.GetLoadAssignment().GetEndpoints() {
			for _, ep := range l.GetLbEndpoints() {
				addr := ep.GetEndpoint().GetAddress()
				if p := addr.GetPipe(); p != nil {
					return "unix://" + p.GetPath()
				}
				if sa := addr.GetSocketAddress(); sa != nil {
					return "passthrough:///" + net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue())))
				}
			}
		}
	}
	log("warning", "ADS cluster %s not found among the static clusters: not connecting", name)
	return ""
}

// followADS runs the simulated ADS client, reconnecting like Envoy, and
// mirrors what it holds into e.
func followADS(ctx context.Context, e *fakeenvoy.Envoy, node *corev3.Node, target string, gotConfig chan struct{}, log logf) {
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log("error", "ADS %s: %v", target, err)
		return
	}
	defer cc.Close()
	n := proto.Clone(node).(*corev3.Node)
	n.UserAgentName = "envoy"
	client := &xdstest.Client{Node: n}
	go mirror(ctx, e, client, gotConfig)
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		before := total(client.State().Responses)
		rctx, rcancel := context.WithCancel(ctx)
		go func() {
			if client.Wait(rctx, func(s xdstest.State) bool { return total(s.Responses) > before }) == nil {
				e.SetConnected(true)
			}
		}()
		err := client.Run(rctx, cc)
		rcancel()
		e.SetConnected(false)
		if ctx.Err() != nil {
			return
		}
		log("warning", "StreamAggregatedResources gRPC config stream to %s closed: %v", target, err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		if backoff < 5*time.Second {
			backoff *= 2
		}
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// mirror copies the client's resources into e after every response.
func mirror(ctx context.Context, e *fakeenvoy.Envoy, c *xdstest.Client, gotConfig chan struct{}) {
	last := -1
	var once sync.Once
	for {
		if err := c.Wait(ctx, func(s xdstest.State) bool { return total(s.Responses) != last }); err != nil {
			return
		}
		s := c.State()
		last = total(s.Responses)
		var clusters []*clusterv3.Cluster
		for _, name := range s.Names[resource.ClusterType] {
			var cl clusterv3.Cluster
			if a := c.Resource(resource.ClusterType, name); a != nil && a.UnmarshalTo(&cl) == nil {
				clusters = append(clusters, &cl)
			}
		}
		var listeners []*listenerv3.Listener
		for _, name := range s.Names[resource.ListenerType] {
			var l listenerv3.Listener
			if a := c.Resource(resource.ListenerType, name); a != nil && a.UnmarshalTo(&l) == nil {
				listeners = append(listeners, &l)
			}
		}
		var routes []*routev3.RouteConfiguration
		for _, name := range s.Names[resource.RouteType] {
			var r routev3.RouteConfiguration
			if a := c.Resource(resource.RouteType, name); a != nil && a.UnmarshalTo(&r) == nil {
				routes = append(routes, &r)
			}
		}
		if s.Responses[resource.ClusterType] > 0 || s.Responses[resource.ListenerType] > 0 {
			e.SetConfig(clusters, listeners, s.Versions)
		}
		if s.Responses[resource.RouteType] > 0 {
			e.SetRoutes(routes, s.Versions[resource.RouteType])
		}
		// EDS: membership gauges of EDS clusters.
		for _, cl := range clusters {
			if cl.GetType() != clusterv3.Cluster_EDS {
				continue
			}
			svc := cl.GetEdsClusterConfig().GetServiceName()
			if svc == "" {
				svc = cl.GetName()
			}
			var cla endpointv3.ClusterLoadAssignment
			if a := c.Resource(resource.EndpointType, svc); a != nil && a.UnmarshalTo(&cla) == nil {
				hosts := uint64(0)
				for _, l := range cla.GetEndpoints() {
					hosts += uint64(len(l.GetLbEndpoints()))
				}
				root := "cluster." + cl.GetName() + "."
				e.SetGauge(root+"membership_total", hosts)
				e.SetGauge(root+"membership_healthy", hosts)
			}
		}
		if s.Responses[resource.ClusterType] > 0 && s.Responses[resource.ListenerType] > 0 {
			once.Do(func() { close(gotConfig) })
		}
	}
}

// simulateTraffic drives deterministic traffic every 100 ms: n requests per
// egress cluster, n inbound requests per ingress listener's connection
// managers (and through the ingress clusters).
func simulateTraffic(ctx context.Context, e *fakeenvoy.Envoy, n int) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	i := 0
	next := func() (int, time.Duration) {
		code := 200
		if i%10 == 9 {
			code = 503
		}
		lat := time.Duration(1+i%50) * time.Millisecond
		i++
		return code, lat
	}
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		var egress, ingress []string
		for _, name := range e.Clusters() {
			md := fakeenvoy.AppMeshMetadata(e.Cluster(name))
			switch md["Direction"] {
			case "egress":
				egress = append(egress, name)
			case "ingress":
				ingress = append(ingress, name)
			}
		}
		sort.Strings(egress)
		sort.Strings(ingress)
		for _, c := range egress {
			for k := 0; k < n; k++ {
				code, lat := next()
				e.Request(c, code, lat, 512, 256)
			}
		}
		for _, l := range e.Listeners() {
			if l.Direction != corev3.TrafficDirection_INBOUND && !strings.Contains(l.Name, "ingress") {
				continue
			}
			for _, p := range l.HTTP {
				for k := 0; k < n; k++ {
					code, lat := next()
					e.InboundTimed(l.StatRoot, p, code, lat, 256, 512)
				}
			}
			for _, p := range l.TCP {
				for k := 0; k < n; k++ {
					e.Inbound(l.StatRoot, p, 0, 256, 512)
				}
			}
		}
		for _, c := range ingress {
			for k := 0; k < n; k++ {
				code, lat := next()
				e.Request(c, code, lat, 512, 256)
			}
		}
	}
}
