package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/meshd/meshd/internal/envoyadmin"
)

// SelfAddress is where a local client reaches the agent API: the socket in
// uds mode, else the bind address (loopback for a wildcard one) and port.
func (c Config) SelfAddress() string {
	if c.AdminMode == AdminUDS {
		return "unix://" + c.AdminUDSPath
	}
	host := c.BindAddress
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		if a.Is4() {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, strconv.Itoa(c.HTTPPort))
}

// ErrNotReady is CheckReady's error when the agent never reported HEALTHY.
var ErrNotReady = errors.New("envoy is not healthy")

// CheckReady asks the agent at addr (see SelfAddress) for /status every
// interval until it reports HEALTHY (nil) or timeout passes (an error
// wrapping ErrNotReady with the last status seen). A timeout ≤ 0 asks once.
func CheckReady(ctx context.Context, addr string, interval, timeout time.Duration) error {
	c, err := envoyadmin.New(addr)
	if err != nil {
		return fmt.Errorf("agent API address: %w", err)
	}
	defer c.CloseIdle()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		body, err := c.Get(actx, "/status", nil)
		cancel()
		if err != nil {
			last = err.Error()
		} else {
			var st HealthStatus
			if err := json.Unmarshal(body, &st); err != nil {
				last = fmt.Sprintf("unreadable /status: %v", err)
			} else if st.HealthStatus == Healthy {
				return nil
			} else {
				last = fmt.Sprintf("healthStatus %q, envoyState %q", st.HealthStatus, st.EnvoyState)
			}
		}
		wait := min(interval, time.Until(deadline))
		if wait <= 0 {
			return fmt.Errorf("%w: timed out after %s: %s", ErrNotReady, timeout, last)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %s", ErrNotReady, last)
		case <-t.C:
		}
	}
}
