//! `check perf` and `check datascale`, as etcdctl 3.4's `ctlv3/command/check.go`.
//!
//! perf: for 60 s, put 256-byte keys (the prefix, then a random varint, zero padded) with
//! 1 KiB values at the load's rate through as many clients (connections) as the load says;
//! then delete them and judge throughput (over 90 % of the rate), the slowest request
//! (at most 0.5 s) and the standard deviation (at most 0.1 s) as etcdctl does, with its
//! PASS/FAIL lines and exit code. datascale: put the load's number of 512+512-byte pairs and
//! report how much the first endpoint's `process_resident_memory_bytes` (from its /metrics)
//! grew. Both refuse a prefix that already has keys, and can compact (`--auto-compact`) and
//! defragment (`--auto-defrag`) afterwards. etcdctl's progress bar (printed on stdout even
//! when it is a pipe) is shown only when stdout is a terminal.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use retcd_api::etcdserverpb::{
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};
use tokio::sync::Mutex;

use super::{Ctx, key_range};
use crate::cli::{CheckArgs, CheckCmd};
use crate::client::{Client, Settings, prompt_password};
use crate::error::{CtlError, exit, status_message};
use crate::gofmt::quote;

/// A `check perf` workload: puts per second, clients, seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerfLoad {
    pub limit: usize,
    pub clients: usize,
    pub duration: u64,
}

/// etcdctl 3.4's perf workloads.
pub fn perf_load(name: &str) -> Option<PerfLoad> {
    let (limit, clients) = match name {
        "s" => (150, 50),
        "m" => (1000, 200),
        "l" => (8000, 500),
        "xl" => (15000, 1000),
        _ => return None,
    };
    Some(PerfLoad {
        limit,
        clients,
        duration: 60,
    })
}

/// A `check datascale` workload: key-value pairs, bytes per pair, clients.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DatascaleLoad {
    pub limit: usize,
    pub kv_size: usize,
    pub clients: usize,
}

/// etcdctl 3.4's datascale workloads.
pub fn datascale_load(name: &str) -> Option<DatascaleLoad> {
    let (limit, clients) = match name {
        "s" => (10_000, 50),
        "m" => (100_000, 200),
        "l" => (1_000_000, 500),
        "xl" => (3_000_000, 1000),
        _ => return None,
    };
    Some(DatascaleLoad {
        limit,
        kv_size: 1024,
        clients,
    })
}

/// The test hook shortening `check perf` (seconds; tests only, not a flag).
const TEST_DURATION_VAR: &str = "RETCDCTL_TEST_CHECK_PERF_SECONDS";

/// etcd's `pkg/report` statistics of a run (latencies in seconds).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub rps: f64,
    pub slowest: f64,
    pub stddev: f64,
    /// error message → count
    pub errors: BTreeMap<String, u64>,
}

impl Stats {
    /// From the successful requests' latencies, the failures and the run's length.
    pub fn new(lats: &[f64], errors: BTreeMap<String, u64>, total: Duration) -> Stats {
        let n = lats.len() as f64;
        let average = lats.iter().sum::<f64>() / n;
        let stddev = (lats.iter().map(|l| (l - average).powi(2)).sum::<f64>() / n).sqrt();
        Stats {
            rps: n / total.as_secs_f64(),
            slowest: lats.iter().copied().fold(0.0, f64::max),
            stddev,
            errors,
        }
    }
}

fn error_lines(errors: &BTreeMap<String, u64>) -> Vec<String> {
    let mut out = vec!["FAIL: too many errors".to_string()];
    out.extend(errors.iter().map(|(e, n)| format!("FAIL: ERROR({e}) -> {n}")));
    out
}

