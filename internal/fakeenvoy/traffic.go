package fakeenvoy

import (
	"fmt"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"strings"
	"time"
)

// Request records one request through cluster (its name as configured) with
// response code, upstream latency and bytes received from / sent to the
// upstream, as Envoy's router would: upstream_rq_total, _completed, the
// response code stats (created on first use, as Envoy does, with their
// "external." twins), upstream_rq_time, byte counters; the first request
// also opens a pooled connection (upstream_cx_total, upstream_cx_active).
// With Options.AppMeshExtension the App Mesh metrics follow too.
func (e *Envoy) Request(cluster string, code int, latency time.Duration, rxBytes, txBytes uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st
	statName, owner := cluster, "cluster:"+cluster
	var md map[string]string
	if c := e.clusters[cluster]; c != nil {
		statName = clusterStatName(c.c)
		md = appMeshMetadata(c.c.GetMetadata())
	}
	root := "cluster." + statName + "."
	ms := float64(latency.Milliseconds())
	if s.stats[root+"upstream_cx_active"] == nil || s.stats[root+"upstream_cx_active"].value == 0 {
		s.counter(root+"upstream_cx_total", owner).add(1)
		s.counter(root+"upstream_cx_http2_total", owner).add(1)
		s.gauge(root+"upstream_cx_active", owner, 0, false).add(1)
		s.histogram(root+"upstream_cx_connect_ms", owner).hist.record(1)
	}
	s.counter(root+"upstream_rq_total", owner).add(1)
	s.counter(root+"upstream_rq_completed", owner).add(1)
	s.counter(root+"upstream_cx_rx_bytes_total", owner).add(rxBytes)
	s.counter(root+"upstream_cx_tx_bytes_total", owner).add(txBytes)
	for _, p := range []string{"", "external."} {
		s.get(root+p+"upstream_rq_"+fmt.Sprint(code), Counter, owner, true).add(1)
		s.get(root+p+"upstream_rq_"+fmt.Sprint(code/100)+"xx", Counter, owner, true).add(1)
		if p != "" {
			s.get(root+p+"upstream_rq_completed", Counter, owner, true).add(1)
		}
		s.get(root+p+"upstream_rq_time", Histogram, owner, true).hist.record(ms)
	}
	if !e.opts.AppMeshExtension || md == nil {
		return
	}
	switch md["Direction"] {
	case "egress":
		t := "appmesh.TargetVirtualNode." + md["TargetVirtualNode"] + ".TargetVirtualService." + md["TargetVirtualService"] + "."
		s.get(t+"RequestCountPerTarget", Counter, owner, true).add(1)
		s.get(t+"TargetProcessedBytes", Counter, owner, true).add(rxBytes + txBytes)
		s.get(t+"TargetResponseTime", Histogram, owner, true).hist.record(ms)
		s.get(t+"HTTPCode_Target_"+fmt.Sprint(code/100)+"XX_Count", Counter, owner, true).add(1)
	case "ingress":
		s.counter("appmesh.RequestCount", "").add(1)
		if strings.HasPrefix(md["Protocol"], "grpc") {
			s.counter("appmesh.GrpcRequestCount", "").add(1)
		}
		s.counter("appmesh.ProcessedBytes", "").add(rxBytes + txBytes)
	}
}

// Inbound records one request received by a listener (its stat root, e.g.
// "0.0.0.0_15000", see ListenerStatRoot) and handled by the HTTP connection
// manager or TCP proxy with stat prefix prefix. For an HTTP connection
// manager code is the response code; for a TCP proxy it is ignored.
func (e *Envoy) Inbound(listenerStatRoot, prefix string, code int, rxBytes, txBytes uint64) {
	e.InboundTimed(listenerStatRoot, prefix, code, 0, rxBytes, txBytes)
}

