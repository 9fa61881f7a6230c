//! Command line: etcd `tools/benchmark`'s global flags and workloads, plus `load`, `scan`
//! and `compare`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "retcd-bench",
    version,
    about = "etcd v3 benchmark (etcd tools/benchmark workloads) and etcd-vs-retcd comparison"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every workload (etcd's benchmark root flags).
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// gRPC endpoints, comma separated (`host:port`, `http://host:port` or `https://host:port`;
    /// `host:port` is dialed with TLS when --cacert, --cert or --key is given).
    #[arg(long, global = true, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub conns: u64,
    /// Total number of concurrent clients (requests in flight).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub clients: u64,
    /// Send requests only to the leader (found with Maintenance.Status).
    #[arg(long, global = true)]
    pub target_leader: bool,
    /// `username:password` for authentication.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// CA bundle the servers' certificates must chain to (TLS; default: the system's CAs).
    #[arg(long, global = true)]
    pub cacert: Option<PathBuf>,
    /// Client certificate for TLS (mutual TLS).
    #[arg(long, global = true)]
    pub cert: Option<PathBuf>,
    /// Client key for TLS.
    #[arg(long, global = true)]
    pub key: Option<PathBuf>,
    /// Dial timeout (Go duration: 500ms, 2s, 1m30s); 0 means none.
    #[arg(long, global = true, default_value = "0", value_parser = parse_duration)]
    pub dial_timeout: Duration,
    /// Per-request timeout (Go duration); 0 means none.
    #[arg(long, global = true, default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Print one JSON object on stdout instead of the text report.
    #[arg(long, global = true)]
    pub json: bool,
    /// Never draw the progress bar (it is only drawn when stderr is a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
}

