//! What the compiler reads: policies, the cluster's identities, the node's endpoints and
//! the enforcement settings.

use ipnet::IpNet;
use membrane_model::Object;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Labels as identities spell them: `source:key=value` (`k8s:app=web`,
/// `reserved:host`).
pub type Labels = Vec<String>;

/// When endpoints enforce policy (Cilium's `--enable-policy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnforcementMode {
    /// A direction is enforced once a policy selects the endpoint for it.
    #[default]
    Default,
    /// Every endpoint enforces both directions, selected or not.
    Always,
    /// Nothing is enforced and no rule is written.
    Never,
}

/// A named container port of a pod.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NamedPort {
    /// The port's name.
    pub name: String,
    /// IP protocol number (TCP 6, UDP 17, SCTP 132).
    pub proto: u8,
    /// The port number.
    pub port: u16,
}

/// An endpoint of this node that rules are compiled for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// The datapath's endpoint id.
    pub id: u16,
    /// Its security identity.
    pub identity: u32,
    /// Its identity's labels (namespace label included).
    pub labels: Labels,
    /// Its pod's named container ports (ingress named ports resolve through these).
    pub named_ports: Vec<NamedPort>,
}

/// Everything one compilation reads.
#[derive(Clone, Debug, Default)]
pub struct PolicyInput {
    /// NetworkPolicy, CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy objects;
    /// other kinds are ignored.
    pub policies: Vec<Object>,
    /// Every allocated identity of the cluster (number -> labels). Reserved identities
    /// are added by the compiler.
    pub identities: BTreeMap<u32, Labels>,
    /// Namespace labels by namespace name, for identities whose labels do not carry
    /// their namespace's labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Every pod address of the cluster and its identity (a NetworkPolicy `ipBlock`
    /// also selects the pods inside it).
    pub pod_addresses: BTreeMap<IpAddr, u32>,
    /// Every node's addresses: their host prefixes are the nodes' own ipcache entries
    /// (host, remote-node), never CIDR identities, as the pods' are.
    pub node_addresses: BTreeSet<IpAddr>,
    /// Named container ports of every pod of the cluster (egress named ports resolve
    /// through these, as Cilium does).
    pub cluster_named_ports: BTreeSet<NamedPort>,
    /// The endpoints to compile for.
    pub endpoints: Vec<LocalEndpoint>,
    /// CIDR identities of the previous compilation, kept for prefixes still in use.
    pub previous_cidr_identities: BTreeMap<IpNet, u32>,
    /// The enforcement mode.
    pub mode: EnforcementMode,
    /// Audit mode: would-be drops are reported and let through.
    pub audit: bool,
}

impl PolicyInput {
    /// Whether `address` is a pod's or a node's: its host prefix is their ipcache entry.
    pub fn owns_host(&self, address: IpAddr) -> bool {
        self.pod_addresses.contains_key(&address) || self.node_addresses.contains(&address)
    }
}
