package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// Values of the /status document (App Mesh's).
const (
	Healthy          = "HEALTHY"
	Unhealthy        = "UNHEALTHY"
	Live             = "LIVE"
	Unreachable      = "UNREACHABLE"
	Connected        = "CONNECTED"
	NotConnected     = "NOT_CONNECTED"
	NotInitialized   = "NOT_INITIALIZED"
	Initialized      = "INITIALIZED"
	UpdateSuccessful = "UPDATE_SUCCESSFUL"
	UpdateFailed     = "UPDATE_FAILED"
)

// Envoy stats the health poll reads.
const (
	statConnected      = "control_plane.connected_state"
	statListenerFailed = "listener_manager.listener_create_failure"
	healthStatsFilter  = `^(control_plane\.connected_state|listener_manager\.listener_create_failure)$`
	healthCallTimeout  = 2 * time.Second
)

// HealthStatus is the /status document, App Mesh's JSON field for field:
// every value a string, the connection fields and the initial-config
// status omitted until known, the disconnection time only while
// disconnected.
type HealthStatus struct {
	HealthStatus                          string     `json:"healthStatus"`
	AgentUptime                           string     `json:"agentUptime"`
	EnvoyPid                              string     `json:"envoyPid"`
	EnvoyState                            string     `json:"envoyState"`
	EnvoyRestartCount                     string     `json:"envoyRestartCount"`
	ManagementServerConnectionStatus      string     `json:"managementServerConnectionStatus,omitempty"`
	ManagementServerDisconnectedTimestamp *time.Time `json:"managementServerDisconnectedTimestamp,omitempty"`
	EnvoyReadinessState                   string     `json:"envoyReadinessState"`
	InitialConfigUpdateStatus             string     `json:"initialConfigUpdateStatus,omitempty"`
}

// Marshal is the /status body: json.MarshalIndent with two spaces and no
// trailing newline, as App Mesh wrote it.
func (s HealthStatus) Marshal() []byte {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil { // only strings and a time: cannot happen
		panic(fmt.Sprintf("agent: marshal health status: %v", err))
	}
	return b
}

// Verdict is App Mesh's health rule: HEALTHY iff Envoy is LIVE, its
// initial configuration did not fail, and it is connected to its control
// plane or was disconnected less than disconnectedTimeout ago (Envoy is
// statically stable while disconnected).
func Verdict(s HealthStatus, now time.Time, disconnectedTimeout time.Duration) string {
	if s.EnvoyState != Live || s.InitialConfigUpdateStatus == UpdateFailed {
		return Unhealthy
	}
	switch s.ManagementServerConnectionStatus {
	case Connected:
		return Healthy
	case NotConnected:
		if ts := s.ManagementServerDisconnectedTimestamp; ts != nil && now.Sub(*ts) < disconnectedTimeout {
			return Healthy
		}
	}
	return Unhealthy
}

// HealthConfig configures the health checker.
type HealthConfig struct {
	Admin   EnvoyAdmin
	Process *Process
	// Config supplies HCPollInterval and DisconnectedTimeout.
	Config  Config
	Log     *slog.Logger
	Metrics *Metrics
	// Start is when the agent started (agentUptime); zero means now.
	Start time.Time
}

// Health polls Envoy and keeps the /status document. It is safe for
// concurrent use.
type Health struct {
	cfg HealthConfig

	mu  sync.Mutex
	st  HealthStatus
	gen uint64 // the Envoy generation st's readiness fields belong to
}

// NewHealth returns a health checker whose status is App Mesh's initial
// one (healthStatus "" until the first poll).
func NewHealth(cfg HealthConfig) (*Health, error) {
	if cfg.Admin == nil || cfg.Process == nil || cfg.Log == nil {
		return nil, errors.New("agent: health needs an admin client, a Process and a logger")
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Health{cfg: cfg, st: HealthStatus{EnvoyPid: "0", EnvoyRestartCount: "0", EnvoyReadinessState: NotInitialized, AgentUptime: "0s"}}, nil
}

// Status returns a copy of the current status.
func (h *Health) Status() HealthStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.st
	if ts := s.ManagementServerDisconnectedTimestamp; ts != nil {
		t := *ts
		s.ManagementServerDisconnectedTimestamp = &t
	}
	return s
}

// Ready reports whether the last poll found Envoy HEALTHY.
func (h *Health) Ready() bool { return h.Status().HealthStatus == Healthy }

