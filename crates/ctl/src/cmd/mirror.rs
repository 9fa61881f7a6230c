//! `make-mirror`: etcdctl 3.4's mirror (clientv3's `mirror.Syncer` and etcdctl's
//! `makeMirror`). The keys under `--prefix` are read at one revision in pages of 1000 and put
//! one by one into the destination; then a watch from the next revision replays every put
//! and delete, each source revision as one destination txn. The running total of keys synced
//! is printed every 30 s (as etcdctl does); the command runs until it is killed.
//!
//! Beyond etcdctl, when stderr is a terminal a status line shows the count and the revision
//! reached, and Ctrl-C/SIGTERM clear it and say how far the mirror got. A revision with more
//! operations than the destination accepts in one txn is applied in chunks (etcdctl fails).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use retcd_api::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest,
    request_op, watch_request,
};
use retcd_api::mvccpb::event::EventType;
use tonic::{Code, Status};

use super::{Ctx, prefix_end};
use crate::cli::MirrorArgs;
use crate::client::{Client, Settings, TlsSettings};
use crate::error::CtlError;

/// clientv3 mirror's page size.
const BATCH_LIMIT: i64 = 1000;
/// etcd's default `--max-txn-ops`: the chunk size when a revision's txn is refused as too big.
const TXN_CHUNK: usize = 128;
const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";

/// How far the mirror is, shared by the copier and the printer.
#[derive(Default)]
struct State {
    total: AtomicU64,
    /// the base revision while copying, then the last source revision applied
    rev: AtomicI64,
    following: std::sync::atomic::AtomicBool,
    /// 1 while the destination does not answer, 2 while the source does not
    waiting: std::sync::atomic::AtomicU8,
}

/// `strings.Replace(key, prefix, dest_prefix, 1)`, as etcdctl rewrites keys.
pub fn rewrite(key: &[u8], prefix: &[u8], dest: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        return [dest, key].concat();
    }
    match key.windows(prefix.len()).position(|w| w == prefix) {
        Some(i) => [&key[..i], dest, &key[i + prefix.len()..]].concat(),
        None => key.to_vec(),
    }
}

/// Runs an idempotent call (a read, or a mirror write: applying it twice leaves the same
/// keys and values), retrying while the server is unavailable, as clientv3 keeps retrying
/// without a deadline.
async fn retry_unavailable<T, F, Fut>(mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    loop {
        match call().await {
            Ok(r) => return Ok(r.into_inner()),
            Err(s) if s.code() == Code::Unavailable => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(s) => return Err(s),
        }
    }
}

/// [`retry_unavailable`], logging a failure as clientv3 does.
async fn retrying<T, F, Fut>(client: &Client, call: F) -> Result<T, CtlError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, Status>>,
{
    retry_unavailable(call).await.map_err(|s| {
        client.warn_failed(&s);
        CtlError::Rpc(s)
    })
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

fn delete_op(key: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(DeleteRangeRequest {
            key,
            ..Default::default()
        })),
    }
}

/// Applies one source revision's operations to the destination in one txn (in chunks if the
/// destination refuses that many operations at once).
async fn apply(dest: &Client, ops: Vec<RequestOp>) -> Result<(), CtlError> {
    let txn = |success: Vec<RequestOp>| {
        let mut kv = dest.kv();
        async move {
            kv.txn(TxnRequest {
                success,
                ..Default::default()
            })
            .await
        }
    };
    match retry_unavailable(|| txn(ops.clone())).await {
        Ok(_) => Ok(()),
        Err(s) if s.message() == TOO_MANY_OPS && ops.len() > TXN_CHUNK => {
            for chunk in ops.chunks(TXN_CHUNK) {
                retrying(dest, || txn(chunk.to_vec())).await?;
            }
            Ok(())
        }
        Err(s) => {
            dest.warn_failed(&s);
            Err(CtlError::Rpc(s))
        }
    }
}

