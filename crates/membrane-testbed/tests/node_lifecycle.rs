//! A node's resources exist while it is held and are all gone once it is dropped.

use membrane_testbed::{Node, Outside, Place, Pod};
use std::path::PathBuf;

#[test]
fn a_node_pins_its_maps_in_a_directory_of_its_own() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pins = node.pin_dir().entries();
    for map in [
        "MEMBRANE_ENDPOINTS",
        "MEMBRANE_CT",
        "MEMBRANE_NAT",
        "MEMBRANE_METRICS",
    ] {
        assert!(
            pins.iter().any(|p| p == map),
            "{map} is not pinned: {pins:?}"
        );
    }
    assert!(node.pin_dir().path().ends_with(node.name()));
}

#[test]
fn a_dropped_node_leaves_no_agent_namespace_cgroup_pins_or_state_behind() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pod = Pod::create(&node, "default", "p").unwrap();
    let pid = node.agent().pid().expect("the agent runs");
    let paths: Vec<PathBuf> = vec![
        node.netns().path().into(),
        node.cgroup().expect("a node has a cgroup").path().into(),
        node.pin_dir().path().into(),
        node.state_dir().into(),
        pod.netns().path().into(),
        pod.cgroup().expect("a pod has a cgroup").path().into(),
    ];
    for path in &paths {
        assert!(
            path.exists(),
            "{} exists while the node is up",
            path.display()
        );
    }
    drop(pod);
    drop(node);
    for path in &paths {
        assert!(!path.exists(), "{} is left behind", path.display());
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the agent still runs: {stat}"
    );
}

#[test]
fn a_node_started_with_a_wider_pod_cidr_gives_its_agent_and_pods_that_cidr() {
    let outside = Outside::create().unwrap();
    let node = Node::builder(&outside, 2)
        .pod_prefix_v4(22)
        .start()
        .unwrap();
    let cidr = node.addressing().pod_cidr_v4();
    assert_eq!(cidr.to_string(), "10.200.8.0/22");
    let pool = node
        .status()
        .unwrap()
        .ipv4_pool
        .expect("the agent has an IPv4 pool");
    assert_eq!(pool.cidr, cidr.to_string());
    assert_eq!(pool.used + pool.free, 1022, "{pool:?}");
    let pod = Pod::create(&node, "default", "p").unwrap();
    let address = pod.ipv4().expect("the pod has an IPv4 address");
    assert!(cidr.contains(&address), "{address} is outside {cidr}");
}

#[test]
fn a_pod_cidr_outside_the_plan_is_refused_naming_node_and_prefix() {
    let outside = Outside::create().unwrap();
    let error = Node::builder(&outside, 40)
        .pod_prefix_v4(21)
        .start()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("/21") && error.contains("node 40"),
        "{error}"
    );
}
