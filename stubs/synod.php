<?php

// Stubs for synod

namespace Synod {
    /**
     * A connection to a list of etcd v3 endpoints (Synod or etcd). Connections
     * live for the whole PHP process and are shared by every Client with the
     * same endpoints and timeouts, so php-fpm workers reuse them across requests.
     */
    class Client {
        /**
         * Connects lazily: an unreachable server shows on the first call. `endpoints` is "host:port", a comma-separated list, or an array of them; timeouts are in seconds; username and password are for servers with authentication enabled.
         *
         * @param mixed $endpoints
         * @param float|null $connect_timeout
         * @param float|null $request_timeout
         * @param string|null $username
         * @param string|null $password
         */
        public function __construct(mixed $endpoints, ?float $connect_timeout = null, ?float $request_timeout = null, ?string $username = null, ?string $password = null) {}

        /**
         * The names of the direct children of `path` (ZooKeeper's getChildren()), sorted: 'x' for the key "$path/x", and also for keys under "$path/x/" when "$path/x" itself does not exist; never deeper names. Read at one revision.
         *
         * @param string $path
         * @return array
         */
        public function children(string $path): array {}

        /**
         * Discards history before `revision` (reads below it fail with CompactedException).
         *
         * @param int $revision
         * @param bool $physical
         * @return void
         */
        public function compact(int $revision, bool $physical = false): void {}

        /**
         * Stores `value` only if the key's current value is `expected`; whether it did.
         *
         * @param string $key
         * @param string $expected
         * @param string $value
         * @param int|null $lease
         * @return bool
         */
        public function compareAndSwap(string $key, string $expected, string $value, ?int $lease = null): bool {}

        /**
         * Number of keys under `prefix`. `serializable`: as for get().
         *
         * @param string $prefix
         * @param bool $serializable
         * @return int
         */
        public function countPrefix(string $prefix, bool $serializable = false): int {}

        /**
         * Creates "$prefix" followed by a ten-digit, zero-padded number (ZooKeeper's sequential nodes) with `value`, on `lease` when given, and returns the key. Numbers increase in creation order across all creators and are never reused.
         *
         * @param string $prefix
         * @param string $value
         * @param int|null $lease
         * @return string
         */
        public function createSequential(string $prefix, string $value, ?int $lease = null): string {}

        /**
         * Deletes `key` and returns how many keys were deleted (0 or 1).
         *
         * @param string $key
         * @return int
         */
        public function delete(string $key): int {}

        /**
         * Deletes every key in the store and returns how many were deleted.
         *
         * @return int
         */
        public function deleteAll(): int {}

        /**
         * Deletes every key under `prefix` and returns how many were deleted. An empty prefix raises ValueError and deletes nothing (deleteAll() deletes every key).
         *
         * @param string $prefix
         * @return int
         */
        public function deletePrefix(string $prefix): int {}

        /**
         * This process's candidate in the election `name`, with a lease of `ttl` seconds granted at campaign and kept alive in the background. Leadership outlives the request and this object: it lasts until resign(), the loss of the lease, or the end of the process.
         *
         * @param string $name
         * @param int $ttl
         * @return \Synod\Election
         */
        public function election(string $name, int $ttl = 10): \Synod\Election {}

        /**
         * Whether `key` exists (ZooKeeper's exists(); a key with keys under it but no value of its own does not).
         *
         * @param string $key
         * @return bool
         */
        public function exists(string $key): bool {}

        /**
         * The value of `key`, or null when it does not exist. With `serializable`, the member answers from its own copy without asking the leader: faster, possibly stale.
         *
         * @param string $key
         * @param bool $serializable
         * @return string|null
         */
        public function get(string $key, bool $serializable = false): ?string {}

        /**
         * Deletes `key` and returns what it held, or null when it did not exist.
         *
         * @param string $key
         * @return \Synod\KeyValue|null
         */
        public function getAndDelete(string $key): ?\Synod\KeyValue {}

        /**
         * Deletes every key under `prefix` and returns them as they were. An empty prefix raises ValueError and deletes nothing.
         *
         * @param string $prefix
         * @return array
         */
        public function getAndDeletePrefix(string $prefix): array {}

        /**
         * Stores `value` under `key` and returns what it replaced, or null when the key was new.
         *
         * @param string $key
         * @param string $value
         * @param int|null $lease
         * @return \Synod\KeyValue|null
         */
        public function getAndPut(string $key, string $value, ?int $lease = null): ?\Synod\KeyValue {}

