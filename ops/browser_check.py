#!/usr/bin/env python3
"""The dashboard in headless Chromium, driven over the DevTools protocol on a pipe.

Run by ops/browser-check.sh, which starts Redis, `imagequeue serve` and a placeholder worker
and passes their addresses; this script only talks to them (loopback) and to Chromium. Every
step waits on a condition (polled), never on a fixed sleep, with generous deadlines, so that it
passes on a loaded two-core machine. It prints what it checks; the API token never appears in
its output (it comes from the environment, IMAGEQUEUE_API_TOKEN).

    python3 ops/browser_check.py --url http://127.0.0.1:PORT --redis redis://127.0.0.1:PORT \
        --binary imagequeue --work DIR --dashboard-shot docs/dashboard.png --job-shot docs/job.png \
        --live-ids FILE --dom FILE -- chromium --headless=new ...

Exit status 0 when every check passed; the problems found otherwise are listed.
"""
import argparse
import base64
import json
import os
import select
import subprocess
import sys
import time
import urllib.error
import urllib.request

DEADLINE = 120          # seconds for any one condition (a loaded machine builds while we run)
TOKEN = os.environ.get("IMAGEQUEUE_API_TOKEN", "")


def say(text):
    print("[browser-check] " + text, flush=True)


class Failed(Exception):
    pass


