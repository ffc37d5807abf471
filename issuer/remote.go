// Package issuer holds the certificate sources `meshd sds` can use instead
// of a local CA: the meshd CA service (Remote: enroll once, then renew and
// sign over mTLS) and an upstream SPIRE agent's Workload API (SPIRE).
// Each implements sds.Authority.
package issuer

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	cav1 "github.com/meshd/meshd/api/ca/v1"
	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/watch"
)

// RemoteConfig configures a Remote.
type RemoteConfig struct {
	// Addr is the CA service: "host:port" or "unix:///path".
	Addr        string
	TrustDomain spiffeid.TrustDomain
	// Bootstrap is the trust bundle used to authenticate the CA service
	// until it serves one (`meshd ca show --pem`).
	Bootstrap *x509bundle.Bundle
	// ServerID is the CA service's SPIFFE ID (default
	// spiffe://TD/meshd/ca-service).
	ServerID spiffeid.ID
	// Exactly one credential: a join token, or the path of a projected
	// Kubernetes service-account token (re-read at every enrollment, since
	// the kubelet rotates it).
	JoinToken           string
	KubernetesTokenFile string
	// KeyType of workload and agent keys (default ECDSA P-256).
	KeyType certs.KeyType
	// Backoff bounds the jittered retry delays (defaults 500ms and 30s).
	MinBackoff, MaxBackoff time.Duration
	// CallTimeout bounds each call (default 10s).
	CallTimeout time.Duration
	// SyncInterval is how often the trust bundle is fetched from the CA
	// service (default DefaultSyncInterval), each wait jittered by ±25 %;
	// a call that returns a bundle anyway (Sign, RenewAgent) counts as a
	// sync. It is capped at a thirtieth of the signing root's lifetime, a
	// tenth of the time a next root is published before it signs.
	SyncInterval time.Duration
	// IdleTimeout closes the connection to the CA service after this long
	// without a call (default DefaultIdleTimeout): between syncs and
	// renewals no connection is held.
	IdleTimeout time.Duration
	Now         func() time.Time
	Log         *slog.Logger
	Registerer  prometheus.Registerer
}

// DefaultSyncInterval is how often a sidecar fetches the trust bundle.
// A scheduled rollover publishes the next root a third of the root's
// lifetime (10 days with the default 30-day root) before it signs, and
// `meshd ca rotate` 15 minutes before by default, so 30 s (at most 37.5 s
// with the jitter) loses nothing; 1,000 sidecars cost the CA service ≈ 33
// short mTLS connections a second.
const DefaultSyncInterval = 30 * time.Second

// DefaultIdleTimeout is how long the connection to the CA service stays
// open after the last call. A sidecar's calls come in tight groups (the
// SVIDs of one renewal sweep, back to back) or tens of seconds apart
// (bundle syncs, jittered renewals), so holding a connection longer would
// not save a handshake; it would only keep the connection (≈ 50 KiB in
// the CA service) open while a fleet starts: 1,000 sidecars enrolling and
// getting their first SVID at once peaked at 50 MiB in the CA service
// with 100 ms, 59 MiB with 250 ms and 62–72 MiB with 500 ms
// (bench/cabench -first-svid).
const DefaultIdleTimeout = 100 * time.Millisecond

// syncJitter moves each sync wait by up to ±25 % of SyncInterval, so that
// sidecars that enrolled together do not poll in lock-step.
const syncJitter = 0.25

// ErrCredentialRefused is returned by Run when the CA service refuses a
// join token for good (unknown, used or expired): only a new token helps.
var ErrCredentialRefused = errors.New("enrollment credential refused")

// Remote gets certificates from the meshd CA service. Keys are generated
// here and stay in memory; only CSRs travel.
type Remote struct {
	cfg RemoteConfig
	log *slog.Logger

	agent   atomic.Pointer[x509svid.SVID]
	bundle  atomic.Pointer[x509bundle.Bundle]
	changed watch.Signal
	// synced is when the CA service last sent a bundle, as time since
	// epoch (monotonic: a step of the wall clock moves no sync).
	epoch  time.Time
	synced atomic.Int64

	connMu sync.Mutex
	conn   *grpc.ClientConn // mTLS with the current agent certificate

	m remoteMetrics
}

type remoteMetrics struct {
	up         prometheus.Gauge
	agentExp   prometheus.Gauge
	overdue    prometheus.Gauge
	calls      *prometheus.CounterVec
	enrolments prometheus.Counter
}

