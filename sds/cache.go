package sds

import (
	"context"
	"fmt"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshd/meshd/certs"
)

// Authority is what the SDS server needs from a certificate authority.
// *certs.CA implements it.
type Authority interface {
	TrustDomain() spiffeid.TrustDomain
	Issue(id spiffeid.ID, dnsNames []string) (*x509svid.SVID, error)
	Bundle() *x509bundle.Bundle
	// Changed is closed at the next change of the bundle or signer.
	Changed() <-chan struct{}
}

var _ Authority = (*certs.CA)(nil)

// subscriber is one stream's wake-up channel; a poke never blocks.
type subscriber struct {
	wake chan struct{}
}

func newSubscriber() *subscriber { return &subscriber{wake: make(chan struct{}, 1)} }

func (s *subscriber) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// issued is one minted SVID with its rendered PEM, immutable once built.
type issued struct {
	svid     *x509svid.SVID
	certPEM  []byte
	keyPEM   []byte
	serial   *big.Int
	notAfter time.Time
	// version identifies the content; it changes with every issuance.
	version string
	anys    sync.Map // secret name -> *anypb.Any
}

// entry holds the current SVID for one identity (SPIFFE ID + DNS SANs).
type entry struct {
	key      string
	id       spiffeid.ID
	dnsNames []string

	issueMu sync.Mutex // serialises issuance (one CSR for many streams)
	cur     atomic.Pointer[issued]

	mu        sync.Mutex // guards subs, idleSince
	subs      map[*subscriber]struct{}
	idleSince time.Time
}

func entryKey(id spiffeid.ID, dns []string) string {
	return id.String() + "|" + strings.Join(slices.Sorted(slices.Values(dns)), ",")
}

// Cache mints SVIDs on demand, keeps them in memory only, renews them at
// half-life (certs.RotationTime) and wakes the streams that use them.
type Cache struct {
	ca   Authority
	log  *slog.Logger
	now  func() time.Time
	idle time.Duration

	mu      sync.Mutex
	entries map[string]*entry
	kick    chan struct{}
	// swept is the bundle the last sweep checked chains against; chains
	// are re-verified only when the bundle changes.
	swept *x509bundle.Bundle

	m cacheMetrics
}

type cacheMetrics struct {
	expiry    *prometheus.GaugeVec
	rotations prometheus.Counter
	failures  prometheus.Counter
	entries   prometheus.GaugeFunc
	overdue   prometheus.Gauge
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	CA  Authority
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// IdleEviction drops an SVID (and its key) this long after its last
	// stream closed (default 5m).
	IdleEviction time.Duration
	Registerer   prometheus.Registerer
}

// maxWait bounds every sleep of the rotation loop so that a wall-clock jump
// (NTP step, VM resume) is noticed within this long.
const maxWait = 30 * time.Second

// NewCache returns an empty cache.
func NewCache(cfg CacheConfig) (*Cache, error) {
	if cfg.CA == nil || cfg.Log == nil || cfg.Registerer == nil {
		return nil, fmt.Errorf("sds: CacheConfig needs CA, Log and Registerer")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleEviction <= 0 {
		cfg.IdleEviction = 5 * time.Minute
	}
	c := &Cache{
		ca: cfg.CA, log: cfg.Log.With("component", "svid-cache"), now: cfg.Now, idle: cfg.IdleEviction,
		entries: map[string]*entry{}, kick: make(chan struct{}, 1),
	}
	c.m = cacheMetrics{
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshd_sds_svid_expiry_timestamp_seconds",
			Help: "NotAfter of the X.509-SVID currently served for each SPIFFE ID.",
		}, []string{"spiffe_id"}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_sds_svid_rotations_total", Help: "X.509-SVIDs renewed before expiry (half-life rotation or CA change).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshd_sds_svid_issue_failures_total", Help: "Failed attempts to mint or renew an X.509-SVID.",
		}),
		entries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "meshd_sds_svids_cached", Help: "X.509-SVIDs held in memory.",
		}, func() float64 { c.mu.Lock(); defer c.mu.Unlock(); return float64(len(c.entries)) }),
	}
	c.m.overdue = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "meshd_sds_svid_renewal_overdue",
		Help: "X.509-SVIDs past their renewal time because renewal keeps failing (alert when > 0: they expire unless the CA comes back).",
	})
	for _, col := range []prometheus.Collector{c.m.expiry, c.m.rotations, c.m.failures, c.m.entries, c.m.overdue} {
		if err := cfg.Registerer.Register(col); err != nil {
			return nil, fmt.Errorf("sds: register metrics: %w", err)
		}
	}
	return c, nil
}

