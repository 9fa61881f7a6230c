//! The in-memory key index (etcd's `server/mvcc/index.go`): every key's
//! [`KeyIndex`], ordered by key.
//!
//! The tree only maps keys to revisions; values live in the backend under their
//! revision. The store wraps it in an `RwLock` (see `store.rs` for the locking rules).

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;

use crate::MvccError;
use crate::key_index::{KeyIndex, TombstoneError};
use crate::revision::Revision;

/// Bounds of a [`KeySpan`] for `BTreeMap::range`.
type KeyBounds<'k> = (Bound<&'k [u8]>, Bound<&'k [u8]>);

/// The keys a range request covers (etcd's `key`/`range_end` convention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeySpan<'k> {
    /// `end` empty: just `key`.
    Single(&'k [u8]),
    /// `end == [0]`: every key `>= key`.
    From(&'k [u8]),
    /// `[key, end)` with `key < end`.
    Between(&'k [u8], &'k [u8]),
    /// `end <= key`: nothing.
    Nothing,
}

impl<'k> KeySpan<'k> {
    pub(crate) fn new(key: &'k [u8], end: &'k [u8]) -> Self {
        match end {
            [] => KeySpan::Single(key),
            [0] => KeySpan::From(key),
            _ if end <= key => KeySpan::Nothing,
            _ => KeySpan::Between(key, end),
        }
    }

    fn bounds(self) -> Option<KeyBounds<'k>> {
        match self {
            KeySpan::Single(k) => Some((Bound::Included(k), Bound::Included(k))),
            KeySpan::From(k) => Some((Bound::Included(k), Bound::Unbounded)),
            KeySpan::Between(k, e) => Some((Bound::Included(k), Bound::Excluded(e))),
            KeySpan::Nothing => None,
        }
    }
}

/// Every key's revision history, ordered by key (etcd's `treeIndex`).
#[derive(Debug, Default)]
pub(crate) struct TreeIndex {
    tree: BTreeMap<Vec<u8>, KeyIndex>,
}

fn not_monotonic(key: &[u8], e: crate::key_index::NotMonotonic) -> MvccError {
    MvccError::Corrupt(format!(
        "index: revision {} of key {:?} is not after its last revision {}",
        e.given,
        String::from_utf8_lossy(key),
        e.modified
    ))
}

