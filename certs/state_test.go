package certs

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

const testCATTL = 6 * time.Hour

func testPolicy() Policy {
	return Policy{TrustDomain: testTD, KeyType: KeyECDSAP256, CATTL: testCATTL}
}

// labeler names roots A, B, C... in the order they first appear, so a test
// can follow one root through its life.
type labeler struct {
	labels map[string]string // authority ID -> label
}

func (l *labeler) label(a *Authority) string {
	if l.labels == nil {
		l.labels = map[string]string{}
	}
	id := a.ID()
	if lb, ok := l.labels[id]; ok {
		return lb
	}
	lb := string(rune('A' + len(l.labels)))
	l.labels[id] = lb
	return lb
}

// describe renders s as "A=retired B=active C=prepared", sorted by label.
func (l *labeler) describe(s *State) string {
	parts := make([]string, 0, len(s.Authorities))
	for _, a := range s.Authorities {
		parts = append(parts, l.label(a)+"="+string(a.Status))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (l *labeler) get(t *testing.T, s *State, label string) *Authority {
	t.Helper()
	for _, a := range s.Authorities {
		if l.label(a) == label {
			return a
		}
	}
	t.Fatalf("no root %s in state %s", label, l.describe(s))
	return nil
}

// reparse round-trips s through Marshal and ParseState.
func reparse(t testing.TB, s *State) *State {
	t.Helper()
	data, err := s.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	out, err := ParseState("test", data)
	if err != nil {
		t.Fatalf("ParseState(Marshal(state)): %v\n%s", err, data)
	}
	return out
}

func advance(t *testing.T, p Policy, s *State, now time.Time) bool {
	t.Helper()
	changed, err := p.Advance(s, now)
	if err != nil {
		t.Fatalf("Advance(%s): %v", now, err)
	}
	return changed
}

func newState() *State {
	return &State{Version: 1, TrustDomain: testTD.Name(), KeyType: KeyECDSAP256, CATTL: Duration(testCATTL)}
}

// TestAdvanceLifecycle walks a 6 h root through two rollovers with explicit
// times. With a 1 min backdate, root A (created at 15:00:00) is valid
// 14:59:00–21:00:00 (6h1m), so it is half-way at 17:59:30 and five sixths
// through at 19:59:50. Root B, prepared at 17:59:30, is valid
// 17:58:30–23:59:30: half-way at 20:59:00, five sixths at 22:59:20. Each
// root reaches half-life one backdate (1 min) before its predecessor leaves,
// so after the first rollover the bundle never drops to a single root.
func TestAdvanceLifecycle(t *testing.T) {
	p := testPolicy()
	s := newState()
	var l labeler

	type step struct {
		at      string
		changed bool
		want    string
		check   func(t *testing.T, s *State)
	}
	steps := []step{
		{"15:00:00", true, "A=active", func(t *testing.T, s *State) {
			a := l.get(t, s, "A")
			if !a.Cert.NotBefore.Equal(at("14:59:00")) || !a.Cert.NotAfter.Equal(at("21:00:00")) {
				t.Errorf("A valid %s..%s, want 14:59:00..21:00:00", a.Cert.NotBefore, a.Cert.NotAfter)
			}
			if !a.Cert.IsCA || a.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Error("A is not a CA allowed to sign certificates")
			}
			if len(a.Cert.URIs) != 1 || a.Cert.URIs[0].String() != "spiffe://example.org" {
				t.Errorf("A URIs = %v, want [spiffe://example.org]", a.Cert.URIs)
			}
			if err := a.Cert.CheckSignatureFrom(a.Cert); err != nil {
				t.Errorf("A is not self-signed: %v", err)
			}
			if a.Key == nil || a.PrivateKeyPEM == "" || keyMatches(a.Key, a.Cert) != nil {
				t.Error("A has no usable private key")
			}
			if a.ActivateAt != nil || a.KeepUntil != nil {
				t.Errorf("A has ActivateAt %v / KeepUntil %v, want neither", a.ActivateAt, a.KeepUntil)
			}
			if got := PrepareAt(a.Cert); !got.Equal(at("17:59:30")) {
				t.Errorf("PrepareAt(A) = %s, want 17:59:30", got)
			}
			if got := ActivateAt(a.Cert); !got.Equal(at("19:59:50")) {
				t.Errorf("ActivateAt(A) = %s, want 19:59:50", got)
			}
		}},
		{"15:00:00", false, "A=active", nil},
		{"17:59:29", false, "A=active", nil},
		{"17:59:30", true, "A=active B=prepared", func(t *testing.T, s *State) {
			a, b := l.get(t, s, "A"), l.get(t, s, "B")
			if s.Active() != a || s.Prepared() != b {
				t.Errorf("Active/Prepared = %v/%v, want A/B", s.Active(), s.Prepared())
			}
			if b.ActivateAt == nil || !b.ActivateAt.Equal(at("19:59:50")) {
				t.Errorf("B.ActivateAt = %v, want 19:59:50", b.ActivateAt)
			}
			if !b.Cert.NotBefore.Equal(at("17:58:30")) || !b.Cert.NotAfter.Equal(at("23:59:30")) {
				t.Errorf("B valid %s..%s, want 17:58:30..23:59:30", b.Cert.NotBefore, b.Cert.NotAfter)
			}
			if b.Key == nil || keyMatches(b.Key, b.Cert) != nil {
				t.Error("prepared root B has no usable key")
			}
			roots := s.Roots()
			if len(roots) != 2 || !roots[0].Equal(a.Cert) || !roots[1].Equal(b.Cert) {
				t.Errorf("Roots() is not [A B] (active first)")
			}
		}},
		{"17:59:31", false, "A=active B=prepared", nil},
		{"19:59:49", false, "A=active B=prepared", nil},
		{"19:59:50", true, "A=retired B=active", func(t *testing.T, s *State) {
			a, b := l.get(t, s, "A"), l.get(t, s, "B")
			if a.KeepUntil == nil || !a.KeepUntil.Equal(a.Cert.NotAfter) || !a.KeepUntil.Equal(at("21:00:00")) {
				t.Errorf("A.KeepUntil = %v, want A's NotAfter 21:00:00", a.KeepUntil)
			}
			if a.Key != nil || a.PrivateKeyPEM != "" {
				t.Error("retired root A still holds its private key")
			}
			if b.ActivateAt != nil {
				t.Errorf("active B still has ActivateAt %v", b.ActivateAt)
			}
			roots := s.Roots()
			if len(roots) != 2 || !roots[0].Equal(b.Cert) || !roots[1].Equal(a.Cert) {
				t.Errorf("Roots() is not [B A] (active first, retired still published)")
			}
			// The retired key is gone from the serialised state too.
			data, err := s.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(data), "PRIVATE KEY-----\\n"); n != 2 { // BEGIN and END of B's key
				t.Errorf("state file holds %d private key PEM markers, want 2 (only B's key):\n%s", n, data)
			}
		}},
		{"20:58:59", false, "A=retired B=active", nil},
		// B reaches half-life one backdate (1 min) before A leaves.
		{"20:59:00", true, "A=retired B=active C=prepared", func(t *testing.T, s *State) {
			c := l.get(t, s, "C")
			if c.ActivateAt == nil || !c.ActivateAt.Equal(at("22:59:20")) {
				t.Errorf("C.ActivateAt = %v, want 22:59:20", c.ActivateAt)
			}
			if len(s.Roots()) != 3 {
				t.Errorf("bundle has %d roots, want 3", len(s.Roots()))
			}
		}},
		{"20:59:59", false, "A=retired B=active C=prepared", nil},
		{"21:00:00", true, "B=active C=prepared", nil}, // A pruned at KeepUntil
		{"22:59:19", false, "B=active C=prepared", nil},
		{"22:59:20", true, "B=retired C=active", func(t *testing.T, s *State) {
			b := l.get(t, s, "B")
			if b.KeepUntil == nil || !b.KeepUntil.Equal(at("23:59:30")) || b.Key != nil || b.PrivateKeyPEM != "" {
				t.Errorf("B retired with KeepUntil %v, key %v; want 23:59:30 and no key", b.KeepUntil, b.Key != nil)
			}
		}},
		// Root C (prepared 20:59:00) is valid 20:58:00–02:59:00: half-way at
		// 23:58:30, again a minute before its predecessor B leaves.
		{"23:58:29", false, "B=retired C=active", nil},
		{"23:58:30", true, "B=retired C=active D=prepared", func(t *testing.T, s *State) {
			if d := l.get(t, s, "D"); d.ActivateAt == nil || !d.ActivateAt.Equal(at("+1 01:58:50")) {
				t.Errorf("D.ActivateAt = %v, want 01:58:50 the next day", d.ActivateAt)
			}
		}},
		{"23:59:29", false, "B=retired C=active D=prepared", nil},
		{"23:59:30", true, "C=active D=prepared", nil},
	}
	for _, st := range steps {
		now := at(st.at)
		changed := advance(t, p, s, now)
		got := l.describe(s)
		if changed != st.changed || got != st.want {
			t.Fatalf("at %s: Advance changed=%v, state %q; want changed=%v, %q", st.at, changed, got, st.changed, st.want)
		}
		if st.check != nil {
			st.check(t, s)
		}
		// Every intermediate state survives the state file.
		if back := l.describe(reparse(t, s)); back != got {
			t.Fatalf("at %s: state %q reparsed as %q", st.at, got, back)
		}
		// NextEvent says when the next change comes: nothing changes before it.
		next := NextEvent(s)
		if !next.After(now) {
			t.Fatalf("at %s: NextEvent = %s, want after now", st.at, next)
		}
		probe := reparse(t, s)
		if changed := advance(t, p, probe, next.Add(-time.Nanosecond)); changed {
			t.Fatalf("at %s: state changed before NextEvent %s", st.at, next)
		}
		if changed := advance(t, p, probe, next); !changed {
			t.Fatalf("at %s: state did not change at NextEvent %s", st.at, next)
		}
	}
}

