package controlplane

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	reloads     *prometheus.CounterVec
	problems    prometheus.Gauge
	lastApplied prometheus.Gauge
	resources   prometheus.Gauge
	snapshots   prometheus.Counter
	translate   prometheus.Histogram
	streams     *prometheus.GaugeVec
	acks        *prometheus.CounterVec
	nacks       *prometheus.CounterVec
	rejected    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_controlplane_config_loads_total",
			Help: "Configurations loaded from the sources, by result (applied, rejected)."}, []string{"result"}),
		problems: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshd_controlplane_config_problems",
			Help: "Problems in the last configuration loaded (0 when it was applied)."}),
		lastApplied: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshd_controlplane_config_last_applied_timestamp_seconds",
			Help: "When a configuration was last applied."}),
		resources: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshd_controlplane_config_resources",
			Help: "App Mesh resources in the configuration served."}),
		snapshots: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshd_xds_snapshot_updates_total",
			Help: "Per-node snapshots replaced because the node's resources changed."}),
		translate: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meshd_xds_translate_seconds",
			Help: "Time to translate one node's resources.", Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10)}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshd_xds_streams",
			Help: "Open xDS streams, by client flavor (envoy, grpc)."}, []string{"flavor"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_xds_acks_total",
			Help: "xDS responses clients accepted, by resource type."}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_xds_nacks_total",
			Help: "xDS responses clients rejected, by resource type."}, []string{"type"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshd_xds_streams_rejected_total",
			Help: "xDS streams refused, by reason (bad_node_id, unknown_node)."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.reloads, m.problems, m.lastApplied, m.resources, m.snapshots, m.translate, m.streams, m.acks, m.nacks, m.rejected)
	}
	return m
}
