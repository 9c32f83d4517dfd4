//! Connection tracking: the key (a 5-tuple) and the per-connection state.

use crate::tuple::IpAddrBytes;

/// A connection's 5-tuple as seen in one direction. Ports are in network byte order.
/// For ICMP echo, both ports hold the echo identifier so that the reversed tuple of a
/// request is the tuple of its reply.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtKey {
    /// Source address.
    pub saddr: IpAddrBytes,
    /// Destination address.
    pub daddr: IpAddrBytes,
    /// Source port (network byte order).
    pub sport: u16,
    /// Destination port (network byte order).
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// [`crate::Family`] constant.
    pub family: u8,
    /// Padding, always zero.
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<CtKey>() == 40);

impl CtKey {
    /// The same connection seen from the other direction.
    pub const fn reversed(&self) -> CtKey {
        CtKey {
            saddr: self.daddr,
            daddr: self.saddr,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
            family: self.family,
            _pad: [0; 2],
        }
    }
}

/// State of one tracked connection, stored under the tuple of its first packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtEntry {
    /// `bpf_ktime_get_ns` when the first packet was seen.
    pub created_ns: u64,
    /// `bpf_ktime_get_ns` of the latest packet in either direction.
    pub last_seen_ns: u64,
    /// Packets in the original direction.
    pub packets_fwd: u64,
    /// Bytes in the original direction.
    pub bytes_fwd: u64,
    /// Packets in the reply direction.
    pub packets_rev: u64,
    /// Bytes in the reply direction.
    pub bytes_rev: u64,
    /// [`ct_flags`] bits.
    pub flags: u32,
    /// Host-side interface index of the endpoint that opened the connection, 0 if none.
    pub src_ifindex: u32,
    /// Security identity of the connection's source as the datapath learned it (from
    /// the tunnel's VNI, the ipcache, or the local endpoint), 0 if unknown.
    pub src_identity: u32,
    /// Reverse-NAT index of the Service frontend the connection was translated from
    /// (replies get the frontend as source), 0 if none.
    pub rev_nat_index: u32,
    /// For a Service entry ([`ct_flags::SERVICE`], keyed by the client-to-frontend
    /// tuple): the backend the connection was given.
    pub backend_id: u32,
    /// Padding, always zero.
    pub _pad2: u32,
}
const _: () = assert!(core::mem::size_of::<CtEntry>() == 72);

/// Bits of [`CtEntry::flags`].
pub mod ct_flags {
    /// A SYN was seen in the original direction.
    pub const SYN_FWD: u32 = 1 << 0;
    /// A SYN (SYN-ACK) was seen in the reply direction.
    pub const SYN_REV: u32 = 1 << 1;
    /// Traffic was seen in both directions.
    pub const ESTABLISHED: u32 = 1 << 2;
    /// A FIN was seen in the original direction.
    pub const FIN_FWD: u32 = 1 << 3;
    /// A FIN was seen in the reply direction.
    pub const FIN_REV: u32 = 1 << 4;
    /// A RST was seen.
    pub const RST: u32 = 1 << 5;
    /// The connection is masqueraded; its NAT entries live in the NAT map.
    pub const SNAT: u32 = 1 << 6;
    /// A Service entry: keyed by the client-to-frontend tuple, it pins the backend.
    pub const SERVICE: u32 = 1 << 7;
    /// A direct-server-return connection to a local backend: the NAT map holds, under
    /// the reply's tuple, the frontend its replies leave from.
    pub const DSR: u32 = 1 << 8;
}

/// Idle timeouts after which the agent collects a connection, in nanoseconds.
pub mod ct_timeouts {
    /// An established TCP connection.
    pub const TCP_ESTABLISHED_NS: u64 = 6 * 3600 * 1_000_000_000;
    /// A TCP connection that has not completed its handshake, or has closed.
    pub const TCP_SHORT_NS: u64 = 60 * 1_000_000_000;
    /// UDP and ICMP flows, and anything else without connection state.
    pub const DATAGRAM_NS: u64 = 60 * 1_000_000_000;
}
