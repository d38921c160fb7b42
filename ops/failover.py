#!/usr/bin/env python3
"""Sentinel failover run: ImageQueue through a SIGKILLed Redis master, with and without WAIT.

Usage:
  python3 ops/failover.py [--binary .build/release/imagequeue] [--jobs 2000] [--short]
                          [--wait 0,1] [--kill-at 0.4] [--producers 2] [--lease-seconds 10]
                          [--cut-replicas-ms 0] [--seed N] [--keep]

docs/CHAOS.md describes the run ("The failover run"); docs/RELIABILITY.md has measured runs
("Sentinel failover: what each setting can lose"). The processes, the fake backends, the event
recording, the output tables and several checks are those of ops/chaos.py, imported from it.

For each value of --wait (IMAGEQUEUE_REDIS_WAIT_REPLICAS; default both 0 and 1), all on
127.0.0.1 in a temporary directory of its own:
  - starts a Redis master, two replicas of it (`--replicaof`) and three sentinels
    (`redis-sentinel <conf>`, or `redis-server <conf> --sentinel` without that binary;
    `sentinel monitor iq 127.0.0.1 <master> 2`, `down-after-milliseconds 1000`,
    `failover-timeout 5000`), and waits until the sentinels agree;
  - starts Tests/Fakes/fake_backends.py with chaos on (Flux 20-80 ms, SDXL 30-100 ms, 3 % 5xx);
  - starts two `imagequeue worker` processes on `redis+sentinel://S1,S2,S3/iq`, with the WAIT
    setting of the run (lease --lease-seconds, up to 20 tries at the backend);
  - enqueues --jobs jobs over both models the way a user does: `imagequeue enqueue --json
    --idempotency-key K` on the sentinel URL, from --producers threads. An enqueue that exits 0
    is ANSWERED queued (its id is recorded); one that fails is repeated with the same key (so
    it cannot queue the job twice) until it is answered, for up to 120 s;
  - records every status event on the master the sentinels name, following the failover
    (each subscription is an epoch, as in chaos.py);
  - when --kill-at (40 %) of the jobs are answered, asks a sentinel which server is the master
    and SIGKILLs it; it is not started again. It records when the sentinels name a new master
    and when the remaining replica is linked to it. With --cut-replicas-ms MS the replicas are
    first cut off the master for MS ms (SIGSTOP, then `CLIENT KILL TYPE replica` on the master;
    SIGCONT after the kill), as a partition or a lagging link would: what the master
    acknowledges meanwhile is what a failover loses. On loopback without it, replication lags
    by microseconds;
  - waits until every job on the new master is terminal and the producers are done (or nothing
    has moved for 90 s), stops the workers with SIGTERM, reads every job from the new master and
    the backend's request log, and checks.

The checks (a "must" check failing makes the exit status 1; a "report" check is printed):
  workers         must: no worker exited by itself; both exit 0 on SIGTERM.
  enqueue         must: every enqueue was answered queued in the end, and every failed attempt
                  exited 1 (Redis unavailable, not_replicated), never 2 or 3.
  queued once     must: no idempotency key has two jobs on the new master.
  lost            answered queued, but absent from the new master or not completed there.
                  WAIT 0: reported (asynchronous replication may lose a write the old master
                  acknowledged). WAIT >= 1: must be none.
  none stuck      must: every job on the new master is `completed`; pending, active and dead of
                  both models are empty; `failed_total` is 0.
  completed_total must: each model's `completed_total` on the new master equals its number of
                  completed jobs there (one accepted completion per job in its history).
  completed twice reported: from the `completed` events observed, jobs with more than one. The
                  backend's request log tells them apart: "ran twice" (two images generated for
                  it) or "announced twice" (one run whose completion the old master published and
                  the new one recorded again: the worker's repeat of an unconfirmed completion).
  no double run   jobs that ran twice (as above) without a requeue after an expired lease
                  observed between (that one is at-least-once delivery, by design). WAIT 0:
                  reported (a claim the old master acknowledged may be missing on the new one,
                  which gives the job out again). WAIT >= 1: must be none.
  start order     must: from the events observed, per model, first starts follow the enqueue
                  sequence (`seq`), and a requeued job is not overtaken within one epoch, as in
                  chaos.py; jobs missing from the new master are left out.
  resumed         measured, no bound: the first claim and the first completion on the new master
                  after the kill (Redis time of the earliest claim or completion event, or
                  started_at / finished_at of a job, later than the kill).

Exit status: 0 every must check passed in every run, 1 a violation (or a run could not be set
up), 2 a usage error. Every process it started and the temporary directories are removed at
the end, also on Ctrl-C or SIGTERM (--keep keeps the directories).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos  # noqa: E402  (its helpers: processes, fake backends, event observer, tables)
from chaos import (HOST, EXAMPLES, SetupError, SignalsHeld, Stop, free_port, client,  # noqa: E402
                   is_claim, table)
import redis  # noqa: E402  (chaos.py has checked that redis-py is there)

ROOT = chaos.ROOT
MODELS = chaos.MODELS
PREFIX = "failover"
MASTER_NAME = "iq"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
WAIT_TIMEOUT_MS = 1000
MAX_ATTEMPTS = 100
FAKE_CHAOS = {"flux": {"latency_ms": [20, 80], "error_rate": 0.03},
              "sdxl": {"latency_ms": [30, 100], "error_rate": 0.03}}
ENQUEUE_DEADLINE = 120.0   # seconds one job's enqueue is repeated before the producer gives up
STALL_SECONDS = chaos.STALL_SECONDS
FAILOVER_LIMIT = 120.0     # seconds the sentinels may take to name a new master
KEY_PATTERN = re.compile(r"\bfo-w\d+-k\d+\b")


def log(text):
    sys.stdout.write(f"failover: {text}\n")
    sys.stdout.flush()


def key(model, name):
    return f"{PREFIX}:{{{model}}}:{name}"


def fields(reply):
    """A flat [k, v, k, v…] reply (SENTINEL master) as a dict."""
    items = list(reply or [])
    return {str(items[i]): str(items[i + 1]) for i in range(0, len(items) - 1, 2)}


def decoded(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return value


def replication(port):
    """INFO replication of the server on `port`: its fields, and its replicas as
    [{"ip", "port", "state", "offset", "lag"}]."""
    text = Deployment.call(port, "INFO", "replication", timeout=0.5)
    state = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("#"))
    replicas = [dict(part.split("=", 1) for part in value.split(",") if "=" in part)
                for name, value in state.items() if name.startswith("slave") and name[5:].isdigit()]
    return state, replicas


# --- The deployment: a master, two replicas, three sentinels ----------------------------------

class DataServer(chaos.RedisServer):
    """redis-server without persistence (the killed master is not started again), optionally a
    replica of `replica_of`."""

    def __init__(self, directory, port, replica_of=None):
        super().__init__(os.path.join(directory, f"redis-{port}"), port)
        os.makedirs(self.directory)
        self.replica_of = replica_of

    def start(self):
        self.starts += 1
        arguments = ["redis-server", "--port", str(self.port), "--bind", HOST, "--dir", self.directory,
                     "--save", "", "--appendonly", "no", "--daemonize", "no",
                     "--logfile", os.path.join(self.directory, "redis.log")]
        if self.replica_of is not None:
            arguments += ["--replicaof", HOST, str(self.replica_of)]
        with SignalsHeld():
            self.process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True)


class SentinelServer(chaos.RedisServer):
    def __init__(self, directory, port, master_port):
        super().__init__(os.path.join(directory, f"sentinel-{port}"), port)
        os.makedirs(self.directory)
        self.config = os.path.join(self.directory, "sentinel.conf")
        with open(self.config, "w") as handle:  # the sentinel rewrites it as it learns
            handle.write("\n".join([
                f"port {port}", f"bind {HOST}", "daemonize no", "loglevel notice", f"dir {self.directory}",
                f"logfile {os.path.join(self.directory, 'redis.log')}",
                f"sentinel monitor {MASTER_NAME} {HOST} {master_port} {QUORUM}",
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}"]) + "\n")

    @staticmethod
    def command(config):
        if shutil.which("redis-sentinel"):
            return ["redis-sentinel", config]
        return ["redis-server", config, "--sentinel"]

    def start(self):
        self.starts += 1
        with SignalsHeld():
            self.process = subprocess.Popen(self.command(self.config), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True)


class Deployment:
    def __init__(self, directory):
        self.directory = directory
        master_port = free_port()
        self.nodes = {master_port: DataServer(directory, master_port)}
        for _ in range(2):
            port = free_port()
            while port in self.nodes:
                port = free_port()
            self.nodes[port] = DataServer(directory, port, replica_of=master_port)
        self.first_master = master_port
        self.sentinels = []
        for _ in range(3):
            port = free_port()
            while port in self.nodes or port in [s.port for s in self.sentinels]:
                port = free_port()
            self.sentinels.append(SentinelServer(directory, port, master_port))
        self.killed = []  # ports

    @property
    def url(self):
        return "redis+sentinel://" + ",".join(f"{HOST}:{s.port}" for s in self.sentinels) + f"/{MASTER_NAME}"

    def start(self, within=90.0):
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.wait_ready()
        deadline = time.monotonic() + within
        why = self.replication_not_ready()
        while why:
            if time.monotonic() > deadline:
                raise SetupError(f"the replicas did not link to the master within {within:.0f} s: {why}")
            time.sleep(0.1)
            why = self.replication_not_ready()
        for sentinel in self.sentinels:
            sentinel.start()
        for sentinel in self.sentinels:
            sentinel.wait_ready()
        why = self.sentinels_not_ready()
        while why:
            if time.monotonic() > deadline:
                raise SetupError(f"the sentinels did not agree within {within:.0f} s: {why}")
            time.sleep(0.1)
            why = self.sentinels_not_ready()

    def replication_not_ready(self):
        try:
            for port, node in self.nodes.items():
                if node.replica_of is None:
                    continue
                state, _ = replication(port)
                if state.get("master_link_status") != "up":
                    return f"replica {port}: master_link_status {state.get('master_link_status')}"
        except redis.exceptions.RedisError as error:
            return str(error)
        return None

    def sentinels_not_ready(self):
        try:
            for sentinel in self.sentinels:
                master = fields(self.call(sentinel.port, "SENTINEL", "master", MASTER_NAME))
                if master.get("port") != str(self.first_master) or master.get("flags") != "master":
                    return f"sentinel {sentinel.port} sees {master.get('port')} flags {master.get('flags')}"
                if master.get("num-other-sentinels") != "2" or master.get("num-slaves") != "2":
                    return (f"sentinel {sentinel.port} knows {master.get('num-other-sentinels')} other sentinels "
                            f"and {master.get('num-slaves')} replicas")
                for replica in self.call(sentinel.port, "SENTINEL", "replicas", MASTER_NAME):
                    replica = fields(replica)
                    flags = replica.get("flags", "")
                    if "s_down" in flags or "disconnected" in flags or replica.get("master-link-status") != "ok":
                        return f"sentinel {sentinel.port} sees replica {replica.get('port')} as {flags}"
        except redis.exceptions.RedisError as error:
            return str(error)
        return None

    @staticmethod
    def call(port, *words, timeout=1.0):
        """One command on a connection of its own, the reply as RESP gives it (bulk strings
        decoded), without redis-py's reply parsing (it rewrites SENTINEL and INFO replies)."""
        try:
            with socket.create_connection((HOST, port), timeout=timeout) as connection:
                connection.sendall(chaos.resp_command(*words))
                buffer = bytearray()
                while True:
                    data = connection.recv(1 << 16)
                    if not data:
                        raise redis.exceptions.ConnectionError(f"{HOST}:{port} closed the connection")
                    buffer += data
                    try:
                        value, _ = chaos.parse_resp(buffer, 0)
                        break
                    except chaos.Incomplete:
                        continue
        except OSError as error:
            raise redis.exceptions.ConnectionError(f"{HOST}:{port}: {error}") from error
        if isinstance(value, ConnectionError):
            raise redis.exceptions.ResponseError(str(value))
        return decoded(value)

    def named(self, sentinel):
        """The master port the sentinel names now (None: no answer, or it names none)."""
        if sentinel.process is None or sentinel.process.poll() is not None:
            return None
        try:
            reply = self.call(sentinel.port, "SENTINEL", "get-master-addr-by-name", MASTER_NAME, timeout=0.5)
        except redis.exceptions.RedisError:
            return None
        return int(reply[1]) if reply else None

    def named_masters(self):
        """{sentinel port: master port it names now} for the sentinels that answer."""
        named = {sentinel.port: self.named(sentinel) for sentinel in self.sentinels}
        return {sentinel: port for sentinel, port in named.items() if port is not None}

    def master_port(self):
        """The master the first sentinel that answers names (None when none does)."""
        for sentinel in self.sentinels:
            port = self.named(sentinel)
            if port is not None:
                return port
        return None

    def role(self, port):
        try:
            return str(self.call(port, "ROLE", timeout=0.5)[0])
        except (redis.exceptions.RedisError, IndexError):
            return None

    def agreed_master(self, other_than=None):
        """The port a quorum of sentinels names and that says it is a master, else None."""
        counts = {}
        for port in self.named_masters().values():
            counts[port] = counts.get(port, 0) + 1
        for port, count in counts.items():
            if count >= QUORUM and port != other_than and port not in self.killed and self.role(port) == "master":
                return port
        return None

    def kill(self, port):
        node = self.nodes[port]
        with SignalsHeld():
            node.kill()
            self.killed.append(port)

    def stop(self):
        for process in list(self.nodes.values()) + self.sentinels:
            process.stop()


