#!/bin/sh
# Prepares one Redis data server of the Sentinel setup (ops/compose.sentinel.yml), then runs the
# command after `--` in this process (there: ops/redis-users.sh, then the image's entrypoint).
#
#   REDIS_NODE_NAME=redis-2 REDIS_FIRST_MASTER=redis SENTINEL_MASTER_NAME=iq \
#   SENTINEL_HOSTS="sentinel-1 sentinel-2 sentinel-3" \
#   REDIS_ADMIN_PASSWORD=... REDIS_WORKER_PASSWORD=... \
#     sh ops/sentinel/redis-node.sh ACL_TEMPLATE ACL_TEMPLATE_OUT NODE_CONF [-- COMMAND ARGUMENTS...]
#
# 1. ACL_TEMPLATE_OUT: the template ops/redis-users.acl with `+role +wait` added to the worker
#    user. A client of a Sentinel-managed master checks with ROLE that it reached the master,
#    and IMAGEQUEUE_REDIS_WAIT_REPLICAS sends WAIT after every change; ops/redis-users.sh then
#    turns it into the users file as for the single server.
# 2. NODE_CONF (mode 600; redis-server loads it with --include): this server announces itself
#    to the sentinels by its compose name (replica-announce-ip), replicates as the admin user,
#    and is a replica of the current master unless it is the master.
#
# The current master is the one the first sentinel that answers names. When none answers (the
# first start: the sentinels start after the data servers), REDIS_FIRST_MASTER is the master.
# A server that comes back after a failover therefore rejoins as a replica of the new master,
# with nothing written to the read-only ops/redis.conf. (If no sentinel answers at such a
# restart, the old master starts as a master; the sentinels turn it back into a replica when
# they return, and clients, who find the master through the sentinels, never write to it.)
#
# Exit status 2, with one line naming the variable (never its value), when a setting is
# missing or unusable. POSIX sh: it runs in the redis:7 image (dash).
set -eu

fail() { echo "redis-node.sh: $*" >&2; exit 2; }

[ $# -ge 3 ] || fail "usage: redis-node.sh ACL_TEMPLATE ACL_TEMPLATE_OUT NODE_CONF [-- COMMAND ARGUMENTS...]"
template=$1
template_out=$2
node_conf=$3
shift 3
if [ $# -gt 0 ]; then
  [ "$1" = "--" ] || fail "expected -- before the command, got: $1"
  shift
fi
[ -r "$template" ] || fail "cannot read the template $template"

for name in REDIS_NODE_NAME REDIS_FIRST_MASTER SENTINEL_MASTER_NAME SENTINEL_HOSTS REDIS_ADMIN_PASSWORD REDIS_WORKER_PASSWORD; do
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

# 1. The worker user may also send ROLE and WAIT (repeating a rule ops/redis-users.acl already
#    has changes nothing).
grep -q '^user worker ' "$template" || fail "no worker user in $template"
sed 's/^user worker .*/& +role +wait/' "$template" > "$template_out"

# 2. Who the master is now.
master=""
for host in $SENTINEL_HOSTS; do
  answer=$(REDISCLI_AUTH="$REDIS_WORKER_PASSWORD" timeout 3 redis-cli --no-auth-warning --raw -h "$host" -p "$sentinel_port" \
             SENTINEL get-master-addr-by-name "$SENTINEL_MASTER_NAME" 2>/dev/null) || continue
  address=$(printf '%s\n' "$answer" | sed -n 1p)
  port=$(printf '%s\n' "$answer" | sed -n 2p)
  case $port in '' | *[!0-9]*) continue ;; esac
  master="$address $port"
  echo "redis-node.sh: the sentinel $host names $address:$port as the master of $SENTINEL_MASTER_NAME"
  break
done
if [ -z "$master" ]; then
  master="$REDIS_FIRST_MASTER $redis_port"
  echo "redis-node.sh: no sentinel answered: $REDIS_FIRST_MASTER is the master of $SENTINEL_MASTER_NAME"
fi

partial="$node_conf.partial.$$"
trap 'rm -f "$partial"' EXIT
{
  echo "# Written by ops/sentinel/redis-node.sh at each start; do not edit."
  echo "replica-announce-ip $REDIS_NODE_NAME"
  echo "masteruser admin"
  echo "masterauth $REDIS_ADMIN_PASSWORD"
  if [ "$master" != "$REDIS_NODE_NAME $redis_port" ]; then
    echo "replicaof $master"
  fi
} > "$partial"
mv "$partial" "$node_conf"
trap - EXIT
if [ "$master" = "$REDIS_NODE_NAME $redis_port" ]; then
  echo "redis-node.sh: $REDIS_NODE_NAME starts as the master"
else
  echo "redis-node.sh: $REDIS_NODE_NAME starts as a replica of ${master% *}:${master#* }"
fi

[ $# -gt 0 ] && exec "$@"
exit 0
