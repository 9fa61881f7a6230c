//! TLS for the client and peer URLs (issue 8): etcd's flags and config-file keys, their checks,
//! the rustls configurations made at start (including `--auto-tls` certificates), and the
//! client certificate's Common Name for the auth layer.
//!
//! - Client side: `--cert-file --key-file` serve every `https://` client URL; with
//!   `--client-cert-auth` clients must present a certificate signed by `--trusted-ca-file` (and
//!   not revoked in `--client-crl-file`). `http://` URLs stay plain text (one listener each, so
//!   both may be mixed); an `https://` listener never speaks plain text.
//! - Peer side: the same with `--peer-*` for `https://` peer URLs; members dial each other's
//!   `https://` peer URLs presenting their peer certificate and checking the other's against
//!   `--peer-trusted-ca-file` (with `--peer-auto-tls`, like etcd, without checking).
//! - Each handshaken connection is checked before it is served ([`connection_check`]): the
//!   allowed CN/hostname, and on peer listeners, as etcd, that the peer's client certificate
//!   names the address it connects from ([`check_client_san`]) unless
//!   `--experimental-peer-skip-client-san-verification`.
//! - `--cipher-suites --tls-min-version --tls-max-version` apply to both.
//!
//! The HTTP/2 `:authority` shim (`h2_authority`) runs on the decrypted stream, after the
//! handshake, so TLS clients get the same leniency as plain-text ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use retcd_tls::rustls::ServerConfig;
use retcd_tls::{ClientTlsOptions, ServerTlsOptions, TlsVersion};
use serde::Deserialize;

/// etcd's TLS flags (and `ETCD_*` variables).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// Path to the client server TLS cert file.
    #[arg(long = "cert-file", env = "ETCD_CERT_FILE", default_value = "")]
    pub cert_file: String,
    /// Path to the client server TLS key file.
    #[arg(long = "key-file", env = "ETCD_KEY_FILE", default_value = "")]
    pub key_file: String,
    /// Enable client cert authentication.
    #[arg(long = "client-cert-auth", env = "ETCD_CLIENT_CERT_AUTH", default_value_t = false,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub client_cert_auth: bool,
    /// Path to the client certificate revocation list file.
    #[arg(long = "client-crl-file", env = "ETCD_CLIENT_CRL_FILE", default_value = "")]
    pub client_crl_file: String,
    /// Path to the client server TLS trusted CA cert file.
    #[arg(long = "trusted-ca-file", env = "ETCD_TRUSTED_CA_FILE", default_value = "")]
    pub trusted_ca_file: String,
    /// Client TLS using generated certificates.
    #[arg(long = "auto-tls", env = "ETCD_AUTO_TLS", default_value_t = false,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub auto_tls: bool,
    /// Path to the peer server TLS cert file.
    #[arg(long = "peer-cert-file", env = "ETCD_PEER_CERT_FILE", default_value = "")]
    pub peer_cert_file: String,
    /// Path to the peer server TLS key file.
    #[arg(long = "peer-key-file", env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,
    /// Enable peer client cert authentication.
    #[arg(long = "peer-client-cert-auth", env = "ETCD_PEER_CLIENT_CERT_AUTH", default_value_t = false,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub peer_client_cert_auth: bool,
    /// Path to the peer server TLS trusted CA file.
    #[arg(
        long = "peer-trusted-ca-file",
        env = "ETCD_PEER_TRUSTED_CA_FILE",
        default_value = ""
    )]
    pub peer_trusted_ca_file: String,
    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are not provided.
    #[arg(long = "peer-auto-tls", env = "ETCD_PEER_AUTO_TLS", default_value_t = false,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub peer_auto_tls: bool,
    /// Path to the peer certificate revocation list file.
    #[arg(long = "peer-crl-file", env = "ETCD_PEER_CRL_FILE", default_value = "")]
    pub peer_crl_file: String,
    /// Required CN for client certs connecting to the peer endpoint.
    #[arg(
        long = "peer-cert-allowed-cn",
        env = "ETCD_PEER_CERT_ALLOWED_CN",
        default_value = ""
    )]
    pub peer_cert_allowed_cn: String,
    /// Allowed TLS hostname for inter peer authentication.
    #[arg(
        long = "peer-cert-allowed-hostname",
        env = "ETCD_PEER_CERT_ALLOWED_HOSTNAME",
        default_value = ""
    )]
    pub peer_cert_allowed_hostname: String,
    /// Allowed TLS hostname for client cert authentication.
    #[arg(
        long = "client-cert-allowed-hostname",
        env = "ETCD_CLIENT_CERT_ALLOWED_HOSTNAME",
        default_value = ""
    )]
    pub client_cert_allowed_hostname: String,
    /// Skip verification of SAN field in client certificate for peer connections.
    #[arg(long = "experimental-peer-skip-client-san-verification",
          env = "ETCD_EXPERIMENTAL_PEER_SKIP_CLIENT_SAN_VERIFICATION", default_value_t = false,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub experimental_peer_skip_client_san_verification: bool,
    /// Comma-separated list of supported TLS cipher suites between client/server and peers
    /// (Go's names; empty: rustls' defaults).
    #[arg(long = "cipher-suites", env = "ETCD_CIPHER_SUITES", default_value = "")]
    pub cipher_suites: String,
    /// Minimum TLS version supported by etcd (TLS1.2 or TLS1.3; empty: TLS1.2).
    #[arg(long = "tls-min-version", env = "ETCD_TLS_MIN_VERSION", default_value = "")]
    pub tls_min_version: String,
    /// Maximum TLS version supported by etcd (TLS1.2 or TLS1.3; empty: TLS1.3).
    #[arg(long = "tls-max-version", env = "ETCD_TLS_MAX_VERSION", default_value = "")]
    pub tls_max_version: String,
}

