package translate

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
)

// memo shares what many nodes are served alike: the cluster of a target
// node listener reached through a virtual service, and the virtual host of
// a virtual service on a port. Translating a mesh then builds and hashes
// each once, not once per node that calls it. Shared messages are never
// modified after they are built.
type memo struct {
	mu      sync.Mutex
	entries map[string]*memoEntry
	// sums of shared messages (nil until hashed).
	sums map[proto.Message]*[32]byte
}

// memoEntry is the output of one shared build: resources added, warnings.
type memoEntry struct {
	res      [4][]types.Resource
	warnings []string
	msg      proto.Message
}

// entry returns key's entry, making it with build the first time key is
// seen in this translator; the messages it holds are marked shared.
func (m *memo) entry(key string, build func() *memoEntry) *memoEntry {
	m.mu.Lock()
	e, ok := m.entries[key]
	m.mu.Unlock()
	if ok {
		return e
	}
	e = build() // outside the lock: other nodes go on meanwhile
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, raced := m.entries[key]; raced {
		return prev
	}
	m.entries[key] = e
	for _, rs := range e.res {
		for _, r := range rs {
			m.sums[r] = nil
		}
	}
	if e.msg != nil {
		m.sums[e.msg] = nil
	}
	return e
}

// shared adds the resources build adds, building them only the first time
// key is seen in this translator.
func (b *builder) shared(key string, build func(sub *builder)) {
	e := b.t.memo.entry(key, func() *memoEntry {
		sub := &builder{t: b.t, m: b.m, node: b.node, flavor: b.flavor}
		build(sub)
		return &memoEntry{res: sub.res, warnings: sub.warnings}
	})
	for i := range e.res {
		b.res[i] = append(b.res[i], e.res[i]...)
	}
	b.warnings = append(b.warnings, e.warnings...)
}

// sharedMsg returns the message build makes for key, building it once
// per translator.
func (b *builder) sharedMsg(key string, build func() proto.Message) proto.Message {
	return b.t.memo.entry(key, func() *memoEntry { return &memoEntry{msg: build()} }).msg
}

// sharedVirtualHost returns the virtual host of a service on a port,
// shared between nodes whose clusters for it have the same names.
func (b *builder) sharedVirtualHost(s service, sp servicePort, domains []string) *routev3.VirtualHost {
	var key strings.Builder
	fmt.Fprintf(&key, "vh|%d|%s|%d|%q", b.flavor, s.vs.Name, sp.Port.Port, domains)
	for _, r := range sp.routes {
		key.WriteString("|" + r.name)
		for _, t := range r.targets {
			key.WriteString(":" + t.up.name)
		}
	}
	return b.sharedMsg(key.String(), func() proto.Message { return b.virtualHost(s, sp, domains) }).(*routev3.VirtualHost)
}

// sharedFilter returns a network filter shared by nodes with the same
// access log.
func (b *builder) sharedFilter(key string, build func() *listenerv3.Filter) *listenerv3.Filter {
	return b.sharedMsg("filter|"+b.logKey+"|"+key, func() proto.Message { return build() }).(*listenerv3.Filter)
}

// sum hashes a resource's deterministic encoding, remembering the hashes
// of shared messages. A route configuration is hashed from its own fields
// and its virtual hosts' hashes, so shared virtual hosts are encoded once.
// Only messages not yet published may be passed (a route configuration is
// briefly modified).
func (t *Translator) sum(r proto.Message) ([32]byte, error) {
	t.memo.mu.Lock()
	s, shared := t.memo.sums[r]
	t.memo.mu.Unlock()
	if s != nil {
		return *s, nil
	}
	var out [32]byte
	if rc, isRC := r.(*routev3.RouteConfiguration); isRC && len(rc.VirtualHosts) > 0 {
		vhs := rc.VirtualHosts
		rc.VirtualHosts = nil
		raw, err := marshal.Marshal(rc)
		rc.VirtualHosts = vhs
		if err != nil {
			return out, err
		}
		h := sha256.New()
		h.Write(raw)
		for _, vh := range vhs {
			vs, err := t.sum(vh)
			if err != nil {
				return out, err
			}
			h.Write(vs[:])
		}
		copy(out[:], h.Sum(nil))
		return out, nil
	}
	raw, err := marshal.Marshal(r)
	if err != nil {
		return out, err
	}
	out = sha256.Sum256(raw)
	if shared {
		t.memo.mu.Lock()
		t.memo.sums[r] = &out
		t.memo.mu.Unlock()
	}
	return out, nil
}
