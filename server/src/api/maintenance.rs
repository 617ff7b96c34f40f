use std::pin::Pin;
use std::sync::Arc;

use synod_proto::etcdserverpb::maintenance_server::Maintenance;
use synod_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::error::EtcdError;
use crate::raft::Node;

/// The etcd API level Synod speaks; clients gate features on this string.
pub const ETCD_API_VERSION: &str = "3.5.0";
const SNAPSHOT_CHUNK: usize = 64 * 1024;

pub struct MaintenanceService {
    node: Arc<Node>,
}

impl MaintenanceService {
    pub fn new(node: Arc<Node>) -> Self {
        MaintenanceService { node }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// Through the log, as etcd does, whatever the action: alarms are the
    /// cluster's, kept in the store.
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let req = synod_proto::synodpb::Request {
            op: Some(synod_proto::synodpb::request::Op::Alarm(req.into_inner())),
        };
        match self.node.propose(req).await? {
            synod_proto::synodpb::response::Op::Alarm(resp) => Ok(Response::new(resp)),
            other => Err(Status::internal(format!("unexpected answer: {other:?}"))),
        }
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let m = self.node.raft.metrics().borrow().clone();
        let db_size = self.node.db.size_on_disk().unwrap_or(0) as i64;
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header(self.node.store.current_rev())),
            version: ETCD_API_VERSION.to_string(),
            db_size,
            db_size_in_use: db_size,
            leader: self.node.status_leader(),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map_or(0, |l| l.index),
            ..Default::default()
        }))
    }

    /// sled reclaims space on its own; there is nothing to stop the world for.
    async fn defragment(
        &self,
        _req: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Ok(Response::new(DefragmentResponse {
            header: Some(self.node.header(self.node.store.current_rev())),
        }))
    }

    /// etcd's leadership transfer, asked of the leader (etcdctl finds it).
    async fn move_leader(
        &self,
        req: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        self.node.move_leader(req.into_inner().target_id).await?;
        Ok(Response::new(MoveLeaderResponse {
            header: Some(self.node.header(self.node.store.current_rev())),
        }))
    }

    /// The hash of everything stored, for comparing members (python-etcd3's
    /// `hash()` calls it). Like etcd's, it is meant for tests: it reads the
    /// whole store, in a blocking thread so requests keep being served.
    async fn hash(&self, _req: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        self.node.read_index().await?;
        let node = self.node.clone();
        let (hash, rev) = tokio::task::spawn_blocking(move || node.store.hash_all())
            .await
            .map_err(|e| EtcdError::Internal(format!("hash: {e}")))??;
        Ok(Response::new(HashResponse {
            header: Some(self.node.header(rev)),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let req = req.into_inner();
        let store = &self.node.store;
        // The hash covers what storage holds, as etcd's does once its
        // compaction has finished: records still waiting for the background
        // deletion would make it differ from etcd's for the same history.
        store.compaction_done().await;
        let store = store.clone();
        let (hash, rev, compact) =
            tokio::task::spawn_blocking(move || hash_kv(&store, req.revision))
                .await
                .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(HashKvResponse {
            header: Some(self.node.header(self.node.store.current_rev())),
            hash,
            compact_revision: compact,
            hash_revision: rev,
        }))
    }

    /// Streams a consistent copy of the store (Synod's own format: the
    /// state machine's key/value pairs), in chunks with the bytes remaining.
    /// The copy is written to a temporary file first (under the store's read
    /// lock, as one consistent view), never held in memory whole.
    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let store = self.node.store.clone();
        let (file, total, rev) = tokio::task::spawn_blocking(move || write_snapshot(&store))
            .await
            .map_err(|e| Status::internal(e.to_string()))??;
        let header = self.node.header(rev);
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || send_snapshot(file, total, header, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// etcd's HashKV: CRC-32C over the bucket name, then every stored revision up
/// to `rev` as bbolt holds it (main, '_', sub, 't' for a tombstone) with its
/// KeyValue; a tombstone's value is the bare key. Revisions at or below the
/// compaction count only if they are still what their key shows at `rev`
/// (etcd's `Keep(rev)`), unless no key shows anything. Synod stores the same
/// revisions, so the hashes agree with etcd's for the same history. Streams
/// the records from storage, with the background compaction held off so the
/// history does not change under the scan. Returns the hash, the revision it
/// covers and the compaction point.
fn hash_kv(
    store: &crate::mvcc::Store,
    revision: i64,
) -> Result<(u32, i64, i64), crate::error::EtcdError> {
    use prost::Message;
    // A snapshot install during the scan would hide records from it.
    store.unrestored(|| {
        let _held = store.hold_compaction();
        let (rev, compact, visible) = {
            let st = store.read();
            let rev = crate::mvcc::check_rev(&st, revision, st.rev)?;
            let visible: std::collections::HashSet<crate::mvcc::Rev> = st
                .index
                .range(crate::mvcc::KeyRange::From(&[0]), rev)
                .map(|(_, r)| r)
                .collect();
            (rev, st.compact_rev, visible)
        };
        let any_visible = !visible.is_empty();
        let mut hash = crc32c::crc32c(b"key");
        store.each_revision(1, rev, |r, kv, tombstone| {
            if r.main <= compact && any_visible && !visible.contains(&r) {
                return;
            }
            let mut k = Vec::with_capacity(18);
            k.extend_from_slice(&(r.main as u64).to_be_bytes());
            k.push(b'_');
            k.extend_from_slice(&(r.sub as u64).to_be_bytes());
            let v = if tombstone {
                k.push(b't');
                synod_proto::mvccpb::KeyValue {
                    key: kv.key,
                    ..Default::default()
                }
                .encode_to_vec()
            } else {
                kv.encode_to_vec()
            };
            hash = crc32c::crc32c_append(hash, &k);
            hash = crc32c::crc32c_append(hash, &v);
        })?;
        Ok((hash, rev, compact))
    })
}

/// The snapshot body in an unnamed temporary file, its length and revision:
/// the store's pairs, padded to 512-byte pages and followed by the SHA-256 of
/// all that, as etcd clients expect (they check `size % 512 == 32`).
fn write_snapshot(store: &crate::mvcc::Store) -> Result<(std::fs::File, u64, i64), Status> {
    use sha2::{Digest, Sha256};
    use std::io::{Read, Seek, SeekFrom, Write};
    let io = |e: std::io::Error| Status::internal(format!("snapshot file: {e}"));
    let mut file = tempfile::tempfile().map_err(io)?;
    let rev = store.write_dump(&mut file, |_, _| {})?;
    let len = file.stream_position().map_err(io)?;
    let padded = len.div_ceil(512) * 512;
    file.write_all(&vec![0; (padded - len) as usize])
        .map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
    }
    file.write_all(&sha.finalize()).map_err(io)?;
    let total = file.stream_position().map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok((file, total, rev))
}

/// Reads the snapshot file out in chunks to the response stream; stops early
/// if the client goes away.
fn send_snapshot(
    mut file: std::fs::File,
    total: u64,
    header: synod_proto::etcdserverpb::ResponseHeader,
    tx: tokio::sync::mpsc::Sender<Result<SnapshotResponse, Status>>,
) {
    use std::io::Read;
    let mut sent = 0u64;
    while sent < total {
        let mut blob = vec![0; SNAPSHOT_CHUNK.min((total - sent) as usize)];
        if let Err(e) = file.read_exact(&mut blob) {
            let _ = tx.blocking_send(Err(Status::internal(format!("snapshot file: {e}"))));
            return;
        }
        sent += blob.len() as u64;
        let chunk = SnapshotResponse {
            header: Some(header),
            remaining_bytes: total - sent,
            blob,
            version: ETCD_API_VERSION.to_string(),
        };
        if tx.blocking_send(Ok(chunk)).is_err() {
            return;
        }
    }
}
