package metrics

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// MetadataKey is the cluster filter-metadata namespace meshd's control
// plane writes (controlplane/translate.MetadataKey): Mesh, VirtualNode or
// VirtualGateway, Direction, TargetVirtualService, TargetVirtualNode,
// Protocol, Port.
const MetadataKey = "aws.appmesh"

// Target is the mesh resource pair an egress cluster sends to.
type Target struct {
	VirtualService string
	VirtualNode    string
	Protocol       string
}

// Inbound is one ingress HTTP connection manager or TCP proxy.
type Inbound struct {
	// Kind is "http" or "tcp" (the stats scope: http.<Prefix>. or tcp.<Prefix>.).
	Kind     string
	Prefix   string
	Protocol string // http, http2, grpc or tcp
}

// Mapping tells which of an Envoy's clusters and listeners belong to which
// mesh resources. It is read from /config_dump, never from names.
type Mapping struct {
	Mesh string
	// Kind is "VirtualNode" or "VirtualGateway"; Name the resource's name.
	Kind, Name string
	// Egress maps a cluster name to the target it serves.
	Egress map[string]Target
	// Listeners are the stat roots of ingress listeners
	// ("listener.0.0.0.0_15000").
	Listeners []string
	Inbound   []Inbound
}

// configDumpJSON covers both shapes of /config_dump: the full dump (configs
// are BootstrapConfigDump, ClustersConfigDump, ListenersConfigDump, …) and
// ?resource= (configs are single DynamicCluster/StaticCluster/
// DynamicListener messages).
type configDumpJSON struct {
	Configs []json.RawMessage `json:"configs"`
}

type anyType struct {
	Type string `json:"@type"`
}

type clusterJSON struct {
	Name     string `json:"name"`
	Metadata struct {
		FilterMetadata map[string]map[string]any `json:"filter_metadata"`
	} `json:"metadata"`
}

type listenerJSON struct {
	Name    string `json:"name"`
	Address struct {
		SocketAddress *struct {
			Address   string `json:"address"`
			PortValue uint32 `json:"port_value"`
		} `json:"socket_address"`
	} `json:"address"`
	StatPrefix       string `json:"stat_prefix"`
	TrafficDirection string `json:"traffic_direction"`
	FilterChains     []struct {
		Filters []struct {
			Name        string `json:"name"`
			TypedConfig struct {
				Type       string `json:"@type"`
				StatPrefix string `json:"stat_prefix"`
				RDS        struct {
					RouteConfigName string `json:"route_config_name"`
				} `json:"rds"`
			} `json:"typed_config"`
		} `json:"filters"`
	} `json:"filter_chains"`
}

type dynamicClusterJSON struct {
	Cluster clusterJSON `json:"cluster"`
}

type dynamicListenerJSON struct {
	Name        string `json:"name"`
	ActiveState *struct {
		Listener listenerJSON `json:"listener"`
	} `json:"active_state"`
}

type clustersDumpJSON struct {
	Static  []dynamicClusterJSON `json:"static_clusters"`
	Dynamic []dynamicClusterJSON `json:"dynamic_active_clusters"`
}

type listenersDumpJSON struct {
	Static []struct {
		Listener listenerJSON `json:"listener"`
	} `json:"static_listeners"`
	Dynamic []dynamicListenerJSON `json:"dynamic_listeners"`
}

type bootstrapDumpJSON struct {
	Bootstrap struct {
		Node struct {
			ID string `json:"id"`
		} `json:"node"`
	} `json:"bootstrap"`
}

const (
	typePrefix      = "type.googleapis.com/envoy.admin.v3."
	hcmType         = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	tcpProxyType    = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
	ingressListener = "lds_ingress_"
)

var rdsProtocol = regexp.MustCompile(`^rds_ingress_(http2|http|grpc)_[0-9]+$`)

// ParseConfigDump reads the mapping from /config_dump output (full, or any
// mix of ?resource=dynamic_active_clusters|static_clusters|
// dynamic_listeners answers concatenated into one configs list). The
// resource identity comes from the ingress clusters' metadata, else from
// the bootstrap's node id (mesh/<mesh>/virtualNode/<name>).
func ParseConfigDump(data ...[]byte) (*Mapping, error) {
	var clusters []clusterJSON
	var listeners []listenerJSON
	var nodeID string
	for _, d := range data {
		var doc configDumpJSON
		if err := json.Unmarshal(d, &doc); err != nil {
			return nil, fmt.Errorf("config dump: %w", err)
		}
		for i, raw := range doc.Configs {
			var t anyType
			if err := json.Unmarshal(raw, &t); err != nil {
				return nil, fmt.Errorf("config dump: configs[%d]: %w", i, err)
			}
			var err error
			switch strings.TrimPrefix(t.Type, typePrefix) {
			case "BootstrapConfigDump":
				var b bootstrapDumpJSON
				err = json.Unmarshal(raw, &b)
				nodeID = b.Bootstrap.Node.ID
			case "ClustersConfigDump":
				var c clustersDumpJSON
				err = json.Unmarshal(raw, &c)
				for _, x := range append(c.Static, c.Dynamic...) {
					clusters = append(clusters, x.Cluster)
				}
			case "ClustersConfigDump.DynamicCluster", "ClustersConfigDump.StaticCluster":
				var c dynamicClusterJSON
				err = json.Unmarshal(raw, &c)
				clusters = append(clusters, c.Cluster)
			case "ListenersConfigDump":
				var l listenersDumpJSON
				err = json.Unmarshal(raw, &l)
				for _, x := range l.Static {
					listeners = append(listeners, x.Listener)
				}
				for _, x := range l.Dynamic {
					if x.ActiveState != nil {
						listeners = append(listeners, x.ActiveState.Listener)
					}
				}
			case "ListenersConfigDump.DynamicListener":
				var l dynamicListenerJSON
				err = json.Unmarshal(raw, &l)
				if l.ActiveState != nil {
					listeners = append(listeners, l.ActiveState.Listener)
				}
			case "ListenersConfigDump.StaticListener":
				var l struct {
					Listener listenerJSON `json:"listener"`
				}
				err = json.Unmarshal(raw, &l)
				listeners = append(listeners, l.Listener)
			}
			if err != nil {
				return nil, fmt.Errorf("config dump: configs[%d] (%s): %w", i, t.Type, err)
			}
		}
	}
	return buildMapping(nodeID, clusters, listeners)
}

