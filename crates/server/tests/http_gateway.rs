//! The client port's HTTP side (issue 9), driven with `curl` against retcd and the real
//! etcd 3.4: the JSON gateway under `/v3/` (unary calls, the watch and keep-alive streams,
//! auth through the `Authorization` header, grpc-gateway's error bodies), `/health` and
//! `/version`, and the etcd 3.5 probes `/livez` and `/readyz` (retcd only: 3.4 has none).
//!
//! Answers are compared after masking what legitimately differs: the cluster and member ids,
//! the raft term, tokens, and the versions `/version` reports.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Server, ServerKind, kind_under_test};
use serde_json::Value;

/// One HTTP exchange as curl saw it.
#[derive(Debug, Clone, PartialEq)]
struct Reply {
    status: u16,
    /// lower-cased header names and their values
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn curl(method: &str, url: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "-i", "--max-time", "20", "-X", method, url]);
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    let out = cmd
        .output()
        .expect("curl must be installed (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    // etcd (Go) sends HTTP/1.1 trailers on failed calls even unasked; curl prints them after
    // the body. They are not part of the body clients read.
    let body = match body.find("Grpc-Trailer-") {
        Some(i) => &body[..i],
        None => body,
    };
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

fn post(s: &Server, path: &str, body: &str) -> Reply {
    curl("POST", &format!("{}{path}", s.endpoint()), Some(body), &[])
}

fn post_auth(s: &Server, path: &str, body: &str, token: &str) -> Reply {
    curl(
        "POST",
        &format!("{}{path}", s.endpoint()),
        Some(body),
        &[("Authorization", token)],
    )
}

fn get(s: &Server, path: &str) -> Reply {
    curl("GET", &format!("{}{path}", s.endpoint()), None, &[])
}

/// Masks ids, terms and tokens (recursively).
fn mask(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match k.as_str() {
                    "cluster_id" | "member_id" | "raft_term" | "token" => {
                        *x = Value::String("<masked>".into())
                    }
                    _ => mask(x),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask),
        _ => {}
    }
}

/// What is compared of a reply: status, content type and the masked body (JSON when it is).
type Comparable = (u16, Option<String>, String);

