package metrics

import (
	"sort"
	"strings"
)

// The App Mesh metrics extension's metric names (App Mesh user guide,
// "Metrics extension"), inbound then outbound.
const (
	ActiveConnectionCount  = "ActiveConnectionCount"
	NewConnectionCount     = "NewConnectionCount"
	ProcessedBytes         = "ProcessedBytes"
	RequestCount           = "RequestCount"
	GrpcRequestCount       = "GrpcRequestCount"
	TargetProcessedBytes   = "TargetProcessedBytes"
	HTTPCodeTarget2XXCount = "HTTPCode_Target_2XX_Count"
	HTTPCodeTarget3XXCount = "HTTPCode_Target_3XX_Count"
	HTTPCodeTarget4XXCount = "HTTPCode_Target_4XX_Count"
	HTTPCodeTarget5XXCount = "HTTPCode_Target_5XX_Count"
	RequestCountPerTarget  = "RequestCountPerTarget"
	TargetResponseTime     = "TargetResponseTime"
)

// Kind is a series' metric type.
type Kind int

const (
	Counter Kind = iota
	Gauge
	HistogramKind
)

// Dims are a series' dimensions; the target pair is empty for inbound
// metrics. ResourceKind is "VirtualNode" or "VirtualGateway".
type Dims struct {
	Mesh, ResourceKind, Resource            string
	TargetVirtualNode, TargetVirtualService string
}

// Pairs lists the dimensions as label name/value pairs, sorted by name.
func (d Dims) Pairs() [][2]string {
	out := make([][2]string, 0, 4)
	out = append(out, [2]string{"Mesh", d.Mesh})
	if d.TargetVirtualNode != "" {
		out = append(out, [2]string{"TargetVirtualNode", d.TargetVirtualNode}, [2]string{"TargetVirtualService", d.TargetVirtualService})
	}
	return append(out, [2]string{d.ResourceKind, d.Resource})
}

func (d Dims) key() string {
	return d.Mesh + "\x00" + d.ResourceKind + "\x00" + d.Resource + "\x00" + d.TargetVirtualNode + "\x00" + d.TargetVirtualService
}

// Series is one derived time series; Value holds a counter's cumulative
// value or a gauge's value, Hist a histogram's cumulative bins (ms).
type Series struct {
	Metric string
	Kind   Kind
	Dims   Dims
	Value  float64
	Hist   *Histogram
}

func (s *Series) key() string { return s.Metric + "\x00" + s.Dims.key() }

// StatsFilter is the RE2 regex (matched by Envoy against canonical stat
// names) selecting every stat Derive reads, plus the CDS/LDS version
// gauges that tell the collector when to re-read the mapping, and App Mesh's
// own extension stats (appmesh.*) when Envoy is App Mesh's build.
const StatsFilter = `^(cluster\..+\.(upstream_cx_(rx|tx)_bytes_total|upstream_rq_(total|[2-5]xx|time))` +
	`|listener\..+\.downstream_cx_(active|total)` +
	`|(http|tcp)\..+\.downstream_(rq_total|cx_(rx|tx)_bytes_total)` +
	`|cluster_manager\.cds\.version|listener_manager\.lds\.version` +
	`|appmesh\..+)$`

