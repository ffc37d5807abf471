package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"
)

// PrometheusPrefix is the family name prefix of the extension metrics in
// Prometheus exposition (App Mesh: envoy_appmesh_<Metric>, CamelCase kept,
// no _total suffix).
const PrometheusPrefix = "envoy_appmesh_"

// DefaultBounds are Envoy's default histogram bucket bounds (ms), used for
// TargetResponseTime buckets as Envoy's own /stats/prometheus shows them.
var DefaultBounds = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Families converts series (sorted by metric, as Derive returns them) into
// Prometheus metric families named envoy_appmesh_<Metric>.
func Families(series []Series) []*dto.MetricFamily {
	var out []*dto.MetricFamily
	var fam *dto.MetricFamily
	for i := range series {
		s := &series[i]
		name := PrometheusPrefix + s.Metric
		if fam == nil || fam.GetName() != name {
			fam = &dto.MetricFamily{Name: proto.String(name), Type: promType(s.Kind).Enum()}
			out = append(out, fam)
		}
		m := &dto.Metric{}
		for _, p := range s.Dims.Pairs() {
			m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(p[0]), Value: proto.String(p[1])})
		}
		switch s.Kind {
		case Counter:
			m.Counter = &dto.Counter{Value: proto.Float64(s.Value)}
		case Gauge:
			m.Gauge = &dto.Gauge{Value: proto.Float64(s.Value)}
		case HistogramKind:
			cum := s.Hist.Cumulative(DefaultBounds)
			h := &dto.Histogram{SampleCount: proto.Uint64(s.Hist.Count()), SampleSum: proto.Float64(s.Hist.Sum())}
			for j, b := range DefaultBounds {
				h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(cum[j])})
			}
			m.Histogram = h
		}
		fam.Metric = append(fam.Metric, m)
	}
	return out
}

func promType(k Kind) dto.MetricType {
	switch k {
	case Gauge:
		return dto.MetricType_GAUGE
	case HistogramKind:
		return dto.MetricType_HISTOGRAM
	}
	return dto.MetricType_COUNTER
}

// WriteText writes families in text exposition format 0.0.4.
func WriteText(w io.Writer, fams []*dto.MetricFamily) error {
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(w, f); err != nil {
			return fmt.Errorf("write %s: %w", f.GetName(), err)
		}
	}
	return nil
}

// ParseText parses a text exposition and keeps the families whose names
// start with prefix, normalised as prometheus.Gatherers does (families by
// name, metrics by label values).
func ParseText(r io.Reader, prefix string) ([]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.LegacyValidation)
	all, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse prometheus text: %w", err)
	}
	var keep []*dto.MetricFamily
	for name, f := range all {
		if strings.HasPrefix(name, prefix) {
			keep = append(keep, f)
		}
	}
	out, err := prometheus.Gatherers{prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return keep, nil })}.Gather()
	if err != nil {
		return nil, fmt.Errorf("parse prometheus text: %w", err)
	}
	return out, nil
}

// appMeshScanner passes an exposition through while noticing whether it
// declares any envoy_appmesh_ family (App Mesh's own Envoy build), across
// write boundaries.
type appMeshScanner struct {
	w       io.Writer
	tail    []byte // the last len(needle)-1 bytes seen; starts as "\n"
	scratch []byte
	found   bool
	n       int64
}

var needle = []byte("\n# TYPE " + PrometheusPrefix)

func newAppMeshScanner(w io.Writer) *appMeshScanner {
	return &appMeshScanner{w: w, tail: []byte{'\n'}}
}

func (s *appMeshScanner) Write(p []byte) (int, error) {
	if !s.found {
		k := len(needle) - 1
		s.scratch = append(append(s.scratch[:0], s.tail...), p[:min(len(p), k)]...)
		s.found = bytes.Contains(s.scratch, needle) || bytes.Contains(p, needle)
		if len(p) >= k {
			s.tail = append(s.tail[:0], p[len(p)-k:]...)
		} else {
			s.tail = append(s.tail, p...)
			s.tail = s.tail[max(0, len(s.tail)-k):]
		}
	}
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// finite reports whether v is a usable sample value.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
