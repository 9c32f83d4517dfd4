//! The agent's configuration: one typed [`AgentConfig`] made of per-component sections,
//! layered from a config file (YAML or JSON), then `MEMBRANE_*` environment variables,
//! then command-line flags. Every problem is collected and reported at once, before the
//! agent starts anything.

mod cli;
mod map_sizes;
mod port_range;

pub use cli::Cli;
pub use map_sizes::{MapSizeFlags, MapSizesConfig};
pub use port_range::PortRange;

use crate::ipam::Pool;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgentConfig {
    /// The node and its uplink.
    pub node: NodeConfig,
    /// Pod address pools.
    pub ipam: IpamConfig,
    /// Masquerading of traffic leaving the cluster.
    pub masquerade: MasqueradeConfig,
    /// The eBPF datapath.
    pub datapath: DatapathConfig,
    /// Persistent state.
    pub state: StateConfig,
    /// The cluster state store (objects, nodes, pod CIDRs, identities).
    pub kvstore: KvstoreConfig,
    /// The local API.
    pub api: ApiConfig,
    /// The CNI network configuration the agent installs.
    pub cni: CniConfig,
    /// Periodic conntrack collection and leak checks.
    pub maintenance: MaintenanceConfig,
    /// Logging.
    pub log: LogConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Flow observability: the Observer API.
    pub observe: crate::observe::ObserveConfig,
    /// Service load balancing (the kube-proxy replacement).
    pub services: crate::services::ServicesConfig,
    /// How pods reach pods on other nodes.
    pub routing: crate::routing::RoutingConfig,
    /// Security identities.
    pub identity: crate::routing::identity::IdentityConfig,
    /// Network policy enforcement.
    pub policy: crate::policy::PolicyConfig,
}

/// The node and its uplink.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeConfig {
    /// The node's name (required).
    pub name: String,
    /// The node's device to the network (required).
    pub uplink: String,
    /// The node's IPv4 address for masquerading; read from the uplink when unset.
    pub ipv4: Option<Ipv4Addr>,
    /// The node's IPv6 address for masquerading; read from the uplink when unset.
    pub ipv6: Option<Ipv6Addr>,
    /// MTU of pod interfaces; the uplink's when unset.
    pub mtu: Option<u32>,
}

/// Pod address pools.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct IpamConfig {
    /// The node's IPv4 pod CIDR; allocated from the IPv4 cluster pool when unset.
    pub ipv4_pod_cidr: Option<Ipv4Net>,
    /// The node's IPv6 pod CIDR; allocated from the IPv6 cluster pool when unset.
    pub ipv6_pod_cidr: Option<Ipv6Net>,
    /// The cluster's IPv4 pool that nodes without an IPv4 pod CIDR take one from.
    pub cluster_pool_ipv4: Option<Ipv4Net>,
    /// Prefix length of the IPv4 pod CIDRs taken from the pool.
    pub cluster_pool_ipv4_mask_size: u8,
    /// The cluster's IPv6 pool that nodes without an IPv6 pod CIDR take one from.
    pub cluster_pool_ipv6: Option<Ipv6Net>,
    /// Prefix length of the IPv6 pod CIDRs taken from the pool.
    pub cluster_pool_ipv6_mask_size: u8,
    /// Seconds an allocation may live without an endpoint before it counts as leaked.
    pub orphan_grace_secs: u64,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            ipv4_pod_cidr: None,
            ipv6_pod_cidr: None,
            cluster_pool_ipv4: None,
            cluster_pool_ipv4_mask_size: 24,
            cluster_pool_ipv6: None,
            cluster_pool_ipv6_mask_size: 64,
            orphan_grace_secs: 120,
        }
    }
}

/// Masquerading of traffic leaving the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MasqueradeConfig {
    /// IPv4 destinations never masqueraded; the IPv4 pod CIDR when unset.
    pub cluster_cidr_v4: Option<Ipv4Net>,
    /// IPv6 destinations never masqueraded; the IPv6 pod CIDR when unset.
    pub cluster_cidr_v6: Option<Ipv6Net>,
    /// Source ports of masqueraded connections. The agent narrows the node's
    /// `net.ipv4.ip_local_port_range` so that the node's own sockets stay out of it.
    pub nat_port_range: PortRange,
}