// acquire returns the entry for an identity and subscribes sub to it.
func (c *Cache) acquire(id *Identity, sub *subscriber) *entry {
	key := entryKey(id.SPIFFEID, id.DNSNames)
	c.mu.Lock()
	e, ok := c.entries[key]
	if !ok {
		e = &entry{key: key, id: id.SPIFFEID, dnsNames: slices.Clone(id.DNSNames), subs: map[*subscriber]struct{}{}}
		c.entries[key] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	e.subs[sub] = struct{}{}
	e.mu.Unlock()
	return e
}

// release unsubscribes sub from e.
func (c *Cache) release(e *entry, sub *subscriber) {
	e.mu.Lock()
	delete(e.subs, sub)
	if len(e.subs) == 0 {
		e.idleSince = c.now()
	}
	e.mu.Unlock()
}

// get returns the entry's current SVID, minting one if there is none yet.
// An expired SVID is never returned: if it cannot be replaced (the CA
// service is unreachable), the caller gets the error instead.
func (c *Cache) get(e *entry) (*issued, error) {
	if cur := e.cur.Load(); cur != nil && c.now().Before(cur.notAfter) {
		return cur, nil
	}
	e.issueMu.Lock()
	defer e.issueMu.Unlock()
	if cur := e.cur.Load(); cur != nil && c.now().Before(cur.notAfter) {
		return cur, nil
	}
	is, err := c.mint(e)
	if err != nil {
		return nil, err
	}
	e.cur.Store(is)
	select { // let the loop schedule this SVID's renewal
	case c.kick <- struct{}{}:
	default:
	}
	return is, nil
}

func (c *Cache) mint(e *entry) (*issued, error) {
	svid, err := c.ca.Issue(e.id, e.dnsNames)
	if err != nil {
		c.m.failures.Inc()
		return nil, err
	}
	certPEM, keyPEM, err := svid.Marshal()
	if err != nil {
		c.m.failures.Inc()
		return nil, fmt.Errorf("marshal SVID for %s: %w", e.id, err)
	}
	leaf := svid.Certificates[0]
	c.m.expiry.WithLabelValues(e.id.String()).Set(float64(leaf.NotAfter.Unix()))
	return &issued{
		svid: svid, certPEM: certPEM, keyPEM: keyPEM, serial: leaf.SerialNumber, notAfter: leaf.NotAfter,
		version: "svid:" + leaf.SerialNumber.Text(16),
	}, nil
}

// renew replaces the entry's SVID and wakes its subscribers.
func (c *Cache) renew(e *entry, why string) {
	e.issueMu.Lock()
	is, err := c.mint(e)
	if err == nil {
		e.cur.Store(is)
	}
	e.issueMu.Unlock()
	if err != nil {
		c.log.Error("SVID renewal failed; will retry", "spiffe_id", e.id.String(), "err", err)
		return
	}
	c.m.rotations.Inc()
	c.log.Debug("SVID renewed", "spiffe_id", e.id.String(), "reason", why, "not_after", is.notAfter)
	e.mu.Lock()
	for s := range e.subs {
		s.poke()
	}
	e.mu.Unlock()
}

// Run renews SVIDs at their rotation time and after CA changes that
// invalidate them, and evicts idle ones, until ctx is cancelled.
func (c *Cache) Run(ctx context.Context) error {
	caChanged := c.ca.Changed()
	t := time.NewTimer(0)
	defer t.Stop()
	retry := time.Second
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.kick:
		case <-caChanged:
			caChanged = c.ca.Changed()
		}
		next, failed := c.sweep()
		wait := maxWait
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(c.now()), 0))
		}
		if failed {
			// Full jitter between half the backoff and the backoff, so
			// sidecars that lost the CA service together do not retry in
			// lock-step.
			wait = min(wait, retry/2+rand.N(retry/2+1))
			retry = min(2*retry, maxWait)
		} else {
			retry = time.Second
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
	}
}

// sweep renews what is due and evicts what is idle; it returns the next
// rotation time and whether any renewal failed.
func (c *Cache) sweep() (next time.Time, failed bool) {
	now := c.now()
	bundle := c.ca.Bundle()
	c.mu.Lock()
	checkChains := bundle != c.swept
	c.swept = bundle
	var due []*entry
	var dueWhy []string
	for k, e := range c.entries {
		e.mu.Lock()
		idle := len(e.subs) == 0 && !e.idleSince.IsZero() && now.Sub(e.idleSince) >= c.idle
		e.mu.Unlock()
		if idle {
			delete(c.entries, k)
			c.forget(e)
			continue
		}
		cur := e.cur.Load()
		if cur == nil {
			continue
		}
		leaf := cur.svid.Certificates[0]
		switch {
		case certs.ShouldRotate(now, leaf):
			due, dueWhy = append(due, e), append(dueWhy, "half-life")
		case checkChains && !chainsTo(cur.svid, bundle, now):
			due, dueWhy = append(due, e), append(dueWhy, "issuer left the trust bundle")
		default:
			if rt := certs.RotationTime(leaf); next.IsZero() || rt.Before(next) {
				next = rt
			}
		}
	}
	c.mu.Unlock()
	overdue := 0
	for i, e := range due {
		c.renew(e, dueWhy[i])
		cur := e.cur.Load()
		if certs.ShouldRotate(now, cur.svid.Certificates[0]) {
			failed = true
			overdue++
			continue
		}
		if rt := certs.RotationTime(cur.svid.Certificates[0]); next.IsZero() || rt.Before(next) {
			next = rt
		}
	}
	c.m.overdue.Set(float64(overdue))
	return next, failed
}

// forget drops an evicted entry's metric unless another entry serves the
// same SPIFFE ID. Called with c.mu held.
func (c *Cache) forget(e *entry) {
	for _, o := range c.entries {
		if o.id == e.id {
			return
		}
	}
	c.m.expiry.DeleteLabelValues(e.id.String())
}

func chainsTo(svid *x509svid.SVID, b *x509bundle.Bundle, now time.Time) bool {
	_, _, err := x509svid.Verify(svid.Certificates, b, x509svid.WithTime(now))
	return err == nil
}

// anyFor returns the secret rendered under name, cached per SVID.
func (is *issued) anyFor(name string) (*anypb.Any, error) {
	if a, ok := is.anys.Load(name); ok {
		return a.(*anypb.Any), nil
	}
	a, err := anypb.New(tlsSecret(name, is.certPEM, is.keyPEM))
	if err != nil {
		return nil, err
	}
	is.anys.Store(name, a)
	return a, nil
}
