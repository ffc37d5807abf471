package load_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/meshd/meshd/internal/appmesh/load"
)

// docWant is one expected Doc; spec is JSON, compared semantically.
type docWant struct {
	loc                      load.Loc
	format                   load.Format
	kind, mesh, parent, name string
	spec                     string
}

// problemWant is one expected Problem: its exact location and substrings
// of its message.
type problemWant struct {
	loc  load.Loc
	msgs []string
}

type loadCase struct {
	name     string
	files    []load.File
	opt      load.Options
	docs     []docWant
	problems []problemWant
	warnings []problemWant
	skipped  int
}

func file(name, data string) load.File { return load.File{Name: name, Data: []byte(data)} }

func at(file string, doc int, resource, path string) load.Loc {
	return load.Loc{File: file, Doc: doc, Resource: resource, Path: path}
}

func prob(loc load.Loc, msgs ...string) problemWant { return problemWant{loc, msgs} }

// crd builds one appmesh.k8s.aws/v1beta2 object; spec is unindented YAML.
func crd(kind, namespace, name, spec string) string {
	return k8s("appmesh.k8s.aws/v1beta2", kind, namespace, name, spec)
}

func k8s(api, kind, namespace, name, spec string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: %s\nkind: %s\nmetadata:\n", api, kind)
	if name != "" {
		fmt.Fprintf(&b, "  name: %s\n", name)
	}
	if namespace != "" {
		fmt.Fprintf(&b, "  namespace: %s\n", namespace)
	}
	if spec != "" {
		b.WriteString("spec:\n")
		for _, l := range strings.Split(strings.TrimRight(spec, "\n"), "\n") {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// yamlDocs joins YAML documents into one multi-document file.
func yamlDocs(docs ...string) string { return strings.Join(docs, "---\n") }

const (
	acmCert = "arn:aws:acm:us-west-2:111122223333:certificate/abc"
	acmCA   = "arn:aws:acm-pca:us-west-2:111122223333:certificate-authority/ca"
	meshARN = "arn:aws:appmesh:us-west-2:111122223333:mesh/"
)

var cliCases = []loadCase{
	{
		name: "cli/create input with meshName; clientToken and tags ignored",
		files: []load.File{file("vn.json", `{
  "meshName": "shop",
  "virtualNodeName": "front",
  "clientToken": "3f1c7a",
  "tags": [{"key": "team", "value": "web"}],
  "spec": {
    "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
    "serviceDiscovery": {"dns": {"hostname": "front.shop.local"}}
  }
}`)},
		docs: []docWant{{at("vn.json", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "front",
			`{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}}],"serviceDiscovery":{"dns":{"hostname":"front.shop.local"}}}`}},
	},
	{
		name: "cli/create input without meshName takes the default mesh",
		files: []load.File{file("vs.json", `{"virtualServiceName": "front.shop.local",
 "spec": {"provider": {"virtualNode": {"virtualNodeName": "front"}}}}`)},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{{at("vs.json", 0, "", ""), load.CLI, load.VirtualService, "dflt", "", "front.shop.local",
			`{"provider":{"virtualNode":{"virtualNodeName":"front"}}}`}},
	},
	{
		name: "cli/create input without meshName takes the only mesh in the files",
		files: []load.File{
			file("mesh.json", `{"meshName": "shop", "spec": {"egressFilter": {"type": "DROP_ALL"}}}`),
			file("vr.json", `{"virtualRouterName": "router", "spec": {"listeners": [{"portMapping": {"port": 80, "protocol": "http"}}]}}`),
		},
		docs: []docWant{
			{at("mesh.json", 0, "", ""), load.CLI, load.Mesh, "shop", "", "shop", `{"egressFilter":{"type":"DROP_ALL"}}`},
			{at("vr.json", 0, "", ""), load.CLI, load.VirtualRouter, "shop", "", "router", `{"listeners":[{"portMapping":{"port":80,"protocol":"http"}}]}`},
		},
	},
	{
		// Options.DefaultMesh: "the mesh of resources whose file does not
		// [name one] when the files define no mesh or several".
		name: "cli/the only mesh in the files wins over the default mesh",
		files: []load.File{
			file("mesh.json", `{"meshName": "shop"}`),
			file("vr.json", `{"virtualRouterName": "router"}`),
		},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("mesh.json", 0, "", ""), load.CLI, load.Mesh, "shop", "", "shop", `{}`},
			{at("vr.json", 0, "", ""), load.CLI, load.VirtualRouter, "shop", "", "router", `{}`},
		},
	},
	{
		name: "cli/without meshName, several meshes and no default",
		files: []load.File{
			file("a.json", `{"meshName": "a"}`),
			file("b.json", `{"meshName": "b"}`),
			file("vn.json", `{"virtualNodeName": "front", "spec": {}}`),
		},
		docs: []docWant{
			{at("a.json", 0, "", ""), load.CLI, load.Mesh, "a", "", "a", `{}`},
			{at("b.json", 0, "", ""), load.CLI, load.Mesh, "b", "", "b", `{}`},
		},
		problems: []problemWant{prob(at("vn.json", 0, "", ""), `VirtualNode "front" names no mesh`)},
	},
	{
		name: "cli/route input with its virtual router",
		files: []load.File{file("route.json", `{
  "meshName": "shop", "virtualRouterName": "router", "routeName": "to-front",
  "spec": {"priority": 1, "httpRoute": {"match": {"prefix": "/"},
    "action": {"weightedTargets": [{"virtualNode": "front", "weight": 1}]}}}
}`)},
		docs: []docWant{{at("route.json", 0, "", ""), load.CLI, load.Route, "shop", "router", "to-front",
			`{"priority":1,"httpRoute":{"match":{"prefix":"/"},"action":{"weightedTargets":[{"virtualNode":"front","weight":1}]}}}`}},
	},
	{
		name: "cli/gateway route input with its virtual gateway",
		files: []load.File{file("gr.json", `{
  "meshName": "shop", "virtualGatewayName": "ingress", "gatewayRouteName": "to-front",
  "spec": {"httpRoute": {"match": {"prefix": "/front"},
    "action": {"target": {"virtualService": {"virtualServiceName": "front.shop.local"}}}}}
}`)},
		docs: []docWant{{at("gr.json", 0, "", ""), load.CLI, load.GatewayRoute, "shop", "ingress", "to-front",
			`{"httpRoute":{"match":{"prefix":"/front"},"action":{"target":{"virtualService":{"virtualServiceName":"front.shop.local"}}}}}`}},
	},
	{
		name: "cli/virtual gateway input (not mistaken for a gateway route)",
		files: []load.File{file("vg.json", `{"meshName": "shop", "virtualGatewayName": "ingress",
 "spec": {"listeners": [{"portMapping": {"port": 8443, "protocol": "http"}}]}}`)},
		docs: []docWant{{at("vg.json", 0, "", ""), load.CLI, load.VirtualGateway, "shop", "", "ingress",
			`{"listeners":[{"portMapping":{"port":8443,"protocol":"http"}}]}`}},
	},
	{
		name:     "cli/route without its virtual router",
		files:    []load.File{file("route.json", `{"meshName": "shop", "routeName": "to-front", "spec": {}}`)},
		problems: []problemWant{prob(at("route.json", 0, "", ""), `Route "to-front" has no virtualRouterName`)},
	},
	{
		name:     "cli/gateway route without its virtual gateway",
		files:    []load.File{file("gr.json", `{"meshName": "shop", "gatewayRouteName": "gr"}`)},
		problems: []problemWant{prob(at("gr.json", 0, "", ""), `GatewayRoute "gr" has no virtualGatewayName`)},
	},
	{
		name: "cli/spec missing is {}",
		files: []load.File{
			file("mesh.json", `{"meshName": "shop"}`),
			file("vr.json", `{"meshName": "shop", "virtualRouterName": "router", "clientToken": "x"}`),
		},
		docs: []docWant{
			{at("mesh.json", 0, "", ""), load.CLI, load.Mesh, "shop", "", "shop", `{}`},
			{at("vr.json", 0, "", ""), load.CLI, load.VirtualRouter, "shop", "", "router", `{}`},
		},
	},
	{
		name:     "cli/spec that is not a mapping",
		files:    []load.File{file("vn.json", `{"meshName": "shop", "virtualNodeName": "front", "spec": [1, 2]}`)},
		problems: []problemWant{prob(at("vn.json", 0, "", "spec"), "spec is a list, not a mapping")},
	},
	{
		name: "cli/input as YAML",
		files: []load.File{file("vn.yaml", `meshName: shop
virtualNodeName: front
spec:
  listeners:
    - portMapping:
        port: 8080
        protocol: http
`)},
		docs: []docWant{{at("vn.yaml", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "front",
			`{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}}]}`}},
	},
	{
		name: "describe/virtual node output; metadata and status ignored",
		files: []load.File{file("describe.json", `{
  "virtualNode": {
    "meshName": "shop",
    "virtualNodeName": "front",
    "metadata": {"arn": "arn:aws:appmesh:us-west-2:111122223333:mesh/shop/virtualNode/front",
      "createdAt": "2024-01-01T00:00:00Z", "version": 3, "uid": "u"},
    "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}],
      "backends": [{"virtualService": {"virtualServiceName": "back.shop.local"}}]},
    "status": {"status": "ACTIVE"}
  }
}`)},
		docs: []docWant{{at("describe.json", 0, "", "virtualNode"), load.Describe, load.VirtualNode, "shop", "", "front",
			`{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}}],"backends":[{"virtualService":{"virtualServiceName":"back.shop.local"}}]}`}},
	},
	{
		name: "describe/route output",
		files: []load.File{file("describe-route.json", `{"route": {"meshName": "shop", "virtualRouterName": "router",
 "routeName": "r", "spec": {"tcpRoute": {"action": {"weightedTargets": [{"virtualNode": "db", "weight": 1}]}}},
 "metadata": {"version": 1}, "status": {"status": "ACTIVE"}}}`)},
		docs: []docWant{{at("describe-route.json", 0, "", "route"), load.Describe, load.Route, "shop", "router", "r",
			`{"tcpRoute":{"action":{"weightedTargets":[{"virtualNode":"db","weight":1}]}}}`}},
	},
	{
		name: "describe/mesh output",
		files: []load.File{file("describe-mesh.json",
			`{"mesh": {"meshName": "shop", "spec": {"egressFilter": {"type": "ALLOW_ALL"}}, "status": {"status": "ACTIVE"}}}`)},
		docs: []docWant{{at("describe-mesh.json", 0, "", "mesh"), load.Describe, load.Mesh, "shop", "", "shop",
			`{"egressFilter":{"type":"ALLOW_ALL"}}`}},
	},
	{
		name: "describe/spec that is not a mapping is located inside the wrapper",
		files: []load.File{file("describe.json",
			`{"virtualNode": {"meshName": "shop", "virtualNodeName": "front", "spec": "none"}}`)},
		problems: []problemWant{prob(at("describe.json", 0, "", "virtualNode.spec"), "spec is a string, not a mapping")},
	},
	{
		// The wrapper says what kind this is; without virtualNodeName it
		// must not become a Mesh named after meshName.
		name: "describe/virtual node output without its name",
		files: []load.File{file("describe.json",
			`{"virtualNode": {"meshName": "shop", "spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}}}`)},
		problems: []problemWant{prob(at("describe.json", 0, "", "virtualNode"), "virtualNodeName")},
	},
	{
		name: "cli/an ECS task definition is not App Mesh",
		files: []load.File{file("taskdef.json", `{
  "family": "front",
  "networkMode": "awsvpc",
  "proxyConfiguration": {"type": "APPMESH", "containerName": "envoy",
    "properties": [{"name": "AppPorts", "value": "8080"}]},
  "containerDefinitions": [{"name": "envoy", "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod",
    "environment": [{"name": "APPMESH_RESOURCE_ARN", "value": "mesh/shop/virtualNode/front"}]}]
}`)},
		skipped: 1,
	},
	{
		name: "cli/a spec without name members",
		files: []load.File{file("vn.json",
			`{"spec": {"listeners": [{"portMapping": {"port": 8080, "protocol": "http"}}]}}`)},
		problems: []problemWant{prob(at("vn.json", 0, "", ""), "a spec without name members", "--mesh-name")},
	},
}

var yamlCases = []loadCase{
	{
		name: "yaml/empty documents are skipped and do not shift document indexes",
		files: []load.File{file("multi.yaml", `---
# only a comment
---
meshName: a
---
---
meshName: b
...
`)},
		docs: []docWant{
			{at("multi.yaml", 1, "", ""), load.CLI, load.Mesh, "a", "", "a", `{}`},
			{at("multi.yaml", 3, "", ""), load.CLI, load.Mesh, "b", "", "b", `{}`},
		},
	},
	{
		name:  "yaml/a file of only comments and blank lines",
		files: []load.File{file("empty.yaml", "# nothing here\n\n"), file("blank.json", "  \n")},
	},
	{
		name: "yaml/scalar and list documents",
		files: []load.File{file("multi.yaml", `meshName: a
---
hello
---
42
---
- meshName: b
`)},
		docs: []docWant{{at("multi.yaml", 0, "", ""), load.CLI, load.Mesh, "a", "", "a", `{}`}},
		problems: []problemWant{
			prob(at("multi.yaml", 1, "", ""), "a string, not a mapping"),
			prob(at("multi.yaml", 2, "", ""), "a scalar, not a mapping"),
			prob(at("multi.yaml", 3, "", ""), "a list, not a mapping"),
		},
	},
	{
		name: "yaml/duplicate keys",
		files: []load.File{file("dup.yaml", `meshName: a
---
meshName: b
spec:
  egressFilter:
    type: ALLOW_ALL
    type: DROP_ALL
`)},
		docs: []docWant{{at("dup.yaml", 0, "", ""), load.CLI, load.Mesh, "a", "", "a", `{}`}},
		problems: []problemWant{
			prob(at("dup.yaml", 1, "", ""), `line 7: key "type" appears twice`),
		},
	},
	{
		name: "yaml/a syntax error in document 3 keeps documents 1 and 2",
		files: []load.File{file("multi.yaml", `meshName: a
---
meshName: b
---
meshName: [c
---
meshName: d
`)},
		docs: []docWant{
			{at("multi.yaml", 0, "", ""), load.CLI, load.Mesh, "a", "", "a", `{}`},
			{at("multi.yaml", 1, "", ""), load.CLI, load.Mesh, "b", "", "b", `{}`},
		},
		problems: []problemWant{prob(at("multi.yaml", 2, "", ""), "not YAML")},
	},
	{
		name:     "yaml/a file that is neither JSON nor YAML",
		files:    []load.File{file("bad.json", `{"meshName": "a",, }`)},
		problems: []problemWant{prob(at("bad.json", 0, "", ""), "neither JSON", "nor YAML")},
	},
	{
		name: "yaml/anchors and aliases",
		files: []load.File{file("alias.yaml", `meshName: shop
virtualNodeName: front
spec:
  listeners:
    - portMapping: &pm
        port: 8080
        protocol: http
      healthCheck:
        port: 8080
        protocol: http
        path: /ping
        healthyThreshold: 2
        unhealthyThreshold: 2
        intervalMillis: 5000
        timeoutMillis: 2000
  logging: null
  backendDefaults:
    clientPolicy: {}
  serviceDiscovery: {dns: {hostname: front.local}}
  x-copy: *pm
`)},
		docs: []docWant{{at("alias.yaml", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "front",
			`{"listeners":[{"portMapping":{"port":8080,"protocol":"http"},"healthCheck":{"port":8080,"protocol":"http","path":"/ping",
			  "healthyThreshold":2,"unhealthyThreshold":2,"intervalMillis":5000,"timeoutMillis":2000}}],
			  "logging":null,"backendDefaults":{"clientPolicy":{}},"serviceDiscovery":{"dns":{"hostname":"front.local"}},
			  "x-copy":{"port":8080,"protocol":"http"}}`}},
	},
	{
		// YAML merge keys: keys of the mapping itself override merged ones,
		// wherever the << appears.
		name: "yaml/merge key overridden by an explicit key",
		files: []load.File{file("merge.yaml", `defaults: &listener
  port: 8080
  protocol: http
meshName: shop
virtualNodeName: front
spec:
  listeners:
    - portMapping:
        <<: *listener
        port: 9090
`)},
		docs: []docWant{{at("merge.yaml", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "front",
			`{"listeners":[{"portMapping":{"port":9090,"protocol":"http"}}]}`}},
	},
}

// cfnShort is a template in YAML with short-form intrinsics.
const cfnShort = `AWSTemplateFormatVersion: "2010-09-09"
Description: short forms
Parameters:
  MeshName:
    Type: String
    Default: shop
  Domain:
    Type: String
    Default: shop.local
  NodePort:
    Type: Number
    Default: 8080
Mappings:
  Weights:
    prod:
      Primary: "90"
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: /mesh
  Mesh:
    Type: AWS::AppMesh::Mesh
    Properties:
      MeshName: !Ref MeshName
      Spec:
        EgressFilter:
          Type: DROP_ALL
        ServiceDiscovery:
          IpPreference: IPv4_PREFERRED
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: !GetAtt Mesh.MeshName
      VirtualNodeName: !Sub "${MeshName}-node"
      Spec:
        Listeners:
          - PortMapping:
              Port: !Ref NodePort
              Protocol: http
            TLS:
              Mode: STRICT
              Certificate:
                ACM:
                  CertificateArn: ` + acmCert + `
            Timeout:
              Http:
                Idle:
                  Unit: ms
                  Value: "5000"
        ServiceDiscovery:
          AWSCloudMap:
            NamespaceName: !Ref Domain
            ServiceName: node
            Attributes:
              - Key: version
                Value: "2"
        BackendDefaults:
          ClientPolicy:
            TLS:
              Enforce: "true"
              Ports: ["443", 8443]
              Validation:
                Trust:
                  ACM:
                    CertificateAuthorityArns:
                      - ` + acmCA + `
        Backends:
          - VirtualService:
              VirtualServiceName: !Sub "${!Literal}.${Domain}"
  Service:
    Type: AWS::AppMesh::VirtualService
    Properties:
      MeshName: !GetAtt Mesh.MeshName
      VirtualServiceName: !Join [".", [front, !Ref Domain]]
      Spec:
        Provider:
          VirtualRouter:
            VirtualRouterName: !GetAtt Router.VirtualRouterName
  Router:
    Type: AWS::AppMesh::VirtualRouter
    Properties:
      MeshName: !Ref MeshName
      VirtualRouterName: !Sub "${Node.VirtualNodeName}-router"
      Spec:
        Listeners:
          - PortMapping: {Port: "8080", Protocol: http2}
  Route:
    Type: AWS::AppMesh::Route
    Properties:
      MeshName: !Ref MeshName
      VirtualRouterName: !GetAtt Router.VirtualRouterName
      RouteName: !Select [1, [first, second, third]]
      Spec:
        Priority: "10"
        Http2Route:
          Match:
            Prefix: /
            Headers:
              - Name: x-canary
                Invert: "false"
                Match:
                  Range: {Start: "1", End: "5"}
          Action:
            WeightedTargets:
              - VirtualNode: !GetAtt Node.VirtualNodeName
                Weight: !FindInMap [Weights, prod, Primary]
          RetryPolicy:
            MaxRetries: "3"
            PerRetryTimeout: {Unit: ms, Value: "2000"}
            HttpRetryEvents: [server-error]
`

// cfnGateway exercises the list form of Fn::Sub.
const cfnGateway = `Parameters:
  Domain:
    Type: String
    Default: shop.local
Resources:
  Gateway:
    Type: AWS::AppMesh::VirtualGateway
    Properties:
      MeshName: shop
      VirtualGatewayName: !Sub ["${Name}-gw", {Name: !Select ["0", [edge, other]]}]
      Spec:
        Listeners:
          - PortMapping: {Port: 8443, Protocol: http}
            TLS:
              Mode: STRICT
              Certificate:
                SDS: {SecretName: gw}
        Logging:
          AccessLog:
            File:
              Path: /dev/stdout
              Format:
                Json:
                  - Key: status
                    Value: "%RESPONSE_CODE%"
  GatewayRoute:
    Type: AWS::AppMesh::GatewayRoute
    Properties:
      MeshName: shop
      VirtualGatewayName: !GetAtt Gateway.VirtualGatewayName
      GatewayRouteName: !Sub
        - "${Gw}-to-${Svc}"
        - Gw: !GetAtt Gateway.VirtualGatewayName
          Svc: front
      Spec:
        Priority: "5"
        HttpRoute:
          Match:
            Prefix: !Sub "/${!Literal}/"
            Port: "8443"
          Action:
            Target:
              VirtualService:
                VirtualServiceName: !Sub ["front.${Domain}", {}]
              Port: "8080"
            Rewrite:
              Prefix:
                DefaultPrefix: DISABLED
`

// cfnJSON is a template in JSON with long-form intrinsics.
const cfnJSON = `{
  "AWSTemplateFormatVersion": "2010-09-09",
  "Parameters": {
    "MeshName": {"Type": "String", "Default": "shop"},
    "Port": {"Type": "Number", "Default": "9090"}
  },
  "Mappings": {"Hosts": {"us-west-2": {"Node": "node.us-west-2.local"}}},
  "Resources": {
    "Topic": {"Type": "AWS::SNS::Topic"},
    "Mesh": {"Type": "AWS::AppMesh::Mesh", "Properties": {"MeshName": {"Ref": "MeshName"}}},
    "Node": {"Type": "AWS::AppMesh::VirtualNode", "Properties": {
      "MeshName": {"Fn::GetAtt": ["Mesh", "MeshName"]},
      "VirtualNodeName": {"Fn::Join": ["-", [{"Ref": "MeshName"}, "node"]]},
      "Spec": {
        "Listeners": [{
          "PortMapping": {"Port": {"Ref": "Port"}, "Protocol": "grpc"},
          "OutlierDetection": {"MaxServerErrors": "5", "MaxEjectionPercent": "50",
            "Interval": {"Unit": "s", "Value": "10"}, "BaseEjectionDuration": {"Unit": "s", "Value": 30}},
          "ConnectionPool": {"GRPC": {"MaxRequests": "100"}}
        }],
        "ServiceDiscovery": {"DNS": {
          "Hostname": {"Fn::FindInMap": ["Hosts", "us-west-2", "Node"]},
          "ResponseType": "LOADBALANCER"}}
      }}},
    "Service": {"Type": "AWS::AppMesh::VirtualService", "Properties": {
      "MeshName": {"Ref": "MeshName"},
      "VirtualServiceName": {"Fn::Sub": "${MeshName}.svc"},
      "Spec": {"Provider": {"VirtualNode": {"VirtualNodeName": {"Fn::GetAtt": ["Node", "VirtualNodeName"]}}}}}},
    "Route": {"Type": "AWS::AppMesh::Route", "Properties": {
      "MeshName": "shop",
      "VirtualRouterName": "router",
      "RouteName": {"Fn::Select": [0, ["grpc-route"]]},
      "Spec": {"GrpcRoute": {
        "Match": {"ServiceName": "shop.Cart", "Metadata": [{"Name": "x", "Invert": "true", "Match": {"Exact": "1"}}]},
        "Action": {"WeightedTargets": [{"VirtualNode": {"Fn::Sub": ["${N}", {"N": {"Fn::GetAtt": ["Node", "VirtualNodeName"]}}]}, "Weight": "100"}]},
        "RetryPolicy": {"MaxRetries": 2, "PerRetryTimeout": {"Unit": "ms", "Value": "250"}, "GrpcRetryEvents": ["unavailable"]},
        "Timeout": {"PerRequest": {"Unit": "s", "Value": "15"}}
      }}}}
  }
}`

// cfnProblems holds one resource per value that cannot be resolved
// offline.
const cfnProblems = `AWSTemplateFormatVersion: "2010-09-09"
Conditions:
  IsProd: !Equals [!Ref "AWS::AccountId", "111122223333"]
Resources:
  Arn:
    Type: AWS::AppMesh::VirtualService
    Properties:
      MeshName: mesh
      VirtualServiceName: arn.local
      Spec:
        Provider:
          VirtualNode:
            VirtualNodeName: !GetAtt Node.Arn
  Cond:
    Type: AWS::AppMesh::VirtualService
    Condition: IsProd
    Properties:
      MeshName: mesh
      VirtualServiceName: cond.local
  If:
    Type: AWS::AppMesh::VirtualService
    Properties:
      MeshName: mesh
      VirtualServiceName: !If [IsProd, a.local, b.local]
  Import:
    Type: AWS::AppMesh::VirtualService
    Properties:
      MeshName: !ImportValue shared-mesh-name
      VirtualServiceName: import.local
  LB:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Scheme: internal
  LBHost:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: lbhost
      Spec:
        ServiceDiscovery:
          DNS:
            Hostname: !GetAtt LB.DNSName
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: node
  RefNode:
    Type: AWS::AppMesh::VirtualService
    Properties:
      MeshName: mesh
      VirtualServiceName: refnode.local
      Spec:
        Provider:
          VirtualNode:
            VirtualNodeName: !Ref Node
  Region:
    Type: AWS::AppMesh::VirtualService
    Properties:
      MeshName: mesh
      VirtualServiceName: !Sub "svc.${AWS::Region}.local"
`

// cfnNoDefault has parameters without Default.
const cfnNoDefault = `Parameters:
  MeshName:
    Type: String
  Domain:
    Type: String
  Port:
    Type: Number
    Default: 8080
Resources:
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: !Ref MeshName
      VirtualNodeName: node
      Spec:
        ServiceDiscovery:
          DNS:
            Hostname: !Ref Domain
  Node2:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: node2
      Spec:
        Listeners:
          - PortMapping:
              Port: !Ref Port
              Protocol: http
          - PortMapping:
              Port: !Ref Missing
              Protocol: http
`

const cfnOverride = `Parameters:
  MeshName:
    Type: String
    Default: shop
  Domain:
    Type: String
  Port:
    Type: Number
    Default: 8080
Resources:
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: !Ref MeshName
      VirtualNodeName: node
      Spec:
        Listeners:
          - PortMapping: {Port: !Ref Port, Protocol: http}
        ServiceDiscovery:
          DNS:
            Hostname: !Sub "node.${Domain}"
`

// cfnMisc covers intrinsics used wrongly.
const cfnMisc = `Mappings:
  Weights:
    prod: {Primary: 90}
Resources:
  BadMap:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: badmap
      Spec:
        Listeners:
          - PortMapping: {Port: !FindInMap [Weights, dev, Primary], Protocol: http}
  BadSelect:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: !Select [5, [a, b]]
  BadSub:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: !Sub "node-${Oops"
  NoName:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
  NoResource:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: !GetAtt Nope.MeshName
      VirtualNodeName: noresource
  SpecList:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: speclist
      Spec: [a, b]
`

var cfnCases = []loadCase{
	{
		name:  "cfn/yaml short forms, PascalCase to camelCase, string coercion",
		files: []load.File{file("stack.yaml", cfnShort)},
		docs: []docWant{
			{at("stack.yaml", 0, "Mesh", ""), load.CloudFormation, load.Mesh, "shop", "", "shop",
				`{"egressFilter":{"type":"DROP_ALL"},"serviceDiscovery":{"ipPreference":"IPv4_PREFERRED"}}`},
			{at("stack.yaml", 0, "Node", ""), load.CloudFormation, load.VirtualNode, "shop", "", "shop-node", `{
  "listeners": [{
    "portMapping": {"port": 8080, "protocol": "http"},
    "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": "` + acmCert + `"}}},
    "timeout": {"http": {"idle": {"unit": "ms", "value": 5000}}}
  }],
  "serviceDiscovery": {"awsCloudMap": {"namespaceName": "shop.local", "serviceName": "node",
    "attributes": [{"key": "version", "value": "2"}]}},
  "backendDefaults": {"clientPolicy": {"tls": {"enforce": true, "ports": [443, 8443],
    "validation": {"trust": {"acm": {"certificateAuthorityArns": ["` + acmCA + `"]}}}}}},
  "backends": [{"virtualService": {"virtualServiceName": "${Literal}.shop.local"}}]
}`},
			{at("stack.yaml", 0, "Route", ""), load.CloudFormation, load.Route, "shop", "shop-node-router", "second", `{
  "priority": 10,
  "http2Route": {
    "match": {"prefix": "/", "headers": [{"name": "x-canary", "invert": false, "match": {"range": {"start": 1, "end": 5}}}]},
    "action": {"weightedTargets": [{"virtualNode": "shop-node", "weight": 90}]},
    "retryPolicy": {"maxRetries": 3, "perRetryTimeout": {"unit": "ms", "value": 2000}, "httpRetryEvents": ["server-error"]}
  }
}`},
			{at("stack.yaml", 0, "Router", ""), load.CloudFormation, load.VirtualRouter, "shop", "", "shop-node-router",
				`{"listeners":[{"portMapping":{"port":8080,"protocol":"http2"}}]}`},
			{at("stack.yaml", 0, "Service", ""), load.CloudFormation, load.VirtualService, "shop", "", "front.shop.local",
				`{"provider":{"virtualRouter":{"virtualRouterName":"shop-node-router"}}}`},
		},
		skipped: 1,
	},
	{
		name:  "cfn/Fn::Sub list form, Select with a string index, values that stay strings",
		files: []load.File{file("gw.yaml", cfnGateway)},
		docs: []docWant{
			{at("gw.yaml", 0, "Gateway", ""), load.CloudFormation, load.VirtualGateway, "shop", "", "edge-gw", `{
  "listeners": [{"portMapping": {"port": 8443, "protocol": "http"},
    "tls": {"mode": "STRICT", "certificate": {"sds": {"secretName": "gw"}}}}],
  "logging": {"accessLog": {"file": {"path": "/dev/stdout", "format": {"json": [{"key": "status", "value": "%RESPONSE_CODE%"}]}}}}
}`},
			{at("gw.yaml", 0, "GatewayRoute", ""), load.CloudFormation, load.GatewayRoute, "shop", "edge-gw", "edge-gw-to-front", `{
  "priority": 5,
  "httpRoute": {
    "match": {"prefix": "/${Literal}/", "port": 8443},
    "action": {"target": {"virtualService": {"virtualServiceName": "front.shop.local"}, "port": 8080},
      "rewrite": {"prefix": {"defaultPrefix": "DISABLED"}}}
  }
}`},
		},
	},
	{
		name:  "cfn/json long forms",
		files: []load.File{file("stack.json", cfnJSON)},
		docs: []docWant{
			{at("stack.json", 0, "Mesh", ""), load.CloudFormation, load.Mesh, "shop", "", "shop", `{}`},
			{at("stack.json", 0, "Node", ""), load.CloudFormation, load.VirtualNode, "shop", "", "shop-node", `{
  "listeners": [{
    "portMapping": {"port": 9090, "protocol": "grpc"},
    "outlierDetection": {"maxServerErrors": 5, "maxEjectionPercent": 50,
      "interval": {"unit": "s", "value": 10}, "baseEjectionDuration": {"unit": "s", "value": 30}},
    "connectionPool": {"grpc": {"maxRequests": 100}}
  }],
  "serviceDiscovery": {"dns": {"hostname": "node.us-west-2.local", "responseType": "LOADBALANCER"}}
}`},
			{at("stack.json", 0, "Route", ""), load.CloudFormation, load.Route, "shop", "router", "grpc-route", `{
  "grpcRoute": {
    "match": {"serviceName": "shop.Cart", "metadata": [{"name": "x", "invert": true, "match": {"exact": "1"}}]},
    "action": {"weightedTargets": [{"virtualNode": "shop-node", "weight": 100}]},
    "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "ms", "value": 250}, "grpcRetryEvents": ["unavailable"]},
    "timeout": {"perRequest": {"unit": "s", "value": 15}}
  }
}`},
			{at("stack.json", 0, "Service", ""), load.CloudFormation, load.VirtualService, "shop", "", "shop.svc",
				`{"provider":{"virtualNode":{"virtualNodeName":"shop-node"}}}`},
		},
		skipped: 1,
	},
	{
		name:  "cfn/values only a deployed stack knows",
		files: []load.File{file("stack.yaml", cfnProblems)},
		docs: []docWant{
			{at("stack.yaml", 0, "Node", ""), load.CloudFormation, load.VirtualNode, "mesh", "", "node", `{}`},
		},
		problems: []problemWant{
			prob(at("stack.yaml", 0, "Arn", "Properties.Spec.Provider.VirtualNode.VirtualNodeName"),
				"Fn::GetAtt Node.Arn is known only to a deployed stack"),
			prob(at("stack.yaml", 0, "Cond", "Condition"), "condition IsProd", "offline"),
			prob(at("stack.yaml", 0, "If", "Properties.VirtualServiceName"), "Fn::If depends on conditions", "offline"),
			prob(at("stack.yaml", 0, "Import", "Properties.MeshName"), "Fn::ImportValue", "offline"),
			prob(at("stack.yaml", 0, "LBHost", "Properties.Spec.ServiceDiscovery.DNS.Hostname"),
				"Fn::GetAtt LB.DNSName is an attribute of a deployed AWS::ElasticLoadBalancingV2::LoadBalancer"),
			prob(at("stack.yaml", 0, "RefNode", "Properties.Spec.Provider.VirtualNode.VirtualNodeName"),
				"Ref Node is the ARN or id of a deployed resource", "!GetAtt Node."),
			prob(at("stack.yaml", 0, "Region", "Properties.VirtualServiceName"), "Ref AWS::Region is known only to a deployed stack"),
		},
		skipped: 1,
	},
	{
		name:  "cfn/parameters without Default",
		files: []load.File{file("stack.yaml", cfnNoDefault)},
		problems: []problemWant{
			prob(at("stack.yaml", 0, "Node", "Properties.MeshName"), "parameter MeshName has no Default", "offline"),
			prob(at("stack.yaml", 0, "Node", "Properties.Spec.ServiceDiscovery.DNS.Hostname"),
				"parameter Domain has no Default", "--cfn-parameter Domain=VALUE"),
			prob(at("stack.yaml", 0, "Node2", "Properties.Spec.Listeners[1].PortMapping.Port"),
				"Ref Missing: no parameter with a Default or resource of that name"),
		},
	},
	{
		name:  "cfn/parameters given offline win over Default",
		files: []load.File{file("stack.yaml", cfnOverride)},
		opt:   load.Options{Parameters: map[string]string{"MeshName": "prod", "Domain": "prod.local", "Port": "9090", "Undeclared": "x"}},
		docs: []docWant{{at("stack.yaml", 0, "Node", ""), load.CloudFormation, load.VirtualNode, "prod", "", "node",
			`{"listeners":[{"portMapping":{"port":9090,"protocol":"http"}}],"serviceDiscovery":{"dns":{"hostname":"node.prod.local"}}}`}},
	},
	{
		name: "cfn/an undeclared parameter given offline is not a parameter",
		files: []load.File{file("stack.yaml", `Resources:
  Mesh:
    Type: AWS::AppMesh::Mesh
    Properties:
      MeshName: !Ref Undeclared
`)},
		opt:      load.Options{Parameters: map[string]string{"Undeclared": "x"}},
		problems: []problemWant{prob(at("stack.yaml", 0, "Mesh", "Properties.MeshName"), "Ref Undeclared: no parameter")},
	},
	{
		// The unresolvable value is an element of Fn::Join's list, not an
		// element of Hostname: the location must be the field (or a path
		// that exists in the template).
		name: "cfn/a parameter without Default inside Fn::Join is located at the field",
		files: []load.File{file("stack.yaml", `Parameters:
  Domain: {Type: String}
Resources:
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: node
      Spec:
        ServiceDiscovery:
          DNS:
            Hostname: !Join ["", [!Ref Domain, ".local"]]
`)},
		problems: []problemWant{prob(at("stack.yaml", 0, "Node", "Properties.Spec.ServiceDiscovery.DNS.Hostname"),
			"parameter Domain has no Default")},
	},
	{
		name:  "cfn/intrinsics used wrongly and missing names",
		files: []load.File{file("stack.yaml", cfnMisc)},
		problems: []problemWant{
			prob(at("stack.yaml", 0, "BadMap", "Properties.Spec.Listeners[0].PortMapping.Port"), "Fn::FindInMap: no Weights/dev/Primary in Mappings"),
			prob(at("stack.yaml", 0, "BadSelect", "Properties.VirtualNodeName"), "Fn::Select: index 5 out of range"),
			prob(at("stack.yaml", 0, "BadSub", "Properties.VirtualNodeName"), "Fn::Sub: unterminated ${"),
			prob(at("stack.yaml", 0, "NoName", "Properties.VirtualNodeName"), "missing or not a string"),
			prob(at("stack.yaml", 0, "NoResource", "Properties.MeshName"), "Fn::GetAtt Nope.MeshName: no resource Nope"),
			prob(at("stack.yaml", 0, "SpecList", "Properties.Spec"), "spec is a list, not a mapping"),
		},
	},
	{
		// A duration needs both members; the loader must not invent one.
		name: "cfn/a duration without Value gets no value member",
		files: []load.File{file("stack.yaml", `Resources:
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: node
      Spec:
        Listeners:
          - PortMapping: {Port: 80, Protocol: http}
            Timeout:
              Http:
                Idle: {Unit: ms}
`)},
		docs: []docWant{{at("stack.yaml", 0, "Node", ""), load.CloudFormation, load.VirtualNode, "mesh", "", "node",
			`{"listeners":[{"portMapping":{"port":80,"protocol":"http"},"timeout":{"http":{"idle":{"unit":"ms"}}}}]}`}},
	},
	{
		name: "cfn/a template with only non-App Mesh resources",
		files: []load.File{file("stack.json", `{"AWSTemplateFormatVersion": "2010-09-09",
 "Resources": {"A": {"Type": "AWS::S3::Bucket"}, "B": {"Type": "AWS::ECS::Service", "Properties": {}}, "C": {"Type": "Custom::Thing"}}}`)},
		skipped: 3,
	},
}

var crdCases = []loadCase{
	{
		name: "crd/mesh, node backends, renames and k8s-only fields",
		files: []load.File{file("app.yaml", yamlDocs(
			crd("Mesh", "", "app", `namespaceSelector:
  matchLabels: {mesh: app}
egressFilter: {type: ALLOW_ALL}
meshServiceDiscovery: {ipPreference: IPv6_ONLY}
`),
			crd("VirtualNode", "shop", "front", `podSelector:
  matchLabels: {app: front}
meshRef: {name: app, uid: 1234}
listeners:
  - portMapping: {port: 8080, protocol: http}
    tls:
      mode: STRICT
      certificate:
        acm:
          certificateARN: `+acmCert+`
serviceDiscovery:
  dns: {hostname: front.shop.svc.cluster.local}
backends:
  - virtualService:
      virtualServiceRef: {name: back}
  - virtualService:
      virtualServiceRef: {name: pay, namespace: billing}
      clientPolicy:
        tls:
          validation:
            trust:
              acm:
                certificateAuthorityARNs: [`+acmCA+`]
  - virtualService:
      virtualServiceARN: `+meshARN+`app/virtualService/ext.example.com
backendGroups:
  - name: "*"
backendDefaults:
  clientPolicy:
    tls:
      enforce: true
      ports: [443]
      validation:
        trust:
          acm:
            certificateAuthorityARNs: [`+acmCA+`]
`),
			crd("VirtualService", "shop", "back", `awsName: back.shop.svc.cluster.local
provider:
  virtualNode:
    virtualNodeRef: {name: front}
`),
			crd("VirtualService", "billing", "pay", `provider:
  virtualNode:
    virtualNodeARN: `+meshARN+`app/virtualNode/pay_billing
`),
		))},
		docs: []docWant{
			{at("app.yaml", 0, "Mesh app", ""), load.Kubernetes, load.Mesh, "app", "", "app",
				`{"egressFilter":{"type":"ALLOW_ALL"},"serviceDiscovery":{"ipPreference":"IPv6_ONLY"}}`},
			{at("app.yaml", 1, "VirtualNode shop/front", ""), load.Kubernetes, load.VirtualNode, "app", "", "front_shop", `{
  "listeners": [{"portMapping": {"port": 8080, "protocol": "http"},
    "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": "` + acmCert + `"}}}}],
  "serviceDiscovery": {"dns": {"hostname": "front.shop.svc.cluster.local"}},
  "backends": [
    {"virtualService": {"virtualServiceName": "back.shop.svc.cluster.local"}},
    {"virtualService": {"virtualServiceName": "pay.billing",
      "clientPolicy": {"tls": {"validation": {"trust": {"acm": {"certificateAuthorityArns": ["` + acmCA + `"]}}}}}}},
    {"virtualService": {"virtualServiceName": "ext.example.com"}}
  ],
  "backendDefaults": {"clientPolicy": {"tls": {"enforce": true, "ports": [443],
    "validation": {"trust": {"acm": {"certificateAuthorityArns": ["` + acmCA + `"]}}}}}}
}`},
			{at("app.yaml", 3, "VirtualService billing/pay", ""), load.Kubernetes, load.VirtualService, "app", "", "pay.billing",
				`{"provider":{"virtualNode":{"virtualNodeName":"pay_billing"}}}`},
			{at("app.yaml", 2, "VirtualService shop/back", ""), load.Kubernetes, load.VirtualService, "app", "", "back.shop.svc.cluster.local",
				`{"provider":{"virtualNode":{"virtualNodeName":"front_shop"}}}`},
		},
	},
	{
		name: "crd/virtual service providers: refs with and without namespace, custom awsName, not in the files, ARN",
		files: []load.File{file("vs.yaml", yamlDocs(
			crd("VirtualNode", "billing", "pay", "awsName: pay-v1\nserviceDiscovery:\n  dns: {hostname: pay.billing}\n"),
			crd("VirtualRouter", "shop", "cart", "awsName: cart-router\nlisteners:\n  - portMapping: {port: 80, protocol: http}\n"),
			crd("VirtualService", "", "front", "provider:\n  virtualNode:\n    virtualNodeRef: {name: pay, namespace: billing}\n"),
			crd("VirtualService", "shop", "cart", "provider:\n  virtualRouter:\n    virtualRouterRef: {name: cart}\n"),
			crd("VirtualService", "shop", "search", "provider:\n  virtualNode:\n    virtualNodeRef: {name: search}\n"),
			crd("VirtualService", "shop", "other", "provider:\n  virtualRouter:\n    virtualRouterRef: {name: r, namespace: edge}\n"),
			crd("VirtualService", "shop", "ext", "provider:\n  virtualNode:\n    virtualNodeARN: "+meshARN+"dflt/virtualNode/ext-node\n"),
			crd("VirtualService", "shop", "none", ""),
		))},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("vs.yaml", 0, "VirtualNode billing/pay", ""), load.Kubernetes, load.VirtualNode, "dflt", "", "pay-v1",
				`{"serviceDiscovery":{"dns":{"hostname":"pay.billing"}}}`},
			{at("vs.yaml", 1, "VirtualRouter shop/cart", ""), load.Kubernetes, load.VirtualRouter, "dflt", "", "cart-router",
				`{"listeners":[{"portMapping":{"port":80,"protocol":"http"}}]}`},
			{at("vs.yaml", 2, "VirtualService default/front", ""), load.Kubernetes, load.VirtualService, "dflt", "", "front.default",
				`{"provider":{"virtualNode":{"virtualNodeName":"pay-v1"}}}`},
			{at("vs.yaml", 3, "VirtualService shop/cart", ""), load.Kubernetes, load.VirtualService, "dflt", "", "cart.shop",
				`{"provider":{"virtualRouter":{"virtualRouterName":"cart-router"}}}`},
			{at("vs.yaml", 6, "VirtualService shop/ext", ""), load.Kubernetes, load.VirtualService, "dflt", "", "ext.shop",
				`{"provider":{"virtualNode":{"virtualNodeName":"ext-node"}}}`},
			{at("vs.yaml", 7, "VirtualService shop/none", ""), load.Kubernetes, load.VirtualService, "dflt", "", "none.shop", `{}`},
			{at("vs.yaml", 5, "VirtualService shop/other", ""), load.Kubernetes, load.VirtualService, "dflt", "", "other.shop",
				`{"provider":{"virtualRouter":{"virtualRouterName":"r_edge"}}}`},
			{at("vs.yaml", 4, "VirtualService shop/search", ""), load.Kubernetes, load.VirtualService, "dflt", "", "search.shop",
				`{"provider":{"virtualNode":{"virtualNodeName":"search_shop"}}}`},
		},
	},
	{
		name: "crd/meshRef picks one of several meshes; a mesh not in the files; none and no default",
		files: []load.File{file("mesh.yaml", yamlDocs(
			crd("Mesh", "", "a", "awsName: mesh-a\n"),
			crd("Mesh", "", "b", ""),
			crd("VirtualNode", "", "n", "meshRef: {name: a}\n"),
			crd("VirtualNode", "", "m", "meshRef: {name: gone}\n"),
			crd("VirtualNode", "", "o", ""),
		))},
		docs: []docWant{
			{at("mesh.yaml", 0, "Mesh a", ""), load.Kubernetes, load.Mesh, "mesh-a", "", "mesh-a", `{}`},
			{at("mesh.yaml", 1, "Mesh b", ""), load.Kubernetes, load.Mesh, "b", "", "b", `{}`},
			{at("mesh.yaml", 3, "VirtualNode default/m", ""), load.Kubernetes, load.VirtualNode, "gone", "", "m_default", `{}`},
			{at("mesh.yaml", 2, "VirtualNode default/n", ""), load.Kubernetes, load.VirtualNode, "mesh-a", "", "n_default", `{}`},
		},
		problems: []problemWant{prob(at("mesh.yaml", 4, "VirtualNode default/o", ""), `VirtualNode "o_default" names no mesh`)},
	},
	{
		name: "crd/the only mesh in the files, across files, wins over the default mesh",
		files: []load.File{
			file("mesh.yaml", crd("Mesh", "", "app", "awsName: app-mesh\n")),
			file("node.yaml", crd("VirtualNode", "shop", "front", "")),
		},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("mesh.yaml", 0, "Mesh app", ""), load.Kubernetes, load.Mesh, "app-mesh", "", "app-mesh", `{}`},
			{at("node.yaml", 0, "VirtualNode shop/front", ""), load.Kubernetes, load.VirtualNode, "app-mesh", "", "front_shop", `{}`},
		},
	},
	{
		name: "crd/several meshes and a default mesh",
		files: []load.File{file("mesh.yaml", yamlDocs(
			crd("Mesh", "", "a", ""), crd("Mesh", "", "b", ""), crd("VirtualNode", "shop", "front", "")))},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("mesh.yaml", 0, "Mesh a", ""), load.Kubernetes, load.Mesh, "a", "", "a", `{}`},
			{at("mesh.yaml", 1, "Mesh b", ""), load.Kubernetes, load.Mesh, "b", "", "b", `{}`},
			{at("mesh.yaml", 2, "VirtualNode shop/front", ""), load.Kubernetes, load.VirtualNode, "dflt", "", "front_shop", `{}`},
		},
	},
	{
		name: "crd/virtual router with embedded routes",
		files: []load.File{file("router.yaml", yamlDocs(
			crd("VirtualNode", "colors", "blue", "awsName: blue-node\n"),
			crd("VirtualRouter", "colors", "color", `listeners:
  - portMapping: {port: 8080, protocol: http}
routes:
  - name: color-route
    priority: 10
    httpRoute:
      match:
        prefix: /
      action:
        weightedTargets:
          - virtualNodeRef: {name: blue}
            weight: 1
          - virtualNodeRef: {name: green, namespace: other}
            weight: 1
            port: 8080
          - virtualNodeARN: `+meshARN+`dflt/virtualNode/red_colors
            weight: 2
      retryPolicy:
        maxRetries: 2
        perRetryTimeout: {unit: ms, value: 2000}
        httpRetryEvents: [server-error]
  - name: tcp-route
    tcpRoute:
      action:
        weightedTargets:
          - virtualNodeRef: {name: white}
            weight: 100
  - name: grpc-route
    grpcRoute:
      match: {serviceName: color.Color}
      action:
        weightedTargets:
          - virtualNodeRef: {name: blue}
            weight: 1
  - name: h2-route
    http2Route:
      match: {prefix: /h2}
      action:
        weightedTargets:
          - virtualNodeRef: {name: blue, namespace: colors}
            weight: 1
`),
		))},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("router.yaml", 0, "VirtualNode colors/blue", ""), load.Kubernetes, load.VirtualNode, "dflt", "", "blue-node", `{}`},
			{at("router.yaml", 1, "VirtualRouter colors/color", ""), load.Kubernetes, load.VirtualRouter, "dflt", "", "color_colors",
				`{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}}]}`},
			{at("router.yaml", 1, "VirtualRouter colors/color", "spec.routes[0]"), load.Kubernetes, load.Route, "dflt", "color_colors", "color-route", `{
  "priority": 10,
  "httpRoute": {
    "match": {"prefix": "/"},
    "action": {"weightedTargets": [
      {"virtualNode": "blue-node", "weight": 1},
      {"virtualNode": "green_other", "weight": 1, "port": 8080},
      {"virtualNode": "red_colors", "weight": 2}]},
    "retryPolicy": {"maxRetries": 2, "perRetryTimeout": {"unit": "ms", "value": 2000}, "httpRetryEvents": ["server-error"]}
  }
}`},
			{at("router.yaml", 1, "VirtualRouter colors/color", "spec.routes[1]"), load.Kubernetes, load.Route, "dflt", "color_colors", "tcp-route",
				`{"tcpRoute":{"action":{"weightedTargets":[{"virtualNode":"white_colors","weight":100}]}}}`},
			{at("router.yaml", 1, "VirtualRouter colors/color", "spec.routes[2]"), load.Kubernetes, load.Route, "dflt", "color_colors", "grpc-route",
				`{"grpcRoute":{"match":{"serviceName":"color.Color"},"action":{"weightedTargets":[{"virtualNode":"blue-node","weight":1}]}}}`},
			{at("router.yaml", 1, "VirtualRouter colors/color", "spec.routes[3]"), load.Kubernetes, load.Route, "dflt", "color_colors", "h2-route",
				`{"http2Route":{"match":{"prefix":"/h2"},"action":{"weightedTargets":[{"virtualNode":"blue-node","weight":1}]}}}`},
		},
	},
	{
		name: "crd/a route without name",
		files: []load.File{file("router.yaml", crd("VirtualRouter", "colors", "color", `listeners:
  - portMapping: {port: 8080, protocol: http}
routes:
  - name: ok
    tcpRoute: {action: {weightedTargets: [{virtualNodeRef: {name: a}, weight: 1}]}}
  - tcpRoute: {action: {weightedTargets: [{virtualNodeRef: {name: b}, weight: 1}]}}
`))},
		opt:      load.Options{DefaultMesh: "dflt"},
		problems: []problemWant{prob(at("router.yaml", 0, "VirtualRouter colors/color", "spec.routes[1].name"), "missing")},
	},
	{
		name: "crd/gateway routes bound by ref and by namespace; targets resolved; ambiguous binding",
		files: []load.File{file("gw.yaml", yamlDocs(
			crd("VirtualGateway", "edge", "ingress", `namespaceSelector: {matchLabels: {gateway: ingress}}
podSelector: {matchLabels: {app: ingress}}
gatewayRouteSelector: {matchLabels: {gateway: ingress}}
listeners:
  - portMapping: {port: 8443, protocol: http}
    tls:
      mode: STRICT
      certificate:
        acm:
          certificateARN: `+acmCert+`
backendDefaults:
  clientPolicy:
    tls:
      validation:
        trust:
          acm:
            certificateAuthorityARNs: [`+acmCA+`]
`),
			crd("VirtualGateway", "apps", "internal", "awsName: internal-gw\nlisteners:\n  - portMapping: {port: 8080, protocol: http}\n"),
			crd("VirtualService", "apps", "color", "awsName: color.apps.svc.cluster.local\nprovider:\n  virtualNode:\n    virtualNodeRef: {name: color}\n"),
			crd("GatewayRoute", "apps", "by-ref", `virtualGatewayRef: {name: ingress, namespace: edge}
httpRoute:
  match: {prefix: /color}
  action:
    target:
      virtualService:
        virtualServiceRef: {name: color}
      port: 8080
`),
			crd("GatewayRoute", "apps", "same-ns", `priority: 5
grpcRoute:
  match: {serviceName: color.Color}
  action:
    target:
      virtualService:
        virtualServiceRef: {name: color, namespace: apps}
`),
			crd("GatewayRoute", "web", "elsewhere", "httpRoute:\n  match: {prefix: /}\n  action: {target: {virtualService: {virtualServiceRef: {name: web}}}}\n"),
			crd("GatewayRoute", "apps", "arn", `virtualGatewayRef: {name: ingress, namespace: edge}
http2Route:
  match: {prefix: /ext}
  action:
    target:
      virtualService:
        virtualServiceARN: `+meshARN+`dflt/virtualService/ext.example.com
`),
		))},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("gw.yaml", 6, "GatewayRoute apps/arn", ""), load.Kubernetes, load.GatewayRoute, "dflt", "ingress_edge", "arn_apps",
				`{"http2Route":{"match":{"prefix":"/ext"},"action":{"target":{"virtualService":{"virtualServiceName":"ext.example.com"}}}}}`},
			{at("gw.yaml", 3, "GatewayRoute apps/by-ref", ""), load.Kubernetes, load.GatewayRoute, "dflt", "ingress_edge", "by-ref_apps",
				`{"httpRoute":{"match":{"prefix":"/color"},"action":{"target":{"virtualService":{"virtualServiceName":"color.apps.svc.cluster.local"},"port":8080}}}}`},
			{at("gw.yaml", 4, "GatewayRoute apps/same-ns", ""), load.Kubernetes, load.GatewayRoute, "dflt", "internal-gw", "same-ns_apps",
				`{"priority":5,"grpcRoute":{"match":{"serviceName":"color.Color"},"action":{"target":{"virtualService":{"virtualServiceName":"color.apps.svc.cluster.local"}}}}}`},
			{at("gw.yaml", 1, "VirtualGateway apps/internal", ""), load.Kubernetes, load.VirtualGateway, "dflt", "", "internal-gw",
				`{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}}]}`},
			{at("gw.yaml", 0, "VirtualGateway edge/ingress", ""), load.Kubernetes, load.VirtualGateway, "dflt", "", "ingress_edge", `{
  "listeners": [{"portMapping": {"port": 8443, "protocol": "http"},
    "tls": {"mode": "STRICT", "certificate": {"acm": {"certificateArn": "` + acmCert + `"}}}}],
  "backendDefaults": {"clientPolicy": {"tls": {"validation": {"trust": {"acm": {"certificateAuthorityArns": ["` + acmCA + `"]}}}}}}
}`},
			{at("gw.yaml", 2, "VirtualService apps/color", ""), load.Kubernetes, load.VirtualService, "dflt", "", "color.apps.svc.cluster.local",
				`{"provider":{"virtualNode":{"virtualNodeName":"color_apps"}}}`},
		},
		problems: []problemWant{prob(at("gw.yaml", 5, "GatewayRoute web/elsewhere", "spec.virtualGatewayRef"),
			"missing", "exactly one VirtualGateway")},
	},
	{
		name: "crd/gateway route bound to the only virtual gateway in the files",
		files: []load.File{
			file("gw.yaml", crd("VirtualGateway", "edge", "ingress", "")),
			file("gr.yaml", crd("GatewayRoute", "apps", "r", "httpRoute:\n  match: {prefix: /}\n  action: {target: {virtualService: {virtualServiceRef: {name: color}}}}\n")),
		},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("gr.yaml", 0, "GatewayRoute apps/r", ""), load.Kubernetes, load.GatewayRoute, "dflt", "ingress_edge", "r_apps",
				`{"httpRoute":{"match":{"prefix":"/"},"action":{"target":{"virtualService":{"virtualServiceName":"color.apps"}}}}}`},
			{at("gw.yaml", 0, "VirtualGateway edge/ingress", ""), load.Kubernetes, load.VirtualGateway, "dflt", "", "ingress_edge", `{}`},
		},
	},
	{
		name: "crd/gateway route with two virtual gateways in its namespace",
		files: []load.File{file("gw.yaml", yamlDocs(
			crd("VirtualGateway", "apps", "a", ""),
			crd("VirtualGateway", "apps", "b", ""),
			crd("GatewayRoute", "apps", "r", "httpRoute: {match: {prefix: /}}\n"),
		))},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("gw.yaml", 0, "VirtualGateway apps/a", ""), load.Kubernetes, load.VirtualGateway, "dflt", "", "a_apps", `{}`},
			{at("gw.yaml", 1, "VirtualGateway apps/b", ""), load.Kubernetes, load.VirtualGateway, "dflt", "", "b_apps", `{}`},
		},
		problems: []problemWant{prob(at("gw.yaml", 2, "GatewayRoute apps/r", "spec.virtualGatewayRef"), "exactly one VirtualGateway")},
	},
	{
		name: "crd/the same object twice",
		files: []load.File{
			file("a.yaml", crd("VirtualNode", "", "n", "listeners: [{portMapping: {port: 80, protocol: http}}]\n")),
			file("b.yaml", crd("VirtualNode", "default", "n", "")),
		},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{{at("a.yaml", 0, "VirtualNode default/n", ""), load.Kubernetes, load.VirtualNode, "dflt", "", "n_default",
			`{"listeners":[{"portMapping":{"port":80,"protocol":"http"}}]}`}},
		problems: []problemWant{prob(at("b.yaml", 0, "VirtualNode default/n", ""),
			"VirtualNode default/n is defined twice (first at a.yaml (document 1) VirtualNode default/n)")},
	},
	{
		name:     "crd/v1beta1",
		files:    []load.File{file("old.yaml", k8s("appmesh.k8s.aws/v1beta1", "Mesh", "", "old", "serviceDiscoveryType: dns\n"))},
		problems: []problemWant{prob(at("old.yaml", 0, "", ""), "appmesh.k8s.aws/v1beta1 Mesh", "v1beta2")},
	},
	{
		name: "crd/other kinds are skipped",
		files: []load.File{file("all.yaml", yamlDocs(
			k8s("apps/v1", "Deployment", "shop", "front", "replicas: 2\n"),
			k8s("v1", "Service", "shop", "front", "ports: [{port: 80}]\n"),
			crd("BackendGroup", "shop", "all", "virtualservices: [{name: \"*\"}]\n"),
			k8s("v1", "Namespace", "", "shop", ""),
			crd("VirtualNode", "shop", "front", ""),
		)), file("cm.json", `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"meshName": "x"}}`)},
		opt:     load.Options{DefaultMesh: "dflt"},
		docs:    []docWant{{at("all.yaml", 4, "VirtualNode shop/front", ""), load.Kubernetes, load.VirtualNode, "dflt", "", "front_shop", `{}`}},
		skipped: 5,
	},
	{
		name: "crd/a virtual node as JSON (kubectl get -o json)",
		files: []load.File{file("vn.json", `{"apiVersion": "appmesh.k8s.aws/v1beta2", "kind": "VirtualNode",
 "metadata": {"name": "front", "namespace": "shop", "uid": "x"},
 "spec": {"awsName": "front-node", "meshRef": {"name": "app", "uid": "y"}, "serviceDiscovery": {"dns": {"hostname": "front"}}},
 "status": {"virtualNodeARN": "arn"}}`)},
		docs: []docWant{{at("vn.json", 0, "VirtualNode shop/front", ""), load.Kubernetes, load.VirtualNode, "app", "", "front-node",
			`{"serviceDiscovery":{"dns":{"hostname":"front"}}}`}},
	},
	{
		name: "crd/bad ARNs and references are located at the field",
		files: []load.File{file("bad.yaml", yamlDocs(
			crd("VirtualService", "shop", "a", "provider:\n  virtualNode:\n    virtualNodeARN: "+meshARN+"app/virtualRouter/r\n"),
			crd("VirtualNode", "shop", "b", "backends:\n  - virtualService:\n      virtualServiceARN: not-an-arn\n"),
			crd("VirtualService", "shop", "c", "provider:\n  virtualRouter:\n    virtualRouterARN: "+meshARN+"app/virtualRouter/bad.name\n"),
			crd("VirtualService", "shop", "d", "provider:\n  virtualNode:\n    virtualNodeRef: {namespace: shop}\n"),
			crd("VirtualRouter", "shop", "e", "routes:\n  - name: r\n    httpRoute:\n      action:\n        weightedTargets:\n          - virtualNodeARN: "+meshARN+"app/virtualNode/x/route/y\n            weight: 1\n"),
			crd("GatewayRoute", "shop", "f", "virtualGatewayRef: {name: gw}\nhttpRoute:\n  action:\n    target:\n      virtualService:\n        virtualServiceARN: "+meshARN+"app/virtualNode/n\n"),
		))},
		opt: load.Options{DefaultMesh: "dflt"},
		problems: []problemWant{
			prob(at("bad.yaml", 5, "GatewayRoute shop/f", "spec.httpRoute.action.target.virtualService.virtualServiceARN"), "is not a VirtualService ARN"),
			prob(at("bad.yaml", 1, "VirtualNode shop/b", "spec.backends[0].virtualService.virtualServiceARN"), `"not-an-arn" is not a VirtualService ARN`),
			prob(at("bad.yaml", 4, "VirtualRouter shop/e", "spec.routes[0].httpRoute.action.weightedTargets[0].virtualNodeARN"), "is not a VirtualNode ARN"),
			prob(at("bad.yaml", 0, "VirtualService shop/a", "spec.provider.virtualNode.virtualNodeARN"), "is not a VirtualNode ARN"),
			prob(at("bad.yaml", 2, "VirtualService shop/c", "spec.provider.virtualRouter.virtualRouterARN"), `name "bad.name"`),
			prob(at("bad.yaml", 3, "VirtualService shop/d", "spec.provider.virtualNode.virtualNodeRef"), "reference without a name"),
		},
	},
	{
		// An ARN that ends in "virtualService/" names no virtual service.
		name:  "crd/a virtual service ARN with an empty name",
		files: []load.File{file("bad.yaml", crd("VirtualNode", "shop", "b", "backends:\n  - virtualService:\n      virtualServiceARN: "+meshARN+"app/virtualService/\n"))},
		opt:   load.Options{DefaultMesh: "dflt"},
		problems: []problemWant{
			prob(at("bad.yaml", 0, "VirtualNode shop/b", "spec.backends[0].virtualService.virtualServiceARN"), "virtualService/"),
		},
	},
	{
		name: "crd/fields the API lacks are pruned with a located warning",
		files: []load.File{file("vn.yaml", crd("VirtualNode", "shop", "front", `listeners:
  - portMapping: {port: 8080, protocol: http}
    extra: 1
backendDefaults:
  clientPolicy:
    tls:
      mode: STRICT
      enforce: true
`))},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{{at("vn.yaml", 0, "VirtualNode shop/front", ""), load.Kubernetes, load.VirtualNode, "dflt", "", "front_shop",
			`{"listeners":[{"portMapping":{"port":8080,"protocol":"http"}}],"backendDefaults":{"clientPolicy":{"tls":{"enforce":true}}}}`}},
		warnings: []problemWant{
			prob(at("vn.yaml", 0, "VirtualNode shop/front", "spec.backendDefaults.clientPolicy.tls.mode"), "unknown field ignored"),
			prob(at("vn.yaml", 0, "VirtualNode shop/front", "spec.listeners[0].extra"), "unknown field ignored"),
		},
	},
	{
		name:     "crd/metadata without name",
		files:    []load.File{file("noname.yaml", k8s("appmesh.k8s.aws/v1beta2", "VirtualNode", "shop", "", "listeners: []\n"))},
		problems: []problemWant{prob(at("noname.yaml", 0, "", "metadata.name"), "missing")},
	},
	{
		name: "crd/spec that is not a mapping in a route",
		files: []load.File{file("router.yaml", crd("VirtualRouter", "shop", "r", `routes:
  - name: ok
    httpRoute: {match: {prefix: /}}
`))},
		opt: load.Options{DefaultMesh: "dflt"},
		docs: []docWant{
			{at("router.yaml", 0, "VirtualRouter shop/r", ""), load.Kubernetes, load.VirtualRouter, "dflt", "", "r_shop", `{}`},
			{at("router.yaml", 0, "VirtualRouter shop/r", "spec.routes[0]"), load.Kubernetes, load.Route, "dflt", "r_shop", "ok",
				`{"httpRoute":{"match":{"prefix":"/"}}}`},
		},
	},
}

