//! `retcd`: an etcd-compatible server. Takes etcd's flags, serves the etcd v3 gRPC API on the
//! client URLs, and keeps every acknowledged write in a raft log before applying it to a
//! persistent MVCC store.
//!
//! # Layout
//! - `config`: etcd's flags, `ETCD_*` variables and YAML config file.
//! - `ids`: member and cluster ids derived as etcd derives them.
//! - `etcdserver`: the core: propose and wait, ReadIndex, response headers.
//! - `v3_server`: the KV and lease operations on top of it (shared by services and recipes).
//! - `applier`: committed requests -> MVCC changes and responses; local reads.
//! - `wait`: proposers waiting for their entries to be applied (etcd's pkg/wait).
//! - `lease`: the shared lessor, its restore, promotion and expiry loop.
//! - `checks`: request validation before proposing (etcd's v3rpc checks).
//! - `raft_request`: the encoded proposal (etcd's InternalRaftRequest).
//! - `services`: the gRPC services.
//! - `http`: the client port's routes: gRPC beside `/health`, `/version`, `/livez`, `/readyz`.
//! - `gateway`: etcd's JSON gateway (`/v3/...`) over the gRPC services.
//! - `h2_authority`: connection shim that turns a URL in HTTP/2 `:authority` into host:port.
//! - `tls`: TLS flags, certificates and configurations for `https://` client and peer URLs;
//!   the client certificate's Common Name.
//!
//! It depends on every crate below it (api, mvcc, raft-node); nothing depends on it.

mod alarm;
mod applier;
mod auth;
mod checks;
mod compactor;
mod config;
mod corrupt;
mod dns;
mod etcdserver;
mod gateway;
mod gosort;
mod h2_authority;
mod http;
mod ids;
mod lease;
mod metrics;
mod raft_request;
mod services;
mod snapshot;
mod tls;
mod v3_server;
mod wait;

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use retcd_mvcc::{Store, StoreConfig};
use retcd_raft_node::{MemberNode, RaftNode, RaftNodeConfig};
use tokio::sync::watch;

use crate::config::Config;
use crate::etcdserver::{ETCD_COMPAT_VERSION, EtcdServer};

/// gRPC allows this much beyond `--max-request-bytes` so an oversized request reaches the
/// server and gets etcd's "request is too large" instead of a transport error (as etcd).
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

fn init_logging(cfg: &Config) {
    let level = match cfg.log_level.as_str() {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "panic" | "fatal" | "dpanic" => "error",
        _ => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETCD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn,raft_log=warn,chunked_wal=warn"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cfg.logger == "capnslog" {
        builder.init();
    } else {
        builder.json().flatten_event(true).with_current_span(false).init();
    }
}

/// mimalloc: the server makes many small, short-lived allocations on many threads (request
/// and response messages, watch deliveries); glibc's malloc was ~12 % of the put path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cfg = match Config::from_args(std::env::args().collect()) {
        Ok(c) => c,
        Err(config::ConfigError::Clap(e)) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
        Err(e) => {
            eprintln!("retcd: {e}");
            return ExitCode::from(1);
        }
    };
    init_logging(&cfg);
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("retcd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("retcd: {e}");
            ExitCode::from(1)
        }
    }
}

fn create_dir_secure(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(p)
}

/// Binds a listener for each URL (etcd's "listen tcp ADDR: bind: ..." on failure).
async fn bind_all(urls: &[String]) -> Result<Vec<(String, tokio::net::TcpListener)>, String> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let addr = resolve(url).await?;
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listen tcp {addr}: bind: {e}"))?;
        out.push((url.clone(), l));
    }
    Ok(out)
}

/// A client URL's listener: TCP (`http://`, `https://`), or a unix socket (`unix://`).
enum ClientListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

