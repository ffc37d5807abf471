package tracing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// customFile is one ENVOY_*_FILE variable and its path.
type customFile struct{ Var, Path string }

// mergeFiles merges the custom files into b with the App Mesh image's rules,
// in its order (tracing, stats config, stats sinks, resources): one tracing
// block and one stats config in all; stats sinks and static listeners,
// clusters and secrets are appended; any other top-level field replaces the
// generated one, with a warning. Unlike the image, each file must be a valid
// bootstrap fragment (Envoy's protos, field names in either spelling) and
// the result must not define a static resource twice.
func mergeFiles(b *bootstrapv3.Bootstrap, c *Config, readFile func(string) ([]byte, error)) ([]string, error) {
	var warnings []string
	var problems []error
	owner := map[string]string{} // static resource name → who defined it
	for _, cl := range b.StaticResources.GetClusters() {
		owner["cluster "+cl.GetName()] = "meshd"
	}
	for _, f := range []customFile{
		{"ENVOY_TRACING_CFG_FILE", c.TracingFile},
		{"ENVOY_STATS_CONFIG_FILE", c.StatsFile},
		{"ENVOY_STATS_SINKS_CFG_FILE", c.SinksFile},
		{"ENVOY_RESOURCES_CONFIG_FILE", c.ResourcesFile},
	} {
		if f.Path == "" {
			continue
		}
		frag, err := loadFragment(f, readFile)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if f.Var == "ENVOY_STATS_SINKS_CFG_FILE" && len(frag.GetStatsSinks()) == 0 {
			problems = append(problems, fmt.Errorf("%s=%q: has no stats_sinks", f.Var, f.Path))
			continue
		}
		w, err := mergeFragment(b, frag, f, owner)
		warnings = append(warnings, w...)
		if err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		return nil, &InputError{Problems: problems}
	}
	return warnings, nil
}

// loadFragment reads a YAML or JSON file into a partial bootstrap and
// validates what it sets.
func loadFragment(f customFile, readFile func(string) ([]byte, error)) (*bootstrapv3.Bootstrap, error) {
	where := fmt.Sprintf("%s=%q", f.Var, f.Path)
	data, err := readFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read it: %w", where, err)
	}
	frag, err := ParseFragment(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := Validate(frag); err != nil {
		return nil, fmt.Errorf("%s: invalid: %w", where, err)
	}
	return frag, nil
}

var protojsonPosition = regexp.MustCompile(`^proto:\s*\(line \d+:\d+\):\s*`)

// ParseFragment parses a bootstrap fragment in YAML or JSON. Field names
// may be lowerCamelCase or snake_case, as Envoy accepts, but not both for
// one field; unknown fields and unknown typed-config types are errors.
func ParseFragment(data []byte) (*bootstrapv3.Bootstrap, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errors.New("the file is empty")
	}
	// JSON when it is JSON; anything else (a flow mapping such as
	// "{statsFlushInterval: 10s}" included) is read as YAML.
	js := trimmed
	isJSON := trimmed[0] == '{' && json.Valid(trimmed)
	if !isJSON {
		var doc any
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("the file has no content (only comments)")
			}
			if trimmed[0] == '{' {
				var v any
				jerr := json.Unmarshal(trimmed, &v)
				return nil, fmt.Errorf("neither JSON (%v) nor YAML (%v)", jerr, err)
			}
			return nil, fmt.Errorf("not YAML: %v", err)
		}
		var extra any
		switch err := dec.Decode(&extra); {
		case err == nil:
			return nil, errors.New("has more than one YAML document; a fragment is one document")
		case !errors.Is(err, io.EOF):
			return nil, fmt.Errorf("not YAML after the first document: %v", err)
		}
		switch doc.(type) {
		case map[string]any, map[any]any:
		default:
			return nil, fmt.Errorf("is a YAML %s, not a mapping of bootstrap fields", kindOf(doc))
		}
		j, err := toJSON(doc, "")
		if err != nil {
			return nil, err
		}
		if js, err = json.Marshal(j); err != nil {
			return nil, fmt.Errorf("cannot convert to JSON: %v", err)
		}
	}
	frag := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(js, frag); err != nil {
		msg := err.Error()
		if !isJSON {
			msg = protojsonPosition.ReplaceAllString(msg, "") // positions in the converted JSON mean nothing to the user
		}
		return nil, fmt.Errorf("not an Envoy bootstrap fragment: %s", msg)
	}
	return frag, nil
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "sequence"
	default:
		return "scalar"
	}
}

