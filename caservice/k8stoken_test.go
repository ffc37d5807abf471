package caservice

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	yaml "go.yaml.in/yaml/v3"
)

const (
	k8sTestAudience = "meshd-ca"
	k8sTestFileIss  = "https://kubernetes.default.svc.cluster.local"
)

// k8sTestNow is the injected clock's start; the httptest certificate is
// valid then.
var k8sTestNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type k8sTestKeySet struct {
	rsa1, rsa2, rogue *rsa.PrivateKey
	ec256             *ecdsa.PrivateKey
	ec384             *ecdsa.PrivateKey
}

var k8sTestKeys = sync.OnceValues(func() (k8sTestKeySet, error) {
	var ks k8sTestKeySet
	var err error
	for _, k := range []**rsa.PrivateKey{&ks.rsa1, &ks.rsa2, &ks.rogue} {
		if *k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return ks, err
		}
	}
	if ks.ec256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		return ks, err
	}
	ks.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	return ks, err
})

func k8sKeys(tb testing.TB) k8sTestKeySet {
	tb.Helper()
	ks, err := k8sTestKeys()
	if err != nil {
		tb.Fatalf("generate keys: %v", err)
	}
	return ks
}

// k8sPublicJWK is how the API server publishes a key.
func k8sPublicJWK(kid string, alg jose.SignatureAlgorithm, pub any) jose.JSONWebKey {
	return jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(alg), Use: "sig"}
}

// k8sDefaultJWKS is the JWKS of the table tests: rsa-1, ec-1 and ec384-1.
func k8sDefaultJWKS(tb testing.TB) []jose.JSONWebKey {
	ks := k8sKeys(tb)
	return []jose.JSONWebKey{
		k8sPublicJWK("rsa-1", jose.RS256, &ks.rsa1.PublicKey),
		k8sPublicJWK("ec-1", jose.ES256, &ks.ec256.PublicKey),
		k8sPublicJWK("ec384-1", jose.ES384, &ks.ec384.PublicKey),
	}
}

func k8sJWKSJSON(tb testing.TB, keys ...jose.JSONWebKey) []byte {
	tb.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		tb.Fatalf("marshal JWKS: %v", err)
	}
	return b
}

// k8sClaims are the claims of a pod-bound projected token for
// payments/api, valid from a minute ago for ten minutes.
func k8sClaims(issuer string, now time.Time) map[string]any {
	return map[string]any{
		"iss": issuer,
		"aud": []string{k8sTestAudience},
		"sub": "system:serviceaccount:payments:api",
		"exp": now.Add(10 * time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"iat": now.Add(-time.Minute).Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      "payments",
			"serviceaccount": map[string]any{"name": "api", "uid": "sa-uid-1"},
			"pod":            map[string]any{"name": "api-7d9f", "uid": "pod-uid-1"},
		},
	}
}

// k8sSign signs claims with key under alg; kid "" leaves the header
// without one.
func k8sSign(tb testing.TB, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	tb.Helper()
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	signer, err := jose.NewSigner(sk, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatalf("new signer: %v", err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return tok
}

func k8sB64(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// k8sClock is an injected clock the tests move by hand.
type k8sClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *k8sClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *k8sClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// k8sEnv is a verifier plus the JWKS it reads, on disk or behind a TLS
// server.
type k8sEnv struct {
	issuer string
	clock  *k8sClock
	v      *KubernetesVerifier

	// file mode
	path  string
	mtime time.Time

	// server mode
	srv           *httptest.Server
	jwks          atomic.Pointer[[]byte]
	status        atomic.Int32                  // when non-zero, /keys answers with it
	gate          atomic.Pointer[chan struct{}] // when set, /keys waits for it to close
	delay         atomic.Int64                  // nanoseconds /keys sleeps before answering
	jwksHits      atomic.Int64
	discoveryHits atomic.Int64
	caFile        string
}

type k8sMode string

const (
	k8sModeFile      k8sMode = "file"
	k8sModeURL       k8sMode = "url"
	k8sModeDiscovery k8sMode = "discovery"
)

var k8sModes = []k8sMode{k8sModeFile, k8sModeURL, k8sModeDiscovery}

func newK8sEnv(t *testing.T, mode k8sMode, keys ...jose.JSONWebKey) *k8sEnv {
	t.Helper()
	e := &k8sEnv{clock: &k8sClock{t: k8sTestNow}}
	cfg := KubernetesConfig{Audience: k8sTestAudience}
	if mode == k8sModeFile {
		e.issuer = k8sTestFileIss
		e.path = filepath.Join(t.TempDir(), "jwks.json")
		e.mtime = time.Now().Add(-time.Hour)
		e.setKeys(t, keys...)
		cfg.JWKSFile = e.path
	} else {
		e.startServer(t)
		e.setKeys(t, keys...)
		e.issuer = e.srv.URL
		cfg.CAFile = e.caFile
		if mode == k8sModeURL {
			cfg.JWKSURL = e.srv.URL + "/keys"
		} else {
			cfg.OIDCDiscovery = true
		}
	}
	cfg.Issuer = e.issuer
	v, err := NewKubernetesVerifier(cfg, KubernetesOptions{Now: e.clock.Now, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("NewKubernetesVerifier: %v", err)
	}
	e.v = v
	return e
}

func (e *k8sEnv) startServer(t *testing.T) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		e.discoveryHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":   e.srv.URL,
			"jwks_uri": e.srv.URL + "/keys",
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		e.jwksHits.Add(1)
		if g := e.gate.Load(); g != nil {
			select {
			case <-*g:
			case <-r.Context().Done():
				return
			}
		}
		time.Sleep(time.Duration(e.delay.Load()))
		if s := e.status.Load(); s != 0 {
			http.Error(w, "nope", int(s))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*e.jwks.Load())
	})
	e.srv = httptest.NewTLSServer(mux)
	t.Cleanup(e.srv.Close)
	e.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})
	if err := os.WriteFile(e.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
}

