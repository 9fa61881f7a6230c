//! `etcdctl watch` compatibility: every scenario is a script of one-shot etcdctl (API v3)
//! invocations and long-running `etcdctl watch` processes, run against a fresh real etcd
//! 3.4 and then against a fresh retcd on the same ports. The output of every one-shot
//! command and the complete stdout, stderr and exit status of every watch process must
//! match (after the normalizations below).
//!
//! Run: `cargo test -p retcd-server --test watch_compat`
//! Self-test of the scenarios (etcd vs a second etcd): `RETCD_COMPAT_SELFTEST=1 cargo test ...`
//! Print etcd's transcript of every scenario: `RETCD_COMPAT_DUMP=1 cargo test ... -- --nocapture`
//!
//! Mechanics:
//! * A watch process is started with piped stdout/stderr; the harness waits until it has
//!   an established TCP connection to the server (seen through /proc) and then another
//!   [`SETTLE`], so that the watch is registered before the next write. Interactive
//!   watches (`watch -i`) get the same settle time after every stdin line.
//! * `expect(n)` waits until the current watch has printed `n` stdout lines in total
//!   (at most [`EXPECT_TIMEOUT`]; not at all once the process has exited). The lines
//!   counts are part of the scenario; they are validated against etcd, where a count
//!   that is not reached fails the scenario as a scenario bug.
//! * `stop()` gives the watch [`STOP_GRACE`] to print anything unexpected, then kills it
//!   (reported as `exit: killed by the harness`); `exits()` requires the watch to end by
//!   itself within [`EXIT_TIMEOUT`] (e.g. canceled by a compaction) and records its code.
//! * Replays (`--rev`) need no timing: the events come from history.
//!
//! Normalizations (both sides): `raft_term` in JSON headers, `"RaftTerm" : N` in
//! `-w fields`, the header's raft_term field in `-w protobuf` output (Raft terms are an
//! implementation detail); the client endpoint `127.0.0.1:<port>`; timestamps and client
//! UUIDs in etcdctl's zap warnings on stderr. Watch output has no other volatile parts:
//! cluster and member IDs match because both servers run on the same URLs.

mod common;
#[path = "common/normalize.rs"]
mod normalize;

use std::fmt::Write as _;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{EtcdctlProcess, Output, Ports, Server, ServerKind, kind_under_test, selftest};
use normalize::{
    hex_lines, indent, line_diff, normalize_fields_raft_term, normalize_protobuf, replace_after,
};

/// How long a watch gets, after its connection is up (or after an interactive input
/// line), before the scenario goes on.
const SETTLE: Duration = Duration::from_millis(300);
/// Upper bound for the connection of a new watch process to show up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for one `expect`.
const EXPECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for a watch that must end by itself.
const EXIT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a watch gets to print unexpected extra output before it is killed.
const STOP_GRACE: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------
// Scenarios: model and runner
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Step {
    /// A one-shot etcdctl invocation (output compared).
    Ctl {
        args: Vec<String>,
        stdin: Option<Vec<u8>>,
    },
    /// Starts a watch process; it becomes the current one.
    Watch {
        args: Vec<String>,
        interactive: bool,
    },
    /// Makes watch number `n` (in start order, from 0) the current one.
    Select(usize),
    /// Writes `line` + "\n" to the current (interactive) watch's stdin.
    Input(String),
    /// Waits until the current watch has printed `out` stdout and `err` stderr lines.
    Expect {
        out: usize,
        err: usize,
    },
    /// Closes the current watch's stdin.
    CloseStdin,
    /// Ends the current watch (grace period, then SIGKILL); output compared.
    Stop,
    /// The current watch must exit by itself; output and exit code compared.
    Exits,
    Sleep(Duration),
}

fn quote_args(args: &[String]) -> String {
    let mut s = String::from("etcdctl");
    for a in args {
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '$') {
            s.push_str(&format!("{a:?}"));
        } else {
            s.push_str(a);
        }
    }
    s
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Ctl { args, stdin } => {
                let mut s = quote_args(args);
                if let Some(input) = stdin {
                    s.push_str(&format!("  < stdin {:?}", String::from_utf8_lossy(input)));
                }
                s
            }
            Step::Watch { args, interactive } => format!(
                "start {}{}",
                quote_args(args),
                if *interactive { "  (stdin: pipe)" } else { "" }
            ),
            Step::Select(n) => format!("select watch #{n}"),
            Step::Input(line) => format!("stdin <- {line:?}"),
            Step::Expect { out, err } => {
                format!("wait for {out} stdout line(s) and {err} stderr line(s)")
            }
            Step::CloseStdin => "close stdin".into(),
            Step::Stop => "stop the watch (kill after grace period)".into(),
            Step::Exits => "the watch must exit by itself".into(),
            Step::Sleep(d) => format!("sleep {d:?}"),
        }
    }
}

