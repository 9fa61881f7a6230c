//! The server core (etcd's `EtcdServer`): proposes writes through raft and waits for their
//! applied result, serves reads after a ReadIndex, and fills response headers.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::ResponseHeader;
use retcd_mvcc::Store;
use retcd_raft_node::{Proposed, RaftNode, RaftNodeError};
use tonic::Status;

use crate::alarm::AlarmStore;
use crate::applier::{Applied, ApplyResult};
use crate::auth::AuthHub;
use crate::config::Config;
use crate::ids::IdGenerator;
use crate::lease::LeaseHub;
use crate::raft_request::{InternalRaftRequest, RequestHeader};
use crate::wait::Wait;

/// The etcd version clients see in Status (clients gate features on it).
pub const ETCD_COMPAT_VERSION: &str = "3.5.17";

/// etcd's request timeout: 5 s plus two election timeouts.
pub fn request_timeout(cfg: &Config) -> Duration {
    Duration::from_millis(5000 + 2 * cfg.election_timeout)
}

pub struct EtcdServer {
    pub cfg: Config,
    pub store: Store,
    pub raft: RaftNode,
    pub member_id: u64,
    pub cluster_id: u64,
    /// Request and lease ids (etcd's `reqIDGen`).
    pub id_gen: IdGenerator,
    /// Proposers waiting for their applied results.
    pub wait: Arc<Wait>,
    pub leases: Arc<LeaseHub>,
    pub auth: Arc<AuthHub>,
    pub alarms: Arc<AlarmStore>,
}

/// The state the server shares with the applier.
pub struct Hubs {
    pub leases: Arc<LeaseHub>,
    pub wait: Arc<Wait>,
    pub auth: Arc<AuthHub>,
    pub alarms: Arc<AlarmStore>,
}

fn raft_err(e: RaftNodeError) -> Status {
    match e {
        RaftNodeError::NoLeader => EtcdError::NoLeader.into(),
        // A single member is always its own leader; with peers, forwarding replaces this.
        RaftNodeError::NotLeader { .. } => EtcdError::NotLeader.into(),
        RaftNodeError::LeaderChanged => EtcdError::LeaderChanged.into(),
        RaftNodeError::Stopped(_) => EtcdError::Stopped.into(),
        RaftNodeError::Io(e) => EtcdError::Internal(e.to_string()).into(),
        RaftNodeError::LearnerNotReady => EtcdError::LearnerNotReady.into(),
        RaftNodeError::Membership(m) => EtcdError::Internal(m).into(),
    }
}

impl EtcdServer {
    pub fn new(
        cfg: Config,
        store: Store,
        raft: RaftNode,
        (member_id, cluster_id): (u64, u64),
        Hubs {
            leases,
            wait,
            auth,
            alarms,
        }: Hubs,
    ) -> Arc<EtcdServer> {
        Arc::new(EtcdServer {
            cfg,
            store,
            raft,
            member_id,
            cluster_id,
            id_gen: IdGenerator::now(member_id),
            leases,
            wait,
            auth,
            alarms,
        })
    }

    /// Runs a request's handler as its sender (see [`crate::auth`]): resolves the
    /// credentials in `md` first. A simple token handed out by another member may not be
    /// applied here yet: then the member catches up (ReadIndex) and looks again.
    pub async fn as_caller<T>(
        &self,
        md: &tonic::metadata::MetadataMap,
        f: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        self.as_caller_or(md, Status::from, f).await
    }

    /// [`as_caller`](Self::as_caller), answering credentials that are not valid as
    /// `refused` says (etcd's Maintenance server answers with the auth package's errors).
    pub async fn as_caller_or<T>(
        &self,
        md: &tonic::metadata::MetadataMap,
        refused: impl Fn(EtcdError) -> Status,
        f: impl std::future::Future<Output = Result<T, Status>>,
    ) -> Result<T, Status> {
        let info = match self.auth.info_from(md) {
            Ok(info) => info,
            Err(EtcdError::InvalidAuthToken) => {
                self.linearizable_read().await?;
                self.auth.info_from(md).map_err(&refused)?
            }
            Err(e) => return Err(refused(e)),
        };
        crate::auth::scoped(info, f).await
    }

    /// A response header at `revision` (0: the current revision).
    pub fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision: if revision == 0 {
                self.store.current_revision()
            } else {
                revision
            },
            raft_term: self.raft.term(),
        })
    }

    /// Fills in the parts of a header the applier leaves out.
    pub fn fill(&self, h: &mut Option<ResponseHeader>) {
        let rev = h.as_ref().map(|h| h.revision).unwrap_or(0);
        *h = self.header(rev);
    }

    /// Proposes a request through raft (handed to the leader when this member follows) and
    /// waits until this member has applied it; returns the applied result.
    pub async fn propose(&self, req: InternalRaftRequest) -> Result<Applied, Status> {
        self.propose_applied(req).await?.map_err(Status::from)
    }

    /// [`propose`](Self::propose), with the applier's refusal (an [`EtcdError`]) apart from
    /// the proposal's own failures.
    pub async fn propose_applied(&self, mut req: InternalRaftRequest) -> Result<ApplyResult, Status> {
        let id = self.id_gen.next();
        let who = crate::auth::current();
        req.header = Some(RequestHeader {
            id,
            username: who.username,
            auth_revision: who.revision,
        });
        let data = req.encode_to_vec();
        if data.len() as u64 > self.cfg.max_request_bytes {
            return Err(EtcdError::RequestTooLarge.into());
        }
        let result = self.wait.register(id);
        let outcome = tokio::time::timeout(request_timeout(&self.cfg), async {
            match self.raft.propose(data).await.map_err(raft_err)? {
                // applied here: the applier answered through the wait registry
                Proposed::Applied(_) | Proposed::Forwarded { .. } => {}
            }
            result.await.map_err(|_| Status::from(EtcdError::Stopped))
        })
        .await;
        match outcome {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(st)) => {
                self.wait.cancel(id);
                crate::metrics::get().proposals_failed.inc();
                Err(st)
            }
            Err(_) => {
                self.wait.cancel(id);
                crate::metrics::get().proposals_failed.inc();
                Err(EtcdError::Timeout.into())
            }
        }
    }

    /// Waits until a local read is linearizable (ReadIndex).
    pub async fn linearizable_read(&self) -> Result<(), Status> {
        match tokio::time::timeout(request_timeout(&self.cfg), self.raft.read_index()).await {
            Ok(r) => r.map_err(raft_err),
            Err(_) => Err(EtcdError::Timeout.into()),
        }
    }
}
