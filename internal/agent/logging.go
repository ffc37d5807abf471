package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// logLevel serves /enableLogging: it changes Envoy's log level and, unless
// the change is permanent, reverts it to the baseline (ENVOY_LOG_LEVEL)
// after resetAfter.
type logLevel struct {
	admin      EnvoyAdmin
	proc       *Process
	log        *slog.Logger
	baseline   string
	resetAfter time.Duration

	mu      sync.Mutex // held across the Envoy call: changes are serialised
	current string     // Envoy's level as far as we know
	gen     uint64     // the Envoy generation current belongs to
	timer   *time.Timer
	armID   uint64 // identifies the armed timer; a stale callback does nothing
	closed  bool
}

func newLogLevel(admin EnvoyAdmin, proc *Process, log *slog.Logger, baseline string, resetAfter time.Duration) *logLevel {
	return &logLevel{admin: admin, proc: proc, log: log, baseline: baseline, resetAfter: resetAfter,
		current: baseline, gen: proc.State().Generation}
}

// liveLocked is Envoy's current level: a restarted Envoy runs at the
// baseline again (-l), and its pending reset is moot.
func (l *logLevel) liveLocked() string {
	if g := l.proc.State().Generation; g != l.gen {
		l.gen, l.current = g, l.baseline
		l.disarmLocked()
	}
	return l.current
}

func (l *logLevel) disarmLocked() {
	if l.timer != nil {
		l.timer.Stop()
		l.timer = nil
	}
	l.armID++
}

func (l *logLevel) armLocked() {
	l.disarmLocked()
	if l.closed {
		return
	}
	id := l.armID
	l.timer = time.AfterFunc(l.resetAfter, func() { l.reset(id) })
}

// close cancels a pending reset (the agent is stopping).
func (l *logLevel) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	l.disarmLocked()
}

func (l *logLevel) reset(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if id != l.armID || l.closed {
		return
	}
	l.timer = nil
	if l.liveLocked() == l.baseline {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.setEnvoy(ctx, l.baseline); err != nil {
		l.log.Error("cannot reset envoy's log level", "level", l.baseline, "err", err)
		return
	}
	l.log.Info("envoy's log level reset", "from", l.current, "to", l.baseline)
	l.current = l.baseline
}

// setEnvoy sends Envoy POST /logging?level=<level> and warns when Envoy's
// answer shows loggers at another level.
func (l *logLevel) setEnvoy(ctx context.Context, level string) error {
	var body []byte
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		body, err = l.admin.Post(ctx, "/logging", url.Values{"level": {level}})
		return err
	})
	if err != nil {
		return err
	}
	want := level
	if want == "warn" {
		want = "warning"
	}
	total, changed := 0, 0
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		name, lv, ok := strings.Cut(line, ":")
		if !ok || name == "active loggers" || strings.TrimSpace(lv) == "" {
			continue
		}
		total++
		if strings.TrimSpace(lv) == want {
			changed++
		}
	}
	if changed < total {
		l.log.Warn("not every envoy logger changed level", "level", level, "changed", changed, "loggers", total)
	}
	return nil
}

// ServeHTTP is POST /enableLogging?level=<level>[&permanent=true].
func (l *logLevel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "Only POST requests are supported", http.StatusBadRequest)
		return
	}
	if bodySize(r) != 0 {
		http.Error(w, "Invalid request", http.StatusBadRequest)
		return
	}
	level, permanent, ok := parseLoggingQuery(r.URL.RawQuery)
	if !ok {
		http.Error(w, "Invalid request", http.StatusBadRequest)
		return
	}
	if !slices.Contains(LogLevels, level) {
		http.Error(w, "Invalid log level specified", http.StatusBadRequest)
		return
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.liveLocked()
	if level == cur {
		if l.timer != nil { // a temporary level is in force
			if permanent {
				l.disarmLocked()
			} else {
				l.armLocked()
			}
		}
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if err := l.setEnvoy(r.Context(), level); err != nil {
		l.log.Error("cannot set envoy's log level", "level", level, "err", err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, "Unable to set logging level to [%s]\n", level)
		return
	}
	l.current = level
	if permanent || level == l.baseline {
		l.disarmLocked()
	} else {
		l.armLocked()
	}
	l.log.Info("envoy's log level changed", "from", cur, "to", level, "permanent", permanent, "resetAfter", l.resetAfter)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Setting logging level from [%s] to [%s]\n", cur, level)
}

// parseLoggingQuery accepts exactly level=<l> and optionally
// permanent=<bool>, each once.
func parseLoggingQuery(raw string) (level string, permanent, ok bool) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "", false, false
	}
	for k, vs := range q {
		if len(vs) != 1 {
			return "", false, false
		}
		switch k {
		case "level":
			level = strings.ToLower(vs[0])
		case "permanent":
			if permanent, err = strconv.ParseBool(vs[0]); err != nil {
				return "", false, false
			}
		default:
			return "", false, false
		}
	}
	return level, permanent, level != ""
}
