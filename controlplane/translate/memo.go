package translate

import (
	"crypto/sha256"
	"slices"
	"sync"
	"unicode/utf8"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/meshd/meshd/internal/appmesh/model"
)

// memo shares what many nodes are served alike: the cluster of a target
// node listener reached through a virtual service, and the virtual host of
// a virtual service on a port. Translating a mesh then builds and hashes
// each once, not once per node that calls it. Shared messages are never
// modified after they are built.
type memo struct {
	mu      sync.Mutex
	entries map[string]*memoEntry
	// sums of shared messages (virtual hosts, filters), computed before
	// they are published; shared resources carry theirs (item.d).
	sums map[proto.Message]*digest
	// services are virtual services as every node reaches them.
	services map[*model.VirtualService]*service
}

// digest is a message's hash, or why it could not be hashed.
type digest struct {
	s   [32]byte
	err error
}

// memoEntry is the output of one shared build: resources added, warnings.
type memoEntry struct {
	res      [4][]item
	warnings []string
	msg      proto.Message
}

// entry returns key's entry, making it with build the first time key is
// seen in this translator; the messages it holds are hashed while still
// private, then marked shared. key may be reused once entry returns.
func (m *memo) entry(key []byte, build func() *memoEntry) *memoEntry {
	m.mu.Lock()
	e, ok := m.entries[string(key)]
	m.mu.Unlock()
	if ok {
		return e
	}
	k := string(key) // build may reuse the builder's key
	e = build()      // outside the lock: other nodes go on meanwhile
	// Hash before publishing: hashing may briefly modify the messages.
	for i := range e.res {
		if len(e.res[i]) == 0 {
			continue
		}
		ds := make([]digest, len(e.res[i]))
		for j := range e.res[i] {
			ds[j].s, ds[j].err = m.hash(e.res[i][j].r)
			e.res[i][j].d = &ds[j]
		}
	}
	var msgSum *digest
	if e.msg != nil {
		msgSum = &digest{}
		msgSum.s, msgSum.err = m.hash(e.msg)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if prev, raced := m.entries[k]; raced {
		return prev
	}
	m.entries[k] = e
	if e.msg != nil {
		m.sums[e.msg] = msgSum
	}
	return e
}

// shared adds the resources build adds, building them only the first time
// key is seen in this translator.
func (b *builder) shared(key []byte, build func(sub *builder)) {
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
func (b *builder) sharedMsg(key []byte, build func() proto.Message) proto.Message {
	return b.t.memo.entry(key, func() *memoEntry { return &memoEntry{msg: build()} }).msg
}

// sharedVirtualHost returns the virtual host of a service on a port,
// shared between nodes whose clusters for it have the same names.
func (b *builder) sharedVirtualHost(s service, sp servicePort, domains []string) *routev3.VirtualHost {
	n := 16 + len(s.vs.Name)
	for _, d := range domains {
		n += len(d) + 1
	}
	for _, r := range sp.routes {
		n += len(r.name) + 1
		for _, t := range r.targets {
			n += len(t.up.name) + 1
		}
	}
	key := slices.Grow(b.key[:0], n)
	key = append(key, "vh|"...)
	key = appendKeyInt(key, int64(b.flavor))
	key = appendKeyString(key, s.vs.Name)
	key = appendKeyInt(key, sp.Port.Port)
	key = protowire.AppendVarint(key, uint64(len(domains)))
	for _, d := range domains {
		key = appendKeyString(key, d)
	}
	for _, r := range sp.routes {
		key = append(key, '|')
		key = appendKeyString(key, r.name)
		key = protowire.AppendVarint(key, uint64(len(r.targets)))
		for _, t := range r.targets {
			key = appendKeyString(key, t.up.name)
		}
	}
	b.key = key
	return b.sharedMsg(key, func() proto.Message { return b.virtualHost(s, sp, domains) }).(*routev3.VirtualHost)
}

// appendKeyString appends s to a memo key, length-prefixed so that keys
// of different parts cannot run into each other.
func appendKeyString(key []byte, s string) []byte {
	return protowire.AppendString(key, s)
}

func appendKeyInt(key []byte, v int64) []byte {
	return protowire.AppendVarint(key, uint64(v))
}

func appendKeyDuration(key []byte, d *durationpb.Duration) []byte {
	if d == nil {
		return append(key, 0)
	}
	key = append(key, 1)
	key = appendKeyInt(key, d.Seconds)
	return appendKeyInt(key, int64(d.Nanos))
}

// sharedFilter returns a network filter shared by nodes with the same
// access log.
func (b *builder) sharedFilter(key string, build func() *listenerv3.Filter) *listenerv3.Filter {
	k := append(b.key[:0], "filter|"...)
	k = appendKeyString(k, b.logKey)
	k = append(k, key...)
	b.key = k
	return b.sharedMsg(k, func() proto.Message { return build() }).(*listenerv3.Filter)
}

// hashBufs are reusable encoding buffers for hash.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// hash hashes an unpublished message's content. Most of it is the
// deterministic encoding; what is costly to encode is hashed apart:
//
//   - the metadata of clusters and routes (maps of google.protobuf.Struct,
//     whose deterministic encoding sorts through reflection) is encoded
//     here, keys sorted;
//   - a route configuration's virtual hosts and a listener's network
//     filters, which are mostly shared, by their sums.
//
// The parts are encoded first, each self-delimiting, with their counts,
// then the message with those fields cleared, so the encoding of
// different contents differs. The fields are restored before returning.
func (m *memo) hash(r proto.Message) ([32]byte, error) {
	bp := hashBufs.Get().(*[]byte)
	buf, err := m.encode((*bp)[:0], r)
	var out [32]byte
	if err == nil {
		out = sha256.Sum256(buf)
	}
	if cap(buf) <= 1<<20 {
		*bp = buf[:0]
		hashBufs.Put(bp)
	}
	return out, err
}

func (m *memo) encode(buf []byte, r proto.Message) ([]byte, error) {
	switch r := r.(type) {
	case *clusterv3.Cluster:
		md := r.Metadata
		buf, err := appendMetadata(buf, md)
		if err != nil {
			return buf, err
		}
		r.Metadata = nil
		buf, err = marshal.MarshalAppend(buf, r)
		r.Metadata = md
		return buf, err
	case *routev3.VirtualHost:
		return appendVirtualHost(buf, r)
	case *routev3.RouteConfiguration:
		vhs := r.VirtualHosts
		buf = protowire.AppendVarint(buf, uint64(len(vhs)))
		for _, vh := range vhs {
			s, err := m.sumOf(vh)
			if err != nil {
				return buf, err
			}
			buf = append(buf, s[:]...)
		}
		r.VirtualHosts = nil
		buf, err := marshal.MarshalAppend(buf, r)
		r.VirtualHosts = vhs
		return buf, err
	case *listenerv3.Listener:
		return m.appendListener(buf, r)
	}
	return marshal.MarshalAppend(buf, r)
}

// sumOf is sum for messages inside an unpublished one: a shared message's
// sum, else its hash now.
func (m *memo) sumOf(r proto.Message) ([32]byte, error) {
	m.mu.Lock()
	s := m.sums[r]
	m.mu.Unlock()
	if s != nil {
		return s.s, s.err
	}
	return m.hash(r)
}

// appendVirtualHost encodes a virtual host with its routes' metadata
// apart.
func appendVirtualHost(buf []byte, vh *routev3.VirtualHost) ([]byte, error) {
	buf = protowire.AppendVarint(buf, uint64(len(vh.Routes)))
	for _, r := range vh.Routes {
		var err error
		if buf, err = appendMetadata(buf, r.GetMetadata()); err != nil {
			return buf, err
		}
	}
	var stack [16]*corev3.Metadata
	saved := stack[:0]
	for _, r := range vh.Routes {
		if r == nil {
			saved = append(saved, nil)
			continue
		}
		saved = append(saved, r.Metadata)
		r.Metadata = nil
	}
	buf, err := marshal.MarshalAppend(buf, vh)
	// In reverse, so a route listed twice gets its metadata back.
	for i := len(vh.Routes) - 1; i >= 0; i-- {
		if r := vh.Routes[i]; r != nil {
			r.Metadata = saved[i]
		}
	}
	return buf, err
}

// appendListener encodes a listener with its filter chains' network
// filters by their sums (shared filters are hashed once per translator).
func (m *memo) appendListener(buf []byte, ln *listenerv3.Listener) ([]byte, error) {
	chains := ln.FilterChains
	if ln.DefaultFilterChain != nil {
		chains = append(chains[:len(chains):len(chains)], ln.DefaultFilterChain)
	}
	buf = protowire.AppendVarint(buf, uint64(len(ln.FilterChains)))
	if ln.DefaultFilterChain != nil {
		buf = append(buf, 1)
	} else {
		buf = append(buf, 0)
	}
	for _, fc := range chains {
		buf = protowire.AppendVarint(buf, uint64(len(fc.GetFilters())))
		for _, f := range fc.GetFilters() {
			if f == nil {
				// Encoded as an empty message.
				buf = append(buf, 0)
				continue
			}
			s, err := m.sumOf(f)
			if err != nil {
				return buf, err
			}
			buf = append(buf, 1)
			buf = append(buf, s[:]...)
		}
	}
	var stack [8][]*listenerv3.Filter
	saved := stack[:0]
	for _, fc := range chains {
		if fc == nil {
			saved = append(saved, nil)
			continue
		}
		saved = append(saved, fc.Filters)
		fc.Filters = nil
	}
	buf, err := marshal.MarshalAppend(buf, ln)
	for i := len(chains) - 1; i >= 0; i-- {
		if fc := chains[i]; fc != nil {
			fc.Filters = saved[i]
		}
	}
	return buf, err
}

// appendMetadata encodes metadata: absent, string-valued filter metadata
// (what this package makes) with sorted keys, or else its deterministic
// encoding.
func appendMetadata(buf []byte, md *corev3.Metadata) ([]byte, error) {
	if md == nil {
		return append(buf, 0), nil
	}
	if out, ok := appendSimpleMetadata(append(buf, 1), md); ok {
		return out, nil
	}
	raw, err := marshal.Marshal(md)
	return protowire.AppendBytes(append(buf, 2), raw), err
}

// appendSimpleMetadata encodes md if it is only filter metadata of valid
// UTF-8 string values (which encode without error), without unknown
// fields; ok is false otherwise.
func appendSimpleMetadata(buf []byte, md *corev3.Metadata) (_ []byte, ok bool) {
	if len(md.TypedFilterMetadata) > 0 || len(md.ProtoReflect().GetUnknown()) > 0 {
		return buf, false
	}
	var nsBuf [2]keyed[*structpb.Struct]
	nss := nsBuf[:0]
	for k, s := range md.FilterMetadata {
		nss = insertSorted(nss, keyed[*structpb.Struct]{k, s})
	}
	buf = protowire.AppendVarint(buf, uint64(len(nss)))
	for _, ns := range nss {
		if ns.v == nil || !utf8.ValidString(ns.k) || len(ns.v.ProtoReflect().GetUnknown()) > 0 {
			return buf, false
		}
		buf = protowire.AppendString(buf, ns.k)
		var fsBuf [8]keyed[*structpb.Value]
		fs := fsBuf[:0]
		for k, v := range ns.v.Fields {
			fs = insertSorted(fs, keyed[*structpb.Value]{k, v})
		}
		buf = protowire.AppendVarint(buf, uint64(len(fs)))
		for _, f := range fs {
			sv, isString := f.v.GetKind().(*structpb.Value_StringValue)
			if !isString || !utf8.ValidString(f.k) || !utf8.ValidString(sv.StringValue) || len(f.v.ProtoReflect().GetUnknown()) > 0 {
				return buf, false
			}
			buf = protowire.AppendString(buf, f.k)
			buf = protowire.AppendString(buf, sv.StringValue)
		}
	}
	return buf, true
}

// keyed is a map entry.
type keyed[V any] struct {
	k string
	v V
}

// insertSorted adds e to list, sorted by key (the maps are small).
func insertSorted[V any](list []keyed[V], e keyed[V]) []keyed[V] {
	list = append(list, e)
	for i := len(list) - 1; i > 0 && list[i].k < list[i-1].k; i-- {
		list[i], list[i-1] = list[i-1], list[i]
	}
	return list
}
