# Sourced by hack/e2e-kind.sh. engine_up makes a container engine answer: the one already
# running if any; else Docker, installed from the distribution's packages when absent
# (Debian's docker.io) and started here, with bin/runc-capshim as its runtime only where a
# privileged container fails without it (a machine whose capability bounding set lacks
# CAP_SYS_RESOURCE). engine_restore undoes what engine_up did: the daemon it started, the
# packages it installed, the data and firewall rules they left, the sysctl it changed.

engine_state="" # where engine_up records what it changed
ENGINE=""
INFERFLEET_KIND_CAPSHIM=""

engine_log() { echo "e2e-kind: $*" >&2; }

engine_up() {
  local e
  for e in docker nerdctl podman; do
    if command -v "$e" >/dev/null 2>&1 && "$e" info >/dev/null 2>&1; then
      ENGINE=$e
      engine_log "using the running $e"
      return 0
    fi
  done
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    engine_log "no container engine answers here (Docker, Podman or nerdctl), and only root on a Debian-based machine can install one. Start one, or use the local fleet: make test (or INFERFLEET_E2E_FLEET=local go test ./e2e/)."
    return 3
  fi
  ENGINE=docker
  engine_state=$(mktemp -d)
  [ -e /var/lib/docker ] || touch "$engine_state/new-data-root"
  [ -e /etc/docker ] || touch "$engine_state/new-etc-docker" # the install and dockerd's key.json
  if ! command -v dockerd >/dev/null 2>&1; then
    engine_log "installing Debian's docker.io (removed again when done)"
    dpkg-query -W -f='${Package}\n' | sort >"$engine_state/packages.before"
    # Nothing starts during the install: the daemon is started below, with the right runtime.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    touch "$engine_state/policy-rc.d"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >"$engine_state/apt.log" 2>&1 ||
      { cat "$engine_state/apt.log" >&2; return 1; }
    rm -f /usr/sbin/policy-rc.d "$engine_state/policy-rc.d"
    dpkg-query -W -f='${Package}\n' | sort | comm -13 "$engine_state/packages.before" - >"$engine_state/packages.installed"
  fi
  sysctl -n net.ipv4.ip_forward >"$engine_state/ip_forward" 2>/dev/null || true
  if command -v iptables-save >/dev/null 2>&1; then
    iptables-save >"$engine_state/iptables" 2>/dev/null || true
  fi
  dockerd_start || return 1
  if ! privileged_ok; then
    engine_log "a privileged container fails here: $(cat "$engine_state/probe.log")"
    engine_log "restarting dockerd with bin/runc-capshim, which drops the capabilities this machine's bounding set lacks"
    dockerd_stop
    CGO_ENABLED=0 go build -o bin/runc-capshim ./hack/runc-capshim
    dockerd_start --add-runtime "capshim=$PWD/bin/runc-capshim" --default-runtime capshim || return 1
    if ! privileged_ok; then
      engine_log "privileged containers still fail with the shim: $(cat "$engine_state/probe.log")"
      return 1
    fi
    # The kind nodes' own containerd runs privileged pods (kube-proxy) through it too.
    INFERFLEET_KIND_CAPSHIM=$PWD/bin/runc-capshim
  fi
  export INFERFLEET_KIND_CAPSHIM
}

dockerd_start() {
  dockerd --pidfile "$engine_state/dockerd.pid" "$@" >>"$engine_state/dockerd.log" 2>&1 &
  local i
  for i in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
      engine_log "dockerd started $*"
      return 0
    fi
    sleep 1
  done
  engine_log "dockerd did not answer within 60s; its log:"
  tail -20 "$engine_state/dockerd.log" >&2
  return 1
}

dockerd_stop() {
  local pid
  pid=$(cat "$engine_state/dockerd.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
}

# privileged_ok runs a privileged container from a one-file image (a static true).
privileged_ok() {
  if ! docker image inspect inferfleet/probe:true >/dev/null 2>&1; then
    local d
    d=$(mktemp -d)
    printf 'int main(void){return 0;}\n' | gcc -static -x c -o "$d/true" - &&
      tar -C "$d" -c true | docker import -c 'ENTRYPOINT ["/true"]' - inferfleet/probe:true >/dev/null
    rm -rf "$d"
  fi
  docker run --rm --privileged inferfleet/probe:true >"$engine_state/probe.log" 2>&1
}

engine_restore() {
  [ -n "$engine_state" ] && [ -d "$engine_state" ] || return 0
  if [ -f "$engine_state/dockerd.pid" ]; then
    docker network rm kind >/dev/null 2>&1 || true
    dockerd_stop
    engine_log "stopped the dockerd this run started"
    ip link delete docker0 2>/dev/null || true
    if command -v iptables >/dev/null 2>&1; then
      # Docker's chains go; the rules there were before (none, when nothing was saved) return.
      local t
      for t in filter nat mangle raw; do iptables -t "$t" -F 2>/dev/null; iptables -t "$t" -X 2>/dev/null; done
      iptables -P FORWARD ACCEPT 2>/dev/null || true
      if [ -s "$engine_state/iptables" ]; then
        iptables-restore <"$engine_state/iptables" 2>/dev/null || true
      fi
    fi
    [ -s "$engine_state/ip_forward" ] && sysctl -qw net.ipv4.ip_forward="$(cat "$engine_state/ip_forward")" || true
  fi
  if [ -f "$engine_state/new-data-root" ]; then
    rm -rf /var/lib/docker /var/lib/containerd /run/docker /run/containerd
  fi
  [ -f "$engine_state/new-etc-docker" ] && rm -rf /etc/docker
  [ -f "$engine_state/policy-rc.d" ] && rm -f /usr/sbin/policy-rc.d
  if [ -s "$engine_state/packages.installed" ]; then
    engine_log "removing the packages this run installed: $(tr '\n' ' ' <"$engine_state/packages.installed")"
    # shellcheck disable=SC2046
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $(cat "$engine_state/packages.installed") >/dev/null 2>&1 ||
      engine_log "apt-get purge failed; remove them by hand"
  fi
  rm -rf "$engine_state"
}
