//! Pods on one node, created through the real CNI plugin with the real agent and
//! datapath: connectivity between pods, to the node and to the world, on both families.

use membrane_testbed::cluster::pod_address as address;
use membrane_testbed::workload::{self, DEFAULT_PORTS, assert_all_ok, assert_reaches};
use membrane_testbed::{Node, Outside, Pod};
use std::net::{IpAddr, SocketAddr};

fn pods_on_one_node_reach_each_other(v6: bool) {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let client = Pod::create(&node, "default", "client").unwrap();
    let server = Pod::create(&node, "default", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    let to = address(&server, v6);
    assert_reaches(&client, to, DEFAULT_PORTS, 5);
    let url = format!("http://{}/", SocketAddr::new(to, DEFAULT_PORTS.http));
    assert_all_ok("http", &workload::http(&client, &url, 3).unwrap());
    let seen = workload::whoami_tcp(&client, SocketAddr::new(to, DEFAULT_PORTS.tcp)).unwrap();
    assert_eq!(
        seen.report.peer.ip(),
        address(&client, v6),
        "pod to pod is not translated"
    );
}

#[test]
fn two_pods_on_one_node_reach_each_other_over_tcp_udp_and_icmp_v4() {
    pods_on_one_node_reach_each_other(false);
}

#[test]
fn two_pods_on_one_node_reach_each_other_over_tcp_udp_and_icmp_v6() {
    pods_on_one_node_reach_each_other(true);
}

fn a_pod_reaches_its_node(v6: bool) {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pod = Pod::create(&node, "default", "client").unwrap();
    let _serving = workload::serve(&node, DEFAULT_PORTS).unwrap();
    let to = if v6 {
        IpAddr::V6(node.ipv6())
    } else {
        IpAddr::V4(node.ipv4())
    };
    assert_reaches(&pod, to, DEFAULT_PORTS, 5);
}

#[test]
fn a_pod_reaches_its_node_address_v4() {
    a_pod_reaches_its_node(false);
}

#[test]
fn a_pod_reaches_its_node_address_v6() {
    a_pod_reaches_its_node(true);
}

fn a_pod_reaches_the_world_as_its_node(v6: bool) {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pod = Pod::create(&node, "default", "client").unwrap();
    let _serving = workload::serve(&outside, DEFAULT_PORTS).unwrap();
    let (world, node_ip) = if v6 {
        (IpAddr::V6(outside.world_v6()), IpAddr::V6(node.ipv6()))
    } else {
        (IpAddr::V4(outside.world_v4()), IpAddr::V4(node.ipv4()))
    };
    assert_reaches(&pod, world, DEFAULT_PORTS, 5);
    let tcp = workload::whoami_tcp(&pod, SocketAddr::new(world, DEFAULT_PORTS.tcp)).unwrap();
    assert_eq!(
        tcp.report.peer.ip(),
        node_ip,
        "the world sees the node, not the pod: {tcp:?}"
    );
    let udp = workload::whoami_udp(&pod, SocketAddr::new(world, DEFAULT_PORTS.udp)).unwrap();
    assert_eq!(
        udp.report.peer.ip(),
        node_ip,
        "the world sees the node, not the pod: {udp:?}"
    );
}

#[test]
fn a_pod_reaches_the_outside_which_sees_the_node_address_v4() {
    a_pod_reaches_the_world_as_its_node(false);
}

#[test]
fn a_pod_reaches_the_outside_which_sees_the_node_address_v6() {
    a_pod_reaches_the_world_as_its_node(true);
}
