//! End-to-end test harness: starts a real etcd or a retcd server process on free
//! loopback ports with a fresh data directory, and runs the real `etcdctl` (API v3)
//! against it.
//!
//! * Everything is parallel-safe: ports are reserved through lock files (see
//!   [`PortLock`]) and every server gets its own [`TempDir`]; nothing is left behind.
//! * The server's stdout/stderr go to `server.log` in its temp dir; the log tail is
//!   printed when a test panics while the server is alive, and is part of every
//!   start-up failure message.
//! * The real binaries are required: `/usr/bin/etcd` (package etcd-server) and
//!   `/usr/bin/etcdctl` (package etcd-client). Missing binaries fail the test loudly.
//!   `RETCD_TEST_ETCD_BIN` / `RETCD_TEST_ETCDCTL_BIN` override the paths.
//! * `RETCD_COMPAT_SELFTEST=1` makes [`kind_under_test`] return [`ServerKind::Etcd`], so
//!   the compatibility and crash tests can be validated against etcd itself.

#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Hard limit for one etcdctl invocation (etcdctl's own timeouts are shorter).
pub const ETCDCTL_WATCHDOG: Duration = Duration::from_secs(60);
/// `--dial-timeout` passed to every etcdctl invocation.
pub const DIAL_TIMEOUT: &str = "3s";
/// `--command-timeout` passed to every etcdctl invocation.
pub const COMMAND_TIMEOUT: &str = "10s";

const DEFAULT_ETCD: &str = "/usr/bin/etcd";
const DEFAULT_ETCDCTL: &str = "/usr/bin/etcdctl";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// The real etcd 3.4 (`/usr/bin/etcd`).
    Etcd,
    /// This project's `retcd` binary.
    Retcd,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Etcd => "etcd",
            ServerKind::Retcd => "retcd",
        }
    }

    pub fn binary(self) -> PathBuf {
        match self {
            ServerKind::Etcd => etcd_bin(),
            ServerKind::Retcd => PathBuf::from(env!("CARGO_BIN_EXE_retcd")),
        }
    }
}

/// True when `RETCD_COMPAT_SELFTEST=1`: compare etcd against a second etcd.
pub fn selftest() -> bool {
    std::env::var("RETCD_COMPAT_SELFTEST").is_ok_and(|v| v == "1")
}

/// The server the tests are about: retcd, or etcd in self-test mode.
pub fn kind_under_test() -> ServerKind {
    if selftest() {
        ServerKind::Etcd
    } else {
        ServerKind::Retcd
    }
}

fn required_binary(env_var: &str, default: &str, package: &str) -> PathBuf {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "{} not found: the end-to-end tests need the real etcd 3.4 binaries. Install them \
         (Debian/Ubuntu: `apt-get install etcd-server etcd-client`; package {package}) or point \
         {env_var} at the binary.",
        path.display()
    );
    path
}

pub fn etcd_bin() -> PathBuf {
    required_binary("RETCD_TEST_ETCD_BIN", DEFAULT_ETCD, "etcd-server")
}

pub fn etcdctl_bin() -> PathBuf {
    required_binary("RETCD_TEST_ETCDCTL_BIN", DEFAULT_ETCDCTL, "etcd-client")
}

/// Removes environment variables that etcd / etcdctl would read as flags (or that could
/// route gRPC through a proxy), so the parent environment cannot change behaviour.
pub fn scrub_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let upper = key.to_ascii_uppercase();
        if upper.starts_with("ETCD_")
            || upper.starts_with("ETCDCTL_")
            || matches!(
                upper.as_str(),
                "HTTP_PROXY" | "HTTPS_PROXY" | "ALL_PROXY" | "GRPC_GO_LOG_SEVERITY_LEVEL"
            )
        {
            cmd.env_remove(key);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------

fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// Ports are chosen below the kernel's ephemeral range, so that outgoing connections
/// (etcdctl, other tests) never take a port between our check and the server's bind.
fn port_range() -> (u16, u16) {
    let ephemeral_low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse::<u16>().ok()))
        .unwrap_or(32768);
    if ephemeral_low > 16000 {
        (15000, ephemeral_low)
    } else {
        (15000, 30000)
    }
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("retcd-test-ports")
}

