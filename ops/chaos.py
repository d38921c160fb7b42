#!/usr/bin/env python3
"""Chaos run: ImageQueue under worker kills, Redis restarts and a Redis freeze, on this machine.

Usage:
  python3 ops/chaos.py [--workers 4] [--jobs 10000] [--short] [--seed N]
                       [--binary .build/debug/imagequeue] [--backlog 40] [--keep]

docs/CHAOS.md has the same description, what the runs found, and measured runs.

What it does, all on 127.0.0.1, in a temporary directory:
  - starts redis-server with AOF (`appendonly yes`, `appendfsync always`, no RDB saves);
  - starts Tests/Fakes/fake_backends.py with chaos on for Flux and SDXL: every answer waits a
    random 5-40 ms (Flux) or 10-60 ms (SDXL), and 3 % of them are a 500, 502 or 503;
  - starts N `imagequeue worker` processes (lease 2 s, up to 20 tries at the backend 20-200 ms
    apart, so injected 5xx never dead-letter a job; jobs allow 100 claims);
  - enqueues K jobs with the enqueueJob script through redis-py, all through the run: each to
    a model, picked at random, whose queue holds fewer than --backlog (40) pending jobs, so
    both models have work to the end; one in four without prompt enhancement. A call cut by an
    outage is repeated until Redis answers; EXISTS in answer to a repeat means the first call
    was applied;
  - records every event on `P:{flux}:events` and `P:{sdxl}:events` on a subscription that
    reconnects after each outage. Each connection is an "epoch": within one nothing is
    missed, between two events may be;
  - meanwhile SIGKILLs a random worker every second and starts a replacement, and, when 20 %,
    45 % and 70 % of the jobs are enqueued (at least 5 s of kills apart; the last min(K/4, 500)
    jobs are held back until the last outage, so every outage finds jobs pending): freezes
    Redis for 10 s (SIGSTOP, SIGCONT); SIGKILLs it and starts it again 1 s later; SHUTDOWNs it
    and starts it again 1 s later (same port, from the AOF). Kills pause from 4 s before each
    outage until the workers have claimed again (at most 10 s after it), so no dead worker's
    lease is what holds a model up;
  - waits until every job is terminal (or nothing has moved for 90 s), stops the workers with
    SIGTERM, and checks.

The checks (each is OK or a count of violations with the first examples):
  workers         no worker process exited unless this program killed it, and the workers
                  alive at the end exit 0 on SIGTERM.
  enqueue         each job was created exactly once: the call answered "created", or a repeat
                  after a connection error answered EXISTS; no other error.
  none lost       every enqueued job's hash exists in Redis at the end.
  none stuck      every job's hash says `completed`; the pending, active and dead sets of both
                  models are empty; `failed_total` is 0.
  exactly once    `completed_total` in `P:{M}:meta` equals the number of jobs of M, and, from
                  the events observed, no job has two `completed` events.
  revisions       from the events observed: each job's `rev`s strictly increase in arrival
                  order, and no event of a job follows its `completed` (the hash's final `rev`
                  is the completed event's).
  images          every completed job's result file exists and is not empty.
  start order     from the events observed, per model: claim events are `enhancing` (or
                  `generating`, for jobs without enhancement) that carry no progress detail
                  (`enhancement`, `retry`, `error`). A job's first claim with attempt 1 is its
                  first start; first starts follow the enqueue sequence (`seq` on the job).
                  A re-run (a later claim after a `queued` event with rev > 1) may start before
                  later jobs: it is a violation only when, within one epoch, a job of higher
                  `seq` starts between the re-run job's requeue and its next claim.
  concurrency 1   from the events observed, per model: each run is [claim time, time of the
                  first `completed`, `failed` or `queued` event of that job after the claim]
                  (Redis server ms); runs whose end was not observed are left out. No two runs
                  overlap (a start equal to the previous end is not an overlap).
  recovery        after each outage, at the first PONG: T0 = the server's TIME, read in one
                  MULTI with each model's pending count and fencing counter. For each model
                  with jobs pending at T0, the delay to its first claim after T0 must be at most
                  1000 ms. The claim is found by polling the fencing counter (every claim
                  increments it) every 10 ms; its time is the observed claim event's when one
                  was seen, else the poll's TIME (an upper bound, shown with "<=").

Output: a table of what it did and a table of what it found. Exit status: 0 every check OK,
1 a violation (or the run could not be set up), 2 a usage error. Every process it started and
the temporary directory are removed at the end, also on Ctrl-C (--keep keeps the directory).
"""

