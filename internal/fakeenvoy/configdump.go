package fakeenvoy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ConfigDumpError is a /config_dump failure: the HTTP code and Envoy's body.
type ConfigDumpError struct {
	Code int
	Msg  string
}

func (e *ConfigDumpError) Error() string { return e.Msg }

// ConfigDumpQuery is /config_dump's parameters.
type ConfigDumpQuery struct {
	Resource   string // a repeated field of one of the dumps, e.g. dynamic_active_clusters
	Mask       string // a FieldMask, comma-separated paths
	NameRegex  string
	IncludeEDS bool
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// dumps returns the per-component dumps in Envoy's order (its config
// tracker's keys sorted: bootstrap, clusters, listeners, routes,
// scopedroutes, secrets). e.mu is held.
func (e *Envoy) dumpsLocked(nameRe *regexp.Regexp) []proto.Message {
	match := func(n string) bool { return nameRe == nil || nameRe.MatchString(n) }
	b := e.opts.Bootstrap
	if b == nil {
		node := e.opts.Node
		if node == nil {
			node = &corev3.Node{Id: e.opts.NodeID, Cluster: e.opts.Cluster}
		}
		b = &bootstrapv3.Bootstrap{Node: node}
	}
	boot := &adminv3.BootstrapConfigDump{Bootstrap: b, LastUpdated: ts(e.bootTime)}

	cl := &adminv3.ClustersConfigDump{VersionInfo: e.versions[resource.ClusterType]}
	var cnames []string
	for n := range e.clusters {
		cnames = append(cnames, n)
	}
	sort.Strings(cnames)
	for _, n := range cnames {
		c := e.clusters[n]
		if !match(n) {
			continue
		}
		if c.static {
			cl.StaticClusters = append(cl.StaticClusters, &adminv3.ClustersConfigDump_StaticCluster{Cluster: mustAny(c.c), LastUpdated: ts(c.updated)})
		} else {
			cl.DynamicActiveClusters = append(cl.DynamicActiveClusters, &adminv3.ClustersConfigDump_DynamicCluster{VersionInfo: c.version, Cluster: mustAny(c.c), LastUpdated: ts(c.updated)})
		}
	}

	ls := &adminv3.ListenersConfigDump{VersionInfo: e.versions[resource.ListenerType]}
	var lnames []string
	for n := range e.listeners {
		lnames = append(lnames, n)
	}
	sort.Strings(lnames)
	for _, n := range lnames {
		l := e.listeners[n]
		if !match(n) {
			continue
		}
		if l.static {
			ls.StaticListeners = append(ls.StaticListeners, &adminv3.ListenersConfigDump_StaticListener{Listener: mustAny(l.l), LastUpdated: ts(l.updated)})
		} else {
			ls.DynamicListeners = append(ls.DynamicListeners, &adminv3.ListenersConfigDump_DynamicListener{
				Name:        n,
				ActiveState: &adminv3.ListenersConfigDump_DynamicListenerState{VersionInfo: l.version, Listener: mustAny(l.l), LastUpdated: ts(l.updated)},
			})
		}
	}

	rs := &adminv3.RoutesConfigDump{}
	var rnames []string
	for n := range e.routes {
		rnames = append(rnames, n)
	}
	sort.Strings(rnames)
	for _, n := range rnames {
		r := e.routes[n]
		if !match(n) {
			continue
		}
		if r.static {
			rs.StaticRouteConfigs = append(rs.StaticRouteConfigs, &adminv3.RoutesConfigDump_StaticRouteConfig{RouteConfig: mustAny(r.r), LastUpdated: ts(r.updated)})
		} else {
			rs.DynamicRouteConfigs = append(rs.DynamicRouteConfigs, &adminv3.RoutesConfigDump_DynamicRouteConfig{VersionInfo: r.version, RouteConfig: mustAny(r.r), LastUpdated: ts(r.updated)})
		}
	}
	return []proto.Message{boot, cl, ls, rs, &adminv3.ScopedRoutesConfigDump{}, &adminv3.SecretsConfigDump{}}
}

// ConfigDump renders GET /config_dump as Envoy does: pretty-printed proto
// JSON of an admin.v3.ConfigDump with snake_case names.
func (e *Envoy) ConfigDump(q ConfigDumpQuery) ([]byte, error) {
	var nameRe *regexp.Regexp
	if q.NameRegex != "" {
		re, err := regexp.Compile(q.NameRegex)
		if err != nil {
			return nil, &ConfigDumpError{400, fmt.Sprintf("INVALID_ARGUMENT: Error while parsing name_regex from %s: %v", q.NameRegex, err)}
		}
		nameRe = re
	}
	e.mu.Lock()
	dumps := e.dumpsLocked(nameRe)
	e.mu.Unlock()
	out := &adminv3.ConfigDump{}
	var paths []string
	if q.Mask != "" {
		paths = strings.Split(q.Mask, ",")
	}
	if q.Resource != "" {
		found := false
		for _, d := range dumps {
			m := d.ProtoReflect()
			fd := m.Descriptor().Fields().ByName(protoreflect.Name(q.Resource))
			if fd == nil {
				continue
			}
			if !fd.IsList() {
				return nil, &ConfigDumpError{400, fmt.Sprintf("%s is not a repeated field. Use ?mask=%s to get only this field", q.Resource, q.Resource)}
			}
			list := m.Get(fd).List()
			for i := 0; i < list.Len(); i++ {
				item := list.Get(i).Message().Interface()
				if paths != nil {
					if err := trimResource(item, paths); err != nil {
						return nil, &ConfigDumpError{400, fmt.Sprintf("FieldMask %s could not be successfully used.", maskDebugString(paths))}
					}
				}
				out.Configs = append(out.Configs, mustAny(item))
			}
			found = true
			break
		}
		if !found {
			return nil, &ConfigDumpError{404, fmt.Sprintf("%s not found in config dump", q.Resource)}
		}
	} else {
		for _, d := range dumps {
			if paths != nil {
				if err := trimMessage(d.ProtoReflect(), paths); err != nil {
					continue
				}
			}
			out.Configs = append(out.Configs, mustAny(d))
		}
		if len(out.Configs) == 0 && paths != nil {
			return nil, &ConfigDumpError{400, fmt.Sprintf("FieldMask %s could not be successfully applied to any configs.", q.Mask)}
		}
	}
	return marshalPretty(out, false)
}

// marshalPretty is Envoy's getJsonStringFromMessage(…, pretty): proto JSON
// with field names as in the .proto, indented by one space.
// With primitives set, default-valued scalars are printed too (Envoy's
// always_print_primitive_fields, used by /server_info).
func marshalPretty(m proto.Message, primitives bool) ([]byte, error) {
	js, err := protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: primitives}.Marshal(m)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, js, "", " "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// trimResource applies a mask to one element of a repeated dump field:
// paths into its single Any field (cluster.name) are applied to the
// unpacked resource, as Envoy's trimResourceMessage does.
func trimResource(m proto.Message, paths []string) error {
	r := m.ProtoReflect()
	var outer, inner []string
	var anyField protoreflect.FieldDescriptor
	for _, p := range paths {
		first, rest, _ := strings.Cut(p, ".")
		fd := r.Descriptor().Fields().ByName(protoreflect.Name(first))
		if fd != nil && fd.Message() != nil && !fd.IsList() && fd.Message().FullName() == "google.protobuf.Any" {
			if anyField != nil && anyField != fd {
				return fmt.Errorf("more than one Any field")
			}
			anyField = fd
			outer = append(outer, first)
			inner = append(inner, rest)
			continue
		}
		outer = append(outer, p)
	}
	if anyField != nil && r.Has(anyField) {
		a := r.Get(anyField).Message().Interface().(*anypb.Any)
		im, err := a.UnmarshalNew()
		if err != nil {
			return err
		}
		if err := trimMessage(im.ProtoReflect(), inner); err != nil {
			return err
		}
		r.Set(anyField, protoreflect.ValueOfMessage(mustAny(im).ProtoReflect()))
	}
	return trimMessage(r, outer)
}

// trimMessage is FieldMaskUtil::TrimMessage after a validity check: only
// the fields named by paths are kept; a path through a repeated or
// non-message field is invalid.
func trimMessage(m protoreflect.Message, paths []string) error {
	tree := map[string][]string{} // field → sub-paths (nil: whole field)
	whole := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			// An empty path (from "cluster" as an Any mask) keeps everything.
			return nil
		}
		if err := checkPath(m.Descriptor(), p); err != nil {
			return err
		}
		first, rest, more := strings.Cut(p, ".")
		if !more {
			whole[first] = true
		} else {
			tree[first] = append(tree[first], rest)
		}
	}
	var clear []protoreflect.FieldDescriptor
	var firstErr error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		n := string(fd.Name())
		switch {
		case whole[n]:
		case tree[n] != nil:
			if err := trimMessage(m.Mutable(fd).Message(), tree[n]); err != nil {
				firstErr = err
				return false
			}
		default:
			clear = append(clear, fd)
		}
		return true
	})
	for _, fd := range clear {
		m.Clear(fd)
	}
	return firstErr
}

func checkPath(d protoreflect.MessageDescriptor, p string) error {
	parts := strings.Split(p, ".")
	for i, part := range parts {
		fd := d.Fields().ByName(protoreflect.Name(part))
		if fd == nil {
			return fmt.Errorf("no field %q in %s", part, d.FullName())
		}
		if i < len(parts)-1 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return fmt.Errorf("%q is not a singular message field", part)
			}
			d = fd.Message()
		}
	}
	return nil
}

// maskDebugString is FieldMask::DebugString.
func maskDebugString(paths []string) string {
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "paths: %q\n", p)
	}
	return b.String()
}
