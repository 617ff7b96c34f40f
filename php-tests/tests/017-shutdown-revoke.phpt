--TEST--
Request shutdown revokes the leases marked revokeOnShutdown, all of them under one 2 s deadline: 20 leases are gone for another process, and a server that stops answering holds shutdown about 2 s, not 2 s per lease
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)'); ?>
--FILE--
<?php
// No sleep or microtime here: run-tests.php retries a failing test that
// calls them and counts a pass on retry as a warning.
$php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SYNOD_EXT')];
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$p = 'phpt/shutdown-revoke/' . bin2hex(random_bytes(4)) . '/';

// Grants 20 leases to revoke at shutdown, with a key each, plus one lease
// unmarked again and one revoked already; prints the ids, then waits for a
// line on stdin before ending.
$child = <<<'PHP'
$c = new Synod\Client($argv[1], request_timeout: 5);
$p = $argv[2];
$ids = [];
for ($i = 0; $i < 20; $i++) {
    $l = $c->lease(30, revoke_on_shutdown: true);
    $c->put("{$p}k$i", 'x', lease: $l->id);
    $ids[] = $l->id;
}
$kept = $c->lease(30, revoke_on_shutdown: true);
$kept->revokeOnShutdown(false);
$c->put("{$p}kept", 'x', lease: $kept->id);
$gone = $c->lease(30, revoke_on_shutdown: true);
$gone->revoke();
echo json_encode(['ids' => $ids, 'kept' => $kept->id]), "\n";
fgets(STDIN);
PHP;

function start(array $php, string $code, string $ep, string $p, &$pipes)
{
    $spec = [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']];
    return proc_open([...$php, '-r', $code, $ep, $p], $spec, $pipes);
}

// The child's exit code and how long it took to end after being told to.
function finish($proc, array $pipes): array
{
    $t = gettimeofday(true);
    fwrite($pipes[0], "end\n");
    fclose($pipes[0]);
    $err = stream_get_contents($pipes[2]);
    stream_get_contents($pipes[1]);
    $rc = proc_close($proc);
    echo $err;
    return [$rc, gettimeofday(true) - $t];
}

function gone(Synod\Client $c, int $id): bool
{
    try {
        $c->leaseFor($id);
        return false;
    } catch (Synod\Exception\LeaseNotFoundException $e) {
        return true;
    }
}

echo "-- 20 leases revoked when the request ends\n";
$proc = start($php, $child, $ep, "{$p}a/", $pipes);
$info = json_decode(fgets($pipes[1]), true);
var_dump(count($info['ids']), $c->countPrefix("{$p}a/"));
[$rc] = finish($proc, $pipes);
var_dump($rc);
var_dump(count(array_filter($info['ids'], fn($id) => gone($c, $id))));
var_dump($c->getPrefix("{$p}a/") === ["{$p}a/kept" => 'x'], gone($c, $info['kept']));
$c->leaseFor($info['kept'])->revoke();

echo "-- a server that stops answering: one deadline for all\n";
// The child reaches the server through this proxy, which stops passing
// bytes (connections stay open) once the leases are granted.
$listener = stream_socket_server('tcp://127.0.0.1:0');
$proc = start($php, $child, stream_socket_get_name($listener, false), "{$p}b/", $pipes);
$pairs = [];
$info = null;
$until = gettimeofday(true) + 30;
while ($info === null && gettimeofday(true) < $until) {
    $read = [$listener, $pipes[1], ...array_merge(...array_values($pairs) ?: [[]])];
    $w = $e = null;
    if (!stream_select($read, $w, $e, 1)) {
        continue;
    }
    foreach ($read as $s) {
        if ($s === $listener) {
            $a = stream_socket_accept($listener);
            $b = stream_socket_client("tcp://$ep");
            stream_set_read_buffer($a, 0);
            stream_set_read_buffer($b, 0);
            $pairs[] = [$a, $b];
        } elseif ($s === $pipes[1]) {
            $info = json_decode(fgets($pipes[1]), true) ?? false;
        } else {
            foreach ($pairs as $i => [$a, $b]) {
                if ($s !== $a && $s !== $b) {
                    continue;
                }
                $data = fread($s, 65536);
                if ($data === '' || $data === false) {
                    fclose($a);
                    fclose($b);
                    unset($pairs[$i]);
                } else {
                    fwrite($s === $a ? $b : $a, $data);
                }
            }
        }
    }
}
var_dump(count($info['ids'] ?? []));
[$rc, $took] = finish($proc, $pipes);
var_dump($rc);
// One 2 s deadline for all 20 revocations; one each would take 40 s.
var_dump($took >= 1.5, $took < 10);
// The revocations never got through: the leases are there, and go now.
var_dump(count(array_filter($info['ids'], fn($id) => !gone($c, $id))));
foreach ([...$info['ids'], $info['kept']] as $id) {
    if (!gone($c, $id)) {
        $c->leaseFor($id)->revoke();
    }
}
var_dump($c->countPrefix($p));
?>
--EXPECT--
-- 20 leases revoked when the request ends
int(20)
int(21)
int(0)
int(20)
bool(true)
bool(false)
-- a server that stops answering: one deadline for all
int(20)
int(0)
bool(true)
bool(true)
int(20)
int(0)
