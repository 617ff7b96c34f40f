use std::pin::Pin;
use std::sync::{Arc, Mutex};

use synod_proto::etcdserverpb::alarm_request::AlarmAction;
use synod_proto::etcdserverpb::maintenance_server::Maintenance;
use synod_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, HashKvRequest,
    HashKvResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::raft::Node;

/// The etcd API level Synod speaks; clients gate features on this string.
pub const ETCD_API_VERSION: &str = "3.5.0";
const SNAPSHOT_CHUNK: usize = 64 * 1024;

pub struct MaintenanceService {
    node: Arc<Node>,
    alarms: Mutex<Vec<AlarmMember>>,
}

impl MaintenanceService {
    pub fn new(node: Arc<Node>) -> Self {
        MaintenanceService {
            node,
            alarms: Mutex::new(Vec::new()),
        }
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, req: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let req = req.into_inner();
        let mut alarms = self.alarms.lock().unwrap_or_else(|e| e.into_inner());
        let member = AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        match AlarmAction::try_from(req.action).unwrap_or(AlarmAction::Get) {
            AlarmAction::Get => {}
            AlarmAction::Activate => {
                if req.alarm != 0 && !alarms.contains(&member) {
                    alarms.push(member);
                }
            }
            AlarmAction::Deactivate => alarms.retain(|a| a != &member),
        }
        let list = alarms
            .iter()
            .filter(|a| req.alarm == 0 || a.alarm == req.alarm)
            .cloned()
            .collect();
        Ok(Response::new(AlarmResponse {
            // etcd 3.4 sends alarm answers without a header.
            header: None,
            alarms: list,
        }))
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
            leader: m.current_leader.unwrap_or(0),
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

    async fn hash_kv(
        &self,
        req: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let req = req.into_inner();
        let store = &self.node.store;
        let (rev, compact) = {
            let st = store.read();
            (
                crate::mvcc::check_rev(&st, req.revision, st.rev)?,
                st.compact_rev,
            )
        };
        let mut hasher = crc32fast::Hasher::new();
        for (kv, tombstone) in store.history(compact.max(1), rev)? {
            use prost::Message;
            hasher.update(&[tombstone as u8]);
            hasher.update(&kv.encode_to_vec());
        }
        Ok(Response::new(HashKvResponse {
            header: Some(self.node.header(store.current_rev())),
            hash: hasher.finalize(),
            compact_revision: compact,
            hash_revision: rev,
        }))
    }

    /// Streams a consistent copy of the store (Synod's own format: the
    /// state machine's key/value pairs), in chunks with the bytes remaining.
    async fn snapshot(
        &self,
        _req: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        use sha2::{Digest, Sha256};
        let pairs = self.node.store.dump()?;
        let mut data = bincode::serialize(&pairs).map_err(|e| Status::internal(e.to_string()))?;
        // etcd clients expect a body in 512-byte pages followed by its
        // SHA-256 (they check `size % 512 == 32`); pad to match.
        data.resize(data.len().div_ceil(512) * 512, 0);
        let digest = Sha256::digest(&data);
        data.extend_from_slice(&digest);
        let header = self.node.header(self.node.store.current_rev());
        let total = data.len();
        let chunks: Vec<Result<SnapshotResponse, Status>> = data
            .chunks(SNAPSHOT_CHUNK)
            .enumerate()
            .map(|(i, c)| {
                Ok(SnapshotResponse {
                    header: Some(header),
                    remaining_bytes: (total - (i * SNAPSHOT_CHUNK + c.len())) as u64,
                    blob: c.to_vec(),
                    version: ETCD_API_VERSION.to_string(),
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}
