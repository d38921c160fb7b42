#!/usr/bin/env python3
"""Redis memory per queued job: ImageQueue next to BullMQ, in one run, on one private Redis.

For each queue and each payload (a no-op job, and a job whose prompt is 300 characters), on a
FLUSHALLed Redis: `INFO memory` used_memory before and after enqueueing N jobs (default
100,000), divided by N. ImageQueue's jobs go in through enqueueJob in batches of 500, with the
request JSON our client sends (`{"v":1,"prompt":...,"enhance":false,"user":...}`); BullMQ's
through its Python port's `Queue.addBulk` in batches of 500 (BullMQ's own Lua), with data `{}`
and `{"prompt": ...}`. The figure is the keyspace only (used_memory moves with every key,
allocator rounding included).

  python3 ops/bench/memory.py [--jobs 100000] [--bullmq-python /tmp/peers-venv/bin/python]

BullMQ needs the peers' venv (see ops/bench/peers.sh); without it only ImageQueue is measured.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Tests", "Python"))
from protocol_client import Script, model_keys, new_job_id  # noqa: E402
from private_redis import PrivateRedis  # noqa: E402

PROMPT_300 = ("a lighthouse on a cliff at dusk, waves breaking below, oil painting, warm light in the lamp room, "
              "seagulls over the water, long shadows across the grass, a small red boat in the bay, clouds "
              "lit from beneath in orange and violet, fine brush strokes, muted palette, wide angle, calm and quiet mood, "
              "no people")[:300]

BULLMQ = r'''
import asyncio, sys
from bullmq import Queue
async def main(port, n, prompt):
    q = Queue("mem", {"connection": f"redis://127.0.0.1:{port}"})
    data = {"prompt": prompt} if prompt else {}
    for start in range(0, n, 500):
        await q.addBulk([{"name": "noop", "data": data} for _ in range(min(500, n - start))])
    await q.close()
asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))
'''


def used_memory(r):
    return int(r.info("memory")["used_memory"])


def imagequeue(r, n, prompt):
    base, keys = model_keys("iq", "flux")
    sha = r.script_load(Script("enqueueJob").text)
    pipe = r.pipeline(transaction=False)
    for start in range(0, n, 500):
        jobs = [(new_job_id("flux"), json.dumps({"v": 1, "prompt": prompt, "enhance": False, "user": "bench"},
                                                separators=(",", ":")))
                for _ in range(min(500, n - start))]
        more = [value for job in jobs[1:] for value in job]
        pipe.evalsha(sha, len(keys), *keys, "flux", base + ":events", jobs[0][0], jobs[0][1], 3, 86400000, 0, *more)
    pipe.execute()
    assert r.zcard(base + ":pending") == n


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100000)
    parser.add_argument("--bullmq-python", default=os.path.join(os.environ.get("PEERS_VENV", "/tmp/peers-venv"), "bin", "python"))
    arguments = parser.parse_args()
    server = PrivateRedis()
    r, port = server.client, server.port
    has_bullmq = os.path.exists(arguments.bullmq_python) and subprocess.run(
        [arguments.bullmq_python, "-c", "import bullmq"], capture_output=True).returncode == 0
    rows = []
    try:
        for label, prompt in (("no-op job", "noop"), ("300-character prompt", PROMPT_300)):
            r.flushall()
            before = used_memory(r)
            imagequeue(r, arguments.jobs, prompt)
            ours = (used_memory(r) - before) / arguments.jobs
            theirs = None
            if has_bullmq:
                r.flushall()
                before = used_memory(r)
                subprocess.run([arguments.bullmq_python, "-c", BULLMQ, str(port), str(arguments.jobs),
                                "" if prompt == "noop" else prompt], check=True)
                theirs = (used_memory(r) - before) / arguments.jobs
            rows.append((label, ours, theirs))
    finally:
        server.close()
    print(f"Redis memory per queued job ({arguments.jobs:,} jobs, INFO memory used_memory delta)\n")
    print("| job | ImageQueue | BullMQ | ratio |")
    print("|---|---|---|---|")
    for label, ours, theirs in rows:
        if theirs:
            print(f"| {label} | {ours:,.0f} B | {theirs:,.0f} B | {ours / theirs:.2f}× |")
        else:
            print(f"| {label} | {ours:,.0f} B | (no bullmq) | |")


if __name__ == "__main__":
    main()
