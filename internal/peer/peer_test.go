package peer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
	gpeer "google.golang.org/grpc/peer"
)

// Environment of the helper process (see TestHelperProcess).
const (
	helperSockEnv = "MESHD_PEER_HELPER_SOCK"
	helperModeEnv = "MESHD_PEER_HELPER_MODE"
)

// nobody is the uid and gid the other-uid client runs as.
const nobody = 65534

// TestHelperProcess is not a test: it is the client process that the
// cross-process tests start from a copy of the test binary. It connects to
// the socket in $MESHD_PEER_HELPER_SOCK, writes its uid and gid, and then
// either waits for the server to close the connection ("wait") or exits at
// once ("exit").
func TestHelperProcess(t *testing.T) {
	sock := os.Getenv(helperSockEnv)
	if sock == "" {
		return // run as an ordinary test: nothing to do
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	fmt.Fprintf(c, "%d %d\n", os.Getuid(), os.Getgid())
	if os.Getenv(helperModeEnv) == "wait" {
		io.Copy(io.Discard, c)
	}
	os.Exit(0)
}

// sockDir returns a short, fresh directory for a socket (sun_path holds
// at most 107 bytes).
func sockDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "peer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// listen listens on a Unix socket in a fresh directory.
func listen(t *testing.T) (*net.UnixListener, string) {
	t.Helper()
	path := filepath.Join(sockDir(t), "s.sock")
	if len(path) > 107 {
		t.Fatalf("socket path %q is %d bytes, over the 107-byte limit", path, len(path))
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, path
}

// accept accepts one connection, failing the test after 10s.
func accept(t *testing.T, ln *net.UnixListener) *net.UnixConn {
	t.Helper()
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connPair returns both ends of a connection from this process to itself.
func connPair(t *testing.T, ln *net.UnixListener, path string) (server *net.UnixConn, client net.Conn) {
	t.Helper()
	client, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return accept(t, ln), client
}

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatalf("EvalSymlinks(%q): %v", p, err)
	}
	return r
}

// copyTestBinary copies the test binary into a directory every user may
// read and search (go test builds it in a 0700 directory).
func copyTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dir := sockDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "helper.test")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// startHelper starts bin as a client of the socket at sock.
func startHelper(t *testing.T, bin, sock, mode string, cred *syscall.Credential) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperSockEnv+"="+sock, helperModeEnv+"="+mode,
		// Under -race, the helper would otherwise linger 1s at exit.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Dir = filepath.Dir(bin)
	cmd.Stderr = os.Stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

// readIDs reads the "uid gid" line the helper writes.
func readIDs(t *testing.T, c net.Conn) (uid, gid uint32) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from helper: %v", err)
	}
	c.SetReadDeadline(time.Time{})
	if _, err := fmt.Sscanf(line, "%d %d", &uid, &gid); err != nil {
		t.Fatalf("helper wrote %q: %v", line, err)
	}
	return uid, gid
}