// toJSON turns a decoded YAML value into one encoding/json can marshal,
// refusing non-string keys.
func toJSON(v any, path string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			j, err := toJSON(x, path+"."+k)
			if err != nil {
				return nil, err
			}
			out[k] = j
		}
		return out, nil
	case map[any]any:
		for k := range t {
			if _, ok := k.(string); !ok {
				where := strings.TrimPrefix(path, ".")
				if where == "" {
					return nil, fmt.Errorf("key %v is not a string", k)
				}
				return nil, fmt.Errorf("%s: key %v is not a string", where, k)
			}
		}
		return nil, fmt.Errorf("%s: mapping has keys that are not strings", strings.TrimPrefix(path, "."))
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			j, err := toJSON(x, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	default:
		return t, nil
	}
}

// mergeFragment applies one fragment to b.
func mergeFragment(b, frag *bootstrapv3.Bootstrap, f customFile, owner map[string]string) ([]string, error) {
	where := fmt.Sprintf("%s=%q", f.Var, f.Path)
	var warnings []string
	var err error
	bm := b.ProtoReflect()
	frag.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch fd.Name() {
		case "tracing":
			if b.Tracing != nil {
				err = fmt.Errorf("%s: sets tracing, but %s; Envoy runs a single tracer", where, tracingOwner(owner))
				return false
			}
			owner["tracing"] = where
		case "stats_config":
			if b.StatsConfig != nil {
				who := owner["stats_config"]
				if who == "" {
					who = "meshd's generated stats tags (ENVOY_STATS_CONFIG_FILE replaces them)"
				}
				err = fmt.Errorf("%s: sets stats_config, already set by %s; a bootstrap has one stats configuration", where, who)
				return false
			}
			owner["stats_config"] = where
		case "stats_sinks":
			b.StatsSinks = append(b.StatsSinks, frag.StatsSinks...)
			return true
		case "static_resources":
			err = appendStatic(b.StaticResources, frag.StaticResources, where, owner)
			return err == nil
		default:
			if bm.Has(fd) {
				warnings = append(warnings, fmt.Sprintf("%s replaces the generated %s", where, fd.JSONName()))
			}
		}
		bm.Set(fd, cloneValue(fd, v))
		return true
	})
	if err != nil {
		return warnings, err
	}
	return warnings, nil
}

func tracingOwner(owner map[string]string) string {
	if o := owner["tracing"]; o != "" {
		return "it is already set by " + o
	}
	return "an ENABLE_ENVOY_*_TRACING variable already configures a tracer"
}

func cloneValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	if fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() {
		return protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
	}
	return v
}

func appendStatic(dst, src *bootstrapv3.Bootstrap_StaticResources, by string, owner map[string]string) error {
	claim := func(kind, name string) error {
		key := kind + " " + name
		if prev, ok := owner[key]; ok {
			return fmt.Errorf("%s defines static %s %q, already defined by %s", by, kind, name, prev)
		}
		owner[key] = by
		return nil
	}
	for _, l := range src.GetListeners() {
		if err := claim("listener", l.GetName()); err != nil {
			return err
		}
		dst.Listeners = append(dst.Listeners, l)
	}
	for _, c := range src.GetClusters() {
		if err := claim("cluster", c.GetName()); err != nil {
			return err
		}
		dst.Clusters = append(dst.Clusters, c)
	}
	for _, s := range src.GetSecrets() {
		if err := claim("secret", s.GetName()); err != nil {
			return err
		}
		dst.Secrets = append(dst.Secrets, s)
	}
	return nil
}
