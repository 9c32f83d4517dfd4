//! Verdicts from compiled entries, the way the datapath reaches them: four longest-prefix
//! lookups (peer and port, any peer on the port, the peer on any port, anything), deny
//! over allow, default deny when the direction is enforced, audit lets would-be drops
//! through.

use crate::clause::{icmp_port, proto};
use crate::output::{Direction, EndpointPolicy, Entry, EntryKey};

/// What one endpoint decides for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The direction is not enforced.
    NotEnforced,
    /// An allow entry matched and no deny did.
    Allowed,
    /// A deny entry matched, or nothing allowed under default deny.
    Denied,
    /// Would be denied, but audit mode lets it through.
    Audit,
}

/// Which lookup decided, as Hubble reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    /// No entry matched (default verdict) or a deny decided.
    None,
    /// The peer on every port.
    L3Only,
    /// The peer on the port.
    L3L4,
    /// Any peer on the port.
    L4Only,
    /// Any peer, any port.
    All,
}

/// One endpoint's decision and the entries that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// How it matched.
    pub matched: MatchKind,
    /// The rule ids of the entries that decided (every matching deny, or the allow).
    pub rules: Vec<u32>,
}

/// The policy port of a packet: the destination port, or for ICMP/ICMPv6 the type in the
/// high byte (as the datapath reads it).
pub fn policy_port(protocol: u8, port_or_type: u16) -> u16 {
    if protocol == proto::ICMP || protocol == proto::ICMPV6 {
        icmp_port(port_or_type.min(255) as u8)
    } else {
        port_or_type
    }
}

/// The longest entry of the fixed part whose ports contain `port`.
fn lookup(
    policy: &EndpointPolicy,
    direction: Direction,
    protocol: u8,
    identity: u32,
    port: u16,
) -> Option<(&EntryKey, &Entry)> {
    let start = EntryKey {
        direction,
        proto: protocol,
        identity,
        port: 0,
        prefix_bits: 0,
    };
    policy
        .entries
        .range(start..)
        .take_while(|(k, _)| (k.direction, k.proto, k.identity) == (direction, protocol, identity))
        .filter(|(k, _)| k.ports().contains(&port))
        .max_by_key(|(k, _)| k.prefix_bits)
}

/// What `policy` decides for a packet in `direction` with a peer of `peer` identity,
/// protocol `protocol` and policy port `port` (see [`policy_port`]).
pub fn decide(
    policy: &EndpointPolicy,
    direction: Direction,
    peer: u32,
    protocol: u8,
    port: u16,
) -> Decision {
    let enforced = match direction {
        Direction::Ingress => policy.ingress_enforced,
        Direction::Egress => policy.egress_enforced,
    };
    if !enforced {
        return Decision {
            verdict: Verdict::NotEnforced,
            matched: MatchKind::None,
            rules: Vec::new(),
        };
    }
    let found = [
        (
            MatchKind::L3L4,
            lookup(policy, direction, protocol, peer, port),
        ),
        (
            MatchKind::L4Only,
            lookup(policy, direction, protocol, 0, port),
        ),
        (MatchKind::L3Only, lookup(policy, direction, 0, peer, 0)),
        (MatchKind::All, lookup(policy, direction, 0, 0, 0)),
    ];
    let denies: Vec<u32> = found
        .iter()
        .filter_map(|(_, hit)| hit.filter(|(_, e)| e.deny).map(|(_, e)| e.rule_id))
        .collect();
    let default = if policy.audit {
        Verdict::Audit
    } else {
        Verdict::Denied
    };
    if !denies.is_empty() {
        return Decision {
            verdict: default,
            matched: MatchKind::None,
            rules: denies,
        };
    }
    // The datapath's order of preference among allows.
    let order = [
        MatchKind::L3L4,
        MatchKind::L3Only,
        MatchKind::L4Only,
        MatchKind::All,
    ];
    for kind in order {
        if let Some((_, Some((_, entry)))) = found.iter().find(|(k, _)| *k == kind) {
            return Decision {
                verdict: Verdict::Allowed,
                matched: kind,
                rules: vec![entry.rule_id],
            };
        }
    }
    Decision {
        verdict: default,
        matched: MatchKind::None,
        rules: Vec::new(),
    }
}

/// The path of a packet from one endpoint to another: the sender's egress decision (when
/// the sender is an endpoint) and the receiver's ingress decision (when the receiver is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// At the sender.
    pub egress: Option<Decision>,
    /// At the receiver.
    pub ingress: Option<Decision>,
}

impl Trace {
    /// The packet's fate: denied if either side denies, audit if either would, else
    /// allowed.
    pub fn verdict(&self) -> Verdict {
        let verdicts: Vec<Verdict> = [&self.egress, &self.ingress]
            .into_iter()
            .flatten()
            .map(|d| d.verdict)
            .collect();
        if verdicts.contains(&Verdict::Denied) {
            Verdict::Denied
        } else if verdicts.contains(&Verdict::Audit) {
            Verdict::Audit
        } else {
            Verdict::Allowed
        }
    }
}

/// Traces a packet from `from` (its compiled policy, if it is an endpoint, and its
/// identity) to `to`, with protocol `protocol` and destination port or ICMP type
/// `port`.
pub fn trace(
    from: (Option<&EndpointPolicy>, u32),
    to: (Option<&EndpointPolicy>, u32),
    protocol: u8,
    port: u16,
) -> Trace {
    let port = policy_port(protocol, port);
    Trace {
        egress: from
            .0
            .map(|policy| decide(policy, Direction::Egress, to.1, protocol, port)),
        ingress: to
            .0
            .map(|policy| decide(policy, Direction::Ingress, from.1, protocol, port)),
    }
}