// allCases is every table case; fuzz_test.go seeds FuzzFiles with their
// files.
var allCases = concat(cliCases, yamlCases, cfnCases, crdCases)

func concat(lists ...[]loadCase) []loadCase {
	var all []loadCase
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

func TestFiles(t *testing.T) {
	for _, tc := range allCases {
		t.Run(tc.name, func(t *testing.T) {
			res := load.Files(tc.files, tc.opt)
			check(t, res, tc)
		})
	}
}

func check(t *testing.T, res *load.Result, tc loadCase) {
	t.Helper()
	if res.Skipped != tc.skipped {
		t.Errorf("Skipped = %d, want %d", res.Skipped, tc.skipped)
	}
	if len(res.Docs) != len(tc.docs) {
		t.Errorf("%d docs, want %d:\n%s", len(res.Docs), len(tc.docs), docsString(res.Docs))
	}
	for i := 0; i < len(res.Docs) && i < len(tc.docs); i++ {
		got, want := res.Docs[i], tc.docs[i]
		if got.Loc != want.loc || got.Format != want.format || got.Kind != want.kind ||
			got.Mesh != want.mesh || got.Parent != want.parent || got.Name != want.name {
			t.Errorf("doc %d:\n got %#v %s %s mesh=%q parent=%q name=%q\nwant %#v %s %s mesh=%q parent=%q name=%q",
				i, got.Loc, got.Format, got.Kind, got.Mesh, got.Parent, got.Name,
				want.loc, want.format, want.kind, want.mesh, want.parent, want.name)
		}
		if err := jsonEqual(got.Spec, []byte(want.spec)); err != nil {
			t.Errorf("doc %d (%s %s) spec: %v", i, got.Kind, got.Name, err)
		}
	}
	checkProblems(t, "problem", res.Problems, tc.problems)
	checkProblems(t, "warning", res.Warnings, tc.warnings)
}

func checkProblems(t *testing.T, what string, got []load.Problem, want []problemWant) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d %ss, want %d:\n%s", len(got), what, len(want), problemsString(got))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i].Loc != want[i].loc {
			t.Errorf("%s %d at\n %#v, want\n %#v\n(%s)", what, i, got[i].Loc, want[i].loc, got[i].Msg)
		}
		for _, m := range want[i].msgs {
			if !strings.Contains(got[i].Msg, m) {
				t.Errorf("%s %d: %q does not mention %q", what, i, got[i].Msg, m)
			}
		}
	}
}

