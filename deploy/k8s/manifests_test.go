package k8s

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshd/meshd/deploy/internal/deploytest"
	"github.com/meshd/meshd/internal/cli"
	"github.com/meshd/meshd/tracing"
)

// meshdContainer is a meshd container of a rendered workload with its
// command line parsed by meshd's own flag sets.
type meshdContainer struct {
	w       workload
	c       *corev1.Container
	command string // "meshd controlplane", "meshd ca serve", …
	fs      *flag.FlagSet
	set     map[string]string // flags given on the command line
}

func (m meshdContainer) String() string { return m.w.String() + " container " + m.c.Name }

func (m meshdContainer) flag(name string) string {
	if v, ok := m.set[name]; ok {
		return v
	}
	if f := m.fs.Lookup(name); f != nil {
		return f.DefValue
	}
	return ""
}

// meshdContainers parses the command line of every meshd container of
// objs; a command line meshd would refuse fails the test.
func meshdContainers(t testing.TB, objs []*unstructured.Unstructured) []meshdContainer {
	t.Helper()
	var out []meshdContainer
	for _, w := range workloads(t, objs) {
		for _, c := range allContainers(&w.tmpl.Spec) {
			if !isMeshd(c) {
				continue
			}
			args, err := expandArgs(c, w.namespace, objs)
			if err != nil {
				t.Errorf("%s container %s: %v", w, c.Name, err)
				continue
			}
			if len(c.Command) > 0 {
				// The images' entrypoint is meshd; a command must name it.
				if path.Base(args[0]) != "meshd" {
					t.Errorf("%s container %s: command %q does not run meshd", w, c.Name, c.Command)
					continue
				}
				args = args[1:]
			}
			p, fs, err := cli.Parse(args)
			if err != nil {
				t.Errorf("%s container %s: meshd %s: %v", w, c.Name, strings.Join(args, " "), err)
				continue
			}
			if rest := fs.Args(); len(rest) > 0 && !(len(p) == 2 && p[1] == "agent") {
				t.Errorf("%s container %s: stray arguments %q", w, c.Name, rest)
			}
			m := meshdContainer{w: w, c: c, command: strings.Join(p, " "), fs: fs, set: map[string]string{}}
			fs.Visit(func(f *flag.Flag) { m.set[f.Name] = f.Value.String() })
			out = append(out, m)
		}
	}
	return out
}

// fileFlags name files or directories meshd reads or writes: each must be
// on a volume of the container (a read-only root filesystem has nothing
// else). writable ones need a writable mount.
var fileFlags = map[string]bool{
	"config": false, "policy": false, "identities": false, "ca-service-bundle": false,
	"k8s-token-file": false, "ca-cert": false, "ca-key": false, "join-token-file": false,
	"state-dir": true, "socket": true,
}

func mountFor(c *corev1.Container, p string) (corev1.VolumeMount, bool) {
	var best corev1.VolumeMount
	found := false
	for _, vm := range c.VolumeMounts {
		if (p == vm.MountPath || strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/")) && len(vm.MountPath) >= len(best.MountPath) {
			best, found = vm, true
		}
	}
	return best, found
}

