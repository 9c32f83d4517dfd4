//! Property test of the incremental compiler: random sequences of changes (policies
//! added, changed and removed; identities, pod and node addresses, named ports,
//! endpoints, namespaces, mode) applied with [`Compiler::update`] or
//! [`Compiler::set_endpoint`] give after every step exactly what a compilation from
//! scratch gives, and report every endpoint whose policy changed.

use super::Compiler;
use crate::compile;
use crate::input::{EnforcementMode, Labels, LocalEndpoint, NamedPort, PolicyInput};
use crate::output::EndpointPolicy;
use membrane_model::Object;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Two versions of each policy: the second changes selectors, peers or ports.
const POLICIES: [[&str; 2]; 10] = [
    [
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}]}]\n",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: web, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: web}}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}], ports: [{port: 80, endPort: 90}]}]\n",
    ],
    [
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Ingress, Egress]}\n",
    ],
    [
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: block, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.0/24]}}]}]\n",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: block, namespace: shop}\nspec:\n  podSelector: {matchLabels: {app: db}}\n  egress: [{to: [{ipBlock: {cidr: 10.0.0.10/32}}]}]\n",
    ],
    [
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: deny-client, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  enableDefaultDeny: {ingress: false}\n  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}]}]\n",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: deny-client, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: \"80\", protocol: TCP}]}]}]\n",
    ],
    [
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: req}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  ingress:\n  - fromEndpoints: [{matchLabels: {app: client}}]\n    fromRequires: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other}}]\n",
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: req}\nspec:\n  endpointSelector: {}\n  ingress:\n  - fromEntities: [cluster]\n    fromRequires: [{matchLabels: {app: api}}]\n",
    ],
    [
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: out, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  egress: [{toEndpoints: [{matchLabels: {app: db}}], toPorts: [{ports: [{port: pg, protocol: TCP}]}]}]\n",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: out, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: web}}\n  egress: [{toCIDRSet: [{cidr: 192.0.2.0/24, except: [192.0.2.128/25]}]}]\n",
    ],
    [
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: world, namespace: shop}\nspec:\n  endpointSelector: {}\n  egress: [{toEntities: [world]}, {toCIDR: [172.16.0.0/12]}]\n",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: world, namespace: shop}\nspec:\n  endpointSelector: {}\n  egress: [{toEntities: [cluster]}]\n",
    ],
    [
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ns, namespace: other}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}}]}]\n",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: ns, namespace: other}\nspec:\n  podSelector: {}\n  ingress: [{from: [{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {app: client}}}]}]\n",
    ],
    [
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: named, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: db}}\n  ingress: [{fromEndpoints: [{}], toPorts: [{ports: [{port: http, protocol: TCP}]}]}]\n",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: named, namespace: shop}\nspec:\n  endpointSelector: {matchLabels: {app: db}}\n  ingress: [{fromEndpoints: [{}], toPorts: [{ports: [{port: pg, protocol: TCP}]}]}]\n",
    ],
    [
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: deny-world, namespace: shop}\nspec:\n  endpointSelector: {}\n  ingressDeny: [{fromEntities: [world]}, {fromCIDR: [10.0.1.0/24]}]\n",
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: deny-world, namespace: shop}\nspec:\n  endpointSelector: {}\n  enableDefaultDeny: {egress: false}\n  egressDeny: [{toCIDR: [10.0.0.10/32]}]\n",
    ],
];

const APPS: [&str; 4] = ["web", "db", "client", "api"];
const NAMESPACES: [&str; 2] = ["shop", "other"];
const ADDRESSES: [&str; 6] = [
    "10.0.0.10",
    "10.0.1.5",
    "10.0.2.6",
    "10.0.0.11",
    "192.0.2.200",
    "172.16.0.1",
];

/// Labels number `n` (0..16): app, namespace, and whether the identity carries its
/// namespace's labels.
fn labels(n: usize) -> Labels {
    let mut labels = vec![
        format!("k8s:app={}", APPS[n % 4]),
        format!(
            "k8s:io.kubernetes.pod.namespace={}",
            NAMESPACES[(n / 4) % 2]
        ),
    ];
    if n >= 8 {
        labels.push("k8s:io.cilium.k8s.namespace.labels.team=b".to_string());
    }
    labels
}

/// One change.
#[derive(Clone, Debug)]
enum Step {
    /// Policy `0` absent, or present in version `1`.
    Policy(usize, Option<usize>),
    /// Identity `300 + 0` with labels number `1`, or removed.
    Identity(u32, Option<usize>),
    /// Address `0` is a pod's with identity `300 + 1`, or no pod's.
    Pod(usize, Option<u32>),
    /// Node address `0` of two present or not.
    Node(usize, bool),
    /// The cluster's named port `pg` (and `http`) present or not.
    NamedPorts(bool),
    /// Endpoint `1 + 0` absent, or present with labels number `1`.
    Endpoint(u16, Option<usize>),
    /// Endpoint `1 + 0` added with labels number `1` through `set_endpoint`.
    Hook(u16, usize),
    /// Namespace `shop`'s team label.
    ShopTeam(bool),
    /// The mode and audit flag.
    Mode(u8, bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..POLICIES.len(), proptest::option::of(0usize..2)).prop_map(|(p, v)| Step::Policy(p, v)),
        6 => (0u32..10, proptest::option::weighted(0.8, 0usize..16)).prop_map(|(n, l)| Step::Identity(n, l)),
        3 => (0..ADDRESSES.len(), proptest::option::of(0u32..10)).prop_map(|(a, n)| Step::Pod(a, n)),
        1 => (0usize..2, any::<bool>()).prop_map(|(a, on)| Step::Node(a, on)),
        1 => any::<bool>().prop_map(Step::NamedPorts),
        3 => (0u16..4, proptest::option::weighted(0.7, 0usize..16)).prop_map(|(e, l)| Step::Endpoint(e, l)),
        2 => (0u16..4, 0usize..16).prop_map(|(e, l)| Step::Hook(e, l)),
        1 => any::<bool>().prop_map(Step::ShopTeam),
        1 => (0u8..3, any::<bool>()).prop_map(|(m, a)| Step::Mode(m, a)),
    ]
}