// InboundTimed is Inbound with the request's duration (downstream_rq_time).
func (e *Envoy) InboundTimed(listenerStatRoot, prefix string, code int, latency time.Duration, rxBytes, txBytes uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st
	lroot := "listener." + listenerStatRoot + "."
	lowner := "listener:" + listenerStatRoot
	if st := s.stats[lroot+"downstream_cx_active"]; st == nil || st.value == 0 {
		s.counter(lroot+"downstream_cx_total", lowner).add(1)
		s.gauge(lroot+"downstream_cx_active", lowner, 0, false).add(1)
	}
	if e.isTCPPrefix(prefix) {
		root := "tcp." + prefix + "."
		owner := "tcp:" + prefix
		s.counter(root+"downstream_cx_total", owner).add(1)
		s.counter(root+"downstream_cx_rx_bytes_total", owner).add(rxBytes)
		s.counter(root+"downstream_cx_tx_bytes_total", owner).add(txBytes)
		return
	}
	root := "http." + prefix + "."
	owner := "http:" + prefix
	if st := s.stats[root+"downstream_cx_active"]; st == nil || st.value == 0 {
		s.counter(root+"downstream_cx_total", owner).add(1)
		s.counter(root+"downstream_cx_http1_total", owner).add(1)
		s.gauge(root+"downstream_cx_active", owner, 0, false).add(1)
		s.gauge(root+"downstream_cx_http1_active", owner, 0, false).add(1)
	}
	s.counter(root+"downstream_rq_total", owner).add(1)
	s.counter(root+"downstream_rq_http1_total", owner).add(1)
	s.counter(root+"downstream_rq_completed", owner).add(1)
	s.counter(root+"rq_total", owner).add(1)
	s.counter(root+"downstream_rq_"+fmt.Sprint(code/100)+"xx", owner).add(1)
	s.counter(root+"downstream_cx_rx_bytes_total", owner).add(rxBytes)
	s.counter(root+"downstream_cx_tx_bytes_total", owner).add(txBytes)
	s.histogram(root+"downstream_rq_time", owner).hist.record(float64(latency.Milliseconds()))
	s.counter(lroot+"http."+prefix+".downstream_rq_completed", lowner).add(1)
	s.counter(lroot+"http."+prefix+".downstream_rq_"+fmt.Sprint(code/100)+"xx", lowner).add(1)
}

func (e *Envoy) isTCPPrefix(p string) bool {
	for _, l := range e.listeners {
		for _, t := range l.tcp {
			if t == p {
				return true
			}
		}
	}
	for _, t := range e.opts.TCPPrefixes {
		if t == p {
			return true
		}
	}
	return false
}

// Connect opens a connection: target is a cluster name (upstream_cx_*), a
// listener stat root such as "listener.0.0.0.0_15000", or "http.<prefix>" /
// "tcp.<prefix>" (downstream_cx_*).
func (e *Envoy) Connect(target string) { e.connection(target, true) }

// Disconnect closes a connection opened by Connect.
func (e *Envoy) Disconnect(target string) { e.connection(target, false) }