func TestAdvanceRecovery(t *testing.T) {
	short := Policy{TrustDomain: testTD, KeyType: KeyECDSAP256, CATTL: time.Hour}
	type setup func(t *testing.T, s *State, l *labeler)
	activeA := func(t *testing.T, s *State, l *labeler) {
		advance(t, testPolicy(), s, t0) // A: 14:59:00–21:00:00
		l.label(s.Authorities[0])
	}
	cases := []struct {
		name  string
		setup []setup
		now   string
		want  string
		// unchanged: Advance must report no change.
		unchanged bool
		check     func(t *testing.T, s *State, l *labeler, now time.Time)
	}{
		{
			name:  "expired active root is replaced by a new one",
			setup: []setup{activeA},
			now:   "21:00:00", // A's NotAfter
			want:  "B=active",
			check: func(t *testing.T, s *State, l *labeler, now time.Time) {
				b := l.get(t, s, "B")
				if !b.Cert.NotBefore.Equal(now.Add(-time.Minute)) || !b.Cert.NotAfter.Equal(now.Add(testCATTL)) {
					t.Errorf("new root valid %s..%s, want from now-1m for the CA TTL", b.Cert.NotBefore, b.Cert.NotAfter)
				}
				if b.Key == nil {
					t.Error("new root has no key")
				}
			},
		},
		{
			name:  "long-expired active root is replaced",
			setup: []setup{activeA},
			now:   "+1 23:00:00",
			want:  "B=active",
		},
		{
			name: "expired active root hands over to a valid prepared root",
			setup: []setup{activeA, func(t *testing.T, s *State, l *labeler) {
				// meshd ca rotate at 20:00 with activation at 23:00 (after A expires)
				b, err := testPolicy().Rotate(s, at("20:00:00"), at("23:00:00"))
				if err != nil {
					t.Fatal(err)
				}
				l.label(b)
			}},
			now:  "21:00:00",
			want: "B=active",
			check: func(t *testing.T, s *State, l *labeler, now time.Time) {
				if b := l.get(t, s, "B"); b.ActivateAt != nil {
					t.Errorf("activated root keeps ActivateAt %v", b.ActivateAt)
				}
			},
		},
		{
			name: "expired prepared root is removed",
			setup: []setup{activeA, func(t *testing.T, s *State, l *labeler) {
				// A 1 h root prepared at 15:00, scheduled after its own expiry.
				b, err := short.Rotate(s, at("15:00:00"), at("19:00:00"))
				if err != nil {
					t.Fatal(err)
				}
				l.label(b)
			}},
			now:  "16:00:00", // B's NotAfter, before A's half-life
			want: "A=active",
		},
		{
			name: "expired prepared root is replaced once the active root is past half-life",
			setup: []setup{activeA, func(t *testing.T, s *State, l *labeler) {
				b, err := short.Rotate(s, at("15:00:00"), at("20:00:00"))
				if err != nil {
					t.Fatal(err)
				}
				l.label(b)
			}},
			now:  "18:00:00",
			want: "A=active C=prepared",
			check: func(t *testing.T, s *State, l *labeler, now time.Time) {
				if c := l.get(t, s, "C"); c.ActivateAt == nil || !c.ActivateAt.Equal(at("19:59:50")) {
					t.Errorf("C.ActivateAt = %v, want 19:59:50", c.ActivateAt)
				}
			},
		},
		{
			name: "expired active and expired prepared roots: start over",
			setup: []setup{activeA, func(t *testing.T, s *State, l *labeler) {
				b, err := short.Rotate(s, at("15:00:00"), at("23:00:00"))
				if err != nil {
					t.Fatal(err)
				}
				l.label(b)
			}},
			now:  "+1 12:00:00",
			want: "C=active",
		},
		{
			name:  "down past five sixths: the next root is prepared now and activated on the next step",
			setup: []setup{activeA},
			now:   "20:30:00",
			want:  "A=active B=prepared",
			check: func(t *testing.T, s *State, l *labeler, now time.Time) {
				b := l.get(t, s, "B")
				if b.ActivateAt == nil || !b.ActivateAt.Equal(now) {
					t.Errorf("B.ActivateAt = %v, want now (%s): ActivateAt(A) has passed", b.ActivateAt, now)
				}
			},
		},
		{
			name: "retired root is kept until KeepUntil",
			setup: []setup{activeA, func(t *testing.T, s *State, l *labeler) {
				advance(t, testPolicy(), s, at("17:59:30"))
				advance(t, testPolicy(), s, at("19:59:50"))
				l.describe(s)
			}},
			now:       "20:30:00",
			want:      "A=retired B=active",
			unchanged: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var l labeler
			s := newState()
			for _, f := range tc.setup {
				f(t, s, &l)
			}
			s = reparse(t, s) // the setup is a valid state file
			now := at(tc.now)
			if changed := advance(t, testPolicy(), s, now); changed == tc.unchanged {
				t.Fatalf("Advance reported changed=%v, want %v", changed, !tc.unchanged)
			}
			if got := l.describe(s); got != tc.want {
				t.Fatalf("state after Advance(%s) = %q, want %q", tc.now, got, tc.want)
			}
			if tc.check != nil {
				tc.check(t, s, &l, now)
			}
			if s.Active() == nil || s.Active().Key == nil {
				t.Fatal("no usable active root after Advance")
			}
			reparse(t, s)
		})
	}
}

