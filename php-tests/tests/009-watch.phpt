--TEST--
Synod\Watch: wait with timeout, events in order with prev values, prefix watches, history replay, foreach, cancel, compaction, bad timeouts
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!function_exists('pcntl_fork')) die('skip pcntl'); ?>
--FILE--
<?php
use Synod\Event;

$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$p = 'phpt/watch/' . bin2hex(random_bytes(4)) . '/';

// Waits until $n events came (events of one write may arrive in separate batches).
function collect(Synod\Watch $w, int $n): array
{
    $out = [];
    $end = microtime(true) + 5;
    while (count($out) < $n && microtime(true) < $end) {
        array_push($out, ...$w->wait(1));
    }
    return $out;
}

function show(array $events, string $p): void
{
    foreach ($events as $e) {
        echo $e->type, ' ', substr($e->key, strlen($p)), ' ', var_export($e->value, true), ' prev=', var_export($e->prevValue, true), "\n";
    }
}

echo "-- key watch\n";
var_dump(Event::PUT, Event::DELETE);
$before = $c->put("{$p}k", 'before');
$w = $c->watch("{$p}k", prev_kv: true);
var_dump($w instanceof Synod\Watch, $w instanceof Iterator, $w->revision >= $before);
$t = microtime(true);
var_dump($w->wait(0.2));
var_dump(microtime(true) - $t >= 0.15);
var_dump($w->wait(0));
$r1 = $c->put("{$p}k", "v\0one");
$c->put("{$p}k2", 'other key');
$r2 = $c->put("{$p}k", 'two');
$c->delete("{$p}k");
$ev = collect($w, 3);
show($ev, $p);
var_dump($ev[0] instanceof Event, $ev[0]->revision === $r1, $ev[1]->revision === $r2, $ev[2]->revision > $r2);
var_dump($w->revision === $ev[2]->revision);
var_dump($ev[1]->kv->version, $ev[1]->prevKv->value, $ev[1]->prevKv->modRevision === $r1);
var_dump($ev[2]);
var_dump($w->wait(0.1));

echo "-- prefix watch\n";
$pw = $c->watch("{$p}dir/", prefix: true);
$c->put("{$p}dir/a", 'A');
$c->put("{$p}dirt", 'not under dir/');
$c->put("{$p}dir/b/c", "bin\0ary");
$c->delete("{$p}dir/a");
$ev = collect($pw, 3);
show($ev, $p);
// Without prev_kv there is no previous value.
var_dump($ev[2]->prevKv);

echo "-- replay from start_revision\n";
$hw = $c->watch("{$p}k", start_revision: $before, prev_kv: true);
show(collect($hw, 4), $p);
$hw->cancel();

echo "-- foreach\n";
// Events queue up until taken: write first, then iterate.
$c->put("{$p}dir/f1", '1');
$c->put("{$p}dir/f2", '2');
$c->put("{$p}dir/f3", '3');
foreach ($pw as $i => $e) {
    echo "$i ", substr($e->key, strlen($p)), ' ', $e->value, "\n";
    if ($i === 1) {
        break;
    }
}
// Events written by another process while foreach blocks.
$pid = pcntl_fork();
if ($pid === 0) {
    usleep(200000);
    foreach (['g1', 'g2', 'g3'] as $k) {
        $c->put("{$p}dir/$k", 'from child');
    }
    exit(0);
}
pcntl_alarm(10); // a hang kills the test instead of stalling the suite
// A new foreach goes on after the event the last one stopped on (that one
// was handed out already); keys count from 0 in each foreach.
foreach ($pw as $i => $e) {
    echo "$i ", substr($e->key, strlen($p)), ' ', $e->value, "\n";
    if ($e->key === "{$p}dir/g3") {
        break;
    }
}
pcntl_alarm(0);
pcntl_waitpid($pid, $status);
var_dump(pcntl_wexitstatus($status));

echo "-- cancel\n";
$pw->cancel();
$c->put("{$p}dir/after", 'x');
var_dump($pw->wait(0.2), $pw->wait(0), $pw->wait());
foreach ($pw as $e) {
    echo "unexpected event\n";
}
echo "foreach over a cancelled watch ends\n";
$pw->cancel();

