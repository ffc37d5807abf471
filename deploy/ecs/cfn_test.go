package ecs

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/awslabs/goformation/v7/cloudformation"
	cfnec2 "github.com/awslabs/goformation/v7/cloudformation/ec2"
	cfnecs "github.com/awslabs/goformation/v7/cloudformation/ecs"
	cfniam "github.com/awslabs/goformation/v7/cloudformation/iam"
	"github.com/awslabs/goformation/v7/intrinsics"
	"github.com/awslabs/goformation/v7/schema"
	"github.com/xeipuuv/gojsonschema"

	"github.com/meshd/meshd/deploy/internal/deploytest"
	"github.com/meshd/meshd/internal/testutil"
)

const templateFile = "cloudformation/control-plane.yaml"

// cfnParams are the stack parameters a deployment must give (those
// without a default).
var cfnParams = map[string]any{
	"ClusterArn":   "arn:aws:ecs:us-west-2:111122223333:cluster/mesh",
	"VpcId":        "vpc-0123456789abcdef0",
	"SubnetIds":    []any{"subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"},
	"ConfigBucket": "example-meshd-config",
}

var pseudoParams = map[string]any{
	"AWS::Region":    "us-west-2",
	"AWS::AccountId": "111122223333",
	"AWS::Partition": "aws",
	"AWS::StackName": "meshd-controlplane",
	"AWS::URLSuffix": "amazonaws.com",
}

// resolver evaluates Ref, Fn::GetAtt and Fn::Sub the way CloudFormation
// would for parameters (their value or default) and pseudo parameters, and
// turns references to resources into markers ("ref:Name",
// "getatt:Name.Attr") that the tests compare; a reference to nothing is an
// error.
type resolver struct {
	params map[string]any
	errs   []error
}

func (r *resolver) section(tmpl any, name string) map[string]any {
	m, _ := tmpl.(map[string]any)
	s, _ := m[name].(map[string]any)
	return s
}

func (r *resolver) ref(name string, tmpl any) any {
	if v, ok := pseudoParams[name]; ok {
		return v
	}
	if p, ok := r.section(tmpl, "Parameters")[name].(map[string]any); ok {
		v, ok := r.params[name]
		if !ok {
			v, ok = p["Default"]
		}
		if ok {
			// CloudFormation passes a Number parameter as a number where
			// one is expected.
			if s, isStr := v.(string); isStr && p["Type"] == "Number" {
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					return f
				}
			}
			return v
		}
		r.errs = append(r.errs, fmt.Errorf("Ref %s: parameter without a value", name))
		return nil
	}
	if _, ok := r.section(tmpl, "Resources")[name]; ok {
		return "ref:" + name
	}
	r.errs = append(r.errs, fmt.Errorf("Ref %s: no such parameter or resource", name))
	return nil
}

func (r *resolver) getAtt(res, attr string, tmpl any) any {
	if _, ok := r.section(tmpl, "Resources")[res]; !ok {
		r.errs = append(r.errs, fmt.Errorf("Fn::GetAtt %s.%s: no such resource", res, attr))
		return nil
	}
	return "getatt:" + res + "." + attr
}

var subVar = regexp.MustCompile(`\$\{([^}!]+)\}`)

func (r *resolver) handlers() map[string]intrinsics.IntrinsicHandler {
	return map[string]intrinsics.IntrinsicHandler{
		"Ref": func(_ string, in any, tmpl any) any {
			name, ok := in.(string)
			if !ok {
				r.errs = append(r.errs, fmt.Errorf("Ref %v: not a name", in))
				return nil
			}
			return r.ref(name, tmpl)
		},
		"Fn::GetAtt": func(_ string, in any, tmpl any) any {
			switch v := in.(type) {
			case []any:
				if len(v) == 2 {
					return r.getAtt(fmt.Sprint(v[0]), fmt.Sprint(v[1]), tmpl)
				}
			case string:
				if res, attr, ok := strings.Cut(v, "."); ok {
					return r.getAtt(res, attr, tmpl)
				}
			}
			r.errs = append(r.errs, fmt.Errorf("Fn::GetAtt %v: malformed", in))
			return nil
		},
		"Fn::Sub": func(_ string, in any, tmpl any) any {
			s, ok := in.(string)
			if !ok {
				r.errs = append(r.errs, fmt.Errorf("Fn::Sub %v: only the string form is used here", in))
				return nil
			}
			return subVar.ReplaceAllStringFunc(s, func(m string) string {
				name := subVar.FindStringSubmatch(m)[1]
				var v any
				if res, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
					v = r.getAtt(res, attr, tmpl)
				} else {
					v = r.ref(name, tmpl)
				}
				if v == nil {
					return ""
				}
				return fmt.Sprint(v)
			})
		},
	}
}

