#!/usr/bin/env python3
"""Fake versions of the four HTTP services an ImageQueue worker calls, on one loopback port.

Standard library only. Tests start it, wait for `READY <port>` on stdout, point the worker at
http://127.0.0.1:<port>/..., script failures through /_control, and read back what the worker
sent. See README.md next to this file for the whole control API.

Usage: fake_backends.py --port P [--host 127.0.0.1] [--verbose] [--exit-on-stdin-eof]
  --port 0 picks a free port; the line `READY <port>` names the one actually bound.
  SIGTERM or SIGINT: stop listening and exit 0 (in-flight requests are abandoned).

Services (what the real ones look like):
  flux        GET  /flux?prompt=<percent-encoded>                 -> 200 image/png
  sdxl        POST /sdxl  {"prompt": ...}  Authorization: Bearer K -> 200 image/jpeg
  openrouter  POST /openrouter/chat/completions  (OpenAI shape)   -> 200 chat completion JSON
  gemini      POST /gemini/v1beta/models/<model>:generateContent  -> 200 generateContent JSON
Control:
  POST /_control/script         {"service", "responses": [RESPONSE, ...]}  (appends)
  POST /_control/reset          clears scripts, default delays, chaos and the request log
  POST /_control/default_delay  {"service", "delay_ms"}
  POST /_control/chaos          {"service", "latency_ms": [lo, hi], "error_rate", "seed"}; {} turns it off
  GET  /_control/chaos          the chaos settings and counters, per service
  GET  /_control/requests[?service=S]
  GET  /_control/scripts        scripted responses not used yet, per service
  GET  /_control/health
"""

import json
import os
import random
import struct
import sys
import threading
import time
import zlib
from urllib.parse import parse_qs, unquote

from fakeserver import (BadRequest, ClientGone, FakeHandler, check_fields, json_object, now_ms, parse_arguments,
                        script_responses, serve)

SERVICES = ("flux", "sdxl", "openrouter", "gemini")
BODY_KINDS = ("png", "jpeg", "html", "json_error", "garbage")
RESPONSE_FIELDS = {
    "status": int, "headers": dict, "body": str, "body_kind": str, "content": str, "error": str,
    "delay_ms": (int, float), "slow_body_ms": (int, float), "size_bytes": int, "drop": (bool, str),
}
CHAOS_FIELDS = {"service": str, "latency_ms": (list, int, float), "error_rate": (int, float), "seed": int}
CHAOS_STATUSES = (500, 502, 503)
STREAM_CHUNK = 64 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NATIVE_TYPE = {"flux": "image/png", "sdxl": "image/jpeg", "openrouter": "application/json",
               "gemini": "application/json"}


# --- Canned bodies ---------------------------------------------------------------------------

