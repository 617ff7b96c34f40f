--TEST--
Synod\Client: put revisions and leases, getAndPut, putIfAbsent, compareAndSwap, delete/getAndDelete/deletePrefix/getAndDeletePrefix
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$p = 'phpt/put-delete/' . bin2hex(random_bytes(4)) . '/';

echo "-- put\n";
$revs = [];
foreach (['a', 'b', 'a'] as $k) {
    $revs[] = $c->put("$p$k", "value of $k");
}
var_dump($revs[0] > 0 && $revs[1] > $revs[0] && $revs[2] > $revs[1]);
var_dump($c->getKeyValue("{$p}a")->modRevision === $revs[2]);
$lease = $c->lease(30, keep_alive: false);
$rl = $c->put("{$p}leased", 'x', lease: $lease->id);
$kv = $c->getKeyValue("{$p}leased");
var_dump($rl > $revs[2], $kv->lease === $lease->id);
// Writing without a lease detaches the key.
$c->put("{$p}leased", 'y');
var_dump($c->getKeyValue("{$p}leased")->lease);
try {
    $c->put("{$p}x", 'v', lease: 0x7fff0001);
} catch (Synod\Exception\LeaseNotFoundException $e) {
    echo get_class($e), ' ', $e->getCode(), "\n";
}
var_dump($c->get("{$p}x"));

echo "-- getAndPut\n";
var_dump($c->getAndPut("{$p}gp", 'first'));
$prev = $c->getAndPut("{$p}gp", 'second', lease: $lease->id);
var_dump($prev instanceof Synod\KeyValue, $prev->key === "{$p}gp", $prev->value, $prev->version, $prev->lease);
$now = $c->getKeyValue("{$p}gp");
var_dump($now->value, $now->version, $now->lease === $lease->id, $now->createRevision === $prev->createRevision);
$prev = $c->getAndPut("{$p}gp", "third\0");
var_dump($prev->value, $prev->lease === $lease->id, $c->get("{$p}gp") === "third\0");

echo "-- putIfAbsent\n";
var_dump($c->putIfAbsent("{$p}pia", 'p1'));
var_dump($c->putIfAbsent("{$p}pia", 'p2'));
var_dump($c->get("{$p}pia"));
var_dump($c->putIfAbsent("{$p}pial", 'l', lease: $lease->id));
var_dump($c->getKeyValue("{$p}pial")->lease === $lease->id);
// Absent again once deleted.
$c->delete("{$p}pia");
var_dump($c->putIfAbsent("{$p}pia", 'p3'), $c->get("{$p}pia"));

echo "-- compareAndSwap\n";
var_dump($c->compareAndSwap("{$p}pia", 'p3', 'p4'));
var_dump($c->get("{$p}pia"));
var_dump($c->compareAndSwap("{$p}pia", 'p3', 'p5'));
var_dump($c->get("{$p}pia"));
var_dump($c->compareAndSwap("{$p}absent", '', 'new'));
var_dump($c->get("{$p}absent"));
var_dump($c->compareAndSwap("{$p}pia", 'p4', "bin\0\xff", lease: $lease->id));
$kv = $c->getKeyValue("{$p}pia");
var_dump($kv->value === "bin\0\xff", $kv->lease === $lease->id);
var_dump($c->compareAndSwap("{$p}pia", "bin\0", 'no'));

echo "-- delete\n";
var_dump($c->delete("{$p}b"), $c->delete("{$p}b"), $c->get("{$p}b"));
var_dump($c->getAndDelete("{$p}absent"));
$c->put("{$p}gd", 'gone soon');
$gone = $c->getAndDelete("{$p}gd");
var_dump($gone->key === "{$p}gd", $gone->value, $gone->version);
var_dump($c->get("{$p}gd"), $c->getAndDelete("{$p}gd"));

echo "-- deletePrefix\n";
foreach (['d/1', 'd/2', 'd/3', 'dx'] as $k) {
    $c->put("$p$k", $k);
}
var_dump($c->deletePrefix("{$p}d/"), $c->deletePrefix("{$p}d/"), $c->get("{$p}dx"));

echo "-- getAndDeletePrefix\n";
foreach (['e/2', 'e/1', "e/\xff"] as $k) {
    $c->put("$p$k", "v:$k");
}
$kvs = $c->getAndDeletePrefix("{$p}e/");
foreach ($kvs as $kv) {
    echo bin2hex(substr($kv->key, strlen($p))), ' ', bin2hex($kv->value), ' ', $kv->version, "\n";
}
var_dump($c->getAndDeletePrefix("{$p}e/"), $c->countPrefix("{$p}e/"));
$left = $c->getAndDeletePrefix($p);
var_dump(count($left), $c->countPrefix($p));
$lease->revoke();
?>
--EXPECT--
-- put
bool(true)
bool(true)
bool(true)
bool(true)
int(0)
Synod\Exception\LeaseNotFoundException 5
NULL
-- getAndPut
NULL
bool(true)
bool(true)
string(5) "first"
int(1)
int(0)
string(6) "second"
int(2)
bool(true)
bool(true)
string(6) "second"
bool(true)
bool(true)
-- putIfAbsent
bool(true)
bool(false)
string(2) "p1"
bool(true)
bool(true)
bool(true)
string(2) "p3"
-- compareAndSwap
bool(true)
string(2) "p4"
bool(false)
string(2) "p4"
bool(false)
NULL
bool(true)
bool(true)
bool(true)
bool(false)
-- delete
int(1)
int(0)
NULL
NULL
bool(true)
string(9) "gone soon"
int(1)
NULL
NULL
-- deletePrefix
int(3)
int(0)
string(2) "dx"
-- getAndDeletePrefix
652f31 763a652f31 1
652f32 763a652f32 1
652fff 763a652fff 1
array(0) {
}
int(0)
int(6)
int(0)
