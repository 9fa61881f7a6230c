//! etcdctl compatibility: every scenario is a list of etcdctl (API v3) invocations that
//! is run against a fresh real etcd 3.4 and against a fresh retcd; stdout, stderr and the
//! exit code must match step by step (after the normalizations below).
//!
//! Run: `cargo test -p retcd-server --test etcdctl_compat`
//! Self-test of the harness (etcd vs a second etcd): `RETCD_COMPAT_SELFTEST=1 cargo test ...`
//! Print what etcd answered in every step: `RETCD_COMPAT_DUMP=1 cargo test ... -- --nocapture`
//!
//! Both servers of a scenario run one after the other on the *same* client and peer
//! ports (reserved for the whole scenario), with the same flags and the default cluster
//! token, so they must report the same member ID and cluster ID. etcd derives them as
//! (etcdserver/api/membership, 3.4):
//!   member_id  = big-endian u64 of sha1(sorted peer URLs concatenated ++ cluster token)[0..8]
//!                (no timestamp for members of the initial cluster)
//!   cluster_id = big-endian u64 of sha1(concatenation of the sorted member IDs, each as
//!                8 big-endian bytes)[0..8]
//! e.g. peer URL `http://127.0.0.1:23801` + token `etcd-cluster` gives member id
//! 13668033151171901709 (bdae9bbc11dd390d) and cluster id 15118495548433857066.
//! Neither ID is normalized.
//!
//! Normalizations (applied identically to both sides):
//! * `raft_term` in JSON headers and `"RaftTerm" : N` (N != 0) in `-w fields`; in
//!   `-w protobuf` output the header's raft_term field is dropped: Raft terms are an
//!   implementation detail of the consensus layer (etcd is at term 2 after its first
//!   election, another Raft implementation may well be at term 1).
//! * `took = ...` / `"took":"..."` in `endpoint health`: wall-clock timing.
//! * `endpoint status`: compared structurally: DB size, DB size in use, raft term, raft
//!   index and raft applied index are replaced by placeholders (they depend on the
//!   storage engine and on how many Raft entries the implementation writes); endpoint,
//!   member ID, version, leader, learner flag, errors and the header revision are kept.
//! * etcdctl's client-side zap warnings on stderr (`{"level":"warn","ts":...,
//!   "target":"endpoint://client-<uuid>/127.0.0.1:PORT",...}`): the timestamp and the
//!   random client UUID. The gRPC code and message in them are compared.
//! * the client endpoint `127.0.0.1:<client port>` is replaced by `<endpoint>` (the
//!   same for both sides here, but error lines would otherwise depend on the port).
//! * lease ids: the server picks them (from its member id and the clock), so the n-th
//!   lease granted in a run (`lease <hex> granted with ...`) becomes `<L1>`, `<L2>`, ...
//!   in hex and decimal form; a step may pass it on as `{L1}`, `{L2}` (hex, as etcdctl
//!   takes lease ids). Remaining TTLs (`remaining(Ns)`, `"ttl":N` of timetolive) depend
//!   on timing and become `<ttl>` unless the lease is gone (-1).

mod common;
#[path = "common/normalize.rs"]
mod normalize;

use std::fmt::Write as _;
use std::sync::Arc;

use common::{Output, Ports, Server, ServerKind, kind_under_test, selftest};
use normalize::{
    hex_lines, indent, line_diff, normalize_fields_raft_term, normalize_protobuf, replace_after, shorten,
};

// ---------------------------------------------------------------------------------------
// Scenarios: model and runner
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
struct Step {
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
}

impl Step {
    fn command_line(&self) -> String {
        let mut s = String::from("etcdctl");
        for a in &self.args {
            s.push(' ');
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
                s.push_str(&format!("{a:?}"));
            } else {
                s.push_str(a);
            }
        }
        if let Some(input) = &self.stdin {
            s.push_str(&format!("  < stdin ({} bytes)", input.len()));
        }
        s
    }

    fn write_out(&self) -> Option<&str> {
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            if a == "-w" || a == "--write-out" {
                return it.next().map(String::as_str);
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

    fn is_endpoint(&self, sub: &str) -> bool {
        self.args.windows(2).any(|w| w[0] == "endpoint" && w[1] == sub)
    }
}

struct Scenario {
    name: &'static str,
    steps: Vec<Step>,
}

impl Scenario {
    fn new(name: &'static str) -> Scenario {
        Scenario {
            name,
            steps: Vec::new(),
        }
    }

    /// One etcdctl invocation, stdin = /dev/null.
    fn run(mut self, args: &[&str]) -> Scenario {
        self.steps.push(Step {
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: None,
        });
        self
    }

    /// One etcdctl invocation with `input` piped to stdin.
    fn stdin(mut self, args: &[&str], input: impl Into<Vec<u8>>) -> Scenario {
        self.steps.push(Step {
            args: args.iter().map(|s| s.to_string()).collect(),
            stdin: Some(input.into()),
        });
        self
    }

    /// Non-interactive `etcdctl txn [extra]` with the given compares and ops.
    fn txn(self, extra: &[&str], compares: &[&str], success: &[&str], failure: &[&str]) -> Scenario {
        let mut args = vec!["txn"];
        args.extend_from_slice(extra);
        self.stdin(&args, txn_script(compares, success, failure))
    }

    /// `put key value` for each pair, one etcdctl call (= one revision) each.
    fn puts(mut self, pairs: &[(&str, &str)]) -> Scenario {
        for (k, v) in pairs {
            self = self.run(&["put", k, v]);
        }
        self
    }

    fn check(self) {
        let ports = Ports::reserve();
        let reference = run_steps(ServerKind::Etcd, &ports, &self.steps);
        let subject_kind = kind_under_test();
        let subject = run_steps(subject_kind, &ports, &self.steps);
        drop(ports);
        if std::env::var_os("RETCD_COMPAT_DUMP").is_some() {
            eprintln!("{}", transcript(self.name, &self.steps, &reference.outputs));
        }

        let mut mismatches = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let a = normalize(
                step,
                &reference.outputs[i],
                reference.client_port,
                &reference.leases,
            );
            let b = normalize(step, &subject.outputs[i], subject.client_port, &subject.leases);
            if a != b {
                mismatches.push((i, a, b));
            }
        }
        if mismatches.is_empty() {
            return;
        }
        let ref_name = "etcd";
        let sub_name = if selftest() { "etcd#2" } else { subject_kind.name() };
        let (first, a, b) = &mismatches[0];
        let step = &self.steps[*first];
        let mut msg = String::new();
        let _ = writeln!(
            msg,
            "\n===== scenario `{}`: step {} of {} differs between {ref_name} (reference, -) and {sub_name} (+) =====",
            self.name,
            first + 1,
            self.steps.len()
        );
        let _ = writeln!(msg, "command: {}", step.command_line());
        if let Some(input) = &step.stdin {
            let _ = writeln!(
                msg,
                "stdin:\n{}",
                indent(&shorten(&String::from_utf8_lossy(input), 2000))
            );
        }
        if a.code != b.code {
            let _ = writeln!(msg, "exit code: {ref_name} {} vs {sub_name} {}", a.code, b.code);
        } else {
            let _ = writeln!(msg, "exit code: {} (same)", a.code);
        }
        for (what, x, y) in [("stdout", &a.stdout, &b.stdout), ("stderr", &a.stderr, &b.stderr)] {
            if x == y {
                let _ = writeln!(msg, "--- {what}: same ({} bytes) ---", x.len());
            } else {
                let _ = writeln!(msg, "--- {what} (- {ref_name}, + {sub_name}; normalized) ---");
                msg.push_str(&line_diff(x, y));
            }
        }
        let _ = writeln!(msg, "--- all steps (✗ = differs) ---");
        for (i, s) in self.steps.iter().enumerate() {
            let bad = mismatches.iter().any(|(j, _, _)| *j == i);
            let _ = writeln!(
                msg,
                "{} {:>3}. {}",
                if bad { "✗" } else { " " },
                i + 1,
                s.command_line()
            );
        }
        if mismatches.len() > 1 {
            let _ = writeln!(
                msg,
                "({} later step(s) differ as well; they may only be consequences of the first)",
                mismatches.len() - 1
            );
        }
        msg.push_str(&subject.log_tail);
        panic!("{msg}");
    }
}

