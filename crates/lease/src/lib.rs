//! The lessor (etcd's `server/lease` package): lease TTLs, which keys are attached to which
//! lease, when leases expire, and lease checkpoints.
//!
//! The lessor is a plain data structure. Time is always passed in (`now: Instant`), so the
//! expiry logic is tested with virtual time, and the lessor never touches the disk: the
//! applier persists each lease as a [`LeaseRecord`] in the backend in the same transaction
//! as the change that created it, and rebuilds the lessor from those records and the keys'
//! `lease` fields when the member starts.
//!
//! What is replicated (applied in the same order on every member through raft): grants,
//! revokes, checkpoints, key attachments. What is local: expiry instants. Only the primary
//! (the raft leader) keeps real expiries; a member that is not primary holds every lease
//! "forever" and learns of expiries through the revokes the leader proposes. When a member
//! becomes primary ([`Lessor::promote`]) it gives every lease its full (or checkpointed)
//! TTL plus an extension, so no lease expires merely because leadership moved.
//!
//! Must not depend on the server, on raft, on tonic or on the MVCC store.

mod record;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

pub use record::LeaseRecord;

/// A lease id. 0 means "no lease".
pub type LeaseId = i64;

/// etcd's `NoLease`.
pub const NO_LEASE: LeaseId = 0;

/// etcd's `MaxLeaseTTL`: the largest TTL a lease can be granted with, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// etcd's `leaseRevokeRate`: at most this many expired leases are revoked per second.
pub const LEASE_REVOKE_RATE: usize = 1000;

/// etcd's `maxLeaseCheckpointBatchSize`.
pub const MAX_CHECKPOINT_BATCH: usize = 1000;

/// etcd's `expiredLeaseRetryInterval`: an expired lease whose revoke did not go through is
/// offered again after this long.
pub const EXPIRED_RETRY_INTERVAL: Duration = Duration::from_secs(3);

/// etcd's default `--experimental-lease-checkpoint-interval`.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);

/// Why a lessor operation failed (etcd's lease errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("lease not found")]
    NotFound,
    #[error("lease already exists")]
    Exists,
    #[error("too large lease TTL")]
    TtlTooLarge,
    /// Only the primary renews leases.
    #[error("not a primary lessor")]
    NotPrimary,
    /// The lease has expired and waits for its revoke; the caller waits for it to go
    /// (then answers "not found") or for a demotion (then "not primary").
    #[error("lease expired; revoke pending")]
    Expired,
}

#[derive(Debug)]
struct Lease {
    ttl: i64,
    /// Checkpointed remaining TTL in seconds (0: none, use `ttl`).
    remaining_ttl: i64,
    /// `None`: never expires (this lessor is not primary).
    expiry: Option<Instant>,
    /// The time of this lease's live entry in the expiry queue (older entries are stale).
    queued_at: Option<Instant>,
    keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    /// etcd's `RemainingTTL`: the checkpointed remaining TTL if any, else the TTL.
    fn remaining_ttl_secs(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }

    fn refresh(&mut self, now: Instant, extend: Duration) {
        self.expiry = Some(now + extend + secs(self.remaining_ttl_secs()));
    }

    fn record(&self, id: LeaseId) -> LeaseRecord {
        LeaseRecord {
            id,
            ttl: self.ttl,
            remaining_ttl: self.remaining_ttl,
        }
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

/// What `TimeToLive` reports about a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    pub id: LeaseId,
    /// The TTL the lease was granted with (after the minimum TTL was applied).
    pub granted_ttl: i64,
    /// Whole seconds left (truncated as etcd does); `i64::MAX / 1e9` when not primary.
    pub remaining: i64,
    /// Attached keys in byte order.
    pub keys: Vec<Vec<u8>>,
}

/// A checkpoint to propose: the lease's remaining TTL in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub id: LeaseId,
    pub remaining_ttl: i64,
}

/// Tuning of a [`Lessor`].
#[derive(Debug, Clone)]
pub struct LessorConfig {
    /// Leases granted with a smaller TTL get this one (etcd: 1.5 election timeouts,
    /// rounded up to whole seconds).
    pub min_ttl: i64,
    /// `Some(interval)`: checkpoint remaining TTLs of long leases this often
    /// (`--experimental-enable-lease-checkpoint`).
    pub checkpoint_interval: Option<Duration>,
}

