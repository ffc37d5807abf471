package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/meshd/meshd/internal/appmesh/load"
)

// The shared App Mesh examples (real manifests from aws/aws-app-mesh-examples)
// and meshd's own examples, relative to this package.
const (
	appmeshExamplesDir = "../../../shared/testdata/appmesh-examples/crd"
	meshdExamplesDir   = "../../examples"
)

// Documents of the App Mesh examples that no current API server serves:
// the App Mesh controller's pre-2020 API and Kubernetes APIs removed since
// (apps/v1beta1 in 1.16; apiextensions, rbac and admissionregistration
// v1beta1 in 1.22). The upstream controller's CRDs refuse them too.
var removedAPIs = map[string]bool{
	"appmesh.k8s.aws/v1beta1":              true,
	"apiextensions.k8s.io/v1beta1":         true,
	"rbac.authorization.k8s.io/v1beta1":    true,
	"apps/v1beta1":                         true,
	"admissionregistration.k8s.io/v1beta1": true,
}

// Files of the App Mesh examples that are not valid YAML upstream (kubectl
// cannot parse them either).
var notYAML = map[string]string{
	"crd__walkthroughs__eks-app-mesh-cross-account-acm__mesh__yelb_db_update.yaml": `"enforce: true," followed by a deeper-indented mapping`,
}

// apiServer is a kube-apiserver (and etcd) from envtest with clients.
type apiServer struct {
	dyn      dynamic.Interface
	rest     rest.Interface
	mapper   *restmapper.DeferredDiscoveryRESTMapper
	warnings *warningRecorder
	assets   string
}

type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// startAPIServer starts envtest with the binaries in $KUBEBUILDER_ASSETS
// (hack/envtest-assets.sh prints that directory). Without it the test
// fails under CI and is skipped elsewhere.
func startAPIServer(t *testing.T) *apiServer {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KUBEBUILDER_ASSETS is not set (.ci/run sets it from hack/envtest-assets.sh)")
		}
		t.Skip("KUBEBUILDER_ASSETS is not set: export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh) (make envtest)")
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start kube-apiserver and etcd from %s: %v", assets, err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	t.Logf("kube-apiserver ready in %s", time.Since(start).Round(time.Millisecond))
	rec := &warningRecorder{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rec
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &apiServer{dyn: dyn, rest: dc.RESTClient(), mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), warnings: rec, assets: assets}
}

type applyMode struct {
	dryRun bool
	// fieldValidation: Strict (kubectl's default) or Warn.
	fieldValidation string
}

var (
	dryRunStrict = applyMode{dryRun: true, fieldValidation: "Strict"}
	realStrict   = applyMode{fieldValidation: "Strict"}
)

func (s *apiServer) resource(o *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := o.GroupVersionKind()
	m, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := o.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		return s.dyn.Resource(m.Resource).Namespace(ns), nil
	}
	return s.dyn.Resource(m.Resource), nil
}

// apply server-side-applies o (kubectl apply --server-side) and returns the
// API server's warnings.
func (s *apiServer) apply(ctx context.Context, o *unstructured.Unstructured, mode applyMode) ([]string, error) {
	ri, err := s.resource(o)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(o.Object)
	if err != nil {
		return nil, err
	}
	opts := metav1.PatchOptions{FieldManager: "meshd-deploy-test", Force: ptr(true), FieldValidation: mode.fieldValidation}
	if mode.dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	s.warnings.take()
	_, err = ri.Patch(ctx, o.GetName(), types.ApplyPatchType, data, opts)
	return s.warnings.take(), err
}

// create dry-runs the creation of o (kubectl apply of a new object, with
// --dry-run=server) and returns the API server's warnings. Unlike a
// server-side apply, a create reports unknown fields of custom resources
// whose schema preserves unknown top-level fields, as the App Mesh CRDs do.
func (s *apiServer) create(ctx context.Context, o *unstructured.Unstructured, fieldValidation string) ([]string, error) {
	ri, err := s.resource(o)
	if err != nil {
		return nil, err
	}
	s.warnings.take()
	_, err = ri.Create(ctx, o.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: fieldValidation})
	return s.warnings.take(), err
}