        /**
         * The key with its metadata (at `revision` when given), or null when it does not exist. `serializable`: as for get().
         *
         * @param string $key
         * @param int|null $revision
         * @param bool $serializable
         * @return \Synod\KeyValue|null
         */
        public function getKeyValue(string $key, ?int $revision = null, bool $serializable = false): ?\Synod\KeyValue {}

        /**
         * Every key under `prefix` as key => value, sorted by key ('asc' or 'desc'), at most `limit` (0: all). `serializable`: as for get().
         *
         * @param string $prefix
         * @param int|null $limit
         * @param string|null $sort
         * @param int|null $revision
         * @param bool $serializable
         * @return array
         */
        public function getPrefix(string $prefix, ?int $limit = null, ?string $sort = null, ?int $revision = null, bool $serializable = false): array {}

        /**
         * Every key under `prefix` as a list of KeyValue, sorted by key ('asc' or 'desc'), at most `limit` (0: all). `serializable`: as for get().
         *
         * @param string $prefix
         * @param int|null $limit
         * @param string|null $sort
         * @param int|null $revision
         * @param bool $serializable
         * @return array
         */
        public function getPrefixKeyValues(string $prefix, ?int $limit = null, ?string $sort = null, ?int $revision = null, bool $serializable = false): array {}

        /**
         * The store revision the last answer to this Client was served at (any call that reached the server, and commit() of a Txn it made; not calls on a Lease or Watch, nor exists(), children() or createSequential()); null before any, unchanged by a failed call. After a read, watching from lastRevision() + 1 misses no change and repeats none.
         *
         * @return int|null
         */
        public function lastRevision(): ?int {}

        /**
         * Grants a lease of `ttl` seconds (with a chosen `id` when given), kept alive in the background unless `keep_alive` is false.
         *
         * @param int $ttl
         * @param int|null $id
         * @param bool $keep_alive
         * @param bool $revoke_on_shutdown
         * @return \Synod\Lease
         */
        public function lease(int $ttl, ?int $id = null, bool $keep_alive = true, bool $revoke_on_shutdown = false): \Synod\Lease {}

        /**
         * A lease granted earlier (by this process or another), to keep alive, inspect or revoke; LeaseNotFoundException when it is gone. Its keep-alive is not started.
         *
         * @param int $id
         * @return \Synod\Lease
         */
        public function leaseFor(int $id): \Synod\Lease {}

        /**
         * A lock on `name` (not taken yet: call acquire() or tryAcquire()). Its lease of `ttl` seconds is granted at acquire and kept alive in the background while held; it is released by release(), when the object goes away, or when the request ends.
         *
         * @param string $name
         * @param int $ttl
         * @return \Synod\Lock
         */
        public function lock(string $name, int $ttl = 10): \Synod\Lock {}

        /**
         * This process's copy of every key under `prefix`, loaded at one revision and kept fresh by a background watch: reads without a server round trip. Loaded on the first call in the process; later calls, in this request or later ones, return the same copy.
         *
         * @param string $prefix
         * @return \Synod\Mirror
         */
        public function mirror(string $prefix): \Synod\Mirror {}

        /**
         * Stores `value` under `key` (attached to `lease` when given) and returns the store revision of the write.
         *
         * @param string $key
         * @param string $value
         * @param int|null $lease
         * @return int
         */
        public function put(string $key, string $value, ?int $lease = null): int {}

        /**
         * Stores `value` only if `key` does not exist; whether it did.
         *
         * @param string $key
         * @param string $value
         * @param int|null $lease
         * @return bool
         */
        public function putIfAbsent(string $key, string $value, ?int $lease = null): bool {}

        /**
         * The work queue `name`: ordered (higher priority first, then first in, first out), at-least-once, stored as plain keys under "$name/" (layout in the README). A job delivered `max_attempts` times without an ack goes to the dead-letter queue.
         *
         * @param string $name
         * @param int $max_attempts
         * @return \Synod\Queue
         */
        public function queue(string $name, int $max_attempts = 5): \Synod\Queue {}

        /**
         * The instances of `service`: register() this process, instances(), pick() one (round-robin or random, skipping those marked down), watch() membership. Stored as plain keys "synod/services/$service/ID" with JSON values, so other languages take part with any etcd client (layout in the README). ValueError for an empty name or one with '/'.
         *
         * @param string $service
         * @return \Synod\ServiceRegistry
         */
        public function services(string $service): \Synod\ServiceRegistry {}

        /**
         * The server's status: version, dbSize, leader, memberId, clusterId (ids in hex, as etcdctl prints them), raftIndex, raftTerm, revision.
         *
         * @return array
         */
        public function status(): array {}

        /**
         * Starts a transaction: add comparisons with if*(), operations with then() and else(), and send it with commit().
         *
         * @return \Synod\Txn
         */
        public function txn(): \Synod\Txn {}

