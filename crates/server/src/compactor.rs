//! Auto compaction (etcd's `etcdserver/api/v3compactor`): `--auto-compaction-mode
//! periodic|revision` with `--auto-compaction-retention`. Only the leader proposes; the
//! compaction itself goes through raft like a user's and removes the history in paced
//! backend batches (see `retcd_mvcc::Store::run_compaction`), so it never stalls writers.
//!
//! * **periodic** (retention a duration, or a bare number of hours): every tenth of the
//!   retention (at most every 6 minutes) the current revision is sampled; once a retention
//!   period has passed since the last success (then every retention, at most every hour),
//!   the store is compacted at the revision sampled one retention ago.
//! * **revision** (retention a number of revisions): every 5 minutes, compact at the
//!   current revision minus the retention, if that moved since the last compaction.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use retcd_api::EtcdError;
use retcd_api::etcdserverpb::CompactionRequest;
use tokio::time::Instant;

use crate::etcdserver::EtcdServer;

/// etcd's `revInterval`.
const REVISION_INTERVAL: Duration = Duration::from_secs(5 * 60);
const HOUR: Duration = Duration::from_secs(3600);

/// A parsed `--auto-compaction-mode`/`--auto-compaction-retention` pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    Off,
    Periodic(Duration),
    Revision(i64),
}

impl AutoCompaction {
    /// etcd's parsing: mode `periodic` takes a Go duration or a bare integer of hours,
    /// mode `revision` an integer; retention 0 turns it off.
    pub fn parse(mode: &str, retention: &str) -> Result<AutoCompaction, String> {
        let retention = retention.trim();
        match mode {
            "periodic" => {
                let d = match retention.parse::<u64>() {
                    Ok(hours) => Duration::from_secs(hours.saturating_mul(3600)),
                    Err(_) => crate::config::parse_go_duration(retention)
                        .ok_or_else(|| format!("invalid auto compaction retention: {retention:?}"))?,
                };
                Ok(if d.is_zero() {
                    AutoCompaction::Off
                } else {
                    AutoCompaction::Periodic(d)
                })
            }
            "revision" => {
                let n: i64 = retention
                    .parse()
                    .map_err(|_| format!("invalid auto compaction retention: {retention:?}"))?;
                Ok(if n <= 0 {
                    AutoCompaction::Off
                } else {
                    AutoCompaction::Revision(n)
                })
            }
            other => Err(format!("unknown auto-compaction-mode {other:?}")),
        }
    }
}

/// What the compactor needs of the server (a fake in tests).
pub trait Compactable: Send + Sync + 'static {
    fn is_leader(&self) -> bool;
    fn current_revision(&self) -> i64;
    /// Ok, or the error's message.
    fn compact(&self, rev: i64) -> impl Future<Output = Result<(), String>> + Send;
}

impl Compactable for EtcdServer {
    fn is_leader(&self) -> bool {
        self.raft.status().is_leader
    }

    fn current_revision(&self) -> i64 {
        self.store.current_revision()
    }

    async fn compact(&self, rev: i64) -> Result<(), String> {
        let r = CompactionRequest {
            revision: rev,
            physical: false,
        };
        // proposed by the server itself, not on behalf of a user
        match crate::auth::scoped(Default::default(), EtcdServer::compact(self, r)).await {
            Ok(_) => Ok(()),
            Err(st) => Err(st.message().to_string()),
        }
    }
}

/// A compaction that "failed" because the revision is already compacted counts as done.
fn done_or_compacted(r: &Result<(), String>) -> bool {
    match r {
        Ok(()) => true,
        Err(msg) => *msg == EtcdError::Compacted.to_string(),
    }
}

/// Runs the auto compactor until the task is dropped.
pub async fn run<C: Compactable>(c: Arc<C>, mode: AutoCompaction) {
    match mode {
        AutoCompaction::Off => {}
        AutoCompaction::Periodic(period) => run_periodic(c, period).await,
        AutoCompaction::Revision(retention) => run_revision(c, retention).await,
    }
}

async fn run_periodic<C: Compactable>(c: Arc<C>, period: Duration) {
    let compact_interval = period.min(HOUR);
    let retry = compact_interval / 10;
    let retentions = (period.as_nanos() / retry.as_nanos().max(1)) as usize + 1;
    tracing::info!(retention = ?period, interval = ?compact_interval, "auto compaction: periodic");
    let mut revs: VecDeque<i64> = VecDeque::with_capacity(retentions + 1);
    let mut last_success = Instant::now();
    let mut base = period;
    loop {
        revs.push_back(c.current_revision());
        if revs.len() > retentions {
            revs.pop_front(); // the front is the revision one period ago
        }
        tokio::time::sleep(retry).await;
        if !c.is_leader() || last_success.elapsed() < base {
            continue;
        }
        // the first compaction waits a whole period, later ones the interval
        base = compact_interval;
        let Some(&rev) = revs.front() else { continue };
        let r = c.compact(rev).await;
        if done_or_compacted(&r) {
            tracing::info!(revision = rev, "auto compaction: compacted");
            last_success = Instant::now();
        } else if let Err(e) = r {
            tracing::warn!(revision = rev, error = %e, "auto compaction failed; retrying");
        }
    }
}

