#!/usr/bin/env python3
"""Writes ops/link/imagequeue-worker.order: the link order that keeps the code an idle worker
runs together at the front of imagequeue-worker's text.

Why: the kernel maps a program's code in 64 KiB windows around each page it runs
("fault-around"), so an idle worker whose few hundred KiB of startup and claim-loop code lie
scattered over 15 MB of text has about 8 MiB of it resident. lld places the sections named in
a symbol ordering file first.

How: runs a release imagequeue-worker (debug info stripped, for valgrind) under callgrind
against a throwaway redis-server: start, claim loops idle, one /metrics and /healthz scrape,
SIGINT. Every function it ran that the executable defines is written out, sorted by name.
A stale file is harmless (lld skips names it does not find). SwiftPM does not relink when
only this file changes, so the script removes the binary it measured: the next release build
links it again. Regenerate the list when the worker's start-up or idle path changes.

    python3 ops/link/worker_order.py [--build-dir .build/x86_64-unknown-linux-gnu/release]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT = os.path.join(ROOT, "ops", "link", "imagequeue-worker.order")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def code_symbols(binary):
    """The names of the functions in `binary`'s code."""
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    return {parts[2] for parts in (line.split() for line in out.splitlines()) if len(parts) == 3 and parts[1] in "tTwW"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=os.path.join(ROOT, ".build", "x86_64-unknown-linux-gnu", "release"))
    parser.add_argument("--seconds", type=float, default=25, help="how long the worker runs under valgrind")
    args = parser.parse_args()
    binary = os.path.join(args.build_dir, "imagequeue-worker")
    for tool in ("valgrind", "redis-server", "nm", "strip"):
        if shutil.which(tool) is None:
            sys.exit(f"worker_order: {tool} is not installed")
    if not os.access(binary, os.X_OK):
        sys.exit(f"worker_order: no {binary}: swift build -c release --product imagequeue-worker --static-swift-stdlib")

    with tempfile.TemporaryDirectory(prefix="iq-order-") as work:
        stripped = os.path.join(work, "imagequeue-worker")
        shutil.copy(binary, stripped)
        subprocess.run(["strip", "--strip-debug", stripped], check=True)  # valgrind cannot read lld's DWARF 5
        port, metrics = free_port(), free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--dir", work], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            profile = os.path.join(work, "callgrind.out")
            worker = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={profile}",
                                       stripped, "--redis", f"redis://127.0.0.1:{port}", "--prefix", "order",
                                       "--models", "flux,sdxl", "--backend", "placeholder", "--output-dir",
                                       os.path.join(work, "images"), "--metrics-port", str(metrics),
                                       "--metrics-host", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "worker.log"), "w"))
            time.sleep(args.seconds)
            for path in ("/metrics", "/healthz", "/nowhere"):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{metrics}{path}", timeout=10).read()
                except Exception:
                    pass
            time.sleep(2)
            worker.send_signal(signal.SIGINT)
            worker.wait(timeout=120)
        finally:
            redis.terminate()
            redis.wait()
        executed = []
        seen = set()
        with open(profile) as text:
            for line in text:
                if line.startswith(("fn=(", "cfn=(")) and ") " in line:
                    name = line.split(") ", 1)[1].strip()
                    if name not in seen:
                        seen.add(name)
                        executed.append(name)
        if not executed:
            sys.exit("worker_order: callgrind recorded no functions; see the worker's log")

    known = code_symbols(binary)
    # Sorted: the order inside the group matters little, and a sorted file changes little
    # from one regeneration to the next.
    chosen = sorted(name for name in executed if name in known)
    with open(OUTPUT, "w") as out:
        out.write("\n".join(chosen) + "\n")
    # SwiftPM does not see the list as an input of the link: without the binary, the next
    # release build links it again, with the new order.
    os.remove(binary)
    print(f"{OUTPUT}: {len(chosen)} functions first, of {len(executed)} run; {binary} removed, so the next build relinks it")


if __name__ == "__main__":
    main()
