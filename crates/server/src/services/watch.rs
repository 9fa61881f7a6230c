//! etcdserverpb.Watch: one bidirectional stream carries many watchers (etcd's
//! `serverWatchStream`). A receive loop handles create/cancel/progress requests; every
//! watcher has a bounded channel from the watchable store and a forwarder task that turns its
//! batches into responses on the stream's bounded send queue. A client that does not read
//! only fills its own queues: the store then parks its watchers as victims and writers never
//! wait.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::watch_server::Watch;
use retcd_api::etcdserverpb::{WatchRequest, WatchResponse, watch_create_request};
use retcd_api::mvccpb;
use retcd_mvcc::{EventType, RangeOptions, Store};
use retcd_watch::{WatchBatch, WatchOptions, WatchRange, WatchableStore, WatcherId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::etcdserver::EtcdServer;

/// Responses queued per stream before the forwarders wait for the client.
const STREAM_QUEUE: usize = 128;
/// Batches queued per watcher before it becomes a victim.
const WATCHER_QUEUE: usize = 64;

pub struct WatchService {
    pub s: Arc<EtcdServer>,
    pub w: WatchableStore,
    /// etcd's `--experimental-watch-progress-notify-interval`.
    pub progress_interval: std::time::Duration,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

struct StreamWatcher {
    id: WatcherId,
    forwarder: JoinHandle<()>,
}

/// The previous value of each event's key (for `prev_kv`), read at `mod_revision - 1`.
fn with_prev_kv(store: &Store, events: &mut [mvccpb::Event]) {
    let view = store.read();
    for ev in events {
        let Some(kv) = &ev.kv else { continue };
        let opts = RangeOptions {
            rev: kv.mod_revision - 1,
            ..Default::default()
        };
        if let Ok(rr) = view.range(&kv.key, &[], opts)
            && let Some(prev) = rr.kvs.into_iter().next()
        {
            ev.prev_kv = Some(mvccpb::KeyValue {
                key: prev.key,
                create_revision: prev.create_revision,
                mod_revision: prev.mod_revision,
                version: prev.version,
                value: prev.value,
                lease: prev.lease,
            });
        }
    }
}

fn to_pb(e: retcd_mvcc::Event) -> mvccpb::Event {
    let kind = match e.kind {
        EventType::Put => mvccpb::event::EventType::Put,
        EventType::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(mvccpb::KeyValue {
            key: e.kv.key,
            create_revision: e.kv.create_revision,
            mod_revision: e.kv.mod_revision,
            version: e.kv.version,
            value: e.kv.value,
            lease: e.kv.lease,
        }),
        prev_kv: None,
    }
}

/// Forwards one watcher's batches to the stream until either side goes away.
struct Forwarder {
    s: Arc<EtcdServer>,
    w: WatchableStore,
    wid: WatcherId,
    watch_id: i64,
    prev_kv: bool,
    /// Send an empty response with the current revision when the watcher was idle this long.
    progress: Option<std::time::Duration>,
}

fn spawn_forwarder(
    f: Forwarder,
    mut rx: mpsc::Receiver<WatchBatch>,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
) -> JoinHandle<()> {
    let Forwarder {
        s,
        w,
        wid,
        watch_id,
        prev_kv,
        progress,
    } = f;
    tokio::spawn(async move {
        let period = progress.unwrap_or(std::time::Duration::from_secs(3600));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut sent_since_tick = false;
        loop {
            let batch = tokio::select! {
                b = rx.recv() => match b {
                    Some(b) => b,
                    None => return,
                },
                _ = ticker.tick(), if progress.is_some() => {
                    // Only a synced watcher with nothing queued may claim a revision.
                    if !std::mem::take(&mut sent_since_tick)
                        && let Some(rev) = w.progress_revision(wid)
                        && rx.is_empty()
                    {
                        let resp = WatchResponse { header: s.header(rev), watch_id, ..Default::default() };
                        if out.send(Ok(resp)).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
            };
            sent_since_tick = true;
            let mut events: Vec<mvccpb::Event> = batch.events.into_iter().map(to_pb).collect();
            if prev_kv && !events.is_empty() {
                let store = s.store.clone();
                events = match tokio::task::spawn_blocking(move || {
                    with_prev_kv(&store, &mut events);
                    events
                })
                .await
                {
                    Ok(ev) => ev,
                    Err(_) => return,
                };
            }
            let compacted = batch.compact_revision != 0;
            let mut header = s.header(batch.revision);
            if compacted && let Some(h) = header.as_mut() {
                // etcd's compaction cancel carries no revision.
                h.revision = 0;
            }
            let resp = WatchResponse {
                header,
                watch_id,
                compact_revision: batch.compact_revision,
                canceled: compacted,
                events,
                ..Default::default()
            };
            if out.send(Ok(resp)).await.is_err() || compacted {
                return;
            }
        }
    })
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let mut inbound = request.into_inner();
        let (out_tx, out_rx) = mpsc::channel::<Result<WatchResponse, Status>>(STREAM_QUEUE);
        let s = self.s.clone();
        let w = self.w.clone();
        let progress_interval = self.progress_interval;
        tokio::spawn(async move {
            let mut watchers: HashMap<i64, StreamWatcher> = HashMap::new();
            let mut next_watch_id: i64 = 0;
            while let Some(msg) = inbound.next().await {
                let Ok(req) = msg else { break };
                match req.request_union {
                    Some(RequestUnion::CreateRequest(c)) => {
                        let key: &[u8] = if c.key.is_empty() { &[0] } else { &c.key };
                        if !c.range_end.is_empty() && c.range_end != [0] && key >= c.range_end.as_slice() {
                            let resp = WatchResponse {
                                header: s.header(0),
                                watch_id: -1,
                                created: true,
                                canceled: true,
                                cancel_reason: "mvcc: watcher range is empty".into(),
                                ..Default::default()
                            };
                            if out_tx.send(Ok(resp)).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        // etcd: watch id 0 asks the server to pick the next free one.
                        let id = if c.watch_id != 0 {
                            c.watch_id
                        } else {
                            while watchers.contains_key(&next_watch_id) {
                                next_watch_id += 1;
                            }
                            next_watch_id += 1;
                            next_watch_id - 1
                        };
                        if watchers.contains_key(&id) {
                            let resp = WatchResponse {
                                header: s.header(0),
                                watch_id: id,
                                created: true,
                                canceled: true,
                                cancel_reason: "mvcc: duplicate watch ID provided on the WatchStream".into(),
                                ..Default::default()
                            };
                            if out_tx.send(Ok(resp)).await.is_err() {
                                break;
                            }
                            continue;
                        }
                        let opts = WatchOptions {
                            range: WatchRange::from_request(&c.key, &c.range_end),
                            no_put: c
                                .filters
                                .contains(&(watch_create_request::FilterType::Noput as i32)),
                            no_delete: c
                                .filters
                                .contains(&(watch_create_request::FilterType::Nodelete as i32)),
                        };
                        let (btx, brx) = mpsc::channel(WATCHER_QUEUE);
                        // Register first so no revision after `rev` is missed, but send
                        // `created` before the forwarder can send any event.
                        let (wid, rev) = w.watch(opts, c.start_revision, btx);
                        let created = WatchResponse {
                            header: s.header(rev),
                            watch_id: id,
                            created: true,
                            ..Default::default()
                        };
                        if out_tx.send(Ok(created)).await.is_err() {
                            w.cancel(wid);
                            break;
                        }
                        let f = Forwarder {
                            s: s.clone(),
                            w: w.clone(),
                            wid,
                            watch_id: id,
                            prev_kv: c.prev_kv,
                            progress: c.progress_notify.then_some(progress_interval),
                        };
                        let forwarder = spawn_forwarder(f, brx, out_tx.clone());
                        watchers.insert(id, StreamWatcher { id: wid, forwarder });
                    }
                    Some(RequestUnion::CancelRequest(c)) => {
                        if let Some(sw) = watchers.remove(&c.watch_id) {
                            w.cancel(sw.id);
                            sw.forwarder.abort();
                            let resp = WatchResponse {
                                header: s.header(0),
                                watch_id: c.watch_id,
                                canceled: true,
                                ..Default::default()
                            };
                            if out_tx.send(Ok(resp)).await.is_err() {
                                break;
                            }
                        }
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        // Not tied to a watcher: every watcher on the stream may take it.
                        let resp = WatchResponse {
                            header: s.header(w.notified_revision()),
                            watch_id: -1,
                            ..Default::default()
                        };
                        if out_tx.send(Ok(resp)).await.is_err() {
                            break;
                        }
                    }
                    None => {}
                }
            }
            for (_, sw) in watchers {
                w.cancel(sw.id);
                sw.forwarder.abort();
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}
