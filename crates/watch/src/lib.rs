//! retcd's watchable store (etcd's `mvcc/watchable_store.go`): delivers every change to every
//! watcher whose range it touches, in revision order, exactly once, without ever making a
//! writer wait for a watcher.
//!
//! It must not depend on gRPC or the server; it speaks MVCC [`Event`]s and hands batches to
//! the bounded send queue ([`StreamSink`]) of the stream each watcher belongs to.
//!
//! # Watcher groups
//! - **synced**: caught up. The apply path calls [`WatchableStore::notify`] once per
//!   committed revision; matching events go straight into the watcher's stream queue (the
//!   revision's events are shared, not copied, between watchers that want all of them). A
//!   full queue never blocks: the watcher becomes a *victim* and moves to unsynced with
//!   `next_rev` at the undelivered revision.
//! - **unsynced**: started in the past, or victims. A dedicated sync thread reads their
//!   missing events from the backend in pages of whole revisions — one read per page for
//!   all of them, as etcd's `syncWatchers` — up to the last *notified* revision (never past
//!   it, so nothing is delivered twice), and moves a watcher back to synced, under the lock,
//!   once it has everything up to that revision.
//! - A watcher whose `next_rev` fell below the compaction revision gets one compacted batch
//!   and is removed (etcd cancels such watches).

mod sink;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use retcd_mvcc::{Event, EventType, MvccError, Store};

use sink::PushError;
pub use sink::{Delivery, StreamSink};

/// Events for one watcher: all events of the revisions it covers (never a partial revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchBatch {
    /// Shared between the watchers that get the same events.
    pub events: Arc<[Event]>,
    /// The revision the response header reports.
    pub revision: i64,
    /// Non-zero: the watcher's start revision was compacted; it is canceled.
    pub compact_revision: i64,
}

/// What a watcher watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRange {
    pub key: Vec<u8>,
    /// `None`: the single key; `Some([])`: every key >= key; `Some(end)`: [key, end).
    pub end: Option<Vec<u8>>,
}

impl WatchRange {
    /// From a request's key and range_end with etcd's conventions (empty end: single key,
    /// "\0": from key; empty key means "\0").
    pub fn from_request(key: &[u8], range_end: &[u8]) -> WatchRange {
        let key = if key.is_empty() { vec![0] } else { key.to_vec() };
        let end = match range_end {
            [] => None,
            [0] => Some(Vec::new()),
            e => Some(e.to_vec()),
        };
        WatchRange { key, end }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match &self.end {
            None => k == self.key.as_slice(),
            Some(e) if e.is_empty() => k >= self.key.as_slice(),
            Some(e) => k >= self.key.as_slice() && k < e.as_slice(),
        }
    }
}

/// Options of one watcher.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub range: WatchRange,
    pub no_put: bool,
    pub no_delete: bool,
}

impl WatchOptions {
    fn wants(&self, ev: &Event) -> bool {
        match ev.kind {
            EventType::Put if self.no_put => false,
            EventType::Delete if self.no_delete => false,
            _ => self.range.contains(&ev.kv.key),
        }
    }

    /// The events of `all` this watcher wants, sharing `all` when it wants every one.
    fn select(&self, all: &Arc<[Event]>) -> Option<Arc<[Event]>> {
        let n = all.iter().filter(|e| self.wants(e)).count();
        if n == 0 {
            None
        } else if n == all.len() {
            Some(all.clone())
        } else {
            Some(all.iter().filter(|e| self.wants(e)).cloned().collect())
        }
    }
}

struct Watcher {
    opts: WatchOptions,
    /// First revision not yet delivered.
    next_rev: i64,
    sink: StreamSink,
}

/// The synced watchers, indexed like etcd's `watcherGroup`: single-key watchers by key, the
/// others (ranges, from-key) in a list, so a revision only visits the watchers it may
/// concern. A synced watcher has every event up to `notified_rev`; its `next_rev` is only
/// kept up to date when it gets an event (or when it waits for a future start revision),
/// so its real next revision is `max(next_rev, notified_rev + 1)`.
#[derive(Default)]
struct SyncedGroup {
    watchers: HashMap<u64, Watcher>,
    by_key: HashMap<Vec<u8>, Vec<u64>>,
    ranges: Vec<u64>,
}

impl SyncedGroup {
    fn insert(&mut self, id: u64, w: Watcher) {
        match &w.opts.range.end {
            None => self.by_key.entry(w.opts.range.key.clone()).or_default().push(id),
            Some(_) => self.ranges.push(id),
        }
        self.watchers.insert(id, w);
    }

