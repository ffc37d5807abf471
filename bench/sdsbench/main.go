// Command sdsbench benchmarks the real `meshd sds` binary over its Unix
// socket, as Envoys on the same node would use it, and prints a markdown
// table of the results against the targets.
//
//	go run ./bench/sdsbench [-meshd BIN] [-first 2000] [-streams 1000] ...
//
// It builds meshd (unless -meshd is given), starts `meshd sds` subprocesses
// with temporary state directories and sockets, and runs:
//
//	(a) first-secret latency over -first fresh connections, one at a time;
//	(b) -streams connections opened at once, each with a `default` stream:
//	    time until all are served, then the server's VmRSS while they stay
//	    open;
//	(c) -streams connections with a `default` and a `ROOTCA` stream each,
//	    --svid-ttl -svid-ttl and --reload-interval 10ms: the spread of a
//	    scheduled SVID rotation over the streams, and the time from
//	    `meshd ca rotate --now` to every ROOTCA stream holding the two-root
//	    bundle;
//
// plus in-process P-256 issuance throughput. Everything is bounded by
// -timeout; the subprocesses are stopped (and killed if the harness dies).
// See docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/certs"
)

type options struct {
	meshd        string
	first        int
	streams      int
	svidTTL      time.Duration
	svidRounds   int
	bundleRounds int
	timeout      time.Duration
	metrics      bool
	issueFor     time.Duration
	scenarios    string
	serverEnv    multiFlag
	hold         time.Duration
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sdsbench: "+format+"\n", args...)
}

func main() {
	var o options
	flag.StringVar(&o.meshd, "meshd", "", "meshd binary to benchmark (default: go build ./cmd/meshd into a temporary directory)")
	flag.IntVar(&o.first, "first", 2000, "fresh connections for the first-secret latency (a)")
	flag.IntVar(&o.streams, "streams", 1000, "concurrent connections for (b) and (c)")
	flag.DurationVar(&o.svidTTL, "svid-ttl", 20*time.Second, "--svid-ttl of the server in (c)")
	flag.IntVar(&o.svidRounds, "svid-rounds", 3, "scheduled SVID rotations measured in (c)")
	flag.IntVar(&o.bundleRounds, "bundle-rounds", 3, "`meshd ca rotate --now` rollovers measured in (c)")
	flag.DurationVar(&o.timeout, "timeout", 3*time.Minute, "bound on the whole run")
	flag.BoolVar(&o.metrics, "metrics", true, "enable the server's /metrics on a free port to report Go heap/stack use next to RSS")
	flag.DurationVar(&o.issueFor, "issue-for", 2*time.Second, "duration of the in-process issuance measurement")
	flag.StringVar(&o.scenarios, "scenarios", "a,b,c,issue", "comma-separated scenarios to run: a, b, c, issue")
	flag.DurationVar(&o.hold, "hold", 0, "keep the (b) streams open this much longer, e.g. to profile the server from outside")
	flag.Var(&o.serverEnv, "server-env", "`KEY=VALUE` added to the servers' environment (e.g. GOGC=50); repeatable")
	flag.Parse()
	os.Exit(run(o))
}

func run(o options) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	raiseNofile(uint64(4*o.streams + 1024))

	bin := o.meshd
	if bin == "" {
		dir, err := os.MkdirTemp("", "sdsbench-bin")
		if err != nil {
			progress("%v", err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "meshd")
		progress("building meshd into %s", bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/meshd/meshd/cmd/meshd")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			progress("go build: %v", err)
			return 1
		}
	}

	rep := &report{}
	failed := false
	serverEnv = o.serverEnv
	for _, sc := range []struct {
		key, name string
		fn        func(context.Context, string, options, *report) error
	}{
		{"a", "(a) first secret", scenarioFirst},
		{"b", "(b) concurrent new streams", scenarioBurst},
		{"c", "(c) rotation fan-out", scenarioRotation},
		{"issue", "issuance", scenarioIssue},
	} {
		if !slices.Contains(strings.Split(o.scenarios, ","), sc.key) {
			continue
		}
		if ctx.Err() != nil {
			progress("%s: skipped: %v", sc.name, ctx.Err())
			failed = true
			continue
		}
		progress("%s …", sc.name)
		if err := sc.fn(ctx, bin, o, rep); err != nil {
			progress("%s: FAILED: %v", sc.name, err)
			rep.notes = append(rep.notes, fmt.Sprintf("%s: FAILED: %v", sc.name, err))
			failed = true
		}
	}
	rep.print(os.Stdout, o)
	if failed {
		return 1
	}
	return 0
}

