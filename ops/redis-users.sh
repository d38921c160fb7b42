#!/bin/sh
# Writes Redis's ACL users file from the template ops/redis-users.acl: comments and blank
# lines dropped, each >${VARIABLE} replaced by #<SHA-256 of the variable's value> (Redis
# accepts a password as its hash), so no password is written anywhere. The file is made
# readable by its owner only. Then, if a command follows `--`, runs it in this process.
#
#   REDIS_ADMIN_PASSWORD=... REDIS_WORKER_PASSWORD=... \
#     sh ops/redis-users.sh TEMPLATE OUTPUT [-- COMMAND ARGUMENTS...]
#
# Passwords must be at least 16 characters of letters, digits and . _ ~ - (they go into
# redis:// URLs unescaped); `openssl rand -hex 32` makes a good one. Exit status 2, with one
# line naming the variable (never its value), when one is missing or unusable.
# POSIX sh: it runs in the redis:7 image (dash) and its Alpine variant (busybox) alike.
set -eu

fail() { echo "redis-users.sh: $*" >&2; exit 2; }

[ $# -ge 2 ] || fail "usage: redis-users.sh TEMPLATE OUTPUT [-- COMMAND ARGUMENTS...]"
template=$1
output=$2
shift 2
if [ $# -gt 0 ]; then
  [ "$1" = "--" ] || fail "expected -- before the command, got: $1"
  shift
fi
[ -r "$template" ] || fail "cannot read the template $template"

umask 077
partial="$output.partial.$$"
trap 'rm -f "$partial"' EXIT
: > "$partial"
while IFS= read -r line || [ -n "$line" ]; do
  case $line in '' | '#'*) continue ;; esac
  while :; do
    case $line in *'>${'*'}'*) ;; *) break ;; esac
    name=$(printf '%s\n' "$line" | sed -n 's/.*>\${\([A-Za-z_][A-Za-z0-9_]*\)}.*/\1/p')
    [ -n "$name" ] || fail "a malformed >\${...} placeholder in $template"
    eval "value=\${$name:-}"
    [ -n "$value" ] || fail "$name is not set (see .env.example)"
    [ ${#value} -ge 16 ] || fail "$name is shorter than 16 characters"
    case $value in *[!A-Za-z0-9._~-]*) fail "$name may hold only letters, digits and . _ ~ -" ;; esac
    hash=$(printf '%s' "$value" | sha256sum | cut -d ' ' -f 1)
    line=$(printf '%s\n' "$line" | sed "s/>\${$name}/#$hash/")
  done
  printf '%s\n' "$line" >> "$partial"
done < "$template"
mv "$partial" "$output"
trap - EXIT

[ $# -gt 0 ] && exec "$@"
exit 0
