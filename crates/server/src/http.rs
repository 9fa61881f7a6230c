//! The client port's two protocols (etcd serves both on one listener through cmux): gRPC,
//! and plain HTTP — `/health`, `/version`, `/livez`, `/readyz` and the JSON gateway under
//! `/v3/` and `/v3beta/` (see [`crate::gateway`]).
//!
//! - **One router**: the gRPC services are tonic's [`Routes`] (an axum router with one route
//!   per service, `/etcdserverpb.KV/{*rest}` etc.). Everything no service route matches
//!   falls to [`ClientApi::serve_http`]: a request with a gRPC content type gets gRPC's
//!   Unimplemented as before, anything else is answered as etcd's HTTP mux answers it. The
//!   gRPC path is the one tonic always had (route lookup, no extra layer or copy).
//! - **Both HTTP versions**: on `http://` URLs the server accepts HTTP/1.1 beside HTTP/2
//!   (hyper's automatic connection builder looks at the first bytes of each connection). On
//!   `https://` URLs the TLS configuration offers `h2` and `http/1.1` by ALPN, as Go's server
//!   does, and [`split_by_alpn`] hands `h2` connections to an HTTP/2-only server (which
//!   speaks first, as clients that wait for the server's SETTINGS need) and the rest to one
//!   that accepts both.
//! - **Shared services**: every handler is one `Arc` shared by the gRPC servers and the
//!   gateway, so a JSON request runs exactly the code a gRPC request runs.
//! - Every HTTP answer carries etcd's CORS headers (etcd's default `--cors=*`); `OPTIONS`
//!   gets an empty 200.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use retcd_api::EtcdError;
use retcd_api::etcdserverpb::auth_server::AuthServer;
use retcd_api::etcdserverpb::cluster_server::ClusterServer;
use retcd_api::etcdserverpb::kv_server::KvServer;
use retcd_api::etcdserverpb::lease_server::LeaseServer;
use retcd_api::etcdserverpb::maintenance_server::MaintenanceServer;
use retcd_api::etcdserverpb::{AlarmType, RangeRequest};
use retcd_api::v3electionpb::election_server::ElectionServer;
use retcd_api::v3lockpb::lock_server::LockServer;
use retcd_api::watch_frame::framed::watch_server::WatchServer;
use retcd_watch::WatchableStore;
use tonic::service::Routes;

use crate::etcdserver::{ETCD_COMPAT_VERSION, EtcdServer};
use crate::services;

/// How long `/health`, `/livez` and `/readyz` wait for a read (etcd's health checks).
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The client API: every gRPC service, shared by the gRPC routes and the HTTP gateway.
pub struct ClientApi {
    pub s: Arc<EtcdServer>,
    pub kv: Arc<services::kv::KvService>,
    pub watch: Arc<services::watch::WatchService>,
    pub lease: Arc<services::lease::LeaseService>,
    pub cluster: Arc<services::cluster::ClusterService>,
    pub maintenance: Arc<services::maintenance::MaintenanceService>,
    pub auth: Arc<services::auth::AuthService>,
    pub lock: Arc<services::v3lock::LockService>,
    pub election: Arc<services::v3election::ElectionService>,
    /// Largest request a gRPC service decodes (`--max-request-bytes` plus gRPC's overhead);
    /// a JSON body may be twice that (base64 and field names).
    pub max_request: usize,
}

impl ClientApi {
    pub fn new(s: Arc<EtcdServer>, w: WatchableStore) -> Arc<ClientApi> {
        let recipes = services::concurrency::Recipes {
            s: s.clone(),
            w: w.clone(),
        };
        let max_request = s.cfg.max_request_bytes as usize + crate::GRPC_OVERHEAD_BYTES;
        Arc::new(ClientApi {
            kv: Arc::new(services::kv::KvService { s: s.clone() }),
            watch: Arc::new(services::watch::WatchService {
                s: s.clone(),
                w,
                progress_interval: s.cfg.watch_progress_notify_interval,
                leader: services::watch::LeaderMonitor::for_server(&s),
            }),
            lease: Arc::new(services::lease::LeaseService { s: s.clone() }),
            cluster: Arc::new(services::cluster::ClusterService { s: s.clone() }),
            maintenance: Arc::new(services::maintenance::MaintenanceService { s: s.clone() }),
            auth: Arc::new(services::auth::AuthService { s: s.clone() }),
            lock: Arc::new(services::v3lock::LockService { r: recipes.clone() }),
            election: Arc::new(services::v3election::ElectionService { r: recipes }),
            max_request,
            s,
        })
    }

