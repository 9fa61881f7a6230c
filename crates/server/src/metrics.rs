//! Prometheus metrics with etcd's names (what dashboards and alerts written for etcd read):
//! server and raft state, proposals, WAL fsync and backend commit latencies, backend size,
//! keys, peer round trips, per-method gRPC counters (go-grpc-prometheus's names and labels)
//! and the process collector (`process_*`). Rendered in the text exposition format by
//! [`render`] for `/metrics`.
//!
//! Counters and histograms are updated where things happen (the apply loop, proposals, the
//! gRPC layer, raft-node's observers); gauges that mirror state (leader, indexes, sizes) are
//! read when scraped. One set per process.

use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use tonic::codegen::http;

use crate::etcdserver::EtcdServer;

/// etcd's disk latency buckets: 1 ms doubling to about 8 s.
fn disk_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 14).unwrap_or_default()
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    pub has_leader: IntGauge,
    pub is_leader: IntGauge,
    pub leader_changes: IntCounter,
    pub proposals_committed: IntGauge,
    pub proposals_applied: IntGauge,
    pub proposals_pending: IntGauge,
    pub proposals_failed: IntCounter,
    pub server_id: IntGaugeVec,
    pub server_version: IntGaugeVec,
    pub cluster_version: IntGaugeVec,
    pub wal_fsync: Histogram,
    pub backend_commit: Histogram,
    pub db_size: IntGauge,
    pub db_size_in_use: IntGauge,
    pub keys: IntGauge,
    pub mvcc_put: IntCounter,
    pub mvcc_delete: IntCounter,
    pub mvcc_range: IntCounter,
    pub mvcc_txn: IntCounter,
    pub peer_rtt: HistogramVec,
    pub grpc_started: IntCounterVec,
    pub grpc_handled: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::with_opts(Opts::new(name, help)).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(c.clone()));
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help)).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(g.clone()));
    g
}

