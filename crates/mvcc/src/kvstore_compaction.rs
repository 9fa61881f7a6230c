//! Compaction (etcd's `server/mvcc/kvstore_compaction.go` and the compaction half of
//! `kvstore.go`).
//!
//! [`Batch::compact`](crate::Batch::compact) only records the compaction: it writes
//! `scheduledCompactRev` in the batch and, once the batch is committed, readers below
//! the compaction revision get [`MvccError::Compacted`]. The returned [`CompactionJob`]
//! does the rest when run with [`Store::run_compaction`], as etcd 3.5's scheduled
//! compaction does:
//!
//! 1. compacts the key index a slice of keys at a time (short index write-lock holds),
//!    collecting the revisions at or below the compaction revision still referenced
//!    (the *keep* set);
//! 2. deletes every other revision at or below the compaction revision from the
//!    backend, `compaction_batch_limit` revisions per redb write transaction with a
//!    `compaction_sleep` pause between transactions so that the apply loop keeps getting
//!    the write lock; the last transaction records `finishedCompactRev` and is durable.
//!
//! The index forgets a revision before the backend deletes it, so a reader (whose
//! snapshot was opened while the revision was still in the backend, or who no longer
//! finds it in the index) never misses a value. A compaction interrupted by a crash is
//! found on open (`scheduledCompactRev > finishedCompactRev`) and returned as a job.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use redb::{Durability, ReadableTable};

use crate::MvccError;
use crate::backend::{KEY_TABLE, META_FINISHED_COMPACT, META_TABLE, read_i64};
use crate::kvstore::Store;
use crate::revision::{RevBytes, Revision};

/// A recorded compaction still to be carried out by [`Store::run_compaction`]: compact
/// the key index at [`revision`](Self::revision) and delete from the backend the
/// revisions at or below it that the index no longer references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionJob {
    rev: i64,
}

impl CompactionJob {
    pub(crate) fn new(rev: i64) -> Self {
        CompactionJob { rev }
    }

    /// The compaction revision.
    pub fn revision(&self) -> i64 {
        self.rev
    }
}

/// How far [`Store::run_compaction_batches`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    Finished,
    Interrupted,
}

impl Store {
    /// Runs a compaction job to completion: compacts the in-memory index, then deletes
    /// the compacted revisions from the backend in paced batches and records
    /// `finishedCompactRev`. Blocking (sleeps between batches): call it on a blocking
    /// thread. If the batch that recorded the compaction is still open on another
    /// thread, waits for it to finish first; fails if that batch was not committed.
    pub fn run_compaction(&self, job: CompactionJob) -> Result<(), MvccError> {
        self.run_compaction_batches(&job, None).map(drop)
    }