func (e *Envoy) connection(target string, open bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.st
	var root, owner, kind string
	switch {
	case strings.HasPrefix(target, "listener."):
		root, owner, kind = target+".", "listener:"+strings.TrimPrefix(target, "listener."), "downstream"
	case strings.HasPrefix(target, "http."):
		root, owner, kind = target+".", "http:"+strings.TrimPrefix(target, "http."), "downstream"
	case strings.HasPrefix(target, "tcp."):
		root, owner, kind = target+".", "tcp:"+strings.TrimPrefix(target, "tcp."), "downstream"
	default:
		name := target
		if c := e.clusters[target]; c != nil {
			name = clusterStatName(c.c)
		}
		root, owner, kind = "cluster."+name+".", "cluster:"+target, "upstream"
	}
	if open {
		s.counter(root+kind+"_cx_total", owner).add(1)
		if kind == "downstream" && !strings.HasPrefix(target, "tcp.") {
			s.gauge(root+kind+"_cx_active", owner, 0, false).add(1)
		} else if kind == "upstream" {
			s.gauge(root+kind+"_cx_active", owner, 0, false).add(1)
		}
		if e.opts.AppMeshExtension && kind == "downstream" && strings.HasPrefix(target, "listener.") {
			s.counter("appmesh.NewConnectionCount", "").add(1)
			s.gauge("appmesh.ActiveConnectionCount", "", 0, false).add(1)
		}
		return
	}
	if st := s.stats[root+kind+"_cx_active"]; st != nil {
		st.sub(1)
	}
	s.counter(root+kind+"_cx_destroy", owner).add(1)
	if kind == "upstream" {
		s.counter(root+"upstream_cx_destroy_local", owner).add(1)
		s.histogram(root+"upstream_cx_length_ms", owner).hist.record(1000)
	} else if !strings.HasPrefix(target, "tcp.") {
		s.histogram(root+"downstream_cx_length_ms", owner).hist.record(1000)
	}
	if e.opts.AppMeshExtension && kind == "downstream" && strings.HasPrefix(target, "listener.") {
		if st := s.stats["appmesh.ActiveConnectionCount"]; st != nil {
			st.sub(1)
		}
	}
}

// Add adds delta to a counter, creating it if needed.
func (e *Envoy) Add(name string, delta uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.get(name, Counter, e.ownerOf(name), true).add(delta)
}

// SetGauge sets a gauge, creating it if needed.
func (e *Envoy) SetGauge(name string, v uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.get(name, Gauge, e.ownerOf(name), true).set(v)
}

// SetText sets a text readout, creating it if needed.
func (e *Envoy) SetText(name, v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st.get(name, TextReadout, e.ownerOf(name), true)
	st.text, st.used = v, true
}

// Record records a value in a histogram, creating it if needed.
func (e *Envoy) Record(name string, v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st.get(name, Histogram, e.ownerOf(name), true)
	if st.hist != nil {
		st.hist.record(v)
	}
}

// ownerOf guesses the resource a stat created by Add etc. belongs to, so it
// goes away with it.
func (e *Envoy) ownerOf(name string) string {
	if r, ok := strings.CutPrefix(name, "cluster."); ok {
		for n, c := range e.clusters {
			if strings.HasPrefix(r, clusterStatName(c.c)+".") {
				return "cluster:" + n
			}
		}
	}
	if r, ok := strings.CutPrefix(name, "listener."); ok {
		for _, l := range e.listeners {
			if strings.HasPrefix(r, l.root+".") {
				return "listener:" + l.root
			}
		}
	}
	return ""
}

// StatValue returns a counter's or gauge's value.
func (e *Envoy) StatValue(name string) (uint64, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st.stats[name]
	if st == nil || (st.kind != Counter && st.kind != Gauge) {
		return 0, false
	}
	return st.value, true
}

// StatNames returns the names of the stats of kind, sorted.
func (e *Envoy) StatNames(kind Kind) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, st := range e.st.sorted(kind) {
		out = append(out, st.name)
	}
	return out
}

// StatTags returns a stat's tags and tag-extracted name.
func (e *Envoy) StatTags(name string) ([]Tag, string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.st.stats[name]
	if st == nil {
		return nil, "", false
	}
	return append([]Tag(nil), st.tags...), st.extracted, true
}

// appMeshMetadata returns the string fields of filter_metadata["aws.appmesh"].
func appMeshMetadata(md *corev3.Metadata) map[string]string {
	s := md.GetFilterMetadata()["aws.appmesh"]
	if s == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range s.GetFields() {
		out[k] = v.GetStringValue()
	}
	return out
}

// AppMeshMetadata returns a cluster's filter_metadata["aws.appmesh"] string
// fields (Direction, Mesh, TargetVirtualNode, …), or nil.
func AppMeshMetadata(c *clusterv3.Cluster) map[string]string {
	return appMeshMetadata(c.GetMetadata())
}
