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

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/bench/internal/harness"
	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/certs"
)

const trustDomain = "bench.meshd"

var (
	td         = spiffeid.RequireTrustDomainFromString(trustDomain)
	workloadID = spiffeid.RequireFromString("spiffe://" + trustDomain + "/mesh/bench/virtualNode/svc")
)

const workloadDNS = "svc.bench.local"

// policy grants every bench agent the one workload ID and DNS name.
const policy = `grants:
  - agent: spiffe://` + trustDomain + `/meshd/agent/bench/*
    spiffeIDs: [spiffe://` + trustDomain + `/mesh/bench/virtualNode/svc]
    dnsNames: [` + workloadDNS + `]
`

// agentID is the SPIFFE ID of bench agent name.
func agentID(name string) spiffeid.ID {
	return spiffeid.RequireFromString("spiffe://" + trustDomain + "/meshd/agent/bench/" + name)
}

// server is one `meshd ca serve` subprocess with its own directory.
type server struct {
	name     string
	stateDir string
	addr     string // 127.0.0.1:port of the CA service
	metrics  string // host:port of /metrics, "" if disabled
	logPath  string
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	tokens   []string // one join token per agent given to startServer
	tokensIn time.Duration
}

// startServer makes a CA in dir/name (`meshd ca init`), a join token for
// each of agents, the policy file, then starts `meshd ca serve` on a free
// port and waits until the port accepts connections.
func startServer(ctx context.Context, bin, dir, name string, o options, agents []spiffeid.ID) (*server, error) {
	d := filepath.Join(dir, name)
	s := &server{name: name, stateDir: filepath.Join(d, "state"), logPath: filepath.Join(d, "meshd.log"), exited: make(chan struct{})}
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "ca", "init", "--state-dir", s.stateDir, "--trust-domain", trustDomain).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("meshd ca init: %v\n%s", err, out)
	}
	t0 := time.Now()
	ts := caservice.TokenStore{Dir: s.stateDir}
	for _, id := range agents {
		tok, _, err := ts.Create(id, time.Hour)
		if err != nil {
			return nil, err
		}
		s.tokens = append(s.tokens, tok)
	}
	s.tokensIn = time.Since(t0)
	if len(agents) > 1 {
		progress("%s: %d join tokens created in %s", name, len(agents), ms(s.tokensIn))
	}
	pol := filepath.Join(d, "policy.yaml")
	if err := os.WriteFile(pol, []byte(policy), 0o600); err != nil {
		return nil, err
	}
	if s.addr, err = freePort(); err != nil {
		return nil, err
	}
	if o.metrics {
		if s.metrics, err = freePort(); err != nil {
			return nil, err
		}
	}
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := []string{"ca", "serve", "--state-dir", s.stateDir, "--trust-domain", trustDomain,
		"--listen", s.addr, "--policy", pol, "--metrics-listen", s.metrics}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Env = append(os.Environ(), o.serverEnv...)
	// If the harness dies, so does the server.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.waitErr = s.cmd.Wait(); close(s.exited) }()
	progress("%s: started meshd (pid %d): %s", name, s.pid(), strings.Join(args, " "))

	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("%s: meshd ca serve exited (%v):\n%s", name, s.waitErr, s.logTail())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s: %s not accepting after 15s\n%s", name, s.addr, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort borrows a free loopback port.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop sends SIGTERM, then SIGKILL after 10s.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// bundle is the bootstrap trust bundle, read from the CA state as an
// operator would hand it to sidecars.
func (s *server) bundle() (*x509bundle.Bundle, error) {
	st, err := certs.Store{Dir: s.stateDir}.Load()
	if err != nil {
		return nil, err
	}
	return x509bundle.FromX509Authorities(td, st.Roots()), nil
}

// goMem summarises goMetrics for the report.
func goMem(m map[string]float64) string {
	return fmt.Sprintf("goroutines %.0f, heap in use %s, stacks %s, runtime sys %s",
		m["go_goroutines"], harness.MiB(int64(m["go_memstats_heap_inuse_bytes"])),
		harness.MiB(int64(m["go_memstats_stack_inuse_bytes"])), harness.MiB(int64(m["go_memstats_sys_bytes"])))
}

// cpu is the server's user+system CPU time so far (10 ms resolution).
func (s *server) cpu() time.Duration { d, _ := harness.ProcCPU(s.pid()); return d }

// cpuOf is srv's CPU clock for harness.StartNoise.
func cpuOf(srv *server) func() time.Duration { return srv.cpu }

// sockets counts the server's open sockets (the CA service's and the
// metrics endpoint's listeners among them).
func (s *server) sockets() (int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", s.pid())
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(t, "socket:") {
			n++
		}
	}
	return n, nil
}

// mem is the server's resident memory.
func (s *server) mem() (harness.Mem, error) { return harness.ReadMem(s.pid()) }

// goMetrics scrapes a few of the server's Go runtime metrics (-metrics).
func (s *server) goMetrics() map[string]float64 {
	if s.metrics == "" {
		return nil
	}
	return harness.GoMetrics(s.metrics, func(name string) bool {
		return strings.HasPrefix(name, "go_goroutines") || strings.HasPrefix(name, "go_memstats_")
	})
}