    /// [`run_compaction`](Self::run_compaction) stopping after `max_batches` backend
    /// transactions (to simulate a crash in tests).
    pub(crate) fn run_compaction_batches(
        &self,
        job: &CompactionJob,
        max_batches: Option<usize>,
    ) -> Result<Progress, MvccError> {
        let shared = &*self.inner;
        let at = job.rev;
        if at > shared.compact_rev.load(Ordering::Acquire) {
            // The batch recording it may still be committing on another thread.
            shared.writer.wait_current_batch()?;
        }
        if at > shared.compact_rev.load(Ordering::Acquire) {
            return Err(MvccError::Backend(format!(
                "compaction at revision {at} was never committed"
            )));
        }
        {
            let rtx = shared.db.begin_read()?;
            let meta = rtx.open_table(META_TABLE)?;
            if read_i64(&meta, META_FINISHED_COMPACT)?.is_some_and(|f| f >= at) {
                return Ok(Progress::Finished);
            }
        }
        let limit = shared.cfg.compaction_batch_limit.max(1);
        let started = std::time::Instant::now();

        // 1. The index, a slice of keys per write-lock hold.
        let mut keep: HashSet<Revision> = HashSet::new();
        let mut resume: Option<Vec<u8>> = None;
        loop {
            let next = shared
                .index_write()
                .tree
                .compact_chunk(at, resume.as_deref(), limit, &mut keep);
            match next {
                Some(k) => resume = Some(k),
                None => break,
            }
        }
        tracing::info!(revision = at, kept = keep.len(), "mvcc: index compacted");

        // 2. The backend, in paced batches.
        let end = Revision::new(at, i64::MAX).to_bytes();
        let mut start: RevBytes = Revision::new(0, 0).to_bytes();
        let mut deleted = 0u64;
        let mut batches = 0usize;
        loop {
            if max_batches.is_some_and(|m| batches >= m) {
                return Ok(Progress::Interrupted);
            }
            // not while a defragmentation copies the backend (it would keep rows deleted
            // behind its cursor)
            let maintenance = shared
                .maintenance
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut wtx = shared.db.begin_write()?;
            let done = {
                let mut table = wtx.open_table(KEY_TABLE)?;
                let mut doomed: Vec<RevBytes> = Vec::new();
                let mut scanned = 0usize;
                let mut last = None;
                for item in table.range::<&RevBytes>(&start..=&end)?.take(limit) {
                    let (k, _) = item?;
                    let key = *k.value();
                    if !keep.contains(&Revision::from_bytes(&key)) {
                        doomed.push(key);
                    }
                    scanned += 1;
                    last = Some(key);
                }
                for key in &doomed {
                    table.remove(key)?;
                }
                deleted += doomed.len() as u64;
                match last {
                    Some(last) if scanned >= limit => {
                        let r = Revision::from_bytes(&last);
                        start = Revision::new(r.main, r.sub.saturating_add(1)).to_bytes();
                        false
                    }
                    _ => true,
                }
            };
            if done {
                let mut meta = wtx.open_table(META_TABLE)?;
                let finished = read_i64(&meta, META_FINISHED_COMPACT)?.unwrap_or(0).max(at);
                meta.insert(META_FINISHED_COMPACT, &finished.to_be_bytes()[..])?;
                drop(meta);
                wtx.set_durability(Durability::Immediate)?;
            } else {
                wtx.set_durability(Durability::None)?;
            }
            wtx.commit()?;
            shared.refresh_file_size();
            batches += 1;
            if done {
                tracing::info!(
                    revision = at,
                    deleted,
                    batches,
                    took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "mvcc: finished scheduled compaction"
                );
                return Ok(Progress::Finished);
            }
            drop(maintenance);
            if !shared.cfg.compaction_sleep.is_zero() {
                std::thread::sleep(shared.cfg.compaction_sleep);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RangeOptions, StoreConfig};
    use std::time::Duration;

    fn cfg(limit: usize) -> StoreConfig {
        StoreConfig {
            compaction_batch_limit: limit,
            compaction_sleep: Duration::ZERO,
        }
    }

    fn backend_revisions(store: &Store) -> Vec<Revision> {
        let rtx = store.inner.db.begin_read().unwrap();
        let t = rtx.open_table(KEY_TABLE).unwrap();
        t.iter()
            .unwrap()
            .map(|i| Revision::from_bytes(i.unwrap().0.value()))
            .collect()
    }

    /// rev 2: put a; 3: put b; 4: put a; 5: delete b; 6: put c; 7: put a.
    fn history(store: &Store) {
        let mut b = store.begin_batch().unwrap();
        for step in 0..6 {
            let mut t = b.txn();
            match step {
                0 | 2 | 5 => {
                    t.put(b"a", &[step], 0).unwrap();
                }
                1 => {
                    t.put(b"b", b"b", 0).unwrap();
                }
                3 => {
                    assert_eq!(t.delete_range(b"b", b"").unwrap(), 1);
                }
                _ => {
                    t.put(b"c", b"c", 0).unwrap();
                }
            }
            t.end();
        }
        b.commit(true).unwrap();
        assert_eq!(store.current_revision(), 7);
    }

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    fn values_at(store: &Store, rev: i64) -> Result<Pairs, MvccError> {
        Ok(store
            .read()
            .range(
                b"",
                b"\0",
                RangeOptions {
                    rev,
                    ..RangeOptions::default()
                },
            )?
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value))
            .collect())
    }