// processTemplate evaluates the intrinsics of a template (YAML) and returns
// it as JSON.
func processTemplate(data []byte, params map[string]any) ([]byte, []error) {
	r := &resolver{params: params}
	out, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: r.handlers()})
	if err != nil {
		return nil, []error{err}
	}
	return out, r.errs
}

// cfnSchema is CloudFormation's JSON schema as goformation ships it,
// decoded once. Its $id is draft-04's URL, so references to it resolve
// offline.
var cfnSchema = sync.OnceValues(func() (any, error) {
	var doc any
	err := json.Unmarshal([]byte(schema.CloudformationSchema), &doc)
	return doc, err
})

const cfnSchemaID = "http://json-schema.org/draft-04/schema#"

// templateSchema validates {"resources": [{TYPE: resource}, …], "template":
// TEMPLATE}: each resource against its own type's definition (readable
// errors; an unknown type is an additional property), and the whole template
// against CloudFormation's schema. One compiled schema serves every call.
var templateSchema = sync.OnceValues(func() (*gojsonschema.Schema, error) {
	doc, err := cfnSchema()
	if err != nil {
		return nil, err
	}
	byType := map[string]any{}
	for name := range doc.(map[string]any)["definitions"].(map[string]any) {
		if strings.Count(name, "::") == 2 && !strings.Contains(name, ".") {
			byType[name] = map[string]any{"$ref": cfnSchemaID + "/definitions/" + name}
		}
	}
	root, err := json.Marshal(map[string]any{
		"type": "object",
		"properties": map[string]any{
			"resources": map[string]any{"type": "array", "items": map[string]any{
				"type": "object", "properties": byType, "additionalProperties": false, "minProperties": 1, "maxProperties": 1,
			}},
			"template": map[string]any{"$ref": cfnSchemaID},
		},
	})
	if err != nil {
		return nil, err
	}
	sl := gojsonschema.NewSchemaLoader()
	if err := sl.AddSchemas(gojsonschema.NewGoLoader(doc)); err != nil {
		return nil, err
	}
	return sl.Compile(gojsonschema.NewBytesLoader(root))
})

var resourceError = regexp.MustCompile(`^resources\.(\d+)`)

// validateTemplate checks a processed template against CloudFormation's
// JSON schema: each resource against its type's definition, then the
// template as a whole.
func validateTemplate(processed []byte) []error {
	s, err := templateSchema()
	if err != nil {
		return []error{err}
	}
	var tmpl struct {
		Resources map[string]map[string]any
	}
	if err := json.Unmarshal(processed, &tmpl); err != nil {
		return []error{err}
	}
	var names []string
	var resources []any
	for name, r := range tmpl.Resources {
		names = append(names, name)
		resources = append(resources, map[string]any{fmt.Sprint(r["Type"]): r})
	}
	inst, err := json.Marshal(map[string]any{"resources": resources, "template": json.RawMessage(processed)})
	if err != nil {
		return []error{err}
	}
	res, err := s.Validate(gojsonschema.NewBytesLoader(inst))
	if err != nil {
		return []error{err}
	}
	var resErrs, tmplErrs []error
	for _, e := range res.Errors() {
		f := e.Field()
		if m := resourceError.FindStringSubmatch(f); m != nil {
			i, _ := strconv.Atoi(m[1])
			resErrs = append(resErrs, fmt.Errorf("%s: %s: %s", names[i], strings.TrimPrefix(f, m[0]+"."), e.Description()))
		} else {
			tmplErrs = append(tmplErrs, fmt.Errorf("%s: %s", f, e.Description()))
		}
	}
	if len(resErrs) > 0 {
		return resErrs // the template's errors repeat them, less readably
	}
	return tmplErrs
}

// decodeTemplate decodes a processed template into goformation's typed
// resources (unknown properties and wrong types fail).
func decodeTemplate(processed []byte) (*cloudformation.Template, error) {
	t := cloudformation.NewTemplate()
	if err := json.Unmarshal(processed, t); err != nil {
		return nil, err
	}
	for name, r := range t.Resources {
		if _, custom := r.(*cloudformation.CustomResource); custom {
			return nil, fmt.Errorf("%s: %s is not a resource type goformation knows", name, r.AWSCloudFormationType())
		}
	}
	return t, nil
}

type parsedTemplate struct {
	tmpl *cloudformation.Template
	json map[string]any
}

