//! The Raft log and vote in a dedicated write-ahead log (`raft-log`), so an
//! acknowledged append costs one fdatasync of one file and nothing else.
//!
//! raft-log keeps every record (vote, entry, commit, truncate, purge) in
//! CRC-checked chunk files. Its flush worker writes and fdatasyncs them on a
//! thread of its own and calls back only after the sync, with its result; so
//! openraft hears "flushed" exactly when the entries are on disk.
//!
//! Chunk files are written full of zeros before any record goes in (our
//! patch of chunked-wal, third_party/README.md), so a sync after an append
//! writes only data, never the inode for a new file size. The records of a
//! chunk therefore end where its zeros start, not at the end of the file.
//!
//! What open does with a damaged log (documented by the tests below):
//! - a record cut short at the end of the last chunk (a write torn by a crash)
//!   is cut off, and the log ends at the last whole record. In the zeros of
//!   a preallocated chunk a torn write reads back as a record with a
//!   sector's share of it (512 bytes, or the part of the record in a sector)
//!   all zero, etcd's rule for a torn entry; in a file that grows, as a short
//!   record;
//! - zeros from the end of a record to the end of the file are unused space
//!   (a preallocated chunk's, or a file ext4 extended before its data reached
//!   the disk): the records end there, and writes go on from there;
//! - any other damage (a CRC mismatch in a record with no zeroed share of a
//!   sector) makes open fail with an `InvalidData` error naming
//!   the chunk and offset ("crc32 checksum mismatch: expected .., got ..,
//!   while Record::decode(); when:(decode Record at offset 890);
//!   when:(iterate ChunkId(..))"): the log is never served past a hole, and
//!   acknowledged entries after it are not silently dropped. The operator
//!   has to look.
//!
//! This relies on our codec reporting a short read as `UnexpectedEof`: raft-log
//! cuts only on that kind (or on zeros), and refuses to open on anything else.
// openraft's trait methods return its own (large) StorageError; helpers follow suit.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftLogReader, Vote};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::codeq::{Decode, Encode};
use raft_log::RaftLog;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::{io_err, Entry, LogId, NodeId, StorageError, TypeConfig};

/// A value stored in the WAL as a u32 length and its bincode bytes.
///
/// The length prefix is what makes a torn record read as `UnexpectedEof`
/// (codeq's `Vec<u8>` decoder reports a short body so); bincode only ever sees
/// whole bytes, so its errors really mean bad data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bin<T>(pub T);

impl<T: Serialize> Encode for Bin<T> {
    fn encode<W: io::Write>(&self, w: W) -> Result<usize, io::Error> {
        let bytes = bincode::serialize(&self.0).map_err(io::Error::other)?;
        bytes.encode(w)
    }
}

