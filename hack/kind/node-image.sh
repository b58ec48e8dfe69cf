#!/usr/bin/env bash
# Prints the kind node image the kind fleet should use, building it offline when needed.
#
#   hack/kind/node-image.sh            # prints an image name; empty means kind's default
#
# In order: kind's default node image when docker has it or can pull it (nothing is built);
# else inferfleet/kind-node:$KUBE_VERSION when docker has it, or when bin/kind/ caches it
# (docker load); else it is built here, from Debian's packages and Go modules only:
#   - a Debian rootfs (debootstrap: systemd, iptables, runc, CNI plugins, ...) with kind's
#     own node files (entrypoint, systemd units, containerd config) from the kind module;
#   - containerd, ctr and its runc shim, built from containerd's Go module;
#   - kubelet, kubeadm, kubectl, kube-proxy and the control plane from k8s.io/kubernetes
#     (hack/kube; static, with their version stamped), etcd and CoreDNS at the versions
#     kubeadm asks for, pause from its C source;
#   - those as images (registry.k8s.io names, as kubeadm expects them), imported into the
#     node's containerd, as `kind build node-image` does.
# Pods get their network from the CNI bridge plugin (one node per cluster: the kind fleet
# creates single-node clusters), not from kindnetd; StorageClass "standard" has no
# provisioner. Everything built is cached under bin/kind/.
set -euo pipefail
cd "${BASH_SOURCE[0]%/*}/../.."
root=$PWD
# shellcheck source=hack/versions.sh
source hack/versions.sh

log() { echo "node-image: $*" >&2; }
export DOCKER_BUILDKIT=0 # plain `docker build`: works without the buildx plugin and pulls nothing

kind_dir=$(cd hack/kube/.. && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)
default_image=$(grep -o 'kindest/node:[^"]*' "$kind_dir/pkg/apis/config/defaults/image.go")
if docker image inspect "$default_image" >/dev/null 2>&1 ||
  timeout 120 docker pull -q "$default_image" >/dev/null 2>&1; then
  log "using kind's default node image $default_image"
  exit 0
fi

image=inferfleet/kind-node:$KUBE_VERSION
out="$root/bin/kind"
cache="$out/node-$KUBE_VERSION.tar"
mkdir -p "$out"
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi
if [ -f "$cache" ]; then
  log "loading $image from $cache"
  docker load -q -i "$cache" >/dev/null
  echo "$image"
  exit 0
fi
log "$default_image cannot be pulled here: building $image offline (first time only)"
started=$SECONDS
phase() { log "[$((SECONDS - started))s] $*"; }

