//! The workloads: put, range, txn-put, txn-mixed, load, scan, watch, watch-latency and
//! lease-keepalive, each timed with [`crate::driver::drive`] and summarised in a [`Report`].
//!
//! Keys and values follow etcd's `tools/benchmark`: put/txn keys are `--key-size` bytes
//! holding the Go `binary.PutVarint` encoding of the key number (zero padded), values are
//! one random `--val-size` byte string shared by every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use retcd_api::etcdserverpb::request_op::Request as Op;
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WatchCreateRequest, WatchRequest,
};
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, mpsc};
use tonic::Code;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;

use crate::BenchError;
use crate::args::{
    CompactArgs, Consistency, DefragArgs, LeaseGrantArgs, LeaseKeepaliveArgs, LoadArgs, PutArgs, RangeArgs,
    ScanArgs, TxnMixedArgs, TxnPutArgs, WatchArgs, WatchLatencyArgs,
};
use crate::client::Conns;
use crate::driver::{Driven, RunOpts, drive};
use crate::stats::Stats;

/// Where and how a workload runs.
#[derive(Clone)]
pub struct Ctx {
    pub conns: Conns,
    /// Concurrent clients.
    pub clients: u64,
    /// Progress bar on stderr.
    pub progress: bool,
    /// Stop each timed phase after this long.
    pub deadline: Option<Duration>,
    /// Per-request timeout.
    pub request_timeout: Option<Duration>,
}

impl Ctx {
    fn opts(&self, total: u64, rate: f64) -> RunOpts {
        RunOpts {
            clients: self.clients,
            total,
            rate,
            progress: self.progress,
            deadline: self.deadline,
            request_timeout: self.request_timeout,
        }
    }
}

/// The outcome of one workload: its main figures, its named phases (if it has several)
/// and extra facts (key counts, sizes).
#[derive(Debug, Clone)]
pub struct Report {
    pub workload: String,
    pub main: Stats,
    pub phases: Vec<(String, Stats)>,
    pub extra: Map<String, Value>,
}

impl Report {
    fn single(workload: &str, main: Stats) -> Report {
        Report {
            workload: workload.into(),
            main,
            phases: Vec::new(),
            extra: Map::new(),
        }
    }

