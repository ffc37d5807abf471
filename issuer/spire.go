package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/meshd/meshd/internal/watch"
)

// SPIREConfig configures a SPIRE authority.
type SPIREConfig struct {
	// Addr is the Workload API address, e.g. "unix:///run/spire/agent.sock".
	// Empty means $SPIFFE_ENDPOINT_SOCKET (go-spiffe's default).
	Addr string
	// TrustDomain is meshd's trust domain; the SVIDs served and the bundle
	// must be of it.
	TrustDomain spiffeid.TrustDomain
	// Log is required.
	Log *slog.Logger
	// Registerer is required; the meshd_spire_* metrics are registered on it.
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// SPIRE is an authority (sds.Authority) backed by an upstream SPIRE agent's
// Workload API, for teams that already run SPIRE: meshd issues nothing in
// this mode, it re-serves the X.509-SVIDs and bundles SPIRE gives its own
// process. SPIRE attests meshd (not each Envoy), so every identity meshd
// serves needs a registration entry whose selectors match meshd's process.
// It is safe for concurrent use; Run keeps it current.
type SPIRE struct {
	td      spiffeid.TrustDomain
	addr    string
	log     *slog.Logger
	now     func() time.Time
	empty   *x509bundle.Bundle // Bundle before the first context
	snap    atomic.Pointer[spireSnapshot]
	changed watch.Signal
	m       spireMetrics

	mu      sync.Mutex
	lastErr error // last watch error since the last context; for Ready and Issue

	// Touched only by the watch callbacks, which go-spiffe calls from Run's
	// goroutine one at a time.
	expiryIDs map[string]struct{}
	failing   bool
}

// spireSnapshot is one X.509 context as served. It is never modified.
type spireSnapshot struct {
	svids     []*x509svid.SVID
	bundle    *x509bundle.Bundle   // of the configured trust domain, never nil
	federated []*x509bundle.Bundle // sorted by trust domain
}

type spireMetrics struct {
	updates     prometheus.Counter
	watchErrors prometheus.Counter
	expiry      *prometheus.GaugeVec
}

// NewSPIRE returns a SPIRE authority. It does not connect; Run does.
func NewSPIRE(cfg SPIREConfig) (*SPIRE, error) {
	if cfg.Log == nil {
		return nil, errors.New("spire: SPIREConfig.Log is required")
	}
	if cfg.Registerer == nil {
		return nil, errors.New("spire: SPIREConfig.Registerer is required")
	}
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("spire: trust domain is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	addr := cfg.Addr
	if addr == "" {
		env, ok := workloadapi.GetDefaultAddress()
		if !ok || env == "" {
			return nil, fmt.Errorf("spire: no Workload API address: set the SPIRE agent socket address or $%s", workloadapi.SocketEnv)
		}
		addr = env
	}
	if err := workloadapi.ValidateAddress(addr); err != nil {
		return nil, fmt.Errorf("spire: Workload API address %q: %w", addr, err)
	}
	s := &SPIRE{
		td:        cfg.TrustDomain,
		addr:      addr,
		log:       cfg.Log.With("component", "spire", "addr", addr),
		now:       cfg.Now,
		empty:     x509bundle.New(cfg.TrustDomain),
		expiryIDs: map[string]struct{}{},
		m: spireMetrics{
			updates: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "meshd_spire_updates_total",
				Help: "X.509 contexts (SVIDs and bundles) received from the SPIRE agent's Workload API.",
			}),
			watchErrors: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "meshd_spire_watch_errors_total",
				Help: "Errors watching the SPIRE agent's Workload API (the watch is retried with backoff).",
			}),
			expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "meshd_spire_svid_expiry_timestamp_seconds",
				Help: "NotAfter of each X.509-SVID in the latest context from the SPIRE agent, by SPIFFE ID.",
			}, []string{"spiffe_id"}),
		},
	}
	for _, col := range []prometheus.Collector{s.m.updates, s.m.watchErrors, s.m.expiry} {
		if err := cfg.Registerer.Register(col); err != nil {
			return nil, fmt.Errorf("spire: register metrics: %w", err)
		}
	}
	return s, nil
}

