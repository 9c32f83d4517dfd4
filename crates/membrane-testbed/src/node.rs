//! A node of the test bed: a network namespace joined to the outside by its uplink, a
//! cgroup v2 subtree, a bpffs pin directory, a state directory and the agent.

use crate::addressing::{NodeAddressing, UPLINK};
use crate::agent::{Agent, AgentConfig, AgentError};
use crate::binaries;
use crate::cgroup::{Cgroup, CgroupError};
use crate::cni::CniRuntime;
use crate::names;
use crate::netlink::{self, Link, NetlinkError, Route};
use crate::netns::{Netns, NetnsError};
use crate::outside::Outside;
use crate::panic_note;
use crate::pin_dir::{PinDir, PinDirError};
use crate::process::Place;
use crate::wiring::{self, WiringError};
use membrane_api::{AgentStatus, Endpoint, paths};
use rtnetlink::IpVersion;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// How many lines of the agent's log a failing test shows.
const LOG_LINES_ON_PANIC: usize = 60;

/// Errors of bringing a node up.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node number is outside the address plan.
    #[error("node number {index} is outside 1..={max}")]
    BadIndex {
        /// The number given.
        index: u8,
        /// The highest allowed.
        max: u8,
    },
    /// The namespace could not be created.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The namespace could not be wired to the outside.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The cgroup could not be created.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The pin directory could not be created.
    #[error(transparent)]
    PinDir(#[from] PinDirError),
    /// The IPv4 pod CIDR asked for does not fit the address plan.
    #[error(
        "a /{prefix} IPv4 pod CIDR for node {index} does not fit in {pods} (prefix lengths {min}..=24, the node's block inside it)",
        pods = crate::addressing::PODS_V4,
        min = crate::addressing::PODS_V4.prefix_len()
    )]
    BadPodPrefix {
        /// The node number.
        index: u8,
        /// The prefix length asked for.
        prefix: u8,
    },
    /// The state directory could not be created.
    #[error("cannot create the node's state directory")]
    StateDir(#[source] std::io::Error),
    /// The agent could not be started.
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// One node with its agent running. Dropping it stops the agent, kills every process
/// left in its cgroup and removes the cgroup, pin directory, namespace and state.
#[derive(Debug)]
pub struct Node {
    name: String,
    plan: NodeAddressing,
    // Fields drop in this order: the agent stops before its pins, cgroup and namespace go.
    agent: Agent,
    pin_dir: PinDir,
    cgroup: Cgroup,
    netns: Netns,
    state: tempfile::TempDir,
}

/// How to bring up a node: its number and outside, the width of its IPv4 pod CIDR and the
/// agent's further flags. Made by [`Node::builder`], used by [`NodeBuilder::start`].
#[derive(Debug)]
pub struct NodeBuilder<'a> {
    outside: &'a Outside,
    index: u8,
    pod_prefix_v4: u8,
    extra: Vec<String>,
}

impl NodeBuilder<'_> {
    /// Gives the node an IPv4 pod CIDR of `prefix` bits instead of a /24 (see
    /// [`NodeAddressing::with_pod_prefix_v4`]): a /22 or /21 for a thousand pods.
    pub fn pod_prefix_v4(mut self, prefix: u8) -> Self {
        self.pod_prefix_v4 = prefix;
        self
    }

    /// Appends `flags` to the agent's command line, after the test bed's own.
    pub fn flags(mut self, flags: &[&str]) -> Self {
        self.extra.extend(flags.iter().map(|s| s.to_string()));
        self
    }

    /// Brings the node up and starts its agent.
    pub fn start(self) -> Result<Node, NodeError> {
        panic_note::remember_panics();
        let index = self.index;
        let plan = NodeAddressing::new(index).ok_or(NodeError::BadIndex {
            index,
            max: NodeAddressing::MAX_INDEX,
        })?;
        let plan = plan
            .with_pod_prefix_v4(self.pod_prefix_v4)
            .ok_or(NodeError::BadPodPrefix {
                index,
                prefix: self.pod_prefix_v4,
            })?;
        Node::bring_up(self.outside, plan, self.extra)
    }
}

impl Node {
    /// Brings up node number `index` attached to `outside`, and starts its agent.
    pub fn start(outside: &Outside, index: u8) -> Result<Node, NodeError> {
        Node::builder(outside, index).start()
    }

    /// Brings up node number `index` attached to `outside`, and starts its agent with
    /// `extra` flags after the test bed's own.
    pub fn start_with(outside: &Outside, index: u8, extra: &[&str]) -> Result<Node, NodeError> {
        Node::builder(outside, index).flags(extra).start()
    }

