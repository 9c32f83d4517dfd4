//! Flow observability end to end: two real agents on a real etcd, pods on both, real
//! traffic (allowed, and dropped for a spoofed source address), and the flows read back
//! through the Observer gRPC API of each node (unix socket, plain TCP :4244, mutual TLS
//! on :4244), through every output format of the built `membrane observe`, and through
//! the Prometheus metrics; a flood bigger than the agent's event queue shows up as
//! lost-event records and counters.
//!
//! Needs root, bpffs, cgroup v2 and Debian's etcd-server (`cargo xtask test` provides
//! them).

use membrane_api::paths;
use membrane_observe::api::flow as pb;
use membrane_observe::api::observer::get_flows_response::ResponseTypes;
use membrane_observe::api::observer::observer_client::ObserverClient;
use membrane_observe::api::observer::{
    GetFlowsRequest, GetFlowsResponse, GetNamespacesRequest, GetNodesRequest, ServerStatusRequest,
};
use membrane_observe::api::{system_time, timestamp};
use membrane_observe::client::{ClientTls, ServerAddress, channel};
use membrane_test_pki::Pki;
use membrane_testbed::cluster::etcd_flags;
use membrane_testbed::workload::{self, DEFAULT_PORTS, Outcome};
use membrane_testbed::{Etcd, Node, Outside, Place as _, Pod, binaries};
use serde_json::{Value, json};
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};
use tokio_stream::StreamExt as _;
use tonic::transport::Channel;

/// How long the nodes get to learn each other's pods, and flows to show up named.
const CONVERGE: Duration = Duration::from_secs(30);
/// Where the agents serve Prometheus metrics, inside each node's namespace.
const METRICS_PORT: u16 = 9962;
/// Hubble's Observer port.
const OBSERVER_PORT: u16 = 4244;
/// Cluster IPs of Service shop/web (backed by the server pod) and shop/empty (no
/// backend), both on port 80 to the server's TCP port.
const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const EMPTY_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 21);
const SERVICE_PORT: u16 = 80;
/// A source address no pod has: packets from it are spoofed.
const SPOOFED: Ipv4Addr = Ipv4Addr::new(10, 200, 1, 250);

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn assert_all_ok<R: std::fmt::Debug>(what: &str, outcome: &Outcome<R>) {
    assert!(outcome.success, "{what}: {outcome:?}");
}

/// The name the agents' Observer certificate is made for.
const OBSERVER_NAME: &str = "observer.membrane";

/// An agent config file, next to `pki`'s certificates, serving the Observer on TCP with
/// mutual TLS.
fn agent_config(pki: &Pki) -> PathBuf {
    let path = pki.dir().join("agent.yaml");
    let text = format!(
        "observe:\n  tls-cert: {}\n  tls-key: {}\n  tls-client-ca: {}\n",
        pki.server_cert().display(),
        pki.server_key().display(),
        pki.ca().display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A client of the Observer trusting `pki`'s CA, with its client certificate if
/// `with_certificate`.
fn client_tls(pki: &Pki, with_certificate: bool) -> ClientTls {
    ClientTls {
        ca: Some(pki.ca()),
        identity: with_certificate.then(|| (pki.client_cert(), pki.client_key())),
        server_name: Some(OBSERVER_NAME.to_string()),
    }
}

/// Starts node `index` on `etcd`, serving metrics on [`METRICS_PORT`], with `extra` flags.
fn start(outside: &Outside, index: u8, etcd: &str, extra: &[&str]) -> Node {
    let metrics = format!("0.0.0.0:{METRICS_PORT}");
    let mut flags = etcd_flags(etcd, "tunnel");
    flags.extend(["--metrics", &metrics]);
    flags.extend(extra);
    Node::start_with(outside, index, &flags).unwrap()
}

/// The Observer's unix socket of `node`: `observer.sock` beside the agent's socket.
fn observer_socket(node: &Node) -> PathBuf {
    node.agent()
        .config()
        .socket
        .parent()
        .unwrap()
        .join("observer.sock")
}

async fn unix_client(node: &Node) -> ObserverClient<Channel> {
    ObserverClient::new(unix_channel(node).await)
}

async fn unix_channel(node: &Node) -> Channel {
    channel(&ServerAddress::Unix(observer_socket(node)), None)
        .await
        .unwrap()
}

/// The Pod object of `pod` with `app=<app>` and the given owner.
fn pod_object(pod: &Pod, app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod.full_name().split('/').nth(1).unwrap(),
            "namespace": "shop",
            "labels": {"app": app, "pod-template-hash": "7d9c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{app}-7d9c"), "uid": format!("uid-{app}")}]
        },
        "spec": {"nodeName": pod.node_name(), "containers": [{"name": "main", "image": "workload"}]},
        "status": {
            "podIP": pod.ipv4().unwrap().to_string(),
            "podIPs": [{"ip": pod.ipv4().unwrap().to_string()}, {"ip": pod.ipv6().unwrap().to_string()}]
        }
    })
}

