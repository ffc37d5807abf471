package caservice

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// ErrInvalidToken is wrapped by every Verify error caused by the token
// itself: malformed, bad signature, unknown key, wrong issuer or audience,
// outside its validity window, or not a service-account token. Callers map
// it to PermissionDenied. Failures to obtain the verification keys do not
// wrap it.
var ErrInvalidToken = errors.New("invalid kubernetes service-account token")

const (
	// maxKubernetesTokenSize bounds the tokens Verify will parse. Real projected
	// tokens are around 1 KiB.
	maxKubernetesTokenSize = 16 << 10
	// maxJWKSSize bounds a JWKS or discovery document, fetched or read.
	maxJWKSSize = 1 << 20

	// jwksMaxAge is how long fetched keys are used before being refetched.
	jwksMaxAge = time.Hour
	// jwksRefetchInterval is the minimum time between two fetch attempts
	// once keys are loaded, whatever triggers them (unknown kid, age).
	jwksRefetchInterval = 30 * time.Second
	// jwksRetryInterval is the minimum time between fetch attempts while
	// no key set has ever been loaded.
	jwksRetryInterval = 5 * time.Second
	// jwksFetchTimeout bounds one fetch (discovery plus JWKS) even when the
	// injected HTTP client has no timeout of its own.
	jwksFetchTimeout = 30 * time.Second

	defaultKubernetesLeeway      = 60 * time.Second
	defaultKubernetesHTTPTimeout = 10 * time.Second

	serviceAccountSubjectPrefix = "system:serviceaccount:"
	// k8sMaxQuoted bounds token-supplied strings quoted in error messages.
	k8sMaxQuoted = 64
)

// kubernetesAlgorithms are the only signature algorithms accepted. HMAC and
// "none" are never accepted: go-jose refuses any algorithm not listed here
// before any key is looked at.
var kubernetesAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.ES256, jose.ES384,
}

// KubernetesConfig is the `kubernetes:` section of the CA service policy
// file. Exactly one of JWKSFile, JWKSURL and OIDCDiscovery must be set.
type KubernetesConfig struct {
	// Issuer is the exact `iss` claim expected: the cluster's
	// service-account issuer. Required.
	Issuer string `yaml:"issuer"`
	// Audience must appear in the token's `aud` claim. Required.
	Audience string `yaml:"audience"`
	// JWKSFile is a JWKS document on disk (for example the output of
	// `kubectl get --raw /openid/v1/jwks`). It is re-read when its
	// modification time or size changes.
	JWKSFile string `yaml:"jwksFile"`
	// JWKSURL is fetched for the JWKS document. It must be https, except
	// for loopback hosts (kubectl proxy).
	JWKSURL string `yaml:"jwksURL"`
	// OIDCDiscovery fetches <issuer>/.well-known/openid-configuration and
	// uses its jwks_uri. The document's issuer must equal Issuer.
	OIDCDiscovery bool `yaml:"oidcDiscovery"`
	// CAFile is a PEM bundle trusted for HTTPS fetches instead of the
	// system roots. Only used with JWKSURL or OIDCDiscovery, and only when
	// KubernetesOptions.HTTPClient is nil.
	CAFile string `yaml:"caFile"`
	// Leeway is the allowed clock skew for exp, nbf and iat. Zero means 60s.
	Leeway time.Duration `yaml:"leeway"`
}

