//! Table-driven tests of the compiler's semantics: a small cluster, a policy manifest,
//! and probes (endpoint, direction, peer, protocol, port) with the expected verdict,
//! decided over the compiled entries the way the datapath decides.

use crate::*;
use membrane_common::identity::{HOST, REMOTE_NODE, WORLD};
use std::collections::BTreeMap;

const WEB: u16 = 1;
const DB: u16 = 2;
const WEB_ID: u32 = 300;
const DB_ID: u32 = 301;
const OTHER_CLIENT: u32 = 302;
const SHOP_CLIENT: u32 = 303;
const TCP: u8 = proto::TCP;
const UDP: u8 = proto::UDP;
const SCTP: u8 = proto::SCTP;
const ICMP: u8 = proto::ICMP;

use Direction::{Egress as Out, Ingress as In};
use Verdict::{Allowed as A, Denied as D, NotEnforced as N};

fn labels(namespace: &str, app: &str) -> Vec<String> {
    vec![
        format!("k8s:app={app}"),
        format!("k8s:io.kubernetes.pod.namespace={namespace}"),
    ]
}

fn input(manifests: &str) -> PolicyInput {
    let policies = if manifests.trim().is_empty() {
        Vec::new()
    } else {
        membrane_model::parse_manifests(manifests, "test").unwrap()
    };
    let identities: BTreeMap<u32, Labels> = [
        (WEB_ID, labels("shop", "web")),
        (DB_ID, labels("shop", "db")),
        (OTHER_CLIENT, labels("other", "client")),
        (SHOP_CLIENT, labels("shop", "client")),
    ]
    .into();
    PolicyInput {
        policies,
        namespaces: [
            (
                "shop".to_string(),
                [("team".to_string(), "a".to_string())].into(),
            ),
            (
                "other".to_string(),
                [("team".to_string(), "b".to_string())].into(),
            ),
        ]
        .into(),
        pod_addresses: [
            ("10.0.0.10".parse().unwrap(), WEB_ID),
            ("10.0.0.11".parse().unwrap(), DB_ID),
            ("10.0.1.5".parse().unwrap(), OTHER_CLIENT),
            ("10.0.2.6".parse().unwrap(), SHOP_CLIENT),
        ]
        .into(),
        cluster_named_ports: [NamedPort {
            name: "pg".into(),
            proto: TCP,
            port: 5432,
        }]
        .into(),
        endpoints: vec![
            LocalEndpoint {
                id: WEB,
                identity: WEB_ID,
                labels: identities[&WEB_ID].clone(),
                named_ports: vec![NamedPort {
                    name: "http".into(),
                    proto: TCP,
                    port: 8080,
                }],
            },
            LocalEndpoint {
                id: DB,
                identity: DB_ID,
                labels: identities[&DB_ID].clone(),
                named_ports: vec![NamedPort {
                    name: "pg".into(),
                    proto: TCP,
                    port: 5432,
                }],
            },
        ],
        identities,
        ..PolicyInput::default()
    }
}

/// (endpoint, direction, peer identity, protocol, port or ICMP type, expected).
type Probe = (u16, Direction, u32, u8, u16, Verdict);

fn check(name: &str, compiled: &Compiled, probes: &[Probe]) {
    for &(ep, dir, peer, protocol, port, expected) in probes {
        let policy = &compiled.endpoints[&ep];
        let decision = decide(policy, dir, peer, protocol, policy_port(protocol, port));
        assert_eq!(
            decision.verdict, expected,
            "{name}: endpoint {ep} {dir:?} peer {peer} {protocol}/{port}: {decision:?}\n{policy:#?}"
        );
        for rule in &decision.rules {
            assert!(
                compiled.rules.contains_key(rule),
                "{name}: rule {rule} not described"
            );
        }
    }
}

fn cidr_id(compiled: &Compiled, prefix: &str) -> u32 {
    compiled.cidr_identities[&prefix.parse().unwrap()]
}

