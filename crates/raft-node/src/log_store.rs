//! The raft log (WAL): openraft's `RaftLogStorage` over `raft-log`, a chunked append-only
//! log whose records carry a CRC32 and whose background worker batches fsyncs.
//!
//! Durability contract: `append` buffers the entries and returns; the WAL's flush worker writes
//! and `fdatasync`s them and only then calls openraft's `IOFlushed` callback. openraft does not
//! count an entry as accepted by this member (and so never commits, applies or acknowledges it)
//! before that callback. Votes are fsynced before `save_vote` returns.
//!
//! Group commit: at most one append flush is in flight. An append that arrives while one is
//! being fsynced only buffers its records and waits; when the flush ends, every append that
//! waited meanwhile goes to disk in one write and one fsync. A lone writer never waits for
//! company (no timer), and under load the batches grow with the fsync time.
//!
//! Record encoding (see docs/wal.md): log id = (term, index) as two u64; payload = one tag
//! byte (0 blank, 1 normal, 2 membership) followed by the request bytes or the membership
//! encoded as JSON.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{EntryPayload, RaftLogReader};
use raft_log::api::raft_log_writer::RaftLogWriter;
use serde::{Deserialize, Serialize};

use crate::fatal;
use crate::types::{Entry, LogId, MemberNode, Membership, RaftRequest, TypeConfig, Vote, log_id};

/// raft-log's type parameters for retcd.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WalTypes;

/// The vote as the WAL stores it: `((term, voted_for), committed)` on disk.
///
/// raft-log refuses to save a vote that is not `>=` the saved one, so the order must be
/// openraft's, not the tuple's: in one term a committed vote (a leader is established) is
/// above a vote granted to a candidate, whichever node ids they name. The tuple order
/// compared the node ids first, so a member that had voted for node A and then learned
/// that node B (a smaller id) won the same term stopped with "Vote cannot be reversed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalVote {
    term: u64,
    voted_for: u64,
    committed: bool,
}

impl PartialOrd for WalVote {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        from_wal_vote(self).partial_cmp(&from_wal_vote(other))
    }
}

impl codeq::Encode for WalVote {
    fn encode<W: io::Write>(&self, w: W) -> Result<usize, io::Error> {
        ((self.term, self.voted_for), self.committed).encode(w)
    }
}

impl codeq::Decode for WalVote {
    fn decode<R: io::Read>(r: R) -> Result<Self, io::Error> {
        let ((term, voted_for), committed) = <((u64, u64), bool)>::decode(r)?;
        Ok(WalVote {
            term,
            voted_for,
            committed,
        })
    }
}

impl raft_log::Types for WalTypes {
    type LogId = (u64, u64);
    type LogPayload = Vec<u8>;
    type Vote = WalVote;
    type Callback = FlushCallback;
    type UserData = ();

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        payload.len() as u64
    }
}

/// Called by the WAL's flush worker once the records before it are on disk.
pub enum FlushCallback {
    /// openraft's callbacks of the appends this flush covers (with when each was asked for).
    Appends(Vec<(IOFlushed<TypeConfig>, Instant)>, Arc<GroupCommit>),
    Async(tokio::sync::oneshot::Sender<io::Result<()>>),
}

/// The appends waiting for the flush after the one in flight (see the module header).
#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<GroupState>,
    /// Wakes the group-commit thread when the flush in flight ended and appends wait.
    ready: Condvar,
}

