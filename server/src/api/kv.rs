use std::collections::HashSet;
use std::sync::Arc;

use synod_proto::etcdserverpb::kv_server::Kv;
use synod_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use synod_proto::etcdserverpb::{
    request_op, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use tonic::{Request, Response, Status};

use super::MAX_TXN_OPS;
use crate::error::EtcdError;
use crate::mvcc::KeyRange;
use crate::raft::Node;

pub struct KvService {
    node: Arc<Node>,
}

impl KvService {
    pub fn new(node: Arc<Node>) -> Self {
        KvService { node }
    }
}

pub fn check_range(r: &RangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if SortOrder::try_from(r.sort_order).is_err() || SortTarget::try_from(r.sort_target).is_err() {
        return Err(EtcdError::InvalidSortOption);
    }
    Ok(())
}

pub fn check_put(r: &PutRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(EtcdError::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(EtcdError::LeaseProvided);
    }
    Ok(())
}

fn check_delete(r: &DeleteRangeRequest) -> Result<(), EtcdError> {
    if r.key.is_empty() {
        return Err(EtcdError::EmptyKey);
    }
    Ok(())
}

/// Deepest txn nesting accepted. A Raft entry wraps a txn in two more
/// messages and protobuf decoders stop at 100 levels; an entry that could
/// not be decoded again at apply time would stop the node for good.
pub const MAX_TXN_DEPTH: usize = 32;

pub fn check_txn(t: &TxnRequest) -> Result<(), EtcdError> {
    check_txn_at(t, 0)
}

fn check_txn_at(t: &TxnRequest, depth: usize) -> Result<(), EtcdError> {
    if depth > MAX_TXN_DEPTH {
        return Err(EtcdError::TooManyOps);
    }
    if t.compare.len() > MAX_TXN_OPS
        || t.success.len() > MAX_TXN_OPS
        || t.failure.len() > MAX_TXN_OPS
    {
        return Err(EtcdError::TooManyOps);
    }
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EtcdError::EmptyKey);
    }
    for op in t.success.iter().chain(&t.failure) {
        match op.request.as_ref() {
            Some(request_op::Request::RequestRange(r)) => check_range(r)?,
            Some(request_op::Request::RequestPut(r)) => check_put(r)?,
            Some(request_op::Request::RequestDeleteRange(r)) => check_delete(r)?,
            Some(request_op::Request::RequestTxn(r)) => check_txn_at(r, depth + 1)?,
            None => {}
        }
    }
    writes(&t.success)?;
    writes(&t.failure)?;
    Ok(())
}

/// A deleted range: key and range_end as the request gives them.
type Interval = (Vec<u8>, Vec<u8>);

/// The keys one branch puts and the ranges it deletes, refusing a key written
/// twice or put inside a range the same branch deletes (etcd's checkIntervals).
/// The two branches of a nested txn never both run, so they may overlap
/// each other, but not the ops around them.
fn writes(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Interval>), EtcdError> {
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    let mut dels: Vec<Interval> = Vec::new();
    for op in ops {
        if let Some(request_op::Request::RequestTxn(t)) = op.request.as_ref() {
            let (then_puts, then_dels) = writes(&t.success)?;
            let (else_puts, else_dels) = writes(&t.failure)?;
            for k in then_puts.iter().chain(&else_puts) {
                if puts.contains(k) {
                    return Err(EtcdError::DuplicateKey);
                }
            }
            puts.extend(then_puts.into_iter().chain(else_puts));
            dels.extend(then_dels.into_iter().chain(else_dels));
        }
    }
    for op in ops {
        if let Some(request_op::Request::RequestDeleteRange(d)) = op.request.as_ref() {
            dels.push((d.key.clone(), d.range_end.clone()));
        }
    }
    for op in ops {
        if let Some(request_op::Request::RequestPut(p)) = op.request.as_ref() {
            if !puts.insert(p.key.clone()) {
                return Err(EtcdError::DuplicateKey);
            }
        }
    }
    for (k, end) in &dels {
        let range = KeyRange::new(k, end);
        if puts.iter().any(|p| range.contains(p)) {
            return Err(EtcdError::DuplicateKey);
        }
    }
    Ok((puts, dels))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let req = req.into_inner();
        check_range(&req)?;
        if !req.serializable {
            self.node.read_index().await?;
        }
        let mut resp = self.node.store.range(&req)?;
        self.node.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = req.into_inner();
        check_put(&req)?;
        super::propose!(self.node, Put, req)
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = req.into_inner();
        check_delete(&req)?;
        super::propose!(self.node, DeleteRange, req)
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = req.into_inner();
        check_txn(&req)?;
        super::propose!(self.node, Txn, req)
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let req = req.into_inner();
        let physical = req.physical;
        let resp = super::propose!(self.node, Compaction, req)?;
        // As etcd: a physical compaction answers once the old revisions are
        // deleted from storage, not only dropped from the index.
        if physical {
            self.node.store.compaction_done().await;
        }
        Ok(resp)
    }
}
