package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// DefaultSnapshotInterval is App Mesh's snapshot period.
const DefaultSnapshotInterval = time.Minute

// SnapshotterConfig configures the delta snapshotter.
type SnapshotterConfig struct {
	Stats   Stats
	Process *Process
	Log     *slog.Logger
	// Interval between snapshots (zero: DefaultSnapshotInterval).
	Interval time.Duration
}

// Snapshotter takes the metrics-extension families every Interval and
// keeps the delta between the last two snapshots for
// /stats/prometheus?delta. A restart of Envoy discards both. It is safe for
// concurrent use.
type Snapshotter struct {
	cfg SnapshotterConfig

	mu    sync.Mutex
	gen   uint64 // Envoy generation of last and delta
	last  map[string]*dto.MetricFamily
	delta map[string]*dto.MetricFamily
}

// NewSnapshotter returns a snapshotter with no snapshot yet.
func NewSnapshotter(cfg SnapshotterConfig) (*Snapshotter, error) {
	if cfg.Stats == nil || cfg.Process == nil || cfg.Log == nil {
		return nil, errors.New("agent: snapshotter needs stats, a Process and a logger")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSnapshotInterval
	}
	return &Snapshotter{cfg: cfg}, nil
}

// Run snapshots every Interval until ctx is cancelled.
func (s *Snapshotter) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Snapshot(ctx)
		}
	}
}

// Snapshot takes one snapshot and computes the delta against the previous
// one of the same Envoy process.
func (s *Snapshotter) Snapshot(ctx context.Context) {
	gen := s.cfg.Process.State().Generation
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fams, err := s.cfg.Stats.Extension(ctx)
	if err != nil {
		s.cfg.Log.Warn("stats snapshot failed", "err", err)
		return
	}
	cur := extensionFamilies(fams)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Process.State().Generation != gen {
		return // Envoy restarted while we asked: these counters belong to neither
	}
	if gen != s.gen {
		s.gen, s.last, s.delta = gen, nil, nil
	}
	s.delta = Delta(s.last, cur)
	s.last = cur
}

// Delta returns the latest delta (read-only), or nil when there is none for
// the running Envoy yet.
func (s *Snapshotter) Delta() map[string]*dto.MetricFamily {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Process.State().Generation != s.gen {
		return nil
	}
	return s.delta
}
