// Package caservice is meshd's CA service: it keeps the signing key in one
// place and lets meshd sidecars enroll with a credential — a single-use join
// token or a Kubernetes service-account token — and then renew their agent
// certificate and get workload X.509-SVIDs signed over mTLS. It never sees a
// private key: every certificate is requested with a CSR, and every SPIFFE ID
// and DNS name must be granted to the calling agent by an explicit Policy.
//
// The wire protocol is api/ca/v1 (gRPC over TLS 1.3, TCP or a Unix socket).
package caservice

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	grpcpeer "google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	cav1 "github.com/meshd/meshd/api/ca/v1"
	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/watch"
	"github.com/meshd/meshd/sds"
)

// MaxRequestBytes bounds every request message.
const MaxRequestBytes = 64 << 10

// Connection lifetime defaults (Config).
const (
	DefaultMaxConnectionIdle     = time.Minute
	DefaultMaxConnectionAge      = 10 * time.Minute
	DefaultMaxConnectionAgeGrace = 30 * time.Second
)

// Config configures a Server.
type Config struct {
	// CA signs; its state directory also holds the join tokens.
	CA *certs.CA
	// StateDir is the CA's state directory (join tokens live there).
	StateDir string
	// Listen is "host:port" or "unix:///path" (used by Run).
	Listen string
	// SocketGroup owns a Unix socket (-1: the process's group).
	SocketGroup int
	// PolicyFile is reloaded when it changes; a bad file is rejected and
	// the last good policy stays in force. Policy is used when
	// PolicyFile is empty (tests, embedding).
	PolicyFile     string
	Policy         *Policy
	ReloadInterval time.Duration
	// DNSNames go into the service's own certificate (clients dial one of
	// them, or verify the SPIFFE ID only).
	DNSNames []string
	// MaxConns bounds open connections (default 8192).
	MaxConns int
	// MaxConnectionIdle closes a connection with no call in progress for
	// this long (default DefaultMaxConnectionIdle). Sidecars close theirs
	// 100 ms after their last call (issuer.DefaultIdleTimeout); this is the
	// bound for clients that do not.
	MaxConnectionIdle time.Duration
	// MaxConnectionAge closes any connection after this long, ±10 %
	// (default DefaultMaxConnectionAge); calls in progress get
	// MaxConnectionAgeGrace more. It bounds the WatchBundle streams that
	// sidecars before the sync interval held: they reconnect and are sent
	// the bundle again.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	Now                   func() time.Time
	Log                   *slog.Logger
	Registerer            prometheus.Registerer
}

// Server is the CA service.
type Server struct {
	cfg      Config
	log      *slog.Logger
	td       spiffeid.TrustDomain
	tokens   TokenStore
	redeemer *redeemer

	pol    atomic.Pointer[policyState]
	polSrc watch.File

	certMu sync.Mutex
	cert   atomic.Pointer[servingCert]

	ready atomic.Bool
	m     serverMetrics

	cav1.UnimplementedCAServer
}

type policyState struct {
	policy *Policy
	k8s    *KubernetesVerifier
}

type servingCert struct {
	tls  *tls.Certificate
	leaf *x509.Certificate
}

type serverMetrics struct {
	requests    *prometheus.CounterVec
	denied      *prometheus.CounterVec
	enrollments *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	watchers    prometheus.Gauge
	conns       prometheus.Gauge
	reloads     *prometheus.CounterVec
}

