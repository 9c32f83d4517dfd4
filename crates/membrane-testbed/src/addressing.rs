//! The test bed's address plan: what node `n`, its uplink peer and its pods get.
//!
//! Every topology lives in its own namespaces, so two tests may use the same plan at the
//! same time. Nothing here is routable outside the machine: the outside namespace that
//! stands for the world has no route out.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The IPv4 address that stands for a server in the world, on the outside namespace.
pub const WORLD_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
/// The IPv6 address that stands for a server in the world, on the outside namespace.
pub const WORLD_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);

/// Name of a node's uplink interface, inside the node's namespace.
pub const UPLINK: &str = "uplink0";

/// Addresses of node number `index` (1 to [`NodeAddressing::MAX_INDEX`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAddressing {
    index: u8,
}

impl NodeAddressing {
    /// The highest node number.
    pub const MAX_INDEX: u8 = 250;

    /// The plan of node `index`, or `None` if it is out of range.
    pub fn new(index: u8) -> Option<NodeAddressing> {
        (1..=Self::MAX_INDEX)
            .contains(&index)
            .then_some(NodeAddressing { index })
    }

    /// The node number.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// The node's IPv4 address on its uplink, `10.99.<n>.1/24`.
    pub fn uplink_v4(&self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(10, 99, self.index, 1), 24).expect("24 is a valid prefix")
    }

    /// The node's IPv6 address on its uplink, `fd00:99:0:<n>::1/64`.
    pub fn uplink_v6(&self) -> Ipv6Net {
        Ipv6Net::new(
            Ipv6Addr::new(0xfd00, 0x99, 0, self.index.into(), 0, 0, 0, 1),
            64,
        )
        .expect("64 is a valid prefix")
    }

    /// The outside end of the uplink, `10.99.<n>.254/24`: the node's default gateway.
    pub fn gateway_v4(&self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(10, 99, self.index, 254), 24).expect("24 is a valid prefix")
    }

    /// The outside end of the uplink, `fd00:99:0:<n>::fe/64`: the node's default gateway.
    pub fn gateway_v6(&self) -> Ipv6Net {
        Ipv6Net::new(
            Ipv6Addr::new(0xfd00, 0x99, 0, self.index.into(), 0, 0, 0, 0xfe),
            64,
        )
        .expect("64 is a valid prefix")
    }

    /// The node's IPv4 pod CIDR, `10.200.<n>.0/24`.
    pub fn pod_cidr_v4(&self) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::new(10, 200, self.index, 0), 24).expect("24 is a valid prefix")
    }

    /// The node's IPv6 pod CIDR, `fd00:200:0:<n>::/64`.
    pub fn pod_cidr_v6(&self) -> Ipv6Net {
        Ipv6Net::new(
            Ipv6Addr::new(0xfd00, 0x200, 0, self.index.into(), 0, 0, 0, 0),
            64,
        )
        .expect("64 is a valid prefix")
    }

    /// Name of the uplink's outside end, inside the outside namespace.
    pub fn outside_ifname(&self) -> String {
        format!("node{}", self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_numbers_outside_the_plan_are_refused() {
        assert!(NodeAddressing::new(0).is_none());
        assert!(NodeAddressing::new(251).is_none());
        assert!(NodeAddressing::new(250).is_some());
    }

    #[test]
    fn a_node_and_its_gateway_share_a_subnet_that_holds_no_pod() {
        let plan = NodeAddressing::new(7).unwrap();
        assert_eq!(plan.uplink_v4().to_string(), "10.99.7.1/24");
        assert_eq!(plan.gateway_v4().to_string(), "10.99.7.254/24");
        assert_eq!(plan.uplink_v4().trunc(), plan.gateway_v4().trunc());
        assert_eq!(plan.uplink_v6().trunc(), plan.gateway_v6().trunc());
        assert!(!plan.pod_cidr_v4().contains(&plan.uplink_v4().addr()));
        assert!(!plan.pod_cidr_v6().contains(&plan.uplink_v6().addr()));
    }

    #[test]
    fn different_nodes_get_disjoint_pod_cidrs() {
        let a = NodeAddressing::new(1).unwrap();
        let b = NodeAddressing::new(2).unwrap();
        assert!(!a.pod_cidr_v4().contains(&b.pod_cidr_v4()));
        assert!(!a.pod_cidr_v6().contains(&b.pod_cidr_v6()));
        assert_eq!(b.pod_cidr_v6().to_string(), "fd00:200:0:2::/64");
    }

    #[test]
    fn the_world_is_outside_every_node_subnet_and_pod_cidr() {
        let plan = NodeAddressing::new(1).unwrap();
        assert!(!plan.uplink_v4().contains(&WORLD_V4));
        assert!(!plan.pod_cidr_v4().contains(&WORLD_V4));
        assert!(!plan.uplink_v6().contains(&WORLD_V6));
        assert!(!plan.pod_cidr_v6().contains(&WORLD_V6));
    }
}
