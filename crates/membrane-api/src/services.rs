//! The load-balancing state of a node: its Service frontends and their backends, as
//! `GET /v1/services` reports them.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// One frontend the node load-balances: a cluster IP, NodePort, LoadBalancer address,
/// external IP or hostPort, with its backends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFrontend {
    /// `Service`, or `Pod` for a hostPort.
    pub owner_kind: String,
    /// The owner's namespace.
    pub namespace: String,
    /// The owner's name.
    pub name: String,
    /// `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalIP` or `HostPort`.
    pub kind: String,
    /// The frontend address; the unspecified address for a NodePort (every node address).
    pub address: IpAddr,
    /// The frontend port.
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// The frontend's reverse-NAT index in the datapath, once it has one.
    pub rev_nat_index: Option<u32>,
    /// How new connections pick a backend: `random` or `maglev`.
    pub algorithm: String,
    /// With `sessionAffinity: ClientIP`: seconds a client sticks to its backend.
    pub affinity_timeout_secs: Option<u32>,
    /// The backends of traffic from outside the node (the only ones unless
    /// `internal_backends` is set).
    pub backends: Vec<ServiceBackend>,
    /// With different internal and external traffic policies: the backends of traffic
    /// from the node's pods and processes.
    pub internal_backends: Option<Vec<ServiceBackend>>,
    /// True when the datapath holds exactly this.
    pub programmed: bool,
    /// Why it is not programmed, when the last attempt failed.
    pub error: Option<String>,
}

/// One backend of a frontend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceBackend {
    /// The backend's id in the datapath, once it has one.
    pub id: Option<u32>,
    /// Its address.
    pub address: IpAddr,
    /// Its port.
    pub port: u16,
    /// Serving but terminating: keeps its connections, takes no new ones.
    pub terminating: bool,
    /// Runs on this node.
    pub local: bool,
}
