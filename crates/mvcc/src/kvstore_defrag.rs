//! Defragmentation (etcd's `backend.Defrag`): rewrites the backend into a fresh file holding
//! only live pages, then swaps the files. Unlike etcd, which stops every read and write for
//! the whole copy, readers never wait and writers wait only for the last few rows.
//!
//! 1. **Copy while serving.** Key rows are copied in revision order, a chunk per redb read
//!    transaction, from a cursor. The key table only grows at its end (a revision once
//!    committed is never rewritten), so chunks taken from successive read transactions
//!    add up to a consistent copy of every row up to the cursor. The two things that
//!    remove or replace rows — the backend half of a compaction and a snapshot install —
//!    take the store's maintenance lock, which the defragmentation holds throughout.
//!    Copying repeats until a chunk finds fewer than [`CATCH_UP_ROWS`] new rows.
//! 2. **Swap.** With the writer slot held (no write batch in flight), the rows committed
//!    since the last chunk and the small `meta` and `lease` tables are copied, the new file
//!    is committed durably, renamed over the old one (and the directory synced), and
//!    becomes the backend for every transaction begun from then on. Readers that started
//!    on the old file finish on it (its pages live until they are done).
//!
//! A crash at any point leaves either the old file (and a stale `.defrag` file, removed
//! by the next defragmentation) or the complete new one.

use std::path::{Path, PathBuf};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable};

use crate::MvccError;
use crate::backend::{BackendDb, KEY_TABLE, LEASE_TABLE, META_TABLE};
use crate::kvstore::Store;
use crate::revision::{RevBytes, Revision};

/// Key rows copied per read/write transaction pair while writers run.
const CHUNK_ROWS: usize = 20_000;
/// Bytes of key rows copied per chunk at most (large values: fewer rows); each chunk is one
/// fsync of the new file.
const CHUNK_BYTES: usize = 8 << 20;
/// When a chunk finds fewer new rows than this, the rest is copied with writers paused.
const CATCH_UP_ROWS: usize = 2_000;

/// What a defragmentation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefragStats {
    /// Backend file size before and after, in bytes.
    pub size_before: u64,
    pub size_after: u64,
    /// Key rows copied.
    pub rows: u64,
    /// How long writers were held back (the swap).
    pub writers_paused: Duration,
    /// Total duration.
    pub took: Duration,
}

/// The temporary file a defragmentation builds next to `db`.
fn defrag_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".defrag");
    db.with_file_name(name)
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> MvccError {
    MvccError::Backend(format!("defrag: {what} {}: {e}", path.display()))
}

/// Copies key rows after `cursor` (all of them when `limit` is `None`) from `from` into
/// `to`; moves the cursor past the last row copied and returns how many were copied.
fn copy_key_rows(
    from: &BackendDb,
    to: &Database,
    cursor: &mut RevBytes,
    limit: Option<usize>,
) -> Result<usize, MvccError> {
    let rtx = from.begin_read()?;
    let src = rtx.open_table(KEY_TABLE)?;
    let mut wtx = to.begin_write()?;
    // Each chunk is made durable as it is copied: the data reaches the disk in small pieces
    // while writers run (a non-durable copy would leave all of it to the final commit,
    // made with writers paused, and a long flush also delays the WAL's fsyncs).
    wtx.set_durability(Durability::Immediate)?;
    let mut copied = 0usize;
    let mut bytes = 0usize;
    {
        let mut dst = wtx.open_table(KEY_TABLE)?;
        for item in src.range::<&RevBytes>(&*cursor..)? {
            let (k, v) = item?;
            dst.insert(k.value(), v.value())?;
            let r = Revision::from_bytes(k.value());
            *cursor = Revision::new(r.main, r.sub.saturating_add(1)).to_bytes();
            copied += 1;
            bytes += v.value().len() + 16;
            if limit.is_some_and(|l| copied >= l) || (limit.is_some() && bytes >= CHUNK_BYTES) {
                break;
            }
        }
    }
    wtx.commit()?;
    Ok(copied)
}

/// Copies the `meta` and `lease` tables whole and commits `to` durably.
fn copy_small_tables_durably(from: &BackendDb, to: &Database) -> Result<(), MvccError> {
    let rtx = from.begin_read()?;
    let mut wtx = to.begin_write()?;
    wtx.set_durability(Durability::Immediate)?;
    {
        // every table exists in the new file, even empty
        wtx.open_table(KEY_TABLE)?;
        let src = rtx.open_table(META_TABLE)?;
        let mut dst = wtx.open_table(META_TABLE)?;
        for item in src.iter()? {
            let (k, v) = item?;
            dst.insert(k.value(), v.value())?;
        }
        let src = rtx.open_table(LEASE_TABLE)?;
        let mut dst = wtx.open_table(LEASE_TABLE)?;
        for item in src.iter()? {
            let (k, v) = item?;
            dst.insert(k.value(), v.value())?;
        }
    }
    wtx.commit()?;
    Ok(())
}

