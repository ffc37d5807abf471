package fakeenvoy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// BucketsMode is /stats' histogram_buckets parameter.
type BucketsMode int

// The modes.
const (
	Summary BucketsMode = iota // quantiles (no histogram_buckets, or none)
	Cumulative
	Disjoint
	Detailed
)

// StatsFormat is /stats' format parameter.
type StatsFormat int

// The formats.
const (
	Text StatsFormat = iota
	JSON
	Prometheus
)

// StatsType is /stats' type parameter.
type StatsType int

// The types.
const (
	AllTypes StatsType = iota
	Counters
	Gauges
	Histograms
	TextReadouts
)

// StatsQuery is a parsed /stats query.
type StatsQuery struct {
	Format       StatsFormat
	Buckets      BucketsMode
	Type         StatsType
	UsedOnly     bool
	Filter       *regexp.Regexp
	TextReadouts bool // Prometheus: export text readouts as gauges
}

// ParseStatsQuery parses /stats' parameters as Envoy's StatsParams does; the
// error text is Envoy's 400 body.
func ParseStatsQuery(q map[string]string) (StatsQuery, error) {
	var sq StatsQuery
	_, sq.UsedOnly = q["usedonly"]
	_, sq.TextReadouts = q["text_readouts"]
	if f, ok := q["filter"]; ok {
		re, err := regexp.Compile(f)
		if err != nil {
			return sq, fmt.Errorf("Invalid re2 regex")
		}
		sq.Filter = re
	}
	switch q["histogram_buckets"] {
	case "", "none":
	case "cumulative":
		sq.Buckets = Cumulative
	case "disjoint":
		sq.Buckets = Disjoint
	case "detailed":
		sq.Buckets = Detailed
	default:
		return sq, fmt.Errorf("usage: /stats?histogram_buckets=(cumulative|disjoint|none)\n")
	}
	if t, ok := q["type"]; ok {
		switch t {
		case "Counters":
			sq.Type = Counters
		case "Gauges":
			sq.Type = Gauges
		case "Histograms":
			sq.Type = Histograms
		case "TextReadouts":
			sq.Type = TextReadouts
		case "All":
			sq.Type = AllTypes
		default:
			return sq, fmt.Errorf("invalid &type= param")
		}
	}
	switch q["format"] {
	case "", "text":
	case "json":
		sq.Format = JSON
	case "prometheus":
		sq.Format = Prometheus
	case "html", "active-html":
		return sq, fmt.Errorf("HTML output was disabled by building with --define=admin_html=disabled")
	default:
		return sq, fmt.Errorf("usage: /stats?format=(html|active-html|json|prometheus|text)\n\n")
	}
	return sq, nil
}

// Stats renders the stats as GET /stats?<q> would (flushing histograms
// first unless Options.ManualFlush). It is the body of the admin answer.
func (e *Envoy) Stats(q StatsQuery) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.statsLocked(q)
}

func (e *Envoy) statsLocked(q StatsQuery) []byte {
	if !e.opts.ManualFlush {
		e.flushLocked()
	}
	e.st.gauge("server.uptime", "", 0, false).set(uint64(e.now().Sub(e.start) / 1e9))
	if q.Format == Prometheus {
		return e.prometheusLocked(q)
	}
	show := func(st *stat) bool {
		if q.UsedOnly && !st.isUsed() {
			return false
		}
		return q.Filter == nil || q.Filter.MatchString(st.name)
	}
	var texts, numbers, hists []*stat
	if q.Type == AllTypes || q.Type == TextReadouts {
		texts = filterStats(e.st.sorted(TextReadout), show)
	}
	if q.Type == AllTypes || q.Type == Counters || q.Type == Gauges {
		var cg []*stat
		if q.Type != Gauges {
			cg = append(cg, e.st.sorted(Counter)...)
		}
		if q.Type != Counters {
			cg = append(cg, e.st.sorted(Gauge)...)
		}
		sort.Slice(cg, func(i, j int) bool { return cg[i].name < cg[j].name })
		numbers = filterStats(cg, show)
	}
	if q.Type == AllTypes || q.Type == Histograms {
		hists = filterStats(e.st.sorted(Histogram), show)
	}
	if q.Format == JSON {
		return renderJSON(texts, numbers, hists, q.Buckets)
	}
	return renderText(texts, numbers, hists, q.Buckets)
}

func (st *stat) isUsed() bool {
	if st.kind == Histogram {
		return st.hist.merged
	}
	return st.used
}

func filterStats(in []*stat, keep func(*stat) bool) []*stat {
	var out []*stat
	for _, st := range in {
		if keep(st) {
			out = append(out, st)
		}
	}
	return out
}

