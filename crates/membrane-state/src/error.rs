//! The errors of every store operation, whatever the backend.

use crate::store::{LeaseId, Precondition, Revision};
use std::path::PathBuf;

/// Errors of the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A precondition did not hold, so nothing was written.
    #[error("{key}: expected {expected}, found {}", describe_found(*.found))]
    Conflict {
        /// The key whose precondition failed.
        key: String,
        /// What the caller required.
        expected: Precondition,
        /// The key's modification revision, or `None` when it is absent.
        found: Option<Revision>,
    },
    /// The store cannot be reached; the call was not carried out.
    #[error("the etcd cluster at {} is unreachable: {reason}", endpoints.join(","))]
    Unavailable {
        /// The endpoints tried.
        endpoints: Vec<String>,
        /// Why the last attempt failed.
        reason: String,
    },
    /// etcd refused a request for a reason other than reachability.
    #[error("etcd at {}: {operation} failed", endpoints.join(","))]
    Etcd {
        /// The endpoints.
        endpoints: Vec<String>,
        /// What was being done.
        operation: &'static str,
        /// The client's error.
        #[source]
        source: Box<etcd_client::Error>,
    },
    /// The history asked for was compacted away: re-list and watch from the list's revision.
    #[error("revision {requested} under {prefix} is compacted (oldest kept: {oldest})")]
    Compacted {
        /// The watched prefix.
        prefix: String,
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        oldest: Revision,
    },
    /// A revision newer than the store's was asked for.
    #[error("revision {requested} is in the future (the store is at {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The store's revision.
        current: Revision,
    },
    /// The lease does not exist (it expired or was revoked).
    #[error("lease {lease} does not exist (expired or revoked)")]
    LeaseNotFound {
        /// The lease.
        lease: LeaseId,
    },
    /// A transaction names the same key twice.
    #[error("the transaction changes {key} more than once")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A key or value is not acceptable to the store.
    #[error("{what}: {reason}")]
    Invalid {
        /// What was refused.
        what: String,
        /// Why.
        reason: &'static str,
    },
    /// Every candidate of an allocation is taken.
    #[error("no free key left under {prefix} ({tried} candidates tried)")]
    Exhausted {
        /// The prefix allocated from.
        prefix: String,
        /// How many candidates were tried.
        tried: usize,
    },
    /// Racing writers kept changing a key faster than a call could act on it.
    #[error("{key} kept changing under {attempts} attempts")]
    Contended {
        /// The key.
        key: String,
        /// How many attempts were made.
        attempts: usize,
    },
    /// The embedded store's directory could not be created.
    #[error("cannot create the state directory {path}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The embedded database could not be opened, read or written.
    #[error("embedded store {path}: {operation} failed")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The redb error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A record of the embedded store's history does not decode.
    #[error("embedded store {path}: the history record of revision {revision} is corrupt")]
    CorruptHistory {
        /// The database file.
        path: PathBuf,
        /// The revision.
        revision: Revision,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A blocking task of the embedded store panicked or was cancelled.
    #[error("embedded store {path}: a worker task failed")]
    Worker {
        /// The database file.
        path: PathBuf,
        /// The join error.
        #[source]
        source: tokio::task::JoinError,
    },
}

fn describe_found(found: Option<Revision>) -> String {
    match found {
        Some(revision) => format!("it at revision {revision}"),
        None => "it absent".to_string(),
    }
}

impl StoreError {
    /// True when the store could not be reached, so the same call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}
