//! Coordination recipes built only on the client's plain calls (txn, range,
//! delete, watch, leases). They use the key layout of etcd's Go
//! `client/v3/concurrency` package (`NAME/LEASE_ID_IN_HEX`, the oldest
//! create revision under `NAME/` wins), so a lock or an election taken here
//! and one taken by etcd's own clients, `etcdctl lock` or a server's Lock
//! RPC on the same name exclude each other.

mod election;
mod lock;
mod mirror;
mod queue;
mod services;
mod zookeeper;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use election::{Election, LeaderChange, Observer};
pub use lock::Lock;
pub use mirror::Mirror;
pub use queue::{
    job_delay, DeadJob, Job, Queue, Released, Stats, DEFAULT_MAX_ATTEMPTS, JOB_LOST, MAX_NAME,
    MAX_PAYLOAD, MAX_SECONDS,
};
pub use services::{
    check_ttl as check_service_ttl, decode as decode_instance, encode as encode_instance,
    instance_key, instances, service_prefix, Change, ChangeKind, Instance, Picker, RegState,
    Registration, ServiceWatch, Strategy, MAX_DEPTH, MAX_SERVICE_NAME, MAX_TTL, SERVICES_PREFIX,
};
use tokio::time::Instant;
pub use zookeeper::{children, create_sequential, exists};

use crate::pb::{
    compare, range_request, request_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use crate::{mvccpb, prefix_end, Client, Error, KeepAlive, Watch, WatchBatch, WatchOptions};

/// etcd's text for a waiter whose key vanished while it waited (its lease
/// expired or was revoked): it must not believe it holds the lock.
pub const SESSION_EXPIRED: &str = "mutex: session is expired";
/// etcd's text for a proclaim or resign by a candidate that is not leader.
pub const NOT_LEADER: &str = "election: not leader";

pub(crate) fn session_expired() -> Error {
    Error::Server {
        code: tonic::Code::FailedPrecondition,
        message: SESSION_EXPIRED.into(),
    }
}

pub(crate) fn not_leader() -> Error {
    Error::Server {
        code: tonic::Code::FailedPrecondition,
        message: NOT_LEADER.into(),
    }
}

/// One place in line under `NAME/`: what a lock holder and an election
/// candidate share.
struct Contender {
    client: Client,
    prefix: Vec<u8>,
    lease: Lease,
    /// Our key and its create revision once we are first in line.
    held: Option<(Vec<u8>, i64)>,
}

impl Contender {
    /// In line on our own lease, granted with `ttl` seconds when needed.
    fn owned(client: Client, name: &[u8], ttl: i64) -> Result<Contender, Error> {
        let lease = Lease::owned(client.clone(), ttl)?;
        Contender::new(client, name, lease)
    }

    /// In line on the caller's lease.
    fn borrowed(client: Client, name: &[u8], lease: i64) -> Result<Contender, Error> {
        let lease = Lease::borrowed(client.clone(), lease)?;
        Contender::new(client, name, lease)
    }

    fn new(client: Client, name: &[u8], lease: Lease) -> Result<Contender, Error> {
        Ok(Contender {
            prefix: name_prefix(name)?,
            lease,
            client,
            held: None,
        })
    }

    /// Puts our key with `value` (or updates the value of the key our
    /// lease already has in line, as etcd's Campaign does) and waits up to
    /// `timeout` to be first; false when the time ran out. A key that
    /// times out or fails is taken back, so it does not stay in line ahead
    /// of others.
    async fn join(&mut self, value: Vec<u8>, timeout: Option<Duration>) -> Result<bool, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let lease = self.lease.ensure().await?;
        let key = lease_key(&self.prefix, lease);
        let attempt = self.lease.attempt(&self.prefix, &key);
        let turn = async {
            let queued = enqueue(&self.client, &self.prefix, &key, value.clone(), lease).await?;
            attempt.known(queued.rev);
            if queued.existing.as_ref().is_some_and(|v| *v != value) {
                put_if_mine(&self.client, &key, queued.rev, value, lease).await?;
            }
            wait_turn(&self.client, &self.prefix, &key, &queued, deadline).await
        };
        let turn = turn.await;
        let rev = conclude(attempt, &mut self.lease, turn).await;
        // A failed attempt took our key back, whatever we held before.
        self.held = match rev {
            Ok(Some(rev)) => Some((key, rev)),
            _ => None,
        };
        rev.map(|rev| rev.is_some())
    }

    /// Asks the server whether our key still exists and is first in line,
    /// in one txn so both answers are of one revision.
    async fn is_first(&self) -> Result<bool, Error> {
        let Some((key, rev)) = &self.held else {
            return Ok(false);
        };
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![],
                success: vec![op_get(key), op_range(first_created(&self.prefix))],
                failure: vec![],
            })
            .await?;
        let mine = first_kv(&resp, 0).is_some_and(|kv| kv.create_revision == *rev);
        let first = first_kv(&resp, 1).is_some_and(|kv| kv.create_revision == *rev);
        Ok(mine && first)
    }

    /// Leaves the line: deletes our key if it is still the one we put, and
    /// revokes our own lease. Whether we were still first: false when our
    /// key had gone (its lease expired or was revoked) and another may
    /// have gone first meanwhile, or when we never were.
    async fn leave(&mut self) -> Result<bool, Error> {
        let Some((key, rev)) = self.held.take() else {
            return Ok(false);
        };
        let deleted = delete_own(&self.client, &self.prefix, &key, rev).await;
        if deleted.is_err() && !self.lease.is_owned() {
            // The caller's lease keeps the key alive: let them try again.
            self.held = Some((key, rev));
            return deleted.map(|(_, first)| first);
        }
        // Our own lease goes either way. Revoking stops the keep-alive
        // first, so even when the server cannot be told now, the key goes
        // within the TTL; a failure to revoke is not reported, since
        // nothing is left on that lease but time.
        let _ = self.lease.revoke().await;
        deleted.map(|(_, first)| first)
    }

    fn key(&self) -> Option<&[u8]> {
        self.held.as_ref().map(|(key, _)| key.as_slice())
    }

    fn rev(&self) -> Option<i64> {
        self.held.as_ref().map(|(_, rev)| *rev)
    }
}