func TestAttest(t *testing.T) {
	t.Run("same process", func(t *testing.T) {
		ln, path := listen(t)
		server, client := connPair(t, ln, path)
		info, err := Attest(server)
		if err != nil {
			t.Fatalf("Attest: %v", err)
		}
		if int(info.PID) != os.Getpid() {
			t.Errorf("PID = %d, want %d", info.PID, os.Getpid())
		}
		if int(info.UID) != os.Getuid() || int(info.GID) != os.Getgid() {
			t.Errorf("UID/GID = %d/%d, want %d/%d", info.UID, info.GID, os.Getuid(), os.Getgid())
		}
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		if info.ExeErr != nil {
			t.Fatalf("ExeErr = %v", info.ExeErr)
		}
		if got, want := realPath(t, info.Exe), realPath(t, self); got != want {
			t.Errorf("Exe = %q, want %q", got, want)
		}
		if info.Rejected != nil || info.ID != 0 {
			t.Errorf("Attest set Rejected=%v ID=%d, want neither", info.Rejected, info.ID)
		}
		// Attesting does not disturb the connection.
		if _, err := client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("read %q, %v after Attest", buf, err)
		}
	})

	t.Run("client end", func(t *testing.T) {
		// The client can attest the server too.
		ln, path := listen(t)
		_, client := connPair(t, ln, path)
		info, err := Attest(client.(*net.UnixConn))
		if err != nil {
			t.Fatal(err)
		}
		if int(info.PID) != os.Getpid() || int(info.UID) != os.Getuid() {
			t.Errorf("Attest(client) = %v", info)
		}
	})

	t.Run("closed connection", func(t *testing.T) {
		ln, path := listen(t)
		server, _ := connPair(t, ln, path)
		server.Close()
		if _, err := Attest(server); err == nil {
			t.Fatal("Attest of a closed connection succeeded")
		}
	})

	t.Run("zombie peer", func(t *testing.T) {
		// A peer that exited but is not yet reaped is still the process
		// the socket's credentials name, but its executable is gone.
		ln, path := listen(t)
		bin := copyTestBinary(t)
		cmd := startHelper(t, bin, path, "exit", nil)
		server := accept(t, ln)
		readIDs(t, server)
		waitZombie(t, cmd.Process.Pid)
		info, err := Attest(server)
		if err != nil {
			t.Fatalf("Attest of a zombie peer: %v", err)
		}
		if int(info.PID) != cmd.Process.Pid {
			t.Errorf("PID = %d, want %d", info.PID, cmd.Process.Pid)
		}
		if info.Exe != "" || info.ExeErr == nil {
			t.Errorf("Exe = %q, ExeErr = %v; want no exe and the reason", info.Exe, info.ExeErr)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v", err)
		}
	})

	t.Run("peer exited", func(t *testing.T) {
		// A peer that is gone (and reaped) by the time it is attested must
		// not be attested with an executable: its pid may already belong
		// to another process.
		ln, path := listen(t)
		bin := copyTestBinary(t)
		cmd := startHelper(t, bin, path, "exit", nil)
		server := accept(t, ln)
		readIDs(t, server)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
		info, err := Attest(server)
		if err == nil && (info.Exe != "" || info.ExeErr == nil) {
			t.Fatalf("Attest of an exited peer = %v (exe %q, ExeErr %v), want an error", info, info.Exe, info.ExeErr)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprint(cmd.Process.Pid)) {
			t.Errorf("error %q does not name pid %d", err, cmd.Process.Pid)
		}
	})

	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("TestAttest/other_uid must run as root in CI (to start a client as uid %d); euid is %d", nobody, os.Geteuid())
		}
		t.Logf("not root (euid %d): the other-uid case (a client running as uid %d) needs root and was not run", os.Geteuid(), nobody)
		return
	}

	for _, cred := range []syscall.Credential{
		{Uid: nobody, Gid: nobody},
		{Uid: nobody, Gid: 12345}, // tells uid and gid apart
	} {
		t.Run(fmt.Sprintf("other uid %d gid %d", cred.Uid, cred.Gid), func(t *testing.T) {
			ln, path := listen(t)
			if err := os.Chmod(filepath.Dir(path), 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o777); err != nil {
				t.Fatal(err)
			}
			bin := copyTestBinary(t)
			cmd := startHelper(t, bin, path, "wait", &cred)
			server := accept(t, ln)
			uid, gid := readIDs(t, server)
			if uid != cred.Uid || gid != cred.Gid {
				t.Fatalf("helper reports it runs as %d/%d, want %d/%d", uid, gid, cred.Uid, cred.Gid)
			}

			info, err := Attest(server)
			if err != nil {
				t.Fatalf("Attest: %v", err)
			}
			if info.UID != cred.Uid || info.GID != cred.Gid {
				t.Errorf("UID/GID = %d/%d, want %d/%d", info.UID, info.GID, cred.Uid, cred.Gid)
			}
			if int(info.PID) != cmd.Process.Pid {
				t.Errorf("PID = %d, want the helper's %d", info.PID, cmd.Process.Pid)
			}
			if info.ExeErr != nil {
				t.Fatalf("ExeErr = %v", info.ExeErr)
			}
			if got, want := realPath(t, info.Exe), realPath(t, bin); got != want {
				t.Errorf("Exe = %q, want %q", got, want)
			}

			server.Close()
			if err := cmd.Wait(); err != nil {
				t.Errorf("helper: %v", err)
			}
		})
	}
}

