--TEST--
Synod\Client::lastRevision(): the revision the last response was served at, set by reads, writes and transactions; read then watch from lastRevision() + 1 misses nothing and repeats nothing
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
use Synod\Op;

$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$other = new Synod\Client(getenv('SYNOD_ENDPOINT')); // same connection, its own lastRevision
$p = 'phpt/last-revision/' . bin2hex(random_bytes(4)) . '/';

echo "-- before any call\n";
var_dump($c->lastRevision());
try {
    $c->getPrefix($p, limit: -1); // refused before anything is sent
} catch (ValueError $e) {
    echo "ValueError\n";
}
var_dump($c->lastRevision());

echo "-- writes\n";
$r = $c->put("{$p}a", '1');
var_dump($c->lastRevision() === $r);
$r2 = $other->put("{$p}b", '2');
var_dump($r2 > $r, $c->lastRevision() === $r, $other->lastRevision() === $r2);
$c->getAndPut("{$p}a", '1b');
var_dump($c->lastRevision() === $r2 + 1);
var_dump($c->putIfAbsent("{$p}a", 'no'), $c->lastRevision() === $r2 + 1); // refused, still a response
var_dump($c->compareAndSwap("{$p}a", '1b', '1c'), $c->lastRevision() === $r2 + 2);
$now = $r2 + 2;

echo "-- reads report the store revision, not the key's\n";
$other->put("{$p}z", 'elsewhere');
$now++;
foreach ([
    'get' => fn() => $c->get("{$p}a"),
    'get missing' => fn() => $c->get("{$p}missing"),
    'getKeyValue' => fn() => $c->getKeyValue("{$p}a"),
    'getKeyValue at an old revision' => fn() => $c->getKeyValue("{$p}a", revision: $r),
    'getPrefix' => fn() => $c->getPrefix($p),
    'getPrefixKeyValues' => fn() => $c->getPrefixKeyValues($p, limit: 1),
    'countPrefix' => fn() => $c->countPrefix($p),
    'getPrefix on an empty prefix' => fn() => $c->getPrefix("{$p}nothing/"),
] as $label => $f) {
    $f();
    echo $label, ': ', var_export($c->lastRevision() === $now, true), "\n";
}
$kv = $c->getKeyValue("{$p}a", revision: $r);
var_dump($kv->value, $kv->modRevision === $r);

echo "-- deletes, transactions, leases, status, watches\n";
$c->delete("{$p}missing"); // deletes nothing: no new revision
var_dump($c->lastRevision() === $now);
$c->delete("{$p}z");
var_dump($c->lastRevision() === ++$now);
$c->put("{$p}d/1", 'x');
$c->getAndDelete("{$p}d/1");
var_dump($c->lastRevision() === $now + 2);
$now += 2;
$txn = $c->txn()->ifValue("{$p}a", '=', '1c')->then(Op::put("{$p}t", 'x'), Op::get($p, prefix: true));
$other->put("{$p}b", '3'); // $c's txn commits after this
$now++;
var_dump($c->lastRevision() === $now - 1);
$res = $txn->commit();
var_dump($res->succeeded, $res->revision === $now + 1, $c->lastRevision() === $now + 1);
$now++;
$res = $c->txn()->ifValue("{$p}a", '=', 'nope')->commit();
var_dump($res->succeeded, $c->lastRevision() === $now);
$c->deletePrefix("{$p}d/");
$c->getAndDeletePrefix("{$p}d/");
var_dump($c->lastRevision() === $now);
$lease = $c->lease(30, keep_alive: false);
var_dump($c->lastRevision() === $now);
$other->put("{$p}b", '4');
$now++;
$c->leaseFor($lease->id);
var_dump($c->lastRevision() === $now);
$other->put("{$p}b", '5');
$now++;
var_dump($c->status()['revision'] === $now, $c->lastRevision() === $now);
$other->put("{$p}b", '6');
$now++;
$w = $c->watch($p, prefix: true);
var_dump($c->lastRevision() === $now, $w->revision === $now);
$w->cancel();
$lease->revoke();

echo "-- read, then watch from lastRevision() + 1\n";
$q = "{$p}cfg/";
// An empty prefix: the largest mod revision would be 0 and replay all history.
$config = $c->getPrefix($q);
$w = $c->watch($q, prefix: true, start_revision: $c->lastRevision() + 1);
$other->put("{$q}x", '1');
$events = $w->wait(5);
var_dump($config, count($events), $events[0]->key === "{$q}x");
$w->cancel();
// Changes made between the read and the watch are delivered, and nothing older.
$other->put("{$q}y", '1');
$config = $c->getPrefix($q);
$read = $c->lastRevision();
$other->put("{$q}y", '2');
$other->put("{$q}z", '1');
$w = $c->watch($q, prefix: true, start_revision: $read + 1);
$seen = [];
$end = gettimeofday(true) + 5;
while (count($seen) < 2 && gettimeofday(true) < $end) {
    foreach ($w->wait(1) as $e) {
        $seen[] = substr($e->key, strlen($q)) . '=' . $e->value . '@' . ($e->revision - $read);
    }
}
var_dump(count($config), $seen);
$w->cancel();

echo "-- a failed call leaves it as it was\n";
$s = stream_socket_server('tcp://127.0.0.1:0');
$dead = stream_socket_get_name($s, false);
fclose($s);
$d = new Synod\Client($dead, connect_timeout: 0.5, request_timeout: 1.0);
try {
    $d->get('k');
} catch (Synod\Exception\ConnectionException $e) {
    echo "ConnectionException\n";
}
var_dump($d->lastRevision());
$before = $c->lastRevision();
try {
    $c->put('', 'v');
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), "\n";
}
var_dump($c->lastRevision() === $before);
try {
    $c->lastRevision(1);
} catch (ArgumentCountError $e) {
    echo "ArgumentCountError\n";
}
$c->deletePrefix($p);
?>
--EXPECT--
-- before any call
NULL
ValueError
NULL
-- writes
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(false)
bool(true)
bool(true)
bool(true)
-- reads report the store revision, not the key's
get: true
get missing: true
getKeyValue: true
getKeyValue at an old revision: true
getPrefix: true
getPrefixKeyValues: true
countPrefix: true
getPrefix on an empty prefix: true
string(1) "1"
bool(true)
-- deletes, transactions, leases, status, watches
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(false)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
-- read, then watch from lastRevision() + 1
array(0) {
}
int(1)
bool(true)
int(2)
array(2) {
  [0]=>
  string(5) "y=2@1"
  [1]=>
  string(5) "z=1@2"
}
-- a failed call leaves it as it was
ConnectionException
NULL
Synod\Exception\SynodException
bool(true)
ArgumentCountError
