//! The outside namespace: stands for the world beyond the nodes.
//!
//! Nodes attach to it by a veth each (see [`crate::wiring::connect_node`]); it routes
//! between them, holds the world's addresses ([`WORLD_V4`], [`WORLD_V6`]) and has no
//! route to any pod CIDR, so a pod's traffic gets answers only if it was masqueraded.

use crate::addressing::{WORLD_V4, WORLD_V6};
use crate::cgroup::Cgroup;
use crate::netns::Netns;
use crate::process::Place;
use crate::wiring::{self, WiringError};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The outside namespace of one topology; removed on drop.
#[derive(Debug)]
pub struct Outside {
    netns: Netns,
}

impl Outside {
    /// Creates the namespace with its loopback up, forwarding on and the world's
    /// addresses on its loopback. It accepts packets from nodes whose source is one of
    /// its own (world) addresses: the namespace stands for the world's hosts and their
    /// router at once, and with direct server return a node forwards the client's own
    /// packets, source unchanged, to the node of their backend.
    pub fn create() -> Result<Outside, WiringError> {
        let netns = Netns::create("out")?;
        wiring::loopback_up(&netns)?;
        wiring::enable_forwarding(&netns)?;
        wiring::skip_dad(&netns)?;
        netns.set_sysctl("net/ipv4/conf/all/accept_local", "1")?;
        wiring::add_world(&netns)?;
        Ok(Outside { netns })
    }

    /// The world's IPv4 address: a server listening in the outside namespace answers on it.
    pub fn world_v4(&self) -> Ipv4Addr {
        WORLD_V4
    }

    /// The world's IPv6 address.
    pub fn world_v6(&self) -> Ipv6Addr {
        WORLD_V6
    }
}

impl Place for Outside {
    fn netns(&self) -> &Netns {
        &self.netns
    }
    fn cgroup(&self) -> Option<&Cgroup> {
        None
    }
}