    /// The client port's routes: the gRPC services, and [`Self::serve_http`] for the rest.
    pub fn routes(self: &Arc<Self>) -> Routes {
        let max = self.max_request;
        let mut b = Routes::builder();
        b.add_service(KvServer::from_arc(self.kv.clone()).max_decoding_message_size(max))
            .add_service(MaintenanceServer::from_arc(self.maintenance.clone()).max_decoding_message_size(max))
            .add_service(ClusterServer::from_arc(self.cluster.clone()))
            .add_service(WatchServer::from_arc(self.watch.clone()))
            .add_service(LeaseServer::from_arc(self.lease.clone()))
            .add_service(AuthServer::from_arc(self.auth.clone()))
            .add_service(LockServer::from_arc(self.lock.clone()))
            .add_service(ElectionServer::from_arc(self.election.clone()));
        let api = self.clone();
        let router = b.routes().into_axum_router().fallback(move |req: Request| {
            let api = api.clone();
            async move { api.serve_http(req).await }
        });
        Routes::from(router)
    }

    /// Every request no gRPC service route took.
    pub async fn serve_http(self: Arc<Self>, req: Request) -> Response {
        if is_grpc(req.headers()) {
            // what tonic's router answers for an unknown method
            return tonic::Status::unimplemented("").into_http();
        }
        let mut resp = if req.method() == Method::OPTIONS {
            Response::new(Body::empty())
        } else {
            crate::auth::without_peer_cn(self.route(req)).await
        };
        add_cors(resp.headers_mut());
        resp
    }

    async fn route(&self, req: Request) -> Response {
        // (the body is not `Sync`: only the parts are borrowed across awaits)
        let (parts, body) = req.into_parts();
        let path = parts.uri.path().to_string();
        match path.as_str() {
            "/health" => self.health(&parts).await,
            "/version" => version(&parts),
            "/metrics" => crate::metrics::http_response(self.s.clone()).await,
            p if p == "/livez" || p.starts_with("/livez/") => self.probe(&parts, Probe::Live).await,
            p if p == "/readyz" || p.starts_with("/readyz/") => self.probe(&parts, Probe::Ready).await,
            p => match p.strip_prefix("/v3/").or_else(|| p.strip_prefix("/v3beta/")) {
                Some(rest) => crate::gateway::serve(self, rest, parts, body).await,
                None => plain_error(StatusCode::NOT_FOUND, "404 page not found"),
            },
        }
    }