fn comparable(r: &Reply) -> Comparable {
    let masked = |text: &str| match serde_json::from_str::<Value>(text) {
        Ok(mut v) => {
            mask(&mut v);
            v.to_string()
        }
        Err(_) => text.to_string(),
    };
    // a stream: one JSON value per line
    let body = if r.body.trim_end().contains('\n') {
        r.body.lines().map(masked).collect::<Vec<_>>().join("\n")
    } else {
        masked(&r.body)
    };
    (r.status, r.header("content-type").map(str::to_string), body)
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The scripted session; every step's reply, to be compared between the servers.
fn session(s: &Server) -> Vec<(String, Comparable)> {
    let key = b64("foo");
    let mut out = Vec::new();
    let mut step = |name: &str, r: Reply| out.push((name.to_string(), comparable(&r)));
    step(
        "put",
        post(
            s,
            "/v3/kv/put",
            &format!(r#"{{"key":"{key}","value":"{}"}}"#, b64("bar")),
        ),
    );
    step(
        "put prev_kv",
        post(
            s,
            "/v3/kv/put",
            &format!(r#"{{"key":"{key}","value":"{}","prev_kv":true}}"#, b64("baz")),
        ),
    );
    step("range", post(s, "/v3/kv/range", &format!(r#"{{"key":"{key}"}}"#)));
    step(
        "range prefix, strings for numbers, enum names, unknown fields",
        post(
            s,
            "/v3/kv/range",
            &format!(
                r#"{{"key":"{}","range_end":"{}","limit":"5","sort_order":"DESCEND","sort_target":"KEY","bogus":1}}"#,
                b64("f"),
                b64("g")
            ),
        ),
    );
    step(
        "range count_only",
        post(
            s,
            "/v3/kv/range",
            &format!(r#"{{"key":"{key}","count_only":true}}"#),
        ),
    );
    step(
        "range v3beta",
        post(s, "/v3beta/kv/range", &format!(r#"{{"key":"{key}"}}"#)),
    );
    step("range no key", post(s, "/v3/kv/range", "{}"));
    step("range empty body", post(s, "/v3/kv/range", ""));
    step(
        "range future revision",
        post(s, "/v3/kv/range", &format!(r#"{{"key":"{key}","revision":100}}"#)),
    );
    step(
        "compaction future",
        post(s, "/v3/kv/compaction", r#"{"revision":"100"}"#),
    );
    step(
        "txn success",
        post(
            s,
            "/v3/kv/txn",
            &format!(
                r#"{{"compare":[{{"key":"{key}","result":"EQUAL","target":"VALUE","value":"{}"}}],
                    "success":[{{"request_range":{{"key":"{key}"}}}},{{"request_put":{{"key":"{}","value":"{}"}}}}],
                    "failure":[{{"request_delete_range":{{"key":"{key}"}}}}]}}"#,
                b64("baz"),
                b64("t"),
                b64("1")
            ),
        ),
    );
    step(
        "txn failure",
        post(
            s,
            "/v3/kv/txn",
            &format!(
                r#"{{"compare":[{{"key":"{key}","target":"VERSION","result":"GREATER","version":"10"}}],
                    "failure":[{{"request_delete_range":{{"key":"{key}","prev_kv":true}}}}]}}"#
            ),
        ),
    );
    step("compaction", post(s, "/v3/kv/compaction", r#"{"revision":"3"}"#));
    step(
        "range compacted",
        post(s, "/v3/kv/range", &format!(r#"{{"key":"{key}","revision":2}}"#)),
    );
    step("lease grant", post(s, "/v3/lease/grant", r#"{"TTL":60,"ID":7}"#));
    step(
        "lease grant again",
        post(s, "/v3/lease/grant", r#"{"TTL":60,"ID":7}"#),
    );
    step(
        "put with lease",
        post(
            s,
            "/v3/kv/put",
            &format!(r#"{{"key":"{}","value":"","lease":"7"}}"#, b64("l")),
        ),
    );
    step("lease leases", post(s, "/v3/lease/leases", "{}"));
    step("lease leases (kv path)", post(s, "/v3/kv/lease/leases", "{}"));
    step(
        "lease keepalive",
        post(s, "/v3/lease/keepalive", r#"{"ID":7}{"ID":"8"}"#),
    );
    step("lease revoke", post(s, "/v3/lease/revoke", r#"{"ID":7}"#));
    step(
        "lease revoke (kv path) gone",
        post(s, "/v3/kv/lease/revoke", r#"{"ID":7}"#),
    );
    step(
        "lease timetolive gone",
        post(s, "/v3/lease/timetolive", r#"{"ID":7}"#),
    );
    step(
        "lease timetolive (kv path) gone",
        post(s, "/v3/kv/lease/timetolive", r#"{"ID":7,"keys":true}"#),
    );
    step(
        "deleterange",
        post(
            s,
            "/v3/kv/deleterange",
            &format!(r#"{{"key":"{key}","prev_kv":true}}"#),
        ),
    );
    step("GET on a gateway path", get(s, "/v3/kv/range"));
    step("unknown gateway path", post(s, "/v3/kv/nope", "{}"));
    step("unknown path", get(s, "/v2/keys"));
    step("v3alpha", post(s, "/v3alpha/kv/range", "{}"));
    step("health", get(s, "/health"));
    step("health exclude", get(s, "/health?exclude=NOSPACE"));
    step("POST health", post(s, "/health", ""));
    step(
        "OPTIONS",
        curl("OPTIONS", &format!("{}/v3/kv/range", s.endpoint()), None, &[]),
    );
    step(
        "lease for a lock",
        post(s, "/v3/lease/grant", r#"{"TTL":60,"ID":9}"#),
    );
    step(
        "lock",
        post(
            s,
            "/v3/lock/lock",
            &format!(r#"{{"name":"{}","lease":"9"}}"#, b64("lk")),
        ),
    );
    step(
        "election leader",
        post(
            s,
            "/v3/election/leader",
            &format!(r#"{{"name":"{}"}}"#, b64("lk")),
        ),
    );
    out
}

#[test]
fn gateway_answers_as_etcd() {
    let etcd = Server::start(ServerKind::Etcd);
    let ours = Server::start(kind_under_test());
    let want = session(&etcd);
    let got = session(&ours);
    assert_eq!(want.len(), got.len());
    let mut diffs = String::new();
    for ((name, w), (_, g)) in want.iter().zip(&got) {
        if w != g {
            diffs.push_str(&format!("{name}:\n  etcd : {w:?}\n  retcd: {g:?}\n"));
        }
    }
    assert!(diffs.is_empty(), "differences:\n{diffs}");
}

#[test]
fn errors_are_grpc_gateway_bodies() {
    let s = Server::start(kind_under_test());
    // gRPC code 5 -> 404, code 11 -> 400, code 9 -> 412
    let r = post(&s, "/v3/lease/revoke", r#"{"ID":12345}"#);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#
    );
    let r = post(&s, "/v3/kv/compaction", r#"{"revision":100}"#);
    assert_eq!((r.status, r.json()["code"].as_i64()), (400, Some(11)));
    let r = post(&s, "/v3/auth/authenticate", r#"{"name":"root","password":"x"}"#);
    assert_eq!(r.status, 412);
    assert_eq!(r.json()["error"], "etcdserver: authentication is not enabled");
    // not the request's JSON: InvalidArgument, whatever the decoder's words
    for bad in ["notjson", r#"{"key":"!!!"}"#, r#"{"limit":1.5}"#, "[]"] {
        let r = post(&s, "/v3/kv/range", bad);
        assert_eq!(r.status, 400, "{bad}");
        let v = r.json();
        assert_eq!(v["code"], 3, "{bad}");
        assert_eq!(v["error"], v["message"], "{bad}");
    }
}

#[test]
fn auth_token_in_the_authorization_header() {
    for kind in [ServerKind::Etcd, kind_under_test()] {
        let s = Server::start(kind);
        // auth is enabled through gRPC (etcdctl), used through JSON
        for args in [
            &["user", "add", "root", "--new-user-password=pw"][..],
            &["user", "add", "alice", "--new-user-password=al"],
            &["role", "add", "r"],
            &["role", "grant-permission", "r", "read", "a"],
            &["user", "grant-role", "alice", "r"],
            &["auth", "enable"],
        ] {
            let out = s.etcdctl(args, None);
            assert!(out.success(), "{}: etcdctl {args:?}: {out:?}", kind.name());
        }
        let key = format!(r#"{{"key":"{}"}}"#, b64("a"));
        let r = post(&s, "/v3/kv/range", &key);
        assert_eq!(r.status, 400, "{}", kind.name());
        assert_eq!(r.json()["error"], "etcdserver: user name is empty");
        let r = post(
            &s,
            "/v3/auth/authenticate",
            r#"{"name":"alice","password":"bad"}"#,
        );
        assert_eq!(r.status, 400, "{}", kind.name());
        assert_eq!(
            r.json()["error"],
            "etcdserver: authentication failed, invalid user ID or password"
        );
        let r = post(&s, "/v3/auth/authenticate", r#"{"name":"alice","password":"al"}"#);
        assert_eq!(r.status, 200, "{}: {r:?}", kind.name());
        let token = r.json()["token"].as_str().unwrap().to_string();
        let r = post_auth(&s, "/v3/kv/range", &key, &token);
        assert_eq!(r.status, 200, "{}: {r:?}", kind.name());
        // a write alice has no permission for
        let r = post_auth(
            &s,
            "/v3/kv/put",
            &format!(r#"{{"key":"{}","value":"{}"}}"#, b64("a"), b64("v")),
            &token,
        );
        assert_eq!(r.status, 403, "{}: {r:?}", kind.name());
        assert_eq!(r.json()["error"], "etcdserver: permission denied");
        // gRPC metadata through grpc-gateway's header prefix
        let r = curl(
            "POST",
            &format!("{}/v3/kv/range", s.endpoint()),
            Some(&key),
            &[("Grpc-Metadata-Token", &token)],
        );
        assert_eq!(r.status, 200, "{}: {r:?}", kind.name());
        for bad in ["bogus", &format!("Bearer {token}")] {
            let r = post_auth(&s, "/v3/kv/range", &key, bad);
            assert_eq!(r.status, 401, "{}: {r:?}", kind.name());
            assert_eq!(
                r.body,
                r#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#
            );
        }
        // root manages auth through JSON too
        let r = post(&s, "/v3/auth/authenticate", r#"{"name":"root","password":"pw"}"#);
        let root = r.json()["token"].as_str().unwrap().to_string();
        let r = post_auth(&s, "/v3/auth/role/get", r#"{"role":"r"}"#, &root);
        assert_eq!(r.status, 200);
        let mut v = r.json();
        mask(&mut v);
        let m = "<masked>";
        assert_eq!(
            v,
            serde_json::json!({
                "header": {"cluster_id": m, "member_id": m, "revision": "1", "raft_term": m},
                "perm": [{"key": b64("a")}],
            })
        );
        let r = post_auth(&s, "/v3/auth/user/list", "{}", &root);
        assert_eq!(r.json()["users"], serde_json::json!(["alice", "root"]));
        let r = post_auth(&s, "/v3/auth/disable", "{}", &root);
        assert_eq!(r.status, 200, "{}: {r:?}", kind.name());
        assert_eq!(post(&s, "/v3/kv/range", &key).status, 200);
    }
}

/// A `curl -N` whose output lines arrive on a channel while it runs.
struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Stream {
    fn open(url: &str, body: &str) -> Stream {
        let mut child = Command::new("curl")
            .args(["-s", "-N", "-X", "POST", url, "--data-binary", body])
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Stream { child, lines }
    }

    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line of the stream within 10 s");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Watch over the gateway: the created line, then one line per change made while it runs;
/// the same lines (masked) from etcd and retcd.
fn watch_session(s: &Server) -> Vec<Value> {
    let key = b64("foo");
    post(
        s,
        "/v3/kv/put",
        &format!(r#"{{"key":"{key}","value":"{}"}}"#, b64("0")),
    );
    let w = Stream::open(
        &format!("{}/v3/watch", s.endpoint()),
        &format!(r#"{{"create_request":{{"key":"{key}","prev_kv":true}}}}"#),
    );
    let mut lines = vec![w.next()];
    for (i, v) in ["1", "2"].iter().enumerate() {
        let r = post(
            s,
            "/v3/kv/put",
            &format!(r#"{{"key":"{key}","value":"{}"}}"#, b64(v)),
        );
        assert_eq!(r.status, 200);
        lines.push(w.next());
        assert_eq!(lines.len(), i + 2);
    }
    post(s, "/v3/kv/deleterange", &format!(r#"{{"key":"{key}"}}"#));
    lines.push(w.next());
    // a second watch from an old revision: created, then the history in one response
    let h = Stream::open(
        &format!("{}/v3beta/watch", s.endpoint()),
        &format!(r#"{{"create_request":{{"key":"{key}","start_revision":"2"}}}}"#),
    );
    lines.push(h.next());
    lines.push(h.next());
    for l in &mut lines {
        mask(l);
    }
    lines
}

#[test]
fn watch_streams_json_lines_as_etcd() {
    let etcd = Server::start(ServerKind::Etcd);
    let ours = Server::start(kind_under_test());
    let want = watch_session(&etcd);
    let got = watch_session(&ours);
    assert_eq!(got, want);
    assert_eq!(got[0]["result"]["created"], true);
    assert_eq!(got[3]["result"]["events"][0]["type"], "DELETE");
}

#[test]
fn watch_stays_open_and_takes_more_requests() {
    let s = Server::start(kind_under_test());
    let (a, b) = (b64("a"), b64("b"));
    // two watch requests in one body; the stream lives on after the body ends
    let w = Stream::open(
        &format!("{}/v3/watch", s.endpoint()),
        &format!(
            r#"{{"create_request":{{"key":"{a}"}}}} {{"create_request":{{"key":"{b}","watch_id":"5"}}}}"#
        ),
    );
    let c1 = w.next();
    let c2 = w.next();
    assert_eq!(c1["result"]["created"], true);
    assert_eq!(
        (c2["result"]["created"].clone(), c2["result"]["watch_id"].clone()),
        (Value::Bool(true), "5".into())
    );
    std::thread::sleep(Duration::from_millis(300));
    post(
        &s,
        "/v3/kv/put",
        &format!(r#"{{"key":"{b}","value":"{}"}}"#, b64("x")),
    );
    let e = w.next();
    assert_eq!(e["result"]["watch_id"], "5");
    assert_eq!(e["result"]["events"][0]["kv"]["key"], b);
}

#[test]
fn health_version_and_probes() {
    let s = Server::start(kind_under_test());
    let r = get(&s, "/health");
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"health":"true"}"#));
    let r = get(&s, "/health?serializable=true");
    assert_eq!(r.status, 200);
    // /version reports what Status reports
    let v = get(&s, "/version").json();
    let status = post(&s, "/v3/maintenance/status", "{}").json();
    assert_eq!(v["etcdserver"], status["version"]);
    let server = v["etcdserver"].as_str().unwrap();
    let cluster = v["etcdcluster"].as_str().unwrap();
    let mm: Vec<&str> = server.split('.').take(2).collect();
    assert_eq!(cluster, format!("{}.{}.0", mm[0], mm[1]));
    if kind_under_test() == ServerKind::Etcd {
        return; // 3.4 has no /livez, /readyz
    }
    for p in [
        "/livez",
        "/readyz",
        "/livez/serializable_read",
        "/readyz/linearizable_read",
    ] {
        let r = get(&s, p);
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "{p}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    }
    let r = get(&s, "/readyz?verbose&exclude=data_corruption");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("[+]data_corruption excluded: ok\n"), "{}", r.body);
    assert!(r.body.contains("[+]linearizable_read ok\n"), "{}", r.body);
    assert!(r.body.ends_with("ok\n"));
    assert_eq!(get(&s, "/readyz/nope").status, 404);
    assert_eq!(post(&s, "/livez", "").status, 405);
    // gRPC is still served on the same port (etcdctl)
    let out = s.etcdctl(&["put", "k", "v"], None);
    assert!(out.success(), "{out:?}");
    let r = post(&s, "/v3/kv/range", &format!(r#"{{"key":"{}"}}"#, b64("k")));
    assert_eq!(r.json()["kvs"][0]["value"], b64("v"));
    // HTTP/2 without TLS (prior knowledge) reaches the same routes
    let out = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            &format!("{}/health", s.endpoint()),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), r#"{"health":"true"}"#);
}

/// A retcd member process of a two-member cluster (killed on drop).
struct Member {
    ports: std::sync::Arc<common::Ports>,
    _dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get_quick(endpoint: &str, path: &str) -> Option<Reply> {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "3", &format!("{endpoint}{path}")])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Reply {
        status,
        headers: vec![],
        body: body.to_string(),
    })
}

/// etcd 3.4 answers `/health` without a leader with 503 and `{"health":"false"}` (checked by
/// hand: two members, one killed); retcd the same. `?serializable=true` (etcd 3.5) and
/// `/livez` look at the member alone; `/readyz` needs the cluster.
#[test]
fn health_without_a_leader() {
    if kind_under_test() == ServerKind::Etcd {
        return; // the harness' etcd is a single member
    }
    let ports = [common::Ports::reserve(), common::Ports::reserve()];
    let ic = format!("m0={},m1={}", ports[0].peer_url(), ports[1].peer_url());
    let mut members: Vec<Member> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let dir = tempfile::tempdir().unwrap();
            let log = std::fs::File::create(dir.path().join("log")).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_retcd"))
                .args(["--name", &format!("m{i}")])
                .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
                .args(["--listen-client-urls", &p.client_url()])
                .args(["--advertise-client-urls", &p.client_url()])
                .args(["--listen-peer-urls", &p.peer_url()])
                .args(["--initial-advertise-peer-urls", &p.peer_url()])
                .args(["--initial-cluster", &ic])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log.try_clone().unwrap()))
                .stderr(Stdio::from(log))
                .spawn()
                .unwrap();
            Member {
                ports: p.clone(),
                _dir: dir,
                child,
            }
        })
        .collect();
    let wait_for = |endpoint: &str, path: &str, status: u16| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = get_quick(endpoint, path)
                && r.status == status
            {
                return r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{endpoint}{path} never answered {status}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    for m in &members {
        wait_for(&m.ports.client_url(), "/health", 200);
    }
    let survivor = members[0].ports.client_url();
    members.truncate(1); // kills the other member
    let r = wait_for(&survivor, "/health", 503);
    assert_eq!(r.body, "{\"health\":\"false\"}\n");
    assert_eq!(wait_for(&survivor, "/readyz", 503).status, 503);
    assert_eq!(
        get_quick(&survivor, "/health?serializable=true").unwrap().status,
        200
    );
    assert_eq!(get_quick(&survivor, "/livez").unwrap().status, 200);
}