// NewServer checks cfg and loads the policy.
func NewServer(cfg Config) (*Server, error) {
	if cfg.CA == nil || cfg.Log == nil || cfg.Registerer == nil || cfg.StateDir == "" {
		return nil, errors.New("caservice: Config needs CA, StateDir, Log and Registerer")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 8192
	}
	if cfg.MaxConnectionIdle <= 0 {
		cfg.MaxConnectionIdle = DefaultMaxConnectionIdle
	}
	if cfg.MaxConnectionAge <= 0 {
		cfg.MaxConnectionAge = DefaultMaxConnectionAge
	}
	if cfg.MaxConnectionAgeGrace <= 0 {
		cfg.MaxConnectionAgeGrace = DefaultMaxConnectionAgeGrace
	}
	if len(cfg.DNSNames) == 0 {
		cfg.DNSNames = []string{"localhost"}
	}
	for _, d := range cfg.DNSNames {
		if err := validDNSName(d); err != nil {
			return nil, fmt.Errorf("caservice: DNS name %q: %w", d, err)
		}
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "ca-service"), td: cfg.CA.TrustDomain()}
	s.tokens = TokenStore{Dir: cfg.StateDir, Now: cfg.Now}
	s.redeemer = &redeemer{store: s.tokens}
	if err := s.initMetrics(); err != nil {
		return nil, err
	}
	switch {
	case cfg.PolicyFile != "":
		s.polSrc = watch.File{Path: cfg.PolicyFile, MaxSize: MaxPolicySize}
		data, _, err := s.polSrc.Read()
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", cfg.PolicyFile, err)
		}
		st, err := s.buildPolicy(data)
		if err != nil {
			return nil, fmt.Errorf("policy %s: %w", cfg.PolicyFile, err)
		}
		s.polSrc.Mark(data)
		s.pol.Store(st)
	case cfg.Policy != nil:
		st, err := s.policyState(cfg.Policy)
		if err != nil {
			return nil, err
		}
		s.pol.Store(st)
	default:
		return nil, errors.New("caservice: a policy is required (nothing is granted without one)")
	}
	return s, nil
}

func (s *Server) buildPolicy(data []byte) (*policyState, error) {
	p, err := ParsePolicy(data, s.td)
	if err != nil {
		return nil, err
	}
	return s.policyState(p)
}

func (s *Server) policyState(p *Policy) (*policyState, error) {
	st := &policyState{policy: p}
	if p.Kubernetes != nil {
		v, err := NewKubernetesVerifier(*p.Kubernetes, KubernetesOptions{Now: s.cfg.Now, Log: s.log})
		if err != nil {
			return nil, err
		}
		st.k8s = v
	}
	return st, nil
}

func (s *Server) initMetrics() error {
	s.m = serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_ca_requests_total", Help: "CA service calls by method and gRPC status code.",
		}, []string{"method", "code"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_ca_denied_total", Help: "CA service requests refused, by reason.",
		}, []string{"reason"}),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_ca_enrollments_total", Help: "Agents enrolled, by credential.",
		}, []string{"mode"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "meshd_ca_request_duration_seconds", Help: "CA service unary call latency.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"method"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshd_ca_bundle_watchers", Help: "Open WatchBundle streams.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshd_ca_connections", Help: "Open connections to the CA service, in their TLS handshake or after it.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_ca_policy_reloads_total", Help: "Policy file reloads by result.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{s.m.requests, s.m.denied, s.m.enrollments, s.m.duration, s.m.watchers, s.m.conns, s.m.reloads} {
		if err := s.cfg.Registerer.Register(c); err != nil {
			return fmt.Errorf("caservice: register metrics: %w", err)
		}
	}
	return nil
}

// Ready reports whether the service is serving.
func (s *Server) Ready() bool { return s.ready.Load() }

// Run listens on cfg.Listen and serves until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	lis, err := Listen(s.cfg.Listen, s.cfg.SocketGroup)
	if err != nil {
		return err
	}
	return s.Serve(ctx, lis)
}

// Listen opens a CA service listener: "unix:///path" (socket 0660) or a
// TCP "host:port".
func Listen(addr string, group int) (net.Listener, error) {
	if p, ok := strings.CutPrefix(addr, "unix://"); ok {
		l, err := sds.ListenUnix(p, group)
		if err != nil {
			return nil, fmt.Errorf("ca service: %w", err)
		}
		return l, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ca service: %w", err)
	}
	return l, nil
}

