//! Datapath settings, written by the agent into the pinned config map.

use crate::tuple::IpAddrBytes;

/// Node-wide datapath settings, one entry at index 0 of the config map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatapathConfig {
    /// The node's IPv4 address, used as the masquerade source.
    pub node_ipv4: IpAddrBytes,
    /// The node's IPv6 address, used as the masquerade source.
    pub node_ipv6: IpAddrBytes,
    /// Destinations inside this IPv4 prefix are never masqueraded (the cluster's pods).
    pub non_masq_ipv4: IpAddrBytes,
    /// Destinations inside this IPv6 prefix are never masqueraded.
    pub non_masq_ipv6: IpAddrBytes,
    /// Interface index of the device masquerading applies to (the uplink).
    pub masq_ifindex: u32,
    /// First port of the masquerade range (host byte order).
    pub nat_port_min: u16,
    /// Last port of the masquerade range (host byte order).
    pub nat_port_max: u16,
    /// Prefix length of [`Self::non_masq_ipv4`] (0 disables the exemption).
    pub non_masq_ipv4_len: u8,
    /// Prefix length of [`Self::non_masq_ipv6`] (0 disables the exemption).
    pub non_masq_ipv6_len: u8,
    /// [`config_flags`] bits.
    pub flags: u16,
    /// A [`routing_mode`] constant: how packets reach pods on other nodes.
    pub routing_mode: u8,
    /// Padding, always zero.
    pub _pad: [u8; 3],
    /// Interface index of the tunnel device (tunnel mode only).
    pub tunnel_ifindex: u32,
    /// Size of every Maglev lookup table (a prime).
    pub maglev_table_size: u32,
}
const _: () = assert!(core::mem::size_of::<DatapathConfig>() == 88);

/// Values of [`DatapathConfig::routing_mode`].
pub mod routing_mode {
    /// Other nodes' pod CIDRs are routed by the node's FIB (routes installed by the
    /// agent); the datapath forwards with a FIB lookup.
    pub const NATIVE: u8 = 0;
    /// Packets to other nodes' pods are encapsulated by a collect-metadata VXLAN device;
    /// the VNI carries the source's security identity.
    pub const TUNNEL: u8 = 1;
}

/// Bits of [`DatapathConfig::flags`].
pub mod config_flags {
    /// The entry has been written by the agent.
    pub const VALID: u16 = 1 << 0;
    /// Masquerade IPv4 traffic leaving the node.
    pub const MASQUERADE_V4: u16 = 1 << 1;
    /// Masquerade IPv6 traffic leaving the node.
    pub const MASQUERADE_V6: u16 = 1 << 2;
    /// Direct server return for TCP Services reached from outside (native routing).
    pub const DSR: u16 = 1 << 3;
}
