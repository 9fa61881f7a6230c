//! A watcher that never reads must not slow down writers or other watchers, and must not
//! lose anything: once it reads, it gets every event, in order.
//!
//! Three connections to one retcd: a stalled watch stream on a prefix (it reads its
//! `created` response and then nothing), a reading watcher on the same prefix, and writers
//! putting 2000 values of 8 KiB there (16 MiB: many times the HTTP/2 flow-control windows,
//! so the stalled stream's windows and the server's queues fill up early). The bounds are
//! generous correctness bounds (nothing waits for the stalled client), not performance
//! measurements.

mod common;

use std::time::{Duration, Instant};

use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use retcd_api::etcdserverpb::watch_client::WatchClient;
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::{
    PutRequest, RangeRequest, StatusRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use tonic::Streaming;
use tonic::transport::Channel;

const PUTS: usize = 2000;
const WRITERS: usize = 8;
const VALUE: usize = 8 * 1024;
/// Writers and the reading watcher must be done within this (they take a few seconds).
const BOUND: Duration = Duration::from_secs(30);

async fn watch_prefix(ch: Channel) -> Streaming<WatchResponse> {
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"slow/".to_vec(),
            range_end: b"slow0".to_vec(),
            ..Default::default()
        })),
    };
    let reqs = tokio_stream::StreamExt::chain(tokio_stream::iter([create]), tokio_stream::pending());
    // Catching up, a response holds up to 1000 revisions (as etcd's watchBatchMaxRevs), 8 MB
    // here: accept any size, like etcd's Go client (MaxCallRecvMsgSize = MaxInt32).
    let mut s = WatchClient::new(ch)
        .max_decoding_message_size(usize::MAX)
        .watch(reqs)
        .await
        .unwrap()
        .into_inner();
    let created = s.message().await.unwrap().unwrap();
    assert!(created.created);
    s
}

/// Reads events until `PUTS` arrived; returns (key, mod_revision) in arrival order.
async fn read_all(s: &mut Streaming<WatchResponse>) -> Vec<(Vec<u8>, i64)> {
    let mut got = Vec::new();
    while got.len() < PUTS {
        let r = s
            .message()
            .await
            .expect("watch stream failed")
            .expect("watch stream ended");
        assert!(!r.canceled, "{r:?}");
        for e in r.events {
            let kv = e.kv.unwrap();
            assert_eq!(kv.value.len(), VALUE);
            got.push((kv.key, kv.mod_revision));
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_watcher_delays_no_one_and_loses_nothing() {
    let mut server = common::FlaggedRetcd::start(&[]);
    let mut stalled = watch_prefix(server.connect().await).await;
    let mut good = watch_prefix(server.connect().await).await;
    let good_reader = tokio::spawn(async move {
        let got = read_all(&mut good).await;
        (got, Instant::now())
    });

    let start = Instant::now();
    let kv_ch = server.connect().await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut kv = KvClient::new(kv_ch.clone());
            tokio::spawn(async move {
                let mut revs = Vec::new();
                for i in (w..PUTS).step_by(WRITERS) {
                    let r = kv
                        .put(PutRequest {
                            key: format!("slow/{i:05}").into_bytes(),
                            value: vec![b'a' + (i % 26) as u8; VALUE],
                            ..Default::default()
                        })
                        .await
                        .expect("put");
                    revs.push(r.into_inner().header.unwrap().revision);
                }
                revs
            })
        })
        .collect();
    let mut revs = Vec::new();
    for w in writers {
        revs.extend(
            tokio::time::timeout(BOUND, w)
                .await
                .expect("puts held up")
                .unwrap(),
        );
    }
    let puts_done = start.elapsed();
    assert!(puts_done < BOUND, "{PUTS} puts took {puts_done:?}");
    revs.sort_unstable();
    // A fresh server is at revision 1: the puts are revisions 2..=PUTS+1.
    assert_eq!(revs, (2..=PUTS as i64 + 1).collect::<Vec<_>>());

    let (good_events, good_done) = tokio::time::timeout(BOUND, good_reader)
        .await
        .expect("the reading watcher was held up")
        .unwrap();
    assert!(
        good_done - start < BOUND,
        "reading watcher done after {:?}",
        good_done - start
    );
    let good_revs: Vec<i64> = good_events.iter().map(|e| e.1).collect();
    assert_eq!(good_revs, revs, "every event once, in revision order");

    // The server is healthy: it serves a new client at once.
    assert!(server.is_running());
    let fresh = server.connect().await;
    let probe = async {
        let mut kv = KvClient::new(fresh.clone());
        let r = kv
            .range(RangeRequest {
                key: b"slow/".to_vec(),
                range_end: b"slow0".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let st = MaintenanceClient::new(fresh.clone())
            .status(StatusRequest {})
            .await
            .unwrap()
            .into_inner();
        (r.count, st.leader)
    };
    let (count, leader) = tokio::time::timeout(Duration::from_secs(5), probe)
        .await
        .expect("server unresponsive");
    assert_eq!(count, PUTS as i64);
    assert_ne!(leader, 0);

    // The stalled watcher starts reading: everything, in order, nothing lost or repeated.
    let stalled_events = tokio::time::timeout(Duration::from_secs(60), read_all(&mut stalled))
        .await
        .expect("the stalled watcher did not catch up");
    assert_eq!(stalled_events, good_events);
}
