//! A work queue on plain etcd keys: ordered (higher priority first, then
//! first in, first out), at-least-once, with delayed jobs, a visibility
//! timeout and a dead-letter queue.
//!
//! Keys under `NAME/` (hex fields are 16 lowercase digits):
//!
//! - `ready/PRIO/SEQ/ID` = payload: a job that can be claimed. `PRIO` is
//!   2^63 - 1 - priority (modulo 2^64), so higher priorities sort first;
//!   `SEQ` is when it became ready, in microseconds since the Unix epoch.
//!   A claimed job keeps this key until it is acknowledged.
//! - `delayed/DUE/PRIO/ID` = payload: a job that becomes ready at `DUE`
//!   (microseconds since the epoch); the first claimer to see it due moves
//!   it to `ready/PRIO/DUE/ID`.
//! - `claimed/ID` = the job's `ready/` key, on a lease with the visibility
//!   timeout as TTL. When the lease ends (a worker killed, or one that
//!   took too long) the key goes and the job is claimable again: nobody
//!   has to notice the death.
//! - `attempts/ID`: its version is how many times the job was delivered.
//! - `dead/ID/PRIO` = payload: a job delivered `max_attempts` times and
//!   not acknowledged.
//!
//! A claim is one txn that puts `claimed/ID` only if it is absent, the job
//! key is unchanged and the attempts are below the maximum, so exactly one
//! worker gets each delivery. A claimer with nothing to claim waits on a
//! watch of the queue and a timer for the earliest delayed job, never by
//! polling.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::{
    create_revision_is, first_kv, header_revision, op_delete, op_get, op_put, op_range,
    revoke_lease,
};
use crate::pb::{compare, Compare, RangeRequest, TxnRequest, TxnResponse};
use crate::{mvccpb, prefix_end, Client, Error, Watch, WatchOptions};

/// Start of the message of a failed ack, release or extend: the claim had
/// run out and another worker claimed the job, or it was finished.
pub const JOB_LOST: &str = "queue: job lost";
/// Deliveries of a job before it goes to the dead-letter queue.
pub const DEFAULT_MAX_ATTEMPTS: i64 = 5;
/// etcd's default request limit (`--max-request-bytes`), 1.5 MiB.
pub const MAX_REQUEST: usize = 1_572_864;
/// The largest payload: etcd's request limit less 2 KiB for the keys of the
/// txn that carries it (moving a job to the dead letters names five).
pub const MAX_PAYLOAD: usize = MAX_REQUEST - 2048;
/// The longest queue name, so that those keys fit in the 2 KiB.
pub const MAX_NAME: usize = 128;

/// The parts of a queue's key layout, right under `NAME/`.
const SUBKEYS: [&[u8]; 5] = [b"ready", b"delayed", b"claimed", b"attempts", b"dead"];
/// The longest delay or visibility: a year.
pub const MAX_SECONDS: i64 = 365 * 86_400;

/// Ready keys read per page when looking for unclaimed jobs.
const PAGE: i64 = 64;
/// Unclaimed jobs a claimer tries in one round before it looks again.
const CANDIDATES: usize = 16;
/// Due delayed jobs moved to ready per request.
const PROMOTE: i64 = 16;
/// Delayed keys read to find the earliest due: a key another client wrote
/// outside the layout must not hide the jobs behind it.
const DUE_PEEK: i64 = 8;

#[derive(Clone)]
pub struct Queue {
    client: Client,
    prefix: Vec<u8>,
    max_attempts: i64,
}

/// A claimed job. Its claim lasts until acknowledged, released, or until
/// the visibility timeout runs out.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub payload: Vec<u8>,
    /// Deliveries so far, this one included.
    pub attempts: i64,
    pub priority: i64,
    /// The job's `ready/` key.
    pub key: Vec<u8>,
    /// The job key's mod revision: it does not change while it waits.
    mod_rev: i64,
    /// `claimed/ID`'s create revision: this claim and no later one.
    claim_rev: i64,
    lease: i64,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Claimed,
    Acked,
    Released,
    Lost,
}

