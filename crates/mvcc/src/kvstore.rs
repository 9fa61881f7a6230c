//! The store (etcd's `server/mvcc/kvstore.go`): opening the backend, rebuilding the key
//! index, the published revisions and the locking scheme.
//!
//! # Concurrency
//!
//! * One writer at a time: [`Store::begin_batch`] takes the writer slot (a Send-able
//!   mutex) and then redb's write lock; the slot is held until the batch is committed
//!   or dropped, so the revision a batch starts from is always the published one.
//! * A batch writes its changes into its redb `WriteTransaction` and updates the key
//!   index immediately (holding the index write lock only for the index update), but
//!   the published current revision (and compaction revision, consistent index) only
//!   moves after the redb commit succeeded. A batch that is dropped or fails to commit
//!   rolls the index back to the published revision.
//! * Readers ([`Store::read`]) take the index read lock, read the published revision
//!   `R` and open a redb read transaction before releasing it. Every revision `<= R`
//!   was committed before `R` was published, so the snapshot contains every revision
//!   the index will give the reader, except revisions removed by a compaction, which
//!   leave the index before they leave the backend.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable};

use crate::MvccError;
use crate::backend::{
    BackendDb, KEY_TABLE, LEASE_TABLE, META_CONSISTENT_INDEX, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT,
    META_TABLE, META_TERM, app_meta_name, read_i64, read_u64,
};
use crate::index::TreeIndex;
use crate::kv::Record;
use crate::kvstore_compaction::CompactionJob;
use crate::kvstore_txn::{Batch, ReadTxn};
use crate::revision::Revision;

/// Tuning of a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Revisions examined per backend write transaction while a compaction deletes old
    /// revisions (etcd's `compaction-batch-limit`), and keys compacted per index lock hold.
    pub compaction_batch_limit: usize,
    /// Pause between two compaction batches, so that writers get the redb write lock.
    pub compaction_sleep: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compaction_batch_limit: 1000,
            compaction_sleep: Duration::from_millis(10),
        }
    }
}

/// The key index and the revisions readers may use, under one lock.
pub(crate) struct IndexState {
    pub(crate) tree: TreeIndex,
    /// Published current revision: every revision up to it is committed.
    pub(crate) current_rev: i64,
    /// Published compaction revision (0: never compacted).
    pub(crate) compact_rev: i64,
}

/// A blocking, Send-able single-writer slot (a `MutexGuard` would make [`Batch`] !Send).
#[derive(Default)]
pub(crate) struct WriterSlot {
    state: Mutex<SlotState>,
    freed: Condvar,
}

#[derive(Default)]
struct SlotState {
    busy: bool,
    /// The thread that took the slot.
    owner: Option<std::thread::ThreadId>,
    /// Number of releases so far.
    releases: u64,
}

/// Holding the writer slot; released on drop.
pub(crate) struct WriterToken<'a>(&'a WriterSlot);

impl WriterSlot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self, mut st: MutexGuard<'_, SlotState>) -> WriterToken<'_> {
        st.busy = true;
        st.owner = Some(std::thread::current().id());
        WriterToken(self)
    }

    pub(crate) fn acquire(&self) -> WriterToken<'_> {
        let mut st = self.lock();
        while st.busy {
            st = self.freed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        self.take(st)
    }

    pub(crate) fn try_acquire(&self) -> Option<WriterToken<'_>> {
        let st = self.lock();
        if st.busy {
            return None;
        }
        Some(self.take(st))
    }

    /// Waits until the batch open now (if any) is committed or dropped. Fails instead
    /// of deadlocking if that batch was opened by the calling thread.
    pub(crate) fn wait_current_batch(&self) -> Result<(), MvccError> {
        let mut st = self.lock();
        if !st.busy {
            return Ok(());
        }
        if st.owner == Some(std::thread::current().id()) {
            return Err(MvccError::Backend(
                "a compaction job must be run after its batch is committed, not while it is open".into(),
            ));
        }
        let seen = st.releases;
        while st.busy && st.releases == seen {
            st = self.freed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        Ok(())
    }
}

impl Drop for WriterToken<'_> {
    fn drop(&mut self) {
        {
            let mut st = self.0.lock();
            st.busy = false;
            st.owner = None;
            st.releases = st.releases.wrapping_add(1);
        }
        self.0.freed.notify_all();
    }
}