    fn remove(&mut self, id: u64) -> Option<Watcher> {
        let w = self.watchers.remove(&id)?;
        match &w.opts.range.end {
            None => {
                if let Some(ids) = self.by_key.get_mut(&w.opts.range.key) {
                    ids.retain(|i| *i != id);
                    if ids.is_empty() {
                        self.by_key.remove(&w.opts.range.key);
                    }
                }
            }
            Some(_) => self.ranges.retain(|i| *i != id),
        }
        Some(w)
    }

    /// The watchers that may want some of `events`.
    fn candidates(&self, events: &[Event]) -> Vec<u64> {
        let mut ids = self.ranges.clone();
        for ev in events {
            if let Some(v) = self.by_key.get(&ev.kv.key) {
                ids.extend_from_slice(v);
            }
        }
        if events.len() > 1 {
            ids.sort_unstable();
            ids.dedup();
        }
        ids
    }

    fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Empties the group; each watcher's `next_rev` made real from `notified_rev`.
    fn drain(&mut self, notified_rev: i64) -> Vec<(u64, Watcher)> {
        self.by_key.clear();
        self.ranges.clear();
        self.watchers
            .drain()
            .map(|(id, mut w)| {
                w.next_rev = w.next_rev.max(notified_rev + 1);
                (id, w)
            })
            .collect()
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    synced: SyncedGroup,
    unsynced: HashMap<u64, Watcher>,
    /// Last revision handed to `notify`; everything up to it is committed.
    notified_rev: i64,
    stopped: bool,
}

struct Inner {
    store: Store,
    state: Mutex<State>,
    wake: Condvar,
}

/// Handle to a registered watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatcherId(u64);

impl WatcherId {
    /// The store's number for the watcher (unique for the store's lifetime, increasing).
    pub fn raw(self) -> u64 {
        self.0
    }

    /// A watcher id from its number (for tests of code that handles deliveries).
    pub fn from_raw(id: u64) -> WatcherId {
        WatcherId(id)
    }
}

/// The watchable store. Cloning shares it.
#[derive(Clone)]
pub struct WatchableStore {
    inner: Arc<Inner>,
}

/// Events read per backend page when catching watchers up.
const SYNC_PAGE_EVENTS: usize = 1000;
/// How often the sync thread retries victims even without new writes.
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

impl WatchableStore {
    /// Starts the sync thread. Call `notify` for every committed revision from now on.
    pub fn new(store: Store) -> std::io::Result<WatchableStore> {
        let notified_rev = store.current_revision();
        let inner = Arc::new(Inner {
            store,
            state: Mutex::new(State {
                notified_rev,
                ..Default::default()
            }),
            wake: Condvar::new(),
        });
        let worker = inner.clone();
        std::thread::Builder::new()
            .name("watch-sync".into())
            .spawn(move || sync_loop(&worker))?;
        Ok(WatchableStore { inner })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.inner)
    }

    /// Registers a watcher delivering into `sink`. `start_rev <= 0`: only changes after the
    /// current revision. Returns its id and the current revision (for the `created`
    /// response).
    pub fn watch(&self, opts: WatchOptions, start_rev: i64, sink: &StreamSink) -> (WatcherId, i64) {
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        let cur = st.notified_rev;
        let (next_rev, synced) = if start_rev <= 0 || start_rev > cur {
            ((cur + 1).max(start_rev), true)
        } else {
            (start_rev, false)
        };
        let w = Watcher {
            opts,
            next_rev,
            sink: sink.clone(),
        };
        if synced {
            st.synced.insert(id, w);
        } else {
            st.unsynced.insert(id, w);
            self.inner.wake.notify_one();
        }
        (WatcherId(id), cur)
    }

    /// Removes a watcher; nothing is queued for it afterwards.
    pub fn cancel(&self, id: WatcherId) -> bool {
        let mut st = self.lock();
        st.synced.remove(id.0).is_some() || st.unsynced.remove(&id.0).is_some()
    }

