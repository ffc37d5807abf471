package sds

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/internal/watch"
)

// SecretType is the SDS type URL.
const SecretType = resourcev3.SecretType

// Request limits.
const (
	maxNameLen        = 2048
	maxNamesPerReq    = 256
	DefaultMaxRequest = 1 << 20
	// MaxSocketPath is the longest Unix socket path Linux accepts.
	MaxSocketPath = 107
)

// ValidationMode selects how validation contexts are rendered.
type ValidationMode string

// Validation modes.
const (
	// ValidationAuto uses Envoy's SPIFFE validator for Envoy ≥ 1.18 (or
	// when the node does not say) unless the node's metadata sets
	// disable_spiffe_cert_validation; trusted_ca otherwise.
	ValidationAuto ValidationMode = "auto"
	// ValidationSPIFFE always uses the SPIFFE validator.
	ValidationSPIFFE ValidationMode = "spiffe"
	// ValidationTrustedCA always uses a plain trusted_ca.
	ValidationTrustedCA ValidationMode = "trusted-ca"
)

// Config configures the SDS server.
type Config struct {
	// Socket is the Unix socket path; SocketGroup (if ≥ 0) its group.
	Socket      string
	SocketGroup int
	CA          Authority
	Cache       *Cache
	// IdentitiesFile is polled every ReloadInterval; if empty, Identities
	// is used as is.
	IdentitiesFile string
	Identities     *Identities
	ReloadInterval time.Duration
	// Federated are other trust domains' bundles, served under their
	// trust-domain IDs and in ALL.
	Federated  []*x509bundle.Bundle
	Validation ValidationMode
	// Secret names (SPIRE's defaults: default, ROOTCA, ALL).
	DefaultSVIDName   string
	DefaultBundleName string
	AllBundlesName    string
	Limits            peer.Limits
	MaxStreamsPerConn uint32
	MaxRequestBytes   int
	// ShutdownGrace bounds the graceful stop of the gRPC server.
	ShutdownGrace time.Duration
	Log           *slog.Logger
	Registerer    prometheus.Registerer
}

type idState struct {
	ids *Identities
	gen uint64
}

// Server serves Envoy's SecretDiscoveryService v3 on a Unix socket.
type Server struct {
	secretv3.UnimplementedSecretDiscoveryServiceServer

	cfg      Config
	log      *slog.Logger
	td       spiffeid.TrustDomain
	creds    *peer.Credentials
	ids      atomic.Pointer[idState]
	idsFile  watch.File
	trust    atomic.Pointer[trustView]
	ready    atomic.Bool
	stopping chan struct{}
	stopOnce sync.Once

	mu      sync.Mutex
	streams map[*subscriber]struct{}

	m serverMetrics
}

type serverMetrics struct {
	streamsOpen  prometheus.Gauge
	streams      prometheus.Counter
	pushes       prometheus.Counter
	secretsSent  *prometheus.CounterVec
	acks         prometheus.Counter
	nacks        prometheus.Counter
	stale        prometheus.Counter
	fetches      *prometheus.CounterVec
	attestFail   *prometheus.CounterVec
	rejected     prometheus.Counter
	unknown      prometheus.Counter
	badRequests  *prometheus.CounterVec
	reloads      *prometheus.CounterVec
	reloadOK     prometheus.Gauge
	identities   prometheus.Gauge
	connsOpen    prometheus.GaugeFunc
	firstLatency prometheus.Histogram
}