func buildMapping(nodeID string, clusters []clusterJSON, listeners []listenerJSON) (*Mapping, error) {
	m := &Mapping{Egress: map[string]Target{}}
	if parts := strings.Split(nodeID, "/"); len(parts) == 4 && parts[0] == "mesh" && (parts[2] == "virtualNode" || parts[2] == "virtualGateway") {
		m.Mesh, m.Name = parts[1], parts[3]
		m.Kind = "VirtualNode"
		if parts[2] == "virtualGateway" {
			m.Kind = "VirtualGateway"
		}
	}
	for _, c := range clusters {
		md := c.Metadata.FilterMetadata[MetadataKey]
		if md == nil {
			continue
		}
		str := func(k string) string { s, _ := md[k].(string); return s }
		switch str("Direction") {
		case "ingress":
			if mesh := str("Mesh"); mesh != "" {
				m.Mesh = mesh
			}
			if vn := str("VirtualNode"); vn != "" {
				m.Kind, m.Name = "VirtualNode", vn
			} else if vg := str("VirtualGateway"); vg != "" {
				m.Kind, m.Name = "VirtualGateway", vg
			}
		case "egress":
			t := Target{VirtualService: str("TargetVirtualService"), VirtualNode: str("TargetVirtualNode"), Protocol: str("Protocol")}
			if t.VirtualService == "" || t.VirtualNode == "" {
				return nil, fmt.Errorf("config dump: cluster %q: %s metadata without TargetVirtualService and TargetVirtualNode", c.Name, MetadataKey)
			}
			if m.Mesh == "" {
				m.Mesh = str("Mesh")
			}
			m.Egress[c.Name] = t
		}
	}
	// One entry per stats scope: HTTP connection managers sharing a
	// stat_prefix share their stats; when their protocols differ (a
	// gateway with http and grpc listeners) the requests count as
	// RequestCount.
	seen := map[[2]string]int{}
	for _, l := range listeners {
		if !strings.HasPrefix(l.Name, ingressListener) && l.TrafficDirection != "INBOUND" {
			continue
		}
		root := listenerStatRoot(l)
		if root == "" {
			continue
		}
		m.Listeners = append(m.Listeners, root)
		for _, fc := range l.FilterChains {
			for _, f := range fc.Filters {
				var in Inbound
				switch f.TypedConfig.Type {
				case hcmType:
					in = Inbound{Kind: "http", Prefix: f.TypedConfig.StatPrefix, Protocol: "http"}
					if p := rdsProtocol.FindStringSubmatch(f.TypedConfig.RDS.RouteConfigName); p != nil {
						in.Protocol = p[1]
					}
				case tcpProxyType:
					in = Inbound{Kind: "tcp", Prefix: f.TypedConfig.StatPrefix, Protocol: "tcp"}
				default:
					continue
				}
				if in.Prefix == "" {
					continue
				}
				k := [2]string{in.Kind, in.Prefix}
				if i, ok := seen[k]; ok {
					if m.Inbound[i].Protocol != in.Protocol {
						m.Inbound[i].Protocol = "http"
					}
					continue
				}
				seen[k] = len(m.Inbound)
				m.Inbound = append(m.Inbound, in)
			}
		}
	}
	sort.Strings(m.Listeners)
	m.Listeners = compactStrings(m.Listeners)
	sort.Slice(m.Inbound, func(i, j int) bool {
		a, b := m.Inbound[i], m.Inbound[j]
		return a.Kind+"|"+a.Prefix+"|"+a.Protocol < b.Kind+"|"+b.Prefix+"|"+b.Protocol
	})
	return m, nil
}

// listenerStatRoot is the scope of a listener's stats: listener.<stat_prefix>
// if set, else listener.<ip>_<port> (IPv6 as [a_b_c]_<port>, ':' being
// replaced as Envoy sanitises stat names).
func listenerStatRoot(l listenerJSON) string {
	if l.StatPrefix != "" {
		return "listener." + l.StatPrefix
	}
	sa := l.Address.SocketAddress
	if sa == nil {
		return ""
	}
	ip := sa.Address
	if strings.Contains(ip, ":") {
		ip = "[" + strings.ReplaceAll(ip, ":", "_") + "]"
	}
	return "listener." + ip + "_" + strconv.FormatUint(uint64(sa.PortValue), 10)
}

func compactStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
