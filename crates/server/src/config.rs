//! The server's configuration: etcd's flag names, `ETCD_*` environment variables and etcd's
//! YAML `--config-file` keys. Flags that only tune etcd internals are accepted with a warning.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// etcd flags retcd accepts but has no use for (they tune etcd internals or belong to
/// features not built yet); `true` when the flag takes a value.
const IGNORED_FLAGS: &[(&str, bool)] = &[
    ("max-snapshots", true),
    ("max-wals", true),
    ("backend-batch-interval", true),
    ("backend-batch-limit", true),
    ("backend-bbolt-freelist-type", true),
    ("max-concurrent-streams", true),
    ("grpc-keepalive-min-time", true),
    ("grpc-keepalive-interval", true),
    ("grpc-keepalive-timeout", true),
    ("enable-pprof", false),
    ("metrics", true),
    ("log-outputs", true),
    ("log-package-levels", true),
    ("enable-v2", true),
    ("enable-grpc-gateway", true),
    ("strict-reconfig-check", true),
    ("pre-vote", true),
    ("cors", true),
    ("host-whitelist", true),
    ("initial-election-tick-advance", true),
    ("socket-reuse-port", true),
    ("socket-reuse-address", true),
    ("unsafe-no-fsync", true),
    ("debug", false),
    ("enable-log-rotation", false),
    ("log-rotation-config-json", true),
    ("wal-dir", true),
    ("max-txn-ops-per-request", true),
    ("experimental-enable-v2v3", true),
    ("experimental-warning-apply-duration", true),
    ("experimental-backend-bbolt-freelist-type", true),
    ("experimental-txn-mode-write-with-shared-buffer", true),
    ("experimental-memory-mlock", true),
];

/// Flags of features that are not built yet and that must not silently be ignored (ignoring
/// them would accept peers or clients the operator meant to refuse).
const REFUSED_FLAGS: &[&str] = &["discovery", "discovery-srv", "proxy"];