        /**
         * Watches a key (or every key under it with `prefix`), from `start_revision` when given (replaying history), with previous values when `prev_kv`.
         *
         * @param string $key
         * @param bool $prefix
         * @param int|null $start_revision
         * @param bool $prev_kv
         * @return \Synod\Watch
         */
        public function watch(string $key, bool $prefix = false, ?int $start_revision = null, bool $prev_kv = false): \Synod\Watch {}

        /**
         * Runs `fn($lock)` holding the lock on `name` and returns what it returns; the lock is released afterwards, also when `fn` throws. TimeoutException when the lock was not acquired within `timeout` seconds (null: wait without limit; 0: only if free now). LockLostException when the lock was lost while `fn` ran.
         *
         * @param string $name
         * @param callable $fn
         * @param float|null $timeout
         * @param int $ttl
         * @return mixed
         */
        public function withLock(string $name, callable $fn, ?float $timeout = null, int $ttl = 10): mixed {}
    }

    /**
     * This process's candidate in a leader election, with etcd's key layout (so `etcdctl elect` takes part too). Made by Client::election().
     */
    class Election {
        /**
         * The election's name.
         *
         * @var string
         */
        public readonly string $name;

        public function __construct() {}

        /**
         * Stands with `value` and waits up to `timeout` seconds (without limit when null) to lead; false when the time ran out (the candidacy is then withdrawn). While leading, only updates the value.
         *
         * @param string $value
         * @param float|null $timeout
         * @return bool
         */
        public function campaign(string $value, ?float $timeout = null): bool {}

        /**
         * Asks the server whether this process leads (its key exists and is the oldest).
         *
         * @return bool
         */
        public function isLeader(): bool {}

        /**
         * The leader's key and value, null when no one leads.
         *
         * @return \Synod\KeyValue|null
         */
        public function leader(): ?\Synod\KeyValue {}

        /**
         * Leader changes from now on, beginning with the current leader (or its absence); also reports when no one leads.
         *
         * @return \Synod\LeaderObserver
         */
        public function observe(): \Synod\LeaderObserver {}

        /**
         * Announces a new value without another election; NotLeaderException when this process does not lead.
         *
         * @param string $value
         * @return void
         */
        public function proclaim(string $value): void {}

        /**
         * Steps down so the next candidate leads (nothing to do when not leading).
         *
         * @return void
         */
        public function resign(): void {}
    }

    /**
     * One change seen by a watch.
     */
    class Event {
        public const DELETE = 'DELETE';

        public const PUT = 'PUT';

        /**
         * The key that changed.
         *
         * @var string
         */
        public readonly string $key;

        /**
         * The key's state after the change (for a delete: key and revision only).
         *
         * @var \Synod\KeyValue
         */
        public readonly \Synod\KeyValue $kv;

        /**
         * The key's state before the change, when asked for and present.
         *
         * @var \Synod\KeyValue|null
         */
        public readonly ?\Synod\KeyValue $prevKv;

        /**
         * The value before the change, when the watch asked for previous values and there was one.
         *
         * @var string|null
         */
        public readonly ?string $prevValue;

        /**
         * Revision of the change.
         *
         * @var int
         */
        public readonly int $revision;

        /**
         * Event::PUT or Event::DELETE.
         *
         * @var string
         */
        public readonly string $type;

        /**
         * The new value; empty for a delete.
         *
         * @var string
         */
        public readonly string $value;

        public function __construct() {}
    }

    /**
     * A claimed job. Finish it with ack(), give it back with release(), or keep it longer with extend(); left alone, it goes to another worker when its visibility timeout runs out. Made by Queue::claim().
     */
    class Job {
        /**
         * How many times the job was delivered, this time included (1 the first time).
         *
         * @var int
         */
        public readonly int $attempts;

        /**
         * The job's id, as push() returned it.
         *
         * @var string
         */
        public readonly string $id;

        /**
         * The payload given to push().
         *
         * @var string
         */
        public readonly string $payload;

        /**
         * The priority given to push().
         *
         * @var int
         */
        public readonly int $priority;

        public function __construct() {}

        /**
         * Finishes the job: it is removed for good. JobLostException when the visibility timeout ran out and another worker claimed it (or finished it) meanwhile; a timeout that ran out with nobody else claiming still counts.
         *
         * @return void
         */
        public function ack(): void {}

        /**
         * Keeps the job claimed for `seconds` from now, instead of what was left of its visibility timeout. JobLostException as for ack().
         *
         * @param int $seconds
         * @return void
         */
        public function extend(int $seconds): void {}

