//! Read and write transactions (etcd's `server/mvcc/kvstore_txn.go`).
//!
//! * [`ReadTxn`]: a snapshot at the published current revision, usable from any thread.
//! * [`Batch`]: the one redb write transaction; the apply loop applies several raft
//!   entries in it and commits it.
//! * [`TxnWrite`]: one etcd write txn inside a batch, consuming at most one main revision.

use std::sync::Arc;

use redb::{Durability, ReadOnlyTable, ReadTransaction, ReadableTable, Table, WriteTransaction};

use crate::MvccError;
use crate::backend::{
    KEY_TABLE, LEASE_TABLE, META_CONSISTENT_INDEX, META_SCHEDULED_COMPACT, META_TABLE, META_TERM,
    app_meta_name,
};
use crate::index::KeySpan;
use crate::kv::{Event, EventType, KeyValue, Record, record_len};
use crate::kvstore::{Shared, WriterToken};
use crate::kvstore_compaction::CompactionJob;
use crate::revision::{RevBytes, Revision};

/// Options of a range read.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeOptions {
    /// At most this many key-values are returned (all if `<= 0`).
    pub limit: i64,
    /// Read at this revision (`<= 0`: the current revision).
    pub rev: i64,
    /// Only count the keys; return no key-values.
    pub count_only: bool,
}

/// Result of a range read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeResult {
    /// The key-values, ascending by key.
    pub kvs: Vec<KeyValue>,
    /// The current revision of the store (of the read txn), not the revision read at.
    pub rev: i64,
    /// Number of keys in the range at the revision read, regardless of the limit.
    pub count: i64,
}

/// Result of a write txn.
#[derive(Debug, Clone, Default)]
pub struct TxnResult {
    /// The txn's main revision if it changed something, else the current revision.
    pub rev: i64,
    /// The changes, in order (sub revision order).
    pub changes: Vec<Event>,
}

type KeyTable<'t> = Table<'t, &'static RevBytes, &'static [u8]>;

/// The index half of a range: checks the revision and collects the value revisions
/// under the index read lock. `Ok(Err(count))` for a count-only request.
fn index_range(
    shared: &Shared,
    cur_rev: i64,
    pending_compact: i64,
    key: &[u8],
    end: &[u8],
    opts: &RangeOptions,
) -> Result<(Vec<Revision>, usize), MvccError> {
    if opts.rev > cur_rev {
        return Err(MvccError::FutureRev);
    }
    let rev = if opts.rev <= 0 { cur_rev } else { opts.rev };
    let span = KeySpan::new(key, end);
    let st = shared.index_read();
    if rev < st.compact_rev.max(pending_compact) {
        return Err(MvccError::Compacted);
    }
    if opts.count_only {
        return Ok((Vec::new(), st.tree.count(span, rev)));
    }
    let limit = if opts.limit <= 0 {
        0
    } else {
        usize::try_from(opts.limit).unwrap_or(usize::MAX)
    };
    Ok(st.tree.revisions(span, rev, limit))
}

/// The backend half of a range: reads the values of `revs` (no lock held).
fn fetch<T: ReadableTable<&'static RevBytes, &'static [u8]>>(
    table: &T,
    revs: &[Revision],
) -> Result<Vec<KeyValue>, MvccError> {
    let mut kvs = Vec::with_capacity(revs.len());
    for &rev in revs {
        let guard = table.get(&rev.to_bytes())?.ok_or_else(|| {
            MvccError::Corrupt(format!("revision {rev} is in the index but not in the backend"))
        })?;
        let rec = Record::decode(rev, guard.value())?;
        if rec.tombstone {
            return Err(MvccError::Corrupt(format!(
                "revision {rev} is a tombstone but the index has it as a value"
            )));
        }
        kvs.push(rec.to_key_value());
    }
    Ok(kvs)
}

