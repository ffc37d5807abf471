package sds

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshd/meshd/certs"
	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/sds/sdsclient"
)

// fuzzServer builds a server without a socket, for driving streamState.
func fuzzServer(f *testing.F) *Server {
	f.Helper()
	dir, err := os.MkdirTemp("", "sdsfuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	td := spiffeid.RequireTrustDomainFromString(testTD)
	ca, err := certs.New(certs.Config{TrustDomain: td, StateDir: filepath.Join(dir, "state"), Log: log, Registerer: reg})
	if err != nil {
		f.Fatal(err)
	}
	cache, err := NewCache(CacheConfig{CA: ca, Log: log, Registerer: reg})
	if err != nil {
		f.Fatal(err)
	}
	ids, err := ParseIdentities([]byte(selfIdentities()), td)
	if err != nil {
		f.Fatal(err)
	}
	srv, err := New(Config{Socket: filepath.Join(dir, "s.sock"), CA: ca, Cache: cache, Identities: ids, Log: log, Registerer: reg})
	if err != nil {
		f.Fatal(err)
	}
	return srv
}

func seedRequests(f *testing.F, reqs ...*discoveryv3.DiscoveryRequest) {
	for _, r := range reqs {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b)
	}
}

// FuzzStreamRequests feeds two arbitrary DiscoveryRequests to one stream and
// checks the protocol invariants: no panic; every response holds only
// requested names (or, for the wildcard, the caller's own), no duplicates,
// increasing versions and a fresh nonce; nothing for an unauthorised name.
func FuzzStreamRequests(f *testing.F) {
	srv := fuzzServer(f)
	n := sdsclient.Node("fuzz", "1.34.0")
	first := sdsclient.Request(n, "default", "ROOTCA")
	seedRequests(f,
		first,
		sdsclient.Request(n),
		sdsclient.Request(n, "ALL", "spiffe://example.org", serviceB, "nope"),
		&discoveryv3.DiscoveryRequest{TypeUrl: "bogus"},
		&discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}, ResponseNonce: "x", ErrorDetail: &statuspb.Status{Message: "bad"}},
	)
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var sent []*discoveryv3.DiscoveryResponse
		c, err := srv.newCaller(peer.Info{PID: int32(os.Getpid()), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		st := &streamState{caller: c, sent: map[string]string{}, unknown: map[string]bool{},
			send: func(r *discoveryv3.DiscoveryResponse) error { sent = append(sent, r); return nil }}
		var asked []string
		for _, raw := range [][]byte{a, b} {
			var req discoveryv3.DiscoveryRequest
			if proto.Unmarshal(raw, &req) != nil {
				return
			}
			before := len(sent)
			if err := st.onRequest(&req); err != nil {
				return // a refused request ends the stream
			}
			asked = append(asked, req.GetResourceNames()...)
			for _, r := range sent[before:] {
				ss, err := sdsclient.Secrets(r)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, s := range ss {
					if slices.Contains(names, s.GetName()) {
						t.Fatalf("duplicate %q", s.GetName())
					}
					names = append(names, s.GetName())
					if !st.wild && !slices.Contains(asked, s.GetName()) {
						t.Fatalf("sent unrequested %q", s.GetName())
					}
					if !slices.Contains([]string{"default", serviceB, "ROOTCA", "ALL", "spiffe://" + testTD}, s.GetName()) {
						t.Fatalf("sent %q, which this caller may not have", s.GetName())
					}
				}
			}
		}
		for i, r := range sent {
			if r.GetVersionInfo() != strconv.Itoa(i+1) || r.GetNonce() == "" || i > 0 && r.GetNonce() == sent[i-1].GetNonce() {
				t.Fatalf("response %d: version %q nonce %q", i, r.GetVersionInfo(), r.GetNonce())
			}
		}
	})
}
