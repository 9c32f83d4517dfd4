//! The identities a policy can select: the cluster's allocated identities with their
//! labels, namespaces and namespace labels, and the reserved identities.

use crate::input::PolicyInput;
use membrane_common::identity;
use membrane_model::LabelSelector;
use std::collections::{BTreeMap, BTreeSet};

/// The label naming an identity's namespace (without its `k8s:` source).
pub const NAMESPACE_KEY: &str = "io.kubernetes.pod.namespace";

/// How Cilium spells a namespace label inside an identity's labels (after `k8s:`).
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";

/// The label Kubernetes puts on every namespace, naming it.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Reserved identities that are part of the `cluster` entity.
pub const CLUSTER_RESERVED: [u32; 7] = [
    identity::HOST,
    identity::REMOTE_NODE,
    identity::UNMANAGED,
    identity::HEALTH,
    identity::INIT,
    identity::KUBE_APISERVER,
    identity::INGRESS,
];

/// One allocated identity, as selectors see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityLabels {
    /// Its labels as a map (`app` -> `web`, `k8s:` stripped; a label without `=` has an
    /// empty value).
    pub labels: BTreeMap<String, String>,
    /// Its namespace, when it has one.
    pub namespace: Option<String>,
    /// Its namespace's labels (from the identity, else from the Namespace object), with
    /// `kubernetes.io/metadata.name` always set.
    pub namespace_labels: BTreeMap<String, String>,
}

/// Splits `source:key=value` labels into a map, keys without a `k8s:` / `any:` source
/// (selectors match them so; stripped here, a lookup needs no second try).
pub fn label_map(labels: &[String]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|label| {
            let (key, value) = label.split_once('=').unwrap_or((label, ""));
            (
                membrane_model::selector::match_key(key).to_string(),
                value.to_string(),
            )
        })
        .collect()
}

impl IdentityLabels {
    /// The selector view of `labels`, namespace labels filled from `namespaces` when
    /// the identity does not carry them.
    pub fn new(
        labels: &[String],
        namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> IdentityLabels {
        let labels = label_map(labels);
        let namespace = labels.get(NAMESPACE_KEY).cloned();
        let mut namespace_labels: BTreeMap<String, String> = labels
            .iter()
            .filter_map(|(key, value)| {
                Some((
                    key.strip_prefix(NAMESPACE_LABELS_PREFIX)?.to_string(),
                    value.clone(),
                ))
            })
            .collect();
        if let Some(namespace) = &namespace {
            if namespace_labels.is_empty() {
                namespace_labels = namespaces.get(namespace).cloned().unwrap_or_default();
            }
            namespace_labels.insert(NAMESPACE_NAME_LABEL.to_string(), namespace.clone());
        }
        IdentityLabels {
            labels,
            namespace,
            namespace_labels,
        }
    }
}

/// Every allocated identity of the cluster, by number, and indexed by namespace.
#[derive(Clone, Debug, Default)]
pub struct Universe {
    identities: BTreeMap<u32, IdentityLabels>,
    by_namespace: BTreeMap<String, BTreeSet<u32>>,
}

/// Which identities a label-based peer selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The identity's own labels must match.
    pub labels: LabelSelector,
    /// The identity must be in exactly this namespace.
    pub namespace: Option<String>,
    /// The identity's namespace labels must match.
    pub namespace_labels: Option<LabelSelector>,
}

impl Selection {
    /// Whether `identity` is selected.
    pub fn matches(&self, identity: &IdentityLabels) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|ns| identity.namespace.as_ref() == Some(ns))
            && self.namespace_labels.as_ref().is_none_or(|sel| {
                identity.namespace.is_some() && sel.matches(&identity.namespace_labels)
            })
            && self.labels.matches(&identity.labels)
    }
}

impl Universe {
    /// The identities of `input` (allocated ones only; reserved numbers are ignored).
    pub fn new(input: &PolicyInput) -> Universe {
        let mut universe = Universe::default();
        for (number, labels) in &input.identities {
            universe.insert(*number, labels, &input.namespaces);
        }
        universe
    }

    /// Adds (or replaces) identity `number` with `labels`; reserved numbers are ignored.
    pub fn insert(
        &mut self,
        number: u32,
        labels: &[String],
        namespaces: &BTreeMap<String, BTreeMap<String, String>>,
    ) {
        if number < identity::FIRST_ALLOCATED {
            return;
        }
        self.remove(number);
        let labels = IdentityLabels::new(labels, namespaces);
        if let Some(namespace) = &labels.namespace {
            self.by_namespace
                .entry(namespace.clone())
                .or_default()
                .insert(number);
        }
        self.identities.insert(number, labels);
    }

    /// Removes identity `number`.
    pub fn remove(&mut self, number: u32) {
        let Some(old) = self.identities.remove(&number) else {
            return;
        };
        if let Some(namespace) = old.namespace
            && let Some(numbers) = self.by_namespace.get_mut(&namespace)
        {
            numbers.remove(&number);
            if numbers.is_empty() {
                self.by_namespace.remove(&namespace);
            }
        }
    }

    /// The labels of allocated identity `number`.
    pub fn get(&self, number: u32) -> Option<&IdentityLabels> {
        self.identities.get(&number)
    }

    /// Every allocated identity number.
    pub fn allocated(&self) -> impl Iterator<Item = u32> + '_ {
        self.identities.keys().copied()
    }

    /// The allocated identities `selection` selects.
    pub fn select(&self, selection: &Selection) -> BTreeSet<u32> {
        // A selection that can only match one namespace (scoped to it, or naming it in
        // matchLabels) looks at that namespace's identities only.
        let pinned = selection
            .namespace
            .as_ref()
            .or_else(|| selection.labels.match_labels().get(NAMESPACE_KEY))
            .or_else(|| {
                let names = selection.namespace_labels.as_ref()?;
                names.match_labels().get(NAMESPACE_NAME_LABEL)
            });
        match pinned {
            // Only that namespace's identities can match.
            Some(namespace) => self
                .by_namespace
                .get(namespace)
                .into_iter()
                .flatten()
                .filter(|number| selection.matches(&self.identities[*number]))
                .copied()
                .collect(),
            None => self
                .identities
                .iter()
                .filter(|(_, identity)| selection.matches(identity))
                .map(|(number, _)| *number)
                .collect(),
        }
    }
}
