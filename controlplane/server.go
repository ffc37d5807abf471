// Package controlplane serves App Mesh configuration to Envoys and
// proxyless gRPC clients over ADS (state of the world and delta), with
// go-control-plane's server and snapshot cache.
//
// Configurations come from a Source (files today). Each valid one is
// translated per node, lazily: a node's resources are built when it first
// asks and rebuilt on every change, and the node is sent a new snapshot
// only when its own resources changed, type by type. An invalid
// configuration is rejected whole, and the last good one keeps being
// served.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/meshd/meshd/controlplane/translate"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// Update is one configuration from a Source: a valid Config, or the
// problems that made it invalid.
type Update struct {
	Config   *model.Config
	Problems []load.Problem
	Warnings []load.Problem
	// Resources counts the resources loaded.
	Resources int
}

// Source delivers configurations. Run calls apply with the first
// configuration as soon as it has one, then once per change, until ctx is
// cancelled.
type Source interface {
	Run(ctx context.Context, apply func(Update)) error
}

// Config configures a Server.
type Config struct {
	Log       *slog.Logger
	Registry  prometheus.Registerer
	Translate translate.Options
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Server is the ADS server.
type Server struct {
	log   *slog.Logger
	cache cache.SnapshotCache
	opt   translate.Options
	now   func() time.Time
	m     *metrics

	mu      sync.Mutex
	tr      *translate.Translator
	nodes   map[string]*nodeState
	streams map[int64]*streamState
	ready   chan struct{}
}

// nodeState is what the server knows of one node (one id, one flavor).
type nodeState struct {
	key      string
	node     appmesh.Resource
	flavor   translate.Flavor
	err      error // translation error of the current config
	versions map[resource.Type]string
	counts   map[resource.Type]int
	acked    map[resource.Type]string
	streams  int
	nack     *nack
	warnings []string
}

type nack struct {
	Type    string    `json:"type"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

type streamState struct {
	key    string
	flavor translate.Flavor
}

// New returns a Server with no configuration yet: clients wait until the
// first one is applied.
func New(cfg Config) *Server {
	s := &Server{
		log: cfg.Log, opt: cfg.Translate, now: cfg.Now,
		nodes: map[string]*nodeState{}, streams: map[int64]*streamState{}, ready: make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.m = newMetrics(cfg.Registry)
	s.cache = cache.NewSnapshotCache(false, nodeHash{}, logger{cfg.Log})
	return s
}

// nodeHash keys the cache by node resource and flavor.
type nodeHash struct{}

func (nodeHash) ID(n *corev3.Node) string {
	key, _, _, _ := nodeKey(n)
	return key
}

// flavorOf tells a proxyless gRPC client from Envoy by its user agent.
func flavorOf(n *corev3.Node) translate.Flavor {
	if strings.HasPrefix(strings.ToLower(n.GetUserAgentName()), "grpc") {
		return translate.GRPC
	}
	return translate.Envoy
}

// nodeKey parses a node's id (an ARN or mesh/<mesh>/virtualNode/<name>).
func nodeKey(n *corev3.Node) (key string, r appmesh.Resource, f translate.Flavor, err error) {
	f = flavorOf(n)
	r, err = appmesh.ParseResource(n.GetId())
	if err != nil {
		return "invalid:" + n.GetId(), r, f, err
	}
	return r.ShortForm() + "|" + f.String(), r, f, nil
}

// Ready is closed once a first configuration is being served.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Apply serves u if it is valid; otherwise it logs the problems and keeps
// serving the last good configuration.
func (s *Server) Apply(u Update) {
	for _, w := range u.Warnings {
		s.log.Warn("configuration warning", "problem", w.Error())
	}
	if u.Config == nil {
		for _, p := range u.Problems {
			s.log.Error("configuration rejected", "problem", p.Error())
		}
		s.m.reloads.WithLabelValues("rejected").Inc()
		s.m.problems.Set(float64(len(u.Problems)))
		s.log.Error("configuration rejected; the last good configuration is still served", "problems", len(u.Problems))
		return
	}
	start := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tr = translate.New(u.Config, s.opt)
	all := make([]*nodeState, 0, len(s.nodes))
	for _, ns := range s.nodes {
		all = append(all, ns)
	}
	var changed atomic.Int64
	translate.ForEach(len(all), func(i int) {
		if ok, _ := s.refresh(all[i]); ok {
			changed.Add(1)
		}
	})
	s.m.reloads.WithLabelValues("applied").Inc()
	s.m.problems.Set(0)
	s.m.lastApplied.Set(float64(s.now().Unix()))
	s.m.resources.Set(float64(u.Resources))
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
	s.log.Info("configuration applied", "resources", u.Resources, "nodes", len(s.nodes), "nodes_changed", changed.Load(), "took", s.now().Sub(start).String())
}

// refresh translates one node under the current config and updates its
// snapshot if anything changed. s.mu is held; refreshes of different nodes
// may run concurrently.
func (s *Server) refresh(ns *nodeState) (changed bool, err error) {
	start := time.Now()
	res, err := s.tr.Node(ns.node, ns.flavor)
	s.m.translate.Observe(time.Since(start).Seconds())
	if err != nil {
		if ns.err == nil || ns.err.Error() != err.Error() {
			s.log.Warn("cannot translate node; it keeps its last configuration", "node", ns.key, "err", err)
		}
		ns.err = err
		return false, err
	}
	ns.err = nil
	ns.warnings = res.Warnings
	same := ns.versions != nil
	for _, typ := range translate.ResourceTypes {
		same = same && ns.versions[typ] == res.Versions[typ]
	}
	if same {
		return false, nil
	}
	snap := &cache.Snapshot{}
	for _, typ := range translate.ResourceTypes {
		snap.Resources[cache.GetResponseType(typ)] = cache.NewResources(res.Versions[typ], res.Types[typ])
	}
	if err := s.cache.SetSnapshot(context.Background(), ns.key, snap); err != nil {
		return false, fmt.Errorf("set snapshot for %s: %w", ns.key, err)
	}
	ns.versions = res.Versions
	ns.counts = map[resource.Type]int{}
	for typ, items := range res.Types {
		ns.counts[typ] = len(items)
	}
	s.m.snapshots.Inc()
	return true, nil
}

// attach registers a stream's node, translating it on first sight. It
// returns an error the stream is closed with when the node is unknown.
func (s *Server) attach(id int64, n *corev3.Node) error {
	if n == nil {
		// Only a stream's first request must name the node.
		s.mu.Lock()
		_, known := s.streams[id]
		s.mu.Unlock()
		if known {
			return nil
		}
		s.m.rejected.WithLabelValues("bad_node_id").Inc()
		return status.Error(codes.InvalidArgument, "meshd: the first request of a stream must carry the node")
	}
	key, r, f, err := nodeKey(n)
	if err != nil {
		s.m.rejected.WithLabelValues("bad_node_id").Inc()
		return status.Errorf(codes.InvalidArgument, "meshd: node id %q is not a mesh endpoint: %v (want %s)", n.GetId(), err, appmesh.AcceptedForms)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.streams[id]; ok && st.key == key {
		return nil
	}
	ns := s.nodes[key]
	if ns == nil {
		ns = &nodeState{key: key, node: r, flavor: f, acked: map[resource.Type]string{}}
		if s.tr != nil {
			if _, err := s.refresh(ns); err != nil {
				s.m.rejected.WithLabelValues("unknown_node").Inc()
				// App Mesh closed such streams with status 3.
				return status.Errorf(codes.InvalidArgument, "meshd: %v", err)
			}
		}
		s.nodes[key] = ns
	}
	ns.streams++
	s.streams[id] = &streamState{key: key, flavor: f}
	s.m.streams.WithLabelValues(f.String()).Inc()
	s.log.Info("xDS stream opened", "stream", id, "node", n.GetId(), "flavor", f.String(), "user_agent", n.GetUserAgentName())
	return nil
}

func (s *Server) detach(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[id]
	if !ok {
		return
	}
	delete(s.streams, id)
	s.m.streams.WithLabelValues(st.flavor.String()).Dec()
	if ns := s.nodes[st.key]; ns != nil {
		ns.streams--
		if ns.streams == 0 {
			// Forget nodes nobody serves any more (pods come and go): a
			// reconnect translates the node again.
			delete(s.nodes, st.key)
			s.cache.ClearSnapshot(st.key)
		}
	}
	s.log.Info("xDS stream closed", "stream", id, "node", st.key)
}

// observe records an ACK or NACK.
func (s *Server) observe(id int64, typ, version, nonce string, detail *status.Status) {
	if nonce == "" {
		return // a subscription, not a reply
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[id]
	if !ok {
		return
	}
	ns := s.nodes[st.key]
	short := typ[strings.LastIndex(typ, ".")+1:]
	if detail != nil {
		s.m.nacks.WithLabelValues(short).Inc()
		ns.nack = &nack{Type: short, Version: version, Error: detail.Message(), At: s.now()}
		s.log.Warn("xDS update rejected (NACK)", "node", st.key, "type", short, "version", version, "error", detail.Message())
		return
	}
	s.m.acks.WithLabelValues(short).Inc()
	if version == "" {
		// Delta replies carry no version: the ACK is for what was sent.
		version = ns.versions[typ]
	}
	ns.acked[typ] = version
}

func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamClosedFunc: func(id int64, _ *corev3.Node) { s.detach(id) },
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			if err := s.attach(id, req.GetNode()); err != nil {
				return err
			}
			var detail *status.Status
			if req.GetErrorDetail() != nil {
				detail = status.FromProto(req.GetErrorDetail())
			}
			s.observe(id, req.GetTypeUrl(), req.GetVersionInfo(), req.GetResponseNonce(), detail)
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { s.detach(id) },
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			if err := s.attach(id, req.GetNode()); err != nil {
				return err
			}
			var detail *status.Status
			if req.GetErrorDetail() != nil {
				detail = status.FromProto(req.GetErrorDetail())
			}
			s.observe(id, req.GetTypeUrl(), "", req.GetResponseNonce(), detail)
			return nil
		},
	}
}

// Register adds the ADS service to a gRPC server.
func (s *Server) Register(ctx context.Context, gs *grpc.Server) {
	xds := serverv3.NewServer(ctx, s.cache, s.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xds)
}

// Serve serves ADS on ln until ctx is cancelled, then stops gracefully
// (streams are closed; clients reconnect to another replica).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	gs := grpc.NewServer(
		grpc.MaxRecvMsgSize(4<<20),
		// Thousands of mostly idle streams: no per-connection read buffer
		// (frames are read straight from the socket) and write buffers
		// shared between connections.
		grpc.ReadBufferSize(0),
		grpc.SharedWriteBuffer(true),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.Register(sctx, gs)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(ln) }()
	s.log.Info("serving ADS", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("ADS server: %w", err)
	case <-ctx.Done():
	}
	cancel()
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		gs.Stop()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("ADS server: %w", err)
	}
	return nil
}

// NodeStatus is one node's line on /debug/nodes.
type NodeStatus struct {
	Node    string            `json:"node"`
	Flavor  string            `json:"flavor"`
	Streams int               `json:"streams"`
	Served  map[string]string `json:"served"`
	Acked   map[string]string `json:"acked"`
	// InSync: every type served has been acknowledged at its version.
	InSync   bool     `json:"inSync"`
	LastNACK *nack    `json:"lastNack,omitempty"`
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Nodes reports every node seen, sorted.
func (s *Server) Nodes() []NodeStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeStatus, 0, len(s.nodes))
	for _, ns := range s.nodes {
		st := NodeStatus{Node: ns.node.ShortForm(), Flavor: ns.flavor.String(), Streams: ns.streams,
			Served: map[string]string{}, Acked: map[string]string{}, LastNACK: ns.nack, Warnings: ns.warnings, InSync: ns.versions != nil}
		for _, typ := range translate.ResourceTypes {
			short := typ[strings.LastIndex(typ, ".")+1:]
			if v := ns.versions[typ]; v != "" && ns.counts[typ] > 0 {
				st.Served[short] = v
			}
			if v := ns.acked[typ]; v != "" {
				st.Acked[short] = v
			}
		}
		for t, v := range st.Served {
			st.InSync = st.InSync && st.Acked[t] == v
		}
		if ns.err != nil {
			st.Error = ns.err.Error()
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Flavor < out[j].Flavor
	})
	return out
}

// Snapshot returns the resources currently served to a node key (for
// tests and debugging).
func (s *Server) Snapshot(key string) (map[resource.Type]map[string]types.Resource, error) {
	snap, err := s.cache.GetSnapshot(key)
	if err != nil {
		return nil, err
	}
	out := map[resource.Type]map[string]types.Resource{}
	for _, typ := range translate.ResourceTypes {
		out[typ] = snap.GetResources(typ)
	}
	return out, nil
}

// logger adapts slog to go-control-plane's logger.
type logger struct{ l *slog.Logger }

func (l logger) Debugf(f string, a ...any) { l.l.Debug(fmt.Sprintf(f, a...)) }
func (l logger) Infof(f string, a ...any)  { l.l.Debug(fmt.Sprintf(f, a...)) }
func (l logger) Warnf(f string, a ...any)  { l.l.Warn(fmt.Sprintf(f, a...)) }
func (l logger) Errorf(f string, a ...any) { l.l.Error(fmt.Sprintf(f, a...)) }
