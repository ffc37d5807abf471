package sds

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/internal/peer"
)

// identTD is the trust domain every identities test parses against.
var identTD = spiffeid.RequireTrustDomainFromString("example.org")

// identIssueExample is the example file from the issue.
const identIssueExample = "- spiffeID: spiffe://example.org/mesh/apps/virtualNode/serviceB\n  dnsNames: [serviceb.apps.local]\n  selectors: [uid:1337]"

// identEntry is the expected, rendered form of one parsed identity.
type identEntry struct {
	id          string
	dns         []string
	secretNames []string
	selectors   []string
}

func identRender(ids *Identities) []identEntry {
	var out []identEntry
	for _, id := range ids.list {
		e := identEntry{id: id.SPIFFEID.String(), dns: id.DNSNames, secretNames: id.SecretNames}
		for _, s := range id.Selectors {
			e.selectors = append(e.selectors, s.String())
		}
		out = append(out, e)
	}
	return out
}

func identEqual(a, b identEntry) bool {
	return a.id == b.id && slices.Equal(a.dns, b.dns) && slices.Equal(a.secretNames, b.secretNames) && slices.Equal(a.selectors, b.selectors)
}

// identMinimal returns a file of n minimal entries.
func identMinimal(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {spiffeID: spiffe://example.org/w/%d, selectors: [uid:%d]}\n", i, i)
	}
	return []byte(b.String())
}

func TestParseIdentitiesGood(t *testing.T) {
	label63 := strings.Repeat("a", 63)
	// 63+1+63+1+63+1+61 = 253 characters.
	name253 := label63 + "." + label63 + "." + label63 + "." + strings.Repeat("b", 61)
	if len(name253) != 253 {
		t.Fatalf("test setup: name is %d bytes", len(name253))
	}
	tests := []struct {
		name string
		yaml string
		want []identEntry
	}{
		{
			name: "issue example",
			yaml: identIssueExample,
			want: []identEntry{{
				id:        "spiffe://example.org/mesh/apps/virtualNode/serviceB",
				dns:       []string{"serviceb.apps.local"},
				selectors: []string{"uid:1337"},
			}},
		},
		{
			name: "every field and selector kind",
			yaml: `
- spiffeID: spiffe://example.org/ns/a
  dnsNames: [a.local, "*.a.local"]
  secretNames: ["arn:aws:appmesh:secret/a", "a cert"]
  selectors: [uid:1000, gid:2000, exe:/usr/bin/envoy]
- spiffeID: spiffe://example.org/ns/b
  selectors: ["exe:/opt/b"]
`,
			want: []identEntry{
				{
					id:          "spiffe://example.org/ns/a",
					dns:         []string{"a.local", "*.a.local"},
					secretNames: []string{"arn:aws:appmesh:secret/a", "a cert"},
					selectors:   []string{"uid:1000", "gid:2000", "exe:/usr/bin/envoy"},
				},
				{id: "spiffe://example.org/ns/b", selectors: []string{"exe:/opt/b"}},
			},
		},
		{
			name: "dns names are lowercased",
			yaml: "- spiffeID: spiffe://example.org/x\n  dnsNames: [Service-B.Apps.LOCAL]\n  selectors: [gid:7]\n",
			want: []identEntry{{id: "spiffe://example.org/x", dns: []string{"service-b.apps.local"}, selectors: []string{"gid:7"}}},
		},
		{
			name: "dns name length limits are inclusive",
			yaml: "- spiffeID: spiffe://example.org/x\n  dnsNames: [" + label63 + ".local, " + name253 + ", a, 0-9]\n  selectors: [uid:0]\n",
			want: []identEntry{{id: "spiffe://example.org/x", dns: []string{label63 + ".local", name253, "a", "0-9"}, selectors: []string{"uid:0"}}},
		},
		{
			name: "uid and gid span uint32",
			yaml: "- spiffeID: spiffe://example.org/x\n  selectors: [uid:0, gid:4294967295]\n",
			want: []identEntry{{id: "spiffe://example.org/x", selectors: []string{"uid:0", "gid:4294967295"}}},
		},
		{
			name: "duplicate spiffeID with the same dnsNames (any order and case)",
			yaml: `
- spiffeID: spiffe://example.org/dup
  dnsNames: [a.local, b.local]
  selectors: [uid:1]
- spiffeID: spiffe://example.org/dup
  dnsNames: [B.local, a.local]
  selectors: [uid:2]
`,
			want: []identEntry{
				{id: "spiffe://example.org/dup", dns: []string{"a.local", "b.local"}, selectors: []string{"uid:1"}},
				{id: "spiffe://example.org/dup", dns: []string{"b.local", "a.local"}, selectors: []string{"uid:2"}},
			},
		},
		{
			name: "duplicate spiffeID without dnsNames",
			yaml: "- {spiffeID: spiffe://example.org/d, selectors: [uid:1]}\n- {spiffeID: spiffe://example.org/d, selectors: [uid:2]}\n",
			want: []identEntry{
				{id: "spiffe://example.org/d", selectors: []string{"uid:1"}},
				{id: "spiffe://example.org/d", selectors: []string{"uid:2"}},
			},
		},
		{
			name: "explicit document start",
			yaml: "---\n" + identIssueExample + "\n",
			want: []identEntry{{
				id:        "spiffe://example.org/mesh/apps/virtualNode/serviceB",
				dns:       []string{"serviceb.apps.local"},
				selectors: []string{"uid:1337"},
			}},
		},
		{name: "empty file", yaml: "", want: nil},
		{name: "empty list", yaml: "[]\n", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := ParseIdentities([]byte(tt.yaml), identTD)
			if err != nil {
				t.Fatalf("ParseIdentities: %v", err)
			}
			if ids.Len() != len(tt.want) {
				t.Fatalf("Len() = %d, want %d", ids.Len(), len(tt.want))
			}
			got := identRender(ids)
			for i := range tt.want {
				if !identEqual(got[i], tt.want[i]) {
					t.Errorf("entry %d = %+v, want %+v", i, got[i], tt.want[i])
				}
				if td := ids.list[i].SPIFFEID.TrustDomain(); td != identTD {
					t.Errorf("entry %d trust domain = %s, want %s", i, td, identTD)
				}
			}
		})
	}
}

