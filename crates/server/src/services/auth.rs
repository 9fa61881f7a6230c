//! etcdserverpb.Auth (etcd's `AuthServer` + `v3_server` auth methods): every request is
//! proposed through raft and applied on every member, where the admin checks run (see
//! `Applier::apply_auth`). Passwords are hashed (bcrypt, `--bcrypt-cost`) and checked here,
//! on a blocking thread, before anything is proposed: neither passwords nor bcrypt work
//! enter the log or the apply path.

use std::sync::Arc;

use retcd_api::EtcdError;
use retcd_api::etcdserverpb as pb;
use tonic::{Request, Response, Status};

use crate::applier::{Applied, AuthApplied};
use crate::etcdserver::EtcdServer;
use crate::raft_request::{InternalAuthenticateRequest, InternalRaftRequest};

pub struct AuthService {
    pub s: Arc<EtcdServer>,
}

impl AuthService {
    /// Proposes `req` as the sender of `md` and returns what was applied.
    async fn call(
        &self,
        md: &tonic::metadata::MetadataMap,
        req: InternalRaftRequest,
    ) -> Result<AuthApplied, Status> {
        let s = &self.s;
        s.as_caller(md, async {
            match s.propose(req).await? {
                Applied::Auth(a) => Ok(a),
                _ => Err(EtcdError::Internal("auth request applied as something else".into()).into()),
            }
        })
        .await
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        self.s.header(0)
    }

    /// bcrypt of `password` at `--bcrypt-cost`, off the async runtime.
    async fn hash(&self, password: String) -> Result<String, Status> {
        let cost = self.s.auth.bcrypt_cost;
        let hashed = tokio::task::spawn_blocking(move || retcd_auth::hash_password(&password, cost))
            .await
            .map_err(|e| EtcdError::Internal(e.to_string()))?
            .map_err(EtcdError::from)?;
        String::from_utf8(hashed).map_err(|e| EtcdError::Internal(e.to_string()).into())
    }
}

fn done(a: AuthApplied) -> Result<(), Status> {
    match a {
        AuthApplied::Done => Ok(()),
        other => Err(EtcdError::Internal(format!("unexpected auth result {other:?}")).into()),
    }
}

fn names(a: AuthApplied) -> Result<Vec<String>, Status> {
    match a {
        AuthApplied::Names(n) => Ok(n),
        other => Err(EtcdError::Internal(format!("unexpected auth result {other:?}")).into()),
    }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthService {
    async fn auth_enable(
        &self,
        r: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_enable: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthEnableResponse {
            header: self.header(),
        }))
    }

    async fn auth_disable(
        &self,
        r: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_disable: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthDisableResponse {
            header: self.header(),
        }))
    }

    async fn auth_status(
        &self,
        r: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_status: Some(m),
            ..Default::default()
        };
        match self.call(&md, req).await? {
            AuthApplied::Status { enabled, revision } => Ok(Response::new(pb::AuthStatusResponse {
                header: self.header(),
                enabled,
                auth_revision: revision,
            })),
            other => Err(EtcdError::Internal(format!("unexpected auth result {other:?}")).into()),
        }
    }

    /// etcd's `Authenticate`: the password is checked here; the proposal carries the
    /// token's random part, and every member records the token.
    async fn authenticate(
        &self,
        r: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let m = r.into_inner();
        // etcd's Authenticate: on an up-to-date member, and again if the auth store changed
        // (a password, a user) between the password check and the token being recorded
        self.s.linearizable_read().await?;
        loop {
            let (check, prefix, checked_revision) = {
                let st = self.s.auth.lock();
                let check = st.password_check(&m.name).map_err(EtcdError::from)?;
                (
                    check,
                    st.gen_token_prefix().map_err(EtcdError::from)?,
                    st.revision(),
                )
            };
            let password = m.password.clone();
            tokio::task::spawn_blocking(move || check.verify(&password))
                .await
                .map_err(|e| EtcdError::Internal(e.to_string()))?
                .map_err(EtcdError::from)?;
            let req = InternalRaftRequest {
                authenticate: Some(InternalAuthenticateRequest {
                    name: m.name.clone(),
                    password: String::new(),
                    simple_token: prefix,
                }),
                ..Default::default()
            };
            let token = match self.s.propose(req).await? {
                Applied::Auth(AuthApplied::Token(token)) => token,
                _ => return Err(EtcdError::Internal("authenticate applied as something else".into()).into()),
            };
            if checked_revision == self.s.auth.lock().revision() {
                return Ok(Response::new(pb::AuthenticateResponse {
                    header: self.header(),
                    token,
                }));
            }
            tracing::info!(user = %m.name, "revision when password checked became stale; retrying");
        }
    }

    async fn user_add(
        &self,
        r: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let (md, _, mut m) = r.into_parts();
        let no_password = m.options.is_some_and(|o| o.no_password);
        if !no_password && m.hashed_password.is_empty() {
            m.hashed_password = self.hash(std::mem::take(&mut m.password)).await?;
        }
        m.password.clear();
        let req = InternalRaftRequest {
            auth_user_add: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: self.header(),
        }))
    }

    async fn user_get(
        &self,
        r: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_user_get: Some(m),
            ..Default::default()
        };
        let roles = names(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthUserGetResponse {
            header: self.header(),
            roles,
        }))
    }

    async fn user_list(
        &self,
        r: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_user_list: Some(m),
            ..Default::default()
        };
        let users = names(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: self.header(),
            users,
        }))
    }

    async fn user_delete(
        &self,
        r: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_user_delete: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: self.header(),
        }))
    }

    async fn user_change_password(
        &self,
        r: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let (md, _, mut m) = r.into_parts();
        if m.hashed_password.is_empty() {
            m.hashed_password = self.hash(std::mem::take(&mut m.password)).await?;
        }
        m.password.clear();
        let req = InternalRaftRequest {
            auth_user_change_password: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: self.header(),
        }))
    }

    async fn user_grant_role(
        &self,
        r: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_user_grant_role: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: self.header(),
        }))
    }

    async fn user_revoke_role(
        &self,
        r: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_user_revoke_role: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: self.header(),
        }))
    }

    async fn role_add(
        &self,
        r: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_role_add: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: self.header(),
        }))
    }

    async fn role_get(
        &self,
        r: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_role_get: Some(m),
            ..Default::default()
        };
        match self.call(&md, req).await? {
            AuthApplied::Perms(perm) => Ok(Response::new(pb::AuthRoleGetResponse {
                header: self.header(),
                perm,
            })),
            other => Err(EtcdError::Internal(format!("unexpected auth result {other:?}")).into()),
        }
    }

    async fn role_list(
        &self,
        r: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_role_list: Some(m),
            ..Default::default()
        };
        let roles = names(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: self.header(),
            roles,
        }))
    }

    async fn role_delete(
        &self,
        r: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_role_delete: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: self.header(),
        }))
    }

    async fn role_grant_permission(
        &self,
        r: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_role_grant_permission: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: self.header(),
        }))
    }

    async fn role_revoke_permission(
        &self,
        r: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let (md, _, m) = r.into_parts();
        let req = InternalRaftRequest {
            auth_role_revoke_permission: Some(m),
            ..Default::default()
        };
        done(self.call(&md, req).await?)?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: self.header(),
        }))
    }
}
