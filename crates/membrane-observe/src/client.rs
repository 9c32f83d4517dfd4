//! The client side: connecting to an Observer server on a unix socket or over TCP, with
//! TLS or mutual TLS when asked.

use crate::api::observer::observer_client::ObserverClient;
use hyper_util::rt::TokioIo;
use std::path::PathBuf;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity, Uri};

/// Where the server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerAddress {
    /// A unix socket path (`/var/run/membrane/observer.sock`, `unix:///...`).
    Unix(PathBuf),
    /// `host:port` over TCP.
    Tcp(String),
}

impl ServerAddress {
    /// Parses `unix://PATH`, a path (anything with a `/`), or `host:port`.
    pub fn parse(text: &str) -> ServerAddress {
        if let Some(path) = text.strip_prefix("unix://") {
            ServerAddress::Unix(PathBuf::from(path))
        } else if text.contains('/') {
            ServerAddress::Unix(PathBuf::from(text))
        } else {
            ServerAddress::Tcp(text.to_string())
        }
    }
}

/// TLS settings of a TCP connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificates (PEM) the server's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Name to expect in the server's certificate, if not the host.
    pub server_name: Option<String>,
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A TLS file could not be read.
    #[error("cannot read {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The address or TLS settings were refused.
    #[error("invalid server address or TLS settings for {address}")]
    Settings {
        /// The address.
        address: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// Nothing answered.
    #[error("cannot connect to the Observer at {address}")]
    Connect {
        /// The address.
        address: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
}

fn read(path: &PathBuf) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|source| ClientError::Read {
        path: path.clone(),
        source,
    })
}

/// Connects to the Observer at `address`.
pub async fn connect(
    address: &ServerAddress,
    tls: Option<&ClientTls>,
) -> Result<ObserverClient<Channel>, ClientError> {
    Ok(ObserverClient::new(channel(address, tls).await?))
}

/// A gRPC channel to the server at `address` (for the Observer or the Health service).
pub async fn channel(
    address: &ServerAddress,
    tls: Option<&ClientTls>,
) -> Result<Channel, ClientError> {
    let (uri, shown) = match (address, tls.is_some()) {
        // The authority of a unix socket URI is not dialled; with TLS it is the name
        // the server certificate must carry unless a server name is given.
        (ServerAddress::Unix(path), false) => {
            ("http://localhost".to_string(), path.display().to_string())
        }
        (ServerAddress::Unix(path), true) => {
            ("https://localhost".to_string(), path.display().to_string())
        }
        (ServerAddress::Tcp(host_port), false) => {
            (format!("http://{host_port}"), host_port.clone())
        }
        (ServerAddress::Tcp(host_port), true) => {
            (format!("https://{host_port}"), host_port.clone())
        }
    };
    let settings = |source| ClientError::Settings {
        address: shown.clone(),
        source,
    };
    let mut endpoint = Endpoint::from_shared(uri).map_err(settings)?;
    if let Some(tls) = tls {
        let mut config = ClientTlsConfig::new();
        if let Some(ca) = &tls.ca {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let Some((cert, key)) = &tls.identity {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(name) = &tls.server_name {
            config = config.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(config).map_err(settings)?;
    }
    let connected = match address {
        ServerAddress::Unix(path) => {
            let path = path.clone();
            endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
        ServerAddress::Tcp(_) => endpoint.connect().await,
    };
    connected.map_err(|source| ClientError::Connect {
        address: shown,
        source,
    })
}
