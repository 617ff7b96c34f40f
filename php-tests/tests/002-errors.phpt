--TEST--
Synod\Client: bad arguments raise TypeError/ValueError, server errors SynodException
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
foreach ([42, [1, 2], null] as $bad) {
    try { new Synod\Client($bad); } catch (TypeError $e) { echo get_class($e), ': ', $e->getMessage(), "\n"; }
}
foreach (['', [], ['ok:1', '']] as $bad) {
    try { new Synod\Client($bad); } catch (ValueError $e) { echo get_class($e), ': ', $e->getMessage(), "\n"; }
}
// The keys of an endpoint list are ignored, even ones that are not UTF-8.
var_dump(get_class(new Synod\Client(["\xff" => '127.0.0.1:2379', 'b' => '127.0.0.1:2380'])));
foreach ([0, -1, NAN, INF] as $t) {
    try { new Synod\Client('127.0.0.1:2379', request_timeout: $t); } catch (ValueError $e) { echo "ValueError\n"; }
}
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
try {
    $c->put('', 'x');
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
    var_dump($e instanceof RuntimeException);
}
try {
    $c->put('phpt/errors/k', 'v', lease: 0x7fff1234);
} catch (Synod\Exception\LeaseNotFoundException $e) {
    echo get_class($e), "\n";
}
try {
    $c->put('phpt/errors/big', str_repeat('x', 1600 * 1024));
} catch (Synod\Exception\SynodException $e) {
    echo $e->getMessage(), "\n";
}
foreach (['ConnectionException', 'TimeoutException', 'CompactedException', 'LeaseNotFoundException'] as $cls) {
    var_dump(is_subclass_of("Synod\\Exception\\$cls", 'Synod\Exception\SynodException'));
}
// The client still works after all that.
var_dump($c->put('phpt/errors/after', 'ok') > 0);
?>
--EXPECT--
TypeError: endpoints must be a string or a list of strings
TypeError: endpoints must be a string or a list of strings
TypeError: endpoints must be a string or a list of strings
ValueError: endpoints must not be empty
ValueError: endpoints must not be empty
ValueError: endpoints must not be empty
string(12) "Synod\Client"
ValueError
ValueError
ValueError
ValueError
Synod\Exception\SynodException: etcdserver: key is not provided
bool(true)
Synod\Exception\LeaseNotFoundException
etcdserver: request is too large
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
