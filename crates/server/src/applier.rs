//! The applier (etcd's `applierV3backend`): turns committed requests into MVCC changes and
//! responses. It runs on the apply path, one batch of raft entries per backend transaction,
//! and also serves local reads (Range, read-only Txn) with the same code so a read and a
//! write see requests the same way.
//!
//! Everything here is deterministic: every member applies the same entries to the same
//! state and gets the same revisions and answers.

use std::io;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use prost::Message;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::{
    AlarmResponse, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantResponse,
    LeaseRevokeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, ResponseOp,
    TxnRequest, TxnResponse, compare, range_request, request_op, response_op,
};
use retcd_api::mvccpb;
use retcd_auth::{AuthError, AuthInfo, AuthWrite};
use retcd_mvcc::{Batch, CompactionJob, MvccError, RangeOptions, RangeResult, ReadTxn, Store, TxnWrite};
use retcd_raft_node::{ApplyBatch, ApplyReply, Backend};
use tokio::sync::oneshot;

use crate::alarm::AlarmStore;
use crate::auth::AuthHub;
use crate::lease::{LeaseHub, lease_error};
use crate::raft_request::InternalRaftRequest;

/// Meta key under which the raft applied state is kept with the data.
const RAFT_APPLIED_META: &str = "raft_applied_state";
/// A durable backend commit at least this often (the WAL is the durability source; this
/// bounds how much log is replayed after a crash).
const DURABLE_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// The result of applying one proposal, handed back to the proposer.
pub type ApplyResult = Result<Applied, EtcdError>;

pub enum Applied {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    /// `done` fires when the backend has physically removed the compacted history.
    Compaction(CompactionResponse, oneshot::Receiver<()>),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    LeaseCheckpoint,
    Auth(AuthApplied),
    Alarm(AlarmResponse),
}

/// What an applied auth request answers (the services build the responses).
#[derive(Debug)]
pub enum AuthApplied {
    Done,
    Status {
        enabled: bool,
        revision: u64,
    },
    Token(String),
    /// User or role names.
    Names(Vec<String>),
    Perms(Vec<retcd_auth::Permission>),
}

fn fatal(e: MvccError) -> io::Error {
    io::Error::other(e.to_string())
}

/// MVCC errors a client can cause become etcd errors; anything else is fatal.
fn client_err(e: MvccError) -> Result<EtcdError, io::Error> {
    match e {
        MvccError::Compacted => Ok(EtcdError::Compacted),
        MvccError::FutureRev => Ok(EtcdError::FutureRev),
        other => Err(fatal(other)),
    }
}

/// Read access shared by read-only transactions and write transactions.
pub trait RangeView {
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError>;
    fn rev(&self) -> i64;
}

impl RangeView for ReadTxn {
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        ReadTxn::range(self, key, end, opts)
    }
    fn rev(&self) -> i64 {
        ReadTxn::rev(self)
    }
}

impl RangeView for TxnWrite<'_, '_> {
    fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        TxnWrite::range(self, key, end, opts)
    }
    fn rev(&self) -> i64 {
        TxnWrite::rev(self)
    }
}

fn to_pb(kv: retcd_mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

fn rev_header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// etcd's `applierV3backend.Range`. Errors are client errors (compacted / future revision).
pub fn range<V: RangeView>(
    view: &V,
    r: &RangeRequest,
) -> Result<Result<RangeResponse, EtcdError>, io::Error> {
    use range_request::{SortOrder, SortTarget};
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let sort_order = SortOrder::try_from(r.sort_order).unwrap_or(SortOrder::None);
    let sort_target = SortTarget::try_from(r.sort_target).unwrap_or(SortTarget::Key);
    let mut limit = r.limit;
    if sort_order != SortOrder::None || filtered {
        // fetch everything; sort and truncate afterwards
        limit = 0;
    }
    if limit > 0 {
        // one extra to tell whether there is more
        limit += 1;
    }
    let opts = RangeOptions {
        limit,
        rev: r.revision,
        count_only: r.count_only,
    };
    let rr = match view.range(&r.key, &r.range_end, opts) {
        Ok(rr) => rr,
        Err(e) => return client_err(e).map(Err),
    };
    let mut kvs = rr.kvs;
    if r.max_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        kvs.retain(|kv| kv.create_revision >= r.min_create_revision);
    }
    let mut order = sort_order;
    if sort_target != SortTarget::Key && order == SortOrder::None {
        // results come sorted by key; any other target sorts ascending by default
        order = SortOrder::Ascend;
    }
    if order != SortOrder::None {
        let cmp = |a: &retcd_mvcc::KeyValue, b: &retcd_mvcc::KeyValue| match sort_target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        // etcd uses Go's unstable sort.Sort (sort.Reverse for DESCEND); ties must come out
        // in the same order
        match order {
            SortOrder::Descend => crate::gosort::go_sort(&mut kvs, |a, b| cmp(b, a).is_lt()),
            _ => crate::gosort::go_sort(&mut kvs, |a, b| cmp(a, b).is_lt()),
        }
    }
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    let kvs = kvs
        .into_iter()
        .map(|mut kv| {
            if r.keys_only {
                kv.value = Vec::new();
            }
            to_pb(kv)
        })
        .collect();
    Ok(Ok(RangeResponse {
        header: rev_header(rr.rev),
        kvs,
        more,
        count: rr.count,
    }))
}

