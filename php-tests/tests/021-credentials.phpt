--TEST--
Synod\Client: username/password are sent when given, and not needed by a server without authentication
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
$k = 'phpt/credentials/' . bin2hex(random_bytes(4));
// The test servers run without authentication: etcd answers Authenticate
// with "authentication is not enabled" and the client goes on without a
// token, as etcd's own client does. (Authentication against an etcd with
// auth enabled, and token renewal, are covered by the Rust client tests.)
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'), username: 'root', password: 'secret');
var_dump($c->put($k, 'v') > 0, $c->get($k));
foreach ([[null, 'pw'], ['', 'pw']] as [$u, $p]) {
    try { new Synod\Client(getenv('SYNOD_ENDPOINT'), username: $u, password: $p); }
    catch (ValueError $e) { echo get_class($e), ': ', $e->getMessage(), "\n"; }
}
try { new Synod\Client(getenv('SYNOD_ENDPOINT'), username: []); } catch (TypeError $e) { echo "TypeError\n"; }
?>
--EXPECT--
bool(true)
string(1) "v"
ValueError: a password needs a username
ValueError: a password needs a username
TypeError
