//! etcd's `v3electionpb.Election` service, on the key layout of etcd's
//! concurrency package (`NAME/LEASE_HEX`, the leader being the oldest key),
//! so candidates using etcd's client libraries or `etcdctl elect` take part
//! in the same elections. As in etcd, Observe reports leaders only: a
//! resignation with nobody behind shows as silence until the next leader.

use std::pin::Pin;
use std::sync::Arc;

use synod_proto::etcdserverpb::{ResponseHeader, TxnRequest};
use synod_proto::mvccpb::{event::EventType, KeyValue};
use synod_proto::v3electionpb::election_server::Election;
use synod_proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tonic::{Code, Request, Response, Status};

use super::concurrency::{
    create_rev_is, first_created, get_key, no_leader, not_leader, op_delete, op_get, op_put,
    prefix_end, range_kv, session_expired, session_key, Cleanup, Recipes,
};
use super::lease::LeaseIds;
use crate::error::EtcdError;
use crate::mvcc::KeyRange;
use crate::raft::Node;

pub struct ElectionService {
    r: Arc<Recipes>,
}

impl ElectionService {
    pub fn new(node: Arc<Node>, lease_ids: Arc<LeaseIds>) -> Self {
        ElectionService {
            r: Arc::new(Recipes { node, lease_ids }),
        }
    }
}

fn missing_leader_key() -> Status {
    Status::new(Code::Unknown, "\"leader\" field must be provided")
}

fn prefix(name: &[u8]) -> Vec<u8> {
    let mut pfx = name.to_vec();
    pfx.push(b'/');
    pfx
}

impl Recipes {
    /// Replaces the leader's value if `leader` is still the key it was
    /// elected with.
    async fn proclaim(&self, leader: &LeaderKey, value: &[u8]) -> Result<ResponseHeader, Status> {
        let resp = self
            .txn(TxnRequest {
                compare: vec![create_rev_is(&leader.key, leader.rev)],
                success: vec![op_put(&leader.key, value, leader.lease)],
                failure: vec![],
            })
            .await?;
        if !resp.succeeded {
            return Err(not_leader());
        }
        Ok(resp.header.unwrap_or_default())
    }
}

