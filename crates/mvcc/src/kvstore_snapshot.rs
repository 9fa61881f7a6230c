//! Whole-store snapshots (what raft sends to a member that fell behind the compacted log):
//! a consistent image of every table written as a stream, and the restore that replaces a
//! store's contents with such an image. The format is in `docs/backend.md`.
//!
//! Writing reads one redb read transaction, so writers are never blocked; restoring takes
//! the writer slot, replaces every table in one durable write transaction (nothing changes
//! if the image is cut short or its checksum is wrong) and rebuilds the key index.

use std::io::{self, Read, Write};

use redb::ReadableTable;

use crate::MvccError;
use crate::backend::{
    KEY_TABLE, LEASE_TABLE, META_CONSISTENT_INDEX, META_FINISHED_COMPACT, META_SCHEDULED_COMPACT, META_TABLE,
    META_TERM, read_i64, read_u64,
};
use crate::kvstore::{IndexState, Store, load_index};
use crate::kvstore_compaction::CompactionJob;
use crate::kvstore_txn::ReadTxn;

/// The first bytes of every image.
pub const SNAPSHOT_MAGIC: &[u8; 11] = b"RETCDSNAP1\n";
const MAGIC: &[u8; 11] = SNAPSHOT_MAGIC;
const TAG_END: u8 = 0;
const TAG_KEY: u8 = 1;
const TAG_META: u8 = 2;
const TAG_LEASE: u8 = 3;

/// Names of app meta blobs ([`Batch::set_meta`](crate::Batch::set_meta)) that are not part
/// of the replicated state: a member's identity, raft bookkeeping and what `snapshot
/// restore` leaves for the first start. They differ between members (or between a cluster
/// and one restored from its snapshot), so the state hash ([`ReadTxn::hash_state`],
/// [`SnapshotInfo::hash`]) leaves them out, as it leaves out `consistent_index` and `term`.
pub const LOCAL_APP_META: &[&str] = &[
    "member_id",
    "cluster_id",
    "raft_applied_state",
    "restored_members",
];

/// The tables in image (and hash) order.
const TABLE_NAMES: [&[u8]; 3] = [b"key", b"meta", b"lease"];

fn tag_table(tag: u8) -> usize {
    usize::from(tag.saturating_sub(1)).min(2)
}

/// Whether a meta row (its full name in the table) is member-local.
fn local_meta(name: &[u8]) -> bool {
    if name == META_CONSISTENT_INDEX.as_bytes() || name == META_TERM.as_bytes() {
        return true;
    }
    name.strip_prefix(crate::backend::META_APP_PREFIX.as_bytes())
        .is_some_and(|app| LOCAL_APP_META.iter().any(|n| n.as_bytes() == app))
}

/// The state hash: a CRC-32C (Castagnoli, as etcd's hashes) over each table's name
/// followed by its rows in table order, every row as `u32 BE key length, key, u32 BE value
/// length, value`, leaving out member-local meta rows (see [`LOCAL_APP_META`]).
struct StateHash {
    crc: u32,
    /// Tables whose name has been hashed.
    entered: usize,
}

impl StateHash {
    fn new() -> StateHash {
        StateHash { crc: 0, entered: 0 }
    }

    fn enter(&mut self, table: usize) {
        while self.entered <= table {
            self.crc = crc32c::crc32c_append(self.crc, TABLE_NAMES[self.entered]);
            self.entered += 1;
        }
    }

    fn row(&mut self, tag: u8, k: &[u8], v: &[u8]) {
        self.enter(tag_table(tag));
        if tag == TAG_META && local_meta(k) {
            return;
        }
        for part in [k, v] {
            self.crc = crc32c::crc32c_append(self.crc, &(part.len() as u32).to_be_bytes());
            self.crc = crc32c::crc32c_append(self.crc, part);
        }
    }

    fn finish(mut self) -> u32 {
        self.enter(TABLE_NAMES.len() - 1);
        self.crc
    }
}