// New validates cfg and returns a server; Run serves it.
func New(cfg Config) (*Server, error) {
	if cfg.CA == nil || cfg.Cache == nil || cfg.Log == nil || cfg.Registerer == nil {
		return nil, errors.New("sds: Config needs CA, Cache, Log and Registerer")
	}
	if cfg.Socket == "" {
		return nil, errors.New("sds: a socket path (--socket) is required")
	}
	if len(cfg.Socket) > MaxSocketPath {
		return nil, fmt.Errorf("socket path %q is %d bytes; Linux limits Unix socket paths to %d bytes", cfg.Socket, len(cfg.Socket), MaxSocketPath)
	}
	if cfg.DefaultSVIDName == "" {
		cfg.DefaultSVIDName = "default"
	}
	if cfg.DefaultBundleName == "" {
		cfg.DefaultBundleName = "ROOTCA"
	}
	if cfg.AllBundlesName == "" {
		cfg.AllBundlesName = "ALL"
	}
	if cfg.DefaultBundleName == cfg.AllBundlesName || cfg.DefaultBundleName == cfg.DefaultSVIDName || cfg.AllBundlesName == cfg.DefaultSVIDName {
		return nil, errors.New("the default SVID, default bundle and all-bundles secret names must differ")
	}
	switch cfg.Validation {
	case "":
		cfg.Validation = ValidationAuto
	case ValidationAuto, ValidationSPIFFE, ValidationTrustedCA:
	default:
		return nil, fmt.Errorf("unknown validation mode %q (want auto, spiffe or trusted-ca)", cfg.Validation)
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = time.Second
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 5 * time.Second
	}
	if cfg.MaxStreamsPerConn == 0 {
		cfg.MaxStreamsPerConn = 1024
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequest
	}
	td := cfg.CA.TrustDomain()
	for _, b := range cfg.Federated {
		if b.TrustDomain() == td {
			return nil, fmt.Errorf("federated bundle for %s is meshd's own trust domain", td)
		}
	}
	s := &Server{
		cfg: cfg, log: cfg.Log.With("component", "sds"), td: td,
		creds: peer.NewCredentials(cfg.Limits), stopping: make(chan struct{}),
		streams: map[*subscriber]struct{}{},
	}
	s.idsFile = watch.File{Path: cfg.IdentitiesFile, MaxSize: MaxIdentitiesFileSize}
	if cfg.IdentitiesFile != "" {
		data, _, err := s.idsFile.Read()
		if err != nil {
			return nil, fmt.Errorf("identities file: %w", err)
		}
		ids, err := ParseIdentities(data, td)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.IdentitiesFile, err)
		}
		s.idsFile.Mark(data)
		s.ids.Store(&idState{ids: ids, gen: 1})
	} else {
		if cfg.Identities == nil {
			return nil, errors.New("sds: an identities file or static identities are required")
		}
		s.ids.Store(&idState{ids: cfg.Identities, gen: 1})
	}
	if err := s.rebuildTrust(); err != nil {
		return nil, err
	}
	if err := s.initMetrics(); err != nil {
		return nil, err
	}
	s.creds.OnReject = func(p peer.Info) {
		s.m.rejected.Inc()
		s.log.Warn("connection over limit", "peer", p.String(), "err", p.Rejected)
	}
	return s, nil
}

