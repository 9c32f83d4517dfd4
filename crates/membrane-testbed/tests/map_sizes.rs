//! Map sizes through the real agent: the Cilium-named flags size the kernel's maps the
//! agent pins, a per-map flag wins over `--bpf-lb-map-max`, and the rest keep their
//! defaults.
//!
//! Needs root, bpffs and cgroup v2 (`cargo xtask test` provides them).

use membrane_common::map_names;
use membrane_datapath::{MapSizes, pinned_memory};
use membrane_testbed::{Node, Outside};

fn capacity(node: &Node, map: &str) -> u32 {
    pinned_memory(node.pin_dir().path())
        .unwrap()
        .into_iter()
        .find(|m| m.map == map)
        .unwrap_or_else(|| panic!("{map} is not pinned"))
        .capacity
}

#[test]
fn map_size_flags_size_the_agents_pinned_maps() {
    let outside = Outside::create().unwrap();
    let node = Node::start_with(
        &outside,
        1,
        &[
            "--bpf-lb-map-max",
            "300000",
            "--bpf-lb-rev-nat-map-max",
            "70000",
            "--bpf-ct-global-tcp-max",
            "100000",
        ],
    )
    .unwrap();
    let defaults = MapSizes::default();
    assert_eq!(capacity(&node, map_names::SERVICES), 300_000);
    assert_eq!(capacity(&node, map_names::BACKENDS), 300_000);
    assert_eq!(capacity(&node, map_names::AFFINITY), 300_000);
    assert_eq!(
        capacity(&node, map_names::REV_NAT),
        70_000,
        "per-map flag wins"
    );
    assert_eq!(capacity(&node, map_names::CT), 100_000);
    assert_eq!(capacity(&node, map_names::NAT), defaults.nat);
    assert_eq!(capacity(&node, map_names::MAGLEV), defaults.maglev);
}