// TrustDomain is meshd's trust domain.
func (s *SPIRE) TrustDomain() spiffeid.TrustDomain { return s.td }

// Bundle returns the bundle of the trust domain from the latest X.509
// context, or an empty bundle of the trust domain before the first one (never
// nil). The same pointer is returned until the bundle changes. The caller
// must not modify it.
func (s *SPIRE) Bundle() *x509bundle.Bundle {
	if snap := s.snap.Load(); snap != nil {
		return snap.bundle
	}
	return s.empty
}

// FederatedBundles returns the other trust domains' bundles from the latest
// X.509 context, sorted by trust domain (nil before the first context). The
// slice is the caller's; the bundles must not be modified.
func (s *SPIRE) FederatedBundles() []*x509bundle.Bundle {
	snap := s.snap.Load()
	if snap == nil {
		return nil
	}
	return slices.Clone(snap.federated)
}

// Changed returns a channel closed at the next X.509 context that differs
// from the current one (SVIDs rotated, added or removed, or bundles changed).
func (s *SPIRE) Changed() <-chan struct{} { return s.changed.C() }

// Ready returns nil once a first X.509 context has arrived.
func (s *SPIRE) Ready() error {
	if s.snap.Load() != nil {
		return nil
	}
	return s.notYet()
}

func (s *SPIRE) notYet() error {
	s.mu.Lock()
	last := s.lastErr
	s.mu.Unlock()
	if last != nil {
		return fmt.Errorf("spire: no X.509 context from the SPIRE agent at %s yet: last error: %w", s.addr, last)
	}
	return fmt.Errorf("spire: no X.509 context from the SPIRE agent at %s yet", s.addr)
}

// Issue returns the X.509-SVID that SPIRE gives meshd for id, from the latest
// X.509 context. Nothing is minted: it fails before the first context, when
// SPIRE has no such SVID for meshd, when that SVID lacks any of dnsNames
// (compared case-insensitively), when it is expired or not yet valid, or when
// it does not verify against Bundle. If SPIRE gives meshd several SVIDs with
// that ID, the first usable one is returned. The returned SVID is the
// caller's to keep (its certificates and key are shared and must not be
// modified in place).
func (s *SPIRE) Issue(id spiffeid.ID, dnsNames []string) (*x509svid.SVID, error) {
	snap := s.snap.Load()
	if snap == nil {
		return nil, fmt.Errorf("spire: SVID for %s: %w", id, s.notYet())
	}
	if !id.MemberOf(s.td) {
		return nil, fmt.Errorf("spire: SVID for %s: not a member of trust domain %s", id, s.td)
	}
	now := s.now()
	var best error
	bestRank := -1
	found := false
	for _, sv := range snap.svids {
		if sv.ID != id {
			continue
		}
		found = true
		leaf := sv.Certificates[0]
		var err error
		rank := 0 // the most useful error to report: missing names > not yet valid > expired
		switch missing := missingDNSNames(leaf, dnsNames); {
		case !now.Before(leaf.NotAfter):
			err = fmt.Errorf("the SVID SPIRE gave meshd expired at %s (serial %s); is the SPIRE agent rotating it?",
				leaf.NotAfter.UTC().Format(time.RFC3339), leaf.SerialNumber.Text(16))
		case now.Before(leaf.NotBefore):
			rank = 1
			err = fmt.Errorf("the SVID SPIRE gave meshd is not valid before %s (serial %s); check the clocks",
				leaf.NotBefore.UTC().Format(time.RFC3339), leaf.SerialNumber.Text(16))
		case len(missing) > 0:
			rank = 2
			err = fmt.Errorf("the SVID SPIRE gave meshd lacks DNS names %s (it has %s); add them to the registration entry (-dns)",
				quoteList(missing), quoteList(leaf.DNSNames))
		default:
			if _, _, verr := x509svid.Verify(sv.Certificates, snap.bundle, x509svid.WithTime(now)); verr != nil {
				rank = 1
				err = fmt.Errorf("the SVID SPIRE gave meshd does not verify against the %s bundle: %w", s.td, verr)
				break
			}
			return &x509svid.SVID{
				ID:           sv.ID,
				Certificates: slices.Clone(sv.Certificates),
				PrivateKey:   sv.PrivateKey,
				Hint:         sv.Hint,
			}, nil
		}
		if rank > bestRank {
			best, bestRank = err, rank
		}
	}
	if !found {
		return nil, fmt.Errorf("spire: SVID for %s: the SPIRE agent at %s gives meshd no SVID with that ID (it gives %s); "+
			"register an entry for %s whose selectors match meshd's process", id, s.addr, quoteList(svidIDs(snap.svids)), id)
	}
	return nil, fmt.Errorf("spire: SVID for %s: %w", id, best)
}