/// etcdctl's verdict on a perf run: the lines to print and whether it passed.
pub fn perf_verdict(s: &Stats, limit: usize) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    if !s.errors.is_empty() {
        lines.extend(error_lines(&s.errors));
        ok = false;
    }
    let rps = s.rps as i64 + 1;
    if s.rps / limit as f64 <= 0.9 {
        lines.push(format!("FAIL: Throughput too low: {rps} writes/s"));
        ok = false;
    } else {
        lines.push(format!("PASS: Throughput is {rps} writes/s"));
    }
    if s.slowest > 0.5 {
        lines.push(format!("Slowest request took too long: {:.6}s", s.slowest));
        ok = false;
    } else {
        lines.push(format!("PASS: Slowest request took {:.6}s", s.slowest));
    }
    if s.stddev > 0.1 {
        lines.push(format!("Stddev too high: {:.6}s", s.stddev));
        ok = false;
    } else {
        // with no successful request this is NaN, which Rust prints as Go does
        lines.push(format!("PASS: Stddev is {:.6}s", s.stddev));
    }
    lines.push(if ok { "PASS" } else { "FAIL" }.to_string());
    (lines, ok)
}

/// The datascale result line (memory in bytes before and after the puts).
pub fn datascale_line(before: f64, after: f64) -> String {
    let mb = (after - before) / (1024.0 * 1024.0);
    format!("PASS: Approximate system memory used : {mb:.2} MB.")
}

/// Go's `binary.PutVarint` of a non-negative number into the front of `buf`.
fn put_varint(buf: &mut [u8], x: i64) {
    let mut ux = (x as u64) << 1; // zig-zag of a non-negative number
    let mut i = 0;
    while ux >= 0x80 {
        buf[i] = ux as u8 | 0x80;
        ux >>= 7;
        i += 1;
    }
    buf[i] = ux as u8;
}

/// A small xorshift generator for the keys (seeded from the clock and the process id).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(t ^ (u64::from(std::process::id()) << 32) | 1)
    }
    fn next_i63(&mut self) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 1) as i64
    }
}

/// A key of `size` bytes: `prefix` then a random varint, zero padded (as etcdctl).
fn random_key(rng: &mut Rng, prefix: &str, size: usize) -> Vec<u8> {
    let mut k = vec![0u8; size];
    put_varint(&mut k, rng.next_i63());
    [prefix.as_bytes(), &k].concat()
}

/// etcdctl's progress bar (cheggaaa/pb with `Bom !`), drawn only when stdout is a terminal.
struct Bar {
    on: bool,
    total: u64,
    start: Instant,
}

impl Bar {
    fn new(total: u64) -> Bar {
        Bar {
            on: std::io::stdout().is_terminal(),
            total,
            start: Instant::now(),
        }
    }

    fn draw(&self, cur: u64) {
        if !self.on {
            return;
        }
        let cur = cur.min(self.total);
        let pct = cur as f64 * 100.0 / self.total.max(1) as f64;
        const WIDTH: usize = 40;
        let filled = (cur as usize * WIDTH) / self.total.max(1) as usize;
        let bar = if filled == 0 {
            " ".repeat(WIDTH)
        } else {
            format!("{}m{}", "o".repeat(filled - 1), " ".repeat(WIDTH - filled))
        };
        let elapsed = self.start.elapsed().as_secs_f64();
        let eta = if cur > 0 && cur < self.total {
            let left = elapsed / cur as f64 * (self.total - cur) as f64;
            format!(" {:02}m{:02}s", left as u64 / 60, left as u64 % 60)
        } else {
            String::new()
        };
        print!("\r{cur} / {} B{bar}! {pct:.2}%{eta}", self.total);
        let _ = std::io::stdout().flush();
    }

    fn finish(&self) {
        if self.on {
            self.draw(self.total);
            println!();
        }
    }
}

/// Connects `n` clients (each its own connection, as etcdctl's `mustClient` per client),
/// asking for a `--user` password only once; returns them with the settings they used.
async fn clients(ctx: &Ctx, n: usize) -> Result<(Vec<Arc<Client>>, Settings), CtlError> {
    let mut settings = ctx.settings.clone();
    if let Some(user) = &settings.user
        && settings.password.is_none()
        && !user.contains(':')
    {
        settings.password = Some(prompt_password("Password: ")?);
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Arc::new(Client::connect(&settings).await?));
    }
    Ok((v, settings))
}

