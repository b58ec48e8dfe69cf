#!/usr/bin/env bash
# make e2e-kind: the shared e2e suites (member sync, region failover) on kind clusters
# instead of the built-in local fleet. Needs a container engine (Docker, Podman or
# nerdctl), Go, and the binaries `make bins` builds (kwok runs on this machine against each
# member). Each suite creates its hub and member kind clusters and deletes them at the end
# (INFERFLEET_E2E_KEEP_KIND=1 keeps them).
set -euo pipefail
cd "${BASH_SOURCE[0]%/*}/.."

engine=""
for e in docker nerdctl podman; do
  if command -v "$e" >/dev/null 2>&1; then engine=$e; break; fi
done
if [ -z "$engine" ]; then
  # Builtins only: this must speak even on a bare PATH.
  printf '%s\n' "make e2e-kind: no container engine (Docker, Podman or nerdctl) on this machine, so kind" \
    "clusters cannot run here. The same suites run on the built-in local fleet, which needs" \
    "none: make test (or INFERFLEET_E2E_FLEET=local go test ./e2e/)." >&2
  exit 3
fi
if ! "$engine" info >/dev/null 2>&1; then
  echo "make e2e-kind: $engine is installed but does not answer ('$engine info' failed): start it first." >&2
  exit 3
fi

make bins
image=${INFERFLEET_HUB_IMAGE:-inferfleet/hub:e2e}
echo "building the hub image $image with $engine"
"$engine" build -t "$image" .
export INFERFLEET_E2E_FLEET=kind INFERFLEET_HUB_IMAGE=$image
go test -count=1 -timeout 90m -run '^(TestMemberSync|TestRegionFailover)$' ./e2e/ "$@"