// setKeys publishes a new JWKS. In file mode it rewrites the file and
// moves its mtime, as a sync from the cluster would.
func (e *k8sEnv) setKeys(t *testing.T, keys ...jose.JSONWebKey) {
	t.Helper()
	e.setJWKS(t, k8sJWKSJSON(t, keys...))
}

func (e *k8sEnv) setJWKS(t *testing.T, doc []byte) {
	t.Helper()
	if e.path == "" {
		e.jwks.Store(&doc)
		return
	}
	if err := os.WriteFile(e.path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	e.mtime = e.mtime.Add(time.Second)
	if err := os.Chtimes(e.path, e.mtime, e.mtime); err != nil {
		t.Fatal(err)
	}
}

func (e *k8sEnv) claims() map[string]any { return k8sClaims(e.issuer, e.clock.Now()) }

// k8sCheckErr fails unless err matches: wantErr "" means success,
// otherwise err must contain it and wrap ErrInvalidToken iff wantInvalid.
func k8sCheckErr(t *testing.T, err error, wantErr string, wantInvalid bool, token string) {
	t.Helper()
	if wantErr == "" {
		if err != nil {
			t.Fatalf("Verify: unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Verify succeeded, want error containing %q", wantErr)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("Verify error %q does not contain %q", err, wantErr)
	}
	if got := errors.Is(err, ErrInvalidToken); got != wantInvalid {
		t.Errorf("errors.Is(%q, ErrInvalidToken) = %v, want %v", err, got, wantInvalid)
	}
	if len(token) > 32 && strings.Contains(err.Error(), token) {
		t.Errorf("error echoes the token: %q", err)
	}
	if len(err.Error()) > 1024 {
		t.Errorf("error is %d bytes long: %.200q...", len(err.Error()), err)
	}
}

func TestKubernetesVerify(t *testing.T) {
	ks := k8sKeys(t)
	type tc struct {
		name        string
		token       func(t *testing.T, e *k8sEnv) string
		wantErr     string
		wantInvalid bool
		want        KubernetesIdentity // checked when wantErr is ""
	}
	// signed builds a token from the default claims changed by edit.
	signed := func(alg jose.SignatureAlgorithm, key any, kid string, edit func(c map[string]any)) func(*testing.T, *k8sEnv) string {
		return func(t *testing.T, e *k8sEnv) string {
			c := e.claims()
			if edit != nil {
				edit(c)
			}
			return k8sSign(t, alg, key, kid, c)
		}
	}
	rsa1 := func(edit func(c map[string]any)) func(*testing.T, *k8sEnv) string {
		return signed(jose.RS256, ks.rsa1, "rsa-1", edit)
	}
	k8s := func(c map[string]any) map[string]any { return c["kubernetes.io"].(map[string]any) }
	exp := k8sTestNow.Add(10 * time.Minute)
	podIdentity := KubernetesIdentity{Namespace: "payments", ServiceAccount: "api", PodName: "api-7d9f", PodUID: "pod-uid-1", Expiry: exp}
	noPod := KubernetesIdentity{Namespace: "payments", ServiceAccount: "api", Expiry: exp}
	const invalid = true

	cases := []tc{
		{name: "valid RS256", token: rsa1(nil), want: podIdentity},
		{name: "valid ES256", token: signed(jose.ES256, ks.ec256, "ec-1", nil), want: podIdentity},
		{name: "valid ES384", token: signed(jose.ES384, ks.ec384, "ec384-1", nil), want: podIdentity},
		{name: "valid without kid RSA", token: signed(jose.RS256, ks.rsa1, "", nil), want: podIdentity},
		{name: "valid without kid ECDSA", token: signed(jose.ES256, ks.ec256, "", nil), want: podIdentity},
		{name: "valid not bound to a pod", token: rsa1(func(c map[string]any) { delete(k8s(c), "pod") }), want: noPod},
		{name: "valid without kubernetes.io claim", token: rsa1(func(c map[string]any) { delete(c, "kubernetes.io") }), want: noPod},
		{name: "valid without nbf and iat", token: rsa1(func(c map[string]any) { delete(c, "nbf"); delete(c, "iat") }), want: podIdentity},
		{name: "audience list containing ours", token: rsa1(func(c map[string]any) { c["aud"] = []string{"https://kubernetes.default.svc", k8sTestAudience} }), want: podIdentity},
		{name: "audience as a single string", token: rsa1(func(c map[string]any) { c["aud"] = k8sTestAudience }), want: podIdentity},
		{
			name:  "expired within leeway",
			token: rsa1(func(c map[string]any) { c["exp"] = k8sTestNow.Add(-30 * time.Second).Unix() }),
			want:  KubernetesIdentity{Namespace: "payments", ServiceAccount: "api", PodName: "api-7d9f", PodUID: "pod-uid-1", Expiry: k8sTestNow.Add(-30 * time.Second)},
		},
		{name: "nbf within leeway", token: rsa1(func(c map[string]any) { c["nbf"] = k8sTestNow.Add(30 * time.Second).Unix() }), want: podIdentity},
		{name: "iat within leeway", token: rsa1(func(c map[string]any) { c["iat"] = k8sTestNow.Add(30 * time.Second).Unix() }), want: podIdentity},

		{name: "expired", token: rsa1(func(c map[string]any) { c["exp"] = k8sTestNow.Add(-61 * time.Second).Unix() }), wantErr: "expired at", wantInvalid: invalid},
		{name: "not yet valid", token: rsa1(func(c map[string]any) { c["nbf"] = k8sTestNow.Add(5 * time.Minute).Unix() }), wantErr: "not valid before", wantInvalid: invalid},
		{name: "issued in the future", token: rsa1(func(c map[string]any) { c["iat"] = k8sTestNow.Add(5 * time.Minute).Unix() }), wantErr: "issued in the future", wantInvalid: invalid},
		{name: "no exp", token: rsa1(func(c map[string]any) { delete(c, "exp") }), wantErr: "no exp claim", wantInvalid: invalid},
		{name: "wrong audience", token: rsa1(func(c map[string]any) { c["aud"] = []string{"vault", "https://kubernetes.default.svc"} }), wantErr: `does not include "meshd-ca"`, wantInvalid: invalid},
		{name: "no audience", token: rsa1(func(c map[string]any) { delete(c, "aud") }), wantErr: "audience", wantInvalid: invalid},
		{name: "wrong issuer", token: rsa1(func(c map[string]any) { c["iss"] = "https://evil.example" }), wantErr: `issuer "https://evil.example"`, wantInvalid: invalid},
		{name: "no issuer", token: rsa1(func(c map[string]any) { delete(c, "iss") }), wantErr: "issuer", wantInvalid: invalid},
		{name: "unknown kid", token: signed(jose.RS256, ks.rogue, "rsa-9", nil), wantErr: `unknown key id "rsa-9"`, wantInvalid: invalid},
		{name: "signed by a key not in the JWKS under a known kid", token: signed(jose.RS256, ks.rogue, "rsa-1", nil), wantErr: `does not verify with key "rsa-1"`, wantInvalid: invalid},
		{name: "signed by a key not in the JWKS without kid", token: signed(jose.RS256, ks.rogue, "", nil), wantErr: "does not verify with any of the 1 candidate keys", wantInvalid: invalid},
		{name: "ECDSA token under an RSA kid", token: signed(jose.ES256, ks.ec256, "rsa-1", nil), wantErr: `key "rsa-1" does not accept algorithm ES256`, wantInvalid: invalid},
		{name: "RS384 under a key published for RS256", token: signed(jose.RS384, ks.rsa1, "rsa-1", nil), wantErr: "does not accept algorithm RS384", wantInvalid: invalid},
		{
			name: "alg none",
			token: func(t *testing.T, e *k8sEnv) string {
				return k8sB64(map[string]string{"alg": "none", "kid": "rsa-1"}) + "." + k8sB64(e.claims()) + "."
			},
			wantErr: `signature algorithm "none" is not accepted`, wantInvalid: invalid,
		},
		{
			name: "HS256 with the public key as secret",
			token: func(t *testing.T, e *k8sEnv) string {
				der, err := x509.MarshalPKIXPublicKey(&ks.rsa1.PublicKey)
				if err != nil {
					t.Fatal(err)
				}
				secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
				return k8sSign(t, jose.HS256, secret, "rsa-1", e.claims())
			},
			wantErr: `signature algorithm "HS256" is not accepted`, wantInvalid: invalid,
		},
		{
			name: "payload swapped after signing",
			token: func(t *testing.T, e *k8sEnv) string {
				parts := strings.Split(k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", e.claims()), ".")
				c := e.claims()
				c["sub"] = "system:serviceaccount:kube-system:admin"
				k8s(c)["namespace"] = "kube-system"
				k8s(c)["serviceaccount"] = map[string]any{"name": "admin", "uid": "x"}
				parts[1] = k8sB64(c)
				return strings.Join(parts, ".")
			},
			wantErr: "signature does not verify", wantInvalid: invalid,
		},
		{name: "sub namespace disagrees with claim", token: rsa1(func(c map[string]any) { k8s(c)["namespace"] = "kube-system" }), wantErr: "disagrees with subject namespace", wantInvalid: invalid},
		{name: "sub service account disagrees with claim", token: rsa1(func(c map[string]any) { k8s(c)["serviceaccount"] = map[string]any{"name": "admin"} }), wantErr: "disagrees with subject service account", wantInvalid: invalid},
		{name: "claim without serviceaccount", token: rsa1(func(c map[string]any) { delete(k8s(c), "serviceaccount") }), wantErr: "disagrees with subject service account", wantInvalid: invalid},
		{name: "pod claim without uid", token: rsa1(func(c map[string]any) { k8s(c)["pod"] = map[string]any{"name": "api-7d9f"} }), wantErr: "pod claim lacks name or uid", wantInvalid: invalid},
		{name: "kubernetes.io claim of the wrong type", token: rsa1(func(c map[string]any) { c["kubernetes.io"] = "payments" }), wantErr: ErrInvalidToken.Error(), wantInvalid: invalid},
		{name: "aud of the wrong type", token: rsa1(func(c map[string]any) { c["aud"] = 42 }), wantErr: ErrInvalidToken.Error(), wantInvalid: invalid},
		{name: "exp of the wrong type", token: rsa1(func(c map[string]any) { c["exp"] = "tomorrow" }), wantErr: ErrInvalidToken.Error(), wantInvalid: invalid},
		{name: "node subject", token: rsa1(func(c map[string]any) { c["sub"] = "system:node:worker-1"; delete(c, "kubernetes.io") }), wantErr: `subject "system:node:worker-1" is not`, wantInvalid: invalid},
		{name: "user subject", token: rsa1(func(c map[string]any) { c["sub"] = "alice"; delete(c, "kubernetes.io") }), wantErr: "is not system:serviceaccount", wantInvalid: invalid},
		{name: "subject without the prefix", token: rsa1(func(c map[string]any) { c["sub"] = "payments:api" }), wantErr: "is not system:serviceaccount", wantInvalid: invalid},
		{name: "no subject", token: rsa1(func(c map[string]any) { delete(c, "sub") }), wantErr: "is not system:serviceaccount", wantInvalid: invalid},
		{name: "subject with extra segment", token: rsa1(func(c map[string]any) { c["sub"] = "system:serviceaccount:payments:api:x" }), wantErr: "is not system:serviceaccount", wantInvalid: invalid},
		{name: "subject with empty name", token: rsa1(func(c map[string]any) { c["sub"] = "system:serviceaccount:payments:" }), wantErr: "is not system:serviceaccount", wantInvalid: invalid},
		{name: "subject with invalid namespace", token: rsa1(func(c map[string]any) { c["sub"] = "system:serviceaccount:Pay/ments:api" }), wantErr: "is not system:serviceaccount", wantInvalid: invalid},
		{
			name: "oversized token",
			token: rsa1(func(c map[string]any) {
				c["padding"] = strings.Repeat("x", 16<<10)
			}),
			wantErr: "over the 16384-byte limit", wantInvalid: invalid,
		},
	}
	for _, s := range []struct{ name, token, wantErr string }{
		{"empty", "", "malformed"},
		{"one part", "not-a-jwt", "three parts"},
		{"two parts", "a.b", "three parts"},
		{"four parts", "a.b.c.d", "three parts"},
		{"bad base64", "!!!.b.c", "malformed"},
		{"header not JSON", k8sB64("x")[:4] + ".e30.c2ln", "malformed"},
		{"header JSON array", base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + ".e30.c2ln", "malformed"},
		{"empty header", "e30.e30.c2ln", `signature algorithm "" is not accepted`},
		{"JWE", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", "three parts"},
		{"spaces", "   ", "three parts"},
	} {
		cases = append(cases, tc{name: "malformed " + s.name, token: func(*testing.T, *k8sEnv) string { return s.token }, wantErr: s.wantErr, wantInvalid: invalid})
	}

	for _, mode := range k8sModes {
		t.Run(string(mode), func(t *testing.T) {
			e := newK8sEnv(t, mode, k8sDefaultJWKS(t)...)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					tok := c.token(t, e)
					id, err := e.v.Verify(t.Context(), tok)
					k8sCheckErr(t, err, c.wantErr, c.wantInvalid, tok)
					if err == nil && !(id.Namespace == c.want.Namespace && id.ServiceAccount == c.want.ServiceAccount &&
						id.PodName == c.want.PodName && id.PodUID == c.want.PodUID && id.Expiry.Equal(c.want.Expiry)) {
						t.Errorf("identity = %+v, want %+v", id, c.want)
					}
				})
			}
			if mode != k8sModeFile {
				// Everything above came from one fetch: no kid in the table
				// may be refetched within 30s, and only one was unknown.
				if n := e.jwksHits.Load(); n != 1 {
					t.Errorf("JWKS fetched %d times, want 1", n)
				}
			}
		})
	}
}

func TestKubernetesVerifyLeeway(t *testing.T) {
	ks := k8sKeys(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, k8sJWKSJSON(t, k8sDefaultJWKS(t)...), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		leeway  time.Duration
		skew    time.Duration // exp is now-skew
		wantErr string
	}{
		{leeway: 0, skew: 59 * time.Second},
		{leeway: 0, skew: 61 * time.Second, wantErr: "leeway 1m0s"},
		{leeway: 5 * time.Second, skew: 4 * time.Second},
		{leeway: 5 * time.Second, skew: 6 * time.Second, wantErr: "leeway 5s"},
		{leeway: 5 * time.Minute, skew: 4 * time.Minute},
	} {
		t.Run(fmt.Sprintf("%s/%s", tt.leeway, tt.skew), func(t *testing.T) {
			v, err := NewKubernetesVerifier(KubernetesConfig{
				Issuer: k8sTestFileIss, Audience: k8sTestAudience, JWKSFile: path, Leeway: tt.leeway,
			}, KubernetesOptions{Now: func() time.Time { return k8sTestNow }, Log: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			c := k8sClaims(k8sTestFileIss, k8sTestNow)
			c["exp"] = k8sTestNow.Add(-tt.skew).Unix()
			tok := k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", c)
			_, err = v.Verify(t.Context(), tok)
			k8sCheckErr(t, err, tt.wantErr, tt.wantErr != "", tok)
		})
	}
}

func TestKubernetesKeyRotationFile(t *testing.T) {
	ks := k8sKeys(t)
	rsa1 := k8sPublicJWK("rsa-1", jose.RS256, &ks.rsa1.PublicKey)
	rsa2 := k8sPublicJWK("rsa-2", jose.RS256, &ks.rsa2.PublicKey)
	e := newK8sEnv(t, k8sModeFile, rsa1)
	old := k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", e.claims())
	next := k8sSign(t, jose.RS256, ks.rsa2, "rsa-2", e.claims())

	verify := func(tok, wantErr string) {
		t.Helper()
		_, err := e.v.Verify(t.Context(), tok)
		k8sCheckErr(t, err, wantErr, wantErr != "", tok)
	}
	verify(old, "")
	verify(next, `unknown key id "rsa-2"`)

	e.setKeys(t, rsa1, rsa2) // the new key is published first
	verify(next, "")
	verify(old, "")

	e.setKeys(t, rsa2) // then the old one is retired
	verify(next, "")
	verify(old, `unknown key id "rsa-1"`)
}

func TestKubernetesKeyRotationURL(t *testing.T) {
	ks := k8sKeys(t)
	rsa1 := k8sPublicJWK("rsa-1", jose.RS256, &ks.rsa1.PublicKey)
	rsa2 := k8sPublicJWK("rsa-2", jose.RS256, &ks.rsa2.PublicKey)
	for _, mode := range []k8sMode{k8sModeURL, k8sModeDiscovery} {
		t.Run(string(mode), func(t *testing.T) {
			e := newK8sEnv(t, mode, rsa1)
			verify := func(wantErr string, wantInvalid bool, key *rsa.PrivateKey, kid string) {
				t.Helper()
				tok := k8sSign(t, jose.RS256, key, kid, e.claims())
				_, err := e.v.Verify(t.Context(), tok)
				k8sCheckErr(t, err, wantErr, wantInvalid, tok)
			}
			verify("", false, ks.rsa1, "rsa-1")
			e.setKeys(t, rsa1, rsa2)

			// Within 30s of the last fetch an unknown kid is not refetched.
			e.clock.Advance(29 * time.Second)
			verify(`unknown key id "rsa-2"`, true, ks.rsa2, "rsa-2")
			if n := e.jwksHits.Load(); n != 1 {
				t.Fatalf("JWKS fetched %d times, want 1", n)
			}
			// After that, it is, once.
			e.clock.Advance(2 * time.Second)
			verify("", false, ks.rsa2, "rsa-2")
			verify("", false, ks.rsa2, "rsa-2")
			verify("", false, ks.rsa1, "rsa-1")
			if n := e.jwksHits.Load(); n != 2 {
				t.Fatalf("JWKS fetched %d times, want 2", n)
			}
			if mode == k8sModeDiscovery {
				// A kid-triggered refetch reuses the discovered jwks_uri.
				if n := e.discoveryHits.Load(); n != 1 {
					t.Errorf("discovery fetched %d times, want 1", n)
				}
			}

			// Retiring rsa-1 takes effect with the hourly refresh.
			e.setKeys(t, rsa2)
			e.clock.Advance(30 * time.Minute)
			verify("", false, ks.rsa1, "rsa-1")
			e.clock.Advance(31 * time.Minute)
			verify(`unknown key id "rsa-1"`, true, ks.rsa1, "rsa-1")
			if n := e.jwksHits.Load(); n != 3 {
				t.Fatalf("JWKS fetched %d times, want 3", n)
			}
			if mode == k8sModeDiscovery {
				if n := e.discoveryHits.Load(); n != 2 {
					t.Errorf("discovery fetched %d times, want 2 (rediscovered on the hourly refresh)", n)
				}
			}
		})
	}
}

func TestKubernetesStaleKeysKeptWhenRefreshFails(t *testing.T) {
	ks := k8sKeys(t)
	e := newK8sEnv(t, k8sModeURL, k8sDefaultJWKS(t)...)
	verify := func(wantErr string, wantInvalid bool, kid string) {
		t.Helper()
		tok := k8sSign(t, jose.RS256, ks.rsa1, kid, e.claims())
		_, err := e.v.Verify(t.Context(), tok)
		k8sCheckErr(t, err, wantErr, wantInvalid, tok)
	}
	verify("", false, "rsa-1")
	e.status.Store(http.StatusServiceUnavailable)
	e.clock.Advance(time.Hour + time.Second)
	verify("", false, "rsa-1") // refresh fails; the cached keys still serve
	verify("", false, "rsa-1") // and the failure is not retried at once
	if n := e.jwksHits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
	// An unknown kid while the JWKS cannot be refreshed is our problem, not
	// the token's.
	e.clock.Advance(31 * time.Second)
	verify("503 Service Unavailable", false, "rsa-7")
	verify("503 Service Unavailable", false, "rsa-7") // rate limited, same answer
	if n := e.jwksHits.Load(); n != 3 {
		t.Fatalf("JWKS fetched %d times, want 3", n)
	}
	e.status.Store(0)
	e.clock.Advance(31 * time.Second)
	verify(`unknown key id "rsa-7"`, true, "rsa-7")
	verify("", false, "rsa-1")
}

func TestKubernetesRefetchRateLimit(t *testing.T) {
	ks := k8sKeys(t)
	e := newK8sEnv(t, k8sModeURL, k8sDefaultJWKS(t)...)
	e.delay.Store(int64(20 * time.Millisecond))
	c := e.claims()
	var wg sync.WaitGroup
	for i := range 50 {
		tok := k8sSign(t, jose.RS256, ks.rogue, fmt.Sprintf("ghost-%d", i), c)
		wg.Go(func() {
			_, err := e.v.Verify(t.Context(), tok)
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify(ghost-%d) = %v, want ErrInvalidToken", i, err)
			}
		})
	}
	wg.Wait()
	for i := range 50 {
		tok := k8sSign(t, jose.RS256, ks.rogue, fmt.Sprintf("ghost-%d", i), c)
		e.clock.Advance(500 * time.Millisecond) // 25s in all: still under 30s
		if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("Verify(ghost-%d) = %v, want ErrInvalidToken", i, err)
		}
	}
	if n := e.jwksHits.Load(); n > 2 {
		t.Fatalf("JWKS fetched %d times under 100 unknown-kid tokens, want at most 2", n)
	}
	before := e.jwksHits.Load()
	e.clock.Advance(10 * time.Second)
	tok := k8sSign(t, jose.RS256, ks.rogue, "ghost-late", c)
	if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Verify(ghost-late) = %v, want ErrInvalidToken", err)
	}
	if n := e.jwksHits.Load(); n != before+1 {
		t.Errorf("JWKS fetched %d times after the interval, want %d", n, before+1)
	}
}