func (s *Server) initMetrics() error {
	s.m = serverMetrics{
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshd_sds_streams_open", Help: "Open StreamSecrets streams."}),
		streams:     prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_sds_streams_total", Help: "StreamSecrets streams opened."}),
		pushes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_sds_pushes_total", Help: "DiscoveryResponses sent on streams."}),
		secretsSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_sds_secrets_sent_total", Help: "Secrets sent, by type (tls_certificate, validation_context)."}, []string{"type"}),
		acks:        prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_sds_acks_total", Help: "Responses Envoy accepted (ACK)."}),
		nacks:       prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_sds_nacks_total", Help: "Responses Envoy rejected (NACK, with error_detail)."}),
		stale:       prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_sds_stale_requests_total", Help: "Requests ignored because they carried a stale nonce."}),
		fetches:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_sds_fetches_total", Help: "FetchSecrets calls, by gRPC code."}, []string{"code"}),
		attestFail:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_sds_attestation_failures_total", Help: "Callers refused after attestation, by reason."}, []string{"reason"}),
		rejected:    prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_sds_connections_rejected_total", Help: "Connections refused for exceeding --max-conns or --max-conns-per-peer."}),
		unknown:     prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_sds_unknown_names_total", Help: "Requested secret names not available to the caller (kept open, sent if they appear)."}),
		badRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_sds_bad_requests_total", Help: "Requests refused as malformed, by reason."}, []string{"reason"}),
		reloads:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_sds_identities_reloads_total", Help: "Identities file reloads, by result."}, []string{"result"}),
		reloadOK:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshd_sds_identities_last_reload_success", Help: "1 if the last identities file change was applied, 0 if it was rejected."}),
		identities:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshd_sds_identities", Help: "Entries in the identities file in force."}),
		connsOpen: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meshd_sds_connections_open", Help: "Open connections on the SDS socket."},
			func() float64 { return float64(s.creds.Open()) }),
		firstLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "meshd_sds_first_response_seconds", Help: "Time from a stream's first request to its first response.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14),
		}),
	}
	s.m.reloadOK.Set(1)
	s.m.identities.Set(float64(s.ids.Load().ids.Len()))
	for _, c := range []prometheus.Collector{s.m.streamsOpen, s.m.streams, s.m.pushes, s.m.secretsSent, s.m.acks, s.m.nacks, s.m.stale,
		s.m.fetches, s.m.attestFail, s.m.rejected, s.m.unknown, s.m.badRequests, s.m.reloads, s.m.reloadOK, s.m.identities, s.m.connsOpen, s.m.firstLatency} {
		if err := s.cfg.Registerer.Register(c); err != nil {
			return fmt.Errorf("sds: register metrics: %w", err)
		}
	}
	return nil
}

// Ready reports whether the server is accepting connections.
func (s *Server) Ready() bool { return s.ready.Load() }

func (s *Server) rebuildTrust() error {
	v, err := newTrustView(s.cfg.CA.Bundle(), s.cfg.Federated)
	if err != nil {
		return fmt.Errorf("render trust bundle: %w", err)
	}
	s.trust.Store(v)
	return nil
}

func (s *Server) pokeAll() {
	s.mu.Lock()
	for sub := range s.streams {
		sub.poke()
	}
	s.mu.Unlock()
}

// RunReloader polls the identities file and applies valid changes until ctx
// is cancelled; an invalid file is logged, counted and ignored, and the last
// good one stays in force.
func (s *Server) RunReloader(ctx context.Context) error {
	if s.cfg.IdentitiesFile == "" {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(s.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.reloadIdentities()
	}
}

func (s *Server) reloadIdentities() {
	data, changed, err := s.idsFile.Read()
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		s.m.reloadOK.Set(0)
		s.log.Error("cannot read identities file; keeping the last good one", "file", s.cfg.IdentitiesFile, "err", err)
		return
	}
	if !changed {
		return
	}
	s.idsFile.Mark(data)
	ids, err := ParseIdentities(data, s.td)
	if err != nil {
		s.m.reloads.WithLabelValues("rejected").Inc()
		s.m.reloadOK.Set(0)
		s.log.Error("identities file rejected; keeping the last good one", "file", s.cfg.IdentitiesFile, "err", err)
		return
	}
	old := s.ids.Load()
	s.ids.Store(&idState{ids: ids, gen: old.gen + 1})
	s.m.reloads.WithLabelValues("applied").Inc()
	s.m.reloadOK.Set(1)
	s.m.identities.Set(float64(ids.Len()))
	s.log.Info("identities file reloaded", "file", s.cfg.IdentitiesFile, "entries", ids.Len())
	s.pokeAll()
}

