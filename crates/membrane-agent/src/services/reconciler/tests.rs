use super::*;
use crate::services::datapath::memory::MemoryDatapath;
use crate::services::model::{FrontendKind, Protocol};
use crate::store::Store;
use std::net::IpAddr;

fn owner(name: &str) -> Owner {
    Owner {
        kind: "Service",
        namespace: "shop".into(),
        name: name.into(),
    }
}

fn fe(addr: &str, port: u16) -> FrontendAddr {
    FrontendAddr {
        addr: addr.parse().unwrap(),
        port,
        proto: Protocol::Tcp,
    }
}

fn be(addr: &str) -> BackendAddr {
    BackendAddr {
        addr: addr.parse().unwrap(),
        port: 8080,
        proto: Protocol::Tcp,
    }
}

/// A desired state builder: frontends with active backends, backends not local.
#[derive(Default)]
struct World(DesiredState);

impl World {
    fn service(mut self, name: &str, frontend: FrontendAddr, active: &[&str]) -> World {
        self.add(name, frontend, active, 0, None);
        self
    }

    fn add(
        &mut self,
        name: &str,
        frontend: FrontendAddr,
        active: &[&str],
        flags: u16,
        internal: Option<&[&str]>,
    ) {
        let active: Vec<BackendAddr> = active.iter().map(|a| be(a)).collect();
        let internal = internal.map(|list| Backends {
            active: list.iter().map(|a| be(a)).collect(),
            terminating: Vec::new(),
        });
        for b in active
            .iter()
            .chain(internal.iter().flat_map(|i| i.active.iter()))
        {
            self.0.backends.entry(*b).or_default();
        }
        self.0.frontends.insert(
            frontend,
            DesiredFrontend {
                owner: owner(name),
                kind: FrontendKind::ClusterIp,
                flags,
                affinity_timeout_s: 0,
                backends: Backends {
                    active,
                    terminating: Vec::new(),
                },
                internal,
            },
        );
    }
}

struct Bed {
    dir: tempfile::TempDir,
    dp: MemoryDatapath,
}

impl Bed {
    fn new(service_capacity: usize, backend_capacity: usize) -> Bed {
        Bed {
            dir: tempfile::tempdir().unwrap(),
            dp: MemoryDatapath::with_capacity(service_capacity, backend_capacity),
        }
    }

    /// A reconciler over the bed's maps and state database (a restart when called again).
    fn reconciler(&self) -> Reconciler<MemoryDatapath> {
        let allocator = Allocator::load(Store::open(self.dir.path()).unwrap()).unwrap();
        Reconciler::new(self.dp.clone(), allocator)
    }

    fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut self.dp.maps().log)
    }

    /// The backend addresses the datapath holds for the external scope of `frontend`.
    fn active(&self, frontend: FrontendAddr, internal: bool) -> Vec<IpAddr> {
        let maps = self.dp.maps();
        let (spec, _) = &maps.services[&(
            frontend.addr,
            frontend.port,
            frontend.proto.number(),
            internal,
        )];
        spec.active
            .iter()
            .map(|id| maps.backends[id].addr)
            .collect()
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn a_pass_writes_everything_once_and_an_unchanged_state_writes_nothing() {
    let bed = Bed::new(100, 100);
    let mut reconciler = bed.reconciler();
    let desired = World::default()
        .service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.2"])
        .service("api", fe("10.96.0.2", 80), &["10.0.0.2"])
        .0;
    let report = reconciler.reconcile(&desired).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.frontends_written, 2);
    assert_eq!(
        report.backends_written, 2,
        "a shared backend is one backend"
    );
    assert_eq!(
        bed.active(fe("10.96.0.1", 80), false),
        [ip("10.0.0.1"), ip("10.0.0.2")]
    );
    bed.take_log();
    let again = reconciler.reconcile(&desired).unwrap();
    assert_eq!((again.frontends_written, again.backends_written), (0, 0));
    assert!(bed.take_log().is_empty());
}

