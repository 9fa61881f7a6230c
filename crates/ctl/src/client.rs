//! The connection to etcd: dialing the endpoints (retrying until the command deadline, as
//! clientv3 does), authenticating with `--user`, attaching the token to every call, the
//! per-call `--command-timeout`, and clientv3's "retrying of unary invoker failed" warning.

use std::future::Future;
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use retcd_api::etcdserverpb::{
    AuthenticateRequest, auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use retcd_tls::Dialer;
use retcd_tls::rustls::ClientConfig;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::{CtlError, deadline_exceeded, grpc_string};
use crate::goaddr::Parsed;
use crate::gofmt;
use crate::grpclog::{self, State};

/// Connection settings from the global flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `--endpoints`, each trimmed (the endpoints of a client)
    pub endpoints: Vec<String>,
    /// `--endpoints` as given (what the endpoint commands dial one by one)
    pub raw_endpoints: Vec<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
    /// whether `--command-timeout` was set (on the command line or, for the commands that
    /// read it after making their client, by its variable): `snapshot save` has a deadline
    /// only then
    pub command_timeout_given: bool,
    pub keepalive_time: Duration,
    pub keepalive_timeout: Duration,
    pub user: Option<String>,
    pub password: Option<String>,
    pub tls: TlsSettings,
    /// what etcdctl only finds wrong when it builds its first client, after the command
    /// checked its arguments
    pub deferred: Option<Deferred>,
    /// what etcdctl says about the `ETCDCTL_*` variables then (once)
    pub env: Arc<crate::cli::EnvLines>,
    /// `--discovery-srv`: the endpoints come from DNS SRV records, when it finds any
    pub discovery: Option<Discovery>,
    /// the endpoints discovery found (looked up once, when the first client is made)
    pub discovered: Arc<OnceLock<Result<Vec<String>, String>>>,
}

/// `--discovery-srv DOMAIN --discovery-srv-name NAME --insecure-discovery`.
#[derive(Debug, Clone)]
pub struct Discovery {
    pub domain: String,
    pub service_name: String,
    /// keep the `http://` endpoints found (etcdctl's default); without it they are dropped
    /// and TLS checks the servers' certificates against the domain
    pub insecure: bool,
}

/// A global setting etcdctl rejects once a command asks for a client.
#[derive(Debug, Clone)]
pub enum Deferred {
    /// an output format etcdctl does not know (exit 4)
    BadFormat,
}

/// clientv3's refusal of a client without any endpoint (exit 2).
pub fn no_endpoints() -> CtlError {
    CtlError::BadConnection("etcdclient: no available endpoints".into())
}

impl Settings {
    /// What etcdctl does when it makes its client config: the `ETCDCTL_*` variables are
    /// looked at (unknown ones warned about, a flag given both ways ends the process, exit
    /// 1; the first time only); the endpoints are looked up (`--discovery-srv`; a failed
    /// lookup is an error, exit 1); an unknown output format is an error (exit 4). Returns
    /// the endpoints the client dials.
    pub fn prepare(&self) -> Result<Vec<String>, CtlError> {
        self.env.report();
        let endpoints = self.client_endpoints()?;
        self.check_format()?;
        Ok(endpoints)
    }

    /// [`Settings::prepare`] for a command that dials its endpoints itself.
    pub fn check_deferred(&self) -> Result<(), CtlError> {
        self.prepare().map(|_| ())
    }

    /// An unknown output format (exit 4).
    pub fn check_format(&self) -> Result<(), CtlError> {
        match self.deferred {
            Some(Deferred::BadFormat) => Err(CtlError::BadFeature("unsupported output format".into())),
            _ => Ok(()),
        }
    }