#[derive(Default)]
struct GroupState {
    /// An append flush is queued or being fsynced.
    in_flight: bool,
    /// The flush in flight ended; `waiting` must be flushed next (by the group-commit thread).
    flush_next: bool,
    /// The log store is gone: the group-commit thread ends.
    closed: bool,
    waiting: Vec<(IOFlushed<TypeConfig>, Instant)>,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, GroupState> {
        // The state holds no invariant a panicking holder could break halfway.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An append flush ended: the next one (if appends waited) is the group-commit thread's.
    fn flush_ended(&self) {
        let mut st = self.lock();
        if st.waiting.is_empty() {
            st.in_flight = false;
        } else {
            st.flush_next = true;
            self.ready.notify_one();
        }
    }
}

/// Issues the flush for the appends that waited while another was in flight. A thread of its
/// own because the flush worker, which learns that a flush ended, must not take the WAL lock
/// (a sender holding it may be waiting for the worker's queue to drain).
fn group_commit_thread(wal: Weak<Mutex<raft_log::RaftLog<WalTypes>>>, group: Arc<GroupCommit>) {
    loop {
        {
            let mut st = group.lock();
            while !st.flush_next && !st.closed {
                st = group.ready.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.closed {
                return;
            }
            st.flush_next = false;
        }
        let Some(wal) = wal.upgrade() else { return };
        let mut wal = match wal.lock() {
            Ok(w) => w,
            Err(_) => fatal("raft log lock poisoned"),
        };
        // Taken under the WAL lock: every append in the batch has its records in the buffer
        // this flush writes.
        let batch = std::mem::take(&mut group.lock().waiting);
        if let Err(e) = wal.flush(true, Some(FlushCallback::Appends(batch, group.clone()))) {
            fatal(&format!("raft log flush failed: {e}"));
        }
    }
}

impl raft_log::Callback for FlushCallback {
    fn send(self, res: Result<(), io::Error>) {
        if let Err(e) = &res {
            fatal(&format!("raft log fsync failed: {e}"));
        }
        match self {
            FlushCallback::Appends(cbs, group) => {
                // The next flush first, then the callbacks: the disk need not wait for openraft.
                group.flush_ended();
                let observer = crate::observe::observer();
                for (cb, asked) in cbs {
                    if let Some(o) = observer {
                        o.wal_fsync(asked.elapsed());
                    }
                    cb.io_completed(Ok(()));
                }
            }
            FlushCallback::Async(tx) => {
                let _ = tx.send(res);
            }
        }
    }
}

fn to_wal_log_id(id: &LogId) -> (u64, u64) {
    (id.leader_id.term, id.index)
}

fn from_wal_log_id(id: &(u64, u64)) -> LogId {
    log_id(id.0, id.1)
}

fn to_wal_vote(v: &Vote) -> WalVote {
    WalVote {
        term: v.leader_id.term,
        voted_for: v.leader_id.voted_for,
        committed: v.committed,
    }
}

fn from_wal_vote(v: &WalVote) -> Vote {
    if v.committed {
        Vote::new_committed(v.term, v.voted_for)
    } else {
        Vote::new(v.term, v.voted_for)
    }
}

#[derive(Serialize, Deserialize)]
struct MembershipRecord {
    configs: Vec<Vec<u64>>,
    nodes: Vec<(u64, MemberNode)>,
}

/// Encodes a membership config as JSON (shared with the state machine's applied-state record).
pub(crate) fn encode_membership(m: &Membership) -> Vec<u8> {
    let rec = MembershipRecord {
        configs: m
            .get_joint_config()
            .iter()
            .map(|c| c.iter().copied().collect())
            .collect(),
        nodes: m.nodes().map(|(id, n)| (*id, n.clone())).collect(),
    };
    // Serializing plain structs of integers and strings cannot fail.
    serde_json::to_vec(&rec).unwrap_or_default()
}

pub(crate) fn decode_membership(b: &[u8]) -> io::Result<Membership> {
    let rec: MembershipRecord = serde_json::from_slice(b).map_err(|e| corrupt(format!("membership: {e}")))?;
    let configs = rec.configs.into_iter().map(|c| c.into_iter().collect()).collect();
    Membership::new(
        configs,
        rec.nodes
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
    )
    .map_err(|e| corrupt(format!("membership: {e}")))
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

pub(crate) fn encode_payload(p: &EntryPayload<RaftRequest, u64, MemberNode>) -> Vec<u8> {
    match p {
        EntryPayload::Blank => vec![0],
        EntryPayload::Normal(r) => {
            let mut v = Vec::with_capacity(r.0.len() + 1);
            v.push(1);
            v.extend_from_slice(&r.0);
            v
        }
        EntryPayload::Membership(m) => {
            let mut v = vec![2];
            v.extend_from_slice(&encode_membership(m));
            v
        }
    }
}

pub(crate) fn decode_payload(b: &[u8]) -> io::Result<EntryPayload<RaftRequest, u64, MemberNode>> {
    match b.split_first() {
        Some((0, _)) => Ok(EntryPayload::Blank),
        Some((1, rest)) => Ok(EntryPayload::Normal(RaftRequest(rest.to_vec()))),
        Some((2, rest)) => Ok(EntryPayload::Membership(decode_membership(rest)?)),
        _ => Err(corrupt("raft log: unknown entry payload tag".into())),
    }
}

/// The raft log of this member. Cloning shares the same WAL.
#[derive(Clone)]
pub struct LogStore {
    wal: Arc<Mutex<raft_log::RaftLog<WalTypes>>>,
    group: Arc<GroupCommit>,
    /// Ends the group-commit thread when the last clone is dropped.
    _closer: Arc<GroupCloser>,
}

struct GroupCloser(Arc<GroupCommit>);

impl Drop for GroupCloser {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_one();
    }
}

impl LogStore {
    /// Opens (or creates) the WAL in `dir` (etcd keeps it in `<data-dir>/member/wal`).
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut cfg = raft_log::Config::new(dir.to_string_lossy());
        cfg.wal.chunk_max_size = Some(64 << 20);
        cfg.wal.chunk_max_records = Some(100_000);
        cfg.log_cache_capacity = Some(64 << 20);
        cfg.log_cache_max_items = Some(100_000);
        cfg.wal.truncate_incomplete_record = Some(true);
        // The flush worker must not wait for more requests: the batching is ours (group
        // commit above), and any wait there would be paid by every lone writer.
        cfg.wal.flush_batch_wait = Some(std::time::Duration::ZERO);
        let wal = Arc::new(Mutex::new(raft_log::RaftLog::<WalTypes>::open(Arc::new(cfg))?));
        let group = Arc::new(GroupCommit::default());
        let (w, g) = (Arc::downgrade(&wal), group.clone());
        std::thread::Builder::new()
            .name("wal-group-commit".into())
            .spawn(move || group_commit_thread(w, g))?;
        Ok(LogStore {
            wal,
            _closer: Arc::new(GroupCloser(group.clone())),
            group,
        })
    }

    fn lock(&self) -> io::Result<MutexGuard<'_, raft_log::RaftLog<WalTypes>>> {
        self.wal
            .lock()
            .map_err(|_| io::Error::other("raft log lock poisoned"))
    }

