//! openraft's `RaftStateMachine`, adapted onto retcd's persistent backend (the MVCC store
//! and everything applied beside it).
//!
//! Committed entries arrive in order; every batch openraft hands over is applied in ONE
//! backend transaction on a blocking thread, together with the applied log id and
//! membership (etcd's `consistent_index`), so replaying the log after a crash is idempotent.
//! Replies go to proposers only after that transaction has committed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder, Snapshot, SnapshotMeta};
use serde::{Deserialize, Serialize};

use crate::log_store::{decode_membership, encode_membership};
use crate::types::{ApplyReply, LogId, StoredMembership, TypeConfig, log_id};

/// One committed entry, as the backend sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyEntry {
    pub index: u64,
    pub term: u64,
    /// The proposer's request bytes; `None` for raft's own entries (blank, membership).
    pub data: Option<Vec<u8>>,
}

/// A run of committed entries to apply in one backend transaction.
#[derive(Debug, Clone)]
pub struct ApplyBatch {
    pub entries: Vec<ApplyEntry>,
    /// Opaque applied-state record (last applied log id and membership): the backend stores
    /// it in the same transaction and hands it back from [`Backend::applied_state`].
    pub applied_state: Vec<u8>,
}

/// The persistent state machine behind raft. Implemented by the server (the applier).
pub trait Backend: Send + 'static {
    /// Applies `batch` in order in one backend transaction that also records
    /// `batch.applied_state`; returns exactly one reply per entry. Called on a blocking thread.
    /// An `Err` means the backend can no longer be trusted: the node stops.
    fn apply(&mut self, batch: ApplyBatch) -> io::Result<Vec<ApplyReply>>;
    /// The applied-state record last stored by [`Backend::apply`], if any.
    fn applied_state(&self) -> io::Result<Option<Vec<u8>>>;
    /// Makes everything applied so far durable (before raft purges the log behind it).
    fn sync(&mut self) -> io::Result<()>;
    /// What writes images of this backend for members that fell behind the compacted log;
    /// it must work without the backend lock (apply goes on while an image is written).
    fn snapshot_source(&self) -> Arc<dyn SnapshotSource>;
    /// Replaces the backend's whole state with `image` (written by another member's
    /// [`SnapshotSource`]), durably; returns the applied-state record inside it.
    fn install_snapshot(&mut self, image: &Path) -> io::Result<Option<Vec<u8>>>;
}

/// Writes a consistent image of a backend (whatever it has applied when called).
pub trait SnapshotSource: Send + Sync {
    fn write_image(&self, out: &mut dyn io::Write) -> io::Result<u64>;
}

#[derive(Serialize, Deserialize)]
struct AppliedRecord {
    /// (term, index)
    last_applied: Option<(u64, u64)>,
    membership_log_id: Option<(u64, u64)>,
    membership: String,
}

/// `membership_json`: `encode_membership` of `m`, kept between batches since it rarely changes.
fn encode_applied(last: &Option<LogId>, m: &StoredMembership, membership_json: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct AppliedRecordRef<'a> {
        last_applied: Option<(u64, u64)>,
        membership_log_id: Option<(u64, u64)>,
        membership: &'a str,
    }
    let rec = AppliedRecordRef {
        last_applied: last.as_ref().map(|l| (l.leader_id.term, l.index)),
        membership_log_id: m.log_id().as_ref().map(|l| (l.leader_id.term, l.index)),
        membership: membership_json,
    };
    serde_json::to_vec(&rec).unwrap_or_default()
}

fn membership_json(m: &StoredMembership) -> String {
    String::from_utf8(encode_membership(m.membership())).unwrap_or_default()
}

fn decode_applied(b: &[u8]) -> io::Result<(Option<LogId>, StoredMembership)> {
    let rec: AppliedRecord = serde_json::from_slice(b)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("applied state: {e}")))?;
    let m = decode_membership(rec.membership.as_bytes())?;
    Ok((
        rec.last_applied.map(|(t, i)| log_id(t, i)),
        StoredMembership::new(rec.membership_log_id.map(|(t, i)| log_id(t, i)), m),
    ))
}

/// What a raft snapshot carries. The state machine is persistent, so a local snapshot is the
/// live backend made durable up to `meta.last_log_id` (`Live`); the peer transport ships an
/// image of it written when it is sent, and the receiver gets that image in a file.
///
/// The image may be newer than `meta.last_log_id` (the backend moves on while it is
/// written); its own applied state says how far it goes, and entries up to there that raft
/// hands over again afterwards are skipped (applying is idempotent by log index, like
/// etcd's consistent index).
#[derive(Debug, Clone, Default)]
pub enum SnapshotData {
    #[default]
    Live,
    File(PathBuf),
}

struct Inner<B> {
    backend: Arc<Mutex<B>>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// JSON of `membership`, as stored with every applied batch.
    membership_json: String,
    current_snapshot: Option<SnapshotMeta<crate::types::CommittedLeaderId, u64, crate::types::MemberNode>>,
}

