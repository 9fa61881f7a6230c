//! Services whose issues are still open. Every method answers `Unimplemented` with a message
//! naming the method and the issue that brings it, so a client sees at once what is missing.

use std::pin::Pin;

use futures::Stream;
use retcd_api::etcdserverpb as pb;
use retcd_api::unimplemented;
use retcd_api::v3electionpb as el;
use retcd_api::v3lockpb as lk;
use tonic::{Request, Response, Status};

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Services not built yet.
pub struct Unbuilt;

#[tonic::async_trait]
impl pb::auth_server::Auth for Unbuilt {
    async fn auth_enable(
        &self,
        _: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/AuthEnable", "issue 8"))
    }
    async fn auth_disable(
        &self,
        _: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/AuthDisable", "issue 8"))
    }
    async fn auth_status(
        &self,
        _: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/AuthStatus", "issue 8"))
    }
    async fn authenticate(
        &self,
        _: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/Authenticate", "issue 8"))
    }
    async fn user_add(
        &self,
        _: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserAdd", "issue 8"))
    }
    async fn user_get(
        &self,
        _: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserGet", "issue 8"))
    }
    async fn user_list(
        &self,
        _: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserList", "issue 8"))
    }
    async fn user_delete(
        &self,
        _: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserDelete", "issue 8"))
    }
    async fn user_change_password(
        &self,
        _: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserChangePassword", "issue 8"))
    }
    async fn user_grant_role(
        &self,
        _: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserGrantRole", "issue 8"))
    }
    async fn user_revoke_role(
        &self,
        _: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserRevokeRole", "issue 8"))
    }
    async fn role_add(
        &self,
        _: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleAdd", "issue 8"))
    }
    async fn role_get(
        &self,
        _: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleGet", "issue 8"))
    }
    async fn role_list(
        &self,
        _: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleList", "issue 8"))
    }
    async fn role_delete(
        &self,
        _: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleDelete", "issue 8"))
    }
    async fn role_grant_permission(
        &self,
        _: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleGrantPermission", "issue 8"))
    }
    async fn role_revoke_permission(
        &self,
        _: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleRevokePermission", "issue 8"))
    }
}

#[tonic::async_trait]
impl lk::lock_server::Lock for Unbuilt {
    async fn lock(&self, _: Request<lk::LockRequest>) -> Result<Response<lk::LockResponse>, Status> {
        Err(unimplemented("v3lockpb.Lock/Lock", "issue 5"))
    }

    async fn unlock(&self, _: Request<lk::UnlockRequest>) -> Result<Response<lk::UnlockResponse>, Status> {
        Err(unimplemented("v3lockpb.Lock/Unlock", "issue 5"))
    }
}

#[tonic::async_trait]
impl el::election_server::Election for Unbuilt {
    async fn campaign(
        &self,
        _: Request<el::CampaignRequest>,
    ) -> Result<Response<el::CampaignResponse>, Status> {
        Err(unimplemented("v3electionpb.Election/Campaign", "issue 5"))
    }

    async fn proclaim(
        &self,
        _: Request<el::ProclaimRequest>,
    ) -> Result<Response<el::ProclaimResponse>, Status> {
        Err(unimplemented("v3electionpb.Election/Proclaim", "issue 5"))
    }

    async fn leader(&self, _: Request<el::LeaderRequest>) -> Result<Response<el::LeaderResponse>, Status> {
        Err(unimplemented("v3electionpb.Election/Leader", "issue 5"))
    }

    type ObserveStream = BoxStream<el::LeaderResponse>;

    async fn observe(&self, _: Request<el::LeaderRequest>) -> Result<Response<Self::ObserveStream>, Status> {
        Err(unimplemented("v3electionpb.Election/Observe", "issue 5"))
    }

    async fn resign(&self, _: Request<el::ResignRequest>) -> Result<Response<el::ResignResponse>, Status> {
        Err(unimplemented("v3electionpb.Election/Resign", "issue 5"))
    }
}