echo "-- compacted\n";
$c1 = $c->put("{$p}c", '1');
$c2 = $c->put("{$p}c", '2');
$c->compact($c2);
$cw = $c->watch("{$p}c", start_revision: $c1);
try {
    $cw->wait(5);
    echo "no exception\n";
} catch (Synod\Exception\CompactedException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
    var_dump($e->compactRevision === $c2, $e->getCode());
}
// The watch stays failed.
try {
    $cw->wait(0);
} catch (Synod\Exception\CompactedException $e) {
    echo get_class($e), "\n";
}
// Watching from the compaction revision itself works.
$ok = $c->watch("{$p}c", start_revision: $c2);
var_dump(collect($ok, 1)[0]->value);

echo "-- bad arguments\n";
foreach ([-1, -0.001, NAN, INF, 86401] as $t) {
    try {
        $ok->wait($t);
        echo "no exception\n";
    } catch (ValueError $e) {
        echo get_class($e), ': ', $e->getMessage(), "\n";
    }
}
try {
    $c->watch("{$p}k", start_revision: -1);
} catch (ValueError $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
try {
    new Synod\Watch();
} catch (Throwable $e) {
    echo 'new Synod\Watch: ', get_class($e), "\n";
}
$c->deletePrefix($p);
?>
--EXPECTF--
-- key watch
string(3) "PUT"
string(6) "DELETE"
bool(true)
bool(true)
bool(true)
array(0) {
}
bool(true)
array(0) {
}
PUT k 'v' . "\0" . 'one' prev='before'
PUT k 'two' prev='v' . "\0" . 'one'
DELETE k '' prev='two'
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
int(3)
string(5) "v%0one"
bool(true)
object(Synod\Event)#%d (7) {
  ["type"]=>
  string(6) "DELETE"
  ["key"]=>
  string(21) "phpt/watch/%x/k"
  ["value"]=>
  string(0) ""
  ["prevValue"]=>
  string(3) "two"
  ["revision"]=>
  int(%d)
  ["kv"]=>
  object(Synod\KeyValue)#%d (6) {
    ["key"]=>
    string(21) "phpt/watch/%x/k"
    ["value"]=>
    string(0) ""
    ["createRevision"]=>
    int(0)
    ["modRevision"]=>
    int(%d)
    ["version"]=>
    int(0)
    ["lease"]=>
    int(0)
  }
  ["prevKv"]=>
  object(Synod\KeyValue)#%d (6) {
    ["key"]=>
    string(21) "phpt/watch/%x/k"
    ["value"]=>
    string(3) "two"
    ["createRevision"]=>
    int(%d)
    ["modRevision"]=>
    int(%d)
    ["version"]=>
    int(3)
    ["lease"]=>
    int(0)
  }
}
array(0) {
}
-- prefix watch
PUT dir/a 'A' prev=NULL
PUT dir/b/c 'bin' . "\0" . 'ary' prev=NULL
DELETE dir/a '' prev=NULL
NULL
-- replay from start_revision
PUT k 'before' prev=NULL
PUT k 'v' . "\0" . 'one' prev='before'
PUT k 'two' prev='v' . "\0" . 'one'
DELETE k '' prev='two'
-- foreach
0 dir/f1 1
1 dir/f2 2
0 dir/f3 3
1 dir/g1 from child
2 dir/g2 from child
3 dir/g3 from child
int(0)
-- cancel
array(0) {
}
array(0) {
}
array(0) {
}
foreach over a cancelled watch ends
-- compacted
Synod\Exception\CompactedException: etcdserver: mvcc: required revision has been compacted
bool(true)
int(11)
Synod\Exception\CompactedException
string(1) "2"
-- bad arguments
ValueError: timeout must be a number of seconds in [0, 86400], -1 given
ValueError: timeout must be a number of seconds in [0, 86400], -0.001 given
ValueError: timeout must be a number of seconds in [0, 86400], NaN given
ValueError: timeout must be a number of seconds in [0, 86400], inf given
ValueError: timeout must be a number of seconds in [0, 86400], 86401 given
ValueError: start_revision must not be negative, -1 given
new Synod\Watch: Exception
