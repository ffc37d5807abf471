package ecs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/deploy/internal/deploytest"
	"github.com/meshd/meshd/internal/agent"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/sds"
	"github.com/meshd/meshd/tracing"
)

// What App Mesh required of every task (its ECS getting-started guide and
// the ECS agent's APPMESH proxy configuration).
const (
	envoyUID         = 1337
	proxyIngressPort = "15000"
	proxyEgressPort  = "15001"
)

var metadataIPs = []string{"169.254.170.2", "169.254.169.254"}

type taskDef struct {
	file string
	raw  []byte
	in   *ecs.RegisterTaskDefinitionInput
}

// decodeStrict decodes JSON into v, failing on unknown fields and trailing
// data, as `aws ecs register-task-definition --cli-input-json` does.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

var taskDefs = sync.OnceValues(func() ([]taskDef, error) {
	files, err := filepath.Glob("*.json")
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no task definitions (*.json) in deploy/ecs")
	}
	var out []taskDef
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var in ecs.RegisterTaskDefinitionInput
		if err := decodeStrict(raw, &in); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, taskDef{file: f, raw: raw, in: &in})
	}
	return out, nil
})

func loadTaskDefs(t *testing.T) []taskDef {
	t.Helper()
	tds, err := taskDefs()
	if err != nil {
		t.Fatal(err)
	}
	return tds
}

// appTaskDefs are the task definitions of mesh members (with a proxy
// configuration); the control plane's is not one.
func appTaskDefs(t *testing.T) []taskDef {
	var out []taskDef
	for _, td := range loadTaskDefs(t) {
		if td.in.ProxyConfiguration != nil {
			out = append(out, td)
		}
	}
	if len(out) < 5 {
		t.Fatalf("%d application task definitions; want the Fargate, X-Ray, CloudWatch, Datadog and stock-Envoy ones", len(out))
	}
	return out
}

func container(td taskDef, name string) *types.ContainerDefinition {
	for i := range td.in.ContainerDefinitions {
		if aws.ToString(td.in.ContainerDefinitions[i].Name) == name {
			return &td.in.ContainerDefinitions[i]
		}
	}
	return nil
}

func argv(c *types.ContainerDefinition) []string {
	return append(slices.Clone(c.EntryPoint), c.Command...)
}

// environ is a container's environment: its variables and, with placeholder
// values, its secrets.
func environ(c *types.ContainerDefinition) map[string]string {
	env := map[string]string{}
	for _, kv := range c.Environment {
		env[aws.ToString(kv.Name)] = aws.ToString(kv.Value)
	}
	for _, s := range c.Secrets {
		env[aws.ToString(s.Name)] = "secret-from:" + aws.ToString(s.ValueFrom)
	}
	return env
}

// userOf is the uid and gid a container runs as ("" is the image's user,
// root for every image used here but the meshd images).
func userOf(c *types.ContainerDefinition) (uid, gid int, err error) {
	u := aws.ToString(c.User)
	if u == "" {
		return 0, 0, nil
	}
	us, gs, hasGroup := strings.Cut(u, ":")
	if uid, err = strconv.Atoi(us); err != nil {
		return 0, 0, fmt.Errorf("user %q: want numeric uid[:gid]", u)
	}
	if hasGroup {
		if gid, err = strconv.Atoi(gs); err != nil {
			return 0, 0, fmt.Errorf("user %q: want numeric uid[:gid]", u)
		}
	}
	return uid, gid, nil
}

func proxyProps(td taskDef) map[string]string {
	props := map[string]string{}
	for _, p := range td.in.ProxyConfiguration.Properties {
		props[aws.ToString(p.Name)] = aws.ToString(p.Value)
	}
	return props
}

// meshdCommand finds the container running `meshd <sub>` and parses its
// command line (nil, nil if no container runs it).
func meshdCommand(t *testing.T, td taskDef, sub string) (*types.ContainerDefinition, *flags) {
	t.Helper()
	var found *types.ContainerDefinition
	var fl *flags
	for i := range td.in.ContainerDefinitions {
		c := &td.in.ContainerDefinitions[i]
		a := argv(c)
		if len(a) < 2 || !deploytest.IsMeshd(a[0]) || a[1] != sub {
			continue
		}
		if found != nil {
			t.Fatalf("%s: containers %s and %s both run meshd %s", td.file, aws.ToString(found.Name), aws.ToString(c.Name), sub)
		}
		_, fs, err := deploytest.ParseMeshd(a)
		if err != nil {
			t.Fatalf("%s: container %s: %v", td.file, aws.ToString(c.Name), err)
		}
		found, fl = c, &flags{fs}
	}
	return found, fl
}

// flags is a parsed meshd command line.
type flags struct{ fs *flag.FlagSet }

func (f *flags) get(name string) string { return deploytest.Flag(f.fs, name) }

