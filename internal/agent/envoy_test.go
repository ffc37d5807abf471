package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// TestMain turns the test binary into a tiny fake Envoy when
// GO_WANT_HELPER_PROCESS=1 (see helperMain).
func TestMain(m *testing.M) {
	if os.Getenv("GO_WANT_HELPER_PROCESS") == "1" {
		helperMain()
		return
	}
	os.Exit(m.Run())
}

// helperMain behaves like Envoy as far as the agent can tell:
//   - appends its argv (JSON) to $HELPER_ARGV_FILE and "start <pid> <unix
//     ms>" to $HELPER_EVENTS_FILE;
//   - reads {"admin_socket": path} from its -c file and serves /ready and
//     /drain_listeners there (recording "drain <query>");
//   - exits with $HELPER_EXIT_CODE after $HELPER_EXIT_AFTER_MS, or kills
//     itself with SIGKILL if $HELPER_EXIT_SIGNAL is set;
//   - records "sigterm" and exits 0 on SIGTERM, unless $HELPER_IGNORE_TERM.
func helperMain() {
	event := func(s string) {
		f, err := os.OpenFile(os.Getenv("HELPER_EVENTS_FILE"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintln(f, s)
			f.Close()
		}
	}
	args := os.Args[1:]
	if b, err := json.Marshal(args); err == nil {
		if f, err := os.OpenFile(os.Getenv("HELPER_ARGV_FILE"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			fmt.Fprintf(f, "%s\n", b)
			f.Close()
		}
	}
	event(fmt.Sprintf("start %d %d", os.Getpid(), time.Now().UnixMilli()))
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	if i := slices.Index(args, "-c"); i >= 0 && i+1 < len(args) {
		var boot struct {
			AdminSocket string `json:"admin_socket"`
		}
		if b, err := os.ReadFile(args[i+1]); err == nil && json.Unmarshal(b, &boot) == nil && boot.AdminSocket != "" {
			os.Remove(boot.AdminSocket)
			if ln, err := net.Listen("unix", boot.AdminSocket); err == nil {
				mux := http.NewServeMux()
				mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "LIVE") })
				mux.HandleFunc("POST /drain_listeners", func(w http.ResponseWriter, r *http.Request) {
					event("drain " + r.URL.RawQuery)
					fmt.Fprintln(w, "OK")
				})
				go http.Serve(ln, mux)
			}
		}
	}
	if ms, err := strconv.Atoi(os.Getenv("HELPER_EXIT_AFTER_MS")); err == nil {
		time.Sleep(time.Duration(ms) * time.Millisecond)
		if os.Getenv("HELPER_EXIT_SIGNAL") != "" {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		code, _ := strconv.Atoi(os.Getenv("HELPER_EXIT_CODE"))
		os.Exit(code)
	}
	for range terms {
		if os.Getenv("HELPER_IGNORE_TERM") != "" {
			event("sigterm ignored")
			continue
		}
		event("sigterm")
		os.Exit(0)
	}
}

type helperRun struct {
	dir, argvFile, eventsFile, sock, boot string
	proc                                  *Process
	envoy                                 *Envoy
}