type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Election for ElectionService {
    async fn campaign(
        &self,
        req: Request<CampaignRequest>,
    ) -> Result<Response<CampaignResponse>, Status> {
        let req = req.into_inner();
        let pfx = prefix(&req.name);
        let lease = self.r.session(req.lease).await?;
        let key = session_key(&pfx, lease);
        let resp = self
            .r
            .txn(TxnRequest {
                compare: vec![create_rev_is(&key, 0)],
                success: vec![op_put(&key, &req.value, lease)],
                failure: vec![op_get(get_key(&key))],
            })
            .await?;
        let header = resp.header.unwrap_or_default();
        let mut leader = LeaderKey {
            name: req.name,
            key,
            rev: header.revision,
            lease,
        };
        let cleanup = if resp.succeeded {
            Cleanup::new(self.r.node.clone(), leader.key.clone(), leader.rev)
        } else {
            let kv = range_kv(&resp, 0)
                .ok_or_else(|| EtcdError::Internal("campaign key vanished".into()))?;
            leader.rev = kv.create_revision;
            let cleanup = Cleanup::new(self.r.node.clone(), leader.key.clone(), leader.rev);
            // Campaigning again with another value proclaims it.
            if kv.value != req.value {
                self.r.proclaim(&leader, &req.value).await?;
            }
            cleanup
        };
        self.r
            .wait_deletes(&pfx, leader.rev - 1, &leader.key, leader.rev)
            .await?;
        // Elected only if our key outlived the wait (etcd #11456).
        if !self.r.still_there(&leader.key, leader.rev).await? {
            return Err(session_expired());
        }
        cleanup.disarm();
        Ok(Response::new(CampaignResponse {
            header: Some(header),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        req: Request<ProclaimRequest>,
    ) -> Result<Response<ProclaimResponse>, Status> {
        let req = req.into_inner();
        let leader = req.leader.ok_or_else(missing_leader_key)?;
        let header = self.r.proclaim(&leader, &req.value).await?;
        Ok(Response::new(ProclaimResponse {
            header: Some(header),
        }))
    }

    async fn leader(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<LeaderResponse>, Status> {
        let req = req.into_inner();
        let (header, kvs) = self.r.get(&first_created(&prefix(&req.name))).await?;
        let kv = kvs.into_iter().next().ok_or_else(no_leader)?;
        Ok(Response::new(LeaderResponse {
            header: Some(header),
            kv: Some(kv),
        }))
    }

    async fn observe(
        &self,
        req: Request<LeaderRequest>,
    ) -> Result<Response<ObserveStream>, Status> {
        let pfx = prefix(&req.into_inner().name);
        let (tx, rx) = mpsc::channel(16);
        let r = self.r.clone();
        tokio::spawn(async move {
            if let Err(e) = observe(&r, &pfx, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        req: Request<ResignRequest>,
    ) -> Result<Response<ResignResponse>, Status> {
        let req = req.into_inner();
        let leader = req.leader.ok_or_else(missing_leader_key)?;
        // A stale leader key is not an error: etcd answers it with the
        // header of a txn that deleted nothing.
        let resp = self
            .r
            .txn(TxnRequest {
                compare: vec![create_rev_is(&leader.key, leader.rev)],
                success: vec![op_delete(&leader.key)],
                failure: vec![],
            })
            .await?;
        Ok(Response::new(ResignResponse {
            header: resp.header,
        }))
    }
}

type Out = mpsc::Sender<Result<LeaderResponse, Status>>;

/// Sends the current leader and every change of it: a new value proclaimed,
/// or the next leader once it has gone. Ends when the client does.
async fn observe(r: &Recipes, pfx: &[u8], tx: &Out) -> Result<(), Status> {
    let end = prefix_end(pfx);
    let under = KeyRange::new(pfx, &end);
    loop {
        let mut changes = r.node.store.subscribe();
        let (header, kvs) = r.get(&first_created(pfx)).await?;
        let mut current: KeyValue = match kvs.into_iter().next() {
            Some(kv) => {
                if !send(tx, header, kv.clone()).await {
                    return Ok(());
                }
                kv
            }
            // Nobody leads: the first key put under the prefix is the next leader.
            None => loop {
                let msg = tokio::select! {
                    _ = tx.closed() => return Ok(()),
                    msg = changes.recv() => msg,
                };
                match msg {
                    Ok(c) if !c.restored => {
                        let first = c.events.iter().find(|e| {
                            e.r#type == EventType::Put as i32
                                && e.kv.as_ref().is_some_and(|kv| under.contains(&kv.key))
                        });
                        if let Some(kv) = first.and_then(|e| e.kv.clone()) {
                            let h = r.node.header(kv.mod_revision);
                            if !send(tx, h, kv.clone()).await {
                                return Ok(());
                            }
                            break kv;
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        let (header, kvs) = r.get(&first_created(pfx)).await?;
                        if let Some(kv) = kvs.into_iter().next() {
                            if !send(tx, header, kv.clone()).await {
                                return Ok(());
                            }
                            break kv;
                        }
                    }
                    Err(RecvError::Closed) => return Ok(()),
                }
            },
        };
        // Follow the leader's key until it is deleted.
        'leader: loop {
            tokio::select! {
                _ = tx.closed() => return Ok(()),
                msg = changes.recv() => match msg {
                    Ok(c) if !c.restored => {
                        for e in &c.events {
                            let Some(kv) = e.kv.as_ref().filter(|kv| kv.key == current.key) else {
                                continue;
                            };
                            if e.r#type == EventType::Delete as i32 {
                                break 'leader;
                            }
                            if !send(tx, r.node.header(c.rev), kv.clone()).await {
                                return Ok(());
                            }
                            current = kv.clone();
                        }
                    }
                    // Missed changes, or the store was replaced by a
                    // snapshot: compare with what the key is now.
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        let (header, kvs) = r.get(&get_key(&current.key)).await?;
                        match kvs.into_iter().next() {
                            Some(kv) if kv.create_revision == current.create_revision => {
                                if kv.mod_revision != current.mod_revision {
                                    if !send(tx, header, kv.clone()).await {
                                        return Ok(());
                                    }
                                    current = kv;
                                }
                            }
                            _ => break 'leader,
                        }
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}

async fn send(tx: &Out, header: ResponseHeader, kv: KeyValue) -> bool {
    tx.send(Ok(LeaderResponse {
        header: Some(header),
        kv: Some(kv),
    }))
    .await
    .is_ok()
}
