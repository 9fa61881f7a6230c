//! The command line: etcdctl 3.4's commands, flags and `ETCDCTL_*` environment variables.
//!
//! Boolean flags take Go's forms (`--prefix`, `--prefix=true`, `--prefix=false`). Positional
//! arguments are collected as-is and checked by each command, so that wrong counts produce
//! etcdctl's own messages and exit codes. Global flags are plain strings here and resolved
//! (flag or environment, never both) by [`Global::resolve`].

use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand};

use crate::client::{Deferred, Discovery, Settings, TlsSettings};
use crate::gofmt;
use crate::output::{Format, Out};

/// Go's `strconv.ParseBool`.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            gofmt::quote(s.as_bytes())
        )),
    }
}

/// A boolean flag kept as given (`None` when absent) but checked as pflag parses it.
fn go_bool_str(s: &str) -> Result<String, String> {
    go_bool(s).map(|_| s.to_string())
}

/// A duration flag kept as given, checked as pflag parses it (Go's `time.ParseDuration`).
fn go_duration_str(s: &str) -> Result<String, String> {
    gofmt::check_duration(s).map(|_| s.to_string())
}

/// An int flag as pflag parses it (Go's `strconv.ParseInt(s, 0, 64)`).
fn go_int(s: &str) -> Result<i64, String> {
    gofmt::parse_int(s)
}

/// A boolean global flag (or its `ETCDCTL_*` variable): `default` when absent; a value Go
/// cannot parse fails as etcdctl's flag parsing does.
fn flag_bool(v: &Option<String>, name: &str, default: bool) -> Result<bool, String> {
    match v {
        None => Ok(default),
        Some(s) => {
            go_bool(s).map_err(|e| format!("Error: invalid argument {s:?} for \"--{name}\" flag: {e}"))
        }
    }
}

/// The retcdctl command line.
#[derive(Debug, Parser)]
#[command(
    name = "retcdctl",
    about = "A simple command line client for etcd3.",
    version = None,
    disable_version_flag = true,
    disable_help_flag = true,
    disable_help_subcommand = true,
    args_override_self = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The global flags, as given on the command line (`None` when absent).
#[derive(Debug, Args)]
pub struct Global {
    /// gRPC endpoints
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub endpoints: Option<String>,
    /// dial timeout for client connections
    #[arg(long, global = true, allow_hyphen_values = true, value_parser = go_duration_str)]
    pub dial_timeout: Option<String>,
    /// timeout for short running command (excluding dial timeout)
    #[arg(long, global = true, allow_hyphen_values = true, value_parser = go_duration_str)]
    pub command_timeout: Option<String>,
    /// keepalive time for client connections
    #[arg(long, global = true, allow_hyphen_values = true, value_parser = go_duration_str)]
    pub keepalive_time: Option<String>,
    /// keepalive timeout for client connections
    #[arg(long, global = true, allow_hyphen_values = true, value_parser = go_duration_str)]
    pub keepalive_timeout: Option<String>,
    /// set the output format (fields, json, protobuf, simple, table)
    #[arg(short = 'w', long, global = true, allow_hyphen_values = true)]
    pub write_out: Option<String>,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool_str)]
    pub hex: Option<String>,
    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub user: Option<String>,
    /// password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub password: Option<String>,
    /// disable transport security for client connections
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool_str)]
    pub insecure_transport: Option<String>,
    /// skip server certificate verification (CAUTION: this option should be enabled only for testing purposes)
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool_str)]
    pub insecure_skip_tls_verify: Option<String>,
    /// accept insecure SRV records describing cluster endpoints
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool_str)]
    pub insecure_discovery: Option<String>,
    /// enable client-side debug logging
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool_str)]
    pub debug: Option<String>,
    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub cacert: Option<String>,
    /// identify secure client using this TLS certificate file
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub cert: Option<String>,
    /// identify secure client using this TLS key file
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub key: Option<String>,
    /// domain name to query for SRV records describing cluster endpoints
    #[arg(short = 'd', long, global = true, allow_hyphen_values = true)]
    pub discovery_srv: Option<String>,
    /// service name to query when using DNS discovery
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub discovery_srv_name: Option<String>,
    /// help for the command: etcdctl's usage text
    #[arg(short = 'h', long, global = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub help: bool,
}

