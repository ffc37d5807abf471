// Package metrics derives App Mesh's metrics extension (envoy.appmesh.*:
// RequestCount, TargetResponseTime, HTTPCode_Target_2XX_Count, … with the
// Mesh, VirtualNode/VirtualGateway, TargetVirtualService and
// TargetVirtualNode dimensions) from a stock Envoy's standard statistics,
// and exports them for Prometheus, DogStatsD, CloudWatch (Embedded Metric
// Format) and OTLP.
//
// Which cluster and listener belong to which mesh resource is read from
// Envoy's /config_dump (the aws.appmesh cluster metadata meshd's control
// plane sets), re-read whenever Envoy's CDS or LDS version changes; the
// values come from one filtered /stats?format=json&usedonly request per
// collection. An Envoy that already emits the extension (App Mesh's own
// build) is passed through unchanged.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// Snapshot is one collection.
type Snapshot struct {
	Time time.Time
	// Series are the derived extension series (nil in passthrough).
	Series []Series
	// Passthrough holds Envoy's own envoy_appmesh_* families when Envoy is
	// App Mesh's build.
	Passthrough []*dto.MetricFamily
	// Restarted is set when Envoy's counters went backwards since the
	// previous snapshot (an Envoy restart).
	Restarted bool
}

// Families are the snapshot's extension families (envoy_appmesh_<Metric>).
func (s *Snapshot) Families() []*dto.MetricFamily {
	if s.Passthrough != nil {
		return s.Passthrough
	}
	return Families(s.Series)
}

// Options configure a Collector.
type Options struct {
	// Admin is Envoy's admin interface.
	Admin *envoyadmin.Client
	Log   *slog.Logger
	// Registry receives meshd_envoy_up and the collector's own metrics.
	Registry prometheus.Registerer
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// MaxAge is how long a snapshot is reused by Prometheus scrapes (default
	// 1 s). Nothing older is ever served as current.
	MaxAge time.Duration
	// Timeout bounds one collection's admin requests (default 5 s).
	Timeout time.Duration
	// Mesh, Kind ("VirtualNode"/"VirtualGateway") and Name identify the
	// Envoy when its clusters carry no aws.appmesh ingress metadata (a node
	// without listeners).
	Mesh, Kind, Name string
}

// Collector reads Envoy and derives the extension.
type Collector struct {
	opt Options
	log *slog.Logger

	mu       sync.Mutex // one collection at a time (Envoy's admin thread is shared with /ready)
	last     *Snapshot
	mapping  *Mapping
	versions [2]float64 // cds, lds version gauges when mapping was read
	counters map[string]float64

	up          prometheus.Gauge
	upState     atomic.Bool
	collections *prometheus.CounterVec
	duration    prometheus.Histogram
	series      prometheus.Gauge
	mappings    prometheus.Counter
	resets      prometheus.Counter
}

// NewCollector returns a collector; it registers its metrics in
// opt.Registry.
func NewCollector(opt Options) (*Collector, error) {
	if opt.Admin == nil {
		return nil, errors.New("metrics collector: no Envoy admin client")
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxAge <= 0 {
		opt.MaxAge = time.Second
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	c := &Collector{
		opt: opt, log: opt.Log,
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshd_envoy_up",
			Help: "1 if the last read of Envoy's admin interface succeeded, else 0."}),
		collections: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_metrics_collections_total",
			Help: "Collections of Envoy statistics by result (ok, error)."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meshd_metrics_collection_seconds",
			Help: "Time to read Envoy's statistics and derive the extension.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		series: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshd_metrics_extension_series",
			Help: "Extension series in the last collection."}),
		mappings: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_metrics_mapping_reads_total",
			Help: "Reads of Envoy's /config_dump after a CDS or LDS change."}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_metrics_envoy_restarts_total",
			Help: "Envoy restarts seen as counters going backwards."}),
	}
	c.collections.WithLabelValues("ok")
	c.collections.WithLabelValues("error")
	if opt.Registry != nil {
		for _, m := range []prometheus.Collector{c.up, c.collections, c.duration, c.series, c.mappings, c.resets} {
			if err := opt.Registry.Register(m); err != nil {
				return nil, fmt.Errorf("metrics collector: register: %w", err)
			}
		}
	}
	return c, nil
}

// Up reports whether the last read of Envoy succeeded.
func (c *Collector) Up() bool { return c.upState.Load() }

// Snapshot returns a collection no older than MaxAge, collecting if
// needed. On error Envoy is marked down and nothing stale is returned.
func (c *Collector) Snapshot(ctx context.Context) (*Snapshot, error) {
	return c.snapshot(ctx, c.opt.MaxAge)
}

// Collect always reads Envoy afresh.
func (c *Collector) Collect(ctx context.Context) (*Snapshot, error) {
	return c.snapshot(ctx, 0)
}

func (c *Collector) snapshot(ctx context.Context, maxAge time.Duration) (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last != nil && maxAge > 0 && c.opt.Now().Sub(c.last.Time) < maxAge {
		return c.last, nil
	}
	start := time.Now()
	s, err := c.collect(ctx)
	c.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		c.up.Set(0)
		c.upState.Store(false)
		c.collections.WithLabelValues("error").Inc()
		c.last = nil
		return nil, err
	}
	c.up.Set(1)
	c.upState.Store(true)
	c.collections.WithLabelValues("ok").Inc()
	c.series.Set(float64(len(s.Series)))
	c.last = s
	return s, nil
}

// statsQuery is the collection's /stats query.
var statsQuery = url.Values{"format": {"json"}, "usedonly": {""}, "histogram_buckets": {"detailed"}, "filter": {StatsFilter}}

