//! `retcd-bench --cacert --cert --key` against a real etcd serving `https://` with client
//! certificate authentication (certificates made by the test).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use retcd_tls::test_pki::TestCa;
use serde_json::Value;

const ETCD: &str = "/usr/bin/etcd";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn put_over_mutual_tls() {
    assert!(
        Path::new(ETCD).exists(),
        "this test needs the real etcd 3.4 at {ETCD}: apt-get install -y etcd-server"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut ca = TestCa::new(dir.path(), "ca");
    let server = ca.issue("server", "server", &["127.0.0.1"]);
    let client = ca.issue("client", "bench", &[]);
    let port = free_port();
    let endpoint = format!("https://127.0.0.1:{port}");
    let peer = format!("http://127.0.0.1:{}", free_port());
    let _etcd = Kill(
        Command::new(ETCD)
            .arg("--data-dir")
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
            .args(["--cert-file", p(&server.cert), "--key-file", p(&server.key)])
            .args(["--client-cert-auth", "--trusted-ca-file", p(&ca.cert)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd"),
    );
    let bench = |endpoint: &str, tls: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_retcd-bench"))
            .args(["--endpoints", endpoint, "--json", "--dial-timeout", "2s"])
            .args(tls)
            .args(["--clients", "2", "put", "--total", "50"])
            .output()
            .unwrap()
    };
    let tls = [
        "--cacert",
        p(&ca.cert),
        "--cert",
        p(&client.cert),
        "--key",
        p(&client.key),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = bench(&endpoint, &tls);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], 50, "{v}");
    // a scheme-less endpoint is dialed with TLS when certificates are given
    let out = bench(&format!("127.0.0.1:{port}"), &tls);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // no client certificate: refused
    let out = bench(&endpoint, &["--cacert", p(&ca.cert)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dial"), "{err}");
}
