--TEST--
Synod\Queue and Synod\Job: push, claim in order (priority, then FIFO), delays, a waiting claimer woken by a push, release, extend, a visibility timeout that runs out, dead letters and requeue, size and stats, the key layout, and bad input that changes nothing
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!function_exists('pcntl_fork')) die('skip pcntl'); ?>
--FILE--
<?php
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$n = 'phpt/queue-' . bin2hex(random_bytes(4));
$q = $c->queue($n);

function attempt(string $label, callable $f): void
{
    try {
        $r = $f();
        echo "$label: ", json_encode($r), "\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), "\n";
    }
}

echo "-- push, then claims in order: higher priority first, then first in, first out\n";
$ids = [];
foreach (['a' => 0, 'b' => 5, 'c' => 0, 'd' => 5, 'e' => -1] as $payload => $priority) {
    $ids[$payload] = $q->push($payload, priority: $priority);
}
var_dump($q->name === $n, $q->maxAttempts, count(array_unique($ids)), preg_match('/^[0-9a-f]{24}$/', $ids['a']));
var_dump($q->size(), $q->stats());
$order = [];
while ($job = $q->claim(0)) {
    $order[] = "$job->payload:$job->priority:$job->attempts";
    var_dump($job->id === $ids[$job->payload]);
    $job->ack();
}
echo implode(' ', $order), "\n";
var_dump($q->claim(0), $q->size());

echo "-- the key layout\n";
$bid = $q->push("bin\0ary", priority: 7);
$q->push('later', delay: 60);
$keys = array_keys($c->getPrefix("$n/"));
foreach ($keys as $k) {
    echo preg_replace(['/[0-9a-f]{24}$/', '/[0-9a-f]{16}/'], ['ID', 'HEX16'], substr($k, strlen($n))), "\n";
}
// PRIO is 2^63 - 1 - priority in 16 hex digits; the id is last.
$ready = "$n/ready/" . sprintf('%016x', PHP_INT_MAX - 7);
var_dump(preg_match('#^' . preg_quote($ready) . '/[0-9a-f]{16}/' . $bid . '$#', $keys[1]));
$job = $q->claim(0);
var_dump($job->payload === "bin\0ary", $c->get("$n/claimed/$bid") === $keys[1]);
var_dump($c->getKeyValue("$n/claimed/$bid")->lease !== 0, $c->getKeyValue("$n/attempts/$bid")->version);
$job->ack();
var_dump($c->getPrefix("$n/ready/"), $c->countPrefix("$n/claimed/"), $c->countPrefix("$n/attempts/"));
$c->deletePrefix("$n/delayed/");

echo "-- a delayed job is claimable when its time comes\n";
$q->push('soon', delay: 0.6);
var_dump($q->claim(0), $q->stats()['delayed']);
$t = gettimeofday(true);
$job = $q->claim(5);
$took = gettimeofday(true) - $t;
var_dump($job->payload, $took >= 0.4, $took < 3);
$job->ack();

echo "-- a waiting claimer is woken by a push from another process\n";
$pid = pcntl_fork();
if ($pid === 0) {
    usleep(300000);
    (new Synod\Client($ep))->queue($n)->push('from the child');
    exit(0);
}
$t = gettimeofday(true);
$job = $q->claim(10);
$took = gettimeofday(true) - $t;
pcntl_waitpid($pid, $st);
var_dump($job->payload, $took >= 0.2, $took < 5);
$job->ack();

echo "-- release, release with a delay, extend\n";
$id = $q->push('x');
$job = $q->claim(0);
$job->release();
$job = $q->claim(0);
var_dump($job->id === $id, $job->attempts);
$job->release(0.3);
var_dump($q->stats());
$job = $q->claim(5, visibility: 1);
var_dump($job->attempts);
$job->extend(5);
// Past the first visibility: extended, the claim holds.
usleep(1600000);
$lease = $c->getKeyValue("$n/claimed/$job->id")->lease;
var_dump($lease !== 0 && $c->leaseFor($lease)->timeToLive() >= 2, $q->claim(0));
$job->ack();

echo "-- a claim whose visibility runs out goes to the next claimer\n";
$id = $q->push('slow');
$first = $q->claim(0, visibility: 1);
var_dump($q->claim(0, visibility: 1));
$t = gettimeofday(true);
$second = $q->claim(10, visibility: 30);
var_dump($second->id === $id, $second->attempts, gettimeofday(true) - $t >= 0.5);
attempt('late ack of the first claim', fn() => $first->ack());
try {
    $first->release();
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), ': ', preg_replace('/[0-9a-f]{24}/', 'ID', $e->getMessage()), "\n";
}
$second->ack();
var_dump($q->size());

