#!/usr/bin/env python3
"""Fake versions of the HTTP services an ImageQueue worker calls, on one loopback port.

Standard library only. Tests start it, wait for `READY <port>` on stdout, point the worker at
http://127.0.0.1:<port>/..., script failures through /_control, and read back what the worker
sent. See README.md next to this file for the whole control API.

Usage: fake_backends.py --port P [--host 127.0.0.1] [--verbose] [--exit-on-stdin-eof]
  --port 0 picks a free port; the line `READY <port>` names the one actually bound.
  SIGTERM or SIGINT: stop listening and exit 0 (in-flight requests are abandoned).

Services (what the real ones look like; * marks the main endpoint that scripts act on):
  flux        GET  /flux?prompt=<percent-encoded>                 -> 200 image/png
  sdxl        POST /sdxl  {"prompt": ...}  Authorization: Bearer K -> 200 image/jpeg
  openrouter  POST /openrouter/chat/completions  (OpenAI shape)   -> 200 chat completion JSON
  gemini      POST /gemini/v1beta/models/<model>:generateContent  -> 200 generateContent JSON
  workersai   POST /workersai/client/v4/accounts/<account>/ai/run/<model>  -> JSON (flux) or image/png
  a1111       POST /a1111/sdapi/v1/txt2img*, GET /a1111/sdapi/v1/progress, POST /a1111/sdapi/v1/interrupt
  comfyui     POST /comfyui/prompt*, GET /comfyui/ws (WebSocket), /comfyui/history[/<id>], /comfyui/view,
              POST /comfyui/interrupt, GET|POST /comfyui/queue, GET /comfyui/system_stats
  openai      POST /openai/v1/images/generations                  -> 200 {"created", "data": [{"b64_json"}]}
Control:
  POST /_control/script         {"service", "responses": [RESPONSE, ...]}  (appends)
  POST /_control/reset          clears scripts, default delays, chaos, renders and the request log
  POST /_control/default_delay  {"service", "delay_ms"}
  POST /_control/chaos          {"service", "latency_ms": [lo, hi], "error_rate", "seed"}; {} turns it off
  GET  /_control/chaos          the chaos settings and counters, per service
  POST /_control/render         {"service": "a1111"|"comfyui", "render_ms", "steps"}  (GET: the settings)
  GET  /_control/renders?service=a1111|comfyui
  GET  /_control/requests[?service=S]
  GET  /_control/scripts        scripted responses not used yet, per service
  GET  /_control/health
"""

import base64
import hashlib
import json
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import uuid
import zlib
from urllib.parse import parse_qs, unquote

from fakeserver import (CLIENT_ERRORS, BadRequest, ClientGone, FakeHandler, check_fields, json_object, now_ms,
                        parse_arguments, script_responses, serve)

SERVICES = ("flux", "sdxl", "openrouter", "gemini", "workersai", "a1111", "comfyui", "openai")
RENDER_SERVICES = ("a1111", "comfyui")
BODY_KINDS = ("png", "jpeg", "html", "json_error", "garbage")
RESPONSE_FIELDS = {
    "status": int, "headers": dict, "body": str, "body_kind": str, "content": str, "error": str,
    "delay_ms": (int, float), "slow_body_ms": (int, float), "size_bytes": int, "drop": (bool, str),
    "cf_error": dict, "openai_error": dict, "render_ms": (int, float), "steps": int, "execution_error": str,
}
# RESPONSE fields that only some services accept.
SERVICE_FIELDS = {"cf_error": ("workersai",), "openai_error": ("openai",), "render_ms": RENDER_SERVICES,
                  "steps": RENDER_SERVICES, "execution_error": ("comfyui",)}
CF_ERROR_FIELDS = {"code": int, "message": str}
OPENAI_ERROR_FIELDS = {"code": (str, type(None)), "type": str, "message": str, "param": (str, type(None))}
RENDER_FIELDS = {"service": str, "render_ms": (int, float), "steps": int}
DEFAULT_RENDER_MS = 600
DEFAULT_STEPS = 6
MAX_STEPS = 10000
CHAOS_FIELDS = {"service": str, "latency_ms": (list, int, float), "error_rate": (int, float), "seed": int}
CHAOS_STATUSES = (500, 502, 503)
STREAM_CHUNK = 64 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NATIVE_TYPE = {"flux": "image/png", "sdxl": "image/jpeg", "openrouter": "application/json",
               "gemini": "application/json", "workersai": "application/json", "a1111": "application/json",
               "comfyui": "application/json", "openai": "application/json"}


# --- Canned bodies ---------------------------------------------------------------------------

