//! Command-line flags, each also read from a `MEMBRANE_*` environment variable (a flag
//! wins over its variable, and both over the config file).
//!
//! Values are taken as text and parsed here rather than by clap, so that every bad value
//! is reported together with every other problem.

use super::{AgentConfig, ConfigProblem, KvstoreBackend, LogFormat, PortRange};
use crate::services::{LbAlgorithm, MaglevTableSize};
use clap::Parser;
use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// membrane-agent: the node agent of Membrane (eBPF networking for Kubernetes).
#[derive(Clone, Debug, Default, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Config file (YAML, or JSON when it ends in .json); flags and MEMBRANE_* variables
    /// override it.
    #[arg(long, env = "MEMBRANE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node's name.
    #[arg(long, env = "MEMBRANE_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// Directory of the agent's state database [default: /var/lib/membrane].
    #[arg(long, env = "MEMBRANE_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Unix socket of the local API [default: /var/run/membrane/agent.sock].
    #[arg(long, env = "MEMBRANE_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// bpffs pin directory [default: /sys/fs/bpf/membrane/<node name>].
    #[arg(long, env = "MEMBRANE_BPFFS_DIR", value_name = "DIR")]
    pub bpffs_dir: Option<PathBuf>,
    /// The node's IPv4 pod CIDR (at least one pod CIDR is required).
    #[arg(long, env = "MEMBRANE_IPV4_POD_CIDR", value_name = "CIDR")]
    pub ipv4_pod_cidr: Option<String>,
    /// The node's IPv6 pod CIDR.
    #[arg(long, env = "MEMBRANE_IPV6_POD_CIDR", value_name = "CIDR")]
    pub ipv6_pod_cidr: Option<String>,
    /// The cluster's IPv4 pool: without --ipv4-pod-cidr, the node takes a pod CIDR from
    /// it through the kvstore (no two nodes get the same one) and keeps it across restarts.
    #[arg(long, env = "MEMBRANE_CLUSTER_POOL_IPV4", value_name = "CIDR")]
    pub cluster_pool_ipv4: Option<String>,
    /// Prefix length of the pod CIDRs taken from the IPv4 pool [default: 24].
    #[arg(
        long,
        env = "MEMBRANE_CLUSTER_POOL_IPV4_MASK_SIZE",
        value_name = "BITS"
    )]
    pub cluster_pool_ipv4_mask_size: Option<String>,
    /// The cluster's IPv6 pool, likewise for --ipv6-pod-cidr.
    #[arg(long, env = "MEMBRANE_CLUSTER_POOL_IPV6", value_name = "CIDR")]
    pub cluster_pool_ipv6: Option<String>,
    /// Prefix length of the pod CIDRs taken from the IPv6 pool [default: 64].
    #[arg(
        long,
        env = "MEMBRANE_CLUSTER_POOL_IPV6_MASK_SIZE",
        value_name = "BITS"
    )]
    pub cluster_pool_ipv6_mask_size: Option<String>,
    /// Where the cluster state lives: embedded (in the state directory) or etcd
    /// [default: embedded].
    #[arg(long, env = "MEMBRANE_KVSTORE", value_name = "BACKEND")]
    pub kvstore: Option<String>,
    /// etcd client URLs, comma-separated (http://host:port[,...]); required for etcd.
    #[arg(long, env = "MEMBRANE_KVSTORE_ENDPOINTS", value_name = "URL[,URL]")]
    pub kvstore_endpoints: Option<String>,
    /// Seconds a stopped node's record stays visible to the others [default: 15].
    #[arg(long, env = "MEMBRANE_KVSTORE_LEASE_TTL_SECS", value_name = "SECS")]
    pub kvstore_lease_ttl_secs: Option<String>,
    /// The node's device to the network.
    #[arg(long, env = "MEMBRANE_UPLINK", value_name = "IFNAME")]
    pub uplink: Option<String>,
    /// The node's IPv4 address for masquerading [default: the uplink's, global scope first].
    #[arg(long, env = "MEMBRANE_NODE_IPV4", value_name = "ADDR")]
    pub node_ipv4: Option<String>,
    /// The node's IPv6 address for masquerading [default: the uplink's, global scope first].
    #[arg(long, env = "MEMBRANE_NODE_IPV6", value_name = "ADDR")]
    pub node_ipv6: Option<String>,
    /// IPv4 destinations never masqueraded [default: the IPv4 pod CIDR].
    #[arg(long, env = "MEMBRANE_CLUSTER_CIDR_V4", value_name = "CIDR")]
    pub cluster_cidr_v4: Option<String>,
    /// IPv6 destinations never masqueraded [default: the IPv6 pod CIDR].
    #[arg(long, env = "MEMBRANE_CLUSTER_CIDR_V6", value_name = "CIDR")]
    pub cluster_cidr_v6: Option<String>,
    /// Source ports for masquerading, FIRST-LAST [default: 49152-65535]. The agent narrows
    /// the node's net.ipv4.ip_local_port_range so the two do not overlap.
    #[arg(long, env = "MEMBRANE_NAT_PORT_RANGE", value_name = "FIRST-LAST")]
    pub nat_port_range: Option<String>,
    /// MTU of pod interfaces [default: the uplink's].
    #[arg(long, env = "MEMBRANE_MTU", value_name = "BYTES")]
    pub mtu: Option<String>,
    /// Where to write the CNI network configuration [default: /etc/cni/net.d].
    #[arg(long, env = "MEMBRANE_CNI_CONF_DIR", value_name = "DIR")]
    pub cni_conf_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this TCP address (e.g. 127.0.0.1:9962) [default: off].
    #[arg(long, env = "MEMBRANE_METRICS", value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// Serve the Observer (Hubble) API on this TCP address too, or `off`
    /// [default: [::]:4244]. TLS is set in the config file's observe section.
    #[arg(long, env = "MEMBRANE_OBSERVE_LISTEN", value_name = "ADDR:PORT|off")]
    pub observe_listen: Option<String>,
    /// Which forwarded packets become flows: all (no aggregation), connections (each
    /// connection's first packet and TCP SYN/FIN/RST) or drops [default: connections].
    /// Drops are always reported.
    #[arg(long, env = "MEMBRANE_FLOW_EVENTS", value_name = "WHICH")]
    pub flow_events: Option<String>,
    /// Log line format: plain or json [default: plain]. The filter is MEMBRANE_LOG.
    #[arg(long, env = "MEMBRANE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Seconds an address allocation may go without an endpoint before it is released as
    /// leaked [default: 120].
    #[arg(long, env = "MEMBRANE_ORPHAN_GRACE_SECS", value_name = "SECS")]
    pub orphan_grace_secs: Option<String>,
    /// Seconds between conntrack collections and leak checks [default: 30].
    #[arg(long, env = "MEMBRANE_MAINTENANCE_INTERVAL_SECS", value_name = "SECS")]
    pub maintenance_interval_secs: Option<String>,
    /// Seconds an established TCP connection may idle before conntrack collection
    /// removes it [default: 21600].
    #[arg(long, env = "MEMBRANE_BPF_CT_TIMEOUT_REGULAR_TCP", value_name = "SECS")]
    pub bpf_ct_timeout_regular_tcp: Option<String>,
    /// Seconds a TCP connection may idle before its handshake completes or once closed
    /// [default: 60].
    #[arg(
        long,
        env = "MEMBRANE_BPF_CT_TIMEOUT_REGULAR_TCP_SYN",
        value_name = "SECS"
    )]
    pub bpf_ct_timeout_regular_tcp_syn: Option<String>,
    /// Seconds a UDP, ICMP or other connectionless flow may idle [default: 60].
    #[arg(long, env = "MEMBRANE_BPF_CT_TIMEOUT_REGULAR_ANY", value_name = "SECS")]
    pub bpf_ct_timeout_regular_any: Option<String>,
    /// Ports NodePorts may use, FIRST-LAST [default: 30000-32767].
    #[arg(long, env = "MEMBRANE_NODE_PORT_RANGE", value_name = "FIRST-LAST")]
    pub node_port_range: Option<String>,
    /// Backend selection of Services without the service.cilium.io/lb-algorithm
    /// annotation: random or maglev [default: random].
    #[arg(long, env = "MEMBRANE_LB_ALGORITHM", value_name = "ALGORITHM")]
    pub lb_algorithm: Option<String>,
    /// Positions of each Maglev lookup table, a prime [default: 16381].
    #[arg(long, env = "MEMBRANE_MAGLEV_TABLE_SIZE", value_name = "PRIME")]
    pub maglev_table_size: Option<String>,
    /// Socket-level load balancing for every process below --cgroup-root; false leaves
    /// only per-packet load balancing [default: true].
    #[arg(
        long,
        env = "MEMBRANE_SOCKET_LB",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub socket_lb: Option<String>,
    /// How a request from outside reaches a backend on another node: snat (replies
    /// come back through this node) or dsr (TCP with native routing: the backend
    /// answers the client directly) [default: snat].
    #[arg(long, env = "MEMBRANE_BPF_LB_MODE", value_name = "MODE")]
    pub bpf_lb_mode: Option<String>,
    /// XDP acceleration of NodePort, LoadBalancer and external-IP Services on the
    /// uplink: disabled, native, best-effort (native where the driver can) or generic
    /// (any device; also accepted as testing-only) [default: disabled].
    #[arg(long, env = "MEMBRANE_BPF_LB_ACCELERATION", value_name = "MODE")]
    pub bpf_lb_acceleration: Option<String>,
    /// The cgroup v2 directory the socket-level load balancer attaches to; pods and
    /// node processes must run below it [default: none, socket LB off].
    #[arg(long, env = "MEMBRANE_CGROUP_ROOT", value_name = "DIR")]
    pub cgroup_root: Option<PathBuf>,
    /// How pods reach pods on other nodes: tunnel (VXLAN) or native [default: tunnel].
    #[arg(long, env = "MEMBRANE_ROUTING_MODE", value_name = "MODE")]
    pub routing_mode: Option<String>,
    /// Name of the VXLAN device in tunnel mode [default: membrane_vxlan].
    #[arg(long, env = "MEMBRANE_TUNNEL_DEVICE", value_name = "IFNAME")]
    pub tunnel_device: Option<String>,
    /// Capacities of the eBPF maps.
    #[command(flatten)]
    pub map_sizes: super::MapSizeFlags,
    /// Security identities.
    #[command(flatten)]
    pub identity: crate::routing::identity::config::IdentityFlags,
    /// Network policy enforcement.
    #[command(flatten)]
    pub policy: crate::policy::PolicyFlags,
}

