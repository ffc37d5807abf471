package appmesh

import (
	"strings"
	"testing"
)

var (
	name255 = strings.Repeat("n", 255)
	name256 = strings.Repeat("n", 256)
)

var parseResourceAccepts = []struct {
	name  string
	in    string
	want  Resource
	short string
	snake string // Kind.SnakeCase
	camel string // Kind.UpperCamelCase
}{
	{
		"ARN, virtual node",
		"arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceB",
		Resource{Partition: "aws", Region: "us-west-2", Account: "111122223333", Mesh: "apps", Kind: VirtualNode, Name: "serviceB"},
		"mesh/apps/virtualNode/serviceB", "virtual_node", "VirtualNode",
	},
	{
		"ARN, virtual gateway",
		"arn:aws:appmesh:eu-central-1:111122223333:mesh/apps/virtualGateway/ingress-gw",
		Resource{Partition: "aws", Region: "eu-central-1", Account: "111122223333", Mesh: "apps", Kind: VirtualGateway, Name: "ingress-gw"},
		"mesh/apps/virtualGateway/ingress-gw", "virtual_gateway", "VirtualGateway",
	},
	{
		"ARN, aws-cn partition",
		"arn:aws-cn:appmesh:cn-north-1:111122223333:mesh/apps/virtualNode/serviceB",
		Resource{Partition: "aws-cn", Region: "cn-north-1", Account: "111122223333", Mesh: "apps", Kind: VirtualNode, Name: "serviceB"},
		"mesh/apps/virtualNode/serviceB", "virtual_node", "VirtualNode",
	},
	{
		"ARN, aws-us-gov partition",
		"arn:aws-us-gov:appmesh:us-gov-west-1:111122223333:mesh/apps/virtualGateway/gw",
		Resource{Partition: "aws-us-gov", Region: "us-gov-west-1", Account: "111122223333", Mesh: "apps", Kind: VirtualGateway, Name: "gw"},
		"mesh/apps/virtualGateway/gw", "virtual_gateway", "VirtualGateway",
	},
	{
		"ARN, shared mesh",
		"arn:aws:appmesh:us-west-2:111122223333:mesh/apps@444455556666/virtualNode/serviceB",
		Resource{Partition: "aws", Region: "us-west-2", Account: "111122223333", Mesh: "apps@444455556666", Kind: VirtualNode, Name: "serviceB"},
		"mesh/apps@444455556666/virtualNode/serviceB", "virtual_node", "VirtualNode",
	},
	{
		"short form, virtual node",
		"mesh/apps/virtualNode/serviceB",
		Resource{Mesh: "apps", Kind: VirtualNode, Name: "serviceB"},
		"mesh/apps/virtualNode/serviceB", "virtual_node", "VirtualNode",
	},
	{
		"short form, virtual gateway",
		"mesh/apps/virtualGateway/gw",
		Resource{Mesh: "apps", Kind: VirtualGateway, Name: "gw"},
		"mesh/apps/virtualGateway/gw", "virtual_gateway", "VirtualGateway",
	},
	{
		"short form, shared mesh",
		"mesh/apps@111122223333/virtualNode/serviceB",
		Resource{Mesh: "apps@111122223333", Kind: VirtualNode, Name: "serviceB"},
		"mesh/apps@111122223333/virtualNode/serviceB", "virtual_node", "VirtualNode",
	},
	{
		"underscores and hyphens",
		"mesh/my_mesh-1/virtualNode/service_b-2",
		Resource{Mesh: "my_mesh-1", Kind: VirtualNode, Name: "service_b-2"},
		"mesh/my_mesh-1/virtualNode/service_b-2", "virtual_node", "VirtualNode",
	},
	{
		"names of only digits, hyphens or underscores",
		"mesh/-/virtualNode/0_",
		Resource{Mesh: "-", Kind: VirtualNode, Name: "0_"},
		"mesh/-/virtualNode/0_", "virtual_node", "VirtualNode",
	},
	{
		"255-character name",
		"mesh/apps/virtualNode/" + name255,
		Resource{Mesh: "apps", Kind: VirtualNode, Name: name255},
		"mesh/apps/virtualNode/" + name255, "virtual_node", "VirtualNode",
	},
	{
		"255-character mesh name",
		"mesh/" + name255 + "/virtualGateway/gw",
		Resource{Mesh: name255, Kind: VirtualGateway, Name: "gw"},
		"mesh/" + name255 + "/virtualGateway/gw", "virtual_gateway", "VirtualGateway",
	},
}

