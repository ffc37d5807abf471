package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/time/rate"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// Rate limit of the admin API (App Mesh's): one token bucket shared by every
// endpoint.
const (
	RateLimit = 10 // requests per second
	RateBurst = 20
)

// ServerConfig configures the admin API.
type ServerConfig struct {
	// Config places the API (AdminMode, BindAddress, HTTPPort,
	// AdminUDSPath) and supplies ENVOY_LOG_LEVEL and the reset timeout.
	Config  Config
	Admin   EnvoyAdmin
	Process *Process
	Health  *Health
	Stats   Stats
	// Snapshots serves ?delta; nil means ENABLE_STATS_SNAPSHOT is off.
	Snapshots *Snapshotter
	Log       *slog.Logger
	Metrics   *Metrics
	// Limiter overrides the shared token bucket (nil: RateLimit/RateBurst).
	Limiter *rate.Limiter
	// OnListen, if set, receives the bound address.
	OnListen func(net.Addr)
}

// Server is the agent's admin API.
type Server struct {
	cfg     ServerConfig
	levels  *logLevel
	handler http.Handler
}

// NewServer checks cfg and builds the API.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Admin == nil || cfg.Process == nil || cfg.Health == nil || cfg.Stats == nil || cfg.Log == nil {
		return nil, errors.New("agent: server needs an admin client, a Process, a Health, Stats and a logger")
	}
	if cfg.Limiter == nil {
		cfg.Limiter = rate.NewLimiter(RateLimit, RateBurst)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	s := &Server{cfg: cfg}
	s.levels = newLogLevel(cfg.Admin, cfg.Process, cfg.Log, cfg.Config.EnvoyLogLevel, cfg.Config.LoggingReset)
	mux := http.NewServeMux()
	mux.HandleFunc("/status", s.status)
	mux.HandleFunc("/drain_listeners", s.drain)
	mux.Handle("/enableLogging", s.levels)
	mux.HandleFunc("/stats/prometheus", s.stats)
	s.handler = s.limit(mux)
	return s, nil
}

// Handler is the API: every request takes a token from the shared bucket
// (429 without one); unknown paths are 404.
func (s *Server) Handler() http.Handler { return s.handler }

var endpoints = []string{"/status", "/drain_listeners", "/enableLogging", "/stats/prometheus"}

func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endpoint := "other"
		if slices.Contains(endpoints, r.URL.Path) {
			endpoint = r.URL.Path
		}
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		defer func() { s.cfg.Metrics.requests.WithLabelValues(endpoint, strconv.Itoa(rec.code)).Inc() }()
		if !s.cfg.Limiter.Allow() {
			http.Error(rec, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(rec, r)
	})
}

// recorder remembers the status code.
type recorder struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// status is GET /status: the cached health document.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, fmt.Sprintf("Invalid method [%s] in request: /status supports GET", r.Method), http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(s.cfg.Health.Status().Marshal()) // the client went away
}

// drain is POST /drain_listeners[?inboundonly]: Envoy drains all (or only
// inbound) listeners.
func (s *Server) drain(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, fmt.Sprintf("Invalid method [%s] in request", r.Method), http.StatusBadRequest)
		return
	}
	if n := bodySize(r); n != 0 {
		http.Error(w, fmt.Sprintf("Unexpected content in request. Body size [%d]", n), http.StatusBadRequest)
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, fmt.Sprintf("Unable to parse queries in URL: %s", err), http.StatusBadRequest)
		return
	}
	var envoyQ url.Values
	switch len(q) {
	case 0:
	case 1:
		if !q.Has("inboundonly") {
			http.Error(w, fmt.Sprintf("Unexpected query parameters specified in request [%v]", q), http.StatusBadRequest)
			return
		}
		envoyQ = url.Values{"inboundonly": {""}}
	default:
		http.Error(w, fmt.Sprintf("Unexpected number of query parameters specified in request: [%d]", len(q)), http.StatusBadRequest)
		return
	}
	var body []byte
	err = retry(r.Context(), func(ctx context.Context) error {
		body, err = s.cfg.Admin.Post(ctx, "/drain_listeners", envoyQ)
		return err
	})
	if err != nil {
		s.cfg.Log.Error("cannot drain envoy's listeners", "inboundonly", envoyQ != nil, "err", err)
		http.Error(w, "Unable to drain Envoy listeners", http.StatusInternalServerError)
		return
	}
	s.cfg.Log.Info("envoy is draining its listeners", "inboundonly", envoyQ != nil)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(body)
}

// Query parameters of /stats/prometheus.
const (
	qUsedOnly        = "usedonly"
	qFilter          = "filter"
	qDelta           = "delta"
	metricsExtension = "metrics_extension"
	promContentType  = "text/plain; version=0.0.4; charset=utf-8"
)