    /// The endpoints a client dials: those SRV records name, else `--endpoints`.
    fn client_endpoints(&self) -> Result<Vec<String>, CtlError> {
        let Some(d) = &self.discovery else {
            return Ok(self.endpoints.clone());
        };
        let found = self.discovered.get_or_init(|| {
            let dns = crate::srv::System::from_resolv_conf();
            let found = crate::srv::client_endpoints(&dns, &d.domain, &d.service_name)?;
            if d.insecure {
                return Ok(found);
            }
            Ok(found
                .into_iter()
                .filter(|ep| {
                    let plain = ep.starts_with("http://");
                    if plain {
                        eprintln!(
                            "ignoring discovered insecure endpoint {}",
                            gofmt::quote(ep.as_bytes())
                        );
                    }
                    !plain
                })
                .collect())
        });
        match found {
            Err(e) => Err(CtlError::Other(e.clone())),
            Ok(eps) if eps.is_empty() => Ok(self.endpoints.clone()),
            Ok(eps) => Ok(eps.clone()),
        }
    }
}

/// etcdctl's secure-connection flags (`--cacert --cert --key --insecure-transport
/// --insecure-skip-tls-verify`, or their `ETCDCTL_*` variables).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cacert: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// `--insecure-transport` (default true): endpoints without a scheme are dialed in plain
    /// text unless a certificate file is given.
    pub insecure_transport: bool,
    pub insecure_skip_verify: bool,
    /// the name servers' certificates must carry instead of the endpoint's host (the
    /// discovery domain, with `--insecure-discovery=false`)
    pub server_name: Option<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cacert: None,
            cert: None,
            key: None,
            insecure_transport: true,
            insecure_skip_verify: false,
            server_name: None,
        }
    }
}

impl TlsSettings {
    /// clientv3 gets a TLS configuration (used for endpoints without a scheme, and the one
    /// `--insecure-skip-tls-verify` applies to): a TLS file is given or
    /// `--insecure-transport=false`.
    fn configured(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some() || self.key.is_some() || !self.insecure_transport
    }

    /// The TLS configuration to dial `urls` with (`None` if no endpoint is TLS and no TLS
    /// option is given). An `https://` endpoint without any option gets the system's CAs and
    /// full verification, as with etcdctl. Unreadable files fail as in etcdctl (exit 128).
    fn client_config(&self, plans: &[Plan]) -> Result<Option<Arc<ClientConfig>>, CtlError> {
        if !self.configured() && !plans.iter().any(Plan::https) {
            return Ok(None);
        }
        // etcd's order and messages: the client pair, then the CA bundle
        match (&self.cert, &self.key) {
            (Some(c), Some(k)) => crate::tlsfiles::check_pair(c, k)?,
            (None, None) => {}
            (c, k) => {
                return Err(CtlError::BadArgs(format!(
                    "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                    k.as_deref().unwrap_or_default(),
                    c.as_deref().unwrap_or_default()
                )));
            }
        }
        let skip = self.configured() && self.insecure_skip_verify;
        let empty_pool = match &self.cacert {
            Some(ca) => crate::tlsfiles::ca_is_empty(ca)?,
            None => false,
        };
        if empty_pool && !skip {
            return crate::tlsfiles::trusting_nothing(self.cert.as_deref(), self.key.as_deref()).map(Some);
        }
        let config = retcd_tls::client_config(&retcd_tls::ClientTlsOptions {
            ca_file: self.cacert.as_ref().map(PathBuf::from),
            cert_file: self.cert.as_ref().map(PathBuf::from),
            key_file: self.key.as_ref().map(PathBuf::from),
            insecure_skip_verify: skip,
            ..Default::default()
        })
        .map_err(crate::tlsfiles::go_message)?;
        match &self.server_name {
            Some(name) if !skip => {
                crate::tlsfiles::verifying_as(config, name, self.cacert.as_deref()).map(Some)
            }
            _ => Ok(Some(config)),
        }
    }
}

/// Whether a deadline `timeout` from now is over before anything can be done: Go's context
/// with a zero (or, an `ETCDCTL_*` variable pflag could not parse, unset) timeout is done at
/// once, and tokio's timer (1 ms ticks) would let a sub-millisecond one run to the next tick.
fn expired(timeout: Duration) -> bool {
    timeout < Duration::from_millis(1)
}

