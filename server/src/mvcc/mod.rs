//! The MVCC store: what the Raft state machine applies to and what reads see.
//!
//! Layout in the `sm` sled tree (one tree, so one `apply_batch` is atomic
//! across everything an applied Raft entry changes):
//! - `r` + main(8 BE) + sub(8 BE) → flag byte (0 put, 1 tombstone) + encoded `KeyValue`
//! - `l` + lease id(8 BE)          → granted TTL (8 BE)
//! - `m` + name                    → metadata (revision, compaction, Raft's applied state)
//!
//! The key index and the lease table live in memory and are rebuilt at start.

mod compactor;
pub mod delivery;
pub mod index;
mod txn;
mod writer;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use prost::Message;
use synod_proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};
use synod_proto::mvccpb::{self, KeyValue};
use synod_proto::synodpb;
use tokio::sync::broadcast;

use crate::error::EtcdError;
pub use index::{KeyIndex, KeyRange, Live, Rev};
pub use txn::WriteTxn;
pub use writer::Records;

const REV_PREFIX: u8 = b'r';
const LEASE_PREFIX: u8 = b'l';
const META_REV: &[u8] = b"mrev";
const META_COMPACT: &[u8] = b"mcompact";
/// Followed by a member id: the attributes that member published.
const META_MEMBER: &[u8] = b"mmember/";
/// Followed by a member id: a member removed from the cluster, which may
/// never come back under that id (etcd's removed-member tombstones).
const META_REMOVED: &[u8] = b"mremoved/";
/// Followed by a member id and an alarm type: an active alarm.
const META_ALARM: &[u8] = b"malarm/";

fn alarm_key(member: u64, alarm: i32) -> Vec<u8> {
    [
        META_ALARM,
        &member.to_be_bytes()[..],
        &alarm.to_be_bytes()[..],
    ]
    .concat()
}

pub fn removed_key(id: u64) -> Vec<u8> {
    [META_REMOVED, &id.to_be_bytes()[..]].concat()
}

/// Raw storage pairs: a snapshot's content.
#[cfg(test)]
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What one applied batch of Raft entries changed, for watchers.
#[derive(Debug)]
pub struct Changes {
    /// Events in revision order, each with the key's previous value.
    pub events: Vec<mvccpb::Event>,
    /// The store revision once the batch was applied.
    pub rev: i64,
    /// Set, with no events, when a snapshot from the leader replaced the
    /// store: what changed since a receiver's last event is then only in
    /// storage, and it catches up from there as after a lag.
    pub restored: bool,
}

#[derive(Debug, Clone)]
pub struct Lease {
    pub ttl: i64,
    pub keys: BTreeSet<Vec<u8>>,
    /// When the leader expires it unless kept alive. Not replicated: a
    /// restarted or newly elected node starts every lease afresh.
    pub deadline: Instant,
}

#[derive(Debug, Default)]
pub struct State {
    pub index: KeyIndex,
    pub rev: i64,
    pub compact_rev: i64,
    pub leases: HashMap<i64, Lease>,
    /// Active alarms: (member id, alarm type).
    pub alarms: BTreeSet<(u64, i32)>,
}

pub struct Store {
    tree: sled::Tree,
    /// Writes applied batches to `tree`; their records stay readable from it
    /// until they are written.
    writer: writer::Writer,
    state: RwLock<State>,
    changes: broadcast::Sender<Arc<Changes>>,
    delivery: Arc<delivery::Delivery>,
    compactor: compactor::Compactor,
    /// Set when an apply failed part way: memory may then be ahead of
    /// disk, so nothing more is served from it until a restart rebuilds it.
    broken: std::sync::atomic::AtomicBool,
    /// Counts up once as a snapshot install begins and once as it ends: odd
    /// while one runs. A read of storage made outside the state lock
    /// (history, a range's records, a previous value) may overlap one,
    /// which empties the tree before refilling it, and then see records
    /// missing; `unrestored` reads again when this moved meanwhile.
    restores: std::sync::atomic::AtomicU64,
}

