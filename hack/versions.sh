# The versions built into bin/ (hack/build-bins.sh) and into the offline kind node image
# (hack/kind/node-image.sh); sourced by both.
KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.19.2 # also in hack/helm/go.mod
PROMTOOL_VERSION=v0.316.0 # the Prometheus module (Prometheus 3.16.0); also in hack/promtool/go.mod
# The Prometheus operator whose ServiceMonitor and PrometheusRule CRDs the tests install
# (hack/external-crds.sh generates them from its API module, as its own build does).
PROMETHEUS_OPERATOR_VERSION=v0.95.2
CONTAINERD_VERSION=v2.3.4 # as in kind's base image (images/base/Dockerfile)
# The node image's Debian: this machine's own suite (its bin/ commands link against its
# glibc), else bookworm.
DEBIAN_SUITE=$( (. /etc/os-release 2>/dev/null && [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}") || true)
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# kube_ldflags: the -ldflags that stamp Kubernetes commands with their version, as
# Kubernetes' own build does (hack/lib/version.sh there).
kube_ldflags() {
  local minor=${KUBE_VERSION#v1.} pkg f=""
  minor=${minor%%.*}
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    f+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "${f# }"
}
