package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/envoyadmin"
	"github.com/meshd/meshd/internal/fakeenvoy"
	"github.com/meshd/meshd/internal/promtool"
	"github.com/meshd/meshd/internal/testutil"
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
	promtool.Check(t, full)
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

// TestREADMEAgent runs the README's agent command as written, with the fake
// Envoy for /usr/bin/envoy (there is no Envoy here), next to the README's
// control plane, and checks what the README says the agent API answers.
func TestREADMEAgent(t *testing.T) {
	words := readmeCommand(t, "agent-command")
	var args []string
	for _, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok && strings.ToUpper(k) == k {
			t.Setenv(k, v)
			continue
		}
		args = append(args, w)
	}
	if strings.Join(args[:5], " ") != "go run ./cmd/meshd agent --envoy-path" || os.Getenv("MESHD_XDS_ADDRESS") == "" {
		t.Fatalf("README agent command %q", words)
	}
	args = append(args[3:5], fakeenvoy.Build(t), "--metrics-listen", "")
	cp := readmeCommand(t, "controlplane-command")
	if cp[len(cp)-1] != os.Getenv("MESHD_XDS_ADDRESS") {
		t.Fatalf("the agent's MESHD_XDS_ADDRESS is not the README control plane's --xds-listen %s", cp[len(cp)-1])
	}
	dir := t.TempDir()
	t.Setenv("ENVOY_ADMIN_ACCESS_PORT", strconv.Itoa(freePort(t)))
	t.Setenv("ENVOY_ADMIN_ACCESS_LOG_FILE", filepath.Join(dir, "admin.log"))
	apiPort := freePort(t)
	t.Setenv("APPNET_AGENT_HTTP_PORT", strconv.Itoa(apiPort)) // the README's 9902 may be taken here
	t.Setenv("FAKE_ENVOY_TRAFFIC", "1")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var logs testutil.SyncBuffer
	cpDone, agDone := make(chan int, 1), make(chan int, 1)
	go func() {
		cpDone <- Main(ctx, append(cp[3:], "--config", filepath.Join("..", "..", "examples", "apps"), "--metrics-listen", ""), &logs, &logs)
	}()
	go func() { agDone <- Main(ctx, args, &logs, &logs) }()
	c, err := envoyadmin.New("127.0.0.1:" + strconv.Itoa(apiPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdle()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, err := c.Get(ctx, "/stats/prometheus", map[string][]string{"usedonly": {""}, "filter": {"metrics_extension"}})
		if err == nil && strings.Contains(string(b), "RequestCountPerTarget{") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no RequestCountPerTarget from the README's agent: %v\n%s\n%s", err, b, logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if b, err := c.Post(ctx, "/enableLogging", map[string][]string{"level": {"debug"}}); err != nil || !strings.Contains(string(b), "to [debug]") {
		t.Errorf("/enableLogging?level=debug: %v %q", err, b)
	}
	cancel()
	for _, done := range []chan int{agDone, cpDone} {
		if code := <-done; code != 0 {
			t.Errorf("exit %d\n%s", code, logs.String())
		}
	}
}
