--TEST--
Synod\ServiceRegistry: register (update in place, registered again after its lease is lost, revoked at process exit, not by a forked child), instances, pick (round-robin, random, markDown), watch, deregister, keys written by other clients, and bad input that writes nothing
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)');
if (!function_exists('pcntl_fork')) die('skip pcntl');
?>
--FILE--
<?php
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$name = 'phpt-svc-' . bin2hex(random_bytes(4));
$p = "synod/services/$name/";
$s = $c->services($name);

function attempt(string $label, callable $f): void
{
    try {
        $r = $f();
        echo "$label: ", json_encode($r), "\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), ': ', $e->getMessage(), "\n";
    }
}

/** Waits up to $timeout seconds for $n events of $w. */
function collect(Synod\ServiceWatch $w, int $n, float $timeout = 5.0): array
{
    $got = [];
    $until = microtime(true) + $timeout;
    while (count($got) < $n && ($left = $until - microtime(true)) > 0) {
        array_push($got, ...$w->wait($left));
    }
    return $got;
}

function show(Synod\ServiceInstance $i): string
{
    return "$i->id $i->address:$i->port " . json_encode($i->meta);
}

echo "-- register\n";
var_dump($s->service === $name, $s->pick(), $s->instances());
$w = $s->watch();
$r = $s->register('api-1', '10.0.0.5', 8080, ['zone' => 'eu-1', 'weight' => 2, 'tags' => ['a', 'b'], '7' => 1.5, 'on' => true, 'none' => null], ttl: 5);
var_dump($r->service === $name, $r->id, $r->key === "{$p}api-1", $r->ttl >= 5, $r->isActive());
$kv = $c->getKeyValue("{$p}api-1");
var_dump($kv->lease === $r->lease(), $kv->value);
$b = $s->register('api-2', '10.0.0.6', 8081);
var_dump($b->ttl >= 10);
$list = $s->instances();
echo implode("\n", array_map('show', $list)), "\n";
$i = $list[0];
var_dump($i->service === $name, $i->port, $i->meta[7], $i->meta['tags'], $i->revision === $kv->modRevision);

echo "-- registering again updates in place\n";
// The same values again: nothing to do, no request.
$again = $s->register('api-1', '10.0.0.5', 8080, ['zone' => 'eu-1', 'weight' => 2, 'tags' => ['a', 'b'], '7' => 1.5, 'on' => true, 'none' => null], ttl: 5);
$same = $c->getKeyValue("{$p}api-1");
var_dump($same->modRevision === $kv->modRevision, $again->lease() === $kv->lease);
$r = $s->register('api-1', '10.0.0.5', 9090, ['zone' => 'eu-2'], ttl: 5);
$kv2 = $c->getKeyValue("{$p}api-1");
var_dump($kv2->createRevision === $kv->createRevision, $kv2->lease === $r->lease(), $kv2->lease !== $kv->lease);
echo implode("\n", array_map('show', $s->instances())), "\n";
// The old lease is revoked once the key is on the new one.
$gone = function (int $lease) use ($c): bool {
    try {
        return $c->leaseFor($lease)->timeToLive() === -1;
    } catch (Synod\Exception\LeaseNotFoundException $e) {
        return true;
    }
};
$t = microtime(true);
while (!$gone($kv->lease) && microtime(true) - $t < 10) {
    usleep(50000);
}
var_dump($gone($kv->lease), !$gone($kv2->lease));

echo "-- keys written by other clients\n";
$c->put("{$p}go-1", '{"address":"10.0.0.9","port":7000}');
$c->put("{$p}bad-json", 'not json');
$c->put("{$p}bad-port", '{"address":"10.0.0.9","port":"7000"}');
$c->put("{$p}bad-meta", '{"address":"10.0.0.9","port":7000,"meta":[1]}');
$c->put("{$p}deeper/x", '{"address":"10.0.0.9","port":7000}');
echo implode("\n", array_map('show', $s->instances())), "\n";

echo "-- pick\n";
$seen = [];
for ($n = 0; $n < 6; $n++) {
    $seen[] = $s->pick()->id;
}
echo implode(' ', $seen), "\n";
$ids = array_map(fn($i) => $i->id, $s->instances());
$random = [];
for ($n = 0; $n < 60; $n++) {
    $random[$s->pick('random')->id] = true;
}
ksort($random);
var_dump(array_keys($random) === $ids);
$s->markDown($s->instances()[0], 60);
$seen = [];
for ($n = 0; $n < 4; $n++) {
    $seen[] = $s->pick()->id . '/' . $s->pick('random')->id;
}
var_dump(!str_contains(implode(' ', $seen), 'api-1'));
foreach ($s->instances() as $i) {
    $s->markDown($i, 60);
}
var_dump($s->pick(), $s->pick('random'));
// Marks are the process's: another registry object of the service sees them.
var_dump($c->services($name)->pick());
$s->markDown($s->instances()[1], 0);
var_dump($s->pick()->id);
$s->markDown($s->instances()[1], 0.2);
usleep(300000);
var_dump($s->pick()->id);
foreach ($s->instances() as $i) {
    $s->markDown($i, 0);
}

