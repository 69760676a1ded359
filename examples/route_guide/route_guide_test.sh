#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The ctest example_route_guide:
#
#   route_guide_test.sh ROUTE_GUIDE_SERVER ROUTE_GUIDE_CLIENT
#
# Starts the server on a free port (--port=0; it prints the port it got),
# runs the client against it and checks what the client prints, then stops
# the server with SIGTERM and checks that it exits 0.  Every wait is bounded.
set -euo pipefail

server=$1
client=$2
tmp=$(mktemp -d)
server_pid=""

cleanup() {
  if [[ -n $server_pid ]]; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "example_route_guide: $*" >&2
  exit 1
}

# ---- start the server and learn its port (up to 10 s) ----
# Created first: the background job's redirection may come after the sed.
: >"$tmp/server.out"
"$server" --port=0 >"$tmp/server.out" 2>&1 &
server_pid=$!
port=""
for ((i = 0; i < 100; i++)); do
  port=$(sed -n 's/^Server started, listening on \([0-9][0-9]*\)$/\1/p' \
    "$tmp/server.out")
  [[ -n $port ]] && break
  kill -0 "$server_pid" 2>/dev/null ||
    fail "the server exited early: $(cat "$tmp/server.out")"
  sleep 0.1
done
[[ -n $port ]] || fail "the server did not print its port within 10 s"

# ---- run the client (up to 60 s) ----
out=$tmp/client.out
rc=0
timeout 60 "$client" --target="localhost:$port" >"$out" 2>&1 || rc=$?
cat "$out"
[[ $rc == 0 ]] || fail "the client exited with $rc"

# ---- check its output ----
expect_line() { # a whole line, literally
  grep -qxF -- "$1" "$out" || fail "no line: $1"
}
expect_count() { # how many lines match a regular expression
  local n
  n=$(grep -cE -- "$2" "$out" || true)
  [[ $n == "$1" ]] || fail "$n lines match '$2', expected $1"
}

# GetFeature: one landmark, one empty point.
expect_line 'Found feature called "Eiffel Tower" at 48.8584, 2.2945'
expect_line 'Found no feature at 0.0000, 0.0000'
# ListFeatures: the ten places in central Paris (+1 line from GetFeature).
expect_line 'Found 10 features'
expect_count 11 '^Found feature called '
expect_line 'Found feature called "Sacre-Coeur Basilica" at 48.8867, 2.3431'
expect_count 0 'Versailles|Mont-Saint-Michel'
# RecordRoute: six points, five of them landmarks, 6307 m by haversine.
expect_line 'Finished trip with 6 points'
expect_line 'Passed 5 features'
expect_line 'Travelled 6307 meters'
expect_count 1 '^It took [0-9]+ seconds$'
# RouteChat: the Louvre hears "First" twice and "Fourth" once, the Eiffel
# Tower "Second" once; Notre-Dame is visited only once.
expect_count 6 '^Sending message '
expect_count 4 '^Got message '
expect_count 2 '^Got message "First message" at 48\.8606, 2\.3376$'
expect_line 'Got message "Fourth message" at 48.8606, 2.3376'
expect_line 'Got message "Second message" at 48.8584, 2.2945'

# ---- stop the server (up to 10 s) and check that it exits cleanly ----
kill -TERM "$server_pid"
for ((i = 0; i < 100; i++)); do
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null && fail "the server ignored SIGTERM for 10 s"
rc=0
wait "$server_pid" || rc=$?
server_pid=""
[[ $rc == 0 ]] || fail "the server exited with $rc: $(cat "$tmp/server.out")"
echo "example_route_guide: OK"
