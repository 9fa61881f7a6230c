//! Revisions (etcd's `server/mvcc/revision.go`).
//!
//! A revision names one change in the store: `main` is the revision of the write
//! transaction that made it (one per changing txn, starting at 2 for the first write),
//! `sub` numbers the changes inside that txn (0, 1, 2, ...). Revisions order by
//! `(main, sub)`, which is also the order of their 16-byte backend encoding.

/// Length in bytes of an encoded [`Revision`] (the `key` table's key).
pub(crate) const REV_BYTES_LEN: usize = 16;

/// An encoded revision: `main` then `sub`, each as a big-endian i64.
pub(crate) type RevBytes = [u8; REV_BYTES_LEN];

/// One change in the store: `(main, sub)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision {
    /// The main revision: one per write transaction that changed something.
    pub main: i64,
    /// The sub revision: the index of the change inside its write transaction.
    pub sub: i64,
}

impl Revision {
    /// `Revision { main, sub }`.
    pub const fn new(main: i64, sub: i64) -> Self {
        Revision { main, sub }
    }

    /// Whether `self` is strictly later than `other`.
    pub fn greater_than(self, other: Revision) -> bool {
        self > other
    }

    /// The backend key of this revision: `main` and `sub` as big-endian i64, so that the
    /// byte order of encoded non-negative revisions is their `(main, sub)` order.
    pub(crate) fn to_bytes(self) -> RevBytes {
        let mut out = [0u8; REV_BYTES_LEN];
        let (m, s) = out.split_at_mut(8);
        m.copy_from_slice(&self.main.to_be_bytes());
        s.copy_from_slice(&self.sub.to_be_bytes());
        out
    }

    /// Inverse of [`Revision::to_bytes`].
    pub(crate) fn from_bytes(bytes: &RevBytes) -> Self {
        let mut m = [0u8; 8];
        let mut s = [0u8; 8];
        let (mb, sb) = bytes.split_at(8);
        m.copy_from_slice(mb);
        s.copy_from_slice(sb);
        Revision {
            main: i64::from_be_bytes(m),
            sub: i64::from_be_bytes(s),
        }
    }
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.main, self.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_order() {
        let revs = [
            Revision::new(0, 0),
            Revision::new(1, 0),
            Revision::new(1, 1),
            Revision::new(1, 256),
            Revision::new(2, 0),
            Revision::new(255, 7),
            Revision::new(256, 0),
            Revision::new(i64::MAX, i64::MAX),
        ];
        for w in revs.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert!(b.greater_than(a));
            assert!(a.to_bytes() < b.to_bytes(), "{a} {b}");
        }
        for r in revs {
            assert_eq!(Revision::from_bytes(&r.to_bytes()), r);
        }
    }
}