// virtualNode is the node a task's Envoy represents (APPMESH_RESOURCE_ARN
// of the container rendering its bootstrap).
func virtualNode(t *testing.T, td taskDef) (appmesh.Resource, *model.VirtualNode) {
	t.Helper()
	c := bootstrapContainer(t, td)
	arn := environ(c)["APPMESH_RESOURCE_ARN"]
	res, err := appmesh.ParseResource(arn)
	if err != nil {
		t.Fatalf("%s: APPMESH_RESOURCE_ARN %q: %v", td.file, arn, err)
	}
	vn, err := deploytest.ExampleNode(res)
	if err != nil {
		t.Fatalf("%s: APPMESH_RESOURCE_ARN %q: %v", td.file, arn, err)
	}
	return res, vn
}

// bootstrapContainer is the container whose environment becomes Envoy's
// bootstrap: the one running `meshd agent` or `meshd bootstrap`.
func bootstrapContainer(t *testing.T, td taskDef) *types.ContainerDefinition {
	t.Helper()
	a, _ := meshdCommand(t, td, "agent")
	b, _ := meshdCommand(t, td, "bootstrap")
	switch {
	case a != nil && b != nil:
		t.Fatalf("%s: both meshd agent and meshd bootstrap", td.file)
	case a != nil:
		return a
	case b != nil:
		return b
	}
	t.Fatalf("%s: no container runs meshd agent or meshd bootstrap", td.file)
	return nil
}

// TestTaskDefinitionsStrict: every task definition is exactly the input of
// RegisterTaskDefinition (unknown fields fail), with enum values the SDK
// knows.
func TestTaskDefinitionsStrict(t *testing.T) {
	for _, td := range loadTaskDefs(t) {
		for _, err := range checkEnums(reflect.ValueOf(td.in), "") {
			t.Errorf("%s: %v", td.file, err)
		}
	}
	// The checks can fail.
	var in ecs.RegisterTaskDefinitionInput
	if err := decodeStrict([]byte(`{"family":"x","containerDefinitions":[{"name":"a","image":"b","essentiall":true}]}`), &in); err == nil {
		t.Error("a misspelt field decoded without error")
	}
	if err := decodeStrict([]byte(`{"family":"x","cpu":512}`), &in); err == nil {
		t.Error("cpu as a number decoded without error (the API wants a string)")
	}
	bad := ecs.RegisterTaskDefinitionInput{NetworkMode: "awsvpcc"}
	if errs := checkEnums(reflect.ValueOf(&bad), ""); len(errs) != 1 {
		t.Errorf("checkEnums(networkMode awsvpcc) = %v; want one error", errs)
	}
}

// checkEnums walks v and reports every string of an SDK enum type whose
// value is not one of the type's Values().
func checkEnums(v reflect.Value, at string) []error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkEnums(v.Elem(), at)
	case reflect.Struct:
		var errs []error
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				errs = append(errs, checkEnums(v.Field(i), at+"."+f.Name)...)
			}
		}
		return errs
	case reflect.Slice:
		var errs []error
		for i := 0; i < v.Len(); i++ {
			errs = append(errs, checkEnums(v.Index(i), fmt.Sprintf("%s[%d]", at, i))...)
		}
		return errs
	case reflect.Map:
		var errs []error
		for _, k := range v.MapKeys() {
			errs = append(errs, checkEnums(v.MapIndex(k), fmt.Sprintf("%s[%v]", at, k))...)
		}
		return errs
	case reflect.String:
		m := v.MethodByName("Values")
		if !m.IsValid() || v.Len() == 0 {
			return nil
		}
		vals := m.Call(nil)[0]
		for i := 0; i < vals.Len(); i++ {
			if vals.Index(i).String() == v.String() {
				return nil
			}
		}
		return []error{fmt.Errorf("%s: %q is not a %s the SDK knows", at, v.String(), v.Type().Name())}
	}
	return nil
}

