--TEST--
Synod: wrong argument types, objects not made by their factories, oversized and empty keys, huge lease TTLs, exception objects
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
use Synod\Op;

$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$p = 'phpt/bad-input/' . bin2hex(random_bytes(4)) . '/';

function attempt(string $label, callable $f): void
{
    try {
        $r = $f();
        echo "$label: no exception (", get_debug_type($r), ")\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), "\n";
    }
}

echo "-- wrong types\n";
$stringable = new class {
    public function __toString(): string
    {
        return 'k';
    }
};
$calls = [
    'put([], v)' => fn() => $c->put([], 'v'),
    'put(k, [])' => fn() => $c->put("{$p}k", []),
    'put(null, v)' => fn() => $c->put(null, 'v'),
    'put(object, v)' => fn() => $c->put(new stdClass(), 'v'),
    'put(k, v, lease: abc)' => fn() => $c->put("{$p}k", 'v', lease: 'abc'),
    'put(k, v, lease: 1.5)' => fn() => $c->put("{$p}k", 'v', lease: 1.5),
    'get([])' => fn() => $c->get([]),
    'get(stringable)' => fn() => $c->get($stringable),
    'getKeyValue(k, revision: x)' => fn() => $c->getKeyValue("{$p}k", revision: 'x'),
    'getPrefix([])' => fn() => $c->getPrefix([]),
    'getPrefix(p, limit: x)' => fn() => $c->getPrefix($p, limit: 'x'),
    'getPrefix(p, sort: [])' => fn() => $c->getPrefix($p, sort: []),
    'getPrefixKeyValues(p, revision: [])' => fn() => $c->getPrefixKeyValues($p, revision: []),
    'countPrefix([])' => fn() => $c->countPrefix([]),
    'getAndPut(k, [])' => fn() => $c->getAndPut("{$p}k", []),
    'putIfAbsent([], v)' => fn() => $c->putIfAbsent([], 'v'),
    'compareAndSwap(k, [], v)' => fn() => $c->compareAndSwap("{$p}k", [], 'v'),
    'delete([])' => fn() => $c->delete([]),
    'getAndDelete([])' => fn() => $c->getAndDelete([]),
    'deletePrefix([])' => fn() => $c->deletePrefix([]),
    'getAndDeletePrefix([])' => fn() => $c->getAndDeletePrefix([]),
    'compact(x)' => fn() => $c->compact('x'),
    'lease(abc)' => fn() => $c->lease('abc'),
    'lease(1.5)' => fn() => $c->lease(1.5),
    'lease(10, id: x)' => fn() => $c->lease(10, id: 'x'),
    'lease(10, keep_alive: [])' => fn() => $c->lease(10, keep_alive: []),
    'watch([])' => fn() => $c->watch([]),
    'watch(k, prefix: [])' => fn() => $c->watch("{$p}k", prefix: []),
    'watch(k, start_revision: x)' => fn() => $c->watch("{$p}k", start_revision: 'x'),
    'txn()->ifValue(k, [], v)' => fn() => $c->txn()->ifValue("{$p}k", [], 'v'),
    'txn()->ifVersion(k, =, x)' => fn() => $c->txn()->ifVersion("{$p}k", '=', 'x'),
    'txn()->ifLease(k, =, [])' => fn() => $c->txn()->ifLease("{$p}k", '=', []),
    'txn()->then(x)' => fn() => $c->txn()->then('x'),
    'txn()->then([op])' => fn() => $c->txn()->then([Op::get("{$p}k")]),
    'txn()->else(client)' => fn() => $c->txn()->else($c),
    'Op::put([], v)' => fn() => Op::put([], 'v'),
    'Op::get(k, limit: x)' => fn() => Op::get("{$p}k", limit: 'x'),
    'Op::delete(k, prefix: [])' => fn() => Op::delete("{$p}k", prefix: []),
];
foreach ($calls as $label => $f) {
    attempt($label, $f);
}
$w = $c->watch("{$p}k");
attempt('wait(x)', fn() => $w->wait('x'));
$l = $c->lease(10, keep_alive: false);
attempt('revokeOnShutdown([])', fn() => $l->revokeOnShutdown([]));
$l->revoke();
attempt('get() without arguments', fn() => $c->get());
attempt('get(k, 1, 2)', fn() => $c->get("{$p}k", 1, 2));
attempt('put(k, v, nope: 1)', fn() => $c->put("{$p}k", 'v', nope: 1));
attempt('clone client', fn() => clone $c);
attempt('serialize client', fn() => serialize($c));
attempt('unserialize KeyValue', fn() => unserialize('O:14:"Synod\KeyValue":0:{}'));
// The client still works.
var_dump($c->put("{$p}k", 'ok') > 0, $c->get("{$p}k"));

