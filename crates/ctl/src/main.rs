//! retcdctl: etcdctl's commands, flags and output over the plain etcd v3 gRPC API.
//! Speaks only the etcd v3 API (`retcd-api`, never the server's crates), so it works against
//! any etcd; `snapshot status|restore` read retcd's snapshot files offline with `retcd-mvcc`.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and the `ETCDCTL_*` environment;
//! - [`client`]: dialing, authentication, per-call deadlines;
//! - [`output`]: the five output formats; [`gofmt`]: Go's formatting rules they rely on;
//! - [`cmd`]: the commands, one module per group;
//! - [`error`]: the error type and etcdctl's exit codes.

mod cli;
mod client;
mod cmd;
mod error;
mod gofmt;
mod output;
mod tlsfiles;

use std::io::IsTerminal;

use clap::{CommandFactory, Parser, error::ErrorKind};

use cli::{AlarmCmd, AuthCmd, Cli, Command, EndpointCmd, LeaseCmd, MemberCmd, SnapshotCmd};
use cmd::Ctx;
use error::CtlError;

/// Turns a clap parse error into etcdctl's (cobra/pflag) message and exit code.
fn clap_failure(e: clap::Error) -> ! {
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            std::process::exit(0);
        }
        ErrorKind::InvalidSubcommand => {
            let name = e
                .get(clap::error::ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let msg = format!("unknown command \"{name}\" for \"etcdctl\"");
            eprintln!("Error: {msg}\nRun 'etcdctl --help' for usage.\nError: {msg}");
            std::process::exit(error::exit::ERROR);
        }
        ErrorKind::UnknownArgument => {
            let arg = e
                .get(clap::error::ContextKind::InvalidArg)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let flag = arg.split('=').next().unwrap_or_default().to_string();
            eprintln!("Error: unknown flag: {flag}");
            std::process::exit(error::exit::ERROR);
        }
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            eprintln!("Error: {first}");
            std::process::exit(error::exit::ERROR);
        }
    }
}

async fn run(ctx: &Ctx, command: Command, exec: &[String]) -> Result<(), CtlError> {
    use cmd::{auth, check, cluster, concurrency, kv, lease, mirror, snapshot, txn, watch};
    match command {
        Command::Get(a) => kv::get(ctx, &a).await,
        Command::Put(a) => kv::put(ctx, &a).await,
        Command::Del(a) => kv::del(ctx, &a).await,
        Command::Txn(a) => txn::txn(ctx, &a).await,
        Command::Compaction(a) => kv::compaction(ctx, &a).await,
        Command::Watch(a) => watch::watch(ctx, &a, exec).await,
        Command::Lease(c) => match c {
            LeaseCmd::Grant(p) => lease::grant(ctx, &p.args).await,
            LeaseCmd::Revoke(p) => lease::revoke(ctx, &p.args).await,
            LeaseCmd::Timetolive { keys, args } => lease::timetolive(ctx, &args, keys).await,
            LeaseCmd::List(_) => lease::list(ctx).await,
            LeaseCmd::KeepAlive { once, args } => lease::keep_alive(ctx, &args, once).await,
        },
        Command::Member(c) => match c {
            MemberCmd::Add {
                peer_urls,
                learner,
                args,
            } => cluster::member_add(ctx, &args, &peer_urls, learner).await,
            MemberCmd::Remove(p) => cluster::member_remove(ctx, &p.args).await,
            MemberCmd::Update { peer_urls, args } => cluster::member_update(ctx, &args, &peer_urls).await,
            MemberCmd::List(_) => cluster::member_list(ctx).await,
            MemberCmd::Promote(p) => cluster::member_promote(ctx, &p.args).await,
        },
        Command::Endpoint(c) => match c {
            EndpointCmd::Health(f) => cluster::endpoint_health(ctx, f.cluster).await,
            EndpointCmd::Status(f) => cluster::endpoint_status(ctx, f.cluster).await,
            EndpointCmd::Hashkv { cluster: f, rev } => cluster::endpoint_hashkv(ctx, f.cluster, rev).await,
        },
        Command::Alarm(c) => cluster::alarm(ctx, matches!(c, AlarmCmd::Disarm)).await,
        Command::Defrag(f) => cluster::defrag(ctx, f.cluster).await,
        Command::Snapshot(SnapshotCmd::Save(p)) => cluster::snapshot_save(ctx, &p.args).await,
        Command::Snapshot(SnapshotCmd::Status(p)) => snapshot::status(ctx, &p.args),
        Command::Snapshot(SnapshotCmd::Restore(a)) => snapshot::restore(&a),
        Command::MakeMirror(a) => mirror::make_mirror(ctx, &a).await,
        Command::Check(c) => check::check(ctx, &c).await,
        Command::MoveLeader(p) => cluster::move_leader(ctx, &p.args).await,
        Command::User(c) => auth::user(ctx, c).await,
        Command::Role(c) => auth::role(ctx, c).await,
        Command::Auth(c) => auth::auth(ctx, matches!(c, AuthCmd::Enable), matches!(c, AuthCmd::Status)).await,
        Command::Lock { ttl, args } => concurrency::lock(ctx, &args, ttl, exec).await,
        Command::Elect { listen, args } => concurrency::elect(ctx, &args, listen).await,
        Command::Version => {
            println!("etcdctl version: 3.4.23");
            println!("API version: 3.4");
            Ok(())
        }
        Command::Completion(p) => completion(&p.args),
    }
}