/// etcd's `compareKV`.
fn compare_kv(c: &Compare, kv: &retcd_mvcc::KeyValue) -> bool {
    use compare::{CompareResult, CompareTarget, TargetUnion};
    let ord = match CompareTarget::try_from(c.target).unwrap_or(CompareTarget::Version) {
        CompareTarget::Value => {
            let v: &[u8] = match &c.target_union {
                Some(TargetUnion::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(v)
        }
        CompareTarget::Create => {
            let v = match c.target_union {
                Some(TargetUnion::CreateRevision(v)) => v,
                _ => 0,
            };
            kv.create_revision.cmp(&v)
        }
        CompareTarget::Mod => {
            let v = match c.target_union {
                Some(TargetUnion::ModRevision(v)) => v,
                _ => 0,
            };
            kv.mod_revision.cmp(&v)
        }
        CompareTarget::Version => {
            let v = match c.target_union {
                Some(TargetUnion::Version(v)) => v,
                _ => 0,
            };
            kv.version.cmp(&v)
        }
        CompareTarget::Lease => {
            let v = match c.target_union {
                Some(TargetUnion::Lease(v)) => v,
                _ => 0,
            };
            kv.lease.cmp(&v)
        }
    };
    match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => ord.is_eq(),
        Ok(CompareResult::NotEqual) => ord.is_ne(),
        Ok(CompareResult::Greater) => ord.is_gt(),
        Ok(CompareResult::Less) => ord.is_lt(),
        Err(_) => true,
    }
}

/// etcd's `applyCompare`: every key in the compared range must satisfy it; a value compare
/// on a missing key always fails.
fn apply_compare<V: RangeView>(view: &V, c: &Compare) -> Result<bool, io::Error> {
    let rr = match view.range(&c.key, &c.range_end, RangeOptions::default()) {
        Ok(rr) => rr,
        Err(e) => {
            client_err(e)?;
            return Ok(false);
        }
    };
    if rr.kvs.is_empty() {
        if c.target == compare::CompareTarget::Value as i32 {
            return Ok(false);
        }
        return Ok(compare_kv(c, &retcd_mvcc::KeyValue::default()));
    }
    Ok(rr.kvs.iter().all(|kv| compare_kv(c, kv)))
}

/// etcd's `compareToPath`: which branch every (nested) txn takes, in depth-first order.
fn compare_to_path<V: RangeView>(view: &V, rt: &TxnRequest, path: &mut Vec<bool>) -> Result<(), io::Error> {
    let mut ok = true;
    for c in &rt.compare {
        if !apply_compare(view, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    let ops = if ok { &rt.success } else { &rt.failure };
    for op in ops {
        if let Some(request_op::Request::RequestTxn(t)) = &op.request {
            compare_to_path(view, t, path)?;
        }
    }
    Ok(())
}

/// Whether a txn only reads (etcd's `isTxnReadonly`).
pub fn txn_is_readonly(rt: &TxnRequest) -> bool {
    rt.success
        .iter()
        .chain(rt.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) => true,
            Some(request_op::Request::RequestTxn(t)) => txn_is_readonly(t),
            _ => false,
        })
}

/// Whether every range of a read-only txn is serializable (etcd's `isTxnSerializable`).
pub fn txn_is_serializable(rt: &TxnRequest) -> bool {
    rt.success
        .iter()
        .chain(rt.failure.iter())
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => r.serializable,
            Some(request_op::Request::RequestTxn(t)) => txn_is_serializable(t),
            _ => true,
        })
}

