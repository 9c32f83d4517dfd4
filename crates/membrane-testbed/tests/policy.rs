//! Network policy end to end, with real agents, real pods and real traffic: a
//! NetworkPolicy default deny refuses and its allow rule lets the labelled pod through
//! (applied while the pods run), a pod created after the policy starts under it, a
//! CiliumNetworkPolicy deny wins over its allow, the receiving node of another node's
//! pod decides by the identity carried across, audit mode lets would-be drops through,
//! enforcement holds across an agent restart, and `membrane policy trace` agrees with
//! the traffic every time.
//!
//! Needs root, bpffs and Debian's etcd-server (`cargo xtask test` provides them).

use membrane_api::{ApplyReport, ApplyRequest, Client, paths};
use membrane_testbed::cluster::{etcd_flags, wait_until};
use membrane_testbed::workload::{self, DEFAULT_PORTS};
use membrane_testbed::{Etcd, Node, Outside, Place as _, Pod, cli};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long a policy change gets to reach the datapath.
const ENFORCED: Duration = Duration::from_secs(15);

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Applies `objects` through `node`'s agent.
fn apply(node: &Node, objects: Vec<Value>) -> ApplyReport {
    let client = Client::new(&node.agent().config().socket);
    block_on(client.post(paths::OBJECTS_APPLY, &ApplyRequest { objects })).unwrap()
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"team": name}}})
}

fn pod_object(name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "main", "ports": [
            {"name": "echo", "containerPort": DEFAULT_PORTS.tcp, "protocol": "TCP"}
        ]}]},
    })
}

/// Only pods labelled app=client may reach app=web, on the named port `echo`.
fn web_allows_clients() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web-from-clients", "namespace": "shop"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                "ports": [{"port": "echo"}],
            }],
        },
    })
}

/// Whether one TCP exchange from `from` to `to`'s echo port succeeds.
fn connects(from: &Pod, to: &Pod) -> bool {
    let target = SocketAddr::new(IpAddr::V4(to.ipv4().unwrap()), DEFAULT_PORTS.tcp);
    workload::tcp(from, target, 1).unwrap().success
}

/// Waits (bounded) until `from` reaching `to` is `expected`.
fn wait_connects(from: &Pod, to: &Pod, expected: bool) {
    let what = format!(
        "{} {} {}",
        from.full_name(),
        if expected { "reaching" } else { "refused by" },
        to.full_name()
    );
    wait_until(&what, ENFORCED, || {
        (connects(from, to) == expected).then_some(())
    });
}

/// `membrane policy trace` on `node`: its first line's verdict (`ALLOWED`, `DENIED`,
/// `AUDIT`) and the whole text.
fn trace(node: &Node, from: &str, to: &str) -> (String, String) {
    let port = format!("{}/TCP", DEFAULT_PORTS.tcp);
    let finished = cli::run(
        node,
        &[
            "policy", "trace", "--from", from, "--to", to, "--port", &port,
        ],
        "",
    )
    .unwrap();
    assert!(finished.status.success(), "{finished:?}");
    let verdict = finished
        .stdout
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .unwrap_or_default()
        .to_string();
    (verdict, finished.stdout)
}

#[test]
fn a_network_policy_refuses_unlisted_pods_allows_labelled_ones_and_trace_agrees() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    apply(
        &node,
        vec![
            namespace("shop"),
            pod_object("web", "web"),
            pod_object("client", "client"),
            pod_object("other", "other"),
            pod_object("late-web", "web"),
            pod_object("late-other", "other"),
        ],
    );
    let web = Pod::create(&node, "shop", "web").unwrap();
    let client = Pod::create(&node, "shop", "client").unwrap();
    let other = Pod::create(&node, "shop", "other").unwrap();
    let _serving = workload::serve(&web, DEFAULT_PORTS).unwrap();
    wait_connects(&client, &web, true);
    assert!(connects(&other, &web), "no policy yet");

    // Applied while the pods run.
    apply(&node, vec![web_allows_clients()]);
    wait_connects(&other, &web, false);
    assert!(connects(&client, &web), "the allowed pod is refused");
    let (verdict, text) = trace(&node, "shop/client", "shop/web");
    assert_eq!(verdict, "ALLOWED", "{text}");
    assert!(
        text.contains("NetworkPolicy shop/web-from-clients spec.ingress[0]"),
        "{text}"
    );
    let (verdict, text) = trace(&node, "shop/other", "shop/web");
    assert_eq!(verdict, "DENIED", "{text}");
    assert!(text.contains("default deny"), "{text}");

    // Pods created after the policy: a new web pod is protected from its start, a new
    // unlisted pod is refused.
    let late_web = Pod::create(&node, "shop", "late-web").unwrap();
    let _late_serving = workload::serve(&late_web, DEFAULT_PORTS).unwrap();
    assert!(!connects(&other, &late_web), "the new web pod was open");
    wait_connects(&client, &late_web, true);
    let late_other = Pod::create(&node, "shop", "late-other").unwrap();
    assert!(
        !connects(&late_other, &web),
        "the new unlisted pod got through"
    );
    let (verdict, text) = trace(&node, "shop/late-other", "shop/late-web");
    assert_eq!(verdict, "DENIED", "{text}");
}