impl Default for GlobalArgs {
    fn default() -> Self {
        GlobalArgs {
            endpoints: vec!["127.0.0.1:2379".into()],
            conns: 1,
            clients: 1,
            target_leader: false,
            user: None,
            cacert: None,
            cert: None,
            key: None,
            dial_timeout: Duration::ZERO,
            request_timeout: Duration::from_secs(60),
            json: false,
            no_progress: true,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Benchmark Put.
    Put(PutArgs),
    /// Benchmark Range.
    Range(RangeArgs),
    /// Benchmark Txn with puts only.
    TxnPut(TxnPutArgs),
    /// Benchmark a mix of read and write Txns.
    TxnMixed(TxnMixedArgs),
    /// Write N keys under a prefix (for `scan`), in Txns of `--batch` puts.
    Load(LoadArgs),
    /// Time count-only, keys-only and full ranges over a prefix (after `load`).
    Scan(ScanArgs),
    /// Benchmark watch: creation of many watchers, then delivery of events to them.
    Watch(WatchArgs),
    /// Benchmark the delay between a put and its watch event reaching every watcher.
    WatchLatency(WatchLatencyArgs),
    /// Benchmark lease keep-alives.
    LeaseKeepalive(LeaseKeepaliveArgs),
    /// Benchmark lease grants; the leases stay (their memory shows in the server's RSS).
    LeaseGrant(LeaseGrantArgs),
    /// Fill the backend, free half of it, then defragment while clients keep putting: the
    /// longest gap between two completed puts while the defragmentation runs.
    Defrag(DefragArgs),
    /// Write a long history, then compact it physically while clients keep putting: put
    /// p99 during the compaction against before it.
    Compact(CompactArgs),
    /// Start real etcd and retcd on fresh data dirs, run the same suite against each and
    /// print one comparison table.
    Compare(CompareArgs),
}

#[derive(Args, Debug, Clone)]
pub struct PutArgs {
    /// Total number of put requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_size: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: u64,
    /// Use sequential keys (i mod key-space-size) instead of random ones.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Maximum number of distinct keys.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space_size: u64,
    /// Maximum requests per second (0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Watchers on keys that are never written, kept open during the run (what idle
    /// watchers cost writers).
    #[arg(long, default_value_t = 0)]
    pub idle_watchers: u64,
}

impl Default for PutArgs {
    fn default() -> Self {
        PutArgs {
            total: 10000,
            key_size: 8,
            val_size: 8,
            sequential_keys: false,
            key_space_size: 1,
            rate: 0.0,
            idle_watchers: 0,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Linearizable.
    #[default]
    L,
    /// Serializable.
    S,
}

#[derive(Args, Debug, Clone)]
pub struct RangeArgs {
    /// Key to range over.
    #[arg(id = "range_key", value_name = "KEY")]
    pub key: String,
    /// Range end (exclusive); omit for a single key.
    #[arg(value_name = "END")]
    pub end: Option<String>,
    /// Linearizable (l) or serializable (s).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Total number of range requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Maximum number of keys returned (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Only return the count.
    #[arg(long)]
    pub count_only: bool,
    /// Only return the keys.
    #[arg(long)]
    pub keys_only: bool,
    /// Maximum requests per second (0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

#[derive(Args, Debug, Clone)]
pub struct TxnPutArgs {
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_size: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: u64,
    /// Maximum number of distinct keys.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space_size: u64,
    /// Number of puts per txn (distinct keys, so at most key-space-size).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub txn_ops: u64,
    /// Maximum requests per second (0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

#[derive(Args, Debug, Clone)]
pub struct TxnMixedArgs {
    /// Range end for the reads (omit to read single keys).
    pub end_range: Option<String>,
    /// Total number of txn requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_size: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: u64,
    /// Maximum number of distinct keys.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub key_space_size: u64,
    /// Reads per write.
    #[arg(long, default_value_t = 1.0)]
    pub rw_ratio: f64,
    /// Read consistency: l or s.
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Maximum requests per second (0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Number of keys to write.
    #[arg(long, default_value_t = 100000)]
    pub total: u64,
    /// Key prefix (the rest of the key is the zero-padded key number).
    #[arg(long, default_value = "load/")]
    pub prefix: String,
    /// Key size in bytes including the prefix (grown if too small for the key numbers).
    #[arg(long, default_value_t = 16)]
    pub key_size: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 64)]
    pub val_size: u64,
    /// Puts per Txn (1 = plain Put requests). etcd's default --max-txn-ops is 128.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
}

impl Default for LoadArgs {
    fn default() -> Self {
        LoadArgs {
            total: 100000,
            prefix: "load/".into(),
            key_size: 16,
            val_size: 64,
            batch: 128,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct DefragArgs {
    /// Bytes of values written before the defragmentation (half of them deleted and
    /// compacted away first, so the defragmentation has pages to give back).
    #[arg(long, default_value_t = 1 << 30)]
    pub fill_bytes: u64,
    /// Value size of the fill.
    #[arg(long, default_value_t = 1024)]
    pub val_size: u64,
    /// Value size of the puts made during the defragmentation.
    #[arg(long, default_value_t = 256)]
    pub put_val_size: u64,
}

impl Default for DefragArgs {
    fn default() -> Self {
        DefragArgs {
            fill_bytes: 1 << 30,
            val_size: 1024,
            put_val_size: 256,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct CompactArgs {
    /// Revisions written (one put each) before the compaction.
    #[arg(long, default_value_t = 1_000_000)]
    pub revisions: u64,
    /// Keys the history is spread over.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Seconds of puts measured before the compaction (the baseline).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    /// Key prefix written by `load`.
    #[arg(long, default_value = "load/")]
    pub prefix: String,
    /// How many times to run each of the three ranges.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeat: u64,
    /// Linearizable (l) or serializable (s).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
    /// Fail unless every range sees exactly this many keys.
    #[arg(long)]
    pub expect: Option<u64>,
}

impl Default for ScanArgs {
    fn default() -> Self {
        ScanArgs {
            prefix: "load/".into(),
            repeat: 3,
            consistency: Consistency::L,
            expect: None,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    /// Watch streams (spread over the connections).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// Watchers per stream.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub watch_per_stream: u64,
    /// Distinct watched keys (watchers are spread over them round-robin).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub watched_key_total: u64,
    /// Puts to the watched keys after every watcher is created.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Puts per second (0 = unlimited).
    #[arg(long, default_value_t = 0.0)]
    pub put_rate: f64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 32)]
    pub key_size: u64,
    /// Value size in bytes (at least 8: the value carries the put's send time).
    #[arg(long, default_value_t = 32)]
    pub val_size: u64,
}

impl Default for WatchArgs {
    fn default() -> Self {
        WatchArgs {
            streams: 10,
            watch_per_stream: 10,
            watched_key_total: 1,
            put_total: 1000,
            put_rate: 0.0,
            key_size: 32,
            val_size: 32,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct WatchLatencyArgs {
    /// Watch streams.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub streams: u64,
    /// Watchers per stream (all on the same key).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub watchers_per_stream: u64,
    /// Number of puts.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Puts per second (0 = unlimited).
    #[arg(long, default_value_t = 100.0)]
    pub put_rate: f64,
    /// Value size in bytes (at least 8).
    #[arg(long, default_value_t = 32)]
    pub val_size: u64,
}

#[derive(Args, Debug, Clone)]
pub struct LeaseKeepaliveArgs {
    /// Total number of keep-alive requests.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
}

#[derive(Args, Debug, Clone)]
pub struct LeaseGrantArgs {
    /// Number of leases to grant.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Their TTL in seconds (long enough to outlive the run).
    #[arg(long, default_value_t = 3600)]
    pub ttl: i64,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Small version of every row (a few minutes in all).
    #[arg(long)]
    pub quick: bool,
    /// The retcd binary (default: `retcd` next to this binary, else on PATH).
    #[arg(long)]
    pub retcd: Option<PathBuf>,
    /// The etcd binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd: PathBuf,
    /// Which servers to run, in order (comma list of etcd, retcd).
    #[arg(long, value_delimiter = ',', default_value = "etcd,retcd")]
    pub servers: Vec<String>,
    /// Only run rows whose id contains one of these (comma list; see --list-rows).
    #[arg(long, value_delimiter = ',')]
    pub rows: Vec<String>,
    /// Print the suite's rows and exit.
    #[arg(long)]
    pub list_rows: bool,
    /// Where the temporary data dirs and server logs go (default: the system temp dir).
    #[arg(long)]
    pub workdir: Option<PathBuf>,
    /// Keep the data dirs and logs afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Stop a row that runs longer than this (Go duration).
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub row_timeout: Duration,
    /// Also write the markdown table to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Parses a Go duration (`300ms`, `2s`, `1m30s`, `1.5h`, `0`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<f64>() {
        return if secs >= 0.0 && secs.is_finite() {
            Ok(Duration::from_secs_f64(secs))
        } else {
            Err(format!("invalid duration {s:?}"))
        };
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("retcd-bench").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("3x").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn global_flags_before_and_after_the_workload() {
        let c = parse(&[
            "--endpoints",
            "10.0.0.1:2379,http://10.0.0.2:2379",
            "--conns=10",
            "--clients",
            "100",
            "put",
            "--total=5",
            "--target-leader",
            "--dial-timeout=2s",
            "--json",
        ]);
        assert_eq!(c.global.endpoints, vec!["10.0.0.1:2379", "http://10.0.0.2:2379"]);
        assert_eq!(c.global.conns, 10);
        assert_eq!(c.global.clients, 100);
        assert!(c.global.target_leader);
        assert!(c.global.json);
        assert_eq!(c.global.dial_timeout, Duration::from_secs(2));
        match c.command {
            Command::Put(p) => {
                assert_eq!(p.total, 5);
                assert_eq!(p.key_size, 8);
                assert_eq!(p.val_size, 8);
                assert_eq!(p.key_space_size, 1);
                assert!(!p.sequential_keys);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn put_flags() {
        let c = parse(&[
            "put",
            "--key-size",
            "16",
            "--val-size=256",
            "--sequential-keys",
            "--key-space-size",
            "100000",
            "--rate",
            "500",
        ]);
        let Command::Put(p) = c.command else { panic!() };
        assert_eq!((p.key_size, p.val_size, p.key_space_size), (16, 256, 100000));
        assert!(p.sequential_keys);
        assert_eq!(p.rate, 500.0);
    }

    #[test]
    fn range_flags() {
        let c = parse(&[
            "range",
            "foo",
            "fop",
            "--consistency",
            "s",
            "--limit=10",
            "--count-only",
        ]);
        let Command::Range(r) = c.command else { panic!() };
        assert_eq!(r.key, "foo");
        assert_eq!(r.end.as_deref(), Some("fop"));
        assert_eq!(r.consistency, Consistency::S);
        assert_eq!(r.limit, 10);
        assert!(r.count_only && !r.keys_only);
        let c = parse(&["range", "foo"]);
        let Command::Range(r) = c.command else { panic!() };
        assert_eq!(r.consistency, Consistency::L);
        assert_eq!(r.end, None);
        assert!(Cli::try_parse_from(["retcd-bench", "range", "k", "--consistency", "x"]).is_err());
        assert!(Cli::try_parse_from(["retcd-bench", "range"]).is_err());
    }

    #[test]
    fn txn_and_other_flags() {
        let Command::TxnPut(t) = parse(&["txn-put", "--txn-ops", "4", "--key-space-size=100"]).command else {
            panic!()
        };
        assert_eq!((t.txn_ops, t.key_space_size), (4, 100));
        let Command::TxnMixed(t) = parse(&["txn-mixed", "--rw-ratio", "4", "--consistency=s"]).command else {
            panic!()
        };
        assert_eq!(t.rw_ratio, 4.0);
        assert_eq!(t.consistency, Consistency::S);
        let Command::Load(l) = parse(&["load", "--total", "1000000", "--batch=1"]).command else {
            panic!()
        };
        assert_eq!((l.total, l.batch, l.prefix.as_str()), (1000000, 1, "load/"));
        let Command::Scan(s) = parse(&["scan", "--expect", "7"]).command else {
            panic!()
        };
        assert_eq!(s.expect, Some(7));
        let Command::Compare(c) = parse(&["compare", "--quick", "--retcd", "/x/retcd"]).command else {
            panic!()
        };
        assert!(c.quick);
        assert_eq!(c.etcd, PathBuf::from("/usr/bin/etcd"));
        assert_eq!(c.servers, vec!["etcd", "retcd"]);
        assert!(Cli::try_parse_from(["retcd-bench", "put", "--conns", "0"]).is_err());
        let c = parse(&[
            "--user",
            "root:pw",
            "--cacert",
            "/ca.pem",
            "watch",
            "--streams",
            "2",
        ]);
        assert_eq!(c.global.user.as_deref(), Some("root:pw"));
        assert_eq!(c.global.cacert, Some(PathBuf::from("/ca.pem")));
        let Command::Watch(w) = c.command else { panic!() };
        assert_eq!(w.streams, 2);
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