// Serve serves on lis until ctx is cancelled, then stops gracefully (open
// WatchBundle streams end with Unavailable and agents reconnect).
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if _, err := s.serverCert(nil); err != nil {
		lis.Close()
		return fmt.Errorf("ca service certificate: %w", err)
	}
	tlsCfg := &tls.Config{
		MinVersion:            tls.VersionTLS13,
		GetCertificate:        s.serverCert,
		ClientAuth:            tls.RequestClientCert,
		VerifyPeerCertificate: s.verifyAgent,
	}
	gs := grpc.NewServer(
		grpc.Creds(boundedHandshakes{credentials.NewTLS(tlsCfg)}),
		// Agents send a few small messages per hour: no read buffer and a
		// small, shared write buffer save ~60 KiB per connection (the
		// defaults are 32 KiB each), which is most of the service's memory
		// with 1,000 agents connected.
		grpc.ReadBufferSize(0),
		grpc.WriteBufferSize(4096),
		grpc.SharedWriteBuffer(true),
		grpc.InitialWindowSize(64<<10),
		grpc.InitialConnWindowSize(64<<10),
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		grpc.MaxConcurrentStreams(64),
		grpc.ConnectionTimeout(10*time.Second),
		// Sidecars connect to sync or renew and leave (issuer.Remote);
		// a connection kept open idle, or held by a stream for good (a
		// WatchBundle of an older sidecar), costs ≈ 50 KiB, so neither
		// lasts.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     s.cfg.MaxConnectionIdle,
			MaxConnectionAge:      s.cfg.MaxConnectionAge,
			MaxConnectionAgeGrace: s.cfg.MaxConnectionAgeGrace,
		}),
		// Sidecars send no keepalive pings; a client that pings more
		// often than every 5 minutes, or without a call in progress, is
		// sent GOAWAY (grpc-go's defaults, stated).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Minute}),
		grpc.ChainUnaryInterceptor(s.unaryMetrics),
		grpc.ChainStreamInterceptor(s.streamMetrics),
	)
	cav1.RegisterCAServer(gs, s)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
		case <-stop:
			return
		}
		s.ready.Store(false)
		done := make(chan struct{})
		go func() { gs.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			gs.Stop()
		}
	}()
	s.log.Info("CA service listening", "addr", lis.Addr().String(), "trust_domain", s.td.String())
	s.ready.Store(true)
	err := gs.Serve(newHandshakeLimiter(netutil.LimitListener(lis, s.cfg.MaxConns), maxHandshakes, s.m.conns))
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("ca service: %w", err)
}

// maxHandshakes bounds TLS handshakes in progress. A burst of agents
// (every task of a service restarting) is CPU-bound anyway; bounding it
// keeps the handshakes' transient memory from piling up.
const maxHandshakes = 32

// handshakeLimiter accepts a connection only while fewer than cap(slots)
// are in their TLS handshake: the rest of a burst waits in the kernel's
// accept queue (the client's ClientHello in its socket buffer) instead of
// as a goroutine, a net.Conn and a stack each in this process (≈ 10 KiB
// per waiting agent: 59 → 47–52 MiB for a burst of 1,000). The slot is released when the handshake ends
// (boundedHandshakes) or the connection closes, whichever comes first.
type handshakeLimiter struct {
	net.Listener
	slots  chan struct{}
	closed chan struct{}
	once   sync.Once
	conns  prometheus.Gauge
}

func newHandshakeLimiter(l net.Listener, n int, conns prometheus.Gauge) *handshakeLimiter {
	return &handshakeLimiter{Listener: l, slots: make(chan struct{}, n), closed: make(chan struct{}), conns: conns}
}

func (l *handshakeLimiter) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.closed:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.conns.Inc()
	return &handshakingConn{Conn: c, slots: l.slots, conns: l.conns}, nil
}

