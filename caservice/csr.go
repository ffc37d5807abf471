package caservice

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"net/url"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxCSRSize bounds a DER CSR (an RSA-8192 request with a few SANs is
// well under it).
const MaxCSRSize = 8 << 10

// ErrBadCSR wraps every rejection of a CSR; the service answers with
// InvalidArgument.
var ErrBadCSR = errors.New("bad certificate signing request")

var (
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// ParseCSR decodes a DER CSR and checks what every request must satisfy:
// size, a valid self-signature, a strong key, no request to be a CA and no
// extension meshd does not understand. SANs are checked by the callers.
func ParseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadCSR)
	}
	if len(der) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrBadCSR, len(der), MaxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadCSR, err)
	}
	if err := checkKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	for _, e := range csr.Extensions {
		switch {
		case e.Id.Equal(oidSAN), e.Id.Equal(oidKeyUsage), e.Id.Equal(oidExtKeyUsage):
		case e.Id.Equal(oidBasicConstraints):
			var bc struct {
				IsCA bool `asn1:"optional"`
				Len  int  `asn1:"optional,default:-1"`
			}
			if rest, err := asn1.Unmarshal(e.Value, &bc); err != nil || len(rest) > 0 {
				return nil, fmt.Errorf("%w: malformed basicConstraints", ErrBadCSR)
			}
			if bc.IsCA {
				return nil, fmt.Errorf("%w: requests CA:true; meshd signs only leaf certificates", ErrBadCSR)
			}
		default:
			return nil, fmt.Errorf("%w: requests extension %s, which meshd does not sign", ErrBadCSR, e.Id)
		}
	}
	if len(csr.EmailAddresses) > 0 || len(csr.IPAddresses) > 0 {
		return nil, fmt.Errorf("%w: e-mail and IP SANs are not allowed", ErrBadCSR)
	}
	return csr, nil
}

// checkKey accepts P-256 and P-384 ECDSA, Ed25519 and RSA of 2048 to 8192
// bits with a sane exponent.
func checkKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s is not allowed (P-256 or P-384)", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < 2048 || n > 8192 {
			return fmt.Errorf("RSA key of %d bits is not allowed (2048 to 8192)", n)
		}
		if k.E < 65537 {
			return fmt.Errorf("RSA public exponent %d is too small", k.E)
		}
	default:
		return fmt.Errorf("key type %T is not allowed", pub)
	}
	return nil
}

// WorkloadRequest returns the SPIFFE ID and DNS names a workload CSR asks
// for: exactly one URI SAN, a SPIFFE ID of td outside meshd's reserved
// paths, and valid DNS names.
func WorkloadRequest(csr *x509.CertificateRequest, td spiffeid.TrustDomain) (spiffeid.ID, []string, error) {
	if len(csr.URIs) != 1 {
		return spiffeid.ID{}, nil, fmt.Errorf("%w: need exactly one URI SAN (the SPIFFE ID), got %d", ErrBadCSR, len(csr.URIs))
	}
	id, err := spiffeid.FromURI(csr.URIs[0])
	if err != nil {
		return spiffeid.ID{}, nil, fmt.Errorf("%w: URI SAN: %v", ErrBadCSR, err)
	}
	if !id.MemberOf(td) {
		return spiffeid.ID{}, nil, fmt.Errorf("%w: %s is not in trust domain %s", ErrBadCSR, id, td)
	}
	if id.Path() == "" {
		return spiffeid.ID{}, nil, fmt.Errorf("%w: %s is a trust domain, not a workload ID", ErrBadCSR, id)
	}
	if IsReserved(id) {
		return spiffeid.ID{}, nil, fmt.Errorf("%w: %s is reserved for meshd", ErrBadCSR, id)
	}
	for _, d := range csr.DNSNames {
		if err := validDNSName(d); err != nil {
			return spiffeid.ID{}, nil, fmt.Errorf("%w: DNS SAN %q: %v", ErrBadCSR, d, err)
		}
	}
	return id, csr.DNSNames, nil
}

// AgentRequest checks an enrollment or agent-renewal CSR: it must carry no
// SANs, since the agent's ID comes from its credential.
func AgentRequest(csr *x509.CertificateRequest) error {
	if len(csr.URIs) > 0 || len(csr.DNSNames) > 0 {
		return fmt.Errorf("%w: an agent CSR must carry no SANs (the agent ID comes from its credential)", ErrBadCSR)
	}
	return nil
}

// NewCSR builds a DER CSR for key with the given SPIFFE ID (zero for an
// agent request) and DNS names.
func NewCSR(key crypto.Signer, id spiffeid.ID, dnsNames []string) ([]byte, error) {
	tmpl := &x509.CertificateRequest{DNSNames: dnsNames}
	if !id.IsZero() {
		tmpl.URIs = []*url.URL{id.URL()}
	}
	return x509.CreateCertificateRequest(rand.Reader, tmpl, key)
}
