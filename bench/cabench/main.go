// Command cabench benchmarks the real `meshd ca serve` binary over loopback
// TCP, as meshd sidecars would use it, and prints a markdown table of the
// results against the targets.
//
//	go run ./bench/cabench [-meshd BIN] [-n 1000] [-csr-calls 2000] [-rounds 3] [-steady 75s] [-first-svid] [-keep]
//
// It builds meshd (unless -meshd is given) and, for each scenario, a fresh
// CA (`meshd ca init --trust-domain bench.meshd`), join tokens made with
// caservice.TokenStore.Create, a policy granting the bench agents one
// workload ID and DNS name, and a `meshd ca serve` subprocess on a free
// 127.0.0.1 port. Then:
//
//  1. sign: one enrolled agent, over its mTLS connection, does -csr-calls
//     sequential round trips as the sidecar does per SVID (P-256 key, CSR,
//     Sign, parse the chain and verify it against the returned bundle);
//     p50 and p99 after a warm-up;
//  2. enroll: -n sidecars, each an issuer.Remote configured as `meshd sds
//     --ca-service` configures it (the real client: its own connection,
//     key, CSR and verification, closing the enrollment connection after
//     the answer), are started together; the time from the release to the
//     last one Ready, once per -rounds with a fresh server and fresh
//     tokens. With -first-svid each also gets one workload SVID as soon as
//     it is enrolled (an Envoy already waiting) and is served when it holds
//     it; no target applies to that harder load;
//  3. peak memory: the server's VmHWM 1 s after the last sidecar was
//     served (its highest resident memory since it started), with VmRSS
//     samples every 20 ms for the anon/file split;
//  4. steady state: in the last round the -n sidecars keep running their
//     sync loop (a bundle fetch every -sync-interval ±25 %, connections
//     closed -idle-timeout after the last call) for -steady; the server's
//     highest VmRSS after the first sync interval, its open sockets and the
//     number of fetches are reported.
//
// Before each timed measurement the harness waits up to -quiet-wait for
// other processes to leave the CPUs idle, and it reports the share of the
// CPUs they used meanwhile. Progress goes to stderr, the table to stdout.
// The exit status is 1 only if the harness could not run a scenario; a
// missed target is reported in the table, not in the status.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshd/meshd/bench/internal/harness"
)

type options struct {
	meshd     string
	n         int
	csrCalls  int
	rounds    int
	keep      bool
	steady    time.Duration
	sync      time.Duration
	idle      time.Duration
	firstSVID bool
	timeout   time.Duration
	quietWait time.Duration
	metrics   bool
	serverEnv harness.MultiFlag
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cabench: "+format+"\n", args...)
}

func main() {
	var o options
	flag.StringVar(&o.meshd, "meshd", "", "meshd binary to benchmark (default: go build ./cmd/meshd into the temporary directory)")
	flag.IntVar(&o.n, "n", 1000, "sidecars enrolling at once (2, 3)")
	flag.IntVar(&o.csrCalls, "csr-calls", 2000, "sequential CSR round trips measured (1)")
	flag.IntVar(&o.rounds, "rounds", 3, "runs of (2, 3), each with a fresh server and fresh tokens")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binary, CA states, policy, server logs)")
	flag.DurationVar(&o.steady, "steady", 75*time.Second, "(4): how long the last round's sidecars keep running their sync loop after the burst, sampled for steady-state memory (0: skip)")
	flag.DurationVar(&o.sync, "sync-interval", 0, "the sidecars' bundle sync interval (default issuer.DefaultSyncInterval, as `meshd sds`)")
	flag.DurationVar(&o.idle, "idle-timeout", 0, "the sidecars' connection idle timeout (default issuer.DefaultIdleTimeout, as `meshd sds`)")
	flag.BoolVar(&o.firstSVID, "first-svid", false, "(2): each sidecar also gets one workload SVID (Issue) as soon as it is enrolled, as its SDS cache does when an Envoy is already waiting; served = holding it")
	flag.DurationVar(&o.timeout, "timeout", 5*time.Minute, "bound on the whole run")
	flag.DurationVar(&o.quietWait, "quiet-wait", 5*time.Second, "before each timed measurement, wait up to this long for other processes to leave the CPUs idle (0: don't wait)")
	flag.BoolVar(&o.metrics, "metrics", false, "serve the CA service's /metrics on a free port (instead of --metrics-listen '') and report its Go heap, stacks and goroutines next to RSS")
	flag.Var(&o.serverEnv, "server-env", "`KEY=VALUE` added to the servers' environment (e.g. GOGC=50); repeatable")
	flag.Parse()
	if o.n < 1 || o.csrCalls < 1 || o.rounds < 1 {
		fmt.Fprintln(os.Stderr, "cabench: -n, -csr-calls and -rounds must be positive")
		os.Exit(2)
	}
	os.Exit(run(o))
}

func run(o options) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	harness.RaiseNofile(uint64(2*o.n+1024), progress) // client and server ends; the server inherits it

	dir, err := os.MkdirTemp("", "cabench")
	if err != nil {
		progress("%v", err)
		return 1
	}
	if o.keep {
		defer progress("kept %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bin := o.meshd
	if bin == "" {
		bin = filepath.Join(dir, "meshd")
		progress("building meshd into %s", bin)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/meshd")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			progress("go build: %v (run from the repository root)", err)
			return 1
		}
	}

	rep := &report{loadStart: harness.LoadAvg()}
	failed := false
	for _, sc := range []struct {
		name string
		fn   func(context.Context, string, string, options, *report) error
	}{
		{"(1) CSR round trips", scenarioSign},
		{"(2, 3) concurrent enrollment and memory", scenarioEnroll},
	} {
		if ctx.Err() != nil {
			progress("%s: skipped: %v", sc.name, ctx.Err())
			rep.notes = append(rep.notes, fmt.Sprintf("%s: skipped: %v", sc.name, ctx.Err()))
			failed = true
			continue
		}
		progress("%s …", sc.name)
		if err := sc.fn(ctx, bin, dir, o, rep); err != nil {
			progress("%s: FAILED: %v", sc.name, err)
			rep.notes = append(rep.notes, fmt.Sprintf("%s: FAILED: %v", sc.name, err))
			failed = true
		}
	}
	rep.print(os.Stdout)
	if failed {
		return 1
	}
	return 0
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

type row struct {
	metric, target, result string
	pass                   bool
	untargeted             bool // no target applies: verdict "—"
}

type report struct {
	loadStart string
	rows      []row
	info      []string
	notes     []string
}

func (r *report) add(metric, target, result string, pass bool) {
	r.rows = append(r.rows, row{metric: metric, target: target, result: result, pass: pass})
}

// addUntargeted reports a measurement no target applies to.
func (r *report) addUntargeted(metric, result string) {
	r.rows = append(r.rows, row{metric: metric, target: "—", result: result, untargeted: true})
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n### meshd CA service benchmark — %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Machine: %s; load average at the start %s, at the end %s\n\n",
		harness.Machine(), r.loadStart, harness.LoadAvg())
	fmt.Fprintln(w, "| metric | target | meshd result | pass/fail |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, x := range r.rows {
		verdict := "FAIL"
		switch {
		case x.untargeted:
			verdict = "—"
		case x.pass:
			verdict = "pass"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", x.metric, x.target, x.result, verdict)
	}
	if len(r.info)+len(r.notes) > 0 {
		fmt.Fprintln(w, "\nDetails:")
	}
	for _, s := range append(r.info, r.notes...) {
		fmt.Fprintf(w, "- %s\n", s)
	}
}
