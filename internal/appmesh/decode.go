package appmesh

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// SpecError is an error at a place in a spec.
type SpecError struct {
	// Path is the JSON path inside the spec, such as
	// listeners[0].portMapping; "" is the spec itself. For an unknown or
	// repeated field it is the object holding the field.
	Path string
	Msg  string
}

func (e *SpecError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// DecodeSpec decodes the JSON spec of a resource of the given kind into a
// *MeshSpec, *VirtualServiceSpec, *VirtualNodeSpec, *VirtualRouterSpec,
// *RouteSpec, *VirtualGatewaySpec or *GatewayRouteSpec.
//
// Decoding is as strict as the App Mesh API: field names are matched
// exactly (encoding/json would accept any case), and unknown or repeated
// fields, values of the wrong JSON type (null included), non-integral or
// out-of-range numbers and data after the spec are errors. An empty list
// decodes as nil. Errors for a spec are *SpecError, naming the path inside
// the spec. Required fields, ranges, enums and union cardinality are not
// checked here.
func DecodeSpec(kind ResourceKind, raw []byte) (any, error) {
	spec := NewSpec(kind)
	if spec == nil {
		return nil, fmt.Errorf("unknown App Mesh resource kind %q", kind)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	tok, err := d.Token()
	if errors.Is(err, io.EOF) {
		return nil, &SpecError{Msg: "empty spec: want an object"}
	}
	if err != nil {
		return nil, tokenError("", err)
	}
	if err := decodeValue(d, tok, reflect.ValueOf(spec).Elem(), ""); err != nil {
		return nil, err
	}
	end := d.InputOffset()
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		end += int64(len(raw[end:]) - len(bytes.TrimLeft(raw[end:], " \t\r\n")))
		return nil, &SpecError{Msg: fmt.Sprintf("data after the spec at byte %d", end)}
	}
	return spec, nil
}

// decodeValue decodes the JSON value starting with tok into v, a zero
// value of one of the types the spec types use: struct, pointer, slice,
// string, bool and int64.
func decodeValue(d *json.Decoder, tok json.Token, v reflect.Value, path string) error {
	switch v.Kind() {
	case reflect.Pointer:
		if tok == nil {
			return typeError(path, v.Type().Elem(), tok)
		}
		p := reflect.New(v.Type().Elem())
		if err := decodeValue(d, tok, p.Elem(), path); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Struct:
		if tok != json.Delim('{') {
			return typeError(path, v.Type(), tok)
		}
		return decodeObject(d, v, path)
	case reflect.Slice:
		if tok != json.Delim('[') {
			return typeError(path, v.Type(), tok)
		}
		for i := 0; d.More(); i++ {
			elemPath := path + "[" + strconv.Itoa(i) + "]"
			et, err := d.Token()
			if err != nil {
				return tokenError(elemPath, err)
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if err := decodeValue(d, et, e, elemPath); err != nil {
				return err
			}
			v.Set(reflect.Append(v, e))
		}
		return closing(d, path)
	case reflect.String:
		s, ok := tok.(string)
		if !ok {
			return typeError(path, v.Type(), tok)
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		b, ok := tok.(bool)
		if !ok {
			return typeError(path, v.Type(), tok)
		}
		v.SetBool(b)
		return nil
	case reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			return typeError(path, v.Type(), tok)
		}
		i, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil {
			if strings.ContainsAny(string(n), ".eE") {
				return &SpecError{path, "want an integer, got " + string(n)}
			}
			return &SpecError{path, "number " + string(n) + " is out of range"}
		}
		v.SetInt(i)
		return nil
	}
	return &SpecError{path, "meshd cannot decode into " + v.Type().String()}
}

// decodeObject decodes the members of an object whose '{' has been read.
func decodeObject(d *json.Decoder, v reflect.Value, path string) error {
	info := structInfoOf(v.Type())
	var seen []string
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return tokenError(path, err)
		}
		key := kt.(string) // the decoder accepts only string keys
		i, ok := info.index[key]
		if !ok {
			return &SpecError{path, unknownField(info, key)}
		}
		for _, s := range seen {
			if s == key {
				return &SpecError{path, fmt.Sprintf("field %q appears twice", key)}
			}
		}
		seen = append(seen, key)
		fieldPath := key
		if path != "" {
			fieldPath = path + "." + key
		}
		vt, err := d.Token()
		if err != nil {
			return tokenError(fieldPath, err)
		}
		if err := decodeValue(d, vt, v.Field(i), fieldPath); err != nil {
			return err
		}
	}
	return closing(d, path)
}

// closing reads the '}' or ']' ending an object or array.
func closing(d *json.Decoder, path string) error {
	if _, err := d.Token(); err != nil {
		return tokenError(path, err)
	}
	return nil
}

func unknownField(info *structInfo, key string) string {
	for _, n := range info.names {
		if strings.EqualFold(n, key) {
			return fmt.Sprintf("unknown field %q (did you mean %q? field names are case-sensitive)", key, n)
		}
	}
	return fmt.Sprintf("unknown field %q (fields here: %s)", key, strings.Join(info.names, ", "))
}

// structInfo maps the JSON names of a struct's fields to field indexes.
type structInfo struct {
	index map[string]int
	names []string // in declaration order
}

var structInfos sync.Map // reflect.Type → *structInfo

func structInfoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	info := &structInfo{index: map[string]int{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		info.index[name] = i
		info.names = append(info.names, name)
	}
	si, _ := structInfos.LoadOrStore(t, info)
	return si.(*structInfo)
}

func typeError(path string, want reflect.Type, got json.Token) error {
	var w string
	switch want.Kind() {
	case reflect.Struct:
		w = "an object"
	case reflect.Slice:
		w = "an array"
	case reflect.String:
		w = "a string"
	case reflect.Bool:
		w = "a boolean"
	default:
		w = "a number"
	}
	var g string
	switch t := got.(type) {
	case json.Delim:
		if t == '{' {
			g = "object"
		} else {
			g = "array"
		}
	case string:
		g = "string"
	case bool:
		g = "boolean"
	case json.Number:
		g = "number"
	default:
		g = "null"
	}
	return &SpecError{path, "want " + w + ", got " + g}
}

// tokenError reports a JSON syntax error or a truncated spec.
func tokenError(path string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return &SpecError{path, "unexpected end of JSON"}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return &SpecError{path, fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)}
	}
	return &SpecError{path, "invalid JSON: " + err.Error()}
}
