package k8s

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomizations are the directories users `kubectl apply -k`; every test
// renders them as kubectl does (kustomize's krusty, default options: load
// restrictor on, no plugins).
var kustomizations = []string{"crds", "base", "examples/production", "examples/apps"}

var (
	renderMu    sync.Mutex
	renderCache = map[string][]*unstructured.Unstructured{}
)

// render builds dir with kustomize and returns (a copy of) its objects.
func render(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	objs, ok := renderCache[dir]
	if !ok {
		objs = build(t, dir)
		renderCache[dir] = objs
	}
	out := make([]*unstructured.Unstructured, len(objs))
	for i, o := range objs {
		out[i] = o.DeepCopy()
	}
	return out
}

func build(t testing.TB, dir string) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := m.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	objs, err := decodeObjects(y)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return objs
}

// decodeObjects splits a multi-document YAML stream into objects, skipping
// empty documents.
func decodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err == io.EOF {
			return out, nil
		} else if err != nil {
			return out, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (o.GetName() == name || strings.HasPrefix(o.GetName(), name+"-") && kind == "ConfigMap") {
			return o
		}
	}
	return nil
}

func mustFind(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := find(objs, kind, name)
	if o == nil {
		t.Fatalf("no %s %s rendered", kind, name)
	}
	return o
}

func convert[T any](t testing.TB, o *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

// workload is a pod template and where it came from.
type workload struct {
	name, kind, namespace string
	tmpl                  corev1.PodTemplateSpec
}

func (w workload) String() string { return w.kind + " " + w.namespace + "/" + w.name }

func workloads(t testing.TB, objs []*unstructured.Unstructured) []workload {
	t.Helper()
	var out []workload
	for _, o := range objs {
		w := workload{name: o.GetName(), kind: o.GetKind(), namespace: o.GetNamespace()}
		switch o.GetKind() {
		case "Deployment":
			w.tmpl = convert[appsv1.Deployment](t, o).Spec.Template
		case "DaemonSet":
			w.tmpl = convert[appsv1.DaemonSet](t, o).Spec.Template
		case "StatefulSet":
			w.tmpl = convert[appsv1.StatefulSet](t, o).Spec.Template
		default:
			continue
		}
		out = append(out, w)
	}
	return out
}

// allContainers are the pod's init (and native sidecar) and app containers.
func allContainers(spec *corev1.PodSpec) []*corev1.Container {
	var out []*corev1.Container
	for i := range spec.InitContainers {
		out = append(out, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		out = append(out, &spec.Containers[i])
	}
	return out
}

// isMeshd tells meshd's containers (the meshd image, the meshd-envoy
// sidecar image, renamed by an overlay or not) from applications'.
func isMeshd(c *corev1.Container) bool {
	img := c.Image
	if i := strings.LastIndex(img, "/"); i >= 0 {
		img = img[i+1:]
	}
	return strings.HasPrefix(img, "meshd:") || strings.HasPrefix(img, "meshd-envoy:") || img == "meshd" || img == "meshd-envoy"
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expandArgs resolves $(VAR) in a container's args as the kubelet does,
// from the container's env: literal values, the pod's namespace and keys
// of rendered ConfigMaps. An unresolvable reference is an error (the
// kubelet would pass it on literally).
func expandArgs(c *corev1.Container, namespace string, objs []*unstructured.Unstructured) ([]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = namespace
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			var cm *unstructured.Unstructured
			for _, o := range objs {
				if o.GetKind() == "ConfigMap" && o.GetName() == ref.Name {
					cm = o
				}
			}
			if cm == nil {
				return nil, fmt.Errorf("env %s: ConfigMap %s is not rendered", e.Name, ref.Name)
			}
			v, ok, _ := unstructured.NestedString(cm.Object, "data", ref.Key)
			if !ok {
				return nil, fmt.Errorf("env %s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = v
		}
	}
	var out []string
	var errs []string
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		out = append(out, varRef.ReplaceAllStringFunc(a, func(m string) string {
			name := varRef.FindStringSubmatch(m)[1]
			v, ok := env[name]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s: $(%s) is not defined by the container's env", a, name))
				return m
			}
			return v
		}))
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

func TestRender(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			if len(objs) == 0 {
				t.Fatal("rendered nothing")
			}
			seen := map[string]bool{}
			for _, o := range objs {
				key := o.GetAPIVersion() + "/" + o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
				if seen[key] {
					t.Errorf("%s rendered twice", key)
				}
				seen[key] = true
			}
		})
	}

	objs := render(t, "base")
	cp := convert[appsv1.Deployment](t, mustFind(t, objs, "Deployment", "meshd-controlplane"))
	if cp.Spec.Replicas == nil || *cp.Spec.Replicas != 2 {
		t.Errorf("control plane replicas = %v, want 2", cp.Spec.Replicas)
	}
	if cp.Namespace != "meshd-system" {
		t.Errorf("control plane in namespace %q, want meshd-system", cp.Namespace)
	}
	var crds int
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" {
			crds++
		}
	}
	if crds != 7 {
		t.Errorf("base renders %d CRDs, want the 7 App Mesh CRDs", crds)
	}
	for _, img := range []string{"ghcr.io/meshd/meshd:v0.1.0"} {
		found := false
		for _, w := range workloads(t, objs) {
			for _, c := range allContainers(&w.tmpl.Spec) {
				found = found || c.Image == img
			}
		}
		if !found {
			t.Errorf("no container of base uses the placeholder image %s", img)
		}
	}
}
