//! Membrane on a bed: the real datapath loaded in the node namespace with maps sized for
//! the run, both pods as endpoints, the socket-level load balancer on a cgroup the
//! socket-LB client runs in, and the Services written through the datapath's API (what
//! the agent's reconciler calls: every Service in one batch, then one more alone), timed.

use crate::catalog;
use crate::topology::{self, BACKEND_HOST_IF, BACKENDS, Bed, CLIENT, CLIENT_HOST_IF, UPLINK};
use anyhow::Context;
use membrane_datapath::{
    BackendSpec, Datapath, DatapathOptions, EndpointSpec, Frontend, MapSizes, PolicyEnforcement,
    Routing, ServiceSpec, pinned_memory,
};
use membrane_testbed::pin_dir::PinDir;
use membrane_testbed::{Cgroup, Netns, Place, names};
use std::time::{Duration, Instant};

/// A prime Maglev table size (no Service here uses Maglev).
const MAGLEV_TABLE_SIZE: u32 = 16_381;

/// The loaded datapath of one bed. Drop order: the datapath's handles, then the
/// cgroup (its processes killed), then the pins (links detached).
pub struct Membrane {
    datapath: Datapath,
    cgroup: Cgroup,
    pins: PinDir,
}

/// The client pod's namespace, inside the cgroup the socket LB is attached to.
pub struct SocketLbClient<'a> {
    netns: &'a Netns,
    cgroup: &'a Cgroup,
}

impl Place for SocketLbClient<'_> {
    fn netns(&self) -> &Netns {
        self.netns
    }
    fn cgroup(&self) -> Option<&Cgroup> {
        Some(self.cgroup)
    }
}

/// Kernel memory of the maps.
pub struct Footprint {
    /// The load-balancing maps (services, backends, reverse NAT, affinity, Maglev,
    /// socket reverse NAT).
    pub lb_bytes: u64,
    /// Every sized map.
    pub all_bytes: u64,
}

impl Membrane {
    /// Loads the datapath into `bed`'s node with maps for `services` Services (plus the
    /// one added later), makes both pods endpoints and attaches the socket LB.
    pub fn load(bed: &Bed, services: u32) -> anyhow::Result<Membrane> {
        let pins = PinDir::create(&names::unique("svcb"))?;
        let sizes = MapSizes::for_services(services + 1, u32::from(BACKENDS));
        let options = DatapathOptions {
            pin_dir: pins.path().to_path_buf(),
            node_ipv4: None,
            node_ipv6: None,
            uplink: UPLINK.into(),
            non_masquerade_v4: None,
            non_masquerade_v6: None,
            nat_ports: 40_000..=60_000,
            map_sizes: sizes,
            routing: Routing::Native,
            maglev_table_size: MAGLEV_TABLE_SIZE,
            flow_events: Default::default(),
            acceleration: Default::default(),
            dsr: false,
        };
        let endpoints = endpoints(bed)?;
        let mut datapath = bed.node.run(|| -> anyhow::Result<Datapath> {
            let mut datapath = Datapath::load(&options).context("loading the datapath")?;
            for endpoint in &endpoints {
                datapath
                    .attach_endpoint(endpoint)
                    .with_context(|| format!("attaching endpoint {}", endpoint.id))?;
            }
            Ok(datapath)
        })??;
        let cgroup = Cgroup::create("svcb-client")?;
        datapath
            .attach_socket_lb(cgroup.path())
            .context("attaching the socket LB")?;
        Ok(Membrane {
            datapath,
            cgroup,
            pins,
        })
    }

    /// Where the socket-LB client runs: `client`'s namespace in the attached cgroup.
    pub fn socket_lb_client<'a>(&'a self, client: &'a Netns) -> SocketLbClient<'a> {
        SocketLbClient {
            netns: client,
            cgroup: &self.cgroup,
        }
    }

    /// Writes Service `i` with its ten backends, as one changed Service is written.
    pub fn add(&mut self, i: u32) -> anyhow::Result<()> {
        self.datapath.upsert_backends(&backends(i))?;
        self.datapath.upsert_service(&service(i), &[])?;
        Ok(())
    }

