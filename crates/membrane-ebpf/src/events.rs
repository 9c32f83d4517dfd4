//! Flow events: each program assembles one event in a per-CPU scratch slot while it
//! decides, then reports it through the ring buffer if the event is worth reporting
//! (every drop; a connection's first packet and TCP flag changes; everything when the
//! agent asks for it). A full ring buffer is counted, never silent.

use crate::ct::Tracked;
use crate::maps::{EVENT_SCRATCH, EVENTS};
use crate::metrics::count;
use crate::packet::{Packet, tcp_flags};
use aya_ebpf::helpers::bpf_ktime_get_ns;
use membrane_common::FlowEvent;
use membrane_common::events::{ct_state, event_flags, event_kind, observation_point};
use membrane_common::metrics::reason;

/// The scratch event of this CPU.
#[inline(always)]
fn scratch() -> Option<*mut FlowEvent> {
    EVENT_SCRATCH.get_ptr_mut(0)
}

/// Marks the scratch event empty: nothing is reported unless [`begin`] runs.
#[inline(always)]
pub fn reset() {
    if let Some(e) = scratch() {
        // SAFETY: per-CPU slot; programs on one CPU do not interleave.
        unsafe { (*e).timestamp_ns = 0 };
    }
}

/// Starts the event of a parsed packet seen on `ifindex`.
#[inline(always)]
pub fn begin(pkt: &Packet, len: u32, ifindex: u32) {
    if let Some(e) = scratch() {
        // SAFETY: as in `reset`; every field is written.
        unsafe {
            (*e).timestamp_ns = bpf_ktime_get_ns();
            (*e).tuple = pkt.key;
            (*e).xlated_daddr = [0; 16];
            (*e).xlated_dport = 0;
            (*e).src_endpoint = 0;
            (*e).dst_endpoint = 0;
            (*e)._pad0 = 0;
            (*e).rev_nat_index = 0;
            (*e).src_identity = 0;
            (*e).dst_identity = 0;
            (*e).len = len;
            (*e).ifindex = ifindex;
            (*e).kind = 0;
            (*e).reason = 0;
            (*e).direction = 0;
            (*e).observation_point = 0;
            (*e).tcp_flags = pkt.tcp_flags;
            (*e).ct_state = ct_state::UNKNOWN;
            (*e).policy_match = 0;
            (*e).policy_verdict = 0;
            (*e).icmp_type = pkt.icmp_type;
            (*e).icmp_code = pkt.icmp_code;
            (*e)._pad = [0; 2];
        }
    }
}

/// Records the packet's source.
#[inline(always)]
pub fn source(endpoint: u16, identity: u32) {
    if let Some(e) = scratch() {
        // SAFETY: as in `reset`.
        unsafe {
            (*e).src_endpoint = endpoint;
            (*e).src_identity = identity;
        }
    }
}

/// Records the packet's destination.
#[inline(always)]
pub fn destination(endpoint: u16, identity: u32) {
    if let Some(e) = scratch() {
        // SAFETY: as in `reset`.
        unsafe {
            (*e).dst_endpoint = endpoint;
            (*e).dst_identity = identity;
        }
    }
}

/// Records the connection-tracking outcome.
#[inline(always)]
pub fn tracked(t: Tracked) {
    if let Some(e) = scratch() {
        let state = if t.is_new() {
            ct_state::NEW
        } else if t.is_reply() {
            ct_state::REPLY
        } else {
            ct_state::ESTABLISHED
        };
        // SAFETY: as in `reset`.
        unsafe { (*e).ct_state = state };
    }
}

/// Records a policy verdict and how it matched. A packet decided twice (the sender's
/// egress, then the receiver's ingress on the same node) keeps the weightier verdict:
/// an audited would-be drop is not hidden by the other side's allow.
#[inline(always)]
pub fn policy(verdict: u8, matched: u8) {
    if let Some(e) = scratch() {
        // SAFETY: as in `reset`.
        unsafe {
            if verdict >= (*e).policy_verdict {
                (*e).policy_verdict = verdict;
                (*e).policy_match = matched;
            }
        }
    }
}

/// Records the Service frontend a packet was sent to, before a backend is chosen: a
/// refusal for want of backends names its Service too.
#[inline(always)]
pub fn service(rev_nat_index: u32) {
    if let Some(e) = scratch() {
        // SAFETY: as in `reset`.
        unsafe { (*e).rev_nat_index = rev_nat_index };
    }
}

