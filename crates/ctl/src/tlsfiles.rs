//! etcdctl's TLS files as Go reads them, for its messages: the client pair as
//! `crypto/tls.X509KeyPair` checks it, and the CA bundle as etcd's `tlsutil.NewCertPool`
//! reads it (every PEM block must be a certificate; a file without any PEM block gives an
//! empty pool, so that no server certificate verifies, rather than an error).
//!
//! Only the checks are here; the configuration itself is `retcd-tls`'s.

use std::sync::Arc;

use base64::Engine as _;
use retcd_tls::rustls::{self, ClientConfig, RootCertStore};

use crate::error::CtlError;

/// One PEM block: its type (`CERTIFICATE`, `EC PRIVATE KEY`...) and decoded bytes.
#[derive(Debug, PartialEq)]
pub struct Block {
    pub kind: String,
    pub der: Vec<u8>,
}

/// The PEM blocks of `data`, in order, as Go's `pem.Decode` finds them one after the other:
/// a `-----BEGIN T-----` line, optional `Name: value` headers ended by a blank line, base64
/// lines and `-----END T-----`. A block that does not decode is skipped.
pub fn blocks(data: &[u8]) -> Vec<Block> {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches([' ', '\t', '\r']))
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(kind) = lines[i]
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
        else {
            i += 1;
            continue;
        };
        let end = format!("-----END {kind}-----");
        let Some(len) = lines[i + 1..].iter().position(|l| *l == end) else {
            i += 1;
            continue;
        };
        let mut body = &lines[i + 1..i + 1 + len];
        if body.first().is_some_and(|l| l.contains(':')) {
            // headers (an encrypted key's `Proc-Type:`...), up to a blank line
            match body.iter().position(|l| l.is_empty()) {
                Some(blank) => body = &body[blank + 1..],
                None => {
                    i += 1;
                    continue;
                }
            }
        }
        let b64: String = body.concat().split_whitespace().collect();
        match base64::engine::general_purpose::STANDARD.decode(b64) {
            Ok(der) => {
                out.push(Block {
                    kind: kind.to_string(),
                    der,
                });
                i += len + 2;
            }
            Err(_) => i += 1,
        }
    }
    out
}

/// Go's wording of a file that cannot be read: `open <path>: <reason>`.
fn read(path: &str) -> Result<Vec<u8>, CtlError> {
    std::fs::read(path).map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
            _ => e.to_string(),
        };
        CtlError::BadArgs(format!("open {path}: {reason}"))
    })
}

fn is_key(kind: &str) -> bool {
    kind == "PRIVATE KEY" || kind.ends_with(" PRIVATE KEY")
}

/// `--cert`/`--key` as `X509KeyPair` looks at them before parsing: the certificate file must
/// hold a `CERTIFICATE` block and the key file a `... PRIVATE KEY` block.
pub fn check_pair(cert: &str, key: &str) -> Result<(), CtlError> {
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let bad = |m: String| Err(CtlError::BadArgs(m));
    let certs = blocks(&cert_pem);
    if !certs.iter().any(|b| b.kind == "CERTIFICATE") {
        let skipped: Vec<&str> = certs.iter().map(|b| b.kind.as_str()).collect();
        return if skipped.is_empty() {
            bad("tls: failed to find any PEM data in certificate input".into())
        } else if skipped.iter().any(|k| is_key(k)) {
            bad("tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched".into())
        } else {
            bad(format!(
                "tls: failed to find \"CERTIFICATE\" PEM block in certificate input after skipping PEM blocks of the following types: [{}]",
                skipped.join(" ")
            ))
        };
    }
    let keys = blocks(&key_pem);
    if !keys.iter().any(|b| is_key(&b.kind)) {
        let skipped: Vec<&str> = keys.iter().map(|b| b.kind.as_str()).collect();
        return match skipped.as_slice() {
            [] => bad("tls: failed to find any PEM data in key input".into()),
            ["CERTIFICATE"] => {
                bad("tls: found a certificate rather than a key in the PEM for the private key".into())
            }
            _ => bad(format!(
                "tls: failed to find PEM block with type ending in \"PRIVATE KEY\" in key input after skipping PEM blocks of the following types: [{}]",
                skipped.join(" ")
            )),
        };
    }
    Ok(())
}

