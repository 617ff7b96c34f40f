#!/usr/bin/env bash
# Runs the .phpt suite under valgrind's memcheck (run-tests.php -m, which sets
# USE_ZEND_ALLOC=0 so every PHP allocation is seen), against a fresh synod and
# then a fresh etcd (or only the servers named as arguments: `synod`, `etcd`).
#
# Fails on any memory error valgrind reports: invalid reads and writes, use of
# uninitialised values ("Conditional jump or move depends on..."), bad frees,
# syscalls given unaddressable or uninitialised memory. Leaks are not checked:
# the tokio runtime, its threads and the cached connections live for the whole
# process by design and are never freed (see php-ext/src/runtime.rs).
#
# Every traced process (the test's PHP, and the PHP processes a test starts,
# forked or exec'd) writes a full valgrind log; each one's "ERROR SUMMARY"
# line is printed per test and added up. Go binaries a test may start
# (etcdctl) are not traced: valgrind does not support Go's runtime.
#
# A test that fails under valgrind fails the run too. PHP runs many times
# slower there; tests see SYNOD_VALGRIND=1 in their environment, so a
# test that depends on timing can allow for it. PHPT="013-signals ..." runs
# only the tests named.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind missing; run scripts/setup" >&2; exit 1; }
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(synod etcd)

cargo build -q -p synod -p synod-php
work=$(mktemp -d)
pids=()
cleanup() { stop_servers; rm -rf "$work"; }
trap cleanup EXIT
source scripts/lib.sh
RUN_TESTS=$(run_tests_php)

# Snapshots, so that a rebuild or a test run in the checkout meanwhile does
# not change what runs here: the extension, and the tests (run-tests.php
# writes its .php/.out/.mem files next to each test).
EXT="$work/libsynod.so"
cp target/debug/libsynod.so "$EXT"
mkdir -p "$work/php-tests" "$work/bin"
cp -r php-tests/tests "$work/php-tests/tests"
# 033 runs the fpm test's TCP proxy.
cp -r php-tests/fpm "$work/php-tests/fpm"
ln -s "$PWD/examples" "$work/examples"

# run-tests.php calls `valgrind -q --tool=memcheck ... --log-file=TEST.mem CMD`
# through the shell. This `valgrind`, first on PATH, drops -q so each process
# logs its ERROR SUMMARY into a log of its own (%p), and copies the logs of
# the processes that had errors into TEST.mem, which run-tests.php then
# reports as LEAK (its word for "valgrind said something").
cat >"$work/bin/valgrind" <<'EOF'
#!/usr/bin/env bash
mem=""; opts=()
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do
  case "$1" in
    -q) ;;
    --log-file=*) mem=${1#--log-file=} ;;
    *) opts+=("$1") ;;
  esac
  shift
done
[ -n "$mem" ] || exec /usr/bin/valgrind "${opts[@]}" "$@"
name=$(basename "$mem" .mem)
/usr/bin/valgrind "${opts[@]}" --log-file="$VG_LOGS/$name.%p.log" \
  --leak-check=no --error-limit=no --num-callers=40 --suppressions="$VG_SUPP" \
  --trace-children-skip='*/etcdctl,*/etcd,*/synod,*/python3*' "$@"
rc=$?
for f in "$VG_LOGS/$name".*.log; do
  [ -e "$f" ] || continue
  grep -qE 'ERROR SUMMARY: [1-9]' "$f" && cat "$f" >>"$mem"
done
exit $rc
EOF
chmod +x "$work/bin/valgrind"

