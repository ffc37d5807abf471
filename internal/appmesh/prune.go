package appmesh

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Prune removes from a generic JSON value (as encoding/json decodes it into
// any) the fields the spec type of kind does not have, and returns their
// paths. It is what the Kubernetes API server does to a custom resource
// with a structural schema: App Mesh CRDs in the wild carry fields the
// controller never saw (a `mode` under a client policy's tls, say), and
// kubectl apply accepted them. Other formats are decoded strictly.
func Prune(kind ResourceKind, spec map[string]any) []string {
	s := NewSpec(kind)
	if s == nil {
		return nil
	}
	var removed []string
	prune(reflect.TypeOf(s).Elem(), spec, "", &removed)
	sort.Strings(removed)
	return removed
}

func prune(t reflect.Type, v any, path string, removed *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for k, e := range m {
			p := k
			if path != "" {
				p = path + "." + k
			}
			ft, ok := fields[k]
			if !ok {
				delete(m, k)
				*removed = append(*removed, p)
				continue
			}
			prune(ft, e, p, removed)
		}
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return
		}
		for i, e := range l {
			prune(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i), removed)
		}
	}
}