/// Reads a DER length at `d[at]`: (header length, content length).
fn der_len(d: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = *d.get(at)?;
    if first < 0x80 {
        return Some((1, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let bytes = d.get(at + 1..at + 1 + n)?;
    Some((
        1 + n,
        bytes.iter().fold(0usize, |l, b| (l << 8) | usize::from(*b)),
    ))
}

/// The outer shape Go's `x509.ParseCertificate` checks first: a SEQUENCE holding a SEQUENCE
/// (the to-be-signed part); its first two messages.
fn certificate_shape(der: &[u8]) -> Result<(), &'static str> {
    const SEQUENCE: u8 = 0x30;
    let outer = (der.first() == Some(&SEQUENCE))
        .then(|| der_len(der, 1))
        .flatten()
        .filter(|(h, l)| 1 + h + l <= der.len())
        .ok_or("x509: malformed certificate")?;
    let inner = 1 + outer.0;
    if der.get(inner) != Some(&SEQUENCE) || der_len(der, inner + 1).is_none() {
        return Err("x509: malformed tbs certificate");
    }
    Ok(())
}

/// The CA bundle as etcd reads it: `Ok(false)` when it holds certificates, `Ok(true)` when
/// it holds no PEM block at all (an empty pool); a block that is not a certificate fails
/// with Go's x509 message.
pub fn ca_is_empty(path: &str) -> Result<bool, CtlError> {
    let found = blocks(&read(path)?);
    for b in &found {
        certificate_shape(&b.der).map_err(|m| CtlError::BadArgs(m.into()))?;
        let mut probe = RootCertStore::empty();
        probe
            .add(rustls::pki_types::CertificateDer::from(b.der.clone()))
            .map_err(|_| CtlError::BadArgs("x509: malformed certificate".into()))?;
    }
    Ok(found.is_empty())
}

/// `retcd-tls`'s refusals in Go's words.
pub fn go_message(e: retcd_tls::TlsError) -> CtlError {
    use retcd_tls::TlsError;
    use rustls::{Error, InconsistentKeys};
    let m = match e {
        TlsError::Rustls(Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            "tls: private key does not match public key".to_string()
        }
        TlsError::Pem(m) if m.contains("cannot parse private key") => {
            "tls: failed to parse private key".into()
        }
        e => e.to_string(),
    };
    CtlError::BadArgs(m)
}

/// A configuration trusting no CA (what Go makes of a CA file without PEM data): every
/// server certificate fails to verify, with the client pair if one is given.
pub fn trusting_nothing(cert: Option<&str>, key: Option<&str>) -> Result<Arc<ClientConfig>, CtlError> {
    let provider = Arc::new(retcd_tls::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CtlError::BadArgs(e.to_string()))?
        .with_root_certificates(RootCertStore::empty());
    let mut cfg = match (cert, key) {
        (Some(c), Some(k)) => {
            let chain = retcd_tls::load_certs(c.as_ref()).map_err(go_message)?;
            let key = retcd_tls::load_key(k.as_ref()).map_err(go_message)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| go_message(e.into()))?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// The CA bundles Go's `x509.SystemCertPool` looks for on Linux, first found wins
/// (`SSL_CERT_FILE` before them).
const SYSTEM_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The certificates of `--cacert`, or of the system's bundle.
fn roots(ca: Option<&str>) -> RootCertStore {
    let text = match ca {
        Some(path) => std::fs::read(path).unwrap_or_default(),
        None => std::env::var("SSL_CERT_FILE")
            .ok()
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(|s| s.to_string()))
            .find_map(|p| std::fs::read(p).ok())
            .unwrap_or_default(),
    };
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(
        blocks(&text)
            .into_iter()
            .filter(|b| b.kind == "CERTIFICATE")
            .map(|b| rustls::pki_types::CertificateDer::from(b.der)),
    );
    store
}

/// Verifies server certificates as the usual verifier does, but against one name whatever
/// the endpoint's host (Go's `tls.Config.ServerName`).
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    name: rustls::pki_types::ServerName<'static>,
}

impl rustls::client::danger::ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `config`, checking server certificates against `name` (trusting `ca`, or the system's
/// bundle) instead of each endpoint's host.
pub fn verifying_as(
    config: Arc<ClientConfig>,
    name: &str,
    ca: Option<&str>,
) -> Result<Arc<ClientConfig>, CtlError> {
    let bad = |e: String| CtlError::BadArgs(e);
    let name = rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| bad(e.to_string()))?;
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots(ca)),
        Arc::new(retcd_tls::default_provider()),
    )
    .build()
    .map_err(|e| bad(e.to_string()))?;
    let mut config = (*config).clone();
    config
        .dangerous()
        .set_certificate_verifier(Arc::new(VerifyAs { inner, name }));
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(kind: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {kind}-----\n{b64}\n-----END {kind}-----\n")
    }

    #[test]
    fn blocks_in_order_skipping_junk() {
        let text = format!(
            "junk\n{}between\n-----BEGIN BROKEN-----\n!!!\n-----END BROKEN-----\n{}",
            pem("CERTIFICATE", b"\x30\x00"),
            pem("EC PRIVATE KEY", b"key")
        );
        let found = blocks(text.as_bytes());
        assert_eq!(
            found,
            vec![
                Block {
                    kind: "CERTIFICATE".into(),
                    der: b"\x30\x00".to_vec()
                },
                Block {
                    kind: "EC PRIVATE KEY".into(),
                    der: b"key".to_vec()
                }
            ]
        );
        assert!(blocks(b"not pem at all\n").is_empty());
        // headers before the body
        let enc = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: x\n\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        assert_eq!(blocks(enc.as_bytes())[0].der, vec![0, 1, 2]);
    }

    #[test]
    fn pair_messages_like_go() {
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write");
            p.to_str().expect("path").to_string()
        };
        let cert = write("cert.pem", &pem("CERTIFICATE", b"c"));
        let key = write("key.pem", &pem("EC PRIVATE KEY", b"k"));
        let junk = write("junk.pem", "junk\n");
        let other = write("other.pem", &pem("PUBLIC KEY", b"p"));
        let msg = |c: &str, k: &str| check_pair(c, k).err().map(|e| e.to_string());
        assert_eq!(msg(&cert, &key), None);
        assert_eq!(
            msg(&junk, &key).as_deref(),
            Some("tls: failed to find any PEM data in certificate input")
        );
        assert_eq!(
            msg(&key, &key).as_deref(),
            Some(
                "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched"
            )
        );
        assert_eq!(
            msg(&other, &key).as_deref(),
            Some(
                "tls: failed to find \"CERTIFICATE\" PEM block in certificate input after skipping PEM blocks of the following types: [PUBLIC KEY]"
            )
        );
        assert_eq!(
            msg(&cert, &junk).as_deref(),
            Some("tls: failed to find any PEM data in key input")
        );
        assert_eq!(
            msg(&cert, &cert).as_deref(),
            Some("tls: found a certificate rather than a key in the PEM for the private key")
        );
        assert_eq!(
            msg(&cert, &other).as_deref(),
            Some(
                "tls: failed to find PEM block with type ending in \"PRIVATE KEY\" in key input after skipping PEM blocks of the following types: [PUBLIC KEY]"
            )
        );
        assert_eq!(
            msg("/nonexistent/c.pem", &key).as_deref(),
            Some("open /nonexistent/c.pem: no such file or directory")
        );
        // CA bundles: no PEM data is an empty pool; a key is not a certificate
        assert!(ca_is_empty(&junk).expect("empty pool"));
        let ec_key = write("ec.pem", &pem("EC PRIVATE KEY", b"\x30\x03\x02\x01\x01"));
        assert_eq!(
            ca_is_empty(&ec_key).unwrap_err().to_string(),
            "x509: malformed tbs certificate"
        );
        assert_eq!(
            ca_is_empty(&other).unwrap_err().to_string(),
            "x509: malformed certificate"
        );
    }
}
