#!/usr/bin/env bash
# Makes sure a Docker daemon answers, starting Debian's dockerd in the background when none does.
#
#   images/dockerd.sh ensure   # idempotent: returns at once when `docker info` already answers
#   images/dockerd.sh stop     # stops the dockerd this script started (its pid file), if any
#   images/dockerd.sh status
#
# There is no init system on the project's machines, so nothing else starts the daemon. Its log
# goes to the toolchain cache; images and build cache stay in Docker's default /var/lib/docker,
# so they outlive a `make clean` and a fresh clone. Two callers at once are serialised by a lock.
set -euo pipefail

cache=${PREQUAL_CACHE:-$HOME/.cache/loan-prequal}
log=$cache/logs/dockerd.log
# Debian's client (20.10, with BuildKit built in): /usr/local/bin/docker may be another client.
docker=${DOCKER:-/usr/bin/docker}
dockerd=${DOCKERD:-/usr/sbin/dockerd}
socket=/var/run/docker.sock
pidfile=/var/run/docker.pid
export DOCKER_HOST=unix://$socket

die() { printf 'dockerd.sh: %s\n' "$*" >&2; exit 1; }
answers() { "$docker" info >/dev/null 2>&1; }
running_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

ensure() {
  [ -x "$docker" ] && [ -x "$dockerd" ] || die "$docker or $dockerd is missing: run 'make tools' (it installs Debian's docker.io)"
  answers && return 0
  [ "$(id -u)" = 0 ] || die "no Docker daemon answers on $socket and starting one needs root"
  mkdir -p "$(dirname "$log")"
  exec 9>"$cache/dockerd.lock"
  flock 9
  answers && return 0
  if ! running_pid >/dev/null; then
    printf '==> starting dockerd (log: %s)\n' "$log"
    # setsid: the daemon outlives this shell, make and a Ctrl-C sent to their process group.
    setsid "$dockerd" --host "unix://$socket" --pidfile "$pidfile" </dev/null >>"$log" 2>&1 9>&- &
  fi
  local waited=0
  until answers; do
    if ! running_pid >/dev/null && [ "$waited" -ge 5 ]; then
      tail -n 20 "$log" >&2
      die "dockerd exited during start-up; full log: $log"
    fi
    [ "$waited" -lt 60 ] || { tail -n 20 "$log" >&2; die "dockerd did not answer within 60 s; full log: $log"; }
    sleep 1; waited=$((waited + 1))
  done
  printf '    dockerd answers on %s after %ds\n' "$socket" "$waited"
}

stop() {
  local pid
  pid=$(running_pid) || { echo "dockerd.sh: no dockerd started from $pidfile is running"; return 0; }
  kill "$pid"
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || { echo "dockerd.sh: dockerd ($pid) stopped"; return 0; }; sleep 1; done
  die "dockerd ($pid) did not stop within 30 s; see $log"
}

case ${1:-} in
  ensure) ensure ;;
  stop) stop ;;
  status) if answers; then echo "dockerd answers on $socket"; else echo "no Docker daemon answers on $socket"; exit 1; fi ;;
  *) die "usage: $0 ensure|stop|status" ;;
esac
