//! Map pressure read from the kernel: every bounded map reports the capacity it was
//! loaded with, and its entries follow what is written.
//!
//! Needs root and bpffs; without root the test says so and passes without checking.

use membrane_datapath::{Datapath, MapSizes};
use std::path::PathBuf;

/// A unique pin directory under bpffs, removed on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_bounded_map_reports_its_capacity_and_entries() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: loading eBPF programs needs root");
        return;
    }
    let pins = PinDir(PathBuf::from(format!(
        "/sys/fs/bpf/membrane-pressure-{:08x}",
        rand::random::<u32>()
    )));
    let sizes = MapSizes {
        conntrack: 1024,
        nat: 2048,
        endpoints: 32,
        ipcache: 128,
        services: 3000,
        backends: 5000,
        rev_nat: 700,
        maglev: 4099,
        policy: 256,
        ..MapSizes::default()
    };
    let mut datapath = Datapath::load_object(&pins.0, sizes).unwrap();
    let capacity = |pressure: &[membrane_datapath::MapPressure], map: &str| {
        let found = pressure
            .iter()
            .find(|p| p.map == map)
            .unwrap_or_else(|| panic!("{map} missing from {pressure:?}"));
        (found.entries, found.capacity)
    };
    let empty = datapath.map_pressure().unwrap();
    for (map, size) in [
        ("conntrack", sizes.conntrack),
        ("nat", sizes.nat),
        ("endpoints", sizes.endpoints),
        ("ipcache", sizes.ipcache),
        ("services", sizes.services),
        ("backends", sizes.backends),
        ("rev_nat", sizes.rev_nat),
        ("maglev", sizes.maglev),
        ("policy", sizes.policy),
    ] {
        assert_eq!(capacity(&empty, map), (0, u64::from(size)), "{map}");
    }
    datapath
        .upsert_ipcache("10.200.2.0/24".parse().unwrap(), 300, None)
        .unwrap();
    datapath
        .upsert_ipcache("10.200.2.7/32".parse().unwrap(), 301, None)
        .unwrap();
    let written = datapath.map_pressure().unwrap();
    assert_eq!(capacity(&written, "ipcache"), (2, 128));
}