/// An exclusive, cross-process reservation of one TCP port on 127.0.0.1.
///
/// Held as an advisory lock on `$TMPDIR/retcd-test-ports/<port>.lock`; the file (and the
/// directory, when empty) is removed again on drop. Every user of this harness, in any
/// process, skips locked ports; the bind check skips ports used by anything else.
pub struct PortLock {
    port: u16,
    path: PathBuf,
    file: Option<File>,
}

impl PortLock {
    fn try_reserve(port: u16) -> Option<PortLock> {
        let dir = lock_dir();
        fs::create_dir_all(&dir).ok()?;
        let path = dir.join(format!("{port}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ok()?;
        file.try_lock().ok()?;
        // Someone may have deleted the file between our open and our lock: then our lock
        // protects nothing. Only keep it if the path still names the inode we locked.
        let ours = file.metadata().ok()?;
        let current = fs::metadata(&path).ok()?;
        if ours.ino() != current.ino() || ours.dev() != current.dev() {
            return None;
        }
        let lock = PortLock {
            port,
            path,
            file: Some(file),
        };
        // Anything else (not using this harness) listening there?
        TcpListener::bind(("127.0.0.1", port)).ok()?;
        Some(lock)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLock {
    fn drop(&mut self) {
        // Delete while still holding the lock (see the inode check above), then unlock.
        let _ = fs::remove_file(&self.path);
        drop(self.file.take());
        let _ = fs::remove_dir(lock_dir());
    }
}

fn reserve_port() -> PortLock {
    let (low, high) = port_range();
    for _ in 0..2000 {
        let port = low + (random_u64() % u64::from(high - low)) as u16;
        if let Some(lock) = PortLock::try_reserve(port) {
            return lock;
        }
    }
    panic!("could not reserve a free TCP port in {low}..{high}");
}

/// The client and peer port of one server; shareable, so that a second server can be
/// started on exactly the same ports (same URLs => same member and cluster IDs).
pub struct Ports {
    client: PortLock,
    peer: PortLock,
}

impl Ports {
    pub fn reserve() -> Arc<Ports> {
        Arc::new(Ports {
            client: reserve_port(),
            peer: reserve_port(),
        })
    }

    pub fn client(&self) -> u16 {
        self.client.port()
    }

    pub fn peer(&self) -> u16 {
        self.peer.port()
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client())
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer())
    }
}

// ---------------------------------------------------------------------------------------
// etcdctl
// ---------------------------------------------------------------------------------------

/// The result of one etcdctl invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// stdout, lossily decoded (see `stdout_raw` for the bytes, e.g. `-w protobuf`).
    pub stdout: String,
    pub stdout_raw: Vec<u8>,
    pub stderr: String,
    /// The exit code; -1 if etcdctl was killed by a signal (or by the watchdog).
    pub code: i32,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

fn read_all_in_thread<R: Read + Send + 'static>(mut r: R) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Runs `etcdctl --endpoints=<endpoint> --dial-timeout=.. --command-timeout=.. <args>`
/// with `ETCDCTL_API=3`; `stdin` is piped in when given (else stdin is /dev/null).
pub fn etcdctl_at(endpoint: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    etcdctl_with(endpoint, DIAL_TIMEOUT, COMMAND_TIMEOUT, args, stdin)
}

pub fn etcdctl_with(
    endpoint: &str,
    dial_timeout: &str,
    command_timeout: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> Output {
    let mut cmd = Command::new(etcdctl_bin());
    scrub_env(&mut cmd);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!("--dial-timeout={dial_timeout}"))
        .arg(format!("--command-timeout={command_timeout}"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run etcdctl {args:?}: {e}"));
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            // etcdctl may exit without reading everything: ignore EPIPE.
            Some(thread::spawn(move || {
                let _ = pipe.write_all(&data);
            }))
        }
        _ => None,
    };
    let out = read_all_in_thread(child.stdout.take().expect("stdout piped"));
    let err = read_all_in_thread(child.stderr.take().expect("stderr piped"));

    let deadline = Instant::now() + ETCDCTL_WATCHDOG;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for etcdctl {args:?}: {e}"),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout_raw = out.join().unwrap_or_default();
    let mut stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    if timed_out {
        stderr.push_str(&format!(
            "\n[harness: etcdctl killed after {ETCDCTL_WATCHDOG:?}]\n"
        ));
    }
    Output {
        stdout: String::from_utf8_lossy(&stdout_raw).into_owned(),
        stdout_raw,
        stderr,
        code: status.and_then(|s| s.code()).unwrap_or(-1),
    }
}

// ---------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------

/// A running etcd or retcd server process (single member named `default`).
pub struct Server {
    kind: ServerKind,
    ports: Arc<Ports>,
    dir: TempDir,
    child: Option<Child>,
    /// Flags added after the common ones.
    extra: Vec<String>,
}

impl Server {
    /// Starts a server of `kind` on fresh ports with a fresh data dir; waits until ready.
    pub fn start(kind: ServerKind) -> Server {
        Server::start_on(kind, Ports::reserve())
    }

    /// Starts a server on the given ports (e.g. the ports a previous server used).
    pub fn start_on(kind: ServerKind, ports: Arc<Ports>) -> Server {
        Server::start_with(kind, ports, &[])
    }

    /// Starts a server on the given ports with `extra` flags after the common ones.
    pub fn start_with(kind: ServerKind, ports: Arc<Ports>, extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix(&format!("retcd-e2e-{}-", kind.name()))
            .tempdir()
            .expect("create temp dir");
        let mut server = Server {
            kind,
            ports,
            dir,
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn_and_wait();
        server
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    pub fn ports(&self) -> &Arc<Ports> {
        &self.ports
    }

    /// `http://127.0.0.1:<client port>`
    pub fn endpoint(&self) -> String {
        self.ports.client_url()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server's captured stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log, with a header naming the server.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        let start = all.len().saturating_sub(lines);
        format!(
            "----- {} server log ({}, last {} of {} lines) -----\n{}\n----- end of {} log -----",
            self.kind.name(),
            self.log_path().display(),
            all.len() - start,
            all.len(),
            all[start..].join("\n"),
            self.kind.name()
        )
    }

    /// The etcd flags both servers are started with.
    pub fn args(&self) -> Vec<String> {
        let client = self.ports.client_url();
        let peer = self.ports.peer_url();
        let mut args: Vec<String> = vec![
            "--name".into(),
            "default".into(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--listen-client-urls".into(),
            client.clone(),
            "--advertise-client-urls".into(),
            client,
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("default={peer}"),
        ];
        args.extend(self.extra.iter().cloned());
        args
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(self.kind.binary());
        scrub_env(&mut cmd);
        cmd.args(self.args())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({}): {e}",
                self.kind.name(),
                self.kind.binary().display()
            )
        });
        self.child = Some(child);
    }

    fn spawn_and_wait(&mut self) {
        self.spawn();
        if let Err(why) = self.wait_ready() {
            self.kill9();
            panic!(
                "{} did not become ready on {}: {why}\ncommand: {} {}\n{}",
                self.kind.name(),
                self.endpoint(),
                self.kind.binary().display(),
                self.args().join(" "),
                self.log_tail(200)
            );
        }
    }

    /// Ready = the client port accepts connections and a linearizable `etcdctl get`
    /// succeeds (i.e. there is a leader and reads go through). Does not write anything,
    /// so a fresh server is still at revision 1 afterwards.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.ports.client()));
        let mut last = String::from("client port never accepted a connection");
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("the process exited during start-up ({status})"));
            }
            if Instant::now() >= deadline {
                return Err(format!("not ready after {READY_TIMEOUT:?}; last probe: {last}"));
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                let out = etcdctl_with(
                    &self.endpoint(),
                    "1s",
                    "2s",
                    &["get", "retcd-harness-probe"],
                    None,
                );
                // With auth enabled a read without credentials is refused: the server
                // answered, so it is serving.
                if out.success() || out.stderr.contains("etcdserver: user name is empty") {
                    return Ok(());
                }
                last = format!("etcdctl get exited {}: {}", out.code, out.stderr.trim());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL the server and reap it (no-op if it is not running).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM the server and reap it (SIGKILL after 20 s; no-op if it is not running).
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts the server (SIGKILL first if still running) on the same data dir and
    /// ports, and waits until it is ready again.
    pub fn restart(&mut self) {
        self.kill9();
        let mut log = OpenOptions::new()
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        let _ = writeln!(log, "\n===== harness: restarting {} =====", self.kind.name());
        drop(log);
        self.spawn_and_wait();
    }

    /// Runs etcdctl against this server; `stdin` is piped in when given.
    pub fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        etcdctl_at(&self.endpoint(), args, stdin.map(str::as_bytes))
    }

