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
# another with an API token, both from that binary, and a placeholder worker (flux, sdxl: the
# imagequeue-worker built beside it, or IMAGEQUEUE_WORKER_BINARY), then
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

tag=api-conformance
# shellcheck source=ops/lib/serve-stack.sh
. "$root/ops/lib/serve-stack.sh"
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:-}"; shift 2 ;;
        --max-examples) max_examples="${2:-}"; shift 2 ;;
        --max-time) max_time="${2:-}"; shift 2 ;;
        -h|--help) usage; status=0; exit 0 ;;
        *) usage >&2; fail "unknown argument: $1" ;;
    esac
done
[ -n "$binary" ] || { usage >&2; fail "--binary PATH_TO_imagequeue is required"; }
case "$binary" in /*) ;; *) binary="$root/$binary" ;; esac
# --- tools -------------------------------------------------------------------------------
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

# --- redis, serve and a placeholder worker (ops/lib/serve-stack.sh) --------------------------
start_stack
token="$IMAGEQUEUE_API_TOKEN"

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