    /// Writes Services `0..n` with their backends in one batch per map (as the agent's
    /// reconciler writes a full sync), timed.
    pub fn program(&mut self, n: u32) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let backends: Vec<(u32, BackendSpec)> = (0..n).flat_map(backends).collect();
        let services: Vec<ServiceSpec> = (0..n).map(service).collect();
        self.datapath.upsert_backends(&backends)?;
        self.datapath
            .upsert_services(services.iter().map(|spec| (spec, &[][..])))?;
        Ok(started.elapsed())
    }

    /// The maps' kernel memory.
    pub fn footprint(&self) -> anyhow::Result<Footprint> {
        use membrane_common::map_names::*;
        let memory = pinned_memory(self.pins.path())?;
        let lb = [SERVICES, BACKENDS, REV_NAT, AFFINITY, MAGLEV, SOCK_REV_NAT];
        Ok(Footprint {
            lb_bytes: memory
                .iter()
                .filter(|m| lb.contains(&m.map))
                .map(|m| m.bytes)
                .sum(),
            all_bytes: memory.iter().map(|m| m.bytes).sum(),
        })
    }

    /// The datapath's drop counters, for a failure's report.
    pub fn drops(&self) -> String {
        match self.datapath.counters() {
            Ok(counters) => counters
                .iter()
                .filter(|c| c.is_drop)
                .map(|c| format!("{} {} {}", c.reason_name, c.direction, c.packets))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("counters unreadable: {e}"),
        }
    }

    /// Entries of the services map.
    pub fn service_entries(&self) -> usize {
        self.datapath.service_entries()
    }
}

/// The ten backends of Service `i` with their ids.
fn backends(i: u32) -> Vec<(u32, BackendSpec)> {
    (0u8..)
        .zip(catalog::backends())
        .map(|(j, backend)| {
            let spec = BackendSpec {
                addr: backend.ip(),
                port: backend.port(),
                proto: libc::IPPROTO_TCP as u8,
                terminating: false,
                local: true,
            };
            (catalog::backend_id(i, j), spec)
        })
        .collect()
}

/// Service `i`'s frontend over its ten backends.
fn service(i: u32) -> ServiceSpec {
    let frontend = catalog::frontend(i);
    ServiceSpec {
        frontend: Frontend {
            addr: frontend.ip(),
            port: frontend.port(),
            proto: libc::IPPROTO_TCP as u8,
            internal: false,
        },
        rev_nat_index: i + 1,
        flags: 0,
        affinity_timeout_s: 0,
        active: backends(i).into_iter().map(|(id, _)| id).collect(),
        terminating: Vec::new(),
    }
}

/// The client and the ten backend addresses as endpoints.
fn endpoints(bed: &Bed) -> anyhow::Result<Vec<EndpointSpec>> {
    let client_host = link(&bed.node, CLIENT_HOST_IF)?;
    let backend_host = link(&bed.node, BACKEND_HOST_IF)?;
    let client_mac = topology::mac(&bed.client, "eth0")?;
    let backend_mac = topology::mac(&bed.backend, "eth0")?;
    let endpoint = |id: u16, host: &(u32, [u8; 6]), ifname: &str, pod_mac, ip| EndpointSpec {
        id,
        host_ifname: ifname.into(),
        host_ifindex: host.0,
        host_mac: host.1,
        pod_mac,
        ipv4: Some(ip),
        ipv6: None,
        identity: 0,
        policy: PolicyEnforcement::default(),
        netns_cookie: None,
    };
    let mut all = vec![endpoint(
        1,
        &client_host,
        CLIENT_HOST_IF,
        client_mac,
        CLIENT,
    )];
    for j in 0..BACKENDS {
        all.push(endpoint(
            2 + u16::from(j),
            &backend_host,
            BACKEND_HOST_IF,
            backend_mac,
            topology::backend_addr(j),
        ));
    }
    Ok(all)
}

/// Index and MAC of `name` in `netns`.
fn link(netns: &Netns, name: &str) -> anyhow::Result<(u32, [u8; 6])> {
    let name_owned = name.to_string();
    let index = netns
        .run(move || nix::net::if_::if_nametoindex(name_owned.as_str()))?
        .with_context(|| format!("no interface {name}"))?;
    Ok((index, topology::mac(netns, name)?))
}
