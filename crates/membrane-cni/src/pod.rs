//! Configuration of the pod's side of the veth, run inside the pod's namespace: loopback
//! up, interface up, /32 and /128 addresses, routes through link-local gateways and
//! permanent neighbour entries for those gateways.

use crate::error::CniError;
use crate::link::{self, Link};
use crate::result::MacAddr;
use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What to set up on the pod's interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    /// `CNI_IFNAME`, already created by the veth pair.
    pub ifname: String,
    /// IPv4 address, configured as a /32.
    pub ipv4: Option<Ipv4Addr>,
    /// IPv6 address, configured as a /128 without duplicate address detection.
    pub ipv6: Option<Ipv6Addr>,
    /// Link-local IPv4 gateway.
    pub gateway_v4: Ipv4Addr,
    /// Link-local IPv6 gateway.
    pub gateway_v6: Ipv6Addr,
    /// MAC the gateways resolve to: the host-side veth's.
    pub gateway_mac: MacAddr,
}

/// Applies `plan` and returns the pod interface's MAC.
pub async fn configure(handle: Handle, plan: PodPlan) -> Result<MacAddr, CniError> {
    let lo = link::get(&handle, "lo").await?;
    link::set_up(&handle, &lo).await?;
    let pod = link::get(&handle, &plan.ifname).await?;
    link::set_up(&handle, &pod).await?;
    let netlink = |what: String| move |source| CniError::Netlink { what, source };

    if let Some(ip) = plan.ipv4 {
        handle
            .address()
            .add(pod.index, ip.into(), 32)
            .execute()
            .await
            .map_err(netlink(format!("adding {ip}/32 to {}", pod.name)))?;
        let gateway = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(plan.gateway_v4, 32)
            .output_interface(pod.index)
            .scope(RouteScope::Link)
            .build();
        add_route(
            &handle,
            gateway,
            format!("adding route {} dev {}", plan.gateway_v4, pod.name),
        )
        .await?;
        let default = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(plan.gateway_v4)
            .output_interface(pod.index)
            .build();
        add_route(
            &handle,
            default,
            format!("adding default route via {}", plan.gateway_v4),
        )
        .await?;
        add_gateway_neighbour(&handle, &pod, plan.gateway_v4.into(), plan.gateway_mac).await?;
    }
    if let Some(ip) = plan.ipv6 {
        let mut add = handle.address().add(pod.index, ip.into(), 128);
        add.message_mut().header.flags |= AddressHeaderFlags::Nodad;
        add.execute()
            .await
            .map_err(netlink(format!("adding {ip}/128 to {}", pod.name)))?;
        let default = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(plan.gateway_v6)
            .output_interface(pod.index)
            .build();
        add_route(
            &handle,
            default,
            format!("adding default route via {}", plan.gateway_v6),
        )
        .await?;
        add_gateway_neighbour(&handle, &pod, plan.gateway_v6.into(), plan.gateway_mac).await?;
    }
    pod.mac.ok_or(CniError::NoMacAddress { name: plan.ifname })
}

/// Adds `route`; `what` names it in the error.
async fn add_route(handle: &Handle, route: RouteMessage, what: String) -> Result<(), CniError> {
    handle
        .route()
        .add(route)
        .execute()
        .await
        .map_err(|source| CniError::Netlink { what, source })
}

/// A permanent neighbour entry so the pod never resolves its gateway.
async fn add_gateway_neighbour(
    handle: &Handle,
    pod: &Link,
    gateway: IpAddr,
    mac: MacAddr,
) -> Result<(), CniError> {
    handle
        .neighbours()
        .add(pod.index, gateway)
        .link_layer_address(&mac.0)
        .execute()
        .await
        .map_err(|source| CniError::Netlink {
            what: format!("adding neighbour {gateway} lladdr {mac} dev {}", pod.name),
            source,
        })
}

/// The pod interface and its addresses, as CHECK sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInterface {
    /// The link.
    pub link: Link,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
}

/// The interface `ifname` and its addresses, or `None` when it does not exist.
pub async fn inspect(handle: Handle, ifname: String) -> Result<Option<PodInterface>, CniError> {
    let Some(link) = link::find(&handle, &ifname).await? else {
        return Ok(None);
    };
    let messages: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(link.index)
        .execute()
        .try_collect()
        .await
        .map_err(|source| CniError::Netlink {
            what: format!("listing the addresses of {ifname}"),
            source,
        })?;
    let addresses = messages
        .iter()
        .flat_map(|message| &message.attributes)
        .filter_map(|attribute| match attribute {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
        .collect();
    Ok(Some(PodInterface { link, addresses }))
}
