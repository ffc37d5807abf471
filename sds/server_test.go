package sds

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/sds/sdsclient"
)

const (
	serviceB = "spiffe://example.org/ns/apps/sa/serviceb"
	wait     = 5 * time.Second
	quiet    = 300 * time.Millisecond
)

func node(version string) *corev3.Node {
	return sdsclient.Node("mesh/apps/virtualNode/serviceB", version)
}

// TestStreamDefaultAndBundle: one stream, two names; the SVID parses with
// go-spiffe and verifies against the bundle served on the same stream.
func TestStreamDefaultAndBundle(t *testing.T) {
	ts := startServer(t, serverOpts{})
	st := ts.stream(t.Context())
	if err := st.Send(sdsclient.Request(node("1.34.0"), "default", "ROOTCA")); err != nil {
		t.Fatal(err)
	}
	resp := recv(t, st, wait)
	if resp.GetTypeUrl() != SecretType || resp.GetNonce() == "" || resp.GetVersionInfo() != "1" {
		t.Fatalf("response header: type=%q nonce=%q version=%q", resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
	}
	got := secretsByName(t, resp)
	if len(got) != 2 {
		t.Fatalf("want 2 secrets, got %v", slices.Collect(mapsKeys(got)))
	}
	svid := svidOf(t, got["default"])
	if svid.ID.String() != serviceB {
		t.Fatalf("SPIFFE ID %s", svid.ID)
	}
	if leaf := svid.Certificates[0]; !slices.Equal(leaf.DNSNames, []string{"serviceb.apps.local"}) {
		t.Fatalf("DNS SANs %v", leaf.DNSNames)
	}
	if !strings.Contains(string(got["default"].GetTlsCertificate().GetPrivateKey().GetInlineBytes()), "BEGIN PRIVATE KEY") {
		t.Fatal("private key is not PKCS#8 PEM")
	}
	bundle, spiffe := bundleOf(t, got["ROOTCA"], testTD)
	if !spiffe {
		t.Fatal("Envoy 1.34 should get the SPIFFE validator")
	}
	if !bundle.Equal(ts.ca.Bundle()) {
		t.Fatal("served bundle differs from the CA's")
	}
	id, _, err := x509svid.Verify(svid.Certificates, bundle)
	if err != nil || id.String() != serviceB {
		t.Fatalf("verify: %v %v", id, err)
	}
	if metric(t, ts.reg, "meshd_sds_streams_open") != 1 {
		t.Fatal("streams_open gauge")
	}
	if v := metric(t, ts.reg, "meshd_sds_svid_expiry_timestamp_seconds", "spiffe_id", serviceB); v != float64(svid.Certificates[0].NotAfter.Unix()) {
		t.Fatalf("expiry gauge %v", v)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestSecretNames covers every name form, one stream each (Envoy's common
// case), with and without the SPIFFE validator.
func TestSecretNames(t *testing.T) {
	other := spiffeid.RequireTrustDomainFromString("other.org")
	fedRoot := ca(t, other)
	ts := startServer(t, serverOpts{
		identities: selfIdentities() + fmt.Sprintf("- spiffeID: spiffe://%s/ns/apps/sa/second\n  secretNames: [arn:aws:appmesh:second]\n  selectors: [uid:%d]\n", testTD, os.Getuid()),
		federated:  []*x509bundle.Bundle{x509bundle.FromX509Authorities(other, []*x509.Certificate{fedRoot})},
	})
	tests := []struct {
		name    string
		version string
		wantID  string   // tls_certificate with this SPIFFE ID
		wantTDs []string // validation context with these trust domains
		spiffe  bool
		none    bool
	}{
		{name: "default", version: "1.34.0", wantID: serviceB},
		{name: serviceB, version: "1.34.0", wantID: serviceB},
		{name: "spiffe://example.org/ns/apps/sa/second", version: "1.34.0", wantID: "spiffe://example.org/ns/apps/sa/second"},
		{name: "arn:aws:appmesh:second", version: "1.34.0", wantID: "spiffe://example.org/ns/apps/sa/second"},
		{name: "ROOTCA", version: "1.34.0", wantTDs: []string{testTD}, spiffe: true},
		{name: "spiffe://example.org", version: "1.18.0", wantTDs: []string{testTD}, spiffe: true},
		{name: "spiffe://other.org", version: "1.30.0", wantTDs: []string{"other.org"}, spiffe: true},
		{name: "ALL", version: "1.30.0", wantTDs: []string{testTD, "other.org"}, spiffe: true},
		{name: "ALL", version: "1.17.0", none: true},
		{name: "ROOTCA", version: "1.17.0", wantTDs: []string{testTD}},
		{name: "spiffe://example.org/ns/apps/sa/notmine", version: "1.34.0", none: true},
		{name: "spiffe://unknown.org", version: "1.34.0", none: true},
	}
	for _, tc := range tests {
		t.Run(tc.name+"@"+tc.version, func(t *testing.T) {
			st := ts.stream(t.Context())
			if err := st.Send(sdsclient.Request(node(tc.version), tc.name)); err != nil {
				t.Fatal(err)
			}
			if tc.none {
				if resp, err := recvErr(st, quiet); err != errTimeout {
					t.Fatalf("want no response (stream kept open), got %v %v", resp, err)
				}
				return
			}
			got := secretsByName(t, recv(t, st, wait))
			s, ok := got[tc.name]
			if !ok || len(got) != 1 {
				t.Fatalf("want exactly %q, got %v", tc.name, slices.Collect(mapsKeys(got)))
			}
			if tc.wantID != "" {
				if id := svidOf(t, s).ID.String(); id != tc.wantID {
					t.Fatalf("ID %s, want %s", id, tc.wantID)
				}
				return
			}
			vc := s.GetValidationContext()
			if (vc.GetCustomValidatorConfig() != nil) != tc.spiffe {
				t.Fatalf("spiffe validator = %v, want %v", vc.GetCustomValidatorConfig() != nil, tc.spiffe)
			}
			for _, td := range tc.wantTDs {
				bundleOf(t, s, td)
			}
		})
	}
}

func ca(t *testing.T, td spiffeid.TrustDomain) *x509.Certificate {
	t.Helper()
	p := certs.Policy{TrustDomain: td, KeyType: certs.KeyECDSAP256, CATTL: time.Hour}
	s := &certs.State{}
	if _, err := p.Advance(s, time.Now()); err != nil {
		t.Fatal(err)
	}
	return s.Active().Cert
}

func TestUseSPIFFE(t *testing.T) {
	meta := func(k string, v *structpb.Value) *corev3.Node {
		n := node("1.30.0")
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{k: v}}
		return n
	}
	tests := []struct {
		name string
		mode ValidationMode
		node *corev3.Node
		want bool
	}{
		{"1.17 gets trusted_ca", ValidationAuto, node("1.17.4"), false},
		{"1.18 gets spiffe", ValidationAuto, node("1.18.0"), true},
		{"2.0 gets spiffe", ValidationAuto, node("2.0.0"), true},
		{"no version gets spiffe", ValidationAuto, node(""), true},
		{"no node gets spiffe", ValidationAuto, nil, true},
		{"metadata bool opts out", ValidationAuto, meta("disable_spiffe_cert_validation", structpb.NewBoolValue(true)), false},
		{"metadata string opts out", ValidationAuto, meta("disable_spiffe_cert_validation", structpb.NewStringValue("true")), false},
		{"metadata false keeps spiffe", ValidationAuto, meta("disable_spiffe_cert_validation", structpb.NewStringValue("false")), true},
		{"forced trusted-ca", ValidationTrustedCA, node("1.30.0"), false},
		{"forced spiffe", ValidationSPIFFE, node("1.17.0"), true},
	}
	for _, tc := range tests {
		if got := useSPIFFE(tc.mode, tc.node); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

// TestACKNACKNoResend: an ACK or a NACK gets no response; both are counted.
func TestACKNACKNoResend(t *testing.T) {
	ts := startServer(t, serverOpts{})
	st := ts.stream(t.Context())
	if err := st.Send(sdsclient.Request(node("1.34.0"), "default")); err != nil {
		t.Fatal(err)
	}
	resp := recv(t, st, wait)
	if err := st.Send(sdsclient.ACK(resp, "default")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "ACK counted", func() bool { return metric(t, ts.reg, "meshd_sds_acks_total") == 1 })
	nack := sdsclient.ACK(resp, "default")
	nack.VersionInfo = ""
	nack.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: "Unexpected SDS secrets length"}
	if err := st.Send(nack); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "NACK counted", func() bool { return metric(t, ts.reg, "meshd_sds_nacks_total") == 1 })
	if r, err := recvErr(st, quiet); err != errTimeout {
		t.Fatalf("ACK/NACK must not be answered; got %v %v", r, err)
	}
	if !strings.Contains(ts.log.String(), "Unexpected SDS secrets length") {
		t.Fatal("NACK error_detail not logged")
	}
	if metric(t, ts.reg, "meshd_sds_pushes_total") != 1 {
		t.Fatal("pushes")
	}
}

// TestSubscriptionChanges: adding a name sends only the new name; dropping
// and re-adding one sends it again; a stale nonce is ignored.
func TestSubscriptionChanges(t *testing.T) {
	ts := startServer(t, serverOpts{})
	st := ts.stream(t.Context())
	send := func(r *discoveryv3.DiscoveryRequest) {
		t.Helper()
		if err := st.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	send(sdsclient.Request(node("1.34.0"), "default"))
	r1 := recv(t, st, wait)
	send(sdsclient.ACK(r1, "default", "ROOTCA"))
	r2 := recv(t, st, wait)
	if got := secretsByName(t, r2); len(got) != 1 || got["ROOTCA"] == nil {
		t.Fatalf("want only the added ROOTCA, got %v", slices.Collect(mapsKeys(got)))
	}
	if r2.GetVersionInfo() != "2" || r2.GetNonce() == r1.GetNonce() {
		t.Fatalf("version %q nonce %q", r2.GetVersionInfo(), r2.GetNonce())
	}
	// A request carrying the old nonce crossed r2: ignored.
	stale := sdsclient.ACK(r1, "ROOTCA")
	send(stale)
	eventually(t, wait, "stale request counted", func() bool { return metric(t, ts.reg, "meshd_sds_stale_requests_total") == 1 })
	send(sdsclient.ACK(r2, "ROOTCA")) // drop default
	if r, err := recvErr(st, quiet); err != errTimeout {
		t.Fatalf("dropping a name needs no response; got %v %v", r, err)
	}
	send(sdsclient.ACK(r2, "ROOTCA", "default")) // re-add it
	r3 := recv(t, st, wait)
	if got := secretsByName(t, r3); len(got) != 1 || got["default"] == nil {
		t.Fatalf("want default resent, got %v", slices.Collect(mapsKeys(got)))
	}
}

// TestWildcard: an empty name list asks for everything the caller has.
func TestWildcard(t *testing.T) {
	ts := startServer(t, serverOpts{})
	st := ts.stream(t.Context())
	if err := st.Send(sdsclient.Request(node("1.34.0"))); err != nil {
		t.Fatal(err)
	}
	got := secretsByName(t, recv(t, st, wait))
	if len(got) != 2 || got[serviceB] == nil || got["spiffe://"+testTD] == nil {
		t.Fatalf("wildcard got %v", slices.Collect(mapsKeys(got)))
	}
}

// TestUnknownNameServedAfterReload: a name the caller may not have keeps the
// stream open and is sent once an identities reload grants it; a bad file
// is rejected and the last good one stays in force.
func TestUnknownNameServedAfterReload(t *testing.T) {
	ts := startServer(t, serverOpts{})
	const later = "spiffe://example.org/ns/apps/sa/later"
	st := ts.stream(t.Context())
	if err := st.Send(sdsclient.Request(node("1.34.0"), later)); err != nil {
		t.Fatal(err)
	}
	if r, err := recvErr(st, quiet); err != errTimeout {
		t.Fatalf("want stream kept open without response, got %v %v", r, err)
	}
	if metric(t, ts.reg, "meshd_sds_unknown_names_total") != 1 {
		t.Fatal("unknown name not counted")
	}
	// A bad file is rejected with the last good one kept.
	if err := os.WriteFile(ts.idsFile, []byte("- spiffeID: spiffe://example.org/x\n  selectors: [bogus:1]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "bad reload reported", func() bool {
		return metric(t, ts.reg, "meshd_sds_identities_last_reload_success") == 0 &&
			metric(t, ts.reg, "meshd_sds_identities_reloads_total", "result", "rejected") == 1
	})
	if !strings.Contains(ts.log.String(), `unknown selector kind`) {
		t.Fatalf("rejection not logged clearly:\n%s", ts.log)
	}
	st2 := ts.stream(t.Context())
	if err := st2.Send(sdsclient.Request(node("1.34.0"), "default")); err != nil {
		t.Fatal(err)
	}
	recv(t, st2, wait) // still served by the last good file
	// Now grant the name; the open stream receives it.
	ids := selfIdentities() + fmt.Sprintf("- spiffeID: %s\n  selectors: [uid:%d]\n", later, os.Getuid())
	if err := os.WriteFile(ts.idsFile, []byte(ids), 0o644); err != nil {
		t.Fatal(err)
	}
	got := secretsByName(t, recv(t, st, wait))
	if svidOf(t, got[later]).ID.String() != later {
		t.Fatal("wrong identity after reload")
	}
	if metric(t, ts.reg, "meshd_sds_identities_last_reload_success") != 1 {
		t.Fatal("reload success gauge")
	}
}

// TestPermissionDenied: a caller that matches no identity gets nothing.
func TestPermissionDenied(t *testing.T) {
	ts := startServer(t, serverOpts{identities: "- spiffeID: spiffe://example.org/someone\n  selectors: [uid:4242]\n"})
	st := ts.stream(t.Context())
	// The server may end the stream before the request is sent: Send then
	// returns io.EOF and the status comes from Recv (grpc-go's contract).
	if err := st.Send(sdsclient.Request(node("1.34.0"), "default", "ROOTCA")); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	_, err := recvErr(st, wait)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), fmt.Sprintf("uid=%d", os.Getuid())) {
		t.Fatalf("want PermissionDenied naming the caller, got %v", err)
	}
	_, err = ts.client().FetchSecrets(t.Context(), sdsclient.Request(node("1.34.0"), "ROOTCA"))
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("fetch: %v", err)
	}
	if metric(t, ts.reg, "meshd_sds_attestation_failures_total", "reason", "no_identity") != 2 {
		t.Fatal("attestation failures not counted")
	}
	if metric(t, ts.reg, "meshd_ca_svids_issued_total") != 0 {
		t.Fatal("an SVID was minted for an unauthorised caller")
	}
}

// TestExeSelector: the exe selector matches the test binary itself.
func TestExeSelector(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err = filepath.EvalSymlinks(exe)
	if err != nil {
		t.Fatal(err)
	}
	ids := fmt.Sprintf("- spiffeID: spiffe://example.org/byexe\n  selectors: [exe:%s, uid:%d]\n- spiffeID: spiffe://example.org/otherexe\n  selectors: [exe:/usr/bin/envoy]\n", exe, os.Getuid())
	ts := startServer(t, serverOpts{identities: ids})
	resp, err := ts.client().FetchSecrets(t.Context(), sdsclient.Request(node("1.34.0"), "default"))
	if err != nil {
		t.Fatal(err)
	}
	if id := svidOf(t, secretsByName(t, resp)["default"]).ID.String(); id != "spiffe://example.org/byexe" {
		t.Fatalf("got %s", id)
	}
	_, err = ts.client().FetchSecrets(t.Context(), sdsclient.Request(node("1.34.0"), "spiffe://example.org/otherexe"))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("another exe's identity: %v", err)
	}
}