    /// The named phase's statistics.
    pub fn phase(&self, name: &str) -> Option<&Stats> {
        self.phases.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// One JSON object: the main figures at top level (`workload`, `total`, `errors`,
    /// `seconds`, `requests_per_second`, `latency_ms`), then `phases` and the extras.
    pub fn to_json(&self) -> Value {
        let mut o = match self.main.to_json() {
            Value::Object(o) => o,
            _ => Map::new(),
        };
        o.insert("workload".into(), json!(self.workload));
        if !self.phases.is_empty() {
            let phases: Map<String, Value> = self
                .phases
                .iter()
                .map(|(n, s)| (n.clone(), s.to_json()))
                .collect();
            o.insert("phases".into(), Value::Object(phases));
        }
        for (k, v) in &self.extra {
            o.insert(k.clone(), v.clone());
        }
        Value::Object(o)
    }

    /// etcd-style text: one report per phase (or just the main one).
    pub fn render(&self) -> String {
        let mut s = String::new();
        if self.phases.is_empty() {
            s.push_str(&self.main.render());
        } else {
            for (name, st) in &self.phases {
                s.push_str(&format!("\n{name} summary:"));
                s.push_str(&st.render());
            }
        }
        for (k, v) in &self.extra {
            s.push_str(&format!("\n{k}: {v}"));
        }
        s.push('\n');
        s
    }
}

/// Deterministic per-request randomness (splitmix64), so request closures need no state.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `n` random bytes.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 8);
    let mut s = seed;
    while v.len() < n {
        s = mix(s);
        v.extend_from_slice(&s.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Go's `binary.PutVarint` (zig-zag, then LEB128).
pub fn put_varint(buf: &mut [u8], x: i64) -> usize {
    let mut ux = ((x as u64) << 1) ^ ((x >> 63) as u64);
    let mut i = 0;
    while ux >= 0x80 {
        buf[i] = (ux as u8) | 0x80;
        ux >>= 7;
        i += 1;
    }
    buf[i] = ux as u8;
    i + 1
}

/// Bytes Go's `PutVarint` needs for `x`.
pub fn varint_len(x: i64) -> usize {
    let mut b = [0u8; 10];
    put_varint(&mut b, x)
}

/// etcd benchmark key number `n`: `key_size` bytes, varint of `n` then zeros.
pub fn varint_key(n: u64, key_size: usize) -> Vec<u8> {
    let mut k = vec![0u8; key_size.max(10)];
    put_varint(&mut k, n as i64);
    k.truncate(key_size);
    k
}

fn check_key_space(key_size: u64, key_space_size: u64) -> Result<(), BenchError> {
    let need = varint_len(key_space_size.saturating_sub(1) as i64) as u64;
    if key_size < need {
        return Err(BenchError::Setup(format!(
            "--key-size {key_size} is too small for --key-space-size {key_space_size} (needs {need})"
        )));
    }
    Ok(())
}

/// `load`/`scan` key `i`: the prefix then the zero-padded decimal number.
pub fn load_key(prefix: &str, i: u64, key_size: u64, total: u64) -> Vec<u8> {
    let digits = total.saturating_sub(1).max(1).ilog10() as usize + 1;
    let width = (key_size as usize).saturating_sub(prefix.len()).max(digits);
    format!("{prefix}{i:0width$}").into_bytes()
}

/// The end of the range holding every key with this prefix (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.last_mut() {
        if *last < 0xff {
            *last += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

fn finish(workload: &str, d: Driven) -> Result<Report, BenchError> {
    if d.all.ok() == 0
        && let Some(u) = d.unimplemented
    {
        return Err(BenchError::Unimplemented(u));
    }
    Ok(Report::single(workload, d.all))
}

fn put_op(key: Vec<u8>, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(Op::RequestPut(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

/// `put`: Put requests on varint keys.
pub async fn put(ctx: &Ctx, a: &PutArgs) -> Result<Report, BenchError> {
    check_key_space(a.key_size, a.key_space_size)?;
    // kept alive until the puts are done
    let _idle = idle_watchers(ctx, a.idle_watchers).await?;
    let value = Arc::new(random_bytes(a.val_size as usize, 1));
    let kvs: Arc<Vec<_>> = Arc::new((0..ctx.clients as usize).map(|c| ctx.conns.kv(c)).collect());
    let conns = ctx.conns.clone();
    let (ks, ksz, seq) = (a.key_space_size, a.key_size as usize, a.sequential_keys);
    let d = drive(&ctx.opts(a.total, a.rate), 1, move |c, i| {
        let n = if seq { i % ks } else { mix(i ^ 0x5eed) % ks };
        let req = conns.req(PutRequest {
            key: varint_key(n, ksz),
            value: value.to_vec(),
            ..Default::default()
        });
        let mut kv = kvs[c].clone();
        async move { kv.put(req).await.map(|_| 0) }
    })
    .await;
    finish("put", d)
}

/// Opens `n` watchers on keys that are never written (`idle/<i>`), spread over the
/// connections, 100 per stream; returns their streams (dropping them closes the watchers).
async fn idle_watchers(
    ctx: &Ctx,
    n: u64,
) -> Result<
    Vec<(
        mpsc::Sender<WatchRequest>,
        tonic::Streaming<retcd_api::etcdserverpb::WatchResponse>,
    )>,
    BenchError,
> {
    let mut out = Vec::new();
    let mut made = 0u64;
    let mut s = 0usize;
    while made < n {
        let batch = (n - made).min(100);
        let mut client = ctx.conns.watch(s);
        let (tx, rx) = mpsc::channel::<WatchRequest>(128);
        let create = |i: u64| WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: format!("idle/{i}").into_bytes(),
                ..Default::default()
            })),
        };
        // the first create is queued before the call so the response headers come back
        tx.send(create(made))
            .await
            .map_err(|_| BenchError::Failed("watch stream closed".into()))?;
        let mut stream = client
            .watch(ctx.conns.req(ReceiverStream::new(rx)))
            .await
            .map_err(|st| BenchError::from_status("watch", st))?
            .into_inner();
        for i in 1..batch {
            tx.send(create(made + i))
                .await
                .map_err(|_| BenchError::Failed("watch stream closed".into()))?;
        }
        let mut created = 0;
        while created < batch {
            match stream.message().await {
                Ok(Some(r)) if r.created => created += 1,
                Ok(Some(_)) => {}
                Ok(None) => return Err(BenchError::Failed("watch stream ended".into())),
                Err(st) => return Err(BenchError::from_status("watch", st)),
            }
        }
        made += batch;
        s += 1;
        out.push((tx, stream));
    }
    Ok(out)
}

fn range_request(a: &RangeArgs) -> RangeRequest {
    RangeRequest {
        key: a.key.clone().into_bytes(),
        range_end: a.end.clone().map(String::into_bytes).unwrap_or_default(),
        limit: a.limit,
        serializable: a.consistency == Consistency::S,
        count_only: a.count_only,
        keys_only: a.keys_only,
        ..Default::default()
    }
}

/// `range KEY [END]`.
pub async fn range(ctx: &Ctx, a: &RangeArgs) -> Result<Report, BenchError> {
    let r = range_request(a);
    let kvs: Arc<Vec<_>> = Arc::new((0..ctx.clients as usize).map(|c| ctx.conns.kv(c)).collect());
    let conns = ctx.conns.clone();
    let d = drive(&ctx.opts(a.total, a.rate), 1, move |c, _i| {
        let req = conns.req(r.clone());
        let mut kv = kvs[c].clone();
        async move { kv.range(req).await.map(|_| 0) }
    })
    .await;
    finish("range", d)
}

/// `txn-put`: Txns of `--txn-ops` puts on distinct random varint keys.
pub async fn txn_put(ctx: &Ctx, a: &TxnPutArgs) -> Result<Report, BenchError> {
    check_key_space(a.key_size, a.key_space_size)?;
    if a.txn_ops > a.key_space_size {
        return Err(BenchError::Setup(format!(
            "--txn-ops {} exceeds --key-space-size {}: a txn may not put one key twice",
            a.txn_ops, a.key_space_size
        )));
    }
    let value = Arc::new(random_bytes(a.val_size as usize, 2));
    let kvs: Arc<Vec<_>> = Arc::new((0..ctx.clients as usize).map(|c| ctx.conns.kv(c)).collect());
    let conns = ctx.conns.clone();
    let (ks, ksz, ops) = (a.key_space_size, a.key_size as usize, a.txn_ops);
    let d = drive(&ctx.opts(a.total, a.rate), 1, move |c, i| {
        let mut keys: Vec<u64> = Vec::with_capacity(ops as usize);
        let mut s = i.wrapping_mul(0x1000_0000_01b3) ^ 0x7a;
        while keys.len() < ops as usize {
            s = mix(s);
            let n = s % ks;
            if !keys.contains(&n) {
                keys.push(n);
            }
        }
        let success = keys
            .into_iter()
            .map(|n| put_op(varint_key(n, ksz), value.to_vec()))
            .collect();
        let req = conns.req(TxnRequest {
            success,
            ..Default::default()
        });
        let mut kv = kvs[c].clone();
        async move { kv.txn(req).await.map(|_| 0) }
    })
    .await;
    finish("txn-put", d)
}

/// `txn-mixed`: single-op Txns, reads (Range, optionally over `[key, END)`) and writes
/// (Put) in the ratio `--rw-ratio` : 1. Reports reads and writes separately.
pub async fn txn_mixed(ctx: &Ctx, a: &TxnMixedArgs) -> Result<Report, BenchError> {
    check_key_space(a.key_size, a.key_space_size)?;
    if !(a.rw_ratio >= 0.0 && a.rw_ratio.is_finite()) {
        return Err(BenchError::Setup(
            "--rw-ratio must be a non-negative number".into(),
        ));
    }
    let value = Arc::new(random_bytes(a.val_size as usize, 3));
    let kvs: Arc<Vec<_>> = Arc::new((0..ctx.clients as usize).map(|c| ctx.conns.kv(c)).collect());
    let conns = ctx.conns.clone();
    let (ks, ksz) = (a.key_space_size, a.key_size as usize);
    let read_share = a.rw_ratio / (1.0 + a.rw_ratio);
    let end = a.end_range.clone().map(String::into_bytes).unwrap_or_default();
    let serializable = a.consistency == Consistency::S;
    let d = drive(&ctx.opts(a.total, a.rate), 2, move |c, i| {
        let r = mix(i ^ 0xfeed);
        let key = varint_key(r % ks, ksz);
        let is_read = ((mix(r) >> 11) as f64 / (1u64 << 53) as f64) < read_share;
        let op = if is_read {
            RequestOp {
                request: Some(Op::RequestRange(RangeRequest {
                    key,
                    range_end: end.clone(),
                    serializable,
                    ..Default::default()
                })),
            }
        } else {
            put_op(key, value.to_vec())
        };
        let req = conns.req(TxnRequest {
            success: vec![op],
            ..Default::default()
        });
        let mut kv = kvs[c].clone();
        async move { kv.txn(req).await.map(|_| if is_read { 0 } else { 1 }) }
    })
    .await;
    if d.all.ok() == 0
        && let Some(u) = d.unimplemented
    {
        return Err(BenchError::Unimplemented(u));
    }
    let mut it = d.by_class.into_iter();
    let reads = it.next().unwrap_or_default();
    let writes = it.next().unwrap_or_default();
    Ok(Report {
        workload: "txn-mixed".into(),
        main: d.all,
        phases: vec![("read".into(), reads), ("write".into(), writes)],
        extra: Map::new(),
    })
}

/// `load`: writes `--total` keys `prefix + number`, `--batch` puts per Txn.
pub async fn load(ctx: &Ctx, a: &LoadArgs) -> Result<Report, BenchError> {
    let value = Arc::new(random_bytes(a.val_size as usize, 4));
    let kvs: Arc<Vec<_>> = Arc::new((0..ctx.clients as usize).map(|c| ctx.conns.kv(c)).collect());
    let conns = ctx.conns.clone();
    let (n, b, ksz) = (a.total, a.batch, a.key_size);
    let prefix = a.prefix.clone();
    let requests = n.div_ceil(b);
    let d = drive(&ctx.opts(requests, 0.0), 1, move |c, j| {
        let mut kv = kvs[c].clone();
        let first = j * b;
        let last = (first + b).min(n);
        if b == 1 {
            let req = conns.req(PutRequest {
                key: load_key(&prefix, first, ksz, n),
                value: value.to_vec(),
                ..Default::default()
            });
            return Box::pin(async move { kv.put(req).await.map(|_| 0usize) })
                as std::pin::Pin<Box<dyn Future<Output = _> + Send>>;
        }
        let success = (first..last)
            .map(|i| put_op(load_key(&prefix, i, ksz, n), value.to_vec()))
            .collect();
        let req = conns.req(TxnRequest {
            success,
            ..Default::default()
        });
        Box::pin(async move { kv.txn(req).await.map(|_| 0) })
    })
    .await;
    let mut r = finish("load", d)?;
    let keys_written = if r.main.ok() == requests {
        n
    } else {
        // Not exact when some batches failed: at most b keys per successful request.
        (r.main.ok() * b).min(n)
    };
    let secs = r.main.elapsed.as_secs_f64();
    r.extra.insert("keys".into(), json!(keys_written));
    r.extra.insert("batch".into(), json!(b));
    r.extra.insert(
        "keys_per_second".into(),
        json!(if secs > 0.0 {
            keys_written as f64 / secs
        } else {
            0.0
        }),
    );
    Ok(r)
}

/// `defrag`: fills the backend (`load`), deletes the first half of the keys and compacts
/// physically, then runs `--clients` put loops and, a second into them, a Defragment; the
/// puts go on until a second after it returns. Main figures: the puts made while the
/// defragmentation ran. Extras: its duration, the longest gap between two completed puts
/// during it (how long writers stalled), and the backend size before and after.
pub async fn defrag(ctx: &Ctx, a: &DefragArgs) -> Result<Report, BenchError> {
    let keys = (a.fill_bytes / a.val_size.max(1)).max(2);
    let fill = LoadArgs {
        total: keys,
        prefix: "defrag/fill/".into(),
        key_size: 24,
        val_size: a.val_size,
        batch: (1u64 << 20).div_ceil(a.val_size.max(1)).clamp(1, 128),
    };
    let filled = load(ctx, &fill).await?;
    if filled.main.error_count() > 0 {
        return Err(BenchError::Failed(format!(
            "filling the backend failed: {:?}",
            filled.main.errors
        )));
    }
    let mut kv = ctx.conns.kv(0);
    let del = kv
        .delete_range(ctx.conns.req(retcd_api::etcdserverpb::DeleteRangeRequest {
            key: load_key(&fill.prefix, 0, fill.key_size, keys),
            range_end: load_key(&fill.prefix, keys / 2, fill.key_size, keys),
            ..Default::default()
        }))
        .await
        .map_err(|s| BenchError::from_status("delete half", s))?
        .into_inner();
    let rev = del.header.map_or(0, |h| h.revision);
    kv.compact(ctx.conns.req(retcd_api::etcdserverpb::CompactionRequest {
        revision: rev,
        physical: true,
    }))
    .await
    .map_err(|s| BenchError::from_status("compact", s))?;
    let mut m = ctx.conns.maintenance(0);
    let db_size = |r: retcd_api::etcdserverpb::StatusResponse| r.db_size;
    let before = m
        .status(ctx.conns.req(retcd_api::etcdserverpb::StatusRequest {}))
        .await
        .map(|r| db_size(r.into_inner()))
        .unwrap_or(0);

    let loops = PutLoops::start(ctx, "defrag/during", a.put_val_size);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let defrag = m
        .defragment(ctx.conns.req(retcd_api::etcdserverpb::DefragmentRequest {}))
        .await;
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    loops.stop();
    if let Err(s) = defrag {
        return Err(BenchError::from_status("defragment", s));
    }
    let after = m
        .status(ctx.conns.req(retcd_api::etcdserverpb::StatusRequest {}))
        .await
        .map(|r| db_size(r.into_inner()))
        .unwrap_or(0);
    let (done, errors) = loops.finish().await?;
    // the longest stretch without a completed put while the defragmentation ran (its start
    // and end count as completions, so a put stalled across the whole run counts in full)
    let mut marks: Vec<Instant> = vec![started];
    marks.extend(
        done.iter()
            .map(|(t, _)| *t)
            .filter(|t| *t > started && *t < ended),
    );
    marks.push(ended);
    let max_gap = marks.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default();
    let during = latencies_between(&done, started, ended);
    let mut r = Report::single("defrag", Stats::new(during, errors, ended - started));
    r.extra.insert("fill_keys".into(), json!(keys));
    r.extra
        .insert("defrag_seconds".into(), json!((ended - started).as_secs_f64()));
    r.extra
        .insert("max_gap_ms".into(), json!(max_gap.as_secs_f64() * 1e3));
    r.extra.insert("db_size_before".into(), json!(before));
    r.extra.insert("db_size_after".into(), json!(after));
    Ok(r)
}

/// `--clients` tasks putting distinct keys `<prefix>/<client>/<n>` back to back until
/// stopped, each recording (completion time, latency) or the error.
struct PutLoops {
    stop: Arc<std::sync::atomic::AtomicBool>,
    #[allow(clippy::type_complexity)]
    loops: Vec<tokio::task::JoinHandle<(Vec<(Instant, u64)>, std::collections::BTreeMap<String, u64>)>>,
}

impl PutLoops {
    fn start(ctx: &Ctx, prefix: &str, val_size: u64) -> PutLoops {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let value = Arc::new(random_bytes(val_size as usize, 11));
        let mut loops = Vec::new();
        for c in 0..ctx.clients as usize {
            let mut kv = ctx.conns.kv(c);
            let (stop, value, conns) = (stop.clone(), value.clone(), ctx.conns.clone());
            let prefix = prefix.to_string();
            loops.push(tokio::spawn(async move {
                let mut done: Vec<(Instant, u64)> = Vec::new();
                let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let req = conns.req(PutRequest {
                        key: format!("{prefix}/{c}/{n}").into_bytes(),
                        value: value.to_vec(),
                        ..Default::default()
                    });
                    let t0 = Instant::now();
                    match kv.put(req).await {
                        Ok(_) => done.push((Instant::now(), t0.elapsed().as_nanos() as u64)),
                        Err(s) => *errors.entry(crate::driver::status_text(&s)).or_default() += 1,
                    }
                    n += 1;
                }
                (done, errors)
            }));
        }
        PutLoops { stop, loops }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Every completion in time order, and the errors.
    async fn finish(
        self,
    ) -> Result<(Vec<(Instant, u64)>, std::collections::BTreeMap<String, u64>), BenchError> {
        self.stop();
        let mut done = Vec::new();
        let mut errors: std::collections::BTreeMap<String, u64> = Default::default();
        for l in self.loops {
            let (d, e) = l
                .await
                .map_err(|e| BenchError::Failed(format!("put loop: {e}")))?;
            done.extend(d);
            for (k, v) in e {
                *errors.entry(k).or_default() += v;
            }
        }
        done.sort_by_key(|(t, _)| *t);
        Ok((done, errors))
    }
}

/// Latencies of the completions in `(from, to]`.
fn latencies_between(done: &[(Instant, u64)], from: Instant, to: Instant) -> Vec<u64> {
    done.iter()
        .filter(|(t, _)| *t > from && *t <= to)
        .map(|(_, l)| *l)
        .collect()
}

/// `compact`: writes `--revisions` puts (one revision each) over `--keys` keys, measures
/// puts for `--seconds`, then compacts all that history physically while the puts go on.
/// Main figures: the puts during the compaction; extras: the baseline p99, the p99 during
/// the compaction, their ratio and how long the compaction took.
pub async fn compact(ctx: &Ctx, a: &CompactArgs) -> Result<Report, BenchError> {
    let fill = PutArgs {
        total: a.revisions,
        key_size: 8,
        val_size: 128,
        sequential_keys: true,
        key_space_size: a.keys.max(1),
        rate: 0.0,
        idle_watchers: 0,
    };
    let filled = put(ctx, &fill).await?;
    if filled.main.error_count() > 0 {
        return Err(BenchError::Failed(format!(
            "writing the history failed: {:?}",
            filled.main.errors
        )));
    }
    let loops = PutLoops::start(ctx, "compact/during", 256);
    let base_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let base_to = Instant::now();
    let mut kv = ctx.conns.kv(0);
    let rev = kv
        .range(ctx.conns.req(RangeRequest {
            key: b"compact/".to_vec(),
            limit: 1,
            ..Default::default()
        }))
        .await
        .map_err(|s| BenchError::from_status("range", s))?
        .into_inner()
        .header
        .map_or(0, |h| h.revision);
    let started = Instant::now();
    let compacted = kv
        .compact(ctx.conns.req(retcd_api::etcdserverpb::CompactionRequest {
            revision: rev,
            physical: true,
        }))
        .await;
    let ended = Instant::now();
    let (done, errors) = loops.finish().await?;
    if let Err(s) = compacted {
        return Err(BenchError::from_status("compact", s));
    }
    let base = Stats::new(
        latencies_between(&done, base_from, base_to),
        Default::default(),
        base_to - base_from,
    );
    let during = Stats::new(latencies_between(&done, started, ended), errors, ended - started);
    let (p99_base, p99_during) = (
        base.percentile_ns(990) as f64 / 1e6,
        during.percentile_ns(990) as f64 / 1e6,
    );
    let mut r = Report::single("compact", during);
    r.phases.push(("baseline".into(), base));
    r.extra.insert("revisions".into(), json!(a.revisions));
    r.extra.insert(
        "compaction_seconds".into(),
        json!((ended - started).as_secs_f64()),
    );
    r.extra.insert("p99_baseline_ms".into(), json!(p99_base));
    r.extra.insert("p99_during_ms".into(), json!(p99_during));
    r.extra.insert(
        "p99_ratio".into(),
        json!(if p99_base > 0.0 {
            p99_during / p99_base
        } else {
            0.0
        }),
    );
    Ok(r)
}

/// Which of `scan`'s three ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanMode {
    CountOnly,
    KeysOnly,
    Full,
}

impl ScanMode {
    pub const ALL: [ScanMode; 3] = [ScanMode::CountOnly, ScanMode::KeysOnly, ScanMode::Full];

    pub fn name(self) -> &'static str {
        match self {
            ScanMode::CountOnly => "count_only",
            ScanMode::KeysOnly => "keys_only",
            ScanMode::Full => "full",
        }
    }
}

/// One of `scan`'s ranges, `--repeat` times, one request at a time. Extras: the keys seen
/// (`keys`) and, for keys-only and full ranges, the key+value bytes returned.
pub async fn scan_phase(ctx: &Ctx, a: &ScanArgs, mode: ScanMode) -> Result<Report, BenchError> {
    let key = a.prefix.clone().into_bytes();
    let range_end = prefix_end(&key);
    let count_only = mode == ScanMode::CountOnly;
    let req = RangeRequest {
        key,
        range_end,
        serializable: a.consistency == Consistency::S,
        count_only,
        keys_only: mode == ScanMode::KeysOnly,
        ..Default::default()
    };
    let seen = Arc::new(AtomicU64::new(u64::MAX));
    let bytes = Arc::new(AtomicU64::new(0));
    let (seen2, bytes2) = (seen.clone(), bytes.clone());
    let kv = ctx.conns.kv(0);
    let conns = ctx.conns.clone();
    let expect = a.expect;
    let opts = RunOpts {
        clients: 1,
        total: a.repeat,
        rate: 0.0,
        progress: false,
        deadline: ctx.deadline,
        request_timeout: ctx.request_timeout,
    };
    let d = drive(&opts, 1, move |_c, _i| {
        let req = conns.req(req.clone());
        let mut kv = kv.clone();
        let (seen, bytes) = (seen2.clone(), bytes2.clone());
        async move {
            let r = kv.range(req).await?.into_inner();
            let n = if count_only {
                r.count as u64
            } else {
                r.kvs.len() as u64
            };
            let size: usize = r.kvs.iter().map(|kv| kv.key.len() + kv.value.len()).sum();
            seen.store(n, Ordering::Relaxed);
            bytes.store(size as u64, Ordering::Relaxed);
            if let Some(e) = expect
                && e != n
            {
                return Err(tonic::Status::new(
                    Code::DataLoss,
                    format!("expected {e} keys, the range returned {n}"),
                ));
            }
            Ok(0)
        }
    })
    .await;
    let mut r = finish(&format!("scan-{}", mode.name()), d)?;
    let n = seen.load(Ordering::Relaxed);
    if n != u64::MAX {
        r.extra.insert("keys".into(), json!(n));
        if !count_only {
            r.extra
                .insert("payload_bytes".into(), json!(bytes.load(Ordering::Relaxed)));
        }
    }
    Ok(r)
}

/// `scan`: times `--repeat` count-only, keys-only and full ranges over the prefix, one
/// request at a time. Phases: `count_only`, `keys_only`, `full`.
pub async fn scan(ctx: &Ctx, a: &ScanArgs) -> Result<Report, BenchError> {
    let mut phases = Vec::new();
    let mut extra = Map::new();
    let mut all_lats = Vec::new();
    let mut all_errors = std::collections::BTreeMap::new();
    let mut all_elapsed = Duration::ZERO;
    for mode in ScanMode::ALL {
        let r = scan_phase(ctx, a, mode).await?;
        for (k, v) in r.extra {
            extra.insert(format!("{}_{k}", mode.name()), v);
        }
        all_lats.extend_from_slice(r.main.latencies());
        for (k, v) in &r.main.errors {
            *all_errors.entry(k.clone()).or_insert(0) += v;
        }
        all_elapsed += r.main.elapsed;
        phases.push((mode.name().to_string(), r.main));
    }
    Ok(Report {
        workload: "scan".into(),
        main: Stats::new(all_lats, all_errors, all_elapsed),
        phases,
        extra,
    })
}

/// Value carrying a send time (ns since `epoch`) and a put number, padded to `size`.
fn stamped_value(epoch: Instant, put: u64, size: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(size.max(16));
    v.extend_from_slice(&(epoch.elapsed().as_nanos() as u64).to_le_bytes());
    v.extend_from_slice(&put.to_le_bytes());
    v.resize(size.max(16), b'v');
    v
}

fn read_stamp(v: &[u8]) -> Option<(u64, u64)> {
    let t = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
    let p = u64::from_le_bytes(v.get(8..16)?.try_into().ok()?);
    Some((t, p))
}

struct WatchPlan {
    streams: u64,
    per_stream: u64,
    keys: u64,
    put_total: u64,
    put_rate: f64,
    key_size: u64,
    val_size: u64,
}

fn watch_key(i: u64, key_size: u64, keys: u64) -> Vec<u8> {
    load_key("watch/", i, key_size, keys)
}

/// Shared machinery of `watch` and `watch-latency`: create every watcher (timed), put to
/// the watched keys (timed), and time each event's delivery from its put's send time.
async fn run_watch(ctx: &Ctx, workload: &str, p: WatchPlan) -> Result<Report, BenchError> {
    let epoch = Instant::now();
    let total_watchers = p.streams * p.per_stream;
    // watchers per key: watcher w watches key w % keys
    let per_key: Vec<u64> = (0..p.keys)
        .map(|k| total_watchers / p.keys + u64::from(k < total_watchers % p.keys))
        .collect();
    let expected_events: u64 = (0..p.put_total).map(|i| per_key[(i % p.keys) as usize]).sum();
    // per put: how many watchers got it and the latest arrival (ns since epoch)
    let put_seen: Arc<Vec<AtomicU64>> = Arc::new((0..p.put_total).map(|_| AtomicU64::new(0)).collect());
    let put_last: Arc<Vec<AtomicU64>> = Arc::new((0..p.put_total).map(|_| AtomicU64::new(0)).collect());
    let received = Arc::new(AtomicU64::new(0));
    // responses that carried events (how much the server batched)
    let event_responses = Arc::new(AtomicU64::new(0));
    let all_in = Arc::new(tokio::sync::Notify::new());

    // 1. open the streams and create the watchers, timing each creation
    let create_start = Instant::now();
    let mut create_lats = Vec::new();
    let mut create_errors = std::collections::BTreeMap::new();
    let mut event_tasks = Vec::new();
    let mut senders = Vec::new();
    let mut setup = Vec::new();
    for s in 0..p.streams {
        let mut client = ctx.conns.watch(s as usize);
        let (tx, rx) = mpsc::channel::<WatchRequest>(1024);
        let conns = ctx.conns.clone();
        let per_stream = p.per_stream;
        let (keys, key_size) = (p.keys, p.key_size);
        setup.push(tokio::spawn(async move {
            let create = |w: u64| WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: watch_key((s * per_stream + w) % keys, key_size, keys),
                    ..Default::default()
                })),
            };
            // etcd sends the response headers with the first response, so the first create
            // must be queued before the call can return.
            let mut t = Instant::now();
            tx.send(create(0))
                .await
                .map_err(|_| BenchError::Failed("watch stream closed".into()))?;
            let mut stream = client
                .watch(conns.req(ReceiverStream::new(rx)))
                .await
                .map_err(|s| BenchError::from_status("watch", s))?
                .into_inner();
            let mut lats = Vec::new();
            for w in 0..per_stream {
                if w > 0 {
                    t = Instant::now();
                    if tx.send(create(w)).await.is_err() {
                        return Err(BenchError::Failed("watch stream closed".into()));
                    }
                }
                loop {
                    match stream.message().await {
                        Ok(Some(r)) if r.created => break,
                        Ok(Some(r)) if r.canceled => {
                            return Err(BenchError::Failed(format!("watch canceled: {}", r.cancel_reason)));
                        }
                        Ok(Some(_)) => continue,
                        Ok(None) => return Err(BenchError::Failed("watch stream ended".into())),
                        Err(s) => return Err(BenchError::from_status("watch", s)),
                    }
                }
                lats.push(t.elapsed().as_nanos() as u64);
            }
            Ok((lats, tx, stream))
        }));
    }
    let mut streams = Vec::new();
    for t in setup {
        match t.await {
            Ok(Ok((lats, tx, stream))) => {
                create_lats.extend(lats);
                senders.push(tx);
                streams.push(stream);
            }
            Ok(Err(e @ BenchError::Unimplemented(_))) => return Err(e),
            Ok(Err(e)) => *create_errors.entry(e.to_string()).or_insert(0u64) += p.per_stream,
            Err(e) => *create_errors.entry(e.to_string()).or_insert(0u64) += p.per_stream,
        }
    }
    let create = Stats::new(create_lats, create_errors, create_start.elapsed());
    let mut event_lats_all = Vec::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let put_total = p.put_total as usize;
    for mut stream in streams {
        let (received, all_in, responses) = (received.clone(), all_in.clone(), event_responses.clone());
        let mut stop = stop_rx.clone();
        event_tasks.push(tokio::spawn(async move {
            let mut lats = Vec::new();
            // Per put: how many of this stream's watchers got it, and the latest arrival.
            // Kept per task and merged at the end: shared counters updated per event would
            // make the client, not the server, the bottleneck.
            let mut seen = vec![0u64; put_total];
            let mut last = vec![0u64; put_total];
            loop {
                let r = tokio::select! {
                    m = stream.message() => match m {
                        Ok(Some(r)) => r,
                        _ => break,
                    },
                    _ = stop.wait_for(|v| *v) => break,
                };
                let now = epoch.elapsed().as_nanos() as u64;
                if r.events.is_empty() {
                    continue;
                }
                responses.fetch_add(1, Ordering::Relaxed);
                let mut got = 0;
                for ev in r.events {
                    let Some((sent, put)) = ev.kv.as_ref().and_then(|kv| read_stamp(&kv.value)) else {
                        continue;
                    };
                    lats.push(now.saturating_sub(sent));
                    if let (Some(c), Some(l)) = (seen.get_mut(put as usize), last.get_mut(put as usize)) {
                        *c += 1;
                        *l = (*l).max(now);
                    }
                    got += 1;
                }
                if received.fetch_add(got, Ordering::Relaxed) + got >= expected_events {
                    all_in.notify_one();
                }
            }
            (lats, seen, last)
        }));
    }

    // 2. the puts
    let kvs: Arc<Vec<_>> = Arc::new((0..ctx.clients as usize).map(|c| ctx.conns.kv(c)).collect());
    let conns = ctx.conns.clone();
    let put_sent: Arc<Vec<AtomicU64>> = Arc::new((0..p.put_total).map(|_| AtomicU64::new(0)).collect());
    let sent2 = put_sent.clone();
    let (keys, key_size, val_size) = (p.keys, p.key_size, p.val_size as usize);
    let events_start = Instant::now();
    let d = drive(&ctx.opts(p.put_total, p.put_rate), 1, move |c, i| {
        let value = stamped_value(epoch, i, val_size);
        sent2[i as usize].store(read_stamp(&value).map(|s| s.0).unwrap_or(0), Ordering::Relaxed);
        let req = conns.req(PutRequest {
            key: watch_key(i % keys, key_size, keys),
            value,
            ..Default::default()
        });
        let mut kv = kvs[c].clone();
        async move { kv.put(req).await.map(|_| 0) }
    })
    .await;
    let puts = d.all;

    // 3. wait for the events (at most 10 s after the last put)
    if received.load(Ordering::Relaxed) < expected_events {
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while received.load(Ordering::Relaxed) < expected_events {
                all_in.notified().await;
            }
        })
        .await;
    }
    let events_elapsed = events_start.elapsed();
    let _ = stop_tx.send(true);
    drop(senders);
    for t in event_tasks {
        if let Ok((l, seen, last)) = t.await {
            event_lats_all.extend(l);
            for (i, (c, t)) in seen.into_iter().zip(last).enumerate() {
                put_seen[i].fetch_add(c, Ordering::Relaxed);
                put_last[i].fetch_max(t, Ordering::Relaxed);
            }
        }
    }
    let got = received.load(Ordering::Relaxed);
    let mut event_errors = std::collections::BTreeMap::new();
    if got < expected_events {
        event_errors.insert("event not received".to_string(), expected_events - got);
    }
    // per put: from its send until the last watcher got it
    let mut all_watchers = Vec::new();
    let mut missing_puts = 0;
    for i in 0..p.put_total as usize {
        let want = per_key[i % p.keys as usize];
        if want == 0 {
            continue;
        }
        if put_seen[i].load(Ordering::Relaxed) >= want {
            all_watchers.push(
                put_last[i]
                    .load(Ordering::Relaxed)
                    .saturating_sub(put_sent[i].load(Ordering::Relaxed)),
            );
        } else {
            missing_puts += 1;
        }
    }
    let mut put_all_errors = std::collections::BTreeMap::new();
    if missing_puts > 0 {
        put_all_errors.insert("some watcher missed the event".to_string(), missing_puts);
    }
    let events = Stats::new(event_lats_all, event_errors, events_elapsed);
    let reached_all = Stats::new(all_watchers, put_all_errors, events_elapsed);
    let mut extra = Map::new();
    extra.insert("watchers".into(), json!(total_watchers));
    extra.insert("expected_events".into(), json!(expected_events));
    extra.insert("received_events".into(), json!(got));
    extra.insert(
        "event_responses".into(),
        json!(event_responses.load(Ordering::Relaxed)),
    );
    let main = if workload == "watch-latency" {
        reached_all.clone()
    } else {
        events.clone()
    };
    Ok(Report {
        workload: workload.into(),
        main,
        phases: vec![
            ("watch_create".into(), create),
            ("put".into(), puts),
            ("event_delivery".into(), events),
            ("put_to_all_watchers".into(), reached_all),
        ],
        extra,
    })
}

