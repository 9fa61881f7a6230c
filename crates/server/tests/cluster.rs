//! Multi-member clusters of the real binary (issue 6): three members on 127.0.0.1 ports,
//! driven with the real etcdctl. Writes through any member are visible on every member;
//! killing the leader (SIGKILL) elects a new one and writes go on; the old leader rejoins
//! and catches up; leases work through followers.
//!
//! Run: `cargo test -p retcd-server --test cluster`

mod common;
#[path = "common/linearizable.rs"]
mod linearizable;

use std::fs::OpenOptions;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Output, Ports, etcdctl_at};

struct Member {
    name: String,
    ports: Arc<Ports>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Member {
    fn endpoint(&self) -> String {
        self.ports.client_url()
    }

    /// While this file exists the member drops all peer traffic (retcd's isolation
    /// failpoint, `RETCD_FAILPOINT_ISOLATE`).
    fn isolation_file(&self) -> std::path::PathBuf {
        self.dir.path().join("isolate")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Cluster tests run one at a time: each runs 3 or 4 servers, and elections and fail-over
/// bounds are about timing, which 12+ servers on 2 cores would starve.
static BUSY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Held by the running cluster test; released on drop (also when the test panics).
struct Serial;

fn serial() -> Serial {
    use std::sync::atomic::Ordering;
    while BUSY
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    Serial
}

impl Drop for Serial {
    fn drop(&mut self) {
        BUSY.store(false, std::sync::atomic::Ordering::Release);
    }
}

struct Cluster {
    members: Vec<Member>,
    initial_cluster: String,
    extra: Vec<String>,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    fn start_with(n: usize, extra: &[&str]) -> Cluster {
        let members: Vec<Member> = (1..=n)
            .map(|i| Member {
                name: format!("m{i}"),
                ports: Ports::reserve(),
                dir: tempfile::Builder::new()
                    .prefix("retcd-cluster-")
                    .tempdir()
                    .unwrap(),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}={}", m.name, m.ports.peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            members,
            initial_cluster,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        for i in 0..n {
            c.wait_ready(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let ic = self.initial_cluster.clone();
        self.spawn_with(i, &ic, "new");
    }

    /// Adds a member slot (not started) and returns its index.
    fn add_slot(&mut self, name: &str) -> usize {
        self.members.push(Member {
            name: name.to_string(),
            ports: Ports::reserve(),
            dir: tempfile::Builder::new()
                .prefix("retcd-cluster-")
                .tempdir()
                .unwrap(),
            child: None,
        });
        self.members.len() - 1
    }

    fn spawn_with(&mut self, i: usize, ic: &str, state: &str) {
        let extra = self.extra.clone();
        let m = &mut self.members[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(m.dir.path().join("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_retcd"))
            .args(["--name", &m.name])
            .args(["--data-dir", m.dir.path().join("data").to_str().unwrap()])
            .args(["--listen-client-urls", &m.ports.client_url()])
            .args(["--advertise-client-urls", &m.ports.client_url()])
            .args(["--listen-peer-urls", &m.ports.peer_url()])
            .args(["--initial-advertise-peer-urls", &m.ports.peer_url()])
            .args(["--initial-cluster", ic])
            .args(["--initial-cluster-state", state])
            .args(&extra)
            .env("RETCD_FAILPOINT_ISOLATE", m.isolation_file())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        m.child = Some(child);
    }

    fn wait_ready(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.members[i].child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "member {} exited ({status}):\n{}",
                    self.members[i].name,
                    self.members[i].log()
                );
            }
            let out = self.ctl(i, &["get", "ready-probe"]);
            if out.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "member {} not ready: {}\n{}",
                self.members[i].name,
                out.stderr,
                self.members[i].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn isolate(&self, i: usize) {
        std::fs::write(self.members[i].isolation_file(), b"").unwrap();
    }

    fn heal(&self, i: usize) {
        std::fs::remove_file(self.members[i].isolation_file()).unwrap();
    }

    /// etcdctl with a command timeout long enough for the server's own request timeout
    /// (5 s + 2 election timeouts) to answer first.
    fn ctl_slow(&self, i: usize, args: &[&str]) -> Output {
        common::etcdctl_with(&self.members[i].endpoint(), "3s", "15s", args, None)
    }

    /// Waits until member `i` serves `key` = `want` from its own state (a serializable
    /// read): it has caught up at least that far.
    fn wait_caught_up(&self, i: usize, key: &str, want: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.ctl(i, &["get", key, "--consistency=s", "--print-value-only"]);
            if out.success() && out.stdout.trim() == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "member {} never caught up ({key} = {want:?}): {}\n{}",
                self.members[i].name,
                out.stderr,
                self.members[i].log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ctl(&self, i: usize, args: &[&str]) -> Output {
        etcdctl_at(&self.members[i].endpoint(), args, None)
    }

    fn ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.ctl(i, args);
        assert!(
            out.success(),
            "member {i}: etcdctl {args:?}: {}{}",
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// The index of the member that says it leads (among running ones).
    fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            self.members[i].child.is_some()
                && self
                    .ctl(i, &["endpoint", "status", "-w", "json"])
                    .stdout
                    .contains("\"leader\":")
                && {
                    let out = self.ctl(i, &["endpoint", "status"]).stdout;
                    out.split(", ").nth(4) == Some("true")
                }
        })
    }
}

fn revision(json: &str) -> i64 {
    json.split("\"revision\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {json}"))
}

#[test]
fn three_members_replicate_fail_over_and_catch_up() {
    let _serial = serial();
    let mut c = Cluster::start(3);
    // writes through every member, visible on every member at the same revision
    for i in 0..3 {
        c.ok(i, &["put", &format!("k{i}"), &format!("v{i}")]);
    }
    let mut revs = Vec::new();
    for i in 0..3 {
        let json = c.ok(i, &["get", "k", "--prefix", "-w", "json"]);
        assert_eq!(json.matches("\"key\":").count(), 3, "member {i}: {json}");
        revs.push(revision(&json));
    }
    assert!(revs.iter().all(|r| *r == 4), "{revs:?}");

    // every member knows every member, with its name and client URL
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = c.ok(1, &["member", "list"]);
        if c.members
            .iter()
            .all(|m| list.contains(&format!("started, {}, ", m.name)) && list.contains(&m.endpoint()))
        {
            break;
        }
        assert!(Instant::now() < deadline, "member list never complete:\n{list}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // a lease through a follower: grant, attach, keep-alive, time-to-live
    let leader = c.leader().expect("a leader");
    let follower = (leader + 1) % 3;
    let grant = c.ok(follower, &["lease", "grant", "30"]);
    let id = grant.split_whitespace().nth(1).unwrap().to_string();
    c.ok(follower, &["put", "leased", "x", "--lease", &id]);
    let ka = c.ok(follower, &["lease", "keep-alive", "--once", &id]);
    assert_eq!(ka.trim(), format!("lease {id} keepalived with TTL(30)"));
    let ttl = c.ok(follower, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.contains("granted with TTL(30s)") && ttl.contains("attached keys([leased])"),
        "{ttl}"
    );

    // move-leader: refused on a follower, to a non-member; moves to a voter
    let ids: Vec<String> = c
        .ok(0, &["member", "list"])
        .lines()
        .map(|l| l.split(", ").next().unwrap().to_string())
        .collect();
    let status = c.ok(leader, &["endpoint", "status"]);
    let leader_id = status.split(", ").nth(1).unwrap().to_string();
    let target_id = ids.iter().find(|id| **id != leader_id).unwrap().clone();
    // etcdctl looks for the leader among the endpoints it is given
    let refused = c.ctl(follower, &["move-leader", &target_id]);
    assert!(
        refused.stderr.contains("no leader endpoint given at"),
        "{}",
        refused.stderr
    );
    let bad = c.ctl(leader, &["move-leader", "1234"]);
    assert!(
        bad.stderr.contains("etcdserver: bad leader transferee"),
        "{}",
        bad.stderr
    );
    // etcd 3.4's answer carries no header
    assert_eq!(
        c.ok(leader, &["-w", "json", "move-leader", &leader_id]).trim(),
        "{}"
    );
    let moved = c.ok(leader, &["move-leader", &target_id]);
    assert_eq!(
        moved.trim(),
        format!("Leadership transferred from {leader_id} to {target_id}")
    );
    let leader = c.leader().expect("a leader after move-leader");
    assert!(c.ok(leader, &["endpoint", "status"]).contains(&target_id));
    c.ok(leader, &["put", "after-move", "1"]);

    // kill -9 the leader: a new one is elected and writes go on
    c.members[leader].kill9();
    let killed = Instant::now();
    let survivor = (leader + 1) % 3;
    let deadline = killed + Duration::from_secs(15);
    loop {
        let out = etcdctl_at(&c.members[survivor].endpoint(), &["put", "after", "1"], None);
        if out.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write accepted after the leader died: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let failover = killed.elapsed();
    // the lease survived the leader's death: the new leader gave it its full TTL again
    // (plus an election timeout) rather than letting the old countdown run out
    let ttl = c.ok(survivor, &["lease", "timetolive", &id, "-w", "json"]);
    let remaining: i64 = ttl
        .split("\"ttl\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ttl in {ttl}"));
    assert!(
        remaining >= 28,
        "lease countdown not restarted by the new leader: {ttl}"
    );
    assert_eq!(
        c.ok(survivor, &["get", "leased", "--print-value-only"]).trim(),
        "x"
    );
    for n in 0..50 {
        let target = if n % 2 == 0 {
            (leader + 1) % 3
        } else {
            (leader + 2) % 3
        };
        c.ok(target, &["put", &format!("w{n:02}"), &n.to_string()]);
    }
    let new_leader = c.leader().expect("a new leader");
    assert_ne!(new_leader, leader);

    // the old leader rejoins on its data dir and catches up
    c.spawn(leader);
    c.wait_ready(leader);
    c.wait_caught_up(leader, "w49", "49", Duration::from_secs(10));
    let a = c.ok(leader, &["get", "", "--prefix", "-w", "json"]);
    let b = c.ok(new_leader, &["get", "", "--prefix", "-w", "json"]);
    // same data and revision everywhere (headers differ only in member id and term)
    let body = |s: &str| s.split("\"kvs\":").nth(1).unwrap().to_string();
    assert_eq!(body(&a), body(&b));
    assert_eq!(revision(&a), revision(&b));
    eprintln!("fail-over: first write accepted {failover:?} after the leader was killed");
}

#[test]
fn learner_joins_is_promoted_and_members_are_removed() {
    let _serial = serial();
    let mut c = Cluster::start(3);
    c.ok(0, &["put", "before", "1"]);
    let new = c.add_slot("m4");
    let peer = c.members[new].ports.peer_url();
    let added = c.ok(
        1,
        &["member", "add", "m4", "--learner", &format!("--peer-urls={peer}")],
    );
    // etcdctl prints the environment to start the new member with
    let env = |key: &str| -> String {
        added
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=\"")))
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("no {key} in:\n{added}"))
            .to_string()
    };
    assert_eq!(env("ETCD_NAME"), "m4");
    assert_eq!(env("ETCD_INITIAL_CLUSTER_STATE"), "existing");
    assert_eq!(env("ETCD_INITIAL_ADVERTISE_PEER_URLS"), peer);
    let new_id = added.split_whitespace().nth(1).unwrap().to_string();
    let list = c.ok(0, &["member", "list"]);
    assert!(
        list.contains(&format!("{new_id}, unstarted, , {peer}, , true")),
        "{list}"
    );
    // a second learner is refused; so is a peer URL in use and a voter promotion
    let again = c.ctl(
        0,
        &[
            "member",
            "add",
            "m5",
            "--learner",
            "--peer-urls=http://127.0.0.1:1",
        ],
    );
    assert!(
        again
            .stderr
            .contains("etcdserver: too many learner members in cluster"),
        "{}",
        again.stderr
    );
    let dup = c.ctl(0, &["member", "add", "m5", &format!("--peer-urls={peer}")]);
    assert!(
        dup.stderr.contains("etcdserver: Peer URLs already exists"),
        "{}",
        dup.stderr
    );

    c.spawn_with(new, &env("ETCD_INITIAL_CLUSTER"), "existing");
    c.wait_caught_up(new, "before", "1", Duration::from_secs(20));
    // Status says which members are learners
    assert!(
        c.ok(new, &["endpoint", "status", "-w", "json"])
            .contains("\"isLearner\":true"),
        "the learner's status"
    );
    assert!(
        !c.ok(0, &["endpoint", "status", "-w", "json"])
            .contains("isLearner")
    );
    let voter_id = c
        .ok(0, &["member", "list"])
        .lines()
        .find(|l| l.contains(", m1, "))
        .and_then(|l| l.split(", ").next())
        .unwrap()
        .to_string();
    let not_learner = c.ctl(0, &["member", "promote", &voter_id]);
    assert!(
        not_learner
            .stderr
            .contains("etcdserver: can only promote a learner member"),
        "{}",
        not_learner.stderr
    );
    // as an operator would: retry while the learner is not yet in sync
    let deadline = Instant::now() + Duration::from_secs(15);
    let promoted = loop {
        let out = c.ctl(2, &["member", "promote", &new_id]);
        if out.success() {
            break out.stdout;
        }
        assert!(
            out.stderr.contains("which is in sync with leader") && Instant::now() < deadline,
            "{}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        // etcdctl prints ids here with %16x (space-padded)
        promoted.contains(&format!("Member {new_id:>16} promoted in cluster ")),
        "{promoted}"
    );
    // the new voter takes writes
    c.ok(new, &["put", "from-m4", "x"]);
    assert_eq!(c.ok(0, &["get", "from-m4", "--print-value-only"]).trim(), "x");

    // remove m1; the other three go on
    let removed = c.ok(1, &["member", "remove", &voter_id]);
    assert!(
        removed.contains(&format!("Member {voter_id:>16} removed from cluster ")),
        "{removed}"
    );
    c.members[0].kill9();
    let list = c.ok(1, &["member", "list"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(!list.contains(", m1, "), "{list}");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !c.ctl(new, &["put", "after-remove", "y"]).success() {
        assert!(Instant::now() < deadline, "no writes after removing a member");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        c.ok(2, &["get", "after-remove", "--print-value-only"]).trim(),
        "y"
    );
    let missing = c.ctl(1, &["member", "remove", &voter_id]);
    assert!(
        missing.stderr.contains("etcdserver: member not found"),
        "{}",
        missing.stderr
    );
}

/// A member that was down while the others wrote far past their kept log catches up from
/// a snapshot image of the leader's backend, history, compaction and leases included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_behind_the_compacted_log_catches_up_by_snapshot() {
    let _serial = serial();
    use retcd_api::etcdserverpb::kv_client::KvClient;
    use retcd_api::etcdserverpb::{CompactionRequest, PutRequest};
    let mut c = Cluster::start_with(
        3,
        &[
            "--snapshot-count",
            "100",
            "--experimental-snapshot-catchup-entries",
            "20",
        ],
    );
    let lagging = 2;
    c.ok(lagging, &["put", "early", "0"]);
    c.members[lagging].kill9();
    let ep = c.members[0].endpoint();
    let mut handles = Vec::new();
    for w in 0..10 {
        let ep = ep.clone();
        handles.push(tokio::spawn(async move {
            let mut kv = KvClient::connect(ep).await.unwrap();
            for i in 0..100 {
                let req = PutRequest {
                    key: format!("w{w}/{i:03}").into_bytes(),
                    value: vec![b'v'; 100],
                    ..Default::default()
                };
                // like etcd's clients, retry what a busy machine may cause (a leader
                // change, a timeout); a retried put may land twice, which is harmless here
                let mut tries = 0;
                while let Err(e) = kv.put(req.clone()).await {
                    tries += 1;
                    assert!(tries < 50, "put keeps failing: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut kv = KvClient::connect(ep).await.unwrap();
    kv.compact(CompactionRequest {
        revision: 500,
        physical: true,
    })
    .await
    .unwrap();
    let lease = c.ok(0, &["lease", "grant", "600"]);
    let lease_id = lease.split_whitespace().nth(1).unwrap().to_string();
    c.ok(0, &["put", "last", "x", "--lease", &lease_id]);

    c.spawn(lagging);
    c.wait_caught_up(lagging, "last", "x", Duration::from_secs(30));
    assert!(
        c.members[lagging]
            .log()
            .contains("installed a snapshot image from the leader"),
        "caught up without a snapshot (is the log kept too long?)"
    );
    // the same data, revision, compaction and lease as the others
    let all = |i: usize| c.ok(i, &["get", "", "--prefix", "--consistency=s", "-w", "json"]);
    let (a, b) = (all(0), all(lagging));
    let body = |s: &str| s.split("\"kvs\":").nth(1).unwrap().to_string();
    assert_eq!(body(&a), body(&b));
    assert_eq!(revision(&a), revision(&b));
    let compacted = c.ctl(lagging, &["get", "early", "--rev=3", "--consistency=s"]);
    assert!(
        compacted.stderr.contains("required revision has been compacted"),
        "{}",
        compacted.stderr
    );
    assert!(c.ok(lagging, &["lease", "list"]).contains(&lease_id));
    // and it takes part in writes again
    c.ok(lagging, &["put", "after", "y"]);
    assert_eq!(c.ok(0, &["get", "after", "--print-value-only"]).trim(), "y");
}

/// Cut one member off (an in-process transport failpoint): the minority refuses writes and
/// linearizable reads with etcd's errors and never acknowledges anything, the majority
/// goes on, and after healing the member catches up. First a follower, then the leader.
#[test]
fn isolated_minority_refuses_and_majority_goes_on() {
    let _serial = serial();
    let c = Cluster::start(3);
    c.ok(0, &["put", "k", "v0"]);
    let leader = c.leader().expect("a leader");
    let follower = (leader + 1) % 3;

    // an isolated follower
    c.isolate(follower);
    std::thread::sleep(Duration::from_millis(300));
    let put = c.ctl_slow(follower, &["put", "k", "from-minority"]);
    assert!(!put.success(), "an isolated follower acknowledged a write");
    assert!(
        put.stderr.contains("etcdserver: no leader") || put.stderr.contains("etcdserver: request timed out"),
        "{}",
        put.stderr
    );
    let get = c.ctl_slow(follower, &["get", "k"]);
    assert!(!get.success(), "an isolated follower served a linearizable read");
    assert_eq!(
        c.ok(follower, &["get", "k", "--consistency=s", "--print-value-only"])
            .trim(),
        "v0"
    );
    // MemberList: the local view is served, the linearizable one (etcd 3.5) is not
    let ep = c.members[follower].endpoint();
    tokio::runtime::Runtime::new().unwrap().block_on(async move {
        use retcd_api::etcdserverpb::MemberListRequest;
        use retcd_api::etcdserverpb::cluster_client::ClusterClient;
        let mut cl = ClusterClient::connect(ep).await.unwrap();
        let local = cl
            .member_list(MemberListRequest { linearizable: false })
            .await
            .unwrap();
        assert_eq!(local.into_inner().members.len(), 3);
        let lin = tokio::time::timeout(
            Duration::from_secs(15),
            cl.member_list(MemberListRequest { linearizable: true }),
        )
        .await;
        assert!(
            !matches!(lin, Ok(Ok(_))),
            "linearizable member list on an isolated member: {lin:?}"
        );
    });
    c.ok(leader, &["put", "k", "v1"]);
    c.heal(follower);
    c.wait_caught_up(follower, "k", "v1", Duration::from_secs(15));

    // an isolated leader: it cannot commit; the other two elect a new leader
    let leader = c.leader().expect("a leader");
    c.isolate(leader);
    let put = c.ctl_slow(leader, &["put", "k", "from-old-leader"]);
    assert!(!put.success(), "an isolated leader acknowledged a write");
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.ctl(others[0], &["put", "k", "v2"]);
        if out.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the majority never took writes: {}",
            out.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.ok(others[1], &["get", "k", "--print-value-only"]).trim(), "v2");
    c.heal(leader);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let v = c.ctl(leader, &["get", "k", "--print-value-only"]);
        if v.success() && v.stdout.trim() == "v2" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old leader never rejoined: {}",
            v.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // the old leader's unacknowledged write is nowhere
    for i in 0..3 {
        let hist = c.ok(i, &["get", "k", "--consistency=s", "-w", "json"]);
        assert!(
            !hist.contains(&base64_of("from-old-leader")),
            "member {i}: {hist}"
        );
        assert!(!hist.contains(&base64_of("from-minority")), "member {i}: {hist}");
    }
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Disaster recovery: with the other members gone for good, one member restarted with
/// `--force-new-cluster` becomes a one-member cluster with all its data, keeps its ids,
/// takes writes, and stays so when restarted without the flag.
#[test]
fn force_new_cluster_recovers_one_member_with_its_data() {
    let _serial = serial();
    let mut c = Cluster::start(3);
    // through member 0: it answers only once it has applied each write itself, so its log
    // has every one of them (a quorum elsewhere may not include it)
    for i in 0..20 {
        c.ok(0, &["put", &format!("k{i:02}"), &i.to_string()]);
    }
    let before = c.ok(0, &["get", "k", "--prefix", "-w", "json"]);
    let list = c.ok(0, &["member", "list"]);
    let my_id = list
        .lines()
        .find(|l| l.contains(", m1, "))
        .and_then(|l| l.split(", ").next())
        .unwrap()
        .to_string();
    for m in &mut c.members {
        m.kill9();
    }
    c.extra = vec!["--force-new-cluster".into()];
    c.spawn(0);
    c.wait_ready(0);
    let after = c.ok(0, &["get", "k", "--prefix", "-w", "json"]);
    let body = |s: &str| s.split("\"kvs\":").nth(1).unwrap().to_string();
    assert_eq!(body(&after), body(&before));
    let list = c.ok(0, &["member", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with(&format!("{my_id}, started, m1, ")), "{list}");
    c.ok(0, &["put", "after", "1"]);
    // and again without the flag
    c.members[0].kill9();
    c.extra.clear();
    c.spawn(0);
    c.wait_ready(0);
    assert_eq!(c.ok(0, &["get", "after", "--print-value-only"]).trim(), "1");
    assert_eq!(c.ok(0, &["member", "list"]).lines().count(), 1);
    c.ok(0, &["put", "again", "2"]);
}

/// Members of different clusters never mix: a member started with another cluster token
/// (so another cluster id) whose --initial-cluster names a running member gets refused with
/// a clear error, and the running cluster is not disturbed.
#[test]
fn a_member_of_another_cluster_is_refused() {
    let _serial = serial();
    let c = Cluster::start(1);
    c.ok(0, &["put", "a", "1"]);
    let status = c.ok(0, &["endpoint", "status", "-w", "json"]);
    let term_before = status
        .split("\"raft_term\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();

    let stranger = Member {
        name: "m2".into(),
        ports: Ports::reserve(),
        dir: tempfile::Builder::new()
            .prefix("retcd-cluster-")
            .tempdir()
            .unwrap(),
        child: None,
    };
    let ic = format!("{},m2={}", c.initial_cluster, stranger.ports.peer_url());
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(stranger.dir.path().join("log"))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_retcd"))
        .args(["--name", "m2", "--initial-cluster-token", "another-cluster"])
        .args(["--data-dir", stranger.dir.path().join("data").to_str().unwrap()])
        .args(["--listen-client-urls", &stranger.ports.client_url()])
        .args(["--advertise-client-urls", &stranger.ports.client_url()])
        .args(["--listen-peer-urls", &stranger.ports.peer_url()])
        .args(["--initial-advertise-peer-urls", &stranger.ports.peer_url()])
        .args(["--initial-cluster", &ic])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.members[0].log().contains("cluster ID mismatch") {
        assert!(
            Instant::now() < deadline,
            "the stranger's requests were not refused:\n{}",
            c.members[0].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    // the running member kept its leadership and term
    c.ok(0, &["put", "b", "2"]);
    let status = c.ok(0, &["endpoint", "status", "-w", "json"]);
    let term_after = status
        .split("\"raft_term\":")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(term_before, term_after, "the running cluster was disturbed");
}

/// Concurrent clients on every member record a history of puts and linearizable gets on
/// one key while the leader is killed and restarted twice; the history must be
/// linearizable (`common/linearizable.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_stay_linearizable_through_leader_failures() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use linearizable::{Event, Op};
    use retcd_api::etcdserverpb::kv_client::KvClient;
    use retcd_api::etcdserverpb::{PutRequest, RangeRequest};

    let _serial = serial();
    let mut c = tokio::task::block_in_place(|| Cluster::start(3));
    let endpoints: Vec<String> = c.members.iter().map(|m| m.endpoint()).collect();
    let history: Arc<Mutex<Vec<Event>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..6usize {
        let (endpoints, history, stop) = (endpoints.clone(), history.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut kvs = Vec::new();
            for ep in &endpoints {
                let ch = tonic::transport::Endpoint::from_shared(ep.clone())
                    .unwrap()
                    .connect_timeout(Duration::from_millis(500))
                    .connect_lazy();
                kvs.push(KvClient::new(ch));
            }
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (client as u64 + 1);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let member = (rng % 3) as usize;
                let kv = &mut kvs[member];
                let tag = format!("client {client} via member {member}");
                let start = Instant::now();
                let ev = if rng & 8 == 0 {
                    n += 1;
                    let value = format!("c{client}-{n}");
                    let req = PutRequest {
                        key: b"lin".to_vec(),
                        value: value.clone().into_bytes(),
                        ..Default::default()
                    };
                    match tokio::time::timeout(Duration::from_secs(2), kv.put(req)).await {
                        Ok(Ok(r)) => Event {
                            tag: tag.clone(),
                            start,
                            end: Some(Instant::now()),
                            op: Op::Put {
                                value,
                                rev: r.into_inner().header.map(|h| h.revision),
                            },
                        },
                        _ => Event {
                            tag: tag.clone(),
                            start,
                            end: None,
                            op: Op::Put { value, rev: None },
                        },
                    }
                } else {
                    let req = RangeRequest {
                        key: b"lin".to_vec(),
                        ..Default::default()
                    };
                    match tokio::time::timeout(Duration::from_secs(2), kv.range(req)).await {
                        Ok(Ok(r)) => Event {
                            tag: tag.clone(),
                            start,
                            end: Some(Instant::now()),
                            op: Op::Get {
                                seen: r.into_inner().kvs.first().map(|kv| {
                                    (String::from_utf8_lossy(&kv.value).into_owned(), kv.mod_revision)
                                }),
                            },
                        },
                        _ => Event {
                            tag: tag.clone(),
                            start,
                            end: None,
                            op: Op::Get { seen: None },
                        },
                    }
                };
                if ev.end.is_none() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                history.lock().unwrap().push(ev);
            }
        }));
    }
    let t0 = Instant::now();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leader = tokio::task::block_in_place(|| c.leader()).expect("a leader");
        eprintln!("{} ms: killing leader member {leader}", t0.elapsed().as_millis());
        c.members[leader].kill9();
        tokio::time::sleep(Duration::from_secs(3)).await;
        tokio::task::block_in_place(|| {
            c.spawn(leader);
            c.wait_ready(leader);
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        t.await.unwrap();
    }
    let history = history.lock().unwrap().clone();
    let (writes, reads) = linearizable::check(&history).unwrap_or_else(|e| {
        if let Ok(path) = std::env::var("RETCD_LIN_DUMP") {
            let mut sorted = history.clone();
            sorted.sort_by_key(|e| e.start);
            let text: Vec<String> = sorted
                .iter()
                .map(|e| {
                    format!(
                        "{:>6} {:>6} {} {:?}",
                        e.start.duration_since(t0).as_millis(),
                        e.end
                            .map(|x| x.duration_since(t0).as_millis() as i64)
                            .unwrap_or(-1),
                        e.tag,
                        e.op
                    )
                })
                .collect();
            let _ = std::fs::write(path, text.join("\n"));
        }
        panic!("not linearizable: {e}")
    });
    assert!(
        writes >= 20 && reads >= 20,
        "too little happened: {writes} writes, {reads} reads"
    );
    eprintln!(
        "linearizable: {writes} writes and {reads} reads checked ({} operations)",
        history.len()
    );
}

/// `--experimental-corrupt-check-time`: a follower whose backend had a bit flipped while it
/// was down is found by the leader's periodic
/// hash check; the CORRUPT alarm names it and the cluster then refuses writes with etcd's
/// error. `--experimental-initial-corrupt-check` refuses to start the corrupt member.
#[test]
fn corrupt_member_is_detected_by_hash_checks() {
    let _serial = serial();
    let mut c = Cluster::start_with(3, &["--experimental-corrupt-check-time", "1s"]);
    for i in 0..10 {
        c.ok(0, &["put", &format!("k{i}"), "v"]);
    }
    for i in 0..3 {
        c.wait_caught_up(i, "k9", "v", Duration::from_secs(20));
    }
    let leader = c.leader().expect("a leader");
    let f = (leader + 1) % 3;
    let follower_id = {
        let out = c.ok(f, &["endpoint", "status", "-w", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v[0]["Status"]["header"]["member_id"].as_u64().unwrap()
    };
    c.members[f].kill9();
    {
        // a bit flip in the newest record's value (the record stays well-formed)
        use redb::{ReadableDatabase, ReadableTable};
        const KEY_TABLE: redb::TableDefinition<&[u8; 16], &[u8]> = redb::TableDefinition::new("key");
        let db = redb::Database::open(c.members[f].dir.path().join("data/member/snap/db")).unwrap();
        let (rev, mut record) = {
            let rtx = db.begin_read().unwrap();
            let t = rtx.open_table(KEY_TABLE).unwrap();
            let (k, v) = t.last().unwrap().unwrap();
            (*k.value(), v.value().to_vec())
        };
        *record.last_mut().unwrap() ^= 1;
        let wtx = db.begin_write().unwrap();
        wtx.open_table(KEY_TABLE)
            .unwrap()
            .insert(&rev, record.as_slice())
            .unwrap();
        wtx.commit().unwrap();
    }
    // with the initial check the tampered member refuses to start
    let extra = c.extra.clone();
    c.extra.push("--experimental-initial-corrupt-check".into());
    c.spawn(f);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = c.members[f].child.as_mut().unwrap().try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "tampered member started:\n{}",
            c.members[f].log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    assert!(
        c.members[f].log().contains("found data inconsistency with peers"),
        "{}",
        c.members[f].log()
    );
    // without it, it starts; the leader's periodic check raises CORRUPT for it
    c.members[f].child = None;
    c.extra = extra;
    c.spawn(f);
    c.wait_ready(f);
    let want = format!("memberID:{follower_id} alarm:CORRUPT");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.ctl(leader, &["alarm", "list"]);
        if out.stdout.contains(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no CORRUPT alarm: {out:?}\n{}",
            c.members[leader].log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = c.ctl(leader, &["put", "after", "x"]);
    assert!(!out.success());
    assert!(out.stderr.contains("etcdserver: corrupt cluster"), "{out:?}");
}

/// Auth in a 3-member cluster: users, roles and the enabled flag go through raft, so every
/// member enforces them; a simple token handed out by one member works on the others (a
/// member that has not applied it yet catches up first); writes through followers are
/// checked when applied.
#[test]
fn auth_across_members() {
    let _serial = serial();
    let c = Cluster::start(3);
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["role", "add", "app"],
        &["role", "grant-permission", "app", "readwrite", "app/", "--prefix"],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "app"],
        &["auth", "enable"],
    ] {
        c.ok(0, args);
    }
    for i in 0..3 {
        assert_eq!(
            c.ok(i, &["put", &format!("app/{i}"), "x", "--user", "alice:alicepw"]),
            "OK\n"
        );
        let denied = c.ctl(i, &["put", "other", "x", "--user", "alice:alicepw"]);
        assert!(
            denied.stderr.contains("etcdserver: permission denied"),
            "member {i}: {denied:?}"
        );
        let anonymous = c.ctl(i, &["get", "app/0"]);
        assert!(
            anonymous.stderr.contains("etcdserver: user name is empty"),
            "member {i}: {anonymous:?}"
        );
        assert_eq!(
            c.ok(i, &["user", "list", "--user", "root:rootpw"]),
            "alice\nroot\n"
        );
    }
    // a token made on member 0, used on members 1 and 2
    let rt = tokio::runtime::Runtime::new().unwrap();
    let endpoints: Vec<String> = c.members.iter().map(Member::endpoint).collect();
    rt.block_on(async move {
        use retcd_api::etcdserverpb::auth_client::AuthClient;
        use retcd_api::etcdserverpb::kv_client::KvClient;
        use retcd_api::etcdserverpb::{AuthenticateRequest, RangeRequest};
        let token = AuthClient::connect(endpoints[0].clone())
            .await
            .unwrap()
            .authenticate(AuthenticateRequest {
                name: "alice".into(),
                password: "alicepw".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .token;
        for ep in &endpoints[1..] {
            let mut kv = KvClient::connect(ep.clone()).await.unwrap();
            let mut req = tonic::Request::new(RangeRequest {
                key: b"app/".to_vec(),
                range_end: b"app0".to_vec(),
                ..Default::default()
            });
            req.metadata_mut().insert("token", token.parse().unwrap());
            assert_eq!(kv.range(req).await.unwrap().into_inner().count, 3, "{ep}");
        }
    });
    // revoking the role on one member takes effect everywhere
    c.ok(
        2,
        &["user", "revoke-role", "alice", "app", "--user", "root:rootpw"],
    );
    for i in 0..3 {
        let out = c.ctl(i, &["get", "app/0", "--user", "alice:alicepw"]);
        assert!(
            out.stderr.contains("etcdserver: permission denied"),
            "member {i}: {out:?}"
        );
    }
}