class Chromium:
    """Chromium with --remote-debugging-pipe: commands on fd 3, replies on fd 4 (NUL-terminated JSON)."""

    def __init__(self, command, log_path):
        self.log = open(log_path, "ab")
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()

        def plumb():
            a, b = os.dup(to_r), os.dup(from_w)
            os.dup2(a, 3)
            os.dup2(b, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(command + ["--remote-debugging-pipe", "about:blank"], preexec_fn=plumb, close_fds=False,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        os.close(to_r)
        os.close(from_w)
        self.pending = b""
        self.next_id = 0
        self.session = None
        self.problems = []           # uncaught exceptions, console errors, failed loads
        self.expected_refusals = set()  # URLs whose refusal (a 4xx the page shows) a step provokes on purpose
        self.log_path = log_path

    # -- protocol
    def _read(self, timeout):
        deadline = time.time() + timeout
        while b"\0" not in self.pending:
            left = deadline - time.time()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.from_r], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.from_r, 1 << 20)
            if not chunk:
                raise Failed("chromium closed the DevTools pipe (see %s)" % self.log_path)
            self.pending += chunk
        raw, self.pending = self.pending.split(b"\0", 1)
        return json.loads(raw)

    def _event(self, message):
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.problems.append("uncaught exception: %s" % (details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.problems.append("console.error: %s" % " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            url = entry.get("url", "")
            if entry.get("source") == "network" and url in self.expected_refusals:
                return
            self.problems.append("%s: %s %s" % (entry.get("source"), entry.get("text"), url))

    def send(self, method, params=None, timeout=30, session=True):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self.to_w, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            reply = self._read(max(0.05, deadline - time.time()))
            if reply is None:
                raise Failed("no answer from chromium to %s" % method)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise Failed("%s failed: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self._event(reply)

    def idle(self, seconds):
        """Handles events for `seconds` (the polling interval between two looks at a condition)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            message = self._read(deadline - time.time())
            if message is not None:
                self._event(message)

    def js(self, expression, await_promise=False, secret=False):
        """Evaluates `expression` in the page. With secret=True (it holds the API token) a failure
        names no part of it."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": await_promise})
        if "exceptionDetails" in result:
            shown = "(an expression holding the API token)" if secret else expression[:300]
            raise Failed("page script failed: %s\n%s" % (result["exceptionDetails"].get("text"), shown))
        return result.get("result", {}).get("value")

    def wait(self, what, expression, seconds=DEADLINE):
        deadline = time.time() + seconds
        while time.time() < deadline:
            value = self.js(expression)
            if value:
                return value
            self.idle(0.1)
        where = self.js("location.href + ' (' + document.readyState + ')'") + " → " + repr(self.js(expression))
        raise Failed("timed out after %d s waiting for %s, at %s" % (seconds, what, where))

    def open(self, width, height):
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(domain + ".enable")
        self.viewport(width, height)

    def viewport(self, width, height, mobile=False):
        self.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def navigate(self, url, ready):
        self.send("Page.navigate", {"url": url})
        self.wait("%s to load" % url, "location.href === %s && document.readyState === 'complete' && (%s)" % (json.dumps(url), ready))

    def painted(self):
        """Two animation frames: what the script rendered is on screen."""
        self.js("new Promise(function (r) { requestAnimationFrame(function () { requestAnimationFrame(function () { r(true); }); }); })",
                await_promise=True)

    def screenshot(self, path, fit=False):
        """A PNG of the viewport; fit=True cuts it to the page's height when that is shorter."""
        self.painted()
        params = {"format": "png"}
        if fit:
            width, height = self.js("[window.innerWidth, Math.min(window.innerHeight, Math.ceil(document.body.getBoundingClientRect().bottom"
                                    " + parseFloat(getComputedStyle(document.body).marginBottom)))]")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.send("Page.captureScreenshot", params)["data"]
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(data))

    def key(self, key, code, key_code, shift=False):
        modifiers = 8 if shift else 0
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code, "windowsVirtualKeyCode": key_code,
                                                 "modifiers": modifiers})

    def close(self):
        try:
            os.write(self.to_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait()


class API:
    def __init__(self, url, pause):
        self.url = url
        self.pause = pause   # what to do between two looks (handle the browser's events)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as reply:
            return json.loads(reply.read())

    def job(self, id):
        return self.get("/v1/jobs/" + id)

    def wait(self, path, holds, failure, seconds=DEADLINE):
        """GETs `path` until `holds(answer)`; returns that answer, or raises Failed(failure(last answer))."""
        deadline = time.time() + seconds
        last = None
        while time.time() < deadline:
            last = self.get(path)
            if holds(last):
                return last
            self.pause(0.2)
        raise Failed(failure(last))

    def wait_job(self, id, statuses, seconds=DEADLINE):
        return self.wait("/v1/jobs/" + id, lambda job: job["status"] in statuses,
                         lambda job: "job %s did not reach %s within %d s (it is %s)"
                         % (id, "/".join(statuses), seconds, job and job["status"]), seconds)


def js_string(text):
    return json.dumps(text)


def main():
    parser = argparse.ArgumentParser()
    for name in ("url", "redis", "binary", "dashboard-shot", "job-shot", "live-ids", "dom", "log", "xss-id"):
        parser.add_argument("--" + name, required=True)
    parser.add_argument("chrome", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    chrome_command = args.chrome[1:] if args.chrome[:1] == ["--"] else args.chrome
    root = args.url.rstrip("/") + "/"
    browser = Chromium(chrome_command, args.log)
    api = API(args.url.rstrip("/"), browser.idle)
    checked = []

    def enqueue_cli(model, prompt, user="cli", enhance=False):
        command = [args.binary, "enqueue", "--redis", args.redis, "--model", model, "--user", user] + ([] if enhance else ["--no-enhance"])
        out = subprocess.run(command + [prompt], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def ok(text):
        checked.append(text)
        say("ok: " + text)

    try:
        browser.open(1400, 1400)
        images_loaded = "Array.from(document.images).every(function (i) { return i.hidden || (i.complete && i.naturalWidth > 0); })"

        # --- the live page --------------------------------------------------------------------
        browser.navigate(root, "document.getElementById('dashboard') !== null")
        browser.wait("the snapshot (3 completed jobs, 1 failed, a worker)",
                     "document.querySelectorAll('#recent [data-status=\"completed\"]').length >= 3 && "
                     "document.querySelector('[data-status=\"failed\"]') !== null && document.querySelector('[data-worker-id]') !== null && "
                     + images_loaded)
        browser.wait("the live event stream", "document.getElementById('conn').getAttribute('data-state') === 'live'")
        # A mark on this document: a reload or a navigation would make a new one without it.
        browser.js("window.__browserCheckMark = 'no-reload'; true")
        navigations = browser.js("performance.getEntriesByType('navigation').length")
        browser.wait("the charts of the jobs done before the page opened",
                     "Number((document.querySelector('[data-chart=\"counts\"][data-model=\"flux\"]') || {getAttribute: function () { return 0; }})"
                     ".getAttribute('data-points')) > 0")
        # The first is enhanced (the placeholder enhancer): its page shows the longest timeline.
        ids = [enqueue_cli(model, prompt, "live", enhance) for model, prompt, enhance in [
            ("flux", "a snow leopard on a cliff at golden hour, telephoto", True),
            ("sdxl", "an astronaut tending a greenhouse on mars, warm light", False),
            ("flux", "a steaming bowl of ramen, overhead shot, moody", False),
            ("sdxl", "a hot air balloon over lavender fields at sunrise", False)]]
        with open(args.live_ids, "w") as handle:
            handle.write("\n".join(ids) + "\n")
        say("enqueued %d jobs with the page open" % len(ids))
        seen = {i: [] for i in ids}
        shot_taken = False
        deadline = time.time() + DEADLINE
        while time.time() < deadline:
            states = json.loads(browser.js("JSON.stringify(Array.from(document.querySelectorAll('[data-job-id]')).map(function (e) {"
                                           " return [e.getAttribute('data-job-id'), e.getAttribute('data-status')]; }))") or "[]")
            for job, status in states:
                if job in seen and (not seen[job] or seen[job][-1] != status):
                    seen[job].append(status)
            if not shot_taken and browser.js("document.querySelectorAll('#running-body tr').length") >= 2 and browser.js(images_loaded):
                browser.screenshot(args.dashboard_shot)
                shot_taken = True
            if all(s and s[-1] == "completed" for s in seen.values()):
                break
            browser.idle(0.1)
        for job in ids:
            say("  %s seen as %s" % (job, " → ".join(seen[job]) or "nothing"))
        if not all(s and s[-1] == "completed" for s in seen.values()):
            raise Failed("jobs enqueued with the page open did not all reach completed on the page")
        if not any(any(st in ("enhancing", "generating", "retrying") for st in s) for s in seen.values()):
            raise Failed("no job enqueued with the page open was shown in 'Running now'")
        if browser.js("window.__browserCheckMark") != "no-reload" or \
                browser.js("performance.getEntriesByType('navigation').length") != navigations or \
                browser.js("location.href") != root:
            raise Failed("the page was reloaded or left while the jobs ran")
        ok("the live page shows new jobs running, then completed, without a reload")
        browser.wait("every image", images_loaded)
        if not shot_taken:
            browser.screenshot(args.dashboard_shot)
        with open(args.dom, "w") as handle:
            handle.write(browser.js("document.documentElement.outerHTML") or "")

        # --- accessibility: names, labels, keyboard ----------------------------------------------
        unnamed = browser.js("""Array.from(document.querySelectorAll('input, select, textarea, button')).filter(function (e) {
            if (e.closest('[hidden]')) return false;
            if (e.tagName === 'BUTTON') return !(e.textContent.trim() || e.getAttribute('aria-label'));
            return !(e.labels && e.labels.length) && !e.getAttribute('aria-label');
          }).map(function (e) { return e.outerHTML.slice(0, 120); })""")
        if unnamed:
            raise Failed("controls without a label or name: %s" % unnamed)
        clickable = browser.js("Array.from(document.querySelectorAll('[onclick], div[role=button], span[role=button]')).length")
        if clickable:
            raise Failed("%d clickable elements that are not buttons or links" % clickable)
        browser.js("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); true")
        stops = []
        for _ in range(8):
            browser.key("Tab", "Tab", 9)
            stops.append(browser.js("(function (e) { return e ? e.tagName + (e.id ? '#' + e.id : '') : null; })(document.activeElement)"))
        if not all(s and s.split("#")[0] in ("A", "BUTTON", "INPUT", "SELECT", "TEXTAREA") for s in stops):
            raise Failed("Tab moves through something other than links and form controls: %s" % stops)
        if "INPUT#find-input" not in stops:
            raise Failed("Tab never reaches the job search box: %s" % stops)
        ok("every control has a label or name, and Tab moves through real links and controls (%s)" % ", ".join(stops[:4]))

        # --- the token, asked once and kept in sessionStorage only ------------------------------------
        browser.js("document.getElementById('token-button').click(); true")
        browser.wait("the token form", "!document.getElementById('token-form').hidden")
        browser.js("document.getElementById('token-input').value = %s; document.getElementById('token-form').requestSubmit(); true" % js_string(TOKEN),
                   secret=True)
        browser.wait("the token kept for the tab", "sessionStorage.getItem('imagequeue.apiToken') !== null && document.getElementById('token-form').hidden")
        if browser.js("localStorage.getItem('imagequeue.apiToken')") is not None:
            raise Failed("the token was written to localStorage")
        ok("the token is kept in sessionStorage, not localStorage")

        # --- a refusal shows the API's message ------------------------------------------------------
        browser.expected_refusals.add(root + "v1/jobs")
        browser.js("document.getElementById('enqueue-prompt').value = '   '; document.getElementById('enqueue-form').requestSubmit(); true")
        message = browser.wait("the enqueue refusal", "!document.getElementById('enqueue-error').hidden && document.getElementById('enqueue-error').textContent")
        if "empty_prompt" not in message:
            raise Failed("the refusal does not show the API's message: %r" % message)
        ok("a refused enqueue shows the API's message (%s)" % message.strip())
        browser.expected_refusals.add(root + "v1/queues/sdxl/concurrency")
        browser.js("var i = document.getElementById('concurrency-sdxl'); i.value = '0'; i.dispatchEvent(new Event('input'));"
                   "i.form.requestSubmit(); true")
        refused = browser.wait("the concurrency refusal",
                               "(document.querySelector('[data-model=\"sdxl\"] .queue-controls [role=alert]') || {}).textContent")
        if "from 1 to 1000" not in refused:
            raise Failed("the concurrency refusal does not show the API's message: %r" % refused)
        ok("a refused concurrency shows the API's message (%s)" % refused.strip())

        # --- controls: concurrency, enqueue, pause ---------------------------------------------------
        browser.js("var i = document.getElementById('concurrency-sdxl'); i.value = '2'; i.dispatchEvent(new Event('input'));"
                   "i.form.requestSubmit(); true")
        api.wait("/v1/queues", lambda queues: queues["sdxl"]["concurrency"] == 2,
                 lambda _: "the concurrency set on the page did not reach the queue")
        browser.wait("the card showing the new limit", "document.querySelector('[data-model=\"sdxl\"] .slots').textContent.indexOf('/ 2 ') >= 0")
        ok("concurrency set from the page: sdxl runs 2 at once")

        def enqueue_on_page(model, prompt, priority="normal"):
            browser.js("document.getElementById('enqueue-result').hidden = true;"
                       "document.getElementById('enqueue-model').value = %s; document.getElementById('enqueue-prompt').value = %s;"
                       "document.getElementById('enqueue-priority').value = %s; document.getElementById('enqueue-enhance').checked = false;"
                       "document.getElementById('enqueue-form').requestSubmit(); true" % (js_string(model), js_string(prompt), js_string(priority)))
            return browser.wait("the enqueue answer",
                                "!document.getElementById('enqueue-result').hidden && "
                                "(document.querySelector('#enqueue-result [data-job-id]') || {getAttribute: function () { return null; }}).getAttribute('data-job-id')")

        page_job = enqueue_on_page("flux", "a red kite over the dunes, enqueued from the page", "high")
        api.wait_job(page_job, ["completed"])
        browser.wait("the job enqueued from the page among the completions",
                     "document.querySelector('#recent [data-job-id=%s]') !== null" % js_string(page_job))
        ok("a job enqueued from the page (%s) completes and shows up live" % page_job)

        browser.js("document.querySelector('[data-model=\"flux\"] [data-action=\"pause\"]').click(); true")
        browser.wait("flux shown paused", "document.querySelector('[data-model=\"flux\"] .badge.paused') !== null && "
                                          "document.querySelector('[data-model=\"flux\"] [data-action=\"resume\"]') !== null")
        if api.get("/v1/queues")["flux"]["paused"] is not True:
            raise Failed("the page shows flux paused, the queue is not")
        held = enqueue_on_page("flux", "held while flux is paused, then cancelled from its page")
        other = enqueue_cli("sdxl", "a lantern festival, proof that the worker still claims")
        api.wait_job(other, ["completed"])
        held_now = api.job(held)
        if held_now["status"] != "queued" or held_now["attempt"] != 0:
            raise Failed("a paused model's job was claimed: %s" % held_now)
        ok("pause shows paused, and stops claims (%s stayed queued while an sdxl job completed)" % held)

        # --- a job's page, found with the search box: cancel it ----------------------------------------
        browser.js("document.getElementById('find-input').value = %s; document.getElementById('find-form').requestSubmit(); true" % js_string(held))
        held_url = root + "jobs/" + held
        browser.wait("the job page", "location.href === %s && document.readyState === 'complete'" % js_string(held_url))
        browser.wait("the queued job's page", "document.getElementById('job-view').getAttribute('data-status') === 'queued' && "
                                              "document.getElementById('job-position') !== null")
        position = browser.js("document.getElementById('job-position').textContent")
        if "Position 1" not in position:
            raise Failed("the queued job's position is not shown: %r" % position)
        browser.js("document.querySelector('#job-view [data-action=\"cancel\"]').click(); true")
        browser.wait("the job shown cancelled", "document.getElementById('job-view').getAttribute('data-status') === 'cancelled' && "
                                                "Array.from(document.querySelectorAll('#timeline li')).map(function (l) { return l.getAttribute('data-status'); })"
                                                ".join() === 'queued,cancelled'")
        if api.job(held)["status"] != "cancelled":
            raise Failed("the page shows the job cancelled, the API does not")
        ok("the search box opens a job's page (%s); its Cancel button ends the job cancelled" % position.strip())

        browser.js("document.getElementById('back-link').click(); true")
        browser.wait("the dashboard again", "location.href === %s && document.readyState === 'complete' && "
                                            "document.querySelector('[data-model=\"flux\"] [data-action=\"resume\"]') !== null" % js_string(root))
        browser.js("document.querySelector('[data-model=\"flux\"] [data-action=\"resume\"]').click(); true")
        browser.wait("flux running again", "document.querySelector('[data-model=\"flux\"] [data-action=\"pause\"]') !== null")
        resumed = enqueue_cli("flux", "a paper lantern on a pond, after the resume")
        api.wait_job(resumed, ["completed"])
        ok("resume from the page: flux claims again")

        # --- purge the dead list (two steps) ------------------------------------------------------------
        browser.wait("the purge button", "document.querySelector('[data-model=\"flux\"] [data-action=\"purge-dead\"]') !== null")
        browser.js("document.querySelector('[data-model=\"flux\"] [data-action=\"purge-dead\"]').click(); true")
        browser.wait("the purge to ask for a confirmation",
                     "document.querySelector('[data-model=\"flux\"] [data-action=\"purge-dead\"]').textContent === 'Confirm purge'")
        if api.get("/v1/queues")["flux"]["dead"] == 0:
            raise Failed("one click purged the dead list")
        browser.js("document.querySelector('[data-model=\"flux\"] [data-action=\"purge-dead\"]').click(); true")
        api.wait("/v1/queues", lambda queues: queues["flux"]["dead"] == 0, lambda _: "the purge did not empty the dead list")
        browser.wait("the failed list emptied", "document.querySelector('#failed [data-status=\"failed\"]') === null")
        ok("Purge dead asks once more, then empties the dead list")

        # --- the charts have points ------------------------------------------------------------------
        for model in ("flux", "sdxl"):
            for chart in ("counts", "wait", "run"):
                browser.wait("points in the %s %s chart" % (model, chart),
                             "Number((document.querySelector('[data-chart=\"%s\"][data-model=\"%s\"]') || "
                             "{getAttribute: function () { return 0; }}).getAttribute('data-points')) > 0" % (chart, model))
        points = browser.js("document.querySelectorAll('[data-chart] [data-point]').length")
        ok("the charts have points after the run (%d bars and dots)" % points)

        # --- a job's whole timeline --------------------------------------------------------------------
        job = ids[0]
        info = api.job(job)
        expected = [h["status"] for h in info["history"]]
        if expected != ["queued", "enhancing", "generating", "completed"]:
            raise Failed("the API's history of %s is not whole: %s" % (job, expected))
        browser.navigate(root + "jobs/" + job, "document.getElementById('job-view') !== null")
        shown = browser.wait("the whole timeline",
                             "(function () { var s = Array.from(document.querySelectorAll('#timeline li')).map(function (l) { return l.getAttribute('data-status'); });"
                             " return s.join() === %s ? s : null; })()" % js_string(",".join(expected)))
        browser.wait("the job's image", "document.querySelector('.job-image img') !== null && " + images_loaded)
        if browser.js("document.getElementById('job-prompt').textContent") != info["prompt"]:
            raise Failed("the job page does not show the prompt")
        if not info.get("enhanced_prompt") or browser.js("document.getElementById('job-enhanced').textContent") != info["enhanced_prompt"]:
            raise Failed("the job page does not show the enhanced prompt (%r)" % info.get("enhanced_prompt"))
        times = browser.js("Array.from(document.querySelectorAll('#timeline li time[datetime]')).length")
        if times != len(expected):
            raise Failed("the timeline shows %s times for %d events" % (times, len(expected)))
        browser.screenshot(args.job_shot, fit=True)
        ok("the job page of %s shows its whole timeline: %s" % (job, " → ".join(shown)))

        # --- HTML in a prompt is text, on the job page too ------------------------------------------------
        xss = api.job(args.xss_id)
        browser.navigate(root + "jobs/" + args.xss_id, "document.getElementById('job-prompt') !== null")
        if browser.js("document.getElementById('job-prompt').textContent") != xss["prompt"]:
            raise Failed("the HTML-looking prompt is not shown as its text")
        if browser.js("document.querySelector('.xss-probe') !== null"):
            raise Failed("a prompt was inserted as HTML")
        ok("a prompt containing HTML is shown as text on its job page")

        # --- readable at 360 px ------------------------------------------------------------------------
        browser.viewport(360, 780, mobile=True)
        for path, ready in [(root, "document.querySelectorAll('#recent [data-status=\"completed\"]').length >= 3"),
                            (root + "jobs/" + job, "document.querySelectorAll('#timeline li').length >= 3")]:
            browser.navigate(path, "true")
            browser.wait("%s rendered at 360 px" % path, ready)
            browser.painted()
            width = browser.js("document.documentElement.scrollWidth")
            if width > 362:
                wide = browser.js("Array.from(document.querySelectorAll('body *')).filter(function (e) {"
                                  " var r = e.getBoundingClientRect(); return r.right > 362 && !e.closest('.table-wrap'); })"
                                  ".slice(0, 5).map(function (e) { return e.tagName + '.' + e.className; })")
                raise Failed("%s is %d px wide at a 360 px viewport (too wide: %s)" % (path, width, wide))
        ok("the dashboard and a job page fit a 360 px wide screen")

        # --- no external requests ------------------------------------------------------------------------
        external = browser.js("performance.getEntriesByType('resource').map(function (e) { return e.name; })"
                              ".filter(function (u) { return u.indexOf(location.origin) !== 0 && u.indexOf('data:') !== 0 && u.indexOf('blob:') !== 0; })")
        if external:
            raise Failed("requests outside the server: %s" % external)
        ok("no request leaves the server")
    except Failed as failure:
        browser.problems.append(str(failure))
    finally:
        browser.close()
    # What the page logged as errors (no console errors is itself a check).
    for problem in browser.problems:
        say("page problem: " + problem)
    if not browser.problems:
        say("no console errors or uncaught exceptions during %d checks" % len(checked))
    return 1 if browser.problems else 0


if __name__ == "__main__":
    sys.exit(main())
