package fakeenvoy

import (
	"fmt"
	"regexp"
	"strings"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
)

// Tag is one name/value pair Envoy extracted from a stat name.
type Tag struct{ Name, Value string }

// tagExtractor is Envoy's TagExtractorImpl: a regex whose first capture
// group is removed from the stat name and whose second (else first) is the
// tag value, or a fixed value added to every stat.
type tagExtractor struct {
	name   string
	prefix string // first token of the names it can match ("" for any)
	substr string // a fixed substring the name must contain, if set
	re     *regexp.Regexp
	full   bool // RE2 FullMatch instead of a search
	fixed  *string
}

// Default tag extractors, in Envoy's order (source/common/config/
// well_known_names.cc), rewritten for Go's RE2: lookaheads such as
// `^http(?=\.).*?` become `^http\..*?`.
var defaultExtractors = []struct {
	name, re, substr string
	full             bool
}{
	{"envoy.response_code", `_rq(_(\d{3}))$`, "_rq_", false},
	{"envoy.response_code_class", `_rq_(\d)xx$`, "_rq_", false},
	{"envoy.http_user_agent", `^http\..*?\.user_agent\.((.*?)\.)\w+?$`, ".user_agent.", false},
	{"envoy.virtual_cluster", `^vhost\..*?\.vcluster\.((.*?)\.)\w+?$`, ".vcluster.", false},
	{"envoy.fault_downstream_cluster", `^http\..*?\.fault\.((.*?)\.)\w+?$`, ".fault.", false},
	{"envoy.ssl_cipher", `^listener\..*?\.ssl\.cipher(\.(.*?))$`, "", false},
	{"envoy.ssl_cipher_suite", `^cluster\..*?\.ssl\.ciphers(\.(.*?))$`, ".ssl.ciphers.", false},
	{"envoy.grpc_bridge_service", `^cluster\..*?\.grpc\.((.*?)\.)`, ".grpc.", false},
	{"envoy.tcp_prefix", `^tcp\.((.*?)\.)\w+?$`, "", false},
	{"envoy.udp_prefix", `^udp\.((.*?)\.)\w+?$`, "", false},
	{"envoy.ratelimit_prefix", `^ratelimit\.((.*?)\.)\w+?$`, "", false},
	{"envoy.cluster_name", `^cluster\.(([^\.]+)\.).*`, "", true},
	{"envoy.http_conn_manager_prefix", `^listener\..*?\.http\.((.*?)\.)`, ".http.", false},
	{"envoy.http_conn_manager_prefix", `^http\.((.*?)\.)`, "", false},
	{"envoy.listener_address", `^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.)`, "", false},
	{"envoy.virtual_host", `^vhost\.((.*?)\.)`, "", false},
	{"envoy.rds_route_config", `^http\..*?\.rds\.((.*?)\.)\w+?$`, ".rds.", false},
	{"envoy.worker_id", `^listener_manager\.((worker_\d+)\.)`, "listener_manager.worker_", false},
}

// regexPrefix is TagExtractorImplBase::extractRegexPrefix: the literal first
// token of an anchored regex, when the regex continues with `\.`.
func regexPrefix(re string) string {
	if !strings.HasPrefix(re, "^") {
		return ""
	}
	for i := 1; i < len(re); i++ {
		c := re[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			continue
		}
		if i > 1 {
			rest := re[i:]
			last := i == len(re)-1
			if !last && (strings.HasPrefix(rest, `\.`) || strings.HasPrefix(rest, `(?=\.)`)) || last && c == '$' {
				return re[1:i]
			}
		}
		return ""
	}
	return ""
}

// tagProducer is Envoy's TagProducerImpl.
type tagProducer struct {
	noPrefix []*tagExtractor
	byPrefix map[string][]*tagExtractor
	dupNames map[string]bool
	fixed    []Tag
}