pub fn rev_key(rev: Rev) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = REV_PREFIX;
    k[1..].copy_from_slice(&rev.to_bytes());
    k
}

fn lease_key(id: i64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = LEASE_PREFIX;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn member_key(id: u64) -> Vec<u8> {
    [META_MEMBER, &id.to_be_bytes()[..]].concat()
}

pub fn encode_record(kv: &KeyValue, tombstone: bool) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + kv.encoded_len());
    buf.push(tombstone as u8);
    kv.encode(&mut buf).expect("Vec grows");
    buf
}

/// The fields of a stored `KeyValue` that opening the store needs; the
/// others (the value above all) are skipped by the decoder, not copied, so a
/// restart does not read every value into memory one by one.
#[derive(Clone, PartialEq, prost::Message)]
struct IndexFields {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(int64, tag = "2")]
    create_revision: i64,
    #[prost(int64, tag = "4")]
    version: i64,
    #[prost(int64, tag = "6")]
    lease: i64,
}

fn decode_index_fields(bytes: &[u8]) -> Result<(IndexFields, bool), EtcdError> {
    let (flag, body) = bytes
        .split_first()
        .ok_or_else(|| EtcdError::Internal("empty revision record".into()))?;
    let kv = IndexFields::decode(body)
        .map_err(|e| EtcdError::Internal(format!("corrupt revision record: {e}")))?;
    Ok((kv, *flag == 1))
}

pub fn decode_record(bytes: &[u8]) -> Result<(KeyValue, bool), EtcdError> {
    let (flag, body) = bytes
        .split_first()
        .ok_or_else(|| EtcdError::Internal("empty revision record".into()))?;
    let kv = KeyValue::decode(body)
        .map_err(|e| EtcdError::Internal(format!("corrupt revision record: {e}")))?;
    Ok((kv, *flag == 1))
}

fn read_i64(tree: &sled::Tree, key: &[u8]) -> Result<Option<i64>, EtcdError> {
    Ok(match tree.get(key)? {
        Some(v) if v.len() == 8 => {
            Some(i64::from_be_bytes(v.as_ref().try_into().expect("8 bytes")))
        }
        _ => None,
    })
}

pub fn lease_deadline(ttl: i64) -> Instant {
    Instant::now() + Duration::from_secs(ttl.max(0) as u64)
}

impl Store {
    /// Opens the store in `tree`, rebuilding the key index and lease table
    /// from the revisions on disk.
    pub fn open(tree: sled::Tree) -> Result<Store, EtcdError> {
        let (st, leftover) = load_state(&tree)?;
        let compactor = compactor::Compactor::start(tree.clone());
        compactor.enqueue(leftover);
        // Small on purpose: a watcher that stops reading pins at most this
        // many batches; one that lags catches up from storage instead.
        let (changes, _) = broadcast::channel(128);
        Ok(Store {
            writer: writer::Writer::start(tree.clone()),
            tree,
            state: RwLock::new(st),
            changes,
            delivery: Default::default(),
            compactor,
            broken: Default::default(),
            restores: Default::default(),
        })
    }

    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn current_rev(&self) -> i64 {
        self.read().rev
    }

    pub fn compact_rev(&self) -> i64 {
        self.read().compact_rev
    }

    /// Waits until the records of every compaction applied so far are
    /// deleted from storage.
    pub async fn compaction_done(&self) {
        self.compactor.done().await
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Changes>> {
        self.changes.subscribe()
    }

    pub fn delivery(&self) -> &Arc<delivery::Delivery> {
        &self.delivery
    }

    /// The store's sled tree, once every applied batch is written to it.
    pub fn tree(&self) -> Result<&sled::Tree, EtcdError> {
        self.settle()?;
        Ok(&self.tree)
    }

    /// Waits until every applied batch is written to sled.
    fn settle(&self) -> Result<(), EtcdError> {
        self.writer.settle();
        self.check()
    }

    fn source(&self) -> Source<'_> {
        Source {
            tree: &self.tree,
            writer: &self.writer,
        }
    }