// Validate checks the whole configuration and reports every problem found,
// each prefixed with the offending field's path.
func (c KubernetesConfig) Validate() error {
	var errs []error
	switch {
	case c.Issuer == "":
		errs = append(errs, errors.New("kubernetes.issuer: required"))
	case c.OIDCDiscovery:
		if err := checkJWKSURL(c.Issuer); err != nil {
			errs = append(errs, fmt.Errorf("kubernetes.issuer: %w (kubernetes.oidcDiscovery fetches keys from the issuer)", err))
		}
	}
	if strings.TrimSpace(c.Audience) == "" {
		errs = append(errs, errors.New("kubernetes.audience: required"))
	}

	var sources []string
	if c.JWKSFile != "" {
		sources = append(sources, "jwksFile")
	}
	if c.JWKSURL != "" {
		sources = append(sources, "jwksURL")
	}
	if c.OIDCDiscovery {
		sources = append(sources, "oidcDiscovery")
	}
	switch len(sources) {
	case 0:
		errs = append(errs, errors.New("kubernetes: one of jwksFile, jwksURL or oidcDiscovery is required"))
	case 1:
	default:
		errs = append(errs, fmt.Errorf("kubernetes: jwksFile, jwksURL and oidcDiscovery are mutually exclusive, but %s are set", strings.Join(sources, " and ")))
	}
	if c.JWKSURL != "" {
		if err := checkJWKSURL(c.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("kubernetes.jwksURL: %w", err))
		}
	}
	if c.CAFile != "" && c.JWKSURL == "" && !c.OIDCDiscovery {
		errs = append(errs, errors.New("kubernetes.caFile: only used with jwksURL or oidcDiscovery"))
	}
	if c.Leeway < 0 {
		errs = append(errs, fmt.Errorf("kubernetes.leeway: must not be negative, got %s", c.Leeway))
	}
	return errors.Join(errs...)
}

// KubernetesOptions holds the verifier's dependencies.
type KubernetesOptions struct {
	// HTTPClient fetches discovery and JWKS documents. When nil, a client
	// trusting KubernetesConfig.CAFile (else the system roots) with a 10s
	// timeout is built.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log is required.
	Log *slog.Logger
}

// KubernetesIdentity is what a verified token says about its caller.
type KubernetesIdentity struct {
	Namespace, ServiceAccount string
	PodName, PodUID           string // empty when the token is not bound to a pod
	Expiry                    time.Time
}

// KubernetesVerifier verifies projected Kubernetes service-account tokens.
// It is safe for concurrent use.
type KubernetesVerifier struct {
	issuer   string
	audience string
	leeway   time.Duration
	now      func() time.Time
	keys     jwksSource
}

// jwksSource yields the current verification keys. refetch asks for keys
// newer than those last returned because a token named an unknown key id;
// a source may decline (rate limit, files are checked on every call).
type jwksSource interface {
	keys(ctx context.Context, refetch bool) (*jwksKeySet, error)
}

// NewKubernetesVerifier validates cfg and builds a verifier. Remote keys are
// fetched lazily, on the first Verify.
func NewKubernetesVerifier(cfg KubernetesConfig, opts KubernetesOptions) (*KubernetesVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Log == nil {
		return nil, errors.New("kubernetes token verifier: Log is required")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = defaultKubernetesLeeway
	}
	v := &KubernetesVerifier{
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		leeway:   leeway,
		now:      now,
	}
	log := opts.Log.With("component", "kubernetes-token-verifier")

	if cfg.JWKSFile != "" {
		v.keys = &jwksFileSource{path: cfg.JWKSFile, log: log}
		return v, nil
	}
	client := opts.HTTPClient
	if client != nil && cfg.CAFile != "" {
		log.Warn("kubernetes.caFile is ignored: the verifier was given its own HTTP client", "caFile", cfg.CAFile)
	}
	if client == nil {
		var err error
		if client, err = newJWKSHTTPClient(cfg.CAFile, now); err != nil {
			return nil, err
		}
	}
	v.keys = &jwksRemoteSource{
		client:    client,
		now:       now,
		log:       log,
		issuer:    cfg.Issuer,
		jwksURL:   cfg.JWKSURL,
		discovery: cfg.OIDCDiscovery,
	}
	return v, nil
}

