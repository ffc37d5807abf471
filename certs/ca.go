package certs

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshd/meshd/internal/watch"
)

// Defaults.
const (
	DefaultSVIDTTL = time.Hour
	DefaultCATTL   = 30 * 24 * time.Hour
	// SVIDBackdate is how far an SVID's NotBefore is set into the past
	// (at most a tenth of the SVID TTL, so a short-lived SVID's half-life
	// never falls before its issuance).
	SVIDBackdate = 10 * time.Second
	// MinSVIDTTL is the shortest SVID lifetime accepted. X.509 times have
	// one-second resolution, so a shorter lifetime could put the renewal
	// point (half-life ±10 %) before the moment of issuance.
	MinSVIDTTL = 10 * time.Second
	// MinCATTLFactor: a root must live at least this many SVID lifetimes, so
	// that the active root (which signs for its first 5/6) never has to cut
	// SVID lifetimes short.
	MinCATTLFactor = 6
)

// Config configures a CA.
type Config struct {
	TrustDomain spiffeid.TrustDomain
	// StateDir holds the self-managed root (ca.json). Required unless
	// CACertFile and CAKeyFile are set.
	StateDir string
	// CAKeyType and CATTL apply to roots meshd creates.
	CAKeyType KeyType
	CATTL     time.Duration
	// CACertFile/CAKeyFile name an operator-provided root, or an
	// intermediate followed by its chain up to and including the root.
	CACertFile string
	CAKeyFile  string
	// SVIDTTL is the lifetime of issued SVIDs; SVIDKeyType their key type.
	SVIDTTL     time.Duration
	SVIDKeyType KeyType
	// PollInterval is how often the state (or the operator's files) is
	// checked for outside changes (default 1s).
	PollInterval time.Duration
	// Now is the clock (default time.Now).
	Now        func() time.Time
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

type signer struct {
	cert  *x509.Certificate
	key   crypto.Signer
	chain []*x509.Certificate // intermediates sent after the leaf
}

type snapshot struct {
	signer *signer
	bundle *x509bundle.Bundle
	state  *State // nil for an operator-provided CA
}

// CA issues X.509-SVIDs and serves the trust bundle. It is safe for
// concurrent use; Run keeps it current.
type CA struct {
	cfg     Config
	log     *slog.Logger
	store   Store
	policy  Policy
	snap    atomic.Pointer[snapshot]
	changed watch.Signal
	m       caMetrics

	stateStat   os.FileInfo
	certFile    watch.File
	keyFile     watch.File
	operatorErr string // last refusal of the operator's files, logged once
}

type caMetrics struct {
	issued     prometheus.Counter
	issueErrs  prometheus.Counter
	rootExpiry *prometheus.GaugeVec
	updates    prometheus.Counter
	stateErrs  prometheus.Counter
}

// New loads the CA, creating a first root in StateDir if there is none.
func New(cfg Config) (*CA, error) {
	if cfg.Log == nil {
		return nil, errors.New("certs: Config.Log is required")
	}
	if cfg.Registerer == nil {
		return nil, errors.New("certs: Config.Registerer is required")
	}
	if cfg.TrustDomain.IsZero() {
		return nil, errors.New("certs: trust domain is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SVIDTTL <= 0 {
		cfg.SVIDTTL = DefaultSVIDTTL
	}
	if cfg.CATTL <= 0 {
		cfg.CATTL = DefaultCATTL
	}
	if cfg.CAKeyType == "" {
		cfg.CAKeyType = KeyECDSAP256
	}
	if cfg.SVIDKeyType == "" {
		cfg.SVIDKeyType = KeyECDSAP256
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.SVIDTTL < MinSVIDTTL {
		return nil, fmt.Errorf("--svid-ttl %s is below the minimum %s", cfg.SVIDTTL, MinSVIDTTL)
	}
	operator := cfg.CACertFile != "" || cfg.CAKeyFile != ""
	if operator && (cfg.CACertFile == "" || cfg.CAKeyFile == "") {
		return nil, errors.New("--ca-cert and --ca-key go together")
	}
	if !operator && cfg.StateDir == "" {
		return nil, errors.New("a state directory (--state-dir) is required for meshd's own CA")
	}
	if !operator && cfg.CATTL < MinCATTLFactor*cfg.SVIDTTL {
		return nil, fmt.Errorf("--ca-ttl %s must be at least %d × --svid-ttl (%s)", cfg.CATTL, MinCATTLFactor, cfg.SVIDTTL)
	}
	c := &CA{
		cfg:    cfg,
		log:    cfg.Log.With("component", "ca"),
		store:  Store{Dir: cfg.StateDir},
		policy: Policy{TrustDomain: cfg.TrustDomain, KeyType: cfg.CAKeyType, CATTL: cfg.CATTL},
		m: caMetrics{
			issued: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "meshd_ca_svids_issued_total", Help: "X.509-SVIDs issued by meshd's CA.",
			}),
			issueErrs: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "meshd_ca_svid_issue_errors_total", Help: "X.509-SVID issuance failures.",
			}),
			rootExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "meshd_ca_root_expiry_timestamp_seconds",
				Help: "NotAfter of every root in the trust bundle, by status (active, prepared, retired, operator).",
			}, []string{"status", "id"}),
			updates: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "meshd_ca_updates_total", Help: "Changes to the CA's signer or trust bundle (rollover steps, reloads).",
			}),
			stateErrs: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "meshd_ca_state_errors_total", Help: "Failures to read, advance or write the CA state.",
			}),
		},
	}
	for _, col := range []prometheus.Collector{c.m.issued, c.m.issueErrs, c.m.rootExpiry, c.m.updates, c.m.stateErrs} {
		if err := cfg.Registerer.Register(col); err != nil {
			return nil, fmt.Errorf("certs: register metrics: %w", err)
		}
	}
	if operator {
		c.certFile = watch.File{Path: cfg.CACertFile}
		c.keyFile = watch.File{Path: cfg.CAKeyFile}
		if _, err := c.reloadOperator(); err != nil {
			return nil, err
		}
		return c, nil
	}
	if _, err := c.advance(); err != nil {
		return nil, err
	}
	return c, nil
}

