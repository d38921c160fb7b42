#!/usr/bin/env python3
"""How ImageQueue scales on one Redis: worker processes, idle workers, latency under load.

Starts its own redis-server on a free 127.0.0.1 port (no persistence) and runs, with the release
binaries (imagequeue-worker, imagequeue-bench):

  processes  no-op jobs/s with 1, 2, 4, 8 worker processes on one model whose concurrency limit
             is 1,000 (each process --concurrency 64 unless --slots says otherwise), with the
             CPU that Redis and the workers spent per job
  idle       N idle workers (processes, --concurrency 1, each blocked on the model's doorbell):
             Redis CPU per idle worker, then one enqueue at a time: how many workers ran a
             claim for it (MONITOR: the distinct worker ids in claim calls), which is 1 when
             exactly one worker woke
  latency    enqueue -> claim latency percentiles while a steady enqueue load runs, at several
             rates, one job per enqueueJob call, the calls of each ms pipelined (a worker at
             --concurrency 64 runs the jobs)

  python3 ops/bench/scaling.py --bin .build/release [--sections processes idle latency]
      [--jobs 20000] [--processes 1 2 4 8] [--idle 200] [--rates 100 500 1000 2000 4000] [--json FILE]

Prints markdown tables; --json writes the figures for ops/bench/plots.py. A benchmark, not a
test: it asserts nothing about speed. Needs redis-server, redis-cli and redis-py.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Tests", "Python"))
from protocol_client import Script, model_keys, new_job_id  # noqa: E402
from private_redis import PrivateRedis  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (from /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children_cpu(process):
    """CPU seconds of a reaped child, from its rusage."""
    return process.rusage.ru_utime + process.rusage.ru_stime


def load_average():
    with open("/proc/loadavg") as handle:
        return float(handle.read().split()[0])


class Workers:
    """Worker processes, started and stopped together; their CPU comes from their rusage."""

    def __init__(self, binary, url, count, slots, output, ids=None):
        self.processes = []
        env = dict(os.environ, IMAGEQUEUE_PLACEHOLDER_SIZE="8", IMAGEQUEUE_LOG_LEVEL="warning")
        for n in range(count):
            command = [binary, "--redis", url, "--models", "flux", "--backend", "placeholder",
                       "--concurrency", str(slots), "--output-dir", output]
            if ids:
                command += ["--id", ids[n]]
            self.processes.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def stop(self):
        """Stops them; returns their CPU seconds in all."""
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        total = 0.0
        for process in self.processes:
            _, status, usage = os.wait4(process.pid, 0)
            total += usage.ru_utime + usage.ru_stime
        return total


def completed(r):
    return int(r.hget("iq:{flux}:meta", "completed_total") or 0)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def bulk_enqueue(arguments, server, count, concurrency):
    subprocess.run([os.path.join(arguments.bin, "imagequeue-bench"), "peer", "bulk", str(count), "--redis", server.url,
                    "--concurrency", str(concurrency)], check=True, stdout=subprocess.DEVNULL)


def processes_section(arguments, server, output):
    rows = []
    worker = os.path.join(arguments.bin, "imagequeue-worker")
    for count in arguments.processes:
        server.client.flushall()
        bulk_enqueue(arguments, server, arguments.jobs, 1000)
        before_load = load_average()
        redis_before = cpu_seconds(server.pid)
        start = time.monotonic()
        workers = Workers(worker, server.url, count, arguments.slots, output)
        wait_for(lambda: completed(server.client) >= arguments.jobs, 600, f"{arguments.jobs} jobs with {count} workers")
        elapsed = time.monotonic() - start
        redis_cpu = cpu_seconds(server.pid) - redis_before
        worker_cpu = workers.stop()
        rows.append({"processes": count, "jobs_per_s": arguments.jobs / elapsed,
                     "redis_us_per_job": redis_cpu / arguments.jobs * 1e6,
                     "worker_us_per_job": worker_cpu / arguments.jobs * 1e6, "load_before": before_load})
        print(f"  {count} processes: {rows[-1]['jobs_per_s']:.0f} jobs/s", file=sys.stderr)
    print(f"\n### Worker processes on one model (concurrency limit 1,000, --concurrency {arguments.slots} each, "
          f"{arguments.jobs:,} no-op jobs)\n")
    print("| processes | jobs/s | Redis CPU µs/job | worker CPU µs/job (all processes) | load before |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['processes']} | {row['jobs_per_s']:,.0f} | {row['redis_us_per_job']:.0f} | "
              f"{row['worker_us_per_job']:.0f} | {row['load_before']:.2f} |")
    return rows


class Monitor(threading.Thread):
    """MONITOR on its own connection: the worker ids of the claim calls seen while `recording`."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.connection = redis.Redis(port=port)
        self.recording = threading.Event()
        self.claimers = set()
        self.lock = threading.Lock()
        self.ready = threading.Event()

    def run(self):
        try:
            self.follow()
        except redis.exceptions.ConnectionError:
            pass  # the server stopped at the end of the run

    def follow(self):
        with self.connection.monitor() as monitor:
            self.ready.set()
            for line in monitor.listen():
                command = line.get("command", "")
                if not self.recording.is_set() or not command.lower().startswith("evalsha"):
                    continue
                # A claim's arguments: ... model, events channel, worker id, lease ms, claim id ("<worker>:<n>").
                match = re.search(r' (idle-\d+) \d+ idle-\d+:', command)
                if match:
                    with self.lock:
                        self.claimers.add(match.group(1))

    def take(self):
        with self.lock:
            found, self.claimers = self.claimers, set()
        return found