/// `watch`: `--streams` × `--watch-per-stream` watchers over `--watched-key-total` keys,
/// then `--put-total` puts to those keys. Main figures: per-event delivery latency.
pub async fn watch(ctx: &Ctx, a: &WatchArgs) -> Result<Report, BenchError> {
    run_watch(
        ctx,
        "watch",
        WatchPlan {
            streams: a.streams,
            per_stream: a.watch_per_stream,
            keys: a.watched_key_total,
            put_total: a.put_total,
            put_rate: a.put_rate,
            key_size: a.key_size,
            val_size: a.val_size,
        },
    )
    .await
}

/// `watch-latency`: every watcher on one key; main figures: the time from a put's send
/// until its event reached every watcher.
pub async fn watch_latency(ctx: &Ctx, a: &WatchLatencyArgs) -> Result<Report, BenchError> {
    run_watch(
        ctx,
        "watch-latency",
        WatchPlan {
            streams: a.streams,
            per_stream: a.watchers_per_stream,
            keys: 1,
            put_total: a.put_total,
            put_rate: a.put_rate,
            key_size: 16,
            val_size: a.val_size,
        },
    )
    .await
}

type KeepAlive = (
    mpsc::Sender<LeaseKeepAliveRequest>,
    tonic::Streaming<retcd_api::etcdserverpb::LeaseKeepAliveResponse>,
    i64,
);