/// Refuses a prefix that has keys (etcdctl's exit 3).
async fn check_empty(c: &Client, prefix: &str, timeout: Option<Duration>) -> Result<(), CtlError> {
    let req = RangeRequest {
        key: key_range(prefix.as_bytes(), true, false).0,
        range_end: key_range(prefix.as_bytes(), true, false).1,
        limit: 1,
        ..Default::default()
    };
    let resp = c
        .call_within(timeout.unwrap_or(Duration::MAX), c.kv().range(req))
        .await?;
    if !resp.kvs.is_empty() {
        return Err(CtlError::InvalidInput(format!(
            "prefix {} has keys. Delete with etcdctl del --prefix {prefix} first",
            quote(prefix.as_bytes())
        )));
    }
    Ok(())
}

/// What the workers record.
#[derive(Default)]
struct Results {
    lats: Vec<f64>,
    errors: BTreeMap<String, u64>,
    done: u64,
}

/// Runs `ops` through the clients, one worker per client; `on_done` sees the count of
/// finished requests. Returns the results and the run's length.
async fn run_workers(
    clients: &[Arc<Client>],
    ops: tokio::sync::mpsc::Receiver<PutRequest>,
) -> (Arc<std::sync::Mutex<Results>>, Vec<tokio::task::JoinHandle<()>>) {
    let ops = Arc::new(Mutex::new(ops));
    let results = Arc::new(std::sync::Mutex::new(Results::default()));
    let mut handles = Vec::new();
    for c in clients {
        let (c, ops, results) = (c.clone(), ops.clone(), results.clone());
        handles.push(tokio::spawn(async move {
            let mut kv = c.kv();
            loop {
                let Some(op) = ops.lock().await.recv().await else {
                    return;
                };
                let st = Instant::now();
                let r = kv.put(op).await;
                let lat = st.elapsed().as_secs_f64();
                let mut res = results.lock().unwrap_or_else(|e| e.into_inner());
                res.done += 1;
                match r {
                    Ok(_) => res.lats.push(lat),
                    Err(s) => *res.errors.entry(status_message(&s)).or_default() += 1,
                }
            }
        }));
    }
    (results, handles)
}

/// Deletes the check's keys; returns the revision of the delete.
async fn cleanup(c: &Client, prefix: &str) -> Result<i64, CtlError> {
    let req = DeleteRangeRequest {
        key: key_range(prefix.as_bytes(), true, false).0,
        range_end: key_range(prefix.as_bytes(), true, false).1,
        ..Default::default()
    };
    let r = c
        .call_within(Duration::from_secs(30), c.kv().delete_range(req))
        .await?;
    Ok(r.header.map_or(0, |h| h.revision))
}

/// `--auto-compact` and `--auto-defrag` after a check, with etcdctl's lines.
async fn compact_and_defrag(
    settings: &Settings,
    c: &Client,
    a: &CheckArgs,
    rev: Option<i64>,
) -> Result<(), CtlError> {
    if let (true, Some(rev)) = (a.auto_compact, rev) {
        println!("Compacting with revision {rev}");
        c.call_within(
            Duration::from_secs(30),
            c.kv().compact(CompactionRequest {
                revision: rev,
                physical: true,
            }),
        )
        .await?;
        println!("Compacted with revision {rev}");
    }
    if a.auto_defrag {
        for ep in &settings.prepare()? {
            println!("Defragmenting {}", quote(ep.as_bytes()));
            let d = Client::connect_to(settings, std::slice::from_ref(ep), true).await?;
            d.call_within(
                Duration::from_secs(30),
                d.maintenance().defragment(DefragmentRequest {}),
            )
            .await?;
            println!("Defragmented {}", quote(ep.as_bytes()));
        }
    }
    Ok(())
}

/// `check perf|datascale`.
pub async fn check(ctx: &Ctx, cmd: &CheckCmd) -> Result<(), CtlError> {
    match cmd {
        CheckCmd::Perf { prefix, load, args } => perf(ctx, prefix, load, args).await,
        CheckCmd::Datascale { prefix, load, args } => datascale(ctx, prefix, load, args).await,
    }
}

