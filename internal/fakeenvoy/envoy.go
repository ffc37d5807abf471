// Package fakeenvoy is an in-memory stand-in for one Envoy, for tests on
// machines without an Envoy binary: a model of its configuration (what
// /config_dump shows) and of its stats store, and an http.Handler serving
// Envoy's admin endpoints with bodies in Envoy's documented formats (/stats
// as text, JSON and Prometheus, /config_dump, /ready, /server_info,
// /drain_listeners, /logging, /quitquitquit, …).
//
// Stats are created as Envoy creates them: per cluster, listener, HTTP
// connection manager and TCP proxy when the configuration is set, response
// code stats on first use. Histograms keep Envoy's circllhist bins, so
// quantiles and bucket counts match what Envoy would compute for the same
// values. Traffic is simulated with Request, Inbound, Connect, … or the
// generic Add, SetGauge and Record.
//
// The program in cmd/fake-envoy wraps this in a process that takes Envoy's
// command line and bootstrap, follows an ADS server with internal/xdstest
// and serves the admin interface; Build compiles it for tests.
package fakeenvoy

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// Version is the build version the fake reports (Envoy's
// "<sha>/<version>/<status>/<build type>/<TLS library>").
const Version = "fakeenvoy00000000000000000000000000000000/1.34.0/Clean/RELEASE/BoringSSL"

// Options configure a fake Envoy.
type Options struct {
	// NodeID and Cluster are the node's id and service cluster (used when
	// Node is nil, and for --service-node/--service-cluster).
	NodeID, Cluster string
	// Node, if set, is the bootstrap's node.
	Node *corev3.Node
	// Clock replaces time.Now (for last_updated, uptime).
	Clock func() time.Time
	// StatsConfig is the bootstrap's stats_config: its stats_tags (fixed
	// values and regexes) are applied to every stat like Envoy does. A tag
	// regex Go cannot compile is reported by Err and ignored.
	StatsConfig *metricsv3.StatsConfig
	// AppMeshExtension makes the fake also keep the stats of App Mesh's
	// Envoy build with the metrics extension (appmesh.RequestCount, …).
	AppMeshExtension bool
	// ManualFlush: histograms are merged only by Flush (as Envoy does every
	// stats_flush_interval). By default they are merged before each stats
	// admin request, as with stats_flush_on_admin.
	ManualFlush bool
	// Concurrency is the number of workers (default 2).
	Concurrency int
	// Bootstrap, if set, is shown in /config_dump's BootstrapConfigDump and
	// its static resources are loaded (see SetStatic).
	Bootstrap *bootstrapv3.Bootstrap
	// CommandLine is /server_info's command_line_options.
	CommandLine *adminv3.CommandLineOptions
	// InitialState is the server state at start (default Live).
	InitialState State
	// HTTPPrefixes and TCPPrefixes name HTTP connection managers and TCP
	// proxies whose stats exist without a listener (rarely needed).
	HTTPPrefixes, TCPPrefixes []string
}

// State is Envoy's server state (ServerInfo.State).
type State int

// The states, in ServerInfo's enum order.
const (
	Live State = iota
	Draining
	PreInitializing
	Initializing
)

func (s State) String() string {
	return [...]string{"LIVE", "DRAINING", "PRE_INITIALIZING", "INITIALIZING"}[s]
}

// Call is one admin request the fake answered.
type Call struct {
	Method   string
	Path     string
	RawQuery string
	Code     int
	At       time.Time
}

// DrainCall is one POST /drain_listeners.
type DrainCall struct {
	InboundOnly, Graceful, SkipExit bool
}

type clusterEntry struct {
	c       *clusterv3.Cluster
	version string
	updated time.Time
	static  bool
}

type listenerEntry struct {
	l       *listenerv3.Listener
	version string
	updated time.Time
	static  bool
	root    string
	hcm     []string // HTTP connection manager stat prefixes
	tcp     []string // TCP proxy stat prefixes
}

type routeEntry struct {
	r       *routev3.RouteConfiguration
	version string
	updated time.Time
	static  bool
}

