//! Services at scale in the real maps: as many ClusterIP Services of ten backends as the
//! datapath can number are programmed; a spread sample of them resolves through the real
//! program (BPF_PROG_TEST_RUN) to one of its own backends; changing one Service, and
//! adding one more, writes only that Service's entries (the kernel maps are read back
//! through their pins before and after and compared).
//!
//! The count is 65,534 plus the one added, not 100,000: a frontend's reverse-NAT index is 16 bits in the
//! eBPF maps today (`RevNat` keys, `ServiceValue::rev_nat_index`), so no more frontends
//! can be numbered; widening it is asked of the eBPF side.

#[allow(dead_code)]
mod bed;

use bed::{Bed, L4, packet, with_bed_sized};
use etherparse::{NetHeaders, PacketHeaders, TransportHeader};
use membrane_common::program_names::FROM_CONTAINER;
use membrane_common::{Backend, RevNat, ServiceKey, ServiceValue, map_names};
use membrane_datapath::{BackendSpec, Frontend, MapSizes, ServiceSpec};
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// Services programmed first; the one added later takes the last reverse-NAT index.
const SERVICES: u32 = u16::MAX as u32 - 1;
/// Backends of each Service.
const BACKENDS: u32 = 10;
/// Services whose resolution is checked through the program.
const SAMPLES: u32 = 40;
/// The backends' port.
const BACKEND_PORT: u16 = 8080;
const TCP: u8 = 6;
const TC_ACT_REDIRECT: i32 = 7;

/// The ClusterIP of Service `i`.
fn vip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from_be_bytes([10, 96, 0, 1]) + i))
}

/// The address of backend `id` (unique per backend).
fn backend_addr(id: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from_be_bytes([10, 128, 0, 0]) + id))
}

fn frontend(i: u32) -> Frontend {
    Frontend {
        addr: vip(i),
        port: 80,
        proto: TCP,
        internal: false,
    }
}

/// Writes Service `i` with backends `ids`.
fn write_service(bed: &mut Bed, i: u32, ids: &[u32]) {
    for &id in ids {
        let spec = BackendSpec {
            addr: backend_addr(id),
            port: BACKEND_PORT,
            proto: TCP,
            terminating: false,
            local: false,
        };
        bed.dp.upsert_backend(id, &spec).unwrap();
    }
    let spec = ServiceSpec {
        frontend: frontend(i),
        rev_nat_index: u16::try_from(i + 1).unwrap(),
        flags: 0,
        affinity_timeout_s: 0,
        active: ids.to_vec(),
        terminating: Vec::new(),
    };
    bed.dp.upsert_service(&spec, &[]).unwrap();
}

/// The backend ids Service `i` starts with.
fn ids(i: u32) -> Vec<u32> {
    (0..BACKENDS).map(|j| i * BACKENDS + j + 1).collect()
}

/// Every entry of the pinned hash map `name`, read through its pin.
fn dump<K, V>(bed: &Bed, name: &str) -> HashMap<K, V>
where
    K: aya::Pod + Hash + Eq,
    V: aya::Pod,
{
    let data = aya::maps::MapData::from_pin(bed.options.pin_dir.join(name)).unwrap();
    let map = aya::maps::HashMap::<_, K, V>::try_from(aya::maps::Map::HashMap(data)).unwrap();
    map.iter().map(Result::unwrap).collect()
}

/// The keys whose entry differs between `before` and `after` (added, removed, changed).
fn changed<K: Hash + Eq + Copy, V: PartialEq>(
    before: &HashMap<K, V>,
    after: &HashMap<K, V>,
) -> Vec<K> {
    let mut keys: Vec<K> = before
        .iter()
        .filter(|(k, v)| after.get(k) != Some(v))
        .map(|(k, _)| *k)
        .collect();
    keys.extend(after.keys().filter(|k| !before.contains_key(k)).copied());
    keys
}

/// The three load-balancing maps, read back.
struct Snapshot {
    services: HashMap<ServiceKey, ServiceValue>,
    backends: HashMap<u32, Backend>,
    rev_nat: HashMap<u16, RevNat>,
}

fn snapshot(bed: &Bed) -> Snapshot {
    Snapshot {
        services: dump(bed, map_names::SERVICES),
        backends: dump(bed, map_names::BACKENDS),
        rev_nat: dump(bed, map_names::REV_NAT),
    }
}

/// Asserts that between `before` and `after` only Service `i`'s frontend entries, the
/// backends in `backend_ids` and (when `rev_nat`) its reverse-NAT entry changed, and
/// returns how many entries did.
fn only_service_changed(
    before: &Snapshot,
    after: &Snapshot,
    i: u32,
    backend_ids: &[u32],
    rev_nat: bool,
) -> usize {
    let services = changed(&before.services, &after.services);
    let addr = match vip(i) {
        IpAddr::V4(v4) => membrane_common::tuple::v4_bytes(v4.octets()),
        IpAddr::V6(v6) => v6.octets(),
    };
    for key in &services {
        assert_eq!(
            key.addr, addr,
            "an entry of another frontend changed: {key:?}"
        );
    }
    let backends = changed(&before.backends, &after.backends);
    for id in &backends {
        assert!(backend_ids.contains(id), "backend {id} changed");
    }
    let rev = changed(&before.rev_nat, &after.rev_nat);
    let own = u16::try_from(i + 1).unwrap();
    assert!(
        rev.iter().all(|index| rev_nat && *index == own),
        "reverse NAT changed: {rev:?}"
    );
    services.len() + backends.len() + rev.len()
}