impl Default for MasqueradeConfig {
    fn default() -> Self {
        MasqueradeConfig {
            cluster_cidr_v4: None,
            cluster_cidr_v6: None,
            nat_port_range: PortRange::new(49152, 65535).expect("a valid range"),
        }
    }
}

/// The eBPF datapath.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct DatapathConfig {
    /// Pin directory; `/sys/fs/bpf/membrane/<node name>` when unset.
    pub bpffs_dir: Option<PathBuf>,
    /// Map capacities.
    pub map_sizes: MapSizesConfig,
}

/// Persistent state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct StateConfig {
    /// Directory of the state database.
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: PathBuf::from("/var/lib/membrane"),
        }
    }
}

/// The cluster state store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct KvstoreConfig {
    /// Which store.
    pub backend: KvstoreBackend,
    /// etcd client URLs (`http://host:port`), required for etcd.
    pub endpoints: Vec<String>,
    /// Seconds the node's record outlives its agent (the node lease's time to live).
    pub lease_ttl_secs: u64,
}

impl Default for KvstoreConfig {
    fn default() -> Self {
        KvstoreConfig {
            backend: KvstoreBackend::Embedded,
            endpoints: Vec::new(),
            lease_ttl_secs: 15,
        }
    }
}

/// Where the cluster state lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvstoreBackend {
    /// A redb database in the state directory (one machine).
    #[default]
    Embedded,
    /// An etcd cluster shared by every node.
    Etcd,
}

/// Why a kvstore backend does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a kvstore: use embedded or etcd")]
pub struct KvstoreBackendError {
    text: String,
}

impl FromStr for KvstoreBackend {
    type Err = KvstoreBackendError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "embedded" => Ok(KvstoreBackend::Embedded),
            "etcd" => Ok(KvstoreBackend::Etcd),
            _ => Err(KvstoreBackendError {
                text: text.to_string(),
            }),
        }
    }
}

/// The local API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiConfig {
    /// Path of the unix socket.
    pub socket: PathBuf,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            socket: PathBuf::from(membrane_api::DEFAULT_SOCKET),
        }
    }
}

/// The CNI network configuration the agent installs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CniConfig {
    /// Directory the container runtime reads network configurations from.
    pub conf_dir: PathBuf,
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
        }
    }
}

/// Periodic conntrack collection and leak checks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MaintenanceConfig {
    /// Seconds between two passes.
    pub interval_secs: u64,
    /// Seconds an established TCP connection may idle before collection removes it.
    pub ct_tcp_timeout_secs: u64,
    /// Seconds a TCP connection may idle before its handshake completes or after it
    /// closed.
    pub ct_tcp_short_timeout_secs: u64,
    /// Seconds a UDP, ICMP or other connectionless flow may idle.
    pub ct_any_timeout_secs: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        let defaults = membrane_datapath::CtTimeouts::default();
        MaintenanceConfig {
            interval_secs: 30,
            ct_tcp_timeout_secs: defaults.tcp_established.as_secs(),
            ct_tcp_short_timeout_secs: defaults.tcp_short.as_secs(),
            ct_any_timeout_secs: defaults.datagram.as_secs(),
        }
    }
}

/// Logging. The filter comes from `MEMBRANE_LOG` (`info` when unset).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line.
    Json,
}

/// Why a log format does not parse.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a log format: use plain or json")]
pub struct LogFormatError {
    text: String,
}

impl FromStr for LogFormat {
    type Err = LogFormatError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "plain" => Ok(LogFormat::Plain),
            "json" => Ok(LogFormat::Json),
            _ => Err(LogFormatError {
                text: text.to_string(),
            }),
        }
    }
}

/// Prometheus metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsConfig {
    /// TCP address to serve `/metrics` on; no metrics server when unset.
    pub listen: Option<SocketAddr>,
}

