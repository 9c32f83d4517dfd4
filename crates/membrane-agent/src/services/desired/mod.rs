//! The desired state: from Services, EndpointSlices and Pods to the node's frontends and
//! backends. Pure: the same objects and node always give the same state.

pub mod endpoints;
mod host_port;
mod service;

use super::config::LbAlgorithm;
use super::model::{
    BackendAddr, BackendState, DesiredFrontend, DesiredState, FrontendAddr, Owner, Skipped,
};
use membrane_model::k8s::api::core::v1::{Pod, Service};
use membrane_model::k8s::api::discovery::v1::EndpointSlice;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

/// What the desired state depends on about this node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeContext {
    /// The node's name (EndpointSlice `nodeName`, Pod `spec.nodeName`).
    pub name: String,
    /// The node's IPv4 address (hostPort frontends).
    pub ipv4: Option<Ipv4Addr>,
    /// The node's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// Addresses of the pods on this node.
    pub local_endpoints: BTreeSet<IpAddr>,
}

impl NodeContext {
    /// True when an endpoint at `addr` (on node `node_name`, if known) runs here.
    pub fn is_local(&self, addr: IpAddr, node_name: Option<&str>) -> bool {
        self.local_endpoints.contains(&addr) || node_name == Some(self.name.as_str())
    }

    /// The node's address of the family of `like`.
    pub fn address_like(&self, like: IpAddr) -> Option<IpAddr> {
        match like {
            IpAddr::V4(_) => self.ipv4.map(IpAddr::V4),
            IpAddr::V6(_) => self.ipv6.map(IpAddr::V6),
        }
    }
}

/// Cluster-wide choices the desired state follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Ports NodePorts may use.
    pub node_ports: RangeInclusive<u16>,
    /// Backend selection of Services that do not choose one.
    pub algorithm: LbAlgorithm,
}

/// The objects the desired state is computed from.
#[derive(Clone, Debug, Default)]
pub struct Objects<'a> {
    /// Services.
    pub services: Vec<&'a Service>,
    /// EndpointSlices.
    pub slices: Vec<&'a EndpointSlice>,
    /// Pods (for hostPorts).
    pub pods: Vec<&'a Pod>,
}

/// The desired state of the node for `objects`. Services are taken in namespace and
/// name order, then pods; a frontend claimed twice stays with the first claimant and
/// the second is reported in [`DesiredState::skipped`].
pub fn compute(objects: &Objects<'_>, node: &NodeContext, policy: &Policy) -> DesiredState {
    let mut slices: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &objects.slices {
        let namespace = slice.metadata.namespace.as_deref().unwrap_or("default");
        if let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(endpoints::SERVICE_NAME_LABEL))
        {
            slices
                .entry((namespace, service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    let mut services = objects.services.clone();
    services.sort_by_key(|s| (s.metadata.namespace.clone(), s.metadata.name.clone()));
    let mut builder = Builder::default();
    for svc in services {
        let namespace = svc.metadata.namespace.as_deref().unwrap_or("default");
        let name = svc.metadata.name.as_deref().unwrap_or_default();
        let own = slices
            .get(&(namespace, name))
            .map(Vec::as_slice)
            .unwrap_or_default();
        service::frontends(svc, own, node, policy, &mut builder);
    }
    let mut pods = objects.pods.clone();
    pods.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    for pod in pods {
        host_port::frontends(pod, node, &mut builder);
    }
    builder.state
}

/// Collects frontends, refusing a second claim on one frontend.
#[derive(Debug, Default)]
struct Builder {
    state: DesiredState,
}

impl Builder {
    /// Adds `frontend` at `addr`, with the states of its backends.
    fn add(
        &mut self,
        addr: FrontendAddr,
        frontend: DesiredFrontend,
        states: &BTreeMap<BackendAddr, BackendState>,
    ) {
        if let Some(first) = self.state.frontends.get(&addr) {
            if first.owner != frontend.owner {
                let reason = format!("{addr} is already a frontend of {}", first.owner);
                self.skip(frontend.owner, reason);
            }
            return;
        }
        for backend in frontend.all_backends() {
            let state = states.get(backend).copied().unwrap_or_default();
            self.state
                .backends
                .entry(*backend)
                .and_modify(|known| {
                    known.terminating &= state.terminating;
                    known.local |= state.local;
                })
                .or_insert(state);
        }
        self.state.frontends.insert(addr, frontend);
    }

    /// Records that something of `owner` is left out.
    fn skip(&mut self, owner: Owner, reason: String) {
        self.state.skipped.push(Skipped { owner, reason });
    }
}

#[cfg(test)]
mod tests;
