//! The labels of an endpoint's identity: its pod's labels, its namespace's labels and
//! name, and the cluster's name, filtered by the configured rules (Cilium's spelling of
//! each, so that policies written for Cilium select the same pods).

use membrane_model::Object;
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};

/// The label naming an endpoint's namespace.
pub const NAMESPACE_LABEL: &str = "k8s:io.kubernetes.pod.namespace";

/// The label naming the endpoint's cluster.
pub const CLUSTER_LABEL: &str = "k8s:io.cilium.k8s.policy.cluster";

/// The prefix of the namespace's own labels.
pub const NAMESPACE_LABELS_PREFIX: &str = "k8s:io.cilium.k8s.namespace.labels.";

/// The label the Kubernetes API server gives every namespace: its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A label rule that is not a valid regular expression.
#[derive(Debug, thiserror::Error)]
#[error("identity label rule {rule:?} is not a valid regular expression")]
pub struct BadLabelRule {
    /// The rule as configured.
    pub rule: String,
    /// The parser's error.
    #[source]
    pub source: regex::Error,
}

/// One rule: a pattern anchored at the start of `source:key`, including or excluding.
#[derive(Clone, Debug)]
struct Rule {
    pattern: Regex,
    exclude: bool,
}

/// Which labels make identities (see [`super::config::IdentityConfig::labels`]).
#[derive(Clone, Debug)]
pub struct LabelFilter {
    rules: Vec<Rule>,
    includes: bool,
}

impl LabelFilter {
    /// The filter of `rules` (`[!]regex` each); fails on the first invalid one.
    pub fn new(rules: &[String]) -> Result<LabelFilter, BadLabelRule> {
        let rules = rules
            .iter()
            .map(|rule| {
                let (exclude, pattern) = match rule.strip_prefix('!') {
                    Some(rest) => (true, rest),
                    None => (false, rule.as_str()),
                };
                Regex::new(&format!("^(?:{pattern})"))
                    .map(|pattern| Rule { pattern, exclude })
                    .map_err(|source| BadLabelRule {
                        rule: rule.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let includes = rules.iter().any(|rule| !rule.exclude);
        Ok(LabelFilter { rules, includes })
    }

    /// Whether the label `source:key` makes identities: the rule with the longest match
    /// decides, an exclusion winning a tie; unmatched labels are kept unless the filter
    /// has inclusion rules.
    pub fn keeps(&self, source_key: &str) -> bool {
        let longest = |exclude: bool| {
            self.rules
                .iter()
                .filter(|rule| rule.exclude == exclude)
                .filter_map(|rule| rule.pattern.find(source_key).map(|m| m.len()))
                .max()
        };
        match (longest(false), longest(true)) {
            (None, None) => !self.includes,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(included), Some(excluded)) => included > excluded,
        }
    }
}

/// What an endpoint's identity is made of.
#[derive(Clone, Copy, Debug)]
pub struct LabelSources<'a> {
    /// The cluster's name.
    pub cluster: &'a str,
    /// The endpoint's namespace.
    pub namespace: &'a str,
    /// Its Namespace object, when stored.
    pub namespace_object: Option<&'a Object>,
    /// Its Pod object, when stored.
    pub pod: Option<&'a Object>,
}

/// The identity labels of an endpoint: the namespace and cluster labels always, and the
/// pod's labels (`k8s:<key>=<value>`) and the namespace's (`k8s:io.cilium.k8s.namespace.
/// labels.<key>=<value>`, with `kubernetes.io/metadata.name` as the API server sets it)
/// that `filter` keeps.
pub fn identity_labels(sources: LabelSources<'_>, filter: &LabelFilter) -> BTreeSet<String> {
    let mut labels = BTreeSet::from([
        format!("{NAMESPACE_LABEL}={}", sources.namespace),
        format!("{CLUSTER_LABEL}={}", sources.cluster),
    ]);
    let mut namespace_labels = BTreeMap::from([(
        NAMESPACE_NAME_LABEL.to_string(),
        sources.namespace.to_string(),
    )]);
    if let Some(namespace) = sources.namespace_object {
        namespace_labels.extend(namespace.labels().clone());
    }
    let namespaced = namespace_labels
        .iter()
        .map(|(key, value)| (format!("{NAMESPACE_LABELS_PREFIX}{key}"), value));
    let pod_labels = sources
        .pod
        .into_iter()
        .flat_map(|pod| pod.labels())
        .map(|(key, value)| (format!("k8s:{key}"), value));
    for (source_key, value) in namespaced.chain(pod_labels) {
        if filter.keeps(&source_key) {
            labels.insert(format!("{source_key}={value}"));
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::identity::config::IdentityConfig;
    use membrane_model::Kind;

    fn object(kind: Kind, namespace: Option<&str>, labels: &[(&str, &str)]) -> Object {
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let value = match kind {
            Kind::Pod => serde_json::json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web-1", "namespace": namespace, "labels": labels},
                "spec": {"containers": [{"name": "web", "image": "web"}]},
            }),
            _ => serde_json::json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": "shop", "labels": labels},
            }),
        };
        Object::from_value(kind, value).unwrap()
    }

