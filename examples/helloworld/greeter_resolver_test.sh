#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The ctest example_greeter_resolver:
#
#   greeter_resolver_test.sh GREETER_SERVER GREETER_CLIENT_RESOLVER
#
# Starts two greeter_servers (a and b) on free ports, then checks that
# greeter_client_resolver's calls go where its address list says: over both
# with round_robin from the command line, then to a, then (once the script
# rewrites the file) to b only.  Every wait is bounded.
set -euo pipefail

server=$1
client=$2
tmp=$(mktemp -d)
pids=()

cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "example_greeter_resolver: $*" >&2
  [[ -f $tmp/client.out ]] && cat "$tmp/client.out" >&2
  exit 1
}

# start_server NAME: starts it on 127.0.0.1, a free port; sets $port.
start_server() {
  local out=$tmp/$1.out i
  : >"$out"
  "$server" --listen=127.0.0.1:0 --name="$1" >"$out" 2>&1 &
  pids+=($!)
  port=""
  for ((i = 0; i < 100; i++)); do
    port=$(sed -n 's/^Server started, listening on \([0-9][0-9]*\)$/\1/p' "$out")
    [[ -n $port ]] && return 0
    sleep 0.1
  done
  fail "server $1 did not print its port within 10 s: $(cat "$out")"
}

start_server a
port_a=$port
start_server b
port_b=$port

# ---- the command line's list, round_robin: both servers answer ----
out=$tmp/client.out
timeout 60 "$client" --lb=round_robin --count=6 \
  "127.0.0.1:$port_a" "127.0.0.1:$port_b" >"$out" 2>&1 ||
  fail "the client failed"
grep -qxF 'Hello, world! (from a)' "$out" || fail "a did not answer"
grep -qxF 'Hello, world! (from b)' "$out" || fail "b did not answer"

# ---- a malformed address is refused with a message ----
rc=0
timeout 60 "$client" 127.0.0.1 >"$out" 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "a malformed address gave exit code $rc"
grep -q 'no port' "$out" || fail "no message for a malformed address"

# ---- a file, rewritten while the client runs ----
list=$tmp/list
echo "127.0.0.1:$port_a" >"$list"
: >"$out"
timeout 60 "$client" --file="$list" --count=200 --interval_ms=20 >"$out" 2>&1 &
client_pid=$!
pids+=("$client_pid")
for ((i = 0; i < 100; i++)); do
  grep -qF '(from a)' "$out" && break
  sleep 0.1
done
grep -qF '(from a)' "$out" || fail "no answer from a within 10 s"
# Replaced in one step, so that the client never reads half a file.
printf '# moved\n127.0.0.1:%s\n' "$port_b" >"$list.new"
mv "$list.new" "$list"
rc=0
wait "$client_pid" || rc=$?
[[ $rc == 0 ]] || fail "the client exited with $rc"
grep -qF '(from b)' "$out" || fail "the calls did not move to b"
# Once b answered, a never did again.
sed -n '/(from b)/,$p' "$out" | grep -qF '(from a)' &&
  fail "a answered after the list moved to b"
echo "example_greeter_resolver: OK"
