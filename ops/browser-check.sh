#!/usr/bin/env bash
# Browser check of the dashboard served by `imagequeue serve` at GET /.
#
#   IMAGEQUEUE_BINARY=.build/debug/imagequeue bash ops/browser-check.sh
#
# Builds nothing: it runs the given binary (default .build/debug/imagequeue). It installs
# Debian's `chromium` when missing, starts a private redis-server on a free loopback port,
# `imagequeue serve` and one placeholder worker (flux, sdxl), enqueues a few jobs, makes one
# fail (a malformed pending entry the worker dead-letters), then with headless Chromium
#   - loads the page, enqueues more jobs with it open and checks they go through "Running now"
#     to the completions without a reload (the live event stream), with no script errors,
#   - saves a screenshot to docs/dashboard.png (DASHBOARD_SCREENSHOT overrides),
#   - checks the rendered DOM shows the completed jobs, the failed one, the queue cards, the
#     worker, and that a prompt containing HTML was rendered as text.
# Exit 0 when every check passes. Every process it starts is stopped by pid on exit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$(pwd)"
binary="${IMAGEQUEUE_BINARY:-.build/debug/imagequeue}"
case "$binary" in /*) ;; *) binary="$root/$binary" ;; esac
screenshot="${DASHBOARD_SCREENSHOT:-$root/docs/dashboard.png}"
case "$screenshot" in /*) ;; *) screenshot="$root/$screenshot" ;; esac

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
# DevTools protocol on a pipe (--remote-debugging-pipe, no extra packages): load it, wait
# until the snapshot is rendered, enqueue more jobs and watch them go running → completed
# without a reload, then take the screenshot and the DOM.
mkdir -p "$(dirname "$screenshot")"
rm -f "$screenshot"
dom="$work/dom.html"
live_ids="$work/live-ids"
IQ_BINARY="$binary" IQ_REDIS="$redis_url" python3 - "$url/" "$screenshot" "$dom" "$live_ids" "$work/chromium.log" \
    chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --no-default-browser-check --window-size=1400,1000 --user-data-dir="$work/chromium" <<'PY' ||
import json, os, select, subprocess, sys, time

url, shot_path, dom_path, ids_path, log_path = sys.argv[1:6]
chrome = sys.argv[6:]
log = open(log_path, "ab")

def say(text):
    print("[browser-check] " + text, flush=True)

# Chromium reads commands from fd 3 and writes replies to fd 4, NUL-terminated JSON.
to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()
def plumb():
    a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
    os.dup2(a, 3)
    os.dup2(b, 4)
    os.set_inheritable(3, True)
    os.set_inheritable(4, True)
proc = subprocess.Popen(chrome + ["--remote-debugging-pipe", "about:blank"], preexec_fn=plumb, close_fds=False,
                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
os.close(to_chrome_r)
os.close(from_chrome_w)

pending = b""
next_id = 0
problems = []      # uncaught exceptions and console errors of the page

def on_event(message):
    method, params = message.get("method"), message.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params.get("exceptionDetails", {})
        text = details.get("exception", {}).get("description") or details.get("text")
        problems.append("uncaught exception: %s" % text)
    elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
        problems.append("console.error: %s" % " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
    elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
        entry = params["entry"]
        problems.append("%s: %s %s" % (entry.get("source"), entry.get("text"), entry.get("url", "")))

def read_message(timeout):
    global pending
    deadline = time.time() + timeout
    while b"\0" not in pending:
        left = deadline - time.time()
        if left <= 0:
            return None
        ready, _, _ = select.select([from_chrome_r], [], [], left)
        if not ready:
            return None
        chunk = os.read(from_chrome_r, 1 << 20)
        if not chunk:
            raise SystemExit("chromium closed the DevTools pipe (see %s)" % log_path)
        pending += chunk
    raw, pending = pending.split(b"\0", 1)
    return json.loads(raw)

def send(method, params=None, session=None, timeout=30):
    global next_id
    next_id += 1
    message = {"id": next_id, "method": method, "params": params or {}}
    if session:
        message["sessionId"] = session
    os.write(to_chrome_w, json.dumps(message).encode() + b"\0")
    deadline = time.time() + timeout
    while True:
        reply = read_message(max(0.05, deadline - time.time()))
        if reply is None:
            raise SystemExit("no answer from chromium to %s" % method)
        if reply.get("id") == next_id:
            if "error" in reply:
                raise SystemExit("%s failed: %s" % (method, reply["error"]))
            return reply.get("result", {})
        on_event(reply)

def idle(seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        message = read_message(deadline - time.time())
        if message is not None:
            on_event(message)

def js(expression):
    result = send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
    return result.get("result", {}).get("value")

def wait_until(expression, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if js(expression):
            return True
        idle(0.1)
    return False

try:
    target = send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Runtime", "Log", "Page"):
        send(domain + ".enable", session=session)
    send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session)
    send("Page.navigate", {"url": url}, session)

    images_loaded = "Array.from(document.images).every(function (i) { return i.complete && i.naturalWidth > 0; })"
    ready = ("document.querySelectorAll('[data-status=\"completed\"]').length >= 3 && "
             "document.querySelector('[data-status=\"failed\"]') !== null && "
             "document.querySelector('[data-worker-id]') !== null && " + images_loaded)
    if not wait_until(ready, 30):
        problems.append("the page did not render the snapshot (3 completed jobs, 1 failed, a worker) within 30 s")
        raise SystemExit(1)
    say("page rendered the snapshot; connection: %s" % js("document.getElementById('conn').getAttribute('data-state')"))
    if not wait_until("document.getElementById('conn').getAttribute('data-state') === 'live'", 10):
        problems.append("the event stream did not connect (indicator: %s)" % js("document.getElementById('conn').getAttribute('data-state')"))

    # New jobs while the page is open: they must show up without a reload.
    binary, redis = os.environ["IQ_BINARY"], os.environ["IQ_REDIS"]
    new_jobs = [("flux", "a snow leopard on a cliff at golden hour, telephoto"),
                ("sdxl", "an astronaut tending a greenhouse on mars, warm light"),
                ("flux", "a steaming bowl of ramen, overhead shot, moody"),
                ("sdxl", "a hot air balloon over lavender fields at sunrise")]
    ids = []
    for model, prompt in new_jobs:
        out = subprocess.run([binary, "enqueue", "--redis", redis, "--model", model, "--user", "live", prompt],
                             capture_output=True, text=True, check=True)
        ids.append(out.stdout.strip())
    with open(ids_path, "w") as handle:
        handle.write("\n".join(ids) + "\n")
    say("enqueued %d jobs with the page open" % len(ids))

    seen = {i: [] for i in ids}
    shot = None
    deadline = time.time() + 40
    while time.time() < deadline:
        states = js("JSON.stringify(Array.from(document.querySelectorAll('[data-job-id]')).map(function (e) {"
                    " return [e.getAttribute('data-job-id'), e.getAttribute('data-status')]; }))")
        for job, status in json.loads(states or "[]"):
            if job in seen and (not seen[job] or seen[job][-1] != status):
                seen[job].append(status)
        running_rows = js("document.querySelectorAll('#running-body tr').length")
        if shot is None and running_rows >= 2 and js(images_loaded):
            idle(0.3)
            shot = send("Page.captureScreenshot", {"format": "png"}, session)["data"]
        if all(s and s[-1] == "completed" for s in seen.values()):
            break
        idle(0.1)
    for job in ids:
        say("  %s seen as %s" % (job, " → ".join(seen[job]) or "nothing"))
    if not all(s and s[-1] == "completed" for s in seen.values()):
        problems.append("jobs enqueued with the page open did not all reach completed on the page")
    if not any(any(st in ("enhancing", "generating", "retrying") for st in s) for s in seen.values()):
        problems.append("no job enqueued with the page open was shown in 'Running now'")
    wait_until(images_loaded, 10)
    idle(0.5)
    if shot is None:
        shot = send("Page.captureScreenshot", {"format": "png"}, session)["data"]
    import base64
    with open(shot_path, "wb") as handle:
        handle.write(base64.b64decode(shot))
    with open(dom_path, "w") as handle:
        handle.write(js("document.documentElement.outerHTML") or "")
finally:
    try:
        os.write(to_chrome_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        proc.wait(timeout=10)
    except Exception:
        proc.kill()
        proc.wait()
    for problem in problems:
        say("page problem: " + problem)
sys.exit(1 if problems else 0)
PY
    fail "the page check in Chromium failed"
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
