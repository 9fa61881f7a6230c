//! etcdserverpb.Maintenance: Status (with the alarms as errors), Alarm (through raft, see
//! `crate::alarm`), Defragment (while serving, see `retcd_mvcc::Store::defragment`),
//! Snapshot (streamed store image, see `crate::snapshot`), Hash and HashKV, MoveLeader,
//! Downgrade validation.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::maintenance_server::Maintenance;
use retcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest, DowngradeResponse,
    HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest, MoveLeaderResponse,
    SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::alarm::AlarmStore;
use crate::etcdserver::{ETCD_COMPAT_VERSION, EtcdServer};

/// The cluster version retcd runs (etcd's cluster version is major.minor.0).
pub const CLUSTER_VERSION: &str = "3.5.0";
const CLUSTER_VERSION_MAJOR_MINOR: (u64, u64) = (3, 5);

/// etcd's `convertToClusterVersion`: "X.Y.Z" (semver) or "X.Y".
fn parse_major_minor(v: &str) -> Option<(u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    if !(parts.len() == 2 || parts.len() == 3) {
        return None;
    }
    // no empty parts, no leading zeros (semver)
    let valid = |p: &&str| !(p.is_empty() || (p.len() > 1 && p.starts_with('0')));
    let nums: Option<Vec<u64>> = parts
        .iter()
        .map(|p| valid(p).then(|| p.parse().ok()).flatten())
        .collect();
    let nums = nums?;
    Some((nums[0], nums[1]))
}

pub struct MaintenanceService {
    pub s: Arc<EtcdServer>,
}

