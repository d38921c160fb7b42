#!/usr/bin/env bash
# Builds ImageQueue and its tests with a sanitizer and runs the Redis Cluster suites, whose
# executables (ClusterBinaryTests) are then the sanitized builds too:
#   bash ops/sanitize.sh [thread|address ...]     (default: thread address)
# Each sanitizer builds in its own folder (.build-thread, .build-address: a few minutes
# each) and stops at the first report. Needs what Tests/run.sh installs (ops/install-deps.sh).
# What it found is in docs/CLUSTER.md ("The release-build crash").
set -euo pipefail
cd "$(dirname "$0")/.."
bash ops/install-deps.sh --tests
sanitizers=("$@")
[ ${#sanitizers[@]} -gt 0 ] || sanitizers=(thread address)
for sanitizer in "${sanitizers[@]}"; do
  case "$sanitizer" in thread|address) ;; *) echo "unknown sanitizer: $sanitizer (thread or address)" >&2; exit 2 ;; esac
  scratch=".build-$sanitizer"
  echo "==> building with -sanitize=$sanitizer in $scratch"
  swift build --build-tests --sanitize="$sanitizer" --scratch-path "$scratch"
  echo "==> ClusterTests under -sanitize=$sanitizer"
  IMAGEQUEUE_BINARY="$PWD/$scratch/debug/imagequeue" \
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" ASAN_OPTIONS="halt_on_error=1:detect_leaks=0" \
    swift test --skip-build --sanitize="$sanitizer" --scratch-path "$scratch" --filter ClusterTests
done