        /**
         * Gives the job back: claimable again at once in its old place, or after `delay` seconds (then in line from that time). A job that has had maxAttempts deliveries goes to the dead-letter queue instead. JobLostException as for ack().
         *
         * @param float $delay
         * @return void
         */
        public function release(float $delay = 0.0): void {}
    }

    /**
     * A key with its value and etcd's metadata.
     */
    class KeyValue {
        /**
         * Revision of the write that created the key (since its last delete).
         *
         * @var int
         */
        public readonly int $createRevision;

        /**
         * The key.
         *
         * @var string
         */
        public readonly string $key;

        /**
         * ID of the lease the key is attached to, 0 for none.
         *
         * @var int
         */
        public readonly int $lease;

        /**
         * Revision of the last write to the key.
         *
         * @var int
         */
        public readonly int $modRevision;

        /**
         * The value.
         *
         * @var string
         */
        public readonly string $value;

        /**
         * Number of writes since the key was created.
         *
         * @var int
         */
        public readonly int $version;

        public function __construct() {}
    }

    /**
     * Who leads an election as of a revision. Read-only.
     */
    class LeaderChange {
        /**
         * The leader's key and value; null when no one leads.
         *
         * @var \Synod\KeyValue|null
         */
        public readonly ?\Synod\KeyValue $leader;

        /**
         * The store revision this answer is of.
         *
         * @var int
         */
        public readonly int $revision;

        /**
         * The leader's value; null when no one leads.
         *
         * @var string|null
         */
        public readonly ?string $value;

        public function __construct() {}
    }

    /**
     * Leader changes of an election: wait() with a timeout, or foreach. Made by Election::observe().
     */
    class LeaderObserver implements \Iterator {
        public function __construct() {}

        /**
         * Stops observing; later waits return null and foreach ends.
         *
         * @return void
         */
        public function cancel(): void {}

        /**
         * The current change of a foreach.
         *
         * @return \Synod\LeaderChange|null
         */
        public function current(): ?\Synod\LeaderChange {}

        /**
         * The position of the current change in this foreach, from 0.
         *
         * @return int
         */
        public function key(): int {}

        /**
         * Waits (without limit) for the next change of a foreach.
         *
         * @return void
         */
        public function next(): void {}

        /**
         * Starts a foreach with the next change not handed out yet.
         *
         * @return void
         */
        public function rewind(): void {}

        /**
         * Whether a foreach has a change; false once cancelled.
         *
         * @return bool
         */
        public function valid(): bool {}

        /**
         * Waits up to `timeout` seconds (without limit when null) for the next change and returns it; null when none came in time or after cancel(). PHP signal handlers run only between calls, so a loop that must react to signals passes a timeout.
         *
         * @param float|null $timeout
         * @return \Synod\LeaderChange|null
         */
        public function wait(?float $timeout = null): ?\Synod\LeaderChange {}
    }

    /**
     * A lease: keys attached to it are deleted when it expires or is revoked. Made by Client::lease().
     */
    class Lease {
        /**
         * The lease ID, to pass as `lease:` when writing keys.
         *
         * @var int
         */
        public readonly int $id;

        /**
         * The TTL in seconds the server granted.
         *
         * @var int
         */
        public readonly int $ttl;

        public function __construct() {}

        /**
         * Whether the background keep-alive is running: false once stopped, or once the lease was lost.
         *
         * @return bool
         */
        public function isKeptAlive(): bool {}

        /**
         * Refreshes the lease once and returns its TTL; LeaseNotFoundException when it is gone.
         *
         * @return int
         */
        public function keepAlive(): int {}

        /**
         * The keys attached to the lease.
         *
         * @return array
         */
        public function keys(): array {}

        /**
         * Revokes the lease now, deleting its keys; LeaseNotFoundException when it is already gone.
         *
         * @return void
         */
        public function revoke(): void {}

        /**
         * Whether to revoke the lease when the current request ends (off unless asked for).
         *
         * @param bool $revoke
         * @return void
         */
        public function revokeOnShutdown(bool $revoke): void {}

        /**
         * Keeps the lease alive in the background from now on (Client::lease() does this unless told not to).
         *
         * @return void
         */
        public function startKeepAlive(): void {}

        /**
         * Stops the background keep-alive; the lease then expires after its TTL.
         *
         * @return void
         */
        public function stopKeepAlive(): void {}

        /**
         * Seconds the lease has left, or -1 when it has expired or was revoked.
         *
         * @return int
         */
        public function timeToLive(): int {}
    }