/// etcd's `checkRequests`: before anything is written, every put in the taken path must be
/// applicable (lease exists; ignore_value/ignore_lease need the key) and every range
/// revision must be servable.
fn check_requests<V: RangeView>(
    view: &V,
    rt: &TxnRequest,
    path: &[bool],
    pos: &mut usize,
    compact_rev: i64,
    lease_exists: &dyn Fn(i64) -> bool,
) -> Result<Result<(), EtcdError>, io::Error> {
    let Some(&ok) = path.get(*pos) else {
        return Ok(Ok(()));
    };
    *pos += 1;
    let ops = if ok { &rt.success } else { &rt.failure };
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestPut(p)) => {
                if let Err(e) = check_put(view, p, lease_exists)? {
                    return Ok(Err(e));
                }
            }
            Some(request_op::Request::RequestRange(r)) if r.revision != 0 => {
                if r.revision > view.rev() {
                    return Ok(Err(EtcdError::FutureRev));
                }
                if r.revision < compact_rev {
                    return Ok(Err(EtcdError::Compacted));
                }
            }
            Some(request_op::Request::RequestTxn(t)) => {
                if let Err(e) = check_requests(view, t, path, pos, compact_rev, lease_exists)? {
                    return Ok(Err(e));
                }
            }
            _ => {}
        }
    }
    Ok(Ok(()))
}

fn check_put<V: RangeView>(
    view: &V,
    p: &PutRequest,
    lease_exists: &dyn Fn(i64) -> bool,
) -> Result<Result<(), EtcdError>, io::Error> {
    if p.lease != 0 && !lease_exists(p.lease) {
        return Ok(Err(EtcdError::LeaseNotFound));
    }
    if p.ignore_value || p.ignore_lease {
        let rr = match view.range(&p.key, &[], RangeOptions::default()) {
            Ok(rr) => rr,
            Err(e) => return client_err(e).map(Err),
        };
        if rr.kvs.is_empty() {
            return Ok(Err(EtcdError::KeyNotFound));
        }
    }
    Ok(Ok(()))
}

/// etcd's `applierV3backend.Put` inside a write txn (checks already passed).
fn put(txn: &mut TxnWrite<'_, '_>, p: &PutRequest) -> Result<Result<PutResponse, EtcdError>, io::Error> {
    let mut val: &[u8] = &p.value;
    let mut lease = p.lease;
    let mut prev = None;
    if p.ignore_value || p.ignore_lease || p.prev_kv {
        let rr = match txn.range(&p.key, &[], RangeOptions::default()) {
            Ok(rr) => rr,
            Err(e) => return client_err(e).map(Err),
        };
        prev = rr.kvs.into_iter().next();
    }
    if p.ignore_value || p.ignore_lease {
        let Some(prev) = &prev else {
            return Ok(Err(EtcdError::KeyNotFound));
        };
        if p.ignore_lease {
            lease = prev.lease;
        }
    }
    let prev_value;
    if p.ignore_value {
        prev_value = prev.as_ref().map(|kv| kv.value.clone()).unwrap_or_default();
        val = &prev_value;
    }
    let rev = txn.put(&p.key, val, lease).map_err(fatal)?;
    Ok(Ok(PutResponse {
        header: rev_header(rev),
        prev_kv: if p.prev_kv { prev.map(to_pb) } else { None },
    }))
}

/// etcd's `applierV3backend.DeleteRange` inside a write txn.
fn delete_range(
    txn: &mut TxnWrite<'_, '_>,
    d: &DeleteRangeRequest,
) -> Result<Result<DeleteRangeResponse, EtcdError>, io::Error> {
    let end = &d.range_end;
    let mut prev_kvs = Vec::new();
    if d.prev_kv {
        match txn.range(&d.key, end, RangeOptions::default()) {
            Ok(rr) => prev_kvs = rr.kvs.into_iter().map(to_pb).collect(),
            Err(e) => return client_err(e).map(Err),
        }
    }
    let deleted = txn.delete_range(&d.key, end).map_err(fatal)?;
    let rev = txn.rev();
    Ok(Ok(DeleteRangeResponse {
        header: rev_header(rev),
        deleted,
        prev_kvs,
    }))
}

/// etcd's `applyTxn`: runs the ops of the taken branches in order.
fn apply_txn_ops(
    txn: &mut TxnWrite<'_, '_>,
    rt: &TxnRequest,
    path: &[bool],
    pos: &mut usize,
) -> Result<TxnResponse, io::Error> {
    let ok = path.get(*pos).copied().unwrap_or(false);
    *pos += 1;
    let ops = if ok { &rt.success } else { &rt.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let resp = match &op.request {
            Some(request_op::Request::RequestRange(r)) => match range(txn, r)? {
                Ok(rr) => response_op::Response::ResponseRange(rr),
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "unexpected error during txn range: {e}"
                    )));
                }
            },
            Some(request_op::Request::RequestPut(p)) => match put(txn, p)? {
                Ok(pr) => response_op::Response::ResponsePut(pr),
                Err(e) => return Err(io::Error::other(format!("unexpected error during txn put: {e}"))),
            },
            Some(request_op::Request::RequestDeleteRange(d)) => match delete_range(txn, d)? {
                Ok(dr) => response_op::Response::ResponseDeleteRange(dr),
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "unexpected error during txn delete: {e}"
                    )));
                }
            },
            Some(request_op::Request::RequestTxn(t)) => {
                let mut inner = apply_txn_ops(txn, t, path, pos)?;
                inner.header = rev_header(txn.rev());
                response_op::Response::ResponseTxn(inner)
            }
            None => continue,
        };
        responses.push(ResponseOp { response: Some(resp) });
    }
    Ok(TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    })
}