// Run listens on the socket and serves until ctx is cancelled, then stops
// in stages: not ready, streams told to reconnect elsewhere, graceful stop
// bounded by ShutdownGrace, socket removed.
func (s *Server) Run(ctx context.Context) error {
	ln, err := ListenUnix(s.cfg.Socket, s.cfg.SocketGroup)
	if err != nil {
		return err
	}
	gs := grpc.NewServer(
		grpc.Creds(s.creds),
		grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes),
		grpc.MaxConcurrentStreams(s.cfg.MaxStreamsPerConn),
		// Small per-connection buffers: a node runs hundreds of Envoys,
		// and SDS messages are a few KiB. No read buffer at all: grpc-go
		// then reads frames straight from the socket, saving 4 KiB per
		// connection on connections that see a few frames an hour.
		grpc.ReadBufferSize(0),
		grpc.WriteBufferSize(4096),
		grpc.SharedWriteBuffer(true),
		grpc.InitialWindowSize(64<<10),
		grpc.InitialConnWindowSize(64<<10),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.UnaryInterceptor(s.unaryGate),
		grpc.StreamInterceptor(s.streamGate),
	)
	secretv3.RegisterSecretDiscoveryServiceServer(gs, s)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)

	watchDone := make(chan struct{})
	wctx, wcancel := context.WithCancel(ctx)
	go func() { defer close(watchDone); s.watchCA(wctx) }()
	defer func() { wcancel(); <-watchDone }()

	serveErr := make(chan error, 1)
	go func() { serveErr <- gs.Serve(ln) }()
	s.ready.Store(true)
	s.log.Info("serving SDS", "socket", s.cfg.Socket, "trust_domain", s.td.Name())
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		s.ready.Store(false)
		return fmt.Errorf("serve %s: %w", s.cfg.Socket, err)
	}
	s.ready.Store(false)
	hs.Shutdown()
	s.stopOnce.Do(func() { close(s.stopping) })
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("graceful stop timed out; closing remaining connections", "grace", s.cfg.ShutdownGrace)
		gs.Stop()
		<-stopped
	}
	<-serveErr
	s.log.Info("SDS stopped", "socket", s.cfg.Socket)
	return nil
}

// watchCA re-renders the trust view and wakes every stream when the CA's
// bundle changes.
func (s *Server) watchCA(ctx context.Context) {
	ch := s.cfg.CA.Changed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			ch = s.cfg.CA.Changed()
			if err := s.rebuildTrust(); err != nil {
				s.log.Error("cannot render the new trust bundle", "err", err)
				continue
			}
			s.pokeAll()
		}
	}
}

// ListenUnix prepares and listens on an SDS socket: the directory is
// created 0750 if missing, a stale socket is removed (a live one is an
// error), and the socket is made 0660, group-owned by group if ≥ 0.
func ListenUnix(path string, group int) (*net.UnixListener, error) {
	if len(path) > MaxSocketPath {
		return nil, fmt.Errorf("socket path %q is %d bytes; Linux limits Unix socket paths to %d bytes", path, len(path), MaxSocketPath)
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create socket directory: %w", err)
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			return nil, fmt.Errorf("socket directory: %w", err)
		}
		if group >= 0 {
			if err := os.Chown(dir, -1, group); err != nil {
				return nil, fmt.Errorf("socket directory %s: chgrp %d: %w", dir, group, err)
			}
		}
	} else if err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("another process is already serving on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if group >= 0 {
		if err := os.Chown(path, -1, group); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket %s: chgrp %d: %w", path, group, err)
		}
	}
	return ln, nil
}

// gate refuses calls from connections over a limit or without attestation.
func (s *Server) gate(ctx context.Context) error {
	p, ok := peer.FromContext(ctx)
	if !ok {
		s.m.attestFail.WithLabelValues("no_peer_credentials").Inc()
		return status.Error(codes.Unauthenticated, "meshd: caller could not be attested")
	}
	if p.Rejected != nil {
		return status.Error(codes.ResourceExhausted, p.Rejected.Error())
	}
	return nil
}

