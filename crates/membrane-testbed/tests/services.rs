//! Services through the real agent, datapath and CNI plugin: Service and EndpointSlice
//! objects applied through the agent's objects API, backends that are real pods running
//! the workload server, and traffic from a pod, from a process on the node (in the
//! node's cgroup, where the socket-level load balancer applies) and from outside to a
//! NodePort, on both families.
//!
//! Needs root, bpffs and cgroup v2 (`cargo xtask test` provides them).

use membrane_api::{ApplyReport, ServiceFrontend, paths};
use membrane_testbed::cluster::{etcd_flags, pod_address as address};
use membrane_testbed::pinned;
use membrane_testbed::report::ServersReport;
use membrane_testbed::workload::{self, DEFAULT_PORTS, Outcome, Server};
use membrane_testbed::{Etcd, Node, Outside, Place as _, Pod};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// The Service's cluster IPs.
const CLUSTER_V4: &str = "10.96.0.10";
const CLUSTER_V6: &str = "fd00:96::10";
/// The Service's ports: TCP `echo` (80, NodePort 30080) and UDP `dns` (53, NodePort
/// 30053), both to the workload server's ports through the slices.
const TCP_PORT: u16 = 80;
const UDP_PORT: u16 = 53;
const TCP_NODE_PORT: u16 = 30080;
const UDP_NODE_PORT: u16 = 30053;

/// How long the agent gets to program what was applied.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(15);
/// New connections per check: with two backends, all landing on one by chance has a
/// probability of 2^-19.
const CONNECTIONS: u32 = 20;

/// Applies `objects` through the node agent's objects API.
fn apply(node: &Node, objects: Vec<Value>) -> ApplyReport {
    node.agent().apply(objects).unwrap()
}

/// The frontends the agent reports.
fn frontends(node: &Node) -> Vec<ServiceFrontend> {
    node.agent().get(paths::SERVICES).unwrap()
}

/// Waits until the agent reports `address:port` programmed with exactly the active
/// backend addresses `active`.
fn wait_programmed(node: &Node, address: IpAddr, port: u16, active: &[IpAddr]) {
    let wanted: BTreeSet<IpAddr> = active.iter().copied().collect();
    let deadline = Instant::now() + PROGRAM_TIMEOUT;
    loop {
        let all = frontends(node);
        let found = all.iter().find(|f| f.address == address && f.port == port);
        if let Some(frontend) = found {
            let backends: BTreeSet<IpAddr> = frontend
                .backends
                .iter()
                .filter(|b| !b.terminating)
                .map(|b| b.address)
                .collect();
            if frontend.programmed && backends == wanted {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{address}:{port} not programmed with {wanted:?} within {PROGRAM_TIMEOUT:?}: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A dual-stack NodePort Service `shop/<name>` with a named TCP target port and a
/// numbered UDP one; `extra` is merged into its spec.
fn service(name: &str, cluster_ips: [&str; 2], extra: Value) -> Value {
    let mut spec = json!({
        "type": "NodePort",
        "clusterIP": cluster_ips[0],
        "clusterIPs": cluster_ips,
        "ipFamilies": ["IPv4", "IPv6"],
        "ipFamilyPolicy": "RequireDualStack",
        "ports": [
            {"name": "echo", "port": TCP_PORT, "targetPort": "echo", "protocol": "TCP", "nodePort": TCP_NODE_PORT},
            {"name": "dns", "port": UDP_PORT, "targetPort": DEFAULT_PORTS.udp, "protocol": "UDP", "nodePort": UDP_NODE_PORT}
        ]
    });
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec
    })
}

/// The EndpointSlices (one per family) of Service `shop/<service>` listing `pods` as
/// ready endpoints on `node`.
fn slices(service: &str, node: &Node, pods: &[&Pod]) -> Vec<Value> {
    [("IPv4", false), ("IPv6", true)]
        .into_iter()
        .map(|(family, v6)| {
            let endpoints: Vec<Value> = pods
                .iter()
                .map(|pod| {
                    json!({
                        "addresses": [address(pod, v6).to_string()],
                        "conditions": {"ready": true},
                        "nodeName": node.name()
                    })
                })
                .collect();
            json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": format!("{service}-{}", family.to_lowercase()),
                    "namespace": "shop",
                    "labels": {"kubernetes.io/service-name": service}
                },
                "addressType": family,
                "ports": [
                    {"name": "echo", "port": DEFAULT_PORTS.tcp, "protocol": "TCP"},
                    {"name": "dns", "port": DEFAULT_PORTS.udp, "protocol": "UDP"}
                ],
                "endpoints": endpoints
            })
        })
        .collect()
}