echo "-- watch\n";
$events = collect($w, 4);
foreach ($events as $e) {
    echo $e->type, ' ', show($e->instance), "\n";
}
var_dump($events[0]->revision > 0, $w->revision === end($events)->revision);
$c->put("{$p}bad-json", '{"address":"10.0.0.10","port":7001}');
$c->put("{$p}bad-json", 'broken again');
$c->delete("{$p}go-1");
$c->put("{$p}api-2", $c->get("{$p}api-2"), $b->lease()); // unchanged: no event
$c->delete("{$p}bad-port");
$got = [];
foreach ($w as $k => $e) {
    $got[] = "$k $e->type " . show($e->instance);
    if (count($got) === 3) {
        break;
    }
}
echo implode("\n", $got), "\n";
var_dump($w->wait(0.3));
echo implode("\n", array_map('show', $w->instances())), "\n";
$w->cancel();
var_dump($w->wait(0.1), $w->wait());

echo "-- deregister\n";
$w = $s->watch();
$b->deregister();
var_dump($c->get("{$p}api-2"), $b->lease(), $b->isActive());
$b->deregister();
$e = collect($w, 1);
var_dump(count($e), $e[0]->type === Synod\ServiceEvent::REMOVED, $e[0]->instance->id);

echo "-- registered again after its lease is lost\n";
$lost = $r->lease();
$c->leaseFor($lost)->revoke();
var_dump($c->get("{$p}api-1"));
$t = microtime(true);
while ($c->get("{$p}api-1") === null && microtime(true) - $t < 8) {
    usleep(50000);
}
$kv = $c->getKeyValue("{$p}api-1");
var_dump($kv !== null && $kv->lease === $r->lease() && $kv->lease !== $lost, $r->isActive());
echo show($s->instances()[0]), "\n";
$e = collect($w, 2);
echo implode(' ', array_map(fn($e) => "$e->type:{$e->instance->id}", $e)), "\n";

echo "-- a forked child owns no registration\n";
$pid = pcntl_fork();
if ($pid === 0) {
    $r->deregister();
    exit($r->lease() === null && !$r->isActive() ? 0 : 1);
}
pcntl_waitpid($pid, $st);
var_dump(pcntl_wexitstatus($st), $r->isActive(), $c->get("{$p}api-1") !== null);

echo "-- a process that exits deregisters\n";
$php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SYNOD_EXT')];
$child = '$s = (new Synod\Client($argv[1]))->services($argv[2]); $s->register("child", "127.0.0.1", 1234, ttl: 60); echo count($s->instances()), "\n";';
$proc = proc_open([...$php, '-r', $child, $ep, $name], [1 => ['pipe', 'w']], $pipes);
echo stream_get_contents($pipes[1]);
var_dump(proc_close($proc), $c->get("{$p}child"));

echo "-- registered again after its key is deleted\n";
$held = $r->lease();
$c->delete("{$p}api-1");
$t = microtime(true);
while ((($kv = $c->getKeyValue("{$p}api-1")) === null || !$gone($held)) && microtime(true) - $t < 8) {
    usleep(50000);
}
var_dump($kv !== null && $kv->lease === $r->lease(), $r->isActive(), $gone($held));
// The child of the previous step came and went first.
$e = collect($w, 4);
echo implode(' ', array_map(fn($e) => "$e->type:{$e->instance->id}", $e)), "\n";

echo "-- another process that registers the id owns it\n";
$take = '$s = (new Synod\Client($argv[1]))->services($argv[2]); $s->register("api-1", "10.9.9.9", 4444, ttl: 60); echo "registered\n"; fgets(STDIN);';
$proc = proc_open([...$php, '-r', $take, $ep, $name], [0 => ['pipe', 'r'], 1 => ['pipe', 'w']], $pipes);
echo fgets($pipes[1]);
$t = microtime(true);
while ($r->isActive() && microtime(true) - $t < 5) {
    usleep(20000);
}
$mine = $r->lease();
var_dump($r->isActive(), show($s->instances()[0]));
fclose($pipes[0]);
var_dump(proc_close($proc));
// The other process took the key with it when it ended: this one, no
// longer the owner, does not put it back.
usleep(1000000);
var_dump($c->get("{$p}api-1"), $r->isActive(), $gone($mine));
$r = $s->register('api-1', '10.0.0.5', 9090, ['zone' => 'eu-2'], ttl: 5);
var_dump($r->isActive(), show($s->instances()[0]));