// Verify checks token and returns the identity it asserts. Errors caused by
// the token wrap ErrInvalidToken; errors obtaining keys do not.
func (v *KubernetesVerifier) Verify(ctx context.Context, token string) (KubernetesIdentity, error) {
	if len(token) > maxKubernetesTokenSize {
		return KubernetesIdentity{}, fmt.Errorf("%w: token is %d bytes, over the %d-byte limit", ErrInvalidToken, len(token), maxKubernetesTokenSize)
	}
	tok, err := jwt.ParseSigned(token, kubernetesAlgorithms)
	if err != nil {
		var algErr *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &algErr) {
			return KubernetesIdentity{}, fmt.Errorf("%w: signature algorithm %s is not accepted (want one of %s)", ErrInvalidToken, k8sQuote(string(algErr.Got)), k8sAlgorithmList())
		}
		return KubernetesIdentity{}, fmt.Errorf("%w: malformed JWS: %w", ErrInvalidToken, err)
	}
	if len(tok.Headers) != 1 {
		return KubernetesIdentity{}, fmt.Errorf("%w: want exactly one signature, got %d", ErrInvalidToken, len(tok.Headers))
	}
	kid := tok.Headers[0].KeyID
	alg := jose.SignatureAlgorithm(tok.Headers[0].Algorithm)

	candidates, err := v.candidateKeys(ctx, kid, alg)
	if err != nil {
		return KubernetesIdentity{}, err
	}
	var (
		claims  jwt.Claims
		private kubernetesClaims
		ok      bool
	)
	for _, k := range candidates {
		err := tok.Claims(k.pub, &claims, &private)
		if err == nil {
			ok = true
			break
		}
		if !errors.Is(err, jose.ErrCryptoFailure) {
			// The signature checked out but the claims do not decode, or
			// the token is unusable whatever the key (e.g. "crit").
			return KubernetesIdentity{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
		}
	}
	if !ok {
		if kid == "" {
			return KubernetesIdentity{}, fmt.Errorf("%w: %s signature does not verify with any of the %d candidate keys", ErrInvalidToken, alg, len(candidates))
		}
		return KubernetesIdentity{}, fmt.Errorf("%w: %s signature does not verify with key %s", ErrInvalidToken, alg, k8sQuote(kid))
	}
	return v.checkClaims(claims, private)
}

// candidateKeys returns the keys a token signed with alg under kid may have
// been signed with. An unknown kid triggers a (rate-limited) refetch.
func (v *KubernetesVerifier) candidateKeys(ctx context.Context, kid string, alg jose.SignatureAlgorithm) ([]jwksKey, error) {
	set, err := v.keys.keys(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("verify kubernetes service-account token: %w", err)
	}
	if c := set.match(kid, alg); len(c) > 0 {
		return c, nil
	}
	if kid == "" {
		return nil, fmt.Errorf("%w: token has no key id and no key in the JWKS accepts %s", ErrInvalidToken, alg)
	}
	if !set.hasKeyID(kid) {
		// Perhaps the issuer rotated its keys since we last looked.
		set, err = v.keys.keys(ctx, true)
		if err != nil {
			return nil, fmt.Errorf("verify kubernetes service-account token: key id %s is not in the cached JWKS, which cannot be refreshed: %w", k8sQuote(kid), err)
		}
		if c := set.match(kid, alg); len(c) > 0 {
			return c, nil
		}
	}
	if set.hasKeyID(kid) {
		return nil, fmt.Errorf("%w: key %s does not accept algorithm %s", ErrInvalidToken, k8sQuote(kid), alg)
	}
	return nil, fmt.Errorf("%w: unknown key id %s", ErrInvalidToken, k8sQuote(kid))
}

// kubernetesClaims is the private `kubernetes.io` claim of projected tokens.
type kubernetesClaims struct {
	Kubernetes *struct {
		Namespace      string `json:"namespace"`
		ServiceAccount *struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"serviceaccount"`
		Pod *struct {
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"pod"`
	} `json:"kubernetes.io"`
}