struct Scenario {
    name: &'static str,
    steps: Vec<Step>,
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Scenario {
    fn new(name: &'static str) -> Scenario {
        Scenario {
            name,
            steps: Vec::new(),
        }
    }

    fn push(mut self, step: Step) -> Scenario {
        self.steps.push(step);
        self
    }

    /// One-shot `etcdctl <args>`, stdin = /dev/null.
    fn ctl(self, args: &[&str]) -> Scenario {
        self.push(Step::Ctl {
            args: strings(args),
            stdin: None,
        })
    }

    /// One-shot `etcdctl <args>` with `input` on stdin.
    fn ctl_stdin(self, args: &[&str], input: impl Into<Vec<u8>>) -> Scenario {
        self.push(Step::Ctl {
            args: strings(args),
            stdin: Some(input.into()),
        })
    }

    fn put(self, key: &str, value: &str) -> Scenario {
        self.ctl(&["put", key, value])
    }

    /// Non-interactive `etcdctl txn` without compares, with the given success ops.
    fn txn(self, ops: &[&str]) -> Scenario {
        let mut script = String::from("\n");
        for op in ops {
            script.push_str(op);
            script.push('\n');
        }
        script.push_str("\n\n");
        self.ctl_stdin(&["txn"], script)
    }

    /// Starts `etcdctl <args>` (args begin with `watch`) and waits until it is established.
    fn watch(self, args: &[&str]) -> Scenario {
        self.push(Step::Watch {
            args: strings(args),
            interactive: false,
        })
    }

    /// Starts `etcdctl <args>` with stdin as a pipe (`watch -i`).
    fn watch_interactive(self, args: &[&str]) -> Scenario {
        self.push(Step::Watch {
            args: strings(args),
            interactive: true,
        })
    }

    fn select(self, n: usize) -> Scenario {
        self.push(Step::Select(n))
    }

    fn input(self, line: &str) -> Scenario {
        self.push(Step::Input(line.to_string()))
    }

    /// Waits until the current watch printed `out` stdout lines in total.
    fn expect(self, out: usize) -> Scenario {
        self.push(Step::Expect { out, err: 0 })
    }

    /// Waits until the current watch printed `out` stdout and `err` stderr lines in total.
    fn expect_both(self, out: usize, err: usize) -> Scenario {
        self.push(Step::Expect { out, err })
    }

    fn close_stdin(self) -> Scenario {
        self.push(Step::CloseStdin)
    }

    fn stop(self) -> Scenario {
        self.push(Step::Stop)
    }

    fn exits(self) -> Scenario {
        self.push(Step::Exits)
    }

    fn sleep_ms(self, ms: u64) -> Scenario {
        self.push(Step::Sleep(Duration::from_millis(ms)))
    }

    /// Starts a watch, waits for `lines` stdout lines, stops it.
    fn replay(self, args: &[&str], lines: usize) -> Scenario {
        self.watch(args).expect(lines).stop()
    }

    fn check(self) {
        let ports = Ports::reserve();
        let reference = run(ServerKind::Etcd, &ports, &self, true);
        let subject_kind = kind_under_test();
        let subject = run(subject_kind, &ports, &self, false);
        drop(ports);
        if std::env::var_os("RETCD_COMPAT_DUMP").is_some() {
            eprintln!("{}", transcript(&self, &reference));
        }

        let sub_name = if selftest() { "etcd#2" } else { subject_kind.name() };
        let mut msg = String::new();
        let mut bad = Vec::new();
        for (i, (a, b)) in reference.records.iter().zip(&subject.records).enumerate() {
            if a != b {
                bad.push(i);
                if bad.len() <= 4 {
                    let _ = writeln!(
                        msg,
                        "\n--- step {}: {} (- etcd, + {sub_name}; normalized) ---",
                        i + 1,
                        self.steps[i].describe()
                    );
                    msg.push_str(&line_diff(a.as_deref().unwrap_or(""), b.as_deref().unwrap_or("")));
                }
            }
        }
        if bad.is_empty() {
            return;
        }
        let mut head = format!(
            "\n===== watch scenario `{}`: {} step(s) differ between etcd (reference, -) and {sub_name} (+) =====\n",
            self.name,
            bad.len()
        );
        head.push_str(&msg);
        let _ = writeln!(head, "\n--- all steps (✗ = differs) ---");
        for (i, s) in self.steps.iter().enumerate() {
            let mark = if bad.contains(&i) { "✗" } else { " " };
            let _ = writeln!(head, "{mark} {:>3}. {}", i + 1, s.describe());
        }
        head.push_str(&subject.log_tail);
        panic!("{head}");
    }
}

/// What one run of a scenario produced: per step, the normalized rendering of its
/// observable result (None for steps without one).
struct Run {
    records: Vec<Option<String>>,
    log_tail: String,
}

fn count_lines(b: &[u8]) -> usize {
    b.iter().filter(|&&c| c == b'\n').count()
}

fn run(kind: ServerKind, ports: &Arc<Ports>, scenario: &Scenario, reference: bool) -> Run {
    let server = Server::start_on(kind, Arc::clone(ports));
    let endpoint = server.endpoint();
    let client_port = ports.client();
    let mut watches: Vec<(Vec<String>, Option<EtcdctlProcess>)> = Vec::new();
    let mut current = 0usize;
    let mut records = Vec::new();

    let fail = |step: usize, what: &str| -> ! {
        panic!(
            "scenario `{}` is broken: against {} (the reference), step {} ({}) {what}\n{}",
            scenario.name,
            kind.name(),
            step + 1,
            scenario.steps[step].describe(),
            server.log_tail(40)
        )
    };

    for (i, step) in scenario.steps.iter().enumerate() {
        let record = match step {
            Step::Ctl { args, stdin } => {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = server.etcdctl_bytes(&args, stdin.as_deref());
                Some(render(&args, &out, client_port, false))
            }
            Step::Watch { args, interactive } => {
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut p = EtcdctlProcess::spawn(&endpoint, &argv, *interactive);
                let connected = p.wait_connected(client_port, CONNECT_TIMEOUT);
                if !connected && reference && p.exit_code().is_none() {
                    fail(i, "never connected to the server");
                }
                if connected {
                    thread::sleep(SETTLE);
                }
                watches.push((args.clone(), Some(p)));
                current = watches.len() - 1;
                None
            }
            Step::Select(n) => {
                current = *n;
                None
            }
            Step::Input(line) => {
                let p = live(&mut watches, current, i, scenario);
                let res = p.write_stdin(format!("{line}\n").as_bytes());
                thread::sleep(SETTLE);
                Some(match res {
                    Ok(()) => "written".to_string(),
                    Err(e) => format!("stdin write failed: {e}"),
                })
            }
            Step::Expect { out, err } => {
                let p = live(&mut watches, current, i, scenario);
                let (out, err) = (*out, *err);
                let ok = p.wait_until(EXPECT_TIMEOUT, |o, e| {
                    count_lines(o) >= out && count_lines(e) >= err
                });
                if ok {
                    Some("reached".to_string())
                } else {
                    let why = format!(
                        "not reached: {} after {} stdout / {} stderr line(s)\n",
                        if p.exit_code().is_some() {
                            "the watch exited"
                        } else {
                            "timed out"
                        },
                        count_lines(&p.stdout()),
                        count_lines(&p.stderr())
                    );
                    if reference {
                        fail(
                            i,
                            &format!(
                                "{why}stdout so far:\n{}\nstderr so far:\n{}",
                                String::from_utf8_lossy(&p.stdout()),
                                String::from_utf8_lossy(&p.stderr())
                            ),
                        );
                    }
                    Some(why)
                }
            }
            Step::CloseStdin => {
                live(&mut watches, current, i, scenario).close_stdin();
                None
            }
            Step::Stop | Step::Exits => {
                let (args, slot) = &mut watches[current];
                let mut p = slot
                    .take()
                    .unwrap_or_else(|| panic!("scenario bug: watch #{current} already ended"));
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let must_exit = matches!(step, Step::Exits);
                if must_exit {
                    let exited = p.wait_until(EXIT_TIMEOUT, |_, _| false) || p.exit_code().is_some();
                    if !exited && reference {
                        fail(i, "did not exit by itself");
                    }
                }
                let exited_by_itself = p.exit_code().is_some();
                let out = p.finish(if must_exit { Duration::ZERO } else { STOP_GRACE });
                let exited_by_itself = exited_by_itself || (!must_exit && out.code != -1);
                Some(render(&argv, &out, client_port, !exited_by_itself))
            }
            Step::Sleep(d) => {
                thread::sleep(*d);
                None
            }
        };
        records.push(record);
    }
    // Watches the scenario did not end explicitly.
    for (_, slot) in &mut watches {
        if let Some(p) = slot.take() {
            drop(p.finish(Duration::ZERO));
        }
    }
    Run {
        records,
        log_tail: server.log_tail(60),
    }
}

fn live<'a>(
    watches: &'a mut [(Vec<String>, Option<EtcdctlProcess>)],
    current: usize,
    step: usize,
    scenario: &Scenario,
) -> &'a mut EtcdctlProcess {
    watches
        .get_mut(current)
        .and_then(|(_, p)| p.as_mut())
        .unwrap_or_else(|| {
            panic!(
                "scenario `{}` bug at step {}: watch #{current} is not running",
                scenario.name,
                step + 1
            )
        })
}

