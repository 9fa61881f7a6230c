//! Why an auth operation failed.

use retcd_api::EtcdError;

/// An auth store error: one variant per error of etcd's `auth` package that a request can
/// meet. `Display` is etcd's own (internal, logged) message; what a client sees is the
/// [`EtcdError`] it converts into, with etcd's `rpctypes` message and code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("auth: root user does not exist")]
    RootUserNotExist,
    #[error("auth: root user does not have root role")]
    RootRoleNotExist,
    #[error("auth: user already exists")]
    UserAlreadyExist,
    #[error("auth: user name is empty")]
    UserEmpty,
    #[error("auth: user not found")]
    UserNotFound,
    #[error("auth: role already exists")]
    RoleAlreadyExist,
    #[error("auth: role not found")]
    RoleNotFound,
    #[error("auth: role name is empty")]
    RoleEmpty,
    #[error("auth: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("auth: permission not given")]
    PermissionNotGiven,
    #[error("auth: permission denied")]
    PermissionDenied,
    #[error("auth: role is not granted to the user")]
    RoleNotGranted,
    #[error("auth: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("auth: authentication is not enabled")]
    AuthNotEnabled,
    #[error("auth: invalid auth token")]
    InvalidAuthToken,
    #[error("auth: invalid auth management")]
    InvalidAuthMgmt,
    #[error("auth: revision in header is old")]
    AuthOldRevision,
    /// A JWT provider configured with only a public key cannot issue tokens (etcd's
    /// `ErrVerifyOnly`; not in etcd's client error table, so clients see it as is).
    #[error("auth: token signing attempted with verify-only key")]
    VerifyOnly,
    /// Hashing a password or signing a token failed for a reason that is not the
    /// client's (randomness unavailable, a key the crypto library rejects).
    #[error("auth: {0}")]
    Internal(String),
}

