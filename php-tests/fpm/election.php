<?php
// The php-fpm test's election requests (?step=...&name=...): leadership is
// the worker's, not the request's, so it lasts across requests until resign.
//   campaign: stand and lead (ttl 5 s), then return without resigning;
//   check:    is this worker still the leader? (asks the server)
//   resign:   step down.
$c = new Synod\Client($_SERVER['SYNOD_ENDPOINT'], request_timeout: 5.0);
$e = $c->election($_GET['name'] ?? 'fpm-election', 5);
echo 'pid=', getmypid(), ' ';
switch ($_GET['step'] ?? '') {
    case 'campaign':
        echo $e->campaign('worker-' . getmypid(), 5.0) ? 'LEADING' : 'BAD: not elected';
        break;
    case 'check':
        $leader = $e->leader();
        echo $e->isLeader() ? 'LEADER' : 'NOT-LEADER', ' value=', $leader?->value ?? 'none';
        break;
    case 'resign':
        $e->resign();
        echo 'RESIGNED';
        break;
    default:
        echo 'BAD: unknown step';
}