/// Global settings after flags and `ETCDCTL_*` variables are resolved.
#[derive(Debug)]
pub struct Resolved {
    pub settings: Settings,
    pub out: Out,
}

impl Global {
    /// Applies `ETCDCTL_<FLAG>` variables to flags not given on the command line. A flag given
    /// both ways is fatal, as in etcdctl, once a client is made (the flag's value is kept
    /// until then); `Err` carries the message of a variable's bad boolean.
    pub fn resolve(mut self) -> Result<Resolved, String> {
        let fields: [(&str, &mut Option<String>); 19] = [
            ("endpoints", &mut self.endpoints),
            ("dial-timeout", &mut self.dial_timeout),
            ("command-timeout", &mut self.command_timeout),
            ("keepalive-time", &mut self.keepalive_time),
            ("keepalive-timeout", &mut self.keepalive_timeout),
            ("write-out", &mut self.write_out),
            ("hex", &mut self.hex),
            ("user", &mut self.user),
            ("password", &mut self.password),
            ("insecure-transport", &mut self.insecure_transport),
            ("insecure-skip-tls-verify", &mut self.insecure_skip_tls_verify),
            ("insecure-discovery", &mut self.insecure_discovery),
            ("debug", &mut self.debug),
            ("cacert", &mut self.cacert),
            ("cert", &mut self.cert),
            ("key", &mut self.key),
            ("discovery-srv", &mut self.discovery_srv),
            ("discovery-srv-name", &mut self.discovery_srv_name),
            ("api", &mut None),
        ];
        let mut deferred = None;
        for (name, slot) in fields {
            let var = format!("ETCDCTL_{}", name.to_uppercase().replace('-', "_"));
            let Ok(v) = std::env::var(&var) else { continue };
            if v.is_empty() || name == "api" {
                continue;
            }
            if slot.is_some() {
                deferred.get_or_insert(Deferred::EnvConflict(format!(
                    "{} C | pkg/flags: conflicting environment variable \"{var}\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)",
                    gofmt::capnslog_now()
                )));
                continue;
            }
            *slot = Some(v);
        }
        let dur = |v: &Option<String>, default: u64| {
            v.as_deref()
                .and_then(gofmt::parse_duration)
                .unwrap_or(Duration::from_millis(default))
        };
        let endpoints = self
            .endpoints
            .as_deref()
            .unwrap_or("127.0.0.1:2379")
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let (pretty, color) = Out::terminal_style(self.write_out.is_some());
        let format = match Format::parse(self.write_out.as_deref().unwrap_or("simple")) {
            Ok(f) => f,
            Err(_) => {
                deferred.get_or_insert(Deferred::BadFormat);
                Format::Simple
            }
        };
        let discovery = self
            .discovery_srv
            .filter(|d| !d.is_empty())
            .map(|domain| -> Result<Discovery, String> {
                Ok(Discovery {
                    domain,
                    service_name: self.discovery_srv_name.clone().unwrap_or_default(),
                    insecure: flag_bool(&self.insecure_discovery, "insecure-discovery", true)?,
                })
            })
            .transpose()?;
        // etcdctl has TLS check the servers against the domain when discovery is secure
        let server_name = discovery
            .as_ref()
            .filter(|d| !d.insecure)
            .map(|d| d.domain.clone());
        Ok(Resolved {
            settings: Settings {
                endpoints,
                dial_timeout: dur(&self.dial_timeout, 2000),
                command_timeout: dur(&self.command_timeout, 5000),
                keepalive_time: dur(&self.keepalive_time, 2000),
                keepalive_timeout: dur(&self.keepalive_timeout, 6000),
                user: self.user.filter(|u| !u.is_empty()),
                password: self.password.filter(|p| !p.is_empty()),
                tls: TlsSettings {
                    cacert: self.cacert.filter(|s| !s.is_empty()),
                    cert: self.cert.filter(|s| !s.is_empty()),
                    key: self.key.filter(|s| !s.is_empty()),
                    insecure_transport: flag_bool(&self.insecure_transport, "insecure-transport", true)?,
                    insecure_skip_verify: flag_bool(
                        &self.insecure_skip_tls_verify,
                        "insecure-skip-tls-verify",
                        false,
                    )?,
                    server_name,
                },
                deferred,
                discovery,
                discovered: Default::default(),
            },
            out: Out {
                format,
                hex: self.hex.as_deref().is_some_and(|h| go_bool(h).unwrap_or(false)),
                pretty,
                color,
            },
        })
    }
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l", allow_hyphen_values = true)]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = go_int)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = go_int)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub keys_only: bool,
    /// Only get the count of keys (etcdctl 3.5; not in etcdctl 3.4's usage text)
    #[arg(long, hide = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub print_value_only: bool,
    pub args: Vec<String>,
}