func TestFetchSecrets(t *testing.T) {
	ts := startServer(t, serverOpts{})
	c := ts.client()
	resp, err := c.FetchSecrets(t.Context(), sdsclient.Request(node("1.34.0"), "default", "ROOTCA"))
	if err != nil {
		t.Fatal(err)
	}
	got := secretsByName(t, resp)
	bundle, _ := bundleOf(t, got["ROOTCA"], testTD)
	if _, _, err := x509svid.Verify(svidOf(t, got["default"]).Certificates, bundle); err != nil {
		t.Fatal(err)
	}
	_, err = c.FetchSecrets(t.Context(), sdsclient.Request(node("1.34.0"), "default", "nope"))
	if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown name: %v", err)
	}
	_, err = c.FetchSecrets(t.Context(), &discoveryv3.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad type: %v", err)
	}
	if metric(t, ts.reg, "meshd_sds_fetches_total", "code", "OK") != 1 || metric(t, ts.reg, "meshd_sds_fetches_total", "code", "NotFound") != 1 {
		t.Fatal("fetch metrics")
	}
}

func TestDeltaUnimplemented(t *testing.T) {
	ts := startServer(t, serverOpts{})
	st, err := ts.client().DeltaSecrets(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("got %v", err)
	}
}

// TestBadRequests: malformed and oversized requests end the stream with a
// clear status and are counted.
func TestBadRequests(t *testing.T) {
	ts := startServer(t, serverOpts{maxReq: 64 << 10})
	many := make([]string, maxNamesPerReq+1)
	for i := range many {
		many[i] = fmt.Sprintf("n%d", i)
	}
	tests := []struct {
		name string
		req  *discoveryv3.DiscoveryRequest
		code codes.Code
		msg  string
	}{
		{"unknown type url", &discoveryv3.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.listener.v3.Listener"}, codes.InvalidArgument, "unsupported type_url"},
		{"too many names", sdsclient.Request(node("1.34.0"), many...), codes.InvalidArgument, "resource names"},
		{"empty name", sdsclient.Request(node("1.34.0"), "default", ""), codes.InvalidArgument, "resource names"},
		{"oversized", sdsclient.Request(node("1.34.0"), strings.Repeat("x", 100<<10)), codes.ResourceExhausted, "larger than max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := ts.stream(t.Context())
			if err := st.Send(tc.req); err != nil {
				t.Fatal(err)
			}
			_, err := recvErr(st, wait)
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	if metric(t, ts.reg, "meshd_sds_bad_requests_total") != 3 {
		t.Fatalf("bad requests counted %v", metric(t, ts.reg, "meshd_sds_bad_requests_total"))
	}
	// The server is still healthy.
	st := ts.stream(t.Context())
	if err := st.Send(sdsclient.Request(node("1.34.0"), "default")); err != nil {
		t.Fatal(err)
	}
	recv(t, st, wait)
}

// TestConnectionLimit: connections over --max-conns-per-peer get a clear
// ResourceExhausted, and the slot frees when a connection closes.
func TestConnectionLimit(t *testing.T) {
	ts := startServer(t, serverOpts{limits: peer.Limits{MaxConns: 100, MaxConnsPerUID: 2}})
	var conns []interface{ Close() error }
	open := func() error {
		conn, err := sdsclient.Dial(ts.socket)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
		c := secretv3Client(conn)
		_, err = c.FetchSecrets(t.Context(), sdsclient.Request(node("1.34.0"), "ROOTCA"))
		return err
	}
	for i := range 2 {
		if err := open(); err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
	}
	err := open()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-conns-per-peer") {
		t.Fatalf("third connection: %v", err)
	}
	if metric(t, ts.reg, "meshd_sds_connections_rejected_total") != 1 {
		t.Fatal("rejection not counted")
	}
	conns[0].Close()
	conns[2].Close()
	eventually(t, wait, "slots freed", func() bool { return metric(t, ts.reg, "meshd_sds_connections_open") <= 1 })
	if err := open(); err != nil {
		t.Fatalf("after close: %v", err)
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestRotationPushed: an SVID renewed at half-life is pushed to every open
// stream that asked for it, and only to those.
func TestRotationPushed(t *testing.T) {
	ts := startServer(t, serverOpts{svidTTL: certs.MinSVIDTTL, caTTL: time.Hour})
	const n = 5
	var streams []sdsStream
	var first []*discoveryv3.DiscoveryResponse
	for range n {
		st := ts.stream(t.Context())
		if err := st.Send(sdsclient.Request(node("1.34.0"), "default")); err != nil {
			t.Fatal(err)
		}
		r := recv(t, st, wait)
		if err := st.Send(sdsclient.ACK(r, "default")); err != nil {
			t.Fatal(err)
		}
		streams, first = append(streams, st), append(first, r)
	}
	bundleStream := ts.stream(t.Context())
	if err := bundleStream.Send(sdsclient.Request(node("1.34.0"), "ROOTCA")); err != nil {
		t.Fatal(err)
	}
	rb := recv(t, bundleStream, wait)
	if err := bundleStream.Send(sdsclient.ACK(rb, "ROOTCA")); err != nil {
		t.Fatal(err)
	}
	serial0 := svidOf(t, secretsByName(t, first[0])["default"]).Certificates[0].SerialNumber
	for i, st := range streams {
		r := recv(t, st, 3*certs.MinSVIDTTL) // renewal at half-life ±10 %
		s := svidOf(t, secretsByName(t, r)["default"])
		if s.Certificates[0].SerialNumber.Cmp(serial0) == 0 {
			t.Fatalf("stream %d: pushed the same certificate", i)
		}
		if r.GetVersionInfo() != "2" {
			t.Fatalf("stream %d: version %q", i, r.GetVersionInfo())
		}
	}
	if r, err := recvErr(bundleStream, quiet); err != errTimeout {
		t.Fatalf("ROOTCA stream got a push for an unchanged bundle: %v %v", r, err)
	}
	if metric(t, ts.reg, "meshd_sds_svid_rotations_total") < 1 {
		t.Fatal("rotation not counted")
	}
}

// TestCARolloverPushed: `meshd ca rotate` (another process updating the
// state dir) publishes the next root to ROOTCA streams before it signs;
// once it signs, new SVIDs chain to it and old ones still verify.
func TestCARolloverPushed(t *testing.T) {
	ts := startServer(t, serverOpts{})
	st := ts.stream(t.Context())
	if err := st.Send(sdsclient.Request(node("1.34.0"), "ROOTCA", "default")); err != nil {
		t.Fatal(err)
	}
	r1 := recv(t, st, wait)
	if err := st.Send(sdsclient.ACK(r1, "ROOTCA", "default")); err != nil {
		t.Fatal(err)
	}
	old := svidOf(t, secretsByName(t, r1)["default"])
	rotate(t, ts.stateDir, time.Now().Add(time.Hour))
	r2 := recv(t, st, wait)
	got := secretsByName(t, r2)
	if len(got) != 1 || got["ROOTCA"] == nil {
		t.Fatalf("want only the new bundle, got %v", slices.Collect(mapsKeys(got)))
	}
	b2, _ := bundleOf(t, got["ROOTCA"], testTD)
	if len(b2.X509Authorities()) != 2 {
		t.Fatalf("bundle has %d roots, want 2", len(b2.X509Authorities()))
	}
	if err := st.Send(sdsclient.ACK(r2, "ROOTCA", "default")); err != nil {
		t.Fatal(err)
	}
	// Activate now: the signer changes; the old SVID still verifies against
	// the bundle, and a fresh SVID chains to the new root.
	rotate(t, ts.stateDir, time.Now())
	eventually(t, wait, "activation", func() bool {
		s := ts.ca.State()
		return s.Prepared() == nil && len(s.Authorities) == 2
	})
	fresh, err := ts.ca.Issue(spiffeid.RequireFromString(serviceB), nil)
	if err != nil {
		t.Fatal(err)
	}
	act := ts.ca.State().Active().Cert
	if err := fresh.Certificates[0].CheckSignatureFrom(act); err != nil {
		t.Fatalf("new SVID not signed by the new root: %v", err)
	}
	if _, _, err := x509svid.Verify(old.Certificates, ts.ca.Bundle()); err != nil {
		t.Fatalf("old SVID no longer verifies: %v", err)
	}
}

func rotate(t *testing.T, dir string, activateAt time.Time) {
	t.Helper()
	_, err := certs.Store{Dir: dir}.Update(func(s *certs.State) (*certs.State, bool, error) {
		p := certs.Policy{TrustDomain: spiffeid.RequireTrustDomainFromString(s.TrustDomain), KeyType: s.KeyType, CATTL: time.Duration(s.CATTL)}
		_, err := p.Rotate(s, time.Now(), activateAt)
		return s, true, err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestartKeepsTrust: a second server on the same state dir serves the
// same bundle, and replaces the stale socket the first one left.
func TestRestartKeepsTrust(t *testing.T) {
	ts := startServer(t, serverOpts{})
	first := ts.ca.Bundle()
	ts.stop()
	// Leave a stale socket behind, as a crash would.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ts.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(ts.socket); err != nil {
		t.Fatal("stale socket missing")
	}
	ts2 := startServer(t, serverOpts{stateDir: ts.stateDir, socket: ts.socket})
	if !ts2.ca.Bundle().Equal(first) {
		t.Fatal("restart changed the trust bundle")
	}
	resp, err := ts2.client().FetchSecrets(t.Context(), sdsclient.Request(node("1.34.0"), "default"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := x509svid.Verify(svidOf(t, secretsByName(t, resp)["default"]).Certificates, first); err != nil {
		t.Fatal(err)
	}
}

func TestSocketSetup(t *testing.T) {
	dir := shortTempDir(t)
	t.Run("created 0660 in a new 0750 directory", func(t *testing.T) {
		p := filepath.Join(dir, "new", "sds.sock")
		ln, err := ListenUnix(p, os.Getgid())
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		fi, _ := os.Stat(p)
		di, _ := os.Stat(filepath.Dir(p))
		if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
			t.Fatalf("socket mode %v", fi.Mode())
		}
		if di.Mode().Perm() != 0o750 {
			t.Fatalf("dir mode %v", di.Mode())
		}
	})
	t.Run("too long", func(t *testing.T) {
		_, err := ListenUnix("/tmp/"+strings.Repeat("a", 120)+".sock", -1)
		if err == nil || !strings.Contains(err.Error(), "107") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		p := filepath.Join(dir, "file.sock")
		os.WriteFile(p, []byte("x"), 0o600)
		_, err := ListenUnix(p, -1)
		if err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("live socket", func(t *testing.T) {
		p := filepath.Join(dir, "live.sock")
		ln, err := ListenUnix(p, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, err = ListenUnix(p, -1)
		if err == nil || !strings.Contains(err.Error(), "already serving") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestShutdown: stopping the server ends open streams with Unavailable
// (Envoy reconnects) and removes the socket.
func TestShutdown(t *testing.T) {
	ts := startServer(t, serverOpts{})
	st := ts.stream(context.Background())
	if err := st.Send(sdsclient.Request(node("1.34.0"), "default")); err != nil {
		t.Fatal(err)
	}
	recv(t, st, wait)
	ts.stop()
	_, err := recvErr(st, wait)
	if c := status.Code(err); c != codes.Unavailable {
		t.Fatalf("stream after shutdown: %v", err)
	}
	if _, err := os.Lstat(ts.socket); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

// TestMetricsLint runs promlint over every meshd metric.
func TestMetricsLint(t *testing.T) {
	ts := startServer(t, serverOpts{})
	mfs, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	probs, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probs {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "meshd_") {
			t.Errorf("metric %s lacks the meshd_ prefix", mf.GetName())
		}
	}
}