/// Binds the client URLs: as [`bind_all`], plus `unix://HOST[PATH]` as etcd's unix listener
/// does: the socket file is named HOST followed by PATH (`unix://localhost:2379` is the
/// file `localhost:2379` in the working directory), a file already there is removed first
/// (`listen unix PATH: bind: ...` on failure), and the file is removed when the server stops.
async fn bind_client_all(urls: &[String]) -> Result<Vec<(String, ClientListener)>, String> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        if let Some(path) = url.strip_prefix("unix://") {
            let path = std::path::PathBuf::from(path);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(format!("listen unix {}: remove: {e}", path.display()));
            }
            let l = tokio::net::UnixListener::bind(&path)
                .map_err(|e| format!("listen unix {}: bind: {e}", path.display()))?;
            out.push((url.clone(), ClientListener::Unix(l, path)));
        } else {
            for (url, l) in bind_all(std::slice::from_ref(url)).await? {
                out.push((url, ClientListener::Tcp(l)));
            }
        }
    }
    Ok(out)
}

async fn resolve(url: &str) -> Result<SocketAddr, String> {
    let hostport = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("unsupported listen URL {url:?} (only http:// and https://)"))?
        .trim_end_matches('/');
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(hostport)
        .await
        .map_err(|e| format!("cannot resolve listen URL {url:?}: {e}"))?
        .collect();
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| format!("listen URL {url:?} resolves to no address"))
}

