//! Finds the probe pods of `connectivity test` in the cluster: Pod objects labelled
//! `membrane.io/connectivity`, where each runs (the agents' endpoint records, or the
//! EndpointSlices naming them) and the Services selecting the servers.

use crate::error::CliError;
use membrane_api::{AgentStatus, Client, Endpoint, ListRequest, NodeInfo, paths};
use membrane_model::k8s::api::core::v1::{Pod, Service};
use membrane_model::k8s::api::discovery::v1::EndpointSlice;
use membrane_model::{Kind, Object};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// The label marking probe pods, with the value `client` or `server`.
pub const LABEL: &str = "membrane.io/connectivity";

/// A client pod the CLI can enter: its network namespace is on this machine.
#[derive(Clone, Debug)]
pub struct ProbeClient {
    /// `namespace/name`.
    pub name: String,
    /// Its node.
    pub node: String,
    /// Its network namespace path, as the CNI plugin registered it.
    pub netns: PathBuf,
}

/// A server pod.
#[derive(Clone, Debug)]
pub struct Server {
    /// `namespace/name`.
    pub name: String,
    /// Its node, if known.
    pub node: Option<String>,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// The TCP ports its containers declare, in order.
    pub tcp_ports: Vec<u16>,
}

/// A Service frontend selecting servers.
#[derive(Clone, Debug)]
pub struct Frontend {
    /// `namespace/name`.
    pub service: String,
    /// Its cluster IPs.
    pub cluster_ips: Vec<IpAddr>,
    /// The TCP port.
    pub port: u16,
    /// Its NodePort, if any.
    pub node_port: Option<u16>,
}

/// What the scenarios run on.
#[derive(Debug)]
pub struct Probes {
    /// Clients the CLI can enter.
    pub clients: Vec<ProbeClient>,
    /// Client pods found whose network namespace no given agent knows.
    pub unreachable_clients: Vec<String>,
    /// Servers.
    pub servers: Vec<Server>,
    /// TCP Service frontends selecting servers.
    pub frontends: Vec<Frontend>,
    /// Every node with its addresses.
    pub nodes: Vec<NodeInfo>,
}

async fn list(
    client: &Client,
    kind: Kind,
    namespace: Option<&str>,
) -> Result<Vec<Object>, CliError> {
    let request = ListRequest {
        kind: Some(kind.to_string()),
        namespace: namespace.map(str::to_string),
    };
    let values: Vec<serde_json::Value> = client.post(paths::OBJECTS_LIST, &request).await?;
    values
        .into_iter()
        .map(|v| Object::from_value(kind, v).map_err(|source| CliError::Listed { kind, source }))
        .collect()
}

fn full_name(object: &Object) -> String {
    let meta = object.metadata();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn tcp_ports(pod: &Pod) -> Vec<u16> {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect()
}

fn selects(service: &Service, labels: &BTreeMap<String, String>) -> bool {
    match service.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(selector) if !selector.is_empty() => {
            selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        }
        _ => false,
    }
}

/// Discovers the probe pods through `api` (cluster objects and nodes) and the agents
/// `agents` (endpoint records with network namespaces), in `namespace` or everywhere.
pub async fn discover(
    api: &Client,
    agents: &[Client],
    namespace: Option<&str>,
) -> Result<Probes, CliError> {
    let pods = list(api, Kind::Pod, namespace).await?;
    let mut local: BTreeMap<String, (String, Endpoint)> = BTreeMap::new();
    for agent in agents {
        let status: AgentStatus = agent.get(paths::STATUS).await?;
        let endpoints: Vec<Endpoint> = agent.get(paths::ENDPOINT_LIST).await?;
        for endpoint in endpoints {
            let r = &endpoint.registration;
            if let (Some(ns), Some(name)) = (&r.pod_namespace, &r.pod_name) {
                local.insert(format!("{ns}/{name}"), (status.node.clone(), endpoint));
            }
        }
    }
    let slices = list(api, Kind::EndpointSlice, namespace).await?;
    let mut from_slices: BTreeMap<String, (Option<String>, Vec<IpAddr>)> = BTreeMap::new();
    for object in &slices {
        let Object::EndpointSlice(slice) = object else {
            continue;
        };
        let EndpointSlice { endpoints, .. } = slice.as_ref();
        let slice_ns = object.metadata().namespace.clone().unwrap_or_default();
        for e in endpoints {
            let Some(target) = &e.target_ref else {
                continue;
            };
            let pod = format!(
                "{}/{}",
                target.namespace.as_deref().unwrap_or(&slice_ns),
                target.name.as_deref().unwrap_or_default()
            );
            let entry = from_slices.entry(pod).or_default();
            entry.0 = e.node_name.clone().or(entry.0.take());
            entry
                .1
                .extend(e.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()));
        }
    }
    let mut probes = Probes {
        clients: Vec::new(),
        unreachable_clients: Vec::new(),
        servers: Vec::new(),
        frontends: Vec::new(),
        nodes: api.get(paths::NODES).await?,
    };
    let mut server_labels = Vec::new();
    for object in &pods {
        let Object::Pod(pod) = object else { continue };
        let name = full_name(object);
        match object.labels().get(LABEL).map(String::as_str) {
            Some("client") => match local.get(&name) {
                Some((node, endpoint)) => probes.clients.push(ProbeClient {
                    name,
                    node: node.clone(),
                    netns: PathBuf::from(&endpoint.registration.netns),
                }),
                None => probes.unreachable_clients.push(name),
            },
            Some("server") => {
                let (node, addresses) = match local.get(&name) {
                    Some((node, endpoint)) => {
                        let r = &endpoint.registration;
                        let addresses = [r.ipv4.map(IpAddr::V4), r.ipv6.map(IpAddr::V6)]
                            .into_iter()
                            .flatten()
                            .collect();
                        (Some(node.clone()), addresses)
                    }
                    None => from_slices.get(&name).cloned().unwrap_or_default(),
                };
                server_labels.push((name.clone(), object.labels().clone()));
                probes.servers.push(Server {
                    name,
                    node,
                    addresses,
                    tcp_ports: tcp_ports(pod),
                });
            }
            _ => {}
        }
    }
    for object in list(api, Kind::Service, namespace).await? {
        let Object::Service(service) = &object else {
            continue;
        };
        let selects_a_server = server_labels.iter().any(|(name, labels)| {
            name.split('/').next() == object.metadata().namespace.as_deref()
                && selects(service, labels)
        });
        let Some(spec) = service.spec.as_ref().filter(|_| selects_a_server) else {
            continue;
        };
        let cluster_ips = spec
            .cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .collect::<std::collections::BTreeSet<_>>();
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().unwrap_or("TCP") != "TCP" {
                continue;
            }
            probes.frontends.push(Frontend {
                service: full_name(&object),
                cluster_ips: cluster_ips.iter().copied().collect(),
                port: u16::try_from(port.port).unwrap_or_default(),
                node_port: port.node_port.and_then(|p| u16::try_from(p).ok()),
            });
        }
    }
    Ok(probes)
}