// newTagProducer builds the extractors of a bootstrap's stats_config (nil:
// defaults only). A regex Go cannot compile is an error.
func newTagProducer(cfg *metricsv3.StatsConfig) (*tagProducer, error) {
	p := &tagProducer{byPrefix: map[string][]*tagExtractor{}, dupNames: map[string]bool{}}
	seen := map[string]bool{}
	add := func(x *tagExtractor) {
		if seen[x.name] {
			p.dupNames[x.name] = true
		}
		seen[x.name] = true
		if x.prefix == "" {
			p.noPrefix = append(p.noPrefix, x)
		} else {
			p.byPrefix[x.prefix] = append(p.byPrefix[x.prefix], x)
		}
	}
	if cfg.GetUseAllDefaultTags() == nil || cfg.GetUseAllDefaultTags().GetValue() {
		for _, d := range defaultExtractors {
			add(&tagExtractor{name: d.name, prefix: regexPrefix(d.re), substr: d.substr, re: regexp.MustCompile(d.re), full: d.full})
		}
	}
	for _, ts := range cfg.GetStatsTags() {
		name := ts.GetTagName()
		if name == "" {
			return nil, fmt.Errorf("tag_name cannot be empty")
		}
		switch v := ts.GetTagValue().(type) {
		case *metricsv3.TagSpecifier_FixedValue:
			fv := v.FixedValue
			add(&tagExtractor{name: name, fixed: &fv})
			p.fixed = append(p.fixed, Tag{name, fv})
		default:
			expr := ts.GetRegex()
			if expr == "" {
				n := 0
				for _, d := range defaultExtractors {
					if d.name == name {
						add(&tagExtractor{name: d.name, prefix: regexPrefix(d.re), substr: d.substr, re: regexp.MustCompile(d.re), full: d.full})
						n++
					}
				}
				if n == 0 {
					return nil, fmt.Errorf("No regex specified for tag specifier and no default regex for name: '%s'", name)
				}
				continue
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, fmt.Errorf("stats tag %q: regex %q: %v", name, expr, err)
			}
			add(&tagExtractor{name: name, prefix: regexPrefix(expr), re: re})
		}
	}
	return p, nil
}

// produce returns the tags of a stat name, in Envoy's order (extractors
// without a prefix token first, then those for the name's first token), and
// the tag-extracted name.
func (p *tagProducer) produce(name string) ([]Tag, string) {
	var tags []Tag
	remove := make([]bool, len(name))
	removed := false
	done := map[string]bool{}
	apply := func(x *tagExtractor) {
		if p.dupNames[x.name] && done[x.name] {
			return
		}
		if x.fixed != nil {
			tags = append(tags, Tag{x.name, *x.fixed})
			done[x.name] = true
			return
		}
		if x.substr != "" && !strings.Contains(name, x.substr) {
			return
		}
		m := x.re.FindStringSubmatchIndex(name)
		if m == nil || len(m) < 4 || m[2] < 0 {
			return
		}
		if x.full && (m[0] != 0 || m[1] != len(name)) {
			return
		}
		if x.full && m[2] == m[3] {
			return
		}
		value := name[m[2]:m[3]]
		if len(m) >= 6 {
			if m[4] >= 0 {
				value = name[m[4]:m[5]]
			} else {
				value = ""
			}
			if x.full && value == "" {
				value = name[m[2]:m[3]]
			}
		}
		tags = append(tags, Tag{x.name, value})
		for i := m[2]; i < m[3]; i++ {
			remove[i] = true
			removed = true
		}
		done[x.name] = true
	}
	for _, x := range p.noPrefix {
		apply(x)
	}
	if dot := strings.IndexByte(name, '.'); dot >= 0 {
		for _, x := range p.byPrefix[name[:dot]] {
			apply(x)
		}
	}
	if !removed {
		return tags, name
	}
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		if !remove[i] {
			b.WriteByte(name[i])
		}
	}
	return tags, b.String()
}

// CheckStatsConfig reports whether the fake can apply a bootstrap's
// stats_config (every tag regex must compile as RE2).
func CheckStatsConfig(cfg *metricsv3.StatsConfig) error {
	_, err := newTagProducer(cfg)
	return err
}