/// `put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0", allow_hyphen_values = true)]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub ignore_lease: bool,
    pub args: Vec<String>,
}

/// `del`.
#[derive(Debug, Args)]
pub struct DelArgs {
    /// delete keys with matching prefix
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub from_key: bool,
    pub args: Vec<String>,
}

/// `txn`.
#[derive(Debug, Args)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short, long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub interactive: bool,
    pub args: Vec<String>,
}

/// `compaction`.
#[derive(Debug, Args)]
pub struct CompactionArgs {
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub physical: bool,
    pub args: Vec<String>,
}

/// `watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Interactive mode
    #[arg(short, long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = go_int)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub prev_kv: bool,
    /// KEY [RANGE_END]
    pub args: Vec<String>,
}

/// Commands that take only positional arguments.
#[derive(Debug, Args)]
pub struct Positional {
    pub args: Vec<String>,
}

/// `lease` subcommands.
#[derive(Debug, Subcommand)]
pub enum LeaseCmd {
    /// Creates leases
    Grant(Positional),
    /// Revokes leases
    Revoke(Positional),
    /// Get lease information
    Timetolive {
        /// Get keys attached to this lease
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        keys: bool,
        args: Vec<String>,
    },
    /// List all active leases
    List(Positional),
    /// Keeps leases alive (renew)
    #[command(name = "keep-alive")]
    KeepAlive {
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        once: bool,
        args: Vec<String>,
    },
}

/// `member` subcommands.
#[derive(Debug, Subcommand)]
pub enum MemberCmd {
    /// Adds a member into the cluster
    Add {
        #[arg(
            long,
            help = "comma separated peer URLs for the new member.",
            default_value = "",
            allow_hyphen_values = true
        )]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        learner: bool,
        args: Vec<String>,
    },
    /// Removes a member from the cluster
    Remove(Positional),
    /// Updates a member in the cluster
    Update {
        #[arg(
            long,
            help = "comma separated peer URLs for the updated member.",
            default_value = "",
            allow_hyphen_values = true
        )]
        peer_urls: String,
        args: Vec<String>,
    },
    /// Lists all members in the cluster
    List(Positional),
    /// Promotes a non-voting member in the cluster
    Promote(Positional),
}

/// `--cluster` for the endpoint commands.
#[derive(Debug, Args)]
pub struct ClusterFlag {
    /// use all endpoints from the cluster member list
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub cluster: bool,
}

/// `endpoint`: `--cluster` is the group's flag, given before or after the subcommand (as
/// etcdctl's persistent flag).
#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub cluster: bool,
    #[command(subcommand)]
    pub command: EndpointCmd,
}

/// `endpoint` subcommands.
#[derive(Debug, Subcommand)]
pub enum EndpointCmd {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health(Positional),
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status(Positional),
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv {
        /// maximum revision to hash (default: all revisions)
        #[arg(long, default_value = "0", allow_hyphen_values = true, value_parser = go_int)]
        rev: i64,
        args: Vec<String>,
    },
}

