//! The client side: rustls configuration for `--cacert --cert --key
//! --insecure-skip-tls-verify` (or a member's peer certificates) and tonic channels over it.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::files::{load_certs, load_key};
use crate::suites::{TlsVersion, protocol_versions};
use crate::{ALPN_H2, TlsError};

/// What a client's TLS is made of.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsOptions {
    /// CA bundle the server's certificate must chain to; `None`: the system's CAs.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (chain) and key presented to servers that ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (etcdctl's `--insecure-skip-tls-verify`; peers with
    /// `--peer-auto-tls`, whose certificates are self-signed).
    pub insecure_skip_verify: bool,
    /// Go's names of the TLS 1.2 suites to offer (empty: rustls' defaults).
    pub cipher_suites: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

/// The rustls client configuration for `o`. A certificate without a key (or the reverse) is
/// refused with etcd's message.
pub fn client_config(o: &ClientTlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let (provider, versions) = protocol_versions(&o.cipher_suites, o.min_version, o.max_version)?;
    let identity = match (&o.cert_file, &o.key_file) {
        (Some(c), Some(k)) => Some((load_certs(c)?, load_key(k)?)),
        (None, None) => None,
        (c, k) => {
            let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(TlsError::Config(format!(
                "KeyFile and CertFile must both be present[key: {}, cert: {}]",
                show(k),
                show(c)
            )));
        }
    };
    let builder = ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let builder = if o.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match &o.ca_file {
            Some(ca) => {
                for c in load_certs(ca)? {
                    roots
                        .add(c)
                        .map_err(|e| TlsError::Pem(format!("{}: bad CA certificate: {e}", ca.display())))?;
                }
            }
            None => {
                // As Go's system pool: whatever of the system bundle parses.
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut cfg = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(cfg))
}

/// Accepts every server certificate; the handshake signatures are still checked (they prove
/// the server holds the key of the certificate it sent).
#[derive(Debug)]
struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A tonic endpoint for one URL and the way to connect it: plain HTTP/2 for `http://`, TLS
/// (with the given configuration) for `https://`.
///
/// For TLS the channel dials through [`TlsConnector`] and the endpoint's own URI says `http`,
/// while requests carry `:scheme: https` (the endpoint's origin): tonic then never tries TLS of
/// its own, whichever of its TLS features the build has.
#[derive(Clone)]
pub struct Dialer {
    endpoint: Endpoint,
    tls: Option<TlsConnector>,
    /// a unix socket to dial (in plain text when `tls` is `None`)
    unix: Option<PathBuf>,
}

impl Dialer {
    /// `url` is `http://host:port` or `https://host:port` (a path is ignored). `https` needs a
    /// configuration; `tls` is not used for `http`.
    pub fn new(url: &str, tls: Option<&Arc<ClientConfig>>) -> Result<Dialer, TlsError> {
        let bad = |why: &str| TlsError::Config(format!("bad URL {url:?}: {why}"));
        let Some(rest) = url.strip_prefix("https://") else {
            let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| bad(&e.to_string()))?;
            return Ok(Dialer {
                endpoint,
                tls: None,
                unix: None,
            });
        };
        let config = tls.ok_or_else(|| {
            TlsError::Config(format!(
                "{url}: an https URL needs a TLS configuration (certificates)"
            ))
        })?;
        let authority = rest.split('/').next().unwrap_or_default();
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| bad(&e.to_string()))?
            .origin(
                format!("https://{authority}")
                    .parse::<Uri>()
                    .map_err(|e| bad(&e.to_string()))?,
            );
        let uri = endpoint.uri().clone();
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let server_name = ServerName::try_from(host.clone()).map_err(|e| bad(&e.to_string()))?;
        Ok(Dialer {
            endpoint,
            tls: Some(TlsConnector {
                config: config.clone(),
                server_name,
                to: To::Tcp {
                    host,
                    port: uri.port_u16().unwrap_or(443),
                },
            }),
            unix: None,
        })
    }

    /// Dials the unix socket at `path`: in plain text, or with TLS (`tls`: the configuration
    /// and the name the server's certificate must carry) as clientv3's `unixs://`. The
    /// requests' authority is `localhost`.
    pub fn unix(path: &str, tls: Option<(&Arc<ClientConfig>, &str)>) -> Result<Dialer, TlsError> {
        let bad = |why: &str| TlsError::Config(format!("bad unix socket {path:?}: {why}"));
        let mut endpoint = Endpoint::from_static("http://localhost");
        let tls = match tls {
            None => None,
            Some((config, name)) => {
                endpoint = endpoint.origin(Uri::from_static("https://localhost"));
                Some(TlsConnector {
                    config: config.clone(),
                    server_name: ServerName::try_from(name.to_string()).map_err(|e| bad(&e.to_string()))?,
                    to: To::Unix(PathBuf::from(path)),
                })
            }
        };
        Ok(Dialer {
            endpoint,
            tls,
            unix: Some(PathBuf::from(path)),
        })
    }

    /// Adjusts the endpoint (timeouts, keep-alive, windows).
    pub fn configure(mut self, f: impl FnOnce(Endpoint) -> Endpoint) -> Dialer {
        self.endpoint = f(self.endpoint);
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// True when this dials TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A channel that connects on first use (and reconnects).
    pub fn connect_lazy(&self) -> Channel {
        match (&self.tls, &self.unix) {
            (Some(c), _) => self.endpoint.connect_with_connector_lazy(c.clone()),
            (None, Some(path)) => self
                .endpoint
                .connect_with_connector_lazy(UnixConnector(path.clone())),
            (None, None) => self.endpoint.connect_lazy(),
        }
    }

    /// Connects now.
    pub async fn connect(&self) -> Result<Channel, tonic::transport::Error> {
        match (&self.tls, &self.unix) {
            (Some(c), _) => self.endpoint.connect_with_connector(c.clone()).await,
            (None, Some(path)) => {
                self.endpoint
                    .connect_with_connector(UnixConnector(path.clone()))
                    .await
            }
            (None, None) => self.endpoint.connect().await,
        }
    }
}

