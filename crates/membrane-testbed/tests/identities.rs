//! Security identities across two real agents on one real etcd: an identity is made of
//! the Pod's labels (less those the default rules drop), its Namespace's labels, the
//! namespace and the cluster name; a pod whose labels change moves to a new identity on
//! every node and in the datapath; the identity nobody uses any more is collected after
//! the grace period.
//!
//! Needs root, bpffs and Debian's etcd-server (`cargo xtask test` provides them).

use membrane_api::ApplyReport;
use membrane_state::{EtcdStore, Store, keys};
use membrane_testbed::cluster::{
    conntrack_source_identity, etcd_flags, ipcache_identity, pod_address, wait_until,
};
use membrane_testbed::workload::{self, DEFAULT_PORTS, wait_reachable};
use membrane_testbed::{Etcd, Node, Outside, Place as _, Pod};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long the nodes get to learn a change.
const CONVERGE: Duration = Duration::from_secs(15);

/// How long an unused identity is kept in this test.
const GRACE_SECS: &str = "2";

/// Applies `objects` through the node agent's objects API.
fn apply(node: &Node, objects: Vec<Value>) -> ApplyReport {
    node.agent().apply(objects).unwrap()
}

fn client_pod(app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "client",
            "namespace": "shop",
            "labels": {"app": app, "pod-template-hash": "5d8f7c"},
        },
        "spec": {"containers": [{"name": "client", "image": "client"}]},
    })
}

/// The labels etcd holds for identity `id` (read from inside the outside namespace,
/// where etcd listens), or `None` once it is gone.
fn stored_labels(outside: &Outside, etcd: &Etcd, id: u32) -> Option<BTreeSet<String>> {
    let endpoint = etcd.endpoint();
    outside
        .netns()
        .block_on(|| async move {
            let store = EtcdStore::connect(&[endpoint]).await.unwrap();
            let item = store.get(&keys::identity_id(id)).await.unwrap()?;
            Some(serde_json::from_slice(&item.value).unwrap())
        })
        .unwrap()
}

#[test]
fn a_pod_whose_labels_change_moves_to_a_new_identity_everywhere_and_the_old_one_is_collected() {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let endpoint = etcd.endpoint();
    let mut flags = etcd_flags(&endpoint, "tunnel");
    flags.extend([
        "--identity-gc-grace-secs",
        GRACE_SECS,
        "--cluster-name",
        "east",
    ]);
    let a = Node::start_with(&outside, 1, &flags).unwrap();
    let b = Node::start_with(&outside, 2, &flags).unwrap();
    let namespace = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "shop", "labels": {"team": "blue"}},
    });
    let report = apply(&a, vec![namespace, client_pod("one")]);
    assert_eq!(report.created.len(), 2, "{report:?}");
    let client = Pod::create(&a, "shop", "client").unwrap();
    let server = Pod::create(&b, "shop", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    let client_ip = pod_address(&client, false);
    let to_server = SocketAddr::new(pod_address(&server, false), DEFAULT_PORTS.tcp);
    wait_reachable(&client, to_server.ip(), CONVERGE);

    // The identity b learned for the client is made of every label source.
    let server_identity = ipcache_identity(&a, to_server.ip()).unwrap();
    let first = ipcache_identity(&b, client_ip).unwrap();
    assert_ne!(
        first, server_identity,
        "the client's Pod labels set it apart"
    );
    let labels = stored_labels(&outside, &etcd, first).expect("the identity is stored");
    for label in [
        "k8s:app=one",
        "k8s:io.kubernetes.pod.namespace=shop",
        "k8s:io.cilium.k8s.namespace.labels.team=blue",
        "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
        "k8s:io.cilium.k8s.policy.cluster=east",
    ] {
        assert!(labels.contains(label), "{label} missing from {labels:?}");
    }
    assert!(
        !labels.iter().any(|l| l.contains("pod-template-hash")),
        "pod-template-hash makes no identity: {labels:?}"
    );

    // The Pod is applied again with other labels: the client moves on both nodes and in
    // the datapath of the receiving one.
    apply(&a, vec![client_pod("two")]);
    let (second, took) = wait_until("b learning the client's new identity", CONVERGE, || {
        ipcache_identity(&b, client_ip).filter(|identity| *identity != first)
    });
    eprintln!("b learned the new identity {second} (was {first}) in {took:?}");
    let labels = stored_labels(&outside, &etcd, second).expect("the new identity is stored");
    assert!(labels.contains("k8s:app=two"), "{labels:?}");
    assert!(workload::tcp(&client, to_server, 3).unwrap().success);
    assert_eq!(
        conntrack_source_identity(&b, client_ip, to_server.ip(), 6),
        Some(second),
        "the receiving datapath sees the new identity"
    );

    // Nobody uses the first identity any more: it is collected after the grace period.
    let (_, took) = wait_until("the unused identity collected", CONVERGE, || {
        stored_labels(&outside, &etcd, first)
            .is_none()
            .then_some(())
    });
    eprintln!("identity {first} collected {took:?} after the move");
    assert!(
        stored_labels(&outside, &etcd, second).is_some(),
        "the used one stays"
    );
    assert!(stored_labels(&outside, &etcd, server_identity).is_some());
}
