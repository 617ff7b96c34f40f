--TEST--
Synod\Client: deletePrefix('') and getAndDeletePrefix('') raise ValueError and delete nothing; deleteAll() deletes every key on purpose
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
// deleteAll() empties the whole server this suite runs against; the suite
// runs one test at a time, and every test writes under its own prefix.
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$p = 'phpt/delete-all/' . bin2hex(random_bytes(4)) . '/';
foreach (['a', 'b/c', "\xff"] as $k) {
    $c->put("$p$k", 'v');
}
$c->put("\0root", 'v'); // the lowest key there is

echo "-- an empty prefix is refused\n";
$total = $c->countPrefix('');
$rev = $c->lastRevision();
foreach ([
    "deletePrefix('')" => fn() => $c->deletePrefix(''),
    "getAndDeletePrefix('')" => fn() => $c->getAndDeletePrefix(''),
    'deletePrefix(false)' => fn() => $c->deletePrefix(false), // PHP's string form of false is ''
    'getAndDeletePrefix(prefix: "")' => fn() => $c->getAndDeletePrefix(prefix: ''),
] as $label => $f) {
    try {
        $f();
        echo "$label: no exception\n";
    } catch (ValueError $e) {
        echo "$label: ValueError: ", $e->getMessage(), "\n";
    }
}
var_dump($c->countPrefix('') === $total, $c->countPrefix($p), $c->get("\0root"));
var_dump($c->getKeyValue("{$p}a")->modRevision < $rev);
// A prefix that is not empty but looks falsy is an ordinary prefix.
$c->put('0/x', 'v');
var_dump($c->deletePrefix(0), $c->deletePrefix('0'));

echo "-- deleteAll\n";
$total = $c->countPrefix('');
var_dump($total >= 4);
$deleted = $c->deleteAll();
var_dump($deleted === $total, $c->lastRevision() > $rev);
var_dump($c->countPrefix(''), $c->getPrefix(''), $c->get("\0root"));
var_dump($c->deleteAll());
// The keys' history is still there until compaction.
var_dump($c->getKeyValue("{$p}a", revision: $rev)->value);
try {
    $c->deleteAll('everything');
} catch (ArgumentCountError $e) {
    echo "ArgumentCountError\n";
}

echo "-- a dead server\n";
$s = stream_socket_server('tcp://127.0.0.1:0');
$dead = stream_socket_get_name($s, false);
fclose($s);
$d = new Synod\Client($dead, connect_timeout: 0.5, request_timeout: 1.0);
foreach (['deleteAll' => fn() => $d->deleteAll(), "deletePrefix('')" => fn() => $d->deletePrefix('')] as $label => $f) {
    try {
        $f();
        echo "$label: no exception\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), "\n";
    }
}
?>
--EXPECT--
-- an empty prefix is refused
deletePrefix(''): ValueError: prefix must not be empty; to delete every key, call deleteAll()
getAndDeletePrefix(''): ValueError: prefix must not be empty; to delete every key, call deleteAll()
deletePrefix(false): ValueError: prefix must not be empty; to delete every key, call deleteAll()
getAndDeletePrefix(prefix: ""): ValueError: prefix must not be empty; to delete every key, call deleteAll()
bool(true)
int(3)
string(1) "v"
bool(true)
int(1)
int(0)
-- deleteAll
bool(true)
bool(true)
bool(true)
int(0)
array(0) {
}
NULL
int(0)
string(1) "v"
ArgumentCountError
-- a dead server
deleteAll: Synod\Exception\ConnectionException
deletePrefix(''): ValueError
