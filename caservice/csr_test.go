package caservice

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var csrTestTD = spiffeid.RequireTrustDomainFromString("example.org")

// csrTestKeySet holds one key of every kind the tests sign with; RSA keys
// are slow to generate, so they are made once.
type csrTestKeySet struct {
	p256, p384, p224, p521 *ecdsa.PrivateKey
	ed                     ed25519.PrivateKey
	rsa2048, rsa1024       *rsa.PrivateKey
}

var csrTestKeys = sync.OnceValues(func() (ks csrTestKeySet, err error) {
	for _, k := range []struct {
		dst   **ecdsa.PrivateKey
		curve elliptic.Curve
	}{{&ks.p256, elliptic.P256()}, {&ks.p384, elliptic.P384()}, {&ks.p224, elliptic.P224()}, {&ks.p521, elliptic.P521()}} {
		if *k.dst, err = ecdsa.GenerateKey(k.curve, rand.Reader); err != nil {
			return ks, err
		}
	}
	if _, ks.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return ks, err
	}
	if ks.rsa2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		return ks, err
	}
	ks.rsa1024, err = rsa.GenerateKey(rand.Reader, 1024)
	return ks, err
})

func csrTestKeysFor(tb testing.TB) csrTestKeySet {
	tb.Helper()
	ks, err := csrTestKeys()
	if err != nil {
		tb.Fatalf("generate keys: %v", err)
	}
	return ks
}