impl MaintenanceService {
    /// etcd's `authMaintenanceServer.isAuthenticated` (Defragment, Snapshot, Hash, HashKV):
    /// root only when auth is on, refused with the auth package's own error.
    fn require_root(&self) -> Result<(), Status> {
        self.s.auth.check_admin().map_err(crate::snapshot::admin_error)
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    /// A token that is not valid is answered with the auth package's error (code Unknown),
    /// as etcd's maintenance server passes the proposal's error on untranslated.
    async fn alarm(&self, request: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller_or(&md, crate::snapshot::admin_error, async move {
                let r = request.into_inner();
                Ok(Response::new(self.s.alarm(r).await?))
            })
            .await
    }

    async fn status(&self, _request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        // etcd 3.4 answers without looking at the credentials (a token that is not
        // valid is not refused)
        async move {
            let st = self.s.raft.status();
            // (may walk redb's pages, at most once a second: off the runtime)
            let store = self.s.store.clone();
            let in_use = tokio::task::spawn_blocking(move || store.db_size_in_use())
                .await
                .map_err(|e| Status::from(EtcdError::Internal(e.to_string())))?;
            Ok(Response::new(StatusResponse {
                header: self.s.header(0),
                version: ETCD_COMPAT_VERSION.to_string(),
                db_size: self.s.store.db_size() as i64,
                leader: st.leader.unwrap_or(0),
                raft_index: st.committed_index,
                raft_term: st.term,
                raft_applied_index: st.applied_index,
                errors: self.s.alarms.get(0).iter().map(AlarmStore::describe).collect(),
                db_size_in_use: in_use as i64,
                is_learner: self
                    .s
                    .raft
                    .members()
                    .iter()
                    .any(|(id, _, learner)| *id == self.s.member_id && *learner),
                ..Default::default()
            }))
        }
        .await
    }

    /// etcd's Defragment (root only when auth is on), without its stall: reads and
    /// writes go on while the backend is rewritten (see `retcd_mvcc::Store::defragment`).
    async fn defragment(
        &self,
        request: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller_or(&md, crate::snapshot::admin_error, async move {
                self.require_root()?;
                let store = self.s.store.clone();
                tokio::task::spawn_blocking(move || store.defragment())
                    .await
                    .map_err(|e| Status::from(EtcdError::Internal(e.to_string())))?
                    .map_err(|e| Status::from(EtcdError::Internal(e.to_string())))?;
                Ok(Response::new(DefragmentResponse {
                    header: self.s.header(0),
                }))
            })
            .await
    }

    /// etcd's Hash: a hash of the whole backend at one revision (the header's). Here it is
    /// the store's state hash, which leaves out member-local entries so that members with
    /// the same applied state agree (see `docs/backend.md`). Needs root once auth is on.
    async fn hash(&self, request: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller_or(&md, crate::snapshot::admin_error, async move {
                self.require_root()?;
                let store = self.s.store.clone();
                let (hash, rev) = tokio::task::spawn_blocking(move || store.read().hash_state())
                    .await
                    .map_err(|e| Status::from(EtcdError::Internal(e.to_string())))?
                    .map_err(|e| Status::from(EtcdError::Internal(e.to_string())))?;
                Ok(Response::new(HashResponse {
                    header: self.s.header(rev),
                    hash,
                }))
            })
            .await
    }

    async fn hash_kv(&self, request: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller_or(&md, crate::snapshot::admin_error, async move {
                self.require_root()?;
                let rev = request.into_inner().revision;
                Ok(Response::new(crate::corrupt::hash_kv(&self.s, rev).await?))
            })
            .await
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    /// etcd's Snapshot: the backend's image in 32 KiB blobs, then its SHA-256 (see
    /// `crate::snapshot`). Needs root once auth is on.
    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let md = request.metadata().clone();
        self.s
            .as_caller_or(&md, crate::snapshot::admin_error, async move {
                self.require_root()?;
                let rx = crate::snapshot::stream(self.s.store.clone());
                let stream: Self::SnapshotStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
                Ok(Response::new(stream))
            })
            .await
    }

    /// etcd's MoveLeader: only the leader moves leadership, only to a voting member, and
    /// answers once the target leads (or times out).
    async fn move_leader(
        &self,
        request: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        // etcd 3.4 answers without looking at the credentials (a token that is not
        // valid is not refused)
        async move {
            let target = request.into_inner().target_id;
            let st = self.s.raft.status();
            if !st.is_leader {
                return Err(EtcdError::NotLeader.into());
            }
            let voter = self
                .s
                .raft
                .members()
                .into_iter()
                .any(|(id, _, learner)| id == target && !learner);
            if !voter {
                return Err(EtcdError::BadLeaderTransferee.into());
            }
            if target != self.s.member_id {
                let timeout = crate::etcdserver::request_timeout(&self.s.cfg);
                let moved = self
                    .s
                    .raft
                    .move_leader(target, timeout)
                    .await
                    .map_err(|e| Status::from(EtcdError::Internal(e.to_string())))?;
                if !moved {
                    return Err(EtcdError::TimeoutLeaderTransfer.into());
                }
            }
            // etcd 3.4 answers MoveLeader without a header
            Ok(Response::new(MoveLeaderResponse { header: None }))
        }
        .await
    }

    async fn downgrade(
        &self,
        request: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        use retcd_api::etcdserverpb::downgrade_request::DowngradeAction;
        let r = request.into_inner();
        let version = CLUSTER_VERSION.to_string();
        match DowngradeAction::try_from(r.action) {
            // etcd: the target must parse as a version and be exactly one minor below the
            // cluster version; no downgrade can be in progress (retcd never starts one).
            Ok(DowngradeAction::Validate) => {
                let (major, minor) =
                    parse_major_minor(&r.version).ok_or(EtcdError::WrongDowngradeVersionFormat)?;
                if (major, minor + 1) != CLUSTER_VERSION_MAJOR_MINOR {
                    return Err(EtcdError::InvalidDowngradeTargetVersion.into());
                }
                Ok(Response::new(DowngradeResponse {
                    header: self.s.header(0),
                    version,
                }))
            }
            Ok(DowngradeAction::Cancel) => Err(EtcdError::NoInflightDowngrade.into()),
            // Running retcd as an older etcd version is not something retcd can do.
            Ok(DowngradeAction::Enable) => Err(Status::failed_precondition(
                "retcd: downgrading the cluster version is not supported (retcd speaks the etcd 3.5 API only)",
            )),
            // etcd answers an unknown action with its untyped ErrUnknownMethod.
            Err(_) => Err(Status::unknown("etcdserver: unknown method")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_major_minor;

    #[test]
    fn downgrade_versions() {
        assert_eq!(parse_major_minor("3.4"), Some((3, 4)));
        assert_eq!(parse_major_minor("3.4.0"), Some((3, 4)));
        assert_eq!(parse_major_minor("3.4.23"), Some((3, 4)));
        assert_eq!(parse_major_minor("3"), None);
        assert_eq!(parse_major_minor("3.x"), None);
        assert_eq!(parse_major_minor("03.4"), None);
        assert_eq!(parse_major_minor(""), None);
    }
}
