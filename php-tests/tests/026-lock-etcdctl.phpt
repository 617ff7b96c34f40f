--TEST--
Synod\Lock and `etcdctl lock` on the same name exclude each other, both ways
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
exec('command -v etcdctl', $out, $rc);
if ($rc !== 0) die('skip etcdctl not on PATH');
?>
--FILE--
<?php
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$n = 'phpt/lock-etcdctl/' . bin2hex(random_bytes(4));
$env = ['ETCDCTL_API' => '3', 'PATH' => getenv('PATH')];

function etcdctl(string $ep, array $env, string ...$args)
{
    $p = proc_open(['etcdctl', "--endpoints=$ep", ...$args], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
    stream_set_blocking($pipes[1], false);
    return [$p, $pipes];
}

// The first line etcdctl prints within `seconds`, or null.
function line_within($pipe, float $seconds): ?string
{
    $until = gettimeofday(true) + $seconds;
    $buf = '';
    while (gettimeofday(true) < $until) {
        $r = [$pipe];
        $w = $e = null;
        if (stream_select($r, $w, $e, 0, 100000)) {
            $chunk = fread($pipe, 4096);
            if ($chunk === '' || $chunk === false) {
                return $buf === '' ? null : $buf;
            }
            $buf .= $chunk;
            if (str_contains($buf, "\n")) {
                return strstr($buf, "\n", true);
            }
        }
    }
    return null;
}

echo "-- etcdctl holds, PHP waits\n";
[$p, $pipes] = etcdctl($ep, $env, 'lock', '--ttl=5', $n);
$key = line_within($pipes[1], 10);
var_dump(str_starts_with((string) $key, "$n/"));
$l = $c->lock($n);
var_dump($l->tryAcquire(), $l->acquire(0.5));
proc_terminate($p); // etcdctl unlocks on SIGTERM
$t = gettimeofday(true);
var_dump($l->acquire(15), gettimeofday(true) - $t < 10);
proc_close($p);

echo "-- PHP holds, etcdctl waits\n";
[$p, $pipes] = etcdctl($ep, $env, 'lock', '--ttl=5', $n, 'echo', 'etcdctl got it');
var_dump(line_within($pipes[1], 1.5));
var_dump($l->isHeld());
$l->release();
var_dump(line_within($pipes[1], 10));
var_dump(proc_close($p));
var_dump($c->countPrefix("$n/"));
?>
--EXPECT--
-- etcdctl holds, PHP waits
bool(true)
bool(false)
bool(false)
bool(true)
bool(true)
-- PHP holds, etcdctl waits
NULL
bool(true)
string(14) "etcdctl got it"
int(0)
int(0)