#[derive(Parser, Debug, Clone)]
#[command(
    name = "retcd",
    version,
    about = "retcd: an etcd-compatible, strongly consistent key-value store",
    // a flag given twice: the last wins, as with etcd's Go flags
    args_override_self = true
)]
pub struct Flags {
    /// Human-readable name for this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,
    /// Path to the data directory (default: ${name}.retcd).
    #[arg(long = "data-dir", env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// List of URLs to listen on for client traffic.
    #[arg(
        long = "listen-client-urls",
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub listen_client_urls: String,
    /// List of this member's client URLs to advertise to the public.
    #[arg(
        long = "advertise-client-urls",
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://localhost:2379"
    )]
    pub advertise_client_urls: String,
    /// List of URLs to listen on for peer traffic.
    #[arg(
        long = "listen-peer-urls",
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub listen_peer_urls: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(
        long = "initial-advertise-peer-urls",
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://localhost:2380"
    )]
    pub initial_advertise_peer_urls: String,
    /// Initial cluster configuration for bootstrapping (name=peerURL,...).
    #[arg(long = "initial-cluster", env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// Initial cluster token for the cluster during bootstrap.
    #[arg(
        long = "initial-cluster-token",
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,
    /// Initial cluster state ('new' or 'existing').
    #[arg(
        long = "initial-cluster-state",
        env = "ETCD_INITIAL_CLUSTER_STATE",
        default_value = "new"
    )]
    pub initial_cluster_state: String,
    /// Number of committed transactions to trigger a snapshot (raft log compaction).
    #[arg(
        long = "snapshot-count",
        env = "ETCD_SNAPSHOT_COUNT",
        default_value_t = 100_000
    )]
    pub snapshot_count: u64,
    /// Entries kept in the raft log behind a snapshot so slow followers catch up from the
    /// log rather than by a snapshot.
    #[arg(
        long = "experimental-snapshot-catchup-entries",
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value_t = 5000
    )]
    pub experimental_snapshot_catchup_entries: u64,
    /// Maximum client request size in bytes the server will accept.
    #[arg(
        long = "max-request-bytes",
        env = "ETCD_MAX_REQUEST_BYTES",
        default_value_t = 1_572_864
    )]
    pub max_request_bytes: u64,
    /// Maximum number of operations permitted in a transaction.
    #[arg(long = "max-txn-ops", env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: u64,
    /// Raise alarms when backend size exceeds the given quota (0 defaults to 2 GiB; negative: no quota).
    #[arg(
        long = "quota-backend-bytes",
        env = "ETCD_QUOTA_BACKEND_BYTES",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub quota_backend_bytes: i64,
    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(
        long = "heartbeat-interval",
        env = "ETCD_HEARTBEAT_INTERVAL",
        default_value_t = 100
    )]
    pub heartbeat_interval: u64,
    /// Time (in milliseconds) for an election to timeout.
    #[arg(
        long = "election-timeout",
        env = "ETCD_ELECTION_TIMEOUT",
        default_value_t = 1000
    )]
    pub election_timeout: u64,
    /// Log level: debug, info, warn, error, panic, fatal.
    #[arg(long = "log-level", env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Logger: 'zap' (structured JSON, etcd's default) or 'capnslog' (plain text).
    #[arg(long = "logger", env = "ETCD_LOGGER", default_value = "zap")]
    pub logger: String,
    /// Duration of periodic watch progress notifications (Go duration, e.g. 5s, 10m0s).
    #[arg(
        long = "experimental-watch-progress-notify-interval",
        env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL",
        default_value = "10m0s"
    )]
    pub experimental_watch_progress_notify_interval: String,
    /// Enable lease checkpointing: long leases keep their remaining TTL across leader changes.
    #[arg(
        long = "experimental-enable-lease-checkpoint",
        env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub experimental_enable_lease_checkpoint: bool,
    /// How often leases are checkpointed when checkpointing is on (Go duration).
    #[arg(
        long = "experimental-lease-checkpoint-interval",
        env = "ETCD_EXPERIMENTAL_LEASE_CHECKPOINT_INTERVAL",
        default_value = "5m0s"
    )]
    pub experimental_lease_checkpoint_interval: String,
    /// How auth tokens are made: `simple`, or `jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m`.
    #[arg(long = "auth-token", env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,
    /// Seconds a simple token lives without being used.
    #[arg(long = "auth-token-ttl", env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,
    /// bcrypt cost of password hashes (4..=31).
    #[arg(long = "bcrypt-cost", env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,
    /// List of URLs to listen on for the metrics and health endpoints (https ones use the
    /// client certificate).
    #[arg(
        long = "listen-metrics-urls",
        env = "ETCD_LISTEN_METRICS_URLS",
        default_value = ""
    )]
    pub listen_metrics_urls: String,
    /// Revisions deleted per backend transaction while a compaction removes history.
    #[arg(
        long = "experimental-compaction-batch-limit",
        env = "ETCD_EXPERIMENTAL_COMPACTION_BATCH_LIMIT",
        default_value_t = 1000
    )]
    pub experimental_compaction_batch_limit: usize,
    /// Enable to check data corruption before serving any client/peer traffic.
    #[arg(
        long = "experimental-initial-corrupt-check",
        env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub experimental_initial_corrupt_check: bool,
    /// Duration of time between cluster corruption check passes (0s: off).
    #[arg(
        long = "experimental-corrupt-check-time",
        env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME",
        default_value = "0s"
    )]
    pub experimental_corrupt_check_time: String,
    /// Interpret 'auto-compaction-retention' one of: periodic|revision.
    #[arg(
        long = "auto-compaction-mode",
        env = "ETCD_AUTO_COMPACTION_MODE",
        default_value = "periodic"
    )]
    pub auto_compaction_mode: String,
    /// Auto compaction retention for mvcc key value store (periodic: a duration or hours;
    /// revision: a number of revisions). 0 means disable auto compaction.
    #[arg(
        long = "auto-compaction-retention",
        env = "ETCD_AUTO_COMPACTION_RETENTION",
        default_value = "0"
    )]
    pub auto_compaction_retention: String,
    /// Force to create a new one-member cluster from this member's data (disaster recovery).
    #[arg(
        long = "force-new-cluster",
        env = "ETCD_FORCE_NEW_CLUSTER",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub force_new_cluster: bool,
    /// Path to the server configuration file (etcd's YAML keys). Flags and env are ignored when set.
    #[arg(long = "config-file", env = "ETCD_CONFIG_FILE")]
    pub config_file: Option<PathBuf>,
    #[command(flatten)]
    pub tls: crate::tls::TlsFlags,
}

