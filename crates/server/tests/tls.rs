//! TLS end to end (issue 8): retcd started with certificates the test makes (a CA, a server
//! certificate for 127.0.0.1/localhost, client certificates with a CN), driven with the real
//! etcdctl 3.4 and with retcdctl: server TLS, mutual TLS, CRLs, `--auto-tls`, plain-text
//! clients refused by TLS-only listeners, http and https listeners side by side, cipher and
//! version settings, a 3-member cluster with peer mutual TLS, peers refused when their client
//! certificate does not name their address (and `--experimental-peer-skip-client-san-verification`),
//! compared with real etcd, and one error compared with real etcd in the same situation.
//!
//! Run: `cargo test -p retcd-server --test tls`

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Output, Ports, ServerKind, etcdctl_with};
use retcd_tls::test_pki::{Issued, TestCa};

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// A test PKI: a CA, a server certificate for 127.0.0.1 and localhost, client "alice".
struct Pki {
    _dir: tempfile::TempDir,
    ca: TestCa,
    server: Issued,
    alice: Issued,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("retcd-tls-pki-")
            .tempdir()
            .unwrap();
        let mut ca = TestCa::new(dir.path(), "ca");
        let server = ca.issue("server", "retcd-server", &["127.0.0.1", "localhost"]);
        let alice = ca.issue("alice", "alice", &[]);
        Pki {
            _dir: dir,
            ca,
            server,
            alice,
        }
    }

    /// `--cert-file --key-file` of the server certificate.
    fn server_flags(&self) -> Vec<String> {
        vec![
            "--cert-file".into(),
            s(&self.server.cert),
            "--key-file".into(),
            s(&self.server.key),
        ]
    }

    /// The server flags plus `--client-cert-auth --trusted-ca-file`.
    fn mtls_flags(&self) -> Vec<String> {
        let mut f = self.server_flags();
        f.extend([
            "--client-cert-auth".into(),
            "--trusted-ca-file".into(),
            s(&self.ca.cert),
        ]);
        f
    }

    /// etcdctl's `--cacert --cert --key` for `who`.
    fn client_flags(&self, who: &Issued) -> Vec<String> {
        vec![
            format!("--cacert={}", s(&self.ca.cert)),
            format!("--cert={}", s(&who.cert)),
            format!("--key={}", s(&who.key)),
        ]
    }

    fn cacert_flag(&self) -> Vec<String> {
        vec![format!("--cacert={}", s(&self.ca.cert))]
    }
}

/// A server process (retcd, or etcd for comparisons) with `https://` client URLs (and an
/// extra `http://` one with `plain_too`), killed on drop.
struct Node {
    kind: ServerKind,
    child: Child,
    dir: tempfile::TempDir,
    ports: Arc<Ports>,
    plain: Option<Arc<Ports>>,
}

impl Node {
    /// Starts `kind` with `flags` and waits until etcdctl with `ready` (its TLS flags) reads.
    fn start(kind: ServerKind, flags: &[String], ready: &[String]) -> Node {
        Node::start_with(kind, flags, ready, false)
    }

