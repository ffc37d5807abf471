package translate

import (
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/model"
)

// certSource is a certificate (and key) or a trust bundle: files, an SDS
// secret, or ACM ARNs.
type certSource struct {
	chain, key string // files
	sds        string
	acm        []string
}

func (c certSource) set() bool { return c.chain != "" || c.sds != "" || len(c.acm) > 0 }

// listenerTLS is the server side of a virtual node or gateway listener.
type listenerTLS struct {
	mode  string
	cert  certSource
	trust certSource // unset: no client certificate required
	sans  []string
}

// clientTLS is a client policy.
type clientTLS struct {
	enforce bool
	ports   []int64
	cert    certSource
	trust   certSource
	sans    []string
}

func sansOf(s *appmesh.SubjectAlternativeNames) []string {
	if s == nil || s.Match == nil {
		return nil
	}
	return s.Match.Exact
}

func listenerTLSOf(t *appmesh.ListenerTLS) *listenerTLS {
	if t == nil {
		return nil
	}
	out := &listenerTLS{mode: t.Mode}
	if c := t.Certificate; c != nil {
		switch {
		case c.File != nil:
			out.cert = certSource{chain: c.File.CertificateChain, key: c.File.PrivateKey}
		case c.SDS != nil:
			out.cert = certSource{sds: c.SDS.SecretName}
		case c.ACM != nil:
			out.cert = certSource{acm: []string{c.ACM.CertificateARN}}
		}
	}
	if v := t.Validation; v != nil && v.Trust != nil {
		switch {
		case v.Trust.File != nil:
			out.trust = certSource{chain: v.Trust.File.CertificateChain}
		case v.Trust.SDS != nil:
			out.trust = certSource{sds: v.Trust.SDS.SecretName}
		}
		out.sans = sansOf(v.SubjectAlternativeNames)
	}
	return out
}

func clientTLSOf(t *appmesh.ClientPolicyTLS) *clientTLS {
	if t == nil {
		return nil
	}
	out := &clientTLS{enforce: t.Enforce == nil || *t.Enforce, ports: t.Ports}
	if c := t.Certificate; c != nil {
		switch {
		case c.File != nil:
			out.cert = certSource{chain: c.File.CertificateChain, key: c.File.PrivateKey}
		case c.SDS != nil:
			out.cert = certSource{sds: c.SDS.SecretName}
		}
	}
	if v := t.Validation; v != nil && v.Trust != nil {
		switch {
		case v.Trust.File != nil:
			out.trust = certSource{chain: v.Trust.File.CertificateChain}
		case v.Trust.SDS != nil:
			out.trust = certSource{sds: v.Trust.SDS.SecretName}
		case v.Trust.ACM != nil:
			out.trust = certSource{acm: v.Trust.ACM.CertificateAuthorityARNs}
		}
		out.sans = sansOf(v.SubjectAlternativeNames)
	}
	return out
}

// vnPolicy returns the client policy for each backend: its own, else the
// node's backend defaults.
func (b *builder) vnPolicy(vn *model.VirtualNode) func(string) *clientTLS {
	var def *clientTLS
	if d := vn.Spec.BackendDefaults; d != nil && d.ClientPolicy != nil {
		def = clientTLSOf(d.ClientPolicy.TLS)
	}
	own := map[string]*clientTLS{}
	for _, be := range vn.Spec.Backends {
		if v := be.VirtualService; v != nil && v.ClientPolicy != nil && v.ClientPolicy.TLS != nil {
			own[v.VirtualServiceName] = clientTLSOf(v.ClientPolicy.TLS)
		}
	}
	return func(vs string) *clientTLS {
		if p, ok := own[vs]; ok {
			return p
		}
		return def
	}
}

func sdsConfig(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: &corev3.ConfigSource{
		ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
			ApiType: corev3.ApiConfigSource_GRPC, TransportApiVersion: corev3.ApiVersion_V3,
			GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: SDSCluster}}}},
		}},
	}}
}

func file(path string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: path}}
}

// sanMatchers matches SPIFFE IDs and other URIs as URI SANs, the rest as DNS SANs.
func sanMatchers(sans []string) []*tlsv3.SubjectAltNameMatcher {
	var out []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		t := tlsv3.SubjectAltNameMatcher_DNS
		if strings.Contains(s, "://") {
			t = tlsv3.SubjectAltNameMatcher_URI
		}
		out = append(out, &tlsv3.SubjectAltNameMatcher{SanType: t, Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}})
	}
	return out
}

