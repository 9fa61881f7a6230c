//! etcdserverpb.Watch: one bidirectional stream carries many watchers (etcd's
//! `serverWatchStream`). A receive loop handles create/cancel/progress requests; the
//! stream's watchers all deliver into one bounded stream queue ([`StreamSink`]) that a
//! single send loop turns into responses on the bounded send queue — two tasks per stream,
//! however many watchers it has. A client that does not read only fills its own queues:
//! the store then parks its watchers as victims and writers never wait.
//!
//! Two etcd behaviours at the point where responses leave the stream:
//! - `fragment`: a watcher that asked for it gets responses of at least etcd's send limit
//!   (`--max-request-bytes` + gRPC overhead) split into several (etcd's `sendFragments`);
//!   the pieces of one response are queued as one item, so they reach the client
//!   back to back, never interleaved with another watcher's responses.
//! - `hasleader: true` metadata (etcd's `WithRequireLeader`): refused without a leader, and
//!   closed with `etcdserver: no leader` when the member loses its leader for
//!   [`MAX_NO_LEADER_CNT`] election timeouts ([`LeaderMonitor`], etcd's `monitorLeader`).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use prost::Message;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::{WatchRequest, WatchResponse, watch_create_request};
use retcd_api::mvccpb;
use retcd_api::watch_frame::framed::watch_server::Watch;
use retcd_api::watch_frame::{EncodedEvents, WatchFrame};
use retcd_mvcc::{EventType, RangeOptions, Store};
use retcd_watch::{Delivery, StreamSink, WatchOptions, WatchRange, WatchableStore, WatcherId};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::etcdserver::EtcdServer;

/// Responses queued per stream before the forwarders wait for the client.
const STREAM_QUEUE: usize = 128;
/// Events queued in a stream's queue before its watchers become victims (etcd's
/// per-stream channel holds 128 responses).
const SINK_EVENTS: usize = 4096;
/// Control messages queued before the receive loop waits.
const CONTROL_QUEUE: usize = 128;
/// Deliveries taken from the stream queue at once.
const DRAIN_MAX: usize = 4096;
/// Events, and pieces, waiting in a stream's staging before it stops taking more.
const STAGE_EVENTS: usize = 16_384;
const STAGE_PIECES: usize = 4096;
/// At most this many events, and about this many key and value bytes, are merged into one
/// response from queued revisions (clients' default receive limit is 4 MiB).
const MERGE_EVENTS: usize = 1000;
const MERGE_BYTES: usize = 1 << 20;

/// The cancel reason of a watch refused by auth: the gRPC error as Go prints it (etcd's
/// `isWatchPermitted` error, e.g. `rpc error: code = InvalidArgument desc = etcdserver: user
/// name is empty`).
fn refused_reason(e: EtcdError) -> String {
    let st = Status::from(e);
    format!("rpc error: code = {:?} desc = {}", st.code(), st.message())
}

/// etcd's `maxNoLeaderCnt`: election timeouts without a leader before `hasleader` streams
/// are closed.
pub const MAX_NO_LEADER_CNT: u32 = 3;
/// gRPC metadata key and value of etcd's `WithRequireLeader`.
const REQUIRE_LEADER_KEY: &str = "hasleader";
const HAS_LEADER: &str = "true";

pub struct WatchService {
    pub s: Arc<EtcdServer>,
    pub w: WatchableStore,
    /// etcd's `--experimental-watch-progress-notify-interval`.
    pub progress_interval: std::time::Duration,
    /// Whether the member has a leader, watched for `hasleader` streams.
    pub leader: LeaderMonitor,
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchFrame, Status>> + Send>>;

/// etcd's `monitorLeader`: every election timeout asks whether the member has a leader;
/// after [`MAX_NO_LEADER_CNT`] timeouts in a row without one, every `hasleader` stream open
/// at that moment is closed (and again at each further timeout without a leader). The check
/// is injected so tests can take the leader away.
#[derive(Clone)]
pub struct LeaderMonitor {
    inner: Arc<MonitorInner>,
}

struct MonitorInner {
    has_leader: Box<dyn Fn() -> bool + Send + Sync>,
    /// Bumped each time open `hasleader` streams must close.
    lost: tokio::sync::watch::Sender<u64>,
}

impl LeaderMonitor {
    /// Starts the monitor task (it ends when the last handle is dropped).
    pub fn start(has_leader: impl Fn() -> bool + Send + Sync + 'static, election: Duration) -> LeaderMonitor {
        let inner = Arc::new(MonitorInner {
            has_leader: Box::new(has_leader),
            lost: tokio::sync::watch::channel(0).0,
        });
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut no_leader = 0u32;
            loop {
                tokio::time::sleep(election).await;
                let Some(m) = weak.upgrade() else { return };
                if (m.has_leader)() {
                    no_leader = 0;
                } else {
                    no_leader = no_leader.saturating_add(1);
                }
                if no_leader >= MAX_NO_LEADER_CNT {
                    m.lost.send_modify(|n| *n += 1);
                }
            }
        });
        LeaderMonitor { inner }
    }

    /// The monitor of a server's raft (leader known to this member), ticking every
    /// `--election-timeout`.
    pub fn for_server(s: &EtcdServer) -> LeaderMonitor {
        let raft = s.raft.clone();
        LeaderMonitor::start(
            move || raft.status().leader.is_some(),
            Duration::from_millis(s.cfg.election_timeout),
        )
    }

    /// For a stream starting now with `metadata`: `Ok(None)` if it did not ask for a leader,
    /// `Ok(Some(signal))` if it did and there is one (the signal completes when the stream
    /// must close), etcd's "no leader" error if there is none.
    fn admit(&self, metadata: &tonic::metadata::MetadataMap) -> Result<Option<LeaderLost>, Status> {
        let required = metadata
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v.as_bytes() == HAS_LEADER.as_bytes());
        if !required {
            return Ok(None);
        }
        // Subscribe before asking so a loss right after the check is not missed.
        let mut rx = self.inner.lost.subscribe();
        if !(self.inner.has_leader)() {
            return Err(EtcdError::NoLeader.into());
        }
        Ok(Some(Box::pin(async move {
            if rx.changed().await.is_err() {
                // The monitor is gone (server shutting down): never fires.
                std::future::pending::<()>().await;
            }
        })))
    }
}