func TestKubernetesInitialFetchFailure(t *testing.T) {
	ks := k8sKeys(t)
	e := newK8sEnv(t, k8sModeURL, k8sDefaultJWKS(t)...)
	e.status.Store(http.StatusInternalServerError)
	tok := k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", e.claims())
	_, err := e.v.Verify(t.Context(), tok)
	k8sCheckErr(t, err, "fetch "+e.srv.URL+"/keys: unexpected HTTP status 500 Internal Server Error", false, tok)
	// Failures are not retried at every call...
	_, err = e.v.Verify(t.Context(), tok)
	k8sCheckErr(t, err, "500 Internal Server Error", false, tok)
	if n := e.jwksHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
	// ...but soon.
	e.status.Store(0)
	e.clock.Advance(6 * time.Second)
	if _, err := e.v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify after recovery: %v", err)
	}
}

func TestKubernetesKeySourceErrors(t *testing.T) {
	ks := k8sKeys(t)
	discard := slog.New(slog.DiscardHandler)
	now := func() time.Time { return k8sTestNow }
	writeFile := func(t *testing.T, content string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	symmetric, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: "hmac", Algorithm: "HS256"}}})
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		setup   func(t *testing.T) (KubernetesConfig, KubernetesOptions)
		wantErr string
	}{
		{
			name: "file missing",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				return KubernetesConfig{JWKSFile: filepath.Join(t.TempDir(), "absent.json")}, KubernetesOptions{}
			},
			wantErr: "absent.json: no such file",
		},
		{
			name: "file not JSON",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				return KubernetesConfig{JWKSFile: writeFile(t, "<html>")}, KubernetesOptions{}
			},
			wantErr: "parse JWKS",
		},
		{
			name: "file without keys",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				return KubernetesConfig{JWKSFile: writeFile(t, `{"issuer":"x"}`)}, KubernetesOptions{}
			},
			wantErr: `no "keys" array`,
		},
		{
			name: "file with only a symmetric key",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				return KubernetesConfig{JWKSFile: writeFile(t, string(symmetric))}, KubernetesOptions{}
			},
			wantErr: "no usable RSA or ECDSA signing key among 1 keys",
		},
		{
			name: "file with only a 1024-bit RSA key",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				doc := k8sJWKSJSON(t, k8sPublicJWK("rsa-1", jose.RS256, &small.PublicKey))
				return KubernetesConfig{JWKSFile: writeFile(t, string(doc))}, KubernetesOptions{}
			},
			wantErr: "no usable RSA or ECDSA signing key",
		},
		{
			name: "file too large",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				return KubernetesConfig{JWKSFile: writeFile(t, `{"keys":[],"x":"`+strings.Repeat("x", 1<<20)+`"}`)}, KubernetesOptions{}
			},
			wantErr: "larger than 1048576 bytes",
		},
		{
			name: "server down",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				srv := httptest.NewTLSServer(http.NotFoundHandler())
				u := srv.URL
				srv.Close()
				return KubernetesConfig{JWKSURL: u + "/keys"}, KubernetesOptions{HTTPClient: srv.Client()}
			},
			wantErr: "connection refused",
		},
		{
			name: "server certificate not trusted",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				srv := httptest.NewTLSServer(http.NotFoundHandler())
				t.Cleanup(srv.Close)
				return KubernetesConfig{JWKSURL: srv.URL + "/keys"}, KubernetesOptions{}
			},
			wantErr: "certificate",
		},
		{
			name: "not found",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				srv := httptest.NewTLSServer(http.NotFoundHandler())
				t.Cleanup(srv.Close)
				return KubernetesConfig{JWKSURL: srv.URL + "/keys"}, KubernetesOptions{HTTPClient: srv.Client()}
			},
			wantErr: "/keys: unexpected HTTP status 404 Not Found",
		},
		{
			name: "response over 1 MiB",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					_, _ = w.Write([]byte(`{"keys":[],"x":"` + strings.Repeat("x", 1<<20) + `"}`))
				}))
				t.Cleanup(srv.Close)
				return KubernetesConfig{JWKSURL: srv.URL + "/keys"}, KubernetesOptions{HTTPClient: srv.Client()}
			},
			wantErr: "response larger than 1048576 bytes",
		},
		{
			name: "discovery names another issuer",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					_, _ = w.Write([]byte(`{"issuer":"https://other.example","jwks_uri":"https://other.example/keys"}`))
				}))
				t.Cleanup(srv.Close)
				return KubernetesConfig{Issuer: srv.URL, OIDCDiscovery: true}, KubernetesOptions{HTTPClient: srv.Client()}
			},
			wantErr: `names issuer "https://other.example"`,
		},
		{
			name: "discovery jwks_uri over plain http",
			setup: func(t *testing.T) (KubernetesConfig, KubernetesOptions) {
				var srv *httptest.Server
				srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					_, _ = fmt.Fprintf(w, `{"issuer":%q,"jwks_uri":"http://keys.example/keys"}`, srv.URL)
				}))
				t.Cleanup(srv.Close)
				return KubernetesConfig{Issuer: srv.URL, OIDCDiscovery: true}, KubernetesOptions{HTTPClient: srv.Client()}
			},
			wantErr: "must use https",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, opts := tt.setup(t)
			if cfg.Issuer == "" {
				cfg.Issuer = k8sTestFileIss
			}
			cfg.Audience = k8sTestAudience
			opts.Now, opts.Log = now, discard
			v, err := NewKubernetesVerifier(cfg, opts)
			if err != nil {
				t.Fatalf("NewKubernetesVerifier: %v", err)
			}
			tok := k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", k8sClaims(cfg.Issuer, k8sTestNow))
			_, err = v.Verify(t.Context(), tok)
			k8sCheckErr(t, err, tt.wantErr, false, tok)
		})
	}
}

