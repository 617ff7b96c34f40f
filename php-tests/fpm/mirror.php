<?php
// The php-fpm test's mirror requests (?step=...): a mirror is the worker's,
// loaded by one request and read by the next ones from the worker's memory.
//   load: write a key, load the mirror of its prefix, read the write back;
//   read: a new Client's mirror() of the same prefix, and a get() from it;
//   get:  the same key read from the server (Client::get), for comparison.
$c = new Synod\Client($_SERVER['SYNOD_ENDPOINT'], request_timeout: 5.0);
$key = 'fpm-mirror/greeting';
echo 'pid=', getmypid(), ' ';
switch ($_GET['step'] ?? '') {
    case 'load':
        $rev = $c->put($key, 'hello');
        $m = $c->mirror('fpm-mirror/');
        echo $m->waitFor($rev, 5.0) ? 'LOADED value=' . $m->get($key) : 'BAD: waitFor timed out';
        break;
    case 'read':
        echo 'READ value=', $c->mirror('fpm-mirror/')->get($key) ?? 'none';
        break;
    case 'get':
        echo 'GET value=', $c->get($key) ?? 'none';
        break;
    default:
        echo 'BAD: unknown step';
}
