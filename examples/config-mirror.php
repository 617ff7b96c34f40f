<?php
// Configuration read from a process-local mirror of a prefix: loaded once,
// kept fresh by a background watch, read without a server round trip (in
// php-fpm, by every request of the worker). A change made anywhere shows up
// within milliseconds, and waitFor() reads one's own writes.
//
//   php -d extension=target/debug/libsynod.so examples/config-mirror.php [endpoint] [seconds]
//
// In another terminal: etcdctl put app/settings/greeting hola
$endpoint = $argv[1] ?? '127.0.0.1:2379';
$seconds = (float) ($argv[2] ?? 30);
$prefix = 'app/settings/';

$client = new Synod\Client($endpoint, request_timeout: 5);
if ($client->countPrefix($prefix) === 0) {
    $client->put($prefix . 'greeting', 'hello');
    $client->put($prefix . 'max_items', '10');
}

$settings = $client->mirror($prefix);            // loads every key under the prefix, once
printf("loaded %d settings at revision %d: %s\n", count($settings->all()), $settings->revision(),
    json_encode(strip($settings->all(), $prefix)));

// Read your own writes: the put's revision, then wait for the mirror to have it.
$rev = $client->put($prefix . 'last_start', (string) getmypid());
echo "own write visible: ", $settings->waitFor($rev, timeout: 2.0) ? 'yes' : 'no', "\n";

// A request handler would just call $settings->get(): from memory, no round trip.
$seen = $settings->all();
$until = microtime(true) + $seconds;
while (microtime(true) < $until) {
    usleep(50000);
    $now = $settings->all();
    foreach ($now as $key => $value) {
        if (($seen[$key] ?? null) !== $value) {
            echo "rev {$settings->revision()}: ", substr($key, strlen($prefix)), " = $value\n";
        }
    }
    foreach (array_diff_key($seen, $now) as $key => $_) {
        echo "rev {$settings->revision()}: ", substr($key, strlen($prefix)), " deleted\n";
    }
    $seen = $now;
}
echo "greeting: ", $settings->get($prefix . 'greeting') ?? '(none)', "\n";

function strip(array $kvs, string $prefix): array
{
    $out = [];
    foreach ($kvs as $k => $v) {
        $out[substr($k, strlen($prefix))] = $v;
    }
    return $out;
}