/// One thing wrong with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigProblem {
    /// The config file could not be read.
    #[error("cannot read the config file {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid YAML for the configuration.
    #[error("the config file {path} is not a valid configuration")]
    ParseYaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// The config file is not valid JSON for the configuration.
    #[error("the config file {path} is not a valid configuration")]
    ParseJson {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A flag or environment variable does not parse.
    #[error("{flag} (or {env}) {value:?} is invalid")]
    BadValue {
        /// The flag.
        flag: &'static str,
        /// The environment variable.
        env: &'static str,
        /// The value.
        value: String,
        /// The parse error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A required setting is missing.
    #[error("{flag} is required (or {env}, or {key} in the config file)")]
    Missing {
        /// The flag.
        flag: &'static str,
        /// The environment variable.
        env: &'static str,
        /// The config file key.
        key: &'static str,
    },
    /// Neither pod CIDR nor cluster pool is set.
    #[error(
        "at least one of --ipv4-pod-cidr, --ipv6-pod-cidr, --cluster-pool-ipv4 and --cluster-pool-ipv6 is required"
    )]
    NoPodCidr,
    /// A cluster pool's mask size does not fit the pool.
    #[error("{flag} {mask} must lie between the pool's prefix length {pool_len} and {max}")]
    BadMaskSize {
        /// The mask size flag.
        flag: &'static str,
        /// The mask size.
        mask: u8,
        /// The pool's prefix length.
        pool_len: u8,
        /// The longest mask that leaves addresses to hand out.
        max: u8,
    },
    /// An etcd endpoint is not an `http://host:port` URL.
    #[error("--kvstore-endpoints: {endpoint:?} is not an http://host:port URL")]
    BadEndpoint {
        /// The endpoint.
        endpoint: String,
    },
    /// The node name cannot name a directory.
    #[error("node name {name:?} must be non-empty and contain no '/'")]
    BadNodeName {
        /// The name.
        name: String,
    },
    /// The IPv6 pod CIDR leaves no address to hand out.
    #[error("the IPv6 pod CIDR {cidr} has no address to hand out")]
    EmptyPool {
        /// The CIDR.
        cidr: Ipv6Net,
    },
    /// A cluster CIDR does not contain the node's pod CIDR.
    #[error("cluster CIDR {cluster} does not contain the pod CIDR {pod}")]
    PodCidrOutsideCluster {
        /// The cluster CIDR.
        cluster: IpNet,
        /// The pod CIDR.
        pod: IpNet,
    },
    /// A cluster CIDR is set for a family the node has no pods of.
    #[error("cluster CIDR {cluster} is set but the node has no pod CIDR of its family")]
    ClusterCidrWithoutPods {
        /// The cluster CIDR.
        cluster: IpNet,
    },
    /// The MTU is too small.
    #[error("MTU {mtu} is below {min}, the minimum of {family}")]
    MtuTooSmall {
        /// The MTU.
        mtu: u32,
        /// The minimum.
        min: u32,
        /// The family imposing it.
        family: &'static str,
    },
    /// The Maglev map cannot hold even one Service's lookup table.
    #[error(
        "datapath.map-sizes.maglev (--bpf-lb-maglev-map-max) {entries} is smaller than one Maglev table of --maglev-table-size {table_size}"
    )]
    MaglevMapTooSmall {
        /// The Maglev map's entries.
        entries: u32,
        /// Positions of one table.
        table_size: u32,
    },
    /// Direct server return asked for with tunnel routing.
    #[error(
        "--bpf-lb-mode dsr (services.lb-mode) needs --routing-mode native: a tunnel carries no DSR option"
    )]
    DsrNeedsNativeRouting,
    /// An interval is zero.
    #[error("{flag} must be at least 1")]
    Zero {
        /// The flag.
        flag: &'static str,
    },
    /// Two port ranges that must stay apart overlap.
    #[error("{first} {first_range} overlaps {second} {second_range}")]
    RangesOverlap {
        /// The first range's flag.
        first: &'static str,
        /// The first range.
        first_range: PortRange,
        /// The second range's flag.
        second: &'static str,
        /// The second range.
        second_range: PortRange,
    },
}