func volume(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// containerPort resolves a probe's or a Service's port against c.
func containerPort(c *corev1.Container, p intstr.IntOrString) (int32, bool) {
	if p.Type == intstr.Int {
		return p.IntVal, true
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func listenPort(addr string) (int32, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(port)
	return int32(n), err
}

func TestCommandLines(t *testing.T) {
	commands := map[string]bool{}
	for _, dir := range kustomizations {
		objs := render(t, dir)
		for _, m := range meshdContainers(t, objs) {
			commands[m.command] = true
			for name, writable := range fileFlags {
				v, ok := m.set[name]
				if !ok || v == "" {
					continue
				}
				vm, ok := mountFor(m.c, v)
				if !ok {
					t.Errorf("%s: --%s=%s is on no volume mount", m, name, v)
					continue
				}
				if writable && vm.ReadOnly {
					t.Errorf("%s: --%s=%s is on read-only mount %s", m, name, v, vm.MountPath)
				}
				if volume(&m.w.tmpl.Spec, vm.Name) == nil {
					t.Errorf("%s: mount %s uses undefined volume %s", m, vm.MountPath, vm.Name)
				}
			}
			// Addresses meshd listens on are declared container ports.
			for _, name := range []string{"xds-listen", "listen", "ca-listen", "metrics-listen"} {
				v, ok := m.set[name]
				if !ok || v == "" || strings.HasPrefix(v, "unix://") {
					continue
				}
				port, err := listenPort(v)
				if err != nil {
					t.Errorf("%s: --%s=%s: %v", m, name, v, err)
					continue
				}
				if !slices.ContainsFunc(m.c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == port }) {
					t.Errorf("%s: --%s=%s but no container port %d", m, name, v, port)
				}
				if host, _, _ := net.SplitHostPort(v); host == "127.0.0.1" || host == "localhost" {
					t.Errorf("%s: --%s=%s is unreachable from the pod network (kubelet probes, Services, Prometheus)", m, name, v)
				}
			}
		}
	}
	for _, want := range []string{"meshd controlplane", "meshd ca serve", "meshd sds", "meshd agent"} {
		if !commands[want] {
			t.Errorf("no rendered container runs %s", want)
		}
	}
}

// TestCommandLinesCanFail guards the guard: a flag meshd does not have and a
// misspelt command are refused.
func TestCommandLinesCanFail(t *testing.T) {
	for _, args := range [][]string{
		{"controlplane", "--config=/x", "--xds-port=15010"},
		{"control-plane", "--config=/x"},
		{"sds", "--k8s-token=/x"},
	} {
		if _, _, err := cli.Parse(args); err == nil {
			t.Errorf("cli.Parse(%q) accepted it", args)
		}
	}
	c := &corev1.Container{Args: []string{"--x=$(UNDEFINED)"}}
	if _, err := expandArgs(c, "ns", nil); err == nil {
		t.Error("expandArgs resolved an undefined $(VAR)")
	}
}

// knownVariable reports whether meshd reads name (deploytest.KnownEnv: the
// bootstrap renderer's and the agent's variables, and the join token).
func knownVariable(name string) bool {
	_, ok := deploytest.KnownEnv()[name]
	return ok
}

func TestEnvironment(t *testing.T) {
	if knownVariable("APPMESH_RESOURCE_ARNS") || !knownVariable("APPMESH_RESOURCE_ARN") || !knownVariable("APPNET_AGENT_ADMIN_MODE") {
		t.Fatal("knownVariable does not tell meshd's variables from others")
	}
	base := render(t, "base")
	for _, dir := range kustomizations {
		objs := render(t, dir)
		for _, m := range meshdContainers(t, objs) {
			env := map[string]corev1.EnvVar{}
			for _, e := range m.c.Env {
				if _, dup := env[e.Name]; dup {
					t.Errorf("%s: env %s set twice", m, e.Name)
				}
				env[e.Name] = e
				if deploytest.IsMeshdNamespace(e.Name) && !knownVariable(e.Name) {
					t.Errorf("%s: env %s looks like meshd's but meshd does not read it (tracing.Variables, agent.Variables)", m, e.Name)
				}
			}
			if m.command != "meshd agent" {
				continue
			}
			for _, req := range []string{"APPMESH_RESOURCE_ARN", "MESHD_XDS_ADDRESS"} {
				if _, ok := env[req]; !ok {
					t.Errorf("%s: meshd agent needs %s", m, req)
				}
			}
			checkXDSAddress(t, m, env["MESHD_XDS_ADDRESS"].Value, base)
			checkSDSSocket(t, m, env["APPMESH_SDS_SOCKET_PATH"].Value, base)
		}
	}
}

// checkXDSAddress: the sidecar's control plane address is base's Service.
func checkXDSAddress(t *testing.T, m meshdContainer, addr string, base []*unstructured.Unstructured) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Errorf("%s: MESHD_XDS_ADDRESS=%q: %v", m, addr, err)
		return
	}
	labels := strings.Split(host, ".")
	if len(labels) < 3 || labels[2] != "svc" {
		t.Errorf("%s: MESHD_XDS_ADDRESS=%q is not a Service name <svc>.<namespace>.svc…", m, addr)
		return
	}
	svc := find(base, "Service", labels[0])
	if svc == nil || svc.GetNamespace() != labels[1] {
		t.Errorf("%s: MESHD_XDS_ADDRESS=%q names no Service of base", m, addr)
		return
	}
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	for _, p := range ports {
		if fmt.Sprint(p.(map[string]any)["port"]) == port {
			return
		}
	}
	t.Errorf("%s: MESHD_XDS_ADDRESS=%q: Service %s has no port %s", m, addr, labels[0], port)
}

