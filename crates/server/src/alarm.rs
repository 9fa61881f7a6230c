//! Alarms (etcd's `etcdserver/api/v3alarm` and the alarm half of `apply.go`) and the
//! backend space quota (etcd's `quota.go`).
//!
//! An alarm is a (member, type) pair raised and cleared through raft, so every member has
//! the same set; it is persisted in the backend's meta table (`alarm/<type>/<member>`, etcd's
//! `alarm` bucket) and reloaded on restart and snapshot install. While a NOSPACE alarm is
//! set the applier refuses writes that add data (etcd's `applierV3Capped`); while a CORRUPT
//! alarm is set it refuses every KV and lease request (etcd's `applierV3Corrupt`).
//!
//! The quota is checked before a Put, Txn or LeaseGrant is proposed: if the backend file
//! plus the request's cost reaches `--quota-backend-bytes`, the member raises NOSPACE for
//! itself and the request fails with `etcdserver: mvcc: database space exceeded`.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use prost::Message;
use retcd_api::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, TxnRequest, alarm_request, request_op,
};
use retcd_mvcc::{Batch, MvccError, Store};

/// Meta name prefix of the persisted alarms.
const ALARM_PREFIX: &str = "alarm/";

/// etcd's `DefaultQuotaBytes`: `--quota-backend-bytes 0` means 2 GiB.
pub const DEFAULT_QUOTA_BYTES: i64 = 2 << 30;
/// etcd's per-key cost estimate (index and bucket overhead) and per-lease cost.
const KV_OVERHEAD: u64 = 256;
const LEASE_OVERHEAD: u64 = 64;

fn meta_name(m: &AlarmMember) -> String {
    format!("{ALARM_PREFIX}{}/{:016x}", m.alarm, m.member_id)
}

/// The alarms set in the cluster, ordered by (type, member).
#[derive(Default)]
pub struct AlarmStore {
    set: Mutex<BTreeSet<(i32, u64)>>,
}

/// What applying an alarm request changed, for the applier to persist.
pub enum AlarmWrite {
    Put(AlarmMember),
    Delete(AlarmMember),
}

impl AlarmStore {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<(i32, u64)>> {
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The alarms recorded in `store`.
    pub fn load(store: &Store) -> Result<AlarmStore, MvccError> {
        let s = AlarmStore::default();
        s.reload(store)?;
        Ok(s)
    }

    /// The backend was replaced (snapshot install): its alarms are the cluster's.
    pub fn reload(&self, store: &Store) -> Result<(), MvccError> {
        let mut set = BTreeSet::new();
        for (name, blob) in store.metas_with_prefix(ALARM_PREFIX)? {
            let m = AlarmMember::decode(blob.as_slice())
                .map_err(|e| MvccError::Corrupt(format!("alarm record {name}: {e}")))?;
            set.insert((m.alarm, m.member_id));
        }
        if !set.is_empty() {
            tracing::warn!(alarms = ?set, "alarms are set");
        }
        *self.lock() = set;
        Ok(())
    }