func (s *Server) unaryGate(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if err := s.gate(ctx); err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (s *Server) streamGate(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if err := s.gate(ss.Context()); err != nil {
		return err
	}
	return h(srv, ss)
}

// caller is an attested peer with the identities it is entitled to.
type caller struct {
	s          *Server
	peer       peer.Info
	sub        *subscriber
	gen        uint64
	identities []*Identity
	entries    map[string]*entry
	spiffe     bool
}

func (s *Server) newCaller(p peer.Info) (*caller, error) {
	c := &caller{s: s, peer: p, sub: newSubscriber(), entries: map[string]*entry{}}
	if err := c.refresh(); err != nil {
		return nil, err
	}
	return c, nil
}

// refresh re-matches the caller against the identities in force if they
// changed since the last match.
func (c *caller) refresh() error {
	st := c.s.ids.Load()
	if st.gen == c.gen {
		return nil
	}
	c.gen = st.gen
	c.identities = st.ids.Match(c.peer)
	if len(c.identities) == 0 {
		c.close()
		c.s.m.attestFail.WithLabelValues("no_identity").Inc()
		c.s.log.Warn("caller matches no identity", "peer", c.peer.String())
		return status.Errorf(codes.PermissionDenied, "meshd: no identity is registered for this caller (%s)", c.peer)
	}
	keep := map[string]bool{}
	for _, id := range c.identities {
		k := entryKey(id.SPIFFEID, id.DNSNames)
		keep[k] = true
		if _, ok := c.entries[k]; !ok {
			c.entries[k] = c.s.cfg.Cache.acquire(id, c.sub)
		}
	}
	for k, e := range c.entries {
		if !keep[k] {
			c.s.cfg.Cache.release(e, c.sub)
			delete(c.entries, k)
		}
	}
	return nil
}

func (c *caller) close() {
	for k, e := range c.entries {
		c.s.cfg.Cache.release(e, c.sub)
		delete(c.entries, k)
	}
}

// lookup resolves a secret name for this caller: its current version and
// rendered resource, or ok=false if the name is not available to it.
func (c *caller) lookup(name string, view *trustView) (version string, res *anypb.Any, ok bool, err error) {
	cfg := &c.s.cfg
	var id *Identity
	switch {
	case name == cfg.DefaultSVIDName:
		id = c.identities[0]
	case name == cfg.DefaultBundleName, name == c.s.td.IDString():
		return c.bundle(name, view, []string{c.s.td.Name()})
	case name == cfg.AllBundlesName:
		if !c.spiffe {
			return "", nil, false, nil // as SPIRE: ALL needs the SPIFFE validator
		}
		tds := []string{c.s.td.Name()}
		for _, f := range view.federated {
			tds = append(tds, f.name)
		}
		return c.bundle(name, view, tds)
	default:
		for _, cand := range c.identities {
			if cand.SPIFFEID.String() == name || slices.Contains(cand.SecretNames, name) {
				id = cand
				break
			}
		}
		if id == nil {
			// Only a bare trust-domain ID names a bundle (TrustDomainFromString
			// would also accept a workload ID and return its trust domain).
			if td, err := spiffeid.TrustDomainFromString(name); err == nil && name == td.IDString() {
				if _, found := view.bundlePEM(td.Name()); found {
					return c.bundle(name, view, []string{td.Name()})
				}
			}
			return "", nil, false, nil
		}
	}
	e := c.entries[entryKey(id.SPIFFEID, id.DNSNames)]
	is, err := c.s.cfg.Cache.get(e)
	if err != nil {
		return "", nil, false, err
	}
	res, err = is.anyFor(name)
	return is.version, res, err == nil, err
}

func (c *caller) bundle(name string, view *trustView, tds []string) (string, *anypb.Any, bool, error) {
	res, err := view.validationAny(name, tds, c.spiffe)
	if err != nil {
		return "", nil, false, err
	}
	mode := "ca"
	if c.spiffe {
		mode = "spiffe"
	}
	return view.version + ":" + mode, res, true, nil
}

// wildcard lists what an empty resource_names asks for: every identity of
// the caller and every trust domain's bundle (SPIRE's behaviour).
func (c *caller) wildcard(view *trustView) []string {
	var out []string
	for _, id := range c.identities {
		out = append(out, id.SPIFFEID.String())
	}
	out = append(out, c.s.td.IDString())
	for _, f := range view.federated {
		out = append(out, "spiffe://"+f.name)
	}
	return out
}

// useSPIFFE decides the validation context form for a node.
func useSPIFFE(mode ValidationMode, node *corev3.Node) bool {
	switch mode {
	case ValidationSPIFFE:
		return true
	case ValidationTrustedCA:
		return false
	}
	if v, ok := node.GetMetadata().GetFields()["disable_spiffe_cert_validation"]; ok {
		switch {
		case v.GetBoolValue():
			return false
		case v.GetStringValue() == "true":
			return false
		}
	}
	bv := node.GetUserAgentBuildVersion().GetVersion()
	if bv == nil {
		return true
	}
	return bv.GetMajorNumber() > 1 || bv.GetMajorNumber() == 1 && bv.GetMinorNumber() >= 18
}

// checkRequest refuses, counts and explains a malformed DiscoveryRequest
// (streams and FetchSecrets alike).
func (s *Server) checkRequest(req *discoveryv3.DiscoveryRequest) error {
	if req.GetTypeUrl() != "" && req.GetTypeUrl() != SecretType {
		s.m.badRequests.WithLabelValues("type_url").Inc()
		return status.Errorf(codes.InvalidArgument, "meshd: unsupported type_url %q (want %s)", req.GetTypeUrl(), SecretType)
	}
	if err := validateNames(req.GetResourceNames()); err != nil {
		s.m.badRequests.WithLabelValues("names").Inc()
		return status.Error(codes.InvalidArgument, "meshd: "+err.Error())
	}
	return nil
}

func validateNames(names []string) error {
	if len(names) > maxNamesPerReq {
		return fmt.Errorf("%d resource names (limit %d)", len(names), maxNamesPerReq)
	}
	for _, n := range names {
		if n == "" || len(n) > maxNameLen {
			return fmt.Errorf("resource names must be 1 to %d bytes", maxNameLen)
		}
	}
	return nil
}

func dedupe(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// FetchSecrets answers a one-off request with the named secrets.
func (s *Server) FetchSecrets(ctx context.Context, req *discoveryv3.DiscoveryRequest) (*discoveryv3.DiscoveryResponse, error) {
	resp, err := s.fetch(ctx, req)
	s.m.fetches.WithLabelValues(status.Code(err).String()).Inc()
	return resp, err
}

func (s *Server) fetch(ctx context.Context, req *discoveryv3.DiscoveryRequest) (*discoveryv3.DiscoveryResponse, error) {
	if err := s.checkRequest(req); err != nil {
		return nil, err
	}
	p, _ := peer.FromContext(ctx)
	c, err := s.newCaller(p)
	if err != nil {
		return nil, err
	}
	defer c.close()
	c.spiffe = useSPIFFE(s.cfg.Validation, req.GetNode())
	view := s.trust.Load()
	names := dedupe(req.GetResourceNames())
	if len(names) == 0 {
		names = c.wildcard(view)
	}
	resp := &discoveryv3.DiscoveryResponse{TypeUrl: SecretType}
	var versions, missing []string
	for _, n := range names {
		v, res, ok, err := c.lookup(n, view)
		if err != nil {
			return nil, status.Errorf(codes.Unavailable, "meshd: %v", err)
		}
		if !ok {
			missing = append(missing, n)
			continue
		}
		versions = append(versions, v)
		resp.Resources = append(resp.Resources, res)
	}
	if len(missing) > 0 {
		s.m.unknown.Add(float64(len(missing)))
		return nil, status.Errorf(codes.NotFound, "meshd: secrets not available to this caller: %s", strings.Join(missing, ", "))
	}
	resp.VersionInfo = strings.Join(versions, ",")
	return resp, nil
}

// StreamSecrets serves one SotW SDS stream.
func (s *Server) StreamSecrets(stream grpc.BidiStreamingServer[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]) error {
	ctx := stream.Context()
	p, _ := peer.FromContext(ctx)
	c, err := s.newCaller(p)
	if err != nil {
		return err
	}
	defer c.close()
	s.mu.Lock()
	s.streams[c.sub] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.streams, c.sub)
		s.mu.Unlock()
	}()
	s.m.streams.Inc()
	s.m.streamsOpen.Inc()
	defer s.m.streamsOpen.Dec()

	st := &streamState{caller: c, send: stream.Send, sent: map[string]string{}, unknown: map[string]bool{}}
	reqs := make(chan *discoveryv3.DiscoveryRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stopping:
			return status.Error(codes.Unavailable, "meshd: SDS server shutting down")
		case err := <-recvErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case req := <-reqs:
			if err := st.onRequest(req); err != nil {
				return err
			}
		case <-c.sub.wake:
			if !st.started {
				continue
			}
			if err := c.refresh(); err != nil {
				return err
			}
			if err := st.sync(); err != nil {
				return err
			}
		}
	}
}

