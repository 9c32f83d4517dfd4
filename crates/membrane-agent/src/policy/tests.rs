//! Control-plane tests of the policy state over in-memory maps: what is written, that
//! only differences are written, the endpoint hook, adoption.

use super::maps::memory::MemoryMaps;
use super::state::{Adopted, ClusterView, Known, PolicyState, Settings};
use crate::endpoints::PolicyHook;
use membrane_api::{AttachmentRef, Endpoint, EndpointRegistration};
use membrane_policy::{Direction, EnforcementMode, Entry, EntryKey};
use std::collections::{BTreeMap, BTreeSet};

const DENY_ALL: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}]}]
"#;

const CIDR: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: out, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress: [{toCIDR: [192.0.2.0/24]}]
"#;

fn labels(app: &str) -> Vec<String> {
    vec![
        format!("k8s:app={app}"),
        "k8s:io.kubernetes.pod.namespace=shop".to_string(),
    ]
}

fn view(manifests: &str, identities: &[(u32, &str)]) -> ClusterView {
    ClusterView {
        policies: membrane_model::parse_manifests(manifests, "test").unwrap(),
        identities: identities
            .iter()
            .map(|(n, app)| (*n, labels(app)))
            .collect(),
        ..ClusterView::default()
    }
}

fn endpoint(id: u16, name: &str) -> Endpoint {
    Endpoint {
        id,
        registration: EndpointRegistration {
            attachment: AttachmentRef {
                container_id: format!("c{id}"),
                ifname: "eth0".to_string(),
            },
            netns: format!("/run/netns/{name}"),
            host_ifname: format!("veth{id}"),
            host_ifindex: u32::from(id) + 10,
            host_mac: "02:00:00:00:00:01".to_string(),
            pod_mac: "02:00:00:00:00:02".to_string(),
            ipv4: None,
            ipv6: None,
            pod_namespace: Some("shop".to_string()),
            pod_name: Some(name.to_string()),
        },
    }
}

fn web(view: &ClusterView) -> Known {
    PolicyState::<MemoryMaps>::known(view, &endpoint(1, "web-1"), 300, labels("web"))
}

fn state() -> (PolicyState<MemoryMaps>, MemoryMaps) {
    let maps = MemoryMaps::default();
    let settings = Settings {
        mode: EnforcementMode::Default,
        audit: false,
    };
    (
        PolicyState::new(settings, maps.clone(), Adopted::default()),
        maps,
    )
}

#[test]
fn a_pass_writes_the_compiled_entries_and_an_unchanged_pass_writes_nothing() {
    let (state, maps) = state();
    let cluster = view(DENY_ALL, &[(300, "web"), (301, "client")]);
    let (changed, failures) = state.reconcile(cluster.clone(), vec![web(&cluster)]);
    assert_eq!((changed, failures), (vec![1], 0));
    let written = maps.0.lock().unwrap().entries.clone();
    assert!(
        written
            .keys()
            .any(|(ep, k)| *ep == 1 && k.identity == 301 && k.port == 80),
        "{written:?}"
    );
    let operations = maps.0.lock().unwrap().operations;
    let (changed, _) = state.reconcile(cluster.clone(), vec![web(&cluster)]);
    assert!(changed.is_empty());
    assert_eq!(
        maps.0.lock().unwrap().operations,
        operations,
        "an unchanged pass wrote"
    );
}

#[test]
fn a_new_identity_adds_only_its_entries_and_deleting_the_policy_removes_them() {
    let (state, maps) = state();
    let cluster = view(DENY_ALL, &[(300, "web"), (301, "client")]);
    state.reconcile(cluster.clone(), vec![web(&cluster)]);
    let before = maps.0.lock().unwrap().operations;
    let mut grown = view(DENY_ALL, &[(300, "web"), (301, "client")]);
    grown.identities.insert(
        302,
        vec![
            "k8s:app=client".into(),
            "k8s:io.kubernetes.pod.namespace=shop".into(),
            "k8s:v=2".into(),
        ],
    );
    state.reconcile(grown.clone(), vec![web(&grown)]);
    let recorded = maps.0.lock().unwrap();
    assert_eq!(
        recorded.operations - before,
        1,
        "one entry for the new identity"
    );
    assert!(recorded.entries.keys().any(|(_, k)| k.identity == 302));
    drop(recorded);
    let empty = ClusterView {
        policies: Vec::new(),
        ..grown
    };
    let (changed, _) = state.reconcile(empty.clone(), vec![web(&empty)]);
    assert_eq!(changed, vec![1], "flags back to not enforced");
    assert!(maps.0.lock().unwrap().entries.is_empty());
}

#[test]
fn cidr_identities_are_programmed_while_used() {
    let (state, maps) = state();
    let cluster = view(CIDR, &[(300, "web")]);
    state.reconcile(cluster.clone(), vec![web(&cluster)]);
    let cidrs = maps.0.lock().unwrap().cidrs.clone();
    assert_eq!(cidrs.len(), 1);
    assert!(
        cidrs
            .values()
            .all(|id| *id >= membrane_policy::FIRST_CIDR_IDENTITY)
    );
    let gone = view("", &[(300, "web")]);
    state.reconcile(gone.clone(), vec![web(&gone)]);
    assert!(maps.0.lock().unwrap().cidrs.is_empty());
}

