--TEST--
Synod\Client ZooKeeper-style helpers: exists, children (direct only, subtrees skipped), createSequential (unique, increasing, never reused, leases) and bad input
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!function_exists('pcntl_fork')) die('skip pcntl'); ?>
--FILE--
<?php
$ep = getenv('SYNOD_ENDPOINT');
$c = new Synod\Client($ep);
$p = '/phpt/zk-' . bin2hex(random_bytes(4));

function attempt(string $label, callable $f): void
{
    try {
        $r = $f();
        echo "$label: ", json_encode($r), "\n";
    } catch (Throwable $e) {
        echo "$label: ", get_class($e), "\n";
    }
}

echo "-- exists\n";
var_dump($c->exists("$p/a"));
$c->put("$p/a", 'node a');
$c->put("$p/b/deep", 'only under b');
var_dump($c->exists("$p/a"), $c->exists("$p/b"), $c->exists("$p/b/deep"));
$c->delete("$p/a");
var_dump($c->exists("$p/a"));

echo "-- children\n";
foreach (['x', 'x/y', 'x/y/z', 'x-1', 'x0', 'dir/1', 'dir/2/3', 'z'] as $k) {
    $c->put("$p/tree/$k", $k);
}
$c->put("$p/tree", 'the node itself');
$c->put("$p/treeish", 'a sibling sharing the prefix');
$c->put("$p/tree/", 'the path with a slash: not a child of itself');
// A big subtree between two children: skipped, not read key by key.
for ($i = 0; $i < 600; $i++) {
    $c->put(sprintf("$p/tree/m/%04d", $i), 'v');
}
var_dump($c->children("$p/tree"));
var_dump($c->children("$p/tree/") === $c->children("$p/tree"));
var_dump($c->children("$p/tree/x"), $c->children("$p/tree/x/y/z"), $c->children("$p/missing"));
var_dump(count($c->children("$p/tree/m")));

echo "-- createSequential\n";
$k1 = $c->createSequential("$p/q/job-", 'first');
$k2 = $c->createSequential("$p/q/job-", 'second');
var_dump((bool) preg_match('~^' . preg_quote("$p/q/job-", '~') . '\d{10}$~', $k1), $k1 < $k2, $c->get($k1), $c->get($k2));
// The highest number deleted: the next one is higher still, never reused.
$c->delete($k2);
$k3 = $c->createSequential("$p/q/job-", 'third');
var_dump($k3 > $k2);
// Keys under the prefix that are not numbered do not get in the way.
$c->put("$p/q/job-lock", 'x');
var_dump($c->createSequential("$p/q/job-", 'fourth') > $k3);

echo "-- four processes create 25 each at once\n";
$file = tempnam(sys_get_temp_dir(), 'seq');
$kids = [];
for ($w = 0; $w < 4; $w++) {
    $pid = pcntl_fork();
    if ($pid === 0) {
        $mine = new Synod\Client($ep);
        $made = [];
        for ($i = 0; $i < 25; $i++) {
            $made[] = $mine->createSequential("$p/race/n-", "w$w");
        }
        $sorted = $made;
        sort($sorted, SORT_STRING);
        file_put_contents($file, json_encode([$w, $made === $sorted, $made]) . "\n", FILE_APPEND | LOCK_EX);
        exit(0);
    }
    $kids[] = $pid;
}
foreach ($kids as $pid) {
    pcntl_waitpid($pid, $st);
}
$all = [];
$inOrder = true;
foreach (file($file) as $line) {
    [$w, $sorted, $made] = json_decode($line, true);
    $inOrder = $inOrder && $sorted;
    $all = array_merge($all, $made);
}
unlink($file);
var_dump(count($all), count(array_unique($all)), $inOrder, $c->countPrefix("$p/race/"));

echo "-- on a lease\n";
$lease = $c->lease(10);
$kl = $c->createSequential("$p/eph/m-", 'ephemeral', $lease->id);
var_dump($c->getKeyValue($kl)->lease === $lease->id);
$lease->revoke();
var_dump($c->exists($kl));

echo "-- bad input changes nothing\n";
$before = $c->countPrefix("$p/");
attempt('exists(empty)', fn() => $c->exists(''));
attempt('exists([])', fn() => $c->exists([]));
attempt('children(empty)', fn() => $c->children(''));
attempt('children(null)', fn() => $c->children(null));
attempt('createSequential(empty prefix)', fn() => $c->createSequential('', 'v'));
attempt('createSequential(p, [])', fn() => $c->createSequential("$p/bad/", []));
attempt('createSequential(lease: 0)', fn() => $c->createSequential("$p/bad/", 'v', 0));
attempt('createSequential(lease: x)', fn() => $c->createSequential("$p/bad/", 'v', 'x'));
attempt('createSequential(unknown lease)', fn() => $c->createSequential("$p/bad/", 'v', 0x7eadbeef));
attempt('createSequential(revoked lease)', fn() => $c->createSequential("$p/bad/", 'v', $lease->id));
attempt('createSequential(value of 2 MiB)', fn() => $c->createSequential("$p/bad/", str_repeat('x', 2 << 20)));
attempt('exists(key of 2 MiB)', fn() => $c->exists(str_repeat('k', 2 << 20)));
attempt('children(path of 2 MiB)', fn() => $c->children(str_repeat('k', 2 << 20)));
// A key that sorts after every number under the prefix is reported, not looped on.
$c->put("$p/blocked/n-5", 'not sequential');
try {
    $c->createSequential("$p/blocked/n-", 'v');
    echo "no exception\n";
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), ': ', str_contains($e->getMessage(), 'not a sequential key') ? 'explained' : $e->getMessage(), "\n";
}
var_dump($c->countPrefix("$p/") - $before);

$c->deletePrefix("$p/");
?>
--EXPECT--
-- exists
bool(false)
bool(true)
bool(false)
bool(true)
bool(false)
-- children
array(6) {
  [0]=>
  string(3) "dir"
  [1]=>
  string(1) "m"
  [2]=>
  string(1) "x"
  [3]=>
  string(3) "x-1"
  [4]=>
  string(2) "x0"
  [5]=>
  string(1) "z"
}
bool(true)
array(1) {
  [0]=>
  string(1) "y"
}
array(0) {
}
array(0) {
}
int(600)
-- createSequential
bool(true)
bool(true)
string(5) "first"
string(6) "second"
bool(true)
bool(true)
-- four processes create 25 each at once
int(100)
int(100)
bool(true)
int(100)
-- on a lease
bool(true)
bool(false)
-- bad input changes nothing
exists(empty): ValueError
exists([]): TypeError
children(empty): ValueError
children(null): TypeError
createSequential(empty prefix): ValueError
createSequential(p, []): TypeError
createSequential(lease: 0): ValueError
createSequential(lease: x): TypeError
createSequential(unknown lease): Synod\Exception\LeaseNotFoundException
createSequential(revoked lease): Synod\Exception\LeaseNotFoundException
createSequential(value of 2 MiB): Synod\Exception\SynodException
exists(key of 2 MiB): Synod\Exception\SynodException
children(path of 2 MiB): Synod\Exception\SynodException
Synod\Exception\SynodException: explained
int(1)
