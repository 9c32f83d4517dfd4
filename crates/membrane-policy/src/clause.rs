//! The compiler's intermediate form: every policy becomes sections (which endpoints,
//! which directions they default-deny) of clauses (one peer, one port selection, allow
//! or deny), each with the description its rule id stands for.

use crate::output::{Direction, RuleRef};
use crate::universe::Selection;
use ipnet::IpNet;

/// Peers of a clause, before identities are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peers {
    /// Any peer (identity 0).
    Any,
    /// Allocated identities by labels.
    Selected(Selection),
    /// One reserved identity.
    Reserved(u32),
    /// Every identity of the cluster: the cluster's reserved ones and every allocated one.
    Cluster,
    /// Outside the cluster: `world` and the CIDR identities of the families given.
    World {
        /// IPv4 CIDR identities included.
        ipv4: bool,
        /// IPv6 CIDR identities included.
        ipv6: bool,
    },
    /// Addresses in `cidr` outside every `except`: the CIDR identities of those
    /// prefixes and, when `pods`, the identities of the pods addressed there.
    Cidr {
        /// The prefix.
        cidr: IpNet,
        /// Prefixes excluded.
        except: Vec<IpNet>,
        /// Pods addressed inside also match (NetworkPolicy `ipBlock`).
        pods: bool,
    },
    /// Nothing (a peer the compiler cannot enforce, reported as a warning).
    Nothing,
}

/// A port number or range, or a name resolved per endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortNumber {
    /// `first..=last`.
    Range(u16, u16),
    /// A named container port.
    Named(String),
}

/// The L4 part of a clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    /// Every protocol and port.
    Any,
    /// These protocols on this port or range.
    L4 {
        /// IP protocol numbers.
        protos: Vec<u8>,
        /// The port.
        port: PortNumber,
    },
}

/// One peer with one port selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clause {
    /// Ingress or egress.
    pub direction: Direction,
    /// Deny rule.
    pub deny: bool,
    /// The peers.
    pub peers: Peers,
    /// Selectors every peer must also match (Cilium's `fromRequires`/`toRequires`).
    pub requires: Vec<Selection>,
    /// The ports.
    pub ports: Ports,
    /// What the rule id describes.
    pub rule: RuleRef,
}

/// One rule of a policy: what it selects, whether it default-denies, its clauses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The endpoints selected: their labels must match; with a namespace, only that
    /// namespace's.
    pub subject: Selection,
    /// Selected endpoints deny ingress no rule allows.
    pub ingress_default_deny: bool,
    /// Selected endpoints deny egress no rule allows.
    pub egress_default_deny: bool,
    /// The clauses.
    pub clauses: Vec<Clause>,
}

/// IANA protocol numbers.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;
    /// What Cilium's protocol `ANY` expands to when ports are given.
    pub const ANY: [u8; 3] = [TCP, UDP, SCTP];

    /// The protocol's name (`TCP`), or its number.
    pub fn name(proto: u8) -> String {
        match proto {
            ICMP => "ICMP".to_string(),
            TCP => "TCP".to_string(),
            UDP => "UDP".to_string(),
            ICMPV6 => "ICMPv6".to_string(),
            SCTP => "SCTP".to_string(),
            other => other.to_string(),
        }
    }
}

/// The policy port of ICMP type `icmp_type`: the type in the high byte, as the datapath
/// reads it.
pub fn icmp_port(icmp_type: u8) -> u16 {
    u16::from(icmp_type) << 8
}
