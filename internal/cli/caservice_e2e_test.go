package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/internal/testutil"
	"github.com/meshd/meshd/sds/sdsclient"
)

const e2eTD = "example.org"

// background runs a meshd command until the test ends and returns its
// stderr and a channel with its exit code.
func background(t *testing.T, args ...string) (*testutil.SyncBuffer, <-chan int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errb := &testutil.SyncBuffer{}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, args, &bytes.Buffer{}, errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("meshd %s did not stop:\n%s", args[0], errb.String())
		}
	})
	return errb, done
}

func waitFile(t *testing.T, path string, logs *testutil.SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear:\n%s", path, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// k8sIssuer signs projected service-account tokens like a kube-apiserver.
type k8sIssuer struct {
	key  *rsa.PrivateKey
	jwks string
}

const k8sIss = "https://kubernetes.default.svc.cluster.local"

func newK8sIssuer(t *testing.T, dir string) *k8sIssuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return &k8sIssuer{key: key, jwks: p}
}

func (k *k8sIssuer) token(t *testing.T, ns, sa, aud string) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := jwt.Claims{
		Issuer: k8sIss, Subject: "system:serviceaccount:" + ns + ":" + sa, Audience: jwt.Audience{aud},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour)),
	}
	extra := map[string]any{"kubernetes.io": map[string]any{
		"namespace":      ns,
		"serviceaccount": map[string]any{"name": sa, "uid": "0b5e7c1a-0000-4000-8000-000000000001"},
		"pod":            map[string]any{"name": sa + "-7d9c", "uid": "0b5e7c1a-0000-4000-8000-000000000002"},
	}}
	tok, err := jwt.Signed(sig).Claims(claims).Claims(extra).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// sdsWatch opens an SDS stream for names and returns a function that
// blocks until the next response (ACKing it) and decodes its secrets.
func sdsWatch(t *testing.T, socket string, names ...string) func() map[string][]byte {
	t.Helper()
	conn, err := sdsclient.Dial(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := secretv3.NewSecretDiscoveryServiceClient(conn).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(sdsclient.Request(sdsclient.Node("envoy-"+filepath.Base(socket), ""), names...)); err != nil {
		t.Fatal(err)
	}
	type result struct {
		resp *discoveryv3.DiscoveryResponse
		err  error
	}
	ch := make(chan result, 16)
	go func() {
		for {
			resp, err := st.Recv()
			ch <- result{resp, err}
			if err != nil {
				return
			}
		}
	}()
	return func() map[string][]byte {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("SDS stream on %s: %v", socket, r.err)
			}
			if err := st.Send(sdsclient.ACK(r.resp, names...)); err != nil {
				t.Fatal(err)
			}
			secrets, err := sdsclient.Secrets(r.resp)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string][]byte{}
			for _, s := range secrets {
				if c := s.GetTlsCertificate(); c != nil {
					out[s.GetName()] = append(append([]byte{}, c.GetCertificateChain().GetInlineBytes()...), c.GetPrivateKey().GetInlineBytes()...)
				} else {
					out[s.GetName()] = spiffeBundlePEM(t, s.GetValidationContext())
				}
			}
			return out
		case <-time.After(30 * time.Second):
			t.Fatalf("no SDS response on %s within 30s", socket)
			return nil
		}
	}
}

// spiffeBundlePEM reads the trust domain's roots out of the SPIFFE
// certificate validator config meshd serves to Envoy ≥ 1.18 (and to a node
// that does not say its version).
func spiffeBundlePEM(t *testing.T, vc *tlsv3.CertificateValidationContext) []byte {
	t.Helper()
	var cfg tlsv3.SPIFFECertValidatorConfig
	if err := vc.GetCustomValidatorConfig().GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		t.Fatalf("validation context is not the SPIFFE validator: %v", err)
	}
	for _, td := range cfg.GetTrustDomains() {
		if td.GetName() == e2eTD {
			return td.GetTrustBundle().GetInlineBytes()
		}
	}
	t.Fatalf("SPIFFE validator has no bundle for %s", e2eTD)
	return nil
}

func parseSVID(t *testing.T, pemBytes []byte) *x509svid.SVID {
	t.Helper()
	svid, err := x509svid.Parse(pemBytes, pemBytes)
	if err != nil {
		t.Fatalf("served certificate: %v", err)
	}
	return svid
}

func parseBundle(t *testing.T, pemBytes []byte) *x509bundle.Bundle {
	t.Helper()
	b, err := x509bundle.Parse(spiffeid.RequireTrustDomainFromString(e2eTD), pemBytes)
	if err != nil {
		t.Fatalf("served bundle: %v", err)
	}
	return b
}