func TestPolicyRotate(t *testing.T) {
	p := testPolicy()
	s := newState()
	var l labeler
	advance(t, p, s, t0)
	a := l.get(t, s, "A")

	// meshd ca rotate at 16:00 with --activate-in 15m.
	b, err := p.Rotate(s, at("16:00:00"), at("16:15:00"))
	if err != nil {
		t.Fatal(err)
	}
	l.label(b)
	if got := l.describe(s); got != "A=active B=prepared" {
		t.Fatalf("after Rotate: %q, want A=active B=prepared", got)
	}
	if b.Status != StatusPrepared || b.ActivateAt == nil || !b.ActivateAt.Equal(at("16:15:00")) {
		t.Fatalf("Rotate returned status %s ActivateAt %v, want prepared at 16:15:00", b.Status, b.ActivateAt)
	}
	if !b.Cert.NotBefore.Equal(at("15:59:00")) || !b.Cert.NotAfter.Equal(at("22:00:00")) {
		t.Errorf("rotated root valid %s..%s, want 15:59:00..22:00:00", b.Cert.NotBefore, b.Cert.NotAfter)
	}
	if roots := s.Roots(); len(roots) != 2 || !roots[0].Equal(a.Cert) || !roots[1].Equal(b.Cert) {
		t.Fatal("the rotated root is not published in Roots() after the active root")
	}
	s = reparse(t, s)

	// A second rotate reschedules the same prepared root instead of making
	// another one.
	b2, err := p.Rotate(s, at("16:05:00"), at("16:05:00"))
	if err != nil {
		t.Fatal(err)
	}
	if l.label(b2) != "B" || len(s.Authorities) != 2 {
		t.Fatalf("second Rotate made a new root: %s", l.describe(s))
	}
	if !b2.ActivateAt.Equal(at("16:05:00")) {
		t.Fatalf("second Rotate left ActivateAt at %s, want 16:05:00", b2.ActivateAt)
	}
	s = reparse(t, s)
	if advance(t, p, s, at("16:05:00").Add(-time.Nanosecond)) {
		t.Fatalf("state changed before the scheduled activation: %s", l.describe(s))
	}
	if !advance(t, p, s, at("16:05:00")) {
		t.Fatal("no activation at the scheduled time")
	}
	if got := l.describe(s); got != "A=retired B=active" {
		t.Fatalf("after activation: %q, want A=retired B=active", got)
	}
	a = l.get(t, s, "A")
	if a.KeepUntil == nil || !a.KeepUntil.Equal(at("21:00:00")) || a.Key != nil {
		t.Fatalf("retired A: KeepUntil %v, key kept %v; want 21:00:00 and no key", a.KeepUntil, a.Key != nil)
	}
	// The early rollover does not disturb the new root's own schedule.
	b = l.get(t, s, "B")
	if next := NextEvent(s); !next.Equal(PrepareAt(b.Cert)) {
		t.Errorf("NextEvent = %s, want B's half-life %s", next, PrepareAt(b.Cert))
	}
}

