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

const MAGIC: &[u8; 11] = b"RETCDSNAP1\n";
const TAG_END: u8 = 0;
const TAG_KEY: u8 = 1;
const TAG_META: u8 = 2;
const TAG_LEASE: u8 = 3;

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
}

impl<R: Read> CrcReader<R> {
    fn take(&mut self, n: usize) -> Result<Vec<u8>, MvccError> {
        let mut buf = vec![0u8; n];
        self.inner
            .read_exact(&mut buf)
            .map_err(|e| corrupt(format!("cut short: {e}")))?;
        self.crc = crc32c::crc32c_append(self.crc, &buf);
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, MvccError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Largest key or value a snapshot record may carry (a sanity bound against garbage).
const MAX_FIELD: u32 = 1 << 30;

impl Store {
    /// Writes a consistent image of the whole store to `out`; returns its size in bytes.
    pub fn write_snapshot(&self, out: impl Write) -> Result<u64, MvccError> {
        let rtx = self.inner.db.begin_read()?;
        let mut w = Crc {
            inner: out,
            crc: 0,
            bytes: 0,
        };
        w.put(MAGIC).map_err(io_err)?;
        let keys = rtx.open_table(KEY_TABLE)?;
        for item in keys.iter()? {
            let (k, v) = item?;
            w.record(TAG_KEY, k.value(), v.value()).map_err(io_err)?;
        }
        let meta = rtx.open_table(META_TABLE)?;
        for item in meta.iter()? {
            let (k, v) = item?;
            w.record(TAG_META, k.value().as_bytes(), v.value())
                .map_err(io_err)?;
        }
        let leases = rtx.open_table(LEASE_TABLE)?;
        for item in leases.iter()? {
            let (k, v) = item?;
            w.record(TAG_LEASE, &k.value().to_be_bytes(), v.value())
                .map_err(io_err)?;
        }
        w.put(&[TAG_END]).map_err(io_err)?;
        let crc = w.crc;
        w.inner.write_all(&crc.to_be_bytes()).map_err(io_err)?;
        w.inner.flush().map_err(io_err)?;
        Ok(w.bytes + 4)
    }

    /// Replaces the store's contents with the image in `input` (from
    /// [`write_snapshot`](Self::write_snapshot)), durably, and rebuilds the key index. The
    /// store is unchanged if the image is invalid. Returns an unfinished compaction found in
    /// the image, to be run like one found at open.
    pub fn restore_snapshot(&self, input: impl Read) -> Result<Option<CompactionJob>, MvccError> {
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
            meta.retain(|_, _| false)?;
            let mut leases = wtx.open_table(LEASE_TABLE)?;
            leases.retain(|_, _| false)?;
            let mut r = CrcReader { inner: input, crc: 0 };
            if r.take(MAGIC.len())? != MAGIC {
                return Err(corrupt("not a retcd snapshot"));
            }
            loop {
                let tag = r.take(1)?[0];
                if tag == TAG_END {
                    break;
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
                match tag {
                    TAG_KEY => {
                        let k: &[u8; 16] =
                            k.as_slice().try_into().map_err(|_| corrupt("bad revision key"))?;
                        keys.insert(k, v.as_slice())?;
                    }
                    TAG_META => {
                        let name = std::str::from_utf8(&k).map_err(|_| corrupt("bad meta name"))?;
                        meta.insert(name, v.as_slice())?;
                    }
                    TAG_LEASE => {
                        let id: [u8; 8] = k.as_slice().try_into().map_err(|_| corrupt("bad lease id"))?;
                        leases.insert(u64::from_be_bytes(id), v.as_slice())?;
                    }
                    other => return Err(corrupt(format!("unknown record tag {other}"))),
                }
            }
            let computed = r.crc;
            let mut trailer = [0u8; 4];
            r.inner
                .read_exact(&mut trailer)
                .map_err(|e| corrupt(format!("no checksum: {e}")))?;
            if u32::from_be_bytes(trailer) != computed {
                return Err(corrupt("checksum mismatch"));
            }
        }
        wtx.commit()?;

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
}
