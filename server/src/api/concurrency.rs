//! What the Lock and Election services share, as etcd's `client/v3/concurrency`
//! package is shared by its v3lock and v3election servers: keys named
//! `PREFIX + lease id in hex`, the holder being the key with the lowest create
//! revision, and waiting that watches only the predecessor.
//!
//! etcd runs these recipes through a client connected to itself; here they
//! propose to Raft and read the store directly, and wait on the apply path's
//! change feed instead of a watch stream.

use std::sync::Arc;

use synod_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use synod_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use synod_proto::etcdserverpb::{
    request_op, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
    RequestOp, ResponseHeader, TxnRequest, TxnResponse,
};
use synod_proto::mvccpb::{event::EventType, KeyValue};
pub use synod_proto::prefix_end;
use synod_proto::synodpb;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Code, Status};

use super::lease::LeaseIds;
use crate::error::EtcdError;
use crate::raft::Node;

/// Errors of etcd's concurrency package. etcd's servers return them as plain
/// Go errors, which gRPC sends with code UNKNOWN and the text as message.
pub fn session_expired() -> Status {
    Status::new(Code::Unknown, "mutex: session is expired")
}
pub fn not_leader() -> Status {
    Status::new(Code::Unknown, "election: not leader")
}
pub fn no_leader() -> Status {
    Status::new(Code::Unknown, "election: no leader")
}

/// `pfx` followed by the lease id in lowercase hex, as etcd's Mutex and
/// Election name their keys.
pub fn session_key(pfx: &[u8], lease: i64) -> Vec<u8> {
    let mut k = pfx.to_vec();
    k.extend_from_slice(format!("{lease:x}").as_bytes());
    k
}

/// etcd's services run the recipes through a client of their own, so a
/// failed KV call reaches the caller with the error's message and code
/// UNKNOWN ("etcdserver: requested lease not found" included): clients
/// written against etcd see the same here.
/// UNAVAILABLE ("no leader", "request timed out") is kept: it tells a
/// client to try again, possibly on another member.
fn as_recipe_error(s: impl Into<Status>) -> Status {
    let s = s.into();
    if s.code() == Code::Unavailable {
        return s;
    }
    Status::new(Code::Unknown, s.message())
}

pub fn create_rev_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(rev)),
    }
}

