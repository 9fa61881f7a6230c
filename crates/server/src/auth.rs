//! The server's side of auth (etcd's `auth` hooks in `etcdserver`): the member's
//! [`AuthStore`] behind a lock, its persistence in the backend's meta table, and who sent a
//! request.
//!
//! - **Who**: every gRPC handler resolves the request's credentials once
//!   ([`AuthHub::info_from`]: the `token` metadata, else the `authorization` header) and runs
//!   the request inside [`scoped`], so everything it calls — reads checking permissions,
//!   proposals carrying the user in their raft header — sees the same [`AuthInfo`] through
//!   [`current`].
//! - **Where checked**: reads and watches before they run, on the member that serves them;
//!   writes, lease revokes and every auth request when applied, from the raft header, so a
//!   permission change committed before the write is always honoured (etcd's
//!   `authApplierV3`).
//! - **Persisted** as app meta blobs in the same backend transaction as the applied index:
//!   `auth/enabled`, `auth/revision`, `authUsers/<name>` (authpb.User), `authRoles/<name>`
//!   (authpb.Role).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use prost::Message;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::{DeleteRangeRequest, PutRequest, TxnRequest, request_op};
use retcd_auth::{AuthInfo, AuthState, AuthStore, AuthWrite, Role, TokenProvider, User};
use retcd_mvcc::{Batch, MvccError, Store};

use crate::raft_request::InternalAuthenticateRequest;

const META_ENABLED: &str = "auth/enabled";
const META_REVISION: &str = "auth/revision";
const USERS_PREFIX: &str = "authUsers/";
const ROLES_PREFIX: &str = "authRoles/";

tokio::task_local! {
    /// The credentials of the request this task is serving.
    static AUTH: AuthInfo;
    /// The Common Name of the verified client certificate of the request's connection.
    static PEER_CN: Option<String>;
}

/// The tower layer over the client gRPC routes that makes the connection's client
/// certificate CN (mutual TLS) visible to [`AuthHub::info_from`] for the request.
#[derive(Clone, Copy, Default)]
pub struct PeerCnLayer;

impl<S> tower_layer::Layer<S> for PeerCnLayer {
    type Service = PeerCn<S>;
    fn layer(&self, inner: S) -> PeerCn<S> {
        PeerCn { inner }
    }
}

#[derive(Clone)]
pub struct PeerCn<S> {
    inner: S,
}

impl<S, B> tower_service::Service<tonic::codegen::http::Request<B>> for PeerCn<S>
where
    S: tower_service::Service<tonic::codegen::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tokio::task::futures::TaskLocalFuture<Option<String>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: tonic::codegen::http::Request<B>) -> Self::Future {
        let cn = crate::tls::common_name_of(req.extensions());
        PEER_CN.scope(cn, self.inner.call(req))
    }
}

/// Runs `f` as if its connection had no client certificate: the HTTP gateway, as etcd's,
/// never takes a certificate's CN as the user.
pub async fn without_peer_cn<F: Future>(f: F) -> F::Output {
    PEER_CN.scope(None, f).await
}

/// The credentials of the request being served (none outside a request).
pub fn current() -> AuthInfo {
    AUTH.try_with(Clone::clone).unwrap_or_default()
}

/// Runs `f` as the request of `info`.
pub async fn scoped<F: Future>(info: AuthInfo, f: F) -> F::Output {
    AUTH.scope(info, f).await
}

/// The member's auth store.
pub struct AuthHub {
    store: Mutex<AuthStore>,
    /// `--bcrypt-cost`.
    pub bcrypt_cost: u32,
    /// How tokens are made (kept to rebuild the store after a snapshot install).
    make_tokens: Box<dyn Fn() -> TokenProvider + Send + Sync>,
}

impl std::fmt::Debug for AuthHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthHub").field("store", &self.store).finish()
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> MvccError {
    MvccError::Corrupt(format!("auth record {what}: {e}"))
}

