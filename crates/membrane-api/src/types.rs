//! Request and response bodies of the local API.

use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// Identifies one network attachment, as the CNI spec does: container id plus interface.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRef {
    /// The runtime's container id (`CNI_CONTAINERID`).
    pub container_id: String,
    /// The interface name inside the container (`CNI_IFNAME`).
    pub ifname: String,
}

/// Asks IPAM for one IPv4 and one IPv6 address for an attachment. Asking twice for the
/// same attachment returns the same addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllocateRequest {
    /// The attachment the addresses are for.
    pub attachment: AttachmentRef,
    /// Path of the pod's network namespace (`CNI_NETNS`), kept to recover leaks.
    pub netns: String,
}

/// Addresses handed out to an attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// The pod's IPv4 address, if the node has an IPv4 pod CIDR.
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address, if the node has an IPv6 pod CIDR.
    pub ipv6: Option<Ipv6Addr>,
    /// IPv4 gateway the pod routes through (link-local, answered by a static neighbour).
    pub gateway_v4: Ipv4Addr,
    /// IPv6 gateway the pod routes through (link-local, answered by a static neighbour).
    pub gateway_v6: Ipv6Addr,
    /// MTU to set on the pod's interface.
    pub mtu: u32,
}

/// Registers an attachment whose interfaces the CNI plugin has created and configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointRegistration {
    /// The attachment.
    pub attachment: AttachmentRef,
    /// Path of the pod's network namespace.
    pub netns: String,
    /// Name of the host-side veth.
    pub host_ifname: String,
    /// Interface index of the host-side veth.
    pub host_ifindex: u32,
    /// MAC of the host-side veth.
    pub host_mac: String,
    /// MAC of the pod's interface.
    pub pod_mac: String,
    /// The pod's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// Pod namespace (`K8S_POD_NAMESPACE` from `CNI_ARGS`), if known.
    pub pod_namespace: Option<String>,
    /// Pod name (`K8S_POD_NAME` from `CNI_ARGS`), if known.
    pub pod_name: Option<String>,
}

/// An endpoint the agent manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// Node-unique endpoint id.
    pub id: u16,
    /// What the plugin registered.
    pub registration: EndpointRegistration,
}

/// The runtime's list of attachments that are still valid; everything else is released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcRequest {
    /// Attachments to keep (`cni.dev/valid-attachments`).
    pub valid: Vec<AttachmentRef>,
}

/// What a garbage collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcReport {
    /// Attachments whose endpoint or addresses were released.
    pub released: Vec<AttachmentRef>,
}

/// Free and used addresses of one IPAM pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolStatus {
    /// The pool's CIDR.
    pub cidr: String,
    /// Addresses handed out.
    pub used: u64,
    /// Addresses still available (saturating at `u64::MAX`).
    pub free: u64,
}

/// The agent's health and a summary of what it manages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    /// Node name.
    pub node: String,
    /// True when the datapath is loaded and the agent is serving.
    pub healthy: bool,
    /// Number of endpoints.
    pub endpoints: usize,
    /// IPv4 pool, if configured.
    pub ipv4_pool: Option<PoolStatus>,
    /// IPv6 pool, if configured.
    pub ipv6_pool: Option<PoolStatus>,
}

/// Error body of every non-2xx response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiErrorBody {
    /// Machine-readable kind.
    pub kind: ErrorKind,
    /// One line saying what went wrong.
    pub message: String,
}

/// Kinds of local API errors, so callers can map them (to CNI error codes, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request was malformed or invalid.
    InvalidRequest,
    /// The attachment or endpoint does not exist.
    NotFound,
    /// An address pool has no free address.
    PoolExhausted,
    /// The datapath could not be programmed.
    Datapath,
    /// Persistent state could not be read or written.
    Storage,
    /// Anything else inside the agent.
    Internal,
}
