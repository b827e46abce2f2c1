//! TLS, from PEM files: HTTPS on the API, and mutual TLS under a cluster CA on peer links.
//!
//! Both are loaded before anything listens, so a bad file stops the start with its name, and
//! both are loaded again on SIGHUP: connections made after it use the new files, open ones
//! keep the session they have. A reload that fails leaves the working configuration in place.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the {what} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("the {what} {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { what: &'static str, path: PathBuf },
    #[error("the {what} {} is not valid PEM: {detail}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("the certificate {} and the private key {} cannot be used together: {source}", cert.display(), key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("the CA file {}: {detail}", path.display())]
    Ca { path: PathBuf, detail: String },
}

/// The API's certificate and key.
#[derive(Debug, Clone)]
pub struct ApiFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// A node's credentials on peer links: the cluster CA, and its own certificate signed by it.
#[derive(Debug, Clone)]
pub struct PeerFiles {
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// HTTPS on the API.
pub struct ApiTls {
    files: ApiFiles,
    config: RwLock<Arc<ServerConfig>>,
}

impl ApiTls {
    pub fn load(files: ApiFiles) -> Result<Arc<ApiTls>, TlsError> {
        let config = RwLock::new(api_config(&files)?);
        Ok(Arc::new(ApiTls { files, config }))
    }

    /// The acceptor for a new connection, with the files as last loaded.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.read().clone())
    }

    fn reload(&self) -> Result<(), TlsError> {
        *self.config.write() = api_config(&self.files)?;
        Ok(())
    }
}

fn api_config(files: &ApiFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = pair(&files.certificate, &files.private_key, "certificate")?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|source| TlsError::Pair {
            cert: files.certificate.clone(),
            key: files.private_key.clone(),
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How peer connections are secured.
pub enum PeerSecurity {
    /// Mutual TLS: both sides present a certificate signed by the cluster CA.
    Tls(Arc<PeerTls>),
    /// Plain TCP, by explicit choice: anyone who reaches the peer port is a peer.
    Plaintext,
}

/// A peer connection, secured or not.
pub trait PeerIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> PeerIo for T {}
pub type PeerStream = Box<dyn PeerIo>;

impl PeerSecurity {
    /// The server side of a connection a peer opened: the handshake, which checks the
    /// peer's certificate against the cluster CA, done.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<PeerStream> {
        match self {
            PeerSecurity::Plaintext => Ok(Box::new(tcp)),
            PeerSecurity::Tls(tls) => {
                let acceptor = TlsAcceptor::from(tls.server.read().clone());
                Ok(Box::new(acceptor.accept(tcp).await?))
            }
        }
    }

    /// The client side of a connection to the peer at `addr` (`host:port`, the name its
    /// certificate must carry).
    pub async fn connect(&self, tcp: TcpStream, addr: &str) -> std::io::Result<PeerStream> {
        match self {
            PeerSecurity::Plaintext => Ok(Box::new(tcp)),
            PeerSecurity::Tls(tls) => {
                let connector = TlsConnector::from(tls.client.read().clone());
                let name = server_name(addr)?;
                Ok(Box::new(connector.connect(name, tcp).await?))
            }
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, PeerSecurity::Tls(_))
    }
}

/// The host of `host:port` (`[v6]:port` included) as the name a certificate is checked for.
fn server_name(addr: &str) -> std::io::Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("peer address {addr:?}: {e}"),
        )
    })
}

/// Mutual TLS on peer links.
pub struct PeerTls {
    files: PeerFiles,
    server: RwLock<Arc<ServerConfig>>,
    client: RwLock<Arc<ClientConfig>>,
}

impl PeerTls {
    pub fn load(files: PeerFiles) -> Result<Arc<PeerTls>, TlsError> {
        let (server, client) = peer_configs(&files)?;
        Ok(Arc::new(PeerTls {
            files,
            server: RwLock::new(server),
            client: RwLock::new(client),
        }))
    }

    fn reload(&self) -> Result<(), TlsError> {
        let (server, client) = peer_configs(&self.files)?;
        *self.server.write() = server;
        *self.client.write() = client;
        Ok(())
    }
}

fn peer_configs(files: &PeerFiles) -> Result<(Arc<ServerConfig>, Arc<ClientConfig>), TlsError> {
    let ca_certs = certificates("peer CA file", &files.ca)?;
    let mut roots = RootCertStore::empty();
    for cert in ca_certs {
        roots.add(cert).map_err(|e| TlsError::Ca {
            path: files.ca.clone(),
            detail: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let roots = Arc::new(roots);
    let (certs, key) = pair(&files.certificate, &files.private_key, "peer certificate")?;
    let pair_error = |source| TlsError::Pair {
        cert: files.certificate.clone(),
        key: files.private_key.clone(),
        source,
    };

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .build()
        .map_err(|e| TlsError::Ca {
            path: files.ca.clone(),
            detail: e.to_string(),
        })?;
    let server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs.clone(), key.clone_key())
        .map_err(pair_error)?;
    let client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(pair_error)?;
    Ok((Arc::new(server), Arc::new(client)))
}

/// A client that trusts only the CA in `ca` (for `gateway members` against an HTTPS node).
pub fn client_trusting(ca: &Path) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("CA file", ca)? {
        roots.add(cert).map_err(|e| TlsError::Ca {
            path: ca.to_owned(),
            detail: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key, both read.
fn pair(
    cert: &Path,
    key: &Path,
    what: &'static str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = certificates(what, cert)?;
    let bytes = read(private_key_what(what), key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            what: private_key_what(what),
            path: key.to_owned(),
        },
        other => TlsError::Pem {
            what: private_key_what(what),
            path: key.to_owned(),
            detail: other.to_string(),
        },
    })?;
    Ok((certs, key_der))
}

fn private_key_what(what: &'static str) -> &'static str {
    if what.starts_with("peer") {
        "peer private key"
    } else {
        "private key"
    }
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what,
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Loads the API's and the peers' files again on every SIGHUP, until the process ends.
pub async fn reload_on_sighup(api: Option<Arc<ApiTls>>, peers: Option<Arc<PeerTls>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP: certificates will not be reloaded");
            return;
        }
    };
    while hup.recv().await.is_some() {
        if let Some(api) = &api {
            match api.reload() {
                Ok(()) => tracing::info!(certificate = %api.files.certificate.display(),
                    "reloaded the API certificate and key"),
                Err(e) => tracing::error!(error = %e,
                    "reloading the API certificate failed; the previous one stays in use"),
            }
        }
        if let Some(peers) = &peers {
            match peers.reload() {
                Ok(()) => tracing::info!(certificate = %peers.files.certificate.display(),
                    "reloaded the peer CA, certificate and key"),
                Err(e) => tracing::error!(error = %e,
                    "reloading the peer certificates failed; the previous ones stay in use"),
            }
        }
    }
}