// waitZombie waits until the process has exited but is not reaped.
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the parenthesised command name.
		if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && strings.HasPrefix(string(stat[i:]), ") Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not exit: %s", pid, stat)
		}
		time.Sleep(time.Millisecond)
	}
}

// handshake runs a ServerHandshake for a new connection from this process.
func handshake(t *testing.T, c *Credentials, ln *net.UnixListener, path string) (net.Conn, Info, error) {
	t.Helper()
	server, _ := connPair(t, ln, path)
	conn, ai, err := c.ServerHandshake(server)
	if err != nil {
		if conn != nil || ai != nil {
			t.Errorf("ServerHandshake returned a conn or AuthInfo with error %v", err)
		}
		return nil, Info{}, err
	}
	info, ok := ai.(Info)
	if !ok {
		t.Fatalf("AuthInfo is %T, want Info", ai)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, info, nil
}

// rejects records OnReject calls.
type rejects struct {
	mu    sync.Mutex
	infos []Info
}

func (r *rejects) add(i Info) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.infos = append(r.infos, i)
}

func (r *rejects) list() []Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Info(nil), r.infos...)
}

func TestServerHandshakeNotUnix(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewCredentials(Limits{})
	conn, ai, err := c.ServerHandshake(a)
	if !errors.Is(err, ErrNotUnix) {
		t.Fatalf("err = %v, want ErrNotUnix", err)
	}
	if conn != nil || ai != nil {
		t.Errorf("got conn %v, AuthInfo %v with the error", conn, ai)
	}
	if c.Open() != 0 {
		t.Errorf("Open() = %d after a refused handshake", c.Open())
	}

	// A Unix connection that cannot be attested fails the handshake and is
	// not counted.
	ln, path := listen(t)
	server, _ := connPair(t, ln, path)
	server.Close()
	if conn, ai, err := c.ServerHandshake(server); err == nil || errors.Is(err, ErrNotUnix) || conn != nil || ai != nil {
		t.Errorf("handshake on a closed Unix conn = %v, %v, %v; want an attestation error", conn, ai, err)
	}
	if c.Open() != 0 {
		t.Errorf("Open() = %d after a failed attestation", c.Open())
	}

	// A TCP connection is not a Unix socket either.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	tc, err := net.Dial("tcp", tl.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, _, err := c.ServerHandshake(tc); !errors.Is(err, ErrNotUnix) {
		t.Errorf("TCP: err = %v, want ErrNotUnix", err)
	}
}

func TestServerHandshake(t *testing.T) {
	ln, path := listen(t)
	c := NewCredentials(Limits{})
	conn, info, err := handshake(t, c, ln, path)
	if err != nil {
		t.Fatal(err)
	}
	if int(info.PID) != os.Getpid() || int(info.UID) != os.Getuid() || int(info.GID) != os.Getgid() {
		t.Errorf("Info = %v, want this process", info)
	}
	if info.Rejected != nil {
		t.Errorf("Rejected = %v without limits", info.Rejected)
	}
	if info.AuthType() != "meshd-uds-peercred" {
		t.Errorf("AuthType() = %q", info.AuthType())
	}
	conn2, info2, err := handshake(t, c, ln, path)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID == 0 || info2.ID <= info.ID {
		t.Errorf("connection IDs %d, %d: want increasing, non-zero", info.ID, info2.ID)
	}
	if c.Open() != 2 {
		t.Errorf("Open() = %d, want 2", c.Open())
	}
	// Closing twice releases once.
	conn.Close()
	conn.Close()
	if c.Open() != 1 {
		t.Errorf("Open() = %d after closing one connection (twice), want 1", c.Open())
	}
	// A uid with no open connections is forgotten.
	c.mu.Lock()
	n := c.perUID[uint32(os.Getuid())]
	c.mu.Unlock()
	if n != 1 {
		t.Errorf("per-uid count = %d, want 1", n)
	}
	conn2.Close()
	c.mu.Lock()
	left := len(c.perUID)
	c.mu.Unlock()
	if c.Open() != 0 || left != 0 {
		t.Errorf("after closing everything: Open() = %d, %d uids tracked; want 0, 0", c.Open(), left)
	}
}

