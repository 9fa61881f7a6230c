//! etcd's gRPC gateway: the v3 API as JSON over HTTP, `POST /v3/<path>` (and the same under
//! `/v3beta/`, as etcd 3.4), with etcd's paths (`kv/range`, `lease/keepalive`,
//! `cluster/member/list`, ...).
//!
//! - **Same code as gRPC**: the JSON body becomes the prost request (pbjson's serde impls,
//!   proto3 JSON with proto field names), and the method of the shared gRPC service runs
//!   (see [`crate::http::ClientApi`]), so checks, auth and errors are the gRPC ones. The
//!   `Authorization` header and `Grpc-Metadata-<key>` headers become gRPC metadata, as
//!   grpc-gateway forwards them (`authorization` is where [`crate::auth`] finds a token
//!   when there is no `token`).
//! - **Unary**: the first JSON value of the body is the request (an empty body or `null` is
//!   the empty request; `null` fields are unset); the answer is the response's JSON with
//!   `Content-Type: application/json`.
//! - **Streams** (`watch`, `lease/keepalive`, `maintenance/snapshot`, `election/observe`): the
//!   body is read as a sequence of JSON values, each one request of the stream; the answer is
//!   chunked, one `{"result":<response>}` per line. The body ending ends a keep-alive stream;
//!   a watch stays open (as etcd's watch server ignores the client closing its side) until
//!   the client goes away.
//! - **Errors** as grpc-gateway v1 writes them: a failed call answers the HTTP status mapped
//!   from the gRPC code and `{"error":<msg>,"message":<msg>,"code":<code>}`; an error on a
//!   stream is one last line `{"error":{"grpc_code":..,"http_code":..,"message":..,
//!   "http_status":..}}`. A body that is not the request's JSON is InvalidArgument (400).
//!   Another method than POST is a plain-text 405, an unknown path a plain-text 404.

use std::convert::Infallible;
use std::future::Future;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use futures::{Stream, StreamExt};
use retcd_api::etcdserverpb::auth_server::Auth;
use retcd_api::etcdserverpb::cluster_server::Cluster;
use retcd_api::etcdserverpb::kv_server::Kv;
use retcd_api::etcdserverpb::lease_server::Lease;
use retcd_api::etcdserverpb::maintenance_server::Maintenance;
use retcd_api::v3electionpb::election_server::Election;
use retcd_api::v3lockpb::lock_server::Lock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status, Streaming};

use crate::http::{ClientApi, plain_error};

/// Every path the gateway answers under `/v3/` (etcd 3.4's `google.api.http` bindings, plus
/// etcd 3.5's `auth/status`, `maintenance/hashkv` and `maintenance/downgrade`).
const PATHS: &[&str] = &[
    "kv/range",
    "kv/put",
    "kv/deleterange",
    "kv/txn",
    "kv/compaction",
    "watch",
    "lease/grant",
    "lease/revoke",
    "kv/lease/revoke",
    "lease/keepalive",
    "lease/timetolive",
    "kv/lease/timetolive",
    "lease/leases",
    "kv/lease/leases",
    "cluster/member/add",
    "cluster/member/remove",
    "cluster/member/update",
    "cluster/member/list",
    "cluster/member/promote",
    "maintenance/alarm",
    "maintenance/status",
    "maintenance/defragment",
    "maintenance/hash",
    "maintenance/hashkv",
    "maintenance/snapshot",
    "maintenance/transfer-leadership",
    "maintenance/downgrade",
    "auth/enable",
    "auth/disable",
    "auth/status",
    "auth/authenticate",
    "auth/user/add",
    "auth/user/get",
    "auth/user/list",
    "auth/user/delete",
    "auth/user/changepw",
    "auth/user/grant",
    "auth/user/revoke",
    "auth/role/add",
    "auth/role/get",
    "auth/role/list",
    "auth/role/delete",
    "auth/role/grant",
    "auth/role/revoke",
    "lock/lock",
    "lock/unlock",
    "election/campaign",
    "election/proclaim",
    "election/leader",
    "election/observe",
    "election/resign",
];