/// etcd's `client-transport-security` / `peer-transport-security` config-file objects.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SecurityFileConfig {
    #[serde(rename = "cert-file")]
    cert_file: Option<String>,
    #[serde(rename = "key-file")]
    key_file: Option<String>,
    #[serde(rename = "client-cert-auth")]
    client_cert_auth: Option<bool>,
    #[serde(rename = "trusted-ca-file")]
    trusted_ca_file: Option<String>,
    #[serde(rename = "auto-tls")]
    auto_tls: Option<bool>,
    #[serde(rename = "crl-file")]
    crl_file: Option<String>,
    #[serde(rename = "allowed-cn")]
    allowed_cn: Option<String>,
    #[serde(rename = "allowed-hostname")]
    allowed_hostname: Option<String>,
    /// etcd 3.5's key (peer side only; etcd's client listeners never check SANs)
    #[serde(rename = "skip-client-san-verification")]
    skip_client_san_verification: Option<bool>,
}

/// The TLS keys of etcd's YAML config file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TlsFileConfig {
    #[serde(rename = "client-transport-security")]
    client_transport_security: Option<SecurityFileConfig>,
    #[serde(rename = "peer-transport-security")]
    peer_transport_security: Option<SecurityFileConfig>,
    #[serde(rename = "cipher-suites")]
    cipher_suites: Option<Vec<String>>,
    #[serde(rename = "tls-min-version")]
    tls_min_version: Option<String>,
    /// the flag's name as a key (etcd 3.6; etcd 3.5 also reads
    /// `peer-transport-security: skip-client-san-verification`)
    #[serde(rename = "experimental-peer-skip-client-san-verification")]
    experimental_peer_skip_client_san_verification: Option<bool>,
    #[serde(rename = "tls-max-version")]
    tls_max_version: Option<String>,
}

impl TlsFlags {
    /// Takes the config file's TLS keys (the file replaces flags, as in etcd).
    pub fn apply_file(&mut self, f: TlsFileConfig) {
        if let Some(c) = f.client_transport_security {
            set(&mut self.cert_file, c.cert_file);
            set(&mut self.key_file, c.key_file);
            set(&mut self.trusted_ca_file, c.trusted_ca_file);
            set(&mut self.client_crl_file, c.crl_file);
            set(&mut self.client_cert_auth, c.client_cert_auth);
            set(&mut self.auto_tls, c.auto_tls);
            set(&mut self.client_cert_allowed_hostname, c.allowed_hostname);
        }
        if let Some(p) = f.peer_transport_security {
            set(&mut self.peer_cert_file, p.cert_file);
            set(&mut self.peer_key_file, p.key_file);
            set(&mut self.peer_trusted_ca_file, p.trusted_ca_file);
            set(&mut self.peer_crl_file, p.crl_file);
            set(&mut self.peer_client_cert_auth, p.client_cert_auth);
            set(&mut self.peer_auto_tls, p.auto_tls);
            set(&mut self.peer_cert_allowed_cn, p.allowed_cn);
            set(&mut self.peer_cert_allowed_hostname, p.allowed_hostname);
            set(
                &mut self.experimental_peer_skip_client_san_verification,
                p.skip_client_san_verification,
            );
        }
        set(
            &mut self.experimental_peer_skip_client_san_verification,
            f.experimental_peer_skip_client_san_verification,
        );
        set(&mut self.cipher_suites, f.cipher_suites.map(|v| v.join(",")));
        set(&mut self.tls_min_version, f.tls_min_version);
        set(&mut self.tls_max_version, f.tls_max_version);
    }
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

/// One side's (client or peer) resolved TLS settings.
#[derive(Debug, Clone, Default)]
pub struct SideSettings {
    /// Some listen URL of this side is `https://`.
    pub https: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub crl_file: Option<PathBuf>,
    /// Generate a self-signed certificate (no certificate files given).
    pub auto_tls: bool,
    /// `host:port` of the listen URLs (the SANs of a generated certificate).
    pub hosts: Vec<String>,
}

/// The resolved TLS settings of the server (checked; files are read at start).
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub client: SideSettings,
    pub peer: SideSettings,
    pub cipher_suites: Vec<String>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
    /// `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname`: what a peer's certificate
    /// must name.
    pub peer_allowed: AllowedCert,
    /// `--client-cert-allowed-hostname`: the host a client's certificate must be valid for.
    pub client_allowed: AllowedCert,
    /// A peer's client certificate must name the address it connects from
    /// ([`check_client_san`]): peer TLS with client certificates, without
    /// `--experimental-peer-skip-client-san-verification`.
    pub peer_client_san: bool,
}

/// What a verified certificate must also name to be let in (etcd's `AllowedCN` and
/// `AllowedHostname`); empty: any certificate the CA vouches for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedCert {
    pub cn: Option<String>,
    pub hostname: Option<String>,
}

impl AllowedCert {
    pub fn is_empty(&self) -> bool {
        self.cn.is_none() && self.hostname.is_none()
    }

    /// Whether the DER certificate passes; the reason when it does not.
    pub fn check(&self, der: Option<&[u8]>) -> Result<(), String> {
        if let Some(want) = &self.cn {
            let cn = der.and_then(common_name);
            if cn.as_deref() != Some(want.as_str()) {
                return Err(format!(
                    "CN {:?} is not the allowed {want:?}",
                    cn.unwrap_or_default()
                ));
            }
        }
        if let Some(host) = &self.hostname
            && !der.is_some_and(|d| valid_for_host(d, host))
        {
            return Err(format!(
                "the certificate is not valid for the allowed hostname {host:?}"
            ));
        }
        Ok(())
    }
}

