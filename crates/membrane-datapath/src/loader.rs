//! Loading the object, adopting pinned maps, and programming endpoints.

use crate::attach::{self, Hook};
use crate::error::DatapathError;
use crate::maps::{Maps, ReasonCounter, ignore_missing};
use crate::policy::PolicyRule;
use crate::services::{BackendSpec, Frontend, ServiceSpec};
use crate::sizes::MapSizes;
use aya::{Ebpf, EbpfLoader};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use membrane_common::config::{config_flags, routing_mode};
use membrane_common::endpoint::endpoint_flags;
use membrane_common::events::event_flags;
use membrane_common::lb::service_flags;
use membrane_common::tuple::v4_bytes;
use membrane_common::{
    CtEntry, CtKey, DatapathConfig, EndpointInfo, EndpointKey, Family, NatEntry, NetnsEndpoint,
    map_names, program_names,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// The compiled eBPF object, built from membrane-ebpf by this crate's build script.
const EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/membrane-ebpf"));

/// Node-wide settings the datapath is loaded with.
#[derive(Clone, Debug)]
pub struct DatapathOptions {
    /// Directory under bpffs where this node's maps and links are pinned
    /// (`/sys/fs/bpf/membrane/<node>`); created if missing.
    pub pin_dir: PathBuf,
    /// The node's IPv4 address (masquerade source), if any.
    pub node_ipv4: Option<Ipv4Addr>,
    /// The node's IPv6 address (masquerade source), if any.
    pub node_ipv6: Option<Ipv6Addr>,
    /// Name of the uplink device: replies to masqueraded traffic arrive here, and
    /// masquerading applies to traffic leaving through it.
    pub uplink: String,
    /// IPv4 destinations never masqueraded (the cluster's pod CIDR).
    pub non_masquerade_v4: Option<Ipv4Net>,
    /// IPv6 destinations never masqueraded.
    pub non_masquerade_v6: Option<Ipv6Net>,
    /// Source ports used for masquerading.
    pub nat_ports: RangeInclusive<u16>,
    /// Map capacities.
    pub map_sizes: MapSizes,
    /// How packets reach pods on other nodes.
    pub routing: Routing,
    /// Size of every Maglev lookup table (a prime, e.g. 16381).
    pub maglev_table_size: u32,
    /// Which forwarded packets become flow events (drops always do).
    pub flow_events: FlowEvents,
    /// XDP acceleration of Services reached from outside, on the uplink.
    pub acceleration: crate::Acceleration,
    /// Direct server return for TCP Services reached from outside whose backend is on
    /// another node (native routing): the backend answers the client itself.
    pub dsr: bool,
}

/// Which forwarded packets the datapath reports as flow events; every drop is reported
/// whatever the setting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlowEvents {
    /// Every packet (no aggregation: Cilium's `--monitor-aggregation none`).
    All,
    /// Each connection's first packet and its TCP SYN, FIN and RST (the default).
    #[default]
    Connections,
    /// Drops only: no trace events.
    DropsOnly,
}

/// How packets reach pods on other nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routing {
    /// The node's FIB routes other nodes' pod CIDRs (the agent installs the routes).
    Native,
    /// Encapsulation through an existing collect-metadata VXLAN device of this name;
    /// the VNI carries the sender's security identity.
    Tunnel {
        /// The tunnel device.
        device: String,
    },
}

/// What the datapath needs to know about one local endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Node-unique endpoint id.
    pub id: u16,
    /// Name of the host-side veth.
    pub host_ifname: String,
    /// Interface index of the host-side veth.
    pub host_ifindex: u32,
    /// MAC of the host-side veth.
    pub host_mac: [u8; 6],
    /// MAC of the pod's interface.
    pub pod_mac: [u8; 6],
    /// The pod's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// The endpoint's security identity (carried across nodes in the tunnel's VNI).
    pub identity: u32,
    /// Which directions the endpoint enforces policy in.
    pub policy: PolicyEnforcement,
    /// Cookie of the pod's network namespace, when known: the socket hooks' events name
    /// the pod by it.
    pub netns_cookie: Option<u64>,
}

