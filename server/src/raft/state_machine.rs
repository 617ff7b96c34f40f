//! openraft's view of the MVCC store. Applying is atomic per call and
//! idempotent by last-applied log id, so the store may lag the log: after a
//! crash openraft replays what was committed but not yet applied.
//!
//! Applying does not sync: what sled loses in a power cut is replayed from
//! the WAL. A snapshot is the point where the store must be durable, because
//! openraft purges the log behind it; building one syncs sled first.
//!
//! Snapshots travel as files, never whole in memory: a follower's copy is
//! dumped into an unnamed temporary file, and a received one is written to
//! `snapshot.incoming`. Installing is atomic across crashes: the received
//! file is checked and renamed to `snapshot.install` first, and removed only
//! once the store loaded from it is durable; opening the state machine
//! finishes an installation that a crash interrupted. Before the rename the
//! old content is untouched, after it the new content is certain.
// openraft's trait methods return its own (large) StorageError; helpers follow suit.
#![allow(clippy::result_large_err)]

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, SnapshotMeta};

use super::sled_sync::SledSync;
use super::types::{
    io_err, Entry, LogId, NodeId, Proto, StorageError, StoredMembership, TypeConfig,
};
use crate::mvcc::{DumpReader, Store};
use synod_proto::synodpb;

const META_APPLIED: &[u8] = b"mraft_applied";
const META_MEMBERSHIP: &[u8] = b"mraft_membership";
/// A snapshot being received from the leader.
const INCOMING: &str = "snapshot.incoming";
/// A received snapshot being loaded into the store.
const INSTALLING: &str = "snapshot.install";

type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

#[derive(Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    durable: Arc<SledSync>,
    /// Whether openraft has made its start-up call to `get_current_snapshot`.
    started: Arc<AtomicBool>,
    /// Where snapshot files are kept (the data directory).
    dir: Arc<PathBuf>,
}

fn sm_err<E: std::error::Error + 'static>(verb: ErrorVerb, e: E) -> StorageError {
    io_err(ErrorSubject::StateMachine, verb, e)
}

fn snapshot_err(e: std::io::Error) -> StorageError {
    io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e)
}

impl StateMachine {
    /// The state machine over `store`, with its snapshot files in `dir`.
    /// Finishes first an installation that a crash interrupted, so openraft
    /// never sees a half-loaded store.
    pub fn open(store: Arc<Store>, durable: Arc<SledSync>, dir: &Path) -> std::io::Result<Self> {
        let sm = StateMachine {
            store,
            durable,
            started: Arc::new(AtomicBool::new(false)),
            dir: Arc::new(dir.to_path_buf()),
        };
        match std::fs::remove_file(dir.join(INCOMING)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        if dir.join(INSTALLING).exists() {
            tracing::warn!("finishing the installation of a snapshot that a crash interrupted");
            sm.finish_install()?;
        }
        Ok(sm)
    }

    /// Makes a received snapshot the store's content: checked whole, then
    /// put in place by a rename, then loaded. Returns its size in bytes.
    fn install(&self, mut file: std::fs::File) -> std::io::Result<u64> {
        file.seek(SeekFrom::Start(0))?;
        let pairs = DumpReader::new(&mut file)?.check()?;
        let len = file.stream_position()?;
        let incoming = self.dir.join(INCOMING);
        if !same_file(&file, &incoming)? {
            // Handed a snapshot that was not received as a file of ours.
            file.seek(SeekFrom::Start(0))?;
            let mut copy = std::fs::File::create(&incoming)?;
            std::io::copy(&mut file, &mut copy)?;
            copy.sync_all()?;
        } else {
            file.sync_all()?;
        }
        std::fs::rename(&incoming, self.dir.join(INSTALLING))?;
        sync_dir(&self.dir)?;
        self.finish_install()?;
        tracing::debug!(pairs, "snapshot loaded");
        Ok(len)
    }

    /// Loads the store from `snapshot.install`, makes it durable, then
    /// removes the file: the file stays until the content it holds is safe.
    fn finish_install(&self) -> std::io::Result<()> {
        let path = self.dir.join(INSTALLING);
        let file = std::fs::File::open(&path)?;
        self.store
            .restore_from(file)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.durable.sync()?;
        std::fs::remove_file(&path)?;
        sync_dir(&self.dir)
    }

    /// A snapshot carrying only its meta (see `build_snapshot`).
    async fn meta_only(&self, meta: Meta) -> Result<Snapshot<TypeConfig>, StorageError> {
        let file = tempfile::tempfile_in(&*self.dir).map_err(snapshot_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        })
    }

    fn read_meta(&self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        // A snapshot may be built while another is installed.
        let (applied, membership) = self
            .store
            .unrestored(|| {
                let tree = self.store.tree()?;
                Ok((tree.get(META_APPLIED)?, tree.get(META_MEMBERSHIP)?))
            })
            .map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let decode = |e| sm_err(ErrorVerb::Read, e);
        let applied = match applied {
            Some(v) => bincode::deserialize(&v).map_err(decode)?,
            None => None,
        };
        let membership = match membership {
            Some(v) => bincode::deserialize(&v).map_err(decode)?,
            None => StoredMembership::default(),
        };
        Ok((applied, membership))
    }