fn cluster_ip(v6: bool) -> IpAddr {
    if v6 { CLUSTER_V6 } else { CLUSTER_V4 }.parse().unwrap()
}

fn node_address(node: &Node, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(node.ipv6())
    } else {
        IpAddr::V4(node.ipv4())
    }
}

/// Two backend pods serving on the default ports, and a client pod.
struct Pods<'n> {
    backends: [Pod<'n>; 2],
    client: Pod<'n>,
    _servers: Vec<Server>,
}

impl<'n> Pods<'n> {
    fn start(node: &'n Node) -> Pods<'n> {
        let backends = [
            Pod::create(node, "shop", "web-a").unwrap(),
            Pod::create(node, "shop", "web-b").unwrap(),
        ];
        let servers = backends
            .iter()
            .map(|pod| workload::serve(pod, DEFAULT_PORTS).unwrap())
            .collect();
        Pods {
            backends,
            client: Pod::create(node, "shop", "client").unwrap(),
            _servers: servers,
        }
    }

    fn backend_refs(&self) -> Vec<&Pod<'n>> {
        self.backends.iter().collect()
    }

    /// The backends' addresses of one family.
    fn addresses(&self, v6: bool) -> Vec<IpAddr> {
        self.backends.iter().map(|p| address(p, v6)).collect()
    }
}

/// Applies the Service `web` (with `extra` in its spec) and its slices, and waits until
/// both cluster IPs are programmed with both backends.
fn web_service(node: &Node, pods: &Pods<'_>, extra: Value) {
    let mut objects = vec![service("web", [CLUSTER_V4, CLUSTER_V6], extra)];
    objects.extend(slices("web", node, &pods.backend_refs()));
    apply(node, objects);
    for v6 in [false, true] {
        wait_programmed(node, cluster_ip(v6), TCP_PORT, &pods.addresses(v6));
    }
}

/// The server addresses that answered, asserting every connection got an answer.
fn answered(what: &str, outcome: &Outcome<ServersReport>) -> BTreeSet<IpAddr> {
    assert!(
        outcome.success && outcome.report.failed == 0,
        "{what}: {outcome:?}"
    );
    outcome.report.servers.keys().map(SocketAddr::ip).collect()
}

/// Asserts that `CONNECTIONS` new TCP connections and UDP exchanges from `place` to
/// `tcp`/`udp` were all answered, and by both backends (addresses `backends`).
fn reaches_both_backends(
    place: &(impl membrane_testbed::Place + ?Sized),
    tcp: SocketAddr,
    udp: SocketAddr,
    backends: &[IpAddr],
) {
    let wanted: BTreeSet<IpAddr> = backends.iter().copied().collect();
    let over_tcp = workload::servers(place, false, tcp, CONNECTIONS).unwrap();
    assert_eq!(answered(&format!("tcp to {tcp}"), &over_tcp), wanted);
    assert!(
        over_tcp
            .report
            .servers
            .keys()
            .all(|s| s.port() == DEFAULT_PORTS.tcp),
        "the named target port resolves to the backends' TCP port: {over_tcp:?}"
    );
    let over_udp = workload::servers(place, true, udp, CONNECTIONS).unwrap();
    assert_eq!(answered(&format!("udp to {udp}"), &over_udp), wanted);
}