echo "-- new on factory-made classes\n";
foreach (['KeyValue', 'Event', 'TxnResult', 'Op', 'Txn', 'Lease', 'Watch'] as $cls) {
    attempt("new Synod\\$cls", fn() => new ("Synod\\$cls")());
}

echo "-- objects made without a constructor\n";
$make = fn(string $cls) => (new ReflectionClass("Synod\\$cls"))->newInstanceWithoutConstructor();
$kv = $make('KeyValue');
var_dump($kv->key, $kv->value, $kv->version);
$ev = $make('Event');
var_dump($ev->type, $ev->prevValue, $ev->kv->key);
$tr = $make('TxnResult');
var_dump($tr->succeeded, $tr->responses);
$bare = $make('Lease');
var_dump($bare->id);
foreach (['keepAlive', 'timeToLive', 'keys', 'revoke', 'startKeepAlive', 'stopKeepAlive', 'isKeptAlive'] as $m) {
    attempt("Lease::$m", fn() => $bare->$m());
}
attempt('Lease::revokeOnShutdown', fn() => $bare->revokeOnShutdown(true));
$bare = $make('Watch');
attempt('Watch::wait', fn() => $bare->wait(0));
attempt('Watch foreach', function () use ($bare) {
    foreach ($bare as $e) {
    }
});
attempt('Watch::cancel', fn() => $bare->cancel());
$bare = $make('Txn');
attempt('Txn::commit', fn() => $bare->ifValue("{$p}k", '=', 'ok')->then(Op::get("{$p}k"))->commit());
$bare = $make('Op');
attempt('then(bare Op)', fn() => $c->txn()->then($bare));
attempt('else(op, bare Op)', fn() => $c->txn()->else(Op::get("{$p}k"), $bare));
$bare = $make('Client');
attempt('Client::get', fn() => $bare->get("{$p}k"));
attempt('Client::txn', fn() => $bare->txn());

echo "-- server-side limits\n";
$big = 'phpt/bad-input/big/' . str_repeat('k', 2 * 1024 * 1024);
foreach ([fn() => $c->put($big, 'v'), fn() => $c->get($big)] as $f) {
    try {
        $f();
        echo "no exception\n";
    } catch (Synod\Exception\SynodException $e) {
        echo get_class($e), ': ', $e->getMessage(), ' (', $e->getCode(), ")\n";
    }
}
foreach ([
    fn() => $c->get(''),
    fn() => $c->getKeyValue(''),
    fn() => $c->delete(''),
    fn() => $c->getAndPut('', 'v'),
    fn() => $c->putIfAbsent('', 'v'),
] as $f) {
    try {
        $f();
        echo "no exception\n";
    } catch (Synod\Exception\SynodException $e) {
        echo get_class($e), ': ', $e->getMessage(), ' (', $e->getCode(), ")\n";
    }
}
foreach ([9000000001, PHP_INT_MAX] as $ttl) {
    try {
        $c->lease($ttl, keep_alive: false);
        echo "no exception\n";
    } catch (Synod\Exception\SynodException $e) {
        echo get_class($e), ': ', $e->getMessage(), ' (', $e->getCode(), ")\n";
    }
}
$huge = $c->lease(9000000000, keep_alive: false);
var_dump($huge->ttl);
$huge->revoke();

