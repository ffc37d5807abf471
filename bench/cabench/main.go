// Command cabench benchmarks the real `meshd ca serve` binary over loopback
// TCP, as meshd sidecars would use it, and prints a markdown table of the
// results against the targets.
//
//	go run ./bench/cabench [-meshd BIN] [-n 1000] [-csr-calls 2000] [-rounds 3] [-keep]
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
//  2. enroll: -n goroutines, each with its own TLS connection, released
//     together, each call Enroll with its own join token and P-256 CSR;
//     the time from the release to the last successful response, once per
//     -rounds with a fresh server and fresh tokens;
//  3. memory: during (2) and while the -n connections then stay open for
//     -hold, the server's VmRSS is sampled every 20 ms; the peak is
//     reported with RssAnon/RssFile (and the kernel's VmHWM).
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
	"strings"
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
	hold      time.Duration
	timeout   time.Duration
	quietWait time.Duration
	metrics   bool
	serverEnv multiFlag
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

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
	flag.DurationVar(&o.hold, "hold", time.Second, "how long the enrolled connections stay open after the burst, sampled for (3)")
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
}

type report struct {
	loadStart string
	rows      []row
	info      []string
	notes     []string
}

func (r *report) add(metric, target, result string, pass bool) {
	r.rows = append(r.rows, row{metric, target, result, pass})
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\n### meshd CA service benchmark — %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Machine: %s; load average at the start %s, at the end %s\n\n",
		harness.Machine(), r.loadStart, harness.LoadAvg())
	fmt.Fprintln(w, "| metric | target | meshd result | pass/fail |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, x := range r.rows {
		verdict := "FAIL"
		if x.pass {
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
