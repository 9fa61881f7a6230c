//! gRPC connections to the cluster: `--conns` HTTP/2 connections over `--endpoints`, with
//! the optional auth token and leader targeting.

use std::sync::Arc;
use std::time::Duration;

use retcd_api::etcdserverpb::auth_client::AuthClient;
use retcd_api::etcdserverpb::kv_client::KvClient;
use retcd_api::etcdserverpb::lease_client::LeaseClient;
use retcd_api::etcdserverpb::maintenance_client::MaintenanceClient;
use retcd_api::etcdserverpb::watch_client::WatchClient;
use retcd_api::etcdserverpb::{AuthenticateRequest, StatusRequest};
use retcd_tls::rustls::ClientConfig;
use retcd_tls::{ClientTlsOptions, Dialer};
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

use crate::BenchError;
use crate::args::GlobalArgs;

/// The connections of one benchmark run. Client `i` uses connection `i % conns`, as etcd's
/// benchmark does.
#[derive(Clone)]
pub struct Conns {
    channels: Vec<Channel>,
    token: Option<MetadataValue<Ascii>>,
}

/// `host:port` -> `http://host:port` (`https://` with `tls`, as clientv3 dials endpoints
/// without a scheme when TLS is configured); URLs with a scheme are kept.
pub fn endpoint_url(ep: &str, tls: bool) -> String {
    if ep.contains("://") {
        ep.to_string()
    } else if tls {
        format!("https://{ep}")
    } else {
        format!("http://{ep}")
    }
}

/// The TLS client configuration for `--cacert --cert --key` (or the system's CAs for
/// `https://` endpoints given without them); `None` when no endpoint needs TLS.
fn tls_config(g: &GlobalArgs, urls: &[String]) -> Result<Option<Arc<ClientConfig>>, BenchError> {
    if !tls_flags(g) && !urls.iter().any(|u| u.starts_with("https://")) {
        return Ok(None);
    }
    retcd_tls::client_config(&ClientTlsOptions {
        ca_file: g.cacert.clone(),
        cert_file: g.cert.clone(),
        key_file: g.key.clone(),
        ..Default::default()
    })
    .map(Some)
    .map_err(|e| BenchError::Setup(e.to_string()))
}

fn tls_flags(g: &GlobalArgs) -> bool {
    g.cacert.is_some() || g.cert.is_some() || g.key.is_some()
}

fn endpoint(url: &str, g: &GlobalArgs, tls: Option<&Arc<ClientConfig>>) -> Result<Dialer, BenchError> {
    if url.starts_with("unix") {
        return Err(BenchError::Setup(format!(
            "{url}: unix sockets are not supported by retcd-bench"
        )));
    }
    let dial_timeout = g.dial_timeout;
    let d = Dialer::new(url, tls)
        .map_err(|e| BenchError::Setup(format!("bad endpoint {url:?}: {e}")))?
        .configure(|e| {
            let e = e
                .tcp_nodelay(true)
                // Big ranges (a full scan of 1M keys) need more than HTTP/2's 64 KiB default
                // window to not be bound by window updates.
                .initial_stream_window_size(8 << 20)
                .initial_connection_window_size(32 << 20);
            if dial_timeout.is_zero() {
                e
            } else {
                e.connect_timeout(dial_timeout)
            }
        });
    // No channel-wide timeout: it would also cut long-lived watch and keep-alive streams.
    // The driver times out each unary request instead (`--request-timeout`).
    Ok(d)
}

async fn dial(url: &str, g: &GlobalArgs, tls: Option<&Arc<ClientConfig>>) -> Result<Channel, BenchError> {
    let d = endpoint(url, g, tls)?;
    let fut = d.connect();
    let r = if g.dial_timeout.is_zero() {
        fut.await
    } else {
        tokio::time::timeout(g.dial_timeout, fut)
            .await
            .map_err(|_| BenchError::Setup(format!("dial {url}: timed out after {:?}", g.dial_timeout)))?
    };
    r.map_err(|e| BenchError::Setup(format!("dial {url}: {}", source_chain(&e))))
}