/// Which directions an endpoint enforces policy in (default-deny once a policy selects
/// it), and whether drops are only audited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyEnforcement {
    /// Ingress is enforced.
    pub ingress: bool,
    /// Egress is enforced.
    pub egress: bool,
    /// Would-be drops are reported with verdict AUDIT and let through.
    pub audit: bool,
}

impl PolicyEnforcement {
    fn flags(self) -> u16 {
        let mut flags = 0;
        if self.ingress {
            flags |= endpoint_flags::INGRESS_ENFORCED;
        }
        if self.egress {
            flags |= endpoint_flags::EGRESS_ENFORCED;
        }
        if self.audit {
            flags |= endpoint_flags::POLICY_AUDIT;
        }
        flags
    }
}

impl EndpointSpec {
    /// The value of its endpoints map entries.
    fn info(&self) -> EndpointInfo {
        EndpointInfo {
            ifindex: self.host_ifindex,
            endpoint_id: self.id,
            flags: self.policy.flags(),
            pod_mac: self.pod_mac,
            host_mac: self.host_mac,
            identity: self.identity,
        }
    }

    /// The endpoint map keys of this endpoint's addresses.
    fn keys(&self) -> Vec<EndpointKey> {
        let mut keys = Vec::with_capacity(2);
        if let Some(v4) = self.ipv4 {
            keys.push(EndpointKey {
                addr: v4_bytes(v4.octets()),
                family: Family::V4,
                _pad: [0; 3],
            });
        }
        if let Some(v6) = self.ipv6 {
            keys.push(EndpointKey {
                addr: v6.octets(),
                family: Family::V6,
                _pad: [0; 3],
            });
        }
        keys
    }
}

/// The node's loaded datapath.
pub struct Datapath {
    ebpf: Ebpf,
    maps: Maps,
    pin_dir: PathBuf,
    maglev_size: u32,
    ct_timeouts: crate::CtTimeouts,
    accelerated: Option<crate::Attached>,
    replaced_maps: Vec<crate::ReplacedMap>,
}

impl Datapath {
    /// Loads the programs, creates or adopts the pinned maps under `pin_dir`, writes the
    /// config map and attaches the uplink program. Safe to call again after a restart:
    /// pinned maps (conntrack, NAT) and attached endpoint programs are adopted.
    pub fn load(options: &DatapathOptions) -> Result<Datapath, DatapathError> {
        let mut datapath = Self::load_object(&options.pin_dir, options.map_sizes)?;
        datapath.configure(options)?;
        datapath.attach(Hook::Uplink, &options.uplink)?;
        if let Routing::Tunnel { device } = &options.routing {
            datapath.attach(Hook::Overlay, device)?;
            datapath.attach(Hook::HostToOverlay, device)?;
        }
        datapath.accelerated = crate::acceleration::apply(
            &mut datapath.ebpf,
            &datapath.pin_dir,
            &options.uplink,
            options.acceleration,
        )?;
        Ok(datapath)
    }

    /// Pinned maps this load replaced because their layout was not the object's (their
    /// entries were dropped).
    pub fn replaced_maps(&self) -> &[crate::ReplacedMap] {
        &self.replaced_maps
    }

    /// The mode the uplink's XDP program runs in, `None` when there is none.
    pub fn acceleration(&self) -> Option<crate::Attached> {
        self.accelerated
    }

    /// Writes the node-wide settings into the config map.
    pub fn configure(&mut self, options: &DatapathOptions) -> Result<(), DatapathError> {
        self.maps.write_config(&datapath_config(options)?)?;
        self.maglev_size = options.maglev_table_size;
        Ok(())
    }

    /// Attaches the socket-level load balancer to a cgroup v2 directory: every process
    /// below it (pods' and the node's) gets Service translation at `connect`/`sendmsg`.
    pub fn attach_socket_lb(&mut self, cgroup: &Path) -> Result<(), DatapathError> {
        crate::sock_lb::attach(&mut self.ebpf, &self.pin_dir, cgroup)
    }