#[test]
fn policy_semantics() {
    let cases: &[(&str, &str, &[Probe])] = &[
        (
            "no policy: nothing enforced",
            "",
            &[
                (WEB, In, OTHER_CLIENT, TCP, 80, N),
                (WEB, Out, WORLD, TCP, 443, N),
            ],
        ),
        (
            "NetworkPolicy default deny ingress (empty podSelector, no rules)",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}}
"#,
            &[
                (WEB, In, SHOP_CLIENT, TCP, 80, D),
                (DB, In, SHOP_CLIENT, TCP, 80, D),
                (WEB, Out, WORLD, TCP, 80, N),
                (WEB, In, HOST, TCP, 80, A),
            ],
        ),
        (
            "NetworkPolicy default deny egress",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Egress]}
"#,
            &[
                (WEB, Out, DB_ID, TCP, 5432, D),
                (WEB, In, DB_ID, TCP, 80, N),
            ],
        ),
        (
            "NetworkPolicy allow-all ingress ({} rule)",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all, namespace: shop}
spec: {podSelector: {}, ingress: [{}]}
"#,
            &[
                (WEB, In, WORLD, UDP, 53, A),
                (WEB, In, OTHER_CLIENT, TCP, 1, A),
            ],
        ),
        (
            "NetworkPolicy podSelector peer, same namespace only",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
"#,
            &[
                (WEB, In, SHOP_CLIENT, TCP, 80, A),
                (WEB, In, OTHER_CLIENT, TCP, 80, D),
                (DB, In, OTHER_CLIENT, TCP, 80, N),
            ],
        ),
        (
            "NetworkPolicy namespaceSelector peer",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]
"#,
            &[
                (WEB, In, OTHER_CLIENT, TCP, 80, A),
                (WEB, In, SHOP_CLIENT, TCP, 80, D),
            ],
        ),
        (
            "NetworkPolicy namespaceSelector by metadata.name and podSelector together",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: other}}
      podSelector: {matchExpressions: [{key: app, operator: In, values: [client]}]}
"#,
            &[
                (WEB, In, OTHER_CLIENT, TCP, 80, A),
                (WEB, In, SHOP_CLIENT, TCP, 80, D),
            ],
        ),
        (
            "NetworkPolicy ports, endPort, UDP and named port",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress:
  - ports:
    - {port: 8000, endPort: 8003}
    - {port: 53, protocol: UDP}
    - {port: http}
"#,
            &[
                (WEB, In, OTHER_CLIENT, TCP, 8000, A),
                (WEB, In, OTHER_CLIENT, TCP, 8003, A),
                (WEB, In, OTHER_CLIENT, TCP, 8004, D),
                (WEB, In, OTHER_CLIENT, UDP, 8000, D),
                (WEB, In, OTHER_CLIENT, UDP, 53, A),
                (WEB, In, OTHER_CLIENT, TCP, 53, D),
                (WEB, In, OTHER_CLIENT, TCP, 8080, A),
                (DB, In, OTHER_CLIENT, TCP, 8080, D),
            ],
        ),
        (
            "NetworkPolicy egress named port resolves through the cluster's pods",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  egress: [{ports: [{port: pg}]}]
"#,
            &[
                (WEB, Out, DB_ID, TCP, 5432, A),
                (WEB, Out, DB_ID, TCP, 5433, D),
            ],
        ),
        (
            "NetworkPolicy ipBlock with except matches outside prefixes and the pods inside",
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.2.0/24]}}]}]
"#,
            &[
                (WEB, In, OTHER_CLIENT, TCP, 80, A),
                (WEB, In, SHOP_CLIENT, TCP, 80, D),
                (WEB, In, WORLD, TCP, 80, D),
            ],
        ),
        (
            "CNP toPorts ANY expands to TCP, UDP and SCTP",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{toPorts: [{ports: [{port: "80", protocol: ANY}]}]}]
