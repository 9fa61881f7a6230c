//! Certificates, keys and CRLs from files.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::TlsError;

/// Go's wording of the usual reasons a file cannot be opened (etcdctl prints
/// `Error: open /x: no such file or directory`).
fn go_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Open {
        path: path.display().to_string(),
        reason: go_reason(&e),
    })
}

fn pem_error(path: &Path, what: &str, e: impl std::fmt::Display) -> TlsError {
    TlsError::Pem(format!("{}: cannot parse {what}: {e}", path.display()))
}

/// Every certificate in a PEM file, in order (a chain: the leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificate", e))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!(
            "{}: tls: failed to find any PEM data in certificate input",
            path.display()
        )));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Pem(format!(
            "{}: tls: failed to find any PEM data in key input",
            path.display()
        )),
        e => pem_error(path, "private key", e),
    })
}

/// The CRLs in a file: PEM (`X509 CRL` blocks) or one DER CRL, as Go's `x509.ParseCRL` reads
/// either.
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let bytes = read(path)?;
    if !bytes.starts_with(b"-----") && bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    let crls = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "CRL", e))?;
    if crls.is_empty() {
        return Err(TlsError::Pem(format!("{}: no CRL found", path.display())));
    }
    Ok(crls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_reads_like_go() {
        let e = load_certs(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "open /nonexistent/ca.pem: no such file or directory"
        );
    }

    #[test]
    fn empty_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.pem");
        std::fs::write(&p, "not pem\n").unwrap();
        assert!(
            load_certs(&p)
                .unwrap_err()
                .to_string()
                .ends_with("tls: failed to find any PEM data in certificate input")
        );
        assert!(
            load_key(&p)
                .unwrap_err()
                .to_string()
                .ends_with("tls: failed to find any PEM data in key input")
        );
        assert!(load_crls(&p).is_err());
    }

    #[test]
    fn reads_generated_pem() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        assert_eq!(load_certs(&c).unwrap().len(), 1);
        assert!(matches!(load_key(&k).unwrap(), PrivateKeyDer::Pkcs8(_)));
    }
}