def make_png(width=8, height=8, blue=128):
    """A valid 8-bit RGB PNG (a colour gradient), built with zlib and struct."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes((x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), blue))
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
PNG_BASE64 = base64.b64encode(PNG_BYTES).decode("ascii")
PREVIEW_PNG = make_png(4, 4)  # progress previews (a1111 current_image, comfyui binary frames)
PREVIEW_BASE64 = base64.b64encode(PREVIEW_PNG).decode("ascii")
JPEG_BYTES = make_jpeg()


def seeded_png(tag):
    """A PNG of its own for each tag (a seed, or a request's image number): the canned gradient
    8 to 263 pixels wide, with another blue channel, so the images of a batch all differ."""
    digest = hashlib.sha256(str(tag).encode("utf-8")).digest()
    return make_png(8 + digest[0], 8, blue=digest[1])


def seeded_base64(tag):
    return base64.b64encode(seeded_png(tag)).decode("ascii")
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


def validate_response(index, response, service=None):
    check_fields(f"responses[{index}]", response, RESPONSE_FIELDS, bool_fields=("drop",))
    for key, services in SERVICE_FIELDS.items():
        if key in response and service not in services:
            raise BadRequest(f"responses[{index}].{key} is only for {' and '.join(services)}")
    if "cf_error" in response:
        check_fields(f"responses[{index}].cf_error", response["cf_error"], CF_ERROR_FIELDS)
        if "code" not in response["cf_error"]:
            raise BadRequest(f"responses[{index}].cf_error needs a code")
    if "openai_error" in response:
        check_fields(f"responses[{index}].openai_error", response["openai_error"], OPENAI_ERROR_FIELDS)
    check_render_fields(f"responses[{index}]", response)
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


def check_render_fields(where, item):
    if "render_ms" in item and item["render_ms"] < 0:
        raise BadRequest(f"{where}.render_ms must not be negative")
    if "steps" in item and not 1 <= item["steps"] <= MAX_STEPS:
        raise BadRequest(f"{where}.steps must be 1...{MAX_STEPS}")


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


# --- Workers AI, A1111, ComfyUI and OpenAI images -------------------------------------------

UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
WORKERSAI_PREFIX = "/workersai/client/v4/accounts/"
# Workers AI's documented error codes and their HTTP statuses (developers.cloudflare.com,
# workers-ai/platform/errors), plus the API's generic authentication error.
CF_ERROR_STATUS = {5007: 400, 5004: 400, 3039: 400, 3003: 400, 5018: 403, 5016: 403, 3023: 403, 3041: 403,
                   5019: 405, 5005: 405, 3042: 404, 3006: 413, 3007: 408, 3008: 408, 3036: 429, 3040: 429,
                   10000: 401}
CF_ERROR_MESSAGE = {
    3036: "You have used up your daily free allocation of 10,000 neurons. Please upgrade to Cloudflare's "
          "Workers Paid plan if you would like to continue usage.",
    3040: "No more data centers to forward the request to", 3007: "Request timeout", 3008: "Request was aborted",
    3006: "Request is too large", 3042: "The model name is invalid", 10000: "Authentication error",
}
CF_CODE_OF_STATUS = {401: 10000, 403: 3023, 404: 3042, 408: 3007, 413: 3006, 429: 3040}
OPENAI_ERROR_STATUS = {"content_policy_violation": 400, "invalid_api_key": 401, "rate_limit_exceeded": 429,
                       "insufficient_quota": 429, "model_not_found": 404, "server_error": 500}
OPENAI_ERROR_TYPE = {"content_policy_violation": "invalid_request_error", "invalid_api_key": "invalid_request_error",
                     "rate_limit_exceeded": "requests", "insufficient_quota": "insufficient_quota",
                     "model_not_found": "invalid_request_error", "server_error": "server_error"}
OPENAI_ERROR_MESSAGE = {
    "content_policy_violation": "Your request was rejected as a result of our safety system.",
    "invalid_api_key": "Incorrect API key provided.",
    "rate_limit_exceeded": "Rate limit reached for images per minute. Please try again later.",
    "insufficient_quota": "You exceeded your current quota, please check your plan and billing details.",
    "model_not_found": "The model does not exist or you do not have access to it.",
    "server_error": "The server had an error while processing your request. Sorry about that!",
}
OPENAI_CODE_OF_STATUS = {401: "invalid_api_key", 429: "rate_limit_exceeded", 500: "server_error"}


def route_more(path):
    """(service, endpoint, allowed methods, detail) for the newer services' paths, or Nones.

    The endpoint names the handler method; detail is the Workers AI model or the ComfyUI
    history id.
    """
    if path.startswith("/workersai/"):
        decoded = unquote(path)
        if decoded.startswith(WORKERSAI_PREFIX):
            account, _, rest = decoded[len(WORKERSAI_PREFIX):].partition("/")
            if account and rest.startswith("ai/run/") and len(rest) > len("ai/run/"):
                return "workersai", "workersai_run", ("POST",), rest[len("ai/run/"):]
        return None, None, None, None
    fixed = {
        "/a1111/sdapi/v1/txt2img": ("a1111", "a1111_txt2img", ("POST",)),
        "/a1111/sdapi/v1/progress": ("a1111", "a1111_progress", ("GET",)),
        "/a1111/sdapi/v1/interrupt": ("a1111", "a1111_interrupt", ("POST",)),
        "/comfyui/prompt": ("comfyui", "comfyui_prompt", ("GET", "POST")),
        "/comfyui/ws": ("comfyui", "comfyui_ws", ("GET",)),
        "/comfyui/history": ("comfyui", "comfyui_history", ("GET",)),
        "/comfyui/view": ("comfyui", "comfyui_view", ("GET",)),
        "/comfyui/interrupt": ("comfyui", "comfyui_interrupt", ("POST",)),
        "/comfyui/queue": ("comfyui", "comfyui_queue", ("GET", "POST")),
        "/comfyui/system_stats": ("comfyui", "comfyui_system_stats", ("GET",)),
        "/openai/v1/images/generations": ("openai", "openai_generations", ("POST",)),
    }
    if path in fixed:
        return fixed[path] + (None,)
    if path.startswith("/comfyui/history/") and len(path) > len("/comfyui/history/"):
        return "comfyui", "comfyui_history", ("GET",), unquote(path[len("/comfyui/history/"):])
    return None, None, None, None


def json_bytes(value):
    return json.dumps(value).encode("utf-8")


def cf_envelope(code, message):
    return {"result": None, "success": False, "errors": [{"code": code, "message": message}], "messages": []}


def openai_error(message, kind, code=None, param=None):
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def openai_type_of_status(status):
    if status == 429:
        return "requests"
    return "server_error" if status >= 500 else "invalid_request_error"


def a1111_error(message, kind="HTTPException"):
    """The web UI API's error body (its exception handler's fields)."""
    return {"error": kind, "detail": message, "body": "", "errors": message}


def comfy_error(kind, message):
    return {"error": {"type": kind, "message": message, "details": message, "extra_info": {}}, "node_errors": {}}


def error_body(service, status, message):
    """A bare error status's body, in the service's own error shape."""
    if service == "workersai":
        return cf_envelope(CF_CODE_OF_STATUS.get(status, 0), message)
    if service == "openai":
        return openai_error(message, openai_type_of_status(status), OPENAI_CODE_OF_STATUS.get(status))
    if service == "a1111":
        return a1111_error(message)
    if service == "comfyui":
        return comfy_error("scripted_error", message)
    return {"error": message}


def bad_body_error(service, message):
    """The 400 body for a main endpoint's request body that is not a JSON object."""
    if service == "workersai":
        return cf_envelope(3003, message)
    if service == "openai":
        return openai_error(f"We could not parse the JSON body of your request. ({message})", "invalid_request_error")
    if service == "a1111":
        return a1111_error(message)
    if service == "comfyui":
        return comfy_error("invalid_json", message)
    return {"error": message}


