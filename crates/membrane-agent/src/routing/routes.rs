//! One route per other node's pod CIDR, added and removed as nodes come and go.
//!
//! - Native routing: towards that node's underlay address. The next hop is what the
//!   kernel's FIB says for the node's address (the node itself when it is on a shared
//!   link, the router otherwise), so nodes on different subnets work when the underlay
//!   routes pod CIDRs.
//! - Tunnel: onto the tunnel device (no ARP), with this node's address as the source, so
//!   that the node's own processes reach pods of other nodes; the tunnel device's egress
//!   program adds the encapsulation metadata. Pods' traffic never takes these routes.
//!
//! Routes carry their own protocol number, so a restarted agent finds the ones it
//! installed earlier and removes those no node wants any more.

use super::RoutingError;
use futures::TryStreamExt as _;
use ipnet::IpNet;
use membrane_api::NodeInfo;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The route protocol number marking Membrane's routes (`proto 199` in `ip route`).
pub const ROUTE_PROTOCOL: u8 = 199;

/// How often routes are reconciled even without a change of the node list (a route
/// removed by hand comes back).
const RESYNC: Duration = Duration::from_secs(10);

/// errno values the kernel answers with when the object is already gone.
const GONE: [i32; 3] = [2, 3, 19];

/// True when `error` says the link or route does not exist.
pub fn is_gone(error: &rtnetlink::Error) -> bool {
    match error {
        rtnetlink::Error::NetlinkError(message) => {
            message.code.is_some_and(|code| GONE.contains(&-code.get()))
        }
        _ => false,
    }
}

/// Every other node's pod CIDRs and the address of that node in the same family.
pub fn desired(nodes: &[NodeInfo], me: &str) -> BTreeMap<IpNet, IpAddr> {
    let mut routes = BTreeMap::new();
    for node in nodes.iter().filter(|n| n.name != me) {
        let v4 = node.addresses.iter().find(|a| a.is_ipv4());
        let v6 = node.addresses.iter().find(|a| a.is_ipv6());
        if let (Some(cidr), Some(via)) = (node.ipv4_pod_cidr, v4) {
            routes.insert(IpNet::V4(cidr), *via);
        }
        if let (Some(cidr), Some(via)) = (node.ipv6_pod_cidr, v6) {
            routes.insert(IpNet::V6(cidr), *via);
        }
    }
    routes
}

/// A route as installed: gateway (none for a device route), output interface and
/// preferred source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NextHop {
    gateway: Option<IpAddr>,
    oif: u32,
    source: Option<IpAddr>,
}

/// Where pod CIDR routes lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The other node's underlay address (native routing).
    Underlay,
    /// The tunnel device of this interface index, from this node's addresses.
    Tunnel {
        /// The tunnel device.
        ifindex: u32,
        /// This node's IPv4 address, the source of its packets to pods of other nodes.
        source_v4: Option<Ipv4Addr>,
        /// This node's IPv6 address, likewise.
        source_v6: Option<Ipv6Addr>,
    },
}

/// Installs and removes pod CIDR routes.
pub struct PodCidrRoutes {
    handle: Handle,
    via: Via,
    installed: BTreeMap<IpNet, NextHop>,
}

impl PodCidrRoutes {
    /// Routes on `handle`'s namespace leading `via`; the ones an earlier agent installed
    /// are found by their protocol number.
    pub async fn adopt(handle: Handle, via: Via) -> Result<PodCidrRoutes, RoutingError> {
        let mut installed = BTreeMap::new();
        for message in dump(&handle).await? {
            if let Some((prefix, hop)) = ours(&message) {
                installed.insert(prefix, hop);
            }
        }
        Ok(PodCidrRoutes {
            handle,
            via,
            installed,
        })
    }

    /// The pod CIDRs routed now.
    pub fn routed(&self) -> Vec<IpNet> {
        self.installed.keys().copied().collect()
    }