func mustVerify(t *testing.T, what string, svid *x509svid.SVID, b *x509bundle.Bundle) {
	t.Helper()
	if _, _, err := x509svid.Verify(svid.Certificates, b); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestCAServiceTwoSidecars is issue 3's acceptance: a CA service and two
// `meshd sds` sidecars, one enrolled with a join token and one with a
// Kubernetes service-account token; each sidecar's SVID verifies against
// the bundle the other serves, before and across a CA rollover; a join
// token cannot be used twice; a sidecar asking for an identity its agent is
// not granted gets nothing.
func TestCAServiceTwoSidecars(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: runs for about 15 s")
	}
	dir := shortTempDir(t)
	state := filepath.Join(dir, "ca")
	uid := os.Getuid()
	k8s := newK8sIssuer(t, dir)
	policy := filepath.Join(dir, "policy.yaml")
	writeFile(t, policy, fmt.Sprintf(`kubernetes:
  issuer: %s
  audience: meshd
  jwksFile: %s
grants:
  - agent: spiffe://%[3]s/meshd/agent/ecs/task-a
    spiffeIDs: [spiffe://%[3]s/mesh/apps/virtualNode/serviceA]
    dnsNames: [servicea.apps.local]
  - agent: spiffe://%[3]s/meshd/agent/k8s/ns/apps/sa/*
    spiffeIDs: [spiffe://%[3]s/mesh/apps/virtualNode/serviceB]
    dnsNames: ["*.apps.local"]
`, k8sIss, k8s.jwks, e2eTD))

	if code, _, errOut := runCLI(t, "ca", "init", "--state-dir", state, "--trust-domain", e2eTD); code != 0 {
		t.Fatalf("ca init: %d %s", code, errOut)
	}
	caSock := filepath.Join(dir, "ca.sock")
	caLogs, _ := background(t, "ca", "serve", "--state-dir", state, "--trust-domain", e2eTD, "--listen", "unix://"+caSock,
		"--policy", policy, "--svid-ttl", "12s", "--reload-interval", "100ms", "--metrics-listen", "")
	waitFile(t, caSock, caLogs)

	code, bundlePEM, errOut := runCLI(t, "ca", "show", "--state-dir", state, "--pem")
	if code != 0 {
		t.Fatalf("ca show --pem: %d %s", code, errOut)
	}
	bundleFile := filepath.Join(dir, "bundle.pem")
	writeFile(t, bundleFile, bundlePEM)
	code, token, errOut := runCLI(t, "ca", "token", "create", "--state-dir", state, "--spiffe-id", "spiffe://"+e2eTD+"/meshd/agent/ecs/task-a")
	if code != 0 || !strings.HasPrefix(token, "meshd-jt.") {
		t.Fatalf("ca token create: %d %q %s", code, token, errOut)
	}
	tokenFile := filepath.Join(dir, "token")
	writeFile(t, tokenFile, token)
	k8sTokenFile := filepath.Join(dir, "k8s-token")
	writeFile(t, k8sTokenFile, k8s.token(t, "apps", "serviceb", "meshd"))

	logs := map[string]*testutil.SyncBuffer{}
	sidecar := func(name, vn, dns string, cred ...string) string {
		ids := filepath.Join(dir, name+".yaml")
		writeFile(t, ids, fmt.Sprintf("- spiffeID: spiffe://%s/mesh/apps/virtualNode/%s\n  dnsNames: [%s]\n  selectors: [uid:%d]\n", e2eTD, vn, dns, uid))
		sock := filepath.Join(dir, name+".sock")
		// A short sync interval: `ca rotate --now` below publishes and
		// activates the next root at once, so the sidecars learn of it at
		// their next sync (or with their next certificate).
		args := append([]string{"sds", "--trust-domain", e2eTD, "--socket", sock, "--identities", ids, "--metrics-listen", "",
			"--ca-service", "unix://" + caSock, "--ca-service-bundle", bundleFile, "--ca-service-sync-interval", "500ms"}, cred...)
		l, _ := background(t, args...)
		waitFile(t, sock, l)
		logs[sock] = l
		return sock
	}
	sockA := sidecar("a", "serviceA", "servicea.apps.local", "--join-token-file", tokenFile)
	sockB := sidecar("b", "serviceB", "serviceb.apps.local", "--k8s-token-file", k8sTokenFile)

	// The first request may race the enrollment: Unavailable, and Envoy
	// (here: the loop) retries.
	for _, sock := range []string{sockA, sockB} {
		var last string
		ok := poll(15*time.Second, func() bool {
			code, out, errOut := runCLI(t, "secrets", "--socket", sock, "default")
			last = out + errOut
			return code == 0 && strings.Contains(out, "tls_certificate")
		})
		if !ok {
			t.Fatalf("sidecar on %s not serving within 15s: %s\nsidecar:\n%s\nCA service:\n%s", sock, last, logs[sock], caLogs)
		}
	}
	nextA, nextB := sdsWatch(t, sockA, "default", "ROOTCA"), sdsWatch(t, sockB, "default", "ROOTCA")
	a, b := nextA(), nextB()
	svidA, svidB := parseSVID(t, a["default"]), parseSVID(t, b["default"])
	bundleA, bundleB := parseBundle(t, a["ROOTCA"]), parseBundle(t, b["ROOTCA"])
	if got := svidA.ID.String(); got != "spiffe://"+e2eTD+"/mesh/apps/virtualNode/serviceA" {
		t.Fatalf("sidecar A serves %s", got)
	}
	if svidB.Certificates[0].DNSNames[0] != "serviceb.apps.local" {
		t.Fatalf("sidecar B's DNS SANs: %v", svidB.Certificates[0].DNSNames)
	}
	mustVerify(t, "A's SVID against B's bundle", svidA, bundleB)
	mustVerify(t, "B's SVID against A's bundle", svidB, bundleA)

	// A join token is single-use: a second sidecar with it is refused and
	// exits with a message that says why.
	code, _, errOut = runCLI(t, "sds", "--trust-domain", e2eTD, "--socket", filepath.Join(dir, "c.sock"), "--metrics-listen", "",
		"--ca-service", "unix://"+caSock, "--ca-service-bundle", bundleFile, "--join-token-file", tokenFile)
	if code == 0 || !strings.Contains(errOut, "join token already used") {
		t.Fatalf("reused join token: exit %d\n%s", code, errOut)
	}

	// CA rollover: the next root is published at once and signs from now.
	oldRoot := bundleA.X509Authorities()[0]
	if code, _, errOut := runCLI(t, "ca", "rotate", "--state-dir", state, "--now"); code != 0 {
		t.Fatalf("ca rotate: %d %s", code, errOut)
	}
	// Both sidecars push the two-root bundle, then (at the SVIDs'
	// half-life) SVIDs signed by the new root.
	var newA, newB *x509svid.SVID
	for newA == nil || newB == nil || len(bundleA.X509Authorities()) < 2 || len(bundleB.X509Authorities()) < 2 {
		select {
		case <-time.After(40 * time.Second):
			t.Fatalf("rollover not served within 40s:\nCA:\n%s", caLogs.String())
		default:
		}
		for _, side := range []struct {
			next   func() map[string][]byte
			bundle **x509bundle.Bundle
			svid   **x509svid.SVID
		}{{nextA, &bundleA, &newA}, {nextB, &bundleB, &newB}} {
			if *side.svid != nil && len((*side.bundle).X509Authorities()) >= 2 {
				continue
			}
			got := side.next()
			if p, ok := got["ROOTCA"]; ok {
				*side.bundle = parseBundle(t, p)
			}
			if p, ok := got["default"]; ok {
				s := parseSVID(t, p)
				if !bytes.Equal(s.Certificates[0].AuthorityKeyId, oldRoot.SubjectKeyId) {
					*side.svid = s
				}
			}
		}
	}
	if !bundleA.HasX509Authority(oldRoot) || !bundleB.HasX509Authority(oldRoot) {
		t.Fatal("the old root left the bundle while certificates it signed are still valid")
	}
	mustVerify(t, "A's new SVID against B's bundle", newA, bundleB)
	mustVerify(t, "B's new SVID against A's bundle", newB, bundleA)
	mustVerify(t, "B's old SVID against A's new bundle", svidB, bundleA)
	if roots := verifiedRoot(t, newA, bundleB); roots.Equal(oldRoot) {
		t.Fatal("A's renewed SVID is still signed by the old root")
	}
}

