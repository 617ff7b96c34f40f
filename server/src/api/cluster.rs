//! etcd's Cluster service. Members and their peer URLs come from the Raft
//! membership; names and client URLs from what each member published when
//! it started, so every member lists the same thing. Changes are made by the
//! leader (a follower passes them on), through openraft's membership changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use synod_proto::etcdserverpb::cluster_client::ClusterClient;
use synod_proto::etcdserverpb::cluster_server::Cluster;
use synod_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::error::EtcdError;
use crate::raft::{Node, NodeId};

pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        ClusterService { node }
    }

    /// None while this member leads; otherwise a client of the leader's
    /// client URL, which the change is passed to.
    async fn leader(&self) -> Result<Option<ClusterClient<Channel>>, Status> {
        let Some((id, _)) = self.node.leader_peer().await? else {
            return Ok(None);
        };
        let url = self
            .node
            .store
            .members()?
            .get(&id)
            .and_then(|a| a.client_urls.first().cloned())
            .ok_or(EtcdError::NoLeader)?;
        let channel = Endpoint::from_shared(url)
            .map_err(|_| EtcdError::NoLeader)?
            .connect()
            .await
            .map_err(|_| EtcdError::NoLeader)?;
        Ok(Some(ClusterClient::new(channel)))
    }

    fn node_of(&self, id: NodeId) -> Result<(BasicNode, bool), EtcdError> {
        let m = self.node.raft.metrics();
        let m = m.borrow();
        let membership = m.membership_config.membership();
        let node = membership
            .get_node(&id)
            .cloned()
            .ok_or(EtcdError::MemberNotFound)?;
        Ok((node, membership.voter_ids().any(|v| v == id)))
    }

    /// etcd's strict reconfiguration check, for a new voter: the members
    /// that have started (published their attributes) must still make a
    /// quorum once it counts. openraft changes membership through a joint
    /// configuration, which could not even commit otherwise. (etcd lets a
    /// one-member cluster add a second voter, and then waits for it.)
    #[allow(clippy::manual_div_ceil)]
    fn enough_started(&self) -> Result<(), EtcdError> {
        let published = self.node.store.members()?;
        let m = self.node.raft.metrics();
        let m = m.borrow();
        let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        let started = voters.iter().filter(|v| published.contains_key(v)).count();
        // A majority of the voters once the new one counts.
        let quorum = (voters.len() + 1) / 2 + 1;
        if started < quorum {
            return Err(EtcdError::MemberNotEnoughStarted);
        }
        Ok(())
    }

    async fn change(
        &self,
        changes: ChangeMembers<NodeId, BasicNode>,
        retain: bool,
    ) -> Result<(), EtcdError> {
        // A change that cannot commit (a quorum lost meanwhile) answers as
        // a write would, instead of hanging the caller.
        let change = self.node.change_membership(changes, retain);
        let res = tokio::time::timeout(std::time::Duration::from_secs(7), change)
            .await
            .map_err(|_| EtcdError::Timeout)?;
        match res {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(EtcdError::LeaderChanged)
            }
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => Err(
                EtcdError::Internal(format!("membership change refused: {e}")),
            ),
            Err(e) => Err(EtcdError::Internal(e.to_string())),
        }
    }
}

/// The members as this member knows them, in id order.
pub fn members(node: &Node) -> Result<Vec<Member>, Status> {
    let published = node.store.members()?;
    let metrics = node.raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    Ok(membership
        .nodes()
        .map(|(id, n)| {
            let attrs = published.get(id);
            Member {
                id: *id,
                // An empty name is what etcdctl shows as "unstarted".
                name: attrs.map(|a| a.name.clone()).unwrap_or_default(),
                peer_ur_ls: peer_urls(n),
                client_ur_ls: attrs.map(|a| a.client_urls.clone()).unwrap_or_default(),
                is_learner: !voters.contains(id),
            }
        })
        .collect())
}

pub fn member_list(node: &Node) -> Result<MemberListResponse, Status> {
    Ok(MemberListResponse {
        // etcd's membership answers carry no store revision.
        header: Some(node.header(0)),
        members: members(node)?,
    })
}

