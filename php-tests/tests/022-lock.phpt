--TEST--
Synod\Lock: acquire, tryAcquire, release, isHeld, fencingToken, key, Txn::ifHeld, withLock, a dropped lock, fork, and bad input
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!function_exists('pcntl_fork')) die('skip pcntl'); ?>
--FILE--
<?php
use Synod\Op;

$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$n = 'phpt/lock/' . bin2hex(random_bytes(4));

function attempt(string $label, callable $f): void
{
    try {
        $r = $f();
        echo "$label: ", json_encode($r), "\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), ': ', $e->getMessage(), "\n";
    }
}

echo "-- a lock before acquire\n";
$a = $c->lock($n, ttl: 5);
var_dump($a->name === $n, $a->key(), $a->fencingToken(), $a->isHeld());
$a->release(); // nothing held: nothing to do

echo "-- acquire, then another contender\n";
var_dump($a->tryAcquire(), $a->isHeld(), $a->acquire(0), $a->acquire());
var_dump(str_starts_with($a->key(), "$n/"), $a->fencingToken() > 0);
var_dump($a->fencingToken() === $c->getKeyValue($a->key())->createRevision);
$b = $c->lock($n);
$t = gettimeofday(true);
var_dump($b->tryAcquire(), $b->acquire(0.5), $b->isHeld(), $b->key());
var_dump(gettimeofday(true) - $t >= 0.4);
// A waiter that gave up leaves nothing in line.
var_dump($c->countPrefix("$n/"));

echo "-- Txn::ifHeld\n";
$r = $c->txn()->ifHeld($a)->then(Op::put("$n-data", 'by a'))->commit();
var_dump($r->succeeded, $c->get("$n-data"));
$r = $c->txn()->ifHeld($b)->then(Op::put("$n-data", 'by b'))->else(Op::get("$n-data"))->commit();
var_dump($r->succeeded, $r->responses[0][0]->value);

echo "-- release, and the next one gets it with a larger token\n";
$old = $a->fencingToken();
$a->release();
var_dump($a->isHeld(), $a->key(), $a->fencingToken());
$a->release(); // twice: nothing to do
var_dump($b->acquire(5), $b->fencingToken() > $old);
$r = $c->txn()->ifHeld($a)->then(Op::put("$n-data", 'by a again'))->commit();
var_dump($r->succeeded);
$b->release();

echo "-- a lock dropped while held is released\n";
(function () use ($c, $n) {
    $l = $c->lock($n);
    var_dump($l->tryAcquire());
})();
var_dump($c->countPrefix("$n/"), $a->tryAcquire());
$a->release();