// TestTaskDefinitionsRegister sends every task definition through the AWS
// SDK's RegisterTaskDefinition against a local endpoint: the SDK validates
// required fields before sending, signs the request, and serializes it;
// the body that arrives must carry the whole file.
func TestTaskDefinitionsRegister(t *testing.T) {
	var (
		mu     sync.Mutex
		bodies [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if got := r.Header.Get("X-Amz-Target"); got != "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition" {
			t.Errorf("X-Amz-Target = %q", got)
		}
		if auth := r.Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDMESHDTEST/") {
			t.Errorf("request not signed with the static credentials: Authorization %q", auth)
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		var in struct{ Family string }
		_ = json.Unmarshal(body, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		fmt.Fprintf(w, `{"taskDefinition":{"family":%q,"revision":1,"status":"ACTIVE","taskDefinitionArn":"arn:aws:ecs:us-west-2:111122223333:task-definition/%s:1"}}`, in.Family, in.Family)
	}))
	defer srv.Close()
	client := ecs.New(ecs.Options{
		Region:           "us-west-2",
		BaseEndpoint:     aws.String(srv.URL),
		HTTPClient:       srv.Client(),
		RetryMaxAttempts: 1,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDMESHDTEST", SecretAccessKey: "secret", Source: "test"}, nil
		}),
	})
	ctx := context.Background()
	for _, td := range loadTaskDefs(t) {
		mu.Lock()
		bodies = nil
		mu.Unlock()
		out, err := client.RegisterTaskDefinition(ctx, td.in)
		if err != nil {
			t.Errorf("%s: RegisterTaskDefinition: %v", td.file, err)
			continue
		}
		if got := aws.ToInt32(&out.TaskDefinition.Revision); got != 1 || aws.ToString(out.TaskDefinition.Family) != aws.ToString(td.in.Family) {
			t.Errorf("%s: response not deserialized: %+v", td.file, out.TaskDefinition)
		}
		mu.Lock()
		if len(bodies) != 1 {
			t.Errorf("%s: %d requests reached the endpoint", td.file, len(bodies))
		} else {
			var sent, file any
			if err := json.Unmarshal(bodies[0], &sent); err != nil {
				t.Errorf("%s: serialized body: %v", td.file, err)
			}
			_ = json.Unmarshal(td.raw, &file)
			if !reflect.DeepEqual(sent, file) {
				s, _ := json.MarshalIndent(sent, "", " ")
				t.Errorf("%s: the SDK sent something else than the file:\n%s", td.file, s)
			}
		}
		mu.Unlock()
	}

	// The SDK's validation rejects a task definition without what the API
	// requires, before sending anything.
	td := appTaskDefs(t)[0]
	var broken ecs.RegisterTaskDefinitionInput
	if err := decodeStrict(td.raw, &broken); err != nil {
		t.Fatal(err)
	}
	broken.ContainerDefinitions[0].DependsOn = append(broken.ContainerDefinitions[0].DependsOn, types.ContainerDependency{})
	broken.ProxyConfiguration.ContainerName = nil
	mu.Lock()
	bodies = nil
	mu.Unlock()
	_, err := client.RegisterTaskDefinition(ctx, &broken)
	if err == nil || !strings.Contains(err.Error(), "ContainerName") {
		t.Errorf("RegisterTaskDefinition without proxyConfiguration.containerName = %v; want the SDK's validation error", err)
	}
	if len(bodies) != 0 {
		t.Error("an invalid task definition reached the endpoint")
	}
}

// TestAppMeshProxyConfiguration checks what App Mesh's documentation
// requires of the proxy configuration, and that AppPorts are the virtual
// node's listener ports.
func TestAppMeshProxyConfiguration(t *testing.T) {
	for _, td := range appTaskDefs(t) {
		pc := td.in.ProxyConfiguration
		if pc.Type != types.ProxyConfigurationTypeAppmesh || aws.ToString(pc.ContainerName) != "envoy" {
			t.Errorf("%s: proxyConfiguration type %q container %q; want APPMESH, envoy", td.file, pc.Type, aws.ToString(pc.ContainerName))
		}
		if td.in.NetworkMode != types.NetworkModeAwsvpc {
			t.Errorf("%s: networkMode %q; the APPMESH proxy configuration needs awsvpc", td.file, td.in.NetworkMode)
		}
		props := proxyProps(td)
		want := map[string]string{"IgnoredUID": strconv.Itoa(envoyUID), "ProxyIngressPort": proxyIngressPort, "ProxyEgressPort": proxyEgressPort}
		for k, v := range want {
			if props[k] != v {
				t.Errorf("%s: %s = %q; want %q", td.file, k, props[k], v)
			}
		}
		for k := range props {
			switch k {
			case "IgnoredUID", "IgnoredGID", "ProxyIngressPort", "ProxyEgressPort", "AppPorts", "EgressIgnoredIPs", "EgressIgnoredPorts":
			default:
				t.Errorf("%s: unknown proxy configuration property %q", td.file, k)
			}
		}
		ips := strings.Split(props["EgressIgnoredIPs"], ",")
		for _, ip := range metadataIPs {
			if !slices.Contains(ips, ip) {
				t.Errorf("%s: EgressIgnoredIPs %q lacks %s (task metadata and credentials)", td.file, props["EgressIgnoredIPs"], ip)
			}
		}
		ignoredPorts := strings.Split(props["EgressIgnoredPorts"], ",")
		if len(ignoredPorts) > 15 {
			t.Errorf("%s: %d EgressIgnoredPorts; App Mesh allows 15", td.file, len(ignoredPorts))
		}
		// meshd sds reaches the CA service directly, not through Envoy.
		if _, fs := meshdCommand(t, td, "sds"); fs != nil {
			_, port, err := net.SplitHostPort(fs.get("ca-service"))
			if err != nil || !slices.Contains(ignoredPorts, port) {
				t.Errorf("%s: EgressIgnoredPorts %q must include the CA service's port (--ca-service %q)", td.file, props["EgressIgnoredPorts"], fs.get("ca-service"))
			}
		}

		_, vn := virtualNode(t, td)
		var listenerPorts []string
		for _, l := range vn.Spec.Listeners {
			listenerPorts = append(listenerPorts, strconv.FormatInt(*l.PortMapping.Port, 10))
		}
		appPorts := strings.Split(props["AppPorts"], ",")
		sort.Strings(appPorts)
		sort.Strings(listenerPorts)
		if !slices.Equal(appPorts, listenerPorts) {
			t.Errorf("%s: AppPorts %v; virtual node %s listens on %v", td.file, appPorts, vn.Name, listenerPorts)
		}
		app := container(td, "app")
		if app == nil {
			t.Fatalf("%s: no app container", td.file)
		}
		var exposed []string
		for _, pm := range app.PortMappings {
			exposed = append(exposed, strconv.Itoa(int(aws.ToInt32(pm.ContainerPort))))
		}
		sort.Strings(exposed)
		if !slices.Equal(exposed, appPorts) {
			t.Errorf("%s: app exposes %v; AppPorts %v", td.file, exposed, appPorts)
		}
	}
}