fn count_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A consistent read-only snapshot at the published current revision when it was
/// opened ([`Store::read`](crate::Store::read)). Owns its redb read transaction; holds no
/// lock between calls.
pub struct ReadTxn {
    shared: Arc<Shared>,
    rev: i64,
    // Declared before `txn`: dropped first.
    table: Result<ReadOnlyTable<&'static RevBytes, &'static [u8]>, String>,
    _txn: Option<ReadTransaction>,
}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("rev", &self.rev)
            .finish_non_exhaustive()
    }
}

impl ReadTxn {
    pub(crate) fn open(shared: Arc<Shared>) -> ReadTxn {
        let (rev, txn) = {
            let st = shared.index_read();
            (st.current_rev, shared.db.begin_read())
        };
        let (table, txn) = match txn {
            Ok(txn) => (txn.open_table(KEY_TABLE).map_err(|e| e.to_string()), Some(txn)),
            Err(e) => (Err(e.to_string()), None),
        };
        ReadTxn {
            shared,
            rev,
            table,
            _txn: txn,
        }
    }

    fn table(&self) -> Result<&ReadOnlyTable<&'static RevBytes, &'static [u8]>, MvccError> {
        self.table.as_ref().map_err(|e| MvccError::Backend(e.clone()))
    }

    /// The redb read transaction behind this snapshot (none if it failed to open).
    pub(crate) fn redb_txn(&self) -> Option<&ReadTransaction> {
        self._txn.as_ref()
    }

    /// The published current revision when this snapshot was opened.
    pub fn rev(&self) -> i64 {
        self.rev
    }

    /// Range read at `opts.rev` (`<= 0`: [`rev`](Self::rev)); see [`RangeOptions`].
    /// `end` empty: the single key `key`; `end == [0]`: every key `>= key`; otherwise
    /// `[key, end)`.
    pub fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        let table = self.table()?;
        let (revs, count) = index_range(&self.shared, self.rev, 0, key, end, &opts)?;
        let kvs = fetch(table, &revs)?;
        Ok(RangeResult {
            kvs,
            rev: self.rev,
            count: count_i64(count),
        })
    }

    /// The changes of revisions `start_rev..=rev()`, in revision order (for watchers
    /// catching up). With `max_events > 0`, stops at the first main revision boundary
    /// after `max_events` events. Returns the events and the revision to continue from
    /// (`rev() + 1` when done). Fails with [`MvccError::Compacted`] if `start_rev` is
    /// below the compaction revision (etcd's watch rule; delete events at exactly the
    /// compaction revision are gone).
    pub fn events(&self, start_rev: i64, max_events: usize) -> Result<(Vec<Event>, i64), MvccError> {
        let table = self.table()?;
        if start_rev < self.shared.index_read().compact_rev {
            return Err(MvccError::Compacted);
        }
        let start = start_rev.max(1);
        if start > self.rev {
            return Ok((Vec::new(), start));
        }
        let lo = Revision::new(start, 0).to_bytes();
        let hi = Revision::new(self.rev, i64::MAX).to_bytes();
        let mut events = Vec::new();
        let mut last_main = None;
        for item in table.range::<&RevBytes>(&lo..=&hi)? {
            let (k, v) = item?;
            let rev = Revision::from_bytes(k.value());
            if max_events > 0 && events.len() >= max_events && last_main != Some(rev.main) {
                return Ok((events, rev.main));
            }
            events.push(Record::decode(rev, v.value())?.to_event());
            last_main = Some(rev.main);
        }
        Ok((events, self.rev.saturating_add(1)))
    }
}

/// The state of a batch that outlives its redb transaction: rolled back on drop unless
/// committed; holds the writer slot.
pub(crate) struct BatchWriter<'a> {
    shared: &'a Shared,
    /// Current revision including this batch's ended txns.
    rev: i64,
    /// Compaction recorded by this batch.
    compact: Option<i64>,
    consistent: Option<(u64, u64)>,
    /// The index holds entries of this batch.
    dirty: bool,
    /// A write failed half-way: the batch must not be committed.
    failed: bool,
    committed: bool,
    _token: WriterToken<'a>,
}

impl Drop for BatchWriter<'_> {
    fn drop(&mut self) {
        if self.dirty && !self.committed {
            self.shared.rollback_index();
        }
    }
}

