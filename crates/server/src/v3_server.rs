//! etcd's `v3_server.go`: the KV and lease operations of [`EtcdServer`], shared by the gRPC
//! services and by the server-side recipes (Lock, Election). Requests arrive here already
//! validated (the services run `checks` first); writes go through raft, reads are served
//! locally after a ReadIndex unless serializable.

use std::time::Instant;

use prost::Message;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, LeaseCheckpoint, LeaseCheckpointRequest, LeaseGrantRequest, LeaseGrantResponse,
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    TxnRequest, TxnResponse, alarm_request,
};
use retcd_lease::{LeaseError, NO_LEASE};
use tonic::Status;

use crate::alarm;
use crate::applier::{self, Applied};
use crate::etcdserver::{EtcdServer, request_timeout};
use crate::lease::lease_error;
use crate::raft_request::InternalRaftRequest;

/// Application calls a follower makes to the leader.
const APP_LEASE_RENEW: &str = "etcdserverpb.Lease/LeaseKeepAlive";
const APP_LEASE_TTL: &str = "etcdserverpb.Lease/LeaseTimeToLive";
/// A new member asks an existing one for the members before it starts.
pub const APP_MEMBER_LIST: &str = retcd_raft_node::JOIN_INFO_METHOD;

/// What the local lessor said to a keep-alive.
enum Renewed {
    /// The lease's TTL; `None`: it is gone.
    Ttl(Option<i64>),
    /// This member is not the primary lessor: the leader answers.
    NotPrimary,
}

fn unexpected() -> Status {
    EtcdError::Internal("unexpected apply result".into()).into()
}

fn internal(e: impl std::fmt::Display) -> Status {
    EtcdError::Internal(e.to_string()).into()
}