// fmtDouble formats like fmt's "{}" (Envoy's text output and JSON numbers):
// shortest round-trip digits, exponent form below 1e-4 and from 1e16.
func fmtDouble(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	case v == 0:
		return "0"
	}
	a := math.Abs(v)
	if a < 1e-4 || a >= 1e16 {
		return strconv.FormatFloat(v, 'e', -1, 64)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// jsonDouble is a JSON number (null for NaN).
func jsonDouble(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "null"
	}
	return fmtDouble(v)
}

// fmtG is printf's %g (precision 6), used for bucket bounds and quantile
// labels.
func fmtG(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

func percents() []float64 {
	out := make([]float64, len(SupportedQuantiles))
	for i, q := range SupportedQuantiles {
		out[i] = q * 100
	}
	return out
}

func renderText(texts, numbers, hists []*stat, mode BucketsMode) []byte {
	var b strings.Builder
	for _, st := range texts {
		fmt.Fprintf(&b, "%s: \"%s\"\n", st.name, st.text)
	}
	for _, st := range numbers {
		fmt.Fprintf(&b, "%s: %d\n", st.name, st.value)
	}
	for _, st := range hists {
		h := st.hist
		if !h.merged {
			fmt.Fprintf(&b, "%s: No recorded values\n", st.name)
			continue
		}
		switch mode {
		case Summary:
			fmt.Fprintf(&b, "%s: %s\n", st.name, quantileSummary(h))
		case Cumulative, Disjoint:
			iv, cv := h.interval.cumulativeBuckets(DefaultBuckets), h.cumulative.cumulativeBuckets(DefaultBuckets)
			if mode == Disjoint {
				iv, cv = h.interval.disjointBuckets(DefaultBuckets), h.cumulative.disjointBuckets(DefaultBuckets)
			}
			parts := make([]string, len(DefaultBuckets))
			for i, ub := range DefaultBuckets {
				parts[i] = fmt.Sprintf("B%s(%d,%d)", fmtG(ub), iv[i], cv[i])
			}
			fmt.Fprintf(&b, "%s: %s\n", st.name, strings.Join(parts, " "))
		case Detailed:
			fmt.Fprintf(&b, "%s:\n  totals=%s\n  intervals=%s\n  summary=%s\n", st.name, textDetail(h.cumulative.detail()), textDetail(h.interval.detail()), quantileSummary(h))
		}
	}
	return []byte(b.String())
}

func textDetail(d []DetailBucket) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = fmt.Sprintf("%s,%s:%d", strconv.FormatFloat(x.LowerBound, 'g', 15, 64), strconv.FormatFloat(x.Width, 'g', 15, 64), x.Count)
	}
	return strings.Join(parts, ", ")
}

func quantileSummary(h *histogram) string {
	iq, cq := h.interval.quantiles(SupportedQuantiles), h.cumulative.quantiles(SupportedQuantiles)
	parts := make([]string, len(SupportedQuantiles))
	for i, p := range percents() {
		parts[i] = fmt.Sprintf("P%s(%s,%s)", fmtG(p), fmtDouble(iq[i]), fmtDouble(cq[i]))
	}
	return strings.Join(parts, " ")
}

