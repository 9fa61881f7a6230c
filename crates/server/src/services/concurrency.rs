//! The recipes behind the Lock and Election services, as etcd's `clientv3/concurrency`
//! runs them inside etcd's v3lock and v3election servers: a waiter puts
//! `<name>/<lease hex>` with its lease and the waiter with the lowest create revision
//! holds the lock / is the leader; the others watch the key just ahead of them until it is
//! deleted. Here they run against the server's own KV and watchable store.

use std::sync::Arc;

use retcd_api::EtcdError;
use retcd_api::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, RangeRequest, RangeResponse, RequestOp, ResponseHeader,
    TxnRequest, TxnResponse, compare, range_request, request_op, response_op,
};
use retcd_api::mvccpb;
use retcd_watch::{Delivery, StreamSink, WatchOptions, WatchRange, WatchableStore};
use tonic::Status;

use crate::etcdserver::EtcdServer;

/// etcd's `concurrency.defaultSessionTTL`: the lease a recipe grants when the request
/// names none.
pub const DEFAULT_SESSION_TTL: i64 = 60;

/// What the recipes need: the server and its watchable store.
#[derive(Clone)]
pub struct Recipes {
    pub s: Arc<EtcdServer>,
    pub w: WatchableStore,
}

/// etcd's `GetPrefixRangeEnd`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    // every byte was 0xff: to the end of the keyspace
    vec![0]
}

/// `<prefix><lease in hex>` as Go's `fmt.Sprintf("%s%x", prefix, lease)` writes it.
pub fn lease_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut k = prefix.to_vec();
    k.extend_from_slice(hex.as_bytes());
    k
}

/// The key of `prefix` with the lowest (`ascend`) or highest create revision.
fn by_create(prefix: &[u8], ascend: bool, max_create_revision: i64) -> RangeRequest {
    use range_request::{SortOrder, SortTarget};
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: if ascend {
            SortOrder::Ascend
        } else {
            SortOrder::Descend
        } as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision,
        ..Default::default()
    }
}

/// etcd's `WithFirstCreate` on `prefix`: the current owner / leader.
pub fn first_create(prefix: &[u8]) -> RangeRequest {
    by_create(prefix, true, 0)
}

pub fn op_range(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

pub fn op_get(key: &[u8]) -> RequestOp {
    op_range(RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    })
}

pub fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
    }
}

/// The key-values of the `i`th response of a txn (empty if it is not a range).
pub fn range_kvs(resp: &TxnResponse, i: usize) -> &[mvccpb::KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(RangeResponse { kvs, .. })) => kvs,
        _ => &[],
    }
}

/// etcd runs these recipes through its Go client, which turns a gRPC status into a plain
/// Go error; handed back by the v3lock/v3election servers, it reaches the caller with code
/// Unknown and the original message. Same here.
pub fn as_client_error(st: Status) -> Status {
    Status::new(tonic::Code::Unknown, st.message())
}

impl Recipes {
    /// etcd's `NewSession(WithLease(lease))` for a server-side recipe: lease 0 grants a
    /// new lease with the default session TTL (which nobody keeps alive).
    pub async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let resp = self
            .s
            .lease_grant(LeaseGrantRequest {
                ttl: DEFAULT_SESSION_TTL,
                id: 0,
            })
            .await?;
        Ok(resp.id)
    }

    pub async fn txn(
        &self,
        compare: Vec<Compare>,
        success: Vec<RequestOp>,
        failure: Vec<RequestOp>,
    ) -> Result<TxnResponse, Status> {
        self.s
            .txn(TxnRequest {
                compare,
                success,
                failure,
            })
            .await
    }

    pub async fn delete(&self, key: &[u8]) -> Result<Option<ResponseHeader>, Status> {
        let resp = self
            .s
            .delete_range(DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })
            .await?;
        Ok(resp.header)
    }

    /// etcd's `waitDeletes`: waits until no key of `prefix` with a create revision up to
    /// `max_create_rev` is left, watching the newest of them each time.
    pub async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_rev: i64,
    ) -> Result<Option<ResponseHeader>, Status> {
        loop {
            let resp = self.s.range(by_create(prefix, false, max_create_rev)).await?;
            let Some(kv) = resp.kvs.first() else {
                return Ok(resp.header);
            };
            let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
            self.wait_delete(&kv.key, rev).await?;
        }
    }

    /// Waits for a delete of `key` at or after revision `rev`.
    async fn wait_delete(&self, key: &[u8], rev: i64) -> Result<(), Status> {
        let mut events = self.watch(key, None, rev, true);
        loop {
            let batch = events.recv().await;
            if batch.compact_revision != 0 {
                return Err(EtcdError::Compacted.into());
            }
            if batch
                .events
                .iter()
                .any(|e| e.kind == retcd_mvcc::EventType::Delete)
            {
                return Ok(());
            }
        }
    }

    /// A watcher on `key` (or the range to `end`) from revision `rev`, canceled when the
    /// returned handle is dropped.
    pub fn watch(&self, key: &[u8], end: Option<&[u8]>, rev: i64, only_deletes: bool) -> WatchHandle {
        let sink = StreamSink::new(RECIPE_WATCH_EVENTS);
        let range = WatchRange::from_request(key, end.unwrap_or(&[]));
        let (id, _) = self.w.watch(
            WatchOptions {
                range,
                no_put: only_deletes,
                no_delete: false,
            },
            rev,
            &sink,
        );
        WatchHandle {
            w: self.w.clone(),
            id,
            sink,
            queued: Default::default(),
        }
    }
}

/// Events queued for a recipe's watcher before it becomes a victim.
const RECIPE_WATCH_EVENTS: usize = 256;

/// A recipe's watcher; canceled on drop.
pub struct WatchHandle {
    w: WatchableStore,
    id: retcd_watch::WatcherId,
    sink: StreamSink,
    queued: std::collections::VecDeque<retcd_watch::WatchBatch>,
}

impl WatchHandle {
    /// The watcher's next batch of events (or its compaction notice).
    pub async fn recv(&mut self) -> retcd_watch::WatchBatch {
        loop {
            if let Some(b) = self.queued.pop_front() {
                return b;
            }
            self.sink.ready().await;
            for d in self.sink.drain(usize::MAX) {
                if let Delivery::Batch(_, b) = d {
                    self.queued.push_back(b);
                }
            }
        }
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.w.cancel(self.id);
    }
}

/// Deletes a waiter's key if the request is dropped (the client went away) before the
/// recipe finished, as etcd's Mutex.Lock / Election.Campaign clean up on cancel.
pub struct DeleteOnDrop {
    pub r: Recipes,
    pub key: Option<Vec<u8>>,
}

impl DeleteOnDrop {
    pub fn disarm(mut self) {
        self.key = None;
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let r = self.r.clone();
            // as the client whose request was dropped
            tokio::spawn(crate::auth::scoped(crate::auth::current(), async move {
                if let Err(e) = r.delete(&key).await {
                    tracing::warn!(key = %String::from_utf8_lossy(&key), error = %e.message(), "could not remove an abandoned waiter's key");
                }
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn lease_keys_as_go_formats_them() {
        assert_eq!(
            lease_key(b"lock/", 0x694d_7d1a_1e3b_5a0b),
            b"lock/694d7d1a1e3b5a0b"
        );
        assert_eq!(lease_key(b"e/", 10), b"e/a");
        assert_eq!(lease_key(b"e/", -26), b"e/-1a");
    }
}