impl Store {
    /// Rewrites the backend file compactly while reads and writes go on (see the module
    /// docs). Blocking and long (it copies the whole backend): call it on a blocking
    /// thread. Waits for a running compaction batch or snapshot install; compaction
    /// batches wait for it.
    pub fn defragment(&self) -> Result<DefragStats, MvccError> {
        let shared = &*self.inner;
        let started = Instant::now();
        let _maintenance = shared.maintenance.lock().unwrap_or_else(PoisonError::into_inner);
        let size_before = self.db_size();
        let path = shared.path.clone();
        let tmp = defrag_path(&path);
        match std::fs::remove_file(&tmp) {
            Ok(()) => tracing::warn!(path = %tmp.display(), "defrag: removed a stale temporary file"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing", &tmp, e)),
        }
        let new_db = Database::create(&tmp)?;

        // 1. copy while serving
        let mut cursor = Revision::new(0, 0).to_bytes();
        let mut rows = 0u64;
        loop {
            let n = copy_key_rows(&shared.db, &new_db, &mut cursor, Some(CHUNK_ROWS))?;
            rows += n as u64;
            if n < CATCH_UP_ROWS {
                break;
            }
        }

        // 2. swap, writers paused
        let token = shared.writer.acquire();
        let paused_at = Instant::now();
        rows += copy_key_rows(&shared.db, &new_db, &mut cursor, None)? as u64;
        copy_small_tables_durably(&shared.db, &new_db)?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err("renaming", &tmp, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err("syncing", dir, e))?;
        }
        let old = shared.db.replace(new_db);
        shared.refresh_file_size();
        *shared.size_in_use.lock().unwrap_or_else(PoisonError::into_inner) = None;
        drop(token);
        let writers_paused = paused_at.elapsed();
        // Closing the old file writes its allocator state (to the now unlinked inode).
        std::thread::Builder::new()
            .name("defrag-close".into())
            .spawn(move || drop(old))
            .map_err(|e| MvccError::Backend(format!("defrag: spawning the closer: {e}")))?;

        let stats = DefragStats {
            size_before,
            size_after: self.db_size(),
            rows,
            writers_paused,
            took: started.elapsed(),
        };
        tracing::info!(
            size_before = stats.size_before,
            size_after = stats.size_after,
            rows = stats.rows,
            writers_paused_ms = stats.writers_paused.as_secs_f64() * 1e3,
            took_ms = stats.took.as_secs_f64() * 1e3,
            "mvcc: defragmented the backend"
        );
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RangeOptions, StoreConfig};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn put_many(store: &Store, prefix: &str, n: usize, value_len: usize) {
        let value = vec![b'v'; value_len];
        for chunk in 0..n.div_ceil(100) {
            let mut b = store.begin_batch().unwrap();
            for i in chunk * 100..((chunk + 1) * 100).min(n) {
                let mut t = b.txn();
                t.put(format!("{prefix}{i:06}").as_bytes(), &value, 0).unwrap();
                t.end();
            }
            b.commit(false).unwrap();
        }
    }

    fn all(store: &Store, rev: i64) -> Vec<(Vec<u8>, i64, i64)> {
        let opts = RangeOptions {
            rev,
            ..Default::default()
        };
        store
            .read()
            .range(b"", b"\0", opts)
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.mod_revision, kv.version))
            .collect()
    }

    #[test]
    fn shrinks_the_file_and_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
        put_many(&store, "k", 3000, 2000);
        // delete most of it and compact: the file keeps its size
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        t.delete_range(b"k000", b"k002900").unwrap();
        t.end();
        let job = b.compact(b.current_revision()).unwrap();
        b.put_lease(5, b"lease five").unwrap();
        b.set_meta("x", b"y").unwrap();
        b.commit(true).unwrap();
        store.run_compaction(job).unwrap();
        let rev = store.current_revision();
        let before = all(&store, 0);
        assert_eq!(before.len(), 100);

        let stats = store.defragment().unwrap();
        assert!(stats.size_after < stats.size_before / 4, "{stats:?}");
        assert_eq!(stats.size_after, std::fs::metadata(&path).unwrap().len());
        assert!(!defrag_path(&path).exists());
        assert_eq!(all(&store, 0), before);
        assert_eq!(store.current_revision(), rev);
        assert_eq!(store.leases().unwrap(), vec![(5, b"lease five".to_vec())]);
        assert_eq!(store.meta("x").unwrap(), Some(b"y".to_vec()));
        // writes go to the new file and survive a reopen
        put_many(&store, "n", 10, 10);
        let after = all(&store, 0);
        drop(store);
        let (store, _) = Store::open(&path, StoreConfig::default()).unwrap();
        assert_eq!(all(&store, 0), after);
        assert_eq!(store.compact_revision(), rev);
    }

    /// Writers, readers and a compaction run during the defragmentation; nothing is lost
    /// and history reads stay exact.
    #[test]
    fn concurrent_writes_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let cfg = StoreConfig {
            compaction_batch_limit: 50,
            compaction_sleep: Duration::ZERO,
        };
        let (store, _) = Store::open(&path, cfg).unwrap();
        put_many(&store, "a", 20_000, 100);
        let mid = store.current_revision();
        let history = all(&store, mid);

        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let store = store.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    put_many(&store, &format!("w{i:04}-"), 50, 50);
                    i += 1;
                }
                i
            })
        };
        let compactor = {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut b = store.begin_batch().unwrap();
                let job = b.compact(mid / 2).unwrap();
                b.commit(true).unwrap();
                store.run_compaction(job).unwrap();
            })
        };
        let stats = store.defragment().unwrap();
        stop.store(true, Ordering::Relaxed);
        let batches = writer.join().unwrap();
        compactor.join().unwrap();
        assert!(stats.rows >= 20_000, "{stats:?}");

        assert_eq!(all(&store, mid), history);
        let now = all(&store, 0);
        assert_eq!(now.len(), 20_000 + batches * 50);
        drop(store);
        // the reopened file has the same history (and no compacted row came back)
        let (store, job) = Store::open(&path, StoreConfig::default()).unwrap();
        if let Some(job) = job {
            store.run_compaction(job).unwrap();
        }
        assert_eq!(all(&store, mid), history);
        assert_eq!(all(&store, 0), now);
        assert!(matches!(
            store.read().range(
                b"",
                b"\0",
                RangeOptions {
                    rev: mid / 2 - 1,
                    ..Default::default()
                }
            ),
            Err(MvccError::Compacted)
        ));
    }
}
