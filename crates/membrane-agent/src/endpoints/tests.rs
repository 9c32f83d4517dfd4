use super::memory::MemoryDatapath;
use super::*;
use crate::ipam::Pool;
use crate::node::memory::MemoryNetwork;
use std::net::IpAddr;

struct Node {
    dir: tempfile::TempDir,
    datapath: MemoryDatapath,
    network: MemoryNetwork,
    manager: EndpointManager<MemoryDatapath, MemoryNetwork>,
}

fn manager_at(
    dir: &std::path::Path,
    datapath: &MemoryDatapath,
    network: &MemoryNetwork,
) -> EndpointManager<MemoryDatapath, MemoryNetwork> {
    let store = Store::open(dir).unwrap();
    let ipam = Ipam::new(
        store,
        Some(Pool::v4("10.1.0.0/24".parse().unwrap())),
        Pool::v6("fd00:1::/120".parse().unwrap()),
    )
    .unwrap();
    EndpointManager::new(
        ipam,
        datapath.clone(),
        network.clone(),
        Duration::from_secs(120),
    )
    .unwrap()
}

fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let datapath = MemoryDatapath::default();
    let network = MemoryNetwork::default();
    let manager = manager_at(dir.path(), &datapath, &network);
    Node {
        dir,
        datapath,
        network,
        manager,
    }
}

impl Node {
    fn reopen(self) -> Node {
        let Node {
            dir,
            network,
            manager,
            ..
        } = self;
        drop(manager);
        let datapath = MemoryDatapath::default();
        let manager = manager_at(dir.path(), &datapath, &network);
        Node {
            dir,
            datapath,
            network,
            manager,
        }
    }

    fn attached_ids(&self) -> Vec<u16> {
        self.datapath
            .0
            .lock()
            .unwrap()
            .attached
            .keys()
            .copied()
            .collect()
    }

    /// Allocates for container `id`, makes its veth `lxc<id>` with index `ifindex`, and
    /// returns the registration the CNI plugin would send.
    fn prepare(&self, id: &str, ifindex: u32) -> EndpointRegistration {
        let attachment = attachment(id);
        let netns = self.dir.path().to_str().unwrap().to_string();
        let request = AllocateRequest {
            attachment: attachment.clone(),
            netns: netns.clone(),
        };
        let allocation = self.manager.allocate(&request).unwrap();
        let host_ifname = format!("lxc{id}");
        self.network.add_link(ifindex, &host_ifname);
        EndpointRegistration {
            attachment,
            netns,
            host_ifname,
            host_ifindex: ifindex,
            host_mac: "02:00:00:00:00:01".to_string(),
            pod_mac: "02:00:00:00:00:02".to_string(),
            ipv4: allocation.ipv4,
            ipv6: allocation.ipv6,
            pod_namespace: Some("default".to_string()),
            pod_name: Some(format!("pod-{id}")),
        }
    }
}

fn attachment(id: &str) -> AttachmentRef {
    AttachmentRef {
        container_id: id.to_string(),
        ifname: "eth0".to_string(),
    }
}

fn routes_of(registration: &EndpointRegistration) -> BTreeSet<(IpAddr, u32)> {
    [
        IpAddr::V4(registration.ipv4.unwrap()),
        IpAddr::V6(registration.ipv6.unwrap()),
    ]
    .into_iter()
    .map(|a| (a, registration.host_ifindex))
    .collect()
}