/// A read-only txn served locally (etcd serves these without raft).
pub fn read_only_txn(view: &ReadTxn, rt: &TxnRequest, compact_rev: i64) -> Result<ApplyResultTxn, io::Error> {
    let mut path = Vec::new();
    compare_to_path(view, rt, &mut path)?;
    // a read-only txn has no puts: no lease to look up
    if let Err(e) = check_requests(view, rt, &path, &mut 0, compact_rev, &|_| false)? {
        return Ok(Err(e));
    }
    let mut pos = 0;
    let resp = read_only_ops(view, rt, &path, &mut pos)?;
    Ok(resp.map(|mut r| {
        r.header = rev_header(view.rev());
        r
    }))
}

pub type ApplyResultTxn = Result<TxnResponse, EtcdError>;

fn read_only_ops(
    view: &ReadTxn,
    rt: &TxnRequest,
    path: &[bool],
    pos: &mut usize,
) -> Result<ApplyResultTxn, io::Error> {
    let ok = path.get(*pos).copied().unwrap_or(false);
    *pos += 1;
    let ops = if ok { &rt.success } else { &rt.failure };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let resp = match &op.request {
            Some(request_op::Request::RequestRange(r)) => match range(view, r)? {
                Ok(rr) => response_op::Response::ResponseRange(rr),
                Err(e) => return Ok(Err(e)),
            },
            Some(request_op::Request::RequestTxn(t)) => match read_only_ops(view, t, path, pos)? {
                Ok(mut inner) => {
                    inner.header = rev_header(view.rev());
                    response_op::Response::ResponseTxn(inner)
                }
                Err(e) => return Ok(Err(e)),
            },
            _ => continue,
        };
        responses.push(ResponseOp { response: Some(resp) });
    }
    Ok(Ok(TxnResponse {
        header: None,
        succeeded: ok,
        responses,
    }))
}

/// Runs compactions one after another on their own thread (etcd's FIFO compaction scheduler),
/// so the apply loop never waits for history to be deleted.
struct Compactor {
    tx: mpsc::Sender<(CompactionJob, oneshot::Sender<()>)>,
}

impl Compactor {
    fn start(store: Store) -> io::Result<Compactor> {
        let (tx, rx) = mpsc::channel::<(CompactionJob, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("compactor".into())
            .spawn(move || {
                for (job, done) in rx {
                    let rev = job.revision();
                    if let Err(e) = store.run_compaction(job) {
                        tracing::error!(revision = rev, error = %e, "compaction failed; stopping");
                        eprintln!("retcd: FATAL: compaction at revision {rev} failed: {e}");
                        std::process::exit(2);
                    }
                    tracing::info!(compact_revision = rev, "finished scheduled compaction");
                    let _ = done.send(());
                }
            })?;
        Ok(Compactor { tx })
    }

    /// `done` fires when the job has finished.
    fn schedule(&self, job: CompactionJob, done: oneshot::Sender<()>) {
        // The compactor thread lives as long as the process; if it is gone the waiter just
        // sees the channel closed.
        let _ = self.tx.send((job, done));
    }
}

/// The raft state machine backend: applies committed proposals to the MVCC store.
pub struct Applier {
    store: Store,
    compactor: Compactor,
    last_durable: Instant,
    /// Receives every committed revision's changes (watchers).
    watchable: retcd_watch::WatchableStore,
    leases: Arc<LeaseHub>,
    /// Proposers waiting for their entries' results on this member.
    wait: Arc<crate::wait::Wait>,
    auth: Arc<AuthHub>,
    alarms: Arc<AlarmStore>,
}

impl Applier {
    /// `resume` is an unfinished compaction found when the store was opened.
    pub fn new(
        store: Store,
        resume: Option<CompactionJob>,
        watchable: retcd_watch::WatchableStore,
        leases: Arc<LeaseHub>,
        wait: Arc<crate::wait::Wait>,
        auth: Arc<AuthHub>,
        alarms: Arc<AlarmStore>,
    ) -> io::Result<Applier> {
        let compactor = Compactor::start(store.clone())?;
        if let Some(job) = resume {
            tracing::info!(
                compact_revision = job.revision(),
                "resuming unfinished compaction"
            );
            // nobody waits for a resumed compaction
            compactor.schedule(job, oneshot::channel().0);
        }
        Ok(Applier {
            store,
            compactor,
            last_durable: Instant::now(),
            watchable,
            leases,
            wait,
            auth,
            alarms,
        })
    }