class FailoverWatch(threading.Thread):
    """After the kill: when a quorum of sentinels names a new master, what it holds then, and
    when a replica is linked to it again (what WAIT 1 needs)."""

    def __init__(self, deployment, old_port, kill_wall):
        super().__init__(daemon=True, name="failover-watch")
        self.deployment = deployment
        self.old_port = old_port
        self.kill_wall = kill_wall
        self.new_port = None
        self.promoted_after = None      # s after the kill
        self.replica_after = None       # s after the kill
        self.at_promotion = None        # {model: pending} on the new master when it was first seen
        self.stopping = threading.Event()

    def run(self):
        deadline = time.monotonic() + FAILOVER_LIMIT
        while not self.stopping.is_set() and time.monotonic() < deadline:
            if self.new_port is None:
                port = self.deployment.agreed_master(other_than=self.old_port)
                if port is not None:
                    self.promoted_after = time.time() - self.kill_wall
                    self.new_port = port
                    try:
                        connection = client(port)
                        pipe = connection.pipeline(transaction=True)
                        for model in MODELS:
                            pipe.zcard(key(model, "pending"))
                        self.at_promotion = dict(zip(MODELS, pipe.execute()))
                        connection.close()
                    except redis.exceptions.RedisError:
                        pass
            else:
                try:
                    _, replicas = replication(self.new_port)
                    if any(replica.get("state") == "online" for replica in replicas):
                        self.replica_after = time.time() - self.kill_wall
                        return
                except redis.exceptions.RedisError:
                    pass
            time.sleep(0.02)