// TestContainers checks users, essential flags, dependencies and health
// checks: Envoy runs as IgnoredUID, the application waits for Envoy to be
// HEALTHY, nothing but Envoy runs as Envoy's user and group.
func TestContainers(t *testing.T) {
	for _, td := range loadTaskDefs(t) {
		byName := map[string]*types.ContainerDefinition{}
		for i := range td.in.ContainerDefinitions {
			c := &td.in.ContainerDefinitions[i]
			byName[aws.ToString(c.Name)] = c
		}
		waitedOn := map[string]types.ContainerCondition{}
		for _, c := range byName {
			for _, d := range c.DependsOn {
				dep := byName[aws.ToString(d.ContainerName)]
				switch {
				case dep == nil:
					t.Errorf("%s: %s depends on unknown container %q", td.file, aws.ToString(c.Name), aws.ToString(d.ContainerName))
				case d.Condition == types.ContainerConditionHealthy && dep.HealthCheck == nil:
					t.Errorf("%s: %s waits for %s to be HEALTHY, which has no health check", td.file, aws.ToString(c.Name), aws.ToString(d.ContainerName))
				case (d.Condition == types.ContainerConditionSuccess || d.Condition == types.ContainerConditionComplete) && aws.ToBool(dep.Essential):
					t.Errorf("%s: %s waits for essential %s to exit (ECS refuses SUCCESS/COMPLETE on essential containers)", td.file, aws.ToString(c.Name), aws.ToString(d.ContainerName))
				}
				waitedOn[aws.ToString(d.ContainerName)] = d.Condition
			}
		}
		if cyc := dependencyCycle(byName); cyc != "" {
			t.Errorf("%s: dependency cycle %s", td.file, cyc)
		}
		for name, c := range byName {
			// Non-essential: init containers (others wait for them to exit 0)
			// and the optional metrics exporter; everything else takes the
			// task down with it.
			if init := waitedOn[name] == types.ContainerConditionSuccess; !aws.ToBool(c.Essential) && !init && name != "meshd-metrics" {
				t.Errorf("%s: %s is not essential, but it is no init container", td.file, name)
			}
			if c.HealthCheck != nil {
				hc := c.HealthCheck
				if aws.ToInt32(hc.Timeout) >= aws.ToInt32(hc.Interval)+1 || aws.ToInt32(hc.Interval) < 5 || aws.ToInt32(hc.Retries) < 1 {
					t.Errorf("%s: %s: health check interval %d timeout %d retries %d out of ECS's range", td.file, name, aws.ToInt32(hc.Interval), aws.ToInt32(hc.Timeout), aws.ToInt32(hc.Retries))
				}
			}
		}
		used := map[string]bool{}
		for name, c := range byName {
			for _, mp := range c.MountPoints {
				used[aws.ToString(mp.SourceVolume)] = true
				if !slices.ContainsFunc(td.in.Volumes, func(v types.Volume) bool { return aws.ToString(v.Name) == aws.ToString(mp.SourceVolume) }) {
					t.Errorf("%s: %s mounts unknown volume %q", td.file, name, aws.ToString(mp.SourceVolume))
				}
			}
		}
		for _, v := range td.in.Volumes {
			if !used[aws.ToString(v.Name)] {
				t.Errorf("%s: volume %q is not mounted anywhere", td.file, aws.ToString(v.Name))
			}
		}
		if td.in.ProxyConfiguration == nil {
			continue
		}

		envoy, app := byName["envoy"], byName["app"]
		if envoy == nil || app == nil {
			t.Fatalf("%s: containers envoy and app are required", td.file)
		}
		uid, gid, err := userOf(envoy)
		if err != nil || strconv.Itoa(uid) != proxyProps(td)["IgnoredUID"] || gid != envoyUID {
			t.Errorf("%s: envoy user %q; want %d:%d (IgnoredUID, and the SDS socket's group)", td.file, aws.ToString(envoy.User), envoyUID, envoyUID)
		}
		if !aws.ToBool(envoy.Essential) || !aws.ToBool(app.Essential) {
			t.Errorf("%s: envoy and app must be essential", td.file)
		}
		if envoy.HealthCheck == nil {
			t.Errorf("%s: envoy has no health check", td.file)
		}
		if !slices.ContainsFunc(app.DependsOn, func(d types.ContainerDependency) bool {
			return aws.ToString(d.ContainerName) == "envoy" && d.Condition == types.ContainerConditionHealthy
		}) {
			t.Errorf("%s: app does not wait for envoy HEALTHY", td.file)
		}
		if s := aws.ToInt32(envoy.StopTimeout); s < 25 {
			t.Errorf("%s: envoy stopTimeout %d s leaves no time to drain (LISTENER_DRAIN_WAIT_TIME_S 20 s + 3 s)", td.file, s)
		}
		for name, c := range byName {
			if name == "envoy" {
				continue
			}
			uid, gid, err := userOf(c)
			if err != nil {
				t.Errorf("%s: %s: %v", td.file, name, err)
			}
			if uid == envoyUID && gid == envoyUID {
				t.Errorf("%s: %s runs as Envoy's user and group %d:%d", td.file, name, uid, gid)
			}
			if name == "app" && uid == envoyUID {
				t.Errorf("%s: the application runs as IgnoredUID: its traffic would bypass Envoy", td.file)
			}
		}
	}
}