/// Go's `x509.Certificate.VerifyHostname` on the subject alternative names: an IP matches an
/// IP SAN; a name matches a DNS SAN, case-insensitively, `*.` matching one leftmost label.
pub fn valid_for_host(der: &[u8], host: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<std::net::IpAddr> = host.trim_matches(|c| c == '[' || c == ']').parse().ok();
    san.value.general_names.iter().any(|n| match (n, ip) {
        (GeneralName::IPAddress(bytes), Some(ip)) => match ip {
            std::net::IpAddr::V4(v4) => *bytes == v4.octets().as_slice(),
            std::net::IpAddr::V6(v6) => *bytes == v6.octets().as_slice(),
        },
        (GeneralName::DNSName(name), None) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(rest) => host
                    .split_once('.')
                    .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
                None => name == host,
            }
        }
        _ => false,
    })
}

fn path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or_default().to_string()
}

impl TlsSettings {
    /// Checks the flags against the listen URLs as etcd does; returns the settings and the
    /// warnings to log (certificates given for plain-text URLs are ignored, ...).
    pub fn resolve(
        f: &TlsFlags,
        listen_client_urls: &[String],
        listen_peer_urls: &[String],
    ) -> Result<(TlsSettings, Vec<String>), String> {
        let mut warnings = Vec::new();
        let cipher_suites: Vec<String> = f
            .cipher_suites
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let min_version = TlsVersion::parse(&f.tls_min_version).map_err(|e| e.to_string())?;
        let max_version = TlsVersion::parse(&f.tls_max_version).map_err(|e| e.to_string())?;
        // names, version bounds and their combination, as etcd checks them at start
        retcd_tls::protocol_versions(&cipher_suites, min_version, max_version).map_err(|e| e.to_string())?;
        let client = side(
            Side::Client,
            SideFlags {
                cert: &f.cert_file,
                key: &f.key_file,
                ca: &f.trusted_ca_file,
                crl: &f.client_crl_file,
                cert_auth: f.client_cert_auth,
                auto: f.auto_tls,
            },
            listen_client_urls,
            &mut warnings,
        )?;
        let peer = side(
            Side::Peer,
            SideFlags {
                cert: &f.peer_cert_file,
                key: &f.peer_key_file,
                ca: &f.peer_trusted_ca_file,
                crl: &f.peer_crl_file,
                cert_auth: f.peer_client_cert_auth,
                auto: f.peer_auto_tls,
            },
            listen_peer_urls,
            &mut warnings,
        )?;
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let peer_allowed = AllowedCert {
            cn: opt(&f.peer_cert_allowed_cn),
            hostname: opt(&f.peer_cert_allowed_hostname),
        };
        let client_allowed = AllowedCert {
            cn: None,
            hostname: opt(&f.client_cert_allowed_hostname),
        };
        if !peer_allowed.is_empty() && peer.https && !peer.client_cert_auth {
            return Err(
                "--peer-cert-allowed-cn and --peer-cert-allowed-hostname need --peer-client-cert-auth (peers are only asked for certificates then)"
                    .into(),
            );
        }
        if !client_allowed.is_empty() && client.https && !client.client_cert_auth {
            return Err(
                "--client-cert-allowed-hostname needs --client-cert-auth (clients are only asked for certificates then)"
                    .into(),
            );
        }
        let peer_client_san =
            peer.https && peer.client_cert_auth && !f.experimental_peer_skip_client_san_verification;
        Ok((
            TlsSettings {
                client,
                peer,
                cipher_suites,
                min_version,
                max_version,
                peer_allowed,
                client_allowed,
                peer_client_san,
            },
            warnings,
        ))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Client,
    Peer,
}

struct SideFlags<'a> {
    cert: &'a str,
    key: &'a str,
    ca: &'a str,
    crl: &'a str,
    cert_auth: bool,
    auto: bool,
}

fn side(
    which: Side,
    f: SideFlags<'_>,
    urls: &[String],
    warnings: &mut Vec<String>,
) -> Result<SideSettings, String> {
    let (flag, name, crl_flag) = match which {
        Side::Client => ("--", "client", "--client-crl-file"),
        Side::Peer => ("--peer-", "peer", "--peer-crl-file"),
    };
    let https: Vec<&String> = urls.iter().filter(|u| u.starts_with("https://")).collect();
    let has_certs = !f.cert.is_empty() || !f.key.is_empty();
    if has_certs && (f.cert.is_empty() || f.key.is_empty()) {
        return Err(format!(
            "KeyFile and CertFile must both be present[key: {}, cert: {}]",
            f.key, f.cert
        ));
    }
    if f.auto && has_certs {
        warnings.push(format!("ignoring {name} auto TLS since certs given"));
    }
    let auto = f.auto && !has_certs;
    if https.is_empty() {
        for u in urls {
            if has_certs {
                warnings.push(format!(
                    "scheme is HTTP while key and cert files are present; ignoring key and cert files ({name}-url {u})"
                ));
            }
            if f.cert_auth {
                warnings.push(format!(
                    "scheme is HTTP while {flag}client-cert-auth is enabled; ignoring client cert auth for this URL ({name}-url {u})"
                ));
            }
        }
        return Ok(SideSettings::default());
    }
    if !has_certs && !auto {
        return Err(match which {
            Side::Client => format!(
                "TLS key/cert (--cert-file, --key-file) must be provided for client url {} with HTTPS scheme",
                https[0]
            ),
            Side::Peer => format!(
                "cannot listen on TLS for {}: KeyFile and CertFile are not presented (--peer-cert-file, --peer-key-file or --peer-auto-tls)",
                host_port(https[0])
            ),
        });
    }
    if f.cert_auth && f.ca.is_empty() {
        return Err(format!(
            "{flag}client-cert-auth needs {flag}trusted-ca-file: the CA {name} certificates must be signed by"
        ));
    }
    // As etcd 3.4 (`TLSInfo.ServerConfig`): a trusted CA file alone also makes the listener
    // require and verify client certificates.
    let cert_auth = f.cert_auth || !f.ca.is_empty();
    if !f.crl.is_empty() && !cert_auth {
        warnings.push(format!(
            "{crl_flag} has no effect without {flag}client-cert-auth (no {name} certificates are asked for)"
        ));
    }
    Ok(SideSettings {
        https: true,
        cert_file: path(f.cert),
        key_file: path(f.key),
        trusted_ca_file: path(f.ca),
        client_cert_auth: cert_auth,
        crl_file: path(f.crl),
        auto_tls: auto,
        hosts: urls.iter().map(|u| host_port(u)).collect(),
    })
}

