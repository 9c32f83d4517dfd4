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

/// The block every node's IPv4 pod CIDR is cut from (the several-node beds' cluster CIDR).
pub const PODS_V4: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 200, 0, 0), 16);

/// Addresses of node number `index` (1 to [`NodeAddressing::MAX_INDEX`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeAddressing {
    index: u8,
    pod_prefix_v4: u8,
}

impl NodeAddressing {
    /// The highest node number.
    pub const MAX_INDEX: u8 = 250;

    /// The prefix length of a node's IPv4 pod CIDR unless widened: a /24 (254 pods).
    pub const DEFAULT_POD_PREFIX_V4: u8 = 24;

    /// The plan of node `index`, or `None` if it is out of range.
    pub fn new(index: u8) -> Option<NodeAddressing> {
        (1..=Self::MAX_INDEX)
            .contains(&index)
            .then_some(NodeAddressing {
                index,
                pod_prefix_v4: Self::DEFAULT_POD_PREFIX_V4,
            })
    }

    /// The same plan with an IPv4 pod CIDR of `prefix` bits (for more pods on one node:
    /// a /22 holds 1,022), or `None` if that CIDR of this node does not fit in
    /// [`PODS_V4`]. Node `n`'s pod CIDR is the `n`-th block of that size, so nodes of one
    /// bed get disjoint pod CIDRs when they all use the same prefix length.
    pub fn with_pod_prefix_v4(self, prefix: u8) -> Option<NodeAddressing> {
        let fits = (PODS_V4.prefix_len()..=Self::DEFAULT_POD_PREFIX_V4).contains(&prefix)
            && (u32::from(self.index) + 1) << (32 - prefix) <= 1 << (32 - PODS_V4.prefix_len());
        fits.then_some(NodeAddressing {
            pod_prefix_v4: prefix,
            ..self
        })
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

    /// The node's IPv4 pod CIDR: block number `n` of its size in [`PODS_V4`], so
    /// `10.200.<n>.0/24` by default.
    pub fn pod_cidr_v4(&self) -> Ipv4Net {
        let offset = u32::from(self.index) << (32 - self.pod_prefix_v4);
        Ipv4Net::new(
            Ipv4Addr::from(u32::from(PODS_V4.network()) + offset),
            self.pod_prefix_v4,
        )
        .expect("the prefix was checked when the plan was made")
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
    fn a_wider_pod_cidr_is_the_nodes_block_of_that_size_inside_the_pods_block() {
        let plan = NodeAddressing::new(1).unwrap();
        assert_eq!(plan.pod_cidr_v4().to_string(), "10.200.1.0/24");
        let wide = plan.with_pod_prefix_v4(21).unwrap();
        assert_eq!(wide.pod_cidr_v4().to_string(), "10.200.8.0/21");
        assert_eq!(wide.pod_cidr_v6(), plan.pod_cidr_v6());
        let third = NodeAddressing::new(3)
            .unwrap()
            .with_pod_prefix_v4(22)
            .unwrap();
        assert_eq!(third.pod_cidr_v4().to_string(), "10.200.12.0/22");
        assert!(PODS_V4.contains(&third.pod_cidr_v4()));
        assert!(!wide.pod_cidr_v4().contains(&wide.uplink_v4().addr()));
    }

    #[test]
    fn pod_cidrs_that_leave_the_pods_block_are_refused() {
        let last = NodeAddressing::new(NodeAddressing::MAX_INDEX).unwrap();
        assert!(last.with_pod_prefix_v4(24).is_some());
        assert!(last.with_pod_prefix_v4(23).is_none());
        assert!(
            NodeAddressing::new(31)
                .unwrap()
                .with_pod_prefix_v4(21)
                .is_some()
        );
        assert!(
            NodeAddressing::new(32)
                .unwrap()
                .with_pod_prefix_v4(21)
                .is_none()
        );
        assert!(
            NodeAddressing::new(1)
                .unwrap()
                .with_pod_prefix_v4(25)
                .is_none()
        );
        assert!(
            NodeAddressing::new(1)
                .unwrap()
                .with_pod_prefix_v4(15)
                .is_none()
        );
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
