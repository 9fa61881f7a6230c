//! [`RaftNode`]: one member's raft, as the server sees it: propose, read-index, status.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{Config, Raft, ReadPolicy, ServerState, SnapshotPolicy};

use crate::log_store::LogStore;
use crate::peer::{AppHandler, PeerClients, PeerNetwork, PeerService, PeerTls, pb};
use crate::state_machine::{Backend, StateMachineStore};
use crate::types::{ApplyReply, MemberNode, RaftRequest, TypeConfig};

/// How to start a member's raft.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// etcd member id.
    pub id: u64,
    /// etcd cluster id: peers of another cluster are refused.
    pub cluster_id: u64,
    /// Every member of the initial cluster (including this one), used when the log is empty.
    pub initial_members: BTreeMap<u64, MemberNode>,
    /// Where the WAL lives (`<data-dir>/member/wal`).
    pub wal_dir: PathBuf,
    /// etcd's `--heartbeat-interval`, ms.
    pub heartbeat_ms: u64,
    /// etcd's `--election-timeout`, ms.
    pub election_ms: u64,
    /// etcd's `--snapshot-count`: applied entries between snapshots (log compaction).
    pub snapshot_count: u64,
    /// A member added to a running cluster (`--initial-cluster-state existing`): it never
    /// bootstraps a cluster of its own and waits for the leader to replicate to it.
    pub join_existing: bool,
    /// etcd's `--experimental-snapshot-catchup-entries`: log entries kept behind a
    /// snapshot for slow followers.
    pub snapshot_catchup_entries: u64,
    /// etcd's `--force-new-cluster`: restart as the only member (this metadata) of a
    /// one-member cluster, keeping the data.
    pub force_new_cluster: Option<MemberNode>,
}

/// Why a proposal or a read-index failed, in etcd's terms.
#[derive(Debug, thiserror::Error)]
pub enum RaftNodeError {
    #[error("no leader")]
    NoLeader,
    /// This member is not the leader; `leader` is the leader if known.
    #[error("not leader (leader: {leader:?})")]
    NotLeader { leader: Option<u64> },
    #[error("leader changed")]
    LeaderChanged,
    #[error("raft stopped: {0}")]
    Stopped(String),
    #[error("raft storage: {0}")]
    Io(#[from] io::Error),
    /// A learner may only be promoted once it has (nearly) caught up with the leader.
    #[error("learner not ready")]
    LearnerNotReady,
    /// openraft refused a membership change.
    #[error("membership change refused: {0}")]
    Membership(String),
}

/// A change of the cluster's membership (etcd's MemberAdd / Remove / Promote / Update).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum MemberChange {
    Add {
        id: u64,
        node: MemberNode,
        learner: bool,
    },
    Remove {
        id: u64,
    },
    Promote {
        id: u64,
    },
    SetNode {
        id: u64,
        node: MemberNode,
    },
}

/// A snapshot of this member's raft status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftStatus {
    pub id: u64,
    pub term: u64,
    pub leader: Option<u64>,
    pub is_leader: bool,
    pub last_log_index: u64,
    pub committed_index: u64,
    pub applied_index: u64,
}

/// One member's raft: owns the openraft instance, the WAL and the peer transport.
#[derive(Clone)]
pub struct RaftNode {
    raft: Raft<TypeConfig, StateMachineStoreAny>,
    id: u64,
    log: LogStore,
    clients: PeerClients,
    app: Arc<Mutex<Option<AppHandler>>>,
    snap_dir: PathBuf,
    cluster_id: u64,
    /// The current term, kept up to date from openraft's metrics by a task (every response
    /// header reads it: an atomic load instead of a lock per request).
    term: Arc<std::sync::atomic::AtomicU64>,
    /// Proposals made on this member while another one leads, batched to the leader.
    forwarder: crate::forward::Forwarder,
}

/// How a proposal went.
pub enum Proposed {
    /// This member is the leader: the entry is committed and applied here; the backend's
    /// reply.
    Applied(ApplyReply),
    /// A follower handed it to the leader, which committed it at this log index; the
    /// follower applies it in turn.
    Forwarded { index: u64 },
}

