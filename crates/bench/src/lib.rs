//! `retcd-bench`: etcd's `tools/benchmark` workloads, rebuilt over the plain etcd v3 gRPC
//! API, and a side-by-side comparison of real etcd and retcd on one machine.
//!
//! It exists to tell whether retcd is faster than etcd and where it is not: the same
//! workloads run unchanged against etcd (Debian `etcd-server` 3.4) and retcd, and
//! `compare` starts both servers on fresh data dirs, runs one suite against each and
//! prints one table (throughput, p99, server CPU per request, peak RSS, restart time).
//!
//! It speaks only the wire protocol: it depends on `retcd-api` (the generated etcd v3
//! clients) and must never depend on retcd's server, storage or consensus crates.
//!
//! # Layout
//! - [`args`]: the command line (etcd benchmark's global flags and workloads).
//! - [`client`]: `--conns` gRPC connections, auth token, leader targeting.
//! - [`driver`]: the closed-loop request driver (clients, total, rate, deadline, progress).
//! - [`stats`]: exact latency statistics and etcd's report layout; JSON output.
//! - [`workloads`]: put, range, txn-put, txn-mixed, load, scan, watch, watch-latency,
//!   lease-keepalive, lease-grant.
//! - [`procfs`]: a server's CPU time and memory from `/proc`.
//! - [`compare`]: the etcd-vs-retcd suite and its table.

pub mod args;
pub mod client;
pub mod compare;
pub mod driver;
pub mod procfs;
pub mod stats;
pub mod workloads;

use std::fmt;

/// Why a workload could not run (per-request failures are counted in the report instead).
#[derive(Debug, Clone)]
pub enum BenchError {
    /// Bad flags, unreachable endpoint, failed setup request.
    Setup(String),
    /// The server answered `Unimplemented` (e.g. retcd's Watch and Lease for now).
    Unimplemented(String),
    /// The workload broke off.
    Failed(String),
}

impl BenchError {
    /// Classifies a gRPC error from a setup request.
    pub fn from_status(what: &str, s: tonic::Status) -> BenchError {
        let text = format!("{what}: {}", driver::status_text(&s));
        if s.code() == tonic::Code::Unimplemented {
            BenchError::Unimplemented(text)
        } else {
            BenchError::Setup(text)
        }
    }
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BenchError::Setup(s) => write!(f, "{s}"),
            BenchError::Unimplemented(s) => write!(f, "the server does not implement this ({s})"),
            BenchError::Failed(s) => write!(f, "{s}"),
        }
    }
}

impl std::error::Error for BenchError {}

/// Writes to stdout, ignoring errors (a closed pipe must not panic the tool).
pub fn print_out(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Runs one workload command against `--endpoints`.
pub async fn run_workload(
    g: &args::GlobalArgs,
    cmd: &args::Command,
) -> Result<workloads::Report, BenchError> {
    use args::Command;
    let conns = client::Conns::connect(g).await?;
    let ctx = workloads::Ctx {
        conns,
        clients: g.clients,
        progress: !g.json && !g.no_progress,
        deadline: None,
        request_timeout: Some(g.request_timeout).filter(|t| !t.is_zero()),
    };
    match cmd {
        Command::Put(a) => workloads::put(&ctx, a).await,
        Command::Range(a) => workloads::range(&ctx, a).await,
        Command::TxnPut(a) => workloads::txn_put(&ctx, a).await,
        Command::TxnMixed(a) => workloads::txn_mixed(&ctx, a).await,
        Command::Load(a) => workloads::load(&ctx, a).await,
        Command::Scan(a) => workloads::scan(&ctx, a).await,
        Command::Defrag(a) => workloads::defrag(&ctx, a).await,
        Command::Compact(a) => workloads::compact(&ctx, a).await,
        Command::Watch(a) => workloads::watch(&ctx, a).await,
        Command::WatchLatency(a) => workloads::watch_latency(&ctx, a).await,
        Command::LeaseKeepalive(a) => workloads::lease_keepalive(&ctx, a).await,
        Command::LeaseGrant(a) => workloads::lease_grant(&ctx, a).await,
        Command::Compare(_) => Err(BenchError::Setup("compare is not a workload".into())),
    }
}
