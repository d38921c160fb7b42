#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, `swiftc -sanitize=fuzzer,address`) of the parsers that
# read outside input: the /image= command, the job and event JSON, Redis replies, settings.
# docs/FUZZING.md describes the targets and the figures measured.
#
#   ops/fuzz.sh [TARGET|all|build] [SECONDS]     (default: all, 600 s per target)
#
# Targets: image-command, job-json, resp, config. Each is built from the exact source files
# it tests (instrumented; see MODULE_* below) into .build-fuzz/ and run for SECONDS with the
# committed seeds (ops/fuzz/corpus/<target>) plus the corpus grown by earlier runs
# (.build-fuzz/corpus/<target>). Crashes, hangs (-timeout) and memory blow-ups (-rss_limit_mb)
# are written to the run's folder, printed at the end; the exit status is 1 if there was any.
# Reproduce one with: .build-fuzz/bin/fuzz-<target> <crash file>
#
# Environment: IMAGEQUEUE_FUZZ_BUILD (build folder, default .build-fuzz), IMAGEQUEUE_FUZZ_NICE
# (niceness, 10), IMAGEQUEUE_FUZZ_TIMEOUT (seconds one input may take, 5),
# IMAGEQUEUE_FUZZ_RSS_MB (2048), IMAGEQUEUE_FUZZ_MAX_LEN (bytes per input, 4096),
# IMAGEQUEUE_FUZZ_ARGS (more libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGETS=(image-command job-json resp config)
BUILD=${IMAGEQUEUE_FUZZ_BUILD:-$ROOT/.build-fuzz}
NICE=${IMAGEQUEUE_FUZZ_NICE:-10}
TIMEOUT=${IMAGEQUEUE_FUZZ_TIMEOUT:-5}
RSS_MB=${IMAGEQUEUE_FUZZ_RSS_MB:-2048}
MAX_LEN=${IMAGEQUEUE_FUZZ_MAX_LEN:-4096}

# The code under test is compiled from the project's own files into modules of the same
# names, instrumented like the harnesses, so coverage guides the fuzzer through it. Only the
# files the targets need: the rest of those modules needs swift-log, NIO and the Lua plugin.
MODULE_RedisClient=(RESPValue RedisError RedisEndpoint RedisConfiguration RedisSocket)
MODULE_ImageQueue=(ConfigurationError ImageQueueError JSONValue JobID JobInfo JobRequest JobResult JobStatus QueueConfiguration
                   QueueKeys StatusEvent TextAndTime WorkerInfo)
MODULE_TelegramFront=(ImageCommand Replies TelegramConfiguration DeliveryRecord BotAPITypes)
MODULE_ImageWorker=(WorkerConfiguration PromptCleaner)
MODULE_ImageQueueCommandLine=(Settings WorkerConfiguration+Settings)
MODULES=(RedisClient ImageQueue TelegramFront ImageWorker ImageQueueCommandLine)   # in dependency order
declare -A HARNESS=([image-command]=ImageCommandFuzz [job-json]=JobJSONFuzz [resp]=RESPFuzz [config]=ConfigFuzz)
FLAGS=(-O -g -swift-version 6 -parse-as-library -enable-testing -sanitize=fuzzer,address
       -I "$BUILD/modules" -I "$ROOT/Sources/CHiredis")

