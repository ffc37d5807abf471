package sds

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"google.golang.org/protobuf/types/known/anypb"
)

// SPIFFEValidatorName is Envoy's SPIFFE certificate validator extension.
const SPIFFEValidatorName = "envoy.tls.cert_validator.spiffe"

func inline(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}

func tlsSecret(name string, certPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inline(certPEM),
			PrivateKey:       inline(keyPEM),
		}},
	}
}

// trustView is a rendered, immutable view of the bundles meshd serves: its
// own trust domain's and the federated ones.
type trustView struct {
	own       *x509bundle.Bundle
	ownPEM    []byte
	federated []tdPEM // sorted by trust domain name
	version   string
	anys      sync.Map // anyKey -> *anypb.Any
}

type tdPEM struct {
	name string
	pem  []byte
}

type anyKey struct {
	name   string
	spiffe bool
}

func newTrustView(own *x509bundle.Bundle, fed []*x509bundle.Bundle) (*trustView, error) {
	ownPEM, err := own.Marshal()
	if err != nil {
		return nil, err
	}
	v := &trustView{own: own, ownPEM: ownPEM}
	h := sha256.New()
	h.Write(ownPEM)
	for _, b := range fed {
		p, err := b.Marshal()
		if err != nil {
			return nil, err
		}
		v.federated = append(v.federated, tdPEM{name: b.TrustDomain().Name(), pem: p})
	}
	sort.Slice(v.federated, func(i, j int) bool { return v.federated[i].name < v.federated[j].name })
	for _, f := range v.federated {
		h.Write([]byte(f.name))
		h.Write(f.pem)
	}
	v.version = "bundle:" + hex.EncodeToString(h.Sum(nil)[:8])
	return v, nil
}

// bundlePEM returns the PEM for a trust domain name (own or federated).
func (v *trustView) bundlePEM(td string) ([]byte, bool) {
	if td == v.own.TrustDomain().Name() {
		return v.ownPEM, true
	}
	for _, f := range v.federated {
		if f.name == td {
			return f.pem, true
		}
	}
	return nil, false
}

// validationSecret renders a ValidationContext secret for the given trust
// domains: Envoy's SPIFFE validator (one entry per trust domain) or, for old
// Envoys and when configured, a plain trusted_ca.
func (v *trustView) validationSecret(name string, tds []string, spiffe bool) (*tlsv3.Secret, error) {
	vc := &tlsv3.CertificateValidationContext{}
	if spiffe {
		cfg := &tlsv3.SPIFFECertValidatorConfig{}
		for _, td := range tds {
			p, _ := v.bundlePEM(td)
			cfg.TrustDomains = append(cfg.TrustDomains, &tlsv3.SPIFFECertValidatorConfig_TrustDomain{Name: td, TrustBundle: inline(p)})
		}
		tc, err := anypb.New(cfg)
		if err != nil {
			return nil, err
		}
		vc.CustomValidatorConfig = &corev3.TypedExtensionConfig{Name: SPIFFEValidatorName, TypedConfig: tc}
	} else {
		var all []byte
		for _, td := range tds {
			p, _ := v.bundlePEM(td)
			all = append(all, p...)
		}
		vc.TrustedCa = inline(all)
	}
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: vc}}, nil
}

// validationAny returns the rendered secret, cached per view.
func (v *trustView) validationAny(name string, tds []string, spiffe bool) (*anypb.Any, error) {
	k := anyKey{name: name, spiffe: spiffe}
	if a, ok := v.anys.Load(k); ok {
		return a.(*anypb.Any), nil
	}
	s, err := v.validationSecret(name, tds, spiffe)
	if err != nil {
		return nil, err
	}
	a, err := anypb.New(s)
	if err != nil {
		return nil, err
	}
	v.anys.Store(k, a)
	return a, nil
}
