//! Watch features etcdctl 3.4 cannot reach, over raw gRPC against the retcd binary.
//!
//! - `fragment`: a response of at least etcd's send limit (`--max-request-bytes` + 512 KiB
//!   gRPC overhead, as etcd's watch server) with two or more events reaches a watcher that
//!   asked for fragments as several responses, all but the last marked `fragment`, each as
//!   full as the limit allows; the same response reaches a watcher without `fragment` whole.
//! - `hasleader: true` metadata (etcd's `WithRequireLeader`): with a leader, such a watch works
//!   like any other. (Losing the leader is unit-tested in `services/watch.rs` with an injected
//!   leader check: a single member always has one.)

mod common;

use std::time::Duration;

use prost::Message;
use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::watch_client::WatchClient;
use retcd_api::etcdserverpb::watch_request::RequestUnion;
use retcd_api::etcdserverpb::{
    PutRequest, RequestOp, TxnRequest, WatchCreateRequest, WatchRequest, WatchResponse, request_op,
};
use retcd_api::mvccpb;
use tonic::Streaming;
use tonic::transport::Channel;

/// etcd's default `--max-request-bytes` plus its `grpcOverheadBytes`.
const SEND_LIMIT: usize = 1_572_864 + 512 * 1024;
const VALUE: usize = 100_000;

fn create(start_revision: i64, fragment: bool, prev_kv: bool) -> WatchRequest {
    WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: b"big/".to_vec(),
            range_end: b"big0".to_vec(),
            start_revision,
            fragment,
            prev_kv,
            ..Default::default()
        })),
    }
}

/// Opens a watch stream with one create request; the request side stays open.
async fn open(
    c: &mut WatchClient<Channel>,
    req: WatchRequest,
    require_leader: bool,
) -> Streaming<WatchResponse> {
    let reqs = tokio_stream::StreamExt::chain(tokio_stream::iter([req]), tokio_stream::pending());
    let mut r = tonic::Request::new(reqs);
    if require_leader {
        r.metadata_mut().insert("hasleader", "true".parse().unwrap());
    }
    let mut s = c.watch(r).await.expect("watch").into_inner();
    assert!(next(&mut s).await.created);
    s
}

async fn next(s: &mut Streaming<WatchResponse>) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(20), s.message())
        .await
        .expect("no watch response within 20 s")
        .expect("watch stream failed")
        .expect("watch stream ended")
}

/// Reads responses until `want` events arrived (fragments of one response follow each
/// other).
async fn collect(s: &mut Streaming<WatchResponse>, want: usize) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    while out.iter().map(|r: &WatchResponse| r.events.len()).sum::<usize>() < want {
        out.push(next(s).await);
    }
    out
}

fn event_field_len(ev: &mvccpb::Event) -> usize {
    let len = ev.encoded_len();
    prost::encoding::key_len(11) + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Checks `frags` are `whole` fragmented as etcd's `sendFragments` does.
fn assert_fragmented(frags: &[WatchResponse], whole: &WatchResponse) {
    assert!(
        whole.encoded_len() >= SEND_LIMIT,
        "test data too small to fragment"
    );
    assert!(frags.len() >= 2, "{} responses", frags.len());
    let flags: Vec<bool> = frags.iter().map(|r| r.fragment).collect();
    let mut want = vec![true; frags.len() - 1];
    want.push(false);
    assert_eq!(flags, want);
    for (i, r) in frags.iter().enumerate() {
        assert_eq!(r.watch_id, whole.watch_id);
        assert!(!r.events.is_empty());
        // Under the limit (counted with `fragment` set, as etcd does) unless a lone event...
        let mut as_fragment = r.clone();
        as_fragment.fragment = true;
        assert!(as_fragment.encoded_len() < SEND_LIMIT || r.events.len() == 1);
        // ...and full: the next event would have reached it.
        if let Some(n) = frags.get(i + 1) {
            assert!(as_fragment.encoded_len() + event_field_len(&n.events[0]) >= SEND_LIMIT);
        }
    }
    let joined: Vec<mvccpb::Event> = frags.iter().flat_map(|r| r.events.clone()).collect();
    assert_eq!(joined, whole.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_responses_are_fragmented_only_when_asked() {
    let server = common::FlaggedRetcd::start(&[]);
    let mut kv = KvClient::new(server.connect().await);
    // Its own connection: an h2 client returns connection-level flow-control credit only
    // as streams are read, so unread watch data would hold up the KV responses.
    let mut wc = WatchClient::new(server.connect().await);

    // History: 24 puts of 100 kB (revisions 2..=25), replayed to new watchers in one batch.
    for i in 0..24 {
        kv.put(PutRequest {
            key: format!("big/{i:02}").into_bytes(),
            value: vec![b'a' + i as u8; VALUE],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut whole = open(&mut wc, create(2, false, false), false).await;
    let mut frag = open(&mut wc, create(2, true, false), false).await;
    let w = collect(&mut whole, 24).await;
    assert_eq!(w.len(), 1, "without fragment the batch stays one response");
    assert!(!w[0].fragment);
    let f = collect(&mut frag, 24).await;
    assert_fragmented(&f, &w[0]);

    // One revision of 14 events, doubled by prev_kv: split only for the fragment watcher.
    let mut whole = open(&mut wc, create(0, false, true), false).await;
    let mut frag = open(&mut wc, create(0, true, true), false).await;
    let ops = (0..14)
        .map(|i| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: format!("big/{i:02}").into_bytes(),
                value: vec![b'A' + i as u8; VALUE],
                ..Default::default()
            })),
        })
        .collect();
    let rev = kv
        .txn(TxnRequest {
            success: ops,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    let w = collect(&mut whole, 14).await;
    assert_eq!(w.len(), 1, "one revision is never split without fragment");
    assert!(
        w[0].events
            .iter()
            .all(|e| e.prev_kv.is_some() && e.kv.as_ref().unwrap().mod_revision == rev)
    );
    let f = collect(&mut frag, 14).await;
    assert_fragmented(&f, &w[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_with_hasleader_metadata_works() {
    let server = common::FlaggedRetcd::start(&[]);
    let ch = server.connect().await;
    let mut kv = KvClient::new(ch.clone());
    let mut wc = WatchClient::new(ch);
    let mut s = open(&mut wc, create(0, false, false), true).await;
    kv.put(PutRequest {
        key: b"big/x".to_vec(),
        value: b"1".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let r = next(&mut s).await;
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.events[0].kv.as_ref().unwrap().key, b"big/x");
}