def make_png(width=8, height=8):
    """A valid 8-bit RGB PNG (a colour gradient), built with zlib and struct."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes((x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), 128))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_MAGIC + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


def make_jpeg():
    """A valid baseline (SOF0, Huffman) 8x8 single-component JPEG: one block, mid-grey.

    Quantisation table of 1s; one DC table and one AC table of a single 1-bit code each
    (DC category 0, AC end-of-block). The whole scan is those two 0 bits, padded with 1s: 0x3F.
    """
    def segment(marker, payload):
        return b"\xff" + bytes((marker,)) + struct.pack(">H", len(payload) + 2) + payload
    one_code = bytes((1,) + (0,) * 15) + b"\x00"  # BITS: one code of length 1; HUFFVAL: symbol 0
    return (b"\xff\xd8"
            + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
            + segment(0xDB, b"\x00" + b"\x01" * 64)
            + segment(0xC0, b"\x08" + struct.pack(">HH", 8, 8) + b"\x01" + b"\x01\x11\x00")
            + segment(0xC4, b"\x00" + one_code)
            + segment(0xC4, b"\x10" + one_code)
            + segment(0xDA, b"\x01" + b"\x01\x00" + b"\x00\x3f\x00")
            + b"\x3f"
            + b"\xff\xd9")


PNG_BYTES = make_png()
JPEG_BYTES = make_jpeg()
HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
             b"<body><h1>Bad Gateway</h1><p>The upstream server is temporarily unavailable.</p>"
             b"<hr><address>nginx</address></body></html>\n")


def garbage_bytes(length=512):
    """Random bytes that start with neither PNG nor JPEG magic (nor '{' or '<')."""
    return b"GARBAGE\x00" + os.urandom(length - 8)


# --- Shared state -----------------------------------------------------------------------------

class State:
    """Scripts, persistent delays and the request log; every access under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.scripts = {name: [] for name in SERVICES}
        self.delays = {name: 0.0 for name in SERVICES}
        self.chaos = {}
        self.log = []

    def reset(self):
        with self.lock:
            self.scripts = {name: [] for name in SERVICES}
            self.delays = {name: 0.0 for name in SERVICES}
            self.chaos = {}
            self.log = []

    def record(self, entry):
        with self.lock:
            self.log.append(entry)

    def finish(self, entry, **fields):
        with self.lock:
            entry.update(fields)

    def requests(self, service=None):
        with self.lock:
            return [dict(entry) for entry in self.log if service is None or entry["service"] == service]

    def next_script(self, service):
        with self.lock:
            queue = self.scripts[service]
            return queue.pop(0) if queue else None

    def add_scripts(self, service, responses):
        with self.lock:
            self.scripts[service].extend(responses)
            return len(self.scripts[service])

    def pending_scripts(self):
        with self.lock:
            return {name: len(queue) for name, queue in self.scripts.items()}

    def delay(self, service):
        with self.lock:
            return self.delays[service]

    def set_delay(self, service, delay_ms):
        with self.lock:
            self.delays[service] = delay_ms

    def set_chaos(self, service, settings):
        """Chaos for one service (settings None: off), or off for all (service None)."""
        with self.lock:
            if service is None:
                self.chaos = {}
            elif settings is None:
                self.chaos.pop(service, None)
            else:
                self.chaos[service] = dict(settings, rng=random.Random(settings["seed"]), answered=0, errors=0)

    def chaos_script(self, service):
        """A one-off response drawn from the service's chaos settings ({} when chaos is off)."""
        with self.lock:
            chaos = self.chaos.get(service)
            if chaos is None:
                return {}
            rng = chaos["rng"]
            low, high = chaos["latency_ms"]
            response = {"delay_ms": rng.uniform(low, high)}
            chaos["answered"] += 1
            if rng.random() < chaos["error_rate"]:
                status = rng.choice(CHAOS_STATUSES)
                response.update(status=status, error=f"chaos: injected {status}")
                chaos["errors"] += 1
            return response

    def chaos_report(self):
        with self.lock:
            return {name: {key: value for key, value in chaos.items() if key != "rng"}
                    for name, chaos in self.chaos.items()}


STATE = State()


def validate_response(index, response):
    check_fields(f"responses[{index}]", response, RESPONSE_FIELDS, bool_fields=("drop",))
    if "body_kind" in response and response["body_kind"] not in BODY_KINDS:
        raise BadRequest(f"responses[{index}].body_kind must be one of {', '.join(BODY_KINDS)}")
    if isinstance(response.get("drop"), str) and response["drop"] not in ("fin", "reset"):
        raise BadRequest(f"responses[{index}].drop must be true, false, \"fin\" or \"reset\"")
    if "size_bytes" in response and response["size_bytes"] < 0:
        raise BadRequest(f"responses[{index}].size_bytes must not be negative")
    if "status" in response and not 100 <= response["status"] <= 999:
        raise BadRequest(f"responses[{index}].status must be 100...999")
    for key in ("delay_ms", "slow_body_ms"):
        if key in response and response[key] < 0:
            raise BadRequest(f"responses[{index}].{key} must not be negative")
    for name, value in response.get("headers", {}).items():
        if not isinstance(value, (str, int)):
            raise BadRequest(f"responses[{index}].headers['{name}'] must be a string")


def chaos_settings(body):
    """The checked settings of a /_control/chaos body that turns chaos on."""
    latency = body.get("latency_ms", 0)
    if isinstance(latency, list):
        if len(latency) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in latency):
            raise BadRequest("latency_ms must be a number or a list [low, high] of two numbers")
        low, high = latency
    else:
        low = high = latency
    if low < 0 or high < low:
        raise BadRequest("latency_ms must be >= 0, with low <= high")
    rate = body.get("error_rate", 0)
    if not 0 <= rate <= 1:
        raise BadRequest("error_rate must be from 0 to 1")
    seed = body.get("seed", random.randrange(1 << 31))
    return {"latency_ms": [low, high], "error_rate": rate, "seed": seed}


# --- Request parsing --------------------------------------------------------------------------