/// Puts `value` on `key` only while it is the one created at `rev`;
/// `election: not leader` otherwise.
async fn put_if_mine(
    client: &Client,
    key: &[u8],
    rev: i64,
    value: Vec<u8>,
    lease: i64,
) -> Result<(), Error> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(key, rev)],
            success: vec![op_put(key, value, lease)],
            failure: vec![],
        })
        .await?;
    if resp.succeeded {
        Ok(())
    } else {
        Err(not_leader())
    }
}

/// `NAME/` from a lock or election name, as etcd's `NewMutex` builds it.
fn name_prefix(name: &[u8]) -> Result<Vec<u8>, Error> {
    if name.is_empty() {
        return Err(Error::InvalidArgument("the name must not be empty".into()));
    }
    let mut p = name.to_vec();
    p.push(b'/');
    Ok(p)
}

/// `prefix` + the lease id as Go's `%x` prints an int64 (a sign, never
/// two's complement), so our key for a lease is the one Go computes.
fn lease_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut k = prefix.to_vec();
    k.extend_from_slice(hex.as_bytes());
    k
}

/// The key under `prefix` created first: the holder (etcd's `WithFirstCreate`).
fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: range_request::SortOrder::Ascend as i32,
        sort_target: range_request::SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The key under `prefix` created last at or before `max_create_rev`: the
/// one waiter ahead of us, so a release wakes one waiter, not all.
fn last_created_up_to(prefix: &[u8], max_create_rev: i64) -> RangeRequest {
    RangeRequest {
        sort_order: range_request::SortOrder::Descend as i32,
        max_create_revision: max_create_rev,
        ..first_created(prefix)
    }
}

/// `CreateRevision(key) == rev`: true only while the key created at `rev`
/// still exists. `rev == 0` means "absent".
pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        key: key.to_vec(),
        target: compare::CompareTarget::Create as i32,
        result: compare::CompareResult::Equal as i32,
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