impl Cli {
    /// Lays the flags (and their environment variables) over `config`, recording every
    /// value that does not parse in `problems`.
    pub(super) fn apply(&self, config: &mut AgentConfig, problems: &mut Vec<ConfigProblem>) {
        self.map_sizes
            .apply(&mut config.datapath.map_sizes, problems);
        self.identity.apply(&mut config.identity, problems);
        self.policy.apply(&mut config.policy, problems);
        let mut parse = Parse { problems };
        if let Some(name) = &self.node_name {
            config.node.name = name.clone();
        }
        if let Some(dir) = &self.state_dir {
            config.state.dir = dir.clone();
        }
        if let Some(socket) = &self.socket {
            config.api.socket = socket.clone();
        }
        if let Some(dir) = &self.bpffs_dir {
            config.datapath.bpffs_dir = Some(dir.clone());
        }
        if let Some(dir) = &self.cni_conf_dir {
            config.cni.conf_dir = dir.clone();
        }
        if let Some(uplink) = &self.uplink {
            config.node.uplink = uplink.clone();
        }
        let n = &mut config.node;
        parse.set::<Ipv4Addr>(&self.node_ipv4, "--node-ipv4", "MEMBRANE_NODE_IPV4", |v| {
            n.ipv4 = Some(v)
        });
        parse.set::<Ipv6Addr>(&self.node_ipv6, "--node-ipv6", "MEMBRANE_NODE_IPV6", |v| {
            n.ipv6 = Some(v)
        });
        parse.set::<u32>(&self.mtu, "--mtu", "MEMBRANE_MTU", |v| n.mtu = Some(v));
        let i = &mut config.ipam;
        parse.set::<Ipv4Net>(
            &self.ipv4_pod_cidr,
            "--ipv4-pod-cidr",
            "MEMBRANE_IPV4_POD_CIDR",
            |v| i.ipv4_pod_cidr = Some(v),
        );
        parse.set::<Ipv6Net>(
            &self.ipv6_pod_cidr,
            "--ipv6-pod-cidr",
            "MEMBRANE_IPV6_POD_CIDR",
            |v| i.ipv6_pod_cidr = Some(v),
        );
        parse.set::<u64>(
            &self.orphan_grace_secs,
            "--orphan-grace-secs",
            "MEMBRANE_ORPHAN_GRACE_SECS",
            |v| i.orphan_grace_secs = v,
        );
        parse.set::<Ipv4Net>(
            &self.cluster_pool_ipv4,
            "--cluster-pool-ipv4",
            "MEMBRANE_CLUSTER_POOL_IPV4",
            |v| i.cluster_pool_ipv4 = Some(v),
        );
        parse.set::<u8>(
            &self.cluster_pool_ipv4_mask_size,
            "--cluster-pool-ipv4-mask-size",
            "MEMBRANE_CLUSTER_POOL_IPV4_MASK_SIZE",
            |v| i.cluster_pool_ipv4_mask_size = v,
        );
        parse.set::<Ipv6Net>(
            &self.cluster_pool_ipv6,
            "--cluster-pool-ipv6",
            "MEMBRANE_CLUSTER_POOL_IPV6",
            |v| i.cluster_pool_ipv6 = Some(v),
        );
        parse.set::<u8>(
            &self.cluster_pool_ipv6_mask_size,
            "--cluster-pool-ipv6-mask-size",
            "MEMBRANE_CLUSTER_POOL_IPV6_MASK_SIZE",
            |v| i.cluster_pool_ipv6_mask_size = v,
        );
        let k = &mut config.kvstore;
        parse.set::<KvstoreBackend>(&self.kvstore, "--kvstore", "MEMBRANE_KVSTORE", |v| {
            k.backend = v
        });
        if let Some(endpoints) = &self.kvstore_endpoints {
            k.endpoints = endpoints
                .split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_string)
                .collect();
        }
        parse.set::<u64>(
            &self.kvstore_lease_ttl_secs,
            "--kvstore-lease-ttl-secs",
            "MEMBRANE_KVSTORE_LEASE_TTL_SECS",
            |v| k.lease_ttl_secs = v,
        );
        let m = &mut config.masquerade;
        parse.set::<Ipv4Net>(
            &self.cluster_cidr_v4,
            "--cluster-cidr-v4",
            "MEMBRANE_CLUSTER_CIDR_V4",
            |v| m.cluster_cidr_v4 = Some(v),
        );
        parse.set::<Ipv6Net>(
            &self.cluster_cidr_v6,
            "--cluster-cidr-v6",
            "MEMBRANE_CLUSTER_CIDR_V6",
            |v| m.cluster_cidr_v6 = Some(v),
        );
        parse.set::<PortRange>(
            &self.nat_port_range,
            "--nat-port-range",
            "MEMBRANE_NAT_PORT_RANGE",
            |v| m.nat_port_range = v,
        );
        parse.set::<SocketAddr>(&self.metrics, "--metrics", "MEMBRANE_METRICS", |v| {
            config.metrics.listen = Some(v)
        });
        parse.set::<crate::observe::config::FlowEventsSetting>(
            &self.flow_events,
            "--flow-events",
            "MEMBRANE_FLOW_EVENTS",
            |v| config.observe.flow_events = v,
        );
        parse.set::<crate::observe::Listen>(
            &self.observe_listen,
            "--observe-listen",
            "MEMBRANE_OBSERVE_LISTEN",
            |v| config.observe.listen = v,
        );
        parse.set::<LogFormat>(
            &self.log_format,
            "--log-format",
            "MEMBRANE_LOG_FORMAT",
            |v| config.log.format = v,
        );
        parse.set::<u64>(
            &self.maintenance_interval_secs,
            "--maintenance-interval-secs",
            "MEMBRANE_MAINTENANCE_INTERVAL_SECS",
            |v| config.maintenance.interval_secs = v,
        );
        parse.set::<u64>(
            &self.bpf_ct_timeout_regular_tcp,
            "--bpf-ct-timeout-regular-tcp",
            "MEMBRANE_BPF_CT_TIMEOUT_REGULAR_TCP",
            |v| config.maintenance.ct_tcp_timeout_secs = v,
        );
        parse.set::<u64>(
            &self.bpf_ct_timeout_regular_tcp_syn,
            "--bpf-ct-timeout-regular-tcp-syn",
            "MEMBRANE_BPF_CT_TIMEOUT_REGULAR_TCP_SYN",
            |v| config.maintenance.ct_tcp_short_timeout_secs = v,
        );
        parse.set::<u64>(
            &self.bpf_ct_timeout_regular_any,
            "--bpf-ct-timeout-regular-any",
            "MEMBRANE_BPF_CT_TIMEOUT_REGULAR_ANY",
            |v| config.maintenance.ct_any_timeout_secs = v,
        );
        let s = &mut config.services;
        parse.set::<PortRange>(
            &self.node_port_range,
            "--node-port-range",
            "MEMBRANE_NODE_PORT_RANGE",
            |v| s.node_port_range = v,
        );
        parse.set::<LbAlgorithm>(
            &self.lb_algorithm,
            "--lb-algorithm",
            "MEMBRANE_LB_ALGORITHM",
            |v| s.lb_algorithm = v,
        );
        parse.set::<MaglevTableSize>(
            &self.maglev_table_size,
            "--maglev-table-size",
            "MEMBRANE_MAGLEV_TABLE_SIZE",
            |v| s.maglev_table_size = v,
        );
        parse.set::<bool>(&self.socket_lb, "--socket-lb", "MEMBRANE_SOCKET_LB", |v| {
            s.socket_lb = v
        });
        parse.set::<crate::services::config::LbMode>(
            &self.bpf_lb_mode,
            "--bpf-lb-mode",
            "MEMBRANE_BPF_LB_MODE",
            |v| s.lb_mode = v,
        );
        parse.set::<crate::services::config::Acceleration>(
            &self.bpf_lb_acceleration,
            "--bpf-lb-acceleration",
            "MEMBRANE_BPF_LB_ACCELERATION",
            |v| s.acceleration = v,
        );
        if let Some(dir) = &self.cgroup_root {
            s.cgroup_root = Some(dir.clone());
        }
        let r = &mut config.routing;
        parse.set::<crate::routing::RoutingMode>(
            &self.routing_mode,
            "--routing-mode",
            "MEMBRANE_ROUTING_MODE",
            |v| r.mode = v,
        );
        if let Some(device) = &self.tunnel_device {
            r.tunnel_device = device.clone();
        }
    }
}

/// Parses flag values, collecting the failures.
struct Parse<'a> {
    problems: &'a mut Vec<ConfigProblem>,
}

impl Parse<'_> {
    /// Parses `value` (when given) and hands it to `set`, or records why it is invalid.
    fn set<T>(
        &mut self,
        value: &Option<String>,
        flag: &'static str,
        env: &'static str,
        set: impl FnOnce(T),
    ) where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        let Some(text) = value else { return };
        match text.trim().parse() {
            Ok(parsed) => set(parsed),
            Err(e) => self.problems.push(ConfigProblem::BadValue {
                flag,
                env,
                value: text.clone(),
                source: Box::new(e),
            }),
        }
    }
}
