//! Flow events: what the datapath reports about a packet through the events ring buffer.

use crate::CtKey;

/// One datapath event. Written into a per-CPU scratch slot while a program runs, and
/// copied into the ring buffer when it is to be reported.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    /// `bpf_ktime_get_ns` when the packet was seen.
    pub timestamp_ns: u64,
    /// The packet's tuple as it arrived (before any translation).
    pub tuple: CtKey,
    /// Destination address after Service translation (zero when untranslated).
    pub xlated_daddr: [u8; 16],
    /// Destination port after Service translation (network byte order, 0 if none).
    pub xlated_dport: u16,
    /// Local endpoint id of the source, 0 if not local.
    pub src_endpoint: u16,
    /// Local endpoint id of the destination, 0 if not local.
    pub dst_endpoint: u16,
    /// Padding, always zero.
    pub _pad0: u16,
    /// Reverse-NAT index of the Service the packet was translated for, 0 if none.
    pub rev_nat_index: u32,
    /// Security identity of the source, 0 if unknown.
    pub src_identity: u32,
    /// Security identity of the destination, 0 if unknown.
    pub dst_identity: u32,
    /// Packet length in bytes.
    pub len: u32,
    /// Interface the program ran on.
    pub ifindex: u32,
    /// An [`event_kind`] constant.
    pub kind: u8,
    /// The metrics reason code: what happened (see `crate::metrics::reason`).
    pub reason: u8,
    /// `crate::metrics::direction` constant.
    pub direction: u8,
    /// An [`observation_point`] constant.
    pub observation_point: u8,
    /// TCP flags of the packet, 0 for other protocols.
    pub tcp_flags: u8,
    /// A [`ct_state`] constant.
    pub ct_state: u8,
    /// `crate::policy::match_kind` of the policy verdict, when policy was evaluated.
    pub policy_match: u8,
    /// A [`policy_verdict`] constant: 0 when no policy was evaluated.
    pub policy_verdict: u8,
    /// ICMP or ICMPv6 type of the packet, 0 for other protocols.
    pub icmp_type: u8,
    /// ICMP or ICMPv6 code of the packet, 0 for other protocols.
    pub icmp_code: u8,
    /// Padding, always zero.
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<FlowEvent>() == 104);

/// Kinds of events.
pub mod event_kind {
    /// A packet was forwarded (at an observation point).
    pub const TRACE: u8 = 1;
    /// A packet was dropped (the reason says why).
    pub const DROP: u8 = 2;
    /// A policy verdict.
    pub const POLICY_VERDICT: u8 = 3;
    /// A socket's destination was translated (socket-level load balancing).
    pub const SOCK_TRANSLATE: u8 = 4;
}

/// Where a traced packet was seen, as Hubble names them.
pub mod observation_point {
    /// Unknown.
    pub const UNKNOWN: u8 = 0;
    /// Leaving a local endpoint (its host-side veth).
    pub const FROM_ENDPOINT: u8 = 1;
    /// Delivered into a local endpoint.
    pub const TO_ENDPOINT: u8 = 2;
    /// Handed to the node's network stack.
    pub const TO_STACK: u8 = 3;
    /// Sent out of the node to the network.
    pub const TO_NETWORK: u8 = 4;
    /// Sent through the tunnel to another node.
    pub const TO_OVERLAY: u8 = 5;
    /// Arrived from the network.
    pub const FROM_NETWORK: u8 = 6;
    /// Arrived through the tunnel.
    pub const FROM_OVERLAY: u8 = 7;
}

/// Connection-tracking state of the packet.
pub mod ct_state {
    /// Unknown (not tracked).
    pub const UNKNOWN: u8 = 0;
    /// The first packet of a connection.
    pub const NEW: u8 = 1;
    /// A later packet in the original direction.
    pub const ESTABLISHED: u8 = 2;
    /// A packet in the reply direction.
    pub const REPLY: u8 = 3;
}

/// Outcome of a policy evaluation.
pub mod policy_verdict {
    /// Not evaluated.
    pub const NONE: u8 = 0;
    /// Allowed.
    pub const ALLOWED: u8 = 1;
    /// Denied (the packet was dropped).
    pub const DENIED: u8 = 2;
    /// Would have been denied; let through in audit mode.
    pub const AUDIT: u8 = 3;
}

/// Bits of the config's `flags` controlling events (see `crate::config::config_flags`).
pub mod event_flags {
    /// Report every packet, not only each connection's first packet, TCP flag changes
    /// and drops.
    pub const ALL: u16 = 1 << 8;
    /// Emit no trace events (drops are still reported).
    pub const NO_TRACE: u16 = 1 << 9;
}
