#!/usr/bin/env python3
"""Instructions a redis-server spends per job in the worker's scripts, counted by callgrind.

Starts its own redis-server under `valgrind --tool=callgrind` on a free 127.0.0.1 port,
enqueues N jobs, then claims them (claimJob with ARGV[7] = batch size), extends their leases
(extendLease with several jobs) and completes them (completeJob with several jobs), zeroing
and dumping callgrind's counters around each phase. Instruction counts do not depend on how
busy the machine is, so two runs of the same build agree closely and a change shows.

  python3 ops/bench/script_cost.py [--jobs 600] [--batch 1 10 100]

Needs valgrind (callgrind_control) and redis-py. Prints one line per batch size.
"""
import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Tests", "Python"))
from protocol_client import Script, model_keys, new_job_id  # noqa: E402


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class CountedRedis:
    """redis-server under callgrind, with its instruction counter zeroed and read on demand."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="iq-callgrind-")
        self.port = free_port()
        self.process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.folder}/out.%p",
             "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port)
        for _ in range(300):
            try:
                self.client.ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.1)
        raise SystemExit("redis-server under callgrind did not start")

    def control(self, flag):
        subprocess.run(["callgrind_control", flag, str(self.process.pid)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    def instructions(self):
        """Instructions since the last zero (dumps the counters, reads the newest dump)."""
        self.control("-d")
        time.sleep(0.3)
        dump = max(glob.glob(f"{self.folder}/out.{self.process.pid}.*"), key=os.path.getmtime)
        with open(dump) as handle:
            for line in handle:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        raise SystemExit(f"no totals in {dump}")

    def close(self):
        self.process.terminate()
        self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def measure(server, jobs, batch):
    r = server.client
    base, keys = model_keys("cost", "flux")
    events = base + ":events"
    scripts = {name: Script(name) for name in ("enqueueJob", "claimJob", "extendLease", "completeJob")}
    r.flushall()
    for script in scripts.values():
        r.script_load(script.text)
    r.hset(base + ":meta", "concurrency", 10 ** 7)
    pipe = r.pipeline(transaction=False)
    for index in range(jobs):
        request = json.dumps({"v": 1, "prompt": f"noop {index}", "user": "bench", "enhance": False})
        pipe.evalsha(scripts["enqueueJob"].sha, len(keys), *keys, "flux", events, new_job_id("flux"), request, 3, 86400000)
    pipe.execute()

    def phase(calls):
        server.control("-z")
        pipe = r.pipeline(transaction=False)
        for arguments in calls:
            pipe.evalsha(*arguments)
        replies = pipe.execute()
        return server.instructions() / jobs, replies

    claim, replies = phase([(scripts["claimJob"].sha, len(keys), *keys, "flux", events, "w1", 30000, f"w1:{n}", "0", batch)
                            for n in range(jobs // batch)])
    held = [(reply[k], reply[k + 1]) for reply in replies for k in range(1, len(reply), 6)]
    assert len(held) == jobs, f"claimed {len(held)} of {jobs}"
    chunks = [held[i:i + batch] for i in range(0, jobs, batch)]

    def pairs(chunk, middle, each):
        first = [chunk[0][0], chunk[0][1]] + middle
        return first + [value for job in chunk[1:] for value in (job[0], job[1], *each)]

    result = json.dumps({"content_type": "image/png", "bytes": 100, "store": "directory", "path": "/x/y.png"})
    extend, _ = phase([(scripts["extendLease"].sha, len(keys), *keys, "flux", events, *pairs(chunk, [30000], []))
                       for chunk in chunks])
    complete, _ = phase([(scripts["completeJob"].sha, len(keys), *keys, "flux", events,
                          *pairs(chunk, [result, 86400000], [result])) for chunk in chunks])
    done = int(r.hget(base + ":meta", "completed_total") or 0)
    assert done == jobs, f"completed {done} of {jobs}"
    return claim, extend, complete


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 10, 100])
    arguments = parser.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    server = CountedRedis()
    try:
        print(f"redis-server instructions per job ({arguments.jobs} jobs, callgrind)")
        print("| jobs per call | claimJob | extendLease | completeJob | total |")
        print("|---|---|---|---|---|")
        for batch in arguments.batch:
            claim, extend, complete = measure(server, arguments.jobs - arguments.jobs % batch, batch)
            print(f"| {batch} | {claim:,.0f} | {extend:,.0f} | {complete:,.0f} | {claim + extend + complete:,.0f} |", flush=True)
    finally:
        server.close()


if __name__ == "__main__":
    main()