func (l *handshakeLimiter) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// handshakingConn holds a handshake slot until release, and counts as
// open until closed.
type handshakingConn struct {
	net.Conn
	slots    chan struct{}
	released atomic.Bool
	conns    prometheus.Gauge
	closed   atomic.Bool
}

func (c *handshakingConn) release() {
	if c.released.CompareAndSwap(false, true) {
		<-c.slots
	}
}

func (c *handshakingConn) Close() error {
	c.release()
	if c.closed.CompareAndSwap(false, true) {
		c.conns.Dec()
	}
	return c.Conn.Close()
}

// boundedHandshakes releases a connection's handshake slot once its TLS
// handshake is over.
type boundedHandshakes struct {
	credentials.TransportCredentials
}

func (b boundedHandshakes) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if hc, ok := c.(*handshakingConn); ok {
		defer hc.release()
	}
	return b.TransportCredentials.ServerHandshake(c)
}

func (b boundedHandshakes) Clone() credentials.TransportCredentials {
	return boundedHandshakes{b.TransportCredentials.Clone()}
}

// RunReloader re-reads the policy file every ReloadInterval until ctx is
// cancelled.
func (s *Server) RunReloader(ctx context.Context) error {
	if s.cfg.PolicyFile == "" {
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
		s.reloadPolicy()
	}
}

func (s *Server) reloadPolicy() {
	data, changed, err := s.polSrc.Read()
	if err != nil {
		s.m.reloads.WithLabelValues("error").Inc()
		s.log.Error("policy unreadable; keeping the last good one", "file", s.cfg.PolicyFile, "err", err)
		return
	}
	if !changed {
		return
	}
	s.polSrc.Mark(data)
	st, err := s.buildPolicy(data)
	if err != nil {
		s.m.reloads.WithLabelValues("rejected").Inc()
		s.log.Error("policy rejected; keeping the last good one", "file", s.cfg.PolicyFile, "err", err)
		return
	}
	s.pol.Store(st)
	s.m.reloads.WithLabelValues("ok").Inc()
	s.log.Info("policy reloaded", "file", s.cfg.PolicyFile, "grants", len(st.policy.Grants))
}

// serverCert returns the service's certificate, issuing a new one at its
// half-life (the key lives in memory only).
func (s *Server) serverCert(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := s.cfg.Now()
	if c := s.cert.Load(); c != nil && !certs.ShouldRotate(now, c.leaf) {
		return c.tls, nil
	}
	s.certMu.Lock()
	defer s.certMu.Unlock()
	if c := s.cert.Load(); c != nil && !certs.ShouldRotate(now, c.leaf) {
		return c.tls, nil
	}
	svid, err := s.cfg.CA.Issue(ServerID(s.td), s.cfg.DNSNames)
	if err != nil {
		if c := s.cert.Load(); c != nil && now.Before(c.leaf.NotAfter) {
			s.log.Error("renewing the CA service certificate failed; serving the current one", "err", err)
			return c.tls, nil
		}
		return nil, err
	}
	tc := &tls.Certificate{PrivateKey: svid.PrivateKey, Leaf: svid.Certificates[0]}
	for _, c := range svid.Certificates {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	s.cert.Store(&servingCert{tls: tc, leaf: svid.Certificates[0]})
	return tc, nil
}

// verifyAgent accepts a connection without a client certificate (only
// Enroll will then answer) or with a valid agent certificate of the trust
// domain.
func (s *Server) verifyAgent(raw [][]byte, _ [][]*x509.Certificate) error {
	if len(raw) == 0 {
		return nil
	}
	chain := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("client certificate: %w", err)
		}
		chain = append(chain, c)
	}
	_, err := s.agentFromChain(chain)
	return err
}

