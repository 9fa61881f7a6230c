//! `--auto-tls` / `--peer-auto-tls`: a self-signed certificate made at start, as etcd's
//! `transport.SelfCert`: `cert.pem` and `key.pem` in a directory of the data dir
//! (`fixtures/client`, `fixtures/peer`), kept and reused by later starts.
//!
//! Like etcd's: organization `etcd`, one SAN per listen host (IP or DNS name), not a CA, key
//! usages digital signature + key encipherment, extended key usage server auth (plus client
//! auth when members present it to each other), valid for one year. The key is ECDSA P-256
//! (etcd uses P-521; every TLS stack in use speaks both).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SanType,
};

use crate::TlsError;

/// How long a generated certificate is valid.
const VALIDITY: time::Duration = time::Duration::days(365);

/// The host of a `host:port` (IPv6 in brackets) or of a bare host.
fn host_of(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => hostport,
    }
}

/// The certificate and key files in `dir`, made if either is missing. `hosts` are the listen
/// URLs' `host:port`s; `client_auth` adds the client-auth usage (peer certificates).
pub fn self_signed(dir: &Path, hosts: &[String], client_auth: bool) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    let io = |what: &str, p: &Path, e: std::io::Error| {
        TlsError::Config(format!("cannot {what} {}: {e}", p.display()))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("create", dir, e))?;
    let gen_err =
        |e: rcgen::Error| TlsError::Config(format!("cannot generate a self-signed certificate: {e}"));
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "etcd");
    params.distinguished_name = dn;
    let mut seen = Vec::new();
    for h in hosts {
        let host = host_of(h).to_string();
        if host.is_empty() || seen.contains(&host) {
            continue;
        }
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.clone().try_into().map_err(gen_err)?),
        };
        params.subject_alt_names.push(san);
        seen.push(host);
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    if client_auth {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + VALIDITY;
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = params.self_signed(&key).map_err(gen_err)?;
    let write = |p: &Path, mode: u32, data: &str| -> Result<(), TlsError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(p)
            .map_err(|e| io("create", p, e))?;
        f.write_all(data.as_bytes()).map_err(|e| io("write", p, e))?;
        f.sync_all().map_err(|e| io("sync", p, e))
    };
    write(&key_path, 0o600, &key.serialize_pem())?;
    write(&cert_path, 0o644, &cert.pem())?;
    Ok((cert_path, key_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("127.0.0.1:2379"), "127.0.0.1");
        assert_eq!(host_of("localhost:2379"), "localhost");
        assert_eq!(host_of("[::1]:2379"), "::1");
        assert_eq!(host_of("::1"), "::1");
        assert_eq!(host_of("example.com"), "example.com");
    }

    #[test]
    fn generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("fixtures").join("client");
        let hosts = vec!["127.0.0.1:2379".to_string(), "localhost:2379".to_string()];
        let (c, k) = self_signed(&d, &hosts, false).unwrap();
        let first = std::fs::read(&c).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&k).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(crate::load_certs(&c).unwrap().len(), 1);
        crate::load_key(&k).unwrap();
        let (c2, _) = self_signed(&d, &hosts, false).unwrap();
        assert_eq!(std::fs::read(c2).unwrap(), first, "kept across starts");
    }
}
