//! The local API: JSON over HTTP/1.1 on a unix socket, serving every path of
//! [`membrane_api::paths`] with the types of [`membrane_api`].

mod error;
mod routes;

pub use error::ApiFailure;
pub use routes::router;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// Permissions of the socket: root and the socket's group may call the agent.
const SOCKET_MODE: u32 = 0o660;

/// Errors of setting up or running the API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The socket's directory could not be created.
    #[error("cannot create the socket directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another agent answers on the socket.
    #[error("another agent is already serving on {path}")]
    InUse {
        /// The socket.
        path: PathBuf,
    },
    /// Something other than a socket is in the way.
    #[error("{path} exists and is not a socket")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket could not be set up.
    #[error("cannot {operation} the socket {path}")]
    Socket {
        /// What failed.
        operation: &'static str,
        /// The socket.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving the local API on {path} failed")]
    Serve {
        /// The socket.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Binds the API socket at `path`: creates its directory, removes a stale socket left by
/// an agent that died (refusing if one still answers), and restricts it to mode 0660.
pub async fn bind(path: &Path) -> Result<UnixListener, ApiError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ApiError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ApiError::NotASocket {
                path: path.to_path_buf(),
            });
        }
        if UnixStream::connect(path).await.is_ok() {
            return Err(ApiError::InUse {
                path: path.to_path_buf(),
            });
        }
        std::fs::remove_file(path).map_err(|source| ApiError::Socket {
            operation: "remove the stale",
            path: path.to_path_buf(),
            source,
        })?;
    }
    let socket_error = |operation| {
        move |source| ApiError::Socket {
            operation,
            path: path.to_path_buf(),
            source,
        }
    };
    let listener = UnixListener::bind(path).map_err(socket_error("bind"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(socket_error("set the permissions of"))?;
    Ok(listener)
}

/// Serves `router` on `listener` until `token` is cancelled, then removes the socket.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    router: axum::Router,
    token: CancellationToken,
) -> Result<(), ApiError> {
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(token.cancelled_owned())
        .await
        .map_err(|source| ApiError::Serve {
            path: path.clone(),
            source,
        });
    if let Err(error) = std::fs::remove_file(&path) {
        tracing::warn!(socket = %path.display(), %error, "could not remove the API socket");
    }
    served
}

#[cfg(test)]
mod tests;