/// The rustls configurations the server runs with, made at start.
#[derive(Default)]
pub struct Prepared {
    /// For the `https://` client listeners.
    pub client: Option<Arc<ServerConfig>>,
    /// For the `https://` peer listeners.
    pub peer: Option<Arc<ServerConfig>>,
    /// For dialing other members' `https://` peer URLs.
    pub peer_dial: Option<retcd_raft_node::PeerTls>,
}

/// Reads the certificate files (generating `--auto-tls` ones under `<data-dir>/fixtures`) and
/// builds the rustls configurations.
pub fn prepare(s: &TlsSettings, data_dir: &Path) -> Result<Prepared, String> {
    let mut out = Prepared::default();
    if s.client.https {
        let (cert, key) = files(&s.client, data_dir, "client")?;
        let config = retcd_tls::server_config(&server_options(s, &s.client, cert, key))
            .map_err(|e| format!("client TLS: {e}"))?;
        // The client port also serves HTTP/1.1 (health, the JSON gateway): offer both by
        // ALPN, h2 first, as Go's server does.
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        out.client = Some(Arc::new(config));
    }
    if s.peer.https {
        let (cert, key) = files(&s.peer, data_dir, "peer")?;
        out.peer = Some(
            retcd_tls::server_config(&server_options(s, &s.peer, cert.clone(), key.clone()))
                .map_err(|e| format!("peer TLS: {e}"))?,
        );
        // Members present their peer certificate when they dial each other (etcd uses it as
        // the client certificate too) and check the other's against the peer CA; generated
        // certificates are self-signed, so, as etcd, they are not checked.
        out.peer_dial = Some(
            retcd_tls::client_config(&ClientTlsOptions {
                ca_file: s.peer.trusted_ca_file.clone(),
                cert_file: Some(cert),
                key_file: Some(key),
                insecure_skip_verify: s.peer.auto_tls,
                cipher_suites: s.cipher_suites.clone(),
                min_version: s.min_version,
                max_version: s.max_version,
            })
            .map_err(|e| format!("peer TLS: {e}"))?,
        );
    }
    Ok(out)
}

fn files(side: &SideSettings, data_dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), String> {
    match (&side.cert_file, &side.key_file) {
        (Some(c), Some(k)) => Ok((c.clone(), k.clone())),
        _ => {
            let dir = data_dir.join("fixtures").join(name);
            let (c, k) =
                retcd_tls::self_signed(&dir, &side.hosts, name == "peer").map_err(|e| e.to_string())?;
            tracing::info!(cert = %c.display(), key = %k.display(), "{name} auto TLS: using a self-signed certificate");
            Ok((c, k))
        }
    }
}

fn server_options(s: &TlsSettings, side: &SideSettings, cert: PathBuf, key: PathBuf) -> ServerTlsOptions {
    let show = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    tracing::info!(
        cert = %cert.display(),
        key = %key.display(),
        trusted_ca = %show(&side.trusted_ca_file),
        client_cert_auth = side.client_cert_auth,
        crl_file = %show(&side.crl_file),
        "starting with TLS"
    );
    ServerTlsOptions {
        cert_file: cert,
        key_file: key,
        trusted_ca_file: side.trusted_ca_file.clone(),
        client_cert_auth: side.client_cert_auth,
        crl_file: side.crl_file.clone(),
        cipher_suites: s.cipher_suites.clone(),
        min_version: s.min_version,
        max_version: s.max_version,
    }
}

/// What a listener checks on each handshaken connection (`retcd_tls::incoming_checked`), as
/// etcd's TLS listeners do: `allowed` (`--peer-cert-allowed-cn`, `--*-cert-allowed-hostname`;
/// refused as `client certificate authentication failed: ...`), then, with `client_san`
/// (peer listeners), the client certificate's SANs against the peer's address
/// ([`check_client_san`]). `None` when there is nothing to check.
pub fn connection_check(allowed: AllowedCert, client_san: bool) -> Option<retcd_tls::ConnectionCheck> {
    if allowed.is_empty() && !client_san {
        return None;
    }
    let allowed = Arc::new(allowed);
    let resolver = Arc::new(crate::dns::Resolver::system());
    Some(Arc::new(move |cert, remote| {
        let allowed = Arc::clone(&allowed);
        let resolver = Arc::clone(&resolver);
        Box::pin(async move {
            let der = cert.as_ref().map(|c| c.as_ref());
            if !allowed.is_empty() {
                allowed
                    .check(der)
                    .map_err(|why| format!("client certificate authentication failed: {why}"))?;
            }
            match der {
                Some(der) if client_san => check_client_san(der, remote.ip(), &resolver).await,
                _ => Ok(()),
            }
        })
    }))
}