/// gRPC's shortest keep-alive ping interval (grpc-go's `internal.KeepaliveMinPingTime`).
pub const KEEPALIVE_MIN_PING_TIME: Duration = Duration::from_secs(10);

/// The ping interval of a connection made with `--keepalive-time`: none for zero (clientv3
/// sets no keep-alive then), else at least 10 s, as grpc-go's `WithKeepaliveParams` adjusts
/// it. etcd refuses pings more frequent than its `--grpc-keepalive-min-time` (5 s) with a
/// GOAWAY (`too_many_pings`), so etcdctl's default 2 s, taken as is, would end every watch
/// or lease keep-alive that stays quiet for a few seconds.
fn keepalive_interval(keepalive_time: Duration) -> Option<Duration> {
    (!keepalive_time.is_zero()).then(|| keepalive_time.max(KEEPALIVE_MIN_PING_TIME))
}

/// How long gRPC waits before it dials a failed endpoint again, after `retries` waits
/// (grpc-go's default backoff: 1 s, then 1.6 times longer each time up to 120 s, each but
/// the first spread by ±20 %).
fn reconnect_backoff(retries: u32) -> Duration {
    if retries == 0 {
        return Duration::from_secs(1);
    }
    let delay = (1.6f64.powi(retries.min(20) as i32)).min(120.0);
    let jitter = 1.0 + 0.2 * (random_unit() * 2.0 - 1.0);
    Duration::from_secs_f64(delay * jitter)
}

/// A random number in [0, 1).
fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        b = (Instant::now().elapsed().as_nanos() as u64 ^ u64::from(std::process::id())).to_le_bytes();
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// `fut` within `limit` (`None`: no limit); `None` when the time ran out.
pub async fn within<T>(limit: Option<Duration>, fut: impl Future<Output = T>) -> Option<T> {
    match limit {
        None => Some(fut.await),
        Some(l) => tokio::time::timeout(l, fut).await.ok(),
    }
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
    /// the target of a client of the endpoints (`target` unless dialed directly)
    balanced_target: String,
}

/// How retcdctl dials an endpoint: the address clientv3 dials (its host, the scheme off:
/// what Go's dialer gets and gRPC's logs name; a unix socket's path) and the scheme to dial
/// it with (`None`: a scheme clientv3 has no network for, which never connects). Without a
/// scheme, or with `unix://`, the endpoint is dialed with TLS when `tls` is configured (as
/// clientv3 does).
#[derive(Debug, Clone)]
struct Plan {
    host: String,
    scheme: Option<&'static str>,
    /// `host` is a unix socket's path
    unix: bool,
}

impl Plan {
    fn new(ep: &str, tls: &TlsSettings) -> Result<Plan, CtlError> {
        let scheme = |tls_wanted: Option<bool>| {
            Some(if tls_wanted.unwrap_or_else(|| tls.configured()) {
                "https"
            } else {
                "http"
            })
        };
        match crate::goaddr::parse_endpoint(ep) {
            Parsed::Unix { path, tls } => Ok(Plan {
                host: path,
                scheme: scheme(tls),
                unix: true,
            }),
            Parsed::Unknown => Ok(Plan {
                host: String::new(),
                scheme: None,
                unix: false,
            }),
            Parsed::Tcp { address, https } => Ok(Plan {
                host: address,
                scheme: scheme(https),
                unix: false,
            }),
        }
    }

    /// Whether it is dialed with TLS.
    fn https(&self) -> bool {
        self.scheme == Some("https")
    }

