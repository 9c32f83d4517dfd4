//! What the decoder asks the agent: who an endpoint or address is, and which Service a
//! reverse-NAT index belongs to. The agent implements these over its own state; tests
//! use the in-memory `StaticDirectory`.

use crate::flow::{ServiceName, Workload};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::RwLock;

/// A pod (or other endpoint) as the agent knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointMeta {
    /// Local endpoint id, 0 for endpoints on other nodes.
    pub id: u16,
    /// Security identity, 0 if not allocated yet.
    pub identity: u32,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub pod_name: String,
    /// Pod labels (`app` → `web`), without a source prefix.
    pub labels: BTreeMap<String, String>,
    /// Workloads owning the pod.
    pub workloads: Vec<Workload>,
    /// Interface index of a local endpoint's host-side interface, 0 if none.
    pub interface: u32,
}

/// Looks endpoints up by local endpoint id or by address.
pub trait EndpointDirectory: Send + Sync {
    /// The local endpoint with this id.
    fn by_id(&self, id: u16) -> Option<EndpointMeta>;
    /// The endpoint (local or remote) that owns this address.
    fn by_ip(&self, ip: IpAddr) -> Option<EndpointMeta>;
    /// The local endpoint whose host-side interface has this index.
    fn by_interface(&self, ifindex: u32) -> Option<EndpointMeta>;
}

/// A Service frontend as packets address it: address, port and IP protocol number.
pub type Frontend = (IpAddr, u16, u8);

/// Looks Services up by the reverse-NAT index the datapath reports, or by the frontend
/// a packet was addressed to (untranslated packets: refused for want of a backend).
pub trait ServiceDirectory: Send + Sync {
    /// The Service whose frontend has this reverse-NAT index.
    fn by_rev_nat(&self, index: u32) -> Option<ServiceName>;
    /// The Service with this frontend.
    fn by_frontend(&self, frontend: Frontend) -> Option<ServiceName>;
}

/// An in-memory directory, replaced wholesale or entry by entry: for tests, benchmarks
/// and agents that keep no better index.
#[derive(Debug, Default)]
pub struct StaticDirectory {
    inner: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_id: HashMap<u16, EndpointMeta>,
    by_ip: HashMap<IpAddr, EndpointMeta>,
    by_interface: HashMap<u32, EndpointMeta>,
    services: HashMap<u32, ServiceName>,
    frontends: HashMap<Frontend, ServiceName>,
}

impl Entries {
    /// Records a local endpoint (id not 0) under its id and host-side interface.
    fn insert_local(&mut self, meta: EndpointMeta) {
        if meta.id == 0 {
            return;
        }
        if meta.interface != 0 {
            self.by_interface.insert(meta.interface, meta.clone());
        }
        self.by_id.insert(meta.id, meta);
    }
}

impl StaticDirectory {
    /// An empty directory.
    pub fn new() -> StaticDirectory {
        StaticDirectory::default()
    }

    /// Records an endpoint under its id (when not 0) and each of its addresses.
    pub fn insert_endpoint(&self, meta: EndpointMeta, addresses: &[IpAddr]) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for ip in addresses {
            inner.by_ip.insert(*ip, meta.clone());
        }
        inner.insert_local(meta);
    }

    /// Forgets the endpoint with this id and every address recorded for it.
    pub fn remove_endpoint(&self, id: u16) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.by_id.remove(&id);
        inner.by_ip.retain(|_, meta| meta.id != id);
        inner.by_interface.retain(|_, meta| meta.id != id);
    }

    /// Replaces every endpoint with `endpoints` (each with its addresses) at once, so
    /// that a lookup never sees a half-updated directory; Services stay as they are.
    pub fn replace_endpoints(&self, endpoints: Vec<(EndpointMeta, Vec<IpAddr>)>) {
        let mut fresh = Entries::default();
        for (meta, addresses) in endpoints {
            for ip in addresses {
                fresh.by_ip.insert(ip, meta.clone());
            }
            fresh.insert_local(meta);
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        fresh.services = std::mem::take(&mut inner.services);
        fresh.frontends = std::mem::take(&mut inner.frontends);
        *inner = fresh;
    }

    /// Records a Service under its reverse-NAT index.
    pub fn insert_service(&self, rev_nat_index: u32, name: ServiceName) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.services.insert(rev_nat_index, name);
    }

    /// Records a Service under one of its frontends.
    pub fn insert_frontend(&self, frontend: Frontend, name: ServiceName) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.frontends.insert(frontend, name);
    }

    /// Forgets the Service with this reverse-NAT index.
    pub fn remove_service(&self, rev_nat_index: u32) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.services.remove(&rev_nat_index);
    }
}

impl EndpointDirectory for StaticDirectory {
    fn by_id(&self, id: u16) -> Option<EndpointMeta> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_id.get(&id).cloned()
    }

    fn by_ip(&self, ip: IpAddr) -> Option<EndpointMeta> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_ip.get(&ip).cloned()
    }

    fn by_interface(&self, ifindex: u32) -> Option<EndpointMeta> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_interface.get(&ifindex).cloned()
    }
}

impl ServiceDirectory for StaticDirectory {
    fn by_rev_nat(&self, index: u32) -> Option<ServiceName> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.services.get(&index).cloned()
    }

    fn by_frontend(&self, frontend: Frontend) -> Option<ServiceName> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.frontends.get(&frontend).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u16, pod: &str) -> EndpointMeta {
        EndpointMeta {
            id,
            pod_name: pod.to_string(),
            interface: u32::from(id) + 100,
            ..EndpointMeta::default()
        }
    }

    #[test]
    fn replacing_endpoints_drops_every_endpoint_not_listed_again_and_keeps_services() {
        let dir = StaticDirectory::new();
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        dir.insert_endpoint(meta(1, "old"), &[a]);
        dir.insert_service(7, ServiceName::default());
        dir.replace_endpoints(vec![
            (meta(0, "remote"), vec![b]),
            (meta(2, "local"), vec![a]),
        ]);
        assert_eq!(dir.by_id(1), None);
        assert_eq!(dir.by_interface(101), None);
        assert_eq!(dir.by_interface(102).unwrap().pod_name, "local");
        assert_eq!(dir.by_ip(a).unwrap().pod_name, "local");
        assert_eq!(dir.by_ip(b).unwrap().pod_name, "remote");
        assert_eq!(dir.by_id(0), None, "remote endpoints have no local id");
        assert_eq!(dir.by_rev_nat(7), Some(ServiceName::default()));
    }
}
