//! A 3-member cluster of the real binary with every member in its own network namespace
//! (issue 6), cut off by the kernel's network instead of retcd's in-process failpoint
//! (`tests/cluster.rs`). Driven with the real etcdctl from the test's (root) namespace.
//!
//! # The network
//!
//! Per run (names carry the test's pid and a counter, so parallel runs never share anything;
//! the subnet is picked at random among those the root namespace does not use):
//!
//! ```text
//!   root namespace (the test, etcdctl)
//!     rn<pid><k>  10.A.B.254/24 ──veth── "root" ┐
//!   namespace retcd-nt-<pid>-<k>-hub             │
//!     bridge "brc" (clients) ── root, c1, c2, c3 ┘
//!     bridge "brp" (peers)   ── p1, p2, p3
//!   namespace retcd-nt-<pid>-<k>-m<i>  (member i runs here, started with `ip netns exec`)
//!     "cli"  10.A.B.i/24    ──veth── c<i>   client URL http://10.A.B.i:2379
//!     "peer" 10.A.B+1.i/24  ──veth── p<i>   peer URL   http://10.A.B+1.i:2380
//! ```
//!
//! Each member has two links: one for client traffic, one for peer traffic, on two bridges.
//! **Isolating** member i is `ip link set peer down` inside its namespace: its peer subnet
//! route goes away (its own dials fail at once with "network unreachable"), frames for its
//! peer address find no bridge port (the others' dials and established connections get
//! nowhere), and nothing else routes between the subnets (no default routes, no forwarding).
//! Its client link stays up, so the test keeps talking to the isolated member exactly as a
//! client on its side of the partition would. **Healing** is `ip link set peer up`; TCP
//! connections that were open stay valid and resume. This needs nothing but iproute2 (no
//! iptables/nftables rules, whose tables differ between hosts), and the bridges live in a
//! namespace of their own, so the host's firewall (e.g. Docker's FORWARD DROP with
//! br_netfilter) never sees the bridged frames.
//!
//! Everything is removed on drop (also when the test panics): the members are killed first,
//! then the namespaces are deleted, which destroys the bridges and every veth (with its
//! root-namespace end and the route to the subnet). Namespaces left by a run that was killed
//! (its pid gone) are removed by the next run.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and the `ip` command (iproute2); without them
//! the test prints why and returns early. `RETCD_COMPAT_SELFTEST=1` runs the same test on
//! etcd 3.4 itself, to check that what it asserts is etcd's behaviour.
//!
//! Run: `cargo test -p retcd-server --test cluster_netns`

mod common;

use std::fs::OpenOptions;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{Output, etcdctl_with};

/// A prefix only this test uses for namespace names.
const NS_PREFIX: &str = "retcd-nt-";
const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

/// Why the test cannot run here (not root, no `ip`), or `None` when it can.
fn missing_prerequisite() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // "Uid: real effective saved fs"
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_string));
    if euid.as_deref() != Some("0") {
        return Some(format!(
            "not running as root (effective uid {}): network namespaces need CAP_NET_ADMIN",
            euid.unwrap_or_else(|| "unknown".into())
        ));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`ip -V` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("the `ip` command (package iproute2) is missing: {e}")),
    }
}