// Envoy is one fake Envoy. It is safe for concurrent use.
type Envoy struct {
	opts   Options
	now    func() time.Time
	tagErr error

	mu        sync.Mutex
	start     time.Time
	state     State
	st        *store
	clusters  map[string]*clusterEntry
	listeners map[string]*listenerEntry
	routes    map[string]*routeEntry
	versions  map[string]string // type URL → version
	updated   map[string]time.Time
	bootTime  time.Time
	calls     []Call
	drains    []DrainCall
	loggers   []logger
	hcFailed  bool
	connected bool
	quit      chan struct{}
	quitOnce  sync.Once
	onDrain   func(DrainCall)
}

// New returns a fake Envoy with no dynamic configuration: server, cluster
// manager and listener manager stats only (plus the bootstrap's static
// resources if Options.Bootstrap is set).
func New(opts Options) *Envoy {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 2
	}
	e := &Envoy{opts: opts, now: opts.Clock, state: opts.InitialState, quit: make(chan struct{})}
	if e.now == nil {
		e.now = time.Now
	}
	tp, err := newTagProducer(opts.StatsConfig)
	if err != nil {
		e.tagErr = err
		tp, _ = newTagProducer(nil)
	}
	e.st = newStore(tp)
	e.loggers = defaultLoggers()
	e.start = e.now()
	e.bootTime = e.start
	e.clusters = map[string]*clusterEntry{}
	e.listeners = map[string]*listenerEntry{}
	e.routes = map[string]*routeEntry{}
	e.versions = map[string]string{}
	e.updated = map[string]time.Time{}
	e.createServerStats()
	if b := opts.Bootstrap; b != nil {
		e.setStaticLocked(b.GetStaticResources().GetClusters(), b.GetStaticResources().GetListeners())
	}
	return e
}

// Err reports a problem with Options.StatsConfig (the default tags are used
// instead).
func (e *Envoy) Err() error { return e.tagErr }

func (e *Envoy) nodeID() string {
	if e.opts.Node != nil {
		return e.opts.Node.GetId()
	}
	return e.opts.NodeID
}