    fn default_filter() -> LabelFilter {
        LabelFilter::new(&IdentityConfig::default().labels).unwrap()
    }

    #[test]
    fn labels_are_the_pods_the_namespaces_its_name_and_the_clusters() {
        let pod = object(
            Kind::Pod,
            Some("shop"),
            &[("app", "web"), ("pod-template-hash", "5d8f")],
        );
        let namespace = object(Kind::Namespace, None, &[("team", "blue")]);
        let labels = identity_labels(
            LabelSources {
                cluster: "east",
                namespace: "shop",
                namespace_object: Some(&namespace),
                pod: Some(&pod),
            },
            &default_filter(),
        );
        let expected: BTreeSet<String> = [
            "k8s:app=web",
            "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
            "k8s:io.cilium.k8s.namespace.labels.team=blue",
            "k8s:io.cilium.k8s.policy.cluster=east",
            "k8s:io.kubernetes.pod.namespace=shop",
        ]
        .map(String::from)
        .into();
        assert_eq!(labels, expected);
    }

    #[test]
    fn a_pod_without_objects_still_has_its_namespace_and_cluster() {
        let labels = identity_labels(
            LabelSources {
                cluster: "default",
                namespace: "shop",
                namespace_object: None,
                pod: None,
            },
            &default_filter(),
        );
        assert!(labels.contains("k8s:io.kubernetes.pod.namespace=shop"));
        assert!(labels.contains("k8s:io.cilium.k8s.policy.cluster=default"));
        assert_eq!(labels.len(), 3, "{labels:?}");
    }

    #[test]
    fn the_default_rules_drop_the_labels_controllers_stamp_on_each_pod() {
        let filter = default_filter();
        for dropped in [
            "k8s:pod-template-hash",
            "k8s:controller-revision-hash",
            "k8s:statefulset.kubernetes.io/pod-name",
            "k8s:job-name",
            "k8s:controller-uid",
            "k8s:batch.kubernetes.io/job-name",
        ] {
            assert!(!filter.keeps(dropped), "{dropped} kept");
        }
        for kept in [
            "k8s:app",
            "k8s:job-name-suffix",
            "k8s:app.kubernetes.io/name",
        ] {
            assert!(filter.keeps(kept), "{kept} dropped");
        }
    }

    #[test]
    fn the_longest_matching_rule_decides_and_inclusions_drop_the_unmatched() {
        let rules = |r: &[&str]| {
            LabelFilter::new(&r.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
        };
        let filter = rules(&[
            "k8s:app",
            "!k8s:app\\.kubernetes\\.io/",
            "k8s:app\\.kubernetes\\.io/name$",
        ]);
        assert!(filter.keeps("k8s:app"));
        assert!(!filter.keeps("k8s:app.kubernetes.io/version"));
        assert!(filter.keeps("k8s:app.kubernetes.io/name"));
        assert!(
            !filter.keeps("k8s:tier"),
            "inclusions given: the unmatched go"
        );
        let exclusions_only = rules(&["!k8s:tier"]);
        assert!(exclusions_only.keeps("k8s:app") && !exclusions_only.keeps("k8s:tier"));
        assert!(rules(&[]).keeps("k8s:anything"));
        let tie = rules(&["k8s:a", "!k8s:a"]);
        assert!(!tie.keeps("k8s:a"), "an exclusion wins a tie");
    }

    #[test]
    fn an_invalid_rule_is_named() {
        let error = LabelFilter::new(&["!k8s:(".to_string()]).unwrap_err();
        assert!(error.to_string().contains("!k8s:("), "{error}");
    }
}
