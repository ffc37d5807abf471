// Package load reads App Mesh resource definitions from the files users
// already have: `aws appmesh create-* --cli-input-json` input, `describe-*`
// output, Kubernetes CRDs (appmesh.k8s.aws/v1beta2) and CloudFormation
// templates (JSON or YAML with short-form intrinsics). Every format becomes
// the same Doc: a kind, names, and the spec in the App Mesh API's JSON
// shape. Problems carry the file, the document and the field path.
package load

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kinds of App Mesh resource, as the API names them.
const (
	Mesh           = "Mesh"
	VirtualService = "VirtualService"
	VirtualNode    = "VirtualNode"
	VirtualRouter  = "VirtualRouter"
	Route          = "Route"
	VirtualGateway = "VirtualGateway"
	GatewayRoute   = "GatewayRoute"
)

// Format is the kind of file a Doc came from.
type Format string

// The formats Load reads.
const (
	CLI            Format = "cli-input-json"
	Describe       Format = "describe"
	Kubernetes     Format = "kubernetes"
	CloudFormation Format = "cloudformation"
)

// Loc is where something is: a file, the document in it (0-based; YAML
// files may hold several), the resource inside the document (a
// CloudFormation logical id or a Kubernetes namespace/name) and a field path.
type Loc struct {
	File     string
	Doc      int
	Resource string
	Path     string
}

func (l Loc) String() string {
	var b strings.Builder
	b.WriteString(l.File)
	fmt.Fprintf(&b, " (document %d)", l.Doc+1)
	if l.Resource != "" {
		b.WriteString(" " + l.Resource)
	}
	if l.Path != "" {
		b.WriteString(": " + l.Path)
	}
	return b.String()
}

func (l Loc) at(p string) Loc {
	if l.Path != "" && p != "" && !strings.HasPrefix(p, "[") {
		p = "." + p
	}
	l.Path += p
	return l
}

// Problem is one located error.
type Problem struct {
	Loc Loc
	Msg string
}

func (p Problem) Error() string { return p.Loc.String() + ": " + p.Msg }

// Doc is one App Mesh resource.
type Doc struct {
	Loc    Loc
	Format Format
	Kind   string
	// Mesh is the mesh name ("" when the file did not say and no default
	// was given); Parent is the virtual router of a Route or the virtual
	// gateway of a GatewayRoute.
	Mesh, Parent, Name string
	// Spec is the resource's spec in the App Mesh API's JSON shape.
	Spec json.RawMessage
}

// Result is everything read from a set of files.
type Result struct {
	Docs     []Doc
	Problems []Problem
	// Warnings are worth reporting but do not stop a resource loading.
	Warnings []Problem
	// Skipped counts documents that are not App Mesh resources (other
	// Kubernetes kinds, other CloudFormation resource types).
	Skipped int
}

// Options tune loading.
type Options struct {
	// DefaultMesh names the mesh of resources whose file does not (CLI
	// input without meshName, Kubernetes resources without meshRef) when
	// the files define no mesh or several.
	DefaultMesh string
	// Parameters give CloudFormation parameters values (they win over a
	// parameter's Default), as `aws cloudformation deploy
	// --parameter-overrides` would.
	Parameters map[string]string
}

// MaxFileSize bounds one file.
const MaxFileSize = 8 << 20

// Dir loads every configuration file under root in fsys (ConfigFiles), in
// lexical order.
func Dir(fsys fs.FS, root string, opt Options) (*Result, error) {
	files, err := ConfigFiles(fsys, root)
	if err != nil {
		return nil, err
	}
	in := make([]File, 0, len(files))
	for _, f := range files {
		data, err := readLimited(fsys, f)
		if err != nil {
			return nil, err
		}
		in = append(in, File{Name: f, Data: data})
	}
	return Files(in, opt), nil
}