// commonTLS builds the certificate and validation parts of a TLS context.
func (b *builder) commonTLS(cert, trust certSource, sans []string, what string) *tlsv3.CommonTlsContext {
	ctx := &tlsv3.CommonTlsContext{}
	switch {
	case cert.sds != "":
		ctx.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsConfig(cert.sds)}
	case cert.chain != "":
		ctx.TlsCertificates = []*tlsv3.TlsCertificate{{CertificateChain: file(cert.chain), PrivateKey: file(cert.key)}}
	case len(cert.acm) > 0:
		// ACM exports need AWS; ask the local SDS provider for the ARN.
		b.warn("%s: ACM certificate %s is requested from the local SDS provider under its ARN", what, cert.acm[0])
		ctx.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsConfig(cert.acm[0])}
	}
	if !trust.set() {
		return ctx
	}
	vc := &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(sans)}
	switch {
	case trust.sds != "":
		ctx.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: vc, ValidationContextSdsSecretConfig: sdsConfig(trust.sds)}}
		return ctx
	case trust.chain != "":
		vc.TrustedCa = file(trust.chain)
	case len(trust.acm) > 0:
		b.warn("%s: ACM Private CA %s is requested from the local SDS provider under its ARN", what, trust.acm[0])
		ctx.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext: vc, ValidationContextSdsSecretConfig: sdsConfig(trust.acm[0])}}
		return ctx
	}
	ctx.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	return ctx
}

func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

// serverChains returns the filter chains for one listener port: plaintext,
// TLS (STRICT), or both selected by the TLS inspector (PERMISSIVE).
func (b *builder) serverChains(name string, match *listenerv3.FilterChainMatch, filter *listenerv3.Filter, t *listenerTLS) (chains []*listenerv3.FilterChain, needInspector bool) {
	plain := &listenerv3.FilterChain{Name: name, FilterChainMatch: match, Filters: []*listenerv3.Filter{filter}}
	if t == nil || t.mode == "DISABLED" || !t.cert.set() {
		return []*listenerv3.FilterChain{plain}, false
	}
	dtc := &tlsv3.DownstreamTlsContext{CommonTlsContext: b.commonTLS(t.cert, t.trust, t.sans, "listener "+name)}
	if t.trust.set() {
		dtc.RequireClientCertificate = wrapperspb.Bool(true)
	}
	tlsMatch := &listenerv3.FilterChainMatch{DestinationPort: match.GetDestinationPort(), TransportProtocol: "tls"}
	secure := &listenerv3.FilterChain{Name: name + "_tls", FilterChainMatch: tlsMatch, Filters: []*listenerv3.Filter{filter}, TransportSocket: tlsSocket(dtc)}
	if t.mode == "PERMISSIVE" {
		return []*listenerv3.FilterChain{secure, plain}, true
	}
	return []*listenerv3.FilterChain{secure}, true
}

// upstreamTLS applies App Mesh's rules (§7.4): a client policy that
// enforces TLS on the target port wins; otherwise the server decides, and a
// STRICT or PERMISSIVE server listener gets TLS without validation.
func (b *builder) upstreamTLS(up *upstream, l *appmesh.Listener) *corev3.TransportSocket {
	var server *listenerTLS
	if l != nil {
		server = listenerTLSOf(l.TLS)
	}
	p := up.policy
	if p != nil && p.enforce && (len(p.ports) == 0 || slices.Contains(p.ports, up.port.Port)) {
		sans := p.sans
		if len(sans) == 0 {
			sans = discoveryNames(up.vn)
		}
		if b.flavor == GRPC {
			return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: providerTLS(p.cert.set(), sans)})
		}
		return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: b.commonTLS(p.cert, p.trust, sans, "cluster "+up.name)})
	}
	if server != nil && server.mode != "DISABLED" && server.mode != "" {
		if b.flavor == GRPC {
			b.warn("cluster %s: virtual node %q listens with TLS and no client policy applies; gRPC cannot skip validation, so the server is validated against the %q certificate provider's ROOTCA", up.name, up.vn.Name, CertificateProvider)
			return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: providerTLS(false, nil)})
		}
		return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{}})
	}
	return nil
}

// discoveryNames is what a server's certificate must carry when the client
// policy names no SANs: its DNS hostname or Cloud Map service.namespace.
func discoveryNames(vn *model.VirtualNode) []string {
	sd := vn.Spec.ServiceDiscovery
	switch {
	case sd == nil:
	case sd.DNS != nil:
		return []string{sd.DNS.Hostname}
	case sd.AWSCloudMap != nil:
		return []string{sd.AWSCloudMap.ServiceName + "." + sd.AWSCloudMap.NamespaceName}
	}
	return nil
}

// providerTLS is TLS for proxyless gRPC: certificate-provider instances
// (grpc-go rejects SDS), SANs in both the typed and the deprecated field.
func providerTLS(withCert bool, sans []string) *tlsv3.CommonTlsContext {
	ctx := &tlsv3.CommonTlsContext{}
	if withCert {
		ctx.TlsCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: CertificateProvider, CertificateName: "default"}
	}
	vc := &tlsv3.CertificateValidationContext{
		CaCertificateProviderInstance: &tlsv3.CertificateProviderPluginInstance{InstanceName: CertificateProvider, CertificateName: "ROOTCA"},
		MatchTypedSubjectAltNames:     sanMatchers(sans),
	}
	for _, s := range sans {
		vc.MatchSubjectAltNames = append(vc.MatchSubjectAltNames, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}) //nolint:staticcheck // grpc-go reads only this field
	}
	ctx.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
	return ctx
}
