//! One policy object to sections, the prefixes sections name, and [`compile`]: a
//! [`Compiler`] built from scratch.

use crate::cilium::{self, Source};
use crate::clause::{Peers, Section};
use crate::compiler::Compiler;
use crate::input::PolicyInput;
use crate::network_policy;
use crate::output::{Compiled, PolicyKind, Warning};
use ipnet::IpNet;
use membrane_model::Object;
use std::collections::BTreeSet;

/// Compiles `input`: every local endpoint's flags and entries, the rule table and the
/// CIDR identities in use.
pub fn compile(input: &PolicyInput) -> Compiled {
    Compiler::new(input.clone()).into_compiled()
}

/// The sections of one policy object (none for other kinds); problems are added to
/// `warnings`.
pub fn sections(object: &Object, warnings: &mut Vec<Warning>) -> Vec<Section> {
    let meta = object.metadata();
    let name = meta.name.as_deref().unwrap_or_default();
    match object {
        Object::NetworkPolicy(policy) => network_policy::sections(policy, warnings),
        Object::CiliumNetworkPolicy(policy) => {
            let namespace = meta.namespace.as_deref().unwrap_or("default");
            let source = Source {
                kind: PolicyKind::CiliumNetworkPolicy,
                namespace: Some(namespace),
                name,
            };
            cilium::sections(
                &source,
                policy.spec.as_ref(),
                policy.specs.as_deref(),
                warnings,
            )
        }
        Object::CiliumClusterwideNetworkPolicy(policy) => {
            let source = Source {
                kind: PolicyKind::CiliumClusterwideNetworkPolicy,
                namespace: None,
                name,
            };
            cilium::sections(
                &source,
                policy.spec.as_ref(),
                policy.specs.as_deref(),
                warnings,
            )
        }
        _ => Vec::new(),
    }
}

/// Every prefix `sections` name, `except` prefixes included.
pub fn prefixes(sections: &[Section]) -> BTreeSet<IpNet> {
    sections
        .iter()
        .flat_map(|s| &s.clauses)
        .filter_map(|c| match &c.peers {
            Peers::Cidr { cidr, except, .. } => Some(std::iter::once(cidr).chain(except)),
            _ => None,
        })
        .flatten()
        .copied()
        .collect()
}