import argparse
import json
import os
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError:  # pragma: no cover
    sys.stderr.write("chaos: redis-py is missing (bash ops/install-deps.sh --tests installs it)\n")
    sys.exit(2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE = os.path.join(ROOT, "Tests", "Fakes", "fake_backends.py")
sys.path.insert(0, os.path.join(ROOT, "Tests", "Python"))
from worker_steps import Script  # noqa: E402  (a script's text from the binary, called by SHA)
MODELS = ("flux", "sdxl")
PREFIX = "chaos"
HOST = "127.0.0.1"
LEASE_SECONDS = 2
MAX_ATTEMPTS = 100
FAKE_CHAOS = {"flux": {"latency_ms": [5, 40], "error_rate": 0.03},
              "sdxl": {"latency_ms": [10, 60], "error_rate": 0.03}}
OUTAGES = ((0.20, "freeze"), (0.45, "kill"), (0.70, "shutdown"))
KILLS_BETWEEN_OUTAGES = 5.0
FREEZE_SECONDS = 10.0
DOWN_SECONDS = 1.0
QUIET_BEFORE_OUTAGE = 4.0
RECOVERY_LIMIT_MS = 1000
RECOVERY_WATCH_SECONDS = 10.0
STALL_SECONDS = 90.0
CLAIM_KEYS = {"v", "id", "model", "status", "time", "attempt", "rev", "worker", "enhanced_prompt"}
EXAMPLES = 3


class SetupError(Exception):
    """The run could not be set up (a process did not start)."""


class Stop(Exception):
    """SIGTERM: stop and clean up, as on Ctrl-C."""


def log(text):
    sys.stdout.write(f"chaos: {text}\n")
    sys.stdout.flush()


class SignalsHeld:
    """Holds SIGINT and SIGTERM back while a process is started or killed and recorded, so
    that Ctrl-C cannot leave a child this program does not know about."""

    def __enter__(self):
        self.previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

    def __exit__(self, *_):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.previous)


def free_port():
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def client(port, timeout=2.0):
    """A redis-py client that reports connection errors at once (this program retries)."""
    return redis.Redis(host=HOST, port=port, socket_timeout=timeout, socket_connect_timeout=1.0,
                       retry=Retry(NoBackoff(), 0), decode_responses=True)


def model_keys(model):
    base = f"{PREFIX}:{{{model}}}"
    return [f"{base}:{name}" for name in ("pending", "active", "dead", "meta", "wake", "seq", "fence")] + [f"{base}:job:"]


def key(model, name):
    return f"{PREFIX}:{{{model}}}:{name}"


# --- Redis pub/sub, read with the standard library -----------------------------------------

class Incomplete(Exception):
    pass


def parse_resp(buffer, position):
    """One RESP2 value from buffer at position: (value, next position); Incomplete if cut."""
    end = buffer.find(b"\r\n", position)
    if end < 0:
        raise Incomplete()
    kind, line, position = buffer[position:position + 1], bytes(buffer[position + 1:end]), end + 2
    if kind == b"+":
        return line.decode(), position
    if kind == b"-":
        return ConnectionError(line.decode(errors="replace")), position
    if kind == b":":
        return int(line), position
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, position
        if len(buffer) < position + length + 2:
            raise Incomplete()
        return bytes(buffer[position:position + length]), position + length + 2
    if kind == b"*":
        items = []
        for _ in range(int(line)):
            value, position = parse_resp(buffer, position)
            items.append(value)
        return items, position
    raise ValueError(f"unexpected RESP type {kind!r}")


def resp_command(*words):
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode() if isinstance(word, str) else word
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Observer(threading.Thread):
    """Subscribes to both models' event channels and records every event in arrival order.

    Each successful subscription starts a new epoch; within an epoch nothing is missed."""

    def __init__(self, port):
        super().__init__(daemon=True, name="observer")
        self.port = port
        self.channels = [key(model, "events") for model in MODELS]
        self.lock = threading.Lock()
        self.events = []  # (epoch, event dict)
        self.epoch = 0
        self.malformed = []
        self.stopping = threading.Event()
        self.subscribed = threading.Event()

    def snapshot(self, start=0):
        with self.lock:
            return self.events[start:]

    def count(self):
        with self.lock:
            return len(self.events)

    def run(self):
        while not self.stopping.is_set():
            try:
                connection = socket.create_connection((HOST, self.port), timeout=0.5)
            except OSError:
                time.sleep(0.01)
                continue
            try:
                self.listen(connection)
            except (OSError, ConnectionError, ValueError):
                pass
            finally:
                self.subscribed.clear()
                connection.close()
            if not self.stopping.is_set():
                time.sleep(0.01)

    def listen(self, connection):
        connection.sendall(resp_command("SUBSCRIBE", *self.channels))
        buffer, confirmed = bytearray(), 0
        while not self.stopping.is_set():
            ready, _, _ = select.select([connection], [], [], 0.2)
            if not ready:
                continue
            data = connection.recv(1 << 16)
            if not data:
                raise ConnectionError("closed")
            buffer += data
            position = 0
            while True:
                try:
                    value, position_after = parse_resp(buffer, position)
                except Incomplete:
                    break
                position = position_after
                if isinstance(value, ConnectionError):
                    raise value  # e.g. LOADING: try again
                if not isinstance(value, list) or not value:
                    continue
                if value[0] == b"subscribe":
                    confirmed += 1
                    if confirmed == len(self.channels):
                        with self.lock:
                            self.epoch += 1
                        self.subscribed.set()
                elif value[0] == b"message" and len(value) == 3:
                    try:
                        event = json.loads(value[2])
                        event["id"], event["status"], event["rev"], event["time"]  # noqa: B018 (presence)
                    except (ValueError, KeyError, TypeError):
                        self.malformed.append(value[2][:200])
                        continue
                    with self.lock:
                        self.events.append((self.epoch, event))
            del buffer[:position]


