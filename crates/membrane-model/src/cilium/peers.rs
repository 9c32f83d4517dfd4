//! Ingress and egress rules: the peers (endpoints, entities, CIDRs, DNS names) a rule
//! allows or denies, and the ports it covers.

use super::icmp::IcmpRule;
use super::ports::PortRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

/// One entry of `ingress` or `ingressDeny`. Peers of different fields are alternatives;
/// `toPorts` and `icmps` narrow what is allowed (or denied) from them. In a deny rule,
/// `toPorts` may not carry L7 `rules`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IngressRule {
    /// Source endpoints by label.
    #[serde(rename = "fromEndpoints", skip_serializing_if = "Option::is_none")]
    pub from_endpoints: Option<Vec<LabelSelector>>,
    /// Labels every source must also carry (they grant nothing by themselves).
    #[serde(rename = "fromRequires", skip_serializing_if = "Option::is_none")]
    pub from_requires: Option<Vec<LabelSelector>>,
    /// Source entities (`world`, `host`, `cluster`, ...).
    #[serde(rename = "fromEntities", skip_serializing_if = "Option::is_none")]
    pub from_entities: Option<Vec<Entity>>,
    /// Source prefixes (a bare address means a single host).
    #[serde(rename = "fromCIDR", skip_serializing_if = "Option::is_none")]
    pub from_cidr: Option<Vec<String>>,
    /// Source prefixes with exceptions.
    #[serde(rename = "fromCIDRSet", skip_serializing_if = "Option::is_none")]
    pub from_cidr_set: Option<Vec<CidrRule>>,
    /// Destination ports on the selected endpoint, with optional L7 rules.
    #[serde(rename = "toPorts", skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// ICMP types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
}

/// One entry of `egress` or `egressDeny`. In a deny rule, `toFQDNs` is not allowed and
/// `toPorts` may not carry L7 `rules`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EgressRule {
    /// Destination endpoints by label.
    #[serde(rename = "toEndpoints", skip_serializing_if = "Option::is_none")]
    pub to_endpoints: Option<Vec<LabelSelector>>,
    /// Labels every destination must also carry.
    #[serde(rename = "toRequires", skip_serializing_if = "Option::is_none")]
    pub to_requires: Option<Vec<LabelSelector>>,
    /// Destination entities.
    #[serde(rename = "toEntities", skip_serializing_if = "Option::is_none")]
    pub to_entities: Option<Vec<Entity>>,
    /// Destination prefixes (a bare address means a single host).
    #[serde(rename = "toCIDR", skip_serializing_if = "Option::is_none")]
    pub to_cidr: Option<Vec<String>>,
    /// Destination prefixes with exceptions.
    #[serde(rename = "toCIDRSet", skip_serializing_if = "Option::is_none")]
    pub to_cidr_set: Option<Vec<CidrRule>>,
    /// Destination ports, with optional L7 rules.
    #[serde(rename = "toPorts", skip_serializing_if = "Option::is_none")]
    pub to_ports: Option<Vec<PortRule>>,
    /// Destinations by DNS name, learnt from the DNS answers the endpoint receives.
    #[serde(rename = "toFQDNs", skip_serializing_if = "Option::is_none")]
    pub to_fqdns: Option<Vec<FqdnSelector>>,
    /// ICMP types.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmps: Option<Vec<IcmpRule>>,
}

/// A prefix with exceptions (`fromCIDRSet` / `toCIDRSet`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CidrRule {
    /// The prefix.
    pub cidr: String,
    /// Prefixes inside `cidr` that are excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

/// A DNS name or pattern (`toFQDNs`, and DNS L7 rules).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FqdnSelector {
    /// An exact name.
    #[serde(rename = "matchName", skip_serializing_if = "Option::is_none")]
    pub match_name: Option<String>,
    /// A pattern where `*` matches any run of DNS name characters.
    #[serde(rename = "matchPattern", skip_serializing_if = "Option::is_none")]
    pub match_pattern: Option<String>,
}

/// Peers without individual identities, as Cilium names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Entity {
    /// Every peer.
    All,
    /// Everything outside the cluster.
    World,
    /// Everything outside the cluster, IPv4 only.
    WorldIpv4,
    /// Everything outside the cluster, IPv6 only.
    WorldIpv6,
    /// Every peer inside the cluster.
    Cluster,
    /// The local node.
    Host,
    /// The other nodes of the cluster.
    RemoteNode,
    /// The Kubernetes API server.
    KubeApiserver,
    /// The node's ingress proxy.
    Ingress,
    /// Endpoints whose identity is not resolved yet.
    Init,
    /// The health-check endpoints.
    Health,
    /// Pods not managed by Membrane.
    Unmanaged,
}
