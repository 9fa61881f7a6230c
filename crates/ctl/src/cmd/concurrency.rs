//! `lock` and `elect`, done on the client over KV, Lease and Watch as etcdctl does (the
//! clientv3 concurrency recipes): a session lease (kept alive every TTL/3) owns the key
//! `NAME/<lease id in hex>`, created only if absent; the holder is the key with the lowest
//! create revision under `NAME/`, and a waiter watches for the deletion of each key
//! created before its own.

use futures::StreamExt;
use retcd_api::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, RangeResponse, RequestOp, ResponseHeader, TxnRequest, WatchCreateRequest, WatchRequest,
    WatchResponse, compare, range_request::SortOrder, range_request::SortTarget, request_op, response_op,
    watch_request,
};
use retcd_api::mvccpb::KeyValue;
use retcd_api::mvccpb::event::EventType;
use tonic::Streaming;

use super::{Ctx, kv::print_get, prefix_end};
use crate::client::Client;
use crate::error::{CtlError, status_message};

/// A session: a lease kept alive in the background until dropped.
struct Session {
    lease: i64,
    keepalive: tokio::task::JoinHandle<()>,
}

impl Session {
    async fn new(client: &Client, ttl: i64) -> Result<Session, CtlError> {
        let lease = client
            .call(client.lease().lease_grant(LeaseGrantRequest { ttl, id: 0 }))
            .await?
            .id;
        let mut leases = client.lease();
        let keepalive = tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let Ok(resp) = leases
                .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await
            else {
                return;
            };
            let mut stream = resp.into_inner();
            let period = std::time::Duration::from_millis((ttl.max(3) as u64) * 1000 / 3);
            loop {
                if tx.send(LeaseKeepAliveRequest { id: lease }).await.is_err() {
                    return;
                }
                match stream.next().await {
                    Some(Ok(r)) if r.ttl > 0 => tokio::time::sleep(period).await,
                    _ => return,
                }
            }
        });
        Ok(Session { lease, keepalive })
    }

    /// Whether the keep-alive loop ended (the lease expired or the server went away).
    async fn done(&mut self) {
        let _ = (&mut self.keepalive).await;
    }

    async fn close(self, client: &Client) {
        self.keepalive.abort();
        let _ = client
            .call(client.lease().lease_revoke(LeaseRevokeRequest { id: self.lease }))
            .await;
    }
}

/// Completes on SIGINT or SIGTERM.
async fn interrupted() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

fn range_op(r: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(r)),
    }
}

/// The oldest (`Ascend`) or newest (`Descend`) key under `pfx` by create revision.
fn first_created(pfx: &[u8], order: SortOrder, max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: pfx.to_vec(),
        range_end: prefix_end(pfx),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision,
        ..Default::default()
    }
}

fn range_of(op: Option<&retcd_api::etcdserverpb::ResponseOp>) -> RangeResponse {
    match op.and_then(|o| o.response.clone()) {
        Some(response_op::Response::ResponseRange(r)) => r,
        _ => RangeResponse::default(),
    }
}

/// Opens a watch on `key` (with `range_end`) from `rev`.
async fn watch_from(
    client: &Client,
    key: &[u8],
    range_end: Vec<u8>,
    rev: i64,
) -> Result<(Streaming<WatchResponse>, tokio::sync::mpsc::Sender<WatchRequest>), CtlError> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let create = WatchCreateRequest {
        key: key.to_vec(),
        range_end,
        start_revision: rev,
        ..Default::default()
    };
    let _ = tx
        .send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        })
        .await;
    let stream = client
        .watch()
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| CtlError::Other(status_message(&s)))?
        .into_inner();
    Ok((stream, tx))
}