async fn run(cfg: Config) -> Result<(), String> {
    tracing::info!(
        name = %cfg.name,
        data_dir = %cfg.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"),
        listen_client_urls = ?cfg.listen_client_urls,
        listen_peer_urls = ?cfg.listen_peer_urls,
        initial_cluster_state = %cfg.initial_cluster_state,
        quota_backend_bytes = cfg.quota_backend_bytes,
        "starting retcd"
    );
    let member_dir = cfg.data_dir.join("member");
    create_dir_secure(&member_dir.join("snap")).map_err(|e| format!("cannot create data dir: {e}"))?;
    create_dir_secure(&member_dir.join("wal")).map_err(|e| format!("cannot create data dir: {e}"))?;
    let tls = tls::prepare(&cfg.tls, &cfg.data_dir)?;

    // Bind the client listeners first so a port conflict fails before anything else.
    let listeners = bind_client_all(&cfg.listen_client_urls).await?;
    let metrics_listeners = bind_all(&cfg.listen_metrics_urls).await?;
    let peer_listeners = bind_all(&cfg.listen_peer_urls).await?;

    let db_path = member_dir.join("snap").join("db");
    let (store, resume) = {
        let p = db_path.clone();
        // the pause between compaction transactions grows with their size (10 µs per row,
        // etcd's 10 ms per 1000), so the apply loop's share of the write lock is the same
        let store_cfg = StoreConfig {
            compaction_batch_limit: cfg.compaction_batch_limit,
            compaction_sleep: Duration::from_micros(10 * cfg.compaction_batch_limit as u64),
        };
        tokio::task::spawn_blocking(move || Store::open(&p, store_cfg))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot open backend {}: {e}", db_path.display()))?
    };
    tracing::info!(
        current_revision = store.current_revision(),
        compact_revision = store.compact_revision(),
        consistent_index = store.consistent_index(),
        "opened backend"
    );
    let (member_id, cluster_id, joining) = cluster_ids(&cfg, &store, tls.peer_dial.as_ref()).await?;
    let watchable = retcd_watch::WatchableStore::new(store.clone()).map_err(|e| e.to_string())?;
    let leases = lease::LeaseHub::restore(
        &store,
        retcd_lease::LessorConfig {
            min_ttl: retcd_lease::LessorConfig::min_ttl_for(cfg.heartbeat_interval, cfg.election_timeout),
            checkpoint_interval: cfg.lease_checkpoint_interval,
        },
    )?;
    let wait = std::sync::Arc::new(wait::Wait::default());
    let (token_cfg, token_ttl) = (cfg.auth_token.clone(), cfg.auth_token_ttl);
    // Checked here (JWT keys readable and matching), so rebuilding it later cannot fail.
    retcd_auth::TokenProvider::from_config(&token_cfg, token_ttl)
        .map_err(|e| format!("--auth-token: {e}"))?;
    let auth = auth::AuthHub::load(
        &store,
        move || {
            retcd_auth::TokenProvider::from_config(&token_cfg, token_ttl)
                .unwrap_or_else(|_| retcd_auth::TokenProvider::simple(token_ttl))
        },
        cfg.bcrypt_cost,
    )
    .map_err(|e| format!("cannot load the auth store: {e}"))?;
    let alarms = std::sync::Arc::new(
        alarm::AlarmStore::load(&store).map_err(|e| format!("cannot load the alarms: {e}"))?,
    );
    let applier = applier::Applier::new(
        store.clone(),
        resume,
        watchable.clone(),
        leases.clone(),
        wait.clone(),
        auth.clone(),
        alarms.clone(),
    )
    .map_err(|e| e.to_string())?;

    let restored = restored_members(&store)?;
    let initial_members = match restored {
        Some(m) => m,
        None => cfg
            .initial_cluster
            .iter()
            .map(|(name, urls)| {
                // the same on every member (each publishes its client URLs once started)
                let id = ids::member_id(urls, &cfg.initial_cluster_token);
                (
                    id,
                    MemberNode {
                        name: name.clone(),
                        peer_urls: urls.clone(),
                        client_urls: vec![],
                    },
                )
            })
            .collect(),
    };
    let raft = RaftNode::start_with_tls(
        RaftNodeConfig {
            id: member_id,
            cluster_id,
            initial_members,
            wal_dir: member_dir.join("wal"),
            heartbeat_ms: cfg.heartbeat_interval,
            election_ms: cfg.election_timeout,
            snapshot_count: cfg.snapshot_count,
            join_existing: joining,
            snapshot_catchup_entries: cfg.snapshot_catchup_entries,
            force_new_cluster: cfg.force_new_cluster.then(|| MemberNode {
                name: cfg.name.clone(),
                peer_urls: cfg.initial_advertise_peer_urls.clone(),
                client_urls: cfg.advertise_client_urls.clone(),
            }),
        },
        Box::new(applier),
        tls.peer_dial.clone(),
    )
    .await
    .map_err(|e| format!("cannot start raft: {e}"))?;
    // The peer transport must be up before the first election.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for (url, listener) in peer_listeners {
        let mut stop = stop_rx.clone();
        let router = tonic::transport::Server::builder().add_service(raft.peer_service());
        // https peer URLs: TLS only (a plain-text connection never reaches the service)
        let tls_config = tls.peer.clone().filter(|_| url.starts_with("https://"));
        let check = tls::connection_check(cfg.tls.peer_allowed.clone(), cfg.tls.peer_client_san);
        tracing::info!(address = %url, tls = tls_config.is_some(), "serving peer traffic");
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|v| *v).await;
            };
            if let Some(config) = tls_config {
                let incoming = retcd_tls::incoming_checked(listener, config, check);
                return router.serve_with_incoming_shutdown(incoming, shutdown).await;
            }
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let incoming = tokio_stream::StreamExt::map(incoming, |c| {
                c.inspect(|tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!("TCP_NODELAY: {e}");
                    }
                })
            });
            router.serve_with_incoming_shutdown(incoming, shutdown).await
        }));
    }
    raft.wait_ready(Duration::from_secs(60))
        .await
        .map_err(|e| format!("raft did not become ready: {e}"))?;
    // Publish this member's name and client URLs (others learned only its peer URLs from
    // --initial-cluster); retried in the background until a leader takes it.
    {
        let raft = raft.clone();
        let node = MemberNode {
            name: cfg.name.clone(),
            peer_urls: cfg.initial_advertise_peer_urls.clone(),
            client_urls: cfg.advertise_client_urls.clone(),
        };
        tokio::spawn(async move {
            for attempt in 0u32.. {
                match raft.publish(node.clone()).await {
                    Ok(()) => return,
                    Err(e) => {
                        if attempt % 10 == 9 {
                            tracing::warn!(error = %e, "failed to publish local member to cluster; retrying");
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
    }
    let st = raft.status();
    tracing::info!(
        local_member_id = format!("{member_id:x}"),
        cluster_id = format!("{cluster_id:x}"),
        raft_term = st.term,
        applied_index = st.applied_index,
        "published local member to cluster through raft"
    );
    tracing::info!(
        capabilities = "[\"kv\"]",
        cluster_version = "3.5",
        "enabled capabilities for version"
    );

    let server = EtcdServer::new(
        cfg.clone(),
        store.clone(),
        raft.clone(),
        (member_id, cluster_id),
        etcdserver::Hubs {
            leases,
            wait,
            auth,
            alarms,
        },
    );
    let lessor_task = tokio::spawn(lease::run_lessor(server.clone()));
    let compactor_task = tokio::spawn(compactor::run(server.clone(), cfg.auto_compaction));
    let metrics_task = metrics::start(&server, services::maintenance::CLUSTER_VERSION);
    if cfg.initial_corrupt_check {
        corrupt::check_initial_hash(&server).await?;
    }
    let corrupt_task = cfg
        .corrupt_check_time
        .map(|every| tokio::spawn(corrupt::run_periodic(server.clone(), every)));
    {
        // what this member answers when it leads and a follower forwards a call
        let s = std::sync::Arc::downgrade(&server);
        raft.set_app_handler(std::sync::Arc::new(move |method: String, data: Vec<u8>| {
            let s = s.clone();
            Box::pin(async move {
                let Some(s) = s.upgrade() else {
                    return Err(tonic::Status::unavailable("member is stopping"));
                };
                s.handle_app_call(&method, &data).await
            })
        }));
    }
    // One set of services for every client URL: gRPC routes and the HTTP side share them.
    let client_api = http::ClientApi::new(server.clone(), watchable.clone());
    let client_routes = client_api.routes();
    for (url, listener) in listeners {
        let mut stop = stop_rx.clone();
        // HTTP/1.1 too: the same listener answers etcd's HTTP endpoints and JSON gateway.
        let router = tonic::transport::Server::builder()
            .layer(metrics::GrpcMetricsLayer)
            .layer(auth::PeerCnLayer)
            .accept_http1(true)
            .add_routes(client_routes.clone());
        let h2_router = tonic::transport::Server::builder()
            .layer(metrics::GrpcMetricsLayer)
            .layer(auth::PeerCnLayer)
            .add_routes(client_routes.clone());
        let tls_stop = stop_rx.clone();
        // https client URLs: TLS only (a plain-text connection never reaches gRPC).
        let tls_config = tls.client.clone().filter(|_| url.starts_with("https://"));
        tracing::info!(address = %url, tls = tls_config.is_some(), "ready to serve client requests");
        let check = tls::connection_check(cfg.tls.client_allowed.clone(), false);
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|v| *v).await;
            };
            let listener = match listener {
                ClientListener::Tcp(l) => l,
                ClientListener::Unix(l, path) => {
                    let incoming = tokio_stream::wrappers::UnixListenerStream::new(l);
                    let incoming =
                        tokio_stream::StreamExt::map(incoming, |c| c.map(h2_authority::H2AuthorityFix::new));
                    let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;
                    let _ = std::fs::remove_file(&path);
                    return served;
                }
            };
            // Every connection goes through the `:authority` shim (etcdctl 3.4 sends URLs
            // there); over TLS it works on the decrypted stream, after the handshake.
            if let Some(config) = tls_config {
                // h2 (by ALPN) to an HTTP/2-only server, the rest to one that also speaks 1.1
                let incoming = Box::pin(retcd_tls::incoming_checked(listener, config, check));
                let (h2, other) = http::split_by_alpn(incoming, tls_stop.clone());
                let h2 = tokio_stream::StreamExt::map(h2, |c| c.map(h2_authority::H2AuthorityFix::new));
                let other = tokio_stream::StreamExt::map(other, |c| c.map(h2_authority::H2AuthorityFix::new));
                let mut stop2 = tls_stop;
                let shutdown2 = async move {
                    let _ = stop2.wait_for(|v| *v).await;
                };
                let (a, b) = tokio::join!(
                    h2_router.serve_with_incoming_shutdown(h2, shutdown),
                    router.serve_with_incoming_shutdown(other, shutdown2)
                );
                return a.and(b);
            }
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            let incoming = tokio_stream::StreamExt::map(incoming, |c| {
                c.map(|tcp| {
                    // Small gRPC frames must not wait for the peer's delayed ACK (40 ms stalls).
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!("TCP_NODELAY: {e}");
                    }
                    h2_authority::H2AuthorityFix::new(tcp)
                })
            });
            router.serve_with_incoming_shutdown(incoming, shutdown).await
        }));
    }
    for (url, listener) in metrics_listeners {
        let mut stop = stop_rx.clone();
        let routes = tonic::service::Routes::from(metrics::routes(server.clone()));
        // https: the client certificate, HTTP/1.1 only (scrapers speak it)
        let tls_config = tls
            .client
            .clone()
            .filter(|_| url.starts_with("https://"))
            .map(|c| {
                let mut c = (*c).clone();
                c.alpn_protocols = vec![b"http/1.1".to_vec()];
                std::sync::Arc::new(c)
            });
        tracing::info!(address = %url, tls = tls_config.is_some(), "serving metrics");
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|v| *v).await;
            };
            let server = tonic::transport::Server::builder()
                .accept_http1(true)
                .add_routes(routes);
            match tls_config {
                Some(config) => {
                    let incoming = retcd_tls::incoming(listener, config);
                    server.serve_with_incoming_shutdown(incoming, shutdown).await
                }
                None => {
                    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                    server.serve_with_incoming_shutdown(incoming, shutdown).await
                }
            }
        }));
    }
    tracing::info!(version = ETCD_COMPAT_VERSION, "serving etcd v3 API");

    wait_for_signal().await;
    tracing::info!("received signal; shutting down");
    let _ = stop_tx.send(true);
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(5), t).await {
            Ok(Ok(Err(e))) => tracing::warn!("client server stopped with error: {e}"),
            Err(_) => tracing::warn!("client connections did not drain in 5s"),
            _ => {}
        }
    }
    lessor_task.abort();
    compactor_task.abort();
    metrics_task.abort();
    if let Some(t) = corrupt_task {
        t.abort();
    }
    raft.shutdown().await;
    let final_sync =
        tokio::task::spawn_blocking(move || store.begin_batch().and_then(|b| b.commit(true))).await;
    if let Ok(Err(e)) = final_sync {
        return Err(format!("final backend sync failed: {e}"));
    }
    tracing::info!("stopped");
    Ok(())
}

