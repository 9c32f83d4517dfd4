//! CNI DEL through the real plugin removes everything ADD made: the host veth, the
//! node's route to the pod, the address allocation, the endpoint and its map entry.

use membrane_testbed::{Node, Outside, Pod, pinned};
use rtnetlink::IpVersion;
use std::net::IpAddr;

fn del_leaves_nothing_behind(v6: bool) {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let before = node.status().unwrap();
    let kept = Pod::create(&node, "default", "kept").unwrap();
    let mut pod = Pod::create(&node, "default", "deleted").unwrap();
    let ip = if v6 {
        IpAddr::V6(pod.ipv6().unwrap())
    } else {
        IpAddr::V4(pod.ipv4().unwrap())
    };
    let kept_ip = if v6 {
        IpAddr::V6(kept.ipv6().unwrap())
    } else {
        IpAddr::V4(kept.ipv4().unwrap())
    };
    let version = if v6 { IpVersion::V6 } else { IpVersion::V4 };
    let routes_to = |address: IpAddr| {
        node.routes(version.clone())
            .unwrap()
            .into_iter()
            .filter(|r| r.destination.prefix_len() > 0 && r.destination.contains(&address))
            .count()
    };

    let endpoint = node
        .endpoints()
        .unwrap()
        .into_iter()
        .find(|e| e.registration.attachment == pod.attachment_ref())
        .expect("the agent knows the pod's endpoint");
    let host_veth = endpoint.registration.host_ifname.clone();
    assert!(
        node.links().unwrap().iter().any(|l| l.name == host_veth),
        "ADD made {host_veth}"
    );
    assert_eq!(routes_to(ip), 1, "ADD made a route to {ip}");
    assert!(
        pinned::endpoint_addresses(node.pin_dir().path())
            .unwrap()
            .contains(&ip)
    );
    let during = node.status().unwrap();
    assert_eq!(during.endpoints, before.endpoints + 2);

    assert!(
        pod.links().unwrap().iter().any(|l| l.name == "eth0"),
        "ADD made the pod's eth0"
    );

    pod.del().unwrap();

    let in_pod = pod.links().unwrap();
    assert!(
        in_pod.iter().all(|l| l.name != "eth0"),
        "the pod's eth0 is left behind: {in_pod:?}"
    );

    let links = node.links().unwrap();
    assert!(
        links.iter().all(|l| l.name != host_veth),
        "{host_veth} is left behind: {links:?}"
    );
    assert_eq!(routes_to(ip), 0, "a route to {ip} is left behind");
    let after = node.status().unwrap();
    assert_eq!(after.endpoints, before.endpoints + 1, "{after:?}");
    let pool = |status: &membrane_api::AgentStatus| {
        let pool = if v6 {
            &status.ipv6_pool
        } else {
            &status.ipv4_pool
        };
        pool.as_ref()
            .expect("the node has a pool of this family")
            .used
    };
    assert_eq!(
        pool(&after),
        pool(&during) - 1,
        "the address is released: {after:?}"
    );
    assert!(
        node.endpoints()
            .unwrap()
            .iter()
            .all(|e| e.registration.attachment != pod.attachment_ref()),
        "the endpoint is gone"
    );
    let mapped = pinned::endpoint_addresses(node.pin_dir().path()).unwrap();
    assert!(
        !mapped.contains(&ip),
        "{ip} is left in the endpoints map: {mapped:?}"
    );
    assert!(
        mapped.contains(&kept_ip),
        "the other pod's entry stays: {mapped:?}"
    );
    assert_eq!(routes_to(kept_ip), 1, "the other pod's route stays");

    pod.del()
        .expect("a second DEL of the same attachment succeeds, as the spec requires");
}

#[test]
fn del_leaves_no_veth_route_address_or_map_entry_behind_v4() {
    del_leaves_nothing_behind(false);
}

#[test]
fn del_leaves_no_veth_route_address_or_map_entry_behind_v6() {
    del_leaves_nothing_behind(true);
}

#[test]
fn check_succeeds_for_a_pod_as_added() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pod = Pod::create(&node, "default", "checked").unwrap();
    pod.check().unwrap();
}

#[test]
fn status_reports_the_plugin_ready_while_the_agent_runs() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    node.cni().status().unwrap();
}

#[test]
fn gc_releases_attachments_the_runtime_no_longer_knows_and_keeps_the_others() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let kept = Pod::create(&node, "default", "kept").unwrap();
    let forgotten = Pod::create(&node, "default", "forgotten").unwrap();
    let keep = kept.attachment();
    node.cni()
        .gc(&[(keep.container_id.as_str(), keep.ifname.as_str())])
        .unwrap();
    let endpoints = node.endpoints().unwrap();
    assert!(
        endpoints
            .iter()
            .any(|e| e.registration.attachment == kept.attachment_ref())
    );
    assert!(
        endpoints
            .iter()
            .all(|e| e.registration.attachment != forgotten.attachment_ref()),
        "{endpoints:?}"
    );
    let mapped = pinned::endpoint_addresses(node.pin_dir().path()).unwrap();
    assert!(
        !mapped.contains(&IpAddr::V4(forgotten.ipv4().unwrap())),
        "{mapped:?}"
    );
}
