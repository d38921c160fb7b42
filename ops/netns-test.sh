#!/usr/bin/env bash
# Workers on several hosts, proven with network namespaces (docs/MULTIHOST.md).
#
# Builds three network namespaces joined by a bridge: Redis on one (10.X.Y.1), a worker on
# each of the two others (hostA 10.X.Y.2, hostB 10.X.Y.3). Runs jobs, cuts host A's link
# mid-job (its bridge port goes down: a silent partition), and checks that host B recovers
# the job after the lease, that host A's late completion is refused (STALE_TOKEN) and that
# every job completes exactly once. The run itself is ops/netns_test.py, started inside the
# Redis namespace.
#
# Usage: bash ops/netns-test.sh [--binary PATH] [--lease SECONDS] [--delay SECONDS] [--keep]
#   --binary PATH    the imagequeue executable (default .build/debug/imagequeue)
#   --lease SECONDS  the workers' --lease-seconds (default 3)
#   --delay SECONDS  how long the placeholder backend takes per image (default 4)
#   --keep           keep the work directory (Redis's and each worker's log)
# Exit status: 0 passed, or skipped ("SKIP: <reason>": not root, or namespaces, veth or
# bridges cannot be made here); 1 a check failed; 2 a usage or setup error.
# Needs root, iproute2, redis-server, python3 with redis-py (bash ops/install-deps.sh --tests).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

binary=$repo/.build/debug/imagequeue
lease=3
delay=4
keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=${2:?--binary needs a path}; shift 2 ;;
    --lease) lease=${2:?--lease needs seconds}; shift 2 ;;
    --delay) delay=${2:?--delay needs seconds}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "netns-test: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
number='^[0-9]+([.][0-9]+)?$'
[[ $lease =~ $number ]] && [[ $delay =~ $number ]] && awk -v l="$lease" 'BEGIN { exit !(l >= 1) }' \
  || { echo "netns-test: --lease takes seconds >= 1 (the worker's minimum), --delay seconds" >&2; exit 2; }

skip() { echo "SKIP: $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
command -v ip >/dev/null 2>&1 || skip "ip (iproute2) is not installed"
[ -f "$binary" ] && [ -x "$binary" ] || { echo "netns-test: $binary is not an executable (build it, or pass --binary)" >&2; exit 2; }
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")
cd "$repo"
command -v redis-server >/dev/null 2>&1 || { echo "netns-test: redis-server is missing (bash ops/install-deps.sh --tests)" >&2; exit 2; }
python3 -c 'import redis' 2>/dev/null || { echo "netns-test: redis-py is missing (bash ops/install-deps.sh --tests)" >&2; exit 2; }

name=iqtest-$$
ns_redis=$name-redis ns_a=$name-hostA ns_b=$name-hostB
# A private /24 per run (parallel runs never share one, though namespaces keep them apart anyway).
subnet="10.$(( ($$ >> 8) & 255 )).$(( $$ & 255 ))"

# --- Can namespaces, veth pairs and bridges be made here? ------------------------------------
probe=$name-probe
if ! error=$(ip netns add "$probe" 2>&1); then
  skip "cannot create a network namespace here (ip netns add: ${error:-failed})"
fi
probe_error=""
error=$(ip -n "$probe" link add probe0 type veth peer name probe1 2>&1) || probe_error="veth: $error"
if [ -z "$probe_error" ]; then
  error=$(ip -n "$probe" link add probebr type bridge 2>&1) || probe_error="bridge: $error"
fi
ip netns del "$probe" 2>/dev/null || true
[ -z "$probe_error" ] || skip "cannot create network devices in a namespace ($probe_error)"

# --- Clean up everything on exit ---------------------------------------------------------
work=$(mktemp -d /tmp/imagequeue-netns.XXXXXX)
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for ns in "$ns_a" "$ns_b" "$ns_redis"; do
    # Every process in these namespaces was started by this run.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  done
  for _ in $(seq 1 50); do
    left=""
    for ns in "$ns_a" "$ns_b" "$ns_redis"; do left+=$(ip netns pids "$ns" 2>/dev/null); done
    [ -z "$left" ] && break
    sleep 0.1
  done
  for ns in "$ns_a" "$ns_b" "$ns_redis"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ "$keep" -eq 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Three hosts on one bridge -------------------------------------------------------------
for ns in "$ns_redis" "$ns_a" "$ns_b"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip -n "$ns_redis" link add iq-redis type bridge
ip -n "$ns_redis" addr add "$subnet.1/24" dev iq-redis
ip -n "$ns_redis" link set iq-redis up
host=2
for pair in "hostA:$ns_a" "hostB:$ns_b"; do
  label=${pair%%:*} ns=${pair#*:}
  # Made directly in their namespaces: no name is ever taken in the caller's namespace.
  ip link add "iq-$label" netns "$ns" type veth peer name "port-$label" netns "$ns_redis"
  ip -n "$ns_redis" link set "port-$label" master iq-redis up
  ip -n "$ns" addr add "$subnet.$host/24" dev "iq-$label"
  ip -n "$ns" link set "iq-$label" up
  host=$((host + 1))
done

ip netns exec "$ns_redis" redis-server --bind "$subnet.1" --port 6379 --protected-mode no --save '' \
  --appendonly no --dir "$work" --daemonize yes --pidfile "$work/redis.pid" --logfile "$work/redis.log" >/dev/null
for _ in $(seq 1 100); do
  ip netns exec "$ns_redis" redis-cli -h "$subnet.1" ping >/dev/null 2>&1 && break
  sleep 0.05
done
for ns in "$ns_a" "$ns_b"; do
  ip netns exec "$ns" redis-cli -h "$subnet.1" ping >/dev/null 2>&1 \
    || { echo "netns-test: Redis at $subnet.1 does not answer from $ns" >&2; exit 2; }
done
echo "namespaces $ns_redis, $ns_a, $ns_b on $subnet.0/24; Redis at $subnet.1:6379"

status=0
# In the background, so that INT and TERM stop the run at once (the trap cleans up).
ip netns exec "$ns_redis" python3 ops/netns_test.py --binary "$binary" --redis "redis://$subnet.1:6379" \
  --lease "$lease" --delay "$delay" --ns-a "$ns_a" --ns-b "$ns_b" --port-a port-hostA --work "$work" &
wait $! || status=$?
exit "$status"
