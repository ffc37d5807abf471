package main

import (
	"context"
	"fmt"
	"runtime"
	"time"
)

// Timing on a small shared machine is only meaningful when other processes
// leave the CPUs alone. The harness measures how much CPU everything but
// itself and the server used during each timed measurement ("noise"),
// reports it, and, within the time budget, repeats measurements taken while
// other processes used more than noisyShare of the machine.

// noisyShare is the share of the machine (percent) other processes may use
// during a measurement before it counts as noisy.
const noisyShare = 10.0

// waitQuiet waits until processes other than the harness and srv used less
// than noisyShare of the CPUs over 300 ms, for at most maxWait. It reports
// whether it got there.
func waitQuiet(ctx context.Context, srv *server, maxWait time.Duration) bool {
	if maxWait <= 0 {
		return true
	}
	deadline := time.Now().Add(maxWait)
	for {
		nz := startNoise(srv)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(300 * time.Millisecond):
		}
		share := nz.share()
		if share < noisyShare {
			return true
		}
		if time.Now().After(deadline) {
			progress("machine still busy (other processes used %.0f%% of the CPUs) after waiting %s; measuring anyway", share, maxWait)
			return false
		}
	}
}

func srvCPUOr0(srv *server) time.Duration {
	if srv == nil {
		return 0
	}
	d, _ := srv.cpu()
	return d
}

// noise measures the CPU used by other processes from its start.
type noise struct {
	busy0, srv0, self0 time.Duration
	t0                 time.Time
	srv                *server
}

func startNoise(srv *server) *noise {
	return &noise{busy0: machineBusy(), srv0: srvCPUOr0(srv), self0: selfCPU(), t0: time.Now(), srv: srv}
}

// share is other processes' CPU since the start, in percent of the machine
// (10 ms tick resolution, so coarse over short windows).
func (n *noise) share() float64 { return n.shareExcept(0) }

// shareExcept is share not counting ours, the CPU of a child process the
// harness ran.
func (n *noise) shareExcept(ours time.Duration) float64 {
	wall := time.Since(n.t0)
	other := machineBusy() - n.busy0 - (srvCPUOr0(n.srv) - n.srv0) - (selfCPU() - n.self0) - ours
	return 100 * max(float64(other), 0) / float64(time.Duration(runtime.NumCPU())*wall)
}

func noisy(share float64) bool { return share > noisyShare }

func noiseNote(share float64) string {
	if noisy(share) {
		return fmt.Sprintf(" [NOISY: other processes used %.0f%% of the CPUs]", share)
	}
	return fmt.Sprintf(" [other processes: %.0f%% of the CPUs]", share)
}

// haveTime reports whether the run's deadline leaves at least need.
func haveTime(ctx context.Context, need time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) > need
}
