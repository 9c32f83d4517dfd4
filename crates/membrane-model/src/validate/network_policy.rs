//! Kubernetes NetworkPolicy: selectors, peers, ipBlocks and ports.

use super::net::{
    K8S_PROTOCOLS, check_cidr_except, check_end_port, check_int_or_name, check_one_of,
};
use super::{FieldPath, Findings, Violation, selectors};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use std::collections::BTreeSet;

const POLICY_TYPES: &[&str] = &["Ingress", "Egress"];

/// Checks the pod selector, policy types and every rule's peers and ports.
pub fn check(f: &mut Findings, root: &FieldPath, policy: &NetworkPolicy) {
    let Some(spec) = &policy.spec else { return };
    let at = root.field("spec");
    if let Some(selector) = &spec.pod_selector {
        selectors::check(f, &at.field("podSelector"), selector, false);
    }
    let mut seen = BTreeSet::new();
    for (i, policy_type) in spec.policy_types.iter().flatten().enumerate() {
        let at = at.field("policyTypes").index(i);
        check_one_of(f, &at, policy_type, POLICY_TYPES);
        if !seen.insert(policy_type) {
            f.add(
                &at,
                Violation::Duplicate {
                    value: policy_type.clone(),
                },
            );
        }
    }
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let at = at.field("ingress").index(i);
        check_peers(f, &at.field("from"), rule.from.as_deref());
        check_ports(f, &at.field("ports"), rule.ports.as_deref());
    }
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let at = at.field("egress").index(i);
        check_peers(f, &at.field("to"), rule.to.as_deref());
        check_ports(f, &at.field("ports"), rule.ports.as_deref());
    }
}

/// A peer is a pod selector, a namespace selector, both, or an ipBlock alone.
fn check_peers(f: &mut Findings, at: &FieldPath, peers: Option<&[NetworkPolicyPeer]>) {
    for (i, peer) in peers.unwrap_or_default().iter().enumerate() {
        let at = at.index(i);
        if let Some(selector) = &peer.pod_selector {
            selectors::check(f, &at.field("podSelector"), selector, false);
        }
        if let Some(selector) = &peer.namespace_selector {
            selectors::check(f, &at.field("namespaceSelector"), selector, false);
        }
        match &peer.ip_block {
            Some(block) => {
                check_cidr_except(
                    f,
                    &at.field("ipBlock"),
                    &block.cidr,
                    block.except.as_deref(),
                    false,
                );
                if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                    f.add(
                        &at.field("ipBlock"),
                        Violation::Conflicts {
                            other: "podSelector or namespaceSelector",
                        },
                    );
                }
            }
            None if peer.pod_selector.is_none() && peer.namespace_selector.is_none() => f.add(
                &at,
                Violation::NeedsOneOf {
                    fields: "podSelector, namespaceSelector or ipBlock",
                },
            ),
            None => {}
        }
    }
}

fn check_ports(f: &mut Findings, at: &FieldPath, ports: Option<&[NetworkPolicyPort]>) {
    for (i, port) in ports.unwrap_or_default().iter().enumerate() {
        let at = at.index(i);
        if let Some(protocol) = &port.protocol {
            check_one_of(f, &at.field("protocol"), protocol, K8S_PROTOCOLS);
        }
        let number = port
            .port
            .as_ref()
            .and_then(|p| check_int_or_name(f, &at.field("port"), p));
        if let Some(end_port) = port.end_port {
            check_end_port(f, &at.field("endPort"), number, i64::from(end_port));
        }
    }
}