#[test]
fn changing_one_service_writes_only_its_own_entries() {
    let bed = Bed::new(100, 100);
    let mut reconciler = bed.reconciler();
    let before = World::default()
        .service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.2"])
        .service("api", fe("10.96.0.2", 80), &["10.0.0.3"])
        .0;
    reconciler.reconcile(&before).unwrap();
    let api_index = reconciler.allocator().rev_nat_index(&fe("10.96.0.2", 80));
    let old_id = reconciler.allocator().backend_id(&be("10.0.0.2")).unwrap();
    bed.take_log();
    let after = World::default()
        .service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.4"])
        .service("api", fe("10.96.0.2", 80), &["10.0.0.3"])
        .0;
    let report = reconciler.reconcile(&after).unwrap();
    assert_eq!(report.frontends_written, 1);
    let id = |b| reconciler.allocator().backend_id(&be(b));
    assert_eq!(id("10.0.0.2"), None, "the dropped backend's id is released");
    let new_id = id("10.0.0.4").unwrap();
    assert_eq!(
        bed.take_log(),
        [
            format!("upsert backend {new_id}"),
            "upsert service 10.96.0.1:80/6".to_string(),
            // The backend web dropped goes last, once no slot names it.
            format!("remove backend {old_id}"),
        ]
    );
    assert_eq!(
        reconciler.allocator().rev_nat_index(&fe("10.96.0.2", 80)),
        api_index
    );
}

#[test]
fn a_deleted_service_is_removed_and_shared_backends_stay() {
    let bed = Bed::new(100, 100);
    let mut reconciler = bed.reconciler();
    let both = World::default()
        .service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.2"])
        .service("api", fe("10.96.0.2", 80), &["10.0.0.2"])
        .0;
    reconciler.reconcile(&both).unwrap();
    let only_api = World::default()
        .service("api", fe("10.96.0.2", 80), &["10.0.0.2"])
        .0;
    let report = reconciler.reconcile(&only_api).unwrap();
    assert_eq!((report.frontends_removed, report.backends_removed), (1, 1));
    let maps = bed.dp.maps();
    assert_eq!(maps.services.len(), 1);
    let left: Vec<IpAddr> = maps.backends.values().map(|b| b.addr).collect();
    assert_eq!(left, [ip("10.0.0.2")]);
    drop(maps);
    assert_eq!(reconciler.allocator().frontends().len(), 1);
    assert_eq!(reconciler.allocator().backends().len(), 1);
}

#[test]
fn a_restarted_reconciler_keeps_every_number_and_removes_what_went_away_meanwhile() {
    let bed = Bed::new(100, 100);
    let before = World::default()
        .service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.2"])
        .service("api", fe("10.96.0.2", 80), &["10.0.0.3"])
        .0;
    let (web_index, ids) = {
        let mut first = bed.reconciler();
        first.reconcile(&before).unwrap();
        (
            first.allocator().rev_nat_index(&fe("10.96.0.1", 80)),
            first.allocator().backends().clone(),
        )
    };
    let web_spec = bed.dp.maps().services.values().next().unwrap().0.clone();
    // While the agent was away, api was deleted.
    let after = World::default()
        .service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.2"])
        .0;
    let mut restarted = bed.reconciler();
    let report = restarted.reconcile(&after).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        restarted.allocator().rev_nat_index(&fe("10.96.0.1", 80)),
        web_index
    );
    for backend in ["10.0.0.1", "10.0.0.2"] {
        assert_eq!(
            restarted.allocator().backend_id(&be(backend)),
            ids.get(&be(backend)).copied()
        );
    }
    let maps = bed.dp.maps();
    assert_eq!(maps.services.len(), 1, "api's frontend is gone");
    assert_eq!(
        maps.services.values().next().unwrap().0,
        web_spec,
        "web is rewritten as it was"
    );
    assert_eq!(maps.backends.len(), 2, "api's backend is gone");
}

#[test]
fn a_full_services_map_fails_that_service_alone_and_it_is_retried() {
    // Room for web (a head and two slots) and nothing more.
    let bed = Bed::new(3, 100);
    let mut reconciler = bed.reconciler();
    let web = World::default().service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.2"]);
    reconciler.reconcile(&web.0).unwrap();
    let both = web.service("api", fe("10.96.0.2", 80), &["10.0.0.3"]).0;
    let report = reconciler.reconcile(&both).unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let failure = &report.failures[0];
    assert!(failure.is_map_full());
    let message = crate::agent::chain(failure);
    assert!(
        message.contains("services map is full") && message.contains("Service shop/api"),
        "{message}"
    );
    assert!(reconciler.failure(&owner("api")).is_some());
    assert_eq!(
        bed.active(fe("10.96.0.1", 80), false),
        [ip("10.0.0.1"), ip("10.0.0.2")],
        "web keeps working"
    );

    bed.dp.maps().service_capacity = 10;
    let retried = reconciler.reconcile(&both).unwrap();
    assert!(retried.failures.is_empty(), "{:?}", retried.failures);
    assert_eq!(retried.frontends_written, 1, "only api is written");
    assert_eq!(bed.active(fe("10.96.0.2", 80), false), [ip("10.0.0.3")]);
    assert_eq!(reconciler.failure(&owner("api")), None);
}

