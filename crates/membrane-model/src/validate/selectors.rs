//! Label selectors as written in manifests: keys, values and expressions.

use super::names::{label_key_error, label_value_error};
use super::{FieldPath, Findings, Violation};
use crate::selector::{Requirement, SelectorError};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Checks a selector; `cilium` allows Cilium's label sources in keys (`k8s:app`).
pub fn check(f: &mut Findings, at: &FieldPath, selector: &LabelSelector, cilium: bool) {
    for (key, value) in selector.match_labels.iter().flatten() {
        let at = at.field("matchLabels").field(key);
        check_key(f, &at, key, cilium);
        check_value(f, &at, value);
    }
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let at = at.field("matchExpressions").index(i);
        check_key(f, &at.field("key"), &expr.key, cilium);
        let values = expr.values.as_deref().unwrap_or_default();
        for (j, value) in values.iter().enumerate() {
            check_value(f, &at.field("values").index(j), value);
        }
        if let Err(err) = Requirement::new(&expr.key, &expr.operator, values) {
            let field = match err {
                SelectorError::UnknownOperator { .. } => "operator",
                SelectorError::ValuesRequired { .. } | SelectorError::ValuesForbidden { .. } => {
                    "values"
                }
            };
            f.add(&at.field(field), Violation::from(err));
        }
    }
}

fn check_key(f: &mut Findings, at: &FieldPath, key: &str, cilium: bool) {
    if let Some(reason) = label_key_error(key, cilium) {
        f.add(
            at,
            Violation::InvalidLabelKey {
                key: key.to_string(),
                reason,
            },
        );
    }
}

fn check_value(f: &mut Findings, at: &FieldPath, value: &str) {
    if let Some(reason) = label_value_error(value) {
        f.add(
            at,
            Violation::InvalidLabelValue {
                value: value.to_string(),
                reason,
            },
        );
    }
}