def is_flux_model(model):
    return "flux" in model.lower()


def comfy_prompt_text(workflow):
    """The text of the positive CLIPTextEncode* node (the one a sampler's `positive` input links
    to), else of the first such node with a string `text`; None if there is none."""
    if not isinstance(workflow, dict):
        return None

    def text_of(node_id):
        node = workflow.get(node_id)
        if isinstance(node, dict) and str(node.get("class_type", "")).startswith("CLIPTextEncode"):
            inputs = node.get("inputs")
            if isinstance(inputs, dict) and isinstance(inputs.get("text"), str):
                return inputs["text"]
        return None

    for node in workflow.values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        link = inputs.get("positive") if isinstance(inputs, dict) else None
        if isinstance(link, list) and link and isinstance(link[0], (str, int)):
            text = text_of(str(link[0]))
            if text is not None:
                return text
    for node_id in workflow:
        text = text_of(node_id)
        if text is not None:
            return text
    return None


def is_failure_script(script):
    """Whether a script answers with something else than the service's success."""
    status = script.get("status")
    return bool(script.get("drop")) or any(key in script for key in ("size_bytes", "body", "body_kind")) \
        or (status is not None and status >= 400)


class RenderSettings:
    """The lasting render_ms/steps of a render service, and its renders so far."""

    def __init__(self):
        self.render_ms = DEFAULT_RENDER_MS
        self.steps = DEFAULT_STEPS
        self.records = []

    def pick(self, script):
        """(render_ms, steps) for a render: the script's, else the lasting ones."""
        return script.get("render_ms", self.render_ms), script.get("steps", self.steps)

    def report(self):
        return {"render_ms": self.render_ms, "steps": self.steps}


class A1111:
    """The web UI's one-at-a-time renderer: txt2img requests render in arrival order."""

    def __init__(self):
        self.lock = threading.Condition()
        self.settings = RenderSettings()
        self.next_ticket = 0
        self.serving = 0
        self.current = None
        self.count = 0

    def reset(self):
        with self.lock:
            if self.current is not None:
                self.current["interrupt"].set()
            self.settings = RenderSettings()
            self.count = 0

    def render(self, prompt, render_ms, steps):
        """Waits for its turn, renders (interruptibly), and returns the render's record."""
        with self.lock:
            ticket = self.next_ticket
            self.next_ticket += 1
            while self.serving != ticket:
                self.lock.wait()
            self.count += 1
            record = {"id": str(self.count), "prompt": prompt, "started_ms": now_ms(), "ended_ms": None,
                      "interrupted": False, "status": "running", "steps": steps, "steps_done": 0,
                      "render_ms": render_ms}
            self.settings.records.append(record)
            job = {"record": record, "steps": steps, "done": 0, "start": time.monotonic(), "render_ms": render_ms,
                   "interrupt": threading.Event()}
            self.current = job
        try:
            interval = render_ms / 1000.0 / steps
            for step in range(1, steps + 1):
                if job["interrupt"].wait(interval):
                    break
                with self.lock:
                    job["done"] = record["steps_done"] = step
        finally:
            with self.lock:
                interrupted = job["interrupt"].is_set()
                record.update(ended_ms=now_ms(), interrupted=interrupted,
                              status="interrupted" if interrupted else "success")
                self.current = None
                self.serving += 1
                self.lock.notify_all()
        return record

    def progress(self, skip_current_image):
        with self.lock:
            job = self.current
            if job is None:
                return {"progress": 0.0, "eta_relative": 0.0,
                        "state": {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                                  "job_count": 0, "job_timestamp": "0", "job_no": 0, "sampling_step": 0,
                                  "sampling_steps": 0},
                        "current_image": None, "textinfo": None, "current_task": None}
            done, steps = job["done"], job["steps"]
            elapsed = time.monotonic() - job["start"]
            image = PREVIEW_BASE64 if done > 0 and not skip_current_image else None
            return {"progress": done / steps, "eta_relative": max(0.0, job["render_ms"] / 1000.0 - elapsed),
                    "state": {"skipped": False, "interrupted": job["interrupt"].is_set(),
                              "stopping_generation": False, "job": f"task({job['record']['id']})", "job_count": 1,
                              "job_timestamp": time.strftime("%Y%m%d%H%M%S"), "job_no": 0,
                              "sampling_step": done, "sampling_steps": steps},
                    "current_image": image, "textinfo": None, "current_task": f"task({job['record']['id']})"}

    def interrupt(self):
        """Stops the current render; returns whether one was running."""
        with self.lock:
            if self.current is None:
                return False
            self.current["interrupt"].set()
            return True

    def records(self):
        with self.lock:
            return [dict(record) for record in self.settings.records]


def a1111_success(payload, record):
    """The txt2img answer: batch_size x n_iter base64 PNGs, the parameters, the info string."""
    def count(name):
        value = payload.get(name, 1)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1
    images = min(count("batch_size") * count("n_iter"), 64)
    parameters = {"prompt": "", "negative_prompt": "", "steps": 50, "width": 512, "height": 512,
                  "batch_size": 1, "n_iter": 1, "seed": -1, "cfg_scale": 7.0, "sampler_name": None}
    parameters.update(payload)
    seed = parameters["seed"] if isinstance(parameters["seed"], int) and parameters["seed"] >= 0 \
        else 1000 + int(record["id"])
    prompt = parameters["prompt"] if isinstance(parameters["prompt"], str) else ""
    info = {"prompt": prompt, "all_prompts": [prompt] * images, "negative_prompt": parameters["negative_prompt"],
            "seed": seed, "all_seeds": [seed + i for i in range(images)], "width": parameters["width"],
            "height": parameters["height"], "sampler_name": parameters["sampler_name"] or "Euler a",
            "cfg_scale": parameters["cfg_scale"], "steps": parameters["steps"], "batch_size": parameters["batch_size"],
            "interrupted": record["interrupted"], "infotexts": [f"{prompt}\nSteps: {parameters['steps']}, Seed: {seed}"]
            * images}
    # One image: the canned PNG; a batch: one PNG per seed, all different.
    pictures = [PNG_BASE64] if images == 1 else [seeded_base64(f"a1111:{seed}") for seed in info["all_seeds"]]
    return {"images": pictures, "parameters": parameters, "info": json.dumps(info)}


