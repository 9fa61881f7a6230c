//! Key-value records: the public [`KeyValue`]/[`Event`] types and the byte layout of a
//! record in the backend's `key` table (see `docs/backend.md`).
//!
//! Record layout (all integers big-endian):
//!
//! ```text
//! offset  size  field
//! 0       1     flags (bit 0: tombstone; other bits must be 0)
//! 1       8     create_revision  i64
//! 9       8     mod_revision     i64
//! 17      8     version          i64
//! 25      8     lease            i64
//! 33      4     key length       u32
//! 37      n     key
//! 37+n    ...   value (the rest of the record)
//! ```
//!
//! A tombstone record has the key and `mod_revision`; its other integers are 0 and its
//! value is empty.

use crate::MvccError;
use crate::revision::Revision;

/// A key's value at some revision (etcd's `mvccpb.KeyValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// Main revision of the put that created the key in its current generation.
    pub create_revision: i64,
    /// Main revision of the last change of the key.
    pub mod_revision: i64,
    /// Number of puts of the key in its current generation (1 at creation).
    pub version: i64,
    /// The value.
    pub value: Vec<u8>,
    /// The lease the key is attached to (0: none).
    pub lease: i64,
}

/// Kind of an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The key was put.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change made by a write txn (the seam for watch): for Delete, kv has key and
/// mod_revision = the tombstone's main rev, other fields zero (as etcd's delete event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventType,
    /// The key's new value (put) or the key and the deletion's revision (delete).
    pub kv: KeyValue,
}

const FLAG_TOMBSTONE: u8 = 0b0000_0001;
/// Bytes before the key.
pub(crate) const HEADER_LEN: usize = 37;

/// Size of the record of a key-value with the given key and value lengths.
pub(crate) fn record_len(key_len: usize, value_len: usize) -> usize {
    HEADER_LEN.saturating_add(key_len).saturating_add(value_len)
}

/// The fields of a record, borrowing key and value from the stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'r> {
    pub(crate) tombstone: bool,
    pub(crate) create_revision: i64,
    pub(crate) mod_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    pub(crate) key: &'r [u8],
    pub(crate) value: &'r [u8],
}

impl Record<'_> {
    /// The event this record stands for.
    pub(crate) fn to_event(self) -> Event {
        if self.tombstone {
            Event {
                kind: EventType::Delete,
                kv: KeyValue {
                    key: self.key.to_vec(),
                    mod_revision: self.mod_revision,
                    ..KeyValue::default()
                },
            }
        } else {
            Event {
                kind: EventType::Put,
                kv: self.to_key_value(),
            }
        }
    }

    pub(crate) fn to_key_value(self) -> KeyValue {
        KeyValue {
            key: self.key.to_vec(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            value: self.value.to_vec(),
            lease: self.lease,
        }
    }

    /// Writes this record into `out`, which must be exactly
    /// `record_len(key.len(), value.len())` bytes long.
    pub(crate) fn encode_into(&self, out: &mut [u8]) -> Result<(), MvccError> {
        let key_len = u32::try_from(self.key.len())
            .map_err(|_| MvccError::Backend(format!("key of {} bytes is too large", self.key.len())))?;
        let mut w = Writer { rest: out };
        w.put(&[if self.tombstone { FLAG_TOMBSTONE } else { 0 }])?;
        w.put(&self.create_revision.to_be_bytes())?;
        w.put(&self.mod_revision.to_be_bytes())?;
        w.put(&self.version.to_be_bytes())?;
        w.put(&self.lease.to_be_bytes())?;
        w.put(&key_len.to_be_bytes())?;
        w.put(self.key)?;
        w.put(self.value)?;
        if !w.rest.is_empty() {
            return Err(MvccError::Backend("record buffer larger than the record".into()));
        }
        Ok(())
    }

    /// Encodes into a new buffer.
    #[cfg(test)]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; record_len(self.key.len(), self.value.len())];
        self.encode_into(&mut out).unwrap();
        out
    }

    /// Decodes a stored record; `rev` is its revision (for error messages and a
    /// consistency check of `mod_revision`).
    pub(crate) fn decode(rev: Revision, bytes: &[u8]) -> Result<Record<'_>, MvccError> {
        let corrupt = |what: &str| MvccError::Corrupt(format!("record at revision {rev}: {what}"));
        let mut r = Reader { rest: bytes };
        let [flags] = r.array::<1>().ok_or_else(|| corrupt("truncated header"))?;
        let mut int = || {
            r.array::<8>()
                .map(i64::from_be_bytes)
                .ok_or_else(|| corrupt("truncated header"))
        };
        let create_revision = int()?;
        let mod_revision = int()?;
        let version = int()?;
        let lease = int()?;
        let key_len = r
            .array::<4>()
            .map(u32::from_be_bytes)
            .ok_or_else(|| corrupt("truncated header"))?;
        let key_len = usize::try_from(key_len).map_err(|_| corrupt("key length"))?;
        let key = r.take(key_len).ok_or_else(|| corrupt("truncated key"))?;
        if flags & !FLAG_TOMBSTONE != 0 {
            return Err(corrupt("unknown flags"));
        }
        if mod_revision != rev.main {
            return Err(corrupt("mod_revision differs from the record's revision"));
        }
        Ok(Record {
            tombstone: flags & FLAG_TOMBSTONE != 0,
            create_revision,
            mod_revision,
            version,
            lease,
            key,
            value: r.rest,
        })
    }
}

