//! The state the issue measures the agent in: identities of pods on other nodes (spread
//! over namespaces and apps) and policies over the benchmark's pods that admit some of
//! them, each on a port of its own, so that how many datapath entries each policy makes
//! is known in advance.

use crate::objects::{self, NAMESPACE};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Namespaces the other nodes' pods run in.
const REMOTE_NAMESPACES: u32 = 50;

/// Distinct `app` labels, of remote and benchmark pods alike.
pub const APPS: u32 = 200;

/// The port of the first scale policy; policy `p` admits on `FIRST_PORT + p`.
pub const FIRST_PORT: u16 = 1000;

/// The cluster name the agent puts in identities (its default).
const CLUSTER: &str = "default";

/// The `app` label value of number `n`.
pub fn app(n: u32) -> String {
    format!("app{}", n % APPS)
}

/// The namespace of remote pod `j`.
fn remote_namespace(j: u32) -> String {
    format!("ns{}", j % REMOTE_NAMESPACES)
}

/// The identity labels of remote pod `j`, spelled as an agent makes them (namespace,
/// cluster, the namespace's name label, the pod's labels), each set distinct.
pub fn remote_identity(j: u32) -> BTreeSet<String> {
    let namespace = remote_namespace(j);
    BTreeSet::from([
        format!("k8s:io.kubernetes.pod.namespace={namespace}"),
        format!("k8s:io.cilium.k8s.policy.cluster={CLUSTER}"),
        format!("k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={namespace}"),
        format!("k8s:app={}", app(j)),
        format!("k8s:instance=i{j}"),
    ])
}

/// Scale policy `p`: a CiliumNetworkPolicy in the benchmark's namespace selecting its
/// pods of app `p`, admitting the remote pods of app `p + 1` (all in one namespace, as
/// `j % 200` fixes `j % 50`) on TCP port `FIRST_PORT + p`.
pub fn policy(p: u32) -> Value {
    let peer = p + 1;
    json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": format!("scale{p}"), "namespace": NAMESPACE},
        "spec": {
            "endpointSelector": {"matchLabels": {"app": app(p)}},
            "ingress": [{
                "fromEndpoints": [{"matchLabels": {
                    "app": app(peer),
                    "k8s:io.kubernetes.pod.namespace": remote_namespace(peer),
                }}],
                "toPorts": [{"ports": [{"port": port(p).to_string(), "protocol": "TCP"}]}],
            }],
        },
    })
}

/// The port of scale policy `p`.
pub fn port(p: u32) -> u16 {
    FIRST_PORT + u16::try_from(p).expect("policy counts are bounded by the command line")
}

/// How many ingress entries scale policy `p` makes with `pods` benchmark pods and
/// `identities` remote identities: one per selected pod and admitted identity.
pub fn expected_entries(p: u32, pods: u32, identities: u32) -> usize {
    let selected = (0..pods)
        .filter(|&i| objects::app_of(i).as_deref() == Some(app(p).as_str()))
        .count();
    let admitted = (0..identities).filter(|&j| app(j) == app(p + 1)).count();
    selected * admitted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_admits_the_remote_pods_of_the_next_app_and_selects_the_pods_of_its_own() {
        // 1,000 pods: the client and 999 servers, app0..app199 about five times each.
        assert_eq!(expected_entries(0, 1000, 10_000), 4 * 50);
        assert_eq!(expected_entries(1, 1000, 10_000), 5 * 50);
        assert_eq!(expected_entries(0, 1000, 0), 0);
        let admitted: Vec<u32> = (0..10_000)
            .filter(|&j| remote_identity(j).contains("k8s:app=app8"))
            .collect();
        assert_eq!(admitted.len(), 50);
        assert!(
            admitted
                .iter()
                .all(|&j| { remote_identity(j).contains("k8s:io.kubernetes.pod.namespace=ns8") })
        );
    }

    #[test]
    fn every_remote_pod_has_a_label_set_of_its_own() {
        let sets: BTreeSet<_> = (0..1000).map(remote_identity).collect();
        assert_eq!(sets.len(), 1000);
    }
}