func TestParseIdentitiesBad(t *testing.T) {
	entry := func(sel string) string {
		return "- spiffeID: spiffe://example.org/x\n  selectors: [" + sel + "]\n"
	}
	dns := func(name string) string {
		return "- spiffeID: spiffe://example.org/x\n  dnsNames: [ok.local, \"" + name + "\"]\n  selectors: [uid:1]\n"
	}
	good := "- spiffeID: spiffe://example.org/good\n  selectors: [uid:1]\n"
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown field", "- spiffeID: spiffe://example.org/x\n  selector: [uid:1]\n", []string{"field selector not found"}},
		{"unknown field next to valid ones", identIssueExample + "\n  ttl: 1h\n", []string{"field ttl not found"}},
		{"not a list", "spiffeID: spiffe://example.org/x\nselectors: [uid:1]\n", []string{"identities file"}},
		{"selectors not a list", "- spiffeID: spiffe://example.org/x\n  selectors: uid:1\n", []string{"identities file"}},
		{"other trust domain", "- spiffeID: spiffe://other.org/x\n  selectors: [uid:1]\n", []string{"entry 0: spiffeID:", "not in trust domain example.org"}},
		{"trust domain only", "- spiffeID: spiffe://example.org\n  selectors: [uid:1]\n", []string{"entry 0: spiffeID:", "names the trust domain itself"}},
		{"missing spiffeID", "- selectors: [uid:1]\n", []string{"entry 0: spiffeID:"}},
		{"wrong scheme", "- spiffeID: https://example.org/x\n  selectors: [uid:1]\n", []string{"entry 0: spiffeID:", `"https://example.org/x"`}},
		{"empty path segment", "- spiffeID: spiffe://example.org/a//b\n  selectors: [uid:1]\n", []string{"entry 0: spiffeID:"}},
		{"trailing slash", "- spiffeID: spiffe://example.org/a/\n  selectors: [uid:1]\n", []string{"entry 0: spiffeID:"}},
		{"uppercase trust domain", "- spiffeID: spiffe://Example.org/a\n  selectors: [uid:1]\n", []string{"entry 0: spiffeID:"}},
		{"no selectors key", "- spiffeID: spiffe://example.org/x\n", []string{"entry 0: selectors:", "at least one selector"}},
		{"empty selectors", "- spiffeID: spiffe://example.org/x\n  selectors: []\n", []string{"entry 0: selectors:", "at least one selector"}},
		{"unknown selector kind", good + entry("pid:1"), []string{"entry 1: selectors[0]:", `unknown selector kind "pid"`}},
		{"selector without colon", entry("1337"), []string{"entry 0: selectors[0]:", "want kind:value"}},
		{"selector without value", entry("uid:"), []string{"entry 0: selectors[0]:", "want kind:value"}},
		{"empty selector", entry(`""`), []string{"entry 0: selectors[0]:"}},
		{"uid not a number", good + entry("uid:envoy"), []string{"entry 1: selectors[0]:", "uid must be a number"}},
		{"negative uid", entry("uid:-1"), []string{"entry 0: selectors[0]:", "uid must be a number"}},
		{"uid over uint32", entry("uid:4294967296"), []string{"entry 0: selectors[0]:", "uid must be a number"}},
		{"gid not a number", entry("uid:1, gid:0x10"), []string{"entry 0: selectors[1]:", "gid must be a number"}},
		{"relative exe path", entry("exe:usr/bin/envoy"), []string{"entry 0: selectors[0]:", "absolute, clean path"}},
		{"unclean exe path", entry("exe:/usr/bin/../bin/envoy"), []string{"entry 0: selectors[0]:", "absolute, clean path"}},
		{"exe with trailing slash", entry("exe:/usr/bin/envoy/"), []string{"entry 0: selectors[0]:", "absolute, clean path"}},
		{"exe with double slash", entry("exe://usr/bin/envoy"), []string{"entry 0: selectors[0]:", "absolute, clean path"}},
		{"dns empty label", dns("a..local"), []string{"entry 0: dnsNames[1]:", "1 to 63 characters"}},
		{"dns trailing dot", dns("a.local."), []string{"entry 0: dnsNames[1]:"}},
		{"dns empty name", dns(""), []string{"entry 0: dnsNames[1]:", "1 to 253 characters"}},
		{"dns underscore", dns("my_service.local"), []string{"entry 0: dnsNames[1]:", "only letters, digits and inner hyphens"}},
		{"dns wildcard not first", dns("a.*.local"), []string{"entry 0: dnsNames[1]:", "wildcard"}},
		{"dns partial wildcard", dns("a*.local"), []string{"entry 0: dnsNames[1]:"}},
		{"dns bare wildcard", dns("*"), []string{"entry 0: dnsNames[1]:"}},
		{"dns leading hyphen", dns("-a.local"), []string{"entry 0: dnsNames[1]:"}},
		{"dns trailing hyphen", dns("a-.local"), []string{"entry 0: dnsNames[1]:"}},
		{"dns non-ascii", dns("bücher.local"), []string{"entry 0: dnsNames[1]:"}},
		{"dns label too long", dns(strings.Repeat("a", 64) + ".local"), []string{"entry 0: dnsNames[1]:", "1 to 63 characters"}},
		{"dns name too long", dns(strings.Repeat("abcdefg.", 31) + "abcdef"), []string{"entry 0: dnsNames[1]:", "1 to 253 characters"}},
		{"empty secret name", "- spiffeID: spiffe://example.org/x\n  secretNames: [\"\"]\n  selectors: [uid:1]\n", []string{"entry 0: secretNames[0]:"}},
		{
			name: "duplicate spiffeID with different dnsNames",
			yaml: "- spiffeID: spiffe://example.org/d\n  dnsNames: [a.local]\n  selectors: [uid:1]\n" +
				"- spiffeID: spiffe://example.org/d\n  dnsNames: [b.local]\n  selectors: [uid:2]\n",
			want: []string{"entry 1: dnsNames:", "earlier entry with different dnsNames"},
		},
		{
			name: "duplicate spiffeID, one without dnsNames",
			yaml: "- spiffeID: spiffe://example.org/d\n  dnsNames: [a.local]\n  selectors: [uid:1]\n" +
				good +
				"- spiffeID: spiffe://example.org/d\n  selectors: [uid:2]\n",
			want: []string{"entry 2: dnsNames:", "earlier entry with different dnsNames"},
		},
		{"two documents", identIssueExample + "\n---\n" + identIssueExample + "\n", []string{"single YAML document"}},
		{"trailing empty-ish document", identIssueExample + "\n---\nfoo\n", []string{"single YAML document"}},
		{"syntax error", "- spiffeID: [\n", []string{"identities file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ids, err := ParseIdentities([]byte(tt.yaml), identTD)
			if err == nil {
				t.Fatalf("ParseIdentities accepted the file (%d entries), want an error", ids.Len())
			}
			if ids != nil {
				t.Errorf("ParseIdentities returned identities with an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// Every problem in a file is reported, each with its entry and field.
func TestParseIdentitiesReportsEveryProblem(t *testing.T) {
	yaml := `
- spiffeID: spiffe://example.org/ok
  selectors: [uid:1]
- spiffeID: spiffe://example.org/a
  dnsNames: [ok.local, bad_name]
  selectors: [uid:x, exe:/ok, exe:rel]
- spiffeID: spiffe://other.org/b
  selectors: [uid:1]
- spiffeID: spiffe://example.org/c
`
	_, err := ParseIdentities([]byte(yaml), identTD)
	if err == nil {
		t.Fatal("ParseIdentities accepted a bad file")
	}
	for _, w := range []string{
		"entry 1: dnsNames[1]:",
		"entry 1: selectors[0]:",
		"entry 1: selectors[2]:",
		"entry 2: spiffeID:",
		"entry 3: selectors:",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	for _, unwanted := range []string{"entry 0:", "entry 1: selectors[1]:", "entry 1: dnsNames[0]:"} {
		if strings.Contains(err.Error(), unwanted) {
			t.Errorf("error blames a valid field (%q):\n%v", unwanted, err)
		}
	}
	if n := strings.Count(err.Error(), "entry "); n != 5 {
		t.Errorf("error reports %d problems, want 5:\n%v", n, err)
	}
}

func TestParseIdentitiesLimits(t *testing.T) {
	t.Run("MaxIdentities entries are accepted", func(t *testing.T) {
		data := identMinimal(MaxIdentities)
		if len(data) > MaxIdentitiesFileSize {
			t.Fatalf("test setup: %d bytes", len(data))
		}
		ids, err := ParseIdentities(data, identTD)
		if err != nil {
			t.Fatal(err)
		}
		if ids.Len() != MaxIdentities {
			t.Fatalf("Len() = %d, want %d", ids.Len(), MaxIdentities)
		}
		if got := ids.list[MaxIdentities-1].SPIFFEID.String(); got != fmt.Sprintf("spiffe://example.org/w/%d", MaxIdentities-1) {
			t.Errorf("last entry = %s (file order lost)", got)
		}
	})
	t.Run("too many entries", func(t *testing.T) {
		data := identMinimal(MaxIdentities + 1)
		if len(data) > MaxIdentitiesFileSize {
			t.Fatalf("test setup: %d bytes is over the size limit, so the entry limit is not what is tested", len(data))
		}
		_, err := ParseIdentities(data, identTD)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d entries (limit %d)", MaxIdentities+1, MaxIdentities)) {
			t.Fatalf("err = %v, want the entry limit", err)
		}
	})
	t.Run("too many entries through aliases", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("- &e {spiffeID: spiffe://example.org/x, selectors: [uid:1]}\n")
		for range MaxIdentities {
			b.WriteString("- *e\n")
		}
		_, err := ParseIdentities([]byte(b.String()), identTD)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("(limit %d)", MaxIdentities)) {
			t.Fatalf("err = %v, want the entry limit", err)
		}
	})
	t.Run("oversized file", func(t *testing.T) {
		data := []byte(identIssueExample + "\n" + strings.Repeat("#", MaxIdentitiesFileSize))
		_, err := ParseIdentities(data, identTD)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("limit %d", MaxIdentitiesFileSize)) {
			t.Fatalf("err = %v, want the size limit", err)
		}
	})
	t.Run("file at the size limit", func(t *testing.T) {
		data := identIssueExample + "\n"
		data += strings.Repeat("#", MaxIdentitiesFileSize-len(data))
		ids, err := ParseIdentities([]byte(data), identTD)
		if err != nil {
			t.Fatal(err)
		}
		if ids.Len() != 1 {
			t.Fatalf("Len() = %d, want 1", ids.Len())
		}
	})
	t.Run("too many dnsNames", func(t *testing.T) {
		names := make([]string, maxDNSNames+1)
		for i := range names {
			names[i] = fmt.Sprintf("n%d.local", i)
		}
		yaml := "- spiffeID: spiffe://example.org/x\n  dnsNames: [" + strings.Join(names, ", ") + "]\n  selectors: [uid:1]\n"
		_, err := ParseIdentities([]byte(yaml), identTD)
		if err == nil || !strings.Contains(err.Error(), "entry 0: dnsNames:") {
			t.Fatalf("err = %v, want a dnsNames limit error", err)
		}
		// At the limit it is accepted.
		yaml = "- spiffeID: spiffe://example.org/x\n  dnsNames: [" + strings.Join(names[:maxDNSNames], ", ") + "]\n  selectors: [uid:1]\n"
		if _, err := ParseIdentities([]byte(yaml), identTD); err != nil {
			t.Fatalf("%d dnsNames rejected: %v", maxDNSNames, err)
		}
	})
	t.Run("too many secretNames", func(t *testing.T) {
		names := make([]string, maxSecretNames+1)
		for i := range names {
			names[i] = fmt.Sprintf("s%d", i)
		}
		yaml := "- spiffeID: spiffe://example.org/x\n  secretNames: [" + strings.Join(names, ", ") + "]\n  selectors: [uid:1]\n"
		_, err := ParseIdentities([]byte(yaml), identTD)
		if err == nil || !strings.Contains(err.Error(), "entry 0: secretNames:") {
			t.Fatalf("err = %v, want a secretNames limit error", err)
		}
	})
	t.Run("secret name too long", func(t *testing.T) {
		yaml := "- spiffeID: spiffe://example.org/x\n  secretNames: [ok, " + strings.Repeat("s", maxNameLen+1) + "]\n  selectors: [uid:1]\n"
		_, err := ParseIdentities([]byte(yaml), identTD)
		if err == nil || !strings.Contains(err.Error(), "entry 0: secretNames[1]:") {
			t.Fatalf("err = %v, want a secretNames[1] error", err)
		}
	})
}

func TestSelectorMatches(t *testing.T) {
	envoy := peer.Info{PID: 42, UID: 1337, GID: 1338, Exe: "/usr/bin/envoy"}
	tests := []struct {
		sel  string
		p    peer.Info
		want bool
	}{
		{"uid:1337", envoy, true},
		{"uid:1338", envoy, false},
		{"uid:01337", envoy, true}, // the number counts, not the spelling
		{"uid:0", peer.Info{}, true},
		{"gid:1338", envoy, true},
		{"gid:1337", envoy, false},
		{"exe:/usr/bin/envoy", envoy, true},
		{"exe:/usr/bin/envoy2", envoy, false},
		{"exe:/usr/bin", envoy, false},
		{"exe:/usr/bin/envoy", peer.Info{UID: 1337}, false},
	}
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			sel, err := parseSelector(tt.sel)
			if err != nil {
				t.Fatal(err)
			}
			if sel.String() != tt.sel {
				t.Errorf("String() = %q, want %q", sel.String(), tt.sel)
			}
			if got := sel.Matches(tt.p); got != tt.want {
				t.Errorf("%s.Matches(%v) = %v, want %v", tt.sel, tt.p, got, tt.want)
			}
		})
	}
	// The zero Selector and unknown kinds never match.
	for _, s := range []Selector{{}, {Kind: "pid", Value: "42"}, {Kind: "exe", Value: ""}} {
		if s.Matches(envoy) || s.Matches(peer.Info{}) {
			t.Errorf("%+v matched", s)
		}
	}
	// An identity without selectors matches nobody.
	if (&Identity{}).Matches(envoy) {
		t.Error("identity without selectors matched")
	}
}

