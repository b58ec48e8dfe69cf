#!/usr/bin/env bash
# Copies the published CRDs of the pinned Gateway API, Inference Extension and Cluster
# Inventory API modules out of
# the Go module cache into config/crd/external, so they always match go.mod.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/config/crd/external"
cd "$root"
gw=$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)
gie=$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api-inference-extension)
if [ -z "$gw" ] || [ -z "$gie" ]; then go mod download sigs.k8s.io/gateway-api sigs.k8s.io/gateway-api-inference-extension;
  gw=$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api); gie=$(go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api-inference-extension); fi
rm -rf "$out"; mkdir -p "$out/gateway-api" "$out/inference-extension"
for f in "$gw"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
  case "$f" in *vap_*) continue;; esac  # an admission policy, not a CRD
  install -m 0644 "$f" "$out/gateway-api/"
done
install -m 0644 "$gie"/config/crd/bases/*.yaml "$out/inference-extension/"
# SIG Multicluster's ClusterProfile, for the clusterprofile source's tests (a cluster
# manager installs it; the hub only reads profiles).
ci=$(go list -m -f '{{.Dir}}' sigs.k8s.io/cluster-inventory-api)
if [ -z "$ci" ]; then go mod download sigs.k8s.io/cluster-inventory-api; ci=$(go list -m -f '{{.Dir}}' sigs.k8s.io/cluster-inventory-api); fi
mkdir -p "$out/cluster-inventory"
install -m 0644 "$ci"/config/crd/bases/multicluster.x-k8s.io_clusterprofiles.yaml "$out/cluster-inventory/"
