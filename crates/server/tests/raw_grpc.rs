//! The parts of the API etcdctl 3.4 cannot reach, over raw gRPC.
//!
//! Watch progress notifications: with `--experimental-watch-progress-notify-interval=1s`, an idle watcher that asked for
//! progress gets an empty response carrying the current revision; a `WatchProgressRequest`
//! is answered at once with watch_id -1.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use retcd_api::etcdserverpb::watch_client::WatchClient;
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::{
    DowngradeRequest, PutRequest, RangeRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
};

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Starts retcd with `extra` flags on free ports; returns the process, its client URL and
/// its temp dir (kept alive by the caller).
async fn start(extra: &[&str]) -> (Kill, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (cport, pport) = (free_port(), free_port());
    let curl = format!("http://127.0.0.1:{cport}");
    let purl = format!("http://127.0.0.1:{pport}");
    let server = Kill(
        Command::new(env!("CARGO_BIN_EXE_retcd"))
            .args(["--data-dir", dir.path().join("d").to_str().unwrap()])
            .args(["--listen-client-urls", &curl, "--advertise-client-urls", &curl])
            .args([
                "--listen-peer-urls",
                &purl,
                "--initial-advertise-peer-urls",
                &purl,
            ])
            .args(["--initial-cluster", &format!("default={purl}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if let Ok(mut c) = KvClient::connect(curl.clone()).await
            && c.range(RangeRequest {
                key: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .is_ok()
        {
            return (server, curl, dir);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("retcd did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watcher_gets_progress_notifications() {
    let (_server, curl, _dir) = start(&["--experimental-watch-progress-notify-interval", "1s"]).await;
    let mut kv = KvClient::connect(curl.clone()).await.unwrap();
    kv.put(PutRequest {
        key: b"a".to_vec(),
        value: b"1".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();

    let mut wc = WatchClient::connect(curl.clone()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"a".to_vec(),
            progress_notify: true,
            ..Default::default()
        })),
    })
    .await
    .unwrap();
    let mut stream = wc
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let created: retcd_api::etcdserverpb::WatchResponse = next(&mut stream).await;
    assert!(created.created);
    // Idle: a progress notification with the current revision (2) and no events.
    let p = next(&mut stream).await;
    assert!(!p.created && p.events.is_empty() && p.watch_id == 0, "{p:?}");
    assert_eq!(p.header.unwrap().revision, 2);
    // An event, then progress again at the new revision.
    kv.put(PutRequest {
        key: b"a".to_vec(),
        value: b"2".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let e = next(&mut stream).await;
    assert_eq!(e.events.len(), 1);
    let p = loop {
        let r = next(&mut stream).await;
        if r.events.is_empty() {
            break r;
        }
    };
    assert_eq!(p.header.unwrap().revision, 3);
    // A progress request is answered for the whole stream.
    tx.send(WatchRequest {
        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
    })
    .await
    .unwrap();
    let r = loop {
        let r = next(&mut stream).await;
        if r.watch_id == -1 {
            break r;
        }
    };
    assert_eq!(r.header.unwrap().revision, 3);
}

async fn next(
    s: &mut tonic::Streaming<retcd_api::etcdserverpb::WatchResponse>,
) -> retcd_api::etcdserverpb::WatchResponse {
    tokio::time::timeout(Duration::from_secs(5), s.message())
        .await
        .expect("no watch response within 5 s")
        .expect("watch stream failed")
        .expect("watch stream ended")
}

/// Downgrade as etcd 3.5 answers it for a cluster at version 3.5 with no downgrade running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_validate_and_cancel() {
    let (_server, curl, _dir) = start(&[]).await;
    let mut m = MaintenanceClient::connect(curl).await.unwrap();
    let req = |action: i32, version: &str| DowngradeRequest {
        action,
        version: version.into(),
    };
    let ok = m.downgrade(req(0, "3.4")).await.unwrap().into_inner();
    assert_eq!(ok.version, "3.5.0");
    assert!(ok.header.is_some());
    let e = m.downgrade(req(0, "3.3")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::InvalidArgument,
            "etcdserver: invalid downgrade target version"
        )
    );
    let e = m.downgrade(req(0, "three")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::InvalidArgument,
            "etcdserver: wrong downgrade target version format"
        )
    );
    let e = m.downgrade(req(2, "")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            tonic::Code::FailedPrecondition,
            "etcdserver: no inflight downgrade job"
        )
    );
    let e = m.downgrade(req(1, "3.4")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
}
