//! A running cluster changing under traffic, three real agents on one real etcd: a node
//! joins and every node's routing learns its pods within seconds, then it leaves and
//! every node forgets them, while a stream between the other two never breaks; etcd
//! stops and comes back, and pods already known keep talking, a pod of a known label set
//! still starts, a pod of a new one fails clearly after a bounded wait, an agent restarts
//! without waiting for etcd, and everything is published again once etcd is back.
//!
//! Needs root, bpffs and Debian's etcd-server (`cargo xtask test` provides them).

use ipnet::IpNet;
use membrane_testbed::cluster::{etcd_flags, ipcache_identity, pod_address, wait_until};
use membrane_testbed::report::StreamReport;
use membrane_testbed::workload::{
    self, DEFAULT_PORTS, Outcome, assert_all_ok, assert_reaches, wait_reachable,
};
use membrane_testbed::{Etcd, Node, Outside, Place as _, Pod, wiring};
use rtnetlink::IpVersion;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long the nodes get to learn a change: the issue asks for "within seconds".
const CONVERGE: Duration = Duration::from_secs(15);

/// How long the stream between the steady nodes runs: longer than every step under it.
const STREAM_FOR: Duration = Duration::from_secs(50);

/// How long a new label set waits for an unreachable etcd.
const ALLOCATION_TIMEOUT_SECS: &str = "3";

/// Node `index` on `etcd` in `mode`; in native mode the underlay learns its pod CIDRs.
fn start_node(outside: &Outside, index: u8, etcd: &str, mode: &str) -> Node {
    let mut flags = etcd_flags(etcd, mode);
    flags.extend([
        "--identity-allocation-timeout-secs",
        ALLOCATION_TIMEOUT_SECS,
    ]);
    let node = Node::start_with(outside, index, &flags).unwrap();
    if mode == "native" {
        wiring::route_pod_cidrs(outside.netns(), node.addressing()).unwrap();
    }
    node
}

/// Whether `node` routes `joined`'s IPv4 and IPv6 pod CIDRs (native routing).
fn routes_pod_cidrs_of(node: &Node, joined: &Node) -> bool {
    let plan = joined.addressing();
    let wanted = [IpNet::V4(plan.pod_cidr_v4()), IpNet::V6(plan.pod_cidr_v6())];
    let routed: Vec<IpNet> = [IpVersion::V4, IpVersion::V6]
        .into_iter()
        .flat_map(|version| node.routes(version).unwrap())
        .map(|route| route.destination)
        .collect();
    wanted.iter().all(|cidr| routed.contains(cidr))
}

/// Waits until the stream ends and asserts that it never broke.
fn assert_unbroken(stream: workload::RunningClient) {
    let outcome: Outcome<StreamReport> =
        stream.finish(workload::stream_timeout(STREAM_FOR)).unwrap();
    let report = &outcome.report;
    assert!(
        outcome.success && !report.broke && report.errors == 0 && report.received > 0,
        "the stream between the steady nodes was disturbed: {outcome:?}"
    );
}