tests=()
for t in ${PHPT:-}; do tests+=("$work/php-tests/tests/${t%.phpt}.phpt"); done
[ ${#tests[@]} -gt 0 ] || tests=("$work"/php-tests/tests/*.phpt)

status=0
started=$(date +%s)
for server in "${servers[@]}"; do
  bin=$([ "$server" = etcd ] && command -v etcd || echo "$PWD/target/debug/synod")
  start_server "$bin" "$server"; cp=$port
  start_server "$bin" "$server-victim"; vp=$port; vpid=$spid
  logs="$work/vg-$server"; mkdir -p "$logs"
  rm -f "$work"/php-tests/tests/*.mem
  echo "== phpt under valgrind against $server (127.0.0.1:$cp)"
  t0=$(date +%s)
  PATH="$work/bin:$PATH" SYNOD_VALGRIND=1 VG_LOGS="$logs" VG_SUPP="$PWD/php-tests/valgrind.supp" \
    SYNOD_EXT="$EXT" SYNOD_ENDPOINT="127.0.0.1:$cp" SYNOD_VICTIM_ENDPOINT="127.0.0.1:$vp" SYNOD_VICTIM_PID="$vpid" \
    NO_INTERACTION=1 REPORT_EXIT_STATUS=1 TEST_PHP_EXECUTABLE="$(command -v php)" \
    php "$RUN_TESTS" -q -m --show-diff --show-mem -d "extension=$EXT" -d pcre.jit=0 "${tests[@]}" \
    >"$work/$server.out" 2>&1 || true
  t1=$(date +%s)
  grep -E '^(PASS|FAIL|SKIP|LEAK|BORK|WARN)|^Tests |^Number of tests|^Time taken' "$work/$server.out" || true

  # Per test: the ERROR SUMMARY of every process it ran, added up.
  echo "-- valgrind, per test ($server)"
  total_err=0; total_ctx=0; total_procs=0
  for t in "${tests[@]}"; do
    name=$(basename "$t" .phpt)
    shopt -s nullglob; tlogs=("$logs/$name".*.log); shopt -u nullglob
    [ ${#tlogs[@]} -gt 0 ] || { echo "$name: no valgrind log (skipped?)"; status=1; continue; }
    read -r e c < <(grep -h 'ERROR SUMMARY:' "${tlogs[@]}" |
      sed -E 's/.*ERROR SUMMARY: ([0-9,]+) errors? from ([0-9,]+) contexts?.*/\1 \2/; s/,//g' |
      awk '{e+=$1; c+=$2} END {print e+0, c+0}')
    n=$( (grep -l 'ERROR SUMMARY:' "${tlogs[@]}" || true) | wc -l)
    if [ "$n" -lt ${#tlogs[@]} ]; then
      # A process that died (or was killed) before valgrind could summarise.
      echo "$name: $((${#tlogs[@]} - n)) of ${#tlogs[@]} processes ended without an ERROR SUMMARY"
    fi
    printf '%-24s ERROR SUMMARY: %d errors from %d contexts (%d processes)\n' "$name" "$e" "$c" "${#tlogs[@]}"
    total_err=$((total_err + e)); total_ctx=$((total_ctx + c)); total_procs=$((total_procs + ${#tlogs[@]}))
  done
  echo "-- $server total: ERROR SUMMARY: $total_err errors from $total_ctx contexts in $total_procs processes; $((t1 - t0)) s"

  # The .mem files run-tests.php left: the error kinds, by count.
  shopt -s nullglob; mems=("$work"/php-tests/tests/*.mem); shopt -u nullglob
  if [ ${#mems[@]} -gt 0 ] || [ "$total_err" -gt 0 ]; then
    echo "valgrind: memory errors against $server:" >&2
    for m in "${mems[@]}"; do
      echo "  $(basename "$m"):" >&2
      grep -hE '^==[0-9]+== [A-Z][a-z]' "$m" | sed -E 's/^==[0-9]+== //' |
        grep -E '^(Invalid|Conditional|Use of|Syscall param|Mismatched|Source and destination|Argument|Jump to)' |
        sed -E 's/ of size [0-9]+//' | sort | uniq -c | sed 's/^/    /' >&2
      cp "$m" "$PWD/php-tests/valgrind-$server-$(basename "$m")" 2>/dev/null || true
    done
    echo "  (full logs copied to php-tests/valgrind-$server-*.mem)" >&2
    status=1
  fi
  # Anything other than PASS/SKIP/LEAK is a test failing under valgrind.
  if grep -qE '^Tests (failed|borked|warned) +: +[1-9]' "$work/$server.out"; then
    echo "valgrind: tests failed under valgrind against $server; run-tests.php said:" >&2
    sed -n '/^FAILED TEST SUMMARY/,/^=====*$/p' "$work/$server.out" >&2 || true
    for d in "$work"/php-tests/tests/*.diff; do
      [ -e "$d" ] && { echo "-- $(basename "$d"):" >&2; cat "$d" >&2; }
    done
    status=1
  fi
  stop_servers
done
echo "valgrind: $(($(date +%s) - started)) s in all"
exit $status
