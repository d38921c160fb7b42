#!/usr/bin/env python3
"""Enqueue one ImageQueue job and optionally watch it, using only docs/PROTOCOL.md.

Usage:
  protocol_client.py --redis redis://127.0.0.1:6379 --prefix iq --model flux --user alice
                     [--no-enhance] [--idempotency-key K] [--wait SECONDS] PROMPT

Prints one JSON line {"id", "status", "position", "created"}; with --wait, then one JSON line
per status event until the job ends. Exit: 0 completed (or enqueued, without --wait),
1 failed or cancelled, 2 Redis error or a request the producer's checks refuse (§4.1),
4 timeout.
"""

import argparse
import hashlib
import json
import os
import re
import secrets
import sys
import time
import unicodedata

import redis

LUA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lua")
INCLUDE = "--@include "
MODEL_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"

MAX_PROMPT_LENGTH = 2000
MAX_ATTEMPTS = 3
IDEMPOTENCY_TTL_MS = 86_400_000
TERMINAL_EXIT = {"completed": 0, "failed": 1, "cancelled": 1}


class Script:
    """One protocol script: its resolved text (PROTOCOL.md §7) and SHA1."""

    def __init__(self, name):
        self.text = self._resolve(self._read(os.path.join(LUA_DIR, name + ".lua")))
        self.sha = hashlib.sha1(self.text.encode("utf-8")).hexdigest()

    @staticmethod
    def _read(path):
        with open(path, encoding="utf-8", newline="") as handle:
            return handle.read()

    def _resolve(self, text):
        lines = []
        for line in text.split("\n"):
            trimmed = line.strip(" \t")
            if trimmed.startswith(INCLUDE):
                name = trimmed[len(INCLUDE):].strip(" \t")
                lines.append(self._read(os.path.join(LUA_DIR, "includes", name)))
            else:
                lines.append(line)
        return "\n".join(lines)

    def __call__(self, client, keys, args):
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            client.script_load(self.text)
            return client.evalsha(self.sha, len(keys), *keys, *args)


def new_job_id(model):
    """`<model>-` + 26 lowercase Crockford base32 characters: 48-bit ms time, 80 random bits."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    suffix = "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))
    return f"{model}-{suffix}"


def model_keys(prefix, model):
    base = f"{prefix}:{{{model}}}"
    keys = [f"{base}:{name}" for name in ("pending", "active", "dead", "meta", "wake", "seq", "fence")]
    return base, keys + [f"{base}:job:"]


def emit(document):
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


class Watcher:
    """Follows one job's events: subscribe first, then read the stored event (§11)."""

    def __init__(self, client, base):
        self.client = client
        self.base = base
        self.pubsub = client.pubsub()
        self.job_id = None
        self.last_rev = 0

    def channel(self, job_id):
        return f"{self.base}:events:{job_id}"

    def subscribe(self, job_id, timeout=10.0):
        if job_id == self.job_id:
            return
        previous = self.job_id
        self.job_id, self.last_rev = job_id, 0
        self.pubsub.subscribe(self.channel(job_id))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise redis.exceptions.TimeoutError("no confirmation for SUBSCRIBE")
            message = self.pubsub.get_message(timeout=remaining)
            if message and message["type"] == "subscribe" and message["channel"] == self.channel(job_id):
                break
        if previous is not None:
            self.pubsub.unsubscribe(self.channel(previous))

    def read_stored(self):
        """The job's current event from its hash; returns the status if it is new. A job that
        was never claimed has no stored event: its `queued` event is built from its fields and
        its position (PROTOCOL.md §11)."""
        key = f"{self.base}:job:{self.job_id}"
        text, status, rev, attempt, enqueued_at = self.client.hmget(key, "event", "status", "rev", "attempt", "enqueued_at")
        if text is None and status == b"queued":
            model = self.job_id.split("-", 1)[0]
            event = {"v": 1, "id": self.job_id, "model": model, "status": "queued",
                     "time": int(enqueued_at or 0), "attempt": int(attempt or 0), "rev": int(rev or 1)}
            rank = self.client.zrank(f"{self.base}:pending", self.job_id)
            if rank is not None:
                event["position"] = rank + 1
            text = json.dumps(event)
        return self._handle(text) if text is not None else None

    def next_status(self, timeout):
        """Waits up to `timeout` s for the next new event; returns its status or None."""
        message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if not message or message["type"] != "message" or message["channel"] != self.channel(self.job_id):
            return None
        return self._handle(message["data"])

    def _handle(self, text):
        try:
            event = json.loads(text)
            rev = int(event["rev"])
        except (ValueError, KeyError, TypeError):
            return None
        if event.get("id") != self.job_id or rev <= self.last_rev:
            return None
        self.last_rev = rev
        emit(event)
        return event.get("status")

    def close(self):
        self.pubsub.close()