/// The write batch: one redb write transaction in which the apply loop applies several
/// raft entries ([`Store::begin_batch`](crate::Store::begin_batch)). Nothing is visible
/// to readers before [`commit`](Self::commit); dropping it discards it.
pub struct Batch<'a> {
    wtx: WriteTransaction,
    w: BatchWriter<'a>,
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("current_revision", &self.w.rev)
            .field("compact", &self.w.compact)
            .finish_non_exhaustive()
    }
}

impl<'a> Batch<'a> {
    pub(crate) fn begin(shared: &'a Shared) -> Result<Batch<'a>, MvccError> {
        let token = shared.writer.acquire();
        let wtx = shared.db.begin_write()?;
        let rev = shared.current_rev.load(std::sync::atomic::Ordering::Acquire);
        Ok(Batch {
            wtx,
            w: BatchWriter {
                shared,
                rev,
                compact: None,
                consistent: None,
                dirty: false,
                failed: false,
                committed: false,
                _token: token,
            },
        })
    }

    /// Starts one etcd write txn (at most one main revision).
    pub fn txn(&mut self) -> TxnWrite<'_, 'a> {
        let Batch { wtx, w } = self;
        let table = wtx.open_table(KEY_TABLE).map_err(|e| e.to_string());
        let begin_rev = w.rev;
        TxnWrite {
            w,
            table,
            begin_rev,
            subs: 0,
            changes: Vec::new(),
        }
    }

    /// Records a compaction at `rev` (etcd's `Compact`): fails with `Compacted` if `rev`
    /// is not above the compaction revision, `FutureRev` if above the current revision.
    /// `scheduledCompactRev` is written in this batch; reads below `rev` fail once the
    /// batch is committed. The returned job (index compaction and deletion of the old
    /// revisions from the backend) must be run with
    /// [`Store::run_compaction`](crate::Store::run_compaction) after the commit.
    pub fn compact(&mut self, rev: i64) -> Result<CompactionJob, MvccError> {
        let compacted = self
            .w
            .shared
            .compact_rev
            .load(std::sync::atomic::Ordering::Acquire)
            .max(self.w.compact.unwrap_or(-1));
        if rev <= compacted {
            return Err(MvccError::Compacted);
        }
        if rev > self.w.rev {
            return Err(MvccError::FutureRev);
        }
        self.w.compact = Some(rev);
        Ok(CompactionJob::new(rev))
    }

    /// Records the raft index and term of the last entry applied in this batch; written
    /// with the batch's changes, so replaying the raft log after a crash is idempotent.
    pub fn set_consistent_index(&mut self, index: u64, term: u64) -> Result<(), MvccError> {
        self.w.consistent = Some((index, term));
        Ok(())
    }

    /// Stores an opaque blob under `name` (read back with
    /// [`Store::meta`](crate::Store::meta) once committed).
    pub fn set_meta(&mut self, name: &str, value: &[u8]) -> Result<(), MvccError> {
        self.write(|wtx| {
            wtx.open_table(META_TABLE)?
                .insert(app_meta_name(name).as_str(), value)?;
            Ok(())
        })
    }

    /// Removes the blob stored under `name` (nothing if there is none).
    pub fn delete_meta(&mut self, name: &str) -> Result<(), MvccError> {
        self.write(|wtx| {
            wtx.open_table(META_TABLE)?.remove(app_meta_name(name).as_str())?;
            Ok(())
        })
    }

    /// Runs a direct write on the redb transaction; a failure poisons the batch (it can
    /// no longer be committed).
    fn write(&mut self, f: impl FnOnce(&WriteTransaction) -> Result<(), MvccError>) -> Result<(), MvccError> {
        let res = f(&self.wtx);
        if res.is_err() {
            self.w.failed = true;
        }
        res
    }

    /// Writes (or replaces) lease `id`'s record in the `lease` table.
    pub fn put_lease(&mut self, id: i64, record: &[u8]) -> Result<(), MvccError> {
        self.write(|wtx| {
            wtx.open_table(LEASE_TABLE)?.insert(id as u64, record)?;
            Ok(())
        })
    }

    /// Removes lease `id`'s record.
    pub fn delete_lease(&mut self, id: i64) -> Result<(), MvccError> {
        self.write(|wtx| {
            wtx.open_table(LEASE_TABLE)?.remove(id as u64)?;
            Ok(())
        })
    }

    /// The current revision including this batch's uncommitted txns.
    pub fn current_revision(&self) -> i64 {
        self.w.rev
    }

    /// Commits the redb transaction (`durable`: fsynced before returning; otherwise
    /// visible at once and persisted by the next durable commit, a crash rolling back to
    /// the last durable one), then publishes the new current revision, compaction
    /// revision and consistent index.
    pub fn commit(self, durable: bool) -> Result<(), MvccError> {
        let Batch { mut wtx, mut w } = self;
        if w.failed {
            return Err(MvccError::Backend(
                "a write of this batch failed; the batch cannot be committed".into(),
            ));
        }
        if w.compact.is_some() || w.consistent.is_some() {
            let mut meta = wtx.open_table(META_TABLE)?;
            if let Some((index, term)) = w.consistent {
                meta.insert(META_CONSISTENT_INDEX, &index.to_be_bytes()[..])?;
                meta.insert(META_TERM, &term.to_be_bytes()[..])?;
            }
            if let Some(rev) = w.compact {
                meta.insert(META_SCHEDULED_COMPACT, &rev.to_be_bytes()[..])?;
            }
        }
        wtx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        wtx.commit()?;
        w.shared.publish(w.rev, w.compact);
        w.shared.refresh_file_size();
        if let Some((index, term)) = w.consistent {
            use std::sync::atomic::Ordering::Release;
            w.shared.consistent_index.store(index, Release);
            w.shared.consistent_term.store(term, Release);
        }
        if let Some(rev) = w.compact {
            tracing::info!(revision = rev, "mvcc: compaction scheduled");
        }
        w.committed = true;
        Ok(())
    }
}

/// One etcd write txn inside a [`Batch`]: its changes share one main revision (the
/// batch's current revision + 1) with sub revisions 0, 1, 2...; a txn without changes
/// consumes no revision. Dropping it ends it like [`end`](Self::end).
pub struct TxnWrite<'b, 'a> {
    w: &'b mut BatchWriter<'a>,
    table: Result<KeyTable<'b>, String>,
    begin_rev: i64,
    /// Number of changes so far (the next sub revision).
    subs: i64,
    changes: Vec<Event>,
}

impl std::fmt::Debug for TxnWrite<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnWrite")
            .field("begin_rev", &self.begin_rev)
            .field("changes", &self.changes.len())
            .finish_non_exhaustive()
    }
}