/// Completes when a `hasleader` stream must be closed.
type LeaderLost = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One item of a stream's send queue: sent to the client as one response, or as several
/// back-to-back fragments when its watcher asked for `fragment`.
struct Outgoing {
    resp: WatchFrame,
    fragment: bool,
}

impl From<WatchResponse> for Outgoing {
    fn from(resp: WatchResponse) -> Self {
        Outgoing {
            resp: resp.into(),
            fragment: false,
        }
    }
}

/// etcd's `sendFragments`: a response whose encoded size is at least `max_bytes` and that
/// has two or more events is split into responses marked `fragment` (all but the last),
/// each with as many events as keep it under `max_bytes` (at least one, so an event larger
/// than the limit travels alone). Anything else is returned as it is.
fn fragments(wr: WatchResponse, max_bytes: usize) -> Vec<WatchResponse> {
    if wr.events.len() < 2 || wr.encoded_len() < max_bytes {
        return vec![wr];
    }
    let mut template = wr;
    let events = std::mem::take(&mut template.events);
    template.fragment = true;
    // A response's size is its other fields plus each event's length-delimited field, so
    // the sizes add up without re-encoding.
    let base = template.encoded_len();
    let field = |ev: &mvccpb::Event| {
        let len = ev.encoded_len();
        prost::encoding::key_len(EVENTS_FIELD) + prost::encoding::encoded_len_varint(len as u64) + len
    };
    let mut out = Vec::new();
    let mut cur = template.clone();
    let mut size = base;
    for ev in events {
        let add = field(&ev);
        if !cur.events.is_empty() && size + add >= max_bytes {
            out.push(std::mem::replace(&mut cur, template.clone()));
            size = base;
        }
        size += add;
        cur.events.push(ev);
    }
    cur.fragment = false;
    out.push(cur);
    out
}

/// Field number of `WatchResponse.events`.
const EVENTS_FIELD: u32 = 11;

/// The response stream handed to tonic: drains the send queue, expanding fragmented
/// responses, and ends with etcd's "no leader" error if a `hasleader` stream loses its
/// leader.
struct OutStream {
    rx: mpsc::Receiver<Outgoing>,
    /// Fragments of the current response not yet sent.
    pending: std::vec::IntoIter<WatchResponse>,
    max_bytes: usize,
    lost: Option<LeaderLost>,
    done: bool,
}

impl Stream for OutStream {
    type Item = Result<WatchFrame, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(lost) = this.lost.as_mut()
            && lost.as_mut().poll(cx).is_ready()
        {
            this.done = true;
            return Poll::Ready(Some(Err(EtcdError::NoLeader.into())));
        }
        if let Some(r) = this.pending.next() {
            return Poll::Ready(Some(Ok(r.into())));
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(o)) if o.fragment => {
                // A fragmenting watcher's events are never pre-encoded (see `response`).
                debug_assert!(o.resp.encoded.is_empty());
                this.pending = fragments(o.resp.response, this.max_bytes).into_iter();
                Poll::Ready(this.pending.next().map(|r| Ok(r.into())))
            }
            Poll::Ready(Some(o)) => Poll::Ready(Some(Ok(o.resp))),
        }
    }
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

fn to_pb(e: &retcd_mvcc::Event) -> mvccpb::Event {
    let kind = match e.kind {
        EventType::Put => mvccpb::event::EventType::Put,
        EventType::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(mvccpb::KeyValue {
            key: e.kv.key.clone(),
            create_revision: e.kv.create_revision,
            mod_revision: e.kv.mod_revision,
            version: e.kv.version,
            value: e.kv.value.clone(),
            lease: e.kv.lease,
        }),
        prev_kv: None,
    }
}

/// What the receive loop tells the send loop, in order.
enum Control {
    /// A watcher was registered: its `created` response, then its events.
    Created {
        wid: WatcherId,
        watcher: SendWatcher,
        resp: WatchResponse,
    },
    /// A watcher was canceled (already removed from the store): its last response.
    Canceled { wid: WatcherId, resp: WatchResponse },
    /// A response not tied to a registered watcher (refused creates, progress).
    Response(WatchResponse),
}

/// What the send loop keeps per watcher.
struct SendWatcher {
    watch_id: i64,
    prev_kv: bool,
    /// Split large responses (etcd's `fragment`).
    fragment: bool,
    progress_notify: bool,
    /// Got something since the last progress tick (then no progress notification is due).
    sent_since_tick: bool,
}

/// One response waiting in a stream's staging queue.
enum Piece {
    /// Events of one or more whole revisions for one watcher.
    Events {
        wid: WatcherId,
        parts: Vec<Arc<[retcd_mvcc::Event]>>,
        revision: i64,
        events: usize,
        bytes: usize,
    },
    /// The watcher's start revision was compacted: it is canceled.
    Compacted { wid: WatcherId, compact_revision: i64 },
    /// A progress notification for one synced watcher.
    Progress { wid: WatcherId, revision: i64 },
    /// A response from the receive loop (created, canceled, refused, stream progress).
    Control(WatchResponse),
}