func renderJSON(texts, numbers, hists []*stat, mode BucketsMode) []byte {
	var b strings.Builder
	b.WriteString(`{"stats":[`)
	first := true
	sep := func() {
		if !first {
			b.WriteByte(',')
		}
		first = false
	}
	for _, st := range texts {
		sep()
		fmt.Fprintf(&b, `{"name":%s,"value":%s}`, jsonString(st.name), jsonString(st.text))
	}
	for _, st := range numbers {
		sep()
		fmt.Fprintf(&b, `{"name":%s,"value":%d}`, jsonString(st.name), st.value)
	}
	if len(hists) > 0 {
		sep()
		pcts := make([]string, len(SupportedQuantiles))
		for i, p := range percents() {
			pcts[i] = jsonDouble(p)
		}
		switch mode {
		case Summary:
			fmt.Fprintf(&b, `{"histograms":{"supported_quantiles":[%s],"computed_quantiles":[`, strings.Join(pcts, ","))
		case Detailed:
			fmt.Fprintf(&b, `{"histograms":{"supported_percentiles":[%s],"details":[`, strings.Join(pcts, ","))
		default:
			b.WriteString(`{"histograms":[`)
		}
		for i, st := range hists {
			if i > 0 {
				b.WriteByte(',')
			}
			h := st.hist
			switch mode {
			case Summary:
				fmt.Fprintf(&b, `{"name":%s,"values":%s}`, jsonString(st.name), jsonPercentiles(h))
			case Cumulative, Disjoint:
				iv, cv := h.interval.cumulativeBuckets(DefaultBuckets), h.cumulative.cumulativeBuckets(DefaultBuckets)
				if mode == Disjoint {
					iv, cv = h.interval.disjointBuckets(DefaultBuckets), h.cumulative.disjointBuckets(DefaultBuckets)
				}
				fmt.Fprintf(&b, `{"name":%s,"buckets":[`, jsonString(st.name))
				for j, ub := range DefaultBuckets {
					if j > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"upper_bound":%s,"interval":%d,"cumulative":%d}`, jsonDouble(ub), iv[j], cv[j])
				}
				b.WriteString("]}")
			case Detailed:
				fmt.Fprintf(&b, `{"name":%s,"totals":%s,"intervals":%s,"percentiles":%s}`, jsonString(st.name),
					jsonDetail(h.cumulative.detail()), jsonDetail(h.interval.detail()), jsonPercentiles(h))
			}
		}
		switch mode {
		case Summary, Detailed:
			b.WriteString("]}}")
		default:
			b.WriteString("]}")
		}
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func jsonPercentiles(h *histogram) string {
	iq, cq := h.interval.quantiles(SupportedQuantiles), h.cumulative.quantiles(SupportedQuantiles)
	parts := make([]string, len(iq))
	for i := range iq {
		parts[i] = fmt.Sprintf(`{"cumulative":%s,"interval":%s}`, jsonDouble(cq[i]), jsonDouble(iq[i]))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func jsonDetail(d []DetailBucket) string {
	parts := make([]string, len(d))
	for i, x := range d {
		parts[i] = fmt.Sprintf(`{"lower_bound":%s,"width":%s,"count":%d}`, jsonDouble(x.LowerBound), jsonDouble(x.Width), x.Count)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// promName is Envoy's sanitizeName: every character outside [a-zA-Z0-9_]
// becomes '_'.
func promName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	return string(b)
}

func promTags(tags []Tag) string {
	parts := make([]string, len(tags))
	for i, t := range tags {
		parts[i] = promName(t.Name) + `="` + t.Value + `"`
	}
	return strings.Join(parts, ",")
}

// prometheusLocked is PrometheusStatsFormatter::statsAsPrometheus: counters,
// gauges, (text readouts), histograms; within each, one group per
// tag-extracted name in stat-name order, each with its # TYPE line and a
// blank line after it.
func (e *Envoy) prometheusLocked(q StatsQuery) []byte {
	var b strings.Builder
	show := func(st *stat) bool {
		if q.UsedOnly && !st.isUsed() {
			return false
		}
		return q.Filter == nil || q.Filter.MatchString(st.name)
	}
	group := func(kind Kind, typ string, line func(st *stat, name string)) {
		groups := map[string][]*stat{}
		for _, st := range e.st.stats {
			if st.kind == kind && show(st) {
				groups[st.extracted] = append(groups[st.extracted], st)
			}
		}
		names := make([]string, 0, len(groups))
		for n := range groups {
			names = append(names, n)
		}
		sort.Slice(names, func(i, j int) bool { return statNameLess(names[i], names[j]) })
		for _, n := range names {
			pn := "envoy_" + promName(n)
			fmt.Fprintf(&b, "# TYPE %s %s\n", pn, typ)
			sts := groups[n]
			sort.Slice(sts, func(i, j int) bool { return statNameLess(sts[i].name, sts[j].name) })
			for _, st := range sts {
				line(st, pn)
			}
			b.WriteString("\n")
		}
	}
	numeric := func(st *stat, name string) {
		fmt.Fprintf(&b, "%s{%s} %d\n", name, promTags(st.tags), st.value)
	}
	group(Counter, "counter", numeric)
	group(Gauge, "gauge", numeric)
	if q.TextReadouts {
		group(TextReadout, "gauge", func(st *stat, name string) {
			tags := append(append([]Tag(nil), st.tags...), Tag{"text_value", st.text})
			fmt.Fprintf(&b, "%s{%s} 1\n", name, promTags(tags))
		})
	}
	group(Histogram, "histogram", func(st *stat, name string) {
		tags := promTags(st.tags)
		htags := ""
		if len(st.tags) > 0 {
			htags = tags + ","
		}
		h := st.hist
		counts := h.cumulative.cumulativeBuckets(DefaultBuckets)
		for i, ub := range DefaultBuckets {
			fmt.Fprintf(&b, "%s_bucket{%sle=\"%s\"} %d\n", name, htags, strconv.FormatFloat(ub, 'g', 32, 64), counts[i])
		}
		n := h.cumulative.count()
		fmt.Fprintf(&b, "%s_bucket{%sle=\"+Inf\"} %d\n", name, htags, n)
		fmt.Fprintf(&b, "%s_sum{%s} %s\n", name, tags, strconv.FormatFloat(h.sum, 'g', 32, 64))
		fmt.Fprintf(&b, "%s_count{%s} %d\n", name, tags, n)
	})
	return []byte(b.String())
}
