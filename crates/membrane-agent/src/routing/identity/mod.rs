//! Security identities of local endpoints: one number per distinct label set, the same on
//! every node, claimed in the kvstore with compare-and-swap.
//!
//! An endpoint's labels are its namespace (`k8s:io.kubernetes.pod.namespace=<ns>`) plus
//! the labels of the Pod object of that namespace and name, when the object cache holds
//! one. The number is read from `identities/labels/<sha256 of the labels>`; when absent,
//! a free `identities/id/<n>` (n from 256, below 2^24 so that it fits the VNI) is claimed
//! with the labels, and the labels key written only if still absent. Two nodes racing for
//! the same labels may both claim a number; the one whose labels key write loses gives
//! its number back and uses the winner's, so a label set never has two numbers in use.

use super::RoutingError;
use crate::cluster::Cluster;
use membrane_api::EndpointRegistration;
use membrane_common::identity::FIRST_ALLOCATED;
use membrane_model::Object;
use membrane_state::{Precondition, StoreError, allocate_unique, keys};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The highest identity number: the VNI that carries it across nodes has 24 bits.
pub const LAST_ALLOCATED: u32 = 0x00ff_ffff;

/// The label naming an endpoint's namespace.
pub const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";

/// The namespace of a pod that did not say which (`K8S_POD_NAMESPACE` missing).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Resolves endpoints' labels to identity numbers, remembering what it resolved.
pub struct Identities {
    cluster: Arc<Cluster>,
    known: Mutex<HashMap<Vec<String>, u32>>,
}

impl Identities {
    /// Identities stored in `cluster`'s kvstore, labels read from its object cache.
    pub fn new(cluster: Arc<Cluster>) -> Identities {
        Identities {
            cluster,
            known: Mutex::new(HashMap::new()),
        }
    }

    /// The identity number of the endpoint `registration` describes.
    pub async fn of(&self, registration: &EndpointRegistration) -> Result<u32, RoutingError> {
        let namespace = registration
            .pod_namespace
            .as_deref()
            .unwrap_or(DEFAULT_NAMESPACE);
        let pod = registration.pod_name.as_deref().and_then(|name| {
            let key = keys::object("Pod", namespace, name);
            self.cluster
                .objects()
                .under(&key)
                .into_iter()
                .find(|(found, _)| *found == key)
                .map(|(_, object)| object)
        });
        self.number(labels(namespace, pod.as_ref())).await
    }

