//! Gathers the status of each component; a component that cannot be read is reported
//! as failed with why, and the others are still shown.

use crate::error::{CliError, error_chain};
use crate::pin_dir;
use membrane_api::{
    AgentStatus, Client, ClientError, Identity, KvstoreStatus, ListRequest, NodeInfo,
    ServiceFrontend, paths,
};
use membrane_common::config::{config_flags, routing_mode};
use membrane_datapath::PinnedMaps;
use membrane_observe::api::observer::ServerStatusRequest;
use membrane_observe::client::{ServerAddress, connect};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

/// One component's findings, or why they could not be read.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Part<T> {
    /// What was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<T>,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl<T> Part<T> {
    async fn of<E: std::error::Error>(read: impl Future<Output = Result<T, E>>) -> Part<T> {
        match read.await {
            Ok(found) => Part {
                found: Some(found),
                error: None,
            },
            Err(err) => Part {
                found: None,
                error: Some(error_chain(&err)),
            },
        }
    }
}

/// What the datapath's pins show.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Datapath {
    /// The pin directory.
    pub pin_dir: String,
    /// `tunnel` or `native`.
    pub routing_mode: &'static str,
    /// Families masqueraded in eBPF.
    pub masquerade: Vec<&'static str>,
    /// The masquerade port range.
    pub nat_ports: String,
    /// The Maglev table size.
    pub maglev_table_size: u32,
    /// The pinned program links (tc on interfaces, cgroup socket hooks).
    pub links: Vec<String>,
    /// Entries and capacity of each bounded map.
    pub map_pressure: Vec<Pressure>,
}

/// How full one map is.
#[derive(Debug, Serialize)]
pub struct Pressure {
    /// The map.
    pub map: &'static str,
    /// Its entries.
    pub entries: u64,
    /// Its capacity.
    pub capacity: u64,
}

/// The kube-proxy replacement's state.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Services {
    /// Frontends by kind (`ClusterIP`, `NodePort`, ...).
    pub frontends: BTreeMap<String, usize>,
    /// Frontends the datapath holds exactly.
    pub programmed: usize,
    /// Frontends not programmed, with why.
    pub failed: Vec<String>,
    /// Frontends by backend selection (`random`, `maglev`).
    pub algorithms: BTreeMap<String, usize>,
    /// True when the socket-level load balancer's cgroup hooks are attached.
    pub socket_lb: bool,
    /// The XDP acceleration attached to the uplink (`native on uplink0`), if any.
    pub xdp: Option<String>,
}

/// The Observer's flow store.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Observer {
    /// Its socket.
    pub socket: String,
    /// Flows held.
    pub flows: u64,
    /// Flows it can hold.
    pub max_flows: u64,
    /// Flows seen since it started.
    pub seen_flows: u64,
}

/// Policies stored, by kind.
pub type PolicyCounts = BTreeMap<String, usize>;

/// Everything `membrane status` shows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The agent's socket.
    pub socket: String,
    /// The agent's own status.
    pub agent: AgentStatus,
    /// The cluster state backend.
    pub kvstore: Part<KvstoreStatus>,
    /// The datapath, from its pins.
    pub datapath: Part<Datapath>,
    /// The kube-proxy replacement.
    pub services: Part<Services>,
    /// The Observer.
    pub observer: Part<Observer>,
    /// Node names.
    pub nodes: Part<Vec<String>>,
    /// Number of identities (`None` when the agent does not serve the list).
    pub identities: Part<Option<usize>>,
    /// Policies by kind.
    pub policies: Part<PolicyCounts>,
}

impl Report {
    /// The components that are not healthy.
    pub fn failing(&self) -> Vec<&'static str> {
        let mut failing = Vec::new();
        if !self.agent.healthy {
            failing.push("agent");
        }
        match &self.kvstore.found {
            Some(k) if k.reachable => {}
            _ => failing.push("kvstore"),
        }
        let parts = [
            ("datapath", self.datapath.error.is_some()),
            ("services", self.services.error.is_some()),
            ("observer", self.observer.error.is_some()),
            ("nodes", self.nodes.error.is_some()),
            ("identities", self.identities.error.is_some()),
            ("policies", self.policies.error.is_some()),
        ];
        failing.extend(parts.iter().filter(|(_, bad)| *bad).map(|(name, _)| *name));
        if let Some(services) = &self.services.found
            && !services.failed.is_empty()
        {
            failing.push("services");
        }
        failing
    }
}

