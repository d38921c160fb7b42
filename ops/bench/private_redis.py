"""A redis-server of the benchmark's own on a free 127.0.0.1 port, with no persistence.

    server = PrivateRedis()              # plain
    server = PrivateRedis(under=["valgrind", "--tool=callgrind", ...])   # run under a tool
    ... server.client, server.url, server.port, server.pid ...
    server.close()                       # stops it (by pid) and removes its folder

Shared by scaling.py, memory.py and script_cost.py.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    def __init__(self, under=(), prefix="iq-bench-", patience=10.0):
        """`under`: words put before `redis-server` (a profiler); they may name `{folder}`.
        `patience`: seconds to wait for the first PONG."""
        self.folder = tempfile.mkdtemp(prefix=prefix)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        command = [word.replace("{folder}", self.folder) for word in under]
        command += ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--maxclients", "10000", "--dir", self.folder, "--logfile", os.path.join(self.folder, "redis.log")]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.pid = self.process.pid
        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + patience
        while True:
            try:
                self.client.ping()
                return
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise SystemExit(f"redis-server did not start ({' '.join(command[:3])}...)")
                time.sleep(0.05)

    def close(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