/// Visits every row of the three tables of `rtx` in image order: (record tag, key, value).
fn visit_tables(
    rtx: &redb::ReadTransaction,
    mut f: impl FnMut(u8, &[u8], &[u8]) -> Result<(), MvccError>,
) -> Result<(), MvccError> {
    let keys = rtx.open_table(KEY_TABLE)?;
    for item in keys.iter()? {
        let (k, v) = item?;
        f(TAG_KEY, k.value(), v.value())?;
    }
    let meta = rtx.open_table(META_TABLE)?;
    for item in meta.iter()? {
        let (k, v) = item?;
        f(TAG_META, k.value().as_bytes(), v.value())?;
    }
    let leases = rtx.open_table(LEASE_TABLE)?;
    for item in leases.iter()? {
        let (k, v) = item?;
        f(TAG_LEASE, &k.value().to_be_bytes(), v.value())?;
    }
    Ok(())
}

/// Bytes of one record in an image.
fn record_len(k: &[u8], v: &[u8]) -> u64 {
    1 + 4 + k.len() as u64 + 4 + v.len() as u64
}

/// A consistent image of a store being taken: one redb read transaction, so its size can
/// be learnt before it is written ([`size`](Self::size), then [`write_to`](Self::write_to))
/// and both see the same contents. Writers are not blocked while it is held (redb keeps
/// the pages it reads until it is dropped, so the file may grow meanwhile).
pub struct SnapshotImage {
    rtx: redb::ReadTransaction,
}

impl SnapshotImage {
    /// The size in bytes [`write_to`](Self::write_to) will write (one pass over the tables).
    pub fn size(&self) -> Result<u64, MvccError> {
        let mut n = MAGIC.len() as u64 + 1 + 4;
        visit_tables(&self.rtx, |_, k, v| {
            n += record_len(k, v);
            Ok(())
        })?;
        Ok(n)
    }

    /// Writes the image to `out`; returns its size in bytes.
    pub fn write_to(&self, out: impl Write) -> Result<u64, MvccError> {
        let mut w = Crc {
            inner: out,
            crc: 0,
            bytes: 0,
        };
        w.put(MAGIC).map_err(io_err)?;
        visit_tables(&self.rtx, |tag, k, v| w.record(tag, k, v).map_err(io_err))?;
        w.put(&[TAG_END]).map_err(io_err)?;
        let crc = w.crc;
        w.inner.write_all(&crc.to_be_bytes()).map_err(io_err)?;
        w.inner.flush().map_err(io_err)?;
        Ok(w.bytes + 4)
    }
}

/// What [`inspect_snapshot`] found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The state hash of the image's contents: equal to [`ReadTxn::hash_state`] of the
    /// store it was taken from, at the revision it was taken at.
    pub hash: u32,
    /// The store's revision in the image (the largest main revision stored, or the
    /// compaction revision if larger), what a member restored from it serves.
    pub revision: i64,
    /// Rows in all tables (etcd's `snapshot status` counts every bucket's keys).
    pub total_keys: u64,
    /// Bytes of the image, from the magic to its checksum.
    pub size: u64,
    /// The raft index the image was applied up to on the member that wrote it.
    pub consistent_index: u64,
}

