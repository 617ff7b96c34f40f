<?php
// The php-fpm test's lock requests (?step=...&name=...):
//   forget: acquire the lock (ttl 30 s) and return without releasing it;
//   fatal:  acquire it, then die of an uncaught error (no code of ours runs after);
//   check:  tryAcquire() it, which must succeed at once, and release it.
// A lock left held must be released when the request ends: php-fpm must never
// carry a lock into the next request the worker serves.
$c = new Synod\Client($_SERVER['SYNOD_ENDPOINT'], request_timeout: 5.0);
$name = $_GET['name'] ?? 'fpm-forgotten';
echo 'pid=', getmypid(), ' ';
switch ($_GET['step'] ?? '') {
    case 'forget':
    case 'fatal':
        $lock = $c->lock($name, 30);
        if (!$lock->acquire(5.0)) {
            echo 'BAD: not acquired';
            return;
        }
        // The lock is really held: another contender does not get it.
        $other = $c->lock($name, 30);
        if ($other->tryAcquire()) {
            echo 'BAD: a second contender got the lock too';
            return;
        }
        echo $lock->isHeld() ? 'HELD ' : 'BAD: isHeld() false ';
        $GLOBALS['forgotten'] = $lock;
        if ($_GET['step'] === 'fatal') {
            no_such_function();
        }
        break;
    case 'check':
        $lock = $c->lock($name, 30);
        $t = microtime(true);
        $free = $lock->tryAcquire();
        printf('%s in %.3f s', $free ? 'FREE' : 'TAKEN', microtime(true) - $t);
        if ($free) {
            $lock->release();
        }
        break;
    default:
        echo 'BAD: unknown step';
}
