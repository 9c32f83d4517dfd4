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

/// What the endpoint manager needs from the node's network: to see links and to route pod
/// addresses to their host-side veth.
pub trait NodeNetwork: Send + Sync + 'static {
    /// The link with index `ifindex`, or `None` when there is none.
    fn link_by_index(
        &self,
        ifindex: u32,
    ) -> impl Future<Output = Result<Option<Link>, NetError>> + Send;

    /// Installs (or replaces) the host route `addr/32` or `addr/128` through `ifindex`.
    fn replace_pod_route(
        &self,
        addr: IpAddr,
        ifindex: u32,
    ) -> impl Future<Output = Result<(), NetError>> + Send;

    /// Deletes the host route to `addr` through `ifindex`; a missing route or link is not
    /// an error.
    fn delete_pod_route(
        &self,
        addr: IpAddr,
        ifindex: u32,
    ) -> impl Future<Output = Result<(), NetError>> + Send;
}