/// Records a Service translation of the destination.
#[inline(always)]
pub fn translated(pkt: &Packet, rev_nat_index: u32) {
    if rev_nat_index == 0 {
        return;
    }
    if let Some(e) = scratch() {
        // SAFETY: as in `reset`.
        unsafe {
            (*e).xlated_daddr = pkt.key.daddr;
            (*e).xlated_dport = pkt.key.dport;
            (*e).rev_nat_index = rev_nat_index;
        }
    }
}

/// What a socket hook translated: a connection (or datagram) of the socket's pod, from
/// `src` (the pod's address, zero when unknown) to the frontend `dst`:`dport`, given the
/// backend `backend`:`backend_port`.
pub struct SockTranslation<'a> {
    /// The pod's endpoint id and identity (0 when the socket is not a pod's).
    pub endpoint: (u16, u32),
    /// Source address (16-byte form).
    pub src: &'a [u8; 16],
    /// The frontend address.
    pub dst: &'a [u8; 16],
    /// The frontend port (network byte order).
    pub dport: u16,
    /// The chosen backend's address.
    pub backend: &'a [u8; 16],
    /// The backend's port (network byte order).
    pub backend_port: u16,
    /// The frontend's reverse-NAT index.
    pub rev_nat_index: u32,
    /// IP protocol.
    pub proto: u8,
    /// [`membrane_common::Family`] constant.
    pub family: u8,
}

/// Reports a socket-level translation (built on the stack: socket hooks run in process
/// context, where the tc programs' per-CPU scratch event may be in use).
#[inline(always)]
pub fn socket_translated(t: &SockTranslation<'_>) {
    let event = FlowEvent {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        timestamp_ns: unsafe { bpf_ktime_get_ns() },
        tuple: membrane_common::CtKey {
            saddr: *t.src,
            daddr: *t.dst,
            sport: 0,
            dport: t.dport,
            proto: t.proto,
            family: t.family,
            _pad: [0; 2],
        },
        xlated_daddr: *t.backend,
        xlated_dport: t.backend_port,
        src_endpoint: t.endpoint.0,
        dst_endpoint: 0,
        _pad0: 0,
        rev_nat_index: t.rev_nat_index,
        src_identity: t.endpoint.1,
        dst_identity: 0,
        len: 0,
        ifindex: 0,
        kind: event_kind::SOCK_TRANSLATE,
        reason: reason::SOCK_LB,
        direction: membrane_common::metrics::direction::EGRESS,
        observation_point: observation_point::UNKNOWN,
        tcp_flags: 0,
        ct_state: ct_state::NEW,
        policy_match: 0,
        policy_verdict: 0,
        icmp_type: 0,
        icmp_code: 0,
        _pad: [0; 2],
    };
    if EVENTS.output::<FlowEvent>(&event, 0).is_err() {
        count(reason::EVENT_LOST, event.direction, 0);
    }
}

/// Where a forwarded packet went, from its reason code.
#[inline(always)]
fn point_of(code: u8) -> u8 {
    match code {
        reason::FORWARD_LOCAL
        | reason::REVERSE_NAT
        | reason::FROM_OVERLAY
        | reason::FROM_NETWORK
        | reason::SERVICE_EXTERNAL => observation_point::TO_ENDPOINT,
        reason::TO_STACK => observation_point::TO_STACK,
        reason::MASQUERADE
        | reason::FORWARD_FIB
        | reason::XDP_SERVICE
        | reason::XDP_REVERSE_NAT => observation_point::TO_NETWORK,
        reason::TO_OVERLAY => observation_point::TO_OVERLAY,
        _ => observation_point::UNKNOWN,
    }
}

/// Finishes the event with the program's outcome and reports it when it should be.
#[inline(always)]
pub fn submit(code: u8, direction: u8, config_flags: u16) {
    let Some(e) = scratch() else { return };
    // SAFETY: as in `reset`.
    let event = unsafe { &mut *e };
    if event.timestamp_ns == 0 {
        return;
    }
    let is_drop = code >= reason::DROP_FIRST;
    if !is_drop {
        if config_flags & event_flags::NO_TRACE != 0 {
            return;
        }
        let flag_change = event.tcp_flags & (tcp_flags::SYN | tcp_flags::FIN | tcp_flags::RST) != 0;
        let new = event.ct_state == ct_state::NEW || event.ct_state == ct_state::UNKNOWN;
        if config_flags & event_flags::ALL == 0 && !flag_change && !new {
            return;
        }
    }
    event.kind = if is_drop {
        event_kind::DROP
    } else {
        event_kind::TRACE
    };
    event.reason = code;
    event.direction = direction;
    event.observation_point = if is_drop {
        observation_point::UNKNOWN
    } else {
        point_of(code)
    };
    if EVENTS.output::<FlowEvent>(&*event, 0).is_err() {
        count(reason::EVENT_LOST, direction, 0);
    }
}