    /**
     * A distributed lock with etcd's key layout (`NAME/LEASE_ID_IN_HEX`), so it excludes `etcdctl lock` and etcd's own clients on the same name. Made by Client::lock(); released when the request ends at the latest.
     */
    class Lock {
        /**
         * The lock's name.
         *
         * @var string
         */
        public readonly string $name;

        public function __construct() {}

        /**
         * Waits up to `timeout` seconds (without limit when null) for the lock; false when the time ran out. True at once when already held. LockLostException when the lock's lease went away while waiting.
         *
         * @param float|null $timeout
         * @return bool
         */
        public function acquire(?float $timeout = null): bool {}

        /**
         * While held: the create revision of the lock's key, larger with every grant of the lock; Txn::ifHeld() guards writes with it. Null when not acquired.
         *
         * @return int|null
         */
        public function fencingToken(): ?int {}

        /**
         * Asks the server whether this process still holds the lock (its key exists and is first in line).
         *
         * @return bool
         */
        public function isHeld(): bool {}

        /**
         * While held: the lock's key (`name/LEASE_ID_IN_HEX`). Null when not acquired.
         *
         * @return string|null
         */
        public function key(): ?string {}

        /**
         * Gives the lock up (nothing to do when not held). LockLostException when it had been lost meanwhile (its lease expired or was revoked), so someone else may have held it while this process thought it did.
         *
         * @return void
         */
        public function release(): void {}

        /**
         * Takes the lock only if no one holds it or waits for it; never waits.
         *
         * @return bool
         */
        public function tryAcquire(): bool {}
    }

    /**
     * A process-local copy of every key under a prefix, kept fresh by a background watch; reads never leave the process. Made by Client::mirror(); lives as long as the PHP process, shared by all its requests.
     */
    class Mirror {
        /**
         * The mirrored prefix.
         *
         * @var string
         */
        public readonly string $prefix;

        public function __construct() {}

        /**
         * Every key in the copy as key => value, sorted by key, like Client::getPrefix().
         *
         * @return array
         */
        public function all(): array {}

        /**
         * The value of `key` in the copy, or null when it does not exist there. `key` must be under the prefix (ValueError otherwise).
         *
         * @param string $key
         * @return string|null
         */
        public function get(string $key): ?string {}

        /**
         * The store revision the copy is at: every change under the prefix up to it is in the copy.
         *
         * @return int
         */
        public function revision(): int {}

        /**
         * Waits up to `timeout` seconds (without limit when null) until the copy is at `revision` or later, to read one's own writes: pass what put() returned. False when the time ran out.
         *
         * @param int $revision
         * @param float|null $timeout
         * @return bool
         */
        public function waitFor(int $revision, ?float $timeout = null): bool {}
    }

    /**
     * One operation of a transaction: made with Op::get, Op::put or Op::delete.
     */
    class Op {
        public function __construct() {}

        /**
         * Deletes a key, or every key under a prefix; gives the count in the result.
         *
         * @param string $key
         * @param bool $prefix
         * @return \Synod\Op
         */
        public static function delete(string $key, bool $prefix = false): \Synod\Op {}

        /**
         * Reads a key, or every key under a prefix; gives KeyValue[] in the result.
         *
         * @param string $key
         * @param bool $prefix
         * @param int|null $limit
         * @return \Synod\Op
         */
        public static function get(string $key, bool $prefix = false, ?int $limit = null): \Synod\Op {}

        /**
         * Writes a key (attached to a lease when given); gives the revision in the result.
         *
         * @param string $key
         * @param string $value
         * @param int|null $lease
         * @return \Synod\Op
         */
        public static function put(string $key, string $value, ?int $lease = null): \Synod\Op {}
    }

    /**
     * An ordered, at-least-once work queue stored as plain etcd keys (layout in the README): higher priority first, then first in, first out. Made by Client::queue().
     */
    class Queue {
        /**
         * Deliveries of a job before it goes to the dead-letter queue.
         *
         * @var int
         */
        public readonly int $maxAttempts;

        /**
         * The queue's name.
         *
         * @var string
         */
        public readonly string $name;

        public function __construct() {}

        /**
         * Waits up to `timeout` seconds (without limit when null; 0: only if one is claimable now) for a job and claims it for `visibility` seconds: unless acknowledged, released or extended in that time, it goes to another worker. Null when none came in time. Waits on a watch, not by polling.
         *
         * @param float|null $timeout
         * @param int $visibility
         * @return \Synod\Job|null
         */
        public function claim(?float $timeout = null, int $visibility = 30): ?\Synod\Job {}

        /**
         * The dead-letter queue as job id => payload, oldest first: jobs delivered maxAttempts times without an ack. At most `limit` (0: all).
         *
         * @param int $limit
         * @return array
         */
        public function deadLetters(int $limit = 0): array {}