// createPod dry-runs the creation of a pod from a workload's template, so
// pod-only admission runs: Pod Security enforcement, priority classes.
func (s *apiServer) createPod(ctx context.Context, w workload, namespace string) ([]string, error) {
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: w.name + "-pod", Namespace: namespace, Labels: w.tmpl.Labels, Annotations: w.tmpl.Annotations},
		Spec:       w.tmpl.Spec,
	}
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
	if err != nil {
		return nil, err
	}
	s.warnings.take()
	_, err = s.dyn.Resource(corev1.SchemeGroupVersion.WithResource("pods")).Namespace(namespace).
		Create(ctx, &unstructured.Unstructured{Object: raw}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"})
	return s.warnings.take(), err
}

func ptr[T any](v T) *T { return &v }

func describeObj(o *unstructured.Unstructured) string {
	s := o.GetKind() + " "
	if o.GetNamespace() != "" {
		s += o.GetNamespace() + "/"
	}
	return s + o.GetName()
}

// installCRDs applies CRDs for real and waits until they are served.
func (s *apiServer) installCRDs(t *testing.T, ctx context.Context, crds []*unstructured.Unstructured) {
	t.Helper()
	for _, o := range crds {
		if warns, err := s.apply(ctx, o, realStrict); err != nil || len(warns) > 0 {
			t.Fatalf("install %s: %v %v", describeObj(o), err, warns)
		}
	}
	crdGVR := apiextv1.SchemeGroupVersion.WithResource("customresourcedefinitions")
	deadline := time.Now().Add(30 * time.Second)
	for _, o := range crds {
		for {
			got, err := s.dyn.Resource(crdGVR).Get(ctx, o.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			crd := convert[apiextv1.CustomResourceDefinition](t, got)
			established := false
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextv1.Established && c.Status == apiextv1.ConditionTrue {
					established = true
				}
				if c.Type == apiextv1.NamesAccepted && c.Status == apiextv1.ConditionFalse {
					t.Fatalf("CRD %s: names not accepted: %s", crd.Name, c.Message)
				}
			}
			if established {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not established: %+v", crd.Name, crd.Status.Conditions)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	s.mapper.Reset()
}

func (s *apiServer) createNamespaces(t *testing.T, ctx context.Context, names ...string) {
	t.Helper()
	for _, n := range names {
		ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": n}}}
		if _, err := s.apply(ctx, ns, realStrict); err != nil {
			t.Fatalf("create namespace %s: %v", n, err)
		}
	}
}

// TestAPIServer applies every manifest of deploy/k8s, the App Mesh examples
// and invalid App Mesh resources to a real kube-apiserver.
func TestAPIServer(t *testing.T) {
	s := startAPIServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The App Mesh CRDs as users get them (kubectl apply -k deploy/k8s/crds),
	// for real: the API server refuses a non-structural schema.
	crds := render(t, "crds")
	extra, err := filepath.Glob(filepath.Join(s.assets, "crds", "*.yaml"))
	if err != nil || len(extra) == 0 {
		t.Fatalf("no third-party CRDs in %s/crds (hack/envtest-assets.sh puts the PodMonitor CRD there): %v", s.assets, err)
	}
	for _, f := range extra {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeObjects(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		crds = append(crds, objs...)
	}
	s.installCRDs(t, ctx, crds)

	t.Run("deploy", func(t *testing.T) { testDeployManifests(t, ctx, s) })
	t.Run("pod-security", func(t *testing.T) { testPodSecurity(t, ctx, s) })
	t.Run("appmesh-examples", func(t *testing.T) { testAppMeshExamples(t, ctx, s) })
	t.Run("refused", func(t *testing.T) { testRefused(t, ctx, s) })
	t.Run("status", func(t *testing.T) { testStatusSubresource(t, ctx, s) })
	t.Run("enrollment", func(t *testing.T) { testEnrollment(t, ctx, s) })
}

// testDeployManifests: every rendered object of every kustomization applies
// with server-side dry run, strict field validation and no warning; every
// workload's pod template passes pod admission in its namespace.
func testDeployManifests(t *testing.T, ctx context.Context, s *apiServer) {
	for _, dir := range kustomizations {
		objs := render(t, dir)
		var namespaces []string
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				namespaces = append(namespaces, o.GetName())
			}
		}
		s.createNamespaces(t, ctx, namespaces...)
		n := 0
		for _, o := range objs {
			// kubectl apply --server-side --dry-run=server, and kubectl apply
			// --dry-run=server of a new object (strict: unknown fields fail).
			warns, err := s.apply(ctx, o, dryRunStrict)
			if err != nil {
				t.Errorf("%s: %s: server-side apply: %v", dir, describeObj(o), err)
				continue
			}
			if len(warns) > 0 {
				t.Errorf("%s: %s: server-side apply: warnings %q", dir, describeObj(o), warns)
			}
			warns, err = s.create(ctx, o, "Strict")
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Errorf("%s: %s: create: %v", dir, describeObj(o), err)
				continue
			}
			if len(warns) > 0 {
				t.Errorf("%s: %s: create: warnings %q", dir, describeObj(o), warns)
			}
			n++
		}
		for _, w := range workloads(t, objs) {
			warns, err := s.createPod(ctx, w, w.namespace)
			if err != nil {
				t.Errorf("%s: a pod of %s: %v", dir, w, err)
			} else if len(warns) > 0 {
				t.Errorf("%s: a pod of %s: warnings %q", dir, w, warns)
			}
		}
		t.Logf("%s: %d objects applied (dry run)", dir, n)
	}
}

// testPodSecurity: the control plane and the CA service run under the
// "restricted" Pod Security level; the node agent and the sidecars, which
// mount the node's socket directory, need "privileged" — as the namespace
// labels of base and examples/apps say.
func testPodSecurity(t *testing.T, ctx context.Context, s *apiServer) {
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": "psa-restricted", "labels": map[string]any{
			"pod-security.kubernetes.io/enforce": "restricted",
			"pod-security.kubernetes.io/warn":    "restricted",
		}},
	}}
	if _, err := s.apply(ctx, ns, realStrict); err != nil {
		t.Fatal(err)
	}
	restricted := map[string]bool{"meshd-controlplane": true, "meshd-ca": true}
	var all []workload
	all = append(all, workloads(t, render(t, "base"))...)
	all = append(all, workloads(t, render(t, "examples/apps"))...)
	for _, w := range all {
		_, err := s.createPod(ctx, w, "psa-restricted")
		switch {
		case restricted[w.name] && err != nil:
			t.Errorf("%s does not meet the restricted Pod Security level: %v", w, err)
		case !restricted[w.name] && err == nil:
			t.Errorf("%s meets the restricted level: its namespace need not be privileged (update the namespace labels and README)", w)
		case !restricted[w.name] && !strings.Contains(err.Error(), "hostPath"):
			t.Errorf("%s refused under restricted for another reason than its hostPath volume: %v", w, err)
		}
	}
}