// createServerStats creates the stats every Envoy has.
func (e *Envoy) createServerStats() {
	s := e.st
	live := uint64(0)
	if e.state == Live {
		live = 1
	}
	s.gauge("server.live", "", live, true)
	s.gauge("server.state", "", uint64(e.state), true)
	s.gauge("server.uptime", "", 0, true)
	s.gauge("server.concurrency", "", uint64(e.opts.Concurrency), true)
	s.gauge("server.memory_allocated", "", 6<<20, true)
	s.gauge("server.memory_heap_size", "", 16<<20, true)
	s.gauge("server.memory_physical_size", "", 18<<20, true)
	s.gauge("server.total_connections", "", 0, false)
	s.gauge("server.parent_connections", "", 0, false)
	s.gauge("server.days_until_first_cert_expiring", "", 4294967295, true)
	s.gauge("server.seconds_until_first_ocsp_response_expiring", "", 0, false)
	s.gauge("server.hot_restart_epoch", "", 0, true)
	s.gauge("server.hot_restart_generation", "", 1, true)
	s.gauge("server.version", "", 0, true)
	s.gauge("server.stats_recent_lookups", "", 0, false)
	s.gauge("server.compilation_settings.fips_mode", "", 0, true)
	for _, c := range []string{"debug_assertion_failures", "envoy_bug_failures", "envoy_notifications", "static_unknown_fields", "dynamic_unknown_fields", "wip_protos", "dropped_stat_flushes", "main_thread.watchdog_miss", "main_thread.watchdog_mega_miss"} {
		s.counter("server."+c, "")
	}
	for w := 0; w < e.opts.Concurrency; w++ {
		s.counter(fmt.Sprintf("server.worker_%d.watchdog_miss", w), "")
		s.counter(fmt.Sprintf("server.worker_%d.watchdog_mega_miss", w), "")
	}
	s.histogram("server.initialization_time_ms", "")
	s.gauge("control_plane.connected_state", "", 0, true)
	s.gauge("control_plane.pending_requests", "", 0, false)
	s.counter("control_plane.rate_limit_enforced", "")
	s.get("control_plane.identifier", TextReadout, "", false)
	for _, c := range []string{"cluster_added", "cluster_modified", "cluster_removed", "cluster_updated", "cluster_updated_via_merge", "update_merge_cancelled", "update_out_of_merge_window", "cds.update_attempt", "cds.update_success", "cds.update_rejected", "cds.update_failure", "cds.init_fetch_timeout", "cds.update_empty"} {
		s.counter("cluster_manager."+c, "")
	}
	s.gauge("cluster_manager.active_clusters", "", 0, true)
	s.gauge("cluster_manager.warming_clusters", "", 0, true)
	s.gauge("cluster_manager.cds.version", "", 0, false)
	s.gauge("cluster_manager.cds.update_time", "", 0, false)
	for _, c := range []string{"listener_added", "listener_modified", "listener_removed", "listener_stopped", "listener_create_success", "listener_create_failure", "listener_in_place_updated", "lds.update_attempt", "lds.update_success", "lds.update_rejected", "lds.update_failure", "lds.init_fetch_timeout", "lds.update_empty"} {
		s.counter("listener_manager."+c, "")
	}
	s.gauge("listener_manager.total_listeners_active", "", 0, true)
	s.gauge("listener_manager.total_listeners_warming", "", 0, true)
	s.gauge("listener_manager.total_listeners_draining", "", 0, true)
	s.gauge("listener_manager.total_filter_chains_draining", "", 0, true)
	s.gauge("listener_manager.workers_started", "", 1, true)
	s.gauge("listener_manager.lds.version", "", 0, false)
	s.gauge("listener_manager.lds.update_time", "", 0, false)
	s.counter("runtime.load_success", "").add(1)
	s.counter("runtime.load_error", "")
	s.counter("runtime.override_dir_not_exists", "").add(1)
	s.gauge("runtime.num_keys", "", 0, true)
	s.gauge("runtime.num_layers", "", 2, true)
	s.gauge("runtime.admin_overrides_active", "", 0, true)
	s.gauge("runtime.deprecated_feature_seen_since_process_start", "", 0, true)
	// The admin listener's own HTTP connection manager.
	e.hcmStats("admin", "http:admin")
	for _, p := range e.opts.HTTPPrefixes {
		e.hcmStats(p, "http:"+p)
	}
	for _, p := range e.opts.TCPPrefixes {
		e.tcpStats(p, "tcp:"+p)
	}
	if e.opts.AppMeshExtension {
		s.gauge("appmesh.ActiveConnectionCount", "", 0, false)
		for _, c := range []string{"NewConnectionCount", "ProcessedBytes", "RequestCount", "GrpcRequestCount"} {
			s.counter("appmesh."+c, "")
		}
	}
}

var clusterCounters = []string{
	"assignment_stale", "assignment_timeout_received", "bind_errors", "default.total_match_count",
	"lb_healthy_panic", "lb_local_cluster_not_ok", "lb_recalculate_zone_structures", "lb_zone_cluster_too_small",
	"lb_zone_no_capacity_left", "lb_zone_number_differs", "lb_zone_routing_all_directly",
	"lb_zone_routing_cross_zone", "lb_zone_routing_sampled", "membership_change", "original_dst_host_invalid",
	"retry_or_shadow_abandoned", "update_attempt", "update_empty", "update_failure", "update_no_rebuild",
	"update_success", "upstream_cx_close_notify", "upstream_cx_connect_attempts_exceeded",
	"upstream_cx_connect_fail", "upstream_cx_connect_timeout", "upstream_cx_connect_with_0_rtt",
	"upstream_cx_destroy", "upstream_cx_destroy_local", "upstream_cx_destroy_local_with_active_rq",
	"upstream_cx_destroy_remote", "upstream_cx_destroy_remote_with_active_rq", "upstream_cx_destroy_with_active_rq",
	"upstream_cx_http1_total", "upstream_cx_http2_total", "upstream_cx_http3_total", "upstream_cx_idle_timeout",
	"upstream_cx_max_duration_reached", "upstream_cx_max_requests", "upstream_cx_none_healthy",
	"upstream_cx_overflow", "upstream_cx_pool_overflow", "upstream_cx_protocol_error",
	"upstream_cx_rx_bytes_total", "upstream_cx_total", "upstream_cx_tx_bytes_total",
	"upstream_flow_control_backed_up_total", "upstream_flow_control_drained_total",
	"upstream_flow_control_paused_reading_total", "upstream_flow_control_resumed_reading_total",
	"upstream_http3_broken", "upstream_internal_redirect_failed_total", "upstream_internal_redirect_succeeded_total",
	"upstream_rq_cancelled", "upstream_rq_completed", "upstream_rq_maintenance_mode", "upstream_rq_max_duration_reached",
	"upstream_rq_pending_failure_eject", "upstream_rq_pending_overflow", "upstream_rq_pending_total",
	"upstream_rq_per_try_idle_timeout", "upstream_rq_per_try_timeout", "upstream_rq_retry",
	"upstream_rq_retry_backoff_exponential", "upstream_rq_retry_backoff_ratelimited", "upstream_rq_retry_limit_exceeded",
	"upstream_rq_retry_overflow", "upstream_rq_retry_success", "upstream_rq_rx_reset", "upstream_rq_timeout",
	"upstream_rq_total", "upstream_rq_tx_reset",
}

