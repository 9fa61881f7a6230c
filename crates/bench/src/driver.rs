//! The closed-loop request driver shared by the workloads: `clients` tasks take request
//! numbers from one counter until `total` are issued, each timing its own requests, with an
//! optional global rate limit, a deadline and a progress bar on stderr.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::{Code, Status};

use crate::stats::Stats;

/// How a phase is driven.
#[derive(Debug, Clone)]
pub struct RunOpts {
    /// Concurrent clients (requests in flight).
    pub clients: u64,
    /// Requests to issue.
    pub total: u64,
    /// Requests per second over all clients; 0 = unlimited.
    pub rate: f64,
    /// Draw a progress bar on stderr (only if stderr is a terminal).
    pub progress: bool,
    /// Stop issuing requests after this long.
    pub deadline: Option<Duration>,
    /// Fail a request (DeadlineExceeded) that takes longer than this.
    pub request_timeout: Option<Duration>,
}

/// What a request reports back: its class (for workloads with several request kinds, e.g.
/// txn-mixed's reads and writes; 0 otherwise).
pub type Class = usize;

/// Per-class results of one driven phase.
#[derive(Debug)]
pub struct Driven {
    /// One [`Stats`] per class (`classes` long).
    pub by_class: Vec<Stats>,
    /// All classes together.
    pub all: Stats,
    /// Some request failed with `Unimplemented`.
    pub unimplemented: Option<String>,
}

/// Error text used in the error distribution.
pub fn status_text(s: &Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Runs `op(client, request_number)` `total` times over `clients` concurrent tasks.
/// `op` must return the request's class (< `classes`).
pub async fn drive<F, Fut>(opts: &RunOpts, classes: usize, op: F) -> Driven
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Class, Status>> + Send + 'static,
{
    let classes = classes.max(1);
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = opts.deadline.map(|d| start + d);
    let progress = (opts.progress && std::io::stderr().is_terminal() && opts.total > 0).then(|| {
        let done = done.clone();
        let total = opts.total;
        tokio::spawn(async move {
            loop {
                draw_bar(done.load(Ordering::Relaxed), total, start.elapsed());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    });

    let mut tasks = Vec::new();
    for c in 0..opts.clients.max(1) as usize {
        let op = op.clone();
        let next = next.clone();
        let done = done.clone();
        let stop = stop.clone();
        let total = opts.total;
        let rate = opts.rate;
        let request_timeout = opts.request_timeout;
        tasks.push(tokio::spawn(async move {
            let mut lats: Vec<Vec<u64>> = vec![Vec::new(); classes];
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            let mut unimplemented = None;
            let mut timed_out = false;
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if rate > 0.0 {
                    let at = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                }
                if let Some(d) = deadline
                    && Instant::now() >= d
                {
                    timed_out = true;
                    stop.store(true, Ordering::Relaxed);
                    break;
                }
                let t = Instant::now();
                let r = match request_timeout {
                    None => op(c, i).await,
                    Some(t) => tokio::time::timeout(t, op(c, i)).await.unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded(format!("no answer within {t:?}")))
                    }),
                };
                let ns = t.elapsed().as_nanos() as u64;
                match r {
                    Ok(class) => lats[class.min(classes - 1)].push(ns),
                    Err(s) => {
                        if s.code() == Code::Unimplemented && unimplemented.is_none() {
                            unimplemented = Some(status_text(&s));
                        }
                        *errors.entry(status_text(&s)).or_default() += 1;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (lats, errors, unimplemented, timed_out)
        }));
    }
    let mut lats: Vec<Vec<u64>> = vec![Vec::new(); classes];
    let mut errors = BTreeMap::new();
    let mut unimplemented = None;
    let mut timed_out = false;
    for t in tasks {
        match t.await {
            Ok((l, e, u, to)) => {
                for (acc, l) in lats.iter_mut().zip(l) {
                    acc.extend(l);
                }
                for (k, v) in e {
                    *errors.entry(k).or_default() += v;
                }
                unimplemented = unimplemented.or(u);
                timed_out |= to;
            }
            Err(e) => *errors.entry(format!("client task failed: {e}")).or_default() += 1,
        }
    }
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        p.abort();
        draw_bar(done.load(Ordering::Relaxed), opts.total, elapsed);
        eprintln!();
    }
    let all_lats: Vec<u64> = lats.iter().flatten().copied().collect();
    let mut all = Stats::new(all_lats, errors.clone(), elapsed);
    all.timed_out = timed_out;
    let by_class = lats
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            // Errors are not attributed to a class: they are shown with class 0.
            let e = if i == 0 { errors.clone() } else { BTreeMap::new() };
            let mut s = Stats::new(l, e, elapsed);
            s.timed_out = timed_out;
            s
        })
        .collect();
    Driven {
        by_class,
        all,
        unimplemented,
    }
}

