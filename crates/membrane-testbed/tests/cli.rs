//! The `membrane` command as an operator runs it on a node (the built binary, inside
//! the node's namespace and cgroup), against real agents: `status`, `get`, `bpf` dumps
//! (also with the agent stopped), `connectivity test` on a healthy two-node cluster on
//! etcd and on one where a policy breaks a path, and bad input refused in one line.
//!
//! Needs root, bpffs, cgroup v2 and Debian's etcd-server (`cargo xtask test` provides them).

use membrane_api::{ServiceFrontend, paths};
use membrane_testbed::app::{self, App};
use membrane_testbed::process::Finished;
use membrane_testbed::workload::{self, DEFAULT_PORTS};
use membrane_testbed::{Etcd, Node, Outside, Place as _, cli, pinned};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long agents get to program Services or learn each other's pods.
const CONVERGE: Duration = Duration::from_secs(30);

fn examples(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(dir)
}

fn membrane(node: &Node, args: &[&str]) -> Finished {
    cli::run(node, args, "").unwrap()
}

fn ok(node: &Node, args: &[&str]) -> String {
    let ran = membrane(node, args);
    assert!(
        ran.status.success(),
        "membrane {args:?} failed: {}{}",
        ran.stdout,
        ran.stderr
    );
    ran.stdout
}

