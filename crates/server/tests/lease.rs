//! Leases, Lock and Election end to end (issue 5): expiry, restart, etcdctl's lock and
//! elect recipes, and the Lock/Election/LeaseKeepAlive gRPC services. The gRPC checks run
//! against real etcd 3.4 too, so the behaviour asserted is etcd's.
//!
//! Run: `cargo test -p retcd-server --test lease`

mod common;

use std::time::{Duration, Instant};

use common::{EtcdctlProcess, Output, Ports, Server, ServerKind, kind_under_test};
use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::lease_client::LeaseClient;
use retcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, RangeRequest,
};
use retcd_api::v3electionpb::election_client::ElectionClient;
use retcd_api::v3electionpb::{CampaignRequest, LeaderKey, LeaderRequest, ProclaimRequest, ResignRequest};
use retcd_api::v3lockpb::lock_client::LockClient;
use retcd_api::v3lockpb::{LockRequest, UnlockRequest};
use tonic::Code;

fn ok(out: Output) -> String {
    assert!(
        out.success(),
        "etcdctl failed ({}): {}{}",
        out.code,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// `lease <hex> granted with TTL(Ns)` -> hex id
fn grant(s: &Server, ttl: &str) -> String {
    let out = ok(s.etcdctl(&["lease", "grant", ttl], None));
    out.split_whitespace().nth(1).expect("lease id").to_string()
}

fn exists(s: &Server, key: &str) -> bool {
    !ok(s.etcdctl(&["get", key, "--print-value-only"], None)).is_empty()
}

/// Polls until `key` is gone; returns when (None: still there after `timeout`).
fn wait_gone(s: &Server, key: &str, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !exists(s, key) {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn expired_lease_deletes_its_keys_and_watchers_see_it() {
    let s = Server::start(kind_under_test());
    let granted_at = Instant::now();
    let id = grant(&s, "3");
    ok(s.etcdctl(&["put", "svc/a", "1", "--lease", &id], None));
    ok(s.etcdctl(&["put", "svc/b", "2", "--lease", &id], None));
    ok(s.etcdctl(&["put", "svc/c", "3"], None));
    let mut watch = EtcdctlProcess::spawn(&s.endpoint(), &["watch", "svc/", "--prefix"], false);
    assert!(watch.wait_connected(s.ports().client(), Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(2000));
    assert!(exists(&s, "svc/a"), "deleted before its TTL ran out");
    let gone = wait_gone(&s, "svc/a", Duration::from_secs(5)).expect("key of an expired lease still there");
    let after = gone.duration_since(granted_at);
    assert!(
        after >= Duration::from_millis(2900) && after <= Duration::from_millis(4500),
        "a 3 s lease's key went away after {after:?}"
    );
    assert!(!exists(&s, "svc/b"));
    assert!(exists(&s, "svc/c"), "a key without the lease was deleted");
    // both deletions in one revision, seen by the watcher
    assert!(
        watch.wait_until(Duration::from_secs(5), |out, _| {
            let out = String::from_utf8_lossy(out);
            out.contains("DELETE\nsvc/a\n") && out.contains("DELETE\nsvc/b\n")
        }),
        "watcher output: {}",
        String::from_utf8_lossy(&watch.stdout())
    );
    let json = ok(s.etcdctl(&["get", "svc/c", "-w", "json"], None));
    assert!(
        json.contains("\"revision\":5"),
        "revoke must take one revision: {json}"
    );
    let ttl = ok(s.etcdctl(&["lease", "timetolive", &id], None));
    assert_eq!(ttl.trim(), format!("lease {id} already expired"));
}

#[test]
fn keep_alive_holds_a_lease() {
    let s = Server::start(kind_under_test());
    let id = grant(&s, "2");
    ok(s.etcdctl(&["put", "k", "v", "--lease", &id], None));
    let mut ka = EtcdctlProcess::spawn(&s.endpoint(), &["lease", "keep-alive", &id], false);
    std::thread::sleep(Duration::from_secs(5));
    assert!(exists(&s, "k"), "a kept-alive lease expired");
    assert!(String::from_utf8_lossy(&ka.stdout()).contains(&format!("lease {id} keepalived with TTL(2)")));
    ka.kill9();
    assert!(wait_gone(&s, "k", Duration::from_secs(6)).is_some());
    // the keep-alive stream tells the client the lease is gone
    assert!(ka.exit_code().is_some());
}

#[test]
fn leases_survive_restart_and_still_expire() {
    let mut s = Server::start(kind_under_test());
    let short = grant(&s, "4");
    let long = grant(&s, "1000");
    ok(s.etcdctl(&["put", "a", "1", "--lease", &short], None));
    ok(s.etcdctl(&["put", "b", "2", "--lease", &long], None));
    ok(s.etcdctl(&["put", "c", "3", "--lease", &long], None));
    ok(s.etcdctl(&["put", "c", "4"], None)); // detached again
    s.restart(); // kill -9, then start on the same data dir
    assert!(exists(&s, "a"));
    let ttl = ok(s.etcdctl(&["lease", "timetolive", &long, "--keys"], None));
    assert!(
        ttl.starts_with(&format!("lease {long} granted with TTL(1000s), remaining("))
            && ttl.contains("attached keys([b])"),
        "{ttl}"
    );
    let list = ok(s.etcdctl(&["lease", "list"], None));
    assert!(list.starts_with("found 2 leases"), "{list}");
    // the short lease gets its TTL again from the restart (plus an election timeout)
    assert!(
        wait_gone(&s, "a", Duration::from_secs(8)).is_some(),
        "restored lease never expired"
    );
    assert!(exists(&s, "b") && exists(&s, "c"));
    ok(s.etcdctl(&["lease", "revoke", &long], None));
    assert!(!exists(&s, "b"));
    assert!(exists(&s, "c"), "a detached key was deleted with its old lease");
}

#[test]
fn lease_checkpoints_keep_remaining_ttl_across_restart() {
    let mut s = Server::start_with(
        kind_under_test(),
        Ports::reserve(),
        &[
            "--experimental-enable-lease-checkpoint",
            "--experimental-lease-checkpoint-interval",
            "1s",
        ],
    );
    let id = grant(&s, "30");
    std::thread::sleep(Duration::from_millis(3500));
    s.restart();
    // checkpointed at ~27 s left: the restarted leader gives ~27 s + 1 s, not 30 s + 1 s
    let ttl = ok(s.etcdctl(&["lease", "timetolive", &id, "-w", "json"], None));
    let remaining: i64 = ttl
        .split("\"ttl\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ttl in {ttl}"));
    assert!(
        (20..=28).contains(&remaining),
        "remaining TTL after restart: {remaining} ({ttl})"
    );
}

#[test]
fn concurrent_lock_holders_never_overlap() {
    let s = Server::start(kind_under_test());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("holders");
    let script = format!("echo start >> {0}; sleep 0.3; echo end >> {0}", log.display());
    let holders: Vec<EtcdctlProcess> = (0..4)
        .map(|_| {
            EtcdctlProcess::spawn(
                &s.endpoint(),
                &["lock", "mylock", "--", "sh", "-c", &script],
                false,
            )
        })
        .collect();
    for h in holders {
        let out = h.finish(Duration::from_secs(20));
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines, "start\nend\n".repeat(4), "lock holders overlapped");
}

#[test]
fn killed_lock_holder_releases_after_its_session_ttl() {
    let s = Server::start(kind_under_test());
    let mut first = EtcdctlProcess::spawn(&s.endpoint(), &["lock", "--ttl", "2", "L"], false);
    assert!(first.wait_until(Duration::from_secs(5), |out, _| out.starts_with(b"L/")));
    let mut second = EtcdctlProcess::spawn(&s.endpoint(), &["lock", "L"], false);
    std::thread::sleep(Duration::from_millis(800));
    assert!(second.stdout().is_empty(), "two holders at once");
    let killed = Instant::now();
    first.kill9();
    assert!(second.wait_until(Duration::from_secs(8), |out, _| out.starts_with(b"L/")));
    assert!(
        killed.elapsed() >= Duration::from_millis(500),
        "lock taken before the session expired"
    );
}

#[test]
fn election_hands_over_when_the_leader_goes() {
    let s = Server::start(kind_under_test());
    let ep = s.endpoint();
    let mut a = EtcdctlProcess::spawn(&ep, &["elect", "E", "p1"], false);
    assert!(a.wait_until(Duration::from_secs(5), |out, _| out.ends_with(b"\np1\n")));
    let mut b = EtcdctlProcess::spawn(&ep, &["elect", "E", "p2"], false);
    let mut observer = EtcdctlProcess::spawn(&ep, &["elect", "-l", "E"], false);
    assert!(observer.wait_until(Duration::from_secs(5), |out, _| out.ends_with(b"\np1\n")));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        b.stdout().is_empty(),
        "second candidate elected while the first leads"
    );
    // etcdctl resigns on SIGTERM
    let status = std::process::Command::new("kill")
        .arg(a.pid().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(b.wait_until(Duration::from_secs(5), |out, _| out.ends_with(b"\np2\n")));
    assert!(observer.wait_until(Duration::from_secs(5), |out, _| out.ends_with(b"\np2\n")));
}

// ------------------------------------------------------------------------------------
// gRPC services, checked against etcd and retcd alike
// ------------------------------------------------------------------------------------

fn kinds() -> [ServerKind; 2] {
    [ServerKind::Etcd, kind_under_test()]
}

async fn lease_grant(ep: &str, ttl: i64) -> i64 {
    let mut c = LeaseClient::connect(ep.to_string()).await.unwrap();
    c.lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id
}

async fn keep_alive_once(ep: &str, id: i64) -> i64 {
    let mut c = LeaseClient::connect(ep.to_string()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    let mut stream = c
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let resp = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("keep-alive answer")
        .unwrap()
        .unwrap();
    assert_eq!(resp.id, id);
    resp.ttl
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_stream_as_etcd() {
    for kind in kinds() {
        let s = Server::start(kind);
        let ep = s.endpoint();
        let id = lease_grant(&ep, 7).await;
        assert_eq!(keep_alive_once(&ep, id).await, 7, "{}", kind.name());
        assert_eq!(
            keep_alive_once(&ep, 1234).await,
            0,
            "{}: a missing lease answers TTL 0",
            kind.name()
        );
        let mut c = LeaseClient::connect(ep.clone()).await.unwrap();
        let t = c
            .lease_time_to_live(LeaseTimeToLiveRequest { id: 1234, keys: true })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((t.ttl, t.granted_ttl), (-1, 0), "{}", kind.name());
    }
}

async fn next(obs: &mut tonic::Streaming<retcd_api::v3electionpb::LeaderResponse>) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(6), obs.message())
        .await
        .expect("observe answer")
        .unwrap()
        .unwrap()
        .kv
        .unwrap()
        .value
}

fn hex_key(prefix: &str, lease: i64) -> Vec<u8> {
    format!("{prefix}{lease:x}").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_service_as_etcd() {
    for kind in kinds() {
        let s = Server::start(kind);
        let ep = s.endpoint();
        let name = kind.name();
        let (la, lb) = (lease_grant(&ep, 30).await, lease_grant(&ep, 30).await);
        let mut lock = LockClient::connect(ep.clone()).await.unwrap();
        let a = lock
            .lock(LockRequest {
                name: b"L".to_vec(),
                lease: la,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(a.key, hex_key("L/", la), "{name}");
        let rev_a = a.header.unwrap().revision;
        let mut lock2 = lock.clone();
        let waiter = tokio::spawn(async move {
            lock2
                .lock(LockRequest {
                    name: b"L".to_vec(),
                    lease: lb,
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !waiter.is_finished(),
            "{name}: second locker got the lock while it was held"
        );
        lock.unlock(UnlockRequest { key: a.key.clone() }).await.unwrap();
        let b = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter never got the lock")
            .unwrap()
            .unwrap()
            .into_inner();
        assert_eq!(b.key, hex_key("L/", lb), "{name}");
        assert!(b.header.unwrap().revision > rev_a, "{name}");

        // a missing lease
        let e = lock
            .lock(LockRequest {
                name: b"M".to_vec(),
                lease: 1234,
            })
            .await
            .unwrap_err();
        // etcd's lock server hands its Go client's error back: code Unknown
        assert_eq!(
            (e.code(), e.message()),
            (Code::Unknown, "etcdserver: requested lease not found"),
            "{name}"
        );

        // a waiter that gives up leaves no key behind
        let held = lock
            .lock(LockRequest {
                name: b"C".to_vec(),
                lease: la,
            })
            .await
            .unwrap()
            .into_inner();
        let mut lock3 = lock.clone();
        let gave_up = tokio::time::timeout(
            Duration::from_millis(300),
            lock3.lock(LockRequest {
                name: b"C".to_vec(),
                lease: lb,
            }),
        )
        .await;
        assert!(gave_up.is_err(), "{name}");
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let mut kv = KvClient::connect(ep.clone()).await.unwrap();
        let keys: Vec<Vec<u8>> = kv
            .range(RangeRequest {
                key: b"C/".to_vec(),
                range_end: b"C0".to_vec(),
                keys_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .kvs
            .into_iter()
            .map(|kv| kv.key)
            .collect();
        assert_eq!(keys, vec![held.key], "{name}: an abandoned waiter's key stayed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn election_service_as_etcd() {
    for kind in kinds() {
        let s = Server::start(kind);
        let ep = s.endpoint();
        let name = kind.name();
        // the first candidate's lease is never kept alive: it expires and hands over
        let (la, lb) = (lease_grant(&ep, 2).await, lease_grant(&ep, 60).await);
        let mut el = ElectionClient::connect(ep.clone()).await.unwrap();
        let e = el
            .leader(LeaderRequest { name: b"E".to_vec() })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::Unknown, "election: no leader"),
            "{name}"
        );

        let a = el
            .campaign(CampaignRequest {
                name: b"E".to_vec(),
                lease: la,
                value: b"a".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        let leader_a = a.leader.clone().unwrap();
        assert_eq!(leader_a.key, hex_key("E/", la), "{name}");
        assert_eq!(leader_a.rev, a.header.unwrap().revision, "{name}");
        assert_eq!(leader_a.lease, la, "{name}");
        let l = el
            .leader(LeaderRequest { name: b"E".to_vec() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(l.kv.unwrap().value, b"a", "{name}");

        let mut observe = el
            .observe(LeaderRequest { name: b"E".to_vec() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(next(&mut observe).await, b"a", "{name}");

        let mut el2 = el.clone();
        let b = tokio::spawn(async move {
            el2.campaign(CampaignRequest {
                name: b"E".to_vec(),
                lease: lb,
                value: b"b".to_vec(),
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!b.is_finished(), "{name}: two leaders");

        el.proclaim(ProclaimRequest {
            leader: Some(leader_a.clone()),
            value: b"a2".to_vec(),
        })
        .await
        .unwrap();
        assert_eq!(next(&mut observe).await, b"a2", "{name}");
        let stale = LeaderKey {
            rev: leader_a.rev + 1000,
            ..leader_a.clone()
        };
        let e = el
            .proclaim(ProclaimRequest {
                leader: Some(stale),
                value: b"x".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::Unknown, "election: not leader"),
            "{name}"
        );
        let e = el
            .proclaim(ProclaimRequest {
                leader: None,
                value: b"x".to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (Code::Unknown, "\"leader\" field must be provided"),
            "{name}"
        );

        // the first leader's lease runs out: the second candidate wins
        let b = tokio::time::timeout(Duration::from_secs(8), b)
            .await
            .expect("hand-over after the leader's lease expired")
            .unwrap()
            .unwrap()
            .into_inner();
        let leader_b = b.leader.unwrap();
        assert_eq!(leader_b.key, hex_key("E/", lb), "{name}");
        assert_eq!(next(&mut observe).await, b"b", "{name}");

        el.resign(ResignRequest {
            leader: Some(leader_b),
        })
        .await
        .unwrap();
        let e = el
            .leader(LeaderRequest { name: b"E".to_vec() })
            .await
            .unwrap_err();
        assert_eq!(e.message(), "election: no leader", "{name}");
    }
}
