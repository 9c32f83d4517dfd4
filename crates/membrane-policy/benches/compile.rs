//! Compile time of the policy compiler at scale: 10,000 identities, 1,000 policies and a
//! node's worth of endpoints (the issue's "compile time for 10,000 identities and 1,000
//! policies"): from scratch (the agent's first pass), and the incremental updates the
//! agent makes at every later change (`Compiler::update` with the whole new input, its
//! diff included): one new identity matching an existing selector, one changed policy,
//! and one new endpoint (`Compiler::set_endpoint`, the endpoint manager's hook). Prints
//! p50 / p99 / max over the runs and the entries produced.
//!
//! `cargo bench -p membrane-policy --bench compile` (optimized build).

use membrane_model::Object;
use membrane_policy::{Compiler, LocalEndpoint, PolicyInput, compile};
use std::time::{Duration, Instant};

const IDENTITIES: u32 = 10_000;
const POLICIES: usize = 1_000;
const ENDPOINTS: u16 = 100;
const NAMESPACES: u32 = 50;
const APPS: u32 = 200;
const RUNS: usize = 30;

fn labels(i: u32) -> Vec<String> {
    vec![
        format!("k8s:app=app{}", i % APPS),
        format!("k8s:instance=i{i}"),
        format!("k8s:io.kubernetes.pod.namespace=ns{}", i % NAMESPACES),
    ]
}

/// Policy `p`: in namespace `ns(p % 50)`, app `p % 200` admits app `(p + 1) % 200` on a
/// port; every tenth also denies `world`, every seventh is a NetworkPolicy with a
/// namespaceSelector and a port range.
fn policy(p: usize) -> serde_json::Value {
    let ns = format!("ns{}", p % NAMESPACES as usize);
    let app = format!("app{}", p % APPS as usize);
    let peer = format!("app{}", (p + 1) % APPS as usize);
    if p.is_multiple_of(7) {
        return serde_json::json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": format!("np{p}"), "namespace": ns},
            "spec": {
                "podSelector": {"matchLabels": {"app": app}},
                "ingress": [{
                    "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": format!("ns{}", (p + 3) % NAMESPACES as usize)}}}],
                    "ports": [{"port": 8000, "endPort": 8100}],
                }],
            },
        });
    }
    let mut spec = serde_json::json!({
        "endpointSelector": {"matchLabels": {"app": app}},
        "ingress": [{
            "fromEndpoints": [{"matchLabels": {"app": peer, "k8s:io.kubernetes.pod.namespace": ns}}],
            "toPorts": [{"ports": [{"port": (1000 + p).to_string(), "protocol": "TCP"}]}],
        }],
    });
    if p.is_multiple_of(10) {
        spec["ingressDeny"] = serde_json::json!([{"fromEntities": ["world"]}]);
        spec["egress"] = serde_json::json!([{"toCIDRSet": [{"cidr": format!("10.{}.0.0/16", p % 250), "except": [format!("10.{}.1.0/24", p % 250)]}]}]);
    }
    serde_json::json!({
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNetworkPolicy",
        "metadata": {"name": format!("cnp{p}"), "namespace": ns},
        "spec": spec,
    })
}

/// Runs `once` `RUNS` times on a fresh `setup()` each and prints p50 / p99 / max of
/// `once` alone (neither the setup nor dropping what `once` returns is timed).
fn measure<S, R>(what: &str, setup: impl Fn() -> S, once: impl Fn(S) -> R) {
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let state = setup();
        let started = Instant::now();
        let result = once(state);
        times.push(started.elapsed());
        drop(result);
    }
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: p50 {:?}, p99 {:?}, max {:?} ({RUNS} runs)",
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
}

fn main() {
    let policies: Vec<Object> =
        membrane_model::parse_manifest_values((0..POLICIES).map(policy).collect(), "bench")
            .unwrap();
    let identities = (256..256 + IDENTITIES)
        .map(|n| (n, labels(n - 256)))
        .collect();
    let endpoints = (0..ENDPOINTS)
        .map(|i| LocalEndpoint {
            id: i + 1,
            identity: 256 + u32::from(i),
            labels: labels(u32::from(i)),
            named_ports: Vec::new(),
        })
        .collect();
    let input = PolicyInput {
        policies,
        identities,
        endpoints,
        ..PolicyInput::default()
    };
    let compiled = compile(&input);
    assert!(compiled.warnings.is_empty(), "{:?}", compiled.warnings);
    let entries: usize = compiled.endpoints.values().map(|p| p.entries.len()).sum();
    measure(
        &format!(
            "compile: {IDENTITIES} identities, {POLICIES} policies, {ENDPOINTS} endpoints -> {entries} entries"
        ),
        || (),
        |()| compile(&input),
    );
    let compiler = Compiler::new(input.clone());

    // Policy 3 (namespace ns3, app3 admits app4 of ns3) selects endpoint 4 (app3, ns3).
    let mut new_identity = input.clone();
    new_identity.identities.insert(
        256 + IDENTITIES,
        vec![
            "k8s:app=app4".to_string(),
            "k8s:instance=new".to_string(),
            "k8s:io.kubernetes.pod.namespace=ns3".to_string(),
        ],
    );
    let changed = compiler.clone().update(new_identity.clone()).endpoints;
    // Endpoint 1 (app0, ns0) admits namespace ns3 (NetworkPolicy 0).
    assert_eq!(
        changed,
        [1, 4].into(),
        "the new identity changes endpoints 1 and 4 only"
    );
    measure(
        "incremental: one new identity matching an existing selector",
        || (compiler.clone(), new_identity.clone()),
        |(mut compiler, input)| {
            compiler.update(input);
            compiler
        },
    );

    let mut new_policy = input.clone();
    let mut changed_policy = policy(3);
    changed_policy["spec"]["ingress"][0]["toPorts"][0]["ports"][0]["port"] =
        serde_json::json!("4000");
    new_policy.policies[3] =
        membrane_model::parse_manifest_values(vec![changed_policy], "bench").unwrap()[0].clone();
    let changed = compiler.clone().update(new_policy.clone()).endpoints;
    assert_eq!(changed, [4].into(), "policy 3 selects endpoint 4 only");
    measure(
        "incremental: one changed policy",
        || (compiler.clone(), new_policy.clone()),
        |(mut compiler, input)| {
            compiler.update(input);
            compiler
        },
    );

    let endpoint = LocalEndpoint {
        id: ENDPOINTS + 1,
        identity: 256 + u32::from(ENDPOINTS),
        labels: labels(u32::from(ENDPOINTS)),
        named_ports: Vec::new(),
    };
    measure(
        "incremental: one new endpoint",
        || compiler.clone(),
        |mut compiler| {
            compiler.set_endpoint(endpoint.clone());
            compiler
        },
    );
}
