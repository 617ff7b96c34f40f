//! etcd's Cluster service. Members and their peer URLs come from the Raft
//! membership; names and client URLs from what each member published when
//! it started, so every member lists the same thing.

use std::sync::Arc;

use synod_proto::etcdserverpb::cluster_server::Cluster;
use synod_proto::etcdserverpb::{Member, MemberListRequest, MemberListResponse};
use tonic::{Request, Response, Status};

use crate::raft::Node;

pub struct ClusterService {
    node: Arc<Node>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>) -> Self {
        ClusterService { node }
    }
}

/// The members as this member knows them, in id order.
pub fn members(node: &Node) -> Result<Vec<Member>, Status> {
    let published = node.store.members()?;
    let metrics = node.raft.metrics();
    let metrics = metrics.borrow();
    let membership = metrics.membership_config.membership();
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    Ok(membership
        .nodes()
        .map(|(id, n)| {
            let attrs = published.get(id);
            Member {
                id: *id,
                // An empty name is what etcdctl shows as "unstarted".
                name: attrs.map(|a| a.name.clone()).unwrap_or_default(),
                peer_ur_ls: n
                    .addr
                    .split(',')
                    .filter(|u| !u.is_empty())
                    .map(str::to_string)
                    .collect(),
                client_ur_ls: attrs.map(|a| a.client_urls.clone()).unwrap_or_default(),
                is_learner: !voters.contains(id),
            }
        })
        .collect())
}

/// Membership changes at run time are still to come; until then the other
/// Cluster methods answer UNIMPLEMENTED.
#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            // etcd's membership answers carry no store revision.
            header: Some(self.node.header(0)),
            members: members(&self.node)?,
        }))
    }
}
