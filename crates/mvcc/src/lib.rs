//! retcd's multi-version key-value store: etcd v3's `server/mvcc` package (revisions,
//! key index, store, read/write transactions, compaction) on a [redb] backend file.
//!
//! Every change gets a [`Revision`]; the store keeps every key's history of revisions in
//! an in-memory key index and the values in the backend under their revision, so that
//! any revision not yet compacted can be read. The apply loop of the server writes
//! through a [`Batch`] (one redb write transaction holding several etcd write txns and
//! the raft `consistent_index`), readers on any thread read through a [`ReadTxn`]
//! snapshot, and [`Store::run_compaction`] removes compacted revisions in the
//! background. The semantics (revision numbering, ranges, generations and tombstones,
//! compaction, the `Compacted`/`FutureRev` errors) are etcd 3.4/3.5's.
//!
//! This crate must not depend on tonic, prost, openraft or any other retcd crate: it
//! knows nothing of gRPC, raft or leases (a lease is an opaque `i64` stored with the
//! value). The backend layout is documented in `docs/backend.md`.
//!
//! # Layout
//!
//! * `revision` — [`Revision`] `(main, sub)` and its 16-byte backend key.
//! * `key_index` — one key's history: generations, tombstones, compaction (etcd's
//!   `key_index.go`, with a worked example).
//! * `index` — the tree of all key indexes, range queries over it (etcd's `index.go`).
//! * `kv` — [`KeyValue`], [`Event`], and the byte layout of a backend record.
//! * `backend` — the redb tables and meta names.
//! * `kvstore` — [`Store`]: open/rebuild, published revisions, the locking scheme
//!   (etcd's `kvstore.go`).
//! * `kvstore_txn` — [`ReadTxn`], [`Batch`], [`TxnWrite`] (etcd's `kvstore_txn.go`).
//! * `kvstore_compaction` — [`CompactionJob`] and its paced backend deletion (etcd's
//!   `kvstore_compaction.go`).
//! * `kvstore_defrag` — [`Store::defragment`]: the backend rewritten into a fresh file
//!   while reads and writes go on (etcd's `backend.Defrag`, without its stall).
//! * `kvstore_snapshot` — whole-store images ([`SnapshotImage`], restore,
//!   [`inspect_snapshot`]) and the state hash ([`ReadTxn::hash_state`]).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod backend;
mod index;
mod key_index;
mod kv;
mod kvstore;
mod kvstore_compaction;
mod kvstore_defrag;
mod kvstore_snapshot;
mod kvstore_txn;
mod revision;

#[cfg(test)]
mod model_tests;

pub use kv::{Event, EventType, KeyValue};
pub use kvstore::{Store, StoreConfig};
pub use kvstore_compaction::CompactionJob;
pub use kvstore_defrag::DefragStats;
pub use kvstore_snapshot::{LOCAL_APP_META, SNAPSHOT_MAGIC, SnapshotImage, SnapshotInfo, inspect_snapshot};
pub use kvstore_txn::{Batch, RangeOptions, RangeResult, ReadTxn, TxnResult, TxnWrite};
pub use revision::Revision;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MvccError {
    /// The revision asked for is below the compaction revision.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// The revision asked for is above the current revision.
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    /// The backend failed (I/O, redb); the store must not be used further.
    #[error("mvcc: backend error: {0}")]
    Backend(String),
    /// The backend file is open in another [`Store`] (redb's lock: another process, such as
    /// a running server, has it); opening may succeed once that one is closed.
    #[error("mvcc: backend file in use: Database already open. Cannot acquire lock.")]
    InUse,
    /// Stored data could not be decoded or contradicts the index.
    #[error("mvcc: corrupt backend: {0}")]
    Corrupt(String),
}

#[cfg(test)]
mod send_sync {
    use super::*;

    fn send<T: Send>() {}
    fn sync<T: Sync>() {}

    #[test]
    fn thread_safety() {
        send::<Store>();
        sync::<Store>();
        send::<ReadTxn>();
        send::<Batch<'static>>();
        send::<CompactionJob>();
        send::<MvccError>();
    }
}