    /// Number of (synced, unsynced) watchers.
    pub fn watcher_counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.synced.len(), st.unsynced.len())
    }

    /// etcd's `RequestProgress` for one watcher: if it is synced, queues a
    /// [`Delivery::Progress`] with the last notified revision behind every event it has
    /// been given (so the claim is true when the client reads it). Returns whether it did.
    pub fn request_progress(&self, id: WatcherId) -> bool {
        let st = self.lock();
        match st.synced.watchers.get(&id.0) {
            Some(w) => w.sink.push_progress(id, st.notified_rev).is_ok(),
            None => false,
        }
    }

    /// The last revision delivered to synced watchers.
    pub fn notified_revision(&self) -> i64 {
        self.lock().notified_rev
    }

    /// Called by the apply path after the backend commit, once per revision, in order, with
    /// that revision's changes. Never blocks on a watcher.
    pub fn notify(&self, rev: i64, events: Vec<Event>) {
        let mut st = self.lock();
        if rev <= st.notified_rev {
            return;
        }
        st.notified_rev = rev;
        let candidates = st.synced.candidates(&events);
        if candidates.is_empty() {
            return;
        }
        let all: Arc<[Event]> = events.into();
        let mut victims = Vec::new();
        let mut closed = Vec::new();
        for id in candidates {
            let Some(w) = st.synced.watchers.get_mut(&id) else {
                continue;
            };
            if w.next_rev > rev {
                continue;
            }
            let Some(events) = w.opts.select(&all) else {
                continue;
            };
            let batch = WatchBatch {
                events,
                revision: rev,
                compact_revision: 0,
            };
            match w.sink.push_batch(WatcherId(id), batch) {
                Ok(()) => w.next_rev = rev + 1,
                Err(PushError::Full) => {
                    w.next_rev = rev;
                    victims.push(id);
                }
                Err(PushError::Closed) => closed.push(id),
            }
        }
        for id in closed {
            st.synced.remove(id);
        }
        if !victims.is_empty() {
            for id in victims {
                if let Some(w) = st.synced.remove(id) {
                    st.unsynced.insert(id, w);
                }
            }
            self.inner.wake.notify_one();
        }
    }

    /// The store was replaced by a snapshot image at revision `rev` (etcd's
    /// `watchableStore.Restore`): every watcher catches up from the new backend, from where
    /// it was, up to `rev` (or is told its start revision was compacted).
    pub fn restored(&self, rev: i64) {
        let mut st = self.lock();
        let notified = st.notified_rev;
        let synced = st.synced.drain(notified);
        st.notified_rev = rev;
        st.unsynced.extend(synced);
        self.inner.wake.notify_one();
    }

    /// Stops the sync thread.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.inner.wake.notify_all();
    }
}

fn lock(inner: &Inner) -> MutexGuard<'_, State> {
    // A panic while holding the lock cannot leave State inconsistent in a way that matters
    // more than stopping delivery; keep going with the data.
    inner.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// An unsynced watcher taking part in one catch-up round.
struct Catching {
    id: u64,
    /// The `next_rev` this round expects it to still have (it is skipped if the watcher was
    /// canceled, or removed and re-added, meanwhile).
    next_rev: i64,
    /// Its queue was full this round: it waits for the next one.
    blocked: bool,
}

