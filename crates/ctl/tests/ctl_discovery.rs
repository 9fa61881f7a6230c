//! `--discovery-srv` end to end, against etcdctl. Both tools look SRV records up through
//! `/etc/resolv.conf` (etcdctl with Go's resolver, retcdctl with its own), so the test runs
//! itself again in new user, mount and network namespaces (`unshare -Urmn`): there it mounts
//! a `resolv.conf` of its own over `/etc/resolv.conf`, answers DNS on 127.0.0.1:53 from a
//! table, and starts a plain and a TLS etcd; the machine's DNS setup is never touched.
//! Without `unshare` (or `ip`, `mount`) the test says so and does nothing.

mod common;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::process::{Command, Output, Stdio};

use common::{ETCD, ETCDCTL, RETCDCTL, Server, TlsFiles};
use regex::Regex;

const INSIDE: &str = "RETCDCTL_TEST_IN_NAMESPACES";

#[derive(Clone)]
enum Rec {
    Srv(u16, u16, &'static str),
    A([u8; 4]),
}

/// A DNS name in wire form.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.').filter(|l| !l.is_empty()) {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Answers DNS questions from `table` (names without the trailing dot): SRV and A records,
/// NXDOMAIN for unknown names, SERVFAIL for names in `failing`.
fn serve_dns(sock: UdpSocket, table: HashMap<String, Vec<Rec>>, failing: Vec<String>) {
    let mut buf = [0u8; 512];
    while let Ok((n, from)) = sock.recv_from(&mut buf) {
        let q = &buf[..n];
        let mut at = 12;
        let mut labels = Vec::new();
        while at < n && q[at] != 0 {
            let l = usize::from(q[at]);
            labels.push(String::from_utf8_lossy(&q[at + 1..at + 1 + l]).to_lowercase());
            at += 1 + l;
        }
        let qtype = u16::from_be_bytes([q[at + 1], q[at + 2]]);
        let question = &q[12..at + 5];
        let name = labels.join(".");
        let mut answers = Vec::new();
        for r in table.get(&name).into_iter().flatten() {
            let (kind, data) = match r {
                Rec::Srv(prio, port, target) if qtype == 33 => {
                    let mut d = prio.to_be_bytes().to_vec();
                    d.extend_from_slice(&[0, 0]);
                    d.extend_from_slice(&port.to_be_bytes());
                    d.extend_from_slice(&wire_name(target));
                    (33u16, d)
                }
                Rec::A(ip) if qtype == 1 => (1u16, ip.to_vec()),
                _ => continue,
            };
            let mut a = wire_name(&name);
            a.extend_from_slice(&kind.to_be_bytes());
            a.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            a.extend_from_slice(&(data.len() as u16).to_be_bytes());
            a.extend_from_slice(&data);
            answers.push(a);
        }
        let rcode = if failing.contains(&name) {
            2
        } else if table.contains_key(&name) {
            0
        } else {
            3
        };
        let mut reply = q[..2].to_vec();
        reply.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
        reply.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        reply.extend_from_slice(&[0, 0, 0, 0]);
        reply.extend_from_slice(question);
        answers.iter().for_each(|a| reply.extend_from_slice(a));
        let _ = sock.send_to(&reply, from);
    }
}

fn works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn discovery_srv_like_etcdctl() {
    if std::env::var_os(INSIDE).is_some() {
        inside_namespaces();
        return;
    }
    if !works("unshare", &["-Urmn", "true"]) || !works("ip", &["-V"]) || !works("mount", &["--version"]) {
        eprintln!("skipped: needs unshare -Urmn (user namespaces), ip and mount");
        return;
    }
    let me = std::env::current_exe().expect("test binary");
    let out = Command::new("unshare")
        .arg("-Urmn")
        .arg(me)
        .args([
            "--exact",
            "discovery_srv_like_etcdctl",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, "1")
        .output()
        .expect("unshare");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success() && text(&out.stdout).contains("1 passed"),
        "the test in its namespaces failed:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// What may differ between two runs: log times, client ids, durations.
fn normalize(s: &str) -> String {
    let rules = [
        (r#""ts":"[^"]*""#, r#""ts":T"#),
        (r#""ts":[0-9.e+]+"#, r#""ts":T"#),
        (r"client-[0-9a-f-]{36}", "client-U"),
        (r"took = [0-9.]+[µnm]?s", "took = D"),
    ];
    rules.iter().fold(s.to_string(), |s, (re, to)| {
        Regex::new(re).expect("regex").replace_all(&s, *to).into_owned()
    })
}

fn run(tool: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    common::run_clean(tool, args, env)
}

fn same(args: &[&str], env: &[(&str, &str)]) -> String {
    let (want, got) = (run(ETCDCTL, args, env), run(RETCDCTL, args, env));
    let t = |b: &[u8]| normalize(&String::from_utf8_lossy(b));
    assert_eq!(t(&got.stdout), t(&want.stdout), "stdout of {args:?}");
    assert_eq!(t(&got.stderr), t(&want.stderr), "stderr of {args:?}");
    assert_eq!(got.status.code(), want.status.code(), "exit code of {args:?}");
    t(&want.stdout) + &t(&want.stderr)
}

fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn inside_namespaces() {
    assert!(works("ip", &["link", "set", "lo", "up"]), "ip link set lo up");
    let dir = tempfile::tempdir().expect("temp dir");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\n").expect("write resolv.conf");
    let resolv = resolv.to_str().expect("path").to_string();
    assert!(
        works("mount", &["--bind", &resolv, "/etc/resolv.conf"]),
        "mount resolv.conf"
    );

    // a plain etcd, and one serving https with client certificates (its certificate names
    // etcd2.tls.test and 127.0.0.1, not the domain tls.test)
    let mut ca = retcd_tls::test_pki::TestCa::new(dir.path(), "ca");
    let server = ca.issue("server", "server", &["etcd2.tls.test", "127.0.0.1"]);
    let client = ca.issue("client", "client", &[]);
    let tls = TlsFiles {
        ca: ca.cert.clone(),
        server_cert: server.cert,
        server_key: server.key,
        client_cert: client.cert,
        client_key: client.key,
    };
    let plain = Server::start(ETCD);
    let secure = Server::start_tls(ETCD, &tls);
    let (p1, p2) = (port_of(&plain.endpoint), port_of(&secure.endpoint));
    let dead = common::free_port();

    let localhost = Rec::A([127, 0, 0, 1]);
    let table: HashMap<String, Vec<Rec>> = [
        (
            "_etcd-client._tcp.plain.test",
            vec![Rec::Srv(0, p1, "etcd1.plain.test.")],
        ),
        ("etcd1.plain.test", vec![localhost.clone()]),
        (
            "_etcd-client-ssl._tcp.tls.test",
            vec![Rec::Srv(0, p2, "etcd2.tls.test.")],
        ),
        ("etcd2.tls.test", vec![localhost]),
        (
            "_etcd-client-ssl._tcp.both.test",
            vec![Rec::Srv(0, p2, "etcd2.tls.test.")],
        ),
        (
            "_etcd-client._tcp.both.test",
            vec![
                Rec::Srv(20, dead, "etcd1.plain.test."),
                Rec::Srv(10, p1, "etcd1.plain.test."),
            ],
        ),
        (
            "_etcd-client-blue._tcp.named.test",
            vec![Rec::Srv(0, p1, "etcd1.plain.test.")],
        ),
        (
            "_etcd-client._tcp.dead.test",
            vec![Rec::Srv(0, dead, "etcd1.plain.test.")],
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let failing = vec![
        "_etcd-client-ssl._tcp.broken.test".to_string(),
        "_etcd-client._tcp.broken.test".to_string(),
    ];
    let sock = UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 in the namespace");
    std::thread::spawn(move || serve_dns(sock, table, failing));

    let certs = tls.client_flags();
    let c: Vec<&str> = certs.iter().map(String::as_str).collect();
    let with_certs = |args: &[&'static str]| -> Vec<&str> { [&c[..], args].concat() };
    let snap = dir.path().join("snap.db");
    let snap = snap.to_str().expect("path");

    same(&["-d", "plain.test", "put", "k", "v"], &[]);
    assert_eq!(same(&["-d", "plain.test", "get", "k"], &[]), "k\nv\n");
    same(&with_certs(&["-d", "tls.test", "put", "k", "tls"]), &[]);
    assert_eq!(
        same(&with_certs(&["-d", "tls.test", "get", "k"]), &[]),
        "k\ntls\n"
    );
    // the endpoints found, in order: https first, then by priority; targets keep their dot
    let listed = same(&["-d", "both.test", "snapshot", "save", snap], &[]);
    assert!(
        listed.contains(&format!(
            "[https://etcd2.tls.test.:{p2} http://etcd1.plain.test.:{p1} http://etcd1.plain.test.:{dead}]"
        )),
        "{listed}"
    );
    // the first endpoint names the client's target when it cannot be reached
    same(&["-d", "dead.test", "--command-timeout=1s", "get", "k"], &[]);
    // nothing found, or the DNS server failing: Go's resolver errors
    same(&["-d", "none.test", "get", "k"], &[]);
    same(&["-d", "broken.test", "get", "k"], &[]);
    // a service name
    same(
        &["-d", "named.test", "--discovery-srv-name=blue", "get", "k"],
        &[],
    );
    same(&["--discovery-srv=named.test", "get", "k"], &[]);
    // --insecure-discovery=false: http endpoints are dropped (then --endpoints is used),
    // and the servers' certificates must name the domain
    same(
        &[
            "-d",
            "plain.test",
            "--insecure-discovery=false",
            "--command-timeout=1s",
            "get",
            "k",
        ],
        &[],
    );
    same(
        &with_certs(&[
            "-d",
            "tls.test",
            "--insecure-discovery=false",
            "--command-timeout=1s",
            "get",
            "k",
        ]),
        &[],
    );
    // discovery wins over --endpoints; ETCDCTL_DISCOVERY_SRV works as the flag
    same(&["-d", "plain.test", "--endpoints=127.0.0.1:9", "get", "k"], &[]);
    same(&["get", "k"], &[("ETCDCTL_DISCOVERY_SRV", "plain.test")]);
    // the endpoint commands use --endpoints unless --cluster asks the cluster found
    same(
        &["-d", "plain.test", "--command-timeout=1s", "endpoint", "health"],
        &[],
    );
    same(&["-d", "plain.test", "endpoint", "health", "--cluster"], &[]);
    same(
        &with_certs(&["-d", "tls.test", "endpoint", "hashkv", "--cluster"]),
        &[],
    );
    same(&with_certs(&["-d", "tls.test", "member", "list"]), &[]);
}