var _ interface {
	TrustDomain() spiffeid.TrustDomain
	Issue(spiffeid.ID, []string) (*x509svid.SVID, error)
	Bundle() *x509bundle.Bundle
	Changed() <-chan struct{}
} = (*Remote)(nil)

// NewRemote checks cfg; Run enrolls.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	if cfg.Log == nil || cfg.Registerer == nil {
		return nil, errors.New("issuer: RemoteConfig needs Log and Registerer")
	}
	if cfg.Addr == "" {
		return nil, errors.New("issuer: the CA service address is empty")
	}
	if cfg.Bootstrap == nil || cfg.Bootstrap.Empty() {
		return nil, errors.New("issuer: a bootstrap trust bundle for the CA service is required")
	}
	if cfg.Bootstrap.TrustDomain() != cfg.TrustDomain {
		return nil, fmt.Errorf("issuer: bootstrap bundle is for %s, not %s", cfg.Bootstrap.TrustDomain(), cfg.TrustDomain)
	}
	if (cfg.JoinToken == "") == (cfg.KubernetesTokenFile == "") {
		return nil, errors.New("issuer: exactly one of a join token and a Kubernetes token file is required")
	}
	if cfg.ServerID.IsZero() {
		cfg.ServerID = caservice.ServerID(cfg.TrustDomain)
	}
	if cfg.KeyType == "" {
		cfg.KeyType = certs.KeyECDSAP256
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Remote{cfg: cfg, log: cfg.Log.With("component", "ca-client", "ca_service", cfg.Addr), epoch: time.Now()}
	r.bundle.Store(cfg.Bootstrap)
	r.m = remoteMetrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshd_sds_ca_service_up", Help: "1 when the last call to the CA service succeeded.",
		}),
		agentExp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshd_sds_agent_certificate_expiry_timestamp_seconds", Help: "NotAfter of this sidecar's agent certificate (0 before enrollment).",
		}),
		overdue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshd_sds_agent_renewal_overdue", Help: "1 when the agent certificate is past its renewal time because renewal keeps failing (alert on it).",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshd_sds_ca_calls_total", Help: "Calls to the CA service by method and gRPC status code.",
		}, []string{"method", "code"}),
		enrolments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_sds_enrollments_total", Help: "Successful enrollments with the CA service.",
		}),
	}
	for _, c := range []prometheus.Collector{r.m.up, r.m.agentExp, r.m.overdue, r.m.calls, r.m.enrolments} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("issuer: register metrics: %w", err)
		}
	}
	return r, nil
}

// TrustDomain implements sds.Authority.
func (r *Remote) TrustDomain() spiffeid.TrustDomain { return r.cfg.TrustDomain }

// Bundle implements sds.Authority: the bundle the CA service last served
// (the bootstrap bundle before that).
func (r *Remote) Bundle() *x509bundle.Bundle { return r.bundle.Load() }

// Changed implements sds.Authority.
func (r *Remote) Changed() <-chan struct{} { return r.changed.C() }

// Ready is nil once the sidecar holds a valid agent certificate.
func (r *Remote) Ready() error {
	a := r.agent.Load()
	if a == nil {
		return errors.New("not enrolled with the CA service yet")
	}
	if !r.cfg.Now().Before(a.Certificates[0].NotAfter) {
		return errors.New("agent certificate expired")
	}
	return nil
}

// GetX509BundleForTrustDomain makes Remote the bundle source that
// authenticates the CA service.
func (r *Remote) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return r.bundle.Load().GetX509BundleForTrustDomain(td)
}

// setBundle installs a bundle the CA service sent, waking SDS streams if
// it differs.
func (r *Remote) setBundle(m *cav1.Bundle) error {
	if m == nil {
		return errors.New("CA service sent no bundle")
	}
	if m.GetTrustDomain() != r.cfg.TrustDomain.Name() {
		return fmt.Errorf("CA service sent a bundle for %q, want %s", m.GetTrustDomain(), r.cfg.TrustDomain)
	}
	if len(m.GetRoots()) == 0 {
		return errors.New("CA service sent an empty bundle")
	}
	roots, err := parseDER(m.GetRoots())
	if err != nil {
		return fmt.Errorf("CA service bundle: %w", err)
	}
	b := x509bundle.FromX509Authorities(r.cfg.TrustDomain, roots)
	r.synced.Store(int64(time.Since(r.epoch)))
	if old := r.bundle.Load(); old.Equal(b) {
		return nil
	}
	r.bundle.Store(b)
	r.log.Info("trust bundle updated by the CA service", "roots", len(roots))
	r.changed.Notify()
	return nil
}