/// etcd's check of a peer's client certificate against the address the peer connects from
/// (`checkCertSAN` in etcd's `pkg/transport`): a certificate without IP or DNS SANs passes;
/// one with IP SANs passes if one is `remote` (none and no DNS SANs: `x509: certificate is
/// valid for <IPs>, not <remote>`, Go's error); with DNS SANs, a name `remote` resolves to
/// (reverse lookup) must equal one, or end with a `*.` one's suffix, or one must resolve to
/// `remote` (forward lookup), else `tls: "<remote>" does not match any of DNSNames [...]`
/// with the last lookup error. Names compare as etcd compares them (exactly).
pub async fn check_client_san(
    der: &[u8],
    remote: std::net::IpAddr,
    resolver: &crate::dns::Resolver,
) -> Result<(), String> {
    use x509_parser::extensions::GeneralName;
    let remote = remote.to_canonical();
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("x509: cannot parse the certificate: {e}"))?;
    let mut ips = Vec::new();
    let mut dns_names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ips.push(std::net::IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ips.push(std::net::IpAddr::from(v6).to_canonical());
                    }
                }
                GeneralName::DNSName(n) => dns_names.push(n.to_string()),
                _ => {}
            }
        }
    }
    if !ips.is_empty() {
        if ips.contains(&remote) {
            return Ok(());
        }
        if dns_names.is_empty() {
            let valid: Vec<String> = ips.iter().map(|ip| ip.to_string()).collect();
            return Err(format!(
                "x509: certificate is valid for {}, not {remote}",
                valid.join(", ")
            ));
        }
    }
    if dns_names.is_empty() {
        return Ok(());
    }
    let (wildcards, names): (Vec<&String>, Vec<&String>) =
        dns_names.iter().partition(|n| n.starts_with("*."));
    let mut last_error = None;
    match resolver.lookup_addr(remote).await {
        Ok(found) => {
            for name in &found {
                let name = name.strip_suffix('.').unwrap_or(name);
                if wildcards.iter().any(|w| name.ends_with(&w[1..])) || names.iter().any(|n| *n == name) {
                    return Ok(());
                }
            }
        }
        Err(e) => last_error = Some(e),
    }
    for name in &names {
        match resolver.lookup_host(name).await {
            Ok(addrs) if addrs.contains(&remote) => return Ok(()),
            Ok(_) => {}
            Err(e) => last_error = Some(e),
        }
    }
    // Go's %q of a []string: ["a" "b"]
    let quoted: Vec<String> = dns_names.iter().map(|n| format!("{n:?}")).collect();
    Err(format!(
        "tls: \"{remote}\" does not match any of DNSNames [{}]{}",
        quoted.join(" "),
        last_error.map(|e| format!(" ({e})")).unwrap_or_default()
    ))
}

/// The Common Name of the client certificate the request's connection was verified with:
/// `Some` only over TLS with `--client-cert-auth` or `--trusted-ca-file` (only then are
/// certificates asked for and verified) and when the certificate has a non-empty CN. With
/// auth enabled, etcd takes this as the user name when the request carries no token.
///
/// The chain comes from tonic's connection info for rustls streams (`peer_certs`); the first
/// certificate is the client's own. As Go's `pkix.Name`, the last CN attribute counts.
#[cfg(test)]
pub fn peer_common_name<T>(req: &tonic::Request<T>) -> Option<String> {
    common_name_of(req.extensions())
}

/// [`peer_common_name`] from a request's extensions (what the auth layer sees).
pub fn common_name_of(ext: &tonic::codegen::http::Extensions) -> Option<String> {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let certs = ext.get::<TlsConnectInfo<TcpConnectInfo>>()?.peer_certs()?;
    common_name(certs.first()?.as_ref())
}