func TestServerHandshakePerUIDLimit(t *testing.T) {
	ln, path := listen(t)
	c := NewCredentials(Limits{MaxConnsPerUID: 2, RejectLinger: time.Hour})
	var rej rejects
	c.OnReject = rej.add

	a, ia, err := handshake(t, c, ln, path)
	if err != nil {
		t.Fatal(err)
	}
	_, ib, err := handshake(t, c, ln, path)
	if err != nil {
		t.Fatal(err)
	}
	if ia.Rejected != nil || ib.Rejected != nil {
		t.Fatalf("connections within the limit rejected: %v, %v", ia.Rejected, ib.Rejected)
	}
	if n := len(rej.list()); n != 0 {
		t.Fatalf("OnReject called %d times within the limit", n)
	}

	third, ic, err := handshake(t, c, ln, path)
	if err != nil {
		t.Fatalf("a connection over the per-uid limit failed its handshake: %v", err)
	}
	if ic.Rejected == nil {
		t.Fatal("third connection from the same uid not rejected")
	}
	for _, w := range []string{"--max-conns-per-peer", fmt.Sprintf("uid %d", os.Getuid()), "limit 2"} {
		if !strings.Contains(ic.Rejected.Error(), w) {
			t.Errorf("Rejected = %q, want it to mention %q", ic.Rejected, w)
		}
	}
	got := rej.list()
	if len(got) != 1 || got[0].ID != ic.ID || got[0].Rejected == nil {
		t.Fatalf("OnReject calls = %v, want one for connection %d", got, ic.ID)
	}
	if c.Open() != 3 {
		t.Fatalf("Open() = %d, want 3 (rejected connections stay open until they linger out)", c.Open())
	}

	// Closing the rejected connection and then an accepted one frees a slot.
	third.Close()
	if c.Open() != 2 {
		t.Fatalf("Open() = %d after closing the rejected connection, want 2", c.Open())
	}
	a.Close()
	if c.Open() != 1 {
		t.Fatalf("Open() = %d after closing an accepted connection, want 1", c.Open())
	}
	_, id, err := handshake(t, c, ln, path)
	if err != nil {
		t.Fatal(err)
	}
	if id.Rejected != nil {
		t.Fatalf("connection after a slot was freed rejected: %v", id.Rejected)
	}
	if c.Open() != 2 {
		t.Errorf("Open() = %d, want 2", c.Open())
	}
}

func TestServerHandshakeTotalLimit(t *testing.T) {
	ln, path := listen(t)
	c := NewCredentials(Limits{MaxConns: 2, RejectLinger: time.Hour})
	var rej rejects
	c.OnReject = rej.add

	for i := range 2 {
		if _, info, err := handshake(t, c, ln, path); err != nil || info.Rejected != nil {
			t.Fatalf("connection %d: err %v, rejected %v", i, err, info.Rejected)
		}
	}
	// Over MaxConns: the handshake completes but carries the reason.
	for i := 2; i < 4; i++ {
		_, info, err := handshake(t, c, ln, path)
		if err != nil {
			t.Fatalf("connection %d (below the hard limit): %v", i, err)
		}
		if info.Rejected == nil || !strings.Contains(info.Rejected.Error(), "limit 2 set by --max-conns)") {
			t.Fatalf("connection %d: Rejected = %v, want the --max-conns limit", i, info.Rejected)
		}
	}
	if c.Open() != 4 {
		t.Fatalf("Open() = %d, want 4", c.Open())
	}
	// At twice MaxConns the handshake itself fails.
	_, _, err := handshake(t, c, ln, path)
	if err == nil {
		t.Fatal("handshake at twice --max-conns succeeded")
	}
	if !strings.Contains(err.Error(), "over twice --max-conns (2)") {
		t.Errorf("hard-limit error = %q", err)
	}
	if c.Open() != 4 {
		t.Errorf("Open() = %d after a hard refusal, want 4 (not counted)", c.Open())
	}
	if n := len(rej.list()); n != 3 {
		t.Errorf("OnReject called %d times, want 3 (two soft, one hard)", n)
	}
}