// TrustDomain is the CA's trust domain.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.cfg.TrustDomain }

// Bundle returns the current trust bundle. The caller must not modify it.
func (c *CA) Bundle() *x509bundle.Bundle { return c.snap.Load().bundle }

// State returns the self-managed CA's state (nil for an operator CA). The
// caller must not modify it.
func (c *CA) State() *State { return c.snap.Load().state }

// Changed returns a channel closed at the next change of the bundle or of
// the signing root.
func (c *CA) Changed() <-chan struct{} { return c.changed.C() }

// SVIDTTL is the configured SVID lifetime.
func (c *CA) SVIDTTL() time.Duration { return c.cfg.SVIDTTL }

// Issue mints a new key and X.509-SVID for id with the given DNS SANs. The
// chain holds the leaf and any intermediates; the key never leaves memory.
func (c *CA) Issue(id spiffeid.ID, dnsNames []string) (*x509svid.SVID, error) {
	svid, err := c.issue(id, dnsNames)
	if err != nil {
		c.m.issueErrs.Inc()
		return nil, fmt.Errorf("issue SVID for %s: %w", id, err)
	}
	c.m.issued.Inc()
	return svid, nil
}

func (c *CA) issue(id spiffeid.ID, dnsNames []string) (*x509svid.SVID, error) {
	key, err := c.cfg.SVIDKeyType.Generate()
	if err != nil {
		return nil, err
	}
	chain, err := c.sign(id, dnsNames, key.Public(), c.cfg.SVIDTTL)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}, nil
}

// SignPublicKey certifies a public key the caller holds the private key of
// (the CA service signs CSRs with it): an X.509-SVID for id with the given
// DNS SANs, valid for ttl (the configured SVID TTL when 0), never past the
// signing root. It returns the leaf followed by any intermediates. The
// caller is responsible for having checked that the requester may have id.
func (c *CA) SignPublicKey(id spiffeid.ID, dnsNames []string, pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error) {
	if ttl <= 0 {
		ttl = c.cfg.SVIDTTL
	}
	chain, err := c.sign(id, dnsNames, pub, ttl)
	if err != nil {
		c.m.issueErrs.Inc()
		return nil, fmt.Errorf("sign certificate for %s: %w", id, err)
	}
	c.m.issued.Inc()
	return chain, nil
}

func (c *CA) sign(id spiffeid.ID, dnsNames []string, pub crypto.PublicKey, ttl time.Duration) ([]*x509.Certificate, error) {
	if !id.MemberOf(c.cfg.TrustDomain) {
		return nil, fmt.Errorf("not a member of trust domain %s", c.cfg.TrustDomain)
	}
	s := c.snap.Load().signer
	now := c.cfg.Now()
	notAfter := now.Add(ttl)
	if notAfter.After(s.cert.NotAfter) {
		notAfter = s.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("signing CA expired at %s", s.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"meshd"}},
		NotBefore:             now.Add(-min(SVIDBackdate, ttl/10)),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{id.URL()},
		DNSNames:              dnsNames,
	}
	if _, isRSA := pub.(*rsa.PublicKey); isRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if len(dnsNames) > 0 {
		tmpl.Subject.CommonName = dnsNames[0]
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.cert, pub, s.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	chain := make([]*x509.Certificate, 0, 1+len(s.chain))
	chain = append(chain, leaf)
	chain = append(chain, s.chain...)
	return chain, nil
}