func (c *Collector) collect(ctx context.Context) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
	defer cancel()
	now := c.opt.Now()
	body, err := c.opt.Admin.Get(ctx, "/stats", statsQuery)
	if err != nil {
		return nil, fmt.Errorf("read envoy stats: %w", err)
	}
	st, err := ParseStats(body, false)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Time: now}
	if hasAppMeshStats(st) {
		fams, err := c.passthrough(ctx)
		if err != nil {
			return nil, err
		}
		snap.Passthrough = fams
		return snap, nil
	}
	versions := [2]float64{st.Values["cluster_manager.cds.version"], st.Values["listener_manager.lds.version"]}
	if c.mapping == nil || versions != c.versions {
		m, err := c.readMapping(ctx)
		if err != nil {
			return nil, err
		}
		c.mapping, c.versions = m, versions
		c.mappings.Inc()
	}
	snap.Series = Derive(c.mapping, st)
	snap.Restarted = c.detectReset(snap.Series)
	return snap, nil
}

// detectReset notes counters going backwards (Envoy restarted).
func (c *Collector) detectReset(series []Series) bool {
	next := make(map[string]float64, len(series))
	reset := false
	for i := range series {
		s := &series[i]
		if s.Kind != Counter {
			continue
		}
		k := s.key()
		next[k] = s.Value
		if prev, ok := c.counters[k]; ok && s.Value < prev {
			reset = true
		}
	}
	c.counters = next
	if reset {
		c.resets.Inc()
		c.log.Info("envoy counters went backwards: envoy restarted")
	}
	return reset
}

func (c *Collector) readMapping(ctx context.Context) (*Mapping, error) {
	var bodies [][]byte
	for _, r := range []string{"dynamic_active_clusters", "dynamic_listeners"} {
		b, err := c.opt.Admin.Get(ctx, "/config_dump", url.Values{"resource": {r}})
		if err != nil {
			return nil, fmt.Errorf("read envoy config (%s): %w", r, err)
		}
		bodies = append(bodies, b)
	}
	m, err := ParseConfigDump(bodies...)
	if err != nil {
		return nil, err
	}
	if m.Name == "" {
		m.Mesh, m.Kind, m.Name = firstNonEmpty(m.Mesh, c.opt.Mesh), c.opt.Kind, c.opt.Name
	}
	if m.Kind == "" {
		m.Kind = "VirtualNode"
	}
	c.log.Debug("envoy mapping read", "mesh", m.Mesh, m.Kind, m.Name, "egress_clusters", len(m.Egress), "ingress_listeners", len(m.Listeners))
	return m, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// passthrough reads App Mesh's own extension families from Envoy.
func (c *Collector) passthrough(ctx context.Context) ([]*dto.MetricFamily, error) {
	resp, err := c.opt.Admin.Do(ctx, http.MethodGet, "/stats", url.Values{"format": {"prometheus"}, "usedonly": {""}, "filter": {`^appmesh\.`}})
	if err != nil {
		return nil, fmt.Errorf("read envoy appmesh stats: %w", err)
	}
	defer resp.Body.Close()
	return ParseText(io.LimitReader(resp.Body, envoyadmin.MaxBody), PrometheusPrefix)
}

// Extension returns the extension families (envoy_appmesh_<Metric>) of a
// snapshot no older than MaxAge.
func (c *Collector) Extension(ctx context.Context) ([]*dto.MetricFamily, error) {
	s, err := c.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return s.Families(), nil
}

// WritePrometheus streams Envoy's own /stats/prometheus (usedOnly →
// ?usedonly) and appends the derived extension families, unless Envoy's
// output already has them (App Mesh's build). It fails only when Envoy's
// exposition cannot be read at all.
func (c *Collector) WritePrometheus(ctx context.Context, w io.Writer, usedOnly bool) error {
	snap, snapErr := c.Snapshot(ctx)
	q := url.Values{}
	if usedOnly {
		q.Set("usedonly", "")
	}
	resp, err := c.opt.Admin.Do(ctx, http.MethodGet, "/stats/prometheus", q)
	if err != nil {
		return fmt.Errorf("read envoy prometheus stats: %w", err)
	}
	defer resp.Body.Close()
	sc := newAppMeshScanner(w)
	if _, err := io.Copy(sc, io.LimitReader(resp.Body, 1<<30)); err != nil {
		return fmt.Errorf("copy envoy prometheus stats: %w", err)
	}
	if sc.found || snapErr != nil || snap.Passthrough != nil {
		if snapErr != nil {
			c.log.Warn("metrics extension left out of the exposition", "err", snapErr)
		}
		return nil
	}
	return WriteText(w, snap.Families())
}

// Handler serves meshd's Prometheus endpoint: GET /stats/prometheus (and
// /metrics) answer meshd's own metrics from gatherer, then Envoy's
// exposition with the extension appended. They always answer 200: with
// Envoy unreachable the body holds meshd_envoy_up 0 and no extension.
func (c *Collector) Handler(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		usedOnly := r.URL.Query().Has("usedonly")
		// Collect first so meshd_envoy_up is current in the own metrics.
		_, _ = c.Snapshot(r.Context())
		if gatherer != nil {
			fams, err := gatherer.Gather()
			if err != nil {
				c.log.Warn("gather own metrics", "err", err)
			}
			if err := WriteText(w, fams); err != nil {
				return
			}
		}
		if err := c.WritePrometheus(r.Context(), w, usedOnly); err != nil {
			c.log.Debug("envoy exposition unavailable", "err", err)
		}
	}
	mux.HandleFunc("GET /stats/prometheus", h)
	mux.HandleFunc("GET /metrics", h)
	return mux
}
