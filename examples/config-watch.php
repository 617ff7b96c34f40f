<?php
// Reads an application's configuration from keys under a prefix, then
// follows changes as they happen, without polling.
//
//   php -d extension=target/debug/libsynod.so examples/config-watch.php [endpoint] [seconds]
//
// In another terminal: etcdctl put app/config/feature_x on
$endpoint = $argv[1] ?? '127.0.0.1:2379';
$seconds = (float) ($argv[2] ?? 30);
$prefix = 'app/config/';

$client = new Synod\Client($endpoint, request_timeout: 5);
if ($client->countPrefix($prefix) === 0) {
    $client->put($prefix . 'log_level', 'info');
    $client->put($prefix . 'feature_x', 'off');
}

// One consistent read of the whole prefix, and the revision it was served
// at (the store's, not the keys': right even when the prefix is empty).
$config = [];
foreach ($client->getPrefix($prefix) as $key => $value) {
    $config[substr($key, strlen($prefix))] = $value;
}
$revision = $client->lastRevision();
ksort($config);
echo "config: ", json_encode($config), "\n";

// Watch from the revision after the read: every change since is delivered,
// none from before.
$watch = $client->watch($prefix, prefix: true, start_revision: $revision + 1);
$until = microtime(true) + $seconds;
while (($left = $until - microtime(true)) > 0) {
    foreach ($watch->wait(timeout: min($left, 1.0)) as $event) {
        $name = substr($event->key, strlen($prefix));
        if ($event->type === Synod\Event::DELETE) {
            unset($config[$name]);
        } else {
            $config[$name] = $event->value;
        }
        echo "rev {$event->revision}: {$event->type} $name → ", json_encode($config), "\n";
    }
}
$watch->cancel();