impl TreeIndex {
    fn iter_span<'s>(&'s self, span: KeySpan<'_>) -> impl Iterator<Item = (&'s Vec<u8>, &'s KeyIndex)> {
        let range = span.bounds().map(|b| self.tree.range::<[u8], _>(b));
        range.into_iter().flatten()
    }

    /// Number of keys (including keys whose last generation is a tombstone awaiting
    /// compaction).
    pub(crate) fn len(&self) -> usize {
        self.tree.len()
    }

    /// Records a put of `key` at `rev`; returns the create revision and version of the
    /// key after it.
    pub(crate) fn put(&mut self, key: &[u8], rev: Revision) -> Result<(Revision, i64), MvccError> {
        match self.tree.get_mut(key) {
            Some(ki) => ki.put(rev).map_err(|e| not_monotonic(key, e)),
            None => {
                let mut ki = KeyIndex::default();
                let out = ki.put(rev).map_err(|e| not_monotonic(key, e))?;
                self.tree.insert(key.to_vec(), ki);
                Ok(out)
            }
        }
    }

    /// Replays one stored record while rebuilding the index on open (etcd's
    /// `restoreIntoIndex`). A tombstone of an unknown key is skipped (its puts were
    /// compacted away); the first put seen of an unknown key starts a generation with
    /// the stored create revision and version.
    pub(crate) fn restore(
        &mut self,
        key: &[u8],
        rev: Revision,
        tombstone: bool,
        create_revision: i64,
        version: i64,
    ) -> Result<(), MvccError> {
        match self.tree.get_mut(key) {
            Some(ki) if tombstone => match ki.tombstone(rev) {
                Ok(()) => Ok(()),
                Err(TombstoneError::NotAlive) => {
                    tracing::warn!(revision = %rev, "mvcc: restore: tombstone of a key that is not alive");
                    Ok(())
                }
                Err(TombstoneError::NotMonotonic(e)) => Err(not_monotonic(key, e)),
            },
            Some(ki) => ki.put(rev).map(drop).map_err(|e| not_monotonic(key, e)),
            None if tombstone => Ok(()),
            None => {
                self.tree.insert(
                    key.to_vec(),
                    KeyIndex::restored(Revision::new(create_revision, 0), rev, version),
                );
                Ok(())
            }
        }
    }

    /// Deletes every key of `span` alive at `at`: writes tombstones at `main` with sub
    /// revisions `first_sub, first_sub + 1, ...` in key order. Returns the deleted keys.
    pub(crate) fn tombstone_span(
        &mut self,
        span: KeySpan<'_>,
        at: i64,
        main: i64,
        first_sub: i64,
    ) -> Result<Vec<Vec<u8>>, MvccError> {
        let mut deleted = Vec::new();
        let Some(bounds) = span.bounds() else {
            return Ok(deleted);
        };
        let mut sub = first_sub;
        for (key, ki) in self.tree.range_mut::<[u8], _>(bounds) {
            if !ki.alive_at(at) {
                continue;
            }
            match ki.tombstone(Revision::new(main, sub)) {
                Ok(()) => {}
                Err(TombstoneError::NotAlive) => continue,
                Err(TombstoneError::NotMonotonic(e)) => return Err(not_monotonic(key, e)),
            }
            sub = sub.saturating_add(1);
            deleted.push(key.clone());
        }
        Ok(deleted)
    }

    /// The value revisions of the keys of `span` alive at `at`, in key order, at most
    /// `limit` of them (all if `limit == 0`), and the number of such keys regardless of
    /// `limit` (etcd's `treeIndex.Revisions`).
    pub(crate) fn revisions(&self, span: KeySpan<'_>, at: i64, limit: usize) -> (Vec<Revision>, usize) {
        let mut revs = Vec::new();
        let mut total = 0usize;
        for (_, ki) in self.iter_span(span) {
            if let Ok(found) = ki.get(at) {
                if limit == 0 || revs.len() < limit {
                    revs.push(found.modified);
                }
                total += 1;
            }
        }
        (revs, total)
    }

    /// The number of keys of `span` alive at `at` (etcd's `CountRevisions`).
    pub(crate) fn count(&self, span: KeySpan<'_>, at: i64) -> usize {
        self.iter_span(span).filter(|(_, ki)| ki.alive_at(at)).count()
    }

    /// Compacts at most `max_keys` key indexes at `at`, starting after `resume_after`
    /// (from the first key if `None`), removing the ones left empty and adding the kept
    /// revisions to `available` (a slice of etcd's `treeIndex.Compact`). Returns the last
    /// key visited if more keys may follow.
    pub(crate) fn compact_chunk(
        &mut self,
        at: i64,
        resume_after: Option<&[u8]>,
        max_keys: usize,
        available: &mut HashSet<Revision>,
    ) -> Option<Vec<u8>> {
        let lower = match resume_after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut emptied = Vec::new();
        let mut visited = 0usize;
        let mut last: Option<&Vec<u8>> = None;
        for (key, ki) in self.tree.range_mut::<[u8], _>((lower, Bound::Unbounded)) {
            if visited >= max_keys {
                break;
            }
            visited += 1;
            ki.compact(at, available);
            if ki.is_empty() {
                emptied.push(key.clone());
            }
            last = Some(key);
        }
        let resume = if visited >= max_keys { last.cloned() } else { None };
        for key in emptied {
            self.tree.remove(&key);
        }
        resume
    }

    /// Forgets every revision after `after` (an uncommitted write batch), removing keys
    /// left without revisions.
    pub(crate) fn rollback(&mut self, after: i64) {
        self.tree.retain(|_, ki| !ki.rollback(after));
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KeyIndex> {
        self.tree.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64, sub: i64) -> Revision {
        Revision::new(main, sub)
    }

    /// a: put@2, put@5; b: put@3, deleted@4; c: put@4; ab: put@6
    fn sample() -> TreeIndex {
        let mut t = TreeIndex::default();
        t.put(b"a", r(2, 0)).unwrap();
        t.put(b"b", r(3, 0)).unwrap();
        assert_eq!(
            t.tombstone_span(KeySpan::Single(b"b"), 4, 4, 0).unwrap(),
            vec![b"b".to_vec()]
        );
        t.put(b"c", r(4, 1)).unwrap();
        t.put(b"a", r(5, 0)).unwrap();
        t.put(b"ab", r(6, 0)).unwrap();
        t
    }

    #[test]
    fn key_span() {
        assert_eq!(KeySpan::new(b"a", b""), KeySpan::Single(b"a"));
        assert_eq!(KeySpan::new(b"a", b"\0"), KeySpan::From(b"a"));
        assert_eq!(KeySpan::new(b"", b"\0"), KeySpan::From(b""));
        assert_eq!(KeySpan::new(b"b", b"a"), KeySpan::Nothing);
        assert_eq!(KeySpan::new(b"a", b"a"), KeySpan::Nothing);
        assert_eq!(KeySpan::new(b"a", b"b"), KeySpan::Between(b"a", b"b"));
    }

    #[test]
    fn ranges() {
        let t = sample();
        let all = KeySpan::From(b"");
        assert_eq!(t.revisions(all, 1, 0), (vec![], 0));
        assert_eq!(t.revisions(all, 3, 0), (vec![r(2, 0), r(3, 0)], 2));
        assert_eq!(t.revisions(all, 4, 0), (vec![r(2, 0), r(4, 1)], 2));
        assert_eq!(t.revisions(all, 6, 0), (vec![r(5, 0), r(6, 0), r(4, 1)], 3));
        assert_eq!(t.revisions(all, 6, 2), (vec![r(5, 0), r(6, 0)], 3));
        assert_eq!(
            t.revisions(KeySpan::new(b"a", b"b"), 6, 0),
            (vec![r(5, 0), r(6, 0)], 2)
        );
        assert_eq!(
            t.revisions(KeySpan::new(b"ab", b"\0"), 6, 0),
            (vec![r(6, 0), r(4, 1)], 2)
        );
        assert_eq!(t.revisions(KeySpan::new(b"b", b""), 3, 0), (vec![r(3, 0)], 1));
        assert_eq!(t.revisions(KeySpan::new(b"b", b""), 4, 0), (vec![], 0));
        assert_eq!(t.revisions(KeySpan::new(b"c", b"a"), 6, 0), (vec![], 0));
        assert_eq!(t.count(all, 6), 3);
        assert_eq!(t.count(all, 3), 2);
    }

    #[test]
    fn delete_range_only_live_keys() {
        let mut t = sample();
        let deleted = t.tombstone_span(KeySpan::From(b""), 6, 7, 0).unwrap();
        assert_eq!(deleted, vec![b"a".to_vec(), b"ab".to_vec(), b"c".to_vec()]);
        assert!(t.get(b"c").unwrap().get(7).is_err());
        assert_eq!(t.count(KeySpan::From(b""), 7), 0);
        assert_eq!(t.count(KeySpan::From(b""), 6), 3);
    }

    #[test]
    fn compaction_in_chunks_removes_empty_keys() {
        let mut t = sample();
        let mut avail = HashSet::new();
        let mut resume = None;
        loop {
            resume = t.compact_chunk(4, resume.as_deref(), 1, &mut avail);
            if resume.is_none() {
                break;
            }
        }
        // b's only generation ended at 4: gone. a keeps 2, c keeps 4.1.
        assert!(t.get(b"b").is_none());
        assert_eq!(avail, [r(2, 0), r(4, 1)].into_iter().collect());
        assert_eq!(t.len(), 3);
        assert_eq!(t.revisions(KeySpan::From(b""), 4, 0), (vec![r(2, 0), r(4, 1)], 2));
    }

    #[test]
    fn rollback_removes_new_keys() {
        let mut t = sample();
        t.rollback(4);
        assert!(t.get(b"ab").is_none());
        assert_eq!(
            t.revisions(KeySpan::From(b""), 10, 0),
            (vec![r(2, 0), r(4, 1)], 2)
        );
        t.put(b"a", r(5, 0)).unwrap();
        t.rollback(2);
        assert_eq!(t.len(), 1);
        assert_eq!(t.revisions(KeySpan::From(b""), 10, 0), (vec![r(2, 0)], 1));
    }

    #[test]
    fn restore_skips_orphan_tombstones() {
        let mut t = TreeIndex::default();
        t.restore(b"x", r(4, 0), true, 0, 0).unwrap();
        assert_eq!(t.len(), 0);
        t.restore(b"x", r(5, 0), false, 3, 2).unwrap();
        t.restore(b"x", r(6, 0), true, 0, 0).unwrap();
        t.restore(b"x", r(7, 0), false, 7, 1).unwrap();
        let ki = t.get(b"x").unwrap();
        let f = ki.get(5).unwrap();
        assert_eq!((f.created, f.ver), (r(3, 0), 2));
        assert!(ki.get(6).is_err());
        let f = ki.get(7).unwrap();
        assert_eq!((f.created, f.ver), (r(7, 0), 1));
    }
}