/// `alarm` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlarmCmd {
    /// Disarms all alarms
    Disarm(Positional),
    /// Lists all alarms
    List(Positional),
}

/// `snapshot` subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Stores an etcd node backend snapshot to a given file
    Save(Positional),
    /// Gets backend snapshot status of a given file
    Status(Positional),
    /// Restores an etcd member snapshot to an etcd directory
    Restore(RestoreArgs),
}

/// `snapshot restore` flags (etcdctl 3.4's).
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Path to the data directory
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub data_dir: String,
    /// Path to the WAL directory (use --data-dir if none given)
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub wal_dir: String,
    /// Initial cluster configuration for restore bootstrap
    #[arg(
        long,
        default_value = "default=http://localhost:2380",
        allow_hyphen_values = true
    )]
    pub initial_cluster: String,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster", allow_hyphen_values = true)]
    pub initial_cluster_token: String,
    /// List of this member's peer URLs to advertise to the rest of the cluster
    #[arg(long, default_value = "http://localhost:2380", allow_hyphen_values = true)]
    pub initial_advertise_peer_urls: String,
    /// Human-readable name for this member
    #[arg(long, default_value = "default", allow_hyphen_values = true)]
    pub name: String,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub skip_hash_check: bool,
    pub args: Vec<String>,
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Adds a new user
    Add {
        /// Read password from stdin instead of interactive terminal
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = go_bool)]
        interactive: bool,
        /// Supply password from the command line flag
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        new_user_password: String,
        /// Create a user without password (CN based auth only)
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        no_password: bool,
        args: Vec<String>,
    },
    /// Deletes a user
    Delete(Positional),
    /// Gets detailed information of a user
    Get {
        /// Show permissions of roles granted to the user
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        detail: bool,
        args: Vec<String>,
    },
    /// Lists all users
    List(Positional),
    /// Changes password of user
    Passwd {
        /// If true, read password from stdin instead of interactive terminal
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = go_bool)]
        interactive: bool,
        args: Vec<String>,
    },
    /// Grants a role to a user
    #[command(name = "grant-role")]
    GrantRole(Positional),
    /// Revokes a role from a user
    #[command(name = "revoke-role")]
    RevokeRole(Positional),
}

/// `role` subcommands.
#[derive(Debug, Subcommand)]
pub enum RoleCmd {
    /// Adds a new role
    Add(Positional),
    /// Deletes a role
    Delete(Positional),
    /// Gets detailed information of a role
    Get(Positional),
    /// Lists all roles
    List(Positional),
    /// Grants a key to a role
    #[command(name = "grant-permission")]
    GrantPermission {
        /// grant a prefix permission
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        prefix: bool,
        /// grant a permission of keys that are greater than or equal to the given key using byte compare
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        from_key: bool,
        args: Vec<String>,
    },
    /// Revokes a key from a role
    #[command(name = "revoke-permission")]
    RevokePermission {
        /// revoke a prefix permission
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        prefix: bool,
        /// revoke a permission of keys that are greater than or equal to the given key using byte compare
        #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        from_key: bool,
        args: Vec<String>,
    },
}

/// `make-mirror` flags (etcdctl 3.4's).
#[derive(Debug, Args)]
pub struct MirrorArgs {
    /// Verify certificates of TLS enabled secure servers using this CA bundle
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub dest_cacert: String,
    /// Identify secure client using this TLS certificate file for the destination cluster
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub dest_cert: String,
    /// Identify secure client using this TLS key file
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub dest_key: String,
    /// Disable transport security for client connections
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "true", default_missing_value = "true", value_parser = go_bool)]
    pub dest_insecure_transport: bool,
    /// destination prefix to mirror a prefix to a different prefix in the destination cluster
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub dest_prefix: String,
    /// mirror key-values to the root of the destination cluster
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub no_dest_prefix: bool,
    /// Key-value prefix to mirror
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub prefix: String,
    pub args: Vec<String>,
}

