//! Snapshots (issue 9): Maintenance.Snapshot saved with the real etcdctl and with retcdctl,
//! `retcdctl snapshot restore` into new data dirs, retcd started on them (one member, and a
//! 3-member cluster restored from one snapshot), Maintenance.Hash across members, bad files
//! refused, snapshots taken while puts run.
//!
//! Run: `cargo test -p retcd-server --test snapshot`

mod common;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Output, Ports, etcdctl_at};
use retcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use retcd_api::etcdserverpb::{HashRequest, SnapshotRequest};

/// These tests run up to four servers each: one at a time (a flag, not a mutex guard, so
/// async tests may hold it across awaits).
static BUSY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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

/// `retcdctl`, built (or brought up to date) on first use: it is another package's binary.
fn retcdctl_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let retcd = Path::new(env!("CARGO_BIN_EXE_retcd"));
            let profile_dir = retcd.parent().expect("bin dir");
            let target_dir = profile_dir.parent().expect("target dir");
            let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
            cmd.args([
                "build",
                "-q",
                "-p",
                "retcd-ctl",
                "--bin",
                "retcdctl",
                "--target-dir",
            ])
            .arg(target_dir);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let st = cmd.status().expect("run cargo build -p retcd-ctl");
            let bin = profile_dir.join("retcdctl");
            assert!(st.success() && bin.is_file(), "cannot build retcdctl ({st})");
            bin
        })
        .clone()
}