#[test]
fn the_hook_gives_a_new_endpoint_its_entries_and_flags_and_forgets_it() {
    let (state, maps) = state();
    let cluster = view(DENY_ALL, &[(300, "web"), (301, "client")]);
    state.reconcile(cluster, Vec::new());
    let labels: BTreeSet<String> = labels("web").into_iter().collect();
    let flags = state.prepare(&endpoint(7, "web-7"), 300, &labels);
    assert!(flags.ingress && !flags.egress);
    assert_eq!(state.enforcement(7), flags);
    assert!(
        maps.0
            .lock()
            .unwrap()
            .entries
            .keys()
            .any(|(ep, _)| *ep == 7)
    );
    state.forget(7);
    assert!(maps.0.lock().unwrap().entries.is_empty());
}

#[test]
fn before_the_first_pass_adopted_flags_and_entries_are_kept() {
    let maps = MemoryMaps::default();
    let key = EntryKey {
        direction: Direction::Ingress,
        proto: 6,
        identity: 301,
        port: 80,
        prefix_bits: 16,
    };
    let adopted = Adopted {
        entries: [(
            1,
            [(
                key,
                Entry {
                    deny: false,
                    rule_id: 5,
                },
            )]
            .into(),
        )]
        .into(),
        cidrs: BTreeMap::new(),
        flags: [(
            1,
            membrane_datapath::PolicyEnforcement {
                ingress: true,
                egress: false,
                audit: false,
            },
        )]
        .into(),
    };
    let state = PolicyState::new(Settings::default(), maps.clone(), adopted);
    let labels: BTreeSet<String> = labels("web").into_iter().collect();
    assert!(state.prepare(&endpoint(1, "web-1"), 300, &labels).ingress);
    assert_eq!(
        maps.0.lock().unwrap().operations,
        0,
        "nothing written before the caches are read"
    );
    // The first pass removes what no policy wants any more.
    let cluster = view("", &[(300, "web")]);
    state.reconcile(cluster.clone(), vec![web(&cluster)]);
    assert!(maps.0.lock().unwrap().entries.is_empty());
}

#[test]
fn a_pass_that_listed_the_endpoints_before_a_new_one_keeps_its_entries() {
    let (state, maps) = state();
    let cluster = view(DENY_ALL, &[(300, "web"), (301, "client")]);
    state.reconcile(cluster.clone(), Vec::new());
    let labels: BTreeSet<String> = labels("web").into_iter().collect();
    state.prepare(&endpoint(7, "web-7"), 300, &labels);
    // This pass's endpoint list was read before endpoint 7 existed.
    state.reconcile(cluster, Vec::new());
    assert!(
        maps.0
            .lock()
            .unwrap()
            .entries
            .keys()
            .any(|(ep, _)| *ep == 7)
    );
    assert!(state.enforcement(7).ingress);
}

const THREE_PORTS: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}, {port: 443}, {port: 8443}]}]
"#;

#[test]
fn a_full_map_applies_nothing_of_the_endpoints_new_policy_and_the_next_pass_does() {
    let (state, maps) = state();
    let first = view(DENY_ALL, &[(300, "web"), (301, "client")]);
    state.reconcile(first.clone(), vec![web(&first)]);
    let before = maps.0.lock().unwrap().entries.clone();
    // The new policy needs two more entries; the map takes one.
    let grown = view(THREE_PORTS, &[(300, "web"), (301, "client")]);
    maps.0.lock().unwrap().room = Some(1);
    let (changed, failures) = state.reconcile(grown.clone(), vec![web(&grown)]);
    assert_eq!((changed, failures), (Vec::new(), 1));
    assert_eq!(
        maps.0.lock().unwrap().entries,
        before,
        "nothing applied halfway"
    );
    let counters = state.counters();
    assert_eq!(counters.map_full.get(), 1);
    // Nothing changes, but the refused endpoint is written again once there is room.
    maps.0.lock().unwrap().room = None;
    let (_, failures) = state.reconcile(grown.clone(), vec![web(&grown)]);
    assert_eq!(failures, 0);
    let recorded = maps.0.lock().unwrap();
    assert!(
        recorded
            .entries
            .keys()
            .any(|(_, k)| k.port == 443 && k.identity == 301),
        "{:?}",
        recorded.entries
    );
    assert_eq!(counters.entries.get() as usize, recorded.entries.len());
}

#[test]
fn a_new_endpoint_through_the_hook_is_not_compiled_again_by_the_next_pass() {
    let (state, maps) = state();
    let cluster = view(DENY_ALL, &[(300, "web"), (301, "client")]);
    state.reconcile(cluster.clone(), Vec::new());
    let labels: BTreeSet<String> = labels("web").into_iter().collect();
    state.prepare(&endpoint(1, "web-1"), 300, &labels);
    let operations = maps.0.lock().unwrap().operations;
    let (changed, _) = state.reconcile(cluster.clone(), vec![web(&cluster)]);
    assert!(changed.is_empty(), "flags already written by the hook");
    assert_eq!(maps.0.lock().unwrap().operations, operations);
}
