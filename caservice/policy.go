package caservice

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"
)

// Agents — the meshd sidecars that enroll — get SPIFFE IDs under
// spiffe://TD/meshd/agent/. The CA service accepts only those as mTLS
// callers and never signs a workload certificate under that path, so a
// workload's certificate cannot be used to act as an agent.
const agentPath = "/meshd/agent/"

// ServerPath is the CA service's own SPIFFE ID path.
const ServerPath = "/meshd/ca-service"

// AgentPrefix is the SPIFFE ID prefix of td's agents.
func AgentPrefix(td spiffeid.TrustDomain) string { return td.IDString() + agentPath }

// IsAgentID reports whether id names an agent (and has a name under the
// agent prefix).
func IsAgentID(id spiffeid.ID) bool {
	return strings.HasPrefix(id.Path(), agentPath) && len(id.Path()) > len(agentPath)
}

// IsReserved reports whether id lies under spiffe://TD/meshd/, the paths
// meshd keeps for its agents and its CA service: no workload certificate is
// ever signed for them.
func IsReserved(id spiffeid.ID) bool {
	return id.Path() == "/meshd" || strings.HasPrefix(id.Path(), "/meshd/")
}

// ServerID is the SPIFFE ID the CA service presents.
func ServerID(td spiffeid.TrustDomain) spiffeid.ID {
	id, _ := spiffeid.FromPath(td, ServerPath)
	return id
}

// KubernetesAgentID is the agent ID of a Kubernetes service account.
func KubernetesAgentID(td spiffeid.TrustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	return spiffeid.FromSegments(td, "meshd", "agent", "k8s", "ns", namespace, "sa", serviceAccount)
}

// MaxPolicySize bounds the policy file.
const MaxPolicySize = 1 << 20

// DefaultAgentTTL is the lifetime of agent certificates.
const DefaultAgentTTL = 24 * time.Hour

// Policy is the CA service's configuration of who may enroll and which
// SPIFFE IDs and DNS names each agent may have certificates for. Anything
// not granted is refused.
type Policy struct {
	// AgentTTL is the lifetime of agent certificates (default 24h).
	AgentTTL time.Duration `yaml:"agentTTL"`
	// Kubernetes enables enrollment with service-account tokens.
	Kubernetes *KubernetesConfig `yaml:"kubernetes"`
	Grants     []Grant           `yaml:"grants"`

	td spiffeid.TrustDomain
}

// Grant lets the agents matching Agent get certificates for the SPIFFE IDs
// and DNS names listed. In patterns a "*" path segment (or DNS label)
// matches exactly one segment (label).
type Grant struct {
	Agent     string   `yaml:"agent"`
	SPIFFEIDs []string `yaml:"spiffeIDs"`
	DNSNames  []string `yaml:"dnsNames"`

	agent pattern
	ids   []pattern
	dns   []pattern
}

// pattern is a SPIFFE ID path or DNS name split into segments.
type pattern struct {
	segs []string
	sep  string
}

func (p pattern) match(s string) bool {
	parts := strings.Split(s, p.sep)
	if len(parts) != len(p.segs) {
		return false
	}
	for i, seg := range p.segs {
		if seg == "*" {
			if parts[i] == "" {
				return false
			}
			continue
		}
		// DNS patterns and names are compared lower-cased.
		if seg != parts[i] {
			return false
		}
	}
	return true
}

func (p pattern) String() string { return strings.Join(p.segs, p.sep) }

// parseIDPattern parses a SPIFFE ID pattern of td ("*" segments allowed).
func parseIDPattern(s string, td spiffeid.TrustDomain) (pattern, error) {
	prefix := td.IDString() + "/"
	if !strings.HasPrefix(s, prefix) {
		return pattern{}, fmt.Errorf("%q: not a SPIFFE ID in trust domain %s", s, td)
	}
	// Validate with "*" replaced by a legal segment.
	if _, err := spiffeid.FromString(strings.ReplaceAll(s, "*", "x")); err != nil {
		return pattern{}, fmt.Errorf("%q: %w", s, err)
	}
	path := strings.TrimPrefix(s, td.IDString())
	for _, seg := range strings.Split(path[1:], "/") {
		if strings.Contains(seg, "*") && seg != "*" {
			return pattern{}, fmt.Errorf("%q: \"*\" must be a whole path segment", s)
		}
	}
	return pattern{segs: strings.Split(path, "/"), sep: "/"}, nil
}