struct Writer<'o> {
    rest: &'o mut [u8],
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), MvccError> {
        let rest = std::mem::take(&mut self.rest);
        let (head, tail) = rest
            .split_at_mut_checked(bytes.len())
            .ok_or_else(|| MvccError::Backend("record buffer smaller than the record".into()))?;
        head.copy_from_slice(bytes);
        self.rest = tail;
        Ok(())
    }
}

struct Reader<'r> {
    rest: &'r [u8],
}

impl<'r> Reader<'r> {
    fn take(&mut self, n: usize) -> Option<&'r [u8]> {
        let (head, tail) = self.rest.split_at_checked(n)?;
        self.rest = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let rec = Record {
            tombstone: false,
            create_revision: 3,
            mod_revision: 9,
            version: 4,
            lease: -7,
            key: b"foo",
            value: b"bar baz",
        };
        let bytes = rec.encode();
        assert_eq!(bytes.len(), HEADER_LEN + 3 + 7);
        assert_eq!(Record::decode(Revision::new(9, 2), &bytes).unwrap(), rec);

        let tomb = Record {
            tombstone: true,
            create_revision: 0,
            mod_revision: 10,
            version: 0,
            lease: 0,
            key: b"",
            value: b"",
        };
        let bytes = tomb.encode();
        assert_eq!(bytes.len(), HEADER_LEN);
        let back = Record::decode(Revision::new(10, 0), &bytes).unwrap();
        assert_eq!(back, tomb);
        assert_eq!(
            back.to_event(),
            Event {
                kind: EventType::Delete,
                kv: KeyValue {
                    mod_revision: 10,
                    ..KeyValue::default()
                }
            }
        );
    }

    #[test]
    fn exact_layout() {
        let rec = Record {
            tombstone: true,
            create_revision: 1,
            mod_revision: 2,
            version: 3,
            lease: 4,
            key: b"k",
            value: b"v",
        };
        let mut want = vec![1u8];
        for n in [1i64, 2, 3, 4] {
            want.extend_from_slice(&n.to_be_bytes());
        }
        want.extend_from_slice(&1u32.to_be_bytes());
        want.extend_from_slice(b"kv");
        assert_eq!(rec.encode(), want);
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        let good = Record {
            tombstone: false,
            create_revision: 3,
            mod_revision: 9,
            version: 4,
            lease: 0,
            key: b"foo",
            value: b"v",
        }
        .encode();
        for len in 0..good.len() {
            let cut = &good[..len];
            // Shorter than key => error; cutting only the value is a valid shorter value.
            let res = Record::decode(Revision::new(9, 0), cut);
            if len < HEADER_LEN + 3 {
                assert!(matches!(res, Err(MvccError::Corrupt(_))), "len {len}");
            }
        }
        let mut bad_flags = good.clone();
        bad_flags[0] = 0x80;
        assert!(Record::decode(Revision::new(9, 0), &bad_flags).is_err());
        assert!(Record::decode(Revision::new(8, 0), &good).is_err());
        let mut huge_key = good.clone();
        huge_key[33..37].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Record::decode(Revision::new(9, 0), &huge_key).is_err());
        let mut small = vec![0u8; 3];
        assert!(Record::decode(Revision::new(9, 0), &small).is_err());
        let rec = Record::decode(Revision::new(9, 0), &good).unwrap();
        assert!(rec.encode_into(&mut small).is_err());
    }
}
