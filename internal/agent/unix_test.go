package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/envoyadmin"
)

func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "agt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startServer runs ts's server on cfg's address and returns once it
// listens.
func startServer(t *testing.T, ts *testServer) (net.Addr, func()) {
	t.Helper()
	bound := make(chan net.Addr, 1)
	ts.srv.cfg.OnListen = func(a net.Addr) { bound <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.srv.Run(ctx) }()
	select {
	case a := <-bound:
		return a, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	return nil, nil
}

func udsConfig(path string) serverOpt {
	return func(c *ServerConfig) {
		c.Config.AdminMode = AdminUDS
		c.Config.AdminUDSPath = path
	}
}

func TestServerUnixSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "appnet_admin.sock")
	// A stale socket left by a dead agent.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	ts := newTestServer(t, nil, udsConfig(path))
	ts.srv.cfg.Health.Poll(context.Background())
	_, stop := startServer(t, ts)
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket: %v %v", fi.Mode(), err)
	}
	c, err := envoyadmin.New("unix://" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()
	body, err := c.Get(context.Background(), "/status", nil)
	if err != nil || !strings.Contains(string(body), `"healthStatus": "HEALTHY"`) {
		t.Fatalf("GET /status over the socket: %v\n%s", err, body)
	}
	if err := CheckReady(context.Background(), ts.srv.cfg.Config.SelfAddress(), 10*time.Millisecond, time.Second); err != nil {
		t.Fatalf("CheckReady: %v", err)
	}

	// A second agent must not steal a live socket.
	other := newTestServer(t, nil, udsConfig(path))
	if err := other.srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "another process is serving on it") {
		t.Fatalf("second server: %v", err)
	}
	stop()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestServerRefusesNonSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "not-a-socket")
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, nil, udsConfig(path))
	if err := ts.srv.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "exists and is not a socket") {
		t.Fatalf("Run = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatal("file replaced")
	}
}

func TestCheckReadyTCP(t *testing.T) {
	ts := newTestServer(t, nil, func(c *ServerConfig) { c.Config.BindAddress = "0.0.0.0"; c.Config.HTTPPort = 0 })
	ts.fe.set(func(f *fakeEnvoy) { f.ready = "INITIALIZING" })
	ts.srv.cfg.Health.Poll(context.Background())
	addr, stop := startServer(t, ts)
	defer func() { stop() }()
	cfg := ts.srv.cfg.Config
	cfg.HTTPPort = addr.(*net.TCPAddr).Port
	if got := cfg.SelfAddress(); !strings.HasPrefix(got, "127.0.0.1:") {
		t.Fatalf("SelfAddress = %s", got)
	}
	err := CheckReady(context.Background(), cfg.SelfAddress(), 10*time.Millisecond, 50*time.Millisecond)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), `envoyState "INITIALIZING"`) {
		t.Fatalf("CheckReady while initializing = %v", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		ts.fe.set(func(f *fakeEnvoy) { f.ready = Live })
		ts.srv.cfg.Health.Poll(context.Background())
	}()
	if err := CheckReady(context.Background(), cfg.SelfAddress(), 10*time.Millisecond, 5*time.Second); err != nil {
		t.Fatalf("CheckReady once live = %v", err)
	}
	// Nobody listening.
	stop()
	stop = func() {}
	if err := CheckReady(context.Background(), cfg.SelfAddress(), 10*time.Millisecond, 0); !errors.Is(err, ErrNotReady) {
		t.Fatalf("CheckReady without an agent = %v", err)
	}
}