// A JWKS may hold keys this verifier cannot use; they are skipped, not fatal.
func TestKubernetesJWKSSkipsUnusableKeys(t *testing.T) {
	ks := k8sKeys(t)
	usable, err := json.Marshal(k8sPublicJWK("rsa-1", jose.RS256, &ks.rsa1.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	doc := `{"keys":[
		{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"},
		{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"hmac"},
		{"kty":"XYZ","kid":"future"},
		{"kty":"RSA","kid":"enc","use":"enc","n":"sXch","e":"AQAB"},
		` + string(usable) + `]}`
	e := newK8sEnv(t, k8sModeFile)
	e.setJWKS(t, []byte(doc))
	tok := k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", e.claims())
	if _, err := e.v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// A key published without kid or alg serves tokens with any kid.
	e.setKeys(t, jose.JSONWebKey{Key: &ks.ec256.PublicKey})
	tok = k8sSign(t, jose.ES256, ks.ec256, "whatever", e.claims())
	if _, err := e.v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("Verify against an anonymous key: %v", err)
	}
}

// A caller giving up does not cancel the fetch others wait for.
func TestKubernetesFetchSurvivesCallerCancel(t *testing.T) {
	ks := k8sKeys(t)
	e := newK8sEnv(t, k8sModeURL, k8sDefaultJWKS(t)...)
	gate := make(chan struct{})
	e.gate.Store(&gate)
	openGate := sync.OnceFunc(func() { close(gate) })
	t.Cleanup(openGate) // do not leave the handler hanging if we fail early
	tok := k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", e.claims())

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := e.v.Verify(ctx, tok)
		errc <- err
	}()
	for e.jwksHits.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify with a cancelled context = %v, want context.Canceled and not ErrInvalidToken", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.v.Verify(t.Context(), tok)
		done <- err
	}()
	openGate()
	if err := <-done; err != nil {
		t.Fatalf("Verify after the fetch completed: %v", err)
	}
	if n := e.jwksHits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1", n)
	}
}

