// Package appmesh holds the App Mesh naming rules meshd shares between its
// bootstrap renderer, its control plane and its metrics: resource
// identifiers (ARNs and their short forms) and name syntax.
package appmesh

import (
	"fmt"
	"strings"
)

// Kind is the type of mesh endpoint an Envoy represents.
type Kind string

// The two kinds of resource an Envoy can represent.
const (
	VirtualNode    Kind = "virtualNode"
	VirtualGateway Kind = "virtualGateway"
)

// SnakeCase is the kind as App Mesh's stats tags spell it
// (appmesh.virtual_node, appmesh.virtual_gateway).
func (k Kind) SnakeCase() string {
	if k == VirtualGateway {
		return "virtual_gateway"
	}
	return "virtual_node"
}

// UpperCamelCase is the kind as the metrics extension's dimensions spell it
// (VirtualNode, VirtualGateway).
func (k Kind) UpperCamelCase() string {
	if k == VirtualGateway {
		return "VirtualGateway"
	}
	return "VirtualNode"
}

// Resource identifies the virtual node or virtual gateway an Envoy
// represents, as named by APPMESH_RESOURCE_ARN or the node id Envoy presents.
type Resource struct {
	// Partition, Region and Account are set only for the ARN form.
	Partition, Region, Account string
	// Mesh is the mesh name; for a mesh shared from another account the
	// Kubernetes controller writes it as <mesh>@<account>.
	Mesh string
	Kind Kind
	Name string
}

// ShortForm is mesh/<mesh>/<kind>/<name>.
func (r Resource) ShortForm() string {
	return "mesh/" + r.Mesh + "/" + string(r.Kind) + "/" + r.Name
}

// String is the form the resource was parsed from: the ARN when it had one.
func (r Resource) String() string {
	if r.Partition == "" {
		return r.ShortForm()
	}
	return fmt.Sprintf("arn:%s:appmesh:%s:%s:%s", r.Partition, r.Region, r.Account, r.ShortForm())
}

// AcceptedForms describes, for error messages, what ParseResource accepts.
const AcceptedForms = "arn:aws:appmesh:<region>:<account>:mesh/<mesh>/virtualNode/<name>, " +
	"the same with virtualGateway, or the short form mesh/<mesh>/virtualNode/<name> (or .../virtualGateway/<name>)"

// ParseResource parses a virtual node or virtual gateway identifier in
// either accepted form (see AcceptedForms). Errors do not repeat s. Unlike the App Mesh image, which
// split on "/" and ignored what it did not understand, it rejects anything
// else, so a typo fails at start-up instead of as a node no control plane
// knows.
func ParseResource(s string) (Resource, error) {
	var r Resource
	rest := s
	if strings.HasPrefix(s, "arn:") {
		parts := strings.SplitN(s, ":", 6)
		if len(parts) != 6 {
			return r, fmt.Errorf("not an ARN: want arn:<partition>:appmesh:<region>:<account>:<resource>")
		}
		r.Partition, r.Region, r.Account, rest = parts[1], parts[3], parts[4], parts[5]
		if !validPartition(r.Partition) {
			return r, fmt.Errorf("ARN partition %q is not an AWS partition (aws, aws-cn, aws-us-gov, …)", r.Partition)
		}
		if parts[2] != "appmesh" {
			return r, fmt.Errorf("ARN service is %q, want appmesh", parts[2])
		}
		if !validRegion(r.Region) {
			return r, fmt.Errorf("ARN region %q is not a region name such as us-west-2", r.Region)
		}
		if !validAccount(r.Account) {
			return r, fmt.Errorf("ARN account %q is not a 12-digit account id", r.Account)
		}
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 4 || parts[0] != "mesh" {
		return r, fmt.Errorf("not a virtual node or virtual gateway")
	}
	r.Mesh, r.Name = parts[1], parts[3]
	switch Kind(parts[2]) {
	case VirtualNode, VirtualGateway:
		r.Kind = Kind(parts[2])
	default:
		return r, fmt.Errorf("resource type %q is not virtualNode or virtualGateway (an Envoy represents one of those)", parts[2])
	}
	if err := checkMeshName(r.Mesh); err != nil {
		return r, err
	}
	if err := CheckName(r.Name); err != nil {
		return r, fmt.Errorf("%s name: %w", r.Kind, err)
	}
	return r, nil
}

// CheckName enforces App Mesh's resource name syntax: 1–255 letters, digits,
// hyphens and underscores.
func CheckName(n string) error {
	if n == "" {
		return fmt.Errorf("empty name")
	}
	if len(n) > 255 {
		return fmt.Errorf("name is %d characters long, at most 255 are allowed", len(n))
	}
	for i, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("name %q has %q at byte %d: only letters, digits, '-' and '_' are allowed", n, c, i)
		}
	}
	return nil
}

// checkMeshName allows the <mesh>@<account> form of a shared mesh.
func checkMeshName(m string) error {
	name, owner, shared := strings.Cut(m, "@")
	if err := CheckName(name); err != nil {
		return fmt.Errorf("mesh name: %w", err)
	}
	if shared && !validAccount(owner) {
		return fmt.Errorf("mesh %q: owner %q after '@' is not a 12-digit account id", m, owner)
	}
	return nil
}

func validPartition(p string) bool {
	return p == "aws" || strings.HasPrefix(p, "aws-") && len(p) > 4 && lowerDigitsDash(p)
}

func validRegion(r string) bool {
	return r != "" && lowerDigitsDash(r) && r[0] != '-' && r[len(r)-1] != '-'
}

func validAccount(a string) bool {
	if len(a) != 12 {
		return false
	}
	for i := 0; i < len(a); i++ {
		if a[i] < '0' || a[i] > '9' {
			return false
		}
	}
	return true
}

func lowerDigitsDash(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