fn draw_bar(done: u64, total: u64, elapsed: Duration) {
    let width = 40u64;
    let filled = (done.min(total) * width).checked_div(total).unwrap_or(0);
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r {done} / {total} [{}{}] {:.0}% {:.0} req/s ",
        "=".repeat(filled as usize),
        " ".repeat((width - filled) as usize),
        done as f64 * 100.0 / total.max(1) as f64,
        rate
    );
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn issues_exactly_total_requests_and_counts_errors() {
        let seen = Arc::new(AtomicU64::new(0));
        let s2 = seen.clone();
        let opts = RunOpts {
            clients: 7,
            total: 1000,
            rate: 0.0,
            progress: false,
            deadline: None,
            request_timeout: None,
        };
        let d = drive(&opts, 2, move |_c, i| {
            let s2 = s2.clone();
            async move {
                s2.fetch_add(1, Ordering::Relaxed);
                if i % 10 == 0 {
                    Err(Status::unavailable("down"))
                } else if i % 2 == 0 {
                    Ok(1)
                } else {
                    Ok(0)
                }
            }
        })
        .await;
        assert_eq!(seen.load(Ordering::Relaxed), 1000);
        assert_eq!(d.all.ok(), 900);
        assert_eq!(d.all.error_count(), 100);
        assert_eq!(d.by_class[0].ok(), 500);
        assert_eq!(d.by_class[1].ok(), 400);
        assert_eq!(d.all.errors.get("Unavailable: down"), Some(&100));
        assert!(d.unimplemented.is_none());
    }

    #[tokio::test]
    async fn reports_unimplemented() {
        let opts = RunOpts {
            clients: 2,
            total: 5,
            rate: 0.0,
            progress: false,
            deadline: None,
            request_timeout: None,
        };
        let d = drive(&opts, 1, |_c, _i| async {
            Err::<Class, _>(Status::unimplemented("no watch"))
        })
        .await;
        assert_eq!(d.all.error_count(), 5);
        assert!(d.unimplemented.unwrap().contains("no watch"));
    }

    #[tokio::test]
    async fn rate_limit_spaces_requests() {
        let opts = RunOpts {
            clients: 4,
            total: 21,
            rate: 200.0,
            progress: false,
            deadline: None,
            request_timeout: None,
        };
        let d = drive(&opts, 1, |_c, _i| async { Ok(0) }).await;
        assert_eq!(d.all.ok(), 21);
        // request 20 may not start before 20/200 s = 100 ms
        assert!(d.all.elapsed >= Duration::from_millis(100), "{:?}", d.all.elapsed);
    }

    #[tokio::test]
    async fn slow_requests_time_out() {
        let opts = RunOpts {
            clients: 2,
            total: 4,
            rate: 0.0,
            progress: false,
            deadline: None,
            request_timeout: Some(Duration::from_millis(20)),
        };
        let d = drive(&opts, 1, |_c, i| async move {
            if i % 2 == 0 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Ok(0)
        })
        .await;
        assert_eq!(d.all.ok(), 2);
        assert_eq!(d.all.error_count(), 2);
        assert!(d.all.elapsed < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn deadline_stops_early() {
        let opts = RunOpts {
            clients: 1,
            total: 1_000_000,
            rate: 0.0,
            progress: false,
            deadline: Some(Duration::from_millis(50)),
            request_timeout: None,
        };
        let d = drive(&opts, 1, |_c, _i| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(0)
        })
        .await;
        assert!(d.all.timed_out);
        assert!(d.all.ok() < 100);
    }
}
