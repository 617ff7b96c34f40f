<?php
// What a configuration read costs from PHP: Synod\Mirror::get() (a copy in
// the process, no round trip) against Synod\Client::get() (a linearizable
// read through the server) and Client::get(serializable: true) (the member's
// own copy, no leader round), per call, one at a time as a request makes
// them. Prints the median, p99 and mean of each and the ratios.
//   php -n -d extension=target/release/libsynod.so bench/mirror-vs-get.php ENDPOINT [CALLS] [LABEL]
[$_, $endpoint] = $argv + [1 => '127.0.0.1:2379'];
$calls = (int) ($argv[2] ?? 20000);
$label = $argv[3] ?? $endpoint;
$prefix = 'bench/mirror/';
$keys = 100;

$c = new Synod\Client($endpoint);
$c->deletePrefix($prefix);
for ($i = 0; $i < $keys; $i++) {
    $c->put($prefix . "setting-$i", str_repeat('x', 256));
}
$m = $c->mirror($prefix);
$rev = $c->put($prefix . 'setting-0', str_repeat('y', 256));
if (!$m->waitFor($rev, 5.0) || $m->all() !== $c->getPrefix($prefix)) {
    fwrite(STDERR, "the mirror does not match the server\n");
    exit(1);
}

/** Times $f($key) once per call over the keys in turn; [median, p99, mean] in microseconds. */
function timed(int $calls, int $keys, string $prefix, callable $f): array
{
    for ($i = 0; $i < min($calls, 200); $i++) {
        $f($prefix . 'setting-' . ($i % $keys)); // warm up
    }
    $t = [];
    $start = hrtime(true);
    for ($i = 0; $i < $calls; $i++) {
        $key = $prefix . 'setting-' . ($i % $keys);
        $s = hrtime(true);
        $v = $f($key);
        $t[] = hrtime(true) - $s;
        if ($v === null) {
            fwrite(STDERR, "$key missing\n");
            exit(1);
        }
    }
    $mean = (hrtime(true) - $start) / $calls;
    sort($t);
    return [$t[intdiv($calls, 2)] / 1000, $t[(int) ($calls * 0.99)] / 1000, $mean / 1000];
}

$results = [
    'Mirror::get()' => timed($calls, $keys, $prefix, fn($k) => $m->get($k)),
    'Client::get()' => timed($calls, $keys, $prefix, fn($k) => $c->get($k)),
    'Client::get(serializable)' => timed($calls, $keys, $prefix, fn($k) => $c->get($k, serializable: true)),
];
foreach ($results as $what => [$median, $p99, $mean]) {
    printf("%s %-26s median %8.2f us  p99 %8.2f us  mean %8.2f us  (%d calls)\n",
        $label, $what, $median, $p99, $mean, $calls);
}
$mirror = $results['Mirror::get()'];
foreach (['Client::get()', 'Client::get(serializable)'] as $what) {
    printf("%s %s / Mirror::get(): %.0fx by median, %.0fx by mean\n",
        $label, $what, $results[$what][0] / $mirror[0], $results[$what][2] / $mirror[2]);
}
$c->deletePrefix($prefix);