    /// Makes the node's routes equal `wanted`: adds or replaces what differs, removes
    /// what is no longer wanted. Every route is tried; the first failure is returned.
    pub async fn reconcile(
        &mut self,
        wanted: &BTreeMap<IpNet, IpAddr>,
    ) -> Result<(), RoutingError> {
        let mut outcome = Ok(());
        let stale: Vec<IpNet> = self
            .installed
            .keys()
            .filter(|prefix| !wanted.contains_key(prefix))
            .copied()
            .collect();
        for prefix in stale {
            let hop = self.installed[&prefix];
            match self.handle.route().del(route(prefix, hop)).execute().await {
                Err(error) if !is_gone(&error) => {
                    outcome = outcome.and(Err(RoutingError::Netlink {
                        operation: "deleting route",
                        target: prefix.to_string(),
                        source: error,
                    }));
                }
                _ => {
                    tracing::info!(%prefix, "removed the route to a node that left");
                    self.installed.remove(&prefix);
                }
            }
        }
        for (prefix, node) in wanted {
            let step = async {
                let hop = self.next_hop(*node).await?;
                if self.installed.get(prefix) != Some(&hop) {
                    let via = hop
                        .gateway
                        .map_or_else(|| format!("dev {}", hop.oif), |g| g.to_string());
                    self.handle
                        .route()
                        .add(route(*prefix, hop))
                        .replace()
                        .execute()
                        .await
                        .map_err(|source| RoutingError::Netlink {
                            operation: "installing route",
                            target: format!("{prefix} via {via}"),
                            source,
                        })?;
                    tracing::info!(%prefix, %node, %via, oif = hop.oif, "routed a node's pod CIDR");
                }
                Ok::<_, RoutingError>(hop)
            };
            match step.await {
                Ok(hop) => {
                    self.installed.insert(*prefix, hop);
                }
                Err(error) => outcome = outcome.and(Err(error)),
            }
        }
        outcome
    }

    /// The next hop towards `node`'s pods: the tunnel device, or the kernel's next hop
    /// towards `node` (its gateway, or `node` itself when on-link).
    async fn next_hop(&self, node: IpAddr) -> Result<NextHop, RoutingError> {
        if let Via::Tunnel {
            ifindex,
            source_v4,
            source_v6,
        } = self.via
        {
            let source = match node {
                IpAddr::V4(_) => source_v4.map(IpAddr::V4),
                IpAddr::V6(_) => source_v6.map(IpAddr::V6),
            };
            return Ok(NextHop {
                gateway: None,
                oif: ifindex,
                source,
            });
        }
        let query = match node {
            IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(a, 32)
                .build(),
            IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(a, 128)
                .build(),
        };
        let failed = |source| RoutingError::Netlink {
            operation: "looking up the route to node",
            target: node.to_string(),
            source,
        };
        let answer = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_next()
            .await
            .map_err(failed)?;
        let mut hop = NextHop {
            gateway: Some(node),
            oif: 0,
            source: None,
        };
        for attribute in answer.iter().flat_map(|m| &m.attributes) {
            match attribute {
                RouteAttribute::Gateway(gateway) => {
                    if let Some(gateway) = address(gateway) {
                        hop.gateway = Some(gateway);
                    }
                }
                RouteAttribute::Oif(oif) => hop.oif = *oif,
                _ => {}
            }
        }
        Ok(hop)
    }
}

/// Keeps the routes in step with the node list until `token` is cancelled: at every
/// change of `changes`, and every [`RESYNC`].
pub async fn run(
    mut routes: PodCidrRoutes,
    me: String,
    nodes: impl Fn() -> Vec<NodeInfo> + Send,
    mut changes: watch::Receiver<u64>,
    token: CancellationToken,
) {
    loop {
        let wanted = desired(&nodes(), &me);
        if let Err(error) = routes.reconcile(&wanted).await {
            tracing::warn!(error = %crate::agent::chain(&error), "cannot install every pod CIDR route; retrying");
        }
        tokio::select! {
            () = token.cancelled() => return,
            _ = changes.changed() => {}
            () = tokio::time::sleep(RESYNC) => {}
        }
    }
}