// newHelper prepares a fake Envoy run; env sets HELPER_* variables.
func newHelper(t *testing.T, cfg Config, extra []string, env map[string]string) *helperRun {
	t.Helper()
	dir, err := os.MkdirTemp("", "agt") // short: sun_path is ~108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &helperRun{dir: dir, argvFile: filepath.Join(dir, "argv"), eventsFile: filepath.Join(dir, "events"),
		sock: filepath.Join(dir, "admin.sock"), boot: filepath.Join(dir, "boot.json"), proc: &Process{}}
	if err := os.WriteFile(h.boot, []byte(`{"admin_socket":"`+h.sock+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GO_WANT_HELPER_PROCESS", "1")
	t.Setenv("HELPER_ARGV_FILE", h.argvFile)
	t.Setenv("HELPER_EVENTS_FILE", h.eventsFile)
	for _, k := range []string{"HELPER_EXIT_AFTER_MS", "HELPER_EXIT_CODE", "HELPER_EXIT_SIGNAL", "HELPER_IGNORE_TERM"} {
		t.Setenv(k, env[k])
		if env[k] == "" {
			os.Unsetenv(k)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	admin, err := envoyadmin.New("unix://" + h.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.CloseIdle)
	h.envoy, err = NewEnvoy(EnvoyConfig{
		Path: exe, Bootstrap: h.boot, Config: cfg, ExtraArgs: extra, Admin: admin, Process: h.proc,
		Log: testLog(t), Backoff: Backoff{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond}, StopGrace: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *helperRun) events(t *testing.T) []string {
	b, err := os.ReadFile(h.eventsFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
}

func (h *helperRun) waitEvent(t *testing.T, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range h.events(t) {
			if strings.HasPrefix(e, prefix) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %q event; events: %q", prefix, h.events(t))
}

func (h *helperRun) pids(t *testing.T) []int {
	var out []int
	for _, e := range h.events(t) {
		if f := strings.Split(e, "_"); f[0] == "start" {
			pid, _ := strconv.Atoi(f[1])
			out = append(out, pid)
		}
	}
	return out
}

func gone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

func TestArgs(t *testing.T) {
	c := defaults()
	if got, want := Args(c, "/tmp/b.yaml", nil), []string{"-c", "/tmp/b.yaml", "-l", "info", "--drain-time-s", "20", "--disable-hot-restart", "--skip-deprecated-logs"}; !slices.Equal(got, want) {
		t.Errorf("defaults: %q, want %q", got, want)
	}
	c.Concurrency, c.EnvoyLogLevel, c.DrainWait, c.DisableHotRestart, c.SkipDeprecatedLogs = 2, "debug", 5*time.Second, false, false
	if got, want := Args(c, "b", []string{"--base-id", "1"}), []string{"-c", "b", "-l", "debug", "--concurrency", "2", "--drain-time-s", "5", "--base-id", "1"}; !slices.Equal(got, want) {
		t.Errorf("custom: %q, want %q", got, want)
	}
}

// TestEnvoyRunAndDrain: the real command line; on cancellation Envoy is
// drained gracefully, then stopped with SIGTERM, and is gone when Run
// returns.
func TestEnvoyRunAndDrain(t *testing.T) {
	cfg := defaults()
	cfg.Concurrency = 2
	cfg.DrainWait = 300 * time.Millisecond // --drain-time-s 0
	h := newHelper(t, cfg, []string{"--component-log-level", "upstream:debug"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.envoy.Run(ctx) }()
	h.waitEvent(t, "start")
	deadline := time.Now().Add(5 * time.Second)
	for h.proc.State().PID == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	pid := h.pids(t)[0]
	if st := h.proc.State(); st.PID != pid || st.Restarts != 0 || st.Generation != 1 {
		t.Fatalf("process state %+v, pid %d", st, pid)
	}
	argv, _ := os.ReadFile(h.argvFile)
	want := `["-c","` + h.boot + `","-l","info","--concurrency","2","--drain-time-s","0","--disable-hot-restart","--skip-deprecated-logs","--component-log-level","upstream:debug"]` + "\n"
	if string(argv) != want {
		t.Fatalf("argv:\n%s\nwant\n%s", argv, want)
	}
	// Wait until the fake serves its admin socket, as Envoy would.
	for _, err := os.Stat(h.sock); err != nil; _, err = os.Stat(h.sock) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if took := time.Since(start); took < cfg.DrainWait {
		t.Errorf("stopped after %s, before the drain wait %s", took, cfg.DrainWait)
	}
	if got, want := h.events(t)[1:], []string{"drain_graceful", "sigterm"}; !slices.Equal(got, want) {
		t.Errorf("events after start = %q, want %q", got, want)
	}
	if !gone(pid) {
		t.Errorf("envoy %d still exists after Run returned", pid)
	}
	if st := h.proc.State(); st.PID != 0 {
		t.Errorf("pid still published: %+v", st)
	}
}

// TestEnvoyKilledWhenItIgnoresSIGTERM: SIGKILL after the grace period.
func TestEnvoyKilledWhenItIgnoresSIGTERM(t *testing.T) {
	cfg := defaults()
	cfg.DrainWait = 50 * time.Millisecond
	h := newHelper(t, cfg, nil, map[string]string{"HELPER_IGNORE_TERM": "1"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.envoy.Run(ctx) }()
	h.waitEvent(t, "start")
	for _, err := os.Stat(h.sock); err != nil; _, err = os.Stat(h.sock) {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("killed after %s, before the 300ms grace", took)
	}
	if got, want := h.events(t)[1:], []string{"drain_graceful", "sigterm_ignored"}; !slices.Equal(got, want) {
		t.Errorf("events after start = %q, want %q", got, want)
	}
	if pid := h.pids(t)[0]; !gone(pid) {
		t.Errorf("envoy %d survived", pid)
	}
}

// TestEnvoyRestartBudget: any exit is restarted with growing backoff until
// APPNET_ENVOY_RESTART_COUNT is spent; then Run fails.
func TestEnvoyRestartBudget(t *testing.T) {
	cfg := defaults()
	cfg.RestartCount = 3
	h := newHelper(t, cfg, nil, map[string]string{"HELPER_EXIT_AFTER_MS": "0", "HELPER_EXIT_CODE": "3"})
	err := h.envoy.Run(context.Background())
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(err.Error(), "APPNET_ENVOY_RESTART_COUNT=3") {
		t.Fatalf("Run = %v, want the exit error and the budget", err)
	}
	var starts []int64
	for _, e := range h.events(t) {
		if f := strings.Split(e, "_"); f[0] == "start" {
			ms, _ := strconv.ParseInt(f[2], 10, 64)
			starts = append(starts, ms)
		}
	}
	if len(starts) != 4 {
		t.Fatalf("%d starts, want 4 (1 + 3 restarts)", len(starts))
	}
	for i, min := range []int64{20, 40, 40} { // backoff 20ms doubling, max 40ms
		if gap := starts[i+1] - starts[i]; gap < min {
			t.Errorf("restart %d after %dms, want ≥ %dms", i+1, gap, min)
		}
	}
	if st := h.proc.State(); st.Restarts != 3 || st.PID != 0 || st.Generation != 4 {
		t.Errorf("process state %+v", st)
	}
	for _, pid := range h.pids(t) {
		if !gone(pid) {
			t.Errorf("envoy %d still exists", pid)
		}
	}
}

func TestEnvoyRestartAfterSignal(t *testing.T) {
	cfg := defaults()
	cfg.RestartCount = 1
	h := newHelper(t, cfg, nil, map[string]string{"HELPER_EXIT_AFTER_MS": "0", "HELPER_EXIT_SIGNAL": "1"})
	err := h.envoy.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "signal killed") {
		t.Fatalf("Run = %v", err)
	}
	if n := len(h.pids(t)); n != 2 {
		t.Fatalf("%d starts, want 2", n)
	}
}

func TestEnvoyZeroBudget(t *testing.T) {
	cfg := defaults()
	cfg.RestartCount = 0
	h := newHelper(t, cfg, nil, map[string]string{"HELPER_EXIT_AFTER_MS": "0"})
	// Exit code 0 is an exit too: Envoy must not stop by itself.
	if err := h.envoy.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "exit code 0") {
		t.Fatalf("Run = %v", err)
	}
}

func TestEnvoyStartFailure(t *testing.T) {
	h := newHelper(t, defaults(), nil, nil)
	h.envoy.cfg.Path = filepath.Join(h.dir, "no-envoy")
	err := h.envoy.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "--envoy-path="+h.envoy.cfg.Path) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run = %v", err)
	}
}

// TestEnvoyCancelDuringBackoff: a stop request while waiting to restart
// returns at once, with nothing running.
func TestEnvoyCancelDuringBackoff(t *testing.T) {
	cfg := defaults()
	h := newHelper(t, cfg, nil, map[string]string{"HELPER_EXIT_AFTER_MS": "0"})
	h.envoy.cfg.Backoff = Backoff{Initial: time.Hour, Max: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.envoy.Run(ctx) }()
	h.waitEvent(t, "start")
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}