/// The state machine handed to openraft.
pub struct StateMachineStore<B: Backend> {
    inner: Inner<B>,
}

fn lock_err() -> io::Error {
    io::Error::other("state machine backend lock poisoned")
}

impl<B: Backend> StateMachineStore<B> {
    pub fn new(backend: Arc<Mutex<B>>) -> io::Result<Self> {
        let blob = backend.lock().map_err(|_| lock_err())?.applied_state()?;
        let (last_applied, membership) = match blob {
            Some(b) => decode_applied(&b)?,
            None => (None, StoredMembership::default()),
        };
        Ok(StateMachineStore {
            inner: Inner {
                backend,
                last_applied,
                membership_json: membership_json(&membership),
                membership,
                current_snapshot: None,
            },
        })
    }
}

/// Builds a snapshot: makes the backend durable up to what has been applied.
pub struct SnapshotBuilder<B: Backend> {
    backend: Arc<Mutex<B>>,
    meta: SnapshotMeta<crate::types::CommittedLeaderId, u64, crate::types::MemberNode>,
}

impl<B: Backend> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<B> {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(
        &mut self,
    ) -> Result<openraft::alias::SnapshotOf<TypeConfig, SnapshotData>, io::Error> {
        let backend = self.backend.clone();
        tokio::task::spawn_blocking(move || backend.lock().map_err(|_| lock_err())?.sync())
            .await
            .map_err(io::Error::other)??;
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: SnapshotData::Live,
        })
    }
}

impl<B: Backend> RaftStateMachine<TypeConfig> for StateMachineStore<B> {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder<B>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        Ok((self.inner.last_applied, self.inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures::Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + Send,
    {
        let mut batch = Vec::new();
        let mut responders = Vec::new();
        let mut last = self.inner.last_applied;
        let mut new_membership = None;
        let applied_index = self.inner.last_applied.as_ref().map(|l| l.index);
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let id = entry.log_id();
            if applied_index.is_some_and(|a| id.index <= a) {
                // already in the backend (it came with an installed snapshot image)
                if let Some(r) = responder {
                    r.send(ApplyReply::none());
                }
                continue;
            }
            let data = match entry.payload {
                EntryPayload::Normal(req) => Some(req.0),
                EntryPayload::Blank => None,
                EntryPayload::Membership(m) => {
                    new_membership = Some(StoredMembership::new(Some(id), m));
                    None
                }
            };
            batch.push(ApplyEntry {
                index: id.index,
                term: id.leader_id.term,
                data,
            });
            responders.push(responder);
            last = Some(id);
        }
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(m) = new_membership {
            self.inner.membership_json = membership_json(&m);
            self.inner.membership = m;
        }
        let applied_state = encode_applied(&last, &self.inner.membership, &self.inner.membership_json);
        let backend = self.inner.backend.clone();
        let replies = tokio::task::spawn_blocking(move || {
            backend.lock().map_err(|_| lock_err())?.apply(ApplyBatch {
                entries: batch,
                applied_state,
            })
        })
        .await
        .map_err(io::Error::other)??;
        if replies.len() != responders.len() {
            return Err(io::Error::other("backend returned a wrong number of replies"));
        }
        self.inner.last_applied = last;
        for (reply, responder) in replies.into_iter().zip(responders) {
            if let Some(r) = responder {
                r.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let meta = SnapshotMeta {
            last_log_id: self.inner.last_applied,
            last_membership: self.inner.membership.clone(),
        };
        self.inner.current_snapshot = Some(meta.clone());
        SnapshotBuilder {
            backend: self.inner.backend.clone(),
            meta,
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<crate::types::CommittedLeaderId, u64, crate::types::MemberNode>,
        snapshot: SnapshotData,
    ) -> Result<(), io::Error> {
        let SnapshotData::File(path) = snapshot else {
            // our own live snapshot: the backend already holds it
            return Ok(());
        };
        let backend = self.inner.backend.clone();
        let p = path.clone();
        let blob =
            tokio::task::spawn_blocking(move || backend.lock().map_err(|_| lock_err())?.install_snapshot(&p))
                .await
                .map_err(io::Error::other)??;
        let _ = std::fs::remove_file(&path);
        let (image_applied, image_membership) = match blob {
            Some(b) => decode_applied(&b)?,
            None => (None, meta.last_membership.clone()),
        };
        // the image reaches at least as far as the snapshot's meta
        let last = match (image_applied, meta.last_log_id) {
            (Some(a), Some(m)) if a.index >= m.index => Some(a),
            (_, m) => m,
        };
        tracing::info!(
            last_applied = ?last,
            meta = ?meta.last_log_id,
            "installed a snapshot image from the leader"
        );
        self.inner.last_applied = last;
        self.inner.membership_json = membership_json(&image_membership);
        self.inner.membership = image_membership;
        self.inner.current_snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::alias::SnapshotOf<TypeConfig, SnapshotData>>, io::Error> {
        Ok(self.inner.current_snapshot.clone().map(|meta| Snapshot {
            meta,
            snapshot: SnapshotData::Live,
        }))
    }
}