    /// etcd's `applierV3Corrupt` and `applierV3Capped`: with a CORRUPT alarm set, every KV
    /// and lease request fails; with NOSPACE, requests that add data (puts, txns with a
    /// put, lease grants) fail.
    fn refused_by_alarm(&self, req: &InternalRaftRequest) -> Option<EtcdError> {
        let (corrupt, nospace) = self.alarms.capped();
        if corrupt
            && (req.put.is_some()
                || req.delete_range.is_some()
                || req.txn.is_some()
                || req.compaction.is_some()
                || req.lease_grant.is_some()
                || req.lease_revoke.is_some())
        {
            return Some(EtcdError::Corrupt);
        }
        if nospace
            && (req.put.is_some()
                || req.lease_grant.is_some()
                || req.txn.as_ref().is_some_and(|t| crate::alarm::txn_cost(t) > 0))
        {
            return Some(EtcdError::NoSpace);
        }
        None
    }

    /// etcd's `authApplierV3` checks for key writes, made when applied (so a permission
    /// change committed before the write counts): puts need write access (and to every
    /// key of the lease they attach to), deletes write access to their range, `prev_kv`
    /// read access too, txns all that for every compare and every op of both branches,
    /// lease revokes write access to every attached key.
    fn check_permissions(&self, req: &InternalRaftRequest, who: &AuthInfo) -> Result<(), EtcdError> {
        let st = self.auth.lock();
        if !st.is_enabled() {
            return Ok(());
        }
        let lease_keys = |id: i64| -> Vec<Vec<u8>> {
            if id == 0 {
                return Vec::new();
            }
            self.leases.lock().revoke_keys(id).unwrap_or_default()
        };
        let check_put = |p: &PutRequest| -> Result<(), EtcdError> {
            st.is_put_permitted(who, &p.key)?;
            for k in lease_keys(p.lease) {
                st.is_put_permitted(who, &k)?;
            }
            if p.prev_kv {
                st.is_read_permitted(who, &p.key, &[])?;
            }
            Ok(())
        };
        let check_delete = |d: &DeleteRangeRequest| -> Result<(), EtcdError> {
            st.is_delete_range_permitted(who, &d.key, &d.range_end)?;
            if d.prev_kv {
                st.is_read_permitted(who, &d.key, &d.range_end)?;
            }
            Ok(())
        };
        if let Some(p) = &req.put {
            check_put(p)?;
        }
        if let Some(d) = &req.delete_range {
            check_delete(d)?;
        }
        if let Some(t) = &req.txn {
            let read = |k: &[u8], e: &[u8]| st.is_read_permitted(who, k, e).map_err(EtcdError::from);
            crate::auth::check_txn(t, &read, &check_put, &check_delete)?;
        }
        if let Some(r) = &req.lease_revoke {
            for k in lease_keys(r.id) {
                st.is_put_permitted(who, &k)?;
            }
        }
        Ok(())
    }