// hostPathOf maps a container path on a hostPath volume to the node's path.
func hostPathOf(spec *corev1.PodSpec, c *corev1.Container, p string) (string, bool) {
	vm, ok := mountFor(c, p)
	if !ok {
		return "", false
	}
	v := volume(spec, vm.Name)
	if v == nil || v.HostPath == nil {
		return "", false
	}
	return path.Join(v.HostPath.Path, strings.TrimPrefix(p, vm.MountPath)), true
}

// checkSDSSocket: the sidecar's SDS socket is the node agent's, on the node.
func checkSDSSocket(t *testing.T, m meshdContainer, sock string, base []*unstructured.Unstructured) {
	if sock == "" {
		t.Errorf("%s: APPMESH_SDS_SOCKET_PATH is not set", m)
		return
	}
	got, ok := hostPathOf(&m.w.tmpl.Spec, m.c, sock)
	if !ok {
		t.Errorf("%s: APPMESH_SDS_SOCKET_PATH=%s is not on a hostPath volume", m, sock)
		return
	}
	for _, s := range meshdContainers(t, base) {
		if s.command != "meshd sds" {
			continue
		}
		want, ok := hostPathOf(&s.w.tmpl.Spec, s.c, s.flag("socket"))
		if !ok {
			t.Errorf("%s: --socket=%s is not on a hostPath volume", s, s.flag("socket"))
			continue
		}
		if got != want {
			t.Errorf("%s: SDS socket is %s on the node, but the SDS agent serves %s", m, got, want)
		}
		return
	}
	t.Errorf("base runs no meshd sds")
}

func TestProbesAndMetrics(t *testing.T) {
	for _, dir := range kustomizations {
		objs := render(t, dir)
		for _, m := range meshdContainers(t, objs) {
			port, err := listenPort(m.flag("metrics-listen"))
			if err != nil {
				t.Errorf("%s: --metrics-listen=%q: %v", m, m.flag("metrics-listen"), err)
				continue
			}
			probes := map[string]*corev1.Probe{"readiness": m.c.ReadinessProbe, "liveness": m.c.LivenessProbe, "startup": m.c.StartupProbe}
			want := map[string]string{"readiness": "/readyz", "liveness": "/healthz", "startup": "/readyz"}
			for kind, p := range probes {
				if p == nil {
					if kind != "startup" {
						t.Errorf("%s: no %s probe", m, kind)
					}
					continue
				}
				if p.HTTPGet == nil {
					t.Errorf("%s: %s probe is not an HTTP GET of meshd's health endpoint", m, kind)
					continue
				}
				if p.HTTPGet.Path != want[kind] {
					t.Errorf("%s: %s probe path %s, want %s", m, kind, p.HTTPGet.Path, want[kind])
				}
				if got, ok := containerPort(m.c, p.HTTPGet.Port); !ok || got != port {
					t.Errorf("%s: %s probe port %s is not --metrics-listen's %d", m, kind, p.HTTPGet.Port.String(), port)
				}
			}
			ann := m.w.tmpl.Annotations
			if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(port)) {
				t.Errorf("%s: prometheus.io annotations %v do not point at --metrics-listen port %d", m, ann, port)
			}
			wantPath := "/metrics"
			if m.command == "meshd agent" || m.command == "meshd metrics" {
				wantPath = "/stats/prometheus"
			}
			if ann["prometheus.io/path"] != wantPath {
				t.Errorf("%s: prometheus.io/path %q, want %s", m, ann["prometheus.io/path"], wantPath)
			}
		}
	}
}

