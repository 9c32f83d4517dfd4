//! The policy compiler's entries, written into the real kernel trie, decide every probe
//! exactly as `membrane_policy::trace` says (BPF_PROG_TEST_RUN): an allow of every TCP
//! port with a denied range inside it (the case the longest-prefix match would get
//! wrong without the compiler cutting the range out), an L3-only allow of another peer
//! and default deny for the rest.

#[allow(dead_code)]
mod bed;

use bed::{Bed, L4, packet, with_bed};
use membrane_datapath::{Direction, PolicyEnforcement, PolicyRule};
use membrane_policy::{Compiled, LocalEndpoint, PolicyInput, Verdict, compile, proto, trace};

const TC_ACT_REDIRECT: i32 = 7;

/// The probed ports: around and inside the denied range 8000-8100.
const PORTS: [u16; 10] = [1, 80, 7999, 8000, 8001, 8050, 8064, 8100, 8101, 65535];

const POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "1", endPort: 65535, protocol: TCP}]}]
  - fromEndpoints: [{matchLabels: {app: admin}}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: "8000", endPort: 8100, protocol: TCP}]}]
"#;

fn labels(app: &str) -> Vec<String> {
    vec![
        format!("k8s:app={app}"),
        "k8s:io.kubernetes.pod.namespace=shop".to_string(),
    ]
}

/// Pod B is `web`; pod A is `client` (or `admin`).
fn compiled(bed: &Bed, a_app: &str) -> Compiled {
    compile(&PolicyInput {
        policies: membrane_model::parse_manifests(POLICY, "test").unwrap(),
        identities: [
            (bed.a.spec.identity, labels(a_app)),
            (bed.b.spec.identity, labels("web")),
        ]
        .into(),
        endpoints: vec![LocalEndpoint {
            id: bed.b.spec.id,
            identity: bed.b.spec.identity,
            labels: labels("web"),
            named_ports: Vec::new(),
        }],
        ..PolicyInput::default()
    })
}

/// Writes B's compiled entries and flags.
fn program(bed: &mut Bed, compiled: &Compiled) {
    let policy = &compiled.endpoints[&bed.b.spec.id];
    for (key, entry) in &policy.entries {
        bed.dp
            .write_policy(&PolicyRule {
                endpoint_id: bed.b.spec.id,
                direction: match key.direction {
                    membrane_policy::Direction::Ingress => Direction::Ingress,
                    membrane_policy::Direction::Egress => Direction::Egress,
                },
                identity: (key.identity != 0).then_some(key.identity),
                l4: (key.proto != 0).then(|| (key.proto, key.ports())),
                deny: entry.deny,
                rule_id: entry.rule_id,
            })
            .unwrap();
    }
    bed.b.spec.policy = PolicyEnforcement {
        ingress: policy.ingress_enforced,
        egress: policy.egress_enforced,
        audit: policy.audit,
    };
    let spec = bed.b.spec.clone();
    bed.dp.write_endpoint(&spec).unwrap();
}

/// A TCP SYN from A to B on `dport` from a fresh source port: passed or not.
fn passes(bed: &Bed, sport: u16, dport: u16) -> bool {
    let a = &bed.a.spec;
    let input = packet(
        a.pod_mac,
        a.host_mac,
        bed.a.v4.into(),
        bed.b.v4.into(),
        sport,
        dport,
        L4::TcpSyn,
    );
    let action = bed
        .dp
        .test_run(
            membrane_common::program_names::FROM_CONTAINER,
            &input,
            a.host_ifindex,
            1,
        )
        .unwrap()
        .action;
    action == TC_ACT_REDIRECT
}

/// Checks the kernel against the trace for A as `a_app`, and that the trace allows
/// exactly `allowed` of the probed ports (so both cannot be wrong together).
fn kernel_agrees_with_trace(a_app: &'static str, allowed: &'static [u16]) {
    with_bed(move |bed| {
        let compiled = compiled(bed, a_app);
        program(bed, &compiled);
        let b = compiled.endpoints.get(&bed.b.spec.id);
        for (n, port) in PORTS.into_iter().enumerate() {
            let traced = trace(
                (None, bed.a.spec.identity),
                (b, bed.b.spec.identity),
                proto::TCP,
                port,
            );
            let expected = traced.verdict() == Verdict::Allowed;
            assert_eq!(
                expected,
                allowed.contains(&port),
                "{a_app} port {port}: {traced:?}"
            );
            assert_eq!(
                passes(bed, 41000 + n as u16, port),
                expected,
                "{a_app} -> web port {port}: the kernel disagrees with the trace {traced:?}"
            );
        }
    });
}

#[test]
fn the_kernel_decides_a_deny_range_inside_an_allow_range_as_the_trace_does() {
    kernel_agrees_with_trace("client", &[1, 80, 7999, 8101, 65535]);
}

#[test]
fn the_kernel_decides_an_l3_only_allow_and_default_deny_as_the_trace_does() {
    kernel_agrees_with_trace("admin", &PORTS);
    kernel_agrees_with_trace("stranger", &[]);
}
