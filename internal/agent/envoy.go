package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// EnvoyAdmin is the part of Envoy's admin interface the agent calls;
// *envoyadmin.Client implements it.
type EnvoyAdmin interface {
	Do(ctx context.Context, method, path string, query url.Values) (*http.Response, error)
	Get(ctx context.Context, path string, query url.Values) ([]byte, error)
	Post(ctx context.Context, path string, query url.Values) ([]byte, error)
}

var _ EnvoyAdmin = (*envoyadmin.Client)(nil)

// Backoff is the delay before each restart: Initial, doubling up to Max.
type Backoff struct {
	Initial, Max time.Duration
}

// DefaultBackoff is the restart backoff of `meshd agent`.
var DefaultBackoff = Backoff{Initial: 250 * time.Millisecond, Max: 5 * time.Second}

// DefaultStopGrace is how long Envoy has to exit after SIGTERM before it is
// killed (App Mesh's PID_STOP_DELAY).
const DefaultStopGrace = 3 * time.Second

// EnvoyConfig configures the Envoy component.
type EnvoyConfig struct {
	// Path is Envoy's binary.
	Path string
	// Bootstrap is the -c file.
	Bootstrap string
	// Config supplies the log level, drain time, flags, restart budget and
	// PID_POLL_INTERVAL_MS.
	Config Config
	// ExtraArgs are appended to Envoy's command line.
	ExtraArgs []string
	// Admin is Envoy's admin interface (for the graceful drain).
	Admin EnvoyAdmin
	// Process receives Envoy's state (required).
	Process *Process
	Log     *slog.Logger
	Metrics *Metrics
	// Stdout and Stderr receive Envoy's output (nil: the agent's own).
	Stdout, Stderr io.Writer
	// Backoff between restarts (zero: DefaultBackoff).
	Backoff Backoff
	// StopGrace is the SIGTERM → SIGKILL delay (zero: DefaultStopGrace).
	StopGrace time.Duration
}

// Envoy runs and supervises one Envoy process.
type Envoy struct {
	cfg EnvoyConfig
}

// NewEnvoy checks cfg and returns the component.
func NewEnvoy(cfg EnvoyConfig) (*Envoy, error) {
	if cfg.Path == "" || cfg.Bootstrap == "" || cfg.Admin == nil || cfg.Process == nil || cfg.Log == nil {
		return nil, errors.New("agent: envoy needs a binary, a bootstrap, an admin client, a Process and a logger")
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &Envoy{cfg: cfg}, nil
}

// Args is Envoy's command line after the binary, as App Mesh built it:
// -c <bootstrap> -l <level> [--concurrency N] --drain-time-s <S>
// [--disable-hot-restart] [--skip-deprecated-logs] [extra...].
func Args(c Config, bootstrap string, extra []string) []string {
	args := []string{"-c", bootstrap, "-l", c.EnvoyLogLevel}
	if c.Concurrency > 0 {
		args = append(args, "--concurrency", strconv.Itoa(c.Concurrency))
	}
	args = append(args, "--drain-time-s", strconv.Itoa(int(c.DrainWait/time.Second)))
	if c.DisableHotRestart {
		args = append(args, "--disable-hot-restart")
	}
	if c.SkipDeprecatedLogs {
		args = append(args, "--skip-deprecated-logs")
	}
	return append(args, extra...)
}

// child is one Envoy process.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process is reaped
	err  error         // cmd.Wait's error, valid after done
}

// start starts Envoy. The goroutine that starts it stays locked to its OS
// thread until Envoy is reaped: the parent-death signal (Linux) is tied to
// the thread that forked, so a Go runtime thread exit must not kill Envoy.
func (e *Envoy) start() (*child, error) {
	cmd := exec.Command(e.cfg.Path, Args(e.cfg.Config, e.cfg.Bootstrap, e.cfg.ExtraArgs)...)
	cmd.Stdout, cmd.Stderr = e.cfg.Stdout, e.cfg.Stderr
	cmd.SysProcAttr = sysProcAttr()
	c := &child{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine, after Envoy
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.err = cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start envoy (--envoy-path=%s): %w", e.cfg.Path, err)
	}
	return c, nil
}

