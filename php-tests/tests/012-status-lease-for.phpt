--TEST--
Synod\Client: status() fields, leaseFor() attaches to an existing lease (and refuses a gone one)
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$s = $c->status();
var_dump(array_keys($s));
var_dump(preg_match('/^3\.\d+\.\d+$/', $s['version']) === 1);
var_dump(preg_match('/^[0-9a-f]+$/', $s['memberId']) === 1, $s['leader'] === $s['memberId']);
var_dump($s['revision'] > 0, $s['raftIndex'] > 0, $s['raftTerm'] > 0, $s['dbSize'] > 0);

$k = 'phpt/leasefor/' . bin2hex(random_bytes(4));
$granted = $c->lease(30, keep_alive: false);
$c->put($k, 'v', lease: $granted->id);
$same = $c->leaseFor($granted->id);
var_dump($same->id === $granted->id, $same->ttl, $same->isKeptAlive());
var_dump($same->keys() === [$k]);
$same->startKeepAlive();
var_dump($same->isKeptAlive(), $granted->isKeptAlive()); // one lease, one keep-alive
$same->revoke();
var_dump($c->get($k), $granted->isKeptAlive());
try { $c->leaseFor($granted->id); } catch (Synod\Exception\LeaseNotFoundException $e) { echo get_class($e), ': ', $e->getMessage(), "\n"; }
?>
--EXPECT--
array(8) {
  [0]=>
  string(7) "version"
  [1]=>
  string(6) "dbSize"
  [2]=>
  string(6) "leader"
  [3]=>
  string(8) "memberId"
  [4]=>
  string(9) "clusterId"
  [5]=>
  string(9) "raftIndex"
  [6]=>
  string(8) "raftTerm"
  [7]=>
  string(8) "revision"
}
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
int(30)
bool(false)
bool(true)
bool(true)
bool(true)
NULL
bool(false)
Synod\Exception\LeaseNotFoundException: etcdserver: requested lease not found
