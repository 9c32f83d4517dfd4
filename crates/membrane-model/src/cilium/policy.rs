//! The two policy kinds: their type meta, metadata and rules.

use super::rule::Rule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

const API_VERSION: &str = "cilium.io/v2";

/// A namespaced Cilium policy: its rules select endpoints of its own namespace.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "PolicyWire")]
pub struct CiliumNetworkPolicy {
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// A single rule.
    pub spec: Option<Rule>,
    /// Several rules.
    pub specs: Option<Vec<Rule>>,
}

/// A cluster-scoped Cilium policy: its rules select endpoints of every namespace, or
/// nodes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "PolicyWire")]
pub struct CiliumClusterwideNetworkPolicy {
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// A single rule.
    pub spec: Option<Rule>,
    /// Several rules.
    pub specs: Option<Vec<Rule>>,
}

impl CiliumNetworkPolicy {
    /// The manifest `kind`.
    pub const KIND: &'static str = "CiliumNetworkPolicy";

    /// Every rule: `spec` then `specs`.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.spec.iter().chain(self.specs.iter().flatten())
    }
}

impl CiliumClusterwideNetworkPolicy {
    /// The manifest `kind`.
    pub const KIND: &'static str = "CiliumClusterwideNetworkPolicy";

    /// Every rule: `spec` then `specs`.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.spec.iter().chain(self.specs.iter().flatten())
    }
}

/// A manifest decoded as one policy kind carries another `apiVersion` or `kind`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected apiVersion {API_VERSION} and kind {expected}, found {api_version} {kind}")]
pub struct WrongPolicyType {
    /// The kind being decoded.
    pub expected: &'static str,
    /// The manifest's `apiVersion`.
    pub api_version: String,
    /// The manifest's `kind`.
    pub kind: String,
}

/// The wire form shared by both kinds.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyWire {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: ObjectMeta,
    spec: Option<Rule>,
    specs: Option<Vec<Rule>>,
}

impl PolicyWire {
    fn check(&self, expected: &'static str) -> Result<(), WrongPolicyType> {
        if self.api_version == API_VERSION && self.kind == expected {
            Ok(())
        } else {
            Err(WrongPolicyType {
                expected,
                api_version: self.api_version.clone(),
                kind: self.kind.clone(),
            })
        }
    }
}

impl TryFrom<PolicyWire> for CiliumNetworkPolicy {
    type Error = WrongPolicyType;

    fn try_from(wire: PolicyWire) -> Result<Self, WrongPolicyType> {
        wire.check(Self::KIND)?;
        Ok(CiliumNetworkPolicy {
            metadata: wire.metadata,
            spec: wire.spec,
            specs: wire.specs,
        })
    }
}

impl TryFrom<PolicyWire> for CiliumClusterwideNetworkPolicy {
    type Error = WrongPolicyType;

    fn try_from(wire: PolicyWire) -> Result<Self, WrongPolicyType> {
        wire.check(Self::KIND)?;
        Ok(CiliumClusterwideNetworkPolicy {
            metadata: wire.metadata,
            spec: wire.spec,
            specs: wire.specs,
        })
    }
}

fn serialize_policy<S: Serializer>(
    serializer: S,
    kind: &'static str,
    metadata: &ObjectMeta,
    spec: Option<&Rule>,
    specs: Option<&Vec<Rule>>,
) -> Result<S::Ok, S::Error> {
    let mut s = serializer.serialize_struct(kind, 5)?;
    s.serialize_field("apiVersion", API_VERSION)?;
    s.serialize_field("kind", kind)?;
    s.serialize_field("metadata", metadata)?;
    if let Some(spec) = spec {
        s.serialize_field("spec", spec)?;
    }
    if let Some(specs) = specs {
        s.serialize_field("specs", specs)?;
    }
    s.end()
}

impl Serialize for CiliumNetworkPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_policy(
            serializer,
            Self::KIND,
            &self.metadata,
            self.spec.as_ref(),
            self.specs.as_ref(),
        )
    }
}

impl Serialize for CiliumClusterwideNetworkPolicy {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_policy(
            serializer,
            Self::KIND,
            &self.metadata,
            self.spec.as_ref(),
            self.specs.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_round_trips_with_its_type_meta() {
        let json = serde_json::json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "p", "namespace": "default"},
            "specs": [{"endpointSelector": {"matchLabels": {"app": "web"}}, "ingress": [{}]}],
        });
        let policy: CiliumNetworkPolicy = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(policy.rules().count(), 1);
        assert_eq!(serde_json::to_value(&policy).unwrap(), json);
    }

    #[test]
    fn the_other_kind_is_refused() {
        let json = serde_json::json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumClusterwideNetworkPolicy",
            "metadata": {"name": "p"},
        });
        let err = serde_json::from_value::<CiliumNetworkPolicy>(json).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected apiVersion cilium.io/v2 and kind CiliumNetworkPolicy")
        );
    }
}
