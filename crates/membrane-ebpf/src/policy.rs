//! Policy enforcement for new connections: the four lookups (peer and port, any peer on
//! the port, the peer on any port, anything), deny over allow, default deny once a
//! policy selects the endpoint in that direction, audit mode.

use crate::ct::forget;
use crate::events;
use crate::maps::POLICY;
use crate::packet::Packet;
use aya_ebpf::maps::lpm_trie::Key;
use membrane_common::endpoint::endpoint_flags;
use membrane_common::events::policy_verdict;
use membrane_common::metrics::{direction, reason};
use membrane_common::policy::{match_kind, policy_action};
use membrane_common::tuple::proto;
use membrane_common::{EndpointInfo, POLICY_FIXED_BITS, PolicyKey};

/// The port a rule names for this packet: the destination port, or for ICMP the type
/// (in the high byte, as a port in network byte order would hold it).
#[inline(always)]
fn policy_port(pkt: &Packet) -> u16 {
    if pkt.key.proto == proto::ICMP || pkt.key.proto == proto::ICMPV6 {
        u16::from_ne_bytes([pkt.icmp_type, 0])
    } else {
        pkt.key.dport
    }
}

/// The action of the longest rule matching `key` with a full port, if any.
#[inline(always)]
fn lookup(key: &PolicyKey, port_bits: u32) -> u8 {
    let k = Key::new(POLICY_FIXED_BITS + port_bits, *key);
    POLICY.get(&k).map_or(0, |e| e.action)
}

/// Decides a new connection of endpoint `ep` in `dir` with a peer of `peer` identity.
/// `Err` is the drop reason; the connection's conntrack entry is then removed so the
/// next packet is decided again.
#[inline(never)]
pub fn enforce(pkt: &Packet, ep: &EndpointInfo, dir: u8, peer: u32) -> Result<(), u8> {
    let enforced = if dir == direction::EGRESS {
        endpoint_flags::EGRESS_ENFORCED
    } else {
        endpoint_flags::INGRESS_ENFORCED
    };
    if ep.flags & enforced == 0 {
        return Ok(());
    }
    let mut key = PolicyKey {
        endpoint_id: ep.endpoint_id,
        direction: dir,
        proto: pkt.key.proto,
        identity: peer,
        port: policy_port(pkt),
        _pad: 0,
    };
    let l3_l4 = lookup(&key, 16);
    key.identity = 0;
    let l4_only = lookup(&key, 16);
    key.identity = peer;
    key.proto = 0;
    key.port = 0;
    let l3_only = lookup(&key, 0);
    key.identity = 0;
    let all = lookup(&key, 0);

    let deny = policy_action::DENY;
    let (verdict, matched) = if l3_l4 == deny || l4_only == deny || l3_only == deny || all == deny {
        (Err(reason::DROP_POLICY_DENY), match_kind::NONE)
    } else if l3_l4 != 0 {
        (Ok(()), match_kind::L3_L4)
    } else if l3_only != 0 {
        (Ok(()), match_kind::L3_ONLY)
    } else if l4_only != 0 {
        (Ok(()), match_kind::L4_ONLY)
    } else if all != 0 {
        (Ok(()), match_kind::ALL)
    } else {
        (Err(reason::DROP_POLICY), match_kind::NONE)
    };
    match verdict {
        Ok(()) => {
            events::policy(policy_verdict::ALLOWED, matched);
            Ok(())
        }
        Err(_) if ep.flags & endpoint_flags::POLICY_AUDIT != 0 => {
            events::policy(policy_verdict::AUDIT, matched);
            Ok(())
        }
        Err(drop) => {
            events::policy(policy_verdict::DENIED, matched);
            forget(&pkt.key);
            Err(drop)
        }
    }
}
