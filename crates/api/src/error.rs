//! The one table of errors retcd returns to clients.
//!
//! Each variant is one etcd server error: its `Display` is etcd's exact
//! message and [`EtcdError::code`] etcd's gRPC status code (as in etcd's
//! `api/v3rpc/rpctypes/error.go`). etcd's clients recognise errors by the
//! message text, so these strings must not change.
//!
//! Codes follow etcd 3.5. Errors that etcd added after 3.5
//! (`InvalidSortOption`, `PermissionNotGiven`, `AuthOldRevision`,
//! `ClusterIdMismatch`, `TimeoutWaitAppliedIndex`) use the messages and
//! codes of the release that introduced them.

use tonic::{Code, Status};

/// An etcd server error, as seen by gRPC clients.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    // --- request validation and KV ---
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,

    // --- lease ---
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,

    // --- watch ---
    #[error("etcdserver: watch canceled")]
    WatchCanceled,

    // --- membership ---
    #[error("etcdserver: member ID already exist")]
    MemberExist,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExist,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    MemberNotEnoughStarted,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: cluster ID mismatch")]
    ClusterIdMismatch,

    // --- request limits ---
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: too many requests")]
    TooManyRequests,

    // --- auth ---
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// etcd's maintenance calls that need root (Hash, HashKV, Defragment, Snapshot) answer
    /// with the auth package's own error, not the `etcdserver:` one.
    #[error("auth: permission denied")]
    MaintenanceAuthDenied,

    // --- leadership, availability, timeouts ---
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: not leader")]
    NotLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: not capable")]
    NotCapable,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    #[error("etcdserver: request timed out, possibly due to connection lost")]
    TimeoutDueToConnectionLost,
    #[error("etcdserver: request timed out, waiting for the applied index took too long")]
    TimeoutWaitAppliedIndex,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    #[error("etcdserver: rpc not supported for learner")]
    NotSupportedForLearner,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TimeoutLeaderTransfer,

    // --- downgrade ---
    #[error("etcdserver: cluster version not found during downgrade")]
    ClusterVersionUnavailable,
    #[error("etcdserver: wrong downgrade target version format")]
    WrongDowngradeVersionFormat,
    #[error("etcdserver: invalid downgrade target version")]
    InvalidDowngradeTargetVersion,
    #[error("etcdserver: cluster has a downgrade job in progress")]
    DowngradeInProcess,
    #[error("etcdserver: no inflight downgrade job")]
    NoInflightDowngrade,

    // --- request context ---
    #[error("etcdserver: request canceled")]
    Canceled,
    #[error("etcdserver: context deadline exceeded")]
    DeadlineExceeded,

    // --- Lock and Election services (plain Go errors in etcd: gRPC code Unknown) ---
    #[error("election: not leader")]
    ElectionNotLeader,
    #[error("election: no leader")]
    ElectionNoLeader,
    #[error("\"leader\" field must be provided")]
    ElectionMissingLeaderKey,

    // --- retcd-specific ---
    /// An unexpected internal failure; the message is sent as given.
    #[error("{0}")]
    Internal(String),
}

