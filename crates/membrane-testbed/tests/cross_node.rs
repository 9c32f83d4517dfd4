//! Pods on different nodes, three real agents on one real etcd: they reach each other over
//! TCP, UDP and ICMP on both families, in tunnel and in native routing, and the receiving
//! node's conntrack (read from its pinned map) carries the sender's security identity.
//!
//! Needs root, bpffs and Debian's etcd-server (`cargo xtask test` provides them).

use membrane_common::Family;
use membrane_testbed::report::CountReport;
use membrane_testbed::workload::{self, DEFAULT_PORTS, Outcome};
use membrane_testbed::{Etcd, Node, Outside, Place as _, Pod, pinned};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a node's records outlive its agent.
const LEASE_TTL_SECS: &str = "3";

/// How long the nodes get to learn each other's pods.
const CONVERGE: Duration = Duration::from_secs(20);

fn assert_all_ok(what: &str, outcome: &Outcome<CountReport>) {
    assert!(
        outcome.success && outcome.report.failed == 0,
        "{what}: {outcome:?}"
    );
}

fn address(pod: &Pod, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(pod.ipv6().unwrap())
    } else {
        IpAddr::V4(pod.ipv4().unwrap())
    }
}

/// The flags of a node on `etcd` in `mode`.
fn flags<'a>(etcd: &'a str, mode: &'a str) -> Vec<&'a str> {
    vec![
        "--kvstore",
        "etcd",
        "--kvstore-endpoints",
        etcd,
        "--kvstore-lease-ttl-secs",
        LEASE_TTL_SECS,
        "--routing-mode",
        mode,
        // Every node's pod CIDR (the test bed's 10.200.<n>.0/24) is the cluster's: never
        // masqueraded between nodes.
        "--cluster-cidr-v4",
        "10.200.0.0/16",
        "--cluster-cidr-v6",
        "fd00:200::/48",
    ]
}

/// Waits, at most [`CONVERGE`] in bounded polls, until `node`'s pinned ipcache holds
/// `ip`, and returns its identity there.
fn wait_in_ipcache(node: &Node, ip: IpAddr) -> u32 {
    let deadline = Instant::now() + CONVERGE;
    for attempt in 0.. {
        let entries = pinned::ipcache_identities(node.pin_dir().path()).unwrap();
        if let Some((_, identity)) = entries.iter().find(|(found, _)| *found == ip) {
            return *identity;
        }
        assert!(
            Instant::now() < deadline && attempt < 400,
            "{ip} not in {}'s ipcache after {CONVERGE:?}: {entries:?}",
            node.name()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unreachable!("the loop returns or panics")
}

/// Waits, a bounded number of single pings and at most [`CONVERGE`], until `to` answers
/// `from`: the nodes learn each other's pods through etcd.
fn wait_reachable(from: &Pod, to: IpAddr) {
    let deadline = Instant::now() + CONVERGE;
    for attempt in 0.. {
        let outcome = workload::ping(from, to, 1).unwrap();
        if outcome.success && outcome.report.failed == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline && attempt < 200,
            "{to} unreachable after {CONVERGE:?}: {outcome:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The source identity the conntrack entry of a connection from `client` to `server`
/// (on `server`'s node, read from the pinned map) carries.
fn identity_seen(node: &Node, client: IpAddr, server: IpAddr, proto: u8) -> Option<u32> {
    let bytes = |ip: IpAddr| match ip {
        IpAddr::V4(a) => membrane_common::tuple::v4_bytes(a.octets()),
        IpAddr::V6(a) => a.octets(),
    };
    let family = if client.is_ipv4() {
        Family::V4
    } else {
        Family::V6
    };
    pinned::conntrack_entries(node.pin_dir().path())
        .unwrap()
        .into_iter()
        .find(|(key, _)| {
            key.family == family
                && key.proto == proto
                && ((key.saddr == bytes(client) && key.daddr == bytes(server))
                    || (key.saddr == bytes(server) && key.daddr == bytes(client)))
        })
        .map(|(_, entry)| entry.src_identity)
}

fn pods_on_different_nodes_reach_each_other(mode: &str) {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let endpoint = etcd.endpoint();
    let a = Node::start_with(&outside, 1, &flags(&endpoint, mode)).unwrap();
    let b = Node::start_with(&outside, 2, &flags(&endpoint, mode)).unwrap();
    let c = Node::start_with(&outside, 3, &flags(&endpoint, mode)).unwrap();
    if mode == "native" {
        // The underlay routes every node's pod CIDRs to it, as a BGP-fed router would.
        for node in [&a, &b, &c] {
            membrane_testbed::wiring::route_pod_cidrs(outside.netns(), node.addressing()).unwrap();
        }
    }
    let client = Pod::create(&a, "shop", "client").unwrap();
    let server = Pod::create(&b, "shop", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    for v6 in [false, true] {
        let to = address(&server, v6);
        // The receiving node learns the client's identity through etcd.
        let published = wait_in_ipcache(&b, address(&client, v6));
        wait_reachable(&client, to);
        assert_all_ok(
            "tcp",
            &workload::tcp(&client, SocketAddr::new(to, DEFAULT_PORTS.tcp), 5).unwrap(),
        );
        assert_all_ok(
            "udp",
            &workload::udp(&client, SocketAddr::new(to, DEFAULT_PORTS.udp), 5).unwrap(),
        );
        assert_all_ok("icmp", &workload::ping(&client, to, 5).unwrap());
        let seen = workload::whoami_tcp(&client, SocketAddr::new(to, DEFAULT_PORTS.tcp)).unwrap();
        assert_eq!(
            seen.report.peer.ip(),
            address(&client, v6),
            "not translated"
        );
        // The receiver knows who sent it: an allocated identity (>= 256), not 0.
        let identity = identity_seen(&b, address(&client, v6), to, 6)
            .expect("a conntrack entry of the TCP connection on the receiving node");
        assert!(
            identity >= membrane_common::identity::FIRST_ALLOCATED,
            "{identity}"
        );
        assert_eq!(identity, published, "the identity published for the client");
    }
}

#[test]
fn pods_on_different_nodes_reach_each_other_through_the_tunnel_with_the_senders_identity() {
    pods_on_different_nodes_reach_each_other("tunnel");
}

#[test]
fn pods_on_different_nodes_reach_each_other_by_native_routing_with_the_senders_identity() {
    pods_on_different_nodes_reach_each_other("native");
}
