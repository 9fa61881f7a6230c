//! The server side: rustls configuration from etcd's options and the TLS listener.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::files::{load_certs, load_crls, load_key};
use crate::suites::{TlsVersion, protocol_versions};
use crate::{ALPN_H2, TlsError};

/// What one listener's TLS is made of (etcd's `--cert-file --key-file --trusted-ca-file
/// --client-cert-auth --client-crl-file --cipher-suites --tls-min-version --tls-max-version`,
/// or their `--peer-*` counterparts).
#[derive(Debug, Clone, Default)]
pub struct ServerTlsOptions {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA bundle client certificates must chain to (used with `client_cert_auth`).
    pub trusted_ca_file: Option<PathBuf>,
    /// Require a client certificate signed by `trusted_ca_file` (mutual TLS).
    pub client_cert_auth: bool,
    /// Revoked client certificates (used with `client_cert_auth`).
    pub crl_file: Option<PathBuf>,
    /// Go's names of the TLS 1.2 suites to allow (empty: rustls' defaults).
    pub cipher_suites: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

/// The rustls server configuration for `o`: certificate chain and key; with
/// `client_cert_auth`, clients must present a certificate that chains to the trusted CA and
/// is not revoked by the CRL file (a certificate whose issuer has no CRL there is accepted, as
/// etcd only rejects serial numbers listed in its CRL file).
pub fn server_config(o: &ServerTlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let (provider, versions) = protocol_versions(&o.cipher_suites, o.min_version, o.max_version)?;
    let chain = load_certs(&o.cert_file)?;
    let key = load_key(&o.key_file)?;
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let builder = if o.client_cert_auth {
        let ca = o.trusted_ca_file.as_ref().ok_or_else(|| {
            TlsError::Config("client certificate authentication needs a trusted CA file".into())
        })?;
        let mut roots = RootCertStore::empty();
        for c in load_certs(ca)? {
            roots
                .add(c)
                .map_err(|e| TlsError::Pem(format!("{}: bad CA certificate: {e}", ca.display())))?;
        }
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        if let Some(crl) = &o.crl_file {
            verifier = verifier
                .with_crls(load_crls(crl)?)
                .allow_unknown_revocation_status();
        }
        let verifier = verifier
            .build()
            .map_err(|e| TlsError::Config(format!("client certificate verifier: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut cfg = builder.with_single_cert(chain, key)?;
    cfg.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(cfg))
}

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A check of each connection after its handshake, before it is served (etcd's TLS listener
/// checks: allowed names, the client certificate's SANs against the client's address). It is
/// given the client's verified certificate (`None` if none was asked for or sent) and the
/// client's address; `Err(reason)` closes the connection, logged as a refused handshake.
pub type ConnectionCheck = Arc<
    dyn Fn(
            Option<CertificateDer<'static>>,
            SocketAddr,
        ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

/// Handshaken TLS connections accepted on `listener`, for tonic's `serve_with_incoming`.
///
/// Handshakes run concurrently (one slow client holds up nobody). A connection that fails its
/// handshake — a plain-text client, an unknown certificate, no certificate where one is
/// required — is closed and logged as etcd logs it ("rejected connection"); it never reaches
/// gRPC. Accepting stops when the stream is dropped (the server shut down).
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    incoming_checked(listener, config, None)
}

/// [`incoming`], with `check` run on every handshaken connection (concurrently too, so a
/// check waiting for DNS holds up nobody else); a connection it refuses is closed and logged
/// as a refused handshake.
pub fn incoming_checked(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    check: Option<ConnectionCheck>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                _ = tx.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Small gRPC frames must not wait for the peer's delayed ACK.
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("TCP_NODELAY: {e}");
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let check = check.clone();
            tokio::spawn(async move {
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return rejected(remote, &e.to_string()),
                    Err(_) => return rejected(remote, "TLS handshake timed out"),
                };
                if let Some(check) = check {
                    let cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| c.clone().into_owned());
                    if let Err(why) = check(cert, remote).await {
                        return rejected(remote, &why);
                    }
                }
                let _ = tx.send(Ok(stream)).await;
            });
        }
    });
    ReceiverStream::new(rx)
}

fn rejected(remote: SocketAddr, error: &str) {
    tracing::warn!(remote_addr = %remote, error = %error, "rejected connection");
}
