package fakeenvoy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/meshd/meshd/controlplane"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/testutil"
	"github.com/meshd/meshd/tracing"
)

// renderBootstrap renders meshd's bootstrap for env (as `meshd bootstrap`
// does), with admin on admin (nil: 127.0.0.1, port 0), into a JSON file.
func renderBootstrap(t *testing.T, env map[string]string, admin *corev3.Address) string {
	t.Helper()
	cfg, err := tracing.FromEnv(tracing.MapLookup(env))
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := tracing.Render(cfg, os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if admin == nil {
		admin = &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}}
	}
	b.Admin.Address = admin
	b.Admin.AccessLog = nil
	data, err := tracing.Encode(b, tracing.YAML)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type proc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan error
	admin  string // host:port, or "" for a pipe
	client *http.Client
}

// startFake runs the fake Envoy binary and waits for its admin address.
func startFake(t *testing.T, args []string, env ...string) *proc {
	t.Helper()
	bin := Build(t)
	addrFile := filepath.Join(t.TempDir(), "admin-address")
	cmd := exec.Command(bin, append(args, "--admin-address-path", addrFile)...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1), client: &http.Client{Timeout: 5 * time.Second}}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("fake-envoy stderr:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(addrFile); err == nil && len(data) > 0 {
			addr := string(data)
			if sock, ok := strings.CutPrefix(addr, "unix://"); ok {
				p.client.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				}}
				p.admin = "envoy"
			} else {
				p.admin = addr
			}
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no admin address; stderr:\n%s", p.stderr.String())
	return nil
}

