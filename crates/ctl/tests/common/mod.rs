//! What the retcdctl end-to-end tests share: the real etcd 3.4 binaries, free ports, the
//! retcd binary next to retcdctl, etcdctl-style commands with a clean environment, and a
//! single-member server (etcd or retcd, same flags) in a temp dir (or a given data dir),
//! killed on drop or stopped cleanly.

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
    let mut cmd = clean(tool);
    cmd.env("ETCDCTL_ENDPOINTS", endpoint).args(args);
    cmd
}

/// `tool` (etcdctl or retcdctl) with `ETCDCTL_API=3` and none of the caller's other
/// `ETCDCTL_*` variables.
pub fn clean(tool: &str) -> Command {
    let mut cmd = Command::new(tool);
    for (k, _) in std::env::vars() {
        if k.starts_with("ETCDCTL_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("ETCDCTL_API", "3");
    cmd
}

/// Runs `tool args` as [`clean`] makes it, plus `env`, with no stdin.
pub fn run_clean(tool: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    clean(tool)
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run")
}

/// A single-member server in a temp dir, killed on drop.
pub struct Server {
    child: Child,
    /// `127.0.0.1:<client port>` (`https://127.0.0.1:<client port>` with TLS)
    pub endpoint: String,
    /// what a client needs to talk to it: `--cacert --cert --key` with TLS, else nothing
    pub client_flags: Vec<String>,
    /// the temp dir holding the data dir (none when the caller gave the data dir)
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files of a server that serves https and wants client certificates (`--cert-file
/// --key-file --client-cert-auth --trusted-ca-file`), and a client pair it accepts.
pub struct TlsFiles {
    pub ca: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
}

impl TlsFiles {
    /// `--cacert --cert --key` for a client of that server.
    pub fn client_flags(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", self.ca.display()),
            format!("--cert={}", self.client_cert.display()),
            format!("--key={}", self.client_key.display()),
        ]
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
        Server::start_with(bin, free_port(), None)
    }

    /// Like [`Server::start`], serving clients on `port`.
    pub fn start_on(bin: &str, port: u16) -> Server {
        Server::start_with(bin, port, None)
    }

    /// Like [`Server::start`], serving clients over https with client-certificate
    /// authentication; `endpoint` is then `https://127.0.0.1:<port>`.
    pub fn start_tls(bin: &str, tls: &TlsFiles) -> Server {
        Server::start_with(bin, free_port(), Some(tls))
    }

    /// Like [`Server::start`] with the data dir `data` (kept when the server is dropped).
    pub fn start_in(bin: &str, data: &Path) -> Server {
        Server::launch(bin, free_port(), None, data.to_path_buf(), None)
    }

    /// Stops the server with SIGTERM (a clean shutdown) and waits for it to exit (SIGKILL
    /// after 20 s).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn start_with(bin: &str, port: u16, tls: Option<&TlsFiles>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        Server::launch(bin, port, tls, data, Some(dir))
    }

    fn launch(
        bin: &str,
        port: u16,
        tls: Option<&TlsFiles>,
        data: std::path::PathBuf,
        dir: Option<tempfile::TempDir>,
    ) -> Server {
        assert!(
            Path::new(ETCD).exists() && Path::new(ETCDCTL).exists(),
            "these tests need the real etcd and etcdctl 3.4 at {ETCD} and {ETCDCTL}: apt-get install -y etcd-server etcd-client"
        );
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let mut cmd = Command::new(bin);
        cmd.args(["--name", "default", "--data-dir"])
            .arg(&data)
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
            .args(["--initial-cluster", &format!("default={peer}")]);
        if let Some(t) = tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(&t.ca);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server");
        let endpoint = if tls.is_some() {
            client
        } else {
            format!("127.0.0.1:{port}")
        };
        let server = Server {
            child,
            endpoint,
            client_flags: tls.map(TlsFiles::client_flags).unwrap_or_default(),
            _dir: dir,
        };
        let mut probe = server.client_flags.clone();
        probe.extend(["endpoint".into(), "health".into()]);
        let probe: Vec<&str> = probe.iter().map(String::as_str).collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ctl(ETCDCTL, &server.endpoint, &probe)
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