fn retcdctl(cwd: &Path, args: &[&str]) -> Output {
    let out = Command::new(retcdctl_bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("ETCDCTL_ENDPOINTS")
        .stdin(Stdio::null())
        .output()
        .expect("run retcdctl");
    Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stdout_raw: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

/// A retcd member on its own ports; its data dir is `data` (made by restore or by retcd).
struct Node {
    name: String,
    ports: Arc<Ports>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Node {
    fn new(name: &str) -> Node {
        Node {
            name: name.to_string(),
            ports: Ports::reserve(),
            dir: tempfile::Builder::new()
                .prefix("retcd-snapshot-")
                .tempdir()
                .unwrap(),
            child: None,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn endpoint(&self) -> String {
        self.ports.client_url()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn spawn(&mut self, initial_cluster: &str) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_retcd"))
            .args(["--name", &self.name])
            .args(["--data-dir", self.data().to_str().unwrap()])
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &self.ports.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.ports.peer_url()])
            .args(["--initial-cluster", initial_cluster])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("{} exited ({st}):\n{}", self.name, self.log());
            }
            let out = self.ctl(&["get", "ready-probe"]);
            if out.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready: {}\n{}",
                self.name,
                out.stderr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM: retcd commits its backend durably before it exits.
    fn stop_cleanly(&mut self) {
        if let Some(mut c) = self.child.take() {
            let st = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap();
            assert!(st.success());
            let st = c.wait().unwrap();
            assert!(st.success(), "{st}");
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        etcdctl_at(&self.endpoint(), args, None)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.success(),
            "{}: etcdctl {args:?}: {}{}",
            self.name,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// Maintenance.Hash: (hash, header revision).
    async fn hash(&self) -> (u32, i64) {
        let mut m = MaintenanceClient::connect(self.endpoint()).await.unwrap();
        let r = m.hash(HashRequest {}).await.unwrap().into_inner();
        (r.hash, r.header.unwrap().revision)
    }

    /// `retcdctl snapshot restore FILE` into this node's data dir.
    fn restore(&self, file: &Path, initial_cluster: &str, token: &str) -> Output {
        let data = self.data();
        let peer = self.ports.peer_url();
        retcdctl(
            self.dir.path(),
            &[
                "snapshot",
                "restore",
                file.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
                "--name",
                &self.name,
                "--initial-cluster",
                initial_cluster,
                "--initial-cluster-token",
                token,
                "--initial-advertise-peer-urls",
                &peer,
            ],
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "--- {} log tail ---\n{}",
                self.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        self.stop();
    }
}

fn single(name: &str) -> Node {
    let mut n = Node::new(name);
    let ic = format!("{name}={}", n.ports.peer_url());
    n.spawn(&ic);
    n.wait_ready();
    n
}

/// The `kvs` part and the header revision of `get "" --prefix -w json`.
fn everything(n: &Node) -> (String, i64) {
    let out = n.ok(&["get", "", "--prefix", "--consistency=s", "-w", "json"]);
    let kvs = out.split("\"kvs\":").nth(1).unwrap_or("").to_string();
    let rev = out
        .split("\"revision\":")
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (kvs, rev)
}

/// Writes a small history: puts, overwrites, a delete, a key on a lease. Returns the lease.
fn fill(n: &Node) -> String {
    for i in 0..30 {
        n.ok(&["put", &format!("key{:02}", i % 20), &format!("value-{i}")]);
    }
    n.ok(&["del", "key07"]);
    let lease = n.ok(&["lease", "grant", "900"]);
    let lease = lease.split_whitespace().nth(1).unwrap().to_string();
    n.ok(&["put", "leased", "x", "--lease", &lease]);
    lease
}

fn status_json(cwd: &Path, file: &Path) -> (u32, i64) {
    let out = retcdctl(cwd, &["snapshot", "status", file.to_str().unwrap(), "-w", "json"]);
    assert!(out.success(), "{}", out.stderr);
    let field = |name: &str| -> i64 {
        out.stdout
            .split(&format!("\"{name}\":"))
            .nth(1)
            .unwrap()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (field("hash") as u32, field("revision"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_with_etcdctl_and_retcdctl_restore_and_start() {
    let _s = serial();
    let src = single("src");
    let lease = fill(&src);
    let (src_kvs, src_rev) = everything(&src);
    let (src_hash, hash_rev) = src.hash().await;
    assert_eq!(hash_rev, src_rev);

    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a.db");
    let out = src.ctl(&["snapshot", "save", a.to_str().unwrap()]);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout, format!("Snapshot saved at {}\n", a.display()));
    assert!(
        out.stderr.contains("\"msg\":\"fetched snapshot\""),
        "{}",
        out.stderr
    );
    let out = retcdctl(
        work.path(),
        &["--endpoints", &src.endpoint(), "snapshot", "save", "b.db"],
    );
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout, "Snapshot saved at b.db\n");
    let b = work.path().join("b.db");
    // the same state gives the same image
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // status: the hash Maintenance.Hash gave, the revision served
    assert_eq!(status_json(work.path(), &a), (src_hash, src_rev));

    // restore into a new one-member cluster (another name, URL and token) and start it
    let mut r = Node::new("restored");
    let ic = format!("restored={}", r.ports.peer_url());
    let out = r.restore(&b, &ic, "new-token");
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains("\"msg\":\"restored snapshot\""),
        "{}",
        out.stderr
    );
    r.spawn(&ic);
    r.wait_ready();
    let (kvs, rev) = everything(&r);
    assert_eq!((kvs, rev), (src_kvs, src_rev));
    assert_eq!(r.hash().await, (src_hash, src_rev));
    assert!(r.ok(&["lease", "list"]).contains(&lease));
    // new identity: one member, the restored one, in another cluster
    let members = r.ok(&["member", "list"]);
    assert_eq!(members.lines().count(), 1, "{members}");
    assert!(members.contains(", restored, "), "{members}");
    let hdr = |n: &Node| n.ok(&["get", "x", "-w", "json"]);
    let cluster = |s: String| {
        s.split("\"cluster_id\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(cluster(hdr(&r)), cluster(hdr(&src)));
    // history came along (an old revision of a key is readable) and writes go on
    let old = r.ok(&["get", "key00", "--rev=2", "--print-value-only"]);
    assert_eq!(old.trim(), "value-0");
    let put = r.ok(&["put", "after", "restore", "-w", "json"]);
    assert!(put.contains(&format!("\"revision\":{}", src_rev + 1)), "{put}");
    // and it restarts from its own WAL
    r.stop();
    r.spawn(&ic);
    r.wait_ready();
    assert_eq!(r.ok(&["get", "after", "--print-value-only"]).trim(), "restore");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_member_cluster_restored_from_one_snapshot() {
    let _s = serial();
    let src = single("src");
    fill(&src);
    let (src_kvs, src_rev) = everything(&src);
    let (src_hash, _) = src.hash().await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("s.db");
    let out = src.ctl(&["snapshot", "save", file.to_str().unwrap()]);
    assert!(out.success(), "{}", out.stderr);
    drop(src);

    let mut nodes: Vec<Node> = (1..=3).map(|i| Node::new(&format!("m{i}"))).collect();
    let ic = nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.ports.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for n in &nodes {
        let out = n.restore(&file, &ic, "restored-cluster");
        assert!(out.success(), "{}", out.stderr);
        assert_eq!(
            out.stderr.matches("\"msg\":\"added member\"").count(),
            3,
            "{}",
            out.stderr
        );
    }
    for n in &mut nodes {
        n.spawn(&ic);
    }
    for n in &mut nodes {
        n.wait_ready();
    }
    for n in &nodes {
        assert_eq!(everything(n), (src_kvs.clone(), src_rev), "{}", n.name);
        assert_eq!(n.hash().await, (src_hash, src_rev), "{}", n.name);
        assert_eq!(n.ok(&["member", "list"]).lines().count(), 3);
    }
    // writes through any member reach all; the hashes agree again afterwards
    nodes[1].ok(&["put", "after", "restore"]);
    nodes[2].ok(&["del", "key01"]);
    nodes[0].ok(&["put", "last", "x"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let hashes: Vec<(u32, i64)> = futures_join(&nodes).await;
        if hashes.iter().all(|h| *h == hashes[0]) && hashes[0].1 == src_rev + 3 {
            assert_ne!(hashes[0].0, src_hash);
            break;
        }
        assert!(Instant::now() < deadline, "hashes never agreed: {hashes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in &nodes {
        assert_eq!(
            n.ok(&["get", "after", "--print-value-only", "--consistency=s"])
                .trim(),
            "restore"
        );
    }
}

async fn futures_join(nodes: &[Node]) -> Vec<(u32, i64)> {
    let mut out = Vec::new();
    for n in nodes {
        out.push(n.hash().await);
    }
    out
}

#[test]
fn bad_files_and_existing_dirs_are_refused() {
    let _s = serial();
    let mut src = single("src");
    fill(&src);
    let (src_kvs, src_rev) = everything(&src);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let good = w.join("good.db");
    assert!(src.ctl(&["snapshot", "save", good.to_str().unwrap()]).success());
    let bytes = std::fs::read(&good).unwrap();
    assert_eq!(bytes.len() % 512, 32);

    let restore = |file: &str, dir: &str, extra: &[&str]| {
        let mut args = vec!["snapshot", "restore", file, "--data-dir", dir];
        args.extend_from_slice(extra);
        retcdctl(w, &args)
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "flipped.db",
            {
                let mut b = bytes.clone();
                b[bytes.len() / 3] ^= 0x55;
                b
            },
            "corrupt or truncated",
        ),
        (
            "cut.db",
            bytes[..bytes.len() / 2].to_vec(),
            "corrupt or truncated",
        ),
        (
            "badsha.db",
            {
                let mut b = bytes.clone();
                let n = b.len();
                b[n - 1] ^= 1;
                b
            },
            "Error: expected sha256 [",
        ),
        (
            "garbage.db",
            b"this is not a snapshot at all".to_vec(),
            "is not a retcd snapshot",
        ),
        (
            "bbolt.db",
            {
                let mut b = vec![0u8; 4096];
                b[16..20].copy_from_slice(&0xED0C_DAEDu32.to_le_bytes());
                b
            },
            "is an etcd (bbolt) snapshot",
        ),
    ];
    for (name, content, want) in &cases {
        std::fs::write(w.join(name), content).unwrap();
        let out = restore(name, "d", &[]);
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{name}: {}", out.stderr);
        assert!(!w.join("d").exists(), "{name}: a refused restore left a data dir");
        // status refuses the broken ones too (a bad trailer alone does not hide the image)
        let st = retcdctl(w, &["snapshot", "status", name]);
        assert_eq!(st.success(), *name == "badsha.db", "{name}: {}", st.stderr);
    }
    // an existing data dir (even empty) is refused, as etcdctl 3.4 does
    std::fs::create_dir(w.join("exists")).unwrap();
    let out = restore("good.db", "exists", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Error: data-dir \"exists\" exists"),
        "{}",
        out.stderr
    );
    let out = retcdctl(w, &["snapshot", "restore", "missing.db", "--data-dir", "m"]);
    assert!(
        out.stderr
            .contains("Error: open missing.db: no such file or directory"),
        "{}",
        out.stderr
    );

    // a copy of a cleanly stopped member's db file: only with --skip-hash-check (a member
    // killed with -9 may not have made its last 100 ms of applied writes durable in the
    // db: they are in its WAL, which a db copy leaves behind)
    src.stop_cleanly();
    let raw = w.join("raw.db");
    std::fs::copy(src.data().join("member/snap/db"), &raw).unwrap();
    let out = restore("raw.db", "r", &[]);
    assert!(
        out.stderr
            .contains("Error: snapshot missing hash but --skip-hash-check=false"),
        "{}",
        out.stderr
    );
    assert!(retcdctl(w, &["snapshot", "status", "raw.db"]).success());
    let mut r = Node::new("default");
    let out = retcdctl(
        w,
        &[
            "snapshot",
            "restore",
            "raw.db",
            "--skip-hash-check",
            "--data-dir",
            r.data().to_str().unwrap(),
            "--initial-cluster",
            &format!("default={}", r.ports.peer_url()),
            "--initial-advertise-peer-urls",
            &r.ports.peer_url(),
        ],
    );
    assert!(out.success(), "{}", out.stderr);
    let ic = format!("default={}", r.ports.peer_url());
    r.spawn(&ic);
    r.wait_ready();
    assert_eq!(everything(&r), (src_kvs, src_rev));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_while_puts_run() {
    use futures::StreamExt;
    use retcd_api::etcdserverpb::PutRequest;
    use retcd_api::etcdserverpb::kv_client::KvClient;
    let _s = serial();
    let n = single("busy");
    let ep = n.endpoint();
    // preload so a snapshot takes many blobs
    let mut kv = KvClient::connect(ep.clone()).await.unwrap();
    for i in 0..300 {
        kv.put(PutRequest {
            key: format!("pre/{i:04}").into_bytes(),
            value: vec![b'p'; 2000],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (ep, stop) = (ep.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut kv = KvClient::connect(ep).await.unwrap();
            let mut done = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                kv.put(PutRequest {
                    key: format!("w{w}/{done:05}").into_bytes(),
                    value: vec![b'v'; 200],
                    ..Default::default()
                })
                .await
                .expect("a put failed during a snapshot");
                done += 1;
            }
            done
        }));
    }
    let work = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut m = MaintenanceClient::connect(ep.clone()).await.unwrap();
        let mut stream = m.snapshot(SnapshotRequest {}).await.unwrap().into_inner();
        let mut file = Vec::new();
        let mut first_total = None;
        while let Some(msg) = stream.next().await {
            let msg = msg.unwrap();
            first_total.get_or_insert(msg.remaining_bytes + msg.blob.len() as u64);
            file.extend_from_slice(&msg.blob);
        }
        assert_eq!(Some(file.len() as u64 - 32), first_total);
        let path = work.path().join(format!("s{round}.db"));
        std::fs::write(&path, &file).unwrap();
        let (_, rev) = status_json(work.path(), &path);
        assert!(rev > 300, "round {round}: revision {rev}");
    }
    // a client that reads one blob and stalls holds only its own stream
    let mut m = MaintenanceClient::connect(ep.clone()).await.unwrap();
    let mut slow = m.snapshot(SnapshotRequest {}).await.unwrap().into_inner();
    assert!(slow.next().await.unwrap().is_ok());
    let count = |ep: String| async move {
        KvClient::connect(ep)
            .await
            .unwrap()
            .range(retcd_api::etcdserverpb::RangeRequest {
                key: b"w0/".to_vec(),
                range_end: b"w0/\xff".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .count
    };
    let before = count(ep.clone()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = count(ep.clone()).await;
    assert!(
        after > before,
        "puts stalled behind a slow snapshot reader: {before} -> {after}"
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for w in writers {
        total += w.await.unwrap();
    }
    assert!(total > 0);
    drop(slow);
    // the member still serves snapshots and writes afterwards
    n.ok(&["put", "done", "1"]);
}

#[test]
fn snapshot_needs_root_with_auth_as_etcd() {
    let _s = serial();
    let n = single("auth");
    n.ok(&["user", "add", "root:rootpw"]);
    n.ok(&["user", "add", "alice:pw"]);
    n.ok(&["auth", "enable"]);
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("x.db");
    let f = f.to_str().unwrap();
    let out = n.ctl(&["snapshot", "save", f]);
    assert_eq!(out.code, 5);
    assert!(
        out.stderr
            .contains("Error: rpc error: code = Unknown desc = auth: user name is empty"),
        "{}",
        out.stderr
    );
    let out = n.ctl(&["--user", "alice:pw", "snapshot", "save", f]);
    assert!(
        out.stderr
            .contains("Error: rpc error: code = Unknown desc = auth: permission denied"),
        "{}",
        out.stderr
    );
    let out = n.ctl(&["--user", "root:rootpw", "snapshot", "save", f]);
    assert!(out.success(), "{}", out.stderr);
}