    #[test]
    fn compaction_deletes_only_unreferenced_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), cfg(2)).unwrap();
        history(&store);
        let before: Vec<_> = (5..=7).map(|r| values_at(&store, r).unwrap()).collect();
        let mut b = store.begin_batch().unwrap();
        let job = b.compact(5).unwrap();
        // Not committed yet: the job refuses to run, reads below 5 still work.
        assert!(store.run_compaction(job.clone()).is_err());
        assert!(values_at(&store, 3).is_ok());
        b.commit(true).unwrap();
        assert!(matches!(values_at(&store, 4), Err(MvccError::Compacted)));
        store.run_compaction(job).unwrap();
        // a@4 kept (latest <= 5), b's generation (3, 5 tombstone) gone, a@2 gone.
        assert_eq!(
            backend_revisions(&store),
            vec![Revision::new(4, 0), Revision::new(6, 0), Revision::new(7, 0)]
        );
        let after: Vec<_> = (5..=7).map(|r| values_at(&store, r).unwrap()).collect();
        assert_eq!(before, after);
        assert_eq!(store.inner.index_read().tree.len(), 2);

        // Reopen: nothing to resume, same answers.
        drop(store);
        let (store, job) = Store::open(&dir.path().join("db"), cfg(2)).unwrap();
        assert!(job.is_none());
        assert_eq!(store.compact_revision(), 5);
        assert_eq!(store.current_revision(), 7);
        let again: Vec<_> = (5..=7).map(|r| values_at(&store, r).unwrap()).collect();
        assert_eq!(before, again);
    }

    #[test]
    fn compaction_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), cfg(2)).unwrap();
        history(&store);
        let mut b = store.begin_batch().unwrap();
        assert!(matches!(b.compact(8), Err(MvccError::FutureRev)));
        assert!(matches!(b.compact(-1), Err(MvccError::Compacted)));
        b.compact(3).unwrap();
        assert!(matches!(b.compact(3), Err(MvccError::Compacted)));
        b.compact(4).unwrap();
        b.commit(false).unwrap();
        assert_eq!(store.compact_revision(), 4);
        let mut b = store.begin_batch().unwrap();
        assert!(matches!(b.compact(4), Err(MvccError::Compacted)));
        // A compaction up to a revision written in the same batch.
        let mut t = b.txn();
        t.put(b"z", b"z", 0).unwrap();
        t.end();
        b.compact(8).unwrap();
        // The txn sees the compaction at once.
        let t = b.txn();
        let ro = RangeOptions {
            rev: 7,
            ..RangeOptions::default()
        };
        assert!(matches!(t.range(b"a", b"", ro), Err(MvccError::Compacted)));
        drop(t);
        // Readers do not see it before the commit.
        assert!(values_at(&store, 5).is_ok());
        b.commit(true).unwrap();
        assert!(matches!(values_at(&store, 7), Err(MvccError::Compacted)));
        assert_eq!(values_at(&store, 8).unwrap().len(), 3);
    }

    #[test]
    fn unfinished_compaction_resumes_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let before;
        {
            let (store, _) = Store::open(&path, cfg(1)).unwrap();
            history(&store);
            // Compact at the current revision: every tombstone goes, possibly the last
            // revision too.
            let mut b = store.begin_batch().unwrap();
            let mut t = b.txn();
            t.delete_range(b"c", b"").unwrap();
            t.end();
            let job = b.compact(8).unwrap();
            b.commit(true).unwrap();
            before = values_at(&store, 8).unwrap();
            assert_eq!(
                store.run_compaction_batches(&job, Some(3)).unwrap(),
                Progress::Interrupted
            );
            // Reads at and above the compaction revision keep working meanwhile.
            assert_eq!(values_at(&store, 8).unwrap(), before);
        }
        let (store, job) = Store::open(&path, cfg(1)).unwrap();
        let job = job.expect("unfinished compaction");
        assert_eq!(job.revision(), 8);
        assert_eq!(store.compact_revision(), 8);
        assert_eq!(store.current_revision(), 8);
        assert_eq!(values_at(&store, 8).unwrap(), before);
        assert!(matches!(values_at(&store, 7), Err(MvccError::Compacted)));
        store.run_compaction(job).unwrap();
        assert_eq!(values_at(&store, 0).unwrap(), before);
        assert_eq!(backend_revisions(&store), vec![Revision::new(7, 0)]);
        drop(store);
        let (store, job) = Store::open(&path, cfg(1)).unwrap();
        assert!(job.is_none());
        assert_eq!(store.current_revision(), 8);
        assert_eq!(values_at(&store, 0).unwrap(), before);
        // The next write gets revision 9.
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        assert_eq!(t.put(b"n", b"n", 0).unwrap(), 9);
        t.end();
        b.commit(true).unwrap();
    }
}