/// etcd's YAML configuration file (same keys as the flags).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileConfig {
    name: Option<String>,
    #[serde(rename = "data-dir")]
    data_dir: Option<PathBuf>,
    #[serde(rename = "listen-client-urls")]
    listen_client_urls: Option<String>,
    #[serde(rename = "advertise-client-urls")]
    advertise_client_urls: Option<String>,
    #[serde(rename = "listen-peer-urls")]
    listen_peer_urls: Option<String>,
    #[serde(rename = "initial-advertise-peer-urls")]
    initial_advertise_peer_urls: Option<String>,
    #[serde(rename = "initial-cluster")]
    initial_cluster: Option<String>,
    #[serde(rename = "initial-cluster-token")]
    initial_cluster_token: Option<String>,
    #[serde(rename = "initial-cluster-state")]
    initial_cluster_state: Option<String>,
    #[serde(rename = "snapshot-count")]
    snapshot_count: Option<u64>,
    #[serde(rename = "experimental-snapshot-catchup-entries")]
    experimental_snapshot_catchup_entries: Option<u64>,
    #[serde(rename = "max-request-bytes")]
    max_request_bytes: Option<u64>,
    #[serde(rename = "max-txn-ops")]
    max_txn_ops: Option<u64>,
    #[serde(rename = "quota-backend-bytes")]
    quota_backend_bytes: Option<i64>,
    #[serde(rename = "heartbeat-interval")]
    heartbeat_interval: Option<u64>,
    #[serde(rename = "election-timeout")]
    election_timeout: Option<u64>,
    #[serde(rename = "log-level")]
    log_level: Option<String>,
    #[serde(rename = "experimental-watch-progress-notify-interval")]
    experimental_watch_progress_notify_interval: Option<String>,
    #[serde(rename = "force-new-cluster")]
    force_new_cluster: Option<bool>,
    #[serde(rename = "experimental-enable-lease-checkpoint")]
    experimental_enable_lease_checkpoint: Option<bool>,
    #[serde(rename = "experimental-lease-checkpoint-interval")]
    experimental_lease_checkpoint_interval: Option<String>,
    logger: Option<String>,
    #[serde(rename = "auth-token")]
    auth_token: Option<String>,
    #[serde(rename = "auth-token-ttl")]
    auth_token_ttl: Option<u64>,
    #[serde(rename = "bcrypt-cost")]
    bcrypt_cost: Option<u32>,
    #[serde(rename = "experimental-initial-corrupt-check")]
    experimental_initial_corrupt_check: Option<bool>,
    #[serde(rename = "experimental-corrupt-check-time")]
    experimental_corrupt_check_time: Option<String>,
    #[serde(rename = "experimental-compaction-batch-limit")]
    experimental_compaction_batch_limit: Option<usize>,
    #[serde(rename = "listen-metrics-urls")]
    listen_metrics_urls: Option<String>,
    #[serde(rename = "auto-compaction-mode")]
    auto_compaction_mode: Option<String>,
    /// a string or a number in YAML
    #[serde(rename = "auto-compaction-retention")]
    auto_compaction_retention: Option<serde_json::Value>,
    /// (before `other`, which gets the keys nothing else takes)
    #[serde(flatten)]
    tls: crate::tls::TlsFileConfig,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client_urls: Vec<String>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer_urls: Vec<String>,
    pub initial_advertise_peer_urls: Vec<String>,
    /// name -> peer URLs
    pub initial_cluster: BTreeMap<String, Vec<String>>,
    pub initial_cluster_token: String,
    pub initial_cluster_state: String,
    pub snapshot_count: u64,
    pub snapshot_catchup_entries: u64,
    pub max_request_bytes: u64,
    pub max_txn_ops: u64,
    pub quota_backend_bytes: i64,
    pub heartbeat_interval: u64,
    pub election_timeout: u64,
    pub log_level: String,
    pub logger: String,
    pub watch_progress_notify_interval: std::time::Duration,
    pub force_new_cluster: bool,
    /// `Some(interval)` when lease checkpointing is on.
    pub lease_checkpoint_interval: Option<std::time::Duration>,
    /// `--auth-token`, parsed.
    pub auth_token: retcd_auth::TokenConfig,
    pub auth_token_ttl: std::time::Duration,
    pub bcrypt_cost: u32,
    pub auto_compaction: crate::compactor::AutoCompaction,
    pub listen_metrics_urls: Vec<String>,
    pub initial_corrupt_check: bool,
    pub compaction_batch_limit: usize,
    /// `Some(interval)` when the leader checks the members' hashes periodically.
    pub corrupt_check_time: Option<std::time::Duration>,
    /// Client and peer TLS (checked; the files are read at start).
    pub tls: crate::tls::TlsSettings,
    /// Warnings to log once logging is up (ignored flags, ...).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Clap(#[from] clap::Error),
}

