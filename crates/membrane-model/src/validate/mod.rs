//! Semantic validation of decoded objects: names, labels, selectors, addresses, ports
//! and the per-kind rules, every problem reported with the path of its field.

mod cilium;
mod cluster;
mod endpoint_slice;
mod meta;
mod names;
mod net;
mod network_policy;
mod pod;
mod selectors;
mod service;
mod violation;

pub use names::NameRule;
pub use violation::Violation;

use crate::object::Object;

/// The JSON path of a field, as people write it: `spec.ports[0].port`; map keys that
/// are not plain words are quoted: `metadata.labels["app.kubernetes.io/name"]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct FieldPath(String);

impl FieldPath {
    /// The document itself.
    pub fn root() -> FieldPath {
        FieldPath::default()
    }

    /// A field (or map key) of this one.
    pub fn field(&self, name: &str) -> FieldPath {
        let mut path = self.0.clone();
        push_key(&mut path, name);
        FieldPath(path)
    }

    /// An element of this list.
    pub fn index(&self, index: usize) -> FieldPath {
        FieldPath(format!("{}[{index}]", self.0))
    }
}

/// Appends a field or map key to a rendered path.
pub(crate) fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push_str(&format!("[{key:?}]"));
    }
}

/// Problems found in one object, each at its field.
#[derive(Debug, Default)]
pub(crate) struct Findings(Vec<(String, Violation)>);

impl Findings {
    /// Records a violation at a field.
    pub fn add(&mut self, at: &FieldPath, violation: Violation) {
        self.0.push((at.0.clone(), violation));
    }

    /// Every finding, in the order found.
    pub fn into_vec(self) -> Vec<(String, Violation)> {
        self.0
    }
}

/// Fills in defaults before validation: namespaced objects without a namespace go to
/// `default`; a namespace on a cluster-scoped object is dropped, as the API server
/// does.
pub(crate) fn normalize(object: &mut Object) {
    let namespaced = object.kind().is_namespaced();
    let meta = object.metadata_mut();
    if namespaced {
        if meta.namespace.as_deref().is_none_or(str::is_empty) {
            meta.namespace = Some("default".to_string());
        }
    } else {
        meta.namespace = None;
    }
}

/// Every problem of one (normalized) object.
pub(crate) fn validate(object: &Object) -> Vec<(String, Violation)> {
    let mut findings = Findings::default();
    let f = &mut findings;
    let root = FieldPath::root();
    meta::check(f, object);
    match object {
        Object::Node(node) => cluster::check_node(f, &root, node),
        Object::Namespace(_) => {}
        Object::Pod(pod) => pod::check(f, &root, pod),
        Object::Service(service) => service::check(f, &root, service),
        Object::EndpointSlice(slice) => endpoint_slice::check(f, &root, slice),
        Object::NetworkPolicy(policy) => network_policy::check(f, &root, policy),
        Object::CiliumNetworkPolicy(policy) => cilium::check_rules(
            f,
            &root,
            policy.spec.as_ref(),
            policy.specs.as_deref(),
            false,
        ),
        Object::CiliumClusterwideNetworkPolicy(policy) => cilium::check_rules(
            f,
            &root,
            policy.spec.as_ref(),
            policy.specs.as_deref(),
            true,
        ),
    }
    findings.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_fields_indices_and_quoted_keys() {
        let p = FieldPath::root()
            .field("spec")
            .field("ports")
            .index(0)
            .field("port");
        assert_eq!(p.0, "spec.ports[0].port");
        let p = FieldPath::root()
            .field("metadata")
            .field("labels")
            .field("app.kubernetes.io/name");
        assert_eq!(p.0, r#"metadata.labels["app.kubernetes.io/name"]"#);
    }
}
