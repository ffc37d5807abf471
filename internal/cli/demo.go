package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/meshd/meshd/internal/demo"
)

// DefaultDemoMetricsListen is where `meshd demo` serves Prometheus.
const DefaultDemoMetricsListen = "127.0.0.1:9908"

// exampleDir is the getting-started mesh in a checkout.
const exampleDir = "examples/apps"

func demoCommand() *Command {
	return &Command{
		Name:    "demo",
		Summary: "Run the App Mesh getting-started mesh on loopback: control plane, SDS, gRPC backends and a proxyless client.",
		Long: `Runs, in one process and on loopback only, meshd's control plane serving the
getting-started mesh (./examples/apps when run from a checkout, so edits to
it are served live; otherwise an embedded copy), the SDS server with a local
CA, real gRPC backends for serviceB and serviceBv2, and serviceA as a
proxyless gRPC client calling xds:///serviceb.apps.local over mTLS with the
certificates SDS issued. It shows, refreshed in place: the traffic split
against the route's weights, the certificates and their expiry, and the App
Mesh extension metrics, which Prometheus can scrape. --shift moves traffic
while it runs. Ctrl-C stops it; nothing is left behind.`,
		Setup: func(fs *flag.FlagSet) Action {
			var (
				cfg         demo.Config
				shift       string
				logs        bool
				refresh     time.Duration
				duration    time.Duration
				configGiven string
			)
			fs.StringVar(&configGiven, "config", "", "`dir`ectory of App Mesh definitions (default ./"+exampleDir+" if present, else the embedded copy)")
			fs.StringVar(&cfg.WorkDir, "work-dir", "", "`dir`ectory for the CA state and sockets (default a temporary directory, removed at exit)")
			fs.StringVar(&cfg.MetricsListen, "metrics-listen", DefaultDemoMetricsListen, "`addr`ess for /metrics (meshd_* and envoy_appmesh_*), /healthz and /readyz (empty disables)")
			fs.IntVar(&cfg.RPS, "rps", 50, "requests per second serviceA sends")
			fs.StringVar(&shift, "shift", "", "route `weights` to apply while running, in the route's target order, e.g. 0/100")
			fs.DurationVar(&cfg.ShiftAfter, "shift-after", 20*time.Second, "when --shift applies, after the start")
			fs.DurationVar(&cfg.SVIDTTL, "svid-ttl", 10*time.Minute, "lifetime of the certificates issued (renewed at half-life)")
			fs.StringVar(&cfg.TrustDomain, "trust-domain", DefaultTrustDomain, "SPIFFE trust `domain` of the demo's CA")
			fs.BoolVar(&logs, "log", false, "print meshd's logs (at --log-level) instead of the refreshing table")
			fs.DurationVar(&refresh, "refresh", 0, "how often the table is redrawn (default 1s on a terminal, 10s otherwise)")
			fs.DurationVar(&duration, "duration", 0, "stop after this long (default: run until interrupted)")
			return func(ctx context.Context, env *Env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if shift != "" {
					w, err := parseWeights(shift)
					if err != nil {
						return usagef("--shift %q: %v", shift, err)
					}
					cfg.Shift = w
				}
				if cfg.RPS <= 0 || cfg.RPS > 10000 {
					return usagef("--rps %d: want 1–10000", cfg.RPS)
				}
				cfg.ConfigDir = configGiven
				if cfg.ConfigDir == "" {
					if fi, err := os.Stat(exampleDir); err == nil && fi.IsDir() {
						cfg.ConfigDir = exampleDir
					}
				}
				tty := isTerminal(env.Stdout)
				if logs {
					cfg.Log = env.Log
				} else {
					cfg.Log = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
				}
				d, err := demo.New(cfg)
				if errors.Is(err, demo.ErrShift) {
					return usagef("%v", strings.TrimPrefix(err.Error(), demo.ErrShift.Error()+": "))
				}
				if err != nil {
					return err
				}
				if duration > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, duration)
					defer cancel()
				}
				if refresh <= 0 {
					refresh = 10 * time.Second
					if tty {
						refresh = time.Second
					}
				}
				fmt.Fprintln(env.Stdout, "meshd demo: starting the control plane, SDS, two backends and serviceA …")
				errc := make(chan error, 1)
				go func() { errc <- d.Run(ctx) }()
				t := time.NewTicker(refresh)
				defer t.Stop()
				for {
					select {
					case err := <-errc:
						fmt.Fprintln(env.Stdout)
						demo.Render(env.Stdout, d.State(), time.Now())
						fmt.Fprintln(env.Stdout, "\nmeshd demo: stopped.")
						return err
					case <-t.C:
						if logs {
							continue
						}
						var b strings.Builder
						if tty {
							b.WriteString("\x1b[H\x1b[2J") // home, clear: redraw in place
						} else {
							b.WriteString("\n")
						}
						demo.Render(&b, d.State(), time.Now())
						io.WriteString(env.Stdout, b.String())
					}
				}
			}
		},
	}
}

// parseWeights reads "75/25".
func parseWeights(s string) ([]int64, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 1 || len(parts) > 10 {
		return nil, fmt.Errorf("want 1–10 weights separated by /")
	}
	var out []int64
	sum := int64(0)
	for _, p := range parts {
		w, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil || w < 0 || w > 100 {
			return nil, fmt.Errorf("weight %q: want 0–100", p)
		}
		out = append(out, w)
		sum += w
	}
	if sum == 0 {
		return nil, fmt.Errorf("the weights add up to 0")
	}
	return out, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
