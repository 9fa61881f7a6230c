//! The send queue of one watch stream (etcd's `watchStream.ch`): every watcher of the
//! stream delivers into it, and the stream's single send loop drains it. Bounded by the
//! number of queued events: a watcher whose batch does not fit becomes a victim in the
//! watchable store and catches up later from the backend; pushing never waits.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::{WatchBatch, WatcherId};

/// What a stream's send loop receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Events for one watcher (or its compaction notice).
    Batch(WatcherId, WatchBatch),
    /// The watcher is synced and has every event up to this revision in the queue before
    /// this item (a progress notification may claim it).
    Progress(WatcherId, i64),
}

/// Why a push failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue holds its capacity of events: retry later.
    Full,
    /// The stream is gone: drop the watcher.
    Closed,
}

struct Queue {
    items: VecDeque<Delivery>,
    /// Events in `items` (what the capacity bounds).
    events: usize,
    closed: bool,
}

struct Inner {
    q: Mutex<Queue>,
    ready: Notify,
    capacity: usize,
}

/// A stream's send queue. Cloning shares it.
#[derive(Clone)]
pub struct StreamSink {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSink")
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

impl StreamSink {
    /// A queue that accepts a batch while it holds fewer than `capacity_events` events (so
    /// one batch may overshoot it; a batch is never split).
    pub fn new(capacity_events: usize) -> StreamSink {
        StreamSink {
            inner: Arc::new(Inner {
                q: Mutex::new(Queue {
                    items: VecDeque::new(),
                    events: 0,
                    closed: false,
                }),
                ready: Notify::new(),
                capacity: capacity_events.max(1),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.inner.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn push_batch(&self, id: WatcherId, batch: WatchBatch) -> Result<(), PushError> {
        let mut q = self.lock();
        if q.closed {
            return Err(PushError::Closed);
        }
        if q.events >= self.inner.capacity {
            return Err(PushError::Full);
        }
        q.events += batch.events.len();
        q.items.push_back(Delivery::Batch(id, batch));
        drop(q);
        self.inner.ready.notify_one();
        Ok(())
    }

    pub(crate) fn push_progress(&self, id: WatcherId, rev: i64) -> Result<(), PushError> {
        let mut q = self.lock();
        if q.closed {
            return Err(PushError::Closed);
        }
        q.items.push_back(Delivery::Progress(id, rev));
        drop(q);
        self.inner.ready.notify_one();
        Ok(())
    }

    /// Takes up to `max` queued items, oldest first (never waits).
    pub fn drain(&self, max: usize) -> Vec<Delivery> {
        let mut q = self.lock();
        let n = q.items.len().min(max);
        let out: Vec<Delivery> = q.items.drain(..n).collect();
        let taken: usize = out
            .iter()
            .map(|d| match d {
                Delivery::Batch(_, b) => b.events.len(),
                Delivery::Progress(..) => 0,
            })
            .sum();
        q.events -= taken;
        out
    }

    /// Waits until the queue may hold something (spurious wake-ups possible: `drain` may
    /// then return nothing).
    pub async fn ready(&self) {
        if !self.lock().items.is_empty() {
            return;
        }
        self.inner.ready.notified().await;
    }

    /// The stream is gone: later pushes fail with `Closed` and the store drops the
    /// stream's watchers as it meets them. Queued items are discarded.
    pub fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.items.clear();
        q.events = 0;
    }

    /// Events queued now.
    pub fn queued_events(&self) -> usize {
        self.lock().events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> WatchBatch {
        let events: Vec<retcd_mvcc::Event> = (0..n)
            .map(|i| retcd_mvcc::Event {
                kind: retcd_mvcc::EventType::Put,
                kv: retcd_mvcc::KeyValue {
                    key: b"k".to_vec(),
                    create_revision: 1,
                    mod_revision: i as i64 + 2,
                    version: 1,
                    value: Vec::new(),
                    lease: 0,
                },
            })
            .collect();
        WatchBatch {
            events: events.into(),
            revision: n as i64 + 1,
            compact_revision: 0,
        }
    }

    #[test]
    fn bounded_by_events_never_splitting_a_batch() {
        let sink = StreamSink::new(3);
        let w = WatcherId(1);
        assert_eq!(sink.push_batch(w, batch(2)), Ok(()));
        // 2 < 3: accepted whole, overshooting the capacity
        assert_eq!(sink.push_batch(w, batch(5)), Ok(()));
        assert_eq!(sink.push_batch(w, batch(1)), Err(PushError::Full));
        // progress notices are not events: always taken
        assert_eq!(sink.push_progress(w, 9), Ok(()));
        assert_eq!(sink.queued_events(), 7);
        let got = sink.drain(2);
        assert_eq!(got.len(), 2);
        assert_eq!(sink.queued_events(), 0);
        assert_eq!(sink.drain(10), vec![Delivery::Progress(w, 9)]);
        assert_eq!(sink.push_batch(w, batch(1)), Ok(()));
        sink.close();
        assert_eq!(sink.push_batch(w, batch(1)), Err(PushError::Closed));
        assert_eq!(sink.push_progress(w, 9), Err(PushError::Closed));
        assert!(sink.drain(10).is_empty());
    }

    #[tokio::test]
    async fn ready_wakes_on_push() {
        let sink = StreamSink::new(10);
        let s2 = sink.clone();
        let waiter = tokio::spawn(async move {
            s2.ready().await;
            s2.drain(10).len()
        });
        tokio::task::yield_now().await;
        sink.push_batch(WatcherId(1), batch(1)).unwrap();
        assert_eq!(waiter.await.unwrap(), 1);
    }
}