var clusterGauges = []string{
	"circuit_breakers.default.cx_open", "circuit_breakers.default.cx_pool_open", "circuit_breakers.default.rq_open",
	"circuit_breakers.default.rq_pending_open", "circuit_breakers.default.rq_retry_open",
	"circuit_breakers.high.cx_open", "circuit_breakers.high.cx_pool_open", "circuit_breakers.high.rq_open",
	"circuit_breakers.high.rq_pending_open", "circuit_breakers.high.rq_retry_open",
	"lb_subsets_active", "upstream_cx_active", "upstream_cx_rx_bytes_buffered", "upstream_cx_tx_bytes_buffered",
	"upstream_rq_active", "upstream_rq_pending_active",
}

// clusterStats creates the stats of one cluster.
func (e *Envoy) clusterStats(c *clusterv3.Cluster) {
	s := e.st
	owner := "cluster:" + c.GetName()
	root := "cluster." + clusterStatName(c) + "."
	for _, n := range clusterCounters {
		s.counter(root+n, owner)
	}
	for _, n := range clusterGauges {
		s.gauge(root+n, owner, 0, false)
	}
	hosts := uint64(0)
	for _, l := range c.GetLoadAssignment().GetEndpoints() {
		hosts += uint64(len(l.GetLbEndpoints()))
	}
	s.gauge(root+"membership_total", owner, hosts, true)
	s.gauge(root+"membership_healthy", owner, hosts, true)
	s.gauge(root+"membership_degraded", owner, 0, true)
	s.gauge(root+"membership_excluded", owner, 0, true)
	s.gauge(root+"max_host_weight", owner, min(hosts, 1), true)
	s.gauge(root+"version", owner, 0, true)
	s.histogram(root+"upstream_cx_connect_ms", owner)
	s.histogram(root+"upstream_cx_length_ms", owner)
}

// clusterStatName is the name a cluster's stats use: alt_stat_name if set.
func clusterStatName(c *clusterv3.Cluster) string {
	if c.GetAltStatName() != "" {
		return c.GetAltStatName()
	}
	return c.GetName()
}