// Derive computes the App Mesh extension series from Envoy's standard
// statistics and the mapping. A series exists when at least one of the
// stats it is computed from does (with usedonly: has been updated), so an
// idle mesh shows no zero noise and a new target appears with its first
// request.
func Derive(m *Mapping, s *EnvoyStats) []Series {
	if m == nil || m.Mesh == "" || m.Name == "" {
		return nil
	}
	var out []Series
	self := Dims{Mesh: m.Mesh, ResourceKind: m.Kind, Resource: m.Name}
	sum := func(metric string, kind Kind, names ...string) {
		var v float64
		found := false
		for _, n := range names {
			if x, ok := s.Values[n]; ok {
				v += x
				found = true
			}
		}
		if found {
			out = append(out, Series{Metric: metric, Kind: kind, Dims: self, Value: v})
		}
	}

	var active, total, bytes, http, grpc []string
	for _, l := range m.Listeners {
		active = append(active, l+".downstream_cx_active")
		total = append(total, l+".downstream_cx_total")
	}
	for _, in := range m.Inbound {
		root := in.Kind + "." + in.Prefix + "."
		bytes = append(bytes, root+"downstream_cx_rx_bytes_total", root+"downstream_cx_tx_bytes_total")
		switch {
		case in.Kind != "http":
		case in.Protocol == "grpc":
			grpc = append(grpc, root+"downstream_rq_total")
		default:
			http = append(http, root+"downstream_rq_total")
		}
	}
	sum(ActiveConnectionCount, Gauge, active...)
	sum(NewConnectionCount, Counter, total...)
	sum(ProcessedBytes, Counter, bytes...)
	sum(RequestCount, Counter, http...)
	sum(GrpcRequestCount, Counter, grpc...)

	// Outbound: one accumulator per (target service, target node), summed
	// over that pair's clusters (one per port).
	type acc struct {
		dims     Dims
		tcp      bool
		vals     [7]float64 // bytes, 2xx..5xx, rq_total
		has      [7]bool
		hist     *Histogram
		clusters int
	}
	byTarget := map[Target]*acc{}
	names := make([]string, 0, len(m.Egress))
	for name := range m.Egress {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic histogram merge order
	for _, name := range names {
		t := m.Egress[name]
		key := Target{VirtualService: t.VirtualService, VirtualNode: t.VirtualNode}
		a := byTarget[key]
		if a == nil {
			a = &acc{dims: Dims{Mesh: m.Mesh, ResourceKind: m.Kind, Resource: m.Name, TargetVirtualNode: t.VirtualNode, TargetVirtualService: t.VirtualService}, tcp: true}
			byTarget[key] = a
		}
		a.tcp = a.tcp && t.Protocol == "tcp"
		root := "cluster." + name + "."
		for i, suffix := range [...]string{"upstream_cx_rx_bytes_total", "upstream_rq_2xx", "upstream_rq_3xx", "upstream_rq_4xx", "upstream_rq_5xx", "upstream_rq_total", "upstream_cx_tx_bytes_total"} {
			j := i
			if j == 6 { // tx bytes add to the bytes slot
				j = 0
			}
			if v, ok := s.Values[root+suffix]; ok {
				a.vals[j] += v
				a.has[j] = true
			}
		}
		if h := s.Histograms[root+"upstream_rq_time"]; h != nil {
			if a.hist == nil {
				a.hist = &Histogram{}
			}
			a.hist.merge(h)
		}
	}
	targets := make([]*acc, 0, len(byTarget))
	for _, a := range byTarget {
		targets = append(targets, a)
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].dims.key() < targets[j].dims.key() })
	metrics := [...]string{TargetProcessedBytes, HTTPCodeTarget2XXCount, HTTPCodeTarget3XXCount, HTTPCodeTarget4XXCount, HTTPCodeTarget5XXCount, RequestCountPerTarget}
	for _, a := range targets {
		for i, metric := range metrics {
			if !a.has[i] || i > 0 && a.tcp {
				continue
			}
			out = append(out, Series{Metric: metric, Kind: Counter, Dims: a.dims, Value: a.vals[i]})
		}
		if a.hist != nil && !a.tcp {
			out = append(out, Series{Metric: TargetResponseTime, Kind: HistogramKind, Dims: a.dims, Hist: a.hist})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Metric != out[j].Metric {
			return out[i].Metric < out[j].Metric
		}
		return out[i].Dims.key() < out[j].Dims.key()
	})
	return out
}

// hasAppMeshStats reports whether Envoy itself emits App Mesh's extension
// stats (App Mesh's own Envoy build): they are then served as they are.
func hasAppMeshStats(s *EnvoyStats) bool {
	for name := range s.Values {
		if strings.HasPrefix(name, "appmesh.") {
			return true
		}
	}
	for name := range s.Histograms {
		if strings.HasPrefix(name, "appmesh.") {
			return true
		}
	}
	return false
}
