package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
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
func (s *server) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid()))
	if err != nil {
		return 0, err
	}
	// Fields after the ")" that ends the command name; utime and stime are
	// fields 14 and 15 of the whole line.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil // USER_HZ is 100 on Linux
}

// machineBusy is the CPU time all processors spent busy so far (from
// /proc/stat: everything but idle and iowait), to tell how much other
// processes used during a measurement.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memStatus is the server's resident memory from /proc/<pid>/status.
type memStatus struct{ rss, hwm, anon, file int64 } // bytes

func (s *server) mem() (memStatus, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", s.pid()))
	if err != nil {
		return memStatus{}, err
	}
	defer f.Close()
	var m memStatus
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.rss
		case "VmHWM":
			dst = &m.hwm
		case "RssAnon":
			dst = &m.anon
		case "RssFile":
			dst = &m.file
		default:
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return m, fmt.Errorf("unexpected %s line %q", k, sc.Text())
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return m, err
		}
		*dst = n << 10
	}
	if m.rss == 0 {
		return m, errors.New("no VmRSS in /proc status")
	}
	return m, sc.Err()
}

// goMetrics scrapes a few of the server's own Go runtime metrics.
func (s *server) goMetrics() map[string]float64 {
	if s.metrics == "" {
		return nil
	}
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	want := map[string]bool{
		"go_goroutines": true, "go_memstats_heap_inuse_bytes": true, "go_memstats_stack_inuse_bytes": true,
		"go_memstats_sys_bytes": true, "go_memstats_heap_idle_bytes": true, "go_memstats_heap_released_bytes": true,
		"go_memstats_mspan_inuse_bytes": true, "go_memstats_other_sys_bytes": true, "go_memstats_gc_sys_bytes": true,
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out
}