/// The responses of one stream waiting for room on the send queue, in order (etcd's
/// `sendLoop` buffers too). While the client keeps up, each piece leaves at once; while it
/// is behind, a watcher's later batches are merged into its piece still waiting (as etcd
/// merges a catching-up watcher's events), up to [`MERGE_EVENTS`] events or
/// [`MERGE_BYTES`] bytes, so a slow reader gets fewer, larger responses instead of a
/// growing backlog. Merging never moves an event across a compaction notice, a progress
/// notification or a control response.
#[derive(Default)]
struct Staging {
    pieces: VecDeque<Piece>,
    /// Sequence number of `pieces[0]`.
    head: u64,
    /// Each watcher's waiting `Events` piece still open for merging, by sequence number.
    open: HashMap<WatcherId, u64>,
    /// Events waiting (what bounds the staging).
    events: usize,
}

impl Staging {
    fn push_piece(&mut self, p: Piece) {
        self.pieces.push_back(p);
    }

    fn push(&mut self, d: Delivery) {
        match d {
            Delivery::Batch(wid, b) if b.compact_revision != 0 => {
                self.open.remove(&wid);
                self.push_piece(Piece::Compacted {
                    wid,
                    compact_revision: b.compact_revision,
                });
            }
            Delivery::Batch(wid, b) => {
                let size: usize = b.events.iter().map(|e| e.kv.key.len() + e.kv.value.len()).sum();
                self.events += b.events.len();
                if let Some(&seq) = self.open.get(&wid)
                    && let Some(Piece::Events {
                        parts,
                        revision,
                        events,
                        bytes,
                        ..
                    }) = self.pieces.get_mut((seq - self.head) as usize)
                    && *events < MERGE_EVENTS
                    && *bytes < MERGE_BYTES
                {
                    *events += b.events.len();
                    *bytes += size;
                    *revision = b.revision;
                    parts.push(b.events);
                    return;
                }
                self.open.insert(wid, self.head + self.pieces.len() as u64);
                self.push_piece(Piece::Events {
                    wid,
                    events: b.events.len(),
                    bytes: size,
                    revision: b.revision,
                    parts: vec![b.events],
                });
            }
            Delivery::Progress(wid, revision) => {
                self.open.remove(&wid);
                self.push_piece(Piece::Progress { wid, revision });
            }
        }
    }

    /// A control response; a stream-wide one (watch id -1: progress for every watcher)
    /// closes every open piece, so no later event overtakes it.
    fn push_control(&mut self, resp: WatchResponse) {
        if resp.watch_id == -1 {
            self.open.clear();
        }
        self.push_piece(Piece::Control(resp));
    }

    fn pop(&mut self) -> Option<Piece> {
        let p = self.pieces.pop_front()?;
        let seq = self.head;
        self.head += 1;
        if let Piece::Events { wid, events, .. } = &p {
            self.events -= events;
            if self.open.get(wid) == Some(&seq) {
                self.open.remove(wid);
            }
        }
        Some(p)
    }

    fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }
}

/// The stream's send loop (etcd's `serverWatchStream.sendLoop`): turns control messages
/// and the stream queue's deliveries into responses on the bounded send queue. While the
/// client does not read, the send queue and then the staging fill up, this loop stops
/// draining the stream queue, and the store parks the stream's watchers as victims:
/// writers never wait.
struct SendLoop {
    s: Arc<EtcdServer>,
    w: WatchableStore,
    sink: StreamSink,
    watchers: HashMap<WatcherId, SendWatcher>,
    /// The last watcher created on this stream; deliveries for a newer one wait in
    /// `pending` for its `created` response, for an older unknown one are dropped (it was
    /// canceled).
    last_created: Option<WatcherId>,
    pending: HashMap<WatcherId, Vec<Delivery>>,
    staging: Staging,
    encoded: EncodedCache,
}

/// Revisions' events as the stream last encoded them, so the watchers of a stream that get
/// the same revision (the store shares one `Arc` of its events between them) share one
/// encoding. Holds the most recent [`ENCODED_CACHE_ENTRIES`] revisions, up to
/// [`ENCODED_CACHE_BYTES`] (at least one).
#[derive(Default)]
struct EncodedCache {
    entries: VecDeque<(Arc<[retcd_mvcc::Event]>, EncodedEvents)>,
    bytes: usize,
}

/// Encoded bytes, and revisions, a stream keeps for reuse (a lookup scans the entries).
const ENCODED_CACHE_BYTES: usize = 1 << 20;
const ENCODED_CACHE_ENTRIES: usize = 64;

impl EncodedCache {
    fn get(&mut self, events: &Arc<[retcd_mvcc::Event]>) -> EncodedEvents {
        if let Some((_, enc)) = self.entries.iter().rev().find(|(e, _)| Arc::ptr_eq(e, events)) {
            return enc.clone();
        }
        let enc = EncodedEvents::encode(events.iter().map(to_pb).collect::<Vec<_>>().iter());
        while !self.entries.is_empty()
            && (self.bytes + enc.encoded_len() > ENCODED_CACHE_BYTES
                || self.entries.len() >= ENCODED_CACHE_ENTRIES)
        {
            if let Some((_, old)) = self.entries.pop_front() {
                self.bytes -= old.encoded_len();
            }
        }
        self.bytes += enc.encoded_len();
        self.entries.push_back((events.clone(), enc.clone()));
        enc
    }
}

#[cfg(test)]
impl Piece {
    fn wid_for_test(&self) -> Option<WatcherId> {
        match self {
            Piece::Events { wid, .. } | Piece::Compacted { wid, .. } | Piece::Progress { wid, .. } => {
                Some(*wid)
            }
            Piece::Control(_) => None,
        }
    }
}