/// One catch-up round (etcd's `syncWatchers`): every unsynced watcher is brought towards the
/// last notified revision, reading each backend page once for all of them. Returns whether
/// some watcher was blocked by a full queue.
fn sync_round(inner: &Inner) -> bool {
    let (target, mut round) = {
        let st = lock(inner);
        let round: Vec<Catching> = st
            .unsynced
            .iter()
            .map(|(id, w)| Catching {
                id: *id,
                next_rev: w.next_rev,
                blocked: false,
            })
            .collect();
        (st.notified_rev, round)
    };
    let view = inner.store.read();
    let compact_rev = inner.store.compact_revision();
    let mut any_full = false;
    // Watchers whose next revision was compacted get one compaction notice and go.
    {
        let mut st = lock(inner);
        for c in round.iter_mut().filter(|c| c.next_rev < compact_rev) {
            c.blocked = true;
            let Some(w) = st.unsynced.get(&c.id).filter(|w| w.next_rev == c.next_rev) else {
                continue;
            };
            let batch = WatchBatch {
                events: Arc::from(Vec::new()),
                revision: target,
                compact_revision: compact_rev,
            };
            match w.sink.push_batch(WatcherId(c.id), batch) {
                Err(PushError::Full) => any_full = true,
                Ok(()) | Err(PushError::Closed) => {
                    st.unsynced.remove(&c.id);
                }
            }
        }
    }
    while let Some(from) = round
        .iter()
        .filter(|c| !c.blocked && c.next_rev <= target)
        .map(|c| c.next_rev)
        .min()
    {
        let (events, cont) = match view.events(from, SYNC_PAGE_EVENTS) {
            Ok(r) => r,
            Err(MvccError::Compacted) => {
                // compacted since `compact_rev` was read: the next round tells them
                return true;
            }
            Err(e) => {
                tracing::error!("watch sync: reading events from {from}: {e}");
                return true;
            }
        };
        // The page covers revisions [from, page_end).
        let page_end = if cont <= from {
            target + 1
        } else {
            cont.min(target + 1)
        };
        let page: Vec<Event> = events
            .into_iter()
            .filter(|e| e.kv.mod_revision <= target)
            .collect();
        let page: Arc<[Event]> = page.into();
        // Suffixes of the page shared by the watchers that want all of it from their
        // next revision on (typically many watchers of one key, all behind together).
        let mut suffixes: HashMap<usize, Arc<[Event]>> = HashMap::new();
        let mut st = lock(inner);
        for c in round.iter_mut().filter(|c| !c.blocked && c.next_rev < page_end) {
            let Some(w) = st.unsynced.get_mut(&c.id).filter(|w| w.next_rev == c.next_rev) else {
                c.blocked = true;
                continue;
            };
            let at = page.partition_point(|e| e.kv.mod_revision < c.next_rev);
            let suffix = &page[at..];
            let wanted = suffix.iter().filter(|e| w.opts.wants(e)).count();
            if wanted > 0 {
                let events: Arc<[Event]> = if wanted == suffix.len() {
                    suffixes.entry(at).or_insert_with(|| suffix.into()).clone()
                } else {
                    suffix.iter().filter(|e| w.opts.wants(e)).cloned().collect()
                };
                let batch = WatchBatch {
                    events,
                    revision: target,
                    compact_revision: 0,
                };
                match w.sink.push_batch(WatcherId(c.id), batch) {
                    Ok(()) => {}
                    Err(PushError::Full) => {
                        c.blocked = true;
                        any_full = true;
                        continue;
                    }
                    Err(PushError::Closed) => {
                        st.unsynced.remove(&c.id);
                        c.blocked = true;
                        continue;
                    }
                }
            }
            c.next_rev = page_end;
            w.next_rev = page_end;
        }
    }
    // Caught up with everything notified so far: rejoin the synced group.
    let mut st = lock(inner);
    let notified = st.notified_rev;
    for c in round.iter().filter(|c| !c.blocked && c.next_rev > notified) {
        if st.unsynced.get(&c.id).is_some_and(|w| w.next_rev == c.next_rev)
            && let Some(w) = st.unsynced.remove(&c.id)
        {
            st.synced.insert(c.id, w);
        }
    }
    any_full
}