    /// Connects once, as Go's dialer would (its checks and lookups first); on failure gRPC's
    /// words for it (`connection error: desc = "transport: Error while dialing ..."`).
    /// `skip_verify`: the servers' certificates are not checked.
    async fn connect(
        &self,
        tls: Option<&Arc<ClientConfig>>,
        skip_verify: bool,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<Channel, String> {
        let Some(scheme) = self.scheme else {
            return Err(transport_error("Error while dialing dial: unknown network "));
        };
        if self.unix {
            return self.connect_unix(tls, skip_verify, configure).await;
        }
        let to = crate::goaddr::resolve(&self.host)
            .await
            .map_err(|go| transport_error(&format!("Error while dialing {go}")))?;
        let dialer = Dialer::new(&to.url(scheme), tls)
            .map_err(|e| transport_error(&format!("Error while dialing dial tcp {}: {e}", to.dialed)))?
            .configure(configure);
        dialer
            .connect()
            .await
            .map_err(|e| dial_error("tcp", &to.dialed, &e))
    }

    /// [`Plan::connect`] to a unix socket. With TLS the server's certificate must name the
    /// socket's host, as gRPC takes the host of the authority: the path up to its last `:`
    /// (`localhost` of `localhost:1234`), else the whole path. A path that is no host name
    /// (`/run/etcd`) can only fail Go's check (`x509: certificate is valid for localhost,
    /// not /run/etcd`): the handshake checks a name no certificate holds instead, and its
    /// failure names the path.
    async fn connect_unix(
        &self,
        tls: Option<&Arc<ClientConfig>>,
        skip_verify: bool,
        configure: impl FnOnce(Endpoint) -> Endpoint,
    ) -> Result<Channel, String> {
        const NO_NAME: &str = "unix-socket.invalid";
        let path = self.host.as_str();
        let mut wanted = None;
        let config = match tls {
            Some(config) if self.https() => {
                let name = match crate::goaddr::split_host_port(path) {
                    Ok((host, _)) => host,
                    Err(_) => path,
                };
                let valid = retcd_tls::rustls::pki_types::ServerName::try_from(name).is_ok();
                let name = match (valid, skip_verify) {
                    (true, _) => name,
                    // not checked
                    (false, true) => "localhost",
                    (false, false) => {
                        wanted = Some(name);
                        NO_NAME
                    }
                };
                Some((config, name))
            }
            _ => None,
        };
        let dialer = Dialer::unix(path, config)
            .map_err(|e| transport_error(&format!("Error while dialing dial unix {path}: {e}")))?
            .configure(configure);
        dialer.connect().await.map_err(|e| {
            let err = dial_error("unix", path, &e);
            match wanted {
                Some(name) => {
                    let quoted = gofmt::quote(name.as_bytes());
                    err.replace(NO_NAME, &quoted[1..quoted.len() - 1])
                }
                None => err,
            }
        })
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
        let endpoints = settings.prepare()?;
        Self::dial(settings, &endpoints, false, true, Some(settings.command_timeout)).await
    }

    /// Connects to one of `endpoints`; `direct` names the target as clientv3 does for calls
    /// made to one given endpoint (`endpoint status`, `hashkv`, `defrag`).
    pub async fn connect_to(
        settings: &Settings,
        endpoints: &[String],
        direct: bool,
    ) -> Result<Client, CtlError> {
        settings.check_deferred()?;
        Self::dial(settings, endpoints, direct, true, Some(settings.command_timeout)).await
    }

    /// Connects to the endpoints, trying for as long as none answers (clientv3 without a
    /// deadline: how `make-mirror` waits for its clusters). `waiting` is called after each
    /// round of `--command-timeout` without an answer.
    pub async fn connect_patiently(
        settings: &Settings,
        mut waiting: impl FnMut(),
    ) -> Result<Client, CtlError> {
        let endpoints = settings.prepare()?;
        loop {
            match Self::dial(settings, &endpoints, false, false, Some(settings.command_timeout)).await {
                Err(e) if e.is_unreachable() => waiting(),
                done => return done,
            }
        }
    }

    /// Connects to the endpoints within `limit` (`None`: for as long as it takes, as
    /// clientv3 without a deadline), without a word when the time is up: the failure is
    /// then the status gRPC had (`latest balancer error: ...`) for the caller to report.
    pub async fn connect_within(settings: &Settings, limit: Option<Duration>) -> Result<Client, CtlError> {
        let endpoints = settings.prepare()?;
        Self::dial(settings, &endpoints, false, false, limit).await
    }

    /// Checks what dialing `settings` needs before any connection: the endpoints' form and
    /// the TLS files (clientv3's config errors, exit 128), so that a command can fail on them
    /// before it waits for another cluster.
    pub fn check(settings: &Settings) -> Result<(), CtlError> {
        let plans = settings
            .endpoints
            .iter()
            .map(|e| Plan::new(e, &settings.tls))
            .collect::<Result<Vec<_>, _>>()?;
        settings.tls.client_config(&plans).map(|_| ())
    }

    /// Dials until `limit` is over (`None`: until it connects); `warn` logs clientv3's
    /// warning when it is, else the failure carries gRPC's status.
    async fn dial(
        settings: &Settings,
        endpoints: &[String],
        direct: bool,
        warn: bool,
        limit: Option<Duration>,
    ) -> Result<Client, CtlError> {
        let plans = endpoints
            .iter()
            .map(|e| Plan::new(e, &settings.tls))
            .collect::<Result<Vec<_>, _>>()?;
        let first = plans.first().map(|p| p.host.as_str()).unwrap_or_default();
        let balanced_target = format!("endpoint://client-{}/{first}", client_uuid());
        let target = if direct {
            // clientv3 dials the endpoint as given (scheme included) for direct calls
            format!(
                "passthrough:///{}",
                endpoints.first().map(String::as_str).unwrap_or_default()
            )
        } else {
            balanced_target.clone()
        };
        let tls = settings.tls.client_config(&plans)?;
        if plans.is_empty() {
            return Err(no_endpoints());
        }
        if limit.is_some_and(expired) {
            let s = deadline_exceeded();
            if warn {
                warn_unary_failed(&target, &grpc_string(&s));
            }
            return Err(CtlError::Rpc(s));
        }
        let skip_verify = settings.tls.configured() && settings.tls.insecure_skip_verify;
        let keepalive = keepalive_interval(settings.keepalive_time);
        if keepalive.is_some_and(|k| k > settings.keepalive_time) {
            grpclog::keepalive_adjusted(KEEPALIVE_MIN_PING_TIME);
        }
        // zero (or, from an `ETCDCTL_*` variable Go could not parse, unset): no dial timeout
        // and no keepalive, as clientv3; a zero keepalive timeout is gRPC's 20 s
        let configure = |mut e: Endpoint| {
            if !settings.dial_timeout.is_zero() {
                e = e.connect_timeout(settings.dial_timeout);
            }
            if let Some(interval) = keepalive {
                let timeout = match settings.keepalive_timeout {
                    t if t.is_zero() => Duration::from_secs(20),
                    t => t,
                };
                e = e.http2_keep_alive_interval(interval).keep_alive_timeout(timeout);
            }
            e
        };
        // gRPC names the addresses (the endpoints as given, scheme included: what clientv3's
        // resolver hands it) and the client's authority: a direct call's endpoint as given,
        // else the first endpoint's host (a unix socket's path)
        let authority = if direct { endpoints[0].as_str() } else { first };
        let addrs: Vec<&str> = endpoints.iter().map(String::as_str).collect();
        let deadline = limit.and_then(|l| Instant::now().checked_add(l));
        let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut last_err = String::from("latest balancer error: all SubConns are in TransientFailure");
        let mut channel = None;
        for retries in 0.. {
            for (plan, addr) in plans.iter().zip(&addrs) {
                grpclog::subchannel(State::Connecting);
                if channel != Some(State::Connecting) {
                    grpclog::channel(State::Connecting);
                    channel = Some(State::Connecting);
                }
                grpclog::picks(addr);
                match within(left(), plan.connect(tls.as_ref(), skip_verify, configure)).await {
                    Some(Ok(channel)) => {
                        grpclog::subchannel(State::Ready);
                        grpclog::channel(State::Ready);
                        let mut client = Client {
                            channel,
                            token: TokenInterceptor(None),
                            settings: settings.clone(),
                            target,
                            balanced_target,
                        };
                        client.authenticate().await?;
                        return Ok(client);
                    }
                    Some(Err(e)) => {
                        grpclog::transport_failed(addr, authority, &e);
                        grpclog::subchannel(State::TransientFailure);
                        if direct {
                            last_err = format!("latest balancer error: {e}");
                        }
                    }
                    // the deadline passed while connecting
                    None => {}
                }
            }
            if left().is_none_or(|l| !l.is_zero()) {
                grpclog::channel(State::TransientFailure);
                channel = Some(State::TransientFailure);
            }
            let wait = reconnect_backoff(retries);
            if let Some(l) = left()
                && wait >= l
            {
                // clientv3 gives up at the deadline itself, not before
                tokio::time::sleep(l).await;
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let s = Status::deadline_exceeded(last_err);
        if warn {
            warn_unary_failed(&target, &grpc_string(&s));
            return Err(CtlError::Rpc(deadline_exceeded()));
        }
        Err(CtlError::Rpc(s))
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
                // clientv3 goes on without a token when the server has auth off
                if s.message() == "etcdserver: authentication is not enabled" {
                    return Ok(());
                }
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
        self.call_within(self.settings.command_timeout, fut).await
    }

    /// Like [`Client::call`] with a deadline of its own (`Duration::MAX`: none).
    pub async fn call_within<T, F>(&self, timeout: Duration, fut: F) -> Result<T, CtlError>
    where
        F: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let answer = if expired(timeout) {
            None
        } else {
            tokio::time::timeout(timeout, fut).await.ok()
        };
        match answer {
            Some(Ok(resp)) => Ok(resp.into_inner()),
            Some(Err(s)) => {
                warn_unary_failed(&self.target, &grpc_string(&s));
                Err(CtlError::Rpc(s))
            }
            None => {
                let s = deadline_exceeded();
                warn_unary_failed(&self.target, &grpc_string(&s));
                Err(CtlError::Rpc(s))
            }
        }
    }

    /// The same connection, its calls logged as clientv3 logs the calls of a client of its
    /// endpoints (after a direct dial: etcdctl's `move-leader` asks each endpoint for its
    /// status by name, then the leader's client to move).
    pub fn balanced(&self) -> Client {
        Client {
            channel: self.channel.clone(),
            token: self.token.clone(),
            settings: self.settings.clone(),
            target: self.balanced_target.clone(),
            balanced_target: self.balanced_target.clone(),
        }
    }

    /// Logs clientv3's warning for a call to this client that failed with `s`.
    pub fn warn_failed(&self, s: &Status) {
        warn_unary_failed(&self.target, &grpc_string(s));
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

/// Go gRPC's balancer error for a failed connection: a refused or failed TCP dial, a failed
/// TLS handshake (with Go's x509 wording for the usual verification failures), or a server
/// that closed the connection (it refused our certificate).
fn dial_error(network: &str, addr: &str, e: &tonic::transport::Error) -> String {
    use retcd_tls::rustls::{CertificateError, Error as TlsError};
    use std::error::Error as _;
    let mut src = e.source();
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<TlsError>()) {
                let why = match tls {
                    TlsError::AlertReceived(_) => return "connection closed".into(),
                    TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => {
                        "x509: certificate signed by unknown authority".to_string()
                    }
                    TlsError::InvalidCertificate(
                        CertificateError::Expired
                        | CertificateError::ExpiredContext { .. }
                        | CertificateError::NotValidYet
                        | CertificateError::NotValidYetContext { .. },
                    ) => "x509: certificate has expired or is not yet valid".to_string(),
                    TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
                        expected,
                        presented,
                    }) => go_hostname_error(&expected.to_str(), presented),
                    other => other.to_string(),
                };
                return transport_error(&format!("authentication handshake failed: {why}"));
            }
            let why = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
                std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
                _ if io.raw_os_error().is_some() => format!("connect: {}", go_errno(io)),
                _ => io.to_string(),
            };
            return transport_error(&format!("Error while dialing dial {network} {addr}: {why}"));
        }
        src = s.source();
    }
    // tonic's connect timeout (`--dial-timeout`) is no I/O error
    if format!("{e:?}").contains("TimeoutExpired") {
        return transport_error(&format!("Error while dialing dial {network} {addr}: i/o timeout"));
    }
    transport_error(&format!("Error while dialing dial {network} {addr}: {e}"))
}

