<?php
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$p = 'phpt/lease/' . bin2hex(random_bytes(4)) . '/';

// A PHP process like this one: same binary, and run-tests.php's -d options
// (extension=... among them) from TEST_PHP_EXTRA_ARGS.
function child(string $code, string ...$args): string
{
    $cmd = escapeshellarg(PHP_BINARY) . ' ' . getenv('TEST_PHP_EXTRA_ARGS') . ' -r ' . escapeshellarg($code);
    foreach ($args as $a) {
        $cmd .= ' ' . escapeshellarg($a);
    }
    return trim((string) shell_exec("$cmd 2>&1"));
}

function alive(Synod\Client $c, string $key, int $id): string
{
    try {
        $c->put($key, 'probe', lease: $id);
        return 'alive';
    } catch (Synod\Exception\LeaseNotFoundException $e) {
        return 'gone';
    }
}

echo "-- grant\n";
$l = $c->lease(10);
var_dump($l instanceof Synod\Lease, is_int($l->id) && $l->id > 0, $l->ttl, $l->isKeptAlive());
var_dump($l->keepAlive());
$ttl = $l->timeToLive();
var_dump($ttl > 0 && $ttl <= 10);
$c->put("{$p}a", '1', lease: $l->id);
$c->put("{$p}b", '2', lease: $l->id);
$c->put("{$p}free", '3');
$keys = $l->keys();
sort($keys);
var_dump($keys === ["{$p}a", "{$p}b"]);
var_dump($l);

echo "-- revoke\n";
$l->revoke();
var_dump($c->get("{$p}a"), $c->get("{$p}b"), $c->get("{$p}free"));
var_dump($l->timeToLive(), $l->keys(), $l->isKeptAlive());
try {
    $l->keepAlive();
    echo "no exception\n";
} catch (Synod\Exception\LeaseNotFoundException $e) {
    echo get_class($e), "\n";
    var_dump($e->getCode() === 5, $e instanceof Synod\Exception\SynodException);
}
try {
    $l->revoke();
    echo "no exception\n";
} catch (Synod\Exception\LeaseNotFoundException $e) {
    echo get_class($e), ' ', $e->getCode(), "\n";
}
echo alive($c, "{$p}a", $l->id), "\n";

echo "-- chosen id\n";
$id = (0x1234 << 32) | random_int(1, 0x7fffffff);
$m = $c->lease(10, id: $id, keep_alive: false);
var_dump($m->id === $id, $m->ttl, $m->isKeptAlive());
try {
    $c->lease(10, id: $id);
    echo "no exception\n";
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
$m->revoke();
// Once revoked, the id can be granted again.
$m = $c->lease(10, id: $id, keep_alive: false);
var_dump($m->id === $id);
$m->revoke();

echo "-- keep-alive control\n";
$s = $c->lease(10);
var_dump($s->isKeptAlive());
$s->stopKeepAlive();
var_dump($s->isKeptAlive());
$s->stopKeepAlive();
var_dump($s->isKeptAlive());
$s->startKeepAlive();
var_dump($s->isKeptAlive());
$s->revoke();
var_dump($s->isKeptAlive());
// Keeping a revoked lease alive stops on its own once the server says it is gone.
$s->startKeepAlive();
for ($i = 0; $i < 40 && $s->isKeptAlive(); $i++) {
    usleep(50000);
}
var_dump($s->isKeptAlive());

echo "-- revoke_on_shutdown in a child process\n";
$code = '$c = new Synod\Client(getenv("SYNOD_ENDPOINT"));
$l = $c->lease(10, revoke_on_shutdown: $argv[1] === "revoke");
$c->put($argv[2], "from child", lease: $l->id);
echo $l->id;';
$revoked = child($code, 'revoke', "{$p}child/revoked");
$kept = child($code, 'keep', "{$p}child/kept");
var_dump(ctype_digit($revoked), ctype_digit($kept));
var_dump($c->get("{$p}child/revoked"), $c->get("{$p}child/kept"));
echo alive($c, "{$p}child/probe1", (int) $revoked), ' ', alive($c, "{$p}child/probe2", (int) $kept), "\n";

echo "-- background keep-alive\n";
$ka = $c->lease(2);
$nk = $c->lease(2, keep_alive: false);
$st = $c->lease(2);
$st->stopKeepAlive();
$dropped = $c->lease(2); // the keep-alive outlives the object
$droppedId = $dropped->id;
unset($dropped);
var_dump($ka->ttl, $nk->ttl, $ka->isKeptAlive(), $nk->isKeptAlive(), $st->isKeptAlive());
$c->put("{$p}ka", 'x', lease: $ka->id);
$c->put("{$p}nk", 'x', lease: $nk->id);
$c->put("{$p}st", 'x', lease: $st->id);
$c->put("{$p}dropped", 'x', lease: $droppedId);
sleep(4);
var_dump($c->get("{$p}ka"), $ka->isKeptAlive(), $ka->timeToLive() > 0);
var_dump($c->get("{$p}dropped"));
var_dump($c->get("{$p}nk"), $nk->timeToLive(), $nk->isKeptAlive());
var_dump($c->get("{$p}st"), $st->timeToLive());
$ka->stopKeepAlive();
var_dump($ka->isKeptAlive());
$ka->revoke();
var_dump($c->get("{$p}ka"));
$c->deletePrefix($p);
?>