fn sync_loop(inner: &Inner) {
    loop {
        {
            let mut st = lock(inner);
            if st.stopped {
                return;
            }
            if st.unsynced.is_empty() {
                st = inner
                    .wake
                    .wait_timeout(st, SYNC_INTERVAL)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
                if st.stopped {
                    return;
                }
                if st.unsynced.is_empty() {
                    continue;
                }
            }
        }
        if sync_round(inner) {
            // Give slow consumers time; never spin.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_mvcc::StoreConfig;

    fn opts(key: &[u8], end: &[u8]) -> WatchOptions {
        WatchOptions {
            range: WatchRange::from_request(key, end),
            no_put: false,
            no_delete: false,
        }
    }

    /// Writes `n` puts of key `k{i % 3}` through the store and notifies, like the applier.
    fn write(store: &Store, w: &WatchableStore, from: usize, n: usize) {
        for i in from..from + n {
            let mut b = store.begin_batch().unwrap();
            let mut t = b.txn();
            t.put(format!("k{}", i % 3).as_bytes(), i.to_string().as_bytes(), 0)
                .unwrap();
            let res = t.end();
            b.commit(false).unwrap();
            w.notify(res.rev, res.changes);
        }
    }

    /// The next batch queued in `sink`, if any (progress items skipped).
    pub(crate) fn try_recv(sink: &StreamSink) -> Option<WatchBatch> {
        loop {
            match sink.drain(1).pop()? {
                Delivery::Batch(_, b) => return Some(b),
                Delivery::Progress(..) => continue,
            }
        }
    }

    fn drain(sink: &StreamSink, want: usize) -> Vec<i64> {
        let mut revs = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while revs.len() < want && std::time::Instant::now() < deadline {
            match try_recv(sink) {
                Some(b) => revs.extend(b.events.iter().map(|e| e.kv.mod_revision)),
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        revs
    }

    #[test]
    fn history_then_live_without_gaps_or_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), StoreConfig::default()).unwrap();
        let w = WatchableStore::new(store.clone()).unwrap();
        write(&store, &w, 0, 30); // revisions 2..=31
        let sink = StreamSink::new(4);
        w.watch(opts(b"k1", b""), 5, &sink);
        let writer = {
            let (store, w) = (store.clone(), w.clone());
            std::thread::spawn(move || write(&store, &w, 30, 300))
        };
        // k1 is written at i % 3 == 1, i.e. revision i + 2; from revision 5 on.
        let expect: Vec<i64> = (0..330)
            .filter(|i| i % 3 == 1)
            .map(|i| i + 2)
            .filter(|r| *r >= 5)
            .collect();
        let got = drain(&sink, expect.len());
        writer.join().unwrap();
        assert_eq!(got, expect);
        w.stop();
    }

    #[test]
    fn slow_watcher_never_blocks_notify_and_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), StoreConfig::default()).unwrap();
        let w = WatchableStore::new(store.clone()).unwrap();
        let sink = StreamSink::new(1);
        w.watch(opts(b"k", &[0]), 0, &sink);
        // Nobody reads while 200 revisions are written: notify must not wait.
        write(&store, &w, 0, 200);
        let (_, unsynced) = w.watcher_counts();
        assert_eq!(unsynced, 1, "the full watcher is parked as a victim");
        let got = drain(&sink, 200);
        assert_eq!(got, (2..202).collect::<Vec<i64>>());
        w.stop();
    }

    #[test]
    fn compacted_start_revision_cancels() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), StoreConfig::default()).unwrap();
        let w = WatchableStore::new(store.clone()).unwrap();
        write(&store, &w, 0, 10);
        let mut b = store.begin_batch().unwrap();
        let job = b.compact(8).unwrap();
        b.commit(false).unwrap();
        store.run_compaction(job).unwrap();
        let sink = StreamSink::new(4);
        w.watch(opts(b"k1", b""), 3, &sink);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let batch = loop {
            if let Some(b) = try_recv(&sink) {
                break b;
            }
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(batch.compact_revision, 8);
        assert!(batch.events.is_empty());
        assert_eq!(w.watcher_counts(), (0, 0));
        w.stop();
    }

    #[test]
    fn ranges_and_filters() {
        let r = WatchRange::from_request(b"a", b"c");
        assert!(r.contains(b"a") && r.contains(b"bz") && !r.contains(b"c"));
        let r = WatchRange::from_request(b"b", &[0]);
        assert!(r.contains(b"zz") && !r.contains(b"a"));
        let r = WatchRange::from_request(b"", &[0]);
        assert!(r.contains(b"\x00") && r.contains(b"a"));
        let r = WatchRange::from_request(b"k", b"");
        assert!(r.contains(b"k") && !r.contains(b"k1"));
    }
}

