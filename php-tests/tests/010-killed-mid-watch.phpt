--TEST--
Synod\Watch: a server killed mid-watch gives ConnectionException within the request timeout, not a hang or a crash
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
if (!getenv('SYNOD_VICTIM_ENDPOINT') || !getenv('SYNOD_VICTIM_PID')) die('skip SYNOD_VICTIM_ENDPOINT/SYNOD_VICTIM_PID not set (run php-tests/run.sh)');
if (!function_exists('posix_kill')) die('skip posix');
?>
--FILE--
<?php
// No microtime, usleep or sleep calls here: run-tests.php retries a failed
// test that makes them, and the retry would only meet the server this test
// killed, hiding the real failure. gettimeofday and time_nanosleep do instead.
$victim = (int) getenv('SYNOD_VICTIM_PID');
if (!posix_kill($victim, 0)) {
    echo "the victim server is not running (already killed by an earlier run?)\n";
}
$c = new Synod\Client(getenv('SYNOD_VICTIM_ENDPOINT'), connect_timeout: 0.5, request_timeout: 1.0);
$k = 'phpt/killed/' . bin2hex(random_bytes(4));
$w = $c->watch($k);
$c->put($k, 'one');
$ev = $w->wait(5);
var_dump(count($ev), $ev[0]->value);
$lease = $c->lease(2);
var_dump($lease->isKeptAlive());

var_dump(posix_kill($victim, defined('SIGKILL') ? SIGKILL : 9));

$t = gettimeofday(true);
try {
    $w->wait(5);
    echo "no exception\n";
} catch (Throwable $e) {
    echo get_class($e), "\n";
}
var_dump(gettimeofday(true) - $t < 4.0);
// The watch stays failed.
try {
    $w->wait(0);
    echo "no exception\n";
} catch (Throwable $e) {
    echo get_class($e), "\n";
}

$t = gettimeofday(true);
foreach ([fn() => $c->get($k), fn() => $c->put($k, 'two'), fn() => $c->watch($k)] as $f) {
    try {
        $f();
        echo "no exception\n";
    } catch (Throwable $e) {
        echo get_class($e), "\n";
    }
}
var_dump(gettimeofday(true) - $t < 4.0);

// The background keep-alive gives up once the lease's TTL has run out.
for ($i = 0; $i < 40 && $lease->isKeptAlive(); $i++) {
    time_nanosleep(0, 100000000);
}
var_dump($lease->isKeptAlive());
echo "done\n";
?>
--EXPECT--
int(1)
string(3) "one"
bool(true)
bool(true)
Synod\Exception\ConnectionException
bool(true)
Synod\Exception\ConnectionException
Synod\Exception\ConnectionException
Synod\Exception\ConnectionException
Synod\Exception\ConnectionException
bool(true)
bool(false)
done
