//! The agent for real, in network namespaces this test creates: it starts inside a node
//! namespace (as the test bed starts it), serves its API, routes a pod's addresses to
//! the pod's veth, survives `kill -9` by adopting its endpoint, releases the endpoint
//! once the veth is gone, and stops on SIGTERM leaving its pins in place.
//!
//! Needs root, bpffs at /sys/fs/bpf and `ip` and `nsenter`; without root it says so and
//! passes without checking anything.

use membrane_api::{
    AgentStatus, AllocateRequest, Allocation, AttachmentRef, Client, Endpoint,
    EndpointRegistration, paths,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `ip` with `args`, panicking on failure.
fn ip(args: &[&str]) -> String {
    let output = Command::new("ip").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns(name)
    }

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

/// Everything the agent under test is started with; its pin directory is removed on drop.
struct Node {
    netns: Netns,
    name: String,
    dir: tempfile::TempDir,
    pin_dir: PathBuf,
}

impl Node {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/agent.sock")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn start(&self) -> Running {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        Command::new("nsenter")
            .arg(format!("--net={}", self.netns.path()))
            .arg(env!("CARGO_BIN_EXE_membrane-agent"))
            .args(["--node-name", &self.name, "--uplink", "up0"])
            .args([
                "--ipv4-pod-cidr",
                "10.244.7.0/24",
                "--ipv6-pod-cidr",
                "fd00:244:7::/112",
            ])
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--socket")
            .arg(self.socket())
            .arg("--bpffs-dir")
            .arg(&self.pin_dir)
            .arg("--cni-conf-dir")
            .arg(self.dir.path().join("net.d"))
            .args(["--maintenance-interval-secs", "1"])
            .env("MEMBRANE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map(Running)
            .unwrap()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Waits until `check` holds for the agent's status.
    async fn wait_status(&self, what: &str, check: impl Fn(&AgentStatus) -> bool) -> AgentStatus {
        let client = Client::new(self.socket());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let last = client.get::<AgentStatus>(paths::STATUS).await;
            if let Ok(status) = &last
                && check(status)
            {
                return status.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{what}: last {last:?}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The agent process (nsenter execs it), killed on drop so a failing test leaves none.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.pin_dir);
    }
}

fn link_field(netns: &str, ifname: &str, field: &str) -> String {
    let json = ip(&["-n", netns, "-j", "link", "show", ifname]);
    let links: serde_json::Value = serde_json::from_str(&json).unwrap();
    match &links[0][field] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A `/proc/sys` value inside the namespace `netns`.
fn sysctl(netns: &str, key: &str) -> String {
    let output = Command::new("ip")
        .args(["netns", "exec", netns, "cat"])
        .arg(format!("/proc/sys/{key}"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn usable() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: the real-node test needs root");
        return false;
    }
    assert!(
        Path::new("/sys/fs/bpf").is_dir(),
        "bpffs must be mounted at /sys/fs/bpf"
    );
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_adopts_its_endpoint_after_kill_9_and_releases_it_once_the_veth_is_gone() {
    if !usable() {
        return;
    }
    let unique = format!("agt{}-{}", std::process::id(), rand_suffix());
    let node = Node {
        netns: Netns::new(format!("{unique}-node")),
        name: unique.clone(),
        dir: tempfile::tempdir().unwrap(),
        pin_dir: PathBuf::from(format!("/sys/fs/bpf/membrane/{unique}")),
    };
    let peer = Netns::new(format!("{unique}-peer"));
    let pod = Netns::new(format!("{unique}-pod"));
    let n = node.netns.0.as_str();
    ip(&[
        "-n", n, "link", "add", "up0", "type", "veth", "peer", "name", "up0p", "netns", &peer.0,
    ]);
    ip(&["-n", n, "link", "set", "up0", "mtu", "1400", "up"]);
    ip(&["-n", &peer.0, "link", "set", "up0p", "up"]);
    ip(&["-n", n, "addr", "add", "198.51.100.1/24", "dev", "up0"]);
    ip(&[
        "-n",
        n,
        "addr",
        "add",
        "2001:db8:7::1/64",
        "dev",
        "up0",
        "nodad",
    ]);

    // Start: the API answers, the conflist is in place, the MTU comes from the uplink.
    let mut agent = node.start();
    node.wait_status("the agent becomes healthy", |s| s.healthy)
        .await;
    assert!(node.dir.path().join("net.d/05-membrane.conflist").is_file());
    // The node's addresses come from the uplink, global ones (not fe80::) first.
    let log = node.log_text();
    assert!(
        log.contains("node_ipv4=198.51.100.1 node_ipv6=2001:db8:7::1"),
        "{log}"
    );
    // Forwarding is on and the node's own sockets stay off the masquerade ports.
    assert_eq!(sysctl(n, "net/ipv4/ip_forward"), "1");
    assert_eq!(sysctl(n, "net/ipv6/conf/all/forwarding"), "1");
    let local: Vec<u32> = sysctl(n, "net/ipv4/ip_local_port_range")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        local[1] < 49152,
        "local ports {local:?} overlap the NAT range 49152-65535"
    );
    let client = Client::new(node.socket());
    let attachment = AttachmentRef {
        container_id: "c1".to_string(),
        ifname: "eth0".to_string(),
    };
    let request = AllocateRequest {
        attachment: attachment.clone(),
        netns: pod.path(),
    };
    let allocation: Allocation = client.post(paths::IPAM_ALLOCATE, &request).await.unwrap();
    // Tunnel routing (the default): the uplink's 1400 less the 50 bytes of VXLAN.
    assert_eq!(allocation.mtu, 1350);
    let ipv4 = allocation.ipv4.unwrap();
    let ipv6 = allocation.ipv6.unwrap();

    // A pod veth, registered: the node routes the pod's addresses to it.
    ip(&[
        "-n", n, "link", "add", "lxc1", "type", "veth", "peer", "name", "eth0", "netns", &pod.0,
    ]);
    ip(&["-n", n, "link", "set", "lxc1", "up"]);
    let registration = EndpointRegistration {
        attachment: attachment.clone(),
        netns: pod.path(),
        host_ifname: "lxc1".to_string(),
        host_ifindex: link_field(n, "lxc1", "ifindex").parse().unwrap(),
        host_mac: link_field(n, "lxc1", "address"),
        pod_mac: link_field(&pod.0, "eth0", "address"),
        ipv4: Some(ipv4),
        ipv6: Some(ipv6),
        pod_namespace: Some("default".to_string()),
        pod_name: Some("p1".to_string()),
    };
    let endpoint: Endpoint = client
        .post(paths::ENDPOINT_CREATE, &registration)
        .await
        .unwrap();
    let routes = ip(&["-n", n, "route", "show", &ipv4.to_string()]);
    assert!(routes.contains("dev lxc1"), "{routes}");
    let routes = ip(&["-n", n, "-6", "route", "show", &ipv6.to_string()]);
    assert!(routes.contains("dev lxc1"), "{routes}");
    for addr in [ipv4.to_string(), ipv6.to_string()] {
        let neighbour = ip(&["-n", n, "neigh", "show", &addr, "dev", "lxc1"]);
        let expected = format!("lladdr {} PERMANENT", registration.pod_mac);
        assert!(neighbour.contains(&expected), "{addr}: {neighbour:?}");
    }

    // kill -9, then a restart adopts the endpoint.
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    let mut agent = node.start();
    let status = node
        .wait_status("the restarted agent is healthy", |s| s.healthy)
        .await;
    assert_eq!(status.endpoints, 1);
    let listed: Vec<Endpoint> = client.get(paths::ENDPOINT_LIST).await.unwrap();
    assert_eq!(listed, vec![endpoint]);
    assert!(node.log_text().contains("adopted=1"), "{}", node.log_text());

    // The veth goes away without a CNI DEL: the sweep releases the endpoint and addresses.
    drop(pod);
    let status = node
        .wait_status("the sweep releases the endpoint", |s| s.endpoints == 0)
        .await;
    assert_eq!(status.ipv4_pool.unwrap().used, 0);
    assert!(ip(&["-n", n, "route", "show", &ipv4.to_string()]).is_empty());

    // SIGTERM stops the agent cleanly; the pinned datapath stays.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.0.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let exit = agent.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}; log:\n{}", node.log_text());
    assert!(!node.socket().exists(), "the socket is removed on shutdown");
    assert!(
        node.pin_dir.join("links").is_dir(),
        "the datapath's pins stay after shutdown"
    );
}

/// A few random hex digits, so parallel runs do not share names.
fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{:x}", nanos.subsec_nanos() & 0xffff)
}
