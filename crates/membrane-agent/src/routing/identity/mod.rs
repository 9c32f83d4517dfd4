//! Security identities of local endpoints: one number per distinct label set, the same on
//! every node, allocated in the kvstore by [`membrane_state::allocate_identity`].
//!
//! An endpoint's labels come from [`labels::identity_labels`]: its namespace, the cluster's
//! name, and the labels of its Pod and Namespace objects that the configured filter keeps.
//! Numbers resolved once are cached (and kept in the state directory, so across restarts
//! too), so an endpoint whose label set this node already knows gets its identity while
//! the kvstore is unreachable; a new label set waits for the store with backoff, up to the
//! allocation timeout, and then fails naming the labels.
//!
//! This node records its use of every identity its endpoints carry under
//! `identities/users/<n>/<node>`, on a lease of its own; [`uses`] keeps that record in
//! step with the endpoints, moves endpoints whose labels changed to their new identity,
//! and collects identities nobody has used for the grace period.

mod cache;
pub mod config;
pub mod labels;
pub mod uses;

pub use config::IdentityConfig;

use super::RoutingError;
use crate::cluster::Cluster;
use cache::Cache;
use labels::{BadLabelRule, LabelFilter, LabelSources};
use membrane_api::EndpointRegistration;
use membrane_state::{
    Backoff, IdentityUser, LeaseId, StoreError, allocate_identity, keys, record_identity_use,
    release_identity_use,
};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The namespace of a pod that did not say which (`K8S_POD_NAMESPACE` missing).
pub const DEFAULT_NAMESPACE: &str = "default";

/// What this node has resolved and which of those numbers it has recorded as used.
struct Resolved {
    known: Cache,
    held: BTreeSet<u32>,
}

/// Resolves endpoints' labels to identity numbers and records this node's uses of them.
pub struct Identities {
    cluster: Arc<Cluster>,
    node: String,
    cluster_name: String,
    filter: LabelFilter,
    lease_ttl: Duration,
    allocation_timeout: Duration,
    resolved: Mutex<Resolved>,
    lease: tokio::sync::Mutex<Option<LeaseId>>,
}

impl Identities {
    /// Identities of `node`'s endpoints, stored in `cluster`'s kvstore with use records
    /// on a lease of `lease_ttl`, labels read from its object cache, resolved ones kept
    /// in the file `cache` too.
    pub fn new(
        cluster: Arc<Cluster>,
        node: String,
        config: &IdentityConfig,
        lease_ttl: Duration,
        cache: PathBuf,
    ) -> Result<Identities, BadLabelRule> {
        Ok(Identities {
            cluster,
            node,
            cluster_name: config.cluster_name.clone(),
            filter: LabelFilter::new(&config.labels)?,
            lease_ttl,
            allocation_timeout: config.allocation_timeout(),
            resolved: Mutex::new(Resolved {
                known: Cache::load(cache),
                held: BTreeSet::new(),
            }),
            lease: tokio::sync::Mutex::new(None),
        })
    }

