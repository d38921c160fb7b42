"""What the fake servers in this folder share: flags, the serving loop, HTTP plumbing.

Standard library only. fake_backends.py and fake_telegram.py import it (a script's own folder
is on sys.path). A fake subclasses FakeHandler, writes `control` (its /_control/... routes)
and `api` (everything else), and calls parse_arguments and serve from its main.
"""

import argparse
import io
import ipaddress
import json
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CLIENT_ERRORS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout)


def now_ms():
    return int(time.time() * 1000)


class BadRequest(Exception):
    """A request that cannot be served: a control request gets 400 and {"error": message}."""


class ClientGone(Exception):
    """The client closed the connection before its answer was written."""


def json_object(raw):
    """The JSON object of a control request's body ({} when the body is empty)."""
    try:
        value = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest(f"malformed JSON body: {error}") from None
    if not isinstance(value, dict):
        raise BadRequest("the JSON body must be an object")
    return value


def check_fields(where, item, fields, known_prefix="", bool_fields=()):
    """Checks that item is an object whose keys are in fields (name -> type or tuple of types).

    A bool counts as an int only for the names in bool_fields. Errors name the item as
    `where` (e.g. "responses[2]"); known_prefix goes before the list of known fields.
    """
    if not isinstance(item, dict):
        raise BadRequest(f"{where} is not an object")
    for key, value in item.items():
        expected = fields.get(key)
        if expected is None:
            raise BadRequest(f"{where}: unknown field '{key}' (known: {known_prefix}{', '.join(fields)})")
        if (isinstance(value, bool) and key not in bool_fields) or not isinstance(value, expected):
            raise BadRequest(f"{where}.{key} has the wrong type")


def script_responses(body, validate):
    """Copies of the checked "responses" list of a /_control/script body.

    validate(index, response) raises BadRequest for a response the fake cannot play.
    """
    responses = body.get("responses")
    if not isinstance(responses, list):
        raise BadRequest("responses must be a list")
    for index, response in enumerate(responses):
        validate(index, response)
    return [dict(response) for response in responses]


# --- The handler ------------------------------------------------------------------------------

class FakeHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 plumbing; a fake sets server_version and log_name and writes control and api.

    control(path, query, raw) serves /_control and /_control/...: raise BadRequest for a 400.
    api(path, query) serves every other path and reads its own body.
    Expect: 100-continue is answered by the base class before any body is read.
    """

    protocol_version = "HTTP/1.1"
    server_version = "FakeServer/1.0"
    log_name = "fakeserver"
    max_body = None  # bytes; None: no limit
    verbose = False

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        if self.verbose:
            sys.stderr.write("%s: %s %s\n" % (self.log_name, self.address_string(), format % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def dispatch(self):
        split = urlsplit(self.path)
        path, query = split.path, split.query
        if not (path.startswith("/_control/") or path == "/_control"):
            self.api(path, query)
            return
        try:
            try:
                raw = self.read_body()
            except BadRequest:
                self.close_connection = True  # part of the body may be unread: never reuse
                raise
            self.control(path, query, raw)
        except BadRequest as error:
            try:
                self.send_json(400, {"error": str(error)})
            except ClientGone:
                self.close_connection = True
        except ClientGone:
            self.close_connection = True

    def control(self, path, query, raw):
        self.control_default(path)

    def api(self, path, query):
        self.send_json(404, {"error": f"no such endpoint: {self.command} {path}"})

    # -- control helpers --

    def require(self, path, method):
        if self.command != method:
            raise BadRequest(f"{path} accepts {method}, not {self.command}")

    @staticmethod
    def query_value(query, name):
        values = parse_qs(query).get(name)
        return values[0] if values else None

    def control_default(self, path):
        """/_control/health, and a 404 for any other control path."""
        if path == "/_control/health":
            self.send_json(200, {"ok": True})
        else:
            self.send_json(404, {"error": f"no such control endpoint: {path}"})

    # -- reading --

    def read_body(self):
        """The request body, by Content-Length or chunked (trailers skipped)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise BadRequest("truncated chunked body")
                try:
                    size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    raise BadRequest("bad chunk size") from None
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                total += size
                if self.max_body is not None and total > self.max_body:
                    raise BadRequest("body too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        try:
            length = int(length)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if self.max_body is not None and length > self.max_body:
            raise BadRequest("body too large")
        return self.rfile.read(length) if length > 0 else b""

    # -- writing --

    def write(self, data):
        try:
            self.wfile.write(data)
        except CLIENT_ERRORS as error:
            raise ClientGone() from error

    def start(self, status, content_type, length, extra=None):
        """Status line and headers. extra (e.g. a script's headers) replaces same-named defaults."""
        headers = {"content-type": ("Content-Type", content_type),
                   "content-length": ("Content-Length", str(length))}
        for name, value in (extra or {}).items():
            headers[name.lower()] = (name, str(value))
        if "content-length" in {name.lower() for name in (extra or {})}:
            self.close_connection = True  # the given length may be a lie: never reuse
        if headers.get("connection", ("", ""))[1].lower() == "close":
            self.close_connection = True
        try:
            self.send_response(status)
            for name, value in headers.values():
                self.send_header(name, value)
            self.end_headers()
        except CLIENT_ERRORS as error:
            raise ClientGone() from error

    def send_json(self, status, value):
        """A JSON answer (no body for HEAD); returns the body's length."""
        body = json.dumps(value).encode("utf-8")
        self.start(status, "application/json", len(body))
        if self.command != "HEAD":
            self.write(body)
        return len(body)

    def drop(self, how=True):
        """Close the connection without an answer: FIN, or RST for "reset"."""
        self.close_connection = True
        try:
            if how == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.wfile.close()
                self.connection.close()  # the last reference: the kernel answers with RST
                self.rfile, self.wfile = io.BytesIO(), io.BytesIO()  # for the base class's final flush
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, socket.timeout, ClientGone)):
            return
        super().handle_error(request, client_address)


class Server6(Server):
    address_family = socket.AF_INET6


# --- Running ----------------------------------------------------------------------------------

def parse_arguments(description, argv=None, extra=()):
    """(parser, arguments) for --port, --host, the extra (flags, options) pairs, --verbose and
    --exit-on-stdin-eof. A --host that is not a loopback address exits 2, as argparse does."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    for flags, options in extra:
        parser.add_argument(*flags, **options)
    parser.add_argument("--verbose", action="store_true", help="log every request on stderr")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="also exit when stdin reaches end of file (the parent went away)")
    arguments = parser.parse_args(argv)
    try:
        loopback = ipaddress.ip_address(arguments.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        parser.error("--host must be a loopback address such as 127.0.0.1")
    return parser, arguments


def serve(name, arguments, handler):
    """Listens, prints `READY <port>`, and serves until SIGTERM, SIGINT or (when asked) the
    end of stdin. Returns the exit status: 0, or 1 when the address cannot be bound."""
    handler.verbose = arguments.verbose
    server_class = Server6 if ":" in arguments.host else Server
    try:
        server = server_class((arguments.host, arguments.port), handler)
    except OSError as error:
        print(f"{name}: cannot listen on {arguments.host}:{arguments.port}: {error}", file=sys.stderr)
        return 1

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    serving.start()
    if arguments.exit_on_stdin_eof:
        def watch_stdin():
            while sys.stdin.buffer.read1(4096) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.read(1):
                pass
            stop.set()
        threading.Thread(target=watch_stdin, daemon=True).start()

    print(f"READY {server.server_address[1]}", flush=True)
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    return 0