/// Reads a whole image from `input` (magic, records, end, checksum), handing every record
/// to `f`; returns the image's size. `input` is not read past the checksum.
fn read_image(
    input: impl Read,
    mut f: impl FnMut(u8, Vec<u8>, Vec<u8>) -> Result<(), MvccError>,
) -> Result<u64, MvccError> {
    let mut r = CrcReader {
        inner: input,
        crc: 0,
        bytes: 0,
    };
    if r.take(MAGIC.len())? != MAGIC {
        return Err(corrupt("not a retcd snapshot"));
    }
    loop {
        let tag = r.take(1)?[0];
        if tag == TAG_END {
            break;
        }
        if !(TAG_KEY..=TAG_LEASE).contains(&tag) {
            return Err(corrupt(format!("unknown record tag {tag}")));
        }
        let klen = r.u32()?;
        if klen > MAX_FIELD {
            return Err(corrupt("oversized key"));
        }
        let k = r.take(klen as usize)?;
        let vlen = r.u32()?;
        if vlen > MAX_FIELD {
            return Err(corrupt("oversized value"));
        }
        let v = r.take(vlen as usize)?;
        f(tag, k, v)?;
    }
    let computed = r.crc;
    let mut trailer = [0u8; 4];
    r.inner
        .read_exact(&mut trailer)
        .map_err(|e| corrupt(format!("no checksum: {e}")))?;
    if u32::from_be_bytes(trailer) != computed {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(r.bytes + 4)
}

/// Reads and checks a whole image (format, checksum) without a store: its state hash,
/// revision, row count and size (what `snapshot status` prints).
pub fn inspect_snapshot(input: impl Read) -> Result<SnapshotInfo, MvccError> {
    let mut hash = StateHash::new();
    let (mut max_main, mut compact, mut rows, mut consistent_index) = (0i64, -1i64, 0u64, 0u64);
    let size = read_image(input, |tag, k, v| {
        hash.row(tag, &k, &v);
        rows += 1;
        match tag {
            TAG_KEY => {
                let rb: &[u8; 16] = k.as_slice().try_into().map_err(|_| corrupt("bad revision key"))?;
                max_main = max_main.max(crate::Revision::from_bytes(rb).main);
            }
            TAG_META => {
                let be = || -> Result<u64, MvccError> {
                    let b: [u8; 8] = v.as_slice().try_into().map_err(|_| corrupt("bad meta value"))?;
                    Ok(u64::from_be_bytes(b))
                };
                let name = k.as_slice();
                if name == META_SCHEDULED_COMPACT.as_bytes() || name == META_FINISHED_COMPACT.as_bytes() {
                    compact = compact.max(be()? as i64);
                } else if name == META_CONSISTENT_INDEX.as_bytes() {
                    consistent_index = be()?;
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(SnapshotInfo {
        hash: hash.finish(),
        revision: max_main.max(compact).max(1),
        total_keys: rows,
        size,
        consistent_index,
    })
}

/// Writes everything through `out` while keeping a CRC-32C of it.
struct Crc<W> {
    inner: W,
    crc: u32,
    bytes: u64,
}

impl<W: Write> Crc<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, b);
        self.bytes += b.len() as u64;
        self.inner.write_all(b)
    }

    fn record(&mut self, tag: u8, k: &[u8], v: &[u8]) -> io::Result<()> {
        self.put(&[tag])?;
        self.put(&(k.len() as u32).to_be_bytes())?;
        self.put(k)?;
        self.put(&(v.len() as u32).to_be_bytes())?;
        self.put(v)
    }
}

fn io_err(e: io::Error) -> MvccError {
    MvccError::Backend(format!("snapshot I/O: {e}"))
}

fn corrupt(msg: impl Into<String>) -> MvccError {
    MvccError::Corrupt(format!("snapshot: {}", msg.into()))
}

/// Reads `n` bytes while keeping the CRC.
struct CrcReader<R> {
    inner: R,
    crc: u32,
    bytes: u64,
}

impl<R: Read> CrcReader<R> {
    fn take(&mut self, n: usize) -> Result<Vec<u8>, MvccError> {
        let mut buf = vec![0u8; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| corrupt(format!("cut short: {e}")))?;
        self.crc = crc32c::crc32c_append(self.crc, &buf);
        self.bytes += n as u64;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, MvccError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Largest key or value a snapshot record may carry (a sanity bound against garbage).
const MAX_FIELD: u32 = 1 << 30;

impl ReadTxn {
    /// The state hash of the whole store in this snapshot (every table, leaving out
    /// member-local meta: see [`LOCAL_APP_META`]) and the revision it was taken at.
    /// Equal on every member with the same applied state once compactions have finished
    /// (they delete old revisions in the background on each member).
    pub fn hash_state(&self) -> Result<(u32, i64), MvccError> {
        let rtx = self
            .redb_txn()
            .ok_or_else(|| MvccError::Backend("no read transaction".into()))?;
        let mut hash = StateHash::new();
        visit_tables(rtx, |tag, k, v| {
            hash.row(tag, k, v);
            Ok(())
        })?;
        Ok((hash.finish(), self.rev()))
    }
}

impl Store {
    /// Opens a consistent image of the whole store (see [`SnapshotImage`]).
    pub fn snapshot_image(&self) -> Result<SnapshotImage, MvccError> {
        Ok(SnapshotImage {
            rtx: self.inner.db.begin_read()?,
        })
    }

    /// Writes a consistent image of the whole store to `out`; returns its size in bytes.
    pub fn write_snapshot(&self, out: impl Write) -> Result<u64, MvccError> {
        self.snapshot_image()?.write_to(out)
    }

    /// Replaces the store's contents with the image in `input` (from
    /// [`write_snapshot`](Self::write_snapshot)), durably, and rebuilds the key index. The
    /// store is unchanged if the image is invalid. Returns an unfinished compaction found in
    /// the image, to be run like one found at open.
    pub fn restore_snapshot(&self, input: impl Read) -> Result<Option<CompactionJob>, MvccError> {
        self.restore_snapshot_keeping(input, &[])
    }

    /// [`restore_snapshot`](Self::restore_snapshot), keeping this store's own app meta
    /// blobs named in `keep` (a member's identity must survive an image from another
    /// member): their values in the image are ignored.
    pub fn restore_snapshot_keeping(
        &self,
        input: impl Read,
        keep: &[&str],
    ) -> Result<Option<CompactionJob>, MvccError> {
        let shared = &self.inner;
        let _maintenance = shared
            .maintenance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _token = shared.writer.acquire();
        let wtx = shared.db.begin_write()?;
        {
            let mut keys = wtx.open_table(KEY_TABLE)?;
            keys.retain(|_, _| false)?;
            let mut meta = wtx.open_table(META_TABLE)?;
            let kept: Vec<String> = keep.iter().map(|n| crate::backend::app_meta_name(n)).collect();
            meta.retain(|k, _| kept.iter().any(|n| n == k))?;
            let mut leases = wtx.open_table(LEASE_TABLE)?;
            leases.retain(|_, _| false)?;
            read_image(input, |tag, k, v| {
                match tag {
                    TAG_KEY => {
                        let k: &[u8; 16] =
                            k.as_slice().try_into().map_err(|_| corrupt("bad revision key"))?;
                        keys.insert(k, v.as_slice())?;
                    }
                    TAG_META => {
                        let name = std::str::from_utf8(&k).map_err(|_| corrupt("bad meta name"))?;
                        if !kept.iter().any(|n| n == name) {
                            meta.insert(name, v.as_slice())?;
                        }
                    }
                    _ => {
                        let id: [u8; 8] = k.as_slice().try_into().map_err(|_| corrupt("bad lease id"))?;
                        leases.insert(u64::from_be_bytes(id), v.as_slice())?;
                    }
                }
                Ok(())
            })?;
        }
        wtx.commit()?;
        shared.refresh_file_size();

        // Rebuild the index and the published revisions from the new contents.
        let rtx = shared.db.begin_read()?;
        let meta = rtx.open_table(META_TABLE)?;
        let consistent_index = read_u64(&meta, META_CONSISTENT_INDEX)?.unwrap_or(0);
        let consistent_term = read_u64(&meta, META_TERM)?.unwrap_or(0);
        let scheduled = read_i64(&meta, META_SCHEDULED_COMPACT)?.unwrap_or(-1);
        let finished = read_i64(&meta, META_FINISHED_COMPACT)?.unwrap_or(-1);
        let loaded = load_index(&rtx)?;
        let compact_rev = scheduled.max(finished);
        let current_rev = loaded.max_main.max(compact_rev).max(1);
        {
            use std::sync::atomic::Ordering::Release;
            let mut st = shared.index_write();
            *st = IndexState {
                tree: loaded.tree,
                current_rev,
                compact_rev,
            };
            shared.current_rev.store(current_rev, Release);
            shared.compact_rev.store(compact_rev, Release);
            shared.consistent_index.store(consistent_index, Release);
            shared.consistent_term.store(consistent_term, Release);
        }
        shared.set_leased_at_open(loaded.leased);
        tracing::info!(
            current_revision = current_rev,
            compact_revision = compact_rev,
            consistent_index,
            "mvcc: restored from a snapshot"
        );
        Ok((scheduled > finished).then(|| CompactionJob::new(scheduled)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RangeOptions, StoreConfig};

    fn all(store: &Store) -> Vec<(Vec<u8>, Vec<u8>, i64, i64)> {
        store
            .read()
            .range(b"", b"\0", RangeOptions::default())
            .unwrap()
            .kvs
            .into_iter()
            .map(|kv| (kv.key, kv.value, kv.mod_revision, kv.lease))
            .collect()
    }

    fn filled(dir: &std::path::Path) -> Store {
        let (store, _) = Store::open(&dir.join("a"), StoreConfig::default()).unwrap();
        let mut b = store.begin_batch().unwrap();
        for i in 0..50u32 {
            let mut t = b.txn();
            t.put(
                format!("k{}", i % 7).as_bytes(),
                &i.to_be_bytes(),
                i64::from(i % 3),
            )
            .unwrap();
            t.end();
        }
        let mut t = b.txn();
        t.delete_range(b"k3", b"").unwrap();
        t.end();
        b.put_lease(5, b"lease five").unwrap();
        b.set_meta("applied", b"state").unwrap();
        b.set_consistent_index(77, 3).unwrap();
        b.commit(true).unwrap();
        store
    }

    #[test]
    fn snapshot_roundtrip_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        let mut image = Vec::new();
        let n = src.write_snapshot(&mut image).unwrap();
        assert_eq!(n as usize, image.len());

        let (dst, _) = Store::open(&dir.path().join("b"), StoreConfig::default()).unwrap();
        let mut b = dst.begin_batch().unwrap();
        let mut t = b.txn();
        t.put(b"stale", b"x", 0).unwrap();
        t.end();
        b.put_lease(9, b"stale lease").unwrap();
        b.commit(true).unwrap();

        assert!(dst.restore_snapshot(image.as_slice()).unwrap().is_none());
        assert_eq!(all(&dst), all(&src));
        assert_eq!(dst.current_revision(), src.current_revision());
        assert_eq!(dst.consistent_index(), 77);
        assert_eq!(dst.meta("applied").unwrap().unwrap(), b"state");
        assert_eq!(dst.leases().unwrap(), vec![(5, b"lease five".to_vec())]);
        // history came along
        let old = dst
            .read()
            .range(
                b"k0",
                b"",
                RangeOptions {
                    rev: 2,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(old.kvs.len(), 1);
        let leased: Vec<i64> = dst
            .take_leased_keys_at_open()
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        assert!(leased.iter().all(|l| *l != 0) && !leased.is_empty());
        // it stays writable and survives a reopen
        let mut b = dst.begin_batch().unwrap();
        let mut t = b.txn();
        let rev = t.put(b"after", b"y", 0).unwrap();
        t.end();
        b.commit(true).unwrap();
        assert_eq!(rev, src.current_revision() + 1);
        let path = dir.path().join("b");
        drop(dst);
        let (again, _) = Store::open(&path, StoreConfig::default()).unwrap();
        assert_eq!(again.current_revision(), rev);
    }

    #[test]
    fn bad_images_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        let mut image = Vec::new();
        src.write_snapshot(&mut image).unwrap();
        let before = all(&src);
        let mut flipped = image.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        for bad in [&image[..image.len() - 3], &flipped[..], b"garbage".as_slice()] {
            assert!(src.restore_snapshot(bad).is_err());
            assert_eq!(all(&src), before);
        }
    }

    #[test]
    fn image_size_info_and_state_hash_agree() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        let img = src.snapshot_image().unwrap();
        let size = img.size().unwrap();
        let mut image = Vec::new();
        assert_eq!(img.write_to(&mut image).unwrap(), size);
        assert_eq!(image.len() as u64, size);
        let info = inspect_snapshot(image.as_slice()).unwrap();
        let (hash, rev) = src.read().hash_state().unwrap();
        assert_eq!(info.hash, hash);
        assert_eq!(info.revision, rev);
        assert_eq!(info.revision, src.current_revision());
        assert_eq!(info.size, size);
        assert_eq!(info.consistent_index, 77);
        // 51 key rows, 3 meta rows (consistent_index, term, app/applied), 1 lease
        assert_eq!(info.total_keys, 51 + 3 + 1);
        // trailing bytes are not read
        let mut longer = image.clone();
        longer.extend_from_slice(&[7; 32]);
        assert_eq!(inspect_snapshot(longer.as_slice()).unwrap(), info);
        for bad in [&image[..image.len() - 1], &image[..20]] {
            assert!(inspect_snapshot(bad).is_err());
        }
    }

    #[test]
    fn state_hash_ignores_member_local_meta_only() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        let (h0, _) = src.read().hash_state().unwrap();
        let mut b = src.begin_batch().unwrap();
        b.set_consistent_index(1234, 9).unwrap();
        for name in LOCAL_APP_META {
            b.set_meta(name, b"differs per member").unwrap();
        }
        b.commit(false).unwrap();
        assert_eq!(src.read().hash_state().unwrap().0, h0);
        let mut b = src.begin_batch().unwrap();
        b.set_meta("auth/enabled", &[1]).unwrap();
        b.commit(false).unwrap();
        let (h1, _) = src.read().hash_state().unwrap();
        assert_ne!(h1, h0);
        let mut b = src.begin_batch().unwrap();
        b.put_lease(6, b"six").unwrap();
        b.commit(false).unwrap();
        assert_ne!(src.read().hash_state().unwrap().0, h1);
        // an empty store hashes the three table names
        let (empty, _) = Store::open(&dir.path().join("e"), StoreConfig::default()).unwrap();
        assert_eq!(
            empty.read().hash_state().unwrap().0,
            crc32c::crc32c(b"keymetalease")
        );
    }

    #[test]
    fn restore_keeps_the_named_local_meta() {
        let dir = tempfile::tempdir().unwrap();
        let src = filled(dir.path());
        let mut b = src.begin_batch().unwrap();
        b.set_meta("member_id", b"leader").unwrap();
        b.set_meta("cluster_id", b"c").unwrap();
        b.commit(true).unwrap();
        let mut image = Vec::new();
        src.write_snapshot(&mut image).unwrap();
        let (dst, _) = Store::open(&dir.path().join("b"), StoreConfig::default()).unwrap();
        let mut b = dst.begin_batch().unwrap();
        b.set_meta("member_id", b"follower").unwrap();
        b.commit(true).unwrap();
        dst.restore_snapshot_keeping(image.as_slice(), &["member_id"])
            .unwrap();
        assert_eq!(dst.meta("member_id").unwrap().unwrap(), b"follower");
        assert_eq!(dst.meta("cluster_id").unwrap().unwrap(), b"c");
        assert_eq!(dst.meta("applied").unwrap().unwrap(), b"state");
        assert_eq!(all(&dst), all(&src));
    }
}