var parseResourceRejects = []struct {
	name string
	in   string
	want string // distinctive substring of the error
}{
	{"empty string", "", "not a virtual node or virtual gateway"},
	{"wrong service", "arn:aws:ecs:us-west-2:111122223333:mesh/apps/virtualNode/serviceB", `ARN service is "ecs", want appmesh`},
	{"service in upper case", "arn:aws:AppMesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceB", `ARN service is "AppMesh"`},
	{"account too short", "arn:aws:appmesh:us-west-2:11112222333:mesh/apps/virtualNode/serviceB", `ARN account "11112222333" is not a 12-digit account id`},
	{"account too long", "arn:aws:appmesh:us-west-2:1111222233334:mesh/apps/virtualNode/serviceB", `ARN account "1111222233334"`},
	{"account with a letter", "arn:aws:appmesh:us-west-2:11112222333a:mesh/apps/virtualNode/serviceB", `ARN account "11112222333a"`},
	{"empty account", "arn:aws:appmesh:us-west-2::mesh/apps/virtualNode/serviceB", `ARN account ""`},
	{"region in upper case", "arn:aws:appmesh:US-WEST-2:111122223333:mesh/apps/virtualNode/serviceB", `ARN region "US-WEST-2" is not a region name`},
	{"empty region", "arn:aws:appmesh::111122223333:mesh/apps/virtualNode/serviceB", `ARN region ""`},
	{"region with a leading hyphen", "arn:aws:appmesh:-us-west-2:111122223333:mesh/apps/virtualNode/serviceB", `ARN region "-us-west-2"`},
	{"region with a trailing hyphen", "arn:aws:appmesh:us-west-:111122223333:mesh/apps/virtualNode/serviceB", `ARN region "us-west-"`},
	{"region with an underscore", "arn:aws:appmesh:us_west_2:111122223333:mesh/apps/virtualNode/serviceB", `ARN region "us_west_2"`},
	{"unknown partition", "arn:amazon:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceB", `ARN partition "amazon" is not an AWS partition`},
	{"partition aws-", "arn:aws-:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceB", `ARN partition "aws-"`},
	{"empty partition", "arn::appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceB", `ARN partition ""`},
	{"ARN with too few fields", "arn:aws:appmesh:us-west-2:mesh/apps/virtualNode/serviceB", "not an ARN"},
	{"arn: alone", "arn:", "not an ARN"},
	{"ARN prefix in upper case", "ARN:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceB", "not a virtual node or virtual gateway"},
	{"3 path parts", "mesh/apps/virtualNode", "not a virtual node or virtual gateway"},
	{"5 path parts", "mesh/apps/virtualNode/serviceB/extra", "not a virtual node or virtual gateway"},
	{"ARN with 3 path parts", "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode", "not a virtual node or virtual gateway"},
	{"ARN with 5 path parts", "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualNode/serviceB/route", "not a virtual node or virtual gateway"},
	{"trailing slash", "mesh/apps/virtualNode/serviceB/", "not a virtual node or virtual gateway"},
	{"no mesh/ prefix", "apps/virtualNode/serviceB", "not a virtual node or virtual gateway"},
	{"first part not mesh", "meshes/apps/virtualNode/serviceB", "not a virtual node or virtual gateway"},
	{"virtualService kind", "mesh/apps/virtualService/serviceB", `resource type "virtualService" is not virtualNode or virtualGateway`},
	{"virtualRouter kind in an ARN", "arn:aws:appmesh:us-west-2:111122223333:mesh/apps/virtualRouter/r", `resource type "virtualRouter"`},
	{"kind in lower case", "mesh/apps/virtualnode/serviceB", `resource type "virtualnode"`},
	{"empty kind", "mesh/apps//serviceB", `resource type ""`},
	{"empty name", "mesh/apps/virtualNode/", "virtualNode name: empty name"},
	{"empty gateway name", "mesh/apps/virtualGateway/", "virtualGateway name: empty name"},
	{"empty mesh name", "mesh//virtualNode/serviceB", "mesh name: empty name"},
	{"256-character name", "mesh/apps/virtualNode/" + name256, "name is 256 characters long, at most 255 are allowed"},
	{"256-character mesh name", "mesh/" + name256 + "/virtualNode/serviceB", "mesh name: name is 256 characters long"},
	{"dot in name", "mesh/apps/virtualNode/serviceB.apps.local", `has '.' at byte 8: only letters, digits, '-' and '_' are allowed`},
	{"space in name", "mesh/apps/virtualNode/service B", `has ' ' at byte 7`},
	{"colon in name", "mesh/apps/virtualNode/service:B", `has ':' at byte 7`},
	{"non-ASCII name", "mesh/apps/virtualNode/servicé", `name "servicé" has`},
	{"dot in mesh name", "mesh/my.mesh/virtualNode/serviceB", `mesh name: name "my.mesh" has '.' at byte 2`},
	{"shared mesh with a bad owner", "mesh/apps@notanaccount/virtualNode/serviceB", `owner "notanaccount" after '@' is not a 12-digit account id`},
	{"shared mesh with an empty owner", "mesh/apps@/virtualNode/serviceB", `owner "" after '@'`},
	{"shared mesh with two owners", "mesh/apps@111122223333@444455556666/virtualNode/serviceB", `owner "111122223333@444455556666"`},
	{"shared mesh with no name", "mesh/@111122223333/virtualNode/serviceB", "mesh name: empty name"},
	{"@ in the node name", "mesh/apps/virtualNode/serviceB@111122223333", `has '@' at byte 8`},
	{"Service Connect task set", "arn:aws:ecs:us-west-2:111122223333:task-set/cluster/service/ecs-svc/1234567890", `ARN service is "ecs", want appmesh`},
	{"Service Connect task set in an appmesh ARN", "arn:aws:appmesh:us-west-2:111122223333:task-set/cluster/service/ecs-svc", "not a virtual node or virtual gateway"},
}