fn split_urls(s: &str) -> Vec<String> {
    s.split(',')
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

fn check_urls(flag: &str, urls: &[String]) -> Result<(), ConfigError> {
    if urls.is_empty() {
        return Err(ConfigError::Invalid(format!("--{flag} must not be empty")));
    }
    for u in urls {
        if u.starts_with("unixs://") {
            return Err(ConfigError::Invalid(format!(
                "--{flag}: TLS over unix sockets ({u:?}) is not supported"
            )));
        }
        if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("unix://")) {
            return Err(ConfigError::Invalid(format!(
                "--{flag}: URL scheme must be http, https, unix or unixs: {u}"
            )));
        }
    }
    Ok(())
}

/// Parses a Go duration such as `5s`, `10m0s`, `1h30m`, `250ms`.
pub fn parse_go_duration(s: &str) -> Option<std::time::Duration> {
    let mut rest = s.trim();
    if rest == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * secs;
    }
    Some(std::time::Duration::from_secs_f64(total))
}

/// Parses `name=url,name=url` (a name may repeat for several URLs).
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, url) = part.split_once('=').ok_or_else(|| {
            ConfigError::Invalid(format!("--initial-cluster: bad entry {part:?} (want name=url)"))
        })?;
        out.entry(name.to_string()).or_default().push(url.to_string());
    }
    Ok(out)
}