echo "-- exception objects\n";
$e = new Synod\Exception\ConnectionException('x', 7);
var_dump($e->getMessage(), $e->getCode(), $e->getLine(), $e->getFile() === __FILE__, $e->getPrevious());
var_dump($e instanceof Synod\Exception\SynodException, $e instanceof RuntimeException);
$e = new Synod\Exception\SynodException();
var_dump($e->getMessage(), $e->getCode());
$e = new Synod\Exception\CompactedException('c', 11, new LogicException('inner'));
var_dump($e->compactRevision, $e->getPrevious()->getMessage());
foreach (['TimeoutException', 'LeaseNotFoundException'] as $cls) {
    $cls = "Synod\\Exception\\$cls";
    try {
        throw new $cls('thrown', 3);
    } catch (Synod\Exception\SynodException $e) {
        echo get_class($e), ' ', $e->getMessage(), ' ', $e->getCode(), "\n";
    }
}
class MyLeaseGone extends Synod\Exception\LeaseNotFoundException
{
}
$e = new MyLeaseGone('mine', 5);
var_dump(get_parent_class($e), $e->getCode());
function fails(Synod\Client $c): void
{
    $c->get('');
}
try {
    fails($c);
} catch (Synod\Exception\SynodException $e) {
    var_dump($e->getFile() === __FILE__, $e->getLine() > 0);
    $trace = $e->getTrace();
    var_dump(count($trace), $trace[0]['class'], $trace[0]['function'], $trace[1]['function']);
    echo $e->getTraceAsString(), "\n";
}
echo (string) new Synod\Exception\TimeoutException('str'), "\n";
$c->deletePrefix($p);
?>
--EXPECTF--
-- wrong types
put([], v): TypeError
put(k, []): TypeError
put(null, v): TypeError
put(object, v): TypeError
put(k, v, lease: abc): TypeError
put(k, v, lease: 1.5): TypeError
get([]): TypeError
get(stringable): TypeError
getKeyValue(k, revision: x): TypeError
getPrefix([]): TypeError
getPrefix(p, limit: x): TypeError
getPrefix(p, sort: []): TypeError
getPrefixKeyValues(p, revision: []): TypeError
countPrefix([]): TypeError
getAndPut(k, []): TypeError
putIfAbsent([], v): TypeError
compareAndSwap(k, [], v): TypeError
delete([]): TypeError
getAndDelete([]): TypeError
deletePrefix([]): TypeError
getAndDeletePrefix([]): TypeError
compact(x): TypeError
lease(abc): TypeError
lease(1.5): TypeError
lease(10, id: x): TypeError
lease(10, keep_alive: []): TypeError
watch([]): TypeError
watch(k, prefix: []): TypeError
watch(k, start_revision: x): TypeError
txn()->ifValue(k, [], v): TypeError
txn()->ifVersion(k, =, x): TypeError
txn()->ifLease(k, =, []): TypeError
txn()->then(x): TypeError
txn()->then([op]): TypeError
txn()->else(client): TypeError
Op::put([], v): TypeError
Op::get(k, limit: x): TypeError
Op::delete(k, prefix: []): TypeError
wait(x): TypeError
revokeOnShutdown([]): TypeError
get() without arguments: ArgumentCountError
get(k, 1, 2): ArgumentCountError
put(k, v, nope: 1): Error
clone client: Error
serialize client: Exception
unserialize KeyValue: Exception
bool(true)
string(2) "ok"
-- new on factory-made classes
new Synod\KeyValue: Exception
new Synod\Event: Exception
new Synod\TxnResult: Exception
new Synod\Op: Exception
new Synod\Txn: Exception
new Synod\Lease: Exception
new Synod\Watch: Exception
-- objects made without a constructor
string(0) ""
string(0) ""
int(0)
string(3) "PUT"
NULL
string(0) ""
bool(false)
array(0) {
}
int(0)
Lease::keepAlive: ValueError
Lease::timeToLive: ValueError
Lease::keys: ValueError
Lease::revoke: ValueError
Lease::startKeepAlive: ValueError
Lease::stopKeepAlive: ValueError
Lease::isKeptAlive: ValueError
Lease::revokeOnShutdown: ValueError
Watch::wait: ValueError
Watch foreach: ValueError
Watch::cancel: no exception (null)
Txn::commit: ValueError
then(bare Op): ValueError
else(op, bare Op): ValueError
Client::get: Exception
Client::txn: Exception
-- server-side limits
Synod\Exception\SynodException: grpc: received message larger than max (%d vs. %d) (8)
Synod\Exception\SynodException: grpc: received message larger than max (%d vs. %d) (8)
Synod\Exception\SynodException: etcdserver: key is not provided (3)
Synod\Exception\SynodException: etcdserver: key is not provided (3)
Synod\Exception\SynodException: etcdserver: key is not provided (3)
Synod\Exception\SynodException: etcdserver: key is not provided (3)
Synod\Exception\SynodException: etcdserver: key is not provided (3)
Synod\Exception\SynodException: etcdserver: too large lease TTL (11)
Synod\Exception\SynodException: etcdserver: too large lease TTL (11)
int(9000000000)
-- exception objects
string(1) "x"
int(7)
int(%d)
bool(true)
NULL
bool(true)
bool(true)
string(0) ""
int(0)
int(0)
string(5) "inner"
Synod\Exception\TimeoutException thrown 3
Synod\Exception\LeaseNotFoundException thrown 3
string(38) "Synod\Exception\LeaseNotFoundException"
int(5)
bool(true)
bool(true)
int(2)
string(12) "Synod\Client"
string(3) "get"
string(5) "fails"
#0 %s(%d): Synod\Client->get(%S)
#1 %s(%d): fails(%S)
#2 {main}
Synod\Exception\TimeoutException: str in %s:%d
Stack trace:
#0 {main}