/// The destination's connection settings: the `--dest-*` TLS flags, the global timeouts, no
/// authentication (as etcdctl).
fn dest_settings(ctx: &Ctx, a: &MirrorArgs, dest: &str) -> Settings {
    let file = |s: &String| Some(s.clone()).filter(|s| !s.is_empty());
    Settings {
        endpoints: vec![dest.to_string()],
        raw_endpoints: vec![dest.to_string()],
        user: None,
        password: None,
        tls: TlsSettings {
            cacert: file(&a.dest_cacert),
            cert: file(&a.dest_cert),
            key: file(&a.dest_key),
            insecure_transport: a.dest_insecure_transport,
            insecure_skip_verify: false,
            server_name: None,
        },
        // the source's client is the one etcdctl checks the global flags for, and the one
        // discovery applies to
        deferred: None,
        env: Default::default(),
        discovery: None,
        discovered: Default::default(),
        ..ctx.settings.clone()
    }
}

/// Prints the total every 30 s on stdout (etcdctl's only output); on a terminal also keeps a
/// status line on stderr up to date.
fn spawn_printer(state: Arc<State>, tty: bool) {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let mut next_total = start + Duration::from_secs(30);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let now = tokio::time::Instant::now();
            if now >= next_total {
                next_total += Duration::from_secs(30);
                if tty {
                    eprint!("\r\x1b[K");
                }
                println!("{}", state.total.load(Ordering::Relaxed));
                let _ = std::io::stdout().flush();
            }
            if tty {
                eprint!("\r\x1b[K{}", status_line(&state));
                let _ = std::io::stderr().flush();
            }
        }
    });
}

fn status_line(state: &State) -> String {
    let (n, rev) = (
        state.total.load(Ordering::Relaxed),
        state.rev.load(Ordering::Relaxed),
    );
    if rev == 0 {
        match state.waiting.load(Ordering::Relaxed) {
            1 => "make-mirror: waiting for the destination cluster to answer...",
            2 => "make-mirror: waiting for the source cluster to answer...",
            _ => "make-mirror: connecting...",
        }
        .to_string()
    } else if state.following.load(Ordering::Relaxed) {
        format!("make-mirror: {n} keys synced; following changes, at revision {rev} (Ctrl-C to stop)")
    } else {
        format!("make-mirror: {n} keys synced; copying the keys at revision {rev}")
    }
}

/// On a terminal: Ctrl-C or SIGTERM ends the mirror with a last word instead of a half line.
fn spawn_signal_handler(state: Arc<State>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            return;
        };
        let sig = tokio::select! {
            _ = int.recv() => 2,
            _ = term.recv() => 15,
        };
        eprintln!(
            "\r\x1b[Kmake-mirror: stopped after {} keys synced (source revision {})",
            state.total.load(Ordering::Relaxed),
            state.rev.load(Ordering::Relaxed)
        );
        std::process::exit(128 + sig);
    });
}

