//! etcdctl's command-line front end, around clap:
//! - [`find`]: which command a command line names, as cobra finds it (unique prefixes of
//!   command names; a flag that takes a value skips the word after it; empty words left to
//!   the command as arguments), and a mistyped command with cobra's suggestions;
//! - [`flag_values`]: every value of a list flag on a command line, from every level (pflag
//!   appends them; clap keeps one level's);
//! - [`usage`]: the usage text etcdctl prints for `-h`, `help CMD`, a command group given
//!   without a subcommand, and after a flag it cannot parse (its template, pflag's flag lines
//!   and Go's tabwriter);
//! - [`flag_error`]: a clap parse error in pflag's words (`invalid argument "x" for
//!   "--prefix" flag: ...`, `unknown flag: --x`, `flag needs an argument: --limit`).
//!
//! The text is built from the clap definitions (names, help strings, defaults) plus what
//! clap has no place for: each command's cobra `Use` line and long description, and the
//! defaults of the global flags (plain strings here, so that a flag and its `ETCDCTL_*`
//! variable can be told apart).

use std::any::TypeId;

use clap::{Arg, Command};

use crate::gofmt;

const VERSION: &str = "3.4.23";
const API_VERSION: &str = "3.4";
/// The program name etcdctl's texts carry.
const PROGRAM: &str = "etcdctl";

/// cobra's `Use` of each command (after its parents' names, without `[flags]`) and its long
/// description, by command path.
fn meta(path: &str) -> (&'static str, &'static str) {
    match path {
        "" => (PROGRAM, ""),
        "get" => ("get [options] <key> [range_end]", ""),
        "put" => (
            "put [options] <key> <value> (<value> can also be given from stdin)",
            "Puts the given key into the store.

When <value> begins with '-', <value> is interpreted as a flag.
Insert '--' for workaround:

$ put <key> -- <value>
$ put -- <key> <value>

If <value> isn't given as a command line argument and '--ignore-value' is not specified,
this command tries to read the value from standard input.

If <lease> isn't given as a command line argument and '--ignore-lease' is not specified,
this command tries to read the value from standard input.

For example,
$ cat file | put <key>
will store the content of the file to <key>.",
        ),
        "del" => ("del [options] <key> [range_end]", ""),
        "txn" => ("txn [options]", ""),
        "compaction" => ("compaction [options] <revision>", ""),
        "alarm" | "endpoint" | "lease" | "member" | "snapshot" | "user" | "role" | "check" => {
            ("<subcommand>", "")
        }
        "move-leader" => ("move-leader <transferee-member-id>", ""),
        "watch" => (
            "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
            "",
        ),
        "endpoint status" => (
            "status",
            "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are endpoint, ID, version, db size, is leader, is learner, raft term, raft index, raft applied index, errors.",
        ),
        "lease grant" => ("grant <ttl>", ""),
        "lease revoke" => ("revoke <leaseID>", ""),
        "lease timetolive" => ("timetolive <leaseID> [options]", ""),
        "lease keep-alive" => ("keep-alive [options] <leaseID>", ""),
        "member add" => ("add <memberName> [options]", ""),
        "member remove" => ("remove <memberID>", ""),
        "member update" => ("update <memberID> [options]", ""),
        "member list" => (
            "list",
            "When --write-out is set to simple, this command prints out comma-separated member lists for each endpoint.
The items in the lists are ID, Status, Name, Peer Addrs, Client Addrs, Is Learner.",
        ),
        "member promote" => (
            "promote <memberID>",
            "Promotes a non-voting learner member to a voting one in the cluster.",
        ),
        "snapshot save" => ("save <filename>", ""),
        "snapshot restore" => ("restore <filename> [options]", ""),
        "snapshot status" => (
            "status <filename>",
            "When --write-out is set to simple, this command prints out comma-separated status lists for each endpoint.
The items in the lists are hash, revision, total keys, total size.",
        ),
        "make-mirror" => ("make-mirror [options] <destination>", ""),
        "lock" => ("lock <lockname> [exec-command arg1 arg2 ...]", ""),
        "elect" => ("elect <election-name> [proposal]", ""),
        "auth" => ("auth <enable or disable>", ""),
        "user add" => ("add <user name or user:password> [options]", ""),
        "user delete" => ("delete <user name>", ""),
        "user get" => ("get <user name> [options]", ""),
        "user passwd" => ("passwd <user name> [options]", ""),
        "user grant-role" => ("grant-role <user name> <role name>", ""),
        "user revoke-role" => ("revoke-role <user name> <role name>", ""),
        "role add" => ("add <role name>", ""),
        "role delete" => ("delete <role name>", ""),
        "role get" => ("get <role name>", ""),
        "role grant-permission" => (
            "grant-permission [options] <role name> <permission type> <key> [endkey]",
            "",
        ),
        "role revoke-permission" => ("revoke-permission <role name> <key> [endkey]", ""),
        "check perf" => ("perf [options]", ""),
        "check datascale" => (
            "datascale [options]",
            "If no endpoint is provided, localhost will be used. If multiple endpoints are provided, first endpoint will be used.",
        ),
        "completion" => (
            "completion",
            "Generate the autocompletion script for etcdctl for the specified shell.
See each sub-command's help for details on how to use the generated script.",
        ),
        "help" => (
            "help [command]",
            "Help provides help for any command in the application.
Simply type etcdctl help [path to command] for full details.",
        ),
        _ => ("", ""),
    }
}

