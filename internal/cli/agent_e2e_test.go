package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/envoyadmin"
	"github.com/meshd/meshd/internal/fakeenvoy"
	"github.com/meshd/meshd/metrics"
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestAgentEndToEnd: `meshd controlplane` serves the getting-started mesh;
// `meshd agent` renders serviceA's bootstrap and runs the fake Envoy (a
// program following ADS and serving Envoy's admin formats, with traffic);
// the agent API answers /status HEALTHY and the App Mesh extension derived
// from the control plane's real clusters, App Mesh's filtered form included.
func TestAgentEndToEnd(t *testing.T) {
	envoy := fakeenvoy.Build(t)
	dir, err := os.MkdirTemp("", "e2e") // short: sun_path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	xds := filepath.Join(dir, "xds.sock")
	api := filepath.Join(dir, "agent.sock")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cpErr bytes.Buffer
	cpDone := make(chan int, 1)
	go func() {
		cpDone <- Main(ctx, []string{"controlplane", "--config", filepath.Join("..", "..", "examples", "apps"), "--xds-listen", "unix://" + xds, "--metrics-listen", ""}, &bytes.Buffer{}, &syncWriter{w: &cpErr})
	}()
	for _, kv := range [][2]string{
		{"APPMESH_RESOURCE_ARN", "mesh/apps/virtualNode/serviceA"},
		{"MESHD_XDS_ADDRESS", "unix://" + xds},
		{"ENVOY_ADMIN_ACCESS_PORT", strconv.Itoa(freePort(t))},
		{"ENVOY_ADMIN_ACCESS_LOG_FILE", filepath.Join(dir, "admin.log")},
		{"APPNET_AGENT_ADMIN_MODE", "uds"},
		{"APPNET_AGENT_ADMIN_UDS_PATH", api},
		{"HC_POLL_INTERVAL_MS", "2000"},
		{"LISTENER_DRAIN_WAIT_TIME_S", "5"},
		{"ENABLE_STATS_SNAPSHOT", "true"},
		{"FAKE_ENVOY_TRAFFIC", "3"},
	} {
		t.Setenv(kv[0], kv[1])
	}
	var agErr bytes.Buffer
	agDone := make(chan int, 1)
	go func() {
		agDone <- Main(ctx, []string{"agent", "--envoy-path", envoy, "--metrics-listen", ""}, &bytes.Buffer{}, &syncWriter{w: &agErr})
	}()
	c, err := envoyadmin.New("unix://" + api)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()

	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out\n--- agent:\n%s\n--- control plane:\n%s", what, agErr.String(), cpErr.String())
			}
			time.Sleep(250 * time.Millisecond) // the API allows 10 requests per second
		}
	}
	var ext string
	// Envoy merges histograms at its stats flush (5 s by default): wait for
	// TargetResponseTime too.
	wait("extension with serviceB traffic and latencies", func() bool {
		b, err := c.Get(ctx, "/stats/prometheus", map[string][]string{"usedonly": {""}, "filter": {"metrics_extension"}})
		ext = string(b)
		return err == nil && strings.Contains(ext, `RequestCountPerTarget{Mesh="apps",TargetVirtualNode="serviceB",TargetVirtualService="serviceb.apps.local",VirtualNode="serviceA"}`) && strings.Contains(ext, "TargetResponseTime_bucket{")
	})
	// App Mesh's filtered form: prefix stripped, families in order, each
	// after an empty line.
	if !strings.HasPrefix(ext, "\n# TYPE ") || strings.Contains(ext, "envoy_appmesh_") {
		t.Errorf("filtered extension not in App Mesh's form:\n%s", ext)
	}
	for _, m := range []string{"HTTPCode_Target_2XX_Count{", "HTTPCode_Target_5XX_Count{", "TargetResponseTime_bucket{", `TargetVirtualNode="serviceBv2"`, "TargetProcessedBytes{"} {
		if !strings.Contains(ext, m) {
			t.Errorf("extension lacks %s:\n%s", m, ext)
		}
	}
	wait("/status HEALTHY", func() bool {
		b, err := c.Get(ctx, "/status", nil)
		return err == nil && strings.Contains(string(b), `"healthStatus": "HEALTHY"`)
	})
	full, err := c.Get(ctx, "/stats/prometheus", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"envoy_cluster_upstream_rq_total{", "# TYPE envoy_appmesh_RequestCountPerTarget counter"} {
		if !bytes.Contains(full, []byte(want)) {
			t.Errorf("/stats/prometheus lacks %q", want)
		}
	}
	if _, err := metrics.ParseText(bytes.NewReader(full), ""); err != nil {
		t.Errorf("expfmt cannot parse /stats/prometheus: %v", err)
	}
	promtoolCheck(t, full)
	if b, err := c.Post(ctx, "/drain_listeners", map[string][]string{"inboundonly": {""}}); err != nil || string(b) != "OK\n" {
		t.Errorf("/drain_listeners?inboundonly: %v %q", err, b)
	}

	cancel()
	for name, done := range map[string]chan int{"agent": agDone, "controlplane": cpDone} {
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("%s exit %d\n%s%s", name, code, agErr.String(), cpErr.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not stop", name)
		}
	}
}

// promtoolCheck runs `promtool check metrics`: parse errors (exit 1) fail,
// lint findings (exit 3: App Mesh's CamelCase names) do not.
func promtoolCheck(t *testing.T, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool not installed")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
}
