package demo

import (
	"fmt"
	"math"
	"sort"
	"sync"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/meshd/meshd/controlplane/translate"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/metrics"
)

// nodeStats is the part of one Envoy's statistics the metrics extension
// reads, kept under Envoy's canonical stat names for the clusters and
// listeners the control plane would serve that Envoy. The demo's gRPC
// processes have no Envoy beside them, so they account their own RPCs
// here the way their Envoy would; meshd's metrics extension then derives
// envoy.appmesh.* from these exactly as it does from a real Envoy's /stats.
type nodeStats struct {
	node appmesh.Resource

	mu      sync.Mutex
	mapping *metrics.Mapping
	egress  map[string]string // target virtual node → its egress cluster's stat root
	stats   metrics.EnvoyStats
}

func newNodeStats(node appmesh.Resource) *nodeStats {
	return &nodeStats{node: node, stats: metrics.EnvoyStats{Values: map[string]float64{}, Histograms: map[string]*metrics.Histogram{}}}
}

// setMapping reads which cluster and listener serve which mesh resource from
// the resources the control plane translates for this node, through the
// same /config_dump parser the metrics extension uses on a real Envoy.
func (n *nodeStats) setMapping(tr *translate.Translator) error {
	res, err := tr.Node(n.node, translate.Envoy)
	if err != nil {
		return err
	}
	dump, err := configDump(n.node, res)
	if err != nil {
		return err
	}
	m, err := metrics.ParseConfigDump(dump)
	if err != nil {
		return fmt.Errorf("%s: %w", n.node, err)
	}
	// One cluster per target node: the first by name when a node serves
	// on several ports (the demo's nodes have one).
	names := make([]string, 0, len(m.Egress))
	for name := range m.Egress {
		names = append(names, name)
	}
	sort.Strings(names)
	egress := map[string]string{}
	for _, name := range names {
		if vn := m.Egress[name].VirtualNode; egress[vn] == "" {
			egress[vn] = "cluster." + name + "."
		}
	}
	n.mu.Lock()
	n.mapping, n.egress = m, egress
	n.mu.Unlock()
	return nil
}

// configDump renders what Envoy's /config_dump would show for res.
func configDump(node appmesh.Resource, res *translate.Resources) ([]byte, error) {
	boot := &adminv3.BootstrapConfigDump{Bootstrap: &bootstrapv3.Bootstrap{Node: &corev3.Node{Id: node.String()}}}
	clusters := &adminv3.ClustersConfigDump{}
	for _, c := range res.Types[resource.ClusterType] {
		a, err := anypb.New(c)
		if err != nil {
			return nil, err
		}
		clusters.DynamicActiveClusters = append(clusters.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{Cluster: a})
	}
	listeners := &adminv3.ListenersConfigDump{}
	for _, l := range res.Types[resource.ListenerType] {
		a, err := anypb.New(l)
		if err != nil {
			return nil, err
		}
		listeners.DynamicListeners = append(listeners.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
			Name: cachev3.GetResourceName(l), ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{Listener: a},
		})
	}
	cd := &adminv3.ConfigDump{}
	for _, m := range []proto.Message{boot, clusters, listeners} {
		a, err := anypb.New(m)
		if err != nil {
			return nil, err
		}
		cd.Configs = append(cd.Configs, a)
	}
	// Envoy prints proto field names (snake_case), as the parser expects.
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(cd)
}

// outbound accounts one request to targetNode as Envoy's egress cluster for
// it would: upstream_rq_total, upstream_rq_<class>xx, upstream_rq_time.
func (n *nodeStats) outbound(targetNode string, code int, ms float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	root := n.egress[targetNode]
	if root == "" {
		return
	}
	n.stats.Values[root+"upstream_rq_total"]++
	n.stats.Values[fmt.Sprintf("%supstream_rq_%dxx", root, code/100)]++
	h := n.stats.Histograms[root+"upstream_rq_time"]
	if h == nil {
		h = &metrics.Histogram{}
		n.stats.Histograms[root+"upstream_rq_time"] = h
	}
	record(h, ms)
}

// inbound accounts one request received on the node's ingress listener.
func (n *nodeStats) inbound() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.mapping == nil {
		return
	}
	for _, in := range n.mapping.Inbound {
		if in.Kind == "http" {
			n.stats.Values["http."+in.Prefix+".downstream_rq_total"]++
			return
		}
	}
}

// series derives the node's extension series.
func (n *nodeStats) series() []metrics.Series {
	n.mu.Lock()
	defer n.mu.Unlock()
	return metrics.Derive(n.mapping, &n.stats)
}

// record adds a value (ms) to a histogram with Envoy's bin layout: two
// significant digits, so each bin is about 1 % wide.
func record(h *metrics.Histogram, ms float64) {
	lower, width := 0.0, 0.1
	if ms >= 1 {
		exp := math.Floor(math.Log10(ms))
		width = math.Pow(10, exp-1)
		lower = math.Floor(ms/width) * width
	} else if ms > 0 {
		lower = math.Floor(ms*10) / 10
	}
	i := sort.Search(len(h.Bins), func(i int) bool { return h.Bins[i].Lower >= lower })
	if i < len(h.Bins) && h.Bins[i].Lower == lower {
		h.Bins[i].Count++
		return
	}
	h.Bins = append(h.Bins, metrics.Bin{})
	copy(h.Bins[i+1:], h.Bins[i:])
	h.Bins[i] = metrics.Bin{Lower: lower, Width: width, Count: 1}
}