pub(crate) struct Shared {
    pub(crate) db: BackendDb,
    pub(crate) path: PathBuf,
    /// Serialises whole-backend maintenance (defragmentation, snapshot install) with the
    /// backend half of compaction, which the former must not interleave with. Taken
    /// before the writer slot, never while holding it.
    pub(crate) maintenance: Mutex<()>,
    pub(crate) cfg: StoreConfig,
    index: RwLock<IndexState>,
    /// Mirrors of `IndexState`'s revisions (written under the index write lock) for
    /// lock-free getters.
    pub(crate) current_rev: AtomicI64,
    pub(crate) compact_rev: AtomicI64,
    pub(crate) consistent_index: AtomicU64,
    pub(crate) consistent_term: AtomicU64,
    pub(crate) writer: WriterSlot,
    pub(crate) size_in_use: Mutex<Option<(Instant, u64)>>,
    /// The backend file's size, read after each commit that may grow it (so the quota
    /// check before every write is an atomic load, not a `stat`).
    pub(crate) file_size: AtomicU64,
    /// Live keys with a lease found while opening (taken once by the lessor's restore).
    leased_at_open: Mutex<Option<std::collections::HashMap<Vec<u8>, i64>>>,
}

/// What scanning the key table gives.
pub(crate) struct Loaded {
    pub(crate) tree: TreeIndex,
    /// Highest main revision found.
    pub(crate) max_main: i64,
    pub(crate) records: u64,
    /// key -> lease of its latest put, for live keys with a lease.
    pub(crate) leased: std::collections::HashMap<Vec<u8>, i64>,
}

/// Rebuilds the key index by scanning the key table in revision order.
pub(crate) fn load_index(rtx: &redb::ReadTransaction) -> Result<Loaded, MvccError> {
    let mut tree = TreeIndex::default();
    let mut max_main = 0i64;
    let mut records = 0u64;
    let mut leased: std::collections::HashMap<Vec<u8>, i64> = std::collections::HashMap::new();
    let keys = rtx.open_table(KEY_TABLE)?;
    for item in keys.iter()? {
        let (k, v) = item?;
        let rev = Revision::from_bytes(k.value());
        let rec = Record::decode(rev, v.value())?;
        if rec.tombstone || rec.lease == 0 {
            if !leased.is_empty() {
                leased.remove(rec.key);
            }
        } else {
            leased.insert(rec.key.to_vec(), rec.lease);
        }
        tree.restore(rec.key, rev, rec.tombstone, rec.create_revision, rec.version)?;
        max_main = max_main.max(rev.main);
        records += 1;
    }
    Ok(Loaded {
        tree,
        max_main,
        records,
        leased,
    })
}

impl Shared {
    pub(crate) fn set_leased_at_open(&self, leased: std::collections::HashMap<Vec<u8>, i64>) {
        *self.leased_at_open.lock().unwrap_or_else(PoisonError::into_inner) = Some(leased);
    }

    pub(crate) fn index_read(&self) -> RwLockReadGuard<'_, IndexState> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn index_write(&self) -> RwLockWriteGuard<'_, IndexState> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes a committed batch's revisions (under the index write lock, so a reader
    /// sees the current and compaction revisions of the same commit).
    pub(crate) fn publish(&self, current_rev: i64, compact_rev: Option<i64>) {
        let mut st = self.index_write();
        st.current_rev = current_rev;
        self.current_rev.store(current_rev, Ordering::Release);
        if let Some(c) = compact_rev
            && c > st.compact_rev
        {
            st.compact_rev = c;
            self.compact_rev.store(c, Ordering::Release);
        }
    }

    /// Reads the backend file's size again (after a commit, a defragmentation, a restore).
    pub(crate) fn refresh_file_size(&self) {
        let len = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        self.file_size.store(len, Ordering::Release);
    }

    /// Forgets the index entries of an uncommitted batch.
    pub(crate) fn rollback_index(&self) {
        let mut st = self.index_write();
        let published = st.current_rev;
        st.tree.rollback(published);
        tracing::warn!(
            revision = published,
            "mvcc: write batch not committed; index rolled back"
        );
    }
}

/// etcd's MVCC key-value store on a redb backend. Cheap to clone; all clones share
/// the same backend and index.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("current_revision", &self.current_revision())
            .field("compact_revision", &self.compact_revision())
            .field("consistent_index", &self.consistent_index())
            .finish_non_exhaustive()
    }
}

/// How long a computed [`Store::db_size_in_use`] is reused.
const SIZE_IN_USE_TTL: Duration = Duration::from_secs(1);

