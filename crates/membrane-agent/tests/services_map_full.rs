//! A full load-balancing map in the kernel: the reconciler programs one Service, the
//! services map is then filled to its last entry, and a second Service fails alone with
//! an error that names it and the map while the first stays programmed; once room is
//! made, the next pass programs it.
//!
//! Needs root and bpffs (`cargo xtask test` runs it as root); without root it says so
//! and passes without checking anything.

use membrane_agent::services::allocator::Allocator;
use membrane_agent::services::model::{
    BackendAddr, BackendState, Backends, DesiredFrontend, DesiredState, FrontendAddr, FrontendKind,
    Owner, Protocol,
};
use membrane_agent::services::reconciler::Reconciler;
use membrane_agent::store::Store;
use membrane_datapath::{Datapath, Frontend, MapSizes, ServiceSpec};
use membrane_testbed::names;
use membrane_testbed::pin_dir::PinDir;
use std::sync::{Arc, Mutex};

/// Entries of the services map (a head and one per backend slot per frontend scope).
const SERVICES_MAP_ENTRIES: usize = 262_144;
/// The most backend slots one frontend can have.
const MAX_SLOTS: usize = u16::MAX as usize;

/// A ClusterIP Service `shop/<name>` at `vip`:80 with backends 10.0.<n>.1..=count.
fn service(desired: &mut DesiredState, name: &str, vip: &str, n: u8, count: u8) {
    let active: Vec<BackendAddr> = (1..=count)
        .map(|i| BackendAddr {
            addr: [10, 0, n, i].into(),
            port: 8080,
            proto: Protocol::Tcp,
        })
        .collect();
    for backend in &active {
        desired.backends.insert(*backend, BackendState::default());
    }
    desired.frontends.insert(
        FrontendAddr {
            addr: vip.parse().unwrap(),
            port: 80,
            proto: Protocol::Tcp,
        },
        DesiredFrontend {
            owner: Owner {
                kind: "Service",
                namespace: "shop".into(),
                name: name.into(),
            },
            kind: FrontendKind::ClusterIp,
            flags: 0,
            affinity_timeout_s: 0,
            backends: Backends {
                active,
                terminating: Vec::new(),
            },
            internal: None,
        },
    );
}

/// A frontend no Service owns, taking `slots` slots of the map and its head.
fn filler(index: u16, slots: usize) -> ServiceSpec {
    ServiceSpec {
        frontend: Frontend {
            addr: [192, 0, 2, 1].into(),
            port: index,
            proto: 6,
            internal: false,
        },
        rev_nat_index: u32::MAX - u32::from(index),
        flags: 0,
        affinity_timeout_s: 0,
        active: vec![1; slots],
        terminating: Vec::new(),
    }
}

#[test]
fn a_full_services_map_fails_the_new_service_alone_and_it_is_programmed_once_room_is_made() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: loading eBPF programs needs root");
        return;
    }
    let pins = PinDir::create(&names::unique("lbfull")).unwrap();
    let state = tempfile::tempdir().unwrap();
    let datapath = Arc::new(Mutex::new(
        Datapath::load_object(pins.path(), MapSizes::default()).unwrap(),
    ));
    let allocator = Allocator::load(Store::open(state.path()).unwrap()).unwrap();
    let mut reconciler = Reconciler::new(datapath.clone(), allocator);

    let mut desired = DesiredState::default();
    service(&mut desired, "web", "10.96.0.1", 1, 2);
    let report = reconciler.reconcile(&desired).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);

    // Fill the map: whole fillers while they fit (a refused one gives back the slots it
    // had written), then one that takes exactly the room left.
    let mut fillers = 0;
    loop {
        let mut dp = datapath.lock().unwrap();
        let written = dp.upsert_service(&filler(fillers + 1, MAX_SLOTS), &[]);
        fillers += 1;
        if written.is_err() {
            let room = SERVICES_MAP_ENTRIES - dp.service_entries();
            assert!(room <= MAX_SLOTS, "{written:?}");
            if room > 0 {
                dp.upsert_service(&filler(fillers + 1, room - 1), &[])
                    .unwrap();
            }
            assert_eq!(dp.service_entries(), SERVICES_MAP_ENTRIES);
            break;
        }
        assert!(usize::from(fillers) * (MAX_SLOTS + 1) < SERVICES_MAP_ENTRIES * 2);
    }

    service(&mut desired, "api", "10.96.0.2", 2, 3);
    let report = reconciler.reconcile(&desired).unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let failure = &report.failures[0];
    assert!(failure.is_map_full(), "{failure:?}");
    let message = membrane_agent::agent::chain(failure);
    assert!(
        message.contains("MEMBRANE_SERVICES map is full") && message.contains("Service shop/api"),
        "{message}"
    );
    assert_eq!(report.frontends_written, 0, "web is left as it was");
    let web = FrontendAddr {
        addr: "10.96.0.1".parse().unwrap(),
        port: 80,
        proto: Protocol::Tcp,
    };
    assert_eq!(reconciler.applied(&web), desired.frontends.get(&web));

    // Room for api: the first filler goes; the next pass (the next change) programs it.
    datapath
        .lock()
        .unwrap()
        .remove_service(&filler(1, MAX_SLOTS).frontend)
        .unwrap();
    let report = reconciler.reconcile(&desired).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.frontends_written, 1);
    let api = FrontendAddr {
        addr: "10.96.0.2".parse().unwrap(),
        port: 80,
        proto: Protocol::Tcp,
    };
    assert_eq!(reconciler.applied(&api), desired.frontends.get(&api));
}