func TestParseResourceAccepts(t *testing.T) {
	for _, tt := range parseResourceAccepts {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResource(tt.in)
			if err != nil {
				t.Fatalf("ParseResource(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseResource(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Errorf("String() = %q, want the input %q", s, tt.in)
			}
			if s := got.ShortForm(); s != tt.short {
				t.Errorf("ShortForm() = %q, want %q", s, tt.short)
			}
			if s := got.Kind.SnakeCase(); s != tt.snake {
				t.Errorf("Kind.SnakeCase() = %q, want %q", s, tt.snake)
			}
			if s := got.Kind.UpperCamelCase(); s != tt.camel {
				t.Errorf("Kind.UpperCamelCase() = %q, want %q", s, tt.camel)
			}
		})
	}
}

func TestParseResourceRejects(t *testing.T) {
	for _, tt := range parseResourceRejects {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResource(tt.in)
			if err == nil {
				t.Fatalf("ParseResource(%q) = %#v, want an error containing %q", tt.in, got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseResource(%q) error = %q, want it to contain %q", tt.in, err, tt.want)
			}
			// The caller prints the input next to the error; the error must
			// not repeat it (too short an input is found by chance).
			if len(tt.in) > len("arn:") && strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseResource(%q) error = %q repeats the input", tt.in, err)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" means valid
	}{
		{"a", ""},
		{"serviceB", ""},
		{"Service_B-2", ""},
		{name255, ""},
		{"", "empty name"},
		{name256, "name is 256 characters long"},
		{"a.b", `name "a.b" has '.' at byte 1`},
		{"a/b", `has '/' at byte 1`},
		{"a@b", `has '@' at byte 1`},
		{"tab\t", `has '\t' at byte 3`},
	}
	for _, tt := range tests {
		err := CheckName(tt.in)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckName(%q) = %v, want nil", tt.in, err)
		case tt.want != "" && err == nil:
			t.Errorf("CheckName(%q) = nil, want an error containing %q", tt.in, tt.want)
		case tt.want != "" && !strings.Contains(err.Error(), tt.want):
			t.Errorf("CheckName(%q) = %q, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestKindSpellings(t *testing.T) {
	tests := []struct {
		kind         Kind
		snake, camel string
	}{
		{VirtualNode, "virtual_node", "VirtualNode"},
		{VirtualGateway, "virtual_gateway", "VirtualGateway"},
	}
	for _, tt := range tests {
		if got := tt.kind.SnakeCase(); got != tt.snake {
			t.Errorf("%s.SnakeCase() = %q, want %q", tt.kind, got, tt.snake)
		}
		if got := tt.kind.UpperCamelCase(); got != tt.camel {
			t.Errorf("%s.UpperCamelCase() = %q, want %q", tt.kind, got, tt.camel)
		}
	}
}

func FuzzParseResource(f *testing.F) {
	for _, tt := range parseResourceAccepts {
		f.Add(tt.in)
	}
	for _, tt := range parseResourceRejects {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseResource(s)
		if err != nil {
			return
		}
		if got := r.String(); got != s {
			t.Fatalf("ParseResource(%q).String() = %q, want the input", s, got)
		}
		again, err := ParseResource(r.String())
		if err != nil {
			t.Fatalf("ParseResource(%q) succeeded but ParseResource of its String() %q failed: %v", s, r.String(), err)
		}
		if again != r {
			t.Fatalf("ParseResource(%q) = %#v, but ParseResource(String()) = %#v", s, r, again)
		}
		if err := CheckName(r.Name); err != nil {
			t.Fatalf("ParseResource(%q) accepted name %q, which CheckName refuses: %v", s, r.Name, err)
		}
		if err := checkMeshName(r.Mesh); err != nil {
			t.Fatalf("ParseResource(%q) accepted mesh %q, which checkMeshName refuses: %v", s, r.Mesh, err)
		}
		if r.Kind != VirtualNode && r.Kind != VirtualGateway {
			t.Fatalf("ParseResource(%q) returned kind %q", s, r.Kind)
		}
		if !strings.HasSuffix(s, r.ShortForm()) {
			t.Fatalf("ParseResource(%q).ShortForm() = %q is not a suffix of the input", s, r.ShortForm())
		}
	})
}