/// A peer client to member `id` (`None` if it is not a member or has no peer URL).
fn peer_client(
    raft: &Raft<TypeConfig, StateMachineStoreAny>,
    clients: &PeerClients,
    id: u64,
) -> Option<crate::peer::Client> {
    let url = {
        let m = raft.metrics();
        let m = m.borrow_watched();
        m.membership_config
            .membership()
            .get_node(&id)
            .and_then(|n| n.peer_urls.first().cloned())?
    };
    clients.client(id, &url).ok()
}

/// The state machine type behind the `Raft` handle (boxed backend keeps `RaftNode` non-generic).
pub type StateMachineStoreAny = StateMachineStore<DynBackend>;

/// The server's backend behind a box (one concrete type keeps openraft's futures `Send`).
pub struct DynBackend(Box<dyn Backend>);

impl Backend for DynBackend {
    fn apply(&mut self, batch: crate::ApplyBatch) -> io::Result<Vec<ApplyReply>> {
        self.0.apply(batch)
    }
    fn applied_state(&self) -> io::Result<Option<Vec<u8>>> {
        self.0.applied_state()
    }
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync()
    }
    fn snapshot_source(&self) -> Arc<dyn crate::SnapshotSource> {
        self.0.snapshot_source()
    }
    fn install_snapshot(&mut self, image: &std::path::Path) -> io::Result<Option<Vec<u8>>> {
        self.0.install_snapshot(image)
    }
}

/// openraft stopped on a storage error or a panic (not a shutdown we asked for): the log or
/// the store failed, so the process stops loudly instead of answering every request with
/// an error.
fn stop_on_fatal(state: &Result<(), openraft::error::Fatal<TypeConfig>>) {
    if let Err(f @ (openraft::error::Fatal::StorageError(_) | openraft::error::Fatal::Panicked)) = state {
        crate::fatal(&format!("raft stopped: {f}"))
    }
}

impl RaftNode {
    /// Opens the WAL, recovers the state machine and starts raft. A member whose log is empty
    /// bootstraps the initial cluster (etcd's `--initial-cluster-state new`).
    pub async fn start(cfg: RaftNodeConfig, backend: Box<dyn Backend>) -> Result<RaftNode, RaftNodeError> {
        Self::start_with_tls(cfg, backend, None).await
    }