func TestIdentitiesMatch(t *testing.T) {
	yaml := `
- spiffeID: spiffe://example.org/uid1337
  selectors: [uid:1337]
- spiffeID: spiffe://example.org/envoy-1337
  selectors: [exe:/usr/bin/envoy, uid:1337]
- spiffeID: spiffe://example.org/all-three
  selectors: [uid:1337, gid:100, exe:/usr/bin/envoy]
- spiffeID: spiffe://example.org/gid100
  selectors: [gid:100]
- spiffeID: spiffe://example.org/uid1337
  selectors: [gid:100]
- spiffeID: spiffe://example.org/other-exe
  selectors: [exe:/usr/bin/other]
- spiffeID: spiffe://example.org/root
  selectors: [uid:0]
`
	ids, err := ParseIdentities([]byte(yaml), identTD)
	if err != nil {
		t.Fatal(err)
	}
	if ids.Len() != 7 {
		t.Fatalf("Len() = %d, want 7", ids.Len())
	}
	tests := []struct {
		name string
		p    peer.Info
		want []string // paths, in order
	}{
		{"all selectors", peer.Info{UID: 1337, GID: 100, Exe: "/usr/bin/envoy"}, []string{"/uid1337", "/envoy-1337", "/all-three", "/gid100"}},
		{"uid and exe but other gid", peer.Info{UID: 1337, GID: 5, Exe: "/usr/bin/envoy"}, []string{"/uid1337", "/envoy-1337"}},
		{"uid only", peer.Info{UID: 1337, GID: 5, Exe: "/usr/bin/curl"}, []string{"/uid1337"}},
		{"uid with unreadable exe", peer.Info{UID: 1337, GID: 100}, []string{"/uid1337", "/gid100"}},
		{"exe but other uid", peer.Info{UID: 1, GID: 5, Exe: "/usr/bin/envoy"}, nil},
		{"gid only, duplicate collapsed", peer.Info{UID: 1, GID: 100}, []string{"/gid100", "/uid1337"}},
		{"other exe", peer.Info{UID: 2, GID: 2, Exe: "/usr/bin/other"}, []string{"/other-exe"}},
		{"root", peer.Info{UID: 0, GID: 0, Exe: "/usr/bin/other"}, []string{"/other-exe", "/root"}},
		{"nobody", peer.Info{UID: 65534, GID: 65534}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, id := range ids.Match(tt.p) {
				got = append(got, id.SPIFFEID.Path())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Match(%v) = %q, want %q", tt.p, got, tt.want)
			}
		})
	}
	// The first of duplicate entries is the one served.
	m := ids.Match(peer.Info{UID: 1337, GID: 100})
	if len(m) == 0 || m[0] != ids.list[0] {
		t.Errorf("Match did not return the first entry of a duplicated SPIFFE ID")
	}
}