var templateOnce = sync.OnceValues(func() (parsedTemplate, []error) {
	data, err := os.ReadFile(templateFile)
	if err != nil {
		return parsedTemplate{}, []error{err}
	}
	processed, errs := processTemplate(data, cfnParams)
	if processed == nil {
		return parsedTemplate{}, errs
	}
	errs = append(errs, validateTemplate(processed)...)
	tmpl, err := decodeTemplate(processed)
	if err != nil {
		return parsedTemplate{}, append(errs, fmt.Errorf("typed decode: %w", err))
	}
	var m map[string]any
	if err := json.Unmarshal(processed, &m); err != nil {
		return parsedTemplate{}, append(errs, err)
	}
	return parsedTemplate{tmpl, m}, errs
})

// loadTemplate is the control plane's template with its intrinsics
// evaluated, checked against the schema and decoded into typed resources.
func loadTemplate(t *testing.T) parsedTemplate {
	t.Helper()
	p, errs := templateOnce()
	for _, e := range errs {
		t.Error(e)
	}
	if p.tmpl == nil {
		t.FailNow()
	}
	return p
}

func cfnContainer(td *cfnecs.TaskDefinition, name string) *cfnecs.TaskDefinition_ContainerDefinition {
	for i := range td.ContainerDefinitions {
		if td.ContainerDefinitions[i].Name == name {
			return &td.ContainerDefinitions[i]
		}
	}
	return nil
}

