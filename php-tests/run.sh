#!/usr/bin/env bash
# Builds the extension and runs the .phpt suite with PHP's own run-tests.php,
# once against a fresh synod and once against a fresh etcd, each on free
# loopback ports. Fails if any test fails on either.
#   php-tests/run.sh                      every test
#   php-tests/run.sh php-tests/tests/030-zookeeper.phpt ...   only these
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p synod -p synod-php
EXT="$PWD/target/debug/libsynod.so"
work=$(mktemp -d)
pids=()
cleanup() { stop_servers; rm -rf "$work"; }
trap cleanup EXIT
source scripts/lib.sh
RUN_TESTS=$(run_tests_php)

tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(php-tests/tests)

status=0
for server in synod etcd; do
  bin=$([ $server = etcd ] && command -v etcd || echo "$PWD/target/debug/synod")
  start_server "$bin" "$server"; cp=$port
  # A second server that tests may kill (server killed mid-watch).
  start_server "$bin" "$server-victim"; vp=$port; vpid=$spid
  echo "== phpt against $server (127.0.0.1:$cp)"
  if ! SYNOD_SERVER="$server" SYNOD_EXT="$EXT" SYNOD_ENDPOINT="127.0.0.1:$cp" SYNOD_VICTIM_ENDPOINT="127.0.0.1:$vp" SYNOD_VICTIM_PID="$vpid" \
      NO_INTERACTION=1 REPORT_EXIT_STATUS=1 TEST_PHP_EXECUTABLE="$(command -v php)" \
      php "$RUN_TESTS" -q --show-diff -d "extension=$EXT" "${tests[@]}" | tee "$work/$server.out"; then
    status=1
  fi
  # A suite that skipped everything (extension not loaded) proves nothing.
  if grep -qE "^Tests skipped +: +[1-9]" "$work/$server.out"; then
    echo "phpt: tests were skipped against $server" >&2
    status=1
  fi
  # run-tests.php quietly retries a failed test that sleeps, and counts a
  # pass on retry as "warned": a flaky test must not hide there.
  if grep -qE "^Tests warned +: +[1-9]" "$work/$server.out"; then
    echo "phpt: tests passed only on a retry against $server" >&2
    status=1
  fi
  stop_servers
done
exit $status