/// Serves `POST /v3/<path>`; `path` is what follows the prefix.
pub async fn serve(api: &ClientApi, path: &str, parts: Parts, body: Body) -> Response {
    if !PATHS.contains(&path) {
        // grpc-gateway's own answer for a path it has no binding for
        return plain_error(StatusCode::NOT_FOUND, "Not Found");
    }
    if parts.method != Method::POST {
        return plain_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let limit = api.max_request.saturating_mul(2);
    let p = &parts;
    match path {
        "kv/range" => unary(p, body, limit, |r| api.kv.range(r)).await,
        "kv/put" => unary(p, body, limit, |r| api.kv.put(r)).await,
        "kv/deleterange" => unary(p, body, limit, |r| api.kv.delete_range(r)).await,
        "kv/txn" => unary(p, body, limit, |r| api.kv.txn(r)).await,
        "kv/compaction" => unary(p, body, limit, |r| api.kv.compact(r)).await,
        "watch" => bidi(p, body, true, |r| api.watch.responses(r)).await,
        "lease/grant" => unary(p, body, limit, |r| api.lease.lease_grant(r)).await,
        "lease/revoke" | "kv/lease/revoke" => unary(p, body, limit, |r| api.lease.lease_revoke(r)).await,
        "lease/keepalive" => bidi(p, body, false, |r| api.lease.lease_keep_alive(r)).await,
        "lease/timetolive" | "kv/lease/timetolive" => {
            unary(p, body, limit, |r| api.lease.lease_time_to_live(r)).await
        }
        "lease/leases" | "kv/lease/leases" => unary(p, body, limit, |r| api.lease.lease_leases(r)).await,
        "cluster/member/add" => unary(p, body, limit, |r| api.cluster.member_add(r)).await,
        "cluster/member/remove" => unary(p, body, limit, |r| api.cluster.member_remove(r)).await,
        "cluster/member/update" => unary(p, body, limit, |r| api.cluster.member_update(r)).await,
        "cluster/member/list" => unary(p, body, limit, |r| api.cluster.member_list(r)).await,
        "cluster/member/promote" => unary(p, body, limit, |r| api.cluster.member_promote(r)).await,
        "maintenance/alarm" => unary(p, body, limit, |r| api.maintenance.alarm(r)).await,
        "maintenance/status" => unary(p, body, limit, |r| api.maintenance.status(r)).await,
        "maintenance/defragment" => unary(p, body, limit, |r| api.maintenance.defragment(r)).await,
        // etcd 3.4 binds both Hash and HashKV to this path; Hash is the one that answers
        "maintenance/hash" => unary(p, body, limit, |r| api.maintenance.hash(r)).await,
        "maintenance/hashkv" => unary(p, body, limit, |r| api.maintenance.hash_kv(r)).await,
        "maintenance/snapshot" => server_stream(p, body, limit, |r| api.maintenance.snapshot(r)).await,
        "maintenance/transfer-leadership" => unary(p, body, limit, |r| api.maintenance.move_leader(r)).await,
        "maintenance/downgrade" => unary(p, body, limit, |r| api.maintenance.downgrade(r)).await,
        "auth/enable" => unary(p, body, limit, |r| api.auth.auth_enable(r)).await,
        "auth/disable" => unary(p, body, limit, |r| api.auth.auth_disable(r)).await,
        "auth/status" => unary(p, body, limit, |r| api.auth.auth_status(r)).await,
        "auth/authenticate" => unary(p, body, limit, |r| api.auth.authenticate(r)).await,
        "auth/user/add" => unary(p, body, limit, |r| api.auth.user_add(r)).await,
        "auth/user/get" => unary(p, body, limit, |r| api.auth.user_get(r)).await,
        "auth/user/list" => unary(p, body, limit, |r| api.auth.user_list(r)).await,
        "auth/user/delete" => unary(p, body, limit, |r| api.auth.user_delete(r)).await,
        "auth/user/changepw" => unary(p, body, limit, |r| api.auth.user_change_password(r)).await,
        "auth/user/grant" => unary(p, body, limit, |r| api.auth.user_grant_role(r)).await,
        "auth/user/revoke" => unary(p, body, limit, |r| api.auth.user_revoke_role(r)).await,
        "auth/role/add" => unary(p, body, limit, |r| api.auth.role_add(r)).await,
        "auth/role/get" => unary(p, body, limit, |r| api.auth.role_get(r)).await,
        "auth/role/list" => unary(p, body, limit, |r| api.auth.role_list(r)).await,
        "auth/role/delete" => unary(p, body, limit, |r| api.auth.role_delete(r)).await,
        "auth/role/grant" => unary(p, body, limit, |r| api.auth.role_grant_permission(r)).await,
        "auth/role/revoke" => unary(p, body, limit, |r| api.auth.role_revoke_permission(r)).await,
        "lock/lock" => unary(p, body, limit, |r| api.lock.lock(r)).await,
        "lock/unlock" => unary(p, body, limit, |r| api.lock.unlock(r)).await,
        "election/campaign" => unary(p, body, limit, |r| api.election.campaign(r)).await,
        "election/proclaim" => unary(p, body, limit, |r| api.election.proclaim(r)).await,
        "election/leader" => unary(p, body, limit, |r| api.election.leader(r)).await,
        "election/observe" => server_stream(p, body, limit, |r| api.election.observe(r)).await,
        "election/resign" => unary(p, body, limit, |r| api.election.resign(r)).await,
        _ => plain_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// A unary call: one JSON request, one JSON response.
async fn unary<Req, Resp, Fut>(
    parts: &Parts,
    body: Body,
    limit: usize,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: DeserializeOwned + Default,
    Resp: Serialize,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let msg = match read_one::<Req>(body, limit).await {
        Ok(m) => m,
        Err(st) => return error_response(&st),
    };
    match call(request(parts, msg)).await {
        Ok(resp) => json_response(StatusCode::OK, &resp.into_inner()),
        Err(st) => error_response(&st),
    }
}

/// A server stream: one JSON request, a stream of responses.
async fn server_stream<Req, Resp, S, Fut>(
    parts: &Parts,
    body: Body,
    limit: usize,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: DeserializeOwned + Default,
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    let msg = match read_one::<Req>(body, limit).await {
        Ok(m) => m,
        Err(st) => return error_response(&st),
    };
    match call(request(parts, msg)).await {
        Ok(resp) => stream_response(resp.into_inner()),
        Err(st) => stream_error_response(&st),
    }
}

/// A bidirectional stream: the body's JSON values are the requests. `hold_open`: the request
/// stream does not end with the body (watch), only when the client goes away.
async fn bidi<Req, Resp, S, Fut>(
    parts: &Parts,
    body: Body,
    hold_open: bool,
    call: impl FnOnce(tonic::Request<Streaming<Req>>) -> Fut,
) -> Response
where
    Req: DeserializeOwned + Default + prost::Message + Send + 'static,
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    // The service reads a tonic stream: hand it the requests as gRPC frames.
    let frames = json_values::<Req>(body).map(|m| Ok::<_, Infallible>(grpc_frame(&m)));
    let frames = if hold_open {
        frames.chain(futures::stream::pending()).boxed()
    } else {
        frames.boxed()
    };
    let inbound = Streaming::new_request(
        tonic_prost::ProstDecoder::<Req>::default(),
        Body::from_stream(frames),
        None,
        None,
    );
    match call(request(parts, inbound)).await {
        Ok(resp) => stream_response(resp.into_inner()),
        Err(st) => stream_error_response(&st),
    }
}

/// The gRPC request: `msg` with the metadata grpc-gateway forwards (`Authorization`, and
/// `Grpc-Metadata-<key>` as `<key>`) and the connection's extensions (TLS peer certificates).
fn request<T>(parts: &Parts, msg: T) -> tonic::Request<T> {
    let mut md = HeaderMap::new();
    for (name, value) in &parts.headers {
        if name == header::AUTHORIZATION {
            md.append(header::AUTHORIZATION, value.clone());
        } else if let Some(key) = name.as_str().strip_prefix("grpc-metadata-")
            && let Ok(key) = header::HeaderName::from_bytes(key.as_bytes())
        {
            md.append(key, value.clone());
        }
    }
    tonic::Request::from_parts(MetadataMap::from_headers(md), parts.extensions.clone(), msg)
}

/// The body's first JSON value as a `T` (the whole body is read, up to `limit` bytes).
async fn read_one<T: DeserializeOwned + Default>(body: Body, limit: usize) -> Result<T, Status> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut values = serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>();
    match values.next() {
        None => Ok(T::default()),
        Some(Err(e)) => Err(Status::invalid_argument(e.to_string())),
        Some(Ok(v)) => from_value(v).map_err(Status::invalid_argument),
    }
}

/// `v` as a `T`; `null` (the whole value or a field) stands for the default, as in Go.
fn from_value<T: DeserializeOwned + Default>(mut v: Value) -> Result<T, String> {
    if v.is_null() {
        return Ok(T::default());
    }
    strip_nulls(&mut v);
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The JSON values of a body, decoded as they arrive. Ends with the body, or at the first
/// value that is not a `T` (grpc-gateway stops sending there too).
fn json_values<T: DeserializeOwned + Default + Send + 'static>(body: Body) -> impl Stream<Item = T> + Send {
    struct State {
        data: axum::body::BodyDataStream,
        buf: Vec<u8>,
        eof: bool,
    }
    let st = State {
        data: body.into_data_stream(),
        buf: Vec::new(),
        eof: false,
    };
    futures::stream::unfold(st, |mut st| async move {
        loop {
            let start = st
                .buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(st.buf.len());
            st.buf.drain(..start);
            if !st.buf.is_empty() {
                let mut values = serde_json::Deserializer::from_slice(&st.buf).into_iter::<Value>();
                match values.next() {
                    Some(Ok(v)) => {
                        let used = values.byte_offset();
                        st.buf.drain(..used);
                        return match from_value::<T>(v) {
                            Ok(m) => Some((m, st)),
                            Err(e) => {
                                tracing::debug!(error = %e, "gateway: bad request in stream");
                                None
                            }
                        };
                    }
                    // a value cut by the end of what has arrived: wait for more
                    Some(Err(e)) if e.is_eof() && !st.eof => {}
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "gateway: bad JSON in stream");
                        return None;
                    }
                    None => {}
                }
            } else if st.eof {
                return None;
            }
            match st.data.next().await {
                Some(Ok(chunk)) => st.buf.extend_from_slice(&chunk),
                Some(Err(_)) | None => st.eof = true,
            }
        }
    })
}

