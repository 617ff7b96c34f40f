--TEST--
Synod\Lock: a holder whose lease was revoked from outside (as if it had paused past its TTL) has its guarded write refused, isHeld() false, and release() raises LockLostException; the next holder's token is larger
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
use Synod\Op;

$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$n = 'phpt/lock-fencing/' . bin2hex(random_bytes(4));
$data = "$n-data";

$stale = $c->lock($n, ttl: 10);
var_dump($stale->acquire(5));
$token = $stale->fencingToken();
$write = fn(Synod\Lock $l, string $v) => $c->txn()->ifHeld($l)->then(Op::put($data, $v))->commit()->succeeded;
var_dump($write($stale, 'one'));

// Someone else (an operator, or the lease expiring while this process was
// stopped) ends the lock's lease.
$other = new Synod\Client($ep, request_timeout: 3);
$other->leaseFor(hexdec(substr($stale->key(), strlen($n) + 1)))->revoke();

// A new holder takes the lock and writes.
$next = $other->lock($n);
var_dump($next->acquire(5), $next->fencingToken() > $token);
var_dump($write($next, 'two'));

// The stale holder still has its token but cannot write with it.
var_dump($stale->fencingToken() === $token);
var_dump($write($stale, 'stale'), $c->get($data));
var_dump($stale->isHeld(), $next->isHeld());
try {
    $stale->release();
    echo "no exception\n";
} catch (Synod\Exception\LockLostException $e) {
    echo get_class($e), ': ', $e->getMessage() === "lock \"$n\" was lost before release: its lease expired or was revoked" ? 'message ok' : $e->getMessage(), "\n";
    var_dump($e instanceof Synod\Exception\SynodException);
}
$stale->release(); // already given up: nothing more to say
var_dump($stale->fencingToken(), $next->isHeld());

echo "-- lost inside withLock\n";
$next->release();
try {
    $c->withLock($n, function (Synod\Lock $l) use ($other, $n) {
        $other->leaseFor(hexdec(substr($l->key(), strlen($n) + 1)))->revoke();
        return 'ran';
    });
    echo "no exception\n";
} catch (Synod\Exception\LockLostException $e) {
    echo get_class($e), "\n";
}
var_dump($c->countPrefix("$n/"), $c->delete($data));
?>
--EXPECT--
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(false)
string(3) "two"
bool(false)
bool(true)
Synod\Exception\LockLostException: message ok
bool(true)
NULL
bool(true)
-- lost inside withLock
Synod\Exception\LockLostException
int(0)
int(1)
