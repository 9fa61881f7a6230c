//! Auth in 3-member clusters, the same steps against retcd and real etcd 3.4 (three
//! `/usr/bin/etcd` members), with simple tokens and with JWTs; every output is compared.
//!
//! Root sets up auth through member A; alice (a role with read-write on `app/`) then works
//! through every member with etcdctl, and a token obtained from member A over raw gRPC is
//! used on members B and C. A password change through B and `auth disable` through C take
//! effect on every member.
//!
//! Simple tokens are not per member: the member that receives `Authenticate` picks the
//! random part, it travels in the raft entry with the entry's index, and every member
//! records the same `<random>.<index>` when it applies it (etcd's `tokenSimple.assign`); a
//! member asked for a token it has not applied yet waits until it has. So etcd 3.4 takes
//! member A's simple token on B and C, and so does retcd. JWTs need nothing stored: every
//! member with the key verifies them.
//!
//! Run: `cargo test -p retcd-server --test auth_cluster`

mod common;

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Output, Ports, ServerKind, etcdctl_at};
use retcd_api::etcdserverpb as pb;

/// The clusters run one at a time: 3 members each on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

struct Member {
    ports: Arc<Ports>,
    dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Member {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "----- member {} log (last 40 lines) -----\n{}",
                self.ports.client_url(),
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    kind: ServerKind,
    members: Vec<Member>,
}

impl Cluster {
    /// Three members of `kind` on fresh ports and data dirs, `extra` flags on each; returns
    /// once every member serves a linearizable read.
    fn start(kind: ServerKind, extra: &[&str]) -> Cluster {
        let ports: Vec<Arc<Ports>> = (0..3).map(|_| Ports::reserve()).collect();
        let initial = (0..3)
            .map(|i| format!("m{i}={}", ports[i].peer_url()))
            .collect::<Vec<_>>()
            .join(",");
        let members = ports
            .into_iter()
            .enumerate()
            .map(|(i, ports)| {
                let dir = tempfile::Builder::new()
                    .prefix(&format!("retcd-auth-cluster-{}-", kind.name()))
                    .tempdir()
                    .unwrap();
                let log = File::create(dir.path().join("log")).unwrap();
                let mut cmd = Command::new(kind.binary());
                common::scrub_env(&mut cmd);
                cmd.args(["--name", &format!("m{i}"), "--data-dir"])
                    .arg(dir.path().join("data"))
                    .args(["--listen-client-urls", &ports.client_url()])
                    .args(["--advertise-client-urls", &ports.client_url()])
                    .args(["--listen-peer-urls", &ports.peer_url()])
                    .args(["--initial-advertise-peer-urls", &ports.peer_url()])
                    .args(["--initial-cluster", &initial])
                    .args(extra)
                    .current_dir(dir.path())
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log);
                let child = cmd.spawn().unwrap();
                Member { ports, dir, child }
            })
            .collect();
        let mut c = Cluster { kind, members };
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..3 {
            loop {
                if let Ok(Some(status)) = c.members[i].child.try_wait() {
                    panic!("{} member m{i} exited ({status})", kind.name());
                }
                if c.ctl(i, &["get", "ready-probe"], None).success() {
                    break;
                }
                assert!(Instant::now() < deadline, "{} member m{i} not ready", kind.name());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        c
    }

    fn endpoint(&self, i: usize) -> String {
        self.members[i].ports.client_url()
    }

    fn ctl(&self, i: usize, args: &[&str], stdin: Option<&str>) -> Output {
        etcdctl_at(&self.endpoint(i), args, stdin.map(str::as_bytes))
    }

    /// What etcdctl printed: stdout when it succeeded, else the last line of stderr (the
    /// lines before it are client logs with times and ids).
    fn said(&self, i: usize, args: &[&str]) -> String {
        self.said_with(i, args, None)
    }

    fn said_with(&self, i: usize, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.ctl(i, args, stdin);
        let text = if out.success() {
            out.stdout
        } else {
            out.stderr.lines().last().unwrap_or_default().to_string()
        };
        format!("m{i} {args:?}: {text}")
    }
}

/// A gRPC failure as (code, message), the way etcd's clients see it.
type Failure = (tonic::Code, String);

fn failure(s: tonic::Status) -> Failure {
    (s.code(), s.message().to_string())
}

fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("token", token.parse().unwrap());
    r
}

async fn authenticate(endpoint: String, name: &str, password: &str) -> Result<String, Failure> {
    pb::auth_client::AuthClient::connect(endpoint)
        .await
        .unwrap()
        .authenticate(pb::AuthenticateRequest {
            name: name.into(),
            password: password.into(),
        })
        .await
        .map(|r| r.into_inner().token)
        .map_err(failure)
}

/// Keys under `app/` read with `token`.
async fn count_app(endpoint: String, token: &str) -> Result<i64, Failure> {
    let req = pb::RangeRequest {
        key: b"app/".to_vec(),
        range_end: b"app0".to_vec(),
        count_only: true,
        ..Default::default()
    };
    pb::kv_client::KvClient::connect(endpoint)
        .await
        .unwrap()
        .range(with_token(req, token))
        .await
        .map(|r| r.into_inner().count)
        .map_err(failure)
}

async fn put(endpoint: String, token: &str, key: &str) -> Result<(), Failure> {
    let req = pb::PutRequest {
        key: key.as_bytes().to_vec(),
        value: b"t".to_vec(),
        ..Default::default()
    };
    pb::kv_client::KvClient::connect(endpoint)
        .await
        .unwrap()
        .put(with_token(req, token))
        .await
        .map(|_| ())
        .map_err(failure)
}

async fn user_list(endpoint: String, token: &str) -> Result<Vec<String>, Failure> {
    pb::auth_client::AuthClient::connect(endpoint)
        .await
        .unwrap()
        .user_list(with_token(pb::AuthUserListRequest {}, token))
        .await
        .map(|r| r.into_inner().users)
        .map_err(failure)
}

/// The kind of token, without its random or signed parts.
fn token_shape(token: &str) -> String {
    match retcd_auth::simple_token_index(token) {
        Some(_) if token.split('.').next().is_some_and(|p| p.len() == 16) => "simple token".into(),
        _ if token.split('.').count() == 3 => "JWT".into(),
        _ => format!("unexpected token {token:?}"),
    }
}

/// The steps, run against one cluster; what every step answered.
fn scenario(c: &Cluster) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut seen = Vec::new();
    let (a, b, cc) = (0, 1, 2);
    // root sets up auth through member A
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["role", "add", "app"],
        &["role", "grant-permission", "app", "readwrite", "app/", "--prefix"],
        &["user", "add", "alice:alicepw"],
        &["user", "grant-role", "alice", "app"],
        &["auth", "enable"],
    ] {
        seen.push(c.said(a, args));
    }
    // alice through every member (etcdctl authenticates with the member it talks to)
    for i in 0..3 {
        let key = format!("app/{i}");
        seen.push(c.said(i, &["put", &key, "v", "--user", "alice:alicepw"]));
        seen.push(c.said(
            i,
            &[
                "get",
                "app/",
                "--prefix",
                "--keys-only",
                "--user",
                "alice:alicepw",
            ],
        ));
        seen.push(c.said(i, &["put", "other", "x", "--user", "alice:alicepw"]));
        seen.push(c.said(i, &["get", "other", "--user", "alice:alicepw"]));
        seen.push(c.said(i, &["user", "list", "--user", "alice:alicepw"]));
        seen.push(c.said(i, &["role", "get", "app", "--user", "alice:alicepw"]));
        seen.push(c.said(i, &["get", "app/0"]));
        seen.push(c.said(i, &["user", "list", "--user", "root:rootpw"]));
    }
    // a token from member A, used as it is on B and C
    let ep: Vec<String> = (0..3).map(|i| c.endpoint(i)).collect();
    let token = rt
        .block_on(authenticate(ep[a].clone(), "alice", "alicepw"))
        .unwrap();
    seen.push(format!("token from m{a}: {}", token_shape(&token)));
    for i in [b, cc] {
        let e = ep[i].clone();
        let (count, put_ok, put_denied, users) = rt.block_on(async {
            (
                count_app(e.clone(), &token).await,
                put(e.clone(), &token, &format!("app/token-{i}")).await,
                put(e.clone(), &token, "other").await,
                user_list(e, &token).await,
            )
        });
        seen.push(format!("m{a}'s token on m{i}: count {count:?}"));
        seen.push(format!("m{a}'s token on m{i}: put app/ {put_ok:?}"));
        seen.push(format!("m{a}'s token on m{i}: put other {put_denied:?}"));
        seen.push(format!("m{a}'s token on m{i}: user list {users:?}"));
    }
    // a password change through member B
    seen.push(c.said_with(
        b,
        &[
            "user",
            "passwd",
            "alice",
            "--interactive=false",
            "--user",
            "root:rootpw",
        ],
        Some("newpw\n"),
    ));
    for (i, e) in ep.iter().enumerate() {
        seen.push(c.said(i, &["get", "app/0", "--user", "alice:alicepw"]));
        seen.push(c.said(
            i,
            &["get", "app/0", "--print-value-only", "--user", "alice:newpw"],
        ));
        let (old_token, old_password) = rt.block_on(async {
            (
                count_app(e.clone(), &token).await,
                authenticate(e.clone(), "alice", "alicepw")
                    .await
                    .map(|t| token_shape(&t)),
            )
        });
        seen.push(format!("m{a}'s old token on m{i}: {old_token:?}"));
        seen.push(format!("old password on m{i}: {old_password:?}"));
    }
    let new_token = rt
        .block_on(authenticate(ep[a].clone(), "alice", "newpw"))
        .unwrap();
    seen.push(format!("new token from m{a}: {}", token_shape(&new_token)));
    seen.push(format!(
        "m{a}'s new token on m{b}: {:?}",
        rt.block_on(count_app(ep[b].clone(), &new_token))
    ));
    // auth disabled through member C
    seen.push(c.said(cc, &["auth", "disable", "--user", "root:rootpw"]));
    for (i, e) in ep.iter().enumerate() {
        seen.push(c.said(i, &["get", "app/0", "--print-value-only"]));
        seen.push(c.said(i, &["put", "other", "x"]));
        seen.push(c.said(i, &["user", "list"]));
        // etcd still resolves a token while auth is disabled: a simple token was forgotten
        // by `auth disable`; a JWT verifies but is older than the auth revision, which
        // only reads look at then
        let (read, write, auth) = rt.block_on(async {
            (
                count_app(e.clone(), &new_token).await,
                put(e.clone(), &new_token, "other").await,
                authenticate(e.clone(), "alice", "newpw")
                    .await
                    .map(|t| token_shape(&t)),
            )
        });
        seen.push(format!("m{a}'s token on m{i} after auth disable: read {read:?}"));
        seen.push(format!(
            "m{a}'s token on m{i} after auth disable: write {write:?}"
        ));
        seen.push(format!("authenticate on m{i} after auth disable: {auth:?}"));
    }
    seen
}

