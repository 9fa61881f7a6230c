//! Merged key-range permissions of one user (etcd's `range_perm_cache.go`).
//!
//! Every permission of every role of a user becomes a half-open interval of keys:
//! - `range_end` empty: the single key, i.e. `[key, key + "\0")`;
//! - `range_end == "\0"`: every key from `key` on, `[key, +inf)` (etcdctl's `--from-key`,
//!   and `--prefix` of the empty key);
//! - otherwise `[key, range_end)`; an interval with `range_end <= key` is empty and grants
//!   nothing.
//!
//! The intervals are sorted and merged (overlapping *or touching* ones become one), once
//! per change of users or roles, so a check is a binary search. etcd keeps interval trees
//! and asks them whether the intervals that overlap a request cover it contiguously; the
//! merged form answers the same question directly.

use crate::{PermType, Permission, PermissionType};

/// The end of an interval: a key (exclusive) or past every key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Key(Vec<u8>),
    Inf,
}

impl End {
    fn is_after(&self, key: &[u8]) -> bool {
        match self {
            End::Key(e) => e.as_slice() > key,
            End::Inf => true,
        }
    }

    fn is_before(&self, key: &[u8]) -> bool {
        match self {
            End::Key(e) => e.as_slice() < key,
            End::Inf => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    begin: Vec<u8>,
    end: End,
}

/// The smallest key after `key`: `key + "\0"`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.extend_from_slice(key);
    k.push(0);
    k
}

/// The interval a permission (or request) names; `None` when it is empty.
fn interval(key: &[u8], range_end: &[u8]) -> Option<Interval> {
    let end = match range_end {
        [] => End::Key(successor(key)),
        [0] => End::Inf,
        e => End::Key(e.to_vec()),
    };
    end.is_after(key).then(|| Interval {
        begin: key.to_vec(),
        end,
    })
}

/// Sorted, disjoint, non-touching intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct RangeSet {
    ivs: Vec<Interval>,
}

impl RangeSet {
    fn merged(mut ivs: Vec<Interval>) -> RangeSet {
        ivs.sort_by(|a, b| a.begin.cmp(&b.begin).then_with(|| b.end.cmp(&a.end)));
        let mut out: Vec<Interval> = Vec::with_capacity(ivs.len());
        for iv in ivs {
            match out.last_mut() {
                // Touching counts as overlapping: [a, b) and [b, c) cover [a, c).
                Some(last) if last.end.is_before(&iv.begin) => out.push(iv),
                Some(last) => {
                    if iv.end > last.end {
                        last.end = iv.end;
                    }
                }
                None => out.push(iv),
            }
        }
        RangeSet { ivs: out }
    }

    /// Whether one interval holds all of `[begin, end)` (`begin < end`).
    fn covers(&self, begin: &[u8], end: &End) -> bool {
        let i = self.ivs.partition_point(|iv| iv.begin.as_slice() <= begin);
        i > 0 && self.ivs[i - 1].end >= *end
    }
}

/// A user's read and write permissions, merged over all its roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UserPerms {
    read: RangeSet,
    write: RangeSet,
}

