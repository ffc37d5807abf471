package translate

import (
	"fmt"
	"strings"
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// tlsMesh has servers with every kind of listener TLS and clients with
// every kind of client policy (§7.3, §7.4).
const tlsMesh = `meshName: m
spec: {}
---
meshName: m
virtualNodeName: strict
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
    tls:
      mode: STRICT
      certificate: {file: {certificateChain: /c/strict.pem, privateKey: /c/strict.key}}
  serviceDiscovery: {dns: {hostname: strict.m.local}}
---
meshName: m
virtualNodeName: permissive
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
    tls:
      mode: PERMISSIVE
      certificate: {sds: {secretName: permissive-cert}}
  serviceDiscovery: {dns: {hostname: permissive.m.local}}
---
meshName: m
virtualNodeName: disabled
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
    tls:
      mode: DISABLED
      certificate: {file: {certificateChain: /c/d.pem, privateKey: /c/d.key}}
  serviceDiscovery: {dns: {hostname: disabled.m.local}}
---
meshName: m
virtualNodeName: plain
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
  serviceDiscovery: {dns: {hostname: plain.m.local}}
---
meshName: m
virtualNodeName: cloudmap
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
    tls:
      mode: STRICT
      certificate: {acm: {certificateArn: "arn:aws:acm:us-west-2:111122223333:certificate/abc"}}
      validation:
        trust: {file: {certificateChain: /c/clients-ca.pem}}
        subjectAlternativeNames: {match: {exact: [client.m.local]}}
  serviceDiscovery: {awsCloudMap: {namespaceName: m.local, serviceName: cloudmap}}
---
meshName: m
virtualServiceName: strict.m.local
spec: {provider: {virtualNode: {virtualNodeName: strict}}}
---
meshName: m
virtualServiceName: permissive.m.local
spec: {provider: {virtualNode: {virtualNodeName: permissive}}}
---
meshName: m
virtualServiceName: disabled.m.local
spec: {provider: {virtualNode: {virtualNodeName: disabled}}}
---
meshName: m
virtualServiceName: plain.m.local
spec: {provider: {virtualNode: {virtualNodeName: plain}}}
---
meshName: m
virtualServiceName: cloudmap.m.local
spec: {provider: {virtualNode: {virtualNodeName: cloudmap}}}
---
meshName: m
virtualNodeName: no-policy
spec:
  backends: &all
  - virtualService: {virtualServiceName: strict.m.local}
  - virtualService: {virtualServiceName: permissive.m.local}
  - virtualService: {virtualServiceName: disabled.m.local}
  - virtualService: {virtualServiceName: plain.m.local}
  - virtualService: {virtualServiceName: cloudmap.m.local}
---
meshName: m
virtualNodeName: enforced
spec:
  backendDefaults:
    clientPolicy:
      tls:
        certificate: {file: {certificateChain: /c/client.pem, privateKey: /c/client.key}}
        validation: {trust: {file: {certificateChain: /c/ca.pem}}}
  backends: *all
---
meshName: m
virtualNodeName: other-port
spec:
  backendDefaults:
    clientPolicy:
      tls:
        ports: [9443]
        validation: {trust: {file: {certificateChain: /c/ca.pem}}}
  backends: *all
---
meshName: m
virtualNodeName: not-enforced
spec:
  backendDefaults:
    clientPolicy:
      tls:
        enforce: false
        validation: {trust: {file: {certificateChain: /c/ca.pem}}}
  backends: *all
---
meshName: m
virtualNodeName: per-backend
spec:
  backendDefaults:
    clientPolicy:
      tls:
        ports: [8080]
        validation:
          trust: {acm: {certificateAuthorityArns: ["arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/ca"]}}
  backends:
  - virtualService:
      virtualServiceName: strict.m.local
      clientPolicy:
        tls:
          certificate: {sds: {secretName: "spiffe://m/client"}}
          validation:
            trust: {sds: {secretName: "spiffe://m"}}
            subjectAlternativeNames: {match: {exact: ["spiffe://m/strict", strict.m.local]}}
  - virtualService: {virtualServiceName: plain.m.local}
`

// tlsSummary describes a cluster's upstream TLS: "none", "tls" (no
// validation, no certificate) or the validation details.
func tlsSummary(t *testing.T, c *tlsv3.UpstreamTlsContext) string {
	t.Helper()
	if c == nil {
		return "none"
	}
	ctx := c.GetCommonTlsContext()
	var parts []string
	for _, s := range ctx.GetTlsCertificateSdsSecretConfigs() {
		parts = append(parts, "cert=sds:"+s.Name)
	}
	for _, f := range ctx.GetTlsCertificates() {
		parts = append(parts, "cert=file:"+f.GetCertificateChain().GetFilename())
	}
	if p := ctx.GetTlsCertificateProviderInstance(); p != nil {
		parts = append(parts, "cert=provider:"+p.InstanceName+"/"+p.CertificateName)
	}
	var vc *tlsv3.CertificateValidationContext
	switch {
	case ctx.GetCombinedValidationContext() != nil:
		cv := ctx.GetCombinedValidationContext()
		parts = append(parts, "trust=sds:"+cv.GetValidationContextSdsSecretConfig().GetName())
		vc = cv.DefaultValidationContext
	case ctx.GetValidationContext() != nil:
		vc = ctx.GetValidationContext()
		if f := vc.GetTrustedCa().GetFilename(); f != "" {
			parts = append(parts, "trust=file:"+f)
		}
		if p := vc.GetCaCertificateProviderInstance(); p != nil {
			parts = append(parts, "trust=provider:"+p.InstanceName+"/"+p.CertificateName)
		}
	}
	if vc != nil {
		parts = append(parts, "sans="+strings.Join(sanList(vc.MatchTypedSubjectAltNames), ","))
		var legacy []string
		for _, m := range vc.MatchSubjectAltNames { //nolint:staticcheck // grpc-go reads it
			legacy = append(legacy, m.GetExact())
		}
		if len(legacy) > 0 {
			parts = append(parts, "legacy-sans="+strings.Join(legacy, ","))
		}
	}
	if len(parts) == 0 {
		return "tls"
	}
	return strings.Join(parts, " ")
}

// TestClientTLS checks §7.4: an enforced client policy whose ports match
// the target port wins (its validation context, with its SANs, or the
// target's service-discovery name when it has none, §7.3); otherwise the
// server decides: STRICT or PERMISSIVE → TLS without validation,
// DISABLED or no TLS → plaintext.
func TestClientTLS(t *testing.T) {
	tr := New(buildYAML(t, tlsMesh), Options{})
	const validated = "cert=file:/c/client.pem trust=file:/c/ca.pem sans="
	cases := []struct {
		client, server, want string
	}{
		{"no-policy", "strict", "tls"},
		{"no-policy", "permissive", "tls"},
		{"no-policy", "disabled", "none"},
		{"no-policy", "plain", "none"},
		{"no-policy", "cloudmap", "tls"},
		// Enforced on every port: the policy's validation context even
		// toward plaintext servers; no SANs → the target's DNS hostname or
		// Cloud Map service.namespace.
		{"enforced", "strict", validated + "DNS:strict.m.local"},
		{"enforced", "permissive", validated + "DNS:permissive.m.local"},
		{"enforced", "disabled", validated + "DNS:disabled.m.local"},
		{"enforced", "plain", validated + "DNS:plain.m.local"},
		{"enforced", "cloudmap", validated + "DNS:cloudmap.m.local"},
		// The policy's ports do not match: the server decides.
		{"other-port", "strict", "tls"},
		{"other-port", "permissive", "tls"},
		{"other-port", "disabled", "none"},
		{"other-port", "plain", "none"},
		// Not enforced: the server decides.
		{"not-enforced", "strict", "tls"},
		{"not-enforced", "plain", "none"},
		// A backend's own policy replaces the defaults; SANs, URI and DNS;
		// SDS certificate and trust.
		{"per-backend", "strict", "cert=sds:spiffe://m/client trust=sds:spiffe://m sans=URI:spiffe://m/strict,DNS:strict.m.local"},
		// Defaults with ACM trust (asked of the local SDS provider by ARN).
		{"per-backend", "plain", "trust=sds:arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/ca sans=DNS:plain.m.local"},
	}
	for _, c := range cases {
		r := translateNode(t, tr, vn("m", c.client), Envoy)
		cl := findCluster(t, r, fmt.Sprintf("cds_egress_m_%s_http_8080", c.server))
		if got := tlsSummary(t, upstreamTLS(t, cl)); got != c.want {
			t.Errorf("%s → %s: %s, want %s", c.client, c.server, got, c.want)
		}
	}
	r := translateNode(t, tr, vn("m", "per-backend"), Envoy)
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "ACM Private CA") {
		t.Errorf("ACM trust without a warning: %q", r.Warnings)
	}
}

