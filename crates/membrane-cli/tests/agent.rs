//! The `membrane` binary against a real agent in the test bed (root): objects applied
//! are listed back, survive an agent restart, and are deleted; a refused file changes
//! nothing.

mod support;

use membrane_testbed::{Node, Outside};
use support::membrane;

const APP: &str = "apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {team: retail}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-from-client, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
  - fromEndpoints: [{matchLabels: {app: client}}]
    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]
";

fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn applied_objects_are_listed_survive_a_restart_and_are_deleted() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let socket = node.agent().config().socket.clone();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, APP).unwrap();
    let app = app.to_str().unwrap();

    let applied = membrane(&socket, &["apply", "-f", app], "");
    assert_eq!(applied.code, Some(0), "{}", applied.stderr);
    assert_eq!(
        applied.stdout,
        "namespace/shop created\nservice/web created\nciliumnetworkpolicy.cilium.io/web-from-client created\n"
    );
    let again = membrane(&socket, &["apply", "-f", app], "");
    assert_eq!(
        again.stdout,
        "namespace/shop unchanged\nservice/web unchanged\nciliumnetworkpolicy.cilium.io/web-from-client unchanged\n",
        "{}",
        again.stderr
    );
    let changed = membrane(
        &socket,
        &["apply", "-f", "-"],
        &APP.replace("port: 80,", "port: 81,"),
    );
    assert!(
        changed.stdout.contains("service/web configured\n"),
        "{}{}",
        changed.stdout,
        changed.stderr
    );

    node.restart_agent().unwrap();

    let services = membrane(&socket, &["get", "services", "-n", "shop"], "");
    assert_eq!(services.code, Some(0), "{}", services.stderr);
    assert_eq!(
        rows(&services.stdout)[1],
        ["shop", "web", "ClusterIP", "<none>", "81/TCP", "app=web"]
    );
    let policies = membrane(&socket, &["get", "policies"], "");
    assert_eq!(
        rows(&policies.stdout)[1],
        [
            "CiliumNetworkPolicy",
            "shop",
            "web-from-client",
            "app=web",
            "ingress(1)"
        ],
        "{}",
        policies.stderr
    );
    let namespaces = membrane(&socket, &["get", "namespaces", "-o", "json"], "");
    let list: serde_json::Value = serde_json::from_str(&namespaces.stdout).unwrap();
    assert_eq!(list["items"][0]["metadata"]["labels"]["team"], "retail");

    let refused = membrane(
        &socket,
        &["apply", "-f", "-"],
        &APP.replace("selector: {app: web}", "selectr: {app: db}"),
    );
    assert_eq!(refused.code, Some(1));
    assert!(
        refused
            .stderr
            .contains("Service shop/web: spec.selectr: unknown field"),
        "{}",
        refused.stderr
    );
    let services = membrane(&socket, &["get", "services", "-o", "json"], "");
    let list: serde_json::Value = serde_json::from_str(&services.stdout).unwrap();
    assert_eq!(
        list["items"][0]["spec"]["selector"]["app"], "web",
        "the refused file changed nothing"
    );

    let deleted = membrane(&socket, &["delete", "-f", app], "");
    assert_eq!(deleted.code, Some(0), "{}", deleted.stderr);
    assert_eq!(
        deleted.stdout,
        "namespace \"shop\" deleted\nservice \"web\" deleted\nciliumnetworkpolicy.cilium.io \"web-from-client\" deleted\n"
    );
    let empty = membrane(&socket, &["get", "services"], "");
    assert_eq!(
        (empty.stdout.as_str(), empty.stderr.as_str()),
        ("", "no services found\n")
    );
    let missing = membrane(&socket, &["delete", "-f", app], "");
    assert_eq!(missing.code, Some(1));
    assert!(
        missing
            .stderr
            .contains("not found: namespace/shop, service/web"),
        "{}",
        missing.stderr
    );
}

#[test]
fn status_against_a_real_agent_shows_its_node_components_and_pools() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let run = membrane(&node.agent().config().socket, &["status"], "");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let line = |label: &str, text: &str| format!("{:<23}{text}", format!("{label}:"));
    for expected in [
        line("Node", &format!("{}\n", node.name())),
        line("Agent", "Ok (socket "),
        line("KVStore", "Ok embedded store "),
        line("IPAM IPv4", "10.200.1.0/24, 0 used, 254 free\n"),
        "Map pressure:\n".to_string(),
    ] {
        assert!(
            run.stdout.contains(&expected),
            "no {expected:?} in {}",
            run.stdout
        );
    }
}