#[test]
fn a_full_backends_map_fails_the_service_needing_the_backend() {
    let bed = Bed::new(100, 2);
    let mut reconciler = bed.reconciler();
    let web = World::default().service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.2"]);
    reconciler.reconcile(&web.0).unwrap();
    let both = web.service("api", fe("10.96.0.2", 80), &["10.0.0.3"]).0;
    let report = reconciler.reconcile(&both).unwrap();
    let messages: Vec<String> = report
        .failures
        .iter()
        .map(|e| crate::agent::chain(e))
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("backends map is full") && m.contains("Service shop/api")),
        "{messages:?}"
    );
    assert_eq!(
        bed.dp.maps().services.len(),
        1,
        "api's frontend is not written"
    );
    // Once web goes, its room is freed before api is written: one pass.
    let only_api = World::default()
        .service("api", fe("10.96.0.2", 80), &["10.0.0.3"])
        .0;
    let report = reconciler.reconcile(&only_api).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(bed.active(fe("10.96.0.2", 80), false), [ip("10.0.0.3")]);
    assert_eq!(reconciler.failure(&owner("api")), None);
}

#[test]
fn a_second_scope_is_written_before_its_head_needs_it_and_removed_after() {
    let bed = Bed::new(100, 100);
    let mut reconciler = bed.reconciler();
    let node_port = fe("0.0.0.0", 30080);
    let flags = service_flags::EXTERNAL
        | service_flags::NODEPORT
        | service_flags::TWO_SCOPES
        | service_flags::MAGLEV;
    let mut world = World::default();
    world.add(
        "web",
        node_port,
        &["10.0.0.1"],
        flags,
        Some(&["10.0.0.1", "10.0.0.2"]),
    );
    reconciler.reconcile(&world.0).unwrap();
    let log = bed.take_log();
    let internal = log
        .iter()
        .position(|l| l.ends_with("30080/6 internal"))
        .unwrap();
    let external = log.iter().position(|l| l.ends_with("30080/6")).unwrap();
    assert!(internal < external, "{log:?}");
    {
        let maps = bed.dp.maps();
        let (spec, names) = &maps.services[&(node_port.addr, 30080, 6, true)];
        assert_eq!(
            spec.flags & service_flags::MAGLEV,
            0,
            "no table for the inside"
        );
        assert!(names.is_empty());
        let (spec, names) = &maps.services[&(node_port.addr, 30080, 6, false)];
        assert_ne!(spec.flags & service_flags::MAGLEV, 0);
        assert_eq!(names, &[b"10.0.0.1:8080".to_vec()]);
    }
    assert_eq!(
        bed.active(node_port, true),
        [ip("10.0.0.1"), ip("10.0.0.2")]
    );

    let mut world = World::default();
    world.add(
        "web",
        node_port,
        &["10.0.0.1", "10.0.0.2"],
        flags & !service_flags::TWO_SCOPES,
        None,
    );
    reconciler.reconcile(&world.0).unwrap();
    assert_eq!(
        bed.take_log(),
        [
            "upsert service 0.0.0.0:30080/6".to_string(),
            "remove service 0.0.0.0:30080/6 internal".to_string(),
        ]
    );
}

#[test]
fn a_terminating_backend_is_flagged_and_listed_after_the_active_ones() {
    let bed = Bed::new(100, 100);
    let mut reconciler = bed.reconciler();
    let mut world = World::default().service("web", fe("10.96.0.1", 80), &["10.0.0.1", "10.0.0.2"]);
    reconciler.reconcile(&world.0).unwrap();
    let frontend = world.0.frontends.get_mut(&fe("10.96.0.1", 80)).unwrap();
    frontend.backends = Backends {
        active: vec![be("10.0.0.1")],
        terminating: vec![be("10.0.0.2")],
    };
    world
        .0
        .backends
        .get_mut(&be("10.0.0.2"))
        .unwrap()
        .terminating = true;
    let report = reconciler.reconcile(&world.0).unwrap();
    assert_eq!((report.backends_written, report.frontends_written), (1, 1));
    let maps = bed.dp.maps();
    let id = reconciler.allocator().backend_id(&be("10.0.0.2")).unwrap();
    assert!(maps.backends[&id].terminating);
    let (spec, _) = maps.services.values().next().unwrap();
    assert_eq!(spec.terminating, [id]);
    assert_eq!(spec.active.len(), 1);
}