func TestPolicyErrors(t *testing.T) {
	bad := Policy{TrustDomain: testTD, KeyType: "dsa-512", CATTL: time.Hour}
	s := newState()
	if _, err := bad.Advance(s, t0); err == nil || !strings.Contains(err.Error(), "dsa-512") {
		t.Errorf("Advance with a bad key type: %v, want an error naming it", err)
	}
	if len(s.Authorities) != 0 {
		t.Errorf("failed Advance left %d authorities", len(s.Authorities))
	}
	advance(t, testPolicy(), s, t0)
	if _, err := bad.Rotate(s, t0, t0); err == nil {
		t.Error("Rotate with a bad key type succeeded")
	}
	if len(s.Authorities) != 1 {
		t.Errorf("failed Rotate left %d authorities, want 1", len(s.Authorities))
	}
}

// fullState builds a state with an active, a prepared and a retired root.
func fullState(t testing.TB) *State {
	t.Helper()
	p := testPolicy()
	s := newState()
	for _, now := range []string{"15:00:00", "17:59:30", "19:59:50", "20:59:00"} {
		if _, err := p.Advance(s, at(now)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Active() == nil || s.Prepared() == nil || s.find(StatusRetired) == nil {
		t.Fatalf("fullState: want active, prepared and retired roots")
	}
	return s
}

func mustMarshal(t testing.TB, s *State) []byte {
	t.Helper()
	data, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// editJSON decodes data into generic JSON, applies f and re-encodes it.
func editJSON(t testing.TB, data []byte, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func authorityJSON(m map[string]any, status Status) map[string]any {
	for _, a := range m["authorities"].([]any) {
		if am := a.(map[string]any); am["status"] == string(status) {
			return am
		}
	}
	panic("no authority with status " + string(status))
}

func TestParseState(t *testing.T) {
	base := fullState(t)
	valid := mustMarshal(t, base)
	const name = "/var/lib/meshd/ca.json"

	// Certificates for the certificate-level cases.
	nonCA, nonCAKey := makeCert(t, certSpec{cn: "leaf", notBefore: t0, notAfter: t0.Add(time.Hour), uris: []string{"spiffe://example.org"}})
	otherPolicy := Policy{TrustDomain: spiffeid.RequireTrustDomainFromString("other.org"), KeyType: KeyECDSAP256, CATTL: time.Hour}
	other := newState()
	other.TrustDomain = "other.org"
	if _, err := otherPolicy.Advance(other, t0); err != nil {
		t.Fatal(err)
	}

	withActive := func(f func(a map[string]any)) func(m map[string]any) {
		return func(m map[string]any) { f(authorityJSON(m, StatusActive)) }
	}
	cases := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty file", nil, "EOF"},
		{"not JSON", []byte("\x00\x01garbage"), "invalid character"},
		{"truncated JSON", valid[:len(valid)/2], "unexpected EOF"},
		{"JSON array", []byte("[]"), "cannot unmarshal"},
		{"unknown top-level field", editJSON(t, valid, func(m map[string]any) { m["nextRoot"] = "soon" }), `unknown field "nextRoot"`},
		{"unknown authority field", editJSON(t, valid, withActive(func(a map[string]any) { a["comment"] = "x" })), `unknown field "comment"`},
		{"version 2", editJSON(t, valid, func(m map[string]any) { m["version"] = 2 }), "unsupported state version 2"},
		{"missing version", editJSON(t, valid, func(m map[string]any) { delete(m, "version") }), "unsupported state version 0"},
		{"version as string", editJSON(t, valid, func(m map[string]any) { m["version"] = "1" }), "cannot unmarshal"},
		{"empty trust domain", editJSON(t, valid, func(m map[string]any) { m["trustDomain"] = "" }), "trustDomain"},
		{"invalid trust domain", editJSON(t, valid, func(m map[string]any) { m["trustDomain"] = "Bad Domain!" }), "trustDomain"},
		{"unknown key type", editJSON(t, valid, func(m map[string]any) { m["keyType"] = "rsa-1024" }), "keyType"},
		{"zero caTTL", editJSON(t, valid, func(m map[string]any) { m["caTTL"] = "0s" }), "caTTL must be positive"},
		{"negative caTTL", editJSON(t, valid, func(m map[string]any) { m["caTTL"] = "-6h" }), "caTTL must be positive"},
		{"caTTL not a duration", editJSON(t, valid, func(m map[string]any) { m["caTTL"] = "a month" }), "invalid duration"},
		{"caTTL as number", editJSON(t, valid, func(m map[string]any) { m["caTTL"] = 3600 }), "cannot unmarshal"},
		{"two active roots", editJSON(t, valid, func(m map[string]any) {
			authorityJSON(m, StatusPrepared)["status"] = "active"
		}), "more than one active or prepared root"},
		{"two prepared roots", editJSON(t, valid, func(m map[string]any) {
			a := authorityJSON(m, StatusActive)
			a["status"] = "prepared"
		}), "more than one active or prepared root"},
		{"active root without key", editJSON(t, valid, withActive(func(a map[string]any) { delete(a, "privateKey") })), "active root without a private key"},
		{"prepared root without key", editJSON(t, valid, func(m map[string]any) {
			delete(authorityJSON(m, StatusPrepared), "privateKey")
		}), "prepared root without a private key"},
		{"retired root without keepUntil", editJSON(t, valid, func(m map[string]any) {
			delete(authorityJSON(m, StatusRetired), "keepUntil")
		}), "retired root without keepUntil"},
		{"unknown status", editJSON(t, valid, withActive(func(a map[string]any) { a["status"] = "standby" })), `unknown status "standby"`},
		{"key not matching cert", editJSON(t, valid, func(m map[string]any) {
			act, prep := authorityJSON(m, StatusActive), authorityJSON(m, StatusPrepared)
			act["privateKey"], prep["privateKey"] = prep["privateKey"], act["privateKey"]
		}), "private key does not match the certificate"},
		{"garbage private key", editJSON(t, valid, withActive(func(a map[string]any) { a["privateKey"] = "not a key" })), "privateKey"},
		{"non-CA certificate", editJSON(t, valid, withActive(func(a map[string]any) {
			a["certificate"], a["privateKey"] = string(certPEM(nonCA)), string(keyPEM(t, nonCAKey))
		})), "not a CA"},
		{"root for another trust domain", editJSON(t, valid, withActive(func(a map[string]any) {
			o := other.Active()
			a["certificate"], a["privateKey"] = o.CertificatePEM, o.PrivateKeyPEM
		})), "not for trust domain example.org"},
		{"state of another trust domain claiming ours", editJSON(t, mustMarshal(t, other), func(m map[string]any) {
			m["trustDomain"] = "example.org"
		}), "not for trust domain example.org"},
		{"no certificate", editJSON(t, valid, withActive(func(a map[string]any) { a["certificate"] = "" })), "want exactly one PEM certificate"},
		{"two certificates", editJSON(t, valid, withActive(func(a map[string]any) {
			a["certificate"] = a["certificate"].(string) + base.Prepared().CertificatePEM
		})), "want exactly one PEM certificate"},
		{"bad activateAt", editJSON(t, valid, func(m map[string]any) {
			authorityJSON(m, StatusPrepared)["activateAt"] = "tomorrow"
		}), "cannot parse"},
	}
	if _, err := ParseState(name, valid); err != nil {
		t.Fatalf("the unmodified state does not parse: %v", err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseNoPanic(t, name, tc.data)
			if err == nil {
				t.Fatalf("ParseState accepted it:\n%s", tc.data)
			}
			if s != nil {
				t.Errorf("ParseState returned a state with error %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), name) {
				t.Errorf("error %q does not start with the file name %s", err, name)
			}
		})
	}
}

// TestParseStateRoundTrip checks that a parsed state carries usable
// certificates and keys and marshals back to the same bytes.
func TestParseStateRoundTrip(t *testing.T) {
	s := fullState(t)
	data := mustMarshal(t, s)
	got, err := ParseState("ca.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if again := mustMarshal(t, got); string(again) != string(data) {
		t.Fatalf("re-marshalled state differs:\n%s\nwant\n%s", again, data)
	}
	if len(got.Authorities) != 3 {
		t.Fatalf("%d authorities, want 3", len(got.Authorities))
	}
	for i, a := range got.Authorities {
		want := s.Authorities[i]
		if a.Status != want.Status || !a.Cert.Equal(want.Cert) {
			t.Errorf("authority %d: %s %s, want %s %s", i, a.Status, a.ID(), want.Status, want.ID())
		}
		if (a.Key != nil) != (want.Key != nil) {
			t.Errorf("authority %d: has key %v, want %v", i, a.Key != nil, want.Key != nil)
		}
		if a.Key != nil && keyMatches(a.Key, a.Cert) != nil {
			t.Errorf("authority %d: parsed key does not match", i)
		}
	}
	if !got.Prepared().ActivateAt.Equal(*s.Prepared().ActivateAt) {
		t.Errorf("ActivateAt %s, want %s", got.Prepared().ActivateAt, s.Prepared().ActivateAt)
	}
	if time.Duration(got.CATTL) != testCATTL || got.TrustDomain != "example.org" || got.KeyType != KeyECDSAP256 {
		t.Errorf("header %+v", got)
	}
}

// parseNoPanic runs ParseState, turning a panic into a test failure so one
// bad input cannot take the whole test binary down.
func parseNoPanic(t testing.TB, name string, data []byte) (s *State, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("ParseState panicked on %q: %v", data, r)
		}
	}()
	return ParseState(name, data)
}

// TestParseStateNullAuthority: a JSON null in the authorities list (a
// hand-edited or damaged file) must be an error, not a panic.
func TestParseStateNullAuthority(t *testing.T) {
	for _, data := range []string{
		`{"version":1,"trustDomain":"example.org","keyType":"ecdsa-p256","caTTL":"1h","authorities":[null]}`,
		string(editJSON(t, mustMarshal(t, fullState(t)), func(m map[string]any) {
			m["authorities"] = append(m["authorities"].([]any), nil)
		})),
	} {
		if _, err := parseNoPanic(t, "ca.json", []byte(data)); err == nil {
			t.Errorf("ParseState accepted a null authority:\n%s", data)
		}
	}
}

// TestParseStateKeyTypeUsable: a keyType ParseState accepts must be one the
// policy can generate the next root with (rejecting it would be fine too).
// ParseKeyType is case-insensitive, so "ECDSA-P256" passes validation.
func TestParseStateKeyTypeUsable(t *testing.T) {
	s0 := newState()
	advance(t, testPolicy(), s0, t0)
	for _, kt := range []string{"ECDSA-P256", "Ed25519", "RSA-2048"} {
		t.Run(kt, func(t *testing.T) {
			data := editJSON(t, mustMarshal(t, s0), func(m map[string]any) { m["keyType"] = kt })
			s, err := ParseState("ca.json", data)
			if err != nil {
				return // refusing the file is an acceptable outcome
			}
			// As the CA (ca.go advance) and `meshd ca rotate` do: take the key
			// type and TTL from the state.
			p := Policy{TrustDomain: testTD, KeyType: s.KeyType, CATTL: time.Duration(s.CATTL)}
			if _, err := p.Advance(s, at("17:59:30")); err != nil {
				t.Fatalf("ParseState accepted keyType %q, but the next root cannot be prepared: %v", kt, err)
			}
			if s.Prepared() == nil {
				t.Fatal("no root prepared at half-life")
			}
		})
	}
}

func TestStorePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "state")
	st := Store{Dir: dir}
	if _, err := st.Load(); !errors.Is(err, ErrNoState) {
		t.Fatalf("Load of a missing dir: %v, want ErrNoState", err)
	}
	s, err := st.Update(func(s *State) (*State, bool, error) {
		if s != nil {
			t.Errorf("Update on a new dir passed state %v, want nil", s)
		}
		s = newState()
		_, err := testPolicy().Advance(s, t0)
		return s, true, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := perm(t, dir); got != 0o700 {
		t.Errorf("state dir mode %04o, want 0700", got)
	}
	if got := perm(t, st.Path()); got != 0o600 {
		t.Errorf("state file mode %04o, want 0600", got)
	}
	loaded, err := st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Active().Cert.Equal(s.Active().Cert) {
		t.Fatal("Load returned another root than Update wrote")
	}

	t.Run("0644 state file", func(t *testing.T) {
		if err := os.Chmod(st.Path(), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(st.Path(), 0o600)
		_, err := st.Load()
		if err == nil || !strings.Contains(err.Error(), st.Path()) || !strings.Contains(err.Error(), "0644") {
			t.Errorf("Load: %v, want a refusal naming %s and its mode", err, st.Path())
		}
		if _, err := st.Update(func(s *State) (*State, bool, error) { return s, false, nil }); err == nil || !strings.Contains(err.Error(), st.Path()) {
			t.Errorf("Update: %v, want a refusal naming %s", err, st.Path())
		}
	})
	t.Run("0640 state file", func(t *testing.T) {
		if err := os.Chmod(st.Path(), 0o640); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(st.Path(), 0o600)
		if _, err := st.Load(); err == nil {
			t.Error("Load accepted a group-readable state file")
		}
	})
	t.Run("0755 state dir", func(t *testing.T) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o700)
		called := false
		_, err := st.Update(func(s *State) (*State, bool, error) { called = true; return s, true, nil })
		if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "0700") {
			t.Errorf("Update: %v, want a refusal naming %s", err, dir)
		}
		if called {
			t.Error("Update called fn on an open state dir")
		}
		_, err = callNew(t, Config{TrustDomain: testTD, StateDir: dir, Log: discardLog(), Registerer: prometheus.NewRegistry()})
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("New: %v, want a refusal naming %s", err, dir)
		}
	})
	t.Run("state dir is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		writeFile(t, f, nil, 0o600)
		if _, err := (Store{Dir: f}).Update(func(s *State) (*State, bool, error) { return s, false, nil }); err == nil {
			t.Error("Update accepted a file as state dir")
		}
	})
	if _, err := st.Load(); err != nil {
		t.Fatalf("state unusable after the permission cases: %v", err)
	}
}