fn op_get(key: &[u8]) -> RequestOp {
    op_range(RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

fn op_put(key: &[u8], value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

fn op_delete(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

fn range_at(resp: &TxnResponse, i: usize) -> Option<&RangeResponse> {
    match resp.responses.get(i)?.response.as_ref()? {
        crate::pb::response_op::Response::ResponseRange(r) => Some(r),
        _ => None,
    }
}

fn first_kv(resp: &TxnResponse, i: usize) -> Option<&mvccpb::KeyValue> {
    range_at(resp, i).and_then(|r| r.kvs.first())
}

fn header_revision(resp: &TxnResponse) -> i64 {
    resp.header.as_ref().map_or(0, |h| h.revision)
}

/// A random number, good enough to spread retries and picks.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

fn malformed(what: &str) -> Error {
    Error::Server {
        code: tonic::Code::Internal,
        message: format!("malformed server answer: {what}"),
    }
}

/// Puts `key` with `value` on `lease` unless it exists, and in the same txn
/// reads the holder under `prefix`. Returns our key's create revision, the
/// value our key had (None when just created) and the holder.
async fn enqueue(
    client: &Client,
    prefix: &[u8],
    key: &[u8],
    value: Vec<u8>,
    lease: i64,
) -> Result<Enqueued, Error> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(key, 0)],
            success: vec![op_put(key, value, lease), op_range(first_created(prefix))],
            failure: vec![op_get(key), op_range(first_created(prefix))],
        })
        .await?;
    let (rev, existing) = if resp.succeeded {
        (header_revision(&resp), None)
    } else {
        // The compare just found the key, and a txn is atomic: only a
        // broken server answers without it.
        let kv = first_kv(&resp, 0).ok_or_else(|| malformed("own key missing"))?;
        (kv.create_revision, Some(kv.value.clone()))
    };
    let holder_rev = first_kv(&resp, 1).map(|kv| kv.create_revision);
    Ok(Enqueued {
        rev,
        at: header_revision(&resp),
        existing,
        first: holder_rev.is_none_or(|h| h == rev),
    })
}

struct Enqueued {
    /// Our key's create revision.
    rev: i64,
    /// The revision the txn was answered at.
    at: i64,
    existing: Option<Vec<u8>>,
    /// Our key is the oldest under the prefix.
    first: bool,
}

/// Deletes `key` only if it is still the one created at `rev`; whether it
/// was, and whether it was then the oldest under `prefix`.
async fn delete_own(
    client: &Client,
    prefix: &[u8],
    key: &[u8],
    rev: i64,
) -> Result<(bool, bool), Error> {
    let resp = client
        .txn(TxnRequest {
            compare: vec![create_revision_is(key, rev)],
            // Read before deleting: ops in a txn see the earlier ones.
            success: vec![op_range(first_created(prefix)), op_delete(key)],
            failure: vec![],
        })
        .await?;
    let first = resp.succeeded && first_kv(&resp, 0).is_some_and(|kv| kv.create_revision == rev);
    Ok((resp.succeeded, first))
}

/// Waits until `queued` is first in line under `prefix`: etcd's
/// `waitDeletes`, which watches only the last key created before ours
/// until it is deleted, and repeats. Our create revision then, or None
/// when `deadline` passed first. Fails with `SESSION_EXPIRED` when our own
/// key goes meanwhile (its lease expired or was revoked): etcd once
/// answered "acquired" then (etcd #11456).
async fn wait_turn(
    client: &Client,
    prefix: &[u8],
    key: &[u8],
    queued: &Enqueued,
    deadline: Option<Instant>,
) -> Result<Option<i64>, Error> {
    if queued.first {
        return Ok(Some(queued.rev));
    }
    if deadline.is_some_and(|d| d <= Instant::now()) {
        return Ok(None);
    }
    let wait = async {
        // Our key existed at `queued.at`: a later delete cannot be missed.
        let mut own = watch_key(client, key, queued.at + 1).await?;
        loop {
            let resp = client
                .range(last_created_up_to(prefix, queued.rev - 1))
                .await?;
            let Some(ahead) = resp.kvs.first() else {
                return Ok(());
            };
            let from = resp.header.as_ref().map_or(0, |h| h.revision);
            let mut ahead = watch_key(client, &ahead.key, from).await?;
            loop {
                tokio::select! {
                    batch = ahead.next(None) => if has_delete(batch?) { break },
                    batch = own.next(None) => if has_delete(batch?) {
                        return Err(session_expired());
                    },
                }
            }
        }
    };
    let waited = match deadline {
        Some(d) => match tokio::time::timeout_at(d, wait).await {
            Ok(r) => r,
            Err(_) => return Ok(None),
        },
        None => wait.await,
    };
    waited?;
    // The deletes we saw may be older than a loss of our key that the
    // watch has not delivered yet: ask once more.
    match client.get(key).await? {
        Some(kv) if kv.create_revision == queued.rev => Ok(Some(queued.rev)),
        _ => Err(session_expired()),
    }
}