func parseDNSPattern(s string) (pattern, error) {
	if err := validDNSName(strings.ReplaceAll(s, "*", "x")); err != nil {
		return pattern{}, fmt.Errorf("%q: %w", s, err)
	}
	labels := strings.Split(strings.ToLower(s), ".")
	for _, l := range labels {
		if strings.Contains(l, "*") && l != "*" {
			return pattern{}, fmt.Errorf("%q: \"*\" must be a whole DNS label", s)
		}
	}
	return pattern{segs: labels, sep: "."}, nil
}

// validDNSName checks a DNS SAN: LDH labels of 1–63 bytes, 253 in all.
func validDNSName(s string) error {
	if s == "" || len(s) > 253 {
		return errors.New("DNS name must be 1 to 253 bytes")
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return errors.New("DNS labels must be 1 to 63 bytes")
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("a DNS label must not start or end with '-'")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("DNS name has character %q", c)
			}
		}
	}
	return nil
}

// ParsePolicy reads and checks a policy document for trust domain td.
func ParsePolicy(data []byte, td spiffeid.TrustDomain) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, fmt.Errorf("policy is %d bytes (limit %d)", len(data), MaxPolicySize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Policy
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("policy: %w", err)
	}
	p.td = td
	if p.AgentTTL == 0 {
		p.AgentTTL = DefaultAgentTTL
	}
	if p.AgentTTL < time.Minute {
		return nil, fmt.Errorf("policy: agentTTL %s: must be at least 1m", p.AgentTTL)
	}
	if p.Kubernetes != nil {
		if err := p.Kubernetes.Validate(); err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
	}
	for i := range p.Grants {
		g := &p.Grants[i]
		where := fmt.Sprintf("policy: grants[%d]", i)
		var err error
		if g.agent, err = parseIDPattern(g.Agent, td); err != nil {
			return nil, fmt.Errorf("%s.agent: %w", where, err)
		}
		if !strings.HasPrefix(g.Agent, AgentPrefix(td)) {
			return nil, fmt.Errorf("%s.agent: %q must lie under %s", where, g.Agent, AgentPrefix(td))
		}
		if len(g.SPIFFEIDs) == 0 {
			return nil, fmt.Errorf("%s.spiffeIDs: at least one SPIFFE ID (pattern) is required", where)
		}
		for j, s := range g.SPIFFEIDs {
			pt, err := parseIDPattern(s, td)
			if err != nil {
				return nil, fmt.Errorf("%s.spiffeIDs[%d]: %w", where, j, err)
			}
			if path := strings.TrimPrefix(s, td.IDString()); path == "/meshd" || strings.HasPrefix(path, "/meshd/") {
				return nil, fmt.Errorf("%s.spiffeIDs[%d]: %q is reserved for meshd's agents and CA service (spiffe://%s/meshd/...)", where, j, s, td.Name())
			}
			g.ids = append(g.ids, pt)
		}
		for j, s := range g.DNSNames {
			pt, err := parseDNSPattern(s)
			if err != nil {
				return nil, fmt.Errorf("%s.dnsNames[%d]: %w", where, j, err)
			}
			g.dns = append(g.dns, pt)
		}
	}
	return &p, nil
}

// Allows reports whether agent may have a certificate for id with dnsNames;
// the error says what is not granted. One grant must cover the ID and
// every DNS name.
func (p *Policy) Allows(agent, id spiffeid.ID, dnsNames []string) error {
	if !id.MemberOf(p.td) {
		return fmt.Errorf("%s is not in trust domain %s", id, p.td)
	}
	if !agent.MemberOf(p.td) {
		return fmt.Errorf("no grant for agent %s: not in trust domain %s", agent, p.td)
	}
	// A pattern such as spiffe://TD/*/* must not reach meshd's own IDs.
	if IsReserved(id) {
		return fmt.Errorf("%s is reserved for meshd", id)
	}
	matchedAgent, matchedID := false, false
	for i := range p.Grants {
		g := &p.Grants[i]
		if !g.agent.match(agent.Path()) {
			continue
		}
		matchedAgent = true
		if !anyMatch(g.ids, id.Path()) {
			continue
		}
		matchedID = true
		ok := true
		for _, d := range dnsNames {
			if !anyMatch(g.dns, strings.ToLower(d)) {
				ok = false
				break
			}
		}
		if ok {
			return nil
		}
	}
	switch {
	case !matchedAgent:
		return fmt.Errorf("no grant for agent %s", agent)
	case !matchedID:
		return fmt.Errorf("agent %s is not granted %s", agent, id)
	default:
		return fmt.Errorf("agent %s is not granted DNS names %q with %s", agent, dnsNames, id)
	}
}

func anyMatch(ps []pattern, s string) bool {
	for _, p := range ps {
		if p.match(s) {
			return true
		}
	}
	return false
}
