//! Map capacities set at load time reach the kernel's maps, a pinned map of another size
//! is refused with an error naming it (instead of being adopted silently), a pinned map of
//! an older layout is replaced, and the maps' kernel memory is read back.
//!
//! Needs root and bpffs; without root each test says so and passes without checking.

use aya::maps::{HashMap, MapData};
use membrane_common::{EndpointInfo, EndpointKey, map_names};
use membrane_datapath::{Datapath, MapLayout, MapSizes, ReplacedMap, pinned_memory};
use std::path::PathBuf;

/// A unique pin directory under bpffs, removed on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new() -> PinDir {
        PinDir(PathBuf::from(format!(
            "/sys/fs/bpf/membrane-sizes-{:08x}",
            rand::random::<u32>()
        )))
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("skipped: loading eBPF programs needs root");
    }
    root
}

fn small() -> MapSizes {
    MapSizes {
        conntrack: 1024,
        nat: 2048,
        endpoints: 32,
        ipcache: 128,
        services: 3000,
        backends: 5000,
        rev_nat: 700,
        affinity: 900,
        maglev: 4099,
        sock_rev_nat: 600,
        policy: 256,
    }
}

#[test]
fn every_configured_capacity_reaches_the_kernel_map() {
    if !root() {
        return;
    }
    let pins = PinDir::new();
    let sizes = small();
    let _datapath = Datapath::load_object(&pins.0, sizes).unwrap();
    let memory = pinned_memory(&pins.0).unwrap();
    for (name, size) in sizes.entries() {
        let map = memory
            .iter()
            .find(|m| m.map == name)
            .unwrap_or_else(|| panic!("{name} missing from {memory:?}"));
        assert_eq!(map.capacity, size, "{name}");
        // The LPM tries allocate on demand: empty, they cost nothing.
        let on_demand = [map_names::IPCACHE, map_names::POLICY].contains(&name);
        assert!(map.bytes > 0 || on_demand, "{name}: {map:?}");
    }
}

#[test]
fn a_larger_services_map_costs_more_kernel_memory() {
    if !root() {
        return;
    }
    let services_bytes = |services: u32| {
        let pins = PinDir::new();
        let sizes = MapSizes {
            services,
            ..small()
        };
        let _datapath = Datapath::load_object(&pins.0, sizes).unwrap();
        pinned_memory(&pins.0)
            .unwrap()
            .into_iter()
            .find(|m| m.map == map_names::SERVICES)
            .unwrap()
            .bytes
    };
    let (little, big) = (services_bytes(1000), services_bytes(100_000));
    assert!(
        big > 50 * little,
        "1,000 entries: {little} B, 100,000: {big} B"
    );
}

#[test]
fn a_pinned_map_of_another_size_is_refused_naming_the_map() {
    if !root() {
        return;
    }
    let pins = PinDir::new();
    drop(Datapath::load_object(&pins.0, small()).unwrap());
    // The same sizes adopt the pinned maps.
    drop(Datapath::load_object(&pins.0, small()).unwrap());
    let grown = MapSizes {
        backends: 6000,
        ..small()
    };
    let error = match Datapath::load_object(&pins.0, grown) {
        Ok(_) => panic!("a resized pinned map was adopted"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains(map_names::BACKENDS) && error.contains("5000") && error.contains("6000"),
        "{error}"
    );
}

#[test]
fn a_zero_capacity_is_refused_before_anything_is_loaded() {
    if !root() {
        return;
    }
    let pins = PinDir::new();
    let error = match Datapath::load_object(
        &pins.0,
        MapSizes {
            rev_nat: 0,
            ..small()
        },
    ) {
        Ok(_) => panic!("a map of 0 entries was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(error.contains(map_names::REV_NAT), "{error}");
    assert!(
        std::fs::read_dir(&pins.0).unwrap().next().is_none(),
        "nothing is pinned"
    );
}

#[test]
fn a_pinned_map_of_an_older_layout_is_replaced_not_adopted() {
    if !root() {
        return;
    }
    let pins = PinDir::new();
    std::fs::create_dir_all(&pins.0).unwrap();
    // The endpoints map as an older datapath might have pinned it: the same type, size
    // and keys, 4-byte values, one entry.
    let hash = 1;
    let key_size = size_of::<EndpointKey>() as u32;
    let old = MapData::create(
        aya_obj::Map::new_from_params(hash, key_size, 4, 32, 0),
        "old_endpoints",
        None,
    )
    .unwrap();
    let pin = pins.0.join(map_names::ENDPOINTS);
    old.pin(&pin).unwrap();
    let mut old_map: HashMap<MapData, [u8; 20], u32> =
        HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(&pin).unwrap())).unwrap();
    old_map.insert([7; 20], 7, 0).unwrap();

    let datapath = Datapath::load_object(&pins.0, small()).unwrap();
    let entry = size_of::<EndpointInfo>() as u32;
    assert_eq!(
        datapath.replaced_maps(),
        [ReplacedMap {
            map: map_names::ENDPOINTS.to_string(),
            pinned: MapLayout {
                map_type: hash,
                key_size,
                value_size: 4,
            },
            object: MapLayout {
                map_type: hash,
                key_size,
                value_size: entry,
            },
        }]
    );
    let info = MapData::from_pin(&pin).unwrap().info().unwrap();
    assert_eq!(info.value_size(), entry, "the pin is the new map");
    let new_map: HashMap<MapData, EndpointKey, EndpointInfo> =
        HashMap::try_from(aya::maps::Map::HashMap(MapData::from_pin(&pin).unwrap())).unwrap();
    assert_eq!(
        new_map.keys().count(),
        0,
        "nothing of the old map was adopted"
    );
    drop(datapath);

    // Pins of the current layout are adopted as they are.
    let again = Datapath::load_object(&pins.0, small()).unwrap();
    assert_eq!(again.replaced_maps(), []);
}
