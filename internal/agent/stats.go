package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/meshd/meshd/metrics"
)

// Stats is where /stats/prometheus gets its data.
type Stats interface {
	// WritePrometheus writes Envoy's own text exposition (usedOnly → Envoy's
	// ?usedonly) followed by meshd's derived envoy_appmesh_* families, text
	// format 0.0.4.
	WritePrometheus(ctx context.Context, w io.Writer, usedOnly bool) error
	// Extension returns the App Mesh extension families, named
	// envoy_appmesh_<Metric>.
	Extension(ctx context.Context) ([]*dto.MetricFamily, error)
}

// extensionFamilies keeps the envoy_appmesh_* families, renamed without the
// prefix, keyed by the new name. The input is not modified.
func extensionFamilies(in []*dto.MetricFamily) map[string]*dto.MetricFamily {
	out := make(map[string]*dto.MetricFamily)
	for _, mf := range in {
		name, ok := strings.CutPrefix(mf.GetName(), metrics.PrometheusPrefix)
		if !ok || name == "" {
			continue
		}
		c := proto.Clone(mf).(*dto.MetricFamily)
		c.Name = proto.String(name)
		out[name] = c
	}
	return out
}

// writeFamilies writes families as App Mesh did: sorted by name and then by
// label values (prometheus.Gatherers' normalisation), each as "\n" followed
// by its text exposition. Nothing is written if it fails.
func writeFamilies(w io.Writer, fams map[string]*dto.MetricFamily) error {
	list := make([]*dto.MetricFamily, 0, len(fams))
	for _, mf := range fams {
		list = append(list, proto.Clone(mf).(*dto.MetricFamily)) // Gather sorts in place
	}
	sorted, err := prometheus.Gatherers{prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		return list, nil
	})}.Gather()
	if err != nil {
		return fmt.Errorf("sort metric families: %w", err)
	}
	var buf bytes.Buffer
	for _, mf := range sorted {
		buf.WriteByte('\n')
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return fmt.Errorf("metric family %s: %w", mf.GetName(), err)
		}
	}
	_, err = w.Write(buf.Bytes())
	return err
}

// Delta is what changed from old to cur, App Mesh's rules with its
// underflows fixed:
//   - counter: cur − old for the same label set; a series new in cur, or
//     one that went down (Envoy restarted, a counter reset), is its raw
//     value; never negative;
//   - gauge: the raw value;
//   - histogram: per-bucket cumulative counts, sample count and sum minus
//     old's; raw values for a new series, a different bucket layout or any
//     decrease;
//   - summary and untyped families (Envoy exports none) are left out.
//
// With no old snapshot the delta is cur itself (everything since Envoy
// started). Neither input is modified.
func Delta(old, cur map[string]*dto.MetricFamily) map[string]*dto.MetricFamily {
	out := make(map[string]*dto.MetricFamily, len(cur))
	for name, mf := range cur {
		switch mf.GetType() {
		case dto.MetricType_COUNTER, dto.MetricType_GAUGE, dto.MetricType_HISTOGRAM:
		default:
			continue
		}
		var prev map[string]*dto.Metric
		if o := old[name]; o != nil && o.GetType() == mf.GetType() {
			prev = make(map[string]*dto.Metric, len(o.Metric))
			for _, m := range o.Metric {
				prev[labelKey(m.Label)] = m
			}
		}
		d := &dto.MetricFamily{Name: proto.String(name), Help: mf.Help, Type: mf.Type, Unit: mf.Unit}
		for _, m := range mf.Metric {
			d.Metric = append(d.Metric, deltaMetric(mf.GetType(), prev[labelKey(m.Label)], m))
		}
		out[name] = d
	}
	return out
}

func deltaMetric(t dto.MetricType, old, cur *dto.Metric) *dto.Metric {
	d := &dto.Metric{Label: cloneLabels(cur.Label)}
	switch t {
	case dto.MetricType_COUNTER:
		v := cur.GetCounter().GetValue()
		if old != nil && v >= old.GetCounter().GetValue() {
			v -= old.GetCounter().GetValue()
		}
		d.Counter = &dto.Counter{Value: proto.Float64(v)}
	case dto.MetricType_GAUGE:
		d.Gauge = &dto.Gauge{Value: proto.Float64(cur.GetGauge().GetValue())}
	case dto.MetricType_HISTOGRAM:
		d.Histogram = deltaHistogram(old.GetHistogram(), cur.GetHistogram())
	}
	return d
}

func deltaHistogram(old, cur *dto.Histogram) *dto.Histogram {
	raw := &dto.Histogram{SampleCount: cur.SampleCount, SampleSum: cur.SampleSum}
	for _, b := range cur.Bucket {
		raw.Bucket = append(raw.Bucket, &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: b.CumulativeCount})
	}
	if old == nil || len(old.Bucket) != len(cur.Bucket) || cur.GetSampleCount() < old.GetSampleCount() {
		return raw
	}
	d := &dto.Histogram{
		SampleCount: proto.Uint64(cur.GetSampleCount() - old.GetSampleCount()),
		SampleSum:   proto.Float64(cur.GetSampleSum() - old.GetSampleSum()),
	}
	for i, b := range cur.Bucket {
		ob := old.Bucket[i]
		if ob.GetUpperBound() != b.GetUpperBound() || b.GetCumulativeCount() < ob.GetCumulativeCount() {
			return raw
		}
		d.Bucket = append(d.Bucket, &dto.Bucket{UpperBound: b.UpperBound, CumulativeCount: proto.Uint64(b.GetCumulativeCount() - ob.GetCumulativeCount())})
	}
	if cur.SampleCount == nil {
		d.SampleCount = nil
	}
	if cur.SampleSum == nil {
		d.SampleSum = nil
	}
	return d
}

// labelKey identifies a series by its label set, whatever the label order.
func labelKey(labels []*dto.LabelPair) string {
	pairs := make([]string, len(labels))
	for i, l := range labels {
		pairs[i] = l.GetName() + "\xff" + l.GetValue()
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "\xfe")
}

func cloneLabels(in []*dto.LabelPair) []*dto.LabelPair {
	out := make([]*dto.LabelPair, len(in))
	for i, l := range in {
		out[i] = &dto.LabelPair{Name: proto.String(l.GetName()), Value: proto.String(l.GetValue())}
	}
	return out
}
