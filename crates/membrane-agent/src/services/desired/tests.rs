use super::*;
use crate::services::model::{FrontendKind, Protocol};
use membrane_common::lb::service_flags as F;
use proptest::prelude::*;
use serde_json::{Value, json};

fn service(value: Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn slice(value: Value) -> EndpointSlice {
    serde_json::from_value(value).unwrap()
}

fn pod(value: Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

fn node() -> NodeContext {
    NodeContext {
        name: "node-a".into(),
        ipv4: Some("192.168.1.10".parse().unwrap()),
        ipv6: Some("fd00:1::10".parse().unwrap()),
        local_endpoints: BTreeSet::new(),
    }
}

fn policy() -> Policy {
    Policy {
        node_ports: 30000..=32767,
        algorithm: LbAlgorithm::Random,
    }
}

fn fe(text: &str, proto: Protocol) -> FrontendAddr {
    let socket: std::net::SocketAddr = text.parse().unwrap();
    FrontendAddr {
        addr: socket.ip(),
        port: socket.port(),
        proto,
    }
}

fn be(text: &str, proto: Protocol) -> BackendAddr {
    let socket: std::net::SocketAddr = text.parse().unwrap();
    BackendAddr {
        addr: socket.ip(),
        port: socket.port(),
        proto,
    }
}

fn compute_for(services: &[Service], slices: &[EndpointSlice], pods: &[Pod]) -> DesiredState {
    let objects = Objects {
        services: services.iter().collect(),
        slices: slices.iter().collect(),
        pods: pods.iter().collect(),
    };
    compute(&objects, &node(), &policy())
}

/// A dual-stack Service `web` with a TCP port `http` (80 → named target `web`) and a
/// UDP port `dns` (53), merged with `extra` at the top level of its spec.
fn web(extra: Value) -> Service {
    let mut spec = json!({
        "clusterIPs": ["10.96.0.10", "fd00:96::10"],
        "ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "dns", "port": 53, "protocol": "UDP"}
        ]
    });
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    service(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": spec
    }))
}