impl SendLoop {
    async fn run(
        mut self,
        mut ctrl: mpsc::Receiver<Control>,
        out: mpsc::Sender<Outgoing>,
        progress: Duration,
    ) {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + progress, progress);
        loop {
            let room = self.staging.events < STAGE_EVENTS && self.staging.pieces.len() < STAGE_PIECES;
            let ok = tokio::select! {
                biased;
                c = ctrl.recv(), if room => match c {
                    Some(c) => {
                        self.control(c);
                        true
                    }
                    None => false,
                },
                permit = out.reserve(), if !self.staging.is_empty() => match permit {
                    Ok(permit) => match self.staging.pop() {
                        Some(piece) => match self.response(piece).await {
                            Some(Some(o)) => {
                                permit.send(o);
                                true
                            }
                            Some(None) => true,
                            None => false,
                        },
                        None => true,
                    },
                    Err(_) => false,
                },
                _ = self.sink.ready(), if room => {
                    for d in self.sink.drain(DRAIN_MAX) {
                        self.stage(d);
                    }
                    true
                }
                _ = ticker.tick() => {
                    self.progress_tick();
                    true
                }
                _ = out.closed() => false,
            };
            if !ok {
                break;
            }
        }
        self.sink.close();
    }

    /// etcd's progress ticker: every watcher that asked for progress notifications and
    /// got nothing since the last tick is offered one (queued behind its events, and only
    /// if it is synced).
    fn progress_tick(&mut self) {
        for (wid, sw) in &mut self.watchers {
            if sw.progress_notify && !std::mem::take(&mut sw.sent_since_tick) {
                self.w.request_progress(*wid);
            }
        }
    }

    fn control(&mut self, c: Control) {
        match c {
            Control::Created { wid, watcher, resp } => {
                self.watchers.insert(wid, watcher);
                self.last_created = Some(wid);
                self.staging.push_control(resp);
                for d in self.pending.remove(&wid).unwrap_or_default() {
                    self.staging.push(d);
                }
            }
            Control::Canceled { wid, resp } => {
                // Its waiting pieces are dropped when they reach the front.
                self.watchers.remove(&wid);
                self.pending.remove(&wid);
                self.staging.open.remove(&wid);
                self.staging.push_control(resp);
            }
            Control::Response(resp) => self.staging.push_control(resp),
        }
    }

    fn stage(&mut self, d: Delivery) {
        let wid = match &d {
            Delivery::Batch(wid, _) | Delivery::Progress(wid, _) => *wid,
        };
        if self.watchers.contains_key(&wid) {
            self.staging.push(d);
        } else if self.last_created.is_none_or(|last| wid > last) {
            self.pending.entry(wid).or_default().push(d);
        }
    }

    /// The response for a piece: `Some(None)` when there is nothing to send (its watcher
    /// was canceled meanwhile), `None` when the stream is done.
    async fn response(&mut self, piece: Piece) -> Option<Option<Outgoing>> {
        let piece = match piece {
            Piece::Control(resp) => return Some(Some(resp.into())),
            p => p,
        };
        let wid = match &piece {
            Piece::Control(_) => return Some(None),
            Piece::Events { wid, .. } | Piece::Compacted { wid, .. } | Piece::Progress { wid, .. } => *wid,
        };
        let Some(sw) = self.watchers.get_mut(&wid) else {
            return Some(None);
        };
        sw.sent_since_tick = true;
        let (watch_id, prev_kv, fragment) = (sw.watch_id, sw.prev_kv, sw.fragment);
        let resp = match piece {
            Piece::Events { parts, revision, .. } if !prev_kv && !fragment => {
                // Each revision's events encoded once for all the stream's watchers.
                let encoded = parts.iter().map(|p| self.encoded.get(p)).collect();
                let response = WatchResponse {
                    header: self.s.header(revision),
                    watch_id,
                    ..Default::default()
                };
                return Some(Some(Outgoing {
                    resp: WatchFrame { response, encoded },
                    fragment,
                }));
            }
            Piece::Events { parts, revision, .. } => {
                let mut events: Vec<mvccpb::Event> = parts.iter().flat_map(|p| p.iter().map(to_pb)).collect();
                if prev_kv && !events.is_empty() {
                    let store = self.s.store.clone();
                    events = tokio::task::spawn_blocking(move || {
                        with_prev_kv(&store, &mut events);
                        events
                    })
                    .await
                    .ok()?;
                }
                WatchResponse {
                    header: self.s.header(revision),
                    watch_id,
                    events,
                    ..Default::default()
                }
            }
            Piece::Compacted { compact_revision, .. } => {
                // The store removed the watcher: etcd cancels it with this response.
                self.watchers.remove(&wid);
                let mut header = self.s.header(0);
                if let Some(h) = header.as_mut() {
                    // etcd's compaction cancel carries no revision.
                    h.revision = 0;
                }
                WatchResponse {
                    header,
                    watch_id,
                    compact_revision,
                    canceled: true,
                    ..Default::default()
                }
            }
            Piece::Progress { revision, .. } => {
                // A progress notification is not "something sent".
                sw.sent_since_tick = false;
                WatchResponse {
                    header: self.s.header(revision),
                    watch_id,
                    ..Default::default()
                }
            }
            Piece::Control(_) => unreachable!("answered above"),
        };
        Some(Some(Outgoing {
            resp: resp.into(),
            fragment,
        }))
    }
}

