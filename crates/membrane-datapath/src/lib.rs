//! Loads, pins and attaches the eBPF programs and maps, and gives typed access to the maps.
//!
//! INTERFACE STUB: the signatures below are the contract the agent codes against; the
//! bodies are being written.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::path::PathBuf;

/// Errors of the datapath.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// Placeholder while the loader is written.
    #[error("datapath not implemented yet")]
    NotImplemented,
}

/// Node-wide settings the datapath is loaded with.
#[derive(Clone, Debug)]
pub struct DatapathOptions {
    /// Directory under bpffs where this node's maps and links are pinned
    /// (`/sys/fs/bpf/membrane/<node>`); created if missing.
    pub pin_dir: PathBuf,
    /// The node's IPv4 address (masquerade source), if any.
    pub node_ipv4: Option<Ipv4Addr>,
    /// The node's IPv6 address (masquerade source), if any.
    pub node_ipv6: Option<Ipv6Addr>,
    /// Name of the uplink device: replies to masqueraded traffic arrive here, and
    /// masquerading applies to traffic leaving through it.
    pub uplink: String,
    /// IPv4 destinations never masqueraded (the cluster's pod CIDR).
    pub non_masquerade_v4: Option<ipnet::Ipv4Net>,
    /// IPv6 destinations never masqueraded.
    pub non_masquerade_v6: Option<ipnet::Ipv6Net>,
    /// Source ports used for masquerading.
    pub nat_ports: RangeInclusive<u16>,
}

/// What the datapath needs to know about one local endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Node-unique endpoint id.
    pub id: u16,
    /// Name of the host-side veth.
    pub host_ifname: String,
    /// Interface index of the host-side veth.
    pub host_ifindex: u32,
    /// MAC of the host-side veth.
    pub host_mac: [u8; 6],
    /// MAC of the pod's interface.
    pub pod_mac: [u8; 6],
    /// The pod's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
}

/// The node's loaded datapath.
pub struct Datapath {}

impl Datapath {
    /// Loads the programs, creates or adopts the pinned maps under `pin_dir`, writes the
    /// config map and attaches the uplink program. Safe to call again after a restart:
    /// pinned maps (conntrack, NAT) and attached endpoint programs are adopted.
    pub fn load(_options: &DatapathOptions) -> Result<Datapath, DatapathError> {
        Err(DatapathError::NotImplemented)
    }

    /// Attaches the endpoint program to the host-side veth and writes the endpoint's
    /// map entries. Idempotent: re-attaching an adopted endpoint replaces its program
    /// without a gap.
    pub fn attach_endpoint(&mut self, _endpoint: &EndpointSpec) -> Result<(), DatapathError> {
        Err(DatapathError::NotImplemented)
    }

    /// Removes the endpoint's map entries and its program's pinned link. Idempotent.
    pub fn detach_endpoint(&mut self, _endpoint: &EndpointSpec) -> Result<(), DatapathError> {
        Err(DatapathError::NotImplemented)
    }

    /// Deletes conntrack entries idle longer than their timeout; returns how many.
    pub fn collect_conntrack(&mut self) -> Result<usize, DatapathError> {
        Err(DatapathError::NotImplemented)
    }
}
