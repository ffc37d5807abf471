// Package harness holds what meshd's benchmark programs (bench/*) share:
// reading a process's CPU and memory from /proc, telling how busy the rest
// of the machine was during a measurement, describing the machine, and
// small formatting helpers for their report tables. Linux only.
package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Logf prints progress; programs pass theirs (to stderr, with their name).
type Logf func(format string, args ...any)

// userHZ is the clock tick of /proc times (USER_HZ is 100 on Linux).
const userHZ = 10 * time.Millisecond

// ProcCPU is pid's user+system CPU time so far (10 ms resolution).
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// utime and stime are fields 14 and 15 of the line, fields 12 and 13
	// after the ")" that ends the command name.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * userHZ, nil
}

// MachineBusy is the CPU time all processors spent busy so far (from
// /proc/stat: everything but idle and iowait).
func MachineBusy() time.Duration {
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
	return time.Duration(busy) * userHZ
}

// SelfCPU is this process's user+system CPU time so far.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Mem is a process's resident memory from /proc/<pid>/status, in bytes.
type Mem struct{ RSS, HWM, Anon, File int64 }

// ReadMem reads pid's VmRSS, VmHWM, RssAnon and RssFile.
func ReadMem(pid int) (Mem, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	defer f.Close()
	var m Mem
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.HWM, "RssAnon": &m.Anon, "RssFile": &m.File}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		dst, ok := fields[k]
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc status %q: %w", sc.Text(), err)
		}
		*dst = n << 10
	}
	if m.RSS == 0 {
		return m, errors.New("no VmRSS in /proc status")
	}
	return m, sc.Err()
}

// GoMetrics scrapes the Go runtime gauges a meshd process exposes on
// addr's /metrics, keeping the names keep accepts (nil on any error).
func GoMetrics(addr string, keep func(name string) bool) map[string]float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !keep(name) {
			continue
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	}
	return out
}

// Timing on a small shared machine is only meaningful when other processes
// leave the CPUs alone. A Noise measures how much CPU everything but the
// harness and its server used since it started.

// NoisyShare is the share of the machine (percent) other processes may use
// during a measurement before it counts as noisy.
const NoisyShare = 10.0

// Noise measures the CPU used by other processes from its start.
type Noise struct {
	busy0, srv0, self0 time.Duration
	t0                 time.Time
	srvCPU             func() time.Duration
}

// StartNoise starts measuring; srvCPU is the server's CPU time so far (nil
// when there is no server).
func StartNoise(srvCPU func() time.Duration) *Noise {
	if srvCPU == nil {
		srvCPU = func() time.Duration { return 0 }
	}
	return &Noise{busy0: MachineBusy(), srv0: srvCPU(), self0: SelfCPU(), t0: time.Now(), srvCPU: srvCPU}
}

// Share is other processes' CPU since the start, in percent of the machine
// (10 ms tick resolution, so coarse over short windows).
func (n *Noise) Share() float64 { return n.ShareExcept(0) }

// ShareExcept is Share not counting ours, the CPU of a child process the
// harness ran.
func (n *Noise) ShareExcept(ours time.Duration) float64 {
	other := MachineBusy() - n.busy0 - (n.srvCPU() - n.srv0) - (SelfCPU() - n.self0) - ours
	return 100 * max(float64(other), 0) / float64(time.Duration(runtime.NumCPU())*time.Since(n.t0))
}

// Noisy reports whether share exceeds NoisyShare.
func Noisy(share float64) bool { return share > NoisyShare }

// NoiseNote is the remark a result carries about other processes' share.
func NoiseNote(share float64) string {
	if Noisy(share) {
		return fmt.Sprintf(" [NOISY: other processes used %.0f%% of the CPUs]", share)
	}
	return fmt.Sprintf(" [other processes: %.0f%% of the CPUs]", share)
}

// WaitQuiet waits until processes other than the harness and the server
// used less than NoisyShare of the CPUs over 300 ms, for at most maxWait.
// It reports whether it got there.
func WaitQuiet(ctx context.Context, srvCPU func() time.Duration, maxWait time.Duration, logf Logf) bool {
	if maxWait <= 0 {
		return true
	}
	deadline := time.Now().Add(maxWait)
	for {
		nz := StartNoise(srvCPU)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(300 * time.Millisecond):
		}
		share := nz.Share()
		if share < NoisyShare {
			return true
		}
		if time.Now().After(deadline) {
			logf("machine still busy (other processes used %.0f%% of the CPUs) after waiting %s; measuring anyway", share, maxWait)
			return false
		}
	}
}

// RaiseNofile lifts RLIMIT_NOFILE to want if it can (to the hard limit
// otherwise, or beyond it as root) and says so when it falls short.
func RaiseNofile(want uint64, logf Logf) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf("getrlimit: %v", err)
		return
	}
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			logf("RLIMIT_NOFILE raised to %d", want)
			return // as root
		}
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf("setrlimit: %v", err)
	}
	if lim.Cur < want {
		logf("warning: RLIMIT_NOFILE is %d, below the %d the run needs", lim.Cur, want)
	}
}

// Percentile of sorted durations (nearest rank).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// MiB formats bytes as mebibytes.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Machine describes the machine for a report's header: CPUs and model,
// kernel, Go version and GOMAXPROCS.
func Machine() string {
	return fmt.Sprintf("%d CPUs (%s), kernel %s, %s, GOMAXPROCS %d",
		runtime.NumCPU(), cpuModel(), kernel(), runtime.Version(), runtime.GOMAXPROCS(0))
}

// LoadAvg is /proc/loadavg's three averages.
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// MultiFlag is a repeatable string flag (flag.Var).
type MultiFlag []string

func (m *MultiFlag) String() string     { return strings.Join(*m, ",") }
func (m *MultiFlag) Set(v string) error { *m = append(*m, v); return nil }
