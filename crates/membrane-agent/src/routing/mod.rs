//! How pods reach pods on other nodes: the routing mode and its tunnel device, native
//! routes to the other nodes' pod CIDRs, security identities of the local endpoints,
//! and the ipcache shared through the kvstore (published for local endpoints, programmed
//! into the datapath for every other node's).

pub mod config;
pub mod identity;
pub mod ipcache;
pub mod node_identities;
pub mod routes;
pub mod tunnel;

pub use config::{RoutingConfig, RoutingMode};

/// Nodes for the routing modules' tests.
#[cfg(test)]
mod test_nodes {
    use membrane_api::NodeInfo;

    /// Node `name`, number `n`: addresses 10.99.n.1 and fd00:99:0:n::1, pod CIDRs
    /// 10.200.n.0/24 and fd00:200:0:n::/64.
    pub fn node(name: &str, n: u8) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            addresses: vec![
                format!("10.99.{n}.1").parse().unwrap(),
                format!("fd00:99:0:{n}::1").parse().unwrap(),
            ],
            ipv4_pod_cidr: Some(format!("10.200.{n}.0/24").parse().unwrap()),
            ipv6_pod_cidr: Some(format!("fd00:200:0:{n}::/64").parse().unwrap()),
        }
    }
}

/// Opens an rtnetlink socket on the agent's namespace, its connection task spawned on the
/// current tokio runtime.
pub fn connect() -> Result<rtnetlink::Handle, RoutingError> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|source| RoutingError::Connect { source })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// Errors of the routing component.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A netlink request failed.
    #[error("netlink: {operation} {target} failed")]
    Netlink {
        /// What was being done.
        operation: &'static str,
        /// What it was done to.
        target: String,
        /// The netlink error.
        #[source]
        source: rtnetlink::Error,
    },
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink socket")]
    Connect {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A device of the tunnel's name exists but is not a VXLAN device.
    #[error(
        "{device} exists and is a {kind} device, not vxlan: remove it or choose another --tunnel-device"
    )]
    NotVxlan {
        /// The device.
        device: String,
        /// Its kind.
        kind: String,
    },
    /// The uplink's MTU leaves no room for the tunnel's headers.
    #[error("the uplink MTU {uplink_mtu} is too small for the {overhead}-byte VXLAN overhead")]
    MtuTooSmall {
        /// The uplink's MTU.
        uplink_mtu: u32,
        /// The tunnel's overhead.
        overhead: u32,
    },
    /// The kvstore failed.
    #[error("kvstore: {operation} failed")]
    Store {
        /// What was being done.
        operation: &'static str,
        /// The store's error.
        #[source]
        source: membrane_state::StoreError,
    },
    /// The object cache has not listed the kvstore yet, so a Pod's labels are unknown.
    #[error(
        "the labels of pod {pod} are not known yet: the kvstore's objects have not been listed"
    )]
    LabelsUnknown {
        /// The pod, as namespace/name.
        pod: String,
    },
    /// No identity number is free.
    #[error("no identity number is free for labels {labels:?}")]
    IdentitiesExhausted {
        /// The labels.
        labels: Vec<String>,
    },
    /// The local endpoints could not be listed.
    #[error("cannot list the local endpoints")]
    Endpoints {
        /// The endpoint manager's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A new label set found no reachable kvstore to allocate its identity in.
    #[error("no identity for labels {labels:?}: the kvstore stayed unreachable for {waited:?}")]
    IdentityUnavailable {
        /// The labels.
        labels: Vec<String>,
        /// How long it was waited for.
        waited: std::time::Duration,
        /// The store's last error.
        #[source]
        source: membrane_state::StoreError,
    },
    /// The datapath refused an ipcache write.
    #[error("datapath: {operation} ipcache entry {prefix} failed")]
    Datapath {
        /// What was being done.
        operation: &'static str,
        /// The prefix.
        prefix: ipnet::IpNet,
        /// The datapath's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
