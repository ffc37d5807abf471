package controlplane

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/xdstest"
)

const apps = "../examples/apps"

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// copyDir copies examples/apps so a test can edit it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
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
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mustLoad(t *testing.T, dir string) Update {
	t.Helper()
	u, err := LoadDir(dir, load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Config == nil {
		t.Fatalf("%s: %v", dir, u.Problems)
	}
	return u
}

type harness struct {
	srv *Server
	reg *prometheus.Registry
	cc  *grpc.ClientConn
}

// start serves ADS on a Unix socket with dir's configuration applied.
func start(t *testing.T, dir string) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	srv := New(Config{Log: quietLog(), Registry: reg})
	srv.Apply(mustLoad(t, dir))
	sock := filepath.Join(t.TempDir(), "xds.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &harness{srv: srv, reg: reg, cc: cc}
}

// connect runs a simulated Envoy (or gRPC client) until the test ends.
func (h *harness) connect(t *testing.T, c *xdstest.Client) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, h.cc) }()
	t.Cleanup(cancel)
	return errc
}

func node(id string) *corev3.Node {
	return &corev3.Node{Id: id, Cluster: "test", UserAgentName: "envoy"}
}

func waitFor(t *testing.T, c *xdstest.Client, what string, cond func(xdstest.State) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Wait(ctx, cond); err != nil {
		t.Fatalf("%s: %v; client holds %+v", what, err, c.State())
	}
}

// waitInSync waits until n nodes have acknowledged everything served.
func waitInSync(t *testing.T, h *harness, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		nodes := h.srv.Nodes()
		in := 0
		for _, ns := range nodes {
			if ns.InSync {
				in++
			}
		}
		if in == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not in sync: %+v", nodes)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func has(s xdstest.State, typ string, names ...string) bool {
	for _, n := range names {
		if !slices.Contains(s.Names[typ], n) {
			return false
		}
	}
	return true
}

// synced: the client holds listeners, clusters and the routes they name.
func synced(s xdstest.State) bool {
	return has(s, resource.ListenerType, "lds_egress_0.0.0.0_15001", "lds_ingress_0.0.0.0_15000") &&
		has(s, resource.RouteType, "rds_egress_http2_80", "rds_ingress_http2_80") &&
		has(s, resource.ClusterType, "cds_egress_apps_serviceB_http2_80", "cds_egress_apps_serviceBv2_http2_80", "cds_ingress_apps_serviceA_http2_80")
}

func TestServesEnvoySotWAndDelta(t *testing.T) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) {
			h := start(t, apps)
			c := &xdstest.Client{Node: node("arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceA"), Delta: delta}
			h.connect(t, c)
			waitFor(t, c, "serviceA's resources", synced)
			// /debug/nodes: acknowledged at the versions served.
			deadline := time.Now().Add(5 * time.Second)
			for {
				nodes := h.srv.Nodes()
				if len(nodes) == 1 && nodes[0].InSync && nodes[0].Streams == 1 && len(nodes[0].Served) == 3 {
					if nodes[0].Node != "mesh/apps/virtualNode/serviceA" || nodes[0].Flavor != "envoy" {
						t.Fatalf("node status %+v", nodes[0])
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node never in sync: %+v", nodes)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got := testutil.ToFloat64(h.srv.m.streams.WithLabelValues("envoy")); got != 1 {
				t.Errorf("meshd_xds_streams{flavor=envoy} = %v, want 1", got)
			}
			if testutil.ToFloat64(h.srv.m.acks.WithLabelValues("RouteConfiguration")) < 1 {
				t.Error("no RDS ACK counted")
			}
		})
	}
}

func TestProxylessFlavor(t *testing.T) {
	h := start(t, apps)
	n := node("mesh/apps/virtualNode/serviceA")
	n.UserAgentName = "gRPC Go"
	c := &xdstest.Client{Node: n}
	h.connect(t, c)
	waitFor(t, c, "API listeners", func(s xdstest.State) bool {
		return has(s, resource.ListenerType, "serviceb.apps.local", "serviceb.apps.local:80") && has(s, resource.RouteType, "serviceb.apps.local:80")
	})
	if s := c.State(); has(s, resource.ListenerType, "lds_egress_0.0.0.0_15001") {
		t.Errorf("a gRPC client got Envoy's listeners: %v", s.Names[resource.ListenerType])
	}
}

func TestRefusesUnknownNodes(t *testing.T) {
	h := start(t, apps)
	for id, want := range map[string]string{
		"mesh/apps/virtualNode/ghost":  `virtual node "ghost" is not defined in mesh "apps"`,
		"mesh/other/virtualNode/x":     `mesh "other" is not defined`,
		"serviceA":                     "is not a mesh endpoint",
		"mesh/apps/virtualGateway/gw1": `virtual gateway "gw1" is not defined`,
	} {
		c := &xdstest.Client{Node: node(id)}
		errc := h.connect(t, c)
		select {
		case err := <-errc:
			// App Mesh closed such streams with status 3.
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), want) {
				t.Errorf("node %q: stream ended with %v, want InvalidArgument mentioning %q", id, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("node %q: stream not refused", id)
		}
	}
	if got := testutil.ToFloat64(h.srv.m.rejected.WithLabelValues("unknown_node")); got != 3 {
		t.Errorf("unknown_node rejections = %v, want 3", got)
	}
}

