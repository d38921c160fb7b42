#!/usr/bin/env bash
# Browser check of the dashboard served by `imagequeue serve`: the page at GET / and a job's
# page at GET /jobs/{id}, in headless Chromium. Tests/run.sh runs it with the release binaries.
#
#   IMAGEQUEUE_BINARY=.build/release/imagequeue bash ops/browser-check.sh
#   (serve from .build/release/imagequeue, the worker .build/release/imagequeue-worker)
#
# Builds nothing: it runs the given binary (default .build/debug/imagequeue) and the lean
# worker built beside it (imagequeue-worker; IMAGEQUEUE_WORKER_BINARY overrides, and
# `imagequeue worker` stands in when there is none). It installs Debian's `chromium` when
# missing, starts a private redis-server on a free loopback port, `imagequeue serve` and one
# placeholder worker (flux, sdxl), enqueues a few jobs, makes one
# fail (a malformed pending entry the worker dead-letters), then drives the page with
# ops/browser_check.py (DevTools protocol over a pipe) and checks that
#   - the page shows jobs enqueued while it is open going through "Running now" to the
#     completions without a reload (the live event stream);
#   - every control has a label, and Tab moves through real links and controls;
#   - the API token is asked for once and kept in sessionStorage only; a refused change shows
#     the API's message (an empty prompt, a concurrency of 0);
#   - concurrency set from the page reaches the queue; a job enqueued from the page completes;
#   - Pause shows the model paused and stops its claims (a job stays queued while the other
#     model's job completes); Resume starts them again;
#   - the search box opens a job's page, whose Cancel ends the job `cancelled`;
#   - Purge dead asks for a second click, then empties the dead list;
#   - the charts (GET /v1/stats) have points after the run;
#   - a completed job's page shows its whole timeline (as GET /v1/jobs/{id} has it) and image;
#   - a prompt containing HTML is shown as text, on the dashboard and on its job page;
#   - both pages fit a 360 px wide screen; no request leaves the server;
#   - no console error or uncaught exception happened meanwhile (but the two refusals asked for).
# It saves screenshots to docs/dashboard.png and docs/job.png (DASHBOARD_SCREENSHOT and
# JOB_SCREENSHOT override). Exit 0 when every check passes. Every process it starts is stopped
# by pid on exit; nothing it prints holds the API token.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
binary="${IMAGEQUEUE_BINARY:-.build/debug/imagequeue}"
case "$binary" in /*) ;; *) binary="$root/$binary" ;; esac
screenshot="${DASHBOARD_SCREENSHOT:-$root/docs/dashboard.png}"
case "$screenshot" in /*) ;; *) screenshot="$root/$screenshot" ;; esac
job_screenshot="${JOB_SCREENSHOT:-$root/docs/job.png}"
case "$job_screenshot" in /*) ;; *) job_screenshot="$root/$job_screenshot" ;; esac

tag=browser-check
# shellcheck source=ops/lib/serve-stack.sh
. "$root/ops/lib/serve-stack.sh"

[ -x "$binary" ] || fail "no imagequeue binary at $binary (build it, or set IMAGEQUEUE_BINARY)"
"$binary" serve --help >/dev/null 2>&1 || fail "$binary has no 'serve' command"

# --- tools -------------------------------------------------------------------------------
command -v chromium >/dev/null 2>&1 || apt_install chromium
command -v python3 >/dev/null 2>&1 || apt_install python3

# --- redis, serve and a slow placeholder worker (ops/lib/serve-stack.sh) ---------------------
start_stack IMAGEQUEUE_PLACEHOLDER_DELAY=1

# --- jobs ------------------------------------------------------------------------------------
ids=()
enqueue() {  # model, user, [--no-enhance], prompt
    local id
    id="$("$binary" enqueue --redis "$redis_url" "$@")" || fail "enqueue $* failed"
    ids+=("$id")
    say "enqueued $id"
}
enqueue --model flux --user ada "a lighthouse at dawn, waves crashing on black rocks"
enqueue --model sdxl --user grace --no-enhance "a red fox curled up in fresh snow, watercolor"
enqueue --model flux --user ada "a tiny robot watering a bonsai tree on a windowsill"
enqueue --model sdxl --user linus "neon-lit alley in the rain, cinematic, 35mm"
# A prompt that is also HTML: the page must show it as text.
enqueue --model flux --user mallory '<i class="xss-probe">probe</i> a paper boat & a "quoted" moon'
xss_id="${ids[-1]}"

completed_total() {
    "$binary" queues --redis "$redis_url" --json |
        python3 -c 'import json,sys; print(sum(q.get("completed_total", 0) for q in json.load(sys.stdin).values()))'
}
dead_total() {
    "$binary" queues --redis "$redis_url" --json |
        python3 -c 'import json,sys; print(sum(q.get("dead", 0) for q in json.load(sys.stdin).values()))'
}
at_least() { [ "$("$1")" -ge "$2" ]; }
wait_for 90 "3 completed jobs" at_least completed_total 3

# One failed job: a pending entry without a job hash is dead-lettered (malformed_job) at the
# next claim; enqueueing one more job rings the workers' doorbell.
redis-cli -p "$redis_port" ZADD 'iq:{flux}:pending' 0 flux-broken >/dev/null
enqueue --model flux --user ada "an origami crane on a wooden desk, soft morning light"
wait_for 60 "the malformed job to be dead-lettered" at_least dead_total 1
wait_for 90 "every job to complete" at_least completed_total "${#ids[@]}"
say "$(completed_total) completed, $(dead_total) dead"

# --- browser -----------------------------------------------------------------------------------
# Chromium's --screenshot/--dump-dom with --virtual-time-budget never finish on this page:
# virtual time pauses while a network fetch is pending, and the live event stream
# (GET /v1/events) is a fetch that never ends. So the page is driven in real time over the
# DevTools protocol on a pipe (--remote-debugging-pipe, no extra packages), by
# ops/browser_check.py: every check there waits on a condition, none on a fixed time.
mkdir -p "$(dirname "$screenshot")" "$(dirname "$job_screenshot")"
rm -f "$screenshot" "$job_screenshot"
dom="$work/dom.html"
live_ids="$work/live-ids"
python3 "$root/ops/browser_check.py" --url "$url" --redis "$redis_url" --binary "$binary" --xss-id "$xss_id" \
    --dashboard-shot "$screenshot" --job-shot "$job_screenshot" --live-ids "$live_ids" --dom "$dom" --log "$work/chromium.log" -- \
    chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --no-default-browser-check \
    --disable-background-networking --disable-component-update --disable-sync --metrics-recording-only \
    --window-size=1400,1400 --user-data-dir="$work/chromium" ||
    fail "the page checks in Chromium failed"
[ -s "$job_screenshot" ] || fail "no job page screenshot written"
[ -s "$screenshot" ] || fail "no screenshot written"
say "screenshot: $screenshot"

# --- checks on the rendered DOM -----------------------------------------------------------------
completed_ids=()
for id in "${ids[@]}" $(cat "$live_ids"); do
    state="$("$binary" status --redis "$redis_url" --json "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')"
    [ "$state" = completed ] && completed_ids+=("$id")
done
[ "${#completed_ids[@]}" -ge 3 ] || fail "fewer than 3 jobs completed"

shown=0
for id in "${completed_ids[@]}"; do
    if grep -qF "data-status=\"completed\" data-job-id=\"$id\"" "$dom"; then shown=$((shown + 1)); fi
done
[ "$shown" -ge 3 ] || fail "the page shows $shown of ${#completed_ids[@]} completed jobs (expected at least 3)"
say "page shows $shown completed jobs"

grep -qF 'data-status="failed" data-job-id="flux-broken"' "$dom" || fail "the failed job flux-broken is not shown"
grep -qF 'malformed_job' "$dom" || fail "the failed job's error code is not shown"
grep -qF 'data-worker-id=' "$dom" || fail "no worker is shown"
{ grep -qF 'data-model="flux"' "$dom" && grep -qF 'data-model="sdxl"' "$dom"; } || fail "queue cards are missing"
grep -qF 'xss-probe' "$dom" || fail "the HTML-looking prompt is not shown"
if grep -qF '<i class="xss-probe">' "$dom"; then fail "a prompt was inserted as HTML (escaping is broken)"; fi
say "failed job, worker, queue cards and escaped prompt are shown"

status=0
say "OK"