// TestSecurity holds every container (meshd's and the examples') to the
// hardening production clusters expect.
func TestSecurity(t *testing.T) {
	for _, dir := range kustomizations {
		objs := render(t, dir)
		for _, w := range workloads(t, objs) {
			spec := &w.tmpl.Spec
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				if isMeshdWorkload(w) {
					t.Errorf("%s: meshd needs no Kubernetes API token: set automountServiceAccountToken: false", w)
				}
			}
			if spec.HostNetwork || spec.HostIPC {
				t.Errorf("%s: hostNetwork/hostIPC", w)
			}
			for _, c := range allContainers(spec) {
				where := fmt.Sprintf("%s container %s", w, c.Name)
				sc := c.SecurityContext
				if sc == nil {
					t.Errorf("%s: no securityContext", where)
					continue
				}
				if sc.Privileged != nil && *sc.Privileged {
					t.Errorf("%s: privileged", where)
				}
				if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s: allowPrivilegeEscalation must be false", where)
				}
				if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s: readOnlyRootFilesystem must be true", where)
				}
				if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
					t.Errorf("%s: capabilities must drop ALL", where)
				}
				seccomp := sc.SeccompProfile
				if seccomp == nil && spec.SecurityContext != nil {
					seccomp = spec.SecurityContext.SeccompProfile
				}
				if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: seccompProfile must be RuntimeDefault", where)
				}
				nonRoot := sc.RunAsNonRoot
				if nonRoot == nil && spec.SecurityContext != nil {
					nonRoot = spec.SecurityContext.RunAsNonRoot
				}
				// Only the node agent runs as root, without capabilities, to
				// serve in the root-owned host directory.
				if (nonRoot == nil || !*nonRoot) && !(w.name == "meshd-sds" && c.Name == "sds") {
					t.Errorf("%s: runAsNonRoot must be true", where)
				}
				if w.name == "meshd-sds" && c.Name == "sds" && len(sc.Capabilities.Add) > 0 {
					t.Errorf("%s: the SDS agent adds capabilities %v by default", where, sc.Capabilities.Add)
				}
				r := c.Resources
				for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if _, ok := r.Requests[res]; !ok {
						t.Errorf("%s: no %s request", where, res)
					}
				}
				if _, ok := r.Limits[corev1.ResourceMemory]; !ok {
					t.Errorf("%s: no memory limit", where)
				}
			}
		}
	}
}

func isMeshdWorkload(w workload) bool {
	return strings.HasPrefix(w.name, "meshd-")
}