/// Go's words for a system error (`no such file or directory`): the C library's, without
/// Rust's ` (os error N)` and with a lower-case first letter.
fn go_errno(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.rfind(" (os error ") {
        Some(i) => &s[..i],
        None => &s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// gRPC's `ConnectionError` for a transport that failed: `connection error: desc =
/// "transport: DESC"` (the description quoted as Go's `%q` does).
fn transport_error(desc: &str) -> String {
    format!(
        "connection error: desc = {}",
        gofmt::quote(format!("transport: {desc}").as_bytes())
    )
}

/// Go's `x509.HostnameError` for a certificate that does not name `host`; `presented` are
/// the certificate's names as rustls lists them (`DnsName("a.example")`, `IpAddress(10.0.0.1)`).
fn go_hostname_error(host: &str, presented: &[String]) -> String {
    let names = |kind: &str| -> Vec<String> {
        presented
            .iter()
            .filter_map(|p| p.strip_prefix(kind)?.strip_suffix(')'))
            .map(|n| n.trim_matches('"').to_string())
            .collect()
    };
    let valid = if host.parse::<std::net::IpAddr>().is_ok() {
        let ips = names("IpAddress(");
        if ips.is_empty() {
            return format!(
                "x509: cannot validate certificate for {host} because it doesn't contain any IP SANs"
            );
        }
        ips
    } else {
        names("DnsName(")
    };
    if valid.is_empty() {
        return format!("x509: certificate is not valid for any names, but wanted to match {host}");
    }
    format!("x509: certificate is valid for {}, not {host}", valid.join(", "))
}

/// Prints `prompt` on stderr and reads one line (the password) from stdin. When stdin is a
/// terminal the password is not echoed: like etcdctl's prompt (speakeasy), retcdctl turns
/// the terminal's echo off with `stty` (no unsafe code here); it also reads the keys one by
/// one so that Ctrl-C restores the terminal before leaving.
pub fn prompt_password(prompt: &str) -> Result<String, CtlError> {
    use std::io::IsTerminal;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    if std::io::stdin().is_terminal() && stty(&["-g"]).is_some() {
        return read_hidden();
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CtlError::Other(e.to_string()))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs `stty ARGS` on stdin (the terminal); its output, or `None` if it failed.
fn stty(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("stty")
        .args(args)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Reads a line from the terminal with echo, signals and line editing off, handling
/// backspace, Ctrl-U and Ctrl-C itself; the terminal's settings are restored afterwards.
fn read_hidden() -> Result<String, CtlError> {
    let saved = stty(&["-g"]).unwrap_or_default();
    if stty(&["-echo", "-icanon", "-isig", "min", "1", "time", "0"]).is_none() {
        return Err(CtlError::Other("cannot turn off the terminal's echo".into()));
    }
    let restore = || {
        let _ = stty(&[saved.as_str()]);
        eprintln!();
    };
    let mut pw: Vec<u8> = Vec::new();
    let mut stdin = std::io::stdin().lock();
    let mut byte = [0u8; 1];
    loop {
        match stdin.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(_) => match byte[0] {
                b'\n' | b'\r' => break,
                0x03 => {
                    // Ctrl-C: leave as the interrupt would have, with the terminal restored
                    restore();
                    std::process::exit(130);
                }
                0x04 if pw.is_empty() => break,
                0x7f | 0x08 => {
                    // one character, however many bytes it took
                    while pw.pop().is_some_and(|b| b & 0xc0 == 0x80) {}
                }
                0x15 => pw.clear(),
                b => pw.push(b),
            },
        }
    }
    restore();
    String::from_utf8(pw).map_err(|e| CtlError::Other(e.to_string()))
}
