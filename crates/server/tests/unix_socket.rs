//! Client URLs on unix sockets (`--listen-client-urls unix://localhost:PORT`), as etcd 3.4
//! serves them: the socket file is named after the URL in the server's working directory,
//! etcdctl reaches it by the relative or the absolute path, the HTTP side answers on it too,
//! and the file is removed when the server stops. The same steps run against etcd and retcd
//! and must give the same answers.
//!
//! Run: `cargo test -p retcd-server --test unix_socket`

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Ports, Server, ServerKind};

/// etcdctl in `cwd` against `endpoint`: (exit code, stdout, stderr).
fn etcdctl_in(cwd: &Path, endpoint: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(common::etcdctl_bin());
    common::scrub_env(&mut cmd);
    let out = cmd
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=10s")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The answers of one server to the steps, with what differs by server or by run removed.
fn steps(kind: ServerKind) -> Vec<(i32, String)> {
    let ports = Ports::reserve();
    let socket = format!("localhost:{}", ports.client());
    let listen = format!("{},unix://{socket}", ports.client_url());
    let mut server = Server::start_with(kind, ports.clone(), &["--listen-client-urls", &listen]);
    let dir = server.data_dir().parent().expect("server dir").to_path_buf();
    let file = dir.join(&socket);
    assert!(
        file.exists(),
        "{}: no socket file {}",
        kind.name(),
        file.display()
    );
    let relative = format!("unix://{socket}");
    let absolute = format!("unix://{}", file.display());
    let mut answers = Vec::new();
    let mut step = |endpoint: &str, args: &[&str]| {
        let (code, stdout, stderr) = etcdctl_in(&dir, endpoint, args);
        assert!(
            code == 0,
            "{}: etcdctl {args:?} via {endpoint}: {stderr}",
            kind.name()
        );
        answers.push((code, stdout));
    };
    step(&relative, &["put", "k", "v1"]);
    step(&absolute, &["put", "k", "v2"]);
    step(&relative, &["get", "k", "--print-value-only"]);
    step(&absolute, &["get", "k", "--print-value-only"]);
    step(&relative, &["del", "k"]);
    // `endpoint status` dials the endpoint as given (its `:authority` is the URL)
    let (code, stdout, stderr) = etcdctl_in(&dir, &absolute, &["endpoint", "status"]);
    assert_eq!(code, 0, "{}: endpoint status: {stderr}", kind.name());
    assert!(
        stdout.starts_with(&format!("{absolute}, ")),
        "{}: {stdout}",
        kind.name()
    );
    // the HTTP side of the client URL answers on the socket too
    let health = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(&file)
        .arg("http://localhost/health")
        .output()
        .expect("run curl");
    let health = String::from_utf8_lossy(&health.stdout).into_owned();
    assert!(
        health.contains("\"health\":\"true\""),
        "{}: /health: {health}",
        kind.name()
    );
    server.terminate();
    assert!(!file.exists(), "{}: socket file left after stop", kind.name());
    answers
}

#[test]
fn client_urls_on_unix_sockets_as_etcd() {
    let want = steps(ServerKind::Etcd);
    let got = steps(ServerKind::Retcd);
    assert_eq!(got, want);
}
