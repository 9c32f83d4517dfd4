//! Local endpoints (pods on this node), looked up by address.

use crate::tuple::IpAddrBytes;

/// Key of the endpoints map: one of a pod's addresses.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// The pod address.
    pub addr: IpAddrBytes,
    /// [`crate::Family`] constant.
    pub family: u8,
    /// Padding, always zero.
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<EndpointKey>() == 20);

/// How to deliver a packet to a local endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// Interface index of the pod's host-side veth (the redirect target).
    pub ifindex: u32,
    /// Endpoint id (assigned by the agent, unique on the node).
    pub endpoint_id: u16,
    /// [`endpoint_flags`] bits.
    pub flags: u16,
    /// MAC address of the pod's interface (destination MAC of delivered frames).
    pub pod_mac: [u8; 6],
    /// MAC address of the host-side veth (source MAC of delivered frames).
    pub host_mac: [u8; 6],
    /// Security identity of the endpoint (0 until identities exist).
    pub identity: u32,
}
const _: () = assert!(core::mem::size_of::<EndpointInfo>() == 24);

/// A local endpoint as the socket hooks find it: by the network namespace cookie of the
/// calling socket (the pod's namespace), so socket-level events name their pod.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetnsEndpoint {
    /// Endpoint id.
    pub endpoint_id: u16,
    /// Padding, always zero.
    pub _pad: u16,
    /// Security identity of the endpoint.
    pub identity: u32,
    /// The pod's IPv4 address, zero when it has none.
    pub ipv4: [u8; 4],
    /// The pod's IPv6 address, zero when it has none.
    pub ipv6: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<NetnsEndpoint>() == 28);

/// Bits of [`EndpointInfo::flags`].
pub mod endpoint_flags {
    /// The endpoint is being deleted: deliver nothing new to it.
    pub const TERMINATING: u16 = 1 << 0;
    /// Some policy selects the endpoint for ingress: what no rule allows is denied.
    pub const INGRESS_ENFORCED: u16 = 1 << 1;
    /// Some policy selects the endpoint for egress: what no rule allows is denied.
    pub const EGRESS_ENFORCED: u16 = 1 << 2;
    /// Audit mode: would-be policy drops are reported and let through.
    pub const POLICY_AUDIT: u16 = 1 << 3;
}