func (s *Server) agentFromChain(chain []*x509.Certificate) (spiffeid.ID, error) {
	id, _, err := x509svid.Verify(chain, s.cfg.CA.Bundle(), x509svid.WithTime(s.cfg.Now()))
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("client certificate: %w", err)
	}
	if !IsAgentID(id) {
		return spiffeid.ID{}, fmt.Errorf("client certificate %s is not an agent's (%s…)", id, AgentPrefix(s.td))
	}
	return id, nil
}

// agent returns the calling agent's ID, re-checked now (a connection can
// outlive the certificate it was opened with).
func (s *Server) agent(ctx context.Context) (spiffeid.ID, error) {
	p, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, status.Error(codes.Unauthenticated, "no peer")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		s.m.denied.WithLabelValues("no_agent_certificate").Inc()
		return spiffeid.ID{}, status.Error(codes.Unauthenticated, "this call needs an agent certificate (enroll first)")
	}
	id, err := s.agentFromChain(ti.State.PeerCertificates)
	if err != nil {
		s.m.denied.WithLabelValues("agent_certificate_invalid").Inc()
		return spiffeid.ID{}, status.Error(codes.Unauthenticated, err.Error())
	}
	return id, nil
}

// Enroll implements cav1.CAServer.
func (s *Server) Enroll(ctx context.Context, req *cav1.EnrollRequest) (*cav1.Issued, error) {
	csr, err := s.agentCSR(req.GetCsr())
	if err != nil {
		return nil, err
	}
	st := s.pol.Load()
	var agent spiffeid.ID
	var mode string
	switch c := req.GetCredential().(type) {
	case *cav1.EnrollRequest_JoinToken:
		mode = "join_token"
		agent, err = s.redeemer.Redeem(ctx, c.JoinToken)
		switch {
		case errors.Is(err, ErrTokenUnknown):
			s.m.denied.WithLabelValues("join_token_unknown").Inc()
			return nil, status.Error(codes.PermissionDenied, err.Error())
		case errors.Is(err, ErrTokenUsed):
			s.m.denied.WithLabelValues("join_token_used").Inc()
			return nil, status.Error(codes.PermissionDenied, err.Error())
		case errors.Is(err, ErrTokenExpired):
			s.m.denied.WithLabelValues("join_token_expired").Inc()
			return nil, status.Error(codes.PermissionDenied, err.Error())
		case err != nil:
			s.log.Error("redeeming a join token failed", "err", err)
			return nil, status.Error(codes.Unavailable, "join tokens unavailable")
		}
	case *cav1.EnrollRequest_KubernetesToken:
		mode = "kubernetes"
		if st.k8s == nil {
			s.m.denied.WithLabelValues("kubernetes_not_configured").Inc()
			return nil, status.Error(codes.PermissionDenied, "Kubernetes enrollment is not configured in the CA service's policy")
		}
		kid, err := st.k8s.Verify(ctx, c.KubernetesToken)
		if errors.Is(err, ErrInvalidToken) {
			s.m.denied.WithLabelValues("kubernetes_token_invalid").Inc()
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
		if err != nil {
			s.log.Error("verifying a Kubernetes token failed", "err", err)
			return nil, status.Error(codes.Unavailable, "cannot verify Kubernetes tokens now")
		}
		if agent, err = KubernetesAgentID(s.td, kid.Namespace, kid.ServiceAccount); err != nil {
			s.m.denied.WithLabelValues("kubernetes_token_invalid").Inc()
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
	default:
		s.m.denied.WithLabelValues("no_credential").Inc()
		return nil, status.Error(codes.InvalidArgument, "enroll needs a join_token or a kubernetes_token")
	}
	out, err := s.sign(agent, nil, csr, st.policy.AgentTTL)
	if err != nil {
		return nil, err
	}
	s.m.enrollments.WithLabelValues(mode).Inc()
	s.log.Info("agent enrolled", "agent", agent.String(), "mode", mode, "not_after", out.notAfter)
	return out.msg, nil
}

// RenewAgent implements cav1.CAServer.
func (s *Server) RenewAgent(ctx context.Context, req *cav1.RenewAgentRequest) (*cav1.Issued, error) {
	agent, err := s.agent(ctx)
	if err != nil {
		return nil, err
	}
	csr, err := s.agentCSR(req.GetCsr())
	if err != nil {
		return nil, err
	}
	out, err := s.sign(agent, nil, csr, s.pol.Load().policy.AgentTTL)
	if err != nil {
		return nil, err
	}
	return out.msg, nil
}

// agentCSR parses an enrollment or agent-renewal CSR; a bad one is
// InvalidArgument and counted.
func (s *Server) agentCSR(der []byte) (*x509.CertificateRequest, error) {
	csr, err := ParseCSR(der)
	if err == nil {
		err = AgentRequest(csr)
	}
	if err != nil {
		s.m.denied.WithLabelValues("bad_csr").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return csr, nil
}

// Sign implements cav1.CAServer.
func (s *Server) Sign(ctx context.Context, req *cav1.SignRequest) (*cav1.Issued, error) {
	agent, err := s.agent(ctx)
	if err != nil {
		return nil, err
	}
	csr, err := ParseCSR(req.GetCsr())
	if err != nil {
		s.m.denied.WithLabelValues("bad_csr").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	id, dns, err := WorkloadRequest(csr, s.td)
	if err != nil {
		s.m.denied.WithLabelValues("bad_csr").Inc()
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.pol.Load().policy.Allows(agent, id, dns); err != nil {
		s.m.denied.WithLabelValues("not_granted").Inc()
		s.log.Warn("certificate request refused", "agent", agent.String(), "spiffe_id", id.String(), "dns_names", dns, "err", err)
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	out, err := s.sign(id, dns, csr, 0)
	if err != nil {
		return nil, err
	}
	return out.msg, nil
}

type signed struct {
	msg      *cav1.Issued
	notAfter time.Time
}

func (s *Server) sign(id spiffeid.ID, dns []string, csr *x509.CertificateRequest, ttl time.Duration) (signed, error) {
	chain, err := s.cfg.CA.SignPublicKey(id, dns, csr.PublicKey, ttl)
	if err != nil {
		s.log.Error("signing failed", "spiffe_id", id.String(), "err", err)
		return signed{}, status.Error(codes.Unavailable, "the CA cannot sign now")
	}
	msg := &cav1.Issued{Bundle: bundleMsg(s.cfg.CA.Bundle())}
	for _, c := range chain {
		msg.Chain = append(msg.Chain, c.Raw)
	}
	return signed{msg: msg, notAfter: chain[0].NotAfter}, nil
}

func bundleMsg(b *x509bundle.Bundle) *cav1.Bundle {
	m := &cav1.Bundle{TrustDomain: b.TrustDomain().Name()}
	for _, c := range b.X509Authorities() {
		m.Roots = append(m.Roots, c.Raw)
	}
	return m
}

// WatchBundle implements cav1.CAServer.
func (s *Server) WatchBundle(_ *cav1.WatchBundleRequest, stream grpc.ServerStreamingServer[cav1.Bundle]) error {
	if _, err := s.agent(stream.Context()); err != nil {
		return err
	}
	s.m.watchers.Inc()
	defer s.m.watchers.Dec()
	var last *x509bundle.Bundle
	for {
		changed := s.cfg.CA.Changed()
		b := s.cfg.CA.Bundle()
		if last == nil || !last.Equal(b) {
			if err := stream.Send(bundleMsg(b)); err != nil {
				return err
			}
			last = b
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-changed:
		}
	}
}

func (s *Server) unaryMetrics(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	s.m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	s.m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	return resp, err
}

func (s *Server) streamMetrics(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	err := h(srv, ss)
	method := info.FullMethod[strings.LastIndexByte(info.FullMethod, '/')+1:]
	s.m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	return err
}
