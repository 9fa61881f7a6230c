//! etcd's `--cipher-suites` (Go's cipher suite names) and `--tls-min-version` /
//! `--tls-max-version`, mapped onto rustls.
//!
//! As in Go, the cipher suite list only restricts TLS 1.2; TLS 1.3's suites are always on.
//! rustls implements only the forward-secret AEAD suites of TLS 1.2, so the older names etcd
//! knows (RSA key exchange, CBC, RC4, 3DES) are refused at start-up with a clear message.

use std::sync::Arc;

use rustls::SupportedCipherSuite;
use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::cipher_suite as cs;

use crate::TlsError;

/// The TLS 1.2 suites rustls has, by the names Go (and so etcd) gives them.
const TLS12_SUITES: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.3 suite names Go lists; naming them changes nothing (they cannot be turned off).
const TLS13_NAMES: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Names etcd accepts that rustls does not implement.
const UNSUPPORTED_NAMES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The TLS 1.2 suite called `name` by Go: `Ok(None)` for a TLS 1.3 name (always enabled), an
/// error for a name etcd does not know (etcd's message) or one rustls does not implement.
pub fn cipher_suite(name: &str) -> Result<Option<SupportedCipherSuite>, TlsError> {
    if let Some((_, s)) = TLS12_SUITES.iter().find(|(n, _)| *n == name) {
        return Ok(Some(*s));
    }
    if TLS13_NAMES.contains(&name) {
        return Ok(None);
    }
    if UNSUPPORTED_NAMES.contains(&name) {
        let available: Vec<&str> = TLS12_SUITES
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| !n.ends_with("POLY1305_SHA256"))
            .collect();
        return Err(TlsError::Config(format!(
            "TLS cipher suite {name:?} is not supported by retcd (rustls implements only forward-secret AEAD suites: {})",
            available.join(", ")
        )));
    }
    Err(TlsError::Config(format!("unexpected TLS cipher suite {name:?}")))
}

/// A TLS protocol version as etcd's `--tls-min-version` / `--tls-max-version` name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    /// `TLS1.2` or `TLS1.3`; the empty string (the flags' default) is `None`.
    pub fn parse(s: &str) -> Result<Option<TlsVersion>, TlsError> {
        match s {
            "" => Ok(None),
            "TLS1.2" => Ok(Some(TlsVersion::Tls12)),
            "TLS1.3" => Ok(Some(TlsVersion::Tls13)),
            _ => Err(TlsError::Config(format!(
                "unexpected TLS version {s:?} (must be one of: TLS1.2, TLS1.3)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS1.2",
            TlsVersion::Tls13 => "TLS1.3",
        }
    }
}

/// The crypto provider and protocol versions for etcd's cipher suite list and version bounds
/// (checked as etcd checks them).
pub fn protocol_versions(
    cipher_suites: &[String],
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<(Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>), TlsError> {
    let lo = min.unwrap_or(TlsVersion::Tls12);
    let hi = max.unwrap_or(TlsVersion::Tls13);
    if lo > hi {
        return Err(TlsError::Config(format!(
            "min version ({}) is greater than max version ({})",
            lo.name(),
            hi.name()
        )));
    }
    if lo == TlsVersion::Tls13 && !cipher_suites.is_empty() {
        return Err(TlsError::Config(format!(
            "cipher suites {cipher_suites:?} cannot be configured when only TLS1.3 is enabled"
        )));
    }
    let mut provider = crate::default_provider();
    let mut tls12_allowed = true;
    if !cipher_suites.is_empty() {
        let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
        for name in cipher_suites {
            if let Some(s) = cipher_suite(name.trim())?
                && !chosen.iter().any(|c| c.suite() == s.suite())
            {
                chosen.push(s);
            }
        }
        tls12_allowed = !chosen.is_empty();
        let tls13: Vec<SupportedCipherSuite> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        provider.cipher_suites = tls13.into_iter().chain(chosen).collect();
    }
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if lo == TlsVersion::Tls12 && tls12_allowed {
        versions.push(&rustls::version::TLS12);
    }
    if hi == TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(TlsError::Config(
            "no TLS version left: TLS1.3 is off (--tls-max-version) and no TLS1.2 cipher suite is listed"
                .into(),
        ));
    }
    Ok((Arc::new(provider), versions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn go_names_map_to_rustls() {
        let s = cipher_suite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
            .unwrap()
            .unwrap();
        assert_eq!(
            s.suite(),
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        );
        assert!(cipher_suite("TLS_AES_128_GCM_SHA256").unwrap().is_none());
        assert_eq!(
            cipher_suite("FOO").unwrap_err().to_string(),
            "unexpected TLS cipher suite \"FOO\""
        );
        let e = cipher_suite("TLS_RSA_WITH_AES_128_CBC_SHA")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported by retcd"), "{e}");
    }

    #[test]
    fn suites_restrict_tls12_only() {
        let (p, v) =
            protocol_versions(&names(&["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]), None, None).unwrap();
        assert_eq!(v.len(), 2);
        let tls12: Vec<_> = p
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .collect();
        assert_eq!(tls12.len(), 1);
        assert_eq!(p.cipher_suites.len(), 4, "3 TLS 1.3 suites stay");
        // only TLS 1.3 names: TLS 1.2 has no suite left and is off
        let (_, v) = protocol_versions(&names(&["TLS_AES_128_GCM_SHA256"]), None, None).unwrap();
        assert_eq!(v, vec![&rustls::version::TLS13]);
    }

    #[test]
    fn version_bounds() {
        assert_eq!(TlsVersion::parse("").unwrap(), None);
        assert_eq!(
            TlsVersion::parse("TLS1.1").unwrap_err().to_string(),
            "unexpected TLS version \"TLS1.1\" (must be one of: TLS1.2, TLS1.3)"
        );
        let (_, v) = protocol_versions(&[], Some(TlsVersion::Tls13), None).unwrap();
        assert_eq!(v, vec![&rustls::version::TLS13]);
        let (_, v) = protocol_versions(&[], None, Some(TlsVersion::Tls12)).unwrap();
        assert_eq!(v, vec![&rustls::version::TLS12]);
        assert_eq!(
            protocol_versions(&[], Some(TlsVersion::Tls13), Some(TlsVersion::Tls12))
                .unwrap_err()
                .to_string(),
            "min version (TLS1.3) is greater than max version (TLS1.2)"
        );
        assert!(
            protocol_versions(
                &names(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]),
                Some(TlsVersion::Tls13),
                None
            )
            .is_err()
        );
        assert!(
            protocol_versions(&names(&["TLS_AES_128_GCM_SHA256"]), None, Some(TlsVersion::Tls12)).is_err()
        );
    }
}
