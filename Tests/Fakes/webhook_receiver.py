#!/usr/bin/env python3
"""A webhook receiver for the tests: a real HTTP/1.1 server (standard library only).

Every POST outside /_control is a webhook delivery. The receiver checks its
ImageQueue-Signature with verify() below (the function docs/WEBHOOKS.md shows), reads the
job id and rev from the body, and answers:

- 401 when the signature does not verify;
- 500 to the first --fail-first (default 2) verified deliveries of each job;
- then, while a hold is armed (POST /_control/hold), holds the request open without an
  answer until POST /_control/release, and then closes the connection without one;
- else 200: an accepted delivery.

The secret comes from the environment variable named by --secret-env (default
IMAGEQUEUE_WEBHOOK_SECRET), never from the command line, and is never printed.

Control API (JSON):
  POST /_control/hold     {"count": N}  hold the next N deliveries that would be accepted
  POST /_control/release  answer every held request by closing its connection
  GET  /_control/requests every delivery in arrival order: {"seq", "path", "job_id", "rev",
                          "status", "verified", "answer" (401/500/200, null when held or
                          dropped), "outcome" ("answered", "held", "dropped", "client_closed"),
                          "time_ms"}
  GET  /_control/state    {"holding": requests held right now, "armed": holds left}
  POST /_control/reset    forget everything
  GET  /_control/health
"""

import hashlib
import hmac
import json
import os
import sys
import threading
import time

from fakeserver import BadRequest, ClientGone, FakeHandler, json_object, now_ms, parse_arguments, serve


def verify(secret, header, body, tolerance=300):
    """True when `header` (ImageQueue-Signature) signs `body` (bytes) with `secret` (str), at
    most `tolerance` seconds from now."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        signature = fields["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


class State:
    def __init__(self):
        self.lock = threading.Condition()
        self.reset()

    def reset(self):
        self.requests = []
        self.failures = {}   # job id -> 500s answered
        self.armed = 0       # holds left
        self.holding = 0     # requests held now
        self.generation = 0  # bumped by release


STATE = State()


class Handler(FakeHandler):
    server_version = "FakeWebhookReceiver/1.0"
    log_name = "webhook_receiver"
    max_body = 1024 * 1024
    secret = ""
    fail_first = 2
    tolerance = 300

    def control(self, path, query, raw):
        if path == "/_control/hold":
            self.require(path, "POST")
            count = json_object(raw).get("count", 1)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise BadRequest("count must be a whole number >= 0")
            with STATE.lock:
                STATE.armed = count
            self.send_json(200, {"ok": True, "armed": count})
        elif path == "/_control/release":
            self.require(path, "POST")
            with STATE.lock:
                STATE.armed = 0
                STATE.generation += 1
                STATE.lock.notify_all()
            self.send_json(200, {"ok": True})
        elif path == "/_control/requests":
            with STATE.lock:
                requests = [dict(entry) for entry in STATE.requests]
            self.send_json(200, requests)
        elif path == "/_control/state":
            with STATE.lock:
                state = {"holding": STATE.holding, "armed": STATE.armed}
            self.send_json(200, state)
        elif path == "/_control/reset":
            self.require(path, "POST")
            with STATE.lock:
                STATE.generation += 1
                STATE.lock.notify_all()
                STATE.reset()
            self.send_json(200, {"ok": True})
        else:
            self.control_default(path)

    def api(self, path, query):
        try:
            body = self.read_body()
        except BadRequest as error:
            self.close_connection = True
            self.send_json(400, {"error": str(error)})
            return
        verified = self.command == "POST" and verify(self.secret, self.headers.get("ImageQueue-Signature", ""), body,
                                                    self.tolerance)
        try:
            event = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            event = {}
        if not isinstance(event, dict):
            event = {}
        job = event.get("id")
        entry = {"path": path, "job_id": job, "rev": event.get("rev"), "status": event.get("status"),
                 "verified": verified, "content_type": self.headers.get("Content-Type"), "answer": None,
                 "outcome": "answered", "time_ms": now_ms()}
        with STATE.lock:
            entry["seq"] = len(STATE.requests) + 1
            STATE.requests.append(entry)
            if not verified:
                answer = 401
            elif STATE.failures.get(job, 0) < self.fail_first:
                STATE.failures[job] = STATE.failures.get(job, 0) + 1
                answer = 500
            elif STATE.armed > 0:
                STATE.armed -= 1
                STATE.holding += 1
                entry["outcome"] = "held"
                generation = STATE.generation
                while STATE.generation == generation:
                    STATE.lock.wait()
                STATE.holding -= 1
                entry["outcome"] = "dropped"
                answer = None
            else:
                answer = 200
        if answer is None:
            self.drop()
            return
        try:
            self.send_json(answer, {"ok": answer == 200})
            with STATE.lock:
                entry["answer"] = answer
        except ClientGone:
            with STATE.lock:
                entry["outcome"] = "client_closed"
            self.close_connection = True


def main(argv=None):
    _, arguments = parse_arguments(
        "A webhook receiver that verifies ImageQueue signatures, for the tests.", argv,
        extra=[(["--secret-env"], {"default": "IMAGEQUEUE_WEBHOOK_SECRET",
                                   "help": "the environment variable holding the secret"}),
               (["--fail-first"], {"type": int, "default": 2, "help": "500s answered to each job first"}),
               (["--tolerance"], {"type": int, "default": 300, "help": "seconds a signature's t may be off"})])
    secret = os.environ.get(arguments.secret_env, "")
    if not secret:
        print(f"webhook_receiver: ${arguments.secret_env} is empty", file=sys.stderr)
        return 2
    Handler.secret = secret
    Handler.fail_first = arguments.fail_first
    Handler.tolerance = arguments.tolerance
    return serve("webhook_receiver", arguments, Handler)


if __name__ == "__main__":
    sys.exit(main())
