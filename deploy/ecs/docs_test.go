package ecs

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/meshd/meshd/deploy/internal/deploytest"
	"github.com/meshd/meshd/internal/agent"
	"github.com/meshd/meshd/tracing"
)

// TestReadmeCommands exercises the meshd commands of deploy/ecs/README.md.
func TestReadmeCommands(t *testing.T) {
	deploytest.CheckLinks(t, "deploy/ecs/README.md")
	ran := deploytest.RunDocCommands(t, "deploy/ecs/README.md")
	for _, want := range []string{"validate", "ca show", "ca token create"} {
		if ran[want] == 0 {
			t.Errorf("README.md: no `meshd %s` ran", want)
		}
	}
}

// TestMigrationCommands exercises the meshd commands of docs/migration.md.
func TestMigrationCommands(t *testing.T) {
	deploytest.CheckLinks(t, "docs/migration.md")
	ran := deploytest.RunDocCommands(t, "docs/migration.md")
	for _, want := range []string{"validate", "bootstrap", "ca token create"} {
		if ran[want] == 0 {
			t.Errorf("docs/migration.md: no `meshd %s` ran", want)
		}
	}
}

// appMeshVariables are the variables the App Mesh Envoy image read: its
// user guide (envoy-config.md and the ECS/EC2 guides) and its agent's
// source (shared/notes/appmesh-agent.md, sections 1.4 and 1.5).
var appMeshVariables = strings.Fields(`
APPMESH_RESOURCE_ARN APPMESH_RESOURCE_NAME APPMESH_VIRTUAL_NODE_NAME APPMESH_RESOURCE_CLUSTER
APPMESH_VIRTUAL_NODE_CLUSTER AWS_REGION APPMESH_XDS_ENDPOINT APPMESH_PREVIEW APPMESH_DUALSTACK_ENDPOINT
APPMESH_SIGNING_NAME ENVOY_INITIAL_FETCH_TIMEOUT ENVOY_ADMIN_MODE ENVOY_ADMIN_ACCESS_PORT
ENVOY_ADMIN_ACCESS_ENABLE_IPV6 ENVOY_ADMIN_ACCESS_LOG_FILE ENVOY_OUTLIER_DETECTION_EVENT_LOG_PATH
APPMESH_SET_TRACING_DECISION ENVOY_NO_EXTENSION_LOOKUP_BY_NAME ENVOY_USE_HTTP_CLIENT_TO_FETCH_AWS_CREDENTIALS
MAX_REQUESTS_PER_IO_CYCLE ENVOY_TRACING_CFG_FILE ENABLE_ENVOY_XRAY_TRACING ENABLE_ENVOY_DATADOG_TRACING
ENABLE_ENVOY_JAEGER_TRACING XRAY_DAEMON_PORT AWS_XRAY_DAEMON_ADDRESS XRAY_SAMPLING_RULE_MANIFEST
XRAY_SAMPLING_RATE XRAY_SEGMENT_NAME DATADOG_TRACER_PORT DATADOG_TRACER_ADDRESS DD_SERVICE
JAEGER_TRACER_PORT JAEGER_TRACER_ADDRESS JAEGER_TRACER_VERSION APPMESH_SDS_SOCKET_PATH
ENVOY_STATS_CONFIG_FILE ENABLE_ENVOY_STATS_TAGS APPMESH_METRIC_EXTENSION_VERSION ENVOY_STATS_FLUSH_INTERVAL
ENABLE_ENVOY_DOG_STATSD STATSD_SOCKET_PATH STATSD_ADDRESS STATSD_PORT ENVOY_STATS_SINKS_CFG_FILE
ENVOY_RESOURCES_CONFIG_FILE
APPMESH_PLATFORM_K8S_VERSION APPMESH_PLATFORM_K8S_POD_UID APPMESH_PLATFORM_APP_MESH_CONTROLLER_VERSION
AWS_EXECUTION_ENV ECS_CONTAINER_METADATA_URI_V4 ECS_CONTAINER_METADATA_URI ECS_CONTAINER_INSTANCE_ARN
APPNET_FIPS_MODE_ENABLED APPNET_CONTAINER_IP_MAPPING APPNET_LISTENER_PORT_MAPPING NAMESPACE_NAME NAMESPACE_ARN
APPNET_AGENT_ADMIN_MODE APPNET_AGENT_HTTP_PORT APPNET_AGENT_HTTP_BIND_ADDRESS APPNET_AGENT_ADMIN_UDS_PATH
APPNET_ENVOY_RESTART_COUNT PID_POLL_INTERVAL_MS HC_POLL_INTERVAL_MS HC_DISCONNECTED_TIMEOUT_S
LISTENER_DRAIN_WAIT_TIME_S APPNET_AGENT_LOGGING_RESET_TIMEOUT APPNET_AGENT_POLL_ENVOY_READINESS_INTERVAL_S
APPNET_AGENT_POLL_ENVOY_READINESS_TIMEOUT_S ENABLE_STATS_SNAPSHOT ENVOY_LOG_LEVEL ENVOY_CONFIG_FILE
ENVOY_CONCURRENCY DISABLE_HOT_RESTART ENVOY_SKIP_DEPRECATED_LOGS APPNET_ENVOY_LOG_DESTINATION
APPNET_ENVOY_LOG_NAME APPNET_AGENT_MAX_LOG_FILE_SIZE APPNET_AGENT_MAX_RETENTION_COUNT
APPNET_ENABLE_RELAY_MODE_FOR_XDS APPNET_RELAY_LISTENER_UDS_PATH APPNET_MANAGEMENT_DOMAIN_NAME
APPNET_MANAGEMENT_PORT RELAY_STREAM_IDLE_TIMEOUT RELAY_BUFFER_LIMIT_BYTES TLS_CURVE
ENVOY_ENABLE_TCP_POOL_IDLE_TIMEOUT ENVOY_ENABLE_IAM_AUTH_FOR_XDS
APPMESH_IGNORE_UID APPMESH_IGNORE_GID APPMESH_APP_PORTS APPMESH_ENVOY_INGRESS_PORT APPMESH_ENVOY_EGRESS_PORT
APPMESH_EGRESS_IGNORED_IP APPMESH_EGRESS_IGNORED_PORTS APPMESH_ENABLE_IPV6 APPMESH_START_ENABLED
`)

