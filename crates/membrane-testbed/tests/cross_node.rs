//! Pods on different nodes, three real agents on one real etcd: they reach each other over
//! TCP, UDP and ICMP on both families, in tunnel and in native routing, and the receiving
//! node's conntrack (read from its pinned map) carries the sender's security identity.
//!
//! Needs root, bpffs and Debian's etcd-server (`cargo xtask test` provides them).

use membrane_testbed::cluster::{conntrack_source_identity, wait_until};
use membrane_testbed::cluster::{etcd_flags as flags, ipcache_identity, pod_address as address};
use membrane_testbed::workload::{self, DEFAULT_PORTS, assert_reaches, wait_reachable};
use membrane_testbed::{Etcd, Node, Outside, Place as _, Pod};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long the nodes get to learn each other's pods.
const CONVERGE: Duration = Duration::from_secs(20);

/// Waits until `node`'s pinned ipcache holds `ip`, and returns its identity there.
fn wait_in_ipcache(node: &Node, ip: IpAddr) -> u32 {
    let what = format!("{ip} in {}'s ipcache", node.name());
    wait_until(&what, CONVERGE, || ipcache_identity(node, ip)).0
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
    // Every node knows the nodes' addresses: its own as host, the others' as remote-node.
    for (node, other) in [(&a, &b), (&b, &c)] {
        for (at, v6) in [(node, false), (node, true), (other, false), (other, true)] {
            let ip = if v6 {
                IpAddr::V6(at.ipv6())
            } else {
                IpAddr::V4(at.ipv4())
            };
            let wanted = if at.name() == node.name() {
                membrane_common::identity::HOST
            } else {
                membrane_common::identity::REMOTE_NODE
            };
            assert_eq!(
                wait_in_ipcache(node, ip),
                wanted,
                "{ip} in {}'s ipcache",
                node.name()
            );
        }
    }
    let client = Pod::create(&a, "shop", "client").unwrap();
    let server = Pod::create(&b, "shop", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    for v6 in [false, true] {
        let to = address(&server, v6);
        // The receiving node learns the client's identity through etcd.
        let published = wait_in_ipcache(&b, address(&client, v6));
        wait_reachable(&client, to, CONVERGE);
        assert_reaches(&client, to, DEFAULT_PORTS, 5);
        let seen = workload::whoami_tcp(&client, SocketAddr::new(to, DEFAULT_PORTS.tcp)).unwrap();
        assert_eq!(
            seen.report.peer.ip(),
            address(&client, v6),
            "not translated"
        );
        // The receiver knows who sent it: an allocated identity (>= 256), not 0.
        let identity = conntrack_source_identity(&b, address(&client, v6), to, 6)
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
