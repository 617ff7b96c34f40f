--TEST--
Synod\Election: failover between two processes: A leads, B's campaign waits; A exits and B leads at once (a process that ends steps down); B resigns and the observer reports no leader; a leader killed with SIGKILL is replaced after its TTL
--SKIPIF--
<?php
require __DIR__ . '/skipif.inc';
if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)');
if (!function_exists('posix_kill')) die('skip posix');
?>
--FILE--
<?php
// No sleep or microtime here: run-tests.php retries a failing test that
// calls them and counts a pass on retry as a warning.
$php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SYNOD_EXT')];
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$n = 'phpt/election-failover/' . bin2hex(random_bytes(4));

// A candidate: campaigns, says "leading", then follows orders from stdin:
// "resign", "leader?" or "exit".
$candidate = <<<'PHP'
$c = new Synod\Client($argv[1]);
$e = $c->election($argv[2], ttl: (int) $argv[4]);
echo $e->campaign($argv[3], 30) ? "leading\n" : "gave up\n";
while (($cmd = trim((string) fgets(STDIN))) !== 'exit' && $cmd !== '') {
    if ($cmd === 'resign') {
        $e->resign();
        echo "resigned\n";
    } elseif ($cmd === 'leader?') {
        echo $e->isLeader() ? "yes\n" : "no\n";
    }
}
PHP;

function start(array $php, string $code, string ...$args): array
{
    $p = proc_open([...$php, '-r', $code, ...$args], [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    return [$p, $pipes];
}

// The next line from a child within `seconds`, or null.
function line_within(array $child, float $seconds): ?string
{
    $r = [$child[1][1]];
    $w = $e = null;
    $s = (int) $seconds;
    if (!stream_select($r, $w, $e, $s, (int) (($seconds - $s) * 1e6))) {
        return null;
    }
    $line = fgets($child[1][1]);
    return $line === false ? 'EOF' : trim($line);
}

function tell(array $child, string $cmd): void
{
    fwrite($child[1][0], "$cmd\n");
}

// Waits (on a watch, up to 60 s) until `count` candidates are in line: a
// candidate that starts slowly (under valgrind) must not change the order
// of what the test is about.
function in_line(Synod\Client $c, string $n, int $count): bool
{
    $w = null;
    for ($i = 0; $i < 60; $i++) {
        if ($c->countPrefix("$n/") >= $count) {
            return true;
        }
        $w ??= $c->watch("$n/", prefix: true, start_revision: $c->lastRevision() + 1);
        $w->wait(1);
    }
    return false;
}

function show(?Synod\LeaderChange $ch): void
{
    echo $ch === null ? "no change\n" : ('observed: ' . ($ch->value ?? 'no leader') . "\n");
}

$obs = $c->election($n)->observe();
show($obs->wait(5));

echo "-- A leads, B waits\n";
$a = start($php, $candidate, $ep, $n, 'A', '10');
var_dump(line_within($a, 10));
show($obs->wait(5));
$b = start($php, $candidate, $ep, $n, 'B', '10');
var_dump(in_line($c, $n, 2));
var_dump(line_within($b, 1.5));
tell($a, 'leader?');
var_dump(line_within($a, 5));

echo "-- A's process ends: B leads at once, not after A's TTL of 10 s\n";
$t = gettimeofday(true);
tell($a, 'exit');
var_dump(line_within($b, 8), gettimeofday(true) - $t < 8);
show($obs->wait(5));
var_dump(proc_close($a[0]));
var_dump($c->election($n)->leader()->value);

echo "-- B resigns: no leader\n";
tell($b, 'resign');
var_dump(line_within($b, 5));
show($obs->wait(5));
var_dump($c->election($n)->leader());
tell($b, 'leader?');
var_dump(line_within($b, 5));
tell($b, 'exit');
var_dump(proc_close($b[0]));

echo "-- a leader killed with SIGKILL is replaced after its TTL\n";
$a = start($php, $candidate, $ep, $n, 'A', '2');
var_dump(line_within($a, 10));
show($obs->wait(5));
$b = start($php, $candidate, $ep, $n, 'B', '2');
var_dump(in_line($c, $n, 2));
var_dump(line_within($b, 1));
$t = gettimeofday(true);
var_dump(posix_kill(proc_get_status($a[0])['pid'], 9));
var_dump(line_within($b, 8));
$took = gettimeofday(true) - $t;
$server = getenv('SYNOD_SERVER') ?: getenv('SYNOD_ENDPOINT');
file_put_contents(sys_get_temp_dir() . '/synod-phpt-figures.log', sprintf("%s: election takeover after kill -9 of the leader: %.2f s (ttl 2 s)\n", $server, $took), FILE_APPEND);
var_dump($took > 1, $took < 6);
// The observer reports the new leader (after "no leader", when it saw the
// old key go before the next one led).
do {
    $ch = $obs->wait(5);
} while ($ch !== null && $ch->value === null);
show($ch);
proc_close($a[0]);
tell($b, 'exit');
var_dump(proc_close($b[0]));
show($obs->wait(5));
var_dump($c->countPrefix("$n/"));
?>
--EXPECT--
observed: no leader
-- A leads, B waits
string(7) "leading"
observed: A
bool(true)
NULL
string(3) "yes"
-- A's process ends: B leads at once, not after A's TTL of 10 s
string(7) "leading"
bool(true)
observed: B
int(0)
string(1) "B"
-- B resigns: no leader
string(8) "resigned"
observed: no leader
NULL
string(2) "no"
int(0)
-- a leader killed with SIGKILL is replaced after its TTL
string(7) "leading"
observed: A
bool(true)
NULL
bool(true)
string(7) "leading"
bool(true)
bool(true)
observed: B
int(0)
observed: no leader
int(0)
