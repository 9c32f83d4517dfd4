//! `cilium.io/v2` CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy, as serde types
//! written from Cilium's published CRD schema.
//!
//! Only the fields listed here are understood; any other field makes a manifest fail
//! to parse (see [`crate::parse_manifests`]), so a policy never silently means less than
//! it says. Cilium fields Membrane does not implement yet are named in
//! [`UNSUPPORTED_FIELDS`] so their error says so.

mod icmp;
mod peers;
mod policy;
mod ports;
mod rule;

pub use icmp::{IcmpFamily, IcmpField, IcmpRule, IcmpType};
pub use peers::{CidrRule, EgressRule, Entity, FqdnSelector, IngressRule};
pub use policy::{CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy, WrongPolicyType};
pub use ports::{HttpRule, L4Protocol, L7Rules, PortProtocol, PortRule};
pub use rule::{DefaultDeny, Rule, RuleLabel};

/// Fields of Cilium's policy schema that Membrane does not implement yet. A manifest
/// using one is refused with a message that says so, rather than as a typo.
pub const UNSUPPORTED_FIELDS: &[&str] = &[
    "authentication",
    "cidrGroupRef",
    "cidrGroupSelector",
    "fromGroups",
    "fromNodes",
    "headerMatches",
    "kafka",
    "l7",
    "l7proto",
    "listener",
    "log",
    "originatingTLS",
    "serverNames",
    "terminatingTLS",
    "toGroups",
    "toNodes",
    "toServices",
];