impl UserPerms {
    /// Merges the permissions of a user's roles. Permissions of an unknown type grant
    /// nothing (etcd ignores them too).
    pub(crate) fn build<'a>(perms: impl IntoIterator<Item = &'a Permission>) -> UserPerms {
        let (mut read, mut write) = (Vec::new(), Vec::new());
        for p in perms {
            let Some(iv) = interval(&p.key, &p.range_end) else {
                continue;
            };
            match PermissionType::try_from(p.perm_type) {
                Ok(PermissionType::Read) => read.push(iv),
                Ok(PermissionType::Write) => write.push(iv),
                Ok(PermissionType::Readwrite) => {
                    read.push(iv.clone());
                    write.push(iv);
                }
                Err(_) => {}
            }
        }
        UserPerms {
            read: RangeSet::merged(read),
            write: RangeSet::merged(write),
        }
    }

    /// Whether these permissions allow `perm` on the request range `key`/`range_end`, with
    /// etcd's request conventions: `range_end` empty is the single key `key`, `"\0"` every
    /// key from `key` on, otherwise `[key, range_end)`.
    ///
    /// A request whose `range_end` is not after `key` selects no keys; it is allowed when
    /// the closed span between the two is permitted (so a user who may read a region may
    /// send such a request within it and get an empty answer, as with etcd, whose interval
    /// tree finds the permissions overlapping the span).
    pub(crate) fn allows(&self, key: &[u8], range_end: &[u8], perm: PermType) -> bool {
        let set = match perm {
            PermType::Read => &self.read,
            PermType::Write => &self.write,
        };
        match interval(key, range_end) {
            Some(iv) => set.covers(&iv.begin, &iv.end),
            // [range_end, key] closed: from range_end up to and including key.
            None => set.covers(range_end, &End::Key(successor(key))),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn perm(t: PermissionType, key: &[u8], range_end: &[u8]) -> Permission {
        Permission {
            perm_type: t as i32,
            key: key.to_vec(),
            range_end: range_end.to_vec(),
        }
    }

    fn read(key: &[u8], range_end: &[u8]) -> Permission {
        perm(PermissionType::Read, key, range_end)
    }

    fn ranges(set: &RangeSet) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        set.ivs
            .iter()
            .map(|iv| {
                let end = match &iv.end {
                    End::Key(k) => Some(k.clone()),
                    End::Inf => None,
                };
                (iv.begin.clone(), end)
            })
            .collect()
    }

    #[test]
    fn single_key_permission() {
        let p = UserPerms::build(&[read(b"foo", b"")]);
        assert!(p.allows(b"foo", b"", PermType::Read));
        assert!(!p.allows(b"foo", b"", PermType::Write));
        assert!(!p.allows(b"fo", b"", PermType::Read));
        assert!(!p.allows(b"foo0", b"", PermType::Read));
        assert!(!p.allows(b"foo\0", b"", PermType::Read));
        // The range holding exactly "foo".
        assert!(p.allows(b"foo", b"foo\0", PermType::Read));
        assert!(!p.allows(b"foo", b"foo\0\0", PermType::Read));
        assert!(!p.allows(b"foo", b"fop", PermType::Read));
    }

    #[test]
    fn range_permission() {
        let p = UserPerms::build(&[read(b"a", b"c")]);
        for k in [&b"a"[..], b"a\0", b"b", b"bzzz", b"b\xff\xff"] {
            assert!(p.allows(k, b"", PermType::Read), "{k:?}");
        }
        for k in [&b""[..], b"\0", b"c", b"c\0", b"d"] {
            assert!(!p.allows(k, b"", PermType::Read), "{k:?}");
        }
        assert!(p.allows(b"a", b"c", PermType::Read));
        assert!(p.allows(b"ab", b"b", PermType::Read));
        assert!(!p.allows(b"a", b"c\0", PermType::Read));
        assert!(!p.allows(b"", b"b", PermType::Read));
        assert!(!p.allows(b"b", b"\0", PermType::Read), "from-key goes past c");
    }

    #[test]
    fn prefix_permission() {
        // etcdctl role grant-permission --prefix r read /app/ : [/app/, /app0)
        let p = UserPerms::build(&[read(b"/app/", b"/app0")]);
        assert!(p.allows(b"/app/", b"", PermType::Read));
        assert!(p.allows(b"/app/x/y", b"", PermType::Read));
        assert!(p.allows(b"/app/", b"/app0", PermType::Read), "get --prefix /app/");
        assert!(p.allows(b"/app/x", b"/app/y", PermType::Read));
        assert!(!p.allows(b"/app", b"", PermType::Read));
        assert!(!p.allows(b"/app", b"/app0", PermType::Read));
        assert!(!p.allows(b"/app0", b"", PermType::Read));
    }

    #[test]
    fn from_key_permission() {
        let p = UserPerms::build(&[read(b"m", b"\0")]);
        assert!(p.allows(b"m", b"", PermType::Read));
        assert!(p.allows(b"\xff\xff\xff", b"", PermType::Read));
        assert!(p.allows(b"m", b"\0", PermType::Read));
        assert!(p.allows(b"x", b"\0", PermType::Read));
        assert!(p.allows(b"m", b"\xff", PermType::Read));
        assert!(!p.allows(b"l", b"\0", PermType::Read));
        assert!(!p.allows(b"l", b"", PermType::Read));

        // --from-key '' grants the whole key space (etcd issue 8494).
        let all = UserPerms::build(&[read(b"", b"\0")]);
        assert!(all.allows(b"", b"\0", PermType::Read));
        assert!(all.allows(b"", b"", PermType::Read));
        assert!(all.allows(b"anything", b"", PermType::Read));
    }

    #[test]
    fn overlapping_and_touching_ranges_merge() {
        let p = UserPerms::build(&[
            read(b"a", b"c"),
            read(b"b", b"e"),
            read(b"e", b"f"), // touches [b, e)
            read(b"f", b""),  // the key f: [f, f\0)
            read(b"f\0", b"g"),
            read(b"x", b"y"),
        ]);
        assert_eq!(
            ranges(&p.read),
            vec![
                (b"a".to_vec(), Some(b"g".to_vec())),
                (b"x".to_vec(), Some(b"y".to_vec()))
            ]
        );
        assert!(p.allows(b"a", b"g", PermType::Read));
        assert!(!p.allows(b"a", b"g\0", PermType::Read));
        assert!(!p.allows(b"a", b"y", PermType::Read), "gap [g, x)");
        assert!(p.allows(b"x", b"y", PermType::Read));
    }

    #[test]
    fn a_gap_of_one_key_is_a_gap() {
        // [a, f) and [f\0, g): the key "f" itself is missing.
        let p = UserPerms::build(&[read(b"a", b"f"), read(b"f\0", b"g")]);
        assert!(!p.allows(b"a", b"g", PermType::Read));
        assert!(!p.allows(b"f", b"", PermType::Read));
        assert!(p.allows(b"f\0", b"", PermType::Read));
    }

    #[test]
    fn contained_ranges_and_from_key_absorb() {
        let p = UserPerms::build(&[read(b"b", b"c"), read(b"a", b"\0"), read(b"x", b"")]);
        assert_eq!(ranges(&p.read), vec![(b"a".to_vec(), None)]);
    }

    #[test]
    fn read_write_and_readwrite_are_separate_sets() {
        let p = UserPerms::build(&[
            perm(PermissionType::Read, b"r", b""),
            perm(PermissionType::Write, b"w", b""),
            perm(PermissionType::Readwrite, b"rw", b""),
        ]);
        assert!(p.allows(b"r", b"", PermType::Read));
        assert!(!p.allows(b"r", b"", PermType::Write));
        assert!(!p.allows(b"w", b"", PermType::Read));
        assert!(p.allows(b"w", b"", PermType::Write));
        assert!(p.allows(b"rw", b"", PermType::Read));
        assert!(p.allows(b"rw", b"", PermType::Write));
    }

    #[test]
    fn empty_permission_ranges_and_unknown_types_grant_nothing() {
        let p = UserPerms::build(&[
            read(b"c", b"a"),
            read(b"c", b"c"),
            Permission {
                perm_type: 7,
                key: b"k".to_vec(),
                range_end: b"".to_vec(),
            },
        ]);
        assert_eq!(p, UserPerms::default());
        assert!(!p.allows(b"c", b"", PermType::Read));
        assert!(!p.allows(b"k", b"", PermType::Read));
    }

    #[test]
    fn empty_request_range_needs_the_span_between_its_ends() {
        let p = UserPerms::build(&[read(b"a", b"m")]);
        assert!(p.allows(b"c", b"c", PermType::Read));
        assert!(p.allows(b"c", b"b", PermType::Read));
        assert!(!p.allows(b"n", b"b", PermType::Read));
        assert!(!p.allows(b"c", b"\0\0", PermType::Read));
    }

    // --- property test against a naive model ---

    /// Keys over {0x00, 'a', 'b'}: with 0x00 in the alphabet, every gap between granted
    /// intervals starts at a key of at most three symbols (a grant's or request's bound, or
    /// a granted single key + "\0"), so checking every such key one by one is exact.
    const ALPHABET: [u8; 3] = [0, b'a', b'b'];

    fn all_keys(max_len: usize) -> Vec<Vec<u8>> {
        let mut out = vec![Vec::new()];
        let mut last = vec![Vec::new()];
        for _ in 0..max_len {
            let mut next = Vec::new();
            for k in &last {
                for c in ALPHABET {
                    let mut k = k.clone();
                    k.push(c);
                    next.push(k);
                }
            }
            out.extend(next.iter().cloned());
            last = next;
        }
        out
    }

    pub(crate) fn model_grants(grants: &[Permission], key: &[u8], perm: PermType) -> bool {
        grants.iter().any(|g| {
            let type_ok = matches!(
                (PermissionType::try_from(g.perm_type), perm),
                (Ok(PermissionType::Readwrite), _)
                    | (Ok(PermissionType::Read), PermType::Read)
                    | (Ok(PermissionType::Write), PermType::Write)
            );
            type_ok
                && match g.range_end.as_slice() {
                    [] => key == g.key.as_slice(),
                    [0] => key >= g.key.as_slice(),
                    e => g.key.as_slice() <= key && key < e,
                }
        })
    }

    pub(crate) fn model_allows(grants: &[Permission], key: &[u8], range_end: &[u8], perm: PermType) -> bool {
        let keys = all_keys(3);
        let ok = |k: &Vec<u8>| model_grants(grants, k, perm);
        match range_end {
            [] => model_grants(grants, key, perm),
            [0] => keys.iter().filter(|k| k.as_slice() >= key).all(ok),
            e if e > key => keys
                .iter()
                .filter(|k| k.as_slice() >= key && k.as_slice() < e)
                .all(ok),
            e => keys
                .iter()
                .filter(|k| k.as_slice() >= e && k.as_slice() <= key)
                .all(ok),
        }
    }

    pub(crate) fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 0..=2)
    }

    pub(crate) fn range_end_strategy() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            Just(vec![0]),
            prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 1..=2),
        ]
    }

    pub(crate) fn grant_strategy() -> impl Strategy<Value = Permission> {
        (0..3i32, key_strategy(), range_end_strategy()).prop_map(|(t, key, range_end)| Permission {
            perm_type: t,
            key,
            range_end,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn allows_matches_key_by_key_model(
            grants in prop::collection::vec(grant_strategy(), 0..6),
            queries in prop::collection::vec((key_strategy(), range_end_strategy()), 1..12),
        ) {
            let p = UserPerms::build(&grants);
            for (key, range_end) in &queries {
                for perm in [PermType::Read, PermType::Write] {
                    prop_assert_eq!(
                        p.allows(key, range_end, perm),
                        model_allows(&grants, key, range_end, perm),
                        "grants {:?} query {:?}..{:?} {:?}", grants, key, range_end, perm
                    );
                }
            }
        }
    }
}