"#,
            &[
                (WEB, In, WORLD, TCP, 80, A),
                (WEB, In, WORLD, UDP, 80, A),
                (WEB, In, WORLD, SCTP, 80, A),
                (WEB, In, WORLD, TCP, 81, D),
                (WEB, In, WORLD, ICMP, 8, D),
            ],
        ),
        (
            "CNP fromEndpoints scoped to the namespace unless it names one",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
specs:
- endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
- endpointSelector: {matchLabels: {app: db}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client, k8s:io.kubernetes.pod.namespace: other}}]}]
"#,
            &[
                (WEB, In, SHOP_CLIENT, TCP, 80, A),
                (WEB, In, OTHER_CLIENT, TCP, 80, D),
                (DB, In, OTHER_CLIENT, TCP, 80, A),
                (DB, In, SHOP_CLIENT, TCP, 80, D),
            ],
        ),
        (
            "CNP endpointSelector only selects its own namespace",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: other}
spec:
  endpointSelector: {}
  ingress: [{}]
"#,
            &[(WEB, In, WORLD, TCP, 80, N)],
        ),
        (
            "CCNP applies across namespaces and its fromEndpoints too",
            r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: db}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
"#,
            &[
                (DB, In, OTHER_CLIENT, TCP, 5432, A),
                (DB, In, SHOP_CLIENT, TCP, 5432, A),
                (DB, In, WEB_ID, TCP, 5432, D),
            ],
        ),
        (
            "CNP empty ingress rule is default deny with nothing allowed",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec: {endpointSelector: {}, ingress: [{}]}
"#,
            &[
                (WEB, In, SHOP_CLIENT, TCP, 80, D),
                (WEB, In, HOST, TCP, 80, A),
            ],
        ),
        (
            "CNP entities",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEntities: [cluster]}]
  egress: [{toEntities: [world]}, {toEntities: [remote-node]}]
"#,
            &[
                (WEB, In, OTHER_CLIENT, TCP, 80, A),
                (WEB, In, REMOTE_NODE, TCP, 80, A),
                (WEB, In, WORLD, TCP, 80, D),
                (WEB, Out, WORLD, TCP, 443, A),
                (WEB, Out, REMOTE_NODE, TCP, 443, A),
                (WEB, Out, DB_ID, TCP, 5432, D),
            ],
        ),
        (
            "CNP entity all is any peer",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {}
  egress: [{toEntities: [all], toPorts: [{ports: [{port: "53", protocol: UDP}]}]}]
"#,
            &[
                (WEB, Out, WORLD, UDP, 53, A),
                (WEB, Out, DB_ID, UDP, 53, A),
                (WEB, Out, DB_ID, TCP, 53, D),
            ],
        ),
        (
            "CNP ingressDeny wins over an allow of everything",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEntities: [all]}]
  ingressDeny: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{ports: [{port: "80", protocol: TCP}]}]}]
"#,
            &[
                (WEB, In, SHOP_CLIENT, TCP, 80, D),
                (WEB, In, SHOP_CLIENT, TCP, 81, A),
                (WEB, In, OTHER_CLIENT, TCP, 80, A),
                (WEB, In, WORLD, UDP, 80, A),
            ],
        ),
        (
            "deny range inside an allow range of the same peer",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEndpoints: [{}], toPorts: [{ports: [{port: "1", endPort: 65535, protocol: TCP}]}]}]
  ingressDeny: [{fromEndpoints: [{}], toPorts: [{ports: [{port: "8000", endPort: 8100, protocol: TCP}]}]}]