fn route(prefix: IpNet, hop: NextHop) -> RouteMessage {
    let protocol = RouteProtocol::from(ROUTE_PROTOCOL);
    // desired() pairs every prefix with a node of its family; the kernel's gateway
    // towards an address and this node's source address are of that family too.
    let mut message = match prefix {
        IpNet::V4(net) => {
            let mut builder = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(net.network(), net.prefix_len())
                .protocol(protocol);
            match hop.gateway {
                Some(IpAddr::V4(gateway)) => builder = builder.gateway(gateway),
                _ => builder = builder.scope(RouteScope::Link),
            }
            if let Some(IpAddr::V4(source)) = hop.source {
                builder = builder.pref_source(source);
            }
            builder.build()
        }
        IpNet::V6(net) => {
            let mut builder = RouteMessageBuilder::<Ipv6Addr>::new()
                .destination_prefix(net.network(), net.prefix_len())
                .protocol(protocol);
            match hop.gateway {
                Some(IpAddr::V6(gateway)) => builder = builder.gateway(gateway),
                _ => builder = builder.scope(RouteScope::Link),
            }
            if let Some(IpAddr::V6(source)) = hop.source {
                builder = builder.pref_source(source);
            }
            builder.build()
        }
    };
    if hop.oif != 0 {
        message.attributes.push(RouteAttribute::Oif(hop.oif));
    }
    message
}

async fn dump(handle: &Handle) -> Result<Vec<RouteMessage>, RoutingError> {
    let mut all = Vec::new();
    for query in [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ] {
        let found: Vec<RouteMessage> = handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|source| RoutingError::Netlink {
                operation: "listing",
                target: "routes".to_string(),
                source,
            })?;
        all.extend(found);
    }
    Ok(all)
}

/// The prefix and next hop of one of our routes.
fn ours(message: &RouteMessage) -> Option<(IpNet, NextHop)> {
    if message.header.protocol != RouteProtocol::from(ROUTE_PROTOCOL) {
        return None;
    }
    let mut destination = None;
    let mut hop = NextHop {
        gateway: None,
        oif: 0,
        source: None,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(a) => destination = address(a),
            RouteAttribute::Gateway(a) => hop.gateway = Some(address(a)?),
            RouteAttribute::PrefSource(a) => hop.source = Some(address(a)?),
            RouteAttribute::Oif(oif) => hop.oif = *oif,
            _ => {}
        }
    }
    let prefix = IpNet::new(destination?, message.header.destination_prefix_length).ok()?;
    Some((prefix, hop))
}

fn address(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_nodes::node;
    use super::*;

    #[test]
    fn every_other_nodes_pod_cidrs_route_to_that_node_in_their_own_family() {
        let wanted = desired(&[node("a", 1), node("b", 2), node("c", 3)], "a");
        assert_eq!(wanted.len(), 4, "{wanted:?}");
        assert_eq!(
            wanted[&"10.200.2.0/24".parse::<IpNet>().unwrap()],
            "10.99.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            wanted[&"fd00:200:0:3::/64".parse::<IpNet>().unwrap()],
            "fd00:99:0:3::1".parse::<IpAddr>().unwrap()
        );
        assert!(!wanted.contains_key(&"10.200.1.0/24".parse::<IpNet>().unwrap()));
    }

    #[test]
    fn a_node_without_an_address_of_a_family_gets_no_route_in_it() {
        let mut only_v4 = node("b", 2);
        only_v4.addresses.retain(IpAddr::is_ipv4);
        let wanted = desired(&[only_v4], "a");
        assert_eq!(
            wanted.keys().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["10.200.2.0/24"]
        );
    }
}
