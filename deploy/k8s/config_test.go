package k8s

import (
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/meshd/meshd/caservice"
	"github.com/meshd/meshd/internal/appmesh"
	"github.com/meshd/meshd/internal/appmesh/load"
	"github.com/meshd/meshd/internal/appmesh/model"
	"github.com/meshd/meshd/internal/peer"
	"github.com/meshd/meshd/sds"
)

// configFiles returns the files of a rendered ConfigMap (by generator name).
func configFiles(t testing.TB, objs []*unstructured.Unstructured, name string) map[string]string {
	t.Helper()
	cm := mustFind(t, objs, "ConfigMap", name)
	data, _, err := unstructured.NestedStringMap(cm.Object, "data")
	if err != nil || len(data) == 0 {
		t.Fatalf("ConfigMap %s has no data (%v)", cm.GetName(), err)
	}
	return data
}

// meshConfig loads the control plane's ConfigMap as meshd controlplane
// loads its --config directory, and builds the model it would serve.
func meshConfig(t testing.TB, objs []*unstructured.Unstructured) *model.Config {
	t.Helper()
	var files []load.File
	for name, data := range configFiles(t, objs, "meshd-mesh") {
		files = append(files, load.File{Name: name, Data: []byte(data)})
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	res := load.Files(files, load.Options{})
	for _, p := range res.Problems {
		t.Errorf("meshd-mesh: %v", p)
	}
	for _, p := range res.Warnings {
		t.Errorf("meshd-mesh (warning): %v", p)
	}
	cfg, problems, _ := model.Build(res.Docs)
	for _, p := range problems {
		t.Errorf("meshd-mesh: %v", p)
	}
	if cfg == nil {
		t.FailNow()
	}
	return cfg
}

type trustConfig struct {
	td         spiffeid.TrustDomain
	identities *sds.Identities
	policy     *caservice.Policy
	sdsAgent   spiffeid.ID
}

// trust reads base's trust domain, SDS identities and CA policy with the
// parsers meshd uses at start-up, and the SDS agents' Kubernetes agent ID.
func trust(t testing.TB, objs []*unstructured.Unstructured) trustConfig {
	t.Helper()
	var tc trustConfig
	var err error
	tdName := configFiles(t, objs, "meshd-settings")["trust-domain"]
	if tc.td, err = spiffeid.TrustDomainFromString(tdName); err != nil {
		t.Fatalf("meshd-settings trust-domain %q: %v", tdName, err)
	}
	if tc.identities, err = sds.ParseIdentities([]byte(configFiles(t, objs, "meshd-sds-identities")["identities.yaml"]), tc.td); err != nil {
		t.Fatalf("meshd-sds-identities: %v", err)
	}
	if tc.policy, err = caservice.ParsePolicy([]byte(configFiles(t, objs, "meshd-ca-policy")["policy.yaml"]), tc.td); err != nil {
		t.Fatalf("meshd-ca-policy: %v", err)
	}
	ds := mustFind(t, objs, "DaemonSet", "meshd-sds")
	sa, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "spec", "serviceAccountName")
	if tc.sdsAgent, err = caservice.KubernetesAgentID(tc.td, ds.GetNamespace(), sa); err != nil {
		t.Fatal(err)
	}
	return tc
}

func TestMeshConfigMap(t *testing.T) {
	cfg := meshConfig(t, render(t, "base"))
	apps := cfg.Meshes["apps"]
	if apps == nil {
		t.Fatalf("meshd-mesh defines meshes %v, want apps", model.Names(cfg.Meshes))
	}
	if got := strings.Join(model.Names(apps.VirtualNodes), ","); got != "serviceA,serviceB,serviceBv2" {
		t.Errorf("virtual nodes %s", got)
	}
	vr := apps.VirtualRouters["serviceB"]
	if vr == nil || len(vr.Routes) != 1 {
		t.Fatalf("virtual router serviceB: %+v", vr)
	}
	targets, _ := model.RouteTargets(vr.Routes[0].Spec)
	var split []string
	for _, tg := range targets {
		split = append(split, tg.VirtualNode+"="+itoa(tg.Weight))
	}
	if got := strings.Join(split, ","); got != "serviceB=75,serviceBv2=25" {
		t.Errorf("route serviceB splits %s, want serviceB=75,serviceBv2=25", got)
	}
}

func itoa(p *int64) string {
	if p == nil {
		return "nil"
	}
	return strconv.FormatInt(*p, 10)
}

// TestTrust: every identity the SDS agents may serve is a virtual node or
// gateway of the mesh the control plane serves, and the CA policy grants
// it, with its DNS names, to the SDS agents' Kubernetes identity.
func TestTrust(t *testing.T) {
	objs := render(t, "base")
	tc := trust(t, objs)
	cfg := meshConfig(t, objs)
	if tc.identities.Len() == 0 {
		t.Fatal("the SDS identities file is empty")
	}
	for _, id := range identityList(tc) {
		if err := tc.policy.Allows(tc.sdsAgent, id.SPIFFEID, id.DNSNames); err != nil {
			t.Errorf("CA policy refuses %s %v to %s: %v", id.SPIFFEID, id.DNSNames, tc.sdsAgent, err)
		}
		if !servesIdentity(cfg, id.SPIFFEID) {
			t.Errorf("identity %s names no virtual node or gateway of meshd-mesh", id.SPIFFEID)
		}
	}
	// The guard can fail: the policy refuses another agent and another ID.
	other, _ := caservice.KubernetesAgentID(tc.td, "default", "default")
	first := identityList(tc)[0]
	if tc.policy.Allows(other, first.SPIFFEID, first.DNSNames) == nil {
		t.Errorf("CA policy grants %s to %s too", first.SPIFFEID, other)
	}
	bad := spiffeid.RequireFromPath(tc.td, "/meshd/agent/x")
	if tc.policy.Allows(tc.sdsAgent, bad, nil) == nil {
		t.Errorf("CA policy grants the reserved %s", bad)
	}
}

