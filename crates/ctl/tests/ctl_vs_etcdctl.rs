//! End-to-end: the same commands run with the real `etcdctl` and with `retcdctl`, each against
//! its own real etcd (the two started alike, so cluster and member ids agree and the same
//! command sequence gives the same revisions); stdout, stderr and exit codes must match after
//! normalizing only what must differ (log timestamps, client ids, durations, ports, lease ids).
//! `defrag --data-dir` is compared on etcd's data dirs and retcd's (a retcd server, when its
//! binary is built, makes them).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ETCD, ETCDCTL, RETCDCTL, Server, ctl, free_port, retcd_bin};
use regex::Regex;

/// A real etcd in a temp dir, killed on drop.
struct Etcd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Etcd {
    /// Starts etcd advertising `peer_url` (the same for both members of a pair, so both get
    /// the same member and cluster ids) while listening on a peer port of its own.
    fn start(peer_url: &str) -> Etcd {
        Etcd::start_with(peer_url, &[])
    }

    /// [`Etcd::start`] with more etcd flags. Readiness is a put and a delete of a probe key
    /// (so that both of a pair reach the same revision), or, when the flags leave no room
    /// for a write (`--quota-backend-bytes=1`), a health check.
    fn start_with(peer_url: &str, extra: &[&str]) -> Etcd {
        Etcd::start_opts(peer_url, extra, None)
    }

