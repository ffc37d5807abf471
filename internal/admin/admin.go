// Package admin serves meshd's own observability endpoint: Prometheus
// metrics from an injected registry, /healthz (the process is up) and
// /readyz (every readiness check passes).
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is a named readiness check.
type Check struct {
	Name  string
	Ready func() bool
}

// Server is the admin HTTP server.
type Server struct {
	Addr     string
	Gatherer prometheus.Gatherer
	Checks   []Check
	Log      *slog.Logger
	// OnListen, if set, receives the bound address (useful with port 0).
	OnListen func(net.Addr)
	// Handlers are extra routes ("GET /debug/nodes" → handler).
	Handlers map[string]http.Handler
}

// Handler returns the admin mux.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelError)}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, c := range s.Checks {
			if !c.Ready() {
				http.Error(w, "not ready: "+c.Name, http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	for pattern, h := range s.Handlers {
		mux.Handle(pattern, h)
	}
	return mux
}

// Run serves until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("metrics listener (--metrics-listen=%s): %w", s.Addr, err)
	}
	if s.OnListen != nil {
		s.OnListen(ln.Addr())
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.Log.Info("serving metrics and health", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("metrics server shutdown: %w", err)
	}
	<-errc
	return nil
}
