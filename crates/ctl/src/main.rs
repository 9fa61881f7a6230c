//! retcdctl: etcdctl's commands, flags and output over the plain etcd v3 gRPC API.
//! Speaks only the etcd v3 API (`retcd-api`, never the server's crates), so it works against
//! any etcd; `snapshot status|restore` read retcd's snapshot files offline with `retcd-mvcc`,
//! and `defrag --data-dir` rewrites a stopped retcd member's backend with it.
//!
//! # Layout
//! - [`cli`]: the command line (clap) and the `ETCDCTL_*` environment; [`usage`]: etcdctl's
//!   command lookup, usage texts and flag errors around it;
//! - [`client`]: dialing, authentication, per-call deadlines; [`goaddr`]: an endpoint as
//!   clientv3 and Go's dialer take it, with Go's errors; [`grpclog`]: gRPC's connection log
//!   for `--debug`;
//! - [`output`]: the five output formats; [`gofmt`]: Go's formatting rules they rely on;
//! - [`cmd`]: the commands, one module per group;
//! - [`error`]: the error type and etcdctl's exit codes.

mod cli;
mod client;
mod cmd;
mod error;
mod goaddr;
mod gofmt;
mod grpclog;
mod output;
mod srv;
mod tlsfiles;
mod usage;

use std::io::IsTerminal;

use clap::{CommandFactory, Parser, error::ErrorKind};
use usage::Lookup;

use cli::{AlarmCmd, AuthCmd, Cli, Command, CompletionCmd, EndpointCmd, LeaseCmd, MemberCmd, SnapshotCmd};
use cmd::Ctx;
use error::CtlError;

/// A flag etcdctl could not parse: the error, the command's usage on stdout, and the error
/// again (cobra's report, then etcdctl's own), exit 1.
fn flag_failure(msg: &str, root: &clap::Command, path: &[String]) -> ! {
    eprintln!("Error: {msg}");
    print!("{}", usage::usage(root, path, true));
    eprintln!();
    eprintln!("Error: {msg}");
    std::process::exit(error::exit::ERROR);
}

/// `help [COMMAND...]`: the command's usage (the root's for none); an unknown topic is
/// said on stderr before the root's usage, as cobra does. Exit 0 either way.
fn help(root: &clap::Command, topic: &[String]) -> ! {
    let argv: Vec<String> = std::iter::once("etcdctl".to_string())
        .chain(topic.iter().cloned())
        .collect();
    match usage::find(root, &argv) {
        Lookup::Found { path, .. } => print!("{}", usage::usage(root, &path, true)),
        Lookup::Help(_) => print!("{}", usage::usage(root, &["help".to_string()], true)),
        Lookup::Unknown(_) => {
            let words: Vec<String> = topic
                .iter()
                .map(|w| {
                    if w.contains('`') || w.chars().any(char::is_control) {
                        gofmt::quote(w.as_bytes())
                    } else {
                        format!("`{w}`")
                    }
                })
                .collect();
            eprintln!("Unknown help topic [{}]", words.join(" "));
            print!("{}", usage::usage(root, &[], false));
        }
    }
    std::process::exit(0);
}

/// Parses the command line as etcdctl does: the command first (an unknown one is fatal, a
/// group without subcommand or `-h` prints its usage), then the flags (errors in pflag's
/// words, with the usage).
fn parse(argv: Vec<String>) -> Cli {
    let root = Cli::command();
    let (path, argv) = match usage::find(&root, &argv) {
        Lookup::Unknown(msg) => {
            eprintln!("Error: {msg}");
            eprintln!("Run 'etcdctl --help' for usage.");
            eprintln!("Error: {msg}");
            std::process::exit(error::exit::ERROR);
        }
        // `help -h`: the help command's own usage
        Lookup::Help(_)
            if argv
                .iter()
                .any(|a| a == "-h" || a == "--help" || a == "--help=true") =>
        {
            print!("{}", usage::usage(&root, &["help".to_string()], true));
            std::process::exit(0);
        }
        Lookup::Help(topic) => help(&root, &topic),
        Lookup::Found { path, mut argv, rest } => {
            // a group's unknown words: cobra shows the group's usage (after its flags parse)
            for &i in rest.iter().rev() {
                argv.remove(i);
            }
            (path, argv)
        }
    };
    let group = path
        .iter()
        .try_fold(&root, |c, n| c.find_subcommand(n))
        .is_some_and(clap::Command::has_subcommands);
    let cli = match Cli::try_parse_from(&argv) {
        Ok(mut cli) => {
            // pflag appends a list flag's values from every level; clap keeps one level's
            let endpoints = usage::flag_values(&root, &path, &argv, "endpoints");
            if !endpoints.is_empty() {
                cli.global.endpoints = Some(endpoints);
            }
            cli
        }
        Err(e)
            if group
                && matches!(
                    e.kind(),
                    ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                ) =>
        {
            print!("{}", usage::usage(&root, &path, true));
            std::process::exit(0);
        }
        Err(e) => flag_failure(&usage::flag_error(&e, &root, &path, &argv), &root, &path),
    };
    if cli.global.help {
        print!("{}", usage::usage(&root, &path, true));
        std::process::exit(0);
    }
    cli
}