// Run starts Envoy and restarts it after any exit, up to RestartCount
// times with backoff; when the budget is spent it returns an error. When
// ctx is cancelled it drains and stops Envoy (see stop) and returns nil.
// Envoy is never left running when Run returns.
func (e *Envoy) Run(ctx context.Context) error {
	log, m := e.cfg.Log, e.cfg.Metrics
	delay := e.cfg.Backoff.Initial
	for restarts := 0; ; restarts++ {
		if ctx.Err() != nil {
			return nil
		}
		e.cfg.Process.started(restarts)
		c, err := e.start()
		if err != nil {
			e.cfg.Process.exited()
			return err
		}
		pid := c.cmd.Process.Pid
		m.envoyStarts.Inc()
		m.envoyRunning.Set(1)
		log.Info("envoy started", "pid", pid, "restarts", restarts, "args", c.cmd.Args[1:])
		settle := time.NewTimer(e.cfg.Config.PIDPollInterval)
		exited := false
		for !exited {
			select {
			case <-settle.C:
				e.cfg.Process.running(pid)
			case <-c.done:
				exited = true
			case <-ctx.Done():
				settle.Stop()
				e.stop(c)
				m.envoyRunning.Set(0)
				e.cfg.Process.exited()
				return nil
			}
		}
		settle.Stop()
		m.envoyRunning.Set(0)
		e.cfg.Process.exited()
		how := exitReason(c)
		m.envoyExits.WithLabelValues(how.kind).Inc()
		if restarts >= e.cfg.Config.RestartCount {
			log.Error("envoy exited; restart budget spent", "pid", pid, "exit", how.text, "restarts", restarts)
			return fmt.Errorf("envoy exited (%s) and was already restarted %d times (APPNET_ENVOY_RESTART_COUNT=%d): %w",
				how.text, restarts, e.cfg.Config.RestartCount, c.err)
		}
		log.Warn("envoy exited; restarting", "pid", pid, "exit", how.text, "restarts", restarts, "budget", e.cfg.Config.RestartCount, "backoff", delay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
		delay = min(2*delay, e.cfg.Backoff.Max)
	}
}

type exitHow struct{ kind, text string }

func exitReason(c *child) exitHow {
	ps := c.cmd.ProcessState
	if ps == nil {
		return exitHow{"error", fmt.Sprint(c.err)}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitHow{"signal", "signal " + ws.Signal().String()}
	}
	return exitHow{"exit", "exit code " + strconv.Itoa(ps.ExitCode())}
}

// stop drains and stops a running Envoy, App Mesh's SIGTERM sequence done
// to the end: POST /drain_listeners?graceful (up to 3 attempts), wait
// DrainWait or until Envoy exits, SIGTERM, wait StopGrace, SIGKILL. It
// returns once Envoy is reaped.
func (e *Envoy) stop(c *child) {
	log := e.cfg.Log
	drainWait := e.cfg.Config.DrainWait
	if e.drain(c) {
		log.Info("draining envoy's listeners before stopping it", "wait", drainWait)
		t := time.NewTimer(drainWait)
		select {
		case <-t.C:
		case <-c.done:
		}
		t.Stop()
	}
	if !isDone(c.done) {
		log.Info("stopping envoy", "pid", c.cmd.Process.Pid, "signal", "SIGTERM", "grace", e.cfg.StopGrace)
		_ = c.cmd.Process.Signal(syscall.SIGTERM) // it may have exited meanwhile
		t := time.NewTimer(e.cfg.StopGrace)
		select {
		case <-t.C:
			log.Warn("envoy ignored SIGTERM; killing it", "pid", c.cmd.Process.Pid)
			_ = c.cmd.Process.Kill()
			<-c.done
		case <-c.done:
		}
		t.Stop()
	}
	log.Info("envoy stopped", "exit", exitReason(c).text)
}

// drain asks Envoy to drain gracefully; it reports whether Envoy accepted.
func (e *Envoy) drain(c *child) bool {
	const attempts = 3
	for i := range attempts {
		if isDone(c.done) {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.cfg.Admin.Post(ctx, "/drain_listeners", url.Values{"graceful": {""}})
		cancel()
		if err == nil {
			return true
		}
		e.cfg.Log.Warn("envoy did not accept the drain request", "attempt", i+1, "err", err)
		if i < attempts-1 {
			t := time.NewTimer(250 * time.Millisecond)
			select {
			case <-t.C:
			case <-c.done:
			}
			t.Stop()
		}
	}
	return false
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