# --- Events, on whichever server the sentinels name -------------------------------------------

class MasterObserver(chaos.Observer):
    """chaos.Observer, connecting to the master the sentinels name at each (re)subscription."""

    def __init__(self, deployment):
        super().__init__(port=None)
        self.deployment = deployment
        self.channels = [key(model, "events") for model in MODELS]
        self.epoch_ports = {}  # epoch -> the port it subscribed on

    def run(self):
        while not self.stopping.is_set():
            port = self.deployment.master_port()
            if port is None or port in self.deployment.killed:
                time.sleep(0.01)
                continue
            try:
                connection = socket.create_connection((HOST, port), timeout=0.5)
            except OSError:
                time.sleep(0.01)
                continue
            with self.lock:
                self.epoch_ports[self.epoch + 1] = port
            try:
                self.listen(connection)
            except (OSError, ConnectionError, ValueError):
                pass
            finally:
                self.subscribed.clear()
                connection.close()
            if not self.stopping.is_set():
                time.sleep(0.01)


# --- Workers and producers ----------------------------------------------------------------------

def clean_environment():
    return {name: value for name, value in os.environ.items()
            if not name.startswith(("IMAGEQUEUE_", "FLUX_", "SDXL_", "OPENROUTER_", "GEMINI_", "LLM_"))}


class SentinelWorkers(chaos.Workers):
    """chaos.Workers on the sentinel URL, with the run's WAIT setting and lease."""

    def __init__(self, binary, directory, url, fake_port, wait, lease):
        super().__init__(binary, directory, 0, fake_port)
        self.redis_url = url
        self.lease = lease
        self.environment.update({"IMAGEQUEUE_REDIS_WAIT_REPLICAS": str(wait),
                                 "IMAGEQUEUE_REDIS_WAIT_TIMEOUT": str(WAIT_TIMEOUT_MS),
                                 "IMAGEQUEUE_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
                                 "IMAGEQUEUE_LOG_LEVEL": "info"})

    def start(self):
        self.started += 1
        worker_id = f"fo-w{self.started}"
        with open(os.path.join(self.logs, worker_id + ".log"), "wb") as output, SignalsHeld():
            self.alive[worker_id] = subprocess.Popen(
                [self.binary, "worker", "--models", ",".join(MODELS), "--backend", "http",
                 "--lease-seconds", str(self.lease), "--id", worker_id, "--output-dir", self.output,
                 "--redis", self.redis_url, "--prefix", PREFIX],
                stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=self.environment,
                start_new_session=True)
        return worker_id


def failure_kind(status, text):
    if status == 1 and "acknowledged" in text:
        return "not_replicated"
    if status == 1:
        return "unavailable" if re.search(r"connect|unavailable|no sentinel|READONLY|timed out|closed", text, re.I) \
            else "exit 1: " + text[:80]
    return f"exit {status}: {text[:80]}"


