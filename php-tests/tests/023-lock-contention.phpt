--TEST--
Synod\Client::withLock: 4 PHP processes each increment one counter 25 times with a read, then a write, under the lock; no update is lost
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)'); ?>
--FILE--
<?php
$php = [PHP_BINARY, '-n', '-d', 'extension=' . getenv('SYNOD_EXT')];
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$n = 'phpt/lock-contention/' . bin2hex(random_bytes(4));
$counter = "$n-counter";
$c->put($counter, '0');

// Reads the counter, yields the CPU so that the others get to run while it
// holds the value in hand, then writes it back plus one. Without the lock,
// updates would overwrite each other. Also counts the times it saw another
// holder's key first in line while it held the lock (there must be none).
$child = <<<'PHP'
$c = new Synod\Client($argv[1], request_timeout: 10);
[$n, $counter] = [$argv[2], $argv[3]];
$overlaps = 0;
for ($i = 0; $i < 25; $i++) {
    $overlaps += $c->withLock($n, function (Synod\Lock $l) use ($c, $counter) {
        $v = (int) $c->get($counter);
        time_nanosleep(0, 2000000);
        $first = $c->getPrefixKeyValues($l->name . '/', sort: 'asc');
        usort($first, fn($a, $b) => $a->createRevision <=> $b->createRevision);
        $c->put($counter, (string) ($v + 1));
        return $first[0]->key === $l->key() ? 0 : 1;
    }, timeout: 60, ttl: 10);
}
echo "done $overlaps\n";
PHP;

$procs = [];
for ($i = 0; $i < 4; $i++) {
    $procs[] = proc_open([...$php, '-r', $child, $ep, $n, $counter], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
    $outs[] = $pipes;
}
foreach ($procs as $i => $p) {
    echo trim(stream_get_contents($outs[$i][1])), "\n";
    echo stream_get_contents($outs[$i][2]);
    var_dump(proc_close($p));
}
var_dump($c->get($counter), $c->countPrefix("$n/"));
$c->delete($counter);
?>
--EXPECT--
done 0
int(0)
done 0
int(0)
done 0
int(0)
done 0
int(0)
string(3) "100"
int(0)
