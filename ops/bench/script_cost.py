#!/usr/bin/env python3
"""Instructions a redis-server spends per job in the worker's scripts, counted by callgrind.

Starts its own redis-server under `valgrind --tool=callgrind` on a free 127.0.0.1 port,
enqueues N jobs (enqueueJob, one job per call, then `batch` jobs per call), then claims them
(claimJob with ARGV[7] = batch size), extends their leases (extendLease with several jobs)
and completes them (completeJob with several jobs), zeroing and dumping callgrind's counters
around each phase. Then the path of a worker running one job at a time on a model with
concurrency 1: one claimJob, then one completeAndClaim per job (complete it, claim the next), with
the two keys of the dashboard's records (KEYS[9..10]) as the worker sends them.
Instruction counts do not depend on how busy the machine is, so two runs of the same build
agree closely and a change shows.

  python3 ops/bench/script_cost.py [--jobs 600] [--batch 1 10 100]
  python3 ops/bench/script_cost.py --lua-dir OTHER/lua   # another checkout's scripts

Needs valgrind (callgrind_control) and redis-py. Prints one line per batch size.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Tests", "Python"))
import protocol_client  # noqa: E402
from protocol_client import Script, model_keys, new_job_id  # noqa: E402
from private_redis import PrivateRedis  # noqa: E402


class CountedRedis(PrivateRedis):
    """redis-server under callgrind, with its instruction counter zeroed and read on demand."""

    def __init__(self):
        super().__init__(under=["valgrind", "--tool=callgrind", "--callgrind-out-file={folder}/out.%p"],
                         prefix="iq-callgrind-", patience=30.0)

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


def measure(server, jobs, batch):
    r = server.client
    base, keys = model_keys("cost", "flux")
    events = base + ":events"
    names = ["enqueueJob", "claimJob", "extendLease", "completeJob"]
    if os.path.exists(os.path.join(protocol_client.LUA_DIR, "completeAndClaim.lua")):
        names.append("completeAndClaim")
    scripts = {name: Script(name) for name in names}
    r.flushall()
    for script in scripts.values():
        r.script_load(script.text)
    r.hset(base + ":meta", "concurrency", 10 ** 7)

    def request(index):
        return json.dumps({"v": 1, "prompt": f"noop {index}", "user": "bench", "enhance": False})

    def phase(calls):
        server.control("-z")
        pipe = r.pipeline(transaction=False)
        for arguments in calls:
            pipe.evalsha(*arguments)
        replies = pipe.execute()
        return server.instructions() / jobs, replies

    enqueue_one, _ = phase([(scripts["enqueueJob"].sha, len(keys), *keys, "flux", events, new_job_id("flux"), request(index),
                             3, 86400000) for index in range(jobs)])
    r.delete(base + ":pending")
    if batch > 1:
        calls = []
        for start in range(0, jobs, batch):
            more = [value for index in range(start + 1, start + batch) for value in (new_job_id("flux"), request(index))]
            calls.append((scripts["enqueueJob"].sha, len(keys), *keys, "flux", events, new_job_id("flux"), request(start),
                          3, 86400000, 0, *more))
        enqueue_many, replies = phase(calls)
        if not isinstance(replies[0], list) or not isinstance(replies[0][0], list):
            enqueue_many = float("nan")  # these scripts take one job per call
            r.delete(base + ":pending")
            phase([(scripts["enqueueJob"].sha, len(keys), *keys, "flux", events, new_job_id("flux"), request(index),
                    3, 86400000) for index in range(jobs)])
    else:
        enqueue_many = enqueue_one
        r.delete(base + ":pending")
        phase([(scripts["enqueueJob"].sha, len(keys), *keys, "flux", events, new_job_id("flux"), request(index),
                3, 86400000) for index in range(jobs)])
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
    return enqueue_one, enqueue_many, claim, extend, complete


def one_at_a_time(server, jobs):
    """Instructions per job of a concurrency-1 worker: claim, then complete-and-claim per job
    (completeAndClaim), or claim + complete per job where these scripts have no such call."""
    r = server.client
    base, keys = model_keys("cost1", "flux")
    events = base + ":events"
    # The worker's claims and completions also carry the dashboard's two keys (KEYS[9..10]).
    recorded = keys + [base + ":stats:", base + ":recent"]
    names = ["enqueueJob", "claimJob", "completeJob"]
    combined = os.path.exists(os.path.join(protocol_client.LUA_DIR, "completeAndClaim.lua"))
    if combined:
        names.append("completeAndClaim")
    scripts = {name: Script(name) for name in names}
    r.flushall()
    for script in scripts.values():
        r.script_load(script.text)
    pipe = r.pipeline(transaction=False)
    for index in range(jobs):
        request = json.dumps({"v": 1, "prompt": f"noop {index}", "user": "bench", "enhance": False})
        pipe.evalsha(scripts["enqueueJob"].sha, len(keys), *keys, "flux", events, new_job_id("flux"), request, 3, 86400000)
    pipe.execute()
    result = json.dumps({"content_type": "image/png", "bytes": 100, "store": "directory", "path": "/x/y.png"})
    server.control("-z")
    reply = r.evalsha(scripts["claimJob"].sha, len(recorded), *recorded, "flux", events, "w1", 30000, "w1:0", "0", 1)
    held = (reply[1], reply[2])
    for n in range(1, jobs + 1):
        if combined:
            both = r.evalsha(scripts["completeAndClaim"].sha, len(recorded), *recorded, "flux", events, "w1", 30000, f"w1:{n}",
                             "0", 1, 86400000, held[0], held[1], result)
            assert both[0] == [1], both
            claim = both[1]
        else:
            assert r.evalsha(scripts["completeJob"].sha, len(recorded), *recorded, "flux", events, held[0], held[1], result,
                             86400000) == 1
            claim = r.evalsha(scripts["claimJob"].sha, len(recorded), *recorded, "flux", events, "w1", 30000, f"w1:{n}", "0", 1)
        if claim[0] != b"ok":
            break
        held = (claim[1], claim[2])
    total = server.instructions() / jobs
    done = int(r.hget(base + ":meta", "completed_total") or 0)
    assert done == jobs, f"completed {done} of {jobs}"
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--lua-dir", help="the scripts to measure (default: this checkout's lua/)")
    arguments = parser.parse_args()
    if arguments.lua_dir:
        protocol_client.LUA_DIR = os.path.abspath(arguments.lua_dir)
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    server = CountedRedis()
    try:
        print(f"redis-server instructions per job ({arguments.jobs} jobs, callgrind)")
        print("| jobs per call | enqueueJob | claimJob | extendLease | completeJob | claim + extend + complete |")
        print("|---|---|---|---|---|---|")
        for batch in arguments.batch:
            one, many, claim, extend, complete = measure(server, arguments.jobs - arguments.jobs % batch, batch)
            enqueue = f"{many:,.0f}" if many == many else "n/a"
            print(f"| {batch} | {enqueue} | {claim:,.0f} | {extend:,.0f} | {complete:,.0f} | {claim + extend + complete:,.0f} |",
                  flush=True)
        print()
        print(f"one job at a time, concurrency 1 (claim, then complete-and-claim per job): "
              f"{one_at_a_time(server, arguments.jobs):,.0f} instructions per job", flush=True)
    finally:
        server.close()


if __name__ == "__main__":
    main()
