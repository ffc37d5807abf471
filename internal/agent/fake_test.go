package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// fakeEnvoy is Envoy's admin interface as far as the agent uses it.
type fakeEnvoy struct {
	mu          sync.Mutex
	ready       string // LIVE, PRE_INITIALIZING, …
	connected   int
	lcf         int
	noStats     bool // /stats answers 500
	loggingFail bool
	prom        string // /stats/prometheus body
	promFail    bool
	calls       []string // "METHOD /path?query"
}

func newFakeEnvoy() *fakeEnvoy { return &fakeEnvoy{ready: Live, connected: 1} }

func (f *fakeEnvoy) set(fn func(f *fakeEnvoy)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeEnvoy) callList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeEnvoy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		call += "?" + r.URL.RawQuery
	}
	f.calls = append(f.calls, call)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/ready":
		if f.ready != Live {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintln(w, f.ready)
	case r.Method == http.MethodGet && r.URL.Path == "/stats" && r.URL.Query().Get("format") == "json":
		if f.noStats {
			http.Error(w, "nope", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, `{"stats":[{"name":"control_plane.connected_state","value":%d},{"name":"listener_manager.listener_create_failure","value":%d}]}`, f.connected, f.lcf)
	case r.Method == http.MethodPost && r.URL.Path == "/drain_listeners":
		fmt.Fprintln(w, "OK")
	case r.Method == http.MethodPost && r.URL.Path == "/logging":
		if f.loggingFail {
			http.Error(w, "bad level", http.StatusBadRequest)
			return
		}
		lv := r.URL.Query().Get("level")
		fmt.Fprintf(w, "active loggers:\n  admin: %s\n  upstream: %s\n", lv, lv)
	case r.Method == http.MethodGet && r.URL.Path == "/stats/prometheus":
		if f.promFail {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, f.prom)
	default:
		http.NotFound(w, r)
	}
}

// handlerAdmin is an EnvoyAdmin that calls a handler in memory (no
// network: usable inside synctest bubbles). down makes every call fail as
// an unreachable Envoy does.
type handlerAdmin struct {
	h    http.Handler
	mu   sync.Mutex
	down bool
}

func (a *handlerAdmin) setDown(d bool) { a.mu.Lock(); a.down = d; a.mu.Unlock() }

func (a *handlerAdmin) Do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	a.mu.Lock()
	down := a.down
	a.mu.Unlock()
	if down {
		return nil, errors.New("dial unix /tmp/envoy_admin.sock: connect: connection refused")
	}
	u := path
	if len(q) > 0 {
		u += "?" + envoyadmin.Encode(q)
	}
	req := httptest.NewRequestWithContext(ctx, method, u, nil)
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	resp := rec.Result()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return nil, &envoyadmin.StatusError{Path: path, Status: resp.StatusCode, Body: string(b)}
	}
	return resp, nil
}

func (a *handlerAdmin) Get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	return a.read(ctx, http.MethodGet, path, q)
}

func (a *handlerAdmin) Post(ctx context.Context, path string, q url.Values) ([]byte, error) {
	return a.read(ctx, http.MethodPost, path, q)
}

func (a *handlerAdmin) read(ctx context.Context, method, path string, q url.Values) ([]byte, error) {
	resp, err := a.Do(ctx, method, path, q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// tcpAdmin serves f on a real TCP listener and returns a real client.
func tcpAdmin(t *testing.T, h http.Handler) *envoyadmin.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := envoyadmin.New(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdle)
	return c
}

// testLog collects logs and prints them if the test fails (safe to use
// from goroutines that outlive the test).
func testLog(t *testing.T) *slog.Logger {
	w := &logBuf{}
	t.Cleanup(func() {
		if t.Failed() {
			w.mu.Lock()
			t.Log("logs:\n" + w.b.String())
			w.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *logBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// do sends one request to h and returns the response code and body.
func do(h http.Handler, method, target, body string) (int, string) {
	var r io.Reader
	if body != "" {
		r = bytes.NewBufferString(body)
	}
	req := httptest.NewRequest(method, target, r)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}
