package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/meshd/meshd/bench/internal/harness"
)

const trustDomain = "bench.example"
const spiffeID = "spiffe://" + trustDomain + "/ns/default/sa/app"

// server is one `meshd sds` subprocess with its own temporary directory.
type server struct {
	name     string
	dir      string
	socket   string
	stateDir string
	logPath  string
	metrics  string // host:port of /metrics, "" if disabled
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
}

// startServer starts `meshd sds` with a fresh CA and an identities file
// that maps this process's uid to spiffeID, and waits until it serves.
func startServer(ctx context.Context, bin, name string, withMetrics bool, extra ...string) (*server, error) {
	// sun_path holds at most 107 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "sdsb")
	if err != nil {
		return nil, err
	}
	s := &server{
		name: name, dir: dir, socket: filepath.Join(dir, "s.sock"),
		stateDir: filepath.Join(dir, "state"), logPath: filepath.Join(dir, "meshd.log"),
		exited: make(chan struct{}),
	}
	if err := os.Mkdir(s.stateDir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ids := filepath.Join(dir, "identities.yaml")
	doc := fmt.Sprintf("- spiffeID: %s\n  selectors: [uid:%d]\n", spiffeID, os.Getuid())
	if err := os.WriteFile(ids, []byte(doc), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if withMetrics {
		// --metrics-listen needs an explicit port: borrow a free one.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		s.metrics = l.Addr().String()
		l.Close()
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logf.Close()
	args := []string{"sds",
		"--state-dir", s.stateDir, "--socket", s.socket, "--identities", ids,
		"--trust-domain", trustDomain, "--metrics-listen", s.metrics,
		"--max-conns", "8192", "--max-conns-per-peer", "4096",
		"--shutdown-grace", "1s",
	}
	args = append(args, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = append(os.Environ(), serverEnv...)
	// If the harness dies, so does the server.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	logf.Close()
	progress("%s: started meshd sds (pid %d): %s", name, s.cmd.Process.Pid, strings.Join(args, " "))

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.exited:
			err := fmt.Errorf("%s: meshd sds exited (%v):\n%s", name, s.waitErr, s.logTail())
			s.stop()
			return nil, err
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		default:
		}
		if _, err := os.Stat(s.socket); err == nil {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			conn, _, err := firstSecret(pctx, s.socket, "default")
			cancel()
			if err == nil {
				conn.Close()
				return s, nil
			}
			if time.Now().After(deadline) {
				s.stop()
				return nil, fmt.Errorf("%s: server not serving after 15s: %v\n%s", name, err, s.logTail())
			}
		} else if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s: no socket after 15s\n%s", name, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop sends SIGTERM, then SIGKILL after 10s, and removes the directory.
func (s *server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-s.exited:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.exited
			}
		}
	}
	os.RemoveAll(s.dir)
}

// serverEnv is added to every server's environment (-server-env).
var serverEnv []string

// cpu is the server's user+system CPU time so far (10 ms resolution).
func (s *server) cpu() (time.Duration, error) { return harness.ProcCPU(s.pid()) }

// cpuOf is srv's CPU clock for harness.StartNoise (nil without a server).
func cpuOf(srv *server) func() time.Duration {
	if srv == nil {
		return nil
	}
	return func() time.Duration { d, _ := srv.cpu(); return d }
}

// mem is the server's resident memory.
func (s *server) mem() (harness.Mem, error) { return harness.ReadMem(s.pid()) }

// goMetrics scrapes a few of the server's own Go runtime metrics.
func (s *server) goMetrics() map[string]float64 {
	if s.metrics == "" {
		return nil
	}
	want := map[string]bool{
		"go_goroutines": true, "go_memstats_heap_inuse_bytes": true, "go_memstats_stack_inuse_bytes": true,
		"go_memstats_sys_bytes": true, "go_memstats_heap_idle_bytes": true, "go_memstats_heap_released_bytes": true,
		"go_memstats_mspan_inuse_bytes": true, "go_memstats_other_sys_bytes": true, "go_memstats_gc_sys_bytes": true,
	}
	return harness.GoMetrics(s.metrics, func(name string) bool { return want[name] })
}