/// `lease-keepalive`: one lease and one keep-alive stream per client; each request is one
/// keep-alive and its answer.
pub async fn lease_keepalive(ctx: &Ctx, a: &LeaseKeepaliveArgs) -> Result<Report, BenchError> {
    let mut states: Vec<Arc<Mutex<KeepAlive>>> = Vec::new();
    for c in 0..ctx.clients as usize {
        let mut lease = ctx.conns.lease(c);
        let id = lease
            .lease_grant(ctx.conns.req(LeaseGrantRequest { ttl: 100, id: 0 }))
            .await
            .map_err(|s| BenchError::from_status("lease grant", s))?
            .into_inner()
            .id;
        let (tx, rx) = mpsc::channel(16);
        // etcd sends the response headers with the first response: queue one keep-alive
        // before the call returns, and take its answer here (untimed).
        let _ = tx.send(LeaseKeepAliveRequest { id }).await;
        let mut stream = lease
            .lease_keep_alive(ctx.conns.req(ReceiverStream::new(rx)))
            .await
            .map_err(|s| BenchError::from_status("lease keep-alive", s))?
            .into_inner();
        stream
            .message()
            .await
            .map_err(|s| BenchError::from_status("lease keep-alive", s))?
            .ok_or_else(|| BenchError::Failed("lease keep-alive stream ended".into()))?;
        states.push(Arc::new(Mutex::new((tx, stream, id))));
    }
    let states = Arc::new(states);
    let d = drive(&ctx.opts(a.total, 0.0), 1, move |c, _i| {
        let st = states[c].clone();
        async move {
            let mut g = st.lock().await;
            let id = g.2;
            g.0.send(LeaseKeepAliveRequest { id })
                .await
                .map_err(|_| tonic::Status::unavailable("keep-alive stream closed"))?;
            match g.1.message().await? {
                Some(r) if r.ttl > 0 => Ok(0),
                Some(_) => Err(tonic::Status::not_found("lease expired")),
                None => Err(tonic::Status::unavailable("keep-alive stream ended")),
            }
        }
    })
    .await;
    finish("lease-keepalive", d)
}

