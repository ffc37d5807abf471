#!/usr/bin/env bash
# Builds (once) and prints the directory to use as KUBEBUILDER_ASSETS for the
# deploy/k8s tests: kube-apiserver built from the Go module proxy (the pinned
# k8s.io/kubernetes in internal/tools/envtest/go.mod), Debian's etcd, and in
# crds/ the third-party CRDs the manifests use (the Prometheus Operator's
# PodMonitor, from its module on the Go module proxy). setup-envtest cannot
# be used: it downloads from GitHub.
#
#   export KUBEBUILDER_ASSETS="$(hack/envtest-assets.sh)"
#
# The cache is keyed by the Kubernetes version and reused when present:
#   ${MESHD_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshd/envtest}/<version>/
# The first build takes 4–6 minutes on 2 cores (plus ~1.5 GB of module downloads).
# Needs etcd in PATH (apt-get install etcd-server) unless ETCD=/path/to/etcd.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mod="$root/internal/tools/envtest"
log() { echo "envtest-assets: $*" >&2; }

version=$(awk '$1 == "k8s.io/kubernetes" {print $2; exit}' "$mod/go.mod")
if [ -z "$version" ]; then log "no k8s.io/kubernetes requirement in $mod/go.mod"; exit 1; fi
cache="${MESHD_ENVTEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshd/envtest}"
dir="$cache/$version"
mkdir -p "$dir"

etcd="${ETCD:-$(command -v etcd || true)}"
if [ -z "$etcd" ] || [ ! -x "$etcd" ]; then
  log "etcd not found: apt-get install etcd-server (or set ETCD=/path/to/etcd)"
  exit 1
fi
ln -sfn "$etcd" "$dir/etcd"

cached=""
if [ -x "$dir/kube-apiserver" ]; then cached=$("$dir/kube-apiserver" --version 2>/dev/null || true); fi
if [ "$cached" = "Kubernetes $version" ]; then
  log "kube-apiserver $version cached in $dir"
else
  log "building kube-apiserver $version into $dir (takes minutes the first time)"
  start=$(date +%s)
  tmp="$dir/.kube-apiserver.$$"
  trap 'rm -f "$tmp"' EXIT
  minor=${version#v*.}; minor=${minor%%.*}; major=${version#v}; major=${major%%.*}
  pkg=k8s.io/component-base/version
  (cd "$mod" && CGO_ENABLED=0 nice -n "${NICE:-10}" go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
    -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv -f "$tmp" "$dir/kube-apiserver"
  log "built in $(( $(date +%s) - start ))s: $("$dir/kube-apiserver" --version)"
fi

# Third-party CRDs, keyed by their module version.
prom_operator=github.com/prometheus-operator/prometheus-operator@v0.85.0
podmonitors="$dir/crds/monitoring.coreos.com_podmonitors.yaml"
stamp="$dir/crds/.source"
if [ ! -s "$podmonitors" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$prom_operator" ]; then
  log "fetching the PodMonitor CRD from $prom_operator"
  src=$(cd "$mod" && go mod download -json "$prom_operator" | awk -F'"' '$2 == "Dir" {print $4}')
  if [ -z "$src" ]; then log "go mod download $prom_operator failed"; exit 1; fi
  mkdir -p "$dir/crds"
  cp "$src/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml" "$podmonitors.tmp"
  chmod 644 "$podmonitors.tmp"
  mv -f "$podmonitors.tmp" "$podmonitors"
  echo "$prom_operator" > "$stamp"
fi
echo "$dir"