impl EtcdError {
    /// The gRPC status code etcd uses for this error.
    pub fn code(&self) -> Code {
        use EtcdError::*;
        match self {
            EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey
            | InvalidSortOption => Code::InvalidArgument,
            Compacted | FutureRev => Code::OutOfRange,
            NoSpace => Code::ResourceExhausted,

            LeaseNotFound => Code::NotFound,
            LeaseExist => Code::FailedPrecondition,
            LeaseTtlTooLarge => Code::OutOfRange,

            WatchCanceled => Code::Cancelled,

            MemberExist | PeerUrlExist | MemberNotEnoughStarted => Code::FailedPrecondition,
            MemberBadUrls => Code::InvalidArgument,
            MemberNotFound => Code::NotFound,
            MemberNotLearner | LearnerNotReady | TooManyLearners | ClusterIdMismatch => {
                Code::FailedPrecondition
            }

            RequestTooLarge => Code::InvalidArgument,
            TooManyRequests => Code::ResourceExhausted,

            RootUserNotExist | RootRoleNotExist | UserAlreadyExist => Code::FailedPrecondition,
            UserEmpty => Code::InvalidArgument,
            UserNotFound | RoleAlreadyExist | RoleNotFound => Code::FailedPrecondition,
            RoleEmpty | AuthFailed | PermissionNotGiven => Code::InvalidArgument,
            PermissionDenied => Code::PermissionDenied,
            RoleNotGranted | PermissionNotGranted | AuthNotEnabled => Code::FailedPrecondition,
            InvalidAuthToken => Code::Unauthenticated,
            InvalidAuthMgmt | AuthOldRevision => Code::InvalidArgument,

            NoLeader => Code::Unavailable,
            NotLeader => Code::FailedPrecondition,
            LeaderChanged
            | NotCapable
            | Stopped
            | Timeout
            | TimeoutDueToLeaderFail
            | TimeoutDueToConnectionLost
            | TimeoutWaitAppliedIndex
            | Unhealthy => Code::Unavailable,
            Corrupt => Code::DataLoss,
            NotSupportedForLearner => Code::Unavailable,
            BadLeaderTransferee => Code::FailedPrecondition,
            TimeoutLeaderTransfer => Code::Unavailable,

            ClusterVersionUnavailable => Code::Unavailable,
            WrongDowngradeVersionFormat | InvalidDowngradeTargetVersion => Code::InvalidArgument,
            DowngradeInProcess | NoInflightDowngrade => Code::FailedPrecondition,

            Canceled => Code::Cancelled,
            DeadlineExceeded => Code::DeadlineExceeded,

            ElectionNotLeader | ElectionNoLeader | ElectionMissingLeaderKey => Code::Unknown,
            MaintenanceAuthDenied => Code::Unknown,

            Internal(_) => Code::Internal,
        }
    }
}