    /// Writes (or replaces) a backend.
    pub fn upsert_backend(&mut self, id: u32, spec: &BackendSpec) -> Result<(), DatapathError> {
        self.maps.upsert_backends(&[(id, *spec)])
    }

    /// Writes (or replaces) many backends in one batch (one syscall, not one per
    /// backend); on failure the backends before the refused one are written.
    pub fn upsert_backends(
        &mut self,
        backends: &[(u32, BackendSpec)],
    ) -> Result<(), DatapathError> {
        self.maps.upsert_backends(backends)
    }

    /// Removes a backend; absent ones are fine.
    pub fn remove_backend(&mut self, id: u32) -> Result<(), DatapathError> {
        self.maps.remove_backend(id)
    }

    /// Writes a frontend with its backend slots (and its Maglev table when it uses
    /// Maglev; `names` gives each active backend's stable name, same order as
    /// `spec.active`).
    pub fn upsert_service(
        &mut self,
        spec: &ServiceSpec,
        names: &[Vec<u8>],
    ) -> Result<(), DatapathError> {
        self.upsert_services([(spec, names)])
    }

    /// Writes many frontends as [`Datapath::upsert_service`] does one, with one batch
    /// per map (a few syscalls, not one per entry): every slot, then the reverse NAT,
    /// then the service entries that make them visible, in the order given. Only these
    /// frontends' entries are written. On failure the frontends whose service entry
    /// was written stay written and the others keep what they had.
    pub fn upsert_services<'a>(
        &mut self,
        services: impl IntoIterator<Item = (&'a ServiceSpec, &'a [Vec<u8>])>,
    ) -> Result<(), DatapathError> {
        let mut specs = Vec::new();
        for (spec, names) in services {
            if spec.flags & service_flags::MAGLEV != 0 && !spec.frontend.internal {
                self.write_maglev(spec, names)?;
            }
            specs.push(spec);
        }
        self.maps.upsert_services(&specs)
    }

    /// Writes the Maglev table of `spec`'s Service over its active backends, `names`
    /// naming them in order.
    fn write_maglev(&mut self, spec: &ServiceSpec, names: &[Vec<u8>]) -> Result<(), DatapathError> {
        if !crate::maglev::is_prime(self.maglev_size) {
            return Err(DatapathError::InvalidOption {
                option: "maglev_table_size",
                reason: format!("{} is not a prime", self.maglev_size),
            });
        }
        let named: Vec<(&[u8], u32)> = names
            .iter()
            .map(Vec::as_slice)
            .zip(spec.active.iter().copied())
            .collect();
        self.maps.write_maglev(
            spec.rev_nat_index,
            &crate::maglev::table(&named, self.maglev_size),
        )
    }

    /// Removes a frontend and everything it owns.
    pub fn remove_service(&mut self, frontend: &Frontend) -> Result<(), DatapathError> {
        self.maps.remove_service(frontend, self.maglev_size)
    }

    /// Number of entries in the services map (slots included).
    pub fn service_entries(&self) -> usize {
        self.maps.service_entries()
    }

    /// Writes every entry of a policy rule.
    pub fn write_policy(&mut self, rule: &PolicyRule) -> Result<(), DatapathError> {
        self.maps.write_policy(rule)
    }

    /// Writes every entry of many policy rules, in order, in one batch; on failure, how
    /// many of the first rules may hold written entries (those before the one the batch
    /// stopped in, and that one), and the error.
    pub fn write_policies(
        &mut self,
        rules: &[PolicyRule],
    ) -> Result<(), (usize, Box<DatapathError>)> {
        self.maps.write_policies(rules)
    }

    /// Removes every entry of a policy rule; absent entries are fine.
    pub fn remove_policy(&mut self, rule: &PolicyRule) -> Result<(), DatapathError> {
        self.maps.remove_policy(rule)
    }

    /// Takes the reader of the events ring buffer (once; later calls fail). Needs a tokio
    /// runtime.
    pub fn take_event_reader(&mut self) -> Result<crate::events::EventReader, DatapathError> {
        let ring = self.maps.events.take().ok_or(DatapathError::Missing {
            kind: "map (already taken)",
            name: crate::events::MAP,
        })?;
        crate::events::EventReader::new(ring)
    }

    /// Events lost because the ring buffer was full, summed over CPUs.
    pub fn lost_events(&self) -> Result<u64, DatapathError> {
        Ok(self
            .counters()?
            .iter()
            .filter(|c| c.reason == membrane_common::metrics::reason::EVENT_LOST)
            .map(|c| c.packets)
            .sum())
    }

    /// How full each bounded map is (entries and capacity).
    pub fn map_pressure(&self) -> Result<Vec<crate::MapPressure>, DatapathError> {
        self.maps.pressure()
    }

    /// How many instructions the verifier processed for each loaded program (the
    /// kernel's limit is one million per program).
    pub fn verified_instructions(&self) -> Vec<(String, u32)> {
        self.ebpf
            .programs()
            .filter_map(|(name, program)| {
                let count = program.info().ok()?.verified_instruction_count()?;
                Some((name.to_string(), count))
            })
            .collect()
    }

    /// Loads the object and its maps without writing the config or attaching anything
    /// (for BPF_PROG_TEST_RUN tests and benchmarks).
    pub fn load_object(pin_dir: &Path, sizes: MapSizes) -> Result<Datapath, DatapathError> {
        std::fs::create_dir_all(pin_dir).map_err(|source| DatapathError::PinDir {
            path: pin_dir.to_path_buf(),
            source,
        })?;
        sizes.validate()?;
        let replaced_maps = crate::layout::replace_incompatible(EBPF_OBJECT, pin_dir)?;
        sizes.check_pinned(pin_dir)?;
        let mut loader = EbpfLoader::new();
        loader.default_map_pin_directory(pin_dir);
        sizes.apply(&mut loader);
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(DatapathError::Load)?;
        for name in [
            program_names::FROM_CONTAINER,
            program_names::FROM_NETDEV,
            program_names::FROM_OVERLAY,
            program_names::HOST_TO_OVERLAY,
        ] {
            attach::program(&mut ebpf, name)?
                .load()
                .map_err(|source| DatapathError::Program {
                    program: name,
                    source,
                })?;
        }
        crate::sock_lb::load(&mut ebpf)?;
        crate::acceleration::load(&mut ebpf)?;
        let maps = Maps::take(&mut ebpf)?;
        Ok(Datapath {
            ebpf,
            maps,
            pin_dir: pin_dir.to_path_buf(),
            maglev_size: 0,
            ct_timeouts: crate::CtTimeouts::default(),
            accelerated: None,
            replaced_maps,
        })
    }

    /// Attaches the endpoint program to the host-side veth and writes the endpoint's
    /// map entries. Idempotent: re-attaching an adopted endpoint replaces its program
    /// without a gap.
    pub fn attach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), DatapathError> {
        self.write_endpoint(endpoint)?;
        self.attach(Hook::Endpoint, &endpoint.host_ifname)
    }

    /// Writes the endpoint's map entries (both or neither) without attaching anything.
    pub fn write_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), DatapathError> {
        let info = endpoint.info();
        let keys = endpoint.keys();
        for key in &keys {
            if let Err(e) = self.maps.endpoints.insert(key, info, 0) {
                for written in &keys {
                    let _ = self.maps.endpoints.remove(written);
                }
                return Err(DatapathError::Map {
                    map: map_names::ENDPOINTS,
                    operation: "insert",
                    source: e,
                });
            }
        }
        if let Some(cookie) = endpoint.netns_cookie {
            let by_netns = NetnsEndpoint {
                endpoint_id: endpoint.id,
                _pad: 0,
                identity: endpoint.identity,
                ipv4: endpoint.ipv4.map_or([0; 4], |a| a.octets()),
                ipv6: endpoint.ipv6.map_or([0; 16], |a| a.octets()),
            };
            // Only events need it: a full map costs the pod its name in socket events,
            // never its traffic.
            if let Err(error) = self.maps.netns_endpoints.insert(cookie, by_netns, 0) {
                tracing::warn!(%error, endpoint = endpoint.id, "socket events will not name this pod");
            }
        }
        Ok(())
    }

    /// Writes the endpoints map entries of many endpoints (as [`Datapath::write_endpoint`]
    /// does, netns entries aside) in one batch: for a pass that changes the policy flags
    /// of every endpoint, one syscall instead of one per address. If the batch stops
    /// part-way, the endpoints from the one it stopped at are written one by one (each
    /// both entries or neither); returns those that failed, with their errors.
    pub fn write_endpoints(&mut self, endpoints: &[EndpointSpec]) -> Vec<(u16, DatapathError)> {
        let Err((from, partial)) =
            crate::batch::update_owned(&self.maps.endpoints, endpoints, |endpoint| {
                (endpoint.keys(), endpoint.info())
            })
        else {
            return Vec::new();
        };
        tracing::debug!(error = %partial.source, written = partial.written, "a batch of endpoint entries stopped; writing the rest one by one");
        endpoints[from..]
            .iter()
            .filter_map(|endpoint| Some((endpoint.id, self.write_endpoint(endpoint).err()?)))
            .collect()
    }

    /// Removes the endpoint's map entries, its connections' conntrack and NAT entries,
    /// and its program's pinned link. Idempotent.
    pub fn detach_endpoint(&mut self, endpoint: &EndpointSpec) -> Result<(), DatapathError> {
        attach::remove(&self.pin_dir, Hook::Endpoint, &endpoint.host_ifname)?;
        if let Some(cookie) = endpoint.netns_cookie {
            ignore_missing(self.maps.netns_endpoints.remove(&cookie)).map_err(|source| {
                DatapathError::Map {
                    map: map_names::NETNS_ENDPOINTS,
                    operation: "remove",
                    source,
                }
            })?;
        }
        let keys = endpoint.keys();
        for key in &keys {
            self.maps.remove_endpoint(key)?;
        }
        let addrs: Vec<[u8; 16]> = keys.iter().map(|k| k.addr).collect();
        self.maps
            .forget_connections(|k| addrs.contains(&k.saddr) || addrs.contains(&k.daddr))?;
        Ok(())
    }

    /// Deletes conntrack entries idle longer than their timeout (with their NAT
    /// entries) and reports what the table holds.
    pub fn collect_conntrack(&mut self) -> Result<crate::CtStats, DatapathError> {
        crate::conntrack::collect(&mut self.maps, &self.ct_timeouts)
    }

    /// Sets the idle timeouts [`Datapath::collect_conntrack`] applies.
    pub fn set_ct_timeouts(&mut self, timeouts: crate::CtTimeouts) {
        self.ct_timeouts = timeouts;
    }

    /// Per-reason packet and byte counters, summed over CPUs; zero rows omitted.
    pub fn counters(&self) -> Result<Vec<ReasonCounter>, DatapathError> {
        self.maps.counters()
    }

    /// The endpoint map's entries (address, info), for inspection and tests.
    pub fn endpoint_entries(&self) -> Result<Vec<(EndpointKey, EndpointInfo)>, DatapathError> {
        self.maps.endpoint_entries()
    }

    /// Number of conntrack and NAT entries, for inspection and tests.
    pub fn table_sizes(&self) -> Result<(usize, usize), DatapathError> {
        self.maps.table_sizes()
    }

    /// Records that `prefix` has `identity` and, when `node` is given, lives on the
    /// node with that underlay address (traffic to it goes through the tunnel in tunnel
    /// mode). Replaces any entry for the same prefix.
    pub fn upsert_ipcache(
        &mut self,
        prefix: IpNet,
        identity: u32,
        node: Option<IpAddr>,
    ) -> Result<(), DatapathError> {
        self.maps.upsert_ipcache(prefix, identity, node)
    }

    /// Removes the entry for exactly `prefix`; absent entries are fine.
    pub fn remove_ipcache(&mut self, prefix: IpNet) -> Result<(), DatapathError> {
        self.maps.remove_ipcache(prefix)
    }

    /// Every ipcache entry: prefix, identity and hosting node.
    pub fn ipcache_entries(&self) -> Result<Vec<(IpNet, u32, Option<IpAddr>)>, DatapathError> {
        self.maps.ipcache_entries()
    }

    /// Every conntrack entry.
    pub fn conntrack_entries(&self) -> Result<Vec<(CtKey, CtEntry)>, DatapathError> {
        self.maps
            .ct
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|source| DatapathError::Map {
                map: map_names::CT,
                operation: "iterate",
                source,
            })
    }

    /// Every NAT entry (both directions of each translation).
    pub fn nat_entries(&self) -> Result<Vec<(CtKey, NatEntry)>, DatapathError> {
        self.maps
            .nat
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|source| DatapathError::Map {
                map: map_names::NAT,
                operation: "iterate",
                source,
            })
    }

    /// The loaded object, for BPF_PROG_TEST_RUN.
    pub(crate) fn ebpf(&self) -> &Ebpf {
        &self.ebpf
    }

    fn attach(&mut self, hook: Hook, interface: &str) -> Result<(), DatapathError> {
        let program = attach::program(&mut self.ebpf, hook.program())?;
        attach::attach_pinned(program, &self.pin_dir, hook, interface)
    }
}