// ConfigFiles lists, sorted, the files Dir reads under root: every *.json,
// *.yaml and *.yml, skipping dot files and dot directories (editor
// leftovers, Kubernetes' ..data; the symlinks pointing into it are read).
func ConfigFiles(fsys fs.FS, root string) ([]string, error) {
	var files []string
	err := fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		switch strings.ToLower(path.Ext(p)) {
		case ".json", ".yaml", ".yml":
			if !strings.HasPrefix(d.Name(), ".") {
				files = append(files, p)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read config directory %s: %w", root, err)
	}
	sort.Strings(files)
	return files, nil
}

func readLimited(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, MaxFileSize)
	}
	return data, nil
}

// File is one named input.
type File struct {
	Name string
	Data []byte
}

// Files loads a set of files together: Kubernetes references and the mesh
// of resources that do not name one are resolved across all of them.
func Files(files []File, opt Options) *Result {
	res := &Result{}
	var crds []crdObject
	for _, f := range files {
		docs, err := splitDocuments(f)
		if err != nil {
			res.Problems = append(res.Problems, Problem{Loc{File: f.Name}, err.Error()})
			continue
		}
		for i, d := range docs {
			loc := Loc{File: f.Name, Doc: i}
			if d.err != nil {
				res.Problems = append(res.Problems, Problem{loc, d.err.Error()})
				continue
			}
			if d.value == nil {
				continue // an empty YAML document (comments, a trailing ---)
			}
			obj, ok := d.value.(map[string]any)
			if !ok {
				res.Problems = append(res.Problems, Problem{loc, fmt.Sprintf("a %s, not a mapping", typeName(d.value))})
				continue
			}
			switch {
			case isCFN(obj):
				loadCFN(res, loc, obj, opt.Parameters)
			case obj["apiVersion"] != nil || obj["kind"] != nil:
				if c, ok := crdOf(res, loc, obj); ok {
					crds = append(crds, c)
				}
			default:
				loadCLI(res, loc, obj)
			}
		}
	}
	convertCRDs(res, crds)
	defaultMesh(res, opt.DefaultMesh)
	return res
}

// defaultMesh gives resources without a mesh the only mesh the files
// define, else the default (as Kubernetes resources get theirs).
func defaultMesh(res *Result, def string) {
	meshes := map[string]bool{}
	for _, d := range res.Docs {
		if d.Kind == Mesh {
			meshes[d.Name] = true
		}
	}
	if len(meshes) == 1 {
		for m := range meshes {
			def = m
		}
	}
	kept := res.Docs[:0]
	for _, d := range res.Docs {
		if d.Mesh == "" {
			if def == "" {
				res.Problems = append(res.Problems, Problem{d.Loc, fmt.Sprintf("%s %q names no mesh, and the files define no single mesh to put it in (give meshName, or a default mesh)", d.Kind, d.Name)})
				continue
			}
			d.Mesh = def
		}
		kept = append(kept, d)
	}
	res.Docs = kept
}

type document struct {
	value any
	err   error
}

// splitDocuments parses a JSON file or a (multi-document) YAML file into
// generic values, with CloudFormation short-form tags turned into their
// long forms.
func splitDocuments(f File) ([]document, error) {
	trimmed := bytes.TrimSpace(f.Data)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if trimmed[0] == '{' && json.Valid(trimmed) {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("not JSON: %v", err)
		}
		return []document{{value: normalizeJSON(v)}}, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	var docs []document
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			if trimmed[0] == '{' {
				var v any
				return nil, fmt.Errorf("neither JSON (%v) nor YAML (%v)", json.Unmarshal(trimmed, &v), err)
			}
			// The YAML decoder cannot resync after a syntax error.
			return append(docs, document{err: fmt.Errorf("not YAML: %v", err)}), nil
		}
		v, err := fromNode(&n)
		docs = append(docs, document{value: v, err: err})
	}
}

func typeName(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	case nil:
		return "null"
	default:
		return "scalar"
	}
}
