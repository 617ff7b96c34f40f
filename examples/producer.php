<?php
// Hands work to workers through a queue: thumbnails to make, one job per
// image. An urgent one goes ahead of the rest (priority), a reminder waits
// a while before any worker may take it (delay). Jobs live on the server
// until a worker acknowledges them, whatever happens to this script.
//
//   php -d extension=target/debug/libsynod.so examples/producer.php [endpoint] [images]
//
// Then run examples/worker.php, one or several at once.
$endpoint = $argv[1] ?? '127.0.0.1:2379';
$images = (int) ($argv[2] ?? 5);

$client = new Synod\Client($endpoint, request_timeout: 5);
// After 3 deliveries without an ack, a job goes to the dead-letter queue.
$queue = $client->queue('thumbnails', max_attempts: 3);

for ($i = 1; $i <= $images; $i++) {
    $queue->push(json_encode(['image' => "photo-$i.jpg", 'width' => 200]));
}
// A file the workers cannot read: it fails every time, and ends in the
// dead-letter queue.
$queue->push(json_encode(['image' => 'broken.jpg', 'width' => 200]));
$queue->push(json_encode(['image' => 'cover.jpg', 'width' => 800]), priority: 10);
$queue->push(json_encode(['image' => 'reminder.jpg', 'width' => 200]), delay: 1.5);

echo "queued ", $queue->size(), " jobs\n";