// Run keeps the CA current until ctx is cancelled: it advances the rollover
// schedule and picks up outside changes (`meshd ca rotate`, or new operator
// files).
func (c *CA) Run(ctx context.Context) error {
	t := time.NewTimer(c.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var err error
		if c.cfg.CACertFile != "" {
			_, err = c.reloadOperator()
		} else if c.stateDue() {
			_, err = c.advance()
		}
		if err != nil {
			c.m.stateErrs.Inc()
			c.log.Error("CA update failed; still serving the last good state", "err", err)
		}
		t.Reset(c.cfg.PollInterval)
	}
}

// stateDue reports whether the state file changed on disk or a scheduled
// rollover step is due.
func (c *CA) stateDue() bool {
	fi, err := os.Stat(c.store.Path())
	if err != nil || c.stateStat == nil || !os.SameFile(fi, c.stateStat) ||
		fi.ModTime() != c.stateStat.ModTime() || fi.Size() != c.stateStat.Size() {
		return true
	}
	next := NextEvent(c.snap.Load().state)
	return !next.IsZero() && !c.cfg.Now().Before(next)
}

// NextEvent is the earliest time at which Advance would change s.
func NextEvent(s *State) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, a := range s.Authorities {
		consider(a.Cert.NotAfter)
		switch a.Status {
		case StatusActive:
			if s.Prepared() == nil {
				consider(PrepareAt(a.Cert))
			}
		case StatusPrepared:
			if a.ActivateAt != nil {
				consider(*a.ActivateAt)
			}
		case StatusRetired:
			consider(*a.KeepUntil)
		}
	}
	return next
}

// advance runs the rollover policy against the state directory and installs
// the result.
func (c *CA) advance() (bool, error) {
	now := c.cfg.Now()
	var before *State
	if cur := c.snap.Load(); cur != nil {
		before = cur.state
	}
	out, fi, err := c.store.UpdateStat(func(s *State) (*State, bool, error) {
		changed := false
		if s == nil {
			s = &State{Version: 1, TrustDomain: c.cfg.TrustDomain.Name(), KeyType: c.cfg.CAKeyType, CATTL: Duration(c.cfg.CATTL)}
			changed = true
			c.log.Info("creating a new root CA", "dir", c.store.Dir, "trust_domain", s.TrustDomain, "key_type", s.KeyType, "ttl", c.cfg.CATTL)
		} else if s.TrustDomain != c.cfg.TrustDomain.Name() {
			return nil, false, fmt.Errorf("state dir %s belongs to trust domain %q, not %q", c.store.Dir, s.TrustDomain, c.cfg.TrustDomain.Name())
		}
		p := c.policy
		p.KeyType, p.CATTL = s.KeyType, time.Duration(s.CATTL)
		adv, err := p.Advance(s, now)
		if err != nil {
			return nil, false, err
		}
		return s, changed || adv, nil
	})
	if err != nil {
		return false, err
	}
	c.stateStat = fi
	act := out.Active()
	if act == nil || act.Key == nil {
		return false, fmt.Errorf("CA state in %s has no usable active root", c.store.Dir)
	}
	changed := before == nil || !sameRoots(before, out) || !before.Active().Cert.Equal(act.Cert)
	if before != nil && changed {
		c.logTransition(before, out)
	}
	c.install(&snapshot{
		signer: &signer{cert: act.Cert, key: act.Key},
		bundle: x509bundle.FromX509Authorities(c.cfg.TrustDomain, out.Roots()),
		state:  out,
	}, changed)
	return changed, nil
}

func sameRoots(a, b *State) bool {
	ra, rb := a.Roots(), b.Roots()
	return slices.EqualFunc(ra, rb, func(x, y *x509.Certificate) bool { return x.Equal(y) })
}

func (c *CA) logTransition(before, after *State) {
	ids := func(s *State) map[string]Status {
		m := map[string]Status{}
		for _, a := range s.Authorities {
			m[a.ID()] = a.Status
		}
		return m
	}
	b, a := ids(before), ids(after)
	for id, st := range a {
		if b[id] != st {
			c.log.Info("root CA changed status", "id", id, "from", string(b[id]), "to", string(st))
		}
	}
	for id := range b {
		if _, ok := a[id]; !ok {
			c.log.Info("root CA removed from the trust bundle", "id", id)
		}
	}
}

func (c *CA) install(s *snapshot, changed bool) {
	c.snap.Store(s)
	c.m.rootExpiry.Reset()
	if s.state != nil {
		for _, a := range s.state.Authorities {
			c.m.rootExpiry.WithLabelValues(string(a.Status), a.ID()).Set(float64(a.Cert.NotAfter.Unix()))
		}
	} else {
		for _, r := range s.bundle.X509Authorities() {
			c.m.rootExpiry.WithLabelValues("operator", authorityID(r)).Set(float64(r.NotAfter.Unix()))
		}
	}
	if changed {
		c.m.updates.Inc()
		c.changed.Notify()
	}
}