/// Builds the config map entry from the options, rejecting what cannot be expressed.
fn datapath_config(o: &DatapathOptions) -> Result<DatapathConfig, DatapathError> {
    let (min, max) = (*o.nat_ports.start(), *o.nat_ports.end());
    if min == 0 || max < min {
        return Err(DatapathError::InvalidOption {
            option: "nat_ports",
            reason: format!("{min}-{max} is not a non-empty range of non-zero ports"),
        });
    }
    let masq_ifindex = nix::net::if_::if_nametoindex(o.uplink.as_str()).map_err(|_| {
        DatapathError::NoInterface {
            interface: o.uplink.clone(),
        }
    })?;
    let (routing_mode, tunnel_ifindex) = match &o.routing {
        Routing::Native => (routing_mode::NATIVE, 0),
        Routing::Tunnel { device } => (
            routing_mode::TUNNEL,
            nix::net::if_::if_nametoindex(device.as_str()).map_err(|_| {
                DatapathError::NoInterface {
                    interface: device.clone(),
                }
            })?,
        ),
    };
    let mut flags = config_flags::VALID
        | match o.flow_events {
            FlowEvents::All => event_flags::ALL,
            FlowEvents::Connections => 0,
            FlowEvents::DropsOnly => event_flags::NO_TRACE,
        };
    if o.node_ipv4.is_some() {
        flags |= config_flags::MASQUERADE_V4;
    }
    if o.node_ipv6.is_some() {
        flags |= config_flags::MASQUERADE_V6;
    }
    if o.dsr {
        flags |= config_flags::DSR;
    }
    Ok(DatapathConfig {
        node_ipv4: v4_bytes(o.node_ipv4.unwrap_or(Ipv4Addr::UNSPECIFIED).octets()),
        node_ipv6: o.node_ipv6.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
        non_masq_ipv4: v4_bytes(o.non_masquerade_v4.map_or([0; 4], |n| n.network().octets())),
        non_masq_ipv6: o
            .non_masquerade_v6
            .map_or([0; 16], |n| n.network().octets()),
        masq_ifindex,
        nat_port_min: min,
        nat_port_max: max,
        non_masq_ipv4_len: o.non_masquerade_v4.map_or(0, |n| n.prefix_len()),
        non_masq_ipv6_len: o.non_masquerade_v6.map_or(0, |n| n.prefix_len()),
        flags,
        routing_mode,
        _pad: [0; 3],
        tunnel_ifindex,
        maglev_table_size: o.maglev_table_size,
    })
}
