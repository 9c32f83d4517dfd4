//! The node's registration: its record under `/membrane/v1/nodes/<name>`, attached to a
//! lease the agent keeps alive, so that a node whose agent is gone disappears from every
//! other node's list once the lease expires.

use membrane_api::NodeInfo;
use membrane_state::{Backoff, LeaseId, Precondition, Store, StoreError, keys};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Registers `node` with a lease of `ttl` and keeps it alive until `token` is cancelled;
/// re-registers when the lease was lost (expired during an outage), and retries with
/// backoff while the store is unreachable. The record is left to expire on shutdown, so a
/// restarting agent does not make its node blink out of the others' lists.
pub async fn run(store: &dyn Store, node: NodeInfo, ttl: Duration, token: CancellationToken) {
    let key = keys::node(&node.name);
    let value = serde_json::to_vec(&node).expect("a node record encodes");
    let mut lease: Option<LeaseId> = None;
    let mut backoff = Backoff::new();
    let mut failing = false;
    loop {
        let step = match lease {
            None => register(store, &key, &value, ttl).await.map(Some),
            Some(id) => match store.keep_alive(id).await {
                Ok(_) => Ok(Some(id)),
                Err(StoreError::LeaseNotFound { .. }) => {
                    tracing::warn!(lease = %id, "the node's lease expired; registering again");
                    Ok(None)
                }
                Err(error) => Err(error),
            },
        };
        let wait = match step {
            Ok(held) => {
                if failing {
                    tracing::info!(node = %node.name, "node registration is current again");
                    failing = false;
                }
                backoff.reset();
                lease = held;
                if held.is_some() {
                    ttl / 3
                } else {
                    Duration::ZERO
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(node = %node.name, error = %crate::agent::chain(&error), "cannot keep the node registered; retrying");
                    failing = true;
                }
                backoff.next_delay()
            }
        };
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

async fn register(
    store: &dyn Store,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> Result<LeaseId, StoreError> {
    let lease = store.grant_lease(ttl).await?;
    store
        .put_with_lease(key, value.to_vec(), Precondition::Any, lease)
        .await?;
    tracing::info!(key, %lease, ?ttl, "registered the node");
    Ok(lease)
}
