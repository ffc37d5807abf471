// Command xdsbench benchmarks `meshd controlplane` with many simulated
// Envoys and prints a markdown table of the results against the targets.
//
//	go run ./bench/xdsbench [-meshd BIN] [-nodes 1000] [-clients 1000]
//
// It generates a mesh of -nodes virtual nodes, as many virtual services
// and virtual routers with 5 routes each (internal/xdstest.GenerateMesh),
// starts `meshd controlplane` on it (a Unix socket), and connects -clients
// simulated Envoys (internal/xdstest: SotW ADS, each its own connection and
// node, following RDS and EDS names and ACKing every response). It
// measures the time until every client holds its configuration and the
// control plane's RSS, then rewrites one router's route file and measures
// the time until every client calling that router's virtual service holds
// (and has ACKed) the new routes, checking that no other client received
// anything. Exit status 1 if a scenario could not run, 2 with -fail-on-miss
// if a target was missed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshd/meshd/bench/internal/harness"
	"github.com/meshd/meshd/internal/xdstest"
)

func main() {
	var (
		meshd      = flag.String("meshd", "", "meshd binary (built from ./cmd/meshd when empty)")
		nodes      = flag.Int("nodes", 1000, "virtual nodes (and services, and routers) in the mesh")
		clients    = flag.Int("clients", 1000, "simulated Envoys, one per virtual node")
		timeout    = flag.Duration("timeout", 3*time.Minute, "bound on the whole run")
		failOnMiss = flag.Bool("fail-on-miss", false, "exit 2 if a target is missed")
	)
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	missed, err := run(ctx, *meshd, *nodes, min(*clients, *nodes))
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdsbench:", err)
		os.Exit(1)
	}
	if missed && *failOnMiss {
		os.Exit(2)
	}
}

func run(ctx context.Context, meshd string, nodes, clients int) (missed bool, err error) {
	tmp, err := os.MkdirTemp("", "xdsbench")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(tmp)
	if meshd == "" {
		meshd = filepath.Join(tmp, "meshd")
		build := exec.CommandContext(ctx, "go", "build", "-o", meshd, "./cmd/meshd")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return false, fmt.Errorf("build meshd: %w", err)
		}
	}
	dir := filepath.Join(tmp, "config")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return false, err
	}
	g := xdstest.GenerateMesh(nodes, 5)
	for name, data := range g.Files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return false, err
		}
	}
	sock := filepath.Join(tmp, "xds.sock")
	cmd := exec.CommandContext(ctx, meshd, "controlplane", "--config", dir, "--xds-listen", "unix://"+sock,
		"--metrics-listen", "", "--poll-interval", "100ms", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start meshd controlplane: %w", err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if ctx.Err() != nil {
			return false, errors.New("the control plane never listened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	startup := time.Since(started)

	// Connect the simulated Envoys.
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	cs := make([]*xdstest.Client, clients)
	var wg sync.WaitGroup
	errc := make(chan error, clients)
	t0 := time.Now()
	for i := range cs {
		cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return false, err
		}
		defer cc.Close()
		cs[i] = &xdstest.Client{Node: &corev3.Node{Id: xdstest.NodeID(i), Cluster: "bench", UserAgentName: "envoy"}}
		wg.Go(func() {
			if err := cs[i].Run(cctx, cc); err != nil {
				errc <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	defer wg.Wait()
	defer stop()
	synced := func(s xdstest.State) bool {
		return len(s.Names[resource.RouteType]) == 2 && len(s.Names[resource.ListenerType]) == 2 && len(s.Names[resource.ClusterType]) > 0
	}
	if err := waitAll(ctx, cs, nil, func(int) func(xdstest.State) bool { return synced }, errc); err != nil {
		return false, fmt.Errorf("initial sync: %w", err)
	}
	syncAll := time.Since(t0)
	m1, _ := harness.ReadMem(cmd.Process.Pid)
	rss, hwm := m1.RSS, m1.HWM

	// Change router 0's routes.
	const router = 0
	var affected []int
	for i := range cs {
		if slices.Contains(g.Backends[i], router) {
			affected = append(affected, i)
		}
	}
	time.Sleep(300 * time.Millisecond) // let ACKs land
	before := make([]xdstest.State, len(cs))
	for i, c := range cs {
		before[i] = c.State()
	}
	t1 := time.Now()
	if err := os.WriteFile(filepath.Join(dir, xdstest.RouteFile(router)), xdstest.RouteDocs(router, nodes, 5, 10), 0o644); err != nil {
		return false, err
	}
	changed := func(i int) func(xdstest.State) bool {
		return func(s xdstest.State) bool {
			return s.Versions[resource.RouteType] != before[i].Versions[resource.RouteType]
		}
	}
	if err := waitAll(ctx, cs, affected, changed, errc); err != nil {
		return false, fmt.Errorf("route change: %w", err)
	}
	propagate := time.Since(t1)
	time.Sleep(500 * time.Millisecond)
	var wrong []string
	for i, c := range cs {
		after := c.State()
		isAffected := slices.Contains(affected, i)
		for _, typ := range []string{resource.ClusterType, resource.ListenerType, resource.EndpointType, resource.RouteType} {
			want := before[i].Responses[typ]
			if isAffected && typ == resource.RouteType {
				want++
			}
			if got := after.Responses[typ]; got != want {
				wrong = append(wrong, fmt.Sprintf("client %d (affected %t): %d %s responses, want %d", i, isAffected, got, typ[strings.LastIndex(typ, ".")+1:], want))
			}
		}
	}
	m2, _ := harness.ReadMem(cmd.Process.Pid)
	rss, hwm = max(rss, m2.RSS), max(hwm, m2.HWM)

	fmt.Printf("| measurement | result | target |\n|---|---|---|\n")
	fmt.Printf("| control plane start (%d nodes, %d routes) | %v | — |\n", nodes, nodes*5, startup.Round(time.Millisecond))
	fmt.Printf("| %d clients connected and synced | %v | — |\n", clients, syncAll.Round(time.Millisecond))
	ok := propagate <= time.Second
	missed = missed || !ok
	fmt.Printf("| route file edit → all %d affected clients hold and ACKed the new routes (incl. ≤ 100 ms file poll) | %v | ≤ 1 s %s |\n", len(affected), propagate.Round(time.Millisecond), mark(ok))
	ok = len(wrong) == 0
	missed = missed || !ok
	fmt.Printf("| clients that got anything else (other types, or unaffected clients) | %d | 0 %s |\n", len(wrong), mark(ok))
	ok = hwm <= 300<<20
	missed = missed || !ok
	fmt.Printf("| control-plane RSS with %d clients (now / peak) | %.1f MiB / %.1f MiB | ≤ 300 MB %s |\n", clients, mib(rss), mib(hwm), mark(ok))
	for _, w := range wrong[:min(len(wrong), 10)] {
		fmt.Fprintln(os.Stderr, w)
	}
	return missed, nil
}

// waitAll waits until cond holds for every client in which (all when nil).
func waitAll(ctx context.Context, cs []*xdstest.Client, which []int, cond func(i int) func(xdstest.State) bool, errc <-chan error) error {
	if which == nil {
		for i := range cs {
			which = append(which, i)
		}
	}
	done := make(chan error, len(which))
	for _, i := range which {
		go func() { done <- cs[i].Wait(ctx, cond(i)) }()
	}
	for range which {
		select {
		case err := <-done:
			if err != nil {
				return err
			}
		case err := <-errc:
			return err
		}
	}
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗ missed"
}
