package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"
)

// StatsdSender is what DogStatsD needs of a DogStatsD client;
// *statsd.ClientDirect (github.com/DataDog/datadog-go/v5/statsd.NewDirect)
// provides it.
type StatsdSender interface {
	Count(name string, value int64, tags []string, rate float64) error
	Gauge(name string, value float64, tags []string, rate float64) error
	DistributionSamples(name string, values []float64, tags []string, rate float64) error
	Flush() error
}

// StatsdNamespace is the DogStatsD metric prefix (App Mesh:
// envoy.appmesh.<Metric>); give it to the client with statsd.WithNamespace.
const StatsdNamespace = "envoy.appmesh."

// pusher runs a push exporter: every interval, a fresh collection turned
// into deltas and handed to send.
type pusher struct {
	collector *Collector
	interval  time.Duration
	log       *slog.Logger
	name      string
	d         deltas
}

func (p *pusher) run(ctx context.Context, send func(now time.Time, ds []Delta) error) error {
	if p.interval <= 0 {
		return fmt.Errorf("%s: interval must be positive", p.name)
	}
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		if err := p.once(ctx, send); err != nil {
			p.log.Warn(p.name+" push failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *pusher) once(ctx context.Context, send func(time.Time, []Delta) error) error {
	s, err := p.collector.Collect(ctx)
	if err != nil {
		return err // nothing sent: no stale or made-up values
	}
	if s.Passthrough != nil {
		return fmt.Errorf("envoy emits the extension itself (App Mesh's build): push it with Envoy's own stats sink")
	}
	return send(s.Time, p.d.next(s.Series))
}

// DogStatsD pushes the extension to a DogStatsD agent every Interval:
// counters as counts of the interval's increase, gauges as gauges, and
// TargetResponseTime as a distribution whose samples are the histogram's
// new bins (one value per bin, its sample rate 1/count carrying the count).
type DogStatsD struct {
	Collector *Collector
	Client    StatsdSender
	Interval  time.Duration
	Log       *slog.Logger

	p pusher
}

// Run pushes until ctx is cancelled.
func (d *DogStatsD) Run(ctx context.Context) error {
	d.p = pusher{collector: d.Collector, interval: d.Interval, log: orDiscard(d.Log), name: "dogstatsd"}
	return d.p.run(ctx, d.send)
}

func (d *DogStatsD) send(_ time.Time, ds []Delta) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for _, x := range ds {
		tags := statsdTags(x.Dims)
		switch x.Kind {
		case Counter:
			keep(d.Client.Count(x.Metric, int64(math.Round(x.Value)), tags, 1))
		case Gauge:
			keep(d.Client.Gauge(x.Metric, x.Value, tags, 1))
		case HistogramKind:
			for _, b := range x.Bins {
				keep(d.Client.DistributionSamples(x.Metric, []float64{b.mid()}, tags, 1/float64(b.Count)))
			}
		}
	}
	keep(d.Client.Flush())
	return first
}

func statsdTags(d Dims) []string {
	pairs := d.Pairs()
	tags := make([]string, len(pairs))
	for i, p := range pairs {
		tags[i] = p[0] + ":" + p[1]
	}
	return tags
}

// EMF writes CloudWatch Embedded Metric Format lines (one JSON object per
// line, per dimension set) every Interval, for the CloudWatch agent's EMF
// endpoint or FireLens. Metric names are the Prometheus ones
// (envoy_appmesh_<Metric>) and the dimension sets those of App Mesh's
// CloudWatch agent walkthrough, so its dashboards keep working.
type EMF struct {
	Collector *Collector
	W         io.Writer
	Interval  time.Duration
	// Namespace is the CloudWatch namespace.
	Namespace string
	Log       *slog.Logger

	p pusher
}

// DefaultEMFNamespace is the namespace App Mesh's CloudWatch agent setup on
// ECS published the extension to.
const DefaultEMFNamespace = "ECS/ContainerInsights/Prometheus"

// Run writes until ctx is cancelled.
func (e *EMF) Run(ctx context.Context) error {
	e.p = pusher{collector: e.Collector, interval: e.Interval, log: orDiscard(e.Log), name: "emf"}
	return e.p.run(ctx, e.write)
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfValues struct {
	Values []float64 `json:"Values"`
	Counts []uint64  `json:"Counts"`
}

func unit(metric string) string {
	switch metric {
	case ProcessedBytes, TargetProcessedBytes:
		return "Bytes"
	case TargetResponseTime:
		return "Milliseconds"
	}
	return "Count"
}

func (e *EMF) write(now time.Time, ds []Delta) error {
	ns := e.Namespace
	if ns == "" {
		ns = DefaultEMFNamespace
	}
	// One line per dimension values, metrics in a stable order.
	type line struct {
		dims Dims
		ds   []Delta
	}
	var lines []*line
	index := map[string]*line{}
	for _, x := range ds {
		k := x.Dims.key()
		l := index[k]
		if l == nil {
			l = &line{dims: x.Dims}
			index[k] = l
			lines = append(lines, l)
		}
		l.ds = append(l.ds, x)
	}
	for _, l := range lines {
		obj := map[string]any{}
		base := []string{"Mesh", l.dims.ResourceKind}
		sets := [][]string{base}
		if l.dims.TargetVirtualNode != "" {
			sets = append(sets, append(append([]string{}, base...), "TargetVirtualNode"), append(append([]string{}, base...), "TargetVirtualNode", "TargetVirtualService"))
		}
		for _, p := range l.dims.Pairs() {
			obj[p[0]] = p[1]
		}
		dir := emfDirective{Namespace: ns, Dimensions: sets}
		for _, x := range l.ds {
			name := PrometheusPrefix + x.Metric
			if x.Kind == HistogramKind {
				v := emfHistogram(x.Bins)
				if len(v.Values) == 0 {
					continue
				}
				obj[name] = v
			} else {
				obj[name] = x.Value
			}
			dir.Metrics = append(dir.Metrics, emfMetric{Name: name, Unit: unit(x.Metric)})
		}
		if len(dir.Metrics) == 0 {
			continue
		}
		obj["_aws"] = map[string]any{"Timestamp": now.UnixMilli(), "CloudWatchMetrics": []emfDirective{dir}}
		b, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("emf: %w", err)
		}
		if _, err := e.W.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("emf: write: %w", err)
		}
	}
	return nil
}

// emfHistogram is EMF's values/counts form (at most 100 values): the bins
// themselves, or, when there are more, Envoy's default buckets.
func emfHistogram(bins []Bin) emfValues {
	var v emfValues
	if len(bins) > 100 {
		h := &Histogram{Bins: bins}
		for i, n := range h.BucketCounts(DefaultBounds) {
			if n == 0 {
				continue
			}
			var value float64
			switch {
			case i == len(DefaultBounds): // overflow: at the last bound
				value = DefaultBounds[i-1]
			case i == 0:
				value = DefaultBounds[0] / 2
			default:
				value = (DefaultBounds[i-1] + DefaultBounds[i]) / 2
			}
			v.Values = append(v.Values, value)
			v.Counts = append(v.Counts, n)
		}
		return v
	}
	for _, b := range bins {
		v.Values = append(v.Values, b.mid())
		v.Counts = append(v.Counts, b.Count)
	}
	return v
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
