#!/usr/bin/env python3
"""ImageQueue's rows in the shared peers benchmark.

The shared harness (../shared/peers/run.py, read-only) measures Sidekiq, RQ, huey, arq,
dramatiq and Celery moving no-op jobs through one worker process. This script imports it as a
module, appends ImageQueue rows to its peer list and runs its main(), so ImageQueue is measured
in the same run, on the same Redis, with the same driver. Run it through ops/bench/peers.sh,
which starts a private Redis first.

Our rows (keys for --only: imagequeue-c1, imagequeue-c256):
  enqueue  imagequeue-bench peer enqueue|bulk N --redis URL --concurrency C
           (sets the flux model's concurrency limit to C, times only its enqueue loop)
  worker   imagequeue-worker --models flux --backend placeholder --concurrency C ...
           (or `imagequeue worker ...` when --worker names the imagequeue binary)
           (8x8 placeholder PNGs to tmpfs; leases, fencing tokens and events on)
  done     N - HGET iq:{flux}:meta completed_total

Options of this script (the rest go to run.py; see --help there):
  --worker PATH       the worker: imagequeue-worker, or imagequeue (default $IMAGEQUEUE_WORKER_BINARY,
                      else .build/release/imagequeue-worker)
  --bench PATH        the imagequeue-bench binary (default $IMAGEQUEUE_BENCH_BINARY, else .build/release/imagequeue-bench)
  --iq-concurrency LIST  worker concurrencies of our rows (default 1,256)
  --peers-dir DIR     the shared harness (default $PEERS_DIR, else ../shared/peers from the repository)
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_own_arguments():
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--worker", default=os.environ.get("IMAGEQUEUE_WORKER_BINARY",
                                                           os.path.join(REPO, ".build/release/imagequeue-worker")))
    parser.add_argument("--bench", default=os.environ.get("IMAGEQUEUE_BENCH_BINARY",
                                                          os.path.join(REPO, ".build/release/imagequeue-bench")))
    parser.add_argument("--iq-concurrency", default="1,256")
    parser.add_argument("--peers-dir", default=os.environ.get("PEERS_DIR", os.path.join(os.path.dirname(REPO), "shared/peers")))
    own, rest = parser.parse_known_args()
    if "-h" in rest or "--help" in rest:
        print(__doc__)
    return own, rest


def worker_command(binary):
    """The words that start a worker: `imagequeue-worker`, or `imagequeue worker`."""
    return [binary] if os.path.basename(binary) == "imagequeue-worker" else [binary, "worker"]


def accepted_concurrency(imagequeue, wanted):
    """The worker's --concurrency if it accepts `wanted`, else the largest it accepts.

    Asks with a bad --backend, which the worker checks after --concurrency: it exits at once
    either way, without touching Redis."""
    out = subprocess.run(worker_command(imagequeue) + ["--concurrency", str(wanted), "--backend", "-"],
                         capture_output=True, text=True, timeout=60)
    match = re.search(r"--concurrency must be from 1 to (\d+)", out.stderr + out.stdout)
    return min(wanted, int(match.group(1))) if match else wanted


def main():
    own, rest = parse_own_arguments()
    for name, path in (("--worker", own.worker), ("--bench", own.bench)):
        if not os.access(path, os.X_OK):
            sys.exit(f"peers.py: {name} {path} is not an executable file (build with swift build -c release)")
    run_py = os.path.join(own.peers_dir, "run.py")
    if not os.path.isfile(run_py):
        sys.exit(f"peers.py: no harness at {run_py} (set --peers-dir or PEERS_DIR)")
    try:
        concurrencies = [int(c) for c in own.iq_concurrency.split(",") if c]
        if not concurrencies or min(concurrencies) < 1:
            raise ValueError
    except ValueError:
        sys.exit("peers.py: --iq-concurrency must be a comma-separated list of whole numbers >= 1")

    sys.path.insert(0, own.peers_dir)
    import run  # the shared harness, read-only: used, never copied

    # The shared directory is read-only: results and logs go elsewhere unless --out says where.
    if not any(a == "--out" or a.startswith("--out=") for a in rest):
        rest += ["--out", os.environ.get("PEERS_OUT", "/tmp/imagequeue-peers-results")]
    # The worker's environment (run.py passes os.environ on to every command).
    os.environ["IMAGEQUEUE_PLACEHOLDER_SIZE"] = "8"
    os.environ["IMAGEQUEUE_LOG_LEVEL"] = "warning"
    for name in ("IMAGEQUEUE_PREFIX", "IMAGEQUEUE_MODELS", "IMAGEQUEUE_RATE_LIMIT"):
        os.environ.pop(name, None)

    meta = "iq:{flux}:meta"
    shared_peer_list = run.peer_list

    def peer_list(url, n, n_fork):
        peers = shared_peer_list(url, n, n_fork)
        for wanted in concurrencies:
            used = accepted_concurrency(own.worker, wanted)
            notes = "placeholder backend, 8x8 PNG to tmpfs; leases, tokens, events on; done=completed_total (exact)"
            if used != wanted:
                notes += f"; the worker accepts --concurrency up to {used}, asked {wanted}"
            peers.append(run.Peer(
                f"imagequeue -c {used}", n,
                enqueue=[own.bench, "peer", "--redis", url, "--concurrency", str(used)],
                worker=worker_command(own.worker) + ["--models", "flux", "--backend", "placeholder",
                        "--concurrency", str(used), "--redis", url,
                        "--output-dir", f"/dev/shm/imagequeue-peers-c{used}"],
                remaining=lambda r, n: n - int(r.hget(meta, "completed_total") or 0),
                failed=lambda r: int(r.hget(meta, "failed_total") or 0),
                bulk=True, notes=notes, key=f"imagequeue-c{wanted}"))
        return peers

    run.peer_list = peer_list
    sys.argv = [sys.argv[0]] + rest
    try:
        run.main()
    finally:  # the workers' images (tmpfs)
        for wanted in concurrencies:
            for used in {wanted, accepted_concurrency(own.worker, wanted)}:
                shutil.rmtree(f"/dev/shm/imagequeue-peers-c{used}", ignore_errors=True)


if __name__ == "__main__":
    main()
