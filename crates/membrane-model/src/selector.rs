//! Label selectors (`matchLabels` and `matchExpressions`) evaluated against label maps.
//!
//! One type serves NetworkPolicy's Kubernetes selectors and Cilium's endpoint selectors.
//! Cilium lets a selector key carry a label source, as in `k8s:app` or `any:app`; for
//! matching, those two prefixes are stripped from selector keys and from label keys
//! alike, so `k8s:app=web` selects a pod labelled `app=web`. Other sources (`reserved:`,
//! `cidr:`, ...) are kept: such a key matches only a label spelled with the same source.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

/// Label sources whose prefix is stripped before matching.
const STRIPPED_SOURCES: [&str; 2] = ["k8s:", "any:"];

/// The key a selector or label key matches under: without a `k8s:` or `any:` source.
pub fn match_key(key: &str) -> &str {
    STRIPPED_SOURCES
        .iter()
        .find_map(|source| key.strip_prefix(source))
        .unwrap_or(key)
}

/// A selector operator of `matchExpressions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present, whatever its value.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl Operator {
    /// The operator as manifests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        }
    }

    /// True for the operators that compare against a list of values.
    pub fn takes_values(self) -> bool {
        matches!(self, Operator::In | Operator::NotIn)
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operator {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Operator, SelectorError> {
        match s {
            "In" => Ok(Operator::In),
            "NotIn" => Ok(Operator::NotIn),
            "Exists" => Ok(Operator::Exists),
            "DoesNotExist" => Ok(Operator::DoesNotExist),
            _ => Err(SelectorError::UnknownOperator {
                operator: s.to_string(),
            }),
        }
    }
}

/// Why a selector expression is not valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The operator is not In, NotIn, Exists or DoesNotExist.
    #[error("unknown operator `{operator}`: expected In, NotIn, Exists or DoesNotExist")]
    UnknownOperator {
        /// The operator as written.
        operator: String,
    },
    /// In or NotIn without values.
    #[error("operator {operator} needs at least one value")]
    ValuesRequired {
        /// The operator.
        operator: Operator,
    },
    /// Exists or DoesNotExist with values.
    #[error("operator {operator} takes no values")]
    ValuesForbidden {
        /// The operator.
        operator: Operator,
    },
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

impl Requirement {
    /// A requirement from its manifest fields, checked: In and NotIn need values,
    /// Exists and DoesNotExist must have none.
    pub fn new(key: &str, operator: &str, values: &[String]) -> Result<Requirement, SelectorError> {
        let operator: Operator = operator.parse()?;
        if operator.takes_values() && values.is_empty() {
            return Err(SelectorError::ValuesRequired { operator });
        }
        if !operator.takes_values() && !values.is_empty() {
            return Err(SelectorError::ValuesForbidden { operator });
        }
        Ok(Requirement {
            key: match_key(key).to_string(),
            operator,
            values: values.iter().cloned().collect(),
        })
    }

    /// The label key (without a `k8s:` / `any:` source).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values (empty for Exists and DoesNotExist).
    pub fn values(&self) -> &BTreeSet<String> {
        &self.values
    }

    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = lookup(labels, &self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A label selector: every `matchLabels` pair and every requirement must hold. The
/// empty selector selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    match_labels: BTreeMap<String, String>,
    match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// A selector from label pairs and requirements; `k8s:` / `any:` sources are stripped
    /// from the pairs' keys.
    pub fn new(
        match_labels: impl IntoIterator<Item = (String, String)>,
        match_expressions: Vec<Requirement>,
    ) -> LabelSelector {
        LabelSelector {
            match_labels: match_labels
                .into_iter()
                .map(|(k, v)| (match_key(&k).to_string(), v))
                .collect(),
            match_expressions,
        }
    }

    /// The label pairs that must all be present.
    pub fn match_labels(&self) -> &BTreeMap<String, String> {
        &self.match_labels
    }

    /// The requirements that must all hold.
    pub fn match_expressions(&self) -> &[Requirement] {
        &self.match_expressions
    }

    /// True for the selector that selects everything.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether this selector selects an object with these labels. Label keys may carry
    /// a `k8s:` or `any:` source; it is ignored.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(key, value)| lookup(labels, key) == Some(value.as_str()))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl TryFrom<&meta::LabelSelector> for LabelSelector {
    type Error = SelectorError;

    /// Converts a Kubernetes selector (as found in NetworkPolicy and in Cilium's
    /// endpoint selectors), checking each expression's operator and values.
    fn try_from(selector: &meta::LabelSelector) -> Result<LabelSelector, SelectorError> {
        let expressions = selector
            .match_expressions
            .iter()
            .flatten()
            .map(|e| Requirement::new(&e.key, &e.operator, e.values.as_deref().unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector::new(
            selector.match_labels.clone().unwrap_or_default(),
            expressions,
        ))
    }
}

impl fmt::Display for LabelSelector {
    /// kubectl's selector syntax: `app=web,tier in (api,db),!legacy`; the empty
    /// selector prints as `<all>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("<all>");
        }
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            let values = r.values.iter().cloned().collect::<Vec<_>>().join(",");
            parts.push(match r.operator {
                Operator::In => format!("{} in ({values})", r.key),
                Operator::NotIn => format!("{} notin ({values})", r.key),
                Operator::Exists => r.key.clone(),
                Operator::DoesNotExist => format!("!{}", r.key),
            });
        }
        f.write_str(&parts.join(","))
    }
}

