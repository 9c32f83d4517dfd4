//! The cluster side of the agent: the kvstore it shares with the other nodes, the node's
//! registration and pod CIDRs, and typed caches (reflectors) of the nodes and objects
//! stored there, which the local API and other components read.

pub mod kvstore;
pub mod objects;
pub mod pod_cidrs;
pub mod reflector;
pub mod registration;

use membrane_api::NodeInfo;
use membrane_model::Object;
use membrane_state::{Store, keys};
use reflector::Reflector;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Errors of the cluster side.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kvstore could not be opened or used.
    #[error("kvstore ({store}): {operation} failed")]
    Store {
        /// The store, described.
        store: String,
        /// What was being done.
        operation: &'static str,
        /// The store's error.
        #[source]
        source: membrane_state::StoreError,
    },
    /// The persisted pod CIDRs could not be read or written.
    #[error("cannot {operation} the pod CIDR file {path}")]
    PodCidrFile {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The persisted pod CIDRs do not decode.
    #[error("the pod CIDR file {path} is corrupt")]
    CorruptPodCidrFile {
        /// The file.
        path: std::path::PathBuf,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// A pool has no pod CIDR of the configured size.
    #[error("the cluster pool {pool} has no /{mask} subnets")]
    BadPool {
        /// The pool.
        pool: String,
        /// The mask size.
        mask: u8,
    },
}

/// The kvstore and the caches the agent keeps of it.
pub struct Cluster {
    store: Arc<dyn Store>,
    nodes: Reflector<NodeInfo>,
    objects: Reflector<Object>,
}

impl Cluster {
    /// The caches of `store`, empty until [`Cluster::run`] fills them.
    pub fn new(store: Arc<dyn Store>) -> Cluster {
        Cluster {
            nodes: Reflector::new(keys::NODES, decode_node),
            objects: Reflector::new(keys::OBJECTS, objects::decode),
            store,
        }
    }

    /// The kvstore.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Every registered node, by name.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.values()
    }

    /// A receiver marked changed whenever the node list changes.
    pub fn node_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.nodes.subscribe()
    }

    /// The cache of stored objects, by store key.
    pub fn objects(&self) -> &Reflector<Object> {
        &self.objects
    }

    /// Keeps the caches in step with the kvstore until `token` is cancelled.
    pub async fn run(&self, token: CancellationToken) {
        tokio::join!(
            self.nodes.run(self.store.as_ref(), token.clone()),
            self.objects.run(self.store.as_ref(), token),
        );
    }
}

fn decode_node(_key: &str, value: &[u8]) -> Result<NodeInfo, reflector::DecodeError> {
    Ok(serde_json::from_slice(value)?)
}
