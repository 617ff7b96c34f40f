--TEST--
Synod\Client: put, get, delete, binary-safe values, absent keys
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$k = 'phpt/basic/' . bin2hex(random_bytes(4));
var_dump($c->get($k));
$rev = $c->put($k, "a\0b\xff");
var_dump(is_int($rev) && $rev > 1);
var_dump($c->get($k) === "a\0b\xff");
$rev2 = $c->put($k, 'second');
var_dump($rev2 > $rev);
var_dump($c->get($k));
var_dump($c->delete($k));
var_dump($c->delete($k));
var_dump($c->get($k));
// A list of endpoints works too.
$l = new Synod\Client([getenv('SYNOD_ENDPOINT')]);
var_dump($l->get($k));
?>
--EXPECT--
NULL
bool(true)
bool(true)
bool(true)
string(6) "second"
int(1)
int(0)
NULL
NULL
