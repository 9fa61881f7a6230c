//! The redb schema (see `docs/backend.md`): table definitions, meta names and the
//! conversion of redb errors.

use std::sync::{Arc, PoisonError, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::MvccError;
use crate::revision::RevBytes;

/// The open backend file, replaceable as a whole by a defragmentation (etcd's
/// `backend.defrag` swaps its bolt DB the same way). Transactions already begun keep the
/// file they started on; new ones get the current file.
pub(crate) struct BackendDb {
    current: RwLock<Arc<Database>>,
}

impl BackendDb {
    pub(crate) fn new(db: Database) -> Self {
        BackendDb {
            current: RwLock::new(Arc::new(db)),
        }
    }

    fn current(&self) -> Arc<Database> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, redb::TransactionError> {
        self.current().begin_read()
    }

    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, redb::TransactionError> {
        self.current().begin_write()
    }

    /// Makes `db` the backend; returns the previous one (whose drop may write to its file:
    /// drop it off the caller's latency path).
    pub(crate) fn replace(&self, db: Database) -> Arc<Database> {
        std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            Arc::new(db),
        )
    }
}

/// `key` table: encoded [`Revision`](crate::Revision) -> record (see `kv.rs`).
pub(crate) const KEY_TABLE: TableDefinition<&RevBytes, &[u8]> = TableDefinition::new("key");
/// `lease` table: lease id (i64, stored as u64 bits) -> the lessor's opaque record
/// (etcd's `lease` bucket).
pub(crate) const LEASE_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("lease");
/// `meta` table: name -> bytes.
pub(crate) const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Raft index of the last entry applied to the store (u64 big-endian).
pub(crate) const META_CONSISTENT_INDEX: &str = "consistent_index";
/// Raft term of that entry (u64 big-endian).
pub(crate) const META_TERM: &str = "term";
/// Main revision of the latest compaction recorded (i64 big-endian).
pub(crate) const META_SCHEDULED_COMPACT: &str = "scheduledCompactRev";
/// Main revision of the latest compaction whose backend deletion finished (i64
/// big-endian).
pub(crate) const META_FINISHED_COMPACT: &str = "finishedCompactRev";
/// Prefix of the names of callers' blobs ([`Batch::set_meta`](crate::Batch::set_meta)).
pub(crate) const META_APP_PREFIX: &str = "app/";

pub(crate) fn app_meta_name(name: &str) -> String {
    let mut s = String::with_capacity(META_APP_PREFIX.len() + name.len());
    s.push_str(META_APP_PREFIX);
    s.push_str(name);
    s
}

/// Reads an 8-byte big-endian integer from the meta table.
pub(crate) fn read_u64<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    name: &str,
) -> Result<Option<u64>, MvccError> {
    let Some(v) = table.get(name)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = v
        .value()
        .try_into()
        .map_err(|_| MvccError::Corrupt(format!("meta {name}: expected 8 bytes, got {}", v.value().len())))?;
    Ok(Some(u64::from_be_bytes(bytes)))
}

pub(crate) fn read_i64<T: ReadableTable<&'static str, &'static [u8]>>(
    table: &T,
    name: &str,
) -> Result<Option<i64>, MvccError> {
    Ok(read_u64(table, name)?.map(|v| i64::from_be_bytes(v.to_be_bytes())))
}

macro_rules! backend_errors {
    ($($t:ty),* $(,)?) => {
        $(impl From<$t> for MvccError {
            fn from(e: $t) -> Self {
                MvccError::Backend(e.to_string())
            }
        })*
    };
}

impl From<redb::DatabaseError> for MvccError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => MvccError::InUse,
            e => MvccError::Backend(e.to_string()),
        }
    }
}

backend_errors!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError,
);
