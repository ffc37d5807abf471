package sdsclient

import (
	"errors"
	"fmt"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// SVID decodes a tls_certificate secret (inline PEM chain and key, as meshd
// serves them) into an X.509-SVID.
func SVID(s *tlsv3.Secret) (*x509svid.SVID, error) {
	tc := s.GetTlsCertificate()
	if tc == nil {
		return nil, fmt.Errorf("secret %q is not a tls_certificate", s.GetName())
	}
	svid, err := x509svid.Parse(tc.GetCertificateChain().GetInlineBytes(), tc.GetPrivateKey().GetInlineBytes())
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", s.GetName(), err)
	}
	return svid, nil
}

// Bundles decodes a validation_context secret into trust bundles: one per
// trust domain of Envoy's SPIFFE validator config, or, for a plain
// trusted_ca, one for td.
func Bundles(s *tlsv3.Secret, td spiffeid.TrustDomain) ([]*x509bundle.Bundle, error) {
	vc := s.GetValidationContext()
	if vc == nil {
		return nil, fmt.Errorf("secret %q is not a validation_context", s.GetName())
	}
	cv := vc.GetCustomValidatorConfig()
	if cv == nil {
		b, err := x509bundle.Parse(td, vc.GetTrustedCa().GetInlineBytes())
		if err != nil {
			return nil, fmt.Errorf("secret %q: %w", s.GetName(), err)
		}
		return []*x509bundle.Bundle{b}, nil
	}
	var cfg tlsv3.SPIFFECertValidatorConfig
	if err := cv.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		return nil, fmt.Errorf("secret %q: %s: %w", s.GetName(), cv.GetName(), err)
	}
	var out []*x509bundle.Bundle
	for _, d := range cfg.GetTrustDomains() {
		btd, err := spiffeid.TrustDomainFromString(d.GetName())
		if err != nil {
			return nil, fmt.Errorf("secret %q: trust domain %q: %w", s.GetName(), d.GetName(), err)
		}
		b, err := x509bundle.Parse(btd, d.GetTrustBundle().GetInlineBytes())
		if err != nil {
			return nil, fmt.Errorf("secret %q: trust domain %s: %w", s.GetName(), btd, err)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("secret " + s.GetName() + ": SPIFFE validator without trust domains")
	}
	return out, nil
}