/// The reference run as a readable transcript (`RETCD_COMPAT_DUMP=1 ... -- --nocapture`).
fn transcript(name: &str, steps: &[Step], outputs: &[Output]) -> String {
    let mut t = format!("===== scenario `{name}` (etcd) =====\n");
    for (step, out) in steps.iter().zip(outputs) {
        let _ = writeln!(t, "$ {}", step.command_line());
        if let Some(input) = &step.stdin {
            t.push_str(&indent(&shorten(&String::from_utf8_lossy(input), 300)));
        }
        let stdout = if step.write_out() == Some("protobuf") {
            hex_lines(&out.stdout_raw)
        } else {
            out.stdout.clone()
        };
        let _ = writeln!(t, "[exit {}] stdout:\n{}", out.code, shorten(&stdout, 1500));
        if !out.stderr.is_empty() {
            let _ = writeln!(t, "stderr:\n{}", shorten(&out.stderr, 1500));
        }
    }
    t
}

fn txn_script(compares: &[&str], success: &[&str], failure: &[&str]) -> String {
    // etcdctl reads each section up to an empty line; a section cut short by EOF makes it
    // fail with `Error: EOF` (exit 3), so every section is terminated.
    let mut s = String::new();
    for section in [compares, success, failure] {
        for line in section {
            s.push_str(line);
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

struct Run {
    outputs: Vec<Output>,
    client_port: u16,
    log_tail: String,
    /// Lease ids granted in this run, in order.
    leases: Vec<i64>,
}

/// The lease id in `lease <hex> granted with TTL(...)` (or `-w json`: `"ID":N,"TTL":`).
fn granted_lease(stdout: &str) -> Option<i64> {
    if let Some((_, rest)) = stdout.split_once("\"ID\":")
        && stdout.contains("\"TTL\":")
    {
        let digits: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        return digits.parse().ok();
    }
    let rest = stdout.strip_prefix("lease ")?;
    let (hex, tail) = rest.split_once(' ')?;
    tail.starts_with("granted with")
        .then(|| u64::from_str_radix(hex, 16).ok().map(|v| v as i64))
        .flatten()
}

fn run_steps(kind: ServerKind, ports: &Arc<Ports>, steps: &[Step]) -> Run {
    let server = Server::start_on(kind, Arc::clone(ports));
    let mut leases = Vec::new();
    let mut outputs = Vec::new();
    for s in steps {
        let subst = |a: &str, leases: &[i64]| {
            let mut a = a.to_string();
            for (i, id) in leases.iter().enumerate() {
                a = a.replace(&format!("{{L{}}}", i + 1), &format!("{id:x}"));
            }
            a
        };
        let args: Vec<String> = s.args.iter().map(|a| subst(a, &leases)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdin = s.stdin.as_ref().map(|b| match std::str::from_utf8(b) {
            Ok(text) => subst(text, &leases).into_bytes(),
            Err(_) => b.clone(),
        });
        let out = server.etcdctl_bytes(&args, stdin.as_deref());
        if let Some(id) = granted_lease(&out.stdout) {
            leases.push(id);
        }
        outputs.push(out);
    }
    Run {
        outputs,
        client_port: ports.client(),
        log_tail: server.log_tail(60),
        leases,
    }
}

/// Lease ids -> `<Ln>`; timing-dependent remaining TTLs -> `<ttl>`.
fn normalize_leases(s: &str, leases: &[i64]) -> String {
    let mut s = s.to_string();
    for (i, id) in leases.iter().enumerate() {
        let name = format!("<L{}>", i + 1);
        s = s.replace(&format!("{:016x}", *id as u64), &name);
        s = s.replace(&format!("{:x}", *id as u64), &name);
        s = s.replace(&id.to_string(), &name);
    }
    let s = replace_after(&s, "remaining(", |c| c.is_ascii_digit(), "<ttl>");
    // timetolive -w json: "ttl":N (but keep -1, a missing lease)
    replace_after(&s, "\"ttl\":", |c| c.is_ascii_digit(), "<ttl>")
}

// ---------------------------------------------------------------------------------------
// Normalization
// ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Eq)]
struct Normalized {
    stdout: String,
    stderr: String,
    code: i32,
}

fn normalize(step: &Step, out: &Output, client_port: u16, leases: &[i64]) -> Normalized {
    let endpoint = format!("127.0.0.1:{client_port}");
    let stdout = if step.write_out() == Some("protobuf") && !step.is_endpoint("status") {
        hex_lines(&normalize_protobuf(&out.stdout_raw))
    } else if step.is_endpoint("status") {
        normalize_endpoint_status(&out.stdout, step.write_out().unwrap_or("simple"))
    } else {
        out.stdout.clone()
    };
    let common = |s: &str| {
        let s = s.replace(&endpoint, "<endpoint>");
        let s = normalize_leases(&s, leases);
        let s = replace_after(&s, "\"raft_term\":", |c| c.is_ascii_digit(), "<term>");
        let s = normalize_fields_raft_term(&s);
        let s = replace_after(&s, "took = ", |c| c != '\n', "<elapsed>");
        let s = replace_after(&s, "\"took\":\"", |c| c != '"', "<elapsed>");
        let s = replace_after(&s, "\"ts\":\"", |c| c != '"', "<ts>");
        replace_after(
            &s,
            "endpoint://client-",
            |c| c.is_ascii_hexdigit() || c == '-',
            "<uuid>",
        )
    };
    Normalized {
        stdout: common(&stdout),
        stderr: common(&out.stderr),
        code: out.code,
    }
}

/// Status fields that depend on the storage engine / Raft implementation.
const STATUS_VOLATILE_JSON: &[&str] = &[
    "dbSize",
    "dbSizeInUse",
    "raftIndex",
    "raftTerm",
    "raftAppliedIndex",
];
const STATUS_VOLATILE_FIELDS: &[&str] = &[
    "DBSize",
    "DBSizeInUse",
    "RaftIndex",
    "RaftTerm",
    "RaftAppliedIndex",
];
const STATUS_VOLATILE_TABLE: &[&str] = &["DB SIZE", "RAFT TERM", "RAFT INDEX", "RAFT APPLIED INDEX"];
/// Columns of the simple format: endpoint, ID, version, db size, is leader, is learner,
/// raft term, raft index, raft applied index, errors.
const STATUS_VOLATILE_SIMPLE: &[usize] = &[3, 6, 7, 8];

/// etcd 3.4.23 reports its own version; retcd deliberately reports an etcd 3.5 version
/// (clients gate features on it), so the version cell is compared as "some 3.x version".
fn normalize_versions(stdout: &str) -> String {
    stdout
        .replace("3.4.23", "<version>")
        .replace("3.5.17", "<version>")
}

fn normalize_endpoint_status(stdout: &str, format: &str) -> String {
    let stdout = &normalize_versions(stdout);
    match format {
        "json" => match serde_json::from_str::<serde_json::Value>(stdout.trim()) {
            Ok(mut v) => {
                if let Some(list) = v.as_array_mut() {
                    for ep in list {
                        if let Some(st) = ep.get_mut("Status").and_then(|s| s.as_object_mut()) {
                            for key in STATUS_VOLATILE_JSON {
                                if st.get(*key).is_some_and(|x| x.is_number()) {
                                    st.insert((*key).into(), "<volatile>".into());
                                }
                            }
                            if let Some(h) = st.get_mut("header").and_then(|h| h.as_object_mut())
                                && h.get("raft_term").is_some_and(|x| x.is_number())
                            {
                                h.insert("raft_term".into(), "<term>".into());
                            }
                        }
                    }
                }
                format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
            }
            Err(_) => stdout.to_string(),
        },
        "fields" => stdout
            .lines()
            .map(|l| {
                for key in STATUS_VOLATILE_FIELDS {
                    if l.starts_with(&format!("\"{key}\" : ")) {
                        return format!("\"{key}\" : <volatile>\n");
                    }
                }
                format!("{l}\n")
            })
            .collect(),
        "table" => {
            let mut header: Vec<String> = Vec::new();
            let mut out = String::new();
            for line in stdout.lines() {
                if !line.starts_with('|') {
                    continue; // borders: their widths depend on the cell contents
                }
                let cells: Vec<String> = line
                    .trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_string())
                    .collect();
                if header.is_empty() {
                    header = cells.clone();
                    out.push_str(&cells.join(" | "));
                } else {
                    let cells: Vec<String> = cells
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            if header
                                .get(i)
                                .is_some_and(|h| STATUS_VOLATILE_TABLE.contains(&h.as_str()))
                            {
                                "<volatile>".to_string()
                            } else {
                                c.clone()
                            }
                        })
                        .collect();
                    out.push_str(&cells.join(" | "));
                }
                out.push('\n');
            }
            out
        }
        _ => stdout
            .lines()
            .map(|l| {
                let cols: Vec<String> = l
                    .split(", ")
                    .enumerate()
                    .map(|(i, c)| {
                        if STATUS_VOLATILE_SIMPLE.contains(&i)
                            && !c.is_empty()
                            && c.chars()
                                .all(|ch| ch.is_ascii_alphanumeric() || ch == ' ' || ch == '.')
                        {
                            "<volatile>".to_string()
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
                format!("{}\n", cols.join(", "))
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Diff display
// ---------------------------------------------------------------------------------------

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

/// Eight keys with distinct values, created in a shuffled order and partly rewritten, so
/// that every sort target gives a different order. Versions: sk3=2, sk7=3, sk1=2, sk5=2,
/// the others 1 (ties, with fewer than 13 results).
fn sort_fixture(s: Scenario) -> Scenario {
    s.puts(&[
        ("sk5", "c"),
        ("sk2", "h"),
        ("sk7", "b"),
        ("sk1", "d"),
        ("sk8", "e"),
        ("sk3", "a"),
        ("sk6", "g"),
        ("sk4", "f"),
        ("sk3", "a"),
        ("sk7", "b"),
        ("sk1", "d"),
        ("sk7", "b"),
        ("sk5", "c"),
        ("other", "zzz"),
    ])
}

fn sort_target(s: Scenario, target: &str) -> Scenario {
    let by = format!("--sort-by={target}");
    let by = by.as_str();
    sort_fixture(s)
        .run(&["get", "sk", "--prefix", by])
        .run(&["get", "sk", "--prefix", by, "--order=ASCEND"])
        .run(&["get", "sk", "--prefix", by, "--order=DESCEND"])
        // without --order the server limits first and sorts the page afterwards
        .run(&["get", "sk", "--prefix", by, "--limit", "3"])
        .run(&["get", "sk", "--prefix", by, "--order=ASCEND", "--limit", "3"])
        .run(&["get", "sk", "--prefix", by, "--order=DESCEND", "--limit", "3"])
        .run(&[
            "get",
            "sk",
            "--prefix",
            by,
            "--order=DESCEND",
            "--limit",
            "3",
            "-w",
            "json",
        ])
        .run(&["get", "sk", "--prefix", by, "--limit", "3", "-w", "json"])
        .run(&["get", "sk", "--prefix", by, "--order=DESCEND", "--keys-only"])
        .run(&["get", "sk1", "sk6", by, "--order=DESCEND"])
        .run(&["get", "sk4", "--from-key", by, "--order=DESCEND", "--limit", "4"])
}

// --- put / get basics ---------------------------------------------------------------------

scenario!(put_get_simple, |s| {
    s.run(&["get", "foo"])
        .run(&["get", "foo", "-w", "json"])
        .run(&["put", "foo", "bar"])
        .run(&["get", "foo"])
        .run(&["get", "foo", "-w", "json"])
        .run(&["get", "foo", "-w", "simple"])
        .run(&["get", "missing"])
        .run(&["get", "missing", "-w", "json"])
        .run(&["put", "foo", "baz"])
        .run(&["get", "foo", "-w", "json"])
        .run(&["get", "foo", "--consistency=s"])
});

scenario!(put_get_write_out_formats, |s| {
    s.run(&["put", "foo", "bar", "-w", "json"])
        .run(&["put", "foo", "baz", "-w", "fields"])
        .run(&["put", "foo", "qux", "-w", "protobuf"])
        .run(&["get", "foo", "-w", "fields"])
        .run(&["get", "foo", "-w", "protobuf"])
        .run(&["get", "missing", "-w", "fields"])
        .run(&["get", "missing", "-w", "protobuf"])
        .run(&["get", "foo", "-w", "table"])
        .run(&["get", "foo", "--write-out=json"])
});

scenario!(put_prev_kv, |s| {
    s.run(&["put", "a", "1", "--prev-kv"])
        .run(&["put", "a", "2", "--prev-kv"])
        .run(&["put", "a", "3", "--prev-kv", "-w", "json"])
        .run(&["put", "a", "4", "--prev-kv", "-w", "fields"])
        .run(&["put", "b", "1", "--prev-kv", "-w", "json"])
        .run(&["put", "b", "2", "--prev-kv", "-w", "protobuf"])
        .run(&["get", "a", "-w", "json"])
});

scenario!(put_ignore_value, |s| {
    s.run(&["put", "missing", "--ignore-value"])
        .run(&["get", "missing"])
        .run(&["put", "a", "1"])
        .run(&["put", "a", "--ignore-value"])
        .run(&["get", "a", "-w", "json"])
        .run(&["put", "a", "--ignore-value", "--prev-kv"])
        .run(&["put", "a", "x", "--ignore-value"])
        .run(&["get", "a", "-w", "json"])
});

scenario!(put_ignore_lease, |s| {
    s.run(&["put", "missing", "v", "--ignore-lease"])
        .run(&["put", "a", "1"])
        .run(&["put", "a", "2", "--ignore-lease"])
        .run(&["get", "a", "-w", "json"])
        .run(&["put", "a", "--ignore-lease", "--ignore-value"])
        .run(&["get", "a", "-w", "json"])
});

scenario!(put_errors, |s| {
    s.run(&["put", "", "x"])
        .run(&["put", "", "x", "-w", "json"])
        .run(&["put", "k", "v", "--lease=1234"])
        .run(&["put", "k", "v", "--lease=4d2"])
        .run(&["put", "k", "v", "--lease=zz"])
        .run(&["put"])
        .run(&["put", "onlykey"])
        .run(&["put", "a", "b", "--ignore-value"])
        .run(&["get", "", "--prefix", "-w", "json"])
});

scenario!(put_value_from_stdin, |s| {
    s.stdin(&["put", "multi"], "hello\nworld\n")
        .run(&["get", "multi"])
        .run(&["get", "multi", "-w", "json"])
        .stdin(&["put", "empty"], "")
        .run(&["get", "empty", "-w", "json"])
        .stdin(&["put", "bin"], vec![0u8, 1, 2, 0xff, 0xfe, b'\n'])
        .run(&["get", "bin", "-w", "json"])
        .run(&["get", "bin", "--hex"])
});

scenario!(put_special_keys_and_values, |s| {
    s.run(&["put", "key with spaces", "value with spaces"])
        .run(&["put", "ключ", "значение"])
        .run(&["put", "tab\tkey", "a\"quote'"])
        .run(&["put", "-", "--"])
        .run(&["put", "--", "-dash", "-v"])
        .run(&["put", "/a/b/c", ""])
        .run(&["get", "", "--from-key"])
        .run(&["get", "", "--from-key", "-w", "json"])
        .run(&["get", "", "--from-key", "--hex"])
        .run(&["get", "/a/b/c", "-w", "json"])
});

scenario!(put_large_values, |s| {
    let one_mib = "m".repeat(1024 * 1024);
    let under_limit = "u".repeat(1_572_864 - 200);
    let at_limit = "l".repeat(1_572_864);
    let above_limit = "o".repeat(1_600_000);
    let below_grpc_max = "g".repeat(2_000_000);
    let above_grpc_max = "x".repeat(3_000_000);
    s.stdin(&["put", "big1"], one_mib)
        .run(&["get", "big1", "--keys-only", "-w", "json"])
        .stdin(&["put", "big2"], under_limit)
        .run(&["get", "big2", "--keys-only", "-w", "json"])
        .stdin(&["put", "big3"], at_limit)
        .stdin(&["put", "big4"], above_limit)
        .stdin(&["put", "big5"], below_grpc_max)
        .stdin(&["put", "big6"], above_grpc_max)
        .run(&["get", "big", "--prefix", "--keys-only"])
        .run(&["get", "big1", "--print-value-only"])
});

// --- get: ranges and flags ----------------------------------------------------------------

fn range_fixture(s: Scenario) -> Scenario {
    s.puts(&[
        ("foo", "0"),
        ("foo1", "1"),
        ("foo2", "2"),
        ("foo9", "9"),
        ("foo10", "10"),
        ("fop", "p"),
        ("fo", "o"),
        ("zoo", "z"),
        ("a", "a"),
    ])
}

scenario!(get_prefix, |s| {
    range_fixture(s)
        .run(&["get", "foo", "--prefix"])
        .run(&["get", "foo", "--prefix", "-w", "json"])
        .run(&["get", "fo", "--prefix", "--keys-only"])
        .run(&["get", "nothing", "--prefix"])
        .run(&["get", "nothing", "--prefix", "-w", "json"])
        .run(&["get", "", "--prefix", "--keys-only"])
        .run(&["get", "", "--prefix", "-w", "json"])
});

scenario!(get_from_key, |s| {
    range_fixture(s)
        .run(&["get", "foo", "--from-key"])
        .run(&["get", "fop", "--from-key", "-w", "json"])
        .run(&["get", "zzz", "--from-key"])
        .run(&["get", "", "--from-key", "--keys-only"])
        .run(&["get", "a", "--from-key", "--limit", "3"])
});

scenario!(get_range, |s| {
    range_fixture(s)
        .run(&["get", "foo", "foo9"])
        .run(&["get", "foo", "foo9", "-w", "json"])
        .run(&["get", "foo1", "foo2"])
        .run(&["get", "foo9", "foo"])
        .run(&["get", "foo", "foo"])
        .run(&["get", "a", "z", "--keys-only"])
        .run(&["get", "foo", "foo9", "--limit", "2", "-w", "json"])
});

scenario!(get_flag_errors, |s| {
    range_fixture(s)
        .run(&["get", "a", "z", "--prefix"])
        .run(&["get", "a", "--prefix", "--from-key"])
        .run(&["get"])
        .run(&["get", "a", "b", "c"])
        .run(&["get", "a", "--sort-by=BOGUS"])
        .run(&["get", "a", "--order=UP"])
        .run(&["get", "a", "--consistency=x"])
        .run(&["get", "a", "--rev=abc"])
});

scenario!(get_keys_only_print_value_only_hex, |s| {
    range_fixture(s)
        .run(&["put", "bin", "\u{1}\u{2}é"])
        .run(&["get", "foo", "--prefix", "--keys-only"])
        .run(&["get", "foo", "--prefix", "--keys-only", "-w", "json"])
        .run(&["get", "foo", "--prefix", "--print-value-only"])
        .run(&["get", "foo", "--prefix", "--print-value-only", "-w", "json"])
        .run(&["get", "foo", "--print-value-only", "--keys-only"])
        .run(&["get", "foo", "--prefix", "--hex"])
        .run(&["get", "bin", "--hex"])
        .run(&["get", "bin", "--hex", "-w", "json"])
        .run(&["get", "bin", "--hex", "--print-value-only"])
        .run(&["get", "bin", "--hex", "-w", "fields"])
        .run(&["get", "foo", "--prefix", "--keys-only", "--hex"])
});

scenario!(get_limit, |s| {
    let mut s = s;
    for i in 0..20 {
        s = s.run(&["put", &format!("lim{i:02}"), "v"]);
    }
    s.run(&["get", "lim", "--prefix", "--limit", "2"])
        .run(&["get", "lim", "--prefix", "--limit", "2", "-w", "json"])
        .run(&["get", "lim", "--prefix", "--limit=5", "--keys-only"])
        .run(&["get", "lim", "--prefix", "--limit", "0", "--keys-only"])
        .run(&[
            "get",
            "lim",
            "--prefix",
            "--limit",
            "20",
            "-w",
            "json",
            "--keys-only",
        ])
        .run(&[
            "get",
            "lim",
            "--prefix",
            "--limit",
            "21",
            "-w",
            "json",
            "--keys-only",
        ])
        .run(&[
            "get",
            "lim",
            "--prefix",
            "--limit",
            "19",
            "-w",
            "json",
            "--keys-only",
        ])
        .run(&["get", "lim", "--prefix", "--limit", "-1", "--keys-only"])
        .run(&["get", "lim05", "lim10", "--limit", "3", "-w", "json"])
        .run(&["get", "lim05", "--limit", "3", "-w", "fields"])
        .run(&["get", "", "--from-key", "--limit", "1", "-w", "json"])
});

// --- sorting --------------------------------------------------------------------------------

scenario!(sort_by_key, |s| sort_target(s, "KEY"));
scenario!(sort_by_create, |s| sort_target(s, "CREATE"));
scenario!(sort_by_modify, |s| sort_target(s, "MODIFY"));
scenario!(sort_by_value, |s| sort_target(s, "VALUE"));
scenario!(sort_by_version, |s| sort_target(s, "VERSION"));

scenario!(sort_order_only_and_lowercase, |s| {
    sort_fixture(s)
        .run(&["get", "sk", "--prefix", "--order=DESCEND"])
        .run(&["get", "sk", "--prefix", "--order=ASCEND", "--limit", "2"])
        .run(&[
            "get",
            "sk",
            "--prefix",
            "--order=descend",
            "--limit",
            "2",
            "-w",
            "json",
        ])
        .run(&["get", "sk", "--prefix", "--sort-by=value", "--order=descend"])
        .run(&["get", "", "--from-key", "--order=DESCEND", "--keys-only"])
});

// More than 12 results with ties: etcd sorts with Go's (unstable) sort.Sort, so ties
// come out in the order of Go's pattern-defeating quicksort, not in key order.
scenario!(sort_ties_many, |s| {
    let puts: Vec<String> = (0..40).map(|i| format!("put t{i:02} {}", i % 3)).collect();
    let puts: Vec<&str> = puts.iter().map(String::as_str).collect();
    let more: Vec<String> = (0..40)
        .step_by(7)
        .map(|i| format!("put t{i:02} {}", i % 3))
        .collect();
    let more: Vec<&str> = more.iter().map(String::as_str).collect();
    s.txn(&[], &[], &puts, &[])
        .txn(&[], &[], &more, &[])
        .run(&["get", "t", "--prefix", "--sort-by=VALUE"])
        .run(&["get", "t", "--prefix", "--sort-by=VALUE", "--order=DESCEND"])
        .run(&["get", "t", "--prefix", "--sort-by=CREATE", "--keys-only"])
        .run(&[
            "get",
            "t",
            "--prefix",
            "--sort-by=CREATE",
            "--order=DESCEND",
            "--keys-only",
        ])
        .run(&[
            "get",
            "t",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=ASCEND",
            "--keys-only",
        ])
        .run(&[
            "get",
            "t",
            "--prefix",
            "--sort-by=VERSION",
            "--order=DESCEND",
            "--keys-only",
        ])
        .run(&[
            "get",
            "t",
            "--prefix",
            "--sort-by=VERSION",
            "--order=DESCEND",
            "--limit",
            "5",
            "-w",
            "json",
        ])
});

scenario!(many_keys, |s| {
    let puts: Vec<String> = (0..128)
        .map(|i| format!("put many/{i:03} value-{}", (i * 37) % 128))
        .collect();
    let puts: Vec<&str> = puts.iter().map(String::as_str).collect();
    s.txn(&[], &[], &puts, &[])
        .run(&["put", "many/050", "rewritten"])
        .run(&["get", "many/", "--prefix", "--limit", "10"])
        .run(&["get", "many/", "--prefix", "--limit", "3", "-w", "json"])
        .run(&[
            "get",
            "many/",
            "--prefix",
            "--keys-only",
            "--sort-by=KEY",
            "--order=DESCEND",
            "--limit",
            "5",
        ])
        .run(&[
            "get",
            "many/",
            "--prefix",
            "--sort-by=MODIFY",
            "--order=DESCEND",
            "--limit",
            "2",
        ])
        .run(&["get", "many/100", "many/110"])
        .run(&["get", "many/", "--prefix", "-w", "json", "--keys-only"])
        .run(&["del", "many/1", "--prefix"])
        .run(&["get", "many/", "--prefix", "--limit", "1", "-w", "json"])
});

// --- revisions and compaction ---------------------------------------------------------------

scenario!(get_rev, |s| {
    s.run(&["get", "a", "--rev=1"])
        .puts(&[("a", "1"), ("a", "2"), ("b", "1")])
        .run(&["del", "a"])
        .run(&["put", "a", "3"])
        .run(&["get", "a", "--rev=1"])
        .run(&["get", "a", "--rev=2"])
        .run(&["get", "a", "--rev=3", "-w", "json"])
        .run(&["get", "a", "--rev=5"])
        .run(&["get", "a", "--rev=5", "-w", "json"])
        .run(&["get", "a", "--rev=6", "-w", "json"])
        .run(&["get", "", "--prefix", "--rev=4", "-w", "json"])
        .run(&["get", "a", "--rev=0"])
        .run(&["get", "a", "--rev=-1"])
        .run(&["get", "a", "--rev=7"])
        .run(&["get", "a", "--rev=7", "-w", "json"])
        .run(&["get", "a", "--rev=100"])
});

scenario!(compaction, |s| {
    s.puts(&[("a", "1"), ("a", "2"), ("b", "1"), ("a", "3")])
        .run(&["compaction", "3"])
        .run(&["get", "a", "--rev=2"])
        .run(&["get", "a", "--rev=2", "-w", "json"])
        .run(&["get", "a", "--rev=3"])
        .run(&["get", "a", "--rev=5"])
        .run(&["get", "a", "--rev=6"])
        .run(&["compaction", "3"])
        .run(&["compaction", "2"])
        .run(&["compaction", "6"])
        .run(&["compaction", "--physical", "5"])
        .run(&["get", "a", "--rev=4"])
        .run(&["get", "", "--prefix", "--rev=5", "-w", "json"])
        .run(&["put", "c", "1"])
        .run(&["compaction", "6", "-w", "json"])
        .run(&["get", "", "--prefix", "-w", "json"])
        .run(&["get", "b", "--rev=6", "-w", "json"])
});

scenario!(compaction_edge_cases, |s| {
    s.run(&["compaction", "0"])
        .run(&["compaction", "0"])
        .run(&["compaction", "1"])
        .run(&["compaction", "1"])
        .run(&["compaction", "-1"])
        .run(&["compaction", "2"])
        .run(&["get", "a", "--rev=1"])
        .run(&["compaction"])
        .run(&["compaction", "abc"])
        .run(&["compaction", "1", "2"])
        .run(&["put", "a", "1"])
        .run(&["compaction", "--physical=true", "2"])
        .run(&["get", "a", "--rev=1"])
        .run(&["get", "a", "--rev=2"])
});

scenario!(compaction_keeps_latest_versions, |s| {
    s.puts(&[("a", "1"), ("b", "1"), ("a", "2")])
        .run(&["del", "b"])
        .run(&["compaction", "5"])
        .run(&["get", "", "--prefix", "-w", "json"])
        .run(&["put", "a", "3", "--prev-kv", "-w", "json"])
        .run(&["put", "b", "2", "--prev-kv", "-w", "json"])
        .run(&["get", "", "--prefix", "--rev=5", "-w", "json"])
});

// --- delete ---------------------------------------------------------------------------------

scenario!(del_basic, |s| {
    range_fixture(s)
        .run(&["del", "nope"])
        .run(&["del", "nope", "-w", "json"])
        .run(&["del", "a"])
        .run(&["del", "a", "-w", "json"])
        .run(&["del", "zoo", "-w", "json"])
        .run(&["del", "foo1", "--prev-kv"])
        .run(&["del", "foo2", "--prev-kv", "-w", "json"])
        .run(&["del", "foo9", "--prev-kv", "-w", "fields"])
        .run(&["get", "", "--prefix", "--keys-only"])
});

scenario!(del_ranges, |s| {
    range_fixture(s)
        .run(&["del", "foo", "--prefix", "--prev-kv"])
        .run(&["get", "", "--prefix", "--keys-only"])
        .run(&["del", "fo", "--from-key"])
        .run(&["get", "", "--prefix", "--keys-only"])
        .run(&["del", "", "--prefix", "--prev-kv", "-w", "json"])
        .run(&["del", "", "--prefix"])
        .puts(&[("x1", "1"), ("x2", "2"), ("x3", "3")])
        .run(&["del", "x1", "x3", "--prev-kv"])
        .run(&["del", "x3", "x1"])
        .run(&["del", "", "--from-key", "-w", "json"])
        .run(&["get", "", "--from-key", "-w", "json"])
});

scenario!(del_flag_errors, |s| {
    s.run(&["del"])
        .run(&["del", "a", "b", "--prefix"])
        .run(&["del", "a", "--prefix", "--from-key"])
        .run(&["del", ""])
        .run(&["del", "", "-w", "json"])
});

// --- txn ------------------------------------------------------------------------------------

scenario!(txn_success_and_failure, |s| {
    s.run(&["put", "foo", "bar"])
        .txn(
            &[],
            &["value(\"foo\") = \"bar\""],
            &["put a 1", "get foo"],
            &["put b 2"],
        )
        .txn(
            &[],
            &["value(\"foo\") = \"nope\""],
            &["put a 2", "get foo"],
            &["put b 2", "get a"],
        )
        .run(&["get", "", "--prefix", "-w", "json"])
        .txn(
            &["-w", "json"],
            &["value(\"foo\") = \"bar\""],
            &["put a 3", "get foo", "del b"],
            &["put b 3"],
        )
        .txn(
            &["-w", "json"],
            &["value(\"foo\") = \"nope\""],
            &["put a 4"],
            &["put b 4", "get a", "del a"],
        )
        .txn(
            &["-w", "fields"],
            &["value(\"foo\") = \"bar\""],
            &["put a 5", "get foo", "del b"],
            &[],
        )
        .txn(
            &["-w", "protobuf"],
            &["value(\"foo\") = \"bar\""],
            &["put a 6", "get foo"],
            &[],
        )
        .txn(&["-w", "simple"], &[], &[], &[])
        .txn(&["-w", "json"], &[], &[], &[])
        .txn(&[], &["value(\"foo\") = \"nope\""], &[], &[])
});

scenario!(txn_compare_value, |s| {
    let mut s = s.run(&["put", "k", "m"]);
    for (op, v) in [
        ("=", "m"),
        ("=", "x"),
        ("!=", "m"),
        ("!=", "x"),
        (">", "a"),
        (">", "z"),
        ("<", "z"),
        ("<", "a"),
    ] {
        let cmp = format!("value(\"k\") {op} \"{v}\"");
        s = s.stdin(&["txn"], txn_script(&[&cmp], &["get k"], &["put failed 1"]));
    }
    s.run(&["get", "failed", "-w", "json"])
});

scenario!(txn_compare_version_create_mod, |s| {
    // k: create 2, mod 4, version 3
    let mut s = s
        .puts(&[("k", "1"), ("other", "x"), ("k", "2")])
        .run(&["put", "k", "3"]);
    for cmp in [
        "version(\"k\") = \"3\"",
        "version(\"k\") = \"2\"",
        "version(\"k\") > \"2\"",
        "version(\"k\") < \"3\"",
        "version(\"k\") != \"3\"",
        "create(\"k\") = \"2\"",
        "create(\"k\") > \"2\"",
        "create(\"k\") < \"3\"",
        "create(\"k\") != \"5\"",
        "mod(\"k\") = \"5\"",
        "mod(\"k\") > \"4\"",
        "mod(\"k\") < \"4\"",
        "mod(\"k\") != \"5\"",
    ] {
        s = s.txn(&["-w", "json"], &[cmp], &["get k"], &["get other"]);
    }
    s
});

scenario!(txn_compare_missing_key, |s| {
    let mut s = s.run(&["put", "present", "v"]);
    for cmp in [
        "value(\"nope\") = \"\"",
        "value(\"nope\") != \"x\"",
        "value(\"nope\") < \"x\"",
        "version(\"nope\") = \"0\"",
        "version(\"nope\") > \"0\"",
        "create(\"nope\") = \"0\"",
        "mod(\"nope\") < \"1\"",
        "mod(\"nope\") != \"0\"",
    ] {
        s = s.stdin(&["txn"], txn_script(&[cmp], &["put s ok"], &["put f ok"]));
    }
    s.run(&["get", "", "--prefix", "-w", "json"])
});

scenario!(txn_multiple_compares, |s| {
    s.puts(&[("a", "1"), ("b", "2")])
        .txn(
            &[],
            &["value(\"a\") = \"1\"", "value(\"b\") = \"2\""],
            &["put r both"],
            &["put r notboth"],
        )
        .txn(
            &[],
            &["value(\"a\") = \"1\"", "value(\"b\") = \"3\""],
            &["put r both"],
            &["put r notboth"],
        )
        .txn(
            &["-w", "json"],
            &[
                "version(\"a\") = \"1\"",
                "create(\"b\") > \"2\"",
                "mod(\"r\") > \"0\"",
            ],
            &["get r"],
            &["get a"],
        )
        .run(&["get", "r", "-w", "json"])
});

scenario!(txn_nested_ops_with_options, |s| {
    range_fixture(s)
        .txn(
            &[],
            &[],
            &[
                "get foo --prefix",
                "get foo --prefix --limit 2",
                "get fo --from-key --keys-only",
                "get foo --prefix --sort-by=VALUE --order=DESCEND",
                "get foo foo9 --rev=4",
            ],
            &[],
        )
        .txn(
            &[],
            &[],
            &[
                "get foo --prefix",
                "get foo --prefix --limit 2 --order=DESCEND",
                "get fo --from-key --keys-only",
            ],
            &[],
        )
        .txn(
            &["-w", "json"],
            &[],
            &[
                "get foo --prefix --limit 2 --sort-by=MODIFY --order=DESCEND",
                "get zoo --rev=3",
                "get a",
            ],
            &[],
        )
        .txn(
            &[],
            &[],
            &["put zoo zz --prev-kv", "del foo1 --prev-kv", "del foo --prefix"],
            &[],
        )
        .txn(
            &["-w", "json"],
            &[],
            &["put a aa --prev-kv", "del fo --prev-kv", "del x y"],
            &[],
        )
        .txn(
            &[],
            &[],
            &["put \"k with space\" \"v with space\"", "get \"k with space\""],
            &[],
        )
        .run(&["get", "", "--prefix", "-w", "json"])
});

scenario!(txn_put_flags, |s| {
    s.run(&["put", "a", "1"])
        .txn(&[], &[], &["put a --ignore-value", "get a"], &[])
        .txn(&[], &[], &["put nope --ignore-value"], &[])
        .txn(&[], &[], &["put a 2 --ignore-lease"], &[])
        .txn(&[], &[], &["put b 2 --lease=1234"], &[])
        .run(&["get", "", "--prefix", "-w", "json"])
});

scenario!(txn_request_errors, |s| {
    let many_puts: Vec<String> = (0..129).map(|i| format!("put t{i} v")).collect();
    let many_puts: Vec<&str> = many_puts.iter().map(String::as_str).collect();
    let max_puts: Vec<String> = (0..128).map(|i| format!("put u{i} v")).collect();
    let max_puts: Vec<&str> = max_puts.iter().map(String::as_str).collect();
    let gets: Vec<String> = (0..129).map(|i| format!("get g{i}")).collect();
    let gets: Vec<&str> = gets.iter().map(String::as_str).collect();
    let many_compares: Vec<String> = (0..129).map(|i| format!("version(\"c{i}\") = \"0\"")).collect();
    let many_compares: Vec<&str> = many_compares.iter().map(String::as_str).collect();
    s.txn(&[], &[], &["put x 1", "put x 2"], &[])
        .txn(&[], &[], &["put x 1", "del x"], &[])
        .txn(&[], &[], &["put x1 1", "del x --prefix"], &[])
        .txn(&[], &[], &["del x --prefix", "del x1"], &[])
        .txn(&[], &[], &["get x", "get x", "put x 1"], &[])
        .txn(&[], &[], &["put x 1"], &["put x 2"])
        .txn(
            &[],
            &["value(\"x\") = \"1\""],
            &["put y 1"],
            &["put y 1", "put y 2"],
        )
        .txn(&[], &[], &many_puts, &[])
        .txn(&[], &[], &gets, &[])
        .txn(&[], &[], &["put z 1"], &many_puts)
        .txn(&[], &[], &max_puts, &[])
        .txn(&[], &[], &["put \"\" v"], &[])
        .txn(&[], &many_compares, &["put c 1"], &[])
        .txn(&[], &many_compares[..128], &["put c 1"], &[])
        .run(&["get", "x", "-w", "json"])
        .run(&["get", "u", "--prefix", "--limit", "1", "-w", "json"])
});

scenario!(txn_client_side_errors, |s| {
    s.stdin(&["txn"], "bogus\n\nput a 1\n\n\n")
        .stdin(&["txn"], "\nput a 1\n\n")
        .stdin(&["txn"], "")
        .stdin(&["txn"], "\nfoo a 1\n\n\n")
        .stdin(&["txn"], "version(\"a\") = \"x\"\n\n\n\n")
        .run(&["txn"])
        .run(&["get", "a"])
});

scenario!(txn_interactive_from_stdin, |s| {
    s.run(&["put", "foo", "bar"])
        .stdin(
            &["txn", "-i"],
            txn_script(
                &["value(\"foo\") = \"bar\""],
                &["put a 1", "get foo"],
                &["put b 2"],
            ),
        )
        .stdin(&["txn", "--interactive"], txn_script(&[], &[], &[]))
});

// --- cluster information ----------------------------------------------------------------------

scenario!(member_list, |s| {
    s.run(&["member", "list"])
        .run(&["member", "list", "-w", "json"])
        .run(&["member", "list", "-w", "fields"])
        .run(&["member", "list", "-w", "table"])
});

scenario!(endpoint_status_and_health, |s| {
    s.run(&["endpoint", "status"])
        .run(&["endpoint", "status", "-w", "json"])
        .run(&["endpoint", "status", "-w", "table"])
        .run(&["endpoint", "status", "-w", "fields"])
        .run(&["endpoint", "health"])
        .run(&["endpoint", "health", "-w", "json"])
        .puts(&[("a", "1"), ("b", "2")])
        .run(&["endpoint", "status", "-w", "json"])
});

// The KV hash is a CRC-32C over etcd's on-disk encoding of the key space (revision keys
// and marshaled mvccpb.KeyValue values), so matching it means reproducing that encoding.
scenario!(endpoint_hashkv, |s| {
    s.run(&["endpoint", "hashkv"])
        .puts(&[("a", "1"), ("b", "2"), ("a", "3")])
        .run(&["del", "b"])
        .run(&["endpoint", "hashkv"])
        .run(&["endpoint", "hashkv", "-w", "json"])
        .run(&["compaction", "3"])
        .run(&["endpoint", "hashkv", "-w", "json"])
});

// --- the harness' own normalizers ---------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// Leases (issue 5)
// ---------------------------------------------------------------------------------------

scenario!(lease_grant_attach_revoke, |s| {
    s.run(&["lease", "grant", "100"])
        .run(&["lease", "grant", "50", "-w", "json"])
        .run(&["put", "k1", "v1", "--lease={L1}"])
        .run(&["put", "k2", "v2", "--lease={L1}"])
        .run(&["put", "k3", "v3", "--lease={L2}"])
        .run(&["get", "k", "--prefix", "-w", "json"])
        .run(&["lease", "timetolive", "{L2}", "--keys"])
        .run(&["lease", "timetolive", "{L1}"])
        .run(&["lease", "timetolive", "{L2}", "-w", "json"])
        .run(&["lease", "list"])
        .run(&["lease", "keep-alive", "--once", "{L1}"])
        .run(&["lease", "keep-alive", "--once", "{L1}", "-w", "json"])
        // revoke deletes both keys in one revision
        .run(&["lease", "revoke", "{L1}"])
        .run(&["get", "k", "--prefix", "-w", "json"])
        .run(&["lease", "timetolive", "{L1}"])
        .run(&["lease", "timetolive", "{L1}", "-w", "json"])
        .run(&["lease", "revoke", "{L1}"])
        .run(&["lease", "keep-alive", "--once", "{L1}"])
        .run(&["lease", "list"])
});

scenario!(lease_errors, |s| {
    // below the minimum TTL (1.5 election timeouts, rounded up): raised to it
    s.run(&["lease", "grant", "1"])
        .run(&["lease", "grant", "9000000001"])
        .run(&["lease", "grant", "9000000000"])
        .run(&["lease", "revoke", "1234"])
        .run(&["lease", "timetolive", "1234"])
        .run(&["lease", "grant", "0"])
        .run(&["lease", "grant", "-5"])
        .run(&["put", "k", "v", "--lease=ab"])
        .run(&["lease", "revoke", "zz"])
        .run(&["lease", "grant"])
        .run(&["lease", "list", "-w", "json"])
});

scenario!(lease_reattach_and_ignore_lease, |s| {
    s.run(&["lease", "grant", "100"])
        .run(&["lease", "grant", "200"])
        .run(&["put", "a", "1", "--lease={L1}"])
        .run(&["put", "a", "2", "--ignore-lease"])
        .run(&["get", "a", "-w", "json"])
        // moved to another lease: the first lease's revoke leaves it alone
        .run(&["put", "a", "3", "--lease={L2}"])
        .run(&["lease", "timetolive", "{L1}", "--keys"])
        .run(&["lease", "revoke", "{L1}"])
        .run(&["get", "a", "-w", "json"])
        // re-put without a lease detaches it
        .run(&["put", "a", "4"])
        .run(&["lease", "revoke", "{L2}"])
        .run(&["get", "a", "-w", "json"])
        .run(&["put", "b", "1", "--lease={L2}"])
});

scenario!(lease_in_txn, |s| {
    s.run(&["lease", "grant", "100"])
        .txn(&[], &["create(\"t\") = \"0\""], &["put t v --lease={L1}"], &[])
        .txn(&[], &[], &["put u v --lease=1234"], &[])
        .txn(
            &["-w", "json"],
            &["create(\"t\") > \"0\""],
            &["get t"],
            &["put t w"],
        )
        .run(&["lease", "revoke", "{L1}"])
        .run(&["get", "t", "-w", "json"])
});

#[test]
fn normalizer_unit_tests() {
    assert_eq!(
        granted_lease("lease 694d7d1a1e3b5a0b granted with TTL(10s)\n"),
        Some(0x694d_7d1a_1e3b_5a0b)
    );
    assert_eq!(granted_lease("lease 694d7d1a1e3b5a0b revoked\n"), None);
    assert_eq!(
        granted_lease("{\"revision\":1,\"ID\":7,\"TTL\":5,\"Error\":\"\"}"),
        Some(7)
    );
    assert_eq!(
        normalize_leases(
            "lease 00000000000000ff granted with TTL(10s), remaining(9s)\n{\"id\":255,\"ttl\":9,\"x\":-1}",
            &[255]
        ),
        "lease <L1> granted with TTL(10s), remaining(<ttl>s)\n{\"id\":<L1>,\"ttl\":<ttl>,\"x\":-1}"
    );
    assert_eq!(normalize_leases("\"ttl\":-1", &[]), "\"ttl\":-1");
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
    // GetResponse{header{cluster_id:1, member_id:2, revision:3, raft_term:4}, count:1}
    let pb = [
        0x0a, 0x08, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x04, 0x20, 0x01,
    ];
    assert_eq!(
        normalize_protobuf(&pb),
        vec![0x0a, 0x06, 0x08, 0x01, 0x10, 0x02, 0x18, 0x03, 0x20, 0x01]
    );
    assert_eq!(
        normalize_protobuf(b"compacted revision 5\n"),
        b"compacted revision 5\n".to_vec()
    );
    assert_eq!(
        normalize_endpoint_status(
            "http://127.0.0.1:1, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 4, 4, \n",
            "simple"
        ),
        "http://127.0.0.1:1, bdae9bbc11dd390d, <version>, <volatile>, true, false, <volatile>, <volatile>, <volatile>, \n"
    );
    let d = line_diff("a\nb\nc\n", "a\nx\nc\n");
    assert_eq!(d, "  a\n- b\n+ x\n  c\n");
}

// ---------------------------------------------------------------------------------------
// Auth (issue 8): users, roles, permissions, and what each command answers for a user
// with some permissions, without credentials and with a wrong password
// ---------------------------------------------------------------------------------------

/// Root, role r1 (readwrite [a, b), read c), user u1 with r1, user u2 without roles.
fn auth_fixture(s: Scenario) -> Scenario {
    s.run(&["user", "add", "root:rootpw"])
        .run(&["user", "grant-role", "root", "root"])
        .run(&["role", "add", "r1"])
        .run(&["role", "grant-permission", "r1", "readwrite", "a", "b"])
        .run(&["role", "grant-permission", "r1", "read", "c"])
        .run(&["user", "add", "u1:pw1"])
        .run(&["user", "grant-role", "u1", "r1"])
        .run(&["user", "add", "u2:pw2"])
}

scenario!(auth_admin_commands, |s| {
    auth_fixture(s)
        .run(&["auth", "enable"])
        .run(&["user", "list", "--user", "root:rootpw"])
        .run(&["role", "list", "--user", "root:rootpw"])
        .run(&["user", "get", "u1", "--user", "root:rootpw"])
        .run(&["user", "get", "u1", "--detail", "--user", "root:rootpw"])
        .run(&["role", "get", "r1", "--user", "root:rootpw"])
        .run(&["role", "get", "r1", "-w", "json", "--user", "root:rootpw"])
        .run(&["role", "revoke-permission", "r1", "c", "--user", "root:rootpw"])
        .run(&["role", "revoke-permission", "r1", "zz", "--user", "root:rootpw"])
        .run(&["user", "revoke-role", "u2", "r1", "--user", "root:rootpw"])
        .run(&["user", "grant-role", "u2", "nope", "--user", "root:rootpw"])
        .run(&["user", "add", "u1:x", "--user", "root:rootpw"])
        .run(&["role", "add", "r1", "--user", "root:rootpw"])
        .run(&["user", "delete", "nobody", "--user", "root:rootpw"])
        .run(&["role", "delete", "nope", "--user", "root:rootpw"])
        .run(&["user", "delete", "root", "--user", "root:rootpw"])
        .run(&["user", "revoke-role", "root", "root", "--user", "root:rootpw"])
        .run(&["user", "delete", "u2", "--user", "root:rootpw"])
        .run(&["role", "delete", "r1", "--user", "root:rootpw"])
        .run(&["user", "get", "u1", "--user", "root:rootpw"])
        .run(&["auth", "disable", "--user", "root:rootpw"])
        .run(&["auth", "disable"])
        .run(&["user", "list"])
});

scenario!(auth_enable_needs_root, |s| {
    s.run(&["auth", "enable"])
        .run(&["user", "add", "root:rootpw"])
        .run(&["auth", "enable"])
        .run(&["user", "grant-role", "root", "root"])
        .run(&["auth", "enable"])
        .run(&["auth", "enable", "--user", "root:rootpw"])
        .run(&["user", "list", "--user", "root:wrong"])
        .run(&["user", "list", "--user", "nobody:pw"])
        .run(&["get", "a"])
        .run(&["auth", "disable", "--user", "root:rootpw"])
});

scenario!(auth_permission_matrix, |s| {
    let u1 = |s: Scenario, args: &[&str]| {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(["--user", "u1:pw1"]);
        s.run(&v)
    };
    let mut s = auth_fixture(s).run(&["auth", "enable"]);
    for args in [
        &["put", "a", "1"][..],
        &["get", "a"],
        &["put", "c", "1"],
        &["get", "c"],
        &["put", "z", "1"],
        &["get", "z"],
        &["get", "a", "z"],
        &["get", "a", "--prefix"],
        &["put", "a", "2", "--prev-kv"],
        &["del", "a", "--prev-kv"],
        &["del", "a", "z"],
        &["compaction", "1"],
        &["member", "list"],
        &["member", "add", "x", "--peer-urls=http://127.0.0.1:9"],
        &["member", "remove", "1234"],
        &["endpoint", "hashkv"],
        &["alarm", "list"],
        &["user", "get", "u1"],
        &["user", "get", "u2"],
        &["role", "get", "r1"],
        &["role", "get", "root"],
        &["user", "list"],
        &["role", "list"],
        &["auth", "disable"],
        &["lock", "l1"],
        &["elect", "e1", "p"],
    ] {
        s = u1(s, args);
    }
    s.txn(
        &["--user", "u1:pw1"],
        &["value(\"a\") = \"1\""],
        &["put a 3"],
        &["get a"],
    )
    .txn(
        &["--user", "u1:pw1"],
        &["value(\"z\") = \"1\""],
        &["put a 3"],
        &[],
    )
    .txn(
        &["--user", "u1:pw1"],
        &["value(\"a\") = \"1\""],
        &["put a 3"],
        &["put z 1"],
    )
    .txn(&["--user", "u1:pw1"], &[], &["get c"], &[])
    .run(&["get", "a", "--user", "u2:pw2"])
    .run(&["put", "a", "9"])
    .run(&["get", "a", "--user", "u1:wrong"])
    .run(&["get", "", "--from-key", "--user", "root:rootpw"])
    .run(&["lease", "grant", "100", "--user", "root:rootpw"])
    .run(&["put", "zz", "1", "--lease={L1}", "--user", "root:rootpw"])
    .run(&["put", "a", "1", "--lease={L1}", "--user", "u1:pw1"])
    .run(&["lease", "revoke", "{L1}", "--user", "u1:pw1"])
    .run(&["lease", "revoke", "{L1}", "--user", "root:rootpw"])
    .run(&["auth", "disable", "--user", "root:rootpw"])
});

scenario!(alarm_list_and_disarm_formats, |s| {
    // no alarm raised: empty lists; etcd's AlarmResponse carries no header
    s.run(&["alarm", "list"])
        .run(&["alarm", "list", "-w", "json"])
        .run(&["alarm", "disarm"])
        .run(&["alarm", "disarm", "-w", "json"])
});
