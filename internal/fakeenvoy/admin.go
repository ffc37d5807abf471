package fakeenvoy

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

type adminHandler struct {
	path, help string
	post       bool // mutates server state: POST only
	fn         func(e *Envoy, q map[string]string, order []string) (int, string, []byte)
}

const (
	ctText = "text/plain; charset=UTF-8"
	ctJSON = "application/json"
)

var adminHandlers []adminHandler

func init() {
	adminHandlers = []adminHandler{
		{"/", "Admin home page", false, (*Envoy).handleHelp},
		{"/config_dump", "dump current Envoy configs (experimental)", false, (*Envoy).handleConfigDump},
		{"/drain_listeners", "drain listeners", true, (*Envoy).handleDrain},
		{"/healthcheck/fail", "cause the server to fail health checks", true, (*Envoy).handleHCFail},
		{"/healthcheck/ok", "cause the server to pass health checks", true, (*Envoy).handleHCOK},
		{"/help", "print out list of admin commands", false, (*Envoy).handleHelp},
		{"/listeners", "print listener info", false, (*Envoy).handleListeners},
		{"/logging", "query/change logging levels", true, (*Envoy).handleLogging},
		{"/quitquitquit", "exit the server", true, (*Envoy).handleQuit},
		{"/ready", "print server state, return 200 if LIVE, otherwise return 503", false, (*Envoy).handleReady},
		{"/reset_counters", "reset all counters to zero", true, (*Envoy).handleResetCounters},
		{"/server_info", "print server version/status information", false, (*Envoy).handleServerInfo},
		{"/stats", "print server stats", false, (*Envoy).handleStats},
		{"/stats/prometheus", "print server stats in prometheus format", false, (*Envoy).handlePrometheus},
	}
}

// parseQuery is Envoy's parseAndDecodeQueryString: key[=value] pairs split
// at '&', the first occurrence of a key wins.
func parseQuery(raw string) (map[string]string, []string) {
	q := map[string]string{}
	var order []string
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if dv, err := url.QueryUnescape(v); err == nil {
			v = dv
		}
		if _, ok := q[k]; !ok {
			q[k] = v
			order = append(order, k)
		}
	}
	return q, order
}

// ServeHTTP serves Envoy's admin endpoints.
func (e *Envoy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	s := e.st
	s.counter("http.admin.downstream_rq_total", "http:admin").add(1)
	s.counter("http.admin.downstream_rq_http1_total", "http:admin").add(1)
	s.gauge("http.admin.downstream_rq_active", "http:admin", 0, false).add(1)
	started := e.now()
	e.mu.Unlock()

	code, ct, body := e.dispatch(r)

	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache, max-age=0")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)

	e.mu.Lock()
	s = e.st
	s.gauge("http.admin.downstream_rq_active", "http:admin", 0, false).sub(1)
	s.counter("http.admin.downstream_rq_completed", "http:admin").add(1)
	s.counter(fmt.Sprintf("http.admin.downstream_rq_%dxx", code/100), "http:admin").add(1)
	s.histogram("http.admin.downstream_rq_time", "http:admin").hist.record(float64(e.now().Sub(started).Milliseconds()))
	e.calls = append(e.calls, Call{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Code: code, At: started})
	e.mu.Unlock()
}

func (e *Envoy) dispatch(r *http.Request) (int, string, []byte) {
	for _, h := range adminHandlers {
		if r.URL.Path != h.path {
			continue
		}
		if h.post && r.Method != http.MethodPost {
			return http.StatusMethodNotAllowed, ctText, []byte(fmt.Sprintf("Method %s not allowed, POST required.", r.Method))
		}
		q, order := parseQuery(r.URL.RawQuery)
		return h.fn(e, q, order)
	}
	return http.StatusNotFound, ctText, []byte("invalid path. " + helpText())
}

func helpText() string {
	hs := append([]adminHandler(nil), adminHandlers...)
	sort.Slice(hs, func(i, j int) bool { return hs[i].path < hs[j].path })
	var b strings.Builder
	b.WriteString("admin commands are:\n")
	for _, h := range hs {
		post := ""
		if h.post {
			post = " (POST)"
		}
		fmt.Fprintf(&b, "  %s%s: %s\n", h.path, post, h.help)
	}
	return b.String()
}

func (e *Envoy) handleHelp(map[string]string, []string) (int, string, []byte) {
	return 200, ctText, []byte(helpText())
}

func (e *Envoy) handleStats(q map[string]string, _ []string) (int, string, []byte) {
	sq, err := ParseStatsQuery(q)
	if err != nil {
		return 400, ctText, []byte(err.Error())
	}
	body := e.Stats(sq)
	if sq.Format == JSON {
		return 200, ctJSON, body
	}
	return 200, ctText, body
}

func (e *Envoy) handlePrometheus(q map[string]string, _ []string) (int, string, []byte) {
	delete(q, "format")
	delete(q, "histogram_buckets")
	sq, err := ParseStatsQuery(q)
	if err != nil {
		return 400, ctText, []byte(err.Error())
	}
	sq.Format = Prometheus
	return 200, ctText, e.Stats(sq)
}

