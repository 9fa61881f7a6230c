//! retcdctl's TLS flags against the real etcdctl: both talk to one real etcd serving
//! `https://` with client-certificate authentication (certificates made by the test); stdout,
//! stderr and exit codes must match after masking timestamps and client ids.

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ETCD, ETCDCTL, RETCDCTL, free_port};
use regex::Regex;
use retcd_tls::test_pki::{Issued, TestCa};

struct TlsEtcd {
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
    ca: TestCa,
    alice: Issued,
    /// another client pair of the same CA (its key does not match alice's certificate)
    bob: Issued,
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

impl TlsEtcd {
    fn start() -> TlsEtcd {
        assert!(
            Path::new(ETCD).exists() && Path::new(ETCDCTL).exists(),
            "these tests need the real etcd and etcdctl 3.4 at {ETCD} and {ETCDCTL}: apt-get install -y etcd-server etcd-client"
        );
        let dir = tempfile::tempdir().unwrap();
        let mut ca = TestCa::new(dir.path(), "ca");
        let server = ca.issue("server", "server", &["127.0.0.1", "localhost"]);
        let alice = ca.issue("alice", "alice", &[]);
        let bob = ca.issue("bob", "bob", &[]);
        let endpoint = format!("https://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let child = Command::new(ETCD)
            .args(["--name", "default", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(["--cert-file", s(&server.cert), "--key-file", s(&server.key)])
            .args(["--client-cert-auth", "--trusted-ca-file", s(&ca.cert)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd");
        let etcd = TlsEtcd {
            child,
            endpoint,
            dir,
            ca,
            alice,
            bob,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let certs = etcd.certs();
            let mut args: Vec<&str> = certs.iter().map(String::as_str).collect();
            args.extend(["get", "probe"]);
            if etcd.run(ETCDCTL, &args, &[]).status.success() {
                return etcd;
            }
            assert!(Instant::now() < deadline, "etcd with TLS did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn certs(&self) -> Vec<String> {
        vec![
            format!("--cacert={}", s(&self.ca.cert)),
            format!("--cert={}", s(&self.alice.cert)),
            format!("--key={}", s(&self.alice.key)),
        ]
    }

    fn run(&self, tool: &str, args: &[&str], env: &[(&str, String)]) -> Output {
        self.run_at(tool, &self.endpoint, args, env)
    }

    fn run_at(&self, tool: &str, endpoint: &str, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut cmd = Command::new(tool);
        for (k, _) in std::env::vars() {
            if k.starts_with("ETCDCTL_") || k.starts_with("ETCD_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("ETCDCTL_API", "3")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args([
                &format!("--endpoints={endpoint}"),
                "--dial-timeout=2s",
                "--command-timeout=3s",
            ])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run etcdctl")
    }
}

fn normalize(text: &str) -> String {
    let ts = Regex::new(r#""ts":"[^"]*""#).unwrap();
    let client = Regex::new(r"client-[0-9a-f-]{36}").unwrap();
    let t = ts.replace_all(text, r#""ts":"<ts>""#);
    client.replace_all(&t, "client-<id>").into_owned()
}

/// Runs `args` with etcdctl and retcdctl and asserts the same outcome.
fn same(etcd: &TlsEtcd, endpoint: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let want = etcd.run_at(ETCDCTL, endpoint, args, env);
    let got = etcd.run_at(RETCDCTL, endpoint, args, env);
    let show = |o: &Output| {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert_eq!(
        (
            want.status.code(),
            normalize(&String::from_utf8_lossy(&want.stdout)),
            normalize(&String::from_utf8_lossy(&want.stderr))
        ),
        (
            got.status.code(),
            normalize(&String::from_utf8_lossy(&got.stdout)),
            normalize(&String::from_utf8_lossy(&got.stderr))
        ),
        "retcdctl {args:?} differs from etcdctl\n--- etcdctl: {}\n--- retcdctl: {}",
        show(&want),
        show(&got)
    );
    got
}

#[test]
fn tls_flags_match_etcdctl() {
    let etcd = TlsEtcd::start();
    let ep = etcd.endpoint.clone();
    let certs = etcd.certs();
    let with = |rest: &[&'static str]| -> Vec<String> {
        certs
            .iter()
            .cloned()
            .chain(rest.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        same(&etcd, &ep, &a, &[])
    };
    // mutual TLS: put and get, in the simple and json formats (json carries the header)
    assert!(run(with(&["put", "k", "v"])).status.success());
    assert!(run(with(&["get", "k"])).status.success());
    assert!(run(with(&["get", "k", "-w", "json"])).status.success());
    // no scheme: TLS because certificates are given, and the ETCDCTL_* variables
    let bare = ep.trim_start_matches("https://").to_string();
    let vars = [
        ("ETCDCTL_CACERT", s(&etcd.ca.cert).to_string()),
        ("ETCDCTL_CERT", s(&etcd.alice.cert).to_string()),
        ("ETCDCTL_KEY", s(&etcd.alice.key).to_string()),
    ];
    let out = same(&etcd, &bare, &["get", "k", "--print-value-only"], &vars);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v\n");
    // no client certificate: the server refuses the connection
    let out = run(vec![
        format!("--cacert={}", s(&etcd.ca.cert)),
        "get".into(),
        "k".into(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("context deadline exceeded"));
    // a server certificate from an unknown CA, seen by a direct call
    let no_ca = vec![
        format!("--cert={}", s(&etcd.alice.cert)),
        format!("--key={}", s(&etcd.alice.key)),
    ];
    let mut status = no_ca.clone();
    status.extend(["endpoint".into(), "status".into()]);
    let out = run(status);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("x509: certificate signed by unknown authority"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ... unless verification is skipped (which needs --insecure-transport=false, as etcdctl)
    let mut skip = no_ca.clone();
    skip.extend(
        [
            "--insecure-transport=false",
            "--insecure-skip-tls-verify",
            "get",
            "k",
        ]
        .map(String::from),
    );
    assert!(run(skip).status.success());
    // unusable TLS files: etcdctl's messages and exit code 128
    let out = run(vec![
        "--cacert=/nonexistent/ca.pem".into(),
        "get".into(),
        "k".into(),
    ]);
    assert_eq!(out.status.code(), Some(128));
    let out = run(vec![
        format!("--key={}", s(&etcd.alice.key)),
        "get".into(),
        "k".into(),
    ]);
    assert_eq!(out.status.code(), Some(128));
    // files that are not what they should be: Go's crypto/tls and x509 messages; a CA file
    // without any PEM data is an empty pool (no server certificate verifies), not an error
    let garbage = etcd.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM\n").unwrap();
    let (cert, key, ca, junk) = (
        s(&etcd.alice.cert),
        s(&etcd.alice.key),
        s(&etcd.ca.cert),
        s(&garbage),
    );
    for (flags, code) in [
        (vec![format!("--cert={junk}"), format!("--key={junk}")], 128),
        (vec![format!("--cert={key}"), format!("--key={key}")], 128),
        (vec![format!("--cert={cert}"), format!("--key={cert}")], 128),
        (
            vec![format!("--cert={cert}"), format!("--key={}", s(&etcd.bob.key))],
            128,
        ),
        (
            vec![
                format!("--cacert={key}"),
                format!("--cert={cert}"),
                format!("--key={key}"),
            ],
            128,
        ),
        (
            vec![
                format!("--cacert={junk}"),
                format!("--cert={cert}"),
                format!("--key={key}"),
            ],
            1,
        ),
        (
            vec![
                format!("--cacert={ca}"),
                format!("--cert={cert}"),
                format!("--key={key}"),
            ],
            0,
        ),
    ] {
        let mut args = flags;
        args.extend(["get".into(), "k".into(), "--print-value-only".into()]);
        let out = run(args);
        assert_eq!(out.status.code(), Some(code));
    }
}
