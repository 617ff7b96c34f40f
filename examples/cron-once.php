<?php
// A cron job that must run on one host only, though cron starts it on every
// host: whoever takes the lock first runs it, the others skip this round.
// The lock's lease is kept alive in the background while the job runs, and
// the lock is released when the job ends (even if it throws), or when the
// process dies (after the TTL).
//
//   php -d extension=target/debug/libsynod.so examples/cron-once.php [endpoint] [job seconds]
//
// Run it in two terminals at once: one runs the job, the other skips.
$endpoint = $argv[1] ?? '127.0.0.1:2379';
$seconds = (int) ($argv[2] ?? 3);
$host = gethostname() . '-' . getmypid();

$client = new Synod\Client($endpoint, request_timeout: 5);
try {
    // timeout 0: take the lock only if it is free now; never wait.
    $report = $client->withLock('cron/nightly-report', function (Synod\Lock $lock) use ($host, $seconds) {
        echo "running the job (fencing token {$lock->fencingToken()})\n";
        for ($i = 0; $i < $seconds; $i++) {
            sleep(1); // the work; Txn::ifHeld($lock) would guard its writes
        }
        return "report by $host";
    }, timeout: 0, ttl: 10);
    echo "done: $report\n";
} catch (Synod\Exception\TimeoutException $e) {
    echo "skipped: another host is running the job\n";
}