/// The cluster the steps change.
#[derive(Clone, Debug, Default)]
struct World {
    policies: BTreeMap<usize, usize>,
    identities: BTreeMap<u32, Labels>,
    pods: BTreeMap<usize, u32>,
    nodes: BTreeSet<usize>,
    named_ports: bool,
    endpoints: BTreeMap<u16, usize>,
    shop_team_b: bool,
    mode: u8,
    audit: bool,
}

fn endpoint(id: u16, labels_number: usize) -> LocalEndpoint {
    LocalEndpoint {
        id,
        identity: 400 + labels_number as u32,
        labels: labels(labels_number),
        named_ports: vec![
            NamedPort {
                name: "http".into(),
                proto: crate::proto::TCP,
                port: 8080 + id,
            },
            NamedPort {
                name: "pg".into(),
                proto: crate::proto::TCP,
                port: 5432,
            },
        ],
    }
}

impl World {
    fn apply(&mut self, step: &Step) {
        match step.clone() {
            Step::Policy(p, Some(v)) => {
                self.policies.insert(p, v);
            }
            Step::Policy(p, None) => {
                self.policies.remove(&p);
            }
            Step::Identity(n, Some(l)) => {
                self.identities.insert(300 + n, labels(l));
            }
            Step::Identity(n, None) => {
                self.identities.remove(&(300 + n));
            }
            Step::Pod(a, Some(n)) => {
                self.pods.insert(a, 300 + n);
            }
            Step::Pod(a, None) => {
                self.pods.remove(&a);
            }
            Step::Node(a, true) => {
                self.nodes.insert(a);
            }
            Step::Node(a, false) => {
                self.nodes.remove(&a);
            }
            Step::NamedPorts(on) => self.named_ports = on,
            Step::Endpoint(e, Some(l)) | Step::Hook(e, l) => {
                self.endpoints.insert(e + 1, l);
            }
            Step::Endpoint(e, None) => {
                self.endpoints.remove(&(e + 1));
            }
            Step::ShopTeam(b) => self.shop_team_b = b,
            Step::Mode(m, a) => {
                self.mode = m;
                self.audit = a;
            }
        }
    }

    fn input(&self, objects: &[[Object; 2]]) -> PolicyInput {
        let team = |b: bool| [("team".to_string(), if b { "b" } else { "a" }.to_string())].into();
        PolicyInput {
            policies: self
                .policies
                .iter()
                .map(|(p, v)| objects[*p][*v].clone())
                .collect(),
            identities: self.identities.clone(),
            namespaces: [
                ("shop".to_string(), team(self.shop_team_b)),
                ("other".to_string(), team(true)),
            ]
            .into(),
            pod_addresses: self
                .pods
                .iter()
                .map(|(a, n)| (ADDRESSES[*a].parse::<IpAddr>().unwrap(), *n))
                .collect(),
            node_addresses: self
                .nodes
                .iter()
                .map(|a| ["10.0.0.10", "172.16.0.2"][*a].parse().unwrap())
                .collect(),
            cluster_named_ports: if self.named_ports {
                [NamedPort {
                    name: "pg".into(),
                    proto: crate::proto::TCP,
                    port: 5432,
                }]
                .into()
            } else {
                BTreeSet::new()
            },
            endpoints: self
                .endpoints
                .iter()
                .map(|(id, l)| endpoint(*id, *l))
                .collect(),
            previous_cidr_identities: BTreeMap::new(),
            mode: [
                EnforcementMode::Default,
                EnforcementMode::Always,
                EnforcementMode::Never,
            ][usize::from(self.mode)],
            audit: self.audit,
        }
    }
}

fn parsed() -> Vec<[Object; 2]> {
    POLICIES
        .iter()
        .map(|versions| {
            versions.map(|text| {
                membrane_model::parse_manifests(text, "test")
                    .unwrap()
                    .remove(0)
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn incremental_updates_equal_a_compilation_from_scratch(
        start in proptest::collection::vec(step(), 0..12),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let objects = parsed();
        let mut world = World::default();
        for s in &start {
            world.apply(s);
        }
        let mut compiler = Compiler::new(world.input(&objects));
        prop_assert_eq!(compiler.compiled(), compile(&world.input(&objects)));
        for (n, s) in steps.iter().enumerate() {
            world.apply(s);
            let before: BTreeMap<u16, EndpointPolicy> =
                compiler.endpoints().map(|(id, p)| (id, p.clone())).collect();
            let previous = compiler.cidr_identities().clone();
            let input = world.input(&objects);
            let changes = match s {
                Step::Hook(e, l) => {
                    compiler.set_endpoint(endpoint(e + 1, *l));
                    None
                }
                _ => Some(compiler.update(input.clone())),
            };
            let scratch = compile(&PolicyInput {
                previous_cidr_identities: previous.clone(),
                ..input
            });
            prop_assert_eq!(&compiler.compiled(), &scratch, "step {}: {:?}", n, s);
            let Some(changes) = changes else { continue };
            let after: BTreeMap<u16, &EndpointPolicy> = compiler.endpoints().collect();
            for id in before.keys().chain(after.keys()) {
                if before.get(id) != after.get(id).copied() {
                    prop_assert!(changes.endpoints.contains(id), "step {}: {:?}: endpoint {} changed unreported", n, s, id);
                }
            }
        }
    }
}
