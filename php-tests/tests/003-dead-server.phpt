--TEST--
Synod\Client: a server that is down gives ConnectionException within the timeout, not a hang
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
$s = stream_socket_server('tcp://127.0.0.1:0');
$addr = stream_socket_get_name($s, false);
fclose($s); // nothing listens there now
$c = new Synod\Client($addr, connect_timeout: 0.5, request_timeout: 1.0);
$t = microtime(true);
try {
    $c->get('k');
} catch (Synod\Exception\ConnectionException $e) {
    echo "ConnectionException\n";
}
var_dump(microtime(true) - $t < 3.0);
// A dead endpoint first in the list fails over to a live one.
$f = new Synod\Client([$addr, getenv('SYNOD_ENDPOINT')], connect_timeout: 0.5);
var_dump($f->put('phpt/dead/failover', 'x') > 0);
?>
--EXPECT--
ConnectionException
bool(true)
bool(true)