// raiseNofile lifts RLIMIT_NOFILE so that thousands of connections fit;
// the server subprocesses inherit it.
func raiseNofile(want uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		progress("getrlimit: %v", err)
		return
	}
	if lim.Max < want {
		lim.Max = want // works as root; otherwise the soft limit goes to the hard one below
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want}); err == nil {
			progress("RLIMIT_NOFILE raised to %d", want)
			return
		}
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		progress("setrlimit: %v", err)
	}
	if lim.Cur < want {
		progress("warning: RLIMIT_NOFILE is %d, below the %d the run needs", lim.Cur, want)
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// (a) first-secret latency over fresh connections, one at a time.
func scenarioFirst(ctx context.Context, bin string, o options, rep *report) error {
	srv, err := startServer(ctx, bin, "a", false)
	if err != nil {
		return err
	}
	defer srv.stop()
	for range 50 { // warm-up (connection setup paths, SVID already minted by the readiness probe)
		conn, _, err := firstSecret(ctx, srv.socket, "default")
		if err != nil {
			return err
		}
		conn.Close()
	}
	lat := make([]time.Duration, 0, o.first)
	for range o.first {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		t0 := time.Now()
		conn, _, err := firstSecret(rctx, srv.socket, "default")
		d := time.Since(t0)
		cancel()
		if err != nil {
			return err
		}
		conn.Close()
		lat = append(lat, d)
	}
	slices.Sort(lat)
	p50, p90, p99 := percentile(lat, 50), percentile(lat, 90), percentile(lat, 99)
	rep.add("first secret on a new connection, p50", "≤ 0.5 ms", ms(p50), p50 <= 500*time.Microsecond)
	rep.add("first secret on a new connection, p99", "≤ 2 ms", ms(p99), p99 <= 2*time.Millisecond)
	rep.info = append(rep.info, fmt.Sprintf("(a) first secret over %d sequential fresh connections: p50 %s, p90 %s, p99 %s, max %s",
		len(lat), ms(p50), ms(p90), ms(p99), ms(lat[len(lat)-1])))
	return nil
}

// (b) n connections opened at once; then RSS while they stay open.
func scenarioBurst(ctx context.Context, bin string, o options, rep *report) error {
	srv, err := startServer(ctx, bin, "b", o.metrics)
	if err != nil {
		return err
	}
	defer srv.stop()
	time.Sleep(300 * time.Millisecond)
	idle, err := srv.mem()
	if err != nil {
		return err
	}
	idleGo := srv.goMetrics()
	srvCPU0, _ := srv.cpu()
	selfCPU0 := selfCPU()
	f, err := openFleet(ctx, srv.socket, []string{"default"}, o.streams, 10*time.Second)
	if err != nil {
		return err
	}
	defer f.close()
	srvCPU1, _ := srv.cpu()
	selfCPU1 := selfCPU()
	lat := slices.Clone(f.openLat)
	slices.Sort(lat)
	rep.add(fmt.Sprintf("%d concurrent new streams (own connection each), all served", o.streams), "≤ 250 ms", ms(f.openAll), f.openAll <= 250*time.Millisecond)
	// RSS while they stay open: the highest of a few samples over 2s.
	var open memStatus
	for range 5 {
		time.Sleep(400 * time.Millisecond)
		m, err := srv.mem()
		if err != nil {
			return err
		}
		open.rss = max(open.rss, m.rss)
		open.hwm = max(open.hwm, m.hwm)
	}
	openGo := srv.goMetrics()
	if o.hold > 0 {
		progress("b: holding %d streams open for %s (server pid %d)", o.streams, o.hold, srv.pid())
		select {
		case <-time.After(o.hold):
		case <-ctx.Done():
		}
	}
	if f.errs.Load() > 0 {
		return fmt.Errorf("%d streams failed while open", f.errs.Load())
	}
	rep.add(fmt.Sprintf("server RSS with %d streams open", o.streams), "≤ 40 MB", mib(open.rss), open.rss <= 40e6)
	rep.info = append(rep.info,
		fmt.Sprintf("(b) per-connection time to first response in the burst: p50 %s, p99 %s, max %s; CPU used during the burst: server %s, harness (clients) %s",
			ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(lat[len(lat)-1]), ms(srvCPU1-srvCPU0), ms(selfCPU1-selfCPU0)),
		fmt.Sprintf("(b) server VmRSS idle (after one stream) %s; with %d streams open %s (VmHWM %s); %.1f KiB per open connection",
			mib(idle.rss), o.streams, mib(open.rss), mib(open.hwm), float64(open.rss-idle.rss)/1024/float64(o.streams)))
	if idleGo != nil && openGo != nil {
		rep.info = append(rep.info, fmt.Sprintf("(b) server Go runtime idle → open: goroutines %.0f → %.0f, heap in use %s → %s, stacks %s → %s, runtime sys total %s → %s",
			idleGo["go_goroutines"], openGo["go_goroutines"],
			mib(int64(idleGo["go_memstats_heap_inuse_bytes"])), mib(int64(openGo["go_memstats_heap_inuse_bytes"])),
			mib(int64(idleGo["go_memstats_stack_inuse_bytes"])), mib(int64(openGo["go_memstats_stack_inuse_bytes"])),
			mib(int64(idleGo["go_memstats_sys_bytes"])), mib(int64(openGo["go_memstats_sys_bytes"]))))
	}
	return nil
}

// (c) rotation fan-out to streams that stay open.
func scenarioRotation(ctx context.Context, bin string, o options, rep *report) error {
	srv, err := startServer(ctx, bin, "c", false,
		"--svid-ttl", o.svidTTL.String(), "--ca-ttl", (24 * time.Hour).String(), "--reload-interval", "10ms")
	if err != nil {
		return err
	}
	defer srv.stop()
	const svidIdx, bundleIdx = 0, 1
	f, err := openFleet(ctx, srv.socket, []string{"default", "ROOTCA"}, o.streams, 10*time.Second)
	if err != nil {
		return err
	}
	defer f.close()
	progress("c: %d connections × 2 streams open in %s", o.streams, ms(f.openAll))
	if m, err := srv.mem(); err == nil {
		rep.info = append(rep.info, fmt.Sprintf("(c) server VmRSS with %d connections × 2 streams (default + ROOTCA) open: %s", o.streams, mib(m.rss)))
	}
	var schedToLast, spread, schedToFirst, cmdToLast, startToLast, bSpread []time.Duration
	for k := 0; k < max(o.svidRounds, o.bundleRounds); k++ {
		if k < o.svidRounds {
			sl, fl, sp, err := svidRound(ctx, f, svidIdx)
			if err != nil {
				return fmt.Errorf("SVID rotation %d: %w", k+1, err)
			}
			schedToLast, schedToFirst, spread = append(schedToLast, sl), append(schedToFirst, fl), append(spread, sp)
			progress("c: SVID rotation %d: scheduled → first %s, → last %s; spread %s", k+1, ms(fl), ms(sl), ms(sp))
			time.Sleep(300 * time.Millisecond) // ACKs settle
		}
		if k < o.bundleRounds {
			cl, stl, sp, err := bundleRound(ctx, bin, srv, f, bundleIdx)
			if err != nil {
				return fmt.Errorf("bundle rotation %d: %w", k+1, err)
			}
			cmdToLast, startToLast, bSpread = append(cmdToLast, cl), append(startToLast, stl), append(bSpread, sp)
			progress("c: bundle rotation %d: command done → last %s (command start → last %s); spread %s", k+1, ms(cl), ms(stl), ms(sp))
			time.Sleep(300 * time.Millisecond)
		}
	}
	if f.errs.Load() > 0 {
		return fmt.Errorf("%d streams failed", f.errs.Load())
	}
	if len(schedToLast) > 0 {
		worst := slices.Max(schedToLast)
		rep.add(fmt.Sprintf("SVID rotation reaches all %d streams (scheduled rotation time → last stream; worst of %d)", o.streams, len(schedToLast)),
			"≤ 100 ms", ms(worst), worst <= 100*time.Millisecond)
		rep.add(fmt.Sprintf("SVID rotation spread, first → last of %d streams (worst of %d)", o.streams, len(spread)),
			"≤ 100 ms", ms(slices.Max(spread)), slices.Max(spread) <= 100*time.Millisecond)
		rep.info = append(rep.info, fmt.Sprintf("(c) SVID rotations (--svid-ttl %s): scheduled → last %s; scheduled → first %s; first → last %s",
			o.svidTTL, durList(schedToLast), durList(schedToFirst), durList(spread)))
	}
	if len(cmdToLast) > 0 {
		worst := slices.Max(cmdToLast)
		rep.add(fmt.Sprintf("bundle rollover reaches all %d ROOTCA streams (`meshd ca rotate --now` exited → last stream; worst of %d)", o.streams, len(cmdToLast)),
			"≤ 100 ms", ms(worst), worst <= 100*time.Millisecond)
		rep.info = append(rep.info, fmt.Sprintf("(c) bundle rollovers (--reload-interval 10ms): command exited → last %s; command started → last %s; first → last %s",
			durList(cmdToLast), durList(startToLast), durList(bSpread)))
	}
	return nil
}

func durList(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
	}
	return strings.Join(s, ", ") + " ms"
}