#[tokio::test]
async fn creating_an_endpoint_routes_its_addresses_attaches_it_and_persists_it() {
    let mut node = node();
    let registration = node.prepare("a", 10);
    let endpoint = node.manager.create(registration.clone()).await.unwrap();
    assert_eq!(endpoint.id, 1);
    assert_eq!(endpoint.registration, registration);
    assert_eq!(node.network.routes(), routes_of(&registration));
    let neighbours: Vec<_> = node.network.neighbours().into_iter().collect();
    let pod_mac = [2, 0, 0, 0, 0, 2];
    assert_eq!(
        neighbours,
        routes_of(&registration)
            .into_iter()
            .map(|key| (key, pod_mac))
            .collect::<Vec<_>>()
    );
    let attached = node.datapath.0.lock().unwrap().attached[&1].clone();
    assert_eq!(attached.host_ifindex, 10);
    assert_eq!(attached.pod_mac, [2, 0, 0, 0, 0, 2]);
    assert_eq!(node.manager.get(&attachment("a")).unwrap(), endpoint);
    let node = node.reopen();
    assert_eq!(node.manager.list().unwrap(), vec![endpoint]);
}

#[tokio::test]
async fn registering_the_same_endpoint_again_returns_it_and_a_different_one_is_refused() {
    let mut node = node();
    let registration = node.prepare("a", 10);
    let endpoint = node.manager.create(registration.clone()).await.unwrap();
    assert_eq!(
        node.manager.create(registration.clone()).await.unwrap(),
        endpoint
    );
    let other = EndpointRegistration {
        pod_mac: "02:00:00:00:00:09".to_string(),
        ..registration
    };
    let err = node.manager.create(other).await.unwrap_err();
    assert!(
        matches!(err, EndpointError::AlreadyRegistered { id: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn invalid_registrations_are_refused_and_leave_nothing_behind() {
    let mut node = node();
    let good = node.prepare("a", 10);
    let unallocated = EndpointRegistration {
        attachment: attachment("nobody"),
        ..good.clone()
    };
    let wrong_address = EndpointRegistration {
        ipv4: Some("10.1.0.200".parse().unwrap()),
        ..good.clone()
    };
    let wrong_netns = EndpointRegistration {
        netns: "/elsewhere".to_string(),
        ..good.clone()
    };
    let bad_mac = EndpointRegistration {
        host_mac: "02:00:00:00:00".to_string(),
        ..good.clone()
    };
    let no_link = EndpointRegistration {
        host_ifindex: 99,
        ..good.clone()
    };
    let renamed = EndpointRegistration {
        host_ifname: "other".to_string(),
        ..good.clone()
    };
    let cases = [
        (unallocated, "NotAllocated"),
        (wrong_address, "AddressMismatch"),
        (wrong_netns, "NetnsMismatch"),
        (bad_mac, "BadMac"),
        (no_link, "NoSuchLink"),
        (renamed, "NoSuchLink"),
    ];
    for (registration, expected) in cases {
        let err = node.manager.create(registration).await.unwrap_err();
        assert!(
            format!("{err:?}").starts_with(expected),
            "expected {expected}, got {err:?}"
        );
    }
    assert!(node.manager.list().unwrap().is_empty());
    assert!(node.network.routes().is_empty());
    assert!(node.attached_ids().is_empty());
}

#[tokio::test]
async fn a_failed_attach_undoes_the_routes_and_the_record() {
    let mut node = node();
    let registration = node.prepare("a", 10);
    node.datapath.0.lock().unwrap().fail_attach = true;
    let err = node.manager.create(registration.clone()).await.unwrap_err();
    assert!(
        matches!(
            err,
            EndpointError::Datapath {
                operation: "attaching",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(node.network.routes().is_empty());
    assert!(node.network.neighbours().is_empty());
    assert!(node.manager.list().unwrap().is_empty());
    // The addresses stay allocated: the plugin's DEL (or the grace period) releases them.
    assert!(node.manager.ipam().get(&attachment("a")).unwrap().is_some());
    node.datapath.0.lock().unwrap().fail_attach = false;
    let endpoint = node.manager.create(registration).await.unwrap();
    assert_eq!(
        endpoint.id, 2,
        "the id of the failed attempt is not reused at once"
    );
}

#[tokio::test]
async fn deleting_an_endpoint_removes_everything_and_is_idempotent() {
    let mut node = node();
    let registration = node.prepare("a", 10);
    node.manager.create(registration).await.unwrap();
    assert!(node.manager.delete(&attachment("a")).await.unwrap());
    assert!(node.network.routes().is_empty());
    assert!(node.network.neighbours().is_empty());
    assert!(node.attached_ids().is_empty());
    assert!(node.manager.list().unwrap().is_empty());
    assert_eq!(node.manager.ipam().get(&attachment("a")).unwrap(), None);
    assert!(!node.manager.delete(&attachment("a")).await.unwrap());
    let err = node.manager.get(&attachment("a")).unwrap_err();
    assert!(matches!(err, EndpointError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn a_failed_detach_keeps_the_endpoint_so_delete_can_be_retried() {
    let mut node = node();
    let registration = node.prepare("a", 10);
    node.manager.create(registration).await.unwrap();
    node.datapath.0.lock().unwrap().fail_detach = true;
    assert!(node.manager.delete(&attachment("a")).await.is_err());
    assert_eq!(node.manager.list().unwrap().len(), 1);
    node.datapath.0.lock().unwrap().fail_detach = false;
    assert!(node.manager.delete(&attachment("a")).await.unwrap());
}

#[tokio::test]
async fn gc_releases_endpoints_and_allocations_missing_from_the_valid_list() {
    let mut node = node();
    let a = node.prepare("a", 10);
    let b = node.prepare("b", 11);
    node.manager.create(a.clone()).await.unwrap();
    node.manager.create(b).await.unwrap();
    node.prepare("c", 12); // allocated, never registered
    let released = node.manager.gc(&[attachment("a")]).await.unwrap();
    assert_eq!(released, vec![attachment("b"), attachment("c")]);
    assert_eq!(node.attached_ids(), vec![1]);
    assert_eq!(node.network.routes(), routes_of(&a));
    let (v4, _) = node.manager.ipam().usage().unwrap();
    assert_eq!(v4.unwrap().used, 1);
}

#[tokio::test]
async fn a_restart_adopts_endpoints_whose_veth_exists_and_releases_the_others() {
    let mut node = node();
    let a = node.prepare("a", 10);
    let b = node.prepare("b", 11);
    node.manager.create(a.clone()).await.unwrap();
    node.manager.create(b).await.unwrap();
    node.network.remove_link(11);
    let mut node = node.reopen();
    let report = node.manager.reconcile(Reconcile::Adopt).await.unwrap();
    assert_eq!(report.adopted, 1);
    assert_eq!(report.released, vec![attachment("b")]);
    assert_eq!(report.failures, 0);
    assert_eq!(node.attached_ids(), vec![1]);
    assert_eq!(node.network.routes(), routes_of(&a));
    assert_eq!(node.manager.ipam().get(&attachment("b")).unwrap(), None);
}

#[tokio::test]
async fn a_sweep_releases_allocations_whose_netns_is_gone_and_keeps_young_ones() {
    let mut node = node();
    let live = AllocateRequest {
        attachment: attachment("live"),
        netns: node.dir.path().to_str().unwrap().to_string(),
    };
    let gone = AllocateRequest {
        attachment: attachment("gone"),
        netns: "/nonexistent/netns".to_string(),
    };
    node.manager.allocate(&live).unwrap();
    node.manager.allocate(&gone).unwrap();
    let a = node.prepare("a", 10);
    node.manager.create(a).await.unwrap();
    let before = node.datapath.0.lock().unwrap().attach_calls;
    let report = node.manager.reconcile(Reconcile::Sweep).await.unwrap();
    assert_eq!(report.released, vec![attachment("gone")]);
    assert_eq!(report.adopted, 0);
    assert_eq!(
        node.datapath.0.lock().unwrap().attach_calls,
        before,
        "a sweep does not re-attach"
    );
    assert!(
        node.manager
            .ipam()
            .get(&attachment("live"))
            .unwrap()
            .is_some()
    );
}