func TestKubernetesConcurrentVerify(t *testing.T) {
	ks := k8sKeys(t)
	for _, mode := range k8sModes {
		t.Run(string(mode), func(t *testing.T) {
			e := newK8sEnv(t, mode, k8sDefaultJWKS(t)...)
			e.delay.Store(int64(50 * time.Millisecond)) // widen the race window
			good := []string{
				k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", e.claims()),
				k8sSign(t, jose.ES256, ks.ec256, "ec-1", e.claims()),
				k8sSign(t, jose.ES256, ks.ec256, "", e.claims()),
			}
			expired := e.claims()
			expired["exp"] = k8sTestNow.Add(-time.Hour).Unix()
			bad := []string{
				k8sSign(t, jose.RS256, ks.rsa1, "rsa-1", expired),
				k8sSign(t, jose.RS256, ks.rogue, "rsa-1", e.claims()),
				k8sSign(t, jose.RS256, ks.rogue, "ghost", e.claims()),
				"garbage",
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 1000 {
				wg.Go(func() {
					<-start
					if i%4 == 0 {
						tok := bad[i/4%len(bad)]
						if _, err := e.v.Verify(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
							t.Errorf("Verify(bad %d) = %v, want ErrInvalidToken", i/4%len(bad), err)
						}
						return
					}
					id, err := e.v.Verify(t.Context(), good[i%len(good)])
					if err != nil {
						t.Errorf("Verify(good %d): %v", i%len(good), err)
						return
					}
					if id.Namespace != "payments" || id.ServiceAccount != "api" || id.PodName != "api-7d9f" {
						t.Errorf("identity = %+v", id)
					}
				})
			}
			close(start)
			wg.Wait()
			if mode != k8sModeFile {
				if n := e.jwksHits.Load(); n != 1 {
					t.Errorf("JWKS fetched %d times by 1000 concurrent calls, want 1", n)
				}
			}
		})
	}
}

func TestKubernetesConfigValidate(t *testing.T) {
	base := KubernetesConfig{Issuer: "https://kubernetes.default.svc", Audience: "meshd-ca", JWKSFile: "/etc/meshd/jwks.json"}
	tests := []struct {
		name string
		edit func(c *KubernetesConfig)
		want []string // substrings of the error; none means valid
	}{
		{name: "file", edit: func(*KubernetesConfig) {}},
		{name: "url", edit: func(c *KubernetesConfig) {
			c.JWKSFile, c.JWKSURL, c.CAFile = "", "https://10.0.0.1:6443/openid/v1/jwks", "/ca.pem"
		}},
		{name: "url via kubectl proxy", edit: func(c *KubernetesConfig) { c.JWKSFile, c.JWKSURL = "", "http://127.0.0.1:8001/openid/v1/jwks" }},
		{name: "discovery", edit: func(c *KubernetesConfig) { c.JWKSFile, c.OIDCDiscovery = "", true }},
		{name: "legacy issuer with a file", edit: func(c *KubernetesConfig) { c.Issuer = "kubernetes/serviceaccount" }},
		{name: "leeway", edit: func(c *KubernetesConfig) { c.Leeway = 5 * time.Second }},
		{name: "no issuer", edit: func(c *KubernetesConfig) { c.Issuer = "" }, want: []string{"kubernetes.issuer: required"}},
		{name: "no audience", edit: func(c *KubernetesConfig) { c.Audience = " " }, want: []string{"kubernetes.audience: required"}},
		{name: "no key source", edit: func(c *KubernetesConfig) { c.JWKSFile = "" }, want: []string{"kubernetes: one of jwksFile, jwksURL or oidcDiscovery is required"}},
		{name: "two key sources", edit: func(c *KubernetesConfig) { c.JWKSURL = "https://x/jwks" }, want: []string{"mutually exclusive, but jwksFile and jwksURL are set"}},
		{name: "three key sources", edit: func(c *KubernetesConfig) { c.JWKSURL, c.OIDCDiscovery = "https://x/jwks", true }, want: []string{"jwksFile and jwksURL and oidcDiscovery are set"}},
		{name: "plain http URL", edit: func(c *KubernetesConfig) { c.JWKSFile, c.JWKSURL = "", "http://10.0.0.1/jwks" }, want: []string{"kubernetes.jwksURL:", "must use https"}},
		{name: "relative URL", edit: func(c *KubernetesConfig) { c.JWKSFile, c.JWKSURL = "", "/openid/v1/jwks" }, want: []string{"kubernetes.jwksURL:", "not an absolute URL"}},
		{name: "discovery with non-URL issuer", edit: func(c *KubernetesConfig) {
			c.JWKSFile, c.OIDCDiscovery, c.Issuer = "", true, "kubernetes/serviceaccount"
		}, want: []string{"kubernetes.issuer:", "oidcDiscovery"}},
		{name: "caFile with a file", edit: func(c *KubernetesConfig) { c.CAFile = "/ca.pem" }, want: []string{"kubernetes.caFile: only used with jwksURL or oidcDiscovery"}},
		{name: "negative leeway", edit: func(c *KubernetesConfig) { c.Leeway = -time.Second }, want: []string{"kubernetes.leeway: must not be negative"}},
		{
			name: "everything wrong at once",
			edit: func(c *KubernetesConfig) { *c = KubernetesConfig{Leeway: -1} },
			want: []string{"kubernetes.issuer: required", "kubernetes.audience: required", "one of jwksFile", "kubernetes.leeway"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded, want errors %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate error %q does not contain %q", err, w)
				}
			}
			if _, nerr := NewKubernetesVerifier(c, KubernetesOptions{Log: slog.New(slog.DiscardHandler)}); nerr == nil {
				t.Error("NewKubernetesVerifier accepted an invalid config")
			}
		})
	}
}

