--TEST--
Synod\ServiceRegistry: 50 instances registered by separate processes, 10 killed with SIGKILL: instances() drops them within TTL + 1 s and a concurrent watch() sees each removal; the rest, ending normally, are gone at once; etcdctl sees the documented layout
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)');
if (!function_exists('posix_kill')) die('skip posix');
exec('command -v etcdctl', $out, $rc);
if ($rc !== 0) die('skip etcdctl not on PATH');
?>
--FILE--
<?php
$php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SYNOD_EXT')];
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$name = 'phpt-kill-' . bin2hex(random_bytes(4));
$p = "synod/services/$name/";
$s = $c->services($name);
// Under valgrind PHP runs many times slower: fewer processes, a longer TTL.
define('N', getenv('SYNOD_VALGRIND') ? 10 : 50);
define('KILLED', N / 5);
define('TTL', getenv('SYNOD_VALGRIND') ? 5 : 2);

/** Waits up to $timeout seconds for events of $w until $done says so. */
function collect(Synod\ServiceWatch $w, callable $done, float $timeout): array
{
    $got = [];
    $until = microtime(true) + $timeout;
    while (!$done($got) && ($left = $until - microtime(true)) > 0) {
        array_push($got, ...$w->wait($left));
    }
    return $got;
}

$w = $s->watch();
$child = <<<'PHP'
[, $ep, $name, $n, $ttl] = $argv;
$s = (new Synod\Client($ep))->services($name);
$s->register(sprintf('i-%02d', $n), "10.1.0.$n", 8000 + (int) $n, ['pid' => getmypid(), 'zone' => 'z' . $n % 3], ttl: (int) $ttl);
echo "ready\n";
fgets(STDIN);
PHP;
$procs = $pipes = $pids = [];
$t = microtime(true);
for ($n = 0; $n < N; $n++) {
    $procs[$n] = proc_open([...$php, '-r', $child, $ep, $name, $n, TTL],
        [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes[$n]);
    $pids[$n] = proc_get_status($procs[$n])['pid'];
}
$ready = 0;
foreach ($pipes as $n => $pp) {
    $ready += fgets($pp[1]) === "ready\n" ? 1 : 0;
}
$started = microtime(true) - $t;
var_dump($ready === N, count($s->instances()) === N);
$added = collect($w, fn($got) => count($got) >= N, 10);
$ids = array_map(fn($e) => "$e->type {$e->instance->id}", $added);
sort($ids);
var_dump($ids === array_map(fn($n) => sprintf('added i-%02d', $n), range(0, N - 1)));

echo "-- the layout etcdctl sees\n";
exec('ETCDCTL_API=3 etcdctl --endpoints=' . escapeshellarg($ep) . ' get --prefix ' . escapeshellarg($p), $lines, $rc);
var_dump($rc, count($lines) === 2 * N);
$layout = true;
for ($i = 0; $i + 1 < count($lines); $i += 2) {
    $n = $i / 2;
    $id = sprintf('i-%02d', $n);
    $want = ['id' => $id, 'address' => "10.1.0.$n", 'port' => 8000 + $n, 'meta' => ['pid' => $pids[$n], 'zone' => 'z' . $n % 3]];
    // Keys sort by id; values are JSON objects with exactly these fields, in this order.
    $layout = $layout && $lines[$i] === "$p$id" && json_decode($lines[$i + 1], true) === $want
        && $lines[$i + 1] === json_encode($want);
}
var_dump($layout);

echo "-- kill -9\n";
$victims = [];
$sent = 0;
for ($n = 0; $n < N; $n += 5) {
    $victims[] = sprintf('i-%02d', $n);
    // Fails if the process had already gone.
    $sent += posix_kill($pids[$n], 9) ? 1 : 0;
}
$killedAt = microtime(true);
$survivors = array_values(array_diff(array_map(fn($n) => sprintf('i-%02d', $n), range(0, N - 1)), $victims));
// instances() as a client sees it, asked every 50 ms.
do {
    $left = array_map(fn($i) => $i->id, $s->instances());
    $dropped = microtime(true) - $killedAt;
    if (count($left) <= N - KILLED) {
        break;
    }
    usleep(50000);
} while ($dropped < TTL + 10);
var_dump($sent === KILLED, $left === $survivors);
var_dump($dropped <= TTL + (getenv('SYNOD_VALGRIND') ? 10 : 1));
$removed = collect($w, fn($got) => count($got) >= KILLED, 5);
$gone = array_map(fn($e) => "$e->type {$e->instance->id}", $removed);
sort($gone);
var_dump($gone === array_map(fn($id) => "removed $id", $victims));
// A removal carries the instance as it was.
var_dump($removed[0]->instance->address === '10.1.0.' . (int) substr($removed[0]->instance->id, 2));

echo "-- the rest end normally\n";
foreach ($survivors as $id) {
    fclose($pipes[(int) substr($id, 2)][0]);
}
$codes = [];
foreach ($procs as $n => $proc) {
    $err = stream_get_contents($pipes[$n][2]);
    if ($err !== '') {
        echo "i-$n: $err";
    }
    $codes[proc_close($proc)][] = $n;
}
$ended = microtime(true) - $killedAt;
// Revoked at exit: gone now, not one TTL later.
var_dump(count($codes[0]) === N - KILLED, count($codes[9]) === KILLED, $s->instances());
$rest = collect($w, fn($got) => count($got) >= N - KILLED, 5);
var_dump(count($rest) === N - KILLED, array_unique(array_map(fn($e) => $e->type, $rest)));

$server = getenv('SYNOD_SERVER') ?: $ep;
file_put_contents(sys_get_temp_dir() . '/synod-phpt-figures.log', sprintf(
    "%s: services: %d processes registered in %.2f s; %d killed -9 were dropped from instances() %.2f s after the kill (TTL %d s); the other %d ended normally, all gone %.2f s after the kill\n",
    $server, N, $started, KILLED, $dropped, TTL, N - KILLED, $ended), FILE_APPEND);
$c->deletePrefix($p);
?>
--EXPECT--
bool(true)
bool(true)
bool(true)
-- the layout etcdctl sees
int(0)
bool(true)
bool(true)
-- kill -9
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
-- the rest end normally
bool(true)
bool(true)
array(0) {
}
bool(true)
array(1) {
  [0]=>
  string(7) "removed"
}
