#!/usr/bin/env python3
"""Worker-side steps of the ImageQueue v1 protocol, one per call, for tests of the CLI.

The CLI is a producer: it cannot claim, report, complete or fail a job. The CLI tests use
this helper to move jobs forward the way a worker would, through the same Lua scripts.

Script text: taken from the binary under test, `<binary> scripts <name>` (the exact text the
binary embeds and sends, includes resolved). So the steps always run the scripts the CLI was
built with, even if lua/ was edited since. The binary is `--binary`, else $IMAGEQUEUE_BINARY.
Calls use EVALSHA of that text's SHA1 and load the text on NOSCRIPT (docs/PROTOCOL.md §7).

Usage (global options before the step):
  worker_steps.py --binary B --redis URL --prefix P claim --model M [--worker W] [--lease-ms N]
  worker_steps.py ... progress --id ID --token T --stage enhancing|generating|retrying [--detail JSON]
  worker_steps.py ... complete --id ID --token T [--result JSON] [--retention-ms N]
  worker_steps.py ... fail     --id ID --token T --mode retry|permanent [--code C] [--message TEXT]

The model of progress/complete/fail is the id's text before the first "-" (PROTOCOL.md §1).

Prints one JSON object on stdout:
  claim     {"result": "ok", "id", "token", "attempt", "max_attempts", "request", "enqueued_at"}
            or {"result": "full"} or {"result": "empty"}; the token is a string, to pass back
  progress  {"rev": N}
  complete  {"result": 1}
  fail      {"result": "requeued" | "dead"}
Exit: 0 done; 1 the script answered an error (stderr: its reply, e.g. "STALE_TOKEN ...");
2 bad usage or no binary.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import redis


class Script:
    """One protocol script, its text as the binary prints it, and that text's SHA1."""

    def __init__(self, binary, name):
        completed = subprocess.run([binary, "scripts", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   check=False)
        if completed.returncode != 0:
            raise SystemExit(f"worker_steps: `{binary} scripts {name}` failed: {completed.stderr.decode().strip()}")
        self.text = completed.stdout.decode("utf-8")
        self.sha = hashlib.sha1(completed.stdout).hexdigest()

    def __call__(self, client, keys, args):
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            client.script_load(self.text)
            return client.evalsha(self.sha, len(keys), *keys, *args)


def model_keys(prefix, model):
    """KEYS[1..8] and ARGV[1..2] of every model script (PROTOCOL.md §7)."""
    base = f"{prefix}:{{{model}}}"
    keys = [f"{base}:{name}" for name in ("pending", "active", "dead", "meta", "wake", "seq", "fence")]
    return keys + [f"{base}:job:"], [model, f"{base}:events"]


def model_of(job_id):
    model, dash, _ = job_id.partition("-")
    if not dash or not model:
        raise SystemExit(f"worker_steps: '{job_id}' is not a job id")
    return model


def text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def claim(arguments, client):
    keys, standard = model_keys(arguments.prefix, arguments.model)
    reply = Script(arguments.binary, "claimJob")(client, keys, standard + [arguments.worker, arguments.lease_ms])
    outcome = text(reply[0])
    if outcome != "ok":
        return {"result": outcome}
    return {"result": "ok", "id": text(reply[1]), "token": str(reply[2]), "attempt": int(reply[3]),
            "max_attempts": int(reply[4]), "request": json.loads(text(reply[5])), "enqueued_at": int(reply[6])}


def owner_call(arguments, client, name, extra):
    keys, standard = model_keys(arguments.prefix, model_of(arguments.id))
    return Script(arguments.binary, name)(client, keys, standard + [arguments.id, arguments.token] + extra)


def progress(arguments, client):
    return {"rev": int(owner_call(arguments, client, "reportProgress", [arguments.stage, arguments.detail]))}


def complete(arguments, client):
    return {"result": int(owner_call(arguments, client, "completeJob", [arguments.result, arguments.retention_ms]))}


def fail(arguments, client):
    error = json.dumps({"code": arguments.code, "message": arguments.message})
    return {"result": text(owner_call(arguments, client, "failJob", [arguments.mode, error]))}


def parse_arguments():
    parser = argparse.ArgumentParser(description="Worker-side ImageQueue steps for tests.")
    parser.add_argument("--binary", default=os.environ.get("IMAGEQUEUE_BINARY"), help="the imagequeue binary")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis URL")
    parser.add_argument("--prefix", default="iq", help="key prefix")
    steps = parser.add_subparsers(dest="step", required=True)

    step = steps.add_parser("claim", help="claimJob")
    step.add_argument("--model", required=True)
    step.add_argument("--worker", default="test-worker")
    step.add_argument("--lease-ms", type=int, default=60_000)
    step.set_defaults(run=claim)

    def owned(name, run):
        step = steps.add_parser(name)
        step.add_argument("--id", required=True)
        step.add_argument("--token", required=True)
        step.set_defaults(run=run)
        return step

    step = owned("progress", progress)
    step.add_argument("--stage", required=True, choices=["enhancing", "generating", "retrying"])
    step.add_argument("--detail", default="{}", help="JSON object merged into the event")

    step = owned("complete", complete)
    step.add_argument("--result", default=json.dumps({"content_type": "image/png", "bytes": 1234, "store": "directory",
                                                      "path": "/tmp/imagequeue-test.png"}))
    step.add_argument("--retention-ms", type=int, default=604_800_000)

    step = owned("fail", fail)
    step.add_argument("--mode", required=True, choices=["retry", "permanent"])
    step.add_argument("--code", default="backend_rejected")
    step.add_argument("--message", default="the backend refused the prompt")

    arguments = parser.parse_args()
    if not arguments.binary:
        parser.error("--binary or $IMAGEQUEUE_BINARY is required")
    return arguments


def main():
    arguments = parse_arguments()
    client = redis.Redis.from_url(arguments.redis)
    try:
        document = arguments.run(arguments, client)
    except redis.exceptions.ResponseError as error:
        sys.stderr.write(f"{error}\n")
        sys.exit(1)
    finally:
        client.close()
    sys.stdout.write(json.dumps(document) + "\n")


if __name__ == "__main__":
    main()