/// One gRPC message frame (uncompressed) holding `m`.
fn grpc_frame<M: prost::Message>(m: &M) -> Bytes {
    let len = m.encoded_len();
    let mut v = Vec::with_capacity(5 + len);
    v.push(0);
    v.extend_from_slice(&(len as u32).to_be_bytes());
    m.encode(&mut v).expect("a Vec grows as needed");
    Bytes::from(v)
}

fn json_response<T: Serialize>(status: StatusCode, v: &T) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        "grpc-metadata-content-type",
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

/// grpc-gateway v1's error body.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    code: i32,
}

fn error_response(st: &Status) -> Response {
    let body = ErrorBody {
        error: st.message(),
        message: st.message(),
        code: st.code() as i32,
    };
    let mut resp = Response::new(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
    *resp.status_mut() = http_status(st.code());
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// grpc-gateway v1's `StreamError`, the last line of a failed stream.
#[derive(Serialize)]
struct StreamError<'a> {
    #[serde(skip_serializing_if = "is_zero")]
    grpc_code: i32,
    #[serde(skip_serializing_if = "is_zero")]
    http_code: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    http_status: &'a str,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

fn stream_error_line(st: &Status) -> Bytes {
    let status = http_status(st.code());
    let e = StreamError {
        grpc_code: st.code() as i32,
        http_code: i32::from(status.as_u16()),
        message: st.message(),
        http_status: status.canonical_reason().unwrap_or(""),
    };
    #[derive(Serialize)]
    struct Chunk<'a> {
        error: StreamError<'a>,
    }
    let mut line = serde_json::to_vec(&Chunk { error: e }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn stream_headers(h: &mut HeaderMap) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        "grpc-metadata-content-type",
        HeaderValue::from_static("application/grpc"),
    );
}

/// A stream that failed before its first response.
fn stream_error_response(st: &Status) -> Response {
    let mut resp = Response::new(Body::from(stream_error_line(st)));
    *resp.status_mut() = http_status(st.code());
    stream_headers(resp.headers_mut());
    resp
}

/// The responses, one `{"result":...}` line each, chunked as they come; an error is the last
/// line.
fn stream_response<Resp, S>(out: S) -> Response
where
    Resp: Serialize + Send + 'static,
    S: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    #[derive(Serialize)]
    struct Result<'a, T> {
        result: &'a T,
    }
    let lines = futures::stream::unfold((Box::pin(out), false), |(mut out, done)| async move {
        if done {
            return None;
        }
        match out.next().await? {
            Ok(r) => {
                let mut line = serde_json::to_vec(&Result { result: &r }).unwrap_or_default();
                line.push(b'\n');
                Some((Ok::<_, Infallible>(Bytes::from(line)), (out, false)))
            }
            Err(st) => Some((Ok(stream_error_line(&st)), (out, true))),
        }
    });
    let mut resp = Response::new(Body::from_stream(lines));
    stream_headers(resp.headers_mut());
    resp
}

