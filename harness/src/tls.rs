//! Certificates for the tests and the fault runs: a cluster CA, certificates it signs for
//! nodes (API and peer links alike), and, for forgeries, any number of unrelated CAs.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::Error;

/// A certificate authority whose certificate is at [`Ca::path`].
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    path: PathBuf,
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its certificate written to `<dir>/<name>.pem`.
    pub fn new(dir: &Path, name: &str) -> Result<Ca, Error> {
        let key = KeyPair::generate().map_err(generation)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(generation)?;
        let path = dir.join(format!("{name}.pem"));
        write(&path, &cert.pem())?;
        Ok(Ca { cert, key, path })
    }

    /// The CA's certificate (PEM).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A certificate for `hosts` (IP addresses or DNS names), good for both server and client
    /// authentication, written to `<dir>/<name>.pem` and `<dir>/<name>-key.pem`.
    pub fn issue(&self, dir: &Path, name: &str, hosts: &[&str]) -> Result<Issued, Error> {
        let key = KeyPair::generate().map_err(generation)?;
        let sans: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
        let mut params = CertificateParams::new(sans).map_err(generation)?;
        params.distinguished_name = distinguished(name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(generation)?;
        let issued = Issued {
            certificate: dir.join(format!("{name}.pem")),
            private_key: dir.join(format!("{name}-key.pem")),
        };
        write(&issued.certificate, &cert.pem())?;
        write(&issued.private_key, &key.serialize_pem())?;
        Ok(issued)
    }
}

impl Issued {
    /// The gateway flags for mutual TLS on peer links with this certificate under `ca`.
    pub fn peer_flags(&self, ca: &Path) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--peer-ca".into(),
            path(ca),
            "--peer-certificate".into(),
            path(&self.certificate),
            "--peer-private-key".into(),
            path(&self.private_key),
        ]
    }

    /// The gateway flags for HTTPS on the API with this certificate.
    pub fn https_flags(&self) -> Vec<String> {
        vec![
            "--https-certificate".into(),
            self.certificate.display().to_string(),
            "--https-private-key".into(),
            self.private_key.display().to_string(),
        ]
    }
}

fn distinguished(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

fn generation(e: rcgen::Error) -> Error {
    Error::Io {
        action: "generate a test certificate".into(),
        source: std::io::Error::other(e),
    }
}

fn write(path: &Path, pem: &str) -> Result<(), Error> {
    std::fs::write(path, pem).map_err(Error::io(format!("write {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_are_pem_files_naming_their_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new(dir.path(), "ca").unwrap();
        let node = ca
            .issue(dir.path(), "node1", &["127.0.0.1", "localhost"])
            .unwrap();
        let ca_pem = std::fs::read_to_string(ca.path()).unwrap();
        assert!(ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let key = std::fs::read_to_string(&node.private_key).unwrap();
        assert!(key.contains("PRIVATE KEY"), "{key}");
        let cert = std::fs::read_to_string(&node.certificate).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        assert_ne!(cert, ca_pem);
        let flags = node.peer_flags(ca.path());
        assert_eq!(flags[0], "--peer-ca");
    }
}