    /// [`start`](Self::start), dialing `https://` peer URLs with `peer_tls` (etcd's
    /// `--peer-cert-file --peer-key-file --peer-trusted-ca-file`, or `--peer-auto-tls`).
    pub async fn start_with_tls(
        cfg: RaftNodeConfig,
        backend: Box<dyn Backend>,
        peer_tls: Option<PeerTls>,
    ) -> Result<RaftNode, RaftNodeError> {
        if let Some(me) = cfg.force_new_cluster.clone() {
            force_new_cluster(&cfg, me).await?;
        }
        let log = LogStore::open(&cfg.wal_dir)?;
        // snapshot images in transit live beside the backend (`<data-dir>/member/snap`)
        let snap_dir = cfg
            .wal_dir
            .parent()
            .map(|p| p.join("snap"))
            .unwrap_or_else(|| cfg.wal_dir.join("snap"));
        std::fs::create_dir_all(&snap_dir)?;
        let source = backend.snapshot_source();
        let sm = StateMachineStore::new(Arc::new(Mutex::new(DynBackend(backend))))?;
        let election_min = cfg.election_ms.max(cfg.heartbeat_ms * 2);
        let config = Config {
            cluster_name: "retcd".to_string(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: election_min,
            election_timeout_max: election_min * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_count.max(1)),
            // etcd keeps this many entries behind a snapshot so slow followers can catch up.
            max_in_snapshot_log_to_keep: cfg.snapshot_catchup_entries,
            enable_pre_vote: Some(true),
            // The backend's commits are durable only every 100 ms and the committed index
            // rides along with later flushes, so a restarted leader must not take its old
            // leadership back: it could serve reads from a stale state machine (found by the
            // linearizability test). It rejoins through an election instead.
            enable_leader_restore: Some(false),
            ..Default::default()
        }
        .validate()
        .map_err(|e| RaftNodeError::Stopped(format!("raft config: {e}")))?;
        let clients = PeerClients::new(cfg.cluster_id, peer_tls);
        let network = PeerNetwork {
            clients: clients.clone(),
            source,
            snap_dir: snap_dir.clone(),
        };
        let raft = Raft::new(cfg.id, Arc::new(config), network, log.clone(), sm)
            .await
            .map_err(|e| RaftNodeError::Stopped(e.to_string()))?;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| RaftNodeError::Stopped(e.to_string()))?;
        if !initialized && !cfg.join_existing {
            raft.initialize(cfg.initial_members.clone())
                .await
                .map_err(|e| RaftNodeError::Stopped(e.to_string()))?;
        }
        let term = Arc::new(std::sync::atomic::AtomicU64::new(
            raft.metrics().borrow_watched().current_term,
        ));
        {
            let term = Arc::downgrade(&term);
            let mut rx = raft.metrics();
            tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let Some(term) = term.upgrade() else { return };
                    let m = rx.borrow_watched();
                    term.store(m.current_term, std::sync::atomic::Ordering::Release);
                    stop_on_fatal(&m.running_state);
                }
                stop_on_fatal(&rx.borrow_watched().running_state);
            });
        }
        let forwarder = {
            let (raft, clients) = (raft.clone(), clients.clone());
            crate::forward::Forwarder::start(Arc::new(move |id| peer_client(&raft, &clients, id)))
        };
        Ok(RaftNode {
            raft,
            id: cfg.id,
            log,
            forwarder,
            clients,
            app: Arc::new(Mutex::new(None)),
            snap_dir,
            cluster_id: cfg.cluster_id,
            term,
        })
    }

    /// The peer gRPC service to serve on this member's peer URLs.
    pub fn peer_service(&self) -> pb::peer_server::PeerServer<PeerService> {
        pb::peer_server::PeerServer::new(PeerService {
            raft: self.raft.clone(),
            app: self.app.clone(),
            snap_dir: self.snap_dir.clone(),
            cluster_id: self.cluster_id,
        })
        .max_decoding_message_size(usize::MAX)
    }

    /// Sets what this member answers to application calls from followers
    /// ([`call_leader`](Self::call_leader)).
    pub fn set_app_handler(&self, h: AppHandler) {
        *self.app.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(h);
    }

    /// A peer client to the current leader (an error if there is none or it is this member).
    fn leader_client(&self, leader: u64) -> Result<crate::peer::Client, RaftNodeError> {
        self.member_client(leader).ok_or(RaftNodeError::NoLeader)
    }

    /// A peer client to member `id` (`None` if it is not a member or has no peer URL).
    fn member_client(&self, id: u64) -> Option<crate::peer::Client> {
        peer_client(&self.raft, &self.clients, id)
    }

    /// Every member: (id, metadata, is_learner), by id.
    pub fn members(&self) -> Vec<(u64, MemberNode, bool)> {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let mut out: Vec<(u64, MemberNode, bool)> = membership
            .nodes()
            .map(|(id, n)| (*id, n.clone(), !voters.contains(id)))
            .collect();
        out.sort_by_key(|(id, _, _)| *id);
        out
    }

    /// Records this member's metadata (name, client URLs) in the replicated membership,
    /// as etcd's members publish their attributes after start.
    pub async fn publish(&self, node: MemberNode) -> Result<(), RaftNodeError> {
        let current = self.members().into_iter().find(|(id, _, _)| *id == self.id);
        if current.is_some_and(|(_, n, _)| n == node) {
            return Ok(());
        }
        self.change_member(MemberChange::SetNode { id: self.id, node })
            .await
    }

    /// Changes the membership. Done by the leader; a follower asks it.
    pub async fn change_member(&self, change: MemberChange) -> Result<(), RaftNodeError> {
        let leader = self.status().leader.ok_or(RaftNodeError::NoLeader)?;
        if leader == self.id {
            return apply_member_change(&self.raft, change).await;
        }
        let data = serde_json::to_vec(&change).map_err(|e| RaftNodeError::Io(io::Error::other(e)))?;
        let mut c = self.leader_client(leader)?;
        match c
            .app(pb::AppRequest {
                method: crate::peer::MEMBER_CHANGE_METHOD.to_string(),
                data,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(st) => Err(crate::peer::member_change_error(&st)),
        }
    }

    /// Hands leadership to member `to` (this member must lead) and waits up to `timeout`
    /// until `to` leads. `Ok(false)`: it did not happen in time.
    pub async fn move_leader(&self, to: u64, timeout: Duration) -> Result<bool, RaftNodeError> {
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| RaftNodeError::Stopped(e.to_string()))?;
        Ok(self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader == Some(to), "leadership moved")
            .await
            .is_ok())
    }

    /// Calls the leader's application handler (e.g. a lease keep-alive on a follower).
    pub async fn call_leader(&self, method: &str, data: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        let leader = self
            .status()
            .leader
            .ok_or_else(|| tonic::Status::unavailable("no leader"))?;
        self.call_member(leader, method, data).await
    }

    /// Calls member `id`'s application handler (e.g. its HashKV for a corruption check).
    pub async fn call_member(&self, id: u64, method: &str, data: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
        let mut c = self
            .member_client(id)
            .ok_or_else(|| tonic::Status::unavailable(format!("member {id:x} has no peer URL")))?;
        let resp = c
            .app(pb::AppRequest {
                method: method.to_string(),
                data,
            })
            .await?;
        Ok(resp.into_inner().data)
    }

    /// Waits until this member sees a leader and has applied everything committed before it
    /// started (so a restarted member never serves a state older than it served before).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), RaftNodeError> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "leader known")
            .await
            .map_err(|_| RaftNodeError::NoLeader)?;
        self.raft
            .wait_for_recovery(Some(timeout))
            .await
            .map_err(|_| RaftNodeError::NoLeader)?;
        Ok(())
    }

    /// Proposes `data`. On the leader: waits until it is committed (fsynced on a quorum)
    /// and applied, and returns what the backend answered. On a follower: hands it to the
    /// leader and returns once the leader has committed it.
    pub async fn propose(&self, data: Vec<u8>) -> Result<Proposed, RaftNodeError> {
        let leader = self.raft.metrics().borrow_watched().current_leader;
        if let Some(l) = leader
            && l != self.id
        {
            let index = self.forwarder.propose(l, data).await?;
            return Ok(Proposed::Forwarded { index });
        }
        match self.raft.client_write(RaftRequest(data.clone())).await {
            Ok(resp) => Ok(Proposed::Applied(resp.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => match f.leader_id {
                Some(l) => {
                    let index = self.forwarder.propose(l, data).await?;
                    Ok(Proposed::Forwarded { index })
                }
                None => Err(RaftNodeError::NoLeader),
            },
            Err(RaftError::APIError(_)) => Err(RaftNodeError::LeaderChanged),
            Err(RaftError::Fatal(f)) => Err(RaftNodeError::Stopped(f.to_string())),
        }
    }

    /// ReadIndex: confirms leadership with a quorum and waits until this member has applied
    /// everything committed up to that point. After it returns, a local read is linearizable.
    pub async fn read_index(&self) -> Result<(), RaftNodeError> {
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => match f.leader_id {
                Some(l) => {
                    // follower read: the leader's read index, then wait to apply up to it
                    let mut c = self.leader_client(l)?;
                    let index = match c.read_index(pb::ReadIndexRequest {}).await {
                        Ok(r) => r.into_inner().index,
                        Err(st) if st.code() == tonic::Code::FailedPrecondition => {
                            return Err(RaftNodeError::LeaderChanged);
                        }
                        Err(_) => return Err(RaftNodeError::NoLeader),
                    };
                    self.raft
                        .wait(None)
                        .applied_index_at_least(Some(index), "read index")
                        .await
                        .map_err(|e| RaftNodeError::Stopped(e.to_string()))?;
                    Ok(())
                }
                None => Err(RaftNodeError::NoLeader),
            },
            Err(RaftError::APIError(_)) => Err(RaftNodeError::NoLeader),
            Err(RaftError::Fatal(f)) => Err(RaftNodeError::Stopped(f.to_string())),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn status(&self) -> RaftStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        RaftStatus {
            id: self.id,
            term: m.current_term,
            leader: m.current_leader,
            is_leader: m.state == ServerState::Leader,
            last_log_index: m.last_log_index.unwrap_or(0),
            committed_index: m
                .cluster_committed
                .as_ref()
                .or(m.local_committed.as_ref())
                .map(|l| l.index)
                .unwrap_or(0),
            applied_index: m.last_applied.as_ref().map(|l| l.index).unwrap_or(0),
        }
    }

    /// Waits until this member's leadership differs from `is_leader`; returns the new
    /// value (true: this member became leader).
    pub async fn leadership_changed(&self, is_leader: bool) -> Result<bool, RaftNodeError> {
        let mut rx = self.raft.metrics();
        loop {
            let now = rx.borrow_watched().state == ServerState::Leader;
            if now != is_leader {
                return Ok(now);
            }
            rx.changed()
                .await
                .map_err(|_| RaftNodeError::Stopped("raft metrics closed".into()))?;
        }
    }

    /// Waits until the known leader differs from `known`; returns the new one (`None`:
    /// no leader).
    pub async fn leader_changed(&self, known: Option<u64>) -> Result<Option<u64>, RaftNodeError> {
        let mut rx = self.raft.metrics();
        loop {
            let now = rx.borrow_watched().current_leader;
            if now != known {
                return Ok(now);
            }
            rx.changed()
                .await
                .map_err(|_| RaftNodeError::Stopped("raft metrics closed".into()))?;
        }
    }

    /// Current raft term (every response header carries it).
    pub fn term(&self) -> u64 {
        self.term.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Size of the raft log on disk.
    pub fn wal_size(&self) -> u64 {
        self.log.on_disk_size()
    }

    /// Stops raft (the WAL's pending flushes complete first).
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}

/// etcd's `--force-new-cluster`: a membership entry saying this member is alone is appended
/// to its own log (in a term above any it has seen). openraft takes the last membership in
/// the log as the configuration, so the member elects itself and commits everything in its
/// log, then the new membership; the data stays.
async fn force_new_cluster(cfg: &RaftNodeConfig, me: MemberNode) -> Result<(), RaftNodeError> {
    use openraft::storage::RaftLogReader;
    let mut log = LogStore::open(&cfg.wal_dir)?;
    let vote = log.read_vote().await?;
    let Some(vote) = vote else {
        // never started: an ordinary bootstrap follows
        return Ok(());
    };
    let last_term = log.last_term();
    let term = vote.leader_id.term.max(last_term) + 1;
    let members = BTreeMap::from([(cfg.id, me)]);
    let membership = crate::types::Membership::new(vec![[cfg.id].into()], members)
        .map_err(|e| RaftNodeError::Membership(e.to_string()))?;
    // the vote moves up to the entry's term too, so leadership is never below its last entry
    {
        use openraft::storage::RaftLogStorage;
        log.save_vote(&crate::types::Vote::new(term, cfg.id)).await?;
    }
    let index = log.force_membership(term, &membership).await?;
    tracing::warn!(
        member = format!("{:x}", cfg.id),
        term,
        index,
        "force-new-cluster: this member is now the only member of its cluster"
    );
    Ok(())
}

/// etcd's learner readiness: its matched log index is at least 90 % of the leader's.
fn learner_ready(raft: &Raft<TypeConfig, StateMachineStoreAny>, id: u64) -> bool {
    let m = raft.metrics().borrow_watched().clone();
    let leader_index = m.last_log_index.unwrap_or(0);
    let matched = m
        .replication
        .as_ref()
        .and_then(|r| r.get(&id).cloned().flatten())
        .map(|l| l.index)
        .unwrap_or(0);
    matched as f64 >= leader_index as f64 * 0.9
}

/// Applies a membership change on the leader. A change arriving while another one is
/// still being committed (openraft allows one at a time, e.g. a member's publish right
/// after it joined) waits for it, up to 10 s.
pub(crate) async fn apply_member_change(
    raft: &Raft<TypeConfig, StateMachineStoreAny>,
    change: MemberChange,
) -> Result<(), RaftNodeError> {
    if let MemberChange::Promote { id } = change
        && !learner_ready(raft, id)
    {
        return Err(RaftNodeError::LearnerNotReady);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match try_member_change(raft, change.clone()).await {
            Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                openraft::error::ChangeMembershipError::InProgress(_),
            ))) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(()) => return Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                return Err(RaftNodeError::LeaderChanged);
            }
            Err(RaftError::APIError(e)) => return Err(RaftNodeError::Membership(e.to_string())),
            Err(RaftError::Fatal(f)) => return Err(RaftNodeError::Stopped(f.to_string())),
        }
    }
}