    /// Applies an auth request (etcd's `applierV3` auth methods behind `authApplierV3`'s
    /// admin check); `None` if `req` is not one.
    fn apply_auth(
        &self,
        batch: &mut Batch<'_>,
        req: &mut InternalRaftRequest,
        who: &AuthInfo,
        index: u64,
    ) -> Result<Option<Result<AuthApplied, EtcdError>>, io::Error> {
        let mut st = self.auth.lock();
        let admin = || st.is_admin_permitted(who);
        let r: Result<(Vec<AuthWrite>, AuthApplied), AuthError> = if req.auth_enable.take().is_some() {
            admin()
                .and_then(|()| st.auth_enable())
                .map(|w| (w, AuthApplied::Done))
        } else if req.auth_disable.take().is_some() {
            admin().map(|()| (st.auth_disable(), AuthApplied::Done))
        } else if req.auth_status.take().is_some() {
            admin().map(|()| {
                (
                    Vec::new(),
                    AuthApplied::Status {
                        enabled: st.is_enabled(),
                        revision: st.revision(),
                    },
                )
            })
        } else if let Some(a) = req.authenticate.take() {
            crate::auth::apply_authenticate(&mut st, &a, index, Instant::now())
                .map(|t| (Vec::new(), AuthApplied::Token(t)))
        } else if let Some(u) = req.auth_user_add.take() {
            let no_password = u.options.is_some_and(|o| o.no_password);
            admin()
                .and_then(|()| st.user_add(&u.name, u.hashed_password.into_bytes(), no_password))
                .map(|w| (w, AuthApplied::Done))
        } else if let Some(u) = req.auth_user_delete.take() {
            admin()
                .and_then(|()| st.user_delete(&u.name))
                .map(|w| (w, AuthApplied::Done))
        } else if let Some(u) = req.auth_user_change_password.take() {
            admin()
                .and_then(|()| st.user_change_password(&u.name, u.hashed_password.into_bytes()))
                .map(|w| (w, AuthApplied::Done))
        } else if let Some(u) = req.auth_user_grant_role.take() {
            admin()
                .and_then(|()| st.user_grant_role(&u.user, &u.role))
                .map(|w| (w, AuthApplied::Done))
        } else if let Some(u) = req.auth_user_revoke_role.take() {
            admin()
                .and_then(|()| st.user_revoke_role(&u.name, &u.role))
                .map(|w| (w, AuthApplied::Done))
        } else if let Some(u) = req.auth_user_get.take() {
            // etcd: a user may look at itself
            match admin() {
                Err(e) if !st.is_enabled() || u.name != who.username => Err(e),
                _ => st
                    .user_get(&u.name)
                    .map(|roles| (Vec::new(), AuthApplied::Names(roles))),
            }
        } else if req.auth_user_list.take().is_some() {
            admin().map(|()| (Vec::new(), AuthApplied::Names(st.user_list())))
        } else if req.auth_role_list.take().is_some() {
            admin().map(|()| (Vec::new(), AuthApplied::Names(st.role_list())))
        } else if let Some(r) = req.auth_role_add.take() {
            admin()
                .and_then(|()| st.role_add(&r.name))
                .map(|w| (w, AuthApplied::Done))
        } else if let Some(r) = req.auth_role_delete.take() {
            admin()
                .and_then(|()| st.role_delete(&r.role))
                .map(|w| (w, AuthApplied::Done))
        } else if let Some(r) = req.auth_role_get.take() {
            // etcd: a user may look at its own roles
            match admin() {
                Err(e) if !st.has_role(&who.username, &r.role) => Err(e),
                _ => st.role_get(&r.role).map(|p| (Vec::new(), AuthApplied::Perms(p))),
            }
        } else if let Some(r) = req.auth_role_grant_permission.take() {
            admin()
                .and_then(|()| st.role_grant_permission(&r.name, r.perm))
                .map(|w| (w, AuthApplied::Done))
        } else if let Some(r) = req.auth_role_revoke_permission.take() {
            admin()
                .and_then(|()| st.role_revoke_permission(&r.role, &r.key, &r.range_end))
                .map(|w| (w, AuthApplied::Done))
        } else {
            return Ok(None);
        };
        drop(st);
        Ok(Some(match r {
            Ok((writes, applied)) => {
                crate::auth::persist(batch, &writes).map_err(fatal)?;
                Ok(applied)
            }
            Err(e) => Err(EtcdError::from(e)),
        }))
    }

    fn lease_exists(&self, id: i64) -> bool {
        self.leases.lock().exists(id)
    }

    /// Keeps the lessor's key attachments in step with a committed txn's changes (etcd
    /// attaches/detaches in the store's put and delete).
    fn track_leases(&self, changes: &[retcd_mvcc::Event]) {
        if changes.is_empty() {
            return;
        }
        let mut l = self.leases.lock();
        for ev in changes {
            match ev.kind {
                retcd_mvcc::EventType::Put => l.on_put(&ev.kv.key, ev.kv.lease),
                retcd_mvcc::EventType::Delete => l.on_delete(&ev.kv.key),
            }
        }
    }

    /// Ends a write txn: tracks its lease attachments and queues its events for watchers.
    fn end_txn(&self, txn: TxnWrite<'_, '_>, changed: &mut Vec<(i64, Vec<retcd_mvcc::Event>)>) -> i64 {
        let res = txn.end();
        if !res.changes.is_empty() {
            self.track_leases(&res.changes);
            changed.push((res.rev, res.changes));
        }
        res.rev
    }