impl From<EtcdError> for Status {
    fn from(err: EtcdError) -> Self {
        Status::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EtcdError::*;

    /// Every variant with etcd's code and exact message.
    fn table() -> Vec<(EtcdError, Code, &'static str)> {
        vec![
            (EmptyKey, Code::InvalidArgument, "etcdserver: key is not provided"),
            (KeyNotFound, Code::InvalidArgument, "etcdserver: key not found"),
            (
                ValueProvided,
                Code::InvalidArgument,
                "etcdserver: value is provided",
            ),
            (
                LeaseProvided,
                Code::InvalidArgument,
                "etcdserver: lease is provided",
            ),
            (
                TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                InvalidSortOption,
                Code::InvalidArgument,
                "etcdserver: invalid sort option",
            ),
            (
                Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                FutureRev,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                NoSpace,
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                LeaseExist,
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                LeaseTtlTooLarge,
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (WatchCanceled, Code::Cancelled, "etcdserver: watch canceled"),
            (
                MemberExist,
                Code::FailedPrecondition,
                "etcdserver: member ID already exist",
            ),
            (
                PeerUrlExist,
                Code::FailedPrecondition,
                "etcdserver: Peer URLs already exists",
            ),
            (
                MemberNotEnoughStarted,
                Code::FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (
                MemberBadUrls,
                Code::InvalidArgument,
                "etcdserver: given member URLs are invalid",
            ),
            (MemberNotFound, Code::NotFound, "etcdserver: member not found"),
            (
                MemberNotLearner,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member",
            ),
            (
                LearnerNotReady,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (
                TooManyLearners,
                Code::FailedPrecondition,
                "etcdserver: too many learner members in cluster",
            ),
            (
                ClusterIdMismatch,
                Code::FailedPrecondition,
                "etcdserver: cluster ID mismatch",
            ),
            (
                RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                TooManyRequests,
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ),
            (
                RootUserNotExist,
                Code::FailedPrecondition,
                "etcdserver: root user does not exist",
            ),
            (
                RootRoleNotExist,
                Code::FailedPrecondition,
                "etcdserver: root user does not have root role",
            ),
            (
                UserAlreadyExist,
                Code::FailedPrecondition,
                "etcdserver: user name already exists",
            ),
            (UserEmpty, Code::InvalidArgument, "etcdserver: user name is empty"),
            (
                UserNotFound,
                Code::FailedPrecondition,
                "etcdserver: user name not found",
            ),
            (
                RoleAlreadyExist,
                Code::FailedPrecondition,
                "etcdserver: role name already exists",
            ),
            (
                RoleNotFound,
                Code::FailedPrecondition,
                "etcdserver: role name not found",
            ),
            (RoleEmpty, Code::InvalidArgument, "etcdserver: role name is empty"),
            (
                AuthFailed,
                Code::InvalidArgument,
                "etcdserver: authentication failed, invalid user ID or password",
            ),
            (
                PermissionNotGiven,
                Code::InvalidArgument,
                "etcdserver: permission not given",
            ),
            (
                PermissionDenied,
                Code::PermissionDenied,
                "etcdserver: permission denied",
            ),
            (
                RoleNotGranted,
                Code::FailedPrecondition,
                "etcdserver: role is not granted to the user",
            ),
            (
                PermissionNotGranted,
                Code::FailedPrecondition,
                "etcdserver: permission is not granted to the role",
            ),
            (
                AuthNotEnabled,
                Code::FailedPrecondition,
                "etcdserver: authentication is not enabled",
            ),
            (
                InvalidAuthToken,
                Code::Unauthenticated,
                "etcdserver: invalid auth token",
            ),
            (
                InvalidAuthMgmt,
                Code::InvalidArgument,
                "etcdserver: invalid auth management",
            ),
            (
                AuthOldRevision,
                Code::InvalidArgument,
                "etcdserver: revision of auth store is old",
            ),
            (MaintenanceAuthDenied, Code::Unknown, "auth: permission denied"),
            (ElectionNotLeader, Code::Unknown, "election: not leader"),
            (ElectionNoLeader, Code::Unknown, "election: no leader"),
            (
                ElectionMissingLeaderKey,
                Code::Unknown,
                "\"leader\" field must be provided",
            ),
            (NoLeader, Code::Unavailable, "etcdserver: no leader"),
            (NotLeader, Code::FailedPrecondition, "etcdserver: not leader"),
            (LeaderChanged, Code::Unavailable, "etcdserver: leader changed"),
            (NotCapable, Code::Unavailable, "etcdserver: not capable"),
            (Stopped, Code::Unavailable, "etcdserver: server stopped"),
            (Timeout, Code::Unavailable, "etcdserver: request timed out"),
            (
                TimeoutDueToLeaderFail,
                Code::Unavailable,
                "etcdserver: request timed out, possibly due to previous leader failure",
            ),
            (
                TimeoutDueToConnectionLost,
                Code::Unavailable,
                "etcdserver: request timed out, possibly due to connection lost",
            ),
            (
                TimeoutWaitAppliedIndex,
                Code::Unavailable,
                "etcdserver: request timed out, waiting for the applied index took too long",
            ),
            (Unhealthy, Code::Unavailable, "etcdserver: unhealthy cluster"),
            (Corrupt, Code::DataLoss, "etcdserver: corrupt cluster"),
            (
                NotSupportedForLearner,
                Code::Unavailable,
                "etcdserver: rpc not supported for learner",
            ),
            (
                BadLeaderTransferee,
                Code::FailedPrecondition,
                "etcdserver: bad leader transferee",
            ),
            (
                TimeoutLeaderTransfer,
                Code::Unavailable,
                "etcdserver: request timed out, leader transfer took too long",
            ),
            (
                ClusterVersionUnavailable,
                Code::Unavailable,
                "etcdserver: cluster version not found during downgrade",
            ),
            (
                WrongDowngradeVersionFormat,
                Code::InvalidArgument,
                "etcdserver: wrong downgrade target version format",
            ),
            (
                InvalidDowngradeTargetVersion,
                Code::InvalidArgument,
                "etcdserver: invalid downgrade target version",
            ),
            (
                DowngradeInProcess,
                Code::FailedPrecondition,
                "etcdserver: cluster has a downgrade job in progress",
            ),
            (
                NoInflightDowngrade,
                Code::FailedPrecondition,
                "etcdserver: no inflight downgrade job",
            ),
            (Canceled, Code::Cancelled, "etcdserver: request canceled"),
            (
                DeadlineExceeded,
                Code::DeadlineExceeded,
                "etcdserver: context deadline exceeded",
            ),
            (Internal("boom".into()), Code::Internal, "boom"),
        ]
    }

    /// Number of variants of `EtcdError`.
    const VARIANTS: usize = 68;

    /// Compile-time guard: adding a variant breaks this match until the
    /// variant is also added here, as a reminder to add it to `table()` and
    /// to bump `VARIANTS`.
    fn listed(e: &EtcdError) -> bool {
        match e {
            EmptyKey
            | KeyNotFound
            | ValueProvided
            | LeaseProvided
            | TooManyOps
            | DuplicateKey
            | InvalidSortOption
            | Compacted
            | FutureRev
            | NoSpace
            | LeaseNotFound
            | LeaseExist
            | LeaseTtlTooLarge
            | WatchCanceled
            | MemberExist
            | PeerUrlExist
            | MemberNotEnoughStarted
            | MemberBadUrls
            | MemberNotFound
            | MemberNotLearner
            | LearnerNotReady
            | TooManyLearners
            | ClusterIdMismatch
            | RequestTooLarge
            | TooManyRequests
            | RootUserNotExist
            | RootRoleNotExist
            | UserAlreadyExist
            | UserEmpty
            | UserNotFound
            | RoleAlreadyExist
            | RoleNotFound
            | RoleEmpty
            | AuthFailed
            | PermissionNotGiven
            | PermissionDenied
            | RoleNotGranted
            | PermissionNotGranted
            | AuthNotEnabled
            | InvalidAuthToken
            | InvalidAuthMgmt
            | AuthOldRevision
            | NoLeader
            | NotLeader
            | LeaderChanged
            | NotCapable
            | Stopped
            | Timeout
            | TimeoutDueToLeaderFail
            | TimeoutDueToConnectionLost
            | TimeoutWaitAppliedIndex
            | Unhealthy
            | Corrupt
            | NotSupportedForLearner
            | BadLeaderTransferee
            | TimeoutLeaderTransfer
            | ClusterVersionUnavailable
            | WrongDowngradeVersionFormat
            | InvalidDowngradeTargetVersion
            | DowngradeInProcess
            | NoInflightDowngrade
            | Canceled
            | DeadlineExceeded
            | ElectionNotLeader
            | ElectionNoLeader
            | ElectionMissingLeaderKey
            | MaintenanceAuthDenied
            | Internal(_) => true,
        }
    }

    #[test]
    fn every_variant_has_etcds_code_and_message() {
        let table = table();
        assert_eq!(
            table.len(),
            VARIANTS,
            "table must list every variant exactly once"
        );
        for (err, code, msg) in table {
            assert!(listed(&err));
            assert_eq!(err.code(), code, "code of {err:?}");
            assert_eq!(err.to_string(), msg, "message of {err:?}");
            let status = Status::from(err.clone());
            assert_eq!(status.code(), code, "status code of {err:?}");
            assert_eq!(status.message(), msg, "status message of {err:?}");
        }
    }

    #[test]
    fn table_has_no_duplicate_variants_or_messages() {
        let table = table();
        for (i, (a, _, ma)) in table.iter().enumerate() {
            for (b, _, mb) in &table[i + 1..] {
                assert_ne!(
                    std::mem::discriminant(a),
                    std::mem::discriminant(b),
                    "{a:?} listed twice"
                );
                assert_ne!(ma, mb, "{a:?} and {b:?} share a message");
            }
        }
    }
}