# --- The processes -----------------------------------------------------------------------

class RedisServer:
    def __init__(self, directory, port):
        self.directory = directory
        self.port = port
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        arguments = ["redis-server", "--port", str(self.port), "--bind", HOST, "--dir", self.directory,
                     "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                     "--daemonize", "no", "--logfile", os.path.join(self.directory, "redis.log")]
        with SignalsHeld():
            self.process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout=60.0):
        """Waits for a PONG (not LOADING)."""
        probe = client(self.port, timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SetupError(f"redis-server exited with status {self.process.returncode} "
                                     f"(see {self.directory}/redis.log)")
                try:
                    if probe.ping():
                        return
                except redis.exceptions.RedisError:
                    pass
                time.sleep(0.005)
        finally:
            probe.close()
        raise SetupError("redis-server did not answer PING")

    def kill(self):
        """SIGKILL (and its AOF-rewrite child, if any: the same process group)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def shutdown(self):
        control = client(self.port)
        try:
            control.execute_command("SHUTDOWN")
        except redis.exceptions.ConnectionError:
            pass  # the expected end of the connection
        finally:
            control.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def signal(self, number):
        os.kill(self.process.pid, number)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.kill(self.process.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        self.kill()


class Fake:
    def __init__(self, directory):
        self.log_file = open(os.path.join(directory, "fake_backends.log"), "wb")
        with SignalsHeld():
            self.process = subprocess.Popen([sys.executable, FAKE, "--port", "0", "--exit-on-stdin-eof"],
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log_file,
                                            start_new_session=True)
        line = self.process.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            raise SetupError(f"fake_backends.py did not start: {line!r}")
        self.port = int(line.split()[1])

    def control(self, path, body=None):
        connection = socket.create_connection((HOST, self.port), timeout=5)
        try:
            payload = json.dumps(body).encode() if body is not None else b""
            method = "POST" if body is not None else "GET"
            connection.sendall(f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(payload)}\r\n"
                               f"Connection: close\r\n\r\n".encode() + payload)
            answer = b""
            while True:
                data = connection.recv(65536)
                if not data:
                    break
                answer += data
        finally:
            connection.close()
        head, _, body_bytes = answer.partition(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n")[0] + b" ":
            raise SetupError(f"fake control {path} failed: {head[:80]!r} {body_bytes[:200]!r}")
        return json.loads(body_bytes)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


class Workers:
    def __init__(self, binary, directory, redis_port, fake_port):
        self.binary = binary
        self.directory = directory
        self.logs = os.path.join(directory, "workers")
        os.makedirs(self.logs)
        self.output = os.path.join(directory, "output")
        self.redis_url = f"redis://{HOST}:{redis_port}"
        environment = {name: value for name, value in os.environ.items()
                       if not name.startswith(("IMAGEQUEUE_", "FLUX_", "SDXL_", "OPENROUTER_", "GEMINI_", "LLM_"))}
        environment.update({
            "FLUX_WORKER_URL": f"http://{HOST}:{fake_port}/flux",
            "SDXL_WORKER_URL": f"http://{HOST}:{fake_port}/sdxl",
            "SDXL_API_KEY": "chaos-key",
            "LLM_PROVIDER": "none",
            "IMAGEQUEUE_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "IMAGEQUEUE_GENERATION_ATTEMPTS": "20",
            "IMAGEQUEUE_RETRY_BASE_DELAY": "0.02",
            "IMAGEQUEUE_RETRY_MAX_DELAY": "0.2",
            "IMAGEQUEUE_LOG_LEVEL": "warning",
        })
        self.environment = environment
        self.alive = {}  # id -> Popen
        self.started = 0
        self.killed = []
        self.unexpected = []  # (id, status, last log lines)
        self.stopped = {}  # id -> exit status after the final SIGTERM

    def start(self):
        self.started += 1
        worker_id = f"chaos-w{self.started}"
        with open(os.path.join(self.logs, worker_id + ".log"), "wb") as output, SignalsHeld():
            self.alive[worker_id] = subprocess.Popen(
                [self.binary, "worker", "--models", ",".join(MODELS), "--backend", "http",
                 "--lease-seconds", str(LEASE_SECONDS), "--id", worker_id, "--output-dir", self.output,
                 "--redis", self.redis_url, "--prefix", PREFIX],
                stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=self.environment,
                start_new_session=True)
        return worker_id

    def kill_random(self, rng):
        if not self.alive:
            return None
        worker_id = rng.choice(sorted(self.alive))
        with SignalsHeld():
            process = self.alive.pop(worker_id)
            try:
                os.kill(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            self.killed.append(worker_id)
        return worker_id

    def check(self):
        """Notes workers that exited by themselves, and replaces them."""
        for worker_id, process in list(self.alive.items()):
            if process.poll() is not None:
                del self.alive[worker_id]
                self.unexpected.append((worker_id, process.returncode, self.tail(worker_id)))
                self.start()

    def tail(self, worker_id, lines=3):
        try:
            with open(os.path.join(self.logs, worker_id + ".log"), "rb") as handle:
                text = handle.read()[-4000:].decode(errors="replace")
            return " / ".join(text.strip().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, graceful=False):
        if graceful:
            for process in self.alive.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for worker_id, process in self.alive.items():
                try:
                    self.stopped[worker_id] = process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    self.stopped[worker_id] = None
        for process in self.alive.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        self.alive = {}


# --- Enqueueing ----------------------------------------------------------------------------

class Enqueuer(threading.Thread):
    """Enqueues `total` jobs, each to a model whose queue holds fewer than `backlog` pending jobs
    (chosen at random among those), so both models have work from the start to the end."""

    def __init__(self, port, script, total, backlog, seed):
        super().__init__(daemon=True, name="enqueuer")
        self.port = port
        self.script = script
        self.total = total
        self.backlog = backlog
        self.rng = random.Random(seed)
        self.limit = total  # enqueue no further than this for now (the run holds a reserve back)
        self.plan = []  # (id, model, enhance) in enqueue order, appended before each call
        self.stopping = threading.Event()
        self.done = threading.Event()
        self.enqueued = 0
        self.retries = 0
        self.exists_on_retry = 0
        self.errors = []  # (id, text)
        self.created = set()  # ids Redis has

    def run(self):
        # Two connections: the one that enqueues is still open when an outage begins, so a
        # call can be cut in flight (and its repeat answered EXISTS).
        probe, connection = client(self.port), client(self.port)
        try:
            while not self.stopping.is_set() and len(self.plan) < self.total:
                if len(self.plan) >= self.limit:
                    time.sleep(0.02)
                    continue
                try:
                    room = {model: self.backlog - probe.zcard(key(model, "pending")) for model in MODELS}
                except redis.exceptions.RedisError:
                    # Redis is away: send one job anyway, so a call is cut by every outage and
                    # repeated until Redis answers.
                    room = {model: 1 if model == self.rng.choice(MODELS) else 0 for model in MODELS}
                while not self.stopping.is_set() and len(self.plan) < min(self.total, self.limit):
                    open_models = [model for model in MODELS if room[model] > 0]
                    if not open_models:
                        break
                    model = self.rng.choice(open_models)
                    room[model] -= 1
                    job = (f"{model}-chaos{len(self.plan) + 1:06d}", model, self.rng.random() >= 0.25)
                    self.plan.append(job)
                    self.enqueue(connection, job)
                    self.enqueued += 1
                time.sleep(0.02)
        finally:
            probe.close()
            connection.close()
            self.done.set()

    def enqueue(self, connection, job):
        job_id, model, enhance = job
        request = json.dumps({"v": 1, "prompt": f"chaos prompt {job_id}", "user": "chaos", "enhance": enhance})
        arguments = [model, key(model, "events"), job_id, request, MAX_ATTEMPTS]
        repeated = False
        while not self.stopping.is_set():
            try:
                reply = self.script(connection, model_keys(model), arguments)
                if reply[0] != job_id or int(reply[3]) != 1:
                    self.errors.append((job_id, f"unexpected reply {reply!r}"))
                self.created.add(job_id)
                return
            except redis.exceptions.ResponseError as error:
                if repeated and str(error).startswith("EXISTS"):
                    self.exists_on_retry += 1
                    self.created.add(job_id)
                    return
                self.errors.append((job_id, str(error)))
                return
            except redis.exceptions.RedisError:  # connection, timeout, LOADING
                repeated = True
                self.retries += 1
                time.sleep(0.05)


# --- The run -------------------------------------------------------------------------------

class Run:
    def __init__(self, arguments):
        self.arguments = arguments
        self.rng = random.Random(arguments.seed)
        self.directory = tempfile.mkdtemp(prefix="imagequeue-chaos.")
        self.redis = None
        self.fake = None
        self.workers = None
        self.observer = None
        self.enqueuer = None
        self.outages = []  # dicts: kind, at (s into the run), down_ms, t0, pending, delays
        self.started_at = None
        self.finished_at = None
        self.plan = []
        self.stalled = False

    # -- setup --

    def setup(self):
        arguments = self.arguments
        self.redis = RedisServer(self.directory, free_port())
        self.redis.start()
        self.redis.wait_ready()
        self.fake = Fake(self.directory)
        for index, model in enumerate(MODELS):
            self.fake.control("/_control/chaos", dict(FAKE_CHAOS[model], service=model,
                                                      seed=arguments.seed * 10 + index))
        self.workers = Workers(arguments.binary, self.directory, self.redis.port, self.fake.port)
        script = Script(arguments.binary, "enqueueJob")
        self.observer = Observer(self.redis.port)
        self.observer.start()
        if not self.observer.subscribed.wait(10):
            raise SetupError("the event subscription did not start")
        for _ in range(arguments.workers):
            self.workers.start()
        control = client(self.redis.port)
        deadline = time.monotonic() + 60
        while control.zcard(f"{PREFIX}:workers") < arguments.workers:
            self.workers.check()
            if time.monotonic() > deadline:
                raise SetupError(f"the workers did not register (see {self.workers.logs})")
            time.sleep(0.05)
        control.close()
        self.enqueuer = Enqueuer(self.redis.port, script, arguments.jobs, arguments.backlog, arguments.seed + 1)
        self.plan = self.enqueuer.plan

    # -- the chaos --

    def reserve(self):
        """Jobs held back until the last outage begins."""
        return min(self.arguments.jobs // 4, 500)

    def progress(self, control):
        """(terminal jobs, completed jobs) from Redis, or None while it is unavailable."""
        try:
            pipe = control.pipeline(transaction=False)
            for model in MODELS:
                pipe.hget(key(model, "meta"), "completed_total")
                pipe.zcard(key(model, "dead"))
            values = pipe.execute()
        except redis.exceptions.RedisError:
            return None
        completed = int(values[0] or 0) + int(values[2] or 0)
        return completed + values[1] + values[3], completed

    def chaos(self):
        control = client(self.redis.port)
        total = self.arguments.jobs
        # The last jobs wait for the last outage, so that every outage comes while jobs are
        # pending, however fast the machine.
        self.enqueuer.limit = total - self.reserve()
        self.started_at = time.monotonic()
        self.enqueuer.start()
        outages = list(OUTAGES)
        next_kill = time.monotonic() + 1.0
        next_report = time.monotonic() + 10.0
        last_terminal, last_move = -1, time.monotonic()
        calm_until = time.monotonic() + KILLS_BETWEEN_OUTAGES
        while True:
            now = time.monotonic()
            self.workers.check()
            state = self.progress(control)
            if state is not None:
                terminal, completed = state
                if terminal != last_terminal:
                    last_terminal, last_move = terminal, now
                if terminal >= total and self.enqueuer.done.is_set():
                    break
                due = self.enqueuer.enqueued >= min(outages[0][0] * total, self.enqueuer.limit) if outages else False
                if due and now >= calm_until:
                    _, kind = outages.pop(0)
                    if not outages:
                        self.enqueuer.limit = total
                    self.outage(kind)
                    control.close()
                    control = client(self.redis.port)
                    last_move = time.monotonic()
                    next_kill = time.monotonic() + 1.0
                    calm_until = time.monotonic() + KILLS_BETWEEN_OUTAGES
                    continue
            if now - last_move > STALL_SECONDS:
                self.stalled = True
                log(f"nothing moved for {STALL_SECONDS:.0f} s: stopping")
                break
            if now >= next_kill:
                self.workers.kill_random(self.rng)
                self.workers.start()
                next_kill += 1.0
                if next_kill < now:
                    next_kill = now + 1.0
            if now >= next_report:
                log(f"{max(last_terminal, 0)}/{total} jobs done, {self.enqueuer.enqueued} enqueued, "
                    f"{len(self.workers.killed)} workers killed, {self.observer.count()} events")
                next_report += 10.0
            time.sleep(0.05)
        self.finished_at = time.monotonic()
        control.close()

    def outage(self, kind):
        at = time.monotonic() - self.started_at
        log(f"{at:.1f} s: pausing kills {QUIET_BEFORE_OUTAGE:.0f} s before the Redis {kind}")
        deadline = time.monotonic() + QUIET_BEFORE_OUTAGE
        while time.monotonic() < deadline:
            self.workers.check()
            time.sleep(0.05)
        began = time.monotonic()
        if kind == "freeze":
            self.redis.signal(signal.SIGSTOP)
            time.sleep(FREEZE_SECONDS)
            self.redis.signal(signal.SIGCONT)
        else:
            if kind == "kill":
                self.redis.kill()
            else:
                self.redis.shutdown()
            time.sleep(DOWN_SECONDS)
            self.redis.start()
        self.redis.wait_ready()
        down_ms = (time.monotonic() - began) * 1000
        record = {"kind": kind, "at": time.monotonic() - self.started_at, "down_ms": down_ms, "delays": {}}
        self.outages.append(record)
        control = client(self.redis.port)
        try:
            self.measure_recovery(control, record)
        finally:
            control.close()
        text = ", ".join(f"{model} {self.delay_text(delay)}" for model, delay in record["delays"].items()) \
            or "no jobs pending"
        log(f"{record['at']:.1f} s: Redis {kind} over after {down_ms:.0f} ms; claimed again: {text}")

    @staticmethod
    def delay_text(delay):
        if delay is None:
            return f"none within {RECOVERY_WATCH_SECONDS:.0f} s"
        value, exact = delay
        return f"{value} ms" if exact else f"<= {value} ms"

    def snapshot(self, control):
        pipe = control.pipeline(transaction=True)
        pipe.time()
        for model in MODELS:
            pipe.zcard(key(model, "pending"))
            pipe.get(key(model, "fence"))
        values = pipe.execute()
        seconds, micros = values[0]
        now = int(seconds) * 1000 + int(micros) // 1000
        return now, {model: (values[1 + 2 * i], int(values[2 + 2 * i] or 0)) for i, model in enumerate(MODELS)}

    def measure_recovery(self, control, record):
        first_event = self.observer.count()
        deadline = time.monotonic() + 30
        while True:
            try:
                t0, state = self.snapshot(control)
                break
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    record["delays"] = {model: None for model in MODELS}
                    return
                time.sleep(0.005)
        record["t0"] = t0
        record["pending"] = {model: pending for model, (pending, _) in state.items()}
        waiting = {model for model, (pending, _) in state.items() if pending > 0}
        found = {}
        deadline = time.monotonic() + RECOVERY_WATCH_SECONDS
        while waiting - set(found) and time.monotonic() < deadline:
            time.sleep(0.01)
            try:
                now, current = self.snapshot(control)
            except redis.exceptions.RedisError:
                continue
            for model in waiting - set(found):
                if current[model][1] > state[model][1]:
                    found[model] = now
        time.sleep(0.2)  # let the observer catch up with the claim events
        claims = [event for _, event in self.observer.snapshot(first_event)
                  if is_claim(event) and event["time"] >= t0]
        for model in sorted(waiting):
            if model not in found:
                record["delays"][model] = None
                continue
            times = [event["time"] for event in claims if event["model"] == model and event["time"] <= found[model]]
            if times:
                record["delays"][model] = (min(times) - t0, True)
            else:
                record["delays"][model] = (found[model] - t0, False)

    # -- the end --

    def finish(self):
        self.enqueuer.stopping.set()
        time.sleep(0.5)  # the last events
        self.workers.stop(graceful=True)
        self.observer.stopping.set()
        self.observer.join(timeout=5)
        self.enqueuer.join(timeout=5)

    def collect(self):
        """Everything Redis knows at the end."""
        control = client(self.redis.port, timeout=30)
        jobs = {}
        ids = [job[0] for job in self.plan]
        for start in range(0, len(ids), 500):
            pipe = control.pipeline(transaction=False)
            for job_id in ids[start:start + 500]:
                model = job_id.split("-", 1)[0]
                pipe.hgetall(key(model, "job:") + job_id)
            for job_id, values in zip(ids[start:start + 500], pipe.execute()):
                jobs[job_id] = values
        sets, meta = {}, {}
        for model in MODELS:
            sets[model] = {name: control.zcard(key(model, name)) for name in ("pending", "active", "dead")}
            meta[model] = control.hgetall(key(model, "meta"))
        control.close()
        return jobs, sets, meta


def is_claim(event):
    return event.get("status") in ("enhancing", "generating") and set(event) <= CLAIM_KEYS


# --- Checks --------------------------------------------------------------------------------

class Findings:
    def __init__(self):
        self.rows = []  # (check, violations, examples, note)

    def add(self, check, violations, note=""):
        self.rows.append((check, len(violations), violations[:EXAMPLES], note))

    @property
    def failed(self):
        return any(count for _, count, _, _ in self.rows)


def check_all(run, jobs, sets, meta):
    findings = Findings()
    plan = run.plan
    events = run.observer.snapshot()
    enqueuer = run.enqueuer
    per_model = {model: [job for job in plan if job[1] == model] for model in MODELS}

    problems = [f"{wid} exited by itself with status {status}: {tail}" for wid, status, tail in run.workers.unexpected]
    problems += [f"{wid} " + ("did not stop within 10 s of SIGTERM" if status is None else f"exited {status} on SIGTERM")
                 + f": {run.workers.tail(wid)}" for wid, status in run.workers.stopped.items() if status != 0]
    findings.add("workers", problems, f"{run.workers.started} started, {len(run.workers.killed)} SIGKILLed by the run, "
                                      f"the last {len(run.workers.stopped)} stopped by SIGTERM with status 0")

    problems = [f"{job_id}: {text}" for job_id, text in enqueuer.errors]
    problems += [f"{job[0]} was never enqueued" for job in plan if job[0] not in enqueuer.created]
    if len(plan) < run.arguments.jobs:
        problems.append(f"only {len(plan)} of {run.arguments.jobs} jobs were enqueued")
    findings.add("enqueue", problems,
                 f"{len(enqueuer.created)} created; {enqueuer.retries} calls repeated after a connection error, "
                 f"{enqueuer.exists_on_retry} answered EXISTS")

    lost = [job_id for job_id in enqueuer.created if not jobs.get(job_id)]
    findings.add("none lost", [f"{job_id} has no hash" for job_id in lost], f"{len(plan) - len(lost)} of {len(plan)} in Redis")

    stuck = [f"{job_id} is {values.get('status')} (attempt {values.get('attempt')})"
             for job_id, values in jobs.items() if values and values.get("status") != "completed"]
    for model in MODELS:
        for name, count in sets[model].items():
            if count:
                stuck.append(f"{model} {name} holds {count} jobs")
        if int(meta[model].get("failed_total", 0)):
            stuck.append(f"{model} failed_total is {meta[model]['failed_total']}")
    if run.stalled:
        stuck.append(f"the run stopped after {STALL_SECONDS:.0f} s without progress")
    completed_jobs = sum(1 for values in jobs.values() if values.get("status") == "completed")
    findings.add("none stuck", stuck, f"{completed_jobs} completed; pending, active, dead empty")

    # Observed events, per job and per model, in arrival order.
    by_job, by_model = {}, {model: [] for model in MODELS}
    for epoch, event in events:
        by_job.setdefault(event["id"], []).append(event)
        if event.get("model") in by_model:
            by_model[event["model"]].append((epoch, event))

    twice = []
    for model in MODELS:
        total = int(meta[model].get("completed_total", 0))
        if total != len(per_model[model]):
            twice.append(f"{model} completed_total is {total} for {len(per_model[model])} jobs")
    seen_completed = 0
    for job_id, job_events in by_job.items():
        completions = [event for event in job_events if event["status"] == "completed"]
        seen_completed += bool(completions)
        if len(completions) > 1:
            twice.append(f"{job_id} completed {len(completions)} times (revs "
                         f"{', '.join(str(event['rev']) for event in completions)}, workers "
                         f"{', '.join(str(event.get('worker')) for event in completions)})")
    findings.add("exactly once", twice, f"completed_total = jobs per model; {seen_completed} completions observed")

    revisions = []
    for job_id, job_events in by_job.items():
        revs = [event["rev"] for event in job_events]
        if any(later <= earlier for earlier, later in zip(revs, revs[1:])):
            revisions.append(f"{job_id} revs arrived as {revs}")
        final = jobs.get(job_id, {}).get("rev")
        for event in job_events:
            if event["status"] == "completed" and final is not None and int(final) != event["rev"]:
                revisions.append(f"{job_id} completed at rev {event['rev']} but its hash is at rev {final}")
    findings.add("revisions", revisions, f"{len(events)} events observed, {run.observer.epoch} subscriptions")

    images = []
    for job_id, values in jobs.items():
        if values.get("status") != "completed":
            continue
        try:
            path = json.loads(values.get("result", "{}")).get("path")
        except ValueError:
            path = None
        if not path or not os.path.isfile(path) or os.path.getsize(path) == 0:
            images.append(f"{job_id}: no image at {path}")
    findings.add("images", images, "each completed job's file exists")

    seqs = {job_id: int(values.get("seq", 0)) for job_id, values in jobs.items() if values}
    order, reruns_seen, claims_seen = [], 0, 0
    for model in MODELS:
        started, last = set(), None
        requeued = {}  # job -> epoch of its observed requeue
        for epoch, event in by_model[model]:
            job_id = event["id"]
            if event["status"] == "queued" and event["rev"] > 1:
                requeued[job_id] = epoch
                continue
            if not is_claim(event):
                if event["status"] in ("completed", "failed", "cancelled"):
                    requeued.pop(job_id, None)
                continue
            claims_seen += 1
            seq = seqs.get(job_id, 0)
            if job_id not in started and event["attempt"] == 1:
                if last is not None and seq < last[1]:
                    order.append(f"{job_id} (seq {seq}) started after {last[0]} (seq {last[1]})")
                last = (job_id, seq)
            else:
                reruns_seen += 1
            started.add(job_id)
            requeued.pop(job_id, None)
            for waiting, waiting_epoch in requeued.items():
                if waiting_epoch == epoch and seqs.get(waiting, 0) < seq:
                    order.append(f"{job_id} (seq {seq}) started while {waiting} (seq {seqs.get(waiting, 0)}) "
                                 f"waited to run again")
            requeued = {job: e for job, e in requeued.items() if e == epoch}
    findings.add("start order", order, f"{claims_seen} claims observed, {reruns_seen} of them re-runs")

    overlaps, runs_total = [], 0
    for model in MODELS:
        if meta[model].get("concurrency", "1") != "1":
            overlaps.append(f"{model} has concurrency {meta[model]['concurrency']}, not 1")
        open_runs, runs = {}, []
        for _, event in by_model[model]:
            job_id = event["id"]
            if is_claim(event):
                open_runs[job_id] = event
            elif event["status"] in ("completed", "failed", "queued") and job_id in open_runs:
                start = open_runs.pop(job_id)
                runs.append((start["time"], event["time"], job_id, start["attempt"]))
        runs.sort()
        runs_total += len(runs)
        latest = None
        for run_ in runs:
            if latest is not None and run_[0] < latest[1]:
                overlaps.append(f"{model}: {run_[2]} attempt {run_[3]} [{run_[0]}, {run_[1]}] overlaps "
                                f"{latest[2]} attempt {latest[3]} [{latest[0]}, {latest[1]}]")
            if latest is None or run_[1] > latest[1]:
                latest = run_
    findings.add("concurrency 1", overlaps, f"{runs_total} runs with both ends observed")

    slow, notes = [], []
    for outage in run.outages:
        parts = []
        for model, delay in outage["delays"].items():
            parts.append(f"{model} {Run.delay_text(delay)}")
            if delay is None or delay[0] > RECOVERY_LIMIT_MS:
                slow.append(f"after the {outage['kind']}: {model} {Run.delay_text(delay)}")
        notes.append(f"{outage['kind']}: " + (", ".join(parts) if parts else "nothing pending"))
    if len(run.outages) < len(OUTAGES):
        slow.append(f"only {len(run.outages)} of {len(OUTAGES)} outages happened")
    findings.add("recovery", slow, "; ".join(notes))
    return findings


# --- Output --------------------------------------------------------------------------------

def table(headers, rows):
    widths = [max(len(str(row[i])) for row in [headers] + rows) for i in range(len(headers))]
    line = lambda row: "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + " |"
    return "\n".join([line(headers), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
                     + [line(row) for row in rows])


def report(run, findings, jobs, fake_stats):
    duration = (run.finished_at or time.monotonic()) - run.started_at
    completed = sum(1 for values in jobs.values() if values.get("status") == "completed")
    counts = {model: sum(1 for job in run.plan if job[1] == model) for model in MODELS}
    without = sum(1 for job in run.plan if not job[2])
    events = run.observer.snapshot()
    expired = sum(1 for _, event in events if event["status"] == "queued"
                  and isinstance(event.get("error"), dict) and event["error"].get("code") == "lease_expired")
    did = [
        ("jobs", f"{len(run.plan)}: " + ", ".join(f"{model} {counts[model]}" for model in MODELS)
         + f"; {without} without enhancement; backlog {run.arguments.backlog} per model"),
        ("workers", f"{run.arguments.workers} at a time; {run.workers.started} started, "
                    f"{len(run.workers.killed)} SIGKILLed (one a second)"),
        ("Redis", "AOF, appendfsync always; "
                  + "; ".join(f"{o['kind']} at {o['at']:.0f} s ({o['down_ms'] / 1000:.1f} s without answers)"
                              for o in run.outages)),
        ("backend", "; ".join(f"{model}: {stats.get('answered', 0)} answers, {stats.get('errors', 0)} injected 5xx, "
                              f"{stats['latency_ms'][0]:g}-{stats['latency_ms'][1]:g} ms"
                              for model, stats in sorted(fake_stats.items()))),
        ("re-runs", f"{expired} jobs requeued after an expired lease (events observed)"),
        ("duration", f"{duration:.1f} s"),
        ("throughput", f"{completed / duration:.1f} jobs/s completed, outages and kills included"),
        ("seed", str(run.arguments.seed)),
    ]
    print()
    print(table(("what it did", ""), did))
    print()
    rows = []
    for check, count, examples, note in findings.rows:
        result = "OK" if count == 0 else f"{count} violation{'s' if count != 1 else ''}"
        detail = note if count == 0 else "; ".join(examples) + (" …" if count > len(examples) else "")
        rows.append((check, result, detail))
    print(table(("check", "result", "details"), rows))
    print()
    sys.stdout.flush()


# --- Main ----------------------------------------------------------------------------------

def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Chaos run: kill workers, restart and freeze Redis, check that every job completes once, in order.")
    parser.add_argument("--workers", type=int, default=None, help="worker processes at a time (default 4)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs to enqueue (default 10000, 1500 with --short)")
    parser.add_argument("--short", action="store_true", help="about a minute: fewer jobs, the same kinds of chaos")
    parser.add_argument("--seed", type=int, default=None, help="seed for the models, kills and the backend (default: random)")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "debug", "imagequeue"),
                        help="the imagequeue executable (default .build/debug/imagequeue)")
    parser.add_argument("--backlog", type=int, default=40, help="jobs kept pending per model while enqueueing (default 40)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (logs, AOF, images, events.jsonl, outages.json)")
    arguments = parser.parse_args(argv)
    if arguments.workers is None:
        arguments.workers = 4
    if arguments.jobs is None:
        arguments.jobs = 1500 if arguments.short else 10000
    if arguments.seed is None:
        arguments.seed = random.randrange(1, 1 << 31)
    if not 1 <= arguments.workers <= 64:
        parser.error("--workers must be from 1 to 64")
    if not 10 <= arguments.jobs <= 1_000_000:
        parser.error("--jobs must be from 10 to 1000000")
    if arguments.backlog < 1:
        parser.error("--backlog must be at least 1")
    if not (os.path.isfile(arguments.binary) and os.access(arguments.binary, os.X_OK)):
        parser.error(f"--binary {arguments.binary} is not an executable (run swift build first)")
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not installed (bash ops/install-deps.sh --tests)")
    return arguments


def main(argv=None):
    arguments = parse_arguments(argv)

    def terminate(*_):
        raise Stop()
    signal.signal(signal.SIGTERM, terminate)

    run = Run(arguments)
    status = 1
    try:
        log(f"{arguments.jobs} jobs, {arguments.workers} workers, seed {arguments.seed}, in {run.directory}")
        run.setup()
        run.chaos()
        run.finish()
        fake_stats = run.fake.control("/_control/chaos")
        jobs, sets, meta = run.collect()
        findings = check_all(run, jobs, sets, meta)
        report(run, findings, jobs, fake_stats)
        status = 1 if findings.failed else 0
        log("every check passed" if status == 0 else "VIOLATIONS found (see the table)")
    except SetupError as error:
        log(f"setup failed: {error}")
        status = 1
    except (KeyboardInterrupt, Stop):
        log("interrupted; cleaning up")
        status = 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if run.enqueuer is not None:
            run.enqueuer.stopping.set()
        if run.observer is not None:
            run.observer.stopping.set()
        if run.workers is not None:
            run.workers.stop()
        if run.fake is not None:
            run.fake.stop()
        if run.redis is not None:
            run.redis.stop()
        if arguments.keep:
            if run.observer is not None:
                with open(os.path.join(run.directory, "events.jsonl"), "w") as handle:
                    for epoch, event in run.observer.snapshot():
                        handle.write(json.dumps(dict(event, _epoch=epoch)) + "\n")
                with open(os.path.join(run.directory, "outages.json"), "w") as handle:
                    json.dump(run.outages, handle, indent=1)
            log(f"kept {run.directory} (logs, AOF, images, events.jsonl, outages.json)")
        else:
            shutil.rmtree(run.directory, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
