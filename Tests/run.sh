#!/usr/bin/env bash
# Runs ImageQueue's whole test suite on a fresh Debian machine:
# installs what is missing (ops/install-deps.sh: redis-server, libhiredis-dev,
# libcurl4-openssl-dev, redis-py, chromium),
# starts a private redis-server on a free loopback port, builds the release executables (as
# ops/Dockerfile does: every process-level test runs them) and the tests, runs the short chaos run
# (ops/chaos.py, with its own Redis), the short Sentinel failover run (ops/failover.py, with its
# own master, replicas and sentinels), the network-namespace run (ops/netns-test.sh), the
# API's conformance to docs/openapi.yaml (ops/api-conformance.sh, schemathesis), the dashboard
# in headless Chromium (ops/browser-check.sh: Debian's chromium, its own Redis, serve and worker)
# and `swift test`, and stops that server by its pid.
# Usage: bash Tests/run.sh [extra swift test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

# --- System packages -------------------------------------------------------------------
bash ops/install-deps.sh --tests

# --- A private Redis for the suite -----------------------------------------------------
workdir=$(mktemp -d /tmp/imagequeue-tests.XXXXXX)
port=""
for _ in $(seq 1 50); do
  candidate=$(( (RANDOM % 10000) + 20000 ))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then port=$candidate; break; fi
done
[ -n "$port" ] || { echo "no free port found" >&2; exit 1; }
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$workdir" \
  --daemonize yes --pidfile "$workdir/redis.pid" --logfile "$workdir/redis.log" >/dev/null
cleanup() {
  if [ -f "$workdir/redis.pid" ]; then kill "$(cat "$workdir/redis.pid")" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
export IMAGEQUEUE_TEST_REDIS_URL="redis://127.0.0.1:$port"
log "redis-server $(redis-server --version | awk '{print $3}') on 127.0.0.1:$port (pid $(cat "$workdir/redis.pid"))"

# --- Build and test -------------------------------------------------------------------
# Every test that starts our processes (worker, serve, telegram, CLI, cluster, chaos,
# namespaces) runs the release executables, built exactly as ops/Dockerfile builds them
# (the same flags; Package.swift adds imagequeue-worker's linker settings and order file).
# The in-process unit suites run on the debug build.
log "building the release executables (as ops/Dockerfile does)"
swift build -c release --product imagequeue --static-swift-stdlib
swift build -c release --product imagequeue-worker --static-swift-stdlib
release_bin=$(swift build -c release --show-bin-path)
log "building the tests (debug)"
swift build --build-tests
export IMAGEQUEUE_BINARY="$release_bin/imagequeue"
# The Swift tests find the lean worker beside IMAGEQUEUE_BINARY; the ops scripts that start a
# stack of their own (ops/lib/serve-stack.sh) take it from here.
export IMAGEQUEUE_WORKER_BINARY="$release_bin/imagequeue-worker"
log "process tests run $IMAGEQUEUE_BINARY and $IMAGEQUEUE_WORKER_BINARY"
# About a minute of workers killed every second, Redis restarted and frozen (docs/CHAOS.md).
# Before swift test, so that the suite's summary stays the last line.
log "chaos (short)"
python3 ops/chaos.py --short --binary "$IMAGEQUEUE_BINARY"
# The Redis master SIGKILLed under load behind three sentinels, with WAIT 0 and WAIT 1 (docs/CHAOS.md).
log "Sentinel failover (short)"
python3 ops/failover.py --short --binary "$IMAGEQUEUE_BINARY"
# Workers on two hosts (network namespaces), one cut off mid-job; SKIPs without root (docs/MULTIHOST.md).
log "workers on several hosts (network namespaces)"
bash ops/netns-test.sh --binary "$IMAGEQUEUE_BINARY"
# The HTTP API against its own spec: schemathesis --checks all, bounded to two minutes.
log "serve against docs/openapi.yaml (schemathesis)"
bash ops/api-conformance.sh --binary "$IMAGEQUEUE_BINARY"
# The dashboard and a job's page driven in a real browser (docs/OPERATIONS.md, "The dashboard").
# Its screenshots go to the suite's scratch folder, so a test run leaves the checkout as it was;
# `bash ops/browser-check.sh` on its own refreshes docs/dashboard.png and docs/job.png.
log "the dashboard in headless Chromium"
IMAGEQUEUE_BINARY="$IMAGEQUEUE_BINARY" IMAGEQUEUE_WORKER_BINARY="$IMAGEQUEUE_WORKER_BINARY" \
  DASHBOARD_SCREENSHOT="$workdir/dashboard.png" JOB_SCREENSHOT="$workdir/job.png" bash ops/browser-check.sh
log "testing"
swift test --skip-build "$@"
