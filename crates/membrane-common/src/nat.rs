//! Masquerade (SNAT) translations.
//!
//! Each masqueraded connection has two entries in the NAT map, both keyed by a
//! [`crate::CtKey`]: the original tuple (pod to remote) maps to the node address and port
//! it is rewritten to, and the reply tuple as it arrives at the node (remote to node
//! address and port) maps back to the pod address and port.

use crate::tuple::IpAddrBytes;

/// The address and port a tuple is rewritten to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatEntry {
    /// New address (source for egress entries, destination for reply entries).
    pub addr: IpAddrBytes,
    /// New port (network byte order); for ICMP echo, the new identifier.
    pub port: u16,
    /// Padding, always zero.
    pub _pad: [u8; 6],
    /// `bpf_ktime_get_ns` when the translation was created.
    pub created_ns: u64,
}
const _: () = assert!(core::mem::size_of::<NatEntry>() == 32);
