package tracing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Format is an output encoding of the bootstrap.
type Format string

// Formats Envoy reads (it picks the parser by file extension).
const (
	YAML Format = "yaml"
	JSON Format = "json"
)

// Encode writes m as Envoy reads it: proto3 JSON names (lowerCamelCase, as
// App Mesh's bootstrap had), keys sorted at every level, deterministic bytes.
func Encode(m proto.Message, f Format) ([]byte, error) {
	js, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal %T: %w", m, err)
	}
	switch f {
	case JSON:
		var v any
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("re-encode JSON: %w", err)
		}
		out, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("re-encode JSON: %w", err)
		}
		return append(out, '\n'), nil
	case YAML:
		// JSON is YAML: decoding it into a node keeps every scalar's type;
		// plain style then lets the encoder quote only what needs it.
		var n yaml.Node
		if err := yaml.Unmarshal(js, &n); err != nil {
			return nil, fmt.Errorf("re-encode YAML: %w", err)
		}
		normalize(&n)
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(&n); err != nil {
			return nil, fmt.Errorf("encode YAML: %w", err)
		}
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("encode YAML: %w", err)
		}
		return buf.Bytes(), nil
	default:
		return nil, fmt.Errorf("unknown format %q (want yaml or json)", f)
	}
}

// normalize sorts mapping keys and resets flow and quoting styles.
func normalize(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.MappingNode {
		pairs := make([][2]*yaml.Node, 0, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			pairs = append(pairs, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
		}
		sort.SliceStable(pairs, func(i, j int) bool { return pairs[i][0].Value < pairs[j][0].Value })
		n.Content = n.Content[:0]
		for _, p := range pairs {
			n.Content = append(n.Content, p[0], p[1])
		}
	}
	for _, c := range n.Content {
		normalize(c)
	}
}
