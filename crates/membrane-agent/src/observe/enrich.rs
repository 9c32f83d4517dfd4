//! Keeps the observer's endpoint directory in step with what the agent knows: its own
//! endpoints (by endpoint id, address and host-side interface) and every Pod object with
//! addresses (pods on other nodes included, by address), with the identity the ipcache
//! gives their addresses, so that flows carry names, labels, workloads and identities.

use crate::agent::Agent;
use crate::cluster::Cluster;
use crate::cluster::reflector::Reflector;
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use crate::routing::ipcache::IpcacheRecord;
use membrane_model::Object;
use membrane_observe::directory::{EndpointMeta, StaticDirectory};
use membrane_observe::flow::Workload;
use membrane_state::keys;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the directory is rebuilt.
const REFRESH: Duration = Duration::from_secs(1);

/// A pod's labels and owning workloads.
type PodFacts = (BTreeMap<String, String>, Vec<Workload>);

/// What the directory is built from.
pub struct Sources<D: NodeDatapath, N: NodeNetwork> {
    /// The agent: this node's endpoints.
    pub agent: Arc<Agent<D, N>>,
    /// The cluster's objects: Pods with labels, owners and addresses.
    pub cluster: Arc<Cluster>,
    /// The kvstore's ipcache: the security identity of every pod address.
    pub ipcache: Arc<Reflector<IpcacheRecord>>,
}

/// Rebuilds `directory` from `sources` every [`REFRESH`] until `token` is cancelled.
pub async fn follow<D: NodeDatapath, N: NodeNetwork>(
    directory: Arc<StaticDirectory>,
    sources: Sources<D, N>,
    token: CancellationToken,
) {
    let Sources {
        agent,
        cluster,
        ipcache,
    } = sources;
    loop {
        let objects = cluster.objects().values();
        match agent.endpoints().await {
            Ok(endpoints) => {
                let pods = pods(&objects);
                let published = ipcache.under(keys::IPCACHE);
                let mut entries = remote_pods(&objects, &pods);
                entries.extend(published_pods(&published, &pods));
                let identities = identities(&published);
                for endpoint in endpoints {
                    let r = &endpoint.registration;
                    let namespace = r.pod_namespace.clone().unwrap_or_default();
                    let pod_name = r.pod_name.clone().unwrap_or_default();
                    let (labels, workloads) = pods
                        .get(&(namespace.clone(), pod_name.clone()))
                        .cloned()
                        .unwrap_or_default();
                    let addresses = [r.ipv4.map(IpAddr::V4), r.ipv6.map(IpAddr::V6)]
                        .into_iter()
                        .flatten()
                        .collect();
                    let meta = EndpointMeta {
                        id: endpoint.id,
                        identity: 0,
                        namespace,
                        pod_name,
                        labels,
                        workloads,
                        interface: r.host_ifindex,
                    };
                    // Last, so that a local endpoint wins an address over a stale Pod.
                    entries.push((meta, addresses));
                }
                for (meta, addresses) in &mut entries {
                    meta.identity = addresses
                        .iter()
                        .find_map(|ip| identities.get(ip).copied())
                        .unwrap_or(0);
                }
                directory.replace_endpoints(entries);
            }
            Err(error) => tracing::warn!(%error, "cannot list endpoints for flow enrichment"),
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(REFRESH) => {}
        }
    }
}

/// Every pod the ipcache names (published by the node hosting it, with its namespace and
/// name), as an endpoint without a local id: pods on other nodes get their names even
/// when no Pod object lists their addresses.
fn published_pods(
    records: &[(String, IpcacheRecord)],
    pods: &BTreeMap<(String, String), PodFacts>,
) -> Vec<(EndpointMeta, Vec<IpAddr>)> {
    records
        .iter()
        .filter_map(|(key, record)| {
            let ip: IpAddr = keys::suffix(key, keys::IPCACHE)?.parse().ok()?;
            let key = (record.namespace.clone()?, record.pod.clone()?);
            let (labels, workloads) = pods.get(&key).cloned().unwrap_or_default();
            let meta = EndpointMeta {
                id: 0,
                identity: record.identity,
                namespace: key.0,
                pod_name: key.1,
                labels,
                workloads,
                interface: 0,
            };
            Some((meta, vec![ip]))
        })
        .collect()
}