    /// [`Etcd::start_with`], also listening for clients on `unix` (a `unix://` or `unixs://`
    /// URL: its host and path are the socket's, relative to the temp dir, etcd's working
    /// directory).
    fn start_opts(peer_url: &str, extra: &[&str], unix: Option<&str>) -> Etcd {
        assert!(
            Path::new(ETCD).exists() && Path::new(ETCDCTL).exists(),
            "these tests need the real etcd and etcdctl 3.4 at {ETCD} and {ETCDCTL}: apt-get install -y etcd-server etcd-client"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let client = format!("http://127.0.0.1:{port}");
        let listen_client = match unix {
            Some(url) => format!("{url},{client}"),
            None => client.clone(),
        };
        let listen_peer = format!("http://127.0.0.1:{}", free_port());
        let child = Command::new(ETCD)
            .current_dir(dir.path())
            .args(["--name", "default", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &listen_client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &listen_peer,
                "--initial-advertise-peer-urls",
                peer_url,
            ])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let etcd = Etcd {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let no_room = extra.contains(&"--quota-backend-bytes=1");
        loop {
            if no_room {
                if etcd.run(ETCDCTL, &["endpoint", "health"], "").status.success() {
                    return etcd;
                }
            } else if etcd
                .run(ETCDCTL, &["put", "ready-probe", "x"], "")
                .status
                .success()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not become ready on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = etcd.run(ETCDCTL, &["del", "ready-probe"], "");
        assert!(out.status.success());
        etcd
    }

    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The temp dir (etcd's working directory).
    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(tool);
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("ETCDCTL_API", "3")
            .env("ETCDCTL_ENDPOINTS", self.endpoint());
        cmd
    }

    fn run_env(&self, tool: &str, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(tool, args);
        cmd.envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn client");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin.as_bytes()).expect("write stdin");
        drop(pipe);
        child.wait_with_output().expect("client output")
    }

    fn run(&self, tool: &str, args: &[&str], stdin: &str) -> Output {
        self.run_env(tool, args, stdin, &[])
    }
}

/// What may differ between two runs of the same command.
fn normalize(text: &str, extra: &[(String, String)]) -> String {
    let rules = [
        (r#""ts":"[^"]*""#, r#""ts":T"#),
        (r#""ts":[0-9.e+]+"#, r#""ts":T"#),
        (r"client-[0-9a-f-]{36}", "client-U"),
        (r"took = [0-9.]+[µnm]?s", "took = D"),
        (r#""took":("[^"]*"|[0-9.e-]+)"#, r#""took":D"#),
        (r#""Took" : [0-9.]+[µnm]?s"#, r#""Took" : D"#),
        (r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ", "TIME "),
        // two etcds' bbolt files grow differently: the snapshot's size is not the tool's,
        // nor `endpoint status`'s DB size
        (r#""size":"[^"]*""#, r#""size":S"#),
        (
            r"(?m)^([^,\n]+, [0-9a-f]+, [0-9.]+, )[0-9.]+ [kMG]?B,",
            "${1}SIZE,",
        ),
        (
            r"(?m)^(\| [^|\n]+ \| [0-9a-f]+ \| [0-9.]+ \| ) *[0-9.]+ [kMG]?B \|",
            "${1}SIZE |",
        ),
        (r#""DBSize" : \d+"#, r#""DBSize" : N"#),
        (r#""db_size":\d+"#, r#""db_size":N"#),
    ];
    let mut s = text.to_string();
    for (from, to) in extra {
        s = s.replace(from, to);
    }
    for (re, to) in rules {
        s = Regex::new(re)
            .expect("valid regex")
            .replace_all(&s, to)
            .into_owned();
    }
    s
}

/// Two alike etcds: etcdctl talks to `a`, retcdctl to `b`.
struct Pair {
    a: Etcd,
    b: Etcd,
}

impl Pair {
    fn start() -> Pair {
        Pair::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Pair {
        let peer = format!("http://127.0.0.1:{}", free_port());
        Pair {
            a: Etcd::start_with(&peer, extra),
            b: Etcd::start_with(&peer, extra),
        }
    }

    /// Runs `args` (with `stdin` and extra env) with both tools and asserts identical results.
    fn check_env(&self, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> String {
        let want = self.a.run_env(ETCDCTL, args, stdin, env);
        let got = self.b.run_env(RETCDCTL, args, stdin, env);
        let ports = [(self.b.endpoint(), self.a.endpoint())];
        compare(args, &want, &got, &ports);
        String::from_utf8_lossy(&want.stdout).into_owned()
    }

    /// Like [`Pair::check`], also replacing matches of `patterns` (for values that depend on
    /// internal raft entries, such as the raft index).
    fn check_masked(&self, args: &[&str], patterns: &[&str]) {
        let mask = |o: Output| {
            let m = |b: &[u8]| {
                patterns
                    .iter()
                    .fold(String::from_utf8_lossy(b).into_owned(), |s, p| {
                        Regex::new(p)
                            .expect("regex")
                            .replace_all(&s, "${1}N")
                            .into_owned()
                    })
            };
            (m(&o.stdout), m(&o.stderr), o.status.code())
        };
        let want = mask(self.a.run(ETCDCTL, args, ""));
        let got = mask(self.b.run(RETCDCTL, args, ""));
        let ports = [(self.b.endpoint(), self.a.endpoint())];
        let n = |t: &(String, String, Option<i32>)| (normalize(&t.0, &ports), normalize(&t.1, &ports), t.2);
        assert_eq!(n(&got), n(&want), "{args:?}");
    }

    fn check(&self, args: &[&str]) -> String {
        self.check_env(args, "", &[])
    }

    fn check_stdin(&self, args: &[&str], stdin: &str) -> String {
        self.check_env(args, stdin, &[])
    }

    /// Like [`Pair::check_env`] without `ETCDCTL_ENDPOINTS`: the arguments name the servers,
    /// `{EP}` standing for each tool's own.
    fn check_own(&self, args: &[&str], env: &[(&str, &str)]) {
        let run = |e: &Etcd, tool: &str| {
            let ep = e.endpoint();
            let args: Vec<String> = args.iter().map(|a| a.replace("{EP}", &ep)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            e.command(tool, &args)
                .env_remove("ETCDCTL_ENDPOINTS")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .output()
                .expect("run client")
        };
        let (want, got) = (run(&self.a, ETCDCTL), run(&self.b, RETCDCTL));
        compare(args, &want, &got, &[(self.b.endpoint(), self.a.endpoint())]);
    }
}

fn compare(args: &[&str], want: &Output, got: &Output, extra: &[(String, String)]) {
    let n = |b: &[u8]| normalize(&String::from_utf8_lossy(b), extra);
    assert_eq!(n(&got.stdout), n(&want.stdout), "stdout of {args:?}");
    assert_eq!(n(&got.stderr), n(&want.stderr), "stderr of {args:?}");
    assert_eq!(got.status.code(), want.status.code(), "exit code of {args:?}");
}

const FORMATS: [&str; 5] = ["simple", "json", "fields", "protobuf", "table"];

#[test]
fn put_get_del_in_every_format() {
    let p = Pair::start();
    p.check(&["put", "foo", "bar"]);
    p.check(&["put", "foo2", "a\"b\nc\u{1}é"]);
    p.check_stdin(&["put", "fromstdin"], "value\nwith newline\n");
    for w in FORMATS {
        p.check(&["-w", w, "put", "k1", "v1", "--prev-kv"]);
        p.check(&["-w", w, "put", "k1", "v2", "--prev-kv"]);
        p.check(&["-w", w, "get", "foo", "--prefix"]);
        p.check(&["-w", w, "get", "foo", "--prefix", "--keys-only"]);
        p.check(&[
            "-w",
            w,
            "get",
            "--from-key",
            "",
            "--limit=2",
            "--sort-by=VALUE",
            "--order=DESCEND",
        ]);
        p.check(&["-w", w, "get", "a", "z", "--rev=3"]);
        p.check(&["-w", w, "get", "foo", "--consistency=s"]);
        p.check(&["-w", w, "--hex", "get", "foo"]);
        p.check(&["-w", w, "get", "--print-value-only", "foo"]);
        p.check(&["-w", w, "del", "k1", "--prev-kv"]);
        p.check(&["-w", w, "del", "nothing"]);
    }
    // `--count-only` is etcdctl 3.5's: the count of 3.4's fields output without the pairs.
    let full = p.a.run(ETCDCTL, &["-w", "fields", "get", "--prefix", "foo"], "");
    let count = p.b.run(
        RETCDCTL,
        &["-w", "fields", "get", "--prefix", "foo", "--count-only"],
        "",
    );
    let kv_line = Regex::new(r#"^"(Key|CreateRevision|ModRevision|Version|Value|Lease)" : "#).expect("regex");
    let without_kvs: String = String::from_utf8_lossy(&full.stdout)
        .lines()
        .filter(|l| !kv_line.is_match(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(String::from_utf8_lossy(&count.stdout), without_kvs);
    p.check(&["put", "p/1", "x"]);
    p.check(&["put", "p/2", "y"]);
    p.check(&["del", "--prefix", "p/", "--prev-kv"]);
    p.check(&["put", "foo", "--ignore-value"]);
    p.check(&["put", "missing", "--ignore-value"]);
    p.check(&["compaction", "3"]);
    p.check(&["compaction", "2"]);
    p.check(&["get", "--rev=1", "foo"]);
    p.check(&["-w", "json", "get", "foo", "--rev=2"]);
}

#[test]
fn argument_and_flag_errors() {
    let p = Pair::start();
    for args in [
        &["get"][..],
        &["put"],
        &["put", "a", "b", "--ignore-value"],
        &["put", "--lease=zz", "a", "b"],
        &["put", "--lease=123", "a", "b"],
        &["del"],
        &["del", "a", "--prefix", "--from-key"],
        &["get", "a", "--prefix", "--from-key"],
        &["get", "a", "b", "--prefix"],
        &["get", "foo", "--sort-by=XX"],
        &["get", "foo", "--order=up"],
        &["get", "foo", "--consistency=x"],
        &["-w", "xml", "get", "foo"],
        &["compaction"],
        &["compaction", "abc"],
        &["nosuchcmd"],
        &["lease", "grant"],
        &["lease", "grant", "x"],
        &["lease", "revoke", "zz"],
        &["lease", "revoke", "1234"],
        &["lease", "timetolive"],
        &["lease", "keep-alive"],
        &["member", "remove", "zz"],
        &["member", "remove", "1234"],
        &["member", "add"],
        &["member", "add", "x"],
        &["member", "update"],
        &["member", "promote"],
        &["move-leader"],
        &["move-leader", "1234"],
        &["snapshot", "save"],
        &["user", "add"],
        &["user", "get", "nosuch"],
        &["role", "get", "nosuch"],
        &["watch"],
        &["watch", "a", "b", "--prefix"],
        &["watch", "a", "--"],
        &["version"],
        &["version", "x"],
        &["alarm", "list", "x"],
        &["alarm", "disarm", "x"],
        &["auth", "enable", "x"],
        &["auth", "disable", "x"],
        &["user", "list", "x"],
        &["role", "list", "x"],
        &["txn", "x"],
        // an unknown output format is refused once a client is made, after the arguments
        &["-w", "xml", "get"],
        &["-w", "xml", "lease", "grant"],
        &["-w", "xml", "elect", "e"],
        &["-w", "xml", "snapshot", "save"],
        &["-w", "xml", "txn"],
        &["-w", "xml", "endpoint", "status"],
        &["-w", "xml", "version"],
        &["-w", "xml", "snapshot", "status", "/nonexistent"],
    ] {
        p.check(args);
    }
    // ... and so is a flag given in the environment too
    for args in [&["get"][..], &["get", "foo"]] {
        let flag = format!("--endpoints={}", p.a.endpoint());
        let want = p.a.run(ETCDCTL, &[&[flag.as_str()], args].concat(), "");
        let flag = format!("--endpoints={}", p.b.endpoint());
        let got = p.b.run(RETCDCTL, &[&[flag.as_str()], args].concat(), "");
        compare(args, &want, &got, &[(p.b.endpoint(), p.a.endpoint())]);
    }
    // A flag given both on the command line and in the environment is fatal.
    let want =
        p.a.run(ETCDCTL, &["--endpoints", &p.a.endpoint(), "get", "foo"], "");
    let got =
        p.b.run(RETCDCTL, &["--endpoints", &p.b.endpoint(), "get", "foo"], "");
    compare(&["--endpoints"], &want, &got, &[(p.b.endpoint(), p.a.endpoint())]);
    // ETCDCTL_* variables set flags.
    p.check_env(&["put", "e", "v"], "", &[("ETCDCTL_WRITE_OUT", "json")]);
    p.check_env(
        &["get", "e"],
        "",
        &[("ETCDCTL_WRITE_OUT", "fields"), ("ETCDCTL_HEX", "true")],
    );
}

#[test]
fn unreachable_endpoint() {
    let port = free_port();
    let dead = format!("127.0.0.1:{port}");
    let run = |tool: &str, args: &[&str]| {
        let mut cmd = Command::new(tool);
        cmd.args(["--endpoints", &dead, "--command-timeout=1s"])
            .args(args)
            .env_remove("ETCDCTL_ENDPOINTS");
        cmd.output().expect("run client")
    };
    for args in [
        &["get", "foo"][..],
        &["put", "a", "b"],
        &["endpoint", "status"],
        &["endpoint", "health"],
    ] {
        compare(args, &run(ETCDCTL, args), &run(RETCDCTL, args), &[]);
    }
    // the per-endpoint commands report the failure, print what they have (an empty table:
    // header and borders) and exit 1; protobuf is refused after the endpoints were tried.
    // The health check's duration is masked (it runs to the deadline).
    let took = Regex::new(r"\| +[0-9.]+[µnm]?s +\|").expect("regex");
    // the duration's width sets the column's: runs of spaces and dashes count as one
    let runs = Regex::new(r"( |-)+").expect("regex");
    for w in FORMATS {
        for cmd in [
            &["endpoint", "status"][..],
            &["endpoint", "hashkv"],
            &["endpoint", "health"],
            &["defrag"],
        ] {
            let args: Vec<&str> = [&["-w", w][..], cmd].concat();
            let (want, got) = (run(ETCDCTL, &args), run(RETCDCTL, &args));
            let t = |b: &[u8]| {
                let s = took
                    .replace_all(&normalize(&String::from_utf8_lossy(b), &[]), "| D |")
                    .into_owned();
                runs.replace_all(&s, "$1").into_owned()
            };
            assert_eq!(t(&got.stdout), t(&want.stdout), "stdout of {args:?}");
            assert_eq!(t(&got.stderr), t(&want.stderr), "stderr of {args:?}");
            assert_eq!(got.status.code(), want.status.code(), "exit code of {args:?}");
        }
    }
}

/// Endpoints Go's dialer refuses or cannot resolve, or that name a service for their port:
/// the per-endpoint commands report Go's dial error (`lookup a b: no such host`, `address
/// a: missing port in address`, ...), the others clientv3's balancer error with the target
/// named after the endpoint's host as clientv3 parses it. No name server is asked.
#[test]
fn endpoints_go_cannot_dial() {
    let endpoints = [
        "a b:1",
        "http://a b:1",
        "https://a b:1",
        "ftp://a:1",
        "a",
        "a:b",
        "a:99999",
        "[::1",
        "1.2.3:1",
        "-a:1",
        "a..b:1",
        " 127.0.0.1:1",
        "127.0.0.1:1 ",
        "127.0.0.1:tcpmux",
        "http://127.0.0.1:1/p",
        "[::1]:1",
        "http:x://y",
    ];
    let spawn = |tool: &str, ep: &str, args: &[&str]| {
        common::clean(tool)
            .args(["--endpoints", ep, "--command-timeout=1s"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client")
    };
    let commands: [&[&str]; 3] = [
        &["endpoint", "status"],
        &["-w", "json", "endpoint", "hashkv"],
        &["get", "k"],
    ];
    // a few endpoints at a time (each command runs to its one-second deadline)
    for chunk in endpoints.chunks(4) {
        let runs: Vec<_> = chunk
            .iter()
            .flat_map(|ep| commands.iter().map(move |args| (*ep, *args)))
            .map(|(ep, args)| (ep, args, spawn(ETCDCTL, ep, args), spawn(RETCDCTL, ep, args)))
            .collect();
        for (ep, args, want, got) in runs {
            let (want, got) = (
                want.wait_with_output().expect("etcdctl"),
                got.wait_with_output().expect("retcdctl"),
            );
            compare(&[&[ep][..], args].concat(), &want, &got, &[]);
        }
    }
}

/// Unix socket endpoints (clientv3's `unix://HOST[PATH]`: the socket's path, relative to the
/// working directory unless absolute): two alike etcds listening on a socket in their own
/// temp dir (their working directory), each tool run in its etcd's dir; then sockets that
/// are missing or that nobody listens on, reported in Go's words.
#[test]
fn unix_socket_endpoints() {
    const SOCK: &str = "localhost:12379";
    let peer = format!("http://127.0.0.1:{}", free_port());
    let (a, b) = (
        Etcd::start_opts(&peer, &[], Some(&format!("unix://{SOCK}"))),
        Etcd::start_opts(&peer, &[], Some(&format!("unix://{SOCK}"))),
    );
    assert!(
        a.dir().join(SOCK).exists(),
        "etcd made its socket in its working directory"
    );
    let dirs = [(b.dir().display().to_string(), a.dir().display().to_string())];
    let run = |e: &Etcd, tool: &str, args: &[&str]| {
        let dir = e.dir().display().to_string();
        let args: Vec<String> = args.iter().map(|x| x.replace("{DIR}", &dir)).collect();
        e.command(tool, &args.iter().map(String::as_str).collect::<Vec<_>>())
            .env_remove("ETCDCTL_ENDPOINTS")
            .current_dir(e.dir())
            .stdin(Stdio::null())
            .output()
            .expect("run client")
    };
    // two etcds' bbolt files grow differently
    let db_size = Regex::new(r#""dbSize(InUse)?":\d+"#).expect("regex");
    let mask = |mut o: Output| {
        o.stdout = db_size
            .replace_all(&String::from_utf8_lossy(&o.stdout), r#""dbSize$1":N"#)
            .into_owned()
            .into_bytes();
        o
    };
    let check = |args: &[&str]| {
        let (want, got) = (mask(run(&a, ETCDCTL, args)), mask(run(&b, RETCDCTL, args)));
        compare(args, &want, &got, &dirs);
        // (etcdctl 3.4 says whether an endpoint is healthy on stderr)
        String::from_utf8_lossy(&[want.stdout, want.stderr].concat()).into_owned()
    };
    let rel = format!("--endpoints=unix://{SOCK}");
    let abs = format!("--endpoints=unix://{{DIR}}/{SOCK}");
    for ep in [rel.as_str(), &abs] {
        check(&[ep, "put", "k", "v"]);
        check(&[ep, "get", "k"]);
        check(&[ep, "-w", "json", "get", "k"]);
        let status = check(&[ep, "endpoint", "status"]);
        assert!(status.starts_with("unix://"), "{ep}: {status:?}");
        check(&[ep, "-w", "json", "endpoint", "status"]);
        let health = check(&[ep, "endpoint", "health"]);
        assert!(health.contains(" is healthy: "), "{ep}: {health:?}");
        check(&[ep, "-w", "json", "endpoint", "health"]);
        check(&[
            ep,
            "--keepalive-time=1s",
            "--dial-timeout=1s",
            "del",
            "k",
            "--prev-kv",
        ]);
    }
    // a socket file nobody listens on (its listener closed): connection refused
    drop(std::os::unix::net::UnixListener::bind(a.dir().join("stale")).expect("bind"));
    drop(std::os::unix::net::UnixListener::bind(b.dir().join("stale")).expect("bind"));
    let failing: [&[&str]; 4] = [
        &["--endpoints=unix://nosuch:1", "endpoint", "status"],
        &["--endpoints=unix://nosuch:1", "endpoint", "health"],
        &["--endpoints=unix://nosuch:1", "get", "k"],
        &["--endpoints=unix://stale", "endpoint", "status"],
    ];
    let spawn = |e: &Etcd, tool: &str, args: &[&str]| {
        e.command(tool, args)
            .arg("--command-timeout=1s")
            .env_remove("ETCDCTL_ENDPOINTS")
            .current_dir(e.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client")
    };
    let runs: Vec<_> = failing
        .iter()
        .map(|args| (args, spawn(&a, ETCDCTL, args), spawn(&b, RETCDCTL, args)))
        .collect();
    for (args, want, got) in runs {
        let want = want.wait_with_output().expect("etcdctl");
        let got = got.wait_with_output().expect("retcdctl");
        assert!(!want.status.success(), "{args:?}");
        compare(args, &want, &got, &dirs);
    }
    // `--debug`: each gRPC line retcdctl prints (the address dialed is the endpoint as
    // given, the authority the socket's path, Go's dial error) is one etcdctl printed
    let debug: [&[&str]; 3] = [
        &["--debug", &rel, "get", "k"],
        &["--debug", &abs, "get", "k"],
        &["--debug", "--endpoints=unix://nosuch:1", "get", "k"],
    ];
    let runs: Vec<_> = debug
        .iter()
        .map(|args| {
            let dir = |e: &Etcd| e.dir().display().to_string();
            let [a_args, b_args] = [&a, &b].map(|e| {
                args.iter()
                    .map(|x| x.replace("{DIR}", &dir(e)))
                    .collect::<Vec<_>>()
            });
            fn strs(v: &[String]) -> Vec<&str> {
                v.iter().map(String::as_str).collect()
            }
            (
                args,
                spawn(&a, ETCDCTL, &strs(&a_args)),
                spawn(&b, RETCDCTL, &strs(&b_args)),
            )
        })
        .collect();
    for (args, want, got) in runs {
        let want = want.wait_with_output().expect("etcdctl");
        let got = got.wait_with_output().expect("retcdctl");
        assert_eq!(got.stdout, want.stdout, "stdout of {args:?}");
        assert_eq!(got.status.code(), want.status.code(), "exit code of {args:?}");
        let (want_listing, want_logs, want_rest) = debug_parts(&want.stderr, &dirs);
        let (got_listing, got_logs, got_rest) = debug_parts(&got.stderr, &dirs);
        assert_eq!(got_listing, want_listing, "the listing of {args:?}");
        assert_eq!(got_rest, want_rest, "the rest of stderr of {args:?}");
        let extra: Vec<_> = got_logs.difference(&want_logs).collect();
        assert!(
            extra.is_empty(),
            "gRPC lines etcdctl did not print for {args:?}: {extra:#?}"
        );
        let dialed = |logs: &std::collections::BTreeSet<String>| {
            logs.iter().any(|l| l.contains("picks a new address \"unix://"))
        };
        assert!(dialed(&got_logs) && dialed(&want_logs), "{args:?}: {got_logs:#?}");
    }
}

/// `unixs://` endpoints (TLS over a unix socket; `unix://` too when a TLS option is given):
/// two alike etcds serving TLS on a socket in their working directory, a certificate for
/// `localhost`. The server name is the socket's path up to its last `:`, so an absolute path
/// fails Go's hostname check; without `--cacert` the system's CAs do not know the server.
#[test]
fn unixs_socket_endpoints() {
    const SOCK: &str = "localhost:12380";
    let pki = tempfile::tempdir().expect("temp dir");
    let mut ca = retcd_tls::test_pki::TestCa::new(pki.path(), "ca");
    let server = ca.issue("server", "localhost", &["localhost"]);
    let (cert, key) = (
        server.cert.display().to_string(),
        server.key.display().to_string(),
    );
    let tls = ["--cert-file", cert.as_str(), "--key-file", key.as_str()];
    let url = format!("unixs://{SOCK}");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let (a, b) = (
        Etcd::start_opts(&peer, &tls, Some(&url)),
        Etcd::start_opts(&peer, &tls, Some(&url)),
    );
    let dirs = [(b.dir().display().to_string(), a.dir().display().to_string())];
    let cacert = format!("--cacert={}", ca.cert.display());
    let spawn = |e: &Etcd, tool: &str, args: &[&str]| {
        let dir = e.dir().display().to_string();
        let args: Vec<String> = args.iter().map(|x| x.replace("{DIR}", &dir)).collect();
        e.command(tool, &args.iter().map(String::as_str).collect::<Vec<_>>())
            .arg("--command-timeout=2s")
            .env_remove("ETCDCTL_ENDPOINTS")
            .current_dir(e.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client")
    };
    let check = |args: &[&str]| {
        let want = spawn(&a, ETCDCTL, args).wait_with_output().expect("etcdctl");
        let got = spawn(&b, RETCDCTL, args).wait_with_output().expect("retcdctl");
        compare(args, &want, &got, &dirs);
        want.status.success()
    };
    let ep = format!("--endpoints={url}");
    assert!(check(&[&ep, &cacert, "put", "k", "v"]));
    assert!(check(&[&ep, &cacert, "-w", "json", "get", "k"]));
    assert!(check(&[&ep, &cacert, "endpoint", "health"]));
    let plain_scheme = format!("--endpoints=unix://{SOCK}");
    assert!(check(&[&plain_scheme, &cacert, "get", "k"]));
    assert!(check(&[
        &ep,
        "--insecure-transport=false",
        "--insecure-skip-tls-verify",
        "get",
        "k"
    ]));
    let abs = format!("--endpoints=unixs://{{DIR}}/{SOCK}");
    assert!(check(&[&abs, &cacert, "--insecure-skip-tls-verify", "get", "k"]));
    // the failures, run side by side (each to its deadline)
    let failing: [&[&str]; 3] = [
        &[&ep, "endpoint", "status"],
        &[&abs, &cacert, "endpoint", "status"],
        &[&abs, &cacert, "get", "k"],
    ];
    let runs: Vec<_> = failing
        .iter()
        .map(|args| (args, spawn(&a, ETCDCTL, args), spawn(&b, RETCDCTL, args)))
        .collect();
    for (args, want, got) in runs {
        let want = want.wait_with_output().expect("etcdctl");
        let got = got.wait_with_output().expect("retcdctl");
        assert!(!want.status.success(), "{args:?}");
        compare(args, &want, &got, &dirs);
    }
}

#[test]
fn txn_from_stdin_and_interactive() {
    let p = Pair::start();
    p.check(&["put", "foo", "bar"]);
    let txn =
        "value(\"foo\") = \"bar\"\nmod(\"k2\") > \"0\"\n\nput k2 v2\nget foo\ndel nothing\n\nput k3 v3\n\n";
    for w in FORMATS {
        p.check_stdin(&["-w", w, "txn"], txn);
    }
    let ok = "create(\"foo\") > \"0\"\nversion(\"foo\") != \"7\"\nvalue(\"foo\") < \"z\"\n\nput k5 \"hello world\"\nget --prefix k\ndel --prefix k --prev-kv\n\nget foo\n\n";
    p.check_stdin(&["txn"], ok);
    p.check_stdin(&["txn", "-i"], ok);
    p.check_stdin(&["txn", "--interactive"], "\n\n\n");
    for bad in [
        "xx\n\n\n",
        "create(\"foo\") = \"x\"\n\n\n",
        "foo(\"foo\") = \"x\"\n\n\n",
        "value(\"foo\") =\n\n\n",
        "\nbogus a\n\n",
        "\nput a\n\n",
        "\nget --prefix a b\n\n",
        "value(\"foo\") = \"bar\"\n\nget foo\n",
        "",
    ] {
        p.check_stdin(&["txn"], bad);
    }
}

/// Runs a watch with both tools, makes the same writes on both servers, stops the watchers
/// and compares what they printed.
fn check_watch(p: &Pair, args: &[&str], writes: &[&[&str]]) {
    check_watch_after(p, args, writes, Duration::from_millis(1500));
}

/// [`check_watch`] with the writes made once the watchers were quiet for `quiet`.
fn check_watch_after(p: &Pair, args: &[&str], writes: &[&[&str]], quiet: Duration) {
    let spawn = |etcd: &Etcd, tool: &str| {
        etcd.command(tool, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn watch")
    };
    let (wa, wb) = (spawn(&p.a, ETCDCTL), spawn(&p.b, RETCDCTL));
    std::thread::sleep(quiet);
    for w in writes {
        assert!(p.a.run(ETCDCTL, w, "").status.success());
        assert!(p.b.run(ETCDCTL, w, "").status.success());
    }
    std::thread::sleep(Duration::from_millis(1500));
    let stop = |mut c: Child| {
        let _ = c.kill();
        c.wait_with_output().expect("watch output")
    };
    let (want, got) = (stop(wa), stop(wb));
    let ports = [(p.b.endpoint(), p.a.endpoint())];
    let n = |b: &[u8]| normalize(&String::from_utf8_lossy(b), &ports);
    assert_eq!(n(&got.stdout), n(&want.stdout), "stdout of watch {args:?}");
    assert_eq!(n(&got.stderr), n(&want.stderr), "stderr of watch {args:?}");
}

#[test]
fn watch_events_and_exec() {
    let p = Pair::start();
    let writes: &[&[&str]] = &[
        &["put", "wk", "v1"],
        &["put", "wk", "v2"],
        &["del", "wk"],
        &["put", "wk2", "x"],
    ];
    // table: etcdctl waits, then refuses the first event (exit 4)
    for w in FORMATS {
        check_watch(&p, &["-w", w, "watch", "wk", "--prev-kv"], writes);
    }
    check_watch(&p, &["watch", "--prefix", "wk"], writes);
    check_watch(&p, &["watch", "wk", "wl", "--rev=2"], writes);
    check_watch(
        &p,
        &[
            "watch",
            "wk",
            "--",
            "sh",
            "-c",
            "echo $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE",
        ],
        writes,
    );
    // Watching from a compacted revision: cancelled by the server, exit code 5.
    p.check(&["compaction", "5"]);
    p.check(&["watch", "--rev=1", "wk"]);
    p.check(&["-w", "json", "watch", "--rev=1", "wk"]);
    p.check_stdin(&["watch", "-i"], "bogus\nwatch\n");
}

/// A watch that sees nothing for longer than etcd's ping policy allows for 2 s pings (a
/// GOAWAY after two pings within its 5 s minimum) lives on, as etcdctl's: the default
/// `--keepalive-time=2s` pings every 10 s, gRPC's minimum. The same with a longer time.
#[test]
fn quiet_watch_outlives_the_servers_ping_policy() {
    let p = Pair::start();
    let writes: &[&[&str]] = &[&["put", "quiet", "v1"]];
    check_watch_after(&p, &["watch", "quiet"], writes, Duration::from_secs(12));
    check_watch_after(
        &p,
        &["--keepalive-time=11s", "watch", "quiet"],
        writes,
        Duration::from_secs(2),
    );
}

/// Lease ids differ between runs: hex ids and decimal `ID` fields become `LEASE`.
fn lease_normalized(o: &Output) -> (String, String, Option<i32>) {
    let n = |b: &[u8]| {
        let s = normalize(&String::from_utf8_lossy(b), &[]);
        let s = Regex::new(r#"("ID" ?: ?)\d+"#)
            .expect("regex")
            .replace_all(&s, "${1}LEASE")
            .into_owned();
        // a lease id is %x of the id: fewer than 16 digits when the member id's low 16
        // bits start with a zero nibble
        Regex::new(r"\b[0-9a-f]{12,16}\b")
            .expect("regex")
            .replace_all(&s, "LEASE")
            .into_owned()
    };
    (n(&o.stdout), n(&o.stderr), o.status.code())
}

#[test]
fn lease_commands() {
    let e = Etcd::start(&format!("http://127.0.0.1:{}", free_port()));
    let both = |args: &[&str]| {
        let want = lease_normalized(&e.run(ETCDCTL, args, ""));
        let got = lease_normalized(&e.run(RETCDCTL, args, ""));
        assert_eq!(got, want, "{args:?}");
    };
    for w in ["simple", "json", "fields", "table"] {
        both(&["-w", w, "lease", "grant", "100"]);
    }
    // One shared lease with a key (etcd lists several keys in no fixed order): both tools
    // look at the same lease.
    let shared = e.run(ETCDCTL, &["lease", "grant", "500"], "");
    let hex = String::from_utf8_lossy(&shared.stdout)
        .split_whitespace()
        .nth(1)
        .expect("id")
        .to_string();
    assert!(
        e.run(ETCDCTL, &["put", "--lease", &hex, "lk1", "v"], "")
            .status
            .success()
    );
    for w in FORMATS {
        for args in [
            &["-w", w, "lease", "timetolive", &hex][..],
            &["-w", w, "lease", "timetolive", "--keys", &hex],
            &["-w", w, "lease", "timetolive", "1234"],
            &["-w", w, "lease", "keep-alive", "--once", &hex],
            &["-w", w, "lease", "revoke", "1234"],
            &["-w", w, "lease", "list"],
        ] {
            compare(args, &e.run(ETCDCTL, args, ""), &e.run(RETCDCTL, args, ""), &[]);
        }
    }
    // Revoking: each tool revokes a lease of its own; the sentences match.
    let revoke = |tool: &str| {
        let out = e.run(tool, &["lease", "grant", "300"], "");
        let id = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("id")
            .to_string();
        lease_normalized(&e.run(tool, &["lease", "revoke", &id], ""))
    };
    assert_eq!(revoke(RETCDCTL), revoke(ETCDCTL));
    both(&["lease", "keep-alive", "--once", "1234"]);
}

#[test]
fn cluster_and_maintenance_commands() {
    let p = Pair::start();
    p.check(&["put", "a", "1"]);
    for w in FORMATS {
        p.check(&["-w", w, "member", "list"]);
        p.check(&["-w", w, "endpoint", "hashkv"]);
        // The raft index counts internal entries too, and two etcds' bbolt files grow
        // differently (DB size); in a table they also set column widths.
        let raft_index: &[&str] = if w == "table" {
            &[r"()\d+", r"()-+", r"() +"]
        } else {
            &[
                r#"("raftIndex":|"raftAppliedIndex":|"RaftIndex" : |"RaftAppliedIndex" : )\d+"#,
                r#"("dbSize":|"dbSizeInUse":|"DBSize" : |"DBSizeInUse" : )\d+"#,
                r"(, )\d+(?:\.\d+)? [kMGT]?B, ",
                r"(?m)(, )\d+, \d+, $",
            ]
        };
        p.check_masked(&["-w", w, "endpoint", "status"], raft_index);
        p.check_masked(&["-w", w, "endpoint", "status", "--cluster"], raft_index);
        // etcdctl 3.4 crashes (nil header) printing alarms in the fields format.
        if w != "fields" {
            p.check(&["-w", w, "alarm", "list"]);
            p.check(&["-w", w, "alarm", "disarm"]);
        }
        p.check(&["-w", w, "defrag"]);
        if w != "table" {
            p.check(&["-w", w, "endpoint", "health"]);
        }
        p.check(&["-w", w, "move-leader", "bdae9bbc11dd390d"]);
        // a revision to hash, one in the future (a failure: reported, then the last error)
        p.check(&["-w", w, "endpoint", "hashkv", "--rev=2"]);
        p.check(&["-w", w, "endpoint", "hashkv", "--rev=100"]);
    }
    // the health table's duration column (and so its width) is masked
    p.check_masked(
        &["-w", "table", "endpoint", "health"],
        &[r"(\| +)[0-9.]+[µnm]?s(?: +\|)", r"()-{6,}", r"() {2,}"],
    );
    let id = p
        .check(&["member", "list"])
        .split(',')
        .next()
        .expect("member id")
        .to_string();
    p.check(&["move-leader", &id]);
    p.check(&["-w", "json", "move-leader", &id]);
    p.check(&["member", "promote", &id]);
}

#[test]
fn snapshot_save() {
    let p = Pair::start();
    p.check(&["put", "a", "1"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let (fa, fb) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let want =
        p.a.run(ETCDCTL, &["snapshot", "save", fa.to_str().expect("path")], "");
    let got =
        p.b.run(RETCDCTL, &["snapshot", "save", fb.to_str().expect("path")], "");
    let subst = [
        (p.b.endpoint(), p.a.endpoint()),
        (fb.display().to_string(), fa.display().to_string()),
    ];
    compare(&["snapshot", "save"], &want, &got, &subst);
    assert!(std::fs::metadata(&fb).expect("snapshot written").len() > 0);
}

#[test]
fn users_roles_and_auth() {
    let p = Pair::start();
    for w in FORMATS {
        let (u, r) = (format!("u{w}"), format!("r{w}"));
        let user_pw = format!("{u}:pw");
        p.check(&["-w", w, "user", "add", &user_pw]);
        p.check(&["-w", w, "role", "add", &r]);
        p.check(&["-w", w, "role", "grant-permission", &r, "readwrite", "a", "b"]);
        p.check(&["-w", w, "role", "grant-permission", "--prefix", &r, "read", "p"]);
        p.check(&[
            "-w",
            w,
            "role",
            "grant-permission",
            "--from-key",
            &r,
            "write",
            "fk",
        ]);
        p.check(&["-w", w, "role", "grant-permission", &r, "read", "single"]);
        p.check(&["-w", w, "user", "grant-role", &u, &r]);
        p.check(&["-w", w, "user", "get", &u]);
        p.check(&["-w", w, "user", "get", "--detail", &u]);
        p.check(&["-w", w, "role", "get", &r]);
        p.check(&["-w", w, "user", "list"]);
        p.check(&["-w", w, "role", "list"]);
        p.check(&["-w", w, "role", "revoke-permission", &r, "a", "b"]);
        p.check(&["-w", w, "role", "revoke-permission", &r, "single"]);
        p.check(&["-w", w, "user", "revoke-role", &u, &r]);
        p.check_stdin(&["-w", w, "user", "passwd", &u, "--interactive=false"], "newpw\n");
        p.check(&["-w", w, "user", "delete", &u]);
        p.check(&["-w", w, "role", "delete", &r]);
    }
    p.check(&["role", "grant-permission", "x", "bogus", "k"]);
    p.check(&["role", "grant-permission", "x"]);
    p.check_stdin(&["user", "add", "root", "--interactive=false"], "rootpw\n");
    p.check(&["user", "add", "nopw", "--no-password"]);
    p.check(&["user", "add", "flagpw", "--new-user-password=x"]);
    p.check(&["auth", "enable"]);
    p.check(&["get", "foo"]);
    p.check(&["--user=root:bad", "get", "foo"]);
    p.check(&["--user=root:rootpw", "put", "foo", "bar"]);
    p.check(&["--user=root", "--password=rootpw", "get", "foo"]);
    p.check(&["--user=root:rootpw", "auth", "disable"]);
    p.check(&["auth", "disable"]);
}

fn interrupt(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

/// One tool holds a lock while the other waits for it, both ways round: the recipes interoperate.
#[test]
fn lock_waits_for_the_holder_and_elect_observes() {
    let e = Etcd::start(&format!("http://127.0.0.1:{}", free_port()));
    let args = ["lock", "l1", "--", "sh", "-c", "echo $ETCD_LOCK_KEY"];
    let (want, got) = (e.run(ETCDCTL, &args, ""), e.run(RETCDCTL, &args, ""));
    assert_eq!(lease_normalized(&got), lease_normalized(&want));
    assert_eq!(lease_normalized(&want).0, "l1/LEASE\n");
    for (holder, waiter) in [(ETCDCTL, RETCDCTL), (RETCDCTL, ETCDCTL)] {
        let mut hold = e
            .command(holder, &["lock", "l2"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("holder");
        std::thread::sleep(Duration::from_millis(1000));
        let wait = e
            .command(waiter, &["lock", "l2", "echo", "got it"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("waiter");
        std::thread::sleep(Duration::from_millis(1500));
        let mut wait = wait;
        assert!(
            wait.try_wait().expect("try_wait").is_none(),
            "{waiter} took a lock held by {holder}"
        );
        interrupt(&hold);
        assert!(hold.wait().expect("holder exit").success());
        let out = wait.wait_with_output().expect("waiter output");
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "got it\n");
        let _ = hold.kill();
    }
    // Campaigning prints the leader key and proposal; an observer of either tool sees it.
    for (candidate, observer) in [(ETCDCTL, RETCDCTL), (RETCDCTL, ETCDCTL)] {
        let watch = e
            .command(observer, &["elect", "-l", "el"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("observer");
        std::thread::sleep(Duration::from_millis(800));
        let camp = e
            .command(candidate, &["elect", "el", "p1"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("candidate");
        std::thread::sleep(Duration::from_millis(1500));
        interrupt(&camp);
        interrupt(&watch);
        let (c, w) = (
            camp.wait_with_output().expect("campaign"),
            watch.wait_with_output().expect("observe"),
        );
        assert!(c.status.success(), "{candidate} elect");
        assert_eq!(lease_normalized(&c).0, "el/LEASE\np1\n");
        assert_eq!(lease_normalized(&w).0, "el/LEASE\np1\n", "{observer} elect -l");
    }
    for args in [
        &["lock"][..],
        &["elect"],
        &["elect", "a"],
        &["elect", "-l", "a", "b"],
        &["lock", "x", "false"],
    ] {
        compare(args, &e.run(ETCDCTL, args, ""), &e.run(RETCDCTL, args, ""), &[]);
    }
}

/// Runs `args` with both tools (no server: nothing here gets to dial) and compares stdout,
/// stderr and the exit code.
fn same_without_server(args: &[&str]) {
    let dead = format!("127.0.0.1:{}", free_port());
    let run = |tool: &str| {
        let mut cmd = Command::new(tool);
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("ETCDCTL_API", "3")
            .env("ETCDCTL_ENDPOINTS", &dead)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run")
    };
    let (want, got) = (run(ETCDCTL), run(RETCDCTL));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert_eq!(text(&got.stdout), text(&want.stdout), "stdout of {args:?}");
    assert_eq!(text(&got.stderr), text(&want.stderr), "stderr of {args:?}");
    assert_eq!(got.status.code(), want.status.code(), "exit code of {args:?}");
}

/// Flags etcdctl cannot parse: pflag's message on stderr, the command's usage on stdout,
/// the message again, exit 1; `-h`, `help` and a group without subcommand print the usage.
#[test]
fn flag_errors_and_usage_like_etcdctl() {
    for args in [
        // values a boolean flag cannot take
        &["get", "--prefix=maybe", "k"][..],
        &["put", "--prev-kv=x", "k", "v"],
        &["del", "--prefix=2", "k"],
        &["del", "--from-key=yes", "k"],
        &["txn", "-i=x"],
        &["txn", "--interactive=x"],
        &["watch", "--prefix=no", "k"],
        &["lease", "timetolive", "--keys=y", "1"],
        &["lease", "keep-alive", "--once=x", "1"],
        &["member", "add", "--learner=1x", "n"],
        &["user", "add", "--interactive=x", "u"],
        &["user", "get", "--detail=q", "u"],
        &["role", "grant-permission", "--prefix=z", "r", "read", "k"],
        &["endpoint", "--cluster=x", "status"],
        &["endpoint", "status", "--cluster=x"],
        &["elect", "-l=x", "e"],
        &["make-mirror", "--no-dest-prefix=x", "d"],
        &["snapshot", "restore", "--skip-hash-check=x", "f"],
        &["migrate", "--no-ttl=x"],
        &["migrat", "--data-dir", "x"],
        &["check", "perf", "--auto-compact=x"],
        &["compaction", "--physical=x", "1"],
        &["--hex=x", "get", "k"],
        &["get", "--debug=2", "k"],
        &["--insecure-transport=maybe", "get", "k"],
        &["get", "--help=x"],
        // numbers and durations
        &["get", "--limit=x", "k"],
        &["get", "--rev=1.5", "k"],
        &["get", "k", "--limit=99999999999999999999"],
        &["watch", "--rev=x", "k"],
        &["lock", "--ttl=x", "l"],
        &["endpoint", "hashkv", "--rev=x"],
        &["get", "--dial-timeout=x", "k"],
        &["get", "--command-timeout=1", "k"],
        &["get", "--keepalive-time=3q", "k"],
        // unknown flags, missing values
        &["get", "--bogus", "k"],
        &["lease", "grant", "--foo=1", "2"],
        &["get", "-x", "k"],
        &["txn", "-ix"],
        &["elect", "-lx", "a"],
        &["--bogus"],
        &["lease", "--bogus"],
        &["get", "--limit"],
        &["get", "-w"],
        &["get", "--endpoints"],
        &["member", "add", "--peer-urls"],
        &["-w"],
        // usage on request, groups without a subcommand
        &["-h"],
        &["get", "-h"],
        &["lease", "grant", "--help"],
        &["help", "get"],
        &["help", "lease", "grant"],
        &["help"],
        &["help", "bogus"],
        &["help", "-h"],
        &["lease"],
        &["lease", "bogus"],
        &["lease", ""],
        &["endpoint"],
        &["snap"],
        // unknown commands, with cobra's suggestions
        &["gett"],
        &["put1"],
        &["bogus"],
        &["--bogus", "get", "k"],
        &["lese", "grant"],
    ] {
        same_without_server(args);
    }
}

/// Every command's usage (`CMD --help`) as etcdctl prints it, for every command etcdctl's
/// root usage lists. Not compared: `completion *` (retcdctl's scripts are clap_complete's,
/// without `--no-descriptions`).
#[test]
fn every_command_usage_like_etcdctl() {
    let root = Command::new(ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg("--help")
        .output()
        .expect("etcdctl --help");
    let text = String::from_utf8_lossy(&root.stdout).into_owned();
    let commands: Vec<String> = text
        .lines()
        .skip_while(|l| *l != "COMMANDS:")
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| {
            l.trim_start_matches('\t')
                .split('\t')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(commands.len() > 40, "{commands:?}");
    let mut groups: Vec<String> = commands
        .iter()
        .filter_map(|c| c.split_once(' ').map(|(g, _)| g.to_string()))
        .collect();
    groups.dedup();
    let skip = |c: &str| c.starts_with("completion");
    let mut compared = 0;
    for c in commands.iter().chain(&groups).filter(|c| !skip(c)) {
        let mut args: Vec<&str> = c.split(' ').collect();
        args.push("--help");
        same_without_server(&args);
        compared += 1;
    }
    assert!(compared > 50, "{compared} usages compared");
}

impl Pair {
    /// Like [`Pair::check`], after `fix` rewrote each server's outputs (it gets the server
    /// and the text), for values the two servers cannot share.
    fn check_fixed(&self, args: &[&str], fix: impl Fn(&Etcd, &str) -> String) {
        let want = self.a.run(ETCDCTL, args, "");
        let got = self.b.run(RETCDCTL, args, "");
        let ports = [(self.b.endpoint(), self.a.endpoint())];
        let n = |e: &Etcd, b: &[u8]| normalize(&fix(e, &String::from_utf8_lossy(b)), &ports);
        assert_eq!(
            n(&self.b, &got.stdout),
            n(&self.a, &want.stdout),
            "stdout of {args:?}"
        );
        assert_eq!(
            n(&self.b, &got.stderr),
            n(&self.a, &want.stderr),
            "stderr of {args:?}"
        );
        assert_eq!(got.status.code(), want.status.code(), "exit code of {args:?}");
    }
}

/// The ids of `e`'s members other than the first one (the learners the test added), as
/// `member list -w json` gives them.
fn added_member_ids(e: &Etcd) -> Vec<u64> {
    let out = e.run(ETCDCTL, &["-w", "json", "member", "list"], "");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("member list json");
    v["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter(|m| m["name"] != "default")
        .map(|m| m["ID"].as_u64().expect("ID"))
        .collect()
}

/// Member changes in every format: a learner added, updated, not promotable (it never
/// started), removed. Masked: the learner's id, which etcd derives from the time of the
/// add (decimal in json and fields, hex in sentences); the ids of both servers' own member
/// agree (same peer URL). Not compared in protobuf: the add and update answers carry the
/// learner's id in binary.
#[test]
fn member_changes_in_every_format() {
    let p = Pair::start();
    p.check(&["put", "a", "1"]);
    let mask = |e: &Etcd, text: &str| {
        added_member_ids(e).iter().fold(text.to_string(), |t, id| {
            t.replace(&format!("{id:16x}"), "LEARNER")
                .replace(&format!("{id:x}"), "LEARNER")
                .replace(&id.to_string(), "LEARNER")
        })
    };
    let own_id = |e: &Etcd| {
        let out = e.run(ETCDCTL, &["member", "list"], "");
        String::from_utf8_lossy(&out.stdout)
            .split(',')
            .next()
            .expect("id")
            .to_string()
    };
    assert_eq!(own_id(&p.a), own_id(&p.b));
    for (i, w) in FORMATS.into_iter().enumerate() {
        let peer = format!("--peer-urls=http://127.0.0.1:{}", 21001 + i);
        let moved = format!("--peer-urls=http://127.0.0.1:{}", 22001 + i);
        if w != "protobuf" {
            p.check_fixed(&["-w", w, "member", "add", "--learner", "learner", &peer], mask);
        } else {
            p.check_fixed(&["member", "add", "--learner", "learner", &peer], mask);
        }
        // a second learner is refused
        p.check_fixed(
            &[
                "-w",
                w,
                "member",
                "add",
                "--learner",
                "second",
                "--peer-urls=http://127.0.0.1:23999",
            ],
            mask,
        );
        p.check_fixed(&["-w", w, "member", "list"], mask);
        let [la] = added_member_ids(&p.a)[..] else {
            panic!("one learner")
        };
        let [lb] = added_member_ids(&p.b)[..] else {
            panic!("one learner")
        };
        let (ha, hb) = (format!("{la:x}"), format!("{lb:x}"));
        let both = |args: &[&str], id_at: usize| {
            let mut a: Vec<&str> = args.to_vec();
            let mut b: Vec<&str> = args.to_vec();
            a[id_at] = &ha;
            b[id_at] = &hb;
            let want = p.a.run(ETCDCTL, &a, "");
            let got = p.b.run(RETCDCTL, &b, "");
            let ports = [(p.b.endpoint(), p.a.endpoint())];
            // the learner is gone after a remove: its id is masked from what was known before
            let n = |id: u64, bytes: &[u8]| {
                let t = String::from_utf8_lossy(bytes)
                    .replace(&format!("{id:16x}"), "LEARNER")
                    .replace(&format!("{id:x}"), "LEARNER")
                    .replace(&id.to_string(), "LEARNER");
                normalize(&t, &ports)
            };
            assert_eq!(n(lb, &got.stdout), n(la, &want.stdout), "stdout of {args:?}");
            assert_eq!(n(lb, &got.stderr), n(la, &want.stderr), "stderr of {args:?}");
            assert_eq!(got.status.code(), want.status.code(), "exit code of {args:?}");
        };
        if w != "protobuf" {
            both(&["-w", w, "member", "update", "ID", &moved], 4);
        }
        both(&["-w", w, "member", "promote", "ID"], 4);
        both(&["-w", w, "member", "remove", "ID"], 4);
        p.check(&["-w", w, "member", "remove", "1234"]);
    }
    // etcd's own checks of peer URLs, made by clientv3 before the call
    for urls in [
        "ftp://a:1",
        "http://a",
        "http://a:1/p",
        "a:1",
        "http://127.0.0.1:2s000",
        "http://[::1:1",
        "http://a b:1",
        "http://%zz:1",
        "http://127.0.0.1:1,ftp://b:2",
    ] {
        let flag = format!("--peer-urls={urls}");
        p.check(&["member", "add", "x", &flag]);
        p.check(&["member", "update", "1234", &flag]);
    }
    p.check(&["member", "add", "x", "http://a:1", "HTTPS://b", "y"]);
}

/// Reads with every sort target and order, limits and revisions; deletes from a key with
/// the previous pairs; compactions, auth switches, version, role lists and users with
/// several roles — in every format.
#[test]
fn more_commands_in_every_format() {
    let p = Pair::start();
    for (k, v) in [
        ("a", "3"),
        ("b", "1"),
        ("c", "2"),
        ("b", "4"),
        ("d", "0"),
        ("c", "5"),
    ] {
        p.check(&["put", k, v]);
    }
    for w in FORMATS {
        for sort in ["CREATE", "KEY", "MODIFY", "VALUE", "VERSION"] {
            for order in ["ASCEND", "DESCEND"] {
                let (s, o) = (format!("--sort-by={sort}"), format!("--order={order}"));
                p.check(&["-w", w, "get", "--prefix", "", &s, &o, "--limit=3"]);
                p.check(&["-w", w, "get", "a", "z", &s, &o, "--rev=5"]);
            }
        }
        p.check(&["-w", w, "get", "--from-key", "b", "--keys-only", "--limit=2"]);
        p.check(&[
            "-w",
            w,
            "get",
            "--prefix",
            "",
            "--print-value-only",
            "--order=DESCEND",
        ]);
        p.check(&["-w", w, "get", "--rev=0x3", "a"]);
        p.check(&["-w", w, "version"]);
    }
    for w in FORMATS {
        p.check(&["put", &format!("z{w}1"), "x"]);
        p.check(&["put", &format!("z{w}2"), "y"]);
        p.check(&["-w", w, "del", "--from-key", &format!("z{w}"), "--prev-kv"]);
    }
    let mut rev = 3;
    for w in FORMATS {
        p.check(&["-w", w, "compaction", &rev.to_string()]);
        p.check(&["-w", w, "compaction", "--physical", &(rev + 1).to_string()]);
        p.check(&["-w", w, "compaction", "1"]);
        rev += 2;
    }
    // users and roles: several roles, several permissions, an empty role list
    p.check(&["-w", "fields", "role", "list"]);
    p.check(&["user", "add", "root:rootpw"]);
    p.check(&["user", "add", "u:pw"]);
    for r in ["r1", "r2", "r3"] {
        p.check(&["role", "add", r]);
        p.check(&["user", "grant-role", "u", r]);
    }
    p.check(&["role", "grant-permission", "r1", "read", "a"]);
    p.check(&["role", "grant-permission", "r1", "write", "b", "c"]);
    p.check(&["role", "grant-permission", "--prefix", "r1", "readwrite", "p"]);
    p.check(&["role", "grant-permission", "--from-key", "r2", "read", "k"]);
    for w in FORMATS {
        p.check(&["-w", w, "role", "list"]);
        p.check(&["-w", w, "user", "list"]);
        p.check(&["-w", w, "user", "get", "u"]);
        p.check(&["-w", w, "user", "get", "--detail", "u"]);
        p.check(&["-w", w, "user", "get", "root"]);
        p.check(&["-w", w, "role", "get", "r1"]);
        p.check(&["-w", w, "role", "get", "r2"]);
        p.check(&["-w", w, "role", "get", "r3"]);
    }
    p.check(&["role", "add", "root"]);
    p.check(&["user", "grant-role", "root", "root"]);
    for w in FORMATS {
        p.check(&["-w", w, "auth", "enable"]);
        p.check(&["-w", w, "get", "a"]);
        p.check(&["-w", w, "--user=u:pw", "get", "a"]);
        p.check(&["-w", w, "--user=root:rootpw", "role", "get", "root"]);
        p.check(&["-w", w, "--user=root:rootpw", "auth", "disable"]);
    }
}

/// Snapshots in every format (its progress lines on stderr, the sentence on stdout).
#[test]
fn snapshot_save_in_every_format() {
    let p = Pair::start();
    p.check(&["put", "a", "1"]);
    let dir = tempfile::tempdir().expect("temp dir");
    for w in FORMATS {
        let (fa, fb) = (
            dir.path().join(format!("a-{w}.db")),
            dir.path().join(format!("b-{w}.db")),
        );
        let (sa, sb) = (fa.display().to_string(), fb.display().to_string());
        let want = p.a.run(ETCDCTL, &["-w", w, "snapshot", "save", &sa], "");
        let got = p.b.run(RETCDCTL, &["-w", w, "snapshot", "save", &sb], "");
        compare(
            &["-w", w, "snapshot", "save"],
            &want,
            &got,
            &[(p.b.endpoint(), p.a.endpoint()), (sb, sa)],
        );
    }
}

/// `snapshot save`'s deadline is etcdctl's: none without `--command-timeout` (an endpoint
/// that never answers is waited for), else the whole save's (at it, with the endpoint
/// unreachable: clientv3's `streamer failed to create ClientStream`, exit 5, the `.part`
/// file removed); a server's refusal comes after the stream opened (`failed to receive from
/// snapshot stream`, exit 5); a `.part` file that cannot be made is refused in Go's words;
/// the snapshot is only its owner's to read (0600).
#[test]
fn snapshot_save_deadlines_like_etcdctl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dead = format!("127.0.0.1:{}", free_port());
    let path = |tool: &str| {
        dir.path()
            .join(format!("{}.db", if tool == ETCDCTL { "a" } else { "b" }))
    };
    let spawn = |tool: &str, args: &[&str], env: &[(&str, &str)]| {
        let file = path(tool).display().to_string();
        common::clean(tool)
            .args(["--endpoints", &dead])
            .args(args)
            .args(["snapshot", "save", &file])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn snapshot save")
    };
    let files = [(
        path(RETCDCTL).display().to_string(),
        path(ETCDCTL).display().to_string(),
    )];
    for (args, env) in [
        (&["--command-timeout=1s"][..], &[][..]),
        (&[], &[("ETCDCTL_COMMAND_TIMEOUT", "1500ms")]),
    ] {
        let (want, got) = (spawn(ETCDCTL, args, env), spawn(RETCDCTL, args, env));
        let (want, got) = (
            want.wait_with_output().expect("etcdctl"),
            got.wait_with_output().expect("retcdctl"),
        );
        compare(args, &want, &got, &files);
        assert_eq!(got.status.code(), Some(5));
        assert!(String::from_utf8_lossy(&got.stderr).contains("streamer failed to create ClientStream"));
        let part = |tool: &str| Path::new(&format!("{}.part", path(tool).display())).exists();
        assert!(!part(ETCDCTL) && !part(RETCDCTL), "the .part files are removed");
    }
    // no deadline: both still wait after 3 s
    let (mut want, mut got) = (spawn(ETCDCTL, &[], &[]), spawn(RETCDCTL, &[], &[]));
    std::thread::sleep(Duration::from_secs(3));
    assert!(matches!(want.try_wait(), Ok(None)), "etcdctl waits");
    assert!(matches!(got.try_wait(), Ok(None)), "retcdctl waits");
    let _ = (want.kill(), got.kill());
    let (want, got) = (
        want.wait_with_output().expect("etcdctl"),
        got.wait_with_output().expect("retcdctl"),
    );
    let n = |b: &[u8]| normalize(&String::from_utf8_lossy(b), &files);
    assert_eq!(n(&got.stdout), n(&want.stdout));
    assert_eq!(n(&got.stderr), n(&want.stderr));
    // a refusal from the server
    let p = Pair::start();
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "u:pw"],
        &["auth", "enable"],
    ] {
        p.check(args);
    }
    let (fa, fb) = (dir.path().join("auth-a.db"), dir.path().join("auth-b.db"));
    let want = p.a.run(
        ETCDCTL,
        &["--user=u:pw", "snapshot", "save", &fa.display().to_string()],
        "",
    );
    let got = p.b.run(
        RETCDCTL,
        &["--user=u:pw", "snapshot", "save", &fb.display().to_string()],
        "",
    );
    let subst = [
        (p.b.endpoint(), p.a.endpoint()),
        (fb.display().to_string(), fa.display().to_string()),
    ];
    compare(&["--user=u:pw", "snapshot", "save"], &want, &got, &subst);
    assert_eq!(got.status.code(), Some(5));
    p.check(&["--user=root:rootpw", "auth", "disable"]);
    let missing = dir.path().join("missing/x.db").display().to_string();
    p.check(&["snapshot", "save", &missing]);
    let mode = |f: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(f).expect("snapshot").permissions().mode() & 0o777
    };
    let want =
        p.a.run(ETCDCTL, &["snapshot", "save", &fa.display().to_string()], "");
    let got =
        p.b.run(RETCDCTL, &["snapshot", "save", &fb.display().to_string()], "");
    compare(&["snapshot", "save"], &want, &got, &subst);
    assert_eq!((mode(&fb), mode(&fa)), (0o600, 0o600));
}

/// An active alarm (NOSPACE: etcd with a one-byte quota refuses the first write) in every
/// format: the list, the status with its error (a long table cell, wrapped), the health
/// check (etcdctl 3.4 does not look at alarms) and the disarm. The raft index counts
/// internal entries and is masked, as in `cluster_and_maintenance_commands`.
#[test]
fn alarms_in_every_format() {
    let p = Pair::start_with(&["--quota-backend-bytes=1"]);
    p.check(&["put", "a", "b"]);
    let cells = Regex::new(r"\| +\d+ \| +\d+ \| ").expect("regex");
    let size = Regex::new(r"\| +\d+ kB \|").expect("regex");
    for w in FORMATS {
        // etcdctl 3.4 crashes (nil header) printing alarms in the fields format
        if w != "fields" {
            p.check(&["-w", w, "alarm", "list"]);
        }
        // masked: the raft indexes, and the size in use (two bbolt files grow apart); the
        // table's index columns are as wide as their headers
        if w == "table" {
            p.check_fixed(&["-w", w, "endpoint", "status"], |_, t| {
                let t = cells.replace_all(t, "| N | N | ");
                size.replace_all(&t, "| S |").into_owned()
            });
        } else {
            p.check_masked(
                &["-w", w, "endpoint", "status"],
                &[
                    r#"("raftIndex":|"raftAppliedIndex":|"RaftIndex" : |"RaftAppliedIndex" : )\d+"#,
                    r#"("dbSize":|"dbSizeInUse":|"DBSize" : |"DBSizeInUse" : )\d+"#,
                    r"(, )\d+ kB(, true)",
                    r"(, false, 2, )\d+, \d+",
                ],
            );
        }
        if w != "table" {
            p.check(&["-w", w, "endpoint", "health"]);
        }
        p.check(&["-w", w, "put", "k", "v"]);
    }
    p.check(&["alarm", "disarm"]);
    p.check(&["alarm", "list"]);
}

/// `--endpoints` is pflag's list flag: each occurrence's comma-separated values (a CSV
/// record: quotes, no trimming) are appended, the first replacing the default, from every
/// level of the command line; an empty value adds nothing and no endpoint at all is
/// clientv3's error (exit 2). The endpoint commands dial the endpoints as given, the other
/// commands trimmed. `member add/update --peer-urls` are plain strings: the last one wins.
#[test]
fn list_flags_append_as_pflag_does() {
    let p = Pair::start();
    p.check(&["put", "k", "v"]);
    let dead = format!("127.0.0.1:{}", free_port());
    let dead2 = format!("127.0.0.1:{}", free_port());
    let dead_flag = format!("--endpoints={dead}");
    let both = format!("--endpoints={{EP}},{dead2}");
    for args in [
        // the healthy endpoint answers first, the dead one at the deadline (1 s); the
        // status of each endpoint is asked in turn
        &[
            &dead_flag,
            "--endpoints={EP}",
            "-w",
            "json",
            "endpoint",
            "health",
            "--command-timeout=1s",
        ][..],
        // (two dead endpoints' health checks end together: in no fixed order)
        &[
            &dead_flag,
            "endpoint",
            "--endpoints={EP}",
            "health",
            "--command-timeout=1s",
        ],
        &[&dead_flag, "endpoint", &both, "status", "--command-timeout=1s"],
        &[
            "endpoint",
            &dead_flag,
            "health",
            "--endpoints",
            "{EP}",
            "--command-timeout=1s",
            "-w",
            "json",
        ],
        &[
            &dead_flag,
            "--endpoints={EP}",
            "-w",
            "fields",
            "endpoint",
            "status",
            "--command-timeout=1s",
        ],
        &["--endpoints={EP}", "--endpoints=", "get", "k"],
        &["--endpoints=", "--endpoints={EP}", "get", "k"],
        &["--endpoints=\"{EP}\"", "get", "k"],
        &["--endpoints= {EP} ", "get", "k"],
        &["--endpoints=", "get", "k"],
        &["--endpoints=", "-w", "json", "endpoint", "health"],
        &["--endpoints=", "endpoint", "status"],
        &["--endpoints=", "defrag"],
        &["--endpoints=", "move-leader", "1"],
        &["--endpoints=", "snapshot", "save", "/nonexistent/x.db"],
        &["--endpoints=,", "--command-timeout=300ms", "get", "k"],
        &["--endpoints=a\"b", "get", "k"],
        &["--endpoints=\"a", "--endpoints={EP}", "get", "k"],
    ] {
        p.check_own(args, &[]);
    }
    // ETCDCTL_ENDPOINTS is read the same way; one pflag refuses leaves the default
    for value in ["\"{EP}\"", "a\"b", ""] {
        let a = value.replace("{EP}", &p.a.endpoint());
        let b = value.replace("{EP}", &p.b.endpoint());
        let env = |v: &str| vec![("ETCDCTL_ENDPOINTS".to_string(), v.to_string())];
        let run = |e: &Etcd, tool: &str, v: &str| {
            e.command(tool, &["--command-timeout=300ms", "get", "k"])
                .envs(env(v))
                .stdin(Stdio::null())
                .output()
                .expect("run client")
        };
        let (want, got) = (run(&p.a, ETCDCTL, &a), run(&p.b, RETCDCTL, &b));
        compare(&[value], &want, &got, &[(p.b.endpoint(), p.a.endpoint())]);
    }
    // plain string flags: the last occurrence wins
    p.check(&[
        "member",
        "add",
        "x",
        "--peer-urls=ftp://a:1",
        "--peer-urls=http://a",
    ]);
    p.check(&[
        "member",
        "add",
        "x",
        "--peer-urls=http://a",
        "--peer-urls=ftp://a:1",
    ]);
    p.check(&[
        "member",
        "update",
        "1234",
        "--peer-urls=http://a",
        "--peer-urls=ftp://a:1",
    ]);
}

/// Empty words before a command's name are its arguments (cobra passes over them to find
/// the command and leaves them to it); a group given only empty words prints its usage.
#[test]
fn empty_words_before_the_command() {
    let p = Pair::start();
    p.check(&["put", "k", "v"]);
    for args in [
        &["", "get", "k"][..],
        &["", "", "get", "k"],
        &["get", "", "", "k"],
        &["", "get", "", "k"],
        &["", "", "", "get"],
        &["", "put"],
        &["", "put", "k"],
        &["", "-w", "json", "get", "k"],
        &["lease", "", "grant", "10"],
        &["", "lease", "", "", "grant", "10"],
        &["", "lease"],
        &["", "version"],
        &["", "bogus"],
        &["", "endpoint", "", "hashkv"],
    ] {
        p.check(args);
    }
    // with the endpoint on the command line, and also in the environment (fatal)
    p.check_own(&["--endpoints={EP}", "", "get", "k"], &[]);
    p.check_own(&["", "--endpoints={EP}", "get", "k"], &[]);
    let want =
        p.a.run(ETCDCTL, &["--endpoints", &p.a.endpoint(), "", "get", "k"], "");
    let got =
        p.b.run(RETCDCTL, &["--endpoints", &p.b.endpoint(), "", "get", "k"], "");
    compare(
        &["--endpoints", "", "get"],
        &want,
        &got,
        &[(p.b.endpoint(), p.a.endpoint())],
    );
}

/// A command line and the variables it runs with.
type EnvCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

/// `ETCDCTL_*` variables as etcdctl reads them when it makes its client: a value pflag
/// cannot parse is dropped silently (the flag is zero or false, `--endpoints` keeps its
/// default), a variable no flag of the command has is warned about (capnslog), one of a
/// flag also on the command line is fatal, in the environment's order; `--command-timeout`
/// from the environment counts only for the commands that read it after making their
/// client; `endpoint` commands take `ETCDCTL_CLUSTER`.
#[test]
fn environment_variables_as_etcdctl_reads_them() {
    let p = Pair::start();
    p.check(&["put", "k", "v"]);
    let env_cases: &[EnvCase] = &[
        (&["get", "k"], &[("ETCDCTL_FOO", "1"), ("ETCDCTL_BAR", "")]),
        (
            &["get", "k"],
            &[("ETCDCTL_PREFIX", "true"), ("ETCDCTL_WATCH_KEY", "x")],
        ),
        (&["get", "k"], &[("ETCDCTL_DIAL_TIMEOUT", "")]),
        (&["get"], &[("ETCDCTL_FOO", "1")]),
        (&["version"], &[("ETCDCTL_FOO", "1")]),
        (
            &["-w", "json", "get", "k"],
            &[("ETCDCTL_WRITE_OUT", "xml"), ("ETCDCTL_FOO", "1")],
        ),
        (
            &["get", "k"],
            &[("ETCDCTL_WRITE_OUT", "xml"), ("ETCDCTL_FOO", "1")],
        ),
        (&["get", "k"], &[("ETCDCTL_HEX", "maybe")]),
        (&["get", "k"], &[("ETCDCTL_HEX", "1")]),
        (&["get", "k"], &[("ETCDCTL_DIAL_TIMEOUT", "abc")]),
        (&["get", "k"], &[("ETCDCTL_DIAL_TIMEOUT", "5")]),
        (
            &["get", "k"],
            &[
                ("ETCDCTL_KEEPALIVE_TIME", "x"),
                ("ETCDCTL_KEEPALIVE_TIMEOUT", "y"),
            ],
        ),
        (&["get", "k"], &[("ETCDCTL_COMMAND_TIMEOUT", "5")]),
        (&["put", "k", "w"], &[("ETCDCTL_COMMAND_TIMEOUT", "1ns")]),
        (&["endpoint", "health"], &[("ETCDCTL_COMMAND_TIMEOUT", "5")]),
        (
            &["-w", "json", "endpoint", "status"],
            &[("ETCDCTL_COMMAND_TIMEOUT", "abc")],
        ),
        (&["endpoint", "hashkv"], &[("ETCDCTL_COMMAND_TIMEOUT", "0")]),
        (&["compaction", "2"], &[("ETCDCTL_COMMAND_TIMEOUT", "abc")]),
        (&["defrag"], &[("ETCDCTL_COMMAND_TIMEOUT", "abc")]),
        (&["move-leader", "1"], &[("ETCDCTL_COMMAND_TIMEOUT", "abc")]),
        (
            &["--command-timeout=1s", "get", "k"],
            &[("ETCDCTL_INSECURE_TRANSPORT", "x")],
        ),
        (&["endpoint", "health"], &[("ETCDCTL_CLUSTER", "true")]),
        (&["endpoint", "health"], &[("ETCDCTL_CLUSTER", "maybe")]),
        (
            &["endpoint", "health", "--cluster"],
            &[("ETCDCTL_CLUSTER", "true")],
        ),
        (
            &["endpoint", "--cluster=false", "status"],
            &[("ETCDCTL_CLUSTER", "")],
        ),
        (&["defrag"], &[("ETCDCTL_CLUSTER", "true")]),
        // the environment's order (the test's variables come sorted): warnings, then the
        // conflict, which ends the process
        (
            &["--dial-timeout=2s", "get", "k"],
            &[
                ("ETCDCTL_A", "1"),
                ("ETCDCTL_DIAL_TIMEOUT", "1s"),
                ("ETCDCTL_Z", "2"),
            ],
        ),
    ];
    for (args, env) in env_cases {
        p.check_env(args, "", env);
    }
    // a watch knows ETCDCTL_WATCH_KEY (here: a compacted revision ends it at once)
    p.check(&["put", "k", "x"]);
    p.check(&["compaction", "3"]);
    p.check_env(
        &["watch", "--rev=1"],
        "",
        &[("ETCDCTL_WATCH_KEY", "k"), ("ETCDCTL_FOO", "1")],
    );
    // an endpoint flag on the command line and an empty ETCDCTL_ENDPOINTS: a conflict too
    p.check_own(&["--endpoints={EP}", "get", "k"], &[("ETCDCTL_ENDPOINTS", "")]);
}

/// `tool args` with no server, no `ETCDCTL_*` variable but `env`.
fn run_plain(tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::run_clean(tool, args, env)
}

/// `defrag --data-dir` where no backend can be opened: etcd's backend's critical line on
/// stderr (etcdctl then panics: a Go stack trace, which retcdctl does not fake), exit 2.
#[test]
fn defrag_data_dir_refusals_like_etcdctl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    std::fs::create_dir(dir.path().join("empty")).expect("mkdir");
    std::fs::write(dir.path().join("file"), "x").expect("write");
    for data in [
        format!("{d}/missing"),
        format!("{d}/missing/"),
        format!("{d}//empty"),
        format!("{d}/empty/../missing/."),
        format!("{d}/file"),
    ] {
        // etcdctl's `defrag` takes (and ignores) arguments
        let with_arg = ["defrag", "--data-dir", &data, "extra"];
        for args in [&with_arg[..3], &with_arg[..]] {
            let (want, got) = (run_plain(ETCDCTL, args, &[]), run_plain(RETCDCTL, args, &[]));
            let first = |b: &[u8]| normalize(String::from_utf8_lossy(b).lines().next().unwrap_or(""), &[]);
            assert_eq!(first(&got.stderr), first(&want.stderr), "stderr of {args:?}");
            assert!(first(&got.stderr).contains(" C | mvcc/backend: cannot open database at "));
            assert_eq!(
                String::from_utf8_lossy(&got.stderr).lines().count(),
                1,
                "{args:?}"
            );
            assert_eq!(got.stdout, want.stdout, "stdout of {args:?}");
            assert_eq!(got.status.code(), want.status.code(), "exit code of {args:?}");
        }
    }
}

/// Offline defragmentation of a data dir a running server holds: both tools wait for the
/// server to release its file, with etcdctl's note after a second, then defragment it
/// (silently, exit 0); then neither looks at the global flags nor at the environment.
#[test]
fn defrag_data_dir_waits_for_the_server_like_etcdctl() {
    let Some(retcd) = retcd_bin() else {
        eprintln!("skipped: no retcd binary next to retcdctl and no RETCD_BIN");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let (e_data, r_data) = (dir.path().join("etcd"), dir.path().join("retcd"));
    let (etcd, server) = (Server::start_in(ETCD, &e_data), Server::start_in(&retcd, &r_data));
    let spawn = |tool: &str, data: &Path| {
        Command::new(tool)
            .env("ETCDCTL_API", "3")
            .env_remove("ETCDCTL_ENDPOINTS")
            .args(["defrag", "--data-dir"])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn defrag")
    };
    let (mut want, mut got) = (spawn(ETCDCTL, &e_data), spawn(RETCDCTL, &r_data));
    std::thread::sleep(Duration::from_millis(2500));
    assert!(matches!(want.try_wait(), Ok(None)), "etcdctl waits for etcd");
    assert!(matches!(got.try_wait(), Ok(None)), "retcdctl waits for retcd");
    etcd.stop();
    server.stop();
    let finish = |mut c: Child| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(c.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("the defragmentation did not end once the server stopped");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        c.wait_with_output().expect("defrag output")
    };
    let (want, got) = (finish(want), finish(got));
    let paths = [(r_data.display().to_string(), e_data.display().to_string())];
    compare(&["defrag", "--data-dir"], &want, &got, &paths);
    assert_eq!(got.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&got.stderr)
            .starts_with("waiting for etcd to close and release its lock on \"")
    );
    // offline: no client, so no output format, no endpoint and no variable is looked at
    for args in [
        &["-w", "xml", "--endpoints=", "defrag", "--data-dir", "DATA"][..],
        &["defrag", "--data-dir", "DATA", "--cluster", "extra"],
    ] {
        let with = |tool: &str, data: &Path| {
            let data = data.display().to_string();
            let args: Vec<&str> = args
                .iter()
                .map(|a| if *a == "DATA" { data.as_str() } else { a })
                .collect();
            run_plain(tool, &args, &[("ETCDCTL_FOO", "1"), ("ETCDCTL_WRITE_OUT", "xml")])
        };
        compare(args, &with(ETCDCTL, &e_data), &with(RETCDCTL, &r_data), &paths);
    }
}

/// What a client sees of a retcd's data, for comparing before and after a restart: the
/// keys and values, the revision, the hash of the history kept, the compaction.
fn retcd_state(endpoint: &str) -> Vec<String> {
    let run = |args: &[&str]| {
        let out = ctl(RETCDCTL, endpoint, args)
            .stdin(Stdio::null())
            .output()
            .expect("retcdctl");
        format!(
            "{args:?} -> {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).replace(endpoint, "EP"),
            normalize(
                &String::from_utf8_lossy(&out.stderr),
                &[(endpoint.to_string(), "EP".to_string())]
            )
        )
    };
    let json = ctl(RETCDCTL, endpoint, &["-w", "json", "get", "--prefix", ""])
        .output()
        .expect("retcdctl");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("get json");
    vec![
        format!("revision {}", v["header"]["revision"]),
        format!("kvs {}", v["kvs"]),
        run(&["get", "--prefix", ""]),
        run(&["endpoint", "hashkv"]),
        run(&["get", "--rev=2", "keep/a"]),
        run(&["get", "--rev=3", "--prefix", "bulk/"]),
    ]
}

/// `defrag --data-dir` on a stopped retcd's data dir: the server's own defragmentation
/// shrinks the file left by deletes and a compaction, and the restarted server has
/// everything it had.
#[test]
fn defrag_data_dir_of_a_stopped_retcd() {
    let Some(retcd) = retcd_bin() else {
        eprintln!("skipped: no retcd binary next to retcdctl and no RETCD_BIN");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Server::start_in(&retcd, &data);
    let ep = server.endpoint.clone();
    let ok = |args: &[&str], stdin: &str| {
        let mut child = ctl(RETCDCTL, &ep, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("retcdctl");
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(stdin.as_bytes()).expect("stdin");
        drop(pipe);
        assert!(child.wait().expect("retcdctl").success(), "{args:?}");
    };
    ok(&["put", "keep/a", "1"], "");
    ok(&["put", "keep/b", "2"], "");
    // 2000 keys of 4 kB in 20 transactions, then all deleted and compacted away
    let value = "v".repeat(4096);
    for b in 0..20 {
        let puts: String = (0..100)
            .map(|i| format!("put bulk/{b:02}/{i:03} {value}\n"))
            .collect();
        ok(&["txn"], &format!("\n{puts}\n\n"));
    }
    ok(&["put", "keep/a", "3"], "");
    ok(&["del", "--prefix", "bulk/"], "");
    let head = ctl(RETCDCTL, &ep, &["-w", "json", "get", "keep/a"])
        .output()
        .expect("get");
    let v: serde_json::Value = serde_json::from_slice(&head.stdout).expect("json");
    let rev = v["header"]["revision"].to_string();
    ok(&["compaction", "--physical", &rev], "");
    ok(&["put", "keep/c", "4"], "");
    let before = retcd_state(&ep);
    server.stop();

    let db = data.join("member/snap/db");
    let size_before = std::fs::metadata(&db).expect("db").len();
    let data_arg = data.display().to_string();
    let out = run_plain(RETCDCTL, &["defrag", "--data-dir", &data_arg], &[]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        (Some(0), "".into(), "".into())
    );
    let size_after = std::fs::metadata(&db).expect("db").len();
    assert!(
        size_after * 4 < size_before,
        "{size_before} -> {size_after} bytes"
    );
    assert!(!data.join("member/snap/db.defrag").exists());

    let server = Server::start_in(&retcd, &data);
    assert_eq!(retcd_state(&server.endpoint), before);
    // and it goes on: writes, reads, another defragmentation online
    ok_on(&server.endpoint, &["put", "keep/d", "5"]);
    ok_on(&server.endpoint, &["defrag"]);
    let out = ctl(
        RETCDCTL,
        &server.endpoint,
        &["get", "--prefix", "keep/", "--print-value-only"],
    )
    .output()
    .expect("get");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n2\n4\n5\n");
}

fn ok_on(endpoint: &str, args: &[&str]) {
    let out = ctl(RETCDCTL, endpoint, args)
        .stdin(Stdio::null())
        .output()
        .expect("retcdctl");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The parts of a `--debug` run's stderr: etcdctl's listing of the flags with the
/// environment's warnings (in order, timestamps masked); the distinct gRPC log messages
/// (`INFO: 2026/11/21 13:09:22 [core]...` without level and time); the other lines.
fn debug_parts(
    stderr: &[u8],
    ports: &[(String, String)],
) -> (String, std::collections::BTreeSet<String>, String) {
    let grpc =
        Regex::new(r"^(INFO|WARNING|ERROR): \d{4}/\d\d/\d\d \d\d:\d\d:\d\d (\[\w+\].*)$").expect("regex");
    let text = normalize(&String::from_utf8_lossy(stderr), ports);
    let (mut listing, mut logs, mut rest) = (String::new(), std::collections::BTreeSet::new(), String::new());
    for line in text.lines() {
        if let Some(c) = grpc.captures(line) {
            logs.insert(format!("{}: {}", &c[1], &c[2]));
        } else if line.starts_with("ETCDCTL_") || line.contains(" | pkg/flags: ") {
            listing.push_str(line);
            listing.push('\n');
        } else {
            rest.push_str(line);
            rest.push('\n');
        }
    }
    (listing, logs, rest)
}

/// `--debug` (or `ETCDCTL_DEBUG`): retcdctl lists every flag the command inherits as
/// etcdctl does (`ETCDCTL_<FLAG>=<value>`, sorted, after the environment's warnings: the
/// values pflag holds once the variables are applied, durations, lists, booleans as Go
/// prints them, `--user` and `--password` in clear), for every command that makes its
/// client configuration that way (not `endpoint health`); then gRPC's log lines, each one a
/// line etcdctl's gRPC printed in the same run (retcdctl prints only the events it goes
/// through: keep-alive adjusted, dialing, ready, failed); stdout and the other stderr lines
/// as etcdctl's.
#[test]
fn debug_lists_the_flags_as_etcdctl() {
    let p = Pair::start();
    p.check(&["put", "k", "v"]);
    p.check(&["put", "k", "w"]);
    p.check(&["compaction", "3"]);
    let dead = format!("127.0.0.1:{}", free_port());
    let dead_list = format!("--endpoints={{EP}},{dead}");
    let dead_first = format!("--endpoints={dead},{{EP}}");
    let ep_env = [("ETCDCTL_ENDPOINTS", "{EP}")];
    let cases: &[EnvCase] = &[
        (&["--debug", "get", "k"], &ep_env),
        (
            &["get", "k"],
            &[("ETCDCTL_ENDPOINTS", "{EP}"), ("ETCDCTL_DEBUG", "true")],
        ),
        (
            &["get", "k"],
            &[
                ("ETCDCTL_DEBUG", "1"),
                ("ETCDCTL_ENDPOINTS", "{EP}"),
                ("ETCDCTL_FOO", "x"),
            ],
        ),
        (
            &["get", "k"],
            &[("ETCDCTL_DEBUG", "yes"), ("ETCDCTL_ENDPOINTS", "{EP}")],
        ),
        (
            &[
                "--debug",
                "--user=root:pw",
                "--password=x",
                "-w",
                "json",
                "--hex",
                "--dial-timeout=1500ms",
                "--command-timeout=1m30s",
                "--keepalive-time=0",
                "--keepalive-timeout=-2s",
                "get",
                "k",
            ],
            &ep_env,
        ),
        (
            &["--debug", "--keepalive-time=11s", "get", "k"],
            &[
                ("ETCDCTL_COMMAND_TIMEOUT", "7s"),
                ("ETCDCTL_DIAL_TIMEOUT", "abc"),
                ("ETCDCTL_ENDPOINTS", "{EP}"),
                ("ETCDCTL_HEX", "maybe"),
                ("ETCDCTL_INSECURE_DISCOVERY", "0"),
            ],
        ),
        (&["--debug", &dead_first, "get", "k"], &[]),
        (&["--debug", "--endpoints=http://{EP}", "get", "k"], &[]),
        (
            &["--debug", "--endpoints= {EP}", "--endpoints=\"a,b\",", "get", "k"],
            &[],
        ),
        (
            &[
                "--debug",
                &dead_list,
                "--command-timeout=1s",
                "endpoint",
                "status",
            ],
            &[],
        ),
        (
            &["--debug", "-w", "json", "endpoint", "hashkv", "--cluster"],
            &ep_env,
        ),
        (&["--debug", "endpoint", "health"], &ep_env),
        (&["--debug", "watch", "--rev=1", "k"], &ep_env),
        (&["--debug", "member", "list"], &ep_env),
        (&["--debug", "-w", "xml", "get", "k"], &ep_env),
        (&["--debug", "--endpoints=", "get", "k"], &[]),
        (&["--debug", "version"], &ep_env),
        (
            &["--debug", "get", "k"],
            &[("ETCDCTL_DEBUG", "true"), ("ETCDCTL_ENDPOINTS", "{EP}")],
        ),
    ];
    let ports = [(p.b.endpoint(), p.a.endpoint())];
    for (args, env) in cases {
        let run = |e: &Etcd, tool: &str| {
            let ep = e.endpoint();
            let args: Vec<String> = args.iter().map(|a| a.replace("{EP}", &ep)).collect();
            let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.replace("{EP}", &ep))).collect();
            common::clean(tool)
                .args(&args)
                .envs(env)
                .stdin(Stdio::null())
                .output()
                .expect("run client")
        };
        let (want, got) = (run(&p.a, ETCDCTL), run(&p.b, RETCDCTL));
        let n = |b: &[u8]| normalize(&String::from_utf8_lossy(b), &ports);
        assert_eq!(n(&got.stdout), n(&want.stdout), "stdout of {args:?} {env:?}");
        assert_eq!(
            got.status.code(),
            want.status.code(),
            "exit code of {args:?} {env:?}"
        );
        let (want_listing, want_logs, want_rest) = debug_parts(&want.stderr, &ports);
        let (got_listing, got_logs, got_rest) = debug_parts(&got.stderr, &ports);
        assert_eq!(got_listing, want_listing, "the listing of {args:?} {env:?}");
        assert_eq!(got_rest, want_rest, "the rest of stderr of {args:?} {env:?}");
        // A dead endpoint's failure is a real event for retcdctl, which tries endpoints in
        // turn; etcdctl dials them all at once and may stop the dead one's dial before it
        // fails (timing), so only those lines may be missing from etcdctl's.
        let racy = |l: &&String| l.contains("TRANSIENT_FAILURE") || l.contains("createTransport failed");
        let unexplained: Vec<_> = got_logs.difference(&want_logs).filter(|l| !racy(l)).collect();
        assert!(
            unexplained.is_empty(),
            "gRPC lines etcdctl did not print for {args:?} {env:?}: {unexplained:#?}"
        );
        // the same outcome logged: connected (etcdctl dials every endpoint at once, so it
        // may log failures retcdctl, trying them in turn, never ran into), or failed
        let has = |logs: &std::collections::BTreeSet<String>, key: &str| logs.iter().any(|l| l.contains(key));
        let ready = "Channel Connectivity change to READY";
        assert_eq!(has(&got_logs, ready), has(&want_logs, ready), "{args:?} {env:?}");
        if !has(&want_logs, ready) {
            let failed = "createTransport failed";
            assert_eq!(
                has(&got_logs, failed),
                has(&want_logs, failed),
                "{args:?} {env:?}"
            );
        }
    }
}

/// `migrate` as etcdctl 3.4 answers it where no v2 store can be read: a missing data dir,
/// `member/snap` or WAL dir, a file where a directory should be, a WAL dir without WAL files
/// (each other file ignored with etcdctl's warning, `wal: file not found`), a transformer Go
/// cannot start (before anything else) — same stdout, stderr and exit code. A retcd data dir
/// (a running or stopped retcd's, when its binary is built) has no v2 store: `no v2 keys to
/// migrate`, exit 0, as etcdctl says of an etcd data dir without v2 keys, nothing changed.
#[test]
fn migrate_like_etcdctl() {
    // etcdctl's migrate writes into what it finds (an empty backend file, broken snapshots
    // renamed): each tool gets its own copy of the same tree
    let dir = tempfile::tempdir().expect("temp dir");
    let tree = |root: &Path| {
        for d in [
            "snap-only/member/snap",
            "empty/member/snap",
            "empty/member/wal",
            "odd/member/snap",
            "odd/member/wal",
            "file/member",
        ] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        for f in [
            "odd/member/wal/b",
            "odd/member/wal/a",
            "odd/member/snap/x",
            "file/member/snap",
        ] {
            std::fs::write(root.join(f), "").expect("write");
        }
    };
    let (ta, tb) = (dir.path().join("a"), dir.path().join("b"));
    tree(&ta);
    tree(&tb);
    let cases: &[&[&str]] = &[
        &["migrate", "--data-dir", "{D}/missing"],
        &["migrate", "--data-dir", "{D}/snap-only"],
        &[
            "migrate",
            "--data-dir",
            "{D}/snap-only",
            "--wal-dir",
            "{D}/empty/member/wal",
        ],
        &["migrate", "--data-dir", "{D}/empty"],
        &["migrate", "--data-dir", "{D}/odd", "--no-ttl", "extra"],
        &["migrate", "--data-dir", "{D}/file"],
        &["migrate", "--data-dir", "{D}//empty/../missing/"],
        &["migrate"],
        &[
            "migrate",
            "--data-dir",
            "{D}/empty",
            "--transformer",
            "{D}/nothing",
        ],
        &[
            "migrate",
            "--data-dir",
            "{D}/empty",
            "--transformer",
            "no-such-transformer",
        ],
        &["migrate", "--data-dir", "{D}/empty", "--transformer", "{D}/odd"],
        &["-w", "xml", "--endpoints=", "migrate", "--data-dir", "{D}/empty"],
    ];
    for args in cases {
        let run = |tool: &str, root: &Path| {
            let d = root.display().to_string();
            let args: Vec<String> = args.iter().map(|a| a.replace("{D}", &d)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            common::clean(tool)
                .args(&args)
                .env("ETCDCTL_FOO", "1")
                .current_dir(root)
                .stdin(Stdio::null())
                .output()
                .expect("run migrate")
        };
        let (want, got) = (run(ETCDCTL, &ta), run(RETCDCTL, &tb));
        let paths = [(tb.display().to_string(), ta.display().to_string())];
        compare(args, &want, &got, &paths);
        assert_ne!(got.status.code(), Some(0), "{args:?}");
    }
    let Some(retcd) = retcd_bin() else {
        eprintln!("skipped the retcd data dirs: no retcd binary next to retcdctl and no RETCD_BIN");
        return;
    };
    let data = dir.path().join("retcd");
    let server = Server::start_in(&retcd, &data);
    ok_on(&server.endpoint, &["put", "k", "v"]);
    let migrate = || {
        let d = data.display().to_string();
        let out = run_plain(RETCDCTL, &["migrate", "--data-dir", &d], &[]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let said = (
        Some(0),
        "using default transformer\nno v2 keys to migrate\n".to_string(),
        String::new(),
    );
    assert_eq!(migrate(), said, "a running retcd's data dir");
    server.stop();
    let db = data.join("member/snap/db");
    let before = std::fs::read(&db).expect("db");
    assert_eq!(migrate(), said, "a stopped retcd's data dir");
    assert_eq!(std::fs::read(&db).expect("db"), before, "nothing changed");
    // a restored member has no WAL yet: its backend says it is retcd's
    for f in std::fs::read_dir(data.join("member/wal")).expect("wal dir") {
        std::fs::remove_file(f.expect("entry").path()).expect("rm");
    }
    assert_eq!(migrate(), said, "a retcd data dir without WAL");
}
