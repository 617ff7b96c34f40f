//! openraft's view of the MVCC store. Applying is atomic per call and
//! idempotent by last-applied log id, so the store may lag the log: after a
//! crash openraft replays what was committed but not yet applied.
//!
//! Applying does not sync: what sled loses in a power cut is replayed from
//! the WAL. A snapshot is the point where the store must be durable, because
//! openraft purges the log behind it; building one syncs sled first.
// openraft's trait methods return its own (large) StorageError; helpers follow suit.
#![allow(clippy::result_large_err)]

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder, SnapshotMeta};

use super::sled_sync::SledSync;
use super::types::{
    io_err, Entry, LogId, NodeId, Proto, StorageError, StoredMembership, TypeConfig,
};
use crate::mvcc::Store;
use synod_proto::synodpb;

const META_APPLIED: &[u8] = b"mraft_applied";
const META_MEMBERSHIP: &[u8] = b"mraft_membership";

type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

#[derive(Clone)]
pub struct StateMachine {
    store: Arc<Store>,
    durable: Arc<SledSync>,
    /// Whether openraft has made its start-up call to `get_current_snapshot`.
    started: Arc<AtomicBool>,
}

fn sm_err<E: std::error::Error + 'static>(verb: ErrorVerb, e: E) -> StorageError {
    io_err(ErrorSubject::StateMachine, verb, e)
}

impl StateMachine {
    pub fn new(store: Arc<Store>, durable: Arc<SledSync>) -> Self {
        StateMachine {
            store,
            durable,
            started: Arc::new(AtomicBool::new(false)),
        }
    }

    fn read_meta(&self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let tree = self.store.tree();
        let applied = match tree
            .get(META_APPLIED)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
        {
            Some(v) => bincode::deserialize(&v).map_err(|e| sm_err(ErrorVerb::Read, e))?,
            None => None,
        };
        let membership = match tree
            .get(META_MEMBERSHIP)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
        {
            Some(v) => bincode::deserialize(&v).map_err(|e| sm_err(ErrorVerb::Read, e))?,
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
        Ok(Snapshot {
            meta: self.snapshot_meta(applied, membership),
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let pairs: crate::mvcc::Pairs =
            bincode::deserialize(snapshot.get_ref()).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        self.store
            .restore(pairs)
            .map_err(|e| sm_err(ErrorVerb::Write, e))?;
        tracing::info!(
            last_log = ?meta.last_log_id,
            bytes = snapshot.get_ref().len(),
            "installed a snapshot from the leader"
        );
        // openraft purges the log behind an installed snapshot.
        self.sync().await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        // openraft calls this once while starting (storage/helper.rs,
        // get_initial_state) and keeps only the meta; dumping the whole store
        // there would cost a copy of it at every boot. The store is durable,
        // so a snapshot of it "exists" up to what it has applied.
        if !self.started.swap(true, Ordering::SeqCst) {
            let (applied, membership) = self.read_meta()?;
            return Ok(applied.map(|_| Snapshot {
                meta: self.snapshot_meta(applied, membership),
                snapshot: Box::new(Cursor::new(Vec::new())),
            }));
        }
        // For a follower: one consistent dump, carrying its own applied id
        // and membership.
        let pairs = self.store.dump().map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let find = |k: &[u8]| pairs.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone());
        let applied: Option<LogId> = match find(META_APPLIED) {
            Some(v) => bincode::deserialize(&v).map_err(|e| sm_err(ErrorVerb::Read, e))?,
            None => None,
        };
        if applied.is_none() {
            return Ok(None);
        }
        let membership: StoredMembership = match find(META_MEMBERSHIP) {
            Some(v) => bincode::deserialize(&v).map_err(|e| sm_err(ErrorVerb::Read, e))?,
            None => StoredMembership::default(),
        };
        let data = bincode::serialize(&pairs).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta: self.snapshot_meta(applied, membership),
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