/// How the global flags (plain strings in clap, as `endpoint`'s `--cluster`) show their
/// defaults.
fn global_default(name: &str) -> Option<&'static str> {
    Some(match name {
        "command-timeout" => "5s",
        "dial-timeout" => "2s",
        "keepalive-time" => "2s",
        "keepalive-timeout" => "6s",
        "endpoints" => "[127.0.0.1:2379]",
        "write-out" => "\"simple\"",
        "cluster" | "debug" | "hex" | "insecure-skip-tls-verify" => "false",
        "insecure-discovery" | "insecure-transport" => "true",
        "cacert" | "cert" | "key" | "user" | "password" | "discovery-srv" | "discovery-srv-name" => "\"\"",
        _ => return None,
    })
}

/// The help command cobra adds to the root.
const HELP_SHORT: &str = "Help about any command";

/// A flag that may go without a value (`--prefix`): pflag's boolean flags.
fn is_bool(a: &Arg) -> bool {
    a.get_num_args().is_some_and(|r| r.min_values() == 0)
}

fn long(a: &Arg) -> &str {
    a.get_long().unwrap_or_default()
}

/// One of pflag's flag lines as etcdctl prints them: `  -w, --write-out="simple"\t<usage>`.
fn flag_line(a: &Arg, usage_override: Option<String>) -> String {
    let name = long(a);
    let mut s = match a.get_short() {
        Some(c) => format!("  -{c}, --{name}"),
        None => format!("      --{name}"),
    };
    let default = global_default(name).map(str::to_string).unwrap_or_else(|| {
        let v = a
            .get_default_values()
            .first()
            .map(|v| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !is_bool(a) && a.get_value_parser().type_id() == TypeId::of::<String>() {
            gofmt::quote(v.as_bytes())
        } else {
            v
        }
    });
    if is_bool(a) {
        s += &format!("[={default}]");
    } else {
        s += &format!("={default}");
    }
    let usage = usage_override.unwrap_or_else(|| a.get_help().map(ToString::to_string).unwrap_or_default());
    format!("{s}\t{usage}\n")
}

/// The commands from the root to the one `path` names (`None` if there is none).
fn chain<'a>(root: &'a Command, path: &[String]) -> Option<Vec<&'a Command>> {
    let mut out = vec![root];
    for name in path {
        let next = out.last()?.find_subcommand(name)?;
        out.push(next);
    }
    Some(out)
}

fn visible_subcommands(c: &Command) -> Vec<&Command> {
    let mut subs: Vec<&Command> = c.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    subs.sort_by_key(|s| s.get_name());
    subs
}

/// Every runnable command below `c`, depth first, each level sorted (etcdctl's COMMANDS).
fn runnable_below(c: &Command, prefix: &str, out: &mut Vec<(String, String)>) {
    for s in visible_subcommands(c) {
        let name = if prefix.is_empty() {
            s.get_name().to_string()
        } else {
            format!("{prefix} {}", s.get_name())
        };
        if s.has_subcommands() {
            runnable_below(s, &name, out);
        } else {
            let about = s.get_about().map(ToString::to_string).unwrap_or_default();
            out.push((name, about));
        }
    }
}

