//! `/metrics` on `--listen-metrics-urls`: the metric names etcd dashboards and alerts read
//! are there, and they move when the server works. The same checks run against real etcd
//! 3.4 in self-test mode, so a name retcd exports and etcd does not would be caught.

mod common;

use common::{Ports, Server, http_get, kind_under_test};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// The value of an unlabelled (or exactly labelled) sample.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not found"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn metrics_names_present_and_moving() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let server = Server::start_with(
        kind_under_test(),
        Ports::reserve(),
        &["--listen-metrics-urls", &url],
    );
    let (status, before) = http_get(port, "/metrics");
    assert!(status.contains("200"), "{status}");
    for name in [
        "etcd_server_has_leader 1",
        "etcd_server_is_leader 1",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_applied_total",
        "etcd_server_proposals_pending",
        "etcd_server_proposals_failed_total",
        "etcd_disk_wal_fsync_duration_seconds_bucket",
        "etcd_disk_backend_commit_duration_seconds_bucket",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_mvcc_db_total_size_in_use_in_bytes",
        "etcd_debugging_mvcc_keys_total",
        "etcd_server_id{server_id=",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(before.contains(name), "{name} missing from /metrics");
    }
    for i in 0..20 {
        let out = server.etcdctl(&["put", &format!("k{i}"), "v"], None);
        assert!(out.success(), "{out:?}");
    }
    let out = server.etcdctl(&["get", "k", "--prefix"], None);
    assert!(out.success());
    let (_, after) = http_get(port, "/metrics");
    let grew = |name: &str, by: f64| {
        let (b, a) = (sample(&before, name), sample(&after, name));
        assert!(a >= b + by, "{name}: {b} -> {a}");
    };
    grew("etcd_server_proposals_committed_total", 20.0);
    grew("etcd_server_proposals_applied_total", 20.0);
    grew("etcd_disk_wal_fsync_duration_seconds_count", 1.0);
    grew("etcd_disk_backend_commit_duration_seconds_count", 1.0);
    grew("etcd_debugging_mvcc_keys_total", 20.0);
    assert!(
        after.contains(
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} "
        ),
        "no handled Put"
    );
    let puts: f64 = after
        .lines()
        .find(|l| l.starts_with("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Put\""))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(puts >= 20.0, "{puts} puts handled");
    // the client URL serves it too
    let (status, body) = http_get(server.ports().client(), "/metrics");
    assert!(
        status.contains("200") && body.contains("etcd_server_has_leader 1"),
        "{status}"
    );
}
