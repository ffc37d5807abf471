package caservice

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// policyTestTD is the trust domain of the policy tests.
var policyTestTD = spiffeid.RequireTrustDomainFromString("example.org")

// policyTestDoc is a valid policy exercising every feature of Allows.
const policyTestDoc = `
agentTTL: 2h
grants:
  # grants[0]: one agent, exact ID, exact and wildcard DNS names.
  - agent: spiffe://example.org/meshd/agent/web
    spiffeIDs:
      - spiffe://example.org/ns/web/sa/frontend
    dnsNames:
      - web.apps.local
      - "*.web.apps.local"
      - API.Example.COM
  # grants[1]: "*" segments in the agent and the ID; no DNS names.
  - agent: spiffe://example.org/meshd/agent/node/*
    spiffeIDs:
      - spiffe://example.org/app/*/worker
  # grants[2] and grants[3] cover the same ID with different DNS names:
  # a request needs one grant covering all of its names.
  - agent: spiffe://example.org/meshd/agent/split
    spiffeIDs:
      - spiffe://example.org/ns/split/sa/svc
    dnsNames:
      - "*.apps.local"
  - agent: spiffe://example.org/meshd/agent/split
    spiffeIDs:
      - spiffe://example.org/ns/split/sa/svc
    dnsNames:
      - b.other.local
  # grants[4]: another ID of the same agent with its own DNS name.
  - agent: spiffe://example.org/meshd/agent/split
    spiffeIDs:
      - spiffe://example.org/ns/split/sa/admin
    dnsNames:
      - admin.local
`

func policyTestParse(t *testing.T, doc string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(doc), policyTestTD)
	if err != nil {
		t.Fatalf("ParsePolicy: %v", err)
	}
	return p
}

