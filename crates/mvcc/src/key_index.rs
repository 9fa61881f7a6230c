//! The revision history of one key (etcd's `server/mvcc/key_index.go`).
//!
//! A [`KeyIndex`] records every revision at which its key changed, grouped into
//! *generations*. A generation is one life of the key: it starts with the put that
//! creates the key and, unless it is the last generation, ends with the *tombstone*
//! revision of the delete that removed it. A delete therefore appends the tombstone to
//! the current generation and opens a new, empty generation; the next put starts that
//! generation again. Each generation remembers its `created` revision (the key's
//! `create_revision` during that life) and `ver`, the number of revisions in it (the
//! key's `version` after its last put; the tombstone counts too, but it is never read).
//!
//! # Worked example
//!
//! History of key `foo` (each line one write txn; `main.sub` revisions):
//!
//! ```text
//! rev 2.0   put foo=a          create_revision 2, version 1
//! rev 3.0   put foo=b          create_revision 2, version 2
//! rev 4.0   delete foo         tombstone
//! rev 5.0   put foo=c          create_revision 5, version 1   (a new life)
//! rev 6.0   put bar=x ; put foo=d  (foo gets 6.1)  create_revision 5, version 2
//! rev 7.0   delete foo         tombstone
//! ```
//!
//! gives the key index
//!
//! ```text
//! modified: 7.0
//! generations:
//!   [0] created 2.0, ver 3: {2.0, 3.0, 4.0(t)}
//!   [1] created 5.0, ver 3: {5.0, 6.1, 7.0(t)}
//!   [2] {empty}
//! ```
//!
//! Reading `foo` at a revision looks for the generation alive then and its last revision
//! not after it: at rev 3 that is 3.0 (version 2, created 2); at rev 4 the key is deleted
//! (generation 0 ended with a tombstone at 4 <= 4); at rev 6 it is 6.1 (version 2, created
//! 5); at rev 1 and at rev >= 7 the key does not exist.
//!
//! Compacting at a revision keeps, of everything not after it, only the latest revision,
//! and only if that is not a tombstone; generations entirely before it are dropped:
//!
//! ```text
//! compact(3): [0] {3.0, 4.0(t)}   [1] {5.0, 6.1, 7.0(t)}   [2] {empty}     keeps 3.0
//! compact(4): [1] {5.0, 6.1, 7.0(t)}   [2] {empty}                          keeps nothing
//! compact(6): [1] {6.1, 7.0(t)}   [2] {empty}                               keeps 6.1
//! compact(7): [2] {empty}  -> the key index is empty and is removed          keeps nothing
//! ```
//!
//! The "keeps" column is what the backend must retain at or below the compaction
//! revision for this key; every other revision at or below it can be deleted.

use std::collections::HashSet;

use crate::revision::Revision;

/// One life of a key: from the put that created it to (unless it is the last one) its
/// tombstone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Generation {
    /// Number of revisions in this generation (including a tombstone and revisions
    /// since compacted away).
    pub(crate) ver: i64,
    /// The revision that created the key in this generation.
    pub(crate) created: Revision,
    /// The revisions of this generation, ascending. Non-last generations end with a
    /// tombstone.
    pub(crate) revs: Vec<Revision>,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// Appends `rev`; returns the create revision and the new version.
    fn push(&mut self, rev: Revision) -> (Revision, i64) {
        if self.revs.is_empty() {
            // A new life of the key.
            self.created = rev;
            self.ver = 0;
        }
        self.revs.push(rev);
        self.ver = self.ver.saturating_add(1);
        (self.created, self.ver)
    }

    /// Removes the last revision (rolling back an uncommitted change).
    fn pop(&mut self) {
        self.revs.pop();
        self.ver = self.ver.saturating_sub(1);
        if self.revs.is_empty() {
            *self = Generation::default();
        }
    }

    /// Position of the last revision whose main revision is `<= at` (etcd's
    /// `generation.walk` looking for the first revision not after `at`).
    fn last_at_or_before(&self, at: i64) -> Option<usize> {
        self.revs.partition_point(|r| r.main <= at).checked_sub(1)
    }
}

/// A key's revision was not found at the asked revision (etcd's `ErrRevisionNotFound`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RevisionNotFound;

/// A revision not after the key's last one was given to [`KeyIndex::put`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotMonotonic {
    pub(crate) modified: Revision,
    pub(crate) given: Revision,
}