// streamState is the xDS bookkeeping of one stream.
type streamState struct {
	*caller
	send     func(*discoveryv3.DiscoveryResponse) error
	started  bool
	wild     bool
	names    []string
	sent     map[string]string // name -> version last sent
	version  uint64
	nonce    string
	unknown  map[string]bool
	firstReq time.Time
}

func (st *streamState) onRequest(req *discoveryv3.DiscoveryRequest) error {
	s := st.s
	if err := s.checkRequest(req); err != nil {
		return err
	}
	first := !st.started
	if first {
		st.started = true
		st.firstReq = time.Now()
		st.spiffe = useSPIFFE(s.cfg.Validation, req.GetNode())
	}
	if st.nonce != "" && req.GetResponseNonce() != st.nonce {
		// A request that crossed our latest response; Envoy will answer
		// that response, so this one is obsolete (xDS protocol).
		s.m.stale.Inc()
		return nil
	}
	if st.nonce != "" {
		if d := req.GetErrorDetail(); d != nil {
			s.m.nacks.Inc()
			s.log.Warn("Envoy rejected secrets (NACK)", "peer", st.peer.String(), "version", req.GetVersionInfo(), "nonce", st.nonce, "error", d.GetMessage())
		} else {
			s.m.acks.Inc()
		}
	}
	names := dedupe(req.GetResourceNames())
	st.wild = len(names) == 0 && (first || st.wild)
	for n := range st.sent {
		if !slices.Contains(names, n) && !st.wild {
			delete(st.sent, n) // re-subscribing sends it again
		}
	}
	st.names = names
	return st.sync()
}