    fn apply_request(
        &self,
        batch: &mut Batch<'_>,
        mut req: InternalRaftRequest,
        index: u64,
        jobs: &mut Vec<(CompactionJob, oneshot::Sender<()>)>,
        changed: &mut Vec<(i64, Vec<retcd_mvcc::Event>)>,
        revoked: &mut bool,
    ) -> Result<ApplyResult, io::Error> {
        let who = req
            .header
            .as_ref()
            .map(|h| AuthInfo {
                username: h.username.clone(),
                revision: h.auth_revision,
            })
            .unwrap_or_default();
        if let Some(r) = self.apply_auth(batch, &mut req, &who, index)? {
            return Ok(r.map(Applied::Auth));
        }
        if let Some(a) = req.alarm {
            let (resp, write) = self.alarms.apply(&a);
            if let Some(w) = write {
                crate::alarm::persist(batch, &w).map_err(fatal)?;
            }
            return Ok(Ok(Applied::Alarm(resp)));
        }
        if let Err(e) = self.check_permissions(&req, &who) {
            return Ok(Err(e));
        }
        if let Some(e) = self.refused_by_alarm(&req) {
            return Ok(Err(e));
        }
        if let Some(p) = req.put {
            crate::metrics::get().mvcc_put.inc();
            if p.lease != 0 && !self.lease_exists(p.lease) {
                return Ok(Err(EtcdError::LeaseNotFound));
            }
            // `put` itself answers "key not found" for ignore_value/ignore_lease.
            let mut txn = batch.txn();
            let r = put(&mut txn, &p)?;
            let rev = self.end_txn(txn, changed);
            return Ok(r.map(|mut pr| {
                pr.header = rev_header(rev);
                Applied::Put(pr)
            }));
        }
        if let Some(d) = req.delete_range {
            crate::metrics::get().mvcc_delete.inc();
            let mut txn = batch.txn();
            let r = delete_range(&mut txn, &d)?;
            let rev = self.end_txn(txn, changed);
            return Ok(r.map(|mut dr| {
                dr.header = rev_header(rev);
                Applied::DeleteRange(dr)
            }));
        }
        if let Some(t) = req.txn {
            crate::metrics::get().mvcc_txn.inc();
            let compact_rev = self.store.compact_revision();
            let mut txn = batch.txn();
            let mut path = Vec::new();
            compare_to_path(&txn, &t, &mut path)?;
            if let Err(e) = check_requests(&txn, &t, &path, &mut 0, compact_rev, &|id| self.lease_exists(id))?
            {
                drop(txn.end());
                return Ok(Err(e));
            }
            let mut resp = apply_txn_ops(&mut txn, &t, &path, &mut 0)?;
            resp.header = rev_header(self.end_txn(txn, changed));
            return Ok(Ok(Applied::Txn(resp)));
        }
        if let Some(g) = req.lease_grant {
            let rec = match self.leases.lock().grant(g.id, g.ttl, Instant::now()) {
                Ok(rec) => rec,
                Err(e) => return Ok(Err(lease_error(e))),
            };
            batch.put_lease(rec.id, &rec.encode()).map_err(fatal)?;
            return Ok(Ok(Applied::LeaseGrant(LeaseGrantResponse {
                header: rev_header(batch.current_revision()),
                id: rec.id,
                ttl: rec.ttl,
                error: String::new(),
            })));
        }
        if let Some(r) = req.lease_revoke {
            // etcd's lessor.Revoke: the attached keys, in byte order, deleted in one txn
            // together with the lease record
            let keys = match self.leases.lock().revoke_keys(r.id) {
                Ok(keys) => keys,
                Err(e) => return Ok(Err(lease_error(e))),
            };
            let mut txn = batch.txn();
            for k in &keys {
                txn.delete_range(k, &[]).map_err(fatal)?;
            }
            self.end_txn(txn, changed);
            self.leases.lock().remove(r.id);
            batch.delete_lease(r.id).map_err(fatal)?;
            *revoked = true;
            return Ok(Ok(Applied::LeaseRevoke(LeaseRevokeResponse {
                header: rev_header(batch.current_revision()),
            })));
        }
        if let Some(c) = req.lease_checkpoint {
            let now = Instant::now();
            for cp in c.checkpoints {
                let rec = self.leases.lock().checkpoint(
                    retcd_lease::Checkpoint {
                        id: cp.id,
                        remaining_ttl: cp.remaining_ttl,
                    },
                    now,
                );
                if let Some(rec) = rec {
                    batch.put_lease(rec.id, &rec.encode()).map_err(fatal)?;
                }
            }
            return Ok(Ok(Applied::LeaseCheckpoint));
        }
        if let Some(c) = req.compaction {
            return match batch.compact(c.revision) {
                Ok(job) => {
                    let (done_tx, done_rx) = oneshot::channel();
                    jobs.push((job, done_tx));
                    let rev = batch.current_revision();
                    Ok(Ok(Applied::Compaction(
                        CompactionResponse {
                            header: rev_header(rev),
                        },
                        done_rx,
                    )))
                }
                Err(e) => client_err(e).map(Err),
            };
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "raft entry carries no known request",
        ))
    }
}