/// What [`KeyIndex::get`] finds: the revision of the key's value at the asked revision,
/// the generation's create revision and the key's version then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) modified: Revision,
    pub(crate) created: Revision,
    pub(crate) ver: i64,
}

/// The revision history of one key, see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyIndex {
    /// The last revision of the key (put or tombstone).
    modified: Revision,
    /// Whether the key is alive after `modified` (its last generation is not empty): kept
    /// beside `modified` so that counting keys at the current revision never leaves the
    /// index tree's nodes (see [`KeyIndex::alive_at`]).
    alive: bool,
    generations: Vec<Generation>,
}

impl KeyIndex {
    /// A key index holding one generation rebuilt from a stored record (etcd's
    /// `keyIndex.restore`): the record at `modified` is a put with the given
    /// `create_revision` and `version`.
    pub(crate) fn restored(created: Revision, modified: Revision, ver: i64) -> Self {
        KeyIndex {
            modified,
            alive: true,
            generations: vec![Generation {
                ver,
                created,
                revs: vec![modified],
            }],
        }
    }

    /// Whether the key has no revision at all (a single empty generation, or none).
    pub(crate) fn is_empty(&self) -> bool {
        match self.generations.as_slice() {
            [] => true,
            [g] => g.is_empty(),
            _ => false,
        }
    }

    /// Records a put at `rev`; returns the generation's create revision and the new
    /// version of the key.
    pub(crate) fn put(&mut self, rev: Revision) -> Result<(Revision, i64), NotMonotonic> {
        if !rev.greater_than(self.modified) {
            return Err(NotMonotonic {
                modified: self.modified,
                given: rev,
            });
        }
        self.modified = rev;
        self.alive = true;
        match self.generations.last_mut() {
            Some(g) => Ok(g.push(rev)),
            None => {
                let mut g = Generation::default();
                let out = g.push(rev);
                self.generations.push(g);
                Ok(out)
            }
        }
    }

    /// Records a delete at `rev`: appends the tombstone to the current generation and
    /// opens a new empty one. Fails if the key is not alive (its last generation is
    /// empty).
    pub(crate) fn tombstone(&mut self, rev: Revision) -> Result<(), TombstoneError> {
        match self.generations.last() {
            Some(g) if !g.is_empty() => {}
            _ => return Err(TombstoneError::NotAlive),
        }
        self.put(rev).map_err(TombstoneError::NotMonotonic)?;
        self.generations.push(Generation::default());
        self.alive = false;
        Ok(())
    }

    /// The key's value revision, create revision and version at `at`, if the key was
    /// alive then.
    pub(crate) fn get(&self, at: i64) -> Result<Found, RevisionNotFound> {
        let g = self.find_generation(at).ok_or(RevisionNotFound)?;
        let n = g.last_at_or_before(at).ok_or(RevisionNotFound)?;
        let modified = *g.revs.get(n).ok_or(RevisionNotFound)?;
        // Revisions of this generation after `at` did not happen yet.
        let later = g.revs.len().saturating_sub(n + 1);
        let ver = g.ver.saturating_sub(i64::try_from(later).unwrap_or(i64::MAX));
        Ok(Found {
            modified,
            created: g.created,
            ver,
        })
    }

    /// Whether the key is alive at `at`. At or after its last revision (every count at the
    /// current revision) this is the `alive` flag, without a look at the generations.
    pub(crate) fn alive_at(&self, at: i64) -> bool {
        if at >= self.modified.main {
            debug_assert_eq!(self.alive, self.get(at).is_ok(), "alive flag of {self:?} at {at}");
            return self.alive;
        }
        self.get(at).is_ok()
    }

    fn refresh_alive(&mut self) {
        self.alive = self.generations.last().is_some_and(|g| !g.is_empty());
    }

    /// The generation the key is in at revision `rev`, or `None` if the key does not
    /// exist then (etcd's `findGeneration`).
    fn find_generation(&self, rev: i64) -> Option<&Generation> {
        let last = self.generations.len().checked_sub(1)?;
        for (i, g) in self.generations.iter().enumerate().rev() {
            let (Some(first), Some(end)) = (g.revs.first(), g.revs.last()) else {
                continue;
            };
            if i != last && end.main <= rev {
                // The generation ended with a tombstone at or before `rev`.
                return None;
            }
            if first.main <= rev {
                return Some(g);
            }
        }
        None
    }

