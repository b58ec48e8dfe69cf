#!/usr/bin/env bash
# Builds the control-plane binaries the local fleet and envtest run into bin/, from the Go
# module proxy only. A binary is rebuilt only when its pinned version changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
mkdir -p "$bin"

KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0

fresh() { # fresh NAME VERSION: is bin/NAME built at VERSION?
  [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]
}
stamp() { echo "$2" > "$bin/.$1.version"; }

for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  if ! fresh "$c" "$KUBE_VERSION"; then
    echo "building $c $KUBE_VERSION (first time only; kube-apiserver takes a few minutes)"
    (cd "$root/hack/kube" && GOFLAGS=-mod=mod go build -o "$bin/$c" "k8s.io/kubernetes/cmd/$c")
    stamp "$c" "$KUBE_VERSION"
  fi
done
if ! fresh etcd "$ETCD_VERSION"; then
  echo "building etcd $ETCD_VERSION"
  (cd "$root/hack/etcd" && GOFLAGS=-mod=mod go build -o "$bin/etcd" .)
  stamp etcd "$ETCD_VERSION"
fi
if ! fresh kwok "$KWOK_VERSION"; then
  echo "building kwok $KWOK_VERSION"
  GOBIN="$bin" GOFLAGS= go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  stamp kwok "$KWOK_VERSION"
fi
