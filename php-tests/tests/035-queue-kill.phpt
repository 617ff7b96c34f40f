--TEST--
Synod\Queue: 4 worker processes drain 2,000 jobs while one is killed with SIGKILL in the middle of a job: every job is acknowledged exactly once, none is lost, and the killed worker's job is delivered again after its visibility timeout
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)');
if (!function_exists('posix_kill')) die('skip posix');
?>
--FILE--
<?php
$php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SYNOD_EXT')];
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$name = 'phpt/drain-' . bin2hex(random_bytes(4));
$q = $c->queue($name);
// Under valgrind PHP runs many times slower: a tenth of the jobs.
define('JOBS', getenv('SYNOD_VALGRIND') ? 200 : 2000);
define('VICTIM_STOPS_AT', JOBS / 40 * 3);
const VISIBILITY = 3;

$t = gettimeofday(true);
for ($i = 0; $i < JOBS; $i++) {
    $q->push("job-$i");
}
$pushed = gettimeofday(true) - $t;
var_dump($q->size() === JOBS);

// Each worker appends what it does to its own file, one write per line, so
// the record survives a kill: "claim JOB ATTEMPTS TIME" before the work,
// "ack JOB" once ack() returned. The victim stops in the middle of its
// 150th job (15th under valgrind; claimed, not acknowledged) until it is
// killed.
$worker = <<<'PHP'
[, $ep, $name, $out, $role] = $argv;
$q = (new Synod\Client($ep))->queue($name);
$f = fopen($out, 'a');
$n = 0;
while (true) {
    $job = $q->claim(1.0, visibility: (int) getenv('VISIBILITY'));
    if ($job === null) {
        if ($q->size() === 0) {
            break;
        }
        continue;
    }
    fwrite($f, sprintf("claim %s %d %.3f\n", $job->payload, $job->attempts, gettimeofday(true)));
    if ($role === 'victim' && ++$n === (int) getenv('VICTIM_STOPS_AT')) {
        echo "holding $job->payload\n";
        fgets(STDIN);
    }
    try {
        $job->ack();
        fwrite($f, "ack $job->payload\n");
    } catch (Synod\Exception\JobLostException $e) {
        fwrite($f, "lost $job->payload\n");
    }
}
PHP;
$dir = sys_get_temp_dir() . '/synod-' . basename($name);
@mkdir($dir);
$procs = $pipes = [];
$t = gettimeofday(true);
for ($w = 0; $w < 4; $w++) {
    $procs[$w] = proc_open([...$php, '-r', $worker, $ep, $name, "$dir/w$w", $w === 0 ? 'victim' : 'worker'],
        [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['file', "$dir/w$w.err", 'a']], $pipes[$w], null, ['VISIBILITY' => VISIBILITY, 'VICTIM_STOPS_AT' => VICTIM_STOPS_AT]);
}
$held = trim(substr(fgets($pipes[0][1]), strlen('holding ')));
$killedAt = gettimeofday(true);
var_dump(posix_kill(proc_get_status($procs[0])['pid'], 9));
$codes = [];
foreach ($procs as $w => $p) {
    $codes[] = proc_close($p);
}
$drained = gettimeofday(true) - $t;
echo "exit codes: ", implode(' ', $codes), "\n";

$acks = $claims = $lost = [];
$perWorker = [];
foreach (range(0, 3) as $w) {
    foreach (file("$dir/w$w", FILE_IGNORE_NEW_LINES) as $line) {
        $f = explode(' ', $line);
        if ($f[0] === 'claim') {
            $claims[$f[1]][] = [$w, (int) $f[2], (float) $f[3]];
        } elseif ($f[0] === 'ack') {
            $acks[$f[1]] = ($acks[$f[1]] ?? 0) + 1;
            $perWorker[$w] = ($perWorker[$w] ?? 0) + 1;
        } else {
            $lost[] = $f[1];
        }
    }
    echo stream_get_contents(fopen("$dir/w$w.err", 'r'));
}
$twice = count(array_filter($acks, fn($n) => $n > 1));
$never = 0;
for ($i = 0; $i < JOBS; $i++) {
    $never += isset($acks["job-$i"]) ? 0 : 1;
}
echo "acked: ", count($acks) === JOBS ? 'every job' : count($acks), ", twice: $twice, never: $never\n";
// The job the victim held was claimed again by another worker, as its
// second delivery, once the visibility timeout had run out.
$again = array_values(array_filter($claims[$held], fn($c) => $c[0] !== 0));
var_dump(count($claims[$held]), $again[0][1], $acks[$held]);
$comeback = $again[0][2] - $killedAt;
var_dump($comeback >= VISIBILITY - 1.5, $comeback <= VISIBILITY + (getenv('SYNOD_VALGRIND') ? 60 : 5));
// Every surviving worker took part; the victim's acks all count.
var_dump(count($perWorker) === 4, $perWorker[0] === VICTIM_STOPS_AT - 1);
var_dump($q->size(), $q->stats()['dead'], $c->countPrefix("$name/"));

$redelivered = 0;
foreach ($claims as $list) {
    $redelivered += count($list) - 1;
}
$server = getenv('SYNOD_SERVER') ?: $ep;
file_put_contents(sys_get_temp_dir() . '/synod-phpt-figures.log', sprintf(
    "%s: queue drain: %d jobs pushed in %.2f s; 4 workers (one killed -9 mid-job) drained them in %.2f s; acked per worker %s; %d deliveries repeated (%d lost acks); the killed worker's job came back after %.2f s (visibility %d s)\n",
    $server, JOBS, $pushed, $drained, json_encode(array_values($perWorker)), $redelivered, count($lost), $comeback, VISIBILITY), FILE_APPEND);
array_map('unlink', glob("$dir/*"));
rmdir($dir);
?>
--EXPECT--
bool(true)
bool(true)
exit codes: 9 0 0 0
acked: every job, twice: 0, never: 0
int(2)
int(2)
int(1)
bool(true)
bool(true)
bool(true)
bool(true)
int(0)
int(0)
int(0)
