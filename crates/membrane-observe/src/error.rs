//! Errors of the observer, one enum per subsystem.

use std::path::PathBuf;

/// A datapath event that cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The event names an address family the decoder does not know.
    #[error("flow event with unknown address family {family}")]
    Family {
        /// The family byte.
        family: u8,
    },
    /// The event names a kind the decoder does not know.
    #[error("flow event of unknown kind {kind}")]
    Kind {
        /// The kind byte.
        kind: u8,
    },
    /// The monotonic clock could not be read.
    #[error("cannot read the monotonic clock")]
    Clock {
        /// The system error.
        #[source]
        source: nix::Error,
    },
}

/// A flow filter that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// A field holds a value that does not parse.
    #[error("invalid {field} filter {value:?}: {reason}")]
    Invalid {
        /// The filter field (`source_ip`).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A field Membrane cannot evaluate.
    #[error("the {field} filter is not supported by Membrane")]
    Unsupported {
        /// The filter field.
        field: &'static str,
    },
}

/// A GetFlows request that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// One of the filters is invalid.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// `first` and `follow` were both set.
    #[error("first and follow cannot be combined")]
    FirstWithFollow,
    /// A timestamp is out of range.
    #[error("{field} is not a valid timestamp")]
    Timestamp {
        /// `since` or `until`.
        field: &'static str,
    },
}

/// The Observer server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A TLS file could not be read.
    #[error("cannot read {what} {}", .path.display())]
    TlsFile {
        /// What the file is (`certificate`).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The unix socket could not be bound.
    #[error("cannot listen on unix socket {}", .path.display())]
    BindUnix {
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TCP address could not be bound.
    #[error("cannot listen on {address}")]
    BindTcp {
        /// The address.
        address: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration was refused.
    #[error("invalid TLS configuration")]
    Tls {
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The gRPC server failed.
    #[error("the Observer gRPC server failed")]
    Transport {
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
}