// Run watches the Workload API until ctx is cancelled, and then returns nil.
// go-spiffe reconnects with backoff by itself; Run returns an error only for
// configuration errors (an unusable address, or an endpoint that rejects the
// request as invalid and so is not a Workload API).
func (s *SPIRE) Run(ctx context.Context) error {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr(s.addr), workloadapi.WithLogger(spiffeLogger{s.log}))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("spire: Workload API client for %s: %w", s.addr, err)
	}
	defer client.Close()
	s.log.Info("watching the SPIRE agent's Workload API", "trust_domain", s.td.Name())
	err = client.WatchX509Context(ctx, &spireWatcher{s: s, ctx: ctx})
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("spire: watch the Workload API at %s: %w", s.addr, err)
}

// spireWatcher keeps the callbacks off SPIRE's exported API.
type spireWatcher struct {
	s   *SPIRE
	ctx context.Context
}

func (w *spireWatcher) OnX509ContextUpdate(c *workloadapi.X509Context) { w.s.update(c) }

func (w *spireWatcher) OnX509ContextWatchError(err error) {
	if w.ctx.Err() != nil && (status.Code(err) == codes.Canceled || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return // shutting down
	}
	w.s.watchError(err)
}

func (s *SPIRE) watchError(err error) {
	s.m.watchErrors.Inc()
	s.mu.Lock()
	repeated := s.lastErr != nil && s.lastErr.Error() == err.Error()
	s.lastErr = err
	s.mu.Unlock()
	attrs := []any{"err", err}
	if status.Code(err) == codes.PermissionDenied {
		attrs = append(attrs, "hint", "the SPIRE agent has no identity for meshd: register an entry whose selectors match meshd's process")
	}
	if s.failing && repeated {
		s.log.Debug("Workload API watch still failing; retrying with backoff", attrs...)
		return
	}
	s.failing = true
	if s.snap.Load() != nil {
		attrs = append(attrs, "serving", "the last X.509 context received")
	}
	s.log.Warn("Workload API watch failed; retrying with backoff", attrs...)
}

// update installs a new X.509 context.
func (s *SPIRE) update(c *workloadapi.X509Context) {
	defer s.m.updates.Inc() // last, so the count covers a fully applied context
	next := &spireSnapshot{svids: c.SVIDs, bundle: s.empty}
	for _, b := range c.Bundles.Bundles() { // sorted by trust domain
		if b.TrustDomain() == s.td {
			next.bundle = b
		} else {
			next.federated = append(next.federated, b)
		}
	}
	for _, sv := range c.SVIDs {
		if !sv.ID.MemberOf(s.td) {
			s.log.Warn("SPIRE gave meshd an SVID outside its trust domain; it is not served", "spiffe_id", sv.ID.String(), "trust_domain", s.td.Name())
		}
	}
	if next.bundle == s.empty {
		s.log.Error("the X.509 context from SPIRE has no bundle for meshd's trust domain; is meshd configured with SPIRE's trust domain?",
			"trust_domain", s.td.Name(), "bundles", bundleTDs(c.Bundles.Bundles()))
	}

	s.mu.Lock()
	s.lastErr = nil
	s.mu.Unlock()
	if s.failing {
		s.failing = false
		s.log.Info("Workload API watch recovered")
	}
	s.setExpiry(next.svids)

	prev := s.snap.Load()
	if prev != nil && sameSnapshot(prev, next) {
		s.log.Debug("X.509 context from SPIRE unchanged")
		return
	}
	if prev != nil && prev.bundle.Equal(next.bundle) {
		next.bundle = prev.bundle // keep the pointer: consumers re-verify chains when it changes
	}
	s.snap.Store(next)
	s.changed.Notify()
	msg := "X.509 context from SPIRE updated"
	if prev == nil {
		msg = "first X.509 context from SPIRE received"
	}
	s.log.Info(msg, "svids", svidIDs(next.svids), "authorities", len(next.bundle.X509Authorities()),
		"federated", bundleTDs(next.federated))
}