// checkClaims validates the claims of a token whose signature verified.
func (v *KubernetesVerifier) checkClaims(c jwt.Claims, private kubernetesClaims) (KubernetesIdentity, error) {
	now := v.now()
	if c.Issuer != v.issuer {
		return KubernetesIdentity{}, fmt.Errorf("%w: issuer %s, want %q", ErrInvalidToken, k8sQuote(c.Issuer), v.issuer)
	}
	if !c.Audience.Contains(v.audience) {
		return KubernetesIdentity{}, fmt.Errorf("%w: audience %s does not include %q", ErrInvalidToken, k8sQuoteList(c.Audience), v.audience)
	}
	if c.Expiry == nil {
		return KubernetesIdentity{}, fmt.Errorf("%w: no exp claim", ErrInvalidToken)
	}
	exp := c.Expiry.Time()
	if now.Add(-v.leeway).After(exp) {
		return KubernetesIdentity{}, fmt.Errorf("%w: expired at %s (now %s, leeway %s)", ErrInvalidToken, k8sStamp(exp), k8sStamp(now), v.leeway)
	}
	if c.NotBefore != nil && now.Add(v.leeway).Before(c.NotBefore.Time()) {
		return KubernetesIdentity{}, fmt.Errorf("%w: not valid before %s (now %s, leeway %s)", ErrInvalidToken, k8sStamp(c.NotBefore.Time()), k8sStamp(now), v.leeway)
	}
	if c.IssuedAt != nil && now.Add(v.leeway).Before(c.IssuedAt.Time()) {
		return KubernetesIdentity{}, fmt.Errorf("%w: issued in the future at %s (now %s, leeway %s)", ErrInvalidToken, k8sStamp(c.IssuedAt.Time()), k8sStamp(now), v.leeway)
	}

	rest, ok := strings.CutPrefix(c.Subject, serviceAccountSubjectPrefix)
	ns, sa, _ := strings.Cut(rest, ":")
	if !ok || !k8sIsDNSLabel(ns) || !k8sIsDNSSubdomain(sa) {
		return KubernetesIdentity{}, fmt.Errorf("%w: subject %s is not system:serviceaccount:<namespace>:<name>", ErrInvalidToken, k8sQuote(c.Subject))
	}
	id := KubernetesIdentity{Namespace: ns, ServiceAccount: sa, Expiry: exp}

	k := private.Kubernetes
	if k == nil {
		return id, nil
	}
	if k.Namespace != ns {
		return KubernetesIdentity{}, fmt.Errorf("%w: kubernetes.io namespace %s disagrees with subject namespace %q", ErrInvalidToken, k8sQuote(k.Namespace), ns)
	}
	if k.ServiceAccount == nil || k.ServiceAccount.Name != sa {
		got := ""
		if k.ServiceAccount != nil {
			got = k.ServiceAccount.Name
		}
		return KubernetesIdentity{}, fmt.Errorf("%w: kubernetes.io service account %s disagrees with subject service account %q", ErrInvalidToken, k8sQuote(got), sa)
	}
	if p := k.Pod; p != nil {
		if p.Name == "" || p.UID == "" {
			return KubernetesIdentity{}, fmt.Errorf("%w: kubernetes.io pod claim lacks name or uid", ErrInvalidToken)
		}
		id.PodName, id.PodUID = p.Name, p.UID
	}
	return id, nil
}

// jwksKey is one usable public key of a JWKS.
type jwksKey struct {
	kid string
	alg string // the JWK's "alg", empty when it names none
	pub crypto.PublicKey
}

// accepts reports whether k may verify a signature made with alg.
func (k jwksKey) accepts(alg jose.SignatureAlgorithm) bool {
	if k.alg != "" && k.alg != string(alg) {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		return alg == jose.RS256 || alg == jose.RS384 || alg == jose.RS512
	case *ecdsa.PublicKey:
		return (alg == jose.ES256 && pub.Curve == elliptic.P256()) ||
			(alg == jose.ES384 && pub.Curve == elliptic.P384())
	default:
		return false
	}
}

// jwksKeySet is an immutable set of verification keys.
type jwksKeySet struct {
	keys []jwksKey
}

// match returns the keys that may verify a token signed with alg under kid:
// those with that key id, then those naming no key id at all. A token
// without kid may be signed by any key of the right family.
func (s *jwksKeySet) match(kid string, alg jose.SignatureAlgorithm) []jwksKey {
	var exact, anonymous []jwksKey
	for _, k := range s.keys {
		if !k.accepts(alg) {
			continue
		}
		switch {
		case kid == "" || k.kid == kid:
			exact = append(exact, k)
		case k.kid == "":
			anonymous = append(anonymous, k)
		}
	}
	return append(exact, anonymous...)
}

func (s *jwksKeySet) hasKeyID(kid string) bool {
	for _, k := range s.keys {
		if k.kid == kid {
			return true
		}
	}
	return false
}