class Producer:
    """Enqueues `total` jobs with `imagequeue enqueue --json --idempotency-key`, from `threads`
    threads, repeating a failed call with the same key until it is answered."""

    def __init__(self, binary, url, wait, total, threads, seed, tag):
        rng = random.Random(seed)
        self.binary = binary
        self.url = url
        self.plan = [(f"fo-{tag}-k{index:05d}", rng.choice(MODELS), rng.random() >= 0.25)
                     for index in range(1, total + 1)]
        self.environment = clean_environment()
        self.environment.update({"IMAGEQUEUE_REDIS_WAIT_REPLICAS": str(wait),
                                 "IMAGEQUEUE_REDIS_WAIT_TIMEOUT": str(WAIT_TIMEOUT_MS),
                                 "IMAGEQUEUE_RATE_LIMIT": "off", "IMAGEQUEUE_MAX_ATTEMPTS": str(MAX_ATTEMPTS)})
        self.lock = threading.Lock()
        self.next = 0
        self.records = {}  # key -> {"model", "attempts": [(start, end, status, text)], "id", "created", "answered"}
        self.answered = 0
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.work, daemon=True, name=f"producer-{n}") for n in range(threads)]

    def start(self):
        for thread in self.threads:
            thread.start()

    @property
    def done(self):
        return not any(thread.is_alive() for thread in self.threads)

    def work(self):
        while not self.stopping.is_set():
            with self.lock:
                if self.next >= len(self.plan):
                    return
                job = self.plan[self.next]
                self.next += 1
            self.enqueue(*job)

    def enqueue(self, job_key, model, enhance):
        record = {"model": model, "attempts": [], "id": None, "created": None, "answered": None}
        with self.lock:
            self.records[job_key] = record
        command = [self.binary, "enqueue", "--redis", self.url, "--prefix", PREFIX, "--model", model,
                   "--user", "failover", "--idempotency-key", job_key, "--json"]
        command += [] if enhance else ["--no-enhance"]
        command.append(f"failover prompt {job_key}")
        deadline = time.monotonic() + ENQUEUE_DEADLINE
        while not self.stopping.is_set() and time.monotonic() < deadline:
            began = time.time()
            try:
                done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=self.environment, timeout=60)
                status, out, err = done.returncode, done.stdout.decode(errors="replace"), \
                    done.stderr.decode(errors="replace").strip()
            except subprocess.TimeoutExpired:
                status, out, err = None, "", "no answer within 60 s (killed)"
            ended = time.time()
            if status == 0:
                try:
                    answer = json.loads(out)
                    with self.lock:
                        record["attempts"].append((began, ended, 0, ""))
                        record.update(id=answer["id"], created=answer.get("created"), answered=ended)
                        self.answered += 1
                    return
                except (ValueError, KeyError) as error:
                    status, err = -1, f"exit 0 with an unreadable answer {out[:120]!r}: {error}"
            with self.lock:
                record["attempts"].append((began, ended, status, err.splitlines()[-1] if err else ""))
            time.sleep(0.1)


# --- One run -----------------------------------------------------------------------------------