// setExpiry sets the expiry gauge to the earliest NotAfter per SPIFFE ID and
// deletes the series of IDs that are gone.
func (s *SPIRE) setExpiry(svids []*x509svid.SVID) {
	exp := map[string]time.Time{}
	for _, sv := range svids {
		id, na := sv.ID.String(), sv.Certificates[0].NotAfter
		if cur, ok := exp[id]; !ok || na.Before(cur) {
			exp[id] = na
		}
	}
	for id := range s.expiryIDs {
		if _, ok := exp[id]; !ok {
			s.m.expiry.DeleteLabelValues(id)
			delete(s.expiryIDs, id)
		}
	}
	for id, na := range exp {
		s.m.expiry.WithLabelValues(id).Set(float64(na.Unix()))
		s.expiryIDs[id] = struct{}{}
	}
}

func sameSnapshot(a, b *spireSnapshot) bool {
	return slices.EqualFunc(a.svids, b.svids, func(x, y *x509svid.SVID) bool {
		return x.ID == y.ID && x.Hint == y.Hint &&
			slices.EqualFunc(x.Certificates, y.Certificates, (*x509.Certificate).Equal)
	}) && a.bundle.Equal(b.bundle) && slices.EqualFunc(a.federated, b.federated, (*x509bundle.Bundle).Equal)
}

// missingDNSNames returns the names in want that leaf lacks (DNS names
// compare case-insensitively).
func missingDNSNames(leaf *x509.Certificate, want []string) []string {
	var missing []string
	for _, n := range want {
		if !slices.ContainsFunc(leaf.DNSNames, func(h string) bool { return strings.EqualFold(h, n) }) {
			missing = append(missing, n)
		}
	}
	return missing
}

func svidIDs(svids []*x509svid.SVID) []string {
	ids := make([]string, 0, len(svids))
	for _, sv := range svids {
		ids = append(ids, sv.ID.String())
	}
	return ids
}

func bundleTDs(bs []*x509bundle.Bundle) []string {
	tds := make([]string, 0, len(bs))
	for _, b := range bs {
		tds = append(tds, b.TrustDomain().Name())
	}
	return tds
}

func quoteList(ss []string) string {
	if len(ss) == 0 {
		return "none"
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// spiffeLogger passes go-spiffe's own log lines on at debug level: watch
// errors reach meshd's log once, through OnX509ContextWatchError.
type spiffeLogger struct{ log *slog.Logger }

func (l spiffeLogger) Debugf(format string, args ...any) { l.debug("debug", format, args) }
func (l spiffeLogger) Infof(format string, args ...any)  { l.debug("info", format, args) }
func (l spiffeLogger) Warnf(format string, args ...any)  { l.debug("warn", format, args) }
func (l spiffeLogger) Errorf(format string, args ...any) { l.debug("error", format, args) }

func (l spiffeLogger) debug(level, format string, args []any) {
	if !l.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	l.log.Debug(fmt.Sprintf(format, args...), "source", "go-spiffe", "go_spiffe_level", level)
}