/// etcdctl's usage text of the command `path` names (the root for an empty path); `help_flag`
/// lists `-h, --help` (cobra leaves it out of the root's usage after an unknown help topic).
pub fn usage(root: &Command, path: &[String], help_flag: bool) -> String {
    let is_root = path.is_empty();
    let is_help = path.len() == 1 && path[0] == "help";
    let help_cmd = Command::new("help").about(HELP_SHORT);
    let cmds = if is_help {
        vec![root, &help_cmd]
    } else {
        match chain(root, path) {
            Some(c) => c,
            None => return String::new(),
        }
    };
    let cmd = *cmds.last().expect("the root at least");
    let joined = path.join(" ");
    let (use_, description) = meta(&joined);
    let name = if is_root { PROGRAM } else { cmd.get_name() };
    let short = cmd.get_about().map(ToString::to_string).unwrap_or_default();
    let mut t = String::from("NAME:\n");
    t += &format!("\t{} - {short}\n", if is_root { PROGRAM } else { &joined });
    t += "\nUSAGE:\n";
    let mut use_line = if is_root {
        PROGRAM.to_string()
    } else {
        let parents = std::iter::once(PROGRAM)
            .chain(path[..path.len() - 1].iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let own = if use_.starts_with('<') {
            format!("{name} {use_}")
        } else if use_.is_empty() {
            name.to_string()
        } else {
            use_.to_string()
        };
        format!("{parents} {own}")
    };
    use_line += " [flags]";
    t += &format!("\t{use_line}\n");
    if is_root {
        t += &format!("\nVERSION:\n\t{VERSION}\n");
    }
    let group = cmd.has_subcommands();
    if group {
        t += &format!("\nAPI VERSION:\n\t{API_VERSION}\n");
        t += "\n\nCOMMANDS:\n";
        let mut list = Vec::new();
        runnable_below(cmd, "", &mut list);
        if is_root {
            list.push(("help".to_string(), HELP_SHORT.to_string()));
            list.sort_by(|a, b| {
                a.0.split(' ')
                    .next()
                    .cmp(&b.0.split(' ').next())
                    .then(a.0.cmp(&b.0))
            });
        }
        for (n, about) in list {
            t += &format!("\t{n}\t{about}\n");
        }
    }
    if !description.is_empty() {
        t += "\nDESCRIPTION:\n";
        for line in description.trim_matches(['\n', '\t', ' ']).split('\n') {
            t += &format!("\t{line}\n");
        }
    }
    // the command's own flags (the root's are its global ones), then the ones it inherits
    let shown = |a: &&Arg| !a.is_positional() && !a.is_hide_set() && long(a) != "help";
    let mut local: Vec<(String, String)> = cmd
        .get_arguments()
        .filter(shown)
        .map(|a| (long(a).to_string(), flag_line(a, None)))
        .collect();
    let help_arg = root.get_arguments().find(|a| long(a) == "help");
    if help_flag && let Some(h) = help_arg {
        local.push(("help".into(), flag_line(h, Some(format!("help for {name}")))));
    }
    local.sort();
    let mut inherited: Vec<(String, String)> = if is_root {
        Vec::new()
    } else {
        cmds[..cmds.len() - 1]
            .iter()
            .flat_map(|c| c.get_arguments())
            .filter(|a| a.is_global_set())
            .filter(shown)
            .map(|a| (long(a).to_string(), flag_line(a, None)))
            .collect()
    };
    inherited.sort();
    if !local.is_empty() {
        t += "\nOPTIONS:\n";
        local.iter().for_each(|(_, l)| t += l);
    }
    if !inherited.is_empty() {
        t += "\nGLOBAL OPTIONS:\n";
        inherited.iter().for_each(|(_, l)| t += l);
    }
    t += "\n";
    tabwriter(&t)
}

/// Go's `text/tabwriter` as etcdctl sets it up (minimum width 0, tab width 8, padding 1,
/// padding with tabs): tab-terminated cells of consecutive lines form columns, each as wide
/// as its widest cell plus one, rounded up to a tab stop and filled with tabs.
pub fn tabwriter(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text
        .strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|l| l.split('\t').collect())
        .collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, &mut out);
    if text.ends_with('\n') {
        out
    } else {
        out.pop();
        out
    }
}