impl WatchService {
    /// The stream with every event decoded into its response (for the JSON gateway).
    pub async fn responses(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<impl Stream<Item = Result<WatchResponse, Status>> + Send + 'static>, Status> {
        let frames = Watch::watch(self, request).await?;
        Ok(frames.map(|s| {
            s.map(|f| f.and_then(|f| f.into_response().map_err(|e| Status::internal(e.to_string()))))
        }))
    }
}

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let lost = self.leader.admit(request.metadata())?;
        // etcd resolves the stream's credentials once; each create checks read access (a
        // token that is not valid cancels every create, it does not fail the stream)
        let (who, bad_token) = match self.s.auth.info_from(request.metadata()) {
            Ok(who) => (who, None),
            Err(EtcdError::InvalidAuthToken) => {
                // a token made on another member may not be applied here yet
                self.s.linearizable_read().await?;
                match self.s.auth.info_from(request.metadata()) {
                    Ok(who) => (who, None),
                    Err(e) => (Default::default(), Some(e)),
                }
            }
            Err(e) => (Default::default(), Some(e)),
        };
        let mut inbound = request.into_inner();
        let (out_tx, out_rx) = mpsc::channel::<Outgoing>(STREAM_QUEUE);
        let (ctrl, ctrl_rx) = mpsc::channel::<Control>(CONTROL_QUEUE);
        let sink = StreamSink::new(SINK_EVENTS);
        let s = self.s.clone();
        let w = self.w.clone();
        let send_loop = SendLoop {
            s: s.clone(),
            w: w.clone(),
            sink: sink.clone(),
            watchers: HashMap::new(),
            last_created: None,
            pending: HashMap::new(),
            staging: Staging::default(),
            encoded: EncodedCache::default(),
        };
        tokio::spawn(send_loop.run(ctrl_rx, out_tx, self.progress_interval));
        tokio::spawn(crate::auth::scoped(who, async move {
            // watch id -> store id of this stream's watchers
            let mut watchers: HashMap<i64, WatcherId> = HashMap::new();
            let mut next_watch_id: i64 = 0;
            loop {
                // The send side ends (client gone, or a `hasleader` stream lost its
                // leader): stop reading requests too.
                let msg = tokio::select! {
                    m = inbound.next() => m,
                    _ = ctrl.closed() => None,
                };
                let Some(Ok(req)) = msg else { break };
                let c = match req.request_union {
                    Some(RequestUnion::CreateRequest(c)) => c,
                    Some(RequestUnion::CancelRequest(c)) => {
                        if let Some(wid) = watchers.remove(&c.watch_id) {
                            w.cancel(wid);
                            let resp = WatchResponse {
                                header: s.header(0),
                                watch_id: c.watch_id,
                                canceled: true,
                                ..Default::default()
                            };
                            if ctrl.send(Control::Canceled { wid, resp }).await.is_err() {
                                break;
                            }
                        }
                        continue;
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        // Not tied to a watcher: every watcher on the stream may take it.
                        let resp = WatchResponse {
                            header: s.header(w.notified_revision()),
                            watch_id: -1,
                            ..Default::default()
                        };
                        if ctrl.send(Control::Response(resp)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    None => continue,
                };
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
                    if ctrl.send(Control::Response(resp)).await.is_err() {
                        break;
                    }
                    continue;
                }
                let permitted = match &bad_token {
                    Some(e) => Err(e.clone()),
                    None => s.auth.check_read(&c.key, &c.range_end),
                };
                if let Err(e) = permitted {
                    // etcd's isWatchPermitted: refused with the gRPC error's text
                    let resp = WatchResponse {
                        header: s.header(0),
                        watch_id: c.watch_id,
                        created: true,
                        canceled: true,
                        cancel_reason: refused_reason(e),
                        ..Default::default()
                    };
                    if ctrl.send(Control::Response(resp)).await.is_err() {
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
                    if ctrl.send(Control::Response(resp)).await.is_err() {
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
                // Registered first so no revision after `rev` is missed; the send loop
                // holds back its events until it has sent `created`.
                let (wid, rev) = w.watch(opts, c.start_revision, &sink);
                watchers.insert(id, wid);
                let created = Control::Created {
                    wid,
                    watcher: SendWatcher {
                        watch_id: id,
                        prev_kv: c.prev_kv,
                        fragment: c.fragment,
                        progress_notify: c.progress_notify,
                        sent_since_tick: false,
                    },
                    resp: WatchResponse {
                        header: s.header(rev),
                        watch_id: id,
                        created: true,
                        ..Default::default()
                    },
                };
                if ctrl.send(created).await.is_err() {
                    break;
                }
            }
            for wid in watchers.into_values() {
                w.cancel(wid);
            }
        }));
        let out = OutStream {
            rx: out_rx,
            pending: Vec::new().into_iter(),
            max_bytes: usize::try_from(self.s.cfg.max_request_bytes)
                .unwrap_or(usize::MAX)
                .saturating_add(crate::GRPC_OVERHEAD_BYTES),
            lost,
            done: false,
        };
        Ok(Response::new(Box::pin(out)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use proptest::prelude::*;
    use retcd_api::etcdserverpb::ResponseHeader;

    use super::*;

    fn event(key: &str, value_len: usize, prev_len: Option<usize>) -> mvccpb::Event {
        let kv = |len: usize| mvccpb::KeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: 2,
            mod_revision: 7,
            version: 1,
            value: vec![b'v'; len],
            lease: 0,
        };
        mvccpb::Event {
            r#type: mvccpb::event::EventType::Put as i32,
            kv: Some(kv(value_len)),
            prev_kv: prev_len.map(kv),
        }
    }

    fn response(events: Vec<mvccpb::Event>) -> WatchResponse {
        WatchResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 7,
                raft_term: 3,
            }),
            watch_id: 5,
            events,
            ..Default::default()
        }
    }

    /// etcd's `sendFragments`, transcribed literally (re-encodes after every append).
    fn etcd_send_fragments(wr: &WatchResponse, max: usize) -> Vec<WatchResponse> {
        if wr.encoded_len() < max || wr.events.len() < 2 {
            return vec![wr.clone()];
        }
        let mut ow = wr.clone();
        ow.events = Vec::new();
        ow.fragment = true;
        let mut out = Vec::new();
        let mut idx = 0;
        loop {
            let mut cur = ow.clone();
            for ev in &wr.events[idx..] {
                cur.events.push(ev.clone());
                if cur.events.len() > 1 && cur.encoded_len() >= max {
                    cur.events.pop();
                    break;
                }
                idx += 1;
            }
            if idx == wr.events.len() {
                cur.fragment = false;
            }
            let last = !cur.fragment;
            out.push(cur);
            if last {
                return out;
            }
        }
    }

    fn batch(revs: &[i64]) -> retcd_watch::WatchBatch {
        let events: Vec<retcd_mvcc::Event> = revs
            .iter()
            .map(|r| retcd_mvcc::Event {
                kind: EventType::Put,
                kv: retcd_mvcc::KeyValue {
                    key: b"k".to_vec(),
                    create_revision: 1,
                    mod_revision: *r,
                    version: 1,
                    value: b"v".to_vec(),
                    lease: 0,
                },
            })
            .collect();
        retcd_watch::WatchBatch {
            revision: *revs.last().unwrap_or(&0),
            events: events.into(),
            compact_revision: 0,
        }
    }

    /// The watchers of a stream that get one revision share its encoding; the encoding is
    /// the events' own; the cache keeps a bounded number of bytes.
    #[test]
    fn encoded_cache_shares_a_revisions_encoding_and_stays_bounded() {
        let mut cache = EncodedCache::default();
        let a = batch(&[5, 5]).events;
        let first = cache.get(&a);
        assert_eq!(first.len(), 2);
        assert_eq!(first.decode().unwrap(), a.iter().map(to_pb).collect::<Vec<_>>());
        assert_eq!(cache.get(&a.clone()), first);
        assert_eq!(
            cache.entries.len(),
            1,
            "a second watcher of the revision hits the cache"
        );
        // Equal events in another allocation are another revision's: encoded on their own.
        let b = batch(&[5, 5]).events;
        assert_eq!(cache.get(&b), first);
        assert_eq!(cache.entries.len(), 2);
        for r in 0..1000 {
            cache.get(&batch(&[r]).events);
        }
        assert_eq!(cache.entries.len(), ENCODED_CACHE_ENTRIES);
        let big = Arc::<[retcd_mvcc::Event]>::from(vec![retcd_mvcc::Event {
            kind: EventType::Put,
            kv: retcd_mvcc::KeyValue {
                key: b"k".to_vec(),
                value: vec![0; ENCODED_CACHE_BYTES / 3],
                ..Default::default()
            },
        }]);
        for _ in 0..4 {
            cache.get(&Arc::from(big.to_vec()));
        }
        assert!(cache.bytes <= ENCODED_CACHE_BYTES, "{}", cache.bytes);
        assert_eq!(cache.entries.len(), 2);
        assert_eq!(
            cache.bytes,
            cache.entries.iter().map(|(_, e)| e.encoded_len()).sum::<usize>()
        );
    }

    /// What the staging hands out, as (watcher, kind, revisions).
    fn drain_staging(st: &mut Staging) -> Vec<(u64, &'static str, Vec<i64>)> {
        let mut out = Vec::new();
        while let Some(p) = st.pop() {
            out.push(match p {
                Piece::Events { wid, parts, .. } => (
                    wid.raw(),
                    "events",
                    parts
                        .iter()
                        .flat_map(|p| p.iter().map(|e| e.kv.mod_revision))
                        .collect(),
                ),
                Piece::Compacted { compact_revision, .. } => (0, "compacted", vec![compact_revision]),
                Piece::Progress { revision, .. } => (0, "progress", vec![revision]),
                Piece::Control(r) => (0, "control", vec![r.watch_id]),
            });
        }
        assert_eq!(st.events, 0, "every staged event was handed out");
        out
    }

    #[test]
    fn staging_merges_a_watchers_batches_but_never_across_a_notice() {
        let (a, b) = (WatcherId::from_raw(1), WatcherId::from_raw(2));
        let mut st = Staging::default();
        st.push(Delivery::Batch(a, batch(&[2])));
        st.push(Delivery::Batch(b, batch(&[2])));
        st.push(Delivery::Batch(a, batch(&[3, 3])));
        st.push(Delivery::Batch(b, batch(&[3, 3])));
        // a progress notice for `a` closes its piece: later events go after it
        st.push(Delivery::Progress(a, 3));
        st.push(Delivery::Batch(a, batch(&[4])));
        st.push(Delivery::Batch(b, batch(&[4])));
        // a stream-wide control response closes every piece
        st.push_control(WatchResponse {
            watch_id: -1,
            ..Default::default()
        });
        st.push(Delivery::Batch(a, batch(&[5])));
        st.push(Delivery::Batch(b, batch(&[5])));
        assert_eq!(
            drain_staging(&mut st),
            vec![
                (1, "events", vec![2, 3, 3]),
                (2, "events", vec![2, 3, 3, 4]),
                (0, "progress", vec![3]),
                (1, "events", vec![4]),
                (0, "control", vec![-1]),
                (1, "events", vec![5]),
                (2, "events", vec![5]),
            ]
        );
        // a piece already handed out is never merged into
        st.push(Delivery::Batch(a, batch(&[6])));
        assert_eq!(st.pop().map(|p| p.wid_for_test()), Some(Some(a)));
        st.push(Delivery::Batch(a, batch(&[7])));
        assert_eq!(drain_staging(&mut st), vec![(1, "events", vec![7])]);
        // a merged piece stops growing at MERGE_EVENTS
        for r in 0..(MERGE_EVENTS as i64 + 1) {
            st.push(Delivery::Batch(a, batch(&[r])));
        }
        let sizes: Vec<usize> = drain_staging(&mut st).iter().map(|p| p.2.len()).collect();
        assert_eq!(sizes, vec![MERGE_EVENTS, 1]);
    }

    #[test]
    fn small_or_single_event_responses_are_not_split() {
        let small = response(vec![event("a", 10, None), event("b", 10, None)]);
        assert_eq!(fragments(small.clone(), 1 << 20), vec![small]);
        let huge = response(vec![event("a", 5000, Some(5000))]);
        assert_eq!(fragments(huge.clone(), 1000), vec![huge]);
        let empty = response(vec![]);
        assert_eq!(fragments(empty.clone(), 1), vec![empty]);
    }

    #[test]
    fn large_responses_split_into_maximal_fragments() {
        // 10 events of ~1000 bytes, limit 3500: 3 events per fragment (a fourth would reach
        // the limit), the last fragment has the remaining one and fragment = false.
        let evs: Vec<_> = (0..10).map(|i| event(&format!("k{i}"), 1000, None)).collect();
        let out = fragments(response(evs.clone()), 3500);
        assert_eq!(
            out.iter().map(|r| r.events.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        assert_eq!(
            out.iter().map(|r| r.fragment).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        for r in &out {
            assert!(r.encoded_len() < 3500);
            assert_eq!((r.watch_id, r.header), (5, response(vec![]).header));
        }
        assert_eq!(out.into_iter().flat_map(|r| r.events).collect::<Vec<_>>(), evs);
        // An event larger than the limit goes alone, in order.
        let evs = vec![
            event("a", 100, None),
            event("big", 5000, None),
            event("b", 100, None),
            event("c", 100, None),
        ];
        let out = fragments(response(evs.clone()), 1000);
        assert_eq!(out.iter().map(|r| r.events.len()).collect::<Vec<_>>(), [1, 1, 2]);
        assert_eq!(
            out.iter().map(|r| r.fragment).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(out, etcd_send_fragments(&response(evs), 1000));
    }

    proptest! {
        #[test]
        fn fragments_equal_etcds_send_fragments(
            sizes in proptest::collection::vec((0usize..3000, proptest::option::of(0usize..3000)), 0..40),
            max in 1usize..20_000,
        ) {
            let evs: Vec<_> = sizes
                .iter()
                .enumerate()
                .map(|(i, (v, p))| event(&format!("key{i}"), *v, *p))
                .collect();
            let wr = response(evs);
            prop_assert_eq!(fragments(wr.clone(), max), etcd_send_fragments(&wr, max));
        }
    }

    fn metadata(require_leader: bool) -> tonic::metadata::MetadataMap {
        let mut md = tonic::metadata::MetadataMap::new();
        if require_leader {
            md.insert("hasleader", "true".parse().unwrap());
        }
        md
    }

    fn is_no_leader(s: &Status) -> bool {
        s.code() == tonic::Code::Unavailable && s.message() == "etcdserver: no leader"
    }

    #[tokio::test]
    async fn hasleader_streams_are_refused_without_a_leader() {
        let leader = Arc::new(AtomicBool::new(false));
        let l = leader.clone();
        let m = LeaderMonitor::start(move || l.load(Ordering::SeqCst), Duration::from_secs(3600));
        let err = m.admit(&metadata(true)).err().expect("refused");
        assert!(is_no_leader(&err), "{err:?}");
        // Without the metadata (or with another value) the leader does not matter.
        assert!(m.admit(&metadata(false)).unwrap().is_none());
        let mut other = tonic::metadata::MetadataMap::new();
        other.insert("hasleader", "false".parse().unwrap());
        assert!(m.admit(&other).unwrap().is_none());
        leader.store(true, Ordering::SeqCst);
        assert!(m.admit(&metadata(true)).unwrap().is_some());
    }

    #[tokio::test]
    async fn open_hasleader_streams_close_after_three_election_timeouts_without_leader() {
        let election = Duration::from_millis(200);
        let leader = Arc::new(AtomicBool::new(true));
        let l = leader.clone();
        let m = LeaderMonitor::start(move || l.load(Ordering::SeqCst), election);
        let mut lost = m.admit(&metadata(true)).unwrap().expect("admitted");
        // A leader that comes back within three timeouts closes nothing.
        leader.store(false, Ordering::SeqCst);
        assert!(
            tokio::time::timeout(election + election / 4, &mut lost)
                .await
                .is_err()
        );
        leader.store(true, Ordering::SeqCst);
        assert!(tokio::time::timeout(election * 5, &mut lost).await.is_err());
        // Gone for good: closed after three timeouts (not after one).
        leader.store(false, Ordering::SeqCst);
        let t = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), &mut lost)
            .await
            .expect("closed after losing the leader");
        assert!(t.elapsed() >= election * 2, "closed after {:?}", t.elapsed());
    }

    /// A one-member server in this process (as `main` builds it) whose Watch service uses
    /// `leader` as its leader check, served on a free loopback port. Returns the client URL.
    async fn serve_with_leader_check(
        dir: &std::path::Path,
        leader: Arc<AtomicBool>,
        election: Duration,
    ) -> (String, Arc<EtcdServer>, WatchableStore) {
        let data = dir.join("data");
        let cfg = crate::config::Config::from_args(
            ["retcd", "--data-dir", data.to_str().unwrap()]
                .map(String::from)
                .to_vec(),
        )
        .unwrap();
        let (store, resume) = Store::open(&dir.join("db"), retcd_mvcc::StoreConfig::default()).unwrap();
        let w = WatchableStore::new(store.clone()).unwrap();
        let leases = crate::lease::LeaseHub::restore(
            &store,
            retcd_lease::LessorConfig {
                min_ttl: 2,
                checkpoint_interval: None,
            },
        )
        .unwrap();
        let wait = Arc::new(crate::wait::Wait::default());
        let auth = crate::auth::AuthHub::load(
            &store,
            || retcd_auth::TokenProvider::simple(Duration::from_secs(300)),
            4,
        )
        .unwrap();
        let applier = crate::applier::Applier::new(
            store.clone(),
            resume,
            w.clone(),
            leases.clone(),
            wait.clone(),
            auth.clone(),
            Arc::new(crate::alarm::AlarmStore::default()),
        )
        .unwrap();
        let peer = vec!["http://127.0.0.1:1".to_string()];
        let id = crate::ids::member_id(&peer, "etcd-cluster");
        let member = retcd_raft_node::MemberNode {
            name: "default".into(),
            peer_urls: peer,
            client_urls: vec![],
        };
        let raft = retcd_raft_node::RaftNode::start(
            retcd_raft_node::RaftNodeConfig {
                id,
                cluster_id: 1,
                initial_members: [(id, member)].into(),
                wal_dir: dir.join("wal"),
                heartbeat_ms: 100,
                election_ms: 1000,
                snapshot_count: 10_000,
                join_existing: false,
                snapshot_catchup_entries: 5000,
                force_new_cluster: None,
            },
            Box::new(applier),
        )
        .await
        .unwrap();
        raft.wait_ready(Duration::from_secs(20)).await.unwrap();
        let s = EtcdServer::new(
            cfg,
            store,
            raft,
            (id, 1),
            crate::etcdserver::Hubs {
                leases,
                wait,
                auth,
                alarms: Arc::new(crate::alarm::AlarmStore::default()),
            },
        );
        let svc = WatchService {
            s: s.clone(),
            w: w.clone(),
            progress_interval: Duration::from_secs(600),
            leader: LeaderMonitor::start(move || leader.load(Ordering::SeqCst), election),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(retcd_api::watch_frame::framed::watch_server::WatchServer::new(
                    svc,
                ))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        (url, s, w)
    }

    fn watch_all(require_leader: bool) -> tonic::Request<impl tokio_stream::Stream<Item = WatchRequest>> {
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(
                retcd_api::etcdserverpb::WatchCreateRequest {
                    key: vec![0],
                    range_end: vec![0],
                    ..Default::default()
                },
            )),
        };
        // The request side stays open, as a real client's does.
        let reqs = tokio_stream::iter([create]).chain(tokio_stream::pending());
        let mut req = tonic::Request::new(reqs);
        if require_leader {
            req.metadata_mut().insert("hasleader", "true".parse().unwrap());
        }
        req
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_service_honours_hasleader() {
        use retcd_api::etcdserverpb::watch_client::WatchClient;
        let dir = tempfile::tempdir().unwrap();
        let election = Duration::from_millis(100);
        let leader = Arc::new(AtomicBool::new(false));
        let (url, s, w) = serve_with_leader_check(dir.path(), leader.clone(), election).await;
        let mut client = WatchClient::connect(url).await.unwrap();

        // No leader: refused at once; without the metadata the watch works.
        let err = client.watch(watch_all(true)).await.expect_err("refused");
        assert!(is_no_leader(&err), "{err:?}");
        let mut plain = client.watch(watch_all(false)).await.unwrap().into_inner();
        assert!(plain.message().await.unwrap().unwrap().created);

        // With a leader: admitted; events flow; losing the leader closes the stream with
        // etcd's error, while the plain stream stays open.
        leader.store(true, Ordering::SeqCst);
        let mut guarded = client.watch(watch_all(true)).await.unwrap().into_inner();
        assert!(guarded.message().await.unwrap().unwrap().created);
        let put = crate::raft_request::InternalRaftRequest {
            put: Some(retcd_api::etcdserverpb::PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
        s.propose(put).await.unwrap();
        let ev = guarded.message().await.unwrap().unwrap();
        assert_eq!(ev.events.len(), 1);
        assert_eq!(plain.message().await.unwrap().unwrap().events.len(), 1);
        leader.store(false, Ordering::SeqCst);
        let err = tokio::time::timeout(Duration::from_secs(10), guarded.message())
            .await
            .expect("closed after losing the leader")
            .expect_err("an error status");
        assert!(is_no_leader(&err), "{err:?}");
        assert!(
            tokio::time::timeout(election * 6, plain.message()).await.is_err(),
            "the stream without hasleader stays open"
        );
        // The closed stream's watcher is gone from the store; the plain one remains.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while w.watcher_counts() != (1, 0) {
            assert!(tokio::time::Instant::now() < deadline, "{:?}", w.watcher_counts());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        s.raft.shutdown().await;
    }

    #[tokio::test]
    async fn out_stream_sends_fragments_back_to_back_and_ends_with_no_leader() {
        let (tx, rx) = mpsc::channel(8);
        let (fire, fired) = tokio::sync::oneshot::channel::<()>();
        let mut out = OutStream {
            rx,
            pending: Vec::new().into_iter(),
            max_bytes: 3500,
            lost: Some(Box::pin(async move {
                let _ = fired.await;
            })),
            done: false,
        };
        let evs: Vec<_> = (0..4).map(|i| event(&format!("k{i}"), 1000, None)).collect();
        tx.send(Outgoing {
            resp: response(evs.clone()).into(),
            fragment: true,
        })
        .await
        .unwrap();
        tx.send(Outgoing {
            resp: response(evs.clone()).into(),
            fragment: false,
        })
        .await
        .unwrap();
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(out.next().await.unwrap().unwrap());
        }
        assert_eq!(
            got.iter()
                .map(|r| (r.response.events.len(), r.response.fragment))
                .collect::<Vec<_>>(),
            [(3, true), (1, false), (4, false)]
        );
        tx.send(response(vec![]).into()).await.unwrap();
        fire.send(()).unwrap();
        // The leader loss wins over queued responses, and the stream ends after it.
        let err = out.next().await.unwrap().unwrap_err();
        assert!(is_no_leader(&err), "{err:?}");
        assert!(out.next().await.is_none());
    }
}