    /// etcd 3.4's `/health`: `{"health":"true"}` (200) or `{"health":"false"}` (503). Unhealthy
    /// with an alarm raised (unless named in `?exclude=`), without a leader, or when a
    /// linearizable read does not complete within a second. `?serializable=true` (etcd 3.5)
    /// skips the last two: the member itself is checked, not the cluster.
    async fn health(&self, req: &Parts) -> Response {
        if req.method != Method::GET {
            return method_not_allowed();
        }
        let q = query(req.uri.query());
        let exclude: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k == "exclude")
            .map(|(_, v)| v.as_str())
            .collect();
        let serializable = q.iter().any(|(k, v)| k == "serializable" && v == "true");
        match self.check_health(&exclude, serializable).await {
            Ok(()) => {
                let mut resp = Response::new(Body::from(r#"{"health":"true"}"#));
                resp.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
                resp
            }
            Err(reason) => {
                tracing::warn!(reason, "/health error (status code 503)");
                plain_error(StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
            }
        }
    }

    async fn check_health(&self, exclude: &[&str], serializable: bool) -> Result<(), String> {
        if let Some(a) = self
            .alarms()
            .await
            .into_iter()
            .find(|a| !exclude.contains(&a.as_str()))
        {
            return Err(format!("alarm {a} is active"));
        }
        if serializable {
            return Ok(());
        }
        if self.s.raft.status().leader.is_none() {
            return Err("no leader".into());
        }
        match tokio::time::timeout(HEALTH_READ_TIMEOUT, self.s.linearizable_read()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(st)) => Err(st.message().to_string()),
            Err(_) => Err("linearizable read timed out".into()),
        }
    }

    /// The names of the alarms raised in the cluster, from this member's alarm store (as
    /// etcd's health check reads them: no raft round trip).
    async fn alarms(&self) -> Vec<String> {
        self.s
            .alarms
            .get(AlarmType::None as i32)
            .iter()
            .filter_map(|a| AlarmType::try_from(a.alarm).ok())
            .filter(|a| *a != AlarmType::None)
            .map(|a| a.as_str_name().to_string())
            .collect()
    }

    /// etcd 3.5's `/livez` and `/readyz` (and `/livez/<check>`, `/readyz/<check>`): "ok" or
    /// 503 with the failed checks; `?verbose` lists every check, `?exclude=<check>` skips one.
    async fn probe(&self, req: &Parts, probe: Probe) -> Response {
        if req.method != Method::GET {
            return method_not_allowed();
        }
        let (name, all) = match probe {
            Probe::Live => ("livez", &["serializable_read"][..]),
            Probe::Ready => (
                "readyz",
                &["data_corruption", "serializable_read", "linearizable_read"][..],
            ),
        };
        let sub = req
            .uri
            .path()
            .trim_start_matches('/')
            .strip_prefix(name)
            .unwrap_or("");
        let checks: Vec<&str> = match sub.strip_prefix('/') {
            None => all.to_vec(),
            Some(one) if all.contains(&one) => vec![one],
            Some(_) => return plain_error(StatusCode::NOT_FOUND, "404 page not found"),
        };
        let q = query(req.uri.query());
        let verbose = q.iter().any(|(k, _)| k == "verbose");
        let excluded = |c: &str| q.iter().any(|(k, v)| k == "exclude" && v == c);
        let mut out = String::new();
        let mut healthy = true;
        for c in checks {
            if excluded(c) {
                out.push_str(&format!("[+]{c} excluded: ok\n"));
                continue;
            }
            match self.run_check(c).await {
                Ok(()) => out.push_str(&format!("[+]{c} ok\n")),
                Err(e) => {
                    healthy = false;
                    out.push_str(&format!("[-]{c} failed: {e}\n"));
                }
            }
        }
        if !healthy {
            out.push_str(&format!("{name} check failed"));
            tracing::warn!(path = %req.uri.path(), "{out}");
            return plain_error(StatusCode::SERVICE_UNAVAILABLE, &out);
        }
        out.push_str(&format!("{name} check passed\n"));
        let body = if verbose {
            format!("{out}ok\n")
        } else {
            "ok\n".to_string()
        };
        let mut resp = Response::new(Body::from(body));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        resp
    }

    async fn run_check(&self, check: &str) -> Result<(), String> {
        match check {
            "data_corruption" => {
                if self
                    .alarms()
                    .await
                    .iter()
                    .any(|a| a == AlarmType::Corrupt.as_str_name())
                {
                    return Err("alarm CORRUPT is active".into());
                }
                Ok(())
            }
            "serializable_read" | "linearizable_read" => {
                let r = RangeRequest {
                    key: b"health".to_vec(),
                    keys_only: true,
                    limit: 1,
                    serializable: check == "serializable_read",
                    ..Default::default()
                };
                match tokio::time::timeout(HEALTH_READ_TIMEOUT, self.s.range(r)).await {
                    Ok(Ok(_)) => Ok(()),
                    // with auth enabled an anonymous read is refused after it was served
                    Ok(Err(st))
                        if st.message() == tonic::Status::from(EtcdError::UserEmpty).message()
                            || st.message() == tonic::Status::from(EtcdError::PermissionDenied).message() =>
                    {
                        Ok(())
                    }
                    Ok(Err(st)) => Err(st.message().to_string()),
                    Err(_) => Err("read timed out".into()),
                }
            }
            _ => Ok(()),
        }
    }
}

/// A TLS connection on a client URL.
pub type TlsConn = retcd_tls::tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// Splits handshaken TLS connections by the protocol ALPN chose: `h2` connections go to an
/// HTTP/2-only server, which speaks first (its SETTINGS) as Go's does — clients such as
/// retcdctl wait for that before sending anything, so a server that first reads to tell the
/// HTTP version would never hear from them; the others (`http/1.1`, no ALPN) go to a server
/// that accepts both versions. Stops accepting when `stop` fires or both servers are gone.
pub fn split_by_alpn(
    mut incoming: impl futures::Stream<Item = std::io::Result<TlsConn>> + Unpin + Send + 'static,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (
    tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsConn>>,
    tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsConn>>,
) {
    use futures::StreamExt;
    let (h2_tx, h2_rx) = tokio::sync::mpsc::channel(16);
    let (other_tx, other_rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                c = incoming.next() => c,
                _ = stop.wait_for(|v| *v) => None,
            };
            let Some(conn) = conn else { return };
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    continue;
                }
            };
            let tx = if conn.get_ref().1.alpn_protocol() == Some(b"h2") {
                &h2_tx
            } else {
                &other_tx
            };
            if tx.send(Ok(conn)).await.is_err() && h2_tx.is_closed() && other_tx.is_closed() {
                return;
            }
        }
    });
    (
        tokio_stream::wrappers::ReceiverStream::new(h2_rx),
        tokio_stream::wrappers::ReceiverStream::new(other_rx),
    )
}