/// Everything wrong with the configuration, reported together.
#[derive(Debug)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
            let mut source = std::error::Error::source(problem);
            while let Some(cause) = source {
                write!(f, ": {cause}")?;
                source = cause.source();
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl AgentConfig {
    /// Reads the config file named by `cli` (if any), lays the environment and flags over
    /// it, and validates the result.
    pub fn load(cli: &Cli) -> Result<AgentConfig, ConfigError> {
        let mut problems = Vec::new();
        let mut config = match &cli.config {
            Some(path) => read_file(path).unwrap_or_else(|problem| {
                problems.push(problem);
                AgentConfig::default()
            }),
            None => AgentConfig::default(),
        };
        cli.apply(&mut config, &mut problems);
        config.validate(&mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// The pin directory: the configured one, or `/sys/fs/bpf/membrane/<node name>`.
    pub fn bpffs_dir(&self) -> PathBuf {
        self.datapath
            .bpffs_dir
            .clone()
            .unwrap_or_else(|| Path::new("/sys/fs/bpf/membrane").join(&self.node.name))
    }

    /// IPv4 destinations never masqueraded: the configured cluster CIDR, else the IPv4
    /// cluster pool, else the node's IPv4 pod CIDR (as given or as allocated).
    pub fn cluster_cidr_v4(&self, pod_cidr: Option<Ipv4Net>) -> Option<Ipv4Net> {
        self.masquerade
            .cluster_cidr_v4
            .or(self.ipam.cluster_pool_ipv4)
            .or(pod_cidr)
    }

    /// IPv6 destinations never masqueraded, likewise.
    pub fn cluster_cidr_v6(&self, pod_cidr: Option<Ipv6Net>) -> Option<Ipv6Net> {
        self.masquerade
            .cluster_cidr_v6
            .or(self.ipam.cluster_pool_ipv6)
            .or(pod_cidr)
    }

    /// How long the node's record outlives its agent.
    pub fn node_lease_ttl(&self) -> Duration {
        Duration::from_secs(self.kvstore.lease_ttl_secs)
    }

    /// How long an allocation may live without an endpoint.
    pub fn orphan_grace(&self) -> Duration {
        Duration::from_secs(self.ipam.orphan_grace_secs)
    }

    /// Time between two maintenance passes.
    pub fn maintenance_interval(&self) -> Duration {
        Duration::from_secs(self.maintenance.interval_secs)
    }

    /// The idle timeouts of conntrack collection.
    pub fn ct_timeouts(&self) -> membrane_datapath::CtTimeouts {
        let m = &self.maintenance;
        membrane_datapath::CtTimeouts {
            tcp_established: Duration::from_secs(m.ct_tcp_timeout_secs),
            tcp_short: Duration::from_secs(m.ct_tcp_short_timeout_secs),
            datagram: Duration::from_secs(m.ct_any_timeout_secs),
        }
    }

    fn validate(&self, problems: &mut Vec<ConfigProblem>) {
        if self.node.name.is_empty() {
            problems.push(ConfigProblem::Missing {
                flag: "--node-name",
                env: "MEMBRANE_NODE_NAME",
                key: "node.name",
            });
        } else if self.node.name.contains('/') || self.node.name == "." || self.node.name == ".." {
            problems.push(ConfigProblem::BadNodeName {
                name: self.node.name.clone(),
            });
        }
        if self.node.uplink.is_empty() {
            problems.push(ConfigProblem::Missing {
                flag: "--uplink",
                env: "MEMBRANE_UPLINK",
                key: "node.uplink",
            });
        }
        if self.services.lb_mode == crate::services::config::LbMode::Dsr
            && self.routing.mode != crate::routing::RoutingMode::Native
        {
            problems.push(ConfigProblem::DsrNeedsNativeRouting);
        }
        let (v4, v6) = (self.ipam.ipv4_pod_cidr, self.ipam.ipv6_pod_cidr);
        let ipam = &self.ipam;
        if v4.is_none()
            && v6.is_none()
            && ipam.cluster_pool_ipv4.is_none()
            && ipam.cluster_pool_ipv6.is_none()
        {
            problems.push(ConfigProblem::NoPodCidr);
        }
        if let Some(pool) = ipam.cluster_pool_ipv4 {
            check_mask(
                "--cluster-pool-ipv4-mask-size",
                ipam.cluster_pool_ipv4_mask_size,
                pool.prefix_len(),
                30,
                problems,
            );
        }
        if let Some(pool) = ipam.cluster_pool_ipv6 {
            check_mask(
                "--cluster-pool-ipv6-mask-size",
                ipam.cluster_pool_ipv6_mask_size,
                pool.prefix_len(),
                127,
                problems,
            );
        }
        self.validate_kvstore(problems);
        if let Some(cidr) = v6
            && Pool::v6(cidr).is_none()
        {
            problems.push(ConfigProblem::EmptyPool { cidr });
        }
        check_cluster(
            self.masquerade.cluster_cidr_v4.map(IpNet::V4),
            v4.map(IpNet::V4),
            problems,
        );
        check_cluster(
            self.masquerade.cluster_cidr_v6.map(IpNet::V6),
            v6.map(IpNet::V6),
            problems,
        );
        if let Some(mtu) = self.node.mtu {
            if v6.is_some() && mtu < 1280 {
                problems.push(ConfigProblem::MtuTooSmall {
                    mtu,
                    min: 1280,
                    family: "IPv6",
                });
            } else if mtu < 576 {
                problems.push(ConfigProblem::MtuTooSmall {
                    mtu,
                    min: 576,
                    family: "IPv4",
                });
            }
        }
        self.datapath
            .map_sizes
            .validate(self.services.maglev_table_size.get(), problems);
        self.identity.validate(problems);
        let m = &self.maintenance;
        for (value, flag) in [
            (m.interval_secs, "--maintenance-interval-secs"),
            (m.ct_tcp_timeout_secs, "--bpf-ct-timeout-regular-tcp"),
            (
                m.ct_tcp_short_timeout_secs,
                "--bpf-ct-timeout-regular-tcp-syn",
            ),
            (m.ct_any_timeout_secs, "--bpf-ct-timeout-regular-any"),
        ] {
            if value == 0 {
                problems.push(ConfigProblem::Zero { flag });
            }
        }
        let (nat, node_ports) = (
            self.masquerade.nat_port_range,
            self.services.node_port_range,
        );
        if nat.range().start() <= node_ports.range().end()
            && node_ports.range().start() <= nat.range().end()
        {
            // A reply to a masqueraded connection would look like a NodePort connection.
            problems.push(ConfigProblem::RangesOverlap {
                first: "--node-port-range",
                first_range: node_ports,
                second: "--nat-port-range",
                second_range: nat,
            });
        }
    }

    fn validate_kvstore(&self, problems: &mut Vec<ConfigProblem>) {
        let kvstore = &self.kvstore;
        if kvstore.backend == KvstoreBackend::Etcd && kvstore.endpoints.is_empty() {
            problems.push(ConfigProblem::Missing {
                flag: "--kvstore-endpoints",
                env: "MEMBRANE_KVSTORE_ENDPOINTS",
                key: "kvstore.endpoints",
            });
        }
        for endpoint in &kvstore.endpoints {
            let authority = endpoint.strip_prefix("http://").unwrap_or("");
            let port = authority
                .rsplit_once(':')
                .map(|(_, port)| port.trim_end_matches('/'));
            if port.is_none_or(|port| port.parse::<u16>().is_err()) {
                problems.push(ConfigProblem::BadEndpoint {
                    endpoint: endpoint.clone(),
                });
            }
        }
        if kvstore.lease_ttl_secs == 0 {
            problems.push(ConfigProblem::Zero {
                flag: "--kvstore-lease-ttl-secs",
            });
        }
    }
}

fn check_mask(
    flag: &'static str,
    mask: u8,
    pool_len: u8,
    max: u8,
    problems: &mut Vec<ConfigProblem>,
) {
    if mask < pool_len || mask > max {
        problems.push(ConfigProblem::BadMaskSize {
            flag,
            mask,
            pool_len,
            max,
        });
    }
}

fn check_cluster(cluster: Option<IpNet>, pod: Option<IpNet>, problems: &mut Vec<ConfigProblem>) {
    match (cluster, pod) {
        (Some(cluster), Some(pod)) if !cluster.contains(&pod) => {
            problems.push(ConfigProblem::PodCidrOutsideCluster { cluster, pod });
        }
        (Some(cluster), None) => problems.push(ConfigProblem::ClusterCidrWithoutPods { cluster }),
        _ => {}
    }
}

/// Reads a config file: JSON when its name ends in `.json`, YAML otherwise.
fn read_file(path: &Path) -> Result<AgentConfig, ConfigProblem> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigProblem::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).map_err(|source| ConfigProblem::ParseJson {
            path: path.to_path_buf(),
            source,
        })
    } else if text.trim().is_empty() {
        Ok(AgentConfig::default())
    } else {
        serde_yaml_ng::from_str(&text).map_err(|source| ConfigProblem::ParseYaml {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests;