// reloadOperator (re)loads --ca-cert/--ca-key if either changed.
func (c *CA) reloadOperator() (bool, error) {
	certPEM, certChanged, err := c.certFile.Read()
	if err != nil {
		return false, fmt.Errorf("--ca-cert: %w", err)
	}
	keyPEM, keyChanged, err := c.keyFile.Read()
	if err != nil {
		return false, fmt.Errorf("--ca-key: %w", err)
	}
	if !certChanged && !keyChanged && c.operatorErr == "" {
		return false, nil
	}
	// A refused pair is not marked as handled: it is retried every poll, so
	// fixing the key's mode (or waiting out clock skew) takes effect.
	s, bundle, err := loadOperatorCA(c.cfg.TrustDomain, c.cfg.CACertFile, certPEM, c.cfg.CAKeyFile, keyPEM, c.cfg.Now())
	if err != nil {
		repeated := err.Error() == c.operatorErr
		c.operatorErr = err.Error()
		if repeated {
			return false, nil // already logged and counted
		}
		return false, err
	}
	c.operatorErr = ""
	c.certFile.Mark(certPEM)
	c.keyFile.Mark(keyPEM)
	if fi, err := os.Stat(c.cfg.CAKeyFile); err == nil && fi.Mode().Perm()&0o070 != 0 {
		c.log.Warn("CA key file is group-accessible; 0600 is recommended", "file", c.cfg.CAKeyFile, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	cur := c.snap.Load()
	changed := cur == nil || !cur.bundle.Equal(bundle) || !cur.signer.cert.Equal(s.cert)
	if cur != nil && changed {
		c.log.Info("loaded a new operator-provided CA", "cert", c.cfg.CACertFile, "subject", s.cert.Subject.String())
	}
	c.install(&snapshot{signer: s, bundle: bundle}, changed)
	return changed, nil
}

// loadOperatorCA parses an operator-provided CA: certFile holds the signing
// certificate first, then any intermediates, then the self-signed root.
func loadOperatorCA(td spiffeid.TrustDomain, certFile string, certPEM []byte, keyFile string, keyPEM []byte, now time.Time) (*signer, *x509bundle.Bundle, error) {
	fi, err := os.Stat(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--ca-key: %w", err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		return nil, nil, fmt.Errorf("CA key file %s is world-accessible (mode %04o); refusing to use it (chmod 600 %s)", keyFile, fi.Mode().Perm(), keyFile)
	}
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate file %s: %w", certFile, err)
	}
	if len(certs) == 0 {
		return nil, nil, fmt.Errorf("CA certificate file %s holds no certificate", certFile)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key file %s: %w", keyFile, err)
	}
	leaf := certs[0]
	if err := keyMatches(key, leaf); err != nil {
		return nil, nil, fmt.Errorf("CA key file %s does not match %s: %w", keyFile, certFile, err)
	}
	if !leaf.IsCA || leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, nil, fmt.Errorf("CA certificate file %s: the first certificate is not a CA allowed to sign certificates", certFile)
	}
	if _, err := keyTypeOf(leaf.PublicKey); err != nil {
		return nil, nil, fmt.Errorf("CA certificate file %s: %w", certFile, err)
	}
	root := certs[len(certs)-1]
	if err := root.CheckSignatureFrom(root); err != nil || !bytes.Equal(root.RawIssuer, root.RawSubject) {
		return nil, nil, fmt.Errorf("CA certificate file %s: the last certificate is not a self-signed root; append the chain up to the root", certFile)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range certs[1:max(1, len(certs)-1)] { // none when the file holds only the root
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, nil, fmt.Errorf("CA certificate file %s: chain does not verify: %w", certFile, err)
	}
	// Served after each SVID: the signing intermediate and any further
	// intermediates, never the root (peers have it in their bundle).
	chain := certs[:len(certs)-1]
	return &signer{cert: leaf, key: key, chain: chain}, x509bundle.FromX509Authorities(td, []*x509.Certificate{root}), nil
}

func parseCertsPEM(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

func parseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key found")
		}
		var k any
		var err error
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("unsupported key type %T", k)
		}
		if _, err := keyTypeOf(s.Public()); err != nil {
			return nil, err
		}
		return s, nil
	}
}

func keyMatches(key crypto.Signer, cert *x509.Certificate) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok || !pub.Equal(cert.PublicKey) {
		return errors.New("private key does not match the certificate")
	}
	return nil
}

var (
	_ crypto.Signer = (*ecdsa.PrivateKey)(nil)
	_ crypto.Signer = ed25519.PrivateKey(nil)
)