"#,
            &[
                (WEB, In, SHOP_CLIENT, TCP, 7999, A),
                (WEB, In, SHOP_CLIENT, TCP, 8000, D),
                (WEB, In, SHOP_CLIENT, TCP, 8064, D),
                (WEB, In, SHOP_CLIENT, TCP, 8100, D),
                (WEB, In, SHOP_CLIENT, TCP, 8101, A),
            ],
        ),
        (
            "deny-only rule: what it does not deny stays allowed",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  enableDefaultDeny: {ingress: false}
  ingressDeny: [{fromEntities: [world]}]
"#,
            &[
                (WEB, In, WORLD, TCP, 80, D),
                (WEB, In, SHOP_CLIENT, TCP, 80, A),
            ],
        ),
        (
            "deny-only rule without enableDefaultDeny default-denies (Cilium)",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingressDeny: [{fromEntities: [world]}]
"#,
            &[
                (WEB, In, WORLD, TCP, 80, D),
                (WEB, In, SHOP_CLIENT, TCP, 80, D),
            ],
        ),
        (
            "enableDefaultDeny false with an allow leaves the direction open",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  enableDefaultDeny: {egress: false}
  egress: [{toEndpoints: [{matchLabels: {app: db}}]}]
"#,
            &[(WEB, Out, WORLD, TCP, 80, N), (WEB, Out, DB_ID, TCP, 80, N)],
        ),
        (
            "ICMP types, by number and by name",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress: [{icmps: [{fields: [{type: 8}, {type: EchoRequest, family: IPv6}]}]}]
"#,
            &[
                (WEB, In, WORLD, ICMP, 8, A),
                (WEB, In, WORLD, ICMP, 13, D),
                (WEB, In, WORLD, proto::ICMPV6, 128, A),
                (WEB, In, WORLD, proto::ICMPV6, 129, D),
                (WEB, In, WORLD, TCP, 8, D),
            ],
        ),
        (
            "toPorts without ports is every port, a named CNP port resolves",
            r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
specs:
- endpointSelector: {matchLabels: {app: web}}
  ingress: [{fromEndpoints: [{matchLabels: {app: client}}], toPorts: [{}]}]
- endpointSelector: {matchLabels: {app: db}}
  ingress: [{toPorts: [{ports: [{port: pg, protocol: TCP}]}]}]
"#,
            &[
                (WEB, In, SHOP_CLIENT, ICMP, 8, A),
                (WEB, In, SHOP_CLIENT, UDP, 9, A),
                (DB, In, WORLD, TCP, 5432, A),
                (DB, In, WORLD, TCP, 80, D),
            ],
        ),
        (
            "fromRequires narrows the peers of its rule",
            r#"
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: p}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    fromRequires: [{matchLabels: {k8s:io.kubernetes.pod.namespace: other}}]
"#,
            &[
                (WEB, In, OTHER_CLIENT, TCP, 80, A),
                (WEB, In, SHOP_CLIENT, TCP, 80, D),
            ],
        ),
    ];
    for (name, manifests, probes) in cases {
        let compiled = compile(&input(manifests));
        assert!(
            compiled.warnings.is_empty(),
            "{name}: {:?}",
            compiled.warnings
        );
        check(name, &compiled, probes);
    }
}

#[test]
fn cidr_rules_select_cidr_identities_not_pods() {
    let compiled = compile(&input(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
  - toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]
  - toCIDR: [192.168.1.1]
"#,
    ));
    let outer = cidr_id(&compiled, "10.0.0.0/8");
    let except = cidr_id(&compiled, "10.1.0.0/16");
    let host = cidr_id(&compiled, "192.168.1.1/32");
    assert!(outer >= FIRST_CIDR_IDENTITY && except >= FIRST_CIDR_IDENTITY);
    check(
        "cidr",
        &compiled,
        &[
            (WEB, Out, outer, TCP, 80, A),
            (WEB, Out, except, TCP, 80, D),
            (WEB, Out, host, UDP, 53, A),
            (WEB, Out, OTHER_CLIENT, TCP, 80, D),
            (WEB, Out, WORLD, TCP, 80, D),
        ],
    );
}

#[test]
fn a_nested_prefix_named_elsewhere_stays_inside_the_outer_rule() {
    let compiled = compile(&input(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: outer, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress: [{toCIDR: [10.0.0.0/8]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: inner, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: db}}
  egress: [{toCIDR: [10.3.0.0/16]}]
"#,
    ));
    let inner = cidr_id(&compiled, "10.3.0.0/16");
    let outer = cidr_id(&compiled, "10.0.0.0/8");
    check(
        "nested",
        &compiled,
        &[
            (WEB, Out, inner, TCP, 1, A),
            (DB, Out, inner, TCP, 1, A),
            (DB, Out, outer, TCP, 1, D),
        ],
    );
}

