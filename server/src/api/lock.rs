//! etcd's `v3lockpb.Lock` service: a mutex on the caller's lease, with the
//! key layout of etcd's concurrency package (`NAME/LEASE_HEX`), so locks
//! taken here, through etcd's client libraries or with `etcdctl lock` on the
//! same name exclude each other. The server never keeps the lease alive:
//! the caller does, and the lock ends with it.

use std::sync::Arc;

use synod_proto::etcdserverpb::TxnRequest;
use synod_proto::v3lockpb::lock_server::Lock;
use synod_proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use tonic::{Request, Response, Status};

use super::concurrency::{
    create_rev_is, first_created, get_key, op_get, op_put, range_kv, session_expired, session_key,
    Cleanup, Recipes,
};
use super::lease::LeaseIds;
use crate::error::EtcdError;
use crate::raft::Node;

pub struct LockService {
    r: Recipes,
}

impl LockService {
    pub fn new(node: Arc<Node>, lease_ids: Arc<LeaseIds>) -> Self {
        LockService {
            r: Recipes { node, lease_ids },
        }
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let req = req.into_inner();
        let mut pfx = req.name;
        pfx.push(b'/');
        let lease = self.r.session(req.lease).await?;
        let key = session_key(&pfx, lease);
        // Put our key if the lease has none yet (the same lease twice is one
        // acquisition), and read the holder in the same round.
        let resp = self
            .r
            .txn(TxnRequest {
                compare: vec![create_rev_is(&key, 0)],
                success: vec![op_put(&key, b"", lease), op_get(first_created(&pfx))],
                failure: vec![op_get(get_key(&key)), op_get(first_created(&pfx))],
            })
            .await?;
        let header = resp.header.unwrap_or_default();
        let my_rev = if resp.succeeded {
            header.revision
        } else {
            range_kv(&resp, 0)
                .map(|kv| kv.create_revision)
                .ok_or_else(|| EtcdError::Internal("lock key vanished".into()).status())?
        };
        let holder = range_kv(&resp, 1).map(|kv| kv.create_revision);
        if holder.is_none_or(|rev| rev == my_rev) {
            return Ok(Response::new(LockResponse {
                header: Some(header),
                key,
            }));
        }
        let cleanup = Cleanup::new(self.r.node.clone(), key, my_rev);
        self.r
            .wait_deletes(&pfx, my_rev - 1, &cleanup.key, my_rev)
            .await?;
        // The lease may have ended while we waited (etcd #11456): answering
        // now would hand out a lock nobody holds.
        let (header, kvs) = self.r.get(&get_key(&cleanup.key)).await?;
        if kvs.first().is_none_or(|kv| kv.create_revision != my_rev) {
            return Err(session_expired());
        }
        let key = cleanup.key.clone();
        cleanup.disarm();
        Ok(Response::new(LockResponse {
            header: Some(header),
            key,
        }))
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let req = req.into_inner();
        let header = self.r.delete(&req.key).await?;
        Ok(Response::new(UnlockResponse {
            header: Some(header),
        }))
    }
}
