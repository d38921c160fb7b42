#!/usr/bin/env bash
# Checks `imagequeue serve` against docs/openapi.yaml with schemathesis (property-based:
# generated valid and invalid requests, every check: status codes, content types, headers,
# response schemas, refused invalid data, accepted valid data, 405 + Allow for other methods,
# auth that is not ignored).
#
#   bash ops/api-conformance.sh --binary .build/debug/imagequeue [--max-examples N] [--max-time SECONDS]
#
# Builds nothing: it runs the given binary. It installs schemathesis (pinned below) with pip
# when missing, starts a private redis-server on a free loopback port, `imagequeue serve` on
# another with an API token, and a placeholder worker (flux, sdxl), all from that binary, then
# runs `schemathesis run docs/openapi.yaml --checks all` with the token. The run is bounded
# (examples per operation, a time budget) and deterministic (`--generation-deterministic`:
# the same requests each run, no example database), so a failure reproduces. Every process it
# starts is stopped by pid on exit. Exit 0 when schemathesis reports no failure; otherwise
# its report is printed and the exit status is non-zero.
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
binary=""
max_examples=25
max_time=120

say() { printf '[api-conformance] %s\n' "$*"; }
fail() { printf '[api-conformance] FAIL: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:-}"; shift 2 ;;
        --max-examples) max_examples="${2:-}"; shift 2 ;;
        --max-time) max_time="${2:-}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; fail "unknown argument: $1" ;;
    esac
done
[ -n "$binary" ] || { usage >&2; fail "--binary PATH_TO_imagequeue is required"; }
case "$binary" in /*) ;; *) binary="$root/$binary" ;; esac
[ -x "$binary" ] || fail "no imagequeue binary at $binary"
"$binary" serve --help >/dev/null 2>&1 || fail "$binary has no 'serve' command"

# --- tools -------------------------------------------------------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    say "installing $* (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v redis-server >/dev/null 2>&1 || apt_install redis-server
command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools
command -v curl >/dev/null 2>&1 || apt_install curl
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip

installed_version() { python3 -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true; }
if [ "$(installed_version)" != "$SCHEMATHESIS_VERSION" ]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION (pip)"
    python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION" 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages "schemathesis==$SCHEMATHESIS_VERSION"
fi
[ "$(installed_version)" = "$SCHEMATHESIS_VERSION" ] || fail "schemathesis $SCHEMATHESIS_VERSION did not install"
# The module, not a `schemathesis` on PATH: that may belong to another Python.
schemathesis=(python3 -m schemathesis.cli)

# --- cleanup (by pid only) -------------------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/iq-api-conformance.XXXXXX")"
server_pid=""
worker_pid=""
redis_pidfile="$work/redis.pid"
status=1

stop_pid() {  # pid, name: SIGTERM, up to 10 s, then SIGKILL
    local pid="$1" name="$2"
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "$name (pid $pid) did not stop on SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    if [ "$status" -ne 0 ] && [ "$rc" -eq 0 ]; then rc=1; fi
    set +e
    stop_pid "$worker_pid" worker
    stop_pid "$server_pid" server
    if [ -f "$redis_pidfile" ]; then stop_pid "$(cat "$redis_pidfile")" redis-server; fi
    if [ "$status" -ne 0 ]; then
        for log in server worker redis; do
            [ -s "$work/$log.log" ] || continue
            printf '[api-conformance] --- last lines of %s.log ---\n' "$log" >&2
            tail -n 25 "$work/$log.log" >&2
        done
        [ "${KEEP_WORK:-0}" = 1 ] && say "kept $work"
    fi
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {  # a port nothing listens on, picked by the kernel
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_for() {  # seconds, description, command...
    local seconds="$1" what="$2"; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
        sleep 0.2
    done
}

# --- redis ---------------------------------------------------------------------------------
redis_port="$(free_port)" || fail "no free port for redis-server"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize yes --pidfile "$redis_pidfile" --dir "$work" --logfile "$work/redis.log"
wait_for 10 "redis-server" redis-cli -p "$redis_port" ping
wait_for 5 "redis pid file" test -s "$redis_pidfile"
redis_url="redis://127.0.0.1:$redis_port"
say "redis-server on $redis_url (pid $(cat "$redis_pidfile"))"

# --- server and worker -----------------------------------------------------------------------
token="conformance-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export IMAGEQUEUE_API_TOKEN="$token"
# Generated enqueues should reach validation and the queue, not a per-user 429 after the first
# few (429 is declared and tested by Tests/ServeTests).
export IMAGEQUEUE_RATE_LIMIT=off
export IMAGEQUEUE_MODELS=flux,sdxl
export IMAGEQUEUE_OUTPUT_DIR="$work/output"
unset IMAGEQUEUE_REDIS_URL IMAGEQUEUE_PREFIX

http_port="$(free_port)" || fail "no free port for the server"
"$binary" serve --redis "$redis_url" --host 127.0.0.1 --port "$http_port" >"$work/server.log" 2>&1 &
server_pid=$!
url="http://127.0.0.1:$http_port"
wait_for 30 "GET $url/readyz" curl -fsS "$url/readyz"
say "imagequeue serve on $url (pid $server_pid)"

"$binary" worker --backend placeholder --models flux,sdxl --redis "$redis_url" >"$work/worker.log" 2>&1 &
worker_pid=$!
wait_for 30 "the placeholder worker to register" \
    bash -c "curl -fsS '$url/v1/workers' | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin) else 1)'"
say "placeholder worker (pid $worker_pid)"

# --- schemathesis -----------------------------------------------------------------------------
# All checks but one: use_after_free wants every read of a DELETEd resource to be a 404, but
# DELETE /v1/jobs/{id} cancels a queued job and does not remove it: the spec says the job
# stays readable (status `cancelled`, its `cancelled` event) like any finished job. It is the
# only DELETE whose resource has reads (DELETE /v1/dead/{model} has none), so the check has
# nothing else to look at. (Per-operation `enabled = false` in the config file did not take
# effect in this version's stateful phase.)
# Event streams are read to their end by schemathesis: /v1/events never ends, and
# /v1/jobs/{id}/events only after a terminal status, so a request timeout bounds them.
# What the schema cannot know: which models this deployment serves. The spec says any
# `^[a-z0-9_]{1,32}$` name may be sent and that one not served is a 400 `unknown_model`; the
# generated bodies name the models served here, so valid bodies can be told to be accepted.
# (Unknown models in the /v1/dead/{model} paths stay generated: they must be a 404.)
cat >"$work/schemathesis.toml" <<'TOML'
[dictionaries.models]
values = ["flux", "sdxl"]

[parameters]
"body.model" = { dictionary = "models" }

TOML
say "schemathesis $SCHEMATHESIS_VERSION: run docs/openapi.yaml --checks all (at most $max_examples examples per operation, ${max_time}s, deterministic)"
set +e
(cd "$work" && "${schemathesis[@]}" --config-file "$work/schemathesis.toml" run "$root/docs/openapi.yaml" \
    --url "$url" \
    --header "Authorization: Bearer $token" \
    --checks all \
    --exclude-checks use_after_free \
    --max-examples "$max_examples" \
    --generation-deterministic \
    --max-time "$max_time" \
    --request-timeout 5 \
    --workers 1 \
    --no-color \
    --output-truncate false) 2>&1 | tee "$work/schemathesis.log"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
    fail "schemathesis reported failures (exit $rc); its report is above"
fi
kill -0 "$server_pid" 2>/dev/null || fail "imagequeue serve died during the run"
status=0
say "OK: the server conforms to docs/openapi.yaml"