// VerifyIssued checks a CA service answer the way a sidecar must before
// using it: the chain verifies against the bundle the answer carries (of
// td), names want (unless zero), carries every DNS name in dns and
// certifies pub. The chain is checked at now or, when now is before the
// leaf's NotBefore (this host's clock is behind the service's by more than
// the backdating), at NotBefore instead; skew says by how much.
func VerifyIssued(resp *cav1.Issued, td spiffeid.TrustDomain, want spiffeid.ID, dns []string, pub crypto.PublicKey, now time.Time) (chain []*x509.Certificate, skew time.Duration, err error) {
	if len(resp.GetChain()) == 0 {
		return nil, 0, errors.New("CA service sent no certificate")
	}
	if chain, err = parseDER(resp.GetChain()); err != nil {
		return nil, 0, fmt.Errorf("CA service certificate: %w", err)
	}
	roots, err := parseDER(resp.GetBundle().GetRoots())
	if err != nil {
		return nil, 0, fmt.Errorf("CA service bundle: %w", err)
	}
	at := now
	if nb := chain[0].NotBefore; at.Before(nb) {
		skew, at = nb.Sub(at), nb
	}
	id, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, roots), x509svid.WithTime(at))
	if err != nil {
		return nil, 0, fmt.Errorf("CA service certificate does not verify against its bundle: %w", err)
	}
	if !want.IsZero() && id != want {
		return nil, 0, fmt.Errorf("CA service certified %s, asked for %s", id, want)
	}
	for _, d := range dns {
		if err := chain[0].VerifyHostname(d); err != nil {
			return nil, 0, fmt.Errorf("CA service certificate lacks DNS name %s", d)
		}
	}
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	if k, ok := chain[0].PublicKey.(equaler); !ok || !k.Equal(pub) {
		return nil, 0, errors.New("CA service certified another key")
	}
	return chain, skew, nil
}

func parseDER(ders [][]byte) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(ders))
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// verifyIssued is VerifyIssued at this sidecar's clock, warning about skew.
func (r *Remote) verifyIssued(resp *cav1.Issued, want spiffeid.ID, dns []string, pub crypto.PublicKey) ([]*x509.Certificate, error) {
	chain, skew, err := VerifyIssued(resp, r.cfg.TrustDomain, want, dns, pub, r.cfg.Now())
	if skew > 0 {
		r.log.Warn("this host's clock is behind the CA service's; check NTP", "skew", skew.Round(time.Second))
	}
	return chain, err
}

// Issue implements sds.Authority: a new key and a CSR for id, signed by
// the CA service if the policy grants id and dnsNames to this agent.
func (r *Remote) Issue(id spiffeid.ID, dnsNames []string) (*x509svid.SVID, error) {
	conn, err := r.client()
	if err != nil {
		return nil, err
	}
	key, err := r.cfg.KeyType.Generate()
	if err != nil {
		return nil, err
	}
	csr, err := caservice.NewCSR(key, id, dnsNames)
	if err != nil {
		return nil, fmt.Errorf("CSR for %s: %w", id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.CallTimeout)
	defer cancel()
	resp, err := cav1.NewCAClient(conn).Sign(ctx, &cav1.SignRequest{Csr: csr})
	r.observe("Sign", err)
	if err != nil {
		return nil, fmt.Errorf("CA service: sign %s: %w", id, err)
	}
	chain, err := r.verifyIssued(resp, id, dnsNames, key.Public())
	if err != nil {
		return nil, err
	}
	if err := r.setBundle(resp.GetBundle()); err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}, nil
}

func (r *Remote) observe(method string, err error) {
	r.m.calls.WithLabelValues(method, status.Code(err).String()).Inc()
	if err == nil || status.Code(err) == codes.PermissionDenied || status.Code(err) == codes.InvalidArgument {
		r.m.up.Set(1)
	} else {
		r.m.up.Set(0)
	}
}

// client returns the mTLS connection (opened after enrollment).
func (r *Remote) client() (*grpc.ClientConn, error) {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.conn == nil {
		return nil, errors.New("not enrolled with the CA service yet")
	}
	return r.conn, nil
}

func (r *Remote) target() string {
	if strings.HasPrefix(r.cfg.Addr, "unix://") {
		return r.cfg.Addr
	}
	return "passthrough:///" + r.cfg.Addr
}

