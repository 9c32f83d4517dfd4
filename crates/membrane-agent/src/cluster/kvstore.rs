//! Opens the configured kvstore: the embedded store in the state directory, or etcd.

use super::ClusterError;
use crate::config::{AgentConfig, KvstoreBackend};
use membrane_state::{EmbeddedStore, EtcdStore, Store};
use std::sync::Arc;

/// Opens the store `config` names. An etcd that does not answer is reported clearly and
/// not waited for: the store keeps retrying in the background, and everything that needs
/// it waits or serves what it has.
pub async fn open(config: &AgentConfig) -> Result<Arc<dyn Store>, ClusterError> {
    match config.kvstore.backend {
        KvstoreBackend::Embedded => {
            let store = EmbeddedStore::open(&config.state.dir)
                .await
                .map_err(|source| ClusterError::Store {
                    store: format!("embedded in {}", config.state.dir.display()),
                    operation: "opening",
                    source,
                })?;
            tracing::info!(path = %store.path().display(), "kvstore: embedded");
            Ok(Arc::new(store))
        }
        KvstoreBackend::Etcd => {
            let endpoints = &config.kvstore.endpoints;
            let store =
                EtcdStore::connect(endpoints)
                    .await
                    .map_err(|source| ClusterError::Store {
                        store: format!("etcd at {}", endpoints.join(",")),
                        operation: "connecting",
                        source,
                    })?;
            match store.check().await {
                Ok(()) => {
                    tracing::info!(endpoints = %endpoints.join(","), "kvstore: etcd is reachable")
                }
                Err(error) => tracing::error!(
                    error = %crate::agent::chain(&error),
                    "kvstore: etcd is unreachable at start; the agent serves its node and keeps retrying with backoff"
                ),
            }
            Ok(Arc::new(store))
        }
    }
}