// svidRound waits for the next scheduled SVID rotation that is far enough
// ahead to be armed for, and measures it against the rotation time the
// server computes from the same certificate (certs.RotationTime).
func svidRound(ctx context.Context, f *fleet, j int) (schedToLast, schedToFirst, spread time.Duration, err error) {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return 0, 0, 0, ctx.Err()
		}
		cur, ok := f.common(j)
		if !ok {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		leaf, err := leafOf(cur)
		if err != nil {
			return 0, 0, 0, err
		}
		rt := certs.RotationTime(leaf)
		if time.Until(rt) < 500*time.Millisecond {
			// Too close (or past) to arm reliably: let it happen, take the next.
			time.Sleep(time.Until(rt) + time.Second)
			continue
		}
		r := f.arm(j)
		if err := f.wait(ctx, j, r, time.Until(rt)+15*time.Second); err != nil {
			return 0, 0, 0, err
		}
		first, last := r.span()
		now, ok := f.common(j)
		if ok {
			nl, err := leafOf(now)
			if err != nil {
				return 0, 0, 0, err
			}
			if nl.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				return 0, 0, 0, fmt.Errorf("streams changed but kept serial %x", leaf.SerialNumber)
			}
		}
		return last.Sub(rt), first.Sub(rt), last.Sub(first), nil
	}
	return 0, 0, 0, fmt.Errorf("no SVID rotation could be armed within 90s")
}