func (e *Envoy) handleConfigDump(q map[string]string, _ []string) (int, string, []byte) {
	_, eds := q["include_eds"]
	body, err := e.ConfigDump(ConfigDumpQuery{Resource: q["resource"], Mask: q["mask"], NameRegex: q["name_regex"], IncludeEDS: eds})
	if err != nil {
		if ce, ok := err.(*ConfigDumpError); ok {
			return ce.Code, ctText, []byte(ce.Msg)
		}
		return 500, ctText, []byte(err.Error())
	}
	return 200, ctJSON, body
}

func (e *Envoy) handleReady(map[string]string, []string) (int, string, []byte) {
	s := e.State()
	code := 200
	if s != Live {
		code = 503
	}
	return code, ctText, []byte(s.String() + "\n")
}

func (e *Envoy) handleServerInfo(map[string]string, []string) (int, string, []byte) {
	e.mu.Lock()
	up := e.now().Sub(e.start).Truncate(time.Second)
	node := e.opts.Node
	if node == nil {
		node = &corev3.Node{Id: e.opts.NodeID, Cluster: e.opts.Cluster}
	}
	node = proto.Clone(node).(*corev3.Node)
	node.UserAgentName = "envoy"
	node.UserAgentVersionType = &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: &corev3.BuildVersion{
		Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 34},
	}}
	cl := e.opts.CommandLine
	if cl == nil {
		cl = &adminv3.CommandLineOptions{Concurrency: uint32(e.opts.Concurrency), LogLevel: "info", Mode: adminv3.CommandLineOptions_Serve,
			ServiceNode: e.opts.NodeID, ServiceCluster: e.opts.Cluster, LogFormat: "[%Y-%m-%d %T.%e][%t][%l][%n] %v",
			DrainTime: durationpb.New(600 * time.Second), ParentShutdownTime: durationpb.New(900 * time.Second), FileFlushInterval: durationpb.New(10 * time.Second)}
	}
	si := &adminv3.ServerInfo{
		Version:            Version,
		State:              adminv3.ServerInfo_State(e.state),
		UptimeCurrentEpoch: durationpb.New(up),
		UptimeAllEpochs:    durationpb.New(up),
		HotRestartVersion:  "disabled",
		CommandLineOptions: cl,
		Node:               node,
	}
	e.mu.Unlock()
	body, err := marshalPretty(si, true)
	if err != nil {
		return 500, ctText, []byte(err.Error())
	}
	return 200, ctJSON, body
}

func (e *Envoy) handleDrain(q map[string]string, _ []string) (int, string, []byte) {
	_, inbound := q["inboundonly"]
	_, graceful := q["graceful"]
	_, skip := q["skip_exit"]
	if skip && !graceful {
		return 400, ctText, []byte("skip_exit requires graceful\n")
	}
	d := DrainCall{InboundOnly: inbound, Graceful: graceful, SkipExit: skip}
	e.mu.Lock()
	e.drains = append(e.drains, d)
	e.setStateLocked(Draining)
	draining := uint64(0)
	for _, l := range e.listeners {
		if !inbound || l.l.GetTrafficDirection() == corev3.TrafficDirection_INBOUND {
			draining++
		}
	}
	e.st.gauge("listener_manager.total_listeners_draining", "", 0, false).set(draining)
	e.st.counter("listener_manager.listener_stopped", "").add(draining)
	f := e.onDrain
	e.mu.Unlock()
	if f != nil {
		f(d)
	}
	return 200, ctText, []byte("OK\n")
}

func (e *Envoy) handleHCFail(map[string]string, []string) (int, string, []byte) {
	e.mu.Lock()
	e.hcFailed = true
	e.mu.Unlock()
	return 200, ctText, []byte("OK\n")
}

func (e *Envoy) handleHCOK(map[string]string, []string) (int, string, []byte) {
	e.mu.Lock()
	e.hcFailed = false
	e.mu.Unlock()
	return 200, ctText, []byte("OK\n")
}

func (e *Envoy) handleQuit(map[string]string, []string) (int, string, []byte) {
	e.quitOnce.Do(func() { close(e.quit) })
	return 200, ctText, []byte("OK\n")
}

func (e *Envoy) handleResetCounters(map[string]string, []string) (int, string, []byte) {
	e.ResetCounters()
	return 200, ctText, []byte("OK\n")
}

func (e *Envoy) handleListeners(q map[string]string, _ []string) (int, string, []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for n := range e.listeners {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		sa := e.listeners[n].l.GetAddress().GetSocketAddress()
		addr := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
		if p := e.listeners[n].l.GetAddress().GetPipe(); p != nil {
			addr = p.GetPath()
		}
		fmt.Fprintf(&b, "%s::%s\n", n, addr)
	}
	return 200, ctText, []byte(b.String())
}