    /// Compacts the history at `at` (etcd's `keyIndex.compact`): of the revisions not
    /// after `at`, keeps only the latest one, unless it is a tombstone, and drops the
    /// generations entirely before it. The kept revision (if any) is added to
    /// `available`. The caller removes the key index if it [`is_empty`](Self::is_empty)
    /// afterwards.
    pub(crate) fn compact(&mut self, at: i64, available: &mut HashSet<Revision>) {
        if self.is_empty() {
            return;
        }
        let (mut gen_idx, rev_idx) = self.do_compact(at, available);
        let last = self.generations.len().saturating_sub(1);
        if let Some(g) = self.generations.get_mut(gen_idx)
            && !g.is_empty()
        {
            // Remove the revisions before the kept one.
            if let Some(ri) = rev_idx {
                g.revs.drain(..ri);
            }
            // A non-last generation reduced to a single revision holds only its
            // tombstone: drop it.
            if g.revs.len() == 1 && gen_idx != last {
                if let Some(t) = g.revs.first() {
                    available.remove(t);
                }
                gen_idx += 1;
            }
        }
        self.generations.drain(..gen_idx.min(self.generations.len()));
        self.refresh_alive();
    }

    /// Finds the generation that contains `at` or was created after it, and in it the
    /// latest revision not after `at` (added to `available`). Etcd's `doCompact`.
    fn do_compact(&self, at: i64, available: &mut HashSet<Revision>) -> (usize, Option<usize>) {
        let mut gen_idx = 0;
        while gen_idx + 1 < self.generations.len() {
            let tomb_after = self
                .generations
                .get(gen_idx)
                .and_then(|g| g.revs.last())
                .is_some_and(|t| t.main > at);
            if tomb_after {
                break;
            }
            gen_idx += 1;
        }
        let rev_idx = self.generations.get(gen_idx).and_then(|g| {
            let i = g.last_at_or_before(at)?;
            if let Some(r) = g.revs.get(i) {
                available.insert(*r);
            }
            Some(i)
        });
        (gen_idx, rev_idx)
    }

    /// Forgets every revision whose main revision is after `after` (the revisions of a
    /// write batch that was not committed), restoring the index to what it was when
    /// `after` was the current revision. Returns whether the key index is now empty.
    pub(crate) fn rollback(&mut self, after: i64) -> bool {
        loop {
            let len = self.generations.len();
            let Some(g) = self.generations.last_mut() else {
                break;
            };
            if let Some(r) = g.revs.last() {
                if r.main > after {
                    g.pop();
                    continue;
                }
                break;
            }
            // The last generation is empty: it was opened by the tombstone ending the
            // previous one. Undo that tombstone too if it is rolled back.
            if len < 2 {
                break;
            }
            let prev_tomb_after = self
                .generations
                .get(len - 2)
                .and_then(|p| p.revs.last())
                .is_some_and(|t| t.main > after);
            if !prev_tomb_after {
                break;
            }
            self.generations.pop();
            if let Some(p) = self.generations.last_mut() {
                p.pop();
            }
        }
        self.modified = self
            .generations
            .iter()
            .rev()
            .find_map(|g| g.revs.last().copied())
            .unwrap_or_default();
        self.refresh_alive();
        self.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn generations(&self) -> &[Generation] {
        &self.generations
    }
}

/// Why [`KeyIndex::tombstone`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TombstoneError {
    /// The key is not alive.
    NotAlive,
    /// The tombstone's revision is not after the key's last revision.
    NotMonotonic(NotMonotonic),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(main: i64, sub: i64) -> Revision {
        Revision::new(main, sub)
    }

    fn g(created: (i64, i64), ver: i64, revs: &[(i64, i64)]) -> Generation {
        Generation {
            ver,
            created: r(created.0, created.1),
            revs: revs.iter().map(|&(m, s)| r(m, s)).collect(),
        }
    }

