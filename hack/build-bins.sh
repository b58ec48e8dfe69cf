#!/usr/bin/env bash
# Builds the control-plane binaries the local fleet and envtest run, helm for the chart's
# tests and promtool for the alert rules', into bin/, from the Go module proxy only. A binary is rebuilt only when its pinned version changes.
# With arguments, only those (hack/build-bins.sh helm, for `make release`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
mkdir -p "$bin"

# shellcheck source=hack/versions.sh
source "$root/hack/versions.sh"

fresh() { # fresh NAME VERSION: is bin/NAME built at VERSION?
  [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]
}
stamp() { echo "$2" > "$bin/.$1.version"; }
wanted() { [ ${#want[@]} -eq 0 ] || [[ " ${want[*]} " == *" $1 "* ]]; }
want=("$@")

for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  if wanted "$c" && ! fresh "$c" "$KUBE_VERSION"; then
    echo "building $c $KUBE_VERSION (first time only; kube-apiserver takes a few minutes)"
    (cd "$root/hack/kube" && GOFLAGS=-mod=mod go build -o "$bin/$c" "k8s.io/kubernetes/cmd/$c")
    stamp "$c" "$KUBE_VERSION"
  fi
done
if wanted etcd && ! fresh etcd "$ETCD_VERSION"; then
  echo "building etcd $ETCD_VERSION"
  (cd "$root/hack/etcd" && GOFLAGS=-mod=mod go build -o "$bin/etcd" .)
  stamp etcd "$ETCD_VERSION"
fi
if wanted kwok && ! fresh kwok "$KWOK_VERSION"; then
  echo "building kwok $KWOK_VERSION"
  GOBIN="$bin" GOFLAGS= go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  stamp kwok "$KWOK_VERSION"
fi
if wanted helm && ! fresh helm "$HELM_VERSION"; then
  echo "building helm $HELM_VERSION"
  # The ldflags of helm's own Makefile: its version, and the Kubernetes version that
  # `helm template` and `helm lint` assume (the client-go it is built with).
  (cd "$root/hack/helm" && k8s=$(GOFLAGS=-mod=mod go list -m -f '{{.Version}}' k8s.io/client-go) && minor=$(echo "$k8s" | cut -d. -f2) &&
    GOFLAGS=-mod=mod go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
      -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
      -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor" \
      -o "$bin/helm" helm.sh/helm/v3/cmd/helm)
  stamp helm "$HELM_VERSION"
fi
if wanted promtool && ! fresh promtool "$PROMTOOL_VERSION"; then
  echo "building promtool $PROMTOOL_VERSION"
  v=${PROMTOOL_VERSION#v0.}; v="${v:0:1}.$((10#${v:1:2})).${v#*.}"  # v0.316.0 is Prometheus 3.16.0
  (cd "$root/hack/promtool" && GOFLAGS=-mod=mod go build -ldflags "-s -w -X github.com/prometheus/common/version.Version=$v" \
    -o "$bin/promtool" github.com/prometheus/prometheus/cmd/promtool)
  stamp promtool "$PROMTOOL_VERSION"
fi
