use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use synod_proto::etcdserverpb::lease_server::Lease;
use synod_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::error::EtcdError;
use crate::raft::Node;

/// etcd's upper bound on a lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// etcd's minimum TTL with default timing (1.5 × a 1 s election timeout,
/// rounded up): shorter grants come back with this TTL.
pub const MIN_LEASE_TTL: i64 = 2;

pub struct LeaseService {
    node: Arc<Node>,
    ids: Arc<LeaseIds>,
}

impl LeaseService {
    pub fn new(node: Arc<Node>, ids: Arc<LeaseIds>) -> Self {
        LeaseService { node, ids }
    }
}

/// Lease ids for grants that do not name one: shared by the Lease service
/// and by the Lock and Election services, which grant a session lease when
/// the caller gives none.
pub struct LeaseIds(AtomicI64);

impl LeaseIds {
    pub fn new(member_id: u64) -> Self {
        // Like etcd's id generator: the member id in the high bits, a
        // time-seeded counter below, so ids from different members and
        // restarts do not collide.
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let seed = (((member_id & 0xffff) as i64) << 47) | ((millis & 0xff_ffff_ffff) << 7);
        LeaseIds(AtomicI64::new(seed & i64::MAX))
    }

    pub fn next(&self) -> i64 {
        loop {
            let id = self.0.fetch_add(1, Ordering::Relaxed) & i64::MAX;
            if id != 0 {
                return id;
            }
        }
    }
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut req = req.into_inner();
        if req.ttl > MAX_LEASE_TTL {
            return Err(EtcdError::LeaseTtlTooLarge.into());
        }
        req.ttl = req.ttl.max(MIN_LEASE_TTL);
        if req.id == 0 {
            req.id = self.ids.next();
        }
        super::propose!(self.node, LeaseGrant, req)
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = req.into_inner();
        super::propose!(self.node, LeaseRevoke, req)
    }

    /// Keep-alives are answered from the leader's memory, never through Raft.
    /// An unknown lease gets TTL 0, which clients read as "expired".
    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let node = self.node.clone();
        tokio::spawn(async move {
            while let Some(msg) = inbound.next().await {
                let msg = match msg {
                    Ok(m) => m,
                    Err(_) => break,
                };
                let reply = match node.keep_alive(msg.id).await {
                    Ok(ttl) => Ok(LeaseKeepAliveResponse {
                        header: Some(node.header(node.store.current_rev())),
                        id: msg.id,
                        ttl,
                    }),
                    Err(e) => Err(e.status()),
                };
                if tx.send(reply).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        Ok(Response::new(
            time_to_live(&self.node, req.into_inner()).await?,
        ))
    }

    async fn lease_leases(
        &self,
        _req: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.node.read_index().await?;
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.node.header(self.node.store.current_rev())),
            leases: self
                .node
                .store
                .lease_ids()
                .into_iter()
                .map(|id| LeaseStatus { id })
                .collect(),
        }))
    }
}

/// A lease's remaining TTL, from the leader, which keeps the deadlines.
pub async fn time_to_live(
    node: &Node,
    req: LeaseTimeToLiveRequest,
) -> Result<LeaseTimeToLiveResponse, EtcdError> {
    let Some((leader_id, mut leader)) = node.leader_peer().await? else {
        node.read_index().await?;
        let header = Some(node.header(node.store.current_rev()));
        return Ok(match node.store.lease_info(req.id) {
            Some((granted, left, keys)) => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: left,
                granted_ttl: granted,
                keys: if req.keys { keys } else { Vec::new() },
            },
            // etcd answers a missing lease with TTL -1, not an error.
            None => LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                ..Default::default()
            },
        });
    };
    let mut forwarded = tonic::Request::new(req);
    forwarded.set_timeout(std::time::Duration::from_secs(7));
    node.until_leader_changes(leader_id, leader.lease_time_to_live(forwarded))
        .await
}