// parseJWKS parses a JWKS document. Keys that cannot be used (unsupported
// type or curve, RSA under 2048 bits, "use" other than "sig", symmetric)
// are skipped and logged; a set with no usable key is an error.
func parseJWKS(data []byte, log *slog.Logger, origin string) (*jwksKeySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse JWKS: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New(`parse JWKS: no "keys" array`)
	}
	set := &jwksKeySet{}
	var skipped []string
	for i, raw := range doc.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		if reason := unusableJWK(&jwk); reason != "" {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %s): %s", i, k8sQuote(jwk.KeyID), reason))
			continue
		}
		pub := jwk.Public()
		set.keys = append(set.keys, jwksKey{kid: jwk.KeyID, alg: jwk.Algorithm, pub: pub.Key})
	}
	if len(skipped) > 0 {
		log.Warn("skipped unusable JWKS keys", "source", origin, "skipped", skipped)
	}
	if len(set.keys) == 0 {
		return nil, fmt.Errorf("parse JWKS: no usable RSA or ECDSA signing key among %d keys", len(doc.Keys))
	}
	return set, nil
}

// unusableJWK says why a JWK cannot verify tokens, or "" when it can.
func unusableJWK(k *jose.JSONWebKey) string {
	if k.Use != "" && k.Use != "sig" {
		return fmt.Sprintf("use is %s, not \"sig\"", k8sQuote(k.Use))
	}
	if !k.Valid() {
		return "incomplete key"
	}
	pub := k.Public()
	switch key := pub.Key.(type) {
	case *rsa.PublicKey:
		if key.N.BitLen() < 2048 {
			return fmt.Sprintf("RSA key of %d bits, under 2048", key.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if key.Curve != elliptic.P256() && key.Curve != elliptic.P384() {
			return "ECDSA curve other than P-256 or P-384"
		}
	default:
		return fmt.Sprintf("unsupported key type %T", k.Key)
	}
	if k.Algorithm != "" && !k8sAcceptedAlg(k.Algorithm) {
		return fmt.Sprintf("alg %s is not accepted", k8sQuote(k.Algorithm))
	}
	return ""
}

func k8sAcceptedAlg(alg string) bool {
	for _, a := range kubernetesAlgorithms {
		if string(a) == alg {
			return true
		}
	}
	return false
}

// jwksFileSource reads a JWKS file, again whenever its modification time or
// size changes. A file that cannot be read or parsed fails every Verify
// (closed) until it changes.
type jwksFileSource struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	loaded  bool
	modTime time.Time
	size    int64
	set     *jwksKeySet
	err     error
}

func (f *jwksFileSource) keys(context.Context, bool) (*jwksKeySet, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("kubernetes.jwksFile: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.loaded && fi.ModTime().Equal(f.modTime) && fi.Size() == f.size {
		return f.set, f.err
	}
	// The stat precedes the read, so the content is at least as new as
	// the recorded stat; a write racing with us is picked up next time.
	f.set, f.err = f.load()
	f.loaded, f.modTime, f.size = true, fi.ModTime(), fi.Size()
	if f.err == nil {
		f.log.Info("loaded JWKS file", "path", f.path, "keys", len(f.set.keys))
	}
	return f.set, f.err
}

func (f *jwksFileSource) load() (*jwksKeySet, error) {
	file, err := os.Open(f.path)
	if err != nil {
		return nil, fmt.Errorf("kubernetes.jwksFile: %w", err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("kubernetes.jwksFile: read %s: %w", f.path, err)
	}
	if len(data) > maxJWKSSize {
		return nil, fmt.Errorf("kubernetes.jwksFile: %s is larger than %d bytes", f.path, maxJWKSSize)
	}
	set, err := parseJWKS(data, f.log, f.path)
	if err != nil {
		return nil, fmt.Errorf("kubernetes.jwksFile %s: %w", f.path, err)
	}
	return set, nil
}

// jwksRemoteSource fetches a JWKS over HTTP(S), directly or through OIDC
// discovery. At most one fetch runs at a time; concurrent callers that need
// its result wait for it. Keys are refetched when older than jwksMaxAge or
// when a token names an unknown kid, at most once per jwksRefetchInterval.
// If a refetch fails the previous keys stay in use.
type jwksRemoteSource struct {
	client    *http.Client
	now       func() time.Time
	log       *slog.Logger
	issuer    string
	jwksURL   string // from the config; empty with discovery
	discovery bool

	mu       sync.Mutex
	set      *jwksKeySet // last keys fetched successfully; nil before
	loadedAt time.Time   // when set was fetched
	jwksURI  string      // discovered JWKS URL, reused by kid-triggered refetches
	lastTry  time.Time   // start of the last fetch attempt
	lastErr  error       // result of the last attempt
	inflight *jwksFetch
}

// jwksFetch is one fetch in progress; done is closed once set and err are
// final.
type jwksFetch struct {
	done chan struct{}
	set  *jwksKeySet // the keys in use after the fetch (maybe older ones)
	err  error       // the fetch's own error
}

func (c *jwksFetch) wait(ctx context.Context, refetch bool) (*jwksKeySet, error) {
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for JWKS fetch: %w", context.Cause(ctx))
	}
	if c.err != nil && (c.set == nil || refetch) {
		return nil, c.err
	}
	return c.set, nil
}

func (r *jwksRemoteSource) keys(ctx context.Context, refetch bool) (*jwksKeySet, error) {
	r.mu.Lock()
	if call := r.inflight; call != nil {
		set := r.set
		r.mu.Unlock()
		if set != nil && !refetch {
			return set, nil // the keys we have will do meanwhile
		}
		return call.wait(ctx, refetch)
	}

	now := r.now()
	var reason string
	switch {
	case r.set == nil:
		if !r.lastTry.IsZero() && now.Sub(r.lastTry) < jwksRetryInterval {
			err := r.lastErr
			r.mu.Unlock()
			if err == nil { // cannot happen: no set means the last try failed
				err = errors.New("no JWKS loaded yet")
			}
			return nil, err
		}
		reason = "initial"
	case now.Sub(r.lastTry) < jwksRefetchInterval:
		set, err := r.set, error(nil)
		if refetch {
			err = r.lastErr // our view of the JWKS is stale, not the token bad
		}
		r.mu.Unlock()
		return set, err
	case now.Sub(r.loadedAt) >= jwksMaxAge:
		reason = "expired"
	case refetch:
		reason = "unknown key id"
	default:
		set := r.set
		r.mu.Unlock()
		return set, nil
	}

	call := &jwksFetch{done: make(chan struct{})}
	r.inflight = call
	r.lastTry = now
	jwksURI := r.jwksURI
	if reason != "unknown key id" || r.lastErr != nil {
		jwksURI = "" // rediscover
	}
	r.mu.Unlock()

	// The fetch serves every waiter, so it must not die with this caller's
	// context; it is bounded by jwksFetchTimeout instead.
	fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	go func() {
		defer cancel()
		r.finish(fetchCtx, call, reason, jwksURI)
	}()
	return call.wait(ctx, refetch)
}

// finish runs one fetch and publishes its result.
func (r *jwksRemoteSource) finish(ctx context.Context, call *jwksFetch, reason, jwksURI string) {
	set, uri, err := r.fetch(ctx, jwksURI)

	r.mu.Lock()
	if err == nil {
		r.set, r.loadedAt, r.jwksURI = set, r.now(), uri
	}
	r.lastErr = err
	r.inflight = nil
	call.set, call.err = r.set, err
	stale := r.set != nil && err != nil
	r.mu.Unlock()
	close(call.done)

	switch {
	case err == nil:
		r.log.Info("fetched JWKS", "url", uri, "reason", reason, "keys", len(set.keys))
	case stale:
		r.log.Warn("JWKS fetch failed; keeping the previous keys", "reason", reason, "err", err)
	}
}

// fetch fetches the JWKS from jwksURI, or from the configured or discovered
// URL when jwksURI is empty. It returns the keys and the URL used.
func (r *jwksRemoteSource) fetch(ctx context.Context, jwksURI string) (*jwksKeySet, string, error) {
	if jwksURI == "" {
		jwksURI = r.jwksURL
		if r.discovery {
			var err error
			if jwksURI, err = r.discover(ctx); err != nil {
				return nil, "", err
			}
		}
	}
	body, err := r.get(ctx, jwksURI)
	if err != nil {
		return nil, "", err
	}
	set, err := parseJWKS(body, r.log, jwksURI)
	if err != nil {
		return nil, "", fmt.Errorf("JWKS from %s: %w", jwksURI, err)
	}
	return set, jwksURI, nil
}

// discover fetches the issuer's OIDC discovery document and returns its
// jwks_uri.
func (r *jwksRemoteSource) discover(ctx context.Context) (string, error) {
	u := strings.TrimSuffix(r.issuer, "/") + "/.well-known/openid-configuration"
	body, err := r.get(ctx, u)
	if err != nil {
		return "", err
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("parse OIDC discovery document from %s: %w", u, err)
	}
	if doc.Issuer != r.issuer {
		return "", fmt.Errorf("OIDC discovery document from %s names issuer %s, want %q (kubernetes.issuer)", u, k8sQuote(doc.Issuer), r.issuer)
	}
	if doc.JWKSURI == "" {
		return "", fmt.Errorf("OIDC discovery document from %s has no jwks_uri", u)
	}
	if err := checkJWKSURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("OIDC discovery document from %s: jwks_uri %s: %w", u, k8sQuote(doc.JWKSURI), err)
	}
	return doc.JWKSURI, nil
}

