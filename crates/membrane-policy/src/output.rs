//! What the compiler produces: per endpoint its enforcement flags and the exact LPM
//! entries of the datapath's policy map, plus the table describing every rule id.

use ipnet::IpNet;
use std::collections::BTreeMap;
use std::fmt;

/// Which way an entry applies, relative to its endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Traffic the endpoint receives.
    Ingress,
    /// Traffic the endpoint sends.
    Egress,
}

impl Direction {
    /// `ingress` or `egress`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// One key of the policy LPM trie, for one endpoint: its fixed part (direction,
/// protocol, peer identity) and a port prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    /// Ingress or egress.
    pub direction: Direction,
    /// IP protocol; 0 for any protocol (then `port` is 0 and `prefix_bits` 0).
    pub proto: u8,
    /// Peer identity; 0 for any peer.
    pub identity: u32,
    /// First port of the prefix (for ICMP: the type shifted into the high byte).
    pub port: u16,
    /// How many leading bits of the port are fixed (0-16).
    pub prefix_bits: u32,
}

impl EntryKey {
    /// The ports the prefix covers.
    pub fn ports(&self) -> std::ops::RangeInclusive<u16> {
        let size = 1u32 << (16 - self.prefix_bits);
        let last = u32::from(self.port) + size - 1;
        self.port..=last as u16
    }
}

/// What an entry says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    /// Deny instead of allow.
    pub deny: bool,
    /// The rule that produced the entry (see [`Compiled::rules`]).
    pub rule_id: u32,
}

/// One endpoint's compiled policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Ingress is enforced: what no entry allows is denied.
    pub ingress_enforced: bool,
    /// Egress is enforced.
    pub egress_enforced: bool,
    /// Would-be drops are reported with verdict AUDIT and let through.
    pub audit: bool,
    /// The LPM entries, deny ranges already cut out of overlapping allow ranges so that
    /// the longest match can never hide a deny.
    pub entries: BTreeMap<EntryKey, Entry>,
}

/// Which kind of policy a rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy,
    /// `cilium.io/v2` CiliumNetworkPolicy.
    CiliumNetworkPolicy,
    /// `cilium.io/v2` CiliumClusterwideNetworkPolicy.
    CiliumClusterwideNetworkPolicy,
    /// Built in: `allow-localhost` (the node reaches its endpoints, so kubelet probes
    /// work under default deny) and `allow-not-denied` (a direction enforced only for
    /// deny rules allows what they do not deny).
    Builtin,
}

impl PolicyKind {
    /// The kind as manifests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            PolicyKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            PolicyKind::Builtin => "Builtin",
        }
    }
}

/// Where a rule id comes from: the policy, the rule list and entry, the peer and port
/// clause.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    /// The policy kind.
    pub kind: PolicyKind,
    /// The policy's namespace (none for clusterwide policies).
    pub namespace: Option<String>,
    /// The policy's name.
    pub name: String,
    /// The rule's path inside the policy: `spec.ingress[0]`, `specs[1].egressDeny[2]`.
    pub path: String,
    /// The peer clause: `from[1].podSelector`, `toEntities[world]`, `any peer`.
    pub peer: String,
    /// The port clause: `ports[0] 80/TCP`, `icmps[0].fields[1] 8/ICMP`, `any port`.
    pub port: String,
    /// Deny rule.
    pub deny: bool,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.kind.as_str())?;
        if let Some(namespace) = &self.namespace {
            write!(f, "{namespace}/")?;
        }
        write!(
            f,
            "{} {} {} {}{}",
            self.name,
            self.path,
            self.peer,
            self.port,
            if self.deny { " (deny)" } else { "" }
        )
    }
}

/// The result of one compilation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compiled {
    /// Per local endpoint id.
    pub endpoints: BTreeMap<u16, EndpointPolicy>,
    /// Every rule id used by an entry, with its description.
    pub rules: BTreeMap<u32, RuleRef>,
    /// The node-local CIDR identities in use (prefix -> identity), for the ipcache.
    pub cidr_identities: BTreeMap<IpNet, u32>,
    /// Parts of policies that could not be compiled (and so allow nothing).
    pub warnings: Vec<Warning>,
}

/// A part of a policy the compiler skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The policy and rule.
    pub rule: String,
    /// The field.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.rule, self.field, self.problem)
    }
}