class Run:
    def __init__(self, arguments, wait, seed):
        self.arguments = arguments
        self.wait = wait
        self.seed = seed
        self.directory = tempfile.mkdtemp(prefix=f"imagequeue-failover-w{wait}.")
        self.deployment = None
        self.fake = None
        self.workers = None
        self.observer = None
        self.producer = None
        self.watch = None
        self.kill = None  # {"port", "wall", "at", "answered", "pending"}
        self.stalled = False
        self.started_at = None
        self.finished_at = None
        self.final_port = None
        self.enqueue_ms = None
        self.lost = []
        self.more_than_once = (0, 0, 0)
        self.resume = ({"all": None}, {"all": None})

    def setup(self):
        arguments = self.arguments
        self.deployment = Deployment(self.directory)
        self.deployment.start()
        self.fake = chaos.Fake(self.directory)
        for index, model in enumerate(MODELS):
            self.fake.control("/_control/chaos", dict(FAKE_CHAOS[model], service=model, seed=self.seed * 10 + index))
        self.observer = MasterObserver(self.deployment)
        self.observer.start()
        if not self.observer.subscribed.wait(30):
            raise SetupError("the event subscription did not start")
        self.workers = SentinelWorkers(arguments.binary, self.directory, self.deployment.url, self.fake.port,
                                       self.wait, arguments.lease_seconds)
        for _ in range(2):
            self.workers.start()
        control = client(self.deployment.first_master)
        deadline = time.monotonic() + 60
        while control.zcard(f"{PREFIX}:workers") < 2:
            self.workers.check()
            if time.monotonic() > deadline:
                raise SetupError(f"the workers did not register (see {self.workers.logs})")
            time.sleep(0.05)
        control.close()
        self.producer = Producer(arguments.binary, self.deployment.url, self.wait, arguments.jobs,
                                 arguments.producers, self.seed + 1, f"w{self.wait}")

    def progress(self):
        """(pending, active, completed, dead) summed over both models on the master the sentinels
        name, or None while there is none to ask."""
        port = self.deployment.master_port()
        if port is None or port in self.deployment.killed:
            return None
        try:
            connection = client(port, timeout=0.5)
            pipe = connection.pipeline(transaction=False)
            for model in MODELS:
                pipe.zcard(key(model, "pending"))
                pipe.zcard(key(model, "active"))
                pipe.hget(key(model, "meta"), "completed_total")
                pipe.zcard(key(model, "dead"))
            values = pipe.execute()
            connection.close()
        except redis.exceptions.RedisError:
            return None
        return tuple(sum(int(values[i + 4 * m] or 0) for m in range(len(MODELS))) for i in range(4))

    def drive(self):
        total = self.arguments.jobs
        self.started_at = time.monotonic()
        self.producer.start()
        last_state, last_move = None, time.monotonic()
        next_report = time.monotonic() + 10
        while True:
            now = time.monotonic()
            self.workers.check()
            state = self.progress()
            signature = (self.producer.answered, state)
            if signature != last_state and state is not None:
                last_state, last_move = signature, now
            if self.kill is None and self.producer.answered >= self.arguments.kill_at * total:
                self.kill_master()
                last_move = time.monotonic()
                continue
            if self.kill is not None and self.producer.done and state is not None and state[0] == 0 and state[1] == 0:
                break
            if now - last_move > STALL_SECONDS:
                self.stalled = True
                log(f"nothing moved for {STALL_SECONDS:.0f} s: stopping")
                break
            if now >= next_report:
                text = "no master to ask" if state is None else \
                    f"{state[2]} completed, {state[0]} pending, {state[1]} active"
                log(f"WAIT {self.wait}: {self.producer.answered}/{total} answered queued, {text}, "
                    f"{self.observer.count()} events")
                next_report += 10
            time.sleep(0.05)
        self.finished_at = time.monotonic()

    def kill_master(self):
        port = self.deployment.master_port()
        if port is None or self.deployment.role(port) != "master":
            raise SetupError(f"the sentinels name {port} as the master, which does not say it is one")
        pending = None
        try:
            connection = client(port)
            pending = {model: connection.zcard(key(model, "pending")) for model in MODELS}
            connection.close()
        except redis.exceptions.RedisError:
            pass
        cut = self.arguments.cut_replicas_ms
        if cut:
            # The replicas' link is cut for `cut` ms before the crash, as a network partition
            # would: they are stopped (so they cannot reconnect) and the master drops them.
            replicas = [node for other, node in self.deployment.nodes.items()
                        if other != port and other not in self.deployment.killed]
            for node in replicas:
                node.signal(signal.SIGSTOP)
            try:
                self.deployment.call(port, "CLIENT", "KILL", "TYPE", "replica")
            finally:
                time.sleep(cut / 1000)
        wall = time.time()
        answered = self.producer.answered
        self.deployment.kill(port)
        if cut:
            for node in replicas:
                node.signal(signal.SIGCONT)
        self.kill = {"port": port, "wall": wall, "at": time.monotonic() - self.started_at,
                     "answered": answered, "pending": pending, "cut_ms": cut}
        log(f"WAIT {self.wait}: {self.kill['at']:.1f} s, {answered} answered queued: SIGKILLed the "
            f"master on port {port} (pending {pending})" + (f", its replicas cut off {cut} ms before" if cut else ""))
        self.watch = FailoverWatch(self.deployment, port, wall)
        self.watch.start()

    def finish(self):
        self.producer.stopping.set()
        for thread in self.producer.threads:
            thread.join(timeout=70)
        time.sleep(0.5)  # the last events
        self.workers.stop(graceful=True)
        self.observer.stopping.set()
        self.observer.join(timeout=5)
        if self.watch is not None:
            self.watch.stopping.set()
            self.watch.join(timeout=5)
        if self.watch is not None and self.watch.new_port is not None:
            log(f"WAIT {self.wait}: the sentinels named {self.watch.new_port} the master "
                f"{self.watch.promoted_after:.1f} s after the kill; a replica was linked to it again "
                + (f"{self.watch.replica_after:.1f} s after" if self.watch.replica_after is not None else "never"))

    def collect(self):
        """Every job hash on the new master (not only the answered ones), its sets and counters."""
        deadline = time.monotonic() + 60
        port = self.deployment.agreed_master()
        while port is None and time.monotonic() < deadline:
            time.sleep(0.2)
            port = self.deployment.agreed_master()
        if port is None:
            raise SetupError("no master to read the final state from")
        self.final_port = port
        control = client(port, timeout=30)
        jobs = {}
        for model in MODELS:
            names = list(control.scan_iter(match=key(model, "job:") + "*", count=1000))
            for start in range(0, len(names), 500):
                pipe = control.pipeline(transaction=False)
                for name in names[start:start + 500]:
                    pipe.hgetall(name)
                for name, values in zip(names[start:start + 500], pipe.execute()):
                    if values:
                        # A job enqueued by protocol 1.3 stores neither its id nor its model: the
                        # key holds both (PROTOCOL.md §3).
                        values.setdefault("model", model)
                        jobs[values.setdefault("id", name.rsplit(":", 1)[1])] = values
        sets, meta = {}, {}
        for model in MODELS:
            sets[model] = {name: control.zcard(key(model, name)) for name in ("pending", "active", "dead")}
            meta[model] = control.hgetall(key(model, "meta"))
        control.close()
        return jobs, sets, meta


# --- Checks ---------------------------------------------------------------------------------------

class Findings:
    def __init__(self):
        self.rows = []  # (check, count, examples, note, must)

    def add(self, check, problems, note="", must=True):
        self.rows.append((check, len(problems), problems[:EXAMPLES], note, must))

    @property
    def failed(self):
        return any(count and must for _, count, _, _, must in self.rows)


def job_key_of(values):
    try:
        match = KEY_PATTERN.search(json.loads(values.get("request", "{}")).get("prompt", ""))
    except (ValueError, AttributeError):
        match = None
    return match.group(0) if match else None


def start_order(events, jobs):
    """chaos.py's start-order check, leaving out the jobs the new master does not have (their
    sequence numbers were lost with them, and may have been given again)."""
    seqs = {job_id: int(values.get("seq", 0)) for job_id, values in jobs.items()}
    order, reruns, claims = [], 0, 0
    for model in MODELS:
        started, last, requeued = set(), None, {}
        for epoch, event in events:
            job_id = event["id"]
            if event.get("model") != model or job_id not in seqs:
                continue
            if event["status"] == "queued" and event["rev"] > 1:
                requeued[job_id] = epoch
                continue
            if not is_claim(event):
                if event["status"] in ("completed", "failed", "cancelled"):
                    requeued.pop(job_id, None)
                continue
            claims += 1
            seq = seqs[job_id]
            if job_id not in started and event["attempt"] == 1:
                if last is not None and seq < last[1]:
                    order.append(f"{job_id} (seq {seq}) started after {last[0]} (seq {last[1]})")
                last = (job_id, seq)
            else:
                reruns += 1
            started.add(job_id)
            requeued.pop(job_id, None)
            for waiting, waiting_epoch in requeued.items():
                if waiting_epoch == epoch and seqs[waiting] < seq:
                    order.append(f"{job_id} (seq {seq}) started while {waiting} (seq {seqs[waiting]}) waited to run again")
            requeued = {job: e for job, e in requeued.items() if e == epoch}
    return order, claims, reruns


def generations(fake):
    """{job key: images the backend generated for it} from the fake's request log."""
    counts = {}
    for entry in fake.control("/_control/requests"):
        if entry.get("service") in MODELS and entry.get("status") == 200 and entry.get("outcome") == "ok":
            match = KEY_PATTERN.search(entry.get("prompt") or "")
            if match:
                counts[match.group(0)] = counts.get(match.group(0), 0) + 1
    return counts