/// The slices of `web`: two IPv4 pods (one on this node) and one IPv6 pod on this node.
fn web_slices() -> Vec<EndpointSlice> {
    let ports =
        json!([{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]);
    vec![
        slice(json!({
            "addressType": "IPv4",
            "metadata": {"name": "web-v4", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "ports": ports,
            "endpoints": [
                {"addresses": ["10.200.1.5"], "nodeName": "node-a"},
                {"addresses": ["10.200.2.5"], "nodeName": "node-b"}
            ]
        })),
        slice(json!({
            "addressType": "IPv6",
            "metadata": {"name": "web-v6", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "ports": ports,
            "endpoints": [{"addresses": ["fd00:200:1::5"], "nodeName": "node-a"}]
        })),
    ]
}

#[test]
fn every_cluster_ip_and_port_is_a_frontend_with_the_backends_of_its_family() {
    let state = compute_for(&[web(json!({}))], &web_slices(), &[]);
    let tcp = Protocol::Tcp;
    let udp = Protocol::Udp;
    let v4 = &state.frontends[&fe("10.96.0.10:80", tcp)];
    assert_eq!(v4.kind, FrontendKind::ClusterIp);
    assert_eq!(v4.flags, 0);
    assert_eq!(
        v4.backends.active,
        [be("10.200.1.5:8080", tcp), be("10.200.2.5:8080", tcp)]
    );
    assert_eq!(
        state.frontends[&fe("[fd00:96::10]:80", tcp)]
            .backends
            .active,
        [be("[fd00:200:1::5]:8080", tcp)]
    );
    assert_eq!(
        state.frontends[&fe("10.96.0.10:53", udp)].backends.active,
        [be("10.200.1.5:5353", udp), be("10.200.2.5:5353", udp)]
    );
    assert_eq!(state.frontends.len(), 4);
    assert_eq!(state.backends.len(), 6);
    assert!(state.backends[&be("10.200.1.5:8080", tcp)].local);
    assert!(!state.backends[&be("10.200.2.5:8080", tcp)].local);
    assert!(state.skipped.is_empty(), "{:?}", state.skipped);
}

#[test]
fn node_ports_are_wildcard_frontends_per_family_and_must_lie_in_the_range() {
    let svc = web(json!({
        "type": "NodePort",
        "ports": [
            {"name": "http", "port": 80, "nodePort": 30080},
            {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 20053}
        ]
    }));
    let state = compute_for(&[svc], &web_slices(), &[]);
    let v4 = &state.frontends[&fe("0.0.0.0:30080", Protocol::Tcp)];
    assert_eq!(v4.kind, FrontendKind::NodePort);
    assert_eq!(v4.flags, F::NODEPORT | F::EXTERNAL);
    assert_eq!(v4.backends.active.len(), 2);
    assert!(
        state
            .frontends
            .contains_key(&fe("[::]:30080", Protocol::Tcp))
    );
    assert!(
        !state
            .frontends
            .contains_key(&fe("0.0.0.0:20053", Protocol::Udp))
    );
    assert_eq!(state.skipped.len(), 1);
    assert!(
        state.skipped[0].reason.contains("20053"),
        "{:?}",
        state.skipped
    );
    let unallocated = web(json!({"type": "NodePort", "ports": [{"name": "http", "port": 80}]}));
    let state = compute_for(&[unallocated], &web_slices(), &[]);
    assert_eq!(state.frontends.len(), 2, "the cluster IPs only");
    assert!(
        state.skipped[0].reason.contains("without nodePort"),
        "{:?}",
        state.skipped
    );
}

#[test]
fn load_balancer_ingress_and_external_ips_are_external_frontends() {
    let mut svc = web(json!({
        "type": "LoadBalancer",
        "externalIPs": ["203.0.113.7"],
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}]
    }));
    svc.status = serde_json::from_value(json!({
        "loadBalancer": {"ingress": [{"ip": "198.51.100.1"}, {"ip": "2001:db8::1"}, {"hostname": "lb.example"}]}
    }))
    .unwrap();
    let state = compute_for(&[svc], &web_slices(), &[]);
    let lb = &state.frontends[&fe("198.51.100.1:80", Protocol::Tcp)];
    assert_eq!(lb.kind, FrontendKind::LoadBalancer);
    assert_eq!(lb.flags, F::EXTERNAL);
    assert_eq!(lb.backends.active.len(), 2);
    assert_eq!(
        state.frontends[&fe("[2001:db8::1]:80", Protocol::Tcp)]
            .backends
            .active
            .len(),
        1
    );
    let external = &state.frontends[&fe("203.0.113.7:80", Protocol::Tcp)];
    assert_eq!(external.kind, FrontendKind::ExternalIp);
    assert!(
        state
            .frontends
            .contains_key(&fe("0.0.0.0:30080", Protocol::Tcp))
    );
    assert!(
        state
            .skipped
            .iter()
            .any(|s| s.reason.contains("lb.example")),
        "a hostname ingress is reported: {:?}",
        state.skipped
    );
}

#[test]
fn client_ip_affinity_uses_the_configured_timeout_or_kubernetes_default() {
    let default = web(json!({"sessionAffinity": "ClientIP"}));
    let state = compute_for(&[default], &web_slices(), &[]);
    let frontend = &state.frontends[&fe("10.96.0.10:80", Protocol::Tcp)];
    assert_eq!(frontend.flags, F::AFFINITY);
    assert_eq!(frontend.affinity_timeout_s, 10800);
    let configured = web(json!({
        "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}
    }));
    let state = compute_for(&[configured], &web_slices(), &[]);
    assert_eq!(
        state.frontends[&fe("10.96.0.10:80", Protocol::Tcp)].affinity_timeout_s,
        60
    );
}

#[test]
fn external_traffic_policy_local_lists_only_local_backends_outside_and_all_inside() {
    let svc = web(json!({
        "type": "NodePort",
        "externalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}]
    }));
    let state = compute_for(&[svc], &web_slices(), &[]);
    let node_port = &state.frontends[&fe("0.0.0.0:30080", Protocol::Tcp)];
    assert_eq!(node_port.flags, F::NODEPORT | F::EXTERNAL | F::TWO_SCOPES);
    assert_eq!(
        node_port.backends.active,
        [be("10.200.1.5:8080", Protocol::Tcp)]
    );
    assert_eq!(node_port.internal.as_ref().unwrap().active.len(), 2);
    let cluster_ip = &state.frontends[&fe("10.96.0.10:80", Protocol::Tcp)];
    assert_eq!(
        cluster_ip.backends.active.len(),
        2,
        "cluster IPs ignore eTP"
    );
    assert_eq!(cluster_ip.internal, None);
}

#[test]
fn internal_traffic_policy_local_restricts_cluster_ips_and_the_inside_scope() {
    let svc = web(json!({
        "type": "NodePort",
        "internalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}]
    }));
    let state = compute_for(&[svc], &web_slices(), &[]);
    let local = vec![be("10.200.1.5:8080", Protocol::Tcp)];
    let cluster_ip = &state.frontends[&fe("10.96.0.10:80", Protocol::Tcp)];
    assert_eq!(cluster_ip.backends.active, local);
    assert_eq!(cluster_ip.flags & F::TWO_SCOPES, 0);
    let node_port = &state.frontends[&fe("0.0.0.0:30080", Protocol::Tcp)];
    assert_eq!(node_port.backends.active.len(), 2, "outside: all backends");
    assert_eq!(node_port.internal.as_ref().unwrap().active, local);
    assert_ne!(node_port.flags & F::TWO_SCOPES, 0);
    let both = web(json!({
        "type": "NodePort",
        "internalTrafficPolicy": "Local",
        "externalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}]
    }));
    let state = compute_for(&[both], &web_slices(), &[]);
    let node_port = &state.frontends[&fe("0.0.0.0:30080", Protocol::Tcp)];
    assert_eq!(node_port.backends.active, local);
    assert_eq!(node_port.internal, None, "equal policies need one scope");
}

fn annotated(algorithm: &str) -> Service {
    let mut svc = web(json!({}));
    svc.metadata.annotations = Some(
        [(
            "service.cilium.io/lb-algorithm".to_string(),
            algorithm.to_string(),
        )]
        .into(),
    );
    svc
}

fn cluster_ip_flags(svc: &Service, algorithm: LbAlgorithm) -> u16 {
    let objects = Objects {
        services: vec![svc],
        ..Default::default()
    };
    let policy = Policy {
        algorithm,
        ..policy()
    };
    compute(&objects, &node(), &policy).frontends[&fe("10.96.0.10:80", Protocol::Tcp)].flags
}

#[test]
fn maglev_comes_from_ciliums_annotation_or_the_default() {
    let random = LbAlgorithm::Random;
    let maglev = LbAlgorithm::Maglev;
    assert_eq!(cluster_ip_flags(&annotated("maglev"), random), F::MAGLEV);
    assert_eq!(cluster_ip_flags(&annotated("random"), maglev), 0);
    assert_eq!(cluster_ip_flags(&web(json!({})), maglev), F::MAGLEV);
    assert_eq!(cluster_ip_flags(&web(json!({})), random), 0);
    let unknown = annotated("round-robin");
    assert_eq!(cluster_ip_flags(&unknown, maglev), F::MAGLEV, "the default");
    let state = compute_for(&[unknown], &[], &[]);
    assert!(
        state.skipped[0].reason.contains("round-robin"),
        "{:?}",
        state.skipped
    );
}

#[test]
fn a_frontend_claimed_twice_stays_with_the_first_service() {
    let first = web(json!({"externalIPs": ["203.0.113.7"]}));
    let mut second = web(json!({"clusterIPs": ["10.96.0.11"], "externalIPs": ["203.0.113.7"]}));
    second.metadata.name = Some("zeta".into());
    let state = compute_for(&[second, first], &web_slices(), &[]);
    let owner = &state.frontends[&fe("203.0.113.7:80", Protocol::Tcp)].owner;
    assert_eq!(owner.name, "web");
    assert!(
        state
            .skipped
            .iter()
            .any(|s| s.owner.name == "zeta" && s.reason.contains("Service shop/web")),
        "{:?}",
        state.skipped
    );
    assert!(
        state
            .frontends
            .contains_key(&fe("10.96.0.11:80", Protocol::Tcp))
    );
}

#[test]
fn headless_and_external_name_services_have_no_frontends() {
    let headless = web(json!({"clusterIP": "None", "clusterIPs": ["None"]}));
    let mut external = service(json!({
        "metadata": {"name": "ext", "namespace": "shop"},
        "spec": {"type": "ExternalName", "externalName": "example.com"}
    }));
    external.metadata.namespace = Some("shop".into());
    let state = compute_for(&[headless, external], &web_slices(), &[]);
    assert!(state.frontends.is_empty(), "{:?}", state.frontends);
    assert!(state.backends.is_empty());
}

#[test]
fn a_service_without_ready_endpoints_still_gets_its_frontend() {
    let state = compute_for(&[web(json!({}))], &[], &[]);
    let frontend = &state.frontends[&fe("10.96.0.10:80", Protocol::Tcp)];
    assert!(frontend.backends.active.is_empty());
    assert!(state.backends.is_empty());
}

#[test]
fn slices_of_another_namespace_or_service_are_ignored() {
    let mut slices = web_slices();
    slices[0].metadata.namespace = Some("other".into());
    slices[1]
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("kubernetes.io/service-name".into(), "api".into());
    let state = compute_for(&[web(json!({}))], &slices, &[]);
    assert!(state.backends.is_empty(), "{:?}", state.backends);
}

fn host_port_pod(node_name: &str) -> Pod {
    pod(json!({
        "metadata": {"name": "dns", "namespace": "kube-system"},
        "spec": {
            "nodeName": node_name,
            "containers": [{
                "name": "dns",
                "ports": [
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
                    {"containerPort": 8080, "hostPort": 8081, "hostIP": "192.168.1.99"},
                    {"containerPort": 9153}
                ]
            }]
        },
        "status": {"podIP": "10.200.1.7", "podIPs": [{"ip": "10.200.1.7"}, {"ip": "fd00:200:1::7"}]}
    }))
}

#[test]
fn host_ports_of_pods_on_this_node_are_frontends_on_the_node_address() {
    let state = compute_for(
        &[],
        &[],
        &[host_port_pod("node-a"), host_port_pod("node-b")],
    );
    let v4 = &state.frontends[&fe("192.168.1.10:5353", Protocol::Udp)];
    assert_eq!(v4.kind, FrontendKind::HostPort);
    assert_eq!(v4.flags, F::EXTERNAL);
    assert_eq!(v4.backends.active, [be("10.200.1.7:53", Protocol::Udp)]);
    assert_eq!(
        state.frontends[&fe("[fd00:1::10]:5353", Protocol::Udp)]
            .backends
            .active,
        [be("[fd00:200:1::7]:53", Protocol::Udp)]
    );
    let pinned = &state.frontends[&fe("192.168.1.99:8081", Protocol::Tcp)];
    assert_eq!(
        pinned.backends.active,
        [be("10.200.1.7:8080", Protocol::Tcp)]
    );
    assert_eq!(
        state.frontends.len(),
        3,
        "the other node's pod adds nothing"
    );
    assert!(state.backends.values().all(|b| b.local));
}

#[test]
fn pods_that_finished_have_no_host_ports() {
    let mut done = host_port_pod("node-a");
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    assert!(compute_for(&[], &[], &[done]).frontends.is_empty());
}

/// A small random world: Services with cluster IPs of both families, some NodePort,
/// some with traffic policies, and slices with endpoints on this node or others.
fn world() -> impl Strategy<Value = (Vec<Service>, Vec<EndpointSlice>, BTreeSet<IpAddr>)> {
    let svc = (
        0u8..6,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    );
    let endpoint = (0u8..6, 0u8..8, any::<bool>(), any::<bool>(), any::<bool>());
    (
        proptest::collection::vec(svc, 0..6),
        proptest::collection::vec(endpoint, 0..24),
        proptest::collection::btree_set(0u8..8, 0..4),
    )
        .prop_map(|(svcs, endpoints, local)| {
            let mut services = BTreeMap::new();
            for (i, node_port, etp, itp, v6) in svcs {
                let family_ip = if v6 {
                    format!("fd00:96::{i}")
                } else {
                    format!("10.96.0.{i}")
                };
                let mut spec = json!({
                    "clusterIPs": [family_ip],
                    "ports": [{"name": "p", "port": 80}]
                });
                if node_port {
                    spec["type"] = json!("NodePort");
                    spec["ports"][0]["nodePort"] = json!(30000 + u16::from(i));
                }
                if etp {
                    spec["externalTrafficPolicy"] = json!("Local");
                }
                if itp {
                    spec["internalTrafficPolicy"] = json!("Local");
                }
                services.insert(
                    i,
                    service(json!({
                        "metadata": {"name": format!("s{i}"), "namespace": "ns"},
                        "spec": spec
                    })),
                );
            }
            let slices = endpoints
                .into_iter()
                .enumerate()
                .map(|(n, (svc, host, on_node, ready, v6))| {
                    let (kind, addr) = if v6 {
                        ("IPv6", format!("fd00:200::{host}"))
                    } else {
                        ("IPv4", format!("10.200.0.{host}"))
                    };
                    slice(json!({
                        "addressType": kind,
                        "metadata": {"name": format!("e{n}"), "namespace": "ns",
                                     "labels": {"kubernetes.io/service-name": format!("s{svc}")}},
                        "ports": [{"name": "p", "port": 8080}],
                        "endpoints": [{
                            "addresses": [addr],
                            "nodeName": if on_node { "node-a" } else { "node-b" },
                            "conditions": {"ready": ready, "serving": true, "terminating": !ready}
                        }]
                    }))
                })
                .collect();
            let local = local
                .into_iter()
                .map(|h| IpAddr::V4(Ipv4Addr::new(10, 200, 0, h)))
                .collect();
            (services.into_values().collect(), slices, local)
        })
}

proptest! {
    #[test]
    fn the_desired_state_is_consistent_and_independent_of_object_order(
        (services, slices, local) in world(),
        seed in any::<u64>(),
    ) {
        let node = NodeContext { local_endpoints: local, ..node() };
        let objects = Objects {
            services: services.iter().collect(),
            slices: slices.iter().collect(),
            pods: Vec::new(),
        };
        let state = compute(&objects, &node, &policy());

        // Shuffled input, same state.
        let mut shuffled = objects.clone();
        let n = shuffled.services.len().max(1);
        shuffled.services.rotate_left((seed as usize) % n);
        shuffled.slices.reverse();
        prop_assert_eq!(&compute(&shuffled, &node, &policy()), &state);

        let named: BTreeSet<BackendAddr> = state
            .frontends
            .values()
            .flat_map(|f| f.all_backends().copied())
            .collect();
        let known: BTreeSet<BackendAddr> = state.backends.keys().copied().collect();
        prop_assert_eq!(named, known, "exactly the named backends have a state");

        for (addr, frontend) in &state.frontends {
            for backend in frontend.all_backends() {
                prop_assert_eq!(backend.addr.is_ipv4(), addr.addr.is_ipv4());
            }
            for backend in &frontend.backends.active {
                prop_assert!(!state.backends[backend].terminating);
            }
            let two_scopes = frontend.flags & F::TWO_SCOPES != 0;
            prop_assert_eq!(two_scopes, frontend.internal.is_some());
            let svc = services.iter().find(|s| s.metadata.name.as_deref() == Some(frontend.owner.name.as_str())).unwrap();
            let spec = svc.spec.as_ref().unwrap();
            let local_only = if frontend.kind == FrontendKind::ClusterIp {
                spec.internal_traffic_policy.is_some()
            } else {
                spec.external_traffic_policy.is_some()
            };
            if local_only {
                for backend in frontend.backends.all() {
                    prop_assert!(state.backends[backend].local, "{} is not local", backend);
                }
            }
        }
    }
}