/// Where a released job went.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Released {
    Ready,
    Delayed,
    /// Its attempts were used up: into the dead-letter queue.
    Dead,
}

/// A job in the dead-letter queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadJob {
    pub id: String,
    pub payload: Vec<u8>,
    pub priority: i64,
}

/// How many jobs are where.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Claimable now.
    pub ready: i64,
    /// Claimed, not acknowledged yet.
    pub claimed: i64,
    /// Waiting for their time.
    pub delayed: i64,
    pub dead: i64,
}

/// An unclaimed job found by a scan.
#[derive(Debug, Clone)]
struct Candidate {
    key: Vec<u8>,
    id: String,
    priority: i64,
    mod_rev: i64,
}

struct Scan {
    revision: i64,
    candidates: Vec<Candidate>,
    /// When the earliest delayed job is due.
    next_due: Option<u64>,
}

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn lost(id: &str) -> Error {
    Error::Server {
        code: tonic::Code::FailedPrecondition,
        message: format!(
            "{JOB_LOST}: job {id} was claimed again or finished meanwhile (its visibility timeout ran out)"
        ),
    }
}

fn hex16(v: u64) -> String {
    format!("{v:016x}")
}

fn parse_hex16(s: &str) -> Option<u64> {
    if s.len() != 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// `PRIO`: 2^63 - 1 - priority modulo 2^64, so that higher priorities sort
/// first and every i64 has a code.
fn prio_code(priority: i64) -> u64 {
    (i64::MAX as u64).wrapping_sub(priority as u64)
}

fn prio_of(code: u64) -> i64 {
    (i64::MAX as u64).wrapping_sub(code) as i64
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Now, in microseconds, but always after the last value given in this
/// process, so one producer's jobs keep their order.
fn next_seq() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_micros();
    let prev = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(prev + 1)
}

/// A new job id: when it was made (16 hex digits of microseconds) and 8
/// random ones, so ids sort roughly by push time.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seq = next_seq();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u64(seq);
    format!("{}{:08x}", hex16(seq), h.finish() as u32)
}

fn mod_revision_is(key: &[u8], rev: i64) -> Compare {
    compare_on(
        key,
        compare::CompareResult::Equal,
        compare::TargetUnion::ModRevision(rev),
    )
}

fn version_below(key: &[u8], n: i64) -> Compare {
    compare_on(
        key,
        compare::CompareResult::Less,
        compare::TargetUnion::Version(n),
    )
}

fn compare_on(key: &[u8], result: compare::CompareResult, what: compare::TargetUnion) -> Compare {
    let target = match what {
        compare::TargetUnion::ModRevision(_) => compare::CompareTarget::Mod,
        compare::TargetUnion::Version(_) => compare::CompareTarget::Version,
        compare::TargetUnion::CreateRevision(_) => compare::CompareTarget::Create,
        compare::TargetUnion::Value(_) => compare::CompareTarget::Value,
        compare::TargetUnion::Lease(_) => compare::CompareTarget::Lease,
    };
    Compare {
        key: key.to_vec(),
        target: target as i32,
        result: result as i32,
        target_union: Some(what),
        ..Default::default()
    }
}

fn keys_only(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        keys_only: true,
        ..Default::default()
    }
}

fn under(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        ..Default::default()
    }
}

fn count(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        count_only: true,
        ..under(prefix)
    }
}

fn count_at(resp: &TxnResponse, i: usize) -> i64 {
    super::range_at(resp, i).map_or(0, |r| r.count)
}

/// A delay given in seconds, checked: not negative, at most a year.
pub fn job_delay(s: f64) -> Result<Duration, Error> {
    if s.is_finite() && (0.0..=MAX_SECONDS as f64).contains(&s) {
        return Ok(Duration::from_secs_f64(s));
    }
    Err(invalid(format!(
        "the delay must be a number of seconds in [0, {MAX_SECONDS}], {s} given"
    )))
}