// stats is GET /stats/prometheus[?usedonly][&filter=metrics_extension[&delta]].
func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, fmt.Sprintf("invalid method [%s] in request", r.Method), http.StatusBadRequest)
		return
	}
	if n := bodySize(r); n != 0 {
		http.Error(w, fmt.Sprintf("unexpected content in request. Body size [%d]", n), http.StatusBadRequest)
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		http.Error(w, fmt.Sprintf("unable to parse queries in URL: %s", err), http.StatusBadRequest)
		return
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		switch k {
		case qUsedOnly, qDelta:
		case qFilter:
			if v := q.Get(k); v != metricsExtension {
				http.Error(w, fmt.Sprintf("unsupported query value for parameter %s: %s, usage: /stats/prometheus?%s=%s", k, v, qFilter, metricsExtension), http.StatusBadRequest)
				return
			}
		default:
			http.Error(w, "unsupported query parameter: "+k, http.StatusBadRequest)
			return
		}
	}
	if q.Has(qDelta) {
		if !q.Has(qUsedOnly) || !q.Has(qFilter) {
			http.Error(w, "when delta is enabled, both usedonly and filter query parameters are required", http.StatusBadRequest)
			return
		}
		if s.cfg.Snapshots == nil {
			http.Error(w, "delta needs the stats snapshotter: set ENABLE_STATS_SNAPSHOT=true on the agent", http.StatusBadRequest)
			return
		}
		if d := s.cfg.Snapshots.Delta(); d != nil {
			s.writeFamilies(w, d)
			return
		}
		// No delta yet: everything since Envoy started is the delta.
	}
	if q.Has(qFilter) {
		fams, err := s.cfg.Stats.Extension(r.Context())
		if err != nil {
			s.cfg.Log.Error("cannot fetch the metrics-extension stats", "err", err)
			http.Error(w, "Failed to fetch stats from Envoy", http.StatusInternalServerError)
			return
		}
		s.writeFamilies(w, extensionFamilies(fams))
		return
	}
	w.Header().Set("Content-Type", promContentType)
	cw := &countingWriter{w: w}
	if err := s.cfg.Stats.WritePrometheus(r.Context(), cw, q.Has(qUsedOnly)); err != nil {
		s.cfg.Log.Error("cannot fetch stats from envoy", "err", err, "written", cw.n)
		if cw.n == 0 {
			http.Error(w, "Failed to fetch stats from Envoy", http.StatusInternalServerError)
		}
	}
}

func (s *Server) writeFamilies(w http.ResponseWriter, fams map[string]*dto.MetricFamily) {
	w.Header().Set("Content-Type", promContentType)
	cw := &countingWriter{w: w}
	if err := writeFamilies(cw, fams); err != nil {
		s.cfg.Log.Error("cannot write the metrics-extension stats", "err", err)
		if cw.n == 0 {
			http.Error(w, "Failed to fetch stats from Envoy", http.StatusInternalServerError)
		}
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if len(b) == 0 { // an empty write would commit a 200
		return 0, nil
	}
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// bodySize is the request body's size: its Content-Length, or for a body of
// unknown length what can be read of it (up to 1 MiB).
func bodySize(r *http.Request) int64 {
	if r.ContentLength >= 0 || r.Body == nil {
		return max(r.ContentLength, 0)
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	return n
}

// retry calls f up to 3 times while Envoy is unreachable (not when it
// answers with an error), 100 ms then 200 ms apart, each call bounded to 5 s.
func retry(ctx context.Context, f func(context.Context) error) error {
	var err error
	wait := 100 * time.Millisecond
	for attempt := 0; attempt < 3; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = f(actx)
		cancel()
		if err == nil || !envoyadmin.IsUnreachable(err) || attempt == 2 {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait *= 2
	}
	return err
}

// Run serves the API until ctx is cancelled: on a TCP address or, in uds
// mode, on a Unix socket made 0660 (a stale socket is replaced; any other
// file at that path is an error).
func (s *Server) Run(ctx context.Context) error {
	defer s.levels.close()
	ln, err := s.listen()
	if err != nil {
		return err
	}
	if s.cfg.OnListen != nil {
		s.cfg.OnListen(ln.Addr())
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.cfg.Log.Info("serving the agent API", "mode", string(s.cfg.Config.AdminMode), "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("agent API: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("agent API shutdown: %w", err)
	}
	<-errc
	return nil
}

func (s *Server) listen() (net.Listener, error) {
	c := s.cfg.Config
	if c.AdminMode != AdminUDS {
		ln, err := net.Listen("tcp", c.Listen())
		if err != nil {
			return nil, fmt.Errorf("agent API listener (APPNET_AGENT_HTTP_BIND_ADDRESS=%s, APPNET_AGENT_HTTP_PORT=%d): %w", c.BindAddress, c.HTTPPort, err)
		}
		return ln, nil
	}
	return ListenUnix(c.AdminUDSPath)
}

// ListenUnix listens on a Unix socket at path with mode 0660. An existing
// socket nobody serves on is removed first; a live one, or any other kind
// of file, is an error.
func ListenUnix(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("agent API socket (APPNET_AGENT_ADMIN_UDS_PATH=%s): exists and is not a socket; refusing to replace it", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("agent API socket (APPNET_AGENT_ADMIN_UDS_PATH=%s): another process is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("agent API socket: remove stale socket: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("agent API socket (APPNET_AGENT_ADMIN_UDS_PATH=%s): %w", path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("agent API socket (APPNET_AGENT_ADMIN_UDS_PATH=%s): %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("agent API socket: %w", err)
	}
	return ln, nil
}
