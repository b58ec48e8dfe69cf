#!/usr/bin/env bash
# make e2e-kind: the shared e2e suites (member sync, region failover) on kind clusters
# instead of the built-in local fleet. Each suite creates a hub and two member kind
# clusters, runs against them (a member's node container is paused, and stopped, for the
# region failures) and deletes them (INFERFLEET_E2E_KEEP_KIND=1 keeps them).
#
# What it needs it provides, and then takes away again:
#   - a container engine: the running one, else Docker installed from Debian's packages
#     and started for this run (hack/kind/engine.sh);
#   - a kind node image: kind's default where it can be pulled, else one built offline and
#     cached under bin/kind/ (hack/kind/node-image.sh);
#   - the hub image, built from the hub binary on an empty base (nothing pulled).
# Extra arguments go to `go test` (for example -run '^TestMemberSync$'). The outcome (date,
# commit, phase timings, each suite's result) is written to e2e/kind-last-run.md.
set -euo pipefail
cd "${BASH_SOURCE[0]%/*}/.."
started=$SECONDS
phases=()
last=0
phase() {
  [ ${#phases[@]} -gt 0 ] && phases[-1]="${phases[-1]} | $((SECONDS - last))s"
  phases+=("$*")
  last=$SECONDS
  echo "e2e-kind: [$((SECONDS - started))s] $*" >&2
}

# shellcheck source=hack/kind/engine.sh
source hack/kind/engine.sh
trap engine_restore EXIT
phase "container engine"
rc=0
engine_up || rc=$?
[ "$rc" = 0 ] || exit "$rc"
if [ "$ENGINE" != docker ]; then
  echo "e2e-kind: $ENGINE answers; the node image and hub image steps here use docker's CLI." >&2
fi

phase "control-plane binaries (make bins)"
make -s bins

phase "kind node image"
node_image=$(hack/kind/node-image.sh)
export INFERFLEET_KIND_NODE_IMAGE=$node_image
echo "e2e-kind: node image: ${node_image:-the default of kind}" >&2

phase "hub image"
image=${INFERFLEET_HUB_IMAGE:-inferfleet/hub:e2e}
make -s build
# The image `make release` makes, from make build's static binary (the same build flags),
# assembled without the engine and loaded as a user would load a release's archive.
ctx=$(mktemp -d)
go run ./internal/cmd/release --dist "$ctx" --repository "${image%:*}" --version "${image##*:}" \
  --hub "linux/$(go env GOARCH)=bin/hub" >/dev/null
docker load -q -i "$ctx/hub-${image##*:}-linux-$(go env GOARCH).docker.tar" >&2
rm -rf "$ctx"
export INFERFLEET_E2E_FLEET=kind INFERFLEET_HUB_IMAGE=$image

phase "suites"
out=$(mktemp)
set +e
go test -count=1 -timeout 90m -v -run '^(TestMemberSync|TestRegionFailover)$' ./e2e/ "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
phase "done"
{
  echo "# make e2e-kind: the last run"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!e2e/kind-last-run.md' || echo ' with local changes')"
  echo "- machine: $(nproc) cores, $(uname -r), container engine: $ENGINE $(docker version --format '{{.Server.Version}}' 2>/dev/null)$([ -n "$INFERFLEET_KIND_CAPSHIM" ] && echo ', through runc-capshim')"
  echo "- node image: ${node_image:-the default of kind}"
  echo "- go test exit status: $rc"
  echo
  echo "| phase | took |"
  echo "|---|---|"
  for p in "${phases[@]:0:${#phases[@]}-1}"; do echo "| $p |"; done
  echo
  echo "| suite / case | result |"
  echo "|---|---|"
  grep -E '^\s*--- (PASS|FAIL|SKIP)' "$out" | sed -E 's/^ *--- (PASS|FAIL|SKIP): (.*) \(([0-9.]+s)\)$/| \2 (\3) | \1 |/'
} >e2e/kind-last-run.md
rm -f "$out"
echo "e2e-kind: results in e2e/kind-last-run.md" >&2
exit "$rc"