// Run polls every HCPollInterval plus 10–50 ms of jitter, and right after
// Envoy starts or exits, until ctx is cancelled.
func (h *Health) Run(ctx context.Context) error {
	jitter := 10*time.Millisecond + rand.N(40*time.Millisecond)
	t := time.NewTimer(h.cfg.Config.HCPollInterval + jitter)
	defer t.Stop()
	_, changed := h.cfg.Process.Watch()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			t.Reset(h.cfg.Config.HCPollInterval + jitter)
		case <-changed:
		}
		_, changed = h.cfg.Process.Watch() // before polling: a change during the poll polls again
		h.Poll(ctx)
	}
}

// Poll asks Envoy once and updates the status.
func (h *Health) Poll(ctx context.Context) {
	before := h.cfg.Process.State()
	state := h.readiness(ctx)
	stats, statsErr := h.stats(ctx)
	if statsErr != nil {
		h.cfg.Log.Debug("envoy stats for the health check", "err", statsErr)
	}
	now := time.Now()

	h.mu.Lock()
	defer h.mu.Unlock()
	proc := h.cfg.Process.State()
	s := &h.st
	s.AgentUptime = fmt.Sprintf("%.fs", now.Sub(h.cfg.Start).Seconds())
	s.EnvoyPid = strconv.Itoa(proc.PID)
	s.EnvoyRestartCount = strconv.Itoa(proc.Restarts)
	if proc.Generation != h.gen {
		// A new Envoy: its initial configuration is judged afresh.
		h.gen = proc.Generation
		s.EnvoyReadinessState = NotInitialized
		s.InitialConfigUpdateStatus = ""
	}
	if proc.Generation == before.Generation {
		s.EnvoyState = state
		if statsErr == nil {
			conn := NotConnected
			if stats.connected {
				conn = Connected
			}
			if conn != s.ManagementServerConnectionStatus {
				h.cfg.Log.Info("envoy's control-plane connection changed", "status", conn)
				if conn == NotConnected {
					ts := now.UTC()
					s.ManagementServerDisconnectedTimestamp = &ts
				} else {
					s.ManagementServerDisconnectedTimestamp = nil
				}
				s.ManagementServerConnectionStatus = conn
			}
			if s.EnvoyReadinessState == NotInitialized && state == Live {
				s.InitialConfigUpdateStatus = UpdateSuccessful
				if stats.listenerFailures > 0 {
					h.cfg.Log.Warn("envoy failed to create listeners from its initial configuration", "failures", stats.listenerFailures)
					s.InitialConfigUpdateStatus = UpdateFailed
				}
				s.EnvoyReadinessState = Initialized
			}
		}
	}
	prev := s.HealthStatus
	s.HealthStatus = Verdict(*s, now, h.cfg.Config.DisconnectedTimeout)
	if s.HealthStatus != prev {
		h.cfg.Log.Info("envoy health changed", "status", s.HealthStatus, "envoyState", s.EnvoyState, "connection", s.ManagementServerConnectionStatus)
	}
	if s.HealthStatus == Healthy {
		h.cfg.Metrics.healthy.Set(1)
	} else {
		h.cfg.Metrics.healthy.Set(0)
	}
}

// readiness is Envoy's /ready body, trimmed (Envoy answers 503 with the
// state when it is not LIVE), or UNREACHABLE.
func (h *Health) readiness(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, healthCallTimeout)
	defer cancel()
	body, err := h.cfg.Admin.Get(ctx, "/ready", nil)
	if err != nil {
		var se *envoyadmin.StatusError
		if errors.As(err, &se) {
			return strings.TrimSpace(se.Body)
		}
		h.cfg.Log.Debug("envoy readiness check failed", "err", err)
		return Unreachable
	}
	return strings.TrimSpace(string(body))
}

type healthStats struct {
	connected        bool
	listenerFailures float64
}

func (h *Health) stats(ctx context.Context) (healthStats, error) {
	ctx, cancel := context.WithTimeout(ctx, healthCallTimeout)
	defer cancel()
	body, err := h.cfg.Admin.Get(ctx, "/stats", url.Values{"format": {"json"}, "filter": {healthStatsFilter}})
	if err != nil {
		return healthStats{}, err
	}
	return parseHealthStats(body)
}

// parseHealthStats reads Envoy's JSON stats ({"stats":[{"name":…,
// "value":…}]}).
func parseHealthStats(body []byte) (healthStats, error) {
	var doc struct {
		Stats []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"stats"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return healthStats{}, fmt.Errorf("envoy stats: %w", err)
	}
	var hs healthStats
	for _, s := range doc.Stats {
		v, err := strconv.ParseFloat(strings.Trim(string(s.Value), `"`), 64)
		if err != nil {
			continue
		}
		switch s.Name {
		case statConnected:
			hs.connected = v == 1
		case statListenerFailed:
			hs.listenerFailures = v
		}
	}
	return hs, nil
}
