--TEST--
examples/: the run-once cron job (one of two concurrent runs does the job, the other skips) and the leader-elected scheduler (one leads, the other takes over when it resigns)
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)'); ?>
--FILE--
<?php
$php = PHP_BINARY . ' -n -d extension=' . escapeshellarg(getenv('SYNOD_EXT'));
$ep = escapeshellarg(getenv('SYNOD_ENDPOINT'));
$dir = __DIR__ . '/../../examples';
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));

echo "-- cron-once: two hosts at once, one runs the job\n";
// The first run's job lasts long enough for the second (slow to start
// under valgrind) to find the lock taken.
$job = getenv('SYNOD_VALGRIND') ? 20 : 3;
$first = proc_open("$php $dir/cron-once.php $ep $job", [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $p1);
echo preg_replace('/token \d+/', 'token N', fgets($p1[1])); // it holds the lock now
exec("$php $dir/cron-once.php $ep 3 2>&1", $out, $rc);
echo implode("\n", $out), "\n";
var_dump($rc);
echo preg_replace('/by \S+/', 'by HOST', stream_get_contents($p1[1])), stream_get_contents($p1[2]);
var_dump(proc_close($first));
// Nobody holds it now: the next run does the job.
exec("$php $dir/cron-once.php $ep 0 2>&1", $out2, $rc);
echo preg_replace(['/token \d+/', '/by \S+/'], ['token N', 'by HOST'], implode("\n", $out2)), "\n";
var_dump($c->countPrefix('cron/nightly-report/'));

echo "-- leader: one of two schedulers leads, then hands over\n";
// One leads long enough for two (slow to start under valgrind) to see it.
$rounds = getenv('SYNOD_VALGRIND') ? 20 : 3;
$one = proc_open("$php $dir/leader.php $ep one $rounds", [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $po);
echo fgets($po[1]); // leading
$two = proc_open("$php $dir/leader.php $ep two 1", [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pt);
echo preg_replace('/one: scheduling round ([4-9]|1\d|20)\n/', '', stream_get_contents($po[1])), stream_get_contents($po[2]);
var_dump(proc_close($one));
// While waiting, two reports who leads (one, with its progress); how many
// times depends on timing, so such lines are shown once.
$lines = explode("\n", trim(stream_get_contents($pt[1])));
$shown = [];
foreach ($lines as $l) {
    $l = preg_replace('/the leader is one.*/', 'the leader is one…', $l);
    if (!in_array($l, $shown, true)) {
        $shown[] = $l;
    }
}
echo implode("\n", $shown), "\n", stream_get_contents($pt[2]);
var_dump(proc_close($two));
var_dump($c->countPrefix('schedulers/'));
?>
--EXPECT--
-- cron-once: two hosts at once, one runs the job
running the job (fencing token N)
skipped: another host is running the job
int(0)
done: report by HOST
int(0)
running the job (fencing token N)
done: report by HOST
int(0)
-- leader: one of two schedulers leads, then hands over
one: leading
one: scheduling round 1
one: scheduling round 2
one: scheduling round 3
one: resigned
int(0)
two: the leader is one…
two: leading
two: scheduling round 1
two: resigned
int(0)
int(0)
