#!/usr/bin/env python3
"""The multi-host run of ops/netns-test.sh: workers on two hosts, one host's link cut mid-job.

ops/netns-test.sh builds the network namespaces, starts Redis in the Redis namespace and runs
this program there (so its Redis connections and `ip link` commands act in that namespace).
Run alone it cannot do anything useful; see `bash ops/netns-test.sh --help`.

What it does (docs/MULTIHOST.md, "Workers on several hosts"):
  1. starts `imagequeue worker` in each host namespace (placeholder backend that takes
     --delay seconds per image, --lease-seconds LEASE, concurrency 1, ids hostA and hostB),
     sets the model's cluster-wide limit to 2 and waits until both workers registered;
  2. subscribes to the model's events channel, enqueues two jobs with `imagequeue enqueue`;
  3. polls `imagequeue status ID --json` until host A holds one, then sets host A's bridge
     port down (a silent partition: packets vanish, neither side gets an error);
  4. waits until that job's lease expired and was recovered (a `queued` event with the error
     `lease_expired`) and host B claimed it, and until host A's image is done (so host A is
     then trying to complete the job), then brings the link back;
  5. waits until host A logs that its completion was refused (STALE_TOKEN), enqueues two more
     jobs and waits until every job is terminal; stops the workers with SIGTERM;
  6. checks and prints what happened. Exit status 0 when every check passed, 1 otherwise.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

import redis

# What the worker logs when the last step of a job (here completeJob: jobs run without
# enhancement never report progress, and the placeholder never fails) gets STALE_TOKEN.
REFUSED_COMPLETION = "the job's end was refused: another worker owns the job now"
STALE_TOKEN = "error.code=stale_token"
RUNNING = ("enhancing", "generating", "retrying")
TERMINAL = ("completed", "failed", "cancelled")


def now_ms():
    return int(time.time() * 1000)


class Run:
    def __init__(self, args):
        self.args = args
        self.model = args.model
        self.prefix = args.prefix
        self.r = redis.Redis.from_url(args.redis, socket_timeout=10, decode_responses=True)
        self.events = []          # (arrival ms, event dict), in arrival order
        self.events_lock = threading.Lock()
        self.workers = {}         # name -> Popen
        self.logs = {}            # name -> path
        self.violations = []
        self.marks = {}           # what happened -> wall-clock ms (the host's clock; Redis's too)
        self.stop = threading.Event()

    # --- helpers ----------------------------------------------------------------------
    def key(self, suffix):
        return f"{self.prefix}:{{{self.model}}}:{suffix}"

    def cli(self, *words, check=True):
        command = [self.args.binary, *words[:1], "--redis", self.args.redis, "--prefix", self.prefix, *words[1:]]
        env = dict(os.environ, IMAGEQUEUE_RATE_LIMIT="off")
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=30)
        if check and done.returncode != 0:
            raise RuntimeError(f"imagequeue {' '.join(words)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def status(self, job_id):
        return json.loads(self.cli("status", job_id, "--json").stdout)

    def ip_link(self, state):
        subprocess.run(["ip", "link", "set", "dev", self.args.port_a, state], check=True)

    def violation(self, text):
        self.violations.append(text)
        print(f"VIOLATION: {text}", flush=True)

    def wait_until(self, what, seconds, condition, interval=0.05):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"{what}: not within {seconds:g} s")

    def events_of(self, job_id):
        with self.events_lock:
            return [e for _, e in self.events if e.get("id") == job_id]

    def log_lines(self, name, job_id=None):
        try:
            with open(self.logs[name], errors="replace") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return []
        return [line for line in lines if job_id is None or job_id in line]

    # --- the parts ----------------------------------------------------------------------
    def listen(self):
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.key("events"))
        self.subscribed.set()
        while not self.stop.is_set():
            message = pubsub.get_message(timeout=0.2)
            if message and message["type"] == "message":
                with self.events_lock:
                    self.events.append((now_ms(), json.loads(message["data"])))
        pubsub.close()

    def start_worker(self, name, namespace):
        log = os.path.join(self.args.work, f"{name}.log")
        self.logs[name] = log
        env = dict(os.environ, IMAGEQUEUE_PLACEHOLDER_DELAY=str(self.args.delay), LLM_PROVIDER="none")
        command = ["ip", "netns", "exec", namespace, self.args.binary, "worker", "--redis", self.args.redis,
                   "--prefix", self.prefix, "--models", self.model, "--id", name, "--backend", "placeholder",
                   "--lease-seconds", str(self.args.lease), "--concurrency", "1",
                   "--output-dir", os.path.join(self.args.work, name)]
        with open(log, "w") as handle:
            # `ip netns exec` execs the command: this pid is the worker's.
            self.workers[name] = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)

    def enqueue(self, count, first):
        ids = []
        for number in range(first, first + count):
            done = self.cli("enqueue", "--model", self.model, "--user", "netns", "--no-enhance",
                            f"netns test job {number}")
            ids.append(done.stdout.strip())
        return ids

    def stop_workers(self):
        codes = {}
        for name, process in self.workers.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.workers.items():
            try:
                codes[name] = process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes

    # --- the run ----------------------------------------------------------------------
    def run(self):
        a = self.args
        self.r.ping()
        self.subscribed = threading.Event()
        listener = threading.Thread(target=self.listen, daemon=True)
        listener.start()
        self.subscribed.wait(10)
        self.cli("concurrency", "--model", self.model, "2")
        self.start_worker("hostA", a.ns_a)
        self.start_worker("hostB", a.ns_b)
        self.wait_until("both workers registered", 20,
                        lambda: set(self.r.zrange(f"{self.prefix}:workers", 0, -1)) >= {"hostA", "hostB"})
        for name, process in self.workers.items():
            if process.poll() is not None:
                raise RuntimeError(f"worker {name} exited with status {process.returncode}")

        jobs = self.enqueue(2, 1)

        def held_by_a():
            for job_id in jobs:
                info = self.status(job_id)
                if info.get("worker") == "hostA" and info.get("status") in RUNNING:
                    return job_id, info
            return None
        victim, info = self.wait_until("host A holds a job", 20, held_by_a, interval=0)
        self.victim = victim
        self.ip_link("down")
        self.marks["cut"] = now_ms()
        self.marks["claim_a"] = info["started_at"]
        print(f"host A holds {victim} (claimed {self.marks['cut'] - info['started_at']} ms before the cut); "
              f"link cut", flush=True)
        at_cut = self.status(victim)
        if at_cut.get("status") not in RUNNING or at_cut.get("worker") != "hostA":
            self.violation(f"the cut came too late: {victim} was {at_cut.get('status')} "
                           f"(worker {at_cut.get('worker')}) just after it")

        # Recovery: B's sweep requeues the job once the lease passed, then B claims it.
        budget = 2 * a.lease + a.delay + 15

        def recovered():
            events = self.events_of(victim)
            queued = next((e for e in events if e["status"] == "queued" and e.get("error", {}).get("code") == "lease_expired"), None)
            if not queued:
                return None
            claim = next((e for e in events if e["status"] in RUNNING and e["rev"] > queued["rev"]), None)
            return (queued, claim) if claim else None
        try:
            queued, reclaim = self.wait_until(f"{victim} recovered after the lease and claimed again", budget, recovered)
        except TimeoutError as error:
            self.violation(str(error))
            self.ip_link("up")
            return self.finish(jobs)
        self.marks["recovered"] = queued["time"]
        self.marks["reclaimed"] = reclaim["time"]
        if reclaim.get("worker") != "hostB":
            self.violation(f"{victim} was claimed again by {reclaim.get('worker')}, not hostB")

        # Let host A's image finish while it is cut off: its completeJob is then waiting to be sent.
        remaining = self.marks["claim_a"] + int((a.delay + 0.5) * 1000) - now_ms()
        if remaining > 0:
            time.sleep(remaining / 1000)
        self.ip_link("up")
        self.marks["restored"] = now_ms()

        def refused():
            lines = self.log_lines("hostA", victim)
            return [line for line in lines if REFUSED_COMPLETION in line and STALE_TOKEN in line]
        try:
            self.wait_until("host A's late completion refused (in its log)", 30 + a.lease, refused)
            self.marks["refused"] = now_ms()
        except TimeoutError as error:
            self.violation(str(error) + "; host A's lines on the job: " + " | ".join(self.log_lines("hostA", victim)[-4:]))

        jobs += self.enqueue(2, 3)
        return self.finish(jobs)

    def finish(self, jobs):
        def all_terminal():
            return all(self.r.hget(self.key(f"job:{job_id}"), "status") in TERMINAL for job_id in jobs)
        try:
            self.wait_until("every job terminal", 60 + 2 * self.args.lease, all_terminal, interval=0.1)
        except TimeoutError as error:
            self.violation(str(error))
        codes = self.stop_workers()
        time.sleep(0.3)  # the last events are already published; let the listener read them
        self.stop.set()
        for name, code in codes.items():
            if code != 0:
                self.violation(f"worker {name} exited with status {code} on SIGTERM")
        self.check(jobs)
        self.report(jobs)
        return 1 if self.violations else 0

    # --- checks -----------------------------------------------------------------------
    def check(self, jobs):
        completed_events = {job_id: 0 for job_id in jobs}
        with self.events_lock:
            for _, event in self.events:
                if event.get("status") == "completed" and event.get("id") in completed_events:
                    completed_events[event["id"]] += 1
        for job_id in jobs:
            fields = self.r.hgetall(self.key(f"job:{job_id}"))
            if fields.get("status") != "completed":
                self.violation(f"{job_id} ended {fields.get('status')!r}, not completed")
            if completed_events[job_id] != 1:
                self.violation(f"{job_id} has {completed_events[job_id]} completed events on {self.key('events')}")
        meta = self.r.hgetall(self.key("meta"))
        if int(meta.get("completed_total", 0)) != len(jobs):
            self.violation(f"completed_total is {meta.get('completed_total')}, not {len(jobs)}")
        if int(meta.get("failed_total", 0)) != 0:
            self.violation(f"failed_total is {meta.get('failed_total')}")
        for name in ("pending", "active", "dead"):
            if self.r.zcard(self.key(name)):
                self.violation(f"{self.key(name)} is not empty")
        if not hasattr(self, "victim"):
            return
        victim = self.r.hgetall(self.key(f"job:{self.victim}"))
        if victim.get("worker") != "hostB":
            self.violation(f"{self.victim} records worker {victim.get('worker')!r}, not hostB")
        if any("job completed" in line for line in self.log_lines("hostA", self.victim)):
            self.violation(f"host A logged {self.victim} as completed")
        if not any("job completed" in line for line in self.log_lines("hostB", self.victim)):
            self.violation(f"host B did not log {self.victim} as completed")
        done = [e for e in self.events_of(self.victim) if e["status"] == "completed"]
        if done:
            self.marks["completed"] = done[0]["time"]
            if done[0].get("worker") != "hostB":
                self.violation(f"the completed event of {self.victim} names {done[0].get('worker')}")
        # The image recorded is the one host B made (each host writes to its own directory).
        path = json.loads(victim.get("result") or "{}").get("path", "")
        self.image_host = os.path.relpath(path, self.args.work).split(os.sep)[0] if path else "-"
        if self.image_host != "hostB":
            self.violation(f"the result of {self.victim} is {path or 'missing'}, not an image of host B's")

    def report(self, jobs):
        a = self.args
        base = self.marks.get("claim_a")
        print()
        print(f"lease {a.lease:g} s, image {a.delay:g} s, jobs {len(jobs)}; times in s after host A claimed {getattr(self, 'victim', '?')}")
        rows = [("claim_a", "host A claims the job"), ("cut", "host A's link cut"),
                ("recovered", "lease expired: job requeued"), ("reclaimed", "host B claims it"),
                ("restored", "host A's link back"), ("refused", "host A's completion refused"),
                ("completed", "the job completed")]
        for key, label in rows:
            value = self.marks.get(key)
            print(f"  {label:<32} {'-' if value is None or base is None else f'{(value - base) / 1000:6.2f}'}")
        if "completed" in self.marks:
            print(f"  (its result is an image of {getattr(self, 'image_host', '-')}'s)")
        if "recovered" in self.marks and "cut" in self.marks:
            print(f"  claim to recovery {(self.marks['recovered'] - self.marks['claim_a']) / 1000:.2f} s, "
                  f"cut to recovery {(self.marks['recovered'] - self.marks['cut']) / 1000:.2f} s (lease {a.lease:g} s)")
        print()
        print(f"  {'job':<34} {'status':<10} {'worker':<7} {'attempt':>7} {'completed events':>17}")
        for job_id in jobs:
            fields = self.r.hgetall(self.key(f"job:{job_id}"))
            count = sum(1 for e in self.events_of(job_id) if e["status"] == "completed")
            print(f"  {job_id:<34} {fields.get('status', '-'):<10} {fields.get('worker', '-'):<7} "
                  f"{fields.get('attempt', '-'):>7} {count:>17}")
        meta = self.r.hgetall(self.key("meta"))
        print(f"  completed_total {meta.get('completed_total', 0)}, failed_total {meta.get('failed_total', 0)}")
        print()
        if self.violations:
            print(f"FAIL: {len(self.violations)} violation(s)")
            for text in self.violations:
                print(f"  - {text}")
        else:
            print("PASS: the job cut off with host A was recovered by host B after the lease; "
                  "host A's late completion was refused; every job completed exactly once")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", default="iqnetns")
    parser.add_argument("--model", default="flux")
    parser.add_argument("--lease", type=float, default=3)
    parser.add_argument("--delay", type=float, default=4)
    parser.add_argument("--ns-a", required=True)
    parser.add_argument("--ns-b", required=True)
    parser.add_argument("--port-a", required=True, help="host A's bridge port in this namespace")
    parser.add_argument("--work", required=True)
    args = parser.parse_args()
    run = Run(args)
    try:
        code = run.run()
    except Exception as error:  # a setup failure: stop what was started, report it
        print(f"FAIL: {error}", flush=True)
        run.stop.set()
        run.stop_workers()
        for name in run.logs:
            print(f"--- last lines of {name}'s log", flush=True)
            for line in run.log_lines(name)[-10:]:
                print("  " + line)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
