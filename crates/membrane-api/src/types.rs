//! Request and response bodies of the local API.

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// The cluster state backend of an agent, probed with one read when asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvstoreStatus {
    /// What it is: `etcd at http://...` or `embedded store <path>`.
    pub backend: String,
    /// True when the probe read succeeded.
    pub reachable: bool,
    /// Why the probe failed, when it did.
    pub error: Option<String>,
}

/// A node of the cluster, as it registers itself in the kvstore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node's addresses on its uplink (what other nodes reach it at).
    pub addresses: Vec<IpAddr>,
    /// The node's IPv4 pod CIDR.
    pub ipv4_pod_cidr: Option<Ipv4Net>,
    /// The node's IPv6 pod CIDR.
    pub ipv6_pod_cidr: Option<Ipv6Net>,
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

/// Applies a set of objects at once (`membrane apply -f`): all of them or none.
///
/// Each object is a complete manifest (`apiVersion`, `kind`, `metadata`, ...) of a kind
/// `membrane-model` knows. The CLI has already parsed and validated them; the agent
/// validates again (with `membrane_model::parse_manifest_values`) before storing
/// anything, and refuses the whole request with [`ErrorKind::InvalidRequest`] if any
/// object is invalid. A namespaced object without a namespace goes to `default`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The objects, in the order the user gave them.
    pub objects: Vec<serde_json::Value>,
}

/// What an apply did to each object, each named as `membrane_model::ObjectRef` displays
/// it: `Service default/web`, `Node node1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyReport {
    /// Objects that did not exist before.
    pub created: Vec<String>,
    /// Objects that existed and were changed.
    pub configured: Vec<String>,
    /// Objects that existed with exactly the content applied.
    pub unchanged: Vec<String>,
}

/// Names one object on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectRefWire {
    /// The kind as manifests spell it (`Service`, `CiliumNetworkPolicy`).
    pub kind: String,
    /// The namespace; `None` for cluster-scoped kinds (and `default` is not implied:
    /// the CLI always sends the namespace of a namespaced object).
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

/// Deletes a set of objects at once (`membrane delete -f`). Deleting an object that
/// does not exist is not an error: it is reported in [`DeleteReport::not_found`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// The objects to delete.
    pub refs: Vec<ObjectRefWire>,
}

/// What a delete did, each object named as `membrane_model::ObjectRef` displays it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteReport {
    /// Objects that existed and are gone.
    pub deleted: Vec<String>,
    /// Objects that did not exist.
    pub not_found: Vec<String>,
}

/// Lists stored objects (`membrane get`); the answer is a `Vec` of complete manifests
/// (`serde_json::Value`), sorted by kind, namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRequest {
    /// Only objects of this kind (`Pod`, `CiliumNetworkPolicy`, ...); every kind if
    /// `None`. An unknown kind is refused with [`ErrorKind::InvalidRequest`].
    pub kind: Option<String>,
    /// Only objects of this namespace; cluster-scoped objects never match a namespace.
    /// Every namespace if `None`.
    pub namespace: Option<String>,
}

/// A security identity: a numeric id for a set of labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The numeric identity (reserved ones below 256: host 1, world 2, ...).
    pub id: u32,
    /// Its labels in Cilium's `source:key=value` form (`k8s:app=web`,
    /// `reserved:host`), sorted.
    pub labels: Vec<String>,
}