/// The destination of the program's output for a SYN from pod A to Service `i`.
fn resolve(bed: &Bed, i: u32, sport: u16) -> (IpAddr, u16) {
    let a = &bed.a.spec;
    let input = packet(
        a.pod_mac,
        a.host_mac,
        IpAddr::V4(bed.a.v4),
        vip(i),
        sport,
        80,
        L4::TcpSyn,
    );
    let out = bed
        .dp
        .test_run(FROM_CONTAINER, &input, a.host_ifindex, 1)
        .unwrap();
    assert_eq!(out.action, TC_ACT_REDIRECT, "Service {i} was not forwarded");
    let headers = PacketHeaders::from_ethernet_slice(&out.packet).unwrap();
    let dst = match headers.net.unwrap() {
        NetHeaders::Ipv4(ip, _) => IpAddr::from(ip.destination),
        other => panic!("{other:?}"),
    };
    match headers.transport.unwrap() {
        TransportHeader::Tcp(t) => (dst, t.destination_port),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sixty_five_thousand_services_of_ten_backends_resolve_and_one_changes_alone() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: loading eBPF programs needs root");
        return;
    }
    with_bed_sized(MapSizes::for_services(SERVICES + 1, BACKENDS), |bed| {
        let started = Instant::now();
        for i in 0..SERVICES {
            write_service(bed, i, &ids(i));
        }
        let took = started.elapsed();
        eprintln!(
            "{SERVICES} Services of {BACKENDS} backends programmed in {:.2} s",
            took.as_secs_f64()
        );
        assert!(took < Duration::from_secs(120), "programming took {took:?}");
        assert_eq!(
            bed.dp.service_entries(),
            (SERVICES * (BACKENDS + 1)) as usize
        );

        for k in 0..SAMPLES {
            let i = (k * 7919) % SERVICES;
            for id in ids(i) {
                bed.route_via_world(backend_addr(id));
            }
            let (dst, port) = resolve(bed, i, 40_000 + k as u16);
            assert!(
                ids(i).iter().any(|&id| backend_addr(id) == dst) && port == BACKEND_PORT,
                "Service {i} resolved to {dst}:{port}, not one of its backends"
            );
        }

        // One Service swaps its last backend for a new one.
        let i = SERVICES / 3;
        let before = snapshot(bed);
        let mut new_ids = ids(i);
        let old = new_ids.pop().unwrap();
        let new = (SERVICES + 1) * BACKENDS + 1;
        new_ids.push(new);
        write_service(bed, i, &new_ids);
        bed.dp.remove_backend(old).unwrap();
        let after = snapshot(bed);
        let writes = only_service_changed(&before, &after, i, &[old, new], false);
        assert_eq!(writes, 3, "one slot, one backend added, one removed");

        // One more Service joins.
        let before = after;
        let started = Instant::now();
        write_service(bed, SERVICES, &ids(SERVICES));
        let add = started.elapsed();
        eprintln!(
            "one more Service added in {:.3} ms",
            add.as_secs_f64() * 1e3
        );
        let after = snapshot(bed);
        let writes = only_service_changed(&before, &after, SERVICES, &ids(SERVICES), true);
        assert_eq!(
            writes,
            (BACKENDS + 1 + BACKENDS + 1) as usize,
            "its head, slots, backends and reverse NAT"
        );
    });
}

#[test]
fn a_full_services_map_refuses_the_next_service_by_name_and_the_others_keep_resolving() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: loading eBPF programs needs root");
        return;
    }
    const FIT: u32 = 1000;
    // Room for FIT Services of ten backends and five slots more.
    let sizes = MapSizes {
        services: FIT * (BACKENDS + 1) + 5,
        ..MapSizes::default()
    };
    with_bed_sized(sizes, |bed| {
        for i in 0..FIT {
            write_service(bed, i, &ids(i));
        }
        let before = snapshot(bed);
        for &id in &ids(FIT) {
            bed.dp
                .upsert_backend(
                    id,
                    &BackendSpec {
                        addr: backend_addr(id),
                        port: BACKEND_PORT,
                        proto: TCP,
                        terminating: false,
                        local: false,
                    },
                )
                .unwrap();
        }
        let refused = bed.dp.upsert_service(
            &ServiceSpec {
                frontend: frontend(FIT),
                rev_nat_index: u16::try_from(FIT + 1).unwrap(),
                flags: 0,
                affinity_timeout_s: 0,
                active: ids(FIT),
                terminating: Vec::new(),
            },
            &[],
        );
        let error = match refused {
            Ok(()) => panic!("an eleventh-slot Service fitted in five free entries"),
            Err(e) => {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                text
            }
        };
        assert!(error.contains(map_names::SERVICES), "{error}");
        let after = snapshot(bed);
        assert_eq!(
            before.services, after.services,
            "the refused Service left no entry behind"
        );
        for k in 0..10 {
            let i = (k * 97) % FIT;
            for id in ids(i) {
                bed.route_via_world(backend_addr(id));
            }
            let (dst, _) = resolve(bed, i, 41_000 + k as u16);
            assert!(ids(i).iter().any(|&id| backend_addr(id) == dst));
        }
        // The five free entries still take a Service of four backends.
        write_service(bed, FIT + 1, &ids(FIT + 1)[..4]);
        assert_eq!(
            bed.dp.service_entries(),
            (FIT * (BACKENDS + 1) + 5) as usize
        );
    });
}