// csrTestBuild signs tmpl with key; uris are parsed into tmpl.URIs.
func csrTestBuild(tb testing.TB, key crypto.Signer, tmpl x509.CertificateRequest, uris ...string) []byte {
	tb.Helper()
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			tb.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &tmpl, key)
	if err != nil {
		tb.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

func csrTestExt(tb testing.TB, oid asn1.ObjectIdentifier, critical bool, v any) pkix.Extension {
	tb.Helper()
	val, ok := v.([]byte)
	if !ok {
		var err error
		if val, err = asn1.Marshal(v); err != nil {
			tb.Fatal(err)
		}
	}
	return pkix.Extension{Id: oid, Critical: critical, Value: val}
}

// csrTestBC is the basicConstraints extension's value.
type csrTestBC struct {
	IsCA       bool `asn1:"optional"`
	MaxPathLen int  `asn1:"optional,default:-1"`
}

func csrTestWantBad(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s accepted, want an error mentioning %q", what, want)
	case !errors.Is(err, ErrBadCSR):
		t.Errorf("%s: %v does not wrap ErrBadCSR", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s: %q does not mention %q", what, err, want)
	}
}

const csrTestID = "spiffe://example.org/ns/web/sa/frontend"

func TestParseCSR(t *testing.T) {
	ks := csrTestKeysFor(t)
	dns := x509.CertificateRequest{DNSNames: []string{"web.apps.local", "web"}}
	tampered := func(der []byte) []byte {
		der = slices.Clone(der)
		der[len(der)-1] ^= 0x01 // the signature is the DER's last field
		return der
	}
	many := make([]string, 0, 600)
	for i := range cap(many) {
		many = append(many, fmt.Sprintf("name-%04d.apps.local", i))
	}
	tests := []struct {
		name string
		der  func(t *testing.T) []byte
		// wantErr is "" when ParseCSR must accept.
		wantErr string
	}{
		{"P-256", func(t *testing.T) []byte { return csrTestBuild(t, ks.p256, dns, csrTestID) }, ""},
		{"P-384", func(t *testing.T) []byte { return csrTestBuild(t, ks.p384, dns, csrTestID) }, ""},
		{"Ed25519", func(t *testing.T) []byte { return csrTestBuild(t, ks.ed, dns, csrTestID) }, ""},
		{"RSA-2048", func(t *testing.T) []byte { return csrTestBuild(t, ks.rsa2048, dns, csrTestID) }, ""},
		{"no SANs", func(t *testing.T) []byte { return csrTestBuild(t, ks.p256, x509.CertificateRequest{}) }, ""},
		{"subject is ignored", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "web", Organization: []string{"x"}}}, csrTestID)
		}, ""},
		{"basicConstraints CA:false", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
				csrTestExt(t, oidBasicConstraints, true, csrTestBC{IsCA: false, MaxPathLen: -1}),
			}}, csrTestID)
		}, ""},
		{"keyUsage and extKeyUsage", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
				csrTestExt(t, oidKeyUsage, true, asn1.BitString{Bytes: []byte{0x80}, BitLength: 1}),
				csrTestExt(t, oidExtKeyUsage, false, []asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}}),
			}}, csrTestID)
		}, ""},

		{"RSA-1024", func(t *testing.T) []byte { return csrTestBuild(t, ks.rsa1024, dns, csrTestID) }, "RSA key of 1024 bits"},
		{"ECDSA P-224", func(t *testing.T) []byte { return csrTestBuild(t, ks.p224, dns, csrTestID) }, "curve P-224"},
		{"ECDSA P-521", func(t *testing.T) []byte { return csrTestBuild(t, ks.p521, dns, csrTestID) }, "curve P-521"},
		{"basicConstraints CA:true", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
				csrTestExt(t, oidBasicConstraints, true, csrTestBC{IsCA: true, MaxPathLen: -1}),
			}}, csrTestID)
		}, "CA:true"},
		{"basicConstraints CA:true with pathLen", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
				csrTestExt(t, oidBasicConstraints, false, csrTestBC{IsCA: true, MaxPathLen: 0}),
			}})
		}, "CA:true"},
		{"basicConstraints malformed", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
				csrTestExt(t, oidBasicConstraints, true, []byte{0x01, 0x01, 0xff}),
			}})
		}, "malformed basicConstraints"},
		{"basicConstraints trailing data", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
				csrTestExt(t, oidBasicConstraints, true, []byte{0x30, 0x00, 0x00}),
			}})
		}, "malformed basicConstraints"},
		{"unknown extension", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
				csrTestExt(t, asn1.ObjectIdentifier{1, 2, 3, 4}, false, []byte{0x05, 0x00}),
			}}, csrTestID)
		}, "extension 1.2.3.4"},
		{"nameConstraints", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
				csrTestExt(t, asn1.ObjectIdentifier{2, 5, 29, 30}, true, []byte{0x30, 0x00}),
			}}, csrTestID)
		}, "extension 2.5.29.30"},
		{"IP SAN", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{IPAddresses: []net.IP{net.ParseIP("10.0.0.1")}}, csrTestID)
		}, "IP SANs"},
		{"e-mail SAN", func(t *testing.T) []byte {
			return csrTestBuild(t, ks.p256, x509.CertificateRequest{EmailAddresses: []string{"root@example.org"}}, csrTestID)
		}, "e-mail"},
		{"tampered signature", func(t *testing.T) []byte { return tampered(csrTestBuild(t, ks.ed, dns, csrTestID)) }, "signature"},
		{"tampered ECDSA signature", func(t *testing.T) []byte { return tampered(csrTestBuild(t, ks.p256, dns, csrTestID)) }, "signature"},
		{"tampered RSA signature", func(t *testing.T) []byte { return tampered(csrTestBuild(t, ks.rsa2048, dns, csrTestID)) }, "signature"},
		{"tampered request", func(t *testing.T) []byte {
			der := csrTestBuild(t, ks.ed, dns, csrTestID)
			i := strings.Index(string(der), "frontend")
			der[i] = 'F' // the signed SPIFFE ID changes
			return der
		}, "signature"},
		{"truncated", func(t *testing.T) []byte {
			der := csrTestBuild(t, ks.p256, dns, csrTestID)
			return der[:len(der)-10]
		}, "bad certificate signing request"},
		{"trailing data", func(t *testing.T) []byte {
			return append(csrTestBuild(t, ks.p256, dns, csrTestID), 0)
		}, "bad certificate signing request"},
		{"a certificate, not a CSR", func(t *testing.T) []byte {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1)}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, ks.p256.Public(), ks.p256)
			if err != nil {
				t.Fatal(err)
			}
			return der
		}, "bad certificate signing request"},
		{"empty", func(*testing.T) []byte { return nil }, "empty"},
		{"zero-length", func(*testing.T) []byte { return []byte{} }, "empty"},
		{"oversized zeros", func(*testing.T) []byte { return make([]byte, MaxCSRSize+1) }, "limit"},
		{"oversized real CSR", func(t *testing.T) []byte {
			der := csrTestBuild(t, ks.p256, x509.CertificateRequest{DNSNames: many}, csrTestID)
			if len(der) <= MaxCSRSize {
				t.Fatalf("CSR of %d bytes is not oversized", len(der))
			}
			return der
		}, "limit"},
		{"garbage", func(*testing.T) []byte { return []byte("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n") }, "bad certificate signing request"},
		{"garbage binary", func(*testing.T) []byte { return []byte{0x30, 0x82, 0xff, 0xff, 0x01} }, "bad certificate signing request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der := tt.der(t)
			csr, err := ParseCSR(der)
			if tt.wantErr != "" {
				csrTestWantBad(t, "ParseCSR", err, tt.wantErr)
				if csr != nil {
					t.Error("ParseCSR returned a CSR with its error")
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			if err := checkKey(csr.PublicKey); err != nil {
				t.Errorf("accepted a key checkKey refuses: %v", err)
			}
		})
	}
}