var unknownFieldWarning = regexp.MustCompile(`^unknown field "([^"]+)"$`)

// testAppMeshExamples applies every document of the App Mesh examples (and
// of meshd's examples) unchanged, as kubectl apply --validate=warn would:
// each must be accepted, except documents of APIs no server serves any
// more. The fields the API server prunes (its unknown-field warnings) must
// be exactly those meshd's loader prunes and warns about.
func testAppMeshExamples(t *testing.T, ctx context.Context, s *apiServer) {
	var files []string
	for _, dir := range []string{appmeshExamplesDir, meshdExamplesDir} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(p)) {
			case ".yaml", ".yml", ".json":
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	applied, refused, prunedDocs := 0, 0, 0
	usedNotYAML := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeObjects(data)
		if reason, ok := notYAML[filepath.Base(f)]; ok {
			usedNotYAML[filepath.Base(f)] = true
			if err == nil {
				t.Errorf("%s parses, but is listed as not YAML (%s)", f, reason)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		var k8s []*unstructured.Unstructured
		for _, o := range objs {
			if o.GetAPIVersion() != "" && o.GetKind() != "" {
				k8s = append(k8s, o)
			}
		}
		if len(k8s) == 0 {
			continue // CLI JSON, CloudFormation
		}
		nsSeen := map[string]bool{}
		for _, o := range k8s {
			if ns := o.GetNamespace(); ns != "" && !nsSeen[ns] {
				nsSeen[ns] = true
				s.createNamespaces(t, ctx, ns)
			}
		}
		// What meshd's loader prunes, by resource.
		loaderPruned := map[string][]string{}
		res := load.Files([]load.File{{Name: f, Data: data}}, load.Options{DefaultMesh: "default"})
		for _, w := range res.Warnings {
			if strings.Contains(w.Msg, "unknown field ignored") {
				loaderPruned[w.Loc.Resource] = append(loaderPruned[w.Loc.Resource], w.Loc.Path)
			}
		}
		failed := map[string]bool{}
		for _, p := range res.Problems {
			failed[p.Loc.Resource] = true
		}
		for _, o := range k8s {
			name := fmt.Sprintf("%s: %s", filepath.Base(f), describeObj(o))
			_, err := s.apply(ctx, o, applyMode{dryRun: true})
			if removedAPIs[o.GetAPIVersion()] {
				if !meta.IsNoMatchError(err) {
					t.Errorf("%s (%s, no longer served): want no-match, got %v", name, o.GetAPIVersion(), err)
				}
				refused++
				continue
			}
			if err != nil {
				t.Errorf("%s: server-side apply: %v", name, err)
				continue
			}
			// kubectl apply --validate=warn: accepted, unknown fields pruned
			// with a warning each.
			warns, err := s.create(ctx, o, "Warn")
			if apierrors.IsAlreadyExists(err) {
				applied++
				continue // a namespace created above
			}
			if err != nil {
				t.Errorf("%s: create: %v", name, err)
				continue
			}
			applied++
			var pruned []string
			for _, w := range warns {
				if m := unknownFieldWarning.FindStringSubmatch(w); m != nil {
					pruned = append(pruned, m[1])
				} else if !strings.HasPrefix(o.GetAPIVersion(), appmeshGroup+"/") {
					t.Logf("%s: warning %q", name, w)
				} else {
					t.Errorf("%s: unexpected warning %q", name, w)
				}
			}
			// kubectl apply (strict, its default) refuses exactly the
			// documents with pruned fields.
			_, strictErr := s.create(ctx, o, "Strict")
			if (strictErr != nil) != (len(pruned) > 0) {
				t.Errorf("%s: strict create: %v, with pruned fields %q", name, strictErr, pruned)
			}
			if !strings.HasPrefix(o.GetAPIVersion(), appmeshGroup+"/") {
				if len(pruned) > 0 {
					t.Errorf("%s: unknown fields %q", name, pruned)
				}
				continue
			}
			key := loaderResource(o)
			if failed[key] {
				continue // the loader could not convert it (a reference it cannot resolve offline)
			}
			want := loaderPruned[key]
			sort.Strings(pruned)
			sort.Strings(want)
			if strings.Join(pruned, ",") != strings.Join(want, ",") {
				t.Errorf("%s: the API server prunes %q, meshd's loader %q", name, pruned, want)
			}
			if len(pruned) > 0 {
				prunedDocs++
				t.Logf("%s: pruned by both: %v", name, pruned)
			}
		}
	}
	for f, reason := range notYAML {
		if !usedNotYAML[f] {
			t.Errorf("notYAML lists %s (%s), which is not among the examples", f, reason)
		}
	}
	t.Logf("%d files: %d documents applied unchanged (%d with fields pruned), %d refused as no longer served APIs", len(files), applied, prunedDocs, refused)
	if prunedDocs == 0 {
		t.Error("no example has a field the schema prunes: the loader comparison compared nothing")
	}
	if applied < 40 {
		t.Errorf("only %d documents applied: are the examples at %s?", applied, appmeshExamplesDir)
	}
}

// loaderResource is load.Loc.Resource for a Kubernetes object.
func loaderResource(o *unstructured.Unstructured) string {
	ns := o.GetNamespace()
	if ns == "" && o.GetKind() != "Mesh" {
		ns = "default"
	}
	return o.GetKind() + " " + strings.TrimPrefix(ns+"/"+o.GetName(), "/")
}

// refusedCase is an App Mesh resource the CRD schema must refuse, and the
// field the API server must name.
type refusedCase struct {
	name, yaml, field string
	unknownField      bool
}

const validVirtualNode = `
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualNode
metadata: {name: refused, namespace: default}
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
    healthCheck: {protocol: http, path: /ping, healthyThreshold: 2, unhealthyThreshold: 2, timeoutMillis: 2000, intervalMillis: 5000}
  serviceDiscovery:
    dns: {hostname: refused.default.svc.cluster.local}
`

const validVirtualRouter = `
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualRouter
metadata: {name: refused, namespace: default}
spec:
  listeners:
  - portMapping: {port: 8080, protocol: http}
  routes:
  - name: r
    priority: 10
    httpRoute:
      match: {prefix: /}
      action:
        weightedTargets:
        - virtualNodeRef: {name: a}
          weight: 50
      retryPolicy:
        maxRetries: 2
        perRetryTimeout: {unit: ms, value: 2000}
        httpRetryEvents: [server-error]
`

var refusedCases = []refusedCase{
	{"port 70000", strings.Replace(validVirtualNode, "port: 8080", "port: 70000", 1), "spec.listeners[0].portMapping.port", false},
	{"port 0", strings.Replace(validVirtualNode, "port: 8080", "port: 0", 1), "spec.listeners[0].portMapping.port", false},
	{"protocol enum", strings.Replace(validVirtualNode, "protocol: http}\n    health", "protocol: udp}\n    health", 1), "spec.listeners[0].portMapping.protocol", false},
	{"health check interval", strings.Replace(validVirtualNode, "intervalMillis: 5000", "intervalMillis: 1000", 1), "spec.listeners[0].healthCheck.intervalMillis", false},
	{"health check threshold", strings.Replace(validVirtualNode, "healthyThreshold: 2", "healthyThreshold: 11", 1), "spec.listeners[0].healthCheck.healthyThreshold", false},
	{"missing portMapping", strings.Replace(validVirtualNode, "- portMapping: {port: 8080, protocol: http}\n    healthCheck", "- healthCheck", 1), "spec.listeners[0].portMapping", false},
	{"DNS response type", strings.Replace(validVirtualNode, "hostname: refused", "responseType: ROUNDROBIN, hostname: refused", 1), "spec.serviceDiscovery.dns.responseType", false},
	{"unknown field", strings.Replace(validVirtualNode, "protocol: http}\n    health", "protocol: http, mode: STRICT}\n    health", 1), `unknown field "spec.listeners[0].portMapping.mode"`, true},
	{"weight 101", strings.Replace(validVirtualRouter, "weight: 50", "weight: 101", 1), "spec.routes[0].httpRoute.action.weightedTargets[0].weight", false},
	{"weight -1", strings.Replace(validVirtualRouter, "weight: 50", "weight: -1", 1), "spec.routes[0].httpRoute.action.weightedTargets[0].weight", false},
	{"no weighted targets", strings.Replace(validVirtualRouter, "weightedTargets:\n        - virtualNodeRef: {name: a}\n          weight: 50", "weightedTargets: []", 1), "spec.routes[0].httpRoute.action.weightedTargets", false},
	{"route priority", strings.Replace(validVirtualRouter, "priority: 10", "priority: 1001", 1), "spec.routes[0].priority", false},
	{"retry event enum", strings.Replace(validVirtualRouter, "[server-error]", "[server-failure]", 1), "spec.routes[0].httpRoute.retryPolicy.httpRetryEvents[0]", false},
	{"duration unit", strings.Replace(validVirtualRouter, "unit: ms", "unit: m", 1), "spec.routes[0].httpRoute.retryPolicy.perRetryTimeout.unit", false},
	{"route without name", strings.Replace(validVirtualRouter, "- name: r\n    priority", "- priority", 1), "spec.routes[0].name", false},
	{"router without listeners", strings.Replace(validVirtualRouter, "  listeners:\n  - portMapping: {port: 8080, protocol: http}\n", "  listeners: []\n", 1), "spec.listeners", false},
	{"egress filter enum", `
apiVersion: appmesh.k8s.aws/v1beta2
kind: Mesh
metadata: {name: refused}
spec:
  egressFilter: {type: ALLOW_SOME}
`, "spec.egressFilter.type", false},
	{"gateway protocol tcp", `
apiVersion: appmesh.k8s.aws/v1beta2
kind: VirtualGateway
metadata: {name: refused, namespace: default}
spec:
  listeners:
  - portMapping: {port: 8080, protocol: tcp}
`, "spec.listeners[0].portMapping.protocol", false},
	{"gateway route priority", `
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {name: refused, namespace: default}
spec:
  priority: -1
  httpRoute:
    match: {prefix: /}
    action:
      target:
        virtualService:
          virtualServiceRef: {name: s}
`, "spec.priority", false},
	{"gateway route without target", `
apiVersion: appmesh.k8s.aws/v1beta2
kind: GatewayRoute
metadata: {name: refused, namespace: default}
spec:
  httpRoute:
    match: {prefix: /}
    action: {}
`, "spec.httpRoute.action.target", false},
}

// testRefused: the CRD schemas refuse out-of-range, unknown-enum and
// incomplete resources; the valid twins of the cases are accepted.
func testRefused(t *testing.T, ctx context.Context, s *apiServer) {
	for _, valid := range []string{validVirtualNode, validVirtualRouter} {
		objs, err := decodeObjects([]byte(valid))
		if err != nil {
			t.Fatal(err)
		}
		if warns, err := s.create(ctx, objs[0], "Strict"); err != nil || len(warns) > 0 {
			t.Fatalf("valid %s refused: %v %v", objs[0].GetKind(), err, warns)
		}
		if warns, err := s.apply(ctx, objs[0], dryRunStrict); err != nil || len(warns) > 0 {
			t.Fatalf("valid %s refused by server-side apply: %v %v", objs[0].GetKind(), err, warns)
		}
	}
	for _, c := range refusedCases {
		objs, err := decodeObjects([]byte(c.yaml))
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s: %v", c.name, err)
		}
		checkRefused := func(how string, err error) {
			if err == nil {
				t.Errorf("%s: accepted by %s", c.name, how)
				return
			}
			var status apierrors.APIStatus
			if !errors.As(err, &status) || !(apierrors.IsInvalid(err) || apierrors.IsBadRequest(err)) {
				t.Errorf("%s: refused by %s, but not as invalid: %v", c.name, how, err)
				return
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("%s: %s error does not name %s: %v", c.name, how, c.field, err)
			}
		}
		_, err = s.create(ctx, objs[0], "Strict")
		checkRefused("create", err)
		if c.unknownField {
			// Server-side apply prunes unknown fields silently when the
			// schema preserves unknown top-level fields (as upstream's do).
			continue
		}
		_, err = s.apply(ctx, objs[0], dryRunStrict)
		checkRefused("server-side apply", err)
	}
}

