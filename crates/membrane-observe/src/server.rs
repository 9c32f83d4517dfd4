//! Serving the Observer API on a unix socket and on TCP (port 4244 by default), either
//! with optional TLS or mutual TLS, each with the
//! standard `grpc.health.v1.Health` service reporting the Observer as serving.

use crate::api::observer::observer_server::ObserverServer;
use crate::error::ServeError;
use crate::service::ObserverService;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// Hubble's default Observer port.
pub const DEFAULT_PORT: u16 = 4244;

/// Certificate files for TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM).
    pub cert: PathBuf,
    /// The server's private key (PEM).
    pub key: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to: set for mutual TLS.
    pub client_ca: Option<PathBuf>,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::TlsFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the certificate files into a TLS configuration.
pub fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, ServeError> {
    let identity = Identity::from_pem(
        read("certificate", &files.cert)?,
        read("private key", &files.key)?,
    );
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read("client CA", ca)?));
    }
    Ok(config)
}

/// Binds the unix socket, replacing a stale socket file left by a previous run.
pub fn bind_unix(path: &Path) -> Result<UnixListener, ServeError> {
    let error = |source| ServeError::BindUnix {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
    }
    UnixListener::bind(path).map_err(error)
}

/// Binds the TCP address.
pub async fn bind_tcp(address: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::BindTcp { address, source })
}

async fn router(
    service: Arc<ObserverService>,
    tls: Option<ServerTlsConfig>,
) -> Result<tonic::transport::server::Router, ServeError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<ObserverServer<Arc<ObserverService>>>()
        .await;
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|source| ServeError::Tls { source })?;
    }
    Ok(builder
        .add_service(health)
        .add_service(ObserverServer::from_arc(service)))
}

/// Serves connections from `incoming` (with TLS when configured) until `token` is
/// cancelled.
pub async fn serve<I, IO, IE>(
    incoming: I,
    tls: Option<ServerTlsConfig>,
    service: Arc<ObserverService>,
    token: CancellationToken,
) -> Result<(), ServeError>
where
    I: futures::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    router(service, tls)
        .await?
        .serve_with_incoming_shutdown(incoming, token.cancelled_owned())
        .await
        .map_err(|source| ServeError::Transport { source })
}

/// Serves on a bound unix socket (TLS optional) until `token` is cancelled.
pub async fn serve_unix(
    listener: UnixListener,
    tls: Option<ServerTlsConfig>,
    service: Arc<ObserverService>,
    token: CancellationToken,
) -> Result<(), ServeError> {
    serve(UnixListenerStream::new(listener), tls, service, token).await
}

/// Serves on a bound TCP listener (TLS optional) until `token` is cancelled.
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<ServerTlsConfig>,
    service: Arc<ObserverService>,
    token: CancellationToken,
) -> Result<(), ServeError> {
    serve(TcpListenerStream::new(listener), tls, service, token).await
}

/// Where the agent serves the Observer API on its node by default.
pub const DEFAULT_SOCKET: &str = "/var/run/membrane/observer.sock";