async fn run(ctx: &Ctx, command: Command, exec: &[String]) -> Result<(), CtlError> {
    use cmd::{auth, check, cluster, concurrency, defrag, kv, lease, migrate, mirror, snapshot, txn, watch};
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
        Command::Endpoint(e) => match e.command {
            EndpointCmd::Health(_) => cluster::endpoint_health(ctx, e.cluster()).await,
            EndpointCmd::Status(_) => cluster::endpoint_status(ctx, e.cluster()).await,
            EndpointCmd::Hashkv { rev, .. } => cluster::endpoint_hashkv(ctx, e.cluster(), rev).await,
        },
        Command::Alarm(c) => match c {
            AlarmCmd::Disarm(p) => cluster::alarm(ctx, true, &p.args).await,
            AlarmCmd::List(p) => cluster::alarm(ctx, false, &p.args).await,
        },
        Command::Defrag(d) if !d.data_dir.is_empty() => defrag::defrag_data_dir(&d.data_dir),
        Command::Defrag(d) => cluster::defrag(ctx, d.cluster).await,
        Command::Snapshot(SnapshotCmd::Save(p)) => cluster::snapshot_save(ctx, &p.args).await,
        Command::Snapshot(SnapshotCmd::Status(p)) => snapshot::status(ctx, &p.args),
        Command::Snapshot(SnapshotCmd::Restore(a)) => snapshot::restore(&a),
        Command::MakeMirror(a) => mirror::make_mirror(ctx, &a).await,
        Command::Migrate(a) => migrate::migrate(&a),
        Command::Check(c) => check::check(ctx, &c).await,
        Command::MoveLeader(p) => cluster::move_leader(ctx, &p.args).await,
        Command::User(c) => auth::user(ctx, c).await,
        Command::Role(c) => auth::role(ctx, c).await,
        Command::Auth(c) => match c {
            AuthCmd::Enable(p) => auth::auth(ctx, true, false, &p.args).await,
            AuthCmd::Disable(p) => auth::auth(ctx, false, false, &p.args).await,
            AuthCmd::Status(p) => auth::auth(ctx, false, true, &p.args).await,
        },
        Command::Lock { ttl, args } => concurrency::lock(ctx, &args, ttl, exec).await,
        Command::Elect { listen, args } => concurrency::elect(ctx, &args, listen).await,
        Command::Version(_) => {
            println!("etcdctl version: 3.4.23");
            println!("API version: 3.4");
            Ok(())
        }
        Command::Completion(shell) => {
            completion(shell);
            Ok(())
        }
    }
}

/// `completion SHELL`: clap_complete's completion script for the shell (etcdctl's are
/// cobra's).
fn completion(shell: CompletionCmd) {
    use clap_complete::Shell;
    let shell = match shell {
        CompletionCmd::Bash => Shell::Bash,
        CompletionCmd::Fish => Shell::Fish,
        CompletionCmd::Powershell => Shell::PowerShell,
        CompletionCmd::Zsh => Shell::Zsh,
        CompletionCmd::Elvish => Shell::Elvish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "retcdctl", &mut std::io::stdout());
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
    let mut cli = parse(argv);
    let env = cli::apply_env(&mut cli);
    let resolved = cli.global.resolve(env);
    let endpoints = resolved.settings.endpoints.join(",");
    let ctx = Ctx {
        settings: resolved.settings,
        out: resolved.out,
    };
    let result = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(&ctx, cli.command, &exec)),
        Err(e) => Err(CtlError::Other(e.to_string())),
    };
    if let Err(e) = result {
        eprintln!("Error: {e}");
        if e.is_unreachable() && std::io::stderr().is_terminal() {
            eprintln!("retcdctl: no server answered at {endpoints} — is etcd (or retcd) running there?");
        }
        std::process::exit(e.exit_code());
    }
}