#[cfg(test)]
mod model_tests {
    //! Random writes, deletes, multi-key txns and compactions with watchers created at random
    //! revisions over random ranges: every watcher's stream equals the model history filtered
    //! to its range from its start revision, or a prefix of it ended by a compaction cancel
    //! (only when its start revision was compacted).
    use super::*;
    use proptest::prelude::*;
    use retcd_mvcc::StoreConfig;

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8),
        Delete(u8),
        PutTwo(u8, u8),
        Compact(u8),
        Watch(u8, u8, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..5, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            2 => (0u8..5).prop_map(Op::Delete),
            1 => (0u8..5, 0u8..5).prop_map(|(a, b)| Op::PutTwo(a, b)),
            1 => any::<u8>().prop_map(Op::Compact),
            2 => (any::<u8>(), 0u8..5, 0u8..3).prop_map(|(s, k, r)| Op::Watch(s, k, r)),
        ]
    }

    fn key(k: u8) -> Vec<u8> {
        vec![b'k', b'0' + k]
    }

    /// (kind is put, key, mod revision, value)
    type Ev = (bool, Vec<u8>, i64, Vec<u8>);

    struct Probe {
        start: i64,
        range: WatchRange,
        sink: StreamSink,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn watchers_see_the_model_history(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let (store, _) = Store::open(&dir.path().join("db"), StoreConfig::default()).unwrap();
            let w = WatchableStore::new(store.clone()).unwrap();
            let mut live: std::collections::BTreeSet<Vec<u8>> = Default::default();
            let mut history: Vec<Ev> = Vec::new();
            let mut rev = 1i64;
            let mut compacted = -1i64;
            let mut compactions: Vec<i64> = Vec::new();
            let mut probes = Vec::new();
            for op in ops {
                let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
                match op {
                    Op::Put(k, v) => writes.push((key(k), Some(vec![v]))),
                    Op::Delete(k) => writes.push((key(k), None)),
                    Op::PutTwo(a, b) if a != b => {
                        writes.push((key(a), Some(b"x".to_vec())));
                        writes.push((key(b), Some(b"y".to_vec())));
                    }
                    Op::PutTwo(..) => {}
                    Op::Compact(f) => {
                        let at = (i64::from(f) % rev).max(compacted + 1);
                        if at <= rev && at > compacted {
                            let mut b = store.begin_batch().unwrap();
                            let job = b.compact(at).unwrap();
                            b.commit(false).unwrap();
                            store.run_compaction(job).unwrap();
                            compacted = at;
                            compactions.push(at);
                        }
                    }
                    Op::Watch(s, k, r) => {
                        let start = i64::from(s) % (rev + 2);
                        let range = match r {
                            0 => WatchRange::from_request(&key(k), b""),
                            1 => WatchRange::from_request(&key(k), &key(k + 2)),
                            _ => WatchRange::from_request(b"k", &[0]),
                        };
                        let sink = StreamSink::new(2);
                        let opts = WatchOptions { range: range.clone(), no_put: false, no_delete: false };
                        let (_, cur) = w.watch(opts, start, &sink);
                        let start = if start <= 0 { cur + 1 } else { start };
                        probes.push(Probe { start, range, sink });
                    }
                }
                if writes.is_empty() {
                    continue;
                }
                let mut b = store.begin_batch().unwrap();
                let mut t = b.txn();
                let mut evs = Vec::new();
                for (k, v) in &writes {
                    match v {
                        Some(v) => {
                            t.put(k, v, 0).unwrap();
                            live.insert(k.clone());
                            evs.push((true, k.clone(), rev + 1, v.clone()));
                        }
                        None => {
                            if t.delete_range(k, &[]).unwrap() > 0 {
                                live.remove(k);
                                evs.push((false, k.clone(), rev + 1, Vec::new()));
                            }
                        }
                    }
                }
                let res = t.end();
                b.commit(false).unwrap();
                w.notify(res.rev, res.changes);
                if !evs.is_empty() {
                    rev += 1;
                    prop_assert_eq!(res.rev, rev);
                    history.extend(evs);
                }
            }
            // etcd's compaction at revision N also removes the tombstones written at N, so a
            // watcher that catches up after such a compaction never sees those deletes: they
            // are optional, everything else must arrive exactly once and in order.
            let vanishable = |e: &Ev| !e.0 && compactions.contains(&e.2);
            for p in probes {
                let expect: Vec<Ev> = history
                    .iter()
                    .filter(|e| e.2 >= p.start && p.range.contains(&e.1))
                    .cloned()
                    .collect();
                let must = expect.iter().filter(|e| !vanishable(e)).count();
                let mut got: Vec<Ev> = Vec::new();
                let mut canceled = false;
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                let mut quiet_since = std::time::Instant::now();
                loop {
                    if canceled || got.len() >= expect.len() || std::time::Instant::now() > deadline {
                        break;
                    }
                    let have = got.iter().filter(|e| !vanishable(e)).count();
                    if have >= must && quiet_since.elapsed() > Duration::from_millis(200) {
                        break;
                    }
                    match super::tests::try_recv(&p.sink) {
                        Some(b) => {
                            quiet_since = std::time::Instant::now();
                            if b.compact_revision != 0 {
                                canceled = true;
                            }
                            got.extend(b.events.iter().map(|e| {
                                (e.kind == EventType::Put, e.kv.key.clone(), e.kv.mod_revision, e.kv.value.clone())
                            }));
                        }
                        None => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
                let strip = |v: &[Ev]| v.iter().filter(|e| !vanishable(e)).cloned().collect::<Vec<Ev>>();
                let (got_s, expect_s) = (strip(&got), strip(&expect));
                // whatever arrived is in the model, in order
                let mut it = expect.iter();
                prop_assert!(got.iter().all(|g| it.any(|e| e == g)), "not a subsequence: {:?} of {:?}", got, expect);
                if canceled {
                    prop_assert!(p.start < compacted, "canceled though start {} >= compacted {}", p.start, compacted);
                    prop_assert_eq!(&got_s[..], &expect_s[..got_s.len()]);
                } else {
                    prop_assert_eq!(got_s, expect_s);
                }
            }
            w.stop();
        }
    }
}