        /**
         * Adds a job and returns its id. Higher priorities are claimed first; with a `delay` in seconds, the job is claimable only once that time has passed. Payloads up to 1,570,816 bytes (etcd's 1.5 MiB request limit less 2 KiB for the keys).
         *
         * @param string $payload
         * @param int $priority
         * @param float $delay
         * @return string
         */
        public function push(string $payload, int $priority = 0, float $delay = 0.0): string {}

        /**
         * Puts a dead-letter job back in line (at the end of its priority) with its attempts counted from 0 again; false when there is no such dead job.
         *
         * @param string $id
         * @return bool
         */
        public function requeue(string $id): bool {}

        /**
         * How many jobs are waiting or being worked on (ready, claimed and delayed; not the dead letters).
         *
         * @return int
         */
        public function size(): int {}

        /**
         * How many jobs are where, at one revision: ['ready' => claimable now, 'claimed' => being worked on, 'delayed' => waiting for their time, 'dead' => in the dead-letter queue].
         *
         * @return array
         */
        public function stats(): array {}
    }

    /**
     * This process's registration of an instance: kept alive in the background until deregister() or the end of the process, not the end of the request or of this object. Made by ServiceRegistry::register().
     */
    class Registration {
        /**
         * The instance's id.
         *
         * @var string
         */
        public readonly string $id;

        /**
         * The instance's key: "synod/services/SERVICE/ID".
         *
         * @var string
         */
        public readonly string $key;

        /**
         * The service's name.
         *
         * @var string
         */
        public readonly string $service;

        /**
         * The TTL in seconds the server granted.
         *
         * @var int
         */
        public readonly int $ttl;

        public function __construct() {}

        /**
         * Removes the instance now (revokes its lease) and stops keeping it alive; nothing to do when not registered by this process.
         *
         * @return void
         */
        public function deregister(): void {}

        /**
         * Whether the key is being kept alive: false after deregister(), while it is being registered again after its lease was lost or its key deleted, once another process registered the same id, and in a forked child.
         *
         * @return bool
         */
        public function isActive(): bool {}

        /**
         * The lease the key is on now (a new one after the registration had to be made again); null once deregistered, or in a forked child.
         *
         * @return int|null
         */
        public function lease(): ?int {}
    }

    /**
     * One membership change of a service. Read-only.
     */
    class ServiceEvent {
        public const ADDED = 'added';

        public const REMOVED = 'removed';

        public const UPDATED = 'updated';

        /**
         * The instance as it is now; for a removal, as it was last.
         *
         * @var \Synod\ServiceInstance
         */
        public readonly \Synod\ServiceInstance $instance;

        /**
         * The store revision of the change.
         *
         * @var int
         */
        public readonly int $revision;

        /**
         * ServiceEvent::ADDED, UPDATED (address, port or meta changed) or REMOVED (deregistered, expired, deleted, or its value no longer an instance).
         *
         * @var string
         */
        public readonly string $type;

        public function __construct() {}
    }

    /**
     * A registered instance as read from the server. Read-only.
     */
    class ServiceInstance {
        /**
         * Where to reach it: a host name or IP address.
         *
         * @var string
         */
        public readonly string $address;

        /**
         * The instance's id (the last part of its key).
         *
         * @var string
         */
        public readonly string $id;

        /**
         * The metadata given at registration, as an array.
         *
         * @var array
         */
        public readonly array $meta;

        /**
         * Its port, 1..65535.
         *
         * @var int
         */
        public readonly int $port;

        /**
         * The store revision of the instance's last write (its registration or update).
         *
         * @var int
         */
        public readonly int $revision;

        /**
         * The service's name.
         *
         * @var string
         */
        public readonly string $service;

        public function __construct() {}
    }

    /**
     * Registers instances of one service and finds them. Instances are plain keys "synod/services/SERVICE/ID" with JSON values {"id", "address", "port", "meta"} (layout in the README), so any etcd client registers and discovers too. Made by Client::services().
     */
    class ServiceRegistry {
        /**
         * The service's name.
         *
         * @var string
         */
        public readonly string $service;

        public function __construct() {}

        /**
         * Every registered instance, sorted by id, as the server has them now. Keys under the prefix whose value is not an instance (not JSON, no address or port) are skipped.
         *
         * @return array
         */
        public function instances(): array {}

        /**
         * Makes pick() skip `instance` for `seconds` (up to 86400; 0 lifts the mark), in this process only, as Curator's down-instance policy does for an instance that failed.
         *
         * @param \Synod\ServiceInstance $instance
         * @param float $seconds
         * @return void
         */
        public function markDown(\Synod\ServiceInstance $instance, float $seconds): void {}