/// The auth state recorded in `store`.
pub fn load_state(store: &Store) -> Result<AuthState, MvccError> {
    let enabled = store.meta(META_ENABLED)?.is_some_and(|v| v == [1]);
    let revision = match store.meta(META_REVISION)? {
        Some(v) => u64::from_be_bytes(
            v.as_slice()
                .try_into()
                .map_err(|_| corrupt(META_REVISION, "not 8 bytes"))?,
        ),
        None => 0,
    };
    let mut users = Vec::new();
    for (name, blob) in store.metas_with_prefix(USERS_PREFIX)? {
        users.push(User::decode(blob.as_slice()).map_err(|e| corrupt(&name, e))?);
    }
    let mut roles = Vec::new();
    for (name, blob) in store.metas_with_prefix(ROLES_PREFIX)? {
        roles.push(Role::decode(blob.as_slice()).map_err(|e| corrupt(&name, e))?);
    }
    Ok(AuthState {
        enabled,
        revision,
        users,
        roles,
    })
}

/// Writes what an applied auth change must persist into the applier's batch.
pub fn persist(batch: &mut Batch<'_>, writes: &[AuthWrite]) -> Result<(), MvccError> {
    for w in writes {
        match w {
            AuthWrite::PutUser(u) => batch.set_meta(
                &format!("{USERS_PREFIX}{}", String::from_utf8_lossy(&u.name)),
                &u.encode_to_vec(),
            )?,
            AuthWrite::DeleteUser(name) => batch.delete_meta(&format!("{USERS_PREFIX}{name}"))?,
            AuthWrite::PutRole(r) => batch.set_meta(
                &format!("{ROLES_PREFIX}{}", String::from_utf8_lossy(&r.name)),
                &r.encode_to_vec(),
            )?,
            AuthWrite::DeleteRole(name) => batch.delete_meta(&format!("{ROLES_PREFIX}{name}"))?,
            AuthWrite::SetEnabled(on) => batch.set_meta(META_ENABLED, &[u8::from(*on)])?,
            AuthWrite::SetRevision(rev) => batch.set_meta(META_REVISION, &rev.to_be_bytes())?,
        }
    }
    Ok(())
}

impl AuthHub {
    /// The auth store as recorded in `store`.
    pub fn load(
        store: &Store,
        make_tokens: impl Fn() -> TokenProvider + Send + Sync + 'static,
        bcrypt_cost: u32,
    ) -> Result<Arc<AuthHub>, MvccError> {
        let state = load_state(store)?;
        Ok(Arc::new(AuthHub {
            store: Mutex::new(AuthStore::load(state, make_tokens())),
            bcrypt_cost,
            make_tokens: Box::new(make_tokens),
        }))
    }

