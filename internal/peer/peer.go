// Package peer attests the process at the other end of a Unix domain socket.
//
// When a connection is accepted, Credentials reads the peer's SO_PEERCRED
// (pid, uid, gid), opens a pidfd for it (SO_PEERPIDFD on Linux ≥ 6.5, else
// pidfd_open), reads /proc/<pid>/exe, and then checks through the pidfd that
// the same process is still alive, which closes the PID-reuse race. The
// result travels with the connection as gRPC AuthInfo, so every stream on
// the connection shares one attestation.
//
// Credentials also bounds connections, in total and per uid: a connection
// over a limit completes its handshake but carries the reason, so the gRPC
// layer can answer its RPCs with a clear ResourceExhausted status; it is
// closed shortly after.
package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/credentials"
	gpeer "google.golang.org/grpc/peer"
)

// Info is what is known about the process on the other end of a connection.
type Info struct {
	PID int32
	UID uint32
	GID uint32
	// Exe is the resolved path of the peer's executable ("" if unreadable).
	Exe string
	// ExeErr says why Exe is empty.
	ExeErr error
	// Rejected is non-nil when the connection exceeded a limit.
	Rejected error
	// ID numbers connections, for logs.
	ID uint64
}

// AuthType implements credentials.AuthInfo.
func (Info) AuthType() string { return "meshd-uds-peercred" }

// String describes the peer for logs.
func (i Info) String() string {
	return fmt.Sprintf("pid=%d uid=%d gid=%d exe=%q", i.PID, i.UID, i.GID, i.Exe)
}

// FromContext returns the peer of a gRPC call.
func FromContext(ctx context.Context) (Info, bool) {
	p, ok := gpeer.FromContext(ctx)
	if !ok {
		return Info{}, false
	}
	i, ok := p.AuthInfo.(Info)
	return i, ok
}

// Limits bound connections.
type Limits struct {
	// MaxConns bounds open connections in total (0 = unlimited).
	MaxConns int
	// MaxConnsPerUID bounds open connections per peer uid (0 = unlimited).
	MaxConnsPerUID int
	// RejectLinger is how long a rejected connection stays open so its
	// client can read the error (default 1s).
	RejectLinger time.Duration
}

// Credentials are gRPC server transport credentials for Unix sockets that
// attest the peer. Use NewCredentials.
type Credentials struct {
	limits Limits
	nextID atomic.Uint64

	mu     sync.Mutex
	total  int
	perUID map[uint32]int
	// OnReject, if set, is called for every connection over a limit.
	OnReject func(Info)
}

// NewCredentials returns attesting credentials with the given limits.
func NewCredentials(l Limits) *Credentials {
	if l.RejectLinger <= 0 {
		l.RejectLinger = time.Second
	}
	return &Credentials{limits: l, perUID: map[uint32]int{}}
}

// ErrNotUnix is returned for connections that are not Unix domain sockets.
var ErrNotUnix = errors.New("peer attestation needs a Unix domain socket connection")

// ServerHandshake attests the peer of a newly accepted connection.
func (c *Credentials) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, nil, ErrNotUnix
	}
	info, err := Attest(uc)
	if err != nil {
		return nil, nil, err
	}
	info.ID = c.nextID.Add(1)
	c.mu.Lock()
	hard := c.limits.MaxConns > 0 && c.total >= 2*c.limits.MaxConns
	switch {
	case hard:
	case c.limits.MaxConns > 0 && c.total >= c.limits.MaxConns:
		info.Rejected = fmt.Errorf("meshd: too many SDS connections (%d open, limit %d set by --max-conns); retry later", c.total, c.limits.MaxConns)
	case c.limits.MaxConnsPerUID > 0 && c.perUID[info.UID] >= c.limits.MaxConnsPerUID:
		info.Rejected = fmt.Errorf("meshd: too many SDS connections from uid %d (%d open, limit %d set by --max-conns-per-peer); retry later", info.UID, c.perUID[info.UID], c.limits.MaxConnsPerUID)
	}
	if !hard {
		c.total++
		c.perUID[info.UID]++
	}
	c.mu.Unlock()
	if hard {
		info.Rejected = fmt.Errorf("meshd: connection refused: over twice --max-conns (%d)", c.limits.MaxConns)
		if c.OnReject != nil {
			c.OnReject(info)
		}
		return nil, nil, fmt.Errorf("connection from %s refused: over twice --max-conns (%d)", info, c.limits.MaxConns)
	}
	tc := &trackedConn{Conn: conn, release: func() {
		c.mu.Lock()
		c.total--
		if c.perUID[info.UID]--; c.perUID[info.UID] <= 0 {
			delete(c.perUID, info.UID)
		}
		c.mu.Unlock()
	}}
	if info.Rejected != nil {
		if c.OnReject != nil {
			c.OnReject(info)
		}
		time.AfterFunc(c.limits.RejectLinger, func() { tc.Close() })
	}
	return tc, info, nil
}

// Open reports the number of open connections (for metrics).
func (c *Credentials) Open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// ClientHandshake is not supported: these are server credentials.
func (c *Credentials) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("peer credentials are server-side only")
}

// Info implements credentials.TransportCredentials.
func (c *Credentials) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "meshd-uds-peercred"}
}

// Clone implements credentials.TransportCredentials. The clone shares the
// connection accounting.
func (c *Credentials) Clone() credentials.TransportCredentials { return c }

// OverrideServerName implements credentials.TransportCredentials.
func (c *Credentials) OverrideServerName(string) error { return nil }

type trackedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (t *trackedConn) Close() error {
	err := t.Conn.Close()
	t.once.Do(t.release)
	return err
}

// Attest reads the credentials of the process at the other end of uc.
func Attest(uc *net.UnixConn) (Info, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return Info{}, fmt.Errorf("attest peer: %w", err)
	}
	var (
		cred    *unix.Ucred
		pidfd   = -1
		credErr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if credErr != nil {
			return
		}
		if pfd, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
			pidfd = pfd
		}
	}); err != nil {
		return Info{}, fmt.Errorf("attest peer: %w", err)
	}
	if credErr != nil {
		return Info{}, fmt.Errorf("attest peer: SO_PEERCRED: %w", credErr)
	}
	info := Info{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}
	if pidfd < 0 && cred.Pid > 0 {
		// Kernels before 6.5 lack SO_PEERPIDFD; pidfd_open narrows the race
		// to the window between accept and here.
		if pfd, err := unix.PidfdOpen(int(cred.Pid), 0); err == nil {
			pidfd = pfd
		}
	}
	if pidfd >= 0 {
		defer unix.Close(pidfd)
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(int(cred.Pid)) + "/exe")
	if err != nil {
		info.ExeErr = err
	} else {
		info.Exe = exe
	}
	if pidfd >= 0 {
		// The exe we read belongs to the attested process only if that
		// process is still the one the pidfd refers to.
		// EPERM (a peer of another uid, meshd not root) still proves the
		// process is alive; only ESRCH means it exited.
		if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); errors.Is(err, unix.ESRCH) {
			return Info{}, fmt.Errorf("attest peer pid %d: process exited during attestation: %w", cred.Pid, err)
		}
	}
	return info, nil
}
