package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshd/meshd/controlplane/translate"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
)

var (
	appsDir     = filepath.Join("..", "examples", "apps")
	featuresDir = filepath.Join("..", "controlplane", "translate", "testdata", "features")
	gatewayDir  = filepath.Join("..", "controlplane", "translate", "testdata", "gateway")
)

// nodeResources is the control plane's real output for one node of a
// configuration directory.
func nodeResources(t testing.TB, dir string, node appmesh.Resource) *translate.Resources {
	t.Helper()
	res, err := load.Dir(os.DirFS(dir), ".", load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, problems, _ := model.Build(res.Docs)
	if len(problems) > 0 {
		t.Fatalf("%s: %v", dir, problems)
	}
	r, err := translate.New(cfg, translate.Options{}).Node(node, translate.Envoy)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func vn(mesh, name string) appmesh.Resource {
	return appmesh.Resource{Mesh: mesh, Kind: appmesh.VirtualNode, Name: name}
}

func vg(mesh, name string) appmesh.Resource {
	return appmesh.Resource{Mesh: mesh, Kind: appmesh.VirtualGateway, Name: name}
}

var dumpJSON = protojson.MarshalOptions{UseProtoNames: true}

// configDumps renders what Envoy's /config_dump?resource=dynamic_active_clusters
// and ?resource=dynamic_listeners answer for the node's resources.
func configDumps(t testing.TB, r *translate.Resources) (clusters, listeners []byte) {
	t.Helper()
	var cd, ld adminv3.ConfigDump
	for _, c := range r.Types[resource.ClusterType] {
		a, err := anypb.New(&adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: r.Versions[resource.ClusterType], Cluster: mustAny(t, c.(*clusterv3.Cluster))})
		if err != nil {
			t.Fatal(err)
		}
		cd.Configs = append(cd.Configs, a)
	}
	for _, l := range r.Types[resource.ListenerType] {
		ln := l.(*listenerv3.Listener)
		a, err := anypb.New(&adminv3.ListenersConfigDump_DynamicListener{Name: ln.Name, ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{
			VersionInfo: r.Versions[resource.ListenerType], Listener: mustAny(t, ln)}})
		if err != nil {
			t.Fatal(err)
		}
		ld.Configs = append(ld.Configs, a)
	}
	var err error
	if clusters, err = dumpJSON.Marshal(&cd); err != nil {
		t.Fatal(err)
	}
	if listeners, err = dumpJSON.Marshal(&ld); err != nil {
		t.Fatal(err)
	}
	return clusters, listeners
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// statsDoc builds Envoy's /stats?format=json&histogram_buckets=detailed
// body: values sorted by name as Envoy does, then the histograms element.
type statsDoc struct {
	values map[string]float64
	hists  map[string][]Bin
}

func newStats() *statsDoc { return &statsDoc{values: map[string]float64{}, hists: map[string][]Bin{}} }

func (d *statsDoc) set(name string, v float64) *statsDoc { d.values[name] = v; return d }

// observe records ms latencies in two-significant-digit bins, as Envoy's
// histograms do.
func (d *statsDoc) observe(name string, ms ...float64) *statsDoc {
	for _, v := range ms {
		lower, width := envoyBin(v)
		bins := d.hists[name]
		found := false
		for i := range bins {
			if bins[i].Lower == lower {
				bins[i].Count++
				found = true
			}
		}
		if !found {
			bins = append(bins, Bin{Lower: lower, Width: width, Count: 1})
		}
		sort.Slice(bins, func(i, j int) bool { return bins[i].Lower < bins[j].Lower })
		d.hists[name] = bins
	}
	return d
}

func envoyBin(v float64) (lower, width float64) {
	if v <= 0 {
		return 0, 0
	}
	e := 1.0
	for v >= 100*e {
		e *= 10
	}
	for v < 10*e {
		e /= 10
	}
	n := float64(int64(v / e))
	return n * e, e
}

func (d *statsDoc) json() []byte {
	var b strings.Builder
	b.WriteString(`{"stats":[`)
	names := make([]string, 0, len(d.values))
	for n := range d.values {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":%q,"value":%v}`, n, d.values[n])
	}
	if len(d.hists) > 0 {
		if len(names) > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"histograms":{"supported_percentiles":[0,25,50,75,90,95,99,99.5,99.9,100],"details":[`)
		hn := make([]string, 0, len(d.hists))
		for n := range d.hists {
			hn = append(hn, n)
		}
		sort.Strings(hn)
		for i, n := range hn {
			if i > 0 {
				b.WriteByte(',')
			}
			type bin struct {
				Lower float64 `json:"lower_bound"`
				Width float64 `json:"width"`
				Count uint64  `json:"count"`
			}
			var bins []bin
			for _, x := range d.hists[n] {
				bins = append(bins, bin{x.Lower, x.Width, x.Count})
			}
			tot, _ := json.Marshal(bins)
			fmt.Fprintf(&b, `{"name":%q,"percentiles":[],"totals":%s,"intervals":[]}`, n, tot)
		}
		b.WriteString(`]}}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}