    /// A hub over `store` alone (no backend), for tests of what runs on top of it.
    #[cfg(test)]
    pub fn for_tests(store: AuthStore, bcrypt_cost: u32) -> Arc<AuthHub> {
        Arc::new(AuthHub {
            store: Mutex::new(store),
            bcrypt_cost,
            make_tokens: Box::new(|| TokenProvider::simple(retcd_auth::DEFAULT_SIMPLE_TOKEN_TTL)),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, AuthStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The backend was replaced by a snapshot: the auth state is the snapshot's (tokens
    /// handed out before are forgotten, as on a restart).
    pub fn reload(&self, store: &Store) -> Result<(), MvccError> {
        let state = load_state(store)?;
        *self.lock() = AuthStore::load(state, (self.make_tokens)());
        Ok(())
    }

    /// The credentials a request carries: its `token` metadata (or an `authorization`
    /// header, as the JSON gateway sends it), checked against the store. A token the store
    /// does not know: `etcdserver: invalid auth token` — also while auth is disabled, as
    /// etcd's `AuthInfoFromCtx` (disabling auth forgets every simple token; a JWT still
    /// verifies, with the auth revision it was issued at). No token: no user
    /// (`AuthInfo::default()`), unless auth is enabled and the connection's verified client
    /// certificate has a CN ([`PeerCnLayer`]): then that user.
    pub fn info_from(&self, md: &tonic::metadata::MetadataMap) -> Result<AuthInfo, EtcdError> {
        let token = md
            .get("token")
            .or_else(|| md.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .filter(|t| !t.is_empty());
        let st = self.lock();
        if token.is_none() && !st.is_enabled() {
            return Ok(AuthInfo::default());
        }
        match token {
            // etcd's AuthInfoFromTLS: with mutual TLS, the certificate's CN is the user
            None => Ok(PEER_CN
                .try_with(Clone::clone)
                .ok()
                .flatten()
                .map(|cn| AuthInfo {
                    username: cn,
                    revision: st.revision(),
                })
                .unwrap_or_default()),
            Some(t) => st.auth_info(t, Instant::now()).map_err(EtcdError::from),
        }
    }

    /// etcd's `IsRangePermitted` for the current request.
    pub fn check_read(&self, key: &[u8], range_end: &[u8]) -> Result<(), EtcdError> {
        let info = current();
        self.lock()
            .is_read_permitted(&info, key, range_end)
            .map_err(EtcdError::from)
    }

    /// The end of etcd's `doSerialize`, after a read (range or read-only txn) was served:
    /// `AuthOldRevision` when the request's credentials carry an auth revision (a token's,
    /// or the store's when a simple token or certificate was resolved) other than the
    /// store's now. Also while auth is disabled: a JWT issued before `auth disable` (which
    /// moves the revision) is refused for reads, as by etcd 3.4.
    pub fn check_revision_after_read(&self) -> Result<(), EtcdError> {
        let info = current();
        if info.revision != 0 && info.revision != self.lock().revision() {
            return Err(EtcdError::AuthOldRevision);
        }
        Ok(())
    }

    /// A read-only txn served here: read access for every compare and range.
    pub fn check_txn_reads(&self, t: &TxnRequest) -> Result<(), EtcdError> {
        let info = current();
        let st = self.lock();
        if !st.is_enabled() {
            return Ok(());
        }
        let read = |k: &[u8], e: &[u8]| st.is_read_permitted(&info, k, e).map_err(EtcdError::from);
        let no_write = |_: &PutRequest| Err(EtcdError::PermissionDenied);
        let no_delete = |_: &DeleteRangeRequest| Err(EtcdError::PermissionDenied);
        check_txn(t, &read, &no_write, &no_delete)
    }

    /// etcd's `IsAdminPermitted` for the current request.
    pub fn check_admin(&self) -> Result<(), EtcdError> {
        let info = current();
        self.lock().is_admin_permitted(&info).map_err(EtcdError::from)
    }
}

/// An Authenticate entry as every member applies it: the token, unless the password was
/// checked at an auth revision the store has left since ([`AuthStore::authenticate_checked`]).
pub fn apply_authenticate(
    st: &mut AuthStore,
    a: &InternalAuthenticateRequest,
    index: u64,
    now: Instant,
) -> Result<String, retcd_auth::AuthError> {
    match a.checked_revision {
        Some(rev) => st.authenticate_checked(&a.name, rev, &a.simple_token, index, now),
        None => st.authenticate(&a.name, &a.simple_token, index, now),
    }
}

/// Checks of one kind of access (see [`check_txn`]).
pub type ReadCheck<'a> = &'a dyn Fn(&[u8], &[u8]) -> Result<(), EtcdError>;
pub type PutCheck<'a> = &'a dyn Fn(&PutRequest) -> Result<(), EtcdError>;
pub type DeleteCheck<'a> = &'a dyn Fn(&DeleteRangeRequest) -> Result<(), EtcdError>;

/// etcd's `checkTxnReqsPermission`: every compare needs `read` on its range, and every op
/// of both branches (nested txns included) its own check.
pub fn check_txn(
    t: &TxnRequest,
    read: ReadCheck<'_>,
    put: PutCheck<'_>,
    delete: DeleteCheck<'_>,
) -> Result<(), EtcdError> {
    for c in &t.compare {
        read(&c.key, &c.range_end)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => read(&r.key, &r.range_end)?,
            Some(request_op::Request::RequestPut(p)) => put(p)?,
            Some(request_op::Request::RequestDeleteRange(d)) => delete(d)?,
            Some(request_op::Request::RequestTxn(t)) => check_txn(t, read, put, delete)?,
            None => {}
        }
    }
    Ok(())
}
