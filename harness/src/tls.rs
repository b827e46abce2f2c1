//! Certificates for tests over TLS, written as PEM files: a cluster CA and each node's
//! certificate signed by it, and an unrelated CA with a certificate of its own, so a test can
//! show that a certificate from another CA is refused.
//!
//! Every issued certificate serves as both a server and a client certificate (extended key
//! usage serverAuth and clientAuth), as the gateway's peer links need: a node presents the same
//! certificate when it dials and when it is dialled. Its subject alternative names are the
//! node's IP addresses, as clients and peers dial them, and `localhost`.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{url}: {reason}")]
    Url { url: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Issued {
    /// The gateway flags for mutual TLS on peer links with this certificate under `ca`.
    pub fn peer_flags(&self, ca: &Path) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--peer-ca".into(),
            path(ca),
            "--peer-certificate".into(),
            path(&self.cert),
            "--peer-private-key".into(),
            path(&self.key),
        ]
    }

    /// The gateway flags for HTTPS on the API with this certificate.
    pub fn https_flags(&self) -> Vec<String> {
        vec![
            "--https-certificate".into(),
            self.cert.display().to_string(),
            "--https-private-key".into(),
            self.key.display().to_string(),
        ]
    }
}

/// A certificate authority: its certificate as a PEM file (what a peer or client trusts), and
/// what it takes to issue more.
pub struct Ca {
    /// The CA's certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM (mode 600).
    pub key: PathBuf,
    certificate: rcgen::Certificate,
    key_pair: KeyPair,
}

impl Ca {
    /// A new self-signed CA named `name`, written to `dir/<name>.pem` and `dir/<name>-key.pem`.
    pub fn new(dir: &Path, name: &str) -> Result<Ca, TlsError> {
        let generate = |source| TlsError::Generate {
            what: format!("the CA {name}"),
            source,
        };
        let key_pair = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("influx-gateway test CA {name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params);
        let certificate = params.self_signed(&key_pair).map_err(generate)?;
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}-key.pem"));
        write(&cert, &certificate.pem(), false)?;
        write(&key, &key_pair.serialize_pem(), true)?;
        Ok(Ca {
            cert,
            key,
            certificate,
            key_pair,
        })
    }

    /// A certificate for `name` signed by this CA, valid for `ips` and `localhost`, as a server
    /// and as a client; written to `dir/<name>.pem` and `dir/<name>-key.pem`.
    pub fn issue(&self, dir: &Path, name: &str, ips: &[IpAddr]) -> Result<Issued, TlsError> {
        let generate = |source| TlsError::Generate {
            what: format!("the certificate {name}"),
            source,
        };
        let key_pair = KeyPair::generate().map_err(generate)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        params
            .subject_alt_names
            .push(SanType::DnsName("localhost".try_into().map_err(generate)?));
        params.is_ca = IsCa::ExplicitNoCa;
        // ECDSA keys sign; they cannot encipher.
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params);
        let certificate = params
            .signed_by(&key_pair, &self.certificate, &self.key_pair)
            .map_err(generate)?;
        let issued = Issued {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        write(&issued.cert, &certificate.pem(), false)?;
        write(&issued.key, &key_pair.serialize_pem(), true)?;
        Ok(issued)
    }
}

/// A cluster's certificates: its CA, one certificate per node, and an unrelated CA with one
/// certificate valid for every node's addresses (so that only its issuer is wrong).
pub struct ClusterCerts {
    dir: PathBuf,
    pub ca: Ca,
    pub nodes: Vec<(u64, Issued)>,
    pub foreign_ca: Ca,
    pub foreign: Issued,
}

impl ClusterCerts {
    /// Writes into `dir`: `ca.pem` (+ `ca-key.pem`), `node<id>.pem` (+ `node<id>-key.pem`)
    /// for each of `nodes` (its id and the addresses it is reached at), `foreign-ca.pem` and
    /// `foreign.pem` (+ keys).
    pub fn generate(dir: &Path, nodes: &[(u64, Vec<IpAddr>)]) -> Result<ClusterCerts, TlsError> {
        fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let ca = Ca::new(dir, "ca")?;
        let mut issued = Vec::new();
        for (id, ips) in nodes {
            issued.push((*id, ca.issue(dir, &format!("node{id}"), ips)?));
        }
        let foreign_ca = Ca::new(dir, "foreign-ca")?;
        let every_ip: Vec<IpAddr> = nodes.iter().flat_map(|(_, ips)| ips.clone()).collect();
        let foreign = foreign_ca.issue(dir, "foreign", &every_ip)?;
        Ok(ClusterCerts {
            dir: dir.to_owned(),
            ca,
            nodes: issued,
            foreign_ca,
            foreign,
        })
    }

    /// Node `id`'s certificate.
    pub fn node(&self, id: u64) -> &Issued {
        self.nodes
            .iter()
            .find(|(n, _)| *n == id)
            .map(|(_, issued)| issued)
            .unwrap_or_else(|| panic!("no certificate for node {id}"))
    }