echo "-- a job used after ack or release\n";
$q->push('once');
$job = $q->claim(0);
$job->ack();
foreach (['ack' => fn() => $job->ack(), 'release' => fn() => $job->release(), 'extend' => fn() => $job->extend(5)] as $what => $f) {
    try {
        $f();
    } catch (Synod\Exception\SynodException $e) {
        echo "$what: ", get_class($e), ': ', preg_replace('/[0-9a-f]{24}/', 'ID', $e->getMessage()), "\n";
    }
}
$q->push('twice');
$job = $q->claim(0);
$job->release();
attempt('ack after release', fn() => $job->ack());
$q->claim(0)->ack();

echo "-- dead letters after max_attempts, and requeue\n";
$dq = $c->queue("$n-dead", max_attempts: 2);
$id = $dq->push('poison', priority: 3);
$dq->claim(0)->release();
$job = $dq->claim(0);
var_dump($job->attempts);
$job->release();
var_dump($dq->claim(0), $dq->size(), $dq->stats(), $dq->deadLetters() === [$id => 'poison']);
var_dump($dq->requeue($id), $dq->requeue($id), $dq->requeue('no-such-job'), $dq->deadLetters());
$job = $dq->claim(0, visibility: 1);
var_dump($job->payload, $job->attempts, $job->priority);
// Left to run out, it comes back; left to run out on its last attempt
// too, the next claimer buries it.
$job = $dq->claim(10, visibility: 1);
var_dump($job->attempts);
var_dump($dq->claim(6), count($dq->deadLetters(limit: 1)), $dq->stats()['dead']);
$dq->push('second');
$dq->claim(0)->release();
$dq->claim(0)->release();
var_dump(count($dq->deadLetters()), count($dq->deadLetters(1)));

echo "-- the largest payload fits etcd's request limit\n";
$big = str_repeat('y', 1570816);
$q->push($big);
$job = $q->claim(0);
var_dump(strlen($job->payload));
$job->release(0.1);
$job = $q->claim(5);
var_dump($job->payload === $big);
$job->ack();
// With the longest name too, into the dead letters: the largest txn.
$long = str_pad("$n-", 128, 'l');
$lq = $c->queue($long, max_attempts: 1);
$lq->push($big);
$lq->claim(0)->release();
var_dump(strlen($long), strlen($lq->deadLetters()[array_key_first($lq->deadLetters())]));
$c->deletePrefix("$long/");

echo "-- bad input changes nothing\n";
$before = $c->countPrefix("$n/");
attempt('queue(empty)', fn() => $c->queue(''));
attempt('queue(129 bytes)', fn() => $c->queue(str_repeat('n', 129)));
attempt('queue(inside another queue)', fn() => $c->queue("$n/ready"));
attempt('queue(inside another queue, deeper)', fn() => $c->queue("$n/dead/x"));
attempt('queue(max_attempts: 0)', fn() => $c->queue($n, max_attempts: 0));
attempt('queue([])', fn() => $c->queue([]));
attempt('push(1.5 MiB)', fn() => $q->push(str_repeat('z', 1572864)));
attempt('push(largest + 1)', fn() => $q->push(str_repeat('z', 1570817)));
attempt('push(delay: -1)', fn() => $q->push('x', delay: -1));
attempt('push(delay: NAN)', fn() => $q->push('x', delay: NAN));
attempt('push(delay: 2 years)', fn() => $q->push('x', delay: 2 * 365 * 86400));
attempt('push(priority: "high")', fn() => $q->push('x', priority: 'high'));
attempt('push([])', fn() => $q->push([]));
attempt('claim(timeout: -1)', fn() => $q->claim(-1));
attempt('claim(visibility: 0)', fn() => $q->claim(0, visibility: 0));
attempt('claim(visibility: -5)', fn() => $q->claim(0, visibility: -5));
attempt('deadLetters(-1)', fn() => $q->deadLetters(-1));
attempt('requeue(empty)', fn() => $q->requeue(''));
attempt('requeue(a/b)', fn() => $q->requeue('a/b'));
$q->push('victim of bad calls');
$job = $q->claim(0);
attempt('extend(0)', fn() => $job->extend(0));
attempt('extend(-1)', fn() => $job->extend(-1));
attempt('release(-1)', fn() => $job->release(-1));
attempt('release(INF)', fn() => $job->release(INF));
var_dump($c->countPrefix("$n/") === $before + 3);
$job->ack();
var_dump($c->countPrefix("$n/") === $before);
attempt('new Synod\Queue', fn() => (new Synod\Queue())->size());
attempt('new Synod\Job', fn() => (new Synod\Job())->ack());
attempt('a property write', function () use ($q) { $q->name = 'x'; });
attempt('a job property write', function () use ($job) { $job->payload = 'x'; });
$dead = new Synod\Client('127.0.0.1:1', connect_timeout: 0.3, request_timeout: 1.0);
attempt('push on a dead server', fn() => $dead->queue($n)->push('x'));
attempt('claim on a dead server', fn() => $dead->queue($n)->claim(0));
var_dump($q->size(), $c->countPrefix("$n/"));