    /// The identity number of `labels` (sorted), claiming one if they have none yet.
    pub async fn number(&self, labels: Vec<String>) -> Result<u32, RoutingError> {
        if let Some(id) = self.known().get(&labels) {
            return Ok(*id);
        }
        let id = claim(self.cluster.store().as_ref(), &labels).await?;
        tracing::info!(identity = id, ?labels, "resolved an identity");
        self.known().insert(labels, id);
        Ok(id)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<String>, u32>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The sorted labels of an endpoint in `namespace`, with its Pod object's labels if any.
pub fn labels(namespace: &str, pod: Option<&Object>) -> Vec<String> {
    let mut labels = vec![format!("{NAMESPACE_LABEL}={namespace}")];
    if let Some(pod) = pod {
        labels.extend(pod.labels().iter().map(|(k, v)| format!("k8s:{k}={v}")));
    }
    labels.sort();
    labels.dedup();
    labels
}

/// The hex SHA-256 of the labels, one per line: the labels key's last segment.
pub fn labels_hash(labels: &[String]) -> String {
    let digest = Sha256::digest(labels.join("\n").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads or claims the number of `labels` in `store`.
async fn claim(store: &dyn membrane_state::Store, labels: &[String]) -> Result<u32, RoutingError> {
    let failed = |operation| move |source| RoutingError::Store { operation, source };
    let labels_key = keys::identity_labels(&labels_hash(labels));
    if let Some(item) = store
        .get(&labels_key)
        .await
        .map_err(failed("reading an identity"))?
    {
        return parse_number(&labels_key, &item.value);
    }
    let value = serde_json::to_vec(labels).expect("labels encode");
    let candidates = (FIRST_ALLOCATED..=LAST_ALLOCATED).map(keys::identity_id);
    let claimed = match allocate_unique(store, keys::IDENTITY_IDS, candidates, &value).await {
        Ok(claimed) => claimed,
        Err(StoreError::Exhausted { .. }) => {
            return Err(RoutingError::IdentitiesExhausted {
                labels: labels.to_vec(),
            });
        }
        Err(source) => return Err(failed("claiming an identity number")(source)),
    };
    let number = parse_number(
        &claimed.key,
        keys::suffix(&claimed.key, keys::IDENTITY_IDS)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    match store
        .put(
            &labels_key,
            number.to_string().into_bytes(),
            Precondition::Absent,
        )
        .await
    {
        Ok(_) => Ok(number),
        Err(StoreError::Conflict { .. }) => {
            // Another node claimed a number for the same labels first: use theirs and
            // give ours back (unless it is the same one, reclaimed).
            let winner = store
                .get(&labels_key)
                .await
                .map_err(failed("reading an identity"))?
                .ok_or_else(|| RoutingError::CorruptIdentity {
                    key: labels_key.clone(),
                })?;
            let theirs = parse_number(&labels_key, &winner.value)?;
            if theirs != number {
                store
                    .delete(&claimed.key, Precondition::Revision(claimed.revision))
                    .await
                    .map_err(failed("releasing a duplicate identity number"))?;
            }
            Ok(theirs)
        }
        Err(source) => Err(failed("recording an identity")(source)),
    }
}

fn parse_number(key: &str, value: &[u8]) -> Result<u32, RoutingError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|n| (FIRST_ALLOCATED..=LAST_ALLOCATED).contains(n))
        .ok_or_else(|| RoutingError::CorruptIdentity {
            key: key.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_state::{EmbeddedStore, Store};

    fn pod(labels: &[(&str, &str)]) -> Object {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        Object::from_value(
            membrane_model::Kind::Pod,
            serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web-1", "namespace": "shop", "labels": labels},
                "spec": {"containers": [{"name": "web", "image": "web"}]},
            }),
        )
        .unwrap()
    }

    #[test]
    fn labels_are_the_namespace_and_the_pods_labels_sorted() {
        assert_eq!(
            labels("shop", None),
            ["k8s:io.kubernetes.pod.namespace=shop"]
        );
        assert_eq!(
            labels("shop", Some(&pod(&[("tier", "web"), ("app", "shop")]))),
            [
                "k8s:app=shop",
                "k8s:io.kubernetes.pod.namespace=shop",
                "k8s:tier=web"
            ]
        );
        assert_ne!(
            labels_hash(&labels("a", None)),
            labels_hash(&labels("b", None))
        );
    }

    #[tokio::test]
    async fn the_same_labels_get_the_same_number_and_other_labels_another() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let web = labels("shop", None);
        let db = labels("db", None);
        let first = claim(&store, &web).await.unwrap();
        assert_eq!(first, FIRST_ALLOCATED);
        assert_eq!(claim(&store, &web).await.unwrap(), first);
        let other = claim(&store, &db).await.unwrap();
        assert_ne!(other, first);
        let ids = store.list(keys::IDENTITY_IDS).await.unwrap();
        assert_eq!(ids.items.len(), 2, "{ids:?}");
    }

    #[tokio::test]
    async fn labels_another_node_recorded_resolve_to_that_nodes_number() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).await.unwrap();
        let web = labels("shop", None);
        let value = serde_json::to_vec(&web).unwrap();
        store
            .put(&keys::identity_id(300), value, Precondition::Absent)
            .await
            .unwrap();
        store
            .put(
                &keys::identity_labels(&labels_hash(&web)),
                b"300".to_vec(),
                Precondition::Absent,
            )
            .await
            .unwrap();
        assert_eq!(claim(&store, &web).await.unwrap(), 300);
        assert_eq!(store.list(keys::IDENTITY_IDS).await.unwrap().items.len(), 1);
    }
}