impl<T: DeserializeOwned> Decode for Bin<T> {
    fn decode<R: io::Read>(r: R) -> Result<Self, io::Error> {
        let bytes = Vec::<u8>::decode(r)?;
        bincode::deserialize(&bytes)
            .map(Bin)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// How a flush reports back: straight to openraft for appends, or to a
/// caller that waits for the sync before returning (vote, truncate, purge).
pub enum Done {
    /// openraft's callback, and the append's number in `Syncs`.
    Raft(LogFlushed<TypeConfig>, Arc<Syncs>, u64),
    Wait(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl raft_log::Callback for Done {
    fn send(self, res: Result<(), io::Error>) {
        match self {
            Done::Raft(cb, syncs, n) => {
                let ok = res.is_ok();
                cb.log_io_completed(res);
                if ok {
                    syncs.synced.send_if_modified(|s| {
                        let newer = n > *s;
                        *s = (*s).max(n);
                        newer
                    });
                }
            }
            // The waiter gave up (its future was dropped): nobody to tell.
            Done::Wait(tx) => {
                let _ = tx.send(res);
            }
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalTypes;

impl raft_log::Types for WalTypes {
    type LogId = Bin<LogId>;
    type LogPayload = Bin<EntryPayload<TypeConfig>>;
    type Vote = Bin<Vote<NodeId>>;
    type Callback = Done;
    type UserData = ();

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.0.index
    }

    /// Only sizes the payload cache, so an estimate will do.
    fn payload_size(payload: &Self::LogPayload) -> u64 {
        match &payload.0 {
            EntryPayload::Normal(batch) => prost::Message::encoded_len(&batch.0) as u64 + 16,
            _ => 64,
        }
    }
}

type Log = RaftLog<WalTypes>;

/// openraft's log storage on raft-log. Clones share one log: the clone handed
/// out as the reader sees every write as soon as it is made.
#[derive(Clone)]
pub struct WalStore {
    log: Arc<Mutex<Log>>,
    syncs: Arc<Syncs>,
}

/// Numbers openraft's appends in order and tells when each is on disk, so
/// the proposer can let the next batch go once its own is durable, while it
/// is still being applied: the disk then syncs one batch as the state
/// machine applies the one before.
#[derive(Debug, Default)]
pub struct Syncs {
    appended: std::sync::atomic::AtomicU64,
    synced: tokio::sync::watch::Sender<u64>,
}

impl Syncs {
    /// How many appends have been handed to the log so far.
    pub fn appended(&self) -> u64 {
        self.appended.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until an append numbered above `n` is on disk. Never returns
    /// if none comes (a failed sync, or no more appends).
    pub async fn synced_past(&self, n: u64) {
        let mut rx = self.synced.subscribe();
        if rx.wait_for(|s| *s > n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn config(dir: &Path, chunk_size: usize) -> raft_log::Config {
    let mut c = raft_log::Config::new(dir.display());
    c.wal.chunk_max_size = Some(chunk_size);
    // openraft 0.9 has one append in flight, so nothing else could join a
    // batch during the default 1 ms wait: it would only add latency.
    c.wal.flush_batch_wait = Some(Duration::ZERO);
    // Cache misses read from disk with this buffer; records are small.
    c.wal.read_buffer_size = Some(4 << 20);
    // Recent entries are read back for apply (right after they are flushed)
    // and replication; older ones come from disk. The default (1 GiB, 100k
    // entries) would dominate peak RSS; 64 MiB still showed as ~70 MB more
    // than etcd's peak under put/64.
    c.log_cache_capacity = Some(16 << 20);
    c.log_cache_max_items = Some(2_000);
    c
}

/// Runs code that may block on the disk (chunk creation fsyncs the
/// directory, a full flush queue waits for the worker) without stalling the
/// other tasks of a multi-thread runtime's worker. A current-thread runtime
/// (tests) cannot hand its tasks over, and there it simply runs.
///
/// Only for the rare writes (vote, truncate, purge): handing a worker's tasks
/// over costs more than an append or a cached read, which block only when a
/// chunk is created (every 64 MiB) or an entry is no longer cached.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn logs_err(verb: ErrorVerb, e: io::Error) -> StorageError {
    io_err(ErrorSubject::Logs, verb, e)
}

/// An error for a request that would break the log's invariants: writing it
/// would make the log refuse to open, so it is refused up front.
fn invalid(subject: ErrorSubject<NodeId>, verb: ErrorVerb, msg: String) -> StorageError {
    io_err(
        subject,
        verb,
        io::Error::new(io::ErrorKind::InvalidInput, msg),
    )
}

impl WalStore {
    /// Opens (or creates) the log in `dir`. Fails if the log is damaged other
    /// than at its tail; see the module comment.
    pub fn open(dir: &Path) -> io::Result<Self> {
        // Small chunks are unlinked sooner after a purge, and a chunk is what
        // a restart replays at most beyond the purge point. Each chunk is
        // written full of zeros before use, so tests that copy the log on
        // every sync (power_loss.rs) make them smaller: the variable is for
        // tests, not documented for users.
        let chunk_size = std::env::var("SYNOD_TEST_WAL_CHUNK_SIZE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64 << 20);
        Self::open_sized(dir, chunk_size)
    }

    fn open_sized(dir: &Path, chunk_size: usize) -> io::Result<Self> {
        let created = !dir.exists();
        std::fs::create_dir_all(dir)?;
        if created {
            // The new directory's entry must survive a power cut too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(parent)?.sync_all()?;
            }
        }
        let log = RaftLog::open(Arc::new(config(dir, chunk_size)))?;
        Ok(WalStore {
            syncs: Arc::default(),
            log: Arc::new(Mutex::new(log)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // raft-log checks a record before buffering it, so a panic elsewhere
        // while the lock was held leaves it consistent.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `write`'s records durable and waits for the fdatasync.
    async fn write_synced(
        &self,
        subject: ErrorSubject<NodeId>,
        verb: ErrorVerb,
        write: impl FnOnce(&mut Log) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        blocking(|| {
            let mut log = self.lock();
            write(&mut log)?;
            log.flush(true, Some(Done::Wait(tx)))
        })
        .map_err(|e| io_err(subject.clone(), verb, e))?;
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("the WAL's flush worker stopped")))
            .map_err(|e| io_err(subject, verb, e))
    }

    /// Waits until every record written before the call is on disk.
    pub async fn sync(&self) -> Result<(), StorageError> {
        self.write_synced(ErrorSubject::Logs, ErrorVerb::Write, |_| Ok(()))
            .await
    }

    /// Appends and reports to `done` (made under the log's lock) once the
    /// entries are on disk.
    fn append_with(
        &self,
        mut entries: Vec<Entry>,
        done: impl FnOnce() -> Done,
    ) -> Result<(), StorageError> {
        {
            let mut log = self.lock();
            let done = done();
            // An entry at or below the purge point is already applied and
            // covered by the state machine; raft-log would call it a
            // reversal. openraft itself never sends one, but its storage
            // suite does (after get_initial_state purges up to last_applied).
            if let Some(p) = log.log_state().purged().map(|p| p.0.index) {
                entries.retain(|e| e.log_id.index > p);
            }
            let Some(first) = entries.first().map(|e| e.log_id) else {
                // Nothing to write, but openraft still waits for the callback;
                // going through the flush queue keeps it behind every earlier
                // write's sync, which openraft may count as covered by it.
                return log
                    .flush(true, Some(done))
                    .map_err(|e| logs_err(ErrorVerb::Write, e));
            };
            // raft-log would reject an entry that does not follow the last one
            // after the entries before it were already buffered; checking the
            // whole batch first keeps a refused append from writing half.
            let last = log.log_state().last().map(|l| l.0);
            let mut expect = last.map(|l| l.index + 1);
            if last.is_some_and(|l| first <= l) {
                return Err(invalid(
                    ErrorSubject::Logs,
                    ErrorVerb::Write,
                    format!(
                        "append of {} does not follow the last log id {:?}",
                        first, last
                    ),
                ));
            }
            for e in &entries {
                if expect.is_some_and(|i| i != e.log_id.index) {
                    return Err(invalid(
                        ErrorSubject::Logs,
                        ErrorVerb::Write,
                        format!("append of {} leaves a gap before it", e.log_id),
                    ));
                }
                expect = Some(e.log_id.index + 1);
            }
            log.append(entries.into_iter().map(|e| (Bin(e.log_id), Bin(e.payload))))
                .map_err(|e| logs_err(ErrorVerb::Write, e))?;
            log.flush(true, Some(done))
                .map_err(|e| logs_err(ErrorVerb::Write, e))
        }
    }

    /// The index of the last entry handed to the log, synced or not.
    pub fn last_index(&self) -> Option<u64> {
        self.lock().log_state().last().map(|l| l.0.index)
    }

    /// The numbering of openraft's appends (see `Syncs`).
    pub fn syncs(&self) -> Arc<Syncs> {
        self.syncs.clone()
    }

    /// Appends and waits until the entries are on disk (outside openraft,
    /// which hands in its own callback).
    pub async fn append_wait(&self, entries: Vec<Entry>) -> Result<(), StorageError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.append_with(entries, || Done::Wait(tx))?;
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("the WAL's flush worker stopped")))
            .map_err(|e| logs_err(ErrorVerb::Write, e))
    }
}

fn index_range<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for WalStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (start, end) = index_range(&range);
        // raft-log's read is a BTreeMap range, which panics on start > end.
        if start >= end {
            return Ok(Vec::new());
        }
        // Entries no longer cached are read from their chunk file.
        let log = self.lock();
        log.read(start, end)
            .map(|r| {
                r.map(|(id, payload)| Entry {
                    log_id: id.0,
                    payload: payload.0,
                })
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| logs_err(ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for WalStore {
    type LogReader = WalStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let log = self.lock();
        let st = log.log_state();
        // raft-log moves `last` up to `purged` when a purge passes it, as
        // openraft wants last_log_id to be.
        Ok(LogState {
            last_purged_log_id: st.purged().map(|l| l.0),
            last_log_id: st.last().map(|l| l.0),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        // openraft only moves its vote forward, by the same partial order
        // raft-log checks; a vote raft-log refuses (VoteReversal) means a bug
        // above us, and storing it would break Raft's safety, so it is an
        // error.
        let vote = *vote;
        self.write_synced(ErrorSubject::Vote, ErrorVerb::Write, move |log| {
            log.save_vote(Bin(vote)).map(|_| ())
        })
        .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.lock().log_state().vote().map(|v| v.0))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let Some(c) = committed else { return Ok(()) };
        {
            let mut log = self.lock();
            let st = log.log_state();
            // The commit point is a hint for restart (losing it only means
            // re-learning it), so it is not synced: the next append's sync
            // carries it. raft-log refuses one beyond the last entry
            // (CommitBeyondLast) or behind the stored one; neither is worth a
            // record, and neither may become a fatal error.
            if Some(&Bin(c)) > st.last() || Some(&Bin(c)) <= st.committed() {
                return Ok(());
            }
            log.commit(Bin(c)).map(|_| ())
        }
        .map_err(|e| logs_err(ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().log_state().committed().map(|c| c.0))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // The callback runs on the flush thread after the fdatasync, with its
        // result: openraft counts the entries as persisted only then.
        // Numbered under the log's lock, so numbers follow the write order.
        let syncs = self.syncs.clone();
        self.append_with(entries.into_iter().collect(), || {
            let n = syncs
                .appended
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1;
            Done::Raft(callback, syncs, n)
        })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let index = {
            let log = self.lock();
            let st = log.log_state();
            let Some(last) = st.last().map(|l| l.0) else {
                return Ok(());
            };
            // Entries at or below the purge point are already gone, so
            // "from `index` on" means every entry still held.
            let from = match st.purged() {
                Some(p) if log_id.index <= p.0.index => p.0.index + 1,
                _ => log_id.index,
            };
            if from > last.index {
                return Ok(());
            }
            // Committed entries are never truncated by a correct Raft; raft-log
            // refuses (TruncateCommitted) and so do we, before writing anything.
            if let Some(c) = st.committed().filter(|c| c.0.index >= from) {
                return Err(invalid(
                    ErrorSubject::Logs,
                    ErrorVerb::Delete,
                    format!(
                        "truncating from index {from} would remove committed entry {}",
                        c.0
                    ),
                ));
            }
            from
        };
        self.write_synced(ErrorSubject::Logs, ErrorVerb::Delete, move |log| {
            log.truncate(index).map(|_| ())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let purged = self.lock().log_state().purged().map(|p| p.0);
        if purged.is_some_and(|p| log_id.index <= p.index) {
            return Ok(());
        }
        // raft-log unlinks the chunks this frees only after the purge record
        // is synced, so a crash never finds entries missing below an
        // unrecorded purge point.
        self.write_synced(ErrorSubject::Logs, ErrorVerb::Delete, move |log| {
            log.purge(Bin(log_id)).map(|_| ())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::PathBuf;

    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{CommittedLeaderId, RaftLogReader};
    use synod_proto::synodpb;

    use super::*;
    use crate::mvcc::Store;
    use crate::raft::sled_sync::SledSync;
    use crate::raft::state_machine::StateMachine;
    use crate::raft::types::Proto;

    struct Builder;

    impl StoreBuilder<TypeConfig, WalStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, WalStore, StateMachine), StorageError> {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = sled::Config::new()
                .path(dir.path().join("db"))
                .open()
                .expect("sled");
            let store = Store::open(db.open_tree("sm").expect("tree")).expect("store");
            let wal = open(&dir.path().join("wal")).expect("wal");
            let durable = SledSync::new(db, &dir.path().join("db")).expect("sled sync");
            let sm = StateMachine::open(Arc::new(store), Arc::new(durable), dir.path())
                .expect("state machine");
            Ok((dir, wal, sm))
        }
    }

    #[test]
    fn openraft_storage_suite() {
        // The suite's own log names the step that failed, shown on failure.
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        Suite::test_all(Builder).expect("openraft's storage suite");
    }

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> Entry {
        entry_sized(term, index, 40)
    }

    fn entry_sized(term: u64, index: u64, value_len: usize) -> Entry {
        let batch = synodpb::Batch {
            requests: vec![synodpb::Request {
                op: Some(synodpb::request::Op::Put(
                    synod_proto::etcdserverpb::PutRequest {
                        key: format!("key-{index}").into_bytes(),
                        value: vec![index as u8 | 1; value_len],
                        ..Default::default()
                    },
                )),
            }],
        };
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(Proto(batch)),
        }
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range.map(|i| entry(1, i)).collect()
    }

    /// The chunk file holding the newest records.
    fn last_chunk(dir: &Path) -> PathBuf {
        let mut chunks: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
        chunks.sort();
        chunks.pop().expect("a chunk file")
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "LOCK" {
                std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
            }
        }
    }

    async fn read_all(s: &mut WalStore) -> Vec<Entry> {
        s.try_get_log_entries(..).await.unwrap()
    }

    fn same(a: &[Entry], b: &[Entry]) -> bool {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.log_id == y.log_id
                    && bincode::serialize(&x.payload).unwrap()
                        == bincode::serialize(&y.payload).unwrap()
            })
    }

    #[tokio::test]
    async fn reopen_returns_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let vote = Vote::new_committed(3, 1);
        {
            let mut s = open(dir.path()).unwrap();
            s.save_vote(&vote).await.unwrap();
            s.append_wait(entries(1..=20)).await.unwrap();
            s.truncate(log_id(1, 16)).await.unwrap();
            s.append_wait(vec![entry(3, 16), entry(3, 17)])
                .await
                .unwrap();
            s.save_committed(Some(log_id(3, 16))).await.unwrap();
            s.purge(log_id(1, 4)).await.unwrap();
            // A commit point is synced by the next durable write.
            s.save_vote(&vote).await.unwrap();
        }
        let mut s = open(dir.path()).unwrap();
        assert_eq!(s.read_vote().await.unwrap(), Some(vote));
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(3, 16)));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(log_id(1, 4)));
        assert_eq!(st.last_log_id, Some(log_id(3, 17)));
        let got = read_all(&mut s).await;
        let mut want = entries(5..=15);
        want.extend([entry(3, 16), entry(3, 17)]);
        assert!(same(&got, &want));
    }

    #[tokio::test]
    async fn invariant_breaking_requests_are_skipped_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = open(dir.path()).unwrap();
        s.append_wait(entries(1..=5)).await.unwrap();
        // Beyond the last entry: not recorded, not an error.
        s.save_committed(Some(log_id(1, 9))).await.unwrap();
        assert_eq!(s.read_committed().await.unwrap(), None);
        s.save_committed(Some(log_id(1, 3))).await.unwrap();
        // Behind the stored one: ignored.
        s.save_committed(Some(log_id(1, 2))).await.unwrap();
        assert_eq!(s.read_committed().await.unwrap(), Some(log_id(1, 3)));
        // Truncating past the end or purging behind the purge point: no-ops.
        s.truncate(log_id(1, 9)).await.unwrap();
        s.purge(log_id(1, 1)).await.unwrap();
        s.purge(log_id(1, 1)).await.unwrap();
        // An entry already purged (applied): nothing to write.
        s.append_wait(vec![entry(1, 1)]).await.unwrap();
        // A gap or a repeat is refused, and nothing of it is written.
        assert!(s.append_wait(vec![entry(1, 7)]).await.is_err());
        assert!(s.append_wait(vec![entry(1, 5)]).await.is_err());
        assert!(s.append_wait(vec![entry(1, 6), entry(1, 8)]).await.is_err());
        // Committed entries are not truncated.
        assert!(s.truncate(log_id(1, 3)).await.is_err());
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(1, 5)));
        // A vote never moves backwards.
        s.save_vote(&Vote::new(5, 1)).await.unwrap();
        assert!(s.save_vote(&Vote::new(4, 1)).await.is_err());
        s.truncate(log_id(1, 4)).await.unwrap();
        drop(s);
        let mut s = open(dir.path()).unwrap();
        assert!(same(&read_all(&mut s).await, &entries(2..=3)));
    }

    /// Chunks as small as a test needs, as each is filled with zeros first.
    const CHUNK: usize = 256 << 10;

    fn open(dir: &Path) -> io::Result<WalStore> {
        WalStore::open_sized(dir, CHUNK)
    }

    /// Where the records of the open chunk end, within its file.
    fn records_end(s: &WalStore) -> u64 {
        let c = s.lock().stat().open_chunk;
        c.global_end - c.global_start
    }

    fn chunks(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "wal")
            })
            .count()
    }

    /// Writes entries 1..=9, then `last` (index 10) on its own, and returns
    /// the last chunk and the byte range `last`'s record occupies in it.
    async fn write_log(dir: &Path, last: Entry) -> (PathBuf, u64, u64) {
        let s = open(dir).unwrap();
        s.append_wait(entries(1..=9)).await.unwrap();
        let chunk = last_chunk(dir);
        let before = records_end(&s);
        s.append_wait(vec![last]).await.unwrap();
        assert_eq!(last_chunk(dir), chunk);
        let after = records_end(&s);
        drop(s);
        // Preallocated: the file is longer than its records.
        assert_eq!(std::fs::metadata(&chunk).unwrap().len(), CHUNK as u64);
        (chunk, before, after)
    }

    /// Opens a log whose entry 10 was lost, and checks that it ends at entry
    /// 9 and goes on from there, across a restart.
    async fn goes_on_from_nine(dir: &Path, case: &str) {
        let mut s = open(dir).unwrap_or_else(|e| panic!("open, {case}: {e}"));
        let st = s.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(1, 9)), "{case}");
        assert!(same(&read_all(&mut s).await, &entries(1..=9)), "{case}");
        s.append_wait(vec![entry(2, 10)]).await.unwrap();
        drop(s);
        let mut s = open(dir).unwrap();
        let got = read_all(&mut s).await;
        assert_eq!(got.last().unwrap().log_id, log_id(2, 10), "{case}");
        assert_eq!(got.len(), 10, "{case}");
    }

    #[tokio::test]
    async fn a_torn_last_record_is_cut_never_served() {
        // A file that grows (a log written before chunks were preallocated,
        // or one whose preallocation a crash cut short): a torn write leaves
        // it short, at any byte.
        let dir = tempfile::tempdir().unwrap();
        let (chunk, start, end) = write_log(dir.path(), entry(1, 10)).await;
        assert!(end > start + 40, "the record holds the payload");
        for cut in start..end {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), copy.path());
            let torn = copy.path().join(chunk.file_name().unwrap());
            std::fs::OpenOptions::new()
                .write(true)
                .open(&torn)
                .unwrap()
                .set_len(cut)
                .unwrap();
            goes_on_from_nine(copy.path(), &format!("cut at {cut}")).await;
        }
        // Untouched, all ten entries are there.
        let mut s = open(dir.path()).unwrap();
        assert!(same(&read_all(&mut s).await, &entries(1..=10)));
    }

    /// The shares of `start..end` in each 512-byte disk sector.
    fn sector_shares(start: u64, end: u64) -> Vec<(usize, usize)> {
        let mut shares = Vec::new();
        let mut at = start;
        while at < end {
            let to = ((at / 512 + 1) * 512).min(end);
            shares.push((at as usize, to as usize));
            at = to;
        }
        shares
    }

    #[tokio::test]
    async fn a_write_torn_into_preallocated_space_is_cut() {
        // In a preallocated chunk a crash leaves the file's length alone: of
        // the sectors the last write covered, any set reached the disk and
        // the others still hold zeros. Every such set is tried.
        let dir = tempfile::tempdir().unwrap();
        let (chunk, start, end) = write_log(dir.path(), entry_sized(1, 10, 2000)).await;
        let shares = sector_shares(start, end);
        assert!(shares.len() >= 4, "the record spans sectors: {shares:?}");
        let whole = std::fs::read(&chunk).unwrap();
        for kept in 0..(1u32 << shares.len()) - 1 {
            let copy = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), copy.path());
            let mut bytes = whole.clone();
            for (i, (a, b)) in shares.iter().enumerate() {
                if kept & (1 << i) == 0 {
                    bytes[*a..*b].fill(0);
                }
            }
            std::fs::write(copy.path().join(chunk.file_name().unwrap()), &bytes).unwrap();
            goes_on_from_nine(copy.path(), &format!("sectors kept {kept:b}")).await;
        }
        let mut s = open(dir.path()).unwrap();
        let mut want = entries(1..=9);
        want.push(entry_sized(1, 10, 2000));
        assert!(same(&read_all(&mut s).await, &want));
    }

    #[tokio::test]
    async fn a_damaged_last_record_before_the_zeros_fails_open() {
        // Damage, not a torn write: no sector's share of the record is zero.
        // Cutting it would drop an acknowledged entry without a word.
        for last in [entry(1, 10), entry_sized(1, 10, 2000)] {
            let dir = tempfile::tempdir().unwrap();
            let (chunk, start, end) = write_log(dir.path(), last).await;
            damaged_fails_open(
                dir.path(),
                &chunk,
                (start + end) / 2,
                "a damaged entry must not be cut silently",
            );
        }
    }

    /// Flips a bit of the byte at `at` in `chunk`, then checks that the log
    /// refuses to open, naming the checksum.
    fn damaged_fails_open(dir: &Path, chunk: &Path, at: u64, why: &str) {
        let mut bytes = std::fs::read(chunk).unwrap();
        bytes[at as usize] ^= 0x40;
        std::fs::write(chunk, &bytes).unwrap();
        let err = match open(dir) {
            Ok(_) => panic!("{why}"),
            Err(e) => e,
        };
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        // e.g. "crc32 checksum mismatch: expected 876678ad, got b705cf5d, while
        // Record::decode(); when:(decode Record at offset 890); when:(iterate
        // ChunkId(00_000_000_000_000_000_000))"
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    #[tokio::test]
    async fn a_zeroed_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (chunk, start, end) = write_log(dir.path(), entry(1, 10)).await;
        // A file that grew: the last record's bytes lost and the file
        // extended with zeros, as ext4 data=writeback can leave it.
        let mut bytes = std::fs::read(&chunk).unwrap();
        bytes.truncate(end as usize);
        bytes[start as usize..end as usize].fill(0);
        bytes.extend(std::iter::repeat_n(0u8, 4096));
        std::fs::write(&chunk, &bytes).unwrap();
        goes_on_from_nine(dir.path(), "zeroed").await;
    }

    #[tokio::test]
    async fn a_corrupt_record_in_the_middle_fails_open() {
        let dir = tempfile::tempdir().unwrap();
        let (chunk, start, _) = write_log(dir.path(), entry(1, 10)).await;
        // A byte inside entry 9's record, with entry 10 whole after it.
        damaged_fails_open(
            dir.path(),
            &chunk,
            start - 20,
            "a log with a hole must not open",
        );
    }

    #[tokio::test]
    async fn chunks_are_preallocated_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut want = Vec::new();
        let mut next = 1;
        for restart in 0..3 {
            let mut s = open(dir.path()).unwrap();
            assert!(same(&read_all(&mut s).await, &want), "restart {restart}");
            if restart > 0 {
                // A restart goes on in the open chunk, not a new one.
                assert_eq!(chunks(dir.path()), restart + 1);
            }
            // Into a new chunk, and past its half, where the spare for the
            // next one is prepared; in batches of ten.
            while chunks(dir.path()) < restart + 2 || records_end(&s) < CHUNK as u64 / 2 + 4096 {
                let batch: Vec<Entry> =
                    (next..next + 10).map(|i| entry_sized(1, i, 2000)).collect();
                s.append_wait(batch.clone()).await.unwrap();
                want.extend(batch);
                next += 10;
            }
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
        files.sort();
        let open_chunk = files.pop().unwrap();
        assert_eq!(std::fs::metadata(&open_chunk).unwrap().len(), CHUNK as u64);
        // The spare for the next chunk is no chunk: the log opens whole.
        assert!(dir.path().join("spare.chunk").exists());
        let mut s = open(dir.path()).unwrap();
        assert!(same(&read_all(&mut s).await, &want));
    }

    /// Whether this process holds `path` open with `O_DIRECT`.
    fn open_direct(path: &Path) -> bool {
        let path = path.canonicalize().unwrap();
        std::fs::read_dir("/proc/self/fd").unwrap().any(|e| {
            let fd = e.unwrap().path();
            std::fs::read_link(&fd).is_ok_and(|target| target == path)
                && std::fs::read_to_string(format!(
                    "/proc/self/fdinfo/{}",
                    fd.file_name().unwrap().to_str().unwrap()
                ))
                .is_ok_and(|info| {
                    info.lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
                        .is_some_and(|f| f & libc::O_DIRECT != 0)
                })
        })
    }

    #[tokio::test]
    async fn appends_of_every_size_survive_restarts_in_the_middle_of_a_block() {
        // The flush worker writes whole blocks directly and keeps the last,
        // partial one in memory: a restart must find that block in the file,
        // and every later write must carry the records before it unchanged.
        // Each open replays the whole log from the files. (tmpfs accepts
        // unaligned direct writes, so there this would not catch a
        // misaligned one; the temporary directory is on disk here.)
        let dir = tempfile::tempdir().unwrap();
        let probe = dir.path().join("probe");
        std::fs::write(&probe, b"").unwrap();
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&probe)
            .is_ok();
        let sizes = [1, 90, 700, 4000, 4097, 9000, 13, 20000];
        let mut want = Vec::new();
        let mut next = 1;
        for restart in 0..6 {
            let mut s = open(dir.path()).unwrap();
            assert!(same(&read_all(&mut s).await, &want), "restart {restart}");
            let mut round = 0;
            // At least a dozen batches, and then stop inside a block.
            while round < 12 || records_end(&s).is_multiple_of(4096) {
                let n = 1 + (restart + round) % 3;
                let batch: Vec<Entry> = (next..next + n as u64)
                    .map(|i| entry_sized(restart as u64 + 1, i, sizes[i as usize % sizes.len()]))
                    .collect();
                s.append_wait(batch.clone()).await.unwrap();
                want.extend(batch);
                next += n as u64;
                round += 1;
            }
            assert_eq!(
                open_direct(&last_chunk(dir.path())),
                direct,
                "the open chunk is written with O_DIRECT wherever the file system allows it"
            );
        }
        // Past a chunk's end too: the next chunk is written the same way.
        assert!(chunks(dir.path()) > 1);
        let mut s = open(dir.path()).unwrap();
        assert!(same(&read_all(&mut s).await, &want));
    }

    #[tokio::test]
    async fn a_new_chunk_whose_first_sector_never_reached_the_disk_is_dropped() {
        // The first sector of a chunk holds its initial record. Lost, with
        // later sectors written, the chunk was never synced: nothing in it was
        // acknowledged, and the log ends with the chunk before.
        let dir = tempfile::tempdir().unwrap();
        let s = open(dir.path()).unwrap();
        let mut next = 1;
        while chunks(dir.path()) < 2 || records_end(&s) < 4096 {
            s.append_wait((next..next + 10).map(|i| entry_sized(1, i, 2000)).collect())
                .await
                .unwrap();
            next += 10;
        }
        drop(s);
        let last = last_chunk(dir.path());
        let without = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), without.path());
        std::fs::remove_file(without.path().join(last.file_name().unwrap())).unwrap();
        let mut bytes = std::fs::read(&last).unwrap();
        bytes[..512].fill(0);
        std::fs::write(&last, &bytes).unwrap();
        let got = read_all(&mut open(dir.path()).unwrap()).await;
        let want = read_all(&mut open(without.path()).unwrap()).await;
        assert!(!want.is_empty() && same(&got, &want));
        assert!(got.last().unwrap().log_id.index < next - 1);
    }
}
