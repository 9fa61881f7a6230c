//! TLS handshakes over loopback between `retcd_tls::incoming` and clients built from
//! `client_config`: who gets through to the server (mutual TLS, CRLs, plain text, skipped
//! verification, a connection check after the handshake).

use std::time::Duration;

use retcd_tls::rustls::pki_types::ServerName;
use retcd_tls::test_pki::{Issued, TestCa};
use retcd_tls::{ClientTlsOptions, ServerTlsOptions, client_config, incoming, server_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;

struct Pki {
    _dir: tempfile::TempDir,
    ca: TestCa,
    server: Issued,
    alice: Issued,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let mut ca = TestCa::new(dir.path(), "ca");
    let server = ca.issue("server", "server", &["127.0.0.1", "localhost"]);
    let alice = ca.issue("alice", "alice", &[]);
    Pki {
        _dir: dir,
        ca,
        server,
        alice,
    }
}

fn server_opts(p: &Pki, mtls: bool) -> ServerTlsOptions {
    ServerTlsOptions {
        cert_file: p.server.cert.clone(),
        key_file: p.server.key.clone(),
        trusted_ca_file: Some(p.ca.cert.clone()),
        client_cert_auth: mtls,
        ..Default::default()
    }
}

/// Starts a TLS listener; returns its port and a receiver of accepted connections' first
/// bytes (each accepted connection echoes what it reads once).
async fn serve(cfg: ServerTlsOptions) -> (u16, tokio::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut conns = incoming(listener, server_config(&cfg).unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        while let Some(Ok(mut c)) = conns.next().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                if c.read_exact(&mut buf).await.is_ok() {
                    let _ = c.write_all(&buf).await;
                    let _ = tx.send(buf.to_vec()).await;
                }
            });
        }
    });
    (port, rx)
}

/// Handshakes and sends "hello"; true if the server echoed it.
async fn talk(port: u16, opts: &ClientTlsOptions) -> bool {
    let cfg = client_config(opts).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let conn = tokio_rustls::TlsConnector::from(cfg);
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let Ok(mut s) = conn.connect(name, tcp).await else {
        return false;
    };
    // With TLS 1.3 a refused client certificate only shows on the first read.
    if s.write_all(b"hello").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut buf)).await,
        Ok(Ok(_))
    ) && &buf == b"hello"
}

fn client(ca: Option<&TestCa>, id: Option<&Issued>) -> ClientTlsOptions {
    ClientTlsOptions {
        ca_file: ca.map(|c| c.cert.clone()),
        cert_file: id.map(|i| i.cert.clone()),
        key_file: id.map(|i| i.key.clone()),
        ..Default::default()
    }
}

#[tokio::test]
async fn server_tls_without_client_certificates() {
    let p = pki();
    let (port, mut rx) = serve(server_opts(&p, false)).await;
    assert!(talk(port, &client(Some(&p.ca), None)).await);
    assert_eq!(rx.recv().await.unwrap(), b"hello");
    // a client that does not trust the CA (system roots only) is refused by itself
    assert!(!talk(port, &client(None, None)).await);
}

#[tokio::test]
async fn mutual_tls_requires_a_certificate_from_the_ca() {
    let p = pki();
    let (port, _rx) = serve(server_opts(&p, true)).await;
    assert!(talk(port, &client(Some(&p.ca), Some(&p.alice))).await);
    assert!(!talk(port, &client(Some(&p.ca), None)).await, "no certificate");
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = TestCa::new(other_dir.path(), "other-ca");
    let mallory = other.issue("mallory", "root", &[]);
    assert!(
        !talk(port, &client(Some(&p.ca), Some(&mallory))).await,
        "foreign CA"
    );
}

#[tokio::test]
async fn revoked_certificates_are_refused() {
    let mut p = pki();
    let bob = p.ca.issue("bob", "bob", &[]);
    let crl = p.ca.crl("crl", &[&bob]);
    let mut opts = server_opts(&p, true);
    opts.crl_file = Some(crl);
    let (port, _rx) = serve(opts).await;
    assert!(talk(port, &client(Some(&p.ca), Some(&p.alice))).await);
    assert!(!talk(port, &client(Some(&p.ca), Some(&bob))).await);
}

