--TEST--
Synod\Mirror follows 1,000 changes (puts and deletes) made by etcdctl from four processes at once, in the server's order (every copy taken meanwhile is the server's state at the copy's revision), and ends equal to the server
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
$p = 'phpt/mirror-etcdctl-' . bin2hex(random_bytes(4)) . '/';
for ($i = 0; $i < 20; $i++) {
    $c->put("$p$i", 'before');
}
$m = $c->mirror($p);
$start = $m->revision();

// Four writers, 250 changes each, on 37 keys they share: the result
// depends on the order the server applied them in.
$dir = sys_get_temp_dir() . '/mirror-etcdctl-' . getmypid();
@mkdir($dir);
$procs = [];
for ($w = 0; $w < 4; $w++) {
    $lines = [];
    for ($i = $w; $i < 1000; $i += 4) {
        $key = escapeshellarg($p . ($i % 37));
        $lines[] = $i % 3 === 2
            ? "etcdctl --endpoints=$ep del $key >/dev/null"
            : "etcdctl --endpoints=$ep put $key " . escapeshellarg("w$w-$i") . ' >/dev/null';
    }
    file_put_contents("$dir/$w.sh", "set -e\n" . implode("\n", $lines) . "\n");
    $procs[] = proc_open(['sh', "$dir/$w.sh"], [], $pipes, null, ['ETCDCTL_API' => '3', 'PATH' => getenv('PATH')]);
}
// While they write, snapshots of the mirror, each with the revision it
// claims: every one must be the server's state at that revision, so the
// mirror went through the server's states in the server's order.
$snaps = [];
$failed = 0;
while ($procs) {
    foreach ($procs as $w => $proc) {
        // The exit code is reported once, by the call that sees the end.
        $st = proc_get_status($proc);
        if (!$st['running']) {
            $failed += $st['exitcode'] !== 0 ? 1 : 0;
            proc_close($proc);
            unset($procs[$w]);
        }
    }
    // The background watch may move the copy on between two calls: keep
    // only a copy whose revision did not change while it was taken.
    $rev = $m->revision();
    $all = $m->all();
    if ($m->revision() === $rev) {
        $snaps[$rev] = $all;
    }
}
array_map('unlink', glob("$dir/*.sh"));
rmdir($dir);
var_dump($failed);

$server = $c->getPrefix($p);
$now = $c->lastRevision();
var_dump($m->waitFor($now, 10));
var_dump($m->all() === $server, count($server) > 0);
var_dump($m->revision() >= $now);
$wrong = [];
foreach ($snaps as $rev => $snap) {
    if ($rev > $start && $snap !== $c->getPrefix($p, revision: $rev)) {
        $wrong[] = $rev;
    }
}
// Some states in between were seen, and each was the server's.
var_dump(count($snaps) > 5, $wrong);
// Each key's value is that of its last put in the server's order.
$same = true;
foreach ($c->getPrefixKeyValues($p) as $kv) {
    $same = $same && $m->get($kv->key) === $kv->value;
}
var_dump($same);
$c->deletePrefix($p);
?>
--EXPECT--
int(0)
bool(true)
bool(true)
bool(true)
bool(true)
bool(true)
array(0) {
}
bool(true)