/// Where a [`TlsConnector`] dials.
#[derive(Clone)]
enum To {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

/// A connected TCP or unix socket.
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Socket::Unix(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Socket::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Socket::Tcp(s) => s.is_write_vectored(),
            Socket::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_flush(cx),
            Socket::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Socket::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Dials a unix socket in plain text (tonic's connector service).
#[derive(Clone)]
pub struct UnixConnector(PathBuf);

impl tower_service::Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let path = self.0.clone();
        Box::pin(async move { Ok(TokioIo::new(UnixStream::connect(path).await?)) })
    }
}

/// Dials TCP and runs the TLS handshake (tonic's connector service).
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    to: To,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a server may take to speak first after the handshake.
const SERVER_PREFACE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl tower_service::Service<Uri> for TlsConnector {
    type Response = TokioIo<Prefixed<tokio_rustls::client::TlsStream<Socket>>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let c = self.clone();
        Box::pin(async move {
            let socket = match &c.to {
                To::Tcp { host, port } => {
                    let tcp = TcpStream::connect((host.as_str(), *port)).await?;
                    tcp.set_nodelay(true)?;
                    Socket::Tcp(tcp)
                }
                To::Unix(path) => Socket::Unix(UnixStream::connect(path).await?),
            };
            let mut tls = tokio_rustls::TlsConnector::from(c.config)
                .connect(c.server_name, socket)
                .await?;
            // With TLS 1.3 the server checks the client's certificate after the client has
            // finished its handshake: a refusal only arrives as an alert on the first read.
            // An HTTP/2 server speaks first (its SETTINGS), so wait for that, as Go's gRPC waits
            // for the server preface before it calls a connection ready; the bytes read are
            // handed to HTTP/2 first. (Bounded by the endpoint's connect timeout, if any.)
            let mut first = vec![0u8; 16 * 1024];
            let n = tokio::time::timeout(SERVER_PREFACE_TIMEOUT, tls.read(&mut first))
                .await
                .map_err(|_| "the server sent nothing after the TLS handshake")??;
            if n == 0 {
                return Err("the server closed the connection after the TLS handshake".into());
            }
            first.truncate(n);
            Ok(TokioIo::new(Prefixed {
                prefix: first,
                pos: 0,
                inner: tls,
            }))
        })
    }
}

/// A stream whose first bytes were already read (`prefix`); reads return them first.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