    /// The identity labels of the endpoint `registration` describes.
    pub fn labels_of(&self, registration: &EndpointRegistration) -> BTreeSet<String> {
        let namespace = registration
            .pod_namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE);
        let pod = registration
            .pod_name
            .as_deref()
            .and_then(|name| self.object(&keys::object("Pod", namespace, name)));
        let namespace_object = self.object(&keys::object("Namespace", "", namespace));
        labels::identity_labels(
            LabelSources {
                cluster: &self.cluster_name,
                namespace,
                namespace_object: namespace_object.as_ref(),
                pod: pod.as_ref(),
            },
            &self.filter,
        )
    }

    /// The identity number of the endpoint `registration` describes. Until the object
    /// cache holds its first listing the Pod's labels are unknown, not empty: that is an
    /// error, so that an endpoint keeps the identity it is programmed with.
    pub async fn of(&self, registration: &EndpointRegistration) -> Result<u32, RoutingError> {
        if !self.cluster.objects().is_listed() {
            return Err(RoutingError::LabelsUnknown {
                pod: format!(
                    "{}/{}",
                    registration
                        .pod_namespace
                        .as_deref()
                        .unwrap_or(DEFAULT_NAMESPACE),
                    registration.pod_name.as_deref().unwrap_or("-")
                ),
            });
        }
        self.number(self.labels_of(registration)).await
    }

    /// The identity number of `labels`: the cached one, or one allocated (or found) in the
    /// kvstore, waiting for an unreachable store up to the allocation timeout.
    pub async fn number(&self, labels: BTreeSet<String>) -> Result<u32, RoutingError> {
        if let Some(id) = self.resolved().known.get(&labels) {
            return Ok(id);
        }
        let started = Instant::now();
        let mut backoff = Backoff::new();
        let mut complained = false;
        loop {
            let error = match self.allocate(&labels).await {
                Ok(id) => {
                    tracing::info!(identity = id, ?labels, "resolved an identity");
                    let mut resolved = self.resolved();
                    resolved.known.insert(labels, id);
                    resolved.held.insert(id);
                    return Ok(id);
                }
                Err(error) => error,
            };
            let delay = backoff.next_delay();
            let retry = match &error {
                StoreError::LeaseNotFound { .. } => {
                    *self.lease.lock().await = None;
                    true
                }
                error => error.is_unavailable(),
            };
            let remaining = self.allocation_timeout.saturating_sub(started.elapsed());
            if !retry || remaining.is_zero() {
                return Err(match error {
                    StoreError::Exhausted { .. } => RoutingError::IdentitiesExhausted {
                        labels: labels.into_iter().collect(),
                    },
                    source if retry => RoutingError::IdentityUnavailable {
                        labels: labels.into_iter().collect(),
                        waited: started.elapsed(),
                        source,
                    },
                    source => RoutingError::Store {
                        operation: "allocating an identity",
                        source,
                    },
                });
            }
            if !complained {
                tracing::warn!(?labels, error = %crate::agent::chain(&error), "cannot allocate an identity yet; retrying");
                complained = true;
            }
            // The last attempt is made at the timeout, not a backoff step before it.
            tokio::time::sleep(delay.min(remaining)).await;
        }
    }

    /// Keeps this node's use records alive; when their lease was lost (expired during an
    /// outage) they are gone, and the next [`Identities::record_uses`] writes them again.
    pub async fn keep_alive(&self) -> Result<(), RoutingError> {
        let mut lease = self.lease.lock().await;
        let Some(id) = *lease else { return Ok(()) };
        match self.cluster.store().keep_alive(id).await {
            Ok(_) => Ok(()),
            Err(StoreError::LeaseNotFound { .. }) => {
                tracing::warn!(lease = %id, "the identity use lease expired; recording the uses again");
                *lease = None;
                self.resolved().held.clear();
                Ok(())
            }
            Err(source) => Err(RoutingError::Store {
                operation: "keeping the identity use lease alive",
                source,
            }),
        }
    }

    /// Makes this node's use records match `in_use`, the identities its endpoints carry:
    /// records the missing ones and releases the others (forgetting their labels, so a
    /// later endpoint asks the store again). Returns true when an identity in use was
    /// collected meanwhile: its endpoints must resolve again.
    pub async fn record_uses(&self, in_use: &BTreeSet<u32>) -> Result<bool, RoutingError> {
        let failed = |operation| move |source| RoutingError::Store { operation, source };
        let (record, release): (Vec<(u32, BTreeSet<String>)>, Vec<u32>) = {
            let resolved = self.resolved();
            let missing = in_use.difference(&resolved.held).copied().collect();
            let record = resolved.known.with_ids(&missing);
            let release = resolved.held.difference(in_use).copied().collect();
            (record, release)
        };
        let mut stale = false;
        for (id, labels) in record {
            let user = self
                .user()
                .await
                .map_err(failed("granting the identity use lease"))?;
            let store = self.cluster.store().as_ref();
            if record_identity_use(store, id, &labels, &user)
                .await
                .map_err(failed("recording an identity use"))?
            {
                self.resolved().held.insert(id);
            } else {
                tracing::warn!(
                    identity = id,
                    ?labels,
                    "an identity in use was collected; resolving its endpoints again"
                );
                self.resolved().known.remove(&labels);
                stale = true;
            }
        }
        for id in release {
            release_identity_use(self.cluster.store().as_ref(), id, &self.node)
                .await
                .map_err(failed("releasing an identity use"))?;
            let mut resolved = self.resolved();
            resolved.held.remove(&id);
            resolved.known.forget_id(id);
            tracing::debug!(identity = id, "no endpoint uses the identity any more");
        }
        Ok(stale)
    }

    async fn allocate(&self, labels: &BTreeSet<String>) -> Result<u32, StoreError> {
        let user = self.user().await?;
        Ok(
            allocate_identity(self.cluster.store().as_ref(), labels, &user)
                .await?
                .id,
        )
    }

    /// This node as a user of identities, granting its lease first if it has none.
    async fn user(&self) -> Result<IdentityUser, StoreError> {
        let mut lease = self.lease.lock().await;
        let id = match *lease {
            Some(id) => id,
            None => {
                let id = self.cluster.store().grant_lease(self.lease_ttl).await?;
                *lease = Some(id);
                id
            }
        };
        Ok(IdentityUser {
            node: self.node.clone(),
            lease: id,
        })
    }

    fn object(&self, key: &str) -> Option<membrane_model::Object> {
        self.cluster.objects().get(key)
    }

    fn resolved(&self) -> std::sync::MutexGuard<'_, Resolved> {
        self.resolved.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests;
