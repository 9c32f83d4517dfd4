//! A client for the agent's local API over its unix socket.

use crate::types::{ApiErrorBody, ErrorKind};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;

/// Errors of a local API call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("the membrane agent is not running (no socket at {path}): start membrane-agent")]
    AgentNotRunning {
        /// The socket path that was tried.
        path: PathBuf,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to the agent at {path} failed")]
    Transport {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: hyper::Error,
    },
    /// The agent answered with an error.
    #[error("the agent refused {request}: {message}")]
    Api {
        /// The request path.
        request: String,
        /// The HTTP status.
        status: u16,
        /// The error kind.
        kind: ErrorKind,
        /// The agent's message.
        message: String,
    },
    /// A body could not be encoded or decoded.
    #[error("bad JSON in the exchange for {request}")]
    Json {
        /// The request path.
        request: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// The API error kind, if the agent answered with one.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Api { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// A handle on the agent's socket; each call opens one connection.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the agent listening on `socket`.
    pub fn new(socket: impl AsRef<Path>) -> Self {
        Client {
            socket: socket.as_ref().to_path_buf(),
        }
    }

    /// The socket path this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET path`, decoding the JSON answer.
    pub async fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R, ClientError> {
        self.call(Method::GET, path, Bytes::new()).await
    }

    /// `POST path` with a JSON body, decoding the JSON answer.
    pub async fn post<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, ClientError> {
        let body = serde_json::to_vec(body).map_err(|source| ClientError::Json {
            request: path.to_string(),
            source,
        })?;
        self.call(Method::POST, path, Bytes::from(body)).await
    }

    async fn call<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<R, ClientError> {
        let stream = UnixStream::connect(&self.socket).await.map_err(|source| {
            ClientError::AgentNotRunning {
                path: self.socket.clone(),
                source,
            }
        })?;
        let transport = |source| ClientError::Transport {
            path: self.socket.clone(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(transport)?;
        let driver = tokio::spawn(conn);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "membrane-agent")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("static request parts are valid");
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(transport)?
            .to_bytes();
        driver.abort();
        let json_err = |source| ClientError::Json {
            request: path.to_string(),
            source,
        };
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(json_err)
        } else {
            let body: ApiErrorBody = serde_json::from_slice(&bytes).unwrap_or(ApiErrorBody {
                kind: if status == StatusCode::NOT_FOUND {
                    ErrorKind::NotFound
                } else {
                    ErrorKind::Internal
                },
                message: String::from_utf8_lossy(&bytes).into_owned(),
            });
            Err(ClientError::Api {
                request: path.to_string(),
                status: status.as_u16(),
                kind: body.kind,
                message: body.message,
            })
        }
    }
}
