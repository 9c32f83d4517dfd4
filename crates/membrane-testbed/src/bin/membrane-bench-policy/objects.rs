//! The manifests the benchmark applies: the pods' namespace, one Pod object per pod
//! (so the agent knows their labels) and the policy that selects them all.

use serde_json::{Value, json};

/// The namespace every measured pod runs in.
pub const NAMESPACE: &str = "bench";

/// The label value of the one pod the policy lets in.
pub const CLIENT: &str = "client";

/// The name of pod number `index`.
pub fn pod_name(index: u32) -> String {
    format!("pod{index}")
}

/// The `app` label of a server pod `index`, `None` for the client (pod 0).
pub fn app_of(index: u32) -> Option<String> {
    (index != 0).then(|| crate::scale::app(index))
}

/// The namespace and a Pod object for each of `pods` pods: pod 0 is the client, the
/// others servers of apps `app0` to `app199` in turn.
pub fn workload(pods: u32) -> Vec<Value> {
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {"team": NAMESPACE}},
    })];
    objects.extend((0..pods).map(|index| {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name(index),
                "namespace": NAMESPACE,
                "labels": {"app": app_of(index).unwrap_or_else(|| CLIENT.to_string())},
            },
            "spec": {"containers": [{"name": "main", "image": "main"}]},
        })
    }));
    objects
}

/// A NetworkPolicy selecting every pod of the namespace for egress (default deny) and
/// letting them out only to the client pod, on TCP 7000.
pub fn egress_policy() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "only-to-the-client", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{
                "to": [{"podSelector": {"matchLabels": {"app": CLIENT}}}],
                "ports": [{"port": 7000, "protocol": "TCP"}],
            }],
        },
    })
}

/// A NetworkPolicy selecting every pod of the namespace for ingress (default deny) and
/// allowing only the client pod in, on TCP 7000.
pub fn policy() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "only-the-client", "namespace": NAMESPACE},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"app": CLIENT}}}],
                "ports": [{"port": 7000, "protocol": "TCP"}],
            }],
        },
    })
}
