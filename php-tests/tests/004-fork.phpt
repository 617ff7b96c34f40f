--TEST--
Synod\Client: after pcntl_fork the child gets its own runtime and connections, the parent keeps working
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; if (!function_exists('pcntl_fork')) die('skip pcntl'); ?>
--FILE--
<?php
$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$k = 'phpt/fork/' . bin2hex(random_bytes(4));
$c->put($k, 'parent'); // runtime and connection exist before the fork
$pid = pcntl_fork();
if ($pid === 0) {
    $c->put("$k/child", 'from child');
    exit($c->get($k) === 'parent' ? 0 : 1);
}
pcntl_waitpid($pid, $status);
var_dump(pcntl_wexitstatus($status));
var_dump($c->get("$k/child"));
$c->put($k, 'still parent');
var_dump($c->get($k));
?>
--EXPECT--
int(0)
string(10) "from child"
string(12) "still parent"
