--TEST--
Synod\Client: getKeyValue metadata and past reads, read-only KeyValue, getPrefix/getPrefixKeyValues/countPrefix, bad arguments, compacted reads
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$p = 'phpt/keyvalue/' . bin2hex(random_bytes(4)) . '/';

echo "-- getKeyValue\n";
var_dump($c->getKeyValue("{$p}k"));
$r1 = $c->put("{$p}k", "one\0\xff");
$r2 = $c->put("{$p}k", 'two');
$kv = $c->getKeyValue("{$p}k");
var_dump($kv instanceof Synod\KeyValue);
var_dump($kv->key === "{$p}k", $kv->value);
var_dump($kv->createRevision === $r1, $kv->modRevision === $r2, $kv->version, $kv->lease);
// A past revision gives the key as it was then.
$old = $c->getKeyValue("{$p}k", revision: $r1);
var_dump($old->value === "one\0\xff", $old->createRevision === $r1, $old->modRevision === $r1, $old->version);
var_dump($c->getKeyValue("{$p}k", revision: $r1 - 1));
var_dump($kv);

echo "-- read-only\n";
try {
    $kv->value = 'changed';
    echo "no exception\n";
} catch (Throwable $e) {
    echo get_class($e), "\n";
}
var_dump($kv->value);

echo "-- getPrefix\n";
$c->put("{$p}p/2", "two\0");
$c->put("{$p}p/1", 'one');
$c->put("{$p}p/\xff\x00z", "bin\xff\x00");
$c->put("{$p}p/a", 'A');
$c->put("{$p}p", 'not under p/');
$c->put("{$p}q/1", 'not under p/ either');
$m = $c->getPrefix("{$p}p/");
var_dump(count($m));
foreach ($m as $k => $v) {
    echo bin2hex(substr($k, strlen($p))), ' => ', bin2hex($v), "\n";
}
var_dump(array_keys($c->getPrefix("{$p}p/", limit: 2)) === ["{$p}p/1", "{$p}p/2"]);
var_dump(array_keys($c->getPrefix("{$p}p/", limit: 2, sort: 'desc')) === ["{$p}p/\xff\x00z", "{$p}p/a"]);
var_dump(array_keys($c->getPrefix("{$p}p/", sort: 'DESC')) === ["{$p}p/\xff\x00z", "{$p}p/a", "{$p}p/2", "{$p}p/1"]);
var_dump(array_keys($c->getPrefix("{$p}p/", sort: 'asc', limit: 0)) === ["{$p}p/1", "{$p}p/2", "{$p}p/a", "{$p}p/\xff\x00z"]);
var_dump($c->getPrefix("{$p}none/"));
// The prefix as it was at an earlier revision.
var_dump($c->getPrefix("{$p}", revision: $r2) === ["{$p}k" => 'two']);
// A key that reads as a decimal integer becomes an integer array key.
$n = (string) random_int(10 ** 15, 10 ** 16 - 1);
$c->put($n, 'numeric');
$c->put("0$n", 'leading zero');
var_dump(array_keys($c->getPrefix($n)) === [(int) $n], array_keys($c->getPrefix("0$n")) === ["0$n"]);
$c->delete($n);
$c->delete("0$n");

echo "-- getPrefixKeyValues\n";
$kvs = $c->getPrefixKeyValues("{$p}p/");
var_dump(count($kvs), $kvs[0] instanceof Synod\KeyValue, $kvs[0]->key === "{$p}p/1", $kvs[0]->value, $kvs[1]->value);
var_dump($kvs[0]->createRevision > $r2, $kvs[0]->version);
$kvs = $c->getPrefixKeyValues("{$p}p/", limit: 1, sort: 'desc');
var_dump(count($kvs), $kvs[0]->key === "{$p}p/\xff\x00z", $kvs[0]->value === "bin\xff\x00");
var_dump($c->getPrefixKeyValues("{$p}none/"));
var_dump(count($c->getPrefixKeyValues("{$p}", revision: $r1)));

echo "-- countPrefix\n";
var_dump($c->countPrefix("{$p}p/"), $c->countPrefix("{$p}"), $c->countPrefix("{$p}none/"));

echo "-- bad arguments\n";
$bad = [
    fn() => $c->getPrefix($p, limit: -1),
    fn() => $c->getPrefix($p, sort: 'sideways'),
    fn() => $c->getPrefix($p, revision: -1),
    fn() => $c->getPrefixKeyValues($p, limit: -5),
    fn() => $c->getPrefixKeyValues($p, sort: ''),
    fn() => $c->getKeyValue("{$p}k", revision: -1),
];
foreach ($bad as $f) {
    try {
        $f();
        echo "no exception\n";
    } catch (ValueError $e) {
        echo get_class($e), ': ', $e->getMessage(), "\n";
    }
}
try {
    $c->getKeyValue("{$p}k", revision: $r2 + 1000000);
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}

echo "-- compacted\n";
$c->compact($r2);
foreach ([
    fn() => $c->getKeyValue("{$p}k", revision: $r1),
    fn() => $c->getPrefix($p, revision: $r1),
    fn() => $c->getPrefixKeyValues($p, revision: $r1),
] as $f) {
    try {
        $f();
        echo "no exception\n";
    } catch (Synod\Exception\CompactedException $e) {
        echo get_class($e), ': ', $e->getMessage(), "\n";
        var_dump($e->getCode());
    }
}
// The compaction revision itself is still readable.
var_dump($c->getKeyValue("{$p}k", revision: $r2)->value);
try {
    $c->compact(0);
} catch (ValueError $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
var_dump($c->deletePrefix($p));
?>
--EXPECTF--
-- getKeyValue
NULL
bool(true)
bool(true)
string(3) "two"
bool(true)
bool(true)
int(2)
int(0)
bool(true)
bool(true)
bool(true)
int(1)
NULL
object(Synod\KeyValue)#%d (6) {
  ["key"]=>
  string(24) "phpt/keyvalue/%x/k"
  ["value"]=>
  string(3) "two"
  ["createRevision"]=>
  int(%d)
  ["modRevision"]=>
  int(%d)
  ["version"]=>
  int(2)
  ["lease"]=>
  int(0)
}
-- read-only
Exception
string(3) "two"
-- getPrefix
int(4)
702f31 => 6f6e65
702f32 => 74776f00
702f61 => 41
702fff007a => 62696eff00
bool(true)
bool(true)
bool(true)
bool(true)
array(0) {
}
bool(true)
bool(true)
bool(true)
-- getPrefixKeyValues
int(4)
bool(true)
bool(true)
string(3) "one"
string(4) "two%0"
bool(true)
int(1)
int(1)
bool(true)
bool(true)
array(0) {
}
int(1)
-- countPrefix
int(4)
int(7)
int(0)
-- bad arguments
ValueError: limit must not be negative, -1 given
ValueError: sort must be 'asc' or 'desc', "sideways" given
ValueError: revision must not be negative, -1 given
ValueError: limit must not be negative, -5 given
ValueError: sort must be 'asc' or 'desc', "" given
ValueError: revision must not be negative, -1 given
Synod\Exception\SynodException: etcdserver: mvcc: required revision is a future revision
-- compacted
Synod\Exception\CompactedException: etcdserver: mvcc: required revision has been compacted
int(11)
Synod\Exception\CompactedException: etcdserver: mvcc: required revision has been compacted
int(11)
Synod\Exception\CompactedException: etcdserver: mvcc: required revision has been compacted
int(11)
string(3) "two"
ValueError: revision must be positive, 0 given
int(7)