// dial makes a client that connects on its first call and disconnects
// after IdleTimeout without one.
func (r *Remote) dial(creds grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(r.target(), creds, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<20)),
		grpc.WithIdleTimeout(r.cfg.IdleTimeout))
}

// installAgent makes svid the agent certificate and opens a new mTLS
// connection with it (TLS binds a client certificate to a connection).
func (r *Remote) installAgent(svid *x509svid.SVID) error {
	conn, err := r.dial(grpc.WithTransportCredentials(grpccredentials.MTLSClientCredentials(svid, r, tlsconfig.AuthorizeID(r.cfg.ServerID))))
	if err != nil {
		return fmt.Errorf("CA service: %w", err)
	}
	r.agent.Store(svid)
	r.m.agentExp.Set(float64(svid.Certificates[0].NotAfter.Unix()))
	r.connMu.Lock()
	old := r.conn
	r.conn = conn
	r.connMu.Unlock()
	if old != nil {
		// Calls in flight on the old connection finish first.
		go func() { time.Sleep(r.cfg.CallTimeout); old.Close() }()
	}
	return nil
}

// enroll presents the credential once and installs the agent certificate.
func (r *Remote) enroll(ctx context.Context) error {
	req := &cav1.EnrollRequest{}
	mode := "join token"
	if r.cfg.JoinToken != "" {
		req.Credential = &cav1.EnrollRequest_JoinToken{JoinToken: r.cfg.JoinToken}
	} else {
		mode = "Kubernetes service-account token"
		tok, err := os.ReadFile(r.cfg.KubernetesTokenFile)
		if err != nil {
			return fmt.Errorf("Kubernetes token: %w", err)
		}
		req.Credential = &cav1.EnrollRequest_KubernetesToken{KubernetesToken: strings.TrimSpace(string(tok))}
	}
	key, err := certs.KeyECDSAP256.Generate()
	if err != nil {
		return err
	}
	if req.Csr, err = caservice.NewCSR(key, spiffeid.ID{}, nil); err != nil {
		return err
	}
	conn, err := r.dial(grpc.WithTransportCredentials(grpccredentials.TLSClientCredentials(r, tlsconfig.AuthorizeID(r.cfg.ServerID))))
	if err != nil {
		return fmt.Errorf("CA service: %w", err)
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	resp, err := cav1.NewCAClient(conn).Enroll(cctx, req)
	r.observe("Enroll", err)
	if err != nil {
		if status.Code(err) == codes.PermissionDenied && r.cfg.JoinToken != "" {
			return fmt.Errorf("%w: %s (create a new one with 'meshd ca token create')", ErrCredentialRefused, status.Convert(err).Message())
		}
		return fmt.Errorf("enroll with %s: %w", mode, err)
	}
	chain, err := r.verifyIssued(resp, spiffeid.ID{}, nil, key.Public())
	if err != nil {
		return err
	}
	id, err := x509svid.IDFromCert(chain[0])
	if err != nil {
		return err
	}
	if err := r.setBundle(resp.GetBundle()); err != nil {
		return err
	}
	if err := r.installAgent(&x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}); err != nil {
		return err
	}
	r.m.enrolments.Inc()
	r.log.Info("enrolled with the CA service", "agent", id.String(), "mode", mode, "not_after", chain[0].NotAfter)
	return nil
}

// renewAgent replaces the agent certificate over mTLS.
func (r *Remote) renewAgent(ctx context.Context) error {
	conn, err := r.client()
	if err != nil {
		return err
	}
	key, err := certs.KeyECDSAP256.Generate()
	if err != nil {
		return err
	}
	csr, err := caservice.NewCSR(key, spiffeid.ID{}, nil)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	resp, err := cav1.NewCAClient(conn).RenewAgent(cctx, &cav1.RenewAgentRequest{Csr: csr})
	r.observe("RenewAgent", err)
	if err != nil {
		return fmt.Errorf("renew agent certificate: %w", err)
	}
	cur := r.agent.Load()
	chain, err := r.verifyIssued(resp, cur.ID, nil, key.Public())
	if err != nil {
		return err
	}
	if err := r.setBundle(resp.GetBundle()); err != nil {
		return err
	}
	if err := r.installAgent(&x509svid.SVID{ID: cur.ID, Certificates: chain, PrivateKey: key}); err != nil {
		return err
	}
	r.log.Info("agent certificate renewed", "not_after", chain[0].NotAfter)
	return nil
}

