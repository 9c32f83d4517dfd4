//! The compiled policy of a node (`GET /v1/policy`) and policy traces
//! (`POST /v1/policy/trace`).

use serde::{Deserialize, Serialize};

/// `GET` → [`PolicyListing`].
pub const POLICY: &str = "/v1/policy";
/// `POST` [`TraceRequest`] → [`TraceReport`].
pub const POLICY_TRACE: &str = "/v1/policy/trace";

/// The node's compiled policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyListing {
    /// `default`, `always` or `never`.
    pub enforcement: String,
    /// Audit mode.
    pub audit: bool,
    /// Per local endpoint, by id.
    pub endpoints: Vec<EndpointPolicy>,
    /// Node-local CIDR identities in the ipcache.
    pub cidr_identities: Vec<CidrIdentity>,
    /// Parts of policies that are not enforced, and why.
    pub warnings: Vec<String>,
}

/// One endpoint's enforcement and entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPolicy {
    /// The endpoint id.
    pub endpoint_id: u16,
    /// The pod, as `namespace/name`.
    pub pod: Option<String>,
    /// Its identity.
    pub identity: u32,
    /// Ingress is enforced.
    pub ingress_enforced: bool,
    /// Egress is enforced.
    pub egress_enforced: bool,
    /// Audit mode.
    pub audit: bool,
    /// The datapath entries.
    pub entries: Vec<PolicyEntry>,
}

/// One datapath entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// `ingress` or `egress`.
    pub direction: String,
    /// Peer identity, 0 for any.
    pub identity: u32,
    /// IP protocol, 0 for any.
    pub protocol: u8,
    /// First port (ICMP: the type in the high byte).
    pub first_port: u16,
    /// Last port.
    pub last_port: u16,
    /// Deny.
    pub deny: bool,
    /// The rule id.
    pub rule_id: u32,
    /// What the rule is.
    pub rule: String,
}

/// A prefix and its node-local identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CidrIdentity {
    /// The prefix.
    pub prefix: ipnet::IpNet,
    /// Its identity.
    pub identity: u32,
}

/// A packet to trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    /// The sender: `namespace/pod` or an address.
    pub from: String,
    /// The receiver: `namespace/pod` or an address.
    pub to: String,
    /// Destination port, or the ICMP type.
    pub port: u16,
    /// `TCP`, `UDP`, `SCTP`, `ICMP` or `ICMPv6`.
    pub protocol: String,
}

/// What the policy decides for a traced packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceReport {
    /// `allowed`, `denied` or `audit`.
    pub verdict: String,
    /// The sender.
    pub from: TracePeer,
    /// The receiver.
    pub to: TracePeer,
    /// The sender's egress decision, when it is a pod.
    pub egress: Option<TraceDecision>,
    /// The receiver's ingress decision, when it is a pod.
    pub ingress: Option<TraceDecision>,
}

/// One end of a traced packet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracePeer {
    /// As given.
    pub name: String,
    /// Its identity.
    pub identity: u32,
    /// Whether it is an endpoint of this node.
    pub local: bool,
}

/// One side's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceDecision {
    /// `allowed`, `denied`, `audit` or `not-enforced`.
    pub verdict: String,
    /// `l3-l4`, `l3-only`, `l4-only`, `all` or `none`.
    pub matched: String,
    /// The rules that decided (the denies, or the allow); none for a default deny.
    pub rules: Vec<TraceRule>,
}

/// A deciding rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceRule {
    /// The rule id.
    pub id: u32,
    /// What it is.
    pub rule: String,
}