def idle_section(arguments, server, output):
    r = server.client
    r.flushall()
    r.hset("iq:{flux}:meta", "concurrency", 1)
    count = arguments.idle
    ids = [f"idle-{n}" for n in range(count)]
    workers = Workers(os.path.join(arguments.bin, "imagequeue-worker"), server.url, count, 1, output, ids=ids)
    # Every worker blocked on the doorbell: as many blocked clients as workers (the claim loops).
    wait_for(lambda: int(r.info("clients")["blocked_clients"]) >= count, 300, f"{count} workers blocked on the doorbell")
    time.sleep(1)
    redis_before, window = cpu_seconds(server.pid), 30.0
    time.sleep(window)
    idle_cpu = cpu_seconds(server.pid) - redis_before
    monitor = Monitor(server.port)
    monitor.start()
    monitor.ready.wait(10)
    enqueue = Script("enqueueJob")
    sha = r.script_load(enqueue.text)
    base, keys = model_keys("iq", "flux")
    woken = []
    for n in range(arguments.wakes):
        wait_for(lambda: int(r.info("clients")["blocked_clients"]) >= count, 60, "every worker back on the doorbell")
        monitor.take()
        monitor.recording.set()
        done = completed(r)
        r.evalsha(sha, len(keys), *keys, "flux", base + ":events", new_job_id("flux"),
                  json.dumps({"v": 1, "prompt": f"wake {n}", "user": "bench", "enhance": False}), 3, 86400000)
        wait_for(lambda: completed(r) > done, 60, "the job to complete")
        # The woken worker's next claim (its pipeline of doorbell wait + claim) comes right after.
        time.sleep(0.2)
        monitor.recording.clear()
        woken.append(len(monitor.take()))
    workers.stop()
    result = {"idle_workers": count, "redis_cpu_share_idle": idle_cpu / window,
              "redis_us_per_idle_worker_per_s": idle_cpu / window / count * 1e6,
              "claimers_per_enqueue": woken}
    print(f"\n### {count} idle workers on one Redis\n")
    print(f"- Redis CPU while they wait: {idle_cpu / window * 100:.2f} % of a core over {window:.0f} s, "
          f"{result['redis_us_per_idle_worker_per_s']:.1f} µs per idle worker per second")
    print(f"- workers that ran a claim per single enqueue ({arguments.wakes} enqueues, MONITOR): {woken}")
    return result