fn histogram(r: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(disk_buckets()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(r, Box::new(h.clone()));
    h
}

fn register(r: &Registry, c: Box<dyn prometheus::core::Collector>) {
    // names are fixed and distinct: a failure is a programming error found by the tests
    if let Err(e) = r.register(c) {
        panic!("registering a metric: {e}");
    }
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        register(
            &r,
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        );
        let gauge_vec = |name: &str, help: &str, label: &str| {
            let g = IntGaugeVec::new(Opts::new(name, help), &[label])
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            register(&r, Box::new(g.clone()));
            g
        };
        let grpc_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            register(&r, Box::new(c.clone()));
            c
        };
        let peer_rtt = HistogramVec::new(
            HistogramOpts::new(
                "etcd_network_peer_round_trip_time_seconds",
                "Round-Trip-Time histogram between peers",
            )
            .buckets(prometheus::exponential_buckets(0.0001, 2.0, 14).unwrap_or_default()),
            &["To"],
        )
        .unwrap_or_else(|e| panic!("metric peer rtt: {e}"));
        register(&r, Box::new(peer_rtt.clone()));
        Metrics {
            has_leader: gauge(
                &r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                &r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            leader_changes: counter(
                &r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            proposals_committed: gauge(
                &r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                &r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                &r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            proposals_failed: counter(
                &r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            server_id: gauge_vec(
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                "server_id",
            ),
            server_version: gauge_vec(
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                "server_version",
            ),
            cluster_version: gauge_vec(
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                "cluster_version",
            ),
            wal_fsync: histogram(
                &r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
            ),
            backend_commit: histogram(
                &r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
            ),
            db_size: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_size_in_use: gauge(
                &r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            keys: gauge(&r, "etcd_debugging_mvcc_keys_total", "Total number of keys."),
            mvcc_put: counter(
                &r,
                "etcd_mvcc_put_total",
                "Total number of puts seen by this member.",
            ),
            mvcc_delete: counter(
                &r,
                "etcd_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            ),
            mvcc_range: counter(
                &r,
                "etcd_mvcc_range_total",
                "Total number of ranges seen by this member.",
            ),
            mvcc_txn: counter(
                &r,
                "etcd_mvcc_txn_total",
                "Total number of txns seen by this member.",
            ),
            peer_rtt,
            grpc_started: grpc_vec(
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &["grpc_type", "grpc_service", "grpc_method"],
            ),
            grpc_handled: grpc_vec(
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            ),
            registry: r,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Feeds raft-node's measurements into the histograms.
struct RaftObserver;

impl retcd_raft_node::observe::Observer for RaftObserver {
    fn wal_fsync(&self, took: Duration) {
        get().wal_fsync.observe(took.as_secs_f64());
    }

    fn peer_round_trip(&self, to: u64, took: Duration) {
        get()
            .peer_rtt
            .with_label_values(&[&format!("{to:x}")])
            .observe(took.as_secs_f64());
    }
}

/// Sets the constant metrics and starts counting leader changes (until the task is
/// aborted or raft stops).
pub fn start(s: &std::sync::Arc<EtcdServer>, cluster_version: &str) -> tokio::task::JoinHandle<()> {
    retcd_raft_node::observe::set_observer(Box::new(RaftObserver));
    let m = get();
    m.server_id
        .with_label_values(&[&format!("{:x}", s.member_id)])
        .set(1);
    m.server_version
        .with_label_values(&[crate::etcdserver::ETCD_COMPAT_VERSION])
        .set(1);
    m.cluster_version.with_label_values(&[cluster_version]).set(1);
    let raft = s.raft.clone();
    tokio::spawn(async move {
        let mut known = None;
        loop {
            match raft.leader_changed(known).await {
                Ok(now) => {
                    // etcd counts every change to a new leader (not the loss of one)
                    if now.is_some() {
                        get().leader_changes.inc();
                    }
                    known = now;
                }
                Err(_) => return,
            }
        }
    })
}

/// The `/metrics` answer: the text exposition format, rendered on a blocking thread (the
/// backend's size in use may walk redb's pages).
pub async fn http_response(s: std::sync::Arc<EtcdServer>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let text = tokio::task::spawn_blocking(move || render(&s))
        .await
        .unwrap_or_default();
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /metrics` on `--listen-metrics-urls` (the client URLs serve it too, see `http.rs`).
pub fn routes(s: std::sync::Arc<EtcdServer>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let s = s.clone();
            async move { http_response(s).await }
        }),
    )
}

/// The text exposition of every metric, gauges refreshed from `s` first.
pub fn render(s: &EtcdServer) -> String {
    let m = get();
    let st = s.raft.status();
    m.has_leader.set(i64::from(st.leader.is_some()));
    m.is_leader.set(i64::from(st.is_leader));
    m.proposals_committed.set(st.committed_index as i64);
    m.proposals_applied.set(st.applied_index as i64);
    m.proposals_pending.set(s.wait.pending() as i64);
    m.db_size.set(s.store.db_size() as i64);
    m.db_size_in_use.set(s.store.db_size_in_use() as i64);
    m.keys.set(s.store.key_count() as i64);
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&m.registry.gather(), &mut out) {
        tracing::warn!(error = %e, "encoding metrics");
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// gRPC: go-grpc-prometheus's grpc_server_started_total / grpc_server_handled_total
// ---------------------------------------------------------------------------------------

/// go-grpc-prometheus's `grpc_type` of etcd's methods.
fn grpc_type(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => "server_stream",
        _ => "unary",
    }
}

/// go's `codes.Code.String()`.
fn code_name(code: &str) -> &'static str {
    match code.trim() {
        "0" => "OK",
        "1" => "Canceled",
        "2" => "Unknown",
        "3" => "InvalidArgument",
        "4" => "DeadlineExceeded",
        "5" => "NotFound",
        "6" => "AlreadyExists",
        "7" => "PermissionDenied",
        "8" => "ResourceExhausted",
        "9" => "FailedPrecondition",
        "10" => "Aborted",
        "11" => "OutOfRange",
        "12" => "Unimplemented",
        "13" => "Internal",
        "14" => "Unavailable",
        "15" => "DataLoss",
        "16" => "Unauthenticated",
        _ => "Unknown",
    }
}

/// The tower layer counting every gRPC call by method and code.
#[derive(Clone, Copy, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// The labels of one call: (type, service, method).
#[derive(Clone)]
struct CallLabels {
    kind: &'static str,
    service: String,
    method: String,
}

impl CallLabels {
    /// `/package.Service/Method` only (HTTP paths such as `/v3/kv/range` are not gRPC).
    fn of(path: &str) -> Option<CallLabels> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        if !service.contains('.') || method.contains('/') {
            return None;
        }
        Some(CallLabels {
            kind: grpc_type(service, method),
            service: service.to_string(),
            method: method.to_string(),
        })
    }

    fn handled(&self, code: &str) {
        get()
            .grpc_handled
            .with_label_values(&[self.kind, &self.service, &self.method, code_name(code)])
            .inc();
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for GrpcMetrics<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body,
{
    type Response = http::Response<CountedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let labels = CallLabels::of(req.uri().path());
        if let Some(l) = &labels {
            get()
                .grpc_started
                .with_label_values(&[l.kind, &l.service, &l.method])
                .inc();
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            let mut labels = labels;
            // a trailers-only response (an error) carries the status in its headers
            if let Some(code) = resp.headers().get("grpc-status").and_then(|v| v.to_str().ok())
                && let Some(l) = labels.take()
            {
                l.handled(code);
            }
            Ok(resp.map(|body| CountedBody { inner: body, labels }))
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that records the call's code when its trailers go by (or Canceled
    /// if it is dropped before them: the client went away).
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        labels: Option<CallLabels>,
    }

    impl<B> PinnedDrop for CountedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(l) = this.project().labels.take() {
                l.handled("1");
            }
        }
    }
}

impl<B: http_body::Body> http_body::Body for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(trailers) = frame.trailers_ref()
            && let Some(code) = trailers.get("grpc-status").and_then(|v| v.to_str().ok())
            && let Some(l) = this.labels.take()
        {
            l.handled(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_has_etcds_names() {
        let m = get();
        m.grpc_handled
            .with_label_values(&["unary", "etcdserverpb.KV", "Range", "OK"])
            .inc();
        m.peer_rtt.with_label_values(&["1"]).observe(0.001);
        let mut out = Vec::new();
        TextEncoder::new().encode(&m.registry.gather(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for name in [
            "etcd_server_has_leader",
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
            "etcd_network_peer_round_trip_time_seconds_bucket{To=\"1\"",
            "grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}",
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }

    #[test]
    fn labels_of_paths() {
        let l = CallLabels::of("/etcdserverpb.Watch/Watch").unwrap();
        assert_eq!(
            (l.kind, l.service.as_str(), l.method.as_str()),
            ("bidi_stream", "etcdserverpb.Watch", "Watch")
        );
        assert_eq!(CallLabels::of("/etcdserverpb.KV/Put").unwrap().kind, "unary");
        assert!(CallLabels::of("/health").is_none());
        assert!(CallLabels::of("/v3/kv/range").is_none());
        assert_eq!(code_name("8"), "ResourceExhausted");
    }
}