impl LessorConfig {
    /// etcd's minimum lease TTL for these raft timings:
    /// `ceil((3 * election_ticks / 2) * heartbeat)` seconds, `election_ticks =
    /// election / heartbeat`.
    pub fn min_ttl_for(heartbeat_ms: u64, election_ms: u64) -> i64 {
        let heartbeat_ms = heartbeat_ms.max(1);
        let ticks = election_ms / heartbeat_ms;
        let ms = (3 * ticks / 2) * heartbeat_ms;
        ms.div_ceil(1000) as i64
    }
}

/// The lessor. Not thread-safe by itself; the server keeps it under a mutex and never
/// holds that across an await.
#[derive(Debug)]
pub struct Lessor {
    cfg: LessorConfig,
    leases: HashMap<LeaseId, Lease>,
    /// Which lease each attached key belongs to (etcd's `itemMap`).
    items: HashMap<Vec<u8>, LeaseId>,
    primary: bool,
    /// Expiry queue: (time, lease); entries whose time differs from the lease's
    /// `queued_at` are stale and skipped.
    expiry_queue: BinaryHeap<Reverse<(Instant, LeaseId)>>,
    /// Checkpoint queue (primary with checkpointing on).
    checkpoint_queue: BinaryHeap<Reverse<(Instant, LeaseId)>>,
}

impl Lessor {
    pub fn new(cfg: LessorConfig) -> Lessor {
        Lessor {
            cfg,
            leases: HashMap::new(),
            items: HashMap::new(),
            primary: false,
            expiry_queue: BinaryHeap::new(),
            checkpoint_queue: BinaryHeap::new(),
        }
    }

    pub fn config(&self) -> &LessorConfig {
        &self.cfg
    }

    pub fn min_ttl(&self) -> i64 {
        self.cfg.min_ttl
    }

    pub fn is_primary(&self) -> bool {
        self.primary
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Loads a persisted lease at startup (not primary yet: it never expires until
    /// [`promote`](Self::promote)).
    pub fn restore(&mut self, r: LeaseRecord) {
        self.leases.insert(
            r.id,
            Lease {
                ttl: r.ttl.max(self.cfg.min_ttl),
                remaining_ttl: r.remaining_ttl,
                expiry: None,
                queued_at: None,
                keys: BTreeSet::new(),
            },
        );
    }

    fn enqueue_expiry(&mut self, id: LeaseId, at: Instant) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.queued_at = Some(at);
            self.expiry_queue.push(Reverse((at, id)));
        }
    }

    fn schedule_checkpoint(&mut self, id: LeaseId, now: Instant) {
        let Some(interval) = self.cfg.checkpoint_interval else {
            return;
        };
        if !self.primary {
            return;
        }
        if let Some(l) = self.leases.get(&id)
            && l.remaining_ttl_secs() > interval.as_secs() as i64
        {
            self.checkpoint_queue.push(Reverse((now + interval, id)));
        }
    }

    /// etcd's `Grant` (applied through raft). Returns the record to persist; its `ttl` is
    /// what the client is told.
    pub fn grant(&mut self, id: LeaseId, ttl: i64, now: Instant) -> Result<LeaseRecord, LeaseError> {
        if id == NO_LEASE {
            return Err(LeaseError::NotFound);
        }
        if ttl > MAX_LEASE_TTL {
            return Err(LeaseError::TtlTooLarge);
        }
        if self.leases.contains_key(&id) {
            return Err(LeaseError::Exists);
        }
        let mut l = Lease {
            ttl: ttl.max(self.cfg.min_ttl),
            remaining_ttl: 0,
            expiry: None,
            queued_at: None,
            keys: BTreeSet::new(),
        };
        if self.primary {
            l.refresh(now, Duration::ZERO);
        }
        let expiry = l.expiry;
        let rec = l.record(id);
        self.leases.insert(id, l);
        if let Some(at) = expiry {
            self.enqueue_expiry(id, at);
        }
        self.schedule_checkpoint(id, now);
        Ok(rec)
    }

    /// The keys a revoke deletes, in byte order (the same on every member). The lease
    /// stays until [`remove`](Self::remove), called in the same apply step after the keys
    /// were deleted.
    pub fn revoke_keys(&self, id: LeaseId) -> Result<Vec<Vec<u8>>, LeaseError> {
        let l = self.leases.get(&id).ok_or(LeaseError::NotFound)?;
        Ok(l.keys.iter().cloned().collect())
    }

    /// Forgets a revoked lease and its attachments.
    pub fn remove(&mut self, id: LeaseId) -> bool {
        let Some(l) = self.leases.remove(&id) else {
            return false;
        };
        for k in &l.keys {
            if self.items.get(k) == Some(&id) {
                self.items.remove(k);
            }
        }
        true
    }