    /// The module documentation's example.
    fn doc_example() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(2, 0)).unwrap();
        ki.put(r(3, 0)).unwrap();
        ki.tombstone(r(4, 0)).unwrap();
        ki.put(r(5, 0)).unwrap();
        ki.put(r(6, 1)).unwrap();
        ki.tombstone(r(7, 0)).unwrap();
        ki
    }

    #[test]
    fn doc_example_generations() {
        let ki = doc_example();
        assert_eq!(
            ki.generations(),
            &[
                g((2, 0), 3, &[(2, 0), (3, 0), (4, 0)]),
                g((5, 0), 3, &[(5, 0), (6, 1), (7, 0)]),
                Generation::default(),
            ]
        );
        assert_eq!(ki.modified, r(7, 0));
        let at = |rev| ki.get(rev).map(|f| (f.modified, f.created.main, f.ver));
        assert_eq!(at(1), Err(RevisionNotFound));
        assert_eq!(at(2), Ok((r(2, 0), 2, 1)));
        assert_eq!(at(3), Ok((r(3, 0), 2, 2)));
        assert_eq!(at(4), Err(RevisionNotFound));
        assert_eq!(at(5), Ok((r(5, 0), 5, 1)));
        assert_eq!(at(6), Ok((r(6, 1), 5, 2)));
        assert_eq!(at(7), Err(RevisionNotFound));
        assert_eq!(at(100), Err(RevisionNotFound));
    }

    #[test]
    fn doc_example_compactions() {
        let cases: &[(i64, &[Generation], &[Revision])] = &[
            (
                3,
                &[
                    g((2, 0), 3, &[(3, 0), (4, 0)]),
                    g((5, 0), 3, &[(5, 0), (6, 1), (7, 0)]),
                    Generation {
                        ver: 0,
                        created: r(0, 0),
                        revs: vec![],
                    },
                ],
                &[r(3, 0)],
            ),
            (
                4,
                &[g((5, 0), 3, &[(5, 0), (6, 1), (7, 0)]), Generation::default()],
                &[],
            ),
            (
                6,
                &[g((5, 0), 3, &[(6, 1), (7, 0)]), Generation::default()],
                &[r(6, 1)],
            ),
            (7, &[Generation::default()], &[]),
        ];
        for (at, want, keep) in cases {
            let mut ki = doc_example();
            let mut avail = HashSet::new();
            ki.compact(*at, &mut avail);
            assert_eq!(ki.generations(), *want, "compact({at})");
            assert_eq!(
                avail,
                keep.iter().copied().collect::<HashSet<_>>(),
                "compact({at})"
            );
        }
        let mut ki = doc_example();
        ki.compact(7, &mut HashSet::new());
        assert!(ki.is_empty());
    }

    /// etcd's `TestKeyIndexCompactAndKeep` history.
    fn etcd_example() -> KeyIndex {
        let mut ki = KeyIndex::default();
        ki.put(r(2, 0)).unwrap();
        ki.put(r(4, 0)).unwrap();
        ki.tombstone(r(6, 0)).unwrap();
        ki.put(r(8, 0)).unwrap();
        ki.put(r(10, 0)).unwrap();
        ki.tombstone(r(12, 0)).unwrap();
        ki.put(r(14, 0)).unwrap();
        ki.put(r(14, 1)).unwrap();
        ki.tombstone(r(16, 0)).unwrap();
        ki
    }

    fn etcd_expectations() -> Vec<(i64, Vec<Generation>, Vec<Revision>)> {
        let g0 = |revs: &[(i64, i64)]| g((2, 0), 3, revs);
        let g1 = |revs: &[(i64, i64)]| g((8, 0), 3, revs);
        let g2 = |revs: &[(i64, i64)]| g((14, 0), 3, revs);
        let e = Generation::default;
        let full1 = g1(&[(8, 0), (10, 0), (12, 0)]);
        let full2 = g2(&[(14, 0), (14, 1), (16, 0)]);
        vec![
            (
                1,
                vec![g0(&[(2, 0), (4, 0), (6, 0)]), full1.clone(), full2.clone(), e()],
                vec![],
            ),
            (
                2,
                vec![g0(&[(2, 0), (4, 0), (6, 0)]), full1.clone(), full2.clone(), e()],
                vec![r(2, 0)],
            ),
            (
                3,
                vec![g0(&[(2, 0), (4, 0), (6, 0)]), full1.clone(), full2.clone(), e()],
                vec![r(2, 0)],
            ),
            (
                4,
                vec![g0(&[(4, 0), (6, 0)]), full1.clone(), full2.clone(), e()],
                vec![r(4, 0)],
            ),
            (
                5,
                vec![g0(&[(4, 0), (6, 0)]), full1.clone(), full2.clone(), e()],
                vec![r(4, 0)],
            ),
            (6, vec![full1.clone(), full2.clone(), e()], vec![]),
            (7, vec![full1.clone(), full2.clone(), e()], vec![]),
            (8, vec![full1.clone(), full2.clone(), e()], vec![r(8, 0)]),
            (9, vec![full1.clone(), full2.clone(), e()], vec![r(8, 0)]),
            (
                10,
                vec![g1(&[(10, 0), (12, 0)]), full2.clone(), e()],
                vec![r(10, 0)],
            ),
            (
                11,
                vec![g1(&[(10, 0), (12, 0)]), full2.clone(), e()],
                vec![r(10, 0)],
            ),
            (12, vec![full2.clone(), e()], vec![]),
            (13, vec![full2.clone(), e()], vec![]),
            (14, vec![g2(&[(14, 1), (16, 0)]), e()], vec![r(14, 1)]),
            (15, vec![g2(&[(14, 1), (16, 0)]), e()], vec![r(14, 1)]),
            (16, vec![e()], vec![]),
            (17, vec![e()], vec![]),
        ]
    }

    #[test]
    fn etcd_compact_each_from_scratch() {
        for (at, want, keep) in etcd_expectations() {
            let mut ki = etcd_example();
            let mut avail = HashSet::new();
            ki.compact(at, &mut avail);
            assert_eq!(ki.generations(), want.as_slice(), "compact({at})");
            assert_eq!(avail, keep.into_iter().collect::<HashSet<_>>(), "compact({at})");
        }
    }

    #[test]
    fn etcd_compact_incrementally() {
        let mut ki = etcd_example();
        for (at, want, keep) in etcd_expectations() {
            let mut avail = HashSet::new();
            ki.compact(at, &mut avail);
            assert_eq!(ki.generations(), want.as_slice(), "compact({at})");
            assert_eq!(avail, keep.into_iter().collect::<HashSet<_>>(), "compact({at})");
        }
        assert!(ki.is_empty());
    }

    #[test]
    fn reads_after_compaction_unchanged() {
        let full = etcd_example();
        for at in 1..=17 {
            let mut ki = etcd_example();
            ki.compact(at, &mut HashSet::new());
            for read in at..=18 {
                assert_eq!(ki.get(read), full.get(read), "compact({at}) read({read})");
            }
        }
    }

    #[test]
    fn put_requires_increasing_revisions() {
        let mut ki = KeyIndex::default();
        ki.put(r(5, 0)).unwrap();
        assert!(ki.put(r(5, 0)).is_err());
        assert!(ki.put(r(4, 9)).is_err());
        assert_eq!(ki.put(r(5, 1)), Ok((r(5, 0), 2)));
    }

    #[test]
    fn tombstone_requires_live_key() {
        let mut ki = KeyIndex::default();
        assert_eq!(ki.tombstone(r(2, 0)), Err(TombstoneError::NotAlive));
        ki.put(r(2, 0)).unwrap();
        ki.tombstone(r(3, 0)).unwrap();
        assert_eq!(ki.tombstone(r(4, 0)), Err(TombstoneError::NotAlive));
    }

    #[test]
    fn restored_generation_keeps_version() {
        let mut ki = KeyIndex::restored(r(3, 0), r(9, 2), 4);
        assert_eq!(ki.get(9).map(|f| (f.created, f.ver)), Ok((r(3, 0), 4)));
        assert_eq!(ki.put(r(10, 0)), Ok((r(3, 0), 5)));
        assert_eq!(ki.get(8), Err(RevisionNotFound));
    }

    #[test]
    fn rollback_undoes_uncommitted_revisions() {
        let full = etcd_example();
        for after in 0..=16 {
            // Replay only the history up to `after`.
            let mut want = KeyIndex::default();
            let ops: &[(i64, i64, bool)] = &[
                (2, 0, false),
                (4, 0, false),
                (6, 0, true),
                (8, 0, false),
                (10, 0, false),
                (12, 0, true),
                (14, 0, false),
                (14, 1, false),
                (16, 0, true),
            ];
            for &(m, s, tomb) in ops.iter().filter(|o| o.0 <= after) {
                if tomb {
                    want.tombstone(r(m, s)).unwrap();
                } else {
                    want.put(r(m, s)).unwrap();
                }
            }
            let mut ki = full.clone();
            let empty = ki.rollback(after);
            assert_eq!(empty, want.is_empty(), "rollback({after})");
            if !want.is_empty() {
                assert_eq!(ki, want, "rollback({after})");
            }
        }
    }
}
