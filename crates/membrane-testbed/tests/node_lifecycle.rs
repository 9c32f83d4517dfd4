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
