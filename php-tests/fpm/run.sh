#!/usr/bin/env bash
# The extension under php-fpm for real: a php-fpm master with one worker
# (pm = static, pm.max_children = 1, so every request goes to the same
# process) on a unix socket, requests sent with cgi-fcgi, and between the
# worker and a fresh synod a TCP proxy (proxy.py) that counts the connections
# the server saw opened. Checks:
#   a. connections are reused across requests: after one warm-up request,
#      $REQUESTS requests that each make a new Synod\Client and put+get open
#      no new connection;
#   b. the worker's RSS stays flat: VmRSS after 200 requests and after all of
#      them differ by at most $RSS_SLACK_KB;
#   c. a lock a request left held (returned without releasing, or died of a
#      fatal error) is free at once for the next request of the same worker;
#   d. leadership won in one request lasts into the worker's next requests
#      (longer than its TTL: kept alive in the background) until it resigns;
#   e. a mirror loaded by one request is read by the next ones without a
#      server round trip (the proxy forwards no byte to the server for
#      them), and shows a change made meanwhile by etcdctl;
#   f. a service instance registered by one request is still registered in
#      the worker's later requests past its TTL (kept alive in the
#      background), and pick()'s round-robin goes on from one request to
#      the next.
# FPM_SERVER=etcd runs the same checks against a real etcd instead of synod
# (scripts/test runs both).
# Installs nothing: scripts/setup brings php8.2-fpm and libfcgi-bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
REQUESTS=${REQUESTS:-2000}
RSS_SLACK_KB=${RSS_SLACK_KB:-2048}
FPM=${FPM:-php-fpm8.2}
for tool in "$FPM" cgi-fcgi python3 etcdctl; do
  command -v "$tool" >/dev/null || { echo "fpm: $tool missing; run scripts/setup" >&2; exit 1; }
done

cargo build -q -p synod -p synod-php
work=$(mktemp -d)
pids=()
# php-fpm and the proxy go first: the worker's mirror keeps a watch stream
# open, and synod (unlike etcd) waits on SIGTERM for open streams to end.
master="" proxy=""
cleanup() {
  for p in $master $proxy; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  stop_servers
  rm -rf "$work"
}
trap cleanup EXIT
source scripts/lib.sh
fail() { echo "fpm: FAILED: $*" >&2; echo "-- php-fpm log:" >&2; cat "$work/fpm.log" "$work/fpm.out" >&2 2>/dev/null || true; exit 1; }

# A snapshot of the extension: a rebuild in the checkout meanwhile must not
# change the library under a running worker.
EXT="$work/libsynod.so"
cp target/debug/libsynod.so "$EXT"
scripts_dir="$PWD/php-tests/fpm"

FPM_SERVER=${FPM_SERVER:-synod}
case $FPM_SERVER in
  synod) start_server "$PWD/target/debug/synod" synod ;;
  etcd) start_server "$(command -v etcd)" etcd ;;
  *) echo "fpm: FPM_SERVER must be synod or etcd, not $FPM_SERVER" >&2; exit 2 ;;
esac
echo "fpm: against $FPM_SERVER"
python3 "$scripts_dir/proxy.py" "127.0.0.1:$port" "$work/proxy.port" >"$work/proxy.log" 2>&1 &
proxy=$!
pids+=("$proxy")
server_endpoint="127.0.0.1:$port"
for _ in $(seq 50); do [ -s "$work/proxy.port" ] && break; sleep 0.1; done
[ -s "$work/proxy.port" ] || fail "the proxy did not start: $(cat "$work/proxy.log")"
endpoint="127.0.0.1:$(cat "$work/proxy.port")"

sock="$work/fpm.sock"
cat >"$work/fpm.conf" <<EOF
[global]
pid = $work/fpm.pid
error_log = $work/fpm.log
daemonize = no

[synod]
listen = $sock
pm = static
pm.max_children = 1
pm.max_requests = 0
catch_workers_output = yes
EOF
root=(); [ "$(id -u)" -eq 0 ] && root=(-R)
"$FPM" -F -n -y "$work/fpm.conf" -d "extension=$EXT" -d display_errors=1 "${root[@]}" >"$work/fpm.out" 2>&1 &
master=$!
pids+=("$master")
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || fail "php-fpm did not start"
worker=""
for _ in $(seq 50); do worker=$(pgrep -P "$master" || true); [ -n "$worker" ] && break; sleep 0.1; done
[ -n "$worker" ] && [ "$(wc -w <<<"$worker")" -eq 1 ] || fail "expected one worker, found '${worker}'"

