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
// plus in-process P-256 issuance throughput.
//
// Each timed measurement records how much CPU other processes used
// meanwhile (from /proc/stat, minus the harness and the server); the harness
// waits up to -quiet-wait for a quiet machine first, and repeats noisy
// measurements (-noisy-retries) while -timeout allows. Everything is bounded
// by -timeout (3 minutes); the subprocesses are stopped on the way out and
// killed by the kernel if the harness dies (Pdeathsig). The exit status is 1
// if a scenario could not run, 2 with -fail-on-miss if a target was missed,
// else 0. See docs/benchmarks.md.
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
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/meshd/meshd/bench/internal/harness"
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
	serverEnv    harness.MultiFlag
	hold         time.Duration
	burstRuns    int
	quietWait    time.Duration
	retries      int
	failOnMiss   bool
}

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
	flag.DurationVar(&o.quietWait, "quiet-wait", 5*time.Second, "before each timed measurement, wait up to this long for other processes to leave the CPUs idle (0: don't wait)")
	flag.IntVar(&o.retries, "noisy-retries", 2, "extra measurements allowed per scenario to replace ones during which other processes used > 10% of the CPUs (within -timeout)")
	flag.BoolVar(&o.failOnMiss, "fail-on-miss", false, "exit with status 2 if a target is missed (default: only errors fail the run)")
	flag.IntVar(&o.burstRuns, "burst-runs", 3, "runs of (b), each with a fresh server")
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

	harness.RaiseNofile(uint64(4*o.streams+1024), progress)

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
	switch {
	case failed:
		return 1
	case o.failOnMiss && slices.ContainsFunc(rep.rows, func(r row) bool { return !r.pass }):
		return 2
	}
	return 0
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

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
	fmt.Fprintf(w, "\n### meshd SDS benchmark — %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Machine: %s; load average at the end: %s\n\n",
		harness.Machine(), harness.LoadAvg())
	fmt.Fprintln(w, "| metric | target | SPIRE anchor | meshd result | pass/fail |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, x := range r.rows {
		verdict := "FAIL"
		if x.pass {
			verdict = "pass"
		}
		fmt.Fprintf(w, "| %s | %s | not measured here¹ | %s | %s |\n", x.metric, x.target, x.result, verdict)
	}
	fmt.Fprintln(w, "\n¹ The targets are the issue's, set against SPIRE agent v1.15.3; this harness does not run a SPIRE agent.")
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
