//! Authentication is not implemented yet. Synod runs with auth disabled and
//! no users or roles, and answers the read-only Auth calls the way etcd does
//! in that state, so tools that probe auth (`etcdctl user list`, `auth
//! status`) work. Calls that would create users or roles answer UNIMPLEMENTED.

use std::sync::Arc;

use synod_proto::etcdserverpb::auth_server::Auth;
use synod_proto::etcdserverpb::{
    AuthDisableRequest, AuthDisableResponse, AuthEnableRequest, AuthEnableResponse,
    AuthRoleGetRequest, AuthRoleGetResponse, AuthRoleListRequest, AuthRoleListResponse,
    AuthStatusRequest, AuthStatusResponse, AuthUserGetRequest, AuthUserGetResponse,
    AuthUserListRequest, AuthUserListResponse, AuthenticateRequest, AuthenticateResponse,
};
use tonic::{Request, Response, Status};

use crate::error::EtcdError;
use crate::raft::Node;

pub struct AuthService {
    node: Arc<Node>,
}

impl AuthService {
    pub fn new(node: Arc<Node>) -> Self {
        AuthService { node }
    }

    fn header(&self) -> Option<synod_proto::etcdserverpb::ResponseHeader> {
        Some(self.node.header(self.node.store.current_rev()))
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn auth_enable(
        &self,
        _req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        Err(EtcdError::RootUserNotExist.into())
    }

    async fn auth_disable(
        &self,
        _req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        Ok(Response::new(AuthDisableResponse {
            header: self.header(),
        }))
    }

    async fn auth_status(
        &self,
        _req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        Ok(Response::new(AuthStatusResponse {
            header: self.header(),
            enabled: false,
            auth_revision: 0,
        }))
    }

    async fn authenticate(
        &self,
        _req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Err(EtcdError::AuthNotEnabled.into())
    }

    async fn user_get(
        &self,
        _req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        Err(EtcdError::UserNotFound.into())
    }

    async fn user_list(
        &self,
        _req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        Ok(Response::new(AuthUserListResponse {
            header: self.header(),
            users: Vec::new(),
        }))
    }

    async fn role_get(
        &self,
        _req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        Err(EtcdError::RoleNotFound.into())
    }

    async fn role_list(
        &self,
        _req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        Ok(Response::new(AuthRoleListResponse {
            header: self.header(),
            roles: Vec::new(),
        }))
    }
}