    pub fn exists(&self, id: LeaseId) -> bool {
        self.leases.contains_key(&id)
    }

    /// Records that `key` now has `lease` (0: none) after a put: detaches it from its
    /// previous lease, attaches it to the new one. A lease that does not exist is ignored
    /// (the applier checks existence before the put).
    pub fn on_put(&mut self, key: &[u8], lease: LeaseId) {
        let old = self.items.get(key).copied().unwrap_or(NO_LEASE);
        if old == lease {
            return;
        }
        if old != NO_LEASE {
            self.detach(key, old);
        }
        if lease != NO_LEASE
            && let Some(l) = self.leases.get_mut(&lease)
        {
            l.keys.insert(key.to_vec());
            self.items.insert(key.to_vec(), lease);
        }
    }

    /// Records that `key` was deleted.
    pub fn on_delete(&mut self, key: &[u8]) {
        if let Some(old) = self.items.get(key).copied() {
            self.detach(key, old);
        }
    }

    fn detach(&mut self, key: &[u8], lease: LeaseId) {
        self.items.remove(key);
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }

    /// etcd's `Renew` (keep-alive, on the primary): restarts the lease's TTL and returns
    /// it. With checkpointing on, a renewed lease that carries a checkpointed remaining
    /// TTL returns it in `Ok((ttl, Some(checkpoint)))`: the caller proposes that
    /// checkpoint (remaining 0) so other members forget it too.
    pub fn renew(&mut self, id: LeaseId, now: Instant) -> Result<(i64, Option<Checkpoint>), LeaseError> {
        if !self.primary {
            return Err(LeaseError::NotPrimary);
        }
        let checkpointing = self.cfg.checkpoint_interval.is_some();
        let l = self.leases.get_mut(&id).ok_or(LeaseError::NotFound)?;
        if l.expiry.is_some_and(|e| e <= now) {
            return Err(LeaseError::Expired);
        }
        let clear = if checkpointing && l.remaining_ttl > 0 {
            l.remaining_ttl = 0;
            Some(Checkpoint { id, remaining_ttl: 0 })
        } else {
            None
        };
        l.refresh(now, Duration::ZERO);
        let (ttl, at) = (l.ttl, l.expiry);
        if let Some(at) = at {
            self.enqueue_expiry(id, at);
        }
        Ok((ttl, clear))
    }

