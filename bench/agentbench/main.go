// Command agentbench measures `meshd agent`'s idle CPU: it builds meshd and
// the fake Envoy (internal/fakeenvoy), serves the getting-started mesh with
// `meshd controlplane`, runs `meshd agent` for serviceA with its health
// poll, stats snapshots and App Mesh's defaults, lets it settle, and reads
// the agent process's CPU time (/proc/<pid>/stat, the agent alone, not
// Envoy) over a window. It prints a markdown table.
//
//	go run ./bench/agentbench [-window 30s]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/meshd/meshd/bench/internal/harness"
)

func main() {
	window := flag.Duration("window", 30*time.Second, "measurement window")
	settle := flag.Duration("settle", 5*time.Second, "time before measuring")
	flag.Parse()
	if err := run(*window, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "agentbench:", err)
		os.Exit(1)
	}
}

func run(window, settle time.Duration) error {
	dir, err := os.MkdirTemp("", "agb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	meshd, envoy := filepath.Join(dir, "meshd"), filepath.Join(dir, "envoy")
	for bin, pkg := range map[string]string{meshd: "./cmd/meshd", envoy: "./internal/fakeenvoy/cmd/fake-envoy"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", pkg, err, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	xds := filepath.Join(dir, "xds.sock")
	cp := exec.CommandContext(ctx, meshd, "controlplane", "--config", "examples/apps", "--xds-listen", "unix://"+xds, "--metrics-listen", "")
	if err := cp.Start(); err != nil {
		return err
	}
	defer func() { cancel(); cp.Wait() }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ag := exec.CommandContext(ctx, meshd, "agent", "--envoy-path", envoy, "--metrics-listen", "")
	ag.Env = append(os.Environ(),
		"APPMESH_RESOURCE_ARN=mesh/apps/virtualNode/serviceA",
		"MESHD_XDS_ADDRESS=unix://"+xds,
		"ENVOY_ADMIN_ACCESS_PORT="+strconv.Itoa(port),
		"ENVOY_ADMIN_ACCESS_LOG_FILE="+filepath.Join(dir, "admin.log"),
		"APPNET_AGENT_ADMIN_MODE=uds",
		"APPNET_AGENT_ADMIN_UDS_PATH="+filepath.Join(dir, "agent.sock"),
		"ENABLE_STATS_SNAPSHOT=true",
	)
	ag.Cancel = func() error { return ag.Process.Signal(os.Interrupt) }
	if err := ag.Start(); err != nil {
		return err
	}
	defer func() { cancel(); ag.Wait() }()
	time.Sleep(settle)
	t0, err := harness.ProcCPU(ag.Process.Pid)
	if err != nil {
		return err
	}
	start := time.Now()
	time.Sleep(window)
	t1, err := harness.ProcCPU(ag.Process.Pid)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	cpu := t1 - t0
	pct := 100 * cpu.Seconds() / elapsed.Seconds()
	mark := "✓"
	if pct > 1 {
		mark = "✗"
	}
	fmt.Println("| measurement | result | target |")
	fmt.Println("|---|---|---|")
	fmt.Printf("| `meshd agent` idle CPU (health poll every 10 s, snapshots every 60 s; %s window) | %.2f %% of a core (%v) | ≤ 1 %% %s |\n", elapsed.Round(time.Second), pct, cpu, mark)
	return nil
}