def resumed(run, events, jobs):
    """Seconds from the kill to the first claim and the first completion on the new master, per
    model and overall (None: none seen)."""
    kill_ms = run.kill["wall"] * 1000
    claims, completions = {}, {}

    def note(table_, model, value):
        if value is not None and value > kill_ms and (model not in table_ or value < table_[model]):
            table_[model] = value
    for _, event in events:
        if is_claim(event):
            note(claims, event.get("model"), event["time"])
        elif event["status"] == "completed":
            note(completions, event.get("model"), event["time"])
    for values in jobs.values():
        model = values.get("model")
        if values.get("started_at"):
            note(claims, model, int(values["started_at"]))
        if values.get("status") == "completed" and values.get("finished_at"):
            note(completions, model, int(values["finished_at"]))

    def seconds(table_):
        result = {model: (value - kill_ms) / 1000 for model, value in table_.items()}
        result["all"] = min(result.values()) if result else None
        return result
    return seconds(claims), seconds(completions)


def check_run(run, jobs, sets, meta, generated):
    findings = Findings()
    producer = run.producer
    events = run.observer.snapshot()
    records = producer.records

    problems = [f"{wid} exited by itself with status {status}: {tail}" for wid, status, tail in run.workers.unexpected]
    problems += [f"{wid} " + ("did not stop within 10 s of SIGTERM" if status is None else f"exited {status} on SIGTERM")
                 + f": {run.workers.tail(wid)}" for wid, status in run.workers.stopped.items() if status != 0]
    findings.add("workers", problems, f"{run.workers.started} started, the {len(run.workers.stopped)} alive at the end "
                                      f"stopped by SIGTERM with status 0")

    answered = {k: r for k, r in records.items() if r["id"]}
    failures = {}
    problems = []
    for job_key, record in records.items():
        for _, _, status, text in record["attempts"]:
            if status == 0:
                continue
            kind = failure_kind(status, text)
            failures[kind] = failures.get(kind, 0) + 1
            if status != 1:
                problems.append(f"{job_key}: {kind}")
        if not record["id"]:
            last = record["attempts"][-1] if record["attempts"] else None
            problems.append(f"{job_key} was never answered queued (last: {last and failure_kind(last[2], last[3])})")
    if len(records) < len(producer.plan):
        problems.append(f"only {len(records)} of {len(producer.plan)} jobs were tried")
    repeats = sum(1 for r in answered.values() if len(r["attempts"]) > 1)
    hits = sum(1 for r in answered.values() if len(r["attempts"]) > 1 and r["created"] is False)
    failed_text = ", ".join(f"{count} {kind}" for kind, count in sorted(failures.items())) or "none"
    findings.add("enqueue", problems, f"{len(answered)} of {len(producer.plan)} answered queued; "
                                      f"{repeats} after a repeat ({hits} of them answered the job the first call "
                                      f"had queued); failed calls: {failed_text}")

    by_key = {}
    for job_id, values in jobs.items():
        by_key.setdefault(job_key_of(values), []).append(job_id)
    twice = [f"{k}: {', '.join(sorted(ids))}" for k, ids in by_key.items() if k is not None and len(ids) > 1]
    unknown = [job_id for job_id, values in jobs.items() if job_key_of(values) is None]
    twice += [f"{job_id} has no key of this run in its prompt" for job_id in unknown]
    unanswered = [ids[0] for k, ids in by_key.items() if k is not None and k not in answered]
    findings.add("queued once", twice, f"{len(jobs)} jobs on the new master, one per key; "
                                       f"{len(unanswered)} of them queued by a call never answered")

    lost = []
    for job_key, record in answered.items():
        values = jobs.get(record["id"])
        if not values:
            lost.append(f"{record['id']} ({job_key}, answered {record['answered'] - run.kill['wall']:+.3f} s from the "
                        f"kill) is not on the new master")
        elif values.get("status") != "completed":
            lost.append(f"{record['id']} ({job_key}) is {values.get('status')} on the new master")
    run.lost = lost
    findings.add("lost", lost, "every job answered queued is completed on the new master", must=run.wait >= 1)

    stuck = [f"{job_id} is {values.get('status')} (attempt {values.get('attempt')})"
             for job_id, values in jobs.items() if values.get("status") != "completed"]
    for model in MODELS:
        for name, count in sets[model].items():
            if count:
                stuck.append(f"{model} {name} holds {count} jobs")
        if int(meta[model].get("failed_total", 0) or 0):
            stuck.append(f"{model} failed_total is {meta[model]['failed_total']}")
    if run.stalled:
        stuck.append(f"the run stopped after {STALL_SECONDS:.0f} s without progress")
    completed = sum(1 for values in jobs.values() if values.get("status") == "completed")
    findings.add("none stuck", stuck, f"{completed} completed; pending, active, dead empty")

    totals = []
    for model in MODELS:
        done = sum(1 for values in jobs.values() if values.get("model") == model and values.get("status") == "completed")
        total = int(meta[model].get("completed_total", 0) or 0)
        if total != done:
            totals.append(f"{model} completed_total is {total} for {done} completed jobs")
    findings.add("completed_total", totals, "each model's completed_total = its completed jobs")

    completions, expired = {}, set()
    for _, event in events:
        if event["status"] == "completed":
            completions.setdefault(event["id"], []).append(event)
        elif event["status"] == "queued" and isinstance(event.get("error"), dict) \
                and event["error"].get("code") == "lease_expired":
            expired.add(event["id"])
    key_of_id = {record["id"]: k for k, record in records.items() if record["id"]}
    key_of_id.update({job_id: job_key_of(values) for job_id, values in jobs.items()})
    more, double = [], []
    ran_twice = announced_twice = 0
    for job_id, seen in completions.items():
        if len(seen) < 2:
            continue
        images = generated.get(key_of_id.get(job_id), 0)
        kind = "ran twice" if images > 1 else "announced twice"
        if images > 1 and job_id in expired:
            kind += " (requeued after its lease expired)"
        ran_twice += images > 1
        announced_twice += images <= 1
        runs = ", ".join(f"{event.get('attempt')}/{event.get('worker')}" for event in seen)
        text = f"{job_id} {kind}: {len(seen)} completed events (attempt/worker {runs}), {images} images generated"
        more.append(text)
        if images > 1 and job_id not in expired:
            double.append(text)
    run.more_than_once = (len(more), ran_twice, announced_twice)
    runs_total = sum(generated.values())
    extra_runs = sum(count - 1 for count in generated.values() if count > 1)
    findings.add("completed twice", more, f"{len(completions)} jobs' completions observed, none twice; "
                                          f"{runs_total} images generated, {extra_runs} beyond one a job", must=False)
    findings.add("no double run", double, "no job ran twice but after an expired lease (at least once, by design)",
                 must=run.wait >= 1)

    order, claims, reruns = start_order(events, jobs)
    findings.add("start order", order, f"{claims} claims observed, {reruns} of them re-runs")

    claim_after, complete_after = resumed(run, events, jobs)
    run.resume = (claim_after, complete_after)
    text = lambda values: ", ".join(f"{m} {values[m]:.2f} s" if values.get(m) is not None else f"{m} none"
                                    for m in MODELS)
    promoted = f"; the sentinels were seen naming the new master {run.watch.promoted_after:.2f} s after the kill" \
        if run.watch is not None and run.watch.promoted_after is not None else ""
    findings.add("resumed", [], f"after the kill, first claim: {text(claim_after)}; first completion: "
                                f"{text(complete_after)}{promoted}", must=False)
    return findings