var (
	variableRow = regexp.MustCompile("^\\| `([A-Z][A-Z0-9_]*)` \\| ([a-z -]+) \\|(.*)\\|$")
	scriptVar   = regexp.MustCompile(`\$\{?(APPMESH_[A-Z0-9_]+)`)
)

// TestMigrationVariables checks docs/migration.md's table, variable by
// variable, against what meshd does: every App Mesh variable and every
// variable meshd reads has a row, and each row's verdict holds when the
// variable is set.
func TestMigrationVariables(t *testing.T) {
	root, err := deploytest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "docs/migration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "<!-- BEGIN variables -->\n")
	table, _, ok2 := strings.Cut(table, "<!-- END variables -->")
	if !ok || !ok2 {
		t.Fatal("docs/migration.md: no <!-- BEGIN variables --> … <!-- END variables --> table")
	}
	rows := map[string]string{}
	for i, line := range strings.Split(strings.TrimSpace(table), "\n") {
		if i < 2 {
			continue // header and separator
		}
		m := variableRow.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("malformed row %q", line)
			continue
		}
		if _, dup := rows[m[1]]; dup {
			t.Errorf("%s has two rows", m[1])
		}
		rows[m[1]] = m[2]
	}

	script, err := os.ReadFile(filepath.Join(root, "deploy/ec2/meshd-iptables"))
	if err != nil {
		t.Fatal(err)
	}
	iptablesVars := map[string]bool{}
	for _, m := range scriptVar.FindAllStringSubmatch(string(script), -1) {
		iptablesVars[m[1]] = true
	}
	known := deploytest.KnownEnv()

	var want []string
	want = append(want, appMeshVariables...)
	for name := range known {
		want = append(want, name)
	}
	for name := range iptablesVars {
		want = append(want, name)
	}
	slices.Sort(want)
	for _, name := range slices.Compact(want) {
		if _, ok := rows[name]; !ok {
			t.Errorf("docs/migration.md: no row for %s", name)
		}
	}
	// The list above follows the user guide, where it is at hand.
	if guide, err := os.ReadFile(filepath.Join(root, "../shared/reference/appmesh-user-guide/envoy-config.md")); err == nil {
		for _, m := range regexp.MustCompile("(?m)^`([A-Z][A-Z0-9_]+)`\\s*$").FindAllStringSubmatch(string(guide), -1) {
			if !slices.Contains(appMeshVariables, m[1]) {
				t.Errorf("the user guide documents %s; add it to appMeshVariables and the table", m[1])
			}
		}
	}

	base := map[string]string{"APPMESH_RESOURCE_ARN": "mesh/apps/virtualNode/serviceB", "MESHD_XDS_ADDRESS": "127.0.0.1:15010"}
	baseBoot, baseWarn, err := deploytest.RenderBootstrap(base)
	if err != nil || len(baseWarn) > 0 {
		t.Fatalf("base environment: %v %v", err, baseWarn)
	}
	baseAgent, _, err := agent.LoadConfig(tracing.MapLookup(base))
	if err != nil {
		t.Fatal(err)
	}
	with := func(name, value string) map[string]string {
		env := map[string]string{name: value}
		for k, v := range base {
			env[k] = v
		}
		return env
	}
	mentions := func(ws []string, name string) bool {
		return slices.ContainsFunc(ws, func(w string) bool { return strings.Contains(w, name) })
	}
	for name, verdict := range rows {
		switch verdict {
		case "kept", "new":
			if _, ok := known[name]; !ok {
				t.Errorf("%s is %q, but meshd does not read it", name, verdict)
			}
			if verdict == "new" && slices.Contains(appMeshVariables, name) {
				t.Errorf("%s is %q, but App Mesh read it", name, verdict)
			}
		case "meshd-iptables":
			if !iptablesVars[name] {
				t.Errorf("%s: meshd-iptables does not read it", name)
			}
		case "ignored":
			boot, warns, err := deploytest.RenderBootstrap(with(name, "value"))
			if err != nil || !mentions(warns, name) || !bytes.Equal(boot, baseBoot) {
				t.Errorf("%s is %q, but setting it gives error %v, warnings %q, same bootstrap %v", name, verdict, err, warns, bytes.Equal(boot, baseBoot))
			}
		case "refused":
			_, _, err := agent.LoadConfig(tracing.MapLookup(with(name, "1")))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("%s is %q, but meshd agent accepts it: %v", name, verdict, err)
			}
		case "not read":
			if _, ok := known[name]; ok || iptablesVars[name] {
				t.Errorf("%s is %q, but meshd reads it", name, verdict)
			}
			env := with(name, "garbage-value")
			boot, warns, err := deploytest.RenderBootstrap(env)
			cfg, agentWarns, agentErr := agent.LoadConfig(tracing.MapLookup(env))
			if err != nil || agentErr != nil || len(warns)+len(agentWarns) > 0 || !bytes.Equal(boot, baseBoot) || !reflect.DeepEqual(cfg, baseAgent) {
				t.Errorf("%s is %q, but setting it changes something: %v %v %q %q", name, verdict, err, agentErr, warns, agentWarns)
			}
		default:
			t.Errorf("%s: verdict %q is not one the table explains", name, verdict)
		}
	}
}

// TestMigrationTerraform checks the Terraform snippet carries every part of
// the task definition it reads.
func TestMigrationTerraform(t *testing.T) {
	root, _ := deploytest.RepoRoot()
	data, err := os.ReadFile(filepath.Join(root, "docs/migration.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, hcl, ok := strings.Cut(string(data), "```hcl\n")
	hcl, _, _ = strings.Cut(hcl, "```")
	if !ok {
		t.Fatal("docs/migration.md: no hcl block")
	}
	file := regexp.MustCompile(`file\("\$\{path\.module\}/([^"]+)"\)`).FindStringSubmatch(hcl)
	if file == nil {
		t.Fatal("the Terraform snippet reads no task definition with file()")
	}
	var td *taskDef
	for _, x := range loadTaskDefs(t) {
		if x.file == file[1] {
			td = &x
		}
	}
	if td == nil {
		t.Fatalf("the Terraform snippet reads %s, which is not a task definition here", file[1])
	}
	var top map[string]any
	if err := decodeStrict(td.raw, &top); err != nil {
		t.Fatal(err)
	}
	for key := range top {
		if !strings.Contains(hcl, "local.serviceb."+key) {
			t.Errorf("the Terraform snippet drops %s of %s", key, td.file)
		}
	}
}