func verifiedRoot(t *testing.T, svid *x509svid.SVID, b *x509bundle.Bundle) *x509.Certificate {
	t.Helper()
	_, chains, err := x509svid.Verify(svid.Certificates, b)
	if err != nil {
		t.Fatal(err)
	}
	return chains[0][len(chains[0])-1]
}

func shortTempDir(t *testing.T) string {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir() can be longer.
	d, err := os.MkdirTemp("", "meshd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// TestREADMECAService keeps the README's CA service section honest: every
// command names a real subcommand whose flags parse, and the example policy
// is accepted by the CA service's parser.
func TestREADMECAService(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "<!-- ca-service-commands -->")
	if !ok {
		t.Fatal("README.md has no ca-service-commands block")
	}
	_, cmds, _ := strings.Cut(sec, "```sh\n")
	cmds, rest, _ := strings.Cut(cmds, "```")
	flagSets := map[string]*flag.FlagSet{}
	Walk(func(path []string, _ *Command, fs *flag.FlagSet) { flagSets[strings.Join(path, " ")] = fs })
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(cmds), "\n") {
		line, _, _ = strings.Cut(line, " > ") // shell redirection
		words := strings.Fields(line)
		var fs *flag.FlagSet
		var args []string
		for i := len(words); i > 0; i-- {
			if f, ok := flagSets[strings.Join(words[:i], " ")]; ok {
				fs, args = f, words[i:]
				break
			}
		}
		if fs == nil {
			t.Fatalf("README line %q is not a meshd command", line)
		}
		fs.SetOutput(io.Discard)
		if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
			t.Errorf("README line %q: %v (extra %q)", line, err, fs.Args())
		}
		n++
	}
	if n < 5 {
		t.Fatalf("only %d commands in the README's CA service block", n)
	}
	_, y, ok := strings.Cut(rest, "```yaml\n")
	if !ok {
		t.Fatal("no policy example after the CA service commands")
	}
	y, _, _ = strings.Cut(y, "```")
	p, err := caservice.ParsePolicy([]byte(y), spiffeid.RequireTrustDomainFromString(e2eTD))
	if err != nil {
		t.Fatalf("README policy: %v", err)
	}
	agent := spiffeid.RequireFromString("spiffe://example.org/meshd/agent/k8s/ns/apps/sa/colorapp")
	if err := p.Allows(agent, spiffeid.RequireFromString("spiffe://example.org/mesh/apps/virtualNode/colorapp"), []string{"colorapp.apps.svc.cluster.local"}); err != nil {
		t.Fatalf("README policy does not do what the README says: %v", err)
	}
}

