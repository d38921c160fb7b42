#!/bin/sh
# Writes the configuration of one sentinel of the Sentinel setup (ops/compose.sentinel.yml),
# then runs the command after `--` in this process (there: the image's entrypoint, which
# starts `redis-server CONF --sentinel` as the redis user).
#
#   SENTINEL_NAME=sentinel-1 SENTINEL_MASTER_NAME=iq REDIS_FIRST_MASTER=redis \
#   REDIS_ADMIN_PASSWORD=... REDIS_WORKER_PASSWORD=... \
#     sh ops/sentinel/sentinel.sh CONF [-- COMMAND ARGUMENTS...]
#
# A sentinel rewrites its own configuration as it learns (the current master, the replicas,
# the other sentinels, the epochs), so CONF must be on a volume of its own and is written
# only when it does not exist yet:
#   - it monitors REDIS_FIRST_MASTER:6379 as SENTINEL_MASTER_NAME, quorum 2 of the three
#     sentinels, a master down after 5 s without an answer, a failover abandoned after 60 s;
#   - every address is a compose service name: `resolve-hostnames yes` lets it accept names,
#     `announce-hostnames yes` makes it answer clients (SENTINEL get-master-addr-by-name) and
#     reconfigure servers with names, and `announce-ip` gives the other sentinels its name.
# At every start the credentials are written anew, from the environment, so that a password
# changed in .env takes effect:
#   - requirepass REDIS_WORKER_PASSWORD: the sentinels' own password. The imagequeue services
#     give it as IMAGEQUEUE_SENTINEL_PASSWORD; the sentinels use it among themselves.
#   - auth-user admin, auth-pass REDIS_ADMIN_PASSWORD: how the sentinels log in to the Redis
#     servers (INFO, REPLICAOF, CONFIG REWRITE, the hello channel need more than the worker).
# CONF is readable by its owner only. Exit status 2, with one line naming the variable (never
# its value), when a setting is missing or unusable. POSIX sh: it runs in the redis:7 image.
set -eu

fail() { echo "sentinel.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] || fail "usage: sentinel.sh CONF [-- COMMAND ARGUMENTS...]"
conf=$1
shift
if [ $# -gt 0 ]; then
  [ "$1" = "--" ] || fail "expected -- before the command, got: $1"
  shift
fi

for name in SENTINEL_NAME SENTINEL_MASTER_NAME REDIS_FIRST_MASTER REDIS_ADMIN_PASSWORD REDIS_WORKER_PASSWORD; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || fail "$name is not set"
done
for name in REDIS_ADMIN_PASSWORD REDIS_WORKER_PASSWORD; do
  eval "value=\${$name}"
  case $value in *[!A-Za-z0-9._~-]*) fail "$name may hold only letters, digits and . _ ~ -" ;; esac
done
redis_port=${REDIS_PORT:-6379}
sentinel_port=${SENTINEL_PORT:-26379}

umask 077
partial="$conf.partial.$$"
trap 'rm -f "$partial"' EXIT
if [ -s "$conf" ]; then
  # What the sentinel learnt stays; only the credentials are dropped, to be written again.
  grep -v -E '^(requirepass|user|sentinel (auth-user|auth-pass|sentinel-user|sentinel-pass)) ' "$conf" > "$partial" || true
  echo "sentinel.sh: keeping what $conf records (the current master, replicas, sentinels, epochs)"
else
  cat > "$partial" <<EOF
# Written by ops/sentinel/sentinel.sh, then rewritten by the sentinel itself as it learns.
port $sentinel_port
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SENTINEL_NAME
sentinel monitor $SENTINEL_MASTER_NAME $REDIS_FIRST_MASTER $redis_port 2
sentinel down-after-milliseconds $SENTINEL_MASTER_NAME 5000
sentinel failover-timeout $SENTINEL_MASTER_NAME 60000
sentinel parallel-syncs $SENTINEL_MASTER_NAME 1
EOF
  echo "sentinel.sh: $SENTINEL_NAME monitors $REDIS_FIRST_MASTER:$redis_port as $SENTINEL_MASTER_NAME (first start)"
fi
{
  echo "requirepass $REDIS_WORKER_PASSWORD"
  echo "sentinel auth-user $SENTINEL_MASTER_NAME admin"
  echo "sentinel auth-pass $SENTINEL_MASTER_NAME $REDIS_ADMIN_PASSWORD"
} >> "$partial"
mv "$partial" "$conf"
trap - EXIT

[ $# -gt 0 ] && exec "$@"
exit 0
