#!/usr/bin/env bash
# ImageQueue next to the peers (Sidekiq, RQ, huey, arq, dramatiq, Celery) in one run: starts a
# private Redis (loopback, no persistence), prints the shared redis-benchmark reference numbers,
# runs the shared harness with ImageQueue's rows added (ops/bench/peers.py), then stops that Redis.
#   bash ops/bench/peers.sh --quiet-wait 20
#   bash ops/bench/peers.sh --only imagequeue-c1,imagequeue-c256,sidekiq-c1
#   SKIP_REDIS_BENCHMARK=1 bash ops/bench/peers.sh --list
# Needs: redis-server, redis-tools, ruby-sidekiq (apt), and a venv at $PEERS_VENV (default
# /tmp/peers-venv) with rq arq 'dramatiq[redis]' huey 'celery[redis]' psutil redis, pinned so pip
# does not backtrack to a kombu that breaks: 'redis[hiredis]>=4.5.2,<=5.2.1' 'kombu[redis]==5.5.4'
# celery==5.5.3 (arq 0.28 needs redis < 6); release
# builds of imagequeue-worker and imagequeue-bench (IMAGEQUEUE_WORKER_BINARY, IMAGEQUEUE_BENCH_BINARY, or
# .build/release/). Results: $PEERS_OUT (default /tmp/imagequeue-peers-results).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEERS_DIR=${PEERS_DIR:-$(cd "$ROOT/.." && pwd)/shared/peers}
PORT=${PORT:-6393}
PIDFILE=${PIDFILE:-/tmp/imagequeue-peers-redis.pid}
VENV=${PEERS_VENV:-/tmp/peers-venv}
OUT=${PEERS_OUT:-/tmp/imagequeue-peers-results}
export PEERS_DIR PEERS_OUT="$OUT"
mkdir -p "$OUT"

if [ ! -f "$PEERS_DIR/run.py" ]; then
  echo "!! no peers harness at $PEERS_DIR (set PEERS_DIR)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "!! no Python venv at $VENV (see the header of this script)" >&2
  exit 1
fi
if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
  echo "!! something already answers on port $PORT; refusing to reuse it (stop it, or set PORT)" >&2
  exit 1
fi
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize yes --pidfile "$PIDFILE" --logfile "$OUT/redis.log"
stop_redis() {
  if [ -s "$PIDFILE" ]; then kill "$(cat "$PIDFILE")" 2>/dev/null || true; fi
}
trap stop_redis EXIT
for _ in $(seq 1 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

if [ "${SKIP_REDIS_BENCHMARK:-0}" != 1 ]; then
  "$PEERS_DIR/redis_bench.sh" "$PORT" | tee "$OUT/redis-benchmark-$(date +%Y%m%d-%H%M%S).txt"
fi
"$VENV/bin/python" "$ROOT/ops/bench/peers.py" --url "redis://127.0.0.1:$PORT/0" "$@"