async fn perf(ctx: &Ctx, prefix: &str, load_name: &str, a: &CheckArgs) -> Result<(), CtlError> {
    let Some(mut load) = perf_load(load_name) else {
        return Err(CtlError::BadFeature(format!("unknown load option {load_name}")));
    };
    if let Some(secs) = std::env::var(TEST_DURATION_VAR).ok().and_then(|s| s.parse().ok()) {
        load.duration = secs;
    }
    let (clients, settings) = clients(ctx, load.clients).await?;
    let duration = Duration::from_secs(load.duration);
    check_empty(&clients[0], prefix, Some(duration)).await?;
    let deadline = tokio::time::Instant::now() + duration;

    let (tx, rx) = tokio::sync::mpsc::channel(load.clients);
    let bar = Arc::new(Bar::new(load.duration));
    let start = Instant::now();
    let (results, workers) = run_workers(&clients, rx).await;
    // the generator: `limit` puts a second (a limiter with a burst of 1) until the deadline
    // or Ctrl-C (which also deletes the keys at once, as etcdctl)
    let generator = {
        let prefix = prefix.to_string();
        let cleaner = clients[0].clone();
        tokio::spawn(async move {
            let mut rng = Rng::new();
            let value = vec![0u8; 1024];
            // as Go's limiter: a token at once, then one per period, the last one due at the
            // deadline included; when the workers lag, no more than one token waits
            let mut tick = tokio::time::interval_at(
                deadline - duration,
                Duration::from_secs_f64(1.0 / load.limit as f64),
            );
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
            let int = async {
                match sigint.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::pin!(int);
            loop {
                let due = tokio::select! {
                    due = tick.tick() => due,
                    _ = &mut int => {
                        let _ = cleanup(&cleaner, &prefix).await;
                        break;
                    }
                };
                if due > deadline {
                    break;
                }
                let op = PutRequest {
                    key: random_key(&mut rng, &prefix, 256),
                    value: value.clone(),
                    ..Default::default()
                };
                if tx.send(op).await.is_err() {
                    break;
                }
            }
        })
    };
    let ticker = {
        let bar = bar.clone();
        tokio::spawn(async move {
            for i in 0..=load.duration {
                bar.draw(i);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let _ = generator.await;
    for w in workers {
        let _ = w.await;
    }
    let total = start.elapsed();
    ticker.abort();
    bar.finish();
    let res = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let stats = Stats::new(&res.lats, res.errors, total);

    match cleanup(&clients[0], prefix).await {
        Ok(rev) => compact_and_defrag(&settings, &clients[0], a, Some(rev)).await?,
        Err(e) => {
            println!("FAIL: Cleanup failed during key deletion: ERROR({e})");
            compact_and_defrag(&settings, &clients[0], a, None).await?;
        }
    }
    let (lines, ok) = perf_verdict(&stats, load.limit);
    for l in lines {
        println!("{l}");
    }
    if !ok {
        let _ = std::io::stdout().flush();
        std::process::exit(exit::ERROR);
    }
    Ok(())
}

/// `process_resident_memory_bytes` from `host`'s /metrics, or the line etcdctl prints when
/// it cannot be read.
async fn resident_memory(ctx: &Ctx, host: &str) -> Result<f64, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const KEY: &str = "process_resident_memory_bytes";
    let url = if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else {
        format!("http://{host}")
    };
    let full = format!("{url}/metrics");
    let (tls, authority) = match url.split_once("://") {
        Some(("https", rest)) => (true, rest.trim_end_matches('/').to_string()),
        Some((_, rest)) => (false, rest.trim_end_matches('/').to_string()),
        None => (false, url.clone()),
    };
    let fetch_err = |e: String| format!("fetch error: Get {full}: {e}");
    let tcp = tokio::net::TcpStream::connect(&authority).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::ConnectionRefused {
            fetch_err(format!("dial tcp {authority}: connect: connection refused"))
        } else {
            fetch_err(format!("dial tcp {authority}: {e}"))
        }
    })?;
    let request =
        format!("GET /metrics HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: Go-http-client/1.1\r\n\r\n");
    let mut body = Vec::new();
    if tls {
        let tls_settings = &ctx.settings.tls;
        let cfg = retcd_tls::client_config(&retcd_tls::ClientTlsOptions {
            ca_file: tls_settings.cacert.as_ref().map(Into::into),
            cert_file: tls_settings.cert.as_ref().map(Into::into),
            key_file: tls_settings.key.as_ref().map(Into::into),
            insecure_skip_verify: tls_settings.insecure_skip_verify,
            ..Default::default()
        })
        .map_err(|e| format!("client certificate error: {e}"))?;
        let mut cfg = (*cfg).clone();
        cfg.alpn_protocols.clear();
        let host = authority.rsplit_once(':').map_or(authority.as_str(), |(h, _)| h);
        let name = retcd_tls::rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| fetch_err(e.to_string()))?;
        let mut s = retcd_tls::tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| fetch_err(e.to_string()))?;
        s.write_all(request.as_bytes())
            .await
            .map_err(|e| fetch_err(e.to_string()))?;
        let _ = s.read_to_end(&mut body).await;
    } else {
        let mut s = tcp;
        s.write_all(request.as_bytes())
            .await
            .map_err(|e| fetch_err(e.to_string()))?;
        s.read_to_end(&mut body)
            .await
            .map_err(|e| format!("fetch error: reading {full}: {e}"))?;
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.split_once("\r\n\r\n").map_or(&*text, |(_, b)| b);
    let value = text
        .split('\n')
        .find_map(|l| l.strip_prefix(KEY))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("could not find: {KEY}"))?;
    value.parse::<f64>().map_err(|_| {
        format!(
            "parse error: strconv.ParseFloat: parsing {}: invalid syntax",
            quote(value.as_bytes())
        )
    })
}