func TestIdentitiesMatchEmpty(t *testing.T) {
	ids, err := ParseIdentities(nil, identTD)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids.Match(peer.Info{UID: 0}); len(got) != 0 {
		t.Errorf("empty file matched %d identities", len(got))
	}
}

func FuzzParseIdentities(f *testing.F) {
	seeds := []string{
		identIssueExample,
		"",
		"[]",
		"- spiffeID: spiffe://example.org/ns/a\n  dnsNames: [a.local, \"*.a.local\"]\n  secretNames: [s]\n  selectors: [uid:1000, gid:2000, exe:/usr/bin/envoy]\n",
		"- {spiffeID: spiffe://example.org/d, selectors: [uid:1]}\n- {spiffeID: spiffe://example.org/d, selectors: [uid:2]}\n",
		"- spiffeID: spiffe://other.org/x\n  selectors: [uid:1]\n",
		"- spiffeID: spiffe://example.org\n  selectors: [uid:1]\n",
		"- spiffeID: spiffe://example.org/x\n",
		"- spiffeID: spiffe://example.org/x\n  selectors: [exe:rel/path, uid:x, pid:1]\n",
		"- spiffeID: spiffe://example.org/x\n  dnsNames: [a..b, a_b, a.*.b]\n  selectors: [uid:1]\n",
		"- spiffeID: spiffe://example.org/x\n  unknown: 1\n",
		identIssueExample + "\n---\n" + identIssueExample,
		"- &e {spiffeID: spiffe://example.org/x, selectors: [uid:1]}\n- *e\n- *e\n",
		"spiffeID: x",
		"- null\n- ~\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, err := ParseIdentities(data, identTD)
		if err != nil {
			if ids != nil {
				t.Fatal("identities returned with an error")
			}
			return
		}
		if ids == nil {
			t.Fatal("nil identities without an error")
		}
		if ids.Len() > MaxIdentities {
			t.Fatalf("%d identities accepted", ids.Len())
		}
		dnsByID := map[spiffeid.ID][]string{}
		for i, id := range ids.list {
			if len(id.Selectors) == 0 {
				t.Fatalf("entry %d (%s) has no selectors", i, id.SPIFFEID)
			}
			if !id.SPIFFEID.MemberOf(identTD) {
				t.Fatalf("entry %d: %s is not in %s", i, id.SPIFFEID, identTD)
			}
			if id.SPIFFEID.Path() == "" {
				t.Fatalf("entry %d: %s has no path", i, id.SPIFFEID)
			}
			for _, s := range id.Selectors {
				again, err := parseSelector(s.String())
				if err != nil || again != s {
					t.Fatalf("entry %d: selector %q does not round-trip: %+v, %v", i, s, again, err)
				}
			}
			for _, n := range id.DNSNames {
				if err := validDNSName(n); err != nil || n != strings.ToLower(n) {
					t.Fatalf("entry %d: accepted DNS name %q: %v", i, n, err)
				}
			}
			sorted := slices.Sorted(slices.Values(id.DNSNames))
			if prev, ok := dnsByID[id.SPIFFEID]; ok && !slices.Equal(prev, sorted) {
				t.Fatalf("entry %d: %s accepted with different dnsNames %q and %q", i, id.SPIFFEID, prev, sorted)
			}
			dnsByID[id.SPIFFEID] = sorted
			// An entry matches a peer built from its own selectors when
			// they do not contradict each other.
			var p peer.Info
			kinds := map[string]string{}
			consistent := true
			for _, s := range id.Selectors {
				if v, ok := kinds[s.Kind]; ok && v != s.Value {
					consistent = false
				}
				kinds[s.Kind] = s.Value
				switch s.Kind {
				case "uid":
					p.UID = s.num
				case "gid":
					p.GID = s.num
				case "exe":
					p.Exe = s.Value
				}
			}
			if consistent && !id.Matches(p) {
				t.Fatalf("entry %d does not match %v built from its selectors", i, p)
			}
			if !slices.ContainsFunc(ids.Match(p), func(o *Identity) bool { return o.SPIFFEID == id.SPIFFEID }) && consistent {
				t.Fatalf("Match(%v) lacks %s", p, id.SPIFFEID)
			}
		}
	})
}

// The error from ParseIdentities wraps the joined problems, so callers can
// unwrap them.
func TestParseIdentitiesErrorUnwraps(t *testing.T) {
	_, err := ParseIdentities([]byte("- spiffeID: spiffe://example.org/x\n  selectors: [uid:x, gid:y]\n"), identTD)
	if err == nil {
		t.Fatal("accepted")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v does not wrap a joined error", err)
	}
	if n := len(joined.Unwrap()); n != 2 {
		t.Errorf("joined error holds %d problems, want 2", n)
	}
}