// testStatusSubresource: status is a subresource (a spec write drops it,
// the controller-style /status write keeps it) and the ARN column reads it.
func testStatusSubresource(t *testing.T, ctx context.Context, s *apiServer) {
	gvr := k8sschema.GroupVersionResource{Group: appmeshGroup, Version: appmeshVersion, Resource: "meshes"}
	mesh := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": appmeshGroup + "/" + appmeshVersion, "kind": "Mesh",
		"metadata": map[string]any{"name": "status-test"},
		"spec":     map[string]any{"egressFilter": map[string]any{"type": "ALLOW_ALL"}},
		"status":   map[string]any{"meshARN": "arn:aws:appmesh:us-west-2:111122223333:mesh/ignored"},
	}}
	got, err := s.dyn.Resource(gvr).Create(ctx, mesh, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := unstructured.NestedString(got.Object, "status", "meshARN"); ok {
		t.Error("status written through the main resource: the status subresource is not enabled")
	}
	arn := "arn:aws:appmesh:us-west-2:111122223333:mesh/status-test"
	if err := unstructured.SetNestedField(got.Object, arn, "status", "meshARN"); err != nil {
		t.Fatal(err)
	}
	got, err = s.dyn.Resource(gvr).UpdateStatus(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(got.Object, "status", "meshARN"); v != arn {
		t.Errorf("status.meshARN = %q after a /status update", v)
	}
	// kubectl get meshes shows the ARN and AGE columns.
	crd, err := s.dyn.Resource(apiextv1.SchemeGroupVersion.WithResource("customresourcedefinitions")).Get(ctx, "meshes."+appmeshGroup, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cols := convert[apiextv1.CustomResourceDefinition](t, crd).Spec.Versions[0].AdditionalPrinterColumns
	if len(cols) != 2 || cols[0].Name != "ARN" || cols[0].JSONPath != ".status.meshARN" || cols[1].Name != "AGE" {
		t.Errorf("printer columns %+v, want ARN (.status.meshARN) and AGE", cols)
	}
}