// bundleRound runs `meshd ca rotate --now` and measures until every ROOTCA
// stream holds the two-root bundle. If a previous round left a retired
// root, it is first dropped from the state (untimed) so the bundle goes from
// one root to two every time.
func bundleRound(ctx context.Context, bin string, srv *server, f *fleet, j int) (cmdToLast, startToLast, spread time.Duration, err error) {
	cur, ok := f.common(j)
	if !ok {
		return 0, 0, 0, fmt.Errorf("ROOTCA streams disagree before the rollover")
	}
	if rootsIn(cur) > 1 {
		r := f.arm(j)
		_, err := certs.Store{Dir: srv.stateDir}.Update(func(s *certs.State) (*certs.State, bool, error) {
			if s == nil {
				return nil, false, fmt.Errorf("no CA state in %s", srv.stateDir)
			}
			s.Authorities = slices.DeleteFunc(s.Authorities, func(a *certs.Authority) bool { return a.Status == certs.StatusRetired })
			return s, true, nil
		})
		if err != nil {
			return 0, 0, 0, err
		}
		if err := f.wait(ctx, j, r, 10*time.Second); err != nil {
			return 0, 0, 0, fmt.Errorf("dropping the retired root: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r := f.arm(j)
	cmd := exec.CommandContext(ctx, bin, "ca", "rotate", "--now", "--state-dir", srv.stateDir)
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	t1 := time.Now()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("meshd ca rotate: %v\n%s", err, out)
	}
	if err := f.wait(ctx, j, r, 10*time.Second); err != nil {
		return 0, 0, 0, err
	}
	first, last := r.span()
	if now, ok := f.common(j); !ok || rootsIn(now) != 2 {
		return 0, 0, 0, fmt.Errorf("after the rollover the ROOTCA streams do not all hold a two-root bundle")
	}
	return last.Sub(t1), last.Sub(t0), last.Sub(first), nil
}

// scenarioIssue measures certs.CA.Issue (P-256 root and leaf) on one
// goroutine, in this process.
func scenarioIssue(ctx context.Context, _ string, o options, rep *report) error {
	dir, err := os.MkdirTemp("", "sdsb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	ca, err := certs.New(certs.Config{
		TrustDomain: spiffeid.RequireTrustDomainFromString(trustDomain), StateDir: dir,
		CAKeyType: certs.KeyECDSAP256, SVIDKeyType: certs.KeyECDSAP256,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		return err
	}
	id := spiffeid.RequireFromString(spiffeID)
	for range 100 {
		if _, err := ca.Issue(id, nil); err != nil {
			return err
		}
	}
	n, t0 := 0, time.Now()
	for time.Since(t0) < o.issueFor && ctx.Err() == nil {
		if _, err := ca.Issue(id, nil); err != nil {
			return err
		}
		n++
	}
	rate := float64(n) / time.Since(t0).Seconds()
	rep.add("P-256 SVID issuance, one goroutine (= one core)", "≥ 5,000 /s/core", fmt.Sprintf("%.0f /s", rate), rate >= 5000)
	return nil
}

type row struct {
	metric, target, result string
	pass                   bool
}

type report struct {
	rows  []row
	info  []string
	notes []string
}

func (r *report) add(metric, target, result string, pass bool) {
	r.rows = append(r.rows, row{metric, target, result, pass})
}

func (r *report) print(w io.Writer, o options) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n### meshd SDS benchmark (%s, %d CPUs, %s, GOMAXPROCS %d, harness %s)\n\n", host, runtime.NumCPU(), runtime.Version(), runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintln(w, "| metric | target | SPIRE anchor | meshd result | pass/fail |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, x := range r.rows {
		verdict := "FAIL"
		if x.pass {
			verdict = "pass"
		}
		fmt.Fprintf(w, "| %s | %s | not measured here¹ | %s | %s |\n", x.metric, x.target, x.result, verdict)
	}
	fmt.Fprintln(w, "\n¹ The targets are the issue's, set against SPIRE agent v1.15.3; no SPIRE agent was run by this harness.")
	if len(r.info) > 0 {
		fmt.Fprintln(w, "\nDetails:")
		for _, s := range r.info {
			fmt.Fprintf(w, "- %s\n", s)
		}
	}
	for _, s := range r.notes {
		fmt.Fprintf(w, "- %s\n", s)
	}
}
