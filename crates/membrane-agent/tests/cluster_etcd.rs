//! Several real agents sharing one real etcd, in namespaces of the test bed: each node is
//! a namespace joined to an outside namespace by its uplink, and etcd listens in the
//! outside namespace on the world's address. The agents find each other, take distinct
//! pod CIDRs from the cluster pool while racing, forget a node whose agent stopped once
//! its lease expires, share applied objects, and an agent started while etcd is down
//! serves its node and registers once etcd is back.
//!
//! Needs root, bpffs and Debian's etcd-server (`cargo xtask test` provides them).

use membrane_api::{
    AgentStatus, ApplyReport, ApplyRequest, Client, ClientError, ErrorKind, ListRequest, NodeInfo,
    paths,
};
use membrane_testbed::addressing::{NodeAddressing, UPLINK};
use membrane_testbed::pin_dir::PinDir;
use membrane_testbed::process::{self, Process};
use membrane_testbed::{Etcd, Netns, Outside, Place as _, binaries, names, wiring};
use std::collections::HashSet;
use std::fs::File;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The node lease's time to live given to the agents.
const LEASE_TTL_SECS: &str = "3";

/// Runs `future` on a runtime of its own.
fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// An outside namespace with etcd on the world's IPv4 address.
struct Cluster {
    outside: Outside,
    etcd: Etcd,
}

impl Cluster {
    fn start() -> Cluster {
        let outside = Outside::create().unwrap();
        let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
        Cluster { outside, etcd }
    }
}

/// A node namespace with a real agent on the shared etcd.
struct Node {
    name: String,
    args: Vec<String>,
    state: tempfile::TempDir,
    agent: Option<Process>,
    // Dropped after the agent: its pins, then its namespace.
    _pins: PinDir,
    netns: Netns,
}

