use std::sync::Arc;

use synod_proto::etcdserverpb::cluster_server::Cluster;
use synod_proto::etcdserverpb::{Member, MemberListRequest, MemberListResponse};
use tonic::{Request, Response, Status};

use crate::raft::Node;

pub struct ClusterService {
    node: Arc<Node>,
    members: Vec<Member>,
}

impl ClusterService {
    pub fn new(node: Arc<Node>, members: Vec<Member>) -> Self {
        ClusterService { node, members }
    }
}

/// Membership changes at run time come with replication; until then the
/// other Cluster methods answer UNIMPLEMENTED.
#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse {
            // etcd's membership answers carry no store revision.
            header: Some(self.node.header(0)),
            members: self.members.clone(),
        }))
    }
}
