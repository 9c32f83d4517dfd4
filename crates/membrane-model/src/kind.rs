//! The kinds of object Membrane consumes, with their API groups and scopes.

use std::fmt;
use std::str::FromStr;

/// One kind of object Membrane consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `v1` Node.
    Node,
    /// `v1` Namespace.
    Namespace,
    /// `v1` Pod.
    Pod,
    /// `v1` Service.
    Service,
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice,
    /// `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy,
    /// `cilium.io/v2` CiliumNetworkPolicy.
    CiliumNetworkPolicy,
    /// `cilium.io/v2` CiliumClusterwideNetworkPolicy.
    CiliumClusterwideNetworkPolicy,
}

/// A kind name that is not one of [`Kind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind `{kind}`: expected one of {}", Kind::names())]
pub struct UnknownKind {
    /// The name that was given.
    pub kind: String,
}

impl Kind {
    /// Every kind, in the order objects of several kinds are best applied (namespaces
    /// before what lives in them, policies last).
    pub const ALL: [Kind; 8] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Pod,
        Kind::NetworkPolicy,
        Kind::CiliumNetworkPolicy,
        Kind::CiliumClusterwideNetworkPolicy,
    ];

    /// The kind's name as manifests spell it (`kind:`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Node => "Node",
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::EndpointSlice => "EndpointSlice",
            Kind::NetworkPolicy => "NetworkPolicy",
            Kind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            Kind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
        }
    }

    /// The `apiVersion` manifests of this kind carry.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Node | Kind::Namespace | Kind::Pod | Kind::Service => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
            Kind::NetworkPolicy => "networking.k8s.io/v1",
            Kind::CiliumNetworkPolicy | Kind::CiliumClusterwideNetworkPolicy => "cilium.io/v2",
        }
    }

    /// True for kinds whose objects live in a namespace.
    pub fn is_namespaced(self) -> bool {
        !matches!(
            self,
            Kind::Node | Kind::Namespace | Kind::CiliumClusterwideNetworkPolicy
        )
    }

    /// The resource name kubectl prints in its `created` / `deleted` lines: the
    /// lowercase kind, qualified by its API group outside the core group
    /// (`service`, `ciliumnetworkpolicy.cilium.io`).
    pub fn resource(self) -> String {
        let kind = self.as_str().to_ascii_lowercase();
        match self.api_version().split_once('/') {
            Some((group, _version)) => format!("{kind}.{group}"),
            None => kind,
        }
    }

    /// The kind a manifest's `apiVersion` and `kind` name, if Membrane knows it.
    pub fn from_type(api_version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind && k.api_version() == api_version)
    }

    fn names() -> String {
        Kind::ALL.map(Kind::as_str).join(", ")
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = UnknownKind;

    /// Parses a kind name exactly as [`Kind::as_str`] spells it.
    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind {
                kind: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_name_and_type() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>().unwrap(), kind);
            assert_eq!(
                Kind::from_type(kind.api_version(), kind.as_str()),
                Some(kind)
            );
        }
    }

    #[test]
    fn a_kind_under_the_wrong_api_version_is_not_known() {
        assert_eq!(
            Kind::from_type("networking.k8s.io/v1beta1", "NetworkPolicy"),
            None
        );
        assert_eq!(Kind::from_type("cilium.io/v1", "CiliumNetworkPolicy"), None);
    }

    #[test]
    fn resources_are_group_qualified_outside_the_core_group() {
        assert_eq!(Kind::Service.resource(), "service");
        assert_eq!(
            Kind::EndpointSlice.resource(),
            "endpointslice.discovery.k8s.io"
        );
        assert_eq!(
            Kind::CiliumNetworkPolicy.resource(),
            "ciliumnetworkpolicy.cilium.io"
        );
    }

    #[test]
    fn an_unknown_kind_name_lists_the_known_ones() {
        let err = "Deployment".parse::<Kind>().unwrap_err();
        assert!(err.to_string().contains("`Deployment`"));
        assert!(err.to_string().contains("CiliumClusterwideNetworkPolicy"));
    }
}