fn check_ttl(what: &str, s: i64) -> Result<(), Error> {
    if (1..=MAX_SECONDS).contains(&s) {
        return Ok(());
    }
    Err(invalid(format!(
        "{what} must be a whole number of seconds in [1, {MAX_SECONDS}], {s} given"
    )))
}

fn check_payload(payload: &[u8]) -> Result<(), Error> {
    if payload.len() > MAX_PAYLOAD {
        return Err(invalid(format!(
            "the payload has {} bytes, more than the {MAX_PAYLOAD} that fit in one etcd request (1.5 MiB less 2 KiB for the keys)",
            payload.len()
        )));
    }
    Ok(())
}

impl Queue {
    /// The queue `name`, whose jobs go to the dead-letter queue after
    /// `max_attempts` deliveries without an acknowledgement.
    pub fn new(client: Client, name: impl AsRef<[u8]>, max_attempts: i64) -> Result<Queue, Error> {
        let name = name.as_ref();
        if name.is_empty() {
            return Err(invalid("the queue name must not be empty".into()));
        }
        if name.len() > MAX_NAME {
            return Err(invalid(format!(
                "the queue name has {} bytes, more than {MAX_NAME}",
                name.len()
            )));
        }
        // A queue named `a/ready` would keep its keys among queue `a`'s
        // ready jobs: counted by `a`'s size(), claimable by neither.
        if let Some(part) = name
            .split(|b| *b == b'/')
            .skip(1)
            .find(|part| SUBKEYS.contains(part))
        {
            return Err(invalid(format!(
                "the queue name must not have \"{}\" after a '/' (the queue before it keeps its jobs there), {:?} given",
                String::from_utf8_lossy(part),
                String::from_utf8_lossy(name)
            )));
        }
        if max_attempts < 1 {
            return Err(invalid(format!(
                "max_attempts must be at least 1, {max_attempts} given"
            )));
        }
        let mut prefix = name.to_vec();
        prefix.push(b'/');
        Ok(Queue {
            client,
            prefix,
            max_attempts,
        })
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    pub fn max_attempts(&self) -> i64 {
        self.max_attempts
    }

    fn sub(&self, part: &str) -> Vec<u8> {
        let mut k = self.prefix.clone();
        k.extend_from_slice(part.as_bytes());
        k
    }

    fn ready_key(&self, priority: i64, seq: u64, id: &str) -> Vec<u8> {
        self.sub(&format!(
            "ready/{}/{}/{id}",
            hex16(prio_code(priority)),
            hex16(seq)
        ))
    }

    fn delayed_key(&self, due: u64, priority: i64, id: &str) -> Vec<u8> {
        self.sub(&format!(
            "delayed/{}/{}/{id}",
            hex16(due),
            hex16(prio_code(priority))
        ))
    }

    fn claimed_key(&self, id: &str) -> Vec<u8> {
        self.sub(&format!("claimed/{id}"))
    }

    fn attempts_key(&self, id: &str) -> Vec<u8> {
        self.sub(&format!("attempts/{id}"))
    }

    fn dead_key(&self, id: &str, priority: i64) -> Vec<u8> {
        self.sub(&format!("dead/{id}/{}", hex16(prio_code(priority))))
    }

    /// The fields after `part/` of a key of this queue, split at `/`.
    fn fields<'k>(&self, part: &str, key: &'k [u8]) -> Option<Vec<&'k str>> {
        let rest = key.strip_prefix(self.prefix.as_slice())?;
        let rest = rest.strip_prefix(part.as_bytes())?.strip_prefix(b"/")?;
        let fields: Vec<&str> = std::str::from_utf8(rest).ok()?.split('/').collect();
        fields.iter().all(|f| !f.is_empty()).then_some(fields)
    }

    /// (priority, id) of a `ready/PRIO/SEQ/ID` key.
    fn parse_ready(&self, key: &[u8]) -> Option<(i64, String)> {
        match self.fields("ready", key)?.as_slice() {
            [prio, seq, id] => {
                parse_hex16(seq)?;
                Some((prio_of(parse_hex16(prio)?), id.to_string()))
            }
            _ => None,
        }
    }

    /// (due, priority, id) of a `delayed/DUE/PRIO/ID` key.
    fn parse_delayed(&self, key: &[u8]) -> Option<(u64, i64, String)> {
        match self.fields("delayed", key)?.as_slice() {
            [due, prio, id] => Some((
                parse_hex16(due)?,
                prio_of(parse_hex16(prio)?),
                id.to_string(),
            )),
            _ => None,
        }
    }

    /// (id, priority) of a `dead/ID/PRIO` key.
    fn parse_dead(&self, key: &[u8]) -> Option<(String, i64)> {
        match self.fields("dead", key)?.as_slice() {
            [id, prio] => Some((id.to_string(), prio_of(parse_hex16(prio)?))),
            _ => None,
        }
    }

    /// Adds a job and returns its id. With a `delay`, it becomes claimable
    /// only once that time has passed (on the clocks of the machines
    /// involved).
    pub async fn push(
        &self,
        payload: &[u8],
        priority: i64,
        delay: Duration,
    ) -> Result<String, Error> {
        check_payload(payload)?;
        if delay > Duration::from_secs(MAX_SECONDS as u64) {
            return Err(invalid(format!(
                "the delay must be at most {MAX_SECONDS} seconds"
            )));
        }
        let id = new_id();
        let key = if delay.is_zero() {
            self.ready_key(priority, next_seq(), &id)
        } else {
            self.delayed_key(now_micros() + delay.as_micros() as u64, priority, &id)
        };
        self.client
            .put(crate::pb::PutRequest {
                key,
                value: payload.to_vec(),
                ..Default::default()
            })
            .await?;
        Ok(id)
    }

    /// Waits up to `timeout` (without limit when None) for a job and claims
    /// it for `visibility` seconds: unless acknowledged, released or
    /// extended in that time, it is handed to another worker. None when
    /// the time ran out.
    pub async fn claim(
        &self,
        timeout: Option<Duration>,
        visibility: i64,
    ) -> Result<Option<Job>, Error> {
        check_ttl("the visibility", visibility)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut watch: Option<Watch> = None;
        loop {
            let scan = self.scan().await?;
            if scan.next_due.is_some_and(|due| due <= now_micros()) {
                self.promote_due().await?;
                continue;
            }
            if !scan.candidates.is_empty() {
                if let Some(job) = self.try_claim(scan.candidates, visibility).await? {
                    return Ok(Some(job));
                }
                // Others took them, or they went dead: look again.
                continue;
            }
            if deadline.is_some_and(|d| d <= Instant::now()) {
                return Ok(None);
            }
            if watch.is_none() {
                let opts = WatchOptions {
                    key: self.prefix.clone(),
                    range_end: prefix_end(&self.prefix),
                    start_revision: scan.revision + 1,
                    ..Default::default()
                };
                watch = Some(self.client.watch(opts).await?);
            }
            let Some(w) = watch.as_mut() else {
                continue;
            };
            let due = scan.next_due.map(|due| {
                let wait = due.saturating_sub(now_micros());
                Instant::now() + Duration::from_micros(wait)
            });
            let wake = match (deadline, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match self.wait_for_change(w, wake).await {
                Ok(()) => {}
                // The watch came back from a cut after the history it
                // needed was compacted: the next scan reads the queue as
                // it is now, and a new watch follows from there.
                Err(Error::Compacted { .. }) => watch = None,
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until the watch brings a change that may make a job
    /// claimable (a new ready or delayed job, a claim that ended), or
    /// until `wake`.
    async fn wait_for_change(&self, w: &mut Watch, wake: Option<Instant>) -> Result<(), Error> {
        loop {
            let left = wake.map(|t| t.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(());
            }
            let Some(batch) = w.next(left).await? else {
                return Ok(());
            };
            let mut events = batch.events;
            while let Some(more) = w.try_next() {
                events.extend(more.events);
            }
            if events.iter().any(|e| self.wakes(e)) {
                return Ok(());
            }
        }
    }

    fn wakes(&self, e: &mvccpb::Event) -> bool {
        let Some(kv) = &e.kv else { return false };
        let Some(rest) = kv.key.strip_prefix(self.prefix.as_slice()) else {
            return false;
        };
        if e.r#type == mvccpb::event::EventType::Delete as i32 {
            rest.starts_with(b"claimed/")
        } else {
            rest.starts_with(b"ready/") || rest.starts_with(b"delayed/")
        }
    }

    /// Reads, at one revision, the first unclaimed ready jobs in order and
    /// when the earliest delayed job is due.
    async fn scan(&self) -> Result<Scan, Error> {
        let ready = self.sub("ready/");
        let claimed = self.sub("claimed/");
        let delayed = self.sub("delayed/");
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![],
                success: vec![
                    op_range(RangeRequest {
                        keys_only: true,
                        limit: PAGE,
                        ..under(&ready)
                    }),
                    op_range(RangeRequest {
                        keys_only: true,
                        ..under(&claimed)
                    }),
                    op_range(RangeRequest {
                        keys_only: true,
                        limit: DUE_PEEK,
                        ..under(&delayed)
                    }),
                ],
                failure: vec![],
            })
            .await?;
        let revision = header_revision(&resp);
        let taken: HashSet<&[u8]> = super::range_at(&resp, 1)
            .map(|r| {
                r.kvs
                    .iter()
                    .filter_map(|kv| kv.key.strip_prefix(claimed.as_slice()))
                    .collect()
            })
            .unwrap_or_default();
        let next_due = super::range_at(&resp, 2).and_then(|r| {
            r.kvs
                .iter()
                .find_map(|kv| self.parse_delayed(&kv.key))
                .map(|(due, _, _)| due)
        });
        let mut candidates = Vec::new();
        let mut page = super::range_at(&resp, 0).cloned().unwrap_or_default();
        loop {
            for kv in &page.kvs {
                let Some((priority, id)) = self.parse_ready(&kv.key) else {
                    continue;
                };
                if taken.contains(id.as_bytes()) {
                    continue;
                }
                candidates.push(Candidate {
                    key: kv.key.clone(),
                    id,
                    priority,
                    mod_rev: kv.mod_revision,
                });
            }
            // Claimed jobs stay first in line until acknowledged: with
            // many in flight, read on past them.
            let Some(last) = page.kvs.last() else { break };
            if !candidates.is_empty() || !page.more {
                break;
            }
            let mut from = last.key.clone();
            from.push(0);
            page = self
                .client
                .range(RangeRequest {
                    key: from,
                    range_end: prefix_end(&ready),
                    keys_only: true,
                    limit: PAGE,
                    ..Default::default()
                })
                .await?;
        }
        candidates.truncate(CANDIDATES);
        Ok(Scan {
            revision,
            candidates,
            next_due,
        })
    }

    /// Moves the delayed jobs that are due to `ready/`, each in a txn that
    /// only one claimer wins.
    async fn promote_due(&self) -> Result<(), Error> {
        let end = self.sub(&format!("delayed/{}", hex16(now_micros() + 1)));
        let mut from = self.sub("delayed/");
        loop {
            let resp = self
                .client
                .range(RangeRequest {
                    key: from,
                    range_end: end.clone(),
                    limit: PROMOTE,
                    ..Default::default()
                })
                .await?;
            let mut tried = false;
            for kv in &resp.kvs {
                let Some((due, priority, id)) = self.parse_delayed(&kv.key) else {
                    continue;
                };
                tried = true;
                // It enters the line at its due time, not at this late move.
                let ready = self.ready_key(priority, due, &id);
                self.client
                    .txn(TxnRequest {
                        compare: vec![mod_revision_is(&kv.key, kv.mod_revision)],
                        success: vec![op_delete(&kv.key), op_put(&ready, kv.value.clone(), 0)],
                        failure: vec![],
                    })
                    .await?;
            }
            // Keys outside the layout are left alone, but must not hide
            // the due jobs behind them.
            let Some(last) = resp.kvs.last() else {
                return Ok(());
            };
            if tried || !resp.more {
                return Ok(());
            }
            from = last.key.clone();
            from.push(0);
        }
    }

    /// Tries to claim one of `candidates`, the first one first; after a
    /// lost race, the rest from a random place, so that claimers who saw
    /// the same jobs spread out instead of all losing again.
    async fn try_claim(
        &self,
        mut candidates: Vec<Candidate>,
        visibility: i64,
    ) -> Result<Option<Job>, Error> {
        let granted = self.client.lease_grant(visibility, 0).await?;
        if !granted.error.is_empty() {
            return Err(Error::Server {
                code: tonic::Code::Unknown,
                message: granted.error,
            });
        }
        let lease = granted.id;
        let mut i = 0;
        while i < candidates.len() {
            let cand = candidates[i].clone();
            let claimed = match self.claim_one(&cand, lease).await {
                Ok(c) => c,
                Err(e) => {
                    self.forget_lease(lease);
                    return Err(e);
                }
            };
            if let Some(job) = claimed {
                return Ok(Some(job));
            }
            if i == 0 && candidates.len() > 2 {
                let n = candidates.len() - 1;
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(now_micros());
                candidates[1..].rotate_left(h.finish() as usize % n);
            }
            i += 1;
        }
        self.forget_lease(lease);
        Ok(None)
    }

    /// Revokes a lease in the background: nothing waits for it, and one
    /// that cannot be revoked now expires by its TTL.
    fn forget_lease(&self, lease: i64) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let client = self.client.clone();
            rt.spawn(async move {
                let _ = revoke_lease(&client, lease).await;
            });
        }
    }

    /// One claim txn: the job is ours if its key is unchanged, nobody
    /// claims it and it has attempts left. A job out of attempts goes to
    /// the dead-letter queue.
    async fn claim_one(&self, cand: &Candidate, lease: i64) -> Result<Option<Job>, Error> {
        let claimed = self.claimed_key(&cand.id);
        let attempts = self.attempts_key(&cand.id);
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![
                    mod_revision_is(&cand.key, cand.mod_rev),
                    create_revision_is(&claimed, 0),
                    version_below(&attempts, self.max_attempts),
                ],
                success: vec![
                    op_put(&claimed, cand.key.clone(), lease),
                    op_put(&attempts, Vec::new(), 0),
                    op_get(&cand.key),
                    op_get(&claimed),
                    op_get(&attempts),
                ],
                failure: vec![
                    op_range(keys_only(&cand.key)),
                    op_range(keys_only(&claimed)),
                    op_range(keys_only(&attempts)),
                ],
            })
            .await?;
        if resp.succeeded {
            let (Some(job), Some(claim), Some(tries)) =
                (first_kv(&resp, 2), first_kv(&resp, 3), first_kv(&resp, 4))
            else {
                return Err(super::malformed("claimed job missing"));
            };
            return Ok(Some(Job {
                id: cand.id.clone(),
                payload: job.value.clone(),
                attempts: tries.version,
                priority: cand.priority,
                key: cand.key.clone(),
                mod_rev: cand.mod_rev,
                claim_rev: claim.create_revision,
                lease,
                state: State::Claimed,
            }));
        }
        let unchanged = first_kv(&resp, 0).is_some_and(|kv| kv.mod_revision == cand.mod_rev);
        let free = first_kv(&resp, 1).is_none();
        let used_up = first_kv(&resp, 2).is_some_and(|kv| kv.version >= self.max_attempts);
        if unchanged && free && used_up {
            self.bury_unclaimed(cand).await?;
        }
        Ok(None)
    }

    /// Moves a job whose last delivery ran out unacknowledged to the
    /// dead-letter queue.
    async fn bury_unclaimed(&self, cand: &Candidate) -> Result<(), Error> {
        let Some(kv) = self.client.get(cand.key.clone()).await? else {
            return Ok(());
        };
        if kv.mod_revision != cand.mod_rev {
            return Ok(());
        }
        self.client
            .txn(TxnRequest {
                compare: vec![
                    mod_revision_is(&cand.key, cand.mod_rev),
                    create_revision_is(&self.claimed_key(&cand.id), 0),
                ],
                success: vec![
                    op_delete(&cand.key),
                    op_delete(&self.attempts_key(&cand.id)),
                    op_put(&self.dead_key(&cand.id, cand.priority), kv.value, 0),
                ],
                failure: vec![],
            })
            .await?;
        Ok(())
    }

    fn check_claimed(job: &Job) -> Result<(), Error> {
        let done = match job.state {
            State::Claimed => return Ok(()),
            State::Acked => "acknowledged",
            State::Released => "released",
            State::Lost => "lost (see the earlier error)",
        };
        Err(Error::Server {
            code: tonic::Code::FailedPrecondition,
            message: format!("queue: job {} was already {done}", job.id),
        })
    }

    /// The txn compare that holds only while this claim of `job` does.
    fn mine(&self, job: &Job) -> Compare {
        create_revision_is(&self.claimed_key(&job.id), job.claim_rev)
    }

    /// Finishes `job`: it is removed for good. A claim that ran out still
    /// counts if nobody claimed the job since; otherwise `JOB_LOST`.
    pub async fn ack(&self, job: &mut Job) -> Result<(), Error> {
        Self::check_claimed(job)?;
        let attempts = self.attempts_key(&job.id);
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![self.mine(job)],
                success: vec![
                    op_delete(&job.key),
                    op_delete(&self.claimed_key(&job.id)),
                    op_delete(&attempts),
                ],
                failure: vec![],
            })
            .await?;
        let done = resp.succeeded || {
            let late = self
                .client
                .txn(TxnRequest {
                    compare: vec![
                        create_revision_is(&self.claimed_key(&job.id), 0),
                        mod_revision_is(&job.key, job.mod_rev),
                    ],
                    success: vec![op_delete(&job.key), op_delete(&attempts)],
                    failure: vec![],
                })
                .await?;
            late.succeeded
        };
        self.forget_lease(job.lease);
        if !done {
            job.state = State::Lost;
            return Err(lost(&job.id));
        }
        job.state = State::Acked;
        Ok(())
    }

    /// Gives `job` back: claimable again at once (in its old place), or
    /// after `delay`; into the dead-letter queue when its attempts are
    /// used up.
    pub async fn release(&self, job: &mut Job, delay: Duration) -> Result<Released, Error> {
        Self::check_claimed(job)?;
        if delay > Duration::from_secs(MAX_SECONDS as u64) {
            return Err(invalid(format!(
                "the delay must be at most {MAX_SECONDS} seconds"
            )));
        }
        let claimed = self.claimed_key(&job.id);
        let (outcome, success) = if job.attempts >= self.max_attempts {
            let ops = vec![
                op_delete(&job.key),
                op_delete(&claimed),
                op_delete(&self.attempts_key(&job.id)),
                op_put(
                    &self.dead_key(&job.id, job.priority),
                    job.payload.clone(),
                    0,
                ),
            ];
            (Released::Dead, ops)
        } else if delay.is_zero() {
            (Released::Ready, vec![op_delete(&claimed)])
        } else {
            let due = now_micros() + delay.as_micros() as u64;
            let ops = vec![
                op_delete(&job.key),
                op_delete(&claimed),
                op_put(
                    &self.delayed_key(due, job.priority, &job.id),
                    job.payload.clone(),
                    0,
                ),
            ];
            (Released::Delayed, ops)
        };
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![self.mine(job)],
                success,
                failure: vec![],
            })
            .await?;
        self.forget_lease(job.lease);
        if !resp.succeeded {
            job.state = State::Lost;
            return Err(lost(&job.id));
        }
        job.state = State::Released;
        Ok(outcome)
    }

    /// Keeps `job` claimed for `seconds` from now (instead of what was
    /// left of its visibility timeout).
    pub async fn extend(&self, job: &mut Job, seconds: i64) -> Result<(), Error> {
        Self::check_claimed(job)?;
        check_ttl("seconds", seconds)?;
        let granted = self.client.lease_grant(seconds, 0).await?;
        if !granted.error.is_empty() {
            return Err(Error::Server {
                code: tonic::Code::Unknown,
                message: granted.error,
            });
        }
        let claimed = self.claimed_key(&job.id);
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![self.mine(job)],
                success: vec![op_put(&claimed, job.key.clone(), granted.id)],
                failure: vec![],
            })
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.forget_lease(granted.id);
                return Err(e);
            }
        };
        if !resp.succeeded {
            self.forget_lease(granted.id);
            self.forget_lease(job.lease);
            job.state = State::Lost;
            return Err(lost(&job.id));
        }
        self.forget_lease(job.lease);
        job.lease = granted.id;
        Ok(())
    }

    /// Jobs not finished and not dead: ready (claimed or not) and delayed.
    pub async fn size(&self) -> Result<i64, Error> {
        let s = self.stats().await?;
        Ok(s.ready + s.claimed + s.delayed)
    }

    /// How many jobs are ready, claimed, delayed and dead, at one revision.
    pub async fn stats(&self) -> Result<Stats, Error> {
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![],
                success: vec![
                    op_range(count(&self.sub("ready/"))),
                    op_range(count(&self.sub("claimed/"))),
                    op_range(count(&self.sub("delayed/"))),
                    op_range(count(&self.sub("dead/"))),
                ],
                failure: vec![],
            })
            .await?;
        let claimed = count_at(&resp, 1);
        Ok(Stats {
            ready: (count_at(&resp, 0) - claimed).max(0),
            claimed,
            delayed: count_at(&resp, 2),
            dead: count_at(&resp, 3),
        })
    }

    /// The dead-letter queue, oldest job first (ids sort by push time), at
    /// most `limit` jobs (0: all).
    pub async fn dead(&self, limit: i64) -> Result<Vec<DeadJob>, Error> {
        if limit < 0 {
            return Err(invalid(format!(
                "limit must not be negative, {limit} given"
            )));
        }
        let resp = self
            .client
            .range(RangeRequest {
                limit,
                ..under(&self.sub("dead/"))
            })
            .await?;
        Ok(resp
            .kvs
            .into_iter()
            .filter_map(|kv| {
                let (id, priority) = self.parse_dead(&kv.key)?;
                Some(DeadJob {
                    id,
                    payload: kv.value,
                    priority,
                })
            })
            .collect())
    }

    /// Puts a dead job back in line, at the end of its priority, with its
    /// attempts starting again from 0. False when there is no such dead job.
    pub async fn requeue(&self, id: &str) -> Result<bool, Error> {
        if id.is_empty() || id.contains('/') {
            return Err(invalid(format!("{id:?} is not a job id")));
        }
        let resp = self
            .client
            .range(RangeRequest {
                limit: 1,
                ..under(&self.sub(&format!("dead/{id}/")))
            })
            .await?;
        let Some(kv) = resp.kvs.into_iter().next() else {
            return Ok(false);
        };
        let Some((_, priority)) = self.parse_dead(&kv.key) else {
            return Ok(false);
        };
        let resp = self
            .client
            .txn(TxnRequest {
                compare: vec![mod_revision_is(&kv.key, kv.mod_revision)],
                success: vec![
                    op_delete(&kv.key),
                    op_delete(&self.attempts_key(id)),
                    op_put(&self.ready_key(priority, next_seq(), id), kv.value, 0),
                ],
                failure: vec![],
            })
            .await?;
        Ok(resp.succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_codes_sort_higher_first_and_round_trip() {
        let ps = [i64::MAX, 100, 1, 0, -1, -100, i64::MIN];
        let codes: Vec<String> = ps.iter().map(|&p| hex16(prio_code(p))).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        assert_eq!(codes, sorted);
        for p in ps {
            assert_eq!(prio_of(prio_code(p)), p);
        }
        assert_eq!(hex16(prio_code(0)), "7fffffffffffffff");
    }

    #[test]
    fn ids_are_unique_and_sequences_increase() {
        let mut seen = HashSet::new();
        let mut last = 0;
        for _ in 0..10_000 {
            assert!(seen.insert(new_id()));
            let s = next_seq();
            assert!(s > last);
            last = s;
        }
    }
}
