--TEST--
examples/: discover.php (servers register, a client lists, picks in turn, marks one down and sees a server come and two go) and config-mirror.php (changes made elsewhere show up, own writes are read back)
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)');
if (!function_exists('posix_kill')) die('skip posix');
?>
--FILE--
<?php
$php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SYNOD_EXT')];
$ep = getenv('SYNOD_ENDPOINT');
$dir = __DIR__ . '/../../examples';
$c = new Synod\Client($ep);
$c->deletePrefix('synod/services/greeter/');
$c->deletePrefix('app/settings/');
// Under valgrind PHP starts many times slower: longer windows to watch in.
$slow = (bool) getenv('SYNOD_VALGRIND');

function start(array $cmd, &$pipes)
{
    return proc_open($cmd, [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
}

echo "-- discover.php\n";
$a = start([...$php, "$dir/discover.php", $ep, 'serve', 'greeter-a', '9001', $slow ? '90' : '20'], $pa);
$b = start([...$php, "$dir/discover.php", $ep, 'serve', 'greeter-b', '9002', $slow ? '90' : '20'], $pb);
echo fgets($pa[1]), fgets($pb[1]);
$cl = start([...$php, "$dir/discover.php", $ep, 'client', $slow ? '30' : '3'], $pc);
$out = '';
while (!str_contains($out, 'watching') && ($line = fgets($pc[1])) !== false) {
    $out .= $line;
}
echo $out;
// A third server comes and goes (its own exit deregisters it), then the first
// is stopped with SIGTERM.
$x = start([...$php, "$dir/discover.php", $ep, 'serve', 'greeter-c', '9003', '0.5'], $px);
echo stream_get_contents($px[1]), stream_get_contents($px[2]);
var_dump(proc_close($x));
posix_kill(proc_get_status($a)['pid'], SIGTERM);
echo stream_get_contents($pa[1]), stream_get_contents($pa[2]);
var_dump(proc_close($a));
echo stream_get_contents($pc[1]), stream_get_contents($pc[2]);
var_dump(proc_close($cl));
posix_kill(proc_get_status($b)['pid'], SIGTERM);
echo stream_get_contents($pb[1]), stream_get_contents($pb[2]);
var_dump(proc_close($b), $c->getPrefix('synod/services/greeter/'));

echo "-- config-mirror.php\n";
$m = start([...$php, "$dir/config-mirror.php", $ep, $slow ? '20' : '2'], $pm);
echo preg_replace('/revision \d+/', 'revision N', fgets($pm[1]));
echo fgets($pm[1]);
$c->put('app/settings/greeting', 'hola');
usleep(300000);
$c->delete('app/settings/max_items');
echo preg_replace('/^rev \d+/m', 'rev N', stream_get_contents($pm[1])), stream_get_contents($pm[2]);
var_dump(proc_close($m));
$c->deletePrefix('app/settings/');
?>
--EXPECTF--
-- discover.php
registered greeter-a as synod/services/greeter/greeter-a (ttl 5s)
registered greeter-b as synod/services/greeter/greeter-b (ttl 5s)
2 instances of greeter:
  greeter-a at 127.0.0.1:9001, version 1.4.2
  greeter-b at 127.0.0.1:9002, version 1.4.2
request 1 -> greeter-a (127.0.0.1:9001)
request 2 -> greeter-b (127.0.0.1:9002)
request 3 -> greeter-a (127.0.0.1:9001)
request 4 -> greeter-b (127.0.0.1:9002)
greeter-a failed: marked down for 10 s
request 5 -> greeter-b
request 6 -> greeter-b
watching for %ds
registered greeter-c as synod/services/greeter/greeter-c (ttl 5s)
greeter-c stopping
int(0)
greeter-a stopping
int(0)
added greeter-c at 127.0.0.1:9003; now greeter-a, greeter-b, greeter-c
removed greeter-c at 127.0.0.1:9003; now greeter-a, greeter-b
removed greeter-a at 127.0.0.1:9001; now greeter-b
int(0)
greeter-b stopping
int(0)
array(0) {
}
-- config-mirror.php
loaded 2 settings at revision N: {"greeting":"hello","max_items":"10"}
own write visible: yes
rev N: greeting = hola
rev N: max_items deleted
greeting: hola
int(0)
