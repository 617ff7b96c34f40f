//! The peer service (`synodpb.Peer`) on the peer URL: openraft's messages
//! from other members, writes forwarded by followers, and read indexes for
//! followers' linearizable reads. The sending side is `raft/network.rs`.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use synod_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
    MemberListRequest, MemberListResponse,
};
use synod_proto::synodpb::peer_server::Peer;
use synod_proto::synodpb::{
    self, BatchResponse, ForwardResponse, RaftMessage, ReadIndexRequest, ReadIndexResponse,
    TimeoutNowRequest, TimeoutNowResponse,
};
use tokio::task::JoinSet;
use tonic::{Request, Response, Status};

use crate::error::EtcdError;
use crate::raft::{Node, NodeId, TypeConfig};

pub struct PeerService {
    node: Arc<Node>,
}

impl PeerService {
    pub fn new(node: Arc<Node>) -> Self {
        PeerService { node }
    }
}

impl PeerService {
    /// A member removed from the cluster that still campaigns or replicates
    /// is told so, and stops (raft/network.rs), as etcd's peers tell it.
    fn refuse_removed(&self, vote: &openraft::Vote<NodeId>) -> Result<(), Status> {
        match vote.leader_id().voted_for() {
            Some(from) if self.node.store.is_removed(from) => {
                Err(Status::failed_precondition(REMOVED))
            }
            _ => Ok(()),
        }
    }
}

pub use crate::raft::network::REMOVED;

fn decode<T: DeserializeOwned>(msg: RaftMessage) -> Result<T, Status> {
    bincode::deserialize(&msg.data)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn encode<T: Serialize>(v: &T) -> Result<Response<RaftMessage>, Status> {
    let data = bincode::serialize(v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftMessage { data }))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::AppendEntriesRequest<TypeConfig> = decode(req.into_inner())?;
        self.refuse_removed(&rpc.vote)?;
        let from_leader = rpc.vote.is_committed();
        let resp = self.node.raft.append_entries(rpc).await;
        if from_leader && matches!(resp, Ok(openraft::raft::AppendEntriesResponse::Success)) {
            self.node.heard_from_leader();
        }
        encode(&resp)
    }

    async fn vote(&self, req: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc: openraft::raft::VoteRequest<NodeId> = decode(req.into_inner())?;
        self.refuse_removed(&rpc.vote)?;
        let candidate_log = rpc.last_log_id;
        let candidate_term = rpc.vote.leader_id.term;
        let resp = self.node.raft.vote(rpc).await;
        let reply = encode(&resp);
        if let Ok(r) = &resp {
            if !r.vote_granted && r.last_log_id > candidate_log {
                let node = self.node.clone();
                let mine = r.last_log_id;
                tokio::spawn(async move { node.outran_candidate(candidate_term, mine).await });
            }
        }
        reply
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftMessage>,
    ) -> Result<Response<RaftMessage>, Status> {
        let rpc = decode(req.into_inner())?;
        encode(&self.node.raft.install_snapshot(rpc).await)
    }

    async fn forward(
        &self,
        req: Request<synodpb::Batch>,
    ) -> Result<Response<ForwardResponse>, Status> {
        let requests = req.into_inner().requests;
        let count = requests.len();
        // Each write joins this member's own queue, so forwarded writes are
        // batched with local ones into as few entries as possible.
        let mut proposals = JoinSet::new();
        for (i, r) in requests.into_iter().enumerate() {
            let node = self.node.clone();
            proposals.spawn(async move { (i, node.propose_response(r).await) });
        }
        let mut responses = vec![synodpb::Response::default(); count];
        while let Some(done) = proposals.join_next().await {
            let (i, res) = done.map_err(|e| Status::internal(e.to_string()))?;
            responses[i] = res.unwrap_or_else(|e: EtcdError| synodpb::Response {
                op: Some(synodpb::response::Op::Error(synodpb::Error {
                    code: e.code() as i32,
                    message: e.to_string(),
                })),
            });
        }
        Ok(Response::new(ForwardResponse {
            responses: Some(BatchResponse { responses }),
            applied: self.node.applied_index(),
        }))
    }

    async fn read_index(
        &self,
        _req: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        let index = self.node.leader_read_index().await?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn lease_keep_alive(
        &self,
        req: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        let id = req.into_inner().id;
        let ttl = self.node.keep_alive(id).await?;
        Ok(Response::new(LeaseKeepAliveResponse {
            header: Some(self.node.header(self.node.store.current_rev())),
            id,
            ttl,
        }))
    }

    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(super::cluster::member_list(&self.node)?))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let resp = super::lease::time_to_live(&self.node, req.into_inner()).await?;
        Ok(Response::new(resp))
    }

    async fn timeout_now(
        &self,
        _req: Request<TimeoutNowRequest>,
    ) -> Result<Response<TimeoutNowResponse>, Status> {
        self.node
            .raft
            .trigger()
            .elect()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(TimeoutNowResponse {}))
    }
}