const TAB_WIDTH: usize = 8;

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        // a column block starts here: the lines before it are done
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + 1);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j + 1 < line.len() {
                let cell_w = widths[j].div_ceil(TAB_WIDTH) * TAB_WIDTH;
                let n = cell_w - cell.chars().count();
                out.push_str(&"\t".repeat(n.div_ceil(TAB_WIDTH)));
            }
        }
        out.push('\n');
    }
}

/// What a command line names.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// A command (path from the root; empty: the root), with the command line's words
    /// spelled out where a prefix named a command, and the indices of the words left over
    /// after the command's name (a group's unknown subcommand).
    Found {
        path: Vec<String>,
        argv: Vec<String>,
        rest: Vec<usize>,
    },
    /// `help [TOPIC...]`: the topic's words.
    Help(Vec<String>),
    /// A word that names no command of the root: the error message (with suggestions).
    Unknown(String),
}

/// The flags a command knows (its own and those its parents pass down): long name, short,
/// and whether it takes no value (pflag's `NoOptDefVal`).
fn known_flags<'a>(cmds: &[&'a Command]) -> Vec<&'a Arg> {
    let last = cmds.len() - 1;
    cmds.iter()
        .enumerate()
        .flat_map(|(i, c)| c.get_arguments().filter(move |a| i == last || a.is_global_set()))
        .filter(|a| !a.is_positional())
        .collect()
}

/// cobra's `stripFlags`: the indices of the words of `args` (among `live`) that are not
/// flags or flag values, for a command knowing `flags`; then those of the empty words it
/// passes over.
fn words(argv: &[String], live: &[usize], flags: &[&Arg]) -> (Vec<usize>, Vec<usize>) {
    let no_value_long = |n: &str| flags.iter().any(|a| a.get_long() == Some(n) && is_bool(a));
    let no_value_short = |c: char| flags.iter().any(|a| a.get_short() == Some(c) && is_bool(a));
    let mut out = Vec::new();
    let mut empty = Vec::new();
    let mut k = 0;
    while k < live.len() {
        let s = argv[live[k]].as_str();
        let left = live.len() - k - 1;
        k += 1;
        if s == "--" {
            break;
        }
        let takes_value = if let Some(n) = s.strip_prefix("--") {
            !s.contains('=') && !no_value_long(n)
        } else if s.len() == 2 && s.starts_with('-') && !s.contains('=') {
            !no_value_short(s.chars().nth(1).unwrap_or('-'))
        } else {
            false
        };
        if takes_value {
            if left <= 1 {
                break;
            }
            k += 1;
            continue;
        }
        if s.is_empty() {
            empty.push(live[k - 1]);
        } else if !s.starts_with('-') {
            out.push(live[k - 1]);
        }
    }
    (out, empty)
}

/// The subcommand of `c` that `word` names: its name, or (as etcdctl enables cobra's prefix
/// matching) the only one it is a prefix of. `help` counts at the root.
fn next_command(c: &Command, word: &str, root: bool) -> Option<String> {
    let mut names: Vec<&str> = c.get_subcommands().map(Command::get_name).collect();
    if root {
        names.push("help");
    }
    if names.contains(&word) {
        return Some(word.to_string());
    }
    let mut matching = names.iter().filter(|n| n.starts_with(word));
    match (matching.next(), matching.next()) {
        (Some(n), None) => Some(n.to_string()),
        _ => None,
    }
}