    /// Like [`Server::etcdctl`], with arbitrary bytes on stdin.
    pub fn etcdctl_bytes(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        etcdctl_at(&self.endpoint(), args, stdin)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if thread::panicking() && self.child.is_some() {
            eprintln!("{}", self.log_tail(100));
        }
        self.kill9();
    }
}

// ---------------------------------------------------------------------------------------
// Long-running etcdctl processes (e.g. `etcdctl watch`)
// ---------------------------------------------------------------------------------------

/// A long-running etcdctl (API v3) child process, e.g. `etcdctl watch`, whose stdout
/// and stderr are collected in the background and can be inspected while it runs.
/// Every wait is bounded; the process is killed (SIGKILL) when dropped.
pub struct EtcdctlProcess {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: Arc<std::sync::Mutex<Vec<u8>>>,
    stderr: Arc<std::sync::Mutex<Vec<u8>>>,
    /// Number of reader threads that have seen EOF.
    eof: Arc<AtomicU64>,
    exit: Option<i32>,
}

fn collect_in_thread<R: Read + Send + 'static>(
    mut r: R,
    sink: Arc<std::sync::Mutex<Vec<u8>>>,
    eof: Arc<AtomicU64>,
) {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]),
            }
        }
        eof.fetch_add(1, Ordering::SeqCst);
    });
}

