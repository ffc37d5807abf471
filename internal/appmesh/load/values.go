package load

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Generic values are map[string]any, []any, string, bool, int64, float64
// and nil.

// maxNodes bounds the values one YAML document expands to, aliases
// included ("billion laughs").
const maxNodes = 1 << 20

// converter turns YAML nodes into generic values, expanding aliases with a
// cycle check and a size budget.
type converter struct {
	nodes    int
	visiting map[*yaml.Node]bool
}

// fromNode converts a YAML document node, turning CloudFormation's
// short-form tags (!Ref, !GetAtt, !Sub, …) into their long forms.
func fromNode(n *yaml.Node) (any, error) {
	c := &converter{visiting: map[*yaml.Node]bool{}}
	return c.node(n)
}

func (c *converter) node(n *yaml.Node) (any, error) {
	if c.nodes++; c.nodes > maxNodes {
		return nil, fmt.Errorf("the document expands to more than %d values (aliases?)", maxNodes)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return c.node(n.Content[0])
	case yaml.AliasNode:
		if c.visiting[n.Alias] {
			return nil, fmt.Errorf("line %d: alias *%s refers to itself", n.Line, n.Value)
		}
		return c.node(n.Alias) // an anchored node marks itself as visiting
	}
	if n.Anchor != "" {
		c.visiting[n] = true
		defer delete(c.visiting, n)
	}
	v, err := c.plain(n)
	if err != nil {
		return nil, err
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		return shortForm(tag[1:], v, n)
	}
	return v, nil
}

func (c *converter) plain(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		var merged []map[string]any
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
				base, err := c.node(n.Content[i+1])
				if err != nil {
					return nil, err
				}
				switch b := base.(type) {
				case map[string]any:
					merged = append(merged, b)
				case []any:
					for _, e := range b {
						if bm, ok := e.(map[string]any); ok {
							merged = append(merged, bm)
						}
					}
				}
				continue
			}
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a mapping key must be a string", k.Line)
			}
			if _, dup := m[k.Value]; dup {
				return nil, fmt.Errorf("line %d: key %q appears twice", k.Line, k.Value)
			}
			v, err := c.node(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		// Merged keys (<<) give way to the mapping's own; among several
		// merged mappings the first wins (YAML 1.1 merge key rules).
		for _, bm := range merged {
			for bk, bv := range bm {
				if _, set := m[bk]; !set {
					m[bk] = bv
				}
			}
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			v, err := c.node(e)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		return l, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err != nil {
				return nil, fmt.Errorf("line %d: %v", n.Line, err)
			}
			return b, nil
		case "!!int":
			var i int64
			if err := n.Decode(&i); err != nil {
				return nil, fmt.Errorf("line %d: %v", n.Line, err)
			}
			return i, nil
		case "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				return nil, fmt.Errorf("line %d: %v", n.Line, err)
			}
			return f, nil
		default:
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// shortForm maps !Name to Fn::Name (Ref and Condition keep their names;
// !GetAtt "A.B" becomes ["A", "B"]).
func shortForm(name string, v any, n *yaml.Node) (any, error) {
	switch name {
	case "Ref", "Condition":
		return map[string]any{name: v}, nil
	case "GetAtt":
		if s, ok := v.(string); ok {
			res, attr, ok := strings.Cut(s, ".")
			if !ok {
				return nil, fmt.Errorf("line %d: !GetAtt %q: want Resource.Attribute", n.Line, s)
			}
			return map[string]any{"Fn::GetAtt": []any{res, attr}}, nil
		}
		return map[string]any{"Fn::GetAtt": v}, nil
	default:
		return map[string]any{"Fn::" + name: v}, nil
	}
}

// normalizeJSON turns json.Number into int64 or float64.
func normalizeJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalizeJSON(x)
		}
		return t
	case []any:
		for i, x := range t {
			t[i] = normalizeJSON(x)
		}
		return t
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	default:
		return v
	}
}

func str(m map[string]any, k string) (string, bool) {
	s, ok := m[k].(string)
	return s, ok && s != ""
}

func obj(m map[string]any, k string) (map[string]any, bool) {
	o, ok := m[k].(map[string]any)
	return o, ok
}

// specJSON marshals a spec (a missing spec is {}).
func specJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return json.RawMessage("{}"), nil
	}
	if _, ok := v.(map[string]any); !ok {
		return nil, fmt.Errorf("spec is a %s, not a mapping", typeName(v))
	}
	return json.Marshal(v)
}