// TestClientTLSGRPC: gRPC clients get certificate provider instances only
// (notes §4.3: grpc-go rejects SDS and files), SANs in both SAN fields
// (grpc-go reads only the deprecated one), and a TLS server without a
// matching policy is validated against the provider's root CA (gRPC cannot
// skip validation) with a warning.
func TestClientTLSGRPC(t *testing.T) {
	tr := New(buildYAML(t, tlsMesh), Options{})
	const provider = "trust=provider:meshd/ROOTCA"
	cases := []struct {
		client, server, want string
	}{
		{"no-policy", "strict", provider + " sans="},
		{"no-policy", "plain", "none"},
		{"no-policy", "disabled", "none"},
		{"enforced", "plain", "cert=provider:meshd/default " + provider + " sans=DNS:plain.m.local legacy-sans=plain.m.local"},
		{"enforced", "cloudmap", "cert=provider:meshd/default " + provider + " sans=DNS:cloudmap.m.local legacy-sans=cloudmap.m.local"},
		{"other-port", "plain", "none"},
		{"per-backend", "strict", "cert=provider:meshd/default " + provider + " sans=URI:spiffe://m/strict,DNS:strict.m.local legacy-sans=spiffe://m/strict,strict.m.local"},
	}
	for _, c := range cases {
		r := translateNode(t, tr, vn("m", c.client), GRPC)
		cl := findCluster(t, r, fmt.Sprintf("cds_egress_m_%s_http_8080", c.server))
		if got := tlsSummary(t, upstreamTLS(t, cl)); got != c.want {
			t.Errorf("%s → %s: %s, want %s", c.client, c.server, got, c.want)
		}
		for _, err := range grpcLint(t, r) {
			t.Errorf("%s: %v", c.client, err)
		}
	}
	r := translateNode(t, tr, vn("m", "no-policy"), GRPC)
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "ROOTCA") {
		t.Errorf("no warning about validating a TLS server without a policy: %q", r.Warnings)
	}
}

