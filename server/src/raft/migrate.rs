//! Moves a Raft log kept in sled (Synod before the WAL) into the WAL, once,
//! when a data directory written by an older Synod is opened.
// openraft's trait methods return its own (large) StorageError; helpers follow suit.
#![allow(clippy::result_large_err)]

use std::io;
use std::path::Path;

use openraft::storage::RaftLogStorage;
use openraft::Vote;

use super::types::{Entry, LogId, NodeId};
use super::wal_store::WalStore;

/// The trees and keys the sled log used.
const LOG_TREE: &[u8] = b"raft_log";
const META_TREE: &[u8] = b"raft_meta";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";

/// Entries copied per append, so a long log is not held in memory at once.
const CHUNK: usize = 1000;

fn other<E: std::fmt::Display>(e: E) -> io::Error {
    io::Error::other(e.to_string())
}

fn meta<T: serde::de::DeserializeOwned>(tree: &sled::Tree, key: &[u8]) -> io::Result<Option<T>> {
    match tree.get(key).map_err(other)? {
        Some(v) => bincode::deserialize(&v).map(Some).map_err(other),
        None => Ok(None),
    }
}

/// Copies the sled log into a new WAL at `wal_dir` and then drops it from
/// sled. The WAL is written beside `wal_dir` and renamed into place only when
/// complete and synced, so a crash part way leaves the sled log in charge
/// and the copy is made again at the next start. Returns whether a log was
/// moved.
pub async fn sled_log_to_wal(db: &sled::Db, wal_dir: &Path) -> io::Result<bool> {
    let had_log = db.tree_names().iter().any(|n| n == META_TREE);
    if wal_dir.exists() {
        // A crash after the rename but before the drop left the old copy.
        if had_log {
            db.drop_tree(LOG_TREE).map_err(other)?;
            db.drop_tree(META_TREE).map_err(other)?;
        }
        return Ok(false);
    }
    if !had_log {
        return Ok(false);
    }
    let meta_tree = db.open_tree(META_TREE).map_err(other)?;
    let log_tree = db.open_tree(LOG_TREE).map_err(other)?;
    let tmp = wal_dir.with_extension("migrating");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let mut wal = WalStore::open(&tmp)?;
    if let Some(vote) = meta::<Vote<NodeId>>(&meta_tree, VOTE)? {
        wal.save_vote(&vote).await.map_err(other)?;
    }
    let purged = meta::<LogId>(&meta_tree, LAST_PURGED)?;
    if let Some(p) = purged {
        wal.purge(p).await.map_err(other)?;
    }
    // Entries at or below the purge point may remain when the old store
    // crashed between recording the point and removing them.
    let first = purged.map_or(0, |p| p.index + 1);
    let mut entries = Vec::with_capacity(CHUNK);
    let mut moved = 0u64;
    for item in log_tree.range(first.to_be_bytes()..) {
        let (_, v) = item.map_err(other)?;
        entries.push(bincode::deserialize::<Entry>(&v).map_err(other)?);
        if entries.len() == CHUNK {
            moved += entries.len() as u64;
            wal.append_wait(std::mem::take(&mut entries))
                .await
                .map_err(other)?;
        }
    }
    moved += entries.len() as u64;
    wal.append_wait(entries).await.map_err(other)?;
    if let Some(c) = meta::<Option<LogId>>(&meta_tree, COMMITTED)?.flatten() {
        wal.save_committed(Some(c)).await.map_err(other)?;
    }
    wal.sync().await.map_err(other)?;
    drop(wal);
    std::fs::rename(&tmp, wal_dir)?;
    if let Some(parent) = wal_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    db.drop_tree(LOG_TREE).map_err(other)?;
    db.drop_tree(META_TREE).map_err(other)?;
    tracing::info!(entries = moved, "moved the Raft log from sled into the WAL");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
    use synod_proto::synodpb;

    use super::*;
    use crate::raft::types::Proto;

    fn entry(index: u64) -> Entry {
        let batch = synodpb::Batch {
            requests: vec![synodpb::Request {
                op: Some(synodpb::request::Op::Put(
                    synod_proto::etcdserverpb::PutRequest {
                        key: format!("k{index}").into_bytes(),
                        ..Default::default()
                    },
                )),
            }],
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(2, 1), index),
            payload: EntryPayload::Normal(Proto(batch)),
        }
    }

    /// Writes a log the way the sled log store did.
    fn old_layout(db: &sled::Db, purged: u64, last: u64) {
        let meta = db.open_tree(META_TREE).unwrap();
        let log = db.open_tree(LOG_TREE).unwrap();
        let id = |i| LogId::new(CommittedLeaderId::new(2, 1), i);
        meta.insert(
            VOTE,
            bincode::serialize(&Vote::<NodeId>::new_committed(2, 1)).unwrap(),
        )
        .unwrap();
        meta.insert(LAST_PURGED, bincode::serialize(&id(purged)).unwrap())
            .unwrap();
        meta.insert(COMMITTED, bincode::serialize(&Some(id(last - 1))).unwrap())
            .unwrap();
        // One entry below the purge point, as a crash mid-purge leaves it.
        for i in purged..=last {
            log.insert(i.to_be_bytes(), bincode::serialize(&entry(i)).unwrap())
                .unwrap();
        }
    }

    #[tokio::test]
    async fn the_sled_log_moves_into_the_wal_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        old_layout(&db, 10, 2_500);
        let wal_dir = dir.path().join("wal");
        assert!(sled_log_to_wal(&db, &wal_dir).await.unwrap());
        assert!(!db
            .tree_names()
            .iter()
            .any(|n| n == META_TREE || n == LOG_TREE));
        assert!(
            !sled_log_to_wal(&db, &wal_dir).await.unwrap(),
            "moved twice"
        );

        let mut wal = WalStore::open(&wal_dir).unwrap();
        let id = |i| LogId::new(CommittedLeaderId::new(2, 1), i);
        assert_eq!(
            wal.read_vote().await.unwrap(),
            Some(Vote::new_committed(2, 1))
        );
        assert_eq!(wal.read_committed().await.unwrap(), Some(id(2_499)));
        let st = wal.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id, Some(id(10)));
        assert_eq!(st.last_log_id, Some(id(2_500)));
        let got = wal.try_get_log_entries(..).await.unwrap();
        let want: Vec<u64> = (11..=2_500).collect();
        assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), want);
        assert_eq!(
            bincode::serialize(&got[5]).unwrap(),
            bincode::serialize(&entry(16)).unwrap()
        );
    }

    #[tokio::test]
    async fn a_move_cut_short_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        old_layout(&db, 0, 50);
        let wal_dir = dir.path().join("wal");
        // A crash left a half-written copy beside the WAL's place.
        let half = WalStore::open(&wal_dir.with_extension("migrating")).unwrap();
        half.append_wait(vec![entry(1)]).await.unwrap();
        drop(half);
        assert!(sled_log_to_wal(&db, &wal_dir).await.unwrap());
        let mut wal = WalStore::open(&wal_dir).unwrap();
        let got = wal.try_get_log_entries(..).await.unwrap();
        assert_eq!(got.len(), 50);
        assert!(!wal_dir.with_extension("migrating").exists());
    }

    #[tokio::test]
    async fn a_new_directory_has_nothing_to_move() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        assert!(!sled_log_to_wal(&db, &dir.path().join("wal")).await.unwrap());
        assert!(!dir.path().join("wal").exists());
    }
}
