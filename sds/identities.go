package sds

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/internal/peer"
)

// Limits on the identities file.
const (
	MaxIdentitiesFileSize = 1 << 20
	MaxIdentities         = 10000
	maxDNSNames           = 64
	maxSecretNames        = 16
)

// Identity is one entry of the identities file: callers matching every
// selector get the SPIFFE ID, with the DNS SANs.
type Identity struct {
	SPIFFEID spiffeid.ID
	DNSNames []string
	// SecretNames are extra SDS names the identity's certificate is served
	// under (App Mesh's secretName strings, for example).
	SecretNames []string
	Selectors   []Selector
}

// Selector is one condition on the caller.
type Selector struct {
	Kind  string // "uid", "gid" or "exe"
	Value string
	num   uint32
}

func (s Selector) String() string { return s.Kind + ":" + s.Value }

// Matches reports whether the peer satisfies the selector.
func (s Selector) Matches(p peer.Info) bool {
	switch s.Kind {
	case "uid":
		return p.UID == s.num
	case "gid":
		return p.GID == s.num
	case "exe":
		return p.Exe != "" && p.Exe == s.Value
	}
	return false
}

// Matches reports whether the peer satisfies every selector.
func (id *Identity) Matches(p peer.Info) bool {
	for _, s := range id.Selectors {
		if !s.Matches(p) {
			return false
		}
	}
	return len(id.Selectors) > 0
}

// Identities is a parsed identities file.
type Identities struct {
	list []*Identity
}

// Len is the number of entries.
func (ids *Identities) Len() int { return len(ids.list) }

// Match returns the identities the peer is entitled to, in file order
// (the first is served as `default`).
func (ids *Identities) Match(p peer.Info) []*Identity {
	var out []*Identity
	for _, id := range ids.list {
		if id.Matches(p) && !slices.ContainsFunc(out, func(o *Identity) bool { return o.SPIFFEID == id.SPIFFEID }) {
			out = append(out, id)
		}
	}
	return out
}

type rawIdentity struct {
	SPIFFEID    string   `yaml:"spiffeID"`
	DNSNames    []string `yaml:"dnsNames"`
	SecretNames []string `yaml:"secretNames"`
	Selectors   []string `yaml:"selectors"`
}

// ParseIdentities parses an identities file. Every problem is reported with
// its entry index and field; the file is accepted only if it has none.
func ParseIdentities(data []byte, td spiffeid.TrustDomain) (*Identities, error) {
	if len(data) > MaxIdentitiesFileSize {
		return nil, fmt.Errorf("identities file is %d bytes (limit %d)", len(data), MaxIdentitiesFileSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw []rawIdentity
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("identities file: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("identities file: want a single YAML document holding a list of identities")
	}
	if len(raw) > MaxIdentities {
		return nil, fmt.Errorf("identities file has %d entries (limit %d)", len(raw), MaxIdentities)
	}
	var errs []error
	bad := func(i int, field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("entry %d: %s: %s", i, field, fmt.Sprintf(format, args...)))
	}
	out := &Identities{}
	dnsByID := map[spiffeid.ID]string{}
	for i, r := range raw {
		id, err := spiffeid.FromString(r.SPIFFEID)
		if err != nil {
			bad(i, "spiffeID", "%q: %v", r.SPIFFEID, err)
			continue
		}
		if !id.MemberOf(td) {
			bad(i, "spiffeID", "%s is not in trust domain %s", id, td)
			continue
		}
		if id.Path() == "" {
			bad(i, "spiffeID", "%s names the trust domain itself, not a workload", id)
			continue
		}
		ent := &Identity{SPIFFEID: id}
		if len(r.DNSNames) > maxDNSNames {
			bad(i, "dnsNames", "%d names (limit %d)", len(r.DNSNames), maxDNSNames)
		}
		for j, n := range r.DNSNames {
			if err := validDNSName(n); err != nil {
				bad(i, fmt.Sprintf("dnsNames[%d]", j), "%q: %v", n, err)
			}
			ent.DNSNames = append(ent.DNSNames, strings.ToLower(n))
		}
		if len(r.SecretNames) > maxSecretNames {
			bad(i, "secretNames", "%d names (limit %d)", len(r.SecretNames), maxSecretNames)
		}
		for j, n := range r.SecretNames {
			if n == "" || len(n) > maxNameLen {
				bad(i, fmt.Sprintf("secretNames[%d]", j), "must be 1 to %d bytes", maxNameLen)
			}
			ent.SecretNames = append(ent.SecretNames, n)
		}
		if len(r.Selectors) == 0 {
			bad(i, "selectors", "at least one selector is required (uid:N, gid:N or exe:/path)")
		}
		for j, s := range r.Selectors {
			sel, err := parseSelector(s)
			if err != nil {
				bad(i, fmt.Sprintf("selectors[%d]", j), "%v", err)
				continue
			}
			ent.Selectors = append(ent.Selectors, sel)
		}
		// Entries sharing a SPIFFE ID (alternative selectors) must describe
		// the same certificate and names: only the first matching one counts.
		sig := strings.Join(slices.Sorted(slices.Values(ent.DNSNames)), ",") + "|" + strings.Join(slices.Sorted(slices.Values(ent.SecretNames)), ",")
		if prev, ok := dnsByID[id]; ok && prev != sig {
			bad(i, "dnsNames", "%s appears in an earlier entry with different dnsNames or secretNames", id)
		}
		dnsByID[id] = sig
		out.list = append(out.list, ent)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("identities file: %w", errors.Join(errs...))
	}
	return out, nil
}

func parseSelector(s string) (Selector, error) {
	kind, val, ok := strings.Cut(s, ":")
	if !ok || val == "" {
		return Selector{}, fmt.Errorf("%q: want kind:value (uid:N, gid:N or exe:/path)", s)
	}
	switch kind {
	case "uid", "gid":
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return Selector{}, fmt.Errorf("%q: %s must be a number", s, kind)
		}
		return Selector{Kind: kind, Value: val, num: uint32(n)}, nil
	case "exe":
		if !filepath.IsAbs(val) || filepath.Clean(val) != val {
			return Selector{}, fmt.Errorf("%q: exe must be an absolute, clean path", s)
		}
		return Selector{Kind: kind, Value: val}, nil
	}
	return Selector{}, fmt.Errorf("%q: unknown selector kind %q (want uid, gid or exe)", s, kind)
}

func validDNSName(n string) error {
	if n == "" || len(n) > 253 {
		return errors.New("must be 1 to 253 characters")
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if l == "*" && i == 0 && len(labels) > 1 {
			continue
		}
		if l == "" || len(l) > 63 {
			return errors.New("each label must be 1 to 63 characters")
		}
		for k, c := range l {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && k > 0 && k < len(l)-1
			if !ok {
				return fmt.Errorf("label %q: only letters, digits and inner hyphens are allowed (a wildcard only as the whole first label)", l)
			}
		}
	}
	return nil
}