/// The flags `check perf` and `check datascale` share (their `--prefix` defaults differ).
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long, help = "Compact storage with last revision after test is finished.", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub auto_compact: bool,
    #[arg(long, help = "Defragment storage after test is finished.", action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub auto_defrag: bool,
    pub args: Vec<String>,
}

/// `check` subcommands.
#[derive(Debug, Subcommand)]
pub enum CheckCmd {
    /// Check the performance of the etcd cluster
    Perf {
        #[arg(
            long,
            default_value = "/etcdctl-check-perf/",
            allow_hyphen_values = true,
            help = "The prefix for writing the performance check's keys."
        )]
        prefix: String,
        #[arg(
            long,
            default_value = "s",
            allow_hyphen_values = true,
            help = "The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"
        )]
        load: String,
        #[command(flatten)]
        args: CheckArgs,
    },
    #[command(
        about = "Check the memory usage of holding data for different workloads on a given server endpoint."
    )]
    Datascale {
        #[arg(
            long,
            default_value = "/etcdctl-check-datascale/",
            allow_hyphen_values = true,
            help = "The prefix for writing the datascale check's keys."
        )]
        prefix: String,
        #[arg(
            long,
            default_value = "s",
            allow_hyphen_values = true,
            help = "The datascale check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)"
        )]
        load: String,
        #[command(flatten)]
        args: CheckArgs,
    },
}

/// `auth` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Enables authentication
    Enable(Positional),
    /// Disables authentication
    Disable(Positional),
    /// Returns authentication status (etcdctl 3.5; not in etcdctl 3.4's usage text)
    #[command(hide = true)]
    Status(Positional),
}

/// `completion` subcommands: a script for each shell (clap_complete's, not cobra's).
#[derive(Debug, Subcommand)]
pub enum CompletionCmd {
    /// Generate the autocompletion script for bash
    Bash,
    /// Generate the autocompletion script for fish
    Fish,
    /// Generate the autocompletion script for powershell
    Powershell,
    /// Generate the autocompletion script for zsh
    Zsh,
    /// Generate the autocompletion script for elvish (beyond etcdctl)
    #[command(hide = true)]
    Elvish,
}

/// The commands, in etcdctl's order (its suggestions for a mistyped command follow it).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Gets the key or a range of keys
    Get(GetArgs),
    /// Puts the given key into the store
    Put(PutArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(TxnArgs),
    /// Compacts the event history in etcd
    Compaction(CompactionArgs),
    /// Alarm related commands
    #[command(subcommand)]
    Alarm(AlarmCmd),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag(ClusterFlag),
    /// Endpoint related commands
    Endpoint(EndpointArgs),
    #[command(
        name = "move-leader",
        about = "Transfers leadership to another etcd cluster member."
    )]
    MoveLeader(Positional),
    /// Watches events stream on keys or prefixes
    Watch(WatchArgs),
    /// Prints the version of etcdctl
    Version(Positional),
    /// Lease related commands
    #[command(subcommand)]
    Lease(LeaseCmd),
    /// Membership related commands
    #[command(subcommand)]
    Member(MemberCmd),
    /// Manages etcd node snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
    /// Makes a mirror at the destination etcd cluster
    #[command(name = "make-mirror")]
    MakeMirror(MirrorArgs),
    /// Acquires a named lock
    Lock {
        /// timeout for session
        #[arg(long, default_value = "10", allow_hyphen_values = true, value_parser = go_int)]
        ttl: i64,
        args: Vec<String>,
    },
    /// Observes and participates in leader election
    Elect {
        /// observation mode
        #[arg(short, long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
        listen: bool,
        args: Vec<String>,
    },
    /// Enable or disable authentication
    #[command(subcommand)]
    Auth(AuthCmd),
    /// User related commands
    #[command(subcommand)]
    User(UserCmd),
    /// Role related commands
    #[command(subcommand)]
    Role(RoleCmd),
    /// commands for checking properties of the etcd cluster
    #[command(subcommand)]
    Check(CheckCmd),
    /// Generate the autocompletion script for the specified shell
    #[command(subcommand)]
    Completion(CompletionCmd),
}
