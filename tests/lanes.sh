#!/usr/bin/env bash
# `make test` with no PYTEST_ARGS: two pytest sessions side by side. The node lane (tests/cluster
# and tests/images: docker builds and a real kubelet, mostly waiting on pods; then the chaos
# run's short schedule, about 4 minutes of its own private platform, to even out the lanes) runs
# in the background, every other tier in the foreground; the run fails if either lane fails.
# Each lane has its own --basetemp, so their fixtures never share a folder. After both lanes the
# leak scan reads every file under the basetemp (the lanes' output, every process and pod log,
# the pg_dumps and topic dumps the fixtures wrote, the data directories) and fails the run on
# any plaintext PAN or personal value (tests/leakscan.py, docs/data-protection.md).
#
# usage: tests/lanes.sh PYTEST BASETEMP
set -uo pipefail
pytest=$1
basetemp=$2
node_tiers=(tests/cluster tests/images tests/e2e/test_chaos.py)
# A fresh basetemp: the scan must read this run's files only.
rm -rf "$basetemp"
mkdir -p "$basetemp"
node_log=$basetemp/node-lane.log

# The node lane first builds the images (`make images`: seconds when cached, 10-15 minutes on a
# fresh machine) outside pytest, so a cold build is not cut off by a test's timeout (the cluster
# fixture's setup counts against the first test's 300 s).
node_lane() {
  "$(dirname "$pytest")/python" "$(dirname "$0")/../images/build.py" --output "$basetemp/images.json" || {
    echo "lanes: make images failed (above); the node lane did not run"
    return 1
  }
  # exec: node_pid is then pytest itself, whose SIGTERM handler tears the fixtures down.
  exec "$pytest" --basetemp="$basetemp/node" "${node_tiers[@]}"
}
node_lane >"$node_log" 2>&1 &
node_pid=$!
stop_node_lane() {
  # SIGTERM tears the node lane's fixtures down like Ctrl-C does (tests/conftest.py).
  kill -TERM "$node_pid" 2>/dev/null
  wait "$node_pid"
  exit 130
}
trap stop_node_lane INT TERM
echo "lanes: ${node_tiers[*]} run in the background (follow: tail -f $node_log)"

"$pytest" --basetemp="$basetemp/main" tests $(printf -- '--ignore=%s ' "${node_tiers[@]}") 2>&1 |
  tee "$basetemp/main-lane.log"
main_status=${PIPESTATUS[0]}

echo "lanes: waiting for ${node_tiers[*]} ..."
wait "$node_pid"
node_status=$?
trap - INT TERM
echo "==================== ${node_tiers[*]} (log: $node_log) ===================="
cat "$node_log"
echo "lanes: other tiers exited $main_status, ${node_tiers[*]} exited $node_status"
scan_started=$SECONDS
"$(dirname "$pytest")/python" -m tests.leakscan "$basetemp"
scan_status=$?
echo "lanes: the leak scan took $((SECONDS - scan_started)) s and exited $scan_status"
if ((main_status != 0)); then exit "$main_status"; fi
if ((node_status != 0)); then exit "$node_status"; fi
exit "$scan_status"
