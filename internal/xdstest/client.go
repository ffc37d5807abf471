// Package xdstest is a simulated Envoy for testing and benchmarking
// meshd's ADS server: it subscribes the way Envoy does (CDS and LDS as
// wildcards, then the EDS and RDS names those reference), ACKs or NACKs
// every response, and records what it holds. It speaks state-of-the-world
// ADS or delta ADS.
package xdstest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
)

// Client is one simulated Envoy.
type Client struct {
	// Node is the node it presents (id and user agent).
	Node *corev3.Node
	// Delta selects delta ADS instead of state of the world.
	Delta bool
	// Reject, if set, is called for every response; a non-nil error is
	// sent back as a NACK instead of an ACK.
	Reject func(typeURL string, resources []*anypb.Any) error

	mu        sync.Mutex
	held      map[string]map[string]*anypb.Any // type → name → resource
	versions  map[string]string                // type → last version accepted
	responses map[string]int                   // type → responses received
	nacks     int
	changed   chan struct{}
}

// Types Envoy subscribes to, wildcards first.
var wildcard = []string{resource.ClusterType, resource.ListenerType}

func (c *Client) init() {
	c.held = map[string]map[string]*anypb.Any{}
	c.versions = map[string]string{}
	c.responses = map[string]int{}
	c.changed = make(chan struct{})
}

// Run connects over cc and follows updates until ctx is cancelled or the
// stream fails; it returns the stream's error (nil after cancellation).
func (c *Client) Run(ctx context.Context, cc grpc.ClientConnInterface) error {
	c.mu.Lock()
	if c.held == nil {
		c.init()
	}
	c.mu.Unlock()
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(cc)
	var err error
	if c.Delta {
		err = c.runDelta(ctx, ads)
	} else {
		err = c.runSotW(ctx, ads)
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (c *Client) runSotW(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) error {
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("open ADS stream: %w", err)
	}
	subs := map[string][]string{}
	send := func(typ string, names []string, version, nonce string, detail *status.Status) error {
		err := st.Send(&discoveryv3.DiscoveryRequest{Node: c.Node, TypeUrl: typ, ResourceNames: names,
			VersionInfo: version, ResponseNonce: nonce, ErrorDetail: detail})
		return streamError(err, func() error { _, err := st.Recv(); return err })
	}
	for _, typ := range wildcard {
		if err := send(typ, nil, "", "", nil); err != nil {
			return err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		typ := resp.GetTypeUrl()
		var detail *status.Status
		if c.Reject != nil {
			if err := c.Reject(typ, resp.GetResources()); err != nil {
				detail = &status.Status{Code: 3, Message: err.Error()}
			}
		}
		c.mu.Lock()
		c.responses[typ]++
		version := c.versions[typ]
		if detail == nil {
			held := map[string]*anypb.Any{}
			for _, r := range resp.GetResources() {
				held[nameOf(typ, r)] = r
			}
			c.held[typ] = held
			c.versions[typ] = resp.GetVersionInfo()
			version = resp.GetVersionInfo()
		} else {
			c.nacks++
		}
		deps := c.dependencies(typ)
		c.notify()
		c.mu.Unlock()
		if err := send(typ, subs[typ], version, resp.GetNonce(), detail); err != nil {
			return err
		}
		for dt, names := range deps {
			if !slices.Equal(names, subs[dt]) {
				subs[dt] = names
				c.mu.Lock()
				v := c.versions[dt]
				c.mu.Unlock()
				if err := send(dt, names, v, "", nil); err != nil {
					return err
				}
			}
		}
	}
}

func (c *Client) runDelta(ctx context.Context, ads discoveryv3.AggregatedDiscoveryServiceClient) error {
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return fmt.Errorf("open delta ADS stream: %w", err)
	}
	subs := map[string][]string{}
	recvErr := func() error { _, err := st.Recv(); return err }
	for _, typ := range wildcard {
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: c.Node, TypeUrl: typ}); err != nil {
			return streamError(err, recvErr)
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		typ := resp.GetTypeUrl()
		var all []*anypb.Any
		for _, r := range resp.GetResources() {
			all = append(all, r.GetResource())
		}
		var detail *status.Status
		if c.Reject != nil {
			if err := c.Reject(typ, all); err != nil {
				detail = &status.Status{Code: 3, Message: err.Error()}
			}
		}
		c.mu.Lock()
		c.responses[typ]++
		if detail == nil {
			held := c.held[typ]
			if held == nil {
				held = map[string]*anypb.Any{}
				c.held[typ] = held
			}
			for _, r := range resp.GetResources() {
				held[r.GetName()] = r.GetResource()
			}
			for _, n := range resp.GetRemovedResources() {
				delete(held, n)
			}
			c.versions[typ] = resp.GetSystemVersionInfo()
		} else {
			c.nacks++
		}
		deps := c.dependencies(typ)
		c.notify()
		c.mu.Unlock()
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: resp.GetNonce(), ErrorDetail: detail}); err != nil {
			return streamError(err, recvErr)
		}
		for dt, names := range deps {
			old := subs[dt]
			if slices.Equal(names, old) {
				continue
			}
			subs[dt] = names
			req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: dt}
			for _, n := range names {
				if !slices.Contains(old, n) {
					req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
				}
			}
			for _, n := range old {
				if !slices.Contains(names, n) {
					req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
				}
			}
			if err := st.Send(req); err != nil {
				return streamError(err, recvErr)
			}
		}
	}
}