impl Drop for TxnWrite<'_, '_> {
    fn drop(&mut self) {
        if self.subs > 0 {
            self.w.rev = self.main();
        }
    }
}

impl<'b> TxnWrite<'b, '_> {
    /// The main revision of this txn's changes.
    fn main(&self) -> i64 {
        self.begin_rev.saturating_add(1)
    }

    /// Revision a read in this txn sees (begin rev, or begin+1 once it has changes).
    pub fn rev(&self) -> i64 {
        if self.subs > 0 {
            self.main()
        } else {
            self.begin_rev
        }
    }

    /// Range read seeing this txn's (and this batch's) earlier writes; `rev` of the
    /// result is [`rev`](Self::rev).
    pub fn range(&self, key: &[u8], end: &[u8], opts: RangeOptions) -> Result<RangeResult, MvccError> {
        let table = self.table.as_ref().map_err(|e| MvccError::Backend(e.clone()))?;
        let cur = self.rev();
        let (revs, count) = index_range(self.w.shared, cur, self.w.compact.unwrap_or(0), key, end, &opts)?;
        let kvs = fetch(table, &revs)?;
        Ok(RangeResult {
            kvs,
            rev: cur,
            count: count_i64(count),
        })
    }

    fn table_mut(&mut self) -> Result<&mut KeyTable<'b>, MvccError> {
        match &mut self.table {
            Ok(t) => Ok(t),
            Err(e) => {
                self.w.failed = true;
                Err(MvccError::Backend(e.clone()))
            }
        }
    }

    /// Puts `key = value` attached to `lease` (0: none); returns the txn's main revision.
    pub fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> Result<i64, MvccError> {
        let main = self.main();
        let rev = Revision::new(main, self.subs);
        self.table_mut()?;
        self.w.dirty = true;
        let res = self.put_at(rev, key, value, lease);
        let (created, ver) = match res {
            Ok(cv) => cv,
            Err(e) => {
                self.w.failed = true;
                return Err(e);
            }
        };
        self.subs += 1;
        self.changes.push(Event {
            kind: EventType::Put,
            kv: KeyValue {
                key: key.to_vec(),
                create_revision: created.main,
                mod_revision: main,
                version: ver,
                value: value.to_vec(),
                lease,
            },
        });
        Ok(main)
    }

    fn put_at(
        &mut self,
        rev: Revision,
        key: &[u8],
        value: &[u8],
        lease: i64,
    ) -> Result<(Revision, i64), MvccError> {
        let (created, version) = self.w.shared.index_write().tree.put(key, rev)?;
        let rec = Record {
            tombstone: false,
            create_revision: created.main,
            mod_revision: rev.main,
            version,
            lease,
            key,
            value,
        };
        write_record(self.table_mut()?, rev, &rec)?;
        Ok((created, version))
    }

    /// Deletes every key of the range alive at [`rev`](Self::rev) (same `end`
    /// convention as [`range`](Self::range)); returns how many were deleted.
    pub fn delete_range(&mut self, key: &[u8], end: &[u8]) -> Result<i64, MvccError> {
        let span = KeySpan::new(key, end);
        if span == KeySpan::Nothing {
            return Ok(0);
        }
        self.table_mut()?;
        self.w.dirty = true;
        match self.delete_span(span) {
            Ok(n) => Ok(n),
            Err(e) => {
                self.w.failed = true;
                Err(e)
            }
        }
    }

    fn delete_span(&mut self, span: KeySpan<'_>) -> Result<i64, MvccError> {
        let at = self.rev();
        let main = self.main();
        let keys = self
            .w
            .shared
            .index_write()
            .tree
            .tombstone_span(span, at, main, self.subs)?;
        let n = count_i64(keys.len());
        self.changes.reserve(keys.len());
        for key in keys {
            let rev = Revision::new(main, self.subs);
            let rec = Record {
                tombstone: true,
                create_revision: 0,
                mod_revision: main,
                version: 0,
                lease: 0,
                key: &key,
                value: &[],
            };
            write_record(self.table_mut()?, rev, &rec)?;
            self.subs += 1;
            self.changes.push(Event {
                kind: EventType::Delete,
                kv: KeyValue {
                    key,
                    mod_revision: main,
                    ..KeyValue::default()
                },
            });
        }
        Ok(n)
    }

    /// Ends the txn; the batch's current revision moves to this txn's revision if it
    /// changed something. Nothing is committed before [`Batch::commit`].
    pub fn end(mut self) -> TxnResult {
        TxnResult {
            rev: self.rev(),
            changes: std::mem::take(&mut self.changes),
        }
    }
}