impl Node {
    /// Node `index` of `cluster`, its agent started (not yet waited for) with `extra`
    /// flags; pod CIDRs come from the cluster pools unless `extra` gives them.
    fn spawn(cluster: &Cluster, index: u8, extra: &[&str]) -> Node {
        let plan = NodeAddressing::new(index).unwrap();
        let name = names::unique(&format!("node{index}"));
        let netns = Netns::create(&format!("n{index}")).unwrap();
        wiring::loopback_up(&netns).unwrap();
        wiring::enable_forwarding(&netns).unwrap();
        wiring::connect_node(&netns, cluster.outside.netns(), plan).unwrap();
        let pins = PinDir::create(&name).unwrap();
        let state = tempfile::Builder::new()
            .prefix(&format!("membrane-{name}-"))
            .tempdir()
            .unwrap();
        let path = |p: &str| state.path().join(p).to_str().unwrap().to_string();
        let mut args: Vec<String> = [
            "--node-name",
            &name,
            "--uplink",
            UPLINK,
            "--state-dir",
            &path("agent"),
            "--socket",
            &path("agent.sock"),
            "--cni-conf-dir",
            &path("net.d"),
            "--bpffs-dir",
            pins.path().to_str().unwrap(),
            "--kvstore",
            "etcd",
            "--kvstore-endpoints",
            &cluster.etcd.endpoint(),
            "--kvstore-lease-ttl-secs",
            LEASE_TTL_SECS,
            "--cluster-pool-ipv4",
            "10.200.0.0/16",
            "--cluster-pool-ipv6",
            "fd00:200::/48",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut node = Node {
            name,
            args,
            state,
            agent: None,
            _pins: pins,
            netns,
        };
        node.start_agent();
        node
    }

    fn start_agent(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = Command::new(binaries::locate(binaries::AGENT).unwrap());
        command
            .args(&self.args)
            .env("MEMBRANE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.agent = Some(process::spawn(command, &self.netns).unwrap());
    }

    fn stop_agent(&mut self) {
        if let Some(mut agent) = self.agent.take() {
            agent.terminate(Duration::from_secs(10));
        }
    }

    fn log_path(&self) -> PathBuf {
        self.state.path().join("agent.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn client(&self) -> Client {
        Client::new(self.state.path().join("agent.sock"))
    }

    /// Waits until the agent answers its status as healthy.
    fn wait_ready(&mut self) {
        let client = self.client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.agent.as_mut().and_then(|a| a.try_status().unwrap()) {
                panic!(
                    "agent of {} exited ({status}); log:\n{}",
                    self.name,
                    self.log()
                );
            }
            let status: Result<AgentStatus, _> = block_on(client.get(paths::STATUS));
            if status.is_ok_and(|s| s.healthy) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent of {} not ready; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn nodes(&self) -> Vec<NodeInfo> {
        block_on(self.client().get(paths::NODES)).unwrap()
    }

    /// Waits until the node lists exactly the nodes named `names`.
    fn wait_for_nodes(&self, names: &[&str], within: Duration) -> Vec<NodeInfo> {
        let wanted: HashSet<&str> = names.iter().copied().collect();
        let deadline = Instant::now() + within;
        loop {
            let nodes = self.nodes();
            let listed: HashSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            if listed == wanted {
                return nodes;
            }
            assert!(
                Instant::now() < deadline,
                "{} lists {listed:?}, not {wanted:?}, after {within:?}; log:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn list(&self) -> Vec<String> {
        let listed: Vec<serde_json::Value> = block_on(
            self.client()
                .post(paths::OBJECTS_LIST, &ListRequest::default()),
        )
        .unwrap();
        listed
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    fn apply(&self, objects: Vec<serde_json::Value>) -> Result<ApplyReport, ClientError> {
        block_on(
            self.client()
                .post(paths::OBJECTS_APPLY, &ApplyRequest { objects }),
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_agent();
        if std::thread::panicking() {
            eprintln!("---- agent log of {}:\n{}\n----", self.name, self.log());
        }
    }
}

#[test]
fn agents_sharing_etcd_learn_each_other_take_distinct_pod_cidrs_and_forget_a_stopped_node() {
    let cluster = Cluster::start();
    // All three start at once and race for pod CIDRs from the same pools.
    let mut nodes: Vec<Node> = (1..=3).map(|i| Node::spawn(&cluster, i, &[])).collect();
    nodes.iter_mut().for_each(Node::wait_ready);
    let owned: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let names: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut seen = Vec::new();
    for node in &nodes {
        seen = node.wait_for_nodes(&names, Duration::from_secs(10));
    }
    let v4: HashSet<_> = seen.iter().map(|n| n.ipv4_pod_cidr.unwrap()).collect();
    let v6: HashSet<_> = seen.iter().map(|n| n.ipv6_pod_cidr.unwrap()).collect();
    assert_eq!((v4.len(), v6.len()), (3, 3), "pod CIDRs collide: {seen:#?}");
    for info in &seen {
        assert_eq!(info.ipv4_pod_cidr.unwrap().prefix_len(), 24);
        assert_eq!(info.ipv6_pod_cidr.unwrap().prefix_len(), 64);
        assert!(!info.addresses.is_empty(), "{info:?}");
    }

    // A restarted agent keeps its pod CIDRs.
    let before = seen
        .iter()
        .find(|n| n.name == nodes[0].name)
        .unwrap()
        .clone();
    nodes[0].stop_agent();
    nodes[0].start_agent();
    nodes[0].wait_ready();
    let after = nodes[0].wait_for_nodes(&names, Duration::from_secs(10));
    let after = after.into_iter().find(|n| n.name == before.name).unwrap();
    assert_eq!(
        (after.ipv4_pod_cidr, after.ipv6_pod_cidr),
        (before.ipv4_pod_cidr, before.ipv6_pod_cidr)
    );

    // A node whose agent stopped disappears once its lease expires.
    let gone = nodes.pop().unwrap();
    let gone_name = gone.name.clone();
    drop(gone);
    let remaining: Vec<&str> = names.iter().copied().filter(|n| *n != gone_name).collect();
    for node in &nodes {
        node.wait_for_nodes(&remaining, Duration::from_secs(20));
    }
}

fn namespace(name: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

#[test]
fn objects_applied_on_one_node_are_listed_on_another_and_an_invalid_set_changes_nothing() {
    let cluster = Cluster::start();
    let mut nodes: Vec<Node> = (1..=2).map(|i| Node::spawn(&cluster, i, &[])).collect();
    nodes.iter_mut().for_each(Node::wait_ready);
    let report = nodes[0]
        .apply(vec![namespace("shop"), namespace("bank")])
        .unwrap();
    assert_eq!(report.created, ["Namespace shop", "Namespace bank"]);
    assert_eq!(nodes[1].list(), ["Namespace bank", "Namespace shop"]);

    let invalid = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"ports": [{"port": 0}]}
    });
    let err = nodes[1]
        .apply(vec![namespace("extra"), invalid])
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidRequest), "{err}");
    assert!(err.to_string().contains("spec.ports[0].port"), "{err}");
    assert_eq!(
        nodes[0].list(),
        ["Namespace bank", "Namespace shop"],
        "nothing applied"
    );
}

#[test]
fn an_agent_started_while_etcd_is_down_says_so_serves_and_registers_once_etcd_is_back() {
    let cluster = Cluster::start();
    cluster.etcd.kill();
    let mut node = Node::spawn(
        &cluster,
        1,
        &[
            "--ipv4-pod-cidr",
            "10.200.1.0/24",
            "--ipv6-pod-cidr",
            "fd00:200:0:1::/64",
        ],
    );
    node.wait_ready();
    assert!(node.log().contains("etcd is unreachable"), "{}", node.log());
    assert!(node.nodes().is_empty());
    let err = node.apply(vec![namespace("shop")]).unwrap_err();
    assert!(
        matches!(
            &err,
            ClientError::Api {
                status: 503,
                kind: ErrorKind::Storage,
                ..
            }
        ),
        "{err:?}"
    );

    cluster.etcd.start_again(cluster.outside.netns()).unwrap();
    node.wait_for_nodes(&[&node.name], Duration::from_secs(20));
    node.apply(vec![namespace("shop")]).unwrap();

    // The object cache retries its first list with backoff: give it one full retry
    // interval to catch up, then cut etcd off again: the agent serves what it knows.
    std::thread::sleep(membrane_state::backoff::MAX + Duration::from_secs(1));
    cluster.etcd.kill();
    assert_eq!(node.nodes().len(), 1);
    assert_eq!(node.list(), ["Namespace shop"], "listed from the cache");
}
