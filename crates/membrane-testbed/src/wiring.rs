//! Wires namespaces into a topology: loopbacks, forwarding, and the veth that joins a
//! node to the outside namespace.

use crate::addressing::{NodeAddressing, UPLINK, WORLD_V4, WORLD_V6};
use crate::netlink::{self, NetlinkError};
use crate::netns::{Netns, NetnsError};
use std::net::IpAddr;

/// Errors while wiring namespaces.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// A namespace could not be entered or configured.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
}

/// Sets the loopback interface of `netns` up (a new namespace starts with it down).
pub fn loopback_up(netns: &Netns) -> Result<(), WiringError> {
    Ok(netlink::run_in(netns, |handle| async move {
        let index = netlink::index_of(&handle, "lo").await?;
        netlink::set_up(&handle, index).await
    })?)
}

/// Turns IPv4 and IPv6 forwarding on in `netns`, as on a router or a Kubernetes node.
pub fn enable_forwarding(netns: &Netns) -> Result<(), WiringError> {
    netns.set_sysctl("net/ipv4/ip_forward", "1")?;
    netns.set_sysctl("net/ipv6/conf/all/forwarding", "1")?;
    Ok(())
}

/// Turns IPv6 duplicate address detection off for the links `netns` creates from now on.
/// The bed's links are seconds old when traffic starts: with detection their
/// link-local addresses stay tentative for a second or two, and the first neighbour
/// discovery of a forwarded packet waits for them (long enough to fail a connection
/// that gives up after two seconds). A real node's uplink has been up for long.
pub fn skip_dad(netns: &Netns) -> Result<(), WiringError> {
    netns.set_sysctl("net/ipv6/conf/all/accept_dad", "0")?;
    netns.set_sysctl("net/ipv6/conf/default/accept_dad", "0")?;
    Ok(())
}

/// Gives the outside namespace the world's addresses, on its loopback (kernels built
/// without the dummy driver have nothing better; the addresses are local all the same).
pub fn add_world(outside: &Netns) -> Result<(), WiringError> {
    Ok(netlink::run_in(outside, |handle| async move {
        let index = netlink::index_of(&handle, "lo").await?;
        netlink::add_address(&handle, index, IpAddr::V4(WORLD_V4), 32).await?;
        netlink::add_address(&handle, index, IpAddr::V6(WORLD_V6), 128).await?;
        netlink::set_up(&handle, index).await
    })?)
}

/// Makes `outside` route the pod CIDRs of node `plan` to that node, as an underlay that
/// learns pod CIDRs (BGP, cloud routes) does: what native routing between nodes on
/// different subnets needs.
pub fn route_pod_cidrs(outside: &Netns, plan: NodeAddressing) -> Result<(), WiringError> {
    Ok(netlink::run_in(outside, |handle| async move {
        netlink::add_route(
            &handle,
            plan.pod_cidr_v4().into(),
            IpAddr::V4(plan.uplink_v4().addr()),
        )
        .await?;
        netlink::add_route(
            &handle,
            plan.pod_cidr_v6().into(),
            IpAddr::V6(plan.uplink_v6().addr()),
        )
        .await
    })?)
}

/// Joins `node` to `outside` by a veth: [`UPLINK`] in the node with the node's uplink
/// addresses and default routes through the outside end, which gets the gateway
/// addresses. The outside gets no route to the node's pods.
pub fn connect_node(
    node: &Netns,
    outside: &Netns,
    plan: NodeAddressing,
) -> Result<(), WiringError> {
    let peer = plan.outside_ifname();
    let outside_file = outside.open()?;
    netlink::run_in(node, |handle| {
        let peer = peer.clone();
        async move {
            netlink::create_veth(&handle, UPLINK, &peer).await?;
            netlink::move_to_netns(&handle, &peer, &outside_file).await?;
            let index = netlink::index_of(&handle, UPLINK).await?;
            let v4 = plan.uplink_v4();
            let v6 = plan.uplink_v6();
            netlink::add_address(&handle, index, IpAddr::V4(v4.addr()), v4.prefix_len()).await?;
            netlink::add_address(&handle, index, IpAddr::V6(v6.addr()), v6.prefix_len()).await?;
            netlink::set_up(&handle, index).await?;
            netlink::add_default_route(&handle, IpAddr::V4(plan.gateway_v4().addr())).await?;
            netlink::add_default_route(&handle, IpAddr::V6(plan.gateway_v6().addr())).await
        }
    })?;
    Ok(netlink::run_in(outside, |handle| async move {
        let index = netlink::index_of(&handle, &peer).await?;
        let v4 = plan.gateway_v4();
        let v6 = plan.gateway_v6();
        netlink::add_address(&handle, index, IpAddr::V4(v4.addr()), v4.prefix_len()).await?;
        netlink::add_address(&handle, index, IpAddr::V6(v6.addr()), v6.prefix_len()).await?;
        netlink::set_up(&handle, index).await
    })?)
}
