--TEST--
Synod\Client: serializable reads (get, getKeyValue, getPrefix, getPrefixKeyValues, countPrefix) give what linearizable ones give, fail the same way on a dead server, and refuse non-bool flags
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$p = 'phpt/serializable/' . bin2hex(random_bytes(4)) . '/';
$first = $c->put("{$p}a", '1');
$c->put("{$p}b", "2\0");
$c->put("{$p}a", '3');

echo "-- same answers as linearizable reads\n";
foreach ([
    'get' => fn(bool $s) => $c->get("{$p}a", serializable: $s),
    'get missing' => fn(bool $s) => $c->get("{$p}missing", serializable: $s),
    'getKeyValue' => fn(bool $s) => $c->getKeyValue("{$p}b", serializable: $s),
    'getKeyValue at a revision' => fn(bool $s) => $c->getKeyValue("{$p}a", revision: $first, serializable: $s),
    'getPrefix' => fn(bool $s) => $c->getPrefix($p, serializable: $s),
    'getPrefix desc, limit' => fn(bool $s) => $c->getPrefix($p, limit: 1, sort: 'desc', serializable: $s),
    'getPrefixKeyValues' => fn(bool $s) => $c->getPrefixKeyValues($p, serializable: $s),
    'countPrefix' => fn(bool $s) => $c->countPrefix($p, serializable: $s),
] as $label => $f) {
    $lin = $f(false);
    $ser = $f(true);
    $shown = match (true) {
        is_object($ser) => $ser->value,
        is_array($ser) && isset($ser[0]) => array_map(fn($kv) => $kv->value, $ser),
        default => $ser,
    };
    echo $label, ': ', var_export($lin == $ser, true), ' ', str_replace(addcslashes($p, '/'), 'P/', json_encode($shown)), "\n";
}
// A serializable read reports the revision it was served at too.
$r = $c->put("{$p}c", 'x');
$c->get("{$p}a", serializable: true);
var_dump($c->lastRevision() >= $r);
// Positional, after the other optional arguments.
var_dump($c->get("{$p}a", true), $c->countPrefix($p, true));

echo "-- bad flags\n";
foreach ([
    'get(k, serializable: [])' => fn() => $c->get("{$p}a", serializable: []),
    'get(k, serializable: x)' => fn() => $c->get("{$p}a", serializable: 'x'),
    'getKeyValue(k, serializable: null)' => fn() => $c->getKeyValue("{$p}a", serializable: null),
    'getPrefix(p, serializable: new stdClass)' => fn() => $c->getPrefix($p, serializable: new stdClass()),
    'getPrefixKeyValues(p, serializable: 1.5)' => fn() => $c->getPrefixKeyValues($p, serializable: 1.5),
    'countPrefix(p, serializable: [])' => fn() => $c->countPrefix($p, serializable: []),
    'get(k, serialisable: true)' => fn() => $c->get("{$p}a", serialisable: true),
    'getPrefix(p, limit: -1, serializable: true)' => fn() => $c->getPrefix($p, limit: -1, serializable: true),
    'getKeyValue(k, revision: -1, serializable: true)' => fn() => $c->getKeyValue("{$p}a", revision: -1, serializable: true),
] as $label => $f) {
    try {
        $f();
        echo "$label: no exception\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), "\n";
    }
}

echo "-- a dead server\n";
$s = stream_socket_server('tcp://127.0.0.1:0');
$dead = stream_socket_get_name($s, false);
fclose($s);
$d = new Synod\Client($dead, connect_timeout: 0.5, request_timeout: 1.0);
foreach ([
    'get' => fn() => $d->get('k', serializable: true),
    'getKeyValue' => fn() => $d->getKeyValue('k', serializable: true),
    'getPrefix' => fn() => $d->getPrefix('k', serializable: true),
    'getPrefixKeyValues' => fn() => $d->getPrefixKeyValues('k', serializable: true),
    'countPrefix' => fn() => $d->countPrefix('k', serializable: true),
] as $label => $f) {
    $t = gettimeofday(true);
    try {
        $f();
        echo "$label: no exception\n";
    } catch (Synod\Exception\ConnectionException $e) {
        echo "$label: ConnectionException ", var_export(gettimeofday(true) - $t < 3.0, true), "\n";
    }
}
var_dump($d->lastRevision());
$c->deletePrefix($p);
?>
--EXPECT--
-- same answers as linearizable reads
get: true "3"
get missing: true null
getKeyValue: true "2\u0000"
getKeyValue at a revision: true "1"
getPrefix: true {"P/a":"3","P/b":"2\u0000"}
getPrefix desc, limit: true {"P/b":"2\u0000"}
getPrefixKeyValues: true ["3","2\u0000"]
countPrefix: true 2
bool(true)
string(1) "3"
int(3)
-- bad flags
get(k, serializable: []): TypeError
get(k, serializable: x): TypeError
getKeyValue(k, serializable: null): TypeError
getPrefix(p, serializable: new stdClass): TypeError
getPrefixKeyValues(p, serializable: 1.5): TypeError
countPrefix(p, serializable: []): TypeError
get(k, serialisable: true): Error
getPrefix(p, limit: -1, serializable: true): ValueError
getKeyValue(k, revision: -1, serializable: true): ValueError
-- a dead server
get: ConnectionException true
getKeyValue: ConnectionException true
getPrefix: ConnectionException true
getPrefixKeyValues: ConnectionException true
countPrefix: ConnectionException true
NULL
