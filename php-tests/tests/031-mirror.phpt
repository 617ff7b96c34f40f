--TEST--
Synod\Mirror: get, all, revision, waitFor (own writes, writes elsewhere, a revision not reached), one copy per prefix and process, fork, and bad input
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!function_exists('pcntl_fork')) die('skip pcntl'); ?>
--FILE--
<?php
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$p = 'phpt/mirror-' . bin2hex(random_bytes(4)) . '/';

function attempt(string $label, callable $f): void
{
    try {
        $r = $f();
        echo "$label: ", json_encode($r), "\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), "\n";
    }
}

echo "-- load\n";
$c->put("{$p}db/host", '10.0.0.5');
$c->put("{$p}db/port", '5432');
$c->put("{$p}42", 'an integer key');
$c->put(substr($p, 0, -1) . 'x', 'beside the prefix, not in it');
$m = $c->mirror($p);
var_dump($m->prefix === $p, $m->get("{$p}db/host"), $m->get("{$p}missing"), $m->all() === $c->getPrefix($p));
var_dump($m->revision() >= $c->lastRevision());

echo "-- reading one's own writes\n";
$rev = $c->put("{$p}db/host", '10.0.0.6');
var_dump($m->waitFor($rev, 5), $m->get("{$p}db/host"), $m->revision() >= $rev);
$c->delete("{$p}db/port");
var_dump($m->waitFor($c->lastRevision(), 5), $m->get("{$p}db/port"));
// A write outside the prefix moves no event into the mirror.
$rev = $c->put('phpt/mirror-elsewhere', 'x');
var_dump($m->waitFor($rev, 5), $m->revision() >= $rev);
// A revision no one wrote yet: false once the timeout passes.
$t = gettimeofday(true);
var_dump($m->waitFor($m->revision() + 1000, 0.3), gettimeofday(true) - $t >= 0.29);
var_dump($m->waitFor(1, 0), $m->waitFor(0));
var_dump($m->all() === $c->getPrefix($p), array_keys($m->all()) === array_keys($c->getPrefix($p)));

echo "-- one copy per prefix and process\n";
$again = (new Synod\Client($ep))->mirror($p);
var_dump($again->revision() === $m->revision(), $again->all() === $m->all());
$other = $c->mirror("{$p}db/");
var_dump(array_keys($other->all()) === ["{$p}db/host"]);

echo "-- a forked child loads its own copy\n";
$pid = pcntl_fork();
if ($pid === 0) {
    $mine = $c->mirror($p);
    $rev = $c->put("{$p}child", 'yes');
    exit($mine->waitFor($rev, 5) && $mine->get("{$p}child") === 'yes' ? 0 : 1);
}
pcntl_waitpid($pid, $st);
var_dump(pcntl_wexitstatus($st));
var_dump($m->waitFor($c->getKeyValue("{$p}child")->modRevision, 5), $m->get("{$p}child"));

echo "-- bad input\n";
attempt('mirror(empty)', fn() => $c->mirror(''));
attempt('mirror([])', fn() => $c->mirror([]));
attempt('get(outside the prefix)', fn() => $m->get('phpt/mirror-elsewhere'));
attempt('get(empty)', fn() => $m->get(''));
attempt('get([])', fn() => $m->get([]));
attempt('waitFor(-1)', fn() => $m->waitFor(-1));
attempt('waitFor(x)', fn() => $m->waitFor('x'));
attempt('waitFor(1, timeout: -1)', fn() => $m->waitFor(1, -1.0));
attempt('waitFor(1, timeout: NAN)', fn() => $m->waitFor(1, NAN));
attempt('new Synod\Mirror', fn() => (new Synod\Mirror())->all());
attempt('a property write', function () use ($m) { $m->prefix = 'x'; });
$dead = new Synod\Client('127.0.0.1:1', connect_timeout: 0.3, request_timeout: 1.0);
attempt('mirror on a dead server', fn() => $dead->mirror($p));
var_dump($m->all() === $c->getPrefix($p));

$c->deletePrefix($p);
$c->delete(substr($p, 0, -1) . 'x');
$c->delete('phpt/mirror-elsewhere');
?>
--EXPECT--
-- load
bool(true)
string(8) "10.0.0.5"
NULL
bool(true)
bool(true)
-- reading one's own writes
bool(true)
string(8) "10.0.0.6"
bool(true)
bool(true)
NULL
bool(true)
bool(true)
bool(false)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
-- one copy per prefix and process
bool(true)
bool(true)
bool(true)
-- a forked child loads its own copy
int(0)
bool(true)
string(3) "yes"
-- bad input
mirror(empty): ValueError
mirror([]): TypeError
get(outside the prefix): ValueError
get(empty): ValueError
get([]): TypeError
waitFor(-1): ValueError
waitFor(x): TypeError
waitFor(1, timeout: -1): ValueError
waitFor(1, timeout: NAN): ValueError
new Synod\Mirror: Exception
a property write: Exception
mirror on a dead server: Synod\Exception\ConnectionException
bool(true)