/// This member's id and its cluster's id: kept in the backend once known. The first time,
/// a member of a new cluster derives them from the flags as etcd does; a member added to a
/// running cluster (`--initial-cluster-state existing`) asks the cluster, finding itself by
/// its peer URLs. The third value says the member is joining (it must not bootstrap).
async fn cluster_ids(
    cfg: &Config,
    store: &Store,
    peer_tls: Option<&retcd_raft_node::PeerTls>,
) -> Result<(u64, u64, bool), String> {
    let read = |name: &str| -> Result<Option<u64>, String> {
        match store.meta(name).map_err(|e| e.to_string())? {
            Some(b) => Ok(Some(u64::from_be_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| format!("corrupt {name} in the backend"))?,
            ))),
            None => Ok(None),
        }
    };
    if let (Some(m), Some(c)) = (read(META_MEMBER_ID)?, read(META_CLUSTER_ID)?) {
        return Ok((m, c, false));
    }
    let fresh = store.consistent_index() == 0;
    let (member_id, cluster_id, joining) = if cfg.initial_cluster_state == "existing" && fresh {
        let (m, c) = ids_from_cluster(cfg, peer_tls).await?;
        (m, c, true)
    } else {
        let member_ids: Vec<u64> = cfg
            .initial_cluster
            .values()
            .map(|urls| ids::member_id(urls, &cfg.initial_cluster_token))
            .collect();
        (
            ids::member_id(&cfg.initial_advertise_peer_urls, &cfg.initial_cluster_token),
            ids::cluster_id(&member_ids),
            false,
        )
    };
    let store = store.clone();
    tokio::task::spawn_blocking(move || -> Result<(), retcd_mvcc::MvccError> {
        let mut b = store.begin_batch()?;
        b.set_meta(META_MEMBER_ID, &member_id.to_be_bytes())?;
        b.set_meta(META_CLUSTER_ID, &cluster_id.to_be_bytes())?;
        b.commit(true)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot record the member id: {e}"))?;
    Ok((member_id, cluster_id, joining))
}

/// The membership `retcdctl snapshot restore` wrote from its `--initial-cluster` (as
/// etcd's restore writes it into the new WAL): a restored member bootstraps raft with it
/// whatever `--initial-cluster` it is started with. JSON `[{"id", "name", "peer_urls"}]`.
fn restored_members(store: &Store) -> Result<Option<std::collections::BTreeMap<u64, MemberNode>>, String> {
    #[derive(serde::Deserialize)]
    struct Restored {
        id: u64,
        name: String,
        peer_urls: Vec<String>,
    }
    let Some(blob) = store.meta(META_RESTORED_MEMBERS).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let list: Vec<Restored> = serde_json::from_slice(&blob)
        .map_err(|e| format!("corrupt {META_RESTORED_MEMBERS} in the backend: {e}"))?;
    tracing::info!(
        members = list.len(),
        "bootstrapping with the membership written by snapshot restore"
    );
    Ok(Some(
        list.into_iter()
            .map(|m| {
                let node = MemberNode {
                    name: m.name,
                    peer_urls: m.peer_urls,
                    client_urls: vec![],
                };
                (m.id, node)
            })
            .collect(),
    ))
}

const META_RESTORED_MEMBERS: &str = "restored_members";
const META_MEMBER_ID: &str = "member_id";
const META_CLUSTER_ID: &str = "cluster_id";

/// Asks the other members of `--initial-cluster` for the cluster's members and finds this
/// one among them by its peer URLs (etcd's `GetClusterFromRemotePeers`).
async fn ids_from_cluster(
    cfg: &Config,
    peer_tls: Option<&retcd_raft_node::PeerTls>,
) -> Result<(u64, u64), String> {
    use prost::Message;
    let mut mine = cfg.initial_advertise_peer_urls.clone();
    mine.sort();
    let mut last = String::from("no other member in --initial-cluster");
    for (name, urls) in &cfg.initial_cluster {
        if *name == cfg.name {
            continue;
        }
        for url in urls {
            match retcd_raft_node::call_member(url, v3_server::APP_MEMBER_LIST, Vec::new(), peer_tls).await {
                Ok(data) => {
                    let list = retcd_api::etcdserverpb::MemberListResponse::decode(data.as_slice())
                        .map_err(|e| e.to_string())?;
                    let cluster_id = list.header.map(|h| h.cluster_id).unwrap_or(0);
                    for m in list.members {
                        let mut urls = m.peer_ur_ls.clone();
                        urls.sort();
                        if urls == mine {
                            return Ok((m.id, cluster_id));
                        }
                    }
                    return Err(format!(
                        "member with peer URLs {} has not been added to the cluster (etcdctl member add first)",
                        mine.join(",")
                    ));
                }
                Err(e) => last = format!("{url}: {}", e.message()),
            }
        }
    }
    Err(format!(
        "could not get the cluster's members from any other member: {last}"
    ))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