// A rejected connection is closed after RejectLinger, which frees its slot.
func TestServerHandshakeRejectLinger(t *testing.T) {
	ln, path := listen(t)
	c := NewCredentials(Limits{MaxConnsPerUID: 1, RejectLinger: 50 * time.Millisecond})
	if _, info, err := handshake(t, c, ln, path); err != nil || info.Rejected != nil {
		t.Fatalf("first connection: %v, %v", err, info.Rejected)
	}
	server, client := connPair(t, ln, path)
	_, ai, err := c.ServerHandshake(server)
	if err != nil {
		t.Fatal(err)
	}
	if ai.(Info).Rejected == nil {
		t.Fatal("second connection not rejected")
	}
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read %d, %v; want EOF once the rejected connection lingered out", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Open() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("Open() = %d long after the linger, want 1", c.Open())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewCredentialsDefaults(t *testing.T) {
	if got := NewCredentials(Limits{}).limits.RejectLinger; got != time.Second {
		t.Errorf("default RejectLinger = %v, want 1s", got)
	}
	if got := NewCredentials(Limits{RejectLinger: -1}).limits.RejectLinger; got != time.Second {
		t.Errorf("negative RejectLinger became %v, want 1s", got)
	}
	if got := NewCredentials(Limits{RejectLinger: time.Minute}).limits.RejectLinger; got != time.Minute {
		t.Errorf("RejectLinger = %v, want 1m", got)
	}
}

func TestCredentialsTransportMethods(t *testing.T) {
	c := NewCredentials(Limits{})
	var _ credentials.TransportCredentials = c
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if conn, ai, err := c.ClientHandshake(context.Background(), "x", a); err == nil || conn != nil || ai != nil {
		t.Errorf("ClientHandshake = %v, %v, %v; want an error only", conn, ai, err)
	}
	if got := c.Info().SecurityProtocol; got != "meshd-uds-peercred" {
		t.Errorf("SecurityProtocol = %q", got)
	}
	if c.Clone() != c {
		t.Error("Clone does not share the connection accounting")
	}
	if err := c.OverrideServerName("x"); err != nil {
		t.Errorf("OverrideServerName: %v", err)
	}
}

func TestInfoString(t *testing.T) {
	i := Info{PID: 7, UID: 1337, GID: 1338, Exe: "/usr/bin/envoy", ID: 9}
	if got, want := i.String(), `pid=7 uid=1337 gid=1338 exe="/usr/bin/envoy"`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestFromContext(t *testing.T) {
	want := Info{PID: 7, UID: 1337, GID: 1338, Exe: "/usr/bin/envoy", ID: 3}
	tests := []struct {
		name   string
		ctx    context.Context
		want   Info
		wantOK bool
	}{
		{"no peer", context.Background(), Info{}, false},
		{"peer with Info", gpeer.NewContext(context.Background(), &gpeer.Peer{AuthInfo: want}), want, true},
		{"peer without AuthInfo", gpeer.NewContext(context.Background(), &gpeer.Peer{}), Info{}, false},
		{"peer with other AuthInfo", gpeer.NewContext(context.Background(), &gpeer.Peer{AuthInfo: otherAuth{}}), Info{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := FromContext(tt.ctx)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("FromContext = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

type otherAuth struct{}

func (otherAuth) AuthType() string { return "other" }
