package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Timing on a small shared machine means something only if other processes
// leave the CPUs alone: as bench/sdsbench does, the harness measures how
// much CPU everything but itself and the server used during each timed
// measurement ("noise") and reports it.

// noisyShare is the share of the machine (percent) other processes may use
// during a measurement before it counts as noisy.
const noisyShare = 10.0

// waitQuiet waits, for at most maxWait, until processes other than the
// harness and srv used less than noisyShare of the CPUs over 300 ms.
func waitQuiet(ctx context.Context, srv *server, maxWait time.Duration) {
	if maxWait <= 0 {
		return
	}
	deadline := time.Now().Add(maxWait)
	for {
		nz := startNoise(srv)
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
		share := nz.share()
		if share < noisyShare {
			return
		}
		if time.Now().After(deadline) {
			progress("machine still busy (other processes used %.0f%% of the CPUs) after waiting %s; measuring anyway", share, maxWait)
			return
		}
	}
}

// noise measures the CPU used by other processes from its start.
type noise struct {
	busy0, srv0, self0 time.Duration
	t0                 time.Time
	srv                *server
}

func startNoise(srv *server) *noise {
	return &noise{busy0: machineBusy(), srv0: srv.cpu(), self0: selfCPU(), t0: time.Now(), srv: srv}
}

// share is other processes' CPU since the start, in percent of the machine
// (10 ms tick resolution, so coarse over short windows).
func (n *noise) share() float64 {
	other := machineBusy() - n.busy0 - (n.srv.cpu() - n.srv0) - (selfCPU() - n.self0)
	return 100 * max(float64(other), 0) / float64(time.Duration(runtime.NumCPU())*time.Since(n.t0))
}

func noiseNote(share float64) string {
	if share > noisyShare {
		return fmt.Sprintf(" [NOISY: other processes used %.0f%% of the CPUs]", share)
	}
	return fmt.Sprintf(" [other processes: %.0f%% of the CPUs]", share)
}

// machineBusy is the CPU time all processors spent busy so far (/proc/stat:
// everything but idle and iowait).
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
		if i != 3 && i != 4 { // idle, iowait
			n, _ := strconv.ParseInt(v, 10, 64)
			busy += n
		}
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