func (p *proc) get(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+p.admin+path, nil)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitFor polls path until cond holds for its body.
func (p *proc) waitFor(t *testing.T, path string, cond func(code int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var code int
	var body string
	for time.Now().Before(deadline) {
		code, body = p.get(t, "GET", path)
		if cond(code, body) {
			return body
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: condition not met; last %d %q", path, code, body)
	return ""
}

func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(5 * time.Second):
		t.Fatal("fake-envoy did not exit")
		return -1
	}
}

// startControlPlane serves examples/apps over ADS on a Unix socket.
func startControlPlane(t *testing.T) string {
	t.Helper()
	srv := controlplane.New(controlplane.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	u, err := controlplane.LoadDir(appsDir, load.Options{})
	if err != nil || u.Config == nil {
		t.Fatalf("load: %v %v", err, u.Problems)
	}
	srv.Apply(u)
	sock := filepath.Join(t.TempDir(), "xds.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return sock
}

// TestProgramWithControlPlane runs the fake with a bootstrap rendered by
// tracing against a real control plane: it becomes LIVE once CDS and LDS
// arrive, /config_dump lists the served clusters with their aws.appmesh
// metadata, simulated traffic shows in the stats, SIGTERM exits 0.
func TestProgramWithControlPlane(t *testing.T) {
	sock := startControlPlane(t)
	cfg := renderBootstrap(t, map[string]string{
		"APPMESH_RESOURCE_ARN":             "mesh/apps/virtualNode/serviceA",
		"MESHD_XDS_ADDRESS":                "unix://" + sock,
		"APPMESH_METRIC_EXTENSION_VERSION": "1",
		"ENVOY_STATS_FLUSH_INTERVAL":       "200ms",
	}, nil)
	argsFile := filepath.Join(t.TempDir(), "args")
	p := startFake(t, []string{"-c", cfg, "-l", "debug", "--concurrency", "1", "--drain-time-s", "5", "--disable-hot-restart", "--skip-deprecated-logs", "--frobnicate"},
		"FAKE_ENVOY_TRAFFIC=2", "FAKE_ENVOY_ARGS_FILE="+argsFile)
	p.waitFor(t, "/ready", func(code int, body string) bool { return code == 200 && body == "LIVE\n" })

	_, body := p.get(t, "GET", "/config_dump?resource=dynamic_active_clusters")
	var dump struct {
		Configs []struct {
			Cluster struct {
				Name     string `json:"name"`
				Metadata struct {
					FilterMetadata map[string]map[string]string `json:"filter_metadata"`
				} `json:"metadata"`
			} `json:"cluster"`
		} `json:"configs"`
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]string{}
	for _, c := range dump.Configs {
		got[c.Cluster.Name] = c.Cluster.Metadata.FilterMetadata["aws.appmesh"]
	}
	if md := got[egressB]; md["Direction"] != "egress" || md["TargetVirtualService"] != "serviceb.apps.local" || md["Mesh"] != "apps" {
		t.Errorf("%s metadata %v (clusters %v)", egressB, md, got)
	}
	if md := got["cds_ingress_apps_serviceA_http2_80"]; md["Direction"] != "ingress" || md["VirtualNode"] != "serviceA" {
		t.Errorf("ingress metadata %v", md)
	}
	_, body = p.get(t, "GET", "/config_dump?resource=static_clusters&mask=cluster.name")
	if !strings.Contains(body, `"name": "meshd_xds"`) {
		t.Errorf("static clusters: %s", body)
	}
	_, body = p.get(t, "GET", "/stats?filter=^control_plane.connected_state$")
	if body != "control_plane.connected_state: 1\n" {
		t.Errorf("connected_state: %q", body)
	}
	p.waitFor(t, "/stats/prometheus?filter=RequestCountPerTarget", func(code int, body string) bool {
		return strings.Contains(body, `envoy_appmesh_RequestCountPerTarget{TargetVirtualNode="serviceB",TargetVirtualService="serviceb.apps.local",Mesh="apps",VirtualNode="serviceA"} `)
	})
	p.waitFor(t, "/stats?filter=^cluster."+egressB+".upstream_rq_503$", func(code int, body string) bool {
		return strings.HasPrefix(body, "cluster."+egressB+".upstream_rq_503: ") && body != "cluster."+egressB+".upstream_rq_503: 0\n"
	})
	// Histograms are merged every stats_flush_interval.
	p.waitFor(t, "/stats?filter=^http.ingress.downstream_rq_time$", func(code int, body string) bool {
		return strings.Contains(body, "P50(")
	})
	if _, body := p.get(t, "GET", "/server_info"); !strings.Contains(body, `"state": "LIVE"`) || !strings.Contains(body, `"concurrency": 1`) {
		t.Errorf("server_info: %s", body)
	}
	if !strings.Contains(p.stderr.String(), "ignoring unknown command line flag --frobnicate") {
		t.Errorf("no warning for the unknown flag")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	args, _ := os.ReadFile(argsFile)
	if !strings.Contains(string(args), " -c "+cfg+" -l debug --concurrency 1") || strings.Count(string(args), "\n") != 1 {
		t.Errorf("args file %q", args)
	}
}

// TestProgramStates: PRE_INITIALIZING for FAKE_ENVOY_READY_AFTER, then
// INITIALIZING while the ADS server is unreachable, LIVE after the initial
// fetch timeout; /quitquitquit exits 0.
func TestProgramStates(t *testing.T) {
	cfg := renderBootstrap(t, map[string]string{
		"APPMESH_RESOURCE_ARN":        "mesh/apps/virtualNode/serviceA",
		"MESHD_XDS_ADDRESS":           "unix://" + filepath.Join(t.TempDir(), "nobody.sock"),
		"ENVOY_INITIAL_FETCH_TIMEOUT": "1",
	}, nil)
	p := startFake(t, []string{"--config-path=" + cfg}, "FAKE_ENVOY_READY_AFTER=500ms")
	if code, body := p.get(t, "GET", "/ready"); code != 503 || body != "PRE_INITIALIZING\n" {
		t.Errorf("ready %d %q", code, body)
	}
	p.waitFor(t, "/ready", func(code int, body string) bool { return code == 503 && body == "INITIALIZING\n" })
	p.waitFor(t, "/ready", func(code int, body string) bool { return code == 200 && body == "LIVE\n" })
	if _, body := p.get(t, "GET", "/stats?filter=connected_state"); body != "control_plane.connected_state: 0\n" {
		t.Errorf("connected_state %q", body)
	}
	if code, body := p.get(t, "POST", "/quitquitquit"); code != 200 || body != "OK\n" {
		t.Errorf("quitquitquit %d %q", code, body)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit code %d after quitquitquit", code)
	}
}

// TestProgramExitAfterAndPipe: the crash knob, on an admin pipe.
func TestProgramExitAfterAndPipe(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	cfg := renderBootstrap(t, map[string]string{
		"APPMESH_RESOURCE_ARN": "mesh/apps/virtualNode/serviceA",
		"MESHD_XDS_ADDRESS":    "unix://" + filepath.Join(t.TempDir(), "nobody.sock"),
	}, &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: sock, Mode: 0o600}}})
	p := startFake(t, []string{"-c", cfg}, "FAKE_ENVOY_EXIT_AFTER=1s", "FAKE_ENVOY_EXIT_CODE=3")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("admin socket %v %v", fi, err)
	}
	if code, body := p.get(t, "GET", "/ready"); code != 503 || body != "INITIALIZING\n" {
		t.Errorf("ready %d %q", code, body)
	}
	if code := p.wait(t); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
}

// TestProgramValidate: --mode validate parses the bootstrap and exits.
func TestProgramValidate(t *testing.T) {
	bin := Build(t)
	cfg := renderBootstrap(t, map[string]string{"APPMESH_RESOURCE_ARN": "mesh/apps/virtualNode/serviceA", "MESHD_XDS_ADDRESS": "127.0.0.1:1"}, nil)
	out, err := exec.Command(bin, "--mode", "validate", "-c", cfg).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration '"+cfg+"' OK") {
		t.Errorf("validate: %v %s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("admin: {address: {nope: 1}}\n"), 0o644)
	if out, err := exec.Command(bin, "--mode", "validate", "-c", bad).CombinedOutput(); err == nil {
		t.Errorf("invalid bootstrap validated: %s", out)
	}
	if out, err := exec.Command(bin, "-c", cfg, "--concurrency", "many").CombinedOutput(); err == nil || !strings.Contains(string(out), "PARSE ERROR") {
		t.Errorf("bad flag value accepted: %v %s", err, out)
	}
}