# --- Output ---------------------------------------------------------------------------------------

def seconds_text(value):
    return "none" if value is None else f"{value:.1f} s"


def report(run, findings, jobs, fake_stats):
    duration = (run.finished_at or time.monotonic()) - run.started_at
    plan = run.producer.plan
    counts = {model: sum(1 for job in plan if job[1] == model) for model in MODELS}
    watch = run.watch
    events = run.observer.snapshot()
    expired = sum(1 for _, event in events if event["status"] == "queued"
                  and isinstance(event.get("error"), dict) and event["error"].get("code") == "lease_expired")
    kill = run.kill
    did = [
        ("setting", f"IMAGEQUEUE_REDIS_WAIT_REPLICAS={run.wait}, IMAGEQUEUE_REDIS_WAIT_TIMEOUT={WAIT_TIMEOUT_MS}"),
        ("jobs", f"{len(plan)}: " + ", ".join(f"{model} {counts[model]}" for model in MODELS)
         + f"; enqueued with `imagequeue enqueue`, {run.arguments.producers} at a time"),
        ("workers", f"2 on {run.deployment.url}, lease {run.arguments.lease_seconds} s"),
        ("kill", f"master {kill['port']} SIGKILLed at {kill['at']:.1f} s, {kill['answered']} jobs answered queued, "
                 f"pending {kill['pending']}" + (f"; its replicas cut off {kill['cut_ms']} ms before" if kill['cut_ms'] else "")),
        ("producers", producer_text(run)),
        ("failover", (f"new master {watch.new_port} named {watch.promoted_after:.1f} s after the kill "
                      f"(pending {watch.at_promotion}); a replica linked to it "
                      + (f"{watch.replica_after:.1f} s after" if watch.replica_after is not None else "never"))
         if watch and watch.new_port else "no new master named"),
        ("backend", "; ".join(f"{model}: {stats.get('answered', 0)} answers, {stats.get('errors', 0)} injected 5xx, "
                              f"{stats['latency_ms'][0]:g}-{stats['latency_ms'][1]:g} ms"
                              for model, stats in sorted(fake_stats.items()))),
        ("re-runs", f"{expired} jobs requeued after an expired lease (events observed)"),
        ("events", f"{len(events)} observed in {run.observer.epoch} subscriptions "
                   f"(ports {', '.join(str(p) for _, p in sorted(run.observer.epoch_ports.items()))})"),
        ("duration", f"{duration:.1f} s"),
        ("seed", str(run.seed)),
    ]
    print()
    print(table(("what it did", ""), did))
    print()
    rows = []
    for check, count, examples, note, must in findings.rows:
        if count == 0:
            result, detail = "OK", note
        else:
            result = f"{count} violation{'s' if count != 1 else ''}" if must else f"reported: {count}"
            detail = "; ".join(examples) + (" …" if count > len(examples) else "")
        rows.append((check, result, detail))
    print(table(("check", "result", "details"), rows))
    print()
    claim_after, complete_after = run.resume
    log(f"WAIT {run.wait}: workers resumed {seconds_text(claim_after['all'])} after the master was killed "
        f"(first claim on the new master; first completion {seconds_text(complete_after['all'])})")
    sys.stdout.flush()


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))] if values else None


def producer_text(run):
    """How long answered enqueue calls took, and how soon the producers were answered again."""
    calls = [end - start for record in run.producer.records.values()
             for start, end, status, _ in record["attempts"] if status == 0]
    kill = run.kill["wall"]
    again = [end - kill for record in run.producer.records.values()
             for start, end, status, _ in record["attempts"] if status == 0 and start > kill]
    through = [end - start for record in run.producer.records.values()
               for start, end, status, _ in record["attempts"] if status == 0 and start < kill < end]
    run.enqueue_ms = (percentile(calls, 0.5) * 1000, percentile(calls, 0.95) * 1000) if calls else None
    text = (f"answered calls took {percentile(calls, 0.5) * 1000:.0f} ms (median), "
            f"{percentile(calls, 0.95) * 1000:.0f} ms (95th percentile), {max(calls):.1f} s at most"
            if calls else "no call answered")
    if through:
        text += f"; {len(through)} calls under way at the kill were answered, taking {max(through):.1f} s at most"
    if again:
        text += f"; the first call begun after the kill was answered {min(again):.1f} s after the kill"
    return text


