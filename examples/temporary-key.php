<?php
// A key that lives only as long as this process: it is attached to a lease
// that the extension keeps alive in the background. When the process ends
// (or is killed), the keep-alives stop and the key disappears after the TTL.
// This is how a worker announces itself for service discovery.
//
//   php -d extension=target/debug/libsynod.so examples/temporary-key.php [endpoint] [seconds]
//
// Meanwhile: etcdctl get --prefix workers/   (and again after the script ends)
$endpoint = $argv[1] ?? '127.0.0.1:2379';
$seconds = (int) ($argv[2] ?? 10);

$client = new Synod\Client($endpoint, request_timeout: 5);
$lease = $client->lease(ttl: 5);
$key = 'workers/' . gethostname() . '-' . getmypid();
$client->put($key, json_encode(['started' => date(DATE_ATOM)]), lease: $lease->id);
printf("registered %s with lease %x (ttl %ds)\n", $key, $lease->id, $lease->ttl);

for ($i = 0; $i < $seconds; $i++) {
    sleep(1); // the lease is refreshed in the background meanwhile
    printf("%ds: key %s, lease has %ds left, kept alive: %s\n", $i + 1,
        $client->get($key) === null ? 'gone' : 'present', $lease->timeToLive(),
        $lease->isKeptAlive() ? 'yes' : 'no');
}

// Leaving cleanly: revoke now rather than waiting for the TTL.
$lease->revoke();
echo "revoked; key is ", $client->get($key) === null ? "gone" : "still there", "\n";