// TestServerTLS checks listener TLS termination (§7.4, §7.7): STRICT is a
// TLS filter chain only, PERMISSIVE a TLS chain and a plaintext one picked
// by the TLS inspector, DISABLED plaintext; a validation context requires
// client certificates (mTLS) and checks the SANs it names.
func TestServerTLS(t *testing.T) {
	tr := New(buildYAML(t, tlsMesh), Options{})
	gw := New(scenario(t, gatewayDir), Options{})
	cases := []struct {
		tr     *Translator
		node   string
		mesh   string
		chains string // name[+tls-summary] ...
		mtls   bool
		sans   string
	}{
		{tr, "strict", "m", "ingress_8080_tls[cert=file:/c/strict.pem]", false, ""},
		{tr, "permissive", "m", "ingress_8080_tls[cert=sds:permissive-cert] ingress_8080", false, ""},
		{tr, "disabled", "m", "ingress_8080", false, ""},
		{tr, "plain", "m", "ingress_8080", false, ""},
		{tr, "cloudmap", "m", "ingress_8080_tls[cert=sds:arn:aws:acm:us-west-2:111122223333:certificate/abc]", true, "DNS:client.m.local"},
		{gw, "serviceA", "gw", "ingress_8080_tls[cert=sds:spiffe://gw.local/serviceA]", true, "URI:spiffe://gw.local/ingress"},
	}
	for _, c := range cases {
		r := translateNode(t, c.tr, vn(c.mesh, c.node), Envoy)
		ln := findListener(t, r, "lds_ingress_0.0.0.0_15000")
		var got []string
		inspector := false
		for _, f := range ln.ListenerFilters {
			inspector = inspector || f.Name == "envoy.filters.listener.tls_inspector"
		}
		for _, fc := range ln.FilterChains {
			d := downstreamTLS(t, fc)
			if d == nil {
				if fc.GetFilterChainMatch().GetTransportProtocol() != "" {
					t.Errorf("%s: plaintext chain %s matches transport %q", c.node, fc.Name, fc.FilterChainMatch.TransportProtocol)
				}
				got = append(got, fc.Name)
				continue
			}
			if fc.GetFilterChainMatch().GetTransportProtocol() != "tls" || fc.GetFilterChainMatch().GetDestinationPort().GetValue() != 8080 {
				t.Errorf("%s: TLS chain %s match %v", c.node, fc.Name, fc.FilterChainMatch)
			}
			ctx := d.GetCommonTlsContext()
			var cert string
			for _, s := range ctx.GetTlsCertificateSdsSecretConfigs() {
				cert = "cert=sds:" + s.Name
			}
			for _, f := range ctx.GetTlsCertificates() {
				cert = "cert=file:" + f.GetCertificateChain().GetFilename()
			}
			got = append(got, fc.Name+"["+cert+"]")
			if d.GetRequireClientCertificate().GetValue() != c.mtls {
				t.Errorf("%s: require_client_certificate %v, want %v", c.node, d.GetRequireClientCertificate(), c.mtls)
			}
			var vc *tlsv3.CertificateValidationContext
			if cv := ctx.GetCombinedValidationContext(); cv != nil {
				vc = cv.DefaultValidationContext
			} else {
				vc = ctx.GetValidationContext()
			}
			if s := strings.Join(sanList(vc.GetMatchTypedSubjectAltNames()), ","); s != c.sans {
				t.Errorf("%s: client SANs %q, want %q", c.node, s, c.sans)
			}
			if c.mtls && vc == nil {
				t.Errorf("%s: mTLS without a validation context", c.node)
			}
		}
		if g := strings.Join(got, " "); g != c.chains {
			t.Errorf("%s: chains %s, want %s", c.node, g, c.chains)
		}
		if wantInspector := strings.Contains(c.chains, "_tls"); inspector != wantInspector {
			t.Errorf("%s: tls_inspector %v, want %v", c.node, inspector, wantInspector)
		}
	}
}

// TestGatewayClientPolicy: the gateway's backend defaults apply to the
// targets whose port they name (serviceA 8080: mTLS with SANs), not to
// others (serviceB 9080: plaintext, as its server has no TLS).
func TestGatewayClientPolicy(t *testing.T) {
	r := translateNode(t, New(scenario(t, gatewayDir), Options{}), vg("gw", "ingress"), Envoy)
	for _, c := range []struct{ cluster, want string }{
		{"cds_egress_gw_serviceA_http_8080", "cert=sds:spiffe://gw.local/ingress trust=sds:spiffe://gw.local sans=URI:spiffe://gw.local/serviceA"},
		{"cds_egress_gw_serviceB_http_9080", "none"},
	} {
		if got := tlsSummary(t, upstreamTLS(t, findCluster(t, r, c.cluster))); got != c.want {
			t.Errorf("%s: %s, want %s", c.cluster, got, c.want)
		}
	}
}