async fn run_revision<C: Compactable>(c: Arc<C>, retention: i64) {
    tracing::info!(retention, "auto compaction: revision");
    let mut prev = 0i64;
    loop {
        tokio::time::sleep(REVISION_INTERVAL).await;
        if !c.is_leader() {
            continue;
        }
        let rev = c.current_revision() - retention;
        if rev <= 0 || rev == prev {
            continue;
        }
        let r = c.compact(rev).await;
        if done_or_compacted(&r) {
            tracing::info!(revision = rev, "auto compaction: compacted");
            prev = rev;
        } else if let Err(e) = r {
            tracing::warn!(revision = rev, error = %e, "auto compaction failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

    #[derive(Default)]
    struct Fake {
        leader: AtomicBool,
        rev: AtomicI64,
        compacted: Mutex<Vec<i64>>,
    }

    impl Compactable for Fake {
        fn is_leader(&self) -> bool {
            self.leader.load(Ordering::SeqCst)
        }
        fn current_revision(&self) -> i64 {
            self.rev.load(Ordering::SeqCst)
        }
        async fn compact(&self, rev: i64) -> Result<(), String> {
            let mut done = self.compacted.lock().unwrap();
            if done.last().is_some_and(|&l| l >= rev) {
                return Err(EtcdError::Compacted.to_string());
            }
            done.push(rev);
            Ok(())
        }
    }

    #[test]
    fn parse_as_etcd() {
        assert_eq!(
            AutoCompaction::parse("periodic", "1").unwrap(),
            AutoCompaction::Periodic(HOUR)
        );
        assert_eq!(
            AutoCompaction::parse("periodic", "30m").unwrap(),
            AutoCompaction::Periodic(Duration::from_secs(1800))
        );
        assert_eq!(
            AutoCompaction::parse("periodic", "0").unwrap(),
            AutoCompaction::Off
        );
        assert_eq!(
            AutoCompaction::parse("revision", "1000").unwrap(),
            AutoCompaction::Revision(1000)
        );
        assert!(AutoCompaction::parse("revision", "1h").is_err());
        assert!(AutoCompaction::parse("sometimes", "1").is_err());
        assert!(AutoCompaction::parse("periodic", "soon").is_err());
    }

    /// Revision mode: every 5 minutes, current - retention, only when leading and moved.
    #[tokio::test(start_paused = true)]
    async fn revision_mode() {
        let f = Arc::new(Fake::default());
        f.rev.store(100, Ordering::SeqCst);
        let task = tokio::spawn(run(f.clone(), AutoCompaction::Revision(30)));
        tokio::time::sleep(REVISION_INTERVAL + Duration::from_secs(1)).await;
        assert!(f.compacted.lock().unwrap().is_empty(), "not leader");
        f.leader.store(true, Ordering::SeqCst);
        tokio::time::sleep(REVISION_INTERVAL).await;
        assert_eq!(*f.compacted.lock().unwrap(), vec![70]);
        tokio::time::sleep(REVISION_INTERVAL).await;
        assert_eq!(*f.compacted.lock().unwrap(), vec![70], "revision did not move");
        f.rev.store(250, Ordering::SeqCst);
        tokio::time::sleep(REVISION_INTERVAL).await;
        assert_eq!(*f.compacted.lock().unwrap(), vec![70, 220]);
        task.abort();
    }

    /// Periodic mode, 1 h retention: samples every 6 minutes; the first compaction after an
    /// hour at the revision of an hour before, then every hour.
    #[tokio::test(start_paused = true)]
    async fn periodic_mode() {
        let f = Arc::new(Fake::default());
        f.leader.store(true, Ordering::SeqCst);
        let task = tokio::spawn(run(f.clone(), AutoCompaction::Periodic(HOUR)));
        let step = Duration::from_secs(360);
        // the revision grows by 10 per 6 minutes: 1, 11, 21, ...
        for i in 0..9 {
            f.rev.store(1 + 10 * i, Ordering::SeqCst);
            tokio::time::sleep(step).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(f.compacted.lock().unwrap().is_empty(), "before the first hour");
        for i in 9..22 {
            f.rev.store(1 + 10 * i, Ordering::SeqCst);
            tokio::time::sleep(step).await;
        }
        let done = f.compacted.lock().unwrap().clone();
        assert_eq!(done.len(), 2, "{done:?}");
        // each compaction is at the revision sampled about an hour (10-11 samples) before
        assert!(done[0] <= 11 && (81..=111).contains(&done[1]), "{done:?}");
        task.abort();
    }
}
