//! Policy map: per endpoint and direction, which identities may talk on which ports.
//!
//! One LPM trie serves every endpoint (no per-endpoint size limit). The key's fixed part
//! is endpoint, direction, protocol and peer identity; the destination port follows in
//! network byte order, so a port range is a set of port prefixes. Protocol 0 and identity
//! 0 are the wildcards "any protocol" and "any peer"; the datapath looks up the four
//! combinations and deny wins over allow.

/// Data part of a policy LPM key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    /// Local endpoint id the rule belongs to.
    pub endpoint_id: u16,
    /// `crate::metrics::direction` constant (EGRESS: the endpoint sends; INGRESS: it
    /// receives).
    pub direction: u8,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Peer security identity, 0 for any.
    pub identity: u32,
    /// Destination port (network byte order); for ICMP the type, in the high byte.
    pub port: u16,
    /// Padding, always zero (outside the prefix).
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<PolicyKey>() == 12);

/// Bits of the key before the port: endpoint, direction, protocol and identity.
pub const POLICY_FIXED_BITS: u32 = 64;

/// What a matching rule says.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyEntry {
    /// A [`policy_action`] constant.
    pub action: u8,
    /// Padding, always zero.
    pub _pad: u8,
    /// Proxy port for L7 redirection (0 when none).
    pub proxy_port: u16,
    /// Identifier of the rule that produced the entry (for `policy trace` and flows).
    pub rule_id: u32,
}
const _: () = assert!(core::mem::size_of::<PolicyEntry>() == 8);

/// Values of [`PolicyEntry::action`].
pub mod policy_action {
    /// Allow.
    pub const ALLOW: u8 = 1;
    /// Deny (wins over any allow).
    pub const DENY: u8 = 2;
}

/// How a verdict matched, as Hubble reports it.
pub mod match_kind {
    /// No rule matched (default verdict).
    pub const NONE: u8 = 0;
    /// Identity only, any protocol and port.
    pub const L3_ONLY: u8 = 1;
    /// Identity and port.
    pub const L3_L4: u8 = 2;
    /// Port only, any identity.
    pub const L4_ONLY: u8 = 3;
    /// Any identity, any port.
    pub const ALL: u8 = 4;
}

/// The aligned power-of-two port blocks covering `first..=last`, as (first port of the
/// block, prefix bits): the LPM keys of a port range. Yields nothing when
/// `first > last`. Shared by the datapath (writing entries) and the policy compiler
/// (emulating lookups), so both split ranges identically.
pub fn port_prefixes(first: u16, last: u16) -> impl Iterator<Item = (u16, u32)> {
    let (mut lo, hi) = (u32::from(first), u32::from(last));
    core::iter::from_fn(move || {
        if lo > hi {
            return None;
        }
        // The largest block that starts at `lo` (aligned) and ends at or before `hi`.
        let mut size = if lo == 0 {
            1 << 16
        } else {
            1u32 << lo.trailing_zeros().min(16)
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        let block = (lo as u16, 16 - size.trailing_zeros());
        lo += size;
        Some(block)
    })
}
