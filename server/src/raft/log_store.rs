//! The Raft log and vote in sled, made durable with fdatasync.
//!
//! sled's `flush` ends in `sync_file_range`, which survives a killed process
//! but not a power cut; etcd fdatasyncs its WAL before acknowledging, and so
//! do we: after each flush the database file is fdatasync'ed. One flush
//! covers every tree of the `Db`, so state-machine writes made since the last
//! append ride along for free.
// openraft's trait methods return its own (large) StorageError; helpers follow suit.
#![allow(clippy::result_large_err)]

use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogReader, Vote};

use super::types::{io_err, Entry, LogId, NodeId, StorageError, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

#[derive(Clone)]
pub struct LogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    file: Arc<File>,
    blobs: Arc<Blobs>,
}

/// sled writes a message larger than a quarter segment (~128 KiB: a big
/// batch, value or node) to a file of its own under `blobs/`, without any
/// fsync; its flush covers only the main file. These files must reach the
/// disk too before a write is acknowledged.
struct Blobs {
    dir: PathBuf,
    synced: Mutex<HashSet<OsString>>,
}

impl Blobs {
    fn sync(&self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut synced = self.synced.lock().unwrap_or_else(|e| e.into_inner());
        let mut present = HashSet::new();
        let mut new = false;
        for entry in entries {
            let name = entry?.file_name();
            if !synced.contains(&name) {
                match File::open(self.dir.join(&name)) {
                    Ok(f) => f.sync_data()?,
                    // Removed by sled's GC meanwhile: nothing to keep.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new = true;
            }
            present.insert(name);
        }
        if new {
            File::open(&self.dir)?.sync_all()?;
        }
        *synced = present;
        Ok(())
    }
}

impl LogStore {
    /// `db_dir` is sled's directory: its `db` file holds almost everything,
    /// and `blobs/` one file per message too large for a log segment.
    pub fn new(db: sled::Db, db_dir: &Path) -> std::io::Result<Self> {
        let data_file = File::open(db_dir.join("db"))?;
        Ok(LogStore {
            log: db.open_tree("raft_log").map_err(std::io::Error::other)?,
            meta: db.open_tree("raft_meta").map_err(std::io::Error::other)?,
            db,
            file: Arc::new(data_file),
            blobs: Arc::new(Blobs {
                dir: db_dir.join("blobs"),
                synced: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Flushes sled and fdatasyncs its file: after this returns, everything
    /// written before the call survives a power cut.
    async fn sync(&self, subject: ErrorSubject<NodeId>) -> Result<(), StorageError> {
        let db = self.db.clone();
        let file = self.file.clone();
        let blobs = self.blobs.clone();
        let res = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            db.flush().map_err(std::io::Error::other)?;
            file.sync_data()?;
            blobs.sync()
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r);
        res.map_err(|e| io_err(subject, ErrorVerb::Write, e))
    }

    fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        let subject = ErrorSubject::Store;
        match self
            .meta
            .get(key)
            .map_err(|e| io_err(subject.clone(), ErrorVerb::Read, e))?
        {
            Some(v) => bincode::deserialize(&v)
                .map(Some)
                .map_err(|e| io_err(subject, ErrorVerb::Read, e)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, key: &[u8], v: &T) -> Result<(), StorageError> {
        let bytes =
            bincode::serialize(v).map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        self.meta
            .insert(key, bytes)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))?;
        Ok(())
    }

    fn last_entry(&self) -> Result<Option<Entry>, StorageError> {
        match self
            .log
            .last()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
        {
            Some((_, v)) => bincode::deserialize(&v)
                .map(Some)
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e)),
            None => Ok(None),
        }
    }

    fn remove_range(&self, from: u64, to_excl: Option<u64>) -> Result<(), StorageError> {
        let start = from.to_be_bytes();
        let keys: Result<Vec<sled::IVec>, sled::Error> = match to_excl {
            Some(end) => self.log.range(start..end.to_be_bytes()).keys().collect(),
            None => self.log.range(start..).keys().collect(),
        };
        let keys = keys.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(k);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

fn index_bound(b: Bound<&u64>) -> Bound<[u8; 8]> {
    match b {
        Bound::Included(i) => Bound::Included(i.to_be_bytes()),
        Bound::Excluded(i) => Bound::Excluded(i.to_be_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let bounds = (
            index_bound(range.start_bound()),
            index_bound(range.end_bound()),
        );
        let mut out = Vec::new();
        for item in self.log.range::<[u8; 8], _>(bounds) {
            let (_, v) = item.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            let entry: Entry = bincode::deserialize(&v)
                .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            out.push(entry);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged: Option<LogId> = self.get_meta(LAST_PURGED)?;
        let last = self.last_entry()?.map(|e| e.log_id).or(last_purged);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_meta(VOTE, vote)?;
        self.sync(ErrorSubject::Vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_meta(VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: losing it only means re-learning the commit point.
        self.put_meta(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_meta::<Option<LogId>>(COMMITTED)?.flatten())
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
        let mut batch = sled::Batch::default();
        for e in entries {
            let bytes = bincode::serialize(&e)
                .map_err(|err| io_err(ErrorSubject::Logs, ErrorVerb::Write, err))?;
            batch.insert(&e.log_id.index.to_be_bytes(), bytes);
        }
        self.log
            .apply_batch(batch)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        let res = self.sync(ErrorSubject::Logs).await;
        callback.log_io_completed(
            res.as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string())),
        );
        res
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove_range(log_id.index, None)?;
        self.sync(ErrorSubject::Logs).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Record the purge point durably first: a restart between the two
        // steps must not find entries missing below an unrecorded point.
        self.put_meta(LAST_PURGED, &log_id)?;
        self.sync(ErrorSubject::Logs).await?;
        self.remove_range(0, Some(log_id.index + 1))
    }
}
