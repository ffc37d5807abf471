package metrics

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// OTLPName is the OpenTelemetry name of an extension metric
// (envoy.appmesh.<Metric>, as DogStatsD names it).
func OTLPName(metric string) string { return StatsdNamespace + metric }

// ToOTLP converts a snapshot into OTLP metrics: counters as cumulative
// monotonic sums starting at start, gauges, and TargetResponseTime as a
// cumulative explicit-bucket histogram (Envoy's default bounds, ms).
// Dimensions become data point attributes.
func ToOTLP(s *Snapshot, start time.Time, resource map[string]string) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	for k, v := range resource {
		rm.Resource().Attributes().PutStr(k, v)
	}
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/meshd/meshd/metrics")
	ts, st := pcommon.NewTimestampFromTime(s.Time), pcommon.NewTimestampFromTime(start)
	var m pmetric.Metric
	for i := range s.Series {
		x := &s.Series[i]
		name := OTLPName(x.Metric)
		if i == 0 || m.Name() != name {
			m = sm.Metrics().AppendEmpty()
			m.SetName(name)
			m.SetUnit(otlpUnit(x.Metric))
			switch x.Kind {
			case Counter:
				sum := m.SetEmptySum()
				sum.SetIsMonotonic(true)
				sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			case Gauge:
				m.SetEmptyGauge()
			case HistogramKind:
				m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
			}
		}
		var attrs pcommon.Map
		switch x.Kind {
		case Counter:
			dp := m.Sum().DataPoints().AppendEmpty()
			dp.SetStartTimestamp(st)
			dp.SetTimestamp(ts)
			dp.SetDoubleValue(x.Value)
			attrs = dp.Attributes()
		case Gauge:
			dp := m.Gauge().DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetDoubleValue(x.Value)
			attrs = dp.Attributes()
		case HistogramKind:
			dp := m.Histogram().DataPoints().AppendEmpty()
			dp.SetStartTimestamp(st)
			dp.SetTimestamp(ts)
			dp.ExplicitBounds().FromRaw(DefaultBounds)
			dp.BucketCounts().FromRaw(x.Hist.BucketCounts(DefaultBounds))
			dp.SetCount(x.Hist.Count())
			dp.SetSum(x.Hist.Sum())
			attrs = dp.Attributes()
		}
		for _, p := range x.Dims.Pairs() {
			attrs.PutStr(p[0], p[1])
		}
	}
	return md
}

func otlpUnit(metric string) string {
	switch unit(metric) {
	case "Bytes":
		return "By"
	case "Milliseconds":
		return "ms"
	}
	return "1"
}

// OTLP posts the extension to an OTLP/HTTP endpoint (protobuf, e.g.
// http://collector:4318/v1/metrics) every Interval, as cumulative series.
type OTLP struct {
	Collector *Collector
	Endpoint  string
	Interval  time.Duration
	Client    *http.Client
	// Resource attributes (e.g. service.name).
	Resource map[string]string
	Log      *slog.Logger
}

// Run exports until ctx is cancelled.
func (o *OTLP) Run(ctx context.Context) error {
	if o.Interval <= 0 {
		return fmt.Errorf("otlp: interval must be positive")
	}
	log := orDiscard(o.Log)
	start := time.Now()
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		if err := o.once(ctx, &start); err != nil {
			log.Warn("otlp export failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (o *OTLP) once(ctx context.Context, start *time.Time) error {
	s, err := o.Collector.Collect(ctx)
	if err != nil {
		return err
	}
	if s.Passthrough != nil {
		return fmt.Errorf("envoy emits the extension itself (App Mesh's build): export Envoy's own stats")
	}
	if s.Restarted {
		*start = s.Time // cumulative series restart with Envoy
	}
	body, err := pmetricotlp.NewExportRequestFromMetrics(ToOTLP(s, *start, o.Resource)).MarshalProto()
	if err != nil {
		return fmt.Errorf("otlp: marshal: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.Endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	hc := o.Client
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("otlp: post %s: %w", o.Endpoint, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("otlp: post %s: %s: %s", o.Endpoint, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