impl From<AuthError> for EtcdError {
    fn from(e: AuthError) -> EtcdError {
        match e {
            AuthError::RootUserNotExist => EtcdError::RootUserNotExist,
            AuthError::RootRoleNotExist => EtcdError::RootRoleNotExist,
            AuthError::UserAlreadyExist => EtcdError::UserAlreadyExist,
            AuthError::UserEmpty => EtcdError::UserEmpty,
            AuthError::UserNotFound => EtcdError::UserNotFound,
            AuthError::RoleAlreadyExist => EtcdError::RoleAlreadyExist,
            AuthError::RoleNotFound => EtcdError::RoleNotFound,
            AuthError::RoleEmpty => EtcdError::RoleEmpty,
            AuthError::AuthFailed => EtcdError::AuthFailed,
            AuthError::PermissionNotGiven => EtcdError::PermissionNotGiven,
            AuthError::PermissionDenied => EtcdError::PermissionDenied,
            AuthError::RoleNotGranted => EtcdError::RoleNotGranted,
            AuthError::PermissionNotGranted => EtcdError::PermissionNotGranted,
            AuthError::AuthNotEnabled => EtcdError::AuthNotEnabled,
            AuthError::InvalidAuthToken => EtcdError::InvalidAuthToken,
            AuthError::InvalidAuthMgmt => EtcdError::InvalidAuthMgmt,
            AuthError::AuthOldRevision => EtcdError::AuthOldRevision,
            e @ (AuthError::VerifyOnly | AuthError::Internal(_)) => EtcdError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_api::EtcdError as E;

    /// Every variant: etcd's internal message, the client error it becomes and that
    /// error's message.
    fn table() -> Vec<(AuthError, &'static str, E, &'static str)> {
        use AuthError as A;
        vec![
            (
                A::RootUserNotExist,
                "auth: root user does not exist",
                E::RootUserNotExist,
                "etcdserver: root user does not exist",
            ),
            (
                A::RootRoleNotExist,
                "auth: root user does not have root role",
                E::RootRoleNotExist,
                "etcdserver: root user does not have root role",
            ),
            (
                A::UserAlreadyExist,
                "auth: user already exists",
                E::UserAlreadyExist,
                "etcdserver: user name already exists",
            ),
            (
                A::UserEmpty,
                "auth: user name is empty",
                E::UserEmpty,
                "etcdserver: user name is empty",
            ),
            (
                A::UserNotFound,
                "auth: user not found",
                E::UserNotFound,
                "etcdserver: user name not found",
            ),
            (
                A::RoleAlreadyExist,
                "auth: role already exists",
                E::RoleAlreadyExist,
                "etcdserver: role name already exists",
            ),
            (
                A::RoleNotFound,
                "auth: role not found",
                E::RoleNotFound,
                "etcdserver: role name not found",
            ),
            (
                A::RoleEmpty,
                "auth: role name is empty",
                E::RoleEmpty,
                "etcdserver: role name is empty",
            ),
            (
                A::AuthFailed,
                "auth: authentication failed, invalid user ID or password",
                E::AuthFailed,
                "etcdserver: authentication failed, invalid user ID or password",
            ),
            (
                A::PermissionNotGiven,
                "auth: permission not given",
                E::PermissionNotGiven,
                "etcdserver: permission not given",
            ),
            (
                A::PermissionDenied,
                "auth: permission denied",
                E::PermissionDenied,
                "etcdserver: permission denied",
            ),
            (
                A::RoleNotGranted,
                "auth: role is not granted to the user",
                E::RoleNotGranted,
                "etcdserver: role is not granted to the user",
            ),
            (
                A::PermissionNotGranted,
                "auth: permission is not granted to the role",
                E::PermissionNotGranted,
                "etcdserver: permission is not granted to the role",
            ),
            (
                A::AuthNotEnabled,
                "auth: authentication is not enabled",
                E::AuthNotEnabled,
                "etcdserver: authentication is not enabled",
            ),
            (
                A::InvalidAuthToken,
                "auth: invalid auth token",
                E::InvalidAuthToken,
                "etcdserver: invalid auth token",
            ),
            (
                A::InvalidAuthMgmt,
                "auth: invalid auth management",
                E::InvalidAuthMgmt,
                "etcdserver: invalid auth management",
            ),
            (
                A::AuthOldRevision,
                "auth: revision in header is old",
                E::AuthOldRevision,
                "etcdserver: revision of auth store is old",
            ),
            (
                A::VerifyOnly,
                "auth: token signing attempted with verify-only key",
                E::Internal("auth: token signing attempted with verify-only key".into()),
                "auth: token signing attempted with verify-only key",
            ),
            (
                A::Internal("no randomness".into()),
                "auth: no randomness",
                E::Internal("auth: no randomness".into()),
                "auth: no randomness",
            ),
        ]
    }

    /// Compile-time guard: a new variant breaks this match until it is listed in `table()`.
    fn listed(e: &AuthError) -> bool {
        use AuthError::*;
        match e {
            RootUserNotExist | RootRoleNotExist | UserAlreadyExist | UserEmpty | UserNotFound
            | RoleAlreadyExist | RoleNotFound | RoleEmpty | AuthFailed | PermissionNotGiven
            | PermissionDenied | RoleNotGranted | PermissionNotGranted | AuthNotEnabled
            | InvalidAuthToken | InvalidAuthMgmt | AuthOldRevision | VerifyOnly | Internal(_) => true,
        }
    }

    #[test]
    fn every_variant_maps_to_etcds_client_error() {
        let table = table();
        assert_eq!(table.len(), 19, "table must list every variant once");
        for (auth, internal_msg, etcd, client_msg) in table {
            assert!(listed(&auth));
            assert_eq!(auth.to_string(), internal_msg, "message of {auth:?}");
            let mapped = EtcdError::from(auth.clone());
            assert_eq!(mapped, etcd, "mapping of {auth:?}");
            assert_eq!(mapped.to_string(), client_msg, "client message of {auth:?}");
        }
    }
}
