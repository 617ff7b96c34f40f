--TEST--
examples/: the queue producer and worker (priority first, a delayed job, a failing job retried with backoff and dead-lettered), and two workers sharing the work with each job done once
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)'); ?>
--FILE--
<?php
$php = PHP_BINARY . ' -n -d extension=' . escapeshellarg(getenv('SYNOD_EXT'));
$ep = escapeshellarg(getenv('SYNOD_ENDPOINT'));
$dir = __DIR__ . '/../../examples';
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$c->deletePrefix('thumbnails/');

echo "-- one worker\n";
exec("$php $dir/producer.php $ep 3 2>&1", $out, $rc);
echo implode("\n", $out), "\n";
var_dump($rc);
exec("$php $dir/worker.php $ep 1 2>&1", $lines, $rc);
// The delayed job comes 1.5 s after the push: among the retries of the
// failing one on a fast machine, after them on a slow one.
$delayed = array_search('made reminder.jpg', $lines, true);
var_dump($delayed !== false);
unset($lines[$delayed]);
echo implode("\n", $lines), "\n";
var_dump($rc, $c->countPrefix('thumbnails/ready/'), $c->countPrefix('thumbnails/dead/'));

echo "-- two workers share the work\n";
$c->deletePrefix('thumbnails/');
exec("$php $dir/producer.php $ep 20 2>&1", $out2, $rc);
echo implode("\n", $out2), "\n";
$workers = [];
foreach ([1, 2] as $w) {
    $workers[$w] = proc_open("$php $dir/worker.php $ep 2", [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes[$w]);
}
$made = [];
$failed = $shares = 0;
foreach ($workers as $w => $p) {
    $text = stream_get_contents($pipes[$w][1]) . stream_get_contents($pipes[$w][2]);
    var_dump(proc_close($p));
    preg_match_all('/^made (\S+)$/m', $text, $m);
    foreach ($m[1] as $image) {
        $made[$image] = ($made[$image] ?? 0) + 1;
    }
    $shares += count($m[1]) > 0 ? 1 : 0;
    $failed += preg_match_all('/^failed broken\.jpg/m', $text);
    var_dump(str_contains($text, 'dead letter: broken.jpg'));
}
var_dump(count($made), max($made), $failed, $shares);
var_dump($c->countPrefix('thumbnails/ready/'), $c->countPrefix('thumbnails/dead/'));
$c->deletePrefix('thumbnails/');
?>
--EXPECT--
-- one worker
queued 6 jobs
int(0)
bool(true)
made cover.jpg
made photo-1.jpg
made photo-2.jpg
made photo-3.jpg
failed broken.jpg (attempt 1): cannot read broken.jpg, again in 0.2 s
failed broken.jpg (attempt 2): cannot read broken.jpg, again in 0.4 s
failed broken.jpg (attempt 3): cannot read broken.jpg, given up
dead letter: broken.jpg
int(0)
int(0)
int(1)
-- two workers share the work
queued 23 jobs
int(0)
bool(true)
int(0)
bool(true)
int(22)
int(1)
int(3)
int(2)
int(0)
int(1)
