//! The command line: etcdctl 3.4's commands, flags and `ETCDCTL_*` environment variables.
//!
//! Boolean flags take Go's forms (`--prefix`, `--prefix=true`, `--prefix=false`). Positional
//! arguments are collected as-is and checked by each command, so that wrong counts produce
//! etcdctl's own messages and exit codes. Global flags are plain strings here (`--endpoints`
//! one per occurrence, as pflag's list flags append), filled from their `ETCDCTL_*`
//! variables by [`apply_env`] (flag or environment, never both) and resolved by
//! [`Global::resolve`].

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

/// A list flag's value, checked as pflag's `StringSlice` parses it (one CSV record).
fn go_csv_str(s: &str) -> Result<String, String> {
    gofmt::csv_record(s).map(|_| s.to_string())
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
    #[arg(long, global = true, allow_hyphen_values = true, action = ArgAction::Append, value_parser = go_csv_str)]
    pub endpoints: Option<Vec<String>>,
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

/// A duration flag (or its variable): `default` when absent; a value Go cannot parse (only a
/// variable's can get this far) or a negative one is zero, as pflag leaves a duration it
/// failed to set.
fn flag_duration(v: &Option<String>, default: Duration) -> Duration {
    match v {
        None => default,
        Some(s) => gofmt::parse_duration(s).unwrap_or(Duration::ZERO),
    }
}

/// A boolean flag (or its variable): `default` when absent; a value Go cannot parse (only a
/// variable's can get this far) is false, as pflag leaves a boolean it failed to set.
fn flag_bool(v: &Option<String>, default: bool) -> bool {
    match v {
        None => default,
        Some(s) => go_bool(s).unwrap_or(false),
    }
}

impl Global {
    /// The settings from the flags (after [`apply_env`] put the `ETCDCTL_*` variables into
    /// those not given). A flag given both ways, an unknown variable and an unknown output
    /// format are reported when the first client is made, as etcdctl does.
    pub fn resolve(self, env: EnvReport) -> Resolved {
        // pflag's StringSlice: each occurrence's CSV fields, the first replacing the default
        let given: Option<Vec<String>> = self.endpoints.map(|values| {
            values
                .iter()
                .flat_map(|v| gofmt::csv_record(v).unwrap_or_default())
                .collect()
        });
        let raw_endpoints = given.unwrap_or_else(|| vec!["127.0.0.1:2379".to_string()]);
        // etcdctl trims the endpoints it makes its client with, not those the endpoint
        // commands dial one by one
        let endpoints = raw_endpoints.iter().map(|e| e.trim().to_string()).collect();
        let (pretty, color) = Out::terminal_style(self.write_out.is_some());
        let (format, deferred) = match Format::parse(self.write_out.as_deref().unwrap_or("simple")) {
            Ok(f) => (f, None),
            Err(_) => (Format::Simple, Some(Deferred::BadFormat)),
        };
        let discovery = self
            .discovery_srv
            .filter(|d| !d.is_empty())
            .map(|domain| Discovery {
                domain,
                service_name: self.discovery_srv_name.clone().unwrap_or_default(),
                insecure: flag_bool(&self.insecure_discovery, true),
            });
        // etcdctl has TLS check the servers against the domain when discovery is secure
        let server_name = discovery
            .as_ref()
            .filter(|d| !d.insecure)
            .map(|d| d.domain.clone());
        let command_timeout = if env.late_command_timeout {
            &self.command_timeout
        } else {
            &env.command_timeout_flag
        };
        Resolved {
            settings: Settings {
                endpoints,
                raw_endpoints,
                dial_timeout: flag_duration(&self.dial_timeout, Duration::from_secs(2)),
                command_timeout: flag_duration(command_timeout, Duration::from_secs(5)),
                command_timeout_given: command_timeout.is_some(),
                keepalive_time: flag_duration(&self.keepalive_time, Duration::from_secs(2)),
                keepalive_timeout: flag_duration(&self.keepalive_timeout, Duration::from_secs(6)),
                user: self.user.filter(|u| !u.is_empty()),
                password: self.password.filter(|p| !p.is_empty()),
                tls: TlsSettings {
                    cacert: self.cacert.filter(|s| !s.is_empty()),
                    cert: self.cert.filter(|s| !s.is_empty()),
                    key: self.key.filter(|s| !s.is_empty()),
                    insecure_transport: flag_bool(&self.insecure_transport, true),
                    insecure_skip_verify: flag_bool(&self.insecure_skip_tls_verify, false),
                    server_name,
                },
                deferred,
                env: std::sync::Arc::new(env.lines),
                discovery,
                discovered: Default::default(),
            },
            out: Out {
                format,
                hex: flag_bool(&self.hex, false),
                pretty,
                color,
            },
        }
    }
}

/// What etcdctl says about the `ETCDCTL_*` environment when it makes its first client
/// (pkg/flags' `verifyEnv`), in the environment's order: capnslog lines, timestamped when
/// printed.
#[derive(Debug)]
pub enum EnvLine {
    /// `W | pkg/flags: unrecognized environment variable NAME=VALUE`
    Unrecognized(String),
    /// `C | pkg/flags: conflicting environment variable "NAME" is shadowed ...`: a
    /// variable of a flag also given on the command line; fatal (exit 1).
    Conflict(String),
}

/// The outcome of [`apply_env`].
#[derive(Debug, Default)]
pub struct EnvReport {
    pub lines: EnvLines,
    /// whether the command reads `--command-timeout` after the variables are applied (the
    /// ones that make their client before their first deadline)
    pub late_command_timeout: bool,
    /// `--command-timeout` as given on the command line, for the other commands
    pub command_timeout_flag: Option<String>,
}

/// The lines of an [`EnvReport`], printed once (clients share them).
#[derive(Debug, Default)]
pub struct EnvLines {
    pub lines: Vec<EnvLine>,
    /// with `--debug` (or `ETCDCTL_DEBUG`): etcdctl's listing of the flags the command
    /// inherits, then gRPC's log is on (for the commands that make their client
    /// configuration as etcdctl's `clientConfigFromCmd`, not `endpoint health`)
    pub debug: Option<String>,
    pub printed: std::sync::atomic::AtomicBool,
}

impl EnvLines {
    /// Prints the lines the first time it is called; a conflict ends the process (exit 1),
    /// as etcdctl's fatal log does.
    pub fn report(&self) {
        use std::sync::atomic::Ordering;
        if self.printed.swap(true, Ordering::SeqCst) {
            return;
        }
        for line in &self.lines {
            match line {
                EnvLine::Unrecognized(var) => eprintln!(
                    "{} W | pkg/flags: unrecognized environment variable {var}",
                    gofmt::capnslog_now()
                ),
                EnvLine::Conflict(name) => {
                    eprintln!(
                        "{} C | pkg/flags: conflicting environment variable {} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)",
                        gofmt::capnslog_now(),
                        gofmt::quote(name.as_bytes())
                    );
                    std::process::exit(crate::error::exit::ERROR);
                }
            }
        }
        if let Some(listing) = &self.debug {
            eprint!("{listing}");
            crate::grpclog::enable();
        }
    }
}

/// Where a flag's `ETCDCTL_*` variable goes.
enum EnvSlot<'a> {
    /// a flag kept as given: set from the variable when absent
    One(&'a mut Option<String>),
    /// `--endpoints`: set when the variable is a valid CSV record (else the default stays,
    /// as pflag refuses it)
    List(&'a mut Option<Vec<String>>),
    /// a flag kept as given, set from the variable only when pflag can parse it (`snapshot
    /// save` has a deadline only when `--command-timeout` was set, and pflag does not count
    /// a value it refused as set)
    Parsed(&'a mut Option<String>),
    /// a flag the command reads before the variables are applied (`given`: on the command
    /// line), or one only named to silence the warning (`ETCDCTL_WATCH_KEY`)
    Ignored { given: bool },
}

impl EnvSlot<'_> {
    fn given(&self) -> bool {
        match self {
            EnvSlot::One(v) | EnvSlot::Parsed(v) => v.is_some(),
            EnvSlot::List(v) => v.is_some(),
            EnvSlot::Ignored { given } => *given,
        }
    }

    fn set(&mut self, value: String) {
        match self {
            EnvSlot::One(v) => **v = Some(value),
            EnvSlot::Parsed(v) => {
                if gofmt::check_duration(&value).is_ok() {
                    **v = Some(value);
                }
            }
            EnvSlot::List(v) => {
                if gofmt::csv_record(&value).is_ok() {
                    **v = Some(vec![value]);
                }
            }
            EnvSlot::Ignored { .. } => {}
        }
    }
}

/// etcdctl's `SetPflagsFromEnv` for the flags a command inherits (the global ones, and
/// `--cluster` for the `endpoint` commands): each flag not given on the command line takes
/// its non-empty `ETCDCTL_<FLAG>` variable (a value pflag cannot parse leaves it zero, false
/// or, for `--endpoints`, the default; no message). Then its `verifyEnv`: every other
/// `ETCDCTL_*` variable is unrecognized, and a variable of a flag given on the command line
/// (even empty) is a fatal conflict. `ETCDCTL_API` is not looked at (etcdctl unsets it
/// first), nor is anything for the commands that make no client (`version`, `snapshot
/// status`, `defrag --data-dir`...).
pub fn apply_env(cli: &mut Cli) -> EnvReport {
    // commands that never make a client never look at the environment
    let offline_defrag = matches!(&cli.command, Command::Defrag(d) if !d.data_dir.is_empty());
    if offline_defrag
        || matches!(
            cli.command,
            Command::Version(_)
                | Command::Completion(_)
                | Command::Migrate(_)
                | Command::Snapshot(SnapshotCmd::Status(_) | SnapshotCmd::Restore(_))
        )
    {
        return EnvReport::default();
    }
    let late_command_timeout = matches!(
        cli.command,
        Command::Compaction(_)
            | Command::MoveLeader(_)
            | Command::Defrag(_)
            | Command::Endpoint(_)
            | Command::Snapshot(SnapshotCmd::Save(_))
    );
    let command_timeout_flag = cli.global.command_timeout.clone();
    // the value the listing shows: the flag, else its variable (which every command sets,
    // though only some read it afterwards)
    let command_timeout_env = command_timeout_flag.clone().or_else(|| {
        std::env::var("ETCDCTL_COMMAND_TIMEOUT")
            .ok()
            .filter(|v| !v.is_empty())
    });
    let g = &mut cli.global;
    let mut slots: Vec<(&str, EnvSlot)> = vec![
        ("endpoints", EnvSlot::List(&mut g.endpoints)),
        ("dial-timeout", EnvSlot::One(&mut g.dial_timeout)),
        ("keepalive-time", EnvSlot::One(&mut g.keepalive_time)),
        ("keepalive-timeout", EnvSlot::One(&mut g.keepalive_timeout)),
        ("write-out", EnvSlot::One(&mut g.write_out)),
        ("hex", EnvSlot::One(&mut g.hex)),
        ("user", EnvSlot::One(&mut g.user)),
        ("password", EnvSlot::One(&mut g.password)),
        ("insecure-transport", EnvSlot::One(&mut g.insecure_transport)),
        (
            "insecure-skip-tls-verify",
            EnvSlot::One(&mut g.insecure_skip_tls_verify),
        ),
        ("insecure-discovery", EnvSlot::One(&mut g.insecure_discovery)),
        ("debug", EnvSlot::One(&mut g.debug)),
        ("cacert", EnvSlot::One(&mut g.cacert)),
        ("cert", EnvSlot::One(&mut g.cert)),
        ("key", EnvSlot::One(&mut g.key)),
        ("discovery-srv", EnvSlot::One(&mut g.discovery_srv)),
        ("discovery-srv-name", EnvSlot::One(&mut g.discovery_srv_name)),
    ];
    let snapshot_save = matches!(cli.command, Command::Snapshot(SnapshotCmd::Save(_)));
    slots.push((
        "command-timeout",
        if snapshot_save {
            EnvSlot::Parsed(&mut g.command_timeout)
        } else if late_command_timeout {
            EnvSlot::One(&mut g.command_timeout)
        } else {
            EnvSlot::Ignored {
                given: g.command_timeout.is_some(),
            }
        },
    ));
    match &mut cli.command {
        Command::Endpoint(e) => slots.push(("cluster", EnvSlot::One(&mut e.cluster))),
        Command::Watch(_) => {
            slots.push(("watch-key", EnvSlot::Ignored { given: false }));
            slots.push(("watch-range-end", EnvSlot::Ignored { given: false }));
        }
        _ => {}
    }
    let key = |name: &str| format!("ETCDCTL_{}", name.to_uppercase().replace('-', "_"));
    let mut given = std::collections::HashSet::new();
    let mut used = std::collections::HashSet::new();
    for (name, slot) in &mut slots {
        let var = key(name);
        if slot.given() {
            given.insert(var);
            continue;
        }
        let value = std::env::var_os(&var)
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !value.is_empty() {
            slot.set(value);
            used.insert(var);
        }
    }
    let debug = debug_listing(cli, &command_timeout_env);
    let mut lines = Vec::new();
    for (k, v) in std::env::vars_os() {
        let (k, v) = (k.to_string_lossy(), v.to_string_lossy());
        if k == "ETCDCTL_API" || used.contains(k.as_ref()) {
            continue;
        }
        if given.contains(k.as_ref()) {
            lines.push(EnvLine::Conflict(k.into_owned()));
            break;
        }
        if k.starts_with("ETCDCTL_") {
            lines.push(EnvLine::Unrecognized(format!("{k}={v}")));
        }
    }
    EnvReport {
        lines: EnvLines {
            lines,
            debug,
            printed: Default::default(),
        },
        late_command_timeout,
        command_timeout_flag,
    }
}

/// A duration flag as pflag prints it (Go's `Duration.String()`): `default` when absent; a
/// value Go could not parse (only a variable's) is zero, as pflag leaves it.
fn show_duration(v: Option<&str>, default: Duration) -> String {
    let Some(s) = v else {
        return gofmt::duration(default);
    };
    if gofmt::check_duration(s).is_err() {
        return "0s".into();
    }
    match s.strip_prefix('-') {
        Some(abs) => match gofmt::parse_duration(abs) {
            Some(d) if !d.is_zero() => format!("-{}", gofmt::duration(d)),
            _ => "0s".into(),
        },
        None => gofmt::duration(gofmt::parse_duration(s).unwrap_or_default()),
    }
}

/// etcdctl's `--debug` listing (`clientConfigFromCmd`): each flag the command inherits, by
/// name, as `ETCDCTL_<FLAG>=<value>` with the value as pflag prints it once the variables
/// are applied (durations `5s`, lists `[a,b]`, booleans); `None` without `--debug` and for
/// `endpoint health`, which never makes a client configuration that way.
fn debug_listing(cli: &Cli, command_timeout: &Option<String>) -> Option<String> {
    let g = &cli.global;
    if !flag_bool(&g.debug, false) {
        return None;
    }
    let mut flags: Vec<(&str, String)> = Vec::new();
    match &cli.command {
        Command::Endpoint(e) => {
            if matches!(e.command, EndpointCmd::Health(_)) {
                return None;
            }
            flags.push(("cluster", e.cluster().to_string()));
        }
        Command::Watch(_) => {
            flags.push(("watch-key", String::new()));
            flags.push(("watch-range-end", String::new()));
        }
        _ => {}
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let endpoints: Vec<String> = match &g.endpoints {
        Some(values) => values
            .iter()
            .flat_map(|v| gofmt::csv_record(v).unwrap_or_default())
            .collect(),
        None => vec!["127.0.0.1:2379".to_string()],
    };
    flags.extend([
        ("cacert", text(&g.cacert)),
        ("cert", text(&g.cert)),
        (
            "command-timeout",
            show_duration(command_timeout.as_deref(), Duration::from_secs(5)),
        ),
        ("debug", "true".to_string()),
        (
            "dial-timeout",
            show_duration(g.dial_timeout.as_deref(), Duration::from_secs(2)),
        ),
        ("discovery-srv", text(&g.discovery_srv)),
        ("discovery-srv-name", text(&g.discovery_srv_name)),
        ("endpoints", gofmt::csv_list(&endpoints)),
        ("hex", flag_bool(&g.hex, false).to_string()),
        (
            "insecure-discovery",
            flag_bool(&g.insecure_discovery, true).to_string(),
        ),
        (
            "insecure-skip-tls-verify",
            flag_bool(&g.insecure_skip_tls_verify, false).to_string(),
        ),
        (
            "insecure-transport",
            flag_bool(&g.insecure_transport, true).to_string(),
        ),
        (
            "keepalive-time",
            show_duration(g.keepalive_time.as_deref(), Duration::from_secs(2)),
        ),
        (
            "keepalive-timeout",
            show_duration(g.keepalive_timeout.as_deref(), Duration::from_secs(6)),
        ),
        ("key", text(&g.key)),
        ("password", text(&g.password)),
        ("user", text(&g.user)),
        (
            "write-out",
            g.write_out.clone().unwrap_or_else(|| "simple".into()),
        ),
    ]);
    flags.sort_by(|a, b| a.0.cmp(b.0));
    Some(
        flags
            .iter()
            .map(|(name, value)| format!("ETCDCTL_{}={value}\n", name.to_uppercase().replace('-', "_")))
            .collect(),
    )
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

/// `defrag` flags (etcdctl 3.4's); arguments are ignored, as by etcdctl.
#[derive(Debug, Args)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub cluster: bool,
    #[arg(
        long,
        default_value = "",
        allow_hyphen_values = true,
        help = "Optional. If present, defragments a data directory not in use by etcd."
    )]
    pub data_dir: String,
    pub args: Vec<String>,
}

/// `migrate` flags (etcdctl 3.4's); arguments are ignored, as by etcdctl.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Path to the data directory
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub data_dir: String,
    /// Path to the WAL directory
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub wal_dir: String,
    /// Do not convert TTL keys
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, require_equals = true, default_value = "false", default_missing_value = "true", value_parser = go_bool)]
    pub no_ttl: bool,
    /// Path to the user-provided transformer program
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub transformer: String,
    pub args: Vec<String>,
}

/// `endpoint`: `--cluster` is the group's flag, given before or after the subcommand (as
/// etcdctl's persistent flag).
#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool_str)]
    pub cluster: Option<String>,
    #[command(subcommand)]
    pub command: EndpointCmd,
}

impl EndpointArgs {
    /// `--cluster` (or `ETCDCTL_CLUSTER`, which these commands inherit; a value pflag cannot
    /// parse is false).
    pub fn cluster(&self) -> bool {
        flag_bool(&self.cluster, false)
    }
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
    Defrag(DefragArgs),
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
    /// Migrates keys in a v2 store to a mvcc store
    Migrate(MigrateArgs),
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
