//! The shared test bed of the suite: three nodes on one etcd (tunnel routing; node 3
//! in audit mode), the outside (the world), namespaces and pods with labels and named
//! container ports, and servers in every pod, on every node and in the world. Started
//! once; scenarios only apply and delete policies.

use crate::inventory::{self, ALT_PORTS, AUDIT_NODE, NODES, PODS, PodSpec};
use crate::scenario::{Family, FlowLine, TraceLine};
use membrane_api::policy::TraceReport;
use membrane_testbed::addressing::{WORLD_V4, WORLD_V6};
use membrane_testbed::workload::{self, DEFAULT_PORTS, Server};
use membrane_testbed::{Etcd, Node, Outside, Place, Pod};
use membrane_testbed::{cli, cluster};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the nodes get to learn each other's pods.
const CONVERGE: Duration = Duration::from_secs(30);

/// The outside, etcd and the nodes.
pub struct Cluster {
    /// The nodes, node 1 first.
    pub nodes: Vec<Node>,
    _etcd: Etcd,
    /// The world.
    pub outside: Outside,
}

impl Cluster {
    /// Starts etcd in the outside and [`NODES`] agents on it in tunnel mode (the last in
    /// audit mode), and routes the pod CIDRs from the outside to their nodes so the
    /// world can reach pods.
    pub fn start() -> Cluster {
        let outside = Outside::create().unwrap();
        let etcd = Etcd::start(outside.netns(), IpAddr::V4(outside.world_v4())).unwrap();
        let endpoint = etcd.endpoint();
        let flags = cluster::etcd_flags(&endpoint, "tunnel");
        let nodes: Vec<Node> = (1..=NODES)
            .map(|index| {
                let mut node_flags = flags.clone();
                if index == AUDIT_NODE {
                    node_flags.extend(["--policy-audit-mode", "true"]);
                }
                Node::start_with(&outside, index, &node_flags).unwrap()
            })
            .collect();
        for node in &nodes {
            membrane_testbed::wiring::route_pod_cidrs(outside.netns(), node.addressing()).unwrap();
        }
        Cluster {
            nodes,
            _etcd: etcd,
            outside,
        }
    }

    /// Node number `index` (1 to [`NODES`]).
    pub fn node(&self, index: u8) -> &Node {
        &self.nodes[usize::from(index) - 1]
    }
}

/// Where a probe runs and where it connects to.
pub struct Peer<'b> {
    /// Where client processes run.
    pub place: &'b dyn Place,
    v4: IpAddr,
    v6: IpAddr,
}

impl Peer<'_> {
    /// The peer's address of `family`.
    pub fn address(&self, family: Family) -> IpAddr {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// The pods and servers, on a started [`Cluster`].
pub struct Bed<'c> {
    cluster: &'c Cluster,
    pods: Vec<(&'static PodSpec, Pod<'c>)>,
    _servers: Vec<Server>,
    manifests: tempfile::TempDir,
}

