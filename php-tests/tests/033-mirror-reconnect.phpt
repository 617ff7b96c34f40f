--TEST--
Synod\Mirror after a lost connection: the history it needed was compacted meanwhile, or the connection stayed down past the request timeout; either way it loads itself again and ends equal to the server
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
exec('command -v python3', $out, $rc);
if ($rc !== 0) die('skip python3 not on PATH');
?>
--FILE--
<?php
// No microtime, usleep or sleep calls here: run-tests.php would retry a
// failed test that makes them and count a pass on retry as a warning.
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$p = 'phpt/mirror-reconnect-' . bin2hex(random_bytes(4)) . '/';
$portFile = tempnam(sys_get_temp_dir(), 'proxy');

require __DIR__ . '/proxy.inc';

$proxy = proxy($ep, $portFile);
$port = (int) file_get_contents($portFile);
var_dump($port > 0);

echo "-- compacted while cut off\n";
$c->put("{$p}a/x", '1');
$c->put("{$p}a/y", '1');
$via = new Synod\Client("127.0.0.1:$port", connect_timeout: 0.5, request_timeout: 10.0);
$m = $via->mirror("{$p}a/");
var_dump($m->get("{$p}a/x"));
stop($proxy);
$c->put("{$p}a/x", '2');
$c->delete("{$p}a/y");
$rev = $c->put("{$p}a/z", '3');
$c->compact($rev);
pause(0.3);
$proxy = proxy($ep, $portFile, $port);
// The watch comes back from the revision after the last it saw, which is
// compacted: the mirror loads itself again instead.
var_dump($m->waitFor($rev, 15), $m->all() === $c->getPrefix("{$p}a/"), $m->get("{$p}a/y"));
$rev = $c->put("{$p}a/w", '4');
var_dump($m->waitFor($rev, 5), $m->get("{$p}a/w"));

echo "-- cut off past the request timeout\n";
$c->put("{$p}b/x", '1');
$via = new Synod\Client("127.0.0.1:$port", connect_timeout: 0.5, request_timeout: 1.0);
$m = $via->mirror("{$p}b/");
stop($proxy);
$rev = $c->put("{$p}b/x", '2');
pause(3);
// The last copy is served meanwhile, and it does not claim to be newer.
var_dump($m->get("{$p}b/x"), $m->waitFor($rev, 0.2));
$proxy = proxy($ep, $portFile, $port);
var_dump($m->waitFor($rev, 15), $m->get("{$p}b/x"), $m->all() === $c->getPrefix("{$p}b/"));

stop($proxy);
@unlink($portFile);
$c->deletePrefix($p);
?>
--EXPECT--
bool(true)
-- compacted while cut off
string(1) "1"
bool(true)
bool(true)
NULL
bool(true)
string(1) "4"
-- cut off past the request timeout
string(1) "1"
bool(false)
bool(true)
string(1) "2"
bool(true)