func (e *Envoy) hcmStats(prefix, owner string) {
	s := e.st
	root := "http." + prefix + "."
	for _, n := range []string{
		"downstream_cx_delayed_close_timeout", "downstream_cx_destroy", "downstream_cx_destroy_active_rq",
		"downstream_cx_destroy_local", "downstream_cx_destroy_local_active_rq", "downstream_cx_destroy_remote",
		"downstream_cx_destroy_remote_active_rq", "downstream_cx_drain_close", "downstream_cx_http1_total",
		"downstream_cx_http2_total", "downstream_cx_http3_total", "downstream_cx_idle_timeout",
		"downstream_cx_max_duration_reached", "downstream_cx_max_requests_reached", "downstream_cx_overload_disable_keepalive",
		"downstream_cx_protocol_error", "downstream_cx_rx_bytes_total", "downstream_cx_ssl_total", "downstream_cx_total",
		"downstream_cx_tx_bytes_total", "downstream_cx_upgrades_total", "downstream_flow_control_paused_reading_total",
		"downstream_flow_control_resumed_reading_total", "downstream_rq_1xx", "downstream_rq_2xx", "downstream_rq_3xx",
		"downstream_rq_4xx", "downstream_rq_5xx", "downstream_rq_completed", "downstream_rq_failed_path_normalization",
		"downstream_rq_header_timeout", "downstream_rq_http1_total", "downstream_rq_http2_total", "downstream_rq_http3_total",
		"downstream_rq_idle_timeout", "downstream_rq_max_duration_reached", "downstream_rq_non_relative_path",
		"downstream_rq_overload_close", "downstream_rq_redirected_with_normalized_path", "downstream_rq_response_before_rq_complete",
		"downstream_rq_rx_reset", "downstream_rq_timeout", "downstream_rq_too_large", "downstream_rq_total",
		"downstream_rq_tx_reset", "downstream_rq_ws_on_non_ws_route", "no_cluster", "no_route", "passthrough_internal_redirect_bad_location",
		"rq_direct_response", "rq_redirect", "rq_reset_after_downstream_response_started", "rq_total",
	} {
		s.counter(root+n, owner)
	}
	for _, n := range []string{"downstream_cx_active", "downstream_cx_http1_active", "downstream_cx_http2_active", "downstream_cx_http3_active",
		"downstream_cx_rx_bytes_buffered", "downstream_cx_ssl_active", "downstream_cx_tx_bytes_buffered", "downstream_cx_upgrades_active",
		"downstream_rq_active"} {
		s.gauge(root+n, owner, 0, false)
	}
	s.histogram(root+"downstream_cx_length_ms", owner)
	s.histogram(root+"downstream_rq_time", owner)
}

func (e *Envoy) tcpStats(prefix, owner string) {
	s := e.st
	root := "tcp." + prefix + "."
	for _, n := range []string{"downstream_cx_no_route", "downstream_cx_rx_bytes_total", "downstream_cx_total",
		"downstream_cx_tx_bytes_total", "downstream_flow_control_paused_reading_total",
		"downstream_flow_control_resumed_reading_total", "early_data_received_count_total", "idle_timeout",
		"max_downstream_connection_duration", "on_demand_cluster_attempt", "on_demand_cluster_missing",
		"on_demand_cluster_success", "on_demand_cluster_timeout", "upstream_flush_total"} {
		s.counter(root+n, owner)
	}
	for _, n := range []string{"downstream_cx_rx_bytes_buffered", "downstream_cx_tx_bytes_buffered", "upstream_flush_active"} {
		s.gauge(root+n, owner, 0, false)
	}
}

func (e *Envoy) listenerStats(le *listenerEntry) {
	s := e.st
	owner := "listener:" + le.root
	root := "listener." + le.root + "."
	for _, n := range []string{"downstream_cx_destroy", "downstream_cx_overflow", "downstream_cx_overload_reject",
		"downstream_cx_total", "downstream_global_cx_overflow", "downstream_listener_filter_error",
		"downstream_listener_filter_remote_close", "downstream_pre_cx_timeout", "extension_config_missing",
		"network_extension_config_missing", "no_filter_chain_match"} {
		s.counter(root+n, owner)
	}
	s.gauge(root+"downstream_cx_active", owner, 0, false)
	s.gauge(root+"downstream_pre_cx_active", owner, 0, false)
	s.histogram(root+"downstream_cx_length_ms", owner)
	for _, p := range le.hcm {
		for _, n := range []string{"downstream_rq_1xx", "downstream_rq_2xx", "downstream_rq_3xx", "downstream_rq_4xx", "downstream_rq_5xx", "downstream_rq_completed"} {
			s.counter(root+"http."+p+"."+n, owner)
		}
	}
}

// ListenerStatRoot is the token Envoy's listener stats use after
// "listener.": the stat_prefix if set, else the address with ':' turned
// into '_' (0.0.0.0_15000, [__]_15000), or the pipe path.
func ListenerStatRoot(l *listenerv3.Listener) string {
	if l.GetStatPrefix() != "" {
		return l.GetStatPrefix()
	}
	a := l.GetAddress()
	if p := a.GetPipe(); p != nil {
		return p.GetPath()
	}
	sa := a.GetSocketAddress()
	host := sa.GetAddress()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := ""
	if sa.GetNamedPort() != "" {
		port = sa.GetNamedPort()
	} else {
		port = fmt.Sprint(sa.GetPortValue())
	}
	return strings.ReplaceAll(host+":"+port, ":", "_")
}

