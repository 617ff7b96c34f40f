<?php
// One active scheduler among several: every instance stands in the
// election; the leader does the work while it leads, the others wait their
// turn and watch who leads. When the leader stops (or dies: after its TTL),
// the next one in line takes over.
//
//   php -d extension=target/debug/libsynod.so examples/leader.php [endpoint] [name] [seconds to lead]
//
// Start two or three with different names; stop the leader (Ctrl-C) and
// watch another take over. Meanwhile: etcdctl elect --listen schedulers
$endpoint = $argv[1] ?? '127.0.0.1:2379';
$me = $argv[2] ?? gethostname() . '-' . getmypid();
$seconds = (int) ($argv[3] ?? 5);

$client = new Synod\Client($endpoint, request_timeout: 5);
$election = $client->election('schedulers', ttl: 5);
$observer = $election->observe();

// Not leading yet: wait in line a second at a time, saying who leads meanwhile.
while (!$election->campaign($me, timeout: 1.0)) {
    while (($change = $observer->wait(timeout: 0)) !== null) {
        echo "$me: the leader is ", $change->value ?? 'nobody', "\n";
    }
}
echo "$me: leading\n";

for ($tick = 1; $tick <= $seconds; $tick++) {
    // isLeader() asks the server: a leader that lost its lease stops working.
    if (!$election->isLeader()) {
        echo "$me: lost the leadership\n";
        exit(1);
    }
    $election->proclaim("$me (tick $tick)"); // followers see the progress
    echo "$me: scheduling round $tick\n";
    sleep(1);
}

// Stepping down hands over at once (the end of the process would too).
$election->resign();
echo "$me: resigned\n";
