//! retcd's TLS plumbing, shared by the server, the raft peer transport, `retcdctl` and
//! `retcd-bench`. Everything runs on rustls with the aws-lc-rs provider (no OpenSSL).
//!
//! # Layout
//! - `files`: certificates, private keys and CRLs from PEM (or DER) files, with Go's error texts
//!   where clients parse or show them.
//! - `suites`: etcd's `--cipher-suites` names (Go's) and `--tls-min-version` /
//!   `--tls-max-version`, turned into a rustls crypto provider and protocol versions.
//! - `server`: the server side: a rustls `ServerConfig` from etcd's options (certificate, key,
//!   client-certificate authentication against a CA, CRLs) and [`incoming`], a stream of
//!   handshaken TLS connections for tonic's `serve_with_incoming` ([`incoming_checked`]: each
//!   also passed through a [`ConnectionCheck`], e.g. the peer certificate's SANs).
//! - `selfcert`: `--auto-tls` / `--peer-auto-tls` certificates (etcd's `fixtures/` files).
//! - `client`: the client side: a rustls `ClientConfig` (CA bundle or the system's roots, client
//!   certificate, skipping verification) and [`Dialer`], which connects tonic channels to
//!   `https://` URLs through it.
//! - `test_pki` (feature `test-pki`, for tests only): a throw-away CA issuing certificates and
//!   CRLs.
//!
//! The connections [`incoming`] yields are `tokio_rustls::server::TlsStream<TcpStream>`; tonic's
//! `Connected` impl for them puts the client's verified certificate chain into every request
//! (`tonic::Request::peer_certs`).

mod client;
mod files;
mod selfcert;
mod server;
mod suites;
#[cfg(feature = "test-pki")]
pub mod test_pki;

pub use client::{ClientTlsOptions, Dialer, client_config};
pub use files::{load_certs, load_crls, load_key};
pub use selfcert::self_signed;
pub use server::{ConnectionCheck, ServerTlsOptions, incoming, incoming_checked, server_config};
pub use suites::{TlsVersion, cipher_suite, protocol_versions};

pub use rustls;
pub use tokio_rustls;

/// A TLS setting that cannot be used; the text is what the server or tool prints.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file that cannot be read, worded like Go's `open <path>: <reason>`.
    #[error("open {path}: {reason}")]
    Open { path: String, reason: String },
    /// A file without the expected PEM blocks, or a bad one.
    #[error("{0}")]
    Pem(String),
    /// An option (or combination of options) etcd refuses too.
    #[error("{0}")]
    Config(String),
    /// rustls refused the configuration (e.g. a key that does not match the certificate).
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every configuration is built on: aws-lc-rs, passed explicitly so that
/// no process-wide default has to be installed (and two enabled providers cannot clash).
pub fn default_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// The ALPN protocol gRPC speaks over TLS. Go's HTTP/2 (etcd, etcdctl) requires it to be
/// negotiated; retcd only serves HTTP/2, so it is the only one offered or accepted.
pub(crate) const ALPN_H2: &[u8] = b"h2";