# req SCRIPT QUERY: one FastCGI request; prints the response (headers too).
req() {
  env -i PATH="$PATH" SCRIPT_FILENAME="$scripts_dir/$1" REQUEST_METHOD=GET QUERY_STRING="$2" \
    SYNOD_ENDPOINT="$endpoint" cgi-fcgi -bind -connect "$sock"
}
opened() { grep -c '^open' "$work/proxy.log" || true; }
# The bytes the proxy has forwarded to the server so far (asked with SIGUSR1).
bytes_up() {
  local n
  n=$(grep -c '^bytes' "$work/proxy.log" || true)
  kill -USR1 "$proxy"
  for _ in $(seq 100); do
    [ "$(grep -c '^bytes' "$work/proxy.log" || true)" -gt "$n" ] && break
    sleep 0.05
  done
  grep '^bytes' "$work/proxy.log" | tail -1 | sed -E 's/.*up=([0-9]+).*/\1/'
}
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$worker/status"; }

out=$(req putget.php n=0)
[[ $out == *"OK 0 pid=$worker"* ]] || fail "warm-up request: $out"
warm=$(opened)
[ "$warm" -ge 1 ] || fail "the warm-up request opened no connection through the proxy"
echo "fpm: worker $worker; the warm-up request opened $warm connection(s)"

rss_200=""
t0=$(date +%s.%N)
for i in $(seq 1 "$REQUESTS"); do
  out=$(req putget.php "n=$i")
  [[ $out == *"OK $i pid=$worker"* ]] || fail "request $i: $out"
  [ "$i" -eq 200 ] && rss_200=$(rss_kb)
done
t1=$(date +%s.%N)
rss_end=$(rss_kb)
after=$(opened)
[ "$(pgrep -P "$master")" = "$worker" ] || fail "the worker was replaced during the run"
echo "fpm: $REQUESTS requests (new Synod\\Client, put, get) in $(awk "BEGIN {printf \"%.1f\", $t1 - $t0}") s"
echo "fpm: connections the server saw opened: $warm after the warm-up, $after after $REQUESTS more requests"
echo "fpm: worker RSS: $rss_200 kB after 200 requests, $rss_end kB after $REQUESTS ($((rss_end - rss_200)) kB)"
[ "$after" -eq "$warm" ] || fail "connections not reused: $((after - warm)) opened during $REQUESTS requests"
[ $((rss_end - rss_200)) -le "$RSS_SLACK_KB" ] ||
  fail "worker RSS grew by $((rss_end - rss_200)) kB between request 200 and $REQUESTS (limit $RSS_SLACK_KB kB)"

# c. A lock left held by one request is free for the next.
out=$(req lock.php "step=forget&name=fpm-forgotten")
[[ $out == *"pid=$worker HELD"* ]] || fail "lock request 1 (acquire, return without release): $out"
out=$(req lock.php "step=check&name=fpm-forgotten")
[[ $out == *"pid=$worker FREE"* ]] || fail "lock request 2 (tryAcquire after a forgotten lock): $out"
echo "fpm: a lock a request returned without releasing: the next request's tryAcquire(): ${out##*pid=$worker }"
out=$(req lock.php "step=fatal&name=fpm-fatal")
[[ $out == *"pid=$worker HELD"* && $out == *"no_such_function"* ]] ||
  fail "lock request 3 (acquire, then a fatal error): $out"
out=$(req lock.php "step=check&name=fpm-fatal")
[[ $out == *"pid=$worker FREE"* ]] || fail "lock request 4 (tryAcquire after a fatal error): $out"
echo "fpm: a lock held at a fatal error: the next request's tryAcquire(): ${out##*pid=$worker }"
[ "$(pgrep -P "$master")" = "$worker" ] || fail "the worker was replaced during the lock requests"

# f. (registered now, checked after d's wait past the TTL)
out=$(req services.php step=register)
[[ $out == *"pid=$worker REGISTERED"* ]] || fail "services request 1 (register): $out"