    /// Applies a run of Raft entries' batches as one atomic storage write,
    /// which the writer thread makes after this returns. `meta` carries
    /// Raft's own bookkeeping (last applied, membership) into the same
    /// write, so a crash never separates data from the index of the entry
    /// that produced it.
    pub fn apply<'b>(
        &self,
        batches: impl IntoIterator<Item = Option<&'b synodpb::Batch>>,
        meta: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Vec<synodpb::BatchResponse>, EtcdError> {
        self.check()?;
        self.apply_inner(batches, meta).map_err(|e| self.broke(e))
    }

    /// Marks the store as no longer matching its disk (see `broken`).
    fn broke(&self, e: EtcdError) -> EtcdError {
        self.broken.store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::error!(error = %e, "storage failed part way; this member serves nothing more until restarted");
        e
    }

    fn check(&self) -> Result<(), EtcdError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) || self.writer.failed() {
            return Err(EtcdError::Internal(
                "storage failed while applying; restart this member".into(),
            ));
        }
        Ok(())
    }

    fn apply_inner<'b>(
        &self,
        batches: impl IntoIterator<Item = Option<&'b synodpb::Batch>>,
        meta: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Vec<synodpb::BatchResponse>, EtcdError> {
        let mut st = self.write();
        let (rev_before, compact_before) = (st.rev, st.compact_rev);
        let mut txn = WriteTxn::new(&mut st, self.source());
        let mut out = Vec::new();
        for batch in batches {
            let mut resp = synodpb::BatchResponse::default();
            for req in batch.map(|b| b.requests.as_slice()).unwrap_or_default() {
                resp.responses.push(txn.apply(req)?);
            }
            out.push(resp);
        }
        let (batch, records, events, compacted) = txn.finish();
        let mut batch = batch;
        for (k, v) in meta {
            batch.insert(k, v);
        }
        // Written only when they change: each sled insert costs, and a
        // lone put's batch would otherwise carry three of bookkeeping.
        if st.rev != rev_before {
            batch.insert(META_REV, &st.rev.to_be_bytes());
        }
        if st.compact_rev != compact_before {
            batch.insert(META_COMPACT, &st.compact_rev.to_be_bytes());
        }
        self.writer.write(batch, records)?;
        let rev = st.rev;
        drop(st);
        if !compacted.is_empty() {
            // Only once the compaction point is stored: a record deleted
            // before would be missed by a restart that replays from an older
            // state.
            self.settle()?;
            self.compactor.enqueue(compacted);
        }
        if !events.is_empty() {
            // No receivers is fine; watchers that lag catch up from storage.
            self.broadcast(Changes {
                events,
                rev,
                restored: false,
            });
        }
        Ok(out)
    }

    fn broadcast(&self, changes: Changes) {
        if self.changes.send(Arc::new(changes)).is_ok() {
            self.delivery.woke();
        }
    }

    /// Reads one revision's record from storage.
    pub fn load(&self, rev: Rev) -> Result<(KeyValue, bool), EtcdError> {
        load(self.source(), None, rev)
    }

    /// A Range outside any write. The lock is held only to pick the
    /// revisions, so a large range does not hold up writes while it loads.
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, EtcdError> {
        self.check()?;
        self.unrestored(|| {
            let (sel, current) = {
                let st = self.read();
                (select(&st, req, st.rev)?, st.rev)
            };
            let kvs = sel.load(self.source(), None).map_err(|e| {
                // Compacted away since the revisions were picked.
                if sel.at < self.compact_rev() {
                    EtcdError::Compacted
                } else {
                    e
                }
            })?;
            Ok(shape(req, kvs, sel.count, current))
        })
    }

    /// Runs `read`, which reads storage outside the state lock, again for
    /// as long as a snapshot install overlapped it: what it read may then
    /// lack records the tree held before and holds again after. Costs two
    /// atomic loads when no install runs, so the read path stays lock-free
    /// here.
    pub fn unrestored<T>(
        &self,
        mut read: impl FnMut() -> Result<T, EtcdError>,
    ) -> Result<T, EtcdError> {
        loop {
            let before = self.restores.load(SeqCst);
            if before % 2 == 1 {
                // An install holds the write lock to its end: wait for it,
                // then look again (another may have begun since).
                drop(self.read());
                continue;
            }
            let out = read();
            // The tree reads above may not pass the check below.
            std::sync::atomic::fence(SeqCst);
            if self.restores.load(SeqCst) == before {
                return out;
            }
        }
    }

    /// Every record with a revision in `[from, to]`, in order: history for
    /// watchers catching up.
    pub fn history(&self, from: i64, to: i64) -> Result<Vec<(KeyValue, bool)>, EtcdError> {
        Ok(self
            .history_revs(from, to)?
            .into_iter()
            .map(|(_, kv, t)| (kv, t))
            .collect())
    }

    /// Like `history`, with each record's full revision.
    pub fn history_revs(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(Rev, KeyValue, bool)>, EtcdError> {
        self.unrestored(|| {
            let mut out = Vec::new();
            self.each_revision(from, to, |rev, kv, tombstone| {
                out.push((rev, kv, tombstone))
            })?;
            Ok(out)
        })
    }

    /// Visits every record with a revision in `[from, to]`, in order,
    /// straight from storage (nothing is collected). A snapshot install
    /// during the visit can hide records from it: see `unrestored`.
    pub fn each_revision(
        &self,
        from: i64,
        to: i64,
        mut f: impl FnMut(Rev, KeyValue, bool),
    ) -> Result<(), EtcdError> {
        self.check()?;
        let start = rev_key(Rev::new(from, 0));
        let end = rev_key(Rev::new(to.saturating_add(1), 0));
        for item in self.tree()?.range(start..end) {
            let (k, v) = item?;
            let rev = Rev::from_bytes(&k[1..])
                .ok_or_else(|| EtcdError::Internal("corrupt revision key".into()))?;
            let (kv, tombstone) = decode_record(&v)?;
            f(rev, kv, tombstone);
        }
        Ok(())
    }

    /// Keeps the background compaction from deleting records while the guard
    /// lives, for scans that must see one consistent history.
    pub fn hold_compaction(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.compactor.hold()
    }

    /// The value `key` had just before revision `main`, if it still can be read.
    pub fn prev_of(&self, key: &[u8], main: i64) -> Option<KeyValue> {
        self.unrestored(|| {
            let rev = self.read().index.get(key, main - 1);
            Ok(rev.and_then(|rev| self.load(rev).ok()).map(|(kv, _)| kv))
        })
        .ok()
        .flatten()
    }

    /// The lease's granted TTL after a keep-alive, or None if it is gone.
    pub fn keep_alive(&self, id: i64) -> Option<i64> {
        let mut st = self.write();
        let lease = st.leases.get_mut(&id)?;
        // Past its deadline the revoke is on its way: renewing now would let
        // a client believe it still holds what is about to be deleted.
        if lease.deadline <= Instant::now() {
            return None;
        }
        lease.deadline = lease_deadline(lease.ttl);
        Some(lease.ttl)
    }

    /// A lease's granted TTL, whole seconds left (truncated, as etcd
    /// reports them) and attached keys.
    pub fn lease_info(&self, id: i64) -> Option<(i64, i64, Vec<Vec<u8>>)> {
        let st = self.read();
        let l = st.leases.get(&id)?;
        let left = l
            .deadline
            .saturating_duration_since(Instant::now())
            .as_secs() as i64;
        Some((l.ttl, left, l.keys.iter().cloned().collect()))
    }

    /// Lease ids, soonest expiry first, as etcd lists them.
    pub fn lease_ids(&self) -> Vec<i64> {
        let st = self.read();
        let mut ids: Vec<(Instant, i64)> =
            st.leases.iter().map(|(id, l)| (l.deadline, *id)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Leases past their deadline, for the leader to revoke through Raft.
    pub fn expired_leases(&self, max: usize) -> Vec<i64> {
        let now = Instant::now();
        let st = self.read();
        st.leases
            .iter()
            .filter(|(_, l)| l.deadline <= now)
            .map(|(id, _)| *id)
            .take(max)
            .collect()
    }

    /// Gives every lease a fresh TTL plus `grace`: a node that just became
    /// leader cannot know how long clients went without a keep-alive it
    /// would have seen. etcd's rule: a full TTL plus an election timeout,
    /// since keep-alives were lost while there was no leader.
    pub fn refresh_leases(&self, grace: Duration) {
        let mut st = self.write();
        for l in st.leases.values_mut() {
            l.deadline = lease_deadline(l.ttl) + grace;
        }
    }

    /// Whether `id` was removed from the cluster.
    pub fn is_removed(&self, id: u64) -> bool {
        // Asked at every peer message, so the writer is not waited for: a
        // removal still being written is seen at the removed member's next
        // message.
        // Nor is a snapshot install, which may hide the mark for as long.
        matches!(self.tree.contains_key(removed_key(id)), Ok(true))
    }

    /// The attributes every member published, by member id.
    pub fn members(&self) -> Result<HashMap<u64, synodpb::MemberAttributes>, EtcdError> {
        self.unrestored(|| {
            let mut out = HashMap::new();
            for item in self.tree()?.scan_prefix(META_MEMBER) {
                let (_, v) = item?;
                if let Ok(a) = synodpb::MemberAttributes::decode(&v[..]) {
                    out.insert(a.id, a);
                }
            }
            Ok(out)
        })
    }

    /// The whole state machine as key/value pairs.
    #[cfg(test)]
    pub fn dump(&self) -> Result<Pairs, EtcdError> {
        let mut out = Vec::new();
        self.each_pair(|k, v| out.push((k.to_vec(), v.to_vec())))?;
        Ok(out)
    }

    /// Writes the whole state machine to `w` as bincode would serialize its
    /// pairs (a count, then each key and value with its length; `DumpReader`
    /// reads it back), streaming from storage under the state's read lock: a
    /// consistent copy that never sits in memory. `seen` is shown every pair
    /// written. Returns the revision it holds.
    pub fn write_dump<W: std::io::Write + std::io::Seek>(
        &self,
        w: W,
        mut seen: impl FnMut(&[u8], &[u8]),
    ) -> Result<i64, EtcdError> {
        use std::io::{Seek, SeekFrom, Write};
        let io = |e: std::io::Error| EtcdError::Internal(format!("writing snapshot: {e}"));
        let mut w = std::io::BufWriter::with_capacity(1 << 20, w);
        let start = w.stream_position().map_err(io)?;
        // The count is known only at the end; its place is kept.
        w.write_all(&0u64.to_le_bytes()).map_err(io)?;
        let mut count = 0u64;
        let mut failed = None;
        let rev = self.each_pair(|k, v| {
            if failed.is_some() {
                return;
            }
            count += 1;
            seen(k, v);
            let res = w
                .write_all(&(k.len() as u64).to_le_bytes())
                .and_then(|_| w.write_all(k))
                .and_then(|_| w.write_all(&(v.len() as u64).to_le_bytes()))
                .and_then(|_| w.write_all(v));
            if let Err(e) = res {
                failed = Some(e);
            }
        })?;
        if let Some(e) = failed {
            return Err(io(e));
        }
        let end = w.stream_position().map_err(io)?;
        w.seek(SeekFrom::Start(start)).map_err(io)?;
        w.write_all(&count.to_le_bytes()).map_err(io)?;
        w.seek(SeekFrom::Start(end)).map_err(io)?;
        w.flush().map_err(io)?;
        Ok(rev)
    }

    /// etcd's Maintenance.Hash: a CRC-32C of everything stored (keys at all
    /// revisions, leases, metadata) and the revision it covers. Computed
    /// while streaming the pairs, without copying the store.
    pub fn hash_all(&self) -> Result<(u32, i64), EtcdError> {
        let mut hash = 0;
        let rev = self.each_pair(|k, v| {
            hash = crc32c::crc32c_append(hash, k);
            hash = crc32c::crc32c_append(hash, v);
        })?;
        Ok((hash, rev))
    }

    /// Visits every stored pair in key order, under the state's read lock so
    /// no apply lands half way; returns the revision they make up.
    fn each_pair(&self, mut f: impl FnMut(&[u8], &[u8])) -> Result<i64, EtcdError> {
        let st = self.read();
        for item in self.tree()?.iter() {
            let (k, v) = item?;
            f(&k, &v);
        }
        Ok(st.rev)
    }

    /// Replaces everything with a dump's content (see `write_dump`), read
    /// as a stream and written in bounded batches. Not atomic by itself: the
    /// caller keeps the dump until this returns and the store is synced, and
    /// runs it again if a crash came in between (raft/state_machine.rs).
    pub fn restore_from(&self, r: impl std::io::Read) -> Result<(), EtcdError> {
        let io = |e: std::io::Error| EtcdError::Internal(format!("reading snapshot: {e}"));
        let mut pairs = DumpReader::new(r).map_err(io)?;
        let mut st = self.write();
        self.settle()?;
        let installing = Installing::new(&self.restores);
        let replaced = (|| {
            self.tree.clear()?;
            let mut batch = sled::Batch::default();
            let mut bytes = 0;
            while let Some((k, v)) = pairs.next_pair().map_err(io)? {
                bytes += k.len() + v.len();
                batch.insert(k, v);
                if bytes >= RESTORE_BATCH_BYTES {
                    self.tree.apply_batch(std::mem::take(&mut batch))?;
                    bytes = 0;
                }
            }
            self.tree.apply_batch(batch)?;
            load_state(&self.tree)
        })();
        drop(installing);
        // Once cleared, the tree holds neither the old state nor the new:
        // nothing may be served from it until a restart, whose Raft log and
        // snapshot bring the install round again.
        let (fresh, leftover) = replaced.map_err(|e| self.broke(e))?;
        *st = fresh;
        let rev = st.rev;
        self.compactor.enqueue(leftover);
        drop(st);
        // Watchers, lock waiters and election observers on this member would
        // otherwise never hear of the revisions the snapshot brought.
        self.broadcast(Changes {
            events: Vec::new(),
            rev,
            restored: true,
        });
        Ok(())
    }
}

/// Makes `Store::restores` odd for as long as it lives, even if the install
/// panics, so that readers never wait for an install that is not running.
struct Installing<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Installing<'a> {
    fn new(restores: &'a std::sync::atomic::AtomicU64) -> Self {
        restores.fetch_add(1, SeqCst);
        Installing(restores)
    }
}

impl Drop for Installing<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Bytes of pairs written per batch while restoring a snapshot.
const RESTORE_BATCH_BYTES: usize = 8 << 20;

/// Reads back what `Store::write_dump` wrote, one pair at a time.
pub struct DumpReader<R> {
    r: std::io::BufReader<R>,
    left: u64,
}

impl<R: std::io::Read> DumpReader<R> {
    pub fn new(r: R) -> std::io::Result<Self> {
        let mut r = std::io::BufReader::with_capacity(1 << 20, r);
        let left = read_u64(&mut r)?;
        Ok(DumpReader { r, left })
    }

    /// The next pair, or None once all the count announced were read.
    pub fn next_pair(&mut self) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let k = self.read_bytes()?;
        let v = self.read_bytes()?;
        Ok(Some((k, v)))
    }

    fn read_bytes(&mut self) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let len = read_u64(&mut self.r)?;
        let mut out = Vec::new();
        // A corrupt length must not allocate a huge buffer up front.
        (&mut self.r).take(len).read_to_end(&mut out)?;
        if out.len() as u64 != len {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(out)
    }

    /// Reads to the end, checking that the dump is whole: every pair the
    /// count announced and nothing after them. Returns the pair count.
    pub fn check(mut self) -> std::io::Result<u64> {
        use std::io::Read;
        let mut n = 0;
        while self.next_pair()?.is_some() {
            n += 1;
        }
        if self.r.read(&mut [0])? != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "bytes after the last pair",
            ));
        }
        Ok(n)
    }
}