#[test]
fn a_pod_reaches_a_cluster_ip_over_tcp_and_udp_and_backends_see_the_pod() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pods = Pods::start(&node);
    web_service(&node, &pods, json!({}));
    for v6 in [false, true] {
        let vip = cluster_ip(v6);
        reaches_both_backends(
            &pods.client,
            SocketAddr::new(vip, TCP_PORT),
            SocketAddr::new(vip, UDP_PORT),
            &pods.addresses(v6),
        );
        let client = address(&pods.client, v6);
        let tcp = workload::whoami_tcp(&pods.client, SocketAddr::new(vip, TCP_PORT)).unwrap();
        assert_eq!(tcp.report.peer.ip(), client, "{tcp:?}");
        let udp = workload::whoami_udp(&pods.client, SocketAddr::new(vip, UDP_PORT)).unwrap();
        assert_eq!(udp.report.peer.ip(), client, "{udp:?}");
    }
}

#[test]
fn without_socket_lb_a_pod_reaches_a_cluster_ip_through_per_packet_translation() {
    let outside = Outside::create().unwrap();
    let node = Node::start_with(&outside, 1, &["--socket-lb=false"]).unwrap();
    let pods = Pods::start(&node);
    web_service(&node, &pods, json!({}));
    for v6 in [false, true] {
        let vip = cluster_ip(v6);
        reaches_both_backends(
            &pods.client,
            SocketAddr::new(vip, TCP_PORT),
            SocketAddr::new(vip, UDP_PORT),
            &pods.addresses(v6),
        );
        let client = address(&pods.client, v6);
        let tcp = workload::whoami_tcp(&pods.client, SocketAddr::new(vip, TCP_PORT)).unwrap();
        assert_eq!(
            tcp.report.peer.ip(),
            client,
            "only the destination is translated"
        );
    }
}

#[test]
fn a_process_in_the_node_cgroup_reaches_a_cluster_ip() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pods = Pods::start(&node);
    web_service(&node, &pods, json!({}));
    for v6 in [false, true] {
        let vip = cluster_ip(v6);
        // The node place runs the workload in the node's namespace and cgroup.
        reaches_both_backends(
            &node,
            SocketAddr::new(vip, TCP_PORT),
            SocketAddr::new(vip, UDP_PORT),
            &pods.addresses(v6),
        );
    }
}

#[test]
fn the_outside_reaches_a_node_port_on_the_node_address() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pods = Pods::start(&node);
    web_service(&node, &pods, json!({}));
    for v6 in [false, true] {
        let unspecified = if v6 { "::" } else { "0.0.0.0" }.parse().unwrap();
        wait_programmed(&node, unspecified, TCP_NODE_PORT, &pods.addresses(v6));
        let at = node_address(&node, v6);
        reaches_both_backends(
            &outside,
            SocketAddr::new(at, TCP_NODE_PORT),
            SocketAddr::new(at, UDP_NODE_PORT),
            &pods.addresses(v6),
        );
    }
}