/// Levenshtein distance, case-insensitive (cobra's suggestions).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (
        a.to_lowercase().chars().collect(),
        b.to_lowercase().chars().collect(),
    );
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// cobra's message for a word that names no command, with its suggestions (commands within
/// two edits, or starting with the word), in the order the commands were added.
fn unknown_command(root: &Command, word: &str) -> String {
    let suggestions: Vec<&str> = root
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(Command::get_name)
        .filter(|n| distance(word, n) <= 2 || n.to_lowercase().starts_with(&word.to_lowercase()))
        .collect();
    let mut m = format!(
        "unknown command {} for \"{PROGRAM}\"",
        gofmt::quote(word.as_bytes())
    );
    if !suggestions.is_empty() {
        m += "\n\nDid you mean this?\n";
        suggestions.iter().for_each(|s| m += &format!("\t{s}\n"));
    }
    m
}

/// Finds the command `argv` (the program name first) names, as cobra does before it parses
/// any flag. Empty words before a command's name are the command's arguments, as cobra
/// leaves them (`etcdctl "" get a`: `get "" a`); they are moved after the name for clap.
pub fn find(root: &Command, argv: &[String]) -> Lookup {
    let mut argv = argv.to_vec();
    let mut live: Vec<usize> = (1..argv.len()).collect();
    let mut path: Vec<String> = Vec::new();
    // the empty words found before a command's name, and the last name's position
    let mut carried: Vec<usize> = Vec::new();
    let mut last_name = 0;
    let found_leaf = |path: Vec<String>, argv: Vec<String>, carried: &[usize], last_name: usize| {
        let mut out = Vec::with_capacity(argv.len());
        for (i, w) in argv.into_iter().enumerate() {
            if carried.contains(&i) {
                continue;
            }
            out.push(w);
            if i == last_name {
                out.extend(carried.iter().map(|_| String::new()));
            }
        }
        Lookup::Found {
            path,
            argv: out,
            rest: Vec::new(),
        }
    };
    while let Some(cmds) = chain(root, &path) {
        let cmd = *cmds.last().expect("root");
        let (found, empty) = words(&argv, &live, &known_flags(&cmds));
        // a group passes over empty words (clap would take one for a subcommand name)
        let skipped = if cmd.has_subcommands() { empty } else { Vec::new() };
        let Some(&first) = found.first() else {
            if !cmd.has_subcommands() {
                return found_leaf(path, argv, &carried, last_name);
            }
            return Lookup::Found {
                path,
                argv,
                rest: skipped,
            };
        };
        match next_command(cmd, &argv[first], path.is_empty()) {
            Some(name) if name == "help" && path.is_empty() => {
                let topic = found[1..].iter().map(|&i| argv[i].clone()).collect();
                return Lookup::Help(topic);
            }
            Some(name) => {
                argv[first] = name.clone();
                live.retain(|&i| i != first);
                for &i in skipped.iter().filter(|&&i| i < first) {
                    if !carried.contains(&i) {
                        carried.push(i);
                    }
                }
                last_name = first;
                path.push(name);
            }
            None if !cmd.has_subcommands() => return found_leaf(path, argv, &carried, last_name),
            None if path.is_empty() => return Lookup::Unknown(unknown_command(root, &argv[first])),
            None => {
                let mut rest = [found, skipped].concat();
                rest.sort_unstable();
                return Lookup::Found { path, argv, rest };
            }
        }
    }
    found_leaf(path, argv, &carried, last_name)
}

/// The values given to the long flag `name` on a command line clap accepted for the command
/// `path`, in order, from every level (clap keeps one level's values of a global flag;
/// pflag's list flags append them all). Values of other flags are passed over, and nothing
/// after `--` is a flag.
pub fn flag_values(root: &Command, path: &[String], argv: &[String], name: &str) -> Vec<String> {
    let cmds = chain(root, path).unwrap_or_else(|| vec![root]);
    let flags = known_flags(&cmds);
    let takes_value = |a: &&&Arg| !is_bool(a);
    let mut out = Vec::new();
    let mut words = argv.iter().skip(1);
    while let Some(w) = words.next() {
        if w == "--" {
            break;
        }
        if let Some(flag) = w.strip_prefix("--") {
            let (flag, inline) = match flag.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (flag, None),
            };
            let wants = flags
                .iter()
                .find(|a| a.get_long() == Some(flag))
                .filter(takes_value);
            let value = match (wants, inline) {
                (Some(_), Some(v)) => Some(v),
                (Some(_), None) => words.next().cloned(),
                (None, _) => None,
            };
            if flag == name
                && let Some(v) = value
            {
                out.push(v);
            }
        } else if let Some(bundle) = w.strip_prefix('-').filter(|b| !b.is_empty()) {
            // short flags: the first that takes a value takes the rest of the word or the
            // next word
            for (i, c) in bundle.char_indices() {
                if flags.iter().any(|a| a.get_short() == Some(c) && !is_bool(a)) {
                    if bundle.len() == i + c.len_utf8() {
                        words.next();
                    }
                    break;
                }
            }
        }
    }
    out
}