fn read_u64(r: &mut impl std::io::Read) -> std::io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Where revision records are read: a batch still being written, else sled.
#[derive(Clone, Copy)]
pub(crate) struct Source<'a> {
    tree: &'a sled::Tree,
    writer: &'a writer::Writer,
}

pub(crate) fn load(
    src: Source<'_>,
    pending: Option<&Records>,
    rev: Rev,
) -> Result<(KeyValue, bool), EtcdError> {
    if let Some(rec) = pending.and_then(|p| p.get(&rev)) {
        return Ok(rec.clone());
    }
    // The writer before sled: a batch leaves the writer only once sled has it.
    if let Some(rec) = src.writer.get(&rev) {
        return Ok(rec);
    }
    match src.tree.get(rev_key(rev))? {
        Some(v) => decode_record(&v),
        None => Err(EtcdError::Internal(format!(
            "revision {}.{} missing from storage",
            rev.main, rev.sub
        ))),
    }
}

/// Checks a read revision against what the store holds, as etcd does.
pub fn check_rev(st: &State, rev: i64, current: i64) -> Result<i64, EtcdError> {
    if rev > current {
        return Err(EtcdError::FutureRev);
    }
    if rev > 0 && rev < st.compact_rev {
        return Err(EtcdError::Compacted);
    }
    Ok(if rev <= 0 { current } else { rev })
}