echo "-- bad input writes nothing\n";
$before = $c->getPrefix($p);
attempt("services('')", fn() => $c->services(''));
attempt("services('a/b')", fn() => $c->services('a/b'));
attempt("services(129 bytes)", fn() => $c->services(str_repeat('s', 129)));
attempt("services([])", fn() => $c->services([]));
attempt("register('')", fn() => $s->register('', 'h', 80));
attempt("register('a/b')", fn() => $s->register('a/b', 'h', 80));
attempt("register(id not UTF-8)", fn() => $s->register("\xff", 'h', 80));
attempt("register(address '')", fn() => $s->register('x', '', 80));
attempt('register(port 0)', fn() => $s->register('x', 'h', 0));
attempt('register(port 65536)', fn() => $s->register('x', 'h', 65536));
attempt('register(port -1)', fn() => $s->register('x', 'h', -1));
attempt("register(port 'x')", fn() => $s->register('x', 'h', 'x'));
attempt('register(ttl 0)', fn() => $s->register('x', 'h', 80, ttl: 0));
attempt('register(ttl 86401)', fn() => $s->register('x', 'h', 80, ttl: 86401));
attempt('register(meta object)', fn() => $s->register('x', 'h', 80, ['a' => ['b' => new stdClass()]]));
attempt('register(meta NAN)', fn() => $s->register('x', 'h', 80, ['a' => [1, NAN]]));
attempt('register(meta not UTF-8)', fn() => $s->register('x', 'h', 80, ['a' => "\xff"]));
attempt('register(meta key not UTF-8)', fn() => $s->register('x', 'h', 80, ["\xff" => 1]));
$deep = [];
$deep['x'] = &$deep;
attempt('register(meta recursive)', fn() => $s->register('x', 'h', 80, $deep));
attempt('register(meta too large)', fn() => $s->register('x', 'h', 80, ['a' => str_repeat('x', 1600000)]));
attempt('register(meta string)', fn() => $s->register('x', 'h', 80, 'meta'));
attempt("pick('sticky')", fn() => $s->pick('sticky'));
attempt('markDown(-1)', fn() => $s->markDown($s->instances()[0], -1));
attempt('markDown(NAN)', fn() => $s->markDown($s->instances()[0], NAN));
attempt('markDown(86401)', fn() => $s->markDown($s->instances()[0], 86401));
attempt('markDown(another service)', fn() => $c->services('other')->markDown($s->instances()[0], 1));
attempt('markDown(new ServiceInstance)', fn() => $s->markDown(new Synod\ServiceInstance(), 1));
attempt('wait(-1)', fn() => $s->watch()->wait(-1));
attempt('new Synod\ServiceRegistry', fn() => (new Synod\ServiceRegistry())->instances());
attempt('new Synod\Registration', fn() => (new Synod\Registration())->deregister());
attempt('new Synod\ServiceWatch', fn() => (new Synod\ServiceWatch())->wait(0));
attempt('a property write', function () use ($s) { $s->service = 'x'; });
var_dump($c->getPrefix($p) === $before);
$dead = new Synod\Client('127.0.0.1:1', connect_timeout: 0.3, request_timeout: 1.0);
attempt('register on a dead server', fn() => get_class($dead->services($name)->register('x', 'h', 80)));
attempt('instances on a dead server', fn() => $dead->services($name)->instances());

