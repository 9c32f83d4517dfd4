//! Types shared by the eBPF programs and userspace: map keys and values, map names, constants.
//!
//! Every type is `#[repr(C)]` with explicit padding and a size assertion, so that the
//! kernel and user sides agree byte for byte. No `bool`, `Option` or Rust enums appear
//! inside map types: integers plus named constants.
#![no_std]
#![deny(missing_docs)]

pub mod config;
pub mod ct;
pub mod endpoint;
pub mod events;
pub mod identity;
pub mod ipcache;
pub mod lb;
pub mod metrics;
pub mod nat;
#[cfg(feature = "user")]
mod pod;
pub mod policy;
pub mod tuple;

pub use config::DatapathConfig;
pub use ct::{CtEntry, CtKey};
pub use endpoint::{EndpointInfo, EndpointKey, NetnsEndpoint};
pub use events::FlowEvent;
pub use ipcache::{IPCACHE_PREFIX_BITS, IpcacheAddr, IpcacheEntry};
pub use lb::{
    AffinityKey, AffinityValue, Backend, MaglevKey, RevNat, ServiceKey, ServiceValue, SockRevKey,
};
pub use metrics::{METRICS_SLOTS, MetricsValue, metrics_index};
pub use nat::NatEntry;
pub use policy::{POLICY_FIXED_BITS, PolicyEntry, PolicyKey};
pub use tuple::{Family, IpAddrBytes};

/// Names of the pinned maps, spelled once for both sides.
pub mod map_names {
    /// Datapath settings ([`crate::DatapathConfig`]), one entry at index 0.
    pub const CONFIG: &str = "MEMBRANE_CONFIG";
    /// Local endpoints by address ([`crate::EndpointKey`] to [`crate::EndpointInfo`]).
    pub const ENDPOINTS: &str = "MEMBRANE_ENDPOINTS";
    /// Local endpoints by network namespace cookie (for the socket hooks' events).
    pub const NETNS_ENDPOINTS: &str = "MEMBRANE_NETNS_ENDPOINTS";
    /// Connection tracking (LRU, [`crate::CtKey`] to [`crate::CtEntry`]).
    pub const CT: &str = "MEMBRANE_CT";
    /// Masquerade translations in both directions (LRU, [`crate::CtKey`] to [`crate::NatEntry`]).
    pub const NAT: &str = "MEMBRANE_NAT";
    /// Address to identity and hosting node (LPM trie, [`crate::IpcacheAddr`] to
    /// [`crate::IpcacheEntry`]).
    pub const IPCACHE: &str = "MEMBRANE_IPCACHE";
    /// Service frontends and their backend slots ([`crate::ServiceKey`] to
    /// [`crate::ServiceValue`]).
    pub const SERVICES: &str = "MEMBRANE_SERVICES";
    /// Backends by id (`u32` to [`crate::Backend`]).
    pub const BACKENDS: &str = "MEMBRANE_BACKENDS";
    /// Frontends by reverse-NAT index (`u32` to [`crate::RevNat`]).
    pub const REV_NAT: &str = "MEMBRANE_REV_NAT";
    /// Session affinity (LRU, [`crate::AffinityKey`] to [`crate::AffinityValue`]).
    pub const AFFINITY: &str = "MEMBRANE_AFFINITY";
    /// Maglev lookup tables ([`crate::MaglevKey`] to backend id).
    pub const MAGLEV: &str = "MEMBRANE_MAGLEV";
    /// Socket-level reverse translation (LRU, [`crate::SockRevKey`] to [`crate::RevNat`]).
    pub const SOCK_REV_NAT: &str = "MEMBRANE_SOCK_REV_NAT";
    /// Policy rules of every endpoint (LPM trie, [`crate::PolicyKey`] to
    /// [`crate::PolicyEntry`]).
    pub const POLICY: &str = "MEMBRANE_POLICY";
    /// Flow events (ring buffer of [`crate::FlowEvent`]).
    pub const EVENTS: &str = "MEMBRANE_EVENTS";
    /// Per-CPU scratch slot where the running program assembles its event.
    pub const EVENT_SCRATCH: &str = "MEMBRANE_EVENT_SCRATCH";
    /// Per-CPU packet and byte counters, indexed by [`crate::metrics_index`].
    pub const METRICS: &str = "MEMBRANE_METRICS";
}

/// Names of the eBPF programs, as the loader finds them in the object.
pub mod program_names {
    /// tc ingress on a pod's host-side veth: traffic leaving the pod.
    pub const FROM_CONTAINER: &str = "from_container";
    /// tc ingress on the node's uplink: traffic arriving from the network.
    pub const FROM_NETDEV: &str = "from_netdev";
    /// XDP on the node's uplink: Services reached from outside whose backend is on
    /// another node, translated and sent back out before the stack sees them.
    pub const XDP_FROM_NETDEV: &str = "xdp_from_netdev";
    /// tc ingress on the tunnel device: decapsulated traffic from other nodes.
    pub const FROM_OVERLAY: &str = "from_overlay";
    /// tc egress on the tunnel device: the node's own traffic to pods of other nodes.
    pub const HOST_TO_OVERLAY: &str = "host_to_overlay";
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{align_of, size_of};

    #[test]
    fn map_types_have_the_layout_the_kernel_side_expects() {
        assert_eq!(size_of::<CtKey>(), 40);
        assert_eq!(size_of::<CtEntry>(), 72);
        assert_eq!(size_of::<NatEntry>(), 32);
        assert_eq!(size_of::<EndpointKey>(), 20);
        assert_eq!(size_of::<EndpointInfo>(), 24);
        assert_eq!(size_of::<MetricsValue>(), 16);
        assert_eq!(size_of::<DatapathConfig>(), 88);
        assert_eq!(size_of::<IpcacheAddr>(), 20);
        assert_eq!(size_of::<IpcacheEntry>(), 24);
        assert_eq!(size_of::<ServiceKey>(), 24);
        assert_eq!(size_of::<ServiceValue>(), 24);
        assert_eq!(size_of::<Backend>(), 24);
        assert_eq!(size_of::<RevNat>(), 20);
        assert_eq!(size_of::<AffinityKey>(), 24);
        assert_eq!(size_of::<AffinityValue>(), 16);
        assert_eq!(size_of::<MaglevKey>(), 8);
        assert_eq!(size_of::<SockRevKey>(), 32);
        assert_eq!(size_of::<FlowEvent>(), 104);
        assert_eq!(size_of::<PolicyKey>(), 12);
        assert_eq!(size_of::<PolicyEntry>(), 8);
        assert_eq!(align_of::<CtEntry>(), 8);
    }
}