func TestStoreCorrupted(t *testing.T) {
	good := mustMarshal(t, fullState(t))
	cases := map[string][]byte{
		"garbage":          []byte("this is not json\n"),
		"empty":            {},
		"truncated":        good[:len(good)-40],
		"wrong version":    editJSON(t, good, func(m map[string]any) { m["version"] = 7 }),
		"oversized":        append(slices.Clone(good), make([]byte, 1<<20)...),
		"two active roots": editJSON(t, good, func(m map[string]any) { authorityJSON(m, StatusPrepared)["status"] = "active" }),
		"binary noise":     {0xff, 0xfe, 0x00, 0x7b},
		"key does not match": editJSON(t, good, func(m map[string]any) {
			act, prep := authorityJSON(m, StatusActive), authorityJSON(m, StatusPrepared)
			act["privateKey"], prep["privateKey"] = prep["privateKey"], act["privateKey"]
		}),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			st := Store{Dir: dir}
			writeFile(t, st.Path(), data, 0o600)
			_, err := st.Load()
			if err == nil || !strings.Contains(err.Error(), "corrupted") || !strings.Contains(err.Error(), st.Path()) {
				t.Fatalf("Load: %v, want an error saying %s is corrupted", err, st.Path())
			}
			if errors.Is(err, ErrNoState) {
				t.Fatalf("a corrupted state must not look like a missing one: %v", err)
			}
			// Update must not overwrite it with a new CA.
			_, err = st.Update(func(s *State) (*State, bool, error) {
				t.Error("Update called fn on a corrupted state")
				return newState(), true, nil
			})
			if err == nil || !strings.Contains(err.Error(), "corrupted") {
				t.Fatalf("Update: %v, want corrupted", err)
			}
			if got, _ := os.ReadFile(st.Path()); string(got) != string(data) {
				t.Fatal("the corrupted state file was modified")
			}
		})
	}
}

