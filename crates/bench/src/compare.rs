//! `retcd-bench compare`: start real etcd and retcd, each on a fresh data dir and free
//! 127.0.0.1 ports with the same flags, run the same suite against each in turn, sample
//! each server's CPU time and peak RSS from `/proc`, and print one table.
//!
//! Rows run in order against one server process, so later rows see the data earlier rows
//! wrote (the 1M-key scans use their own prefix and check the count). Each row opens its
//! own connections. Per row: throughput, p99, the server's CPU time (user + system) per
//! request and its peak RSS during the row (the high-water mark is reset before each row
//! through `/proc/PID/clear_refs`). After the rows: data dir size, restart time with the
//! data, and the row the server could not run (`Unimplemented`) are reported as such.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use retcd_api::etcdserverpb::RangeRequest;
use retcd_api::etcdserverpb::kv_client::KvClient;
use serde_json::{Value, json};
use tonic::transport::Endpoint;

use crate::BenchError;
use crate::args::{CompactArgs, DefragArgs};
use crate::args::{
    CompareArgs, Consistency, GlobalArgs, LeaseGrantArgs, LeaseKeepaliveArgs, LoadArgs, PutArgs, RangeArgs,
    ScanArgs, TxnPutArgs, WatchArgs,
};
use crate::client::Conns;
use crate::procfs;
use crate::workloads::{self, Ctx, Report, ScanMode};

/// What a row runs.
#[derive(Debug, Clone)]
pub enum Work {
    Put(PutArgs),
    Range(RangeArgs),
    TxnPut(TxnPutArgs),
    Watch(WatchArgs),
    LeaseKeepalive(LeaseKeepaliveArgs),
    LeaseGrant(LeaseGrantArgs),
    Load(LoadArgs),
    Scan(ScanArgs, ScanMode),
    Defrag(DefragArgs),
    Compact(CompactArgs),
}

/// One row of the suite.
#[derive(Debug, Clone)]
pub struct Row {
    /// Short id for `--rows`.
    pub id: &'static str,
    /// What the table shows.
    pub label: String,
    pub conns: u64,
    pub clients: u64,
    pub work: Work,
}

impl Row {
    /// What one "request" is in this row's throughput.
    pub fn unit(&self) -> &'static str {
        match self.work {
            Work::Load(_) => "keys/s",
            Work::Watch(_) => "events/s",
            _ => "req/s",
        }
    }
}

/// The key the range rows read (written, untimed, before them).
pub const RANGE_KEY: &str = "bench/range-key";

/// Id of the restart measurement (selectable with `--rows` like a row).
pub const RESTART_ID: &str = "restart";

