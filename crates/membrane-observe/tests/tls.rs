//! TLS and mutual TLS of the Observer server, with certificates made for the test and a
//! unix socket as transport (the same TLS layer as on TCP).

mod support;

use membrane_observe::api::observer::ServerStatusRequest;
use membrane_observe::client::{ClientTls, ServerAddress, connect};
use membrane_observe::server::{TlsFiles, tls_config};
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::path::{Path, PathBuf};
use support::Harness;

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for `observer.membrane` and a client certificate.
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "membrane test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_cert.pem());
        for (name, san) in [
            ("server", "observer.membrane"),
            ("client", "client.membrane"),
        ] {
            let key = KeyPair::generate().unwrap();
            let params = CertificateParams::new(vec![san.to_string()]).unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn client_tls(pki: &Pki, with_identity: bool) -> ClientTls {
    ClientTls {
        ca: Some(pki.path("ca.pem")),
        identity: with_identity.then(|| (pki.path("client.pem"), pki.path("client-key.pem"))),
        server_name: Some("observer.membrane".to_string()),
    }
}

async fn status_ok(socket: &Path, tls: Option<&ClientTls>) -> bool {
    let Ok(mut client) = connect(&ServerAddress::Unix(socket.to_path_buf()), tls).await else {
        return false;
    };
    client.server_status(ServerStatusRequest {}).await.is_ok()
}

#[tokio::test]
async fn tls_server_answers_clients_that_trust_its_ca_and_refuses_plaintext() {
    let pki = Pki::new();
    let tls = tls_config(&TlsFiles {
        cert: pki.path("server.pem"),
        key: pki.path("server-key.pem"),
        client_ca: None,
    })
    .unwrap();
    let h = Harness::start_with_tls(10, 8, Some(tls)).await;
    assert!(status_ok(&h.socket, Some(&client_tls(&pki, false))).await);
    assert!(!status_ok(&h.socket, None).await);
}

#[tokio::test]
async fn mutual_tls_server_refuses_clients_without_a_certificate() {
    let pki = Pki::new();
    let tls = tls_config(&TlsFiles {
        cert: pki.path("server.pem"),
        key: pki.path("server-key.pem"),
        client_ca: Some(pki.path("ca.pem")),
    })
    .unwrap();
    let h = Harness::start_with_tls(10, 8, Some(tls)).await;
    assert!(status_ok(&h.socket, Some(&client_tls(&pki, true))).await);
    assert!(!status_ok(&h.socket, Some(&client_tls(&pki, false))).await);
}

#[test]
fn missing_certificate_files_are_named_in_the_error() {
    let error = tls_config(&TlsFiles {
        cert: PathBuf::from("/nonexistent/cert.pem"),
        key: PathBuf::from("/nonexistent/key.pem"),
        client_ca: None,
    })
    .unwrap_err();
    assert!(
        error.to_string().contains("/nonexistent/cert.pem"),
        "{error}"
    );
}
