# Shell helpers shared by scripts/bench and php-tests/run.sh. Source it after
# setting `work` (a scratch directory) and `pids=()`.

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_server BINARY NAME: starts synod or etcd (same flags) on free loopback
# ports with its data in $work/NAME, waits until it serves, and sets $port
# and $spid.
start_server() {
  local pp; port=$(free_port); pp=$(free_port)
  "$1" --name n1 --data-dir "$work/$2" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
    --initial-cluster "n1=http://127.0.0.1:$pp" >"$work/$2.log" 2>&1 &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints="127.0.0.1:$port" put ready 1 >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "$2 did not start; its log:" >&2
  cat "$work/$2.log" >&2
  return 1
}

stop_servers() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  pids=()
}

# run_tests_php: prints the path of PHP's own run-tests.php (php8.2-dev ships it).
run_tests_php() {
  local p
  p="$(php-config --extension-dir)/build/run-tests.php"
  [ -f "$p" ] || p=/usr/lib/php/$(php -r 'echo PHP_MAJOR_VERSION.".".PHP_MINOR_VERSION;')/build/run-tests.php
  [ -f "$p" ] || { echo "run-tests.php not found (install php8.2-dev)" >&2; return 1; }
  echo "$p"
}