// identityList walks the parsed identities through their selectors: Match
// with a peer whose credentials satisfy each entry.
func identityList(tc trustConfig) []*sds.Identity {
	var out []*sds.Identity
	seen := map[string]bool{}
	for uid := uint32(0); uid <= 2000; uid += 1337 {
		for gid := uint32(10000); gid < 10100; gid++ {
			for _, id := range tc.identities.Match(peer.Info{UID: uid, GID: gid}) {
				if !seen[id.SPIFFEID.String()] {
					seen[id.SPIFFEID.String()] = true
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// servesIdentity: spiffe://TD/mesh/<mesh>/virtualNode|virtualGateway/<name>.
func servesIdentity(cfg *model.Config, id spiffeid.ID) bool {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 4 || parts[0] != "mesh" {
		return false
	}
	m := cfg.Meshes[parts[1]]
	if m == nil {
		return false
	}
	switch parts[2] {
	case "virtualNode":
		return m.VirtualNodes[parts[3]] != nil
	case "virtualGateway":
		return m.VirtualGateways[parts[3]] != nil
	}
	return false
}

// TestWorkloadIdentities: each example workload's sidecar names a virtual
// node of the mesh, and its Envoy's uid and group get exactly that node's
// identity from the node's SDS agent.
func TestWorkloadIdentities(t *testing.T) {
	objs := render(t, "base")
	tc := trust(t, objs)
	cfg := meshConfig(t, objs)
	n := 0
	for _, w := range workloads(t, render(t, "examples/apps")) {
		for _, c := range allContainers(&w.tmpl.Spec) {
			if !isMeshd(c) {
				continue
			}
			n++
			arn := w.tmpl.Annotations["meshd.io/resource-arn"]
			r, err := appmesh.ParseResource(arn)
			if err != nil {
				t.Errorf("%s: meshd.io/resource-arn %q: %v", w, arn, err)
				continue
			}
			want := spiffeid.RequireFromSegments(tc.td, "mesh", r.Mesh, string(r.Kind), r.Name)
			if !servesIdentity(cfg, want) {
				t.Errorf("%s: %s is not in meshd-mesh", w, arn)
			}
			uid, gid, groups := credentials(&w.tmpl.Spec, c)
			got := tc.identities.Match(peer.Info{UID: uid, GID: gid})
			if len(got) != 1 || got[0].SPIFFEID != want {
				t.Errorf("%s: Envoy uid %d gid %d gets identities %v, want exactly %s", w, uid, gid, ids(got), want)
			}
			// The socket is group 1337 (--socket-group): Envoy needs it.
			if gid != 1337 && !containsInt(groups, 1337) {
				t.Errorf("%s: Envoy (gid %d, groups %v) cannot open the SDS socket of group 1337", w, gid, groups)
			}
		}
	}
	if n == 0 {
		t.Fatal("examples/apps has no meshd sidecar")
	}
}

func credentials(spec *corev1.PodSpec, c *corev1.Container) (uid, gid uint32, groups []int64) {
	if psc := spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			uid = uint32(*psc.RunAsUser)
		}
		if psc.RunAsGroup != nil {
			gid = uint32(*psc.RunAsGroup)
		}
		groups = psc.SupplementalGroups
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = uint32(*sc.RunAsUser)
		}
		if sc.RunAsGroup != nil {
			gid = uint32(*sc.RunAsGroup)
		}
	}
	return uid, gid, groups
}

func containsInt(xs []int64, x int64) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func ids(list []*sds.Identity) []string {
	var out []string
	for _, i := range list {
		out = append(out, i.SPIFFEID.String())
	}
	return out
}

// TestReadmeSteps: the install steps of README.md name the paths and keys
// base's manifests use.
func TestReadmeSteps(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	objs := render(t, "base")
	var want []string
	for _, m := range meshdContainers(t, objs) {
		switch m.command {
		case "meshd ca serve":
			want = append(want, "deploy/"+m.w.name+" -- meshd ca show --state-dir "+m.flag("state-dir")+" --pem")
			for _, v := range m.w.tmpl.Spec.Volumes {
				if v.ConfigMap != nil && v.ConfigMap.Optional != nil && *v.ConfigMap.Optional {
					// The optional ConfigMap is the policy's jwksFile.
					policy := configFiles(t, objs, "meshd-ca-policy")["policy.yaml"]
					vm, _ := findMount(m.c, v.Name)
					if !strings.Contains(policy, "jwksFile: "+vm+"/jwks.json") {
						t.Errorf("the CA policy's jwksFile is not jwks.json on volume %s (%s)", v.Name, vm)
					}
					want = append(want, "create configmap "+v.ConfigMap.Name+" --from-file=jwks.json")
				}
			}
		case "meshd sds":
			bundle := m.flag("ca-service-bundle")
			vm, ok := mountFor(m.c, bundle)
			if !ok {
				t.Fatalf("--ca-service-bundle %s is on no mount", bundle)
			}
			cm := volume(&m.w.tmpl.Spec, vm.Name).ConfigMap
			want = append(want, "create configmap "+cm.Name+" --from-file="+path.Base(bundle))
		}
	}
	if len(want) < 3 {
		t.Fatalf("found %d steps to check", len(want))
	}
	for _, w := range want {
		if !strings.Contains(string(readme), w) {
			t.Errorf("README.md does not say %q", w)
		}
	}
}

func findMount(c *corev1.Container, volume string) (string, bool) {
	for _, vm := range c.VolumeMounts {
		if vm.Name == volume {
			return vm.MountPath, true
		}
	}
	return "", false
}
