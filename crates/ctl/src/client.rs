//! The connection to etcd: dialing the endpoints (retrying until the command deadline, as
//! clientv3 does), authenticating with `--user`, attaching the token to every call, the
//! per-call `--command-timeout`, and clientv3's "retrying of unary invoker failed" warning.

use std::future::Future;
use std::io::{BufRead, Read, Write};
use std::time::{Duration, Instant};

use retcd_api::etcdserverpb::{
    AuthenticateRequest, auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::{CtlError, deadline_exceeded, grpc_string};
use crate::gofmt;

/// Connection settings from the global flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    pub keepalive_time: Duration,
    pub keepalive_timeout: Duration,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// Adds the auth token (if any) to every request.
#[derive(Clone)]
pub struct TokenInterceptor(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, TokenInterceptor>;

/// A connected client: one channel, the token, and the command deadline.
pub struct Client {
    channel: Channel,
    token: TokenInterceptor,
    pub settings: Settings,
    target: String,
}

/// `127.0.0.1:2379` or `http://127.0.0.1:2379` → (url for tonic, endpoint without scheme).
fn endpoint_url(ep: &str) -> Result<(String, String), CtlError> {
    if let Some(rest) = ep.strip_prefix("http://") {
        Ok((ep.to_string(), rest.to_string()))
    } else if ep.starts_with("https://") || ep.starts_with("unix") {
        Err(CtlError::BadConnection(format!(
            "retcdctl does not support endpoint {ep} yet (TLS and unix sockets)"
        )))
    } else {
        Ok((format!("http://{ep}"), ep.to_string()))
    }
}

/// A random client id like clientv3's (`client-<uuid>`), only used in log lines.
fn client_uuid() -> String {
    let mut b = [0u8; 16];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let n = Instant::now().elapsed().as_nanos() ^ u128::from(std::process::id());
        b = n.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// clientv3's warning for a failed unary call (zap JSON on stderr).
pub fn warn_unary_failed(target: &str, error: &str) {
    eprintln!(
        "{{\"level\":\"warn\",\"ts\":\"{}\",\"caller\":\"clientv3/retry_interceptor.go:62\",\"msg\":\"retrying of unary invoker failed\",\"target\":{},\"attempt\":0,\"error\":{}}}",
        gofmt::zap_iso_now(),
        gofmt::json_string(target),
        gofmt::json_string(error)
    );
}

impl Client {
    /// Connects to the first endpoint that answers, retrying until the command deadline.
    pub async fn connect(settings: &Settings) -> Result<Client, CtlError> {
        Self::connect_to(settings, &settings.endpoints, false).await
    }

    /// Connects to one of `endpoints`; `direct` names the target as clientv3 does for calls
    /// made to one given endpoint (`endpoint status`, `hashkv`, `defrag`).
    pub async fn connect_to(
        settings: &Settings,
        endpoints: &[String],
        direct: bool,
    ) -> Result<Client, CtlError> {
        let first = endpoints
            .first()
            .map(|e| endpoint_url(e))
            .transpose()?
            .map(|(_, e)| e)
            .unwrap_or_default();
        let target = if direct {
            format!("passthrough:///{first}")
        } else {
            format!("endpoint://client-{}/{first}", client_uuid())
        };
        let deadline = Instant::now() + settings.command_timeout;
        let mut last_err = String::from("latest balancer error: all SubConns are in TransientFailure");
        loop {
            for ep in endpoints {
                let (url, bare) = endpoint_url(ep)?;
                let endpoint = Endpoint::from_shared(url)
                    .map_err(|e| CtlError::BadConnection(e.to_string()))?
                    .connect_timeout(settings.dial_timeout)
                    .http2_keep_alive_interval(settings.keepalive_time)
                    .keep_alive_timeout(settings.keepalive_timeout);
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, endpoint.connect()).await {
                    Ok(Ok(channel)) => {
                        let mut client = Client {
                            channel,
                            token: TokenInterceptor(None),
                            settings: settings.clone(),
                            target,
                        };
                        client.authenticate().await?;
                        return Ok(client);
                    }
                    Ok(Err(e)) if direct => {
                        last_err = format!(
                            "latest balancer error: connection error: desc = \"transport: Error while dialing {}\"",
                            dial_error(&bare, &e)
                        );
                    }
                    _ => {}
                }
            }
            if Instant::now() + Duration::from_millis(100) >= deadline {
                let s = Status::deadline_exceeded(last_err);
                warn_unary_failed(&target, &grpc_string(&s));
                return Err(CtlError::Rpc(deadline_exceeded()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `--user name[:password]` (+ `--password`): gets a token, as clientv3 does on dial.
    async fn authenticate(&mut self) -> Result<(), CtlError> {
        let Some(user) = self.settings.user.clone() else {
            return Ok(());
        };
        let (name, password) = match (&self.settings.password, user.split_once(':')) {
            (Some(p), _) => (user.clone(), p.clone()),
            (None, Some((n, p))) => (n.to_string(), p.to_string()),
            (None, None) => (user.clone(), prompt_password("Password: ")?),
        };
        let mut auth = AuthClient::new(self.channel.clone());
        let req = AuthenticateRequest { name, password };
        match tokio::time::timeout(self.settings.command_timeout, auth.authenticate(req)).await {
            Ok(Ok(resp)) => {
                let token = MetadataValue::try_from(resp.into_inner().token)
                    .map_err(|e| CtlError::BadConnection(e.to_string()))?;
                self.token = TokenInterceptor(Some(token));
                Ok(())
            }
            Ok(Err(s)) => {
                warn_unary_failed(&self.target, &grpc_string(&s));
                Err(CtlError::BadConnection(crate::error::status_message(&s)))
            }
            Err(_) => Err(CtlError::BadConnection("context deadline exceeded".into())),
        }
    }

    /// Runs one unary call under `--command-timeout`, logging failures like clientv3.
    pub async fn call<T, F>(&self, fut: F) -> Result<T, CtlError>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        match tokio::time::timeout(self.settings.command_timeout, fut).await {
            Ok(Ok(resp)) => Ok(resp.into_inner()),
            Ok(Err(s)) => {
                warn_unary_failed(&self.target, &grpc_string(&s));
                Err(CtlError::Rpc(s))
            }
            Err(_) => {
                let s = deadline_exceeded();
                warn_unary_failed(&self.target, &grpc_string(&s));
                Err(CtlError::Rpc(s))
            }
        }
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.channel.clone(), self.token.clone())
    }

    pub fn kv(&self) -> KvClient<Svc> {
        KvClient::new(self.svc())
    }
    pub fn watch(&self) -> WatchClient<Svc> {
        WatchClient::new(self.svc())
    }
    pub fn lease(&self) -> LeaseClient<Svc> {
        LeaseClient::new(self.svc())
    }
    pub fn cluster(&self) -> ClusterClient<Svc> {
        ClusterClient::new(self.svc())
    }
    pub fn maintenance(&self) -> MaintenanceClient<Svc> {
        MaintenanceClient::new(self.svc()).max_decoding_message_size(usize::MAX)
    }
    pub fn auth(&self) -> AuthClient<Svc> {
        AuthClient::new(self.svc())
    }
}

/// Go's dial error text for a refused or failed TCP connection.
fn dial_error(addr: &str, e: &tonic::transport::Error) -> String {
    use std::error::Error as _;
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return format!("dial tcp {addr}: connect: connection refused");
            }
            return format!("dial tcp {addr}: {io}");
        }
        src = s.source();
    }
    format!("dial tcp {addr}: {e}")
}

/// Prints `prompt` on stderr and reads one line (the password) from stdin.
pub fn prompt_password(prompt: &str) -> Result<String, CtlError> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CtlError::Other(e.to_string()))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