fn transcript(scenario: &Scenario, reference: &Run) -> String {
    let mut t = format!("===== watch scenario `{}` (etcd) =====\n", scenario.name);
    for (step, rec) in scenario.steps.iter().zip(&reference.records) {
        let _ = writeln!(t, "# {}", step.describe());
        if let Some(r) = rec {
            t.push_str(&indent(r));
        }
    }
    t
}

// ---------------------------------------------------------------------------------------
// Normalization
// ---------------------------------------------------------------------------------------

/// The `-w` / `--write-out` value in an argument list.
fn write_out<'a>(args: &[&'a str]) -> Option<&'a str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "-w" || *a == "--write-out" {
            return it.next().copied();
        }
        if let Some(v) = a.strip_prefix("--write-out=").or_else(|| a.strip_prefix("-w=")) {
            return Some(v);
        }
        if let Some(v) = a.strip_prefix("-w")
            && !v.is_empty()
        {
            return Some(v);
        }
    }
    None
}

/// The normalized, printable result of one etcdctl process.
fn render(args: &[&str], out: &Output, client_port: u16, killed: bool) -> String {
    let endpoint = format!("127.0.0.1:{client_port}");
    let common = |s: &str| {
        let s = s.replace(&endpoint, "<endpoint>");
        let s = replace_after(&s, "\"raft_term\":", |c| c.is_ascii_digit(), "<term>");
        let s = normalize_fields_raft_term(&s);
        let s = replace_after(&s, "\"ts\":\"", |c| c != '"', "<ts>");
        replace_after(
            &s,
            "endpoint://client-",
            |c| c.is_ascii_hexdigit() || c == '-',
            "<uuid>",
        )
    };
    let stdout = if write_out(args) == Some("protobuf") {
        hex_lines(&normalize_protobuf(&out.stdout_raw))
    } else {
        common(&out.stdout)
    };
    let exit = if killed {
        "exit: killed by the harness (still running)".to_string()
    } else {
        format!("exit code {}", out.code)
    };
    format!(
        "{exit}\n[stdout]\n{}{}[stderr]\n{}{}",
        stdout,
        if stdout.is_empty() || stdout.ends_with('\n') {
            ""
        } else {
            "⏎̸\n"
        },
        common(&out.stderr),
        if out.stderr.is_empty() || out.stderr.ends_with('\n') {
            ""
        } else {
            "⏎̸\n"
        }
    )
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

macro_rules! scenario {
    ($name:ident, $build:expr) => {
        #[test]
        fn $name() {
            let build: fn(Scenario) -> Scenario = $build;
            build(Scenario::new(stringify!($name))).check();
        }
    };
}

// Output of `etcdctl watch` (simple format) per event: the type line (`PUT` / `DELETE`),
// then, with --prev-kv and if there is a previous version, its key and value lines, then
// the key and value lines of the event's KV (a DELETE's value is empty: an empty line).
// So an event is 3 lines, or 5 with a previous KV.

// --- single key, live -------------------------------------------------------------------

scenario!(watch_key_live, |s| {
    s.put("foo", "before")
        .watch(&["watch", "foo"])
        .put("foo", "1")
        .expect(3)
        .put("foo", "2")
        .expect(6)
        .put("other", "x")
        .put("foo2", "x")
        .put("fo", "x")
        .ctl(&["del", "foo"])
        .expect(9)
        .ctl(&["del", "foo"])
        .put("foo", "3")
        .expect(12)
        .put("foo", "")
        .expect(15)
        .stop()
});

scenario!(watch_key_live_json, |s| {
    // one JSON line per WatchResponse: header revision = the event's revision
    s.put("foo", "before")
        .watch(&["watch", "foo", "-w", "json"])
        .put("foo", "1")
        .expect(1)
        .put("other", "x")
        .put("foo", "2")
        .expect(2)
        .ctl(&["del", "foo"])
        .expect(3)
        .ctl(&["del", "foo"])
        .put("foo", "3")
        .expect(4)
        .stop()
});

scenario!(watch_key_live_fields, |s| {
    s.watch(&["watch", "k", "-w", "fields"])
        .put("k", "v1")
        .expect(11)
        .ctl(&["del", "k"])
        .expect(22)
        .stop()
});

scenario!(watch_several_watchers_same_key, |s| {
    // three processes (three gRPC streams) watching the same key
    s.watch(&["watch", "shared"])
        .watch(&["watch", "shared", "-w", "json"])
        .watch(&["watch", "shared", "--prev-kv"])
        .put("shared", "a")
        .put("shared", "b")
        .select(0)
        .expect(6)
        .stop()
        .select(1)
        .expect(2)
        .stop()
        .select(2)
        .expect(8)
        .stop()
});

// --- key ranges and prefixes, live ---------------------------------------------------------

scenario!(watch_range_live, |s| {
    // [b, d): b, b/x, c, cz but not a, d, da
    s.watch(&["watch", "b", "d"])
        .watch(&["watch", "b", "d", "-w", "json"])
        .put("a", "1")
        .put("b", "2")
        .put("d", "3")
        .put("c", "4")
        .put("da", "5")
        .put("b/x", "6")
        .put("cz", "7")
        .ctl(&["del", "a", "z"])
        .select(0)
        .expect(4 * 3 + 4 * 3)
        .stop()
        .select(1)
        .expect(5)
        .stop()
});

scenario!(watch_prefix_live, |s| {
    s.watch(&["watch", "--prefix", "p/"])
        .watch(&["watch", "p/", "--prefix", "-w", "json"])
        .watch(&["watch", "", "--prefix", "-w", "json"])
        .put("p/a", "1")
        .put("p", "not in the prefix")
        .put("p/b/c", "2")
        .put("q/a", "3")
        // one revision, several events: one response
        .txn(&["put p/x x", "put p/y y", "put z z"])
        .ctl(&["del", "p/", "--prefix"])
        .ctl(&["del", "p/", "--prefix"])
        .put("p/", "4")
        .select(0)
        .expect(3 + 3 + 6 + 4 * 3 + 3)
        .stop()
        .select(1)
        .expect(5)
        .stop()
        .select(2)
        .expect(7)
        .stop()
});

// --- history replay (--rev) -------------------------------------------------------------------

/// rev 2: a=1, 3: b=1, 4: a=2, 5: del a, 6: a=3, 7: txn {c=1, a/x=1}, 8: del a --prefix
/// (a, a/x), 9: a=4, 10: b=2
fn history(s: Scenario) -> Scenario {
    s.put("a", "1")
        .put("b", "1")
        .put("a", "2")
        .ctl(&["del", "a"])
        .put("a", "3")
        .txn(&["put c 1", "put a/x 1"])
        .ctl(&["del", "a", "--prefix"])
        .put("a", "4")
        .put("b", "2")
}

scenario!(watch_rev_replay, |s| {
    history(s)
        .replay(&["watch", "a", "--rev=1"], 6 * 3)
        .replay(&["watch", "a", "--rev=4"], 5 * 3)
        .replay(&["watch", "a", "--rev=5"], 4 * 3)
        .replay(&["watch", "a", "--rev=9"], 3)
        .replay(&["watch", "a", "--prefix", "--rev=2"], 8 * 3)
        .replay(&["watch", "a", "c", "--rev=6"], 6 * 3)
        .replay(&["watch", "", "--prefix", "--rev=1"], 11 * 3)
        .replay(&["watch", "b", "--rev", "3"], 6)
        .replay(&["watch", "--rev=7", "c"], 3)
        // an empty key without --prefix is the single key "\0"
        .replay(&["watch", "", "--rev=1"], 0)
});

scenario!(watch_rev_replay_json, |s| {
    // all history events of a replay come in one response whose header revision is the
    // store's current revision
    history(s)
        .replay(&["watch", "a", "--rev=1", "-w", "json"], 1)
        .replay(&["watch", "", "--prefix", "--rev=1", "-w", "json"], 1)
        .replay(
            &["watch", "a", "--prefix", "--rev=5", "-w", "json", "--prev-kv"],
            1,
        )
        .replay(&["watch", "a", "--rev=10", "-w", "json"], 0)
});

scenario!(watch_rev_replay_then_live, |s| {
    history(s)
        .watch(&["watch", "a", "--rev=8", "-w", "json"])
        .expect(1)
        .put("a", "5")
        .expect(2)
        .ctl(&["del", "a"])
        .expect(3)
        .stop()
        .watch(&["watch", "b", "--rev=2"])
        .expect(6)
        .put("b", "3")
        .expect(9)
        .stop()
});

scenario!(watch_rev_current_and_future, |s| {
    // current revision 10: --rev=11 is the next write, --rev=13 skips two writes
    history(s)
        .watch(&["watch", "f", "--rev=11"])
        .watch(&["watch", "f", "--rev=13", "-w", "json"])
        .watch(&["watch", "f", "--rev=10"])
        .put("f", "11")
        .put("f", "12")
        .put("f", "13")
        .put("f", "14")
        .select(0)
        .expect(12)
        .stop()
        .select(1)
        .expect(2)
        .stop()
        .select(2)
        .expect(12)
        .stop()
});

scenario!(watch_rev_replay_fields_and_protobuf, |s| {
    history(s)
        .replay(&["watch", "a", "--rev=4", "-w", "fields"], 4 + 5 * 7)
        .replay(
            &["watch", "a", "--rev=4", "-w", "fields", "--prev-kv"],
            4 + 5 * 7 + 3 * 6,
        )
        // protobuf output has no line structure: wait for the whole replay to arrive
        .watch(&["watch", "a", "--rev=4", "-w", "protobuf"])
        .sleep_ms(1000)
        .stop()
});

// --- prev-kv --------------------------------------------------------------------------------

scenario!(watch_prev_kv, |s| {
    s.put("k", "0")
        .watch(&["watch", "k", "--prev-kv"])
        .watch(&["watch", "k", "--prev-kv", "-w", "json"])
        .watch(&["watch", "n", "--prev-kv"])
        .put("k", "1")
        .put("k", "2")
        .ctl(&["del", "k"])
        .put("k", "3")
        .put("n", "new")
        .put("n", "newer")
        .select(0)
        .expect(5 + 5 + 5 + 3)
        .stop()
        .select(1)
        .expect(4)
        .stop()
        .select(2)
        .expect(3 + 5)
        .stop()
        // replayed events carry the previous KV as well
        .replay(&["watch", "k", "--prev-kv", "--rev=2"], 3 + 5 + 5 + 5 + 3)
        .replay(&["watch", "k", "--prev-kv", "--rev=2", "-w", "json"], 1)
});

scenario!(watch_prev_kv_after_compaction, |s| {
    // the previous version of the first replayed event was compacted away
    s.put("k", "1")
        .put("k", "2")
        .put("k", "3")
        .ctl(&["compaction", "3"])
        .replay(&["watch", "k", "--prev-kv", "--rev=3", "-w", "json"], 1)
        .replay(&["watch", "k", "--prev-kv", "--rev=4"], 5)
});

// --- hex and binary data ------------------------------------------------------------------------

scenario!(watch_hex_and_binary, |s| {
    s.ctl_stdin(&["put", "bin"], vec![0u8, 1, 0xff, b'\n'])
        .put("ключ", "значение")
        .put("key with spaces", "value with spaces")
        .watch(&["watch", "", "--prefix", "--hex"])
        .watch(&["watch", "", "--prefix", "--hex", "-w", "json"])
        .put("h", "\u{1}\u{2}")
        .ctl(&["del", "ключ"])
        .select(0)
        .expect(6)
        .stop()
        .select(1)
        .expect(2)
        .stop()
        .replay(&["watch", "", "--prefix", "--hex", "--rev=1"], 5 * 3)
        .replay(&["watch", "", "--prefix", "--rev=1", "-w", "json"], 1)
        .replay(&["watch", "", "--prefix", "--hex", "--prev-kv", "--rev=5"], 3 + 5)
});

// --- compaction ---------------------------------------------------------------------------------

scenario!(watch_compacted_revision, |s| {
    // revisions 2..=6, compacted at 4: watching from 3 or below fails; etcdctl prints the
    // cancel reason and exits with 5
    s.put("a", "1")
        .put("a", "2")
        .put("b", "1")
        .put("a", "3")
        .put("a", "4")
        .ctl(&["compaction", "4"])
        .watch(&["watch", "a", "--rev=3"])
        .exits()
        .watch(&["watch", "a", "--rev=1", "-w", "json"])
        .exits()
        .watch(&["watch", "a", "--rev=2", "-w", "fields"])
        .exits()
        .watch(&["watch", "a", "--rev=3", "-w", "protobuf"])
        .exits()
        .watch(&["watch", "", "--prefix", "--rev=2", "--prev-kv"])
        .exits()
        // the compacted revision itself is still available
        .replay(&["watch", "a", "--rev=4"], 6)
        .replay(&["watch", "", "--prefix", "--rev=4", "-w", "json"], 1)
});

// --- auth ----------------------------------------------------------------------------------------

scenario!(watch_refused_by_auth, |s| {
    // with auth on, a watch without credentials is canceled with etcd's "user name is empty"
    // and one without read access with "permission denied" (etcdctl prints the cancel reason
    // and exits with 5); a permitted user watches as usual
    s.ctl(&["user", "add", "root:rootpw"])
        .ctl(&["user", "grant-role", "root", "root"])
        .ctl(&["user", "add", "bob:bobpw"])
        .ctl(&["role", "add", "reader"])
        .ctl(&["role", "grant-permission", "reader", "read", "a"])
        .ctl(&["user", "add", "ann:annpw"])
        .ctl(&["user", "grant-role", "ann", "reader"])
        .ctl(&["auth", "enable"])
        .watch(&["watch", "a"])
        .exits()
        .watch(&["watch", "a", "--user", "bob:bobpw"])
        .exits()
        .watch(&["watch", "b", "--user", "ann:annpw"])
        .exits()
        .watch(&["watch", "a", "--user", "ann:annpw"])
        .ctl(&["put", "a", "1", "--user", "root:rootpw"])
        .expect(3)
        .stop()
        .ctl(&["auth", "disable", "--user", "root:rootpw"])
});

scenario!(watch_live_survives_compaction, |s| {
    s.put("a", "1")
        .watch(&["watch", "a"])
        .put("a", "2")
        .expect(3)
        .ctl(&["compaction", "3"])
        .put("a", "3")
        .expect(6)
        .stop()
});

// --- interactive mode -----------------------------------------------------------------------------

// `etcdctl watch -i` reads commands from stdin, one per line: `watch [options] key
// [range_end] [-- cmd args...]` and `progress`; everything else is rejected on stderr
// (there is no `cancel` in etcdctl 3.4). All watches share one gRPC stream. At EOF of
// stdin etcdctl exits with `Error: Error reading watch request line: EOF` (code 3).

scenario!(watch_interactive, |s| {
    s.put("ia", "0")
        .watch_interactive(&["watch", "-i"])
        .input("watch ia")
        .input("watch ib --prefix")
        .put("ia", "1")
        .expect(3)
        .put("ib/x", "2")
        .expect(6)
        .put("ic", "not watched")
        .input("cancel 0")
        .expect_both(6, 1)
        .input("foo bar")
        .input("")
        .input("watch")
        .input("watch a b --prefix")
        .expect_both(6, 5)
        // a replay on the same stream, then live again (no two watches of the stream
        // see the same event: their goroutines would print concurrently)
        .input("watch ic --rev=2 --prev-kv")
        .expect(6 + 3)
        .put("ic", "again")
        .expect(6 + 3 + 5)
        .ctl(&["del", "ia"])
        .expect(6 + 3 + 5 + 3)
        .put("ib/y", "3")
        .expect(6 + 3 + 5 + 3 + 3)
        .close_stdin()
        .exits()
});

scenario!(watch_interactive_json_and_progress, |s| {
    // `progress` asks the server for a progress notification (WatchId -1), which the
    // client hands to every watch of the stream: one `progress notify: <rev>` line each
    s.put("x", "1")
        .watch_interactive(&["watch", "-i"])
        .input("progress")
        .input("watch ja")
        .input("progress")
        .expect(1)
        .input("watch jb --prefix")
        .input("progress")
        .expect(3)
        .put("ja", "1")
        .expect(6)
        .close_stdin()
        .exits()
        .watch_interactive(&["watch", "-i", "-w", "json"])
        .input("watch ja")
        .input("progress")
        .expect(2)
        .put("ja", "2")
        .expect(3)
        .input("watch x --rev=2 --prev-kv")
        .expect(4)
        .close_stdin()
        .exits()
});

scenario!(watch_interactive_compacted, |s| {
    // a compacted watch in interactive mode only cancels that watch
    s.put("a", "1")
        .put("a", "2")
        .put("a", "3")
        .ctl(&["compaction", "3"])
        .watch_interactive(&["watch", "-i"])
        .input("watch a")
        .input("watch a --rev=2")
        .expect_both(0, 1)
        .put("a", "4")
        .expect_both(3, 1)
        .close_stdin()
        .exits()
});

scenario!(watch_interactive_exec, |s| {
    s.watch_interactive(&["watch", "-i"])
        .input(r#"watch ie -- sh -c "echo got $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE""#)
        .put("ie", "1")
        .expect(4)
        .ctl(&["del", "ie"])
        .expect(8)
        .close_stdin()
        .exits()
});

// --- exec mode (`watch KEY -- CMD ARGS...`) ---------------------------------------------------------

// For each event etcdctl prints the event, then runs CMD with ETCD_WATCH_REVISION (the
// response header's revision, unquoted), ETCD_WATCH_EVENT_TYPE, ETCD_WATCH_KEY and
// ETCD_WATCH_VALUE (Go %q-quoted) added to its environment, stdout/stderr shared.

const SHOW_ENV: &str = r#"echo "rev=$ETCD_WATCH_REVISION type=$ETCD_WATCH_EVENT_TYPE key=$ETCD_WATCH_KEY value=$ETCD_WATCH_VALUE"; env | grep '^ETCD_' | sort"#;

scenario!(watch_exec, |s| {
    s.put("e", "0")
        .watch(&["watch", "e", "--", "sh", "-c", SHOW_ENV])
        .put("e", "hello world")
        .expect(3 + 5)
        .put("e", "quote\" back\\slash")
        .expect(16)
        .ctl(&["del", "e"])
        .expect(24)
        .stop()
        // replay: every event of the batch gets the batch's header revision
        .replay(&["watch", "e", "--rev=1", "--", "sh", "-c", SHOW_ENV], 4 * 8)
        .replay(
            &[
                "watch",
                "e",
                "--rev=2",
                "--prev-kv",
                "-w",
                "json",
                "--",
                "sh",
                "-c",
                SHOW_ENV,
            ],
            1 + 4 * 5,
        )
});

scenario!(watch_exec_failure, |s| {
    // a failing command ends etcdctl with code 1
    s.put("e", "1")
        .watch(&["watch", "e", "--rev=2", "--", "sh", "-c", "exit 3"])
        .exits()
        .watch(&["watch", "e", "--rev=2", "--", "/nonexistent/command"])
        .exits()
});

// --- errors -------------------------------------------------------------------------------------------

scenario!(watch_errors, |s| {
    s.ctl(&["watch"])
        .ctl(&["watch", "a", "b", "--prefix"])
        .ctl(&["watch", "a", "--"])
        .ctl(&["watch", "a", "--rev=x"])
        // the table format is only rejected when the first response is printed
        .put("a", "1")
        .watch(&["watch", "a", "--rev=2", "-w", "table"])
        .exits()
        // range end not after the key: the server refuses the watch (created + canceled,
        // cancel_reason "mvcc: watcher range is empty")
        .watch(&["watch", "m", "a"])
        .exits()
        .watch(&["watch", "m", "a", "-w", "json"])
        .exits()
        .watch(&["watch", "m", "m"])
        .exits()
});

// --- the normalizers ------------------------------------------------------------------------------------

#[test]
fn normalizer_unit_tests() {
    assert_eq!(
        replace_after(
            r#"{"raft_term":12,"x":1}"#,
            "\"raft_term\":",
            |c| c.is_ascii_digit(),
            "<term>"
        ),
        r#"{"raft_term":<term>,"x":1}"#
    );
    assert_eq!(
        normalize_fields_raft_term("\"RaftTerm\" : 2\n\"RaftTerm\" : 0\n"),
        "\"RaftTerm\" : <term>\n\"RaftTerm\" : 0\n"
    );
    // two WatchResponses back to back: header{cluster 1, member 2, rev 3, term 4}, created
    let one = [
        0x0a, 0x08, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x04, 0x18, 0x01,
    ];
    let two: Vec<u8> = one.iter().chain(one.iter()).copied().collect();
    let norm = [0x0a, 0x06, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x18, 0x01];
    assert_eq!(normalize_protobuf(&two), [norm, norm].concat());
    assert_eq!(write_out(&["watch", "-w", "json"]), Some("json"));
    assert_eq!(write_out(&["watch", "--write-out=protobuf"]), Some("protobuf"));
    assert_eq!(write_out(&["watch", "a"]), None);
    assert_eq!(line_diff("a\nb\nc\n", "a\nx\nc\n"), "  a\n- b\n+ x\n  c\n");
}