/// The keys a Range selects, decided under the store lock: the revisions
/// to load and the count. Loading the values can happen after the lock is
/// released, since a revision's record never changes (only compaction
/// removes it).
pub(crate) struct Selection {
    at: i64,
    revs: Vec<Rev>,
    count: i64,
}

impl Selection {
    fn load(&self, src: Source<'_>, pending: Option<&Records>) -> Result<Vec<KeyValue>, EtcdError> {
        self.revs
            .iter()
            .map(|&rev| load(src, pending, rev).map(|r| r.0))
            .collect()
    }
}

pub(crate) fn select(st: &State, req: &RangeRequest, current: i64) -> Result<Selection, EtcdError> {
    let at = check_rev(st, req.revision, current)?;
    let range = KeyRange::new(&req.key, &req.range_end);
    // As etcd: only a sort order (not a sort target alone) or a filter fetches everything.
    let full_fetch = req.sort_order != 0 || filtered(req);
    let fetch_limit = if req.count_only {
        0
    } else if full_fetch || req.limit <= 0 {
        usize::MAX
    } else {
        req.limit as usize + 1
    };
    let mut count = 0i64;
    let mut revs = Vec::new();
    for (_, rev) in st.index.range(range, at) {
        count += 1;
        if revs.len() < fetch_limit {
            revs.push(rev);
        }
    }
    Ok(Selection { at, revs, count })
}

