package issuer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	cav1 "github.com/meshd/meshd/api/ca/v1"
)

// TestVerifyIssued: every way a CA service answer can be wrong is refused,
// and a certificate from a service whose clock is ahead is accepted with
// the skew reported.
func TestVerifyIssued(t *testing.T) {
	ca := spireTestCA(t, spireTD)
	id := spiffeid.RequireFromString("spiffe://example.org/mesh/apps/virtualNode/serviceA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ca.SignPublicKey(id, []string{"servicea.apps.local"}, key.Public(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp := &cav1.Issued{Chain: [][]byte{chain[0].Raw}, Bundle: &cav1.Bundle{TrustDomain: "example.org"}}
	for _, r := range ca.Bundle().X509Authorities() {
		resp.Bundle.Roots = append(resp.Bundle.Roots, r.Raw)
	}
	foreign := spireTestCA(t, spireTD)
	wrongBundle := &cav1.Issued{Chain: resp.Chain, Bundle: &cav1.Bundle{Roots: [][]byte{foreign.Bundle().X509Authorities()[0].Raw}}}
	now := time.Now()
	tests := []struct {
		name string
		resp *cav1.Issued
		want spiffeid.ID
		dns  []string
		pub  any
		at   time.Time
		err  string
	}{
		{"valid", resp, id, []string{"servicea.apps.local"}, key.Public(), now, ""},
		{"agent answer (no ID asked)", resp, spiffeid.ID{}, nil, key.Public(), now, ""},
		{"no certificate", &cav1.Issued{Bundle: resp.Bundle}, id, nil, key.Public(), now, "no certificate"},
		{"garbage certificate", &cav1.Issued{Chain: [][]byte{{1, 2}}, Bundle: resp.Bundle}, id, nil, key.Public(), now, "CA service certificate"},
		{"garbage bundle", &cav1.Issued{Chain: resp.Chain, Bundle: &cav1.Bundle{Roots: [][]byte{{1}}}}, id, nil, key.Public(), now, "CA service bundle"},
		{"signed by another CA", wrongBundle, id, nil, key.Public(), now, "does not verify"},
		{"another ID", resp, spiffeid.RequireFromString("spiffe://example.org/mesh/apps/virtualNode/serviceB"), nil, key.Public(), now, "asked for"},
		{"DNS name missing", resp, id, []string{"evil.example.com"}, key.Public(), now, "lacks DNS name"},
		{"another key", resp, id, nil, other.Public(), now, "another key"},
		{"expired", resp, id, nil, key.Public(), now.Add(2 * time.Hour), "does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, skew, err := VerifyIssued(tc.resp, spireTD, tc.want, tc.dns, tc.pub, tc.at)
			if tc.err == "" {
				if err != nil || len(got) != 1 || skew != 0 {
					t.Fatalf("got %d certs, skew %s, err %v", len(got), skew, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err %v, want one containing %q", err, tc.err)
			}
		})
	}
	// This host 5 minutes behind the CA service: checked at NotBefore.
	_, skew, err := VerifyIssued(resp, spireTD, id, nil, key.Public(), now.Add(-5*time.Minute))
	if err != nil || skew < 4*time.Minute {
		t.Fatalf("skewed clock: skew %s, err %v", skew, err)
	}
}