// filterPrefixes decodes the typed configs of a listener's network filters.
func filterPrefixes(l *listenerv3.Listener) (hcm, tcp []string) {
	chains := append([]*listenerv3.FilterChain(nil), l.GetFilterChains()...)
	if l.GetDefaultFilterChain() != nil {
		chains = append(chains, l.GetDefaultFilterChain())
	}
	seenH, seenT := map[string]bool{}, map[string]bool{}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil {
				continue
			}
			var h hcmv3.HttpConnectionManager
			var t tcpv3.TcpProxy
			switch {
			case tc.MessageIs(&h) && tc.UnmarshalTo(&h) == nil:
				if !seenH[h.GetStatPrefix()] {
					seenH[h.GetStatPrefix()] = true
					hcm = append(hcm, h.GetStatPrefix())
				}
			case tc.MessageIs(&t) && tc.UnmarshalTo(&t) == nil:
				if !seenT[t.GetStatPrefix()] {
					seenT[t.GetStatPrefix()] = true
					tcp = append(tcp, t.GetStatPrefix())
				}
			}
		}
	}
	return hcm, tcp
}

// SetStatic sets the static clusters and listeners (the bootstrap's
// static_resources).
func (e *Envoy) SetStatic(clusters []*clusterv3.Cluster, listeners []*listenerv3.Listener) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setStaticLocked(clusters, listeners)
}

func (e *Envoy) setStaticLocked(clusters []*clusterv3.Cluster, listeners []*listenerv3.Listener) {
	now := e.now()
	for n, c := range e.clusters {
		if c.static {
			delete(e.clusters, n)
		}
	}
	for n, l := range e.listeners {
		if l.static {
			delete(e.listeners, n)
		}
	}
	for _, c := range clusters {
		e.clusters[c.GetName()] = &clusterEntry{c: c, updated: now, static: true}
		e.st.counter("cluster_manager.cluster_added", "").add(1)
	}
	for _, l := range listeners {
		e.listeners[l.GetName()] = e.newListenerEntry(l, "", now, true)
		e.st.counter("listener_manager.listener_added", "").add(1)
		e.st.counter("listener_manager.listener_create_success", "").add(uint64(e.opts.Concurrency))
	}
	e.syncStatsLocked()
}

func (e *Envoy) newListenerEntry(l *listenerv3.Listener, version string, now time.Time, static bool) *listenerEntry {
	le := &listenerEntry{l: l, version: version, updated: now, static: static, root: ListenerStatRoot(l)}
	le.hcm, le.tcp = filterPrefixes(l)
	return le
}

