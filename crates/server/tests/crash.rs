//! Crash safety: concurrent writers, `kill -9` mid-way, restart on the same data dir and
//! ports; every acknowledged write must survive with its value and revision, and the
//! revision must keep increasing after the restart.
//!
//! Run: `cargo test -p retcd-server --test crash`
//! (`RETCD_COMPAT_SELFTEST=1` runs it against the real etcd, to validate the test.)

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, etcdctl_with, kind_under_test};

const WRITERS: usize = 4;
const PUTS_PER_WRITER: usize = 200;
/// Kill the server once this many puts were acknowledged (or after KILL_AFTER).
const KILL_AT_ACKS: usize = 150;
const KILL_AFTER: Duration = Duration::from_secs(60);

fn key(writer: usize, i: usize) -> String {
    format!("crash/w{writer}/{i:04}")
}

fn value(writer: usize, i: usize) -> String {
    format!("value-{writer}-{i}-{}", "x".repeat(i % 50))
}

fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn header_revision(json: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    v.get("header")?.get("revision")?.as_i64()
}

#[test]
fn acknowledged_writes_survive_kill9() {
    let mut server = Server::start(kind_under_test());
    let endpoint = server.endpoint();
    let stop = Arc::new(AtomicBool::new(false));
    let acked_count = Arc::new(AtomicUsize::new(0));
    // key -> (value, revision from the put response)
    let acked: Arc<Mutex<HashMap<String, (String, i64)>>> = Arc::new(Mutex::new(HashMap::new()));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (endpoint, stop, acked, acked_count) = (
                endpoint.clone(),
                Arc::clone(&stop),
                Arc::clone(&acked),
                Arc::clone(&acked_count),
            );
            thread::spawn(move || {
                let mut failures = 0;
                for i in 0..PUTS_PER_WRITER {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (k, v) = (key(w, i), value(w, i));
                    // short timeouts: once the server is dead, in-flight puts fail fast
                    let out = etcdctl_with(&endpoint, "2s", "4s", &["put", &k, &v, "-w", "json"], None);
                    if out.success() {
                        let rev = header_revision(&out.stdout)
                            .unwrap_or_else(|| panic!("acknowledged put without a revision: {out:?}"));
                        acked.lock().unwrap().insert(k, (v, rev));
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    } else {
                        failures += 1;
                    }
                }
                failures
            })
        })
        .collect();

    // Kill mid-way.
    let started = Instant::now();
    while acked_count.load(Ordering::SeqCst) < KILL_AT_ACKS
        && started.elapsed() < KILL_AFTER
        && !writers.iter().all(|h| h.is_finished())
    {
        thread::sleep(Duration::from_millis(10));
    }
    server.kill9();
    let acked_at_kill = acked_count.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let failures: usize = writers
        .into_iter()
        .map(|h| h.join().expect("writer thread panicked"))
        .sum();
    let acked = Arc::try_unwrap(acked)
        .expect("writers joined")
        .into_inner()
        .unwrap();
    eprintln!(
        "killed after {:?} with {acked_at_kill} acknowledged puts; {} acknowledged in total, {failures} failed",
        started.elapsed(),
        acked.len()
    );
    assert!(
        !acked.is_empty(),
        "no put was acknowledged before the kill\n{}",
        server.log_tail(100)
    );

    server.restart();

    // Every acknowledged key is present with its value and the revision it was acked at.
    let out = server.etcdctl(&["get", "crash/", "--prefix", "-w", "json"], None);
    assert!(out.success(), "get after restart failed: {out:?}");
    let resp: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("get -w json output");
    let mut present: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for kv in resp.get("kvs").and_then(|k| k.as_array()).into_iter().flatten() {
        let k = kv
            .get("key")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string();
        let v = kv
            .get("value")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string();
        let rev = kv
            .get("mod_revision")
            .and_then(|x| x.as_i64())
            .unwrap_or_default();
        present.insert(k, (v, rev));
    }
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    for (k, (v, rev)) in &acked {
        match present.get(&base64(k.as_bytes())) {
            None => missing.push(k.clone()),
            Some((pv, prev)) if *pv != base64(v.as_bytes()) || prev != rev => wrong.push(format!(
                "{k}: acked value {v:?} at rev {rev}, found base64 {pv} at rev {prev}"
            )),
            Some(_) => {}
        }
    }
    missing.sort();
    wrong.sort();
    assert!(
        missing.is_empty() && wrong.is_empty(),
        "after kill -9 and restart, {} of {} acknowledged keys are missing ({:?}) and {} differ ({:?})\n{}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(20)],
        wrong.len(),
        &wrong[..wrong.len().min(20)],
        server.log_tail(100)
    );

    // Acknowledged revisions are unique, and the revision continues after the restart.
    let mut revs: Vec<i64> = acked.values().map(|(_, r)| *r).collect();
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), acked.len(), "two acknowledged puts share a revision");
    let max_acked = *revs.last().expect("not empty");
    let header_rev = header_revision(&out.stdout).expect("header revision");
    assert!(
        header_rev >= max_acked,
        "store revision {header_rev} after restart < acknowledged {max_acked}"
    );
    let out = server.etcdctl(&["put", "crash-after-restart", "v", "-w", "json"], None);
    assert!(out.success(), "put after restart failed: {out:?}");
    let new_rev = header_revision(&out.stdout).expect("revision of the new put");
    assert!(
        new_rev > max_acked && new_rev > header_rev,
        "put after restart got revision {new_rev}, not above the acknowledged {max_acked} / current {header_rev}"
    );
    let out = server.etcdctl(&["get", "crash-after-restart", "--print-value-only"], None);
    assert_eq!((out.code, out.stdout.as_str()), (0, "v\n"), "{out:?}");
}

/// A raft log that can no longer be written (its directory removed under the running
/// server, so the next WAL chunk cannot be created) stops the process loudly (exit code 2,
/// "FATAL" on stderr) instead of leaving it up answering every write with an error.
#[test]
fn a_wal_that_cannot_be_written_stops_the_process() {
    if common::selftest() {
        return; // retcd's own contract; etcd panics differently
    }
    let mut server = Server::start(kind_under_test());
    let out = server.etcdctl(&["put", "before", "v"], None);
    assert!(out.success(), "{out:?}");
    std::fs::remove_dir_all(server.data_dir().join("member").join("wal")).expect("remove the WAL dir");
    // WAL chunks hold 64 MiB: ~1.4 MiB values fill the open one within ~50 puts.
    let big = "x".repeat(1_400_000);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut puts = 0;
    while server.is_running() && Instant::now() < deadline && puts < 200 {
        // The value on stdin (too long for an argument).
        let _ = server.etcdctl(&["put", "big"], Some(&big));
        puts += 1;
    }
    let stop_by = Instant::now() + Duration::from_secs(10);
    while server.is_running() && Instant::now() < stop_by {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !server.is_running(),
        "retcd still runs after {puts} puts with its WAL dir gone\n{}",
        server.log_tail(30)
    );
    let log = server.log();
    assert!(
        log.contains("retcd: FATAL:"),
        "no FATAL line:\n{}",
        server.log_tail(30)
    );
}
