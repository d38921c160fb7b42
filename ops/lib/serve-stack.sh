# Sourced by the ops scripts that check a running `imagequeue serve` from outside
# (ops/api-conformance.sh, ops/browser-check.sh): messages, installs, free ports, waiting on
# a condition, and a private stack (redis-server, serve, a placeholder worker) in a temporary
# folder, every process stopped by pid on exit. Set `tag` (the message prefix) and `binary`
# (the imagequeue executable) before calling `start_stack`. The worker is the lean
# `imagequeue-worker` built beside `binary` (as Tests/run.sh builds both, and as the Swift
# tests find it), or IMAGEQUEUE_WORKER_BINARY; `binary worker` only when neither exists.

say() { printf '[%s] %s\n' "$tag" "$*"; }
fail() { printf '[%s] FAIL: %s\n' "$tag" "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    say "installing $* (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

free_port() {  # a port nothing listens on, picked by the kernel
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {  # seconds, description, command...: polls the command until it succeeds
    local seconds="$1" what="$2"; shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
        sleep 0.2
    done
}

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

# Set `status=0` when every check has passed; until then the exit status is a failure and
# the logs' last lines are printed. KEEP_WORK=1 keeps the folder.
status=1
server_pid=""
worker_pid=""
work="$(mktemp -d "${TMPDIR:-/tmp}/iq-$tag.XXXXXX")"
redis_pidfile="$work/redis.pid"

stop_stack() {
    local rc=$?
    if [ "$status" -ne 0 ] && [ "$rc" -eq 0 ]; then rc=1; fi
    set +e
    stop_pid "$worker_pid" worker
    stop_pid "$server_pid" server
    if [ -f "$redis_pidfile" ]; then stop_pid "$(cat "$redis_pidfile")" redis-server; fi
    if [ "$status" -ne 0 ]; then
        for log in server worker redis; do
            [ -s "$work/$log.log" ] || continue
            printf '[%s] --- last lines of %s.log ---\n' "$tag" "$log" >&2
            tail -n 25 "$work/$log.log" >&2
        done
        [ "${KEEP_WORK:-0}" = 1 ] && say "kept $work"
    fi
    [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$work"
    exit "$rc"
}
trap stop_stack EXIT
trap 'exit 130' INT TERM

# Starts redis-server, `imagequeue serve` (token in IMAGEQUEUE_API_TOKEN, rate limit off,
# models flux and sdxl) and one placeholder worker (its environment: the arguments, e.g.
# IMAGEQUEUE_PLACEHOLDER_DELAY=1). Sets redis_port, redis_url, url, server_pid, worker_pid,
# worker_binary.
start_stack() {
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    command -v redis-cli >/dev/null 2>&1 || apt_install redis-tools
    command -v curl >/dev/null 2>&1 || apt_install curl
    [ -x "$binary" ] || fail "no imagequeue binary at $binary"
    "$binary" serve --help >/dev/null 2>&1 || fail "$binary has no 'serve' command"

    local http_port
    redis_port="$(free_port)" || fail "no free port for redis-server"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize yes --pidfile "$redis_pidfile" --dir "$work" --logfile "$work/redis.log"
    wait_for 10 "redis-server" redis-cli -p "$redis_port" ping
    wait_for 5 "redis pid file" test -s "$redis_pidfile"
    redis_url="redis://127.0.0.1:$redis_port"
    say "redis-server on $redis_url (pid $(cat "$redis_pidfile"))"

    IMAGEQUEUE_API_TOKEN="$tag-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
    export IMAGEQUEUE_API_TOKEN
    # Requests should reach validation and the queue, not a per-user 429 after the first few.
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

    local worker_command
    worker_binary="${IMAGEQUEUE_WORKER_BINARY:-$(dirname "$binary")/imagequeue-worker}"
    case "$worker_binary" in /*) ;; *) worker_binary="$(pwd)/$worker_binary" ;; esac
    if [ -x "$worker_binary" ]; then
        worker_command=("$worker_binary")
    elif [ -n "${IMAGEQUEUE_WORKER_BINARY:-}" ]; then
        fail "no imagequeue-worker at $worker_binary (IMAGEQUEUE_WORKER_BINARY)"
    else
        worker_binary="$binary"
        worker_command=("$binary" worker)
    fi
    env "$@" "${worker_command[@]}" --backend placeholder --models flux,sdxl --redis "$redis_url" >"$work/worker.log" 2>&1 &
    worker_pid=$!
    wait_for 30 "the placeholder worker to register" \
        bash -c "curl -fsS '$url/v1/workers' | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin) else 1)'"
    say "placeholder worker: ${worker_command[*]} (pid $worker_pid)"
}