# -- WebSocket (RFC 6455, server side) --

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
WS_MAX_MESSAGE = 1 << 20
WS_SEND_TIMEOUT_S = 5
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest()).decode("ascii")


def ws_frame(opcode, payload):
    """A final, unmasked server frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack(">BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        header = struct.pack(">BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack(">BBQ", 0x80 | opcode, 127, length)
    return header + payload


class WebSocket:
    """One accepted WebSocket connection. send_* may be called from any thread; serve() runs
    the read loop on the handler's thread until the connection ends."""

    def __init__(self, handler, client_id):
        self.sock = handler.connection
        self.rfile = handler.rfile
        self.client_id = client_id
        try:  # a client that stops reading must not block the ComfyUI worker for good
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", WS_SEND_TIMEOUT_S, 0))
        except (OSError, AttributeError):
            pass
        self.lock = threading.Lock()
        self.closed = False
        self.sent_close = False
        self.received = 0  # data messages from the client

    def send_raw(self, frame):
        """Writes a frame (the caller holds self.lock). False once the connection is gone."""
        if self.closed:
            return False
        try:
            self.sock.sendall(frame)
            return True
        except OSError:  # gone, or not reading for WS_SEND_TIMEOUT_S: end the connection
            self.closed = True
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return False

    def send(self, opcode, payload):
        with self.lock:
            return self.send_raw(ws_frame(opcode, payload))

    def send_json(self, value):
        return self.send(OP_TEXT, json.dumps(value).encode("utf-8"))

    def close(self, code, reason=""):
        with self.lock:
            if not self.sent_close:
                self.sent_close = True
                self.send_raw(ws_frame(OP_CLOSE, struct.pack(">H", code) + reason.encode("utf-8")[:120]))

    def read_exact(self, count):
        data = self.rfile.read(count) if count else b""
        if len(data) < count:
            raise EOFError()
        return data

    def read_frame(self):
        first, second = self.read_exact(2)
        fin, opcode, masked, length = first & 0x80, first & 0x0F, second & 0x80, second & 0x7F
        if first & 0x70:
            raise ProtocolError(1002, "reserved bits set")
        if length == 126:
            length = struct.unpack(">H", self.read_exact(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", self.read_exact(8))[0]
        if opcode >= 0x8 and (not fin or length > 125):
            raise ProtocolError(1002, "bad control frame")
        if not masked:
            raise ProtocolError(1002, "client frames must be masked")
        if length > WS_MAX_MESSAGE:
            raise ProtocolError(1009, "frame too large")
        mask = self.read_exact(4)
        payload = self.read_exact(length)
        if length:
            key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
            payload = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
        return bool(fin), opcode, payload

    def serve(self):
        """Reads until the client closes or goes away. Returns "ok" after a close handshake,
        "client_closed" when the connection just ended, "protocol_error" after a bad frame."""
        message, message_opcode = [], None
        try:
            while not self.closed:
                fin, opcode, payload = self.read_frame()
                if opcode == OP_PING:
                    self.send(OP_PONG, payload)
                elif opcode == OP_PONG:
                    pass
                elif opcode == OP_CLOSE:
                    code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1000
                    self.close(code if 1000 <= code < 5000 and code not in (1004, 1005, 1006, 1015) else 1000)
                    return "ok"
                elif opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                    if (opcode == OP_CONTINUATION) != (message_opcode is not None):
                        raise ProtocolError(1002, "unexpected continuation state")
                    if opcode != OP_CONTINUATION:
                        message_opcode = opcode
                    message.append(payload)
                    if sum(len(part) for part in message) > WS_MAX_MESSAGE:
                        raise ProtocolError(1009, "message too large")
                    if fin:
                        data = b"".join(message)
                        if message_opcode == OP_TEXT:
                            try:
                                data.decode("utf-8")
                            except UnicodeDecodeError:
                                raise ProtocolError(1007, "text is not UTF-8") from None
                        self.received += 1  # the fake ignores what clients send
                        message, message_opcode = [], None
                else:
                    raise ProtocolError(1002, f"unknown opcode {opcode}")
            return "client_closed"
        except ProtocolError as error:
            self.close(error.code, error.reason)
            return "protocol_error"
        except (EOFError, OSError, ValueError):
            return "client_closed"
        finally:
            self.closed = True


class ProtocolError(Exception):
    def __init__(self, code, reason):
        super().__init__(reason)
        self.code, self.reason = code, reason


# -- ComfyUI --

class ComfyUI:
    """ComfyUI's prompt queue, its one worker, its history and its WebSocket clients."""

    def __init__(self):
        self.lock = threading.Condition()
        self.sockets = []
        self.clear()
        threading.Thread(target=self.work, name="comfyui-worker", daemon=True).start()

    def clear(self):
        self.settings = RenderSettings()
        self.prompts = {}    # prompt_id -> item, pending, running and finished
        self.pending = []    # prompt ids, FIFO
        self.running = None
        self.number = 0
        self.images = 0
        self.files = {}      # output filename -> PNG bytes

    def reset(self):
        with self.lock:
            if self.running is not None:
                self.running["interrupt"].set()
            self.clear()

    # queue

    def remaining(self):
        return len(self.pending) + (1 if self.running is not None else 0)

    def status_message(self, sid=None):
        data = {"status": {"exec_info": {"queue_remaining": self.remaining()}}}
        if sid is not None:
            data["sid"] = sid
        return {"type": "status", "data": data}

    def enqueue(self, prompt_id, workflow, client_id, prompt, script):
        """(prompt_id, number, queued now?) of a submitted prompt; a known id is not queued again."""
        with self.lock:
            if prompt_id is not None and prompt_id in self.prompts:
                item = self.prompts[prompt_id]
                return item["id"], item["number"], False
            prompt_id = prompt_id or str(uuid.uuid4())
            render_ms, steps = self.settings.pick(script)
            save = next((node_id for node_id, node in workflow.items() if node.get("class_type") == "SaveImage"), "9")
            item = {"id": prompt_id, "number": self.number, "workflow": workflow, "client_id": client_id,
                    "prompt": prompt, "save_node": save, "render_ms": render_ms, "steps": steps,
                    "execution_error": script.get("execution_error"), "state": "pending", "outputs": {},
                    "messages": [], "interrupt": threading.Event(), "settings": self.settings,
                    "created_ms": now_ms()}
            self.number += 1
            self.prompts[prompt_id] = item
            self.pending.append(prompt_id)
            self.lock.notify_all()
            status = self.status_message()
        self.broadcast(status)
        return prompt_id, item["number"], True

    def queue_entry(self, item):
        return [item["number"], item["id"], item["workflow"], {"client_id": item["client_id"]}, [item["save_node"]]]

    def queue(self):
        with self.lock:
            running = [self.queue_entry(self.running)] if self.running is not None else []
            return {"queue_running": running, "queue_pending": [self.queue_entry(self.prompts[i]) for i in self.pending]}

    def delete(self, prompt_ids=None):
        """Takes pending prompts out of the queue (all of them when prompt_ids is None)."""
        with self.lock:
            doomed = list(self.pending) if prompt_ids is None else [i for i in self.pending if i in prompt_ids]
            for prompt_id in doomed:
                self.pending.remove(prompt_id)
                del self.prompts[prompt_id]
            status = self.status_message()
        if doomed:
            self.broadcast(status)
        return doomed

    def interrupt(self, prompt_id=None):
        """Stops the running render (only if it is prompt_id, when given); returns its id or None."""
        with self.lock:
            item = self.running
            if item is None or (prompt_id is not None and item["id"] != prompt_id):
                return None
            item["interrupt"].set()
            return item["id"]

    def history(self, prompt_id=None):
        with self.lock:
            items = [self.prompts.get(prompt_id)] if prompt_id is not None else list(self.prompts.values())
            return {item["id"]: self.history_entry(item) for item in items
                    if item is not None and item["state"] in ("success", "interrupted", "error")}

    def history_entry(self, item):
        success = item["state"] == "success"
        entry = {"prompt": self.queue_entry(item), "outputs": item["outputs"],
                 "status": {"status_str": "success" if success else "error", "completed": success,
                            "messages": item["messages"]}}
        entry["meta"] = {node: {"node_id": node, "display_node": node, "parent_node": None, "real_node_id": node}
                         for node in item["outputs"]}
        return entry

    def file(self, filename):
        with self.lock:
            return self.files.get(filename)

    def records(self):
        with self.lock:
            return [dict(record) for record in self.settings.records]

    # WebSocket clients

    def connect(self, socket_):
        """Registers a client and greets it: status first, then the node it is running, if any."""
        with socket_.lock:
            with self.lock:
                self.sockets.append(socket_)
                greeting = [self.status_message(socket_.client_id)]
                item = self.running
                if item is not None and item["client_id"] == socket_.client_id and item.get("node") is not None:
                    greeting.append({"type": "executing", "data": {"node": item["node"], "display_node": item["node"],
                                                                   "prompt_id": item["id"]}})
            for message in greeting:
                socket_.send_raw(ws_frame(OP_TEXT, json_bytes(message)))

    def disconnect(self, socket_):
        with self.lock:
            if socket_ in self.sockets:
                self.sockets.remove(socket_)

    def clients(self, client_id=None):
        with self.lock:
            return [s for s in self.sockets if client_id is None or s.client_id == client_id]

    def broadcast(self, message):
        for client in self.clients():
            client.send_json(message)

    def send(self, client_id, message):
        if client_id is None:
            return
        for client in self.clients(client_id):
            client.send_json(message)

    def send_preview(self, client_id):
        if client_id is None:
            return
        frame = struct.pack(">II", 1, 2) + PREVIEW_PNG  # PREVIEW_IMAGE, PNG
        for client in self.clients(client_id):
            client.send(OP_BINARY, frame)

    # the worker

    def work(self):
        while True:
            with self.lock:
                while not self.pending:
                    self.lock.wait()
                item = self.prompts[self.pending.pop(0)]
                item["state"] = "running"
                self.running = item
                record = {"id": item["id"], "prompt": item["prompt"], "started_ms": now_ms(), "ended_ms": None,
                          "interrupted": False, "status": "running", "steps": item["steps"], "steps_done": 0,
                          "render_ms": item["render_ms"], "client_id": item["client_id"], "number": item["number"]}
                item["settings"].records.append(record)
                status = self.status_message()
            self.broadcast(status)
            try:
                self.execute(item, record)
            except Exception as error:  # never let the worker die: the render fails instead
                sys.stderr.write(f"fake_backends: comfyui render failed: {error!r}\n")
                with self.lock:
                    item["state"] = "error"
                    record.update(status="error")
            with self.lock:
                record["ended_ms"] = now_ms()
                if self.running is item:
                    self.running = None
                status = self.status_message()
            self.broadcast(status)

    def execute(self, item, record):
        prompt_id, client, workflow = item["id"], item["client_id"], item["workflow"]

        def stamp(data):
            return dict(data, prompt_id=prompt_id, timestamp=now_ms())

        def event(kind, data, history=False):
            if history:
                with self.lock:
                    item["messages"].append([kind, data])
            self.send(client, {"type": kind, "data": data})

        save = item["save_node"]  # "9" when no node is a SaveImage: then it is run last, as if it were one
        order = comfy_node_order(workflow, save)
        sampler = next((n for n in order if "Sampler" in str(workflow.get(n, {}).get("class_type", ""))), None)
        if sampler is None:
            sampler = order[0]
        event("execution_start", stamp({}), history=True)
        event("execution_cached", stamp({"nodes": []}), history=True)
        executed = []
        steps, interval = item["steps"], item["render_ms"] / 1000.0 / item["steps"]
        for node in order:
            with self.lock:
                item["node"] = node
            event("executing", {"node": node, "display_node": node, "prompt_id": prompt_id})
            if node == sampler:
                for step in range(1, steps + 1):
                    if item["interrupt"].wait(interval):
                        break
                    with self.lock:
                        record["steps_done"] = step
                    event("progress", {"value": step, "max": steps, "prompt_id": prompt_id, "node": node})
                    self.send_preview(client)
            if item["interrupt"].is_set():
                class_type = workflow.get(node, {}).get("class_type")
                event("execution_interrupted", stamp({"node_id": node, "node_type": class_type,
                                                      "executed": executed}), history=True)
                with self.lock:
                    item["state"] = "interrupted"
                    record.update(interrupted=True, status="interrupted")
                return
            if node == sampler and item["execution_error"] is not None:
                class_type = workflow.get(node, {}).get("class_type")
                event("execution_error", stamp({"node_id": node, "node_type": class_type, "executed": executed,
                                                "exception_message": item["execution_error"],
                                                "exception_type": "RuntimeError", "traceback": [],
                                                "current_inputs": {}, "current_outputs": {}}), history=True)
                with self.lock:
                    item["state"] = "error"
                    record.update(status="error")
                return
            if node == save:
                images = self.save_images(item)
                output = {"images": images}
                with self.lock:
                    item["outputs"] = {save: output}
                event("executed", {"node": node, "display_node": node, "output": output, "prompt_id": prompt_id})
            executed.append(node)
        event("execution_success", stamp({}), history=True)
        with self.lock:
            item["state"] = "success"
            item["node"] = None
            record.update(status="success")
        event("executing", {"node": None, "prompt_id": prompt_id})

    def save_images(self, item):
        count = 1
        for node in item["workflow"].values():
            value = node.get("inputs", {}).get("batch_size") if isinstance(node.get("inputs"), dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                count = min(value, 64)
                break
        # A workflow with an integer seed input renders that seed's picture (the canned PNG
        # without one).
        seeds = [node["inputs"][name] for node in item["workflow"].values() if isinstance(node.get("inputs"), dict)
                 for name in ("seed", "noise_seed") if isinstance(node["inputs"].get(name), int)
                 and not isinstance(node["inputs"].get(name), bool)]
        picture = seeded_png(f"comfyui:{seeds[0]}") if seeds else PNG_BYTES
        images = []
        with self.lock:
            stale = item["settings"] is not self.settings  # reset while rendering: keep nothing
            for _ in range(count):
                self.images += 0 if stale else 1
                filename = f"ComfyUI_{self.images:05d}_.png"
                if not stale:
                    self.files[filename] = picture
                images.append({"filename": filename, "subfolder": "", "type": "output"})
        return images


def comfy_node_order(workflow, save):
    """The nodes in the order they run: each after the nodes its inputs link to ([id, index]),
    otherwise in the workflow's order; the save node last (also when it is not in the workflow)."""
    order, seen = [], {save}

    def visit(node_id):
        if node_id in seen or node_id not in workflow:
            return
        seen.add(node_id)
        for value in (workflow[node_id].get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int)) \
                    and isinstance(value[1], int) and not isinstance(value[1], bool):
                visit(str(value[0]))
        order.append(node_id)

    for node_id in workflow:
        visit(node_id)
    return order + [save]


def check_comfy_submission(payload):
    """(prompt_id or None, workflow, client_id) of a POST /prompt body, or raises ComfyRefusal."""
    prompt_id = payload.get("prompt_id")
    if prompt_id is not None and (not isinstance(prompt_id, str) or not UUID_PATTERN.match(prompt_id)):
        raise ComfyRefusal(comfy_error("invalid_prompt_id",
                                       f"prompt_id must be a lowercase UUID (8-4-4-4-12 hex), not {prompt_id!r}"))
    if "prompt" not in payload:
        raise ComfyRefusal(comfy_error("no_prompt", "No prompt provided"))
    workflow = payload["prompt"]
    if not isinstance(workflow, dict) or not workflow:
        raise ComfyRefusal(comfy_error("invalid_prompt", "the prompt must be a non-empty object of nodes"))
    for node_id, node in workflow.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise ComfyRefusal(comfy_error("invalid_prompt",
                                           f"Cannot execute because node {node_id} is missing the class_type property."))
        if "inputs" in node and not isinstance(node["inputs"], dict):
            raise ComfyRefusal(comfy_error("invalid_prompt", f"node {node_id}: inputs must be an object"))
    client_id = payload.get("client_id")
    return prompt_id, workflow, client_id if isinstance(client_id, str) else None


class ComfyRefusal(Exception):
    def __init__(self, body):
        super().__init__(body["error"]["message"])
        self.body = body


A1111_RENDERER = A1111()
COMFYUI = ComfyUI()
RENDERERS = {"a1111": A1111_RENDERER, "comfyui": COMFYUI}


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
        endpoint, detail = None, None
        if service is None:
            service, endpoint, allowed, detail = route_more(path)
        allowed = (allowed,) if isinstance(allowed, str) else allowed
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
            if self.command not in allowed:
                status = 405
                sent = self.send_json(405, {"error": f"{path} accepts {' or '.join(allowed)}, not {self.command}"})
                return
            if endpoint is not None:
                status, outcome, sent = getattr(self, endpoint)(entry, query, raw, detail)
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

    def answer(self, service, prompt, payload, script, native_type=None, success=None, before=None, special=None):
        """Serve one API request, scripted or not. Returns (status, outcome, body bytes sent).

        The newer services pass native_type (a scripted body's Content-Type), success (() ->
        (status or None, content type, body) of the default answer), before (run after the
        delay, before anything is sent: a render) and special (script -> (status, content
        type, body) or None: cf_error / openai_error).
        """
        delay = STATE.delay(service) + float(script.get("delay_ms", 0))
        if delay > 0:
            time.sleep(delay / 1000.0)
        if before is not None:
            before()
        if script.get("drop"):
            self.drop(script["drop"])
            return None, "dropped", 0

        extra = script.get("headers")
        slow_ms = float(script.get("slow_body_ms", 0))
        if "size_bytes" in script:
            status = script.get("status", 200)
            return status, "ok", self.stream(status, script["size_bytes"], slow_ms, extra)

        native_type = native_type or NATIVE_TYPE[service]
        status = script.get("status")
        kind = script.get("body_kind")
        special_answer = special(script) if special is not None else None
        if "body" in script:
            content_type, body = native_type, script["body"].encode("utf-8")
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
            content_type, body = native_type, garbage_bytes()
        elif special_answer is not None:
            status, content_type, body = special_answer
        elif status is not None and status >= 400:
            content_type = "application/json"
            body = json.dumps(error_body(service, status, script.get("error", f"scripted status {status}"))).encode("utf-8")
        elif success is not None:
            default_status, content_type, body = success()
            status = status or default_status
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

    # -- the newer services' endpoints: each returns (status, outcome, body bytes sent) --

    def json_payload(self, service, raw):
        """(payload, None), or (None, the answer) after a 400 for a body that is not a JSON object."""
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            message = f"malformed JSON body: {error}"
        else:
            if isinstance(payload, dict):
                return payload, None
            message = "the JSON body must be an object"
        return None, (400, "ok", self.send_json(400, bad_body_error(service, message)))

    @staticmethod
    def script_for(service):
        script = STATE.next_script(service)
        return script if script is not None else STATE.chaos_script(service)

    def send_empty(self, status=200):
        """An empty answer, as ComfyUI gives for /interrupt and POST /queue."""
        self.start(status, "text/plain; charset=utf-8", 0)
        return 0

    def workersai_run(self, entry, query, raw, model):
        payload, refused = self.json_payload("workersai", raw)
        if refused:
            return refused
        prompt = payload.get("prompt") if isinstance(payload.get("prompt"), str) else None
        STATE.finish(entry, prompt=prompt)
        script = self.script_for("workersai")
        flux = is_flux_model(model)
        # A request with a seed gets that seed's picture; without one, the canned PNG.
        seed = payload.get("seed")
        picture = seeded_png(f"workersai:{seed}") if isinstance(seed, int) and not isinstance(seed, bool) else PNG_BYTES

        def success():
            if flux:
                return 200, "application/json", json_bytes({"result": {"image": base64.b64encode(picture).decode("ascii")},
                                                            "success": True, "errors": [], "messages": []})
            return 200, "image/png", picture

        def special(script):
            if "cf_error" not in script:
                return None
            code = script["cf_error"]["code"]
            message = script["cf_error"].get("message", CF_ERROR_MESSAGE.get(code, f"scripted error {code}"))
            return (script.get("status", CF_ERROR_STATUS.get(code, 400)), "application/json",
                    json_bytes(cf_envelope(code, message)))

        return self.answer("workersai", prompt, payload, script, native_type="application/json" if flux else "image/png",
                           success=success, special=special)

    def openai_generations(self, entry, query, raw, _):
        payload, refused = self.json_payload("openai", raw)
        if refused:
            return refused
        prompt = payload.get("prompt") if isinstance(payload.get("prompt"), str) else None
        STATE.finish(entry, prompt=prompt)
        count = payload.get("n", 1)
        if count is None:
            count = 1
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 10:
            body = openai_error(f"Invalid 'n': {count!r}. Expected an integer from 1 to 10.", "invalid_request_error",
                                "invalid_value", "n")
            return 400, "ok", self.send_json(400, body)
        script = self.script_for("openai")

        def success():
            # n = 1: the canned PNG; more: a different PNG each.
            images = [PNG_BASE64] if count == 1 else [seeded_base64(f"openai:{prompt}:{i}") for i in range(count)]
            data = [{"b64_json": image, "revised_prompt": prompt or ""} for image in images]
            return 200, "application/json", json_bytes({"created": int(time.time()), "data": data})

        def special(script):
            if "openai_error" not in script:
                return None
            error = script["openai_error"]
            code = error.get("code")
            status = script.get("status") or OPENAI_ERROR_STATUS.get(code) \
                or (400 if error.get("type") == "invalid_request_error" else 500)
            kind = error.get("type") or OPENAI_ERROR_TYPE.get(code) or openai_type_of_status(status)
            message = error.get("message") or OPENAI_ERROR_MESSAGE.get(code) \
                or script.get("error", f"scripted error {status}")
            return status, "application/json", json_bytes(openai_error(message, kind, code, error.get("param")))

        return self.answer("openai", prompt, payload, script, success=success, special=special)

    def a1111_txt2img(self, entry, query, raw, _):
        payload, refused = self.json_payload("a1111", raw)
        if refused:
            return refused
        prompt = payload.get("prompt") if isinstance(payload.get("prompt"), str) else None
        STATE.finish(entry, prompt=prompt)
        script = self.script_for("a1111")
        rendered = {}

        def before():
            if "render_ms" in script or not is_failure_script(script):
                render_ms, steps = A1111_RENDERER.settings.pick(script)
                rendered["record"] = A1111_RENDERER.render(prompt, render_ms, steps)

        def success():
            return 200, "application/json", json_bytes(a1111_success(payload, rendered["record"]))

        return self.answer("a1111", prompt, payload, script, success=success, before=before)

    def a1111_progress(self, entry, query, raw, _):
        skip = (self.query_value(query, "skip_current_image") or "").lower() in ("true", "1", "yes")
        return 200, "ok", self.send_json(200, A1111_RENDERER.progress(skip))

    def a1111_interrupt(self, entry, query, raw, _):
        A1111_RENDERER.interrupt()
        return 200, "ok", self.send_json(200, {})

    def comfyui_prompt(self, entry, query, raw, _):
        if self.command == "GET":
            with COMFYUI.lock:
                remaining = COMFYUI.remaining()
            return 200, "ok", self.send_json(200, {"exec_info": {"queue_remaining": remaining}})
        payload, refused = self.json_payload("comfyui", raw)
        if refused:
            return refused
        prompt = comfy_prompt_text(payload.get("prompt"))
        STATE.finish(entry, prompt=prompt)
        try:
            prompt_id, workflow, client_id = check_comfy_submission(payload)
        except ComfyRefusal as refusal:
            return 400, "ok", self.send_json(400, refusal.body)
        script = self.script_for("comfyui")
        queued = {}

        def before():
            if "render_ms" in script or not is_failure_script(script):
                queued["id"], queued["number"], _ = COMFYUI.enqueue(prompt_id, workflow, client_id, prompt, script)

        def success():
            return 200, "application/json", json_bytes({"prompt_id": queued["id"], "number": queued["number"],
                                                        "node_errors": {}})

        return self.answer("comfyui", prompt, payload, script, success=success, before=before)

    def comfyui_ws(self, entry, query, raw, _):
        headers = {name.lower(): value for name, value in self.headers.items()}
        key = headers.get("sec-websocket-key", "").strip()
        try:
            key_ok = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            key_ok = False
        connection_tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
        if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in connection_tokens or not key_ok:
            return 400, "ok", self.send_json(400, {"error": "a WebSocket handshake needs Upgrade: websocket, "
                                                            "Connection: Upgrade and a Sec-WebSocket-Key"})
        if headers.get("sec-websocket-version", "").strip() != "13":
            self.close_connection = True
            body = json_bytes({"error": "Sec-WebSocket-Version must be 13"})
            self.start(426, "application/json", len(body), {"Sec-WebSocket-Version": "13"})
            self.write(body)
            return 426, "ok", len(body)
        client_id = self.query_value(query, "clientId") or uuid.uuid4().hex
        self.close_connection = True  # after the WebSocket, the connection is never HTTP again
        try:
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", ws_accept(key))
            self.end_headers()
        except CLIENT_ERRORS as error:
            raise ClientGone() from error
        socket_ = WebSocket(self, client_id)
        COMFYUI.connect(socket_)
        try:
            outcome = socket_.serve()
        finally:
            COMFYUI.disconnect(socket_)
        return 101, outcome, 0

    def comfyui_history(self, entry, query, raw, prompt_id):
        return 200, "ok", self.send_json(200, COMFYUI.history(prompt_id))

    def comfyui_view(self, entry, query, raw, _):
        filename = self.query_value(query, "filename")
        subfolder = self.query_value(query, "subfolder") or ""
        kind = self.query_value(query, "type") or "output"
        data = COMFYUI.file(filename) if filename and kind == "output" and subfolder == "" else None
        if data is None:
            return 404, "ok", self.send_json(404, {"error": f"no such file: {filename!r} ({kind}, {subfolder!r})"})
        self.start(200, "image/png", len(data))
        self.write(data)
        return 200, "ok", len(data)

    def comfyui_interrupt(self, entry, query, raw, _):
        try:
            body = json_object(raw)
        except BadRequest as error:
            return 400, "ok", self.send_json(400, comfy_error("invalid_json", str(error)))
        prompt_id = body.get("prompt_id")
        COMFYUI.interrupt(prompt_id if isinstance(prompt_id, str) else None)
        return 200, "ok", self.send_empty()

    def comfyui_queue(self, entry, query, raw, _):
        if self.command == "GET":
            return 200, "ok", self.send_json(200, COMFYUI.queue())
        try:
            body = json_object(raw)
        except BadRequest as error:
            return 400, "ok", self.send_json(400, comfy_error("invalid_json", str(error)))
        if body.get("clear") is True:
            COMFYUI.delete()
        doomed = body.get("delete")
        if isinstance(doomed, list):
            COMFYUI.delete({item for item in doomed if isinstance(item, str)})
        return 200, "ok", self.send_empty()

    def comfyui_system_stats(self, entry, query, raw, _):
        stats = {"system": {"os": os.name, "python_version": sys.version.split()[0], "embedded_python": False,
                            "comfyui_version": "fake", "ram_total": 8 << 30, "ram_free": 4 << 30, "argv": ["main.py"]},
                 "devices": [{"name": "fake", "type": "cpu", "index": None, "vram_total": 0, "vram_free": 0,
                              "torch_vram_total": 0, "torch_vram_free": 0}]}
        return 200, "ok", self.send_json(200, stats)

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
            pending = STATE.add_scripts(service, script_responses(
                body, lambda index, response: validate_response(index, response, service)))
            self.send_json(200, {"ok": True, "service": service, "pending": pending})
        elif path == "/_control/reset":
            self.require(path, "POST")
            STATE.reset()
            A1111_RENDERER.reset()
            COMFYUI.reset()
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
        elif path == "/_control/render":
            if self.command == "GET":
                self.send_json(200, {name: renderer.settings.report() for name, renderer in RENDERERS.items()})
                return
            self.require(path, "POST")
            body = json_object(raw)
            check_fields("the body", body, RENDER_FIELDS)
            check_render_fields("the body", body)
            service = body.get("service")
            if service not in RENDER_SERVICES:
                raise BadRequest(f"service must be one of {', '.join(RENDER_SERVICES)}")
            renderer = RENDERERS[service]
            with renderer.lock:
                if "render_ms" in body:
                    renderer.settings.render_ms = body["render_ms"]
                if "steps" in body:
                    renderer.settings.steps = body["steps"]
                report = renderer.settings.report()
            self.send_json(200, dict({"ok": True, "service": service}, **report))
        elif path == "/_control/renders":
            self.require(path, "GET")
            service = self.query_value(query, "service")
            if service not in RENDER_SERVICES:
                raise BadRequest(f"service must be one of {', '.join(RENDER_SERVICES)}")
            self.send_json(200, RENDERERS[service].records())
        elif path == "/_control/scripts":
            self.require(path, "GET")
            self.send_json(200, STATE.pending_scripts())
        else:
            self.control_default(path)


def main(argv=None):
    _, arguments = parse_arguments("Fake Flux/SDXL/OpenRouter/Gemini/Workers AI/A1111/ComfyUI/OpenAI backends "
                                   "for tests.", argv)
    return serve("fake_backends", arguments, Handler)


if __name__ == "__main__":
    sys.exit(main())
