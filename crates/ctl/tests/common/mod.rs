//! What the retcdctl end-to-end tests share: the real etcd 3.4 binaries, free ports, the
//! retcd binary next to retcdctl, etcdctl-style commands with a clean environment, and a
//! single-member server (etcd or retcd, same flags) in a temp dir, killed on drop.

#![allow(dead_code)] // each test crate uses part of it

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ETCD: &str = "/usr/bin/etcd";
pub const ETCDCTL: &str = "/usr/bin/etcdctl";
pub const RETCDCTL: &str = env!("CARGO_BIN_EXE_retcdctl");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// The retcd binary next to retcdctl (`cargo build -p retcd-server --bin retcd` into the same
/// target dir) or `$RETCD_BIN`; `None` skips the retcd runs.
pub fn retcd_bin() -> Option<String> {
    std::env::var("RETCD_BIN")
        .ok()
        .or_else(|| {
            let p = Path::new(RETCDCTL).with_file_name("retcd");
            p.exists().then(|| p.to_string_lossy().into_owned())
        })
        .filter(|p| Path::new(p).exists())
}

/// `tool args` (etcdctl or retcdctl) against `endpoint`, with `ETCDCTL_API=3` and none of the
/// caller's other `ETCDCTL_*` variables.
pub fn ctl(tool: &str, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(tool);
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3")
        .env("ETCDCTL_ENDPOINTS", endpoint)
        .args(args);
    cmd
}

/// A single-member server in a temp dir, killed on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:<client port>`
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The real etcd.
    pub fn etcd() -> Server {
        Server::start(ETCD)
    }

    /// etcd or retcd (`bin`), started with the same flags; waits until etcdctl finds it
    /// healthy.
    pub fn start(bin: &str) -> Server {
        assert!(
            Path::new(ETCD).exists() && Path::new(ETCDCTL).exists(),
            "these tests need the real etcd and etcdctl 3.4 at {ETCD} and {ETCDCTL}: apt-get install -y etcd-server etcd-client"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let client = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let child = Command::new(bin)
            .args(["--name", "default", "--data-dir"])
            .arg(dir.path().join("data"))
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
            .expect("start the server");
        let server = Server {
            child,
            endpoint: client.trim_start_matches("http://").to_string(),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ctl(ETCDCTL, &server.endpoint, &["endpoint", "health"])
            .stdin(Stdio::null())
            .output()
            .expect("etcdctl")
            .status
            .success()
        {
            assert!(Instant::now() < deadline, "{bin} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }
}