/// Waits until every key under `pfx` created at or before `max_rev` is gone.
async fn wait_deletes(client: &Client, pfx: &[u8], max_rev: i64) -> Result<(), CtlError> {
    loop {
        let req = first_created(pfx, SortOrder::Descend, max_rev);
        let resp = client.call(client.kv().range(req)).await?;
        let Some(last) = resp.kvs.first() else {
            return Ok(());
        };
        let rev = resp.header.map_or(0, |h| h.revision);
        let (mut stream, _tx) = watch_from(client, &last.key, Vec::new(), rev).await?;
        'watch: while let Some(r) = stream.next().await {
            let r = r.map_err(|s| CtlError::Other(status_message(&s)))?;
            if r.events.iter().any(|e| e.r#type == EventType::Delete as i32) {
                break 'watch;
            }
        }
    }
}

/// Creates `NAME/<lease>` with `value` unless it exists and waits to be the oldest key.
/// Returns the key and the header of the creating transaction.
async fn acquire(
    client: &Client,
    s: &Session,
    name: &str,
    value: &[u8],
) -> Result<(Vec<u8>, ResponseHeader), CtlError> {
    let pfx = format!("{name}/").into_bytes();
    let key = format!("{name}/{:x}", s.lease).into_bytes();
    let cmp = Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.clone(),
        range_end: Vec::new(),
        target_union: Some(compare::TargetUnion::CreateRevision(0)),
    };
    let put = PutRequest {
        key: key.clone(),
        value: value.to_vec(),
        lease: s.lease,
        ..Default::default()
    };
    let owner = range_op(first_created(&pfx, SortOrder::Ascend, 0));
    let txn = TxnRequest {
        compare: vec![cmp],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put.clone())),
            },
            owner.clone(),
        ],
        failure: vec![
            range_op(RangeRequest {
                key: key.clone(),
                ..Default::default()
            }),
            owner,
        ],
    };
    let resp = client.call(client.kv().txn(txn)).await?;
    let header = resp.header.unwrap_or_default();
    let mut my_rev = header.revision;
    if !resp.succeeded {
        let mine: Option<KeyValue> = range_of(resp.responses.first()).kvs.into_iter().next();
        if let Some(kv) = mine {
            my_rev = kv.create_revision;
            if kv.value != value {
                client.call(client.kv().put(put)).await?;
            }
        }
    }
    let owner = range_of(resp.responses.get(1));
    if owner.kvs.first().is_some_and(|kv| kv.create_revision != my_rev) {
        wait_deletes(client, &pfx, my_rev - 1).await?;
    }
    Ok((key, header))
}

/// Releases a lock or leadership: deletes the key.
async fn resign(client: &Client, key: Vec<u8>) -> Result<(), CtlError> {
    client
        .call(client.kv().delete_range(DeleteRangeRequest {
            key,
            ..Default::default()
        }))
        .await
        .map(|_| ())
}

/// `lock NAME [-- COMMAND ARGS...]` (also `lock NAME COMMAND ARGS...`).
pub async fn lock(ctx: &Ctx, args: &[String], ttl: i64, exec: &[String]) -> Result<(), CtlError> {
    let Some(name) = args.first() else {
        return Err(CtlError::BadArgs(
            "lock takes a lock name argument and an optional command to execute".into(),
        ));
    };
    let command: Vec<String> = args[1..].iter().chain(exec).cloned().collect();
    let client = ctx.client().await?;
    let session = Session::new(&client, ttl).await?;
    let (key, header) = tokio::select! {
        r = acquire(&client, &session, name, b"") => r?,
        _ = interrupted() => {
            session.close(&client).await;
            return Err(CtlError::Other("context canceled".into()));
        }
    };
    if !command.is_empty() {
        let env = [
            ("ETCD_LOCK_KEY", String::from_utf8_lossy(&key).into_owned()),
            ("ETCD_LOCK_REV", header.revision.to_string()),
        ];
        let run = move || {
            std::process::Command::new(&command[0])
                .args(&command[1..])
                .envs(env)
                .status()
        };
        let status = tokio::task::spawn_blocking(run)
            .await
            .map_err(|e| CtlError::Other(e.to_string()))?;
        resign(&client, key).await?;
        session.close(&client).await;
        return match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(CtlError::Other(format!("exit status {}", s.code().unwrap_or(-1)))),
            Err(e) => Err(CtlError::Other(e.to_string())),
        };
    }
    hold(ctx, &client, session, key, "session expired").await
}