#[test]
fn a_service_without_ready_backends_refuses_at_once_and_counts_the_drop() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let client = Pod::create(&node, "shop", "client").unwrap();
    let not_ready = Pod::create(&node, "shop", "web-a").unwrap();
    let _server = workload::serve(&not_ready, DEFAULT_PORTS).unwrap();
    let mut objects = vec![service("empty", ["10.96.0.20", "fd00:96::20"], json!({}))];
    for mut slice in slices("empty", &node, &[&not_ready]) {
        slice["endpoints"][0]["conditions"]["ready"] = json!(false);
        objects.push(slice);
    }
    apply(&node, objects);
    let refused = || {
        pinned::counters(node.pin_dir().path())
            .unwrap()
            .iter()
            .filter(|c| c.reason == "service_without_backend")
            .map(|c| c.packets)
            .sum::<u64>()
    };
    // From a pod the socket hooks refuse the ClusterIP at connect; from outside the
    // uplink's program answers the NodePort's first packet with an ICMP port unreachable.
    for v6 in [false, true] {
        let vip: IpAddr = if v6 { "fd00:96::20" } else { "10.96.0.20" }
            .parse()
            .unwrap();
        wait_programmed(&node, vip, TCP_PORT, &[]);
        let on_node = node_address(&node, v6);
        let targets: [(&dyn membrane_testbed::Place, IpAddr, u16, u16); 2] = [
            (&client, vip, TCP_PORT, UDP_PORT),
            (&outside, on_node, TCP_NODE_PORT, UDP_NODE_PORT),
        ];
        for (place, address, tcp_port, udp_port) in targets {
            let before = refused();
            let started = Instant::now();
            let tcp = workload::tcp(place, SocketAddr::new(address, tcp_port), 1).unwrap();
            let took = started.elapsed();
            assert!(!tcp.success && tcp.report.failed == 1, "{tcp:?}");
            let error = tcp.report.first_error.clone().unwrap_or_default();
            assert!(
                error.contains("refused"),
                "{address}:{tcp_port} refused, not timed out: {error}"
            );
            assert!(
                took < workload::OP_TIMEOUT,
                "the refusal took {took:?}: {error}"
            );
            let udp = workload::udp(place, SocketAddr::new(address, udp_port), 1).unwrap();
            assert!(!udp.success, "{udp:?}");
            let error = udp.report.first_error.clone().unwrap_or_default();
            assert!(
                error.contains("refused"),
                "{address}:{udp_port} refused, not timed out: {error}"
            );
            assert!(
                refused() >= before + 2,
                "each refusal is counted as service_without_backend"
            );
        }
    }
}

#[test]
fn client_ip_affinity_keeps_every_connection_of_a_pod_on_one_backend() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pods = Pods::start(&node);
    web_service(
        &node,
        &pods,
        json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}}}),
    );
    let web = frontends(&node)
        .into_iter()
        .find(|f| f.address == cluster_ip(false) && f.port == TCP_PORT)
        .unwrap();
    assert_eq!(web.affinity_timeout_secs, Some(300));
    for v6 in [false, true] {
        let target = SocketAddr::new(cluster_ip(v6), TCP_PORT);
        let outcome = workload::servers(&pods.client, false, target, CONNECTIONS).unwrap();
        let servers = answered(&format!("tcp to {target}"), &outcome);
        assert_eq!(
            servers.len(),
            1,
            "every connection on one backend: {outcome:?}"
        );
        assert_eq!(
            outcome.report.servers.values().sum::<u64>(),
            u64::from(CONNECTIONS)
        );
    }
}

