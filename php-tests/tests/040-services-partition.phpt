--TEST--
Synod\ServiceRegistry cut off from the server past its TTL: the instance expires there, and comes back on a new lease once the server is reachable again; unless another process registered the same id meanwhile, which then keeps it
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
exec('command -v python3', $out, $rc);
if ($rc !== 0) die('skip python3 not on PATH');
?>
--FILE--
<?php
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$name = 'phpt-partition-' . bin2hex(random_bytes(4));
$key = "synod/services/$name/api-1";
$portFile = tempnam(sys_get_temp_dir(), 'proxy');
$slow = getenv('SYNOD_VALGRIND') ? 10 : 1;
// The waits below are upper bounds, wide because a CI run once needed a
// retry here against etcd: a loaded machine can stretch a lease's expiry
// and a reconnect well past their nominal times.

require __DIR__ . '/proxy.inc';

/** Waits up to $timeout seconds for $f() to be true; whether it became true. */
function until(callable $f, float $timeout): bool
{
    $end = microtime(true) + $timeout;
    while (!($ok = $f()) && microtime(true) < $end) {
        usleep(50000);
    }
    return $ok;
}

$proxy = proxy($ep, $portFile);
$port = (int) file_get_contents($portFile);
$via = new Synod\Client("127.0.0.1:$port", connect_timeout: 0.5, request_timeout: 1.0);
$s = $via->services($name);
$r = $s->register('api-1', '10.0.0.5', 8080, ['side' => 'partitioned'], ttl: 2);
$first = $r->lease();
var_dump($c->getKeyValue($key)->lease === $first, $r->isActive());

echo "-- cut off: the lease expires on the server\n";
stop($proxy);
var_dump(until(fn() => $c->get($key) === null, 12 * $slow));
var_dump(until(fn() => !$r->isActive(), 6 * $slow));

echo "-- reachable again: registered again on a new lease\n";
$proxy = proxy($ep, $portFile, $port);
var_dump(until(fn() => $c->get($key) !== null, 20 * $slow));
$kv = $c->getKeyValue($key);
var_dump(json_decode($kv->value, true)['meta'], $kv->lease === $r->lease(), $kv->lease !== $first, $r->isActive());
var_dump(array_map(fn($i) => $i->id, $c->services($name)->instances()));

echo "-- cut off again, and another process takes the id meanwhile\n";
stop($proxy);
var_dump(until(fn() => $c->get($key) === null, 12 * $slow));
$other = $c->services($name)->register('api-1', '10.0.0.9', 9090, ['side' => 'other'], ttl: 30);
$proxy = proxy($ep, $portFile, $port);
// Once the partitioned side can reach the server it must see the id taken
// and leave it; give it time to try (its backoff is at most 2 s).
sleep(5 * $slow);
$kv = $c->getKeyValue($key);
var_dump(json_decode($kv->value, true)['meta'], $kv->lease === $other->lease(), $r->isActive());

$other->deregister();
$r->deregister();
stop($proxy);
@unlink($portFile);
$c->deletePrefix("synod/services/$name/");
?>
--EXPECT--
bool(true)
bool(true)
-- cut off: the lease expires on the server
bool(true)
bool(true)
-- reachable again: registered again on a new lease
bool(true)
array(1) {
  ["side"]=>
  string(11) "partitioned"
}
bool(true)
bool(true)
bool(true)
array(1) {
  [0]=>
  string(5) "api-1"
}
-- cut off again, and another process takes the id meanwhile
bool(true)
array(1) {
  ["side"]=>
  string(5) "other"
}
bool(true)
bool(false)