/// Ends an attempt: a key that made it to the front stays; one that timed
/// out or failed is taken back (with our own lease, if it was ours), so it
/// does not stay in line ahead of others.
async fn conclude(
    attempt: Attempt,
    lease: &mut Lease,
    turn: Result<Option<i64>, Error>,
) -> Result<Option<i64>, Error> {
    if let Ok(Some(rev)) = turn {
        attempt.settle();
        return Ok(Some(rev));
    }
    let undone = attempt.undo().await;
    lease.forget_if_revoked();
    // The attempt's own failure says more than a failed clean-up.
    turn?;
    undone.map(|_| None)
}

/// A watch on one key from revision `from`; `from` must be a revision at
/// which the key existed, so its deletion is among the events.
async fn watch_key(client: &Client, key: &[u8], from: i64) -> Result<Watch, Error> {
    client
        .watch(WatchOptions {
            key: key.to_vec(),
            start_revision: from,
            ..Default::default()
        })
        .await
}

fn has_delete(batch: Option<WatchBatch>) -> bool {
    batch.is_some_and(|b| {
        b.events
            .iter()
            .any(|e| e.r#type == mvccpb::event::EventType::Delete as i32)
    })
}

/// The lease a recipe puts its key on: its own (granted on demand, kept
/// alive in the background, revoked when done) or the caller's.
struct Lease {
    client: Client,
    ttl: i64,
    owned: bool,
    id: Option<i64>,
    keep_alive: Option<KeepAlive>,
    /// Set when a cancelled attempt revoked the owned lease from a
    /// background task, which cannot reach `id`.
    revoked: Arc<AtomicBool>,
}

impl Lease {
    fn owned(client: Client, ttl: i64) -> Result<Lease, Error> {
        if ttl <= 0 {
            return Err(Error::InvalidArgument(format!(
                "the ttl must be positive, got {ttl}"
            )));
        }
        Ok(Lease {
            client,
            ttl,
            owned: true,
            id: None,
            keep_alive: None,
            revoked: Arc::new(AtomicBool::new(false)),
        })
    }

    fn borrowed(client: Client, id: i64) -> Result<Lease, Error> {
        if id == 0 {
            return Err(Error::InvalidArgument("lease id 0 is no lease".into()));
        }
        Ok(Lease {
            client,
            ttl: 0,
            owned: false,
            id: Some(id),
            keep_alive: None,
            revoked: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The lease to put under, granting a fresh one when ours is gone.
    async fn ensure(&mut self) -> Result<i64, Error> {
        if !self.owned {
            return self
                .id
                .ok_or_else(|| Error::InvalidArgument("no lease".into()));
        }
        if let Some(id) = self.id {
            if self.usable() {
                return Ok(id);
            }
            self.forget();
        }
        let granted = self.client.lease_grant(self.ttl, 0).await?;
        if !granted.error.is_empty() {
            return Err(Error::Server {
                code: tonic::Code::Unknown,
                message: granted.error,
            });
        }
        self.keep_alive = Some(self.client.keep_alive(granted.id, granted.ttl));
        self.id = Some(granted.id);
        self.revoked = Arc::new(AtomicBool::new(false));
        Ok(granted.id)
    }

    /// Whether our own lease is still being kept alive: one whose
    /// refreshes stopped has expired, or will before it could be used.
    fn usable(&self) -> bool {
        !self.revoked.load(Ordering::Relaxed)
            && self.keep_alive.as_ref().is_some_and(|k| k.status().running)
    }

    fn id(&self) -> Option<i64> {
        self.id
    }

    fn is_owned(&self) -> bool {
        self.owned
    }

    /// Drops our own lease once an undone attempt has revoked it.
    fn forget_if_revoked(&mut self) {
        if self.owned && self.revoked.load(Ordering::Relaxed) {
            self.forget();
        }
    }

    fn forget(&mut self) {
        if let Some(k) = self.keep_alive.take() {
            k.stop();
        }
        self.id = None;
    }

    /// Revokes our own lease (which deletes every key on it); a lease that
    /// is already gone is not an error.
    async fn revoke(&mut self) -> Result<(), Error> {
        if !self.owned {
            return Ok(());
        }
        let Some(id) = self.id else { return Ok(()) };
        self.forget();
        revoke_lease(&self.client, id).await
    }

    /// A guard for an attempt that puts `key`: dropped before `settle`, it
    /// takes the key back from a background task.
    fn attempt(&self, prefix: &[u8], key: &[u8]) -> Attempt {
        let rev = Arc::new(AtomicI64::new(0));
        let plan = Undo {
            client: self.client.clone(),
            prefix: prefix.to_vec(),
            key: key.to_vec(),
            rev: rev.clone(),
            revoke: if self.owned { self.id } else { None },
            revoked: self.revoked.clone(),
        };
        Attempt {
            plan: Some(plan),
            rev,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // A dropped recipe frees what it held at once rather than after
        // the TTL; the caller's lease stays the caller's.
        if let (true, Some(id)) = (self.owned, self.id) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let client = self.client.clone();
                rt.spawn(async move {
                    let _ = client.lease_revoke(id).await;
                });
            }
        }
    }
}

/// An acquire or campaign in progress. If its future is dropped (the
/// caller's own timeout, a cancelled task) the key it may have put would
/// otherwise stay in line, kept alive, and block everyone behind it.
struct Attempt {
    /// None once settled or undone.
    plan: Option<Undo>,
    rev: Arc<AtomicI64>,
}

/// How to take an attempt's key back.
struct Undo {
    client: Client,
    prefix: Vec<u8>,
    key: Vec<u8>,
    /// Our key's create revision once known; 0 before.
    rev: Arc<AtomicI64>,
    /// Our own lease, revoked instead of deleting the key.
    revoke: Option<i64>,
    revoked: Arc<AtomicBool>,
}

impl Attempt {
    fn known(&self, rev: i64) {
        self.rev.store(rev, Ordering::Relaxed);
    }

    /// The attempt ended as planned: nothing to take back.
    fn settle(mut self) {
        self.plan = None;
    }

    /// Takes the key back now.
    async fn undo(mut self) -> Result<(), Error> {
        match self.plan.take() {
            Some(plan) => plan.run().await,
            None => Ok(()),
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let (Some(plan), Ok(rt)) = (self.plan.take(), tokio::runtime::Handle::try_current()) {
            rt.spawn(plan.run());
        }
    }
}

impl Undo {
    async fn run(self) -> Result<(), Error> {
        if let Some(id) = self.revoke {
            // Our own lease carries nothing else: revoking it removes the
            // key whether or not its put was answered.
            self.revoked.store(true, Ordering::Relaxed);
            return revoke_lease(&self.client, id).await;
        }
        let rev = self.rev.load(Ordering::Relaxed);
        if rev > 0 {
            return delete_own(&self.client, &self.prefix, &self.key, rev)
                .await
                .map(|_| ());
        }
        // The put's answer never came: the key, if there, is ours, since
        // it is named after our lease.
        let del = DeleteRangeRequest {
            key: self.key,
            ..Default::default()
        };
        self.client.delete(del).await.map(|_| ())
    }
}

/// Revokes a lease; one already gone is not an error.
async fn revoke_lease(client: &Client, id: i64) -> Result<(), Error> {
    match client.lease_revoke(id).await {
        Ok(_) | Err(Error::LeaseNotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