fn apply(node: &Node, objects: Vec<Value>) {
    let count = objects.len();
    let report = node.agent().apply(objects).unwrap();
    assert!(
        report.created.len() + report.configured.len() + report.unchanged.len() == count,
        "{report:?}"
    );
}

/// Service `shop/<name>` on `vip`:80 to the TCP port of the pods labelled `app=server`,
/// and, when `backend` is given, its EndpointSlice listing it.
fn service(name: &str, vip: Ipv4Addr, backend: Option<&Pod>) -> Vec<Value> {
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": vip.to_string(),
            "clusterIPs": [vip.to_string()],
            "ipFamilies": ["IPv4"],
            "ports": [{"name": "echo", "port": SERVICE_PORT, "targetPort": DEFAULT_PORTS.tcp, "protocol": "TCP"}]
        }
    })];
    if let Some(pod) = backend {
        objects.push(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-ipv4"), "namespace": "shop",
                "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "echo", "port": DEFAULT_PORTS.tcp, "protocol": "TCP"}],
            "endpoints": [{"addresses": [pod.ipv4().unwrap().to_string()],
                "conditions": {"ready": true}, "nodeName": pod.node_name()}]
        }));
    }
    objects
}

/// Waits, bounded, until `node` reports both Service frontends programmed.
fn wait_services_programmed(node: &Node) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let frontends: Vec<membrane_api::ServiceFrontend> =
            node.agent().get(paths::SERVICES).unwrap();
        let programmed = |vip: Ipv4Addr| {
            frontends
                .iter()
                .any(|f| f.address == IpAddr::V4(vip) && f.programmed && f.rev_nat_index.is_some())
        };
        if programmed(WEB_VIP) && programmed(EMPTY_VIP) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Services not programmed: {frontends:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits, bounded, until `node` serves a flow matching `filter`, and returns it.
fn wait_flow(node: &Node, filter: pb::FlowFilter, what: &str) -> pb::Flow {
    let request = GetFlowsRequest {
        whitelist: vec![filter],
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = block_on(async { flows(&mut unix_client(node).await, request.clone()).await });
        if let Some(flow) = found.into_iter().last() {
            return flow;
        }
        if Instant::now() >= deadline {
            let recent = block_on(async {
                flows(
                    &mut unix_client(node).await,
                    GetFlowsRequest {
                        number: 8,
                        ..Default::default()
                    },
                )
                .await
            });
            panic!(
                "no flow on {}: {what}; the last flows: {recent:#?}",
                node.name()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every flow a GetFlows `request` returns (it must not follow).
async fn flows(client: &mut ObserverClient<Channel>, request: GetFlowsRequest) -> Vec<pb::Flow> {
    responses(client, request)
        .await
        .into_iter()
        .filter_map(|r| match r.response_types {
            Some(ResponseTypes::Flow(flow)) => Some(flow),
            _ => None,
        })
        .collect()
}

async fn responses(
    client: &mut ObserverClient<Channel>,
    request: GetFlowsRequest,
) -> Vec<GetFlowsResponse> {
    let mut stream = client.get_flows(request).await.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.unwrap());
    }
    out
}

fn tcp_of(flow: &pb::Flow) -> Option<&pb::Tcp> {
    match flow.l4.as_ref()?.protocol.as_ref()? {
        pb::layer4::Protocol::Tcp(tcp) => Some(tcp),
        _ => None,
    }
}

fn syn(flow: &pb::Flow) -> bool {
    tcp_of(flow).is_some_and(|t| t.flags.as_ref().is_some_and(|f| f.syn && !f.ack))
}

fn filter() -> pb::FlowFilter {
    pb::FlowFilter::default()
}

/// Waits, in bounded polls, until `node` serves a forwarded TCP SYN from the client pod
/// to the server pod with both ends named, and returns it.
fn wait_named_syn(node: &Node, client_ip: Ipv4Addr, server_ip: Ipv4Addr, from: &Pod) -> pb::Flow {
    let deadline = Instant::now() + CONVERGE;
    let request = GetFlowsRequest {
        whitelist: vec![pb::FlowFilter {
            source_ip: vec![client_ip.to_string()],
            destination_ip: vec![server_ip.to_string()],
            verdict: vec![pb::Verdict::Forwarded as i32],
            ..filter()
        }],
        ..Default::default()
    };
    for attempt in 0.. {
        let outcome = workload::tcp(
            from,
            SocketAddr::new(server_ip.into(), DEFAULT_PORTS.tcp),
            1,
        )
        .unwrap();
        assert_all_ok("tcp", &outcome);
        let found = block_on(async {
            let mut client = unix_client(node).await;
            flows(&mut client, request.clone()).await
        });
        // Named by the applied Pod objects: until an agent has seen them, a pod's flows
        // carry only its CNI name and its namespace-only identity.
        let knows_pod = |e: &pb::Endpoint| {
            !e.pod_name.is_empty() && e.labels.iter().any(|l| l.starts_with("k8s:app="))
        };
        let named = found.into_iter().rev().find(|f| {
            syn(f)
                && f.source.as_ref().is_some_and(knows_pod)
                && f.destination.as_ref().is_some_and(knows_pod)
        });
        if let Some(flow) = named {
            return flow;
        }
        assert!(
            Instant::now() < deadline && attempt < 100,
            "no named SYN {client_ip} -> {server_ip} on {} after {CONVERGE:?}; its log:\n{}",
            node.name(),
            node.agent().log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    unreachable!("the loop returns or panics")
}

/// Sends one UDP datagram from `pod` with the source address [`SPOOFED`] (a transparent
/// socket may bind an address the pod does not have).
fn send_spoofed(pod: &Pod, to: SocketAddr) {
    pod.netns()
        .run(|| {
            use socket2::{Domain, Protocol, SockAddr, Socket, Type};
            let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
            socket.set_ip_transparent_v4(true).unwrap();
            socket
                .bind(&SockAddr::from(SocketAddr::new(SPOOFED.into(), 40_123)))
                .unwrap();
            socket.send_to(b"spoofed", &SockAddr::from(to)).unwrap();
        })
        .unwrap();
}

/// `GET /metrics` of `node`'s agent from the outside namespace, parsed.
fn scrape(outside: &Outside, node: &Node) -> prometheus_parse::Scrape {
    let address = SocketAddr::new(node.ipv4().into(), METRICS_PORT);
    let text = outside
        .netns()
        .run(|| {
            let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
                .write_all(b"GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
        .unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    let lines = body.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).unwrap()
}

/// Sum of the samples of `name` whose labels include every pair of `labels`.
fn sum(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// Runs the built `membrane observe` against `node`'s unix socket.
fn membrane_observe(node: &Node, args: &[&str]) -> String {
    let out = std::process::Command::new(binaries::locate("membrane").unwrap())
        .arg("observe")
        .arg("--server")
        .arg(observer_socket(node))
        .args(args)
        .env_remove("MEMBRANE_OBSERVER")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "membrane observe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn endpoint(flow: &pb::Flow, source: bool) -> &pb::Endpoint {
    if source {
        flow.source.as_ref().unwrap()
    } else {
        flow.destination.as_ref().unwrap()
    }
}

/// Asserts the enrichment of one end of a flow: the pod, its labels, its workload, an
/// identity.
fn assert_pod(end: &pb::Endpoint, pod: &Pod, app: &str) {
    let name = pod.full_name();
    assert_eq!(
        format!("{}/{}", end.namespace, end.pod_name),
        name,
        "{end:?}"
    );
    assert!(end.labels.contains(&format!("k8s:app={app}")), "{end:?}");
    assert!(
        end.labels
            .contains(&"k8s:io.kubernetes.pod.namespace=shop".to_string()),
        "{end:?}"
    );
    assert_eq!(
        end.workloads,
        [pb::Workload {
            name: app.to_string(),
            kind: "Deployment".to_string()
        }],
        "{end:?}"
    );
    assert!(
        end.identity >= 256,
        "a pod's identity is allocated: {end:?}"
    );
}

#[test]
fn flows_of_both_nodes_are_served_enriched_through_the_observer_api_cli_and_metrics() {
    let outside = Outside::create().unwrap();
    let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
    let pki = Pki::new(OBSERVER_NAME);
    // Node 1 serves the Observer on plain TCP :4244 (the default) and translates Services
    // per packet, so that its flows carry the Service; node 2 serves with mutual TLS.
    let store = etcd.endpoint();
    let a = start(&outside, 1, &store, &["--socket-lb=false"]);
    let config = agent_config(&pki).display().to_string();
    let b = start(&outside, 2, &store, &["--config", &config]);
    let client = Pod::create(&a, "shop", "client").unwrap();
    let server = Pod::create(&b, "shop", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    apply(
        &a,
        vec![pod_object(&client, "client"), pod_object(&server, "server")],
    );
    let (client_ip, server_ip) = (client.ipv4().unwrap(), server.ipv4().unwrap());
    let started = SystemTime::now();

    // Allowed traffic, seen on both nodes with both ends named.
    let sent = wait_named_syn(&a, client_ip, server_ip, &client);
    assert_eq!(sent.node_name, a.name());
    assert_eq!(sent.verdict, pb::Verdict::Forwarded as i32);
    assert_eq!(sent.traffic_direction, pb::TrafficDirection::Egress as i32);
    assert_eq!(sent.is_reply.map(|r| r.value), Some(false));
    assert_eq!(
        tcp_of(&sent).unwrap().destination_port,
        u32::from(DEFAULT_PORTS.tcp)
    );
    assert_eq!(
        sent.ip.as_ref().unwrap().ip_version,
        pb::IpVersion::IPv4 as i32
    );
    assert_pod(endpoint(&sent, true), &client, "client");
    assert_pod(endpoint(&sent, false), &server, "server");
    let received = wait_named_syn(&b, client_ip, server_ip, &client);
    assert_eq!(received.node_name, b.name());
    assert_eq!(
        received.traffic_direction,
        pb::TrafficDirection::Ingress as i32
    );
    assert_pod(endpoint(&received, true), &client, "client");
    assert_pod(endpoint(&received, false), &server, "server");
    assert_eq!(
        endpoint(&received, true).identity,
        endpoint(&sent, true).identity,
        "both nodes see the client's one identity"
    );
    assert_all_ok(
        "udp",
        &workload::udp(
            &client,
            SocketAddr::new(server_ip.into(), DEFAULT_PORTS.udp),
            3,
        )
        .unwrap(),
    );
    assert_all_ok(
        "icmp",
        &workload::ping(&client, server_ip.into(), 2).unwrap(),
    );

    // Dropped traffic: a spoofed source address, refused as it leaves the pod.
    let before = scrape(&outside, &a);
    send_spoofed(
        &client,
        SocketAddr::new(server_ip.into(), DEFAULT_PORTS.udp),
    );
    let dropped_request = GetFlowsRequest {
        whitelist: vec![pb::FlowFilter {
            verdict: vec![pb::Verdict::Dropped as i32],
            ..filter()
        }],
        ..Default::default()
    };
    let dropped = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = block_on(async {
                flows(&mut unix_client(&a).await, dropped_request.clone()).await
            });
            if let Some(flow) = found.into_iter().find(|f| {
                f.ip.as_ref()
                    .is_some_and(|ip| ip.source == SPOOFED.to_string())
            }) {
                break flow;
            }
            assert!(
                Instant::now() < deadline,
                "the spoofed datagram's drop was not reported"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(
        dropped.drop_reason_desc,
        pb::DropReason::InvalidSourceIp as i32
    );
    assert_eq!(
        dropped.traffic_direction,
        pb::TrafficDirection::Egress as i32
    );
    assert_eq!(dropped.node_name, a.name());
    assert_eq!(
        endpoint(&dropped, true).pod_name,
        "client",
        "the sending endpoint is named even though the address is not its own"
    );

    // Traffic to a Service carries its name; a Service without backends drops, named.
    let mut objects = service("web", WEB_VIP, Some(&server));
    objects.extend(service("empty", EMPTY_VIP, None));
    apply(&a, objects);
    wait_services_programmed(&a);
    let web = SocketAddr::new(WEB_VIP.into(), SERVICE_PORT);
    assert_all_ok(
        "tcp to the Service",
        &workload::tcp(&client, web, 2).unwrap(),
    );
    let to_web = wait_flow(
        &a,
        pb::FlowFilter {
            destination_service: vec!["shop/web".to_string()],
            ..filter()
        },
        "to Service shop/web",
    );
    assert_eq!(
        to_web.destination_service,
        Some(pb::Service {
            name: "web".to_string(),
            namespace: "shop".to_string()
        })
    );
    assert_eq!(endpoint(&to_web, true).pod_name, "client");
    let empty = SocketAddr::new(EMPTY_VIP.into(), SERVICE_PORT);
    let refused = workload::tcp(&client, empty, 1).unwrap();
    assert!(
        !refused.success,
        "a Service without backends answered: {refused:?}"
    );
    let no_backend = wait_flow(
        &a,
        pb::FlowFilter {
            destination_service: vec!["shop/empty".to_string()],
            verdict: vec![pb::Verdict::Dropped as i32],
            ..filter()
        },
        "dropped for Service shop/empty",
    );
    assert_eq!(
        no_backend.drop_reason_desc,
        pb::DropReason::ServiceBackendNotFound as i32
    );

    block_on(async {
        let mut observer = unix_client(&a).await;
        // A fixed window that new flows cannot move: it ends just before the newest flow
        // already stored. The agent takes flows from the datapath's ring buffer in order,
        // so every flow handed over before that one is stored, and one handed over after
        // it is not a millisecond older.
        let until =
            system_time(no_backend.time.as_ref().unwrap()).unwrap() - Duration::from_millis(1);
        let window = |number: u64, first: bool| GetFlowsRequest {
            number,
            first,
            until: Some(timestamp(until)),
            ..Default::default()
        };
        let all = flows(&mut observer, window(0, false)).await;
        assert!(all.len() >= 6, "{} flows", all.len());
        let times: Vec<SystemTime> = all
            .iter()
            .map(|f| system_time(f.time.as_ref().unwrap()).unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
        assert_eq!(
            flows(&mut observer, window(3, false)).await,
            all[all.len() - 3..]
        );
        assert_eq!(flows(&mut observer, window(3, true)).await, all[..3]);
        let since = times[times.len() / 2];
        let later = flows(
            &mut observer,
            GetFlowsRequest {
                since: Some(timestamp(since)),
                until: Some(timestamp(until)),
                ..Default::default()
            },
        )
        .await;
        assert!(!later.is_empty() && later.len() < all.len());
        assert_eq!(
            later,
            all[all.len() - later.len()..],
            "since cuts the older flows"
        );
        assert!(times.iter().all(|t| *t >= started));

        // Allow-list and deny-list filters as Hubble's: OR between filters, AND inside.
        let syns = flows(
            &mut observer,
            GetFlowsRequest {
                whitelist: vec![pb::FlowFilter {
                    source_pod: vec!["shop/client".to_string()],
                    destination_label: vec!["app=server".to_string()],
                    protocol: vec!["tcp".to_string()],
                    tcp_flags: vec![pb::TcpFlags {
                        syn: true,
                        ..Default::default()
                    }],
                    ..filter()
                }],
                ..Default::default()
            },
        )
        .await;
        assert!(!syns.is_empty());
        assert!(
            syns.iter()
                .all(|f| tcp_of(f).unwrap().flags.as_ref().unwrap().syn)
        );
        let not_client = flows(
            &mut observer,
            GetFlowsRequest {
                blacklist: vec![pb::FlowFilter {
                    source_pod: vec!["shop/".to_string()],
                    ..filter()
                }],
                until: Some(timestamp(until)),
                ..Default::default()
            },
        )
        .await;
        assert!(
            not_client
                .iter()
                .all(|f| endpoint(f, true).namespace != "shop"),
            "{not_client:?}"
        );
        let drops_or_udp = flows(
            &mut observer,
            GetFlowsRequest {
                whitelist: vec![
                    pb::FlowFilter {
                        verdict: vec![pb::Verdict::Dropped as i32],
                        ..filter()
                    },
                    pb::FlowFilter {
                        destination_port: vec![DEFAULT_PORTS.udp.to_string()],
                        source_ip: vec![client_ip.to_string()],
                        ..filter()
                    },
                ],
                until: Some(timestamp(until)),
                ..Default::default()
            },
        )
        .await;
        assert!(
            drops_or_udp
                .iter()
                .any(|f| f.verdict == pb::Verdict::Dropped as i32)
        );
        assert!(
            drops_or_udp
                .iter()
                .any(|f| f.verdict == pb::Verdict::Forwarded as i32)
        );

        // Follow: a new connection's SYN arrives on an open stream.
        let mut follow = observer
            .get_flows(GetFlowsRequest {
                follow: true,
                since: Some(timestamp(SystemTime::now())),
                whitelist: vec![pb::FlowFilter {
                    destination_port: vec![DEFAULT_PORTS.tcp.to_string()],
                    tcp_flags: vec![pb::TcpFlags {
                        syn: true,
                        ..Default::default()
                    }],
                    ..filter()
                }],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let outcome = workload::tcp(
            &client,
            SocketAddr::new(server_ip.into(), DEFAULT_PORTS.tcp),
            1,
        )
        .unwrap();
        assert_all_ok("tcp", &outcome);
        let followed = tokio::time::timeout(Duration::from_secs(10), follow.next())
            .await
            .expect("a followed flow within 10 s")
            .unwrap()
            .unwrap();
        match followed.response_types {
            Some(ResponseTypes::Flow(flow)) => assert!(syn(&flow), "{flow:?}"),
            other => panic!("expected a flow, got {other:?}"),
        }

        let status = observer
            .server_status(ServerStatusRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(
            status.num_flows > 0 && status.seen_flows >= status.num_flows,
            "{status:?}"
        );
        assert_eq!(status.max_flows, 4096);
        let nodes = observer
            .get_nodes(GetNodesRequest {})
            .await
            .unwrap()
            .into_inner()
            .nodes;
        assert_eq!(nodes.len(), 1, "{nodes:?}");
        assert_eq!(nodes[0].name, a.name());
        assert_eq!(
            nodes[0].state,
            membrane_observe::api::relay::NodeState::NodeConnected as i32
        );
        let namespaces = observer
            .get_namespaces(GetNamespacesRequest {})
            .await
            .unwrap()
            .into_inner()
            .namespaces;
        assert!(
            namespaces.iter().any(|n| n.namespace == "shop"),
            "{namespaces:?}"
        );

        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let mut health = HealthClient::new(unix_channel(&a).await);
        let serving = health
            .check(HealthCheckRequest {
                service: "observer.Observer".to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(serving.status, ServingStatus::Serving as i32);
    });

    // TCP :4244 from outside the nodes: plain on node 1, mutual TLS on node 2.
    outside
        .netns()
        .block_on(|| async {
            let plain = ServerAddress::Tcp(format!("{}:{OBSERVER_PORT}", a.ipv4()));
            let mut over_tcp = ObserverClient::new(channel(&plain, None).await.unwrap());
            let status = over_tcp
                .server_status(ServerStatusRequest {})
                .await
                .unwrap()
                .into_inner();
            assert!(status.num_flows > 0);
            let secured = ServerAddress::Tcp(format!("{}:{OBSERVER_PORT}", b.ipv4()));
            let refused = match channel(&secured, Some(&client_tls(&pki, false))).await {
                Err(_) => true,
                Ok(channel) => ObserverClient::new(channel)
                    .server_status(ServerStatusRequest {})
                    .await
                    .is_err(),
            };
            assert!(refused, "mutual TLS lets in a client without a certificate");
            let no_tls = match channel(&secured, None).await {
                Err(_) => true,
                Ok(channel) => ObserverClient::new(channel)
                    .server_status(ServerStatusRequest {})
                    .await
                    .is_err(),
            };
            assert!(no_tls, "plaintext reached the TLS listener");
            let mut mutual = ObserverClient::new(
                channel(&secured, Some(&client_tls(&pki, true)))
                    .await
                    .unwrap(),
            );
            let seen = flows(
                &mut mutual,
                GetFlowsRequest {
                    whitelist: vec![pb::FlowFilter {
                        destination_pod: vec!["shop/server".to_string()],
                        node_name: vec![b.name().to_string()],
                        ..filter()
                    }],
                    ..Default::default()
                },
            )
            .await;
            assert!(!seen.is_empty(), "node 2 serves its flows over mutual TLS");
        })
        .unwrap();

    // Every output format of the CLI, from the built binary.
    let compact = membrane_observe(&a, &["--last", "5", "--from-pod", "shop/client"]);
    assert_eq!(compact.lines().count(), 5, "{compact}");
    assert!(
        compact.lines().all(|l| l.contains("shop/client")),
        "{compact}"
    );
    let table = membrane_observe(&a, &["-o", "table", "--last", "3"]);
    assert!(table.starts_with("TIMESTAMP"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    let dict = membrane_observe(&a, &["-o", "dict", "--last", "1", "--verdict", "DROPPED"]);
    assert!(dict.contains("VERDICT: DROPPED"), "{dict}");
    let spoofed = SPOOFED.to_string();
    let json = membrane_observe(&a, &["-o", "json", "--last", "1", "--from-ip", &spoofed]);
    let flow: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(flow["drop_reason_desc"], "INVALID_SOURCE_IP", "{json}");
    assert_eq!(flow["source"]["pod_name"], "client", "{json}");
    let jsonpb = membrane_observe(
        &a,
        &["-o", "jsonpb", "--last", "2", "--to-pod", "shop/server"],
    );
    let lines: Vec<Value> = jsonpb
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{jsonpb}");
    assert!(
        lines
            .iter()
            .all(|r| r["flow"]["destination"]["pod_name"] == "server"),
        "{jsonpb}"
    );

    // Metrics: Prometheus text, counters moving with traffic.
    let after = scrape(&outside, &a);
    let drops =
        |s: &prometheus_parse::Scrape| sum(s, "membrane_drops_total", &[("direction", "egress")]);
    assert!(
        drops(&after) > drops(&before),
        "the spoofed datagram is counted"
    );
    let forwarded = |s: &prometheus_parse::Scrape| {
        sum(
            s,
            "membrane_flows_processed_total",
            &[("verdict", "FORWARDED")],
        )
    };
    assert!(
        forwarded(&after) > forwarded(&before),
        "the follow connection is counted"
    );
    assert_eq!(sum(&after, "membrane_agent_healthy", &[]), 1.0);
    let to_service = |service: &str, verdict: &str| {
        sum(
            &after,
            "membrane_service_packets_total",
            &[
                ("namespace", "shop"),
                ("service", service),
                ("verdict", verdict),
            ],
        )
    };
    assert!(to_service("web", "FORWARDED") > 0.0);
    assert!(to_service("empty", "DROPPED") > 0.0);
    // Map pressure is read every few seconds: wait, bounded, for a reading with pods.
    let deadline = Instant::now() + Duration::from_secs(15);
    for attempt in 0.. {
        let scraped = scrape(&outside, &a);
        let pressure = |map: &str| {
            (
                sum(&scraped, "membrane_map_entries", &[("map", map)]),
                sum(&scraped, "membrane_map_capacity", &[("map", map)]),
            )
        };
        let maps = ["endpoints", "conntrack", "ipcache"].map(pressure);
        if maps
            .iter()
            .all(|(entries, capacity)| *entries > 0.0 && capacity >= entries)
        {
            break;
        }
        assert!(
            Instant::now() < deadline && attempt < 30,
            "map pressure of endpoints, conntrack, ipcache: {maps:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // A policy denial: the server admits only pods labelled app=nobody; the client's
    // connection is refused where it arrives, on node 2, and reported there.
    apply(&a, vec![ingress_only_from_nobody()]);
    let denied = wait_policy_denial(&b, &client, server_ip);
    assert_eq!(denied.drop_reason_desc, pb::DropReason::PolicyDenied as i32);
    assert_eq!(
        denied.traffic_direction,
        pb::TrafficDirection::Ingress as i32
    );
    assert_eq!(denied.node_name, b.name());
    assert_pod(endpoint(&denied, true), &client, "client");
    assert_pod(endpoint(&denied, false), &server, "server");
}

/// NetworkPolicy shop/only-nobody: pods labelled app=server admit ingress only from pods
/// labelled app=nobody.
fn ingress_only_from_nobody() -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "only-nobody", "namespace": "shop"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "server"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "nobody"}}}]}]
        }
    })
}

/// Tries connections from `client` to the server, bounded, until `node` reports one
/// dropped by policy, and returns that flow.
fn wait_policy_denial(node: &Node, client: &Pod, server_ip: Ipv4Addr) -> pb::Flow {
    let request = GetFlowsRequest {
        whitelist: vec![pb::FlowFilter {
            verdict: vec![pb::Verdict::Dropped as i32],
            source_pod: vec![client.full_name()],
            destination_ip: vec![server_ip.to_string()],
            ..filter()
        }],
        ..Default::default()
    };
    let deadline = Instant::now() + CONVERGE;
    for attempt in 0.. {
        let to = SocketAddr::new(server_ip.into(), DEFAULT_PORTS.tcp);
        // Refused once the policy is in force; the outcome itself is not the point.
        let _ = workload::tcp(client, to, 1).unwrap();
        let found = block_on(async { flows(&mut unix_client(node).await, request.clone()).await });
        if let Some(flow) = found.into_iter().last() {
            return flow;
        }
        assert!(
            Instant::now() < deadline && attempt < 60,
            "no policy drop on {} after {CONVERGE:?}; its log:\n{}",
            node.name(),
            node.agent().log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    unreachable!("the loop returns or panics")
}

#[test]
fn a_flood_beyond_the_event_queue_is_reported_as_lost_events_not_silently_dropped() {
    let outside = Outside::create().unwrap();
    let config = tempfile::tempdir().unwrap();
    let path = config.path().join("agent.yaml");
    // A queue of one event: every batch of more than one read from the ring overflows.
    std::fs::write(&path, "observe:\n  events-queue: 1\n").unwrap();
    let node = Node::start_with(
        &outside,
        1,
        &[
            "--config",
            path.to_str().unwrap(),
            "--metrics",
            &format!("0.0.0.0:{METRICS_PORT}"),
        ],
    )
    .unwrap();
    let client = Pod::create(&node, "shop", "client").unwrap();
    let server = Pod::create(&node, "shop", "server").unwrap();
    let _serving = workload::serve(&server, DEFAULT_PORTS).unwrap();
    let to = SocketAddr::new(server.ipv4().unwrap().into(), DEFAULT_PORTS.tcp);
    // The flood: bounded, 200 new connections, each several events.
    assert_all_ok("tcp", &workload::tcp(&client, to, 200).unwrap());
    let lost_request = GetFlowsRequest::default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (records, flows_seen) = loop {
        let all = block_on(async {
            responses(&mut unix_client(&node).await, lost_request.clone()).await
        });
        let records: Vec<pb::LostEvent> = all
            .iter()
            .filter_map(|r| match &r.response_types {
                Some(ResponseTypes::LostEvents(lost)) => Some(*lost),
                _ => None,
            })
            .collect();
        let flows_seen = all.len() - records.len();
        if !records.is_empty() {
            break (records, flows_seen);
        }
        assert!(
            Instant::now() < deadline,
            "no lost-event record after a flood through a one-event queue ({flows_seen} flows)"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        records.iter().all(
            |r| r.source == pb::LostEventSource::ObserverEventsQueue as i32
                && r.num_events_lost > 0
        ),
        "{records:?}"
    );
    let reported: u64 = records.iter().map(|r| r.num_events_lost).sum();
    let scraped = scrape(&outside, &node);
    let counted = sum(
        &scraped,
        "membrane_lost_events_total",
        &[("source", "events_queue")],
    );
    assert!(
        counted >= reported as f64,
        "the metric ({counted}) counts at least what the kept records report ({reported})"
    );
    assert!(flows_seen > 0, "what fitted was decoded");
}
