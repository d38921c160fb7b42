#!/usr/bin/env bash
# The README's first command: one prompt end to end on a fresh Debian machine.
# Installs what is missing, builds, and runs `imagequeue demo` (which starts a throwaway
# redis-server when none answers and uses the offline placeholder backend unless
# FLUX_WORKER_URL / SDXL_WORKER_URL are set). Usage: bash ops/demo.sh ["PROMPT"] [demo flags]
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/install-deps.sh
[ $# -gt 0 ] || set -- "a lighthouse at dawn"
swift build --product imagequeue 2>&1 | tail -1
exec .build/debug/imagequeue demo "$@"