def summary(results):
    rows = []
    for wait, outcome in results:
        if isinstance(outcome, str):
            rows.append((str(wait), "-", "-", "-", "-", "-", "-", outcome))
            continue
        run, findings = outcome
        answered = sum(1 for r in run.producer.records.values() if r["id"])
        more, ran, announced = run.more_than_once
        claim_after, complete_after = run.resume
        latency = "-" if run.enqueue_ms is None else f"{run.enqueue_ms[0]:.0f} / {run.enqueue_ms[1]:.0f}"
        rows.append((str(wait), str(answered), str(len(run.lost)), f"{more} ({ran} ran twice, {announced} announced twice)",
                     seconds_text(claim_after["all"]), seconds_text(complete_after["all"]), latency,
                     "FAILED" if findings.failed else "passed"))
    print(table(("WAIT", "answered queued", "lost", "completed more than once", "first claim after kill",
                 "first completion after kill", "enqueue ms, median / 95th", "checks"), rows))
    print()
    sys.stdout.flush()


# --- Main -----------------------------------------------------------------------------------------

def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description="Sentinel failover run: SIGKILL the Redis master under load, with and without WAIT; "
                    "report what was lost, what ran twice and how soon work resumed.")
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "imagequeue"),
                        help="the imagequeue executable (default .build/release/imagequeue)")
    parser.add_argument("--jobs", type=int, default=None, help="jobs to enqueue per run (default 2000, 400 with --short)")
    parser.add_argument("--short", action="store_true", help="fewer jobs (400), for CI")
    parser.add_argument("--wait", default="0,1", help="IMAGEQUEUE_REDIS_WAIT_REPLICAS of each run (default 0,1)")
    parser.add_argument("--kill-at", type=float, default=0.4, help="fraction of the jobs answered queued when the "
                                                                   "master is killed (default 0.4)")
    parser.add_argument("--producers", type=int, default=2, help="enqueue commands at a time (default 2)")
    parser.add_argument("--lease-seconds", type=int, default=10, help="the workers' lease (default 10)")
    parser.add_argument("--cut-replicas-ms", type=int, default=0,
                        help="cut the replicas off the master this long before the kill (SIGSTOP them, CLIENT KILL "
                             "TYPE replica), as a partition would; default 0: off")
    parser.add_argument("--seed", type=int, default=None, help="seed for the models and the backend (default: random)")
    parser.add_argument("--keep", action="store_true", help="keep each run's directory (logs, sentinel configs, "
                                                            "events.jsonl, producer.json)")
    arguments = parser.parse_args(argv)
    if arguments.jobs is None:
        arguments.jobs = 400 if arguments.short else 2000
    if arguments.seed is None:
        arguments.seed = random.randrange(1, 1 << 31)
    try:
        arguments.waits = [int(value) for value in arguments.wait.split(",") if value.strip() != ""]
    except ValueError:
        parser.error("--wait takes whole numbers separated by commas, e.g. 0,1")
    if not arguments.waits or any(not 0 <= value <= 2 for value in arguments.waits):
        parser.error("--wait values must be 0, 1 or 2 (there are two replicas)")
    if not 10 <= arguments.jobs <= 100_000:
        parser.error("--jobs must be from 10 to 100000")
    if not 0 < arguments.kill_at < 1:
        parser.error("--kill-at must be between 0 and 1")
    if not 1 <= arguments.producers <= 16:
        parser.error("--producers must be from 1 to 16")
    if not 0 <= arguments.cut_replicas_ms <= 900:
        parser.error("--cut-replicas-ms must be from 0 to 900 (below the sentinels' down-after of 1000 ms)")
    if not 2 <= arguments.lease_seconds <= 300:
        parser.error("--lease-seconds must be from 2 to 300")
    if not (os.path.isfile(arguments.binary) and os.access(arguments.binary, os.X_OK)):
        parser.error(f"--binary {arguments.binary} is not an executable (swift build -c release first)")
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not installed (bash ops/install-deps.sh --tests)")
    return arguments


def one_run(arguments, wait, seed):
    run = Run(arguments, wait, seed)
    try:
        log(f"WAIT {wait}: {arguments.jobs} jobs, kill at {arguments.kill_at:.0%}, seed {seed}, in {run.directory}; "
            f"sentinels: {' '.join(SentinelServer.command('<conf>'))}")
        run.setup()
        run.drive()
        run.finish()
        fake_stats = run.fake.control("/_control/chaos")
        generated = generations(run.fake)
        jobs, sets, meta = run.collect()
        findings = check_run(run, jobs, sets, meta, generated)
        report(run, findings, jobs, fake_stats)
        return run, findings
    finally:
        # Nothing may interrupt the cleanup: hold Ctrl-C and SIGTERM until it is done.
        previous = (signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN))
        if run.producer is not None:
            run.producer.stopping.set()
        if run.observer is not None:
            run.observer.stopping.set()
        if run.watch is not None:
            run.watch.stopping.set()
        if run.workers is not None:
            run.workers.stop()
        if run.fake is not None:
            run.fake.stop()
        if run.deployment is not None:
            run.deployment.stop()
        if arguments.keep:
            if run.observer is not None:
                with open(os.path.join(run.directory, "events.jsonl"), "w") as handle:
                    for epoch, event in run.observer.snapshot():
                        handle.write(json.dumps(dict(event, _epoch=epoch)) + "\n")
            if run.producer is not None:
                with open(os.path.join(run.directory, "producer.json"), "w") as handle:
                    json.dump({"kill": run.kill, "records": run.producer.records}, handle, indent=1)
            log(f"kept {run.directory}")
        else:
            shutil.rmtree(run.directory, ignore_errors=True)
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def main(argv=None):
    arguments = parse_arguments(argv)

    def terminate(*_):
        raise Stop()
    signal.signal(signal.SIGTERM, terminate)

    results, status = [], 0
    try:
        for index, wait in enumerate(arguments.waits):
            try:
                run, findings = one_run(arguments, wait, arguments.seed + 100 * index)
                results.append((wait, (run, findings)))
                status = status or (1 if findings.failed else 0)
            except SetupError as error:
                log(f"WAIT {wait}: setup failed: {error}")
                results.append((wait, f"setup failed: {error}"))
                status = 1
        summary(results)
        log("every check that must hold passed" if status == 0 else "VIOLATIONS found (see the tables)")
    except (KeyboardInterrupt, Stop):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("interrupted; cleaned up")
        status = 130
    return status


if __name__ == "__main__":
    sys.exit(main())
