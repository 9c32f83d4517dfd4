//! An in-memory [`NodeNetwork`] for unit tests of the endpoint manager.

use super::{Link, NetError, NodeNetwork};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Links and pod routes of a pretend node.
#[derive(Debug, Default)]
pub struct Network {
    /// Links by index.
    pub links: BTreeMap<u32, Link>,
    /// Pod routes as (address, ifindex).
    pub routes: BTreeSet<(IpAddr, u32)>,
    /// Permanent neighbour entries as (address, ifindex) → MAC.
    pub neighbours: BTreeMap<(IpAddr, u32), [u8; 6]>,
}

/// The in-memory node network; clones share state.
#[derive(Clone, Debug, Default)]
pub struct MemoryNetwork(pub Arc<Mutex<Network>>);

impl MemoryNetwork {
    /// Adds a link.
    pub fn add_link(&self, index: u32, name: &str) {
        let link = Link {
            index,
            name: name.to_string(),
            mtu: Some(1500),
        };
        self.0.lock().unwrap().links.insert(index, link);
    }

    /// Removes a link and its routes, as the kernel does.
    pub fn remove_link(&self, index: u32) {
        let mut net = self.0.lock().unwrap();
        net.links.remove(&index);
        net.routes.retain(|(_, i)| *i != index);
        net.neighbours.retain(|(_, i), _| *i != index);
    }

    /// The current pod routes.
    pub fn routes(&self) -> BTreeSet<(IpAddr, u32)> {
        self.0.lock().unwrap().routes.clone()
    }

    /// The current neighbour entries.
    pub fn neighbours(&self) -> BTreeMap<(IpAddr, u32), [u8; 6]> {
        self.0.lock().unwrap().neighbours.clone()
    }
}

impl NodeNetwork for MemoryNetwork {
    async fn link_by_index(&self, ifindex: u32) -> Result<Option<Link>, NetError> {
        Ok(self.0.lock().unwrap().links.get(&ifindex).cloned())
    }

    async fn install_pod_address(
        &self,
        addr: IpAddr,
        pod_mac: [u8; 6],
        ifindex: u32,
    ) -> Result<(), NetError> {
        let mut net = self.0.lock().unwrap();
        if !net.links.contains_key(&ifindex) {
            return Err(NetError::NoSuchLink {
                name: format!("#{ifindex}"),
            });
        }
        net.routes.retain(|(a, _)| *a != addr);
        net.routes.insert((addr, ifindex));
        net.neighbours.insert((addr, ifindex), pod_mac);
        Ok(())
    }

    async fn remove_pod_address(&self, addr: IpAddr, ifindex: u32) -> Result<(), NetError> {
        let mut net = self.0.lock().unwrap();
        net.routes.remove(&(addr, ifindex));
        net.neighbours.remove(&(addr, ifindex));
        Ok(())
    }
}