/// `incoming_checked`: the check gets the client's certificate and address after the
/// handshake; a connection it refuses never reaches the server.
#[tokio::test]
async fn a_connection_check_sees_the_certificate_and_can_refuse() {
    let mut p = pki();
    let bob = p.ca.issue("bob", "bob", &[]);
    let bob_der = retcd_tls::load_certs(&bob.cert).unwrap().remove(0);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let check: retcd_tls::ConnectionCheck = std::sync::Arc::new(move |cert, remote| {
        let refuse = cert.as_ref() == Some(&bob_der);
        seen2.lock().unwrap().push((cert.is_some(), remote.ip()));
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if refuse {
                Err("not bob".to_string())
            } else {
                Ok(())
            }
        })
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut conns = retcd_tls::incoming_checked(
        listener,
        server_config(&server_opts(&p, true)).unwrap(),
        Some(check),
    );
    tokio::spawn(async move {
        while let Some(Ok(mut c)) = conns.next().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                if c.read_exact(&mut buf).await.is_ok() {
                    let _ = c.write_all(&buf).await;
                }
            });
        }
    });
    assert!(talk(port, &client(Some(&p.ca), Some(&p.alice))).await);
    assert!(!talk(port, &client(Some(&p.ca), Some(&bob))).await);
    let loopback: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(*seen.lock().unwrap(), [(true, loopback), (true, loopback)]);
}

#[tokio::test]
async fn plain_text_never_reaches_the_server() {
    let p = pki();
    let (port, mut rx) = serve(server_opts(&p, false)).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    // the server closes the connection (possibly after a TLS alert)
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(!buf.windows(5).any(|w| w == b"hello"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn skipping_verification_accepts_a_self_signed_server() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = retcd_tls::self_signed(
        &dir.path().join("fixtures/client"),
        &["127.0.0.1:0".into()],
        false,
    )
    .unwrap();
    let (port, _rx) = serve(ServerTlsOptions {
        cert_file: cert,
        key_file: key,
        ..Default::default()
    })
    .await;
    let skip = ClientTlsOptions {
        insecure_skip_verify: true,
        ..Default::default()
    };
    assert!(talk(port, &skip).await);
    assert!(!talk(port, &ClientTlsOptions::default()).await);
}

#[tokio::test]
async fn cipher_suites_and_versions_are_enforced() {
    let p = pki();
    let mut opts = server_opts(&p, false);
    opts.min_version = Some(retcd_tls::TlsVersion::Tls13);
    let (port, _rx) = serve(opts).await;
    let mut old = client(Some(&p.ca), None);
    old.max_version = Some(retcd_tls::TlsVersion::Tls12);
    assert!(
        !talk(port, &old).await,
        "TLS 1.2 client refused by a TLS1.3-only server"
    );
    let mut new = client(Some(&p.ca), None);
    new.min_version = Some(retcd_tls::TlsVersion::Tls13);
    assert!(talk(port, &new).await);

    let mut opts = server_opts(&p, false);
    opts.cipher_suites = vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into()];
    opts.max_version = Some(retcd_tls::TlsVersion::Tls12);
    let (port, _rx) = serve(opts).await;
    let mut other_suite = client(Some(&p.ca), None);
    other_suite.cipher_suites = vec!["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into()];
    assert!(!talk(port, &other_suite).await, "no common suite");
    let mut same = client(Some(&p.ca), None);
    same.cipher_suites = vec!["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384".into()];
    assert!(talk(port, &same).await);
}

#[test]
fn certificate_without_key_is_refused_like_etcd() {
    let e = client_config(&ClientTlsOptions {
        key_file: Some("k.pem".into()),
        ..Default::default()
    })
    .err()
    .unwrap();
    assert_eq!(
        e.to_string(),
        "KeyFile and CertFile must both be present[key: k.pem, cert: ]"
    );
}