/// Rows of a table, header first, split on whitespace.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// Waits, bounded, until `node` reports `count` or more frontends of `namespace`, all
/// programmed with a ready backend (a Service is programmed before its EndpointSlices
/// fill it, and refuses connections until then).
fn wait_programmed(node: &Node, namespace: &str, count: usize) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let all: Vec<ServiceFrontend> = node.agent().get(paths::SERVICES).unwrap();
        let mine: Vec<_> = all.iter().filter(|f| f.namespace == namespace).collect();
        let ready =
            |f: &&ServiceFrontend| f.programmed && f.backends.iter().any(|b| !b.terminating);
        if mine.len() >= count && mine.iter().all(ready) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}'s Services not programmed on {} within {CONVERGE:?}: {all:#?}",
            node.name()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_get_and_bpf_show_a_running_node_and_bpf_dumps_outlive_the_agent() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let shop = App::deploy(&node, app::load(&examples("shop")).unwrap(), |_| &node).unwrap();
    wait_programmed(&node, "shop", 4);
    let _world = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    let frontend = shop.pod("shop/frontend-0").unwrap();
    // Through a Service (conntrack) and to the world (masquerade: NAT entries).
    let through = workload::http(frontend, "http://10.96.100.20/", 1).unwrap();
    assert!(through.success, "{through:?}");
    let world = SocketAddr::new(IpAddr::V4(outside.world_v4()), DEFAULT_PORTS.tcp);
    assert!(workload::tcp(frontend, world, 1).unwrap().success);

    let status = ok(&node, &["status"]);
    let line = |label: &str, text: &str| format!("{:<23}{text}", format!("{label}:"));
    for expected in [
        line("Node", node.name()),
        line("KVStore", "Ok embedded store"),
        line("Routing", "Tunnel"),
        line("Masquerading", "eBPF [IPv4, IPv6]"),
        "frontends 4 (ClusterIP 3, NodePort 1), programmed 4/4".to_string(),
        "socket LB on".to_string(),
        line("Endpoints", "5"),
        line(
            "Policies",
            "2 (CiliumClusterwideNetworkPolicy 0, CiliumNetworkPolicy 1, NetworkPolicy 1)",
        ),
        "  services ".to_string(),
    ] {
        assert!(status.contains(&expected), "no {expected:?} in:\n{status}");
    }
    let json: Value = serde_json::from_str(&ok(&node, &["status", "-o", "json"])).unwrap();
    assert_eq!(json["agent"]["node"], node.name());
    assert_eq!(json["datapath"]["found"]["routingMode"], "tunnel");
    assert_eq!(json["kvstore"]["found"]["reachable"], true);

    let services = rows(&ok(&node, &["get", "services", "-n", "shop"]));
    assert_eq!(services.len(), 4, "{services:?}");
    assert_eq!(
        services[3][..4],
        ["shop", "frontend", "NodePort", "10.96.100.10"]
    );
    let pods = rows(&ok(&node, &["get", "pods", "-n", "shop"]));
    assert_eq!(pods.len(), 5, "{pods:?}");
    let listed = pods.iter().find(|r| r[1] == "frontend-0").unwrap();
    assert_eq!(listed[2], node.name(), "{listed:?}");
    assert!(
        listed[3].starts_with(&format!("{},", frontend.ipv4().unwrap())),
        "the address the CNI gave it: {listed:?}"
    );
    assert_eq!(rows(&ok(&node, &["get", "endpoints"])).len(), 6);
    assert_eq!(rows(&ok(&node, &["get", "policies"])).len(), 3);
    let identities = ok(&node, &["get", "identities"]);
    assert!(identities.contains("reserved:world"), "{identities}");
    assert!(identities.contains("k8s:app=frontend"), "{identities}");
    assert!(
        status.contains(&line("Identities", "")) && !status.contains("not listed"),
        "{status}"
    );
    let nodes = rows(&ok(&node, &["get", "nodes"]));
    assert_eq!(nodes[1][0], node.name(), "{nodes:?}");
    let yaml = ok(&node, &["get", "services", "-o", "yaml"]);
    assert!(yaml.starts_with("apiVersion: v1\nitems:"), "{yaml}");

    let lb = ok(&node, &["bpf", "services"]);
    assert!(lb.contains("10.96.100.20:80"), "{lb}");
    assert!(lb.contains("0.0.0.0:30080"), "{lb}");
    assert_eq!(rows(&ok(&node, &["bpf", "backends"])).len(), 5);
    let endpoints = rows(&ok(&node, &["bpf", "endpoints"]));
    assert_eq!(
        endpoints.len(),
        11,
        "five pods, two families: {endpoints:?}"
    );
    let frontend_ip = frontend.ipv4().unwrap().to_string();
    let ct: Value = serde_json::from_str(&ok(&node, &["bpf", "conntrack", "-o", "json"])).unwrap();
    assert!(
        ct.as_array().unwrap().iter().any(|e| e["source"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("{frontend_ip}:")))),
        "no connection of {frontend_ip} in {ct:#}"
    );
    let nat = ok(&node, &["bpf", "nat"]);
    assert!(nat.contains(&world.to_string()), "{nat}");
    assert!(membrane(&node, &["bpf", "ipcache"]).status.success());
    assert!(
        membrane(&node, &["bpf", "policy", "-o", "yaml"])
            .status
            .success()
    );

    // Bad input: refused with one line naming what is wrong.
    let bad_map = membrane(&node, &["bpf", "routes"]);
    assert_eq!(bad_map.status.code(), Some(2), "{}", bad_map.stderr);
    assert!(
        bad_map.stderr.contains("invalid value 'routes'"),
        "{}",
        bad_map.stderr
    );
    let bad_dir = membrane(
        &node,
        &["bpf", "services", "--bpffs-dir", "/nonexistent/pins"],
    );
    assert_eq!(bad_dir.status.code(), Some(1));
    assert_eq!(bad_dir.stderr.lines().count(), 1, "{}", bad_dir.stderr);
    assert!(
        bad_dir.stderr.contains("/nonexistent/pins/MEMBRANE_CONFIG"),
        "{}",
        bad_dir.stderr
    );
    let bad_get = membrane(&node, &["get", "gateways"]);
    assert_eq!(bad_get.status.code(), Some(2), "{}", bad_get.stderr);
    let no_probes = membrane(&node, &["connectivity", "test"]);
    assert_eq!(no_probes.status.code(), Some(1));
    assert!(
        no_probes.stderr.contains("membrane.io/connectivity=client"),
        "{}",
        no_probes.stderr
    );
    let help = ok(&node, &["connectivity", "test", "--help"]);
    assert!(help.contains("Examples:"), "{help}");

    // With the agent stopped the API commands say so; the pinned maps still answer.
    node.agent().stop();
    let socket = node.agent().config().socket.display().to_string();
    for args in [&["status"][..], &["get", "pods"]] {
        let down = membrane(&node, args);
        assert_eq!(down.status.code(), Some(1));
        assert_eq!(down.stderr.lines().count(), 1, "{}", down.stderr);
        assert!(
            down.stderr.contains("agent is not running") && down.stderr.contains(&socket),
            "{}",
            down.stderr
        );
    }
    let pins = node.pin_dir().path().display().to_string();
    let kept = ok(&node, &["bpf", "services", "--bpffs-dir", &pins]);
    assert!(kept.contains("10.96.100.20:80"), "{kept}");
}

