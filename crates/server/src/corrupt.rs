//! Corruption checks (etcd's `etcdserver/corrupt.go`): members compare their KV hashes
//! (HashKV, equal on every member with the same history) over the peer transport.
//!
//! * `--experimental-initial-corrupt-check`: before serving clients, a member compares its
//!   hash with every peer's at the same revision and refuses to start on a mismatch.
//! * `--experimental-corrupt-check-time D`: every D the leader compares its hash with the
//!   followers' and raises the CORRUPT alarm (through raft) for a member whose hash, compact
//!   revision or revision cannot be right; the applier then refuses every KV and lease
//!   request cluster-wide until an operator clears it.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::{
    AlarmRequest, AlarmType, HashKvRequest, HashKvResponse, ResponseHeader, alarm_request,
};
use retcd_mvcc::{MvccError, Store};
use tonic::Status;

use crate::etcdserver::EtcdServer;

/// The peer call a member answers with its HashKV.
pub const APP_HASH_KV: &str = "etcdserverpb.Maintenance/HashKV";

/// etcd's `HashByRev`: (hash, revision hashed, compact revision), off the runtime.
pub async fn hash_by_rev(store: &Store, rev: i64) -> Result<(u32, i64, i64), Status> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let view = store.read();
        let compact = store.compact_revision();
        view.hash_kv(rev).map(|(h, r)| (h, r, compact))
    })
    .await
    .map_err(|e| Status::from(EtcdError::Internal(e.to_string())))?
    .map_err(|e| {
        Status::from(match e {
            MvccError::Compacted => EtcdError::Compacted,
            MvccError::FutureRev => EtcdError::FutureRev,
            other => EtcdError::Internal(other.to_string()),
        })
    })
}

/// etcd 3.4's HashKV response: the header carries the member's current revision (not the
/// revision hashed), which the leader's check compares with its own.
pub async fn hash_kv(s: &EtcdServer, rev: i64) -> Result<HashKvResponse, Status> {
    let (hash, _, compact_revision) = hash_by_rev(&s.store, rev).await?;
    Ok(HashKvResponse {
        header: s.header(0),
        hash,
        compact_revision,
        ..Default::default()
    })
}

/// A peer's answer to the peer HashKV call.
pub async fn answer_peer(s: &EtcdServer, data: &[u8]) -> Result<Vec<u8>, Status> {
    let r = HashKvRequest::decode(data).map_err(|e| Status::invalid_argument(e.to_string()))?;
    Ok(hash_kv(s, r.revision).await?.encode_to_vec())
}

/// Every other member's HashKV at `rev` (etcd's `getPeerHashKVs`), asked concurrently.
async fn peer_hashes(s: &EtcdServer, rev: i64) -> Vec<(u64, Result<HashKvResponse, Status>)> {
    let req = HashKvRequest { revision: rev }.encode_to_vec();
    let calls = s
        .raft
        .members()
        .into_iter()
        .filter(|(id, _, _)| *id != s.member_id)
        .map(|(id, _, _)| {
            let req = req.clone();
            async move {
                let r = s.raft.call_member(id, APP_HASH_KV, req).await.and_then(|b| {
                    HashKvResponse::decode(b.as_slice()).map_err(|e| Status::internal(e.to_string()))
                });
                (id, r)
            }
        });
    futures::future::join_all(calls).await
}

/// etcd's `CheckInitialHashKV`: an error names the mismatching peers.
pub async fn check_initial_hash(s: &EtcdServer) -> Result<(), String> {
    tracing::info!("starting initial corruption check");
    let (h, rev, crev) = hash_by_rev(&s.store, 0)
        .await
        .map_err(|e| e.message().to_string())?;
    let mut mismatch = 0;
    for (id, r) in peer_hashes(s, rev).await {
        match r {
            Ok(p) if p.hash != h => {
                if p.compact_revision == crev {
                    tracing::error!(
                        local = format!("{:x}", s.member_id),
                        local_hash = h,
                        peer = format!("{id:x}"),
                        peer_hash = p.hash,
                        revision = rev,
                        compact_revision = crev,
                        "found different hash values from a peer"
                    );
                    mismatch += 1;
                } else {
                    tracing::warn!(
                        peer = format!("{id:x}"),
                        peer_compact_revision = p.compact_revision,
                        compact_revision = crev,
                        "cannot check the hash of a peer with a different compact revision"
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(peer = format!("{id:x}"), error = %e.message(), "cannot fetch the hash of a peer")
            }
        }
    }
    if mismatch > 0 {
        return Err(format!("{:x} found data inconsistency with peers", s.member_id));
    }
    tracing::info!(revision = rev, hash = h, "initial corruption check passed");
    Ok(())
}

/// etcd's `checkHashKV`, run by the leader: which members are corrupt.
async fn corrupt_members(s: &EtcdServer) -> Result<Vec<u64>, Status> {
    let (h, rev, crev) = hash_by_rev(&s.store, 0).await?;
    let peers = peer_hashes(s, rev).await;
    s.linearizable_read().await?;
    let (h2, rev2, crev2) = hash_by_rev(&s.store, 0).await?;
    let mut bad = Vec::new();
    if h2 != h && rev2 == rev && crev2 == crev {
        tracing::error!(
            revision = rev,
            hash = h,
            hash_again = h2,
            "this member's hash changed at the same revision"
        );
        bad.push(s.member_id);
    }
    for (id, r) in peers {
        let Ok(p) = r else { continue };
        let prev = p.header.as_ref().map_or(0, |h: &ResponseHeader| h.revision);
        // a follower cannot be ahead of the leader, nor compacted further
        let wrong = prev > rev2 || p.compact_revision > crev2 || (p.compact_revision == crev && p.hash != h);
        if wrong {
            tracing::error!(
                peer = format!("{id:x}"),
                peer_hash = p.hash,
                peer_revision = prev,
                peer_compact_revision = p.compact_revision,
                leader_hash = h,
                revision = rev,
                compact_revision = crev,
                "corruption detected"
            );
            bad.push(id);
        }
    }
    Ok(bad)
}

/// Every `every`, while leading, checks the members and raises CORRUPT for the first bad
/// one (etcd raises one alarm per check).
pub async fn run_periodic(s: Arc<EtcdServer>, every: Duration) {
    tracing::info!(interval = ?every, "enabled periodic corruption checks");
    loop {
        tokio::time::sleep(every).await;
        if !s.raft.status().is_leader || s.alarms.is_set(AlarmType::Corrupt) {
            continue;
        }
        match corrupt_members(&s).await {
            Ok(bad) => {
                if let Some(&id) = bad.first() {
                    let raise = AlarmRequest {
                        action: alarm_request::AlarmAction::Activate as i32,
                        member_id: id,
                        alarm: AlarmType::Corrupt as i32,
                    };
                    if let Err(e) = crate::auth::scoped(Default::default(), s.alarm(raise)).await {
                        tracing::warn!(error = %e.message(), "raising the CORRUPT alarm failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e.message(), "corruption check failed"),
        }
    }
}
