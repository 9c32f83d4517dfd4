//! Makes a certificate authority, a server certificate and a client certificate signed
//! by it, as PEM files in a temporary directory, for tests of TLS and mutual TLS.
//!
//! Test support only: no product crate depends on it (their tests do).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};

/// The name the client certificate is made for.
pub const CLIENT_NAME: &str = "client.membrane";

/// A CA and two certificates it signed, removed with the value.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A new CA, a server certificate for `server_name` and a client certificate for
    /// [`CLIENT_NAME`], each with its key.
    ///
    /// # Panics
    ///
    /// When a key or certificate cannot be made or written.
    pub fn new(server_name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("a temporary directory for the certificates");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).expect("CA certificate parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "membrane test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("a self-signed CA");
        let issuer = Issuer::new(ca_params, ca_key);
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()))
        };
        write("ca.pem", ca_cert.pem());
        for (name, san) in [("server", server_name), ("client", CLIENT_NAME)] {
            let key = KeyPair::generate().expect("a certificate key");
            let cert = CertificateParams::new(vec![san.to_string()])
                .expect("certificate parameters")
                .signed_by(&key, &issuer)
                .unwrap_or_else(|e| panic!("signing the {name} certificate for {san}: {e}"));
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    /// The directory holding the files (other test files may go there too).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// The server certificate's key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server-key.pem")
    }

    /// The client certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.path().join("client.pem")
    }

    /// The client certificate's key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client-key.pem")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_written_and_gone_with_the_value() {
        let pki = Pki::new("observer.membrane");
        let files = [
            pki.ca(),
            pki.server_cert(),
            pki.server_key(),
            pki.client_cert(),
            pki.client_key(),
        ];
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(
                text.starts_with("-----BEGIN "),
                "{}: {text}",
                file.display()
            );
        }
        assert_ne!(
            std::fs::read(pki.server_cert()).unwrap(),
            std::fs::read(pki.client_cert()).unwrap()
        );
        drop(pki);
        assert!(files.iter().all(|f| !f.exists()));
    }
}