// SetConfig replaces the dynamic clusters and listeners, as a CDS and an
// LDS update would. versions maps type URLs (resource.ClusterType,
// resource.ListenerType) to the versions of those updates; a resource whose
// content did not change keeps its version_info and last_updated. Stats of
// removed clusters and listeners disappear; new ones get theirs.
func (e *Envoy) SetConfig(clusters []*clusterv3.Cluster, listeners []*listenerv3.Listener, versions map[string]string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	s := e.st
	cv, lv := versions[resource.ClusterType], versions[resource.ListenerType]

	// Clusters.
	seen := map[string]bool{}
	for _, c := range clusters {
		seen[c.GetName()] = true
		old := e.clusters[c.GetName()]
		switch {
		case old == nil || old.static:
			e.clusters[c.GetName()] = &clusterEntry{c: c, version: cv, updated: now}
			s.counter("cluster_manager.cluster_added", "").add(1)
		case !proto.Equal(old.c, c):
			e.clusters[c.GetName()] = &clusterEntry{c: c, version: cv, updated: now}
			s.counter("cluster_manager.cluster_modified", "").add(1)
			s.counter("cluster_manager.cluster_updated", "").add(1)
		}
	}
	for n, c := range e.clusters {
		if !c.static && !seen[n] {
			delete(e.clusters, n)
			s.counter("cluster_manager.cluster_removed", "").add(1)
		}
	}
	s.counter("cluster_manager.cds.update_attempt", "").add(1)
	s.counter("cluster_manager.cds.update_success", "").add(1)
	if len(clusters) == 0 {
		s.counter("cluster_manager.cds.update_empty", "").add(1)
	}
	s.gauge("cluster_manager.cds.version", "", versionHash(cv), false).set(versionHash(cv))
	s.gauge("cluster_manager.cds.update_time", "", 0, false).set(uint64(now.UnixMilli()))
	e.versions[resource.ClusterType] = cv
	e.updated[resource.ClusterType] = now

	// Listeners.
	seen = map[string]bool{}
	for _, l := range listeners {
		seen[l.GetName()] = true
		old := e.listeners[l.GetName()]
		switch {
		case old == nil || old.static:
			e.listeners[l.GetName()] = e.newListenerEntry(l, lv, now, false)
			s.counter("listener_manager.listener_added", "").add(1)
			s.counter("listener_manager.listener_create_success", "").add(uint64(e.opts.Concurrency))
		case !proto.Equal(old.l, l):
			e.listeners[l.GetName()] = e.newListenerEntry(l, lv, now, false)
			s.counter("listener_manager.listener_modified", "").add(1)
			s.counter("listener_manager.listener_create_success", "").add(uint64(e.opts.Concurrency))
		}
	}
	for n, l := range e.listeners {
		if !l.static && !seen[n] {
			delete(e.listeners, n)
			s.counter("listener_manager.listener_removed", "").add(1)
		}
	}
	s.counter("listener_manager.lds.update_attempt", "").add(1)
	s.counter("listener_manager.lds.update_success", "").add(1)
	if len(listeners) == 0 {
		s.counter("listener_manager.lds.update_empty", "").add(1)
	}
	s.gauge("listener_manager.lds.version", "", versionHash(lv), false).set(versionHash(lv))
	s.gauge("listener_manager.lds.update_time", "", 0, false).set(uint64(now.UnixMilli()))
	e.versions[resource.ListenerType] = lv
	e.updated[resource.ListenerType] = now
	e.syncStatsLocked()
}

// SetRoutes replaces the dynamic route configurations (what RDS delivered);
// they appear in /config_dump's RoutesConfigDump.
func (e *Envoy) SetRoutes(routes []*routev3.RouteConfiguration, version string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.now()
	seen := map[string]bool{}
	for _, r := range routes {
		seen[r.GetName()] = true
		old := e.routes[r.GetName()]
		if old == nil || !proto.Equal(old.r, r) {
			e.routes[r.GetName()] = &routeEntry{r: r, version: version, updated: now}
		}
	}
	for n, r := range e.routes {
		if !r.static && !seen[n] {
			delete(e.routes, n)
		}
	}
	e.versions[resource.RouteType] = version
}

// syncStatsLocked creates the stats of every configured resource and
// removes those of resources that are gone.
func (e *Envoy) syncStatsLocked() {
	owners := map[string]bool{"": true, "http:admin": true}
	for _, p := range e.opts.HTTPPrefixes {
		owners["http:"+p] = true
	}
	for _, p := range e.opts.TCPPrefixes {
		owners["tcp:"+p] = true
	}
	var active uint64
	for _, c := range e.clusters {
		owners["cluster:"+c.c.GetName()] = true
		e.clusterStats(c.c)
		active++
	}
	e.st.gauge("cluster_manager.active_clusters", "", 0, false).set(active)
	var lactive uint64
	for _, l := range e.listeners {
		owners["listener:"+l.root] = true
		e.listenerStats(l)
		for _, p := range l.hcm {
			owners["http:"+p] = true
			e.hcmStats(p, "http:"+p)
		}
		for _, p := range l.tcp {
			owners["tcp:"+p] = true
			e.tcpStats(p, "tcp:"+p)
		}
		lactive++
	}
	e.st.gauge("listener_manager.total_listeners_active", "", 0, false).set(lactive)
	for n, st := range e.st.stats {
		if !owners[st.owner] {
			delete(e.st.stats, n)
		}
	}
}