func dependencyCycle(byName map[string]*types.ContainerDefinition) string {
	state := map[string]int{}
	var stack []string
	var visit func(string) bool
	visit = func(n string) bool {
		switch state[n] {
		case 1:
			stack = append(stack, n)
			return true
		case 2:
			return false
		}
		state[n] = 1
		stack = append(stack, n)
		if c := byName[n]; c != nil {
			for _, d := range c.DependsOn {
				if visit(aws.ToString(d.ContainerName)) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[n] = 2
		return false
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if visit(n) {
			return strings.Join(stack, " -> ")
		}
	}
	return ""
}

// TestMeshdCommandLines parses every meshd command line — entry point plus
// command, and health checks — with meshd's own command tree, and checks
// that every variable in meshd's namespaces is one meshd reads.
func TestMeshdCommandLines(t *testing.T) {
	for _, td := range loadTaskDefs(t) {
		n := 0
		for i := range td.in.ContainerDefinitions {
			c := &td.in.ContainerDefinitions[i]
			name := aws.ToString(c.Name)
			if strings.Contains(aws.ToString(c.Image), "/meshd") {
				if a := argv(c); len(a) == 0 || !deploytest.IsMeshd(a[0]) {
					t.Errorf("%s: %s uses a meshd image but does not say which meshd command it runs (entryPoint %q command %q)", td.file, name, c.EntryPoint, c.Command)
				}
			}
			if a := argv(c); len(a) > 0 && deploytest.IsMeshd(a[0]) {
				n++
				if _, _, err := deploytest.ParseMeshd(a); err != nil {
					t.Errorf("%s: %s: %v", td.file, name, err)
				}
			}
			if c.HealthCheck != nil && len(c.HealthCheck.Command) > 1 && c.HealthCheck.Command[0] == "CMD" && deploytest.IsMeshd(c.HealthCheck.Command[1]) {
				n++
				if _, _, err := deploytest.ParseMeshd(c.HealthCheck.Command[1:]); err != nil {
					t.Errorf("%s: %s health check: %v", td.file, name, err)
				}
			}
			var names []string
			for k := range environ(c) {
				names = append(names, k)
			}
			for _, err := range deploytest.CheckEnvNames(names, nil) {
				t.Errorf("%s: %s: %v", td.file, name, err)
			}
		}
		if n == 0 {
			t.Errorf("%s: no meshd command line", td.file)
		}
	}
}

// TestEnvoyBootstrap renders, in-process as `meshd bootstrap` does, the
// bootstrap each task's Envoy gets, and loads the agent's configuration
// where `meshd agent` runs.
func TestEnvoyBootstrap(t *testing.T) {
	for _, td := range appTaskDefs(t) {
		c := bootstrapContainer(t, td)
		env := environ(c)
		data, warnings, err := deploytest.RenderBootstrap(env)
		if err != nil {
			t.Errorf("%s: %s: the bootstrap does not render: %v", td.file, aws.ToString(c.Name), err)
			continue
		}
		for _, w := range warnings {
			t.Errorf("%s: %s: warning: %s", td.file, aws.ToString(c.Name), w)
		}
		var b struct {
			Node struct {
				ID string `json:"id"`
			} `json:"node"`
			Admin struct {
				Address struct {
					SocketAddress struct {
						PortValue int `json:"portValue"`
					} `json:"socketAddress"`
				} `json:"address"`
			} `json:"admin"`
		}
		if err := json.Unmarshal(data, &b); err != nil {
			t.Fatal(err)
		}
		if b.Node.ID != env["APPMESH_RESOURCE_ARN"] {
			t.Errorf("%s: node id %q; want APPMESH_RESOURCE_ARN", td.file, b.Node.ID)
		}
		// SDS: Envoy's socket is meshd sds's, on a volume both mount there.
		_, fs := meshdCommand(t, td, "sds")
		if fs == nil {
			t.Fatalf("%s: no meshd sds container", td.file)
		}
		socket := fs.get("socket")
		if env["APPMESH_SDS_SOCKET_PATH"] != socket || !bytes.Contains(data, []byte(`"`+socket+`"`)) {
			t.Errorf("%s: APPMESH_SDS_SOCKET_PATH %q, bootstrap SDS cluster, and meshd sds --socket %q disagree", td.file, env["APPMESH_SDS_SOCKET_PATH"], socket)
		}
		// Telemetry the task carries is configured in the bootstrap.
		for sidecar, want := range map[string]string{
			"xray-daemon":   "envoy.tracers.xray",
			"datadog-agent": "envoy.tracers.datadog",
		} {
			if container(td, sidecar) != nil && !bytes.Contains(data, []byte(want)) {
				t.Errorf("%s: %s runs but the bootstrap has no %s", td.file, sidecar, want)
			}
		}
		if container(td, "datadog-agent") != nil && !bytes.Contains(data, []byte("envoy.stat_sinks.dog_statsd")) {
			t.Errorf("%s: datadog-agent runs but Envoy has no DogStatsD sink", td.file)
		}
		if a, _ := meshdCommand(t, td, "agent"); a != nil {
			cfg, warnings, err := agent.LoadConfig(tracing.MapLookup(env))
			if err != nil {
				t.Errorf("%s: meshd agent's configuration: %v", td.file, err)
			}
			for _, w := range warnings {
				t.Errorf("%s: meshd agent warns: %s", td.file, w)
			}
			if cfg.EnvoyAdmin != net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Admin.Address.SocketAddress.PortValue)) {
				t.Errorf("%s: the agent looks for Envoy's admin at %s, the bootstrap puts it on port %d", td.file, cfg.EnvoyAdmin, b.Admin.Address.SocketAddress.PortValue)
			}
		}
	}
}

