//! `make-mirror` end to end: a source etcd and destination etcds (real etcd 3.4), keys
//! written before the mirror starts (more than one page of 1000, some revisions with a
//! hundred keys) and while it runs (puts, overwrites, deletes, a prefix delete larger than
//! one txn may hold); each destination must end up with the source's keys, rewritten as
//! `--dest-prefix`/`--no-dest-prefix` say, and the same as what etcdctl's own mirror writes.
//! Argument errors are compared with etcdctl's.

mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ETCDCTL, RETCDCTL, Server as Etcd, ctl, free_port, retcd_bin};

impl Etcd {
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        let flags: Vec<&str> = self.client_flags.iter().map(String::as_str).collect();
        let mut child = ctl(ETCDCTL, &self.endpoint, &[&flags, args].concat())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcdctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("etcdctl output")
    }

    fn ok(&self, args: &[&str]) {
        let out = self.run(args, "");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every key and value as (key, value) pairs.
    fn dump(&self) -> Vec<(String, String)> {
        let out = self.run(&["get", "--prefix", "", "-w", "json"], "");
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let b64 = |v: &serde_json::Value| {
            use base64::Engine as _;
            let s = v.as_str().unwrap_or_default();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .expect("base64"),
            )
            .expect("utf-8")
        };
        v["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| (b64(&kv["key"]), b64(&kv["value"])))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `txn` putting `n` keys `{prefix}{i}` in one revision.
    fn put_many(&self, prefix: &str, range: std::ops::Range<usize>) {
        let puts: String = range.map(|i| format!("put {prefix}{i:04} v{i}\n")).collect();
        let out = self.run(&["txn"], &format!("\n{puts}\n\n"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

/// The source's keys under `prefix`, rewritten as a mirror to `dest_prefix` writes them.
fn expected(src: &[(String, String)], prefix: &str, dest_prefix: &str) -> Vec<(String, String)> {
    let mut v: Vec<_> = src
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, val)| (format!("{dest_prefix}{}", &k[prefix.len()..]), val.clone()))
        .collect();
    v.sort();
    v
}

/// Waits until `dest` holds exactly `want` (the mirror applies changes asynchronously).
fn converges(dest: &Etcd, want: &[(String, String)], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = dest.dump();
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = want.iter().filter(|kv| !got.contains(kv)).take(5).collect();
            let extra: Vec<_> = got.iter().filter(|kv| !want.contains(kv)).take(5).collect();
            panic!(
                "{what}: destination has {} keys, source {}; missing {missing:?}, extra {extra:?}",
                got.len(),
                want.len()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mirror(tool: &str, src: &Etcd, args: &[&str]) -> Child {
    ctl(tool, &src.endpoint, &[&["make-mirror"], args].concat())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("make-mirror")
}

/// SIGTERM ends a mirror as it ends etcdctl's: killed by the signal, nothing printed
/// (the running total comes every 30 s).
fn stop(child: Child, what: &str) {
    use std::os::unix::process::ExitStatusExt;
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let out = child.wait_with_output().expect("mirror output");
    assert_eq!(out.status.signal(), Some(15), "{what}: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{what}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .all(|l| l.parse::<u64>().is_ok()),
        "{what}: {out:?}"
    );
}

#[test]
fn mirrors_base_and_changes_like_etcdctl() {
    let src = Etcd::etcd();
    let [same, by_etcdctl, renamed, whole] = [(); 4].map(|_| Etcd::etcd());
    // before the mirror: more than one page (1000) of keys under /p/, in revisions of 100
    for i in 0..11 {
        src.put_many("/p/bulk/", i * 100..(i + 1) * 100);
    }
    src.ok(&["put", "/p/a", "1"]);
    src.ok(&["put", "/p/b", "2"]);
    src.ok(&["put", "/p/a", "1b"]);
    src.ok(&["put", "other", "x"]);
    src.ok(&["del", "/p/b"]);
    // the destinations hold keys of their own: the mirror leaves them alone
    renamed.ok(&["put", "/keep", "k"]);

    let mirrors = [
        mirror(RETCDCTL, &src, &["--prefix", "/p/", &same.endpoint]),
        mirror(ETCDCTL, &src, &["--prefix", "/p/", &by_etcdctl.endpoint]),
        mirror(
            RETCDCTL,
            &src,
            &["--prefix=/p/", "--dest-prefix=/q/", &renamed.endpoint],
        ),
        mirror(
            RETCDCTL,
            &src,
            &["--prefix=/p/", "--no-dest-prefix", &renamed.endpoint],
        ),
        mirror(RETCDCTL, &src, &[&whole.endpoint]),
    ];
    std::thread::sleep(Duration::from_millis(500));
    // while it runs: puts, overwrites, deletes, a revision with many keys, keys outside
    src.ok(&["put", "/p/c", "3"]);
    src.ok(&["put", "/p/a", "1c"]);
    src.ok(&["del", "/p/bulk/0005"]);
    src.ok(&["del", "/p/bulk/0010", "/p/bulk/0020"]);
    src.put_many("/p/new/", 0..120);
    src.ok(&["put", "other", "y"]);
    src.ok(&["put", "/pp", "not under /p/"]);

    let all = src.dump();
    let p = expected(&all, "/p/", "/p/");
    assert_eq!(p.len(), 1100 - 11 + 2 + 120, "source keys under /p/");
    converges(&same, &p, "retcdctl --prefix /p/");
    converges(&by_etcdctl, &p, "etcdctl --prefix /p/");
    let mut r = expected(&all, "/p/", "/q/");
    r.extend(expected(&all, "/p/", ""));
    r.push(("/keep".into(), "k".into()));
    r.sort();
    converges(&renamed, &r, "--dest-prefix /q/ and --no-dest-prefix");
    converges(&whole, &all, "the whole keyspace");

    // a prefix delete of more keys than etcd takes in one txn (128): etcdctl's mirror
    // fails on it, retcdctl applies it in chunks
    src.ok(&["del", "--prefix", "/p/bulk/"]);
    src.ok(&["put", "/p/after", "z"]);
    let all = src.dump();
    converges(&same, &expected(&all, "/p/", "/p/"), "after a large delete");
    converges(&whole, &all, "the whole keyspace after a large delete");

    let [a, etcdctl_mirror, c, d, e] = mirrors;
    for (m, what) in [
        (a, "same"),
        (c, "dest-prefix"),
        (d, "no-dest-prefix"),
        (e, "whole"),
    ] {
        stop(m, what);
    }
    let out = etcdctl_mirror.wait_with_output().expect("etcdctl mirror");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.ends_with("\"error\":\"rpc error: code = InvalidArgument desc = etcdserver: too many operations in txn request\"}\nError: etcdserver: too many operations in txn request\n"),
        "{err}"
    );
}

/// The same mirror with retcd servers: retcd to etcd and retcd to retcd.
#[test]
fn mirrors_from_and_to_retcd() {
    let Some(retcd) = retcd_bin() else {
        eprintln!("skipped: no retcd binary next to retcdctl and no RETCD_BIN");
        return;
    };
    let src = Etcd::start(&retcd);
    let to_etcd = Etcd::etcd();
    let to_retcd = Etcd::start(&retcd);
    src.put_many("/p/bulk/", 0..100);
    src.ok(&["put", "/p/a", "1"]);
    let mirrors = [
        mirror(RETCDCTL, &src, &["--prefix", "/p/", &to_etcd.endpoint]),
        mirror(
            RETCDCTL,
            &src,
            &["--prefix=/p/", "--dest-prefix=/q/", &to_retcd.endpoint],
        ),
    ];
    std::thread::sleep(Duration::from_millis(500));
    src.ok(&["put", "/p/b", "2"]);
    src.ok(&["del", "/p/bulk/0000", "/p/bulk/0050"]);
    src.ok(&["put", "/p/a", "1b"]);
    src.put_many("/p/new/", 0..20);
    src.ok(&["put", "/other", "x"]);
    let all = src.dump();
    converges(&to_etcd, &expected(&all, "/p/", "/p/"), "retcd to etcd");
    converges(&to_retcd, &expected(&all, "/p/", "/q/"), "retcd to retcd");
    let [a, b] = mirrors;
    stop(a, "retcd to etcd");
    stop(b, "retcd to retcd");
}

#[test]
fn argument_errors_match_etcdctl() {
    // etcdctl checks the prefix flags once it has the source's revision (with the source
    // down it waits forever), so the source is up
    let src = Etcd::etcd();
    for args in [
        &["make-mirror"][..],
        &["make-mirror", "a", "b"],
        &[
            "make-mirror",
            "--dest-prefix",
            "x",
            "--no-dest-prefix",
            "127.0.0.1:1",
        ],
    ] {
        let want = ctl(ETCDCTL, &src.endpoint, args).output().expect("etcdctl");
        let got = ctl(RETCDCTL, &src.endpoint, args).output().expect("retcdctl");
        assert_eq!(
            (
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&got.stderr),
                got.status.code()
            ),
            (
                String::from_utf8_lossy(&want.stdout),
                String::from_utf8_lossy(&want.stderr),
                want.status.code()
            ),
            "{args:?}"
        );
    }
}

/// Waits (at most `secs`) for `child` to exit; its output, or `None` if it is still running.
fn exits_within(mut child: Child, secs: u64) -> Result<Output, Child> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if child.try_wait().expect("try_wait").is_some() {
            return Ok(child.wait_with_output().expect("output"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(child)
}

fn outcome(o: &Output) -> (String, String, Option<i32>) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code(),
    )
}

/// etcdctl reads the source's revision before it looks at `--dest-prefix` with
/// `--no-dest-prefix`: while the source does not answer it waits, and it fails (exit 128)
/// once the source is up, whatever the destination. The destination's TLS files are checked
/// before the source is contacted.
#[test]
fn prefix_conflict_is_checked_once_the_source_answers() {
    let port = free_port();
    let source = format!("127.0.0.1:{port}");
    let conflict = [
        "make-mirror",
        "--dest-prefix",
        "x",
        "--no-dest-prefix",
        "127.0.0.1:1",
    ];
    let spawn = |tool: &str| {
        ctl(tool, &source, &conflict)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("make-mirror")
    };
    let (want, got) = (spawn(ETCDCTL), spawn(RETCDCTL));
    std::thread::sleep(Duration::from_secs(3));
    let want = exits_within(want, 0).expect_err("etcdctl waits for the source");
    let got = exits_within(got, 0).expect_err("retcdctl waits for the source as etcdctl does");
    let _src = Etcd::start_on(common::ETCD, port);
    let want = exits_within(want, 20).expect("etcdctl ends once the source answers");
    let got = exits_within(got, 20).expect("retcdctl ends once the source answers");
    assert_eq!(outcome(&got), outcome(&want));
    assert_eq!(want.status.code(), Some(128));
    assert_eq!(
        outcome(&want).1,
        "Error: `--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one\n"
    );

    // a destination CA that cannot be read fails at once, though the source is down
    let dead = format!("127.0.0.1:{}", free_port());
    let args = [
        "make-mirror",
        "--dest-cacert=/nonexistent/ca.pem",
        "--dest-prefix",
        "x",
        "--no-dest-prefix",
        "127.0.0.1:1",
    ];
    let run = |tool: &str| {
        let child = ctl(tool, &dead, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("make-mirror");
        exits_within(child, 10).unwrap_or_else(|_| panic!("{tool} waits"))
    };
    let (want, got) = (run(ETCDCTL), run(RETCDCTL));
    assert_eq!(outcome(&got), outcome(&want));
    assert_eq!(want.status.code(), Some(128));
}

/// The mirror's `--dest-cacert --dest-cert --dest-key --dest-insecure-transport` against a
/// destination serving https with client-certificate authentication (certificates made by
/// the test): what etcdctl reaches, retcdctl reaches and fills alike; where etcdctl cannot
/// connect (no client certificate, a server certificate it cannot verify) retcdctl does not
/// either, and both wait without a word; unusable files fail as etcdctl's do.
#[test]
fn tls_destination_like_etcdctl() {
    use retcd_tls::test_pki::TestCa;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ca = TestCa::new(dir.path(), "ca");
    let server = ca.issue("server", "server", &["127.0.0.1", "localhost"]);
    let client = ca.issue("mirror", "mirror", &[]);
    let tls = common::TlsFiles {
        ca: ca.cert.clone(),
        server_cert: server.cert.clone(),
        server_key: server.key.clone(),
        client_cert: client.cert.clone(),
        client_key: client.key.clone(),
    };
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_string();
    let (ca_f, cert_f, key_f, garbage_f) = (
        path(&ca.cert),
        path(&client.cert),
        path(&client.key),
        path(&garbage),
    );

    let src = Etcd::etcd();
    src.put_many("/p/bulk/", 0..50);
    src.ok(&["put", "/p/a", "1"]);
    let mut dests = vec![("etcd", Etcd::start_tls(common::ETCD, &tls))];
    match retcd_bin() {
        Some(retcd) => dests.push(("retcd", Etcd::start_tls(&retcd, &tls))),
        None => eprintln!("no retcd binary next to retcdctl and no RETCD_BIN: etcd destination only"),
    }

    for (kind, dest) in &dests {
        let bare = dest.endpoint.trim_start_matches("https://").to_string();
        let files = |prefix: &str| -> Vec<String> {
            vec![
                "--prefix=/p/".into(),
                format!("--dest-prefix={prefix}"),
                format!("--dest-cacert={ca_f}"),
                format!("--dest-cert={cert_f}"),
                format!("--dest-key={key_f}"),
            ]
        };
        // (dest prefix, flags, destination, reachable)
        let mut runs: Vec<(String, Vec<String>, String, bool)> = Vec::new();
        // etcdctl's mirrors first (prefixes /e/...), then retcdctl's (/r/...)
        for short in ["e", "r"] {
            // no scheme: TLS because files are given
            runs.push((
                format!("/{short}/bare/"),
                files(&format!("/{short}/bare/")),
                bare.clone(),
                true,
            ));
            runs.push((
                format!("/{short}/https/"),
                files(&format!("/{short}/https/")),
                dest.endpoint.clone(),
                true,
            ));
            let mut f = files(&format!("/{short}/secure/"));
            f.push("--dest-insecure-transport=false".into());
            runs.push((format!("/{short}/secure/"), f, bare.clone(), true));
            // no client certificate: the server refuses the connection
            runs.push((
                format!("/{short}/nocert/"),
                vec![
                    "--prefix=/p/".into(),
                    format!("--dest-prefix=/{short}/nocert/"),
                    format!("--dest-cacert={ca_f}"),
                ],
                bare.clone(),
                false,
            ));
            // the server's certificate is not checked against the test CA: unknown authority
            runs.push((
                format!("/{short}/noca/"),
                vec![
                    "--prefix=/p/".into(),
                    format!("--dest-prefix=/{short}/noca/"),
                    format!("--dest-cert={cert_f}"),
                    format!("--dest-key={key_f}"),
                ],
                dest.endpoint.clone(),
                false,
            ));
        }
        let half = runs.len() / 2;
        let mirrors: Vec<(String, Child)> = runs
            .iter()
            .enumerate()
            .map(|(i, (p, flags, to, _))| {
                let tool = if i < half { ETCDCTL } else { RETCDCTL };
                let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
                args.push(to);
                (format!("{kind}: {tool} {p}"), mirror(tool, &src, &args))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        src.ok(&["put", "/p/b", "2"]);
        src.ok(&["put", "/p/a", "1b"]);
        src.ok(&["del", "/p/bulk/0003"]);
        src.ok(&["put", "/q/outside", "x"]);
        let all = src.dump();
        let mut want: Vec<(String, String)> = runs
            .iter()
            .filter(|r| r.3)
            .flat_map(|(p, ..)| expected(&all, "/p/", p))
            .collect();
        want.sort();
        assert_eq!(want.len(), 6 * 51, "{kind}");
        // the refused mirrors wrote nothing: the destination holds exactly the others' keys
        converges(dest, &want, &format!("TLS destination ({kind})"));
        std::thread::sleep(Duration::from_secs(1));
        converges(dest, &want, &format!("TLS destination ({kind}), a second later"));
        for (what, m) in mirrors {
            stop(m, &what);
        }
    }

    // unusable destination files: etcdctl's messages and exit codes
    let dest = &dests[0].1;
    for flags in [
        vec!["--dest-cacert=/nonexistent/ca.pem".to_string()],
        vec![format!("--dest-cert={cert_f}")],
        vec![format!("--dest-key={key_f}")],
        vec![
            format!("--dest-cert={garbage_f}"),
            format!("--dest-key={garbage_f}"),
        ],
        vec![format!("--dest-cacert={garbage_f}")],
        vec![format!("--dest-cert={cert_f}"), format!("--dest-key={ca_f}")],
        vec![format!("--dest-cert={key_f}"), format!("--dest-key={key_f}")],
        vec![format!("--dest-cacert={key_f}")],
        vec![
            format!("--dest-cert={cert_f}"),
            format!("--dest-key={}", path(&server.key)),
        ],
    ] {
        let mut args: Vec<&str> = vec!["make-mirror"];
        args.extend(flags.iter().map(String::as_str));
        args.push(&dest.endpoint);
        let run = |tool: &str| {
            let child = ctl(tool, &src.endpoint, &args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("make-mirror");
            exits_within(child, 10)
        };
        match (run(ETCDCTL), run(RETCDCTL)) {
            (Ok(want), Ok(got)) => assert_eq!(outcome(&got), outcome(&want), "{args:?}"),
            (Err(mut a), Err(mut b)) => {
                // both accepted the files and mirror: fine, as long as they agree
                let _ = a.kill();
                let _ = b.kill();
                let _ = (a.wait(), b.wait());
            }
            (want, got) => panic!(
                "{args:?}: etcdctl {:?}, retcdctl {:?}",
                want.as_ref().map(outcome).ok(),
                got.as_ref().map(outcome).ok()
            ),
        }
    }
}