impl Store {
    /// Opens (or creates) the backend file at `path` (e.g. `<data-dir>/member/snap/db`), rebuilds the key index by scanning the backend, restores current/compact revisions and consistent_index. Returns an unfinished compaction, if any, to be run by the caller.
    /// Fails with [`MvccError::InUse`] while another `Store` (another process: a running
    /// server) has the file open.
    pub fn open(path: &Path, cfg: StoreConfig) -> Result<(Store, Option<CompactionJob>), MvccError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| MvccError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let db = Database::create(path)?;
        {
            let wtx = db.begin_write()?;
            wtx.open_table(KEY_TABLE)?;
            wtx.open_table(META_TABLE)?;
            wtx.open_table(LEASE_TABLE)?;
            wtx.commit()?;
        }

        let rtx = db.begin_read()?;
        let meta = rtx.open_table(META_TABLE)?;
        let consistent_index = read_u64(&meta, META_CONSISTENT_INDEX)?.unwrap_or(0);
        let consistent_term = read_u64(&meta, META_TERM)?.unwrap_or(0);
        let scheduled = read_i64(&meta, META_SCHEDULED_COMPACT)?.unwrap_or(-1);
        let finished = read_i64(&meta, META_FINISHED_COMPACT)?.unwrap_or(-1);

        let Loaded {
            tree,
            max_main,
            records,
            leased,
        } = load_index(&rtx)?;
        drop(meta);
        drop(rtx);

        let compact_rev = scheduled.max(finished);
        // Revisions up to the compaction revision may all have been deleted.
        let current_rev = max_main.max(compact_rev).max(1);
        let job = (scheduled > finished).then(|| CompactionJob::new(scheduled));
        tracing::info!(
            path = %path.display(),
            current_revision = current_rev,
            compact_revision = compact_rev,
            consistent_index,
            keys = tree.len(),
            records,
            unfinished_compaction = job.as_ref().map(CompactionJob::revision),
            "mvcc: store opened"
        );