    /// Index of the last entry in the log (0 if none).
    pub fn last_index(&self) -> u64 {
        self.lock()
            .ok()
            .and_then(|w| w.log_state().last().map(|l| l.1))
            .unwrap_or(0)
    }

    /// Term of the last entry in the log (or of the last purged one; 0 if none).
    pub(crate) fn last_term(&self) -> u64 {
        self.lock()
            .ok()
            .and_then(|w| {
                let st = w.log_state();
                st.last().or(st.purged()).map(|l| l.0)
            })
            .unwrap_or(0)
    }

    /// Bytes of WAL on disk.
    pub fn on_disk_size(&self) -> u64 {
        self.lock().map(|w| w.on_disk_size()).unwrap_or(0)
    }

    /// Appends a membership entry after the last entry (term `term`), durably, outside raft:
    /// `--force-new-cluster` makes this member's own log say it is alone.
    pub(crate) async fn force_membership(&self, term: u64, m: &Membership) -> io::Result<u64> {
        let index = {
            let mut wal = self.lock()?;
            let st = wal.log_state();
            let last = st.last().or(st.purged()).map(|l| l.1).unwrap_or(0);
            let payload: EntryPayload<RaftRequest, u64, MemberNode> = EntryPayload::Membership(m.clone());
            wal.append(vec![((term, last + 1), encode_payload(&payload))])?;
            last + 1
        };
        self.flush_and_wait().await?;
        Ok(index)
    }