        /**
         * One instance, read from the server now, skipping those marked down: 'round-robin' (in turn, across the requests of this process) or 'random'. Null when there is none (none registered, or all marked down). ValueError for another strategy.
         *
         * @param string $strategy
         * @return \Synod\ServiceInstance|null
         */
        public function pick(string $strategy = 'round-robin'): ?\Synod\ServiceInstance {}

        /**
         * Registers this process as instance `id` at `address`:`port` with `meta` (anything json_encode() takes: strings, numbers, bools, null, arrays). Its key lives on a lease of `ttl` seconds kept alive in the background for the life of the process (across requests), registered again by itself if the lease is lost, and revoked when the process exits or deregister() is called; a process killed with kill -9 is gone after the TTL. Registering the same id again updates it in place (with the same values and ttl: nothing to do, no request). ValueError for an empty service or id, an id with '/', a port outside 1..65535, a ttl outside 1..86400 or meta that cannot be JSON; nothing is written then.
         *
         * @param string $id
         * @param string $address
         * @param int $port
         * @param array $meta
         * @param int $ttl
         * @return \Synod\Registration
         */
        public function register(string $id, string $address, int $port, array $meta = [], int $ttl = 10): \Synod\Registration {}

        /**
         * Membership changes from now on (ServiceEvent: added, updated, removed), in the server's order; wait() with a timeout, or foreach. A removal carries the instance as it was.
         *
         * @return \Synod\ServiceWatch
         */
        public function watch(): \Synod\ServiceWatch {}
    }

    /**
     * Membership changes of a service. Made by ServiceRegistry::watch(); iterate it with foreach, or call wait().
     */
    class ServiceWatch implements \Iterator {
        /**
         * The revision of the last event handed out (before any: the store revision the watch started at).
         *
         * @var int
         */
        public readonly int $revision;

        public function __construct() {}

        /**
         * Stops the watch; later waits return [] and foreach ends.
         *
         * @return void
         */
        public function cancel(): void {}

        /**
         * The current event of a foreach.
         *
         * @return \Synod\ServiceEvent|null
         */
        public function current(): ?\Synod\ServiceEvent {}

        /**
         * The instances as this watch knows them: as of its start, with every change it has received applied (also those not handed out yet).
         *
         * @return array
         */
        public function instances(): array {}

        /**
         * The position of the current event in this foreach, from 0.
         *
         * @return int
         */
        public function key(): int {}

        /**
         * Waits (without limit) for the next event of a foreach.
         *
         * @return void
         */
        public function next(): void {}

        /**
         * Starts a foreach: waits for the next event not handed out yet.
         *
         * @return void
         */
        public function rewind(): void {}

        /**
         * Whether a foreach has an event; false once the watch was cancelled.
         *
         * @return bool
         */
        public function valid(): bool {}

        /**
         * Waits up to `timeout` seconds (forever when null) for changes and returns them; [] when none came in time. PHP signal handlers run only between calls, so a loop that must react to signals passes a timeout.
         *
         * @param float|null $timeout
         * @return array
         */
        public function wait(?float $timeout = null): array {}
    }

    /**
     * A transaction being built: comparisons, then the operations to run when
     * all hold, else the others. Made by Client::txn().
     */
    class Txn {
        public function __construct() {}

        /**
         * Sends the transaction; it runs atomically at one revision.
         *
         * @return \Synod\TxnResult
         */
        public function commit(): \Synod\TxnResult {}

        /**
         * Operations to run when a comparison fails.
         *
         * @param \Synod\Op $ops
         * @return \Synod\Txn
         */
        public function else(\Synod\Op ...$ops): \Synod\Txn {}

        /**
         * Compares the key's create revision (0 when the key does not exist).
         *
         * @param string $key
         * @param string $op
         * @param int $revision
         * @param bool $prefix
         * @return \Synod\Txn
         */
        public function ifCreateRevision(string $key, string $op, int $revision, bool $prefix = false): \Synod\Txn {}

        /**
         * Holds only while `lock` is still held by this grant (its key's create revision is the fencing token), so a holder that lost the lock cannot write; never holds when the lock is not acquired.
         *
         * @param \Synod\Lock $lock
         * @return \Synod\Txn
         */
        public function ifHeld(\Synod\Lock $lock): \Synod\Txn {}

        /**
         * Compares the ID of the lease the key is attached to (0 for none).
         *
         * @param string $key
         * @param string $op
         * @param int $lease
         * @param bool $prefix
         * @return \Synod\Txn
         */
        public function ifLease(string $key, string $op, int $lease, bool $prefix = false): \Synod\Txn {}

