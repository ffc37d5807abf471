package agent

import "github.com/prometheus/client_golang/prometheus"

// Metrics is the agent's own instrumentation (meshd_agent_*).
type Metrics struct {
	envoyStarts  prometheus.Counter
	envoyExits   *prometheus.CounterVec
	envoyRunning prometheus.Gauge
	healthy      prometheus.Gauge
	requests     *prometheus.CounterVec
}

// NewMetrics creates the agent's metrics and registers them with reg (nil:
// not registered, for tests and callers that do not export them).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		envoyStarts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "meshd", Subsystem: "agent", Name: "envoy_starts_total",
			Help: "Envoy processes started (the first start and every restart).",
		}),
		envoyExits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meshd", Subsystem: "agent", Name: "envoy_exits_total",
			Help: "Unrequested Envoy exits, by how: exit (an exit code) or signal.",
		}, []string{"how"}),
		envoyRunning: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "meshd", Subsystem: "agent", Name: "envoy_running",
			Help: "1 while an Envoy process runs.",
		}),
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "meshd", Subsystem: "agent", Name: "envoy_healthy",
			Help: "1 when the last health poll found Envoy HEALTHY (the /status verdict).",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "meshd", Subsystem: "agent", Name: "api_requests_total",
			Help: "Requests to the agent's admin API, by endpoint and status code.",
		}, []string{"endpoint", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.envoyStarts, m.envoyExits, m.envoyRunning, m.healthy, m.requests)
	}
	return m
}