pub fn op_get(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

pub fn op_put(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

pub fn op_delete(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

pub fn get_key(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

/// The oldest key under `pfx` (etcd's `WithFirstCreate`): the holder.
pub fn first_created(pfx: &[u8]) -> RangeRequest {
    by_create(pfx, SortOrder::Ascend, 0)
}

/// The newest key under `pfx` created at or before `max_rev`: the one to
/// wait for (etcd's `WithLastCreate` + `WithMaxCreateRev`).
fn last_created_before(pfx: &[u8], max_rev: i64) -> RangeRequest {
    by_create(pfx, SortOrder::Descend, max_rev)
}

fn by_create(pfx: &[u8], order: SortOrder, max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: pfx.to_vec(),
        range_end: prefix_end(pfx),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision,
        ..Default::default()
    }
}

/// The first key of a range answer within a txn answer.
pub fn range_kv(resp: &TxnResponse, i: usize) -> Option<&KeyValue> {
    use synod_proto::etcdserverpb::response_op::Response;
    match resp.responses.get(i)?.response.as_ref()? {
        Response::ResponseRange(r) => r.kvs.first(),
        _ => None,
    }
}

pub struct Recipes {
    pub node: Arc<Node>,
    pub lease_ids: Arc<LeaseIds>,
}

/// The TTL of the lease etcd's concurrency sessions grant when the caller
/// names none.
const SESSION_TTL: i64 = 60;

impl Recipes {
    /// The caller's lease, or, when it names none (0), a new lease of
    /// etcd's session TTL that nobody keeps alive, as etcd's servers do.
    pub async fn session(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let id = self.lease_ids.next();
        self.node
            .propose(synodpb::Request {
                op: Some(synodpb::request::Op::LeaseGrant(LeaseGrantRequest {
                    ttl: SESSION_TTL,
                    id,
                })),
            })
            .await
            .map_err(as_recipe_error)?;
        Ok(id)
    }

    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, Status> {
        Self::txn_on(&self.node, req).await
    }

    async fn txn_on(node: &Node, req: TxnRequest) -> Result<TxnResponse, Status> {
        match node
            .propose(synodpb::Request {
                op: Some(synodpb::request::Op::Txn(req)),
            })
            .await
            .map_err(as_recipe_error)?
        {
            synodpb::response::Op::Txn(mut r) => {
                node.fill(&mut r.header);
                Ok(r)
            }
            _ => Err(EtcdError::Internal("unexpected response kind".into()).status()),
        }
    }

    /// A linearizable read, as the recipes' clients make in etcd.
    pub async fn get(&self, req: &RangeRequest) -> Result<(ResponseHeader, Vec<KeyValue>), Status> {
        self.node.read_index().await.map_err(as_recipe_error)?;
        let mut r = self.node.store.range(req).map_err(as_recipe_error)?;
        self.node.fill(&mut r.header);
        Ok((r.header.unwrap_or_default(), r.kvs))
    }

    pub async fn delete(&self, key: &[u8]) -> Result<ResponseHeader, Status> {
        if key.is_empty() {
            return Err(as_recipe_error(EtcdError::EmptyKey));
        }
        match self
            .node
            .propose(synodpb::Request {
                op: Some(synodpb::request::Op::DeleteRange(DeleteRangeRequest {
                    key: key.to_vec(),
                    ..Default::default()
                })),
            })
            .await
            .map_err(as_recipe_error)?
        {
            synodpb::response::Op::DeleteRange(mut r) => {
                self.node.fill(&mut r.header);
                Ok(r.header.unwrap_or_default())
            }
            _ => Err(EtcdError::Internal("unexpected response kind".into()).status()),
        }
    }

    /// Waits until every key under `pfx` created at or before `max_rev` is
    /// gone, watching one predecessor at a time so that a release wakes one
    /// waiter, not all. Ends early with "session expired" when `own` (the
    /// caller's key, created at `own_rev`) goes away meanwhile: its lease
    /// expired or was revoked, and waiting on would only end in that error.
    pub async fn wait_deletes(
        &self,
        pfx: &[u8],
        max_rev: i64,
        own: &[u8],
        own_rev: i64,
    ) -> Result<(), Status> {
        loop {
            // Subscribed before reading, so a delete after the read is seen.
            let mut changes = self.node.store.subscribe();
            let (_, pred) = self.get(&last_created_before(pfx, max_rev)).await?;
            let Some(pred) = pred.into_iter().next() else {
                return Ok(());
            };
            if !self.still_there(own, own_rev).await? {
                return Err(session_expired());
            }
            loop {
                match changes.recv().await {
                    Ok(c) if !c.restored => {
                        let deleted = |k: &[u8]| {
                            c.events.iter().any(|e| {
                                e.r#type == EventType::Delete as i32
                                    && e.kv.as_ref().is_some_and(|kv| kv.key == k)
                            })
                        };
                        if deleted(own) {
                            return Err(session_expired());
                        }
                        if deleted(&pred.key) {
                            break;
                        }
                    }
                    // Missed some changes, or the store was replaced by a
                    // snapshot: look at the keys themselves.
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        if !self.still_there(own, own_rev).await? {
                            return Err(session_expired());
                        }
                        if !self.still_there(&pred.key, pred.create_revision).await? {
                            break;
                        }
                    }
                    Err(RecvError::Closed) => {
                        return Err(EtcdError::Internal("server is stopping".into()).status())
                    }
                }
            }
        }
    }

    /// Whether `key` still exists as the key created at `create_rev`.
    pub async fn still_there(&self, key: &[u8], create_rev: i64) -> Result<bool, Status> {
        let (_, kvs) = self.get(&get_key(key)).await?;
        Ok(kvs
            .first()
            .is_some_and(|kv| kv.create_revision == create_rev))
    }
}

/// Deletes a waiter's key if the request that put it goes away before
/// answering (the client cancelled or disconnected), as etcd's Mutex unlocks
/// when its context ends: a key left behind would block everyone after it
/// until its lease ran out.
pub struct Cleanup {
    node: Option<Arc<Node>>,
    pub key: Vec<u8>,
    pub create_rev: i64,
}

impl Cleanup {
    pub fn new(node: Arc<Node>, key: Vec<u8>, create_rev: i64) -> Self {
        Cleanup {
            node: Some(node),
            key,
            create_rev,
        }
    }

    /// The request answered: the key stays.
    pub fn disarm(mut self) {
        self.node = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        let key = std::mem::take(&mut self.key);
        let rev = self.create_rev;
        // Only the key this request put: guarded by its create revision, so
        // a later holder of the same lease's key is never deleted.
        tokio::spawn(async move {
            let _ = Recipes::txn_on(
                &node,
                TxnRequest {
                    compare: vec![create_rev_is(&key, rev)],
                    success: vec![op_delete(&key)],
                    failure: vec![],
                },
            )
            .await;
        });
    }
}
