//! One Cilium policy rule: the endpoints (or nodes) it selects and its four rule lists.

use super::peers::{EgressRule, IngressRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

/// A rule of a Cilium policy (`spec`, or one entry of `specs`).
///
/// Exactly one of `endpointSelector` and `nodeSelector` selects what the rule applies
/// to; `nodeSelector` (host policies) is only valid in a clusterwide policy. A rule list
/// that is present but empty differs from an absent one: it puts the selected
/// endpoints in default deny for that direction without allowing anything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// The endpoints (pods) the rule applies to; Cilium's selector keys may carry a
    /// `k8s:` / `any:` source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_selector: Option<LabelSelector>,
    /// The nodes the rule applies to (host policies; clusterwide only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// Traffic allowed into the selected endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    /// Traffic denied into the selected endpoints; deny wins over allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_deny: Option<Vec<IngressRule>>,
    /// Traffic allowed out of the selected endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
    /// Traffic denied out of the selected endpoints; deny wins over allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress_deny: Option<Vec<EgressRule>>,
    /// Whether selecting an endpoint puts it in default deny, per direction. When
    /// absent, a direction is default deny if the rule has rules for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_default_deny: Option<DefaultDeny>,
    /// Labels identifying the rule (not the endpoints it selects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<RuleLabel>>,
    /// Free-form description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `enableDefaultDeny`: per direction, whether a selected endpoint denies what no rule
/// allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultDeny {
    /// Ingress default deny; absent means "if the rule has ingress rules".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<bool>,
    /// Egress default deny; absent means "if the rule has egress rules".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<bool>,
}

/// One entry of a rule's `labels`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLabel {
    /// The label key.
    pub key: String,
    /// The label value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The label source (`k8s`, `unspec`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}
