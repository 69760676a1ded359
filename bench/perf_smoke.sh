#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# perf_smoke: a regression guard for the hot path, not a timing test.
# Starts greeter_server on a free port and makes CALLS (default 10,000)
# SayHello calls through it with cgrpc_load_client, OUTSTANDING (default 32)
# at a time on one channel, then the same again over 4 channels.  Fails if
# any reply is missing, has a status other than OK, or is not
# "Hello, world!".
#
#   perf_smoke.sh GREETER_SERVER CGRPC_LOAD_CLIENT
set -u
server_bin=${1:?usage: perf_smoke.sh GREETER_SERVER CGRPC_LOAD_CLIENT}
client_bin=${2:?usage: perf_smoke.sh GREETER_SERVER CGRPC_LOAD_CLIENT}
calls=${PERF_SMOKE_CALLS:-10000}
outstanding=${PERF_SMOKE_OUTSTANDING:-32}

tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

"$server_bin" --port=0 >"$tmp/server.out" 2>"$tmp/server.err" &
server_pid=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/^Server started, listening on \([0-9][0-9]*\)$/\1/p' \
    "$tmp/server.out")
  [ -n "$port" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "perf_smoke: greeter_server exited:" >&2
    cat "$tmp/server.err" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  echo "perf_smoke: greeter_server did not start" >&2
  exit 1
fi

fail=0
for channels in 1 4; do
  out=$("$client_bin" unary --target="localhost:$port" --channels="$channels" \
    --outstanding="$outstanding" --calls="$calls" --expect="Hello, world!")
  rc=$?
  echo "perf_smoke: channels=$channels: $out"
  case "$out" in
    *"\"calls\":$calls,\"errors\":0,"*'"ok":true}') ;;
    *) rc=1 ;;
  esac
  if [ "$rc" -ne 0 ]; then
    echo "perf_smoke: FAILED with $channels channel(s)" >&2
    fail=1
  fi
done
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "perf_smoke: greeter_server died during the run" >&2
  fail=1
fi
[ "$fail" -eq 0 ] && echo "perf_smoke: OK"
exit "$fail"