/// Runs the scenario on a retcd cluster and on an etcd 3.4 cluster with the same flags;
/// returns retcd's answers after comparing them with etcd's, step by step.
fn compare_with_etcd(extra: &[&str]) -> Vec<String> {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let retcd = {
        let c = Cluster::start(ServerKind::Retcd, extra);
        assert_eq!(c.kind, ServerKind::Retcd);
        scenario(&c)
    };
    if common::etcd_bin().is_file() {
        let etcd = scenario(&Cluster::start(ServerKind::Etcd, extra));
        for (r, e) in retcd.iter().zip(&etcd) {
            assert_eq!(r, e, "retcd answered differently from etcd 3.4");
        }
        assert_eq!(retcd.len(), etcd.len());
    }
    retcd
}

/// Checks the parts of the answers that do not depend on the token kind.
fn check_common(seen: &[String]) {
    let has = |needle: &str| {
        assert!(
            seen.iter().any(|s| s.contains(needle)),
            "no answer contains {needle:?}:\n{}",
            seen.join("\n")
        )
    };
    for i in 0..3 {
        has(&format!(
            r#"m{i} ["put", "other", "x", "--user", "alice:alicepw"]: Error: etcdserver: permission denied"#
        ));
        has(&format!(
            r#"m{i} ["user", "list", "--user", "alice:alicepw"]: Error: etcdserver: permission denied"#
        ));
        has(&format!(
            r#"m{i} ["get", "app/0", "--user", "alice:alicepw"]: Error: etcdserver: authentication failed, invalid user ID or password"#
        ));
        has(&format!(
            r#"m{i} ["get", "app/0", "--print-value-only", "--user", "alice:newpw"]: v"#
        ));
        has(&format!(
            r#"old password on m{i}: Err((InvalidArgument, "etcdserver: authentication failed, invalid user ID or password"))"#
        ));
        has(&format!(r#"m{i} ["put", "other", "x"]: OK"#));
        has(&format!(
            r#"authenticate on m{i} after auth disable: Err((FailedPrecondition, "etcdserver: authentication is not enabled"))"#
        ));
    }
    for i in [1, 2] {
        has(&format!("m0's token on m{i}: put app/ Ok(())"));
        has(&format!(
            r#"m0's token on m{i}: put other Err((PermissionDenied, "etcdserver: permission denied"))"#
        ));
        has(&format!(
            r#"m0's token on m{i}: user list Err((PermissionDenied, "etcdserver: permission denied"))"#
        ));
    }
}

/// Simple tokens (etcd's default): member A's token works on B and C; a password change
/// invalidates it on every member, and `auth disable` alice's new one.
#[test]
fn simple_tokens_across_three_members() {
    let seen = compare_with_etcd(&[]);
    check_common(&seen);
    assert!(seen.contains(&"token from m0: simple token".to_string()));
    assert!(seen.contains(&"m0's token on m1: count Ok(3)".to_string()));
    assert!(seen.contains(&"m0's token on m2: count Ok(4)".to_string()));
    for i in 0..3 {
        for s in [
            format!(r#"m0's old token on m{i}: Err((Unauthenticated, "etcdserver: invalid auth token"))"#),
            format!(
                r#"m0's token on m{i} after auth disable: read Err((Unauthenticated, "etcdserver: invalid auth token"))"#
            ),
            format!(
                r#"m0's token on m{i} after auth disable: write Err((Unauthenticated, "etcdserver: invalid auth token"))"#
            ),
        ] {
            assert!(seen.contains(&s), "{s}\n{seen:#?}");
        }
    }
}

/// JWTs (ES512, the same key pair on every member): member A's token works on B and C; after
/// a password change it is refused everywhere as issued at an old auth revision. After
/// `auth disable` (which moves the revision too) a JWT is still refused for reads, not for
/// writes, as by etcd 3.4 (its `doSerialize` compares revisions after a read).
#[test]
fn jwt_tokens_across_three_members() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).unwrap();
    let (priv_path, pub_path) = (dir.path().join("jwt.key"), dir.path().join("jwt.pub"));
    std::fs::write(&priv_path, key.serialize_pem()).unwrap();
    std::fs::write(&pub_path, key.public_key_pem()).unwrap();
    let flag = format!(
        "jwt,pub-key={},priv-key={},sign-method=ES512",
        pub_path.display(),
        priv_path.display()
    );
    let seen = compare_with_etcd(&["--auth-token", &flag]);
    check_common(&seen);
    assert!(seen.contains(&"token from m0: JWT".to_string()));
    assert!(seen.contains(&"m0's token on m1: count Ok(3)".to_string()));
    for i in 0..3 {
        for s in [
            format!(
                r#"m0's old token on m{i}: Err((InvalidArgument, "etcdserver: revision of auth store is old"))"#
            ),
            format!(
                r#"m0's token on m{i} after auth disable: read Err((InvalidArgument, "etcdserver: revision of auth store is old"))"#
            ),
            format!("m0's token on m{i} after auth disable: write Ok(())"),
        ] {
            assert!(seen.contains(&s), "{s}\n{seen:#?}");
        }
    }
}