echo "-- withLock\n";
var_dump($c->withLock($n, function (Synod\Lock $l) use ($c, $n) {
    return [$l->name === $n, $l->isHeld(), $c->countPrefix("$n/")];
}));
var_dump($c->countPrefix("$n/"));
try {
    $c->withLock($n, function () {
        throw new DomainException('from fn');
    }, ttl: 3);
} catch (DomainException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
var_dump($c->countPrefix("$n/"));
// fn may release the lock itself.
var_dump($c->withLock($n, fn(Synod\Lock $l) => $l->release(), timeout: 1));
$a->acquire();
attempt('withLock while held elsewhere, timeout 0', fn() => $c->withLock($n, fn() => 'ran', timeout: 0));
attempt('withLock while held elsewhere, timeout 0.3', fn() => $c->withLock($n, fn() => 'ran', timeout: 0.3));
$a->release();
var_dump($c->withLock($n, fn() => 'ran', 0));
var_dump($c->withLock(name: $n, fn: fn() => 'named', timeout: 1, ttl: 2));

echo "-- fork: the child has none of the parent's locks\n";
$a->acquire();
$pid = pcntl_fork();
if ($pid === 0) {
    $ok = true;
    try {
        $a->release();
        $ok = false;
    } catch (Synod\Exception\SynodException $e) {
    }
    $mine = $c->lock($n);
    $ok = $ok && $mine->tryAcquire() === false;
    exit($ok ? 0 : 1);
}
pcntl_waitpid($pid, $status);
var_dump(pcntl_wexitstatus($status), $a->isHeld());
$a->release();

echo "-- bad input\n";
attempt('lock("")', fn() => $c->lock(''));
attempt('lock(n, ttl: 0)', fn() => $c->lock($n, ttl: 0));
attempt('lock(n, ttl: -5)', fn() => $c->lock($n, ttl: -5));
attempt('lock([])', fn() => $c->lock([]));
attempt('lock(n, ttl: x)', fn() => $c->lock($n, ttl: 'x'));
attempt('acquire(-1)', fn() => $a->acquire(-1));
attempt('acquire(NAN)', fn() => $a->acquire(NAN));
attempt('acquire(x)', fn() => $a->acquire('x'));
attempt('withLock("", fn)', fn() => $c->withLock('', fn() => 1));
attempt('withLock(n, not callable)', fn() => $c->withLock($n, 'no_such_function'));
attempt('withLock(n, fn, -1)', fn() => $c->withLock($n, fn() => 1, -1));
attempt('withLock(n, fn, ttl: 0)', fn() => $c->withLock($n, fn() => 1, ttl: 0));
attempt('txn()->ifHeld(x)', fn() => $c->txn()->ifHeld('x'));
attempt('new Synod\Lock', fn() => new Synod\Lock());
$bare = (new ReflectionClass(Synod\Lock::class))->newInstanceWithoutConstructor();
foreach (['tryAcquire', 'release', 'isHeld', 'fencingToken', 'key'] as $m) {
    attempt("bare Lock::$m", fn() => $bare->$m());
}
attempt('txn()->ifHeld(bare)', fn() => $c->txn()->ifHeld($bare)->commit());
attempt('clone lock', fn() => clone $a);
attempt('set name', function () use ($a) {
    $a->name = 'x';
});
var_dump($c->countPrefix("$n/"), $c->delete("$n-data"));
?>
--EXPECTF--
-- a lock before acquire
bool(true)
NULL
NULL
bool(false)
-- acquire, then another contender
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(false)
bool(false)
bool(false)
NULL
bool(true)
int(1)
-- Txn::ifHeld
bool(true)
string(4) "by a"
bool(false)
string(4) "by a"
-- release, and the next one gets it with a larger token
bool(false)
NULL
NULL
bool(true)
bool(true)
bool(false)
-- a lock dropped while held is released
bool(true)
int(0)
bool(true)
-- withLock
array(3) {
  [0]=>
  bool(true)
  [1]=>
  bool(true)
  [2]=>
  int(1)
}
int(0)
DomainException: from fn
int(0)
NULL
withLock while held elsewhere, timeout 0: Synod\Exception\TimeoutException: lock "%s" not acquired within 0s
withLock while held elsewhere, timeout 0.3: Synod\Exception\TimeoutException: lock "%s" not acquired within 0.3s
string(3) "ran"
string(5) "named"
-- fork: the child has none of the parent's locks
int(0)
bool(true)
-- bad input
lock(""): ValueError: the name must not be empty
lock(n, ttl: 0): ValueError: the ttl must be positive, got 0
lock(n, ttl: -5): ValueError: the ttl must be positive, got -5
lock([]): TypeError: %s
lock(n, ttl: x): TypeError: %s
acquire(-1): ValueError: timeout must be a number of seconds in [0, 86400], -1 given
acquire(NAN): ValueError: timeout must be a number of seconds in [0, 86400], NaN given
acquire(x): TypeError: %s
withLock("", fn): ValueError: the name must not be empty
withLock(n, not callable): TypeError: Invalid value given for argument `fn`.
withLock(n, fn, -1): ValueError: timeout must be a number of seconds in [0, 86400], -1 given
withLock(n, fn, ttl: 0): ValueError: the ttl must be positive, got 0
txn()->ifHeld(x): TypeError: %s
new Synod\Lock: %s
bare Lock::tryAcquire: ValueError: a Lock is made with Client::lock()
bare Lock::release: ValueError: a Lock is made with Client::lock()
bare Lock::isHeld: ValueError: a Lock is made with Client::lock()
bare Lock::fencingToken: ValueError: a Lock is made with Client::lock()
bare Lock::key: ValueError: a Lock is made with Client::lock()
txn()->ifHeld(bare): ValueError: a Lock is made with Client::lock()
clone lock: Error: %s
set name: %s
int(0)
int(1)
