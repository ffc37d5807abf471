package metrics

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"
)

// promtool runs Prometheus's own checker (Debian package prometheus; .ci/run
// installs it). Exit 1 is a parse error and fails; exit 3 is lint only:
// App Mesh's CamelCase names and counters without _total draw lint warnings
// by design.
func promtool(t *testing.T, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("promtool not installed (.ci/run installs Debian's prometheus package)")
		}
		t.Skip("promtool not installed; apt-get install prometheus")
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() == 3:
		t.Logf("promtool lint (expected for App Mesh names):\n%s", out)
	default:
		t.Fatalf("promtool check metrics: %v\n%s\n--- input:\n%s", err, out, exposition)
	}
}

func TestPromtoolAcceptsEndpoint(t *testing.T) {
	fa := appsAdmin(t)
	fa.set(func(f *fakeAdmin) {
		f.stats = appsTraffic(10, 5, 12, 300).set("cluster_manager.cds.version", 1).set("listener_manager.lds.version", 1).
			set("http.ingress.downstream_rq_total", 4).set("listener.0.0.0.0_15000.downstream_cx_total", 2).json()
	})
	srv := httptest.NewServer(fa)
	defer srv.Close()
	c, reg := newTestCollector(t, srv.Listener.Addr().String(), &clock{t: time.Unix(1e9, 0)})
	rec := httptest.NewRecorder()
	c.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/stats/prometheus", nil))
	body := rec.Body.Bytes()
	for _, want := range []string{"meshd_envoy_up 1", "envoy_cluster_upstream_rq_total{", "envoy_appmesh_TargetResponseTime_bucket{", "envoy_appmesh_RequestCount{"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("endpoint lacks %q", want)
		}
	}
	promtool(t, body)
	if _, err := ParseText(bytes.NewReader(body), ""); err != nil {
		t.Errorf("expfmt: %v", err)
	}
}