def text_of_openai_content(content):
    """A message's content: a string, or a list of parts [{"type": "text", "text": ...}]."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict)
                       and isinstance(part.get("text"), str))
    return None


def prompt_of(service, query, payload):
    """The prompt a request carries (None if it has none)."""
    if service == "flux":
        values = parse_qs(query, keep_blank_values=True).get("prompt")
        return values[0] if values else None
    if not isinstance(payload, dict):
        return None
    if service == "sdxl":
        prompt = payload.get("prompt")
        return prompt if isinstance(prompt, str) else None
    if service == "openrouter":
        messages = payload.get("messages")
        if isinstance(messages, list):
            for message in reversed(messages):
                if isinstance(message, dict) and message.get("role") == "user":
                    return text_of_openai_content(message.get("content"))
        return None
    if service == "gemini":
        try:
            text = payload["contents"][-1]["parts"][0]["text"]
        except (KeyError, IndexError, TypeError):
            return None
        return text if isinstance(text, str) else None
    return None


def route(method, path):
    """(service, allowed method) for an API path, or (None, None)."""
    if path == "/flux":
        return "flux", "GET"
    if path == "/sdxl":
        return "sdxl", "POST"
    if path == "/openrouter/chat/completions":
        return "openrouter", "POST"
    decoded = unquote(path)
    prefix, suffix = "/gemini/v1beta/models/", ":generateContent"
    if decoded.startswith(prefix) and decoded.endswith(suffix):
        model = decoded[len(prefix):-len(suffix)]
        if model and "/" not in model and ":" not in model:
            return "gemini", "POST"
    return None, None


def success_body(service, prompt, payload, content=None):
    """(content type, body bytes) of a service's default success."""
    if service == "flux":
        return "image/png", PNG_BYTES
    if service == "sdxl":
        return "image/jpeg", JPEG_BYTES
    prompt = prompt or ""
    if service == "openrouter":
        if content is None:
            content = f'Enhanced prompt: "{prompt}, highly detailed, golden hour"'
        model = payload.get("model") if isinstance(payload, dict) else None
        body = {"id": "x", "object": "chat.completion", "created": int(time.time()),
                "model": model if isinstance(model, str) else "fake-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}]}
    else:
        if content is None:
            content = f"**{prompt}, cinematic lighting**"
        body = {"candidates": [{"content": {"parts": [{"text": content}], "role": "model"},
                                "finishReason": "STOP", "index": 0}]}
    return "application/json", json.dumps(body).encode("utf-8")


# --- The handler ------------------------------------------------------------------------------

class Handler(FakeHandler):
    server_version = "FakeBackends/1.0"
    log_name = "fake_backends"

    def lowercased_headers(self):
        headers = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    # -- the services --

    def api(self, path, query):
        arrival = now_ms()
        service, allowed = route(self.command, path)
        entry = {"service": service or "unknown", "method": self.command, "path": path, "query": query,
                 "prompt": None, "headers": self.lowercased_headers(), "body": "", "time_ms": arrival,
                 "end_ms": None, "status": None, "outcome": None, "bytes_sent": 0}
        STATE.record(entry)
        status, outcome, sent = None, "ok", 0
        try:
            try:
                raw = self.read_body()
            except BadRequest as error:
                self.close_connection = True
                status, sent = 400, self.send_json(400, {"error": str(error)})
                return
            entry["body"] = raw.decode("utf-8", errors="replace")
            if service is None:
                status, sent = 404, self.send_json(404, {"error": f"no such endpoint: {self.command} {path}"})
                return
            if self.command != allowed:
                status = 405
                sent = self.send_json(405, {"error": f"{path} accepts {allowed}, not {self.command}"})
                return
            payload = None
            if service != "flux":
                try:
                    payload = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as error:
                    status, sent = 400, self.send_json(400, {"error": f"malformed JSON body: {error}"})
                    return
                if not isinstance(payload, dict):
                    status, sent = 400, self.send_json(400, {"error": "the JSON body must be an object"})
                    return
            prompt = prompt_of(service, query, payload)
            STATE.finish(entry, prompt=prompt)
            script = STATE.next_script(service)
            if script is None:
                script = STATE.chaos_script(service)
            status, outcome, sent = self.answer(service, prompt, payload, script)
        except ClientGone:
            self.close_connection = True
            outcome = "client_closed"
        finally:
            STATE.finish(entry, end_ms=now_ms(), status=status, outcome=outcome, bytes_sent=sent)

    def answer(self, service, prompt, payload, script):
        """Serve one API request, scripted or not. Returns (status, outcome, body bytes sent)."""
        delay = STATE.delay(service) + float(script.get("delay_ms", 0))
        if delay > 0:
            time.sleep(delay / 1000.0)
        if script.get("drop"):
            self.drop(script["drop"])
            return None, "dropped", 0

        extra = script.get("headers")
        slow_ms = float(script.get("slow_body_ms", 0))
        if "size_bytes" in script:
            status = script.get("status", 200)
            return status, "ok", self.stream(status, script["size_bytes"], slow_ms, extra)

        status = script.get("status")
        kind = script.get("body_kind")
        if "body" in script:
            content_type, body = NATIVE_TYPE[service], script["body"].encode("utf-8")
        elif kind == "png":
            content_type, body = "image/png", PNG_BYTES
        elif kind == "jpeg":
            content_type, body = "image/jpeg", JPEG_BYTES
        elif kind == "html":
            content_type, body = "text/html; charset=utf-8", HTML_PAGE
        elif kind == "json_error":
            status = status or 500
            content_type = "application/json"
            body = json.dumps({"error": script.get("error", "scripted failure")}).encode("utf-8")
        elif kind == "garbage":
            content_type, body = NATIVE_TYPE[service], garbage_bytes()
        elif status is not None and status >= 400:
            content_type = "application/json"
            body = json.dumps({"error": script.get("error", f"scripted status {status}")}).encode("utf-8")
        else:
            content_type, body = success_body(service, prompt, payload, script.get("content"))
        status = status or 200

        self.start(status, content_type, len(body), extra)
        if self.command == "HEAD":
            return status, "ok", 0
        if slow_ms <= 0 or not body:
            if slow_ms > 0:
                time.sleep(slow_ms / 1000.0)
            self.write(body)
            return status, "ok", len(body)
        pieces = min(len(body), 20)
        step = -(-len(body) // pieces)
        interval = slow_ms / 1000.0 / pieces
        sent = 0
        for offset in range(0, len(body), step):
            time.sleep(interval)
            self.write(body[offset:offset + step])
            sent += len(body[offset:offset + step])
        return status, "ok", sent

    def stream(self, status, size, slow_ms, extra):
        """size bytes, PNG magic then zeros, 64 KiB at a time; nothing held but one chunk."""
        content_type = "image/png"
        self.start(status, content_type, size, extra)
        chunks = max(1, -(-size // STREAM_CHUNK))
        interval = slow_ms / 1000.0 / chunks if slow_ms > 0 else 0.0
        zeros = bytes(STREAM_CHUNK)
        sent = 0
        while sent < size:
            length = min(STREAM_CHUNK, size - sent)
            if sent == 0:
                magic = PNG_MAGIC[:length]
                chunk = magic + zeros[:length - len(magic)]
            else:
                chunk = zeros if length == STREAM_CHUNK else zeros[:length]
            if interval:
                time.sleep(interval)
            self.write(chunk)
            sent += length
        return sent

    # -- control --

    def control(self, path, query, raw):
        def service_of(value):
            if value not in SERVICES:
                raise BadRequest(f"service must be one of {', '.join(SERVICES)}")
            return value

        if path == "/_control/script":
            self.require(path, "POST")
            body = json_object(raw)
            service = service_of(body.get("service"))
            pending = STATE.add_scripts(service, script_responses(body, validate_response))
            self.send_json(200, {"ok": True, "service": service, "pending": pending})
        elif path == "/_control/reset":
            self.require(path, "POST")
            STATE.reset()
            self.send_json(200, {"ok": True})
        elif path == "/_control/default_delay":
            self.require(path, "POST")
            body = json_object(raw)
            service = service_of(body.get("service"))
            delay = body.get("delay_ms")
            if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
                raise BadRequest("delay_ms must be a number >= 0")
            STATE.set_delay(service, float(delay))
            self.send_json(200, {"ok": True, "service": service, "delay_ms": delay})
        elif path == "/_control/chaos":
            if self.command == "GET":
                self.send_json(200, STATE.chaos_report())
                return
            self.require(path, "POST")
            body = json_object(raw)
            check_fields("the body", body, CHAOS_FIELDS)
            if not body:
                STATE.set_chaos(None, None)
                self.send_json(200, {"ok": True, "chaos": {}})
                return
            service = service_of(body.get("service"))
            if set(body) == {"service"}:
                STATE.set_chaos(service, None)
                self.send_json(200, {"ok": True, "service": service, "chaos": None})
                return
            settings = chaos_settings(body)
            STATE.set_chaos(service, settings)
            self.send_json(200, {"ok": True, "service": service, "chaos": settings})
        elif path == "/_control/requests":
            self.require(path, "GET")
            service = self.query_value(query, "service")
            service = service_of(service) if service is not None else None
            self.send_json(200, STATE.requests(service))
        elif path == "/_control/scripts":
            self.require(path, "GET")
            self.send_json(200, STATE.pending_scripts())
        else:
            self.control_default(path)


def main(argv=None):
    _, arguments = parse_arguments("Fake Flux/SDXL/OpenRouter/Gemini backends for tests.", argv)
    return serve("fake_backends", arguments, Handler)


if __name__ == "__main__":
    sys.exit(main())
