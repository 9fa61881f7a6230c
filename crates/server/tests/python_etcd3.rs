//! The python `etcd3` client against retcd (with `RETCD_COMPAT_SELFTEST=1`, against etcd,
//! to validate the scripts): `clients/etcd3_watch.py` checks the watch API,
//! `clients/etcd3_lease_lock.py` the service-registry (lease) and lock recipes.
//!
//! Needs `python3` with the `etcd3` package (`pip install etcd3`; `scripts/test.sh` installs
//! it). Missing either fails the test. `RETCD_TEST_PYTHON` overrides the interpreter.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// `python3` (or `RETCD_TEST_PYTHON`) with etcd3 0.12's protobuf workaround.
fn python() -> Command {
    let bin = std::env::var("RETCD_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = Command::new(bin);
    // etcd3 0.12's generated code only loads under protobuf > 3.20 in pure-python mode.
    cmd.env("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python");
    cmd
}

/// Runs `cmd`, killing it after `timeout`.
fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}): the python client test needs python3 with the etcd3 package (pip install etcd3)")
        });
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("wait for python").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect python output");
            panic!(
                "python did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect python output")
}

/// Runs `clients/<script>` against a fresh server; it must print "ok".
fn run_script(script: &str) {
    let mut probe = python();
    probe.args(["-c", "import etcd3; print(etcd3.__version__)"]);
    let out = run_bounded(probe, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "python3 cannot import etcd3: install it (`pip install etcd3`, or run scripts/test.sh)\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = common::Server::start(common::kind_under_test());
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut cmd = python();
    cmd.arg(&script)
        .arg("127.0.0.1")
        .arg(server.ports().client().to_string());
    let out = run_bounded(cmd, SCRIPT_TIMEOUT);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim_end().ends_with("ok"),
        "{} failed against {} ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        script.display(),
        server.kind().name(),
        out.status
    );
}

#[test]
fn python_etcd3_watch_api() {
    run_script("etcd3_watch.py");
}

#[test]
fn python_etcd3_service_registry_and_lock() {
    run_script("etcd3_lease_lock.py");
}