/// `lease-grant`: each request grants one lease (server-chosen id) that stays alive.
pub async fn lease_grant(ctx: &Ctx, a: &LeaseGrantArgs) -> Result<Report, BenchError> {
    let conns = ctx.conns.clone();
    let ttl = a.ttl;
    let d = drive(&ctx.opts(a.total, 0.0), 1, move |c, _i| {
        let mut lease = conns.lease(c);
        let req = conns.req(LeaseGrantRequest { ttl, id: 0 });
        async move {
            lease.lease_grant(req).await?;
            Ok(0)
        }
    })
    .await;
    finish("lease-grant", d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_go() {
        // Go: binary.PutVarint(buf, 0) = [0], 1 = [2], -1 = [1], 63 = [126], 64 = [128 1]
        let mut b = [0u8; 10];
        assert_eq!(put_varint(&mut b, 0), 1);
        assert_eq!(b[0], 0);
        put_varint(&mut b, 1);
        assert_eq!(b[0], 2);
        put_varint(&mut b, -1);
        assert_eq!(b[0], 1);
        put_varint(&mut b, 63);
        assert_eq!(b[0], 126);
        assert_eq!(put_varint(&mut b, 64), 2);
        assert_eq!(&b[..2], &[128, 1]);
        assert_eq!(varint_len(99_999), 3);
        assert_eq!(varint_key(64, 8), vec![128, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(varint_key(64, 1), vec![128]);
    }

    #[test]
    fn key_space_must_fit_key_size() {
        assert!(check_key_space(8, 100_000).is_ok());
        assert!(check_key_space(1, 64).is_ok());
        assert!(check_key_space(1, 65).is_err());
    }

    #[test]
    fn load_keys_sort_in_number_order() {
        assert_eq!(load_key("load/", 7, 16, 1_000_000), b"load/00000000007".to_vec());
        assert_eq!(load_key("p/", 12, 1, 100), b"p/12".to_vec());
        assert_eq!(load_key("p/", 3, 1, 1000), b"p/003".to_vec());
        let a = load_key("load/", 9, 8, 20);
        let b = load_key("load/", 10, 8, 20);
        assert!(a < b);
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"load/"), b"load0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }

    #[test]
    fn random_and_stamps() {
        assert_eq!(random_bytes(13, 1).len(), 13);
        assert_eq!(random_bytes(13, 1), random_bytes(13, 1));
        let v = stamped_value(Instant::now(), 42, 8);
        assert_eq!(v.len(), 16);
        assert_eq!(read_stamp(&v).unwrap().1, 42);
        assert!(read_stamp(b"short").is_none());
    }

    #[test]
    fn report_json_has_the_required_fields() {
        let r = Report::single(
            "put",
            Stats::new(
                vec![1_000_000, 2_000_000],
                Default::default(),
                Duration::from_secs(1),
            ),
        );
        let j = r.to_json();
        for k in ["workload", "total", "errors", "seconds", "requests_per_second"] {
            assert!(j.get(k).is_some(), "{k}");
        }
        for k in ["avg", "p50", "p90", "p99", "p999"] {
            assert!(j["latency_ms"].get(k).is_some(), "{k}");
        }
        assert_eq!(j["workload"], "put");
        assert_eq!(j["total"], 2);
    }
}