$c->deletePrefix("$n/");
$c->deletePrefix("$n-dead/");
?>
--EXPECT--
-- push, then claims in order: higher priority first, then first in, first out
bool(true)
int(5)
int(5)
int(1)
int(5)
array(4) {
  ["ready"]=>
  int(5)
  ["claimed"]=>
  int(0)
  ["delayed"]=>
  int(0)
  ["dead"]=>
  int(0)
}
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
b:5:1 d:5:1 a:0:1 c:0:1 e:-1:1
NULL
int(0)
-- the key layout
/delayed/HEX16/HEX16/ID
/ready/HEX16/HEX16/ID
int(1)
bool(true)
bool(true)
bool(true)
int(1)
array(0) {
}
int(0)
int(0)
-- a delayed job is claimable when its time comes
NULL
int(1)
string(4) "soon"
bool(true)
bool(true)
-- a waiting claimer is woken by a push from another process
string(14) "from the child"
bool(true)
bool(true)
-- release, release with a delay, extend
bool(true)
int(2)
array(4) {
  ["ready"]=>
  int(0)
  ["claimed"]=>
  int(0)
  ["delayed"]=>
  int(1)
  ["dead"]=>
  int(0)
}
int(3)
bool(true)
NULL
-- a claim whose visibility runs out goes to the next claimer
NULL
bool(true)
int(2)
bool(true)
late ack of the first claim: Synod\Exception\JobLostException
Synod\Exception\SynodException: queue: job ID was already lost (see the earlier error)
int(0)
-- a job used after ack or release
ack: Synod\Exception\SynodException: queue: job ID was already acknowledged
release: Synod\Exception\SynodException: queue: job ID was already acknowledged
extend: Synod\Exception\SynodException: queue: job ID was already acknowledged
ack after release: Synod\Exception\SynodException
-- dead letters after max_attempts, and requeue
int(2)
NULL
int(0)
array(4) {
  ["ready"]=>
  int(0)
  ["claimed"]=>
  int(0)
  ["delayed"]=>
  int(0)
  ["dead"]=>
  int(1)
}
bool(true)
bool(true)
bool(false)
bool(false)
array(0) {
}
string(6) "poison"
int(1)
int(3)
int(2)
NULL
int(1)
int(1)
int(2)
int(1)
-- the largest payload fits etcd's request limit
int(1570816)
bool(true)
int(128)
int(1570816)
-- bad input changes nothing
queue(empty): ValueError
queue(129 bytes): ValueError
queue(inside another queue): ValueError
queue(inside another queue, deeper): ValueError
queue(max_attempts: 0): ValueError
queue([]): TypeError
push(1.5 MiB): ValueError
push(largest + 1): ValueError
push(delay: -1): ValueError
push(delay: NAN): ValueError
push(delay: 2 years): ValueError
push(priority: "high"): TypeError
push([]): TypeError
claim(timeout: -1): ValueError
claim(visibility: 0): ValueError
claim(visibility: -5): ValueError
deadLetters(-1): ValueError
requeue(empty): ValueError
requeue(a/b): ValueError
extend(0): ValueError
extend(-1): ValueError
release(-1): ValueError
release(INF): ValueError
bool(true)
bool(true)
new Synod\Queue: Exception
new Synod\Job: Exception
a property write: Exception
a job property write: Exception
push on a dead server: Synod\Exception\ConnectionException
claim on a dead server: Synod\Exception\ConnectionException
int(0)
int(0)