/// etcdctl's `endpointMemoryMetrics`: 0 (after printing why) when it cannot be read.
async fn memory_or_zero(ctx: &Ctx, host: &str) -> f64 {
    match resident_memory(ctx, host).await {
        Ok(v) => v,
        Err(line) => {
            println!("{line}");
            0.0
        }
    }
}

async fn datascale(ctx: &Ctx, prefix: &str, load_name: &str, a: &CheckArgs) -> Result<(), CtlError> {
    let Some(load) = datascale_load(load_name) else {
        return Err(CtlError::BadFeature(format!("unknown load option {load_name}")));
    };
    let (clients, settings) = clients(ctx, load.clients).await?;
    let ep = ctx.settings.prepare()?.first().cloned().unwrap_or_default();
    check_empty(&clients[0], prefix, None).await?;
    let fail = |line: &str| -> ! {
        println!("{line}");
        let _ = std::io::stdout().flush();
        std::process::exit(exit::ERROR);
    };
    let before = memory_or_zero(ctx, &ep).await;
    if before == 0.0 {
        fail("FAIL: Could not read process_resident_memory_bytes before the put operations.");
    }
    println!(
        "Start data scale check for work load [{} key-value pairs, {} bytes per key-value, {} concurrent clients].",
        load.limit, load.kv_size, load.clients
    );
    let bar = Arc::new(Bar::new(load.limit as u64));
    let (tx, rx) = tokio::sync::mpsc::channel(load.clients);
    let (results, workers) = run_workers(&clients, rx).await;
    let generator = {
        let prefix = prefix.to_string();
        tokio::spawn(async move {
            let mut rng = Rng::new();
            let value = vec![0u8; 512];
            for _ in 0..load.limit {
                let op = PutRequest {
                    key: random_key(&mut rng, &prefix, 512),
                    value: value.clone(),
                    ..Default::default()
                };
                if tx.send(op).await.is_err() {
                    return;
                }
            }
        })
    };
    let drawer = {
        let (bar, results) = (bar.clone(), results.clone());
        tokio::spawn(async move {
            loop {
                bar.draw(results.lock().unwrap_or_else(|e| e.into_inner()).done);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let _ = generator.await;
    for w in workers {
        let _ = w.await;
    }
    drawer.abort();
    bar.finish();
    let res = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));

    let after = memory_or_zero(ctx, &ep).await;
    if after == 0.0 {
        fail("FAIL: Could not read process_resident_memory_bytes after the put operations.");
    }
    let req = DeleteRangeRequest {
        key: key_range(prefix.as_bytes(), true, false).0,
        range_end: key_range(prefix.as_bytes(), true, false).1,
        ..Default::default()
    };
    let c = &clients[0];
    let rev = c
        .call_within(Duration::MAX, c.kv().delete_range(req))
        .await?
        .header
        .map_or(0, |h| h.revision);
    compact_and_defrag(&settings, c, a, Some(rev)).await?;
    if !res.errors.is_empty() {
        for l in error_lines(&res.errors) {
            println!("{l}");
        }
        fail_exit();
    }
    println!("{}", datascale_line(before, after));
    Ok(())
}

fn fail_exit() -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(exit::ERROR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_as_etcdctl() {
        assert_eq!(
            perf_load("s"),
            Some(PerfLoad {
                limit: 150,
                clients: 50,
                duration: 60
            })
        );
        assert_eq!(perf_load("xl").map(|l| (l.limit, l.clients)), Some((15000, 1000)));
        assert_eq!(perf_load("x"), None);
        assert_eq!(
            datascale_load("m").map(|l| (l.limit, l.clients)),
            Some((100_000, 200))
        );
        assert_eq!(datascale_load("xl").map(|l| l.limit), Some(3_000_000));
    }

    #[test]
    fn a_good_run_passes() {
        let lats = vec![0.002; 9000];
        let s = Stats::new(&lats, BTreeMap::new(), Duration::from_secs(60));
        let (lines, ok) = perf_verdict(&s, 150);
        assert!(ok);
        assert_eq!(
            lines,
            [
                "PASS: Throughput is 151 writes/s",
                "PASS: Slowest request took 0.002000s",
                "PASS: Stddev is 0.000000s",
                "PASS"
            ]
        );
    }

    #[test]
    fn slow_or_failing_runs_fail() {
        let mut lats = vec![0.01; 4000];
        lats.push(0.9);
        let mut errors = BTreeMap::new();
        errors.insert("etcdserver: request timed out".to_string(), 3);
        let s = Stats::new(&lats, errors, Duration::from_secs(60));
        let (lines, ok) = perf_verdict(&s, 150);
        assert!(!ok);
        assert_eq!(
            lines,
            [
                "FAIL: too many errors",
                "FAIL: ERROR(etcdserver: request timed out) -> 3",
                "FAIL: Throughput too low: 67 writes/s",
                "Slowest request took too long: 0.900000s",
                "PASS: Stddev is 0.014069s",
                "FAIL"
            ]
        );
        let spread: Vec<f64> = (0..9000).map(|i| if i % 2 == 0 { 0.0 } else { 0.45 }).collect();
        let s = Stats::new(&spread, BTreeMap::new(), Duration::from_secs(60));
        let (lines, ok) = perf_verdict(&s, 150);
        assert!(!ok);
        assert_eq!(lines[2], "Stddev too high: 0.225000s");
    }

    #[test]
    fn datascale_result() {
        assert_eq!(
            datascale_line(30.0 * 1048576.0, 68.09 * 1048576.0),
            "PASS: Approximate system memory used : 38.09 MB."
        );
    }

    #[test]
    fn keys_like_etcdctl() {
        let mut k = [0u8; 4];
        put_varint(&mut k, 300);
        assert_eq!(k, [0xd8, 0x04, 0, 0]);
        let key = random_key(&mut Rng::new(), "/p/", 256);
        assert_eq!(key.len(), 3 + 256);
        assert!(key.starts_with(b"/p/"));
    }
}