    /// Every alarm of type `at` (all of them for NONE), as etcd's `AlarmStore.Get`.
    pub fn get(&self, at: i32) -> Vec<AlarmMember> {
        self.lock()
            .iter()
            .filter(|(t, _)| at == AlarmType::None as i32 || *t == at)
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// (CORRUPT set, NOSPACE set), under one lock (the applier asks for every request).
    pub fn capped(&self) -> (bool, bool) {
        let set = self.lock();
        let any = |at: AlarmType| set.iter().any(|(t, _)| *t == at as i32);
        (any(AlarmType::Corrupt), any(AlarmType::Nospace))
    }

    /// Whether `member` has alarm `at`.
    pub fn has(&self, member: u64, at: AlarmType) -> bool {
        self.lock().contains(&(at as i32, member))
    }

    pub fn is_set(&self, at: AlarmType) -> bool {
        self.lock().iter().any(|(t, _)| *t == at as i32)
    }

    /// etcd's alarm text for Status errors and /health: `AlarmMember.String()` in
    /// protobuf text format (zero fields left out, a trailing space).
    pub fn describe(m: &AlarmMember) -> String {
        let mut s = String::new();
        if m.member_id != 0 {
            s.push_str(&format!("memberID:{} ", m.member_id));
        }
        if m.alarm != 0 {
            let name = AlarmType::try_from(m.alarm)
                .map(|t| t.as_str_name().to_string())
                .unwrap_or_else(|_| m.alarm.to_string());
            s.push_str(&format!("alarm:{name} "));
        }
        s
    }

    /// Applies an alarm request (etcd's `applierV3backend.Alarm`): the response and the
    /// change to persist, if any.
    pub fn apply(&self, r: &AlarmRequest) -> (AlarmResponse, Option<AlarmWrite>) {
        let mut resp = AlarmResponse::default();
        let m = AlarmMember {
            member_id: r.member_id,
            alarm: r.alarm,
        };
        match alarm_request::AlarmAction::try_from(r.action) {
            Ok(alarm_request::AlarmAction::Get) => resp.alarms = self.get(r.alarm),
            Ok(alarm_request::AlarmAction::Activate) => {
                if r.alarm == AlarmType::None as i32 {
                    return (resp, None);
                }
                let new = self.lock().insert((r.alarm, r.member_id));
                resp.alarms.push(m);
                if new {
                    tracing::warn!(alarm = %Self::describe(&m), "alarm raised");
                    return (resp, Some(AlarmWrite::Put(m)));
                }
            }
            Ok(alarm_request::AlarmAction::Deactivate) => {
                if self.lock().remove(&(r.alarm, r.member_id)) {
                    tracing::warn!(alarm = %Self::describe(&m), "alarm disarmed");
                    resp.alarms.push(m);
                    return (resp, Some(AlarmWrite::Delete(m)));
                }
            }
            Err(_) => {}
        }
        (resp, None)
    }
}

/// Records an applied alarm change in the batch.
pub fn persist(batch: &mut Batch<'_>, w: &AlarmWrite) -> Result<(), MvccError> {
    match w {
        AlarmWrite::Put(m) => batch.set_meta(&meta_name(m), &m.encode_to_vec()),
        AlarmWrite::Delete(m) => batch.delete_meta(&meta_name(m)),
    }
}

/// etcd's quota costs: a put costs its key and value plus the index overhead; a txn the
/// dearer of its two branches' puts; a lease grant a fixed overhead.
pub fn put_cost(key: &[u8], value: &[u8]) -> u64 {
    KV_OVERHEAD + key.len() as u64 + value.len() as u64
}

pub fn txn_cost(t: &TxnRequest) -> u64 {
    let branch = |ops: &[retcd_api::etcdserverpb::RequestOp]| -> u64 {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => put_cost(&p.key, &p.value),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

pub fn lease_cost() -> u64 {
    LEASE_OVERHEAD
}

/// etcd's `backendQuota.Available`: false when the backend would reach the quota (a
/// negative quota disables the check).
pub fn quota_available(quota: i64, db_size: u64, cost: u64) -> bool {
    quota < 0 || db_size.saturating_add(cost) < quota as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_api::etcdserverpb::{PutRequest, RequestOp};

    fn req(action: alarm_request::AlarmAction, member: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest {
            action: action as i32,
            member_id: member,
            alarm: alarm as i32,
        }
    }

    #[test]
    fn activate_get_deactivate_as_etcd() {
        use alarm_request::AlarmAction::*;
        let s = AlarmStore::default();
        let (r, w) = s.apply(&req(Activate, 7, AlarmType::Nospace));
        assert_eq!(r.alarms.len(), 1);
        assert!(matches!(w, Some(AlarmWrite::Put(_))));
        // raising it again answers it, changes nothing
        let (r, w) = s.apply(&req(Activate, 7, AlarmType::Nospace));
        assert_eq!(r.alarms.len(), 1);
        assert!(w.is_none());
        s.apply(&req(Activate, 3, AlarmType::Corrupt));
        // NONE is no alarm
        let (r, w) = s.apply(&req(Activate, 3, AlarmType::None));
        assert!(r.alarms.is_empty() && w.is_none());
        assert_eq!(s.apply(&req(Get, 0, AlarmType::None)).0.alarms.len(), 2);
        let only = s.apply(&req(Get, 0, AlarmType::Corrupt)).0.alarms;
        assert_eq!(
            only,
            vec![AlarmMember {
                member_id: 3,
                alarm: AlarmType::Corrupt as i32
            }]
        );
        assert!(s.is_set(AlarmType::Nospace) && s.is_set(AlarmType::Corrupt));
        // deactivating one that is not set answers nothing
        let (r, w) = s.apply(&req(Deactivate, 9, AlarmType::Nospace));
        assert!(r.alarms.is_empty() && w.is_none());
        let (r, w) = s.apply(&req(Deactivate, 7, AlarmType::Nospace));
        assert_eq!(r.alarms.len(), 1);
        assert!(matches!(w, Some(AlarmWrite::Delete(_))));
        assert!(!s.is_set(AlarmType::Nospace));
    }

    #[test]
    fn describe_is_protobuf_text() {
        let m = AlarmMember {
            member_id: 10276657743932975437,
            alarm: AlarmType::Nospace as i32,
        };
        assert_eq!(
            AlarmStore::describe(&m),
            "memberID:10276657743932975437 alarm:NOSPACE "
        );
        let m = AlarmMember {
            member_id: 0,
            alarm: AlarmType::Corrupt as i32,
        };
        assert_eq!(AlarmStore::describe(&m), "alarm:CORRUPT ");
    }

    #[test]
    fn costs_and_quota() {
        assert_eq!(put_cost(b"k", b"vv"), 259);
        let put = |v: &[u8]| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: b"k".to_vec(),
                value: v.to_vec(),
                ..Default::default()
            })),
        };
        let t = TxnRequest {
            success: vec![put(b"1"), put(b"22")],
            failure: vec![put(&[0; 600])],
            ..Default::default()
        };
        assert_eq!(txn_cost(&t), 857);
        assert!(quota_available(1000, 500, 499));
        assert!(!quota_available(1000, 500, 500));
        assert!(quota_available(-1, u64::MAX, 1));
    }

    #[test]
    fn persisted_and_reloaded() {
        use alarm_request::AlarmAction::*;
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), Default::default()).unwrap();
        let s = AlarmStore::default();
        let mut b = store.begin_batch().unwrap();
        for r in [
            req(Activate, 1, AlarmType::Nospace),
            req(Activate, 2, AlarmType::Nospace),
            req(Deactivate, 1, AlarmType::Nospace),
        ] {
            if let (_, Some(w)) = s.apply(&r) {
                persist(&mut b, &w).unwrap();
            }
        }
        b.commit(true).unwrap();
        let loaded = AlarmStore::load(&store).unwrap();
        assert_eq!(loaded.get(0), s.get(0));
        assert_eq!(loaded.get(0).len(), 1);
    }
}
