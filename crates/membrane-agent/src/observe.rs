//! Flow observability in the agent: datapath events go through membrane-observe's
//! pipeline into the flow store, which the Observer API serves on a unix socket and,
//! when configured, on TCP with optional TLS. Endpoints are named from the agent's own
//! records and the cluster's Pod objects.

use crate::agent::Agent;
use crate::cluster::Cluster;
use crate::endpoints::NodeDatapath;
use crate::node::NodeNetwork;
use membrane_datapath::EventReader;
use membrane_model::Object;
use membrane_observe::decode::{BootClock, Decoder};
use membrane_observe::directory::{EndpointMeta, StaticDirectory};
use membrane_observe::error::{DecodeError, ServeError};
use membrane_observe::flow::Workload;
use membrane_observe::metrics::ObserveMetrics;
use membrane_observe::pipeline::Pipeline;
use membrane_observe::server::{self, TlsFiles};
use membrane_observe::service::{NodeInfo, ObserverService};
use membrane_observe::store::FlowStore;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often endpoint names and labels are re-read for enrichment.
const DIRECTORY_REFRESH: Duration = Duration::from_secs(1);

/// The `observe` section of the agent's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ObserveConfig {
    /// Unix socket of the Observer API; by default `observer.sock` beside the local
    /// API's socket (`/var/run/membrane/observer.sock`).
    pub socket: Option<PathBuf>,
    /// TCP address of the Observer API (Hubble uses port 4244); off when absent.
    pub listen: Option<SocketAddr>,
    /// Server certificate (PEM) for TLS on TCP.
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM) for TLS on TCP.
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) client certificates must chain to: mutual TLS on TCP.
    pub tls_client_ca: Option<PathBuf>,
    /// How many flows are kept for GetFlows.
    pub max_flows: usize,
    /// How far a follower may fall behind before it is told it lost events.
    pub follow_buffer: usize,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            socket: None,
            listen: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            max_flows: 4096,
            follow_buffer: 1024,
        }
    }
}

impl ObserveConfig {
    /// The TLS files, when a certificate and key are both configured.
    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
            client_ca: self.tls_client_ca.clone(),
        })
    }
}