// backoff is a jittered exponential delay.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	}
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(2*b.cur, b.max)
	return d
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Run enrolls (retrying with jittered backoff), then keeps the agent
// certificate renewed at half-life and the trust bundle current by fetching
// it every SyncInterval, until ctx is cancelled. It returns an error only
// when it cannot go on: a join token refused for good, or an agent
// certificate that expired while a join token (single-use) cannot replace
// it.
func (r *Remote) Run(ctx context.Context) error {
	bo := backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	for r.agent.Load() == nil {
		err := r.enroll(ctx)
		if err == nil {
			break
		}
		if errors.Is(err, ErrCredentialRefused) {
			return err
		}
		d := bo.next()
		r.log.Warn("enrollment failed; retrying", "err", err, "in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return nil
		}
	}
	bo.reset()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.syncBundle(ctx) }()
	defer wg.Wait()
	defer r.closeConn()
	for {
		agent := r.agent.Load()
		leaf := agent.Certificates[0]
		wait := certs.RotationTime(leaf).Sub(r.cfg.Now())
		if wait > 0 {
			r.m.overdue.Set(0)
			if !sleep(ctx, min(wait, 30*time.Second)) {
				return nil
			}
			continue
		}
		err := r.renewAgent(ctx)
		if err == nil {
			bo.reset()
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		r.m.overdue.Set(1)
		if !r.cfg.Now().Before(leaf.NotAfter) {
			if r.cfg.JoinToken != "" {
				return fmt.Errorf("agent certificate expired at %s and the CA service could not renew it (%v); a join token is single-use: enroll again with a new one", leaf.NotAfter.UTC().Format(time.RFC3339), err)
			}
			if eerr := r.enroll(ctx); eerr == nil {
				bo.reset()
				continue
			} else {
				err = eerr
			}
		}
		d := bo.next()
		r.log.Error("agent certificate renewal failed; retrying", "err", err, "in", d.Round(time.Millisecond), "not_after", leaf.NotAfter)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

func (r *Remote) closeConn() {
	r.connMu.Lock()
	defer r.connMu.Unlock()
	if r.conn != nil {
		r.conn.Close()
	}
}

// syncInterval is SyncInterval, capped at a thirtieth of the signing
// root's lifetime: a scheduled rollover publishes the next root a third of
// that lifetime before it signs, so the bundle is fetched at least ten
// times in that window however short the CA's lifetimes are.
func (r *Remote) syncInterval() time.Duration {
	d := r.cfg.SyncInterval
	if roots := r.bundle.Load().X509Authorities(); len(roots) > 0 {
		if life := roots[0].NotAfter.Sub(roots[0].NotBefore) / 30; life > 0 && life < d {
			d = life
		}
	}
	return d
}

// jittered is d moved by up to ±syncJitter of d.
func jittered(d time.Duration) time.Duration {
	j := time.Duration(float64(d) * syncJitter)
	return d - j + rand.N(2*j+1)
}

// syncBundle fetches the trust bundle a jittered SyncInterval after the
// CA service last sent one (any call that returns a bundle counts),
// retrying failures with jittered backoff, and installs it. Between
// fetches no stream is open and, after IdleTimeout, no connection.
func (r *Remote) syncBundle(ctx context.Context) {
	bo := backoff{min: r.cfg.MinBackoff, max: r.cfg.MaxBackoff}
	for {
		d := jittered(r.syncInterval())
		for {
			wait := time.Duration(r.synced.Load()) + d - time.Since(r.epoch)
			if wait <= 0 {
				break
			}
			if !sleep(ctx, wait) {
				return
			}
		}
		err := r.fetchBundle(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			bo.reset()
			continue
		}
		d = min(bo.next(), r.syncInterval())
		r.log.Warn("fetching the trust bundle failed; retrying", "err", err, "in", d.Round(time.Millisecond))
		if !sleep(ctx, d) {
			return
		}
	}
}

// fetchBundle takes the first message of a WatchBundle stream (the current
// bundle) and ends the stream: a CA service of any version answers it.
func (r *Remote) fetchBundle(ctx context.Context) error {
	conn, err := r.client()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	stream, err := cav1.NewCAClient(conn).WatchBundle(cctx, &cav1.WatchBundleRequest{})
	if err != nil {
		r.observe("WatchBundle", err)
		return err
	}
	b, err := stream.Recv()
	r.observe("WatchBundle", err)
	if err != nil {
		return err
	}
	if err := r.setBundle(b); err != nil {
		r.log.Error("bundle from the CA service rejected", "err", err)
		return err
	}
	return nil
}
