//! Addresses as the datapath stores them: 16 bytes for both families.

/// An IPv4 or IPv6 address in network byte order. IPv4 uses the first 4 bytes; the
/// other 12 are zero, so one key type serves both families.
pub type IpAddrBytes = [u8; 16];

/// Address family constants, as stored in the `family` byte of keys.
pub struct Family;

impl Family {
    /// IPv4.
    pub const V4: u8 = 4;
    /// IPv6.
    pub const V6: u8 = 6;
}

/// Builds the 16-byte form of an IPv4 address.
pub const fn v4_bytes(a: [u8; 4]) -> IpAddrBytes {
    [a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// IP protocol numbers the datapath understands.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP (policed by port; not load-balanced or masqueraded).
    pub const SCTP: u8 = 132;
}
