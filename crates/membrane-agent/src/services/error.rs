//! Errors of the services component.

use super::model::{BackendAddr, FrontendAddr, Owner};
use std::path::PathBuf;

/// A boxed error source from the datapath.
pub type Source = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong programming Services.
#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    /// A datapath map has no room: the Service stays as it was (or absent) while every
    /// Service already programmed keeps working.
    #[error("the datapath's {map} map is full: {owner} ({what}) is not programmed")]
    MapFull {
        /// The Service (or pod).
        owner: Owner,
        /// The map that is full ("services", "backends").
        map: &'static str,
        /// The frontend or backend that did not fit.
        what: String,
        /// The datapath's error.
        #[source]
        source: Source,
    },
    /// The datapath refused a write for another reason.
    #[error("datapath: {operation} {what} of {owner} failed")]
    Datapath {
        /// The Service (or pod).
        owner: Owner,
        /// What was being done.
        operation: &'static str,
        /// The frontend or backend.
        what: String,
        /// The datapath's error.
        #[source]
        source: Source,
    },
    /// Every reverse-NAT index (65535 frontends per node) is in use.
    #[error("no reverse-NAT index is left for frontend {frontend} of {owner}")]
    IndexesExhausted {
        /// The Service (or pod).
        owner: Owner,
        /// The frontend.
        frontend: FrontendAddr,
    },
    /// A backend the frontend needs could not be numbered or written.
    #[error("backend {backend} of {owner} is not in the datapath")]
    BackendMissing {
        /// The Service (or pod).
        owner: Owner,
        /// The backend.
        backend: BackendAddr,
    },
    /// Removing a frontend or backend that is no longer wanted failed; it is retried on
    /// the next pass.
    #[error("datapath: removing {what} failed")]
    Remove {
        /// The frontend or backend.
        what: String,
        /// The datapath's error.
        #[source]
        source: Source,
    },
    /// The state database (backend ids, reverse-NAT indexes) failed.
    #[error("the load-balancing numbers could not be stored")]
    Store {
        /// The store's error.
        #[from]
        source: crate::store::StoreError,
    },
    /// The socket-level load balancer could not be attached.
    #[error("cannot attach the socket-level load balancer to the cgroup {cgroup}")]
    SocketLb {
        /// The cgroup directory.
        cgroup: PathBuf,
        /// The datapath's error.
        #[source]
        source: Box<membrane_datapath::DatapathError>,
    },
}

impl ServicesError {
    /// True for a full map.
    pub fn is_map_full(&self) -> bool {
        matches!(self, ServicesError::MapFull { .. })
    }
}