$r->deregister();
$c->deletePrefix($p);
?>
--EXPECTF--
-- register
bool(true)
NULL
array(0) {
}
bool(true)
string(5) "api-1"
bool(true)
bool(true)
bool(true)
bool(true)
string(128) "{"id":"api-1","address":"10.0.0.5","port":8080,"meta":{"zone":"eu-1","weight":2,"tags":["a","b"],"7":1.5,"on":true,"none":null}}"
bool(true)
api-1 10.0.0.5:8080 {"zone":"eu-1","weight":2,"tags":["a","b"],"7":1.5,"on":true,"none":null}
api-2 10.0.0.6:8081 []
bool(true)
int(8080)
float(1.5)
array(2) {
  [0]=>
  string(1) "a"
  [1]=>
  string(1) "b"
}
bool(true)
-- registering again updates in place
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
api-1 10.0.0.5:9090 {"zone":"eu-2"}
api-2 10.0.0.6:8081 []
bool(true)
bool(true)
-- keys written by other clients
api-1 10.0.0.5:9090 {"zone":"eu-2"}
api-2 10.0.0.6:8081 []
go-1 10.0.0.9:7000 []
-- pick
api-1 api-2 go-1 api-1 api-2 go-1
bool(true)
bool(true)
NULL
NULL
NULL
string(5) "api-2"
string(5) "api-2"
-- watch
added api-1 10.0.0.5:8080 {"zone":"eu-1","weight":2,"tags":["a","b"],"7":1.5,"on":true,"none":null}
added api-2 10.0.0.6:8081 []
updated api-1 10.0.0.5:9090 {"zone":"eu-2"}
added go-1 10.0.0.9:7000 []
bool(true)
bool(true)
0 added bad-json 10.0.0.10:7001 []
1 removed bad-json 10.0.0.10:7001 []
2 removed go-1 10.0.0.9:7000 []
array(0) {
}
api-1 10.0.0.5:9090 {"zone":"eu-2"}
api-2 10.0.0.6:8081 []
array(0) {
}
array(0) {
}
-- deregister
NULL
NULL
bool(false)
int(1)
bool(true)
string(5) "api-2"
-- registered again after its lease is lost
NULL
bool(true)
bool(true)
api-1 10.0.0.5:9090 {"zone":"eu-2"}
removed:api-1 added:api-1
-- a forked child owns no registration
int(0)
bool(true)
bool(true)
-- a process that exits deregisters
2
int(0)
NULL
-- registered again after its key is deleted
bool(true)
bool(true)
bool(true)
added:child removed:child removed:api-1 added:api-1
-- another process that registers the id owns it
registered
bool(false)
string(22) "api-1 10.9.9.9:4444 []"
int(0)
NULL
bool(false)
bool(true)
bool(true)
string(35) "api-1 10.0.0.5:9090 {"zone":"eu-2"}"
-- bad input writes nothing
services(''): ValueError: the service name must not be empty
services('a/b'): ValueError: the service name must not contain '/', "a/b" given
services(129 bytes): ValueError: the service name has 129 bytes, more than 128
services([]): TypeError: Invalid value given for argument `service`.
register(''): ValueError: the instance id must not be empty
register('a/b'): ValueError: the instance id must not contain '/', "a/b" given
register(id not UTF-8): ValueError: the instance id must be UTF-8
register(address ''): ValueError: the address must not be empty
register(port 0): ValueError: the port must be in [1, 65535], 0 given
register(port 65536): ValueError: the port must be in [1, 65535], 65536 given
register(port -1): ValueError: the port must be in [1, 65535], -1 given
register(port 'x'): TypeError: Invalid value given for argument `port`.
register(ttl 0): ValueError: the ttl must be a whole number of seconds in [1, 86400], 0 given
register(ttl 86401): ValueError: the ttl must be a whole number of seconds in [1, 86400], 86401 given
register(meta object): ValueError: meta["a"]["b"]: is of type Object; only null, bool, int, float, string and array can be stored
register(meta NAN): ValueError: meta["a"][1]: is NaN, which JSON cannot hold
register(meta not UTF-8): ValueError: meta["a"]: is a string that is not UTF-8, which JSON cannot hold
register(meta key not UTF-8): ValueError: meta has a key that is not UTF-8, which JSON cannot hold
register(meta recursive): ValueError: meta nests deeper than 64 levels
register(meta too large): ValueError: the instance's JSON has 1600050 bytes, more than the 1570816 that fit in one etcd request
register(meta string): TypeError: Invalid value given for argument `meta`.
pick('sticky'): ValueError: the strategy must be 'round-robin' or 'random', "sticky" given
markDown(-1): ValueError: seconds must be in [0, 86400], -1 given
markDown(NAN): ValueError: seconds must be in [0, 86400], NaN given
markDown(86401): ValueError: seconds must be in [0, 86400], 86401 given
markDown(another service): ValueError: the instance belongs to service "phpt-svc-%s", not "other"
markDown(new ServiceInstance): Exception: You cannot instantiate this class from PHP.
wait(-1): ValueError: timeout must be a number of seconds in [0, 86400], -1 given
new Synod\ServiceRegistry: Exception: You cannot instantiate this class from PHP.
new Synod\Registration: Exception: You cannot instantiate this class from PHP.
new Synod\ServiceWatch: Exception: You cannot instantiate this class from PHP.
a property write: Exception: No setter available for this property.
bool(true)
register on a dead server: Synod\Exception\ConnectionException: %s
instances on a dead server: Synod\Exception\ConnectionException: %s