main() {
  local what=${1:-all} seconds=${2:-600} selected
  case "$what" in
    all) selected=("${TARGETS[@]}") ;;
    build) selected=() ;;
    image-command|job-json|resp|config) selected=("$what") ;;
    *) echo "usage: ops/fuzz.sh [image-command|job-json|resp|config|all|build] [seconds]" >&2; return 2 ;;
  esac
  [[ "$seconds" =~ ^[0-9]+$ ]] || { echo "seconds must be a whole number" >&2; return 2; }

  prerequisites
  mkdir -p "$BUILD"
  # Two runs started at once (one target each) must not build over each other.
  exec 9>"$BUILD/.build-lock"
  flock 9
  build
  flock -u 9
  [ ${#selected[@]} -gt 0 ] || return 0
  run "$what" "$seconds" "${selected[@]}"
}

prerequisites() {
  command -v swiftc >/dev/null 2>&1 || { echo "swiftc not found: install a Swift 6 toolchain from swift.org" >&2; exit 1; }
  if [ ! -f /usr/include/hiredis/hiredis.h ]; then
    echo "==> installing libhiredis-dev"
    local sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libhiredis-dev >/dev/null
  fi
  # libFuzzer comes with the toolchain's clang runtime (swift.org toolchains for Linux).
  local toolchain
  toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")
  if ! compgen -G "$toolchain/lib/clang/*/lib/*/libclang_rt.fuzzer*.a" >/dev/null \
     && ! compgen -G "$toolchain/lib/swift/clang/lib/*/libclang_rt.fuzzer*.a" >/dev/null; then
    echo "this Swift toolchain ($toolchain) has no libFuzzer runtime (libclang_rt.fuzzer);" \
         "use a swift.org toolchain on Linux" >&2
    exit 1
  fi
}

sources_of() {
  local module=$1 name
  local -n names="MODULE_$module"
  for name in "${names[@]}"; do echo "$ROOT/Sources/$module/$name.swift"; done
}

build() {
  mkdir -p "$BUILD/modules" "$BUILD/bin"
  local module files objects=() rebuilt=no target harness
  for module in "${MODULES[@]}"; do
    mapfile -t files < <(sources_of "$module")
    objects+=("$BUILD/modules/$module.o")
    # Rebuilt when a source or this script is newer than the object, or a module it uses was.
    if [ "$rebuilt" = no ] && [ -f "$BUILD/modules/$module.o" ] \
       && [ -z "$(find "${files[@]}" "$ROOT/ops/fuzz.sh" -newer "$BUILD/modules/$module.o")" ]; then
      continue
    fi
    echo "==> compiling $module (${#files[@]} files, instrumented)"
    swiftc "${FLAGS[@]}" -module-name "$module" -wmo -c -emit-module \
      -emit-module-path "$BUILD/modules/$module.swiftmodule" -o "$BUILD/modules/$module.o" "${files[@]}"
    touch "$BUILD/modules/$module.o"   # swiftc leaves an unchanged object's time alone
    rebuilt=yes
  done
  for target in "${TARGETS[@]}"; do
    harness="$ROOT/ops/fuzz/harness/${HARNESS[$target]}.swift"
    if [ -f "$BUILD/bin/fuzz-$target" ] && [ -z "$(find "$harness" "${objects[@]}" -newer "$BUILD/bin/fuzz-$target")" ]; then
      continue
    fi
    echo "==> linking fuzz-$target"
    # A new file, not one rewritten in place: a run in progress keeps its binary.
    swiftc "${FLAGS[@]}" -use-ld=lld -module-name "Fuzz${HARNESS[$target]%Fuzz}" "$harness" "${objects[@]}" -lhiredis \
      -o "$BUILD/bin/fuzz-$target.new"
    mv -f "$BUILD/bin/fuzz-$target.new" "$BUILD/bin/fuzz-$target"
  done
}

run() {
  local what=$1 seconds=$2; shift 2
  local folder target corpus crashes dict code log execs rate last cov ft corp seeds found result line status=0 summary=()
  folder=$BUILD/runs/$(date +%Y%m%d-%H%M%S)-$what
  mkdir -p "$folder"
  echo "==> $(nproc) cpu, $(uname -m); ${seconds} s per target; output in $folder"
  # hiredis 0.14 callocs a multi-bulk reply's declared element count up front (`*2000000000`);
  # the kernel refuses such a request in production and hiredis reports "Out of memory".
  # Refusing allocations over half the RSS limit does the same, below libFuzzer's own limit.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:max_allocation_size_mb=$((RSS_MB / 2))}
  # libFuzzer reports a crash itself (stack, input); the Swift backtracer would only slow it down.
  export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
  for target in "$@"; do
    corpus=$BUILD/corpus/$target
    crashes=$folder/crashes-$target
    log=$folder/$target.log
    mkdir -p "$corpus" "$crashes"
    dict=()
    [ -f "$ROOT/ops/fuzz/dict/$target.dict" ] && dict=(-dict="$ROOT/ops/fuzz/dict/$target.dict")
    echo "==> fuzz-$target for $seconds s (log: $log)"
    code=0
    # shellcheck disable=SC2086
    nice -n "$NICE" "$BUILD/bin/fuzz-$target" -max_total_time="$seconds" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
      -max_len="$MAX_LEN" -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" ${IMAGEQUEUE_FUZZ_ARGS:-} \
      "$corpus" "$ROOT/ops/fuzz/corpus/$target" >"$log" 2>&1 || code=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    seeds=$(sed -nE 's/^INFO: seed corpus: files: ([0-9]+).*/\1/p' "$log" | head -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9a-zA-Z]+).*/\1/p' <<<"$last")
    found=$(find "$crashes" -type f | wc -l)
    result=ok
    if [ "$code" -ne 0 ] || [ "$found" -gt 0 ]; then
      result="FAILED (exit $code, $found input(s) in $crashes)"
      status=1
      grep -m1 -E 'Fatal error|ERROR: |==ERROR|SUMMARY' "$log" || true
    fi
    line=$(printf '%-14s %5s s  %10s execs  %6s/s  cov %5s  ft %5s  corpus %5s -> %-10s %s' \
      "$target" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${seeds:-?}" "${corp:-?}" "$result")
    echo "$line"
    summary+=("$line")
  done
  echo
  echo "==> summary ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cpu, $(uname -m))"
  printf '%s\n' "${summary[@]}" | tee "$folder/summary.txt"
  return $status
}

main "$@"
exit $?
