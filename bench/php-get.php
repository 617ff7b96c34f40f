<?php
// The cost of one Synod\Client::get() from PHP: a linearizable read round
// trip through the extension. Prints the median and 99th percentile.
//   php -d extension=target/release/libsynod.so bench/php-get.php ENDPOINT [CALLS] [LABEL]
[$_, $endpoint] = $argv + [1 => '127.0.0.1:2379'];
$calls = (int) ($argv[2] ?? 5000);
$label = $argv[3] ?? $endpoint;
$c = new Synod\Client($endpoint);
$c->put('bench/php', str_repeat('x', 256));
for ($i = 0; $i < 200; $i++) {
    $c->get('bench/php'); // warm up the connection
}
$t = [];
for ($i = 0; $i < $calls; $i++) {
    $s = hrtime(true);
    $c->get('bench/php');
    $t[] = hrtime(true) - $s;
}
sort($t);
printf("php get %s: median %.0f us, p99 %.0f us over %d calls\n",
    $label, $t[intdiv($calls, 2)] / 1000, $t[(int) ($calls * 0.99)] / 1000, $calls);
