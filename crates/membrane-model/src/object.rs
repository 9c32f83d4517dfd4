//! One object of any kind Membrane consumes, its reference and its store encoding.

use crate::cilium::{CiliumClusterwideNetworkPolicy, CiliumNetworkPolicy};
use crate::kind::{Kind, UnknownKind};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;
use std::fmt;

/// An object of one of the kinds Membrane consumes.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// A node.
    Node(Box<Node>),
    /// A namespace.
    Namespace(Box<Namespace>),
    /// A pod.
    Pod(Box<Pod>),
    /// A service.
    Service(Box<Service>),
    /// An endpoint slice of a service.
    EndpointSlice(Box<EndpointSlice>),
    /// A Kubernetes network policy.
    NetworkPolicy(Box<NetworkPolicy>),
    /// A namespaced Cilium policy.
    CiliumNetworkPolicy(Box<CiliumNetworkPolicy>),
    /// A cluster-wide Cilium policy.
    CiliumClusterwideNetworkPolicy(Box<CiliumClusterwideNetworkPolicy>),
}

/// A stored object's JSON could not be decoded as its kind.
#[derive(Debug, thiserror::Error)]
#[error("stored {kind} is not valid JSON for its kind")]
pub struct ObjectJsonError {
    /// The kind the bytes were decoded as.
    pub kind: Kind,
    /// The decoding error.
    #[source]
    pub source: serde_json::Error,
}

static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Object::Node(_) => Kind::Node,
            Object::Namespace(_) => Kind::Namespace,
            Object::Pod(_) => Kind::Pod,
            Object::Service(_) => Kind::Service,
            Object::EndpointSlice(_) => Kind::EndpointSlice,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
            Object::CiliumNetworkPolicy(_) => Kind::CiliumNetworkPolicy,
            Object::CiliumClusterwideNetworkPolicy(_) => Kind::CiliumClusterwideNetworkPolicy,
        }
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Node(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
            Object::CiliumNetworkPolicy(o) => &o.metadata,
            Object::CiliumClusterwideNetworkPolicy(o) => &o.metadata,
        }
    }

    /// The object's metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Node(o) => &mut o.metadata,
            Object::Namespace(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::EndpointSlice(o) => &mut o.metadata,
            Object::NetworkPolicy(o) => &mut o.metadata,
            Object::CiliumNetworkPolicy(o) => &mut o.metadata,
            Object::CiliumClusterwideNetworkPolicy(o) => &mut o.metadata,
        }
    }

    /// The object's labels (empty when it has none).
    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.metadata().labels.as_ref().unwrap_or(&NO_LABELS)
    }

    /// The reference naming this object. Objects from [`crate::parse_manifests`] always
    /// have a name, and a namespace exactly when their kind is namespaced.
    pub fn object_ref(&self) -> ObjectRef {
        let meta = self.metadata();
        ObjectRef {
            kind: self.kind(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// The object as a JSON value, with its `apiVersion` and `kind`.
    pub fn to_value(&self) -> serde_json::Value {
        let value = match self {
            Object::Node(o) => serde_json::to_value(o),
            Object::Namespace(o) => serde_json::to_value(o),
            Object::Pod(o) => serde_json::to_value(o),
            Object::Service(o) => serde_json::to_value(o),
            Object::EndpointSlice(o) => serde_json::to_value(o),
            Object::NetworkPolicy(o) => serde_json::to_value(o),
            Object::CiliumNetworkPolicy(o) => serde_json::to_value(o),
            Object::CiliumClusterwideNetworkPolicy(o) => serde_json::to_value(o),
        };
        // Every map in these types has string keys and no Serialize impl fails, so
        // encoding cannot fail.
        value.expect("Kubernetes objects always encode as JSON")
    }

    /// The object as compact JSON bytes, the form a store keeps. Encoding is
    /// deterministic: equal objects give equal bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_value()).expect("a JSON value always encodes")
    }

    /// Decodes an object of `kind` from JSON written by [`Object::to_json`]. This is not
    /// the strict manifest path: it trusts stored bytes and ignores unknown fields.
    pub fn from_json(kind: Kind, bytes: &[u8]) -> Result<Object, ObjectJsonError> {
        let value =
            serde_json::from_slice(bytes).map_err(|source| ObjectJsonError { kind, source })?;
        Object::from_value(kind, value)
    }

    /// Decodes an object of `kind` from a JSON value (an object the agent listed, say),
    /// trusting it like [`Object::from_json`] does.
    pub fn from_value(kind: Kind, value: serde_json::Value) -> Result<Object, ObjectJsonError> {
        fn de<T: serde::de::DeserializeOwned>(
            value: serde_json::Value,
        ) -> serde_json::Result<Box<T>> {
            serde_json::from_value(value).map(Box::new)
        }
        let object = match kind {
            Kind::Node => de(value).map(Object::Node),
            Kind::Namespace => de(value).map(Object::Namespace),
            Kind::Pod => de(value).map(Object::Pod),
            Kind::Service => de(value).map(Object::Service),
            Kind::EndpointSlice => de(value).map(Object::EndpointSlice),
            Kind::NetworkPolicy => de(value).map(Object::NetworkPolicy),
            Kind::CiliumNetworkPolicy => de(value).map(Object::CiliumNetworkPolicy),
            Kind::CiliumClusterwideNetworkPolicy => {
                de(value).map(Object::CiliumClusterwideNetworkPolicy)
            }
        };
        object.map_err(|source| ObjectJsonError { kind, source })
    }
}

/// Names one object: its kind, its namespace (for namespaced kinds) and its name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The kind.
    pub kind: Kind,
    /// The namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

/// A store key that [`ObjectRef::from_key`] cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectRefError {
    /// The key is not `Kind/namespace/name`.
    #[error("store key `{key}` is not of the form Kind/namespace/name")]
    Malformed {
        /// The key.
        key: String,
    },
    /// The key's kind is unknown.
    #[error("store key `{key}`: {source}")]
    Kind {
        /// The key.
        key: String,
        /// Why the kind is unknown.
        #[source]
        source: UnknownKind,
    },
}