class ClaimEvents(threading.Thread):
    """Stamps the arrival of each job's claim event (`enhancing` or `generating`) on the model's channel."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.pubsub = redis.Redis(port=port).pubsub()
        self.pubsub.subscribe("iq:{flux}:events")
        self.claimed = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message or message["type"] != "message":
                continue
            now = time.perf_counter()
            event = json.loads(message["data"])
            if event.get("status") in ("enhancing", "generating") and event["id"] not in self.claimed:
                self.claimed[event["id"]] = now


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def latency_section(arguments, server, output):
    """A steady enqueue load at each rate for `seconds`, one job per call (paced by the ms); a worker at
    --concurrency 64 runs them (concurrency limit 64). The latency of a job is from just before
    its enqueue call to the arrival of its claim event here: it includes the enqueue round trip
    and pub/sub delivery, and this script's own Python overhead (tens of µs)."""
    rows = []
    r = server.client
    enqueue = Script("enqueueJob")
    base, keys = model_keys("iq", "flux")
    for rate in arguments.rates:
        r.flushall()
        r.hset(base + ":meta", "concurrency", 64)
        sha = r.script_load(enqueue.text)
        events = ClaimEvents(server.port)
        events.start()
        workers = Workers(os.path.join(arguments.bin, "imagequeue-worker"), server.url, 1, 64, output)
        wait_for(lambda: int(r.info("clients")["blocked_clients"]) >= 1, 60, "the worker on its doorbell")
        sent = {}
        count = int(rate * arguments.seconds)
        # Every millisecond, the jobs due by then, each its own enqueueJob call, sent together
        # in one pipeline (as many producers would): one Python loop could not pace 4,000
        # single round trips a second on two cores beside the worker and Redis.
        begin = time.perf_counter()
        n = 0
        while n < count:
            due = min(count, int((time.perf_counter() - begin) * rate) + 1)
            if due <= n:
                time.sleep(0.0005)
                continue
            pipe = r.pipeline(transaction=False)
            jobs = []
            for index in range(n, due):
                job = new_job_id("flux")
                jobs.append(job)
                pipe.evalsha(sha, len(keys), *keys, "flux", base + ":events", job,
                             json.dumps({"v": 1, "prompt": f"load {index}", "user": "bench", "enhance": False}), 3, 86400000)
            at = time.perf_counter()
            for job in jobs:
                sent[job] = at
            pipe.execute()
            n = due
        achieved = count / (time.perf_counter() - begin)
        wait_for(lambda: completed(r) >= count, 120, f"the {count} jobs at {rate}/s")
        wait_for(lambda: len(events.claimed) >= count, 30, "every claim event")
        events.stop.set()
        workers.stop()
        latencies = [(events.claimed[job] - at) * 1000 for job, at in sent.items()]
        rows.append({"rate": rate, "achieved": achieved, "jobs": count,
                     "p50_ms": percentile(latencies, 0.50), "p90_ms": percentile(latencies, 0.90),
                     "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies)})
        print(f"  {rate}/s: p50 {rows[-1]['p50_ms']:.3f} ms, p99 {rows[-1]['p99_ms']:.3f} ms", file=sys.stderr)
    print(f"\n### enqueue -> claim latency under a steady load ({arguments.seconds:.0f} s per rate, one worker "
          "--concurrency 64)\n")
    print("| enqueues/s asked | achieved | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['rate']:,} | {row['achieved']:,.0f} | {row['p50_ms']:.3f} | {row['p90_ms']:.3f} | "
              f"{row['p99_ms']:.3f} | {row['max_ms']:.3f} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default=os.path.join(HERE, "..", "..", ".build", "release"))
    parser.add_argument("--sections", nargs="+", default=["processes", "idle", "latency"],
                        choices=["processes", "idle", "latency"])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--wakes", type=int, default=5)
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 500, 1000, 2000, 4000])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each latency rate runs")
    parser.add_argument("--json", help="write the figures here (for ops/bench/plots.py)")
    arguments = parser.parse_args()
    output = tempfile.mkdtemp(prefix="iq-scaling-images-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    server = PrivateRedis()
    figures = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
               "load_before": load_average()}
    print(f"# ImageQueue scaling, {figures['date']}, {figures['cores']} cores, load before {figures['load_before']:.2f}")
    try:
        if "processes" in arguments.sections:
            figures["processes"] = processes_section(arguments, server, output)
        if "idle" in arguments.sections:
            figures["idle"] = idle_section(arguments, server, output)
        if "latency" in arguments.sections:
            figures["latency_date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            figures["latency"] = latency_section(arguments, server, output)
    finally:
        server.close()
        shutil.rmtree(output, ignore_errors=True)
    figures["load_after"] = load_average()
    print(f"\nload after {figures['load_after']:.2f}")
    if arguments.json:
        with open(arguments.json, "w") as handle:
            json.dump(figures, handle, indent=1)


if __name__ == "__main__":
    main()
