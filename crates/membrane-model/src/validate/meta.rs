//! Object metadata: name, namespace, labels and annotation keys.

use super::names::{NameRule, label_key_error, label_value_error};
use super::{FieldPath, Findings, Violation};
use crate::kind::Kind;
use crate::object::Object;
use std::collections::BTreeMap;

/// The rule each kind's names follow, as the API server applies it.
fn name_rule(kind: Kind) -> NameRule {
    match kind {
        Kind::Namespace => NameRule::Dns1123Label,
        Kind::Service => NameRule::Dns1035Label,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Checks `metadata` of a normalized object.
pub fn check(f: &mut Findings, object: &Object) {
    let at = FieldPath::root().field("metadata");
    let meta = object.metadata();
    match meta.name.as_deref() {
        None | Some("") => f.add(&at.field("name"), Violation::Required),
        Some(name) => {
            let rule = name_rule(object.kind());
            if !rule.allows(name) {
                f.add(
                    &at.field("name"),
                    Violation::InvalidName {
                        value: name.to_string(),
                        rule,
                    },
                );
            }
        }
    }
    if let Some(namespace) = meta.namespace.as_deref()
        && !NameRule::Dns1123Label.allows(namespace)
    {
        f.add(
            &at.field("namespace"),
            Violation::InvalidName {
                value: namespace.to_string(),
                rule: NameRule::Dns1123Label,
            },
        );
    }
    if let Some(labels) = &meta.labels {
        check_labels(f, &at.field("labels"), labels);
    }
    for key in meta.annotations.iter().flatten().map(|(k, _)| k) {
        if let Some(reason) = label_key_error(key, false) {
            f.add(
                &at.field("annotations").field(key),
                Violation::InvalidLabelKey {
                    key: key.clone(),
                    reason,
                },
            );
        }
    }
}

/// Checks a plain Kubernetes label map (labels, a Service selector).
pub fn check_labels(f: &mut Findings, at: &FieldPath, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        if let Some(reason) = label_key_error(key, false) {
            f.add(
                &at.field(key),
                Violation::InvalidLabelKey {
                    key: key.clone(),
                    reason,
                },
            );
        }
        if let Some(reason) = label_value_error(value) {
            f.add(
                &at.field(key),
                Violation::InvalidLabelValue {
                    value: value.clone(),
                    reason,
                },
            );
        }
    }
}