/// Prints the held key (as `get` would) and keeps it until SIGINT/SIGTERM, then deletes it
/// and revokes the session; fails with `expired` if the session ends first.
async fn hold(
    ctx: &Ctx,
    client: &Client,
    mut session: Session,
    key: Vec<u8>,
    expired: &str,
) -> Result<(), CtlError> {
    let held = client
        .call(client.kv().range(RangeRequest {
            key: key.clone(),
            ..Default::default()
        }))
        .await?;
    if held.kvs.is_empty() {
        return Err(CtlError::Other("lock lost on init".into()));
    }
    ctx.out.show(&held, || print_get(&ctx.out, &held, false))?;
    tokio::select! {
        _ = interrupted() => {
            resign(client, key).await?;
            session.close(client).await;
            Ok(())
        }
        _ = session.done() => Err(CtlError::Other(expired.into())),
    }
}

/// `elect NAME PROPOSAL` (campaign, print the leader key, resign on a signal) and
/// `elect -l NAME` (print every leader change).
pub async fn elect(ctx: &Ctx, args: &[String], listen: bool) -> Result<(), CtlError> {
    if args.len() != 1 && args.len() != 2 {
        return Err(CtlError::BadArgs(
            "elect takes one election name argument and an optional proposal argument".into(),
        ));
    }
    // etcdctl makes its client (checking the global flags) before it looks at -l
    ctx.settings.check_deferred()?;
    if listen && args.len() != 1 {
        return Err(CtlError::BadArgs("proposal given but -l is set".into()));
    }
    if !listen && args.len() != 2 {
        return Err(CtlError::BadArgs("no proposal argument but -l not set".into()));
    }
    let client = ctx.client().await?;
    if listen {
        return tokio::select! {
            r = observe(ctx, &client, &args[0]) => r,
            _ = interrupted() => Ok(()),
        };
    }
    let session = Session::new(&client, 60).await?;
    let (key, _) = tokio::select! {
        r = acquire(&client, &session, &args[0], args[1].as_bytes()) => r?,
        _ = interrupted() => {
            session.close(&client).await;
            return Err(CtlError::Other("context canceled".into()));
        }
    };
    hold(ctx, &client, session, key, "elect: session expired").await
}

/// Prints the current leader of `name` and each change (clientv3's `Election.Observe`).
async fn observe(ctx: &Ctx, client: &Client, name: &str) -> Result<(), CtlError> {
    let pfx = format!("{name}/").into_bytes();
    let show = |header: Option<ResponseHeader>, kv: KeyValue| {
        let r = RangeResponse {
            header,
            kvs: vec![kv],
            ..Default::default()
        };
        ctx.out.show(&r, || print_get(&ctx.out, &r, false))
    };
    let lost = || CtlError::Other("elect: observer lost".into());
    loop {
        let resp = client
            .call(client.kv().range(first_created(&pfx, SortOrder::Ascend, 0)))
            .await?;
        let mut header = resp.header.unwrap_or_default();
        let leader = match resp.kvs.into_iter().next() {
            Some(kv) => kv,
            None => {
                let (mut stream, _tx) = watch_from(client, &pfx, prefix_end(&pfx), header.revision).await?;
                loop {
                    let r = stream.next().await.ok_or_else(lost)?.map_err(|_| lost())?;
                    let put = r.events.into_iter().find(|e| e.r#type == EventType::Put as i32);
                    if let Some(kv) = put.and_then(|e| e.kv) {
                        header = r.header.unwrap_or_default();
                        header.revision = kv.mod_revision;
                        break kv;
                    }
                }
            }
        };
        show(Some(header), leader.clone())?;
        let (mut stream, _tx) = watch_from(client, &leader.key, Vec::new(), header.revision + 1).await?;
        'leader: loop {
            let r = stream.next().await.ok_or_else(lost)?.map_err(|_| lost())?;
            for e in r.events {
                if e.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                show(r.header, e.kv.unwrap_or_default())?;
            }
        }
    }
}
