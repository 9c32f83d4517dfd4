//! Links, addresses and routes through rtnetlink: the few operations a topology needs,
//! and read-outs that tests assert on. Each function works on the namespace its
//! [`Handle`] was opened in (see [`crate::netns::Netns::block_on`]).

use crate::netns::{Netns, NetnsError};
use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::{Handle, IpVersion, LinkUnspec, LinkVeth, RouteMessageBuilder};
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

/// Errors of netlink operations.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The namespace could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket")]
    Connect(#[source] std::io::Error),
    /// The kernel refused a request.
    #[error("cannot {what}")]
    Request {
        /// What was asked, naming the objects.
        what: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// No link has the name.
    #[error("no link named {name}")]
    NoSuchLink {
        /// The name looked for.
        name: String,
    },
}

/// Runs the future `f` makes from a netlink handle inside `netns`, on a thread of its
/// own, and returns its result.
pub fn run_in<F, Fut, R>(netns: &Netns, f: F) -> Result<R, NetlinkError>
where
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = Result<R, NetlinkError>>,
    R: Send,
{
    netns.block_on(|| async move { f(connect()?).await })?
}

/// Opens a netlink connection in the current thread's network namespace and drives it
/// on the current tokio runtime.
pub fn connect() -> Result<Handle, NetlinkError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
    tokio::spawn(connection);
    Ok(handle)
}

fn request(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetlinkError {
    let what = what.into();
    move |source| NetlinkError::Request { what, source }
}

/// A network interface, as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind (`veth`, `dummy`...), if the kernel reports one.
    pub kind: Option<String>,
    /// True when administratively up.
    pub up: bool,
}

impl Link {
    fn from_message(message: &LinkMessage) -> Link {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            kind: None,
            up: message.header.flags.contains(LinkFlags::Up),
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(kind) = info {
                            link.kind = Some(kind.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// Every link of the namespace.
pub async fn links(handle: &Handle) -> Result<Vec<Link>, NetlinkError> {
    let messages: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(request("list links"))?;
    Ok(messages.iter().map(Link::from_message).collect())
}

/// The index of the link called `name`.
pub async fn index_of(handle: &Handle, name: &str) -> Result<u32, NetlinkError> {
    links(handle)
        .await?
        .into_iter()
        .find(|link| link.name == name)
        .map(|link| link.index)
        .ok_or_else(|| NetlinkError::NoSuchLink {
            name: name.to_string(),
        })
}

/// Sets link `index` up.
pub async fn set_up(handle: &Handle, index: u32) -> Result<(), NetlinkError> {
    let message = LinkUnspec::new_with_index(index).up().build();
    handle
        .link()
        .set(message)
        .execute()
        .await
        .map_err(request(format!("set link {index} up")))
}

/// Creates a veth pair `name` / `peer` in this namespace.
pub async fn create_veth(handle: &Handle, name: &str, peer: &str) -> Result<(), NetlinkError> {
    let message = LinkVeth::new(name, peer).build();
    handle
        .link()
        .add(message)
        .execute()
        .await
        .map_err(request(format!("create veth pair {name}/{peer}")))
}

/// Moves link `name` into the network namespace open as `netns`.
pub async fn move_to_netns(handle: &Handle, name: &str, netns: &File) -> Result<(), NetlinkError> {
    let index = index_of(handle, name).await?;
    let message = LinkUnspec::new_with_index(index)
        .setns_by_fd(netns.as_raw_fd())
        .build();
    handle
        .link()
        .set(message)
        .execute()
        .await
        .map_err(request(format!("move link {name} to another namespace")))
}

/// Adds `address/prefix_len` to link `index`. IPv6 addresses skip duplicate address
/// detection, so they are usable at once.
pub async fn add_address(
    handle: &Handle,
    index: u32,
    address: IpAddr,
    prefix_len: u8,
) -> Result<(), NetlinkError> {
    let mut add = handle.address().add(index, address, prefix_len);
    if address.is_ipv6() {
        add.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    add.execute().await.map_err(request(format!(
        "add {address}/{prefix_len} to link {index}"
    )))
}

/// Every address of the namespace, with the index of its link.
pub async fn addresses(handle: &Handle) -> Result<Vec<(u32, IpNet)>, NetlinkError> {
    let messages: Vec<_> = handle
        .address()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(request("list addresses"))?;
    Ok(messages
        .iter()
        .filter_map(|message| {
            let address = message
                .attributes
                .iter()
                .find_map(|attribute| match attribute {
                    AddressAttribute::Address(address) => Some(*address),
                    _ => None,
                })?;
            let net = IpNet::new(address, message.header.prefix_len).ok()?;
            Some((message.header.index, net))
        })
        .collect())
}

/// Adds a default route through `gateway`.
pub async fn add_default_route(handle: &Handle, gateway: IpAddr) -> Result<(), NetlinkError> {
    let message = match gateway {
        IpAddr::V4(gateway) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .build(),
        IpAddr::V6(gateway) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gateway)
            .build(),
    };
    handle
        .route()
        .add(message)
        .execute()
        .await
        .map_err(request(format!("add a default route through {gateway}")))
}

/// Adds a route to `prefix` through `gateway`.
pub async fn add_route(
    handle: &Handle,
    prefix: IpNet,
    gateway: IpAddr,
) -> Result<(), NetlinkError> {
    let message = match (prefix, gateway) {
        (IpNet::V4(net), IpAddr::V4(gateway)) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(net.network(), net.prefix_len())
            .gateway(gateway)
            .build(),
        (IpNet::V6(net), IpAddr::V6(gateway)) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(net.network(), net.prefix_len())
            .gateway(gateway)
            .build(),
        (prefix, gateway) => panic!("{prefix} via {gateway} mixes families"),
    };
    handle
        .route()
        .add(message)
        .execute()
        .await
        .map_err(request(format!(
            "add a route to {prefix} through {gateway}"
        )))
}

/// A route of the main table, as a test sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub destination: IpNet,
    /// Gateway, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface index, if any.
    pub oif: Option<u32>,
}

fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

impl Route {
    fn from_message(message: &RouteMessage, version: &IpVersion) -> Option<Route> {
        let unspecified = match version {
            IpVersion::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpVersion::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let mut destination = unspecified;
        let mut route = Route {
            destination: IpNet::from(unspecified),
            gateway: None,
            oif: None,
        };
        for attribute in &message.attributes {
            match attribute {
                RouteAttribute::Destination(address) => destination = route_ip(address)?,
                RouteAttribute::Gateway(address) => route.gateway = route_ip(address),
                RouteAttribute::Oif(index) => route.oif = Some(*index),
                _ => {}
            }
        }
        route.destination =
            IpNet::new(destination, message.header.destination_prefix_length).ok()?;
        Some(route)
    }
}

/// The routes of the main table for one IP version.
pub async fn routes(handle: &Handle, version: IpVersion) -> Result<Vec<Route>, NetlinkError> {
    let query = match version {
        IpVersion::V4 => RouteMessageBuilder::<Ipv4Addr>::new().build(),
        IpVersion::V6 => RouteMessageBuilder::<Ipv6Addr>::new().build(),
    };
    let messages: Vec<RouteMessage> = handle
        .route()
        .get(query)
        .execute()
        .try_collect()
        .await
        .map_err(request("list routes"))?;
    Ok(messages
        .iter()
        .filter(|message| message.header.table == RouteHeader::RT_TABLE_MAIN)
        .filter_map(|message| Route::from_message(message, &version))
        .collect())
}