/// What can stop observability.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The decoder could not be set up.
    #[error("cannot set up flow decoding")]
    Decode(#[from] DecodeError),
    /// The Observer API could not be served.
    #[error("cannot serve the Observer API")]
    Serve(#[from] ServeError),
    /// Only one of the TLS certificate and key is configured.
    #[error("observe.tls-cert and observe.tls-key must be given together")]
    TlsIncomplete,
    /// Reading the datapath's events failed.
    #[error("reading flow events from the datapath failed")]
    Events(#[source] membrane_datapath::DatapathError),
}

/// The pipeline, store, metrics and directory of this node.
pub struct Observability {
    pipeline: Arc<Pipeline>,
    store: Arc<FlowStore>,
    metrics: Arc<ObserveMetrics>,
    directory: Arc<StaticDirectory>,
}

impl Observability {
    /// Sets up observability for `node`.
    pub fn new(config: &ObserveConfig, node: &str) -> Result<Observability, ObserveError> {
        let directory = Arc::new(StaticDirectory::new());
        let decoder = Decoder::new(
            node,
            directory.clone(),
            directory.clone(),
            BootClock::system()?,
        );
        let store = FlowStore::new(config.max_flows, config.follow_buffer);
        let metrics = Arc::new(ObserveMetrics::new());
        let pipeline = Arc::new(Pipeline::new(decoder, store.clone(), metrics.clone()));
        Ok(Observability {
            pipeline,
            store,
            metrics,
            directory,
        })
    }

    /// The metrics, for the agent's `/metrics`.
    pub fn metrics(&self) -> &Arc<ObserveMetrics> {
        &self.metrics
    }

    /// The directory, for components that know Services (reverse-NAT indexes).
    pub fn directory(&self) -> &Arc<StaticDirectory> {
        &self.directory
    }

    /// Reads batches of events until `token` is cancelled.
    pub async fn read_events(
        &self,
        mut reader: EventReader,
        token: CancellationToken,
    ) -> Result<(), ObserveError> {
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                () = token.cancelled() => return Ok(()),
                read = reader.next_batch(&mut batch) => {
                    let malformed = read.map_err(ObserveError::Events)?;
                    if malformed > 0 {
                        tracing::warn!(malformed, "skipped flow event records of the wrong size");
                    }
                    self.pipeline.ingest(&batch);
                    batch.clear();
                }
            }
        }
    }

    /// Keeps the directory in step with the agent's endpoints and the Pod objects.
    pub async fn follow_endpoints<D: NodeDatapath, N: NodeNetwork>(
        &self,
        agent: Arc<Agent<D, N>>,
        cluster: Arc<Cluster>,
        token: CancellationToken,
    ) {
        let mut known: HashSet<u16> = HashSet::new();
        loop {
            match agent.endpoints().await {
                Ok(endpoints) => {
                    let pods = pods_by_name(cluster.objects().values());
                    let mut seen = HashSet::new();
                    for endpoint in endpoints {
                        let r = &endpoint.registration;
                        let namespace = r.pod_namespace.clone().unwrap_or_default();
                        let pod_name = r.pod_name.clone().unwrap_or_default();
                        let (labels, workloads) = pods
                            .get(&(namespace.clone(), pod_name.clone()))
                            .cloned()
                            .unwrap_or_default();
                        let addresses: Vec<IpAddr> =
                            [r.ipv4.map(IpAddr::V4), r.ipv6.map(IpAddr::V6)]
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
                        };
                        self.directory.remove_endpoint(endpoint.id);
                        self.directory.insert_endpoint(meta, &addresses);
                        seen.insert(endpoint.id);
                    }
                    for gone in known.difference(&seen) {
                        self.directory.remove_endpoint(*gone);
                    }
                    known = seen;
                }
                Err(error) => tracing::warn!(%error, "cannot list endpoints for flow enrichment"),
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(DIRECTORY_REFRESH) => {}
            }
        }
    }

    /// Serves the Observer API on the unix socket (beside `api_socket` unless
    /// configured) and, when configured, on TCP, until `token` is cancelled.
    pub async fn serve(
        &self,
        config: &ObserveConfig,
        api_socket: &Path,
        node: &str,
        token: CancellationToken,
    ) -> Result<(), ObserveError> {
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(ObserveError::TlsIncomplete);
        }
        let tls = config
            .tls()
            .map(|files| server::tls_config(&files))
            .transpose()?;
        let service = Arc::new(ObserverService::new(
            self.store.clone(),
            self.metrics.clone(),
            NodeInfo {
                name: node.to_string(),
                address: config.listen.map(|a| a.to_string()).unwrap_or_default(),
                tls_server_name: tls.as_ref().map(|_| node.to_string()),
            },
        ));
        let socket = config.socket.clone().unwrap_or_else(|| {
            api_socket
                .parent()
                .unwrap_or_else(|| Path::new("/"))
                .join("observer.sock")
        });
        let unix = server::bind_unix(&socket)?;
        tracing::info!(socket = %socket.display(), "serving the Observer API");
        let on_unix = server::serve_unix(unix, None, service.clone(), token.clone());
        match config.listen {
            Some(address) => {
                let tcp = server::bind_tcp(address).await?;
                tracing::info!(%address, tls = tls.is_some(), "serving the Observer API over TCP");
                let on_tcp = server::serve_tcp(tcp, tls, service, token);
                tokio::try_join!(on_unix, on_tcp)?;
            }
            None => on_unix.await?,
        }
        Ok(())
    }
}

/// A pod's labels and owning workloads.
type PodFacts = (BTreeMap<String, String>, Vec<Workload>);

/// Labels and workloads of every Pod object, by (namespace, name).
fn pods_by_name(objects: Vec<Object>) -> BTreeMap<(String, String), PodFacts> {
    objects
        .into_iter()
        .filter_map(|object| match object {
            Object::Pod(pod) => Some(pod),
            _ => None,
        })
        .map(|pod| {
            let meta = pod.metadata;
            let labels = meta.labels.unwrap_or_default();
            let workloads = meta
                .owner_references
                .unwrap_or_default()
                .into_iter()
                .map(|owner| workload(&owner.kind, &owner.name, &labels))
                .collect();
            (
                (
                    meta.namespace.unwrap_or_default(),
                    meta.name.unwrap_or_default(),
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
    fn tls_needs_both_certificate_and_key() {
        let mut config = ObserveConfig {
            tls_cert: Some(PathBuf::from("cert.pem")),
            ..ObserveConfig::default()
        };
        assert_eq!(config.tls(), None);
        config.tls_key = Some(PathBuf::from("key.pem"));
        assert!(config.tls().is_some());
    }
}