#[derive(Clone, Copy)]
enum Probe {
    Live,
    Ready,
}

/// etcd's `/version`: the server version Status reports and the cluster version (its
/// major.minor.0, as etcd derives it).
fn version(req: &Parts) -> Response {
    if req.method != Method::GET {
        return method_not_allowed();
    }
    let body = format!(
        r#"{{"etcdserver":"{ETCD_COMPAT_VERSION}","etcdcluster":"{}"}}"#,
        cluster_version()
    );
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// `major.minor.0` of [`ETCD_COMPAT_VERSION`].
pub fn cluster_version() -> String {
    let mut parts = ETCD_COMPAT_VERSION.split('.');
    let major = parts.next().unwrap_or("3");
    let minor = parts.next().unwrap_or("0");
    format!("{major}.{minor}.0")
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Go's `http.Error`: a plain-text body ending in a newline.
pub fn plain_error(status: StatusCode, msg: &str) -> Response {
    let mut resp = Response::new(Body::from(format!("{msg}\n")));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// etcd's answer to a method other than GET on `/health`, `/version` and the probes.
fn method_not_allowed() -> Response {
    let mut resp = plain_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    resp
}

fn is_grpc(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

fn add_cors(h: &mut HeaderMap) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
}

/// The query's `key=value` pairs, percent-decoded (`+` is a space), as Go's `URL.Query`.
fn query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode_like_go() {
        assert_eq!(
            query(Some("exclude=NOSPACE&exclude=CORRUPT&verbose&a=b%20c+d")),
            vec![
                ("exclude".to_string(), "NOSPACE".to_string()),
                ("exclude".to_string(), "CORRUPT".to_string()),
                ("verbose".to_string(), String::new()),
                ("a".to_string(), "b c d".to_string()),
            ]
        );
        assert_eq!(unescape("%zz%4"), "%zz%4");
    }

    #[test]
    fn cluster_version_is_major_minor_zero() {
        let v = cluster_version();
        assert!(ETCD_COMPAT_VERSION.starts_with(v.trim_end_matches(".0")));
        assert!(v.ends_with(".0"));
    }
}