// TestStoreUpdateAtomic checks that Update replaces the file by rename
// (a reader holding the old file sees the complete old content), leaves no
// temporary files, does not write when nothing changed or fn fails, and
// serialises concurrent updaters.
func TestStoreUpdateAtomic(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	st := Store{Dir: dir}
	p := testPolicy()
	if _, err := st.Update(func(s *State) (*State, bool, error) {
		s = newState()
		_, err := p.Advance(s, t0)
		return s, true, err
	}); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(st.Path())
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.Open(st.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldInfo, _ := old.Stat()

	if _, err := st.Update(func(s *State) (*State, bool, error) {
		changed, err := p.Advance(s, at("17:59:30"))
		return s, changed, err
	}); err != nil {
		t.Fatal(err)
	}
	newInfo, err := os.Stat(st.Path())
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(oldInfo, newInfo) {
		t.Error("Update rewrote the state file in place instead of renaming a new one over it")
	}
	oldData := make([]byte, len(before)+100)
	n, _ := old.ReadAt(oldData, 0)
	if string(oldData[:n]) != string(before) {
		t.Error("a reader of the old state file saw its content change")
	}
	s, err := st.Load()
	if err != nil || s.Prepared() == nil {
		t.Fatalf("Load after the update: %v (prepared %v)", err, s != nil && s.Prepared() != nil)
	}
	assertOnlyStateFiles(t, dir)

	// No change and failures: nothing is written.
	statBefore, _ := os.Stat(st.Path())
	if _, err := st.Update(func(s *State) (*State, bool, error) { return s, false, nil }); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := st.Update(func(s *State) (*State, bool, error) {
		s.Authorities = nil
		return s, true, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	statAfter, _ := os.Stat(st.Path())
	if !os.SameFile(statBefore, statAfter) || !statBefore.ModTime().Equal(statAfter.ModTime()) {
		t.Error("the state file was rewritten by an Update that changed nothing or failed")
	}
	if s, err := st.Load(); err != nil {
		t.Fatalf("state after a failed Update: %v", err)
	} else if len(s.Authorities) != 2 {
		t.Fatalf("state after a failed Update has %d authorities, want 2", len(s.Authorities))
	}

	// Concurrent updaters are serialised by the lock: no increment is lost.
	const workers, rounds = 8, 3
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				if _, err := st.Update(func(s *State) (*State, bool, error) {
					s.CATTL += Duration(time.Second)
					return s, true, nil
				}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s, err = st.Load()
	if err != nil {
		t.Fatal(err)
	}
	if want := testCATTL + workers*rounds*time.Second; time.Duration(s.CATTL) != want {
		t.Errorf("after %d concurrent increments caTTL = %s, want %s (lost updates)", workers*rounds, time.Duration(s.CATTL), want)
	}
	assertOnlyStateFiles(t, dir)
}

func assertOnlyStateFiles(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != fmt.Sprint([]string{StateFile, lockFile}) {
		t.Errorf("state dir holds %v, want only [%s %s] (temporary files left behind?)", names, StateFile, lockFile)
	}
}

func FuzzParseState(f *testing.F) {
	full := mustMarshal(f, fullState(f))
	first := newState()
	if _, err := testPolicy().Advance(first, t0); err != nil {
		f.Fatal(err)
	}
	one := mustMarshal(f, first)
	f.Add(full)
	f.Add(one)
	f.Add(full[:len(full)/3])
	f.Add([]byte(`{"version":1,"trustDomain":"example.org","keyType":"ed25519","caTTL":"1h","authorities":[]}`))
	f.Add([]byte(`{"version":1,"trustDomain":"example.org","keyType":"rsa-2048","caTTL":"1h","authorities":null}`))
	f.Add([]byte(`{"version":1,"trustDomain":"spiffe://example.org","keyType":"ecdsa-p256","caTTL":"720h"}`))
	f.Add([]byte("{}"))
	f.Add([]byte("null"))
	f.Add([]byte(""))
	f.Add([]byte("\xff\xfe garbage {\"version\":"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := parseNoPanic(t, "fuzz", data)
		if err != nil {
			if s != nil {
				t.Fatalf("ParseState returned a state and error %v", err)
			}
			return
		}
		// Accepted states hold up the invariants the CA relies on.
		counts := map[Status]int{}
		for _, a := range s.Authorities {
			counts[a.Status]++
			if a.Cert == nil {
				t.Fatalf("accepted %s authority without a parsed certificate", a.Status)
			}
			if (a.Status == StatusActive || a.Status == StatusPrepared) && a.Key == nil {
				t.Fatalf("accepted %s authority without a key", a.Status)
			}
		}
		if counts[StatusActive] > 1 || counts[StatusPrepared] > 1 {
			t.Fatalf("accepted %v", counts)
		}
		// And survive the state file.
		out, err := s.Marshal()
		if err != nil {
			t.Fatalf("accepted state does not marshal: %v", err)
		}
		s2, err := parseNoPanic(t, "fuzz", out)
		if err != nil {
			t.Fatalf("re-marshalled state is rejected: %v\ninput:\n%q\nmarshalled:\n%s", err, data, out)
		}
		out2, err := s2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(out2) != string(out) {
			t.Fatalf("marshal is not stable:\n%s\nthen\n%s", out, out2)
		}
		_ = s2.Roots()
		if len(s2.Authorities) > 0 {
			_ = NextEvent(s2)
		}
	})
}

// TestScheduleFractions checks PrepareAt (1/2) and ActivateAt (5/6) for
// root lifetimes from an hour to two centuries (--ca-ttl accepts any
// duration; 876000h, "100 years", is a common choice for long-lived roots).
func TestScheduleFractions(t *testing.T) {
	const year = 365 * 24 * time.Hour
	for _, life := range []time.Duration{
		time.Hour + time.Minute, 6 * time.Hour, 30 * 24 * time.Hour, year, 10 * year,
		50 * year, 60 * year, 100 * year, 200 * year,
	} {
		t.Run(fmt.Sprintf("%.0fh", life.Hours()), func(t *testing.T) {
			c := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(life)}
			check := func(name string, got time.Time, frac float64) {
				want := t0.Add(time.Duration(float64(life) * frac))
				if d := got.Sub(want); d < -time.Microsecond || d > time.Microsecond {
					t.Errorf("%s = %s (%.4f of the life), want %s (%.4f)", name, got,
						float64(got.Sub(t0))/float64(life), want, frac)
				}
			}
			check("PrepareAt", PrepareAt(c), 0.5)
			check("ActivateAt", ActivateAt(c), 5.0/6)
		})
	}

	// What the overflow means for a running CA with a 100-year root: at
	// half-life the next root must be scheduled for five sixths, not
	// activated at once (before peers had a chance to fetch it).
	p := Policy{TrustDomain: testTD, KeyType: KeyECDSAP256, CATTL: 100 * year}
	s := newState()
	advance(t, p, s, t0)
	half := PrepareAt(s.Active().Cert)
	advance(t, p, s, half)
	if next := s.Prepared(); next == nil || next.ActivateAt == nil || !next.ActivateAt.After(half) {
		t.Errorf("100-year root: the next root prepared at %s is scheduled to sign from %v, want later", half, next.ActivateAt)
	}
}
