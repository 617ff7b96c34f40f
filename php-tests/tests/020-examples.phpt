--TEST--
examples/: the configuration watcher and the lease-backed temporary key run as documented
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!getenv('SYNOD_EXT')) die('skip SYNOD_EXT not set (run php-tests/run.sh)'); ?>
--FILE--
<?php
$php = PHP_BINARY . ' -n -d extension=' . escapeshellarg(getenv('SYNOD_EXT'));
$ep = escapeshellarg(getenv('SYNOD_ENDPOINT'));
$dir = __DIR__ . '/../../examples';
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$c->deletePrefix('app/config/');

// The watcher prints the config, then each change made while it runs.
$proc = proc_open("$php $dir/config-watch.php $ep 3", [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
$first = fgets($pipes[1]);
echo $first;
$c->put('app/config/feature_x', 'on');
$c->delete('app/config/log_level');
$rest = stream_get_contents($pipes[1]);
echo preg_replace('/^rev \d+/m', 'rev N', $rest);
echo stream_get_contents($pipes[2]);
var_dump(proc_close($proc));

// The temporary key is there while the script runs and gone after it.
exec("$php $dir/temporary-key.php $ep 3", $out, $rc);
var_dump($rc);
echo preg_replace(['/workers\/\S+/', '/lease [0-9a-f]+/', '/has \d+s left/'], ['workers/W', 'lease L', 'has Ns left'], implode("\n", $out)), "\n";
var_dump($c->getPrefix('workers/'));
?>
--EXPECT--
config: {"feature_x":"off","log_level":"info"}
rev N: PUT feature_x → {"feature_x":"on","log_level":"info"}
rev N: DELETE log_level → {"feature_x":"on"}
int(0)
int(0)
registered workers/W with lease L (ttl 5s)
1s: key present, lease has Ns left, kept alive: yes
2s: key present, lease has Ns left, kept alive: yes
3s: key present, lease has Ns left, kept alive: yes
revoked; key is gone
array(0) {
}