def has_control(text, allowed=""):
    """Whether `text` holds a control character (category Cc) other than those in `allowed`."""
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def request_problem(prompt, user, idempotency_key, max_prompt_length):
    """The first of the producer's checks (PROTOCOL.md §4.1) that the request fails, or None.

    Python counts code points, never fewer than Swift's grapheme clusters, so this refuses
    every prompt the Swift producer refuses (and a few long ones with combining marks more)."""
    if all(ch.isspace() for ch in prompt):
        return "the prompt is empty"
    if len(prompt) > max_prompt_length:
        return f"the prompt has {len(prompt)} characters; the limit is {max_prompt_length}"
    if has_control(prompt, allowed="\n\t"):
        return "the prompt contains a control character"
    if not 1 <= len(user.encode("utf-8")) <= 128:
        return "a user id of 1 to 128 bytes is required"
    if has_control(user):
        return "the user id contains a control character"
    if idempotency_key is not None and (not 1 <= len(idempotency_key.encode("utf-8")) <= 200
                                        or has_control(idempotency_key)):
        return "the idempotency key must be 1 to 200 bytes without control characters"
    return None


def parse_arguments():
    parser = argparse.ArgumentParser(description="Enqueue an ImageQueue job through the v1 Redis protocol.")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis URL")
    parser.add_argument("--prefix", default="iq", help="key prefix")
    parser.add_argument("--model", default="flux", help="model name")
    parser.add_argument("--user", required=True, help="user id")
    parser.add_argument("--no-enhance", action="store_true", help="skip prompt enhancement")
    parser.add_argument("--idempotency-key", help="enqueue at most once per key")
    parser.add_argument("--wait", type=float, help="watch the job for up to this many seconds")
    parser.add_argument("--max-prompt-length", type=int, default=MAX_PROMPT_LENGTH,
                        help="longest prompt accepted, in characters")
    parser.add_argument("prompt", nargs="+", help="the prompt")
    arguments = parser.parse_args()
    if not MODEL_NAME.match(arguments.model):
        parser.error("model must match ^[a-z0-9_]{1,32}$")
    if not arguments.prefix:
        parser.error("prefix must not be empty")
    arguments.prompt = " ".join(arguments.prompt)
    problem = request_problem(arguments.prompt, arguments.user, arguments.idempotency_key,
                              arguments.max_prompt_length)
    if problem:
        parser.error(problem)
    return arguments


def run(arguments):
    client = redis.Redis.from_url(arguments.redis, decode_responses=True)
    base, keys = model_keys(arguments.prefix, arguments.model)
    enqueue = Script("enqueueJob")

    job_id = new_job_id(arguments.model)
    watcher = Watcher(client, base)
    try:
        watcher.subscribe(job_id)
        watcher.read_stored()  # a brand-new id has no event yet; read anyway, as §11 says

        request = {"v": 1, "prompt": arguments.prompt, "user": arguments.user,
                   "enhance": not arguments.no_enhance}
        if arguments.idempotency_key is not None:
            keys = keys + [f"{base}:idem:{arguments.idempotency_key}"]
        reply = enqueue(client, keys, [arguments.model, f"{base}:events", job_id,
                                       json.dumps(request), MAX_ATTEMPTS, IDEMPOTENCY_TTL_MS])
        returned_id, status, position, created = reply[0], reply[1], int(reply[2]), int(reply[3]) == 1
        emit({"id": returned_id, "status": status, "position": position, "created": created})

        if arguments.wait is None:
            return 0
        deadline = time.monotonic() + arguments.wait
        watcher.subscribe(returned_id)  # no-op unless an idempotent hit named another job
        status = watcher.read_stored()
        while status not in TERMINAL_EXIT:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return 4
            status = watcher.next_status(remaining)
        return TERMINAL_EXIT[status]
    finally:
        watcher.close()
        client.close()


def main():
    arguments = parse_arguments()
    try:
        code = run(arguments)
    except redis.exceptions.RedisError as error:
        sys.stderr.write(f"redis error: {error}\n")
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