// TestServicesSelectPods: every Service and PodDisruptionBudget selects a
// rendered pod template, and Services' target ports exist on it.
func TestServicesSelectPods(t *testing.T) {
	for _, dir := range kustomizations {
		objs := render(t, dir)
		wls := workloads(t, objs)
		selects := func(sel map[string]string, w workload) bool {
			if len(sel) == 0 {
				return false
			}
			for k, v := range sel {
				if w.tmpl.Labels[k] != v {
					return false
				}
			}
			return true
		}
		for _, o := range objs {
			switch o.GetKind() {
			case "Service":
				sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector")
				ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
				var matched []workload
				for _, w := range wls {
					if w.namespace == o.GetNamespace() && selects(sel, w) {
						matched = append(matched, w)
					}
				}
				if len(matched) == 0 {
					t.Errorf("%s: Service %s/%s selects no pod template", dir, o.GetNamespace(), o.GetName())
					continue
				}
				for _, p := range ports {
					tp := p.(map[string]any)["targetPort"]
					var target intstr.IntOrString
					switch v := tp.(type) {
					case string:
						target = intstr.FromString(v)
					case int64:
						target = intstr.FromInt32(int32(v))
					default:
						target = intstr.FromInt32(int32(p.(map[string]any)["port"].(int64)))
					}
					for _, w := range matched {
						ok := false
						for _, c := range allContainers(&w.tmpl.Spec) {
							for _, cp := range c.Ports {
								if target.Type == intstr.Int && cp.ContainerPort == target.IntVal || target.Type == intstr.String && cp.Name == target.StrVal {
									ok = true
								}
							}
						}
						if !ok {
							t.Errorf("%s: Service %s port %v: %s has no such container port", dir, o.GetName(), tp, w)
						}
					}
				}
			case "PodDisruptionBudget":
				sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
				n := 0
				for _, w := range wls {
					if w.namespace == o.GetNamespace() && selects(sel, w) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%s: PodDisruptionBudget %s selects %d pod templates, want 1", dir, o.GetName(), n)
				}
			}
		}
	}
}

// TestSidecarBootstrap renders the Envoy bootstrap each example sidecar's
// agent would render from its environment (as meshd bootstrap does) and
// checks Envoy would reach the node's SDS socket and base's control plane.
func TestSidecarBootstrap(t *testing.T) {
	objs := render(t, "examples/apps")
	n := 0
	for _, m := range meshdContainers(t, objs) {
		if m.command != "meshd agent" {
			continue
		}
		n++
		env := map[string]string{}
		for _, e := range m.c.Env {
			switch {
			case e.ValueFrom == nil:
				env[e.Name] = e.Value
			case e.ValueFrom.FieldRef != nil:
				fp := e.ValueFrom.FieldRef.FieldPath
				key, ok := strings.CutPrefix(fp, "metadata.annotations['")
				if !ok || !strings.HasSuffix(key, "']") {
					t.Errorf("%s: env %s from %s: the test resolves only annotations", m, e.Name, fp)
					continue
				}
				v, ok := m.w.tmpl.Annotations[strings.TrimSuffix(key, "']")]
				if !ok {
					t.Errorf("%s: env %s: the pod template has no annotation %s", m, e.Name, key)
				}
				env[e.Name] = v
			}
		}
		noFiles := func(name string) ([]byte, error) { return nil, fmt.Errorf("%s: no file in this test", name) }
		data, warnings, err := cli.RenderBootstrap(tracing.MapLookup(env), noFiles, tracing.JSON)
		if err != nil {
			t.Errorf("%s: bootstrap: %v", m, err)
			continue
		}
		for _, w := range warnings {
			t.Errorf("%s: bootstrap warning: %s", m, w)
		}
		var b struct {
			Node struct {
				ID string `json:"id"`
			} `json:"node"`
		}
		if err := json.Unmarshal(data, &b); err != nil {
			t.Fatal(err)
		}
		if b.Node.ID != m.w.tmpl.Annotations["meshd.io/resource-arn"] {
			t.Errorf("%s: node id %q", m, b.Node.ID)
		}
		host, _, _ := net.SplitHostPort(env["MESHD_XDS_ADDRESS"])
		for _, want := range []string{`"static_cluster_sds_unix_socket"`, `"path": "` + env["APPMESH_SDS_SOCKET_PATH"] + `"`, `"meshd_xds"`, `"address": "` + host + `"`, `"path": "/tmp/envoy_admin.sock"`} {
			if !strings.Contains(string(data), want) {
				t.Errorf("%s: the bootstrap has no %s", m, want)
			}
		}
	}
	if n == 0 {
		t.Fatal("no sidecar in examples/apps")
	}
}