#[test]
fn a_backend_removed_from_the_slices_gets_no_new_connections_and_old_ones_go_on() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pods = Pods::start(&node);
    web_service(&node, &pods, json!({}));
    let streams: Vec<_> = [false, true]
        .into_iter()
        .map(|v6| {
            let target = SocketAddr::new(cluster_ip(v6), TCP_PORT);
            workload::spawn_stream(
                &pods.client,
                target,
                Duration::from_secs(6),
                Duration::from_millis(100),
            )
            .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    // Mid-traffic, the EndpointSlices drop web-b.
    let report = apply(&node, slices("web", &node, &[&pods.backends[0]]));
    assert_eq!(report.configured.len(), 2, "{report:?}");
    for v6 in [false, true] {
        let kept = vec![address(&pods.backends[0], v6)];
        wait_programmed(&node, cluster_ip(v6), TCP_PORT, &kept);
        let target = SocketAddr::new(cluster_ip(v6), TCP_PORT);
        let outcome = workload::servers(&pods.client, false, target, CONNECTIONS).unwrap();
        assert_eq!(
            answered(&format!("tcp to {target}"), &outcome),
            kept.into_iter().collect(),
            "new connections go to the remaining backend"
        );
    }
    for stream in streams {
        let report = stream
            .finish::<membrane_testbed::report::StreamReport>(workload::stream_timeout(
                Duration::from_secs(6),
            ))
            .unwrap();
        assert!(
            report.success && !report.report.broke,
            "a connection made before the removal goes on: {report:?}"
        );
    }
}

/// The numbers the agent gave each frontend and backend: (frontend, reverse-NAT index,
/// backend ids).
fn numbers(node: &Node) -> Vec<(SocketAddr, Option<u32>, Vec<Option<u32>>)> {
    frontends(node)
        .into_iter()
        .map(|f| {
            (
                SocketAddr::new(f.address, f.port),
                f.rev_nat_index,
                f.backends.iter().map(|b| b.id).collect(),
            )
        })
        .collect()
}

#[test]
fn a_crashed_agent_restarts_with_every_number_and_node_port_connections_go_on() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pods = Pods::start(&node);
    web_service(&node, &pods, json!({}));
    for v6 in [false, true] {
        let unspecified = if v6 { "::" } else { "0.0.0.0" }.parse().unwrap();
        wait_programmed(&node, unspecified, TCP_NODE_PORT, &pods.addresses(v6));
    }
    let before = numbers(&node);
    assert!(
        before.iter().all(|(_, index, _)| index.is_some()),
        "{before:?}"
    );
    // Connections translated per packet (from outside): their replies are translated
    // back through the frontend's reverse-NAT index, so it must not change.
    let lasting = Duration::from_secs(6);
    let streams: Vec<_> = [false, true]
        .into_iter()
        .map(|v6| {
            let target = SocketAddr::new(node_address(&node, v6), TCP_NODE_PORT);
            workload::spawn_stream(&outside, target, lasting, Duration::from_millis(100)).unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    node.crash_and_restart_agent().unwrap();
    let deadline = Instant::now() + PROGRAM_TIMEOUT;
    while !frontends(&node).iter().all(|f| f.programmed) || frontends(&node).is_empty() {
        assert!(
            Instant::now() < deadline,
            "not programmed again: {:#?}",
            frontends(&node)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(numbers(&node), before, "the restarted agent renumbered");
    for stream in streams {
        let report = stream
            .finish::<membrane_testbed::report::StreamReport>(workload::stream_timeout(lasting))
            .unwrap();
        assert!(
            report.success && !report.report.broke,
            "a NodePort connection survives the agent's restart: {report:?}"
        );
    }
    for v6 in [false, true] {
        let vip = cluster_ip(v6);
        reaches_both_backends(
            &pods.client,
            SocketAddr::new(vip, TCP_PORT),
            SocketAddr::new(vip, UDP_PORT),
            &pods.addresses(v6),
        );
    }
}

#[test]
fn a_service_with_a_backend_on_each_of_two_nodes_is_reached_from_a_pod_the_node_and_outside() {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let endpoint = etcd.endpoint();
    let flags = etcd_flags(&endpoint, "tunnel");
    let a = Node::start_with(&outside, 1, &flags).unwrap();
    let b = Node::start_with(&outside, 2, &flags).unwrap();
    let local = Pod::create(&a, "shop", "web-a").unwrap();
    let remote = Pod::create(&b, "shop", "web-b").unwrap();
    let client = Pod::create(&a, "shop", "client").unwrap();
    let _servers = [
        workload::serve(&local, DEFAULT_PORTS).unwrap(),
        workload::serve(&remote, DEFAULT_PORTS).unwrap(),
    ];
    let mut objects = vec![service("web", [CLUSTER_V4, CLUSTER_V6], json!({}))];
    // One slice per node and family, as the EndpointSlice controller may split them.
    for (node, pod) in [(&a, &local), (&b, &remote)] {
        for mut slice in slices("web", node, &[pod]) {
            let name = format!(
                "{}-{}",
                slice["metadata"]["name"].as_str().unwrap(),
                node.name()
            );
            slice["metadata"]["name"] = json!(name);
            objects.push(slice);
        }
    }
    // Applied on node b, programmed on node a: the objects travel through etcd.
    apply(&b, objects);
    for v6 in [false, true] {
        let backends = [address(&local, v6), address(&remote, v6)];
        wait_programmed(&a, cluster_ip(v6), TCP_PORT, &backends);
        workload::wait_reachable(&client, address(&remote, v6), PROGRAM_TIMEOUT);
        let vip = cluster_ip(v6);
        // A pod (socket LB), a process on the node (socket LB in the node's cgroup), and
        // the outside world through node a's NodePort (per packet; the remote backend's
        // connections source-NATed to node a so their replies come back through it).
        reaches_both_backends(
            &client,
            SocketAddr::new(vip, TCP_PORT),
            SocketAddr::new(vip, UDP_PORT),
            &backends,
        );
        reaches_both_backends(
            &a,
            SocketAddr::new(vip, TCP_PORT),
            SocketAddr::new(vip, UDP_PORT),
            &backends,
        );
        let at = node_address(&a, v6);
        reaches_both_backends(
            &outside,
            SocketAddr::new(at, TCP_NODE_PORT),
            SocketAddr::new(at, UDP_NODE_PORT),
            &backends,
        );
    }
}

/// Makes `outside` route `addresses` to `node`, as a router announcing LoadBalancer and
/// external IPs (BGP, L2 announcements) would: they live on no interface.
fn route_to_node(outside: &Outside, node: &Node, addresses: &[IpAddr]) {
    let routes: Vec<(ipnet::IpNet, IpAddr)> = addresses
        .iter()
        .map(|a| (ipnet::IpNet::from(*a), node_address(node, a.is_ipv6())))
        .collect();
    membrane_testbed::netlink::run_in(outside.netns(), |handle| async move {
        for (prefix, via) in routes {
            membrane_testbed::netlink::add_route(&handle, prefix, via).await?;
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn load_balancer_ips_external_ips_and_host_ports_are_reached_from_outside() {
    // Outside the test bed's world (198.51.100.10, 2001:db8::10) and its node networks.
    const LB: [&str; 2] = ["192.0.2.10", "2001:db8:1::10"];
    const EXTERNAL: [&str; 2] = ["192.0.2.20", "2001:db8:1::20"];
    const HOST_PORT: u16 = 8081;
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pods = Pods::start(&node);
    let addresses: Vec<IpAddr> = LB
        .iter()
        .chain(&EXTERNAL)
        .map(|a| a.parse().unwrap())
        .collect();
    route_to_node(&outside, &node, &addresses);
    let mut web = service(
        "web",
        [CLUSTER_V4, CLUSTER_V6],
        json!({"type": "LoadBalancer", "externalIPs": EXTERNAL}),
    );
    web["status"] = json!({"loadBalancer": {"ingress": [{"ip": LB[0]}, {"ip": LB[1]}]}});
    let mut objects = vec![web];
    objects.extend(slices("web", &node, &pods.backend_refs()));
    // The first backend's Pod object asks for a hostPort on its node.
    let hosted = &pods.backends[0];
    objects.push(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-a", "namespace": "shop"},
        "spec": {
            "nodeName": node.name(),
            "containers": [{
                "name": "web",
                "image": "membrane-workload",
                "ports": [{"containerPort": DEFAULT_PORTS.tcp, "hostPort": HOST_PORT, "protocol": "TCP"}]
            }]
        },
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": address(hosted, false).to_string()}, {"ip": address(hosted, true).to_string()}]
        }
    }));
    apply(&node, objects);
    for v6 in [false, true] {
        let family = usize::from(v6);
        for frontend in [LB[family], EXTERNAL[family]] {
            let at: IpAddr = frontend.parse().unwrap();
            wait_programmed(&node, at, TCP_PORT, &pods.addresses(v6));
            reaches_both_backends(
                &outside,
                SocketAddr::new(at, TCP_PORT),
                SocketAddr::new(at, UDP_PORT),
                &pods.addresses(v6),
            );
        }
        let on_node = node_address(&node, v6);
        wait_programmed(&node, on_node, HOST_PORT, &[address(hosted, v6)]);
        let over_tcp =
            workload::servers(&outside, false, SocketAddr::new(on_node, HOST_PORT), 5).unwrap();
        assert_eq!(
            answered(&format!("hostPort {on_node}:{HOST_PORT}"), &over_tcp),
            BTreeSet::from([address(hosted, v6)]),
            "the hostPort reaches its own pod only"
        );
    }
}

#[test]
fn idle_flows_are_collected_from_conntrack_after_their_timeout() {
    let outside = Outside::create().unwrap();
    let flags = [
        "--bpf-ct-timeout-regular-any",
        "1",
        "--maintenance-interval-secs",
        "1",
    ];
    let node = Node::start_with(&outside, 1, &flags).unwrap();
    let pods = Pods::start(&node);
    web_service(&node, &pods, json!({}));
    let client = match address(&pods.client, false) {
        IpAddr::V4(a) => membrane_common::tuple::v4_bytes(a.octets()),
        IpAddr::V6(_) => unreachable!("an IPv4 address"),
    };
    let tracked = || {
        pinned::conntrack_entries(node.pin_dir().path())
            .unwrap()
            .iter()
            .any(|(key, _)| key.proto == 17 && key.saddr == client)
    };
    let udp = workload::udp(
        &pods.client,
        SocketAddr::new(cluster_ip(false), UDP_PORT),
        3,
    )
    .unwrap();
    assert!(udp.success && udp.report.failed == 0, "{udp:?}");
    assert!(tracked(), "the flow is tracked while it is fresh");
    let deadline = Instant::now() + Duration::from_secs(10);
    while tracked() {
        assert!(
            Instant::now() < deadline,
            "the UDP flow idle for 1 s is still tracked after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_pods_connection_translated_at_the_socket_is_a_flow_naming_the_pod_and_the_service() {
    let outside = Outside::create().unwrap();
    let node = Node::start(&outside, 1).unwrap();
    let pods = Pods::start(&node);
    web_service(&node, &pods, json!({}));
    let vip = SocketAddr::new(cluster_ip(false), TCP_PORT);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Flows are named when decoded: a connection made before the agent's directory
        // knew the new pod stays unnamed, so connect again until one is named.
        let tcp = workload::tcp(&pods.client, vip, 1).unwrap();
        assert!(tcp.success, "{tcp:?}");
        let args = [
            "observe",
            "--last",
            "100",
            "--type",
            "trace-sock",
            "-o",
            "json",
        ];
        let finished = membrane_testbed::cli::run(&node, &args, "").unwrap();
        let flows: Vec<Value> = finished
            .stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        let named = flows.iter().find(|flow| {
            flow["source"]["pod_name"] == "client"
                && flow["source"]["namespace"] == "shop"
                && flow["destination_service"]["name"] == "web"
        });
        if named.is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no trace-sock flow from shop/client to Service web: {flows:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Packets of `reason` the node's datapath counted.
fn counted(node: &Node, reason: &str) -> u64 {
    pinned::counters(node.pin_dir().path())
        .unwrap()
        .iter()
        .filter(|c| c.reason == reason)
        .map(|c| c.packets)
        .sum()
}

/// Two natively routed nodes sharing an etcd, node a started with `extra_a` too, and the
/// Service web (both families) whose one backend serves on node b; runs `check` with the
/// outside, node a and the backend once node a has programmed the Service.
fn with_remote_backend(extra_a: &[&str], check: impl FnOnce(&Outside, &Node, &Pod)) {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let endpoint = etcd.endpoint();
    let flags = etcd_flags(&endpoint, "native");
    let flags_a: Vec<&str> = flags.iter().chain(extra_a).copied().collect();
    let a = Node::start_with(&outside, 1, &flags_a).unwrap();
    let b = Node::start_with(&outside, 2, &flags).unwrap();
    for node in [&a, &b] {
        membrane_testbed::wiring::route_pod_cidrs(outside.netns(), node.addressing()).unwrap();
    }
    let remote = Pod::create(&b, "shop", "web-b").unwrap();
    let _server = workload::serve(&remote, DEFAULT_PORTS).unwrap();
    let mut objects = vec![service("web", [CLUSTER_V4, CLUSTER_V6], json!({}))];
    objects.extend(slices("web", &b, &[&remote]));
    apply(&b, objects);
    for v6 in [false, true] {
        wait_programmed(&a, cluster_ip(v6), TCP_PORT, &[address(&remote, v6)]);
    }
    check(&outside, &a, &remote);
}

#[test]
fn with_xdp_acceleration_the_outside_reaches_a_node_port_whose_backend_is_on_another_node() {
    // Generic XDP: the bed's uplinks are veths, whose native XDP_TX needs the peer
    // in the outside namespace to run XDP too.
    with_remote_backend(
        &["--bpf-lb-acceleration", "generic"],
        |outside, a, remote| {
            for v6 in [false, true] {
                let backend = address(remote, v6);
                let at = node_address(a, v6);
                let (requests, replies) = (
                    counted(a, "xdp_service_to_network"),
                    counted(a, "xdp_reverse_nat_to_network"),
                );
                reaches_both_backends(
                    outside,
                    SocketAddr::new(at, TCP_NODE_PORT),
                    SocketAddr::new(at, UDP_NODE_PORT),
                    &[backend],
                );
                // Every connection's request and reply packets went through XDP on node a
                // (TCP: the handshake, the exchange and the close; UDP: one each way).
                let min = u64::from(2 * CONNECTIONS);
                let sent = counted(a, "xdp_service_to_network") - requests;
                let answered = counted(a, "xdp_reverse_nat_to_network") - replies;
                assert!(sent >= min, "{sent} requests accelerated (v6: {v6})");
                assert!(answered >= min, "{answered} replies accelerated (v6: {v6})");
            }
        },
    );
}

#[test]
fn with_dsr_a_backend_on_another_node_sees_the_client_and_answers_it_directly() {
    with_remote_backend(&["--bpf-lb-mode", "dsr"], |outside, a, remote| {
        for v6 in [false, true] {
            let backend = address(remote, v6);
            let at = node_address(a, v6);
            let seen = workload::whoami_tcp(outside, SocketAddr::new(at, TCP_NODE_PORT)).unwrap();
            // The client connects from the outside's address on node a's link.
            let client = if v6 {
                IpAddr::V6(a.addressing().gateway_v6().addr())
            } else {
                IpAddr::V4(a.addressing().gateway_v4().addr())
            };
            assert_eq!(
                seen.report.peer.ip(),
                client,
                "the backend sees the client's own address, not node a's"
            );
            // TCP by direct return, UDP source-NATed as before.
            reaches_both_backends(
                outside,
                SocketAddr::new(at, TCP_NODE_PORT),
                SocketAddr::new(at, UDP_NODE_PORT),
                &[backend],
            );
        }
        // Node a saw the TCP connections' requests and none of their replies.
        let tcp: Vec<_> = pinned::conntrack_entries(a.pin_dir().path())
            .unwrap()
            .into_iter()
            .filter(|(key, entry)| key.proto == 6 && entry.packets_fwd > 0)
            .collect();
        assert!(!tcp.is_empty(), "node a tracked the connections");
        assert!(
            tcp.iter().all(|(_, entry)| entry.packets_rev == 0),
            "a reply came back through node a: {tcp:?}"
        );
    });
}
