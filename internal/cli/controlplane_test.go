package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds"

	"github.com/meshd/meshd/controlplane"
	"github.com/meshd/meshd/internal/testutil"
	"github.com/meshd/meshd/internal/xdstest"
)

// backend is a real gRPC server (the health service answers every call).
func backend(t *testing.T) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	return ln.Addr().(*net.TCPAddr).Port
}

// gettingStarted copies examples/apps into a directory, pointing serviceB
// and serviceBv2 at the given loopback ports.
func gettingStarted(t *testing.T, portB, portBv2 int) string {
	t.Helper()
	src := filepath.Join("..", "..", "examples", "apps")
	dir := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		if e.Name() == "serviceB.yaml" {
			for host, port := range map[string]int{"serviceb.apps.local": portB, "servicebv2.apps.local": portBv2} {
				old := "  - portMapping: {port: 80, protocol: http2}\n  serviceDiscovery:\n    dns: {hostname: " + host + "}"
				if !strings.Contains(s, old) {
					t.Fatalf("examples/apps/serviceB.yaml changed shape; cannot find %q", old)
				}
				s = strings.Replace(s, old, fmt.Sprintf("  - portMapping: {port: %d, protocol: http2}\n  serviceDiscovery:\n    dns: {hostname: 127.0.0.1}", port), 1)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeRoute(t *testing.T, dir string, wB, wBv2 int) {
	t.Helper()
	route := fmt.Sprintf(`{"meshName": "apps", "virtualRouterName": "serviceB", "routeName": "serviceB",
 "spec": {"http2Route": {"match": {"prefix": "/"}, "action": {"weightedTargets": [
   {"virtualNode": "serviceB", "weight": %d}, {"virtualNode": "serviceBv2", "weight": %d}]}}}}`, wB, wBv2)
	tmp := filepath.Join(dir, ".route.tmp")
	if err := os.WriteFile(tmp, []byte(route), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "route-serviceB.json")); err != nil {
		t.Fatal(err)
	}
}

// TestControlPlaneGettingStarted is the control plane's acceptance scenario:
// the getting-started mesh served by `meshd controlplane` to a real grpc-go
// xDS client presenting serviceA's node id, against two real gRPC backends.
func TestControlPlaneGettingStarted(t *testing.T) {
	portB, portBv2 := backend(t), backend(t)
	dir := gettingStarted(t, portB, portBv2)
	sock := filepath.Join(t.TempDir(), "xds.sock")

	ctx, cancel := context.WithCancel(t.Context())
	var logs testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"controlplane", "--config", dir, "--xds-listen", "unix://" + sock,
			"--metrics-listen", "", "--poll-interval", "100ms"}, &logs, &logs)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("meshd controlplane exited %d:\n%s", code, logs.String())
		}
	})

	bootstrap := fmt.Sprintf(`{"xds_servers": [{"server_uri": "unix://%s", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
 "node": {"id": "mesh/apps/virtualNode/serviceA", "cluster": "serviceA"}}`, sock)
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///serviceb.apps.local", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// Wait for the channel to be READY first: an RPC issued while grpc-go
	// installs its first xDS config selector can race it and fail with
	// "unknown cluster selected for RPC" (seen with grpc-go 1.85).
	cc.Connect()
	readyCtx, readyCancel := context.WithTimeout(ctx, 10*time.Second)
	for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
		if !cc.WaitForStateChange(readyCtx, s) {
			t.Fatalf("channel never READY (state %v)\n%s", cc.GetState(), logs.String())
		}
	}
	readyCancel()
	client := healthpb.NewHealthClient(cc)
	call := func() int {
		t.Helper()
		var p peer.Peer
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		if _, err := client.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true)); err != nil {
			t.Fatalf("RPC through xds:///serviceb.apps.local: %v\ncontrol plane log:\n%s", err, logs.String())
		}
		return p.Addr.(*net.TCPAddr).Port
	}

	// 75/25 over 4,000 RPCs.
	const n = 4000
	hits := map[int]int{}
	for range n {
		hits[call()]++
	}
	if hits[portB]+hits[portBv2] != n {
		t.Fatalf("RPCs reached unexpected backends: %v", hits)
	}
	share := 100 * float64(hits[portB]) / n
	t.Logf("75/25 route: serviceB %d (%.1f %%), serviceBv2 %d", hits[portB], share, hits[portBv2])
	if share < 72 || share > 78 {
		t.Errorf("serviceB got %.1f %% of %d RPCs, want 75 ± 3", share, n)
	}

	// Editing the route to 0/100 moves all traffic within 2 s.
	start := time.Now()
	writeRoute(t, dir, 0, 100)
	for streak := 0; streak < 50; {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("traffic did not move to serviceBv2 within 2 s of the edit\n%s", logs.String())
		}
		if call() == portBv2 {
			streak++
		} else {
			streak = 0
		}
	}
	t.Logf("0/100 edit: all traffic on serviceBv2 after %v", time.Since(start).Round(time.Millisecond))

	// An invalid edit (a target that does not exist) changes nothing.
	before := strings.Count(logs.String(), "configuration rejected;")
	route := `{"meshName": "apps", "virtualRouterName": "serviceB", "routeName": "serviceB",
 "spec": {"http2Route": {"match": {"prefix": "/"}, "action": {"weightedTargets": [{"virtualNode": "serviceC", "weight": 100}]}}}}`
	if err := os.WriteFile(filepath.Join(dir, "route-serviceB.json"), []byte(route), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(logs.String(), "configuration rejected;") == before {
		if time.Now().After(deadline) {
			t.Fatalf("the invalid edit was not rejected\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `VirtualNode \"serviceC\" is not defined in mesh \"apps\"`) {
		t.Errorf("the rejection does not name the problem:\n%s", logs.String())
	}
	for range 200 {
		if got := call(); got != portBv2 {
			t.Fatalf("after an invalid edit an RPC reached port %d; the last good config (0/100) must stay in force", got)
		}
	}
}

// TestREADMEControlPlane runs the README's control plane example as written
// (meshd's own metrics moved to a free port) and checks what the README
// says an Envoy presenting serviceA gets.
func TestREADMEControlPlane(t *testing.T) {
	words := readmeCommand(t, "controlplane-command")
	if strings.Join(words[:4], " ") != "go run ./cmd/meshd controlplane" {
		t.Fatalf("README control plane command %q", words)
	}
	t.Chdir(filepath.Join("..", ".."))
	ctx, cancel := context.WithCancel(t.Context())
	var logs testutil.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, append(words[3:], "--metrics-listen", "127.0.0.1:0"), &logs, &logs) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("exit %d\n%s", code, logs.String())
		}
	}()
	addr := words[len(words)-1]
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := &xdstest.Client{Node: &corev3.Node{Id: "mesh/apps/virtualNode/serviceA", UserAgentName: "envoy"}}
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	go func() {
		for cctx.Err() == nil {
			_ = c.Run(cctx, cc) // retried until the control plane listens
			time.Sleep(20 * time.Millisecond)
		}
	}()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := c.Wait(wctx, func(s xdstest.State) bool {
		return slices.Contains(s.Names[resource.RouteType], "rds_egress_http2_80") && slices.Contains(s.Names[resource.ListenerType], "lds_egress_0.0.0.0_15001")
	}); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	var rc routev3.RouteConfiguration
	if err := c.Resource(resource.RouteType, "rds_egress_http2_80").UnmarshalTo(&rc); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			for _, w := range r.GetRoute().GetWeightedClusters().GetClusters() {
				got = append(got, fmt.Sprintf("%s %s=%d", vh.GetName(), w.GetName(), w.GetWeight().GetValue()))
			}
		}
	}
	want := []string{"serviceb.apps.local cds_egress_apps_serviceB_http2_80=75", "serviceb.apps.local cds_egress_apps_serviceBv2_http2_80=25"}
	if !slices.Equal(got, want) {
		t.Errorf("rds_egress_http2_80 routes %q, README says %q", got, want)
	}
}

func TestDebugNodesHandler(t *testing.T) {
	srv := controlplane.New(controlplane.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	h := nodesHandler(srv)
	for query, want := range map[string]string{"": "[]\n", "?format=text": "NODE"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/debug/nodes"+query, nil))
		if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), want) {
			t.Errorf("/debug/nodes%s: %d %q, want prefix %q", query, rec.Code, rec.Body.String(), want)
		}
	}
}