impl EtcdctlProcess {
    /// Starts `etcdctl --endpoints=<endpoint> --dial-timeout=.. --command-timeout=.. <args>`
    /// (same environment as [`etcdctl_at`]); stdin is a pipe when `piped_stdin`, else
    /// /dev/null.
    pub fn spawn(endpoint: &str, args: &[&str], piped_stdin: bool) -> EtcdctlProcess {
        let mut cmd = Command::new(etcdctl_bin());
        scrub_env(&mut cmd);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .arg(format!("--dial-timeout={DIAL_TIMEOUT}"))
            .arg(format!("--command-timeout={COMMAND_TIMEOUT}"))
            .args(args)
            .stdin(if piped_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run etcdctl {args:?}: {e}"));
        let stdout = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = Arc::new(std::sync::Mutex::new(Vec::new()));
        let eof = Arc::new(AtomicU64::new(0));
        collect_in_thread(
            child.stdout.take().expect("stdout piped"),
            Arc::clone(&stdout),
            Arc::clone(&eof),
        );
        collect_in_thread(
            child.stderr.take().expect("stderr piped"),
            Arc::clone(&stderr),
            Arc::clone(&eof),
        );
        EtcdctlProcess {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            eof,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything printed to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything printed to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes to the process' stdin (if it is a pipe and still open).
    pub fn write_stdin(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self.stdin.as_mut() {
            Some(pipe) => pipe.write_all(data).and_then(|()| pipe.flush()),
            None => Err(std::io::Error::other("stdin is not an open pipe")),
        }
    }

    /// Closes stdin (EOF for the process).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The exit code if the process has exited (-1: killed by a signal).
    pub fn exit_code(&mut self) -> Option<i32> {
        if self.exit.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exit = Some(status.code().unwrap_or(-1));
        }
        self.exit
    }

    /// Waits until both output pipes are at EOF (bounded by `timeout`: a grandchild,
    /// e.g. a command started by `etcdctl watch -- CMD`, may hold them open).
    fn wait_for_eof(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.eof.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls `done(stdout, stderr)` until it holds (true), the process has exited and
    /// its output is complete without it holding, or `timeout` passes (false).
    pub fn wait_until(&mut self, timeout: Duration, done: impl Fn(&[u8], &[u8]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.stdout(), &self.stderr()) {
                return true;
            }
            if self.exit_code().is_some() {
                self.wait_for_eof(Duration::from_secs(1));
                return done(&self.stdout(), &self.stderr());
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the process has an established TCP connection to 127.0.0.1:`port`
    /// (found through /proc); false on timeout, if the process exited, or if /proc does
    /// not tell.
    pub fn wait_connected(&mut self, port: u16, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if has_established_connection(self.pid(), port) {
                return true;
            }
            if self.exit_code().is_some() || Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL now (no clean-up by etcdctl: its session lease is left to expire).
    pub fn kill9(&mut self) {
        if self.exit_code().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(status.code().unwrap_or(-1));
            }
        }
    }

    /// Waits up to `grace` for the process to exit by itself, kills it (SIGKILL) if it
    /// has not, and returns its complete output. `code` is -1 if it was killed.
    pub fn finish(mut self, grace: Duration) -> Output {
        self.stdin = None;
        let deadline = Instant::now() + grace;
        while self.exit_code().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if self.exit_code().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(status.code().unwrap_or(-1));
            }
        }
        self.wait_for_eof(Duration::from_secs(2));
        let stdout_raw = self.stdout();
        Output {
            stdout: String::from_utf8_lossy(&stdout_raw).into_owned(),
            stdout_raw,
            stderr: String::from_utf8_lossy(&self.stderr()).into_owned(),
            code: self.exit.unwrap_or(-1),
        }
    }
}

impl Drop for EtcdctlProcess {
    fn drop(&mut self) {
        if self.exit.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// True if process `pid` owns a socket with an ESTABLISHED TCP connection to
/// 127.0.0.1:`port` (IPv4 or IPv4-mapped IPv6), according to /proc.
pub fn has_established_connection(pid: u32, port: u16) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    let inodes: Vec<String> = fds
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let port_hex = format!(":{port:04X}");
    ["tcp", "tcp6"].iter().any(|table| {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            return false;
        };
        text.lines().skip(1).any(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            cols.len() > 9
                && cols[2].ends_with(&port_hex)
                && cols[3] == "01"
                && inodes.iter().any(|i| i == cols[9])
        })
    })
}

// ---------------------------------------------------------------------------------------
// retcd with extra flags (gRPC-level tests)
// ---------------------------------------------------------------------------------------

/// A retcd started with extra flags on top of [`Server`]'s (e.g. `--max-request-bytes`), for
/// tests that speak gRPC directly. Fresh ports and data dir, output in `server.log` in its
/// temp dir (tail printed if the test panics), SIGKILLed on drop. Ready, as [`Server`], once
/// a linearizable `etcdctl get` succeeds.
pub struct FlaggedRetcd {
    ports: Arc<Ports>,
    dir: TempDir,
    child: Child,
}

impl FlaggedRetcd {
    pub fn start(extra: &[&str]) -> FlaggedRetcd {
        let ports = Ports::reserve();
        let dir = tempfile::Builder::new()
            .prefix("retcd-grpc-")
            .tempdir()
            .expect("create temp dir");
        let log = File::create(dir.path().join("server.log")).expect("create server log");
        let (client, peer) = (ports.client_url(), ports.peer_url());
        let mut cmd = Command::new(ServerKind::Retcd.binary());
        scrub_env(&mut cmd);
        cmd.args(["--name", "default", "--data-dir"])
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
            .args(extra)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log);
        let child = cmd.spawn().expect("start retcd");
        let mut s = FlaggedRetcd { ports, dir, child };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            assert!(s.is_running(), "retcd exited during start-up (flags {extra:?})");
            let probe = etcdctl_with(&s.endpoint(), "1s", "2s", &["get", "retcd-harness-probe"], None);
            if probe.success() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "retcd (flags {extra:?}) not ready after {READY_TIMEOUT:?}: {}",
                probe.stderr.trim()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<client port>`
    pub fn endpoint(&self) -> String {
        self.ports.client_url()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A new gRPC connection (HTTP/2 connection) to the client port.
    pub async fn connect(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(self.endpoint())
            .expect("endpoint URL")
            .connect()
            .await
            .expect("connect to retcd")
    }

    /// The last `lines` lines of the server's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for FlaggedRetcd {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("----- retcd log (last 100 lines) -----\n{}", self.log_tail(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.1: (status line, body).
pub fn http_get(port: u16, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    // a chunked body: drop the chunk size lines
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}
