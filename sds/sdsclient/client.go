// Package sdsclient is a small SDS client speaking like Envoy does: used by
// `meshd secrets`, the benchmarks and the tests.
package sdsclient

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Dial opens a gRPC client connection to an SDS Unix socket.
func Dial(socket string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	target := "unix://" + socket
	if !filepath.IsAbs(socket) {
		target = "unix:" + socket // gRPC's form for relative paths
	}
	return grpc.NewClient(target, opts...)
}

// Node returns an Envoy node; version like "1.34.2" ("" omits the build
// version, as some clients do).
func Node(id, version string) *corev3.Node {
	n := &corev3.Node{Id: id, Cluster: "meshd-client", UserAgentName: "envoy"}
	if version != "" {
		parts := strings.SplitN(version, ".", 3)
		var nums [3]uint32
		for i := range parts {
			v, _ := strconv.ParseUint(parts[i], 10, 32)
			nums[i] = uint32(v)
		}
		n.UserAgentVersionType = &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: &corev3.BuildVersion{
			Version: &typev3.SemanticVersion{MajorNumber: nums[0], MinorNumber: nums[1], Patch: nums[2]},
		}}
	}
	return n
}

// Request builds a first SDS request for names.
func Request(node *corev3.Node, names ...string) *discoveryv3.DiscoveryRequest {
	return &discoveryv3.DiscoveryRequest{Node: node, ResourceNames: names, TypeUrl: resourcev3.SecretType}
}

// ACK builds the request Envoy sends to accept resp.
func ACK(resp *discoveryv3.DiscoveryResponse, names ...string) *discoveryv3.DiscoveryRequest {
	return &discoveryv3.DiscoveryRequest{VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: names, TypeUrl: resourcev3.SecretType}
}

// Secrets decodes a response's resources.
func Secrets(resp *discoveryv3.DiscoveryResponse) ([]*tlsv3.Secret, error) {
	out := make([]*tlsv3.Secret, 0, len(resp.GetResources()))
	for _, r := range resp.GetResources() {
		s, err := Secret(r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// Secret decodes one resource.
func Secret(r *anypb.Any) (*tlsv3.Secret, error) {
	var s tlsv3.Secret
	if err := r.UnmarshalTo(&s); err != nil {
		return nil, fmt.Errorf("decode secret: %w", err)
	}
	return &s, nil
}

// Describe summarises a secret in one line.
func Describe(s *tlsv3.Secret) string {
	switch t := s.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		chain := parseCerts(t.TlsCertificate.GetCertificateChain().GetInlineBytes())
		if len(chain) == 0 {
			return fmt.Sprintf("%s: tls_certificate (unparseable chain)", s.GetName())
		}
		leaf := chain[0]
		var uris []string
		for _, u := range leaf.URIs {
			uris = append(uris, u.String())
		}
		return fmt.Sprintf("%s: tls_certificate %s dns=%v serial=%s not_after=%s chain=%d",
			s.GetName(), strings.Join(uris, ","), leaf.DNSNames, leaf.SerialNumber.Text(16), leaf.NotAfter.UTC().Format("2006-01-02T15:04:05Z"), len(chain))
	case *tlsv3.Secret_ValidationContext:
		vc := t.ValidationContext
		if cv := vc.GetCustomValidatorConfig(); cv != nil {
			var cfg tlsv3.SPIFFECertValidatorConfig
			if err := cv.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
				return fmt.Sprintf("%s: validation_context %s (undecodable)", s.GetName(), cv.GetName())
			}
			var tds []string
			for _, td := range cfg.GetTrustDomains() {
				tds = append(tds, fmt.Sprintf("%s(%d roots)", td.GetName(), len(parseCerts(td.GetTrustBundle().GetInlineBytes()))))
			}
			return fmt.Sprintf("%s: validation_context %s %s", s.GetName(), cv.GetName(), strings.Join(tds, " "))
		}
		return fmt.Sprintf("%s: validation_context trusted_ca (%d roots)", s.GetName(), len(parseCerts(vc.GetTrustedCa().GetInlineBytes())))
	}
	return fmt.Sprintf("%s: %T", s.GetName(), s.GetType())
}

func parseCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}
