package metrics

import (
	"bytes"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/promtool"
)

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
	promtool.Check(t, body)
	if _, err := ParseText(bytes.NewReader(body), ""); err != nil {
		t.Errorf("expfmt: %v", err)
	}
}
