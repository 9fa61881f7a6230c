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
