//! One measuring bed: a node namespace that routes between a client pod and a backend
//! pod over plain veths, the backend answering on ten addresses. Every path of the table
//! gets a fresh bed, so no rule, conntrack entry or program of one path is left for the
//! next.

use anyhow::Context;
use membrane_testbed::workload::{self, Server};
use membrane_testbed::{Netns, netlink, wiring};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Addresses every backend entry of every Service resolves to: `10.201.2.10` and up.
pub const BACKENDS: u8 = 10;
/// First backend address.
pub const FIRST_BACKEND: Ipv4Addr = Ipv4Addr::new(10, 201, 2, 10);
/// The port the backends serve on (TCP echo).
pub const BACKEND_PORT: u16 = workload::DEFAULT_PORTS.tcp;
/// The client pod's address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 201, 1, 2);
/// Prefix of the pod subnets (the "cluster CIDR" of the kube-proxy rules).
pub const POD_CIDR: &str = "10.201.0.0/16";
/// Name of the node's end of the client's veth.
pub const CLIENT_HOST_IF: &str = "lxc-client";
/// Name of the node's end of the backend's veth.
pub const BACKEND_HOST_IF: &str = "lxc-backend";
/// A device standing for the node's uplink (the datapath needs one).
pub const UPLINK: &str = "uplink0";

/// The namespaces of one bed and the backend's server.
pub struct Bed {
    /// The node: routes between the pods, carries the rules or the eBPF programs.
    pub node: Netns,
    /// The client pod.
    pub client: Netns,
    /// The backend pod.
    pub backend: Netns,
    _server: Server,
}

/// The `index`-th backend address.
pub fn backend_addr(index: u8) -> Ipv4Addr {
    let [a, b, c, d] = FIRST_BACKEND.octets();
    Ipv4Addr::new(a, b, c, d + index)
}

/// The first backend as a socket address.
pub fn first_backend() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(FIRST_BACKEND), BACKEND_PORT)
}

impl Bed {
    /// Builds the namespaces, the veths with their addresses and routes, and starts the
    /// backend's server.
    pub fn create() -> anyhow::Result<Bed> {
        let node = Netns::create("svcb-node")?;
        let client = Netns::create("svcb-client")?;
        let backend = Netns::create("svcb-backend")?;
        for ns in [&node, &client, &backend] {
            wiring::loopback_up(ns)?;
        }
        wiring::enable_forwarding(&node)?;
        let addresses: Vec<Ipv4Addr> = (0..BACKENDS).map(backend_addr).collect();
        join(&node, &client, CLIENT_HOST_IF, 1, &[CLIENT])?;
        join(&node, &backend, BACKEND_HOST_IF, 2, &addresses)?;
        netlink::run_in(&node, |handle| async move {
            netlink::create_veth(&handle, UPLINK, "uplink1").await?;
            for name in [UPLINK, "uplink1"] {
                let index = netlink::index_of(&handle, name).await?;
                netlink::set_up(&handle, index).await?;
            }
            Ok(())
        })?;
        let server = workload::serve(&backend, workload::DEFAULT_PORTS)
            .context("the backend's server did not start")?;
        Ok(Bed {
            node,
            client,
            backend,
            _server: server,
        })
    }
}

/// Joins `pod` to `node` by a veth: `eth0` in the pod with `addresses` in
/// `10.201.<subnet>.0/24` and a default route through the node's end, which has
/// `10.201.<subnet>.1/24`.
fn join(
    node: &Netns,
    pod: &Netns,
    host_if: &'static str,
    subnet: u8,
    addresses: &[Ipv4Addr],
) -> anyhow::Result<()> {
    let pod_file: File = pod.open()?;
    let gateway = Ipv4Addr::new(10, 201, subnet, 1);
    netlink::run_in(node, |handle| async move {
        netlink::create_veth(&handle, host_if, "eth0").await?;
        netlink::move_to_netns(&handle, "eth0", &pod_file).await?;
        let index = netlink::index_of(&handle, host_if).await?;
        netlink::add_address(&handle, index, IpAddr::V4(gateway), 24).await?;
        netlink::set_up(&handle, index).await
    })?;
    let addresses = addresses.to_vec();
    netlink::run_in(pod, |handle| async move {
        let index = netlink::index_of(&handle, "eth0").await?;
        for address in addresses {
            netlink::add_address(&handle, index, IpAddr::V4(address), 24).await?;
        }
        netlink::set_up(&handle, index).await?;
        netlink::add_default_route(&handle, IpAddr::V4(gateway)).await
    })?;
    Ok(())
}

/// The MAC address of interface `name` in `netns`.
pub fn mac(netns: &Netns, name: &str) -> anyhow::Result<[u8; 6]> {
    netns
        .run(|| {
            nix::ifaddrs::getifaddrs()?
                .filter(|a| a.interface_name == name)
                .find_map(|a| a.address?.as_link_addr()?.addr())
                .with_context(|| format!("{name} has no link-layer address"))
        })
        .context("entering the namespace")?
}
