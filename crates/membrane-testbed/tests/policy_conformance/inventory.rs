//! What the bed holds: its nodes, namespaces, pods (labels, named container ports) and
//! the Namespace and Pod objects that describe them to the agents.

use membrane_testbed::workload::{DEFAULT_PORTS, Ports};
use std::fmt::Write as _;

/// The second server of every pod: TCP and UDP on the same number (for protocol ANY)
/// and ports above the first server's (for port ranges).
pub const ALT_PORTS: Ports = Ports {
    tcp: 7100,
    udp: 7100,
    http: 7180,
};

/// Namespaces and their labels.
pub const NAMESPACES: &[(&str, &[(&str, &str)])] = &[
    ("shop", &[("team", "shop"), ("env", "prod")]),
    ("lab", &[("team", "lab"), ("env", "test")]),
    ("ops", &[("purpose", "ops")]),
    ("audit", &[("purpose", "audit")]),
];

/// A pod of the bed: node number, namespace, name, labels.
pub struct PodSpec {
    /// The node number.
    pub node: u8,
    /// The namespace.
    pub namespace: &'static str,
    /// The name.
    pub name: &'static str,
    /// The labels.
    pub labels: &'static [(&'static str, &'static str)],
}

impl PodSpec {
    /// `namespace/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The pods: five on node 1, two on node 2, two on node 3 (the audit-mode node).
pub const PODS: &[PodSpec] = &[
    PodSpec {
        node: 1,
        namespace: "shop",
        name: "web",
        labels: &[("app", "web"), ("tier", "front")],
    },
    PodSpec {
        node: 1,
        namespace: "shop",
        name: "db",
        labels: &[("app", "db"), ("tier", "back")],
    },
    PodSpec {
        node: 1,
        namespace: "shop",
        name: "client",
        labels: &[("app", "client")],
    },
    PodSpec {
        node: 1,
        namespace: "lab",
        name: "client",
        labels: &[("app", "client"), ("stage", "canary")],
    },
    PodSpec {
        node: 1,
        namespace: "ops",
        name: "tool",
        labels: &[("app", "tool"), ("role", "admin")],
    },
    PodSpec {
        node: 2,
        namespace: "shop",
        name: "api",
        labels: &[("app", "api"), ("tier", "front")],
    },
    PodSpec {
        node: 2,
        namespace: "lab",
        name: "remote",
        labels: &[("app", "client"), ("stage", "stable")],
    },
    PodSpec {
        node: AUDIT_NODE,
        namespace: "audit",
        name: "target",
        labels: &[("app", "target")],
    },
    PodSpec {
        node: AUDIT_NODE,
        namespace: "audit",
        name: "peer",
        labels: &[("app", "peer")],
    },
];

/// The node whose agent runs with `--policy-audit-mode true`.
pub const AUDIT_NODE: u8 = 3;
/// The number of nodes.
pub const NODES: u8 = 3;

/// The named container ports every pod declares (name, port, protocol).
const NAMED_PORTS: &[(&str, u16, &str)] = &[
    ("echo", DEFAULT_PORTS.tcp, "TCP"),
    ("echo-udp", DEFAULT_PORTS.udp, "UDP"),
    ("http", DEFAULT_PORTS.http, "TCP"),
    ("alt", ALT_PORTS.tcp, "TCP"),
    ("alt-udp", ALT_PORTS.udp, "UDP"),
    ("alt-http", ALT_PORTS.http, "TCP"),
];

/// The Namespace and Pod objects of the bed, as a user would write them.
pub fn objects(node_name: impl Fn(u8) -> String) -> String {
    let mut text = String::new();
    for (name, labels) in NAMESPACES {
        writeln!(
            text,
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:"
        )
        .unwrap();
        for (key, value) in *labels {
            writeln!(text, "    {key}: {value}").unwrap();
        }
        text.push_str("---\n");
    }
    for spec in PODS {
        writeln!(
            text,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: {}\n  labels:",
            spec.name, spec.namespace
        )
        .unwrap();
        for (key, value) in spec.labels {
            writeln!(text, "    {key}: {value}").unwrap();
        }
        writeln!(
            text,
            "spec:\n  nodeName: {}\n  containers:\n  - name: workload\n    image: membrane-workload\n    ports:",
            node_name(spec.node)
        )
        .unwrap();
        for (name, port, protocol) in NAMED_PORTS {
            writeln!(
                text,
                "    - {{name: {name}, containerPort: {port}, protocol: {protocol}}}"
            )
            .unwrap();
        }
        text.push_str("---\n");
    }
    text
}