func TestKubernetesConfigYAML(t *testing.T) {
	const doc = `
issuer: https://kubernetes.default.svc.cluster.local
audience: meshd-ca
jwksURL: https://10.0.0.1:6443/openid/v1/jwks
caFile: /etc/meshd/k8s-ca.pem
leeway: 90s
`
	var c KubernetesConfig
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := KubernetesConfig{
		Issuer: "https://kubernetes.default.svc.cluster.local", Audience: "meshd-ca",
		JWKSURL: "https://10.0.0.1:6443/openid/v1/jwks", CAFile: "/etc/meshd/k8s-ca.pem", Leeway: 90 * time.Second,
	}
	if c != want {
		t.Fatalf("decoded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestNewKubernetesVerifierErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := KubernetesConfig{Issuer: "https://k8s", Audience: "meshd-ca", JWKSURL: "https://k8s/openid/v1/jwks"}
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		name    string
		caFile  string
		log     *slog.Logger
		wantErr string
	}{
		{name: "no log", wantErr: "Log is required"},
		{name: "missing caFile", caFile: filepath.Join(dir, "absent.pem"), log: log, wantErr: "kubernetes.caFile:"},
		{name: "caFile without PEM", caFile: notPEM, log: log, wantErr: "no PEM certificate in " + notPEM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.CAFile = tt.caFile
			_, err := NewKubernetesVerifier(c, KubernetesOptions{Log: tt.log})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewKubernetesVerifier = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzKubernetesVerify checks that Verify never panics, that every failure
// (the keys being fine) is the token's fault and short, and that what it
// accepts names a service account.
func FuzzKubernetesVerify(f *testing.F) {
	ks := k8sKeys(f)
	path := filepath.Join(f.TempDir(), "jwks.json")
	if err := os.WriteFile(path, k8sJWKSJSON(f, k8sDefaultJWKS(f)...), 0o600); err != nil {
		f.Fatal(err)
	}
	v, err := NewKubernetesVerifier(
		KubernetesConfig{Issuer: k8sTestFileIss, Audience: k8sTestAudience, JWKSFile: path},
		KubernetesOptions{Now: func() time.Time { return k8sTestNow }, Log: slog.New(slog.DiscardHandler)},
	)
	if err != nil {
		f.Fatal(err)
	}
	c := k8sClaims(k8sTestFileIss, k8sTestNow)
	valid := k8sSign(f, jose.RS256, ks.rsa1, "rsa-1", c)
	f.Add(valid)
	f.Add(k8sSign(f, jose.ES256, ks.ec256, "ec-1", c))
	f.Add(k8sSign(f, jose.RS256, ks.rsa1, "", c))
	f.Add(k8sSign(f, jose.RS256, ks.rogue, "rsa-1", c))
	f.Add(valid[:len(valid)-10])
	f.Add(valid + ".x")
	f.Add(strings.Replace(valid, ".", "..", 1))
	parts := strings.Split(valid, ".")
	f.Add(k8sB64(map[string]string{"alg": "none"}) + "." + parts[1] + ".")
	f.Add(k8sB64(map[string]string{"alg": "HS256", "kid": "rsa-1"}) + "." + parts[1] + "." + parts[2])
	f.Add(k8sB64(map[string]any{"alg": "RS256", "kid": "rsa-1", "crit": []string{"exp"}, "exp": 1}) + "." + parts[1] + "." + parts[2])
	noKubernetes := k8sClaims(k8sTestFileIss, k8sTestNow)
	delete(noKubernetes, "kubernetes.io")
	f.Add(k8sSign(f, jose.RS256, ks.rsa1, "rsa-1", noKubernetes))
	f.Add("")
	f.Add("a.b.c")

	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("error does not wrap ErrInvalidToken: %v", err)
			}
			if n := len(err.Error()); n > 1024 {
				t.Fatalf("error is %d bytes: %.200q...", n, err)
			}
			return
		}
		if id.Namespace == "" || id.ServiceAccount == "" || id.Expiry.IsZero() {
			t.Fatalf("accepted token with identity %+v", id)
		}
	})
}