/// An error and its sources, joined by ": " (tonic's transport errors hide the cause).
pub fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

impl Conns {
    /// Opens `--conns` connections round-robin over the endpoints (or only to the leader
    /// with `--target-leader`) and authenticates when `--user` is given.
    pub async fn connect(g: &GlobalArgs) -> Result<Conns, BenchError> {
        if g.endpoints.is_empty() {
            return Err(BenchError::Setup("no --endpoints".into()));
        }
        let mut urls: Vec<String> = g
            .endpoints
            .iter()
            .map(|e| endpoint_url(e.trim(), tls_flags(g)))
            .collect();
        let tls = tls_config(g, &urls)?;
        if g.target_leader {
            urls = vec![find_leader(&urls, g, tls.as_ref()).await?];
        }
        let mut channels = Vec::with_capacity(g.conns as usize);
        for i in 0..g.conns as usize {
            channels.push(dial(&urls[i % urls.len()], g, tls.as_ref()).await?);
        }
        let mut c = Conns {
            channels,
            token: None,
        };
        if let Some(user) = &g.user {
            let (name, password) = user
                .split_once(':')
                .ok_or_else(|| BenchError::Setup("--user must be username:password".into()))?;
            let resp = AuthClient::new(c.channels[0].clone())
                .authenticate(AuthenticateRequest {
                    name: name.to_string(),
                    password: password.to_string(),
                })
                .await
                .map_err(|s| BenchError::from_status("authenticate", s))?
                .into_inner();
            c.token = Some(
                resp.token
                    .parse()
                    .map_err(|_| BenchError::Setup("server returned an invalid auth token".into()))?,
            );
        }
        Ok(c)
    }

    /// Number of connections.
    pub fn len(&self) -> usize {
        self.channels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    fn channel(&self, i: usize) -> Channel {
        self.channels[i % self.channels.len()].clone()
    }

    pub fn kv(&self, i: usize) -> KvClient<Channel> {
        KvClient::new(self.channel(i))
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX)
    }

    pub fn watch(&self, i: usize) -> WatchClient<Channel> {
        WatchClient::new(self.channel(i)).max_decoding_message_size(usize::MAX)
    }

    pub fn lease(&self, i: usize) -> LeaseClient<Channel> {
        LeaseClient::new(self.channel(i))
    }

    pub fn maintenance(&self, i: usize) -> MaintenanceClient<Channel> {
        MaintenanceClient::new(self.channel(i))
    }

    /// Wraps a message, adding the auth token if there is one.
    pub fn req<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("token", t.clone());
        }
        r
    }
}

async fn find_leader(
    urls: &[String],
    g: &GlobalArgs,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<String, BenchError> {
    let mut last = String::from("no endpoint answered");
    for url in urls {
        let ch = match dial(url, g, tls).await {
            Ok(c) => c,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let mut m = MaintenanceClient::new(ch);
        match tokio::time::timeout(Duration::from_secs(10), m.status(StatusRequest {})).await {
            Ok(Ok(resp)) => {
                let r = resp.into_inner();
                let me = r.header.map(|h| h.member_id).unwrap_or(0);
                if r.leader != 0 && r.leader == me {
                    return Ok(url.clone());
                }
            }
            Ok(Err(s)) => last = format!("{url}: {}", s.message()),
            Err(_) => last = format!("{url}: status timed out"),
        }
    }
    Err(BenchError::Setup(format!(
        "--target-leader: no endpoint is the leader ({last})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        assert_eq!(endpoint_url("127.0.0.1:2379", false), "http://127.0.0.1:2379");
        assert_eq!(endpoint_url("127.0.0.1:2379", true), "https://127.0.0.1:2379");
        assert_eq!(endpoint_url("http://h:1", true), "http://h:1");
    }

    #[tokio::test]
    async fn unreadable_tls_files_fail_the_setup() {
        let g = GlobalArgs {
            cacert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        let e = Conns::connect(&g).await.err().unwrap();
        assert!(e.to_string().contains("open /nonexistent/ca.pem"), "{e}");
    }
}