func jsonEqual(got, want []byte) error {
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Errorf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		return fmt.Errorf("test's want is invalid JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		wantCompact, _ := json.Marshal(w)
		return fmt.Errorf("\n got %s\nwant %s", got, wantCompact)
	}
	return nil
}

func docsString(docs []load.Doc) string {
	var b strings.Builder
	for _, d := range docs {
		fmt.Fprintf(&b, "  %#v %s %s mesh=%q parent=%q name=%q %s\n", d.Loc, d.Format, d.Kind, d.Mesh, d.Parent, d.Name, d.Spec)
	}
	return b.String()
}

func problemsString(ps []load.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %#v %s\n", p.Loc, p.Msg)
	}
	return b.String()
}

// TestCFNProblemsDeterministic loads a resource with two unresolvable spec
// values many times: the problems reported must not depend on map
// iteration order.
func TestCFNProblemsDeterministic(t *testing.T) {
	f := file("stack.yaml", `Parameters:
  A: {Type: String}
  B: {Type: String}
  C: {Type: String}
Resources:
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: mesh
      VirtualNodeName: node
      Spec:
        Backends:
          - VirtualService: {VirtualServiceName: !Ref A}
        Logging:
          AccessLog: {File: {Path: !Ref B}}
        ServiceDiscovery:
          DNS: {Hostname: !Ref C}
`)
	first := problemsString(load.Files([]load.File{f}, load.Options{}).Problems)
	for i := 0; i < 50; i++ {
		if got := problemsString(load.Files([]load.File{f}, load.Options{}).Problems); got != first {
			t.Fatalf("problems differ between runs:\n%s---\n%s", first, got)
		}
	}
}