    /// A certificate from the cluster CA for a node added later.
    pub fn add_node(&mut self, id: u64, ips: &[IpAddr]) -> Result<&Issued, TlsError> {
        let issued = self.ca.issue(&self.dir, &format!("node{id}"), ips)?;
        self.nodes.retain(|(n, _)| *n != id);
        self.nodes.push((id, issued));
        Ok(&self.nodes.last().expect("just pushed").1)
    }
}

/// A TLS client configuration that trusts only the CA certificate(s) in the PEM file `ca`, and
/// presents `identity` when the server asks for a client certificate (a peer link), or none.
pub fn client_config(
    ca: &Path,
    identity: Option<&Issued>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(ca)? {
        roots.add(cert)?;
    }
    // An explicit provider: the process-wide default is ambiguous when more than one is built.
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots);
    let config = match identity {
        Some(id) => builder.with_client_auth_cert(read_certs(&id.cert)?, read_key(&id.key)?)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file, DER-encoded.
pub fn read_certs(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::pem::PemObject as _;
    let read_err = |reason: String| TlsError::Read {
        path: path.to_owned(),
        reason,
    };
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| read_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(read_err("no certificate in it".into()));
    }
    Ok(certs)
}

/// The private key in a PEM file.
pub fn read_key(path: &Path) -> Result<rustls_pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Valid from well before any test ran to well after: a test never meets an expiry.
fn validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2100, 1, 1);
}

