//! Lessor plumbing (etcd's lease parts of `EtcdServer`): the shared lessor, its restore at
//! startup, promotion/demotion on leadership changes, and the loop that proposes revokes
//! for expired leases and checkpoints for long ones. The lease bookkeeping itself lives in
//! `retcd-lease`; the applier applies grants, revokes and checkpoints.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use retcd_api::EtcdError;
use retcd_api::etcdserverpb::{LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest};
use retcd_lease::{LEASE_REVOKE_RATE, LeaseError, LeaseRecord, Lessor, LessorConfig};
use retcd_mvcc::Store;
use tokio::sync::Notify;

use crate::etcdserver::EtcdServer;
use crate::raft_request::InternalRaftRequest;

/// How often expired leases and due checkpoints are looked for (etcd: 500 ms).
const LESSOR_TICK: Duration = Duration::from_millis(500);

/// The lessor shared by the applier, the Lease service and the expiry loop. The mutex is
/// never held across an await.
pub struct LeaseHub {
    lessor: Mutex<Lessor>,
    /// Woken after every applied revoke and on demotion (keep-alives of expired leases
    /// wait on it).
    pub changed: Notify,
}

impl LeaseHub {
    pub fn lock(&self) -> MutexGuard<'_, Lessor> {
        self.lessor.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rebuilds the lessor from the backend: the lease records, then the keys that carry
    /// a lease (etcd's lessor `initAndRecover` and the store's re-attach on restore).
    pub fn restore(store: &Store, cfg: LessorConfig) -> Result<Arc<LeaseHub>, String> {
        Ok(Arc::new(LeaseHub {
            lessor: Mutex::new(Self::load(store, cfg)?),
            changed: Notify::new(),
        }))
    }

    /// After the backend was replaced by a snapshot image: the lessor is rebuilt from it
    /// (still primary, with fresh TTLs, if it was).
    pub fn reload(&self, store: &Store) -> Result<(), String> {
        let mut l = self.lock();
        let mut fresh = Self::load(store, l.config().clone())?;
        if l.is_primary() {
            fresh.promote(Duration::ZERO, Instant::now());
        }
        *l = fresh;
        Ok(())
    }

    fn load(store: &Store, cfg: LessorConfig) -> Result<Lessor, String> {
        let mut lessor = Lessor::new(cfg);
        for (id, bytes) in store.leases().map_err(|e| e.to_string())? {
            let rec = LeaseRecord::decode(&bytes)
                .map_err(|e| format!("corrupt lease record {id:x} in the backend: {e}"))?;
            lessor.restore(rec);
        }
        let mut orphans = 0usize;
        for (key, id) in store.take_leased_keys_at_open() {
            if lessor.exists(id) {
                lessor.on_put(&key, id);
            } else {
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::warn!(keys = orphans, "keys refer to leases that do not exist");
        }
        tracing::info!(leases = lessor.len(), "restored leases");
        Ok(lessor)
    }
}

/// etcd's lease errors as client errors.
pub fn lease_error(e: LeaseError) -> EtcdError {
    match e {
        LeaseError::NotFound | LeaseError::Expired => EtcdError::LeaseNotFound,
        LeaseError::Exists => EtcdError::LeaseExist,
        LeaseError::TtlTooLarge => EtcdError::LeaseTtlTooLarge,
        LeaseError::NotPrimary => EtcdError::NotLeader,
    }
}

/// Runs until the server stops: promotes/demotes the lessor as leadership moves, proposes
/// revokes of expired leases (at most etcd's revoke rate) and due checkpoints.
pub async fn run_lessor(s: Arc<EtcdServer>) {
    let extend = Duration::from_millis(s.cfg.election_timeout);
    let mut primary = false;
    let mut tick = tokio::time::interval(LESSOR_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = s.raft.leadership_changed(primary) => match changed {
                Ok(leader) => {
                    primary = leader;
                    if leader {
                        s.leases.lock().promote(extend, Instant::now());
                        tracing::info!("lessor promoted: this member expires leases");
                    } else {
                        s.leases.lock().demote();
                        s.leases.changed.notify_waiters();
                        tracing::info!("lessor demoted");
                    }
                }
                Err(_) => return,
            },
            _ = tick.tick() => {
                if primary {
                    revoke_expired_and_checkpoint(&s);
                }
            }
        }
    }
}

fn revoke_expired_and_checkpoint(s: &Arc<EtcdServer>) {
    let now = Instant::now();
    let (expired, checkpoints) = {
        let mut l = s.leases.lock();
        // the tick is half a second: half the per-second rate
        (l.expired(now, LEASE_REVOKE_RATE / 2), l.due_checkpoints(now))
    };
    for id in expired {
        let s = s.clone();
        tokio::spawn(async move {
            let req = InternalRaftRequest {
                lease_revoke: Some(LeaseRevokeRequest { id }),
                ..Default::default()
            };
            match s.propose(req).await {
                Ok(_) => tracing::debug!(lease = format!("{id:016x}"), "revoked expired lease"),
                // already gone (revoked by a client meanwhile)
                Err(st) if st.code() == tonic::Code::NotFound => {}
                Err(st) => {
                    tracing::warn!(lease = format!("{id:016x}"), error = %st.message(), "failed to revoke expired lease; will retry")
                }
            }
        });
    }
    if !checkpoints.is_empty() {
        let s = s.clone();
        tokio::spawn(async move {
            let req = InternalRaftRequest {
                lease_checkpoint: Some(LeaseCheckpointRequest {
                    checkpoints: checkpoints
                        .into_iter()
                        .map(|c| LeaseCheckpoint {
                            id: c.id,
                            remaining_ttl: c.remaining_ttl,
                        })
                        .collect(),
                }),
                ..Default::default()
            };
            if let Err(st) = s.propose(req).await {
                tracing::warn!(error = %st.message(), "failed to checkpoint leases");
            }
        });
    }
}
