--TEST--
Synod\Mirror follows 1,000 changes (puts and deletes) made by etcdctl from four processes at once and ends equal to the server
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
$failed = 0;
foreach ($procs as $proc) {
    $failed += proc_close($proc) !== 0 ? 1 : 0;
}
array_map('unlink', glob("$dir/*.sh"));
rmdir($dir);
var_dump($failed);

$server = $c->getPrefix($p);
$now = $c->lastRevision();
var_dump($m->waitFor($now, 10));
var_dump($m->all() === $server, count($server) > 0);
// At most one revision per change (a delete of a missing key makes none).
var_dump($now - $start <= 1000 && $m->revision() >= $now);
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
