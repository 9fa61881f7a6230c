//! The Rust `etcd-client` crate's watch API against retcd (against etcd with
//! `RETCD_COMPAT_SELFTEST=1`): history and live events with prev_kv, several watchers on one
//! stream with client-chosen ids and filters, cancel, progress requests, a compacted start
//! revision; the client requires a leader (`hasleader` metadata) throughout.

mod common;

use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, ConnectOptions, EventType, WatchFilterType, WatchOptions, WatchResponse,
    WatchStream,
};

async fn next(s: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), s.message())
        .await
        .expect("no watch response within 10 s")
        .expect("watch stream failed")
        .expect("watch stream ended")
}

/// (type, key, value, prev value) of each event.
fn summary(r: &WatchResponse) -> Vec<(EventType, String, String, Option<String>)> {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    r.events()
        .iter()
        .map(|e| {
            let kv = e.kv().unwrap();
            (
                e.event_type(),
                s(kv.key()),
                s(kv.value()),
                e.prev_kv().map(|p| s(p.value())),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_etcd_client_watch_api() {
    let server = common::Server::start(common::kind_under_test());
    let opts = ConnectOptions::new()
        .with_require_leader(true)
        .with_connect_timeout(Duration::from_secs(5));
    let mut c = Client::connect([server.endpoint()], Some(opts)).await.unwrap();

    let first = c
        .put("rs/a", "1", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    c.put("rs/a", "2", None).await.unwrap();
    c.put("other", "x", None).await.unwrap();

    // History from `first`, then live events, with previous values.
    let mut s = c
        .watch(
            "rs/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_prev_key()
                    .with_start_revision(first),
            ),
        )
        .await
        .unwrap();
    let created = next(&mut s).await;
    assert!(created.created() && !created.canceled());
    let main_id = created.watch_id();
    let mut history = Vec::new();
    while history.len() < 2 {
        let r = next(&mut s).await;
        assert_eq!(r.watch_id(), main_id);
        history.extend(summary(&r));
    }
    assert_eq!(
        history,
        [
            (EventType::Put, "rs/a".into(), "1".into(), None),
            (EventType::Put, "rs/a".into(), "2".into(), Some("1".into())),
        ]
    );
    c.put("rs/b", "3", None).await.unwrap();
    assert_eq!(
        summary(&next(&mut s).await),
        [(EventType::Put, "rs/b".into(), "3".into(), None)]
    );

    // A second watcher on the same stream: client-chosen id, deletes only.
    s.watch(
        "rs/a",
        Some(
            WatchOptions::new()
                .with_watch_id(7)
                .with_filters([WatchFilterType::NoPut]),
        ),
    )
    .await
    .unwrap();
    let r = next(&mut s).await;
    assert!(r.created() && r.watch_id() == 7, "{r:?}");
    c.put("rs/a", "4", None).await.unwrap();
    c.delete("rs/a", None).await.unwrap();
    let (mut main_events, mut deletes) = (Vec::new(), Vec::new());
    while main_events.len() < 2 || deletes.is_empty() {
        let r = next(&mut s).await;
        match r.watch_id() {
            7 => deletes.extend(summary(&r)),
            id => {
                assert_eq!(id, main_id);
                main_events.extend(summary(&r));
            }
        }
    }
    assert_eq!(deletes, [(EventType::Delete, "rs/a".into(), String::new(), None)]);
    assert_eq!(
        main_events,
        [
            (EventType::Put, "rs/a".into(), "4".into(), Some("2".into())),
            (EventType::Delete, "rs/a".into(), String::new(), Some("4".into())),
        ]
    );

    // Cancel, then a progress request answered for the whole stream.
    s.cancel(7).await.unwrap();
    let r = next(&mut s).await;
    assert!(r.canceled() && r.watch_id() == 7, "{r:?}");
    s.request_progress().await.unwrap();
    let r = next(&mut s).await;
    assert_eq!((r.watch_id(), r.events().len()), (-1, 0), "{r:?}");
    let rev = r.header().unwrap().revision();

    // A compacted start revision: created, then canceled with the compaction revision.
    c.compact(rev, Some(CompactionOptions::new().with_physical()))
        .await
        .unwrap();
    let mut old = c
        .watch(
            "rs/",
            Some(WatchOptions::new().with_prefix().with_start_revision(first)),
        )
        .await
        .unwrap();
    assert!(next(&mut old).await.created());
    let r = next(&mut old).await;
    assert!(r.canceled(), "{r:?}");
    assert_eq!(r.compact_revision(), rev);
}