fn filtered(req: &RangeRequest) -> bool {
    req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0
}

/// A Range as etcd answers it: filters and sorting force a full fetch,
/// `count` is the number of keys in the range whatever the limit, and the
/// header carries the store's current revision.
pub(crate) fn range(
    st: &State,
    src: Source<'_>,
    pending: Option<&Records>,
    req: &RangeRequest,
    current: i64,
) -> Result<RangeResponse, EtcdError> {
    let sel = select(st, req, current)?;
    let kvs = sel.load(src, pending)?;
    Ok(shape(req, kvs, sel.count, current))
}

/// Filters, sorts, limits and trims loaded values into the response.
pub(crate) fn shape(
    req: &RangeRequest,
    mut kvs: Vec<KeyValue>,
    count: i64,
    current: i64,
) -> RangeResponse {
    use synod_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
    let filtered = filtered(req);
    let sort_target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    let mut sort_order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    if filtered {
        kvs.retain(|kv: &KeyValue| {
            !(req.max_mod_revision != 0 && kv.mod_revision > req.max_mod_revision
                || req.min_mod_revision != 0 && kv.mod_revision < req.min_mod_revision
                || req.max_create_revision != 0 && kv.create_revision > req.max_create_revision
                || req.min_create_revision != 0 && kv.create_revision < req.min_create_revision)
        });
    }
    if sort_target != SortTarget::Key && sort_order == SortOrder::None {
        sort_order = SortOrder::Ascend;
    } else if sort_target == SortTarget::Key && sort_order == SortOrder::Ascend {
        sort_order = SortOrder::None;
    }
    if sort_order != SortOrder::None {
        let cmp = |a: &KeyValue, b: &KeyValue| match sort_target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        if sort_order == SortOrder::Descend {
            kvs.sort_by(|a, b| cmp(b, a));
        } else {
            kvs.sort_by(cmp);
        }
    }
    let mut more = false;
    if req.limit > 0 && kvs.len() > req.limit as usize {
        kvs.truncate(req.limit as usize);
        more = true;
    }
    if req.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    RangeResponse {
        header: Some(ResponseHeader {
            revision: current,
            ..Default::default()
        }),
        kvs,
        more,
        count,
    }
}

