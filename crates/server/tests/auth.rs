//! Auth end to end with the real etcdctl: the auth store survives `kill -9` and a restart
//! (users, roles, permissions, enabled flag and auth revision are in the backend), tokens
//! expire after `--auth-token-ttl`, and a token handed out before a permission change still
//! works for what the user may still do. The permission matrix against real etcd 3.4 is in
//! `etcdctl_compat.rs` (`auth_*` scenarios).

mod common;

use common::{Server, ServerKind, kind_under_test};

fn ok(server: &Server, args: &[&str]) -> String {
    let out = server.etcdctl(args, None);
    assert!(
        out.success(),
        "etcdctl {args:?} failed: {out:?}\n{}",
        server.log_tail(30)
    );
    out.stdout.clone()
}

fn err(server: &Server, args: &[&str]) -> String {
    let out = server.etcdctl(args, None);
    assert!(!out.success(), "etcdctl {args:?} should fail: {out:?}");
    out.stderr.clone()
}

#[test]
fn auth_store_survives_kill9_and_restart() {
    let mut server = Server::start(kind_under_test());
    ok(&server, &["user", "add", "root:rootpw"]);
    ok(&server, &["role", "add", "app"]);
    ok(
        &server,
        &["role", "grant-permission", "app", "readwrite", "app/", "--prefix"],
    );
    ok(&server, &["user", "add", "svc:svcpw"]);
    ok(&server, &["user", "grant-role", "svc", "app"]);
    ok(&server, &["auth", "enable"]);
    ok(&server, &["put", "app/x", "1", "--user", "svc:svcpw"]);
    server.kill9();
    server.restart();
    // still enabled, same users, roles and permissions
    assert!(err(&server, &["get", "app/x"]).contains("etcdserver: user name is empty"));
    assert_eq!(
        ok(
            &server,
            &["get", "app/x", "--print-value-only", "--user", "svc:svcpw"]
        ),
        "1\n"
    );
    assert!(
        err(&server, &["put", "other", "1", "--user", "svc:svcpw"]).contains("etcdserver: permission denied")
    );
    assert_eq!(
        ok(&server, &["user", "list", "--user", "root:rootpw"]),
        "root\nsvc\n"
    );
    assert!(
        ok(&server, &["role", "get", "app", "--user", "root:rootpw"]).contains("[app/, app0) (prefix app/)")
    );
    assert!(err(&server, &["get", "app/x", "--user", "svc:wrong"]).contains("authentication failed"));
    // changes after the restart persist too
    ok(
        &server,
        &[
            "user",
            "passwd",
            "svc",
            "--interactive=false",
            "--user",
            "root:rootpw",
        ],
    );
    ok(&server, &["auth", "disable", "--user", "root:rootpw"]);
    server.kill9();
    server.restart();
    assert_eq!(ok(&server, &["get", "app/x", "--print-value-only"]), "1\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_tokens_work_until_unused_for_their_ttl() {
    use retcd_api::etcdserverpb::auth_client::AuthClient;
    use retcd_api::etcdserverpb::kv_client::KvClient;
    use retcd_api::etcdserverpb::{AuthenticateRequest, PutRequest};
    if kind_under_test() != ServerKind::Retcd {
        return;
    }
    let server = tokio::task::spawn_blocking(|| {
        let s = Server::start_with(
            ServerKind::Retcd,
            common::Ports::reserve(),
            &["--auth-token-ttl", "2"],
        );
        ok(&s, &["user", "add", "root:rootpw"]);
        ok(&s, &["auth", "enable"]);
        s
    })
    .await
    .unwrap();
    let url = format!("http://{}", server.endpoint().trim_start_matches("http://"));
    let token = AuthClient::connect(url.clone())
        .await
        .unwrap()
        .authenticate(AuthenticateRequest {
            name: "root".into(),
            password: "rootpw".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    let (prefix, index) = token.split_once('.').expect("simple token: <random>.<index>");
    assert_eq!(prefix.len(), 16, "{token}");
    assert!(index.parse::<u64>().is_ok(), "{token}");
    let mut kv = KvClient::connect(url).await.unwrap();
    let put = |t: &str| {
        let mut r = tonic::Request::new(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        });
        r.metadata_mut().insert("token", t.parse().unwrap());
        r
    };
    // used every second: stays valid well past its 2 s TTL
    for _ in 0..4 {
        kv.put(put(&token)).await.expect("token in use stays valid");
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    }
    // unused for longer than the TTL: gone
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let e = kv.put(put(&token)).await.expect_err("expired token");
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert_eq!(e.message(), "etcdserver: invalid auth token");
    let e = kv.put(put("bogus.1")).await.expect_err("unknown token");
    assert_eq!(e.message(), "etcdserver: invalid auth token");
    drop(server);
}

/// Authenticates as root:rootpw at `endpoint`; the token.
async fn root_token(endpoint: String) -> String {
    use retcd_api::etcdserverpb::AuthenticateRequest;
    use retcd_api::etcdserverpb::auth_client::AuthClient;
    AuthClient::connect(endpoint)
        .await
        .unwrap()
        .authenticate(AuthenticateRequest {
            name: "root".into(),
            password: "rootpw".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token
}

/// `get k` at `endpoint` with `token` in the `token` metadata: the count, or the error's
/// code and message.
async fn count_with_token(endpoint: String, token: &str) -> Result<i64, (tonic::Code, String)> {
    use retcd_api::etcdserverpb::RangeRequest;
    use retcd_api::etcdserverpb::kv_client::KvClient;
    let mut r = tonic::Request::new(RangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    });
    r.metadata_mut().insert("token", token.parse().unwrap());
    KvClient::connect(endpoint)
        .await
        .unwrap()
        .range(r)
        .await
        .map(|r| r.into_inner().count)
        .map_err(|e| (e.code(), e.message().to_string()))
}

/// `--auth-token jwt,...,sign-method=<method>` with a fresh key pair of `alg`: Authenticate
/// hands out a signed JWT (not a simple token) that every request carries; a tampered one
/// is refused. The same steps run against real etcd 3.4 with the same keys, and each
/// server accepts the other's tokens.
fn jwt_end_to_end(alg: &'static rcgen::SignatureAlgorithm, method: &str) {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let (priv_path, pub_path) = (dir.path().join("jwt.key"), dir.path().join("jwt.pub"));
    std::fs::write(&priv_path, key.serialize_pem()).unwrap();
    std::fs::write(&pub_path, key.public_key_pem()).unwrap();
    let flag = format!(
        "jwt,pub-key={},priv-key={},sign-method={method},ttl=5m",
        pub_path.display(),
        priv_path.display()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let run = |kind: ServerKind| -> (Vec<String>, Server, String) {
        let server = Server::start_with(kind, common::Ports::reserve(), &["--auth-token", &flag]);
        ok(&server, &["user", "add", "root:rootpw"]);
        ok(&server, &["auth", "enable"]);
        let mut seen = vec![
            ok(&server, &["put", "k", "v", "--user", "root:rootpw"]),
            ok(&server, &["get", "k", "--user", "root:rootpw"]),
            ok(&server, &["user", "list", "--user", "root:rootpw"]),
            // (the last line: the first is a log line with times and client ids)
            err(&server, &["get", "k", "--user", "root:wrong"])
                .lines()
                .last()
                .unwrap_or_default()
                .to_string(),
        ];
        let endpoint = server.endpoint();
        let (token, good, tampered) = rt.block_on(async move {
            let token = root_token(endpoint.clone()).await;
            let good = count_with_token(endpoint.clone(), &token).await;
            // another signature: its first character changed (the last one may only carry
            // padding bits, which Go's decoder ignores)
            let sig_at = token.rfind('.').unwrap() + 1;
            let first = token.as_bytes()[sig_at];
            let mut bad = token.clone();
            bad.replace_range(sig_at..sig_at + 1, if first == b'A' { "B" } else { "A" });
            let tampered = count_with_token(endpoint, &bad).await;
            (token, good, tampered)
        });
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWT: {token}");
        use base64::Engine;
        let b64 = |s: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap()
        };
        // byte for byte what etcd writes (Go's sorted map keys)
        let header = String::from_utf8(b64(parts[0])).unwrap();
        seen.push(header);
        let claims = String::from_utf8(b64(parts[1])).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&claims).unwrap();
        assert_eq!(parsed["username"], "root", "{claims}");
        let exp = parsed["exp"].as_u64().expect("exp");
        // the claims as written, with the expiry time masked
        seen.push(claims.replace(&exp.to_string(), "EXP"));
        seen.push(format!("signature of {} bytes", b64(parts[2]).len()));
        seen.push(format!("{good:?}"));
        seen.push(format!("{tampered:?}"));
        (seen, server, token)
    };
    let (retcd, retcd_server, retcd_token) = run(ServerKind::Retcd);
    assert_eq!(retcd[4], format!(r#"{{"alg":"{method}","typ":"JWT"}}"#));
    assert_eq!(retcd[7], "Ok(1)");
    assert_eq!(
        retcd[8],
        "Err((Unauthenticated, \"etcdserver: invalid auth token\"))"
    );
    if common::etcd_bin().is_file() {
        let (etcd, etcd_server, etcd_token) = run(ServerKind::Etcd);
        assert_eq!(retcd, etcd);
        // the same keys and auth revision: a token of one server works on the other
        let (on_etcd, on_retcd) = rt.block_on(async {
            (
                count_with_token(etcd_server.endpoint(), &retcd_token).await,
                count_with_token(retcd_server.endpoint(), &etcd_token).await,
            )
        });
        assert_eq!(on_etcd, Ok(1), "a retcd token on etcd");
        assert_eq!(on_retcd, Ok(1), "an etcd token on retcd");
    }
}

#[test]
fn jwt_tokens_end_to_end() {
    jwt_end_to_end(&rcgen::PKCS_ECDSA_P256_SHA256, "ES256");
}

/// ES512 (ECDSA on P-521 with SHA-512, 132-byte signatures), which retcd signs with
/// aws-lc-rs directly.
#[test]
fn jwt_es512_tokens_end_to_end() {
    jwt_end_to_end(&rcgen::PKCS_ECDSA_P521_SHA512, "ES512");
}

/// What every RPC answers to a token the server does not know (`bogus`) or to no token at
/// all, with auth never enabled and with auth enabled, compared with etcd 3.4. etcd
/// resolves a token even while auth is disabled (`invalid auth token`); Status,
/// MemberList, LeaseTimeToLive, LeaseLeases and MoveLeader never look at it; the
/// Maintenance RPCs answer with the auth package's errors (code Unknown); a watch create
/// is cancelled.
#[test]
fn bad_tokens_are_answered_as_by_etcd() {
    let run = |kind: ServerKind| -> Vec<String> {
        let server = Server::start(kind);
        let endpoint = server.endpoint();
        let mut seen = Vec::new();
        let rt = tokio::runtime::Runtime::new().unwrap();
        for enabled in [false, true] {
            if enabled {
                ok(&server, &["user", "add", "root:rootpw"]);
                ok(&server, &["auth", "enable"]);
            }
            for token in ["bogus", ""] {
                if token.is_empty() && !enabled {
                    continue;
                }
                let answers = rt.block_on(every_rpc(endpoint.clone(), token));
                for (rpc, answer) in answers {
                    seen.push(format!(
                        "auth enabled {enabled}, token {token:?}: {rpc}: {answer}"
                    ));
                }
            }
        }
        seen
    };
    let retcd = run(ServerKind::Retcd);
    assert!(retcd.contains(
        &r#"auth enabled false, token "bogus": Range: Err((Unauthenticated, "etcdserver: invalid auth token"))"#
            .to_string()
    ));
    if common::etcd_bin().is_file() {
        let etcd = run(ServerKind::Etcd);
        for (r, e) in retcd.iter().zip(&etcd) {
            assert_eq!(r, e, "retcd answered differently from etcd 3.4");
        }
        assert_eq!(retcd.len(), etcd.len());
    }
}

/// Calls one RPC of each kind with `token` (none when empty): the answer of each, the
/// code and message of an error, `Ok` else (or the watch's cancel reason).
async fn every_rpc(endpoint: String, token: &str) -> Vec<(&'static str, String)> {
    use retcd_api::etcdserverpb as pb;
    use tonic::transport::Channel;
    let ch = Channel::from_shared(endpoint).unwrap().connect().await.unwrap();
    fn with<T>(token: &str, m: T) -> tonic::Request<T> {
        let mut r = tonic::Request::new(m);
        if !token.is_empty() {
            r.metadata_mut().insert("token", token.parse().unwrap());
        }
        r
    }
    fn show<T>(r: Result<tonic::Response<T>, tonic::Status>) -> String {
        match r {
            Ok(_) => "Ok".into(),
            Err(e) => format!("Err(({:?}, {:?}))", e.code(), e.message()),
        }
    }
    let mut kv = pb::kv_client::KvClient::new(ch.clone());
    let mut lease = pb::lease_client::LeaseClient::new(ch.clone());
    let mut cluster = pb::cluster_client::ClusterClient::new(ch.clone());
    let mut maint = pb::maintenance_client::MaintenanceClient::new(ch.clone());
    let mut auth = pb::auth_client::AuthClient::new(ch.clone());
    let mut watch = pb::watch_client::WatchClient::new(ch.clone());
    let range = || pb::RangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    };
    let mut out = vec![
        ("Range", show(kv.range(with(token, range())).await)),
        (
            "Put",
            show(
                kv.put(with(
                    token,
                    pb::PutRequest {
                        key: b"k".to_vec(),
                        ..Default::default()
                    },
                ))
                .await,
            ),
        ),
        (
            "Txn (read-only)",
            show(
                kv.txn(with(
                    token,
                    pb::TxnRequest {
                        success: vec![pb::RequestOp {
                            request: Some(pb::request_op::Request::RequestRange(range())),
                        }],
                        ..Default::default()
                    },
                ))
                .await,
            ),
        ),
        (
            "LeaseGrant",
            show(
                lease
                    .lease_grant(with(token, pb::LeaseGrantRequest { ttl: 60, id: 0 }))
                    .await,
            ),
        ),
        (
            "LeaseTimeToLive",
            show(
                lease
                    .lease_time_to_live(with(token, pb::LeaseTimeToLiveRequest { id: 1, keys: false }))
                    .await,
            ),
        ),
        (
            "LeaseLeases",
            show(lease.lease_leases(with(token, pb::LeaseLeasesRequest {})).await),
        ),
        (
            "MemberList",
            show(
                cluster
                    .member_list(with(token, pb::MemberListRequest::default()))
                    .await,
            ),
        ),
        (
            "MemberRemove",
            show(
                cluster
                    .member_remove(with(token, pb::MemberRemoveRequest { id: 1 }))
                    .await,
            ),
        ),
        (
            "Status",
            show(maint.status(with(token, pb::StatusRequest {})).await),
        ),
        (
            "Alarm",
            show(maint.alarm(with(token, pb::AlarmRequest::default())).await),
        ),
        ("Hash", show(maint.hash(with(token, pb::HashRequest {})).await)),
        (
            "HashKV",
            show(
                maint
                    .hash_kv(with(token, pb::HashKvRequest { revision: 0 }))
                    .await,
            ),
        ),
        (
            "Defragment",
            show(maint.defragment(with(token, pb::DefragmentRequest {})).await),
        ),
        (
            "MoveLeader",
            show(
                maint
                    .move_leader(with(token, pb::MoveLeaderRequest { target_id: 1 }))
                    .await,
            ),
        ),
        (
            "UserList",
            show(auth.user_list(with(token, pb::AuthUserListRequest {})).await),
        ),
    ];
    let create = pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                key: b"k".to_vec(),
                ..Default::default()
            },
        )),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(create).await.unwrap();
    let watched = match watch
        .watch(with(token, tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
    {
        Ok(stream) => match stream.into_inner().message().await {
            Ok(Some(r)) => format!(
                "created {}, canceled {} {:?}",
                r.created, r.canceled, r.cancel_reason
            ),
            other => format!("{other:?}"),
        },
        Err(e) => format!("Err(({:?}, {:?}))", e.code(), e.message()),
    };
    drop(tx);
    out.push(("Watch", watched));
    out
}

/// Authenticate while other auth changes commit: a password check that went stale before
/// its entry was applied is made again (retcd's entry then issues no token), so every
/// Authenticate with the right password succeeds and its token works, on retcd as on etcd,
/// and both log that they retried. Then logins with the password being changed: once the
/// change is through, no token obtained with the old password works and the old password
/// gets no new one.
#[test]
fn authenticate_during_auth_changes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use retcd_api::etcdserverpb as pb;

    async fn login(endpoint: String, password: &str) -> Result<String, (tonic::Code, String)> {
        pb::auth_client::AuthClient::connect(endpoint)
            .await
            .unwrap()
            .authenticate(pb::AuthenticateRequest {
                name: "alice".into(),
                password: password.into(),
            })
            .await
            .map(|r| r.into_inner().token)
            .map_err(|e| (e.code(), e.message().to_string()))
    }
    async fn read_app(endpoint: String, token: &str) -> Result<i64, (tonic::Code, String)> {
        let mut r = tonic::Request::new(pb::RangeRequest {
            key: b"app/".to_vec(),
            range_end: b"app0".to_vec(),
            ..Default::default()
        });
        r.metadata_mut().insert("token", token.parse().unwrap());
        pb::kv_client::KvClient::connect(endpoint)
            .await
            .unwrap()
            .range(r)
            .await
            .map(|r| r.into_inner().count)
            .map_err(|e| (e.code(), e.message().to_string()))
    }
    /// Adds `n` roles as root, one after the other (each moves the auth revision). (Not
    /// for as long as the logins go on: under changes that never stop, etcd's loop, and
    /// retcd's, would retry forever.)
    async fn churn(endpoint: String, n: usize) {
        let root = root_token(endpoint.clone()).await;
        let mut c = pb::auth_client::AuthClient::connect(endpoint).await.unwrap();
        for i in 0..n {
            let mut r = tonic::Request::new(pb::AuthRoleAddRequest {
                name: format!("churn{i}"),
            });
            r.metadata_mut().insert("token", root.parse().unwrap());
            c.role_add(r).await.unwrap();
        }
    }

    let run = |kind: ServerKind| {
        let server = Server::start(kind);
        for args in [
            &["user", "add", "root:rootpw"][..],
            &["user", "add", "alice:alicepw"],
            &["role", "add", "app"],
            &["role", "grant-permission", "app", "read", "app/", "--prefix"],
            &["user", "grant-role", "alice", "app"],
            &["auth", "enable"],
        ] {
            ok(&server, args);
        }
        let ep = server.endpoint();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            // 4 clients log in 5 times each while roles are added
            let churner = tokio::spawn(churn(ep.clone(), 30));
            let logins: Vec<_> = (0..4)
                .map(|_| {
                    let ep = ep.clone();
                    tokio::spawn(async move {
                        let mut tokens = Vec::new();
                        for _ in 0..5 {
                            tokens.push(login(ep.clone(), "alicepw").await);
                        }
                        tokens
                    })
                })
                .collect();
            let mut tokens = Vec::new();
            for l in logins {
                tokens.extend(l.await.unwrap());
            }
            churner.await.unwrap();
            for t in &tokens {
                let t = t.as_ref().expect("the right password always gets a token");
                // a simple token is checked at the current auth revision
                assert_eq!(read_app(ep.clone(), t).await, Ok(0), "{t}");
            }

            // logins with the old password while root changes it
            let changing = Arc::new(AtomicBool::new(true));
            let logins: Vec<_> = (0..4)
                .map(|_| {
                    let (ep, changing) = (ep.clone(), changing.clone());
                    tokio::spawn(async move {
                        let mut tokens = Vec::new();
                        while changing.load(Ordering::Relaxed) {
                            if let Ok(t) = login(ep.clone(), "alicepw").await {
                                tokens.push(t);
                            }
                        }
                        tokens
                    })
                })
                .collect();
            let ep2 = ep.clone();
            tokio::task::spawn_blocking(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                let out = common::etcdctl_at(
                    &ep2,
                    &[
                        "user",
                        "passwd",
                        "alice",
                        "--interactive=false",
                        "--user",
                        "root:rootpw",
                    ],
                    Some(b"newpw\n"),
                );
                assert!(out.success(), "{out:?}");
            })
            .await
            .unwrap();
            changing.store(false, Ordering::Relaxed);
            for l in logins {
                for t in l.await.unwrap() {
                    assert_eq!(
                        read_app(ep.clone(), &t).await,
                        Err((
                            tonic::Code::Unauthenticated,
                            "etcdserver: invalid auth token".to_string()
                        )),
                        "a token of the old password outlived the change"
                    );
                }
            }
            assert_eq!(
                login(ep.clone(), "alicepw").await,
                Err((
                    tonic::Code::InvalidArgument,
                    "etcdserver: authentication failed, invalid user ID or password".to_string()
                ))
            );
            assert!(login(ep.clone(), "newpw").await.is_ok());
        });
        // (etcd 3.4's default capnslog logger words it differently from its zap one)
        let log = server.log();
        let retried = log
            .matches("revision when password checked became stale; retrying")
            .count()
            + log
                .matches("revision when password checked is obsolete, retrying")
                .count();
        assert!(
            retried > 0,
            "{} never retried an Authenticate:\n{}",
            kind.name(),
            server.log_tail(40)
        );
    };
    run(ServerKind::Retcd);
    if common::etcd_bin().is_file() {
        run(ServerKind::Etcd);
    }
}