/// Proposes `InternalRaftRequest { $field: Some($req) }` and unwraps `Applied::$variant`,
/// with the response header filled in.
macro_rules! propose_for {
    ($s:expr, $field:ident: $req:expr => $variant:ident) => {
        match $s
            .propose(InternalRaftRequest {
                $field: Some($req),
                ..Default::default()
            })
            .await?
        {
            Applied::$variant(mut resp) => {
                $s.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    };
}

impl EtcdServer {
    pub async fn range(&self, r: RangeRequest) -> Result<RangeResponse, Status> {
        crate::metrics::get().mvcc_range.inc();
        // after the read barrier, as etcd's doSerialize: permissions changed before the read
        // was asked for are applied here by then
        if !r.serializable {
            self.linearizable_read().await?;
        }
        self.auth.check_read(&r.key, &r.range_end)?;
        let store = self.store.clone();
        // Large ranges are CPU and disk work: keep them off the async workers.
        let read = tokio::task::spawn_blocking(move || applier::range(&store.read(), &r))
            .await
            .map_err(internal)?
            .map_err(internal)?;
        // stale credentials win over what the read answered, as in etcd's doSerialize
        self.auth.check_revision_after_read()?;
        let mut resp = read?;
        self.fill(&mut resp.header);
        Ok(resp)
    }

    /// etcd's `quotaAlarmer.check`: a request that would take the backend to the quota
    /// raises NOSPACE for this member and fails.
    async fn check_quota(&self, cost: u64) -> Result<(), Status> {
        if alarm::quota_available(self.cfg.quota_backend_bytes, self.store.db_size(), cost) {
            return Ok(());
        }
        if self.alarms.has(self.member_id, AlarmType::Nospace) {
            // raised already: no raft round trip for every refused write
            return Err(EtcdError::NoSpace.into());
        }
        let raise = AlarmRequest {
            action: alarm_request::AlarmAction::Activate as i32,
            member_id: self.member_id,
            alarm: AlarmType::Nospace as i32,
        };
        if let Err(e) = self.alarm(raise).await {
            tracing::warn!(error = %e.message(), "raising the NOSPACE alarm failed");
        }
        Err(EtcdError::NoSpace.into())
    }

    /// etcd's `Alarm`: every action (even GET) goes through raft; the response carries no
    /// header (etcd's applier leaves it out: `etcdctl alarm list -w json` prints `{}`).
    pub async fn alarm(&self, r: AlarmRequest) -> Result<AlarmResponse, Status> {
        match self
            .propose(InternalRaftRequest {
                alarm: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::Alarm(resp) => Ok(resp),
            _ => Err(unexpected()),
        }
    }

    pub async fn put(&self, r: PutRequest) -> Result<PutResponse, Status> {
        self.check_quota(alarm::put_cost(&r.key, &r.value)).await?;
        propose_for!(self, put: r => Put)
    }

    pub async fn delete_range(&self, r: DeleteRangeRequest) -> Result<DeleteRangeResponse, Status> {
        propose_for!(self, delete_range: r => DeleteRange)
    }

    /// A read-only txn is served locally (after a ReadIndex unless every range in it is
    /// serializable); any other goes through raft.
    pub async fn txn(&self, r: TxnRequest) -> Result<TxnResponse, Status> {
        // every txn, read-only too (as etcd's quotaKVServer)
        self.check_quota(alarm::txn_cost(&r)).await?;
        if applier::txn_is_readonly(&r) {
            crate::metrics::get().mvcc_txn.inc();
            if !applier::txn_is_serializable(&r) {
                self.linearizable_read().await?;
            }
            self.auth.check_txn_reads(&r)?;
            let store = self.store.clone();
            let read = tokio::task::spawn_blocking(move || {
                let view = store.read();
                applier::read_only_txn(&view, &r, store.compact_revision())
            })
            .await
            .map_err(internal)?
            .map_err(internal)?;
            self.auth.check_revision_after_read()?;
            let mut resp = read?;
            self.fill(&mut resp.header);
            return Ok(resp);
        }
        propose_for!(self, txn: r => Txn)
    }

    pub async fn compact(&self, r: CompactionRequest) -> Result<CompactionResponse, Status> {
        let physical = r.physical;
        match self
            .propose(InternalRaftRequest {
                compaction: Some(r),
                ..Default::default()
            })
            .await?
        {
            Applied::Compaction(mut resp, done) => {
                if physical {
                    // Wait until the compacted history is gone from the backend.
                    let _ = done.await;
                }
                self.fill(&mut resp.header);
                Ok(resp)
            }
            _ => Err(unexpected()),
        }
    }

    /// etcd's `LeaseGrant`: picks an id when none is given, then grants through raft.
    pub async fn lease_grant(&self, mut r: LeaseGrantRequest) -> Result<LeaseGrantResponse, Status> {
        while r.id == NO_LEASE {
            // only positive ids
            r.id = (self.id_gen.next() & (i64::MAX as u64)) as i64;
        }
        self.check_quota(alarm::lease_cost()).await?;
        propose_for!(self, lease_grant: r => LeaseGrant)
    }

    pub async fn lease_revoke(&self, id: i64) -> Result<LeaseRevokeResponse, Status> {
        propose_for!(self, lease_revoke: LeaseRevokeRequest { id } => LeaseRevoke)
    }

    /// etcd's `LeaseTimeToLive`: answered by the leader (a follower asks it); a missing
    /// lease answers TTL -1 rather than an error.
    pub async fn lease_time_to_live(
        &self,
        r: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        if !self.leases.lock().is_primary() && !self.raft.status().is_leader {
            let data = self.raft.call_leader(APP_LEASE_TTL, r.encode_to_vec()).await?;
            return LeaseTimeToLiveResponse::decode(data.as_slice()).map_err(internal);
        }
        let status = self.leases.lock().status(r.id, r.keys, Instant::now());
        Ok(match status {
            Some(st) => LeaseTimeToLiveResponse {
                header: None,
                id: r.id,
                ttl: st.remaining,
                granted_ttl: st.granted_ttl,
                keys: st.keys,
            },
            None => LeaseTimeToLiveResponse {
                header: None,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        })
    }

    /// What this member answers to a follower's application call (it is the leader).
    pub async fn handle_app_call(&self, method: &str, data: &[u8]) -> Result<Vec<u8>, Status> {
        match method {
            APP_LEASE_RENEW => {
                let r = LeaseKeepAliveRequest::decode(data).map_err(internal)?;
                // a member that is asked is the leader; if it no longer is, say so
                let ttl = match self.lease_renew_local(r.id).await? {
                    Renewed::Ttl(ttl) => ttl,
                    Renewed::NotPrimary => return Err(EtcdError::NotLeader.into()),
                };
                Ok(LeaseKeepAliveResponse {
                    header: None,
                    id: r.id,
                    ttl: ttl.unwrap_or(0),
                }
                .encode_to_vec())
            }
            APP_LEASE_TTL => {
                let r = LeaseTimeToLiveRequest::decode(data).map_err(internal)?;
                if !self.leases.lock().is_primary() {
                    return Err(EtcdError::NotLeader.into());
                }
                Ok(self.lease_time_to_live(r).await?.encode_to_vec())
            }
            APP_MEMBER_LIST => Ok(self.member_list().encode_to_vec()),
            crate::corrupt::APP_HASH_KV => crate::corrupt::answer_peer(self, data).await,
            other => Err(Status::unimplemented(format!("unknown member call {other}"))),
        }
    }

    /// etcd's `LeaseRenew`: the lease's TTL, `None` when it is gone. Served by the leader;
    /// a follower asks the leader.
    pub async fn lease_renew(&self, id: i64) -> Result<Option<i64>, Status> {
        match self.lease_renew_local(id).await? {
            Renewed::Ttl(ttl) => Ok(ttl),
            Renewed::NotPrimary => {
                let data = self
                    .raft
                    .call_leader(APP_LEASE_RENEW, LeaseKeepAliveRequest { id }.encode_to_vec())
                    .await?;
                let r = LeaseKeepAliveResponse::decode(data.as_slice()).map_err(internal)?;
                Ok((r.ttl > 0).then_some(r.ttl))
            }
        }
    }

    /// etcd's lessor `Renew` on this member (the primary). An expired lease whose revoke is
    /// on its way waits for the revoke (then: gone).
    async fn lease_renew_local(&self, id: i64) -> Result<Renewed, Status> {
        let deadline = tokio::time::Instant::now() + request_timeout(&self.cfg);
        loop {
            let notified = self.leases.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let renewed = self.leases.lock().renew(id, Instant::now());
            match renewed {
                Ok((ttl, clear)) => {
                    if let Some(cp) = clear {
                        // tell the other members the checkpointed remaining TTL is gone
                        let req = InternalRaftRequest {
                            lease_checkpoint: Some(LeaseCheckpointRequest {
                                checkpoints: vec![LeaseCheckpoint {
                                    id: cp.id,
                                    remaining_ttl: cp.remaining_ttl,
                                }],
                            }),
                            ..Default::default()
                        };
                        self.propose(req).await?;
                    }
                    return Ok(Renewed::Ttl(Some(ttl)));
                }
                Err(LeaseError::NotFound) => return Ok(Renewed::Ttl(None)),
                Err(LeaseError::NotPrimary) => return Ok(Renewed::NotPrimary),
                Err(LeaseError::Expired) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(EtcdError::Timeout.into());
                    }
                }
                Err(e) => return Err(lease_error(e).into()),
            }
        }
    }
}
