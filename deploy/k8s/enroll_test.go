package k8s

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/meshd/meshd/internal/cli"
	"github.com/meshd/meshd/internal/testutil"
	"github.com/meshd/meshd/sds/sdsclient"

	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	grpcstatus "google.golang.org/grpc/status"
)

// The test binary doubles as an SDS client that testEnrollment runs as the
// example workloads' Envoy user and groups.
const (
	sdsClientEnv    = "MESHD_K8S_TEST_SDS_CLIENT"
	sdsClientSocket = "MESHD_K8S_TEST_SDS_SOCKET"
)

func TestMain(m *testing.M) {
	if os.Getenv(sdsClientEnv) == "1" {
		os.Exit(runSDSClient())
	}
	os.Exit(m.Run())
}

type sdsClientResult struct {
	Secrets []string `json:"secrets"`
	Code    string   `json:"code"`
	Err     string   `json:"err"`
}

func runSDSClient() int {
	res := sdsClientResult{Code: "OK"}
	conn, err := sdsclient.Dial(os.Getenv(sdsClientSocket))
	if err == nil {
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, ferr := secretv3.NewSecretDiscoveryServiceClient(conn).FetchSecrets(ctx, sdsclient.Request(sdsclient.Node("mesh/apps/virtualNode/serviceA", "1.38.0"), "default", "ROOTCA"))
		err = ferr
		if ferr == nil {
			ss, _ := sdsclient.Secrets(r)
			for _, s := range ss {
				res.Secrets = append(res.Secrets, sdsclient.Describe(s))
			}
		}
	}
	if err != nil {
		res.Code, res.Err = grpcstatus.Code(err).String(), err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// process is a meshd command of a rendered container, run in this process
// with its volumes materialized in temporary directories.
type process struct {
	args    []string
	mounts  map[string]string // mount path → local directory
	ports   map[int32]int32   // container port → local port
	out     *testutil.SyncBuffer
	done    chan int
	metrics string // local address of --metrics-listen
}

func freePort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

// writeConfigMapDir lays files out as the kubelet does for a ConfigMap
// volume: the data in a timestamped directory, ..data pointing at it, and
// one symlink per key.
func writeConfigMapDir(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	ts := "..2026_11_21_00_00_00.000000001"
	if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range files {
		if err := os.WriteFile(filepath.Join(dir, ts, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ts, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// materialize prepares a container of a rendered workload to run here:
// every volume mount becomes a local directory (ConfigMaps from the render,
// or from provided when the render does not have them), every listen
// address a free loopback port, and the command line is rewritten to
// match. hostDirs maps hostPath volumes to directories shared with other
// processes (the node's socket directory).
func materialize(t *testing.T, w workload, c *corev1.Container, objs []*unstructured.Unstructured, provided map[string]map[string]string, hostDirs map[string]string) *process {
	t.Helper()
	args, err := expandArgs(c, w.namespace, objs)
	if err != nil {
		t.Fatal(err)
	}
	p := &process{mounts: map[string]string{}, ports: map[int32]int32{}, out: &testutil.SyncBuffer{}, done: make(chan int, 1)}
	for _, vm := range c.VolumeMounts {
		v := volume(&w.tmpl.Spec, vm.Name)
		if v == nil {
			t.Fatalf("%s: mount %s of undefined volume %s", w, vm.MountPath, vm.Name)
		}
		dir := t.TempDir()
		switch {
		case v.ConfigMap != nil:
			files := provided[vm.Name]
			if files == nil {
				cm := find(objs, "ConfigMap", v.ConfigMap.Name)
				if cm == nil || cm.GetName() != v.ConfigMap.Name {
					if v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional {
						t.Fatalf("%s: ConfigMap %s is neither rendered nor provided", w, v.ConfigMap.Name)
					}
					break
				}
				files, _, _ = unstructured.NestedStringMap(cm.Object, "data")
			}
			writeConfigMapDir(t, dir, files)
		case v.Projected != nil:
			writeConfigMapDir(t, dir, provided[vm.Name])
		case v.HostPath != nil:
			if d, ok := hostDirs[v.HostPath.Path]; ok {
				dir = d
			}
		}
		p.mounts[vm.MountPath] = dir
	}
	for i, a := range args {
		name, val, ok := strings.Cut(a, "=")
		if !ok {
			continue
		}
		if vm, ok := mountFor(c, val); ok {
			args[i] = name + "=" + p.mounts[vm.MountPath] + strings.TrimPrefix(val, vm.MountPath)
			continue
		}
		if strings.HasSuffix(name, "listen") {
			port, err := listenPort(val)
			if err != nil {
				t.Fatalf("%s: %s: %v", w, a, err)
			}
			local := freePort(t)
			p.ports[port] = local
			args[i] = fmt.Sprintf("%s=127.0.0.1:%d", name, local)
			if name == "--metrics-listen" {
				p.metrics = fmt.Sprintf("127.0.0.1:%d", local)
			}
		}
	}
	if len(c.Command) > 0 {
		args = args[1:]
	}
	p.args = args
	return p
}

func (p *process) start(ctx context.Context) {
	go func() { p.done <- cli.Main(ctx, p.args, p.out, p.out) }()
}

// waitReady polls meshd's /readyz as the kubelet's readiness probe does.
func (p *process) waitReady(t *testing.T, what string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case code := <-p.done:
			t.Fatalf("%s exited %d:\n%s", what, code, p.out)
		default:
		}
		resp, err := http.Get("http://" + p.metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s:\n%s", what, timeout, p.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testEnrollment runs base's CA service and SDS agent as their manifests
// say, with what a cluster provides: a service-account token the API
// server issues for the DaemonSet's projected volume (bound to a pod), the
// cluster's JWKS and issuer (README.md's steps), and the CA bundle read
// with `meshd ca show --pem` (README.md). The example workload serviceA's
// Envoy user and groups then get serviceA's certificate from the socket.
func testEnrollment(t *testing.T, ctx context.Context, s *apiServer) {
	objs := render(t, "base")
	ctx, cancel := context.WithCancel(ctx)
	var procs []*process
	defer func() {
		cancel()
		for _, p := range procs {
			select {
			case <-p.done:
			case <-time.After(15 * time.Second):
				t.Errorf("meshd %s did not stop", p.args[0])
			}
		}
	}()

	// The cluster side: service accounts, a pod of the DaemonSet to bind
	// the token to, the token, the issuer and its keys.
	for _, o := range objs {
		if o.GetKind() == "Namespace" || o.GetKind() == "ServiceAccount" {
			if _, err := s.apply(ctx, o, realStrict); err != nil {
				t.Fatal(err)
			}
		}
	}
	var sdsW, caW workload
	for _, w := range workloads(t, objs) {
		switch w.name {
		case "meshd-sds":
			sdsW = w
		case "meshd-ca":
			caW = w
		}
	}
	token := projectedToken(t, ctx, s, sdsW)
	var oidc struct {
		Issuer string `json:"issuer"`
	}
	raw, err := s.rest.Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil || json.Unmarshal(raw, &oidc) != nil || oidc.Issuer == "" {
		t.Fatalf("openid-configuration: %v %s", err, raw)
	}
	jwks, err := s.rest.Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// The CA service, its policy's issuer set to this cluster's.
	policy := configFiles(t, objs, "meshd-ca-policy")
	const placeholder = "https://kubernetes.default.svc.cluster.local"
	if !strings.Contains(policy["policy.yaml"], "issuer: "+placeholder) {
		t.Fatalf("the CA policy's issuer is not the placeholder %s", placeholder)
	}
	policy["policy.yaml"] = strings.Replace(policy["policy.yaml"], placeholder, oidc.Issuer, 1)
	ca := materialize(t, caW, &caW.tmpl.Spec.Containers[0], objs, map[string]map[string]string{
		"policy": policy,
		"jwks":   {"jwks.json": string(jwks)},
	}, nil)
	// The policy's jwksFile is where the Deployment mounts meshd-ca-jwks.
	var jwksMount, policyMount string
	for _, vm := range caW.tmpl.Spec.Containers[0].VolumeMounts {
		switch vm.Name {
		case "jwks":
			jwksMount = vm.MountPath
		case "policy":
			policyMount = vm.MountPath
		}
	}
	if jwksMount == "" || !strings.Contains(policy["policy.yaml"], "jwksFile: "+jwksMount+"/jwks.json") {
		t.Fatalf("the CA policy's jwksFile is not jwks.json on the jwks volume (%q)", jwksMount)
	}
	policyFile, err := filepath.EvalSymlinks(filepath.Join(ca.mounts[policyMount], "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	localPolicy := strings.Replace(policy["policy.yaml"], jwksMount+"/", ca.mounts[jwksMount]+"/", 1)
	if err := os.WriteFile(policyFile, []byte(localPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	procs = append(procs, ca)
	ca.start(ctx)
	ca.waitReady(t, "meshd ca serve", 30*time.Second)

	// README.md: meshd ca show --state-dir … --pem into the meshd-ca-bundle ConfigMap.
	var stateDir string
	for _, a := range ca.args {
		if v, ok := strings.CutPrefix(a, "--state-dir="); ok {
			stateDir = v
		}
	}
	var bundle, stderr bytes.Buffer
	if code := cli.Main(ctx, []string{"ca", "show", "--state-dir", stateDir, "--pem"}, &bundle, &stderr); code != 0 || bundle.Len() == 0 {
		t.Fatalf("meshd ca show --pem: exit %d: %s", code, stderr.String())
	}

	// The node's socket directory, traversable by Envoy's user as the
	// kubelet's DirectoryOrCreate hostPath is.
	sockDir, err := os.MkdirTemp("", "meshd-k8s-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if err := os.Chmod(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	sdsC := &sdsW.tmpl.Spec.Containers[0]
	sdsP := materialize(t, sdsW, sdsC, objs, map[string]map[string]string{
		"ca-bundle": {"bundle.pem": bundle.String()},
		"token":     {"token": token},
	}, map[string]string{"/run/meshd": sockDir})
	var socket string
	for i, a := range sdsP.args {
		if strings.HasPrefix(a, "--ca-service=") {
			sdsP.args[i] = fmt.Sprintf("--ca-service=127.0.0.1:%d", ca.ports[15012])
		}
		if v, ok := strings.CutPrefix(a, "--socket="); ok {
			socket = v
		}
		if strings.HasPrefix(a, "--socket-group=") && os.Geteuid() != 0 {
			sdsP.args[i] = "--socket-group=" + strconv.Itoa(os.Getgid())
		}
	}
	procs = append(procs, sdsP)
	sdsP.start(ctx)
	sdsP.waitReady(t, "meshd sds", 30*time.Second)

	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test must run as root in CI (it runs an SDS client as the sidecar's uid)")
		}
		t.Skip("needs root to run the SDS client as the sidecar's user; enrollment itself worked")
	}
	bin := copyTestBinary(t)
	// serviceA's Envoy, as examples/apps runs it.
	var envoyUID, envoyGID uint32
	var groups []int64
	for _, w := range workloads(t, render(t, "examples/apps")) {
		if w.name == "servicea" {
			envoyUID, envoyGID, groups = credentials(&w.tmpl.Spec, &w.tmpl.Spec.InitContainers[0])
		}
	}
	var g32 []uint32
	for _, g := range groups {
		g32 = append(g32, uint32(g))
	}
	res := runSDSClientAs(t, bin, envoyUID, envoyGID, g32, socket)
	want := "spiffe://meshd.local/mesh/apps/virtualNode/serviceA"
	if res.Code != "OK" || len(res.Secrets) != 2 || !strings.Contains(res.Secrets[0], want) || !strings.Contains(res.Secrets[0], "servicea.apps.svc.cluster.local") {
		t.Fatalf("serviceA's Envoy (uid %d gid %d groups %v): %+v\nSDS log:\n%s\nCA log:\n%s", envoyUID, envoyGID, g32, res, sdsP.out, ca.out)
	}
	t.Logf("serviceA's Envoy got: %s", strings.Join(res.Secrets, " | "))
	// Another group (another workload with no identity) is refused.
	res = runSDSClientAs(t, bin, envoyUID, 10099, g32, socket)
	if res.Code != "PermissionDenied" {
		t.Errorf("an Envoy of group 10099: %+v", res)
	}
}

// projectedToken asks the API server for the token the kubelet would put in
// the DaemonSet pod's projected volume: same audience and lifetime, bound
// to a pod of the DaemonSet.
func projectedToken(t *testing.T, ctx context.Context, s *apiServer, w workload) string {
	t.Helper()
	var src *corev1.ServiceAccountTokenProjection
	for _, v := range w.tmpl.Spec.Volumes {
		if v.Projected != nil {
			for _, ps := range v.Projected.Sources {
				if ps.ServiceAccountToken != nil {
					src = ps.ServiceAccountToken
				}
			}
		}
	}
	if src == nil || src.Audience == "" {
		t.Fatalf("%s has no projected service-account token with an audience", w)
	}
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: w.name + "-node1", Namespace: w.namespace, Labels: w.tmpl.Labels},
		Spec:       w.tmpl.Spec,
	}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
	if err != nil {
		t.Fatal(err)
	}
	created, err := s.dyn.Resource(corev1.SchemeGroupVersion.WithResource("pods")).Namespace(w.namespace).Create(ctx, &unstructured.Unstructured{Object: raw}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr := map[string]any{
		"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
		"metadata": map[string]any{"name": w.tmpl.Spec.ServiceAccountName},
		"spec": map[string]any{
			"audiences":         []any{src.Audience},
			"expirationSeconds": *src.ExpirationSeconds,
			"boundObjectRef":    map[string]any{"apiVersion": "v1", "kind": "Pod", "name": created.GetName(), "uid": string(created.GetUID())},
		},
	}
	got, err := s.dyn.Resource(k8sschema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}).Namespace(w.namespace).
		Create(ctx, &unstructured.Unstructured{Object: tr}, metav1.CreateOptions{}, "token")
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", w.namespace, w.tmpl.Spec.ServiceAccountName, err)
	}
	token, _, _ := unstructured.NestedString(got.Object, "status", "token")
	if token == "" {
		t.Fatal("TokenRequest returned no token")
	}
	return token
}

// copyTestBinary copies the test binary where any user may run it.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "meshd-k8s-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	bin := filepath.Join(dir, "k8s.test")
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return bin
}

func runSDSClientAs(t *testing.T, bin string, uid, gid uint32, groups []uint32, socket string) sdsClientResult {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), sdsClientEnv+"=1", sdsClientSocket+"="+socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: groups}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("SDS client as uid %d gid %d: %v (%s)", uid, gid, err, out)
	}
	var res sdsClientResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("SDS client output %q: %v", out, err)
	}
	return res
}