    fn start_with(kind: ServerKind, flags: &[String], ready: &[String], plain_too: bool) -> Node {
        let ports = Ports::reserve();
        let plain = plain_too.then(Ports::reserve);
        let dir = tempfile::Builder::new()
            .prefix(&format!("retcd-tls-{}-", kind.name()))
            .tempdir()
            .unwrap();
        let https = format!("https://127.0.0.1:{}", ports.client());
        let mut listen = https.clone();
        if let Some(p) = &plain {
            listen = format!("{listen},{}", p.client_url());
        }
        let log = File::create(dir.path().join("server.log")).unwrap();
        let mut cmd = Command::new(kind.binary());
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCD_") || k.starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(["--name", "default", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &listen, "--advertise-client-urls", &https])
            .args(["--listen-peer-urls", &ports.peer_url()])
            .args(["--initial-advertise-peer-urls", &ports.peer_url()])
            .args(["--initial-cluster", &format!("default={}", ports.peer_url())])
            .args(flags)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("start server");
        let mut node = Node {
            kind,
            child,
            dir,
            ports,
            plain,
        };
        let deadline = Instant::now() + common::READY_TIMEOUT;
        loop {
            if let Ok(Some(st)) = node.child.try_wait() {
                panic!("{} exited during start-up ({st}):\n{}", kind.name(), node.log());
            }
            let mut args: Vec<&str> = ready.iter().map(String::as_str).collect();
            args.extend(["get", "ready-probe"]);
            let out = etcdctl_with(&node.endpoint(), "1s", "2s", &args, None);
            if out.success() {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "{} with TLS not ready: {}\n{}",
                kind.name(),
                out.stderr,
                node.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.client())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// etcdctl at the https endpoint with `tls` flags.
    fn ctl(&self, tls: &[String], args: &[&str]) -> Output {
        let mut a: Vec<&str> = tls.iter().map(String::as_str).collect();
        a.extend_from_slice(args);
        etcdctl_with(&self.endpoint(), "2s", "3s", &a, None)
    }

    fn ok(&self, tls: &[String], args: &[&str]) -> String {
        let out = self.ctl(tls, args);
        assert!(
            out.success(),
            "{}: etcdctl {args:?} failed: {}{}\n{}",
            self.kind.name(),
            out.stdout,
            out.stderr,
            self.log()
        );
        out.stdout
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- {} log -----\n{}", self.kind.name(), self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn server_tls_with_etcdctl() {
    let pki = Pki::new();
    let node = Node::start(ServerKind::Retcd, &pki.server_flags(), &pki.cacert_flag());
    let ca = pki.cacert_flag();
    assert_eq!(node.ok(&ca, &["put", "greeting", "hello"]).trim(), "OK");
    assert_eq!(
        node.ok(&ca, &["get", "greeting", "--print-value-only"]).trim(),
        "hello"
    );
    // `endpoint status` puts the endpoint URL in :authority; the shim works over TLS too
    assert!(
        node.ok(&ca, &["endpoint", "status"])
            .starts_with(&node.endpoint())
    );
    // without the CA the server's certificate is not trusted
    let out = node.ctl(&[], &["--insecure-transport=false", "get", "greeting"]);
    assert!(!out.success());
    // a plain-text client on the TLS-only port gets nowhere
    let plain = etcdctl_with(
        &format!("http://127.0.0.1:{}", node.ports.client()),
        "1s",
        "2s",
        &["get", "greeting"],
        None,
    );
    assert!(
        !plain.success(),
        "plain text answered on a TLS port: {}",
        plain.stdout
    );
    assert!(
        plain.stderr.contains("context deadline exceeded"),
        "{}",
        plain.stderr
    );
}

#[test]
fn mutual_tls_refuses_clients_without_a_good_certificate() {
    let mut pki = Pki::new();
    let bob = pki.ca.issue("bob", "bob", &[]);
    let crl = pki.ca.crl("crl", &[&bob]);
    let mut flags = pki.mtls_flags();
    flags.extend(["--client-crl-file".into(), s(&crl)]);
    let node = Node::start(ServerKind::Retcd, &flags, &pki.client_flags(&pki.alice));
    let alice = pki.client_flags(&pki.alice);
    node.ok(&alice, &["put", "k", "v"]);
    assert_eq!(node.ok(&alice, &["get", "k", "--print-value-only"]).trim(), "v");
    // no certificate
    let out = node.ctl(&pki.cacert_flag(), &["get", "k"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr.contains("Error: context deadline exceeded"),
        "{}",
        out.stderr
    );
    // a certificate from another CA
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = TestCa::new(other_dir.path(), "other");
    let mallory = other.issue("mallory", "root", &[]);
    assert!(!node.ctl(&pki.client_flags(&mallory), &["get", "k"]).success());
    // a revoked certificate
    assert!(!node.ctl(&pki.client_flags(&bob), &["get", "k"]).success());
    assert!(node.log().contains("rejected connection"));
}

/// As etcd 3.4: `--trusted-ca-file` without `--client-cert-auth` also requires client
/// certificates.
#[test]
fn trusted_ca_alone_requires_client_certificates() {
    let pki = Pki::new();
    let mut flags = pki.server_flags();
    flags.extend(["--trusted-ca-file".into(), s(&pki.ca.cert)]);
    let node = Node::start(ServerKind::Retcd, &flags, &pki.client_flags(&pki.alice));
    assert!(!node.ctl(&pki.cacert_flag(), &["get", "k"]).success());
}

#[test]
fn retcdctl_with_certificates() {
    let pki = Pki::new();
    let node = Node::start(
        ServerKind::Retcd,
        &pki.mtls_flags(),
        &pki.client_flags(&pki.alice),
    );
    let retcdctl = |args: &[&str], env: &[(&str, String)]| {
        let out = Command::new(retcdctl_bin())
            .env_remove("ETCDCTL_ENDPOINTS")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["--dial-timeout=2s", "--command-timeout=3s"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ep = format!("--endpoints={}", node.endpoint());
    let flags = pki.client_flags(&pki.alice);
    let mut args: Vec<&str> = vec![&ep];
    args.extend(flags.iter().map(String::as_str));
    let (code, out, err) = retcdctl(&[args.clone(), vec!["put", "from", "retcdctl"]].concat(), &[]);
    assert_eq!((code, out.trim()), (Some(0), "OK"), "{err}");
    // scheme-less endpoint + ETCDCTL_* variables: TLS because certificates are given
    let env = [
        ("ETCDCTL_CACERT", s(&pki.ca.cert)),
        ("ETCDCTL_CERT", s(&pki.alice.cert)),
        ("ETCDCTL_KEY", s(&pki.alice.key)),
    ];
    let bare = format!("--endpoints=127.0.0.1:{}", node.ports.client());
    let (code, out, err) = retcdctl(&[&bare, "get", "from", "--print-value-only"], &env);
    assert_eq!((code, out.trim()), (Some(0), "retcdctl"), "{err}");
    // without a client certificate: refused, as with etcdctl
    let cacert = format!("--cacert={}", s(&pki.ca.cert));
    let (code, _, err) = retcdctl(&[&ep, &cacert, "get", "from"], &[]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Error: context deadline exceeded"), "{err}");
}

/// The `retcdctl` binary beside `retcd` (another package's binary, so cargo does not build it
/// for this package's tests); built on first use when missing.
fn retcdctl_bin() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let retcd = Path::new(env!("CARGO_BIN_EXE_retcd"));
            let profile_dir = retcd.parent().expect("bin dir");
            let bin = profile_dir.join("retcdctl");
            if !bin.is_file() {
                let target_dir = profile_dir.parent().expect("target dir");
                let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
                cmd.args(["build", "-p", "retcd-ctl", "--bin", "retcdctl", "--target-dir"])
                    .arg(target_dir);
                if profile_dir.file_name().is_some_and(|n| n == "release") {
                    cmd.arg("--release");
                }
                let st = cmd.status().expect("run cargo build -p retcd-ctl");
                assert!(st.success() && bin.is_file(), "cannot build retcdctl ({st})");
            }
            bin
        })
        .clone()
}

#[test]
fn auto_tls_with_insecure_skip_verify() {
    // etcdctl applies --insecure-skip-tls-verify only with a TLS configuration, so it needs
    // --insecure-transport=false when no certificate file is given (as against etcd).
    let skip: Vec<String> = vec![
        "--insecure-transport=false".into(),
        "--insecure-skip-tls-verify".into(),
    ];
    let node = Node::start(ServerKind::Retcd, &["--auto-tls".into()], &skip);
    node.ok(&skip, &["put", "auto", "tls"]);
    assert_eq!(
        node.ok(&skip, &["get", "auto", "--print-value-only"]).trim(),
        "tls"
    );
    let fixtures = node.data_dir().join("fixtures").join("client");
    assert!(fixtures.join("cert.pem").is_file() && fixtures.join("key.pem").is_file());
    // the self-signed certificate is not trusted without skipping verification
    assert!(
        !node
            .ctl(&["--insecure-transport=false".into()], &["get", "auto"])
            .success()
    );
}

#[test]
fn http_and_https_listeners_side_by_side() {
    let pki = Pki::new();
    let node = Node::start_with(
        ServerKind::Retcd,
        &pki.mtls_flags(),
        &pki.client_flags(&pki.alice),
        true,
    );
    node.ok(&pki.client_flags(&pki.alice), &["put", "mixed", "1"]);
    let plain = node.plain.as_ref().unwrap().client_url();
    let out = etcdctl_with(&plain, "2s", "3s", &["get", "mixed", "--print-value-only"], None);
    assert!(out.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "1");
}

#[test]
fn tls_versions_and_cipher_suites() {
    let pki = Pki::new();
    let mut flags = pki.server_flags();
    flags.extend(
        [
            "--cipher-suites",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "--tls-max-version",
            "TLS1.2",
        ]
        .map(String::from),
    );
    let node = Node::start(ServerKind::Retcd, &flags, &pki.cacert_flag());
    node.ok(&pki.cacert_flag(), &["put", "tls12", "ok"]);
    drop(node);
    let mut flags = pki.server_flags();
    flags.extend(["--tls-min-version", "TLS1.3"].map(String::from));
    let node = Node::start(ServerKind::Retcd, &flags, &pki.cacert_flag());
    node.ok(&pki.cacert_flag(), &["put", "tls13", "ok"]);
}

#[test]
fn bad_tls_settings_stop_the_server_at_start() {
    let run = |args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_retcd"))
            .arg("--data-dir")
            .arg(dir.path().join("d"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let https = [
        "--listen-client-urls",
        "https://127.0.0.1:1",
        "--advertise-client-urls",
        "https://127.0.0.1:1",
    ];
    let (code, err) = run(&https);
    assert_eq!(code, Some(1));
    // etcd 3.4 says exactly this (after its log prefix)
    assert!(
        err.contains(
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:1 with HTTPS scheme"
        ),
        "{err}"
    );
    let (code, err) = run(&["--cipher-suites", "FOO"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unexpected TLS cipher suite \"FOO\""), "{err}");
    let mut missing = https.to_vec();
    missing.extend([
        "--cert-file",
        "/nonexistent/c.pem",
        "--key-file",
        "/nonexistent/k.pem",
    ]);
    let (code, err) = run(&missing);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("open /nonexistent/c.pem: no such file or directory"),
        "{err}"
    );
}

/// The same refusal (no client certificate under --client-cert-auth) from etcd 3.4 and from
/// retcd reads the same to etcdctl.
#[test]
fn refused_client_reads_like_etcd() {
    let pki = Pki::new();
    let alice = pki.client_flags(&pki.alice);
    let etcd = Node::start(ServerKind::Etcd, &pki.mtls_flags(), &alice);
    let retcd = Node::start(ServerKind::Retcd, &pki.mtls_flags(), &alice);
    let mask = |o: &Output| {
        let ts = mask_run_details(&o.stderr);
        (o.code, o.stdout.clone(), ts)
    };
    let want = etcd.ctl(&pki.cacert_flag(), &["get", "k"]);
    let got = retcd.ctl(&pki.cacert_flag(), &["get", "k"]);
    assert_eq!(
        mask(&got),
        mask(&want),
        "etcd:\n{}\nretcd:\n{}",
        want.stderr,
        got.stderr
    );
    let want = etcd.ctl(&pki.cacert_flag(), &["endpoint", "health"]);
    let got = retcd.ctl(&pki.cacert_flag(), &["endpoint", "health"]);
    let port_free = |o: &Output| {
        let m = mask(o);
        (
            m.0,
            m.1.replace(&etcd.endpoint(), "EP")
                .replace(&retcd.endpoint(), "EP"),
            m.2,
        )
    };
    assert_eq!(
        port_free(&got),
        port_free(&want),
        "etcd:\n{}\nretcd:\n{}",
        want.stderr,
        got.stderr
    );
}

/// Masks the parts of etcdctl's stderr that differ between runs: timestamps, client ids and
/// ports.
fn mask_run_details(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut l = line.to_string();
        if let Some(i) = l.find("\"ts\":\"") {
            let end = l[i + 6..].find('"').map(|e| i + 6 + e).unwrap_or(l.len());
            l.replace_range(i + 6..end, "<ts>");
        }
        if let Some(i) = l.find("endpoint://client-") {
            let start = i + "endpoint://client-".len();
            let end = l[start..].find('/').map(|e| start + e).unwrap_or(l.len());
            l.replace_range(start..end, "<id>");
        }
        while let Some(i) = l.find("127.0.0.1:") {
            let start = i + "127.0.0.1:".len();
            let end = l[start..]
                .find(|c: char| !c.is_ascii_digit())
                .map(|e| start + e)
                .unwrap_or(l.len());
            l.replace_range(i..end, "<addr>");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Three members whose peer URLs are https with mutual TLS (each its own certificate from
/// the CA), clients over TLS too: they elect a leader and replicate writes; a linearizable
/// read on a follower goes through the leader over the peer TLS.
#[test]
fn three_members_with_peer_mutual_tls() {
    let mut pki = Pki::new();
    let ports: Vec<Arc<Ports>> = (0..3).map(|_| Ports::reserve()).collect();
    let peer_url = |p: &Ports| format!("https://127.0.0.1:{}", p.peer());
    let client_url = |p: &Ports| format!("https://127.0.0.1:{}", p.client());
    let initial = (0..3)
        .map(|i| format!("m{i}={}", peer_url(&ports[i])))
        .collect::<Vec<_>>()
        .join(",");
    let certs: Vec<Issued> = (0..3)
        .map(|i| {
            pki.ca
                .issue(&format!("m{i}"), &format!("m{i}"), &["127.0.0.1", "localhost"])
        })
        .collect();
    let mut members: Vec<(Child, tempfile::TempDir)> = Vec::new();
    for i in 0..3 {
        let dir = tempfile::Builder::new()
            .prefix("retcd-tls-cluster-")
            .tempdir()
            .unwrap();
        let log = File::create(dir.path().join("server.log")).unwrap();
        let (c, k) = (s(&certs[i].cert), s(&certs[i].key));
        let child = Command::new(env!("CARGO_BIN_EXE_retcd"))
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url(&ports[i])])
            .args(["--advertise-client-urls", &client_url(&ports[i])])
            .args(["--listen-peer-urls", &peer_url(&ports[i])])
            .args(["--initial-advertise-peer-urls", &peer_url(&ports[i])])
            .args(["--initial-cluster", &initial])
            .args(["--cert-file", &c, "--key-file", &k])
            .args(["--peer-cert-file", &c, "--peer-key-file", &k])
            .args([
                "--peer-client-cert-auth",
                "--peer-trusted-ca-file",
                &s(&pki.ca.cert),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        members.push((child, dir));
    }
    struct Kill(Vec<(Child, tempfile::TempDir)>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for (c, d) in &mut self.0 {
                if std::thread::panicking() {
                    let log = std::fs::read_to_string(d.path().join("server.log")).unwrap_or_default();
                    eprintln!("----- member log -----\n{log}");
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut members = Kill(members);
    let ca = pki.cacert_flag();
    let ctl = |i: usize, args: &[&str]| {
        let mut a: Vec<&str> = ca.iter().map(String::as_str).collect();
        a.extend_from_slice(args);
        etcdctl_with(&client_url(&ports[i]), "2s", "10s", &a, None)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..3 {
        loop {
            if let Ok(Some(st)) = members.0[i].0.try_wait() {
                panic!("member m{i} exited ({st})");
            }
            if ctl(i, &["get", "ready-probe"]).success() {
                break;
            }
            assert!(Instant::now() < deadline, "member m{i} not ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let out = ctl(0, &["put", "replicated", "over-tls"]);
    assert!(out.success(), "{}", out.stderr);
    for i in 0..3 {
        let out = ctl(i, &["get", "replicated", "--print-value-only"]);
        assert_eq!(out.stdout.trim(), "over-tls", "member m{i}: {}", out.stderr);
    }
    // exactly one leader, and every member lists the three https peer URLs (and, once all
    // have published themselves, their https client URLs)
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let leaders = (0..3)
            .filter(|&i| ctl(i, &["endpoint", "status"]).stdout.split(", ").nth(4) == Some("true"))
            .count();
        let list = ctl(2, &["member", "list"]).stdout;
        if leaders == 1 && list.matches("https://127.0.0.1:").count() == 6 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leaders: {leaders}, member list:\n{list}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (_, d) in &members.0 {
        let log = std::fs::read_to_string(d.path().join("server.log")).unwrap_or_default();
        assert!(!log.contains("rejected connection"), "{log}");
    }
    // a plain-text peer connection is refused: a member must not take raft traffic in clear
    let plain = std::net::TcpStream::connect(("127.0.0.1", ports[0].peer()));
    if let Ok(mut c) = plain {
        use std::io::{Read, Write};
        let _ = c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        // no HTTP/2 SETTINGS frame comes back, at most a TLS alert record (type 0x15)
        assert!(n == 0 || buf[0] == 0x15, "plain text answered: {:?}", &buf[..n]);
    }
}

/// Three members with peer mutual TLS on 127.0.0.2, .3 and .4, each with a certificate for its
/// own address only. They dial each other from 127.0.0.1 (the kernel's source address for
/// loopback), so no member's client certificate names the address it connects from: as with
/// etcd 3.4, every peer connection is refused after its handshake ("rejected connection",
/// Go's x509 error) and the cluster never forms; with
/// `--experimental-peer-skip-client-san-verification` it forms and takes writes. Run on
/// retcd and on etcd.
#[test]
fn peer_client_certificate_sans_must_name_the_peer_address() {
    let mut pki = Pki::new();
    let ports: Vec<Arc<Ports>> = (0..3).map(|_| Ports::reserve()).collect();
    let host = |i: usize| format!("127.0.0.{}", i + 2);
    let peer_url = |i: usize| format!("https://{}:{}", host(i), ports[i].peer());
    let initial = (0..3)
        .map(|i| format!("m{i}={}", peer_url(i)))
        .collect::<Vec<_>>()
        .join(",");
    let certs: Vec<Issued> = (0..3)
        .map(|i| pki.ca.issue(&format!("m{i}"), &format!("m{i}"), &[&host(i)]))
        .collect();
    struct Members(Vec<(Child, tempfile::TempDir)>);
    impl Members {
        fn logs(&self) -> Vec<String> {
            self.0
                .iter()
                .map(|(_, d)| std::fs::read_to_string(d.path().join("server.log")).unwrap_or_default())
                .collect()
        }
    }
    impl Drop for Members {
        fn drop(&mut self) {
            let logs = self.logs();
            for ((c, _), log) in self.0.iter_mut().zip(logs) {
                if std::thread::panicking() {
                    let tail: Vec<&str> = log.lines().rev().take(40).collect();
                    eprintln!("----- member log (last lines) -----");
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let start = |kind: ServerKind, extra: &[&str]| {
        let mut members = Members(Vec::new());
        for i in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("retcd-tls-san-")
                .tempdir()
                .unwrap();
            let log = File::create(dir.path().join("server.log")).unwrap();
            let child = Command::new(kind.binary())
                .args(["--name", &format!("m{i}"), "--data-dir"])
                .arg(dir.path().join("data"))
                .args(["--listen-client-urls", &ports[i].client_url()])
                .args(["--advertise-client-urls", &ports[i].client_url()])
                .args(["--listen-peer-urls", &peer_url(i)])
                .args(["--initial-advertise-peer-urls", &peer_url(i)])
                .args(["--initial-cluster", &initial])
                .args(["--peer-cert-file", &s(&certs[i].cert)])
                .args(["--peer-key-file", &s(&certs[i].key)])
                .args([
                    "--peer-client-cert-auth",
                    "--peer-trusted-ca-file",
                    &s(&pki.ca.cert),
                ])
                .args(extra)
                .env_remove("ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            members.0.push((child, dir));
        }
        members
    };
    let get = |i: usize| etcdctl_with(&ports[i].client_url(), "1s", "3s", &["get", "probe"], None);
    for kind in [ServerKind::Retcd, ServerKind::Etcd] {
        let name = kind.name();
        // SANs checked: every peer connection is refused, no leader, no member serves
        let mut members = start(kind, &[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (c, _) in &mut members.0 {
                assert!(matches!(c.try_wait(), Ok(None)), "{name}: a member exited");
            }
            let logs = members.logs();
            let refused = logs.iter().all(|log| {
                log.lines().any(|l| {
                    l.contains("rejected connection") && l.contains("x509: certificate is valid for 127.0.0.")
                })
            });
            if refused {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: peers were not refused for their client certificate's SANs"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // several election timeouts later, still nothing
        std::thread::sleep(Duration::from_secs(3));
        for i in 0..3 {
            let out = get(i);
            assert!(!out.success(), "{name}: m{i} served a read without a quorum");
        }
        drop(members);

        // skipped: the cluster forms and takes writes through every member
        let members = start(kind, &["--experimental-peer-skip-client-san-verification"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..3 {
            loop {
                let out = get(i);
                if out.success() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}: m{i} not ready with the SAN check skipped: {}",
                    out.stderr
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        for (i, p) in ports.iter().enumerate() {
            let out = etcdctl_with(
                &p.client_url(),
                "2s",
                "10s",
                &["put", "k", &format!("v{i}")],
                None,
            );
            assert!(out.success(), "{name}: put through m{i}: {}", out.stderr);
        }
        for log in members.logs() {
            assert!(!log.contains("rejected connection"), "{name}: {log}");
        }
    }
}

/// `--peer-cert-allowed-cn`: a peer connection whose (CA-signed) certificate has another CN is
/// closed right after the handshake; the allowed CN gets the HTTP/2 server's greeting.
#[test]
fn peer_cert_allowed_cn() {
    let mut pki = Pki::new();
    let member = pki.ca.issue("member", "member", &["127.0.0.1"]);
    let intruder = pki.ca.issue("intruder", "intruder", &["127.0.0.1"]);
    let ports = Ports::reserve();
    let peer = format!("https://127.0.0.1:{}", ports.peer());
    let dir = tempfile::tempdir().unwrap();
    let log = File::create(dir.path().join("server.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_retcd"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &ports.client_url(),
            "--advertise-client-urls",
            &ports.client_url(),
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("default={peer}")])
        .args([
            "--peer-cert-file",
            &s(&member.cert),
            "--peer-key-file",
            &s(&member.key),
        ])
        .args([
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            &s(&pki.ca.cert),
        ])
        .args(["--peer-cert-allowed-cn", "member"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(child);
    let deadline = Instant::now() + common::READY_TIMEOUT;
    while !etcdctl_with(&ports.client_url(), "1s", "2s", &["get", "probe"], None).success() {
        assert!(Instant::now() < deadline, "retcd not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let greeted = |who: &Issued| {
        let cfg = retcd_tls::client_config(&retcd_tls::ClientTlsOptions {
            ca_file: Some(pki.ca.cert.clone()),
            cert_file: Some(who.cert.clone()),
            key_file: Some(who.key.clone()),
            ..Default::default()
        })
        .unwrap();
        let port = ports.peer();
        rt.block_on(async move {
            use tokio::io::AsyncReadExt;
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let name = retcd_tls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            let Ok(mut tls) = tokio_rustls::TlsConnector::from(cfg).connect(name, tcp).await else {
                return false;
            };
            let mut buf = [0u8; 64];
            matches!(
                tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf)).await,
                Ok(Ok(n)) if n > 0
            )
        })
    };
    assert!(greeted(&member));
    assert!(!greeted(&intruder));
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(log.contains("client certificate authentication failed"), "{log}");
}

/// The HTTP side of an `https://` client URL (etcd's `/health` and JSON gateway) answers
/// HTTP/1.1 and HTTP/2 clients (chosen by ALPN) beside gRPC, as etcd's does.
#[test]
fn http_endpoints_over_tls() {
    let skip: Vec<String> = vec![
        "--insecure-transport=false".into(),
        "--insecure-skip-tls-verify".into(),
    ];
    for kind in [ServerKind::Etcd, ServerKind::Retcd] {
        let node = Node::start(kind, &["--auto-tls".into()], &skip);
        node.ok(&skip, &["put", "k", "v"]);
        for version in ["--http1.1", "--http2"] {
            let curl = |args: &[&str]| {
                let out = Command::new("curl")
                    .args(["-s", "-k", "--max-time", "10", "-w", " %{http_version}", version])
                    .args(args)
                    .output()
                    .expect("curl");
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            let want_version = if version == "--http2" { "2" } else { "1.1" };
            assert_eq!(
                curl(&[&format!("{}/health", node.endpoint())]),
                format!(r#"{{"health":"true"}} {want_version}"#),
                "{} {version}",
                kind.name()
            );
            let range = curl(&[
                "-X",
                "POST",
                "-d",
                r#"{"key":"aw=="}"#,
                &format!("{}/v3/kv/range", node.endpoint()),
            ]);
            assert!(
                range.contains(r#""kvs":[{"key":"aw==","#) && range.ends_with(want_version),
                "{} {version}: {range}",
                kind.name()
            );
        }
    }
}

/// With `--client-cert-auth` and auth on, a request without a token is made as the user the
/// client certificate names (its CN), as etcd's `AuthInfoFromTLS`; a token wins over the
/// certificate. The same steps run against real etcd 3.4 and must print the same.
#[test]
fn certificate_cn_is_the_user_with_auth() {
    let run = |kind: ServerKind| -> Vec<String> {
        let mut pki = Pki::new();
        let root = pki.ca.issue("rootcert", "root", &[]);
        let node = Node::start(kind, &pki.mtls_flags(), &pki.client_flags(&root));
        let as_root = pki.client_flags(&root);
        let as_alice = pki.client_flags(&pki.alice);
        for args in [
            &["user", "add", "root:rootpw"][..],
            &["user", "grant-role", "root", "root"],
            &["role", "add", "ra"],
            &["role", "grant-permission", "ra", "readwrite", "a"],
            &["user", "add", "alice:alicepw"],
            &["user", "grant-role", "alice", "ra"],
            &["user", "add", "bob:bobpw"],
            &["auth", "enable"],
        ] {
            node.ok(&as_root, args);
        }
        let mut out = Vec::new();
        let mut step = |tls: &[String], args: &[&str]| {
            let o = node.ctl(tls, args);
            out.push(format!(
                "{args:?}: code {} | {}{}",
                o.code,
                o.stdout,
                mask_run_details(&o.stderr)
            ));
        };
        step(&as_alice, &["put", "a", "1"]);
        step(&as_alice, &["get", "a", "--print-value-only"]);
        step(&as_alice, &["put", "b", "1"]);
        step(&as_alice, &["user", "list"]);
        // a token (here bob's) is used instead of the certificate
        step(&as_alice, &["get", "a", "--user", "bob:bobpw"]);
        step(&as_root, &["user", "list"]);
        step(&as_root, &["auth", "disable"]);
        out
    };
    let retcd = run(ServerKind::Retcd);
    let etcd = run(ServerKind::Etcd);
    assert_eq!(retcd, etcd);
    assert!(retcd[0].contains("code 0 | OK"), "{retcd:?}");
    assert!(retcd[2].contains("permission denied"), "{retcd:?}");
}

/// An `https://` `--listen-metrics-urls` serves `/metrics` with the client certificate, as
/// etcd's does (checked against both servers).
#[test]
fn metrics_url_over_tls() {
    let pki = Pki::new();
    for kind in [ServerKind::Etcd, ServerKind::Retcd] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut flags = pki.server_flags();
        flags.extend([
            "--listen-metrics-urls".into(),
            format!("https://127.0.0.1:{port}"),
        ]);
        let node = Node::start(kind, &flags, &pki.cacert_flag());
        let out = Command::new("curl")
            .args(["-s", "--max-time", "10", "--cacert", &s(&pki.ca.cert)])
            .arg(format!("https://127.0.0.1:{port}/metrics"))
            .output()
            .expect("curl");
        let body = String::from_utf8_lossy(&out.stdout);
        assert!(
            body.contains("etcd_server_has_leader 1"),
            "{}: {}",
            kind.name(),
            &body[..body.len().min(300)]
        );
        drop(node);
    }
}

/// `--client-cert-allowed-hostname`: only clients whose certificate is valid for that host
/// (a subject alternative name) get through; others are refused at the connection, as etcd
/// refuses them at the handshake.
#[test]
fn client_cert_allowed_hostname() {
    let mut pki = Pki::new();
    let good = pki.ca.issue("good", "someone", &["client.example"]);
    let mut flags = pki.mtls_flags();
    flags.extend(["--client-cert-allowed-hostname".into(), "client.example".into()]);
    for kind in [ServerKind::Etcd, ServerKind::Retcd] {
        let node = Node::start(kind, &flags, &pki.client_flags(&good));
        assert_eq!(node.ok(&pki.client_flags(&good), &["put", "k", "v"]), "OK\n");
        let refused = node.ctl(&pki.client_flags(&pki.alice), &["get", "k"]);
        assert!(
            !refused.success(),
            "{}: alice got through: {refused:?}",
            kind.name()
        );
        if kind == ServerKind::Retcd {
            assert!(
                node.log().contains("not valid for the allowed hostname"),
                "{}",
                node.log()
            );
        }
    }
}
