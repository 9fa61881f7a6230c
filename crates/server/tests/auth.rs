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

/// `--auth-token jwt,...,sign-method=ES256`: Authenticate hands out a signed JWT (not a
/// simple token) that every request carries; a tampered one is refused. The same steps run
/// against real etcd 3.4 with the same keys.
#[test]
fn jwt_tokens_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let (priv_path, pub_path) = (dir.path().join("jwt.key"), dir.path().join("jwt.pub"));
    std::fs::write(&priv_path, key.serialize_pem()).unwrap();
    std::fs::write(&pub_path, key.public_key_pem()).unwrap();
    let flag = format!(
        "jwt,pub-key={},priv-key={},sign-method=ES256,ttl=5m",
        pub_path.display(),
        priv_path.display()
    );
    let run = |kind: ServerKind| -> Vec<String> {
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
        let rt = tokio::runtime::Runtime::new().unwrap();
        let endpoint = server.endpoint();
        let (token, good, tampered) = rt.block_on(async move {
            use retcd_api::etcdserverpb::auth_client::AuthClient;
            use retcd_api::etcdserverpb::kv_client::KvClient;
            use retcd_api::etcdserverpb::{AuthenticateRequest, RangeRequest};
            let token = AuthClient::connect(endpoint.clone())
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
            let mut kv = KvClient::connect(endpoint).await.unwrap();
            let get = |t: &str| {
                let mut r = tonic::Request::new(RangeRequest {
                    key: b"k".to_vec(),
                    ..Default::default()
                });
                r.metadata_mut().insert("token", t.parse().unwrap());
                r
            };
            let good = kv.range(get(&token)).await.map(|r| r.into_inner().count);
            // another signature: its first character changed (the last one may only carry
            // padding bits, which Go's decoder ignores)
            let sig_at = token.rfind('.').unwrap() + 1;
            let first = token.as_bytes()[sig_at];
            let mut bad = token.clone();
            bad.replace_range(sig_at..sig_at + 1, if first == b'A' { "B" } else { "A" });
            let tampered = kv.range(get(&bad)).await.map(|r| r.into_inner().count);
            (
                token,
                good,
                tampered.map_err(|e| (e.code(), e.message().to_string())),
            )
        });
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "a JWT: {token}");
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        assert_eq!(header["alg"], "ES256", "{header}");
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&claims).unwrap();
        assert_eq!(claims["username"], "root", "{claims}");
        assert!(claims["revision"].as_u64().is_some(), "{claims}");
        assert!(claims["exp"].as_u64().is_some(), "{claims}");
        seen.push(format!("{:?}", good.map_err(|e| e.code())));
        seen.push(format!("{tampered:?}"));
        seen
    };
    let retcd = run(ServerKind::Retcd);
    assert_eq!(retcd[4], "Ok(1)");
    assert_eq!(
        retcd[5],
        "Err((Unauthenticated, \"etcdserver: invalid auth token\"))"
    );
    if common::etcd_bin().is_file() {
        assert_eq!(retcd, run(ServerKind::Etcd));
    }
}