# d. An election won by one request is still the worker's in later ones.
out=$(req election.php "step=campaign&name=fpm-election")
[[ $out == *"pid=$worker LEADING"* ]] || fail "election request 1 (campaign): $out"
sleep 6 # past the 5 s TTL: only the background keep-alive keeps it
out=$(req election.php "step=check&name=fpm-election")
[[ $out == *"pid=$worker LEADER value=worker-$worker"* ]] ||
  fail "election request 2 (the next request, after the TTL): $out"
out=$(req election.php "step=resign&name=fpm-election")
[[ $out == *"pid=$worker RESIGNED"* ]] || fail "election request 3 (resign): $out"
out=$(req election.php "step=check&name=fpm-election")
[[ $out == *"pid=$worker NOT-LEADER value=none"* ]] || fail "election request 4 (after resign): $out"
echo "fpm: leadership won in one request: still the worker's in the next one 6 s later (TTL 5 s), gone after resign()"

# f. The instance registered before d is still there, 6 s later (TTL 5 s).
out=$(req services.php step=check)
[[ $out == *"pid=$worker INSTANCES worker:$worker"* ]] || fail "services request 2 (the instances, after the TTL): $out"
ETCDCTL_API=3 etcdctl --endpoints="$server_endpoint" put synod/services/fpm-svc/other \
  '{"address":"127.0.0.1","port":9001}' >/dev/null
first=$(req services.php step=pick)
second=$(req services.php step=pick)
[[ $first == *"pid=$worker PICKED "* && $second == *"pid=$worker PICKED "* ]] || fail "services pick requests: $first / $second"
picks="${first##*PICKED } ${second##*PICKED }"
[ "$picks" = "other worker" ] || [ "$picks" = "worker other" ] ||
  fail "round-robin did not go on across requests: picked $picks"
out=$(req services.php step=deregister)
[[ $out == *"pid=$worker DEREGISTERED left=1"* ]] || fail "services request (deregister): $out"
echo "fpm: an instance registered in one request: still registered in the next one 6 s later (TTL 5 s); two requests' pick(): $picks"

# e. A mirror loaded by one request is read by the next without a round trip.
out=$(req mirror.php step=load)
[[ $out == *"pid=$worker LOADED value=hello"* ]] || fail "mirror request 1 (load): $out"
reads_without_traffic() {
  local before after i
  before=$(bytes_up)
  for i in 1 2 3 4 5; do
    out=$(req mirror.php step=read)
    [[ $out == *"pid=$worker READ value=$1"* ]] || fail "mirror read request $i: $out"
  done
  after=$(bytes_up)
  echo "$((after - before))"
}
sent=$(reads_without_traffic hello)
# An HTTP/2 keep-alive ping (17 bytes, after 30 s idle) may fall in the
# window once; two windows in a row cannot both hold one.
[ "$sent" -eq 0 ] || sent=$(reads_without_traffic hello)
[ "$sent" -eq 0 ] || fail "mirror reads in later requests sent $sent bytes to the server"
before=$(bytes_up)
out=$(req mirror.php step=get)
[[ $out == *"pid=$worker GET value=hello"* ]] || fail "get request: $out"
get_bytes=$(($(bytes_up) - before))
[ "$get_bytes" -gt 0 ] || fail "the proxy saw no bytes for a Client::get(): the byte count proves nothing"
echo "fpm: a mirror loaded in one request: 5 later requests read it with 0 bytes sent to the server (one Client::get(): $get_bytes bytes)"
ETCDCTL_API=3 etcdctl --endpoints="$server_endpoint" put fpm-mirror/greeting bonjour >/dev/null
for _ in $(seq 50); do
  out=$(req mirror.php step=read)
  [[ $out == *"READ value=bonjour"* ]] && break
  sleep 0.1
done
[[ $out == *"pid=$worker READ value=bonjour"* ]] || fail "the mirror did not show etcdctl's change: $out"
echo "fpm: a change etcdctl made meanwhile: in the mirror of the worker's next requests"

total=$(opened)
echo "fpm: summary: $((REQUESTS + 1)) put/get requests, connections the server saw opened: $after" \
  "(all requests: $total), worker RSS $rss_200 kB -> $rss_end kB, locks left held: freed for the next request," \
  "leadership: kept across requests, mirror: read across requests without a round trip," \
  "service registration: kept across requests"