impl Backend for Applier {
    fn apply(&mut self, batch: ApplyBatch) -> io::Result<Vec<ApplyReply>> {
        let mut replies = Vec::with_capacity(batch.entries.len());
        let mut jobs = Vec::new();
        let mut changed = Vec::new();
        let mut revoked = false;
        let (last_index, last_term) = batch.entries.last().map(|e| (e.index, e.term)).unwrap_or((0, 0));
        let mut b = self.store.begin_batch().map_err(fatal)?;
        // (request id, result), handed out after the commit
        let mut results = Vec::with_capacity(batch.entries.len());
        for e in batch.entries {
            match e.data {
                None => results.push(None),
                Some(data) => {
                    let req = InternalRaftRequest::decode(data.as_slice()).map_err(|err| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("raft entry {}: {err}", e.index),
                        )
                    })?;
                    let id = req.header.as_ref().map(|h| h.id).unwrap_or(0);
                    let r =
                        self.apply_request(&mut b, req, e.index, &mut jobs, &mut changed, &mut revoked)?;
                    results.push(Some((id, r)));
                }
            }
        }
        b.set_consistent_index(last_index, last_term).map_err(fatal)?;
        b.set_meta(RAFT_APPLIED_META, &batch.applied_state)
            .map_err(fatal)?;
        let durable = self.last_durable.elapsed() >= DURABLE_COMMIT_INTERVAL;
        let committing = Instant::now();
        b.commit(durable).map_err(fatal)?;
        crate::metrics::get()
            .backend_commit
            .observe(committing.elapsed().as_secs_f64());
        if durable {
            self.last_durable = Instant::now();
        }
        // Committed and visible: feed the watchers, revision by revision.
        for (rev, events) in changed {
            self.watchable.notify(rev, events);
        }
        if revoked {
            self.leases.changed.notify_waiters();
        }
        // Committed: answer the proposers waiting on this member; anything else goes back
        // through raft (unused by the server, which always registers).
        for r in results {
            replies.push(match r {
                None => ApplyReply::none(),
                Some((id, result)) => match self.wait.trigger(id, result) {
                    None => ApplyReply::none(),
                    Some(result) => ApplyReply::new(result),
                },
            });
        }
        // Physical deletion starts only once the compaction record is committed.
        for (job, done) in jobs {
            self.compactor.schedule(job, done);
        }
        Ok(replies)
    }

    fn applied_state(&self) -> io::Result<Option<Vec<u8>>> {
        self.store.meta(RAFT_APPLIED_META).map_err(fatal)
    }

    fn sync(&mut self) -> io::Result<()> {
        let b = self.store.begin_batch().map_err(fatal)?;
        b.commit(true).map_err(fatal)?;
        self.last_durable = Instant::now();
        Ok(())
    }

    fn snapshot_source(&self) -> Arc<dyn retcd_raft_node::SnapshotSource> {
        Arc::new(StoreImages(self.store.clone()))
    }

    /// etcd's `applySnapshot`: the backend is replaced by the leader's image, then the
    /// lessor and the watchers are brought to the new state.
    fn install_snapshot(&mut self, image: &std::path::Path) -> io::Result<Option<Vec<u8>>> {
        let f = std::fs::File::open(image)?;
        let resume = self
            .store
            // this member's identity is its own, not the sender's
            .restore_snapshot_keeping(std::io::BufReader::new(f), &["member_id", "cluster_id"])
            .map_err(fatal)?;
        self.last_durable = Instant::now();
        if let Some(job) = resume {
            self.compactor.schedule(job, oneshot::channel().0);
        }
        self.leases.reload(&self.store).map_err(io::Error::other)?;
        self.auth.reload(&self.store).map_err(fatal)?;
        self.alarms.reload(&self.store).map_err(fatal)?;
        self.leases.changed.notify_waiters();
        self.watchable.restored(self.store.current_revision());
        self.store.meta(RAFT_APPLIED_META).map_err(fatal)
    }
}

/// Writes images of the MVCC store for lagging members (no apply lock needed).
struct StoreImages(Store);

impl retcd_raft_node::SnapshotSource for StoreImages {
    fn write_image(&self, out: &mut dyn std::io::Write) -> io::Result<u64> {
        self.0.write_snapshot(out).map_err(fatal)
    }
}