    /// Makes everything applied so far survive a power cut.
    async fn sync(&self) -> Result<(), StorageError> {
        let durable = self.durable.clone();
        tokio::task::spawn_blocking(move || durable.sync())
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| sm_err(ErrorVerb::Write, e))
    }

    fn snapshot_meta(&self, applied: Option<LogId>, membership: StoredMembership) -> Meta {
        let snapshot_id = match applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "empty".to_string(),
        };
        SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id,
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// A snapshot is the store itself once it is durable: building one reads
    /// where the store stands and syncs it (the sync covers at least that
    /// point, as applies only move forward), so openraft may purge the log
    /// up to it. The data is dumped when a follower needs it
    /// (`get_current_snapshot`), not held in memory.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (applied, membership) = self.read_meta()?;
        self.sync().await?;
        self.meta_only(self.snapshot_meta(applied, membership))
            .await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        self.read_meta()
    }

    async fn apply<I>(
        &mut self,
        entries: I,
    ) -> Result<Vec<Proto<synodpb::BatchResponse>>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(last) = entries.last() else {
            return Ok(Vec::new());
        };
        let mut meta = vec![(
            META_APPLIED.to_vec(),
            bincode::serialize(&Some(last.log_id)).map_err(|e| sm_err(ErrorVerb::Write, e))?,
        )];
        if let Some(m) = entries.iter().rev().find_map(|e| match &e.payload {
            EntryPayload::Membership(m) => Some(StoredMembership::new(Some(e.log_id), m.clone())),
            _ => None,
        }) {
            meta.push((
                META_MEMBERSHIP.to_vec(),
                bincode::serialize(&m).map_err(|e| sm_err(ErrorVerb::Write, e))?,
            ));
        }
        // Members a membership change dropped are remembered, so the others
        // can tell them so if they come back (see api/peer.rs).
        if entries
            .iter()
            .any(|e| matches!(e.payload, EntryPayload::Membership(_)))
        {
            let ids = |m: &openraft::Membership<NodeId, openraft::BasicNode>| {
                m.nodes()
                    .map(|(id, _)| *id)
                    .collect::<std::collections::BTreeSet<_>>()
            };
            let mut known = ids(self.read_meta()?.1.membership());
            for e in &entries {
                if let EntryPayload::Membership(m) = &e.payload {
                    let now = ids(m);
                    for gone in known.difference(&now) {
                        meta.push((crate::mvcc::removed_key(*gone), Vec::new()));
                    }
                    known = now;
                }
            }
        }
        let batches = entries.iter().map(|e| match &e.payload {
            EntryPayload::Normal(b) => Some(&b.0),
            _ => None,
        });
        let out = self
            .store
            .apply(batches, meta)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        Ok(out.into_iter().map(Proto).collect())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let file = tokio::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.dir.join(INCOMING))
            .await
            .map_err(snapshot_err)?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        let file = snapshot.into_std().await;
        let sm = self.clone();
        let bytes = tokio::task::spawn_blocking(move || sm.install(file))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(snapshot_err)?;
        tracing::info!(
            last_log = ?meta.last_log_id,
            bytes,
            "installed a snapshot from the leader"
        );
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        // openraft calls this once while starting (storage/helper.rs,
        // get_initial_state) and keeps only the meta; dumping the whole store
        // there would cost a copy of it at every boot. The store is durable,
        // so a snapshot of it "exists" up to what it has applied.
        if !self.started.swap(true, Ordering::SeqCst) {
            let (applied, membership) = self.read_meta()?;
            if applied.is_none() {
                return Ok(None);
            }
            return Ok(Some(
                self.meta_only(self.snapshot_meta(applied, membership))
                    .await?,
            ));
        }
        // For a follower: one consistent dump, carrying its own applied id
        // and membership, in a file that is gone once openraft drops it.
        let sm = self.clone();
        let (file, applied, membership) = tokio::task::spawn_blocking(move || {
            let mut file = tempfile::tempfile_in(&*sm.dir).map_err(snapshot_err)?;
            let (mut applied, mut membership) = (None, None);
            sm.store
                .write_dump(&mut file, |k, v| {
                    if k == META_APPLIED {
                        applied = Some(v.to_vec());
                    } else if k == META_MEMBERSHIP {
                        membership = Some(v.to_vec());
                    }
                })
                .map_err(|e| sm_err(ErrorVerb::Read, e))?;
            file.seek(SeekFrom::Start(0)).map_err(snapshot_err)?;
            Ok::<_, StorageError>((file, applied, membership))
        })
        .await
        .map_err(|e| sm_err(ErrorVerb::Read, e))??;
        let applied: Option<LogId> = match applied {
            Some(v) => bincode::deserialize(&v).map_err(|e| sm_err(ErrorVerb::Read, e))?,
            None => None,
        };
        if applied.is_none() {
            return Ok(None);
        }
        let membership: StoredMembership = match membership {
            Some(v) => bincode::deserialize(&v).map_err(|e| sm_err(ErrorVerb::Read, e))?,
            None => StoredMembership::default(),
        };
        Ok(Some(Snapshot {
            meta: self.snapshot_meta(applied, membership),
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

fn same_file(file: &std::fs::File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let a = file.metadata()?;
    Ok(std::fs::metadata(path)
        .map(|b| a.ino() == b.ino() && a.dev() == b.dev())
        .unwrap_or(false))
}

/// Makes a rename or removal in `dir` survive a power cut.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use openraft::CommittedLeaderId;
    use synod_proto::etcdserverpb::PutRequest;

    use super::*;

    fn open(dir: &Path, db: &sled::Db) -> StateMachine {
        let store = Store::open(db.open_tree("sm").unwrap()).unwrap();
        let durable = SledSync::new(db.clone(), &dir.join("db")).unwrap();
        StateMachine::open(Arc::new(store), Arc::new(durable), dir).unwrap()
    }

    fn new_member() -> (tempfile::TempDir, sled::Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new()
            .path(dir.path().join("db"))
            .open()
            .unwrap();
        (dir, db)
    }

    async fn put_all(sm: &mut StateMachine, value: &str) {
        let entries = (1..=50).map(|i| Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
            payload: EntryPayload::Normal(Proto(synodpb::Batch {
                requests: vec![synodpb::Request {
                    op: Some(synodpb::request::Op::Put(PutRequest {
                        key: format!("k{}", i % 20).into_bytes(),
                        value: value.repeat(i as usize).into_bytes(),
                        ..Default::default()
                    })),
                }],
            })),
        });
        sm.apply(entries).await.unwrap();
    }

    /// The leader's snapshot, as a follower would be sent it.
    async fn leader_snapshot() -> (Vec<u8>, crate::mvcc::Pairs) {
        let (dir, db) = new_member();
        let mut leader = open(dir.path(), &db);
        put_all(&mut leader, "new").await;
        // The first call is openraft's start-up one, which carries no data.
        leader.get_current_snapshot().await.unwrap();
        let snap = leader.get_current_snapshot().await.unwrap().unwrap();
        let mut bytes = Vec::new();
        snap.snapshot
            .into_std()
            .await
            .read_to_end(&mut bytes)
            .unwrap();
        (bytes, leader.store.dump().unwrap())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_crash_while_installing_leaves_the_old_or_the_new_store_whole() {
        let (snapshot, new) = leader_snapshot().await;
        let (dir, db) = new_member();
        let dir = dir.path();
        let mut follower = open(dir, &db);
        put_all(&mut follower, "old").await;
        let old = follower.store.dump().unwrap();
        assert!(old != new);

        // A crash while receiving: the old content stays, the part is dropped.
        std::fs::write(dir.join(INCOMING), &snapshot[..snapshot.len() / 2]).unwrap();
        let follower = open(dir, &db);
        assert!(follower.store.dump().unwrap() == old, "not the old content");
        assert!(!dir.join(INCOMING).exists());

        // A torn transfer is refused before anything changes.
        let mut torn = tempfile::tempfile().unwrap();
        torn.write_all(&snapshot[..snapshot.len() - 1]).unwrap();
        assert!(follower.install(torn).is_err());
        assert!(follower.store.dump().unwrap() == old, "not the old content");
        let mut longer = tempfile::tempfile().unwrap();
        longer.write_all(&snapshot).unwrap();
        longer.write_all(b"x").unwrap();
        assert!(follower.install(longer).is_err());
        assert!(follower.store.dump().unwrap() == old, "not the old content");

        // A crash half way through loading a checked snapshot: the next
        // start finishes it.
        std::fs::write(dir.join(INSTALLING), &snapshot).unwrap();
        let half = &snapshot[..snapshot.len() / 2];
        assert!(follower.store.restore_from(half).is_err());
        assert!(
            follower.store.dump().is_err(),
            "a half-installed store serves"
        );
        let half_store: Vec<(Vec<u8>, Vec<u8>)> = db
            .open_tree("sm")
            .unwrap()
            .iter()
            .map(|p| p.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        assert!(half_store != old && half_store != new);
        let follower = open(dir, &db);
        assert!(follower.store.dump().unwrap() == new, "not the new content");
        assert!(!dir.join(INSTALLING).exists());

        // And the whole way through, with a file received as openraft does.
        let (dir, db) = new_member();
        let dir = dir.path();
        let mut follower = open(dir, &db);
        put_all(&mut follower, "old").await;
        let mut file = follower.begin_receiving_snapshot().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut file, &snapshot)
            .await
            .unwrap();
        let meta = follower.snapshot_meta(None, StoredMembership::default());
        follower.install_snapshot(&meta, file).await.unwrap();
        assert!(follower.store.dump().unwrap() == new, "not the new content");
        assert!(!dir.join(INCOMING).exists() && !dir.join(INSTALLING).exists());
        assert!(
            open(dir, &db).store.dump().unwrap() == new,
            "not the new content"
        );
    }
}
