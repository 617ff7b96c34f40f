#!/usr/bin/env bash
# Builds the extension and runs the .phpt suite with PHP's own run-tests.php,
# once against a fresh synod and once against a fresh etcd, each on free
# loopback ports. Fails if any test fails on either.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p synod -p synod-php
EXT="$PWD/target/debug/libsynod.so"
RUN_TESTS="$(php-config --extension-dir)/build/run-tests.php"
[ -f "$RUN_TESTS" ] || RUN_TESTS=/usr/lib/php/$(php -r 'echo PHP_MAJOR_VERSION.".".PHP_MINOR_VERSION;')/build/run-tests.php
[ -f "$RUN_TESTS" ] || { echo "run-tests.php not found (install php8.2-dev)" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start BINARY NAME: starts a server on free ports; sets $port and $spid.
start() {
  local pp; port=$(free_port); pp=$(free_port)
  "$1" --name n1 --data-dir "$work/$2" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "n1=http://127.0.0.1:$pp" >"$work/$2.log" 2>&1 &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$port" put phpt-ready 1 >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "phpt: $2 did not start" >&2
  return 1
}

status=0
for server in synod etcd; do
  bin=$([ $server = etcd ] && command -v etcd || echo "$PWD/target/debug/synod")
  start "$bin" "$server"; cp=$port
  # A second server that tests may kill (server killed mid-watch).
  start "$bin" "$server-victim"; vp=$port; vpid=$spid
  echo "== phpt against $server (127.0.0.1:$cp)"
  if ! SYNOD_EXT="$EXT" SYNOD_ENDPOINT="127.0.0.1:$cp" SYNOD_VICTIM_ENDPOINT="127.0.0.1:$vp" SYNOD_VICTIM_PID="$vpid" \
      NO_INTERACTION=1 REPORT_EXIT_STATUS=1 TEST_PHP_EXECUTABLE="$(command -v php)" \
      php "$RUN_TESTS" -q --show-diff -d "extension=$EXT" php-tests/tests | tee "$work/$server.out"; then
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
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
done
exit $status