/// `completion SHELL`: prints a completion script (beyond etcdctl).
fn completion(args: &[String]) -> Result<(), CtlError> {
    use clap_complete::Shell;
    let [shell] = args else {
        return Err(CtlError::BadArgs(
            "completion needs one argument: bash, zsh, fish, elvish or powershell".into(),
        ));
    };
    let shell: Shell = shell
        .parse()
        .map_err(|_| CtlError::BadArgs(format!("unknown shell {shell}")))?;
    clap_complete::generate(shell, &mut Cli::command(), "retcdctl", &mut std::io::stdout());
    Ok(())
}

/// Writing to a closed pipe (`retcdctl get --prefix "" | head -1`) ends the process quietly,
/// as SIGPIPE ends etcdctl, instead of a panic report (unsafe code, and so resetting the
/// signal disposition, is forbidden here).
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if msg.contains("Broken pipe") {
            std::process::exit(128 + 13);
        }
        default(info);
    }));
}

fn main() {
    quiet_on_broken_pipe();
    // `watch ... -- CMD` and `lock NAME -- CMD`: the command after `--` is not parsed.
    let mut argv: Vec<String> = std::env::args().collect();
    let mut exec = Vec::new();
    if let Some(pos) = argv.iter().position(|a| a == "--")
        && argv[..pos].iter().any(|a| a == "watch" || a == "lock")
    {
        exec = argv.split_off(pos + 1);
        argv.pop();
    }
    let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| clap_failure(e));
    let resolved = match cli.global.resolve() {
        Ok(r) => r,
        Err(fatal) => {
            eprintln!("{fatal}");
            std::process::exit(error::exit::ERROR);
        }
    };
    let endpoints = resolved.settings.endpoints.join(",");
    let result = match resolved.format_error {
        Some(e) if !matches!(cli.command, Command::Version | Command::Completion(_)) => Err(e),
        _ => {
            let ctx = Ctx {
                settings: resolved.settings,
                out: resolved.out,
            };
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run(&ctx, cli.command, &exec)),
                Err(e) => Err(CtlError::Other(e.to_string())),
            }
        }
    };
    if let Err(e) = result {
        eprintln!("Error: {e}");
        if e.is_unreachable() && std::io::stderr().is_terminal() {
            eprintln!("retcdctl: no server answered at {endpoints} — is etcd (or retcd) running there?");
        }
        std::process::exit(e.exit_code());
    }
}