func TestParseCSRAtSizeLimit(t *testing.T) {
	ks := csrTestKeysFor(t)
	// An Ed25519 signature has a fixed size, and at these sizes every DER
	// length has two bytes, so the CSR grows by one byte per path byte.
	build := func(pathLen int) []byte {
		return csrTestBuild(t, ks.ed, x509.CertificateRequest{}, "spiffe://example.org/"+strings.Repeat("a", pathLen))
	}
	const guess = 7000
	n := guess + MaxCSRSize - len(build(guess))
	der := build(n)
	if len(der) != MaxCSRSize {
		t.Fatalf("built a CSR of %d bytes, want %d", len(der), MaxCSRSize)
	}
	if _, err := ParseCSR(der); err != nil {
		t.Errorf("CSR of exactly MaxCSRSize bytes: %v", err)
	}
	der = build(n + 1)
	if len(der) != MaxCSRSize+1 {
		t.Fatalf("built a CSR of %d bytes, want %d", len(der), MaxCSRSize+1)
	}
	_, err := ParseCSR(der)
	csrTestWantBad(t, "CSR of MaxCSRSize+1 bytes", err, "limit")
}

func TestCSRCheckKey(t *testing.T) {
	ks := csrTestKeysFor(t)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	bigN := func(bits int) *big.Int { return new(big.Int).Lsh(big.NewInt(1), uint(bits-1)) }
	tests := []struct {
		name    string
		key     crypto.PublicKey
		wantErr string
	}{
		{"P-256", ks.p256.Public(), ""},
		{"P-384", ks.p384.Public(), ""},
		{"Ed25519", ks.ed.Public(), ""},
		{"RSA-2048", ks.rsa2048.Public(), ""},
		{"RSA-8192", &rsa.PublicKey{N: bigN(8192), E: 65537}, ""},
		{"RSA large exponent", &rsa.PublicKey{N: bigN(2048), E: 1<<31 - 1}, ""},
		{"P-224", ks.p224.Public(), "P-224"},
		{"P-521", ks.p521.Public(), "P-521"},
		{"RSA-1024", ks.rsa1024.Public(), "1024 bits"},
		{"RSA-2047", &rsa.PublicKey{N: bigN(2047), E: 65537}, "2047 bits"},
		{"RSA-8193", &rsa.PublicKey{N: bigN(8193), E: 65537}, "8193 bits"},
		{"RSA exponent 3", &rsa.PublicKey{N: bigN(2048), E: 3}, "exponent 3"},
		{"X25519", x25519.PublicKey(), "not allowed"},
		{"nil", nil, "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkKey(tt.key)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkKey: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkKey = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestCSRWorkloadRequest(t *testing.T) {
	ks := csrTestKeysFor(t)
	tests := []struct {
		name    string
		key     crypto.Signer
		uris    []string
		dns     []string
		wantID  string
		wantErr string
	}{
		{"P-256 with DNS names", ks.p256, []string{csrTestID}, []string{"web.apps.local", "WEB-2.apps.local", "web"}, csrTestID, ""},
		{"P-384", ks.p384, []string{csrTestID}, nil, csrTestID, ""},
		{"Ed25519", ks.ed, []string{csrTestID}, []string{"a.b"}, csrTestID, ""},
		{"RSA-2048", ks.rsa2048, []string{csrTestID}, []string{"a.b"}, csrTestID, ""},
		{"anything under /meshd is reserved", ks.p256, []string{"spiffe://example.org/meshd/web"}, nil, "", "reserved"},
		{"/meshd itself is reserved", ks.p256, []string{"spiffe://example.org/meshd"}, nil, "", "reserved"},
		{"a path merely starting with meshd is not", ks.p256, []string{"spiffe://example.org/meshdx/web"}, nil, "spiffe://example.org/meshdx/web", ""},

		{"no URI SAN", ks.p256, nil, []string{"web.apps.local"}, "", "exactly one URI SAN"},
		{"two URI SANs", ks.p256, []string{csrTestID, "spiffe://example.org/ns/web/sa/other"}, nil, "", "got 2"},
		{"https URI", ks.p256, []string{"https://example.org/ns/web"}, nil, "", "URI SAN"},
		{"URN", ks.p256, []string{"urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"}, nil, "", "URI SAN"},
		{"SPIFFE ID with query", ks.p256, []string{csrTestID + "?x=1"}, nil, "", "URI SAN"},
		// X509-SVID §3.1: "Leaf certificate SPIFFE IDs MUST have a
		// non-root path component."
		{"trust domain ID (root path)", ks.p256, []string{"spiffe://example.org"}, nil, "", "bad certificate signing request"},
		{"SPIFFE ID with upper-case trust domain", ks.p256, []string{"spiffe://Example.org/ns/web"}, nil, "", "URI SAN"},
		{"other trust domain", ks.p256, []string{"spiffe://other.org/ns/web/sa/frontend"}, nil, "", "not in trust domain example.org"},
		{"agent ID", ks.p256, []string{"spiffe://example.org/meshd/agent/x"}, nil, "", "reserved"},
		{"nested agent ID", ks.p256, []string{"spiffe://example.org/meshd/agent/k8s/ns/a/sa/b"}, nil, "", "reserved"},
		{"CA service ID", ks.p256, []string{"spiffe://example.org/meshd/ca-service"}, nil, "", "reserved"},
		{"DNS SAN with underscore", ks.p256, []string{csrTestID}, []string{"ok.local", "bad_name.local"}, "", "DNS SAN \"bad_name.local\""},
		{"DNS SAN wildcard", ks.p256, []string{csrTestID}, []string{"*.apps.local"}, "", "DNS SAN"},
		{"DNS SAN trailing dot", ks.p256, []string{csrTestID}, []string{"web.local."}, "", "DNS SAN"},
		{"DNS SAN leading hyphen", ks.p256, []string{csrTestID}, []string{"-web.local"}, "", "DNS SAN"},
		{"DNS SAN empty label", ks.p256, []string{csrTestID}, []string{"web..local"}, "", "DNS SAN"},
		{"DNS SAN label over 63 bytes", ks.p256, []string{csrTestID}, []string{strings.Repeat("a", 64) + ".local"}, "", "DNS SAN"},
		{"DNS SAN IP address", ks.p256, []string{csrTestID}, []string{"10.0.0.1:443"}, "", "DNS SAN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der := csrTestBuild(t, tt.key, x509.CertificateRequest{DNSNames: tt.dns}, tt.uris...)
			csr, err := ParseCSR(der)
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			id, dns, err := WorkloadRequest(csr, csrTestTD)
			if tt.wantErr != "" {
				csrTestWantBad(t, "WorkloadRequest", err, tt.wantErr)
				if !id.IsZero() || dns != nil {
					t.Errorf("WorkloadRequest returned %s, %q with its error", id, dns)
				}
				return
			}
			if err != nil {
				t.Fatalf("WorkloadRequest: %v", err)
			}
			if id.String() != tt.wantID || !slices.Equal(dns, tt.dns) {
				t.Errorf("WorkloadRequest = %s, %q; want %s, %q", id, dns, tt.wantID, tt.dns)
			}
		})
	}
}

func TestCSRAgentRequest(t *testing.T) {
	ks := csrTestKeysFor(t)
	tests := []struct {
		name    string
		key     crypto.Signer
		uris    []string
		dns     []string
		wantErr bool
	}{
		{"no SANs P-256", ks.p256, nil, nil, false},
		{"no SANs Ed25519", ks.ed, nil, nil, false},
		{"no SANs RSA-2048", ks.rsa2048, nil, nil, false},
		{"agent ID", ks.p256, []string{"spiffe://example.org/meshd/agent/x"}, nil, true},
		{"workload ID", ks.p256, []string{csrTestID}, nil, true},
		{"DNS name", ks.p256, nil, []string{"node-1.local"}, true},
		{"both", ks.p256, []string{csrTestID}, []string{"node-1.local"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := ParseCSR(csrTestBuild(t, tt.key, x509.CertificateRequest{DNSNames: tt.dns}, tt.uris...))
			if err != nil {
				t.Fatalf("ParseCSR: %v", err)
			}
			err = AgentRequest(csr)
			if tt.wantErr {
				csrTestWantBad(t, "AgentRequest", err, "no SANs")
			} else if err != nil {
				t.Errorf("AgentRequest: %v", err)
			}
		})
	}
}

func TestNewCSR(t *testing.T) {
	ks := csrTestKeysFor(t)
	id := spiffeid.RequireFromString(csrTestID)
	tests := []struct {
		name  string
		key   crypto.Signer
		id    spiffeid.ID
		dns   []string
		agent bool // the CSR is an agent request
	}{
		{"workload P-256", ks.p256, id, []string{"web.apps.local", "web"}, false},
		{"workload P-384 no DNS", ks.p384, id, nil, false},
		{"workload Ed25519", ks.ed, id, []string{"web"}, false},
		{"workload RSA-2048", ks.rsa2048, id, []string{"web"}, false},
		{"agent P-256", ks.p256, spiffeid.ID{}, nil, true},
		{"agent Ed25519", ks.ed, spiffeid.ID{}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := NewCSR(tt.key, tt.id, tt.dns)
			if err != nil {
				t.Fatalf("NewCSR: %v", err)
			}
			csr, err := ParseCSR(der)
			if err != nil {
				t.Fatalf("ParseCSR(NewCSR(...)): %v", err)
			}
			if !csrTestSameKey(csr.PublicKey, tt.key.Public()) {
				t.Error("the CSR's key is not the signer's")
			}
			if tt.agent {
				if err := AgentRequest(csr); err != nil {
					t.Errorf("AgentRequest: %v", err)
				}
				return
			}
			gotID, gotDNS, err := WorkloadRequest(csr, csrTestTD)
			if err != nil {
				t.Fatalf("WorkloadRequest: %v", err)
			}
			if gotID != tt.id || !slices.Equal(gotDNS, tt.dns) {
				t.Errorf("WorkloadRequest = %s, %q; want %s, %q", gotID, gotDNS, tt.id, tt.dns)
			}
			if err := AgentRequest(csr); err == nil {
				t.Error("AgentRequest accepted a workload CSR")
			}
		})
	}
	t.Run("weak key", func(t *testing.T) {
		der, err := NewCSR(ks.rsa1024, id, nil)
		if err != nil {
			t.Fatalf("NewCSR: %v", err)
		}
		if _, err := ParseCSR(der); !errors.Is(err, ErrBadCSR) {
			t.Errorf("ParseCSR of an RSA-1024 CSR from NewCSR: %v", err)
		}
	})
}

func csrTestSameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func FuzzParseCSR(f *testing.F) {
	ks := csrTestKeysFor(f)
	id := spiffeid.RequireFromString(csrTestID)
	for _, key := range []crypto.Signer{ks.p256, ks.p384, ks.ed, ks.rsa2048, ks.rsa1024, ks.p224} {
		for _, seed := range []struct {
			id  spiffeid.ID
			dns []string
		}{{id, []string{"web.apps.local"}}, {spiffeid.ID{}, nil}} {
			der, err := NewCSR(key, seed.id, seed.dns)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(der)
		}
	}
	for _, tmpl := range []struct {
		x509.CertificateRequest
		uris []string
	}{
		{x509.CertificateRequest{}, []string{"spiffe://example.org/meshd/agent/x"}},
		{x509.CertificateRequest{}, []string{"spiffe://example.org/meshd/ca-service"}},
		{x509.CertificateRequest{}, []string{"spiffe://other.org/x"}},
		{x509.CertificateRequest{}, []string{csrTestID, csrTestID + "2"}},
		{x509.CertificateRequest{DNSNames: []string{"bad_name"}}, []string{csrTestID}},
		{x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}, nil},
		{x509.CertificateRequest{EmailAddresses: []string{"a@b.c"}}, nil},
		{x509.CertificateRequest{ExtraExtensions: []pkix.Extension{csrTestExt(f, oidBasicConstraints, true, csrTestBC{IsCA: true, MaxPathLen: -1})}}, nil},
		{x509.CertificateRequest{ExtraExtensions: []pkix.Extension{csrTestExt(f, oidBasicConstraints, true, csrTestBC{MaxPathLen: -1})}}, nil},
		{x509.CertificateRequest{ExtraExtensions: []pkix.Extension{csrTestExt(f, asn1.ObjectIdentifier{1, 2, 3, 4}, false, []byte{5, 0})}}, nil},
	} {
		f.Add(csrTestBuild(f, ks.p256, tmpl.CertificateRequest, tmpl.uris...))
	}
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte("garbage"))

	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := ParseCSR(der)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("ParseCSR: %v does not wrap ErrBadCSR", err)
			}
			return
		}
		if err := checkKey(csr.PublicKey); err != nil {
			t.Fatalf("ParseCSR accepted a key checkKey refuses: %v", err)
		}
		if len(csr.IPAddresses) > 0 || len(csr.EmailAddresses) > 0 {
			t.Fatalf("ParseCSR accepted IP %v / e-mail %q SANs", csr.IPAddresses, csr.EmailAddresses)
		}
		if err := AgentRequest(csr); err == nil && (len(csr.URIs) > 0 || len(csr.DNSNames) > 0) {
			t.Fatal("AgentRequest accepted a CSR with SANs")
		} else if err != nil && !errors.Is(err, ErrBadCSR) {
			t.Fatalf("AgentRequest: %v does not wrap ErrBadCSR", err)
		}
		id, dns, err := WorkloadRequest(csr, csrTestTD)
		if err != nil {
			if !errors.Is(err, ErrBadCSR) {
				t.Fatalf("WorkloadRequest: %v does not wrap ErrBadCSR", err)
			}
			return
		}
		if !id.MemberOf(csrTestTD) {
			t.Fatalf("WorkloadRequest accepted %s, outside %s", id, csrTestTD)
		}
		if IsAgentID(id) || id == ServerID(csrTestTD) || strings.HasPrefix(id.Path(), "/meshd/agent/") {
			t.Fatalf("WorkloadRequest accepted reserved ID %s", id)
		}
		for _, d := range dns {
			if err := validDNSName(d); err != nil {
				t.Fatalf("WorkloadRequest accepted DNS name %q: %v", d, err)
			}
		}
	})
}