impl<'c> Bed<'c> {
    /// Applies the namespaces and Pod objects with `membrane apply`, creates the pods
    /// through CNI ADD (the agents resolve their identities from those objects), starts
    /// the servers, and waits until every pod reaches every other one.
    pub fn populate(cluster: &'c Cluster) -> Bed<'c> {
        let manifests = tempfile::Builder::new()
            .prefix("membrane-policy-conformance-")
            .tempdir()
            .unwrap();
        let mut bed = Bed {
            cluster,
            pods: Vec::new(),
            _servers: Vec::new(),
            manifests,
        };
        let objects = bed.write_manifest(
            "bed",
            &inventory::objects(|n| cluster.node(n).name().to_string()),
        );
        bed.membrane(&["apply", "-f"], &objects)
            .unwrap_or_else(|e| panic!("applying the bed's objects: {e}"));
        for spec in PODS {
            let pod = Pod::create(cluster.node(spec.node), spec.namespace, spec.name).unwrap();
            bed._servers
                .push(workload::serve(&pod, DEFAULT_PORTS).unwrap());
            bed._servers.push(workload::serve(&pod, ALT_PORTS).unwrap());
            bed.pods.push((spec, pod));
        }
        bed._servers
            .push(workload::serve(&cluster.outside, DEFAULT_PORTS).unwrap());
        for node in &cluster.nodes {
            bed._servers
                .push(workload::serve(node, DEFAULT_PORTS).unwrap());
        }
        bed.wait_all_reach_each_other();
        bed
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<&Pod<'c>> {
        self.pods
            .iter()
            .find(|(spec, _)| spec.namespace == namespace && spec.name == name)
            .map(|(_, pod)| pod)
    }

    /// The peer called `name`: `namespace/pod`, `world` or `node<N>` (a process on node N).
    pub fn peer(&self, name: &str) -> Result<Peer<'_>, String> {
        if let Some((namespace, pod)) = name.split_once('/') {
            let pod = self
                .pod(namespace, pod)
                .ok_or_else(|| format!("no pod `{name}` in the bed"))?;
            return Ok(Peer {
                place: pod,
                v4: IpAddr::V4(pod.ipv4().unwrap()),
                v6: IpAddr::V6(pod.ipv6().unwrap()),
            });
        }
        match name {
            "world" => Ok(Peer {
                place: &self.cluster.outside,
                v4: IpAddr::V4(WORLD_V4),
                v6: IpAddr::V6(WORLD_V6),
            }),
            _ => {
                let node = name
                    .strip_prefix("node")
                    .and_then(|number| number.parse::<u8>().ok())
                    .filter(|number| (1..=NODES).contains(number))
                    .map(|number| self.cluster.node(number))
                    .ok_or_else(|| {
                        format!(
                            "unknown peer `{name}`: expected namespace/pod, world or node1..node{NODES}"
                        )
                    })?;
                Ok(Peer {
                    place: node,
                    v4: IpAddr::V4(node.ipv4()),
                    v6: IpAddr::V6(node.ipv6()),
                })
            }
        }
    }

