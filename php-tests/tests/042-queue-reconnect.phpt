--TEST--
Synod\Queue: a claim waiting through a lost connection, while the history its watch needed was compacted, reads the queue again and claims the job pushed meanwhile instead of failing
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
$n = 'phpt-queue-reconnect-' . bin2hex(random_bytes(4));
$portFile = tempnam(sys_get_temp_dir(), 'proxy');

require __DIR__ . '/proxy.inc';

$proxy = proxy($ep, $portFile);
$port = (int) file_get_contents($portFile);
var_dump($port > 0);

// The worker waits for a job through the proxy, in a process of its own.
$php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SYNOD_EXT')];
$worker = <<<'PHP'
$q = (new Synod\Client($argv[1], connect_timeout: 0.5, request_timeout: 10.0))->queue($argv[2]);
echo "waiting\n";
try {
    $job = $q->claim(20);
    echo $job === null ? "none\n" : "claimed $job->payload\n";
    $job?->ack();
} catch (Throwable $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
PHP;
$proc = proc_open([...$php, '-r', $worker, "127.0.0.1:$port", $n], [1 => ['pipe', 'w']], $pipes);
echo fgets($pipes[1]);
// Time for the claim to scan the empty queue and start its watch.
pause(1);

stop($proxy);
$q = $c->queue($n);
$q->push('pushed while cut off');
$rev = $c->put("$n-other", 'x');
$c->compact($rev);
pause(0.3);
$proxy = proxy($ep, $portFile, $port);

echo stream_get_contents($pipes[1]);
var_dump(proc_close($proc), $q->size());

stop($proxy);
@unlink($portFile);
$c->deletePrefix("$n/");
$c->delete("$n-other");
?>
--EXPECT--
bool(true)
waiting
claimed pushed while cut off
int(0)
int(0)