func TestDir(t *testing.T) {
	fsys := fstest.MapFS{
		"mesh/b.yaml":             {Data: []byte("meshName: shop\nvirtualNodeName: b\n")},
		"mesh/a.json":             {Data: []byte(`{"meshName": "shop"}`)},
		"mesh/c.YML":              {Data: []byte("meshName: shop\nvirtualNodeName: c\n")},
		"mesh/sub/d.yaml":         {Data: []byte("meshName: shop\nvirtualNodeName: d\n")},
		"mesh/sub/a.json":         {Data: []byte(`{"meshName": "shop", "virtualNodeName": "sub-a"}`)},
		"mesh/a/z.yaml":           {Data: []byte("meshName: shop\nvirtualNodeName: a-z\n")},
		"mesh/.hidden.yaml":       {Data: []byte("{{{ not read")},
		"mesh/.git/config.yaml":   {Data: []byte("{{{ not read")},
		"mesh/sub/.cache/x.json":  {Data: []byte("{{{ not read")},
		"mesh/README.md":          {Data: []byte("{{{ not read")},
		"mesh/notes.txt":          {Data: []byte("{{{ not read")},
		"mesh/yaml":               {Data: []byte("{{{ not read")},
		"other/e.yaml":            {Data: []byte("{{{ not under root")},
		"mesh/sub/taskdef.json":   {Data: []byte(`{"family": "x", "containerDefinitions": []}`)},
		"mesh/sub/nested/.e.yaml": {Data: []byte("{{{ not read")},
	}
	res, err := load.Dir(fsys, "mesh", load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	check(t, res, loadCase{
		docs: []docWant{
			{at("mesh/a.json", 0, "", ""), load.CLI, load.Mesh, "shop", "", "shop", `{}`},
			{at("mesh/a/z.yaml", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "a-z", `{}`},
			{at("mesh/b.yaml", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "b", `{}`},
			{at("mesh/c.YML", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "c", `{}`},
			{at("mesh/sub/a.json", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "sub-a", `{}`},
			{at("mesh/sub/d.yaml", 0, "", ""), load.CLI, load.VirtualNode, "shop", "", "d", `{}`},
		},
		skipped: 1,
	})

	// The root itself may be a dot-directory.
	res, err = load.Dir(fstest.MapFS{".meshd/m.yaml": {Data: []byte("meshName: m\n")}}, ".meshd", load.Options{})
	if err != nil || len(res.Docs) != 1 || res.Docs[0].Loc.File != ".meshd/m.yaml" {
		t.Errorf("Dir(.meshd) = %+v, %v; want one doc from .meshd/m.yaml", res, err)
	}

	if _, err := load.Dir(fsys, "missing", load.Options{}); err == nil {
		t.Error("Dir of a missing root: no error")
	}
}

func TestDirMaxFileSize(t *testing.T) {
	fits := []byte("#" + strings.Repeat("x", load.MaxFileSize-1))
	big := []byte("#" + strings.Repeat("x", load.MaxFileSize))
	res, err := load.Dir(fstest.MapFS{"m/fits.yaml": {Data: fits}}, "m", load.Options{})
	if err != nil || len(res.Docs) != 0 || len(res.Problems) != 0 {
		t.Errorf("a file of exactly MaxFileSize bytes: %+v, %v; want nothing loaded and no error", res, err)
	}
	_, err = load.Dir(fstest.MapFS{"m/a.yaml": {Data: []byte("meshName: a\n")}, "m/big.yaml": {Data: big}}, "m", load.Options{})
	if err == nil || !strings.Contains(err.Error(), "m/big.yaml") || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a file over MaxFileSize: error %v, want one naming m/big.yaml and its size", err)
	}
}

// hostileInputs must give located problems, not crash the process (a stack
// overflow is fatal, not a recoverable panic) or exhaust memory. Each runs
// in a child process so that one crash does not hide the other tests.
var hostileInputs = map[string]string{
	"yaml alias cycle in a sequence": "meshName: m\nvirtualNodeName: n\nspec: &s\n  listeners: [*s]\n",
	"yaml alias cycle in a mapping":  "meshName: m\nvirtualNodeName: n\nspec: &s\n  backendDefaults: *s\n",
	"yaml alias expansion (billion laughs)": `a: &a ["x","x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h,*h]
meshName: m
spec: {x: *i}
`,
	"cfn GetAtt of the resource's own name": `Resources:
  Mesh:
    Type: AWS::AppMesh::Mesh
    Properties:
      MeshName: !GetAtt Mesh.MeshName
`,
	"cfn GetAtt cycle between two resources": `Resources:
  A:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: m
      VirtualNodeName: !GetAtt B.VirtualNodeName
  B:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: m
      VirtualNodeName: !GetAtt A.VirtualNodeName
`,
	"cfn Sub of the resource's own name": `Resources:
  Node:
    Type: AWS::AppMesh::VirtualNode
    Properties:
      MeshName: m
      VirtualNodeName: !Sub "${Node.VirtualNodeName}-x"
`,
}

const hostileEnv = "LOAD_TEST_HOSTILE_INPUT"

func TestHostileInputs(t *testing.T) {
	if name, ok := os.LookupEnv(hostileEnv); ok {
		hostileChild(name)
		return
	}
	for name := range hostileInputs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHostileInputs$", "-test.count=1")
			cmd.Env = append(os.Environ(), hostileEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err != nil {
				if len(out) > 600 {
					out = append(out[:600], "…"...)
				}
				t.Errorf("loading %q: %v\n%s", hostileInputs[name], err, out)
			}
		})
	}
}

// hostileChild loads one hostile input with a small stack and a heap
// watchdog, and exits non-zero unless it gets located problems.
func hostileChild(name string) {
	debug.SetMaxStack(64 << 20)
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		deadline := time.Now().Add(30 * time.Second)
		for range time.Tick(5 * time.Millisecond) {
			metrics.Read(sample)
			if heap := sample[0].Value.Uint64(); heap > 256<<20 {
				fmt.Printf("heap grew past %d MiB\n", heap>>20)
				os.Exit(2)
			}
			if time.Now().After(deadline) {
				fmt.Println("still loading after 30s")
				os.Exit(3)
			}
		}
	}()
	res := load.Files([]load.File{file("x.yaml", hostileInputs[name])}, load.Options{DefaultMesh: "m"})
	if len(res.Problems) == 0 {
		fmt.Printf("no problem reported; docs:\n%s", docsString(res.Docs))
		os.Exit(4)
	}
	for _, p := range res.Problems {
		if p.Loc.File != "x.yaml" || strings.HasPrefix(name, "cfn") && (p.Loc.Resource == "" || p.Loc.Path == "") {
			fmt.Printf("problem not located: %#v %s\n", p.Loc, p.Msg)
			os.Exit(5)
		}
	}
	// Returning passes the child's test (os.Exit(0) in a test panics).
}