    /// The address a placeholder stands for: `pod:NS/NAME:v4`, `node:N:v6` (a node's
    /// uplink address), `gateway:N:v4` (the world's end facing node N: the source of
    /// world probes to that node's pods), `world:v4`.
    fn placeholder(&self, key: &str) -> Result<String, String> {
        let parts: Vec<&str> = key.split(':').collect();
        let family = match parts.last() {
            Some(&"v4") => Family::V4,
            Some(&"v6") => Family::V6,
            _ => return Err(format!("placeholder `{key}` does not end in :v4 or :v6")),
        };
        let node_plan = |number: &str| {
            number
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=NODES).contains(n))
                .map(|n| self.cluster.node(n).addressing())
                .ok_or_else(|| format!("placeholder `{key}`: no node `{number}`"))
        };
        let address = match parts.as_slice() {
            ["pod", name, _] | ["node", name, _] => {
                let peer_name = if parts[0] == "node" {
                    format!("node{name}")
                } else {
                    name.to_string()
                };
                self.peer(&peer_name)?.address(family)
            }
            ["gateway", number, _] => {
                let plan = node_plan(number)?;
                match family {
                    Family::V4 => IpAddr::V4(plan.gateway_v4().addr()),
                    Family::V6 => IpAddr::V6(plan.gateway_v6().addr()),
                }
            }
            ["world", _] => self.peer("world")?.address(family),
            _ => return Err(format!("unknown placeholder `{key}`")),
        };
        Ok(address.to_string())
    }

    /// `text` with every `${...}` placeholder replaced by its address.
    pub fn expand(&self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed placeholder at `{}`", &rest[start..]))?;
            out.push_str(&self.placeholder(&after[..end])?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Writes `text` to `<name>.yaml` in the bed's manifest directory.
    pub fn write_manifest(&self, name: &str, text: &str) -> PathBuf {
        let path = self.manifests.path().join(format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs the real CLI on node 1 against its agent: `membrane <args> <file>`; its
    /// stdout, or what it said when it failed.
    pub fn membrane(&self, args: &[&str], file: &Path) -> Result<String, String> {
        let file = file.to_str().expect("the manifest directory is UTF-8");
        let args: Vec<&str> = args.iter().copied().chain([file]).collect();
        run_cli(self.cluster.node(1), &args)
    }

    /// `membrane policy trace -o json` for `line`, on the sender's node (the receiver's
    /// when the sender is not a pod).
    pub fn trace(&self, line: &TraceLine) -> Result<TraceReport, String> {
        let spec = PODS
            .iter()
            .find(|spec| spec.full_name() == line.from)
            .or_else(|| PODS.iter().find(|spec| spec.full_name() == line.to))
            .ok_or_else(|| format!("{line}: neither end is a pod of the bed"))?;
        let from = self.trace_peer(&line.from)?;
        let to = self.trace_peer(&line.to)?;
        let args = [
            "policy", "trace", "--from", &from, "--to", &to, "--port", &line.port, "-o", "json",
        ];
        let stdout = run_cli(self.cluster.node(spec.node), &args)?;
        serde_json::from_str(&stdout).map_err(|e| format!("{line}: {e}: {stdout}"))
    }

    /// How many IPv4 flows `line`'s node reported from its source to its destination
    /// with its verdict in the last `since` (`membrane observe -o json` on that node).
    /// Peers are matched by address: a node names only the pods whose Pod objects or
    /// endpoints it knows addresses of, and the bed's Pod objects carry no status.
    pub fn flows(&self, line: &FlowLine, since: Duration) -> Result<usize, String> {
        let node = line
            .node
            .strip_prefix("node")
            .and_then(|number| number.parse::<u8>().ok())
            .filter(|number| (1..=NODES).contains(number))
            .ok_or_else(|| format!("{line}: no node `{}`", line.node))?;
        let since = format!("{}s", since.as_secs() + 1);
        let args = [
            "observe",
            "--since",
            &since,
            "--verdict",
            &line.verdict,
            "--from-pod",
            &line.from,
            "--to-pod",
            &line.to,
            "-o",
            "json",
        ];
        let stdout = run_cli(self.cluster.node(node), &args)?;
        Ok(stdout.lines().filter(|l| !l.trim().is_empty()).count())
    }

    /// A peer as the trace command takes it: `namespace/pod`, or the IPv4 address.
    fn trace_peer(&self, name: &str) -> Result<String, String> {
        if name.contains('/') {
            Ok(name.to_string())
        } else {
            Ok(self.peer(name)?.address(Family::V4).to_string())
        }
    }

    /// Waits (bounded) until every pod reaches every pod over TCP on both families: the
    /// nodes have learnt each other's pods.
    fn wait_all_reach_each_other(&self) {
        let deadline = Instant::now() + CONVERGE;
        for (_, from) in &self.pods {
            for (_, to) in &self.pods {
                for address in [
                    IpAddr::V4(to.ipv4().unwrap()),
                    IpAddr::V6(to.ipv6().unwrap()),
                ] {
                    let target = std::net::SocketAddr::new(address, DEFAULT_PORTS.tcp);
                    for attempt in 0.. {
                        let outcome = workload::tcp(from, target, 1).unwrap();
                        if outcome.success {
                            break;
                        }
                        assert!(
                            Instant::now() < deadline && attempt < 100,
                            "{} cannot reach {} at {target} within {CONVERGE:?}: {outcome:?}",
                            from.full_name(),
                            to.full_name()
                        );
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }
    }
}

/// Runs `membrane <args>` on `node` (its namespace and cgroup, as an operator's shell
/// there would); its stdout, or what it said when it failed.
fn run_cli(node: &Node, args: &[&str]) -> Result<String, String> {
    let finished = cli::run(node, args, "").map_err(|e| e.to_string())?;
    if finished.status.success() {
        Ok(finished.stdout)
    } else {
        Err(format!(
            "membrane {}: {}: {}{}",
            args.join(" "),
            finished.status,
            finished.stdout,
            finished.stderr
        ))
    }
}
