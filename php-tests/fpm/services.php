<?php
// The php-fpm test's service requests (?step=...): a registration is the
// worker's, kept alive across requests, and round-robin goes on across them.
//   register:   this worker registers as instance "worker" (ttl 5 s);
//   check:      the instances, as a later request sees them;
//   pick:       one instance, round-robin;
//   deregister: the worker's registration ends.
$c = new Synod\Client($_SERVER['SYNOD_ENDPOINT'], request_timeout: 5.0);
$s = $c->services('fpm-svc');
echo 'pid=', getmypid(), ' ';
switch ($_GET['step'] ?? '') {
    case 'register':
        $r = $s->register('worker', '127.0.0.1', 9000, ['pid' => getmypid()], ttl: 5);
        echo $r->isActive() ? 'REGISTERED' : 'BAD: not active';
        break;
    case 'check':
        echo 'INSTANCES ', implode(',', array_map(fn($i) => "$i->id:" . ($i->meta['pid'] ?? '-'), $s->instances()));
        break;
    case 'pick':
        echo 'PICKED ', $s->pick()?->id ?? 'none';
        break;
    case 'deregister':
        // Registering the same id again is an update; then it goes.
        $s->register('worker', '127.0.0.1', 9000, ['pid' => getmypid()], ttl: 5)->deregister();
        echo 'DEREGISTERED left=', count($s->instances());
        break;
    default:
        echo 'BAD: unknown step';
}