// streamError: a Send on a stream the server closed returns io.EOF; the
// server's status comes from Recv.
func streamError(err error, recv func() error) error {
	if errors.Is(err, io.EOF) {
		return recv()
	}
	return err
}

// dependencies returns the names Envoy would now subscribe to because of
// the held resources of typ: RDS names of listeners, EDS names of clusters.
// c.mu is held.
func (c *Client) dependencies(typ string) map[string][]string {
	var names []string
	var dep string
	switch typ {
	case resource.ListenerType:
		dep = resource.RouteType
		for _, a := range c.held[typ] {
			var l listenerv3.Listener
			if a.UnmarshalTo(&l) != nil {
				continue
			}
			chains := l.GetFilterChains()
			if l.GetDefaultFilterChain() != nil {
				chains = append(chains, l.GetDefaultFilterChain())
			}
			for _, fc := range chains {
				for _, f := range fc.GetFilters() {
					var h hcmv3.HttpConnectionManager
					if f.GetTypedConfig().UnmarshalTo(&h) == nil && h.GetRds() != nil {
						names = append(names, h.GetRds().GetRouteConfigName())
					}
				}
			}
			if al := l.GetApiListener().GetApiListener(); al != nil {
				var h hcmv3.HttpConnectionManager
				if al.UnmarshalTo(&h) == nil && h.GetRds() != nil {
					names = append(names, h.GetRds().GetRouteConfigName())
				}
			}
		}
	case resource.ClusterType:
		dep = resource.EndpointType
		for name, a := range c.held[typ] {
			var cl clusterv3.Cluster
			if a.UnmarshalTo(&cl) == nil && cl.GetType() == clusterv3.Cluster_EDS {
				n := cl.GetEdsClusterConfig().GetServiceName()
				if n == "" {
					n = name
				}
				names = append(names, n)
			}
		}
	default:
		return nil
	}
	sort.Strings(names)
	return map[string][]string{dep: slices.Compact(names)}
}

func (c *Client) notify() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func nameOf(typ string, a *anypb.Any) string {
	m, err := a.UnmarshalNew()
	if err != nil {
		return ""
	}
	if n, ok := m.(interface{ GetName() string }); ok {
		return n.GetName()
	}
	if n, ok := m.(interface{ GetClusterName() string }); ok {
		return n.GetClusterName()
	}
	return ""
}

// State is a copy of what the client holds.
type State struct {
	// Names of the resources held, by type.
	Names map[string][]string
	// Versions accepted, by type.
	Versions map[string]string
	// Responses received, by type.
	Responses map[string]int
	NACKs     int
}

// State returns what the client holds now.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := State{Names: map[string][]string{}, Versions: map[string]string{}, Responses: map[string]int{}, NACKs: c.nacks}
	for typ, held := range c.held {
		for n := range held {
			s.Names[typ] = append(s.Names[typ], n)
		}
		sort.Strings(s.Names[typ])
	}
	for k, v := range c.versions {
		s.Versions[k] = v
	}
	for k, v := range c.responses {
		s.Responses[k] = v
	}
	return s
}

// Resource returns a held resource, unmarshalled, or nil.
func (c *Client) Resource(typ, name string) *anypb.Any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[typ][name]
}

// ErrTimeout is returned by Wait when ctx ends first.
var ErrTimeout = errors.New("xdstest: condition not met")

// Wait blocks until cond holds for the client's state or ctx ends.
func (c *Client) Wait(ctx context.Context, cond func(State) bool) error {
	for {
		c.mu.Lock()
		if c.held == nil {
			c.init()
		}
		ch := c.changed
		c.mu.Unlock()
		if cond(c.State()) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrTimeout, ctx.Err())
		}
	}
}
