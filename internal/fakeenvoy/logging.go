package fakeenvoy

import (
	"fmt"
	"strings"
)

type logger struct{ name, level string }

// levels are spdlog's level names, in order.
var levels = []string{"trace", "debug", "info", "warning", "error", "critical", "off"}

func validLevel(l string) bool {
	for _, x := range levels {
		if x == l {
			return true
		}
	}
	return false
}

// loggerNames are Envoy's registered loggers (ALL_LOGGER_IDS), in order.
var loggerNames = []string{
	"admin", "alternate_protocols_cache", "aws", "assert", "backtrace", "basic_auth", "cache_filter", "client",
	"config", "connection", "conn_handler", "compression", "credential_injector", "decompression", "dns",
	"dubbo", "envoy_bug", "ext_authz", "ext_proc", "rocketmq", "file", "filter", "forward_proxy", "geolocation",
	"grpc", "happy_eyeballs", "hc", "health_checker", "http", "http2", "hystrix", "init", "io", "jwt", "kafka",
	"key_value_store", "lua", "main", "matcher", "misc", "mongo", "multi_connection", "oauth2", "quic",
	"quic_stream", "pool", "rate_limit_quota", "rbac", "rds", "redis", "router", "runtime", "stats", "secret",
	"tap", "testing", "thrift", "tracing", "upstream", "udp", "wasm", "websocket", "golang",
}

func defaultLoggers() []logger {
	out := make([]logger, len(loggerNames))
	for i, n := range loggerNames {
		out[i] = logger{n, "info"}
	}
	return out
}

// handleLogging is LogsHandler::handlerLogging.
func (e *Envoy) handleLogging(q map[string]string, order []string) (int, string, []byte) {
	var b strings.Builder
	code := 200
	if len(order) > 0 {
		if err := e.changeLogLevel(q, order); err != nil {
			code = 400
			fmt.Fprintf(&b, "error: %s\n\n", err)
			b.WriteString("usage: /logging?<name>=<level> (change single level)\n")
			b.WriteString("usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n")
			b.WriteString("usage: /logging?level=<level> (change all levels)\n")
			b.WriteString("levels: ")
			for _, l := range levels {
				b.WriteString(l + " ")
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("active loggers:\n")
	e.mu.Lock()
	for _, l := range e.loggers {
		fmt.Fprintf(&b, "  %s: %s\n", l.name, l.level)
	}
	e.mu.Unlock()
	b.WriteString("\n")
	return code, ctText, []byte(b.String())
}

type logError string

func (e logError) Error() string { return string(e) }

func (e *Envoy) changeLogLevel(q map[string]string, order []string) error {
	if len(order) != 1 {
		return logError("invalid number of parameters")
	}
	key, value := order[0], q[order[0]]
	if key == "level" {
		if !validLevel(value) {
			return logError("unknown logger level")
		}
		e.mu.Lock()
		for i := range e.loggers {
			e.loggers[i].level = value
		}
		e.mu.Unlock()
		return nil
	}
	changes := map[string]string{}
	if key == "paths" {
		for _, pair := range strings.Split(value, ",") {
			if strings.TrimSpace(pair) == "" {
				continue
			}
			name, level, _ := strings.Cut(pair, ":")
			if name == "" || level == "" {
				return logError("empty logger name or empty logger level")
			}
			if !validLevel(level) {
				return logError("unknown logger level")
			}
			changes[name] = level
		}
	} else {
		if !validLevel(value) {
			return logError("unknown logger level")
		}
		changes[key] = value
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.loggers {
		if _, ok := changes[l.name]; ok {
			n++
		}
	}
	if n != len(changes) {
		return logError("unknown logger name")
	}
	for i, l := range e.loggers {
		if lv, ok := changes[l.name]; ok {
			e.loggers[i].level = lv
		}
	}
	return nil
}
