#!/usr/bin/env python3
"""A small HTTP/1.x server for CurlHTTPTests, on 127.0.0.1:<argv[1]>.

Prints READY once listening; exits when its stdin closes (the test process ended).
Routes (any method):
  /echo             JSON: method, path, raw query, headers (lowercased names), body (base64)
  /echo-body        the request body back, byte for byte
  /status?code=N&retry_after=S   status N with Retry-After and a repeated X-Dup header
  /stream?bytes=N&id=X  N bytes (i % 251) with no Content-Length, ended by closing;
                    with an id, the bytes written before the end or the client's hang-up
                    are kept for /sent
  /sent?id=X        those bytes for stream X, once it ended ("running" until then)
  /fixed?bytes=N    N bytes (i % 251) with a Content-Length
  /announce?length=N  announces Content-Length N, sends 10 bytes, then stalls 30 s
  /hold?id=X&seconds=S  waits until /release?id=X (200 "released") or S seconds (504)
  /arrived?id=X     "yes" once a /hold with that id arrived, else "no"
  /release?id=X     releases the /hold with that id
  /interim          a 100 Continue carrying X-Interim, then a 200 with X-Final
  /redirect         302 to /echo
"""
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

events = {}
arrived = set()
sent = {}
lock = threading.Lock()


def event_for(key):
    with lock:
        return events.setdefault(key, threading.Event())


def pattern(count):
    block = bytes(i % 251 for i in range(251 * 261))  # 65511 bytes, a whole number of cycles
    while count > 0:
        chunk = block[:count]
        yield chunk
        count -= len(chunk)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status, body, headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        body = self.read_body()
        path = parts.path
        if path == "/echo":
            text = json.dumps({
                "method": self.command,
                "path": path,
                "query": parts.query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": base64.b64encode(body).decode(),
            }).encode()
            self.reply(200, text, [("Content-Type", "application/json")])
        elif path == "/echo-body":
            self.reply(200, body, [("Content-Type", "application/octet-stream")])
        elif path == "/status":
            code = int(query.get("code", "200"))
            headers = [("X-Dup", "one"), ("X-Dup", "two")]
            if "retry_after" in query:
                headers.append(("Retry-After", query["retry_after"]))
            self.reply(code, f"status {code}".encode(), headers)
        elif path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            written = 0
            try:
                for chunk in pattern(int(query["bytes"])):
                    self.wfile.write(chunk)
                    written += len(chunk)
            finally:
                if "id" in query:
                    with lock:
                        sent[query["id"]] = written
        elif path == "/sent":
            with lock:
                count = sent.get(query["id"])
            self.reply(200, b"running" if count is None else str(count).encode())
        elif path == "/fixed":
            count = int(query["bytes"])
            self.send_response(200)
            self.send_header("Content-Length", str(count))
            self.end_headers()
            for chunk in pattern(count):
                self.wfile.write(chunk)
        elif path == "/announce":
            self.send_response(200)
            self.send_header("Content-Length", query["length"])
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            time.sleep(30)
        elif path == "/hold":
            key = query["id"]
            with lock:
                arrived.add(key)
            released = event_for(key).wait(float(query.get("seconds", "15")))
            if released:
                self.reply(200, b"released")
            else:
                self.reply(504, b"not released")
        elif path == "/arrived":
            with lock:
                seen = query["id"] in arrived
            self.reply(200, b"yes" if seen else b"no")
        elif path == "/release":
            event_for(query["id"]).set()
            self.reply(200, b"ok")
        elif path == "/interim":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
                             b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nfinal")
            self.close_connection = True
        elif path == "/redirect":
            self.reply(302, b"", [("Location", "/echo")])
        else:
            self.reply(404, b"no such route")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = route


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that abort (limits, cancellation) break pipes on purpose


def exit_when_parent_goes():
    sys.stdin.buffer.read()
    os._exit(0)


def main():
    server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    threading.Thread(target=exit_when_parent_goes, daemon=True).start()
    print("READY", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