// TestControlPlaneServesCA: the CA service runs inside the control plane
// process when --ca-listen is given, and a sidecar enrolls with it.
func TestControlPlaneServesCA(t *testing.T) {
	dir := shortTempDir(t)
	state := filepath.Join(dir, "ca")
	policy := filepath.Join(dir, "policy.yaml")
	writeFile(t, policy, "grants:\n  - agent: spiffe://"+e2eTD+"/meshd/agent/node/*\n    spiffeIDs: [spiffe://"+e2eTD+"/mesh/apps/virtualNode/serviceA]\n")
	if code, _, errOut := runCLI(t, "ca", "init", "--state-dir", state, "--trust-domain", e2eTD); code != 0 {
		t.Fatalf("ca init: %d %s", code, errOut)
	}
	caSock := filepath.Join(dir, "ca.sock")
	logs, _ := background(t, "controlplane", "--config", filepath.Join("..", "..", "examples", "apps"), "--xds-listen", "unix://"+filepath.Join(dir, "xds.sock"),
		"--metrics-listen", "", "--state-dir", state, "--trust-domain", e2eTD, "--ca-listen", "unix://"+caSock, "--ca-policy", policy)
	waitFile(t, caSock, logs)
	_, bundlePEM, _ := runCLI(t, "ca", "show", "--state-dir", state, "--pem")
	writeFile(t, filepath.Join(dir, "bundle.pem"), bundlePEM)
	_, token, _ := runCLI(t, "ca", "token", "create", "--state-dir", state, "--spiffe-id", "spiffe://"+e2eTD+"/meshd/agent/node/n1")
	t.Setenv(JoinTokenEnv, strings.TrimSpace(token))
	ids := filepath.Join(dir, "ids.yaml")
	writeFile(t, ids, fmt.Sprintf("- spiffeID: spiffe://%s/mesh/apps/virtualNode/serviceA\n  selectors: [uid:%d]\n", e2eTD, os.Getuid()))
	sock := filepath.Join(dir, "sds.sock")
	sdsLogs, _ := background(t, "sds", "--trust-domain", e2eTD, "--socket", sock, "--identities", ids, "--metrics-listen", "",
		"--ca-service", "unix://"+caSock, "--ca-service-bundle", filepath.Join(dir, "bundle.pem"))
	waitFile(t, sock, sdsLogs)
	var out string
	if !poll(15*time.Second, func() bool {
		var code int
		code, out, _ = runCLI(t, "secrets", "--socket", sock, "default")
		return code == 0
	}) {
		t.Fatalf("no certificate from the control plane's CA service:\n%s\n%s", sdsLogs, logs)
	}
	if !strings.Contains(out, "spiffe://"+e2eTD+"/mesh/apps/virtualNode/serviceA") {
		t.Fatalf("secrets: %s", out)
	}
}