    /// A node number `index` attached to `outside`, with the plan's defaults until
    /// changed: a /24 IPv4 pod CIDR, no further agent flags.
    pub fn builder(outside: &Outside, index: u8) -> NodeBuilder<'_> {
        NodeBuilder {
            outside,
            index,
            pod_prefix_v4: NodeAddressing::DEFAULT_POD_PREFIX_V4,
            extra: Vec::new(),
        }
    }

    /// Creates the namespace, wiring, cgroup, pins and state of `plan`'s node and starts
    /// its agent with `extra` flags.
    fn bring_up(
        outside: &Outside,
        plan: NodeAddressing,
        extra: Vec<String>,
    ) -> Result<Node, NodeError> {
        let index = plan.index();
        let name = names::unique(&format!("node{index}"));
        let netns = Netns::create(&format!("n{index}"))?;
        wiring::loopback_up(&netns)?;
        wiring::enable_forwarding(&netns)?;
        wiring::skip_dad(&netns)?;
        wiring::connect_node(&netns, outside.netns(), plan)?;
        let cgroup = Cgroup::create(&format!("node{index}"))?;
        let pin_dir = PinDir::create(&name)?;
        let state = tempfile::Builder::new()
            .prefix(&format!("membrane-{name}-"))
            .tempdir()
            .map_err(NodeError::StateDir)?;
        let cni_conf_dir = state.path().join("net.d");
        std::fs::create_dir_all(&cni_conf_dir).map_err(NodeError::StateDir)?;
        let config = AgentConfig {
            node_name: name.clone(),
            state_dir: state.path().join("agent"),
            socket: state.path().join("agent.sock"),
            bpffs_dir: pin_dir.path().to_path_buf(),
            ipv4_pod_cidr: plan.pod_cidr_v4(),
            ipv6_pod_cidr: plan.pod_cidr_v6(),
            uplink: UPLINK.to_string(),
            cni_conf_dir,
            cgroup_root: cgroup.path().to_path_buf(),
            extra_args: extra,
        };
        std::fs::create_dir_all(&config.state_dir).map_err(NodeError::StateDir)?;
        let agent = Agent::new(config, state.path().join("agent.log"));
        let node = Node {
            name,
            plan,
            agent,
            pin_dir,
            cgroup,
            netns,
            state,
        };
        node.agent.start(&node)?;
        Ok(node)
    }

    /// The node's unique name (also the agent's `--node-name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's address plan.
    pub fn addressing(&self) -> NodeAddressing {
        self.plan
    }

    /// The node's IPv4 address (on its uplink): what the outside sees when a pod is
    /// masqueraded.
    pub fn ipv4(&self) -> Ipv4Addr {
        self.plan.uplink_v4().addr()
    }

    /// The node's IPv6 address (on its uplink).
    pub fn ipv6(&self) -> Ipv6Addr {
        self.plan.uplink_v6().addr()
    }

    /// The node's bpffs pin directory.
    pub fn pin_dir(&self) -> &PinDir {
        &self.pin_dir
    }

    /// The node's state directory (agent state, socket, log, CNI configuration).
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The directory where the agent writes the CNI configuration.
    pub fn cni_conf_dir(&self) -> &Path {
        &self.agent.config().cni_conf_dir
    }

    /// The node's agent.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// The agent's status.
    pub fn status(&self) -> Result<AgentStatus, AgentError> {
        self.agent.status()
    }

    /// The endpoints the agent manages.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, AgentError> {
        self.agent.get(paths::ENDPOINT_LIST)
    }

    /// Starts the agent again (if it is not running), with the same state and pins, and
    /// waits until it is healthy.
    pub fn start_agent(&self) -> Result<AgentStatus, AgentError> {
        self.agent.start(self)
    }

    /// Stops the agent gracefully, then starts it again.
    pub fn restart_agent(&self) -> Result<AgentStatus, AgentError> {
        self.agent.stop();
        self.start_agent()
    }

    /// Kills the agent with SIGKILL (a crash), then starts it again.
    pub fn crash_and_restart_agent(&self) -> Result<AgentStatus, AgentError> {
        self.agent.kill();
        self.start_agent()
    }

    /// The CNI runtime of this node: plugins from the build directory, configuration
    /// from [`Node::cni_conf_dir`], run inside the node's namespace and cgroup.
    pub fn cni(&self) -> CniRuntime<'_> {
        CniRuntime::new(self, binaries::bin_dir(), self.cni_conf_dir().to_path_buf())
    }

    /// A new cgroup below the node's, for a pod.
    pub fn child_cgroup(&self, prefix: &str) -> Result<Cgroup, CgroupError> {
        self.cgroup.child(prefix)
    }

    /// The links of the node's namespace.
    pub fn links(&self) -> Result<Vec<Link>, NetlinkError> {
        netlink::run_in(&self.netns, |handle| async move {
            netlink::links(&handle).await
        })
    }

    /// The main routing table of the node's namespace, for one IP version.
    pub fn routes(&self, version: IpVersion) -> Result<Vec<Route>, NetlinkError> {
        netlink::run_in(&self.netns, |handle| async move {
            netlink::routes(&handle, version).await
        })
    }

    /// The agent's log file.
    pub fn log_path(&self) -> PathBuf {
        self.agent.log_path().to_path_buf()
    }
}

impl Place for Node {
    fn netns(&self) -> &Netns {
        &self.netns
    }
    fn cgroup(&self) -> Option<&Cgroup> {
        Some(&self.cgroup)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- agent log of node {} ({}), last {LOG_LINES_ON_PANIC} lines:\n{}\n----",
                self.name,
                self.agent.log_path().display(),
                self.agent.log_tail(LOG_LINES_ON_PANIC)
            );
            if let Some(message) = panic_note::message() {
                eprintln!("---- the test failed with: {message}");
            }
        }
    }
}
