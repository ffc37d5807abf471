// Package k8s holds meshd's Kubernetes deployment (kustomize bases under
// base/, components/ and crds/; see README.md) and the tests that keep it
// honest: every rendered command line is parsed by meshd's own flag sets,
// every environment variable is one meshd reads, the App Mesh CRDs agree with
// meshd's loader, and every manifest is applied with server-side dry run to a
// real kube-apiserver (envtest; hack/envtest-assets.sh builds it).
//
// The CRDs in crds/ are generated from the schema builder in
// crdgen_test.go; regenerate them with
//
//	go test ./deploy/k8s -run TestCRDsGenerated -update
package k8s

//go:generate go test -run TestCRDsGenerated -update .