// TestControlPlaneTemplate parses the control plane's template with typed
// resources and the CloudFormation schema, and checks how it is wired:
// service → task definition, config delivery, CA state on EFS, ports and
// security groups, names the application tasks use.
func TestControlPlaneTemplate(t *testing.T) {
	p := loadTemplate(t)
	tmpl := p.tmpl
	for _, name := range []string{"LogGroup", "ControlPlaneSecurityGroup", "EfsSecurityGroup", "CaFileSystem", "CaMountTargetA", "CaMountTargetB", "CaAccessPoint", "Namespace", "DiscoveryService", "ExecutionRole", "TaskRole", "TaskDefinition", "Service"} {
		if _, ok := tmpl.Resources[name]; !ok {
			t.Errorf("resource %s missing", name)
		}
	}
	svc, err := tmpl.GetECSServiceWithName("Service")
	if err != nil {
		t.Fatal(err)
	}
	td, err := tmpl.GetECSTaskDefinitionWithName("TaskDefinition")
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(svc.TaskDefinition) != "ref:TaskDefinition" || aws.ToString(svc.Cluster) != cfnParams["ClusterArn"] ||
		aws.ToString(svc.LaunchType) != "FARGATE" || aws.ToInt(svc.DesiredCount) != 1 {
		t.Errorf("service: task definition %q cluster %q launch type %q desired %d", aws.ToString(svc.TaskDefinition), aws.ToString(svc.Cluster), aws.ToString(svc.LaunchType), aws.ToInt(svc.DesiredCount))
	}
	if dc := svc.DeploymentConfiguration; dc == nil || aws.ToInt(dc.MaximumPercent) > 100 {
		t.Error("service: a deployment must not run two CA writers at once (MaximumPercent ≤ 100)")
	}
	if !aws.ToBool(svc.EnableExecuteCommand) {
		t.Error("service: ECS Exec is how README.md mints join tokens; enable it")
	}
	vpc := svc.NetworkConfiguration.AwsvpcConfiguration
	if !slices.Contains(vpc.SecurityGroups, "ref:ControlPlaneSecurityGroup") || !reflect.DeepEqual(anySlice(vpc.Subnets), cfnParams["SubnetIds"]) || aws.ToString(vpc.AssignPublicIp) != "DISABLED" {
		t.Errorf("service network: %+v", vpc)
	}
	if len(svc.ServiceRegistries) != 1 || aws.ToString(svc.ServiceRegistries[0].RegistryArn) != "getatt:DiscoveryService.Arn" {
		t.Error("service: not registered in Cloud Map (DiscoveryService)")
	}
	for _, mt := range []string{"CaMountTargetA", "CaMountTargetB"} {
		if !slices.Contains(svc.AWSCloudFormationDependsOn, mt) {
			t.Errorf("service does not wait for %s: the task's EFS mount would fail", mt)
		}
	}

	// The task definition.
	if aws.ToString(td.ExecutionRoleArn) != "getatt:ExecutionRole.Arn" || aws.ToString(td.TaskRoleArn) != "getatt:TaskRole.Arn" || aws.ToString(td.NetworkMode) != "awsvpc" {
		t.Errorf("task definition roles/network: %q %q %q", aws.ToString(td.ExecutionRoleArn), aws.ToString(td.TaskRoleArn), aws.ToString(td.NetworkMode))
	}
	var caVol *cfnecs.TaskDefinition_Volume
	for i := range td.Volumes {
		if aws.ToString(td.Volumes[i].Name) == "meshd-ca" {
			caVol = &td.Volumes[i]
		}
	}
	if caVol == nil || caVol.EFSVolumeConfiguration == nil {
		t.Fatal("no EFS volume meshd-ca")
	}
	efs := caVol.EFSVolumeConfiguration
	if efs.FilesystemId != "ref:CaFileSystem" || aws.ToString(efs.TransitEncryption) != "ENABLED" || efs.AuthorizationConfig == nil ||
		aws.ToString(efs.AuthorizationConfig.AccessPointId) != "ref:CaAccessPoint" || aws.ToString(efs.AuthorizationConfig.IAM) != "ENABLED" {
		t.Errorf("meshd-ca volume: %+v", efs)
	}
	for _, c := range td.ContainerDefinitions {
		lc := c.LogConfiguration
		if lc == nil || lc.LogDriver != "awslogs" || lc.Options["awslogs-group"] != "ref:LogGroup" || lc.Options["awslogs-region"] != pseudoParams["AWS::Region"] {
			t.Errorf("container %s does not log to LogGroup", c.Name)
		}
	}

	cp := cfnContainer(td, "controlplane")
	sync := cfnContainer(td, "config-sync")
	if cp == nil || sync == nil {
		t.Fatal("containers controlplane and config-sync are required")
	}
	_, fs, err := deploytest.ParseMeshd(append(slices.Clone(cp.EntryPoint), cp.Command...))
	if err != nil {
		t.Fatalf("controlplane command: %v", err)
	}
	flag := func(n string) string { return deploytest.Flag(fs, n) }
	if flag("trust-domain") != paramDefault(p, "TrustDomain") {
		t.Errorf("--trust-domain %q; want the TrustDomain parameter", flag("trust-domain"))
	}

	// Ports: what meshd listens on is what the container maps and what the
	// security group opens, to MeshCidr.
	sg, err := tmpl.GetEC2SecurityGroupWithName("ControlPlaneSecurityGroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"xds-listen", "ca-listen", "metrics-listen"} {
		host, port, err := net.SplitHostPort(flag(f))
		if err != nil || host != "0.0.0.0" {
			t.Errorf("--%s %q: must listen on the task's address", f, flag(f))
			continue
		}
		n, _ := strconv.Atoi(port)
		if !slices.ContainsFunc(cp.PortMappings, func(pm cfnecs.TaskDefinition_PortMapping) bool { return aws.ToInt(pm.ContainerPort) == n }) {
			t.Errorf("--%s port %d is not mapped", f, n)
		}
		if !slices.ContainsFunc(sg.SecurityGroupIngress, func(r ec2Ingress) bool {
			return aws.ToInt(r.FromPort) == n && aws.ToInt(r.ToPort) == n && r.IpProtocol == "tcp" && aws.ToString(r.CidrIp) == paramDefault(p, "MeshCidr")
		}) {
			t.Errorf("--%s port %d is not opened to MeshCidr", f, n)
		}
	}
	efsSG, err := tmpl.GetEC2SecurityGroupWithName("EfsSecurityGroup")
	if err != nil {
		t.Fatal(err)
	}
	if len(efsSG.SecurityGroupIngress) != 1 || aws.ToInt(efsSG.SecurityGroupIngress[0].FromPort) != 2049 || aws.ToString(efsSG.SecurityGroupIngress[0].SourceSecurityGroupId) != "getatt:ControlPlaneSecurityGroup.GroupId" {
		t.Error("EFS must accept NFS (2049) from the control plane's security group only")
	}

	// CA state: --state-dir is the EFS mount, an access point with the
	// container's uid and mode 0700.
	if mountAt(cp, flag("state-dir")) != "meshd-ca" {
		t.Errorf("--state-dir %s is not the EFS volume's mount point", flag("state-dir"))
	}
	ap, err := tmpl.GetEFSAccessPointWithName("CaAccessPoint")
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, _ := strings.Cut(aws.ToString(cp.User), ":")
	if ap.FileSystemId != "ref:CaFileSystem" || ap.PosixUser == nil || ap.PosixUser.Uid != uid || ap.PosixUser.Gid != gid ||
		ap.RootDirectory == nil || ap.RootDirectory.CreationInfo == nil || ap.RootDirectory.CreationInfo.Permissions != "0700" || ap.RootDirectory.CreationInfo.OwnerUid != uid {
		t.Errorf("access point: %+v / %+v; want uid %s gid %s, root 0700 (meshd refuses a looser state dir)", ap.PosixUser, ap.RootDirectory, uid, gid)
	}
	fsys, err := tmpl.GetEFSFileSystemWithName("CaFileSystem")
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(fsys.Encrypted) || fsys.AWSCloudFormationDeletionPolicy != "Retain" {
		t.Error("the CA file system must be encrypted and retained on stack deletion")
	}
	for _, mt := range []string{"CaMountTargetA", "CaMountTargetB"} {
		m, err := tmpl.GetEFSMountTargetWithName(mt)
		if err != nil || m.FileSystemId != "ref:CaFileSystem" || !slices.Contains(m.SecurityGroups, "ref:EfsSecurityGroup") {
			t.Errorf("%s: %v %+v", mt, err, m)
		}
	}

	// Config delivery: config-sync copies s3://ConfigBucket/ConfigPrefix to
	// the volume the control plane reads, which the task role may read.
	cfgVol := mountAt(cp, path.Dir(flag("ca-policy")))
	if cfgVol == "" || mountAt(cp, path.Dir(flag("config"))) != cfgVol || !mountReadOnly(cp, cfgVol) {
		t.Errorf("--config %s and --ca-policy %s must be on one read-only volume", flag("config"), flag("ca-policy"))
	}
	syncEnv := map[string]string{}
	for _, kv := range sync.Environment {
		syncEnv[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
	}
	wantURI := fmt.Sprintf("s3://%s/%s", cfnParams["ConfigBucket"], paramDefault(p, "ConfigPrefix"))
	if syncEnv["MESH_CONFIG_S3_URI"] != wantURI || mountAt(sync, syncEnv["MESH_CONFIG_DIR"]) != cfgVol {
		t.Errorf("config-sync copies %q to %q; want %s into the control plane's config volume", syncEnv["MESH_CONFIG_S3_URI"], syncEnv["MESH_CONFIG_DIR"], wantURI)
	}
	if !slices.ContainsFunc(cp.DependsOnProp, func(d cfnecs.TaskDefinition_ContainerDependency) bool {
		return aws.ToString(d.ContainerName) == "config-sync" && aws.ToString(d.Condition) == "HEALTHY"
	}) || sync.HealthCheck == nil {
		t.Error("the control plane must wait for the first sync (config-sync HEALTHY)")
	}
	role, err := tmpl.GetIAMRoleWithName("TaskRole")
	if err != nil {
		t.Fatal(err)
	}
	bucketARN := "arn:aws:s3:::" + cfnParams["ConfigBucket"].(string)
	for _, want := range [][2]string{
		{"s3:GetObject", bucketARN + "/" + paramDefault(p, "ConfigPrefix") + "*"},
		{"s3:ListBucket", bucketARN},
		{"ssmmessages:OpenDataChannel", "*"},
	} {
		if !roleAllows(role.Policies, want[0], want[1]) {
			t.Errorf("TaskRole does not allow %s on %s", want[0], want[1])
		}
	}
	if roleAllows(role.Policies, "s3:PutObject", bucketARN+"/"+paramDefault(p, "ConfigPrefix")+"x") {
		t.Error("TaskRole may write the configuration")
	}

	// The names application tasks use.
	dsvc, err := tmpl.GetServiceDiscoveryServiceWithName("DiscoveryService")
	if err != nil {
		t.Fatal(err)
	}
	host := aws.ToString(dsvc.Name) + "." + paramDefault(p, "NamespaceName")
	if aws.ToString(dsvc.NamespaceId) != "getatt:Namespace.Id" || flag("ca-dns-name") != host {
		t.Errorf("--ca-dns-name %q; the Cloud Map name is %s", flag("ca-dns-name"), host)
	}
	_, xdsPort, _ := net.SplitHostPort(flag("xds-listen"))
	_, caPort, _ := net.SplitHostPort(flag("ca-listen"))
	outputs := map[string]string{}
	for k, v := range p.json["Outputs"].(map[string]any) {
		outputs[k] = fmt.Sprint(v.(map[string]any)["Value"])
	}
	if outputs["XdsAddress"] != net.JoinHostPort(host, xdsPort) || outputs["CaServiceAddress"] != net.JoinHostPort(host, caPort) {
		t.Errorf("outputs %v; want %s:%s and %s:%s", outputs, host, xdsPort, host, caPort)
	}
	for _, at := range appTaskDefs(t) {
		if got := environ(bootstrapContainer(t, at))["MESHD_XDS_ADDRESS"]; got != outputs["XdsAddress"] {
			t.Errorf("%s: MESHD_XDS_ADDRESS %q; the control plane is %s", at.file, got, outputs["XdsAddress"])
		}
		if _, f := meshdCommand(t, at, "sds"); f.get("ca-service") != outputs["CaServiceAddress"] || f.get("trust-domain") != flag("trust-domain") {
			t.Errorf("%s: meshd sds --ca-service %q --trust-domain %q; the CA service is %s in %s", at.file, f.get("ca-service"), f.get("trust-domain"), outputs["CaServiceAddress"], flag("trust-domain"))
		}
	}
}

type ec2Ingress = cfnec2.SecurityGroup_Ingress

// roleAllows reports whether an Allow statement of the inline policies
// names exactly action and resource.
func roleAllows(policies []cfniam.Role_Policy, action, resource string) bool {
	list := func(v any) []string {
		switch x := v.(type) {
		case string:
			return []string{x}
		case []any:
			var out []string
			for _, e := range x {
				out = append(out, fmt.Sprint(e))
			}
			return out
		}
		return nil
	}
	for _, pol := range policies {
		doc, _ := pol.PolicyDocument.(map[string]any)
		stmts, _ := doc["Statement"].([]any)
		for _, st := range stmts {
			m, _ := st.(map[string]any)
			if m["Effect"] == "Allow" && slices.Contains(list(m["Action"]), action) && slices.Contains(list(m["Resource"]), resource) {
				return true
			}
		}
	}
	return false
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func paramDefault(p parsedTemplate, name string) string {
	if v, ok := cfnParams[name]; ok {
		return fmt.Sprint(v)
	}
	return fmt.Sprint(p.tmpl.Parameters[name].Default)
}

func mountAt(c *cfnecs.TaskDefinition_ContainerDefinition, dir string) string {
	for _, mp := range c.MountPoints {
		if aws.ToString(mp.ContainerPath) == dir {
			return aws.ToString(mp.SourceVolume)
		}
	}
	return ""
}

func mountReadOnly(c *cfnecs.TaskDefinition_ContainerDefinition, vol string) bool {
	for _, mp := range c.MountPoints {
		if aws.ToString(mp.SourceVolume) == vol {
			return aws.ToBool(mp.ReadOnly)
		}
	}
	return false
}

// TestControlPlaneTaskDefinitionMatchesTemplate keeps controlplane-fargate.json
// (for those who register task definitions themselves) and the template's
// task definition the same, container by container.
func TestControlPlaneTaskDefinitionMatchesTemplate(t *testing.T) {
	p := loadTemplate(t)
	cfnTD, err := p.tmpl.GetECSTaskDefinitionWithName("TaskDefinition")
	if err != nil {
		t.Fatal(err)
	}
	var js *taskDef
	for _, td := range loadTaskDefs(t) {
		if td.file == "controlplane-fargate.json" {
			js = &td
		}
	}
	if js == nil {
		t.Fatal("controlplane-fargate.json missing")
	}
	if aws.ToString(cfnTD.Family) != aws.ToString(js.in.Family) || aws.ToString(cfnTD.Cpu) != aws.ToString(js.in.Cpu) || aws.ToString(cfnTD.Memory) != aws.ToString(js.in.Memory) {
		t.Error("family, cpu or memory differ")
	}
	if len(cfnTD.ContainerDefinitions) != len(js.in.ContainerDefinitions) {
		t.Fatalf("%d containers in the template, %d in the JSON", len(cfnTD.ContainerDefinitions), len(js.in.ContainerDefinitions))
	}
	// The images and the S3 location are parameters of the template.
	type shape struct {
		EntryPoint, Command, EnvNames, Ports, Mounts, Deps, Health []string
		User                                                       string
		Essential, ReadOnlyRoot                                    bool
	}
	for _, jc := range js.in.ContainerDefinitions {
		name := aws.ToString(jc.Name)
		cc := cfnContainer(cfnTD, name)
		if cc == nil {
			t.Errorf("container %s is not in the template", name)
			continue
		}
		j := shape{EntryPoint: jc.EntryPoint, Command: jc.Command, User: aws.ToString(jc.User), Essential: aws.ToBool(jc.Essential), ReadOnlyRoot: aws.ToBool(jc.ReadonlyRootFilesystem)}
		for _, kv := range jc.Environment {
			j.EnvNames = append(j.EnvNames, aws.ToString(kv.Name))
		}
		for _, pm := range jc.PortMappings {
			j.Ports = append(j.Ports, fmt.Sprintf("%d/%s", aws.ToInt32(pm.ContainerPort), pm.Protocol))
		}
		for _, mp := range jc.MountPoints {
			j.Mounts = append(j.Mounts, fmt.Sprintf("%s:%s:%v", aws.ToString(mp.SourceVolume), aws.ToString(mp.ContainerPath), aws.ToBool(mp.ReadOnly)))
		}
		for _, d := range jc.DependsOn {
			j.Deps = append(j.Deps, aws.ToString(d.ContainerName)+"="+string(d.Condition))
		}
		if jc.HealthCheck != nil {
			j.Health = append(slices.Clone(jc.HealthCheck.Command), fmt.Sprint(aws.ToInt32(jc.HealthCheck.Interval), aws.ToInt32(jc.HealthCheck.Timeout), aws.ToInt32(jc.HealthCheck.Retries), aws.ToInt32(jc.HealthCheck.StartPeriod)))
		}
		c := shape{EntryPoint: cc.EntryPoint, Command: cc.Command, User: aws.ToString(cc.User), Essential: aws.ToBool(cc.Essential), ReadOnlyRoot: aws.ToBool(cc.ReadonlyRootFilesystem)}
		for _, kv := range cc.Environment {
			c.EnvNames = append(c.EnvNames, aws.ToString(kv.Name))
		}
		for _, pm := range cc.PortMappings {
			c.Ports = append(c.Ports, fmt.Sprintf("%d/%s", aws.ToInt(pm.ContainerPort), aws.ToString(pm.Protocol)))
		}
		for _, mp := range cc.MountPoints {
			c.Mounts = append(c.Mounts, fmt.Sprintf("%s:%s:%v", aws.ToString(mp.SourceVolume), aws.ToString(mp.ContainerPath), aws.ToBool(mp.ReadOnly)))
		}
		for _, d := range cc.DependsOnProp {
			c.Deps = append(c.Deps, aws.ToString(d.ContainerName)+"="+aws.ToString(d.Condition))
		}
		if cc.HealthCheck != nil {
			c.Health = append(slices.Clone(cc.HealthCheck.Command), fmt.Sprint(aws.ToInt(cc.HealthCheck.Interval), aws.ToInt(cc.HealthCheck.Timeout), aws.ToInt(cc.HealthCheck.Retries), aws.ToInt(cc.HealthCheck.StartPeriod)))
		}
		if !reflect.DeepEqual(j, c) {
			t.Errorf("container %s differs:\n json     %+v\n template %+v", name, j, c)
		}
	}
}

// TestTemplateChecksCanFail feeds the checks templates that are wrong in
// the ways they must catch.
func TestTemplateChecksCanFail(t *testing.T) {
	cases := map[string]string{
		"misspelt property": "Resources:\n  L:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      RetentionInDay: 7\n",
		"wrong type":        "Resources:\n  L:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      RetentionInDays: [7]\n",
		"required missing":  "Resources:\n  M:\n    Type: AWS::EFS::MountTarget\n    Properties:\n      SubnetId: s\n      SecurityGroups: [g]\n",
		"unknown type":      "Resources:\n  X:\n    Type: AWS::ECS::Servise\n    Properties: {}\n",
		"dangling Ref":      "Resources:\n  L:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: !Ref Nothing\n",
		"dangling GetAtt":   "Resources:\n  L:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: !GetAtt Nothing.Arn\n",
		"dangling Sub":      "Resources:\n  L:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: !Sub /x/${Nothing}\n",
	}
	for name, src := range cases {
		processed, errs := processTemplate([]byte(src), nil)
		if len(errs) == 0 {
			errs = validateTemplate(processed)
		}
		if len(errs) == 0 {
			if _, err := decodeTemplate(processed); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			t.Errorf("%s: accepted", name)
		}
		t.Logf("%s: %v", name, errs)
	}
	good := "Parameters:\n  N:\n    Type: String\n    Default: /x\nResources:\n  L:\n    Type: AWS::Logs::LogGroup\n    Properties:\n      LogGroupName: !Sub ${N}/${AWS::Region}\n      RetentionInDays: 7\n"
	processed, errs := processTemplate([]byte(good), nil)
	errs = append(errs, validateTemplate(processed)...)
	if len(errs) > 0 {
		t.Errorf("a valid template: %v", errs)
	}
	tmpl, err := decodeTemplate(processed)
	if err != nil {
		t.Fatal(err)
	}
	if lg, err := tmpl.GetLogsLogGroupWithName("L"); err != nil || aws.ToString(lg.LogGroupName) != "/x/us-west-2" {
		t.Errorf("Fn::Sub resolved to %q, %v", aws.ToString(lg.LogGroupName), err)
	}
}

// TestConfigSync runs the config-sync container's loop with a stand-in for
// the AWS CLI that copies from a local directory: it must populate the
// control plane's directory, mark the first sync, keep going after a failed
// sync, and pick up changes.
func TestConfigSync(t *testing.T) {
	p := loadTemplate(t)
	td, err := p.tmpl.GetECSTaskDefinitionWithName("TaskDefinition")
	if err != nil {
		t.Fatal(err)
	}
	c := cfnContainer(td, "config-sync")
	a := append(slices.Clone(c.EntryPoint), c.Command...)
	if len(a) != 3 || a[0] != "sh" || a[1] != "-c" {
		t.Fatalf("config-sync runs %q; want sh -c SCRIPT", a)
	}
	dir := t.TempDir()
	bucket, dest, bin := filepath.Join(dir, "bucket"), filepath.Join(dir, "etc-meshd"), filepath.Join(dir, "bin")
	for _, d := range []string{filepath.Join(bucket, "mesh"), dest, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// aws s3 sync [options] SRC DEST: copy the local "bucket" for SRC
	// (fail when it holds a file named FAIL), delete what SRC lacks except
	// excluded names.
	fakeAWS := `#!/bin/sh
set -e
[ "$1 $2" = "s3 sync" ] || { echo "unexpected: $*" >&2; exit 2; }
shift 2
delete=0; exclude=
while [ $# -gt 2 ]; do
  case "$1" in --delete) delete=1 ;; --no-progress) ;; --exclude) shift; exclude=$1 ;; *) echo "unexpected option $1" >&2; exit 2 ;; esac
  shift
done
[ "$1" = "$FAKE_S3_URI" ] || { echo "unexpected source $1" >&2; exit 2; }
[ -e "$FAKE_S3_DIR/FAIL" ] && { echo "access denied" >&2; exit 1; }
[ $delete = 1 ] || { echo "sync without --delete keeps removed files" >&2; exit 2; }
find "$2" -mindepth 1 ! -name "$exclude" -delete
cp -R "$FAKE_S3_DIR"/. "$2"
`
	if err := os.WriteFile(filepath.Join(bin, "aws"), []byte(fakeAWS), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(bucket, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mesh/mesh.json", `{"meshName":"apps"}`)
	write("ca-policy.yaml", "grants: []\n")

	env := map[string]string{}
	for _, kv := range c.Environment {
		env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
	}
	cmd := exec.Command(a[0], a[1], a[2])
	cmd.Env = []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"),
		"MESH_CONFIG_S3_URI=" + env["MESH_CONFIG_S3_URI"], "MESH_CONFIG_DIR=" + dest, "SYNC_INTERVAL_SECONDS=1",
		"FAKE_S3_URI=" + env["MESH_CONFIG_S3_URI"], "FAKE_S3_DIR=" + bucket,
	}
	// The container's health check, run as ECS runs a CMD-SHELL one.
	hc := c.HealthCheck.Command
	healthy := func() bool {
		h := exec.Command("sh", "-c", hc[1])
		h.Env = []string{"MESH_CONFIG_DIR=" + dest}
		return hc[0] == "CMD-SHELL" && h.Run() == nil
	}
	if healthy() {
		t.Fatal("healthy before the first sync")
	}
	var out testutil.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("config-sync: %s did not happen; output:\n%s", what, out.String())
	}
	exists := func(p string) bool { _, err := os.Stat(filepath.Join(dest, p)); return err == nil }
	waitFor("the first sync", func() bool { return healthy() && exists("mesh/mesh.json") && exists("ca-policy.yaml") })

	write("FAIL", "")
	waitFor("a failed sync being reported", func() bool { return strings.Contains(out.String(), "sync failed") })
	if !exists("mesh/mesh.json") || !healthy() {
		t.Fatal("a failed sync removed the synced files")
	}
	os.Remove(filepath.Join(bucket, "FAIL"))
	os.Remove(filepath.Join(bucket, "mesh/mesh.json"))
	write("mesh/other.yaml", "meshName: apps\n")
	waitFor("a change to be synced", func() bool { return exists("mesh/other.yaml") && !exists("mesh/mesh.json") && healthy() })
}