/// Runs `ip <args>`; panics with its stderr if it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs `ip <args>` and returns stdout; errors are ignored (clean-up, probes).
fn ip_quiet(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Namespaces of runs whose process is gone (killed before its drop guard ran): their
/// members are killed and the namespaces deleted (the veths and bridges go with them).
fn sweep_stale_namespaces() {
    for line in ip_quiet(&["netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        for p in ip_quiet(&["netns", "pids", name]).split_whitespace() {
            let _ = Command::new("kill").args(["-9", p]).status();
        }
        ip_quiet(&["netns", "del", name]);
    }
}

/// A 10.A.B.0/24 client subnet (B even; B+1 is the peer subnet) the root namespace has no
/// address or route in.
fn free_subnet() -> (u8, u8) {
    let used = format!(
        "{}{}",
        ip_quiet(&["-4", "-o", "addr", "show"]),
        ip_quiet(&["-4", "route", "show", "table", "all"])
    );
    let mut seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64;
    for _ in 0..1000 {
        // xorshift
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let a = 200 + (seed % 55) as u8;
        let b = ((seed >> 8) % 127) as u8 * 2;
        let taken = |c: u8| used.contains(&format!("10.{a}.{c}."));
        if !taken(b) && !taken(b + 1) {
            return (a, b);
        }
    }
    panic!("no free 10.x.y.0/24 subnet for the test network");
}

/// The namespaces, bridges and veths of one cluster; deleted on drop.
struct Net {
    hub: String,
    members: Vec<String>,
    root_link: String,
    subnet: (u8, u8),
}

impl Net {
    fn create(n: usize) -> Net {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let pid = std::process::id();
        let k = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("{NS_PREFIX}{pid}-{k}");
        let root_link = format!("rn{pid}{}", char::from(b'a' + (k % 26) as u8));
        assert!(
            root_link.len() <= 15,
            "{root_link}: interface names have 15 bytes"
        );
        let net = Net {
            hub: format!("{base}-hub"),
            members: (1..=n).map(|i| format!("{base}-m{i}")).collect(),
            root_link,
            subnet: free_subnet(),
        };
        // From here on, drop cleans up whatever was made.
        ip(&["netns", "add", &net.hub]);
        for ns in &net.members {
            ip(&["netns", "add", ns]);
        }
        let hub = net.hub.as_str();
        ip(&["-n", hub, "link", "set", "lo", "up"]);
        for br in ["brc", "brp"] {
            ip(&["-n", hub, "link", "add", br, "type", "bridge"]);
            ip(&["-n", hub, "link", "set", br, "up"]);
        }
        for (i, ns) in net.members.iter().enumerate() {
            let i = i + 1;
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            for (hub_end, member_end, bridge, addr) in [
                (format!("c{i}"), "cli", "brc", net.client_ip(i)),
                (format!("p{i}"), "peer", "brp", net.peer_ip(i)),
            ] {
                ip(&[
                    "-n", hub, "link", "add", &hub_end, "type", "veth", "peer", "name", member_end, "netns",
                    ns,
                ]);
                ip(&["-n", hub, "link", "set", &hub_end, "master", bridge, "up"]);
                ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", member_end]);
                ip(&["-n", ns, "link", "set", member_end, "up"]);
            }
        }
        // the test's own way in, on the client bridge
        ip(&[
            "link",
            "add",
            &net.root_link,
            "type",
            "veth",
            "peer",
            "name",
            "root",
            "netns",
            hub,
        ]);
        ip(&["-n", hub, "link", "set", "root", "master", "brc", "up"]);
        let (a, b) = net.subnet;
        ip(&[
            "addr",
            "add",
            &format!("10.{a}.{b}.254/24"),
            "dev",
            &net.root_link,
        ]);
        ip(&["link", "set", &net.root_link, "up"]);
        net
    }

    fn client_ip(&self, i: usize) -> String {
        let (a, b) = self.subnet;
        format!("10.{a}.{b}.{i}")
    }

    fn peer_ip(&self, i: usize) -> String {
        let (a, b) = self.subnet;
        format!("10.{a}.{}.{i}", b + 1)
    }

    /// Cuts member `i` (1-based) off the peer network, or reconnects it.
    fn set_peer_link(&self, i: usize, up: bool) {
        ip(&[
            "-n",
            &self.members[i - 1],
            "link",
            "set",
            "peer",
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace destroys its interfaces; a veth goes with both its ends.
        ip_quiet(&["link", "del", &self.root_link]);
        for ns in self.members.iter().chain(std::iter::once(&self.hub)) {
            ip_quiet(&["netns", "del", ns]);
        }
    }
}

struct Member {
    name: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    endpoint: String,
}

impl Member {
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

/// Members are declared before the network: they are killed before it is deleted.
struct Cluster {
    members: Vec<Member>,
    net: Net,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for m in &mut self.members {
            m.kill9();
            if panicking {
                let log = m.log();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!(
                    "----- {} (last 60 lines) -----\n{}",
                    m.name,
                    lines[lines.len().saturating_sub(60)..].join("\n")
                );
            }
        }
    }
}

impl Cluster {
    fn start() -> Cluster {
        sweep_stale_namespaces();
        let net = Net::create(3);
        let initial_cluster = (1..=3)
            .map(|i| format!("m{i}=http://{}:{PEER_PORT}", net.peer_ip(i)))
            .collect::<Vec<_>>()
            .join(",");
        let binary = common::kind_under_test().binary();
        let mut members = Vec::new();
        for i in 1..=3 {
            let dir = tempfile::Builder::new().prefix("retcd-netns-").tempdir().unwrap();
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.path().join("log"))
                .unwrap();
            let client = format!("http://{}:{CLIENT_PORT}", net.client_ip(i));
            let peer = format!("http://{}:{PEER_PORT}", net.peer_ip(i));
            let name = format!("m{i}");
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &net.members[i - 1]])
                .arg(&binary)
                .args(["--name", &name])
                .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log));
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ETCD") {
                    cmd.env_remove(key);
                }
            }
            // `ip netns exec` execs the command: the child is the member itself.
            let child = cmd.spawn().expect("start a member with ip netns exec");
            members.push(Member {
                name,
                dir,
                child: Some(child),
                endpoint: client,
            });
        }
        let mut c = Cluster { members, net };
        for i in 0..3 {
            c.wait_ready(i);
        }
        c
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
                "member {} not ready: {}",
                self.members[i].name,
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Cuts member `i` (0-based) off from the others (see the header).
    fn isolate(&self, i: usize) {
        self.net.set_peer_link(i + 1, false);
    }

    fn heal(&self, i: usize) {
        self.net.set_peer_link(i + 1, true);
    }

    fn ctl(&self, i: usize, args: &[&str]) -> Output {
        etcdctl_with(&self.members[i].endpoint, "3s", "10s", args, None)
    }

    /// etcdctl with a command timeout long enough for the server's own request timeout
    /// (5 s + 2 election timeouts) to answer first.
    fn ctl_slow(&self, i: usize, args: &[&str]) -> Output {
        etcdctl_with(&self.members[i].endpoint, "3s", "15s", args, None)
    }

    fn ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.ctl(i, args);
        assert!(
            out.success(),
            "member {}: etcdctl {args:?}: {}{}",
            self.members[i].name,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// The index of the member that says it leads.
    fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // endpoint status: endpoint, id, version, db size, is leader, ...
            if let Some(i) = (0..self.members.len()).find(|&i| {
                let out = self.ctl(i, &["endpoint", "status"]);
                out.success() && out.stdout.split(", ").nth(4) == Some("true")
            }) {
                return i;
            }
            assert!(Instant::now() < deadline, "no member says it leads");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of `key` on member `i` from its own state (serializable), "" if absent.
    fn local_value(&self, i: usize, key: &str) -> String {
        self.ok(i, &["get", key, "--consistency=s", "--print-value-only"])
            .trim()
            .to_string()
    }

    /// Waits until member `i` serves every `key = value` of `want` from its own state.
    fn wait_caught_up(&self, i: usize, want: &[(String, String)], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let missing: Vec<&(String, String)> = want
                .iter()
                .filter(|(k, v)| self.local_value(i, k) != *v)
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "member {} never caught up; missing {missing:?}",
                self.members[i].name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Puts through member `i` until one is acknowledged (a new leader may still be being
    /// elected among the majority).
    fn put_eventually(&self, i: usize, key: &str, value: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self.ctl(i, &["put", key, value]);
            if out.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the majority never took a write through {}: {}",
                self.members[i].name,
                out.stderr
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What an isolated member must do: refuse writes and linearizable reads with etcd's
    /// errors (never acknowledging anything), and still serve serializable reads.
    fn assert_refuses_as_minority(&self, i: usize, key: &str, local: &str) {
        let name = &self.members[i].name;
        let put = self.ctl_slow(i, &["put", key, "from-minority"]);
        assert!(!put.success(), "isolated {name} acknowledged a write");
        assert_minority_error(&format!("isolated {name}, put"), &put);
        let get = self.ctl_slow(i, &["get", key]);
        assert!(!get.success(), "isolated {name} served a linearizable read");
        assert_minority_error(&format!("isolated {name}, linearizable get"), &get);
        assert_eq!(
            self.local_value(i, key),
            local,
            "serializable read on isolated {name}"
        );
    }
}

/// What etcd 3.4 answers a client of a member that cannot reach a quorum (seen with
/// `RETCD_COMPAT_SELFTEST=1`, which runs this test on etcd), as (gRPC code, start of the
/// message): "no leader" or "request timed out" (with etcd's ", possibly due to ..."
/// variants), or, while it has no leader at all, its proposal waits for one until the
/// request timeout and the answer is that context's error.
const MINORITY_ERRORS: &[(&str, &str)] = &[
    ("Unavailable", "etcdserver: no leader"),
    ("Unavailable", "etcdserver: request timed out"),
    ("Unknown", "context deadline exceeded"),
];

/// `rpc error: code = C desc = M` is one of [`MINORITY_ERRORS`].
fn is_minority_error(rpc_error: &str) -> bool {
    let Some((code, desc)) = rpc_error
        .strip_prefix("rpc error: code = ")
        .and_then(|r| r.split_once(" desc = "))
    else {
        return false;
    };
    MINORITY_ERRORS
        .iter()
        .any(|(c, m)| *c == code && desc.starts_with(m))
}

/// etcdctl failed with one of [`MINORITY_ERRORS`]: its last error is one, or it kept
/// retrying them (code Unavailable) until its own deadline. Every answer the server gave
/// (etcdctl logs each one it retries) must be one of them.
fn assert_minority_error(what: &str, out: &Output) {
    let answers: Vec<&str> = out
        .stderr
        .split("\"error\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        // etcdctl's own deadline, not an answer; nor the same deadline met first on the
        // server's side (the request's grpc-timeout: tonic answers Canceled "Timeout
        // expired" for a request still waiting then, where grpc-go's client reports its own
        // deadline: which side sees it first is a race)
        .filter(|e| !e.starts_with("rpc error: code = DeadlineExceeded"))
        .filter(|e| *e != "rpc error: code = Canceled desc = Timeout expired")
        .collect();
    let last = out
        .stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Error: "))
        .unwrap_or_default();
    let last_ok = if last == "context deadline exceeded" {
        !answers.is_empty()
    } else if last.starts_with("rpc error: ") {
        is_minority_error(last)
    } else {
        // etcdctl prints only the message of the errors it knows (code Unavailable here)
        is_minority_error(&format!("rpc error: code = Unavailable desc = {last}"))
    };
    assert!(
        last_ok && answers.iter().all(|a| is_minority_error(a)),
        "{what}: not etcd's answer of a member without a quorum: {}",
        out.stderr
    );
}

/// Members in their own namespaces replicate; a follower and then the leader are cut off
/// the network: the minority refuses writes and linearizable reads with etcd's errors and
/// serves serializable reads, the majority goes on, and after healing the member has every
/// write made meanwhile; the minority's attempts are nowhere.
#[test]
fn partitioned_member_refuses_majority_goes_on_and_it_catches_up() {
    if let Some(why) = missing_prerequisite() {
        eprintln!("SKIPPED cluster_netns: {why} (CI runs this test as root with iproute2)");
        return;
    }
    let c = Cluster::start();

    // writes through every member, visible on every member at the same revision
    for i in 0..3 {
        c.ok(i, &["put", &format!("k{i}"), &format!("v{i}")]);
    }
    for i in 0..3 {
        let json = c.ok(i, &["get", "k", "--prefix", "-w", "json"]);
        assert_eq!(json.matches("\"key\":").count(), 3, "member {i}: {json}");
        assert!(json.contains("\"revision\":4"), "member {i}: {json}");
    }
    c.ok(0, &["put", "k", "v0"]);

    // an isolated follower
    let leader = c.leader();
    let follower = (leader + 1) % 3;
    c.isolate(follower);
    c.assert_refuses_as_minority(follower, "k", "v0");
    let mut written = Vec::new();
    for n in 0..20 {
        let (k, v) = (format!("during-{n}"), format!("x{n}"));
        c.ok(leader, &["put", &k, &v]);
        written.push((k, v));
    }
    c.ok(leader, &["put", "k", "v1"]);
    written.push(("k".into(), "v1".into()));
    let third = 3 - leader - follower;
    c.wait_caught_up(third, &written, Duration::from_secs(10));
    assert_eq!(
        c.local_value(follower, "k"),
        "v0",
        "the isolated follower got a write while cut off"
    );
    c.heal(follower);
    c.wait_caught_up(follower, &written, Duration::from_secs(30));
    // and serves linearizable reads and writes again
    c.put_eventually(follower, "after-heal", "y");
    assert_eq!(
        c.ok(leader, &["get", "after-heal", "--print-value-only"]).trim(),
        "y"
    );

    // an isolated leader: it cannot commit; the other two elect a new leader and go on
    let leader = c.leader();
    c.isolate(leader);
    let put = c.ctl_slow(leader, &["put", "k", "from-old-leader"]);
    assert!(!put.success(), "an isolated leader acknowledged a write");
    assert_minority_error("isolated leader, put", &put);
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    c.put_eventually(others[0], "k", "v2");
    let mut written = vec![("k".to_string(), "v2".to_string())];
    for n in 0..20 {
        let (k, v) = (format!("later-{n}"), format!("z{n}"));
        c.ok(others[1], &["put", &k, &v]);
        written.push((k, v));
    }
    assert_eq!(
        c.ok(others[0], &["get", "later-19", "--print-value-only"]).trim(),
        "z19"
    );
    c.assert_refuses_as_minority(leader, "k", "v1");
    c.heal(leader);
    c.wait_caught_up(leader, &written, Duration::from_secs(30));
    c.put_eventually(leader, "after-heal-2", "w");

    // the unacknowledged writes of the minority are nowhere: the whole history of "k" on
    // every member is the acknowledged values, in order
    for i in 0..3 {
        let watch = common::EtcdctlProcess::spawn(&c.members[i].endpoint, &["watch", "k", "--rev=1"], false);
        let mut watch = watch;
        let done = watch.wait_until(Duration::from_secs(10), |out, _| {
            String::from_utf8_lossy(out).lines().any(|l| l == "v2")
        });
        let out = watch.finish(Duration::from_millis(0));
        assert!(done, "member {i}: history of k never reached v2: {out:?}");
        let values: Vec<&str> = out
            .stdout
            .lines()
            .collect::<Vec<_>>()
            .chunks(3)
            .map(|e| e.get(2).copied().unwrap_or_default())
            .collect();
        assert_eq!(values, ["v0", "v1", "v2"], "member {i}: {}", out.stdout);
    }
}
