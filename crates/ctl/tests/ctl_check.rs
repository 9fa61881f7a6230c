//! `check perf` and `check datascale` against real etcd 3.4, next to etcdctl: the errors
//! exactly, the result lines in shape (the measurements differ from run to run). etcdctl
//! prints its progress bar even into a pipe; retcdctl only on a terminal, so the bar's
//! pieces are dropped from etcdctl's output before comparing. `check perf` runs 60 s in
//! etcdctl; retcdctl's run here is shortened by a test-only environment variable.

mod common;

use std::process::{Output, Stdio};

use common::{ETCDCTL, RETCDCTL, Server as Etcd, ctl, retcd_bin};
use regex::Regex;

impl Etcd {
    fn run(&self, tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        ctl(tool, &self.endpoint, args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run client")
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// etcdctl's stdout without its progress bar (`\r 12 / 60   20.00% 00m47s` pieces).
fn without_bar(s: &str) -> String {
    let bar = Regex::new(r"\r\s*\d+ / \d+\s+[\d.]+%( \S+)?\n?").expect("regex");
    bar.replace_all(s, "").into_owned()
}

/// The keys left under `prefix`.
fn keys_under(e: &Etcd, prefix: &str) -> String {
    text(
        &e.run(ETCDCTL, &["get", "--prefix", prefix, "--keys-only"], &[])
            .stdout,
    )
}

/// Measurements and revisions masked.
fn shape(s: &str) -> String {
    let n = Regex::new(r"-?\d+(\.\d+)?").expect("regex");
    n.replace_all(s, "N").into_owned()
}

#[test]
fn errors_match_etcdctl() {
    let e = Etcd::etcd();
    let cases: &[&[&str]] = &[
        &["check", "perf", "--load", "x"],
        &["check", "datascale", "--load=huge"],
        &["check", "perf", "--prefix", "/full/"],
        &["check", "datascale", "--prefix=/full/"],
        &["check", "perf", "--prefix", ""],
    ];
    let ok = e.run(ETCDCTL, &["put", "/full/k", "v"], &[]);
    assert!(ok.status.success());
    for args in cases {
        let want = e.run(ETCDCTL, args, &[]);
        let got = e.run(RETCDCTL, args, &[]);
        assert_eq!(
            (text(&got.stdout), text(&got.stderr), got.status.code()),
            (text(&want.stdout), text(&want.stderr), want.status.code()),
            "{args:?}"
        );
    }
}

#[test]
fn datascale_reports_like_etcdctl() {
    let e = Etcd::etcd();
    let args = ["check", "datascale", "--auto-compact", "--auto-defrag"];
    let want = e.run(ETCDCTL, &args, &[]);
    let got = e.run(RETCDCTL, &args, &[]);
    assert_eq!(got.status.code(), Some(0), "{}", text(&got.stderr));
    assert_eq!(want.status.code(), Some(0));
    assert_eq!(text(&got.stderr), text(&want.stderr));
    let want = without_bar(&text(&want.stdout));
    let got = text(&got.stdout);
    assert_eq!(shape(&got), shape(&want), "etcdctl:\n{want}\nretcdctl:\n{got}");
    assert!(got.starts_with(
        "Start data scale check for work load [10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients].\n"
    ));
    assert!(
        Regex::new(r"(?m)^Defragmented .*\nPASS: Approximate system memory used : -?\d+\.\d\d MB\.\n\z")
            .expect("regex")
            .is_match(&got),
        "{got}"
    );
    // the keys are gone again
    assert_eq!(keys_under(&e, "/etcdctl-check-datascale/"), "");
}

#[test]
fn perf_passes_on_an_idle_etcd() {
    let e = Etcd::etcd();
    let got = e.run(
        RETCDCTL,
        &[
            "check",
            "perf",
            "--load",
            "s",
            "--auto-compact",
            "--prefix",
            "/perf/",
        ],
        &[("RETCDCTL_TEST_CHECK_PERF_SECONDS", "4")],
    );
    let out = text(&got.stdout);
    assert_eq!(got.status.code(), Some(0), "{out}{}", text(&got.stderr));
    assert_eq!(text(&got.stderr), "");
    // the lines (and their order) of etcdctl 3.4's piped output, bar removed
    let re = Regex::new(
        r"\ACompacting with revision (\d+)\nCompacted with revision \d+\nPASS: Throughput is 1[45]\d writes/s\nPASS: Slowest request took 0\.\d{6}s\nPASS: Stddev is 0\.\d{6}s\nPASS\n\z",
    )
    .expect("regex");
    let caps = re.captures(&out).unwrap_or_else(|| panic!("{out}"));
    // about 150 puts a second for 4 s, then the delete
    let rev: i64 = caps[1].parse().expect("revision");
    assert!((550..=660).contains(&rev), "{rev}");
    assert_eq!(keys_under(&e, "/perf/"), "");
}

/// Both checks against retcd (its /metrics on the client URL has the process metrics).
#[test]
fn checks_pass_on_retcd() {
    let Some(retcd) = retcd_bin() else {
        eprintln!("skipped: no retcd binary next to retcdctl and no RETCD_BIN");
        return;
    };
    let e = Etcd::start(&retcd);
    let got = e.run(RETCDCTL, &["check", "datascale", "--auto-compact"], &[]);
    let out = text(&got.stdout);
    assert_eq!(got.status.code(), Some(0), "{out}{}", text(&got.stderr));
    assert!(
        Regex::new(r"\AStart data scale check for work load \[10000 key-value pairs, 1024 bytes per key-value, 50 concurrent clients\]\.\nCompacting with revision \d+\nCompacted with revision \d+\nPASS: Approximate system memory used : -?\d+\.\d\d MB\.\n\z")
            .expect("regex")
            .is_match(&out),
        "{out}"
    );
    let got = e.run(
        RETCDCTL,
        &["check", "perf", "--auto-defrag"],
        &[("RETCDCTL_TEST_CHECK_PERF_SECONDS", "3")],
    );
    let out = text(&got.stdout);
    assert_eq!(got.status.code(), Some(0), "{out}{}", text(&got.stderr));
    assert!(out.starts_with("Defragmenting \""), "{out}");
    assert!(out.ends_with("s\nPASS\n"), "{out}");
    assert_eq!(keys_under(&e, "/etcdctl-check-perf/"), "");
}