fn a_node_joins_and_leaves_under_traffic(mode: &str) {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let endpoint = etcd.endpoint();
    let a = start_node(&outside, 1, &endpoint, mode);
    let b = start_node(&outside, 2, &endpoint, mode);
    let client = Pod::create(&a, "shop", "client").unwrap();
    let server = Pod::create(&b, "shop", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    let to_server = SocketAddr::new(pod_address(&server, false), DEFAULT_PORTS.tcp);
    wait_reachable(&client, to_server.ip(), CONVERGE);
    let streaming = Instant::now();
    let stream =
        workload::spawn_stream(&client, to_server, STREAM_FOR, Duration::from_millis(50)).unwrap();

    // A third node joins: both others learn its pods and (native) its pod CIDRs.
    let joining = Instant::now();
    let c = start_node(&outside, 3, &endpoint, mode);
    let web = Pod::create(&c, "shop", "web").unwrap();
    let _web_serving = workload::serve(&web, DEFAULT_PORTS).unwrap();
    for v6 in [false, true] {
        let ip = pod_address(&web, v6);
        for node in [&a, &b] {
            let what = format!("{ip} in {}'s ipcache", node.name());
            wait_until(&what, CONVERGE, || ipcache_identity(node, ip));
            eprintln!(
                "{} knows {ip} of the joining node {:?} after its agent started",
                node.name(),
                joining.elapsed()
            );
        }
        wait_reachable(&client, ip, CONVERGE);
        let to_web = SocketAddr::new(ip, DEFAULT_PORTS.tcp);
        assert_all_ok("a -> joined", &workload::tcp(&client, to_web, 3).unwrap());
        let to_b = SocketAddr::new(pod_address(&server, v6), DEFAULT_PORTS.tcp);
        assert_all_ok("joined -> b", &workload::tcp(&web, to_b, 3).unwrap());
    }
    if mode == "native" {
        for node in [&a, &b] {
            let what = format!("{}'s routes to {}'s pod CIDRs", node.name(), c.name());
            wait_until(&what, CONVERGE, || {
                routes_pod_cidrs_of(node, &c).then_some(())
            });
        }
    }

    // It leaves: its agent stops, its records expire, and the others forget it.
    c.agent().stop();
    let leaving = Instant::now();
    for v6 in [false, true] {
        let ip = pod_address(&web, v6);
        for node in [&a, &b] {
            let what = format!("{ip} gone from {}'s ipcache", node.name());
            wait_until(&what, CONVERGE, || {
                ipcache_identity(node, ip).is_none().then_some(())
            });
            eprintln!(
                "{} forgot {ip} of the leaving node {:?} after its agent stopped",
                node.name(),
                leaving.elapsed()
            );
        }
    }
    if mode == "native" {
        for node in [&a, &b] {
            let what = format!(
                "{}'s routes to {}'s pod CIDRs removed",
                node.name(),
                c.name()
            );
            wait_until(&what, CONVERGE, || {
                (!routes_pod_cidrs_of(node, &c)).then_some(())
            });
        }
    }
    assert!(
        streaming.elapsed() < STREAM_FOR,
        "the join and the leave took longer than the stream ran: raise STREAM_FOR"
    );
    assert_unbroken(stream);
    assert_all_ok(
        "a -> b after the leave",
        &workload::tcp(&client, to_server, 5).unwrap(),
    );
}

#[test]
fn a_node_joining_and_leaving_is_learned_and_forgotten_by_every_node_through_the_tunnel() {
    a_node_joins_and_leaves_under_traffic("tunnel");
}

#[test]
fn a_node_joining_and_leaving_is_learned_and_forgotten_by_every_node_in_native_routing() {
    a_node_joins_and_leaves_under_traffic("native");
}

#[test]
fn with_etcd_stopped_known_pods_keep_talking_and_new_label_sets_fail_clearly_until_it_returns() {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let endpoint = etcd.endpoint();
    let a = start_node(&outside, 1, &endpoint, "tunnel");
    let b = start_node(&outside, 2, &endpoint, "tunnel");
    let client = Pod::create(&a, "shop", "client").unwrap();
    let server = Pod::create(&b, "shop", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    let to_server = SocketAddr::new(pod_address(&server, false), DEFAULT_PORTS.tcp);
    wait_reachable(&client, to_server.ip(), CONVERGE);
    let stream =
        workload::spawn_stream(&client, to_server, STREAM_FOR, Duration::from_millis(50)).unwrap();

    etcd.stop();
    for v6 in [false, true] {
        assert_reaches(&client, pod_address(&server, v6), DEFAULT_PORTS, 5);
    }
    // A pod whose label set the node knows gets its identity from the cache.
    let late = Pod::create(&a, "shop", "late").unwrap();
    // A pod of a label set nobody has seen waits for the store, then fails saying why.
    let allocation_timeout = Duration::from_secs(ALLOCATION_TIMEOUT_SECS.parse().unwrap());
    let asked = Instant::now();
    let error = Pod::create(&a, "billing", "first").unwrap_err();
    let waited = asked.elapsed();
    let message = format!("{error:?}");
    assert!(
        message.contains("unreachable") && message.contains("billing"),
        "{message}"
    );
    assert!(
        waited >= allocation_timeout && waited < Duration::from_secs(25),
        "failed after {waited:?}"
    );

    // An agent restarting during the outage gives its endpoints their identities from
    // its cache at once, and its pods go on talking.
    let restarting = Instant::now();
    a.restart_agent().unwrap();
    let took = restarting.elapsed();
    assert!(took < Duration::from_secs(15), "the restart took {took:?}");
    assert_all_ok(
        "tcp after the restart",
        &workload::tcp(&client, to_server, 5).unwrap(),
    );

    etcd.start_again(outside.netns()).unwrap();
    // Back: the pod started during the outage is published, the new label set resolves.
    for v6 in [false, true] {
        let ip = pod_address(&late, v6);
        let what = format!("{ip} in {}'s ipcache", b.name());
        wait_until(&what, CONVERGE, || ipcache_identity(&b, ip));
        wait_reachable(&server, ip, CONVERGE);
    }
    let billing = Pod::create(&a, "billing", "first").unwrap();
    let ip = pod_address(&billing, false);
    let (billing_identity, _) = wait_until("the new pod in b's ipcache", CONVERGE, || {
        ipcache_identity(&b, ip)
    });
    let shop_identity = ipcache_identity(&b, pod_address(&client, false)).unwrap();
    assert_ne!(
        billing_identity, shop_identity,
        "another namespace, another identity"
    );
    assert_unbroken(stream);
}
