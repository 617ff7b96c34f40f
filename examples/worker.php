<?php
// Takes jobs from the queue examples/producer.php fills, one at a time, and
// acknowledges each once done. A job that fails is given back with a delay
// that grows with each attempt; after the queue's max_attempts it lands in
// the dead-letter queue. Several workers share the work: each job goes to
// one of them. A worker killed mid-job (kill -9, a crash) loses nothing:
// its job goes to another worker once the visibility timeout has run out.
//
//   php -d extension=target/debug/libsynod.so examples/worker.php [endpoint] [idle seconds]
//
// It stops after [idle seconds] (default 5) with nothing to do, or on
// SIGTERM / Ctrl-C once the current job is done.
$endpoint = $argv[1] ?? '127.0.0.1:2379';
$idle = (float) ($argv[2] ?? 5);
$me = gethostname() . '-' . getmypid();

$client = new Synod\Client($endpoint, request_timeout: 5);
$queue = $client->queue('thumbnails', max_attempts: 3);

$stop = false;
if (function_exists('pcntl_async_signals')) {
    pcntl_async_signals(true);
    pcntl_signal(SIGTERM, function () use (&$stop) { $stop = true; });
    pcntl_signal(SIGINT, function () use (&$stop) { $stop = true; });
}

function make_thumbnail(array $job): void
{
    if ($job['image'] === 'broken.jpg') {
        throw new RuntimeException('cannot read broken.jpg');
    }
    usleep(50000); // the work
}

// claim() waits on a watch for the next job (never polls), up to the
// timeout: signal handlers run between claims.
while (!$stop && ($job = $queue->claim(timeout: $idle, visibility: 30)) !== null) {
    $data = json_decode($job->payload, true);
    try {
        make_thumbnail($data);
        $job->ack();
        echo "made {$data['image']}\n";
    } catch (Synod\Exception\JobLostException $e) {
        // Too slow: the visibility ran out and another worker has it now.
        echo "gave up {$data['image']}: {$e->getMessage()}\n";
    } catch (RuntimeException $e) {
        $retry = 0.2 * 2 ** ($job->attempts - 1);
        $job->release(delay: $retry);
        echo "failed {$data['image']} (attempt {$job->attempts}): {$e->getMessage()}",
            $job->attempts < $queue->maxAttempts ? sprintf(", again in %.1f s", $retry) : ", given up", "\n";
    }
}

foreach ($queue->deadLetters() as $id => $payload) {
    echo "dead letter: ", json_decode($payload, true)['image'], "\n";
}