        /**
         * Compares the key's mod revision (0 when the key does not exist).
         *
         * @param string $key
         * @param string $op
         * @param int $revision
         * @param bool $prefix
         * @return \Synod\Txn
         */
        public function ifModRevision(string $key, string $op, int $revision, bool $prefix = false): \Synod\Txn {}

        /**
         * Compares the key's value ('=', '!=', '<', '>', bytewise).
         *
         * @param string $key
         * @param string $op
         * @param string $value
         * @param bool $prefix
         * @return \Synod\Txn
         */
        public function ifValue(string $key, string $op, string $value, bool $prefix = false): \Synod\Txn {}

        /**
         * Compares the key's version (0 when the key does not exist).
         *
         * @param string $key
         * @param string $op
         * @param int $version
         * @param bool $prefix
         * @return \Synod\Txn
         */
        public function ifVersion(string $key, string $op, int $version, bool $prefix = false): \Synod\Txn {}

        /**
         * Operations to run when every comparison holds.
         *
         * @param \Synod\Op $ops
         * @return \Synod\Txn
         */
        public function then(\Synod\Op ...$ops): \Synod\Txn {}
    }

    /**
     * The outcome of a transaction.
     */
    class TxnResult {
        /**
         * One entry per operation that ran: KeyValue[] for a get, the revision for a put, the count for a delete, a TxnResult for a nested transaction.
         *
         * @var array
         */
        public readonly array $responses;

        /**
         * The store revision after the transaction.
         *
         * @var int
         */
        public readonly int $revision;

        /**
         * Whether every comparison held, so the `then` operations ran.
         *
         * @var bool
         */
        public readonly bool $succeeded;

        public function __construct() {}
    }

    /**
     * A watch on a key or prefix. Made by Client::watch(); iterate it with foreach, or call wait().
     */
    class Watch implements \Iterator {
        /**
         * The revision of the last event handed out (before any: the store revision when the watch began).
         *
         * @var int
         */
        public readonly int $revision;

        public function __construct() {}

        /**
         * Stops the watch; later waits return [] and foreach ends.
         *
         * @return void
         */
        public function cancel(): void {}

        /**
         * The current event of a foreach.
         *
         * @return \Synod\Event|null
         */
        public function current(): ?\Synod\Event {}

        /**
         * The position of the current event in this foreach, from 0.
         *
         * @return int
         */
        public function key(): int {}

        /**
         * Waits (without limit) for the next event of a foreach.
         *
         * @return void
         */
        public function next(): void {}

        /**
         * Starts a foreach: waits for the next event not handed out yet (an
         * earlier foreach that stopped with `break` had handed out its last one).
         *
         * @return void
         */
        public function rewind(): void {}

        /**
         * Whether a foreach has an event; false once the watch was cancelled.
         *
         * @return bool
         */
        public function valid(): bool {}

        /**
         * Waits up to `timeout` seconds (forever when null) for events and returns them; [] when none came in time. PHP signal handlers run only between calls, so a loop that must react to signals passes a timeout.
         *
         * @param float|null $timeout
         * @return array
         */
        public function wait(?float $timeout = null): array {}
    }
}

namespace Synod\Exception {
    /**
     * Base of every Synod failure. The code is the gRPC status code the server (or the transport) gave.
     */
    class SynodException extends \RuntimeException {}

    /**
     * No endpoint could be reached, or the connection broke during the call.
     */
    class ConnectionException extends SynodException {}

    /**
     * The call did not finish within the request timeout.
     */
    class TimeoutException extends SynodException {}

    /**
     * The revision asked for is older than the store's compaction point.
     */
    class CompactedException extends SynodException {
        /**
         * The oldest revision still readable, when the server said (0 otherwise).
         *
         * @var int
         */
        public int $compactRevision = 0;
    }

    /**
     * The lease does not exist: it expired or was revoked.
     */
    class LeaseNotFoundException extends SynodException {}

    /**
     * A held lock was lost (its lease expired or was revoked, say while PHP was busy) and another may have taken it since; also when a waiter's lease goes while it waits.
     */
    class LockLostException extends SynodException {}

    /**
     * Election::proclaim() by a candidate that does not lead (never did, resigned, or lost its lease).
     */
    class NotLeaderException extends SynodException {}

    /**
     * Job::ack(), release() or extend() after the job's visibility timeout ran out and another worker claimed it (or finished it): this worker no longer has it, and its work may be done twice.
     */
    class JobLostException extends SynodException {}
}