type ChangeResult = Result<(), RaftError<TypeConfig, ClientWriteError<TypeConfig>>>;

async fn try_member_change(
    raft: &Raft<TypeConfig, StateMachineStoreAny>,
    change: MemberChange,
) -> ChangeResult {
    use openraft::ChangeMembers;
    match change {
        MemberChange::Add { id, node, learner } => {
            // adding the learner again while it is one is a no-op for openraft
            raft.add_learner(id, node, false).await?;
            if !learner {
                raft.change_membership(ChangeMembers::AddVoterIds([id].into()), true)
                    .await?;
            }
        }
        MemberChange::Remove { id } => {
            let m = raft.metrics().borrow_watched().clone();
            let is_voter = m.membership_config.membership().voter_ids().any(|v| v == id);
            let change = if is_voter {
                ChangeMembers::RemoveVoters([id].into())
            } else {
                ChangeMembers::RemoveNodes([id].into())
            };
            raft.change_membership(change, false).await?;
        }
        MemberChange::Promote { id } => {
            raft.change_membership(ChangeMembers::AddVoterIds([id].into()), true)
                .await?;
        }
        MemberChange::SetNode { id, node } => {
            raft.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApplyBatch;

    /// A backend that counts applied entries and persists nothing but its applied state in a file.
    struct CountingBackend {
        dir: PathBuf,
        applied: Vec<u64>,
    }

    impl Backend for CountingBackend {
        fn apply(&mut self, batch: ApplyBatch) -> io::Result<Vec<ApplyReply>> {
            let mut out = Vec::new();
            for e in batch.entries {
                self.applied.push(e.index);
                out.push(match e.data {
                    Some(d) => ApplyReply::new(d.len()),
                    None => ApplyReply::none(),
                });
            }
            std::fs::write(self.dir.join("applied"), &batch.applied_state)?;
            Ok(out)
        }
        fn applied_state(&self) -> io::Result<Option<Vec<u8>>> {
            match std::fs::read(self.dir.join("applied")) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        }
        fn sync(&mut self) -> io::Result<()> {
            Ok(())
        }
        fn snapshot_source(&self) -> Arc<dyn crate::SnapshotSource> {
            struct NoImage;
            impl crate::SnapshotSource for NoImage {
                fn write_image(&self, _: &mut dyn io::Write) -> io::Result<u64> {
                    Err(io::Error::other("the counting backend has no images"))
                }
            }
            Arc::new(NoImage)
        }
        fn install_snapshot(&mut self, _: &std::path::Path) -> io::Result<Option<Vec<u8>>> {
            Err(io::Error::other("the counting backend has no images"))
        }
    }

    fn config(dir: &std::path::Path) -> RaftNodeConfig {
        RaftNodeConfig {
            id: 7,
            cluster_id: 1,
            initial_members: [(
                7,
                MemberNode {
                    name: "default".into(),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect(),
            wal_dir: dir.join("wal"),
            heartbeat_ms: 50,
            election_ms: 200,
            snapshot_count: 10_000,
            join_existing: false,
            snapshot_catchup_entries: 5000,
            force_new_cluster: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn single_member_proposes_applies_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Box::new(CountingBackend {
            dir: dir.path().to_path_buf(),
            applied: vec![],
        });
        let node = RaftNode::start(config(dir.path()), backend).await.unwrap();
        node.wait_ready(Duration::from_secs(10)).await.unwrap();
        assert!(node.status().is_leader);
        let mut tasks = Vec::new();
        for i in 0..50usize {
            let n = node.clone();
            tasks.push(tokio::spawn(async move { n.propose(vec![0; i]).await }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let Proposed::Applied(reply) = t.await.unwrap().unwrap() else {
                panic!("the only member forwarded a proposal")
            };
            assert_eq!(*reply.0.downcast::<usize>().unwrap(), i);
        }
        node.read_index().await.unwrap();
        let st = node.status();
        assert!(st.applied_index >= 51, "{st:?}");
        node.shutdown().await;
        drop(node);

        let backend = Box::new(CountingBackend {
            dir: dir.path().to_path_buf(),
            applied: vec![],
        });
        let node = RaftNode::start(config(dir.path()), backend).await.unwrap();
        node.wait_ready(Duration::from_secs(10)).await.unwrap();
        let st2 = node.status();
        assert!(st2.applied_index >= st.applied_index, "{st2:?} vs {st:?}");
        assert!(st2.term >= st.term);
        let Proposed::Applied(r) = node.propose(b"after".to_vec()).await.unwrap() else {
            panic!("the only member forwarded a proposal")
        };
        assert_eq!(*r.0.downcast::<usize>().unwrap(), 5);
        node.shutdown().await;
    }
}