fn human_count(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// The suite: the default rows, or small versions of all of them (`quick`).
pub fn suite(quick: bool) -> Vec<Row> {
    let q = |full: u64, small: u64| if quick { small } else { full };
    let val = 256;
    let mut rows = Vec::new();
    let n = q(10_000, 2_000);
    rows.push(Row {
        id: "put-1x1",
        label: format!("put 1×1, {} seq keys", human_count(n)),
        conns: 1,
        clients: 1,
        work: Work::Put(PutArgs {
            total: n,
            key_size: 8,
            val_size: val,
            sequential_keys: true,
            key_space_size: n,
            rate: 0.0,
            idle_watchers: 0,
        }),
    });
    let n = q(100_000, 20_000);
    rows.push(Row {
        id: "put-hot",
        label: format!("put 10×100, {}, one hot key", human_count(n)),
        conns: 10,
        clients: 100,
        work: Work::Put(PutArgs {
            total: n,
            key_size: 8,
            val_size: val,
            sequential_keys: false,
            key_space_size: 1,
            rate: 0.0,
            idle_watchers: 0,
        }),
    });
    rows.push(Row {
        id: "put-distinct",
        label: format!("put 10×100, {} distinct keys", human_count(n)),
        conns: 10,
        clients: 100,
        work: Work::Put(PutArgs {
            total: n,
            key_size: 8,
            val_size: val,
            sequential_keys: true,
            key_space_size: n,
            rate: 0.0,
            idle_watchers: 0,
        }),
    });
    rows.push(Row {
        id: "put-idle-watchers",
        label: format!("put 10×100, {} distinct keys, 1000 idle watchers", human_count(n)),
        conns: 10,
        clients: 100,
        work: Work::Put(PutArgs {
            total: n,
            key_size: 8,
            val_size: val,
            sequential_keys: true,
            key_space_size: n,
            rate: 0.0,
            idle_watchers: 1000,
        }),
    });
    for (id, c, name) in [
        ("range-l", Consistency::L, "linearizable"),
        ("range-s", Consistency::S, "serializable"),
    ] {
        rows.push(Row {
            id,
            label: format!("range 1 key {name}, 10×100, {}", human_count(n)),
            conns: 10,
            clients: 100,
            work: Work::Range(RangeArgs {
                key: RANGE_KEY.into(),
                end: None,
                consistency: c,
                total: n,
                limit: 0,
                count_only: false,
                keys_only: false,
                rate: 0.0,
            }),
        });
    }
    rows.push(Row {
        id: "txn-put",
        label: format!("txn-put 10×100, {}, 4 puts/txn", human_count(n)),
        conns: 10,
        clients: 100,
        work: Work::TxnPut(TxnPutArgs {
            total: n,
            key_size: 8,
            val_size: val,
            key_space_size: 100_000,
            txn_ops: 4,
            rate: 0.0,
        }),
    });
    let (streams, per_stream, puts) = if quick { (2, 50, 100) } else { (10, 100, 1000) };
    rows.push(Row {
        id: "watch",
        label: format!(
            "watch fan-out: {} watchers on 1 key, {} puts (events/s)",
            streams * per_stream,
            human_count(puts)
        ),
        conns: 10,
        clients: 10,
        work: Work::Watch(WatchArgs {
            streams,
            watch_per_stream: per_stream,
            watched_key_total: 1,
            put_total: puts,
            put_rate: 0.0,
            key_size: 32,
            val_size: 32,
        }),
    });
    let n = q(100_000, 10_000);
    rows.push(Row {
        id: "lease-keepalive",
        label: format!("lease keep-alive 10×100, {}", human_count(n)),
        conns: 10,
        clients: 100,
        work: Work::LeaseKeepalive(LeaseKeepaliveArgs { total: n }),
    });
    let n = q(100_000, 10_000);
    rows.push(Row {
        id: "lease-grant",
        label: format!("lease grant 10×100, {} live leases", human_count(n)),
        conns: 10,
        clients: 100,
        work: Work::LeaseGrant(LeaseGrantArgs { total: n, ttl: 3600 }),
    });
    let keys = q(1_000_000, 100_000);
    let load = LoadArgs {
        total: keys,
        prefix: "load/".into(),
        key_size: 16,
        val_size: 64,
        batch: 128,
    };
    rows.push(Row {
        id: "load",
        label: format!(
            "load {} keys, txns of 128 puts, 10×100 (keys/s)",
            human_count(keys)
        ),
        conns: 10,
        clients: 100,
        work: Work::Load(load),
    });
    for (id, mode, repeat, name) in [
        ("scan-count", ScanMode::CountOnly, 10, "count-only"),
        ("scan-keys", ScanMode::KeysOnly, 5, "keys-only"),
        ("scan-full", ScanMode::Full, 3, "full"),
    ] {
        rows.push(Row {
            id,
            label: format!("{name} range over {} keys, ×{repeat}", human_count(keys)),
            conns: 1,
            clients: 1,
            work: Work::Scan(
                ScanArgs {
                    prefix: "load/".into(),
                    repeat,
                    consistency: Consistency::L,
                    expect: Some(keys),
                },
                mode,
            ),
        });
    }
    let fill = q(1 << 30, 64 << 20);
    rows.push(Row {
        id: "defrag",
        label: format!(
            "puts 10×10 during a defrag of a {} MiB backend (half freed)",
            fill >> 20
        ),
        conns: 10,
        clients: 10,
        work: Work::Defrag(DefragArgs {
            fill_bytes: fill,
            ..Default::default()
        }),
    });
    let revisions = q(1_000_000, 100_000);
    rows.push(Row {
        id: "compact",
        label: format!(
            "puts 10×100 during a physical compaction of {} revisions",
            human_count(revisions)
        ),
        conns: 10,
        clients: 100,
        work: Work::Compact(CompactArgs {
            revisions,
            keys: 1000,
            seconds: 5,
        }),
    });
    rows
}

/// The row's extra figure `key` (from its JSON report), if it ran.
fn row_extra(run: &ServerRun, id: &str, key: &str) -> Option<f64> {
    match &run.rows.iter().find(|(r, _)| r == id)?.1 {
        Outcome::Done(m) => m.report.get(key)?.as_f64(),
        _ => None,
    }
}

/// The measured figures of one row against one server.
#[derive(Debug, Clone)]
pub struct Measured {
    pub ok: u64,
    pub errors: u64,
    /// Throughput in the row's unit.
    pub rate: f64,
    pub p99_ms: f64,
    pub server_cpu_us_per_op: Option<f64>,
    /// This benchmark process's own CPU per op (it shares the machine with the server).
    pub client_cpu_us_per_op: Option<f64>,
    pub peak_rss: Option<u64>,
    pub timed_out: bool,
    pub report: Value,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Done(Measured),
    Unimplemented(String),
    Failed(String),
}

/// Everything measured on one server.
#[derive(Debug, Default)]
pub struct ServerRun {
    pub name: String,
    pub version: String,
    pub rows: Vec<(String, Outcome)>,
    pub startup: Option<Duration>,
    pub restart: Option<Result<Duration, String>>,
    pub shutdown: Option<Duration>,
    pub data_dir_bytes: Option<u64>,
    pub rss_after_rows: Option<u64>,
    pub peak_rss_max: Option<u64>,
    pub hwm_reset_works: bool,
    pub keys_after_restart: Option<u64>,
}

/// A server process (etcd or retcd) on `<workdir>/<name>-data` and two free ports, which
/// it keeps across restarts. Killed when dropped.
pub struct ServerProcess {
    name: String,
    bin: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    started: Instant,
}

fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| BenchError::Setup(format!("cannot find a free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| BenchError::Setup(format!("cannot find a free port: {e}")))
}

/// The flags both servers get.
pub fn server_args(data_dir: &Path, client_port: u16, peer_port: u16) -> Vec<String> {
    let c = format!("http://127.0.0.1:{client_port}");
    let p = format!("http://127.0.0.1:{peer_port}");
    vec![
        "--name".into(),
        "default".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
        "--listen-client-urls".into(),
        c.clone(),
        "--advertise-client-urls".into(),
        c,
        "--listen-peer-urls".into(),
        p.clone(),
        "--initial-advertise-peer-urls".into(),
        p.clone(),
        "--initial-cluster".into(),
        format!("default={p}"),
        // room for the 1 GiB defrag row on both (retcd's redb file grows by doubling, so it
        // can be twice the data in use; etcd warns above 8 GiB but takes it)
        "--quota-backend-bytes".into(),
        (8u64 << 30).to_string(),
    ]
}

impl ServerProcess {
    pub fn new(name: &str, bin: &Path, workdir: &Path) -> Result<ServerProcess, BenchError> {
        let client_port = free_port()?;
        let mut peer_port = free_port()?;
        while peer_port == client_port {
            peer_port = free_port()?;
        }
        Ok(ServerProcess {
            name: name.into(),
            bin: bin.to_path_buf(),
            data_dir: workdir.join(format!("{name}-data")),
            log: workdir.join(format!("{name}.log")),
            client_port,
            peer_port,
            child: None,
            started: Instant::now(),
        })
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The running process's id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Starts the process (logs appended to `<workdir>/<name>.log`).
    pub fn start(&mut self) -> Result<(), BenchError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| BenchError::Setup(format!("cannot open {}: {e}", self.log.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| BenchError::Setup(format!("cannot open {}: {e}", self.log.display())))?;
        let mut cmd = std::process::Command::new(&self.bin);
        cmd.args(server_args(&self.data_dir, self.client_port, self.peer_port))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        self.started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| BenchError::Setup(format!("cannot start {}: {e}", self.bin.display())))?;
        self.child = Some(child);
        Ok(())
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until a linearizable Range answers; returns the time since `start`.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, BenchError> {
        let url = self.url();
        loop {
            if probe(&url).await {
                return Ok(self.started.elapsed());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Err(BenchError::Setup(format!(
                    "{} exited ({status}) before serving; log tail:\n{}",
                    self.name,
                    self.log_tail()
                )));
            }
            if self.started.elapsed() > timeout {
                return Err(BenchError::Setup(format!(
                    "{} did not serve within {timeout:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGTERM, then SIGKILL after 30 s; returns how long the stop took.
    pub async fn stop(&mut self) -> Option<Duration> {
        let mut child = self.child.take()?;
        let t = Instant::now();
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn probe(url: &str) -> bool {
    let Ok(ep) = Endpoint::from_shared(url.to_string()) else {
        return false;
    };
    let ep = ep
        .connect_timeout(Duration::from_millis(500))
        .timeout(Duration::from_secs(2));
    let Ok(ch) = ep.connect().await else { return false };
    KvClient::new(ch)
        .range(RangeRequest {
            key: b"bench/ready-probe".to_vec(),
            ..Default::default()
        })
        .await
        .is_ok()
}

async fn count_prefix(url: &str, prefix: &str) -> Option<u64> {
    let ch = Endpoint::from_shared(url.to_string())
        .ok()?
        .connect()
        .await
        .ok()?;
    let key = prefix.as_bytes().to_vec();
    let r = KvClient::new(ch)
        .range(RangeRequest {
            range_end: workloads::prefix_end(&key),
            key,
            count_only: true,
            ..Default::default()
        })
        .await
        .ok()?;
    Some(r.into_inner().count as u64)
}

fn row_globals(g: &GlobalArgs, url: &str, row: &Row) -> GlobalArgs {
    GlobalArgs {
        endpoints: vec![url.to_string()],
        conns: row.conns,
        clients: row.clients,
        request_timeout: Duration::from_secs(600),
        dial_timeout: Duration::from_secs(10),
        json: true,
        no_progress: true,
        ..g.clone()
    }
}

async fn run_row(g: &GlobalArgs, url: &str, row: &Row, deadline: Duration) -> Result<Report, BenchError> {
    let rg = row_globals(g, url, row);
    let conns = Conns::connect(&rg).await?;
    let ctx = Ctx {
        conns,
        clients: row.clients,
        progress: false,
        deadline: Some(deadline),
        request_timeout: Some(rg.request_timeout),
    };
    match &row.work {
        Work::Put(a) => workloads::put(&ctx, a).await,
        Work::Range(a) => {
            // the key the rows read, 256 bytes like the puts (not timed)
            let mut kv = ctx.conns.kv(0);
            kv.put(ctx.conns.req(retcd_api::etcdserverpb::PutRequest {
                key: a.key.clone().into_bytes(),
                value: workloads::random_bytes(256, 9),
                ..Default::default()
            }))
            .await
            .map_err(|s| BenchError::from_status("put the range key", s))?;
            workloads::range(&ctx, a).await
        }
        Work::TxnPut(a) => workloads::txn_put(&ctx, a).await,
        Work::Watch(a) => workloads::watch(&ctx, a).await,
        Work::LeaseKeepalive(a) => workloads::lease_keepalive(&ctx, a).await,
        Work::LeaseGrant(a) => workloads::lease_grant(&ctx, a).await,
        Work::Load(a) => workloads::load(&ctx, a).await,
        Work::Scan(a, mode) => workloads::scan_phase(&ctx, a, *mode).await,
        Work::Defrag(a) => workloads::defrag(&ctx, a).await,
        Work::Compact(a) => workloads::compact(&ctx, a).await,
    }
}

fn measured(
    row: &Row,
    r: &Report,
    cpu: Option<Duration>,
    client_cpu: Option<Duration>,
    peak: Option<u64>,
) -> Measured {
    let ops = match row.work {
        Work::Load(_) => r.extra.get("keys").and_then(Value::as_u64).unwrap_or(0),
        _ => r.main.ok(),
    };
    let rate = match row.work {
        Work::Load(_) => r
            .extra
            .get("keys_per_second")
            .and_then(Value::as_f64)
            .unwrap_or(0.0),
        _ => r.main.rps(),
    };
    Measured {
        ok: r.main.ok(),
        errors: r.main.error_count(),
        rate,
        p99_ms: r.main.percentile_ns(990) as f64 / 1e6,
        server_cpu_us_per_op: cpu
            .filter(|_| ops > 0)
            .map(|c| c.as_secs_f64() * 1e6 / ops as f64),
        client_cpu_us_per_op: client_cpu
            .filter(|_| ops > 0)
            .map(|c| c.as_secs_f64() * 1e6 / ops as f64),
        peak_rss: peak,
        timed_out: r.main.timed_out,
        report: r.to_json(),
    }
}

fn version_of(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let s = String::from_utf8_lossy(&o.stdout).to_string();
            s.lines().next().map(str::to_string)
        })
        .unwrap_or_default()
}

fn selected(filter: &[String], id: &str) -> bool {
    filter.is_empty() || filter.iter().any(|f| id.contains(f.as_str()))
}

async fn run_server(
    g: &GlobalArgs,
    a: &CompareArgs,
    name: &str,
    bin: &Path,
    workdir: &Path,
    rows: &[Row],
) -> Result<ServerRun, BenchError> {
    let ticks = procfs::clock_ticks();
    let mut run = ServerRun {
        name: name.into(),
        version: version_of(bin),
        ..Default::default()
    };
    let mut srv = ServerProcess::new(name, bin, workdir)?;
    srv.start()?;
    let startup = srv.wait_ready(Duration::from_secs(120)).await?;
    run.startup = Some(startup);
    eprintln!(
        "[{name}] pid {} serving on {} after {:.3} s",
        srv.pid().unwrap_or(0),
        srv.url(),
        startup.as_secs_f64()
    );
    let url = srv.url();
    let mut loaded: Option<u64> = None;
    for row in rows {
        let pid = srv.pid().unwrap_or(0);
        run.hwm_reset_works = procfs::reset_peak_rss(pid);
        let me = std::process::id();
        let (cpu0, mine0) = (procfs::cpu_time(pid, ticks), procfs::cpu_time(me, ticks));
        let out = run_row(g, &url, row, a.row_timeout).await;
        let (cpu1, mine1) = (procfs::cpu_time(pid, ticks), procfs::cpu_time(me, ticks));
        let peak = procfs::peak_rss(pid);
        let delta = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
        let (cpu, mine) = (delta(cpu0, cpu1), delta(mine0, mine1));
        let outcome = match out {
            Ok(r) => {
                if let Work::Load(l) = &row.work
                    && r.main.error_count() == 0
                {
                    loaded = Some(l.total);
                }
                Outcome::Done(measured(row, &r, cpu, mine, peak))
            }
            Err(BenchError::Unimplemented(m)) => Outcome::Unimplemented(m),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        match &outcome {
            Outcome::Done(m) => {
                run.peak_rss_max = run.peak_rss_max.max(m.peak_rss);
                eprintln!(
                    "[{name}] {}: {:.0} {} p99 {} server CPU {} (bench {}) peak RSS {}{}",
                    row.label,
                    m.rate,
                    row.unit(),
                    fmt_ms(m.p99_ms),
                    m.server_cpu_us_per_op
                        .map(|c| format!("{c:.1} µs/op"))
                        .unwrap_or("?".into()),
                    m.client_cpu_us_per_op
                        .map(|c| format!("{c:.1} µs/op"))
                        .unwrap_or("?".into()),
                    m.peak_rss.map(procfs::human_bytes).unwrap_or("?".into()),
                    if m.errors > 0 {
                        format!(" ({} errors)", m.errors)
                    } else {
                        String::new()
                    }
                );
            }
            Outcome::Unimplemented(m) => eprintln!("[{name}] {}: unimplemented ({m})", row.label),
            Outcome::Failed(m) => eprintln!("[{name}] {}: FAILED: {m}", row.label),
        }
        run.rows.push((row.id.to_string(), outcome));
        if let Some(c) = srv.child.as_mut()
            && let Ok(Some(st)) = c.try_wait()
        {
            return Err(BenchError::Failed(format!(
                "{name} exited ({st}) during {}; log tail:\n{}",
                row.label,
                srv.log_tail()
            )));
        }
    }
    if let Some(pid) = srv.pid() {
        run.rss_after_rows = procfs::rss(pid);
    }
    run.data_dir_bytes = Some(procfs::disk_usage(&srv.data_dir));
    if selected(&a.rows, RESTART_ID) {
        run.shutdown = srv.stop().await;
        srv.start()?;
        let r = srv.wait_ready(Duration::from_secs(300)).await;
        run.restart = Some(r.as_ref().map(|d| *d).map_err(|e| e.to_string()));
        match &r {
            Ok(d) => eprintln!("[{name}] restarted with the data in {:.3} s", d.as_secs_f64()),
            Err(e) => eprintln!("[{name}] restart failed: {e}"),
        }
        if r.is_ok() && loaded.is_some() {
            run.keys_after_restart = count_prefix(&url, "load/").await;
        }
    }
    srv.stop().await;
    Ok(run)
}

fn default_retcd() -> PathBuf {
    if let Ok(me) = std::env::current_exe()
        && let Some(dir) = me.parent()
    {
        let p = dir.join("retcd");
        if p.is_file() {
            return p;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            let p = d.join("retcd");
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("retcd")
}

/// The machine, for the record: CPUs, model, memory, kernel, disk of the work dir.
pub fn machine_info(workdir: &Path) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    v.push(("nproc".into(), cpus.to_string()));
    if let Ok(s) = std::fs::read_to_string("/proc/cpuinfo")
        && let Some(m) = s.lines().find_map(|l| l.strip_prefix("model name"))
    {
        v.push(("cpu".into(), m.trim_start_matches([' ', '\t', ':']).to_string()));
    }
    if let Ok(s) = std::fs::read_to_string("/proc/meminfo")
        && let Some(b) = procfs::parse_status_kb(&s, "MemTotal")
    {
        v.push(("memory".into(), procfs::human_bytes(b)));
    }
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        v.push(("kernel".into(), s.trim().to_string()));
    }
    if let Ok(o) = std::process::Command::new("df")
        .args(["-h", "--output=source,fstype,size,avail"])
        .arg(workdir)
        .output()
        && let Some(l) = String::from_utf8_lossy(&o.stdout).lines().nth(1)
    {
        v.push((
            format!("disk ({})", workdir.display()),
            l.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
    }
    v
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn fmt_cpu(us: f64) -> String {
    if us >= 100.0 {
        fmt_rate(us)
    } else {
        format!("{us:.1}")
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 100.0 {
        let n = r.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        format!("{r:.2}")
    }
}

fn cell_rate(o: Option<&Outcome>, server: &str) -> String {
    match o {
        None => "–".into(),
        Some(Outcome::Done(m)) => {
            let mut s = fmt_rate(m.rate);
            if m.errors > 0 {
                let _ = write!(s, " ({} errors)", m.errors);
            }
            if m.timed_out {
                s.push_str(" (timed out)");
            }
            s
        }
        Some(Outcome::Unimplemented(_)) => format!("n/a (unimplemented in {server})"),
        Some(Outcome::Failed(e)) => format!("failed: {}", e.lines().next().unwrap_or("")),
    }
}

fn done(o: Option<&Outcome>) -> Option<&Measured> {
    match o {
        Some(Outcome::Done(m)) => Some(m),
        _ => None,
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => format!("{:.2}×", b / a),
        _ => "n/a".into(),
    }
}

fn outcome<'a>(run: Option<&'a ServerRun>, id: &str) -> Option<&'a Outcome> {
    run?.rows.iter().find(|(i, _)| i == id).map(|(_, o)| o)
}

/// One figure of the data/restart table: its text and its value (for the ratio).
type Figure = dyn Fn(&ServerRun) -> Option<(String, f64)>;

/// The comparison as markdown: the main table and the data/restart table.
pub fn render_tables(rows: &[Row], etcd: Option<&ServerRun>, retcd: Option<&ServerRun>) -> String {
    let mut s = String::new();
    s.push_str(
        "| workload | etcd req/s | retcd req/s | ratio (retcd/etcd) | etcd p99 | retcd p99 | etcd CPU µs/req | retcd CPU µs/req | etcd peak RSS | retcd peak RSS |\n",
    );
    s.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for row in rows {
        let (e, r) = (outcome(etcd, row.id), outcome(retcd, row.id));
        if e.is_none() && r.is_none() {
            continue;
        }
        let (em, rm) = (done(e), done(r));
        let p99 = |m: Option<&Measured>| m.map(|m| fmt_ms(m.p99_ms)).unwrap_or("–".into());
        let cpu = |m: Option<&Measured>| {
            m.and_then(|m| m.server_cpu_us_per_op)
                .map(fmt_cpu)
                .unwrap_or("–".into())
        };
        let rss = |m: Option<&Measured>| {
            m.and_then(|m| m.peak_rss)
                .map(procfs::human_bytes)
                .unwrap_or("–".into())
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.label,
            cell_rate(e, "etcd"),
            cell_rate(r, "retcd"),
            ratio(em.map(|m| m.rate), rm.map(|m| m.rate)),
            p99(em),
            p99(rm),
            cpu(em),
            cpu(rm),
            rss(em),
            rss(rm),
        );
    }
    s.push('\n');
    s.push_str("| data and restart | etcd | retcd | retcd / etcd |\n|---|--:|--:|--:|\n");
    let lines: Vec<(&str, Box<Figure>)> = vec![
        (
            "startup on an empty data dir (to first linearizable read)",
            Box::new(|r: &ServerRun| r.startup.map(|d| (fmt_secs(d), d.as_secs_f64()))),
        ),
        (
            "data dir size after the suite",
            Box::new(|r: &ServerRun| r.data_dir_bytes.map(|b| (procfs::human_bytes(b), b as f64))),
        ),
        (
            "RSS after the suite",
            Box::new(|r: &ServerRun| r.rss_after_rows.map(|b| (procfs::human_bytes(b), b as f64))),
        ),
        (
            "peak RSS (highest row)",
            Box::new(|r: &ServerRun| r.peak_rss_max.map(|b| (procfs::human_bytes(b), b as f64))),
        ),
        (
            "shutdown (SIGTERM to exit)",
            Box::new(|r: &ServerRun| r.shutdown.map(|d| (fmt_secs(d), d.as_secs_f64()))),
        ),
        (
            "restart with the data (to first linearizable read)",
            Box::new(|r: &ServerRun| match &r.restart {
                Some(Ok(d)) => Some((fmt_secs(*d), d.as_secs_f64())),
                Some(Err(e)) => Some((format!("failed: {}", e.lines().next().unwrap_or("")), 0.0)),
                None => None,
            }),
        ),
        (
            "longest gap between completed puts during the defrag",
            Box::new(|r: &ServerRun| row_extra(r, "defrag", "max_gap_ms").map(|ms| (fmt_ms(ms), ms))),
        ),
        (
            "defrag duration",
            Box::new(|r: &ServerRun| {
                row_extra(r, "defrag", "defrag_seconds").map(|s| (fmt_secs(Duration::from_secs_f64(s)), s))
            }),
        ),
        (
            "put p99 during the compaction / before it",
            Box::new(|r: &ServerRun| row_extra(r, "compact", "p99_ratio").map(|x| (format!("{x:.2}×"), x))),
        ),
        (
            "compaction duration",
            Box::new(|r: &ServerRun| {
                row_extra(r, "compact", "compaction_seconds")
                    .map(|s| (fmt_secs(Duration::from_secs_f64(s)), s))
            }),
        ),
        (
            "loaded keys counted after restart",
            Box::new(|r: &ServerRun| r.keys_after_restart.map(|n| (n.to_string(), n as f64))),
        ),
    ];
    for (label, f) in lines {
        let (e, r) = (etcd.and_then(&f), retcd.and_then(&f));
        if e.is_none() && r.is_none() {
            continue;
        }
        let ratio = match (&e, &r) {
            (Some((_, a)), Some((_, b))) if *a > 0.0 && *b > 0.0 && !label.starts_with("loaded") => {
                format!("{:.2}", b / a)
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {ratio} |",
            e.map(|x| x.0).unwrap_or("–".into()),
            r.map(|x| x.0).unwrap_or("–".into()),
        );
    }
    s
}

fn run_json(run: &ServerRun) -> Value {
    let rows: serde_json::Map<String, Value> = run
        .rows
        .iter()
        .map(|(id, o)| {
            let v = match o {
                Outcome::Done(m) => json!({
                    "ok": m.ok,
                    "errors": m.errors,
                    "rate": m.rate,
                    "p99_ms": m.p99_ms,
                    "server_cpu_us_per_op": m.server_cpu_us_per_op,
                    "bench_cpu_us_per_op": m.client_cpu_us_per_op,
                    "peak_rss_bytes": m.peak_rss,
                    "timed_out": m.timed_out,
                    "report": m.report,
                }),
                Outcome::Unimplemented(e) => json!({ "unimplemented": e }),
                Outcome::Failed(e) => json!({ "failed": e }),
            };
            (id.clone(), v)
        })
        .collect();
    json!({
        "version": run.version,
        "startup_seconds": run.startup.map(|d| d.as_secs_f64()),
        "restart_seconds": run.restart.as_ref().and_then(|r| r.as_ref().ok()).map(|d| d.as_secs_f64()),
        "restart_error": run.restart.as_ref().and_then(|r| r.as_ref().err()),
        "shutdown_seconds": run.shutdown.map(|d| d.as_secs_f64()),
        "data_dir_bytes": run.data_dir_bytes,
        "rss_after_rows_bytes": run.rss_after_rows,
        "peak_rss_max_bytes": run.peak_rss_max,
        "peak_rss_per_row": run.hwm_reset_works,
        "keys_after_restart": run.keys_after_restart,
        "rows": rows,
    })
}

fn make_workdir(a: &CompareArgs) -> Result<PathBuf, BenchError> {
    let base = a.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let dir = base.join(format!("retcd-bench-{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::Setup(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// `retcd-bench compare`.
pub async fn run(g: &GlobalArgs, a: &CompareArgs) -> Result<(), BenchError> {
    let all_rows = suite(a.quick);
    if a.list_rows {
        for r in &all_rows {
            crate::print_out(&format!("{:<16} {}\n", r.id, r.label));
        }
        crate::print_out(&format!(
            "{RESTART_ID:<16} stop the server and time its restart with the data\n"
        ));
        return Ok(());
    }
    let rows: Vec<Row> = all_rows.into_iter().filter(|r| selected(&a.rows, r.id)).collect();
    let retcd_bin = a.retcd.clone().unwrap_or_else(default_retcd);
    let mut plan = Vec::new();
    for s in &a.servers {
        let bin = match s.as_str() {
            "etcd" => a.etcd.clone(),
            "retcd" => retcd_bin.clone(),
            other => {
                return Err(BenchError::Setup(format!(
                    "unknown server {other:?} (etcd or retcd)"
                )));
            }
        };
        if !bin.is_file() {
            return Err(BenchError::Setup(format!(
                "{s} binary {} not found",
                bin.display()
            )));
        }
        plan.push((s.clone(), bin));
    }
    let workdir = make_workdir(a)?;
    eprintln!("work dir: {}", workdir.display());
    let mut runs: Vec<ServerRun> = Vec::new();
    let mut failure = None;
    for (name, bin) in &plan {
        match run_server(g, a, name, bin, &workdir, &rows).await {
            Ok(r) => runs.push(r),
            Err(e) => {
                eprintln!("[{name}] {e}");
                failure = Some(e);
            }
        }
    }
    let etcd = runs.iter().find(|r| r.name == "etcd");
    let retcd = runs.iter().find(|r| r.name == "retcd");
    let machine = machine_info(&workdir);
    if g.json {
        let servers: serde_json::Map<String, Value> =
            runs.iter().map(|r| (r.name.clone(), run_json(r))).collect();
        let rows_json: Vec<Value> = rows
            .iter()
            .map(|r| json!({"id": r.id, "label": r.label, "unit": r.unit(), "conns": r.conns, "clients": r.clients}))
            .collect();
        let machine_json: serde_json::Map<String, Value> =
            machine.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let all = json!({
            "quick": a.quick,
            "machine": machine_json,
            "rows": rows_json,
            "servers": servers,
        });
        crate::print_out(&format!("{all}\n"));
    }
    let mut md = String::new();
    let _ = writeln!(md, "Machine:");
    for (k, v) in &machine {
        let _ = writeln!(md, "- {k}: {v}");
    }
    for r in &runs {
        let _ = writeln!(md, "- {}: {} ({})", r.name, r.version, plan_bin(&plan, &r.name));
    }
    md.push('\n');
    md.push_str(&render_tables(&rows, etcd, retcd));
    if !runs.iter().all(|r| r.hwm_reset_works) {
        md.push_str("\n(peak RSS could not be reset per row: the figures are peaks since start)\n");
    }
    if !g.json {
        crate::print_out(&format!("{md}\n"));
    }
    if let Some(out) = &a.out {
        std::fs::write(out, &md)
            .map_err(|e| BenchError::Setup(format!("cannot write {}: {e}", out.display())))?;
    }
    if a.keep {
        eprintln!("kept {}", workdir.display());
    } else {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    match failure {
        Some(e) if runs.is_empty() => Err(e),
        _ => Ok(()),
    }
}

fn plan_bin(plan: &[(String, PathBuf)], name: &str) -> String {
    plan.iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b.display().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_have_every_row() {
        let full = suite(false);
        let quick = suite(true);
        let ids: Vec<&str> = full.iter().map(|r| r.id).collect();
        assert_eq!(ids, quick.iter().map(|r| r.id).collect::<Vec<_>>());
        for id in [
            "put-1x1",
            "put-hot",
            "put-distinct",
            "range-l",
            "range-s",
            "txn-put",
            "watch",
            "load",
            "scan-count",
            "scan-keys",
            "scan-full",
        ] {
            assert!(ids.contains(&id), "{id}");
        }
        let load = |rows: &[Row]| {
            rows.iter()
                .find_map(|r| match &r.work {
                    Work::Load(l) => Some(l.total),
                    _ => None,
                })
                .unwrap()
        };
        assert_eq!(load(&full), 1_000_000);
        assert!(load(&quick) < 1_000_000);
    }

    #[test]
    fn same_flags_for_both_servers() {
        let a = server_args(Path::new("/d"), 2379, 2380);
        assert_eq!(
            a.join(" "),
            "--name default --data-dir /d --listen-client-urls http://127.0.0.1:2379 \
             --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
             --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster default=http://127.0.0.1:2380 \
             --quota-backend-bytes 8589934592"
        );
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_rate(1234567.4), "1,234,567");
        assert_eq!(fmt_rate(999.0), "999");
        assert_eq!(fmt_rate(12.345), "12.35");
        assert_eq!(fmt_ms(1.234), "1.23 ms");
        assert_eq!(fmt_ms(12.34), "12.3 ms");
        assert_eq!(fmt_ms(2345.0), "2.35 s");
        assert_eq!(human_count(10_000), "10k");
        assert_eq!(human_count(1_000_000), "1M");
        assert_eq!(ratio(Some(100.0), Some(250.0)), "2.50×");
        assert_eq!(ratio(None, Some(250.0)), "n/a");
    }

    #[test]
    fn table_marks_unimplemented_rows() {
        let rows = suite(true);
        let m = Measured {
            ok: 10,
            errors: 0,
            rate: 1000.0,
            p99_ms: 2.0,
            server_cpu_us_per_op: Some(50.0),
            client_cpu_us_per_op: None,
            peak_rss: Some(10 << 20),
            timed_out: false,
            report: Value::Null,
        };
        let etcd = ServerRun {
            name: "etcd".into(),
            rows: vec![
                ("watch".into(), Outcome::Done(m.clone())),
                ("put-1x1".into(), Outcome::Done(m.clone())),
            ],
            ..Default::default()
        };
        let mut m2 = m.clone();
        m2.rate = 2500.0;
        let retcd = ServerRun {
            name: "retcd".into(),
            rows: vec![
                ("watch".into(), Outcome::Unimplemented("x".into())),
                ("put-1x1".into(), Outcome::Done(m2)),
            ],
            ..Default::default()
        };
        let t = render_tables(&rows, Some(&etcd), Some(&retcd));
        assert!(t.contains("n/a (unimplemented in retcd)"), "{t}");
        assert!(t.contains("| 1,000 | 2,500 | 2.50× |"), "{t}");
        assert!(!t.contains("txn-put"), "rows that did not run are left out: {t}");
    }

    #[test]
    fn row_filter() {
        assert!(selected(&[], "put-hot"));
        assert!(selected(&["put".into()], "put-hot"));
        assert!(!selected(&["scan".into()], "put-hot"));
    }
}