func TestParsePolicyValid(t *testing.T) {
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, []byte(`{"keys":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		doc        string
		wantTTL    time.Duration
		wantGrants int
		wantK8s    *KubernetesConfig
	}{
		{name: "empty document", doc: "", wantTTL: DefaultAgentTTL},
		{name: "comment only", doc: "# nothing granted yet\n", wantTTL: DefaultAgentTTL},
		{name: "empty grants", doc: "grants: []\n", wantTTL: DefaultAgentTTL},
		{name: "full", doc: policyTestDoc, wantTTL: 2 * time.Hour, wantGrants: 5},
		{name: "agentTTL exactly 1m", doc: "agentTTL: 1m\n", wantTTL: time.Minute},
		{name: "agentTTL 0 means default", doc: "agentTTL: 0s\n", wantTTL: DefaultAgentTTL},
		{
			name: "wildcards everywhere",
			doc: `grants:
  - agent: spiffe://example.org/meshd/agent/*/*
    spiffeIDs: ["spiffe://example.org/*", "spiffe://example.org/ns/*/sa/*"]
    dnsNames: ["*", "*.*.local"]
`,
			wantTTL: DefaultAgentTTL, wantGrants: 1,
		},
		{
			name: "kubernetes section",
			doc: `agentTTL: 12h
kubernetes:
  issuer: https://kubernetes.default.svc.cluster.local
  audience: meshd-ca
  jwksFile: ` + jwks + `
  leeway: 30s
grants:
  - agent: spiffe://example.org/meshd/agent/k8s/ns/*/sa/*
    spiffeIDs: ["spiffe://example.org/ns/*/sa/*"]
`,
			wantTTL: 12 * time.Hour, wantGrants: 1,
			wantK8s: &KubernetesConfig{
				Issuer:   "https://kubernetes.default.svc.cluster.local",
				Audience: "meshd-ca",
				JWKSFile: jwks,
				Leeway:   30 * time.Second,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policyTestParse(t, tt.doc)
			if p.AgentTTL != tt.wantTTL {
				t.Errorf("AgentTTL = %s, want %s", p.AgentTTL, tt.wantTTL)
			}
			if len(p.Grants) != tt.wantGrants {
				t.Errorf("%d grants, want %d", len(p.Grants), tt.wantGrants)
			}
			switch {
			case tt.wantK8s == nil && p.Kubernetes != nil:
				t.Errorf("Kubernetes = %+v, want nil", *p.Kubernetes)
			case tt.wantK8s != nil && (p.Kubernetes == nil || *p.Kubernetes != *tt.wantK8s):
				t.Errorf("Kubernetes = %+v, want %+v", p.Kubernetes, *tt.wantK8s)
			}
		})
	}
}

func TestParsePolicyEmptyGrantsNothing(t *testing.T) {
	p := policyTestParse(t, "")
	agent := spiffeid.RequireFromString("spiffe://example.org/meshd/agent/web")
	id := spiffeid.RequireFromString("spiffe://example.org/ns/web/sa/frontend")
	err := p.Allows(agent, id, nil)
	if err == nil || !strings.Contains(err.Error(), "no grant for agent") {
		t.Fatalf("Allows on an empty policy = %v, want \"no grant for agent\"", err)
	}
}

func TestParsePolicyErrors(t *testing.T) {
	// grant renders a grant whose fields are YAML flow values.
	grant := func(agent, ids, dns string) string {
		s := "  - agent: " + agent + "\n"
		if ids != "" {
			s += "    spiffeIDs: " + ids + "\n"
		}
		if dns != "" {
			s += "    dnsNames: " + dns + "\n"
		}
		return s
	}
	const okAgent = "spiffe://example.org/meshd/agent/web"
	const okIDs = "[spiffe://example.org/ns/web]"
	// second prefixes a valid grant, so that errors must name grants[1].
	second := "grants:\n" + grant(okAgent, okIDs, "")
	tests := []struct {
		name string
		doc  string
		// want are substrings of the error: the field path first.
		want []string
	}{
		{"unknown top-level field", "agentTTL: 1h\ngrant: []\n", []string{"field grant not found"}},
		{"unknown grant field", second + "  - agent: " + okAgent + "\n    spiffeIDs: " + okIDs + "\n    dns: [a.local]\n", []string{"field dns not found"}},
		{"unknown kubernetes field", "kubernetes:\n  issuer: https://k8s\n  audiences: [x]\n", []string{"field audiences not found"}},
		{"not YAML", "grants: [\n", []string{"policy: "}},
		{"grants not a list", "grants: {agent: x}\n", []string{"policy: "}},
		{"agentTTL not a duration", "agentTTL: soon\n", []string{"policy: "}},
		{"agentTTL below 1m", "agentTTL: 59s\n", []string{"agentTTL", "at least 1m"}},
		{"agentTTL negative", "agentTTL: -1h\n", []string{"agentTTL", "at least 1m"}},
		{"kubernetes invalid", "kubernetes:\n  audience: meshd-ca\n  jwksFile: /x\n", []string{"kubernetes.issuer: required"}},
		{"kubernetes two key sources", "kubernetes:\n  issuer: https://k8s\n  audience: a\n  jwksFile: /x\n  jwksURL: https://k8s/jwks\n", []string{"mutually exclusive"}},

		{"agent missing", "grants:\n  - spiffeIDs: " + okIDs + "\n", []string{"grants[0].agent"}},
		{"agent outside agent prefix", second + grant("spiffe://example.org/ns/web", okIDs, ""), []string{"grants[1].agent", "must lie under spiffe://example.org/meshd/agent/"}},
		{"agent equal to agent prefix", second + grant("spiffe://example.org/meshd/agent", okIDs, ""), []string{"grants[1].agent", "must lie under"}},
		{"agent pattern under agent path", second + grant("spiffe://example.org/meshd/*/web", okIDs, ""), []string{"grants[1].agent", "must lie under"}},
		{"agent in another trust domain", second + grant("spiffe://other.org/meshd/agent/web", okIDs, ""), []string{"grants[1].agent", "trust domain example.org"}},
		{"agent not a SPIFFE ID", second + grant("https://example.org/meshd/agent/web", okIDs, ""), []string{"grants[1].agent"}},
		{"agent star inside a segment", second + grant("spiffe://example.org/meshd/agent/web-*", okIDs, ""), []string{"grants[1].agent", "whole path segment"}},
		{"agent double star", second + grant("spiffe://example.org/meshd/agent/**", okIDs, ""), []string{"grants[1].agent", "whole path segment"}},

		{"spiffeIDs missing", second + grant(okAgent, "", ""), []string{"grants[1].spiffeIDs", "at least one"}},
		{"spiffeIDs empty", second + grant(okAgent, "[]", ""), []string{"grants[1].spiffeIDs", "at least one"}},
		{"spiffeIDs under agent prefix", second + grant(okAgent, "[spiffe://example.org/meshd/agent/web]", ""), []string{"grants[1].spiffeIDs[0]", "reserved"}},
		{"spiffeIDs agent wildcard", second + grant(okAgent, "[spiffe://example.org/ns/a, spiffe://example.org/meshd/agent/*]", ""), []string{"grants[1].spiffeIDs[1]", "reserved"}},
		{"spiffeIDs CA service ID", second + grant(okAgent, "[spiffe://example.org/meshd/ca-service]", ""), []string{"grants[1].spiffeIDs[0]", "reserved"}},
		{"spiffeIDs other trust domain", second + grant(okAgent, "[spiffe://other.org/ns/web]", ""), []string{"grants[1].spiffeIDs[0]", "trust domain example.org"}},
		{"spiffeIDs trust domain only", second + grant(okAgent, "[spiffe://example.org]", ""), []string{"grants[1].spiffeIDs[0]"}},
		{"spiffeIDs trailing slash", second + grant(okAgent, "[spiffe://example.org/ns/]", ""), []string{"grants[1].spiffeIDs[0]"}},
		{"spiffeIDs empty segment", second + grant(okAgent, "[spiffe://example.org/ns//web]", ""), []string{"grants[1].spiffeIDs[0]"}},
		{"spiffeIDs dot segment", second + grant(okAgent, "[spiffe://example.org/ns/../web]", ""), []string{"grants[1].spiffeIDs[0]"}},
		{"spiffeIDs star inside a segment", second + grant(okAgent, "[spiffe://example.org/ns/web, \"spiffe://example.org/ns/*x\"]", ""), []string{"grants[1].spiffeIDs[1]", "whole path segment"}},
		{"spiffeIDs query", second + grant(okAgent, "[\"spiffe://example.org/ns/web?x=1\"]", ""), []string{"grants[1].spiffeIDs[0]"}},

		{"dnsNames star inside a label", second + grant(okAgent, okIDs, "[\"api*.apps.local\"]"), []string{"grants[1].dnsNames[0]", "whole DNS label"}},
		{"dnsNames underscore", second + grant(okAgent, okIDs, "[ok.local, bad_name.local]"), []string{"grants[1].dnsNames[1]", "character"}},
		{"dnsNames empty", second + grant(okAgent, okIDs, "[\"\"]"), []string{"grants[1].dnsNames[0]"}},
		{"dnsNames empty label", second + grant(okAgent, okIDs, "[a..local]"), []string{"grants[1].dnsNames[0]"}},
		{"dnsNames trailing dot", second + grant(okAgent, okIDs, "[a.local.]"), []string{"grants[1].dnsNames[0]"}},
		{"dnsNames leading hyphen", second + grant(okAgent, okIDs, "[-a.local]"), []string{"grants[1].dnsNames[0]", "'-'"}},
		{"dnsNames label over 63 bytes", second + grant(okAgent, okIDs, "["+strings.Repeat("a", 64)+".local]"), []string{"grants[1].dnsNames[0]", "63"}},
		{"dnsNames over 253 bytes", second + grant(okAgent, okIDs, "["+strings.Repeat("abcdefghi.", 25)+"local]"), []string{"grants[1].dnsNames[0]", "253"}},
		{"dnsNames IP address", second + grant(okAgent, okIDs, "[\"10.0.0.1:80\"]"), []string{"grants[1].dnsNames[0]"}},

		{"oversized", policyTestDoc + strings.Repeat("#", MaxPolicySize), []string{"limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.doc), policyTestTD)
			if err == nil {
				t.Fatalf("ParsePolicy accepted\n%s\n(%d grants)", tt.doc, len(p.Grants))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParsePolicySizeLimit(t *testing.T) {
	doc := "grants: []\n"
	atLimit := doc + strings.Repeat("#", MaxPolicySize-len(doc))
	if _, err := ParsePolicy([]byte(atLimit), policyTestTD); err != nil {
		t.Errorf("a policy of exactly MaxPolicySize bytes: %v", err)
	}
	if _, err := ParsePolicy([]byte(atLimit+"\n"), policyTestTD); err == nil {
		t.Error("a policy of MaxPolicySize+1 bytes was accepted")
	}
}

func TestPolicyAllows(t *testing.T) {
	p := policyTestParse(t, policyTestDoc)
	const td = "spiffe://example.org"
	tests := []struct {
		name  string
		agent string
		id    string
		dns   []string
		// wantErr is "" when allowed, else a substring of the error.
		wantErr string
	}{
		{"exact ID, no DNS names", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", nil, ""},
		{"exact ID, empty DNS names", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{}, ""},
		{"exact DNS name", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"web.apps.local"}, ""},
		{"DNS star one label", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"v1.web.apps.local"}, ""},
		{"DNS star two labels", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"a.b.web.apps.local"}, "not granted DNS names"},
		{"DNS star zero labels", td + "/meshd/agent/split", td + "/ns/split/sa/svc", []string{"apps.local"}, "not granted DNS names"},
		{"DNS star one label under apps.local", td + "/meshd/agent/split", td + "/ns/split/sa/svc", []string{"x.apps.local"}, ""},
		{"DNS star does not match a.b.apps.local", td + "/meshd/agent/split", td + "/ns/split/sa/svc", []string{"a.b.apps.local"}, "not granted DNS names"},
		{"DNS name upper-case", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"WEB.Apps.Local"}, ""},
		{"DNS pattern upper-case", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"api.example.com"}, ""},
		{"DNS name and pattern mixed case", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"Api.EXAMPLE.com", "V2.Web.Apps.Local"}, ""},
		{"DNS all names granted", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"web.apps.local", "x.web.apps.local", "api.example.com"}, ""},
		{"DNS one name not granted", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"web.apps.local", "evil.local"}, "not granted DNS names"},
		{"DNS suffix is not a match", td + "/meshd/agent/web", td + "/ns/web/sa/frontend", []string{"xweb.apps.local"}, "not granted DNS names"},
		{"DNS names of grant without DNS", td + "/meshd/agent/node/a", td + "/app/a/worker", []string{"a.local"}, "not granted DNS names"},

		{"same grant: first grant's name", td + "/meshd/agent/split", td + "/ns/split/sa/svc", []string{"a.apps.local"}, ""},
		{"same grant: second grant's name", td + "/meshd/agent/split", td + "/ns/split/sa/svc", []string{"b.other.local"}, ""},
		{"same grant: names of two grants", td + "/meshd/agent/split", td + "/ns/split/sa/svc", []string{"a.apps.local", "b.other.local"}, "not granted DNS names"},
		{"same grant: name of another ID's grant", td + "/meshd/agent/split", td + "/ns/split/sa/svc", []string{"admin.local"}, "not granted DNS names"},
		{"same grant: other ID with its name", td + "/meshd/agent/split", td + "/ns/split/sa/admin", []string{"admin.local"}, ""},
		{"same grant: other ID with svc's name", td + "/meshd/agent/split", td + "/ns/split/sa/admin", []string{"a.apps.local"}, "not granted DNS names"},

		{"ID star one segment", td + "/meshd/agent/node/n1", td + "/app/a/worker", nil, ""},
		{"ID star zero segments", td + "/meshd/agent/node/n1", td + "/app/worker", nil, "is not granted spiffe://example.org/app/worker"},
		{"ID star two segments", td + "/meshd/agent/node/n1", td + "/app/a/b/worker", nil, "is not granted"},
		{"ID longer than pattern", td + "/meshd/agent/node/n1", td + "/app/a/worker/x", nil, "is not granted"},
		{"agent star one segment", td + "/meshd/agent/node/other", td + "/app/b/worker", nil, ""},
		{"agent star zero segments", td + "/meshd/agent/node", td + "/app/a/worker", nil, "no grant for agent spiffe://example.org/meshd/agent/node"},
		{"agent star two segments", td + "/meshd/agent/node/a/b", td + "/app/a/worker", nil, "no grant for agent"},

		{"agent not matched", td + "/meshd/agent/db", td + "/ns/web/sa/frontend", nil, "no grant for agent spiffe://example.org/meshd/agent/db"},
		{"agent prefix only", td + "/meshd/agent/webx", td + "/ns/web/sa/frontend", nil, "no grant for agent"},
		{"ID not granted", td + "/meshd/agent/web", td + "/ns/web/sa/backend", nil, "agent spiffe://example.org/meshd/agent/web is not granted spiffe://example.org/ns/web/sa/backend"},
		{"ID granted to another agent", td + "/meshd/agent/web", td + "/app/a/worker", nil, "is not granted"},
		{"ID prefix of granted ID", td + "/meshd/agent/web", td + "/ns/web/sa", nil, "is not granted"},
		{"ID in another trust domain", td + "/meshd/agent/web", "spiffe://other.org/ns/web/sa/frontend", nil, "not in trust domain example.org"},
		// Grants name agents by full SPIFFE ID: an agent of another trust
		// domain with the same path is not the granted agent.
		{"agent in another trust domain", "spiffe://other.org/meshd/agent/web", td + "/ns/web/sa/frontend", nil, "no grant for agent spiffe://other.org/meshd/agent/web"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := spiffeid.RequireFromString(tt.agent)
			id := spiffeid.RequireFromString(tt.id)
			err := p.Allows(agent, id, tt.dns)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Allows(%s, %s, %q) = %v, want allowed", agent, id, tt.dns, err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Allows(%s, %s, %q) allowed, want error %q", agent, id, tt.dns, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Allows(%s, %s, %q) = %q, want it to mention %q", agent, id, tt.dns, err, tt.wantErr)
			}
		})
	}
}

// TestPolicyNeverGrantsReservedIDs: ParsePolicy refuses spiffeIDs entries
// under the agent prefix or equal to the CA service's ID, so "*" patterns
// must not grant those IDs either. Either ParsePolicy refuses such a
// pattern or Allows refuses the reserved ID.
func TestPolicyNeverGrantsReservedIDs(t *testing.T) {
	agent := spiffeid.RequireFromString("spiffe://example.org/meshd/agent/web")
	reserved := []spiffeid.ID{
		spiffeid.RequireFromString("spiffe://example.org/meshd/agent/web"),
		spiffeid.RequireFromString("spiffe://example.org/meshd/agent/other"),
		ServerID(policyTestTD),
	}
	for _, pat := range []string{
		"spiffe://example.org/meshd/*/web",
		"spiffe://example.org/*/agent/other",
		"spiffe://example.org/*/*/*",
		"spiffe://example.org/meshd/*",
		"spiffe://example.org/*/ca-service",
		"spiffe://example.org/*/*",
	} {
		t.Run(pat, func(t *testing.T) {
			doc := "grants:\n  - agent: " + agent.String() + "\n    spiffeIDs: [\"" + pat + "\"]\n"
			p, err := ParsePolicy([]byte(doc), policyTestTD)
			if err != nil {
				return // refusing the pattern is one way to be safe
			}
			for _, id := range reserved {
				if err := p.Allows(agent, id, nil); err == nil {
					t.Errorf("pattern %q grants reserved ID %s", pat, id)
				}
			}
		})
	}
}

// TestPolicyLiteralGrantsAreUsable: a policy ParsePolicy accepts must not
// hold a grant Allows can never honour; a literal SPIFFE ID is either
// refused up front or granted.
func TestPolicyLiteralGrantsAreUsable(t *testing.T) {
	agent := spiffeid.RequireFromString("spiffe://example.org/meshd/agent/web")
	for _, lit := range []string{
		"spiffe://example.org/ns/web/sa/frontend",
		"spiffe://example.org/meshd",
		"spiffe://example.org/meshd/web",
		"spiffe://example.org/meshd/agent",
		"spiffe://example.org/meshd/ca-service/x",
	} {
		t.Run(lit, func(t *testing.T) {
			doc := "grants:\n  - agent: " + agent.String() + "\n    spiffeIDs: [\"" + lit + "\"]\n"
			p, err := ParsePolicy([]byte(doc), policyTestTD)
			if err != nil {
				return
			}
			if err := p.Allows(agent, spiffeid.RequireFromString(lit), nil); err != nil {
				t.Errorf("ParsePolicy accepted a grant of %s, but Allows refuses it: %v", lit, err)
			}
		})
	}
}

// policyFuzzIDs are the agents and IDs Allows is tried with on every policy
// the fuzzer gets accepted.
var policyFuzzIDs = []spiffeid.ID{
	{},
	spiffeid.RequireFromString("spiffe://example.org/meshd/agent/web"),
	spiffeid.RequireFromString("spiffe://example.org/meshd/agent/node/n1"),
	spiffeid.RequireFromString("spiffe://example.org/meshd/ca-service"),
	spiffeid.RequireFromString("spiffe://example.org/ns/web/sa/frontend"),
	spiffeid.RequireFromString("spiffe://example.org/x"),
	spiffeid.RequireFromString("spiffe://example.org/app/a/worker"),
	spiffeid.RequireFromString("spiffe://other.org/meshd/agent/web"),
	spiffeid.RequireFromString("spiffe://other.org/ns/web/sa/frontend"),
}

var policyFuzzDNS = [][]string{nil, {"web.apps.local"}, {"A.B.apps.local", "x"}, {""}, {"*"}, {"..."}}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(policyTestDoc))
	f.Add([]byte(""))
	f.Add([]byte("agentTTL: 1m\ngrants: []\n"))
	f.Add([]byte("kubernetes:\n  issuer: https://k8s\n  audience: a\n  jwksFile: /x\n"))
	f.Add([]byte("grants:\n  - agent: spiffe://example.org/meshd/agent/*/*\n    spiffeIDs: [\"spiffe://example.org/*\"]\n    dnsNames: [\"*\", \"*.*\"]\n"))
	f.Add([]byte("grants:\n  - agent: spiffe://example.org/meshd/agent/web\n    spiffeIDs: [spiffe://example.org/meshd/agent/web]\n"))
	f.Add([]byte("grants:\n  - agent: spiffe://example.org/ns/x\n    spiffeIDs: [spiffe://example.org/x]\n"))
	f.Add([]byte("grants:\n  - agent: spiffe://example.org/meshd/agent/x\n    spiffeIDs: [\"spiffe://example.org/x*\"]\n    dnsNames: [\"a*.b\"]\n"))
	f.Add([]byte("grants: [{agent: 'spiffe://example.org/meshd/agent/x', spiffeIDs: ['spiffe://example.org/x'], dnsNames: ['-x']}]\n"))
	f.Add([]byte("agentTTL: 59s\n"))
	f.Add([]byte("grants: [\n"))
	f.Add([]byte("foo: bar\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePolicy(data, policyTestTD)
		if err != nil {
			return
		}
		if p.AgentTTL < time.Minute {
			t.Errorf("accepted agentTTL %s", p.AgentTTL)
		}
		for i, g := range p.Grants {
			if !strings.HasPrefix(g.Agent, AgentPrefix(policyTestTD)) {
				t.Errorf("grants[%d].agent %q accepted outside the agent prefix", i, g.Agent)
			}
			if len(g.SPIFFEIDs) == 0 {
				t.Errorf("grants[%d] accepted without spiffeIDs", i)
			}
		}
		for _, agent := range policyFuzzIDs {
			for _, id := range policyFuzzIDs {
				for _, dns := range policyFuzzDNS {
					if err := p.Allows(agent, id, dns); err == nil && !id.MemberOf(policyTestTD) {
						t.Errorf("Allows(%s, %s, %q) granted an ID of another trust domain", agent, id, dns)
					}
				}
			}
		}
	})
}