work=$(mktemp -d)
build_container=""
installed=""
cleanup() {
  [ -n "$build_container" ] && docker rm -f "$build_container" >/dev/null 2>&1
  [ -n "$installed" ] && DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $installed >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

fresh() { [ -x "$out/$1" ] && [ "$(cat "$out/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$out/.$1.version"; }

# Kubernetes' commands, static and stamped with their version as Kubernetes' own build does.
for c in kubelet kubeadm kubectl kube-proxy kube-apiserver kube-controller-manager kube-scheduler; do
  if ! fresh "$c" "$KUBE_VERSION"; then
    phase "building $c $KUBE_VERSION"
    (cd hack/kube && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -ldflags "$(kube_ldflags)" -o "$out/$c" "k8s.io/kubernetes/cmd/$c")
    stamp "$c" "$KUBE_VERSION"
  fi
done

# The versions of the images kubeadm pulls, from kubeadm itself.
images=$("$out/kubeadm" config images list --kubernetes-version "$KUBE_VERSION")
tag_of() { echo "$images" | grep "/$1:" | sed 's/.*://'; }
etcd_tag=$(tag_of etcd)     # 3.6.8-0
coredns_tag=$(tag_of coredns) # v1.14.2
pause_tag=$(tag_of pause)   # 3.10.2
etcd_version=v${etcd_tag%-*}

for c in containerd ctr containerd-shim-runc-v2; do
  if ! fresh "$c" "$CONTAINERD_VERSION"; then
    phase "building $c $CONTAINERD_VERSION"
    CGO_ENABLED=0 GOBIN="$out" GOFLAGS= go install -tags "no_btrfs no_devmapper no_zfs no_aufs" \
      "github.com/containerd/containerd/v2/cmd/$c@$CONTAINERD_VERSION"
    stamp "$c" "$CONTAINERD_VERSION"
  fi
done
if ! fresh coredns "$coredns_tag"; then
  phase "building coredns $coredns_tag"
  CGO_ENABLED=0 GOBIN="$out" GOFLAGS= go install "github.com/coredns/coredns@$coredns_tag"
  stamp coredns "$coredns_tag"
fi
if ! fresh etcd "$etcd_version"; then
  phase "building etcd $etcd_version"
  mkdir -p "$work/etcd" && cp hack/etcd/main.go "$work/etcd/"
  (cd "$work/etcd" && go mod init inferfleet.local/etcd >/dev/null 2>&1 &&
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null 2>&1 &&
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$out/etcd" .)
  stamp etcd "$etcd_version"
fi
if ! fresh pause "$pause_tag"; then
  phase "building pause $pause_tag"
  gcc -Os -static -Wall -Werror -DVERSION="v$pause_tag" -o "$out/pause" \
    "$(cd hack/kube && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  stamp pause "$pause_tag"
fi

# The Debian rootfs, from the suite this machine runs on.
phase "debootstrap $DEBIAN_SUITE"
if ! command -v debootstrap >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  installed="debootstrap"
fi
rootfs="$work/rootfs"
debootstrap --variant=minbase \
  --include=systemd,dbus,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,runc,containernetworking-plugins,e2fsprogs \
  "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

# Images from the plain rootfs (glibc, iptables, conntrack) plus one command each.
phase "component images"
tar -C "$rootfs" -c . | docker import - inferfleet/kind-rootfs:"$DEBIAN_SUITE" >/dev/null
component() { # component IMAGE BINARY [ENTRYPOINT]
  local ctx="$work/img-$(basename "$2")"
  mkdir -p "$ctx" && cp "$2" "$ctx/"
  {
    echo "FROM inferfleet/kind-rootfs:$DEBIAN_SUITE"
    echo "COPY $(basename "$2") /usr/local/bin/"
    echo "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    [ -n "${3:-}" ] && echo "ENTRYPOINT [\"$3\"]"
  } >"$ctx/Dockerfile"
  docker build -q -t "$1" "$ctx" >/dev/null
  echo "$1" >>"$work/images"
}
component "registry.k8s.io/kube-apiserver:$KUBE_VERSION" "$out/kube-apiserver"
component "registry.k8s.io/kube-controller-manager:$KUBE_VERSION" "$out/kube-controller-manager"
component "registry.k8s.io/kube-scheduler:$KUBE_VERSION" "$out/kube-scheduler"
component "registry.k8s.io/kube-proxy:$KUBE_VERSION" "$out/kube-proxy"
component "registry.k8s.io/etcd:$etcd_tag" "$out/etcd"
component "registry.k8s.io/coredns/coredns:$coredns_tag" "$out/coredns" /usr/local/bin/coredns
component "registry.k8s.io/pause:$pause_tag" "$out/pause" /usr/local/bin/pause
# kind's containerd config names its own sandbox image.
sandbox=$(grep -o 'sandbox_image = "[^"]*"' "$kind_dir/images/base/files/etc/containerd/config.toml" | cut -d'"' -f2)
docker tag "registry.k8s.io/pause:$pause_tag" "$sandbox" && echo "$sandbox" >>"$work/images"

# The node: kind's base image steps (images/base/Dockerfile), then `kind build node-image`'s.
phase "node filesystem"
files="$kind_dir/images/base/files"
install -m 0755 "$files"/usr/local/bin/* "$rootfs/usr/local/bin/"
mkdir -p "$rootfs/kind/bin" "$rootfs/kind/manifests" "$rootfs/LICENSES" "$rootfs/etc/containerd" \
  "$rootfs/etc/systemd/system/kubelet.service.d" "$rootfs/etc/kubernetes/manifests" "$rootfs/opt/cni/bin" "$rootfs/etc/cni/net.d"
install -m 0644 "$files"/kind/*.txt "$rootfs/kind/"
install -m 0755 "$files"/kind/bin/* "$rootfs/kind/bin/"
install -m 0644 "$files"/LICENSES/* "$rootfs/LICENSES/"
install -m 0644 "$files"/etc/crictl.yaml "$rootfs/etc/"
install -m 0644 "$files"/etc/containerd/* "$rootfs/etc/containerd/"
install -m 0644 "$files"/etc/default/* "$rootfs/etc/default/"
install -m 0644 "$files"/etc/sysctl.d/* "$rootfs/etc/sysctl.d/"
install -m 0644 "$files"/etc/systemd/system/*.service "$files"/etc/systemd/system/*.slice "$rootfs/etc/systemd/system/"
install -m 0644 "$files"/etc/systemd/system/kubelet.service.d/* "$rootfs/etc/systemd/system/kubelet.service.d/"
find "$rootfs/lib/systemd/system/sysinit.target.wants/" -name "systemd-tmpfiles-setup.service" -delete
rm -f "$rootfs"/lib/systemd/system/multi-user.target.wants/* "$rootfs"/etc/systemd/system/*.wants/* \
  "$rootfs"/lib/systemd/system/local-fs.target.wants/* "$rootfs"/lib/systemd/system/sockets.target.wants/*udev* \
  "$rootfs"/lib/systemd/system/sockets.target.wants/*initctl* "$rootfs"/lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >>"$rootfs/etc/systemd/journald.conf"
ln -sf /usr/lib/systemd/systemd "$rootfs/sbin/init"
install -m 0755 "$out/containerd" "$out/ctr" "$out/containerd-shim-runc-v2" "$rootfs/usr/local/bin/"
install -m 0755 "$out/kubelet" "$out/kubeadm" "$out/kubectl" "$rootfs/usr/bin/"
for p in host-local loopback bridge portmap ptp; do cp "$rootfs/usr/lib/cni/$p" "$rootfs/opt/cni/bin/"; done
chroot "$rootfs" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1
chroot "$rootfs" systemctl mask systemd-binfmt.service >/dev/null 2>&1
chroot "$rootfs" sh -c 'ctr oci spec | jq ".hooks.createContainer[.hooks.createContainer| length] |= . + {\"path\": \"/kind/bin/mount-product-files.sh\"}" | jq "del(.process.rlimits)" > /etc/containerd/cri-base.json'
echo "$KUBE_VERSION" >"$rootfs/kind/version"
cat >"$rootfs/etc/cni/net.d/10-kind-bridge.conflist" <<'EOF'
{
  "cniVersion": "1.0.0",
  "name": "kind-bridge",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
cat >"$rootfs/kind/manifests/default-cni.yaml" <<'EOF'
# This node image gives pods their network with the CNI bridge plugin
# (/etc/cni/net.d/10-kind-bridge.conflist): one node per cluster, no kindnetd.
apiVersion: v1
kind: ConfigMap
metadata:
  name: kind-bridge-cni
  namespace: kube-system
data:
  conflist: /etc/cni/net.d/10-kind-bridge.conflist
EOF
cat >"$rootfs/kind/manifests/default-storage.yaml" <<'EOF'
# No dynamic provisioner in this offline node image: volumes are created by hand.
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
EOF

phase "node image: importing the component images into its containerd"
tar -C "$rootfs" -c . | docker import \
  -c 'ENV container=docker' -c 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
  - "$image-base" >/dev/null
build_container=$(docker run -d --privileged --security-opt seccomp=unconfined --entrypoint=sleep "$image-base" infinity)
docker exec -d "$build_container" bash -c 'containerd >/var/log/containerd-build.log 2>&1'
for _ in $(seq 1 60); do
  docker exec "$build_container" ctr version >/dev/null 2>&1 && break
  sleep 1
done
# shellcheck disable=SC2046
docker save $(sort -u "$work/images") |
  docker exec -i "$build_container" ctr --namespace=k8s.io images import \
    --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
docker exec "$build_container" ctr --namespace=k8s.io images list -q | sort >"$work/imported"
if ! sort -u "$work/images" | comm -23 - "$work/imported" | grep -q .; then :; else
  log "not imported into the node's containerd: $(sort -u "$work/images" | comm -23 - "$work/imported" | tr '\n' ' ')"
  exit 1
fi
docker exec "$build_container" pkill containerd || true
sleep 1
docker commit "$build_container" "$image-imported" >/dev/null
# systemd stops on SIGRTMIN+3 (SIGTERM makes it re-execute), which only a build can set.
mkdir -p "$work/final"
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]\n' "$image-imported" >"$work/final/Dockerfile"
docker build -q -t "$image" "$work/final" >/dev/null
docker rmi -f "$image-imported" "$image-base" inferfleet/kind-rootfs:"$DEBIAN_SUITE" $(sort -u "$work/images") >/dev/null 2>&1 || true

phase "caching $image in $cache"
docker save -o "$cache.partial" "$image" && mv "$cache.partial" "$cache"
phase "built $image"
echo "$image"
