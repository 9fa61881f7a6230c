//! `snapshot status` and `snapshot restore` of retcdctl next to the real etcdctl 3.4: the
//! files differ (etcdctl reads etcd's bbolt snapshots, retcdctl retcd's images), so the
//! status output is compared in shape (every format, values masked), and the errors that do
//! not depend on the file (arguments, flags, missing files, existing data dirs) exactly.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ETCD, ETCDCTL, RETCDCTL, free_port};
use regex::Regex;
use sha2::{Digest, Sha256};

fn run(tool: &str, cwd: &Path, args: &[&str]) -> Output {
    run_env(tool, cwd, args, &[])
}

/// [`run`] with more environment variables.
fn run_env(tool: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::clean(tool)
        .envs(env.iter().copied())
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A real etcd with three keys; killed on drop.
struct Etcd(Child);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn etcd_snapshot(dir: &Path) -> std::path::PathBuf {
    assert!(
        Path::new(ETCD).exists() && Path::new(ETCDCTL).exists(),
        "needs the real etcd and etcdctl 3.4: apt-get install -y etcd-server etcd-client"
    );
    let port = free_port();
    let client = format!("http://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let child = Command::new(ETCD)
        .arg("--data-dir")
        .arg(dir.join("etcd-data"))
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("default={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _etcd = Etcd(child);
    let ep = format!("--endpoints=127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !run(ETCDCTL, dir, &[&ep, "put", "k1", "v1"]).status.success() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    for k in ["k2", "k3"] {
        assert!(run(ETCDCTL, dir, &[&ep, "put", k, "v"]).status.success());
    }
    let out = run(ETCDCTL, dir, &[&ep, "snapshot", "save", "etcd.db"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir.join("etcd.db")
}

/// A retcd snapshot file as Maintenance.Snapshot sends it: the store's image, zero padding
/// to 512 bytes, the SHA-256 of both.
fn retcd_snapshot(dir: &Path) -> std::path::PathBuf {
    let (store, _) = retcd_mvcc::Store::open(&dir.join("store/db"), Default::default()).unwrap();
    let mut b = store.begin_batch().unwrap();
    for k in ["k1", "k2", "k3"] {
        let mut t = b.txn();
        t.put(k.as_bytes(), b"v", 0).unwrap();
        t.end();
    }
    b.commit(true).unwrap();
    let mut image = Vec::new();
    store.write_snapshot(&mut image).unwrap();
    image.resize(image.len().div_ceil(512) * 512, 0);
    let sha = Sha256::digest(&image);
    image.extend_from_slice(&sha);
    let path = dir.join("retcd.db");
    std::fs::write(&path, image).unwrap();
    path
}

/// Masks values: hashes, numbers, sizes; table padding and borders collapsed.
fn shape(text: &str) -> String {
    let sizes = Regex::new(r"\d+(\.\d)? (B|kB|MB|GB)").unwrap();
    // json and fields print the hash in decimal (any number of digits), simple and table
    // in hex (up to 8 digits, with a letter unless it is long)
    let decimal_hash = Regex::new(r#"("(?:hash|Hash)"\s*:\s*)\d+"#).unwrap();
    let hex = Regex::new(r"\b(?:[0-9a-f]{6,8}|[0-9]*[a-f][0-9a-f]*)\b").unwrap();
    let num = Regex::new(r"\d+").unwrap();
    let t = sizes.replace_all(text, "SIZE");
    let t = decimal_hash.replace_all(&t, "${1}N");
    let t = hex.replace_all(&t, "HEX");
    let t = num.replace_all(&t, "N");
    let t = Regex::new(r"-+").unwrap().replace_all(&t, "-");
    Regex::new(r" +").unwrap().replace_all(&t, " ").into_owned()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// stderr without zap timestamps.
fn no_ts(b: &[u8]) -> String {
    let ts = Regex::new(r#""ts":[0-9.e+]+"#).unwrap();
    ts.replace_all(&text(b), "\"ts\":T").into_owned()
}

#[test]
fn status_prints_etcdctls_formats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    etcd_snapshot(d);
    retcd_snapshot(d);
    for format in ["simple", "table", "json", "fields", "protobuf"] {
        let want = run(ETCDCTL, d, &["snapshot", "status", "etcd.db", "-w", format]);
        let got = run(RETCDCTL, d, &["snapshot", "status", "retcd.db", "-w", format]);
        assert_eq!(got.status.code(), want.status.code(), "-w {format}");
        assert_eq!(
            shape(&text(&got.stdout)),
            shape(&text(&want.stdout)),
            "-w {format}"
        );
        assert_eq!(text(&got.stderr), text(&want.stderr), "-w {format}");
    }
    // no client, so no ETCDCTL_* variable is looked at (not even an unknown one)
    let env = [
        ("ETCDCTL_WRITE_OUT", "json"),
        ("ETCDCTL_HEX", "1"),
        ("ETCDCTL_FOO", "1"),
    ];
    let want = run_env(ETCDCTL, d, &["snapshot", "status", "etcd.db"], &env);
    let got = run_env(RETCDCTL, d, &["snapshot", "status", "retcd.db"], &env);
    assert_eq!(got.status.code(), want.status.code(), "with {env:?}");
    assert_eq!(
        shape(&text(&got.stdout)),
        shape(&text(&want.stdout)),
        "with {env:?}"
    );
    assert_eq!(text(&got.stderr), text(&want.stderr), "with {env:?}");
    // the values: 3 puts make revision 4 and 3 rows; the image is padded to 512 bytes
    let got = run(RETCDCTL, d, &["snapshot", "status", "retcd.db"]);
    let line = text(&got.stdout);
    let fields: Vec<&str> = line.trim().split(", ").collect();
    assert_eq!(&fields[1..], ["4", "3", "512 B"], "{line}");
    let json = text(&run(RETCDCTL, d, &["snapshot", "status", "retcd.db", "-w", "json"]).stdout);
    let hash = u32::from_str_radix(fields[0], 16).unwrap();
    assert_eq!(
        json.trim(),
        format!("{{\"hash\":{hash},\"revision\":4,\"totalKey\":3,\"totalSize\":512}}")
    );
    // an etcd snapshot is named as such
    let out = run(RETCDCTL, d, &["snapshot", "status", "etcd.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is an etcd (bbolt) snapshot"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn errors_match_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    retcd_snapshot(d);
    std::fs::create_dir(d.join("exists")).unwrap();
    let cases: &[&[&str]] = &[
        &["snapshot", "status"],
        &["snapshot", "status", "a.db", "b.db"],
        &["snapshot", "status", "missing.db"],
        &["snapshot", "restore"],
        &["snapshot", "restore", "a.db", "b.db"],
        &["snapshot", "restore", "retcd.db", "--data-dir", "exists"],
        &[
            "snapshot",
            "restore",
            "retcd.db",
            "--name",
            "m9",
            "--initial-cluster",
            "m1=http://127.0.0.1:1",
        ],
        &[
            "snapshot",
            "restore",
            "retcd.db",
            "--name",
            "m1",
            "--initial-cluster",
            "m1=http://127.0.0.1:1",
        ],
        &["snapshot", "restore", "missing.db", "--data-dir", "new"],
    ];
    for args in cases {
        let want = run(ETCDCTL, d, args);
        let got = run(RETCDCTL, d, args);
        assert_eq!(
            got.status.code(),
            want.status.code(),
            "{args:?}: {}",
            text(&got.stderr)
        );
        assert_eq!(no_ts(&got.stderr), no_ts(&want.stderr), "{args:?}");
        assert_eq!(text(&got.stdout), text(&want.stdout), "{args:?}");
    }
}

#[test]
fn restore_logs_like_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    etcd_snapshot(d);
    retcd_snapshot(d);
    let flags = [
        "--name",
        "m1",
        "--initial-cluster",
        "m1=http://127.0.0.1:1,m2=http://127.0.0.1:2,m3=http://127.0.0.1:3",
        "--initial-cluster-token",
        "tok",
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:1",
    ];
    let want = run(
        ETCDCTL,
        d,
        &[&["snapshot", "restore", "etcd.db", "--data-dir", "x"][..], &flags].concat(),
    );
    let got = run(
        RETCDCTL,
        d,
        &[
            &["snapshot", "restore", "retcd.db", "--data-dir", "x2"][..],
            &flags,
        ]
        .concat(),
    );
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    assert_eq!(want.status.code(), Some(0));
    let same = |s: String| {
        s.replace("retcd.db", "F")
            .replace("etcd.db", "F")
            .replace("\"x2", "\"x")
            .replace("x2/", "x/")
    };
    assert_eq!(same(no_ts(&got.stderr)), same(no_ts(&want.stderr)));
    assert_eq!(text(&got.stdout), text(&want.stdout));
    assert!(d.join("x2/member/snap/db").is_file() && d.join("x2/member/wal").is_dir());
}