        let shared = Shared {
            db: BackendDb::new(db),
            path: path.to_path_buf(),
            maintenance: Mutex::new(()),
            cfg,
            index: RwLock::new(IndexState {
                tree,
                current_rev,
                compact_rev,
            }),
            current_rev: AtomicI64::new(current_rev),
            compact_rev: AtomicI64::new(compact_rev),
            consistent_index: AtomicU64::new(consistent_index),
            consistent_term: AtomicU64::new(consistent_term),
            writer: WriterSlot::default(),
            size_in_use: Mutex::new(None),
            file_size: AtomicU64::new(0),
            leased_at_open: Mutex::new(Some(leased)),
        };
        shared.refresh_file_size();
        Ok((
            Store {
                inner: Arc::new(shared),
            },
            job,
        ))
    }

    /// The published current revision (1 for an empty store).
    pub fn current_revision(&self) -> i64 {
        self.inner.current_rev.load(Ordering::Acquire)
    }

    /// The published compaction revision (etcd's `compactMainRev`; -1 if never
    /// compacted). Reads below it fail with [`MvccError::Compacted`].
    pub fn compact_revision(&self) -> i64 {
        self.inner.compact_rev.load(Ordering::Acquire)
    }

    /// The consistent index of the last committed batch (durable or not).
    pub fn consistent_index(&self) -> u64 {
        self.inner.consistent_index.load(Ordering::Acquire)
    }

    /// The raft term stored with [`consistent_index`](Self::consistent_index).
    pub fn consistent_term(&self) -> u64 {
        self.inner.consistent_term.load(Ordering::Acquire)
    }

    /// Every blob stored by [`Batch::set_meta`] whose name starts with `prefix`, as
    /// (name, blob) in name order (committed state).
    pub fn metas_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, MvccError> {
        let rtx = self.inner.db.begin_read()?;
        let meta = rtx.open_table(META_TABLE)?;
        let from = app_meta_name(prefix);
        let mut out = Vec::new();
        for item in meta.range(from.as_str()..)? {
            let (k, v) = item?;
            let Some(name) = k.value().strip_prefix(crate::backend::META_APP_PREFIX) else {
                break;
            };
            if !name.starts_with(prefix) {
                break;
            }
            out.push((name.to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// A blob stored by [`Batch::set_meta`] (committed state).
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, MvccError> {
        let rtx = self.inner.db.begin_read()?;
        let meta = rtx.open_table(META_TABLE)?;
        let value = meta.get(app_meta_name(name).as_str())?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// The live keys that carry a lease, as found when the store was opened, in key
    /// order (etcd's lessor restore re-attaches them). Empty after the first call.
    pub fn take_leased_keys_at_open(&self) -> Vec<(Vec<u8>, i64)> {
        let map = self
            .inner
            .leased_at_open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        let mut v: Vec<(Vec<u8>, i64)> = map.into_iter().collect();
        v.sort();
        v
    }

    /// Every lease record in the committed state (etcd's `lease` bucket), by id bits.
    pub fn leases(&self) -> Result<Vec<(i64, Vec<u8>)>, MvccError> {
        let rtx = self.inner.db.begin_read()?;
        let t = rtx.open_table(LEASE_TABLE)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, v) = item?;
            out.push((k.value() as i64, v.value().to_vec()));
        }
        Ok(out)
    }

    /// A consistent snapshot at the published current revision (see the module docs).
    /// A failure to open the redb read transaction is reported by the snapshot's reads.
    pub fn read(&self) -> ReadTxn {
        ReadTxn::open(self.inner.clone())
    }

    /// Starts the write batch: waits for the previous batch to finish and for redb's
    /// write lock (held between compaction batches too).
    pub fn begin_batch(&self) -> Result<Batch<'_>, MvccError> {
        Batch::begin(&self.inner)
    }

    /// Keys in the key index (live ones and deleted ones whose history is not compacted
    /// yet; etcd's `keysGauge` counts the same).
    pub fn key_count(&self) -> usize {
        self.inner.index_read().tree.len()
    }

    /// Size of the backend file in bytes, as of the last commit.
    pub fn db_size(&self) -> u64 {
        self.inner.file_size.load(Ordering::Acquire)
    }

    /// Bytes of the backend file in use (allocated pages), best effort: computed from
    /// redb's statistics at most once per second and only when no write batch is open
    /// (it needs redb's write lock); otherwise the last value computed (or the file size).
    pub fn db_size_in_use(&self) -> u64 {
        let size = self.db_size();
        let mut cache = self
            .inner
            .size_in_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((at, v)) = *cache
            && at.elapsed() < SIZE_IN_USE_TTL
        {
            return v.min(size);
        }
        let fallback = cache.map_or(size, |(_, v)| v).min(size);
        let Some(_token) = self.inner.writer.try_acquire() else {
            return fallback;
        };
        let computed = (|| -> Result<u64, MvccError> {
            let wtx = self.inner.db.begin_write()?;
            let stats = wtx.stats()?;
            wtx.abort()?;
            let page = u64::try_from(stats.page_size()).unwrap_or(u64::MAX);
            Ok(stats.allocated_pages().saturating_mul(page))
        })();
        match computed {
            Ok(v) => {
                *cache = Some((Instant::now(), v));
                v.min(size)
            }
            Err(e) => {
                tracing::warn!(error = %e, "mvcc: computing the backend size in use failed");
                fallback
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RangeOptions;

    fn all(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
        store
            .read()
            .range(b"", b"\0", RangeOptions::default())
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect()
    }

    #[test]
    fn empty_store_is_at_revision_one() {
        let dir = tempfile::tempdir().unwrap();
        let (store, job) = Store::open(&dir.path().join("member/snap/db"), StoreConfig::default()).unwrap();
        assert!(job.is_none());
        assert_eq!(store.current_revision(), 1);
        assert_eq!(store.compact_revision(), -1);
        assert_eq!(store.consistent_index(), 0);
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        assert_eq!(t.put(b"a", b"1", 0).unwrap(), 2);
        t.end();
        b.commit(true).unwrap();
        assert_eq!(store.current_revision(), 2);
        assert!(store.db_size() > 0);
        let in_use = store.db_size_in_use();
        assert!(in_use > 0 && in_use <= store.db_size());
    }

    #[test]
    fn a_file_open_elsewhere_is_in_use_until_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
        assert!(matches!(
            Store::open(&path, StoreConfig::default()),
            Err(MvccError::InUse)
        ));
        drop(store);
        assert!(Store::open(&path, StoreConfig::default()).is_ok());
    }

    #[test]
    fn lease_table_and_leased_keys_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
            assert!(store.take_leased_keys_at_open().is_empty());
            let mut b = store.begin_batch().unwrap();
            b.put_lease(7, b"seven").unwrap();
            b.put_lease(-3, b"minus three").unwrap();
            b.put_lease(9, b"nine").unwrap();
            let mut t = b.txn();
            t.put(b"a", b"1", 7).unwrap();
            t.put(b"b", b"1", 7).unwrap();
            t.put(b"c", b"1", 9).unwrap();
            t.put(b"d", b"1", 0).unwrap();
            t.end();
            let mut t = b.txn();
            t.put(b"b", b"2", 0).unwrap(); // detached by a re-put
            t.delete_range(b"c", b"").unwrap(); // deleted
            t.put(b"d", b"2", -3).unwrap(); // attached by a re-put
            t.end();
            b.delete_lease(9).unwrap();
            b.commit(true).unwrap();
        }
        let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
        let mut leases = store.leases().unwrap();
        leases.sort();
        assert_eq!(
            leases,
            vec![(-3, b"minus three".to_vec()), (7, b"seven".to_vec())]
        );
        assert_eq!(
            store.take_leased_keys_at_open(),
            vec![(b"a".to_vec(), 7), (b"d".to_vec(), -3)]
        );
        assert!(store.take_leased_keys_at_open().is_empty());
    }

    #[test]
    fn reopen_after_durable_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
            let mut b = store.begin_batch().unwrap();
            let mut t = b.txn();
            t.put(b"a", b"1", 7).unwrap();
            t.put(b"b", b"2", 0).unwrap();
            t.end();
            let mut t = b.txn();
            t.delete_range(b"b", b"").unwrap();
            t.end();
            b.set_consistent_index(42, 3).unwrap();
            b.set_meta("raft", b"state").unwrap();
            b.commit(true).unwrap();
            assert_eq!(store.consistent_index(), 42);
        }
        let (store, job) = Store::open(&path, StoreConfig::default()).unwrap();
        assert!(job.is_none());
        assert_eq!(store.current_revision(), 3);
        assert_eq!(store.consistent_index(), 42);
        assert_eq!(store.consistent_term(), 3);
        assert_eq!(store.meta("raft").unwrap(), Some(b"state".to_vec()));
        assert_eq!(store.meta("other").unwrap(), None);
        let mut b = store.begin_batch().unwrap();
        for (n, v) in [("u/a", "1"), ("u/b", "2"), ("uu", "3"), ("t", "4")] {
            b.set_meta(n, v.as_bytes()).unwrap();
        }
        b.delete_meta("u/a").unwrap();
        b.delete_meta("u/none").unwrap();
        b.commit(true).unwrap();
        assert_eq!(
            store.metas_with_prefix("u/").unwrap(),
            vec![("u/b".to_string(), b"2".to_vec())]
        );
        assert_eq!(store.metas_with_prefix("u").unwrap().len(), 2);
        assert_eq!(all(&store), vec![(b"a".to_vec(), b"1".to_vec())]);
        let kv = store
            .read()
            .range(b"a", b"", RangeOptions::default())
            .unwrap()
            .kvs;
        assert_eq!(kv[0].lease, 7);
        assert_eq!(
            (kv[0].create_revision, kv[0].mod_revision, kv[0].version),
            (2, 2, 1)
        );
        // Writes continue from the restored revision.
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        assert_eq!(t.put(b"b", b"3", 0).unwrap(), 4);
        t.end();
        b.commit(false).unwrap();
        let kv = store
            .read()
            .range(b"b", b"", RangeOptions::default())
            .unwrap()
            .kvs;
        assert_eq!((kv[0].create_revision, kv[0].version), (4, 1));
    }

    /// A crash after a non-durable commit: the file as it is on disk while the store
    /// is still open (copied) holds only the last durable commit.
    #[test]
    fn reopen_after_non_durable_commit_rolls_back_to_last_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let crashed = dir.path().join("crashed");
        let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        t.put(b"a", b"durable", 0).unwrap();
        t.end();
        b.set_consistent_index(10, 1).unwrap();
        b.commit(true).unwrap();
        for i in 0..3u8 {
            let mut b = store.begin_batch().unwrap();
            let mut t = b.txn();
            t.put(&[b'x', i], b"volatile", 0).unwrap();
            t.end();
            b.set_consistent_index(11 + u64::from(i), 1).unwrap();
            b.commit(false).unwrap();
        }
        assert_eq!(store.current_revision(), 5);
        assert_eq!(store.consistent_index(), 13);
        assert_eq!(all(&store).len(), 4);
        std::fs::copy(&path, &crashed).unwrap();
        drop(store);

        let (store, _) = Store::open(&crashed, StoreConfig::default()).unwrap();
        assert_eq!(store.current_revision(), 2);
        assert_eq!(store.consistent_index(), 10);
        assert_eq!(all(&store), vec![(b"a".to_vec(), b"durable".to_vec())]);

        // A clean close keeps the non-durable commits.
        let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
        assert_eq!(store.current_revision(), 5);
        assert_eq!(store.consistent_index(), 13);
    }

    #[test]
    fn corrupt_record_is_reported_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
            let wtx = store.inner.db.begin_write().unwrap();
            {
                let mut t = wtx.open_table(KEY_TABLE).unwrap();
                t.insert(&Revision::new(2, 0).to_bytes(), &b"junk"[..]).unwrap();
            }
            wtx.commit().unwrap();
        }
        match Store::open(&path, StoreConfig::default()) {
            Err(MvccError::Corrupt(_)) => {}
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
}