/// Waits, bounded, until `node`'s pinned ipcache holds `ip`.
fn wait_in_ipcache(node: &Node, ip: IpAddr) {
    let deadline = Instant::now() + CONVERGE;
    while !pinned::ipcache_identities(node.pin_dir().path())
        .unwrap()
        .iter()
        .any(|(found, _)| *found == ip)
    {
        assert!(
            Instant::now() < deadline,
            "{ip} not in {}'s ipcache",
            node.name()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A policy letting the probe client reach everything but the world's address.
fn deny_world(world: IpAddr) -> String {
    format!(
        "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: client-not-to-world, namespace: membrane-connectivity}}
spec:
  endpointSelector: {{matchLabels: {{membrane.io/connectivity: client}}}}
  egress:
  - toEntities: [all]
  egressDeny:
  - toCIDR: [{world}/32]
"
    )
}

#[test]
fn connectivity_test_passes_on_a_healthy_cluster_and_names_the_scenario_a_policy_breaks() {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let endpoint = etcd.endpoint();
    let flags = membrane_testbed::cluster::etcd_flags(&endpoint, "tunnel");
    let a = Node::start_with(&outside, 1, &flags).unwrap();
    let b = Node::start_with(&outside, 2, &flags).unwrap();
    let probes = App::deploy(&a, app::load(&examples("connectivity")).unwrap(), |pod| {
        if pod.ends_with("server-1") { &b } else { &a }
    })
    .unwrap();
    let _world = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    for node in [&a, &b] {
        wait_programmed(node, "membrane-connectivity", 2);
    }
    let far = probes.pod("membrane-connectivity/server-1").unwrap();
    let client = probes.pod("membrane-connectivity/client").unwrap();
    wait_in_ipcache(&a, IpAddr::V4(far.ipv4().unwrap()));
    wait_in_ipcache(&b, IpAddr::V4(client.ipv4().unwrap()));

    let world = SocketAddr::new(IpAddr::V4(outside.world_v4()), DEFAULT_PORTS.tcp).to_string();
    let b_socket = b.agent().config().socket.display().to_string();
    let args = [
        "connectivity",
        "test",
        "--node-socket",
        &b_socket,
        "--external-target",
        &world,
    ];
    let healthy = membrane(&a, &args);
    assert!(
        healthy.status.success(),
        "{}{}",
        healthy.stdout,
        healthy.stderr
    );
    for scenario in [
        "pod-to-pod/same-node",
        "pod-to-pod/cross-node",
        "pod-to-service/cluster-ip",
        "pod-to-service/node-port",
        "pod-to-world",
        "policy/refuse",
        "policy/allow",
    ] {
        assert!(
            healthy.stdout.contains(&format!("[pass] {scenario} ")),
            "{scenario} did not pass:\n{}",
            healthy.stdout
        );
    }
    assert!(!healthy.stdout.contains("[FAIL]"), "{}", healthy.stdout);

    let policy = deny_world(IpAddr::V4(outside.world_v4()));
    let applied = cli::run(&a, &["apply", "-f", "-"], &policy).unwrap();
    assert!(applied.status.success(), "{}", applied.stderr);
    // The agents enforce a stored policy within moments: wait (bounded) until they do.
    let world_address: SocketAddr = world.parse().unwrap();
    let deadline = Instant::now() + CONVERGE;
    while workload::tcp(client, world_address, 1).unwrap().success {
        assert!(Instant::now() < deadline, "the world is still reachable");
        std::thread::sleep(Duration::from_millis(200));
    }
    let broken = membrane(&a, &args);
    assert_eq!(broken.status.code(), Some(1), "{}", broken.stdout);
    assert!(
        broken.stdout.contains("[FAIL] pod-to-world "),
        "{}",
        broken.stdout
    );
    let failed: Vec<&str> = broken
        .stdout
        .lines()
        .filter(|l| l.starts_with("[FAIL]"))
        .collect();
    assert_eq!(failed.len(), 1, "only pod-to-world breaks: {failed:?}");
    assert!(
        broken
            .stderr
            .starts_with("error: connectivity test failed: pod-to-world ("),
        "{}",
        broken.stderr
    );
}
