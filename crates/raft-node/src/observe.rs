//! Measurements the server turns into etcd's metrics (`etcd_disk_wal_fsync_duration_seconds`,
//! `etcd_network_peer_round_trip_time_seconds`), handed out through observers the server
//! installs once. Without observers nothing is measured.

use std::sync::OnceLock;
use std::time::Duration;

/// Receives the measurements; installed with [`set_observer`].
pub trait Observer: Send + Sync + 'static {
    /// A batch of appended log records became durable: how long from the flush request to
    /// the fsync's completion (the WAL worker batches concurrent flushes into one fsync).
    fn wal_fsync(&self, took: Duration);
    /// An append-entries round trip (heartbeats included) to peer `to` succeeded.
    fn peer_round_trip(&self, to: u64, took: Duration);
}

static OBSERVER: OnceLock<Box<dyn Observer>> = OnceLock::new();

/// Installs the process's observer; later calls are ignored (one per process).
pub fn set_observer(o: Box<dyn Observer>) {
    let _ = OBSERVER.set(o);
}

pub(crate) fn observer() -> Option<&'static dyn Observer> {
    OBSERVER.get().map(|b| &**b)
}