fn write(path: &Path, contents: &str, private: bool) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;

    use super::*;
    use crate::Http;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A TLS server on 127.0.0.1 presenting `identity`; with `client_ca`, it demands a client
    /// certificate from that CA. Answers each of `connections` requests with 204; the result of
    /// each connection, as the server saw it, comes back from the thread.
    fn serve(
        identity: &Issued,
        client_ca: Option<&Path>,
        connections: usize,
    ) -> (String, std::thread::JoinHandle<Vec<Result<(), String>>>) {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(ca).unwrap() {
                    roots.add(cert).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(
            builder
                .with_single_cert(
                    read_certs(&identity.cert).unwrap(),
                    read_key(&identity.key).unwrap(),
                )
                .unwrap(),
        );
        let listener = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            (0..connections)
                .map(|_| {
                    let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
                    let conn =
                        rustls::ServerConnection::new(config.clone()).map_err(|e| e.to_string())?;
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        let n = tls.read(&mut buf).map_err(|e| e.to_string())?;
                        if n == 0 {
                            return Err("closed before a request".to_owned());
                        }
                        request.extend_from_slice(&buf[..n]);
                    }
                    tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                        .map_err(|e| e.to_string())?;
                    tls.conn.send_close_notify();
                    tls.flush().map_err(|e| e.to_string())
                })
                .collect()
        });
        (addr, handle)
    }

    /// One GET / over TLS with `config`, naming the server 127.0.0.1: the status line.
    fn get(addr: &str, config: Arc<rustls::ClientConfig>) -> Result<String, String> {
        let name = rustls_pki_types::ServerName::IpAddress(LOOPBACK.into());
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).map_err(|e| e.to_string())?;
        Ok(answer.lines().next().unwrap_or_default().to_owned())
    }

    /// The request failed in the TLS handshake, for the reason `why`.
    fn assert_refused(result: Result<crate::Response, crate::HttpError>, why: &str) {
        match result {
            Ok(r) => panic!("accepted, answered {}", r.status),
            Err(e) => assert!(e.to_string().contains(why), "expected {why:?}: {e}"),
        }
    }

    fn generate(dir: &Path) -> ClusterCerts {
        let ips = |i: u8| vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))];
        ClusterCerts::generate(dir, &[(1, ips(1)), (2, ips(2)), (3, ips(3))]).unwrap()
    }

    #[test]
    fn every_file_parses_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut certs = generate(dir.path());
        certs
            .add_node(4, &[IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4))])
            .unwrap();
        let mut issued: Vec<Issued> = certs.nodes.iter().map(|(_, i)| i.clone()).collect();
        issued.push(certs.foreign.clone());
        assert_eq!(issued.len(), 5);
        for ca in [&certs.ca, &certs.foreign_ca] {
            issued.push(Issued {
                cert: ca.cert.clone(),
                key: ca.key.clone(),
            });
        }
        for i in &issued {
            assert_eq!(
                read_certs(&i.cert).unwrap().len(),
                1,
                "{}",
                i.cert.display()
            );
            read_key(&i.key).unwrap();
            let mode = fs::metadata(&i.key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", i.key.display());
        }
        assert_eq!(certs.node(4).cert, dir.path().join("node4.pem"));
    }

    /// OpenSSL, which the Python and Node.js clients verify with, agrees: each node certificate
    /// chains to the cluster CA for both purposes and names its address; the foreign one does
    /// not chain to it.
    #[test]
    fn openssl_verifies_node_certificates_for_server_and_client_use() {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate(dir.path());
        let verify = |ca: &Path, cert: &Path, args: &[&str]| {
            let out = Command::new("openssl")
                .arg("verify")
                .args(args)
                .arg("-CAfile")
                .arg(ca)
                .arg(cert)
                .output()
                .expect("run openssl (Debian package openssl, installed by scripts/deps)");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
            )
        };
        for (id, node) in &certs.nodes {
            let ip = format!("127.0.0.{id}");
            for purpose in ["sslserver", "sslclient"] {
                let (ok, text) = verify(
                    &certs.ca.cert,
                    &node.cert,
                    &["-purpose", purpose, "-verify_ip", &ip],
                );
                assert!(ok, "node {id} as {purpose}: {text}");
            }
            let (ok, _) = verify(&certs.ca.cert, &node.cert, &["-verify_ip", "127.0.0.9"]);
            assert!(
                !ok,
                "node {id}'s certificate verified for an address it does not name"
            );
            let (ok, _) = verify(
                &certs.ca.cert,
                &node.cert,
                &["-verify_hostname", "localhost"],
            );
            assert!(ok, "node {id}'s certificate does not name localhost");
        }
        let (ok, _) = verify(&certs.ca.cert, &certs.foreign.cert, &[]);
        assert!(!ok, "the foreign certificate chains to the cluster CA");
        let (ok, text) = verify(&certs.foreign_ca.cert, &certs.foreign.cert, &[]);
        assert!(ok, "{text}");
    }

    #[test]
    fn https_trusts_the_given_ca_only() {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate(dir.path());

        let (addr, server) = serve(certs.node(1), None, 1);
        let r = Http::https(&addr, &certs.ca.cert)
            .unwrap()
            .get("/ping")
            .unwrap();
        assert_eq!(r.status, 204);
        assert_eq!(server.join().unwrap(), vec![Ok(())]);

        // The same server, but the client trusts another CA.
        let (addr, server) = serve(certs.node(1), None, 1);
        let e = Http::https(&addr, &certs.foreign_ca.cert)
            .unwrap()
            .get("/ping");
        assert_refused(e, "UnknownIssuer");
        assert!(server.join().unwrap()[0].is_err());

        // A certificate of the cluster CA, but for another address (node 2 is 127.0.0.2).
        let (addr, server) = serve(certs.node(2), None, 1);
        let e = Http::https(&addr, &certs.ca.cert).unwrap().get("/ping");
        assert_refused(e, "not valid for name");
        assert!(server.join().unwrap()[0].is_err());

        // The address is right but the issuer is not.
        let (addr, server) = serve(&certs.foreign, None, 1);
        let e = Http::https(&addr, &certs.ca.cert).unwrap().get("/ping");
        assert_refused(e, "UnknownIssuer");
        assert!(server.join().unwrap()[0].is_err());
    }

    #[test]
    fn url_takes_http_without_a_ca_and_https_with_one() {
        let ca = Path::new("/nonexistent/ca.pem");
        assert_eq!(Http::url("http://h:1", None).unwrap().base(), "http://h:1");
        assert!(Http::url("http://h:1", Some(ca)).is_err());
        assert!(Http::url("https://h:1", None).is_err());
        assert!(Http::url("ftp://h:1", None).is_err());
        // Reading the CA is part of building the client: a missing file is an error now.
        assert!(matches!(
            Http::url("https://h:1", Some(ca)),
            Err(TlsError::Read { .. })
        ));
    }

    /// As the peer links use them: a server that demands a client certificate from the cluster
    /// CA accepts a node's certificate, and refuses the foreign one and none at all.
    #[test]
    fn node_certificates_authenticate_clients_and_foreign_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let certs = generate(dir.path());
        let (addr, server) = serve(certs.node(1), Some(&certs.ca.cert), 3);

        let node2 = client_config(&certs.ca.cert, Some(certs.node(2))).unwrap();
        assert_eq!(get(&addr, node2).unwrap(), "HTTP/1.1 204 No Content");

        let foreign = client_config(&certs.ca.cert, Some(&certs.foreign)).unwrap();
        assert!(
            get(&addr, foreign).is_err(),
            "a foreign client certificate was accepted"
        );

        let anonymous = client_config(&certs.ca.cert, None).unwrap();
        assert!(
            get(&addr, anonymous).is_err(),
            "a client without a certificate was accepted"
        );

        let seen = server.join().unwrap();
        assert!(seen[0].is_ok(), "{seen:?}");
        assert!(
            seen[1].as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
            "{seen:?}"
        );
        assert!(
            seen[2]
                .as_ref()
                .is_err_and(|e| e.contains("no certificates")),
            "{seen:?}"
        );
    }
}