/// The key index and lease table rebuilt from the records in `tree`, and the
/// records a compaction dropped that are still stored (the background
/// deletion had not reached them when the process stopped).
fn load_state(tree: &sled::Tree) -> Result<(State, Vec<Rev>), EtcdError> {
    // A fresh etcd store is at revision 1 with nothing compacted (-1);
    // clients see these numbers, so Synod starts the same way.
    let mut st = State {
        rev: read_i64(tree, META_REV)?.unwrap_or(1),
        compact_rev: read_i64(tree, META_COMPACT)?.unwrap_or(-1),
        ..Default::default()
    };
    for item in tree.scan_prefix(META_ALARM) {
        let (k, _) = item?;
        let k = &k[META_ALARM.len()..];
        if k.len() == 12 {
            let member = u64::from_be_bytes(k[..8].try_into().expect("8 bytes"));
            let alarm = i32::from_be_bytes(k[8..].try_into().expect("4 bytes"));
            st.alarms.insert((member, alarm));
        }
    }
    for item in tree.scan_prefix([LEASE_PREFIX]) {
        let (k, v) = item?;
        if k.len() == 9 && v.len() == 8 {
            let id = i64::from_be_bytes(k[1..].try_into().expect("8 bytes"));
            let ttl = i64::from_be_bytes(v.as_ref().try_into().expect("8 bytes"));
            let lease = Lease {
                ttl,
                keys: BTreeSet::new(),
                deadline: lease_deadline(ttl),
            };
            st.leases.insert(id, lease);
        }
    }
    for item in tree.scan_prefix([REV_PREFIX]) {
        let (k, v) = item?;
        let rev = Rev::from_bytes(&k[1..])
            .ok_or_else(|| EtcdError::Internal("corrupt revision key".into()))?;
        let (kv, tombstone) = decode_index_fields(&v)?;
        let live = Live {
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
        };
        st.index.push(&kv.key, rev, tombstone, live);
    }
    // Revisions arrived in order, so each key's newest version tells its
    // current lease.
    for (key, id) in st.index.leased() {
        if let Some(l) = st.leases.get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }
    let leftover = st.index.compact(st.compact_rev);
    Ok((st, leftover))
}

#[cfg(test)]
mod tests;