#[test]
fn a_cilium_deny_wins_over_an_allow_of_everything() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    apply(
        &node,
        vec![
            namespace("shop"),
            pod_object("web", "web"),
            pod_object("client", "client"),
            pod_object("other", "other"),
        ],
    );
    let web = Pod::create(&node, "shop", "web").unwrap();
    let client = Pod::create(&node, "shop", "client").unwrap();
    let other = Pod::create(&node, "shop", "other").unwrap();
    let _serving = workload::serve(&web, DEFAULT_PORTS).unwrap();
    wait_connects(&client, &web, true);
    apply(
        &node,
        vec![json!({
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumNetworkPolicy",
            "metadata": {"name": "deny-clients", "namespace": "shop"},
            "spec": {
                "endpointSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"fromEntities": ["all"]}],
                "ingressDeny": [{
                    "fromEndpoints": [{"matchLabels": {"app": "client"}}],
                    "toPorts": [{"ports": [{"port": DEFAULT_PORTS.tcp.to_string(), "protocol": "TCP"}]}],
                }],
            },
        })],
    );
    wait_connects(&client, &web, false);
    assert!(
        connects(&other, &web),
        "the allow of everything does not hold"
    );
    let (verdict, text) = trace(&node, "shop/client", "shop/web");
    assert_eq!(verdict, "DENIED", "{text}");
    assert!(text.contains("ingressDeny[0]"), "{text}");
    let (verdict, text) = trace(&node, "shop/other", "shop/web");
    assert_eq!(verdict, "ALLOWED", "{text}");
}

#[test]
fn the_receiving_node_decides_by_the_identity_carried_from_the_other_node() {
    the_receiving_node_decides_by_the_senders_identity("tunnel");
}

#[test]
fn by_native_routing_the_receiving_node_decides_by_the_senders_identity_from_its_ipcache() {
    the_receiving_node_decides_by_the_senders_identity("native");
}

/// A pod on node 2 admits a labelled client of node 1 and refuses another, with `mode`
/// routing between the nodes: in the tunnel the identity travels in the VNI, by native
/// routing node 2 finds it in its ipcache by the source address.
fn the_receiving_node_decides_by_the_senders_identity(mode: &str) {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let endpoint = etcd.endpoint();
    let a = Node::start_with(&outside, 1, &etcd_flags(&endpoint, mode)).unwrap();
    let b = Node::start_with(&outside, 2, &etcd_flags(&endpoint, mode)).unwrap();
    if mode == "native" {
        for node in [&a, &b] {
            membrane_testbed::wiring::route_pod_cidrs(outside.netns(), node.addressing()).unwrap();
        }
    }
    apply(
        &a,
        vec![
            namespace("shop"),
            pod_object("web", "web"),
            pod_object("client", "client"),
            pod_object("other", "other"),
            web_allows_clients(),
        ],
    );
    let web = Pod::create(&b, "shop", "web").unwrap();
    let client = Pod::create(&a, "shop", "client").unwrap();
    let other = Pod::create(&a, "shop", "other").unwrap();
    let _serving = workload::serve(&web, DEFAULT_PORTS).unwrap();
    wait_connects(&client, &web, true);
    wait_connects(&other, &web, false);
    // Both nodes' traces agree: node 1 compiles node 2's pod from the same inputs.
    for node in [&a, &b] {
        let (verdict, text) = trace(node, "shop/client", "shop/web");
        assert_eq!(verdict, "ALLOWED", "{}: {text}", node.name());
        let (verdict, text) = trace(node, "shop/other", "shop/web");
        assert_eq!(verdict, "DENIED", "{}: {text}", node.name());
    }
}

#[test]
fn audit_mode_lets_would_be_drops_through_and_trace_says_audit() {
    let outside = Outside::create().unwrap();
    let node = Node::start_with(&outside, 1, &["--policy-audit-mode", "true"]).unwrap();
    apply(
        &node,
        vec![
            namespace("shop"),
            pod_object("web", "web"),
            pod_object("other", "other"),
            web_allows_clients(),
        ],
    );
    let web = Pod::create(&node, "shop", "web").unwrap();
    let other = Pod::create(&node, "shop", "other").unwrap();
    let _serving = workload::serve(&web, DEFAULT_PORTS).unwrap();
    let (verdict, text) = wait_until("the policy compiled", ENFORCED, || {
        let traced = trace(&node, "shop/other", "shop/web");
        (traced.0 == "AUDIT").then_some(traced)
    })
    .0;
    assert_eq!(verdict, "AUDIT", "{text}");
    for _ in 0..3 {
        assert!(connects(&other, &web), "audit mode dropped");
    }
}

#[test]
fn enforcement_holds_across_an_agent_restart_and_deleting_the_policy_afterwards_lifts_it() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    apply(
        &node,
        vec![
            namespace("shop"),
            pod_object("web", "web"),
            pod_object("client", "client"),
            pod_object("other", "other"),
            web_allows_clients(),
        ],
    );
    let web = Pod::create(&node, "shop", "web").unwrap();
    let client = Pod::create(&node, "shop", "client").unwrap();
    let other = Pod::create(&node, "shop", "other").unwrap();
    let _serving = workload::serve(&web, DEFAULT_PORTS).unwrap();
    wait_connects(&client, &web, true);
    wait_connects(&other, &web, false);
    node.restart_agent().unwrap();
    // Right after the restart the adopted entries and flags still decide.
    assert!(!connects(&other, &web), "the restart opened the pod");
    assert!(connects(&client, &web), "the restart closed the pod");
    // Deleting the policy through the restarted agent lifts it.
    let client_api = Client::new(&node.agent().config().socket);
    let delete = membrane_api::DeleteRequest {
        refs: vec![membrane_api::ObjectRefWire {
            kind: "NetworkPolicy".to_string(),
            namespace: Some("shop".to_string()),
            name: "web-from-clients".to_string(),
        }],
    };
    let _: membrane_api::DeleteReport =
        block_on(client_api.post(paths::OBJECTS_DELETE, &delete)).unwrap();
    wait_connects(&other, &web, true);
}