// TestOnlyAffectedNodesUpdated: a route change reaches the node that uses
// the route, as an RDS update only, and nothing reaches the others.
func TestOnlyAffectedNodesUpdated(t *testing.T) {
	dir := copyDir(t, apps)
	h := start(t, dir)
	a := &xdstest.Client{Node: node("mesh/apps/virtualNode/serviceA")}
	b := &xdstest.Client{Node: node("mesh/apps/virtualNode/serviceB")}
	h.connect(t, a)
	h.connect(t, b)
	waitFor(t, a, "serviceA", synced)
	waitFor(t, b, "serviceB", func(s xdstest.State) bool {
		return has(s, resource.ListenerType, "lds_ingress_0.0.0.0_15000") && has(s, resource.RouteType, "rds_ingress_http2_80")
	})
	waitInSync(t, h, 2)
	beforeA, beforeB := a.State(), b.State()

	route := filepath.Join(dir, "route-serviceB.json")
	data, _ := os.ReadFile(route)
	edited := strings.Replace(strings.Replace(string(data), `"weight": 75`, `"weight": 10`, 1), `"weight": 25`, `"weight": 90`, 1)
	if edited == string(data) {
		t.Fatal("route file changed shape")
	}
	if err := os.WriteFile(route, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	h.srv.Apply(mustLoad(t, dir))
	waitFor(t, a, "the new route", func(s xdstest.State) bool {
		return s.Versions[resource.RouteType] != beforeA.Versions[resource.RouteType]
	})
	var rc routev3.RouteConfiguration
	if err := a.Resource(resource.RouteType, "rds_egress_http2_80").UnmarshalTo(&rc); err != nil {
		t.Fatal(err)
	}
	wc := rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetWeightedClusters().GetClusters()
	if len(wc) != 2 || wc[0].GetWeight().GetValue() != 10 || wc[1].GetWeight().GetValue() != 90 {
		t.Errorf("weighted clusters after the edit: %v", wc)
	}
	time.Sleep(100 * time.Millisecond)
	afterA, afterB := a.State(), b.State()
	for _, typ := range []string{resource.ClusterType, resource.ListenerType, resource.EndpointType} {
		if afterA.Responses[typ] != beforeA.Responses[typ] {
			t.Errorf("serviceA got %d more %s responses for a route change", afterA.Responses[typ]-beforeA.Responses[typ], typ)
		}
	}
	if afterA.Responses[resource.RouteType] != beforeA.Responses[resource.RouteType]+1 {
		t.Errorf("serviceA RDS responses %d → %d, want exactly one more", beforeA.Responses[resource.RouteType], afterA.Responses[resource.RouteType])
	}
	for typ, n := range afterB.Responses {
		if n != beforeB.Responses[typ] {
			t.Errorf("serviceB, which does not use the route, got %d more %s responses", n-beforeB.Responses[typ], typ)
		}
	}
	// Re-applying an identical configuration sends nothing.
	before := testutil.ToFloat64(h.srv.m.snapshots)
	h.srv.Apply(mustLoad(t, dir))
	if got := testutil.ToFloat64(h.srv.m.snapshots); got != before {
		t.Errorf("an unchanged configuration replaced %v snapshots", got-before)
	}
}

func TestNACKTracked(t *testing.T) {
	h := start(t, apps)
	c := &xdstest.Client{Node: node("mesh/apps/virtualNode/serviceA"), Reject: func(typ string, _ []*anypb.Any) error {
		if typ == resource.RouteType {
			return errors.New("route: unknown cluster (simulated)")
		}
		return nil
	}}
	h.connect(t, c)
	waitFor(t, c, "a NACK", func(s xdstest.State) bool {
		return s.NACKs > 0 && has(s, resource.ClusterType, "cds_ingress_apps_serviceA_http2_80")
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		nodes := h.srv.Nodes()
		if len(nodes) == 1 && nodes[0].LastNACK != nil {
			n := nodes[0]
			if n.LastNACK.Type != "RouteConfiguration" || !strings.Contains(n.LastNACK.Error, "simulated") || n.InSync {
				t.Errorf("node status after NACK: %+v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("NACK not recorded: %+v", nodes)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if testutil.ToFloat64(h.srv.m.nacks.WithLabelValues("RouteConfiguration")) < 1 {
		t.Error("meshd_xds_nacks_total{type=RouteConfiguration} not counted")
	}
}

func TestInvalidConfigurationKeepsLastGood(t *testing.T) {
	dir := copyDir(t, apps)
	h := start(t, dir)
	c := &xdstest.Client{Node: node("mesh/apps/virtualNode/serviceA")}
	h.connect(t, c)
	waitFor(t, c, "serviceA", synced)
	before := c.State()
	if err := os.WriteFile(filepath.Join(dir, "route-serviceB.json"), []byte(`{"meshName": "apps", "virtualRouterName": "serviceB", "routeName": "serviceB", "spec": {"http2Route": {}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := LoadDir(dir, load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Config != nil || len(u.Problems) == 0 {
		t.Fatalf("an invalid route loaded: %+v", u)
	}
	h.srv.Apply(u)
	if got := testutil.ToFloat64(h.srv.m.reloads.WithLabelValues("rejected")); got != 1 {
		t.Errorf("rejected loads = %v", got)
	}
	if got := testutil.ToFloat64(h.srv.m.problems); got != float64(len(u.Problems)) {
		t.Errorf("meshd_controlplane_config_problems = %v, want %d", got, len(u.Problems))
	}
	time.Sleep(100 * time.Millisecond)
	if after := c.State(); !slices.Equal(after.Names[resource.RouteType], before.Names[resource.RouteType]) || after.Versions[resource.RouteType] != before.Versions[resource.RouteType] {
		t.Errorf("an invalid configuration changed what is served: %+v → %+v", before, after)
	}
}

// TestReplicasAgree: two servers loading the same files serve identical
// versions, so a client moving between replicas sees no change.
func TestReplicasAgree(t *testing.T) {
	h1, h2 := start(t, apps), start(t, copyDir(t, apps))
	var versions [2]map[string]string
	for i, h := range []*harness{h1, h2} {
		c := &xdstest.Client{Node: node("mesh/apps/virtualNode/serviceA")}
		h.connect(t, c)
		waitFor(t, c, "serviceA", synced)
		versions[i] = c.State().Versions
	}
	for typ, v := range versions[0] {
		if versions[1][typ] != v {
			t.Errorf("%s: replica versions differ: %s vs %s", typ, v, versions[1][typ])
		}
	}
}

func TestFileSourceReloads(t *testing.T) {
	dir := copyDir(t, apps)
	src := &FileSource{Dir: dir, Interval: 20 * time.Millisecond, Log: quietLog()}
	updates := make(chan Update, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(u Update) { updates <- u }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	next := func() Update {
		select {
		case u := <-updates:
			return u
		case <-time.After(2 * time.Second):
			t.Fatal("no update within 2 s")
		}
		return Update{}
	}
	if u := next(); u.Config == nil || u.Resources != 8 {
		t.Fatalf("first load: %+v", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.yaml"), []byte("meshName: apps\nvirtualServiceName: x.apps.local\nspec: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if u := next(); u.Config == nil || u.Resources != 9 {
		t.Fatalf("after adding a file: %+v", u)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.yaml"), []byte("meshName: apps\nvirtualServiceName: x.apps.local\nspec: {provider: {virtualNode: {virtualNodeName: nope}}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if u := next(); u.Config != nil || len(u.Problems) != 1 || !strings.Contains(u.Problems[0].Error(), `extra.yaml (document 1): spec.provider.virtualNode.virtualNodeName: VirtualNode "nope" is not defined`) {
		t.Fatalf("after a bad edit: %+v", u)
	}
	select {
	case u := <-updates:
		t.Fatalf("an unchanged directory was reloaded: %+v", u)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestFileSourceRefusesMissingDirectory(t *testing.T) {
	src := &FileSource{Dir: filepath.Join(t.TempDir(), "missing"), Log: quietLog()}
	err := src.Run(context.Background(), func(Update) { t.Error("applied a configuration from nowhere") })
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Run on a missing directory: %v", err)
	}
}

// TestForgetsDisconnectedNodes: state for a node goes with its last stream.
func TestForgetsDisconnectedNodes(t *testing.T) {
	h := start(t, apps)
	c := &xdstest.Client{Node: node("mesh/apps/virtualNode/serviceA")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, h.cc) }()
	waitFor(t, c, "serviceA", synced)
	if n := len(h.srv.Nodes()); n != 1 {
		t.Fatalf("%d nodes known", n)
	}
	cancel()
	<-done
	deadline := time.Now().Add(5 * time.Second)
	for len(h.srv.Nodes()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node state kept after its stream closed: %+v", h.srv.Nodes())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := h.srv.Snapshot("mesh/apps/virtualNode/serviceA|envoy"); err == nil {
		t.Error("snapshot kept after the node's last stream closed")
	}
	// It comes back on reconnect.
	c2 := &xdstest.Client{Node: node("mesh/apps/virtualNode/serviceA")}
	h.connect(t, c2)
	waitFor(t, c2, "serviceA again", synced)
}