/// The value of `key` in `labels`, whether the label is spelled plainly or with a
/// `k8s:` / `any:` source.
fn lookup<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    labels
        .get(key)
        .or_else(|| {
            STRIPPED_SOURCES
                .iter()
                .find_map(|source| labels.get(&format!("{source}{key}")))
        })
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn requirement(key: &str, op: &str, values: &[&str]) -> Requirement {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        Requirement::new(key, op, &values).unwrap()
    }

    #[test]
    fn match_labels_must_all_be_present_with_equal_values() {
        let s = LabelSelector::new(labels(&[("app", "web"), ("tier", "front")]), vec![]);
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "front"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "back")])));
    }

    #[test]
    fn each_operator_follows_kubernetes_semantics() {
        let web = labels(&[("app", "web")]);
        let db = labels(&[("app", "db")]);
        let none = labels(&[]);
        let r#in = requirement("app", "In", &["web", "api"]);
        assert!(r#in.matches(&web) && !r#in.matches(&db) && !r#in.matches(&none));
        let not_in = requirement("app", "NotIn", &["web"]);
        assert!(!not_in.matches(&web) && not_in.matches(&db) && not_in.matches(&none));
        let exists = requirement("app", "Exists", &[]);
        assert!(exists.matches(&web) && !exists.matches(&none));
        let absent = requirement("app", "DoesNotExist", &[]);
        assert!(!absent.matches(&web) && absent.matches(&none));
    }

    #[test]
    fn cilium_k8s_and_any_sources_are_stripped_on_both_sides() {
        let s = LabelSelector::new(
            labels(&[("k8s:app", "web")]),
            vec![requirement("any:tier", "Exists", &[])],
        );
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "x")])));
        let plain = LabelSelector::new(labels(&[("app", "web")]), vec![]);
        assert!(plain.matches(&labels(&[("k8s:app", "web")])));
    }

    #[test]
    fn other_label_sources_are_not_stripped() {
        let s = LabelSelector::new(labels(&[("reserved:host", "")]), vec![]);
        assert!(!s.matches(&labels(&[("host", "")])));
        assert!(s.matches(&labels(&[("reserved:host", "")])));
    }

    #[test]
    fn operators_reject_missing_or_extra_values_and_unknown_names() {
        assert_eq!(
            Requirement::new("a", "In", &[]).unwrap_err(),
            SelectorError::ValuesRequired {
                operator: Operator::In
            }
        );
        assert_eq!(
            Requirement::new("a", "Exists", &["x".into()]).unwrap_err(),
            SelectorError::ValuesForbidden {
                operator: Operator::Exists
            }
        );
        let err = Requirement::new("a", "Equals", &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown operator `Equals`: expected In, NotIn, Exists or DoesNotExist"
        );
    }

    #[test]
    fn kubernetes_selectors_convert_and_bad_operators_are_refused() {
        let k8s = meta::LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![meta::LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        let s = LabelSelector::try_from(&k8s).unwrap();
        assert_eq!(s.to_string(), "app=web,tier notin (db)");
        let bad = meta::LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![meta::LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: None,
            }]),
        };
        assert!(LabelSelector::try_from(&bad).is_err());
    }

    fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
        proptest::collection::btree_map("[a-c]{1,2}", "[x-z]{0,2}", 0..6)
    }

    proptest! {
        #[test]
        fn the_empty_selector_matches_every_label_map(map in label_map()) {
            prop_assert!(LabelSelector::default().matches(&map));
        }

        #[test]
        fn a_selector_built_from_a_subset_of_labels_matches_them(map in label_map(), take in 0usize..6) {
            let subset: Vec<_> = map.clone().into_iter().take(take).collect();
            prop_assert!(LabelSelector::new(subset, vec![]).matches(&map));
        }

        #[test]
        fn a_k8s_prefixed_selector_matches_exactly_what_the_plain_one_does(
            selector in label_map(), map in label_map()
        ) {
            let plain = LabelSelector::new(selector.clone(), vec![]);
            let prefixed = LabelSelector::new(
                selector.into_iter().map(|(k, v)| (format!("k8s:{k}"), v)),
                vec![],
            );
            prop_assert_eq!(plain.matches(&map), prefixed.matches(&map));
        }

        #[test]
        fn in_and_not_in_are_complements(
            key in "[a-c]{1,2}",
            values in proptest::collection::vec("[x-z]{0,2}", 1..4),
            map in label_map(),
        ) {
            let r#in = Requirement::new(&key, "In", &values).unwrap();
            let not_in = Requirement::new(&key, "NotIn", &values).unwrap();
            prop_assert_ne!(r#in.matches(&map), not_in.matches(&map));
        }

        #[test]
        fn exists_and_does_not_exist_are_complements(key in "[a-c]{1,2}", map in label_map()) {
            let exists = Requirement::new(&key, "Exists", &[]).unwrap();
            let absent = Requirement::new(&key, "DoesNotExist", &[]).unwrap();
            prop_assert_ne!(exists.matches(&map), absent.matches(&map));
            prop_assert_eq!(exists.matches(&map), map.contains_key(&key));
        }
    }
}