/// The subject Common Name of a DER certificate (`None` if absent, empty or unparsable).
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().last()?;
    let cn = cn.as_str().ok()?.to_string();
    (!cn.is_empty()).then_some(cn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use retcd_tls::test_pki::TestCa;

    fn args(a: &[&str]) -> Vec<String> {
        std::iter::once("retcd")
            .chain(a.iter().copied())
            .map(String::from)
            .collect()
    }

    const HTTPS: &[&str] = &[
        "--listen-client-urls",
        "https://127.0.0.1:2379",
        "--advertise-client-urls",
        "https://127.0.0.1:2379",
    ];

    fn with_https(extra: &[&str]) -> Result<Config, String> {
        let mut a: Vec<&str> = HTTPS.to_vec();
        a.extend_from_slice(extra);
        Config::from_args(args(&a)).map_err(|e| e.to_string())
    }

    #[test]
    fn https_client_urls_need_certificates() {
        assert_eq!(
            with_https(&[]).unwrap_err(),
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:2379 with HTTPS scheme"
        );
        let c = with_https(&["--cert-file", "c.pem", "--key-file", "k.pem"]).unwrap();
        assert!(c.tls.client.https);
        assert_eq!(c.tls.client.cert_file, Some(PathBuf::from("c.pem")));
        assert!(!c.tls.peer.https);
        let c = with_https(&["--auto-tls"]).unwrap();
        assert!(c.tls.client.auto_tls);
        assert_eq!(c.tls.client.hosts, vec!["127.0.0.1:2379"]);
        assert_eq!(
            with_https(&["--cert-file", "c.pem"]).unwrap_err(),
            "KeyFile and CertFile must both be present[key: , cert: c.pem]"
        );
        assert!(
            with_https(&[
                "--cert-file",
                "c.pem",
                "--key-file",
                "k.pem",
                "--client-cert-auth"
            ])
            .unwrap_err()
            .contains("--trusted-ca-file")
        );
        let c = with_https(&[
            "--cert-file=c.pem",
            "--key-file=k.pem",
            "--client-cert-auth=true",
            "--trusted-ca-file=ca.pem",
            "--client-crl-file=crl.pem",
        ])
        .unwrap();
        assert!(c.tls.client.client_cert_auth);
        assert_eq!(c.tls.client.crl_file, Some(PathBuf::from("crl.pem")));
        // a trusted CA alone asks for client certificates too, as in etcd 3.4
        let c = with_https(&[
            "--cert-file=c.pem",
            "--key-file=k.pem",
            "--trusted-ca-file=ca.pem",
        ])
        .unwrap();
        assert!(c.tls.client.client_cert_auth);
    }

    #[test]
    fn certificates_for_plain_urls_are_ignored_with_a_warning() {
        let c = Config::from_args(args(&[
            "--cert-file",
            "c.pem",
            "--key-file",
            "k.pem",
            "--client-cert-auth",
        ]))
        .unwrap();
        assert!(!c.tls.client.https);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("ignoring key and cert files")),
            "{:?}",
            c.warnings
        );
        assert!(c.warnings.iter().any(|w| w.contains("ignoring client cert auth")));
    }

    #[test]
    fn peer_urls_and_ciphers() {
        let peer = [
            "--listen-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2380",
        ];
        let e = Config::from_args(args(&peer)).unwrap_err().to_string();
        assert!(e.starts_with("cannot listen on TLS for 127.0.0.1:2380"), "{e}");
        let mut a = peer.to_vec();
        a.extend([
            "--peer-auto-tls",
            "--cipher-suites",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ]);
        let c = Config::from_args(args(&a)).unwrap();
        assert!(c.tls.peer.https && c.tls.peer.auto_tls);
        assert_eq!(c.tls.cipher_suites, vec!["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]);
        assert_eq!(
            Config::from_args(args(&["--cipher-suites", "FOO"]))
                .unwrap_err()
                .to_string(),
            "unexpected TLS cipher suite \"FOO\""
        );
        assert!(Config::from_args(args(&["--tls-min-version", "TLS1.3"])).is_ok());
        assert!(Config::from_args(args(&["--tls-min-version", "TLS1.0"])).is_err());
        let mut a = peer.to_vec();
        a.extend(["--peer-auto-tls", "--peer-cert-allowed-cn", "m1"]);
        assert!(
            Config::from_args(args(&a))
                .unwrap_err()
                .to_string()
                .contains("--peer-client-cert-auth")
        );
        assert!(
            Config::from_args(args(&["--peer-client-cert-auth", "--peer-cert-allowed-cn", "m1"])).is_ok()
        );
        let mut a = peer.to_vec();
        a.extend(["--peer-auto-tls", "--peer-cert-allowed-hostname", "m1.example"]);
        assert!(Config::from_args(args(&a)).is_err());
        let c = Config::from_args(args(&[
            "--peer-client-cert-auth",
            "--peer-cert-allowed-hostname",
            "m1.example",
        ]))
        .unwrap();
        assert_eq!(c.tls.peer_allowed.hostname.as_deref(), Some("m1.example"));
        let mut a = HTTPS.to_vec();
        a.extend(["--auto-tls", "--client-cert-allowed-hostname", "c.example"]);
        assert!(
            Config::from_args(args(&a))
                .unwrap_err()
                .to_string()
                .contains("--client-cert-auth")
        );
        let c = Config::from_args(args(&[
            "--client-cert-auth",
            "--client-cert-allowed-hostname",
            "c.example",
        ]))
        .unwrap();
        assert_eq!(c.tls.client_allowed.hostname.as_deref(), Some("c.example"));
    }

    #[test]
    fn allowed_hostnames_match_subject_alternative_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = TestCa::new(dir.path(), "ca");
        let read = |i: &retcd_tls::test_pki::Issued| pem_first_der(&std::fs::read(&i.cert).unwrap());
        let named = read(&ca.issue("n", "n", &["Node1.Example.com", "*.wild.example", "10.0.0.7"]));
        assert!(valid_for_host(&named, "node1.example.com"));
        assert!(valid_for_host(&named, "node1.example.com."));
        assert!(valid_for_host(&named, "a.wild.example"));
        assert!(!valid_for_host(&named, "a.b.wild.example"));
        assert!(!valid_for_host(&named, "wild.example"));
        assert!(valid_for_host(&named, "10.0.0.7"));
        assert!(!valid_for_host(&named, "10.0.0.8"));
        assert!(!valid_for_host(&named, "other.example.com"));
        let bare = read(&ca.issue("b", "node1.example.com", &[]));
        assert!(
            !valid_for_host(&bare, "node1.example.com"),
            "the CN does not count"
        );
        let allowed = AllowedCert {
            cn: Some("n".into()),
            hostname: Some("10.0.0.7".into()),
        };
        assert!(allowed.check(Some(&named)).is_ok());
        assert!(allowed.check(Some(&bare)).is_err());
        assert!(allowed.check(None).is_err());
        assert!(AllowedCert::default().check(None).is_ok());
    }

    #[test]
    fn peer_client_san_verification_flag() {
        let peer = [
            "--listen-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2380",
            "--peer-cert-file",
            "p.pem",
            "--peer-key-file",
            "pk.pem",
        ];
        let with = |extra: &[&str]| {
            let mut a = peer.to_vec();
            a.extend_from_slice(extra);
            Config::from_args(args(&a)).unwrap().tls.peer_client_san
        };
        // only when peers are asked for certificates
        assert!(!with(&[]));
        assert!(with(&[
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            "ca.pem"
        ]));
        assert!(with(&["--peer-trusted-ca-file", "ca.pem"]));
        assert!(!with(&[
            "--peer-trusted-ca-file",
            "ca.pem",
            "--experimental-peer-skip-client-san-verification"
        ]));
        assert!(!with(&[
            "--peer-trusted-ca-file=ca.pem",
            "--experimental-peer-skip-client-san-verification=true"
        ]));
        assert!(with(&[
            "--peer-trusted-ca-file=ca.pem",
            "--experimental-peer-skip-client-san-verification=false"
        ]));
        // plain-text peers: nothing to check
        let c = Config::from_args(args(&[
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            "ca.pem",
        ]))
        .unwrap();
        assert!(!c.tls.peer_client_san);
        // no longer an ignored flag
        let c = Config::from_args(args(&["--experimental-peer-skip-client-san-verification"])).unwrap();
        assert!(
            c.warnings.iter().all(|w| !w.contains("san-verification")),
            "{:?}",
            c.warnings
        );

        // the config file: etcd 3.6's top-level key and etcd 3.5's peer-transport-security key
        let dir = tempfile::tempdir().unwrap();
        let base =
            "listen-peer-urls: https://127.0.0.1:2380\ninitial-advertise-peer-urls: https://127.0.0.1:2380\n";
        let security = "peer-transport-security:\n  cert-file: /p.pem\n  key-file: /pk.pem\n  client-cert-auth: true\n  trusted-ca-file: /ca.pem\n";
        for (extra, want) in [
            ("", true),
            ("experimental-peer-skip-client-san-verification: true\n", false),
            ("  skip-client-san-verification: true\n", false),
        ] {
            let p = dir.path().join("c.yaml");
            std::fs::write(&p, format!("{base}{security}{extra}")).unwrap();
            let c = Config::from_args(args(&["--config-file", p.to_str().unwrap()])).unwrap();
            assert_eq!(c.tls.peer_client_san, want, "{extra:?}");
            assert!(
                c.warnings.iter().all(|w| !w.contains("config-file key")),
                "{extra:?}: {:?}",
                c.warnings
            );
        }
    }

    #[tokio::test]
    async fn client_san_against_the_peer_address() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = TestCa::new(dir.path(), "ca");
        let mut cert = |sans: &[&str]| {
            let issued = ca.issue("c", "member", sans);
            pem_first_der(&std::fs::read(&issued.cert).unwrap())
        };
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // what a hosts file "10.0.0.9 node9.example.com node9" gives, and localhost
        let resolver = crate::dns::Resolver::Fixed {
            names: vec![(ip("10.0.0.9"), vec!["node9.example.com".into(), "node9".into()])],
            addrs: vec![("localhost".into(), vec![ip("127.0.0.1")])],
        };
        let check = |der: Vec<u8>, remote: &str| {
            let resolver = resolver.clone();
            let remote = ip(remote);
            async move { check_client_san(&der, remote, &resolver).await }
        };

        // IP SANs
        assert_eq!(check(cert(&["10.0.0.7"]), "10.0.0.7").await, Ok(()));
        assert_eq!(check(cert(&["10.0.0.7"]), "::ffff:10.0.0.7").await, Ok(()));
        assert_eq!(
            check(cert(&["10.0.0.7", "10.0.0.8"]), "10.0.0.9").await,
            Err("x509: certificate is valid for 10.0.0.7, 10.0.0.8, not 10.0.0.9".into())
        );
        assert_eq!(check(cert(&["::1"]), "::1").await, Ok(()));
        // no IP or DNS SANs: nothing to check (as etcd)
        assert_eq!(check(cert(&[]), "10.0.0.9").await, Ok(()));
        // DNS SANs: a name of the address (reverse lookup), exactly or under a wildcard
        assert_eq!(check(cert(&["node9.example.com"]), "10.0.0.9").await, Ok(()));
        assert_eq!(check(cert(&["*.example.com"]), "10.0.0.9").await, Ok(()));
        assert_eq!(
            check(cert(&["10.0.0.7", "node9"]), "10.0.0.9").await,
            Ok(()),
            "the IP SANs fail, a DNS SAN matches"
        );
        // ... or a name that resolves to the address (forward lookup)
        let localhost = resolver.lookup_host("localhost").await.unwrap()[0];
        assert_eq!(check(cert(&["localhost"]), &localhost.to_string()).await, Ok(()));
        // neither: the names, and the last lookup error (here the reverse lookup's)
        assert_eq!(
            check(cert(&["localhost", "*.example.org"]), "10.0.0.9").await,
            Err(r#"tls: "10.0.0.9" does not match any of DNSNames ["localhost" "*.example.org"]"#.into())
        );
        assert_eq!(
            check(cert(&["localhost"]), "10.0.0.10").await,
            Err(r#"tls: "10.0.0.10" does not match any of DNSNames ["localhost"] (lookup 10.0.0.10.in-addr.arpa.: no such host)"#.into())
        );
        assert_eq!(
            check(cert(&["10.0.0.7", "*.example.org"]), "10.0.0.9").await,
            Err(r#"tls: "10.0.0.9" does not match any of DNSNames ["*.example.org"]"#.into())
        );
    }

    #[tokio::test]
    async fn connection_checks_combine_allowed_names_and_sans() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = TestCa::new(dir.path(), "ca");
        let issued = ca.issue("m", "member", &["10.0.0.7"]);
        let cert = retcd_tls::load_certs(&issued.cert).unwrap().remove(0);
        let from = |ip: &str| std::net::SocketAddr::new(ip.parse().unwrap(), 40000);
        assert!(connection_check(AllowedCert::default(), false).is_none());
        let san = connection_check(AllowedCert::default(), true).unwrap();
        assert_eq!(san(Some(cert.clone()), from("10.0.0.7")).await, Ok(()));
        assert_eq!(
            san(Some(cert.clone()), from("10.0.0.8")).await,
            Err("x509: certificate is valid for 10.0.0.7, not 10.0.0.8".into())
        );
        assert_eq!(
            san(None, from("10.0.0.8")).await,
            Ok(()),
            "no certificate, nothing to check"
        );
        let cn = AllowedCert {
            cn: Some("other".into()),
            hostname: None,
        };
        let both = connection_check(cn.clone(), true).unwrap();
        assert_eq!(
            both(Some(cert.clone()), from("10.0.0.7")).await,
            Err(
                "client certificate authentication failed: CN \"member\" is not the allowed \"other\"".into()
            )
        );
        let names_only = connection_check(cn, false).unwrap();
        assert!(names_only(Some(cert), from("10.0.0.8")).await.is_err());
    }

    /// The DER of the first certificate in a PEM file.
    fn pem_first_der(pem: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(pem);
        let b64: String = text
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn config_file_transport_security() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(
            &p,
            "listen-client-urls: https://127.0.0.1:1\nadvertise-client-urls: https://127.0.0.1:1\n\
             client-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  client-cert-auth: true\n  trusted-ca-file: /ca.pem\n\
             peer-transport-security:\n  auto-tls: true\n\
             cipher-suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]\n\
             tls-min-version: TLS1.2\nenable-v2: false\n",
        )
        .unwrap();
        let c = Config::from_args(args(&["--config-file", p.to_str().unwrap()])).unwrap();
        assert!(c.tls.client.https && c.tls.client.client_cert_auth);
        assert_eq!(c.tls.client.trusted_ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.tls.cipher_suites.len(), 2);
        assert_eq!(c.tls.min_version, Some(TlsVersion::Tls12));
        // the TLS keys are taken; only enable-v2 is left over
        assert_eq!(
            c.warnings
                .iter()
                .filter(|w| w.contains("config-file key"))
                .count(),
            1,
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn auto_tls_certificates_live_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let c = with_https(&["--auto-tls"]).unwrap();
        let prepared = prepare(&c.tls, dir.path()).unwrap();
        assert!(prepared.client.is_some() && prepared.peer.is_none() && prepared.peer_dial.is_none());
        assert!(dir.path().join("fixtures/client/cert.pem").is_file());
        assert!(dir.path().join("fixtures/client/key.pem").is_file());
    }

    #[test]
    fn common_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = TestCa::new(dir.path(), "ca");
        let read = |i: &retcd_tls::test_pki::Issued| retcd_tls::load_certs(&i.cert).unwrap().remove(0);
        assert_eq!(
            common_name(read(&ca.issue("a", "alice", &[])).as_ref()),
            Some("alice".into())
        );
        assert_eq!(
            common_name(read(&ca.issue("n", "", &["localhost"])).as_ref()),
            None
        );
        assert_eq!(common_name(b"not a certificate"), None);
    }

    /// The CN reaches a request the way tonic builds it: from the connection info of a
    /// rustls server stream that verified the client's certificate.
    #[tokio::test]
    async fn peer_common_name_from_a_verified_connection() {
        use tonic::transport::server::Connected;
        let dir = tempfile::tempdir().unwrap();
        let mut ca = TestCa::new(dir.path(), "ca");
        let server = ca.issue("server", "server", &["127.0.0.1"]);
        let alice = ca.issue("alice", "alice", &[]);
        let server_opts = |mtls: bool| ServerTlsOptions {
            cert_file: server.cert.clone(),
            key_file: server.key.clone(),
            trusted_ca_file: Some(ca.cert.clone()),
            client_cert_auth: mtls,
            ..Default::default()
        };
        for (mtls, want) in [(true, Some("alice".to_string())), (false, None)] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let acceptor =
                tokio_rustls::TlsAcceptor::from(retcd_tls::server_config(&server_opts(mtls)).unwrap());
            let client_cfg = retcd_tls::client_config(&ClientTlsOptions {
                ca_file: Some(ca.cert.clone()),
                cert_file: Some(alice.cert.clone()),
                key_file: Some(alice.key.clone()),
                ..Default::default()
            })
            .unwrap();
            let client = tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
                let name = retcd_tls::rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                tokio_rustls::TlsConnector::from(client_cfg)
                    .connect(name, tcp)
                    .await
                    .unwrap()
            });
            let (tcp, _) = listener.accept().await.unwrap();
            let stream = acceptor.accept(tcp).await.unwrap();
            let _client = client.await.unwrap();
            let mut req = tonic::Request::new(());
            req.extensions_mut().insert(stream.connect_info());
            assert_eq!(peer_common_name(&req), want, "client-cert-auth {mtls}");
            assert!(req.remote_addr().is_some());
        }
        // plain text: no certificates at all
        assert_eq!(peer_common_name(&tonic::Request::new(())), None);
    }
}