/// A clap parse error in pflag's words; `argv` is the command line clap parsed.
pub fn flag_error(e: &clap::Error, root: &Command, path: &[String], argv: &[String]) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let ctx = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let arg_text = ctx(ContextKind::InvalidArg);
    let flag_name: String = arg_text
        .trim_start_matches('-')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let cmds = chain(root, path).unwrap_or_else(|| vec![root]);
    let flags = known_flags(&cmds);
    let arg = flags.iter().find(|a| {
        a.get_long() == Some(flag_name.as_str())
            || (arg_text.len() == 2 && a.get_short() == flag_name.chars().next())
    });
    // the short-flag bundle a single-letter flag came in: pflag names what is left of it
    let bundle_from = |c: char| {
        argv.iter()
            .skip(1)
            .filter(|t| t.starts_with('-') && !t.starts_with("--"))
            .find_map(|t| {
                t[1..]
                    .find(c)
                    .map(|i| t[1 + i..].split('=').next().unwrap_or_default().to_string())
            })
            .unwrap_or_else(|| c.to_string())
    };
    match e.kind() {
        ErrorKind::UnknownArgument => {
            if let Some(short) = arg_text.strip_prefix('-').filter(|s| !s.starts_with('-')) {
                let c = short.chars().next().unwrap_or('-');
                format!("unknown shorthand flag: '{c}' in -{}", bundle_from(c))
            } else {
                format!("unknown flag: {}", arg_text.split('=').next().unwrap_or_default())
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::NoEquals => {
            let value = ctx(ContextKind::InvalidValue);
            let Some(a) = arg else {
                return e
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_string();
            };
            let missing = e.kind() != ErrorKind::ValueValidation && value.is_empty();
            if missing {
                let last = argv.last().map(String::as_str).unwrap_or_default();
                return match a.get_short() {
                    Some(c) if !last.starts_with("--") => {
                        format!("flag needs an argument: '{c}' in -{}", bundle_from(c))
                    }
                    _ => format!("flag needs an argument: --{}", long(a)),
                };
            }
            let shown = match a.get_short() {
                Some(c) => format!("-{c}, --{}", long(a)),
                None => format!("--{}", long(a)),
            };
            let why = std::error::Error::source(e)
                .map(ToString::to_string)
                .unwrap_or_default();
            format!(
                "invalid argument {} for \"{shown}\" flag: {why}",
                gofmt::quote(value.as_bytes())
            )
        }
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tabwriter_pads_columns_with_tabs() {
        // widest first cell 4 (+1 padding) -> one tab stop; "ab" gets one tab, "abcdefgh"
        // (8, +1 = 9 -> 16) two for the others
        assert_eq!(tabwriter("ab\tx\nabcd\ty\n"), "ab\tx\nabcd\ty\n");
        assert_eq!(tabwriter("ab\tx\nabcdefgh\ty\n"), "ab\t\tx\nabcdefgh\ty\n");
        // a line without a tab ends the block
        assert_eq!(
            tabwriter("abcdefgh\tx\nplain\nab\ty\n"),
            "abcdefgh\tx\nplain\nab\ty\n"
        );
        // empty leading cells
        assert_eq!(tabwriter("\tname - short\n"), "\tname - short\n");
        assert_eq!(
            tabwriter("\tab\tx\n\tabcdefghij\ty\n"),
            "\tab\t\tx\n\tabcdefghij\ty\n"
        );
    }

    #[test]
    fn suggestions_like_cobra() {
        assert_eq!(distance("gett", "get"), 1);
        assert_eq!(distance("put1", "auth"), 2);
        assert_eq!(distance("", "abc"), 3);
    }
}
