//! The ipcache: which security identity an address has and which node hosts it.

use crate::tuple::IpAddrBytes;

/// Data part of an ipcache LPM key. The prefix length given to the trie counts the 32
/// bits of `family` and padding plus the address bits.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpcacheAddr {
    /// [`crate::Family`] constant.
    pub family: u8,
    /// Padding, always zero.
    pub _pad: [u8; 3],
    /// The address or prefix, 16-byte form.
    pub addr: IpAddrBytes,
}
const _: () = assert!(core::mem::size_of::<IpcacheAddr>() == 20);

/// Bits of the LPM key before the address: family and padding.
pub const IPCACHE_PREFIX_BITS: u32 = 32;

/// What the cluster knows about an address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpcacheEntry {
    /// Security identity of the address.
    pub identity: u32,
    /// Underlay address of the node hosting it; all zero for this node or outside the
    /// cluster.
    pub tunnel_endpoint: IpAddrBytes,
    /// [`crate::Family`] of `tunnel_endpoint`, 0 when there is none.
    pub tunnel_family: u8,
    /// Padding, always zero.
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<IpcacheEntry>() == 24);