/// `make-mirror [flags] DESTINATION`.
pub async fn make_mirror(ctx: &Ctx, a: &MirrorArgs) -> Result<(), CtlError> {
    let [dest] = a.args.as_slice() else {
        return Err(CtlError::BadArgs(
            "make-mirror takes one destination argument".into(),
        ));
    };
    let prefix = a.prefix.as_bytes().to_vec();
    let tty = std::io::stderr().is_terminal();
    let state = Arc::new(State::default());
    spawn_printer(state.clone(), tty);
    if tty {
        spawn_signal_handler(state.clone());
    }
    let waiting = |what: u8| {
        let state = state.clone();
        move || state.waiting.store(what, Ordering::Relaxed)
    };
    // As etcdctl: the destination's TLS files are checked first, then the source is read
    // (waiting while it does not answer), then the prefix flags, and only then does the
    // mirror wait for the destination.
    let dest_settings = dest_settings(ctx, a, dest);
    Client::check(&dest_settings)?;
    let src = Client::connect_patiently(&ctx.settings, waiting(2)).await?;

    // SyncBase: the revision to copy at, from a read of "foo" as clientv3's syncer does
    let probe = retrying(&src, || {
        let mut kv = src.kv();
        async move {
            kv.range(RangeRequest {
                key: b"foo".to_vec(),
                ..Default::default()
            })
            .await
        }
    })
    .await;
    // checked even when that read failed, as etcdctl does
    if a.no_dest_prefix && !a.dest_prefix.is_empty() {
        return Err(CtlError::BadArgs(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one".into(),
        ));
    }
    let rev = probe?.header.map_or(0, |h| h.revision);
    let dest_prefix = if a.no_dest_prefix {
        Vec::new()
    } else if a.dest_prefix.is_empty() {
        prefix.clone()
    } else {
        a.dest_prefix.as_bytes().to_vec()
    };
    let dest_client = Client::connect_patiently(&dest_settings, waiting(1)).await?;
    state.rev.store(rev, Ordering::Relaxed);
    let (mut key, range_end) = if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.clone(), prefix_end(&prefix))
    };
    loop {
        let req = RangeRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            limit: BATCH_LIMIT,
            revision: rev,
            ..Default::default()
        };
        let page = retrying(&src, || {
            let mut kv = src.kv();
            let req = req.clone();
            async move { kv.range(req).await }
        })
        .await?;
        for kv in &page.kvs {
            let req = PutRequest {
                key: rewrite(&kv.key, &prefix, &dest_prefix),
                value: kv.value.clone(),
                ..Default::default()
            };
            retrying(&dest_client, || {
                let mut dkv = dest_client.kv();
                let req = req.clone();
                async move { dkv.put(req).await }
            })
            .await?;
            state.total.fetch_add(1, Ordering::Relaxed);
        }
        match page.kvs.last() {
            Some(last) if page.more => key = [last.key.as_slice(), &[0]].concat(),
            _ => break,
        }
    }

    // SyncUpdates: every change after that revision, one destination txn per source revision
    state.following.store(true, Ordering::Relaxed);
    let (watch_key, watch_end) = if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.clone(), prefix_end(&prefix))
    };
    let mut next = rev + 1;
    loop {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(WatchCreateRequest {
                key: watch_key.clone(),
                range_end: watch_end.clone(),
                start_revision: next,
                ..Default::default()
            })),
        };
        let _ = tx.send(create).await;
        let mut stream = match src
            .watch()
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        {
            Ok(s) => s.into_inner(),
            Err(s) if s.code() == Code::Unavailable => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(s) => return Err(CtlError::Rpc(s)),
        };
        // the stream ends or fails when the source goes away: watch again from `next`
        while let Some(Ok(r)) = stream.next().await {
            if r.compact_revision != 0 {
                return Err(CtlError::Rpc(Status::out_of_range(
                    "etcdserver: mvcc: required revision has been compacted",
                )));
            }
            if r.canceled {
                return Err(CtlError::Other(if r.cancel_reason.is_empty() {
                    "watch canceled by the server".to_string()
                } else {
                    r.cancel_reason.clone()
                }));
            }
            let mut ops = Vec::new();
            let mut last_rev = 0;
            for ev in &r.events {
                let kv = ev.kv.clone().unwrap_or_default();
                if last_rev != 0 && kv.mod_revision > last_rev {
                    apply(&dest_client, std::mem::take(&mut ops)).await?;
                    state.rev.store(last_rev, Ordering::Relaxed);
                }
                last_rev = kv.mod_revision;
                let key = rewrite(&kv.key, &prefix, &dest_prefix);
                ops.push(if ev.r#type == EventType::Delete as i32 {
                    delete_op(key)
                } else {
                    put_op(key, kv.value)
                });
                state.total.fetch_add(1, Ordering::Relaxed);
            }
            if !ops.is_empty() {
                apply(&dest_client, ops).await?;
                state.rev.store(last_rev, Ordering::Relaxed);
            }
            if last_rev != 0 {
                next = last_rev + 1;
            }
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn keys_rewritten_as_strings_replace() {
        assert_eq!(rewrite(b"/a/k", b"/a/", b"/b/"), b"/b/k");
        assert_eq!(rewrite(b"/a/k", b"/a/", b""), b"k");
        assert_eq!(rewrite(b"k", b"", b"x/"), b"x/k");
        assert_eq!(rewrite(b"k", b"", b""), b"k");
        // the first occurrence, as Go's strings.Replace(k, prefix, dest, 1)
        assert_eq!(rewrite(b"pp", b"p", b"q"), b"qp");
    }
}
