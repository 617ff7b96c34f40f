<?php
// Service discovery: servers register themselves (address, port, metadata)
// under a service name; clients list them, pick one in turn (skipping one
// that failed for a while) and follow membership changes as they happen.
// Any etcd client can do the same: the layout is in the README.
//
//   php -d extension=target/debug/libsynod.so examples/discover.php [endpoint] serve ID PORT [seconds]
//   php -d extension=target/debug/libsynod.so examples/discover.php [endpoint] client [seconds]
//
// Start two `serve` processes with different ids and ports, then a `client`,
// then stop a server: with Ctrl-C it is gone at once (it deregisters as it
// exits), with kill -9 after its TTL (5 s here).
// Meanwhile: etcdctl get --prefix synod/services/greeter/
$endpoint = $argv[1] ?? '127.0.0.1:2379';
$mode = $argv[2] ?? 'client';

$client = new Synod\Client($endpoint, request_timeout: 5);
$greeter = $client->services('greeter');

if ($mode === 'serve') {
    $id = $argv[3] ?? gethostname() . '-' . getmypid();
    $port = (int) ($argv[4] ?? 8080);
    $seconds = (float) ($argv[5] ?? 30);
    // Kept alive in the background while this process runs; revoked when it
    // exits, also after Ctrl-C or an uncaught exception.
    $reg = $greeter->register($id, '127.0.0.1', $port, ['version' => '1.4.2', 'weight' => 1], ttl: 5);
    echo "registered $reg->id as $reg->key (ttl {$reg->ttl}s)\n";
    $stop = false;
    if (function_exists('pcntl_async_signals')) {
        pcntl_async_signals(true);
        pcntl_signal(SIGTERM, function () use (&$stop) { $stop = true; });
        pcntl_signal(SIGINT, function () use (&$stop) { $stop = true; });
    }
    $until = microtime(true) + $seconds;
    while (!$stop && microtime(true) < $until) {
        usleep(100000); // serving requests
    }
    echo "$reg->id stopping\n";
    exit(0);
}

$seconds = (float) ($argv[3] ?? 30);
$instances = $greeter->instances();
echo count($instances), " instances of greeter:\n";
foreach ($instances as $i) {
    echo "  $i->id at $i->address:$i->port, version {$i->meta['version']}\n";
}

// Each request goes to the next instance in turn.
for ($n = 1; $n <= 4; $n++) {
    $i = $greeter->pick();
    echo "request $n -> ", $i === null ? 'no instance' : "$i->id ($i->address:$i->port)", "\n";
}
// A call to an instance failed: skip it for a while (in this process).
if ($instances) {
    $greeter->markDown($instances[0], 10.0);
    echo "{$instances[0]->id} failed: marked down for 10 s\n";
    for ($n = 5; $n <= 6; $n++) {
        echo "request $n -> ", $greeter->pick()?->id ?? 'no instance', "\n";
    }
}

// Membership changes from now on; wait() with a timeout lets Ctrl-C in.
$watch = $greeter->watch();
echo "watching for {$seconds}s\n";
$until = microtime(true) + $seconds;
while (($left = $until - microtime(true)) > 0) {
    foreach ($watch->wait(timeout: min($left, 1.0)) as $e) {
        $i = $e->instance;
        echo "$e->type $i->id at $i->address:$i->port; now ",
            implode(', ', array_map(fn($i) => $i->id, $watch->instances())) ?: 'none', "\n";
    }
}
$watch->cancel();
