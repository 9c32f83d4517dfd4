//! The node's own network namespace: links, addresses and routes (through rtnetlink) and
//! the kernel settings the agent owns.

#[cfg(test)]
pub mod memory;
mod netlink;
pub mod sysctl;

pub use netlink::Rtnetlink;

use std::future::Future;
use std::net::IpAddr;

/// Errors of the node's network configuration.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The rtnetlink socket could not be opened.
    #[error("cannot open an rtnetlink socket")]
    Connect {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A netlink request failed.
    #[error("netlink: {operation} {target} failed")]
    Request {
        /// What was being done.
        operation: &'static str,
        /// The object it was done to (a link, a route).
        target: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A named link does not exist.
    #[error("there is no network interface named {name}")]
    NoSuchLink {
        /// The name.
        name: String,
    },
}

/// A network interface of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// MTU, when the kernel reported one.
    pub mtu: Option<u32>,
}

/// What the endpoint manager needs from the node's network: to see links, and to make
/// a pod's addresses reachable from the node's own stack through the host veth.
pub trait NodeNetwork: Send + Sync + 'static {
    /// The link with index `ifindex`, or `None` when there is none.
    fn link_by_index(
        &self,
        ifindex: u32,
    ) -> impl Future<Output = Result<Option<Link>, NetError>> + Send;

    /// Installs (or replaces) the host route `addr/32` or `addr/128` through `ifindex` and
    /// a permanent neighbour entry `addr lladdr pod_mac` on it, so the node never waits
    /// for ARP or neighbour discovery (which on a fresh veth waits for its DAD) to answer
    /// a pod.
    fn install_pod_address(
        &self,
        addr: IpAddr,
        pod_mac: [u8; 6],
        ifindex: u32,
    ) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Deletes the neighbour entry and the route; missing ones (or a missing link) are
    /// not an error.
    fn remove_pod_address(
        &self,
        addr: IpAddr,
        ifindex: u32,
    ) -> impl Future<Output = Result<(), NetError>> + Send;
}
