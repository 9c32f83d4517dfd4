//! [`NodeNetwork`] over rtnetlink, plus the uplink queries the agent makes at start.

use super::{Link, NetError, NodeNetwork};
use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressScope};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// errno values the kernel answers with when the object is already gone.
const ENODEV: i32 = 19;
const ESRCH: i32 = 3;
const ENOENT: i32 = 2;

/// A handle on the rtnetlink socket of the namespace the agent was started in.
#[derive(Clone, Debug)]
pub struct Rtnetlink {
    handle: Handle,
}

impl Rtnetlink {
    /// Opens the socket and spawns its connection task on the current tokio runtime.
    pub fn connect() -> Result<Rtnetlink, NetError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|source| NetError::Connect { source })?;
        tokio::spawn(connection);
        Ok(Rtnetlink { handle })
    }

    /// The link named `name`.
    pub async fn link_by_name(&self, name: &str) -> Result<Link, NetError> {
        let request = self.handle.link().get().match_name(name).execute();
        match first_or_gone(request, "looking up link", name).await? {
            Some(message) => Ok(link_of(message)),
            None => Err(NetError::NoSuchLink {
                name: name.to_string(),
            }),
        }
    }

    /// The addresses of link `index` a masquerading node may use as its source, best
    /// first: global scope before the others, then in the kernel's order. Tentative,
    /// deprecated or failed IPv6 addresses and link-local ones are left out.
    pub async fn source_addresses(&self, index: u32) -> Result<Vec<IpAddr>, NetError> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut found = Vec::new();
        while let Some(message) = stream
            .try_next()
            .await
            .map_err(|source| NetError::Request {
                operation: "listing addresses of",
                target: format!("link {index}"),
                source,
            })?
        {
            if message.header.index != index {
                continue;
            }
            let mut local = None;
            let mut address = None;
            let mut flags = AddressFlags::empty();
            for attribute in &message.attributes {
                match attribute {
                    AddressAttribute::Local(a) => local = Some(*a),
                    AddressAttribute::Address(a) => address = Some(*a),
                    AddressAttribute::Flags(f) => flags = *f,
                    _ => {}
                }
            }
            // For IPv4, IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer
            // on point-to-point links); IPv6 sends IFA_ADDRESS only.
            let Some(addr) = local.or(address) else {
                continue;
            };
            let unusable =
                AddressFlags::Tentative | AddressFlags::Deprecated | AddressFlags::Dadfailed;
            if flags.intersects(unusable) || message.header.scope == AddressScope::Host {
                continue;
            }
            if let IpAddr::V6(v6) = addr
                && v6.is_unicast_link_local()
            {
                continue;
            }
            found.push((message.header.scope != AddressScope::Universe, addr));
        }
        found.sort_by_key(|(not_global, _)| *not_global);
        Ok(found.into_iter().map(|(_, addr)| addr).collect())
    }
}

impl NodeNetwork for Rtnetlink {
    async fn link_by_index(&self, ifindex: u32) -> Result<Option<Link>, NetError> {
        let request = self.handle.link().get().match_index(ifindex).execute();
        let found = first_or_gone(request, "looking up link", &format!("#{ifindex}")).await?;
        Ok(found.map(link_of))
    }

    async fn install_pod_address(
        &self,
        addr: IpAddr,
        pod_mac: [u8; 6],
        ifindex: u32,
    ) -> Result<(), NetError> {
        let target = || format!("{addr} dev #{ifindex}");
        self.handle
            .route()
            .add(pod_route(addr, ifindex))
            .replace()
            .execute()
            .await
            .map_err(|source| NetError::Request {
                operation: "installing route",
                target: target(),
                source,
            })?;
        self.handle
            .neighbours()
            .add(ifindex, addr)
            .link_layer_address(&pod_mac)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|source| NetError::Request {
                operation: "installing neighbour",
                target: target(),
                source,
            })
    }

    async fn remove_pod_address(&self, addr: IpAddr, ifindex: u32) -> Result<(), NetError> {
        let target = || format!("{addr} dev #{ifindex}");
        let mut neighbour = NeighbourMessage::default();
        neighbour.header.family = match addr {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        neighbour.header.ifindex = ifindex;
        neighbour
            .attributes
            .push(NeighbourAttribute::Destination(match addr {
                IpAddr::V4(a) => NeighbourAddress::Inet(a),
                IpAddr::V6(a) => NeighbourAddress::Inet6(a),
            }));
        match self.handle.neighbours().del(neighbour).execute().await {
            Err(e) if !is_gone(&e) => {
                return Err(NetError::Request {
                    operation: "deleting neighbour",
                    target: target(),
                    source: e,
                });
            }
            _ => {}
        }
        match self
            .handle
            .route()
            .del(pod_route(addr, ifindex))
            .execute()
            .await
        {
            Err(e) if is_gone(&e) => Ok(()),
            result => result.map_err(|source| NetError::Request {
                operation: "deleting route",
                target: target(),
                source,
            }),
        }
    }
}

/// The host route to one pod address: `addr/32 dev <veth> scope link` or
/// `addr/128 dev <veth>`.
fn pod_route(addr: IpAddr, ifindex: u32) -> RouteMessage {
    match addr {
        IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(a, 32)
            .output_interface(ifindex)
            .scope(RouteScope::Link)
            .build(),
        IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(a, 128)
            .output_interface(ifindex)
            .build(),
    }
}

/// The first message of a single-object query, or `None` when the kernel says the object
/// does not exist.
async fn first_or_gone<T>(
    stream: impl futures::Stream<Item = Result<T, rtnetlink::Error>>,
    operation: &'static str,
    target: &str,
) -> Result<Option<T>, NetError> {
    futures::pin_mut!(stream);
    match stream.try_next().await {
        Ok(found) => Ok(found),
        Err(e) if is_gone(&e) => Ok(None),
        Err(source) => Err(NetError::Request {
            operation,
            target: target.to_string(),
            source,
        }),
    }
}

/// True when `error` says the link, route or address does not exist.
fn is_gone(error: &rtnetlink::Error) -> bool {
    match error {
        rtnetlink::Error::NetlinkError(message) => message
            .code
            .is_some_and(|code| matches!(-code.get(), ENODEV | ESRCH | ENOENT)),
        _ => false,
    }
}

fn link_of(message: LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mtu: None,
    };
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Mtu(mtu) => link.mtu = Some(mtu),
            _ => {}
        }
    }
    link
}