// versionHash is Envoy's version gauge: xxHash64 of the version string.
func versionHash(v string) uint64 { return xxhash.Sum64String(v) }

// Reset simulates a restart: every stat is back to its state at start
// (counters 0, response-code stats gone, histograms empty), uptime starts
// again; configuration, state and log levels are kept.
func (e *Envoy) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st = newStore(e.st.tags)
	e.start = e.now()
	e.createServerStats()
	e.syncStatsLocked()
	e.st.gauge("control_plane.connected_state", "", 0, false).set(b2u(e.connected))
}

// ResetCounters is POST /reset_counters: every counter to 0.
func (e *Envoy) ResetCounters() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, st := range e.st.stats {
		if st.kind == Counter {
			st.value = 0
		}
	}
}

// Flush merges the histograms, as Envoy does every stats_flush_interval:
// interval statistics are then those recorded since the previous Flush.
func (e *Envoy) Flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushLocked()
}

func (e *Envoy) flushLocked() {
	for _, st := range e.st.stats {
		if st.kind == Histogram {
			st.hist.merge()
		}
	}
}

// State returns the server state.
func (e *Envoy) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

// SetState sets the server state (server.state and server.live follow).
func (e *Envoy) SetState(s State) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.setStateLocked(s)
}

func (e *Envoy) setStateLocked(s State) {
	if e.state != Live && s == Live {
		e.st.histogram("server.initialization_time_ms", "").hist.record(float64(e.now().Sub(e.start).Milliseconds()))
	}
	e.state = s
	e.st.gauge("server.state", "", 0, false).set(uint64(s))
	e.st.gauge("server.live", "", 0, false).set(b2u(s == Live))
}

// SetConnected sets control_plane.connected_state.
func (e *Envoy) SetConnected(up bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.connected = up
	e.st.gauge("control_plane.connected_state", "", 0, false).set(b2u(up))
}

// SetControlPlaneIdentifier sets the control_plane.identifier text readout.
func (e *Envoy) SetControlPlaneIdentifier(id string) {
	e.SetText("control_plane.identifier", id)
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// Calls returns every admin request answered so far.
func (e *Envoy) Calls() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Call(nil), e.calls...)
}

// Drains returns the POST /drain_listeners calls.
func (e *Envoy) Drains() []DrainCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]DrainCall(nil), e.drains...)
}

// OnDrain sets a function called after each POST /drain_listeners.
func (e *Envoy) OnDrain(f func(DrainCall)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onDrain = f
}

// HealthCheckFailed reports whether POST /healthcheck/fail is in force.
func (e *Envoy) HealthCheckFailed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hcFailed
}

// Quit is closed by POST /quitquitquit.
func (e *Envoy) Quit() <-chan struct{} { return e.quit }

// LogLevels returns each logger's level.
func (e *Envoy) LogLevels() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]string{}
	for _, l := range e.loggers {
		out[l.name] = l.level
	}
	return out
}

// SetLogLevel sets every logger's level (as --log-level does); it returns an
// error for a level Envoy does not know.
func (e *Envoy) SetLogLevel(level string) error {
	if !validLevel(level) {
		return fmt.Errorf("unknown logger level %q", level)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.loggers {
		e.loggers[i].level = level
	}
	return nil
}

// Clusters returns the names of the clusters (static and dynamic), sorted.
func (e *Envoy) Clusters() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for n := range e.clusters {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Cluster returns a configured cluster, or nil.
func (e *Envoy) Cluster(name string) *clusterv3.Cluster {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.clusters[name]; c != nil {
		return c.c
	}
	return nil
}

// ListenerInfo describes one configured listener.
type ListenerInfo struct {
	Name      string
	StatRoot  string
	Direction corev3.TrafficDirection
	HTTP, TCP []string // stat prefixes of its HTTP connection managers and TCP proxies
	Static    bool
}

// Listeners describes the configured listeners, sorted by name.
func (e *Envoy) Listeners() []ListenerInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []ListenerInfo
	for n, l := range e.listeners {
		out = append(out, ListenerInfo{Name: n, StatRoot: l.root, Direction: l.l.GetTrafficDirection(), HTTP: l.hcm, TCP: l.tcp, Static: l.static})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
