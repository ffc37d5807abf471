package demo

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/meshd/meshd/metrics"
)

// State is what the demo shows at one moment.
type State struct {
	Uptime    time.Duration
	ConfigDir string
	// ConfigNote says when the configuration was last served or rejected.
	ConfigNote string
	Mesh       string
	Client     string
	Service    string
	RPS        int
	Shift      string // "" or "0/100 at 0:15 (applied)"
	Targets    []TargetState
	Certs      []CertState
	// Extension is the App Mesh metrics extension as /metrics serves it.
	Extension  []metrics.Series
	MetricsURL string
	WorkDir    string
	Errors     int
	LastError  string
}

// TargetState is one target node of the route.
type TargetState struct {
	Node   string
	Weight int64
	// Recent counts answers in the last 10 seconds, Total since the start.
	Recent, Total int
}

// CertState is one issued certificate, as the process holding it got it
// over SDS.
type CertState struct {
	Node     string
	ID       string
	DNSNames []string
	Serial   string
	NotAfter time.Time
	Renewals int
}

// State returns the demo's current state.
func (d *Demo) State() State {
	now := time.Now()
	recent, total := d.traffic.counts(now)
	d.mu.Lock()
	s := State{
		Uptime: now.Sub(d.start).Truncate(time.Second), ConfigDir: d.dir, ConfigNote: d.configNote,
		Mesh: d.mesh, Client: d.client, Service: d.service, RPS: d.cfg.RPS,
		MetricsURL: d.metricsURL, WorkDir: d.work, Errors: d.errs, LastError: d.lastErr,
	}
	for _, t := range d.targets {
		s.Targets = append(s.Targets, TargetState{Node: t, Weight: d.weights[t], Recent: recent[t], Total: total[t]})
	}
	if d.cfg.Shift != nil {
		w := make([]string, len(d.cfg.Shift))
		for i, x := range d.cfg.Shift {
			w[i] = fmt.Sprint(x)
		}
		state := "pending"
		if d.shifted {
			state = "applied"
		}
		s.Shift = fmt.Sprintf("%s at %s (%s)", strings.Join(w, "/"), d.cfg.ShiftAfter, state)
	}
	d.mu.Unlock()
	for _, n := range append([]string{d.client}, d.targets...) {
		svid, renewals := d.ids[n].snapshot()
		if svid == nil {
			continue
		}
		leaf := svid.Certificates[0]
		s.Certs = append(s.Certs, CertState{Node: n, ID: svid.ID.String(), DNSNames: leaf.DNSNames,
			Serial: leaf.SerialNumber.Text(16), NotAfter: leaf.NotAfter, Renewals: renewals})
	}
	for _, n := range append([]string{d.client}, d.targets...) {
		s.Extension = append(s.Extension, d.stats[n].series()...)
	}
	return s
}

// Render writes s as the compact table the terminal shows.
func Render(w io.Writer, s State, now time.Time) {
	fmt.Fprintf(w, "meshd demo — mesh %q on loopback, up %s   (Ctrl-C stops)\n", s.Mesh, s.Uptime)
	fmt.Fprintf(w, "config  %s   %s\n", s.ConfigDir, s.ConfigNote)
	if s.Shift != "" {
		fmt.Fprintf(w, "shift   %s\n", s.Shift)
	}
	fmt.Fprintf(w, "\nTRAFFIC  %s → xds:///%s  (proxyless gRPC, mTLS, %d req/s)\n", s.Client, s.Service, s.RPS)
	fmt.Fprintf(w, "  %-14s %7s %9s %8s %9s\n", "target", "weight", "last 10s", "share", "total")
	sumW, sumR := int64(0), 0
	for _, t := range s.Targets {
		sumW += t.Weight
		sumR += t.Recent
	}
	for _, t := range s.Targets {
		fmt.Fprintf(w, "  %-14s %6s%% %9d %7.1f%% %9d\n", t.Node, pct(t.Weight, sumW), t.Recent, share(t.Recent, sumR), t.Total)
	}
	if s.Errors > 0 {
		fmt.Fprintf(w, "  errors %d, last: %s\n", s.Errors, s.LastError)
	}
	fmt.Fprintf(w, "\nCERTIFICATES  (X.509-SVIDs over SDS from meshd's CA, renewed at half-life)\n")
	for _, c := range s.Certs {
		fmt.Fprintf(w, "  %-52s dns=%-22s serial %.8s  expires in %-8s renewed %d×\n", c.ID, strings.Join(c.DNSNames, ","), c.Serial,
			c.NotAfter.Sub(now).Truncate(time.Second), c.Renewals)
	}
	fmt.Fprintf(w, "\nMETRICS  App Mesh extension (envoy.appmesh.*)")
	if s.MetricsURL != "" {
		fmt.Fprintf(w, " — Prometheus: %s", s.MetricsURL)
	}
	fmt.Fprintln(w)
	for _, line := range extensionLines(s.Extension) {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// extensionLines summarises RequestCount by VirtualNode and
// TargetResponseTime (count, p50, p99) by TargetVirtualNode.
func extensionLines(series []metrics.Series) []string {
	var out []string
	for _, s := range series {
		switch s.Metric {
		case metrics.RequestCount:
			out = append(out, fmt.Sprintf("%-20s %-32s %8.0f", s.Metric, s.Dims.ResourceKind+"="+s.Dims.Resource, s.Value))
		case metrics.TargetResponseTime:
			out = append(out, fmt.Sprintf("%-20s %-32s %8d  p50 %.2f ms  p99 %.2f ms", s.Metric, "TargetVirtualNode="+s.Dims.TargetVirtualNode,
				s.Hist.Count(), quantile(s.Hist, 0.5), quantile(s.Hist, 0.99)))
		}
	}
	sort.Strings(out)
	return out
}

// quantile estimates the q-quantile of a histogram from its bins.
func quantile(h *metrics.Histogram, q float64) float64 {
	n := h.Count()
	if n == 0 {
		return math.NaN()
	}
	rank := q * float64(n)
	var seen float64
	for _, b := range h.Bins {
		if seen+float64(b.Count) >= rank {
			if math.IsInf(b.Width, 1) {
				return b.Lower
			}
			return b.Lower + b.Width*(rank-seen)/float64(b.Count)
		}
		seen += float64(b.Count)
	}
	last := h.Bins[len(h.Bins)-1]
	return last.Lower + last.Width
}

func pct(w, sum int64) string {
	if sum == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", 100*float64(w)/float64(sum))
}

func share(n, sum int) float64 {
	if sum == 0 {
		return 0
	}
	return 100 * float64(n) / float64(sum)
}