// get fetches u and returns its body, which must be a 200 of at most
// maxJWKSSize bytes.
func (r *jwksRemoteSource) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the URL we name below
		}
		return nil, fmt.Errorf("fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // let the connection be reused
		return nil, fmt.Errorf("fetch %s: unexpected HTTP status %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: read body: %w", u, err)
	}
	if len(body) > maxJWKSSize {
		return nil, fmt.Errorf("fetch %s: response larger than %d bytes", u, maxJWKSSize)
	}
	return body, nil
}

// newJWKSHTTPClient builds the default client: it trusts caFile (else the
// system roots), checks certificates against the injected clock, refuses
// redirects to plain http, and times out after 10s.
func newJWKSHTTPClient(caFile string, now func() time.Time) (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, Time: now}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("kubernetes.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubernetes.caFile: no PEM certificate in %s", caFile)
		}
		tlsConfig.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	return &http.Client{
		Transport: transport,
		Timeout:   defaultKubernetesHTTPTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if err := checkJWKSURL(req.URL.String()); err != nil {
				return fmt.Errorf("redirect to %s: %w", req.URL.Redacted(), err)
			}
			return nil
		},
	}, nil
}

// checkJWKSURL accepts absolute https URLs, and http ones to loopback
// hosts only (kubectl proxy): keys fetched in the clear could be forged.
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
		return fmt.Errorf("%q must use https (plain http only for loopback hosts)", s)
	default:
		return fmt.Errorf("%q must use https", s)
	}
}

// k8sIsDNSLabel reports whether s is an RFC 1123 label, as namespaces are.
func k8sIsDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// k8sIsDNSSubdomain reports whether s is an RFC 1123 subdomain, as
// service-account names are.
func k8sIsDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !k8sIsDNSLabel(label) {
			return false
		}
	}
	return true
}

// k8sQuote quotes a token-supplied string for an error message, cut short so
// that errors never carry large parts of a token.
func k8sQuote(s string) string {
	if len(s) > k8sMaxQuoted {
		return fmt.Sprintf("%q...", s[:k8sMaxQuoted])
	}
	return fmt.Sprintf("%q", s)
}

func k8sQuoteList(ss []string) string {
	const maxItems = 4
	q := make([]string, 0, maxItems+1)
	for i, s := range ss {
		if i == maxItems {
			q = append(q, fmt.Sprintf("and %d more", len(ss)-maxItems))
			break
		}
		q = append(q, k8sQuote(s))
	}
	return "[" + strings.Join(q, " ") + "]"
}

func k8sAlgorithmList() string {
	s := make([]string, len(kubernetesAlgorithms))
	for i, a := range kubernetesAlgorithms {
		s[i] = string(a)
	}
	return strings.Join(s, ", ")
}

func k8sStamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
