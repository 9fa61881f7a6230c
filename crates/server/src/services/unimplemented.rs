//! Services whose issues are still open. Every method answers `Unimplemented` with a message
//! naming the method and the issue that brings it, so a client sees at once what is missing.

use retcd_api::etcdserverpb as pb;
use retcd_api::unimplemented;
use tonic::{Request, Response, Status};

/// Services not built yet.
pub struct Unbuilt;

#[tonic::async_trait]
impl pb::auth_server::Auth for Unbuilt {
    async fn auth_enable(
        &self,
        _: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/AuthEnable", 8))
    }
    async fn auth_disable(
        &self,
        _: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/AuthDisable", 8))
    }
    async fn auth_status(
        &self,
        _: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/AuthStatus", 8))
    }
    async fn authenticate(
        &self,
        _: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/Authenticate", 8))
    }
    async fn user_add(
        &self,
        _: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserAdd", 8))
    }
    async fn user_get(
        &self,
        _: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserGet", 8))
    }
    async fn user_list(
        &self,
        _: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserList", 8))
    }
    async fn user_delete(
        &self,
        _: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserDelete", 8))
    }
    async fn user_change_password(
        &self,
        _: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserChangePassword", 8))
    }
    async fn user_grant_role(
        &self,
        _: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserGrantRole", 8))
    }
    async fn user_revoke_role(
        &self,
        _: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/UserRevokeRole", 8))
    }
    async fn role_add(
        &self,
        _: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleAdd", 8))
    }
    async fn role_get(
        &self,
        _: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleGet", 8))
    }
    async fn role_list(
        &self,
        _: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleList", 8))
    }
    async fn role_delete(
        &self,
        _: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleDelete", 8))
    }
    async fn role_grant_permission(
        &self,
        _: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleGrantPermission", 8))
    }
    async fn role_revoke_permission(
        &self,
        _: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        Err(unimplemented("etcdserverpb.Auth/RoleRevokePermission", 8))
    }
}