/// Asks the agent (which must answer), its Observer and the pins.
pub async fn gather(
    client: &Client,
    bpffs_dir: Option<&Path>,
    observer: &Path,
) -> Result<Report, CliError> {
    let agent: AgentStatus = client.get(paths::STATUS).await?;
    let dir = pin_dir::resolve(client, bpffs_dir).await?;
    let pins = PinnedMaps::open(&dir);
    let links: Vec<String> = dir
        .join("links")
        .read_dir()
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let socket_lb = links.iter().any(|name| name.starts_with("cgroup-"));
    // XDP links are pinned as `xdp-<mode>-<device>`.
    let xdp = links.iter().find_map(|name| {
        let (mode, device) = name.strip_prefix("xdp-")?.split_once('-')?;
        Some(format!("{mode} on {device}"))
    });
    Ok(Report {
        socket: client.socket().display().to_string(),
        agent,
        kvstore: Part::of(client.get::<KvstoreStatus>(paths::KVSTORE)).await,
        datapath: Part::of(async { pins.and_then(|p| datapath(&p)) }).await,
        services: Part::of(services(client, socket_lb, xdp)).await,
        observer: Part::of(observer_status(observer)).await,
        nodes: Part::of(async {
            let nodes: Vec<NodeInfo> = client.get(paths::NODES).await?;
            Ok::<_, ClientError>(nodes.into_iter().map(|n| n.name).collect())
        })
        .await,
        identities: Part::of(async {
            match client.get::<Vec<Identity>>(paths::IDENTITY_LIST).await {
                Ok(ids) => Ok(Some(ids.len())),
                // An agent that does not serve the list yet: not a failure of the node.
                Err(ClientError::Api { status: 404, .. }) => Ok(None),
                Err(other) => Err(other),
            }
        })
        .await,
        policies: Part::of(policies(client)).await,
    })
}

fn datapath(pins: &PinnedMaps) -> Result<Datapath, membrane_datapath::DatapathError> {
    let config = pins.config()?;
    let mut links: Vec<String> = pins
        .dir()
        .join("links")
        .read_dir()
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    links.sort();
    let masquerade = [
        (config_flags::MASQUERADE_V4, "IPv4"),
        (config_flags::MASQUERADE_V6, "IPv6"),
    ]
    .into_iter()
    .filter(|(bit, _)| config.flags & bit != 0)
    .map(|(_, family)| family)
    .collect();
    Ok(Datapath {
        pin_dir: pins.dir().display().to_string(),
        routing_mode: if config.routing_mode == routing_mode::TUNNEL {
            "tunnel"
        } else {
            "native"
        },
        masquerade,
        nat_ports: format!("{}-{}", config.nat_port_min, config.nat_port_max),
        maglev_table_size: config.maglev_table_size,
        links,
        map_pressure: pins
            .pressure()?
            .into_iter()
            .map(|p| Pressure {
                map: p.map,
                entries: p.entries,
                capacity: p.capacity,
            })
            .collect(),
    })
}

async fn services(
    client: &Client,
    socket_lb: bool,
    xdp: Option<String>,
) -> Result<Services, ClientError> {
    let frontends: Vec<ServiceFrontend> = client.get(paths::SERVICES).await?;
    let mut report = Services {
        frontends: BTreeMap::new(),
        programmed: 0,
        failed: Vec::new(),
        algorithms: BTreeMap::new(),
        socket_lb,
        xdp,
    };
    for f in &frontends {
        *report.frontends.entry(f.kind.clone()).or_default() += 1;
        *report.algorithms.entry(f.algorithm.clone()).or_default() += 1;
        if f.programmed {
            report.programmed += 1;
        } else if let Some(error) = &f.error {
            report.failed.push(format!(
                "{}/{} {}:{}: {error}",
                f.namespace, f.name, f.address, f.port
            ));
        }
    }
    Ok(report)
}

async fn policies(client: &Client) -> Result<PolicyCounts, ClientError> {
    let mut counts = BTreeMap::new();
    for kind in [
        "NetworkPolicy",
        "CiliumNetworkPolicy",
        "CiliumClusterwideNetworkPolicy",
    ] {
        let request = ListRequest {
            kind: Some(kind.to_string()),
            namespace: None,
        };
        let listed: Vec<serde_json::Value> = client.post(paths::OBJECTS_LIST, &request).await?;
        counts.insert(kind.to_string(), listed.len());
    }
    Ok(counts)
}

/// Why the Observer could not be asked.
#[derive(Debug, thiserror::Error)]
enum ObserverError {
    #[error("cannot reach the Observer at {socket}")]
    Connect {
        socket: String,
        #[source]
        source: membrane_observe::client::ClientError,
    },
    #[error("the Observer at {socket} answered: {message}")]
    Status { socket: String, message: String },
}

async fn observer_status(socket: &Path) -> Result<Observer, ObserverError> {
    let shown = socket.display().to_string();
    let mut client = connect(&ServerAddress::Unix(socket.to_path_buf()), None)
        .await
        .map_err(|source| ObserverError::Connect {
            socket: shown.clone(),
            source,
        })?;
    let status = client
        .server_status(ServerStatusRequest {})
        .await
        .map_err(|status| ObserverError::Status {
            socket: shown.clone(),
            message: status.message().to_string(),
        })?
        .into_inner();
    Ok(Observer {
        socket: shown,
        flows: status.num_flows,
        max_flows: status.max_flows,
        seen_flows: status.seen_flows,
    })
}