// TestSDS checks the certificate path of every task: meshd sds shares its
// socket with Envoy, gives it Envoy's group, matches only Envoy to the
// virtual node's identity, and the CA policy grants that identity to the
// task's agent.
func TestSDS(t *testing.T) {
	root, err := deploytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	policyData, err := os.ReadFile(filepath.Join(root, "deploy/ecs/config/ca-policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, td := range appTaskDefs(t) {
		c, fs := meshdCommand(t, td, "sds")
		envoy := container(td, "envoy")
		if c == nil || envoy == nil {
			t.Fatalf("%s: meshd sds and envoy containers are required", td.file)
		}
		name := aws.ToString(c.Name)
		if !aws.ToBool(c.Essential) {
			t.Errorf("%s: %s must be essential", td.file, name)
		}
		if !slices.ContainsFunc(envoy.DependsOn, func(d types.ContainerDependency) bool { return aws.ToString(d.ContainerName) == name }) {
			t.Errorf("%s: envoy does not depend on %s", td.file, name)
		}
		socket := fs.get("socket")
		sdsVol := mountOf(c, path.Dir(socket))
		if sdsVol == "" || mountOf(envoy, path.Dir(socket)) != sdsVol {
			t.Errorf("%s: %s's socket directory %s is not a volume shared with envoy", td.file, name, path.Dir(socket))
		}
		_, envoyGID, _ := userOf(envoy)
		_, sdsGID, _ := userOf(c)
		if fs.get("socket-group") != strconv.Itoa(envoyGID) || sdsGID != envoyGID {
			t.Errorf("%s: --socket-group %q, meshd sds's gid %d, Envoy's gid %d: all three must agree (the socket is 0660, chgrp needs no capability only to one's own group)", td.file, fs.get("socket-group"), sdsGID, envoyGID)
		}
		if !slices.ContainsFunc(c.Secrets, func(s types.Secret) bool { return aws.ToString(s.Name) == "MESHD_JOIN_TOKEN" }) || environ(c)["MESHD_JOIN_TOKEN"] == "" {
			t.Errorf("%s: %s gets no join token from a secret", td.file, name)
		}
		for _, kv := range c.Environment {
			if aws.ToString(kv.Name) == "MESHD_JOIN_TOKEN" {
				t.Errorf("%s: the join token is a plain environment variable; use secrets", td.file)
			}
		}

		// The config init container writes the files meshd sds reads.
		cfgC := container(td, "meshd-config")
		if cfgC == nil {
			t.Fatalf("%s: no meshd-config container", td.file)
		}
		files := runConfigInit(t, td, cfgC, map[string]string{"CA_BUNDLE_PEM": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"})
		for _, flagName := range []string{"identities", "ca-service-bundle"} {
			p := fs.get(flagName)
			if _, ok := files[p]; !ok || mountOf(c, path.Dir(p)) != mountOf(cfgC, path.Dir(p)) {
				t.Errorf("%s: meshd sds --%s %s is not written by meshd-config on a shared volume (written: %v)", td.file, flagName, p, keys(files))
			}
		}
		td2, err := spiffeid.TrustDomainFromString(fs.get("trust-domain"))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := sds.ParseIdentities(files[fs.get("identities")], td2)
		if err != nil {
			t.Errorf("%s: identities: %v", td.file, err)
			continue
		}
		res, vn := virtualNode(t, td)
		wantID := spiffeid.RequireFromSegments(td2, "mesh", res.Mesh, "virtualNode", res.Name)
		got := ids.Match(peer.Info{UID: envoyUID, GID: envoyUID, Exe: "/usr/local/bin/envoy"})
		if len(got) != 1 || got[0].SPIFFEID != wantID {
			t.Errorf("%s: Envoy (%d:%d) gets %v; want exactly %s", td.file, envoyUID, envoyUID, got, wantID)
			continue
		}
		wantDNS := strings.ToLower(vn.Spec.ServiceDiscovery.DNS.Hostname)
		if !slices.Equal(got[0].DNSNames, []string{wantDNS}) {
			t.Errorf("%s: DNS SANs %v; App Mesh validates the service-discovery name %s", td.file, got[0].DNSNames, wantDNS)
		}
		for i := range td.in.ContainerDefinitions {
			o := &td.in.ContainerDefinitions[i]
			if o == envoy {
				continue
			}
			uid, gid, _ := userOf(o)
			if m := ids.Match(peer.Info{UID: uint32(uid), GID: uint32(gid)}); len(m) > 0 {
				t.Errorf("%s: %s (%d:%d) would get identity %s too", td.file, aws.ToString(o.Name), uid, gid, m[0].SPIFFEID)
			}
		}
		// Nor any container one might add as IgnoredUID (telemetry agents),
		// or in Envoy's group, or as root.
		for _, p := range []peer.Info{{UID: envoyUID, GID: 0}, {UID: envoyUID, GID: envoyUID + 1}, {UID: 0, GID: envoyUID}, {UID: 0, GID: 0}} {
			if m := ids.Match(p); len(m) > 0 {
				t.Errorf("%s: a container running as %d:%d would get identity %s: select uid and gid", td.file, p.UID, p.GID, m[0].SPIFFEID)
			}
		}
		policy, err := caservice.ParsePolicy(policyData, td2)
		if err != nil {
			t.Fatal(err)
		}
		agentID := spiffeid.RequireFromSegments(td2, "meshd", "agent", "ecs", aws.ToString(td.in.Family))
		if err := policy.Allows(agentID, wantID, got[0].DNSNames); err != nil {
			t.Errorf("%s: config/ca-policy.yaml: %v", td.file, err)
		}
		other := spiffeid.RequireFromSegments(td2, "mesh", res.Mesh, "virtualNode", res.Name+"-other")
		if policy.Allows(agentID, other, nil) == nil {
			t.Errorf("%s: the policy grants %s more than its own node", td.file, agentID)
		}
	}
}

// mountOf is the volume mounted at dir in c ("" if none).
func mountOf(c *types.ContainerDefinition, dir string) string {
	for _, mp := range c.MountPoints {
		if aws.ToString(mp.ContainerPath) == dir {
			return aws.ToString(mp.SourceVolume)
		}
	}
	return ""
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// runConfigInit runs the meshd-config container's shell command with sh,
// its mount points moved under a scratch directory, and returns the files
// it wrote by their path in the container.
func runConfigInit(t *testing.T, td taskDef, c *types.ContainerDefinition, secrets map[string]string) map[string][]byte {
	t.Helper()
	a := argv(c)
	if len(a) != 3 || a[0] != "sh" || a[1] != "-c" {
		t.Fatalf("%s: meshd-config runs %q; want sh -c SCRIPT", td.file, a)
	}
	script := a[2]
	scratch := t.TempDir()
	for _, mp := range c.MountPoints {
		dir := aws.ToString(mp.ContainerPath)
		if err := os.MkdirAll(filepath.Join(scratch, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		script = strings.ReplaceAll(script, dir+"/", scratch+dir+"/")
	}
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range environ(c) {
		if s, ok := secrets[k]; ok {
			v = s
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: meshd-config: %v\n%s", td.file, err, out)
	}
	files := map[string][]byte{}
	err := filepath.WalkDir(scratch, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: meshd-config wrote %s with mode %04o; want 0600", td.file, p, fi.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		files[strings.TrimPrefix(p, scratch)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(files["/etc/meshd/ca-bundle.pem"]); got != secrets["CA_BUNDLE_PEM"]+"\n" {
		t.Errorf("%s: ca-bundle.pem = %q", td.file, got)
	}
	return files
}

// TestStockEnvoyHealthCheck runs the stock-Envoy health check (bash,
// /dev/tcp) against a local server answering as Envoy's /ready does.
func TestStockEnvoyHealthCheck(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	var checked bool
	for _, td := range appTaskDefs(t) {
		envoy := container(td, "envoy")
		if envoy.HealthCheck == nil || len(envoy.HealthCheck.Command) != 4 || envoy.HealthCheck.Command[1] != "bash" {
			continue
		}
		checked = true
		script := envoy.HealthCheck.Command[3]
		port := environ(bootstrapContainer(t, td))["ENVOY_ADMIN_ACCESS_PORT"]
		if port == "" {
			port = "9901"
		}
		target := "/dev/tcp/127.0.0.1/" + port
		if !strings.Contains(script, target) {
			t.Fatalf("%s: health check %q does not ask Envoy's admin port %s", td.file, script, port)
		}
		for _, tc := range []struct {
			status int
			body   string
			ok     bool
		}{{200, "LIVE\n", true}, {503, "PRE_INITIALIZING\n", false}, {503, "DRAINING\n", false}} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/ready" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
			cmd := exec.Command(envoy.HealthCheck.Command[1], envoy.HealthCheck.Command[2], strings.ReplaceAll(script, target, "/dev/tcp/127.0.0.1/"+p))
			err := cmd.Run()
			srv.Close()
			if (err == nil) != tc.ok {
				t.Errorf("%s: health check with /ready %d %q: err %v; want ok=%v", td.file, tc.status, tc.body, err, tc.ok)
			}
		}
	}
	if !checked {
		t.Fatal("no stock-Envoy task definition with a bash health check")
	}
}

// TestTelemetrySidecars checks the optional agents against the settings
// that point Envoy and meshd at them.
func TestTelemetrySidecars(t *testing.T) {
	seen := map[string]bool{}
	for _, td := range appTaskDefs(t) {
		envoyEnv := environ(bootstrapContainer(t, td))
		exposes := func(c *types.ContainerDefinition, port int32, proto types.TransportProtocol) bool {
			return slices.ContainsFunc(c.PortMappings, func(pm types.PortMapping) bool {
				return aws.ToInt32(pm.ContainerPort) == port && (pm.Protocol == proto || pm.Protocol == "" && proto == types.TransportProtocolTcp)
			})
		}
		for i := range td.in.ContainerDefinitions {
			c := &td.in.ContainerDefinitions[i]
			name := aws.ToString(c.Name)
			switch name {
			case "xray-daemon":
				seen[name] = true
				if envoyEnv["ENABLE_ENVOY_XRAY_TRACING"] != "1" || !exposes(c, 2000, types.TransportProtocolUdp) {
					t.Errorf("%s: X-Ray daemon on udp 2000 with ENABLE_ENVOY_XRAY_TRACING=1 expected", td.file)
				}
			case "cloudwatch-agent":
				seen[name] = true
				var cw struct {
					Logs struct {
						MetricsCollected struct {
							EMF *struct{} `json:"emf"`
						} `json:"metrics_collected"`
					} `json:"logs"`
				}
				if err := decodeStrict([]byte(environ(c)["CW_CONFIG_CONTENT"]), &cw); err != nil || cw.Logs.MetricsCollected.EMF == nil {
					t.Errorf("%s: CW_CONFIG_CONTENT does not enable the EMF endpoint: %v", td.file, err)
				}
				_, fs := meshdCommand(t, td, "agent")
				if fs == nil || fs.get("emf") != "tcp://127.0.0.1:25888" || !exposes(c, 25888, types.TransportProtocolTcp) || envoyEnv["APPMESH_METRIC_EXTENSION_VERSION"] != "1" {
					t.Errorf("%s: meshd agent --emf must point at the CloudWatch agent's tcp 25888, with the metrics extension on", td.file)
				}
			case "datadog-agent":
				seen[name] = true
				if !exposes(c, 8125, types.TransportProtocolUdp) || !exposes(c, 8126, types.TransportProtocolTcp) ||
					envoyEnv["ENABLE_ENVOY_DOG_STATSD"] != "1" || envoyEnv["ENABLE_ENVOY_DATADOG_TRACING"] != "1" {
					t.Errorf("%s: Datadog agent on udp 8125 / tcp 8126 with DogStatsD and Datadog tracing on expected", td.file)
				}
				if environ(c)["DD_API_KEY"] == "" || slices.ContainsFunc(c.Environment, func(kv types.KeyValuePair) bool { return aws.ToString(kv.Name) == "DD_API_KEY" }) {
					t.Errorf("%s: DD_API_KEY must come from a secret", td.file)
				}
			default:
				continue
			}
			// Their HTTPS egress must not be redirected into Envoy, and they
			// must not reach the SDS socket.
			uid, gid, _ := userOf(c)
			if strconv.Itoa(uid) != proxyProps(td)["IgnoredUID"] || gid == envoyUID {
				t.Errorf("%s: %s runs as %d:%d; want IgnoredUID with another group", td.file, name, uid, gid)
			}
		}
	}
	for _, s := range []string{"xray-daemon", "cloudwatch-agent", "datadog-agent"} {
		if !seen[s] {
			t.Errorf("no task definition with %s", s)
		}
	}
}
