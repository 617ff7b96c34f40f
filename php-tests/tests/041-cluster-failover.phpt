--TEST--
Synod\Client with three members: the leader is killed during a watch and a background lease keep-alive; writes go on through the others, the watch goes on without a gap or a repeat, the lease stays alive
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
if (!function_exists('proc_open')) die('skip proc_open');
?>
--FILE--
<?php
// No microtime, usleep or sleep calls: run-tests.php retries a failed test
// that makes them (see 010). gettimeofday and time_nanosleep do instead.
function pause(float $s): void { time_nanosleep((int) $s, (int) (fmod($s, 1) * 1e9)); }

function free_port(): int {
    $s = stream_socket_server('tcp://127.0.0.1:0');
    $port = (int) substr(strrchr(stream_socket_get_name($s, false), ':'), 1);
    fclose($s);
    return $port;
}

$kind = getenv('SYNOD_SERVER') === 'etcd' ? 'etcd' : 'synod';
$bin = $kind === 'etcd' ? 'etcd' : realpath(__DIR__ . '/../../target/debug/synod');
$dir = sys_get_temp_dir() . '/phpt-cluster-' . getmypid();
@mkdir($dir);
$ports = [];
for ($i = 0; $i < 3; $i++) $ports[] = [free_port(), free_port()];
$initial = implode(',', array_map(fn($i) => "m$i=http://127.0.0.1:{$ports[$i][1]}", [0, 1, 2]));
$procs = [];
foreach ([0, 1, 2] as $i) {
    [$cp, $pp] = $ports[$i];
    $cmd = [$bin, "--name=m$i", "--data-dir=$dir/m$i", "--initial-cluster=$initial",
        "--listen-client-urls=http://127.0.0.1:$cp", "--advertise-client-urls=http://127.0.0.1:$cp",
        "--listen-peer-urls=http://127.0.0.1:$pp", "--initial-advertise-peer-urls=http://127.0.0.1:$pp"];
    $procs[$i] = proc_open($cmd, [0 => ['file', '/dev/null', 'r'], 1 => ['file', "$dir/m$i.log", 'w'], 2 => ['file', "$dir/m$i.log", 'w']], $pipes);
}
$eps = array_map(fn($p) => "127.0.0.1:{$p[0]}", $ports);
register_shutdown_function(function () use ($procs, $dir) {
    foreach ($procs as $p) { @proc_terminate($p, 9); @proc_close($p); }
    exec('rm -rf ' . escapeshellarg($dir));
});

// Wait until all three agree on a leader.
$leader = null;
$deadline = gettimeofday(true) + 20;
while ($leader === null && gettimeofday(true) < $deadline) {
    $seen = [];
    foreach ($eps as $i => $ep) {
        try {
            $s = (new Synod\Client($ep, connect_timeout: 0.3, request_timeout: 0.5))->status();
            $seen[$i] = $s;
        } catch (Synod\Exception\SynodException $e) {}
    }
    if (count($seen) === 3 && count(array_unique(array_column($seen, 'leader'))) === 1) {
        foreach ($seen as $i => $s) if ($s['memberId'] === $s['leader']) $leader = $i;
    }
    if ($leader === null) pause(0.2);
}
echo "leader elected: ", var_export($leader !== null, true), "\n";

// The leader first, so the watch and the keep-alives run through the member
// that is killed.
$ordered = array_values(array_merge([$eps[$leader]], array_diff_key($eps, [$leader => 1])));
$c = new Synod\Client($ordered, connect_timeout: 0.5, request_timeout: 3.0);
// Renewed every TTL/3; a TTL of a few seconds has to cover the election
// and the move to another member (etcd's and synod's clients both give a
// lease up once a whole TTL passed without an answer).
$lease = $c->lease(5);
$c->put('fo/leased', 'x', $lease->id);
$w = $c->watch('fo/n/', prefix: true);
$from = $w->revision;

function put_until_acked(Synod\Client $c, string $k, string $v): int {
    for ($attempt = 1; ; $attempt++) {
        try { $c->put($k, $v); return $attempt; }
        catch (Synod\Exception\SynodException $e) { if ($attempt >= 30) throw $e; pause(0.2); }
    }
}
for ($i = 1; $i <= 5; $i++) put_until_acked($c, "fo/n/$i", "$i");
proc_terminate($procs[$leader], 9);
$killed = gettimeofday(true);
$retries = 0;
for ($i = 6; $i <= 20; $i++) $retries += put_until_acked($c, "fo/n/$i", "$i") - 1;
echo "writes after the kill acknowledged within 10 s: ", var_export(gettimeofday(true) - $killed < 10, true), "\n";

// The watch delivers every write once, in revision order.
$events = [];
$deadline = gettimeofday(true) + 15;
while (count(array_unique(array_map(fn($e) => $e->key, $events))) < 20 && gettimeofday(true) < $deadline) {
    foreach ($w->wait(1) as $e) $events[] = $e;
}
$revs = array_map(fn($e) => $e->revision, $events);
$sorted = $revs; sort($sorted);
echo "events in order, none repeated: ", var_export($revs === $sorted && count(array_unique($revs)) === count($revs), true), "\n";
$keys = array_unique(array_map(fn($e) => $e->key, $events));
echo "every write seen: ", count($keys), "\n";
// The same history, replayed from the start by a fresh watch on a survivor.
$replay = $c->watch('fo/n/', prefix: true, start_revision: $from + 1);
$again = [];
$deadline = gettimeofday(true) + 10;
while (count($again) < count($events) && gettimeofday(true) < $deadline) {
    foreach ($replay->wait(1) as $e) $again[] = $e;
}
$pairs = fn($es) => array_map(fn($e) => $e->key . '@' . $e->revision, $es);
echo "same as a replay: ", var_export($pairs($events) === array_slice($pairs($again), 0, count($events)), true), "\n";

// The lease outlives two of its TTLs after the kill.
while (gettimeofday(true) - $killed < 11) pause(0.5);
echo "lease kept alive: ", var_export($lease->isKeptAlive(), true), "\n";
echo "leased key: ", var_export($c->get('fo/leased'), true), "\n";
?>
--EXPECT--
leader elected: true
writes after the kill acknowledged within 10 s: true
events in order, none repeated: true
every write seen: 20
same as a replay: true
lease kept alive: true
leased key: 'x'