    /// Queues a flush and waits (off the async runtime) until everything written so far is on disk.
    async fn flush_and_wait(&self) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.lock()?.flush(true, Some(FlushCallback::Async(tx)))?;
        rx.await
            .map_err(|_| io::Error::other("raft log flush worker stopped"))?
    }
}

fn range_to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.saturating_add(1),
        Bound::Excluded(e) => *e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_bounds(&range);
        let wal = self.lock()?;
        let mut out = Vec::new();
        for item in wal.read(start, end) {
            let (id, payload) = item?;
            out.push(Entry::new(from_wal_log_id(&id), decode_payload(&payload)?));
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock()?.log_state().vote().map(from_wal_vote))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let wal = self.lock()?;
        let st = wal.log_state();
        let last_purged_log_id = st.purged().map(from_wal_log_id);
        let last_log_id = st.last().map(from_wal_log_id).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        self.lock()?.save_vote(to_wal_vote(vote))?;
        self.flush_and_wait().await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        if let Some(c) = committed {
            let mut wal = self.lock()?;
            // No flush of its own: the committed pointer rides along with the next flush; losing the newest value
            // in a crash only means re-deriving it from the quorum, never losing data.
            wal.commit(to_wal_log_id(&c))?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock()?.log_state().committed().map(from_wal_log_id))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let records: Vec<((u64, u64), Vec<u8>)> = entries
            .into_iter()
            .map(|e| (to_wal_log_id(&e.log_id()), encode_payload(&e.payload)))
            .collect();
        let mut wal = self.lock()?;
        wal.append(records)?;
        let asked = Instant::now();
        {
            let mut st = self.group.lock();
            if st.in_flight {
                // Flushed with the others when the flush in flight ends.
                st.waiting.push((callback, asked));
                return Ok(());
            }
            st.in_flight = true;
        }
        let cb = FlushCallback::Appends(vec![(callback, asked)], self.group.clone());
        if let Err(e) = wal.flush(true, Some(cb)) {
            // The flush worker is gone (it stopped on an I/O error): nothing more can be made
            // durable.
            fatal(&format!("raft log flush failed: {e}"));
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index + 1).unwrap_or(0);
        let mut wal = self.lock()?;
        wal.truncate(from)?;
        Ok(())
    }

    async fn purge(&mut self, upto: LogId) -> Result<(), io::Error> {
        let mut wal = self.lock()?;
        wal.purge(to_wal_log_id(&upto))?;
        wal.flush(true, None)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_roundtrip() {
        let p = EntryPayload::Normal(RaftRequest(vec![1, 2, 3]));
        assert_eq!(decode_payload(&encode_payload(&p)).unwrap(), p);
        let b: EntryPayload<RaftRequest, u64, MemberNode> = EntryPayload::Blank;
        assert_eq!(decode_payload(&encode_payload(&b)).unwrap(), b);
        let m = Membership::new(
            vec![[1u64].into_iter().collect()],
            [(
                1u64,
                MemberNode {
                    name: "a".into(),
                    ..Default::default()
                },
            )]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>(),
        )
        .unwrap();
        let mp = EntryPayload::Membership(m);
        assert_eq!(decode_payload(&encode_payload(&mp)).unwrap(), mp);
        assert!(decode_payload(&[9]).is_err());
        assert!(decode_payload(&[]).is_err());
    }

    /// Appends made while a flush is in flight are flushed together afterwards: every one is
    /// reported durable, in any interleaving with vote saves, and all are there after reopening.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_reports_every_append_durable() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut ls = LogStore::open(dir.path()).unwrap();
            let mut acks = Vec::new();
            for i in 1..=300u64 {
                let (tx, rx) = <TypeConfig as openraft::type_config::TypeConfigExt>::oneshot();
                let e = Entry::new(
                    log_id(2, i),
                    EntryPayload::Normal(RaftRequest(i.to_be_bytes().to_vec())),
                );
                ls.append(vec![e], IOFlushed::signal(tx)).await.unwrap();
                acks.push(rx);
                if i % 97 == 0 {
                    ls.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
                }
            }
            for rx in acks {
                let ack = tokio::time::timeout(std::time::Duration::from_secs(20), rx).await;
                ack.expect("every append is reported durable").unwrap().unwrap();
            }
            assert!(
                !ls.group.lock().in_flight,
                "no flush left in flight once all are acknowledged"
            );
        }
        let mut ls = LogStore::open(dir.path()).unwrap();
        let got = ls.try_get_log_entries(1..=300).await.unwrap();
        assert_eq!(got.len(), 300);
        for (i, e) in (1u64..).zip(got) {
            assert_eq!(
                e.payload,
                EntryPayload::Normal(RaftRequest(i.to_be_bytes().to_vec()))
            );
        }
    }

    /// The WAL orders votes as openraft does. A member that granted its vote to a candidate
    /// with a large id and then learns that a node with a smaller id became leader in the
    /// same term saves that committed vote (this stopped a member before: the tuple order
    /// compared the node ids). A vote that goes back a term is still refused.
    #[tokio::test]
    async fn a_committed_vote_of_the_same_term_replaces_a_granted_one() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut ls = LogStore::open(dir.path()).unwrap();
            ls.save_vote(&Vote::new(2, 16_603_456_527_501_837_177))
                .await
                .unwrap();
            ls.save_vote(&Vote::new_committed(2, 10_483_047_327_211_682_088))
                .await
                .unwrap();
            assert!(ls.save_vote(&Vote::new_committed(1, 1)).await.is_err());
        }
        let mut ls = LogStore::open(dir.path()).unwrap();
        assert_eq!(
            ls.read_vote().await.unwrap(),
            Some(Vote::new_committed(2, 10_483_047_327_211_682_088))
        );
        let v = |term, node, committed| {
            to_wal_vote(&if committed {
                Vote::new_committed(term, node)
            } else {
                Vote::new(term, node)
            })
        };
        assert!(v(2, 1, true) > v(2, 9, false));
        assert!(v(3, 1, false) > v(2, 9, true));
        assert_eq!(v(2, 9, false).partial_cmp(&v(2, 1, false)), None);
        assert_eq!(
            v(2, 9, false).partial_cmp(&v(2, 9, false)),
            Some(std::cmp::Ordering::Equal)
        );
    }

    #[tokio::test]
    async fn append_flush_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut ls = LogStore::open(dir.path()).unwrap();
            ls.save_vote(&Vote::new_committed(3, 7)).await.unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel();
            let entries: Vec<Entry> = (1..=5)
                .map(|i| Entry::new(log_id(3, i), EntryPayload::Normal(RaftRequest(vec![i as u8]))))
                .collect();
            let rec: Vec<_> = entries
                .iter()
                .map(|e| ((3u64, e.log_id.index), encode_payload(&e.payload)))
                .collect();
            {
                let mut w = ls.lock().unwrap();
                w.append(rec).unwrap();
                w.flush(true, Some(FlushCallback::Async(tx))).unwrap();
            }
            rx.await.unwrap().unwrap();
        }
        let mut ls = LogStore::open(dir.path()).unwrap();
        assert_eq!(ls.read_vote().await.unwrap(), Some(Vote::new_committed(3, 7)));
        let st = ls.get_log_state().await.unwrap();
        assert_eq!(st.last_log_id, Some(log_id(3, 5)));
        let got = ls.try_get_log_entries(2..4).await.unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].payload, EntryPayload::Normal(RaftRequest(vec![2])));
        ls.truncate_after(Some(log_id(3, 3))).await.unwrap();
        assert_eq!(ls.get_log_state().await.unwrap().last_log_id, Some(log_id(3, 3)));
    }
}