/// grpc-gateway v1's HTTP status for a gRPC code (the version etcd 3.4 ships:
/// FailedPrecondition is 412).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Aborted => StatusCode::CONFLICT,
        Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retcd_api::etcdserverpb::{
        LeaseGrantResponse, RangeRequest, RangeResponse, ResponseHeader, WatchRequest, watch_request,
    };
    use retcd_api::mvccpb::{Event, KeyValue, event};

    #[test]
    fn responses_are_etcd_json() {
        let r = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 15118495548433857066,
                member_id: 1,
                revision: 3,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: b"foo".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                version: 2,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            count: 1,
            more: false,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"header":{"cluster_id":"15118495548433857066","member_id":"1","revision":"3","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"3","version":"2","value":"YmFy"}],"count":"1"}"#
        );
        let g = LeaseGrantResponse {
            header: None,
            id: 7,
            ttl: 60,
            error: String::new(),
        };
        assert_eq!(serde_json::to_string(&g).unwrap(), r#"{"ID":"7","TTL":"60"}"#);
        let e = Event {
            r#type: event::EventType::Delete as i32,
            kv: Some(KeyValue {
                key: b"foo".to_vec(),
                mod_revision: 7,
                ..Default::default()
            }),
            prev_kv: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"7"}}"#
        );
    }

    #[test]
    fn requests_decode_like_grpc_gateway() {
        // numbers or strings for 64-bit integers, enum names or numbers, unknown fields and
        // nulls ignored
        let r: RangeRequest = from_value(
            serde_json::json!({"key":"Zm9v","limit":"1","sort_order":"DESCEND","bogus":1,"range_end":null}),
        )
        .unwrap();
        assert_eq!(r.key, b"foo");
        assert_eq!(r.limit, 1);
        assert_eq!(r.sort_order, 2);
        let r: RangeRequest = from_value(serde_json::json!({"limit":5,"sort_order":1})).unwrap();
        assert_eq!((r.limit, r.sort_order), (5, 1));
        assert!(from_value::<RangeRequest>(serde_json::json!({"key":"!!!"})).is_err());
        assert!(from_value::<RangeRequest>(serde_json::json!({"limit":1.5})).is_err());
        assert_eq!(
            from_value::<RangeRequest>(Value::Null).unwrap(),
            RangeRequest::default()
        );
        let w: WatchRequest =
            from_value(serde_json::json!({"create_request":{"key":"Zm9v","start_revision":"2"}})).unwrap();
        match w.request_union {
            Some(watch_request::RequestUnion::CreateRequest(c)) => {
                assert_eq!((c.key.as_slice(), c.start_revision), (&b"foo"[..], 2))
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn body_values_are_read_as_they_come() {
        let chunks: Vec<Result<Bytes, Infallible>> = vec![
            Ok(Bytes::from_static(b" {\"ID\":")),
            Ok(Bytes::from_static(b"7}{\"ID\":\"8\"}\n")),
            Ok(Bytes::from_static(b"{\"ID\":9}x{\"ID\":10}")),
        ];
        let body = Body::from_stream(futures::stream::iter(chunks));
        let ids: Vec<i64> = json_values::<retcd_api::etcdserverpb::LeaseKeepAliveRequest>(body)
            .map(|r| r.id)
            .collect()
            .await;
        assert_eq!(ids, vec![7, 8, 9]);
    }

    #[test]
    fn errors_are_grpc_gateway_v1() {
        let st = Status::from(retcd_api::EtcdError::LeaseNotFound);
        let resp = error_response(&st);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let line = stream_error_line(&st);
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"error\":{\"grpc_code\":5,\"http_code\":404,\"message\":\"etcdserver: requested lease not found\",\"http_status\":\"Not Found\"}}\n"
        );
    }
}