#[test]
fn world_entity_covers_cidr_identities_and_zero_prefix_is_world() {
    let compiled = compile(&input(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
specs:
- endpointSelector: {matchLabels: {app: web}}
  egress: [{toEntities: [world]}, {toCIDR: [172.16.0.0/12]}]
- endpointSelector: {matchLabels: {app: db}}
  egress: [{toCIDR: [0.0.0.0/0]}]
"#,
    ));
    let prefix = cidr_id(&compiled, "172.16.0.0/12");
    check(
        "world",
        &compiled,
        &[
            (WEB, Out, prefix, TCP, 1, A),
            (WEB, Out, WORLD, TCP, 1, A),
            (DB, Out, WORLD, TCP, 1, A),
            (DB, Out, WEB_ID, TCP, 1, D),
        ],
    );
    assert_eq!(
        compiled.cidr_identities.len(),
        1,
        "{:?}",
        compiled.cidr_identities
    );
}

#[test]
fn enforcement_modes_and_audit() {
    let mut always = input("");
    always.mode = EnforcementMode::Always;
    let compiled = compile(&always);
    check(
        "always",
        &compiled,
        &[
            (WEB, In, SHOP_CLIENT, TCP, 80, D),
            (WEB, Out, WORLD, TCP, 80, D),
            (WEB, In, HOST, TCP, 80, A),
        ],
    );

    let deny = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}}
"#;
    let mut never = input(deny);
    never.mode = EnforcementMode::Never;
    let compiled = compile(&never);
    assert!(compiled.endpoints.values().all(|p| p.entries.is_empty()));
    check("never", &compiled, &[(WEB, In, SHOP_CLIENT, TCP, 80, N)]);

    let mut audit = input(deny);
    audit.audit = true;
    let compiled = compile(&audit);
    assert!(compiled.endpoints[&WEB].audit);
    check(
        "audit",
        &compiled,
        &[(WEB, In, SHOP_CLIENT, TCP, 80, Verdict::Audit)],
    );
}

#[test]
fn trace_names_the_deciding_rules_on_both_sides() {
    let compiled = compile(&input(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-in, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: web}}}], ports: [{port: 5432}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-out, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egressDeny: [{toEndpoints: [{matchLabels: {app: db}}], toPorts: [{ports: [{port: "5433", protocol: TCP}]}]}]
  egress: [{toEndpoints: [{}]}]
"#,
    ));
    let web = compiled.endpoints.get(&WEB);
    let db = compiled.endpoints.get(&DB);
    let ok = trace((web, WEB_ID), (db, DB_ID), TCP, 5432);
    assert_eq!(ok.verdict(), A);
    let ingress = ok.ingress.unwrap();
    let rule = &compiled.rules[&ingress.rules[0]];
    assert_eq!(rule.name, "db-in");
    assert_eq!(rule.path, "spec.ingress[0]");
    assert_eq!(ingress.matched, MatchKind::L3L4);

    let denied = trace((web, WEB_ID), (db, DB_ID), TCP, 5433);
    assert_eq!(denied.verdict(), D);
    let egress = denied.egress.unwrap();
    let rule = &compiled.rules[&egress.rules[0]];
    assert!(rule.deny && rule.name == "web-out", "{rule}");
    assert!(rule.to_string().contains("egressDeny[0]"), "{rule}");
}

#[test]
fn rule_ids_are_stable_across_compilations_and_inputs() {
    let manifest = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec: {podSelector: {}, ingress: [{ports: [{port: 80}]}]}
"#;
    let first = compile(&input(manifest));
    let mut more = input(manifest);
    more.identities.insert(400, labels("shop", "new"));
    let second = compile(&more);
    assert_eq!(first.rules, second.rules);
    assert_eq!(first.endpoints, second.endpoints);
}

#[test]
fn a_new_identity_matching_a_selector_joins_the_entries() {
    let manifest = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
"#;
    let mut cluster = input(manifest);
    cluster.identities.insert(
        500,
        vec![
            "k8s:app=client".into(),
            "k8s:io.kubernetes.pod.namespace=shop".into(),
            "k8s:version=2".into(),
        ],
    );
    let compiled = compile(&cluster);
    check(
        "new identity",
        &compiled,
        &[(DB, In, 500, TCP, 1, A), (DB, In, SHOP_CLIENT, TCP, 1, A)],
    );
}

