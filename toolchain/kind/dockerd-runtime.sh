#!/usr/bin/env bash
# Makes toolchain/kind/runc-drop-sys-resource dockerd's default runtime, and puts it back.
#
#   toolchain/kind/dockerd-runtime.sh on      # before `kind create cluster`
#   toolchain/kind/dockerd-runtime.sh off     # afterwards: dockerd's configuration as it was
#   toolchain/kind/dockerd-runtime.sh status
#
# kind has no runtime option and its node containers are privileged, which runc refuses on this
# machine (no CAP_SYS_RESOURCE in the bounding set, docs/cluster.md "## kind"). The wrapper only
# removes that one capability, so every other container runs as before; still, `off` sets the
# default back and restores /etc/docker/daemon.json exactly (or removes it if there was none).
# dockerd reloads both settings on SIGHUP: no restart, running containers are untouched.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
config=${DOCKERD_CONFIG:-/etc/docker/daemon.json}
saved=$config.before-prequal-kind
pidfile=/var/run/docker.pid
docker=${DOCKER:-/usr/bin/docker}

die() { printf 'dockerd-runtime.sh: %s\n' "$*" >&2; exit 1; }
default_runtime() { "$docker" info --format '{{.DefaultRuntime}}'; }
reload_until() { # RUNTIME: HUP dockerd, then wait until it reports RUNTIME as its default
  kill -HUP "$(cat "$pidfile")" || die "no dockerd pid in $pidfile (images/dockerd.sh ensure)"
  for _ in $(seq 50); do
    [ "$(default_runtime)" = "$1" ] && { echo "dockerd's default runtime: $1"; return 0; }
    sleep 0.2
  done
  die "dockerd still reports $(default_runtime) as its default runtime, not $1"
}

case ${1:-} in
  on)
    if [ ! -e "$saved" ]; then
      if [ -e "$config" ]; then cp -p "$config" "$saved"; else echo absent >"$saved"; fi
    fi
    before='{}'
    [ "$(cat "$saved")" = absent ] || before=$(cat "$saved")
    mkdir -p "$(dirname "$config")"
    jq --arg path "$here/runc-drop-sys-resource" \
      '.runtimes = ((.runtimes // {}) + {"prequal-runc": {path: $path}}) | ."default-runtime" = "prequal-runc"' \
      <<<"$before" >"$config.tmp"
    mv "$config.tmp" "$config"
    reload_until prequal-runc
    ;;
  off)
    [ -e "$saved" ] || { echo "dockerd-runtime.sh: nothing to restore ($saved absent)"; exit 0; }
    before='{}'
    [ "$(cat "$saved")" = absent ] || before=$(cat "$saved")
    runtime=$(jq -r '."default-runtime" // "runc"' <<<"$before")
    # dockerd's reload changes only the settings the file names: name the default explicitly,
    # then put the file back as it was (the wrapper stays registered until dockerd restarts).
    jq --arg runtime "$runtime" '."default-runtime" = $runtime' <<<"$before" >"$config.tmp"
    mv "$config.tmp" "$config"
    reload_until "$runtime"
    if [ "$(cat "$saved")" = absent ]; then rm -f "$config"; else cp -p "$saved" "$config"; fi
    rm -f "$saved"
    ;;
  status) echo "dockerd's default runtime: $(default_runtime)" ;;
  *) die "usage: $0 on|off|status" ;;
esac
