//! Services at scale in the real maps: 100,000 ClusterIP Services of ten backends are
//! programmed (1,100,000 services-map entries, 1,000,000 backends); a spread sample of
//! them resolves through the real program (BPF_PROG_TEST_RUN) to one of its own
//! backends; changing one Service, and adding one more, writes only that Service's
//! entries (the kernel maps are read back through their pins before and after and
//! compared). The times taken are printed (run with `--nocapture`), not asserted: the
//! benchmark (`cargo xtask bench services`) measures them.

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

/// Services programmed first; one more is added later.
const SERVICES: u32 = 100_000;
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

/// The datapath's form of backend `id`.
fn backend_spec(id: u32) -> BackendSpec {
    BackendSpec {
        addr: backend_addr(id),
        port: BACKEND_PORT,
        proto: TCP,
        terminating: false,
        local: false,
    }
}

/// Service `i` with backends `ids`.
fn service_spec(i: u32, ids: &[u32]) -> ServiceSpec {
    ServiceSpec {
        frontend: frontend(i),
        rev_nat_index: i + 1,
        flags: 0,
        affinity_timeout_s: 0,
        active: ids.to_vec(),
        terminating: Vec::new(),
    }
}

/// Writes Service `i` with backends `ids`, one Service as a change writes it.
fn write_service(bed: &mut Bed, i: u32, ids: &[u32]) {
    for &id in ids {
        bed.dp.upsert_backend(id, &backend_spec(id)).unwrap();
    }
    bed.dp.upsert_service(&service_spec(i, ids), &[]).unwrap();
}

/// Writes Services `0..n` with their backends in one batch, as a full sync does.
fn write_services(bed: &mut Bed, n: u32) {
    let backends: Vec<(u32, BackendSpec)> = (0..n)
        .flat_map(ids)
        .map(|id| (id, backend_spec(id)))
        .collect();
    bed.dp.upsert_backends(&backends).unwrap();
    let specs: Vec<ServiceSpec> = (0..n).map(|i| service_spec(i, &ids(i))).collect();
    bed.dp
        .upsert_services(specs.iter().map(|spec| (spec, &[][..])))
        .unwrap();
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
    rev_nat: HashMap<u32, RevNat>,
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
    let own = i + 1;
    assert!(
        rev.iter().all(|index| rev_nat && *index == own),
        "reverse NAT changed: {rev:?}"
    );
    services.len() + backends.len() + rev.len()
}

/// An error with its sources, as one line.
fn chain(error: membrane_datapath::DatapathError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
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
fn a_hundred_thousand_services_of_ten_backends_resolve_and_one_changes_alone() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: loading eBPF programs needs root");
        return;
    }
    with_bed_sized(MapSizes::for_services(SERVICES + 1, BACKENDS), |bed| {
        let started = Instant::now();
        write_services(bed, SERVICES);
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
        write_services(bed, FIT);
        let before = snapshot(bed);
        for &id in &ids(FIT) {
            bed.dp.upsert_backend(id, &backend_spec(id)).unwrap();
        }
        let refused = bed.dp.upsert_service(&service_spec(FIT, &ids(FIT)), &[]);
        let error =
            chain(refused.expect_err("an eleventh-slot Service fitted in five free entries"));
        assert!(error.contains(map_names::SERVICES), "{error}");
        let after = snapshot(bed);
        assert_eq!(
            before.services, after.services,
            "the refused Service left no entry behind"
        );
        // A batch of three such Services is refused the same way, leaving nothing.
        let specs: Vec<ServiceSpec> = (FIT..FIT + 3).map(|i| service_spec(i, &ids(FIT))).collect();
        let refused = bed
            .dp
            .upsert_services(specs.iter().map(|spec| (spec, &[][..])));
        let error = chain(refused.expect_err("three Services fitted in five free entries"));
        assert!(error.contains(map_names::SERVICES), "{error}");
        assert_eq!(
            before.services,
            snapshot(bed).services,
            "the refused batch left no entry behind"
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