    /// etcd's `TimeToLive` view of a lease.
    pub fn status(&self, id: LeaseId, with_keys: bool, now: Instant) -> Option<LeaseStatus> {
        let l = self.leases.get(&id)?;
        let remaining = match l.expiry {
            // Go: int64(time.Duration(math.MaxInt64).Seconds())
            None => i64::MAX / 1_000_000_000,
            Some(e) if e >= now => (e - now).as_secs() as i64,
            Some(e) => -((now - e).as_secs() as i64),
        };
        Some(LeaseStatus {
            id,
            granted_ttl: l.ttl,
            remaining,
            keys: if with_keys {
                l.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Every lease id, soonest expiry first (etcd's `Leases`, sorted by expiry; leases
    /// that never expire last, by id).
    pub fn leases(&self) -> Vec<LeaseId> {
        let mut v: Vec<(Option<Instant>, LeaseId)> =
            self.leases.iter().map(|(id, l)| (l.expiry, *id)).collect();
        v.sort_by(|a, b| match (a.0, b.0) {
            (Some(x), Some(y)) => x.cmp(&y).then(a.1.cmp(&b.1)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp(&b.1),
        });
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// The records of every lease (for a snapshot of the lessor).
    pub fn records(&self) -> Vec<LeaseRecord> {
        let mut v: Vec<LeaseRecord> = self.leases.iter().map(|(id, l)| l.record(*id)).collect();
        v.sort_by_key(|r| r.id);
        v
    }

    /// etcd's `Promote`: this member became leader. Every lease gets its remaining (or
    /// full) TTL plus `extend` from now; when many leases would expire in the same second,
    /// later ones are spread out so revokes stay under the revoke rate.
    pub fn promote(&mut self, extend: Duration, now: Instant) {
        self.primary = true;
        self.expiry_queue.clear();
        self.checkpoint_queue.clear();
        for l in self.leases.values_mut() {
            l.refresh(now, extend);
        }
        if self.leases.len() >= LEASE_REVOKE_RATE {
            self.spread_expiries(extend, now);
        }
        let ids: Vec<(LeaseId, Instant)> = self
            .leases
            .iter()
            .filter_map(|(id, l)| l.expiry.map(|e| (*id, e)))
            .collect();
        for (id, at) in ids {
            self.enqueue_expiry(id, at);
            self.schedule_checkpoint(id, now);
        }
    }

    fn spread_expiries(&mut self, extend: Duration, now: Instant) {
        let mut by_expiry: Vec<(Instant, LeaseId)> = self
            .leases
            .iter()
            .filter_map(|(id, l)| l.expiry.map(|e| (e, *id)))
            .collect();
        by_expiry.sort();
        let Some(&(first, _)) = by_expiry.first() else {
            return;
        };
        let remaining = |e: Instant| e.saturating_duration_since(now);
        let mut base = remaining(first);
        let mut next = base + Duration::from_secs(1);
        let mut expires = 0usize;
        // fewer expiries per second than the revoke rate, so piled-up leases do not use
        // the whole revoke budget
        let target = (3 * LEASE_REVOKE_RATE) / 4;
        for (e, id) in by_expiry {
            let rem = remaining(e);
            if rem > next {
                base = rem;
                next = base + Duration::from_secs(1);
                expires = 1;
                continue;
            }
            expires += 1;
            if expires <= target {
                continue;
            }
            let rate_delay = Duration::from_secs_f64(expires as f64 / target as f64);
            // leases already ahead of the base window need less extra delay
            let delay = rate_delay.saturating_sub(rem - base);
            next = base + delay;
            if let Some(l) = self.leases.get_mut(&id) {
                l.refresh(now, delay + extend);
            }
        }
    }

    /// etcd's `Demote`: this member is no longer leader; nothing expires here any more.
    pub fn demote(&mut self) {
        self.primary = false;
        for l in self.leases.values_mut() {
            l.expiry = None;
            l.queued_at = None;
        }
        self.expiry_queue.clear();
        self.checkpoint_queue.clear();
    }

    /// etcd's `findExpiredLeases`: up to `limit` leases that have expired by `now`, for
    /// the caller to revoke through raft. Each one is offered again after
    /// [`EXPIRED_RETRY_INTERVAL`] if it is still there (its revoke got lost).
    pub fn expired(&mut self, now: Instant, limit: usize) -> Vec<LeaseId> {
        let mut out = Vec::new();
        if !self.primary {
            return out;
        }
        while out.len() < limit {
            let Some(&Reverse((at, id))) = self.expiry_queue.peek() else {
                break;
            };
            let Some(l) = self.leases.get(&id) else {
                self.expiry_queue.pop();
                continue;
            };
            if l.queued_at != Some(at) {
                self.expiry_queue.pop();
                continue;
            }
            if at > now {
                break;
            }
            self.expiry_queue.pop();
            let expired = l.expiry.is_some_and(|e| e <= now);
            self.enqueue_expiry(id, now + EXPIRED_RETRY_INTERVAL);
            if expired {
                out.push(id);
            }
        }
        out
    }

    /// etcd's `findDueScheduledCheckpoints`: checkpoints due by `now` (at most
    /// [`MAX_CHECKPOINT_BATCH`]).
    pub fn due_checkpoints(&mut self, now: Instant) -> Vec<Checkpoint> {
        let mut out = Vec::new();
        if !self.primary {
            return out;
        }
        while out.len() < MAX_CHECKPOINT_BATCH {
            let Some(&Reverse((at, id))) = self.checkpoint_queue.peek() else {
                break;
            };
            if at > now {
                break;
            }
            self.checkpoint_queue.pop();
            let Some(l) = self.leases.get(&id) else {
                continue;
            };
            let Some(expiry) = l.expiry else {
                continue;
            };
            if expiry <= now {
                continue;
            }
            let remaining = (expiry - now).as_secs_f64().ceil() as i64;
            if remaining >= l.ttl {
                continue;
            }
            out.push(Checkpoint {
                id,
                remaining_ttl: remaining,
            });
        }
        out
    }

    /// etcd's `Checkpoint` (applied through raft): records a lease's remaining TTL so a
    /// new leader does not give it its full TTL again. Returns the record to persist.
    pub fn checkpoint(&mut self, cp: Checkpoint, now: Instant) -> Option<LeaseRecord> {
        let l = self.leases.get_mut(&cp.id)?;
        l.remaining_ttl = cp.remaining_ttl;
        let rec = l.record(cp.id);
        if self.primary {
            self.schedule_checkpoint(cp.id, now);
        }
        Some(rec)
    }
}

#[cfg(test)]
mod tests;