// sync sends every requested secret whose content differs from what this
// stream last sent, in one response; it sends nothing if nothing changed.
func (st *streamState) sync() error {
	view := st.s.trust.Load()
	names := st.names
	if st.wild {
		names = st.wildcard(view)
	}
	var resources []*anypb.Any
	pending := map[string]string{}
	for _, n := range names {
		v, res, ok, err := st.lookup(n, view)
		if err != nil {
			return status.Errorf(codes.Unavailable, "meshd: %v", err)
		}
		if !ok {
			if !st.unknown[n] {
				st.unknown[n] = true
				st.s.m.unknown.Inc()
				st.s.log.Info("secret not available to caller; stream kept open", "name", n, "peer", st.peer.String())
			}
			continue
		}
		delete(st.unknown, n)
		if st.sent[n] == v {
			continue
		}
		resources = append(resources, res)
		pending[n] = v
	}
	if len(resources) == 0 {
		return nil
	}
	st.version++
	nonce := newNonce()
	err := st.send(&discoveryv3.DiscoveryResponse{
		VersionInfo: strconv.FormatUint(st.version, 10),
		Resources:   resources,
		TypeUrl:     SecretType,
		Nonce:       nonce,
	})
	if err != nil {
		return err
	}
	if st.nonce == "" {
		st.s.m.firstLatency.Observe(time.Since(st.firstReq).Seconds())
	}
	st.nonce = nonce
	st.s.m.pushes.Inc()
	for n, v := range pending {
		st.sent[n] = v
		kind := "tls_certificate"
		if strings.HasPrefix(v, "bundle:") {
			kind = "validation_context"
		}
		st.s.m.secretsSent.WithLabelValues(kind).Inc()
	}
	return nil
}