#[test]
fn namespace_labels_carried_by_the_identity_win_over_the_namespace_objects() {
    let manifest = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {env: prod}}}]}]
"#;
    let mut cluster = input(manifest);
    cluster.identities.insert(
        600,
        vec![
            "k8s:app=x".into(),
            "k8s:io.cilium.k8s.namespace.labels.env=prod".into(),
            "k8s:io.kubernetes.pod.namespace=third".into(),
        ],
    );
    let compiled = compile(&cluster);
    check(
        "ns labels",
        &compiled,
        &[
            (WEB, In, 600, TCP, 1, A),
            (WEB, In, OTHER_CLIENT, TCP, 1, D),
        ],
    );
}

#[test]
fn a_cidr_rule_naming_a_pod_address_gets_no_cidr_identity_and_does_not_select_the_pod() {
    let compiled = compile(&input(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress: [{toCIDR: [10.0.1.5/32]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.0.1.5/32}}]}]
"#,
    ));
    assert!(
        compiled.cidr_identities.is_empty(),
        "{:?}",
        compiled.cidr_identities
    );
    let mut with_node = input(
        r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress: [{toCIDR: [192.0.2.1/32, 192.0.2.0/24]}]
"#,
    );
    with_node
        .node_addresses
        .insert("192.0.2.1".parse().unwrap());
    let node_compiled = compile(&with_node);
    let prefixes: Vec<String> = node_compiled
        .cidr_identities
        .keys()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        prefixes,
        ["192.0.2.0/24"],
        "a node's address is its own ipcache entry"
    );
    check(
        "pod address",
        &compiled,
        &[
            (WEB, Out, OTHER_CLIENT, TCP, 1, D),
            (DB, Out, OTHER_CLIENT, TCP, 1, A),
        ],
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A CNP on web with `allows` and `denies` as TCP port ranges from app=client.
    fn ranges_policy(allows: &[(u16, u16)], denies: &[(u16, u16)]) -> String {
        let ports = |ranges: &[(u16, u16)]| {
            ranges
                .iter()
                .map(|(a, b)| format!("{{port: \"{a}\", endPort: {b}, protocol: TCP}}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rule = |ranges: &[(u16, u16)]| {
            format!(
                "[{{fromEndpoints: [{{matchLabels: {{app: client}}}}], toPorts: [{{ports: [{}]}}]}}]",
                ports(ranges)
            )
        };
        format!(
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: p, namespace: shop}}\nspec:\n  endpointSelector: {{matchLabels: {{app: web}}}}\n  ingress: {}\n  ingressDeny: {}\n",
            rule(allows),
            rule(denies)
        )
    }

    fn range() -> impl Strategy<Value = (u16, u16)> {
        (1u16..400, 0u16..120).prop_map(|(a, len)| (a, a.saturating_add(len)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever ranges are allowed and denied, the compiled entries decide a port as
        /// the policy says: denied where a deny covers it, allowed where only an allow
        /// does, default deny elsewhere; other peers are never allowed.
        #[test]
        fn compiled_entries_decide_like_the_policy(
            allows in proptest::collection::vec(range(), 1..4),
            denies in proptest::collection::vec(range(), 1..3),
            ports in proptest::collection::vec(0u16..600, 8),
        ) {
            let compiled = compile(&input(&ranges_policy(&allows, &denies)));
            let web = &compiled.endpoints[&WEB];
            let covers = |ranges: &[(u16, u16)], port: u16| ranges.iter().any(|(a, b)| (*a..=*b).contains(&port));
            for port in ports {
                let expected = if covers(&allows, port) && !covers(&denies, port) { A } else { D };
                prop_assert_eq!(decide(web, In, SHOP_CLIENT, TCP, port).verdict, expected, "port {}", port);
                prop_assert_eq!(decide(web, In, OTHER_CLIENT, TCP, port).verdict, D);
            }
        }
    }
}
