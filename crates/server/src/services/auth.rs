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
use crate::auth::AuthHub;
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

/// etcd's `Authenticate` loop: the password is checked against the store as it is now (on
/// a blocking thread: bcrypt), and the proposal (`propose`: the token, or why the applier
/// refused it) carries the auth revision of that check. When the store has moved on by the
/// time the entry is applied (a password change, the user deleted, any auth change), the
/// applier issues no token (`AuthOldRevision`, [`crate::auth::apply_authenticate`]) and the
/// check starts over, against the password as it is then. So no member ever records a
/// token for a password that was changed concurrently, and none is handed out.
pub(crate) async fn authenticate<F, Fut>(
    auth: &AuthHub,
    name: &str,
    password: &str,
    mut propose: F,
) -> Result<String, Status>
where
    F: FnMut(InternalAuthenticateRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Result<String, EtcdError>, Status>>,
{
    loop {
        let (check, prefix) = {
            let st = auth.lock();
            (
                st.password_check(name).map_err(EtcdError::from)?,
                st.gen_token_prefix().map_err(EtcdError::from)?,
            )
        };
        let pw = password.to_string();
        let checked_revision = tokio::task::spawn_blocking(move || check.verify(&pw))
            .await
            .map_err(|e| EtcdError::Internal(e.to_string()))?
            .map_err(EtcdError::from)?;
        let req = InternalAuthenticateRequest {
            name: name.to_string(),
            password: String::new(),
            simple_token: prefix,
            checked_revision: Some(checked_revision),
        };
        match propose(req).await? {
            Ok(token) => return Ok(token),
            Err(EtcdError::AuthOldRevision) => {
                tracing::info!(user = %name, "revision when password checked became stale; retrying")
            }
            Err(e) => return Err(e.into()),
        }
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
    /// token's random part and the auth revision of the check, and every member records the
    /// token (see [`authenticate`]).
    async fn authenticate(
        &self,
        r: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let m = r.into_inner();
        // on an up-to-date member, as etcd
        self.s.linearizable_read().await?;
        let token = authenticate(&self.s.auth, &m.name, &m.password, |a| async move {
            let req = InternalRaftRequest {
                authenticate: Some(a),
                ..Default::default()
            };
            Ok(match self.s.propose_applied(req).await? {
                Ok(Applied::Auth(AuthApplied::Token(token))) => Ok(token),
                Ok(_) => Err(EtcdError::Internal(
                    "authenticate applied as something else".into(),
                )),
                Err(e) => Err(e),
            })
        })
        .await?;
        Ok(Response::new(pb::AuthenticateResponse {
            header: self.header(),
            token,
        }))
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use retcd_auth::{AuthError, AuthStore, MIN_BCRYPT_COST, TokenProvider, hash_password};

    use super::*;

    /// root, and alice with the password `old`; auth enabled; simple tokens.
    fn hub() -> Arc<AuthHub> {
        let mut st = AuthStore::new(TokenProvider::simple(retcd_auth::DEFAULT_SIMPLE_TOKEN_TTL));
        st.user_add("root", hash_password("rootpw", MIN_BCRYPT_COST).unwrap(), false)
            .unwrap();
        st.user_grant_role("root", "root").unwrap();
        st.user_add("alice", hash_password("old", MIN_BCRYPT_COST).unwrap(), false)
            .unwrap();
        st.auth_enable().unwrap();
        AuthHub::for_tests(st, MIN_BCRYPT_COST)
    }

    /// Runs the Authenticate loop for alice with `password`. Its proposals are applied as the
    /// applier does (`apply_authenticate`, at raft index 100, 101, ...), each after
    /// `meanwhile(proposal number, store)` ran: what other entries committed between the
    /// password check and this one did. Returns the answer and the proposals made.
    async fn run(
        hub: &AuthHub,
        password: &str,
        mut meanwhile: impl FnMut(usize, &mut AuthStore),
    ) -> (Result<String, Status>, Vec<InternalAuthenticateRequest>) {
        let mut proposed = Vec::new();
        let answer = authenticate(hub, "alice", password, |a| {
            let n = proposed.len();
            proposed.push(a.clone());
            let mut st = hub.lock();
            meanwhile(n, &mut st);
            let applied = crate::auth::apply_authenticate(&mut st, &a, 100 + n as u64, Instant::now())
                .map_err(EtcdError::from);
            std::future::ready(Ok(applied))
        })
        .await;
        (answer, proposed)
    }

    fn token_of(a: &InternalAuthenticateRequest, n: usize) -> String {
        format!("{}.{}", a.simple_token, 100 + n)
    }

    #[tokio::test]
    async fn nothing_in_between_one_proposal_one_token() {
        let hub = hub();
        let rev = hub.lock().revision();
        let (answer, proposed) = run(&hub, "old", |_, _| {}).await;
        assert_eq!(proposed.len(), 1);
        assert_eq!(proposed[0].checked_revision, Some(rev));
        assert!(proposed[0].password.is_empty(), "no password in the log");
        assert_eq!(answer.unwrap(), token_of(&proposed[0], 0));
    }

    #[tokio::test]
    async fn a_password_changed_concurrently_gets_no_token() {
        let hub = hub();
        let (answer, proposed) = run(&hub, "old", |n, st| {
            if n == 0 {
                st.user_change_password("alice", hash_password("new", MIN_BCRYPT_COST).unwrap())
                    .unwrap();
            }
        })
        .await;
        // the stale proposal issued nothing; checked again, the old password fails
        let e = answer.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            e.message(),
            "etcdserver: authentication failed, invalid user ID or password"
        );
        assert_eq!(proposed.len(), 1, "the second check fails before proposing");
        assert_eq!(
            hub.lock().auth_info(&token_of(&proposed[0], 0), Instant::now()),
            Err(AuthError::InvalidAuthToken),
            "no member records a token for the stale check"
        );
        // and the new password works
        let (answer, proposed) = run(&hub, "new", |_, _| {}).await;
        assert_eq!(answer.unwrap(), token_of(&proposed[0], 0));
    }

    #[tokio::test]
    async fn another_auth_change_in_between_is_retried() {
        let hub = hub();
        let (answer, proposed) = run(&hub, "old", |n, st| {
            if n == 0 {
                st.role_add("unrelated").unwrap();
            }
        })
        .await;
        assert_eq!(proposed.len(), 2);
        assert_eq!(
            proposed[1].checked_revision,
            proposed[0].checked_revision.map(|r| r + 1)
        );
        let token = answer.unwrap();
        assert_eq!(token, token_of(&proposed[1], 1));
        let st = hub.lock();
        assert_eq!(
            st.auth_info(&token_of(&proposed[0], 0), Instant::now()),
            Err(AuthError::InvalidAuthToken)
        );
        assert_eq!(
            st.auth_info(&token, Instant::now()).map(|i| i.username),
            Ok("alice".to_string())
        );
    }

    #[tokio::test]
    async fn the_user_deleted_or_auth_disabled_in_between() {
        let hub = hub();
        let (answer, proposed) = run(&hub, "old", |n, st| {
            if n == 0 {
                st.user_delete("alice").unwrap();
            }
        })
        .await;
        assert_eq!(proposed.len(), 1);
        assert_eq!(
            answer.unwrap_err().message(),
            "etcdserver: authentication failed, invalid user ID or password"
        );

        let hub = self::hub();
        let (answer, proposed) = run(&hub, "old", |_, st| {
            st.auth_disable();
        })
        .await;
        assert_eq!(proposed.len(), 1, "not a retry: etcd's answer");
        let e = answer.unwrap_err();
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert_eq!(e.message(), "etcdserver: authentication is not enabled");
    }

    #[tokio::test]
    async fn a_wrong_password_proposes_nothing() {
        let hub = hub();
        let (answer, proposed) = run(&hub, "wrong", |_, _| {}).await;
        assert!(proposed.is_empty());
        assert_eq!(answer.unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