/// Encodes `rec` directly into the page space reserved in the `key` table.
fn write_record(table: &mut KeyTable<'_>, rev: Revision, rec: &Record<'_>) -> Result<(), MvccError> {
    let len = record_len(rec.key.len(), rec.value.len());
    let mut slot = table.insert_reserve(&rev.to_bytes(), len)?;
    rec.encode_into(slot.as_mut())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::{Store, StoreConfig};

    fn open(limit: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig {
            compaction_batch_limit: limit,
            compaction_sleep: Duration::from_millis(1),
        };
        let (store, _) = Store::open(&dir.path().join("db"), cfg).unwrap();
        (dir, store)
    }

    #[test]
    fn txn_reads_its_own_writes_and_empty_txns_use_no_revision() {
        let (_dir, store) = open(10);
        let mut b = store.begin_batch().unwrap();
        let t = b.txn();
        assert_eq!(t.rev(), 1);
        assert_eq!(t.end().rev, 1);
        let mut t = b.txn();
        assert_eq!(t.delete_range(b"a", b"\0").unwrap(), 0);
        assert_eq!(t.end().rev, 1);
        let mut t = b.txn();
        t.put(b"a", b"1", 0).unwrap();
        assert_eq!(t.rev(), 2);
        let r = t.range(b"a", b"", RangeOptions::default()).unwrap();
        assert_eq!((r.rev, r.count, r.kvs[0].value.as_slice()), (2, 1, &b"1"[..]));
        t.put(b"a", b"2", 0).unwrap();
        let r = t.range(b"a", b"", RangeOptions::default()).unwrap();
        assert_eq!((r.kvs[0].version, r.kvs[0].value.as_slice()), (2, &b"2"[..]));
        assert_eq!(t.delete_range(b"a", b"").unwrap(), 1);
        assert_eq!(t.range(b"a", b"", RangeOptions::default()).unwrap().count, 0);
        let res = t.end();
        assert_eq!(res.rev, 2);
        assert_eq!(res.changes.len(), 3);
        assert_eq!(b.current_revision(), 2);
        // Not visible to readers before the commit.
        assert_eq!(store.read().rev(), 1);
        assert_eq!(store.current_revision(), 1);
        b.commit(false).unwrap();
        assert_eq!(store.current_revision(), 2);
        let r = store
            .read()
            .range(
                b"a",
                b"",
                RangeOptions {
                    rev: 2,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(r.count, 0);
    }

    #[test]
    fn dropped_batch_is_rolled_back() {
        let (_dir, store) = open(10);
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        t.put(b"a", b"1", 0).unwrap();
        t.end();
        b.commit(false).unwrap();
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        t.put(b"a", b"2", 0).unwrap();
        t.put(b"b", b"2", 0).unwrap();
        t.end();
        let mut t = b.txn();
        t.delete_range(b"a", b"").unwrap();
        t.end();
        let job = b.compact(3).unwrap();
        drop(b);
        assert_eq!(store.current_revision(), 2);
        assert_eq!(store.compact_revision(), -1);
        assert!(store.run_compaction(job).is_err());
        let mut b = store.begin_batch().unwrap();
        let mut t = b.txn();
        assert_eq!(t.put(b"c", b"3", 0).unwrap(), 3);
        let r = t.range(b"", b"\0", RangeOptions::default()).unwrap();
        let keys: Vec<_> = r.kvs.iter().map(|kv| (kv.key.clone(), kv.version)).collect();
        assert_eq!(keys, vec![(b"a".to_vec(), 1), (b"c".to_vec(), 1)]);
        t.end();
        b.commit(true).unwrap();
    }

    #[test]
    fn compaction_job_started_before_commit_waits_for_it() {
        let (_dir, store) = open(10);
        let mut b = store.begin_batch().unwrap();
        for i in 0..5u8 {
            let mut t = b.txn();
            t.put(b"k", &[i], 0).unwrap();
            t.end();
        }
        let job = b.compact(4).unwrap();
        let s2 = store.clone();
        let runner = std::thread::spawn(move || s2.run_compaction(job));
        std::thread::sleep(Duration::from_millis(20));
        b.commit(false).unwrap();
        runner.join().unwrap().unwrap();
        let r = store.read();
        assert!(matches!(
            r.range(
                b"k",
                b"",
                RangeOptions {
                    rev: 3,
                    ..Default::default()
                }
            ),
            Err(MvccError::Compacted)
        ));
        assert_eq!(
            r.range(
                b"k",
                b"",
                RangeOptions {
                    rev: 4,
                    ..Default::default()
                }
            )
            .unwrap()
            .kvs[0]
                .value,
            vec![2]
        );

        // An aborted batch: the waiting job fails.
        let mut b = store.begin_batch().unwrap();
        let job = b.compact(5).unwrap();
        let s2 = store.clone();
        let runner = std::thread::spawn(move || s2.run_compaction(job));
        std::thread::sleep(Duration::from_millis(20));
        drop(b);
        assert!(runner.join().unwrap().is_err());
    }

    /// At revision `r >= 2` the writer put key `r % KEYS` with value `r`.
    const KEYS: i64 = 10;

    fn expected(rev: i64) -> Vec<KeyValue> {
        let mut kvs = Vec::new();
        for j in 0..KEYS {
            // Revisions writing key j: 2 + j, 2 + j + KEYS, ...
            let first = 2 + j;
            if first > rev {
                continue;
            }
            let puts = (rev - first) / KEYS + 1;
            let last = first + (puts - 1) * KEYS;
            kvs.push(KeyValue {
                key: format!("k{j}").into_bytes(),
                create_revision: first,
                mod_revision: last,
                version: puts,
                value: last.to_be_bytes().to_vec(),
                lease: 0,
            });
        }
        kvs.sort_by(|a, b| a.key.cmp(&b.key));
        kvs
    }

    #[test]
    fn concurrent_readers_writer_and_compaction() {
        let (_dir, store) = open(7);
        let last_rev = 600i64;
        let done = Arc::new(AtomicBool::new(false));
        let (jobs_tx, jobs_rx) = mpsc::channel::<CompactionJob>();

        let compactor = {
            let store = store.clone();
            std::thread::spawn(move || {
                for job in jobs_rx {
                    store.run_compaction(job).unwrap();
                }
            })
        };
        let readers: Vec<_> = (0..2u64)
            .map(|seed| {
                let store = store.clone();
                let done = done.clone();
                std::thread::spawn(move || {
                    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let mut reads = 0u64;
                    while !done.load(Ordering::Acquire) || reads == 0 {
                        let t = store.read();
                        let cur = t.rev();
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let lo = store.compact_revision().max(1);
                        if lo > cur {
                            // Compacted past this snapshot's revision since it was opened.
                            let opts = RangeOptions::default();
                            assert!(matches!(t.range(b"k", b"l", opts), Err(MvccError::Compacted)));
                            continue;
                        }
                        let span = u64::try_from(cur - lo + 1).unwrap();
                        let rev = lo + i64::try_from((x >> 33) % span).unwrap();
                        let opts = RangeOptions {
                            rev,
                            ..Default::default()
                        };
                        match t.range(b"k", b"l", opts) {
                            Ok(r) => {
                                assert_eq!(r.rev, cur);
                                assert_eq!(r.kvs, expected(rev), "rev {rev}");
                                assert_eq!(r.count, i64::try_from(r.kvs.len()).unwrap());
                                reads += 1;
                            }
                            Err(MvccError::Compacted) => assert!(rev < store.compact_revision()),
                            Err(e) => panic!("read at {rev}: {e}"),
                        }
                    }
                    reads
                })
            })
            .collect();

        let mut rev = 1;
        while rev < last_rev {
            let mut b = store.begin_batch().unwrap();
            for _ in 0..3 {
                let mut t = b.txn();
                let r = rev + 1;
                let key = format!("k{}", (r - 2) % KEYS);
                assert_eq!(t.put(key.as_bytes(), &r.to_be_bytes(), 0).unwrap(), r);
                t.end();
                rev = r;
            }
            let job = (rev % 30 == 1).then(|| b.compact(rev - 15).unwrap());
            b.commit(rev % 60 == 1).unwrap();
            if let Some(job) = job {
                jobs_tx.send(job).unwrap();
            }
        }
        drop(jobs_tx);
        compactor.join().unwrap();
        done.store(true, Ordering::Release);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        let t = store.read();
        assert_eq!(
            t.range(b"k", b"l", RangeOptions::default()).unwrap().kvs,
            expected(rev)
        );
    }
}

/// Appends `v` as a protobuf varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// etcd's on-disk value: a marshaled `mvccpb.KeyValue` (fields in order, zero values omitted;
/// a tombstone carries only the key).
fn etcd_value_bytes(rec: &crate::kv::Record<'_>, out: &mut Vec<u8>) {
    out.clear();
    let bytes_field = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
        if !b.is_empty() {
            out.push(tag);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
    };
    let int_field = |out: &mut Vec<u8>, tag: u8, v: i64| {
        if v != 0 {
            out.push(tag);
            put_varint(out, v as u64);
        }
    };
    bytes_field(out, 0x0a, rec.key);
    if rec.tombstone {
        return;
    }
    int_field(out, 0x10, rec.create_revision);
    int_field(out, 0x18, rec.mod_revision);
    int_field(out, 0x20, rec.version);
    bytes_field(out, 0x2a, rec.value);
    int_field(out, 0x30, rec.lease);
}

impl ReadTxn {
    /// etcd's `HashKV`: a CRC-32C (Castagnoli) over the bucket name `key` followed by every
    /// stored revision `<= rev`, in revision order, in etcd's on-disk encoding (key: main and
    /// sub big-endian joined by `_`, plus `t` for a tombstone; value: the marshaled
    /// `mvccpb.KeyValue`). Equal on every member holding the same history. `rev <= 0` means
    /// this snapshot's revision. Returns (hash, revision hashed).
    ///
    /// As etcd 3.4 does, revisions at or below the compaction revision count only if they
    /// are in the "keep" set of `rev` (each key's latest put at `rev`, for keys alive then),
    /// unless that set is empty.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64), MvccError> {
        let compact = self.shared.index_read().compact_rev;
        if rev > 0 && rev <= compact {
            return Err(MvccError::Compacted);
        }
        if rev > self.rev {
            return Err(MvccError::FutureRev);
        }
        let rev = if rev <= 0 { self.rev } else { rev };
        let keep: std::collections::HashSet<(Vec<u8>, i64)> = if compact >= 0 {
            let all = self.range(
                &[0],
                &[0],
                RangeOptions {
                    rev,
                    ..Default::default()
                },
            )?;
            all.kvs.into_iter().map(|kv| (kv.key, kv.mod_revision)).collect()
        } else {
            Default::default()
        };
        let mut crc = crc32c::crc32c(b"key");
        let mut key = Vec::with_capacity(18);
        let mut val = Vec::new();
        for item in self.table()?.iter()? {
            let (k, v) = item?;
            let r = Revision::from_bytes(k.value());
            if r.main > rev {
                break;
            }
            let rec = crate::kv::Record::decode(r, v.value())?;
            if r.main <= compact && !keep.is_empty() && !keep.contains(&(rec.key.to_vec(), r.main)) {
                continue;
            }
            key.clear();
            key.extend_from_slice(&r.main.to_be_bytes());
            key.push(b'_');
            key.extend_from_slice(&r.sub.to_be_bytes());
            if rec.tombstone {
                key.push(b't');
            }
            etcd_value_bytes(&rec, &mut val);
            crc = crc32c::crc32c_append(crc, &key);
            crc = crc32c::crc32c_append(crc, &val);
        }
        Ok((crc, rev))
    }
}

#[cfg(test)]
mod hash_tests {
    use crate::{Store, StoreConfig};

    /// Hashes taken from real etcd 3.4 for the same history.
    #[test]
    fn hash_kv_matches_etcd() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(&dir.path().join("db"), StoreConfig::default()).unwrap();
        assert_eq!(store.read().hash_kv(0).unwrap(), (1084519789, 1));
        let mut b = store.begin_batch().unwrap();
        for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
            let mut t = b.txn();
            t.put(k.as_bytes(), v.as_bytes(), 0).unwrap();
            t.end();
        }
        let mut t = b.txn();
        t.delete_range(b"b", &[]).unwrap();
        t.end();
        b.commit(false).unwrap();
        assert_eq!(store.read().hash_kv(0).unwrap(), (1125682900, 5));
        let mut b = store.begin_batch().unwrap();
        let job = b.compact(3).unwrap();
        b.commit(false).unwrap();
        store.run_compaction(job).unwrap();
        assert_eq!(store.read().hash_kv(0).unwrap(), (1468967122, 5));
        assert!(matches!(
            store.read().hash_kv(3),
            Err(crate::MvccError::Compacted)
        ));
        assert!(matches!(
            store.read().hash_kv(6),
            Err(crate::MvccError::FutureRev)
        ));
    }
}
