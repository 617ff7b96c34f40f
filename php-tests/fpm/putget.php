<?php
// One request of the php-fpm test: a new Synod\Client (as every request of a
// real application makes one), a put and a get of the same key.
$n = (int) ($_GET['n'] ?? 0);
$c = new Synod\Client($_SERVER['SYNOD_ENDPOINT'], request_timeout: 5.0);
$key = 'fpm/' . ($n % 100);
$c->put($key, "value $n");
$got = $c->get($key);
echo $got === "value $n" ? "OK $n pid=" . getmypid() : "BAD $n: got " . var_export($got, true);