impl ObjectRef {
    /// The stable store key: `Kind/namespace/name`, with an empty namespace for
    /// cluster-scoped kinds (`Service/default/web`, `Node//node1`). Keys of one kind,
    /// and of one kind and namespace, share the prefixes [`ObjectRef::key_prefix`] gives.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }

    /// The prefix shared by the keys of every object of `kind`, or of `kind` in
    /// `namespace`.
    pub fn key_prefix(kind: Kind, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) => format!("{kind}/{ns}/"),
            None => format!("{kind}/"),
        }
    }

    /// Reads a key written by [`ObjectRef::key`].
    pub fn from_key(key: &str) -> Result<ObjectRef, ObjectRefError> {
        let malformed = || ObjectRefError::Malformed {
            key: key.to_string(),
        };
        let (kind, rest) = key.split_once('/').ok_or_else(malformed)?;
        let (namespace, name) = rest.split_once('/').ok_or_else(malformed)?;
        if name.is_empty() || name.contains('/') {
            return Err(malformed());
        }
        let kind: Kind = kind.parse().map_err(|source| ObjectRefError::Kind {
            key: key.to_string(),
            source,
        })?;
        Ok(ObjectRef {
            kind,
            namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for ObjectRef {
    /// `CiliumNetworkPolicy default/allow-web`, or `Node node1` for cluster-scoped kinds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn service() -> Object {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {app: web}}\nspec: {ports: [{port: 80}]}\n";
        crate::parse_manifests(yaml, "test").unwrap().remove(0)
    }

    #[test]
    fn display_and_key_name_namespaced_and_cluster_scoped_objects() {
        let web = ObjectRef {
            kind: Kind::CiliumNetworkPolicy,
            namespace: Some("default".into()),
            name: "allow-web".into(),
        };
        assert_eq!(web.to_string(), "CiliumNetworkPolicy default/allow-web");
        assert_eq!(web.key(), "CiliumNetworkPolicy/default/allow-web");
        let node = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: "node1".into(),
        };
        assert_eq!(node.to_string(), "Node node1");
        assert_eq!(node.key(), "Node//node1");
    }

    #[test]
    fn keys_start_with_their_kind_and_namespace_prefixes() {
        let r = service().object_ref();
        assert!(
            r.key()
                .starts_with(&ObjectRef::key_prefix(Kind::Service, None))
        );
        assert!(
            r.key()
                .starts_with(&ObjectRef::key_prefix(Kind::Service, Some("default")))
        );
        assert!(
            !r.key()
                .starts_with(&ObjectRef::key_prefix(Kind::Service, Some("def")))
        );
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(matches!(
            ObjectRef::from_key("Service/web"),
            Err(ObjectRefError::Malformed { .. })
        ));
        assert!(matches!(
            ObjectRef::from_key("Service/a/b/c"),
            Err(ObjectRefError::Malformed { .. })
        ));
        assert!(matches!(
            ObjectRef::from_key("Widget/a/b"),
            Err(ObjectRefError::Kind { .. })
        ));
    }

    #[test]
    fn an_object_survives_its_store_encoding() {
        let object = service();
        assert_eq!(object.labels().get("app").map(String::as_str), Some("web"));
        let bytes = object.to_json();
        assert_eq!(Object::from_json(Kind::Service, &bytes).unwrap(), object);
        assert_eq!(object.to_json(), bytes, "encoding is deterministic");
    }

    #[test]
    fn stored_json_of_another_kind_is_refused() {
        let bytes = service().to_json();
        let err = Object::from_json(Kind::Pod, &bytes).unwrap_err();
        assert_eq!(err.kind, Kind::Pod);
    }

    proptest! {
        #[test]
        fn keys_round_trip(
            kind in proptest::sample::select(Kind::ALL.to_vec()),
            namespace in proptest::option::of("[a-z][a-z0-9-]{0,10}"),
            name in "[a-z][a-z0-9.-]{0,20}",
        ) {
            let r = ObjectRef { kind, namespace, name };
            prop_assert_eq!(ObjectRef::from_key(&r.key()).unwrap(), r);
        }
    }
}