/// Removes etcd flags retcd ignores from `args`, returning the warnings; refuses flags of
/// features that must not be ignored.
fn strip_ignored(args: Vec<String>) -> Result<(Vec<String>, Vec<String>), ConfigError> {
    let mut out = Vec::with_capacity(args.len());
    let mut warnings = Vec::new();
    let mut it = args.into_iter();
    if let Some(first) = it.next() {
        out.push(first);
    }
    while let Some(a) = it.next() {
        let Some(flag) = a
            .strip_prefix("--")
            .or_else(|| a.strip_prefix('-').filter(|f| f.len() > 1))
        else {
            out.push(a);
            continue;
        };
        let (name, inline_value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        if REFUSED_FLAGS.contains(&name) {
            return Err(ConfigError::Invalid(format!(
                "--{name} is not supported yet by retcd (certificate name checks, discovery and proxy are separate issues)"
            )));
        }
        if let Some((_, takes_value)) = IGNORED_FLAGS.iter().find(|(n, _)| *n == name) {
            let value = if *takes_value && inline_value.is_none() {
                it.next()
            } else {
                inline_value
            };
            warnings.push(format!(
                "ignoring etcd flag --{name}{} (it tunes etcd internals or a feature retcd does not have yet)",
                value.map(|v| format!("={v}")).unwrap_or_default()
            ));
            continue;
        }
        out.push(a);
    }
    Ok((out, warnings))
}

impl Config {
    pub fn from_args(args: Vec<String>) -> Result<Config, ConfigError> {
        let (args, mut warnings) = strip_ignored(args)?;
        let f = Flags::try_parse_from(args)?;
        let mut f = f;
        if let Some(path) = f.config_file.clone() {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::Invalid(format!("cannot read --config-file {}: {e}", path.display()))
            })?;
            let fc: FileConfig = serde_saphyr::from_str(&text).map_err(|e| {
                ConfigError::Invalid(format!("cannot parse --config-file {}: {e}", path.display()))
            })?;
            macro_rules! take {
                ($field:ident) => {
                    if let Some(v) = fc.$field {
                        f.$field = v;
                    }
                };
            }
            take!(name);
            take!(listen_client_urls);
            take!(advertise_client_urls);
            take!(listen_peer_urls);
            take!(initial_advertise_peer_urls);
            take!(initial_cluster_token);
            take!(initial_cluster_state);
            take!(snapshot_count);
            take!(experimental_snapshot_catchup_entries);
            take!(max_request_bytes);
            take!(max_txn_ops);
            take!(quota_backend_bytes);
            take!(heartbeat_interval);
            take!(election_timeout);
            take!(log_level);
            take!(experimental_watch_progress_notify_interval);
            take!(experimental_enable_lease_checkpoint);
            take!(force_new_cluster);
            take!(experimental_lease_checkpoint_interval);
            take!(logger);
            take!(auth_token);
            take!(auth_token_ttl);
            take!(bcrypt_cost);
            take!(auto_compaction_mode);
            take!(listen_metrics_urls);
            take!(experimental_compaction_batch_limit);
            take!(experimental_initial_corrupt_check);
            take!(experimental_corrupt_check_time);
            if let Some(v) = fc.auto_compaction_retention {
                f.auto_compaction_retention = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
            }
            f.tls.apply_file(fc.tls);
            if fc.data_dir.is_some() {
                f.data_dir = fc.data_dir;
            }
            if fc.initial_cluster.is_some() {
                f.initial_cluster = fc.initial_cluster;
            }
            for key in fc.other.keys() {
                if REFUSED_FLAGS.contains(&key.as_str()) {
                    return Err(ConfigError::Invalid(format!(
                        "config key {key:?} is not supported yet by retcd"
                    )));
                }
                warnings.push(format!("ignoring config-file key {key:?}"));
            }
        }
        let listen_client_urls = split_urls(&f.listen_client_urls);
        let advertise_client_urls = split_urls(&f.advertise_client_urls);
        let listen_peer_urls = split_urls(&f.listen_peer_urls);
        let initial_advertise_peer_urls = split_urls(&f.initial_advertise_peer_urls);
        check_urls("listen-client-urls", &listen_client_urls)?;
        check_urls("advertise-client-urls", &advertise_client_urls)?;
        check_urls("listen-peer-urls", &listen_peer_urls)?;
        check_urls("initial-advertise-peer-urls", &initial_advertise_peer_urls)?;
        let listen_metrics_urls = split_urls(&f.listen_metrics_urls);
        if let Some(u) = listen_metrics_urls
            .iter()
            .find(|u| !(u.starts_with("http://") || u.starts_with("https://")))
        {
            return Err(ConfigError::Invalid(format!(
                "--listen-metrics-urls {u:?}: want http:// or https:// URLs"
            )));
        }
        // https metrics URLs use the client certificate, as etcd's
        let served: Vec<String> = listen_client_urls
            .iter()
            .chain(listen_metrics_urls.iter())
            .cloned()
            .collect();
        let (tls, tls_warnings) = crate::tls::TlsSettings::resolve(&f.tls, &served, &listen_peer_urls)
            .map_err(ConfigError::Invalid)?;
        warnings.extend(tls_warnings);
        let initial_cluster = match &f.initial_cluster {
            Some(s) => parse_initial_cluster(s)?,
            None => [(f.name.clone(), initial_advertise_peer_urls.clone())]
                .into_iter()
                .collect(),
        };
        match initial_cluster.get(&f.name) {
            None => {
                return Err(ConfigError::Invalid(format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    f.name
                )));
            }
            Some(urls) => {
                let mut a = urls.clone();
                let mut b = initial_advertise_peer_urls.clone();
                a.sort();
                b.sort();
                if a != b {
                    return Err(ConfigError::Invalid(format!(
                        "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (peer URLs must match)",
                        f.name,
                        urls.join(","),
                        initial_advertise_peer_urls.join(",")
                    )));
                }
            }
        }
        if f.initial_cluster_state != "new" && f.initial_cluster_state != "existing" {
            return Err(ConfigError::Invalid(format!(
                "invalid value {:?} for --initial-cluster-state: valid values are \"new\" or \"existing\"",
                f.initial_cluster_state
            )));
        }
        if f.max_txn_ops == 0 {
            return Err(ConfigError::Invalid("--max-txn-ops must be positive".into()));
        }
        let watch_progress_notify_interval =
            parse_go_duration(&f.experimental_watch_progress_notify_interval)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "invalid --experimental-watch-progress-notify-interval {:?} (want e.g. 5s or 10m0s)",
                        f.experimental_watch_progress_notify_interval
                    ))
                })?;
        let auth_token = retcd_auth::TokenConfig::parse(&f.auth_token)
            .map_err(|e| ConfigError::Invalid(format!("--auth-token {:?}: {e}", f.auth_token)))?;
        let lease_checkpoint_interval = parse_go_duration(&f.experimental_lease_checkpoint_interval)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "invalid --experimental-lease-checkpoint-interval {:?} (want e.g. 5m0s)",
                    f.experimental_lease_checkpoint_interval
                ))
            })?;
        let corrupt_check_time = parse_go_duration(&f.experimental_corrupt_check_time).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "invalid --experimental-corrupt-check-time {:?} (want e.g. 5m0s)",
                f.experimental_corrupt_check_time
            ))
        })?;
        let auto_compaction =
            crate::compactor::AutoCompaction::parse(&f.auto_compaction_mode, &f.auto_compaction_retention)
                .map_err(ConfigError::Invalid)?;
        let data_dir = f
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.retcd", f.name)));
        Ok(Config {
            name: f.name,
            data_dir,
            listen_client_urls,
            advertise_client_urls,
            listen_peer_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_token: f.initial_cluster_token,
            initial_cluster_state: f.initial_cluster_state,
            snapshot_count: f.snapshot_count,
            snapshot_catchup_entries: f.experimental_snapshot_catchup_entries,
            max_request_bytes: f.max_request_bytes,
            max_txn_ops: f.max_txn_ops,
            // etcd: 0 is the default quota, a negative one disables the check
            quota_backend_bytes: if f.quota_backend_bytes == 0 {
                crate::alarm::DEFAULT_QUOTA_BYTES
            } else {
                f.quota_backend_bytes
            },
            heartbeat_interval: f.heartbeat_interval.max(1),
            election_timeout: f.election_timeout.max(1),
            log_level: f.log_level,
            logger: f.logger,
            watch_progress_notify_interval,
            force_new_cluster: f.force_new_cluster,
            lease_checkpoint_interval: f
                .experimental_enable_lease_checkpoint
                .then_some(lease_checkpoint_interval),
            auth_token,
            auth_token_ttl: std::time::Duration::from_secs(f.auth_token_ttl),
            bcrypt_cost: retcd_auth::effective_bcrypt_cost(f.bcrypt_cost),
            auto_compaction,
            listen_metrics_urls,
            initial_corrupt_check: f.experimental_initial_corrupt_check,
            compaction_batch_limit: f.experimental_compaction_batch_limit.max(1),
            corrupt_check_time: (!corrupt_check_time.is_zero()).then_some(corrupt_check_time),
            tls,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        std::iter::once("retcd")
            .chain(a.iter().copied())
            .map(String::from)
            .collect()
    }

    #[test]
    fn defaults_match_etcd() {
        let c = Config::from_args(args(&[])).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.retcd"));
        assert_eq!(c.listen_client_urls, vec!["http://localhost:2379"]);
        assert_eq!(c.max_txn_ops, 128);
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!(c.quota_backend_bytes, 2 << 30);
        assert_eq!(c.auto_compaction, crate::compactor::AutoCompaction::Off);
        assert_eq!(c.initial_cluster["default"], vec!["http://localhost:2380"]);
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value() {
        let c = Config::from_args(args(&[
            "--listen-client-urls",
            "http://127.0.0.1:1",
            "--name=a",
            "--listen-client-urls=http://127.0.0.1:2",
            "--name",
            "b",
        ]))
        .unwrap();
        assert_eq!(c.listen_client_urls, vec!["http://127.0.0.1:2"]);
        assert_eq!(c.name, "b");
    }

    #[test]
    fn ignored_flags_warn_and_refused_flags_fail() {
        let c = Config::from_args(args(&[
            "--max-wals",
            "5",
            "--enable-pprof",
            "--name=x",
            "--initial-cluster",
            "x=http://localhost:2380",
        ]))
        .unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.warnings.len(), 2);
        assert!(Config::from_args(args(&["--discovery", "https://d"])).is_err());
        assert!(Config::from_args(args(&["--no-such-flag"])).is_err());
    }

    #[test]
    fn go_durations() {
        use std::time::Duration;
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("10m0s"), Some(Duration::from_secs(600)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("x"), None);
        let c = Config::from_args(args(&["--experimental-watch-progress-notify-interval", "5s"])).unwrap();
        assert_eq!(c.watch_progress_notify_interval, Duration::from_secs(5));
        assert!(Config::from_args(args(&["--experimental-watch-progress-notify-interval", "soon"])).is_err());
    }

    #[test]
    fn lease_checkpoint_flags() {
        use std::time::Duration;
        assert_eq!(
            Config::from_args(args(&[])).unwrap().lease_checkpoint_interval,
            None
        );
        let c = Config::from_args(args(&["--experimental-enable-lease-checkpoint"])).unwrap();
        assert_eq!(c.lease_checkpoint_interval, Some(Duration::from_secs(300)));
        let c = Config::from_args(args(&[
            "--experimental-enable-lease-checkpoint=true",
            "--experimental-lease-checkpoint-interval",
            "2s",
        ]))
        .unwrap();
        assert_eq!(c.lease_checkpoint_interval, Some(Duration::from_secs(2)));
        let c = Config::from_args(args(&["--experimental-enable-lease-checkpoint=false"])).unwrap();
        assert_eq!(c.lease_checkpoint_interval, None);
    }

    #[test]
    fn initial_cluster_must_name_this_member() {
        let e = Config::from_args(args(&["--initial-cluster", "other=http://localhost:2380"])).unwrap_err();
        assert!(e.to_string().contains("couldn't find local name"), "{e}");
    }

    #[test]
    fn config_file_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(
            &p,
            "name: m1\ndata-dir: /tmp/x\nlisten-client-urls: http://127.0.0.1:1\nmax-txn-ops: 7\ninitial-cluster: m1=http://localhost:2380\nenable-v2: false\n",
        )
        .unwrap();
        let c = Config::from_args(args(&["--config-file", p.to_str().unwrap()])).unwrap();
        assert_eq!(c.name, "m1");
        assert_eq!(c.max_txn_ops, 7);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.warnings.len(), 1);
    }
}