/// The identity of every address in the ipcache (published by the nodes hosting them).
fn identities(records: &[(String, IpcacheRecord)]) -> HashMap<IpAddr, u32> {
    records
        .iter()
        .filter_map(|(key, record)| {
            let ip = keys::suffix(key, keys::IPCACHE)?.parse().ok()?;
            Some((ip, record.identity))
        })
        .collect()
}

/// Every Pod object with addresses, as an endpoint without a local id.
fn remote_pods(
    objects: &[Object],
    pods: &BTreeMap<(String, String), PodFacts>,
) -> Vec<(EndpointMeta, Vec<IpAddr>)> {
    objects
        .iter()
        .filter_map(|object| match object {
            Object::Pod(pod) => Some(pod),
            _ => None,
        })
        .filter_map(|pod| {
            let status = pod.status.as_ref()?;
            let mut addresses: Vec<IpAddr> = status
                .pod_ips
                .iter()
                .flatten()
                .filter_map(|p| p.ip.parse().ok())
                .collect();
            if addresses.is_empty() {
                addresses.extend(
                    status
                        .pod_ip
                        .as_deref()
                        .and_then(|ip| ip.parse::<IpAddr>().ok()),
                );
            }
            let key = (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
            );
            let (labels, workloads) = pods.get(&key).cloned().unwrap_or_default();
            let meta = EndpointMeta {
                id: 0,
                identity: 0,
                namespace: key.0,
                pod_name: key.1,
                labels,
                workloads,
                interface: 0,
            };
            (!addresses.is_empty()).then_some((meta, addresses))
        })
        .collect()
}

/// Labels and workloads of every Pod object, by (namespace, name).
fn pods(objects: &[Object]) -> BTreeMap<(String, String), PodFacts> {
    objects
        .iter()
        .filter_map(|object| match object {
            Object::Pod(pod) => Some(pod),
            _ => None,
        })
        .map(|pod| {
            let meta = &pod.metadata;
            let labels = meta.labels.clone().unwrap_or_default();
            let workloads = meta
                .owner_references
                .iter()
                .flatten()
                .map(|owner| workload(&owner.kind, &owner.name, &labels))
                .collect();
            (
                (
                    meta.namespace.clone().unwrap_or_default(),
                    meta.name.clone().unwrap_or_default(),
                ),
                (labels, workloads),
            )
        })
        .collect()
}

/// The workload a pod's owner stands for: a ReplicaSet made by a Deployment is named
/// by the Deployment (its name minus the pod-template hash).
fn workload(kind: &str, name: &str, labels: &BTreeMap<String, String>) -> Workload {
    if kind == "ReplicaSet"
        && let Some(hash) = labels.get("pod-template-hash")
        && let Some(deployment) = name.strip_suffix(&format!("-{hash}"))
    {
        return Workload {
            name: deployment.to_string(),
            kind: "Deployment".to_string(),
        };
    }
    Workload {
        name: name.to_string(),
        kind: kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use membrane_model::Kind;
    use serde_json::json;

    #[test]
    fn replica_sets_of_deployments_are_named_by_the_deployment() {
        let labels = [("pod-template-hash".to_string(), "5d8f9c".to_string())].into();
        assert_eq!(
            workload("ReplicaSet", "web-5d8f9c", &labels),
            Workload {
                name: "web".to_string(),
                kind: "Deployment".to_string()
            }
        );
        assert_eq!(
            workload("StatefulSet", "db", &labels),
            Workload {
                name: "db".to_string(),
                kind: "StatefulSet".to_string()
            }
        );
    }

    #[test]
    fn pods_with_addresses_are_known_by_address_with_labels_and_workload() {
        let pod = Object::from_value(
            Kind::Pod,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-5d8f9c-x", "namespace": "shop",
                    "labels": {"app": "web", "pod-template-hash": "5d8f9c"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "web-5d8f9c", "uid": "u"}]},
                "status": {"podIPs": [{"ip": "10.200.2.5"}, {"ip": "fd00:200:2::5"}]}
            }),
        )
        .unwrap();
        let pending = Object::from_value(
            Kind::Pod,
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "pending", "namespace": "shop"}
            }),
        )
        .unwrap();
        let objects = vec![pod, pending];
        let entries = remote_pods(&objects, &pods(&objects));
        assert_eq!(entries.len(), 1, "{entries:?}");
        let (meta, addresses) = &entries[0];
        assert_eq!((meta.id, meta.namespace.as_str()), (0, "shop"));
        assert_eq!(meta.labels["app"], "web");
        assert_eq!(meta.workloads[0].name, "web");
        assert_eq!(addresses.len(), 2);
    }
}