fn peer_urls(n: &BasicNode) -> Vec<String> {
    n.addr
        .split(',')
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

/// etcd takes only absolute http(s) URLs with a host and a port.
fn check_urls(urls: &[String]) -> Result<(), EtcdError> {
    let good = |u: &String| {
        u.parse::<http::Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty())
                && uri.port().is_some()
                && uri.path() == "/"
        })
    };
    if urls.is_empty() || !urls.iter().all(good) {
        return Err(EtcdError::MemberBadUrls);
    }
    Ok(())
}

/// How many entries a learner may still lack to be promoted: etcd's rule
/// is that it has 90% of the leader's log.
fn in_sync(matched: u64, last: u64) -> bool {
    matched * 10 >= last * 9
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        let req = req.into_inner();
        if let Some(mut leader) = self.leader().await? {
            return leader.member_add(req).await;
        }
        let mut urls = req.peer_ur_ls;
        check_urls(&urls)?;
        urls.sort();
        let taken = members(&self.node)?
            .iter()
            .any(|m| m.peer_ur_ls.iter().any(|u| urls.contains(u)));
        if taken {
            return Err(EtcdError::PeerUrlExist.into());
        }
        // Unique as etcd's are: the URLs and the time of the request.
        let now = format!("{:?}", std::time::SystemTime::now());
        let mut parts: Vec<&str> = urls.iter().map(String::as_str).collect();
        parts.push(&now);
        let id = crate::config::fnv64(&parts);
        if !req.is_learner {
            self.enough_started()?;
        }
        let node = BasicNode::new(urls.join(","));
        let changes = if req.is_learner {
            ChangeMembers::AddNodes(BTreeMap::from([(id, node)]))
        } else {
            ChangeMembers::AddVoters(BTreeMap::from([(id, node)]))
        };
        self.change(changes, true).await?;
        Ok(Response::new(MemberAddResponse {
            header: Some(self.node.header(0)),
            member: Some(Member {
                id,
                peer_ur_ls: urls,
                is_learner: req.is_learner,
                ..Default::default()
            }),
            members: members(&self.node)?,
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let req = req.into_inner();
        if let Some(mut leader) = self.leader().await? {
            return leader.member_remove(req).await;
        }
        let (_, voter) = self.node_of(req.id)?;
        let ids = BTreeSet::from([req.id]);
        let changes = if voter {
            ChangeMembers::RemoveVoters(ids)
        } else {
            ChangeMembers::RemoveNodes(ids)
        };
        self.change(changes, false).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: Some(self.node.header(0)),
            members: members(&self.node)?,
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let req = req.into_inner();
        if let Some(mut leader) = self.leader().await? {
            return leader.member_update(req).await;
        }
        self.node_of(req.id)?;
        let mut urls = req.peer_ur_ls;
        check_urls(&urls)?;
        urls.sort();
        let node = BasicNode::new(urls.join(","));
        self.change(
            ChangeMembers::SetNodes(BTreeMap::from([(req.id, node)])),
            true,
        )
        .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: Some(self.node.header(0)),
            members: members(&self.node)?,
        }))
    }

    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(member_list(&self.node)?))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let req = req.into_inner();
        if let Some(mut leader) = self.leader().await? {
            return leader.member_promote(req).await;
        }
        let (_, voter) = self.node_of(req.id)?;
        if voter {
            return Err(EtcdError::MemberNotLearner.into());
        }
        let ready = {
            let m = self.node.raft.metrics();
            let m = m.borrow();
            let last = m.last_log_index.unwrap_or(0);
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&req.id).cloned().flatten())
                .map_or(0, |l| l.index);
            in_sync(matched, last)
        };
        if !ready {
            return Err(EtcdError::LearnerNotReady.into());
        }
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([req.id])), true)
            .await?;
        Ok(Response::new(MemberPromoteResponse {
            header: Some(self.node.header(0)),
            members: members(&self.node)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_etcd_takes_them() {
        let ok = |u: &str| check_urls(&[u.to_string()]).is_ok();
        assert!(ok("http://127.0.0.1:2380"));
        assert!(ok("https://host.example:2380"));
        assert!(!ok("127.0.0.1:2380"));
        assert!(!ok("http://127.0.0.1"));
        assert!(!ok("ftp://127.0.0.1:2380"));
        assert!(!ok("http://127.0.0.1:2380/path"));
        assert!(check_urls(&[]).is_err());
    }

    #[test]
    fn a_learner_is_in_sync_at_ninety_percent() {
        assert!(in_sync(90, 100));
        assert!(!in_sync(89, 100));
        assert!(in_sync(0, 0));
    }
}
