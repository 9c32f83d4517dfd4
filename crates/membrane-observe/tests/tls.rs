//! TLS and mutual TLS of the Observer server, with certificates made for the test and a
//! unix socket as transport (the same TLS layer as on TCP).

mod support;

use membrane_observe::api::observer::ServerStatusRequest;
use membrane_observe::client::{ClientTls, ServerAddress, connect};
use membrane_observe::server::{TlsFiles, tls_config};
use membrane_test_pki::Pki;
use std::path::{Path, PathBuf};
use support::Harness;

/// The name the server certificate is made for.
const SERVER_NAME: &str = "observer.membrane";

fn client_tls(pki: &Pki, with_identity: bool) -> ClientTls {
    ClientTls {
        ca: Some(pki.ca()),
        identity: with_identity.then(|| (pki.client_cert(), pki.client_key())),
        server_name: Some(SERVER_NAME.to_string()),
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
    let pki = Pki::new(SERVER_NAME);
    let tls = tls_config(&TlsFiles {
        cert: pki.server_cert(),
        key: pki.server_key(),
        client_ca: None,
    })
    .unwrap();
    let h = Harness::start_with_tls(10, 8, Some(tls)).await;
    assert!(status_ok(&h.socket, Some(&client_tls(&pki, false))).await);
    assert!(!status_ok(&h.socket, None).await);
}

#[tokio::test]
async fn mutual_tls_server_refuses_clients_without_a_certificate() {
    let pki = Pki::new(SERVER_NAME);
    let tls = tls_config(&TlsFiles {
        cert: pki.server_cert(),
        key: pki.server_key(),
        client_ca: Some(pki.ca()),
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
