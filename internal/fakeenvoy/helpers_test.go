package fakeenvoy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/meshd/meshd/controlplane/translate"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/tracing"
)

const appsDir = "../../examples/apps"

// appsResources translates examples/apps for one virtual node as the
// control plane serves it to an Envoy.
func appsResources(t testing.TB, node string) ([]*clusterv3.Cluster, []*listenerv3.Listener, map[string]string) {
	t.Helper()
	res, err := load.Dir(os.DirFS(appsDir), ".", load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Fatalf("load: %v", res.Problems)
	}
	cfg, problems, _ := model.Build(res.Docs)
	if len(problems) > 0 {
		t.Fatalf("build: %v", problems)
	}
	r, err := translate.New(cfg, translate.Options{}).Node(appmesh.Resource{Mesh: "apps", Kind: appmesh.VirtualNode, Name: node}, translate.Envoy)
	if err != nil {
		t.Fatal(err)
	}
	var cs []*clusterv3.Cluster
	for _, x := range r.Types[resource.ClusterType] {
		cs = append(cs, x.(*clusterv3.Cluster))
	}
	var ls []*listenerv3.Listener
	for _, x := range r.Types[resource.ListenerType] {
		ls = append(ls, x.(*listenerv3.Listener))
	}
	return cs, ls, map[string]string{resource.ClusterType: r.Versions[resource.ClusterType], resource.ListenerType: r.Versions[resource.ListenerType]}
}

// fixedClock is a clock tests advance by hand.
type fixedClock struct{ t time.Time }

func (c *fixedClock) now() time.Time { return c.t }

var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newApps is a fake Envoy for serviceA of examples/apps, with the stats
// tags a bootstrap rendered with the App Mesh metrics extension has.
func newApps(t testing.TB, ext bool) (*Envoy, *fixedClock) {
	t.Helper()
	clk := &fixedClock{t: epoch}
	var sc *metricsv3.StatsConfig
	if ext {
		cfg, err := tracing.FromEnv(tracing.MapLookup(map[string]string{
			"APPMESH_RESOURCE_ARN":             "mesh/apps/virtualNode/serviceA",
			"MESHD_XDS_ADDRESS":                "127.0.0.1:15010",
			"APPMESH_METRIC_EXTENSION_VERSION": "1",
		}))
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := tracing.Render(cfg, os.ReadFile)
		if err != nil {
			t.Fatal(err)
		}
		sc = b.GetStatsConfig()
	}
	e := New(Options{NodeID: "mesh/apps/virtualNode/serviceA", Cluster: "serviceA", Clock: clk.now, StatsConfig: sc, AppMeshExtension: ext})
	if e.Err() != nil {
		t.Fatal(e.Err())
	}
	cs, ls, v := appsResources(t, "serviceA")
	e.SetConfig(cs, ls, v)
	return e, clk
}

// get performs an admin request against e.
func get(t testing.TB, e *Envoy, method, target string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

// lines returns the lines of body that start with one of prefixes.
func lines(body string, prefixes ...string) []string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}
